/*
 * sender.c - senders: the outbound data path, and its public API (the
 * rest is in sender_msgs.c and sender_conn.c; sender.h says who does what).
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
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../proto/zframe.h"
#include "sender.h"

/* Wakes threads in wait_receivers, flush or a blocked send. */
void
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
void
publish(struct sipc_sender *tx)
{
	atomic_store_explicit(&tx->unacked_total, tx->unacked,
	    memory_order_release);
	if (tx->unacked == 0)
		tx_notify(tx);
}

void
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

void
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

/* ---- Hand-off and dispatch ----------------------------------------------- */

static void
dispatch(struct sipc_sender *tx, struct msg *m)
{
	size_t body = m->body, ne = 0;
	struct conn *c, *cn;
	int shm = 0;

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
		/* Onto the ring from this message, if nothing waits for
		 * room there. */
		if (c->shm == SHM_GRANTED && c->state == C_READY)
			tshm_pin(c, m->seq);
		/* Dropped at the mark, off the ring: it misses this one. */
		if (c->shm == SHM_DETACHED) {
			c->dropped++;
			c->drops_unreported++;
			tx->unreported_n++;
			tx->st_dropped++;
			continue;
		}
		/* At the mark on the ring: what the receiver released so far
		 * first (it reads while we write). */
		if (c->shm == SHM_ATTACHED && c->count > 0 &&
		    c->unacked_bytes + m->flen > tx->opts.hwm_bytes)
			tshm_refresh(c);
		if (c->count > 0 &&
		    c->unacked_bytes + m->flen > tx->opts.hwm_bytes) {
			if (tx->opts.policy == SIPC_POLICY_DROP) {
				tshm_drop(c);
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
		if (c->shm == SHM_ATTACHED) {
			/* Written for it once the ring has it. */
			c->nsent = c->count;
			c->sent_seq = m->seq;
			shm = 1;
		} else if (c->shm == SHM_PINNED)
			shm = 1;	/* in the ring, told of it soon */
	}
	if (shm && tshm_put(tx, m) == -1) {
		/* No memory to keep it for the ring: lost for those. */
		for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
			cn = TAILQ_NEXT(c, entry);
			if (SHM_ON_RING(c))
				conn_kill(c, SIPC_ENOMEM, 0);
		}
	}
	if (tx->opts.after_send && !tx->dead)
		tx->opts.after_send(tx, m->seq, tx->names, ne, tx->opts.arg);
	msg_unref(tx, m);
}

/*
 * After n messages of bytes were dispatched (a batch of the queue, or one
 * direct send).  Once per batch, not per message: these lines are shared
 * with the sending threads.  The count of unacknowledged messages goes out
 * before the hand-off count drops, so that a flush never sees both at zero
 * while the batch is in flight; the backlog goes out first too, so that a
 * blocked sender never counts the batch in neither; and so do the messages
 * skipped, waiting for their report.
 */
static void
batch_done(struct sipc_sender *tx, size_t bytes, size_t n)
{
	update_backlog(tx);
	publish(tx);
	if (tx->unreported_n)
		atomic_store(&tx->unreported, tx->unreported_n);
	tx->drained_b += bytes;
	tx->drained_n += n;
	atomic_store(&tx->drained_bytes, tx->drained_b);
	atomic_store(&tx->drained_count, tx->drained_n);
}

static void
drain(struct sipc_sender *tx)
{
	struct conn *c, *cn;
	struct msg *m;
	size_t bytes = 0;
	int n = 0;

	/* Receivers back from a drop rejoin before this batch. */
	tshm_poll(tx);
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
	batch_done(tx, bytes, (size_t)n);
	tshm_poll(tx);
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
	int taken = tx_enter(tx);

	(void)fd;
	(void)what;
	if (!tx->dead)
		drain(tx);
	tx_leave(tx, taken);
}

/*
 * Direct sends.  A message handed to an I/O thread asleep costs a wake-up
 * (an eventfd write, then the thread scheduled) before it is written: when
 * sends are sparse, the sending thread does the I/O thread's work itself,
 * under io_mu, when it can take it at once and nothing waits in the
 * hand-off queue (so each thread's messages keep their order).  A stream
 * of sends still goes through the queue: there the I/O thread writes
 * hundreds of messages per writev() while the sending thread makes the
 * next ones, and a writev() per message would cost far more than the
 * hand-off.  "Sparse": the last direct send ended, or the last hand-off
 * that woke the I/O thread happened, DIRECT_GAP_NS or more ago.  Frames
 * over DIRECT_MAX always go through the queue: each is slow enough to
 * make that a stream of them looks sparse, and a direct writev() of
 * 64 KiB over TCP (20 us, the I/O thread waiting for the lock meanwhile)
 * took 8-40 % off such a stream's rate.
 *
 * A direct send does only what cannot call back into the application or
 * wait for the I/O thread (sipc.h: callbacks run on the I/O thread; an
 * event of this sender deleted from here would wait for a callback that
 * waits for io_mu): anything else (a receiver at its mark, a receiver
 * that must be put on the ring, compression, TLS, after_send) goes
 * through the queue, and a failed write is left for the I/O thread.
 */
#define DIRECT_GAP_NS	5000
#define DIRECT_MAX	(16 * 1024)	/* bytes of frame */

/* 1 when dispatching m here does nothing direct_send() must not do. */
static int
direct_ok(struct sipc_sender *tx, const struct msg *m)
{
	struct conn *c;
	int ring = 0;

	if (tx->dead || tx->tls || tx->opts.compress || tx->opts.after_send)
		return 0;
	/* Earlier messages first. */
	if (atomic_load(&tx->pushed_count) != tx->drained_n)
		return 0;
	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (c->leaving || c->dead || c->shm == SHM_DETACHED ||
		    (c->max_message && m->body > c->max_message))
			continue;
		if (c->shm == SHM_GRANTED || c->count == c->cap ||
		    (c->count > 0 &&
		    c->unacked_bytes + m->flen > tx->opts.hwm_bytes))
			return 0;
		ring |= SHM_ON_RING(c);
	}
	return !ring || tshm_reserve(tx) == 0;
}

/* The end of drain(), for one message sent directly. */
static void
direct_finish(struct sipc_sender *tx, size_t flen)
{
	struct conn *c, *cn;

	batch_done(tx, flen, 1);
	if (tx->unreported_n)
		report_later(tx);
	tshm_publish(tx);
	recycle_flush(tx);
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->state == C_READY && c->nsent < c->count)
			conn_write(c);
		/* A cursor that lies is the I/O thread's to deal with. */
		if (c->shm_bad)
			event_active(tx->wake_ev, EV_READ, 0);
	}
	tx_notify(tx);
}

/* Sends m from this thread: 1, or 0 when it must go through the queue. */
static int
direct_send(struct sipc_sender *tx, struct msg *m)
{
	int64_t now = mono_ns(), last;
	size_t flen = m->flen;
	int ok;

	last = atomic_exchange_explicit(&tx->direct_ns, now,
	    memory_order_relaxed);
	if (now - last < DIRECT_GAP_NS ||
	    pthread_mutex_trylock(&tx->io_mu) != 0)
		return 0;
	atomic_store_explicit(&tx->io_owner, pthread_self(),
	    memory_order_relaxed);
	if ((ok = direct_ok(tx, m))) {
		/* Counted as handed off and drained, like any other. */
		atomic_fetch_add(&tx->pushed_bytes, flen);
		atomic_fetch_add(&tx->pushed_count, 1);
		tx->direct = 1;
		tx->st_direct++;
		dispatch(tx, m);
		direct_finish(tx, flen);
		tx->direct = 0;
	}
	tx_leave(tx, 1);
	if (ok)
		atomic_store_explicit(&tx->direct_ns, mono_ns(),
		    memory_order_relaxed);
	return ok;
}

/* ---- Public API ---------------------------------------------------------- */

void
sipc_sender_opts_init_size(struct sipc_sender_opts *o, size_t size)
{
	struct sipc_sender_opts d;

	memset(&d, 0, sizeof(d));
	d.max_message = SIPC_DEF_MESSAGE_MAX;
	d.hwm_bytes = 8 * 1024 * 1024;
	d.policy = SIPC_POLICY_BLOCK;
	d.send_timeout_ms = 10000;
	d.linger_ms = 5000;
	d.heartbeat_ms = SIPC_DEF_HEARTBEAT_MS;
	sized_opts(o, size, &d, sizeof(d));
}

static void
start_on_loop(void *arg)
{
	struct sipc_sender *tx = arg;
	struct event_base *base = tx->epm->loop.base;

	tx->wake_ev = event_new(base, -1, 0, wake_cb, tx);
	tx->resync_timer = evtimer_new(base, sender_resync_cb, tx);
	tx->report_timer = evtimer_new(base, report_cb, tx);
	if (tx->wake_ev == NULL || tx->resync_timer == NULL ||
	    tx->report_timer == NULL)
		return;
	sender_watch_start(tx);
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
	sipc_sender_opts_init(&tx->opts);
	if (opts && (rc = sized_in(&tx->opts, sizeof(tx->opts), opts,
	    "sipc_sender_opts")) != 0) {
		free(tx);
		return rc;
	}
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
	tx->ring.fd = tx->shm_efd = -1;
	pthread_mutex_init(&tx->mu, NULL);
	pthread_mutex_init(&tx->pmu, NULL);
	pthread_mutex_init(&tx->io_mu, NULL);
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

/* The checks before a message of len bytes is made: 0, or an error. */
static int
send_admit(struct sipc_sender *tx, size_t len)
{
	size_t flen = DATA_HDR + len;

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
	return 0;
}

/* Hands m (its header written) to the I/O thread, or sends it from here
 * when the I/O thread is idle. */
static void
send_push(struct sipc_sender *tx, struct msg *m)
{
	if (!tx->opts.handoff_only && m->flen <= DIRECT_MAX &&
	    atomic_load_explicit(&tx->wake_pending, memory_order_relaxed) ==
	    0 && direct_send(tx, m))
		return;
	atomic_fetch_add(&tx->pushed_bytes, m->flen);
	atomic_fetch_add(&tx->pushed_count, 1);
	mpsc_push(&tx->q, m);
	/* While the I/O thread drains, it needs no wake-up: a plain load
	 * (seq_cst, after the push) is enough to see that. */
	if (atomic_load(&tx->wake_pending) == 0 &&
	    atomic_exchange(&tx->wake_pending, 1) == 0)
		event_active(tx->wake_ev, EV_READ, 0);
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
	if ((rc = send_admit(tx, len)) != 0)
		return rc;
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
	send_push(tx, m);
	return 0;
}

/* The message whose body a loan handed out. */
static struct msg *
loan_msg(void *buf)
{
	return (struct msg *)((uint8_t *)buf - DATA_HDR -
	    offsetof(struct msg, frame));
}

int
sipc_send_loan(sipc_sender *tx, size_t len, void **buf)
{
	struct msg *m;
	int rc;

	if (buf)
		*buf = NULL;
	if (tx == NULL || buf == NULL)
		return seterr(SIPC_EINVAL, "sipc_send_loan: NULL argument");
	if ((rc = send_admit(tx, len)) != 0)
		return rc;
	if ((m = msg_alloc(tx, DATA_HDR + len)) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	m->refs = 1;
	m->plain = NULL;
	m->body = len;		/* what was loaned, until the commit */
	*buf = m->frame + DATA_HDR;
	return 0;
}

int
sipc_send_commit(sipc_sender *tx, void *buf, size_t len)
{
	struct wire_header h;
	struct msg *m;

	if (tx == NULL || buf == NULL)
		return seterr(SIPC_EINVAL, "sipc_send_commit: NULL argument");
	m = loan_msg(buf);
	if (len > m->body) {
		size_t loaned = m->body;

		free(m);
		return seterr(SIPC_EINVAL, "commit of %zu bytes, %zu loaned",
		    len, loaned);
	}
	if (atomic_load(&tx->closing)) {
		free(m);
		return seterr(SIPC_ECLOSED, "sender is closing");
	}
	h.version = SIPC_PROTO_VERSION_MAX;
	h.type = WIRE_DATA;
	h.flags = 0;
	h.reqid = 0;
	h.len = (uint32_t)(SIPC_DATA_PREFIX + len);
	m->flen = DATA_HDR + len;
	m->body = len;
	wire_header_encode(m->frame, &h);
	send_push(tx, m);
	return 0;
}

void
sipc_send_abort(sipc_sender *tx, void *buf)
{
	(void)tx;
	/* Never seen by the I/O thread: back to the heap (the recycled
	 * buffers are counted when taken, not when used). */
	if (buf)
		free(loan_msg(buf));
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
	int taken = tx_enter(tx);

	report_skipped(tx, 1);
	/* A PING makes each receiver acknowledge what it has now. */
	for (c = TAILQ_FIRST(&tx->conns); c; c = cn) {
		cn = TAILQ_NEXT(c, entry);
		if (c->state == C_READY && c->count > 0) {
			ctl_ping(c, WIRE_PING, 0, 0);
			conn_write(c);
		}
	}
	tx_leave(tx, taken);
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
	struct sipc_sender_stats	*st;		/* the caller's */
	size_t				 st_size;
	void				*info;		/* the caller's */
	size_t				 info_size;	/* of one entry */
	size_t				 max;
	int				 n;
};

static void
stats_on_loop(void *arg)
{
	struct stats_args *a = arg;
	struct sipc_sender *tx = a->tx;
	struct sipc_sender_stats s;
	struct sipc_receiver_info i;
	struct conn *c;
	int taken = tx_enter(tx);

	if (a->st) {
		memset(&s, 0, sizeof(s));
		s.sent = atomic_load(&tx->pushed_count);
		s.delivered = tx->st_delivered;
		s.lost = tx->st_lost + tx->unreported_n;
		s.dropped = tx->st_dropped;
		s.queued_bytes = atomic_load(&tx->max_backlog);
		s.sent_direct = tx->st_direct;
		sized_out(a->st, a->st_size, &s, sizeof(s));
	}
	a->n = 0;
	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (a->info && (size_t)a->n < a->max) {
			memset(&i, 0, sizeof(i));
			snprintf(i.endpoint, sizeof(i.endpoint), "%s",
			    c->name);
			i.connected = c->state == C_READY;
			i.queued_bytes = c->unacked_bytes;
			i.sent = c->acked;
			i.dropped = c->dropped;
			i.lost = c->lost;
			/* Entries as long as the caller's. */
			sized_out((uint8_t *)a->info + (size_t)a->n *
			    a->info_size, a->info_size, &i, sizeof(i));
		}
		a->n++;
	}
	tx_leave(tx, taken);
}

int
sipc_sender_stats_size(sipc_sender *tx, struct sipc_sender_stats *st,
    size_t size)
{
	struct stats_args a = { tx, st, size, NULL, 0, 0, 0 };

	if (tx == NULL || st == NULL || size < sizeof(size_t))
		return seterr(SIPC_EINVAL, "NULL argument or size too small");
	loop_call(&tx->epm->loop, stats_on_loop, &a);
	return 0;
}

int
sipc_sender_receiver_stats_size(sipc_sender *tx,
    struct sipc_receiver_info *info, size_t max, size_t size)
{
	struct stats_args a = { tx, NULL, 0, info, size, max, 0 };

	if (tx == NULL || (info == NULL && max > 0) ||
	    (max > 0 && size < sizeof(size_t)))
		return seterr(SIPC_EINVAL, "NULL argument or size too small");
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
	tshm_close(tx);
	while ((m = mpsc_pop(&tx->q)) != NULL)
		free(m);
	free(tx->q.stub);
	recycle_free(tx);
	pthread_mutex_destroy(&tx->pmu);
	pthread_mutex_destroy(&tx->io_mu);
	if (tx->wake_ev)
		event_free(tx->wake_ev);
	if (tx->resync_timer)
		event_free(tx->resync_timer);
	if (tx->report_timer)
		event_free(tx->report_timer);
	free(tx->names);
	free(tx->wstage);
	waiters_fini(&tx->mu, &tx->cv, tx->tls);
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
	struct conn *c, *cn;
	struct msg *m;
	int taken = tx_enter(tx);

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
	tx_leave(tx, taken);
	loop_later(&tx->epm->loop, a->now, sender_destroy, tx);
}

int
sipc_sender_close(sipc_sender *tx)
{
	struct close_args a = { tx, 0, 0 };

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
		epm_call_last(tx->epm, close_on_loop, &a);
	}
	return a.lost ? seterr(SIPC_ETIMEDOUT, "messages not acknowledged "
	    "before close were reported lost") : 0;
}
