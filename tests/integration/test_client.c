/*
 * test_client.c - libsipc and the sipc command against real processes, in
 * broker mode (a real sipc-epmd on a loopback port) and local mode (a
 * private registry directory): delivery, order, duplicates, joiners,
 * killed receivers, payload sizes, registry permissions, late receivers
 * and brokers, options, the CLI and the examples.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static char out[1 << 16];

/* ---- Mode: each test runs in broker and in local mode -------------------- */

struct mode {
	int		 broker;
	struct tu_broker b;
};

static void
mode_start(struct mode *m, int broker)
{
	char xdg[300];

	memset(m, 0, sizeof(*m));
	m->broker = broker;
	/* Local mode: a registry of our own, not the user's. */
	snprintf(xdg, sizeof(xdg), "%s/xdg", tu_tmpdir());
	mkdir(xdg, 0700);
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	unsetenv("SIPC_BROKER");
	if (broker)
		ck_assert_int_eq(tu_broker_start(&m->b, NULL), 0);
}

static void
mode_stop(struct mode *m)
{
	if (m->broker)
		tu_broker_stop(&m->b);
}

static sipc_epm *
mode_epm(struct mode *m)
{
	sipc_epm *epm;
	int rc;

	rc = sipc_epm_connect(m->broker ? m->b.addr : NULL, NULL, &epm);
	ck_assert_msg(rc == 0, "epm: %s", sipc_errmsg());
	ck_assert_int_eq(sipc_epm_is_local(epm), !m->broker);
	return epm;
}

/* "--broker ADDR" for the CLI, or "" in local mode. */
static const char *
mode_flag(struct mode *m)
{
	static char flag[64];

	if (!m->broker)
		return "";
	snprintf(flag, sizeof(flag), "--broker %s", m->b.addr);
	return flag;
}

/* ---- A receiver that checks what it gets --------------------------------- */

struct coll {
	pthread_mutex_t	 mu;
	long		 n;
	long		 first;		/* first index seen, -1 none */
	long		 last;
	long		 bad;		/* out of order or duplicate */
	uint64_t	 gaps;
	uint64_t	 last_seq;
	int		 connects;
	int		 disconnects;
	/* payload test: the last message, copied */
	unsigned char	*copy;
	size_t		 copy_len;
};

static void
coll_free(struct coll *c)
{
	free(c->copy);
	c->copy = NULL;
}

static void
coll_init(struct coll *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->first = c->last = -1;
}

static void
coll_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	const void *data = m->data;
	size_t len = m->len;
	uint64_t seq = m->seq;
	struct coll *c = arg;
	char num[16];
	long idx = -1;

	(void)rx;
	if (len >= 8) {
		memcpy(num, data, 8);
		num[8] = '\0';
		idx = strtol(num, NULL, 10);
	}
	pthread_mutex_lock(&c->mu);
	if (c->first == -1)
		c->first = idx;
	else if (idx != c->last + 1)
		c->bad++;
	if (seq <= c->last_seq)
		c->bad++;
	c->last_seq = seq;
	c->last = idx;
	c->n++;
	free(c->copy);
	c->copy = malloc(len ? len : 1);
	memcpy(c->copy, data, len);
	c->copy_len = len;
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

static void
coll_connect(sipc_receiver *rx, uint64_t id, const char *peer, void *arg)
{
	struct coll *c = arg;

	(void)rx;
	(void)id;
	(void)peer;
	pthread_mutex_lock(&c->mu);
	c->connects++;
	pthread_mutex_unlock(&c->mu);
}

static void
coll_disconnect(sipc_receiver *rx, uint64_t id, const char *peer, void *arg)
{
	struct coll *c = arg;

	(void)rx;
	(void)id;
	(void)peer;
	pthread_mutex_lock(&c->mu);
	c->disconnects++;
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

static int
coll_wait(struct coll *c, long n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (coll_count(c) < n && mono_ms() < end)
		sleep_ms(5);
	return coll_count(c) >= n;
}

static sipc_receiver *
new_receiver(sipc_epm *epm, const char *handle, struct coll *c)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	int rc;

	sipc_receiver_opts_init(&o);
	o.listen_address = sipc_epm_is_local(epm) ? NULL : "127.0.0.1";
	o.on_message = coll_message;
	o.on_gap = coll_gap;
	o.on_connect = coll_connect;
	o.on_disconnect = coll_disconnect;
	o.arg = c;
	rc = sipc_receiver_new(handle, epm, &o, &rx);
	ck_assert_msg(rc == 0, "receiver: %s", sipc_errmsg());
	return rx;
}

/* ---- A sender that records failures -------------------------------------- */

struct fails {
	atomic_ullong	lost;
	atomic_int	last_error;
	char		endpoint[160];
	pthread_mutex_t	mu;
};

static void
on_failed(sipc_sender *tx, int error, const char *endpoint, uint64_t lost,
    void *arg)
{
	struct fails *f = arg;

	if (getenv("SIPC_TEST_DEBUG"))
		fprintf(stderr, "on_send_failed: %s %s %llu\n",
		    sipc_strerror(error), endpoint, (unsigned long long)lost);

	(void)tx;
	atomic_fetch_add(&f->lost, lost);
	atomic_store(&f->last_error, error);
	pthread_mutex_lock(&f->mu);
	snprintf(f->endpoint, sizeof(f->endpoint), "%s", endpoint);
	pthread_mutex_unlock(&f->mu);
}

static sipc_sender *
new_sender(sipc_epm *epm, const char *handle, struct fails *f)
{
	struct sipc_sender_opts o;
	sipc_sender *tx;
	int rc;

	sipc_sender_opts_init(&o);
	if (f) {
		memset(f, 0, sizeof(*f));
		pthread_mutex_init(&f->mu, NULL);
		o.on_send_failed = on_failed;
		o.arg = f;
	}
	rc = sipc_sender_new(handle, epm, &o, &tx);
	ck_assert_msg(rc == 0, "sender: %s", sipc_errmsg());
	return tx;
}

static void
send_index(sipc_sender *tx, long i, size_t pad)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%08ld", i);
	memset(buf + 8, 'x', pad);
	ck_assert_int_eq(sipc_send(tx, buf, 8 + pad), 0);
}

/* ---- Tests --------------------------------------------------------------- */

/* N receivers x M messages: all delivered, in order, once. */
START_TEST(test_fanout_in_order)
{
	enum { NRX = 3, M = 20000 };
	struct coll c[NRX];
	sipc_receiver *rx[NRX];
	sipc_epm *repm[NRX], *epm;
	struct fails f;
	sipc_sender *tx;
	struct mode m;
	long i;
	int k;

	mode_start(&m, _i);
	for (k = 0; k < NRX; k++) {
		coll_init(&c[k]);
		repm[k] = mode_epm(&m);
		rx[k] = new_receiver(repm[k], "fan", &c[k]);
	}
	epm = mode_epm(&m);
	tx = new_sender(epm, "fan", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, NRX, 10000), 0);
	for (i = 0; i < M; i++)
		send_index(tx, i, (size_t)(i % 200));
	ck_assert_msg(sipc_sender_flush(tx, 20000) == 0, "flush: %s",
	    sipc_errmsg());
	for (k = 0; k < NRX; k++) {
		/* flush returned: every message was acknowledged, so it was
		 * already handed to on_message. */
		ck_assert_int_eq(coll_count(&c[k]), M);
		ck_assert_int_eq(c[k].first, 0);
		ck_assert_int_eq(c[k].last, M - 1);
		ck_assert_int_eq(c[k].bad, 0);
		ck_assert_uint_eq(c[k].gaps, 0);
		ck_assert_int_eq(c[k].connects, 1);
	}
	ck_assert_uint_eq(atomic_load(&f.lost), 0);
	{
		struct sipc_sender_stats st;

		ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
		ck_assert_uint_eq(st.sent, M);
		ck_assert_uint_eq(st.delivered, (uint64_t)M * NRX);
		ck_assert_uint_eq(st.lost, 0);
	}
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	for (k = 0; k < NRX; k++) {
		struct sipc_receiver_stats rs;

		ck_assert_int_eq(sipc_receiver_stats(rx[k], &rs), 0);
		ck_assert_uint_eq(rs.messages, M);
		ck_assert_uint_eq(rs.duplicates, 0);
		sipc_receiver_close(rx[k]);
		sipc_epm_close(repm[k]);
		coll_free(&c[k]);
	}
	mode_stop(&m);
}
END_TEST

struct pump {
	sipc_sender	*tx;
	atomic_long	 sent;
	atomic_int	 stop;
};

static void *
pump_main(void *arg)
{
	struct pump *p = arg;
	char buf[16];
	long i = 0;

	while (!atomic_load(&p->stop)) {
		snprintf(buf, sizeof(buf), "%08ld", i);
		if (sipc_send(p->tx, buf, 8) != 0)
			break;
		atomic_store(&p->sent, ++i);
		if (i % 64 == 0)
			usleep(200);
	}
	return NULL;
}

/* A receiver that joins mid-stream gets a contiguous tail: nothing from
 * before it joined, no duplicate. */
START_TEST(test_join_mid_stream)
{
	struct coll c1, c2;
	sipc_receiver *r1, *r2;
	sipc_epm *e1, *e2, *epm;
	struct pump p;
	pthread_t t;
	struct mode m;
	long before, total;

	mode_start(&m, _i);
	coll_init(&c1);
	coll_init(&c2);
	e1 = mode_epm(&m);
	e2 = mode_epm(&m);
	epm = mode_epm(&m);
	r1 = new_receiver(e1, "join", &c1);
	memset(&p, 0, sizeof(p));
	p.tx = new_sender(epm, "join", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(p.tx, 1, 10000), 0);
	pthread_create(&t, NULL, pump_main, &p);
	while (atomic_load(&p.sent) < 5000)
		sleep_ms(1);
	before = atomic_load(&p.sent);
	r2 = new_receiver(e2, "join", &c2);
	ck_assert_int_eq(sipc_sender_wait_receivers(p.tx, 2, 10000), 0);
	while (atomic_load(&p.sent) < before + 20000)
		sleep_ms(1);
	atomic_store(&p.stop, 1);
	pthread_join(t, NULL);
	total = atomic_load(&p.sent);
	ck_assert_int_eq(sipc_sender_flush(p.tx, 20000), 0);
	ck_assert_int_eq(coll_count(&c1), total);
	ck_assert_int_eq(c1.bad, 0);
	/* The joiner: a tail starting at or after the moment it joined. */
	ck_assert_int_ge(c2.first, before);
	ck_assert_int_eq(c2.last, total - 1);
	ck_assert_int_eq(coll_count(&c2), total - c2.first);
	ck_assert_int_eq(c2.bad, 0);
	ck_assert_uint_eq(c2.gaps, 0);
	sipc_sender_close(p.tx);
	sipc_receiver_close(r1);
	sipc_receiver_close(r2);
	sipc_epm_close(epm);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	coll_free(&c1);
	coll_free(&c2);
	mode_stop(&m);
}
END_TEST

static pid_t
spawn_recv(struct mode *m, const char *handle, long count, const char *outf)
{
	return tu_spawn_recv(m->broker ? m->b.addr : NULL, handle, count, outf,
	    NULL);
}

/* A receiver killed with SIGKILL: the sender reports exactly what it
 * lost and goes on delivering to the others. */
START_TEST(test_sigkill_receiver)
{
	char path[3][300];
	pid_t pid[3];
	sipc_epm *epm;
	sipc_sender *tx;
	struct fails f;
	struct mode m;
	int k, st;
	long i;

	mode_start(&m, _i);
	for (k = 0; k < 3; k++) {
		snprintf(path[k], sizeof(path[k]), "%s/kill%d.out",
		    tu_tmpdir(), k);
		pid[k] = spawn_recv(&m, "victims", 3000, path[k]);
	}
	epm = mode_epm(&m);
	tx = new_sender(epm, "victims", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 3, 10000), 0);
	for (i = 0; i < 1000; i++)
		send_index(tx, i, 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	/* Freeze one: what follows stays unacknowledged, then kill it. */
	kill(pid[0], SIGSTOP);
	sleep_ms(100);
	for (; i < 1500; i++)
		send_index(tx, i, 0);
	sleep_ms(200);
	kill(pid[0], SIGKILL);
	waitpid(pid[0], &st, 0);
	/* Once the sender has reported the loss, nothing more is queued
	 * for it.  (Before that, messages sent meanwhile are kept for it:
	 * a broken link to a live receiver is resent, not lost.) */
	for (k = 0; k < 500 && atomic_load(&f.lost) == 0; k++)
		sleep_ms(10);
	ck_assert_int_eq(sipc_sender_receivers(tx), 2);
	for (; i < 3000; i++)
		send_index(tx, i, 0);
	ck_assert_msg(sipc_sender_flush(tx, 15000) == 0, "flush: %s",
	    sipc_errmsg());
	/* Exactly the 500 messages sent while it was frozen were lost. */
	ck_assert_msg(atomic_load(&f.lost) == 500, "lost %llu, last to %s",
	    (unsigned long long)atomic_load(&f.lost), f.endpoint);
	ck_assert_int_eq(atomic_load(&f.last_error), SIPC_EPEERGONE);
	ck_assert_int_eq(sipc_sender_receivers(tx), 2);
	for (k = 1; k < 3; k++) {
		st = proc_wait(pid[k], 10000);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		ck_assert_int_eq(tu_file_lines(path[k]), 3000);
	}
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	mode_stop(&m);
}
END_TEST

/* Payloads of 0 B, 1 B, 1 MiB and 16 MiB arrive intact. */
START_TEST(test_payload_sizes)
{
	static const size_t sizes[] = { 0, 1, 1024 * 1024, 16 * 1024 * 1024 };
	unsigned char *buf;
	struct coll c;
	sipc_receiver *rx;
	sipc_epm *e1, *e2;
	sipc_sender *tx;
	struct mode m;
	size_t k, j;

	mode_start(&m, _i);
	coll_init(&c);
	e1 = mode_epm(&m);
	e2 = mode_epm(&m);
	rx = new_receiver(e1, "sizes", &c);
	tx = new_sender(e2, "sizes", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	buf = malloc(sizes[3]);
	for (j = 0; j < sizes[3]; j++)
		buf[j] = (unsigned char)(j * 131 + (j >> 13));
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(sipc_send(tx, buf, sizes[k]), 0);
		ck_assert_int_eq(sipc_sender_flush(tx, 20000), 0);
		ck_assert(coll_wait(&c, (long)k + 1, 5000));
		pthread_mutex_lock(&c.mu);
		ck_assert_uint_eq(c.copy_len, sizes[k]);
		ck_assert(memcmp(c.copy, buf, sizes[k]) == 0);
		pthread_mutex_unlock(&c.mu);
	}
	/* Over the sender's limit: refused before sending. */
	{
		struct sipc_sender_opts o;
		sipc_sender *small;

		sipc_sender_opts_init(&o);
		o.max_message = 1000;
		ck_assert_int_eq(sipc_sender_new("sizes", e2, &o, &small), 0);
		ck_assert_int_eq(sipc_send(small, buf, 1001), SIPC_ETOOBIG);
		ck_assert_int_eq(sipc_send(small, buf, 1000), 0);
		sipc_sender_close(small);
	}
	free(buf);
	sipc_sender_close(tx);
	sipc_receiver_close(rx);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	coll_free(&c);
	mode_stop(&m);
}
END_TEST

/* A message larger than the receiver accepts: the sender reports it. */
START_TEST(test_receiver_limit)
{
	struct sipc_receiver_opts ro;
	char big[5000];
	struct coll c;
	sipc_receiver *rx;
	sipc_epm *e1, *e2;
	sipc_sender *tx;
	struct fails f;
	struct mode m;

	mode_start(&m, 0);
	coll_init(&c);
	e1 = mode_epm(&m);
	e2 = mode_epm(&m);
	sipc_receiver_opts_init(&ro);
	ro.max_message = 4096;
	ro.on_message = coll_message;
	ro.arg = &c;
	ck_assert_int_eq(sipc_receiver_new("limit", e1, &ro, &rx), 0);
	tx = new_sender(e2, "limit", &f);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	memset(big, '7', sizeof(big));
	ck_assert_int_eq(sipc_send(tx, big, 4096), 0);
	ck_assert_int_eq(sipc_send(tx, big, 4097), 0);
	ck_assert_int_eq(sipc_send(tx, big, 10), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	ck_assert_int_eq(coll_count(&c), 2);
	ck_assert_uint_eq(atomic_load(&f.lost), 1);
	ck_assert_int_eq(atomic_load(&f.last_error), SIPC_ETOOBIG);
	sipc_sender_close(tx);
	sipc_receiver_close(rx);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	coll_free(&c);
}
END_TEST

/* The local registry is refused unless it is ours and 0700. */
START_TEST(test_registry_permissions)
{
	char xdg[300], dir[320], sock[400];
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	sipc_epm *epm;
	struct stat st;
	int rc;

	snprintf(xdg, sizeof(xdg), "%s/perm", tu_tmpdir());
	mkdir(xdg, 0700);
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	unsetenv("SIPC_BROKER");
	snprintf(dir, sizeof(dir), "%s/sipc", xdg);
	/* Created 0700 on first use. */
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	sipc_receiver_opts_init(&o);
	ck_assert_int_eq(sipc_receiver_new("perm", epm, &o, &rx), 0);
	ck_assert_int_eq(sipc_receiver_endpoint(rx, sock, sizeof(sock)), 0);
	ck_assert_int_eq(strncmp(sock, "unix:", 5), 0);
	ck_assert_int_eq(stat(sock + 5, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 077, 0);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	/* Closing removed the registration. */
	ck_assert_int_ne(access(sock + 5, F_OK), 0);

	/* Open to others: refused, and the message says how to fix it. */
	chmod(dir, 0755);
	rc = sipc_epm_local(&epm);
	ck_assert_int_eq(rc, SIPC_EPERM);
	ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "0700"));
	ck_assert_int_eq(sipc_receiver_new("perm", NULL, &o, &rx), SIPC_EPERM);
	chmod(dir, 0700);
	/* Another user's: refused (only root can set this up). */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(dir, 65534, 65534), 0);
		rc = sipc_epm_local(&epm);
		ck_assert_int_eq(rc, SIPC_EPERM);
		ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "belongs to uid "
		    "65534"));
		ck_assert_int_eq(chown(dir, 0, 0), 0);
	}
	/* A symlink in its place: refused. */
	rmdir(dir);
	ck_assert_int_eq(symlink("/tmp", dir), 0);
	ck_assert_int_eq(sipc_epm_local(&epm), SIPC_EPERM);
	unlink(dir);
}
END_TEST

/* Stale entries (a SIGKILLed receiver's socket) are removed by the
 * sender that finds them, and do not count as receivers. */
START_TEST(test_local_stale_entry)
{
	char path[300];
	sipc_epm *epm;
	sipc_sender *tx;
	struct mode m;
	pid_t pid;
	int st;

	mode_start(&m, 0);
	snprintf(path, sizeof(path), "%s/stale.out", tu_tmpdir());
	pid = spawn_recv(&m, "stale", 1, path);
	epm = mode_epm(&m);
	tx = new_sender(epm, "stale", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	sipc_sender_close(tx);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ls %s/xdg/sipc | wc -l",
	    tu_tmpdir()), 0);
	ck_assert_int_eq(atoi(out), 1);	/* left behind */
	tx = new_sender(epm, "stale", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 300),
	    SIPC_ETIMEDOUT);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ls %s/xdg/sipc | wc -l",
	    tu_tmpdir()), 0);
	ck_assert_int_eq(atoi(out), 0);	/* reaped */
	sipc_sender_close(tx);
	sipc_epm_close(epm);
}
END_TEST

/* The sender starts before the broker and before any receiver;
 * wait_receivers, then everything is delivered. */
START_TEST(test_sender_first)
{
	struct sipc_epm_opts eo;
	char addr[32];
	struct coll c[3];
	sipc_receiver *rx[3];
	sipc_epm *repm[3], *epm;
	sipc_sender *tx;
	struct mode m;
	uint16_t port = 0;
	long i;
	int k;

	mode_start(&m, 0);
	m.broker = _i;
	sipc_epm_opts_init(&eo);
	eo.connect_timeout_ms = 0;	/* the broker is not there yet */
	if (m.broker) {
		port = free_port();
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
		ck_assert_int_eq(sipc_epm_connect(addr, &eo, &epm), 0);
		ck_assert_int_eq(sipc_epm_connected(epm), 0);
	} else
		ck_assert_int_eq(sipc_epm_connect(NULL, &eo, &epm), 0);
	tx = new_sender(epm, "early", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 3, 200),
	    SIPC_ETIMEDOUT);
	if (m.broker)
		ck_assert_int_eq(tu_broker_start_port(&m.b, port, NULL), 0);
	for (k = 0; k < 3; k++) {
		coll_init(&c[k]);
		repm[k] = mode_epm(&m);
		rx[k] = new_receiver(repm[k], "early", &c[k]);
	}
	ck_assert_msg(sipc_sender_wait_receivers(tx, 3, 10000) == 0, "%s",
	    sipc_errmsg());
	for (i = 0; i < 1000; i++)
		send_index(tx, i, 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	for (k = 0; k < 3; k++) {
		ck_assert_int_eq(coll_count(&c[k]), 1000);
		ck_assert_int_eq(c[k].bad, 0);
		sipc_receiver_close(rx[k]);
		sipc_epm_close(repm[k]);
		coll_free(&c[k]);
	}
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	mode_stop(&m);
}
END_TEST

/* Options: handles, ports, addresses; errors say what is wrong. */
START_TEST(test_options)
{
	struct sipc_receiver_opts o;
	char ep[160], ports[32], longh[300];
	sipc_receiver *rx, *rx2;
	sipc_sender *tx;
	sipc_epm *epm;
	struct mode m;
	uint16_t p1;

	mode_start(&m, 1);
	epm = mode_epm(&m);
	sipc_receiver_opts_init(&o);
	o.listen_address = "127.0.0.1";
	/* Bad handles. */
	ck_assert_int_eq(sipc_receiver_new("", epm, &o, &rx), SIPC_EINVAL);
	ck_assert_int_eq(sipc_receiver_new("a\nb", epm, &o, &rx),
	    SIPC_EINVAL);
	memset(longh, 'h', 256);
	longh[256] = '\0';
	ck_assert_int_eq(sipc_sender_new(longh, epm, NULL, &tx), SIPC_EINVAL);
	ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "invalid handle"));
	longh[255] = '\0';
	ck_assert_int_eq(sipc_sender_new(longh, epm, NULL, &tx), 0);
	sipc_sender_close(tx);

	/* allowed_ports: the first free one is taken. */
	p1 = free_port();
	snprintf(ports, sizeof(ports), "%u", p1);
	o.allowed_ports = ports;
	ck_assert_int_eq(sipc_receiver_new("ports", epm, &o, &rx), 0);
	ck_assert_int_eq(sipc_receiver_endpoint(rx, ep, sizeof(ep)), 0);
	snprintf(longh, sizeof(longh), "127.0.0.1:%u", p1);
	ck_assert_str_eq(ep, longh);
	/* ... and when none is free, a clear error. */
	ck_assert_int_eq(sipc_receiver_new("ports", epm, &o, &rx2),
	    SIPC_ENOPORT);
	ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "no free port"));
	snprintf(ports, sizeof(ports), "%u,%u-%u", p1, p1, p1 + 40);
	ck_assert_int_eq(sipc_receiver_new("ports", epm, &o, &rx2), 0);
	sipc_receiver_close(rx2);
	o.allowed_ports = "70000";
	ck_assert_int_eq(sipc_receiver_new("ports", epm, &o, &rx2),
	    SIPC_EINVAL);
	o.allowed_ports = "9-3";
	ck_assert_int_eq(sipc_receiver_new("ports", epm, &o, &rx2),
	    SIPC_EINVAL);
	o.allowed_ports = NULL;
	/* Addresses. */
	o.listen_address = "not-an-ip";
	ck_assert_int_eq(sipc_receiver_new("addr", epm, &o, &rx2),
	    SIPC_EADDR);
	o.listen_address = NULL;	/* the broker session's address */
	o.register_address = "127.0.0.1";
	ck_assert_int_eq(sipc_receiver_new("addr", epm, &o, &rx2), 0);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "%s --broker %s --json "
	    "show addr", tu_bin("brokerctl"), m.b.addr), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"address\":\"127.0.0.1\""));
	sipc_receiver_close(rx2);
	sipc_receiver_close(rx);
	/* Unregistered at close. */
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "%s --broker %s --json "
	    "list", tu_bin("brokerctl"), m.b.addr), 0);
	ck_assert_str_eq(out, "[]\n");
	sipc_epm_close(epm);
	/* No broker there: a clear error within the timeout. */
	{
		struct sipc_epm_opts eo;

		sipc_epm_opts_init(&eo);
		eo.connect_timeout_ms = 500;
		snprintf(longh, sizeof(longh), "127.0.0.1:%u", free_port());
		ck_assert_int_eq(sipc_epm_connect(longh, &eo, &epm),
		    SIPC_ECONNECT);
		ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "refused"));
		ck_assert_int_eq(sipc_epm_connect("bad:port:x", &eo, &epm),
		    SIPC_EADDR);
	}
	mode_stop(&m);
}
END_TEST

/* sipc send | sipc recv between processes, with and without a broker. */
START_TEST(test_cli_pair)
{
	char path[300], *argv[16];
	struct mode m;
	pid_t pid;
	int st, n = 0;

	mode_start(&m, _i);
	snprintf(path, sizeof(path), "%s/pair.out", tu_tmpdir());
	pid = spawn_recv(&m, "pair", 4, path);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send pair %s "
	    "--wait-receivers 1 --timeout 10000 one two '' 'four four'",
	    tu_bin("sipc"), mode_flag(&m)), 0);
	st = proc_wait(pid, 10000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "cat %s", path), 0);
	ck_assert_str_eq(out, "one\ntwo\n\nfour four\n");

	/* Length framing, and lines from standard input. */
	argv[n++] = (char *)tu_bin("sipc");
	argv[n++] = "recv";
	argv[n++] = "pair2";
	if (m.broker) {
		argv[n++] = "--broker";
		argv[n++] = m.b.addr;
	}
	argv[n++] = "--count";
	argv[n++] = "2";
	argv[n++] = "--framing";
	argv[n++] = "length";
	argv[n++] = "--output";
	argv[n++] = path;
	argv[n] = NULL;
	pid = proc_spawn(argv, NULL);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "printf 'ab\\ncde\\n' | "
	    "%s send pair2 %s --wait-receivers 1", tu_bin("sipc"),
	    mode_flag(&m)), 0);
	st = proc_wait(pid, 10000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "od -An -tx1 %s | "
	    "tr -d ' \\n'", path), 0);
	ck_assert_str_eq(out, "000000026162000000036364" "65");

	/* Nobody there: exit 1 with a message. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send nobody %s "
	    "--wait-receivers 1 --timeout 300 x 2>&1", tu_bin("sipc"),
	    mode_flag(&m)), 1);
	ck_assert_ptr_nonnull(strstr(out, "only 0 of 1 receivers"));
	/* Zero receivers without waiting is not an error. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send nobody %s x",
	    tu_bin("sipc"), mode_flag(&m)), 0);
	/* Usage errors: exit 2. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send 2>&1",
	    tu_bin("sipc")), 2);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s recv x --count 0 "
	    "2>&1", tu_bin("sipc")), 2);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s frob 2>&1",
	    tu_bin("sipc")), 2);
	mode_stop(&m);
}
END_TEST

/* The original's console programs, in C. */
START_TEST(test_examples)
{
	char rlog[300], slog[300], *ra[4], *sa[4];
	struct mode m;
	pid_t r, s;

	mode_start(&m, _i);
	snprintf(rlog, sizeof(rlog), "%s/ex-recv.log", tu_tmpdir());
	snprintf(slog, sizeof(slog), "%s/ex-send.log", tu_tmpdir());
	ra[0] = (char *)tu_bin("sipc-example-receiver");
	sa[0] = (char *)tu_bin("sipc-example-sender");
	ra[1] = sa[1] = m.broker ? "--broker" : NULL;
	ra[2] = sa[2] = m.broker ? m.b.addr : NULL;
	ra[3] = sa[3] = NULL;
	/* Alone, the sender finds nobody. */
	s = proc_spawn(sa, slog);
	tu_wait_file(slog, "sent, but no receivers found", 1, 1500);
	proc_stop(s, 5000);
	ck_assert_int_ge(tu_file_count(slog,
	    "sent, but no receivers found"), 1);
	r = proc_spawn(ra, rlog);
	tu_wait_file(rlog, "Receiving 'Foo'", 1, 700);
	unlink(slog);
	s = proc_spawn(sa, slog);
	tu_wait_file(rlog, "'Foo2' received", 1, 2600);
	proc_stop(s, 5000);
	proc_stop(r, 5000);
	ck_assert_int_eq(tu_file_count(rlog, "'Foo1' received"), 1);
	ck_assert_int_eq(tu_file_count(rlog, "'Foo2' received"), 1);
	ck_assert_int_eq(tu_file_count(slog, "'Foo1' sent\n"), 1);
	mode_stop(&m);
}
END_TEST

/* A receiver closed from its own callback is freed safely. */
static sipc_receiver *self_rx;
static atomic_int self_closed;

static void
close_self(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	(void)arg;
	ck_assert_ptr_eq(rx, self_rx);
	if (!atomic_exchange(&self_closed, 1))
		sipc_receiver_close(rx);
}

START_TEST(test_close_in_callback)
{
	struct sipc_receiver_opts o;
	sipc_epm *e1, *e2;
	sipc_sender *tx;
	struct mode m;
	int i;

	mode_start(&m, _i);
	e1 = mode_epm(&m);
	e2 = mode_epm(&m);
	sipc_receiver_opts_init(&o);
	o.listen_address = m.broker ? "127.0.0.1" : NULL;
	o.on_message = close_self;
	ck_assert_int_eq(sipc_receiver_new("self", e1, &o, &self_rx), 0);
	tx = new_sender(e2, "self", NULL);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	for (i = 0; i < 100; i++)
		send_index(tx, i, 10);
	for (i = 0; i < 200 && !atomic_load(&self_closed); i++)
		sleep_ms(10);
	ck_assert_int_eq(atomic_load(&self_closed), 1);
	/* The sender notices the receiver left. */
	for (i = 0; i < 500 && sipc_sender_receivers(tx) > 0; i++)
		sleep_ms(10);
	ck_assert_int_eq(sipc_sender_receivers(tx), 0);
	sipc_sender_close(tx);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	mode_stop(&m);
}
END_TEST

/* ---- Receivers that leave right after delivery ------------------------- */

static atomic_int quick_got;

static void
quick_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	(void)rx;
	(void)arg;
	atomic_store(&quick_got, 1);
}

/* A receiver process that takes one message, says so on fd and closes. */
static void
quick_receiver(struct mode *m, int fd)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	sipc_epm *epm;
	int64_t end = mono_ms() + 20000;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sipc_epm_connect(m->broker ? m->b.addr : NULL, NULL, &epm) != 0)
		_exit(1);
	sipc_receiver_opts_init(&o);
	o.listen_address = m->broker ? "127.0.0.1" : NULL;
	o.on_message = quick_message;
	if (sipc_receiver_new("quick", epm, &o, &rx) != 0)
		_exit(1);
	if (write(fd, "r", 1) != 1)
		_exit(1);
	while (!atomic_load(&quick_got))
		if (mono_ms() > end)
			_exit(2);
		else
			sleep_ms(1);
	if (write(fd, "g", 1) != 1)
		_exit(1);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	_exit(0);
}

/*
 * Receivers that close the moment they have a message acknowledge it on
 * the way out: the sender, closing meanwhile, counts nothing as lost.
 * (Its writes fail on their closed sockets before it has read their last
 * ACKs; those must still count.)
 */
START_TEST(test_quick_leavers)
{
	enum { ROUNDS = 5, N = 8 };
	pid_t pid[N];
	sipc_epm *epm;
	sipc_sender *tx;
	struct fails f;
	struct mode m;
	int r, k, p[2], st;
	char ch;

	mode_start(&m, _i);
	for (r = 0; r < ROUNDS; r++) {
		ck_assert_int_eq(pipe(p), 0);
		for (k = 0; k < N; k++) {
			if ((pid[k] = fork()) == 0) {
				close(p[0]);
				quick_receiver(&m, p[1]);
			}
			ck_assert_int_gt(pid[k], 0);
		}
		close(p[1]);
		for (k = 0; k < N; k++)
			ck_assert_int_eq(read(p[0], &ch, 1), 1);
		epm = mode_epm(&m);
		tx = new_sender(epm, "quick", &f);
		ck_assert_int_eq(sipc_sender_wait_receivers(tx, N, 10000), 0);
		send_index(tx, r, 0);
		for (k = 0; k < N; k++)
			ck_assert_int_eq(read(p[0], &ch, 1), 1);
		ck_assert_msg(sipc_sender_close(tx) == 0, "close: %s",
		    sipc_errmsg());
		ck_assert_msg(atomic_load(&f.lost) == 0, "round %d: %llu "
		    "delivered messages reported lost, last by %s", r,
		    (unsigned long long)atomic_load(&f.lost), f.endpoint);
		for (k = 0; k < N; k++) {
			st = proc_wait(pid[k], 10000);
			ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
		close(p[0]);
		sipc_epm_close(epm);
	}
	mode_stop(&m);
}
END_TEST

/* Structs that grow: options of older and newer programs, statistics
 * into a smaller struct, the version running. */
START_TEST(test_api_sizes)
{
	struct {
		struct sipc_sender_opts	o;
		uint64_t		future;	/* a field of a later sipc */
	} big;
	struct sipc_sender_opts o;
	struct sipc_sender_stats st;
	struct mode m;
	sipc_sender *tx;
	sipc_epm *epm;
	int num = 0;

	mode_start(&m, 0);
	epm = mode_epm(&m);
	/* Not initialized: refused, with a word on why. */
	memset(&o, 0, sizeof(o));
	ck_assert_int_eq(sipc_sender_new("sizes", epm, &o, &tx), SIPC_EINVAL);
	ck_assert_ptr_nonnull(strstr(sipc_errmsg(), "_init()"));
	/* An older program, whose struct ends before heartbeat_ms: what
	 * lies past it (an invalid value here) is not read; defaults hold. */
	memset(&o, 0, sizeof(o));
	sipc_sender_opts_init_size(&o, offsetof(struct sipc_sender_opts,
	    heartbeat_ms));
	ck_assert_uint_eq(o.size, offsetof(struct sipc_sender_opts,
	    heartbeat_ms));
	ck_assert_int_eq(o.linger_ms, 5000);
	o.heartbeat_ms = 1;
	ck_assert_int_eq(sipc_sender_new("sizes", epm, &o, &tx), 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	/* A newer program: its unknown field unused is fine, set refused. */
	memset(&big, 0, sizeof(big));
	sipc_sender_opts_init_size(&big.o, sizeof(big));
	ck_assert_uint_eq(big.o.size, sizeof(big));
	ck_assert_int_eq(big.o.policy, SIPC_POLICY_BLOCK);
	ck_assert_int_eq(sipc_sender_new("sizes", epm, &big.o, &tx), 0);
	/* Statistics into an older, smaller struct: only its bytes. */
	memset(&st, 0xff, sizeof(st));
	ck_assert_int_eq(sipc_sender_stats_size(tx, &st,
	    offsetof(struct sipc_sender_stats, lost)), 0);
	ck_assert_uint_eq(st.size, offsetof(struct sipc_sender_stats, lost));
	ck_assert_uint_eq(st.sent, 0);
	ck_assert_uint_eq(st.lost, UINT64_MAX);
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	ck_assert_uint_eq(st.size, sizeof(st));
	ck_assert_uint_eq(st.lost, 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	big.future = 1;
	ck_assert_int_eq(sipc_sender_new("sizes", epm, &big.o, &tx),
	    SIPC_EINVAL);
	/* The version running. */
	ck_assert_str_eq(sipc_version(&num), "0.2.0");
	ck_assert_int_eq(num, SIPC_VERSION_NUMBER);
	ck_assert_int_eq(num, 0x000200);
	sipc_epm_close(epm);
	mode_stop(&m);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_set_timeout(tc, 120);
	/* Loop tests run twice: _i = 0 local registry, _i = 1 broker. */
	tcase_add_loop_test(tc, test_fanout_in_order, 0, 2);
	tcase_add_loop_test(tc, test_join_mid_stream, 0, 2);
	tcase_add_loop_test(tc, test_sigkill_receiver, 0, 2);
	tcase_add_loop_test(tc, test_payload_sizes, 0, 2);
	tcase_add_test(tc, test_receiver_limit);
	tcase_add_test(tc, test_registry_permissions);
	tcase_add_test(tc, test_local_stale_entry);
	tcase_add_loop_test(tc, test_sender_first, 0, 2);
	tcase_add_test(tc, test_options);
	tcase_add_loop_test(tc, test_cli_pair, 0, 2);
	tcase_add_loop_test(tc, test_examples, 0, 2);
	tcase_add_loop_test(tc, test_close_in_callback, 0, 2);
	tcase_add_loop_test(tc, test_quick_leavers, 0, 2);
	tcase_add_test(tc, test_api_sizes);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
