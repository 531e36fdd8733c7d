/*
 * tls.c - OpenSSL contexts for sipc's TLS and password modes (see tls.h).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* TLS_AES_128_GCM_SHA256: the PSK's cipher; its hash fits a 32-byte key. */
static const unsigned char psk_cipher_id[2] = { 0x13, 0x01 };

/* Where a context keeps its PSK; made once, whichever thread is first. */
static pthread_once_t psk_once = PTHREAD_ONCE_INIT;
static int psk_index = -1;

static void
psk_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr)
		OPENSSL_clear_free(ptr, TLS_PSK_LEN);
}

static void
psk_index_init(void)
{
	psk_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, psk_free);
}

/* c is a char from the user's string: negative for bytes over 0x7f on
 * most ABIs, which tolower() must not get. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
tls_salt_parse(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	const char *p = s;
	size_t n = 0;
	int hi, lo;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '{') {
		/* {0x01,0x02,0x03}: C# style, one byte per item. */
		p++;
		for (;;) {
			while (isspace((unsigned char)*p))
				p++;
			if (*p == '}')
				break;
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
				p += 2;
			if ((hi = hexval(*p)) < 0)
				return -1;
			p++;
			if ((lo = hexval(*p)) >= 0) {
				hi = hi * 16 + lo;
				p++;
			}
			if (n >= cap)
				return -1;
			out[n++] = (uint8_t)hi;
			while (isspace((unsigned char)*p))
				p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return -1;
		}
		p++;
	} else {
		while (hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
			if (n >= cap)
				return -1;
			out[n++] = (uint8_t)(hexval(p[0]) * 16 + hexval(p[1]));
			p += 2;
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0' || n == 0)
		return -1;
	*len = n;
	return 0;
}

int
tls_psk_derive(const char *password, size_t pwlen, const uint8_t *salt,
    size_t saltlen, uint8_t key[TLS_PSK_LEN])
{
	return PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen,
	    TLS_PBKDF2_ITERATIONS, EVP_sha256(), TLS_PSK_LEN, key) == 1 ?
	    0 : -1;
}

int
tls_password_read(const char *file, char *buf, size_t cap, char *err,
    size_t errlen)
{
	FILE *fp;
	size_t n;

	if ((fp = fopen(file, "r")) == NULL) {
		snprintf(err, errlen, "password file %s: %s", file,
		    strerror(errno));
		return -1;
	}
	if (fgets(buf, (int)cap, fp) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "password file %s is empty", file);
		return -1;
	}
	fclose(fp);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "password file %s: the first line is "
		    "empty", file);
		return -1;
	}
	return 0;
}

int
tls_conf_password(struct tls_conf *c, const char *password, const char *salt,
    char *err, size_t errlen)
{
	uint8_t sb[TLS_SALT_MAX];
	size_t sl;

	if (password == NULL || *password == '\0') {
		snprintf(err, errlen, "password mode needs a password");
		return -1;
	}
	if (salt == NULL) {
		sl = strlen(TLS_DEFAULT_SALT);
		memcpy(sb, TLS_DEFAULT_SALT, sl);
	} else if (tls_salt_parse(salt, sb, sizeof(sb), &sl) == -1) {
		snprintf(err, errlen, "salt '%s': write it as hex (010203) or "
		    "as {0x01,0x02,0x03}, 1 to %d bytes", salt, TLS_SALT_MAX);
		return -1;
	}
	if (tls_psk_derive(password, strlen(password), sb, sl,
	    c->psk_key) == -1) {
		snprintf(err, errlen, "PBKDF2 failed");
		return -1;
	}
	c->psk = 1;
	return 0;
}

static SSL_SESSION *
psk_session(SSL *ssl, const uint8_t *key)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, psk_cipher_id);
	SSL_SESSION *s;

	if (cipher == NULL || (s = SSL_SESSION_new()) == NULL)
		return NULL;
	if (!SSL_SESSION_set1_master_key(s, key, TLS_PSK_LEN) ||
	    !SSL_SESSION_set_cipher(s, cipher) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

static int
psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
    size_t *idlen, SSL_SESSION **sess)
{
	const uint8_t *key = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
	    psk_index);
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, psk_cipher_id);

	*sess = NULL;
	if (key == NULL || cipher == NULL)
		return 0;
	/* After a HelloRetryRequest the suite is fixed: its hash must be
	 * the PSK's. */
	if (md != NULL && md != SSL_CIPHER_get_handshake_digest(cipher))
		return 1;
	if ((*sess = psk_session(ssl, key)) == NULL)
		return 0;
	*id = (const unsigned char *)TLS_PSK_IDENTITY;
	*idlen = strlen(TLS_PSK_IDENTITY);
	return 1;
}

static int
psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen,
    SSL_SESSION **sess)
{
	const uint8_t *key = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
	    psk_index);

	*sess = NULL;
	if (key == NULL)
		return 0;
	if (idlen != strlen(TLS_PSK_IDENTITY) ||
	    memcmp(id, TLS_PSK_IDENTITY, idlen) != 0)
		return 1;	/* unknown identity: no PSK, handshake fails */
	return (*sess = psk_session(ssl, key)) != NULL;
}

static void
ssl_err(char *err, size_t errlen, const char *what, const char *file)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	if (file)
		snprintf(err, errlen, "%s %s: %s", what, file,
		    e ? buf : "failed");
	else
		snprintf(err, errlen, "%s: %s", what, e ? buf : "failed");
}

SSL_CTX *
tls_ctx_new(int server, const struct tls_conf *c, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	uint8_t *key;

	pthread_once(&psk_once, psk_index_init);
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		ssl_err(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, c->tls12 && !c->psk ?
	    TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Sessions are long-lived; resumption buys nothing. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (server)
		SSL_CTX_set_num_tickets(ctx, 0);
	if (c->psk) {
		if (c->cert || c->ca) {
			snprintf(err, errlen, "use either certificates or a "
			    "password, not both");
			goto fail;
		}
		if ((key = OPENSSL_malloc(TLS_PSK_LEN)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		memcpy(key, c->psk_key, TLS_PSK_LEN);
		/* Fails too when psk_index could not be had. */
		if (!SSL_CTX_set_ex_data(ctx, psk_index, key)) {
			OPENSSL_clear_free(key, TLS_PSK_LEN);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
		    "TLS_CHACHA20_POLY1305_SHA256");
		if (server)
			SSL_CTX_set_psk_find_session_callback(ctx, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(ctx, psk_use_cb);
		return ctx;
	}
	if (c->cert || c->key) {
		if (c->cert == NULL || c->key == NULL) {
			snprintf(err, errlen, "a certificate needs its key and "
			    "a key its certificate");
			goto fail;
		}
		if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
			ssl_err(err, errlen, "certificate", c->cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, c->key,
		    SSL_FILETYPE_PEM) != 1) {
			ssl_err(err, errlen, "private key", c->key);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			ssl_err(err, errlen, "private key does not match",
			    c->cert);
			goto fail;
		}
	} else if (server) {
		snprintf(err, errlen, "a TLS server needs a certificate and a "
		    "key");
		goto fail;
	}
	if (c->ca) {
		if (SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1) {
			ssl_err(err, errlen, "CA file", c->ca);
			goto fail;
		}
	} else if (!server)
		SSL_CTX_set_default_verify_paths(ctx);
	if (!server)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	else if (c->verify_peer) {
		if (c->ca == NULL) {
			snprintf(err, errlen, "verifying clients needs a CA "
			    "file");
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_client_host(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

	if (host == NULL || *host == '\0')
		return 0;
	/* An IP address is checked against the certificate's IP names;
	 * a DNS name against its DNS names, and sent as SNI. */
	if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
		return 0;
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1)
		return -1;
	return 0;
}

int
tls_explain(SSL *ssl, int psk, int server, char *buf, size_t size)
{
	unsigned long e, first = 0;

	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	return tls_explain_code(first, ssl ? SSL_get_verify_result(ssl) :
	    X509_V_OK, psk, server, buf, size);
}

int
tls_explain_code(unsigned long err, long vr, int psk, int server, char *buf,
    size_t size)
{
	char reason[256] = "";
	int r = ERR_GET_REASON(err);

	if (err)
		ERR_error_string_n(err, reason, sizeof(reason));
	if (r == SSL_R_WRONG_VERSION_NUMBER ||
	    r == SSL_R_PACKET_LENGTH_TOO_LONG || r == SSL_R_HTTP_REQUEST ||
	    r == SSL_R_RECORD_LENGTH_MISMATCH) {
		snprintf(buf, size, "the peer does not speak TLS (plain-text "
		    "sipc or another protocol?)");
		return 0;
	}
	if (psk) {
		snprintf(buf, size, "authentication failed: %s",
		    server ? "the client did not prove it knows the password "
		    "(wrong password or salt, or none given)" :
		    "the peer did not accept our password (wrong password or "
		    "salt, or it is not in password mode)");
		return 1;
	}
	if (r == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
		snprintf(buf, size, "authentication failed: the peer's "
		    "certificate: %s", X509_verify_cert_error_string(vr));
		return 1;
	}
	switch (r) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_NO_SHARED_CIPHER:
		snprintf(buf, size, "authentication failed: %s", reason);
		return 1;
	default:
		snprintf(buf, size, "TLS handshake failed: %s",
		    reason[0] ? reason : "connection closed during the "
		    "handshake");
		return 0;
	}
}
