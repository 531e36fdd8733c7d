/*
 * loop.c - an EPM's I/O thread: a libevent loop, and a way for other
 * threads to run a function on it and wait (loop_call).  Everything a
 * sender, receiver or EPM owns is touched on this thread only, so none of
 * it needs locks; the hot path from sipc_send() has its own lock-free
 * hand-off (sender.c).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "internal.h"

struct loop_call {
	TAILQ_ENTRY(loop_call)	 entry;
	void			(*fn)(void *);
	void			*arg;
	int			 done;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_ok;

static void
evthread_setup(void)
{
	evthread_ok = evthread_use_pthreads() == 0;
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;

	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
calls_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	struct loop_call *c;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&l->mu);
	while ((c = TAILQ_FIRST(&l->calls)) != NULL) {
		TAILQ_REMOVE(&l->calls, c, entry);
		pthread_mutex_unlock(&l->mu);
		c->fn(c->arg);
		pthread_mutex_lock(&l->mu);
		c->done = 1;
	}
	pthread_cond_broadcast(&l->cv);
	if (l->stop)
		event_base_loopbreak(l->base);
	pthread_mutex_unlock(&l->mu);
}

int
loop_init(struct loop *l)
{
	sigset_t all, old;
	int rc;

	memset(l, 0, sizeof(*l));
	pthread_once(&evthread_once, evthread_setup);
	if (!evthread_ok)
		return seterr(SIPC_ESYS, "libevent has no thread support");
	TAILQ_INIT(&l->calls);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	if ((l->base = event_base_new()) == NULL ||
	    (l->call_ev = event_new(l->base, -1, 0, calls_cb, l)) == NULL) {
		if (l->base)
			event_base_free(l->base);
		return seterr(SIPC_ENOMEM, "cannot create an event loop");
	}
	/* The I/O thread takes no signals: they stay with the program's
	 * own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&l->thread, NULL, loop_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		event_free(l->call_ev);
		event_base_free(l->base);
		errno = rc;
		return seterr_sys(SIPC_ESYS, "cannot start the I/O thread");
	}
	l->started = 1;
	return 0;
}

int
loop_in_thread(const struct loop *l)
{
	return l->started && pthread_equal(pthread_self(), l->thread);
}

void
loop_later(struct loop *l, int now, event_callback_fn fn, void *arg)
{
	struct timeval zero = { 0, 0 };

	if (now || event_base_once(l->base, -1, EV_TIMEOUT, fn, arg,
	    &zero) == -1)
		fn(-1, 0, arg);
}

void
loop_call(struct loop *l, void (*fn)(void *), void *arg)
{
	struct loop_call c;

	if (loop_in_thread(l)) {
		fn(arg);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	pthread_mutex_lock(&l->mu);
	TAILQ_INSERT_TAIL(&l->calls, &c, entry);
	pthread_mutex_unlock(&l->mu);
	event_active(l->call_ev, EV_READ, 0);
	pthread_mutex_lock(&l->mu);
	while (!c.done)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

void
loop_fini(struct loop *l)
{
	if (!l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_mutex_unlock(&l->mu);
	event_active(l->call_ev, EV_READ, 0);
	pthread_join(l->thread, NULL);
	l->started = 0;
	event_free(l->call_ev);
	event_base_free(l->base);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
}
