/*
 * receiver_conn.c - one connection from one sender to a receiver: the TLS
 * handshake (or the plain-text refusal), DHELLO, reading frames into one
 * buffer and delivering DATA straight from it, gaps and duplicates, ACKs,
 * heartbeats, and the receiver's memory of the senders it saw.  Listening,
 * registering and the public API are receiver.c's.
 *
 * Requests (DATA with a request id, on a connection that granted REPLY)
 * go to responder.c instead of on_message.
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
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "pull.h"
#include "receiver.h"

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

/* Output waiting beyond this: stop reading until it is written. */
#define OUT_PAUSE	(4 * 1024 * 1024)

int
rconn_out(struct rconn *c, const void *frame, size_t len)
{
	if (outbuf_add(&c->out, frame, len) == -1)
		return -1;
	if (outbuf_pending(&c->out) > OUT_PAUSE)
		rconn_pause(c);
	return 0;
}

void
rconn_pause(struct rconn *c)
{
	if (!c->paused && c->rev)
		event_del(c->rev);
	c->paused = 1;
}

void
rconn_resume(struct rconn *c)
{
	if (!c->paused || c->closing ||
	    c->inflight >= SIPC_RESPONDER_INFLIGHT_MAX / 2 ||
	    outbuf_pending(&c->out) > OUT_PAUSE || rx_pull_full(c->rx))
		return;
	c->paused = 0;
	/* What the peer sent meanwhile (its PINGs too) waits unread: the
	 * pause is ours, not its silence. */
	live_rx(&c->live, mono_ms());
	event_add(c->rev, NULL);
	/* What was read before the pause may hold whole frames; the ring
	 * (a pause in pull mode stops its drain too) may hold messages. */
	event_active(c->rev, EV_READ, 0);
	if (c->shm_ev)
		event_active(c->shm_ev, EV_READ, 0);
}

void
queue_ack(struct rconn *c)
{
	if (c->delivered <= c->acked)
		return;
	if (outbuf_u64(&c->out, WIRE_ACK, 0, c->delivered) == 0) {
		c->acked = c->delivered;
		c->unacked_bytes = 0;
		c->ack_due = 0;
	}
}

int
rconn_flush(struct rconn *c)
{
	int wrote = 0, rc = outbuf_write(&c->out, &c->xp, &wrote);

	if (wrote)
		live_tx(&c->live, mono_ms());
	if (rc == -1) {
		rconn_close(c, strerror(errno));
		return -1;
	}
	wev_set(c->wev, &c->wev_armed, rc == 0);
	if (rc == 0)
		return 0;
	if (c->paused)
		rconn_resume(c);
	if (c->closing) {
		rconn_close(c, "protocol error");
		return -1;
	}
	return 0;
}

/* Sends ERROR and closes once it is written. */
int
rconn_fail(struct rconn *c, uint16_t code, const char *text)
{
	outbuf_discard(&c->out);	/* what waits goes unsaid */
	outbuf_error(&c->out, 0, code, text);
	c->closing = 1;
	if (c->rev)
		event_del(c->rev);
	rconn_flush(c);
	return -1;
}

void
rconn_error(struct rconn *c, uint32_t reqid, uint16_t code, const char *text)
{
	outbuf_error(&c->out, reqid, code, text);
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
	/* We inflate whatever the sender compresses; a responder answers
	 * requests. */
	ok.features = m->features & WIRE_FEAT_ZLIB;
	if (rx->opts.on_request)
		ok.features |= m->features & WIRE_FEAT_REPLY;
	/* Same host, plain Unix socket, a sender (not a requester). */
	if (!(m->features & WIRE_FEAT_REPLY) && rshm_grant(c, m->features))
		ok.features |= WIRE_FEAT_SHM;
	ok.instance = rx->instance;
	ok.last_seq = last;
	ok.max_message = (uint32_t)rx->opts.max_message;
	if (wire_enc_ok_dhello(&w, 1, &ok) != 0 ||
	    rconn_out(c, w.data, w.len) != 0)
		return rconn_fail(c, WIRE_ERR_INTERNAL, "cannot answer");
	dp_reader_open(&c->rd, (ok.features & WIRE_FEAT_ZLIB) != 0);
	c->rd.reply = (ok.features & WIRE_FEAT_REPLY) != 0;
	c->zlib = (ok.features & WIRE_FEAT_ZLIB) != 0;
	c->shm = c->rd.shm = (ok.features & WIRE_FEAT_SHM) != 0;
	c->ready = 1;
	/* A requester (it offers REPLY; senders never do) is no sender:
	 * not counted, not remembered, no on_connect. */
	if ((c->requester = (m->features & WIRE_FEAT_REPLY) != 0)) {
		rconn_schedule(c);
		return 0;
	}
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
void
rconn_data(struct rconn *c, const struct dp_event *ev)
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
	if (ev->reqid != 0)
		rsp_request(c, ev);	/* the reader let only granted ones by */
	else {
		atomic_fetch_add(&rx->st_messages, 1);
		atomic_fetch_add(&rx->st_bytes, ev->len);
	}
	if (ev->reqid == 0 && rx->opts.on_message) {
		struct sipc_message m = { sizeof(m), rx->handle, ev->body,
		    ev->len, c->sender_id, ev->seq };

		rx->opts.on_message(rx, &m, rx->opts.arg);
	} else if (ev->reqid == 0 && rx->pull &&
	    rx_pull_message(rx, c->sender_id, ev->seq, ev->body, ev->len))
		rconn_pause(c);		/* the program's queue is full */
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

	while (!rx->dead && !c->paused) {
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
			rconn_data(c, &ev);
			break;
		case DP_PING:
			queue_ack(c);	/* a PING asks for acknowledgement */
			outbuf_u64(&c->out, WIRE_PONG, ev.reqid, ev.token);
			break;
		case DP_PONG:
			break;
		case DP_SHM_RING:
			if (rshm_on_ring(c, &ev.ring) == -1)
				return -1;
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
	/* Resumed after a pause: first what was read before it. */
	if (c->in.len > c->in.off && rconn_parse(c) == -1)
		return;
	for (i = 0; i < READS_PER_EVENT && !c->paused && !rx->dead; i++) {
		p = dp_buf_space(&c->in, &space);
		n = xp_read(&c->xp, p, space);
		if (n == 0) {
			/* Every whole message in the ring, then the end. */
			if (c->shm && rshm_drain(c, 1) == -1)
				return;
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
	/* Paused, we do not read its PINGs: not its silence. */
	if (!c->paused && live_dead(&c->live, now)) {
		rconn_close(c, "heartbeats missed");
		return;
	}
	if (c->ack_due && now >= c->ack_due)
		queue_ack(c);
	if (live_ping_due(&c->live, now))
		outbuf_u64(&c->out, WIRE_PING, 0, (uint64_t)now);
	if (rconn_flush(c) == -1)
		return;
	rconn_schedule(c);
}

void
rconn_close(struct rconn *c, const char *why)
{
	struct sipc_receiver *rx = c->rx;

	(void)why;
	TAILQ_REMOVE(&rx->conns, c, entry);
	if (c->ready && !c->requester) {
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
	c->rev = c->wev = c->timer = NULL;
	rshm_close(c);
	xp_close(&c->xp);
	dp_buf_free(&c->in);
	dp_reader_free(&c->rd);
	outbuf_free(&c->out);
	c->closed = 1;
	if (c->refs > 0)	/* requests unanswered: they still point here */
		TAILQ_INSERT_TAIL(&rx->zombies, c, entry);
	else
		free(c);
}

void
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
	rshm_init(c);
	c->xp.fdpass = sa->sa_family == AF_UNIX && rx->tls == NULL;
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
