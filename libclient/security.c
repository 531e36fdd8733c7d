/*
 * security.c - turns the public struct sipc_security into an OpenSSL
 * context (tls.c does the OpenSSL work; this file the API's rules and
 * error reporting).
 */
#include <string.h>

#include "internal.h"
#include "../common/tls.h"

int
security_on(const struct sipc_security *s)
{
	return s->password || s->tls_ca || s->tls_cert || s->tls_key;
}

int
security_ctx(const struct sipc_security *s, int server, SSL_CTX **ctx,
    int *psk)
{
	struct tls_conf tc;
	char err[512];

	*ctx = NULL;
	*psk = 0;
	if (!security_on(s))
		return 0;
	memset(&tc, 0, sizeof(tc));
	if (s->password) {
		if (s->tls_ca || s->tls_cert || s->tls_key)
			return seterr(SIPC_EINVAL, "use either certificates or "
			    "a password, not both");
		if (tls_conf_password(&tc, s->password, s->salt, err,
		    sizeof(err)) == -1)
			return seterr(SIPC_EINVAL, "%s", err);
		*psk = 1;
	} else {
		tc.ca = s->tls_ca;
		tc.cert = s->tls_cert;
		tc.key = s->tls_key;
		tc.verify_peer = s->tls_verify_peer;
		tc.tls12 = s->tls12;
	}
	*ctx = tls_ctx_new(server, &tc, err, sizeof(err));
	explicit_bzero(&tc, sizeof(tc));
	if (*ctx == NULL)
		return seterr(SIPC_EAUTH, "%s", err);
	return 0;
}
