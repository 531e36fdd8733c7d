/*
 * xport.c - the byte transport under a data connection: plain read() and
 * writev() on a non-blocking socket, or the same through TLS.
 *
 * TLS has no writev: frames are gathered into a 64 KiB staging buffer and
 * written with one SSL_write, which also keeps TLS records large.  Bytes
 * taken into the stage count as written for the caller; while some remain
 * staged, xp_out_pending() says so and the caller keeps waiting for
 * writability.
 */
#include <sys/uio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "xport.h"
#include "../common/tls.h"

#define STAGE_MAX	(64 * 1024)

void
xp_init(struct xport *x, int fd)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
}

int
xp_tls_start(struct xport *x, SSL_CTX *ctx, int server, const char *host)
{
	if ((x->ssl = SSL_new(ctx)) == NULL)
		return -1;
	if (SSL_set_fd(x->ssl, x->fd) != 1 ||
	    (!server && tls_client_host(x->ssl, host) == -1)) {
		SSL_free(x->ssl);
		x->ssl = NULL;
		return -1;
	}
	if (server)
		SSL_set_accept_state(x->ssl);
	else
		SSL_set_connect_state(x->ssl);
	return 0;
}

int
xp_handshake(struct xport *x, int psk, int server, char *err, size_t errlen)
{
	int rc, e;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(x->ssl)) == 1) {
		x->tls_done = 1;
		return XP_DONE;
	}
	e = SSL_get_error(x->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return XP_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return XP_WANT_WRITE;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		ERR_put_error(ERR_LIB_SSL, 0, 0, __FILE__, __LINE__);
	tls_explain(x->ssl, psk, server, err, errlen);
	return XP_FAILED;
}

static ssize_t
ssl_result(struct xport *x, int rc)
{
	int e = SSL_get_error(x->ssl, rc);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0;	/* unexpected EOF: the same to us */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t
xp_read(struct xport *x, void *buf, size_t len)
{
	int rc;

	if (x->ssl == NULL)
		return read(x->fd, buf, len);
	if (len > INT32_MAX)
		len = INT32_MAX;
	errno = 0;
	ERR_clear_error();
	if ((rc = SSL_read(x->ssl, buf, (int)len)) > 0)
		return rc;
	return ssl_result(x, rc);
}

size_t
xp_in_pending(struct xport *x)
{
	return x->ssl ? (size_t)SSL_pending(x->ssl) : 0;
}

int
xp_out_pending(const struct xport *x)
{
	return x->stage_off < x->stage_len;
}

int
xp_flush(struct xport *x)
{
	int rc;

	while (x->stage_off < x->stage_len) {
		errno = 0;
		ERR_clear_error();
		rc = SSL_write(x->ssl, x->stage + x->stage_off,
		    (int)(x->stage_len - x->stage_off));
		if (rc > 0) {
			x->stage_off += (size_t)rc;
			continue;
		}
		if (ssl_result(x, rc) == -1 && errno == EAGAIN)
			return 1;
		if (errno == 0)
			errno = EPIPE;
		return -1;
	}
	x->stage_off = x->stage_len = 0;
	return 0;
}

ssize_t
xp_writev(struct xport *x, const struct iovec *iov, int n)
{
	size_t take, total = 0;
	int i, rc;

	if (x->ssl == NULL)
		return writev(x->fd, iov, n);
	if ((rc = xp_flush(x)) != 0) {
		if (rc == 1)
			errno = EAGAIN;
		return -1;
	}
	if (x->stage == NULL && (x->stage = malloc(STAGE_MAX)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < n && total < STAGE_MAX; i++) {
		take = iov[i].iov_len < STAGE_MAX - total ? iov[i].iov_len :
		    STAGE_MAX - total;
		memcpy(x->stage + total, iov[i].iov_base, take);
		total += take;
	}
	x->stage_off = 0;
	x->stage_len = total;
	/* What did not go now stays staged: still ours to write. */
	if (xp_flush(x) == -1)
		return -1;
	return (ssize_t)total;
}

ssize_t
xp_write(struct xport *x, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return xp_writev(x, &iov, 1);
}

void
xp_close(struct xport *x)
{
	if (x->ssl) {
		SSL_free(x->ssl);
		x->ssl = NULL;
	}
	free(x->stage);
	x->stage = NULL;
	x->stage_len = x->stage_off = 0;
	if (x->fd != -1)
		close(x->fd);
	x->fd = -1;
}
