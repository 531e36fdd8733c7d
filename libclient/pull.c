/*
 * pull.c - pull mode: the queues a program empties from its own thread
 * (or its own event loop, through their descriptors) instead of getting
 * callbacks on the I/O thread; and the receiver's side of it: messages of
 * a receiver without on_message, requests of a responder without
 * on_request.  The requester's side (answers collected) is in
 * requester_api.c, on the same queue.
 *
 * Each queue has an eventfd that is readable exactly while the queue is
 * not empty: written when the first item goes in, read (reset) when the
 * last one is taken, both under the queue's lock.  So poll, epoll (level
 * or edge triggered) and asyncio's add_reader all see the truth.  It is
 * kept so only once the program asked for it (pullq_fd): a program that
 * waits in recv spends no system call on it.
 */
#include <sys/eventfd.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "pull.h"
#include "receiver.h"

/* ---- Queues -------------------------------------------------------------- */

int
pullq_init(struct pullq *q, size_t max_count, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return seterr_sys(errno == ENOMEM ? SIPC_ENOMEM : SIPC_ESYS,
		    "eventfd");
	pthread_mutex_init(&q->mu, NULL);
	cond_init_mono(&q->cv);
	q->tail = &q->head;
	q->max_count = max_count;
	q->max_bytes = max_bytes;
	return 0;
}

/* The descriptor's state follows the queue's, under q->mu.  Neither can
 * fail: the counter is 0 or 1, far from its maximum. */
static void
efd_set(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) == -1)
		return;
}

static void
efd_clear(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == -1)
		return;
}

/* Under q->mu: at the bound? */
static int
at_bound(const struct pullq *q)
{
	return (q->max_count && q->count >= q->max_count) ||
	    (q->max_bytes && q->bytes >= q->max_bytes);
}

int
pullq_push(struct pullq *q, struct pull_item *it)
{
	int full;

	it->next = NULL;
	pthread_mutex_lock(&q->mu);
	*q->tail = it;
	q->tail = &it->next;
	q->bytes += it->bytes;
	if (q->count++ == 0 && q->efd_on)
		efd_set(q->efd);
	if (q->waiters)
		pthread_cond_signal(&q->cv);
	if ((full = at_bound(q)) != 0)
		q->want_room = 1;
	pthread_mutex_unlock(&q->mu);
	return full;
}

/* Under q->mu: waits up to deadline for an item: 0, SIPC_ETIMEDOUT or
 * SIPC_ECLOSED (the lock is held in every case). */
static int
pullq_wait(struct pullq *q, int timeout_ms)
{
	int64_t deadline = deadline_after(timeout_ms);
	int rc = 0;

	while (q->head == NULL && !q->closing) {
		if (timeout_ms == 0 || rc == ETIMEDOUT)
			return SIPC_ETIMEDOUT;
		q->waiters++;
		rc = cond_wait_until(&q->cv, &q->mu, deadline);
		q->waiters--;
	}
	if (q->closing) {
		pthread_cond_broadcast(&q->cv);	/* pullq_close() waits */
		return SIPC_ECLOSED;
	}
	return 0;
}

/* Under q->mu: unlinks the first item. */
static struct pull_item *
pullq_pop(struct pullq *q)
{
	struct pull_item *it = q->head;

	if ((q->head = it->next) == NULL)
		q->tail = &q->head;
	q->bytes -= it->bytes;
	if (--q->count == 0 && q->efd_on)
		efd_clear(q->efd);
	return it;
}

/* Under q->mu, after taking: half empty again, the I/O thread may read
 * its senders anew. */
static void
pullq_room(struct pullq *q)
{
	if (q->want_room && q->count <= q->max_count / 2 &&
	    q->bytes <= q->max_bytes / 2) {
		q->want_room = 0;
		if (q->room)
			event_active(q->room, EV_READ, 0);
	}
}

int
pullq_take_many(struct pullq *q, int timeout_ms, struct pull_item **out,
    size_t max, int (*fit)(const struct pull_item *, void *), void *arg)
{
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&q->mu);
	if ((rc = pullq_wait(q, timeout_ms)) != 0) {
		pthread_mutex_unlock(&q->mu);
		return rc;
	}
	while (n < max && q->head && fit(q->head, arg))
		out[n++] = pullq_pop(q);
	if (n > 0)
		pullq_room(q);
	pthread_mutex_unlock(&q->mu);
	return n > 0 ? (int)n : SIPC_ETOOBIG;
}

int
pullq_take(struct pullq *q, int timeout_ms, struct pull_item **out)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	if ((rc = pullq_wait(q, timeout_ms)) == 0) {
		*out = pullq_pop(q);
		pullq_room(q);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int
pullq_fd(struct pullq *q)
{
	pthread_mutex_lock(&q->mu);
	if (!q->efd_on) {
		q->efd_on = 1;
		if (q->count > 0)
			efd_set(q->efd);
	}
	pthread_mutex_unlock(&q->mu);
	return q->efd;
}

void
pullq_close(struct pullq *q)
{
	pthread_mutex_lock(&q->mu);
	q->closing = 1;
	pthread_cond_broadcast(&q->cv);
	while (q->waiters > 0)
		pthread_cond_wait(&q->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

void
pullq_fini(struct pullq *q, void (*free_item)(struct pull_item *))
{
	struct pull_item *it, *next;

	for (it = q->head; it; it = next) {
		next = it->next;
		free_item(it);
	}
	q->head = NULL;
	if (q->room)
		event_free(q->room);
	q->room = NULL;
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
}

/* ---- Receivers ----------------------------------------------------------- */

struct rx_pull {
	struct pullq	msgs;
	struct pullq	reqs;
	int		has_msgs;	/* on_message NULL */
	int		has_reqs;	/* pull_requests, on_request NULL */
};

/* A message in the queue, handed to the program as m; the payload and
 * the handle follow in the same block. */
struct pull_msg {
	struct pull_item	item;
	struct sipc_message	m;
};

struct pull_req {
	struct pull_item	item;
	struct sipc_request	*req;
};

static void
free_msg(struct pull_item *it)
{
	free(it);
}

static void
free_req(struct pull_item *it)
{
	sipc_request_free(((struct pull_req *)it)->req);
	free(it);
}

/* On the I/O thread: the program took half the queue; read again. */
static void
room_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;
	struct rconn *c;

	(void)fd;
	(void)what;
	if (rx->dead)
		return;
	TAILQ_FOREACH(c, &rx->conns, entry)
		if (c->paused)
			rconn_resume(c);	/* it checks the queue too */
}

/* Stands in for on_request: the request waits for the program. */
static void
queue_request(sipc_receiver *rx, struct sipc_request *req, void *arg)
{
	struct pull_req *p;

	(void)arg;
	if ((p = malloc(sizeof(*p))) == NULL) {
		sipc_request_free(req);		/* NO_REPLY: it hears */
		return;
	}
	p->item.bytes = 0;
	p->req = req;
	(void)pullq_push(&rx->pull->reqs, &p->item);
}

int
rx_pull_open(struct sipc_receiver *rx)
{
	struct sipc_receiver_opts *o = &rx->opts;
	struct rx_pull *p;
	int rc;

	if (o->on_message != NULL && (!o->pull_requests || o->on_request))
		return 0;
	if (o->on_message == NULL &&
	    (o->queue_max == 0 || o->queue_max > SIPC_MAX_QUEUE_MESSAGES ||
	    o->queue_max_bytes == 0 ||
	    o->queue_max_bytes > SIPC_MAX_QUEUE_BYTES))
		return seterr(SIPC_EINVAL, "queue_max must be 1 to %u "
		    "messages, queue_max_bytes 1 byte to 1 GiB",
		    SIPC_MAX_QUEUE_MESSAGES);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	if (o->on_message == NULL) {
		if ((rc = pullq_init(&p->msgs, o->queue_max,
		    o->queue_max_bytes)) != 0) {
			free(p);
			return rc;
		}
		p->has_msgs = 1;
		p->msgs.room = event_new(rx->epm->loop.base, -1, EV_READ,
		    room_cb, rx);
		if (p->msgs.room == NULL) {
			pullq_fini(&p->msgs, free_msg);
			free(p);
			return seterr(SIPC_ENOMEM, "out of memory");
		}
	}
	if (o->pull_requests && o->on_request == NULL) {
		if ((rc = pullq_init(&p->reqs, 0, 0)) != 0) {
			if (p->has_msgs)
				pullq_fini(&p->msgs, free_msg);
			free(p);
			return rc;
		}
		p->has_reqs = 1;
		o->on_request = queue_request;
	}
	rx->pull = p;
	return 0;
}

void
rx_pull_close(struct sipc_receiver *rx)
{
	if (rx->pull == NULL)
		return;
	if (rx->pull->has_msgs)
		pullq_close(&rx->pull->msgs);
	if (rx->pull->has_reqs)
		pullq_close(&rx->pull->reqs);
}

void
rx_pull_free(struct sipc_receiver *rx)
{
	struct rx_pull *p = rx->pull;

	if (p == NULL)
		return;
	if (p->has_msgs)
		pullq_fini(&p->msgs, free_msg);
	if (p->has_reqs)
		pullq_fini(&p->reqs, free_req);
	free(p);
	rx->pull = NULL;
}

int
rx_pull_message(struct sipc_receiver *rx, uint64_t sender_id, uint64_t seq,
    const void *data, size_t len)
{
	struct pull_msg *p;
	char *d;

	if ((p = malloc(sizeof(*p) + len + rx->hlen + 1)) == NULL) {
		atomic_fetch_add(&rx->st_gaps, 1);
		return 0;
	}
	d = (char *)(p + 1);
	if (len)
		memcpy(d, data, len);
	memcpy(d + len, rx->handle, rx->hlen + 1);
	p->item.bytes = len;
	p->m.size = sizeof(p->m);
	p->m.handle = d + len;
	p->m.data = d;
	p->m.len = len;
	p->m.sender_id = sender_id;
	p->m.seq = seq;
	return pullq_push(&rx->pull->msgs, &p->item);
}

int
rx_pull_full(struct sipc_receiver *rx)
{
	struct pullq *q;
	int full;

	if (rx->pull == NULL || !rx->pull->has_msgs)
		return 0;
	q = &rx->pull->msgs;
	pthread_mutex_lock(&q->mu);
	if ((full = at_bound(q)) != 0)
		q->want_room = 1;
	pthread_mutex_unlock(&q->mu);
	return full;
}

/* ---- Public API ---------------------------------------------------------- */

int
sipc_receiver_recv(sipc_receiver *rx, struct sipc_message **msg,
    int timeout_ms)
{
	struct pull_item *it;
	int rc;

	if (msg)
		*msg = NULL;
	if (rx == NULL || msg == NULL)
		return seterr(SIPC_EINVAL, "rx and msg must not be NULL");
	if (rx->pull == NULL || !rx->pull->has_msgs)
		return seterr(SIPC_EINVAL, "the receiver has on_message: "
		    "its messages go there");
	if (timeout_ms != 0 && loop_in_thread(&rx->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_receiver_recv() would wait "
		    "on the I/O thread");
	if ((rc = pullq_take(&rx->pull->msgs, timeout_ms, &it)) != 0)
		return rc == SIPC_ECLOSED ? seterr(rc, "receiver closing") :
		    rc;
	*msg = &((struct pull_msg *)it)->m;
	return 0;
}

void
sipc_message_free(struct sipc_message *msg)
{
	if (msg != NULL)
		free((char *)msg - offsetof(struct pull_msg, m));
}

int
sipc_receiver_fd(const sipc_receiver *rx)
{
	if (rx == NULL || rx->pull == NULL || !rx->pull->has_msgs)
		return seterr(SIPC_EINVAL, "rx is NULL or has on_message");
	return pullq_fd(&rx->pull->msgs);
}

int
sipc_receiver_recv_request(sipc_receiver *rx, struct sipc_request **req,
    int timeout_ms)
{
	struct pull_item *it;
	int rc;

	if (req)
		*req = NULL;
	if (rx == NULL || req == NULL)
		return seterr(SIPC_EINVAL, "rx and req must not be NULL");
	if (rx->pull == NULL || !rx->pull->has_reqs)
		return seterr(SIPC_EINVAL, "the receiver does not queue "
		    "requests (pull_requests unset, or on_request set)");
	if (timeout_ms != 0 && loop_in_thread(&rx->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_receiver_recv_request() "
		    "would wait on the I/O thread");
	if ((rc = pullq_take(&rx->pull->reqs, timeout_ms, &it)) != 0)
		return rc == SIPC_ECLOSED ? seterr(rc, "receiver closing") :
		    rc;
	*req = ((struct pull_req *)it)->req;
	free(it);
	return 0;
}

int
sipc_receiver_request_fd(const sipc_receiver *rx)
{
	if (rx == NULL || rx->pull == NULL || !rx->pull->has_reqs)
		return seterr(SIPC_EINVAL, "rx is NULL or does not queue "
		    "requests");
	return pullq_fd(&rx->pull->reqs);
}

/* What sipc_receiver_recv_into() has room for. */
struct into {
	size_t	left;		/* bytes of buf */
};

static int
fits(const struct pull_item *it, void *arg)
{
	struct into *x = arg;

	if (it->bytes > x->left)
		return 0;
	x->left -= it->bytes;
	return 1;
}

#define INTO_BATCH	64	/* items unlinked per lock */

int
sipc_receiver_recv_into(sipc_receiver *rx, void *buf, size_t size,
    size_t *lens, size_t max, int timeout_ms)
{
	struct pull_item *its[INTO_BATCH];
	struct pull_msg *p;
	struct into x = { size };
	size_t n = 0, off = 0, i;
	int rc = 0, k;

	if (rx == NULL || buf == NULL || lens == NULL || max == 0)
		return seterr(SIPC_EINVAL, "rx, buf, lens NULL or max 0");
	if (max > INT32_MAX)
		max = INT32_MAX;	/* n is returned as an int */
	if (rx->pull == NULL || !rx->pull->has_msgs)
		return seterr(SIPC_EINVAL, "the receiver has on_message: "
		    "its messages go there");
	if (timeout_ms != 0 && loop_in_thread(&rx->epm->loop))
		return seterr(SIPC_EINVAL, "sipc_receiver_recv_into() would "
		    "wait on the I/O thread");
	/* The copies are made outside the lock, a batch at a time. */
	while (n < max) {
		k = pullq_take_many(&rx->pull->msgs, n ? 0 : timeout_ms, its,
		    max - n < INTO_BATCH ? max - n : INTO_BATCH, fits, &x);
		if (k < 0) {
			rc = k;
			break;
		}
		for (i = 0; i < (size_t)k; i++) {
			p = (struct pull_msg *)its[i];
			if (p->m.len)
				memcpy((char *)buf + off, p->m.data,
				    p->m.len);
			off += p->m.len;
			lens[n++] = p->m.len;
			free(p);
		}
	}
	if (n > 0)
		return (int)n;
	if (rc == SIPC_ECLOSED)
		return seterr(rc, "receiver closing");
	if (rc == SIPC_ETOOBIG)
		return seterr(rc, "the next message is larger than %zu bytes",
		    size);
	return rc;
}
