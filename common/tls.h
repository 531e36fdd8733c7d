/*
 * tls.h - TLS and password mode for sipc, shared by libsipc, sipc-epmd and
 * brokerctl: OpenSSL contexts for certificates (TLS 1.3, 1.2 on request)
 * and for password mode, where a key derived with PBKDF2-HMAC-SHA256 from
 * the password and salt is a TLS 1.3 external PSK, so that both sides prove
 * they know it and every frame is encrypted and authenticated.  Also the
 * texts that explain a failed handshake to people.
 *
 * No sockets here: callers attach the SSL objects to their own I/O.
 */
#ifndef SIPC_TLS_H
#define SIPC_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* PBKDF2-HMAC-SHA256 iterations for password mode.  200,000 costs about
 * 0.1 s once per process (not per connection) and puts a guessing attack
 * at 200,000 HMACs per password tried. */
#define TLS_PBKDF2_ITERATIONS	200000
#define TLS_PSK_LEN		32
#define TLS_PSK_IDENTITY	"sipc1"
#define TLS_SALT_MAX		64
/* The salt when none is given (the original required one; sipc does not). */
#define TLS_DEFAULT_SALT	"sipc"
#define TLS_PASSWORD_MAX	1024

struct tls_conf {
	const char	*ca;		/* PEM file: CAs to verify the peer */
	const char	*cert;		/* PEM file: our certificate chain */
	const char	*key;		/* PEM file: our private key */
	int		 verify_peer;	/* server: require client certs */
	int		 tls12;		/* also TLS 1.2 (certificates only) */
	int		 psk;		/* password mode */
	uint8_t		 psk_key[TLS_PSK_LEN];
};

/*
 * Parses a salt written as hex ("010203") or as the original's C# byte
 * array ("{0x01,0x02,0x03}").  Returns 0 with the bytes in out, or -1.
 */
int	 tls_salt_parse(const char *s, uint8_t *out, size_t cap, size_t *len);

/* Derives the password-mode key.  0, or -1 (OpenSSL failed). */
int	 tls_psk_derive(const char *password, size_t pwlen,
	    const uint8_t *salt, size_t saltlen, uint8_t key[TLS_PSK_LEN]);

/*
 * Reads a password: the first line of file (without its newline).
 * Returns 0, or -1 with err set.  The file must not be empty.
 */
int	 tls_password_read(const char *file, char *buf, size_t cap, char *err,
	    size_t errlen);

/*
 * Fills c for password mode from a password and a salt string (NULL: the
 * default salt).  0, or -1 with err set.
 */
int	 tls_conf_password(struct tls_conf *c, const char *password,
	    const char *salt, char *err, size_t errlen);

/* A context for servers (server != 0) or clients.  NULL with err set. */
SSL_CTX	*tls_ctx_new(int server, const struct tls_conf *c, char *err,
	    size_t errlen);

/*
 * Client side of one connection: checks the peer's certificate against
 * host (an IP address or a DNS name) and sends it as SNI.  0 or -1.
 */
int	 tls_client_host(SSL *ssl, const char *host);

/*
 * Explains why a handshake failed, from OpenSSL's error queue (which it
 * empties) and the certificate check.  psk: password mode.  Returns 1 for
 * a failure of authentication (the text then starts with "authentication
 * failed"), 0 for any other.
 */
int	 tls_explain(SSL *ssl, int psk, int server, char *buf, size_t size);
/* The same for one OpenSSL error code (libevent's bufferevents keep their
 * own); verify_result from SSL_get_verify_result(), or X509_V_OK. */
int	 tls_explain_code(unsigned long err, long verify_result, int psk,
	    int server, char *buf, size_t size);

#endif
