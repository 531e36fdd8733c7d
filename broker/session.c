/*
 * session.c - one client connection of sipc-epmd: framing, the handshake
 * deadline, heartbeats, idle and output limits, and closing.
 *
 * A session reads frames into its input buffer (plain sessions with their
 * own reads and one write per loop turn, TLS sessions through a
 * bufferevent), checks each header before buffering the payload (a frame
 * longer than the limit closes the session without reading it), and hands
 * whole frames to dispatch.c.  Closing removes
 * the session's registrations and watches at once, flushes a last ERROR, and
 * frees the session later from the loop, never from inside a caller (Redis's
 * freeClientAsync): code that closes a session may go on reading it.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "../common/evframe.h"
#include "../common/tls.h"
#include "../proto/zframe.h"
#include "epmd.h"

/* How long a closing session may take to flush its last ERROR. */
#define CLOSE_FLUSH_MS	1000
/* Plain sessions: bytes asked of the input buffer per read (it may give
 * more), and reads per readiness event. */
#define READ_ASK	2048
#define READS_PER_EVENT	8


static void	session_free(struct session *s);
static void	session_end(struct session *s, uint16_t code, uint8_t reason,
		    int warn, const char *text);

static void
timer_arm(struct session *s, uint64_t delay_ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

static void
format_peer(struct session *s, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(s->peer, sizeof(s->peer), "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(s->peer, sizeof(s->peer), "[%s]:%u", host, port);
	} else
		snprintf(s->peer, sizeof(s->peer), "local");
	snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", host);
}

uint32_t
session_count_peer(struct broker *b, const char *addr)
{
	struct session *s;
	uint32_t n = 0;

	TAILQ_FOREACH(s, &b->sessions, entry)
		if (s->state != SESSION_CLOSING &&
		    strcmp(s->peer_addr, addr) == 0)
			n++;
	return n;
}

/*
 * Writes an ERROR straight to the socket of a connection that has no
 * session output (turned away, or plain text at a TLS port), and counts it.
 * Best effort: the socket buffer of a new connection is empty, so this
 * small write does not block.
 */
static void
write_error_now(struct broker *b, int fd, uint16_t code, const char *text)
{
	struct wbuf w;
	ssize_t n;

	wbuf_init(&w, 1024);
	if (wire_enc_error(&w, 0, code, text) == 0) {
		n = write(fd, w.data, w.len);
		(void)n;
	}
	wbuf_free(&w);
	b->st.errors_sent++;
	b->st.errors_by_code[code]++;
}

/* Turns a connection away before it becomes a session. */
static void
refuse(struct broker *b, int fd, const char *peer, const char *why)
{
	log_warnx("connection from %s refused: %s", peer, why);
	write_error_now(b, fd, WIRE_ERR_BUSY, why);
	close(fd);
}

static void	session_start_bev(struct session *s);
static void	session_peekcb(evutil_socket_t fd, short what, void *arg);
static void	session_readcb(struct bufferevent *bev, void *arg);
static void	session_writecb(struct bufferevent *bev, void *arg);
static void	session_eventcb(struct bufferevent *bev, short what, void *arg);
static void	session_timercb(evutil_socket_t fd, short what, void *arg);
static void	plain_readcb(evutil_socket_t fd, short what, void *arg);
static void	plain_writecb(evutil_socket_t fd, short what, void *arg);
static void	session_parse(struct session *s);

/* Frees what session_accept made, and closes the socket. */
static void
session_io_free(struct session *s)
{
	if (s->peek)
		event_free(s->peek);
	if (s->rev)
		event_free(s->rev);
	if (s->wev)
		event_free(s->wev);
	if (s->bev)
		bufferevent_free(s->bev);	/* its buffers with it */
	else {
		if (s->in)
			evbuffer_free(s->in);
		if (s->out)
			evbuffer_free(s->out);
		close(s->fd);
	}
	if (s->timer)
		event_free(s->timer);
}

void
session_accept(struct broker *b, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct session *s;
	char why[128];
	int on = 1;

	(void)salen;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warnx("accept: out of memory");
		close(fd);
		return;
	}
	format_peer(s, sa);
	if (b->shutting_down) {
		free(s);
		close(fd);
		return;
	}
	if (b->nsessions >= b->cfg.max_sessions) {
		snprintf(why, sizeof(why), "too many sessions (limit %u)",
		    b->cfg.max_sessions);
		refuse(b, fd, s->peer, why);
		free(s);
		return;
	}
	if (session_count_peer(b, s->peer_addr) >=
	    b->cfg.max_sessions_per_peer) {
		snprintf(why, sizeof(why), "too many sessions from %s "
		    "(limit %u)", s->peer_addr, b->cfg.max_sessions_per_peer);
		refuse(b, fd, s->peer, why);
		free(s);
		return;
	}
	/* Requests and answers are small: send each at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	s->b = b;
	s->fd = fd;
	s->id = ++b->next_session_id;
	s->state = SESSION_HANDSHAKE;
	s->max_frame = SIPC_HELLO_FRAME_MAX;
	frame_init(&s->framer, s->max_frame, 0);
	s->opened_ms = s->last_rx_ms = s->last_req_ms =
	    (uint64_t)mono_ms();
	reg_owner_init(&s->owner, s);
	s->timer = evtimer_new(b->base, session_timercb, s);
	if (b->tls)
		s->peek = event_new(b->base, fd, EV_READ, session_peekcb, s);
	else {
		s->in = evbuffer_new();
		s->out = evbuffer_new();
		s->rev = event_new(b->base, fd, EV_READ | EV_PERSIST,
		    plain_readcb, s);
		s->wev = event_new(b->base, fd, EV_WRITE | EV_PERSIST,
		    plain_writecb, s);
	}
	if (s->timer == NULL || (b->tls ? s->peek == NULL : (s->in == NULL ||
	    s->out == NULL || s->rev == NULL || s->wev == NULL))) {
		log_warnx("session from %s: out of memory", s->peer);
		session_io_free(s);
		free(s);
		return;
	}
	event_add(b->tls ? s->peek : s->rev, NULL);
	TAILQ_INSERT_TAIL(&b->sessions, s, entry);
	b->nsessions++;
	b->st.sessions_total++;
	timer_arm(s, b->cfg.handshake_ms);
	log_info("session %llu from %s opened", (unsigned long long)s->id,
	    s->peer);
}

static void
session_start_bev(struct session *s)
{
	s->in = bufferevent_get_input(s->bev);
	s->out = bufferevent_get_output(s->bev);
	bufferevent_setcb(s->bev, session_readcb, session_writecb,
	    session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0,
	    SIPC_HEADER_SIZE + s->max_frame);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/*
 * TLS ports: look at the first bytes.  A plain-text sipc client gets a
 * plain-text ERROR saying what it must do (instead of a TLS alert it
 * cannot read); anything else goes to the TLS handshake.
 */
static void
session_peekcb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct broker *b = s->b;
	uint8_t p[2];
	ssize_t n;
	SSL *ssl;

	(void)what;
	n = recv(fd, p, sizeof(p), MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		event_add(s->peek, NULL);
		return;
	}
	if (n <= 0) {
		session_close(s, 0, "closed before TLS");
		return;
	}
	if (p[0] == WIRE_MAGIC0) {
		/* Logged before the client can read the answer. */
		session_end(s, 0, WIRE_LEAVE_CLOSED, 1,
		    "plain-text client on a TLS port");
		write_error_now(b, fd, WIRE_ERR_AUTH, "this broker requires "
		    "TLS: connect with TLS (--tls-ca) or in password mode "
		    "(--password-file)");
		b->st.tls_failures++;
		return;
	}
	if ((ssl = SSL_new(b->tls)) == NULL ||
	    (s->bev = bufferevent_openssl_socket_new(b->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		if (ssl)
			SSL_free(ssl);
		session_close(s, 0, "out of memory");
		return;
	}
	session_start_bev(s);
}

/* Sets the payload limit once HELLO succeeded. */
void
session_ready(struct session *s)
{
	s->state = SESSION_READY;
	/* Sessions that came together ping apart. */
	live_start(&s->live, s->heartbeat_ms, mono_ms(), 1);
	s->max_frame = s->b->cfg.max_frame;
	frame_open(&s->framer, s->version, (s->features & WIRE_FEAT_ZLIB) != 0,
	    s->max_frame, s->max_frame);
	if (s->bev)
		bufferevent_setwatermark(s->bev, EV_READ, 0,
		    SIPC_HEADER_SIZE + s->max_frame);
	timer_arm(s, 0);
}

static int
session_write(struct session *s, const uint8_t *frame, size_t len)
{
	struct broker *b = s->b;
	struct wire_header h;
	uint8_t hdr[SIPC_HEADER_SIZE], *z;
	size_t zlen;
	int rc;

	if (s->out == NULL)
		return -1;
	/* Large frames go compressed when the client offered zlib. */
	if ((s->features & WIRE_FEAT_ZLIB) &&
	    len >= SIPC_HEADER_SIZE + ZF_MIN_BROKER &&
	    wire_header_decode(frame, UINT32_MAX, &h) == 0 &&
	    zf_deflate(frame + SIPC_HEADER_SIZE, len - SIPC_HEADER_SIZE, &z,
	    &zlen) == 0) {
		h.flags |= WIRE_F_COMPRESSED;
		h.len = (uint32_t)zlen;
		wire_header_encode(hdr, &h);
		rc = evbuffer_add(s->out, hdr, sizeof(hdr));
		if (rc == 0)
			rc = evbuffer_add(s->out, z, zlen);
		free(z);
		len = sizeof(hdr) + zlen;
	} else
		rc = evbuffer_add(s->out, frame, len);
	if (rc == -1) {
		session_close_later(s, WIRE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	b->st.frames_out++;
	b->st.bytes_out += len;
	live_tx(&s->live, mono_ms());
	/* Plain sessions write once per loop turn, whatever they got. */
	if (s->bev == NULL && !s->flushing) {
		if (TAILQ_EMPTY(&b->flushq))
			event_active(b->flush, EV_TIMEOUT, 0);
		TAILQ_INSERT_TAIL(&b->flushq, s, flush_entry);
		s->flushing = 1;
	}
	return 0;
}

int
session_send(struct session *s, const uint8_t *frame, size_t len)
{
	char text[128];

	if (s->state == SESSION_CLOSING || s->pending_close || s->out == NULL)
		return -1;
	if (session_write(s, frame, len) == -1)
		return -1;
	if (evbuffer_get_length(s->out) > SIPC_SESSION_OUTPUT_MAX) {
		snprintf(text, sizeof(text), "more than %d bytes of output "
		    "not read", SIPC_SESSION_OUTPUT_MAX);
		session_close_later(s, WIRE_ERR_SLOW, text);
		return -1;
	}
	return 0;
}

/* Encodes and queues an ERROR, also while closing. */
static void
send_error(struct session *s, uint32_t reqid, uint16_t code, const char *text)
{
	struct wbuf w;

	wbuf_init(&w, SIPC_HEADER_SIZE + 4 + SIPC_ERROR_TEXT_MAX);
	if (wire_enc_error(&w, reqid, code, text) == 0 &&
	    session_write(s, w.data, w.len) == 0) {
		s->b->st.errors_sent++;
		s->b->st.errors_by_code[code <= WIRE_ERR_LAST ? code : 0]++;
	}
	wbuf_free(&w);
}

void
session_error(struct session *s, uint32_t reqid, uint16_t code,
    const char *fmt, ...)
{
	char text[SIPC_ERROR_TEXT_MAX + 1];
	va_list ap;

	if (s->state == SESSION_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("session %llu: %s %s", (unsigned long long)s->id,
	    wire_errcode_name(code), text);
	send_error(s, reqid, code, text);
}

/*
 * The one place a session ends.  Registrations go first so that watchers
 * hear LEAVE before anything else can happen.
 */
static void
session_end(struct session *s, uint16_t code, uint8_t reason, int warn,
    const char *text)
{
	struct broker *b = s->b;
	size_t pending = 0;

	if (s->state == SESSION_CLOSING)
		return;
	if ((code && code != WIRE_ERR_SHUTDOWN) || warn)
		log_warnx("session %llu from %s closed: %s%s%s%s",
		    (unsigned long long)s->id, s->peer, text,
		    code ? " (" : "", code ? wire_errcode_name(code) : "",
		    code ? ")" : "");
	else
		log_info("session %llu from %s closed: %s",
		    (unsigned long long)s->id, s->peer, text);
	s->state = SESSION_CLOSING;
	if (b->cluster)
		cluster_session_end(b, s);
	reg_owner_clear(b->reg, &s->owner, reason);
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ);
	if (s->rev)
		event_del(s->rev);
	if (s->out) {
		if (code)
			send_error(s, 0, code, text);
		pending = evbuffer_get_length(s->out);
	}
	s->close_deadline_ms = (uint64_t)mono_ms() + CLOSE_FLUSH_MS;
	timer_arm(s, pending ? CLOSE_FLUSH_MS : 0);
}

void
session_close(struct session *s, uint16_t code, const char *fmt, ...)
{
	char text[SIPC_ERROR_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	session_end(s, code, WIRE_LEAVE_CLOSED, 0, text);
}

void
session_close_later(struct session *s, uint16_t code, const char *text)
{
	if (s->state == SESSION_CLOSING || s->pending_close)
		return;
	s->pending_close = 1;
	s->pending_code = code;
	snprintf(s->pending_text, sizeof(s->pending_text), "%s", text);
	event_active(s->timer, EV_TIMEOUT, 0);
}

static void
session_free(struct session *s)
{
	struct broker *b = s->b;

	TAILQ_REMOVE(&b->sessions, s, entry);
	b->nsessions--;
	if (s->flushing)
		TAILQ_REMOVE(&b->flushq, s, flush_entry);
	/* Normally empty already; covers a session freed at shutdown. */
	reg_owner_clear(b->reg, &s->owner, WIRE_LEAVE_CLOSED);
	session_io_free(s);
	frame_free(&s->framer);
	free(s);
	if (b->shutting_down && b->nsessions == 0 && b->shutdown_hold == 0)
		event_base_loopbreak(b->base);
}

void
session_close_all(struct broker *b, uint16_t code, const char *text)
{
	struct session *s;

	TAILQ_FOREACH(s, &b->sessions, entry)
		session_end(s, code, WIRE_LEAVE_CLOSED, 0, text);
}

void
session_free_all(struct broker *b)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&b->sessions)) != NULL)
		session_free(s);
	if (b->flush)
		event_free(b->flush);
	b->flush = NULL;
}

/* ---- Callbacks ----------------------------------------------------------- */

static void
session_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_parse(arg);
}

/* Dispatches every whole frame in the session's input. */
static void
session_parse(struct session *s)
{
	struct broker *b = s->b;
	struct frame_err err;
	struct frame fr;
	int rc;

	while (s->state != SESSION_CLOSING && !s->pending_close) {
		if ((rc = evframe_next(&s->framer, s->in, &fr, &err)) == 0)
			return;
		if (rc == -1) {
			session_close(s, err.code, "%s", err.why);
			return;
		}
		s->last_rx_ms = (uint64_t)mono_ms();
		live_rx(&s->live, (int64_t)s->last_rx_ms);
		b->st.frames_in++;
		b->st.bytes_in += fr.size;
		dispatch_frame(s, &fr.h, fr.payload);
		/* Sessions rarely compress: an inflate buffer is not kept. */
		if (fr.h.flags & WIRE_F_COMPRESSED)
			frame_free(&s->framer);
		evbuffer_drain(s->in, fr.size);
	}
}

static void
session_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == SESSION_CLOSING && evbuffer_get_length(s->out) == 0)
		session_free(s);
}

static void
session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	struct broker *b = s->b;
	unsigned long e, first = 0;
	char text[512];
	SSL *ssl;

	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake is done. */
		s->tls_done = 1;
		ssl = bufferevent_openssl_get_ssl(bev);
		log_debug("session %llu: %s established", (unsigned long long)
		    s->id, ssl ? SSL_get_version(ssl) : "TLS");
		return;
	}
	if (s->state == SESSION_CLOSING) {
		session_free(s);
		return;
	}
	if (b->tls && !s->tls_done) {
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			if (first == 0)
				first = e;
		ssl = bufferevent_openssl_get_ssl(bev);
		if (first == 0 && (what & BEV_EVENT_EOF))
			snprintf(text, sizeof(text), "closed during the TLS "
			    "handshake");
		else
			tls_explain_code(first, ssl ? SSL_get_verify_result(ssl) :
			    X509_V_OK, b->psk, 1, text, sizeof(text));
		ERR_clear_error();
		b->st.tls_failures++;
		session_end(s, 0, WIRE_LEAVE_CLOSED, 1, text);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(text, sizeof(text), "closed by peer");
	else
		snprintf(text, sizeof(text), "connection error: %s",
		    strerror(EVUTIL_SOCKET_ERROR()));
	session_close(s, 0, "%s", text);
}

/* ---- Plain sessions: socket I/O without a bufferevent -------------------- */

/*
 * Plain sessions do their own reads and writes: a request costs one read
 * and its answer one write, without the FIONREAD and the adding and
 * removing of a write event per answer that a bufferevent would make.
 */

/* Reads what the socket has, never past the frame limit, and dispatches. */
static void
plain_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct evbuffer_iovec v;
	size_t have, room;
	ssize_t n;
	int i;

	(void)what;
	for (i = 0; i < READS_PER_EVENT; i++) {
		have = evbuffer_get_length(s->in);
		room = SIPC_HEADER_SIZE + (size_t)s->max_frame;
		if (have >= room) {
			/* A whole frame waits undispatched: the session is
			 * on its way out. */
			event_del(s->rev);
			return;
		}
		room -= have;
		if (evbuffer_reserve_space(s->in, (ev_ssize_t)(room < READ_ASK ?
		    room : READ_ASK), &v, 1) != 1) {
			session_close(s, WIRE_ERR_INTERNAL, "out of memory");
			return;
		}
		if (v.iov_len > room)
			v.iov_len = room;
		n = read(fd, v.iov_base, v.iov_len);
		if (n == 0) {
			session_close(s, 0, "closed by peer");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				session_close(s, 0, "connection error: %s",
				    strerror(errno));
			return;
		}
		room = v.iov_len;
		v.iov_len = (size_t)n;
		evbuffer_commit_space(s->in, &v, 1);
		session_parse(s);
		if (s->state == SESSION_CLOSING || s->pending_close ||
		    (size_t)n < room)
			return;
	}
}

/*
 * Writes what the session has queued.  What the socket does not take waits
 * for it to drain (wev); a closing session is freed once all is out (or
 * when its peer is gone).
 */
static void
plain_flush(struct session *s)
{
	int n;

	while (evbuffer_get_length(s->out) > 0) {
		n = evbuffer_write(s->out, s->fd);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN) {
			/* Nobody to flush to any more. */
			evbuffer_drain(s->out, evbuffer_get_length(s->out));
			if (s->state != SESSION_CLOSING)
				session_close(s, 0, "connection error: %s",
				    strerror(errno));
			else
				session_free(s);
			return;
		}
		if (n <= 0) {
			event_add(s->wev, NULL);
			return;
		}
	}
	event_del(s->wev);
	if (s->state == SESSION_CLOSING)
		session_free(s);
}

static void
plain_writecb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	plain_flush(arg);
}

/* Once per loop turn: writes every plain session that got output. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct session *s;

	(void)fd;
	(void)what;
	while ((s = TAILQ_FIRST(&b->flushq)) != NULL) {
		TAILQ_REMOVE(&b->flushq, s, flush_entry);
		s->flushing = 0;
		plain_flush(s);
	}
}

int
session_init(struct broker *b)
{
	TAILQ_INIT(&b->flushq);
	b->flush = event_new(b->base, -1, 0, flush_cb, b);
	return b->flush ? 0 : -1;
}

static void
session_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct broker *b = s->b;
	uint64_t now = (uint64_t)mono_ms(), next, idle;
	struct wbuf *w = &b->out;

	(void)fd;
	(void)what;
	if (s->pending_close && s->state != SESSION_CLOSING) {
		session_end(s, s->pending_code, WIRE_LEAVE_CLOSED, 0,
		    s->pending_text);
		return;
	}
	switch (s->state) {
	case SESSION_CLOSING:
		if (now >= s->close_deadline_ms || s->out == NULL ||
		    evbuffer_get_length(s->out) == 0)
			session_free(s);
		else
			timer_arm(s, s->close_deadline_ms - now);
		return;
	case SESSION_HANDSHAKE:
		if (now - s->opened_ms >= b->cfg.handshake_ms) {
			b->st.handshake_timeouts++;
			session_close(s, WIRE_ERR_TIMEOUT, "no HELLO within "
			    "%u ms", b->cfg.handshake_ms);
			return;
		}
		timer_arm(s, s->opened_ms + b->cfg.handshake_ms - now);
		return;
	case SESSION_READY:
		break;
	}

	if (live_dead(&s->live, (int64_t)now)) {
		char text[96];

		b->st.heartbeat_expiries++;
		snprintf(text, sizeof(text), "no frame for %llu ms "
		    "(%d heartbeats of %u ms)",
		    (unsigned long long)(now - s->last_rx_ms),
		    SIPC_HEARTBEAT_MISSES, s->heartbeat_ms);
		session_end(s, WIRE_ERR_TIMEOUT, WIRE_LEAVE_EXPIRED, 0, text);
		return;
	}
	if (b->cfg.idle_ms && s->owner.nregs == 0 && s->owner.nwatches == 0) {
		idle = s->last_req_ms + b->cfg.idle_ms;
		if (now >= idle) {
			session_close(s, WIRE_ERR_TIMEOUT, "idle for %u ms "
			    "without registrations or watches",
			    b->cfg.idle_ms);
			return;
		}
	} else
		idle = UINT64_MAX;
	if (live_ping_due(&s->live, (int64_t)now)) {
		wbuf_reset(w);
		if (wire_enc_u64(w, WIRE_PING, 0, now) == 0)
			session_send(s, w->data, w->len);
	}
	next = (uint64_t)live_next(&s->live);
	if (idle < next)
		next = idle;
	timer_arm(s, next > now ? next - now : 0);
}
