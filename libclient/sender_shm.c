/*
 * sender_shm.c - a sender's side of the shared-memory path (PROTOCOL.md
 * 6.7), on the sender's I/O thread.
 *
 * One ring per sender, whatever the number of local receivers: each
 * message is written into it once, and every receiver attached to it reads
 * it there.  A receiver's conn keeps its messages until the receiver's
 * cursor page says they were delivered, as ACKs do on a socket, so the
 * high-water mark, loss reports and resends work as on a socket.
 *
 * The ring's space is free behind the slowest attached receiver.  A
 * receiver that leaves the ring while its process may still read it (it
 * was cut off, dropped at the mark, or its socket broke) must never see
 * its entries overwritten: the ring is retired instead.  A SWITCH entry
 * ends it, the receivers still attached get a new ring (SHM_RING) and go
 * on there, and the one left behind reads the old ring to its end, every
 * entry whole, with nothing written there any more.  A receiver dropped
 * at the mark comes back, on the ring of the moment, once it has read the
 * old one to its SWITCH; what was sent meanwhile it lost, and sees as a
 * gap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/wire.h"
#include "sender.h"

static void	tshm_wakecb(evutil_socket_t fd, short what, void *arg);

uint32_t
tshm_offer(struct conn *c)
{
	if (c->tx->tls || (c->peer.ep.family != WIRE_AF_UNIX &&
	    !c->samehost) || !transport_shm_allowed())
		return 0;
	c->xp.fdpass = 1;
	return WIRE_FEAT_SHM;
}

void
tshm_ready(struct conn *c, uint32_t features)
{
	c->shm = (features & WIRE_FEAT_SHM) ? SHM_GRANTED : SHM_OFF;
	c->shm_announce = 0;
}

/* The ring, made on first use: 0, or -1. */
static int
ring_get(struct sipc_sender *tx, uint64_t gen)
{
	char err[160];

	if (tx->ring.fd != -1)
		return 0;
	/* Without a ring (no memfd, no memory) the socket carries all. */
	if (shm_ring_create(&tx->ring, shm_ring_size(2 * tx->opts.hwm_bytes),
	    gen, err, sizeof(err)) == -1)
		return -1;
	tx->shm_tail = 0;
	if (tx->shm_efd == -1) {
		if ((tx->shm_efd = shm_eventfd()) == -1 ||
		    (tx->shm_ev = event_new(tx->epm->loop.base, tx->shm_efd,
		    EV_READ | EV_PERSIST, tshm_wakecb, tx)) == NULL ||
		    event_add(tx->shm_ev, NULL) == -1) {
			shm_ring_destroy(&tx->ring);
			return -1;
		}
	}
	return 0;
}

int
tshm_pin(struct conn *c, uint64_t seq)
{
	struct sipc_sender *tx = c->tx;

	/* A message waiting for room was meant for it before (or, dropped,
	 * not meant for it): it must not find it in the ring. */
	if (tx->pend_n > 0)
		return 0;
	if (ring_get(tx, tx->ring_gen + 1) == -1) {
		c->shm = SHM_OFF;	/* the socket it is, then */
		return 0;
	}
	tx->ring_gen = tx->ring.gen;
	c->shm = SHM_PINNED;
	c->shm_start = tx->ring.head;
	c->shm_from = seq;
	c->shm_announce = 1;
	tx->shm_attached++;
	return 1;
}

/*
 * SHM_RING goes from c's write event, not from here: a retire runs deep in
 * other connections' calls (a socket failing, a receiver cut off), where
 * writing to c, and c failing in turn, would free what those calls still
 * hold.
 */
static void
announce_soon(struct conn *c)
{
	if (c->wev)
		wev_set(c->wev, &c->wev_armed, 1);
}

/* Pinned, not told of the ring yet: off it again, quietly.  What it has
 * queued goes on its socket; it is pinned again later. */
static void
unpin(struct conn *c)
{
	c->shm = SHM_GRANTED;
	c->shm_announce = 0;
	c->tx->shm_attached--;
}

int
tshm_announce(struct conn *c)
{
	struct sipc_sender *tx = c->tx;
	struct wire_shm_ring m;
	uint8_t buf[SIPC_HEADER_SIZE + 24];
	struct wbuf w = { buf, 0, sizeof(buf), sizeof(buf), 0 };
	int fds[2];
	ssize_t n;

	if (!SHM_ON_RING(c) || tx->ring.fd == -1) {
		c->shm_announce = 0;
		return 0;
	}
	m.gen = tx->ring.gen;
	m.size = tx->ring.size;
	m.start = c->shm_start;
	if (wire_enc_shm_ring(&w, &m) != 0)
		return 0;
	fds[0] = tx->ring.fd;
	fds[1] = tx->shm_efd;
	if ((n = xp_send_fds(&c->xp, w.data, w.len, fds, 2)) == -1) {
		if (errno == EAGAIN)
			return 1;
		return -1;
	}
	if ((size_t)n < w.len) {
		struct wbuf rest = { buf + n, w.len - (size_t)n, 0, 0, 0 };

		ctl_add(c, &rest);
	}
	/* What it has in the ring counts as written from now on. */
	c->nsent = c->count;
	if (c->count > 0 && ring_at(c, c->count - 1)->seq > c->sent_seq)
		c->sent_seq = ring_at(c, c->count - 1)->seq;
	c->shm = SHM_ATTACHED;
	c->shm_gen = m.gen;
	c->shm_announce = 0;
	return 0;
}

int
tshm_on_cursor(struct conn *c, const uint8_t *p, size_t len)
{
	char err[160];
	uint64_t gen;
	int cfd, efd;

	cfd = xp_take_fd(&c->xp);
	efd = xp_take_fd(&c->xp);
	/* One page per connection, whichever ring it answers: a ring
	 * retired meanwhile may have been announced since. */
	if (wire_dec_u64(p, len, &gen) != 0 || c->shm != SHM_ATTACHED ||
	    c->cur.h != NULL || gen == 0 || gen > c->shm_gen || cfd == -1 ||
	    efd == -1 ||
	    shm_cursor_map(&c->cur, cfd, err, sizeof(err)) == -1) {
		if (cfd != -1)
			close(cfd);
		if (efd != -1)
			close(efd);
		return -1;
	}
	c->rx_efd = efd;
	/* It may have gone to sleep before we knew where to wake it. */
	if (atomic_load(&c->cur.h->sleeping))
		shm_wake(c->rx_efd);
	return 0;
}

/*
 * Where c is in the ring: up to there it has read everything (before
 * its cursor speaks of this ring: where it started).  UINT64_MAX when its
 * cursor says something impossible.
 */
static uint64_t
conn_pos(const struct conn *c)
{
	const struct sipc_sender *tx = c->tx;
	uint64_t pos;

	if (c->shm == SHM_PINNED || c->cur.h == NULL ||
	    atomic_load_explicit(&c->cur.h->gen, memory_order_acquire) !=
	    tx->ring.gen)
		return c->shm_start;
	pos = atomic_load_explicit(&c->cur.h->released_pos,
	    memory_order_acquire);
	if (pos < c->shm_start || pos > tx->ring.head || pos % SHM_ALIGN)
		return UINT64_MAX;
	return pos;
}

/*
 * The oldest position an attached receiver may still read.  A receiver
 * whose cursor says the impossible is marked, cut off at the next poll,
 * and holds nothing meanwhile: it can harm only itself.
 */
static uint64_t
ring_tail(struct sipc_sender *tx)
{
	uint64_t tail = tx->ring.head, pos;
	struct conn *c;

	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (!SHM_ON_RING(c))
			continue;
		if ((pos = conn_pos(c)) == UINT64_MAX)
			c->shm_bad = 1;
		else if (pos < tail)
			tail = pos;
	}
	return tail;
}

/*
 * Writes m into the ring, what is left of it (a message larger than one
 * entry goes as CHUNKs, as far as there is room): 1 when all of it is in,
 * 0 when the rest waits for room.
 */
static int
put_msg(struct sipc_sender *tx, struct msg *m, uint64_t tail)
{
	struct shm_ring *r = &tx->ring;
	struct msg *p = msg_compressed(m) ? m->plain : m;
	const uint8_t *body = p->frame + DATA_HDR;
	uint64_t len = p->flen - DATA_HDR, cmax, part[2];
	size_t n;

	/* Room for a SWITCH always stays. */
	tail -= SHM_ENTRY_HDR;
	if (len <= shm_max_entry(r->size)) {
		if (shm_ring_put(r, tail, SHM_E_MSG, 0, m->seq, body, len,
		    NULL, 0) == -1)
			return 0;
		tx->shm_dirty = 1;
		return 1;
	}
	cmax = (shm_max_entry(r->size) - SHM_CHUNK_HDR) & ~(uint64_t)15;
	while (tx->pend_off < len) {
		n = len - tx->pend_off < cmax ? len - tx->pend_off : cmax;
		part[0] = len;
		part[1] = tx->pend_off;
		if (shm_ring_put(r, tail, SHM_E_CHUNK,
		    tx->pend_off + n == len ? SHM_F_LAST : 0, m->seq, part,
		    sizeof(part), body + tx->pend_off, n) == -1)
			return 0;
		tx->shm_dirty = 1;
		tx->pend_off += n;
	}
	tx->pend_off = 0;
	return 1;
}

int
tshm_reserve(struct sipc_sender *tx)
{
	struct msg **np;
	size_t i, ncap;

	if (tx->pend_n < tx->pend_cap)
		return 0;
	ncap = tx->pend_cap ? tx->pend_cap * 2 : 64;
	if ((np = malloc(ncap * sizeof(*np))) == NULL)
		return -1;
	for (i = 0; i < tx->pend_n; i++)
		np[i] = tx->pend[(tx->pend_head + i) % tx->pend_cap];
	free(tx->pend);
	tx->pend = np;
	tx->pend_cap = ncap;
	tx->pend_head = 0;
	return 0;
}

static int
pend_push(struct sipc_sender *tx, struct msg *m)
{
	if (tshm_reserve(tx) == -1)
		return -1;
	tx->pend[(tx->pend_head + tx->pend_n++) % tx->pend_cap] = m;
	m->refs++;
	return 0;
}

/* Writes what waits for room, as far as there is room. */
static void
pend_flush(struct sipc_sender *tx)
{
	uint64_t tail;
	struct msg *m;

	if (tx->pend_n == 0 || tx->ring.fd == -1)
		return;
	tail = tx->shm_tail = ring_tail(tx);
	while (tx->pend_n > 0) {
		m = tx->pend[tx->pend_head];
		if (!put_msg(tx, m, tail))
			break;
		tx->shm_written = m->seq;
		tx->pend_head = (tx->pend_head + 1) % tx->pend_cap;
		tx->pend_n--;
		msg_unref(tx, m);
	}
}

int
tshm_put(struct sipc_sender *tx, struct msg *m)
{
	/* Receivers on the ring inflate nothing: the plain twin goes. */
	if (msg_compressed(m) && msg_plain(m) == NULL)
		return -1;
	/* The tail known is enough most of the time: the receivers' cursors
	 * are read again only when the message does not fit behind it. */
	if (tx->pend_n == 0 && (put_msg(tx, m, tx->shm_tail) ||
	    put_msg(tx, m, tx->shm_tail = ring_tail(tx)))) {
		tx->shm_written = m->seq;
		return 0;
	}
	return pend_push(tx, m);
}

/* What the cursor of c says was delivered: acknowledged. */
static void
conn_acks(struct conn *c)
{
	uint64_t seq;

	if (c->cur.h == NULL)
		return;
	seq = atomic_load_explicit(&c->cur.h->released_seq,
	    memory_order_acquire);
	if (seq > c->tx->next_seq) {
		conn_kill(c, SIPC_EPROTO, 0);
		return;
	}
	if (c->count > 0 && ring_at(c, 0)->seq <= seq)
		on_ack(c, seq);
}

void
tshm_refresh(struct conn *c)
{
	tshm_publish(c->tx);
	conn_acks(c);
}

void
tshm_last_acks(struct conn *c)
{
	conn_acks(c);
	/* Messages still waiting for room never reached it. */
	if (SHM_ON_RING(c) && c->sent_seq > c->tx->shm_written)
		c->sent_seq = c->tx->shm_written;
}

void
tshm_publish(struct sipc_sender *tx)
{
	struct conn *c, *cn;
	uint32_t want;

	if (tx->ring.fd == -1)
		return;
	if (tx->shm_dirty) {
		shm_ring_publish(&tx->ring);
		tx->shm_dirty = 0;
		/* Against the receiver's flag-then-head: one of us sees the
		 * other (PROTOCOL.md 6.7, wake-ups). */
		atomic_thread_fence(memory_order_seq_cst);
		for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
			cn = TAILQ_NEXT(c, entry);
			if (c->shm == SHM_ATTACHED && c->cur.h &&
			    atomic_load_explicit(&c->cur.h->sleeping,
			    memory_order_relaxed))
				shm_wake(c->rx_efd);
		}
	}
	/* Tell us of progress while anything waits for it: room, an
	 * acknowledgement, a receiver dropped at the mark catching up. */
	want = tx->pend_n > 0 || tx->unacked > 0;
	TAILQ_FOREACH(c, &tx->conns, entry)
		if (c->shm == SHM_DETACHED)
			want = 1;
	if (want != tx->shm_want) {
		atomic_store(&tx->ring.h->want_progress, want);
		tx->shm_want = want;
	}
}

void
tshm_poll(struct sipc_sender *tx)
{
	struct conn *c, *cn;

	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->shm != SHM_ATTACHED && c->shm != SHM_DETACHED)
			continue;
		if (c->shm_bad) {
			c->shm_bad = 0;
			conn_kill(c, SIPC_EPROTO, 0);
			continue;
		}
		conn_acks(c);
		/* Dropped at the mark, it read its old ring to the end: on
		 * to the ring of now. */
		if (c->shm == SHM_DETACHED && c->cur.h &&
		    atomic_load(&c->cur.h->gen) == c->shm_gen &&
		    atomic_load(&c->cur.h->released_pos) == c->shm_final &&
		    tshm_pin(c, tx->next_seq + 1))
			announce_soon(c);
	}
	pend_flush(tx);
	tshm_publish(tx);
}

static void
tshm_wakecb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;
	int taken;

	(void)what;
	shm_drain_eventfd(fd);
	taken = tx_enter(tx);
	if (!tx->dead) {
		tshm_poll(tx);
		update_backlog(tx);
		publish(tx);
		tx_notify(tx);
	}
	tx_leave(tx, taken);
}

/*
 * Ends the ring with a SWITCH; the receivers still attached go on in a
 * new one, announced to each on its socket.
 */
static void
retire(struct sipc_sender *tx)
{
	struct shm_ring old = tx->ring;
	struct conn *c, *cn;
	uint64_t at = tx->ring.head;

	/* Always fits (every other entry leaves room for it), and without
	 * a PAD: 16 bytes at a 16-byte boundary. */
	shm_ring_put(&tx->ring, at - (tx->ring.size - SHM_ENTRY_HDR),
	    SHM_E_SWITCH, 0, tx->ring_gen + 1, NULL, 0, NULL, 0);
	tx->shm_dirty = 1;
	tshm_publish(tx);
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->shm == SHM_DETACHED && c->shm_gen == old.gen &&
		    c->shm_final == UINT64_MAX)
			c->shm_final = at;
	}
	tx->ring.fd = -1;
	tx->ring.h = NULL;
	tx->ring_gen++;
	tx->shm_want = 0;
	if (tx->dead) {
		shm_ring_destroy(&old);
		return;
	}
	if (tx->shm_attached == 0 || ring_get(tx, tx->ring_gen) == -1) {
		/* Nobody left on it (or no memory for another): the next
		 * receiver gets a new ring. */
		for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
			cn = TAILQ_NEXT(c, entry);
			if (SHM_ON_RING(c))
				conn_kill(c, SIPC_ENOMEM, 0);
		}
		shm_ring_destroy(&old);
		return;
	}
	shm_ring_destroy(&old);
	/* The attached go on in the new one from its start, told now.  The
	 * pinned never knew the old one: what it had there for them goes on
	 * their sockets, and they are pinned again later. */
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->shm == SHM_PINNED)
			unpin(c);
		if (c->shm != SHM_ATTACHED)
			continue;
		c->shm_start = 0;
		c->shm_gen = tx->ring.gen;
		c->shm_announce = 1;
		announce_soon(c);
	}
	pend_flush(tx);
	tshm_publish(tx);
}

void
tshm_drop(struct conn *c)
{
	struct sipc_sender *tx = c->tx;

	if (c->shm == SHM_PINNED) {
		unpin(c);
		return;
	}
	if (c->shm != SHM_ATTACHED)
		return;
	c->shm = SHM_DETACHED;
	c->shm_final = UINT64_MAX;
	c->shm_announce = 0;
	tx->shm_attached--;
	retire(tx);
}

void
tshm_release(struct conn *c)
{
	struct sipc_sender *tx = c->tx;
	int was = c->shm;

	c->shm = SHM_OFF;
	c->shm_announce = 0;
	shm_cursor_close(&c->cur);
	if (c->rx_efd != -1)
		close(c->rx_efd);
	c->rx_efd = -1;
	if (!(was == SHM_PINNED || was == SHM_ATTACHED))
		return;
	tx->shm_attached--;
	/* Its process may read on (a socket cut from our side): retire
	 * the ring rather than overwrite what it reads.  (Pinned, it never
	 * had this ring.) */
	if (was == SHM_ATTACHED && tx->ring.fd != -1)
		retire(tx);
}

void
tshm_close(struct sipc_sender *tx)
{
	while (tx->pend_n > 0) {
		msg_unref(tx, tx->pend[tx->pend_head]);
		tx->pend_head = (tx->pend_head + 1) % tx->pend_cap;
		tx->pend_n--;
	}
	free(tx->pend);
	tx->pend = NULL;
	if (tx->shm_ev)
		event_free(tx->shm_ev);
	tx->shm_ev = NULL;
	if (tx->shm_efd != -1)
		close(tx->shm_efd);
	tx->shm_efd = -1;
	shm_ring_destroy(&tx->ring);
}
