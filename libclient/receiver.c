/*
 * receiver.c - receivers: listening, registering, and the inbound data
 * path.
 *
 * Each sender connection reads into one buffer (64 KiB, doubling up to
 * 256 KiB while a busy sender fills it at every read, and grown for one frame
 * that does not fit, up to the message limit) and parses every complete
 * frame in it, handing each message body to on_message straight from the
 * buffer: no copy between read() and the callback.  Messages are
 * acknowledged in batches (every ack_bytes, on PING, or 20 ms after the
 * first unacknowledged one), which is what lets a sender count losses
 * exactly.  Sequence numbers detect gaps (reported) and duplicates (never
 * delivered); the last number delivered from each sender is remembered so
 * that a sender that reconnects resends nothing twice.
 *
 * A receiver closed from one of its own callbacks is freed by a separate
 * event once the callback has returned.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/liveness.h"
#include "../proto/addr.h"
#include "internal.h"
#include "reader.h"
#include "xport.h"

/* Read buffer: starts small (idle connections cost little) and doubles,
 * up to RBUF_MAX, whenever a read fills it (a busy sender).  Not more:
 * the kernel copies into it, and a buffer that no longer fits the CPU's
 * cache next to the socket's own made TCP reads slower (1 MiB: 41-47k
 * messages of 64 KiB/s; 256 KiB: 48-61k, 2 vCPUs of 1 MiB L2 each). */
#define RBUF_MIN	(64 * 1024)
#define RBUF_MAX	(256 * 1024)
#define ACK_DELAY_MS	20
#define DHELLO_MS	5000	/* a sender must say DHELLO within this */
#define ACCEPT_PAUSE_MS	100
#define READS_PER_EVENT	8

enum rphase {
	R_PEEK,		/* TLS receiver: plain-text sipc, or TLS? */
	R_TLS,		/* TLS handshake */
	R_OPEN		/* frames: DHELLO first */
};

struct rconn {
	TAILQ_ENTRY(rconn)	 entry;
	struct sipc_receiver	*rx;
	struct xport		 xp;
	enum rphase		 phase;
	struct dp_reader	 rd;
	struct event		*rev;
	struct event		*wev;
	struct event		*timer;
	int			 wev_armed;
	int			 ready;		/* DHELLO done */
	int			 closing;	/* last ERROR queued */
	char			 peer[64];
	uint64_t		 sender_id;
	uint64_t		 expected;	/* next seq in order */
	uint64_t		 delivered;	/* last seq delivered */
	uint64_t		 acked;		/* last seq acknowledged */
	uint64_t		 unacked_bytes;
	uint32_t		 ack_bytes;
	struct dp_buf		 in;
	uint8_t			 out[1024];
	size_t			 out_len;
	size_t			 out_off;
	int64_t			 opened;
	struct liveness		 live;		/* from DHELLO on */
	int64_t			 ack_due;	/* 0: no ACK pending */
};

struct sipc_receiver {
	sipc_epm			*epm;
	char				 handle[SIPC_HANDLE_MAX + 1];
	uint16_t			 hlen;
	struct sipc_receiver_opts	 opts;
	SSL_CTX				*tls;		/* NULL: plain text */
	int				 psk;
	uint64_t			 instance;
	int				 lfd;
	struct event			*lev;
	struct event			*accept_resume;
	struct epm_reg			 reg;
	int				 registered;
	char				 endpoint[128];
	TAILQ_HEAD(, rconn)		 conns;
	/* Per sender id seen, oldest replaced first: the next seq
	 * expected (what lies before is delivered or reported as a gap) and
	 * the last seq delivered (0: none yet). */
	uint64_t			 mem_id[SIPC_SENDER_MEMORY];
	uint64_t			 mem_expected[SIPC_SENDER_MEMORY];
	uint64_t			 mem_delivered[SIPC_SENDER_MEMORY];
	size_t				 mem_next;
	atomic_uint_fast64_t		 st_messages;
	atomic_uint_fast64_t		 st_bytes;
	atomic_uint_fast64_t		 st_gaps;
	atomic_uint_fast64_t		 st_dups;
	atomic_uint_fast64_t		 st_senders;
	int				 dead;
	/* The registration's first answer, for sipc_receiver_new. */
	pthread_mutex_t			 mu;
	pthread_cond_t			 cv;
	int				 reg_done;
	int				 reg_rc;
	char				 reg_err[600];
};

static void	rconn_close(struct rconn *c, const char *why);
static void	rconn_schedule(struct rconn *c);
static void	rconn_secure(struct rconn *c);

/* ---- Sender memory ------------------------------------------------------- */

/* What is remembered of sender id: 1 with *expected and *delivered, or 0
 * for a sender not seen (or forgotten). */
static int
mem_get(struct sipc_receiver *rx, uint64_t id, uint64_t *expected,
    uint64_t *delivered)
{
	size_t i;

	for (i = 0; i < SIPC_SENDER_MEMORY; i++) {
		if (rx->mem_id[i] == id) {
			*expected = rx->mem_expected[i];
			*delivered = rx->mem_delivered[i];
			return 1;
		}
	}
	return 0;
}

static void
mem_put(struct sipc_receiver *rx, uint64_t id, uint64_t expected,
    uint64_t delivered)
{
	size_t i;

	for (i = 0; i < SIPC_SENDER_MEMORY; i++)
		if (rx->mem_id[i] == id)
			break;
	if (i == SIPC_SENDER_MEMORY) {
		i = rx->mem_next;
		rx->mem_next = (rx->mem_next + 1) % SIPC_SENDER_MEMORY;
		rx->mem_id[i] = id;
	}
	rx->mem_expected[i] = expected;
	rx->mem_delivered[i] = delivered;
}

/* ---- Output -------------------------------------------------------------- */

/* Appends an encoded frame to the output; 0, or -1 when it is full. */
static int
out_add(struct rconn *c, const struct wbuf *w)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (w->len > sizeof(c->out) - c->out_len)
		return -1;
	memcpy(c->out + c->out_len, w->data, w->len);
	c->out_len += w->len;
	return 0;
}

static int
out_u64(struct rconn *c, uint8_t type, uint32_t reqid, uint64_t v)
{
	uint8_t buf[32];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	if (wire_enc_u64(&w, type, reqid, v) != 0)
		return -1;
	return out_add(c, &w);
}

static void
queue_ack(struct rconn *c)
{
	if (c->delivered <= c->acked)
		return;
	if (out_u64(c, WIRE_ACK, 0, c->delivered) == 0) {
		c->acked = c->delivered;
		c->unacked_bytes = 0;
		c->ack_due = 0;
	}
}

/* Writes pending output.  Returns 0, or -1 when c was closed. */
static int
rconn_flush(struct rconn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = xp_write(&c->xp, c->out + c->out_off,
		    c->out_len - c->out_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			wev_set(c->wev, &c->wev_armed, 1);
			return 0;
		}
		if (n == -1) {
			rconn_close(c, strerror(errno));
			return -1;
		}
		c->out_off += (size_t)n;
		live_tx(&c->live, mono_ms());
	}
	c->out_off = c->out_len = 0;
	if (xp_out_pending(&c->xp)) {
		n = xp_flush(&c->xp);
		if (n == -1) {
			rconn_close(c, strerror(errno));
			return -1;
		}
		if (n == 1) {
			wev_set(c->wev, &c->wev_armed, 1);
			return 0;
		}
	}
	wev_set(c->wev, &c->wev_armed, 0);
	if (c->closing) {
		rconn_close(c, "protocol error");
		return -1;
	}
	return 0;
}

/* Sends ERROR and closes once it is written. */
static int
rconn_fail(struct rconn *c, uint16_t code, const char *text)
{
	uint8_t buf[SIPC_HEADER_SIZE + 4 + SIPC_ERROR_TEXT_MAX];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	c->out_off = c->out_len = 0;
	if (wire_enc_error(&w, 0, code, text) == 0)
		out_add(c, &w);
	c->closing = 1;
	if (c->rev)
		event_del(c->rev);
	rconn_flush(c);
	return -1;
}

/* ---- Frames -------------------------------------------------------------- */

/* A sender introduced itself: accept it, or say why not. */
static int
on_dhello(struct rconn *c, const struct wire_dhello *m)
{
	struct sipc_receiver *rx = c->rx;
	struct wire_dhello_ok ok;
	struct rconn *o, *on;
	char text[SIPC_HANDLE_MAX + 64];
	uint8_t buf[64];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };
	uint64_t expected = 0, last = 0, gap = 0;
	int v, known;

	v = m->max_version < SIPC_PROTO_VERSION_MAX ? m->max_version :
	    SIPC_PROTO_VERSION_MAX;
	if (v < m->min_version)
		return rconn_fail(c, WIRE_ERR_VERSION, "receiver speaks "
		    "protocol version 1 only");
	if (m->handle.len != rx->hlen ||
	    memcmp(m->handle.ptr, rx->handle, rx->hlen) != 0) {
		snprintf(text, sizeof(text), "this receiver is for handle "
		    "'%s'", rx->handle);
		return rconn_fail(c, WIRE_ERR_WRONG_RECEIVER, text);
	}
	if (m->instance && m->instance != rx->instance)
		return rconn_fail(c, WIRE_ERR_WRONG_RECEIVER, "another "
		    "receiver instance listens here now");
	/* What this sender already got here: from memory, or from a
	 * connection of it that this one replaces (closing it discards
	 * what it had not read: the sender counts those by last_seq). */
	known = mem_get(rx, m->sender_id, &expected, &last);
	for (o = TAILQ_FIRST(&rx->conns); o; o = on) {
		on = TAILQ_NEXT(o, entry);
		if (o != c && o->ready && o->sender_id == m->sender_id) {
			if (!known || o->expected > expected)
				expected = o->expected;
			if (o->delivered > last)
				last = o->delivered;
			known = 1;
			rconn_close(o, "replaced by a new connection");
		}
	}
	c->sender_id = m->sender_id;
	live_start(&c->live, m->heartbeat_ms < SIPC_MIN_HEARTBEAT_MS ?
	    SIPC_MIN_HEARTBEAT_MS : m->heartbeat_ms > SIPC_MAX_HEARTBEAT_MS ?
	    SIPC_MAX_HEARTBEAT_MS : m->heartbeat_ms, mono_ms(), 0);
	c->ack_bytes = m->ack_bytes;	/* 0: after every DATA */
	/* A sender seen before that starts past what we expect had
	 * messages for us that will never come: a gap (PROTOCOL.md 6.3). */
	c->expected = m->first_seq;
	if (known && m->first_seq > expected)
		gap = m->first_seq - expected;
	else if (known)
		c->expected = expected;
	c->delivered = c->acked = last;
	memset(&ok, 0, sizeof(ok));
	ok.version = (uint8_t)v;
	/* We inflate whatever the sender compresses. */
	ok.features = m->features & WIRE_FEAT_ZLIB;
	ok.instance = rx->instance;
	ok.last_seq = last;
	ok.max_message = (uint32_t)rx->opts.max_message;
	if (wire_enc_ok_dhello(&w, 1, &ok) != 0 || out_add(c, &w) != 0)
		return rconn_fail(c, WIRE_ERR_INTERNAL, "cannot answer");
	dp_reader_open(&c->rd, (ok.features & WIRE_FEAT_ZLIB) != 0);
	c->ready = 1;
	atomic_fetch_add(&rx->st_senders, 1);
	if (rx->opts.on_connect)
		rx->opts.on_connect(rx, c->sender_id, c->peer, rx->opts.arg);
	if (gap && !rx->dead) {
		atomic_fetch_add(&rx->st_gaps, gap);
		if (rx->opts.on_gap)
			rx->opts.on_gap(rx, c->sender_id, expected, gap,
			    rx->opts.arg);
	}
	/* Heartbeats from now on, at the interval just agreed. */
	rconn_schedule(c);
	return 0;
}

/* In order: deliver; ahead: report the gap, deliver; behind: drop. */
static void
on_data(struct rconn *c, const struct dp_event *ev)
{
	struct sipc_receiver *rx = c->rx;
	uint64_t gap;

	if (ev->seq < c->expected) {
		atomic_fetch_add(&rx->st_dups, 1);
		return;
	}
	if (ev->seq > c->expected) {
		gap = ev->seq - c->expected;
		atomic_fetch_add(&rx->st_gaps, gap);
		if (rx->opts.on_gap)
			rx->opts.on_gap(rx, c->sender_id, c->expected, gap,
			    rx->opts.arg);
		if (rx->dead)
			return;
	}
	c->expected = ev->seq + 1;
	c->delivered = ev->seq;
	atomic_fetch_add(&rx->st_messages, 1);
	atomic_fetch_add(&rx->st_bytes, ev->len);
	if (rx->opts.on_message)
		rx->opts.on_message(rx, rx->handle, ev->body, ev->len,
		    c->sender_id, ev->seq, rx->opts.arg);
	c->unacked_bytes += ev->wire_len;
	if (c->unacked_bytes >= c->ack_bytes)
		queue_ack(c);
}

/*
 * Handles every complete frame in the buffer, straight from it: 0, or -1
 * when c is closing or closed.
 */
static int
rconn_parse(struct rconn *c)
{
	struct sipc_receiver *rx = c->rx;
	struct dp_event ev;
	char why[128];
	uint16_t code;
	size_t need;
	int n;

	while (!rx->dead) {
		n = dp_read(&c->rd, c->in.p + c->in.off, c->in.len - c->in.off,
		    &ev, &need, &code, why, sizeof(why));
		if (n < 0)
			return rconn_fail(c, code, why);
		if (n == 0) {
			if (dp_buf_room(&c->in, need) == -1) {
				rconn_close(c, "out of memory");
				return -1;
			}
			break;
		}
		c->in.off += (size_t)n;
		switch (ev.type) {
		case DP_DHELLO:
			if (on_dhello(c, &ev.hello) == -1)
				return -1;
			break;
		case DP_DATA:
			on_data(c, &ev);
			break;
		case DP_PING:
			queue_ack(c);	/* a PING asks for acknowledgement */
			out_u64(c, WIRE_PONG, ev.reqid, ev.token);
			break;
		case DP_PONG:
			break;
		case DP_ERROR:
			rconn_close(c, "sender reported an error");
			return -1;
		}
	}
	dp_buf_settle(&c->in);
	return 0;
}

static void
rconn_schedule(struct rconn *c)
{
	int64_t now = mono_ms(), next;

	if (!c->ready) {
		timer_after(c->timer, c->opened + DHELLO_MS - now);
		return;
	}
	next = live_next(&c->live);
	if (c->ack_due && c->ack_due < next)
		next = c->ack_due;
	timer_after(c->timer, next - now);
}

static void
rconn_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;
	struct sipc_receiver *rx = c->rx;
	int64_t before = c->ack_due;
	size_t space;
	uint8_t *p;
	ssize_t n;
	int i;

	(void)what;
	(void)fd;
	if (rx->dead)
		return;
	if (c->phase != R_OPEN) {
		rconn_secure(c);
		return;
	}
	for (i = 0; i < READS_PER_EVENT; i++) {
		p = dp_buf_space(&c->in, &space);
		n = xp_read(&c->xp, p, space);
		if (n == 0) {
			rconn_close(c, "closed by the sender");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			rconn_close(c, strerror(errno));
			return;
		}
		dp_buf_add(&c->in, (size_t)n, space);
		live_rx(&c->live, mono_ms());
		if (rconn_parse(c) == -1 || rx->dead)
			return;
		/* TLS may hold decrypted bytes the socket no longer shows. */
		if ((size_t)n < space && xp_in_pending(&c->xp) == 0)
			break;
	}
	if (c->delivered > c->acked && c->ack_due == 0)
		c->ack_due = mono_ms() + ACK_DELAY_MS;
	if (rconn_flush(c) == -1)
		return;
	if (c->ack_due != before)
		rconn_schedule(c);
}

static void
rconn_writecb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;

	(void)fd;
	(void)what;
	if (c->rx->dead)
		return;
	if (c->phase != R_OPEN)
		rconn_secure(c);
	else
		rconn_flush(c);
}

/*
 * Before the first frame of a receiver with TLS: a plain-text sipc sender
 * gets a plain-text ERROR it can read (instead of a TLS alert it cannot);
 * anything else is a TLS handshake to drive.
 */
static void
rconn_secure(struct rconn *c)
{
	struct sipc_receiver *rx = c->rx;
	char err[400];
	uint8_t p;
	ssize_t n;

	if (c->phase == R_PEEK) {
		n = recv(c->xp.fd, &p, 1, MSG_PEEK);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			rconn_close(c, "closed before TLS");
			return;
		}
		if (p == WIRE_MAGIC0) {
			c->phase = R_OPEN;	/* to write the ERROR plainly */
			rconn_fail(c, WIRE_ERR_AUTH, "this receiver requires "
			    "TLS or password mode");
			return;
		}
		if (xp_tls_start(&c->xp, rx->tls, 1, NULL) == -1) {
			rconn_close(c, "cannot set up TLS");
			return;
		}
		c->phase = R_TLS;
	}
	switch (xp_handshake(&c->xp, rx->psk, 1, err, sizeof(err))) {
	case XP_DONE:
		c->phase = R_OPEN;
		wev_set(c->wev, &c->wev_armed, 0);
		return;
	case XP_WANT_WRITE:
		wev_set(c->wev, &c->wev_armed, 1);
		return;
	case XP_WANT_READ:
		return;
	default:
		/* The sender hears why from the TLS alert. */
		rconn_close(c, err);
		return;
	}
}

static void
rconn_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;
	int64_t now = mono_ms();

	(void)fd;
	(void)what;
	if (c->rx->dead)
		return;
	if (!c->ready) {
		if (now - c->opened >= DHELLO_MS) {
			rconn_fail(c, WIRE_ERR_TIMEOUT, "no DHELLO in time");
			return;
		}
		rconn_schedule(c);
		return;
	}
	if (live_dead(&c->live, now)) {
		rconn_close(c, "heartbeats missed");
		return;
	}
	if (c->ack_due && now >= c->ack_due)
		queue_ack(c);
	if (live_ping_due(&c->live, now))
		out_u64(c, WIRE_PING, 0, (uint64_t)now);
	if (rconn_flush(c) == -1)
		return;
	rconn_schedule(c);
}

static void
rconn_close(struct rconn *c, const char *why)
{
	struct sipc_receiver *rx = c->rx;

	(void)why;
	TAILQ_REMOVE(&rx->conns, c, entry);
	if (c->ready) {
		mem_put(rx, c->sender_id, c->expected, c->delivered);
		atomic_fetch_sub(&rx->st_senders, 1);
		if (rx->opts.on_disconnect && !rx->dead)
			rx->opts.on_disconnect(rx, c->sender_id, c->peer,
			    rx->opts.arg);
	}
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	event_free(c->timer);
	xp_close(&c->xp);
	dp_buf_free(&c->in);
	dp_reader_free(&c->rd);
	free(c);
}

static void
rconn_new(struct sipc_receiver *rx, int fd, const struct sockaddr *sa)
{
	struct event_base *base = rx->epm->loop.base;
	struct rconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    dp_buf_init(&c->in, RBUF_MIN, RBUF_MAX) == -1) {
		free(c);
		close(fd);
		return;
	}
	c->rx = rx;
	xp_init(&c->xp, fd);
	dp_reader_init(&c->rd, rx->opts.max_message);
	c->phase = rx->tls ? R_PEEK : R_OPEN;
	c->opened = mono_ms();
	live_start(&c->live, SIPC_DEF_HEARTBEAT_MS, c->opened, 0);
	sa_format(sa, c->peer, sizeof(c->peer));
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, rconn_readcb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, rconn_writecb, c);
	c->timer = evtimer_new(base, rconn_timercb, c);
	if (c->rev == NULL || c->wev == NULL || c->timer == NULL) {
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->timer)
			event_free(c->timer);
		dp_buf_free(&c->in);
		free(c);
		close(fd);
		return;
	}
	TAILQ_INSERT_TAIL(&rx->conns, c, entry);
	event_add(c->rev, NULL);
	rconn_schedule(c);
}

/* ---- Listening ----------------------------------------------------------- */

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;

	(void)fd;
	(void)what;
	if (!rx->dead)
		event_add(rx->lev, NULL);
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;
	struct sockaddr_storage ss;
	socklen_t sl;
	int cfd;

	(void)what;
	if (rx->dead)
		return;
	for (;;) {
		sl = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause, do not spin. */
				event_del(rx->lev);
				timer_after(rx->accept_resume,
				    ACCEPT_PAUSE_MS);
			}
			return;
		}
		tune_data_socket(cfd, ss.ss_family != AF_UNIX);
		rconn_new(rx, cfd, (struct sockaddr *)&ss);
	}
}

/* ---- Life cycle ---------------------------------------------------------- */

static void
reg_done(void *arg, int rc, const char *msg)
{
	struct sipc_receiver *rx = arg;

	pthread_mutex_lock(&rx->mu);
	rx->reg_done = 1;
	rx->reg_rc = rc;
	snprintf(rx->reg_err, sizeof(rx->reg_err), "%s", msg ? msg : "");
	pthread_cond_broadcast(&rx->cv);
	pthread_mutex_unlock(&rx->mu);
}

static void
start_on_loop(void *arg)
{
	struct sipc_receiver *rx = arg;
	struct event_base *base = rx->epm->loop.base;

	rx->lev = event_new(base, rx->lfd, EV_READ | EV_PERSIST, accept_cb,
	    rx);
	rx->accept_resume = evtimer_new(base, accept_resume_cb, rx);
	if (rx->lev == NULL || rx->accept_resume == NULL ||
	    event_add(rx->lev, NULL) == -1) {
		reg_done(rx, SIPC_ENOMEM, "out of memory");
		return;
	}
	memcpy(rx->reg.handle, rx->handle, rx->hlen + 1);
	rx->reg.hlen = rx->hlen;
	rx->reg.instance = rx->instance;
	rx->reg.done = reg_done;
	rx->reg.arg = rx;
	epm_reg_add(rx->epm, &rx->reg);
	rx->registered = 1;
}

static void
receiver_destroy(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;
	sipc_epm *epm = rx->epm;
	struct rconn *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&rx->conns)) != NULL)
		rconn_close(c, "receiver closed");
	if (rx->lev)
		event_free(rx->lev);
	if (rx->accept_resume)
		event_free(rx->accept_resume);
	if (rx->lfd != -1)
		close(rx->lfd);
	if (rx->tls)
		SSL_CTX_free(rx->tls);
	pthread_mutex_destroy(&rx->mu);
	pthread_cond_destroy(&rx->cv);
	free(rx);
	epm_release(epm);
}

struct close_args {
	struct sipc_receiver	*rx;
	int			 now;	/* free at once, not after callbacks */
};

static void
close_on_loop(void *arg)
{
	struct close_args *a = arg;
	struct sipc_receiver *rx = a->rx;
	struct timeval now = { 0, 0 };
	struct rconn *c;
	ssize_t n;

	if (rx->dead)
		return;
	/* Unregister first, so that no sender starts anew; then give each
	 * sender its last acknowledgement.  Connections are closed by the
	 * reaper: this may run inside one of their callbacks. */
	if (rx->registered)
		epm_reg_remove(rx->epm, &rx->reg);
	rx->registered = 0;
	if (rx->lev)
		event_del(rx->lev);
	if (rx->reg.staged[0])
		unlink(rx->reg.staged);
	TAILQ_FOREACH(c, &rx->conns, entry) {
		queue_ack(c);
		if (c->phase == R_OPEN && c->out_len > c->out_off) {
			n = xp_write(&c->xp, c->out + c->out_off,
			    c->out_len - c->out_off);
			if (n > 0 && xp_out_pending(&c->xp))
				xp_flush(&c->xp);
			(void)n;	/* best effort: we hang up next */
		}
	}
	rx->dead = 1;
	if (a->now || event_base_once(rx->epm->loop.base, -1, EV_TIMEOUT,
	    receiver_destroy, rx, &now) == -1)
		receiver_destroy(-1, 0, rx);
}

void
sipc_receiver_opts_init(struct sipc_receiver_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_message = SIPC_DEF_MESSAGE_MAX;
}

int
sipc_receiver_new(const char *handle, sipc_epm *epm,
    const struct sipc_receiver_opts *opts, sipc_receiver **out)
{
	struct sipc_receiver *rx;
	struct epm_listen l;
	int64_t deadline;
	size_t hlen;
	int rc, timeout;

	clearerr_sipc();
	if (handle == NULL || out == NULL)
		return seterr(SIPC_EINVAL, "handle and out must not be NULL");
	hlen = strlen(handle);
	if (!wire_handle_valid(handle, hlen))
		return seterr(SIPC_EINVAL, "invalid handle '%s': 1 to %d "
		    "bytes of UTF-8 without control characters", handle,
		    SIPC_HANDLE_MAX);
	if ((rx = calloc(1, sizeof(*rx))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	if (opts)
		rx->opts = *opts;
	else
		sipc_receiver_opts_init(&rx->opts);
	if (rx->opts.max_message == 0 ||
	    rx->opts.max_message > SIPC_MAX_MESSAGE_MAX) {
		free(rx);
		return seterr(SIPC_EINVAL, "max_message must be 1 byte to "
		    "1 GiB");
	}
	if ((rc = security_ctx(&rx->opts.security, 1, &rx->tls,
	    &rx->psk)) != 0) {
		free(rx);
		return rc;
	}
	/* Strings in the options are used during this call only. */
	rx->opts.listen_address = rx->opts.register_address =
	    rx->opts.allowed_ports = NULL;
	memset(&rx->opts.security, 0, sizeof(rx->opts.security));
	memcpy(rx->handle, handle, hlen + 1);
	rx->hlen = (uint16_t)hlen;
	rx->instance = random_u64();
	rx->lfd = -1;
	TAILQ_INIT(&rx->conns);
	pthread_mutex_init(&rx->mu, NULL);
	cond_init_mono(&rx->cv);
	if ((rc = epm_acquire(epm, &rx->epm)) != 0) {
		pthread_mutex_destroy(&rx->mu);
		pthread_cond_destroy(&rx->cv);
		if (rx->tls)
			SSL_CTX_free(rx->tls);
		free(rx);
		return rc;
	}
	memset(&l, 0, sizeof(l));
	l.handle = rx->handle;
	l.hlen = rx->hlen;
	l.instance = rx->instance;
	if (opts) {
		l.listen_address = opts->listen_address;
		l.register_address = opts->register_address;
		l.allowed_ports = opts->allowed_ports;
	}
	if ((rc = rx->epm->ops->listen(rx->epm, &l)) != 0)
		goto fail;
	rx->lfd = l.fd;
	rx->reg.ep = l.ep;
	memcpy(rx->reg.staged, l.staged, sizeof(l.staged));
	addr_format_endpoint(&rx->reg.ep, rx->endpoint, sizeof(rx->endpoint));
	loop_call(&rx->epm->loop, start_on_loop, rx);

	/* Wait for the registration to be accepted. */
	timeout = rx->epm->opts.connect_timeout_ms > 5000 ?
	    rx->epm->opts.connect_timeout_ms : 5000;
	deadline = deadline_after(timeout);
	pthread_mutex_lock(&rx->mu);
	while (!rx->reg_done)
		if (cond_wait_until(&rx->cv, &rx->mu, deadline) != 0)
			break;
	pthread_mutex_unlock(&rx->mu);
	if (!rx->reg_done) {
		rc = seterr(SIPC_ETIMEDOUT, "registration of '%s' not answered "
		    "within %d ms", handle, timeout);
		sipc_receiver_close(rx);
		return rc;
	}
	if (rx->reg_rc != 0) {
		rc = seterr(rx->reg_rc, "register '%s' at %s: %s", handle,
		    rx->endpoint, rx->reg_err);
		sipc_receiver_close(rx);
		return rc;
	}
	*out = rx;
	return 0;
fail:
	if (rx->lfd != -1)
		close(rx->lfd);
	if (rx->reg.staged[0])
		unlink(rx->reg.staged);
	epm_release(rx->epm);
	pthread_mutex_destroy(&rx->mu);
	pthread_cond_destroy(&rx->cv);
	if (rx->tls)
		SSL_CTX_free(rx->tls);
	free(rx);
	return rc;
}

void
sipc_receiver_close(sipc_receiver *rx)
{
	struct close_args a = { rx, 0 };
	sipc_epm *hold;

	if (rx == NULL)
		return;
	if (loop_in_thread(&rx->epm->loop)) {
		/* Perhaps inside one of rx's callbacks: freed after it. */
		close_on_loop(&a);
		return;
	}
	/*
	 * From another thread no callback of rx can be running: it goes at
	 * once.  The EPM is released here rather than on its I/O thread, so
	 * that when rx was its last user that thread has stopped before this
	 * returns: nothing outlives a program that closed what it opened.
	 */
	a.now = 1;
	epm_acquire(rx->epm, &hold);
	loop_call(&hold->loop, close_on_loop, &a);
	epm_release(hold);
}

int
sipc_receiver_endpoint(const sipc_receiver *rx, char *buf, size_t size)
{
	if (rx == NULL || buf == NULL || strlen(rx->endpoint) >= size)
		return seterr(SIPC_EINVAL, "buffer too small");
	memcpy(buf, rx->endpoint, strlen(rx->endpoint) + 1);
	return 0;
}

int
sipc_receiver_stats(sipc_receiver *rx, struct sipc_receiver_stats *st)
{
	if (rx == NULL || st == NULL)
		return seterr(SIPC_EINVAL, "NULL argument");
	st->messages = atomic_load(&rx->st_messages);
	st->bytes = atomic_load(&rx->st_bytes);
	st->gaps = atomic_load(&rx->st_gaps);
	st->duplicates = atomic_load(&rx->st_dups);
	st->senders = atomic_load(&rx->st_senders);
	return 0;
}
