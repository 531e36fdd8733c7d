/*
 * sender.c - senders: the outbound data path.
 *
 * sipc_send() copies the message once into a frame (header, sequence
 * number, body) and pushes it onto a lock-free queue; it wakes the I/O
 * thread only when the thread is not already draining (wake_pending), so a
 * burst costs one wake-up, not one per message.  The I/O thread numbers
 * each message, puts a reference to the same frame on every receiver
 * connection (nothing is copied per receiver), and writes many frames per
 * writev().  Frames stay referenced until the receiver acknowledges them:
 * what is unacknowledged when a receiver dies is the count reported lost,
 * and what is resent, without duplicates, when a broken connection to a
 * live receiver comes back.
 *
 * Each connection's unacknowledged bytes are bounded by the high-water
 * mark; the policy decides what happens there (block the caller, drop the
 * message for that receiver, or cut the receiver off), and every drop or
 * cut is reported to on_send_failed.
 *
 * Everything but the hand-off runs on the EPM's I/O thread.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/liveness.h"
#include "../proto/addr.h"
#include "../proto/frame.h"
#include "../proto/zframe.h"
#include "internal.h"
#include "xport.h"

#define DATA_HDR	(SIPC_HEADER_SIZE + SIPC_DATA_PREFIX)
#define DRAIN_BUDGET	8192		/* messages per turn of the loop */
#define MAX_IOV		1024
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 1000
#define LEAVE_LINGER_MS	1000		/* final ACKs after a LEAVE */
#define SYNC_WAIT_MS	5000		/* for the first receiver list */
#define REPORT_MS	100		/* messages skipped for a receiver:
					   reported at most this often */

/* ---- Messages and the hand-off queue ------------------------------------- */

struct msg {
	_Atomic(struct msg *)	 next;
	unsigned		 refs;		/* I/O thread only */
	/* A compressed frame's uncompressed twin, made once on the I/O
	 * thread for the receivers that did not grant ZLIB; holds a
	 * reference to it. */
	struct msg		*plain;
	union {
		struct {
			uint64_t seq;
			size_t	 flen;		/* header + seq + body */
			size_t	 body;		/* message bytes, uncompressed */
		};
		/* Recycled, the first buffer of a batch: the batch. */
		struct {
			struct msg *batch_last;
			size_t	 batch_bytes;
		};
	};
	size_t			 cap;		/* bytes allocated for frame */
	uint8_t			 frame[];
};

/*
 * Buffers of sent messages go back to the sending threads instead of to
 * free(): allocating on one thread and freeing on another is what glibc
 * does worst, and buffers of 64 KiB would fault in fresh pages every time.
 * Buffers up to RECYCLE_CAP are kept, RECYCLE_BYTES of them at most.
 */
#define RECYCLE_CAP	(128 * 1024)
#define RECYCLE_BATCH	64

/*
 * Fields written per message by the sending threads and fields written by
 * the I/O thread live on separate cache lines: a line written from both
 * sides moves between CPUs on every message (measured: half of
 * sipc_send's time went to one such line).
 */
#define CACHE_LINE	64

/* Vyukov's intrusive MPSC queue: producers never wait for each other. */
struct mpsc {
	_Alignas(CACHE_LINE) _Atomic(struct msg *) tail;	/* producers */
	_Alignas(CACHE_LINE) struct msg	*head;		/* consumer */
	struct msg		*stub;
};

static int
mpsc_init(struct mpsc *q)
{
	if ((q->stub = calloc(1, sizeof(struct msg))) == NULL)
		return -1;
	atomic_init(&q->stub->next, NULL);
	atomic_init(&q->tail, q->stub);
	q->head = q->stub;
	return 0;
}

static void
mpsc_push(struct mpsc *q, struct msg *m)
{
	struct msg *prev;

	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&q->tail, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

/* NULL when empty or when a producer is between its two steps (it then
 * wakes the consumer itself). */
static struct msg *
mpsc_pop(struct mpsc *q)
{
	struct msg *head = q->head, *next, *tail;

	next = atomic_load_explicit(&head->next, memory_order_acquire);
	if (head == q->stub) {
		if (next == NULL)
			return NULL;
		q->head = next;
		head = next;
		next = atomic_load_explicit(&head->next, memory_order_acquire);
	}
	if (next) {
		q->head = next;
		return head;
	}
	tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	if (head != tail)
		return NULL;
	mpsc_push(q, q->stub);
	next = atomic_load_explicit(&head->next, memory_order_acquire);
	if (next) {
		q->head = next;
		return head;
	}
	return NULL;
}

/* 1 when a producer is between its two steps (the queue is not empty,
 * though mpsc_pop() found nothing). */
static int
mpsc_busy(struct mpsc *q)
{
	return atomic_load(&q->tail) != q->head;
}

/* ---- Connections --------------------------------------------------------- */

enum cstate {
	C_DOWN,		/* not connected; retry timer running */
	C_CONNECTING,
	C_TLS,		/* TLS handshake */
	C_HANDSHAKE,	/* DHELLO sent, waiting for OK */
	C_READY
};

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct sipc_sender	*tx;
	struct peer		 peer;
	char			 name[128];	/* endpoint for people */
	enum cstate		 state;
	struct xport		 xp;		/* xp.fd -1: not connected */
	struct event		*rev;
	struct event		*wev;
	struct event		*timer;
	int			 wev_armed;
	/* Messages sent or to send, not yet acknowledged, oldest first. */
	struct msg		**ring;
	size_t			 cap;		/* power of two */
	size_t			 head;
	size_t			 count;
	size_t			 nsent;		/* of count, fully written */
	size_t			 woff;		/* of the next, written */
	size_t			 unacked_bytes;
	uint64_t		 first_seq;	/* for the next DHELLO */
	uint32_t		 max_message;	/* the receiver's */
	/* Small frames of our own (DHELLO, PING, PONG). */
	uint8_t			 ctl[512];
	size_t			 ctl_len;
	size_t			 ctl_off;
	struct framer		 framer;	/* of what the receiver sends */
	uint8_t			 in[SIPC_HEADER_SIZE + 1024];
	size_t			 in_len;
	struct liveness		 live;		/* from DHELLO on */
	int64_t			 down_since;
	int64_t			 deadline;	/* connect, handshake, leave */
	struct backoff		 backoff;
	int			 leaving;	/* got LEAVE, awaiting EOF */
	/* Declared dead (unreachable for 3 heartbeats, refused, or cut off
	 * as too slow): not a member, gets no messages, retried slowly. */
	int			 dead;
	int			 confirmed;	/* seen since the last resync */
	int			 zlib;		/* the receiver inflates */
	int			 kill_error;	/* why it was declared dead */
	uint64_t		 acked;		/* messages acknowledged */
	uint64_t		 dropped;
	uint64_t		 lost;
	uint64_t		 drops_unreported;
	uint64_t		 toobig_unreported;
	uint64_t		 skips_unreported;	/* while dead */
	/*
	 * Sequence numbers: every message up to ack_seq that was meant for
	 * this receiver is delivered or reported lost (the next DHELLO
	 * starts there, so that the receiver sees what it missed as a gap);
	 * sent_seq is the last one ever written whole to it.
	 */
	uint64_t		 ack_seq;
	uint64_t		 sent_seq;
	/*
	 * Messages written but not acknowledged when the receiver was
	 * declared dead: it may still read them from its socket buffer.
	 * Their fate is settled by the last_seq of its next OK(DHELLO), or
	 * they are reported lost when it goes away or the sender closes.
	 */
	uint64_t		*limbo;		/* ascending seqs */
	size_t			 nlimbo;
	size_t			 limbo_cap;
};

struct sipc_sender {
	sipc_epm		*epm;
	char			 handle[SIPC_HANDLE_MAX + 1];
	uint16_t		 hlen;
	uint64_t		 id;
	struct sipc_sender_opts	 opts;
	struct epm_watch	 watch;
	SSL_CTX			*tls;		/* NULL: plain text */
	int			 psk;
	char			 tls_name[256];	/* to check instead of IPs */

	/*
	 * Hand-off from any thread.  What waits in the queue is pushed minus
	 * drained: the sending threads add to pushed_*, the I/O thread
	 * publishes drained_* once per batch.  pushed_count is also the
	 * count of messages sent.
	 */
	struct mpsc		 q;
	_Alignas(CACHE_LINE) atomic_size_t pushed_bytes;
	atomic_size_t		 pushed_count;
	/* Recycled buffers: pushed in batches by the I/O thread, taken all
	 * at once by senders (so no ABA), then handed out under pmu. */
	pthread_mutex_t		 pmu;
	struct msg		*pcache;
	size_t			 p_taken;	/* bytes taken, under pmu */
	atomic_size_t		 rc_taken;	/* p_taken, for the I/O thread */

	/* Written by the I/O thread once per batch, read by senders. */
	_Alignas(CACHE_LINE) atomic_size_t drained_bytes;
	atomic_size_t		 drained_count;
	atomic_size_t		 max_backlog;	/* bytes, worst receiver */
	atomic_int		 wake_pending;
	atomic_int		 closing;
	_Alignas(CACHE_LINE) _Atomic(struct msg *) recycled;

	/* Shared with waiting threads (seq_cst atomics, cv under mu). */
	_Alignas(CACHE_LINE) pthread_mutex_t mu;
	pthread_cond_t		 cv;
	atomic_int		 waiters;
	atomic_size_t		 nready;
	atomic_size_t		 unacked_total;	/* (message, receiver) */
	atomic_size_t		 unreported;	/* skipped, not yet reported */
	atomic_int		 synced;	/* first receiver list known */
	struct event		*wake_ev;

	/* I/O thread only. */
	size_t			 drained_b;	/* published as drained_* */
	size_t			 drained_n;
	size_t			 rc_given;	/* bytes recycled, ever */
	size_t			 rc_taken_seen;	/* rc_taken, as last read */
	uint64_t		 next_seq;	/* last number given */
	size_t			 unacked;	/* published as unacked_total */
	struct msg		*fbatch;	/* freed, not yet recycled */
	struct msg		*fbatch_tail;
	size_t			 fbatch_n;
	size_t			 fbatch_bytes;
	TAILQ_HEAD(, conn)	 conns;
	size_t			 nconns;
	const char		**names;	/* for after_send */
	size_t			 names_cap;
	struct event		*resync_timer;
	struct event		*report_timer;
	int64_t			 last_report;
	size_t			 unreported_n;	/* published as unreported */
	int			 dead;		/* closed; freed by the reaper */
	uint64_t		 st_delivered;
	uint64_t		 st_lost;
	uint64_t		 st_dropped;
};

static void	msg_unref(struct sipc_sender *tx, struct msg *m);
static void	conn_connect(struct conn *c);
static void	conn_connected(struct conn *c);
static void	conn_dhello(struct conn *c);
static void	conn_tls_step(struct conn *c);
static void	conn_kill(struct conn *c, int error, uint64_t extra);
static void	conn_refused(struct conn *c);
static int	conn_write(struct conn *c);
static void	conn_down(struct conn *c, const char *why);
static void	conn_remove(struct conn *c, int error);

/* ---- Message buffers ----------------------------------------------------- */

/* On a sending thread: a buffer for a frame of flen bytes. */
static struct msg *
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
static void
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

static void
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

static void
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

/* Wakes threads in wait_receivers, flush or a blocked send. */
static void
tx_notify(struct sipc_sender *tx)
{
	if (atomic_load(&tx->waiters) == 0)
		return;
	pthread_mutex_lock(&tx->mu);
	pthread_cond_broadcast(&tx->cv);
	pthread_mutex_unlock(&tx->mu);
}

/* Publishes the I/O thread's count of unacknowledged (message, receiver)
 * pairs for sipc_sender_flush(), once per batch rather than per message. */
static void
publish(struct sipc_sender *tx)
{
	atomic_store_explicit(&tx->unacked_total, tx->unacked,
	    memory_order_release);
	if (tx->unacked == 0)
		tx_notify(tx);
}

static void
update_backlog(struct sipc_sender *tx)
{
	size_t max = 0;
	struct conn *c;

	TAILQ_FOREACH(c, &tx->conns, entry)
		if (!c->dead && !c->leaving && c->unacked_bytes > max)
			max = c->unacked_bytes;
	if (atomic_exchange(&tx->max_backlog, max) > max)
		tx_notify(tx);
}

static void
report(struct sipc_sender *tx, int error, const char *name, uint64_t n)
{
	/* A receiver that will get nothing (it fails authentication, or
	 * there was no memory for it) is worth a word even when no message
	 * was waiting for it. */
	if (n == 0 && error != SIPC_EAUTH && error != SIPC_ETLS &&
	    error != SIPC_ENOMEM)
		return;
	tx->st_lost += n;
	if (tx->opts.on_send_failed && !tx->dead)
		tx->opts.on_send_failed(tx, error, name, n, tx->opts.arg);
}

/* ---- Ring of unacknowledged messages ------------------------------------- */

static struct msg *
ring_at(const struct conn *c, size_t i)
{
	return c->ring[(c->head + i) & (c->cap - 1)];
}

static int
ring_push(struct conn *c, struct msg *m)
{
	struct msg **nr;
	size_t i, ncap;

	if (c->count == c->cap) {
		ncap = c->cap ? c->cap * 2 : 64;
		if ((nr = malloc(ncap * sizeof(*nr))) == NULL)
			return -1;
		for (i = 0; i < c->count; i++)
			nr[i] = ring_at(c, i);
		free(c->ring);
		c->ring = nr;
		c->cap = ncap;
		c->head = 0;
	}
	c->ring[(c->head + c->count) & (c->cap - 1)] = m;
	c->count++;
	c->unacked_bytes += m->flen;
	m->refs++;
	return 0;
}

/* Drops the oldest message: acknowledged, or lost. */
static void
ring_pop(struct conn *c)
{
	struct msg *m = c->ring[c->head];

	c->head = (c->head + 1) & (c->cap - 1);
	c->count--;
	if (c->nsent > 0)
		c->nsent--;
	else
		c->woff = 0;
	c->unacked_bytes -= m->flen;
	c->tx->unacked--;
	msg_unref(c->tx, m);
}

/* Every queued message is lost: report and free them. */
static void
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

/* 1 when m's body is a zlib stream. */
static int
msg_compressed(const struct msg *m)
{
	return ((m->frame[4] << 8 | m->frame[5]) & WIRE_F_COMPRESSED) != 0;
}

/*
 * The uncompressed frame of the compressed m, for a receiver that did not
 * grant ZLIB: inflated once, then shared by every such receiver.  NULL
 * when out of memory.
 */
static struct msg *
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
static int
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
static void
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
static void
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
static void
report_skipped(struct sipc_sender *tx, int now)
{
	int64_t t = mono_ms();
	struct conn *c, *cn;

	if (tx->unreported_n == 0 || tx->dead)
		return;
	if (!now && t - tx->last_report < REPORT_MS) {
		if (!evtimer_pending(tx->report_timer, NULL))
			timer_after(tx->report_timer,
			    tx->last_report + REPORT_MS - t);
		return;
	}
	tx->last_report = t;
	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		conn_report_skipped(c);
	}
	tx_notify(tx);
}

static void
report_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	report_skipped(arg, 1);
}

/* ---- Connection I/O ------------------------------------------------------ */

static int
hb_ms(const struct conn *c)
{
	return c->tx->opts.heartbeat_ms;
}

static void
ctl_add(struct conn *c, const struct wbuf *w)
{
	if (c->ctl_off == c->ctl_len)
		c->ctl_off = c->ctl_len = 0;
	if (w->len > sizeof(c->ctl) - c->ctl_len)
		return;		/* only PINGs can be refused; one suffices */
	memcpy(c->ctl + c->ctl_len, w->data, w->len);
	c->ctl_len += w->len;
}

static void
ctl_ping(struct conn *c, uint8_t type, uint32_t reqid, uint64_t token)
{
	uint8_t buf[32];
	struct wbuf w;

	/* A fixed-size frame: encode into a stack buffer. */
	w.data = buf;
	w.len = 0;
	w.cap = w.max = sizeof(buf);
	w.err = 0;
	if (wire_enc_u64(&w, type, reqid, token) == 0)
		ctl_add(c, &w);
}

/*
 * Writes control frames (at a message boundary) and, when ready, queued
 * messages, up to MAX_IOV pieces per writev().  Returns 0, or -1 when the
 * connection went down (and c may be freed).
 */
static int
conn_write(struct conn *c)
{
	struct iovec iov[MAX_IOV];
	size_t i, ctl_pending, left;
	ssize_t w;
	int n;

	if (c->xp.fd == -1 || c->state < C_HANDSHAKE)
		return 0;
	for (;;) {
		n = 0;
		ctl_pending = c->woff == 0 ? c->ctl_len - c->ctl_off : 0;
		if (ctl_pending) {
			iov[n].iov_base = c->ctl + c->ctl_off;
			iov[n++].iov_len = ctl_pending;
		}
		if (c->state == C_READY) {
			for (i = c->nsent; i < c->count && n < MAX_IOV; i++) {
				struct msg *m = ring_at(c, i);
				size_t off = i == c->nsent ? c->woff : 0;

				iov[n].iov_base = m->frame + off;
				iov[n++].iov_len = m->flen - off;
			}
		}
		if (n == 0) {
			/* TLS may still hold bytes it took. */
			switch (xp_out_pending(&c->xp) ? xp_flush(&c->xp) : 0) {
			case 0:
				wev_set(c->wev, &c->wev_armed, 0);
				return 0;
			case 1:
				wev_set(c->wev, &c->wev_armed, 1);
				return 0;
			default:
				conn_down(c, strerror(errno));
				return -1;
			}
		}
		w = xp_writev(&c->xp, iov, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				wev_set(c->wev, &c->wev_armed, 1);
				return 0;
			}
			conn_down(c, strerror(errno));
			return -1;
		}
		live_tx(&c->live, mono_ms());
		left = (size_t)w;
		if (ctl_pending) {
			size_t take = left < ctl_pending ? left : ctl_pending;

			c->ctl_off += take;
			left -= take;
		}
		while (left > 0) {
			struct msg *m = ring_at(c, c->nsent);
			size_t rest = m->flen - c->woff;

			if (left < rest) {
				c->woff += left;
				break;
			}
			left -= rest;
			c->woff = 0;
			c->nsent++;
			if (m->seq > c->sent_seq)
				c->sent_seq = m->seq;
		}
	}
}

/* OK(DHELLO): 0, or -1 when out of memory. */
static int
on_ready(struct conn *c, const struct wire_dhello_ok *ok)
{
	struct sipc_sender *tx = c->tx;
	struct msg *m, *p;
	size_t i;

	/* The receiver delivered up to last_seq from us before: those need
	 * no resend; everything else goes (again) from the start. */
	while (c->count > 0 && ring_at(c, 0)->seq <= ok->last_seq) {
		c->acked++;
		tx->st_delivered++;
		ring_pop(c);
	}
	if (ok->last_seq > c->ack_seq)
		c->ack_seq = ok->last_seq;
	limbo_settle(c, ok->last_seq, c->kill_error);
	c->nsent = c->woff = 0;
	/* A receiver that declines ZLIB gets every message uncompressed:
	 * declining a feature is its right, not an error. */
	c->zlib = (ok->features & WIRE_FEAT_ZLIB) != 0;
	frame_open(&c->framer, ok->version, 0, c->framer.limit,
	    c->framer.limit);
	for (i = 0; !c->zlib && i < c->count; i++) {
		m = ring_at(c, i);
		if (!msg_compressed(m))
			continue;
		if ((p = msg_plain(m)) == NULL)
			return -1;
		p->refs++;
		c->ring[(c->head + i) & (c->cap - 1)] = p;
		c->unacked_bytes += p->flen - m->flen;
		msg_unref(tx, m);
	}
	c->max_message = ok->max_message;
	c->state = C_READY;
	c->dead = 0;		/* a member again, from the next message */
	c->down_since = 0;
	backoff_reset(&c->backoff);
	if (c->peer.instance == 0)
		c->peer.instance = ok->instance;
	atomic_fetch_add(&tx->nready, 1);
	update_backlog(tx);
	tx_notify(tx);
	publish(tx);
	timer_after(c->timer, 0);
	return 0;
}

static void
on_ack(struct conn *c, uint64_t seq)
{
	struct sipc_sender *tx = c->tx;
	int any = 0;

	while (c->count > 0 && c->nsent > 0 && ring_at(c, 0)->seq <= seq) {
		ring_pop(c);
		c->acked++;
		tx->st_delivered++;
		any = 1;
	}
	if (seq > c->ack_seq && any)
		c->ack_seq = seq;
	if (!any)
		return;
	update_backlog(tx);
	publish(tx);
}

/* Handles one frame from the receiver: 0, or -1 when c is gone/down. */
static int
conn_frame(struct conn *c, const struct wire_header *h, const uint8_t *p)
{
	struct wire_dhello_ok ok;
	struct wire_error e;
	char why[SIPC_ERROR_TEXT_MAX + 64];
	uint64_t v;

	switch (h->type) {
	case WIRE_OK:
		if (c->state != C_HANDSHAKE ||
		    wire_dec_ok_dhello(p, h->len, &ok) != 0 ||
		    ok.version != SIPC_PROTO_VERSION_MAX) {
			conn_down(c, "bad answer to DHELLO");
			return -1;
		}
		if (c->peer.instance && ok.instance != c->peer.instance) {
			conn_remove(c, SIPC_EPEERGONE);
			return -1;
		}
		if (on_ready(c, &ok) == -1) {
			conn_down(c, "out of memory");
			return -1;
		}
		return 0;
	case WIRE_ERROR:
		if (wire_dec_error(p, h->len, &e) != 0) {
			conn_down(c, "malformed ERROR");
			return -1;
		}
		if (e.code == WIRE_ERR_AUTH) {
			/* It wants TLS or a password we do not have. */
			conn_kill(c, SIPC_EAUTH, 0);
			return -1;
		}
		if (e.code == WIRE_ERR_WRONG_RECEIVER ||
		    e.code == WIRE_ERR_VERSION) {
			/* Not the receiver we look for: another process
			 * has its address now. */
			conn_remove(c, e.code == WIRE_ERR_VERSION ?
			    SIPC_EPROTO : SIPC_EPEERGONE);
			return -1;
		}
		snprintf(why, sizeof(why), "receiver says %s: %.*s",
		    wire_errcode_name(e.code), (int)e.text.len, e.text.ptr);
		conn_down(c, why);
		return -1;
	case WIRE_ACK:
		if (wire_dec_u64(p, h->len, &v) != 0 || c->state != C_READY) {
			conn_down(c, "bad ACK");
			return -1;
		}
		on_ack(c, v);
		return 0;
	case WIRE_PING:
		if (wire_dec_u64(p, h->len, &v) == 0) {
			ctl_ping(c, WIRE_PONG, h->reqid, v);
			return conn_write(c);
		}
		return 0;
	case WIRE_PONG:
		return 0;
	default:
		conn_down(c, "unexpected frame from receiver");
		return -1;
	}
}

/*
 * Handles the complete frames in c->in.  When the link is going down
 * (last), it only counts acknowledgements and never closes c.  Returns 0,
 * or -1 when c is gone or down, or the input is bad.
 */
static int
conn_parse(struct conn *c, int last)
{
	struct frame_err err;
	struct frame fr;
	size_t off = 0, need;
	uint64_t v;
	int rc;

	while ((rc = frame_next(&c->framer, c->in + off, c->in_len - off, &fr,
	    &need, &err)) != 0) {
		if (rc == -1) {
			if (!last)
				conn_down(c, "bad frame from receiver");
			return -1;
		}
		if (!last) {
			if (conn_frame(c, &fr.h, fr.payload) != 0)
				return -1;
		} else if (fr.h.type == WIRE_ACK &&
		    wire_dec_u64(fr.payload, fr.h.len, &v) == 0)
			on_ack(c, v);
		off += fr.size;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static void
conn_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct sipc_sender *tx = c->tx;
	ssize_t n;

	(void)what;
	(void)fd;
	if (tx->dead)
		return;
	if (c->state == C_TLS) {
		conn_tls_step(c);
		return;
	}
	for (;;) {
		n = xp_read(&c->xp, c->in + c->in_len,
		    sizeof(c->in) - c->in_len);
		if (n == 0) {
			conn_down(c, "closed by the receiver");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_down(c, strerror(errno));
			return;
		}
		c->in_len += (size_t)n;
		live_rx(&c->live, mono_ms());
		if (conn_parse(c, 0) == -1)
			return;
	}
}

/*
 * The link is going down, perhaps because a write failed: acknowledgements
 * the receiver sent before it hung up may still wait in the socket.  Count
 * them before they go with it; reads only what is there, a bounded amount.
 */
static void
conn_last_acks(struct conn *c)
{
	ssize_t n;
	int i;

	if (c->state != C_READY || c->count == 0 || c->xp.fd == -1)
		return;
	for (i = 0; i < 16 && c->count > 0; i++) {
		n = xp_read(&c->xp, c->in + c->in_len,
		    sizeof(c->in) - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		c->in_len += (size_t)n;
		if (conn_parse(c, 1) == -1)
			return;
	}
}

static void
conn_writecb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct sipc_sender *tx = c->tx;
	socklen_t sl = sizeof(int);
	int err = 0;

	(void)what;
	if (tx->dead)
		return;
	if (c->state == C_TLS) {
		conn_tls_step(c);
		return;
	}
	if (c->state == C_CONNECTING) {
		wev_set(c->wev, &c->wev_armed, 0);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		if (err == ECONNREFUSED)
			conn_refused(c);
		else if (err)
			conn_down(c, strerror(err));
		else
			conn_connected(c);
	} else
		conn_write(c);
}

static int
handshake_ms(const struct conn *c)
{
	int ms = 3 * hb_ms(c);

	return ms < 1000 ? 1000 : ms;
}

static void
conn_close_fd(struct conn *c)
{
	if (c->rev) {
		event_free(c->rev);
		c->rev = NULL;
	}
	if (c->wev) {
		event_free(c->wev);
		c->wev = NULL;
	}
	c->wev_armed = 0;
	if (c->xp.fd != -1)
		xp_close(&c->xp);
	c->in_len = 0;
	c->ctl_len = c->ctl_off = 0;
	c->nsent = c->woff = 0;
}

static void
schedule_reconnect(struct conn *c)
{
	timer_after(c->timer, backoff_next(&c->backoff));
}

static void
lose_ready(struct conn *c)
{
	if (c->state == C_READY && atomic_fetch_sub(&c->tx->nready, 1) == 1)
		tx_notify(c->tx);
}

/*
 * The link broke; the receiver may still be there: keep its messages and
 * retry.  When it had got LEAVE, it is gone for good instead (c is freed).
 */
static void
conn_down(struct conn *c, const char *why)
{
	int was_ready = c->state == C_READY;

	(void)why;
	conn_last_acks(c);
	if (c->leaving) {
		conn_remove(c, SIPC_EPEERGONE);
		return;
	}
	lose_ready(c);
	conn_close_fd(c);
	c->state = C_DOWN;
	if (!c->dead && c->down_since == 0)
		c->down_since = mono_ms();
	if (was_ready) {
		/* Retry at once: a refusal tells a dead receiver from a
		 * broken link before more messages queue up for it. */
		backoff_reset(&c->backoff);
		timer_after(c->timer, 0);
	} else
		schedule_reconnect(c);
}

/*
 * Declares the receiver dead: what it has not acknowledged, plus extra, is
 * lost; it gets no messages, but is retried slowly while it stays
 * registered, and rejoins when it answers again.
 */
static void
conn_kill(struct conn *c, int error, uint64_t extra)
{
	struct sipc_sender *tx = c->tx;
	uint64_t n = extra;

	conn_last_acks(c);
	lose_ready(c);
	/* What it never got is lost now; what was written to it may still
	 * be read from its socket: that waits in limbo for its answer. */
	while (c->count) {
		if (ring_at(c, 0)->seq > c->sent_seq ||
		    limbo_add(c, ring_at(c, 0)->seq) == -1)
			n++;
		ring_pop(c);
	}
	c->kill_error = error;
	c->lost += n;
	conn_close_fd(c);
	c->state = C_DOWN;
	c->dead = 1;
	c->down_since = 0;
	backoff_max(&c->backoff);
	schedule_reconnect(c);
	update_backlog(tx);
	publish(tx);
	report(tx, error, c->name, n);
}

/* Forgets the receiver: reports what it did not acknowledge, frees c. */
static void
conn_remove(struct conn *c, int error)
{
	struct sipc_sender *tx = c->tx;

	conn_last_acks(c);
	lose_ready(c);
	c->state = C_DOWN;
	conn_report_skipped(c);
	limbo_settle(c, 0, c->kill_error);
	TAILQ_REMOVE(&tx->conns, c, entry);
	tx->nconns--;
	if (c->count)
		ring_lose_all(c, error);
	conn_close_fd(c);
	event_free(c->timer);
	free(c->ring);
	free(c);
	update_backlog(tx);
	publish(tx);
	tx_notify(tx);
}

/* Nobody listens at the endpoint: the receiver process is gone. */
static void
conn_refused(struct conn *c)
{
	if (c->tx->epm->ops->refused(c->tx->epm, &c->peer)) {
		conn_remove(c, SIPC_EPEERGONE);
		return;
	}
	if (c->dead) {
		conn_down(c, "connection refused");
		return;
	}
	conn_kill(c, SIPC_EPEERGONE, 0);
}

/* The link is up: DHELLO, after TLS when configured. */
static void
conn_connected(struct conn *c)
{
	struct sipc_sender *tx = c->tx;
	char host[INET6_ADDRSTRLEN + 1] = "";
	const char *name = host;

	if (tx->tls == NULL) {
		conn_dhello(c);
		return;
	}
	if (tx->tls_name[0])
		name = tx->tls_name;
	else if (c->peer.ep.family == WIRE_AF_UNIX)
		name = NULL;
	else
		addr_format_host(&c->peer.ep, host, sizeof(host));
	if (xp_tls_start(&c->xp, tx->tls, 0, tx->psk ? NULL : name) == -1) {
		conn_down(c, "cannot set up TLS");
		return;
	}
	c->state = C_TLS;
	c->deadline = mono_ms() + handshake_ms(c);
	event_add(c->rev, NULL);
	timer_after(c->timer, handshake_ms(c));
	conn_tls_step(c);
}

static void
conn_tls_step(struct conn *c)
{
	char err[400];

	switch (xp_handshake(&c->xp, c->tx->psk, 0, err, sizeof(err))) {
	case XP_DONE:
		wev_set(c->wev, &c->wev_armed, 0);
		conn_dhello(c);
		return;
	case XP_WANT_WRITE:
		wev_set(c->wev, &c->wev_armed, 1);
		return;
	case XP_WANT_READ:
		wev_set(c->wev, &c->wev_armed, 0);
		return;
	default:
		/* No data ever goes to a receiver that failed this. */
		conn_kill(c, strncmp(err, "authentication failed", 21) == 0 ?
		    SIPC_EAUTH : SIPC_ETLS, 0);
		return;
	}
}

static void
conn_dhello(struct conn *c)
{
	struct sipc_sender *tx = c->tx;
	struct wire_dhello m;
	uint8_t buf[512];
	struct wbuf w;
	uint64_t ack = tx->opts.hwm_bytes / 4;

	c->state = C_HANDSHAKE;
	live_start(&c->live, hb_ms(c), mono_ms(), 0);
	c->deadline = c->live.last_rx + handshake_ms(c);
	memset(&m, 0, sizeof(m));
	m.min_version = SIPC_PROTO_VERSION_MIN;
	m.max_version = SIPC_PROTO_VERSION_MAX;
	m.features = tx->opts.compress ? WIRE_FEAT_ZLIB : 0;
	m.sender_id = tx->id;
	m.instance = c->peer.instance;
	/* From the first message not known delivered: what it lacks before
	 * the first DATA it gets is a gap it reports. */
	m.first_seq = c->ack_seq + 1;
	m.heartbeat_ms = (uint32_t)hb_ms(c);
	m.ack_bytes = (uint32_t)(ack < 65536 ? 65536 : ack > UINT32_MAX ?
	    UINT32_MAX : ack);
	m.handle.ptr = tx->handle;
	m.handle.len = tx->hlen;
	w.data = buf;
	w.len = 0;
	w.cap = w.max = sizeof(buf);
	w.err = 0;
	c->ctl_len = c->ctl_off = 0;
	if (wire_enc_dhello(&w, 1, &m) == 0)
		ctl_add(c, &w);
	event_add(c->rev, NULL);
	timer_after(c->timer, handshake_ms(c));
	conn_write(c);
}

/* Starts a connection attempt; c may be freed when it fails at once. */
static void
conn_connect(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = endpoint_to_sa(&c->peer.ep, &ss);
	struct event_base *base = c->tx->epm->loop.base;
	int fd;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		conn_down(c, strerror(errno));
		return;
	}
	tune_data_socket(fd, ss.ss_family != AF_UNIX);
	xp_init(&c->xp, fd);
	/* Answers, acknowledgements and heartbeats: small frames, never
	 * compressed. */
	frame_init(&c->framer, sizeof(c->in) - SIPC_HEADER_SIZE, 1);
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_readcb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_writecb, c);
	if (c->rev == NULL || c->wev == NULL) {
		conn_down(c, "out of memory");
		return;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
		conn_connected(c);
		return;
	}
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		c->deadline = mono_ms() + handshake_ms(c);
		wev_set(c->wev, &c->wev_armed, 1);
		timer_after(c->timer, handshake_ms(c));
		return;
	}
	if (errno == ECONNREFUSED || errno == ENOENT) {
		conn_refused(c);
		return;
	}
	conn_down(c, strerror(errno));
}

static void
conn_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct sipc_sender *tx = c->tx;
	int64_t now = mono_ms(), next;
	int hb = hb_ms(c);

	(void)fd;
	(void)what;
	if (tx->dead)
		return;
	if (c->state == C_DOWN) {
		/* Time to retry.  A member unreachable for 3 heartbeats is
		 * declared dead first. */
		if (!c->dead && c->down_since &&
		    now - c->down_since >= (int64_t)SIPC_HEARTBEAT_MISSES * hb)
			conn_kill(c, SIPC_EPEERGONE, 0);
		else
			conn_connect(c);
		return;
	}
	if (c->state != C_READY) {
		if (now >= c->deadline)
			conn_down(c, "no answer");
		else
			timer_after(c->timer, c->deadline - now);
		return;
	}
	if (c->leaving && now >= c->deadline) {
		conn_remove(c, SIPC_EPEERGONE);
		return;
	}
	if (live_dead(&c->live, now)) {
		conn_down(c, "heartbeats missed");
		return;
	}
	if (live_ping_due(&c->live, now)) {
		ctl_ping(c, WIRE_PING, 0, (uint64_t)now);
		if (conn_write(c) == -1)
			return;
	}
	next = live_next(&c->live);
	if (c->leaving && c->deadline < next)
		next = c->deadline;
	timer_after(c->timer, next - now);
}

static int
names_reserve(struct sipc_sender *tx, size_t n)
{
	const char **nn;

	if (n <= tx->names_cap)
		return 0;
	if ((nn = realloc(tx->names, n * 2 * sizeof(*nn))) == NULL)
		return -1;
	tx->names = nn;
	tx->names_cap = n * 2;
	return 0;
}

static void
conn_new(struct sipc_sender *tx, const struct peer *p)
{
	char name[sizeof(((struct conn *)0)->name)];
	struct conn *c = NULL;

	addr_format_endpoint(&p->ep, name, sizeof(name));
	if (names_reserve(tx, tx->nconns + 1) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL ||
	    (c->timer = evtimer_new(tx->epm->loop.base, conn_timercb, c)) ==
	    NULL) {
		free(c);
		report(tx, SIPC_ENOMEM, name, 0);
		return;
	}
	c->tx = tx;
	c->peer = *p;
	c->ack_seq = c->sent_seq = tx->next_seq;	/* it gets what follows */
	c->kill_error = SIPC_EPEERGONE;
	xp_init(&c->xp, -1);
	backoff_init(&c->backoff, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
	c->confirmed = 1;
	c->state = C_DOWN;
	memcpy(c->name, name, sizeof(name));
	TAILQ_INSERT_TAIL(&tx->conns, c, entry);
	tx->nconns++;
	conn_connect(c);
}

/* ---- Watch callbacks ----------------------------------------------------- */

static int
same_endpoint(const struct wire_endpoint *a, const struct wire_endpoint *b)
{
	if (a->family != b->family)
		return 0;
	if (a->family == WIRE_AF_UNIX)
		return strcmp(a->path, b->path) == 0;
	return a->port == b->port && memcmp(a->addr, b->addr,
	    a->family == WIRE_AF_INET ? 4 : 16) == 0;
}

static void
w_join(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	if (tx->dead)
		return;
	TAILQ_FOREACH(c, &tx->conns, entry)
		if (same_endpoint(&c->peer.ep, &p->ep))
			break;
	if (c && c->peer.instance != p->instance) {
		/* Another process has the old one's address now. */
		conn_remove(c, SIPC_EPEERGONE);
		c = NULL;
	}
	if (c == NULL) {
		conn_new(tx, p);
		return;
	}
	c->peer.id = p->id;
	c->confirmed = 1;
	if (c->state == C_DOWN) {
		backoff_reset(&c->backoff);
		timer_after(c->timer, 0);
	}
}

static void
w_leave(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	if (tx->dead)
		return;
	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (p->id ? c->peer.id == p->id :
		    same_endpoint(&c->peer.ep, &p->ep) &&
		    c->peer.instance == p->instance)
			break;
	}
	if (c == NULL || c->leaving)
		return;
	if (c->state == C_READY && c->count > 0) {
		/* Its last acknowledgements may still be on the way: give
		 * them a moment before counting what is lost. */
		c->leaving = 1;
		c->deadline = mono_ms() + LEAVE_LINGER_MS;
		update_backlog(tx);
		ctl_ping(c, WIRE_PING, 0, 1);
		if (conn_write(c) == 0)
			timer_after(c->timer, LEAVE_LINGER_MS);
		return;
	}
	conn_remove(c, SIPC_EPEERGONE);
}

static void
w_resync(void *arg)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	TAILQ_FOREACH(c, &tx->conns, entry)
		c->confirmed = 0;
}

static void
resync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;
	struct conn *c, *cn;

	(void)fd;
	(void)what;
	if (tx->dead)
		return;
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (!c->confirmed)
			conn_remove(c, SIPC_EPEERGONE);
	}
}

static void
w_synced(void *arg)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	if (tx->dead)
		return;
	if (!atomic_exchange(&tx->synced, 1))
		tx_notify(tx);
	TAILQ_FOREACH(c, &tx->conns, entry)
		if (!c->confirmed)
			break;
	if (c == NULL)
		return;
	/* After a broker restart receivers come back one by one; give them
	 * time before dropping what the snapshot lacks. */
	timer_after(tx->resync_timer,
	    tx->epm->ops->resync_grace_ms);
}

/* ---- Hand-off and dispatch ----------------------------------------------- */

static void
dispatch(struct sipc_sender *tx, struct msg *m)
{
	size_t body = m->body, ne = 0;
	struct conn *c, *cn;

	m->seq = ++tx->next_seq;
	wire_be64(m->frame + SIPC_HEADER_SIZE, m->seq);
	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		struct msg *use = m;

		cn = TAILQ_NEXT(c, entry);
		/* Gone from the registry: not a receiver of this message. */
		if (c->leaving)
			continue;
		/* Still registered but dead: it misses this one. */
		if (c->dead) {
			c->skips_unreported++;
			tx->unreported_n++;
			continue;
		}
		if (c->max_message && body > c->max_message) {
			c->toobig_unreported++;
			tx->unreported_n++;
			continue;
		}
		if (c->count > 0 &&
		    c->unacked_bytes + m->flen > tx->opts.hwm_bytes) {
			if (tx->opts.policy == SIPC_POLICY_DROP) {
				c->dropped++;
				c->drops_unreported++;
				tx->unreported_n++;
				tx->st_dropped++;
				continue;
			}
			if (tx->opts.policy == SIPC_POLICY_DISCONNECT) {
				conn_kill(c, SIPC_ESLOW, 1);
				continue;
			}
		}
		if (tx->opts.compress && c->state == C_READY && !c->zlib &&
		    msg_compressed(m))
			use = msg_plain(m);
		if (use == NULL || ring_push(c, use) == -1) {
			c->lost++;
			report(tx, SIPC_ENOMEM, c->name, 1);
			continue;
		}
		tx->unacked++;
		tx->names[ne++] = c->name;
	}
	if (tx->opts.after_send && !tx->dead)
		tx->opts.after_send(tx, m->seq, tx->names, ne, tx->opts.arg);
	msg_unref(tx, m);
}

static void
drain(struct sipc_sender *tx)
{
	struct conn *c, *cn;
	struct msg *m;
	size_t bytes = 0;
	int n = 0;

	for (;;) {
		if ((m = mpsc_pop(&tx->q)) == NULL) {
			/* Producers that push from now on wake us again. */
			atomic_store(&tx->wake_pending, 0);
			if ((m = mpsc_pop(&tx->q)) == NULL) {
				/* A sender between its two steps saw us busy
				 * and did not wake us: come back for it. */
				if (mpsc_busy(&tx->q)) {
					atomic_store(&tx->wake_pending, 1);
					event_active(tx->wake_ev, EV_READ, 0);
				}
				break;
			}
			atomic_store(&tx->wake_pending, 1);
		}
		bytes += m->flen;
		dispatch(tx, m);
		if (tx->dead)
			return;
		if (++n >= DRAIN_BUDGET) {
			/* Let other events in, then go on. */
			event_active(tx->wake_ev, EV_READ, 0);
			break;
		}
	}
	if (n == 0)
		return;
	/* Once per batch, not per message: these lines are shared with the
	 * sending threads.  The count of unacknowledged messages goes out
	 * before the hand-off count drops, so that a flush never sees both
	 * at zero while this batch is in flight; the backlog goes out first
	 * too, so that a blocked sender never counts the batch in neither;
	 * and so do the messages skipped, waiting for their report. */
	update_backlog(tx);
	publish(tx);
	if (tx->unreported_n)
		atomic_store(&tx->unreported, tx->unreported_n);
	tx->drained_b += bytes;
	tx->drained_n += (size_t)n;
	atomic_store(&tx->drained_bytes, tx->drained_b);
	atomic_store(&tx->drained_count, tx->drained_n);
	recycle_flush(tx);
	report_skipped(tx, 0);
	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->state == C_READY && c->nsent < c->count)
			conn_write(c);
	}
	/* Blocked senders may go on: the hand-off count dropped. */
	tx_notify(tx);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;

	(void)fd;
	(void)what;
	if (!tx->dead)
		drain(tx);
}

/* ---- Public API ---------------------------------------------------------- */

void
sipc_sender_opts_init(struct sipc_sender_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_message = SIPC_DEF_MESSAGE_MAX;
	o->hwm_bytes = 8 * 1024 * 1024;
	o->policy = SIPC_POLICY_BLOCK;
	o->send_timeout_ms = 10000;
	o->linger_ms = 5000;
	o->heartbeat_ms = SIPC_DEF_HEARTBEAT_MS;
}

static void
start_on_loop(void *arg)
{
	struct sipc_sender *tx = arg;
	struct event_base *base = tx->epm->loop.base;

	tx->wake_ev = event_new(base, -1, 0, wake_cb, tx);
	tx->resync_timer = evtimer_new(base, resync_cb, tx);
	tx->report_timer = evtimer_new(base, report_cb, tx);
	if (tx->wake_ev == NULL || tx->resync_timer == NULL ||
	    tx->report_timer == NULL)
		return;
	tx->watch.handle = tx->handle;
	tx->watch.hlen = tx->hlen;
	tx->watch.on_join = w_join;
	tx->watch.on_leave = w_leave;
	tx->watch.on_resync = w_resync;
	tx->watch.on_synced = w_synced;
	tx->watch.arg = tx;
	epm_watch_add(tx->epm, &tx->watch);
}

static int	tx_wait(struct sipc_sender *,
		    int (*)(struct sipc_sender *, size_t), size_t, int64_t);

static int
is_synced(struct sipc_sender *tx, size_t unused)
{
	(void)unused;
	return atomic_load(&tx->synced) || !atomic_load(&tx->epm->connected);
}

int
sipc_sender_new(const char *handle, sipc_epm *epm,
    const struct sipc_sender_opts *opts, sipc_sender **out)
{
	struct sipc_sender *tx;
	size_t hlen;
	int rc;

	clearerr_sipc();
	if (handle == NULL || out == NULL)
		return seterr(SIPC_EINVAL, "handle and out must not be NULL");
	hlen = strlen(handle);
	if (!wire_handle_valid(handle, hlen))
		return seterr(SIPC_EINVAL, "invalid handle '%s': 1 to %d "
		    "bytes of UTF-8 without control characters", handle,
		    SIPC_HANDLE_MAX);
	/* Aligned: its hand-off fields keep to their own cache lines. */
	if ((tx = aligned_alloc(CACHE_LINE, (sizeof(*tx) + CACHE_LINE - 1) /
	    CACHE_LINE * CACHE_LINE)) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	memset(tx, 0, sizeof(*tx));
	if (opts)
		tx->opts = *opts;
	else
		sipc_sender_opts_init(&tx->opts);
	if (tx->opts.max_message > SIPC_MAX_MESSAGE_MAX ||
	    tx->opts.hwm_bytes == 0 || tx->opts.policy < SIPC_POLICY_BLOCK ||
	    tx->opts.policy > SIPC_POLICY_DISCONNECT ||
	    tx->opts.heartbeat_ms < SIPC_MIN_HEARTBEAT_MS ||
	    tx->opts.heartbeat_ms > SIPC_MAX_HEARTBEAT_MS) {
		free(tx);
		return seterr(SIPC_EINVAL, "sender options out of range "
		    "(max_message <= 1 GiB, hwm_bytes > 0, policy, "
		    "heartbeat_ms %d..%d)", SIPC_MIN_HEARTBEAT_MS,
		    SIPC_MAX_HEARTBEAT_MS);
	}
	memcpy(tx->handle, handle, hlen + 1);
	tx->hlen = (uint16_t)hlen;
	tx->id = random_u64();
	if ((rc = security_ctx(&tx->opts.security, 0, &tx->tls,
	    &tx->psk)) != 0) {
		free(tx);
		return rc;
	}
	if (tx->opts.security.tls_server_name)
		snprintf(tx->tls_name, sizeof(tx->tls_name), "%s",
		    tx->opts.security.tls_server_name);
	memset(&tx->opts.security, 0, sizeof(tx->opts.security));
	TAILQ_INIT(&tx->conns);
	pthread_mutex_init(&tx->mu, NULL);
	pthread_mutex_init(&tx->pmu, NULL);
	cond_init_mono(&tx->cv);
	if (mpsc_init(&tx->q) == -1) {
		if (tx->tls)
			SSL_CTX_free(tx->tls);
		free(tx);
		return seterr(SIPC_ENOMEM, "out of memory");
	}
	if ((rc = epm_acquire(epm, &tx->epm)) != 0) {
		if (tx->tls)
			SSL_CTX_free(tx->tls);
		free(tx->q.stub);
		free(tx);
		return rc;
	}
	loop_call(&tx->epm->loop, start_on_loop, tx);
	if (tx->wake_ev == NULL || tx->resync_timer == NULL ||
	    tx->report_timer == NULL) {
		sipc_sender_close(tx);
		return seterr(SIPC_ENOMEM, "out of memory");
	}
	/* With a broker session up, learn the receivers registered now
	 * before returning, so that the first message reaches them too. */
	if (atomic_load(&tx->epm->connected) &&
	    !loop_in_thread(&tx->epm->loop))
		tx_wait(tx, is_synced, 0, deadline_after(SYNC_WAIT_MS));
	*out = tx;
	return 0;
}

/* Waits for pred(tx, arg); see tx_notify for the wake-ups. */
static int
tx_wait(struct sipc_sender *tx, int (*pred)(struct sipc_sender *, size_t),
    size_t arg, int64_t deadline)
{
	int64_t now, until;
	int ok;

	pthread_mutex_lock(&tx->mu);
	atomic_fetch_add(&tx->waiters, 1);
	while (!(ok = pred(tx, arg))) {
		now = mono_ms();
		if (deadline >= 0 && now >= deadline)
			break;
		/* Bounded waits: a lost wake-up costs 100 ms, not a hang. */
		until = now + 100;
		if (deadline >= 0 && deadline < until)
			until = deadline;
		cond_wait_until(&tx->cv, &tx->mu, until);
	}
	atomic_fetch_sub(&tx->waiters, 1);
	pthread_mutex_unlock(&tx->mu);
	return ok;
}

/* Bytes and messages in the hand-off queue.  Drained first: a message
 * is counted as pushed before it can be drained, so no underflow. */
static size_t
handoff_bytes(struct sipc_sender *tx)
{
	size_t out = atomic_load(&tx->drained_bytes);

	return atomic_load(&tx->pushed_bytes) - out;
}

static size_t
handoff_count(struct sipc_sender *tx)
{
	size_t out = atomic_load(&tx->drained_count);

	return atomic_load(&tx->pushed_count) - out;
}

static int
has_room(struct sipc_sender *tx, size_t flen)
{
	size_t hb = handoff_bytes(tx);
	size_t bl = tx->opts.policy == SIPC_POLICY_BLOCK ?
	    atomic_load(&tx->max_backlog) : 0;

	if (atomic_load(&tx->closing))
		return 1;
	/* A message larger than the mark still goes when nothing waits. */
	return (hb == 0 && bl == 0) || hb + bl + flen <= tx->opts.hwm_bytes;
}

int
sipc_send(sipc_sender *tx, const void *data, size_t len)
{
	size_t flen = DATA_HDR + len, zlen = 0;
	struct wire_header h;
	uint8_t *z = NULL;
	struct msg *m;
	int rc;

	if (tx == NULL || (data == NULL && len > 0))
		return seterr(SIPC_EINVAL, "sipc_send: NULL argument");
	if (atomic_load(&tx->closing))
		return seterr(SIPC_ECLOSED, "sender is closing");
	if (len > tx->opts.max_message)
		return seterr(SIPC_ETOOBIG, "message of %zu bytes exceeds "
		    "max_message (%zu bytes)", len, tx->opts.max_message);
	if (!has_room(tx, flen)) {
		/* On the I/O thread nothing can drain while we wait. */
		if (loop_in_thread(&tx->epm->loop) ||
		    !tx_wait(tx, has_room, flen,
		    deadline_after(tx->opts.send_timeout_ms)))
			return seterr(SIPC_ETIMEDOUT, "a receiver stayed at its "
			    "high-water mark (%zu bytes)", tx->opts.hwm_bytes);
	}
	h.version = SIPC_PROTO_VERSION_MAX;
	h.type = WIRE_DATA;
	h.flags = 0;
	h.reqid = 0;
	/* Compressed here, on the caller's thread, once for every receiver;
	 * the sequence number stays outside the zlib stream so the I/O
	 * thread can stamp it. */
	if (tx->opts.compress && len >= ZF_MIN_DATA &&
	    (rc = zf_deflate(data, len, &z, &zlen)) == 0) {
		h.flags = WIRE_F_COMPRESSED;
		flen = DATA_HDR + zlen;
	}
	if ((m = msg_alloc(tx, flen)) == NULL) {
		free(z);
		return seterr(SIPC_ENOMEM, "out of memory");
	}
	m->refs = 1;
	m->plain = NULL;
	m->flen = flen;
	m->body = len;
	h.len = (uint32_t)(flen - SIPC_HEADER_SIZE);
	wire_header_encode(m->frame, &h);
	if (z) {
		memcpy(m->frame + DATA_HDR, z, zlen);
		free(z);
	} else if (len)
		memcpy(m->frame + DATA_HDR, data, len);
	atomic_fetch_add(&tx->pushed_bytes, flen);
	atomic_fetch_add(&tx->pushed_count, 1);
	mpsc_push(&tx->q, m);
	/* While the I/O thread drains, it needs no wake-up: a plain load
	 * (seq_cst, after the push) is enough to see that. */
	if (atomic_load(&tx->wake_pending) == 0 &&
	    atomic_exchange(&tx->wake_pending, 1) == 0)
		event_active(tx->wake_ev, EV_READ, 0);
	return 0;
}

static int
enough_ready(struct sipc_sender *tx, size_t n)
{
	return atomic_load(&tx->nready) >= n || atomic_load(&tx->closing);
}

int
sipc_sender_wait_receivers(sipc_sender *tx, size_t n, int timeout_ms)
{
	if (tx == NULL)
		return seterr(SIPC_EINVAL, "sender is NULL");
	if (!enough_ready(tx, n)) {
		if (loop_in_thread(&tx->epm->loop))
			return seterr(SIPC_EINVAL, "cannot wait on the I/O "
			    "thread");
		if (!tx_wait(tx, enough_ready, n, deadline_after(timeout_ms)))
			return seterr(SIPC_ETIMEDOUT, "%zu of %zu receivers "
			    "after %d ms", atomic_load(&tx->nready), n,
			    timeout_ms);
	}
	return atomic_load(&tx->closing) ? SIPC_ECLOSED : 0;
}

size_t
sipc_sender_receivers(sipc_sender *tx)
{
	return tx ? atomic_load(&tx->nready) : 0;
}

static void
flush_kick(void *arg)
{
	struct sipc_sender *tx = arg;
	struct conn *c, *cn;

	report_skipped(tx, 1);
	/* A PING makes each receiver acknowledge what it has now. */
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->state == C_READY && c->count > 0) {
			ctl_ping(c, WIRE_PING, 0, 0);
			conn_write(c);
		}
	}
}

static int
all_acked(struct sipc_sender *tx, size_t unused)
{
	(void)unused;
	return handoff_count(tx) == 0 &&
	    atomic_load(&tx->unacked_total) == 0 &&
	    atomic_load(&tx->unreported) == 0;
}

int
sipc_sender_flush(sipc_sender *tx, int timeout_ms)
{
	int64_t deadline = deadline_after(timeout_ms), next;

	if (tx == NULL)
		return seterr(SIPC_EINVAL, "sender is NULL");
	if (loop_in_thread(&tx->epm->loop))
		return seterr(SIPC_EINVAL, "cannot flush on the I/O thread");
	for (;;) {
		if (all_acked(tx, 0))
			return 0;
		loop_call(&tx->epm->loop, flush_kick, tx);
		/* Ask again every second: acknowledgements of messages that
		 * were still queued at the first PING follow later. */
		next = mono_ms() + 1000;
		if (deadline >= 0 && deadline < next)
			next = deadline;
		if (tx_wait(tx, all_acked, 0, next))
			return 0;
		if (deadline >= 0 && mono_ms() >= deadline)
			return seterr(SIPC_ETIMEDOUT, "%zu messages not "
			    "acknowledged after %d ms",
			    atomic_load(&tx->unacked_total) +
			    handoff_count(tx), timeout_ms);
	}
}

struct stats_args {
	struct sipc_sender		*tx;
	struct sipc_sender_stats	*st;
	struct sipc_receiver_info	*info;
	size_t				 max;
	int				 n;
};

static void
stats_on_loop(void *arg)
{
	struct stats_args *a = arg;
	struct sipc_sender *tx = a->tx;
	struct conn *c;

	if (a->st) {
		memset(a->st, 0, sizeof(*a->st));
		a->st->sent = atomic_load(&tx->pushed_count);
		a->st->delivered = tx->st_delivered;
		a->st->lost = tx->st_lost + tx->unreported_n;
		a->st->dropped = tx->st_dropped;
		a->st->queued_bytes = atomic_load(&tx->max_backlog);
	}
	a->n = 0;
	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (a->info && (size_t)a->n < a->max) {
			struct sipc_receiver_info *i = &a->info[a->n];

			memset(i, 0, sizeof(*i));
			snprintf(i->endpoint, sizeof(i->endpoint), "%s",
			    c->name);
			i->connected = c->state == C_READY;
			i->queued_bytes = c->unacked_bytes;
			i->sent = c->acked;
			i->dropped = c->dropped;
			i->lost = c->lost;
		}
		a->n++;
	}
}

int
sipc_sender_stats(sipc_sender *tx, struct sipc_sender_stats *st)
{
	struct stats_args a = { tx, st, NULL, 0, 0 };

	if (tx == NULL || st == NULL)
		return seterr(SIPC_EINVAL, "NULL argument");
	loop_call(&tx->epm->loop, stats_on_loop, &a);
	return 0;
}

int
sipc_sender_receiver_stats(sipc_sender *tx, struct sipc_receiver_info *info,
    size_t max)
{
	struct stats_args a = { tx, NULL, info, max, 0 };

	if (tx == NULL || (info == NULL && max > 0))
		return seterr(SIPC_EINVAL, "NULL argument");
	loop_call(&tx->epm->loop, stats_on_loop, &a);
	return a.n;
}

/* The reaper: runs as its own event, after every callback that might
 * still hold a pointer into the sender has returned. */
static void
sender_destroy(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;
	sipc_epm *epm = tx->epm;
	struct conn *c;
	struct msg *m;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&tx->conns)) != NULL) {
		while (c->count)
			ring_pop(c);
		conn_remove(c, SIPC_ETIMEDOUT);
	}
	while ((m = mpsc_pop(&tx->q)) != NULL)
		free(m);
	free(tx->q.stub);
	recycle_free(tx);
	pthread_mutex_destroy(&tx->pmu);
	if (tx->wake_ev)
		event_free(tx->wake_ev);
	if (tx->resync_timer)
		event_free(tx->resync_timer);
	if (tx->report_timer)
		event_free(tx->report_timer);
	free(tx->names);
	if (tx->tls)
		SSL_CTX_free(tx->tls);
	pthread_mutex_destroy(&tx->mu);
	pthread_cond_destroy(&tx->cv);
	free(tx);
	epm_release(epm);
}

struct close_args {
	struct sipc_sender	*tx;
	int			 lost;
	int			 now;	/* free at once, not after callbacks */
};

static void
close_on_loop(void *arg)
{
	struct close_args *a = arg;
	struct sipc_sender *tx = a->tx;
	struct timeval now = { 0, 0 };
	struct conn *c, *cn;
	struct msg *m;

	if (tx->watch.on_join)
		epm_watch_remove(tx->epm, &tx->watch);
	/* Whatever was not handed out or acknowledged is lost now. */
	while ((m = mpsc_pop(&tx->q)) != NULL) {
		a->lost = 1;
		tx->drained_b += m->flen;
		tx->drained_n++;
		free(m);
	}
	atomic_store(&tx->drained_bytes, tx->drained_b);
	atomic_store(&tx->drained_count, tx->drained_n);
	for (c = TAILQ_FIRST(&tx->conns); c && !tx->dead; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		conn_last_acks(c);
		conn_report_skipped(c);
		if (c->count || c->nlimbo)
			a->lost = 1;
		limbo_settle(c, 0, c->kill_error);
		if (c->count) {
			c->lost += c->count;
			report(tx, SIPC_ETIMEDOUT, c->name, c->count);
		}
	}
	tx->dead = 1;
	if (a->now || event_base_once(tx->epm->loop.base, -1, EV_TIMEOUT,
	    sender_destroy, tx, &now) == -1)
		sender_destroy(-1, 0, tx);
}

int
sipc_sender_close(sipc_sender *tx)
{
	struct close_args a = { tx, 0, 0 };
	sipc_epm *hold;

	if (tx == NULL)
		return 0;
	if (loop_in_thread(&tx->epm->loop)) {
		/* Perhaps inside one of tx's callbacks: freed after it. */
		atomic_store(&tx->closing, 1);
		tx_notify(tx);
		close_on_loop(&a);
	} else {
		if (tx->opts.linger_ms != 0)
			sipc_sender_flush(tx, tx->opts.linger_ms);
		atomic_store(&tx->closing, 1);
		tx_notify(tx);
		/* As sipc_receiver_close(): freed at once, and the EPM is
		 * released on this thread. */
		a.now = 1;
		epm_acquire(tx->epm, &hold);
		loop_call(&hold->loop, close_on_loop, &a);
		epm_release(hold);
	}
	return a.lost ? seterr(SIPC_ETIMEDOUT, "messages not acknowledged "
	    "before close were reported lost") : 0;
}
