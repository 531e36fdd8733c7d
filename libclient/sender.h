/*
 * sender.h - what the four files of the sender share (internal to
 * libsipc): a message and its buffer, the hand-off queue, one connection
 * to one receiver, the sender itself, and the functions each file offers
 * the others.
 *
 *   sender.c        the public API, hand-off and dispatch, direct sends
 *                   (the sending thread doing the I/O thread's work, under
 *                   io_mu), statistics, close
 *   sender_watch.c  the receivers a sender follows (watch callbacks)
 *   sender_msgs.c   message buffers and their recycling, each
 *                   connection's ring of unacknowledged messages (its hot
 *                   part inline here, with the hand-off queue), messages
 *                   in limbo, loss reports
 *   sender_conn.c   one connection to one receiver: connect, TLS, DHELLO,
 *                   writing, acknowledgements, heartbeats, going down
 *   sender_shm.c    the shared-memory ring of same-host receivers
 */
#ifndef SIPC_SENDER_H
#define SIPC_SENDER_H

#include <stdint.h>
#include <stdlib.h>

#include "../common/liveness.h"
#include "../proto/frame.h"
#include "internal.h"
#include "shm.h"
#include "xport.h"

#define DATA_HDR	(SIPC_HEADER_SIZE + SIPC_DATA_PREFIX)
#define DRAIN_BUDGET	8192		/* messages per turn of the loop */
#define MAX_IOV		1024
/*
 * Frames up to WCOPY_MAX bytes are copied into one staging buffer of
 * WSTAGE bytes per writev() instead of each taking an iovec of its own:
 * the kernel's copy of many small iovecs (per-segment user access, 80 B
 * at a time) was 23 % of all CPU time with 64 B messages over TCP.
 */
#define WCOPY_MAX	512
#define WSTAGE		(64 * 1024)
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 1000
#define LEAVE_LINGER_MS	1000		/* final ACKs after a LEAVE */
#define SYNC_WAIT_MS	5000		/* for the first receiver list */
#define REPORT_MS	100		/* messages skipped for a receiver:
					   reported at most this often */

struct msg {
	_Atomic(struct msg *)	 next;
	unsigned		 refs;		/* under io_mu */
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
 * Buffers up to RECYCLE_CAP are kept, half the high-water mark of them at
 * most (msg_unref()).  2 MiB: 1 MiB messages through the shared-memory
 * ring went from 1,600-2,600 to 7,600-8,500 a second (sender CPU from
 * 480 to 110 us a message), the sending thread no longer faulting in 256
 * fresh pages for each.
 */
#define RECYCLE_CAP	(2 * 1024 * 1024)
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

/* A connection's use of the shared-memory ring (sender_shm.c). */
enum shm_state {
	SHM_OFF,	/* the socket carries messages */
	SHM_GRANTED,	/* the socket, until a message finds no other
			   waiting for room in the ring */
	SHM_PINNED,	/* messages from shm_from on are in the ring for it;
			   those before still go on the socket, then
			   SHM_RING */
	SHM_ATTACHED,	/* the ring */
	SHM_DETACHED	/* dropped at the mark: reads its old ring to the
			   end, gets nothing meanwhile */
};

/* On the ring: its position holds the ring's room. */
#define SHM_ON_RING(c)	((c)->shm == SHM_PINNED || (c)->shm == SHM_ATTACHED)

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
	/* Shared memory: the receiver's cursor page (read-only here) and
	 * eventfd; where it started in the ring, which ring it was told
	 * of, and (detached) where its old ring ends. */
	enum shm_state		 shm;
	int			 samehost;	/* on its Unix socket, not TCP */
	int			 samehost_off;	/* that failed: TCP */
	int			 shm_announce;	/* SHM_RING to send */
	int			 shm_bad;	/* its cursor lies: cut off */
	struct shm_cursor	 cur;
	int			 rx_efd;
	uint64_t		 shm_start;
	uint64_t		 shm_from;	/* first seq in the ring */
	uint64_t		 shm_gen;
	uint64_t		 shm_final;
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
	/* Sending threads only: when the last direct send ended, or one
	 * was refused (ns). */
	_Alignas(CACHE_LINE) _Atomic int64_t direct_ns;

	/*
	 * The fields marked "I/O thread" below (and each connection) belong
	 * to whoever holds io_mu: the I/O thread in each callback of this
	 * sender, or a sending thread in a direct send (sender.c).
	 * io_owner: the thread holding it.
	 */
	_Alignas(CACHE_LINE) pthread_mutex_t io_mu;
	_Atomic(pthread_t)	 io_owner;
	int			 direct;	/* a direct send holds io_mu */

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
	uint8_t			*wstage;	/* WSTAGE bytes; NULL: none yet */
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
	uint64_t		 st_direct;	/* messages sent directly */
	/* Shared memory (sender_shm.c), I/O thread only: the ring (fd -1:
	 * none yet), the eventfd receivers wake us on, the messages waiting
	 * for room in the ring (the first maybe partly in, as CHUNKs). */
	struct shm_ring		 ring;
	uint64_t		 ring_gen;
	int			 shm_efd;
	struct event		*shm_ev;
	size_t			 shm_attached;
	int			 shm_dirty;	/* written, not published */
	uint32_t		 shm_want;	/* want_progress, as set */
	uint64_t		 shm_written;	/* last seq whole in the ring */
	/* A position every receiver on the ring has passed: ring_tail() as
	 * last computed (positions only grow), recomputed only when a
	 * message does not fit behind it. */
	uint64_t		 shm_tail;
	struct msg		**pend;
	size_t			 pend_cap;
	size_t			 pend_head;
	size_t			 pend_n;
	uint64_t		 pend_off;
};

/*
 * Takes io_mu for a callback of tx on the I/O thread, unless this thread
 * holds it already (a callback inside another, sipc_sender_close() inside
 * a callback): 1 when taken, to give to tx_leave().
 */
static inline int
tx_enter(struct sipc_sender *tx)
{
	if (pthread_equal(atomic_load_explicit(&tx->io_owner,
	    memory_order_relaxed), pthread_self()))
		return 0;
	pthread_mutex_lock(&tx->io_mu);
	atomic_store_explicit(&tx->io_owner, pthread_self(),
	    memory_order_relaxed);
	return 1;
}

static inline void
tx_leave(struct sipc_sender *tx, int taken)
{
	if (!taken)
		return;
	atomic_store_explicit(&tx->io_owner, (pthread_t)0,
	    memory_order_relaxed);
	pthread_mutex_unlock(&tx->io_mu);
}

/* The hand-off queue, inlined where it is used. */
static inline int
mpsc_init(struct mpsc *q)
{
	if ((q->stub = calloc(1, sizeof(struct msg))) == NULL)
		return -1;
	atomic_init(&q->stub->next, NULL);
	atomic_init(&q->tail, q->stub);
	q->head = q->stub;
	return 0;
}

static inline void
mpsc_push(struct mpsc *q, struct msg *m)
{
	struct msg *prev;

	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&q->tail, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

/* NULL when empty or when a producer is between its two steps (it then
 * wakes the consumer itself). */
static inline struct msg *
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
static inline int
mpsc_busy(struct mpsc *q)
{
	return atomic_load(&q->tail) != q->head;
}

/* sender_msgs.c, and its hot part, here to be inlined: the ring of a
 * connection. */
void	msg_unref(struct sipc_sender *tx, struct msg *m);

/* ---- Ring of unacknowledged messages ------------------------------------- */

static inline struct msg *
ring_at(const struct conn *c, size_t i)
{
	return c->ring[(c->head + i) & (c->cap - 1)];
}

static inline int
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
static inline void
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

/* 1 when m's body is a zlib stream. */
static inline int
msg_compressed(const struct msg *m)
{
	return ((m->frame[4] << 8 | m->frame[5]) & WIRE_F_COMPRESSED) != 0;
}

/* sender_msgs.c */
struct msg	*msg_alloc(struct sipc_sender *tx, size_t flen);
void	recycle_flush(struct sipc_sender *tx);
void	recycle_free(struct sipc_sender *tx);
void	ring_lose_all(struct conn *c, int error);
struct msg	*msg_plain(struct msg *m);
int	limbo_add(struct conn *c, uint64_t seq);
void	limbo_settle(struct conn *c, uint64_t last_seq, int error);
void	conn_report_skipped(struct conn *c);
void	report_skipped(struct sipc_sender *tx, int now);
void	report_cb(evutil_socket_t fd, short what, void *arg);
/* Schedules the report of what was skipped, REPORT_MS after the last one,
 * without making it (also for a direct send: callbacks run on the I/O
 * thread). */
void	report_later(struct sipc_sender *tx);

/* sender_conn.c */
void	ctl_add(struct conn *c, const struct wbuf *w);
void	on_ack(struct conn *c, uint64_t seq);
void	ctl_ping(struct conn *c, uint8_t type, uint32_t reqid, uint64_t token);
int	conn_write(struct conn *c);
void	conn_last_acks(struct conn *c);
void	conn_kill(struct conn *c, int error, uint64_t extra);
void	conn_remove(struct conn *c, int error);
void	conn_new(struct sipc_sender *tx, const struct peer *p);

/* sender_shm.c, on the I/O thread */
/* The SHM feature bit to offer on c (a plain Unix socket), or 0. */
uint32_t tshm_offer(struct conn *c);
void	tshm_ready(struct conn *c, uint32_t features);
/* Puts c on the ring from message seq on, when nothing waits for room
 * (SHM_GRANTED), or after a drop (SHM_DETACHED, seq: the next): 1 when it
 * is on now. */
int	tshm_pin(struct conn *c, uint64_t seq);
/* Sends SHM_RING on an idle socket: 0 (sent or given up), 1 would block,
 * -1 the socket failed. */
int	tshm_announce(struct conn *c);
/* SHM_CURSOR: 0, or -1 when it is not right. */
int	tshm_on_cursor(struct conn *c, const uint8_t *p, size_t len);
/* Writes m into the ring (or queues it for room): 0, or -1 (memory). */
int	tshm_put(struct sipc_sender *tx, struct msg *m);
/* Room to queue one more message for room in the ring without
 * allocating: 0, or -1 (memory). */
int	tshm_reserve(struct sipc_sender *tx);
/* Publishes what was written and wakes receivers asleep. */
void	tshm_publish(struct sipc_sender *tx);
/* Reads every cursor: acknowledgements, room, rejoining receivers. */
void	tshm_poll(struct sipc_sender *tx);
void	tshm_last_acks(struct conn *c);
/* Publishes what was written and takes c's acknowledgements so far. */
void	tshm_refresh(struct conn *c);
/* c at its mark under DROP: off the ring until it caught up (pinned:
 * back to its socket). */
void	tshm_drop(struct conn *c);
/* c's socket closes: its cursor goes, the ring is retired if it was on
 * it. */
void	tshm_release(struct conn *c);
void	tshm_close(struct sipc_sender *tx);

/* sender.c */
void	tx_notify(struct sipc_sender *tx);
void	publish(struct sipc_sender *tx);
void	update_backlog(struct sipc_sender *tx);

/* sender_watch.c: on the I/O thread. */
void	sender_watch_start(struct sipc_sender *tx);
void	sender_resync_cb(evutil_socket_t fd, short what, void *arg);
void	report(struct sipc_sender *tx, int error, const char *name, uint64_t n);

#endif
