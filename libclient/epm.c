/*
 * epm.c - end point managers: creation, the process's default EPM, the
 * reference counts that keep an EPM (and its I/O thread) alive while
 * senders and receivers use it, and dispatch through struct epm_ops to the
 * backends (epm_local.c, epm_broker.c).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;
static sipc_epm *default_epm;

void
sipc_epm_opts_init_size(struct sipc_epm_opts *o, size_t size)
{
	struct sipc_epm_opts d;

	memset(&d, 0, sizeof(d));
	d.connect_timeout_ms = 5000;
	d.heartbeat_ms = 0;
	sized_opts(o, size, &d, sizeof(d));
}

/* $SIPC_BROKER, or NULL when it is unset or empty (the local registry). */
static const char *
env_broker(void)
{
	const char *b = getenv("SIPC_BROKER");

	return b && *b ? b : NULL;
}

static void
backend_free(void *arg)
{
	sipc_epm *epm = arg;

	rpc_fini(epm);
	epm->ops->destroy(epm);
}

static void
epm_destroy(sipc_epm *epm)
{
	loop_call(&epm->loop, backend_free, epm);
	loop_fini(&epm->loop);
	pthread_mutex_destroy(&epm->mu);
	pthread_cond_destroy(&epm->cv);
	free(epm);
}

static void *
reaper_main(void *arg)
{
	epm_destroy(arg);
	return NULL;
}

/* The last reference went away: stop the thread, free everything. */
static void
epm_teardown(sipc_epm *epm)
{
	pthread_t t;

	if (!loop_in_thread(&epm->loop)) {
		epm_destroy(epm);
		return;
	}
	/* Released from a callback on the EPM's own thread, which cannot
	 * join itself: a short-lived thread does it once the callback has
	 * returned. */
	if (pthread_create(&t, NULL, reaper_main, epm) == 0)
		pthread_detach(t);
}

static int
epm_create(const struct epm_ops *ops, const char *addr,
    const struct sipc_epm_opts *opts, sipc_epm **out)
{
	sipc_epm *epm;
	int rc;

	if ((epm = calloc(1, sizeof(*epm))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	epm->ops = ops;
	atomic_init(&epm->refs, 1);
	atomic_init(&epm->connected, ops->local);
	pthread_mutex_init(&epm->mu, NULL);
	cond_init_mono(&epm->cv);
	TAILQ_INIT(&epm->regs);
	TAILQ_INIT(&epm->watches);
	TAILQ_INIT(&epm->rpc_pools);
	TAILQ_INIT(&epm->rpc_dead);
	TAILQ_INIT(&epm->rpc_done);
	if (opts)
		epm->opts = *opts;
	else
		sipc_epm_opts_init(&epm->opts);
	if ((rc = loop_init(&epm->loop)) != 0)
		goto fail;
	rc = ops->create(epm, addr);
	if (rc != 0) {
		loop_fini(&epm->loop);
		goto fail;
	}
	*out = epm;
	return 0;
fail:
	pthread_mutex_destroy(&epm->mu);
	pthread_cond_destroy(&epm->cv);
	free(epm);
	return rc;
}

int
sipc_epm_local(sipc_epm **out)
{
	if (out == NULL)
		return seterr(SIPC_EINVAL, "out is NULL");
	clearerr_sipc();
	return epm_create(&epm_local_ops, NULL, NULL, out);
}

int
sipc_epm_connect(const char *addr, const struct sipc_epm_opts *opts,
    sipc_epm **out)
{
	struct sipc_epm_opts o;
	sipc_epm *epm;
	int64_t deadline;
	int rc = 0;

	if (out == NULL)
		return seterr(SIPC_EINVAL, "out is NULL");
	clearerr_sipc();
	if ((addr == NULL || *addr == '\0') && (addr = env_broker()) == NULL)
		return sipc_epm_local(out);
	sipc_epm_opts_init(&o);
	if (opts && (rc = sized_in(&o, sizeof(o), opts, "sipc_epm_opts")) != 0)
		return rc;
	if (o.connect_timeout_ms < 0 || o.heartbeat_ms < 0)
		return seterr(SIPC_EINVAL, "negative timeout in options");
	if ((rc = epm_create(&epm_broker_ops, addr, &o, &epm)) != 0)
		return rc;
	if (o.connect_timeout_ms > 0) {
		deadline = deadline_after(o.connect_timeout_ms);
		pthread_mutex_lock(&epm->mu);
		while (!atomic_load(&epm->connected) &&
		    !atomic_load(&epm->failed) && rc != ETIMEDOUT)
			rc = cond_wait_until(&epm->cv, &epm->mu, deadline);
		pthread_mutex_unlock(&epm->mu);
		if (!atomic_load(&epm->connected)) {
			rc = broker_connect_error(epm);
			sipc_epm_close(epm);
			return rc;
		}
	}
	*out = epm;
	return 0;
}

int
sipc_epm_is_local(const sipc_epm *epm)
{
	return epm ? epm->ops->local : env_broker() == NULL;
}

int
sipc_epm_connected(const sipc_epm *epm)
{
	return epm ? atomic_load(&((sipc_epm *)epm)->connected) : 0;
}

void
sipc_epm_close(sipc_epm *epm)
{
	if (epm)
		epm_release(epm);
}

int
epm_acquire(sipc_epm *epm, sipc_epm **out)
{
	struct sipc_epm_opts o;
	const char *b;
	int rc;

	if (epm) {
		atomic_fetch_add(&epm->refs, 1);
		*out = epm;
		return 0;
	}
	pthread_mutex_lock(&default_mu);
	if (default_epm) {
		atomic_fetch_add(&default_epm->refs, 1);
		*out = default_epm;
		pthread_mutex_unlock(&default_mu);
		return 0;
	}
	b = env_broker();
	sipc_epm_opts_init(&o);
	/* Objects wait for the session themselves where they need it. */
	o.connect_timeout_ms = 0;
	rc = epm_create(b ? &epm_broker_ops : &epm_local_ops, b, &o, &epm);
	if (rc == 0) {
		epm->is_default = 1;
		default_epm = epm;
		*out = epm;
	}
	pthread_mutex_unlock(&default_mu);
	return rc;
}

void
epm_release(sipc_epm *epm)
{
	if (epm->is_default) {
		/* Under the lock, so epm_acquire cannot revive it. */
		pthread_mutex_lock(&default_mu);
		if (atomic_fetch_sub(&epm->refs, 1) != 1) {
			pthread_mutex_unlock(&default_mu);
			return;
		}
		default_epm = NULL;
		pthread_mutex_unlock(&default_mu);
	} else if (atomic_fetch_sub(&epm->refs, 1) != 1)
		return;
	epm_teardown(epm);
}

void
epm_call_last(sipc_epm *epm, void (*fn)(void *), void *arg)
{
	sipc_epm *hold;

	epm_acquire(epm, &hold);
	loop_call(&hold->loop, fn, arg);
	epm_release(hold);
}

void
epm_broadcast(sipc_epm *epm)
{
	pthread_mutex_lock(&epm->mu);
	pthread_cond_broadcast(&epm->cv);
	pthread_mutex_unlock(&epm->mu);
}

void
epm_reg_add(sipc_epm *epm, struct epm_reg *r)
{
	TAILQ_INSERT_TAIL(&epm->regs, r, entry);
	epm->ops->reg_add(epm, r);
}

void
epm_reg_remove(sipc_epm *epm, struct epm_reg *r)
{
	TAILQ_REMOVE(&epm->regs, r, entry);
	epm->ops->reg_remove(epm, r);
}

void
epm_watch_add(sipc_epm *epm, struct epm_watch *w)
{
	TAILQ_INSERT_TAIL(&epm->watches, w, entry);
	epm->ops->watch_add(epm, w);
}

void
epm_watch_remove(sipc_epm *epm, struct epm_watch *w)
{
	TAILQ_REMOVE(&epm->watches, w, entry);
	epm->ops->watch_remove(epm, w);
}
