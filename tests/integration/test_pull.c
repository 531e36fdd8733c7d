/*
 * test_pull.c - pull mode and the pollable descriptors (sipc.h, "Pull
 * mode"): messages, requests and answers taken by the program's own
 * thread or event loop, never through a callback on sipc's I/O thread.
 *
 *   - the descriptors are readable exactly while something waits
 *     (level semantics, checked with poll before and after draining);
 *   - the queue's bound holds and reaches the sender: with nobody taking,
 *     sipc_send() (policy BLOCK) times out, and everything flows again
 *     once the program takes;
 *   - a receiver, a requester and a pull responder in one epoll loop;
 *   - libclient/examples/eventloop.c (libevent) against "sipc reply" and
 *     "sipc send", as separate processes;
 *   - closing wakes a thread waiting in recv and collect (SIPC_ECLOSED).
 *
 * Each case runs with the local registry and with a broker.
 */
#include <sys/epoll.h>
#include <sys/stat.h>
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static struct tu_broker broker;

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

/* 1 when fd is readable now, 0 when not (within wait_ms). */
static int
readable(int fd, int wait_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN);
}

static sipc_receiver *
pull_receiver(sipc_epm *epm, const char *handle, size_t qmax, int requests)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;

	sipc_receiver_opts_init(&o);
	if (broker.pid > 0)
		o.listen_address = "127.0.0.1";
	if (qmax)
		o.queue_max = qmax;
	o.pull_requests = requests;
	ck_assert_msg(sipc_receiver_new(handle, epm, &o, &rx) == 0, "%s",
	    sipc_errmsg());
	return rx;
}

/* ---- Level semantics ----------------------------------------------------- */

START_TEST(test_recv_level)
{
	struct sipc_receiver_opts o;
	struct sipc_message *m;
	sipc_receiver *rx, *cb;
	sipc_sender *tx;
	sipc_epm *epm;
	char want[16], buf[64];
	size_t lens[8];
	int64_t t0;
	int fd, i;

	tu_mode_setup(&broker, _i);
	epm = new_epm();
	rx = pull_receiver(epm, "level", 0, 0);
	fd = sipc_receiver_fd(rx);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(readable(fd, 0), 0);
	ck_assert_int_eq(sipc_receiver_recv(rx, &m, 0), SIPC_ETIMEDOUT);
	ck_assert_ptr_null(m);
	t0 = mono_ms();
	ck_assert_int_eq(sipc_receiver_recv(rx, &m, 150), SIPC_ETIMEDOUT);
	ck_assert_int_ge(mono_ms() - t0, 140);

	ck_assert_int_eq(sipc_sender_new("level", epm, NULL, &tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 5000), 0);
	for (i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "m%d", i);
		ck_assert_int_eq(sipc_send(tx, want, strlen(want)), 0);
	}
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	ck_assert_int_eq(readable(fd, 2000), 1);
	for (i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "m%d", i);
		ck_assert_int_eq(sipc_receiver_recv(rx, &m, 0), 0);
		ck_assert_uint_eq(m->len, strlen(want));
		ck_assert_int_eq(memcmp(m->data, want, m->len), 0);
		ck_assert_str_eq(m->handle, "level");
		ck_assert_uint_eq(m->seq, (uint64_t)i + 1);
		ck_assert_uint_ne(m->sender_id, 0);
		/* Still readable while one more waits, not after the last. */
		ck_assert_int_eq(readable(fd, 0), i < 2);
		sipc_message_free(m);
	}
	ck_assert_int_eq(sipc_receiver_recv(rx, &m, 0), SIPC_ETIMEDOUT);

	/* Batches: as many as fit, lengths apart; one too large for the
	 * buffer stays queued for sipc_receiver_recv(). */
	ck_assert_int_eq(sipc_send(tx, "aa", 2), 0);
	ck_assert_int_eq(sipc_send(tx, "bbb", 3), 0);
	ck_assert_int_eq(sipc_send(tx, "cccccccc", 8), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	ck_assert_int_eq(readable(fd, 2000), 1);
	memset(lens, 0, sizeof(lens));
	ck_assert_int_eq(sipc_receiver_recv_into(rx, buf, 7, lens, 8, 0), 2);
	ck_assert_uint_eq(lens[0], 2);
	ck_assert_uint_eq(lens[1], 3);
	ck_assert_int_eq(memcmp(buf, "aabbb", 5), 0);
	ck_assert_int_eq(sipc_receiver_recv_into(rx, buf, 7, lens, 8, 0),
	    SIPC_ETOOBIG);
	ck_assert_int_eq(readable(fd, 0), 1);
	ck_assert_int_eq(sipc_receiver_recv_into(rx, buf, 0, lens, 0, 0),
	    SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_recv_into(rx, buf, sizeof(buf), lens,
	    8, 0), 1);
	ck_assert_uint_eq(lens[0], 8);
	ck_assert_int_eq(readable(fd, 0), 0);
	ck_assert_int_eq(sipc_receiver_recv_into(rx, buf, sizeof(buf), lens,
	    8, 50), SIPC_ETIMEDOUT);

	/* Again, the descriptor rises with the next one. */
	ck_assert_int_eq(sipc_send(tx, "x", 1), 0);
	ck_assert_int_eq(readable(fd, 2000), 1);
	ck_assert_int_eq(sipc_receiver_recv(rx, &m, -1), 0);
	sipc_message_free(m);
	ck_assert_int_eq(readable(fd, 0), 0);

	/* A receiver with on_message has no queue; a pull receiver no
	 * request queue unless asked. */
	sipc_receiver_opts_init(&o);
	o.on_message = (sipc_message_fn)abort;
	if (broker.pid > 0)
		o.listen_address = "127.0.0.1";
	ck_assert_int_eq(sipc_receiver_new("other", epm, &o, &cb), 0);
	ck_assert_int_eq(sipc_receiver_fd(cb), SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_recv(cb, &m, 0), SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_request_fd(rx), SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_recv(NULL, &m, 0), SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_recv(rx, NULL, 0), SIPC_EINVAL);
	sipc_message_free(NULL);
	sipc_receiver_close(cb);
	o.on_message = NULL;
	o.queue_max = 0;
	ck_assert_int_eq(sipc_receiver_new("bad", epm, &o, &cb), SIPC_EINVAL);
	o.queue_max = 10;
	o.queue_max_bytes = 2u * 1024 * 1024 * 1024;
	ck_assert_int_eq(sipc_receiver_new("bad", epm, &o, &cb), SIPC_EINVAL);

	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- The bound reaches the sender ----------------------------------------- */

START_TEST(test_backpressure)
{
	struct sipc_receiver_stats st;
	struct sipc_sender_opts so;
	struct sipc_message *m;
	sipc_receiver *rx;
	sipc_sender *tx;
	sipc_epm *epm;
	char msg[64];
	uint64_t next = 1;
	long sent = 0, got = 0;
	int rc = 0;

	tu_mode_setup(&broker, _i);
	epm = new_epm();
	rx = pull_receiver(epm, "bp", 100, 0);
	sipc_sender_opts_init(&so);
	so.hwm_bytes = 64 * 1024;
	so.send_timeout_ms = 300;
	ck_assert_int_eq(sipc_sender_new("bp", epm, &so, &tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 5000), 0);
	memset(msg, 'x', sizeof(msg));
	/* A few go through first: on a local connection the shared-memory
	 * ring is set up by then, and the flood below goes through it. */
	for (got = 0; got < 10; got++)
		ck_assert_int_eq(sipc_send(tx, msg, sizeof(msg)), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	for (got = 0; got < 10; got++) {
		ck_assert_int_eq(sipc_receiver_recv(rx, &m, 5000), 0);
		ck_assert_uint_eq(m->seq, next);
		next++;
		sipc_message_free(m);
	}
	sleep_ms(50);
	sent = got = 10;
	/* Nobody takes: the queue stops at 100, the connection fills, and
	 * the sender meets its mark (a few MiB of socket buffers at most). */
	while (sent < 2000000 && (rc = sipc_send(tx, msg, sizeof(msg))) == 0)
		sent++;
	ck_assert_int_eq(rc, SIPC_ETIMEDOUT);
	ck_assert_int_eq(sipc_receiver_stats(rx, &st), 0);
	ck_assert_uint_eq(st.messages, 110);
	/* Asked for only now, the descriptor tells what waits already. */
	ck_assert_int_eq(readable(sipc_receiver_fd(rx), 0), 1);
	/* Taking makes room: the rest flows, in order, none lost. */
	while (got < sent) {
		ck_assert_int_eq(sipc_receiver_recv(rx, &m, 5000), 0);
		ck_assert_uint_eq(m->seq, next);
		next++;
		got++;
		sipc_message_free(m);
	}
	ck_assert_int_eq(sipc_send(tx, msg, sizeof(msg)), 0);
	ck_assert_int_eq(sipc_receiver_recv(rx, &m, 5000), 0);
	sipc_message_free(m);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	ck_assert_int_eq(sipc_receiver_stats(rx, &st), 0);
	ck_assert_uint_eq(st.gaps, 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- One epoll loop -------------------------------------------------------- */

#define NMSG	2000

struct server {
	sipc_receiver	*rsp;
	int		 answered;
	int		 rc;
};

/* A pull responder on a thread of its own: echoes "re:" + request. */
static void *
serve(void *arg)
{
	struct server *s = arg;
	struct sipc_request *req;
	const struct sipc_message *m;
	char out[64];
	int rc;

	while ((rc = sipc_receiver_recv_request(s->rsp, &req, -1)) == 0) {
		m = sipc_request_message(req);
		snprintf(out, sizeof(out), "re:%.*s", (int)m->len,
		    (const char *)m->data);
		if (sipc_request_reply(req, out, strlen(out)) != 0)
			break;
		s->answered++;
	}
	s->rc = rc;
	return NULL;
}

struct feeder {
	sipc_sender	*tx;
	int		 rc;
};

static void *
feed(void *arg)
{
	struct feeder *f = arg;
	char msg[32];
	int i;

	for (i = 0; i < NMSG && f->rc == 0; i++) {
		snprintf(msg, sizeof(msg), "%d", i);
		f->rc = sipc_send(f->tx, msg, strlen(msg));
	}
	return NULL;
}

START_TEST(test_epoll_loop)
{
	struct epoll_event ev, evs[4];
	struct sipc_message *m;
	struct sipc_reply *r;
	struct server s;
	struct feeder f;
	sipc_receiver *rx;
	sipc_requester *rq;
	sipc_epm *epm;
	pthread_t st, ft;
	uint64_t id;
	char want[64], *seen;
	int ep, n, i, k, msgs = 0, replies = 0, wakeups = 0;
	int64_t t0;

	tu_mode_setup(&broker, _i);
	epm = new_epm();
	rx = pull_receiver(epm, "loop", 0, 0);
	memset(&s, 0, sizeof(s));
	s.rsp = pull_receiver(epm, "loop.rpc", 0, 1);
	ck_assert_int_ge(sipc_receiver_request_fd(s.rsp), 0);
	ck_assert_int_eq(sipc_requester_new("loop.rpc", epm, NULL, &rq), 0);
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(sipc_sender_new("loop", epm, NULL, &f.tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(f.tx, 1, 5000), 0);
	ck_assert_ptr_nonnull(seen = calloc(NMSG, 1));

	ck_assert_int_ge(ep = epoll_create1(EPOLL_CLOEXEC), 0);
	ev.events = EPOLLIN;
	ev.data.u32 = 1;
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, sipc_receiver_fd(rx),
	    &ev), 0);
	ev.data.u32 = 2;
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, sipc_requester_fd(rq),
	    &ev), 0);
	pthread_create(&st, NULL, serve, &s);
	pthread_create(&ft, NULL, feed, &f);

	/* Every message becomes a request; every answer is checked. */
	t0 = mono_ms();
	while (replies < NMSG && mono_ms() - t0 < 30000) {
		n = epoll_wait(ep, evs, 4, 1000);
		for (i = 0; i < n; i++) {
			wakeups++;
			if (evs[i].data.u32 == 1) {
				while (sipc_receiver_recv(rx, &m, 0) == 0) {
					ck_assert_int_eq(sipc_request_start(rq,
					    m->data, m->len, 10000, 0, NULL), 0);
					msgs++;
					sipc_message_free(m);
				}
				continue;
			}
			while (sipc_requester_collect(rq, &id, &r, 0) == 0) {
				ck_assert_msg(r->error == 0, "reply: %s",
				    sipc_strerror(r->error));
				ck_assert_int_gt(r->len, 3);
				ck_assert_int_eq(memcmp(r->data, "re:", 3), 0);
				snprintf(want, sizeof(want), "%.*s",
				    (int)r->len - 3, (const char *)r->data + 3);
				k = atoi(want);
				ck_assert(k >= 0 && k < NMSG && !seen[k]);
				seen[k] = 1;
				replies++;
				sipc_reply_free(r);
			}
		}
	}
	pthread_join(ft, NULL);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_int_eq(msgs, NMSG);
	ck_assert_int_eq(replies, NMSG);
	ck_assert_int_gt(wakeups, 0);
	/* Drained: neither descriptor is readable. */
	ck_assert_int_eq(readable(sipc_receiver_fd(rx), 0), 0);
	ck_assert_int_eq(readable(sipc_requester_fd(rq), 0), 0);

	/* A request that fails is collected with its error. */
	ck_assert_int_eq(sipc_request_start(rq, "x", 1, 1, 0, &id), 0);
	sipc_receiver_close(s.rsp);	/* wakes serve(): SIPC_ECLOSED */
	pthread_join(st, NULL);
	ck_assert_int_eq(s.rc, SIPC_ECLOSED);
	ck_assert_int_ge(s.answered, NMSG);
	ck_assert_int_eq(sipc_requester_collect(rq, &id, &r, 5000), 0);
	sipc_reply_free(r);
	ck_assert_int_eq(sipc_requester_collect(rq, &id, &r, 0),
	    SIPC_ETIMEDOUT);
	ck_assert_ptr_null(r);

	close(ep);
	free(seen);
	sipc_requester_close(rq);
	ck_assert_int_eq(sipc_sender_close(f.tx), 0);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- Closing wakes waiters ------------------------------------------------- */

struct waiter {
	sipc_receiver	*rx;
	sipc_requester	*rq;
	int		 rc;
};

static void *
wait_recv(void *arg)
{
	struct waiter *w = arg;
	struct sipc_message *m;

	w->rc = sipc_receiver_recv(w->rx, &m, -1);
	return NULL;
}

static void *
wait_collect(void *arg)
{
	struct waiter *w = arg;
	struct sipc_reply *r;

	w->rc = sipc_requester_collect(w->rq, NULL, &r, -1);
	return NULL;
}

START_TEST(test_close_wakes)
{
	struct waiter a, b;
	sipc_epm *epm;
	pthread_t ta, tb;

	tu_mode_setup(&broker, _i);
	epm = new_epm();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.rx = pull_receiver(epm, "wake", 0, 0);
	ck_assert_int_eq(sipc_requester_new("wake", epm, NULL, &b.rq), 0);
	pthread_create(&ta, NULL, wait_recv, &a);
	pthread_create(&tb, NULL, wait_collect, &b);
	sleep_ms(200);
	sipc_receiver_close(a.rx);
	sipc_requester_close(b.rq);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(a.rc, SIPC_ECLOSED);
	ck_assert_int_eq(b.rc, SIPC_ECLOSED);
	sipc_epm_close(epm);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- The libevent example, as separate processes ------------------------ */

START_TEST(test_libevent_example)
{
	char out[300], err[300], cmd[1200], res[256];
	pid_t ex, rep;
	int i;

	tu_mode_setup(&broker, _i);
	snprintf(out, sizeof(out), "%s/example.out", tu_tmpdir());
	snprintf(err, sizeof(err), "%s/reply.err", tu_tmpdir());
	if (broker.pid > 0)
		setenv("SIPC_BROKER", broker.addr, 1);
	{
		char *argv[] = { (char *)tu_bin("sipc"), "reply", "ex.rpc",
		    NULL };

		ck_assert_int_gt(rep = proc_spawn(argv, err), 0);
	}
	{
		char *argv[] = { (char *)tu_bin("sipc-example-eventloop"),
		    "ex", "ex.rpc", "3", NULL };

		ck_assert_int_gt(ex = proc_spawn(argv, out), 0);
	}
	ck_assert_int_eq(tu_wait_file(out, "ready", 1, 10000), 1);
	for (i = 0; i < 50; i++) {
		snprintf(cmd, sizeof(cmd), "'%s' request ex.rpc ping "
		    "--timeout 500 >/dev/null 2>&1", tu_bin("sipc"));
		if (tu_sh(10, res, sizeof(res), "%s", cmd) == 0)
			break;
		sleep_ms(100);
	}
	ck_assert_int_eq(tu_sh(20, res, sizeof(res), "'%s' send ex "
	    "--wait-receivers 1 one two three", tu_bin("sipc")), 0);
	ck_assert_int_eq(proc_ok(proc_wait(ex, 20000)), 1);
	ck_assert_int_eq(tu_file_count(out, "-> one"), 1);
	ck_assert_int_eq(tu_file_count(out, "-> two"), 1);
	ck_assert_int_eq(tu_file_count(out, "-> three"), 1);
	ck_assert_int_eq(tu_file_count(out, "failed"), 0);
	proc_stop(rep, 5000);
	unsetenv("SIPC_BROKER");
	tu_mode_teardown(&broker);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s = suite_create("pull");
	TCase *tc = tcase_create("pull");

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_loop_test(tc, test_recv_level, 0, 2);
	tcase_add_loop_test(tc, test_backpressure, 0, 2);
	tcase_add_loop_test(tc, test_epoll_loop, 0, 2);
	tcase_add_loop_test(tc, test_close_wakes, 0, 2);
	tcase_add_loop_test(tc, test_libevent_example, 0, 2);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
