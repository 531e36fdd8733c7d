/*
 * receiver_shm.c - a receiver's side of the shared-memory path
 * (PROTOCOL.md 6.7): mapping the sender's ring read-only, delivering
 * straight from it, saying how far it read in its cursor page, sleeping on
 * its eventfd only when the ring is empty.
 *
 * Everything here runs on the receiver's I/O thread.  The ring is checked
 * entry by entry (shm_view_peek): a sender that writes garbage gets an
 * ERROR and loses the connection; nothing is read outside the mapping.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/wire.h"
#include "receiver.h"
#include "shm.h"

#define SHM_BUDGET	8192	/* entries per turn of the loop */

static void	rshm_wakecb(evutil_socket_t fd, short what, void *arg);

int
rshm_grant(const struct rconn *c, uint32_t offered)
{
	return (offered & WIRE_FEAT_SHM) && c->xp.fdpass && c->xp.ssl == NULL &&
	    transport_shm_allowed();
}

void
rshm_init(struct rconn *c)
{
	c->cur.fd = -1;
	c->efd = c->tx_efd = -1;
}

/* What was delivered, for the sender: the last seq, then (release) the
 * position.  After every entry: two plain stores on x86, and the sender's
 * high-water mark sees room as soon as there is. */
static inline void
cursor_store(struct rconn *c)
{
	atomic_store_explicit(&c->cur.h->released_seq, c->delivered,
	    memory_order_relaxed);
	atomic_store_explicit(&c->cur.h->released_pos, c->view.pos,
	    memory_order_release);
}

/* The same, and a wake-up when the sender asked for one: once a batch. */
static void
publish(struct rconn *c)
{
	if (c->cur.h == NULL)
		return;
	cursor_store(c);
	if (atomic_load(&c->view.h->want_progress))
		shm_wake(c->tx_efd);
}

static void
deliver(struct rconn *c, uint64_t seq, const uint8_t *body, size_t len)
{
	struct dp_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = DP_DATA;
	ev.seq = seq;
	ev.body = body;
	ev.len = len;
	ev.wire_len = (uint32_t)(len + SIPC_DATA_PREFIX);
	rconn_data(c, &ev);
}

static void
chunk_reset(struct rconn *c)
{
	free(c->chunk);
	c->chunk = NULL;
	c->chunk_len = c->chunk_total = 0;
}

/* A part of a large message: 0, or -1 when c failed. */
static int
on_chunk(struct rconn *c, const struct shm_entry *e, const uint8_t *body)
{
	uint64_t total, off;
	size_t n = e->len - SHM_CHUNK_HDR;

	memcpy(&total, body, 8);
	memcpy(&off, body + 8, 8);
	if (c->chunk_skip && e->seq == c->chunk_skip) {
		if (e->flags & SHM_F_LAST)
			c->chunk_skip = 0;
		return 0;
	}
	if (off == 0) {
		/* A new message: a part-assembled one was dropped for us
		 * (its seq shows as a gap). */
		chunk_reset(c);
		c->chunk_skip = 0;
		if (total > c->rx->opts.max_message) {
			/* Not for us: the sender counts it as too large
			 * for this receiver; we see the gap. */
			if (!(e->flags & SHM_F_LAST))
				c->chunk_skip = e->seq;
			return 0;
		}
		if ((c->chunk = malloc(total ? total : 1)) == NULL)
			return rconn_fail(c, WIRE_ERR_INTERNAL, "out of memory");
		c->chunk_total = total;
		c->chunk_seq = e->seq;
	} else if (c->chunk == NULL || e->seq != c->chunk_seq ||
	    off != c->chunk_len || total != c->chunk_total)
		return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, "ring CHUNK out of "
		    "order");
	if (n > c->chunk_total - c->chunk_len)
		return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, "ring CHUNK past "
		    "its message");
	memcpy(c->chunk + c->chunk_len, body + SHM_CHUNK_HDR, n);
	c->chunk_len += n;
	if (!(e->flags & SHM_F_LAST))
		return 0;
	if (c->chunk_len != c->chunk_total)
		return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, "ring message "
		    "shorter than its CHUNKs said");
	deliver(c, e->seq, c->chunk, c->chunk_len);
	chunk_reset(c);
	return 0;
}

/* Delivers entries up to the head, within budget: 1 when it stopped at
 * an empty ring, 0 otherwise, -1 when c failed (it may be freed). */
static int
drain(struct rconn *c, size_t budget)
{
	struct sipc_receiver *rx = c->rx;
	const uint8_t *body;
	struct shm_entry e;
	uint64_t head;
	char why[128];
	int rc;

	/* Paused (pull mode's queue is full): the ring holds the rest, and
	 * the sender meets its mark; rconn_resume() wakes us. */
	while (c->view.h && !c->closing && !rx->dead && !c->paused) {
		head = atomic_load_explicit(&c->view.h->head,
		    memory_order_acquire);
		rc = shm_view_peek(&c->view, head, &e, &body, why, sizeof(why));
		if (rc == -1)
			return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, why);
		if (rc == 0)
			return 1;
		if (e.type == SHM_E_SWITCH) {
			/* The ring this one gives way to (the newest, when
			 * the sender retired several meanwhile). */
			if (c->next.h == NULL)
				return 0;	/* SHM_RING is on its way */
			shm_view_unmap(&c->view);
			c->view = c->next;
			memset(&c->next, 0, sizeof(c->next));
			atomic_store_explicit(&c->cur.h->released_pos,
			    c->view.pos, memory_order_release);
			atomic_store_explicit(&c->cur.h->gen, c->view.gen,
			    memory_order_release);
			continue;
		}
		c->view.pos += shm_entry_bytes(e.len);
		if (e.type == SHM_E_CHUNK) {
			if (on_chunk(c, &e, body) == -1)
				return -1;
		} else if (e.len <= c->rx->opts.max_message)
			deliver(c, e.seq, body, e.len);
		/* (Larger than we take: written for the others; the sender
		 * counts it as too large for us, we see the gap.) */
		if (c->cur.h)
			cursor_store(c);
		if (--budget == 0) {
			event_active(c->shm_ev, EV_READ, 0);
			return 0;
		}
	}
	return 0;
}

int
rshm_drain(struct rconn *c, int all)
{
	int rc;

	while ((rc = drain(c, all ? SIZE_MAX : SHM_BUDGET)) == 1) {
		publish(c);
		if (all)
			return 0;
		/* Asleep, then a last look: the sender wakes us for what it
		 * publishes after seeing the flag (PROTOCOL.md 6.7). */
		atomic_store(&c->cur.h->sleeping, 1);
		if (atomic_load(&c->view.h->head) == c->view.pos)
			return 0;
		atomic_store(&c->cur.h->sleeping, 0);
	}
	if (rc == -1)
		return -1;
	publish(c);
	return 0;
}

static void
rshm_wakecb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;

	(void)what;
	shm_drain_eventfd(fd);
	if (c->cur.h)
		atomic_store(&c->cur.h->sleeping, 0);
	if (rshm_drain(c, 0) == 0)
		rconn_flush(c);
}

/* The first ring: our cursor page and eventfd go back with SHM_CURSOR. */
static int
attach(struct rconn *c, const struct wire_shm_ring *m, int rfd, char *err,
    size_t errlen)
{
	uint8_t buf[SIPC_HEADER_SIZE + 8];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };
	int fds[2];

	if (shm_view_map(&c->view, rfd, m->gen, m->size, m->start, err,
	    errlen) == -1)
		return -1;
	if (shm_cursor_create(&c->cur, err, errlen) == -1)
		return -1;
	if ((c->efd = shm_eventfd()) == -1 ||
	    (c->shm_ev = event_new(c->rx->epm->loop.base, c->efd,
	    EV_READ | EV_PERSIST, rshm_wakecb, c)) == NULL ||
	    event_add(c->shm_ev, NULL) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	atomic_store(&c->cur.h->released_pos, m->start);
	atomic_store(&c->cur.h->released_seq, c->delivered);
	atomic_store(&c->cur.h->gen, m->gen);
	/* In order after what waits to be written (OK, ACKs). */
	if (rconn_flush(c) == -1)
		return -2;
	if (outbuf_pending(&c->out)) {
		snprintf(err, errlen, "control socket full");
		return -1;
	}
	if (wire_enc_u64(&w, WIRE_SHM_CURSOR, 0, m->gen) != 0)
		return -1;
	fds[0] = c->cur.fd;
	fds[1] = c->efd;
	if (xp_send_fds(&c->xp, w.data, w.len, fds, 2) != (ssize_t)w.len) {
		snprintf(err, errlen, "sending SHM_CURSOR: %s",
		    strerror(errno));
		return -1;
	}
	/* The sender has its own descriptor now. */
	close(c->cur.fd);
	c->cur.fd = -1;
	c->ack_bytes = UINT32_MAX;	/* the cursor acknowledges */
	return 0;
}

int
rshm_on_ring(struct rconn *c, const struct wire_shm_ring *m)
{
	char err[160];
	int rfd, efd, rc;

	rfd = xp_take_fd(&c->xp);
	efd = xp_take_fd(&c->xp);
	if (rfd == -1 || efd == -1 || c->xp.fd_excess) {
		if (rfd != -1)
			close(rfd);
		if (efd != -1)
			close(efd);
		return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, "SHM_RING without "
		    "its two descriptors");
	}
	if (c->view.h == NULL) {
		c->tx_efd = efd;
		if ((rc = attach(c, m, rfd, err, sizeof(err))) == -2)
			return -1;
		if (rc == -1) {
			if (c->view.h == NULL)
				close(rfd);
			return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, err);
		}
	} else {
		/* The next ring, from the SWITCH at the end of this one. */
		close(efd);
		if (c->next.h || m->gen <= c->view.gen) {
			close(rfd);
			return rconn_fail(c, WIRE_ERR_UNEXPECTED, "SHM_RING out "
			    "of order");
		}
		if (shm_view_map(&c->next, rfd, m->gen, m->size, m->start, err,
		    sizeof(err)) == -1) {
			close(rfd);
			return rconn_fail(c, WIRE_ERR_BAD_MESSAGE, err);
		}
	}
	return rshm_drain(c, 0);
}

void
rshm_close(struct rconn *c)
{
	/* The last word: what the sender counts as delivered. */
	if (c->view.h)
		publish(c);
	if (c->shm_ev)
		event_free(c->shm_ev);
	c->shm_ev = NULL;
	shm_view_unmap(&c->view);
	shm_view_unmap(&c->next);
	shm_cursor_close(&c->cur);
	if (c->efd != -1)
		close(c->efd);
	if (c->tx_efd != -1)
		close(c->tx_efd);
	c->efd = c->tx_efd = -1;
	chunk_reset(c);
}
