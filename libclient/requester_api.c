/*
 * requester_api.c - the public API of requesters: making and closing
 * them, requests and surveys (asynchronous, and synchronous by waiting
 * for the asynchronous answer), cancel, statistics.  A call made on
 * another thread is queued for the EPM's I/O thread, which runs
 * everything else (requester.c).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pull.h"
#include "requester.h"

/* ---- Submission ---------------------------------------------------------- */

/* The calls other threads queued, taken off the queue (in order). */
static struct call *
queued(sipc_requester *rq)
{
	struct call *k;

	pthread_mutex_lock(&rq->qmu);
	k = rq->qhead;
	rq->qhead = NULL;
	rq->qtail = &rq->qhead;
	pthread_mutex_unlock(&rq->qmu);
	return k;
}

/* Starts the calls other threads queued. */
static void
take_queued(sipc_requester *rq)
{
	struct call *k, *next;

	for (k = queued(rq); k; k = next) {
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
	sized_opts(o, size, &d, sizeof(d));
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

static void	free_answer(struct pull_item *it);

/* On the I/O thread: cancels what rq has outstanding, frees it. */
static void
close_on_loop(void *arg)
{
	sipc_requester *rq = arg;
	struct rpc_pool *p = rq->pool;
	sipc_epm *epm = rq->epm;
	struct call *k, *next;

	/* Queued calls never started: nothing of them goes out. */
	for (k = queued(rq); k; k = next) {
		next = k->next;
		call_free(k);
	}
	while ((k = TAILQ_FIRST(&rq->calls)) != NULL) {
		call_unlink(k);
		call_free(k);
	}
	event_free(rq->qev);
	if (rq->done) {
		pullq_fini(rq->done, free_answer);
		free(rq->done);
	}
	if (--p->refs == 0)
		pool_free(p);
	pthread_mutex_destroy(&rq->qmu);
	free(rq);
	epm_release(epm);
}

void
sipc_requester_close(sipc_requester *rq)
{
	struct pullq *q;

	if (rq == NULL)
		return;
	rq->closing = 1;
	pthread_mutex_lock(&rq->qmu);
	q = rq->done;
	pthread_mutex_unlock(&rq->qmu);
	if (q)
		pullq_close(q);		/* threads in collect return first */
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
	struct call *k, *next, *keep = NULL, **tail = &keep;

	/* Still queued: it is dropped before it goes out; the others
	 * start, in order. */
	x->rc = SIPC_ENOTFOUND;
	for (k = queued(x->rq); k; k = next) {
		next = k->next;
		if (k->id == x->id) {
			call_free(k);
			x->rc = 0;
		} else {
			*tail = k;
			tail = &k->next;
		}
	}
	*tail = NULL;
	for (k = keep; k; k = next) {
		next = k->next;
		call_start(k);
	}
	if (x->rc == 0)
		return;
	TAILQ_FOREACH(k, &x->rq->calls, entry)
		if (k->id == x->id)
			break;
	if (k == NULL)
		return;
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

struct waiter;
static void	waiter_wake(struct waiter *w);

struct waiter {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 done;
	struct sipc_reply	*reply;
	struct sipc_survey	*survey;
	int			 rc;
};

/* On the I/O thread: the answer is in w. */
static void
waiter_wake(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Submits a call whose callback cb fills w, and waits for it: the
 * call's error, or submit()'s. */
static int
submit_wait(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, int flags, int survey, void *cb, struct waiter *w)
{
	int rc;

	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	rc = submit(rq, data, len, timeout_ms, flags, survey, cb, w, NULL);
	pthread_mutex_lock(&w->mu);
	while (rc == 0 && !w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	return rc ? rc : w->rc;
}

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
	waiter_wake(w);
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
	rc = submit_wait(rq, data, len, timeout_ms, flags, 0,
	    (void *)wait_reply, &w);
	if (rc == 0 || rc == SIPC_EREMOTE) {
		*reply = w.reply;
		w.reply = NULL;
	}
	free(w.reply);
	if (rc != 0 && w.done)	/* else submit() said why */
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
	waiter_wake(w);
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
	rc = submit_wait(rq, data, len, timeout_ms, 0, 1,
	    (void *)wait_survey, &w);
	if (rc == 0)
		*out = w.survey;
	else {
		free(w.survey);
		if (w.done)
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

/* ---- Pull mode ----------------------------------------------------------- */

/* An answer waiting for sipc_requester_collect(); the reply's data and
 * the responder's name follow in the same block, which the reply starts:
 * sipc_reply_free() frees it. */
struct pull_answer {
	struct sipc_reply	 r;
	struct pull_item	 item;
	uint64_t		 id;
};

#define ANSWER_OF(it) \
	((struct pull_answer *)((char *)(it) - \
	    offsetof(struct pull_answer, item)))

/* The queue of answers, made on first use: 0, or an error. */
static int
done_queue(sipc_requester *rq, struct pullq **out)
{
	struct pullq *q;
	int rc = 0;

	pthread_mutex_lock(&rq->qmu);
	if ((q = rq->done) == NULL) {
		if ((q = malloc(sizeof(*q))) == NULL)
			rc = seterr(SIPC_ENOMEM, "out of memory");
		else if ((rc = pullq_init(q, 0, 0)) != 0) {
			free(q);
			q = NULL;
		} else
			rq->done = q;
	}
	pthread_mutex_unlock(&rq->qmu);
	*out = q;
	return rc;
}

/* On the I/O thread: a request of sipc_request_start() is answered. */
static void
queue_answer(sipc_requester *rq, uint64_t id, const struct sipc_reply *r,
    void *arg)
{
	struct pull_answer *a;
	size_t nlen = strlen(r->responder) + 1;
	char *p;

	(void)arg;
	if ((a = malloc(sizeof(*a) + r->len + nlen)) == NULL) {
		/* Say so, without the data. */
		if ((a = malloc(sizeof(*a) + 1)) == NULL)
			return;
		a->r = *r;
		a->r.error = SIPC_ENOMEM;
		a->r.len = 0;
		nlen = 1;
		r = &a->r;
	} else
		a->r = *r;
	a->item.bytes = 0;
	a->id = id;
	p = (char *)(a + 1);
	a->r.size = sizeof(a->r);
	a->r.data = p;
	if (r->len)
		memcpy(p, r->data, r->len);
	a->r.responder = p + a->r.len;
	if (nlen > 1)
		memcpy(p + a->r.len, r->responder, nlen);
	else
		p[a->r.len] = '\0';
	(void)pullq_push(rq->done, &a->item);
}

int
sipc_request_start(sipc_requester *rq, const void *data, size_t len,
    int timeout_ms, int flags, uint64_t *id)
{
	struct pullq *q;
	int rc;

	if (rq == NULL)
		return seterr(SIPC_EINVAL, "rq is NULL");
	if ((rc = done_queue(rq, &q)) != 0)
		return rc;
	return submit(rq, data, len, timeout_ms, flags, 0,
	    (void *)queue_answer, NULL, id);
}

int
sipc_requester_collect(sipc_requester *rq, uint64_t *id,
    struct sipc_reply **reply, int timeout_ms)
{
	struct pull_answer *a;
	struct pull_item *it;
	struct pullq *q;
	int rc;

	if (reply)
		*reply = NULL;
	if (rq == NULL || reply == NULL)
		return seterr(SIPC_EINVAL, "rq and reply must not be NULL");
	if (timeout_ms != 0 && loop_in_thread(&rq->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_requester_collect() would "
		    "wait on the I/O thread");
	if ((rc = done_queue(rq, &q)) != 0)
		return rc;
	if ((rc = pullq_take(q, timeout_ms, &it)) != 0)
		return rc == SIPC_ECLOSED ? seterr(rc, "requester closing") :
		    rc;
	a = ANSWER_OF(it);
	if (id)
		*id = a->id;
	*reply = &a->r;
	return 0;
}

int
sipc_requester_fd(sipc_requester *rq)
{
	struct pullq *q;
	int rc;

	if (rq == NULL)
		return seterr(SIPC_EINVAL, "rq is NULL");
	if ((rc = done_queue(rq, &q)) != 0)
		return rc;
	return pullq_fd(q);
}

static void
free_answer(struct pull_item *it)
{
	free(ANSWER_OF(it));
}
