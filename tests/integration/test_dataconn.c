/*
 * test_dataconn.c - data connections keep the promises of PROTOCOL.md
 * section 6 and of README's delivery table, checked from outside: a raw
 * protocol peer written from the spec against a real receiver, a raw
 * receiver that declines ZLIB against a real `sipc send`, a frozen
 * `sipc recv` against `sipc send --timeout`, and a stalled receiver whose
 * gaps must equal what the sender reports lost.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static char out[1 << 16];

/* ---- A receiver that counts ---------------------------------------------- */

struct counts {
	atomic_long	 messages;
	atomic_long	 gaps;
	atomic_long	 gap_calls;
	atomic_ulong	 gap_first;	/* of the last on_gap */
	atomic_long	 connects;
	atomic_long	 disconnects;
	atomic_ulong	 last_seq;
	atomic_long	 bad_order;
	/* Stall: the callback blocks at message stall_at until released. */
	long		 stall_at;
	atomic_int	 stalled;
	atomic_int	 release;
};

static void
c_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	uint64_t seq = m->seq;
	struct counts *c = arg;
	long n;

	(void)rx;
	if (seq <= atomic_load(&c->last_seq))
		atomic_fetch_add(&c->bad_order, 1);
	atomic_store(&c->last_seq, seq);
	n = atomic_fetch_add(&c->messages, 1) + 1;
	if (c->stall_at && n == c->stall_at) {
		atomic_store(&c->stalled, 1);
		while (!atomic_load(&c->release))
			sleep_ms(1);
	}
}

static void
c_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first, uint64_t count,
    void *arg)
{
	struct counts *c = arg;

	(void)rx;
	(void)sender_id;
	atomic_fetch_add(&c->gaps, (long)count);
	atomic_fetch_add(&c->gap_calls, 1);
	atomic_store(&c->gap_first, first);
}

static void
c_connect(sipc_receiver *rx, uint64_t id, const char *peer, void *arg)
{
	(void)rx;
	(void)id;
	(void)peer;
	atomic_fetch_add(&((struct counts *)arg)->connects, 1);
}

static void
c_disconnect(sipc_receiver *rx, uint64_t id, const char *peer, void *arg)
{
	(void)rx;
	(void)id;
	(void)peer;
	atomic_fetch_add(&((struct counts *)arg)->disconnects, 1);
}

/* A local receiver of handle on its own EPM; *path gets its socket. */
static sipc_receiver *
counting_receiver(sipc_epm *epm, const char *handle, struct counts *c,
    char *path, size_t size)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	char ep[256];

	sipc_receiver_opts_init(&o);
	o.on_message = c_message;
	o.on_gap = c_gap;
	o.on_connect = c_connect;
	o.on_disconnect = c_disconnect;
	o.arg = c;
	ck_assert_msg(sipc_receiver_new(handle, epm, &o, &rx) == 0,
	    "receiver: %s", sipc_errmsg());
	ck_assert_int_eq(sipc_receiver_endpoint(rx, ep, sizeof(ep)), 0);
	if (path) {
		ck_assert(strncmp(ep, "unix:", 5) == 0);
		snprintf(path, size, "%s", ep + 5);
	}
	return rx;
}

static int
wait_long(atomic_long *v, long n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (atomic_load(v) < n && mono_ms() < end)
		sleep_ms(2);
	return atomic_load(v) >= n;
}

/* ---- A raw sender, from the spec ----------------------------------------- */

/* Connects to path and introduces itself; returns the fd and fills *ok. */
static int
raw_sender(const char *path, const char *handle, uint64_t sender_id,
    uint64_t first_seq, uint32_t heartbeat_ms, uint32_t ack_bytes,
    struct wire_dhello_ok *ok)
{
	return tu_raw_sender(path, handle, 0, sender_id, first_seq,
	    heartbeat_ms, ack_bytes, ok);
}

/* Appends DATA seq with a body of len bytes of c to w. */
static void
put_data(struct wbuf *w, uint64_t seq, size_t len, int c)
{
	uint8_t body[4096];
	size_t start;

	ck_assert_uint_le(len, sizeof(body));
	memset(body, c, len);
	start = wire_frame_begin(w, WIRE_DATA, 0, 0);
	wire_put_u64(w, seq);
	wire_put_bytes(w, body, len);
	ck_assert_int_eq(wire_frame_end(w, start), 0);
}

/*
 * Reads ACKs until one for seq `last` (or timeout_ms), marking each ACKed
 * seq in seen[] (seen has room for last + 1).  Returns the number of ACKs.
 */
static int
read_acks(int fd, uint64_t last, int *seen, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct wire_header h;
	uint8_t buf[4096];
	uint64_t v = 0;
	int n = 0;

	while (v < last && mono_ms() < end) {
		if (tu_recv(fd, &h, buf, sizeof(buf),
		    (int)(end - mono_ms())) != 0)
			break;
		if (h.type != WIRE_ACK)
			continue;
		ck_assert_int_eq(wire_dec_u64(buf, h.len, &v), 0);
		ck_assert_uint_le(v, last);
		seen[v] = 1;
		n++;
	}
	return n;
}

/*
 * Item 1: the receiver acknowledges every ack_bytes of DATA payload as the
 * sender asked, also below 4 KiB; 0 means after every DATA.
 */
START_TEST(test_ack_bytes_honoured)
{
	struct wire_dhello_ok ok;
	struct counts c;
	struct wbuf w;
	sipc_receiver *rx;
	sipc_epm *epm;
	char path[256];
	int seen[16], fd, i;

	tu_local_registry();
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	rx = counting_receiver(epm, "acks", &c, path, sizeof(path));

	/* 100 bytes: ten bodies of 50 (58 payload bytes each), sent in one
	 * write, are acknowledged after every second one. */
	fd = raw_sender(path, "acks", 0x1111, 1, 5000, 100, &ok);
	ck_assert_uint_eq(ok.last_seq, 0);
	wbuf_init(&w, 1 << 16);
	for (i = 1; i <= 10; i++)
		put_data(&w, (uint64_t)i, 50, 'a');
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	memset(seen, 0, sizeof(seen));
	ck_assert_int_ge(read_acks(fd, 10, seen, 5000), 5);
	for (i = 2; i <= 10; i += 2)
		ck_assert_msg(seen[i], "no ACK for seq %d (ack_bytes 100)", i);
	close(fd);

	/* 0: an ACK after every DATA. */
	fd = raw_sender(path, "acks", 0x2222, 1, 5000, 0, &ok);
	for (i = 1; i <= 3; i++)
		put_data(&w, (uint64_t)i, 10, 'b');
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	memset(seen, 0, sizeof(seen));
	ck_assert_int_eq(read_acks(fd, 3, seen, 5000), 3);
	for (i = 1; i <= 3; i++)
		ck_assert_msg(seen[i], "no ACK for seq %d (ack_bytes 0)", i);
	close(fd);
	wbuf_free(&w);
	ck_assert(wait_long(&c.messages, 13, 5000));
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
}
END_TEST

/*
 * Item 2: after OK(DHELLO) the receiver sends PING after one silent
 * interval and gives a silent sender up after three, not at the 5 s
 * DHELLO deadline.
 */
START_TEST(test_heartbeat_after_dhello)
{
	struct wire_dhello_ok ok;
	struct wire_header h;
	struct counts c;
	uint8_t buf[4096];
	sipc_receiver *rx;
	sipc_epm *epm;
	char path[256];
	int64_t t0, ping, closed;
	int fd;

	tu_local_registry();
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	rx = counting_receiver(epm, "beat", &c, path, sizeof(path));
	fd = raw_sender(path, "beat", 0x3333, 1, 150, 65536, &ok);
	t0 = mono_ms();
	/* The first frame after OK: a PING, about 150 ms later. */
	ck_assert_int_eq(tu_recv(fd, &h, buf, sizeof(buf), 2000), 0);
	ck_assert_int_eq(h.type, WIRE_PING);
	ping = mono_ms() - t0;
	ck_assert_int_lt(ping, 2000);
	/* We never answer: closed after 3 intervals (450 ms), long before
	 * the 5 s that old receivers took. */
	ck_assert(tu_closed(fd, 4000));
	closed = mono_ms() - t0;
	fprintf(stderr, "heartbeat 150 ms: first PING after %lld ms, closed "
	    "after %lld ms\n", (long long)ping, (long long)closed);
	ck_assert_int_lt(closed, 3000);
	close(fd);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
}
END_TEST

/*
 * Item 5: a sender seen before that comes back starting past what the
 * receiver expects, though it never delivered anything, left a gap the
 * receiver reports at DHELLO.
 */
START_TEST(test_gap_at_dhello)
{
	struct wire_dhello_ok ok;
	struct counts c;
	struct wbuf w;
	sipc_receiver *rx;
	sipc_epm *epm;
	static int seen[1002];
	char path[256];
	int fd;

	tu_local_registry();
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	rx = counting_receiver(epm, "gaps", &c, path, sizeof(path));

	/* Connects, delivers nothing, goes. */
	fd = raw_sender(path, "gaps", 0x4444, 1, 5000, 65536, &ok);
	close(fd);
	ck_assert(wait_long(&c.disconnects, 1, 5000));
	/* Back, starting at 1001: messages 1..1000 never came. */
	fd = raw_sender(path, "gaps", 0x4444, 1001, 5000, 65536, &ok);
	ck_assert_uint_eq(ok.last_seq, 0);
	ck_assert(wait_long(&c.gaps, 1000, 5000));
	ck_assert_int_eq(atomic_load(&c.gap_calls), 1);
	ck_assert_uint_eq(atomic_load(&c.gap_first), 1);
	/* What follows is in order: no second gap, delivered. */
	wbuf_init(&w, 4096);
	put_data(&w, 1001, 5, 'x');
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(read_acks(fd, 1001, seen, 5000), 1);
	ck_assert_int_eq(atomic_load(&c.messages), 1);
	ck_assert_int_eq(atomic_load(&c.gaps), 1000);
	close(fd);

	/* A sender that resumes where it was leaves no gap. */
	fd = raw_sender(path, "gaps", 0x4444, 1002, 5000, 65536, &ok);
	ck_assert_uint_eq(ok.last_seq, 1001);
	sleep_ms(100);
	ck_assert_int_eq(atomic_load(&c.gaps), 1000);
	close(fd);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
}
END_TEST

/* ---- Loss at the sender equals gaps at the receiver ---------------------- */

struct fails {
	atomic_long	lost;
	atomic_long	calls;
};

static void
on_failed(sipc_sender *tx, int error, const char *endpoint, uint64_t lost,
    void *arg)
{
	struct fails *f = arg;

	(void)tx;
	(void)error;
	(void)endpoint;
	atomic_fetch_add(&f->lost, (long)lost);
	atomic_fetch_add(&f->calls, 1);
}

/*
 * Item 6: a receiver stalls in its callback while 30,000 messages stream
 * past its high-water mark; under drop (_i = 0) and disconnect (_i = 1)
 * the sender's count of lost messages must equal the receiver's gaps,
 * and together with what was delivered make up everything sent.
 */
START_TEST(test_loss_equals_gaps)
{
	const int policy = _i == 0 ? SIPC_POLICY_DROP :
	    SIPC_POLICY_DISCONNECT;
	const long stream = 30000, tail = 200;
	struct sipc_sender_opts so;
	struct sipc_sender_stats st;
	struct sipc_receiver_stats rs;
	struct counts c;
	struct fails f;
	sipc_epm *repm, *tepm;
	sipc_receiver *rx;
	sipc_sender *tx;
	char msg[100];
	long i;

	tu_local_registry();
	memset(&c, 0, sizeof(c));
	memset(&f, 0, sizeof(f));
	c.stall_at = 100;
	/* Two EPMs, two I/O threads: the stalled callback holds only the
	 * receiver's. */
	ck_assert_int_eq(sipc_epm_local(&repm), 0);
	ck_assert_int_eq(sipc_epm_local(&tepm), 0);
	rx = counting_receiver(repm, "stall", &c, NULL, 0);
	sipc_sender_opts_init(&so);
	so.policy = policy;
	so.hwm_bytes = 64 * 1024;
	so.on_send_failed = on_failed;
	so.arg = &f;
	ck_assert_int_eq(sipc_sender_new("stall", tepm, &so, &tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 5000), 0);
	memset(msg, 'm', sizeof(msg));
	for (i = 0; i < 200; i++)
		ck_assert_int_eq(sipc_send(tx, msg, sizeof(msg)), 0);
	for (i = 0; i < 5000 && !atomic_load(&c.stalled); i++)
		sleep_ms(1);
	ck_assert(atomic_load(&c.stalled));
	for (i = 200; i < stream; i++)
		ck_assert_int_eq(sipc_send(tx, msg, sizeof(msg)), 0);
	ck_assert_int_gt(atomic_load(&f.lost), 0);
	atomic_store(&c.release, 1);
	/* Under disconnect the sender comes back within its 1 s retry. */
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
	/* Messages after the stall make every gap visible. */
	for (i = 0; i < tail; i++) {
		ck_assert_int_eq(sipc_send(tx, msg, sizeof(msg)), 0);
		if (i % 20 == 0)
			sleep_ms(5);
	}
	ck_assert_msg(sipc_sender_flush(tx, 20000) == 0, "flush: %s",
	    sipc_errmsg());
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	ck_assert_int_eq(sipc_receiver_stats(rx, &rs), 0);
	fprintf(stderr, "loss_equals_gaps %s: sent %llu delivered %llu, "
	    "sender lost %llu (%ld reports), receiver got %llu, gaps %llu\n",
	    _i == 0 ? "drop" : "disconnect",
	    (unsigned long long)st.sent, (unsigned long long)st.delivered,
	    (unsigned long long)st.lost, atomic_load(&f.calls),
	    (unsigned long long)rs.messages, (unsigned long long)rs.gaps);
	ck_assert_uint_eq(st.sent, (uint64_t)(stream + tail));
	ck_assert_uint_eq(st.lost, (uint64_t)atomic_load(&f.lost));
	ck_assert_uint_eq(st.lost, rs.gaps);
	ck_assert_uint_eq(st.delivered, rs.messages);
	ck_assert_uint_eq(rs.messages + rs.gaps, st.sent);
	ck_assert_uint_eq(rs.duplicates, 0);
	ck_assert_int_eq(atomic_load(&c.bad_order), 0);
	/* Batched: at most one report per 100 ms and cause, not one per
	 * message (the stream takes well under 10 s even under valgrind). */
	ck_assert_int_le(atomic_load(&f.calls), 300);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_receiver_close(rx);
	sipc_epm_close(tepm);
	sipc_epm_close(repm);
}
END_TEST

/* ---- A receiver that declines compression -------------------------------- */

struct plain_rx {
	int		 lfd;
	uint64_t	 instance;
	long		 expect;	/* messages to read */
	long		 got;
	long		 compressed;	/* DATA with COMPRESSED: must stay 0 */
	long		 wrong;		/* bodies not as sent */
	uint32_t	 offered;	/* features in DHELLO */
};

/* The line `sipc send` sends as message i. */
static void
big_line(char *buf, size_t size, long i)
{
	size_t n;

	n = (size_t)snprintf(buf, size, "%06ld ", i);
	memset(buf + n, 'z', size - n - 1);
	buf[size - 1] = '\0';
}

/* Accepts one sender, answers OK(DHELLO) without ZLIB, reads DATA and
 * acknowledges it, from the spec alone. */
static void *
plain_rx_main(void *arg)
{
	struct plain_rx *p = arg;
	struct wire_dhello m;
	struct wire_dhello_ok ok;
	struct wire_data d;
	struct wire_header h;
	static uint8_t buf[1 << 16];
	char line[400];
	struct wbuf w;
	int fd;

	if ((fd = tu_accept_dhello(p->lfd, &h, &m, buf,
	    sizeof(buf))) == -1)
		return NULL;
	wbuf_init(&w, 4096);
	p->offered = m.features;
	memset(&ok, 0, sizeof(ok));
	ok.version = 1;
	ok.features = 0;		/* we do not inflate */
	ok.instance = p->instance;
	ok.max_message = 1 << 20;
	wire_enc_ok_dhello(&w, h.reqid, &ok);
	tu_send_wbuf(fd, &w);
	while (p->got < p->expect) {
		if (tu_recv(fd, &h, buf, sizeof(buf), 10000) != 0)
			break;
		if (h.type == WIRE_PING) {
			uint64_t token;

			wire_dec_u64(buf, h.len, &token);
			wire_enc_u64(&w, WIRE_PONG, h.reqid, token);
			tu_send_wbuf(fd, &w);
			continue;
		}
		if (h.type != WIRE_DATA)
			continue;
		if (h.flags & WIRE_F_COMPRESSED) {
			p->compressed++;
			continue;
		}
		if (wire_dec_data(buf, h.len, &d) != 0) {
			p->wrong++;
			continue;
		}
		big_line(line, sizeof(line), p->got);
		if (d.len != strlen(line) || memcmp(d.body, line, d.len) != 0)
			p->wrong++;
		p->got++;
		wire_enc_u64(&w, WIRE_ACK, 0, d.seq);
		tu_send_wbuf(fd, &w);
	}
	/* Let the sender read the last ACK before we hang up. */
	tu_closed(fd, 5000);
	wbuf_free(&w);
	close(fd);
	return NULL;
}

/*
 * Item 3: `sipc send --compress` delivers, uncompressed, to a receiver
 * that does not grant ZLIB: with --wait-receivers, and without (messages
 * queued before the handshake told what the receiver takes).
 */
START_TEST(test_compress_to_plain_receiver)
{
	struct tu_broker b;
	struct plain_rx p;
	pthread_t th;
	char file[300], line[400];
	const char *waits[] = { "--wait-receivers 1", "" };
	FILE *fp;
	int bfd, k, rc, port;
	long i;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	snprintf(file, sizeof(file), "%s/lines", tu_tmpdir());
	ck_assert_ptr_nonnull(fp = fopen(file, "w"));
	for (i = 0; i < 50; i++) {
		big_line(line, sizeof(line), i);
		fprintf(fp, "%s\n", line);
	}
	fclose(fp);
	for (k = 0; k < 2; k++) {
		memset(&p, 0, sizeof(p));
		p.expect = 50;
		p.instance = 0x5555 + (uint64_t)k;
		ck_assert_int_ge(p.lfd = listen_loopback(8, &port), 0);
		ck_assert_int_ge(bfd = tu_register_at(b.port, "zip",
		    (uint16_t)port, p.instance), 0);
		ck_assert_int_eq(pthread_create(&th, NULL, plain_rx_main, &p),
		    0);
		rc = tu_sh(30, out, sizeof(out), "%s send zip --broker %s "
		    "--compress %s --timeout 10000 --file %s 2>&1",
		    tu_bin("sipc"), b.addr, waits[k], file);
		pthread_join(th, NULL);
		ck_assert_msg(rc == 0, "sipc send %s: exit %d: %s", waits[k],
		    rc, out);
		ck_assert(p.offered & WIRE_FEAT_ZLIB);
		ck_assert_int_eq(p.got, 50);
		ck_assert_int_eq(p.compressed, 0);
		ck_assert_int_eq(p.wrong, 0);
		close(bfd);
		close(p.lfd);
	}
	tu_broker_stop(&b);
}
END_TEST

/*
 * Item 4: `sipc send --timeout T` against a frozen receiver takes T (and
 * a heartbeat of slack), not 2T, and reports the loss.
 */
START_TEST(test_send_timeout_whole)
{
	char outf[300];
	pid_t rx;
	int64_t t0, took;
	int rc;

	tu_local_registry();
	snprintf(outf, sizeof(outf), "%s/frozen.out", tu_tmpdir());
	rx = tu_spawn_recv(NULL, "frozen", 1000, outf, NULL);
	ck_assert_int_gt(rx, 0);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send frozen "
	    "--wait-receivers 1 --timeout 10000 warm-up 2>&1",
	    tu_bin("sipc")), 0);
	kill(rx, SIGSTOP);
	t0 = mono_ms();
	rc = tu_sh(30, out, sizeof(out), "%s send frozen --timeout 2000 "
	    "one two 2>&1", tu_bin("sipc"));
	took = mono_ms() - t0;
	kill(rx, SIGCONT);
	fprintf(stderr, "sipc send --timeout 2000, frozen receiver: exit %d "
	    "after %lld ms\n", rc, (long long)took);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "did not reach") != NULL, "%s", out);
	ck_assert_msg(took >= 1900 && took < 3500, "--timeout 2000 took "
	    "%lld ms", (long long)took);
	/* Bad policies are usage errors. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s send frozen "
	    "--policy sometimes x 2>&1", tu_bin("sipc")), 2);
	ck_assert_ptr_nonnull(strstr(out, "--policy"));
	proc_stop(rx, 5000);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dataconn");
	TCase *tc = tcase_create("dataconn");

	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_ack_bytes_honoured);
	tcase_add_test(tc, test_heartbeat_after_dhello);
	tcase_add_test(tc, test_gap_at_dhello);
	tcase_add_loop_test(tc, test_loss_equals_gaps, 0, 2);
	tcase_add_test(tc, test_compress_to_plain_receiver);
	tcase_add_test(tc, test_send_timeout_whole);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
