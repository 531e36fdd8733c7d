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
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "requester.h"

static void	call_dispatch(struct call *k);

static const struct sipc_reply rpc_nomem = { sizeof(rpc_nomem), SIPC_ENOMEM,
    "", 0, "" };

/* ---- Ending calls -------------------------------------------------------- */

/* Takes k out of every list and timer, with no callback. */
static void
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

static void
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
		if (pool_pending(p))
			goto wait;
		survey_start(k);
		return;
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
	call_error(k, too_big_for_all(p, k->len) ? SIPC_ETOOBIG :
	    pool_error(p), "");
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

struct attach {
	sipc_requester		*rq;
	const char		*handle;
	const struct sipc_requester_opts *opts;
	SSL_CTX			*tls;
	int			 psk;
	const char		*tls_name;
	int			 rc;
};

/* On the I/O thread: rq joins the pool of its handle and options. */
static void
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
pool_free(struct rpc_pool *p)
{
	struct qconn *c;

	epm_watch_remove(p->epm, &p->watch);
	TAILQ_REMOVE(&p->epm->rpc_pools, p, entry);
	while ((c = TAILQ_FIRST(&p->conns)) != NULL)
		qconn_remove(c, SIPC_ECLOSED);
	if (p->tls)
		SSL_CTX_free(p->tls);
	free(p);
}

void
rpc_fini(sipc_epm *epm)
{
	struct rpc_pool *p;

	while ((p = TAILQ_FIRST(&epm->rpc_pools)) != NULL)
		pool_free(p);
	if (epm->rpc_done_ev)
		event_free(epm->rpc_done_ev);
	epm->rpc_done_ev = NULL;
}

/* ---- Submission ---------------------------------------------------------- */

static void
call_start(struct call *k)
{
	sipc_requester *rq = k->rq;
	struct timeval tv;

	TAILQ_INSERT_TAIL(&rq->calls, k, entry);
	rq->outstanding++;
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

/* Takes the calls other threads queued. */
static void
take_queued(sipc_requester *rq)
{
	struct call *k, *next;

	pthread_mutex_lock(&rq->qmu);
	k = rq->qhead;
	rq->qhead = NULL;
	rq->qtail = &rq->qhead;
	pthread_mutex_unlock(&rq->qmu);
	for (; k; k = next) {
		next = k->next;
		call_start(k);
	}
}

static void
queue_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	take_queued(arg);
}

static int
submit(sipc_requester *rq, const void *data, size_t len, int timeout_ms,
    int flags, int survey, void *cb, void *arg, uint64_t *id)
{
	struct call *k;
	int empty;

	if (rq == NULL || cb == NULL || (data == NULL && len > 0) ||
	    timeout_ms <= 0)
		return seterr(SIPC_EINVAL, "rq or callback NULL, data NULL "
		    "with len, or timeout_ms <= 0");
	if (len > SIPC_MAX_MESSAGE_MAX)
		return seterr(SIPC_ETOOBIG, "request of %zu bytes", len);
	if (rq->closing)
		return seterr(SIPC_ECLOSED, "requester closing");
	if ((k = calloc(1, sizeof(*k) + len)) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	k->rq = rq;
	k->id = atomic_fetch_add(&rq->next_id, 1);
	k->survey = survey;
	k->flags = flags;
	k->timeout_ms = timeout_ms;
	if (survey)
		k->scb = (sipc_survey_fn)cb;
	else
		k->cb = (sipc_reply_fn)cb;
	k->arg = arg;
	k->len = len;
	if (len)
		memcpy(k->body, data, len);
	if (id)
		*id = k->id;
	if (loop_in_thread(&rq->epm->loop)) {
		take_queued(rq);	/* keep the order of submission */
		call_start(k);
		return 0;
	}
	pthread_mutex_lock(&rq->qmu);
	empty = rq->qhead == NULL;
	*rq->qtail = k;
	rq->qtail = &k->next;
	if (empty)
		event_active(rq->qev, EV_READ, 0);
	pthread_mutex_unlock(&rq->qmu);
	return 0;
}

/* ---- Public API ---------------------------------------------------------- */

void
sipc_requester_opts_init_size(struct sipc_requester_opts *o, size_t size)
{
	struct sipc_requester_opts d;

	memset(&d, 0, sizeof(d));
	d.max_reply = SIPC_DEF_MESSAGE_MAX;
	d.heartbeat_ms = SIPC_DEF_HEARTBEAT_MS;
	sized_out(o, size, &d, sizeof(d));
	if (size >= sizeof(size_t))
		o->size = size;
}

int
sipc_requester_new(const char *handle, sipc_epm *epm,
    const struct sipc_requester_opts *opts, sipc_requester **out)
{
	struct sipc_requester_opts o;
	struct attach a;
	sipc_requester *rq;
	int rc;

	clearerr_sipc();
	if (handle == NULL || out == NULL)
		return seterr(SIPC_EINVAL, "handle and out must not be NULL");
	if (!wire_handle_valid(handle, strlen(handle)))
		return seterr(SIPC_EINVAL, "invalid handle '%s'", handle);
	sipc_requester_opts_init(&o);
	if (opts && (rc = sized_in(&o, sizeof(o), opts,
	    "sipc_requester_opts")) != 0)
		return rc;
	if (o.max_reply == 0 || o.max_reply > SIPC_MAX_MESSAGE_MAX ||
	    o.heartbeat_ms < SIPC_MIN_HEARTBEAT_MS ||
	    o.heartbeat_ms > SIPC_MAX_HEARTBEAT_MS)
		return seterr(SIPC_EINVAL, "requester options out of range "
		    "(max_reply 1 byte to 1 GiB, heartbeat_ms %d..%d)",
		    SIPC_MIN_HEARTBEAT_MS, SIPC_MAX_HEARTBEAT_MS);
	memset(&a, 0, sizeof(a));
	if ((rc = security_ctx(&o.security, 0, &a.tls, &a.psk)) != 0)
		return rc;
	a.tls_name = o.security.tls_server_name;
	memset(&o.security, 0, sizeof(o.security));
	if ((rq = calloc(1, sizeof(*rq))) == NULL) {
		rc = seterr(SIPC_ENOMEM, "out of memory");
		goto fail;
	}
	TAILQ_INIT(&rq->calls);
	atomic_init(&rq->next_id, 1);
	pthread_mutex_init(&rq->qmu, NULL);
	rq->qtail = &rq->qhead;
	if ((rc = epm_acquire(epm, &rq->epm)) != 0) {
		pthread_mutex_destroy(&rq->qmu);
		free(rq);
		goto fail;
	}
	rq->qev = event_new(rq->epm->loop.base, -1, EV_READ, queue_cb, rq);
	a.rq = rq;
	a.handle = handle;
	a.opts = &o;
	if (rq->qev)
		loop_call(&rq->epm->loop, attach_on_loop, &a);
	if (rq->qev == NULL || rq->pool == NULL) {
		if (rq->qev)
			event_free(rq->qev);
		epm_release(rq->epm);
		pthread_mutex_destroy(&rq->qmu);
		free(rq);
		rc = seterr(SIPC_ENOMEM, "out of memory");
		goto fail;
	}
	*out = rq;
	return 0;
fail:
	if (a.tls)
		SSL_CTX_free(a.tls);
	return rc;
}

/* On the I/O thread: cancels what rq has outstanding, frees it. */
static void
close_on_loop(void *arg)
{
	sipc_requester *rq = arg;
	struct rpc_pool *p = rq->pool;
	sipc_epm *epm = rq->epm;
	struct call *k;

	take_queued(rq);
	while ((k = TAILQ_FIRST(&rq->calls)) != NULL) {
		call_unlink(k);
		call_free(k);
	}
	event_free(rq->qev);
	if (--p->refs == 0)
		pool_free(p);
	pthread_mutex_destroy(&rq->qmu);
	free(rq);
	epm_release(epm);
}

void
sipc_requester_close(sipc_requester *rq)
{
	if (rq == NULL)
		return;
	rq->closing = 1;
	if (loop_in_thread(&rq->epm->loop))
		close_on_loop(rq);
	else
		epm_call_last(rq->epm, close_on_loop, rq);
}

int
sipc_request_async(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, int flags, sipc_reply_fn cb, void *arg, uint64_t *id)
{
	return submit(rq, data, len, timeout_ms, flags, 0, (void *)cb, arg,
	    id);
}

int
sipc_survey_async(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, sipc_survey_fn cb, void *arg, uint64_t *id)
{
	return submit(rq, data, len, timeout_ms, 0, 1, (void *)cb, arg, id);
}

struct cancel {
	sipc_requester	*rq;
	uint64_t	 id;
	int		 rc;
};

static void
cancel_on_loop(void *arg)
{
	struct cancel *x = arg;
	struct call *k;

	take_queued(x->rq);
	TAILQ_FOREACH(k, &x->rq->calls, entry)
		if (k->id == x->id)
			break;
	if (k == NULL) {
		x->rc = SIPC_ENOTFOUND;
		return;
	}
	call_unlink(k);
	call_free(k);
	x->rc = 0;
}

int
sipc_request_cancel(sipc_requester *rq, uint64_t id)
{
	struct cancel x = { rq, id, 0 };

	if (rq == NULL)
		return seterr(SIPC_EINVAL, "rq is NULL");
	loop_call(&rq->epm->loop, cancel_on_loop, &x);
	return x.rc ? seterr(x.rc, "request %llu is not outstanding",
	    (unsigned long long)id) : 0;
}

/* ---- Waiting for answers ------------------------------------------------- */

struct waiter {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 done;
	struct sipc_reply	*reply;
	struct sipc_survey	*survey;
	int			 rc;
};

static void
wait_reply(sipc_requester *rq, uint64_t id, const struct sipc_reply *r,
    void *arg)
{
	struct waiter *w = arg;
	size_t n;

	(void)rq;
	(void)id;
	n = sizeof(*r) + r->len + strlen(r->responder) + 1;
	if ((w->reply = malloc(n)) != NULL) {
		*w->reply = *r;
		w->reply->data = (uint8_t *)(w->reply + 1);
		if (r->len)
			memcpy(w->reply + 1, r->data, r->len);
		w->reply->responder = (char *)(w->reply + 1) + r->len;
		memcpy((char *)(w->reply + 1) + r->len, r->responder,
		    strlen(r->responder) + 1);
		w->rc = r->error;
	} else
		w->rc = SIPC_ENOMEM;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int
wait_for(sipc_requester *rq, struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	(void)rq;
	return w->rc;
}

int
sipc_request(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, int flags, struct sipc_reply **reply)
{
	struct waiter w;
	int rc;

	if (reply == NULL || rq == NULL)
		return seterr(SIPC_EINVAL, "rq and reply must not be NULL");
	*reply = NULL;
	if (loop_in_thread(&rq->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_request() would wait on the "
		    "I/O thread: use sipc_request_async()");
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if ((rc = submit(rq, data, len, timeout_ms, flags, 0,
	    (void *)wait_reply, &w, NULL)) != 0) {
		pthread_mutex_destroy(&w.mu);
		pthread_cond_destroy(&w.cv);
		return rc;
	}
	rc = wait_for(rq, &w);
	if (rc == 0 || rc == SIPC_EREMOTE) {
		*reply = w.reply;
		w.reply = NULL;
	}
	free(w.reply);
	if (rc != 0)
		seterr(rc, "request: %s", sipc_strerror(rc));
	return rc;
}

void
sipc_reply_free(struct sipc_reply *reply)
{
	free(reply);
}

static void
wait_survey(sipc_requester *rq, uint64_t id, const struct sipc_survey *s,
    void *arg)
{
	struct waiter *w = arg;
	struct sipc_survey *o;
	size_t i, n = sizeof(*o) + s->asked * sizeof(*o->replies);
	char *p;

	(void)rq;
	(void)id;
	for (i = 0; i < s->asked; i++)
		n += s->replies[i].len + strlen(s->replies[i].responder) + 1;
	if ((o = malloc(n)) == NULL) {
		w->rc = SIPC_ENOMEM;
	} else {
		*o = *s;
		o->replies = (struct sipc_reply *)(o + 1);
		p = (char *)(o->replies + s->asked);
		for (i = 0; i < s->asked; i++) {
			o->replies[i] = s->replies[i];
			o->replies[i].data = p;
			if (s->replies[i].len)
				memcpy(p, s->replies[i].data,
				    s->replies[i].len);
			p += s->replies[i].len;
			o->replies[i].responder = p;
			memcpy(p, s->replies[i].responder,
			    strlen(s->replies[i].responder) + 1);
			p += strlen(s->replies[i].responder) + 1;
		}
		w->survey = o;
		w->rc = s->asked ? 0 : SIPC_ENORESPONDER;
	}
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int
sipc_survey(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, struct sipc_survey **out)
{
	struct waiter w;
	int rc;

	if (out == NULL || rq == NULL)
		return seterr(SIPC_EINVAL, "rq and out must not be NULL");
	*out = NULL;
	if (loop_in_thread(&rq->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_survey() would wait on the "
		    "I/O thread: use sipc_survey_async()");
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if ((rc = submit(rq, data, len, timeout_ms, 0, 1,
	    (void *)wait_survey, &w, NULL)) != 0) {
		pthread_mutex_destroy(&w.mu);
		pthread_cond_destroy(&w.cv);
		return rc;
	}
	rc = wait_for(rq, &w);
	if (rc == 0)
		*out = w.survey;
	else {
		free(w.survey);
		seterr(rc, "survey: %s", sipc_strerror(rc));
	}
	return rc;
}

void
sipc_survey_free(struct sipc_survey *s)
{
	free(s);
}

struct stats_arg {
	struct sipc_requester_stats	 s;
	sipc_requester			*rq;
};

static void
stats_on_loop(void *arg)
{
	struct stats_arg *x = arg;
	struct sipc_requester_stats *s = &x->s;
	sipc_requester *rq = x->rq;

	s->requests = rq->pool->st_requests;
	s->replies = rq->pool->st_replies;
	s->failed = rq->pool->st_failed;
	s->late = rq->pool->st_late;
	s->outstanding = rq->outstanding;
}

int
sipc_requester_stats_size(sipc_requester *rq,
    struct sipc_requester_stats *st, size_t size)
{
	struct stats_arg x;

	if (rq == NULL || st == NULL || size < sizeof(size_t))
		return seterr(SIPC_EINVAL, "NULL argument or size too small");
	memset(&x, 0, sizeof(x));
	x.rq = rq;
	loop_call(&rq->epm->loop, stats_on_loop, &x);
	sized_out(st, size, &x.s, sizeof(x.s));
	return 0;
}
