/*
 * ctlconn.c - blocking broker session for brokerctl (see ctlconn.h).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "../../common/clock.h"
#include "../../proto/addr.h"
#include "../../proto/frame.h"
#include "ctlconn.h"

#define CTL_DEFAULT_PORT	4455

static void
seterr(struct ctlconn *c, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, sizeof(c->err), "%s: %s", c->addr, msg);
}

/* Milliseconds left until deadline (-1 deadline: forever). */
static int
left_ms(int64_t deadline)
{
	int64_t l;

	if (deadline < 0)
		return -1;
	l = deadline - mono_ms();
	return l < 0 ? 0 : (int)l;
}

static int
wait_fd(struct ctlconn *c, short events, int64_t deadline)
{
	struct pollfd pfd = { c->fd, events, 0 };
	int rc;

	if ((events & POLLIN) && c->ssl && SSL_pending(c->ssl) > 0)
		return 0;

	do {
		rc = poll(&pfd, 1, left_ms(deadline));
	} while (rc == -1 && errno == EINTR);
	if (rc == 0)
		return 1;
	if (rc == -1) {
		seterr(c, "poll: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
connect_one(struct ctlconn *c, const struct addrinfo *ai, int64_t deadline)
{
	socklen_t sl = sizeof(int);
	int err = 0, on = 1, rc;

	c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (c->fd == -1) {
		seterr(c, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		seterr(c, "connect: %s", strerror(errno));
		goto fail;
	}
	if ((rc = wait_fd(c, POLLOUT, deadline)) != 0) {
		if (rc == 1)
			seterr(c, "connect: timed out after %d ms",
			    c->timeout_ms);
		goto fail;
	}
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	if (err) {
		seterr(c, "connect: %s", strerror(err));
		goto fail;
	}
	return 0;
fail:
	close(c->fd);
	c->fd = -1;
	return -1;
}

static int
send_all(struct ctlconn *c, const uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t w;
	int rc;

	while (n > 0) {
		if (c->ssl) {
			ERR_clear_error();
			w = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX :
			    (int)n);
			if (w <= 0) {
				rc = SSL_get_error(c->ssl, (int)w);
				if (rc != SSL_ERROR_WANT_READ &&
				    rc != SSL_ERROR_WANT_WRITE) {
					seterr(c, "TLS write failed");
					return -1;
				}
				errno = EAGAIN;
				w = -1;
			}
		} else
			w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno != EAGAIN) {
			seterr(c, "send: %s", strerror(errno));
			return -1;
		}
		if ((rc = wait_fd(c, POLLOUT, deadline)) != 0) {
			if (rc == 1)
				seterr(c, "send: timed out");
			return -1;
		}
	}
	return 0;
}

/* Reads exactly n bytes: 0, 1 on timeout, -1 on error or EOF. */
static int
recv_all(struct ctlconn *c, uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t r;
	int rc;

	while (n > 0) {
		if (c->ssl) {
			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX :
			    (int)n);
			if (r <= 0) {
				rc = SSL_get_error(c->ssl, (int)r);
				if (rc == SSL_ERROR_WANT_READ ||
				    rc == SSL_ERROR_WANT_WRITE) {
					errno = EAGAIN;
					r = -1;
				} else if (rc == SSL_ERROR_ZERO_RETURN ||
				    (rc == SSL_ERROR_SYSCALL && errno == 0)) {
					r = 0;
				} else {
					char why[300];

					tls_explain(c->ssl, c->psk, 0, why,
					    sizeof(why));
					seterr(c, "%s", why);
					return -1;
				}
			}
		} else
			r = recv(c->fd, p, n, 0);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r == 0) {
			seterr(c, "connection closed by the broker");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			seterr(c, "recv: %s", strerror(errno));
			return -1;
		}
		if ((rc = wait_fd(c, POLLIN, deadline)) != 0)
			return rc;
	}
	return 0;
}

/* Reads one frame: 0, 1 on timeout, -1 on error. */
static int
recv_frame(struct ctlconn *c, struct wire_header *h, int64_t deadline)
{
	size_t have = 0, need = SIPC_HEADER_SIZE;
	struct frame_err err;
	struct frame fr;
	uint8_t *n;
	int rc;

	for (;;) {
		if (need > c->incap) {
			if ((n = realloc(c->in, need)) == NULL) {
				seterr(c, "out of memory");
				return -1;
			}
			c->in = n;
			c->incap = need;
		}
		if ((rc = recv_all(c, c->in + have, need - have,
		    deadline)) != 0) {
			if (rc == 1 && have == 0)
				seterr(c, "no answer within %d ms",
				    c->timeout_ms);
			else if (rc == 1)
				seterr(c, "frame cut short");
			return have == 0 ? rc : -1;
		}
		have = need;
		if ((rc = frame_next(&c->framer, c->in, have, &fr, &need,
		    &err)) == 1)
			break;
		if (rc == -1) {
			seterr(c, "bad frame from the broker: %s", err.why);
			return -1;
		}
		/* Once a header arrived, the rest must follow within the
		 * timeout. */
		if (deadline < 0)
			deadline = mono_ms() + c->timeout_ms;
	}
	*h = fr.h;
	c->payload = fr.payload;
	return 0;
}

static int
answer_ping(struct ctlconn *c, const struct wire_header *h, int64_t deadline)
{
	struct wbuf w;
	uint64_t token;
	int rc;

	if (wire_dec_u64(c->payload, h->len, &token) != 0)
		return 0;
	wbuf_init(&w, 64);
	rc = wire_enc_u64(&w, WIRE_PONG, h->reqid, token) == 0 ?
	    send_all(c, w.data, w.len, deadline) : -1;
	wbuf_free(&w);
	return rc;
}

static void
error_text(struct ctlconn *c, const struct wire_header *h,
    struct wire_error *e)
{
	if (wire_dec_error(c->payload, h->len, e) != 0) {
		e->code = WIRE_ERR_INTERNAL;
		e->text.ptr = "malformed ERROR";
		e->text.len = 15;
	}
	seterr(c, "%s: %.*s", wire_errcode_name(e->code), (int)e->text.len,
	    e->text.ptr);
}

uint32_t
ctl_reqid(struct ctlconn *c)
{
	return ++c->next_reqid;
}

int
ctl_request(struct ctlconn *c, uint32_t reqid, struct wire_header *h,
    const uint8_t **payload, struct wire_error *e)
{
	int64_t deadline = mono_ms() + c->timeout_ms;
	int rc;

	if (send_all(c, c->out.data, c->out.len, deadline) == -1)
		return -1;
	for (;;) {
		if ((rc = recv_frame(c, h, deadline)) != 0)
			return -1;
		if (h->type == WIRE_PING) {
			if (answer_ping(c, h, deadline) == -1)
				return -1;
			continue;
		}
		if (h->type == WIRE_ERROR && (h->reqid == reqid ||
		    h->reqid == 0)) {
			error_text(c, h, e);
			return 1;
		}
		if (h->reqid != reqid || (h->type != WIRE_OK &&
		    h->type != WIRE_PONG))
			continue;	/* JOIN, LEAVE: not ours here */
		*payload = c->payload;
		return 0;
	}
}

int
ctl_next_event(struct ctlconn *c, int timeout_ms, struct wire_header *h,
    const uint8_t **payload)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	int rc;

	for (;;) {
		if ((rc = recv_frame(c, h, deadline)) != 0)
			return rc;
		if (h->type == WIRE_PING) {
			if (answer_ping(c, h, mono_ms() + c->timeout_ms) == -1)
				return -1;
			continue;
		}
		*payload = c->payload;
		return 0;
	}
}

/* The TLS handshake, bounded by the deadline: 0 or -1 (c->err). */
static int
tls_handshake(struct ctlconn *c, const char *host, const struct tls_conf *tc,
    int64_t deadline)
{
	char err[512];
	int rc, e;

	if ((c->ctx = tls_ctx_new(0, tc, err, sizeof(err))) == NULL) {
		seterr(c, "%s", err);
		return -1;
	}
	c->psk = tc->psk;
	if ((c->ssl = SSL_new(c->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (!tc->psk && tls_client_host(c->ssl, host) == -1)) {
		seterr(c, "cannot set up TLS");
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((rc = SSL_connect(c->ssl)) == 1)
			return 0;
		e = SSL_get_error(c->ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			rc = wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT, deadline);
			if (rc == 1) {
				seterr(c, "TLS handshake timed out");
				return -1;
			}
			if (rc == -1)
				return -1;
			continue;
		}
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			seterr(c, "%s", c->psk ? "authentication failed: the "
			    "broker closed the connection during the "
			    "handshake" : "connection closed during the TLS "
			    "handshake");
			return -1;
		}
		tls_explain(c->ssl, c->psk, 0, err, sizeof(err));
		seterr(c, "%s", err);
		return -1;
	}
}

int
ctl_open(struct ctlconn *c, const char *addr, int timeout_ms,
    const struct tls_conf *tc)
{
	struct addrinfo hints, *res, *ai;
	struct wire_header h;
	struct wire_hello hello;
	struct wire_error e;
	const uint8_t *p;
	char host[256], portstr[8], me[65];
	const char *why;
	int64_t deadline;
	uint16_t port = CTL_DEFAULT_PORT;
	uint32_t reqid;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	c->max_frame = SIPC_HELLO_FRAME_MAX;	/* until HELLO says more */
	frame_init(&c->framer, c->max_frame, 0);
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	wbuf_init(&c->out, 64 * 1024);
	if (addr_parse(addr, host, sizeof(host), &port, ADDR_PORT_OPTIONAL,
	    &why) == -1) {
		seterr(c, "%s", why);
		return -1;
	}
	deadline = mono_ms() + timeout_ms;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		seterr(c, "%s", gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (connect_one(c, ai, deadline) == 0)
			break;
	freeaddrinfo(res);
	if (c->fd == -1)
		return -1;
	if (tc && tls_handshake(c, host, tc, deadline) == -1)
		return -1;

	memset(&hello, 0, sizeof(hello));
	hello.min_version = SIPC_PROTO_VERSION_MIN;
	hello.max_version = SIPC_PROTO_VERSION_MAX;
	hello.features = WIRE_FEAT_ZLIB;
	hello.software.ptr = "brokerctl/" SIPC_VERSION;
	hello.software.len = (uint16_t)strlen(hello.software.ptr);
	if (gethostname(me, sizeof(me)) == 0) {
		me[sizeof(me) - 1] = '\0';
		hello.host.ptr = me;
		hello.host.len = (uint16_t)strlen(me);
	}
	hello.pid = (uint32_t)getpid();
	reqid = ctl_reqid(c);
	wbuf_reset(&c->out);
	if (wire_enc_hello(&c->out, reqid, &hello) != 0) {
		seterr(c, "cannot encode HELLO");
		return -1;
	}
	if ((rc = ctl_request(c, reqid, &h, &p, &e)) != 0)
		return -1;
	if (wire_dec_ok_hello(p, h.len, &c->hello) != 0) {
		seterr(c, "malformed answer to HELLO");
		return -1;
	}
	memcpy(c->software, c->hello.software.ptr, c->hello.software.len);
	c->software[c->hello.software.len] = '\0';
	c->hello.software.ptr = c->software;
	c->max_frame = c->hello.max_frame;
	frame_open(&c->framer, c->hello.version,
	    (c->hello.features & WIRE_FEAT_ZLIB) != 0, c->max_frame,
	    c->max_frame);
	return 0;
}

void
ctl_close(struct ctlconn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	c->ssl = NULL;
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	c->ctx = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	wbuf_free(&c->out);
	free(c->in);
	c->in = NULL;
	c->incap = 0;
	frame_free(&c->framer);
}
