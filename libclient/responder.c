/*
 * responder.c - the answering half of request/reply, inside a receiver:
 * a DATA with a non-zero request id on a connection that granted REPLY
 * becomes a sipc_request, which the program answers (REPLY), fails
 * (ERROR REQUEST_FAILED) or drops (ERROR NO_REPLY), now or later, from
 * any thread (PROTOCOL.md 6.6).
 *
 * A request holds a reference to its connection (only the I/O thread
 * counts them) and to the receiver's reply port.  An answer given on the
 * I/O thread goes straight into the connection's output; one from another
 * thread is queued on the port, which wakes the I/O thread.  When the
 * receiver closes, the port forgets it: answers given after that are
 * discarded without touching the freed receiver.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../proto/zframe.h"
#include "receiver.h"

/* An answer on its way to the I/O thread: a whole frame. */
struct rsp_out {
	struct rsp_out		*next;
	struct rconn		*c;
	size_t			 len;
	uint8_t			 frame[];
};

struct reply_port {
	pthread_mutex_t		 mu;
	atomic_int		 refs;
	struct sipc_receiver	*rx;		/* NULL: it closed */
	pthread_t		 io;		/* the EPM's I/O thread */
	struct event		*ev;
	struct rsp_out		*head;
	struct rsp_out		**tail;
};

/* What an answer needs, copied: off the I/O thread nothing of the
 * connection or the receiver is touched (either may be gone). */
struct sipc_request {
	struct reply_port	*port;
	struct rconn		*c;		/* the I/O thread's only */
	uint32_t		 reqid;
	int			 zlib;		/* answers may be compressed */
	struct sipc_message	 msg;
	uint8_t			 body[];	/* the request, then the
						   handle */
};

static void
port_unref(struct reply_port *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* On the I/O thread: a request of c is answered; c goes when it closed
 * and nothing refers to it any more. */
static void
conn_unref(struct rconn *c)
{
	if (--c->refs > 0 || !c->closed)
		return;
	TAILQ_REMOVE(&c->rx->zombies, c, entry);
	free(c);
}

/* On the I/O thread: puts an answer (hdr, then body) on c and lets go of
 * c's reference.  flush 0: perhaps inside c's own parsing, where it must
 * not be closed: the write event or the read callback writes it. */
static void
deliver(struct rconn *c, const void *hdr, size_t hlen, const void *body,
    size_t blen, int flush)
{
	c->inflight--;
	/* Out of memory: the answer is lost, the requester's deadline
	 * tells it.  Both parts or neither: no frame is cut. */
	if (!c->closed && rconn_out(c, hdr, hlen) == 0) {
		if (blen && rconn_out(c, body, blen) == -1)
			c->out.len -= hlen;	/* still the last bytes */
		else {
			if (c->paused &&
			    c->inflight < SIPC_RESPONDER_INFLIGHT_MAX / 2)
				rconn_resume(c);
			if (flush)
				rconn_flush(c);
			else
				wev_set(c->wev, &c->wev_armed, 1);
		}
	}
	conn_unref(c);
}

static void
port_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reply_port *p = arg;
	struct rsp_out *o, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&p->mu);
	o = p->head;
	p->head = NULL;
	p->tail = &p->head;
	pthread_mutex_unlock(&p->mu);
	for (; o; o = next) {
		next = o->next;
		deliver(o->c, o->frame, o->len, NULL, 0, 1);
		free(o);
	}
}

int
rsp_port_open(struct sipc_receiver *rx)
{
	struct reply_port *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->ev = event_new(rx->epm->loop.base, -1, EV_READ, port_cb, p);
	if (p->ev == NULL) {
		free(p);
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	atomic_init(&p->refs, 1);
	p->rx = rx;
	p->io = rx->epm->loop.thread;
	p->tail = &p->head;
	rx->port = p;
	return 0;
}

/* On the I/O thread, as rx goes: answers still queued are dropped (their
 * connections go with rx), and later ones will be. */
void
rsp_port_close(struct sipc_receiver *rx)
{
	struct reply_port *p = rx->port;
	struct rsp_out *o, *next;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->rx = NULL;
	o = p->head;
	p->head = NULL;
	p->tail = &p->head;
	event_free(p->ev);
	p->ev = NULL;
	pthread_mutex_unlock(&p->mu);
	for (; o; o = next) {
		next = o->next;
		free(o);
	}
	rx->port = NULL;
	port_unref(p);
}

/* A request arrived on c: hand it to on_request. */
void
rsp_request(struct rconn *c, const struct dp_event *ev)
{
	struct sipc_receiver *rx = c->rx;
	struct sipc_request *req;

	if ((req = malloc(sizeof(*req) + ev->len + rx->hlen + 1)) == NULL) {
		rconn_error(c, ev->reqid, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
	req->port = rx->port;
	atomic_fetch_add(&req->port->refs, 1);
	req->c = c;
	req->reqid = ev->reqid;
	req->zlib = c->zlib;
	if (ev->len)
		memcpy(req->body, ev->body, ev->len);
	memcpy(req->body + ev->len, rx->handle, rx->hlen + 1);
	memset(&req->msg, 0, sizeof(req->msg));
	req->msg.size = sizeof(req->msg);
	req->msg.handle = (const char *)req->body + ev->len;
	req->msg.data = req->body;
	req->msg.len = ev->len;
	req->msg.sender_id = c->sender_id;
	req->msg.seq = ev->seq;
	c->refs++;
	if (++c->inflight >= SIPC_RESPONDER_INFLIGHT_MAX)
		rconn_pause(c);
	atomic_fetch_add(&rx->st_requests, 1);
	rx->opts.on_request(rx, req, rx->opts.arg);
}

/*
 * Sends req's answer (hdr, then body), frees req.  On the I/O thread it
 * goes straight into the connection's output (p->rx changes only there);
 * from another thread it is copied once into a queued frame.  0, or
 * SIPC_ENOMEM with req left to its caller.
 */
static int
answer(struct sipc_request *req, const void *hdr, size_t hlen,
    const void *body, size_t blen)
{
	struct reply_port *p = req->port;
	struct rsp_out *o;

	if (pthread_equal(pthread_self(), p->io)) {
		if (p->rx != NULL)
			deliver(req->c, hdr, hlen, body, blen, 0);
	} else if ((o = malloc(sizeof(*o) + hlen + blen)) == NULL)
		return SIPC_ENOMEM;
	else {
		o->next = NULL;
		o->c = req->c;
		o->len = hlen + blen;
		memcpy(o->frame, hdr, hlen);
		if (blen)
			memcpy(o->frame + hlen, body, blen);
		pthread_mutex_lock(&p->mu);
		if (p->rx == NULL)
			free(o);	/* the receiver closed */
		else {
			*p->tail = o;
			p->tail = &o->next;
			if (p->head == o)
				event_active(p->ev, EV_READ, 0);
		}
		pthread_mutex_unlock(&p->mu);
	}
	port_unref(p);
	free(req);
	return 0;
}

const struct sipc_message *
sipc_request_message(const struct sipc_request *req)
{
	return req ? &req->msg : NULL;
}

int
sipc_request_reply(struct sipc_request *req, const void *data, size_t len)
{
	struct wire_header h;
	uint8_t hdr[SIPC_HEADER_SIZE], *z = NULL;
	size_t zlen = 0;
	int rc;

	if (req == NULL || (data == NULL && len > 0))
		return seterr(SIPC_EINVAL, "req NULL, or data NULL with len");
	if (len > SIPC_MAX_MESSAGE_MAX) {
		sipc_request_fail(req, "reply larger than 1 GiB");
		return seterr(SIPC_ETOOBIG, "reply of %zu bytes", len);
	}
	memset(&h, 0, sizeof(h));
	h.version = SIPC_PROTO_VERSION_MAX;
	h.type = WIRE_REPLY;
	h.reqid = req->reqid;
	/* Compressed when the requester asked for it (it offered ZLIB). */
	if (req->zlib && len >= ZF_MIN_DATA &&
	    zf_deflate(data, len, &z, &zlen) == 0) {
		h.flags = WIRE_F_COMPRESSED;
		data = z;
		len = zlen;
	}
	h.len = (uint32_t)len;
	wire_header_encode(hdr, &h);
	rc = answer(req, hdr, sizeof(hdr), data, len);
	free(z);
	if (rc == 0)
		return 0;
	sipc_request_free(req);		/* NO_REPLY, if that fits */
	return seterr(SIPC_ENOMEM, "out of memory");
}

static void
answer_error(struct sipc_request *req, uint16_t code, const char *text)
{
	uint8_t buf[SIPC_HEADER_SIZE + 4 + SIPC_ERROR_TEXT_MAX];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };

	/* Text the encoder refuses (not UTF-8) gives way to none. */
	if (wire_enc_error(&w, req->reqid, code, text) != 0) {
		w.len = w.err = 0;
		(void)wire_enc_error(&w, req->reqid, code, "");
	}
	if (answer(req, w.data, w.len, NULL, 0) != 0) {
		/* Not even that: the connection keeps this request's
		 * reference (and count) until it closes. */
		port_unref(req->port);
		free(req);
	}
}

int
sipc_request_fail(struct sipc_request *req, const char *text)
{
	if (req == NULL)
		return seterr(SIPC_EINVAL, "req is NULL");
	answer_error(req, WIRE_ERR_REQUEST_FAILED, text ? text : "");
	return 0;
}

void
sipc_request_free(struct sipc_request *req)
{
	if (req == NULL)
		return;
	answer_error(req, WIRE_ERR_NO_REPLY, "the responder dropped the "
	    "request");
}
