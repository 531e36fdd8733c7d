/*
 * test_faults.c - sipc under faults, with real processes: the broker
 * killed mid-stream and restarted, a receiver frozen under load, killed,
 * frozen past its heartbeats, 1,000 receivers churning while a watcher's
 * session is cut, a broker out of descriptors, and a sender/receiver pair
 * under valgrind.  (A sender started before the broker and any receiver is
 * test_sender_first in test_client.c.)
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static char out[1 << 20];

/* How many registrations of handle the broker shows, or -1. */
static int
registered(const char *addr, const char *handle)
{
	if (tu_sh(10, out, sizeof(out), "%s --broker %s --timeout 1000 "
	    "--json show %s", tu_bin("brokerctl"), addr, handle) != 0)
		return -1;
	return tu_count(out, "\"id\":");
}

/* Checks that path holds the lines 0..n-1 ("%07ld"), in order. */
static void
check_lines(const char *path, long n)
{
	char line[64], want[64];
	FILE *fp = fopen(path, "r");
	long i = 0;

	ck_assert_msg(fp != NULL, "no output %s", path);
	while (fgets(line, sizeof(line), fp)) {
		snprintf(want, sizeof(want), "%07ld\n", i);
		ck_assert_msg(strcmp(line, want) == 0, "%s: line %ld is '%.*s'",
		    path, i + 1, (int)strcspn(line, "\n"), line);
		i++;
	}
	fclose(fp);
	ck_assert_msg(i == n, "%s: %ld lines, not %ld", path, i, n);
}

struct failures {
	atomic_ullong	lost;
	atomic_ullong	dropped;
	atomic_int	error;
};

static void
on_failed(sipc_sender *tx, int error, const char *endpoint, uint64_t lost,
    void *arg)
{
	struct failures *f = arg;

	(void)tx;
	(void)endpoint;
	atomic_store(&f->error, error);
	if (error == SIPC_EDROPPED)
		atomic_fetch_add(&f->dropped, lost);
	else
		atomic_fetch_add(&f->lost, lost);
}

static sipc_sender *
make_sender(const char *addr, const char *handle, int policy, size_t hwm,
    struct failures *f, sipc_epm **epm)
{
	struct sipc_sender_opts o;
	sipc_sender *tx;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(sipc_epm_connect(addr, NULL, epm), 0);
	sipc_sender_opts_init(&o);
	o.policy = policy;
	if (hwm)
		o.hwm_bytes = hwm;
	o.send_timeout_ms = 60000;
	o.on_send_failed = on_failed;
	o.arg = f;
	ck_assert_int_eq(sipc_sender_new(handle, *epm, &o, &tx), 0);
	return tx;
}

/* ---- (a) The broker SIGKILLed mid-stream and restarted ------------------ */

struct regwatch {
	char		addr[32];
	int64_t		started;
	atomic_long	whole_ms;	/* -1 until 3 are registered */
};

static void *
regwatch_main(void *arg)
{
	struct regwatch *w = arg;

	while (mono_ms() - w->started < 10000) {
		if (registered(w->addr, "stream") == 3) {
			atomic_store(&w->whole_ms, mono_ms() - w->started);
			break;
		}
		sleep_ms(20);
	}
	return NULL;
}

START_TEST(test_broker_killed_midstream)
{
	enum { N = 1000000 };
	char outf[3][300], errf[3][300], msg[16];
	struct regwatch rw;
	struct failures f;
	struct tu_broker b, b2;
	pthread_t t;
	sipc_sender *tx;
	sipc_epm *epm;
	uint16_t port = free_port();
	pid_t rx[3];
	long i;
	int k, st;

	ck_assert_int_eq(tu_broker_start_port(&b, port, NULL), 0);
	for (k = 0; k < 3; k++) {
		snprintf(outf[k], sizeof(outf[k]), "%s/stream%d.out",
		    tu_tmpdir(), k);
		snprintf(errf[k], sizeof(errf[k]), "%s/stream%d.err",
		    tu_tmpdir(), k);
		rx[k] = tu_spawn_recv(b.addr, "stream", N, outf[k], errf[k]);
	}
	tx = make_sender(b.addr, "stream", SIPC_POLICY_BLOCK, 0, &f, &epm);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 3, 10000), 0);
	for (i = 0; i < N; i++) {
		if (i == N / 2) {
			/* Mid-stream: the broker dies and comes back. */
			kill(b.pid, SIGKILL);
			waitpid(b.pid, &st, 0);
			ck_assert_int_eq(tu_broker_start_port(&b2, port, NULL),
			    0);
			memset(&rw, 0, sizeof(rw));
			snprintf(rw.addr, sizeof(rw.addr), "%s", b2.addr);
			rw.started = mono_ms();
			atomic_store(&rw.whole_ms, -1);
			pthread_create(&t, NULL, regwatch_main, &rw);
		}
		snprintf(msg, sizeof(msg), "%07ld", i);
		ck_assert_int_eq(sipc_send(tx, msg, 7), 0);
	}
	ck_assert_msg(sipc_sender_flush(tx, 60000) == 0, "flush: %s",
	    sipc_errmsg());
	pthread_join(t, NULL);
	fprintf(stderr, "broker restart: registry whole again after %ld ms\n",
	    atomic_load(&rw.whole_ms));
	ck_assert_int_ge(atomic_load(&rw.whole_ms), 0);
	ck_assert_int_le(atomic_load(&rw.whole_ms), 2000);
	ck_assert_uint_eq(atomic_load(&f.lost), 0);
	/* The sender kept its connections through the outage. */
	ck_assert_int_eq(sipc_sender_receivers(tx), 3);
	for (k = 0; k < 3; k++) {
		st = proc_wait(rx[k], 60000);
		if (!(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
			tu_sh(10, out, sizeof(out), "tail -c 3000 %s", errf[k]);
		ck_assert_msg(st != -1 && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0, "receiver %d failed (status %d): %s",
		    k, st, out);
		check_lines(outf[k], N);
		ck_assert_int_eq(tu_file_count(errf[k], "missing"), 0);
	}
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	tu_broker_stop(&b2);
}
END_TEST

/* ---- (b) One receiver of three frozen under full load, policy drop ------- */

struct counter {
	atomic_long	n;
	atomic_ullong	gaps;
};

static void
count_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct counter *c = arg;

	(void)rx;
	atomic_fetch_add(&c->n, 1);
}

static void
count_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first,
    uint64_t count, void *arg)
{
	struct counter *c = arg;

	(void)rx;
	(void)sender_id;
	(void)first;
	atomic_fetch_add(&c->gaps, count);
}

static sipc_receiver *
counting_receiver(const char *addr, const char *handle, struct counter *c,
    sipc_epm **epm)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;

	ck_assert_int_eq(sipc_epm_connect(addr, NULL, epm), 0);
	sipc_receiver_opts_init(&o);
	o.listen_address = "127.0.0.1";
	o.on_message = count_message;
	o.on_gap = count_gap;
	o.arg = c;
	ck_assert_int_eq(sipc_receiver_new(handle, *epm, &o, &rx), 0);
	return rx;
}

struct pump {
	sipc_sender	*tx;
	atomic_int	 stop;
	atomic_long	 sent;
	atomic_int	 error;
};

/*
 * Sends 64-byte messages at a steady rate the healthy receivers can take
 * (100,000/s; a quarter of that in a sanitizer build, which is slower), so
 * that every drop is the frozen one's.
 */
static void *
pump_main(void *arg)
{
	struct pump *p = arg;
	int64_t t0 = mono_ms(), due;
	const char *san = getenv("SIPC_SANITIZE");
	long rate = san && *san ? 25000 : 100000;
	char msg[64];
	long i = 0;
	int rc;

	memset(msg, 'p', sizeof(msg));
	while (!atomic_load(&p->stop)) {
		if ((rc = sipc_send(p->tx, msg, sizeof(msg))) != 0) {
			atomic_store(&p->error, rc);
			break;
		}
		atomic_store(&p->sent, ++i);
		if (i % 1000 == 0) {
			due = t0 + i * 1000 / rate;
			if (due > mono_ms())
				sleep_ms((int)(due - mono_ms()));
		}
	}
	return NULL;
}

START_TEST(test_frozen_receiver_drop)
{
	enum { HWM = 1024 * 1024 };
	char outf[300], errf[300];
	struct counter c1, c2;
	struct failures f;
	struct tu_broker b;
	struct pump p;
	sipc_receiver *r1, *r2;
	sipc_epm *e1, *e2, *epm;
	pthread_t t;
	struct sipc_sender_stats st;
	long n1a, n1b, n2a, n2b, before_rate, during_rate, rss0, rss;
	size_t max_queued = 0;
	int64_t t0, t1;
	pid_t a;
	int i, s;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	memset(&c1, 0, sizeof(c1));
	memset(&c2, 0, sizeof(c2));
	snprintf(outf, sizeof(outf), "%s/frozen.out", tu_tmpdir());
	snprintf(errf, sizeof(errf), "%s/frozen.err", tu_tmpdir());
	a = tu_spawn_recv(b.addr, "load", 1L << 40, outf, errf);
	r1 = counting_receiver(b.addr, "load", &c1, &e1);
	r2 = counting_receiver(b.addr, "load", &c2, &e2);
	memset(&p, 0, sizeof(p));
	p.tx = make_sender(b.addr, "load", SIPC_POLICY_DROP, HWM, &f, &epm);
	ck_assert_int_eq(sipc_sender_wait_receivers(p.tx, 3, 10000), 0);
	rss0 = proc_rss_kb(getpid());
	pthread_create(&t, NULL, pump_main, &p);

	/* 1.5 s of steady load, then 5 s with one receiver frozen. */
	sleep_ms(500);
	t0 = mono_ms();
	n1a = atomic_load(&c1.n);
	sleep_ms(1000);
	before_rate = (atomic_load(&c1.n) - n1a) * 1000 /
	    (mono_ms() - t0 + 1);
	kill(a, SIGSTOP);
	sleep_ms(1000);	/* its socket buffers fill up first */
	t1 = mono_ms();
	n1b = atomic_load(&c1.n);
	n2b = atomic_load(&c2.n);
	for (i = 0; i < 40; i++) {	/* 4 s more: frozen 5 s in all */
		sleep_ms(100);
		ck_assert_int_eq(sipc_sender_stats(p.tx, &st), 0);
		if (st.queued_bytes > max_queued)
			max_queued = st.queued_bytes;
	}
	during_rate = (atomic_load(&c1.n) - n1b) * 1000 /
	    (mono_ms() - t1 + 1);
	n2a = atomic_load(&c2.n) - n2b;
	rss = proc_rss_kb(getpid());
	kill(a, SIGCONT);
	sleep_ms(1000);
	atomic_store(&p.stop, 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&p.error), 0);
	ck_assert_msg(sipc_sender_flush(p.tx, 30000) == 0, "flush: %s",
	    sipc_errmsg());
	ck_assert_int_eq(sipc_sender_stats(p.tx, &st), 0);
	fprintf(stderr, "frozen receiver: others at %ld msg/s before, %ld "
	    "msg/s during (%ld%%); sent %llu, dropped %llu; max queued %zu "
	    "bytes (mark %d); RSS +%ld kB\n", before_rate, during_rate,
	    before_rate ? during_rate * 100 / before_rate : 0,
	    (unsigned long long)st.sent, (unsigned long long)st.dropped,
	    max_queued, HWM, rss - rss0);

	/* The others went on at the rate they had (not a speed test: a
	 * blocked sender would give them nothing). */
	ck_assert_int_gt(n2a, 1000);
	ck_assert_int_gt(during_rate, before_rate / 2);
	/* Memory stayed at the mark. */
	ck_assert_uint_le(max_queued, HWM + 64 + 24);
	/* (A sanitizer's quarantine keeps freed memory: RSS says nothing.) */
	if (!getenv("SIPC_SANITIZE") || !*getenv("SIPC_SANITIZE"))
		ck_assert_int_lt(rss - rss0, 16 * 1024);
	/* Every drop reported, exactly. */
	ck_assert_uint_gt(st.dropped, 0);
	ck_assert_uint_eq(atomic_load(&f.dropped), st.dropped);
	ck_assert_uint_eq(atomic_load(&f.lost), 0);
	ck_assert_int_eq(atomic_load(&c1.n), (long)st.sent);
	ck_assert_int_eq(atomic_load(&c2.n), (long)st.sent);
	proc_stop(a, 5000);
	ck_assert_int_eq(tu_file_lines(outf) + (long)st.dropped, (long)st.sent);
	/* The frozen one saw the same number as gaps. */
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "awk '/missing/ "
	    "{ s += $3 } END { print s + 0 }' %s", errf), 0);
	ck_assert_int_eq(atol(out), (long)st.dropped);
	s = sipc_sender_close(p.tx);
	ck_assert_int_eq(s, 0);
	sipc_receiver_close(r1);
	sipc_receiver_close(r2);
	sipc_epm_close(epm);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	tu_broker_stop(&b);
}
END_TEST

/* ---- (c) A receiver SIGKILLed: LEAVE within 1 s, the loss reported ------- */

START_TEST(test_killed_receiver_leave)
{
	char outf[300], errf[300], msg[16];
	struct tu_broker b;
	struct failures f;
	struct wire_header h;
	struct wire_leave l;
	struct wbuf w;
	uint8_t buf[4096];
	sipc_sender *tx;
	sipc_epm *epm;
	int64_t t0, leave_ms = -1;
	pid_t a;
	int wfd, i;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	snprintf(outf, sizeof(outf), "%s/k.out", tu_tmpdir());
	snprintf(errf, sizeof(errf), "%s/k.err", tu_tmpdir());
	a = tu_spawn_recv(b.addr, "kill", 1000, outf, errf);
	tx = make_sender(b.addr, "kill", SIPC_POLICY_BLOCK, 0, &f, &epm);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	/* A watcher of our own, on the raw protocol. */
	wfd = connect_loopback(b.port);
	ck_assert_int_eq(tu_hello(wfd, 0), 0);
	wbuf_init(&w, 4096);
	wire_enc_handle(&w, WIRE_WATCH, 2, "kill", 4);
	tu_send_wbuf(wfd, &w);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(wfd, WIRE_OK, &h, buf, sizeof(buf),
	    5000), 0);
	for (i = 0; i < 100; i++) {
		snprintf(msg, sizeof(msg), "%07d", i);
		sipc_send(tx, msg, 7);
	}
	ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	kill(a, SIGSTOP);
	sleep_ms(100);
	for (; i < 150; i++) {
		snprintf(msg, sizeof(msg), "%07d", i);
		sipc_send(tx, msg, 7);
	}
	sleep_ms(100);
	t0 = mono_ms();
	kill(a, SIGKILL);
	if (tu_recv_type(wfd, WIRE_LEAVE, &h, buf, sizeof(buf), 3000) == 0) {
		leave_ms = mono_ms() - t0;
		ck_assert_int_eq(wire_dec_leave(buf, h.len, &l), 0);
		ck_assert_int_eq(l.reason, WIRE_LEAVE_CLOSED);
	}
	waitpid(a, NULL, 0);
	fprintf(stderr, "killed receiver: LEAVE after %lld ms\n",
	    (long long)leave_ms);
	ck_assert_int_ge(leave_ms, 0);
	ck_assert_int_le(leave_ms, 1000);
	for (i = 0; i < 200 && atomic_load(&f.lost) == 0; i++)
		sleep_ms(10);
	ck_assert_uint_eq(atomic_load(&f.lost), 50);
	ck_assert_int_eq(atomic_load(&f.error), SIPC_EPEERGONE);
	close(wfd);
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	tu_broker_stop(&b);
}
END_TEST

/* ---- (d) A receiver frozen past 3 heartbeats: dead, unregistered --------- */

START_TEST(test_frozen_past_heartbeats)
{
	char outf[300], errf[300];
	struct tu_broker b;
	struct failures f;
	sipc_sender *tx;
	sipc_epm *epm;
	int64_t t0;
	long gone = -1, back = -1;
	pid_t a;
	int i;

	ck_assert_int_eq(tu_broker_start(&b, "--heartbeat-ms", "200", NULL), 0);
	snprintf(outf, sizeof(outf), "%s/d.out", tu_tmpdir());
	snprintf(errf, sizeof(errf), "%s/d.err", tu_tmpdir());
	a = tu_spawn_recv(b.addr, "freeze", 2, outf, errf);
	tx = make_sender(b.addr, "freeze", SIPC_POLICY_BLOCK, 0, &f, &epm);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	ck_assert_int_eq(sipc_send(tx, "one", 3), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	kill(a, SIGSTOP);
	t0 = mono_ms();
	for (i = 0; i < 300; i++) {
		if (registered(b.addr, "freeze") == 0) {
			gone = mono_ms() - t0;
			break;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "frozen receiver unregistered after %ld ms (3 "
	    "heartbeats: 600 ms)\n", gone);
	ck_assert_int_ge(gone, 500);
	ck_assert_int_le(gone, 1500);
	ck_assert_int_ge(tu_file_count(b.log, "heartbeats of 200 ms"), 1);
	/* The sender hears LEAVE and forgets it; a message now is for
	 * nobody. */
	for (i = 0; i < 300 && sipc_sender_receivers(tx) > 0; i++)
		sleep_ms(10);
	ck_assert_int_eq(sipc_sender_receivers(tx), 0);
	ck_assert_int_eq(sipc_send(tx, "two", 3), 0);
	/* Thawed, it notices, registers again, and is sent to again. */
	kill(a, SIGCONT);
	t0 = mono_ms();
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	back = mono_ms() - t0;
	fprintf(stderr, "thawed receiver back after %ld ms\n", back);
	ck_assert_int_eq(sipc_send(tx, "three", 5), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	ck_assert_int_eq(proc_wait(a, 10000) != -1, 1);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "cat %s", outf), 0);
	ck_assert_str_eq(out, "one\nthree\n");
	/* It knows it missed "two". */
	ck_assert_int_eq(tu_file_count(errf, "1 messages from sender"), 1);
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	tu_broker_stop(&b);
}
END_TEST

/* ---- (e) 1,000 receivers churning while the watcher's session is cut ---- */

struct proxy {
	int		 lfd;
	uint16_t	 port;
	uint16_t	 dst;
	pthread_t	 t;
	atomic_int	 stop;
	atomic_int	 cut;
	int		 fd[64][2];
	int		 n;
};

static void
proxy_close_all(struct proxy *p)
{
	int i;

	for (i = 0; i < p->n; i++) {
		close(p->fd[i][0]);
		close(p->fd[i][1]);
	}
	p->n = 0;
}

static void *
proxy_main(void *arg)
{
	struct proxy *p = arg;
	struct pollfd pfd[129];
	char buf[65536];
	ssize_t r;
	int i, j, n, c, s;

	while (!atomic_load(&p->stop)) {
		if (atomic_exchange(&p->cut, 0))
			proxy_close_all(p);
		pfd[0].fd = p->lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < p->n; i++)
			for (j = 0; j < 2; j++) {
				pfd[1 + 2 * i + j].fd = p->fd[i][j];
				pfd[1 + 2 * i + j].events = POLLIN;
			}
		n = poll(pfd, (nfds_t)(1 + 2 * p->n), 50);
		if (n <= 0)
			continue;
		if ((pfd[0].revents & POLLIN) && p->n < 64) {
			c = accept(p->lfd, NULL, NULL);
			s = c >= 0 ? connect_loopback(p->dst) : -1;
			if (c >= 0 && s >= 0) {
				p->fd[p->n][0] = c;
				p->fd[p->n][1] = s;
				p->n++;
			} else if (c >= 0)
				close(c);
			continue;
		}
		for (i = 0; i < p->n; i++) {
			for (j = 0; j < 2; j++) {
				if (!pfd[1 + 2 * i + j].revents)
					continue;
				r = read(p->fd[i][j], buf, sizeof(buf));
				if (r <= 0 || tu_send(p->fd[i][1 - j], buf,
				    (size_t)r) != 0) {
					close(p->fd[i][0]);
					close(p->fd[i][1]);
					p->fd[i][0] = p->fd[p->n - 1][0];
					p->fd[i][1] = p->fd[p->n - 1][1];
					p->n--;
					goto next;
				}
			}
		}
next:
		;
	}
	proxy_close_all(p);
	close(p->lfd);
	return NULL;
}

static void
proxy_start(struct proxy *p, uint16_t dst)
{
	int port;

	memset(p, 0, sizeof(*p));
	p->dst = dst;
	ck_assert_int_ge(p->lfd = listen_loopback(64, &port), 0);
	p->port = (uint16_t)port;
	pthread_create(&p->t, NULL, proxy_main, p);
}

static int
cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Ports the sender is connected to, sorted; returns how many. */
static int
sender_view(sipc_sender *tx, uint16_t *ports, int max)
{
	static struct sipc_receiver_info info[2048];
	int n, i, k = 0;

	n = sipc_sender_receiver_stats(tx, info, 2048);
	for (i = 0; i < n && i < 2048 && k < max; i++)
		if (info[i].connected)
			ports[k++] = (uint16_t)atoi(strrchr(info[i].endpoint,
			    ':') + 1);
	qsort(ports, (size_t)k, sizeof(*ports), cmp_u16);
	return k;
}

/* Ports the broker shows for handle, sorted; returns how many. */
static int
broker_view(const char *addr, const char *handle, uint16_t *ports, int max)
{
	const char *p = out;
	int k = 0;

	if (tu_sh(10, out, sizeof(out), "%s --broker %s --json show %s",
	    tu_bin("brokerctl"), addr, handle) != 0)
		return -1;
	while ((p = strstr(p, "\"port\":")) != NULL && k < max) {
		p += 7;
		ports[k++] = (uint16_t)atoi(p);
	}
	qsort(ports, (size_t)k, sizeof(*ports), cmp_u16);
	return k;
}

START_TEST(test_churn_and_watcher_reconnect)
{
	enum { NRX = 1000, NEPM = 4, CHURN = 600 };
	static sipc_receiver *rx[NRX];
	static uint16_t sv[NRX + 8], bv[NRX + 8];
	struct sipc_receiver_opts o;
	struct counter cnt;
	struct failures f;
	struct tu_broker b;
	struct proxy px;
	struct rlimit rl;
	sipc_epm *repm[NEPM], *epm;
	sipc_sender *tx;
	char addr[32];
	int i, k, ns = 0, nb = 0, same = 0;
	int64_t t0;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max < 16384 ? rl.rlim_max : 16384;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4 * NRX) {
		fprintf(stderr, "churn test: only %lu descriptors; skipped\n",
		    (unsigned long)rl.rlim_cur);
		return;
	}
	memset(&cnt, 0, sizeof(cnt));
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	for (k = 0; k < NEPM; k++)
		ck_assert_int_eq(sipc_epm_connect(b.addr, NULL, &repm[k]), 0);
	sipc_receiver_opts_init(&o);
	o.listen_address = "127.0.0.1";
	o.on_message = count_message;
	o.arg = &cnt;
	for (i = 0; i < NRX; i++)
		ck_assert_int_eq(sipc_receiver_new("churn", repm[i % NEPM], &o,
		    &rx[i]), 0);
	/* The watcher (a sender) reaches the broker through a proxy that
	 * the test can cut. */
	proxy_start(&px, b.port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", px.port);
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(sipc_epm_connect(addr, NULL, &epm), 0);
	ck_assert_int_eq(sipc_sender_new("churn", epm, NULL, &tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, NRX, 60000), 0);
	/* Churn: receivers leave and others join; halfway, the watcher's
	 * broker session is cut, so it reconnects and resyncs while the
	 * churn goes on. */
	srandom(42);
	for (i = 0; i < CHURN; i++) {
		k = (int)(random() % NRX);
		sipc_receiver_close(rx[k]);
		ck_assert_int_eq(sipc_receiver_new("churn", repm[k % NEPM], &o,
		    &rx[k]), 0);
		if (i == CHURN / 3)
			atomic_store(&px.cut, 1);
	}
	/* Settle: the watcher's view must equal the broker's. */
	t0 = mono_ms();
	while (mono_ms() - t0 < 20000) {
		ns = sender_view(tx, sv, NRX + 8);
		nb = broker_view(b.addr, "churn", bv, NRX + 8);
		same = ns == nb && memcmp(sv, bv, (size_t)ns * sizeof(*sv)) == 0;
		if (same && ns == NRX)
			break;
		sleep_ms(200);
	}
	fprintf(stderr, "churn: watcher sees %d, broker shows %d, %s after "
	    "%lld ms\n", ns, nb, same ? "equal" : "DIFFERENT",
	    (long long)(mono_ms() - t0));
	ck_assert_int_eq(nb, NRX);
	ck_assert_int_eq(ns, NRX);
	ck_assert(same);
	/* And it delivers to exactly them. */
	ck_assert_int_eq(sipc_send(tx, "x", 1), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 20000), 0);
	ck_assert_int_eq(atomic_load(&cnt.n), NRX);
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	atomic_store(&px.stop, 1);
	pthread_join(px.t, NULL);
	for (i = 0; i < NRX; i++)
		sipc_receiver_close(rx[i]);
	for (k = 0; k < NEPM; k++)
		sipc_epm_close(repm[k]);
	tu_broker_stop(&b);
}
END_TEST

/* ---- (f) A broker with few descriptors: no busy loop, sessions served ---- */

START_TEST(test_low_ulimit)
{
	char portfile[300], logf[300], cmd[1200], *argv[4];
	struct wire_header h;
	uint8_t buf[256];
	struct wbuf w;
	int port;
	pid_t pid;
	int64_t cpu0, cpu1;
	int fds[80], s, i, n = 0;

	snprintf(portfile, sizeof(portfile), "%s/low.port", tu_tmpdir());
	snprintf(logf, sizeof(logf), "%s/low.log", tu_tmpdir());
	snprintf(cmd, sizeof(cmd), "ulimit -n 32 && exec %s --listen "
	    "127.0.0.1:0 --port-file %s --handshake-timeout-ms 60000",
	    tu_bin("sipc-epmd"), portfile);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = NULL;
	pid = proc_spawn(argv, logf);
	port = port_file_wait(portfile, pid, 5000);
	ck_assert_int_gt(port, 0);
	/* A session opened first. */
	s = connect_loopback(port);
	ck_assert_int_eq(tu_hello(s, 0), 0);
	/* Then more connections than it has descriptors for. */
	for (i = 0; i < 80; i++)
		if ((fds[n] = connect_loopback(port)) >= 0)
			n++;
	sleep_ms(500);
	cpu0 = proc_cpu_ns(pid) / 1000000;
	sleep_ms(2000);
	cpu1 = proc_cpu_ns(pid) / 1000000;
	fprintf(stderr, "low ulimit: %ld ms of CPU in 2 s with %d "
	    "connections waiting\n", (long)(cpu1 - cpu0), n);
	ck_assert_int_lt(cpu1 - cpu0, 300);
	ck_assert_int_ge(tu_file_count(logf, "pausing accept"), 1);
	/* The existing session is served. */
	wbuf_init(&w, 64);
	wire_enc_u64(&w, WIRE_PING, 9, 99);
	tu_send_wbuf(s, &w);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(s, WIRE_PONG, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(h.reqid, 9);
	/* Once descriptors are free again, new clients get in. */
	for (i = 0; i < n; i++)
		close(fds[i]);
	sleep_ms(500);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "%s --broker "
	    "127.0.0.1:%u ping", tu_bin("brokerctl"), port), 0);
	close(s);
	proc_stop(pid, 5000);
}
END_TEST

/* ---- A sender/receiver pair under valgrind ------------------------------- */

START_TEST(test_valgrind_pair)
{
	char outf[300], rlog[300], slog[300];
	struct tu_broker b;
	int rc;

	if (getenv("SIPC_SANITIZE") && *getenv("SIPC_SANITIZE")) {
		fprintf(stderr, "sanitizer build: valgrind test skipped\n");
		return;
	}
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	snprintf(outf, sizeof(outf), "%s/vg.out", tu_tmpdir());
	snprintf(rlog, sizeof(rlog), "%s/vg-recv.log", tu_tmpdir());
	snprintf(slog, sizeof(slog), "%s/vg-send.log", tu_tmpdir());
	/* Both under valgrind, leak checking on, any error fails. */
	rc = tu_sh(120, out, sizeof(out), "valgrind -q --leak-check=full "
	    "--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "
	    "%s recv vg --broker %s --listen 127.0.0.1 --count $(wc -l < %s) "
	    "--output %s 2>%s & r=$!; "
	    "valgrind -q --leak-check=full "
	    "--errors-for-leak-kinds=definite,indirect --error-exitcode=99 "
	    "%s send vg --broker %s --wait-receivers 1 --timeout 60000 "
	    "--file %s 2>%s; s=$?; wait $r; echo $s $?", tu_bin("sipc"),
	    b.addr, "/usr/share/common-licenses/GPL-3", outf, rlog,
	    tu_bin("sipc"), b.addr, "/usr/share/common-licenses/GPL-3", slog);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strcmp(out, "0 0\n") == 0, "send/recv exit %s (see %s, "
	    "%s)", out, slog, rlog);
	ck_assert_int_eq(tu_file_count(rlog, "definitely lost"), 0);
	ck_assert_int_eq(tu_file_count(slog, "definitely lost"), 0);
	tu_broker_stop(&b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");

	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_broker_killed_midstream);
	tcase_add_test(tc, test_frozen_receiver_drop);
	tcase_add_test(tc, test_killed_receiver_leave);
	tcase_add_test(tc, test_frozen_past_heartbeats);
	tcase_add_test(tc, test_churn_and_watcher_reconnect);
	tcase_add_test(tc, test_low_ulimit);
	tcase_add_test(tc, test_valgrind_pair);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
