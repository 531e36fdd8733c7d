/*
 * receiver.c - receivers: listening, registering, accepting, closing,
 * and the public API; each sender's connection is receiver_conn.c's.
 *
 * A receiver closed from one of its own callbacks is freed by a separate
 * event once the callback has returned.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../proto/addr.h"
#include "pull.h"
#include "receiver.h"

/* ---- Listening ----------------------------------------------------------- */

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;

	(void)fd;
	(void)what;
	if (!rx->dead)
		event_add(rx->lev, NULL);
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;
	struct sockaddr_storage ss;
	socklen_t sl;
	int cfd;

	(void)what;
	if (rx->dead)
		return;
	for (;;) {
		sl = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause, do not spin. */
				event_del(rx->lev);
				timer_after(rx->accept_resume,
				    ACCEPT_PAUSE_MS);
			}
			return;
		}
		tune_data_socket(cfd, ss.ss_family != AF_UNIX);
		rconn_new(rx, cfd, (struct sockaddr *)&ss);
	}
}

/* ---- Life cycle ---------------------------------------------------------- */

/*
 * Broker mode, plain text: an abstract Unix socket next to the TCP one,
 * named after the handle, pid and instance that the broker's record
 * shows, so that a sender of this host (and network namespace) finds it
 * and moves messages through shared memory.  No file: nothing is left
 * when the process dies.  Anyone who may reach the TCP endpoint may reach
 * this one; with TLS or a password there is none.  Best effort: without
 * it, senders use TCP.
 */
static void
samehost_listen(struct sipc_receiver *rx)
{
	struct sockaddr_un sun;
	socklen_t sl;
	int fd;

	rx->hfd = -1;
	if (rx->reg.ep.family == WIRE_AF_UNIX || rx->tls ||
	    !transport_shm_allowed())
		return;
	sl = samehost_addr(rx->handle, rx->hlen, (long)getpid(), rx->instance,
	    &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return;
	if (bind(fd, (struct sockaddr *)&sun, sl) == -1 ||
	    listen(fd, 511) == -1) {
		close(fd);
		return;
	}
	rx->hfd = fd;
}

static void
samehost_close(struct sipc_receiver *rx)
{
	if (rx->hev)
		event_free(rx->hev);
	rx->hev = NULL;
	if (rx->hfd != -1)
		close(rx->hfd);
	rx->hfd = -1;
}

static void
reg_done(void *arg, int rc, const char *msg)
{
	struct sipc_receiver *rx = arg;

	pthread_mutex_lock(&rx->mu);
	rx->reg_done = 1;
	rx->reg_rc = rc;
	snprintf(rx->reg_err, sizeof(rx->reg_err), "%s", msg ? msg : "");
	pthread_cond_broadcast(&rx->cv);
	pthread_mutex_unlock(&rx->mu);
}

static void
start_on_loop(void *arg)
{
	struct sipc_receiver *rx = arg;
	struct event_base *base = rx->epm->loop.base;

	rx->lev = event_new(base, rx->lfd, EV_READ | EV_PERSIST, accept_cb,
	    rx);
	rx->accept_resume = evtimer_new(base, accept_resume_cb, rx);
	if (rx->hfd != -1 && ((rx->hev = event_new(base, rx->hfd,
	    EV_READ | EV_PERSIST, accept_cb, rx)) == NULL ||
	    event_add(rx->hev, NULL) == -1)) {
		reg_done(rx, SIPC_ENOMEM, "out of memory");
		return;
	}
	if (rx->lev == NULL || rx->accept_resume == NULL ||
	    (rx->opts.on_request && rsp_port_open(rx) == -1) ||
	    event_add(rx->lev, NULL) == -1) {
		reg_done(rx, SIPC_ENOMEM, "out of memory");
		return;
	}
	memcpy(rx->reg.handle, rx->handle, rx->hlen + 1);
	rx->reg.hlen = rx->hlen;
	rx->reg.instance = rx->instance;
	rx->reg.done = reg_done;
	rx->reg.arg = rx;
	epm_reg_add(rx->epm, &rx->reg);
	rx->registered = 1;
}

static void
receiver_destroy(evutil_socket_t fd, short what, void *arg)
{
	struct sipc_receiver *rx = arg;
	sipc_epm *epm = rx->epm;
	struct rconn *c;

	(void)fd;
	(void)what;
	rx_pull_free(rx);	/* its requests answered while conns stand */
	rsp_port_close(rx);
	while ((c = TAILQ_FIRST(&rx->conns)) != NULL)
		rconn_close(c, "receiver closed");
	/* Closed with requests unanswered: those answers go nowhere now. */
	while ((c = TAILQ_FIRST(&rx->zombies)) != NULL) {
		TAILQ_REMOVE(&rx->zombies, c, entry);
		free(c);
	}
	if (rx->lev)
		event_free(rx->lev);
	if (rx->accept_resume)
		event_free(rx->accept_resume);
	if (rx->lfd != -1)
		close(rx->lfd);
	samehost_close(rx);
	waiters_fini(&rx->mu, &rx->cv, rx->tls);
	free(rx);
	epm_release(epm);
}

struct close_args {
	struct sipc_receiver	*rx;
	int			 now;	/* free at once, not after callbacks */
};

static void
close_on_loop(void *arg)
{
	struct close_args *a = arg;
	struct sipc_receiver *rx = a->rx;
	struct rconn *c;

	if (rx->dead)
		return;
	/* Unregister first, so that no sender starts anew; then give each
	 * sender its last acknowledgement.  Connections are closed by the
	 * reaper: this may run inside one of their callbacks. */
	if (rx->registered)
		epm_reg_remove(rx->epm, &rx->reg);
	rx->registered = 0;
	if (rx->lev)
		event_del(rx->lev);
	if (rx->reg.staged[0])
		unlink(rx->reg.staged);
	TAILQ_FOREACH(c, &rx->conns, entry) {
		queue_ack(c);
		/* Best effort: we hang up next. */
		if (c->phase == R_OPEN && outbuf_pending(&c->out))
			(void)outbuf_write(&c->out, &c->xp, NULL);
	}
	rx->dead = 1;
	loop_later(&rx->epm->loop, a->now, receiver_destroy, rx);
}

void
sipc_receiver_opts_init_size(struct sipc_receiver_opts *o, size_t size)
{
	struct sipc_receiver_opts d;

	memset(&d, 0, sizeof(d));
	d.max_message = SIPC_DEF_MESSAGE_MAX;
	d.queue_max = SIPC_DEF_QUEUE_MESSAGES;
	d.queue_max_bytes = SIPC_DEF_QUEUE_BYTES;
	sized_opts(o, size, &d, sizeof(d));
}

int
sipc_receiver_new(const char *handle, sipc_epm *epm,
    const struct sipc_receiver_opts *opts, sipc_receiver **out)
{
	struct sipc_receiver *rx;
	struct epm_listen l;
	int64_t deadline;
	size_t hlen;
	int rc, timeout;

	clearerr_sipc();
	if (handle == NULL || out == NULL)
		return seterr(SIPC_EINVAL, "handle and out must not be NULL");
	hlen = strlen(handle);
	if (!wire_handle_valid(handle, hlen))
		return seterr(SIPC_EINVAL, "invalid handle '%s': 1 to %d "
		    "bytes of UTF-8 without control characters", handle,
		    SIPC_HANDLE_MAX);
	if ((rx = calloc(1, sizeof(*rx))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	sipc_receiver_opts_init(&rx->opts);
	if (opts && (rc = sized_in(&rx->opts, sizeof(rx->opts), opts,
	    "sipc_receiver_opts")) != 0) {
		free(rx);
		return rc;
	}
	if (rx->opts.max_message == 0 ||
	    rx->opts.max_message > SIPC_MAX_MESSAGE_MAX) {
		free(rx);
		return seterr(SIPC_EINVAL, "max_message must be 1 byte to "
		    "1 GiB");
	}
	if ((rc = security_ctx(&rx->opts.security, 1, &rx->tls,
	    &rx->psk)) != 0) {
		free(rx);
		return rc;
	}
	/* Strings in the options are used during this call only. */
	rx->opts.listen_address = rx->opts.register_address =
	    rx->opts.allowed_ports = NULL;
	memset(&rx->opts.security, 0, sizeof(rx->opts.security));
	memcpy(rx->handle, handle, hlen + 1);
	rx->hlen = (uint16_t)hlen;
	rx->instance = random_u64();
	rx->lfd = rx->hfd = -1;
	TAILQ_INIT(&rx->conns);
	TAILQ_INIT(&rx->zombies);
	pthread_mutex_init(&rx->mu, NULL);
	cond_init_mono(&rx->cv);
	if ((rc = epm_acquire(epm, &rx->epm)) != 0) {
		waiters_fini(&rx->mu, &rx->cv, rx->tls);
		free(rx);
		return rc;
	}
	if ((rc = rx_pull_open(rx)) != 0) {
		epm_release(rx->epm);
		waiters_fini(&rx->mu, &rx->cv, rx->tls);
		free(rx);
		return rc;
	}
	memset(&l, 0, sizeof(l));
	l.handle = rx->handle;
	l.hlen = rx->hlen;
	l.instance = rx->instance;
	if (opts) {
		l.listen_address = opts->listen_address;
		l.register_address = opts->register_address;
		l.allowed_ports = opts->allowed_ports;
	}
	if ((rc = rx->epm->ops->listen(rx->epm, &l)) != 0)
		goto fail;
	rx->lfd = l.fd;
	rx->reg.ep = l.ep;
	samehost_listen(rx);
	memcpy(rx->reg.staged, l.staged, sizeof(l.staged));
	addr_format_endpoint(&rx->reg.ep, rx->endpoint, sizeof(rx->endpoint));
	loop_call(&rx->epm->loop, start_on_loop, rx);

	/* Wait for the registration to be accepted. */
	timeout = rx->epm->opts.connect_timeout_ms > 5000 ?
	    rx->epm->opts.connect_timeout_ms : 5000;
	deadline = deadline_after(timeout);
	pthread_mutex_lock(&rx->mu);
	while (!rx->reg_done)
		if (cond_wait_until(&rx->cv, &rx->mu, deadline) != 0)
			break;
	pthread_mutex_unlock(&rx->mu);
	if (!rx->reg_done) {
		rc = seterr(SIPC_ETIMEDOUT, "registration of '%s' not answered "
		    "within %d ms", handle, timeout);
		sipc_receiver_close(rx);
		return rc;
	}
	if (rx->reg_rc != 0) {
		rc = seterr(rx->reg_rc, "register '%s' at %s: %s", handle,
		    rx->endpoint, rx->reg_err);
		sipc_receiver_close(rx);
		return rc;
	}
	*out = rx;
	return 0;
fail:
	rx_pull_free(rx);
	if (rx->lfd != -1)
		close(rx->lfd);
	samehost_close(rx);
	if (rx->reg.staged[0])
		unlink(rx->reg.staged);
	epm_release(rx->epm);
	waiters_fini(&rx->mu, &rx->cv, rx->tls);
	free(rx);
	return rc;
}

void
sipc_receiver_close(sipc_receiver *rx)
{
	struct close_args a = { rx, 0 };

	if (rx == NULL)
		return;
	rx_pull_close(rx);	/* threads waiting in recv return first */
	if (loop_in_thread(&rx->epm->loop)) {
		/* Perhaps inside one of rx's callbacks: freed after it. */
		close_on_loop(&a);
		return;
	}
	/*
	 * From another thread no callback of rx can be running: it goes at
	 * once.  The EPM is released here rather than on its I/O thread, so
	 * that when rx was its last user that thread has stopped before this
	 * returns: nothing outlives a program that closed what it opened.
	 */
	a.now = 1;
	epm_call_last(rx->epm, close_on_loop, &a);
}

int
sipc_receiver_endpoint(const sipc_receiver *rx, char *buf, size_t size)
{
	if (rx == NULL || buf == NULL || strlen(rx->endpoint) >= size)
		return seterr(SIPC_EINVAL, "buffer too small");
	memcpy(buf, rx->endpoint, strlen(rx->endpoint) + 1);
	return 0;
}

int
sipc_receiver_stats_size(sipc_receiver *rx, struct sipc_receiver_stats *st,
    size_t size)
{
	struct sipc_receiver_stats s;

	if (rx == NULL || st == NULL || size < sizeof(size_t))
		return seterr(SIPC_EINVAL, "NULL argument or size too small");
	memset(&s, 0, sizeof(s));
	s.messages = atomic_load(&rx->st_messages);
	s.bytes = atomic_load(&rx->st_bytes);
	s.gaps = atomic_load(&rx->st_gaps);
	s.duplicates = atomic_load(&rx->st_dups);
	s.senders = atomic_load(&rx->st_senders);
	s.requests = atomic_load(&rx->st_requests);
	sized_out(st, size, &s, sizeof(s));
	return 0;
}
