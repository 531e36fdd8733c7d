/*
 * test_security.c - TLS, password mode, protected mode, compression and
 * hardening, against real processes: handshakes that succeed, and every
 * way one fails (wrong password, wrong CA, expired certificate, plain text
 * to a TLS port, TLS to a plain port), each within 2 s and with the right
 * words; zlib bombs; oversized and slow connections; per-peer limits;
 * dropping root.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static char out[1 << 20];
static char pki[300];

static void
setup(void)
{
	char cmd[600];

	snprintf(pki, sizeof(pki), "%s/pki", tu_tmpdir());
	snprintf(cmd, sizeof(cmd), "sh %s/tests/certs.sh %s",
	    getenv("SIPC_SRC") ? getenv("SIPC_SRC") : ".", pki);
	ck_assert_msg(tu_sh(60, NULL, 0, "%s", cmd) == 0, "certs.sh failed");
}

static const char *
pkifile(const char *name)
{
	static char path[4][400];
	static int slot;
	char *p = path[slot++ % 4];

	snprintf(p, 400, "%s/%s", pki, name);
	return p;
}

static const char *
write_password(const char *name, const char *pw)
{
	static char path[2][400];
	static int slot;
	char *p = path[slot++ % 2];
	FILE *fp;

	snprintf(p, 400, "%s/%s", tu_tmpdir(), name);
	fp = fopen(p, "w");
	fprintf(fp, "%s\n", pw);
	fclose(fp);
	return p;
}

/* brokerctl with extra flags; output (stdout and stderr) in out. */
static int
ctl(struct tu_broker *b, const char *flags, int64_t *ms)
{
	int64_t t0 = mono_ms();
	int rc = tu_sh(30, out, sizeof(out), "%s --broker %s --timeout 10000 "
	    "%s ping 2>&1", tu_bin("brokerctl"), b->addr, flags);

	if (ms)
		*ms = mono_ms() - t0;
	return rc;
}

/* ---- Broker sessions ----------------------------------------------------- */

START_TEST(test_tls_handshakes)
{
	struct tu_broker b, v;
	char flags[1200];
	int64_t ms;

	ck_assert_int_eq(tu_broker_start(&b, "--tls-cert", pkifile("server.pem"),
	    "--tls-key", pkifile("server.key"), NULL), 0);
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("ca.pem"));
	ck_assert_msg(ctl(&b, flags, NULL) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "sipc-epmd/"));

	/* A CA that did not sign the broker's certificate. */
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("other-ca.pem"));
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "authentication failed") &&
	    strstr(out, "unable to get local issuer certificate"), "%s", out);

	/* Plain text to the TLS port: told so, in plain text. */
	ck_assert_int_eq(ctl(&b, "", &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "requires TLS"), "%s", out);
	ck_assert_int_ge(tu_file_count(b.log, "plain-text client on a TLS "
	    "port"), 1);
	tu_broker_stop(&b);

	/* TLS to a plain port. */
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("ca.pem"));
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "does not speak TLS"), "%s", out);
	ck_assert_int_ge(tu_file_count(b.log, "a TLS client on this "
	    "plain-text port?"), 1);
	tu_broker_stop(&b);

	/* An expired certificate. */
	ck_assert_int_eq(tu_broker_start(&v, "--tls-cert",
	    pkifile("expired.pem"), "--tls-key", pkifile("expired.key"), NULL),
	    0);
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("ca.pem"));
	ck_assert_int_eq(ctl(&v, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "certificate has expired"), "%s", out);
	tu_broker_stop(&v);

	/* Client certificates required. */
	ck_assert_int_eq(tu_broker_start(&b, "--tls-cert", pkifile("server.pem"),
	    "--tls-key", pkifile("server.key"), "--tls-ca", pkifile("ca.pem"),
	    "--tls-verify-client", NULL), 0);
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("ca.pem"));
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	snprintf(flags, sizeof(flags), "--tls-ca %s --tls-cert %s --tls-key "
	    "%s", pkifile("ca.pem"), pkifile("client.pem"),
	    pkifile("client.key"));
	ck_assert_msg(ctl(&b, flags, NULL) == 0, "%s", out);
	ck_assert_int_ge(tu_file_count(b.log, "authentication failed"), 1);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_password_mode)
{
	const char *good = write_password("good", "correct horse");
	const char *bad = write_password("bad", "battery staple");
	struct tu_broker b;
	char flags[600];
	int64_t ms;

	ck_assert_int_eq(tu_broker_start(&b, "--password-file", good,
	    "--salt", "{0x01,0x02,0x03}", NULL), 0);
	snprintf(flags, sizeof(flags), "--password-file %s --salt 010203",
	    good);
	ck_assert_msg(ctl(&b, flags, NULL) == 0, "%s", out);
	/* $SIPC_PASSWORD works as well. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "SIPC_PASSWORD='correct "
	    "horse' %s --broker %s --salt 010203 ping 2>&1",
	    tu_bin("brokerctl"), b.addr), 0);
	/* Wrong password, wrong salt, none: fast, and said so on both
	 * sides. */
	snprintf(flags, sizeof(flags), "--password-file %s --salt 010203",
	    bad);
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "authentication failed"), "%s", out);
	ck_assert_ptr_null(strstr(out, "reset"));
	snprintf(flags, sizeof(flags), "--password-file %s --salt 0102", good);
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_msg(strstr(out, "authentication failed"), "%s", out);
	snprintf(flags, sizeof(flags), "--tls-ca %s", pkifile("ca.pem"));
	ck_assert_int_eq(ctl(&b, flags, &ms), 1);
	ck_assert_int_lt(ms, 2000);
	ck_assert_msg(strstr(out, "authentication failed"), "%s", out);
	ck_assert_int_ge(tu_file_count(b.log, "authentication failed"), 3);
	tu_broker_stop(&b);

	/* The library: SIPC_EAUTH at once, not after the timeout. */
	ck_assert_int_eq(tu_broker_start(&b, "--password-file", good, NULL),
	    0);
	{
		struct sipc_epm_opts o;
		sipc_epm *epm;
		int64_t t0 = mono_ms();

		sipc_epm_opts_init(&o);
		o.connect_timeout_ms = 10000;
		o.security.password = "battery staple";
		ck_assert_int_eq(sipc_epm_connect(b.addr, &o, &epm),
		    SIPC_EAUTH);
		ck_assert_int_lt(mono_ms() - t0, 2000);
		ck_assert_ptr_nonnull(strstr(sipc_errmsg(),
		    "authentication failed"));
		o.security.password = "correct horse";
		ck_assert_int_eq(sipc_epm_connect(b.addr, &o, &epm), 0);
		sipc_epm_close(epm);
	}
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_positional_password)
{
	const char *good = write_password("good", "s3cret");
	char flags[600];
	struct tu_broker b;

	/* The original's "sipc-epmd PORT PASSWORD SALT" (--listen of the
	 * test wins over the port). */
	ck_assert_int_eq(tu_broker_start(&b, "4456", "s3cret", "{0x0a,0x0b}",
	    NULL), 0);
	ck_assert_int_ge(tu_file_count(b.log, "shows in the process list"), 1);
	snprintf(flags, sizeof(flags), "--password-file %s --salt 0a0b", good);
	ck_assert_msg(ctl(&b, flags, NULL) == 0, "%s", out);
	tu_broker_stop(&b);
	/* Bad salts are refused with the expected forms. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --listen "
	    "127.0.0.1:0 --password-file %s --salt xyz 2>&1",
	    tu_bin("sipc-epmd"), good), 1);
	ck_assert_ptr_nonnull(strstr(out, "{0x01,0x02,0x03}"));
}
END_TEST

START_TEST(test_protected_mode)
{
	/* A network namespace of our own: 0.0.0.0 there reaches nobody. */
	if (geteuid() != 0 || tu_sh(10, NULL, 0, "unshare --net true") != 0) {
		fprintf(stderr, "test_protected_mode: needs root and unshare; "
		    "skipped\n");
		return;
	}
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "unshare --net sh -c "
	    "'ip link set lo up 2>/dev/null; %s --listen 0.0.0.0:0 2>&1'",
	    tu_bin("sipc-epmd")), 1);
	ck_assert_msg(strstr(out, "refusing to listen on 0.0.0.0") &&
	    strstr(out, "--insecure"), "%s", out);
	/* Loopback needs nothing; TLS or --insecure allow the rest. */
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "unshare --net sh -c "
	    "'ip link set lo up 2>/dev/null; %s --listen 0.0.0.0:0 --insecure "
	    "--port-file %s/pp 2>/dev/null & p=$!; "
	    "for i in 1 2 3 4 5 6 7 8 9 10; do "
	    "[ -s %s/pp ] && break; sleep 0.2; done; "
	    "%s --broker 127.0.0.1:$(cat %s/pp) ping; r=$?; kill $p; wait $p; "
	    "exit $r'", tu_bin("sipc-epmd"), tu_tmpdir(), tu_tmpdir(),
	    tu_bin("brokerctl"), tu_tmpdir()), 0);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "unshare --net sh -c "
	    "'ip link set lo up 2>/dev/null; %s --listen 0.0.0.0:0 "
	    "--tls-cert %s --tls-key %s --port-file %s/pt 2>/dev/null & p=$!; "
	    "for i in 1 2 3 4 5 6 7 8 9 10; do [ -s %s/pt ] && break; "
	    "sleep 0.2; done; kill $p; wait $p'", tu_bin("sipc-epmd"),
	    pkifile("server.pem"), pkifile("server.key"), tu_tmpdir(),
	    tu_tmpdir()), 0);
}
END_TEST

START_TEST(test_drop_root)
{
	struct tu_broker b;
	char path[64], line[256];
	unsigned uid = 0;
	FILE *fp;
	int i;

	if (geteuid() != 0) {
		fprintf(stderr, "test_drop_root: not root; skipped\n");
		return;
	}
	ck_assert_int_eq(tu_broker_start(&b, "--user", "nobody", NULL), 0);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)b.pid);
	/* The port file, which tu_broker_start waits for, is written while
	 * the broker is still root (it may live in a root-only directory):
	 * the switch follows it. */
	for (i = 0; i < 200 && uid != 65534; i++) {
		if (i)
			sleep_ms(10);
		ck_assert_ptr_nonnull(fp = fopen(path, "r"));
		while (fgets(line, sizeof(line), fp))
			if (sscanf(line, "Uid: %u", &uid) == 1)
				break;
		fclose(fp);
	}
	ck_assert_uint_eq(uid, 65534);
	ck_assert_int_eq(ctl(&b, "", NULL), 0);
	tu_broker_stop(&b);
	ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --listen 127.0.0.1:0 "
	    "--user no-such-user 2>&1", tu_bin("sipc-epmd")), 1);
	ck_assert_ptr_nonnull(strstr(out, "no user 'no-such-user'"));
}
END_TEST

/* ---- Compression --------------------------------------------------------- */

/* A HELLO offering zlib; 0 or -1. */
static int
hello_zlib(int fd)
{
	struct wire_hello m;
	struct wire_header h;
	struct wire_hello_ok ok;
	uint8_t buf[4096];
	struct wbuf w;

	memset(&m, 0, sizeof(m));
	m.min_version = m.max_version = 1;
	m.features = WIRE_FEAT_ZLIB;
	wbuf_init(&w, 4096);
	wire_enc_hello(&w, 1, &m);
	tu_send_wbuf(fd, &w);
	wbuf_free(&w);
	if (tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf), 5000) != 0 ||
	    wire_dec_ok_hello(buf, h.len, &ok) != 0)
		return -1;
	return ok.features & WIRE_FEAT_ZLIB ? 0 : -1;
}

/* Sends a compressed frame of type: the hlen bytes of head as they are,
 * then `raw` bytes of zeros, compressed. */
static void
send_zeros_compressed(int fd, uint8_t type, uint32_t reqid,
    const uint8_t *head, size_t hlen, size_t raw)
{
	uint8_t *zeros = calloc(1, raw), *z;
	uLongf zl = compressBound((uLong)raw);
	uint8_t hdr[SIPC_HEADER_SIZE];
	struct wire_header h = { 1, type, WIRE_F_COMPRESSED, reqid, 0 };

	z = malloc(zl);
	ck_assert_int_eq(compress2(z, &zl, zeros, (uLong)raw, 9), Z_OK);
	h.len = (uint32_t)(hlen + zl);
	wire_header_encode(hdr, &h);
	tu_send(fd, hdr, sizeof(hdr));
	tu_send(fd, head, hlen);
	tu_send(fd, z, zl);
	free(zeros);
	free(z);
}

START_TEST(test_zlib_bomb_broker)
{
	struct tu_broker b;
	uint8_t buf[4096];
	struct wire_header h;
	struct wire_error e;
	long before, after;
	int fd;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	before = proc_rss_kb(b.pid);
	/* 100 MiB of zeros in about 100 KiB: refused at the 1 MiB limit. */
	fd = connect_loopback(b.port);
	ck_assert_int_eq(hello_zlib(fd), 0);
	send_zeros_compressed(fd, WIRE_REGISTER, 5, NULL, 0,
	    100 * 1024 * 1024);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, WIRE_ERR_COMPRESSION);
	ck_assert_int_eq(tu_closed(fd, 2000), 1);
	close(fd);
	after = proc_rss_kb(b.pid);
	ck_assert_msg(after - before < 4096, "broker grew %ld kB", after -
	    before);
	/* Compressed without having negotiated it: a framing error. */
	fd = connect_loopback(b.port);
	ck_assert_int_eq(tu_hello(fd, 0), 0);
	send_zeros_compressed(fd, WIRE_STATS, 5, NULL, 0, 10);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, WIRE_ERR_BAD_FRAME);
	close(fd);
	/* A compressed request that is fine is served. */
	fd = connect_loopback(b.port);
	ck_assert_int_eq(hello_zlib(fd), 0);
	send_zeros_compressed(fd, WIRE_STATS, 5, NULL, 0, 0);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf), 5000),
	    0);
	close(fd);
	/* Large answers come compressed (2000 handles in LIST). */
	{
		char handle[64];
		int i, r = connect_loopback(b.port);

		ck_assert_int_eq(tu_hello(r, 0), 0);
		for (i = 0; i < 2000; i++) {
			snprintf(handle, sizeof(handle), "compressible-handle-"
			    "name-%05d", i);
			ck_assert_uint_ne(tu_register(r, (uint32_t)i + 1,
			    handle, 7000, 1), 0);
		}
		ck_assert_int_eq(tu_sh(30, out, sizeof(out), "%s --broker %s "
		    "--json list", tu_bin("brokerctl"), b.addr), 0);
		ck_assert_int_eq(tu_count(out, "compressible-handle-name-"),
		    2000);
		close(r);
	}
	tu_broker_stop(&b);
}
END_TEST

struct got {
	pthread_mutex_t	 mu;
	long		 n;
	size_t		 last_len;
	unsigned char	*last;
};

static void
got_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	const void *data = m->data;
	size_t len = m->len;
	struct got *g = arg;

	(void)rx;
	pthread_mutex_lock(&g->mu);
	g->n++;
	free(g->last);
	g->last = malloc(len + 1);
	memcpy(g->last, data, len);
	g->last_len = len;
	pthread_mutex_unlock(&g->mu);
}

struct failed {
	atomic_int	error;
	atomic_ullong	lost;
};

static void
on_failed(sipc_sender *tx, int error, const char *endpoint, uint64_t lost,
    void *arg)
{
	struct failed *f = arg;

	(void)tx;
	(void)endpoint;
	atomic_store(&f->error, error);
	atomic_fetch_add(&f->lost, lost);
}

/*
 * One receiver with rsec, one sender with ssec (and compression if asked)
 * on a broker: returns 0 when the message arrived intact, else the error
 * the sender reported.
 */
static int
data_pair(struct tu_broker *b, const struct sipc_security *rsec,
    const struct sipc_security *ssec, int compress, size_t size)
{
	struct sipc_receiver_opts ro;
	struct sipc_sender_opts so;
	struct failed f = { 0, 0 };
	struct got g;
	sipc_receiver *rx;
	sipc_sender *tx;
	sipc_epm *epm;
	unsigned char *msg = malloc(size);
	size_t i;
	int rc, ok;

	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.mu, NULL);
	for (i = 0; i < size; i++)
		msg[i] = (unsigned char)("sipc compresses text well "[i % 26]);
	ck_assert_int_eq(sipc_epm_connect(b->addr, NULL, &epm), 0);
	sipc_receiver_opts_init(&ro);
	ro.listen_address = "127.0.0.1";
	ro.on_message = got_message;
	ro.arg = &g;
	ro.security = *rsec;
	ck_assert_msg(sipc_receiver_new("sec", epm, &ro, &rx) == 0, "%s",
	    sipc_errmsg());
	sipc_sender_opts_init(&so);
	so.security = *ssec;
	so.compress = compress;
	so.on_send_failed = on_failed;
	so.arg = &f;
	ck_assert_msg(sipc_sender_new("sec", epm, &so, &tx) == 0, "%s",
	    sipc_errmsg());
	rc = sipc_sender_wait_receivers(tx, 1, 1500);
	if (rc == 0) {
		ck_assert_int_eq(sipc_send(tx, msg, size), 0);
		ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	} else {
		/* Never connected: a message now must not reach it. */
		ck_assert_int_eq(sipc_send(tx, msg, size), 0);
		sleep_ms(300);
	}
	pthread_mutex_lock(&g.mu);
	ok = g.n == 1 && g.last_len == size && memcmp(g.last, msg, size) == 0;
	if (rc != 0)
		ck_assert_int_eq(g.n, 0);
	pthread_mutex_unlock(&g.mu);
	sipc_sender_close(tx);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	free(g.last);
	free(msg);
	return ok ? 0 : atomic_load(&f.error) ? atomic_load(&f.error) : -1;
}

START_TEST(test_data_connections)
{
	struct sipc_security none, rtls, stls, swrongca, rpw, spw, sbad;
	struct tu_broker b;

	memset(&none, 0, sizeof(none));
	rtls = stls = swrongca = rpw = spw = sbad = none;
	rtls.tls_cert = pkifile("server.pem");
	rtls.tls_key = pkifile("server.key");
	stls.tls_ca = pkifile("ca.pem");
	swrongca.tls_ca = pkifile("other-ca.pem");
	rpw.password = spw.password = "data password";
	sbad.password = "not it";
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	/* Succeeds: TLS, password, with and without compression. */
	ck_assert_int_eq(data_pair(&b, &rtls, &stls, 0, 100), 0);
	ck_assert_int_eq(data_pair(&b, &rpw, &spw, 0, 100), 0);
	ck_assert_int_eq(data_pair(&b, &rpw, &spw, 1, 1 << 20), 0);
	ck_assert_int_eq(data_pair(&b, &none, &none, 1, 5000), 0);
	/* Fails, and nothing is delivered: */
	ck_assert_int_eq(data_pair(&b, &rtls, &none, 0, 10), SIPC_EAUTH);
	ck_assert_int_eq(data_pair(&b, &rpw, &none, 0, 10), SIPC_EAUTH);
	ck_assert_int_eq(data_pair(&b, &rpw, &sbad, 0, 10), SIPC_EAUTH);
	ck_assert_int_eq(data_pair(&b, &rtls, &swrongca, 0, 10), SIPC_EAUTH);
	ck_assert_int_eq(data_pair(&b, &none, &stls, 0, 10), SIPC_ETLS);
	tu_broker_stop(&b);
}
END_TEST

/* A receiver facing a zlib bomb: ERROR COMPRESSION, closed, no growth. */
START_TEST(test_zlib_bomb_receiver)
{
	struct sipc_receiver_opts ro;
	struct wire_dhello d;
	struct wire_header h;
	struct wire_error e;
	struct tu_broker b;
	uint8_t buf[4096], seq[8];
	sipc_receiver *rx;
	sipc_epm *epm;
	char ep[160];
	struct wbuf w;
	long before, after;
	int fd;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	ck_assert_int_eq(sipc_epm_connect(b.addr, NULL, &epm), 0);
	sipc_receiver_opts_init(&ro);
	ro.listen_address = "127.0.0.1";
	ro.max_message = 1024 * 1024;
	ck_assert_int_eq(sipc_receiver_new("bomb", epm, &ro, &rx), 0);
	ck_assert_int_eq(sipc_receiver_endpoint(rx, ep, sizeof(ep)), 0);
	fd = connect_loopback((uint16_t)atoi(strrchr(ep, ':') + 1));
	memset(&d, 0, sizeof(d));
	d.min_version = d.max_version = 1;
	d.features = WIRE_FEAT_ZLIB;
	d.sender_id = 7;
	d.first_seq = 1;
	d.heartbeat_ms = 5000;
	d.ack_bytes = 65536;
	d.handle.ptr = "bomb";
	d.handle.len = 4;
	wbuf_init(&w, 4096);
	wire_enc_dhello(&w, 1, &d);
	tu_send_wbuf(fd, &w);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf), 5000),
	    0);
	before = proc_rss_kb(getpid());
	/* seq, then a body of 200 MiB of zeros, compressed. */
	wire_be64(seq, 1);
	send_zeros_compressed(fd, WIRE_DATA, 0, seq, sizeof(seq),
	    200u * 1024 * 1024);
	ck_assert_int_eq(tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, WIRE_ERR_COMPRESSION);
	ck_assert_int_eq(tu_closed(fd, 2000), 1);
	after = proc_rss_kb(getpid());
	/* At most the 1 MiB limit, plus slack.  (A sanitizer's quarantine
	 * keeps freed memory: RSS says nothing there.) */
	if (!getenv("SIPC_SANITIZE") || !*getenv("SIPC_SANITIZE"))
		ck_assert_msg(after - before < 4096, "grew %ld kB",
		    after - before);
	close(fd);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	tu_broker_stop(&b);
}
END_TEST

/* ---- Hardening ----------------------------------------------------------- */

START_TEST(test_oversized_before_hello)
{
	struct tu_broker b;
	uint8_t hdr[SIPC_HEADER_SIZE], body[2000];
	struct wire_header h = { 1, WIRE_HELLO, 0, 1, 0 };
	long before, after;
	int fds[100], i, closed = 0;

	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	before = proc_rss_kb(b.pid);
	/* 100 connections claiming 4 GiB frames: each cut off at once. */
	h.len = 0xffff0000u;
	wire_header_encode(hdr, &h);
	for (i = 0; i < 100; i++) {
		fds[i] = connect_loopback(b.port);
		tu_send(fds[i], hdr, sizeof(hdr));
	}
	for (i = 0; i < 100; i++) {
		closed += tu_closed(fds[i], 2000);
		close(fds[i]);
	}
	ck_assert_int_eq(closed, 100);
	/* 100 connections each holding a HELLO of the largest size allowed
	 * before HELLO, half sent, kept open. */
	h.len = SIPC_HELLO_FRAME_MAX;
	wire_header_encode(hdr, &h);
	memset(body, 'x', sizeof(body));
	for (i = 0; i < 100; i++) {
		fds[i] = connect_loopback(b.port);
		tu_send(fds[i], hdr, sizeof(hdr));
		tu_send(fds[i], body, sizeof(body));
	}
	sleep_ms(300);
	after = proc_rss_kb(b.pid);
	ck_assert_msg(after - before < 4096, "broker grew %ld kB with 100 "
	    "connections", after - before);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "%s --broker %s ping",
	    tu_bin("brokerctl"), b.addr), 0);
	for (i = 0; i < 100; i++)
		close(fds[i]);
	tu_broker_stop(&b);
}
END_TEST

START_TEST(test_slowloris)
{
	struct tu_broker b, t;
	int fds[50], i, closed = 0;
	int64_t t0;

	ck_assert_int_eq(tu_broker_start(&b, "--handshake-timeout-ms", "500",
	    NULL), 0);
	t0 = mono_ms();
	for (i = 0; i < 50; i++) {
		fds[i] = connect_loopback(b.port);
		/* A byte of a header, then nothing. */
		tu_send(fds[i], "S", 1);
	}
	for (i = 0; i < 50; i++) {
		closed += tu_closed(fds[i], 3000);
		close(fds[i]);
	}
	ck_assert_int_eq(closed, 50);
	ck_assert_int_lt(mono_ms() - t0, 2500);
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "%s --broker %s --json "
	    "stats", tu_bin("brokerctl"), b.addr), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"handshake_timeouts\":50"));
	tu_broker_stop(&b);
	/* On a TLS port, a connection that never starts TLS is closed too. */
	ck_assert_int_eq(tu_broker_start(&t, "--handshake-timeout-ms", "500",
	    "--tls-cert", pkifile("server.pem"), "--tls-key",
	    pkifile("server.key"), NULL), 0);
	fds[0] = connect_loopback(t.port);
	tu_send(fds[0], "\x16\x03", 2);	/* a TLS record, cut short */
	ck_assert_int_eq(tu_closed(fds[0], 3000), 1);
	close(fds[0]);
	tu_broker_stop(&t);
}
END_TEST

START_TEST(test_sessions_per_peer)
{
	struct tu_broker b;
	uint8_t buf[4096];
	struct wire_header h;
	struct wire_error e;
	int fds[4], i;

	ck_assert_int_eq(tu_broker_start(&b, "--max-sessions-per-peer", "3",
	    NULL), 0);
	for (i = 0; i < 3; i++) {
		fds[i] = connect_loopback(b.port);
		ck_assert_int_eq(tu_hello(fds[i], 0), 0);
	}
	fds[3] = connect_loopback(b.port);
	ck_assert_int_eq(tu_recv_type(fds[3], WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, WIRE_ERR_BUSY);
	ck_assert_int_eq(tu_closed(fds[3], 2000), 1);
	close(fds[3]);
	/* One goes, another may come. */
	close(fds[0]);
	sleep_ms(200);
	fds[0] = connect_loopback(b.port);
	ck_assert_int_eq(tu_hello(fds[0], 0), 0);
	for (i = 0; i < 3; i++)
		close(fds[i]);
	tu_broker_stop(&b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("security");
	TCase *tc = tcase_create("security");

	tcase_add_checked_fixture(tc, setup, tu_cleanup);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tls_handshakes);
	tcase_add_test(tc, test_password_mode);
	tcase_add_test(tc, test_positional_password);
	tcase_add_test(tc, test_protected_mode);
	tcase_add_test(tc, test_drop_root);
	tcase_add_test(tc, test_zlib_bomb_broker);
	tcase_add_test(tc, test_data_connections);
	tcase_add_test(tc, test_zlib_bomb_receiver);
	tcase_add_test(tc, test_oversized_before_hello);
	tcase_add_test(tc, test_slowloris);
	tcase_add_test(tc, test_sessions_per_peer);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
