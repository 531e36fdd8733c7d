/*
 * sender_watch.c - which receivers a sender knows of.  The EPM's watch of
 * the sender's handle calls here on its I/O thread: a JOIN opens (or
 * confirms) a connection, a LEAVE closes one once its last acknowledgements
 * had a moment to arrive, and after a resync (a broker restart, a
 * reconnect) connections the new snapshot does not confirm are dropped
 * after the EPM's grace period.  Connections themselves are sender_conn.c.
 * Each callback holds the sender's io_mu.
 */
#include <string.h>

#include <event2/event.h>

#include "sender.h"

static void
w_join_io(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	if (tx->dead)
		return;
	TAILQ_FOREACH(c, &tx->conns, entry)
		if (endpoint_equal(&c->peer.ep, &p->ep))
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
w_join(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	w_join_io(arg, p);
	tx_leave(tx, taken);
}

static void
w_leave_io(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	if (tx->dead)
		return;
	TAILQ_FOREACH(c, &tx->conns, entry) {
		if (p->id ? c->peer.id == p->id :
		    endpoint_equal(&c->peer.ep, &p->ep) &&
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
w_leave(void *arg, const struct peer *p)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	w_leave_io(arg, p);
	tx_leave(tx, taken);
}

static void
w_resync_io(void *arg)
{
	struct sipc_sender *tx = arg;
	struct conn *c;

	TAILQ_FOREACH(c, &tx->conns, entry)
		c->confirmed = 0;
}

static void
w_resync(void *arg)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	w_resync_io(arg);
	tx_leave(tx, taken);
}

static void
resync_io(evutil_socket_t fd, short what, void *arg)
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

void
sender_resync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	resync_io(fd, what, arg);
	tx_leave(tx, taken);
}

static void
w_synced_io(void *arg)
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

static void
w_synced(void *arg)
{
	struct sipc_sender *tx = arg;
	int taken = tx_enter(tx);

	w_synced_io(arg);
	tx_leave(tx, taken);
}

void
sender_watch_start(struct sipc_sender *tx)
{
	tx->watch.handle = tx->handle;
	tx->watch.hlen = tx->hlen;
	tx->watch.on_join = w_join;
	tx->watch.on_leave = w_leave;
	tx->watch.on_resync = w_resync;
	tx->watch.on_synced = w_synced;
	tx->watch.arg = tx;
	epm_watch_add(tx->epm, &tx->watch);
}
