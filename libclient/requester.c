/*
 * requester.c - requests and surveys: the public API, the pools that
 * share connections to responders, and calls (PROTOCOL.md 6.6).
 *
 * A call is made on the caller's thread (the request copied once) and
 * queued to the I/O thread, which sends it to the ready responder with
 * the fewest requests in flight (ties: round-robin), or, for a survey, to
 * every ready responder.  While the registry's first snapshot has not
 * come, or responders are still connecting, a call waits for them (within
 * its deadline); when nothing is left to wait for and no responder is
 * ready, it fails with SIPC_ENORESPONDER.  Each call has one timer, its
 * deadline.  Answers are never delivered from inside a connection's
 * reading: a call that ends goes on its EPM's done list, and one event
 * runs the callbacks after, so that a callback may close anything.
 * The public API is requester_api.c's.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "requester.h"

static void	call_dispatch(struct call *k);
static void	survey_start(struct call *k);
static void	call_timeout(evutil_socket_t, short, void *);

/* k's timer, ms from now. */
static void
arm(struct call *k, int ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&k->timer, &tv);
	k->timer_set = 1;
}

static const struct sipc_reply rpc_nomem = { sizeof(rpc_nomem), SIPC_ENOMEM,
    "", 0, "" };

/* ---- Ending calls -------------------------------------------------------- */

void
call_unlink(struct call *k)
{
	sipc_requester *rq = k->rq;
	size_t i;

	TAILQ_REMOVE(&rq->calls, k, entry);
	rq->outstanding--;
	if (k->waiting)
		TAILQ_REMOVE(&rq->pool->waiting, k, wentry);
	if (k->done)
		TAILQ_REMOVE(&rq->epm->rpc_done, k, wentry);
	k->waiting = k->done = 0;
	if (k->timer_set)
		event_del(&k->timer);
	k->timer_set = 0;
	if (k->c)
		qconn_forget(k->c, k->reqid);
	k->c = NULL;
	for (i = 0; i < k->asked; i++)
		if (k->asks[i].c)
			qconn_forget(k->asks[i].c, k->asks[i].reqid);
}

void
call_free(struct call *k)
{
	size_t i;

	for (i = 0; i < k->asked; i++)
		free(k->asks[i].data);
	free(k->asks);
	free(k->replies);
	free(k->res);
	free(k);
}

/* k is answered: its callback runs from the EPM's done event. */
static void
call_finish(struct call *k)
{
	sipc_epm *epm = k->rq->epm;

	if (k->waiting)
		TAILQ_REMOVE(&k->rq->pool->waiting, k, wentry);
	k->waiting = 0;
	if (k->timer_set)
		event_del(&k->timer);
	k->timer_set = 0;
	k->done = 1;
	TAILQ_INSERT_TAIL(&epm->rpc_done, k, wentry);
	event_active(epm->rpc_done_ev, EV_READ, 0);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	sipc_epm *epm = arg;
	struct sipc_survey s;
	struct call *k;
	sipc_requester *rq;
	size_t i;

	(void)fd;
	(void)what;
	while ((k = TAILQ_FIRST(&epm->rpc_done)) != NULL) {
		rq = k->rq;
		call_unlink(k);
		if (k->survey) {
			for (i = 0; i < k->asked; i++) {
				k->replies[i].size = sizeof(k->replies[i]);
				k->replies[i].responder = k->asks[i].name;
			}
			memset(&s, 0, sizeof(s));
			s.size = sizeof(s);
			s.asked = k->asked;
			s.answered = k->answered;
			s.replies = k->replies;
			k->scb(rq, k->id, &s, k->arg);
		} else
			k->cb(rq, k->id, k->res ? k->res : &rpc_nomem, k->arg);
		/* rq may be gone now; k is ours alone. */
		call_free(k);
	}
}

/* A single call ends with error (no reply data). */
static void
call_error(struct call *k, int error, const char *from)
{
	/* Without memory done_cb still has a static answer. */
	if ((k->res = calloc(1, sizeof(*k->res) + strlen(from) + 1)) ==
	    NULL) {
		call_finish(k);
		return;
	}
	k->res->size = sizeof(*k->res);
	k->res->error = error;
	k->res->data = (char *)(k->res + 1);
	k->res->responder = (char *)(k->res + 1);
	memcpy(k->res + 1, from, strlen(from) + 1);
	k->rq->pool->st_failed++;
	call_finish(k);
}

void
call_answer(struct call *k, uint32_t idx, int error, const uint8_t *data,
    size_t len, const char *from)
{
	struct rpc_pool *p = k->rq->pool;
	struct sipc_reply *r;
	size_t nlen = strlen(from) + 1;

	if (k->survey) {
		struct ask *a = &k->asks[idx];

		if (a->c == NULL)
			return;		/* answered already */
		a->c = NULL;
		r = &k->replies[idx];
		r->error = error;
		if (len && (a->data = malloc(len)) == NULL)
			r->error = SIPC_ENOMEM;
		else if (len)
			memcpy(a->data, data, len);
		r->data = a->data;
		r->len = r->error == SIPC_ENOMEM ? 0 : len;
		if (error != SIPC_EPEERGONE)
			k->answered++;
		p->st_replies += error != SIPC_EPEERGONE;
		for (idx = 0; idx < k->asked; idx++)
			if (k->asks[idx].c)
				return;
		call_finish(k);
		return;
	}
	k->c = NULL;
	if (error == SIPC_EPEERGONE && (k->flags & SIPC_REQUEST_IDEMPOTENT) &&
	    !k->retried) {
		/* Marked safe to run twice: once more, elsewhere. */
		k->retried = 1;
		call_dispatch(k);
		return;
	}
	if (error == 0 || error == SIPC_ENOREPLY || error == SIPC_EREMOTE ||
	    error == SIPC_ETOOBIG)
		p->st_replies++;
	if (error == SIPC_EPEERGONE) {
		call_error(k, error, from);
		return;
	}
	if ((r = malloc(sizeof(*r) + len + nlen)) == NULL) {
		call_error(k, SIPC_ENOMEM, "");
		return;
	}
	r->size = sizeof(*r);
	r->error = error;
	r->data = (uint8_t *)(r + 1);
	r->len = len;
	if (len)
		memcpy(r + 1, data, len);
	r->responder = (char *)(r + 1) + len;
	memcpy((char *)(r + 1) + len, from, nlen);
	k->res = r;
	call_finish(k);
}

static void
call_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct call *k = arg;
	size_t i;

	(void)fd;
	(void)what;
	k->timer_set = 0;
	if (k->survey && k->waiting) {
		/* Half the deadline went by waiting for responders still
		 * connecting: ask those ready now, for the other half. */
		TAILQ_REMOVE(&k->rq->pool->waiting, k, wentry);
		k->waiting = 0;
		arm(k, (int)(k->deadline - mono_ms()));
		survey_start(k);
		return;
	}
	if (!k->survey) {
		if (k->c)
			qconn_forget(k->c, k->reqid);
		k->c = NULL;
		call_error(k, SIPC_ETIMEDOUT, "");
		return;
	}
	for (i = 0; i < k->asked; i++) {
		if (k->asks[i].c == NULL)
			continue;
		qconn_forget(k->asks[i].c, k->asks[i].reqid);
		k->asks[i].c = NULL;
		k->replies[i].error = SIPC_ETIMEDOUT;
	}
	call_finish(k);
}

/* ---- Choosing responders ------------------------------------------------- */

/* 1 while the answer to "is there a responder?" may still change soon:
 * no snapshot yet, or a connection attempt not ended. */
static int
pool_pending(const struct rpc_pool *p)
{
	const struct qconn *c;

	if (!p->synced)
		return 1;
	TAILQ_FOREACH(c, &p->conns, entry)
		if ((c->state != Q_READY && c->state != Q_PASSIVE &&
		    !c->tried) || (c->state > Q_DOWN && c->state < Q_READY))
			return 1;
	return 0;
}

/* Why no responder can be asked: SIPC_EAUTH or SIPC_ETLS when one
 * refused us so, else SIPC_ENORESPONDER. */
static int
pool_error(const struct rpc_pool *p)
{
	const struct qconn *c;

	TAILQ_FOREACH(c, &p->conns, entry)
		if (c->last_error)
			return c->last_error;
	return SIPC_ENORESPONDER;
}

/* The ready responder with the fewest requests in flight; among equals,
 * the next after the last one chosen. */
static struct qconn *
pick(struct rpc_pool *p, size_t len)
{
	struct qconn *c, *best = NULL;
	unsigned i = 0, besti = 0, n = 0;

	TAILQ_FOREACH(c, &p->conns, entry)
		n++;
	TAILQ_FOREACH(c, &p->conns, entry) {
		if (c->state == Q_READY && len <= c->max_message &&
		    (best == NULL || c->npend < best->npend ||
		    (c->npend == best->npend &&
		    (i + n - p->rr % n) % n < (besti + n - p->rr % n) % n))) {
			best = c;
			besti = i;
		}
		i++;
	}
	if (best)
		p->rr = besti + 1;
	return best;
}

static int
too_big_for_all(struct rpc_pool *p, size_t len)
{
	struct qconn *c;
	int ready = 0;

	TAILQ_FOREACH(c, &p->conns, entry) {
		if (c->state != Q_READY)
			continue;
		ready = 1;
		if (len <= c->max_message)
			return 0;
	}
	return ready;
}

static void
survey_start(struct call *k)
{
	struct rpc_pool *p = k->rq->pool;
	struct qconn *c;
	size_t n = 0, i = 0;

	TAILQ_FOREACH(c, &p->conns, entry)
		n += c->state == Q_READY;
	if (n > 0) {
		k->asks = calloc(n, sizeof(*k->asks));
		k->replies = calloc(n, sizeof(*k->replies));
		if (k->asks == NULL || k->replies == NULL) {
			k->asked = 0;
			call_finish(k);
			return;
		}
	}
	TAILQ_FOREACH(c, &p->conns, entry) {
		if (c->state != Q_READY)
			continue;
		k->asks[i].c = c;
		memcpy(k->asks[i].name, c->name, sizeof(k->asks[i].name));
		k->replies[i].error = SIPC_ETIMEDOUT;
		i++;
	}
	k->asked = n;
	for (i = 0; i < n; i++) {
		c = k->asks[i].c;
		if (k->len > c->max_message) {
			call_answer(k, (uint32_t)i, SIPC_ETOOBIG, NULL, 0,
			    c->name);
		} else if (qconn_send(c, k, (uint32_t)i) == -1)
			call_answer(k, (uint32_t)i, SIPC_ENOMEM, NULL, 0,
			    c->name);
		if (k->done)
			return;
	}
	if (n == 0)
		call_finish(k);
}

/* Sends k now, waits with it, or fails it. */
static void
call_dispatch(struct call *k)
{
	struct rpc_pool *p = k->rq->pool;
	struct qconn *c;

	if (k->survey) {
		if (!pool_pending(p)) {
			if (k->halved) {	/* its whole deadline again */
				event_del(&k->timer);
				arm(k, (int)(k->deadline - mono_ms()));
			}
			survey_start(k);
			return;
		}
		/* Waits for responders still connecting, half its time at
		 * most (call_timeout). */
		if (!k->halved) {
			k->halved = 1;
			event_del(&k->timer);
			arm(k, k->timeout_ms / 2);
		}
		goto wait;
	}
	if ((c = pick(p, k->len)) != NULL) {
		if (qconn_send(c, k, 0) == -1) {
			call_error(k, SIPC_ENOMEM, "");
			return;
		}
		k->c = c;
		return;
	}
	if (pool_pending(p))
		goto wait;
	/* A retry with nowhere to go fails as its first try did. */
	call_error(k, too_big_for_all(p, k->len) ? SIPC_ETOOBIG :
	    k->retried ? SIPC_EPEERGONE : pool_error(p), "");
	return;
wait:
	if (!k->waiting)
		TAILQ_INSERT_TAIL(&p->waiting, k, wentry);
	k->waiting = 1;
}

void
pool_kick(struct rpc_pool *p)
{
	TAILQ_HEAD(, call) w;
	struct call *k;

	if (TAILQ_EMPTY(&p->waiting))
		return;
	TAILQ_INIT(&w);
	TAILQ_CONCAT(&w, &p->waiting, wentry);
	while ((k = TAILQ_FIRST(&w)) != NULL) {
		TAILQ_REMOVE(&w, k, wentry);
		k->waiting = 0;
		call_dispatch(k);
	}
}

/* ---- Pools --------------------------------------------------------------- */

static struct qconn *
find_conn(struct rpc_pool *p, const struct peer *peer)
{
	struct qconn *c;

	TAILQ_FOREACH(c, &p->conns, entry) {
		if (peer->id && c->peer.id == peer->id)
			return c;
		if (endpoint_equal(&c->peer.ep, &peer->ep) &&
		    (peer->instance == 0 || c->peer.instance == 0 ||
		    c->peer.instance == peer->instance))
			return c;
	}
	return NULL;
}

static void
w_join(void *arg, const struct peer *peer)
{
	struct rpc_pool *p = arg;
	struct qconn *c = find_conn(p, peer);

	if (c && peer->instance && c->peer.instance &&
	    c->peer.instance != peer->instance) {
		/* Another process has the old one's address now. */
		qconn_remove(c, SIPC_EPEERGONE);
		c = NULL;
	}
	if (c == NULL) {
		qconn_new(p, peer);
		return;
	}
	c->peer.id = peer->id;
	c->confirmed = 1;
}

static void
w_leave(void *arg, const struct peer *peer)
{
	struct rpc_pool *p = arg;
	struct qconn *c = find_conn(p, peer);

	if (c)
		qconn_remove(c, SIPC_EPEERGONE);
}

static void
w_resync(void *arg)
{
	struct rpc_pool *p = arg;
	struct qconn *c;

	TAILQ_FOREACH(c, &p->conns, entry)
		c->confirmed = 0;
}

static void
w_synced(void *arg)
{
	struct rpc_pool *p = arg;
	struct qconn *c, *cn;

	p->synced = 1;
	/* Gone from the registry and not answering: forget them.  Those
	 * answering stay until they fail or leave. */
	for (c = TAILQ_FIRST(&p->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (!c->confirmed && c->state != Q_READY)
			qconn_remove(c, SIPC_EPEERGONE);
	}
	pool_kick(p);
}

static int
same_opts(const struct sipc_requester_opts *a,
    const struct sipc_requester_opts *b)
{
	return a->max_reply == b->max_reply &&
	    a->heartbeat_ms == b->heartbeat_ms && a->compress == b->compress;
}

/* On the I/O thread: rq joins the pool of its handle and options. */
void
attach_on_loop(void *arg)
{
	struct attach *a = arg;
	sipc_epm *epm = a->rq->epm;
	struct rpc_pool *p;

	if (epm->rpc_done_ev == NULL &&
	    (epm->rpc_done_ev = event_new(epm->loop.base, -1, EV_READ,
	    done_cb, epm)) == NULL) {
		a->rc = SIPC_ENOMEM;
		return;
	}
	TAILQ_FOREACH(p, &epm->rpc_pools, entry)
		if (p->shared && a->tls == NULL && !a->psk &&
		    strcmp(p->handle, a->handle) == 0 &&
		    same_opts(&p->opts, a->opts))
			break;
	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL) {
			a->rc = SIPC_ENOMEM;
			return;
		}
		p->epm = epm;
		p->hlen = (uint16_t)strlen(a->handle);
		memcpy(p->handle, a->handle, p->hlen + 1);
		p->opts = *a->opts;
		p->tls = a->tls;
		p->psk = a->psk;
		p->shared = a->tls == NULL && !a->psk;
		snprintf(p->tls_name, sizeof(p->tls_name), "%s",
		    a->tls_name ? a->tls_name : "");
		a->tls = NULL;
		TAILQ_INIT(&p->conns);
		TAILQ_INIT(&p->waiting);
		p->watch.handle = p->handle;
		p->watch.hlen = p->hlen;
		p->watch.on_join = w_join;
		p->watch.on_leave = w_leave;
		p->watch.on_resync = w_resync;
		p->watch.on_synced = w_synced;
		p->watch.arg = p;
		TAILQ_INSERT_TAIL(&epm->rpc_pools, p, entry);
		epm_watch_add(epm, &p->watch);
	}
	p->refs++;
	a->rq->pool = p;
}

static void
free_dead(evutil_socket_t fd, short what, void *arg)
{
	sipc_epm *epm = arg;
	struct rpc_pool *p;

	(void)fd;
	(void)what;
	while ((p = TAILQ_FIRST(&epm->rpc_dead)) != NULL) {
		TAILQ_REMOVE(&epm->rpc_dead, p, entry);
		free(p);
	}
}

void
pool_free(struct rpc_pool *p)
{
	sipc_epm *epm = p->epm;
	struct qconn *c;

	epm_watch_remove(epm, &p->watch);
	TAILQ_REMOVE(&epm->rpc_pools, p, entry);
	while ((c = TAILQ_FIRST(&p->conns)) != NULL)
		qconn_remove(c, SIPC_ECLOSED);
	if (p->tls)
		SSL_CTX_free(p->tls);
	p->tls = NULL;
	/* Its watch may be the next one a registry callback walks to
	 * (a sender's callback closing the last requester): the memory
	 * goes on the loop's next turn, or with the EPM. */
	TAILQ_INSERT_TAIL(&epm->rpc_dead, p, entry);
	loop_later(&epm->loop, 0, free_dead, epm);
}

void
rpc_fini(sipc_epm *epm)
{
	struct rpc_pool *p;

	while ((p = TAILQ_FIRST(&epm->rpc_pools)) != NULL)
		pool_free(p);
	free_dead(-1, 0, epm);
	if (epm->rpc_done_ev)
		event_free(epm->rpc_done_ev);
	epm->rpc_done_ev = NULL;
}

/* ---- Starting calls ------------------------------------------------------ */

/* k is made: its deadline runs from now, it goes out or waits. */
void
call_start(struct call *k)
{
	sipc_requester *rq = k->rq;
	struct timeval tv;

	TAILQ_INSERT_TAIL(&rq->calls, k, entry);
	rq->outstanding++;
	k->deadline = mono_ms() + k->timeout_ms;
	evtimer_assign(&k->timer, rq->epm->loop.base, call_timeout, k);
	/* Requests with one timeout expire in the order they started:
	 * libevent's common timeout keeps them in a list, not its heap. */
	if (k->timeout_ms != rq->ct_ms) {
		tv.tv_sec = k->timeout_ms / 1000;
		tv.tv_usec = (k->timeout_ms % 1000) * 1000;
		rq->ct_tv = event_base_init_common_timeout(rq->epm->loop.base,
		    &tv);
		rq->ct_ms = rq->ct_tv ? k->timeout_ms : 0;
		if (rq->ct_tv == NULL) {
			evtimer_add(&k->timer, &tv);
			goto added;
		}
	}
	evtimer_add(&k->timer, rq->ct_tv);
added:
	k->timer_set = 1;
	call_dispatch(k);
}

