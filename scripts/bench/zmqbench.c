/*
 * zmqbench.c - bench-zmq: the ZeroMQ side of `make bench`, written the
 * way the libzmq documentation suggests, with its default settings.
 *
 *   bench-zmq push    [--size B] [--count N]          PUSH -> PULL
 *   bench-zmq xpub    [--size B] [--count N] [--receivers N]
 *                                 XPUB (ZMQ_XPUB_NODROP) -> N x SUB
 *   bench-zmq reqrep  [--size B] [--count N]          REQ <-> REP
 *   bench-zmq dealer  [--size B] [--count N] [--receivers W]
 *                                 DEALER <-> ROUTER, W (64) requests
 *                                 outstanding at every moment
 *   bench-zmq connect [--size B] [--count N]
 *
 * Everything runs over tcp://127.0.0.1.  Receivers are child processes
 * (forked before any ZeroMQ context exists) that check the order of every
 * message and report over a pipe, exactly as sipc's receivers do; the
 * time runs from the first zmq_send() until the last receiver has the
 * last message.  connect: from zmq_socket() of a PUSH, zmq_connect() and
 * one zmq_send() until zmq_recv() returns it at a freshly bound PULL of
 * another context in this process.
 *
 * This program is the only one linked with libzmq; libsipc and sipc never
 * are.  Prints one JSON object; exit 0, 1 on errors or loss, 2 on bad
 * usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "common.h"

#define TIMEOUT_MS	30000
#define EP_LEN		256

static struct case_opts cfg;

static void
zset(void *s, int opt, int v, const char *name)
{
	if (zmq_setsockopt(s, opt, &v, sizeof(v)) == -1)
		fatal("zmq_setsockopt %s: %s", name, zmq_strerror(errno));
}

/* Binds s to an ephemeral loopback port; the endpoint into ep. */
static void
zbind(void *s, char ep[EP_LEN])
{
	size_t len = EP_LEN;

	if (zmq_bind(s, "tcp://127.0.0.1:*") == -1)
		fatal("zmq_bind: %s", zmq_strerror(errno));
	memset(ep, 0, EP_LEN);
	if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len) == -1)
		fatal("ZMQ_LAST_ENDPOINT: %s", zmq_strerror(errno));
	ep[EP_LEN - 1] = '\0';
}

static void
zsend(void *s, const void *buf, size_t len, const char *what)
{
	int rc;

	while ((rc = zmq_send(s, buf, len, 0)) == -1 && errno == EINTR)
		;
	if (rc == -1)
		fatal("zmq_send %s: %s", what, zmq_strerror(errno));
}

/* Receives one message into buf (cap bytes); its size (may be > cap:
 * truncated). */
static size_t
zrecv(void *s, void *buf, size_t cap, const char *what)
{
	int rc;

	while ((rc = zmq_recv(s, buf, cap, 0)) == -1 && errno == EINTR)
		;
	if (rc == -1)
		fatal("zmq_recv %s: %s", what, zmq_strerror(errno));
	return (size_t)rc;
}

static void
zclose(void *s)
{
	zset(s, ZMQ_LINGER, 1000, "ZMQ_LINGER");
	zmq_close(s);
}

/* ---- push and xpub: streams to receiver processes ------------------------ */

struct rx_kid {
	int	ep;	/* parent -> child: the endpoint to connect to */
	int	rep;	/* child -> parent: READY, then the report */
	int	sub;	/* SUB rather than PULL */
};

static int
stream_receiver(void *arg)
{
	struct rx_kid *k = arg;
	struct rx_check c;
	char ep[EP_LEN];
	uint8_t *buf;
	size_t cap = (size_t)cfg.size > CTL_LEN ? (size_t)cfg.size : CTL_LEN,
	    n;
	void *ctx, *s;
	int kind;

	memset(&c, 0, sizeof(c));
	if (read_full(k->ep, ep, sizeof(ep), TIMEOUT_MS) == -1)
		fatal_sys("receiver: endpoint from the sender");
	ep[EP_LEN - 1] = '\0';
	if ((buf = malloc(cap)) == NULL)
		fatal("out of memory");
	if ((ctx = zmq_ctx_new()) == NULL ||
	    (s = zmq_socket(ctx, k->sub ? ZMQ_SUB : ZMQ_PULL)) == NULL)
		fatal("zmq_socket: %s", zmq_strerror(errno));
	zset(s, ZMQ_RCVTIMEO, TIMEOUT_MS, "ZMQ_RCVTIMEO");
	if (k->sub && zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) == -1)
		fatal("ZMQ_SUBSCRIBE: %s", zmq_strerror(errno));
	if (zmq_connect(s, ep) == -1)
		fatal("zmq_connect %s: %s", ep, zmq_strerror(errno));
	for (;;) {
		n = zrecv(s, buf, cap, "receiver");
		kind = rx_check_msg(&c, buf, n > cap ? 0 : n);
		if (kind == K_BEGIN && write_full(k->rep, "Y", 1) == -1)
			fatal_sys("receiver: report pipe");
		if (kind == K_END)
			break;
	}
	if (write_full(k->rep, &c.r, sizeof(c.r)) == -1)
		fatal_sys("receiver: report pipe");
	zclose(s);
	zmq_ctx_term(ctx);
	free(buf);
	return 0;
}

static int
run_stream(int xpub)
{
	struct rx_kid k[KIDS_MAX];
	struct rx_total tot;
	int epw[KIDS_MAX], repr[KIDS_MAX], p[2], q[2], i, n, rc;
	char ep[EP_LEN], y;
	uint8_t *msg, ctl[CTL_LEN], sub[64];
	int64_t t0, cpu0;
	size_t len;
	long m;
	void *ctx, *s;

	n = xpub ? (int)cfg.receivers : 1;
	for (i = 0; i < n; i++) {
		if (pipe2(p, O_CLOEXEC) == -1 || pipe2(q, O_CLOEXEC) == -1)
			fatal_sys("pipe");
		k[i].ep = p[0];
		k[i].rep = q[1];
		k[i].sub = xpub;
		kid_start(stream_receiver, &k[i]);
		close(p[0]);
		close(q[1]);
		epw[i] = p[1];
		repr[i] = q[0];
	}
	if ((ctx = zmq_ctx_new()) == NULL ||
	    (s = zmq_socket(ctx, xpub ? ZMQ_XPUB : ZMQ_PUSH)) == NULL)
		fatal("zmq_socket: %s", zmq_strerror(errno));
	zset(s, ZMQ_SNDTIMEO, TIMEOUT_MS, "ZMQ_SNDTIMEO");
	zset(s, ZMQ_RCVTIMEO, TIMEOUT_MS, "ZMQ_RCVTIMEO");
	if (xpub) {
		/* Block at the high-water mark instead of dropping, and
		 * hand up every subscription so we can count them. */
		zset(s, ZMQ_XPUB_NODROP, 1, "ZMQ_XPUB_NODROP");
		zset(s, ZMQ_XPUB_VERBOSE, 1, "ZMQ_XPUB_VERBOSE");
	}
	zbind(s, ep);
	for (i = 0; i < n; i++) {
		if (write_full(epw[i], ep, sizeof(ep)) == -1)
			fatal_sys("endpoint to receiver %d", i);
		close(epw[i]);
	}
	/* A SUB gets what is published after its subscription arrived. */
	for (i = 0; xpub && i < n; i++) {
		len = zrecv(s, sub, sizeof(sub), "subscription");
		if (len < 1 || sub[0] != 1)
			fatal("unexpected message on the XPUB socket");
	}
	bm_init(ctl, sizeof(ctl), K_BEGIN);
	put64(ctl + F_COUNT, (uint64_t)cfg.count);
	put64(ctl + F_SIZE, (uint64_t)cfg.size);
	zsend(s, ctl, sizeof(ctl), "BEGIN");
	for (i = 0; i < n; i++)
		if (read_full(repr[i], &y, 1, TIMEOUT_MS) == -1 || y != 'Y')
			fatal_sys("receiver %d did not start", i);
	if ((msg = malloc((size_t)cfg.size)) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_DATA);

	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (m = 0; m < cfg.count; m++) {
		put64(msg + 8, (uint64_t)m);
		zsend(s, msg, (size_t)cfg.size, "data");
	}
	bm_init(ctl, sizeof(ctl), K_END);
	put64(ctl + F_COUNT, (uint64_t)cfg.count);
	zsend(s, ctl, sizeof(ctl), "END");
	rx_collect(repr, n, t0, TIMEOUT_MS, &tot);
	cpu0 = cpu_self_ns() - cpu0;
	zclose(s);
	zmq_ctx_term(ctx);
	if (kids_reap(5000))
		fatal("a receiver failed");
	rc = json_stream(&cfg, xpub ? "xpub" : "push", "zmq", n, t0, &tot,
	    cpu0);
	free(msg);
	return rc;
}

/* ---- reqrep -------------------------------------------------------------- */

struct rep_kid {
	int	ep;	/* child -> parent: endpoint, then CPU time */
};

/*
 * The echo child's side of reqrep and dealer: a socket of type bound to
 * a fresh endpoint, which goes to the parent over pipe ep.
 */
static void *
echo_bind(int type, int ep, void **ctx, const char *who)
{
	char name[EP_LEN];
	void *s;

	if ((*ctx = zmq_ctx_new()) == NULL ||
	    (s = zmq_socket(*ctx, type)) == NULL)
		fatal("zmq_socket: %s", zmq_strerror(errno));
	zset(s, ZMQ_RCVTIMEO, TIMEOUT_MS, "ZMQ_RCVTIMEO");
	zbind(s, name);
	if (write_full(ep, name, sizeof(name)) == -1)
		fatal_sys("%s: endpoint pipe", who);
	return s;
}

/* The echo child's last word: its CPU time, over the same pipe. */
static void
echo_report(int ep, int64_t cpu, void *ctx, void *s, const char *who)
{
	if (write_full(ep, &cpu, sizeof(cpu)) == -1)
		fatal_sys("%s: report pipe", who);
	zclose(s);
	zmq_ctx_term(ctx);
}

/*
 * The parent's side: starts child, and connects a socket of type to the
 * endpoint it tells.  *rp is the pipe its report comes on (echo_end()).
 */
static void *
echo_connect(int (*child)(void *), int type, void **ctx, int *rp,
    const char *who)
{
	struct rep_kid k;
	char ep[EP_LEN];
	int p[2];
	void *s;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal_sys("pipe");
	k.ep = p[1];
	kid_start(child, &k);
	close(p[1]);
	if (read_full(p[0], ep, sizeof(ep), TIMEOUT_MS) == -1)
		fatal_sys("endpoint of the %s process", who);
	ep[EP_LEN - 1] = '\0';
	if ((*ctx = zmq_ctx_new()) == NULL ||
	    (s = zmq_socket(*ctx, type)) == NULL)
		fatal("zmq_socket: %s", zmq_strerror(errno));
	zset(s, ZMQ_RCVTIMEO, TIMEOUT_MS, "ZMQ_RCVTIMEO");
	zset(s, ZMQ_SNDTIMEO, TIMEOUT_MS, "ZMQ_SNDTIMEO");
	if (zmq_connect(s, ep) == -1)
		fatal("zmq_connect %s: %s", ep, zmq_strerror(errno));
	*rp = p[0];
	return s;
}

/*
 * Ends the run: END out and back, then the child's CPU time (returned);
 * closes s, ctx and rp and reaps the child.  in holds cfg.size bytes.
 */
static int64_t
echo_end(void *ctx, void *s, int rp, uint8_t *in, const char *who)
{
	uint8_t end[CTL_LEN];
	int64_t cpu;

	bm_init(end, sizeof(end), K_END);
	zsend(s, end, sizeof(end), "END");
	zrecv(s, in, (size_t)cfg.size, "END");
	if (read_full(rp, &cpu, sizeof(cpu), TIMEOUT_MS) == -1)
		fatal_sys("report of the %s process", who);
	close(rp);
	zclose(s);
	zmq_ctx_term(ctx);
	if (kids_reap(5000))
		fatal("the %s process failed", who);
	return cpu;
}

static int
rep_child(void *arg)
{
	struct rep_kid *k = arg;
	uint8_t *buf;
	size_t cap = (size_t)cfg.size > CTL_LEN ? (size_t)cfg.size : CTL_LEN,
	    n;
	int64_t cpu0 = 0;
	int first = 1;
	void *ctx, *s;

	if ((buf = malloc(cap)) == NULL)
		fatal("out of memory");
	s = echo_bind(ZMQ_REP, k->ep, &ctx, "echo");
	for (;;) {
		n = zrecv(s, buf, cap, "echo");
		if (first) {
			cpu0 = cpu_self_ns();
			first = 0;
		}
		if (n > cap)
			fatal("echo: message of %zu bytes", n);
		zsend(s, buf, n, "echo");
		if (bm_kind(buf, n) == K_END)
			break;
	}
	echo_report(k->ep, cpu_self_ns() - cpu0, ctx, s, "echo");
	free(buf);
	return 0;
}

static int
run_reqrep(void)
{
	uint8_t *msg, *in;
	int64_t *samples, t, t0, cpu0, cpu_rx;
	long i, warm, total;
	int rp;
	void *ctx, *s;

	s = echo_connect(rep_child, ZMQ_REQ, &ctx, &rp, "echo");
	warm = warmup_count(cfg.count, 1000);
	total = warm + cfg.count;
	if ((msg = malloc((size_t)cfg.size)) == NULL ||
	    (in = malloc((size_t)cfg.size)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_PING);
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			t0 = mono_ns();
		}
		put64(msg + 8, (uint64_t)i);
		t = mono_ns();
		zsend(s, msg, (size_t)cfg.size, "request");
		if (zrecv(s, in, (size_t)cfg.size, "reply") !=
		    (size_t)cfg.size || memcmp(in, msg, (size_t)cfg.size))
			fatal("reply %ld is not the request", i);
		if (i >= warm)
			samples[i - warm] = mono_ns() - t;
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	cpu_rx = echo_end(ctx, s, rp, in, "echo");
	json_samples(&cfg, "reqrep", "zmq", t0, samples, cpu0 + cpu_rx, 1,
	    NULL);
	free(msg);
	free(in);
	free(samples);
	return 0;
}

/* ---- dealer: pipelined requests ----------------------------------------- */

/* The ROUTER: echoes every request to the DEALER it came from. */
static int
router_child(void *arg)
{
	struct rep_kid *k = arg;
	uint8_t id[256], *buf;
	size_t cap = (size_t)cfg.size > CTL_LEN ? (size_t)cfg.size : CTL_LEN,
	    n, idn;
	int64_t cpu0 = 0;
	int first = 1;
	void *ctx, *s;

	if ((buf = malloc(cap)) == NULL)
		fatal("out of memory");
	s = echo_bind(ZMQ_ROUTER, k->ep, &ctx, "router");
	for (;;) {
		idn = zrecv(s, id, sizeof(id), "router identity");
		n = zrecv(s, buf, cap, "router");
		if (first) {
			cpu0 = cpu_self_ns();
			first = 0;
		}
		if (idn > sizeof(id) || n > cap)
			fatal("router: frame too large");
		if (zmq_send(s, id, idn, ZMQ_SNDMORE) == -1)
			fatal("router: %s", zmq_strerror(errno));
		zsend(s, buf, n, "router");
		if (bm_kind(buf, n) == K_END)
			break;
	}
	echo_report(k->ep, cpu_self_ns() - cpu0, ctx, s, "router");
	free(buf);
	return 0;
}

static int
run_dealer(void)
{
	uint8_t *msg, *in;
	int64_t t0, cpu0, cpu_rx;
	long sent = 0, got = 0, bad = 0, window = cfg.receivers;
	int rp;
	void *ctx, *s;

	s = echo_connect(router_child, ZMQ_DEALER, &ctx, &rp, "router");
	if ((msg = malloc((size_t)cfg.size)) == NULL ||
	    (in = malloc((size_t)cfg.size)) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_PING);
	/* One round trip first: the connection is up when the clock
	 * starts. */
	zsend(s, msg, (size_t)cfg.size, "request");
	zrecv(s, in, (size_t)cfg.size, "reply");
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (; sent < window && sent < cfg.count; sent++) {
		put64(msg + 8, (uint64_t)sent);
		zsend(s, msg, (size_t)cfg.size, "request");
	}
	while (got < cfg.count) {
		if (zrecv(s, in, (size_t)cfg.size, "reply") !=
		    (size_t)cfg.size || memcmp(in + 16, msg + 16,
		    (size_t)cfg.size - 16))
			bad++;
		got++;
		if (sent < cfg.count) {
			put64(msg + 8, (uint64_t)sent++);
			zsend(s, msg, (size_t)cfg.size, "request");
		}
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	cpu_rx = echo_end(ctx, s, rp, in, "router");
	free(msg);
	free(in);
	return json_pipeline(&cfg, "dealer", "zmq", window, t0, cpu0 + cpu_rx,
	    bad);
}

/* ---- connect ------------------------------------------------------------- */

static int
run_connect(void)
{
	char ep[EP_LEN];
	uint8_t *msg, *in;
	int64_t *samples, t0, cpu0, wall0;
	long i, warm, total;
	void *ctx_rx, *ctx_tx, *pull, *push;

	/* Two contexts: two I/O threads, as two processes have. */
	if ((ctx_rx = zmq_ctx_new()) == NULL ||
	    (ctx_tx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new: %s", zmq_strerror(errno));
	warm = warmup_count(cfg.count, 100);
	total = warm + cfg.count;
	if ((msg = malloc((size_t)cfg.size)) == NULL ||
	    (in = malloc((size_t)cfg.size)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_DATA);
	cpu0 = cpu_self_ns();
	wall0 = mono_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			wall0 = mono_ns();
		}
		if ((pull = zmq_socket(ctx_rx, ZMQ_PULL)) == NULL)
			fatal("zmq_socket: %s", zmq_strerror(errno));
		zset(pull, ZMQ_RCVTIMEO, TIMEOUT_MS, "ZMQ_RCVTIMEO");
		zbind(pull, ep);
		put64(msg + 8, (uint64_t)i);
		t0 = mono_ns();
		if ((push = zmq_socket(ctx_tx, ZMQ_PUSH)) == NULL)
			fatal("zmq_socket: %s", zmq_strerror(errno));
		if (zmq_connect(push, ep) == -1)
			fatal("zmq_connect %s: %s", ep, zmq_strerror(errno));
		zsend(push, msg, (size_t)cfg.size, "first message");
		if (zrecv(pull, in, (size_t)cfg.size, "first message") !=
		    (size_t)cfg.size || memcmp(in, msg, (size_t)cfg.size))
			fatal("message %ld damaged", i);
		if (i >= warm)
			samples[i - warm] = mono_ns() - t0;
		zclose(push);
		zclose(pull);
	}
	wall0 = mono_ns() - wall0;
	cpu0 = cpu_self_ns() - cpu0;
	zmq_ctx_term(ctx_tx);
	zmq_ctx_term(ctx_rx);
	json_samples(&cfg, "connect", "zmq", wall0, samples, cpu0, 0,
	    "from zmq_socket(PUSH) to zmq_recv() of the first message at a "
	    "fresh PULL");
	free(msg);
	free(in);
	free(samples);
	return 0;
}

int
main(int argc, char **argv)
{
	prog = "bench-zmq";
	signal(SIGPIPE, SIG_IGN);
	cfg.size = 64;
	cfg.count = 100000;
	cfg.receivers = 8;
	case_opts_parse(argc, argv, &cfg, 0, "usage: bench-zmq "
	    "push|xpub|reqrep|dealer|connect [--size B] [--count N] "
	    "[--receivers N]");
	if (!strcmp(cfg.mode, "push"))
		return run_stream(0);
	if (!strcmp(cfg.mode, "xpub"))
		return run_stream(1);
	if (!strcmp(cfg.mode, "reqrep")) {
		/* One sample of 8 bytes per round trip. */
		case_count_max(&cfg, 10000000);
		return run_reqrep();
	}
	if (!strcmp(cfg.mode, "dealer"))
		return run_dealer();
	if (!strcmp(cfg.mode, "connect")) {
		case_count_max(&cfg, 100000);
		return run_connect();
	}
	usage_error("unknown case '%s' (push, xpub, reqrep, dealer, connect)",
	    cfg.mode);
}
