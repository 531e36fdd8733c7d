/*
 * sender_msgs.c - a sender's messages: buffers and their recycling to the
 * sending threads, each connection's ring of messages sent or to send and
 * not yet acknowledged (the hand-off queue and the ring's hot part are
 * inline in sender.h), the uncompressed twin of a compressed message,
 * messages in limbo (written to a receiver just before it was cut off),
 * and the reports of what a receiver missed.  No sockets here
 * (sender_conn.c), no public API (sender.c).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../proto/zframe.h"
#include "sender.h"

/* ---- Message buffers ----------------------------------------------------- */

/* On a sending thread: a buffer for a frame of flen bytes. */
struct msg *
msg_alloc(struct sipc_sender *tx, size_t flen)
{
	struct msg *m = NULL, *h;
	int tries;

	if (flen <= RECYCLE_CAP && pthread_mutex_trylock(&tx->pmu) == 0) {
		if (tx->pcache == NULL &&
		    (tx->pcache = atomic_exchange(&tx->recycled, NULL))) {
			/* Counted by batch: two buffers touched per batch. */
			for (h = tx->pcache; h; h = h->batch_last->next)
				tx->p_taken += h->batch_bytes;
			atomic_store_explicit(&tx->rc_taken, tx->p_taken,
			    memory_order_relaxed);
		}
		/* A buffer that fits, not one far too large. */
		for (tries = 0; tx->pcache && tries < 4 && m == NULL; tries++) {
			h = tx->pcache;
			tx->pcache = h->next;
			if (h->cap >= flen && h->cap <= 2 * flen + 256)
				m = h;
			else
				free(h);
		}
		pthread_mutex_unlock(&tx->pmu);
	}
	if (m == NULL) {
		if ((m = malloc(sizeof(*m) + flen)) == NULL)
			return NULL;
		m->cap = flen;
	}
	return m;
}

/* On the I/O thread: hands the batch of freed buffers to the senders. */
void
recycle_flush(struct sipc_sender *tx)
{
	struct msg *old;

	if (tx->fbatch == NULL)
		return;
	tx->fbatch->batch_last = tx->fbatch_tail;
	tx->fbatch->batch_bytes = tx->fbatch_bytes;
	old = atomic_load(&tx->recycled);
	do
		tx->fbatch_tail->next = old;
	while (!atomic_compare_exchange_weak(&tx->recycled, &old, tx->fbatch));
	tx->rc_given += tx->fbatch_bytes;
	tx->fbatch = tx->fbatch_tail = NULL;
	tx->fbatch_n = tx->fbatch_bytes = 0;
}

void
msg_unref(struct sipc_sender *tx, struct msg *m)
{
	size_t limit = tx->opts.hwm_bytes / 2;

	if (--m->refs > 0)
		return;
	if (m->plain) {
		msg_unref(tx, m->plain);
		m->plain = NULL;
	}
	/* What senders have not taken back yet: at most half the high-water
	 * mark.  Their count is read again only when it seems too much. */
	if (m->cap > RECYCLE_CAP || tx->dead)
		goto out;
	if (tx->rc_given - tx->rc_taken_seen + tx->fbatch_bytes + m->cap >
	    limit) {
		tx->rc_taken_seen = atomic_load_explicit(&tx->rc_taken,
		    memory_order_relaxed);
		if (tx->rc_given - tx->rc_taken_seen + tx->fbatch_bytes +
		    m->cap > limit)
			goto out;
	}
	m->next = tx->fbatch;
	if (tx->fbatch == NULL)
		tx->fbatch_tail = m;
	tx->fbatch = m;
	tx->fbatch_bytes += m->cap;
	if (++tx->fbatch_n >= RECYCLE_BATCH)
		recycle_flush(tx);
	return;
out:
	free(m);
}

void
recycle_free(struct sipc_sender *tx)
{
	struct msg *m, *next;

	recycle_flush(tx);
	for (m = atomic_exchange(&tx->recycled, NULL); m; m = next) {
		next = m->next;
		free(m);
	}
	for (m = tx->pcache; m; m = next) {
		next = m->next;
		free(m);
	}
	tx->pcache = NULL;
}

/* Every queued message is lost: report and free them. */
void
ring_lose_all(struct conn *c, int error)
{
	uint64_t n = c->count;

	while (c->count)
		ring_pop(c);
	c->nsent = c->woff = 0;
	c->lost += n;
	report(c->tx, error, c->name, n);
	publish(c->tx);
}

/*
 * The uncompressed frame of the compressed m, for a receiver that did not
 * grant ZLIB: inflated once, then shared by every such receiver.  NULL
 * when out of memory.
 */
struct msg *
msg_plain(struct msg *m)
{
	struct wire_header h;
	size_t cap = m->body, n = 0;
	uint8_t *buf;
	struct msg *p;

	if (m->plain)
		return m->plain;
	if ((p = malloc(sizeof(*p) + DATA_HDR + m->body)) == NULL)
		return NULL;
	if ((buf = malloc(cap)) == NULL ||
	    zf_inflate(m->frame + DATA_HDR, m->flen - DATA_HDR, m->body, &buf,
	    &cap, &n) != 0 || n != m->body) {
		/* Our own deflate output: only memory can fail here. */
		free(buf);
		free(p);
		return NULL;
	}
	memcpy(p->frame + DATA_HDR, buf, n);
	free(buf);
	p->refs = 1;		/* m's */
	p->plain = NULL;
	p->cap = p->flen = DATA_HDR + m->body;
	p->body = m->body;
	p->seq = m->seq;
	h.version = SIPC_PROTO_VERSION_MAX;
	h.type = WIRE_DATA;
	h.flags = 0;
	h.reqid = 0;
	h.len = (uint32_t)(p->flen - SIPC_HEADER_SIZE);
	wire_header_encode(p->frame, &h);
	wire_be64(p->frame + SIPC_HEADER_SIZE, p->seq);
	m->plain = p;
	return p;
}

/* ---- Messages of a dead receiver ----------------------------------------- */

/* Remembers seq as written to a receiver declared dead: 0, or -1. */
int
limbo_add(struct conn *c, uint64_t seq)
{
	uint64_t *nl;
	size_t ncap;

	if (c->nlimbo == c->limbo_cap) {
		ncap = c->limbo_cap ? c->limbo_cap * 2 : 256;
		if ((nl = realloc(c->limbo, ncap * sizeof(*nl))) == NULL)
			return -1;
		c->limbo = nl;
		c->limbo_cap = ncap;
	}
	c->limbo[c->nlimbo++] = seq;
	c->tx->unacked++;	/* flush waits for their fate too */
	return 0;
}

/*
 * Settles the messages in limbo: those up to last_seq were delivered
 * (the receiver read them from its socket after all), the others are
 * lost and reported, as error.
 */
void
limbo_settle(struct conn *c, uint64_t last_seq, int error)
{
	struct sipc_sender *tx = c->tx;
	size_t i, delivered = 0;

	if (c->nlimbo == 0)
		return;
	for (i = 0; i < c->nlimbo; i++)
		if (c->limbo[i] <= last_seq)
			delivered++;
	c->acked += delivered;
	tx->st_delivered += delivered;
	tx->unacked -= c->nlimbo;
	c->lost += c->nlimbo - delivered;
	report(tx, error, c->name, c->nlimbo - delivered);
	free(c->limbo);
	c->limbo = NULL;
	c->nlimbo = c->limbo_cap = 0;
	publish(tx);
}

/* Reports what dispatch counted as not sent to c, in one call per kind. */
void
conn_report_skipped(struct conn *c)
{
	struct sipc_sender *tx = c->tx;
	uint64_t n;

	n = c->drops_unreported + c->toobig_unreported + c->skips_unreported;
	if (n == 0)
		return;
	tx->unreported_n -= n;
	atomic_store(&tx->unreported, tx->unreported_n);

	if ((n = c->drops_unreported) != 0) {
		c->drops_unreported = 0;
		c->lost += n;
		report(tx, SIPC_EDROPPED, c->name, n);
	}
	if ((n = c->toobig_unreported) != 0) {
		c->toobig_unreported = 0;
		c->lost += n;
		report(tx, SIPC_ETOOBIG, c->name, n);
	}
	if ((n = c->skips_unreported) != 0) {
		c->skips_unreported = 0;
		c->lost += n;
		report(tx, c->kill_error, c->name, n);
	}
}

/*
 * Reports every receiver's skipped messages: the first at once, then at
 * most every REPORT_MS (a stalled receiver under policy drop would
 * otherwise cost a callback per batch of messages).  now: force it.
 */
void
report_skipped(struct sipc_sender *tx, int now)
{
	int64_t t = mono_ms();
	struct conn *c, *cn;

	if (tx->unreported_n == 0 || tx->dead)
		return;
	if (!now && t - tx->last_report < REPORT_MS) {
		report_later(tx);
		return;
	}
	tx->last_report = t;
	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		conn_report_skipped(c);
	}
	tx_notify(tx);
}

void
report_later(struct sipc_sender *tx)
{
	int64_t wait = tx->last_report + REPORT_MS - mono_ms();

	if (!evtimer_pending(tx->report_timer, NULL))
		timer_after(tx->report_timer, wait > 0 ? (int)wait : 0);
}

void
report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	(void)fd;
	(void)what;
	report_skipped(tx, 1);
	tx_leave(tx, taken);
}
