/*
 * test_broker.c - sipc-epmd as a black box: started on an ephemeral
 * loopback port, driven with brokerctl and with raw frames.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"

static char out[1 << 20];

/* brokerctl against b; output in out, returns the exit status. */
static int
ctl(struct tu_broker *b, const char *args)
{
	return tu_sh(30, out, sizeof(out), "%s --broker %s %s",
	    tu_bin("brokerctl"), b->addr, args);
}

static uint64_t
stat_value(struct tu_broker *b, const char *name)
{
	char key[64], *p;

	if (ctl(b, "--json stats") != 0)
		return UINT64_MAX;
	snprintf(key, sizeof(key), "\"%s\":", name);
	if ((p = strstr(out, key)) == NULL)
		return UINT64_MAX;
	return strtoull(p + strlen(key), NULL, 10);
}

static int
connect_hello(struct tu_broker *b, uint32_t hb)
{
	int fd = connect_loopback(b->port);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tu_hello(fd, hb), 0);
	return fd;
}

/* Sends WATCH and reads the snapshot; returns its record count. */
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
	ck_assert_int_eq(h.reqid, 77);
	ck_assert_int_eq(wire_dec_ok_records(buf, h.len, WIRE_WATCH, &seq), 0);
	return (int)seq.count;
}

/* Reads LEAVE frames until n arrived; returns ms it took, -1 on timeout. */
static int
wait_leaves(int fd, int n, int timeout_ms, uint8_t *reason)
{
	uint8_t buf[4096];
	struct wire_header h;
	struct wire_leave l;
	int64_t t0 = mono_ms();

	while (n > 0) {
		int left = timeout_ms - (int)(mono_ms() - t0);

		if (left <= 0 || tu_recv_type(fd, WIRE_LEAVE, &h, buf,
		    sizeof(buf), left) != 0)
			return -1;
		ck_assert_int_eq(wire_dec_leave(buf, h.len, &l), 0);
		*reason = l.reason;
		n--;
	}
	return (int)(mono_ms() - t0);
}

/* Reads the ERROR that answers reqid; returns its code or -1. */
static int
expect_error(int fd, uint32_t reqid)
{
	uint8_t buf[4096];
	struct wire_header h;
	struct wire_error e;

	if (tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf), 5000) != 0)
		return -1;
	ck_assert_int_eq(h.reqid, reqid);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	return e.code;
}

START_TEST(test_ping_and_port_file)
{
	struct tu_broker b;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	ck_assert_ptr_nonnull(strstr(out, "sipc-epmd/"));
	ck_assert_int_eq(ctl(&b, "--json ping"), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"protocol\":1"));
	/* SIPC_BROKER is read when --broker is absent. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "SIPC_BROKER=%s %s ping",
	    b.addr, tu_bin("brokerctl")), 0);
	tu_broker_stop(&b);
	/* Unreachable: exit 1 and a line naming the address. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --broker %s ping "
	    "2>&1", tu_bin("brokerctl"), b.addr), 1);
	ck_assert_ptr_nonnull(strstr(out, b.addr));
	ck_assert_ptr_nonnull(strstr(out, "refused"));
	/* Usage errors: exit 2. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s frobnicate 2>&1",
	    tu_bin("brokerctl")), 2);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s show 2>&1",
	    tu_bin("brokerctl")), 2);
}
END_TEST

START_TEST(test_thousand_registrations)
{
	struct tu_broker b;
	char handle[32];
	int fd, i;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	fd = connect_hello(&b, 0);
	for (i = 0; i < 1000; i++)
		ck_assert_uint_ne(tu_register(fd, (uint32_t)i + 10, "many",
		    (uint16_t)(20000 + i), 1000 + (uint64_t)i), 0);
	for (i = 0; i < 5; i++) {
		snprintf(handle, sizeof(handle), "other-%d", i);
		ck_assert_uint_ne(tu_register(fd, 5000 + (uint32_t)i, handle,
		    (uint16_t)(30000 + i), 1), 0);
	}
	ck_assert_int_eq(ctl(&b, "--json list"), 0);
	ck_assert_ptr_nonnull(strstr(out,
	    "{\"handle\":\"many\",\"receivers\":1000}"));
	ck_assert_int_eq(tu_count(out, "\"handle\""), 6);
	ck_assert_int_eq(ctl(&b, "--json show many"), 0);
	ck_assert_int_eq(tu_count(out, "\"id\":"), 1000);
	ck_assert_int_eq(tu_count(out, "\"address\":\"127.0.0.1\""), 1000);
	ck_assert_ptr_nonnull(strstr(out, "\"port\":20999"));
	ck_assert_ptr_nonnull(strstr(out, "\"host\":\"testhost\""));
	ck_assert_int_eq(ctl(&b, "show many"), 0);
	ck_assert_int_eq(tu_count(out, "testhost"), 1000);
	ck_assert_int_eq(ctl(&b, "--json show nobody"), 0);
	ck_assert_str_eq(out, "[]\n");
	ck_assert_uint_eq(stat_value(&b, "registrations"), 1005);
	ck_assert_uint_eq(stat_value(&b, "handles"), 6);
	close(fd);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_list_pages)
{
	struct tu_broker b;
	char handle[300];
	int fd, i;

	/* More handles than one LIST page holds: brokerctl pages through. */
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	fd = connect_hello(&b, 0);
	for (i = 0; i < SIPC_LIST_PAGE_MAX + 300; i++) {
		snprintf(handle, sizeof(handle), "page-%05d", i);
		ck_assert_uint_ne(tu_register(fd, (uint32_t)i + 1, handle,
		    5000, 1), 0);
	}
	ck_assert_int_eq(ctl(&b, "--json list"), 0);
	ck_assert_int_eq(tu_count(out, "\"handle\""), SIPC_LIST_PAGE_MAX + 300);
	ck_assert_ptr_nonnull(strstr(out, "\"page-01323\""));
	close(fd);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_sigkill_client)
{
	struct tu_broker b;
	uint8_t reason = 0;
	int w, ms, i, st;
	pid_t pid;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	w = connect_hello(&b, 0);
	ck_assert_int_eq(watch(w, "victim"), 0);
	if ((pid = fork()) == 0) {
		int fd = connect_loopback(b.port);

		if (fd < 0 || tu_hello(fd, 0) != 0)
			_exit(1);
		for (i = 0; i < 100; i++)
			if (tu_register(fd, (uint32_t)i + 1, "victim",
			    (uint16_t)(40000 + i), 5) == 0)
				_exit(1);
		for (;;)
			pause();
	}
	/* Wait until all 100 are registered. */
	for (i = 0; i < 500 && stat_value(&b, "registrations") != 100; i++)
		sleep_ms(10);
	ck_assert_uint_eq(stat_value(&b, "registrations"), 100);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ms = wait_leaves(w, 100, 1000, &reason);
	ck_assert_msg(ms >= 0, "not every LEAVE arrived within 1 s");
	ck_assert_int_eq(reason, WIRE_LEAVE_CLOSED);
	ck_assert_uint_eq(stat_value(&b, "registrations"), 0);
	ck_assert_int_eq(ctl(&b, "--json show victim"), 0);
	ck_assert_str_eq(out, "[]\n");
	close(w);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_heartbeat_expiry)
{
	struct tu_broker b;
	uint8_t reason = 0;
	int64_t t0;
	int w, fd, ms;

	ck_assert_int_eq(tu_broker_start(&b, "--heartbeat-ms", "200", NULL),
	    0);
	w = connect_hello(&b, 0);
	ck_assert_int_eq(watch(w, "frozen"), 0);
	fd = connect_hello(&b, 0);
	ck_assert_uint_ne(tu_register(fd, 1, "frozen", 4444, 3), 0);
	/* From here the client neither sends nor answers PINGs. */
	t0 = mono_ms();
	ms = wait_leaves(w, 1, 3000, &reason);
	ck_assert_int_ge(ms, 0);
	ms = (int)(mono_ms() - t0);
	ck_assert_int_eq(reason, WIRE_LEAVE_EXPIRED);
	/* Dead after 3 silent intervals of 200 ms, not before. */
	ck_assert_msg(ms >= 3 * 200 - 50 && ms <= 3 * 200 + 250,
	    "LEAVE after %d ms, expected about 600", ms);
	ck_assert_int_eq(tu_closed(fd, 2000), 1);
	/* The watcher answered its PINGs and is still served. */
	ck_assert_int_eq(ctl(&b, "--json stats"), 0);
	ck_assert_uint_eq(stat_value(&b, "heartbeat_expiries"), 1);
	ck_assert_uint_eq(stat_value(&b, "watches"), 1);
	close(fd);
	close(w);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_garbage_cut_off)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct tu_broker b;
	uint8_t hdr[SIPC_HEADER_SIZE];
	struct wire_header h = { 1, WIRE_REGISTER, 0, 9, 0 };
	int a, g, code;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	a = connect_hello(&b, 0);
	ck_assert_uint_ne(tu_register(a, 1, "keep", 5555, 1), 0);

	/* Not our protocol at all: an ERROR, then closed. */
	g = connect_loopback(b.port);
	ck_assert_int_eq(tu_send(g, http, sizeof(http) - 1), 0);
	ck_assert_int_eq(expect_error(g, 0), WIRE_ERR_BAD_FRAME);
	ck_assert_int_eq(tu_closed(g, 2000), 1);
	close(g);

	/* A frame claiming 4 GiB after HELLO: TOO_LARGE, closed. */
	g = connect_hello(&b, 0);
	h.len = 0xfffffff0u;
	wire_header_encode(hdr, &h);
	ck_assert_int_eq(tu_send(g, hdr, sizeof(hdr)), 0);
	ck_assert_int_eq(expect_error(g, 0), WIRE_ERR_TOO_LARGE);
	ck_assert_int_eq(tu_closed(g, 2000), 1);
	close(g);

	/* Oversized before HELLO: the small pre-HELLO limit applies. */
	g = connect_loopback(b.port);
	h.type = WIRE_HELLO;
	h.len = SIPC_HELLO_FRAME_MAX + 1;
	wire_header_encode(hdr, &h);
	ck_assert_int_eq(tu_send(g, hdr, sizeof(hdr)), 0);
	ck_assert_int_eq(expect_error(g, 0), WIRE_ERR_TOO_LARGE);
	close(g);

	/* A truncated frame and a hang-up: just gone. */
	g = connect_hello(&b, 0);
	h.type = WIRE_REGISTER;
	h.len = 100;
	wire_header_encode(hdr, &h);
	ck_assert_int_eq(tu_send(g, hdr, sizeof(hdr)), 0);
	ck_assert_int_eq(tu_send(g, "0123456789", 10), 0);
	close(g);

	/* Reserved bits set: closed. */
	g = connect_hello(&b, 0);
	h.len = 0;
	wire_header_encode(hdr, &h);
	hdr[6] = 0x80;
	ck_assert_int_eq(tu_send(g, hdr, sizeof(hdr)), 0);
	code = expect_error(g, 0);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	close(g);

	/* The first client and its registration are untouched. */
	sleep_ms(100);
	ck_assert_int_eq(ctl(&b, "--json show keep"), 0);
	ck_assert_int_eq(tu_count(out, "\"port\":5555"), 1);
	ck_assert_uint_ne(tu_register(a, 2, "keep2", 5556, 1), 0);
	/* One log line per cut-off session, naming the cause. */
	ck_assert_int_eq(tu_file_count(b.log, "bad magic"), 1);
	ck_assert_int_eq(tu_file_count(b.log, "exceeds the limit"), 2);
	ck_assert_int_eq(tu_file_count(b.log, "reserved header bits"), 1);
	close(a);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_bad_requests_keep_session)
{
	struct tu_broker b;
	uint8_t buf[4096], hdr[SIPC_HEADER_SIZE];
	struct wire_header h = { 1, 0x7e, 0, 31, 0 };
	struct wire_register m;
	struct wbuf w;
	int fd;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	fd = connect_loopback(b.port);
	/* A request before HELLO. */
	wbuf_init(&w, 4096);
	wire_enc_handle(&w, WIRE_LOOKUP, 3, "x", 1);
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 3), WIRE_ERR_HELLO_REQUIRED);
	ck_assert_int_eq(tu_hello(fd, 0), 0);

	/* Handle with bad UTF-8: BAD_HANDLE, session goes on. */
	memset(&m, 0, sizeof(m));
	m.handle.ptr = "ok";
	m.handle.len = 2;
	m.instance = 1;
	m.ep.family = WIRE_AF_INET;
	m.ep.port = 1;
	wire_enc_register(&w, 4, &m);
	w.data[SIPC_HEADER_SIZE + 2] = 0xc3;
	w.data[SIPC_HEADER_SIZE + 3] = 0x28;
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 4), WIRE_ERR_BAD_HANDLE);

	/* Port 0: BAD_ENDPOINT. */
	wire_enc_register(&w, 5, &m);
	w.data[w.len - 1] = 0;
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 5), WIRE_ERR_BAD_ENDPOINT);

	/* A trailing byte: BAD_MESSAGE. */
	wire_enc_handle(&w, WIRE_LOOKUP, 6, "x", 1);
	w.data[15]++;
	wire_put_u8(&w, 0);
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 6), WIRE_ERR_BAD_MESSAGE);

	/* An unknown type and a push type: errors, session goes on. */
	wire_header_encode(hdr, &h);
	tu_send(fd, hdr, sizeof(hdr));
	ck_assert_int_eq(expect_error(fd, 31), WIRE_ERR_UNKNOWN_TYPE);
	h.type = WIRE_JOIN;
	h.reqid = 32;
	wire_header_encode(hdr, &h);
	tu_send(fd, hdr, sizeof(hdr));
	ck_assert_int_eq(expect_error(fd, 32), WIRE_ERR_UNEXPECTED);

	/* UNREGISTER of nothing, UNWATCH of nothing. */
	wire_enc_u64(&w, WIRE_UNREGISTER, 7, 12345);
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 7), WIRE_ERR_NOT_FOUND);
	wire_enc_handle(&w, WIRE_UNWATCH, 8, "x", 1);
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(expect_error(fd, 8), WIRE_ERR_NOT_FOUND);

	/* Still fine: a real request answers OK. */
	wire_enc_empty(&w, WIRE_STATS, 9);
	tu_send_wbuf(fd, &w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf), 5000),
	    0);
	ck_assert_int_eq(h.reqid, 9);
	wbuf_free(&w);
	close(fd);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_version_mismatch)
{
	struct tu_broker b;
	struct wire_hello m;
	uint8_t buf[4096];
	struct wire_header h;
	struct wire_error e;
	struct wbuf w;
	int fd;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	fd = connect_loopback(b.port);
	memset(&m, 0, sizeof(m));
	m.min_version = 2;
	m.max_version = 3;
	wbuf_init(&w, 4096);
	wire_enc_hello(&w, 1, &m);
	w.data[2] = 3;		/* a future client's header */
	tu_send_wbuf(fd, &w);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, WIRE_ERR_VERSION);
	ck_assert_ptr_nonnull(memmem(e.text.ptr, e.text.len, "speaks 1 to 1",
	    13));
	ck_assert_int_eq(tu_closed(fd, 2000), 1);
	close(fd);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_handshake_timeout)
{
	struct tu_broker b;
	int64_t t0;
	int fd;

	ck_assert_int_eq(tu_broker_start(&b, "--handshake-timeout-ms", "300",
	    NULL), 0);
	fd = connect_loopback(b.port);
	t0 = mono_ms();
	ck_assert_int_eq(expect_error(fd, 0), WIRE_ERR_TIMEOUT);
	ck_assert_int_eq(tu_closed(fd, 2000), 1);
	ck_assert_int_le(mono_ms() - t0, 1500);
	ck_assert_uint_eq(stat_value(&b, "handshake_timeouts"), 1);
	close(fd);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_ownership)
{
	struct tu_broker b;
	struct wbuf w;
	uint64_t id;
	int a, c;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	a = connect_hello(&b, 0);
	c = connect_hello(&b, 0);
	id = tu_register(a, 1, "mine", 6000, 1);
	ck_assert_uint_ne(id, 0);
	/* Registering the same endpoint again is idempotent: same id. */
	ck_assert_uint_eq(tu_register(a, 2, "mine", 6000, 1), id);
	/* Another session can neither take nor remove it. */
	ck_assert_uint_eq(tu_register(c, 3, "mine", 6000, 1), 0);
	wbuf_init(&w, 4096);
	wire_enc_u64(&w, WIRE_UNREGISTER, 4, id);
	tu_send_wbuf(c, &w);
	ck_assert_int_eq(expect_error(c, 4), WIRE_ERR_NOT_OWNER);
	ck_assert_int_eq(ctl(&b, "--json show mine"), 0);
	ck_assert_int_eq(tu_count(out, "\"id\":"), 1);
	/* The owner can. */
	wire_enc_u64(&w, WIRE_UNREGISTER, 5, id);
	tu_send_wbuf(a, &w);
	{
		uint8_t buf[256];
		struct wire_header h;

		ck_assert_int_eq(tu_recv_type(a, WIRE_OK, &h, buf,
		    sizeof(buf), 5000), 0);
		ck_assert_int_eq(h.reqid, 5);
	}
	ck_assert_int_eq(ctl(&b, "--json show mine"), 0);
	ck_assert_str_eq(out, "[]\n");
	wbuf_free(&w);
	close(a);
	close(c);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_brokerctl_watch)
{
	struct tu_broker b;
	char path[300], *argv[8];
	pid_t pid;
	int fd, i;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	fd = connect_hello(&b, 0);
	ck_assert_uint_ne(tu_register(fd, 1, "w", 7001, 1), 0);
	snprintf(path, sizeof(path), "%s/watch.out", tu_tmpdir());
	argv[0] = (char *)tu_bin("brokerctl");
	argv[1] = "--broker";
	argv[2] = b.addr;
	argv[3] = "--json";
	argv[4] = "watch";
	argv[5] = "w";
	argv[6] = NULL;
	pid = proc_spawn(argv, path);
	tu_wait_file(path, "present", 1, 3000);
	ck_assert_int_eq(tu_file_count(path, "\"event\":\"present\""), 1);
	ck_assert_uint_ne(tu_register(fd, 2, "w", 7002, 1), 0);
	close(fd);
	tu_wait_file(path, "\"event\":\"leave\"", 2, 3000);
	ck_assert_int_eq(tu_file_count(path, "\"event\":\"join\""), 1);
	ck_assert_int_eq(tu_file_count(path, "\"port\":7002"), 1);
	ck_assert_int_eq(tu_file_count(path,
	    "\"event\":\"leave\",\"id\":"), 2);
	ck_assert_int_eq(tu_file_count(path, "\"reason\":\"closed\""), 2);
	/* SIGINT ends it with status 0. */
	kill(pid, SIGINT);
	i = proc_wait(pid, 5000);
	ck_assert(WIFEXITED(i) && WEXITSTATUS(i) == 0);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_config)
{
	char path[300];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/epmd.conf", tu_tmpdir());
	fp = fopen(path, "w");
	fprintf(fp, "# comment\nheartbeat_ms = 700  # trailing\n"
	    "listen = 127.0.0.1:0\n\nlog_level = warn\n");
	fclose(fp);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --config %s "
	    "--check-config --heartbeat-ms 900", tu_bin("sipc-epmd"), path),
	    0);
	/* The command line wins over the file. */
	ck_assert_ptr_nonnull(strstr(out, "heartbeat_ms = 900\n"));
	ck_assert_ptr_nonnull(strstr(out, "log_level = warn\n"));
	ck_assert_ptr_nonnull(strstr(out, "listen = 127.0.0.1:0\n"));
	/* Errors name the line. */
	fp = fopen(path, "w");
	fprintf(fp, "heartbeat_ms = 700\nbogus = 1\nmax_sessions = lots\n");
	fclose(fp);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s -c %s --check-config "
	    "2>&1", tu_bin("sipc-epmd"), path), 1);
	ck_assert_ptr_nonnull(strstr(out, "epmd.conf:2: unknown key 'bogus'"));
	ck_assert_ptr_nonnull(strstr(out, "epmd.conf:3: max_sessions: 'lots'"));
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --heartbeat-ms 1 "
	    "--check-config 2>&1", tu_bin("sipc-epmd")), 1);
	ck_assert_ptr_nonnull(strstr(out, "--heartbeat_ms"));
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --listen nope "
	    "--check-config 2>&1", tu_bin("sipc-epmd")), 1);
	ck_assert_ptr_nonnull(strstr(out, "missing port"));
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --frobnicate 2>&1",
	    tu_bin("sipc-epmd")), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown option '--frobnicate'"));
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --help",
	    tu_bin("sipc-epmd")), 0);
	ck_assert_ptr_nonnull(strstr(out, "--max-sessions-per-peer"));
}
END_TEST

START_TEST(test_positional_port_and_daemon)
{
	char pidfile[300], portarg[8], logf[300], *argv[8];
	uint16_t port = free_port();
	long pid = 0;
	pid_t p;
	FILE *fp;
	int i;

	snprintf(portarg, sizeof(portarg), "%u", port);
	snprintf(logf, sizeof(logf), "%s/pos.log", tu_tmpdir());
	/* The original's form: sipc-epmd PORT. */
	argv[0] = (char *)tu_bin("sipc-epmd");
	argv[1] = portarg;
	argv[2] = NULL;
	p = proc_spawn(argv, logf);
	for (i = 0; i < 300; i++) {
		if (tu_sh(30, out, sizeof(out), "%s --broker 127.0.0.1:%u "
		    "--timeout 200 ping", tu_bin("brokerctl"), port) == 0)
			break;
		sleep_ms(10);
	}
	ck_assert_int_lt(i, 300);
	proc_stop(p, 5000);
	ck_assert_int_eq(tu_file_count(logf, "stopped"), 1);

	/* --daemon returns once the broker accepts; the pidfile names it. */
	snprintf(pidfile, sizeof(pidfile), "%s/epmd.pid", tu_tmpdir());
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --listen "
	    "127.0.0.1:%u --daemon --pidfile %s", tu_bin("sipc-epmd"), port,
	    pidfile), 0);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --broker "
	    "127.0.0.1:%u ping", tu_bin("brokerctl"), port), 0);
	fp = fopen(pidfile, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fscanf(fp, "%ld", &pid), 1);
	fclose(fp);
	ck_assert_int_gt(pid, 1);
	kill((pid_t)pid, SIGTERM);
	for (i = 0; i < 500 && kill((pid_t)pid, 0) == 0; i++)
		sleep_ms(10);
	ck_assert_int_ne(kill((pid_t)pid, 0), 0);
	ck_assert_int_ne(access(pidfile, F_OK), 0);	/* removed */
}
END_TEST

START_TEST(test_sighup_reload)
{
	struct tu_broker b;
	char conf[300];
	FILE *fp;

	snprintf(conf, sizeof(conf), "%s/hup.conf", tu_tmpdir());
	fp = fopen(conf, "w");
	fprintf(fp, "log_level = info\n");
	fclose(fp);
	ck_assert_int_eq(tu_broker_start(&b, "--config", conf, NULL), 0);
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	ck_assert_int_eq(tu_file_count(b.log, "debug:"), 0);
	fp = fopen(conf, "w");
	fprintf(fp, "log_level = debug\n");
	fclose(fp);
	kill(b.pid, SIGHUP);
	tu_wait_file(b.log, "reloaded", 1, 3000);
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	ck_assert_int_gt(tu_file_count(b.log, "debug:"), 0);
	/* A broken file keeps the running settings. */
	fp = fopen(conf, "w");
	fprintf(fp, "log_level = loud\n");
	fclose(fp);
	kill(b.pid, SIGHUP);
	tu_wait_file(b.log, "keeping", 1, 3000);
	ck_assert_int_eq(tu_file_count(b.log, "keeping the running"), 1);
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	tu_broker_stop(&b);
}
END_TEST

/* The backlog the kernel shows for the broker's listener on port (ss:
 * Send-Q of a listening socket), or -1. */
static long
backlog_of(uint16_t port)
{
	char buf[512];

	if (tu_sh(10, buf, sizeof(buf), "ss -Hltn 'sport = :%u' | "
	    "awk '{ print $3 }'", port) != 0 || buf[0] == '\0')
		return -1;
	return strtol(buf, NULL, 10);
}

/* What the kernel makes of a backlog of n: at most net.core.somaxconn. */
static long
capped(long n)
{
	long max = 4096;
	FILE *fp;

	if ((fp = fopen("/proc/sys/net/core/somaxconn", "r")) != NULL) {
		if (fscanf(fp, "%ld", &max) != 1)
			max = 4096;
		fclose(fp);
	}
	return n < max ? n : max;
}

/* The backlog asked for is the one the listening socket keeps (libevent
 * set it back to 128 once), from the option, and after SIGHUP. */
START_TEST(test_listen_backlog)
{
	struct tu_broker b;
	char conf[300];
	FILE *fp;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	ck_assert_int_eq(backlog_of(b.port), capped(4096));
	tu_broker_stop(&b);

	snprintf(conf, sizeof(conf), "%s/backlog.conf", tu_tmpdir());
	fp = fopen(conf, "w");
	fprintf(fp, "listen_backlog = 1000\n");
	fclose(fp);
	ck_assert_int_eq(tu_broker_start(&b, "--config", conf, NULL), 0);
	ck_assert_int_eq(backlog_of(b.port), capped(1000));
	fp = fopen(conf, "w");
	fprintf(fp, "listen_backlog = 2000\n");
	fclose(fp);
	kill(b.pid, SIGHUP);
	ck_assert(tu_wait_file(b.log, "reloaded", 1, 3000));
	ck_assert_int_eq(backlog_of(b.port), capped(2000));
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	tu_broker_stop(&b);

	ck_assert_int_eq(tu_broker_start(&b, "--listen-backlog", "300",
	    NULL), 0);
	ck_assert_int_eq(backlog_of(b.port), capped(300));
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_valgrind_clean_shutdown)
{
	char portfile[300], logf[300], *argv[16];
	struct tu_broker b;
	int fd, w, i, st, port;

	if (getenv("SIPC_SANITIZE") && *getenv("SIPC_SANITIZE")) {
		/* ASan and valgrind do not mix; make check covers this. */
		fprintf(stderr, "sanitizer build: valgrind test skipped\n");
		return;
	}
	if (tu_sh(10, out, sizeof(out), "command -v valgrind") != 0) {
		fprintf(stderr, "valgrind not installed: scripts/install-deps.sh "
		    "installs it\n");
		ck_abort_msg("valgrind missing");
	}
	snprintf(portfile, sizeof(portfile), "%s/vg.port", tu_tmpdir());
	snprintf(logf, sizeof(logf), "%s/vg.log", tu_tmpdir());
	argv[0] = "/usr/bin/valgrind";
	argv[1] = "--leak-check=full";
	argv[2] = "--show-leak-kinds=definite,indirect,possible";
	argv[3] = "--errors-for-leak-kinds=definite,indirect,possible";
	argv[4] = "--error-exitcode=99";
	argv[5] = (char *)tu_bin("sipc-epmd");
	argv[6] = "--listen";
	argv[7] = "127.0.0.1:0";
	argv[8] = "--port-file";
	argv[9] = portfile;
	argv[10] = NULL;
	memset(&b, 0, sizeof(b));
	b.pid = proc_spawn(argv, logf);
	port = port_file_wait(portfile, b.pid, 30000);
	ck_assert_int_gt(port, 0);
	b.port = (uint16_t)port;
	snprintf(b.addr, sizeof(b.addr), "127.0.0.1:%u", b.port);
	/* Some of everything: registrations, watches, a session left open
	 * at shutdown, and one cut off for garbage. */
	w = connect_hello(&b, 0);
	ck_assert_int_eq(watch(w, "vg"), 0);
	fd = connect_hello(&b, 0);
	for (i = 0; i < 50; i++)
		ck_assert_uint_ne(tu_register(fd, (uint32_t)i + 1, "vg",
		    (uint16_t)(9000 + i), 1), 0);
	ck_assert_int_eq(ctl(&b, "--json list"), 0);
	ck_assert_int_eq(ctl(&b, "--json show vg"), 0);
	ck_assert_int_eq(ctl(&b, "stats"), 0);
	{
		int g = connect_loopback(b.port);

		tu_send(g, "garbage garbage!", 16);
		tu_closed(g, 5000);
		close(g);
	}
	kill(b.pid, SIGTERM);
	st = proc_wait(b.pid, 30000);
	ck_assert_msg(st != -1, "broker under valgrind did not stop");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "valgrind found errors or leaks, see %s", logf);
	ck_assert_int_eq(tu_file_count(logf, "definitely lost"), 0);
	close(fd);
	close(w);
}
END_TEST

/* GET http://127.0.0.1:port/path into out, naming the server host in
 * the Host header; the HTTP status, or -1. */
static int
http_get_host(uint16_t port, const char *path, const char *host)
{
	char req[256];
	size_t n = 0;
	ssize_t r;
	int fd = connect_loopback(port), status = -1;

	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
	    path, host);
	tu_send(fd, req, strlen(req));
	while (n + 1 < sizeof(out) && (r = read(fd, out + n,
	    sizeof(out) - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
	sscanf(out, "HTTP/1.%*d %d", &status);
	return status;
}

/* A scraper that knows the broker by a name of its own. */
static int
http_get(uint16_t port, const char *path)
{
	return http_get_host(port, path, "x");
}

static uint64_t
metric(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	if ((p = strstr(text, key)) == NULL)
		return UINT64_MAX;
	return strtoull(p + strlen(key), NULL, 10);
}

START_TEST(test_metrics)
{
	static char m[1 << 16];
	char spec[32];
	struct tu_broker b;
	uint16_t mport = free_port();
	uint64_t errs = 0, v;
	const char *p;
	int a, w, i;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", mport);
	ck_assert_int_eq(tu_broker_start(&b, "--metrics", spec, NULL), 0);
	ck_assert_int_ge(tu_file_count(b.log, "metrics on"), 1);
	/* Some of everything: registrations, a watch, errors. */
	a = connect_hello(&b, 0);
	for (i = 0; i < 25; i++)
		ck_assert_uint_ne(tu_register(a, (uint32_t)i + 1, i < 20 ?
		    "m1" : "m2", (uint16_t)(8000 + i), 1), 0);
	w = connect_hello(&b, 0);
	ck_assert_int_eq(watch(w, "m1"), 20);
	{
		struct wbuf wb;

		wbuf_init(&wb, 4096);
		wire_enc_u64(&wb, WIRE_UNREGISTER, 99, 12345);
		tu_send_wbuf(a, &wb);
		wbuf_free(&wb);
		ck_assert_int_eq(expect_error(a, 99), WIRE_ERR_NOT_FOUND);
	}
	ck_assert_int_eq(http_get(mport, "/metrics"), 200);
	ck_assert_ptr_nonnull(strstr(out, "text/plain; version=0.0.4"));
	snprintf(m, sizeof(m), "%s", out);
	/* The same numbers as STATS (whose own session adds one). */
	ck_assert_int_eq(ctl(&b, "--json stats"), 0);
	ck_assert_uint_eq(metric(m, "sipc_epmd_registrations"),
	    stat_value(&b, "registrations"));
	ck_assert_uint_eq(metric(m, "sipc_epmd_registrations"), 25);
	ck_assert_uint_eq(metric(m, "sipc_epmd_handles"), 2);
	ck_assert_uint_eq(metric(m, "sipc_epmd_watches"), 1);
	ck_assert_uint_eq(metric(m, "sipc_epmd_sessions"), 2);
	ck_assert_uint_eq(stat_value(&b, "sessions"), 3);
	ck_assert_uint_eq(metric(m, "sipc_epmd_heartbeat_expiries_total"),
	    stat_value(&b, "heartbeat_expiries"));
	ck_assert_uint_eq(metric(m, "sipc_epmd_tls_handshake_failures_total"),
	    0);
	v = metric(m, "sipc_epmd_frames_received_total");
	ck_assert_uint_ge(v, 25 + 2 + 1 + 1);	/* REGISTER, HELLO, WATCH, UNREG. */
	ck_assert_uint_le(v, stat_value(&b, "frames_in"));
	ck_assert_uint_le(metric(m, "sipc_epmd_bytes_sent_total"),
	    stat_value(&b, "bytes_out"));
	for (p = m; (p = strstr(p, "sipc_epmd_errors_sent_total{code=")); p++)
		errs += strtoull(strchr(p, '}') + 2, NULL, 10);
	ck_assert_uint_eq(errs, stat_value(&b, "errors_sent"));
	ck_assert_ptr_nonnull(strstr(m, "errors_sent_total{code=\"NOT_FOUND\"} "
	    "1\n"));
	ck_assert_ptr_nonnull(strstr(m, "# TYPE sipc_epmd_frames_sent_total "
	    "counter"));
	/* The status page and /v1 (test_monitor.py tests them); anything
	 * else: 404. */
	ck_assert_int_eq(http_get_host(mport, "/", "127.0.0.1"), 200);
	ck_assert_int_eq(http_get_host(mport, "/v1/varz", "127.0.0.1:1"), 200);
	/* ... which show handles: not to a page under another name. */
	ck_assert_int_eq(http_get(mport, "/v1/varz"), 403);
	ck_assert_int_eq(http_get(mport, "/nothing"), 404);
	ck_assert_int_eq(http_get(mport, "/v1"), 404);
	close(a);
	close(w);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_summary_line)
{
	struct tu_broker b;

	ck_assert_int_eq(tu_broker_start(&b, "--summary-ms", "200", NULL), 0);
	ck_assert_int_eq(ctl(&b, "ping"), 0);
	tu_wait_file(b.log, "summary:", 2, 2000);
	ck_assert_int_ge(tu_file_count(b.log, "summary: 0 sessions, 0 "
	    "registrations"), 1);
	ck_assert_int_ge(tu_file_count(b.log, "1 sessions opened"), 1);
	tu_broker_stop(&b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = tcase_create("broker");

	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_ping_and_port_file);
	tcase_add_test(tc, test_thousand_registrations);
	tcase_add_test(tc, test_list_pages);
	tcase_add_test(tc, test_sigkill_client);
	tcase_add_test(tc, test_heartbeat_expiry);
	tcase_add_test(tc, test_garbage_cut_off);
	tcase_add_test(tc, test_bad_requests_keep_session);
	tcase_add_test(tc, test_version_mismatch);
	tcase_add_test(tc, test_handshake_timeout);
	tcase_add_test(tc, test_ownership);
	tcase_add_test(tc, test_brokerctl_watch);
	tcase_add_test(tc, test_config);
	tcase_add_test(tc, test_positional_port_and_daemon);
	tcase_add_test(tc, test_sighup_reload);
	tcase_add_test(tc, test_listen_backlog);
	tcase_add_test(tc, test_valgrind_clean_shutdown);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_summary_line);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
