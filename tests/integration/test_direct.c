/*
 * test_direct.c - direct sends (sipc.h, sipc_send): a sending thread that
 * finds its sender idle writes the message itself instead of waking the
 * I/O thread, and a stream still goes through the I/O thread.  Both paths
 * interleave here, from several threads at once, and nothing may change
 * for the application:
 *
 *   - 4 threads send in bursts with pauses between: every receiver gets
 *     every message once, each thread's in order, and both paths were
 *     taken (sipc_sender_stats: sent_direct between 0 and sent);
 *   - a receiver that takes only small messages: the skipped large ones
 *     are reported to on_send_failed, on the I/O thread, never on the
 *     thread that sent them directly;
 *   - a receiver that goes away and a new one that comes while threads
 *     keep sending sparsely: the writes that fail are the I/O thread's to
 *     handle, the sender reports what the first lost and the new one gets
 *     a contiguous tail;
 *   - handoff_only: no direct send at all, nothing lost.
 *
 * Each case runs over the shared-memory ring (local registry), the Unix
 * socket (SIPC_TRANSPORT=unix) and TCP through a broker
 * (SIPC_TRANSPORT=tcp).  ThreadSanitizer runs it too (make check-tsan).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

#define NTHREADS	4
#define MAXPAD		200

static struct tu_broker broker;

static const char *mode_name[] = { "ring", "unix", "tcp" };

static void
mode_start(int mode)
{
	tu_mode_setup(&broker, mode == 2);
	if (mode == 0)
		unsetenv("SIPC_TRANSPORT");
	else
		setenv("SIPC_TRANSPORT", mode_name[mode], 1);
}

static void
mode_stop(void)
{
	tu_mode_teardown(&broker);
	unsetenv("SIPC_TRANSPORT");
}

static sipc_epm *
new_epm(void)
{
	sipc_epm *epm;

	if (broker.pid > 0)
		ck_assert_int_eq(sipc_epm_connect(broker.addr, NULL, &epm), 0);
	else
		ck_assert_int_eq(sipc_epm_local(&epm), 0);
	return epm;
}

static void
pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- A receiver checking each sending thread's order --------------------- */

struct msg_hdr {
	uint32_t	 thread;
	uint32_t	 idx;
};

struct coll {
	pthread_mutex_t	 mu;
	long		 n;
	long		 next[NTHREADS];	/* index expected next */
	long		 first[NTHREADS];	/* -1: none yet */
	long		 bad;			/* out of order, damaged */
	uint64_t	 gaps;
};

static void
coll_init(struct coll *c)
{
	int t;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	for (t = 0; t < NTHREADS; t++)
		c->first[t] = -1;
}

static void
coll_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct coll *c = arg;
	struct msg_hdr h;
	const uint8_t *p = m->data;
	size_t i;

	(void)rx;
	pthread_mutex_lock(&c->mu);
	c->n++;
	if (m->len < sizeof(h)) {
		c->bad++;
		goto out;
	}
	memcpy(&h, p, sizeof(h));
	if (h.thread >= NTHREADS) {
		c->bad++;
		goto out;
	}
	/* The padding says which message it belongs to. */
	for (i = sizeof(h); i < m->len; i++)
		if (p[i] != (uint8_t)(h.idx + i)) {
			c->bad++;
			goto out;
		}
	if (c->first[h.thread] == -1)
		c->first[h.thread] = h.idx;
	else if (h.idx != c->next[h.thread])
		c->bad++;
	c->next[h.thread] = (long)h.idx + 1;
out:
	pthread_mutex_unlock(&c->mu);
}

static void
coll_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first,
    uint64_t count, void *arg)
{
	struct coll *c = arg;

	(void)rx;
	(void)sender_id;
	(void)first;
	pthread_mutex_lock(&c->mu);
	c->gaps += count;
	pthread_mutex_unlock(&c->mu);
}

static long
coll_count(struct coll *c)
{
	long n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* What c holds now (read under its lock: the ring's atomics sit in a
 * mapping of their own, where ThreadSanitizer cannot see them order
 * the callback's writes before our reads). */
static struct coll
coll_get(struct coll *c)
{
	struct coll v;

	pthread_mutex_lock(&c->mu);
	v = *c;
	pthread_mutex_unlock(&c->mu);
	return v;
}

static sipc_receiver *
new_receiver(sipc_epm *epm, const char *handle, struct coll *c,
    size_t max_message)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;

	sipc_receiver_opts_init(&o);
	if (broker.pid > 0)
		o.listen_address = "127.0.0.1";
	if (max_message)
		o.max_message = max_message;
	o.on_message = coll_message;
	o.on_gap = coll_gap;
	o.arg = c;
	ck_assert_msg(sipc_receiver_new(handle, epm, &o, &rx) == 0, "%s",
	    sipc_errmsg());
	return rx;
}

/* ---- A sender recording its failures and the threads reporting them ------ */

struct fails {
	atomic_ullong	 lost;
	atomic_ullong	 toobig;
	atomic_int	 calls;
	atomic_int	 on_sender;	/* reports on a sending thread */
	pthread_t	 senders[NTHREADS + 1];
	atomic_int	 nsenders;
};

static void
on_failed(sipc_sender *tx, int error, const char *endpoint, uint64_t lost,
    void *arg)
{
	struct fails *f = arg;
	int i, n = atomic_load(&f->nsenders);

	(void)tx;
	(void)endpoint;
	atomic_fetch_add(&f->calls, 1);
	atomic_fetch_add(&f->lost, lost);
	if (error == SIPC_ETOOBIG)
		atomic_fetch_add(&f->toobig, lost);
	for (i = 0; i < n; i++)
		if (pthread_equal(f->senders[i], pthread_self()))
			atomic_fetch_add(&f->on_sender, 1);
}

static sipc_sender *
new_sender_opts(sipc_epm *epm, const char *handle, struct fails *f,
    int handoff_only)
{
	struct sipc_sender_opts o;
	sipc_sender *tx;

	memset(f, 0, sizeof(*f));
	sipc_sender_opts_init(&o);
	o.handoff_only = handoff_only;
	o.on_send_failed = on_failed;
	o.arg = f;
	ck_assert_msg(sipc_sender_new(handle, epm, &o, &tx) == 0, "%s",
	    sipc_errmsg());
	return tx;
}

static sipc_sender *
new_sender(sipc_epm *epm, const char *handle, struct fails *f)
{
	return new_sender_opts(epm, handle, f, 0);
}

/* ---- Sending threads ----------------------------------------------------- */

struct sending {
	sipc_sender	*tx;
	struct fails	*f;
	uint32_t	 thread;
	long		 count;
	size_t		 big;		/* every 8th this large; 0: none */
	int		 sparse;	/* pause after every message */
	long		 failed;	/* sipc_send errors */
};

static int
send_one(struct sending *s, uint32_t idx, size_t pad)
{
	uint8_t buf[sizeof(struct msg_hdr) + MAXPAD], *big = NULL, *p = buf;
	struct msg_hdr h = { s->thread, idx };
	size_t i, len = sizeof(h) + pad;
	int rc;

	if (s->big && idx % 8 == 7) {
		len = s->big;
		if ((big = malloc(len)) == NULL)
			return SIPC_ENOMEM;
		p = big;
	}
	memcpy(p, &h, sizeof(h));
	for (i = sizeof(h); i < len; i++)
		p[i] = (uint8_t)(idx + i);
	rc = sipc_send(s->tx, p, len);
	free(big);
	return rc;
}

/*
 * Bursts of 1 to 16 messages back to back (the later ones find the first
 * still being written: the queue), then most often a pause of 10 to 60 us
 * (the next finds the sender idle: direct).  sparse: a pause after each.
 */
static void *
sending_main(void *arg)
{
	struct sending *s = arg;
	unsigned seed = 7919 * (s->thread + 1);
	long i = 0, burst;

	while (i < s->count) {
		burst = s->sparse ? 1 : 1 + rand_r(&seed) % 16;
		for (; burst > 0 && i < s->count; burst--, i++)
			if (send_one(s, (uint32_t)i,
			    (size_t)(rand_r(&seed) % MAXPAD)) != 0)
				s->failed++;
		if (s->sparse || rand_r(&seed) % 4 != 0)
			pause_us(s->sparse ? 200 : 10 + rand_r(&seed) % 50);
	}
	return NULL;
}

static void
run_senders(struct sending *s, int n)
{
	pthread_t t[NTHREADS];
	int k;

	for (k = 0; k < n; k++) {
		ck_assert_int_eq(pthread_create(&t[k], NULL, sending_main,
		    &s[k]), 0);
		s[k].f->senders[k] = t[k];
		atomic_store(&s[k].f->nsenders, k + 1);
	}
	for (k = 0; k < n; k++)
		pthread_join(t[k], NULL);
}

static int
wait_count(struct coll *c, long n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (coll_count(c) < n && mono_ms() < end)
		sleep_ms(5);
	return coll_count(c) >= n;
}

/* ---- Cases --------------------------------------------------------------- */

/* Four threads, bursts and pauses, two receivers: all there, in order. */
START_TEST(test_threads_in_order)
{
	enum { M = 3000, NRX = 2 };
	struct sending s[NTHREADS];
	struct sipc_sender_stats st;
	struct coll c[NRX];
	sipc_receiver *rx[NRX];
	sipc_epm *repm[NRX], *epm;
	struct fails f;
	sipc_sender *tx;
	int k, t;

	mode_start(_i);
	for (k = 0; k < NRX; k++) {
		coll_init(&c[k]);
		repm[k] = new_epm();
		rx[k] = new_receiver(repm[k], "direct", &c[k], 0);
	}
	epm = new_epm();
	tx = new_sender(epm, "direct", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, NRX, 10000), 0);
	for (k = 0; k < NTHREADS; k++)
		s[k] = (struct sending){ tx, &f, (uint32_t)k, M, 0, 0, 0 };
	run_senders(s, NTHREADS);
	for (k = 0; k < NTHREADS; k++)
		ck_assert_int_eq(s[k].failed, 0);
	ck_assert_msg(sipc_sender_flush(tx, 30000) == 0, "%s: flush: %s",
	    mode_name[_i], sipc_errmsg());
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	ck_assert_uint_eq(st.sent, (uint64_t)M * NTHREADS);
	ck_assert_uint_eq(st.delivered, (uint64_t)M * NTHREADS * NRX);
	ck_assert_uint_eq(st.lost, 0);
	/* Both paths were taken. */
	ck_assert_msg(st.sent_direct > 0 && st.sent_direct < st.sent,
	    "%s: %llu of %llu sent directly", mode_name[_i],
	    (unsigned long long)st.sent_direct,
	    (unsigned long long)st.sent);
	for (k = 0; k < NRX; k++) {
		struct coll v = coll_get(&c[k]);

		ck_assert_int_eq(v.n, M * NTHREADS);
		ck_assert_int_eq(v.bad, 0);
		ck_assert_uint_eq(v.gaps, 0);
		for (t = 0; t < NTHREADS; t++) {
			ck_assert_int_eq(v.first[t], 0);
			ck_assert_int_eq(v.next[t], M);
		}
	}
	ck_assert_uint_eq(atomic_load(&f.lost), 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	for (k = 0; k < NRX; k++) {
		sipc_receiver_close(rx[k]);
		sipc_epm_close(repm[k]);
	}
	mode_stop();
}
END_TEST

/*
 * One receiver takes messages up to 1 KiB, the other any: every 8th
 * message of 4 KiB is skipped for the first and reported as too large,
 * on the I/O thread, though the sending thread wrote most of them itself.
 */
START_TEST(test_reports_on_io_thread)
{
	enum { M = 401 };	/* the last is small: the gap before shows */
	struct sipc_sender_stats st;
	unsigned long long toobig, lost;
	int calls, on_sender;
	struct sending s;
	struct coll small, any, vs, va;
	sipc_receiver *rs, *ra;
	sipc_epm *e1, *e2, *epm;
	struct fails f;
	sipc_sender *tx;

	mode_start(_i);
	coll_init(&small);
	coll_init(&any);
	e1 = new_epm();
	e2 = new_epm();
	rs = new_receiver(e1, "direct-big", &small, 1024);
	ra = new_receiver(e2, "direct-big", &any, 0);
	epm = new_epm();
	tx = new_sender(epm, "direct-big", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 2, 10000), 0);
	s = (struct sending){ tx, &f, 0, M, 4096, 1, 0 };
	run_senders(&s, 1);
	ck_assert_int_eq(s.failed, 0);
	ck_assert_msg(sipc_sender_flush(tx, 30000) == 0, "%s: flush: %s",
	    mode_name[_i], sipc_errmsg());
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	ck_assert_msg(st.sent_direct > M / 2, "%s: %llu of %d sent directly",
	    mode_name[_i], (unsigned long long)st.sent_direct, M);
	toobig = atomic_load(&f.toobig);
	lost = atomic_load(&f.lost);
	calls = atomic_load(&f.calls);
	on_sender = atomic_load(&f.on_sender);
	ck_assert_uint_eq(toobig, M / 8);
	ck_assert_uint_eq(lost, M / 8);
	ck_assert_int_gt(calls, 0);
	ck_assert_msg(on_sender == 0, "%s: %d of %d reports on the sending "
	    "thread", mode_name[_i], on_sender, calls);
	va = coll_get(&any);
	vs = coll_get(&small);
	ck_assert_int_eq(va.n, M);
	ck_assert_int_eq(va.bad, 0);
	/* Its order has the holes it was told of. */
	ck_assert_int_eq(vs.n, M - M / 8);
	ck_assert_int_eq(vs.bad, M / 8);
	ck_assert_uint_eq(vs.gaps, M / 8);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	sipc_receiver_close(rs);
	sipc_receiver_close(ra);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	mode_stop();
}
END_TEST

/* handoff_only: the same sparse sends, none direct, all delivered. */
START_TEST(test_handoff_only)
{
	enum { M = 200 };
	struct sipc_sender_stats st;
	struct sending s;
	struct coll c, v;
	sipc_receiver *rx;
	sipc_epm *e1, *epm;
	struct fails f;
	sipc_sender *tx;

	mode_start(_i);
	coll_init(&c);
	e1 = new_epm();
	rx = new_receiver(e1, "direct-off", &c, 0);
	epm = new_epm();
	tx = new_sender_opts(epm, "direct-off", &f, 1);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	s = (struct sending){ tx, &f, 0, M, 0, 1, 0 };
	run_senders(&s, 1);
	ck_assert_int_eq(s.failed, 0);
	ck_assert_msg(sipc_sender_flush(tx, 30000) == 0, "%s: flush: %s",
	    mode_name[_i], sipc_errmsg());
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	ck_assert_uint_eq(st.sent, M);
	ck_assert_uint_eq(st.sent_direct, 0);
	v = coll_get(&c);
	ck_assert_int_eq(v.n, M);
	ck_assert_int_eq(v.bad, 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	sipc_receiver_close(rx);
	sipc_epm_close(e1);
	mode_stop();
}
END_TEST

struct stream {
	struct sending	 s;
	atomic_int	 stop;
	atomic_long	 sent;
};

static void *
stream_main(void *arg)
{
	struct stream *st = arg;
	uint32_t i = 0;

	while (!atomic_load(&st->stop)) {
		if (send_one(&st->s, i, 16) == 0)
			atomic_store(&st->sent, (long)++i);
		pause_us(i % 32 == 0 ? 2000 : 100);
	}
	return NULL;
}

/*
 * Sparse sends from two threads while the receiver goes away and another
 * comes: no crash or hang, the first receiver's losses (if any) reported,
 * the second gets every message after its first, in order.
 */
START_TEST(test_receiver_changes)
{
	struct stream st[2];
	pthread_t t[2];
	struct coll c1, c2, v;
	sipc_receiver *r1, *r2;
	sipc_epm *e1, *e2, *epm;
	struct fails f;
	sipc_sender *tx;
	long before;
	int k, on_sender;

	mode_start(_i);
	coll_init(&c1);
	coll_init(&c2);
	e1 = new_epm();
	r1 = new_receiver(e1, "direct-change", &c1, 0);
	epm = new_epm();
	tx = new_sender(epm, "direct-change", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	for (k = 0; k < 2; k++) {
		memset(&st[k], 0, sizeof(st[k]));
		st[k].s = (struct sending){ tx, &f, (uint32_t)k, 0, 0, 1, 0 };
		ck_assert_int_eq(pthread_create(&t[k], NULL, stream_main,
		    &st[k]), 0);
		f.senders[k] = t[k];
		atomic_store(&f.nsenders, k + 1);
	}
	ck_assert(wait_count(&c1, 200, 10000));
	sipc_receiver_close(r1);
	sipc_epm_close(e1);
	sleep_ms(200);
	e2 = new_epm();
	r2 = new_receiver(e2, "direct-change", &c2, 0);
	ck_assert(wait_count(&c2, 200, 10000));
	before = atomic_load(&st[0].sent) + atomic_load(&st[1].sent);
	ck_assert(wait_count(&c2, coll_count(&c2) + 200, 10000));
	for (k = 0; k < 2; k++) {
		atomic_store(&st[k].stop, 1);
		pthread_join(t[k], NULL);
	}
	ck_assert_int_gt(atomic_load(&st[0].sent) + atomic_load(&st[1].sent),
	    before);
	ck_assert_msg(sipc_sender_flush(tx, 30000) == 0, "%s: flush: %s",
	    mode_name[_i], sipc_errmsg());
	/* The newcomer: from its first message of each thread on, all. */
	v = coll_get(&c2);
	ck_assert_int_eq(v.bad, 0);
	ck_assert_uint_eq(v.gaps, 0);
	for (k = 0; k < 2; k++) {
		ck_assert_int_ge(v.first[k], 0);
		ck_assert_int_eq(v.next[k], atomic_load(&st[k].sent));
	}
	v = coll_get(&c1);
	ck_assert_int_eq(v.bad, 0);
	on_sender = atomic_load(&f.on_sender);
	ck_assert_msg(on_sender == 0, "%s: %d reports on a sending thread",
	    mode_name[_i], on_sender);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	sipc_receiver_close(r2);
	sipc_epm_close(e2);
	mode_stop();
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s = suite_create("direct");
	TCase *tc = tcase_create("direct");

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_loop_test(tc, test_threads_in_order, 0, 3);
	tcase_add_loop_test(tc, test_reports_on_io_thread, 0, 3);
	tcase_add_loop_test(tc, test_receiver_changes, 0, 3);
	tcase_add_loop_test(tc, test_handoff_only, 0, 3);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
