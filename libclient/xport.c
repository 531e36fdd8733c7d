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
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "../proto/addr.h"
#include "../proto/wire.h"
#include "internal.h"
#include "xport.h"
#include "../common/tls.h"

#define STAGE_MAX	(64 * 1024)

void
xp_init(struct xport *x, int fd)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
}

/* read() that keeps descriptors passed with the bytes. */
static ssize_t
read_fds(struct xport *x, void *buf, size_t len)
{
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(XP_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;
	size_t i, k;
	int fd;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof(ctl.b);
	if ((n = recvmsg(x->fd, &mh, MSG_CMSG_CLOEXEC)) == -1)
		return -1;
	if (mh.msg_flags & MSG_CTRUNC)
		x->fd_excess = 1;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(fd));
			if (x->nfds < XP_MAX_FDS)
				x->fds[x->nfds++] = fd;
			else {
				close(fd);
				x->fd_excess = 1;
			}
		}
	}
	return n;
}

ssize_t
xp_send_fds(struct xport *x, const void *buf, size_t len, const int *fds,
    int n)
{
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(XP_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t w;

	if (n < 1 || n > XP_MAX_FDS || x->ssl) {
		errno = EINVAL;
		return -1;
	}
	memset(&mh, 0, sizeof(mh));
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	do
		w = sendmsg(x->fd, &mh, MSG_NOSIGNAL);
	while (w == -1 && errno == EINTR);
	return w;
}

int
xp_take_fd(struct xport *x)
{
	int fd;

	if (x->nfds == 0)
		return -1;
	fd = x->fds[0];
	memmove(x->fds, x->fds + 1, (size_t)--x->nfds * sizeof(int));
	return fd;
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

	if (x->ssl == NULL && x->fdpass)
		return read_fds(x, buf, len);
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
	while (x->nfds > 0)
		close(x->fds[--x->nfds]);
	if (x->fd != -1)
		close(x->fd);
	x->fd = -1;
}

int
xp_tls_client(struct xport *x, SSL_CTX *ctx, int psk, const char *tls_name,
    const struct wire_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + 1] = "";
	const char *name = host;

	if (tls_name && tls_name[0])
		name = tls_name;
	else if (ep->family == WIRE_AF_UNIX)
		name = NULL;
	else
		addr_format_host(ep, host, sizeof(host));
	return xp_tls_start(x, ctx, 0, psk ? NULL : name);
}

int
xp_client_step(struct xport *x, int psk, struct event *wev, int *armed,
    char *err, size_t errlen)
{
	int rc = xp_handshake(x, psk, 0, err, errlen);

	if (rc == XP_FAILED)
		return rc;
	wev_set(wev, armed, rc == XP_WANT_WRITE);
	return rc == XP_DONE ? XP_DONE : XP_WANT_READ;
}

/* ---- Output buffers ------------------------------------------------------ */

int
outbuf_add(struct outbuf *o, const void *p, size_t n)
{
	size_t ncap;
	uint8_t *np;

	if (o->off == o->len)
		o->off = o->len = 0;
	if (n > o->cap - o->len) {
		if (o->off > 0) {
			memmove(o->p, o->p + o->off, o->len - o->off);
			o->len -= o->off;
			o->off = 0;
		}
		for (ncap = o->cap ? o->cap : OUTBUF_MIN; ncap - o->len < n;
		    ncap *= 2)
			;
		if (ncap != o->cap) {
			if ((np = realloc(o->p, ncap)) == NULL)
				return -1;
			o->p = np;
			o->cap = ncap;
		}
	}
	if (n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
	return 0;
}

int
outbuf_u64(struct outbuf *o, uint8_t type, uint32_t reqid, uint64_t v)
{
	uint8_t buf[32];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	if (wire_enc_u64(&w, type, reqid, v) != 0)
		return -1;
	return outbuf_add(o, w.data, w.len);
}

int
outbuf_error(struct outbuf *o, uint32_t reqid, uint16_t code,
    const char *text)
{
	uint8_t buf[SIPC_HEADER_SIZE + 4 + SIPC_ERROR_TEXT_MAX];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	if (wire_enc_error(&w, reqid, code, text) != 0)
		return -1;
	return outbuf_add(o, w.data, w.len);
}

void
outbuf_discard(struct outbuf *o)
{
	if (o->off == 0)
		o->len = 0;
}

void
outbuf_free(struct outbuf *o)
{
	free(o->p);
	memset(o, 0, sizeof(*o));
}

int
outbuf_write(struct outbuf *o, struct xport *x, int *wrote)
{
	ssize_t n;

	while (o->off < o->len) {
		n = xp_write(x, o->p + o->off, o->len - o->off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN ? 0 : -1;
		o->off += (size_t)n;
		if (wrote)
			*wrote = 1;
	}
	o->off = o->len = 0;
	if (o->cap > OUTBUF_KEEP) {
		free(o->p);
		o->p = NULL;
		o->cap = 0;
	}
	switch (xp_out_pending(x) ? xp_flush(x) : 0) {
	case 0:
		return 1;
	case 1:
		return 0;
	default:
		return -1;
	}
}
