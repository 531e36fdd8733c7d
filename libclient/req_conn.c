/*
 * req_conn.c - one connection of a requester pool to one responder:
 * connecting (TCP or Unix), TLS, DHELLO offering REPLY, writing requests
 * (DATA with a request id, numbered on this connection alone), reading
 * REPLY and ERROR answers and matching them to their requests by id,
 * heartbeats, and what happens when the link breaks: every request in
 * flight on it fails at once with SIPC_EPEERGONE (none is resent), and
 * the connection is retried while the responder stays registered.
 *
 * A receiver that does not grant REPLY answers no requests: the
 * connection is closed and kept as "passive" so that it is not retried
 * until the registry says it went away.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../proto/addr.h"
#include "../proto/zframe.h"
#include "requester.h"

static void	q_connect(struct qconn *c);
static void	q_dhello(struct qconn *c);
static void	q_tls_step(struct qconn *c);
static void	q_down(struct qconn *c, const char *why);
static void	q_dhello_or_tls(struct qconn *c);

/* The largest payload taken on a connection: REPLY up to max_reply (checked
 * in on_answer), the other frames (ERROR with its text, OK(DHELLO), PING)
 * whatever max_reply is. */
static uint32_t
frame_limit(const struct rpc_pool *p)
{
	return p->opts.max_reply > SIPC_HELLO_FRAME_MAX ?
	    (uint32_t)p->opts.max_reply : SIPC_HELLO_FRAME_MAX;
}

/* ---- Requests in flight -------------------------------------------------- */

/*
 * Where request id reqid lives first in a table of mask + 1 slots.  Ids
 * are consecutive: Fibonacci hashing spreads them, so that clusters stay
 * short and a deletion moves few entries (with the ids themselves as
 * slots, the requests in flight formed one cluster, walked at every
 * answer).
 */
static uint32_t
tab_home(uint32_t reqid, uint32_t mask)
{
	/* The top log2(mask + 1) bits of the product (mask >= 63). */
	return (reqid * 0x9e3779b1u) >> __builtin_clz(mask);
}

static int
tab_grow(struct qconn *c)
{
	uint32_t i, j, n = c->tab_mask ? (c->tab_mask + 1) * 2 : 64;
	struct pend *t, *old = c->tab;

	if ((t = calloc(n, sizeof(*t))) == NULL)
		return -1;
	for (i = 0; old && i <= c->tab_mask; i++) {
		if (old[i].reqid == 0)
			continue;
		for (j = tab_home(old[i].reqid, n - 1); t[j].reqid;
		    j = (j + 1) & (n - 1))
			;
		t[j] = old[i];
	}
	free(old);
	c->tab = t;
	c->tab_mask = n - 1;
	return 0;
}

static struct pend *
tab_get(struct qconn *c, uint32_t reqid)
{
	uint32_t i;

	if (c->tab == NULL)
		return NULL;
	for (i = tab_home(reqid, c->tab_mask); c->tab[i].reqid;
	    i = (i + 1) & c->tab_mask)
		if (c->tab[i].reqid == reqid)
			return &c->tab[i];
	return NULL;
}

/* Removes slot e, moving back the entries after it that would no longer
 * be found (linear probing's deletion, no tombstones). */
static void
tab_del(struct qconn *c, struct pend *e)
{
	uint32_t i = (uint32_t)(e - c->tab), j = i, home;

	for (;;) {
		j = (j + 1) & c->tab_mask;
		if (c->tab[j].reqid == 0)
			break;
		home = tab_home(c->tab[j].reqid, c->tab_mask);
		/* Entry j may fill hole i when its home is not in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		c->tab[i] = c->tab[j];
		i = j;
	}
	c->tab[i].reqid = 0;
	c->tab[i].call = NULL;
	c->npend--;
}

void
qconn_forget(struct qconn *c, uint32_t reqid)
{
	struct pend *e;

	if ((e = tab_get(c, reqid)) != NULL)
		tab_del(c, e);
}

/* Every request in flight on c fails with error. */
static void
fail_all(struct qconn *c, int error)
{
	struct pend e;
	uint32_t i = 0;

	while (c->npend > 0 && i <= c->tab_mask) {
		if (c->tab[i].reqid == 0) {
			i++;
			continue;
		}
		e = c->tab[i];
		tab_del(c, &c->tab[i]);	/* may move another entry into i */
		call_answer(e.call, e.idx, error, NULL, 0, c->name);
	}
}

/* ---- Output -------------------------------------------------------------- */

/* Writes what waits: 0, or -1 when c went down. */
static int
q_write(struct qconn *c)
{
	int wrote = 0, rc;

	if (c->xp.fd == -1 || c->state < Q_HANDSHAKE)
		return 0;
	rc = outbuf_write(&c->out, &c->xp, &wrote);
	if (wrote)
		live_tx(&c->live, mono_ms());
	if (rc == -1) {
		q_down(c, strerror(errno));
		return -1;
	}
	wev_set(c->wev, &c->wev_armed, rc == 0);
	return 0;
}

/* The responder broke the protocol: tell it (best effort), go down. */
static void
q_fail(struct qconn *c, uint16_t code, const char *text)
{
	/* Requests not written yet fail in q_down() anyway. */
	outbuf_discard(&c->out);
	if (c->xp.fd != -1 && outbuf_error(&c->out, 0, code, text) == 0)
		(void)outbuf_write(&c->out, &c->xp, NULL);
	q_down(c, text);
}

int
qconn_send(struct qconn *c, struct call *k, uint32_t idx)
{
	struct rpc_pool *p = c->pool;
	struct wire_header h;
	uint8_t hdr[SIPC_HEADER_SIZE + SIPC_DATA_PREFIX];
	const uint8_t *body = k->body;
	uint8_t *z = NULL;
	size_t len = k->len, zlen;
	struct pend *e;
	uint32_t reqid;

	if (c->npend + 1 > (c->tab_mask + 1) / 2 && tab_grow(c) == -1)
		return -1;
	/* The next request id not in flight; 0 is never one. */
	do {
		if (++c->last_reqid == 0) {
			c->last_reqid = 1;
			c->wrapped = 1;
		}
		reqid = c->last_reqid;
	} while (tab_get(c, reqid) != NULL);
	memset(&h, 0, sizeof(h));
	h.version = SIPC_PROTO_VERSION_MAX;
	h.type = WIRE_DATA;
	h.reqid = reqid;
	if (p->opts.compress && c->zlib && len >= ZF_MIN_DATA &&
	    zf_deflate(body, len, &z, &zlen) == 0) {
		h.flags = WIRE_F_COMPRESSED;
		body = z;
		len = zlen;
	}
	h.len = (uint32_t)(SIPC_DATA_PREFIX + len);
	wire_header_encode(hdr, &h);
	wire_be64(hdr + SIPC_HEADER_SIZE, c->seq + 1);
	/* Both or neither: a frame is never cut in the output. */
	if (outbuf_add(&c->out, hdr, sizeof(hdr)) == -1) {
		free(z);
		return -1;
	}
	if (outbuf_add(&c->out, body, len) == -1) {
		c->out.len -= sizeof(hdr);	/* still the last bytes */
		free(z);
		return -1;
	}
	free(z);
	c->seq++;
	for (e = &c->tab[tab_home(reqid, c->tab_mask)]; e->reqid;
	    e = &c->tab[(uint32_t)(e - c->tab + 1) & c->tab_mask])
		;
	e->reqid = reqid;
	e->idx = idx;
	e->call = k;
	c->npend++;
	p->st_requests++;
	if (k->survey)
		k->asks[idx].reqid = reqid;
	else
		k->reqid = reqid;
	/* Written when this turn of the loop is over: several requests
	 * of one turn go in one write, and no answer runs in here. */
	event_active(c->wev, EV_WRITE, 0);
	return 0;
}

/* ---- Frames -------------------------------------------------------------- */

static void
on_ok(struct qconn *c, const struct wire_dhello_ok *ok)
{
	struct rpc_pool *p = c->pool;

	/* Only what we offered counts (a responder must not grant more). */
	c->zlib = p->opts.compress && (ok->features & WIRE_FEAT_ZLIB) != 0;
	c->max_message = ok->max_message;
	if (c->peer.instance == 0)
		c->peer.instance = ok->instance;
	frame_open(&c->fr, ok->version, c->zlib, frame_limit(p),
	    p->opts.max_reply);
	backoff_reset(&c->backoff);
	c->tried = 1;
	if ((ok->features & WIRE_FEAT_REPLY) == 0) {
		c->state = Q_PASSIVE;	/* closed once this read is parsed */
		return;
	}
	c->state = Q_READY;
	c->last_error = 0;
	timer_after(c->timer, live_next(&c->live) - mono_ms());
	pool_kick(p);
}

/* An answer to request h->reqid: the reply, or ERROR. */
static int
on_answer(struct qconn *c, const struct wire_header *h, const uint8_t *pl,
    const struct wire_error *e)
{
	struct rpc_pool *p = c->pool;
	struct pend *slot, en;
	char text[SIPC_ERROR_TEXT_MAX + 1];
	int error = 0;

	if (c->state != Q_READY) {
		q_fail(c, WIRE_ERR_UNEXPECTED, c->state == Q_PASSIVE ?
		    "REPLY, but REPLY was not granted" : "REPLY before "
		    "OK(DHELLO)");
		return -1;
	}
	if (h->reqid == 0) {
		q_fail(c, WIRE_ERR_UNEXPECTED, "an answer without a request "
		    "id");
		return -1;
	}
	if (e == NULL && h->len > p->opts.max_reply) {
		snprintf(text, sizeof(text), "REPLY of %u bytes; this "
		    "requester takes %zu", h->len, p->opts.max_reply);
		q_fail(c, WIRE_ERR_TOO_LARGE, text);
		return -1;
	}
	if ((slot = tab_get(c, h->reqid)) == NULL) {
		if (!c->wrapped && h->reqid > c->last_reqid) {
			snprintf(text, sizeof(text), "answer to request %u, "
			    "which was never sent", h->reqid);
			q_fail(c, WIRE_ERR_UNEXPECTED, text);
			return -1;
		}
		p->st_late++;	/* timed out or cancelled before */
		return 0;
	}
	en = *slot;
	tab_del(c, slot);
	if (e == NULL) {
		call_answer(en.call, en.idx, 0, pl, h->len, c->name);
		return 0;
	}
	switch (e->code) {
	case WIRE_ERR_NO_REPLY:
		error = SIPC_ENOREPLY;
		break;
	case WIRE_ERR_TOO_LARGE:
		error = SIPC_ETOOBIG;
		break;
	default:
		error = SIPC_EREMOTE;
		break;
	}
	call_answer(en.call, en.idx, error, (const uint8_t *)e->text.ptr,
	    error == SIPC_EREMOTE ? e->text.len : 0, c->name);
	return 0;
}

/* One frame from the responder: 0, or -1 when c went down. */
static int
q_frame(struct qconn *c, const struct frame *f)
{
	const struct wire_header *h = &f->h;
	struct wire_dhello_ok ok;
	struct wire_error e;
	uint64_t v;

	switch (h->type) {
	case WIRE_OK:
		if (c->state != Q_HANDSHAKE ||
		    wire_dec_ok_dhello(f->payload, h->len, &ok) != 0 ||
		    ok.version != SIPC_PROTO_VERSION_MAX) {
			q_fail(c, WIRE_ERR_UNEXPECTED, "bad answer to DHELLO");
			return -1;
		}
		if (c->peer.instance && ok.instance != c->peer.instance) {
			qconn_remove(c, SIPC_EPEERGONE);
			return -1;
		}
		on_ok(c, &ok);
		return 0;
	case WIRE_REPLY:
		return on_answer(c, h, f->payload, NULL);
	case WIRE_ERROR:
		if (wire_dec_error(f->payload, h->len, &e) != 0) {
			q_down(c, "malformed ERROR");
			return -1;
		}
		if (h->reqid != 0)
			return on_answer(c, h, NULL, &e);
		if (e.code == WIRE_ERR_WRONG_RECEIVER) {
			qconn_remove(c, SIPC_EPEERGONE);
			return -1;
		}
		if (e.code == WIRE_ERR_AUTH)
			c->last_error = SIPC_EAUTH;
		if (e.code == WIRE_ERR_AUTH || e.code == WIRE_ERR_VERSION)
			backoff_max(&c->backoff);
		q_down(c, "the responder closed with an error");
		return -1;
	case WIRE_ACK:
	case WIRE_PONG:
		if (wire_dec_u64(f->payload, h->len, &v) != 0) {
			q_fail(c, WIRE_ERR_BAD_MESSAGE, "malformed ACK or "
			    "PONG");
			return -1;
		}
		return 0;
	case WIRE_PING:
		if (wire_dec_u64(f->payload, h->len, &v) != 0) {
			q_fail(c, WIRE_ERR_BAD_MESSAGE, "malformed PING");
			return -1;
		}
		outbuf_u64(&c->out, WIRE_PONG, h->reqid, v);
		event_active(c->wev, EV_WRITE, 0);
		return 0;
	default:
		q_fail(c, WIRE_ERR_UNEXPECTED, "not a frame a requester "
		    "takes");
		return -1;
	}
}

/* Every whole frame read: 0, or -1 when c went down. */
static int
q_parse(struct qconn *c)
{
	struct frame_err err;
	struct frame f;
	size_t need;
	int rc;

	for (;;) {
		rc = frame_next(&c->fr, c->in.p + c->in.off,
		    c->in.len - c->in.off, &f, &need, &err);
		if (rc == -1) {
			q_fail(c, err.code, err.why);
			return -1;
		}
		if (rc == 0) {
			if (dp_buf_room(&c->in, need) == -1) {
				q_down(c, "out of memory");
				return -1;
			}
			break;
		}
		c->in.off += f.size;
		if (q_frame(c, &f) == -1)
			return -1;
	}
	dp_buf_settle(&c->in);
	return 0;
}

static void
q_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct qconn *c = arg;
	size_t space;
	uint8_t *p;
	ssize_t n;

	(void)fd;
	(void)what;
	if (c->state == Q_TLS) {
		q_tls_step(c);
		return;
	}
	for (;;) {
		p = dp_buf_space(&c->in, &space);
		n = xp_read(&c->xp, p, space);
		if (n == 0) {
			q_down(c, "closed by the responder");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				q_down(c, strerror(errno));
			break;
		}
		dp_buf_add(&c->in, (size_t)n, space);
		live_rx(&c->live, mono_ms());
		if (q_parse(c) == -1)
			return;
		if (c->state == Q_PASSIVE) {
			q_down(c, "not a responder");
			pool_kick(c->pool);
			return;
		}
		if ((size_t)n < space && xp_in_pending(&c->xp) == 0)
			break;
	}
	if (outbuf_pending(&c->out))
		q_write(c);
}

static void
q_writecb(evutil_socket_t fd, short what, void *arg)
{
	struct qconn *c = arg;
	socklen_t sl = sizeof(int);
	int err = 0;

	(void)what;
	if (c->state == Q_TLS) {
		q_tls_step(c);
		return;
	}
	if (c->state == Q_CONNECTING) {
		wev_set(c->wev, &c->wev_armed, 0);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		if (err == ECONNREFUSED) {
			if (c->pool->epm->ops->refused(c->pool->epm,
			    &c->peer))
				qconn_remove(c, SIPC_EPEERGONE);
			else
				q_down(c, "connection refused");
		} else if (err)
			q_down(c, strerror(err));
		else
			q_dhello_or_tls(c);
		return;
	}
	q_write(c);
}

/* ---- Life cycle ---------------------------------------------------------- */

static int
handshake_ms(const struct qconn *c)
{
	int ms = 3 * c->pool->opts.heartbeat_ms;

	return ms < 1000 ? 1000 : ms;
}

static void
q_close_fd(struct qconn *c)
{
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	c->wev_armed = 0;
	if (c->xp.fd != -1)
		xp_close(&c->xp);
	frame_free(&c->fr);
	dp_buf_free(&c->in);
	outbuf_free(&c->out);
}

/*
 * The link broke (or never came up): what was in flight fails now, at
 * once; the responder, still registered, is tried again after a backoff.
 * A passive one (no REPLY) is not: it answers no requests.
 */
static void
q_down(struct qconn *c, const char *why)
{
	int passive = c->state == Q_PASSIVE;

	(void)why;
	c->state = passive ? Q_PASSIVE : Q_DOWN;
	c->tried = 1;
	q_close_fd(c);
	fail_all(c, SIPC_EPEERGONE);
	if (!passive)
		timer_after(c->timer, backoff_next(&c->backoff));
	else
		event_del(c->timer);
	pool_kick(c->pool);
}

void
qconn_remove(struct qconn *c, int error)
{
	struct rpc_pool *p = c->pool;

	c->state = Q_DOWN;
	q_close_fd(c);
	TAILQ_REMOVE(&p->conns, c, entry);
	fail_all(c, error);
	event_free(c->timer);
	free(c->tab);
	free(c);
	pool_kick(p);
}

static void
q_dhello_or_tls(struct qconn *c)
{
	struct rpc_pool *p = c->pool;

	if (p->tls == NULL) {
		q_dhello(c);
		return;
	}
	if (xp_tls_client(&c->xp, p->tls, p->psk, p->tls_name,
	    &c->peer.ep) == -1) {
		q_down(c, "cannot set up TLS");
		return;
	}
	c->state = Q_TLS;
	event_add(c->rev, NULL);
	q_tls_step(c);
}

static void
q_tls_step(struct qconn *c)
{
	char err[400];

	switch (xp_client_step(&c->xp, c->pool->psk, c->wev, &c->wev_armed,
	    err, sizeof(err))) {
	case XP_DONE:
		q_dhello(c);
		return;
	case XP_FAILED:
		c->last_error = strncmp(err, "authentication failed", 21) ==
		    0 ? SIPC_EAUTH : SIPC_ETLS;
		backoff_max(&c->backoff);
		q_down(c, err);
		return;
	}
}

static void
q_dhello(struct qconn *c)
{
	struct rpc_pool *p = c->pool;
	struct wire_dhello m;
	uint8_t buf[512];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	c->state = Q_HANDSHAKE;
	live_start(&c->live, p->opts.heartbeat_ms, mono_ms(), 1);
	c->deadline = mono_ms() + handshake_ms(c);
	/* A new stream on each connection: a new id, numbers from 1, so
	 * the responder sees no gap and nothing twice. */
	c->sender_id = random_u64() | 1;
	c->seq = 0;
	c->last_reqid = 0;
	c->wrapped = 0;
	memset(&m, 0, sizeof(m));
	m.min_version = SIPC_PROTO_VERSION_MIN;
	m.max_version = SIPC_PROTO_VERSION_MAX;
	m.features = WIRE_FEAT_REPLY |
	    (p->opts.compress ? WIRE_FEAT_ZLIB : 0);
	m.sender_id = c->sender_id;
	m.instance = c->peer.instance;
	m.first_seq = 1;
	m.heartbeat_ms = (uint32_t)p->opts.heartbeat_ms;
	/* Answers say enough: few ACKs. */
	m.ack_bytes = UINT32_MAX;
	m.handle.ptr = p->handle;
	m.handle.len = p->hlen;
	if (wire_enc_dhello(&w, 1, &m) != 0 ||
	    outbuf_add(&c->out, w.data, w.len) == -1) {
		q_down(c, "cannot say DHELLO");
		return;
	}
	event_add(c->rev, NULL);
	timer_after(c->timer, handshake_ms(c));
	q_write(c);
}

static void
q_connect(struct qconn *c)
{
	struct rpc_pool *p = c->pool;
	struct event_base *base = p->epm->loop.base;
	struct sockaddr_storage ss;
	socklen_t sl = endpoint_to_sa(&c->peer.ep, &ss);
	int fd;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		q_down(c, strerror(errno));
		return;
	}
	tune_data_socket(fd, ss.ss_family != AF_UNIX);
	xp_init(&c->xp, fd);
	frame_init(&c->fr, frame_limit(p), 1);
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, q_readcb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, q_writecb, c);
	if (c->rev == NULL || c->wev == NULL ||
	    dp_buf_init(&c->in, QRBUF_MIN, QRBUF_MAX) == -1) {
		q_down(c, "out of memory");
		return;
	}
	c->state = Q_CONNECTING;
	c->deadline = mono_ms() + handshake_ms(c);
	timer_after(c->timer, handshake_ms(c));
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
		q_dhello_or_tls(c);
		return;
	}
	if (errno == EINPROGRESS) {
		wev_set(c->wev, &c->wev_armed, 1);
		return;
	}
	if ((errno == ECONNREFUSED || errno == ENOENT) &&
	    p->epm->ops->refused(p->epm, &c->peer)) {
		qconn_remove(c, SIPC_EPEERGONE);
		return;
	}
	q_down(c, strerror(errno));
}

static void
q_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct qconn *c = arg;
	int64_t now = mono_ms();

	(void)fd;
	(void)what;
	switch (c->state) {
	case Q_DOWN:
		q_connect(c);
		return;
	case Q_PASSIVE:
		return;
	case Q_READY:
		break;
	default:
		if (now >= c->deadline)
			q_down(c, "no answer");
		else
			timer_after(c->timer, c->deadline - now);
		return;
	}
	if (live_dead(&c->live, now)) {
		q_down(c, "heartbeats missed");
		return;
	}
	if (live_ping_due(&c->live, now)) {
		outbuf_u64(&c->out, WIRE_PING, 0, (uint64_t)now);
		if (q_write(c) == -1)
			return;
	}
	timer_after(c->timer, live_next(&c->live) - now);
}

struct qconn *
qconn_new(struct rpc_pool *p, const struct peer *peer)
{
	struct qconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->timer = evtimer_new(p->epm->loop.base, q_timercb, c)) ==
	    NULL) {
		free(c);
		return NULL;
	}
	c->pool = p;
	c->peer = *peer;
	c->confirmed = 1;
	c->state = Q_DOWN;
	addr_format_endpoint(&peer->ep, c->name, sizeof(c->name));
	xp_init(&c->xp, -1);
	backoff_init(&c->backoff, QRECONNECT_MIN_MS, QRECONNECT_MAX_MS);
	TAILQ_INSERT_TAIL(&p->conns, c, entry);
	timer_after(c->timer, 0);	/* connects: never frees c in here */
	return c;
}
