/*
 * sender_conn.c - one connection of a sender to one receiver: connecting
 * (TCP or Unix), TLS, DHELLO, writing queued frames many per writev(),
 * reading acknowledgements and answers, heartbeats, and what happens when
 * the link breaks (retry, keep the messages) or the receiver is declared
 * dead or gone (report what it lost).  The messages themselves are
 * sender_msgs.c's; which messages go where is sender.c's.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../proto/addr.h"
#include "sender.h"

static void	conn_connect(struct conn *c);
static void	conn_connected(struct conn *c);
static void	conn_dhello(struct conn *c);
static void	conn_tls_step(struct conn *c);
static void	conn_refused(struct conn *c);
static void	conn_down(struct conn *c, const char *why);

/* ---- Connection I/O ------------------------------------------------------ */

/* Runs a callback of connection arg under its sender's io_mu (the
 * connection may be gone after; its sender is not). */
static void
conn_locked(event_callback_fn fn, evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = ((struct conn *)arg)->tx;
	int taken = tx_enter(tx);

	fn(fd, what, arg);
	tx_leave(tx, taken);
}

static int
hb_ms(const struct conn *c)
{
	return c->tx->opts.heartbeat_ms;
}

void
ctl_add(struct conn *c, const struct wbuf *w)
{
	if (c->ctl_off == c->ctl_len)
		c->ctl_off = c->ctl_len = 0;
	if (w->len > sizeof(c->ctl) - c->ctl_len)
		return;		/* only PINGs can be refused; one suffices */
	memcpy(c->ctl + c->ctl_len, w->data, w->len);
	c->ctl_len += w->len;
}

void
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
int
conn_write(struct conn *c)
{
	struct iovec iov[MAX_IOV];
	uint8_t *st;
	size_t i, ctl_pending, left, st_len;
	ssize_t w;
	int n, st_iov;

	if (c->xp.fd == -1 || c->state < C_HANDSHAKE)
		return 0;
	/* TLS stages what it writes itself; without memory for the staging
	 * buffer every frame takes an iovec. */
	if (c->xp.ssl == NULL && c->tx->wstage == NULL)
		c->tx->wstage = malloc(WSTAGE);
	st = c->xp.ssl == NULL ? c->tx->wstage : NULL;
	/* A direct send (sender.c) writes only to a socket with room that
	 * has nothing else to say: the rest is the I/O thread's. */
	if (c->tx->direct && (c->wev_armed || c->shm_announce))
		return 0;
	for (;;) {
		n = 0;
		st_len = 0;
		st_iov = -1;
		ctl_pending = c->woff == 0 ? c->ctl_len - c->ctl_off : 0;
		if (ctl_pending) {
			iov[n].iov_base = c->ctl + c->ctl_off;
			iov[n++].iov_len = ctl_pending;
		}
		if (c->state == C_READY) {
			for (i = c->nsent; i < c->count && n < MAX_IOV; i++) {
				struct msg *m = ring_at(c, i);
				size_t off = i == c->nsent ? c->woff : 0, len;

				/* Pinned: the rest is in the ring. */
				if (c->shm == SHM_PINNED &&
				    m->seq >= c->shm_from)
					break;

				len = m->flen - off;
				if (st && len <= WCOPY_MAX &&
				    st_len + len <= WSTAGE) {
					/* Onto the staging piece, or a new
					 * one after a large frame. */
					memcpy(st + st_len, m->frame + off,
					    len);
					if (st_iov == -1 || st_iov != n - 1) {
						st_iov = n;
						iov[n].iov_base = st + st_len;
						iov[n++].iov_len = 0;
					}
					iov[st_iov].iov_len += len;
					st_len += len;
					continue;
				}
				iov[n].iov_base = m->frame + off;
				iov[n++].iov_len = len;
			}
		}
		if (n == 0 && c->shm_announce && c->state == C_READY) {
			/* Everything before is out: the ring may go now. */
			int rc = tshm_announce(c);

			if (rc == -1) {
				conn_down(c, strerror(errno));
				return -1;
			}
			if (rc == 1) {
				wev_set(c->wev, &c->wev_armed, 1);
				return 0;
			}
			if (c->ctl_off < c->ctl_len)
				continue;
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
			if (c->tx->direct) {
				/* The I/O thread writes again and takes
				 * the connection down. */
				event_active(c->wev, EV_WRITE, 0);
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
	for (i = 0; tx->opts.compress && !c->zlib && i < c->count; i++) {
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
	tshm_ready(c, ok->features);
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

void
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
	case WIRE_SHM_CURSOR:
		if (tshm_on_cursor(c, p, h->len) == -1) {
			conn_down(c, "bad SHM_CURSOR");
			return -1;
		}
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
		else if (fr.h.type == WIRE_SHM_CURSOR)
			(void)tshm_on_cursor(c, fr.payload, fr.h.len);
		off += fr.size;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static void
conn_readcb_io(evutil_socket_t fd, short what, void *arg)
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

static void
conn_readcb(evutil_socket_t fd, short what, void *arg)
{
	conn_locked(conn_readcb_io, fd, what, arg);
}

/*
 * The link is going down, perhaps because a write failed: acknowledgements
 * the receiver sent before it hung up may still wait in the socket.  Count
 * them before they go with it; reads only what is there, a bounded amount.
 */
void
conn_last_acks(struct conn *c)
{
	ssize_t n;
	int i;

	for (i = 0; i < 16 && c->state == C_READY && c->count > 0 &&
	    c->xp.fd != -1; i++) {
		n = xp_read(&c->xp, c->in + c->in_len,
		    sizeof(c->in) - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || (c->in_len += (size_t)n, conn_parse(c, 1) == -1))
			break;
	}
	/* And what its cursor page says (its SHM_CURSOR may have been
	 * among the last frames). */
	tshm_last_acks(c);
}

static void
conn_writecb_io(evutil_socket_t fd, short what, void *arg)
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

static void
conn_writecb(evutil_socket_t fd, short what, void *arg)
{
	conn_locked(conn_writecb_io, fd, what, arg);
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
	tshm_release(c);
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
void
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
void
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

	if (tx->tls == NULL) {
		conn_dhello(c);
		return;
	}
	if (xp_tls_client(&c->xp, tx->tls, tx->psk, tx->tls_name,
	    &c->peer.ep) == -1) {
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

	switch (xp_client_step(&c->xp, c->tx->psk, c->wev, &c->wev_armed,
	    err, sizeof(err))) {
	case XP_DONE:
		conn_dhello(c);
		return;
	case XP_FAILED:
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
	m.features |= tshm_offer(c);
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

/*
 * A receiver registered at a broker with a TCP endpoint may also listen on
 * this host's abstract Unix socket named after what the broker's record
 * says (handle, pid, instance): *ss is that socket, 1, worth a try.  The
 * instance in the name, random 64 bits and checked again by DHELLO, makes
 * an answer there proof enough that the receiver is on this host.
 */
static int
samehost_sa(struct conn *c, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sipc_sender *tx = c->tx;

	if (c->samehost_off || c->peer.ep.family == WIRE_AF_UNIX || tx->tls ||
	    c->peer.pid == 0 || c->peer.instance == 0 ||
	    !transport_shm_allowed())
		return 0;
	*sl = samehost_addr(tx->handle, tx->hlen, (long)c->peer.pid,
	    c->peer.instance, (struct sockaddr_un *)ss);
	return 1;
}

/* Starts a connection attempt; c may be freed when it fails at once. */
static void
conn_connect(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct event_base *base = c->tx->epm->loop.base;
	int fd;

	if ((c->samehost = samehost_sa(c, &ss, &sl)) == 0)
		sl = endpoint_to_sa(&c->peer.ep, &ss);

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
	if (c->samehost) {
		/* Not there after all (or its backlog is full): TCP. */
		conn_close_fd(c);
		c->samehost_off = 1;
		conn_connect(c);
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
conn_timercb_io(evutil_socket_t fd, short what, void *arg)
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

static void
conn_timercb(evutil_socket_t fd, short what, void *arg)
{
	conn_locked(conn_timercb_io, fd, what, arg);
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

void
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
	c->cur.fd = c->rx_efd = -1;
	backoff_init(&c->backoff, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
	c->confirmed = 1;
	c->state = C_DOWN;
	memcpy(c->name, name, sizeof(name));
	TAILQ_INSERT_TAIL(&tx->conns, c, entry);
	tx->nconns++;
	conn_connect(c);
}
