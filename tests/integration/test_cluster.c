/*
 * test_cluster.c - sipc-epmd brokers clustered on real etcd processes
 * (started here on free loopback ports, each with its own data directory,
 * stopped by pid), with real clients: raw protocol sessions for exact
 * JOIN/LEAVE checks, the sipc CLI for data.  Leases are 2 s so that
 * expiries fit in a quick test.
 */
#include <sys/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../etcdutil.h"
#include "../testutil.h"

#define TTL_S		"2"
#define NB		3

static struct etu_cluster ec;
static struct tu_broker br[NB];
static int nbr;
static int metrics_port;	/* broker 0's /metrics */

static void
start_brokers(int n)
{
	char metrics[32];
	int i;

	metrics_port = free_port();
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", metrics_port);
	for (i = 0; i < n; i++) {
		ck_assert_msg(tu_broker_start(&br[i], "--etcd", ec.endpoints,
		    "--etcd-ttl-s", TTL_S, "--etcd-timeout-ms", "1000",
		    "--log-level", "debug", i == 0 ? "--metrics" : NULL,
		    metrics, NULL) == 0, "broker %d", i);
		nbr = i + 1;
	}
}

/* GET /metrics of broker 0 into buf (NUL-terminated): 0 or -1. */
static int
get_metrics(char *buf, size_t size)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = connect_loopback(metrics_port)) == -1)
		return -1;
	if (write_full(fd, req, sizeof(req) - 1) == -1) {
		close(fd);
		return -1;
	}
	/* HTTP/1.0: the answer ends when the broker closes. */
	while (len + 1 < size && (r = read(fd, buf + len, size - 1 - len)) >
	    0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd);
	return 0;
}

static void
setup1(void)
{
	ck_assert_int_eq(etu_start(&ec, tu_tmpdir(), 1, 20000), 0);
	start_brokers(NB);
}

static void
teardown(void)
{
	int i;

	for (i = 0; i < nbr; i++) {
		if (br[i].pid > 0)
			kill(br[i].pid, SIGCONT);
		tu_broker_stop(&br[i]);
	}
	nbr = 0;
	etu_stop(&ec);
	tu_cleanup();
}

/* ---- Raw sessions -------------------------------------------------------- */

static int
session(int port)
{
	int fd = connect_loopback(port);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tu_hello(fd, 5000), 0);
	return fd;
}

/* LOOKUP handle at port: the ids (up to max) and how many there are. */
static int
lookup(int port, const char *handle, uint64_t *ids, int max)
{
	static uint8_t buf[1 << 20];
	struct wire_header h;
	struct wire_record rec;
	struct wire_seq seq;
	struct wbuf w;
	int fd = session(port), n = 0;

	wbuf_init(&w, 4096);
	wire_enc_handle(&w, WIRE_LOOKUP, 5, handle, strlen(handle));
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_ok_records(buf, h.len, WIRE_LOOKUP, &seq), 0);
	while (wire_next_record(&seq, &rec)) {
		if (ids && n < max)
			ids[n] = rec.id;
		n++;
	}
	close(fd);
	return n;
}

/* Polls LOOKUP until it finds n registrations: 1, or 0 after timeout_ms. */
static int
wait_lookup(int port, const char *handle, int n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	do {
		if (lookup(port, handle, NULL, 0) == n)
			return 1;
		sleep_ms(20);
	} while (mono_ms() < end);
	return 0;
}

/* One STATS value at port (-1: absent). */
static long long
stat_of(int port, const char *name)
{
	static uint8_t buf[65536];
	struct wire_header h;
	struct wire_stat st;
	struct wire_seq seq;
	struct wbuf w;
	long long v = -1;
	int fd = session(port);

	wbuf_init(&w, 256);
	wire_enc_empty(&w, WIRE_STATS, 9);
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_ok_stats(buf, h.len, &seq), 0);
	while (wire_next_stat(&seq, &st))
		if (st.name.len == strlen(name) &&
		    memcmp(st.name.ptr, name, st.name.len) == 0)
			v = (long long)st.value;
	close(fd);
	return v;
}

static int
wait_stat(int port, const char *name, long long want, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	do {
		if (stat_of(port, name) == want)
			return 1;
		sleep_ms(50);
	} while (mono_ms() < end);
	return 0;
}

/* WATCH handle on fd: the snapshot's size. */
static int
watch(int fd, const char *handle)
{
	static uint8_t buf[1 << 20];
	struct wire_header h;
	struct wire_seq seq;
	struct wbuf w;

	wbuf_init(&w, 4096);
	wire_enc_handle(&w, WIRE_WATCH, 77, handle, strlen(handle));
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_ok_records(buf, h.len, WIRE_WATCH, &seq), 0);
	return (int)seq.count;
}

/* The next JOIN (1) or LEAVE (2) on fd within timeout_ms, its id in *id;
 * 0 on timeout. */
static int
next_event(int fd, int timeout_ms, uint64_t *id)
{
	static uint8_t buf[65536];
	struct wire_header h;
	struct wire_join j;
	struct wire_leave l;
	int64_t end = mono_ms() + timeout_ms;

	for (;;) {
		int left = (int)(end - mono_ms());

		if (left <= 0 || tu_recv(fd, &h, buf, sizeof(buf), left) != 0)
			return 0;
		if (h.type == WIRE_PING) {
			struct wbuf w;

			wbuf_init(&w, 64);
			wire_enc_u64(&w, WIRE_PONG, h.reqid, wire_ld64(buf));
			tu_send_wbuf(fd, &w);
			wbuf_free(&w);
			continue;
		}
		if (h.type == WIRE_JOIN) {
			ck_assert_int_eq(wire_dec_join(buf, h.len, &j), 0);
			*id = j.rec.id;
			return 1;
		}
		if (h.type == WIRE_LEAVE) {
			ck_assert_int_eq(wire_dec_leave(buf, h.len, &l), 0);
			*id = l.id;
			return 2;
		}
	}
}

/* REGISTER without waiting; the answer is read by answer(). */
static void
register_send(int fd, uint32_t reqid, const char *handle, uint16_t port,
    uint64_t instance)
{
	struct wire_register m;
	struct wbuf w;

	memset(&m, 0, sizeof(m));
	m.handle.ptr = handle;
	m.handle.len = (uint16_t)strlen(handle);
	m.instance = instance;
	m.ep.family = WIRE_AF_INET;
	m.ep.port = port;
	m.ep.addr[0] = 127;
	m.ep.addr[3] = 1;
	wbuf_init(&w, 4096);
	wire_enc_register(&w, reqid, &m);
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
}

/* Reads the next answer (OK or ERROR): its type, *reqid, and for ERROR the
 * code in *code; -1 on timeout. */
static int
answer(int fd, uint32_t *reqid, uint16_t *code)
{
	static uint8_t buf[65536];
	struct wire_header h;
	struct wire_error e;

	for (;;) {
		if (tu_recv(fd, &h, buf, sizeof(buf), 10000) != 0)
			return -1;
		if (h.type == WIRE_OK || h.type == WIRE_ERROR)
			break;
	}
	*reqid = h.reqid;
	if (h.type == WIRE_ERROR) {
		ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
		*code = e.code;
	}
	return h.type;
}

/* The registration ids etcd holds under the default prefix. */
static int
etcd_ids(uint64_t *ids, int max)
{
	char cmd[512], line[512];
	FILE *fp;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 timeout 10 etcdctl "
	    "--endpoints=%s get --prefix /sipc/v1/reg/ --keys-only",
	    ec.endpoints);
	ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
	while (fgets(line, sizeof(line), fp)) {
		char *slash = strrchr(line, '/');

		if (slash == NULL || strlen(slash) < 17)
			continue;
		if (n < max)
			ids[n] = strtoull(slash + 1, NULL, 16);
		n++;
	}
	pclose(fp);
	return n;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- Tests ----------------------------------------------------------- */

/* A receiver at A is found by a sender at C and gets its messages; a
 * watcher at B sees its JOIN and LEAVE. */
START_TEST(found_across)
{
	char out[256], outf[300];
	uint64_t id;
	pid_t rx;
	int wfd, st;

	wfd = session(br[1].port);
	ck_assert_int_eq(watch(wfd, "chat"), 0);
	snprintf(outf, sizeof(outf), "%s/chat.out", tu_tmpdir());
	rx = tu_spawn_recv(br[0].addr, "chat", 3, outf, NULL);
	ck_assert_int_gt(rx, 0);
	ck_assert_int_eq(next_event(wfd, 5000, &id), 1);
	ck_assert_int_eq(lookup(br[2].port, "chat", NULL, 0), 1);
	/* brokerctl cluster at C lists all three, A with the receiver. */
	{
		static char table[4096];
		char line[128];

		ck_assert_int_eq(tu_sh(10, table, sizeof(table), "%s -b %s "
		    "cluster", tu_bin("brokerctl"), br[2].addr), 0);
		ck_assert_msg(strstr(table, "etcd ok") != NULL, "%s", table);
		ck_assert_int_eq(tu_count(table, "127.0.0.1:"), 4);
		snprintf(line, sizeof(line), "%s ", br[0].addr);
		ck_assert_msg(strstr(table, line) != NULL, "%s", table);
		/* The same as JSON (json-c's), read by Python's parser. */
		ck_assert_int_eq(tu_sh(10, table, sizeof(table), "%s -b %s "
		    "--json cluster | /usr/bin/python3 -c 'import json,sys; "
		    "d = json.load(sys.stdin); print(len(d[\"brokers\"]), "
		    "d[\"etcd\"])'", tu_bin("brokerctl"), br[2].addr), 0);
		ck_assert_msg(strstr(table, "3 ok") != NULL, "%s", table);
	}
	st = tu_sh(20, out, sizeof(out), "%s send chat --broker %s "
	    "--wait-receivers 1 --timeout 10000 one two three", tu_bin("sipc"),
	    br[2].addr);
	ck_assert_int_eq(st, 0);
	ck_assert(proc_ok(proc_wait(rx, 10000)));
	ck_assert_int_eq(tu_file_lines(outf), 3);
	/* The receiver's session closed: LEAVE at B, gone everywhere. */
	ck_assert_int_eq(next_event(wfd, 5000, &id), 2);
	ck_assert(wait_lookup(br[0].port, "chat", 0, 3000));
	ck_assert(wait_lookup(br[2].port, "chat", 0, 3000));
	close(wfd);
}
END_TEST

/* Ids are unique across the cluster; UNREGISTER at A is LEAVE at C;
 * registration order is etcd's at every broker. */
START_TEST(ids_and_unregister)
{
	uint64_t ids[NB], got[8], id;
	int fds[NB], wfd, i, j, n;
	struct wbuf w;

	wfd = session(br[2].port);
	ck_assert_int_eq(watch(wfd, "u"), 0);
	for (i = 0; i < NB; i++) {
		fds[i] = session(br[i].port);
		ids[i] = tu_register(fds[i], 3, "u", (uint16_t)(30000 + i),
		    100 + i);
		ck_assert_msg(ids[i] != 0, "REGISTER at broker %d", i);
		for (j = 0; j < i; j++)
			ck_assert(ids[i] != ids[j]);
	}
	for (i = 0; i < NB; i++) {
		ck_assert_int_eq(next_event(wfd, 5000, &id), 1);
		ck_assert(id == ids[i]);
	}
	for (i = 0; i < NB; i++) {
		ck_assert(wait_lookup(br[i].port, "u", NB, 3000));
		n = lookup(br[i].port, "u", got, 8);
		/* Every broker lists all of them.  (A broker's own
		 * registration is committed by etcd's answer, which can come
		 * before the watch event of one stored earlier elsewhere: the
		 * order of a LOOKUP may differ between brokers.) */
		ck_assert_int_eq(n, NB);
		for (j = 0; j < NB; j++) {
			int k, found = 0;

			for (k = 0; k < n; k++)
				found |= got[k] == ids[j];
			ck_assert_msg(found, "broker %d lacks id %d", i, j);
		}
	}
	wbuf_init(&w, 64);
	wire_enc_u64(&w, WIRE_UNREGISTER, 4, ids[0]);
	ck_assert_int_eq(tu_send_wbuf(fds[0], &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(next_event(wfd, 5000, &id), 2);
	ck_assert(id == ids[0]);
	ck_assert(wait_lookup(br[1].port, "u", NB - 1, 3000));
	for (i = 0; i < NB; i++)
		close(fds[i]);
	close(wfd);
}
END_TEST

/*
 * SIGKILL (or SIGTERM) broker A while a sender at C streams to a receiver
 * at A: the receiver moves to B within 2 s, the stream loses nothing, and
 * a watcher at B sees a registration stranded at A leave within the TTL +
 * 1 s.
 */
static void
broker_dies(int sig)
{
	char outf[300], list[200], cmd[1024], sendlog[300];
	uint64_t before[4], after[4], id, stranded;
	char *argv[4];
	pid_t rx, tx;
	int64_t t0;
	int wfd, sfd, n, left;

	/* A name among the addresses: resolved like the rest. */
	snprintf(list, sizeof(list), "localhost:%u,%s,%s", br[0].port,
	    br[1].addr, br[2].addr);
	snprintf(outf, sizeof(outf), "%s/stream.out", tu_tmpdir());
	snprintf(sendlog, sizeof(sendlog), "%s/send.log", tu_tmpdir());
	/* The receiver's first broker is A. */
	rx = tu_spawn_recv(list, "stream", 300, outf, NULL);
	ck_assert_int_gt(rx, 0);
	ck_assert(wait_lookup(br[2].port, "stream", 1, 5000));
	ck_assert_int_eq(lookup(br[2].port, "stream", before, 4), 1);
	/* A registration that cannot move: a raw session at A. */
	sfd = session(br[0].port);
	stranded = tu_register(sfd, 2, "stranded", 31000, 7);
	ck_assert(stranded != 0);
	ck_assert(wait_lookup(br[1].port, "stranded", 1, 3000));
	wfd = session(br[1].port);
	ck_assert_int_eq(watch(wfd, "stranded"), 1);
	/* The sender streams 300 messages through C (then B) for ~3 s. */
	snprintf(cmd, sizeof(cmd), "seq 1 300 | while read i; do echo $i; "
	    "sleep 0.01; done | %s send stream --broker %s,%s "
	    "--wait-receivers 1 --timeout 30000 > %s 2>&1", tu_bin("sipc"),
	    br[2].addr, br[1].addr, sendlog);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = NULL;
	tx = proc_spawn(argv, NULL);
	ck_assert_int_gt(tx, 0);
	sleep_ms(800);
	kill(br[0].pid, sig);
	ck_assert(proc_ok(proc_wait(br[0].pid, 5000)) || sig == SIGKILL);
	br[0].pid = 0;
	t0 = mono_ms();
	/* Re-registered at B or C within 2 s: a new id, same endpoint. */
	for (;;) {
		n = lookup(br[2].port, "stream", after, 4);
		if (n >= 1 && after[n - 1] != before[0])
			break;
		ck_assert_msg(mono_ms() - t0 < 2000, "no re-registration "
		    "within 2 s");
		sleep_ms(20);
	}
	/* The stranded one leaves B's watchers within TTL + 1 s. */
	left = 3000 - (int)(mono_ms() - t0);
	ck_assert_int_eq(next_event(wfd, left > 0 ? left : 1, &id), 2);
	ck_assert(id == stranded);
	/* The stream lost nothing, in order. */
	ck_assert_msg(proc_ok(proc_wait(tx, 30000)), "sender failed");
	ck_assert_msg(proc_ok(proc_wait(rx, 10000)), "receiver short");
	ck_assert_int_eq(tu_file_lines(outf), 300);
	{
		char out[64];

		ck_assert_int_eq(tu_sh(5, out, sizeof(out), "seq 1 300 | cmp "
		    "-s - %s && echo same", outf), 0);
		ck_assert_str_eq(out, "same\n");
	}
	/* Only the moved one is left. */
	ck_assert(wait_lookup(br[1].port, "stream", 0, 3000));
	close(wfd);
	close(sfd);
}

START_TEST(broker_killed)
{
	broker_dies(SIGKILL);
}
END_TEST

START_TEST(broker_stopped)
{
	broker_dies(SIGTERM);
}
END_TEST

/*
 * etcd stopped for 5 s: brokers serve lookups and refuse registrations,
 * report themselves degraded, then re-sync; a watcher sees no LEAVE for
 * the registration that stayed alive.
 */
START_TEST(etcd_outage)
{
	uint32_t reqid;
	uint16_t code = 0;
	uint64_t id, ids[2];
	int afd, wfd, fd;
	int64_t t0;

	afd = session(br[0].port);
	ids[0] = tu_register(afd, 2, "live", 32000, 9);
	ck_assert(ids[0] != 0);
	wfd = session(br[1].port);
	ck_assert(wait_lookup(br[1].port, "live", 1, 3000));
	ck_assert_int_eq(watch(wfd, "live"), 1);
	ck_assert_int_eq(stat_of(br[1].port, "cluster_degraded"), 0);

	t0 = mono_ms();
	ck_assert_int_eq(proc_stop(ec.nodes[0].pid, 5000) != -1, 1);
	ec.nodes[0].pid = 0;
	ck_assert(wait_stat(br[1].port, "cluster_degraded", 1, 5000));
	ck_assert(wait_stat(br[0].port, "cluster_degraded", 1, 5000));
	/* /metrics says so too, with the failed requests. */
	{
		static char m[65536];

		ck_assert_int_eq(get_metrics(m, sizeof(m)), 0);
		ck_assert_msg(strstr(m, "\nsipc_epmd_cluster_degraded 1\n") !=
		    NULL, "%s", m);
		ck_assert_msg(strstr(m, "\nsipc_epmd_etcd_errors_total 0\n") ==
		    NULL, "%s", m);
		ck_assert(strstr(m, "sipc_epmd_etcd_request_seconds_count") !=
		    NULL);
	}
	/* Read-only: lookups work, registrations are refused. */
	ck_assert_int_eq(lookup(br[1].port, "live", NULL, 0), 1);
	fd = session(br[1].port);
	register_send(fd, 5, "live", 32001, 10);
	ck_assert_int_eq(answer(fd, &reqid, &code), WIRE_ERROR);
	ck_assert_int_eq(reqid, 5);
	ck_assert_int_eq(code, WIRE_ERR_UNAVAILABLE);
	while (mono_ms() - t0 < 5000) {
		/* Keep the raw sessions alive (PINGs) meanwhile. */
		ck_assert_int_eq(next_event(wfd, 200, &id), 0);
		ck_assert_int_eq(next_event(afd, 10, &id), 0);
	}
	ck_assert_int_eq(etu_restart_node(&ec, 0, 20000), 0);
	ck_assert(wait_stat(br[0].port, "cluster_degraded", 0, 10000));
	ck_assert(wait_stat(br[1].port, "cluster_degraded", 0, 10000));
	/* No LEAVE (nor JOIN) for the one that stayed alive. */
	ck_assert_int_eq(next_event(wfd, 500, &id), 0);
	ck_assert_int_eq(lookup(br[2].port, "live", NULL, 0), 1);
	/* Registrations are accepted again. */
	ids[1] = tu_register(fd, 6, "live", 32001, 10);
	ck_assert(ids[1] != 0);
	ck_assert_int_eq(next_event(wfd, 3000, &id), 1);
	ck_assert(id == ids[1]);
	close(fd);
	close(wfd);
	close(afd);
}
END_TEST

/* A broker stopped past its lease comes back and writes its sessions'
 * registrations again. */
START_TEST(paused_past_ttl)
{
	uint64_t id, got[2];
	int afd, wfd;

	afd = session(br[0].port);
	id = tu_register(afd, 2, "paused", 33000, 11);
	ck_assert(id != 0);
	ck_assert(wait_lookup(br[1].port, "paused", 1, 3000));
	wfd = session(br[1].port);
	ck_assert_int_eq(watch(wfd, "paused"), 1);
	kill(br[0].pid, SIGSTOP);
	/* The lease (2 s) runs out: LEAVE elsewhere. */
	ck_assert_int_eq(next_event(wfd, 4000, got), 2);
	ck_assert(got[0] == id);
	kill(br[0].pid, SIGCONT);
	/* Back: the registration returns, under the same id. */
	ck_assert_int_eq(next_event(wfd, 5000, got), 1);
	ck_assert(got[0] == id);
	ck_assert(wait_lookup(br[2].port, "paused", 1, 3000));
	ck_assert_int_eq(lookup(br[2].port, "paused", got, 2), 1);
	ck_assert(got[0] == id);
	ck_assert_int_ge(stat_of(br[0].port, "cluster_lease_losses"), 1);
	close(wfd);
	close(afd);
}
END_TEST

/*
 * Churn: 1,020 registrations through 30 sessions spread over the three
 * brokers, a third unregistered, five sessions closed; at the end every
 * broker's view equals etcd's.
 */
#define CH_SESS		30
#define CH_PER		34
#define CH_HANDLES	10
START_TEST(churn)
{
	static uint64_t ids[CH_SESS][CH_PER], want[2048], got[2048];
	static uint64_t view[2048];
	int fds[CH_SESS], s, k, i, nwant = 0, ngot, nview, h;
	char handle[32];
	uint32_t reqid;
	uint16_t code;
	struct wbuf w;

	for (s = 0; s < CH_SESS; s++) {
		fds[s] = session(br[s % NB].port);
		for (k = 0; k < CH_PER; k++) {
			snprintf(handle, sizeof(handle), "churn-%d",
			    (s * CH_PER + k) % CH_HANDLES);
			register_send(fds[s], (uint32_t)(k + 1), handle,
			    (uint16_t)(20000 + s * CH_PER + k),
			    (uint64_t)(s + 1));
		}
	}
	for (s = 0; s < CH_SESS; s++) {
		for (k = 0; k < CH_PER; k++) {
			static uint8_t buf[256];
			struct wire_header hd;
			struct wire_error e;

			ck_assert_int_eq(tu_recv(fds[s], &hd, buf, sizeof(buf),
			    10000), 0);
			if (hd.type == WIRE_ERROR &&
			    wire_dec_error(buf, hd.len, &e) == 0)
				ck_abort_msg("REGISTER %d.%d: %s: %.*s", s, k,
				    wire_errcode_name(e.code), (int)e.text.len,
				    e.text.ptr);
			ck_assert_int_eq(hd.type, WIRE_OK);
			ck_assert_int_eq(wire_dec_ok_register(buf, hd.len,
			    &ids[s][hd.reqid - 1]), 0);
		}
	}
	/* A third unregistered, five sessions closed. */
	wbuf_init(&w, 64);
	for (s = 0; s < CH_SESS; s++) {
		for (k = 0; k < CH_PER; k += 3) {
			wire_enc_u64(&w, WIRE_UNREGISTER, (uint32_t)(100 + k),
			    ids[s][k]);
			ck_assert_int_eq(tu_send_wbuf(fds[s], &w), 0);
			ids[s][k] = 0;
		}
	}
	wbuf_free(&w);
	for (s = 0; s < CH_SESS; s++)
		for (k = 0; k < CH_PER; k += 3)
			ck_assert_int_eq(answer(fds[s], &reqid, &code),
			    WIRE_OK);
	for (s = 0; s < 5; s++) {
		close(fds[s]);
		fds[s] = -1;
		for (k = 0; k < CH_PER; k++)
			ids[s][k] = 0;
	}
	for (s = 0; s < CH_SESS; s++)
		for (k = 0; k < CH_PER; k++)
			if (ids[s][k])
				want[nwant++] = ids[s][k];
	qsort(want, (size_t)nwant, sizeof(*want), u64_cmp);
	/* etcd reaches it, then every broker's mirror. */
	for (i = 0; i < 100; i++) {
		if ((ngot = etcd_ids(got, 2048)) == nwant)
			break;
		sleep_ms(50);
	}
	ck_assert_int_eq(ngot, nwant);
	qsort(got, (size_t)ngot, sizeof(*got), u64_cmp);
	ck_assert_int_eq(memcmp(got, want, (size_t)nwant * sizeof(*want)), 0);
	for (i = 0; i < NB; i++) {
		int64_t end = mono_ms() + 5000;

		for (;;) {
			nview = 0;
			for (h = 0; h < CH_HANDLES; h++) {
				snprintf(handle, sizeof(handle), "churn-%d", h);
				nview += lookup(br[i].port, handle,
				    view + nview, 2048 - nview);
			}
			if (nview == nwant || mono_ms() > end)
				break;
			sleep_ms(50);
		}
		ck_assert_msg(nview == nwant, "broker %d sees %d, etcd %d", i,
		    nview, nwant);
		qsort(view, (size_t)nview, sizeof(*view), u64_cmp);
		ck_assert_int_eq(memcmp(view, want, (size_t)nwant *
		    sizeof(*want)), 0);
	}
	for (s = 5; s < CH_SESS; s++)
		close(fds[s]);
}
END_TEST

/*
 * Keys under the prefix that no broker wrote: not JSON, the wrong shape,
 * fields that lie, too large.  Every broker ignores them (and says so),
 * keeps serving, and a real registration still goes everywhere.
 */
START_TEST(bad_values)
{
	static const char *vals[] = {
		"not json",
		"[1,2]",
		"{\"v\":1}",
		"{\"v\":1,\"broker\":\"0123456789abcdef\",\"handle\":\"bad\","
		    "\"id\":\"99\",\"instance\":\"1\",\"family\":4,\"addr\":"
		    "\"7f000001000000000000000000000000\",\"port\":1,\"host\":"
		    "\"h\",\"pid\":1,\"registered_ms\":1}",
		"{\"v\":1,\"broker\":\"0123456789abcdef\",\"handle\":\"bad\","
		    "\"id\":\"1234\",\"instance\":\"1\",\"family\":9,\"addr\":"
		    "\"7f000001000000000000000000000000\",\"port\":1,\"host\":"
		    "\"h\",\"pid\":1,\"registered_ms\":1}",
	};
	char out[256], big[6000];
	uint64_t id;
	size_t i;
	int fd;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ETCDCTL_API=3 "
		    "etcdctl --endpoints=%s put /sipc/v1/reg/bad/%016x '%s' "
		    ">/dev/null", ec.endpoints, 0x1234, vals[i]), 0);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ETCDCTL_API=3 etcdctl "
	    "--endpoints=%s put /sipc/v1/reg/x >/dev/null <<EOF\nshort key\n"
	    "EOF", ec.endpoints), 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ETCDCTL_API=3 etcdctl "
	    "--endpoints=%s put /sipc/v1/reg/bad/%016x '%s' >/dev/null",
	    ec.endpoints, 0x1235, big), 0);
	/* A real one after them: seen everywhere, the bad ones nowhere. */
	fd = session(br[0].port);
	id = tu_register(fd, 2, "good", 35000, 14);
	ck_assert(id != 0);
	for (i = 0; i < NB; i++) {
		ck_assert(wait_lookup(br[i].port, "good", 1, 3000));
		ck_assert_int_eq(lookup(br[i].port, "bad", NULL, 0), 0);
		ck_assert_int_eq(stat_of(br[i].port, "cluster_degraded"), 0);
	}
	ck_assert_int_ge(tu_file_count(br[1].log, "not a valid registration"),
	    1);
	close(fd);
}
END_TEST

static void
setup3(void)
{
	ck_assert_int_eq(etu_start(&ec, tu_tmpdir(), 3, 30000), 0);
	start_brokers(2);
}

/* 3 etcd nodes, the leader SIGKILLed: lookups keep working throughout,
 * registrations resume after the election, none is lost. */
START_TEST(etcd_leader_killed)
{
	uint64_t ids[2];
	int afd, leader;
	int64_t t0;

	afd = session(br[0].port);
	ids[0] = tu_register(afd, 2, "ha", 34000, 12);
	ck_assert(ids[0] != 0);
	ck_assert(wait_lookup(br[1].port, "ha", 1, 3000));
	ck_assert_int_ge(leader = etu_leader(&ec), 0);
	etu_kill_node(&ec, leader);
	t0 = mono_ms();
	/* Lookups answer throughout. */
	while (mono_ms() - t0 < 1500)
		ck_assert_int_eq(lookup(br[1].port, "ha", NULL, 0), 1);
	/* A registration goes through after the election (the broker may
	 * refuse it while it fails over to a live node). */
	for (ids[1] = 0; ids[1] == 0 && mono_ms() - t0 < 10000; ) {
		int fd = session(br[0].port);

		ids[1] = tu_register(fd, 3, "ha", 34001, 13);
		if (ids[1] == 0) {
			close(fd);
			sleep_ms(200);
			continue;
		}
		ck_assert(wait_lookup(br[1].port, "ha", 2, 5000));
		close(fd);
	}
	ck_assert_msg(ids[1] != 0, "no registration within 10 s");
	/* The first one was never lost. */
	ck_assert_int_ge(lookup(br[1].port, "ha", NULL, 0), 1);
	{
		uint64_t got[4];
		int n = etcd_ids(got, 4), i, found = 0;

		for (i = 0; i < n; i++)
			found |= got[i] == ids[0];
		ck_assert(found);
	}
	close(afd);
}
END_TEST

static Suite *
cluster_suite(void)
{
	Suite *s = suite_create("cluster");
	TCase *one = tcase_create("one-etcd");
	TCase *three = tcase_create("three-etcd");

	tcase_add_checked_fixture(one, setup1, teardown);
	tcase_set_timeout(one, 60);
	tcase_add_test(one, found_across);
	tcase_add_test(one, ids_and_unregister);
	tcase_add_test(one, broker_killed);
	tcase_add_test(one, broker_stopped);
	tcase_add_test(one, etcd_outage);
	tcase_add_test(one, paused_past_ttl);
	tcase_add_test(one, churn);
	tcase_add_test(one, bad_values);
	suite_add_tcase(s, one);
	tcase_add_checked_fixture(three, setup3, teardown);
	tcase_set_timeout(three, 60);
	tcase_add_test(three, etcd_leader_killed);
	suite_add_tcase(s, three);
	return s;
}

int
main(void)
{
	return tu_run(cluster_suite());
}
