/*
 * brokerbench.c - bench-broker: sipc-epmd measured over its raw protocol
 * (proto/wire.h), for `make bench`.
 *
 *   bench-broker --epmd PATH [--cpu N] [--rtt-count N] [--join-count N]
 *                [--regs N] [--clients N] [--inflight N]
 *
 * It starts its own broker on 127.0.0.1 (an ephemeral port) and measures,
 * in this order:
 *   register   REGISTER round trips on one session, one at a time
 *              (p50/p99), and so registrations/s with 1 client;
 *   lookup     LOOKUP round trips of a handle with one receiver;
 *   join       from sending a REGISTER until the JOIN arrives at another
 *              session that watches the handle (each then UNREGISTERed);
 *   clients    --regs registrations (100,000) by --clients sessions (16)
 *              at once, each with --inflight requests on their way (1:
 *              each waits for its answer, as libsipc does): registrations/s
 *              and the CPU time broker and clients spent per registration;
 *              and the broker's VmRSS before and after them, per
 *              registration (10 receivers per handle).
 *   idle       with --idle N (0: skipped): LOOKUP round trips on one
 *              session for --idle-ms (12,000 ms) while N sessions opened
 *              at once sit idle, answering the broker's PINGs, from the
 *              moment the broker answered all their HELLOs, against the
 *              same for 3 s before they open: p50, p99 and max, and the
 *              broker's CPU time meanwhile (heartbeats that come in one
 *              burst show in the p99 and max).
 * With --cpu N the round-trip phases run with the broker and this
 * program on CPU N only, as bench-run does for every round trip (see
 * README.md); the clients phase always has every CPU.
 *
 * A measuring client, not a library: no reconnection, no TLS, loopback
 * only.  Prints one JSON object; exit 0, 1 on errors, 2 on bad usage.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../proto/wire.h"
#include "common.h"

#define IN_CAP		(256 * 1024)
#define TIMEOUT_MS	10000
#define REGS_PER_HANDLE	10

struct sess {
	int		 fd;
	uint8_t		*in;
	size_t		 len;		/* bytes in in[] */
	size_t		 used;		/* of which parsed */
	uint32_t	 reqid;
	uint32_t	 max_frame;
	uint64_t	 instance;
	struct wbuf	 out;
	/* clients phase */
	int		 client;
	long		 sent;
	long		 done;
	long		 todo;
};

static int	   inflight = 1;	/* requests per client session */

static const char *epmd_path;
static int	   broker_port;
static pid_t	   broker_pid;

/* ---- The broker ---------------------------------------------------------- */

static void
broker_start(void)
{
	char *extra[] = { "--max-registrations", "10000000",
	    "--max-sessions", "100000", "--max-sessions-per-peer", "100000",
	    "--log-level", "warn", NULL };
	char portfile[64];
	int fd;

	snprintf(portfile, sizeof(portfile), "/tmp/bench-broker.XXXXXX");
	if ((fd = mkstemp(portfile)) == -1)
		fatal_sys("mkstemp");
	close(fd);
	broker_pid = epmd_spawn(epmd_path, "127.0.0.1:0", portfile, NULL,
	    extra, TIMEOUT_MS, &broker_port);
	unlink(portfile);
	if (broker_pid == -1)
		fatal("%s did not start listening", epmd_path);
	kid_add(broker_pid);
}

static void
broker_stop(void)
{
	if (!proc_ok(proc_stop(broker_pid, 3000)))
		fatal("the broker did not stop cleanly on SIGTERM");
}

static void
pin(pid_t pid, int cpu)
{
	if (cpu_pin(pid, cpu) == -1 && cpu >= 0)
		fatal_sys("sched_setaffinity CPU %d", cpu);
}

/* ---- Sessions ------------------------------------------------------------ */

static void
sess_send(struct sess *s)
{
	if (s->out.err || write_full(s->fd, s->out.data, s->out.len) == -1)
		fatal_sys("send to the broker");
	wbuf_reset(&s->out);
}

/*
 * The next whole frame in s->in, PINGs answered on the way: 1 with *h and
 * *p (valid until sess_compact()), 0 when more bytes are needed.
 */
static int
sess_frame(struct sess *s, struct wire_header *h, const uint8_t **p)
{
	uint64_t token;
	int rc;

	while (s->len - s->used >= SIPC_HEADER_SIZE) {
		if ((rc = wire_header_decode(s->in + s->used, s->max_frame,
		    h)) != 0)
			fatal("bad frame from the broker: %s",
			    wire_strerror(rc));
		if (SIPC_HEADER_SIZE + (size_t)h->len > IN_CAP)
			fatal("frame of %u bytes", h->len);
		if (s->len - s->used < SIPC_HEADER_SIZE + (size_t)h->len)
			return 0;
		*p = s->in + s->used + SIPC_HEADER_SIZE;
		s->used += SIPC_HEADER_SIZE + h->len;
		if (h->type != WIRE_PING)
			return 1;
		if (wire_dec_u64(*p, h->len, &token) ||
		    wire_enc_u64(&s->out, WIRE_PONG, h->reqid, token))
			fatal("bad PING");
		sess_send(s);
	}
	return 0;
}

/* Moves what is not parsed yet to the front of s->in: room for a whole
 * frame, as sess_frame() checked its length. */
static void
sess_compact(struct sess *s)
{
	memmove(s->in, s->in + s->used, s->len - s->used);
	s->len -= s->used;
	s->used = 0;
}

/*
 * The next frame from the broker within TIMEOUT_MS: PINGs are answered
 * here, an ERROR is fatal.  *p stays valid until the next call.
 */
static void
sess_next(struct sess *s, struct wire_header *h, const uint8_t **p)
{
	struct wire_error e;
	ssize_t r;

	while (!sess_frame(s, h, p)) {
		sess_compact(s);
		/* Blocking, bounded by SO_RCVTIMEO. */
		r = recv(s->fd, s->in + s->len, IN_CAP - s->len, 0);
		if (r == 0)
			fatal("the broker closed the session");
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			fatal("no answer from the broker within %d ms",
			    TIMEOUT_MS);
		if (r == -1)
			fatal_sys("read from the broker");
		s->len += (size_t)r;
	}
	if (h->type == WIRE_ERROR) {
		if (wire_dec_error(*p, h->len, &e) == 0)
			fatal("broker: %s: %.*s", wire_errcode_name(e.code),
			    (int)e.text.len, e.text.ptr);
		fatal("broker: malformed ERROR");
	}
}

/* The next OK with request id reqid; its payload. */
static const uint8_t *
sess_ok(struct sess *s, uint32_t reqid, struct wire_header *h)
{
	const uint8_t *p;

	for (;;) {
		sess_next(s, h, &p);
		if (h->type == WIRE_OK && h->reqid == reqid)
			return p;
		if (h->type != WIRE_JOIN && h->type != WIRE_LEAVE)
			fatal("unexpected %s from the broker",
			    wire_type_name(h->type));
	}
}

/* The broker's listening address: 127.0.0.1 and its port. */
static void
broker_addr(struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons((uint16_t)broker_port);
}

/* Appends a HELLO of this program, as software, to w. */
static void
enc_hello(struct wbuf *w, uint32_t reqid, const char *software)
{
	struct wire_hello hello;

	memset(&hello, 0, sizeof(hello));
	hello.min_version = SIPC_PROTO_VERSION_MIN;
	hello.max_version = SIPC_PROTO_VERSION_MAX;
	hello.software.ptr = software;
	hello.software.len = (uint16_t)strlen(software);
	hello.host.ptr = "bench";
	hello.host.len = 5;
	hello.pid = (uint32_t)getpid();
	if (wire_enc_hello(w, reqid, &hello) != 0)
		fatal("cannot encode HELLO");
}

static void
sess_open(struct sess *s, int client)
{
	struct sockaddr_in sin;
	struct wire_hello_ok ok;
	struct wire_header h;
	const uint8_t *p;
	struct timeval tv;
	int on = 1;

	memset(s, 0, sizeof(*s));
	s->client = client;
	s->max_frame = SIPC_HELLO_FRAME_MAX;
	s->instance = ((uint64_t)getpid() << 20) + (uint64_t)client + 1;
	if ((s->in = malloc(IN_CAP)) == NULL)
		fatal("out of memory");
	wbuf_init(&s->out, 64 * 1024);
	if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal_sys("socket");
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	tv.tv_sec = TIMEOUT_MS / 1000;
	tv.tv_usec = 0;
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
		fatal_sys("SO_RCVTIMEO");
	broker_addr(&sin);
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fatal_sys("connect to the broker at 127.0.0.1:%d",
		    broker_port);
	enc_hello(&s->out, ++s->reqid, "bench-broker");
	sess_send(s);
	p = sess_ok(s, s->reqid, &h);
	if (wire_dec_ok_hello(p, h.len, &ok) != 0)
		fatal("malformed answer to HELLO");
	s->max_frame = ok.max_frame;
}

static void
sess_close(struct sess *s)
{
	close(s->fd);
	free(s->in);
	wbuf_free(&s->out);
}

/* Encodes REGISTER of handle "prefix.N" (N = j / REGS_PER_HANDLE) with
 * endpoint 127.0.0.1:port. */
static void
enc_register(struct sess *s, const char *prefix, long j, uint16_t port)
{
	struct wire_register r;
	char handle[128];

	snprintf(handle, sizeof(handle), "%s.%ld", prefix,
	    j / REGS_PER_HANDLE);
	memset(&r, 0, sizeof(r));
	r.handle.ptr = handle;
	r.handle.len = (uint16_t)strlen(handle);
	r.instance = s->instance;
	r.ep.family = WIRE_AF_INET;
	r.ep.addr[0] = 127;
	r.ep.addr[3] = 1;
	r.ep.port = port;
	if (wire_enc_register(&s->out, ++s->reqid, &r) != 0)
		fatal("cannot encode REGISTER");
}

/* ---- Phases -------------------------------------------------------------- */

static double
phase_register(struct sess *a, long n, int64_t *samples)
{
	struct wire_header h;
	const uint8_t *p;
	uint64_t id;
	int64_t t, t0 = mono_ns();
	long j;

	for (j = 0; j < n; j++) {
		enc_register(a, "one", j, (uint16_t)(1 + j % REGS_PER_HANDLE));
		t = mono_ns();
		sess_send(a);
		p = sess_ok(a, a->reqid, &h);
		samples[j] = mono_ns() - t;
		if (wire_dec_ok_register(p, h.len, &id) != 0)
			fatal("malformed answer to REGISTER");
	}
	return (double)n * 1e9 / (double)(mono_ns() - t0);
}

/* One LOOKUP of "lookup.0" (registered by phase_lookup) on a: its round
 * trip in ns. */
static int64_t
lookup_rtt(struct sess *a)
{
	struct wire_header h;
	struct wire_seq seq;
	const uint8_t *p;
	int64_t t;

	if (wire_enc_handle(&a->out, WIRE_LOOKUP, ++a->reqid, "lookup.0",
	    8) != 0)
		fatal("cannot encode LOOKUP");
	t = mono_ns();
	sess_send(a);
	p = sess_ok(a, a->reqid, &h);
	t = mono_ns() - t;
	if (wire_dec_ok_records(p, h.len, WIRE_LOOKUP, &seq) != 0 ||
	    seq.count != 1)
		fatal("LOOKUP did not find the one registration");
	return t;
}

static void
phase_lookup(struct sess *a, long n, int64_t *samples)
{
	struct wire_header h;
	long j;

	enc_register(a, "lookup", 0, 4455);
	sess_send(a);
	sess_ok(a, a->reqid, &h);
	for (j = 0; j < n; j++)
		samples[j] = lookup_rtt(a);
}

static void
phase_join(struct sess *a, struct sess *w, long n, int64_t *samples)
{
	struct wire_header h;
	struct wire_join jn;
	struct wire_seq seq;
	const uint8_t *p;
	uint64_t id;
	int64_t t;
	long j;

	if (wire_enc_handle(&w->out, WIRE_WATCH, ++w->reqid, "join.0", 6) !=
	    0)
		fatal("cannot encode WATCH");
	sess_send(w);
	p = sess_ok(w, w->reqid, &h);
	if (wire_dec_ok_records(p, h.len, WIRE_WATCH, &seq) != 0)
		fatal("malformed answer to WATCH");
	for (j = 0; j < n; j++) {
		enc_register(a, "join", 0, (uint16_t)(1 + j % 60000));
		t = mono_ns();
		sess_send(a);
		do
			sess_next(w, &h, &p);
		while (h.type != WIRE_JOIN);
		samples[j] = mono_ns() - t;
		if (wire_dec_join(p, h.len, &jn) != 0 || jn.handle.len != 6 ||
		    memcmp(jn.handle.ptr, "join.0", 6) != 0)
			fatal("malformed JOIN");
		p = sess_ok(a, a->reqid, &h);
		if (wire_dec_ok_register(p, h.len, &id) != 0)
			fatal("malformed answer to REGISTER");
		if (wire_enc_u64(&a->out, WIRE_UNREGISTER, ++a->reqid, id) !=
		    0)
			fatal("cannot encode UNREGISTER");
		sess_send(a);
		sess_ok(a, a->reqid, &h);
		do
			sess_next(w, &h, &p);
		while (h.type != WIRE_LEAVE);
	}
}

/* Keeps inflight REGISTERs of a client session on their way. */
/* ---- Idle sessions -------------------------------------------------------- */

struct idle {
	int		 fd;
	size_t		 len;
	uint8_t		 buf[256];
};

struct idle_set {
	struct idle	*s;
	int		 n;
	int		 ep;
	volatile int	 stop;
	volatile long	 oks;		/* OK(HELLO)s received */
	long		 pongs;
};

/* Answers every PING of the broker on the idle sessions until stop. */
static void *
idle_main(void *arg)
{
	struct idle_set *set = arg;
	struct epoll_event ev[256];
	struct wire_header h;
	uint8_t out[64];
	struct wbuf w;
	struct idle *s;
	ssize_t r;
	size_t flen;
	int i, n;

	while (!set->stop) {
		if ((n = epoll_wait(set->ep, ev, 256, 100)) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			s = ev[i].data.ptr;
			r = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
			if (r <= 0) {
				if (r == 0 || errno != EAGAIN)
					fatal("an idle session was closed");
				continue;
			}
			s->len += (size_t)r;
			while (s->len >= SIPC_HEADER_SIZE) {
				if (wire_header_decode(s->buf, sizeof(s->buf) -
				    SIPC_HEADER_SIZE, &h) != 0)
					fatal("bad frame on an idle session");
				flen = SIPC_HEADER_SIZE + h.len;
				if (s->len < flen)
					break;
				if (h.type == WIRE_PING && h.len == 8) {
					w.data = out;
					w.len = 0;
					w.cap = w.max = sizeof(out);
					w.err = 0;
					wire_enc_u64(&w, WIRE_PONG, h.reqid,
					    get64(s->buf + SIPC_HEADER_SIZE));
					if (write_full(s->fd, w.data, w.len) != 0)
						fatal_sys("PONG");
					set->pongs++;
				} else if (h.type == WIRE_OK)
					set->oks++;
				memmove(s->buf, s->buf + flen, s->len - flen);
				s->len -= flen;
			}
		}
	}
	return NULL;
}

/* LOOKUP round trips on a for ms milliseconds into samples (at most max);
 * returns how many. */
static long
lookups_for(struct sess *a, int ms, int64_t *samples, long max)
{
	int64_t end = mono_ns() + (int64_t)ms * 1000000;
	long n = 0;

	while (n < max && mono_ns() < end)
		samples[n++] = lookup_rtt(a);
	return n;
}

/*
 * n sessions open at once (HELLO each, nothing more) and stay idle while
 * a looks up for ms milliseconds.  *rest and *busy get the round trips
 * before and while they are open, *bcpu the broker's CPU time during the
 * second.
 */
static void
phase_idle(struct sess *a, int n, int ms, int64_t *rest, long *nrest,
    int64_t *busy, long *nbusy, long max, int64_t *bcpu, double *open_s)
{
	struct idle_set set = { 0 };
	struct sockaddr_in sin;
	struct epoll_event e;
	struct wbuf hw;
	pthread_t th;
	int64_t t0;
	int i;

	*nrest = lookups_for(a, 3000, rest, max);
	wbuf_init(&hw, 4096);
	enc_hello(&hw, 1, "bench-idle");
	if ((set.s = calloc((size_t)n, sizeof(*set.s))) == NULL)
		fatal("out of memory");
	if ((set.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal_sys("epoll_create1");
	broker_addr(&sin);
	set.n = n;
	if (pthread_create(&th, NULL, idle_main, &set) != 0)
		fatal("pthread_create");
	t0 = mono_ns();
	for (i = 0; i < n; i++) {
		struct idle *s = &set.s[i];

		if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
		    -1)
			fatal_sys("socket (raise ulimit -n for --idle %d)", n);
		if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			fatal_sys("connect");
		if (write_full(s->fd, hw.data, hw.len) != 0)
			fatal_sys("HELLO");
		fcntl(s->fd, F_SETFL, O_NONBLOCK);
		e.events = EPOLLIN;
		e.data.ptr = s;
		if (epoll_ctl(set.ep, EPOLL_CTL_ADD, s->fd, &e) == -1)
			fatal_sys("epoll_ctl");
	}
	/* Measured once the broker has welcomed them all: what follows is
	 * their heartbeats, not their arrival. */
	while (set.oks < n) {
		if (mono_ns() - t0 > (int64_t)TIMEOUT_MS * 1000000)
			fatal("only %ld of %d idle sessions answered", set.oks,
			    n);
		sleep_ms(1);
	}
	*open_s = (double)(mono_ns() - t0) / 1e9;
	*bcpu = proc_cpu_ns(broker_pid);
	*nbusy = lookups_for(a, ms, busy, max);
	*bcpu = proc_cpu_ns(broker_pid) - *bcpu;
	set.stop = 1;
	pthread_join(th, NULL);
	for (i = 0; i < n; i++)
		close(set.s[i].fd);
	close(set.ep);
	free(set.s);
	wbuf_free(&hw);
}

static void
client_fill(struct sess *s)
{
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "m%d", s->client);
	while (s->sent < s->todo && s->sent - s->done < inflight) {
		enc_register(s, prefix, s->sent,
		    (uint16_t)(1 + s->sent % REGS_PER_HANDLE));
		s->sent++;
	}
	if (s->out.len)
		sess_send(s);
}

/* Reads what one client session has; sends its next REGISTERs. */
static void
client_input(struct sess *s, long *left)
{
	struct wire_header h;
	const uint8_t *p;
	uint64_t id;
	ssize_t r;

	sess_compact(s);
	r = recv(s->fd, s->in + s->len, IN_CAP - s->len, MSG_DONTWAIT);
	if (r == 0)
		fatal("the broker closed client session %d", s->client);
	if (r == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		fatal_sys("read from the broker");
	}
	s->len += (size_t)r;
	while (sess_frame(s, &h, &p)) {
		if (h.type != WIRE_OK || wire_dec_ok_register(p, h.len, &id) !=
		    0)
			fatal("client %d: unexpected %s", s->client,
			    wire_type_name(h.type));
		s->done++;
		(*left)--;
		client_fill(s);
	}
}

static double
phase_clients(struct sess *c, int nc, long regs)
{
	struct epoll_event ev, evs[64];
	int64_t t0, end;
	long left = regs;
	int ep, i, n;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal_sys("epoll_create1");
	for (i = 0; i < nc; i++) {
		c[i].todo = regs / nc + (i < regs % nc);
		ev.events = EPOLLIN;
		ev.data.ptr = &c[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev) == -1)
			fatal_sys("epoll_ctl");
	}
	t0 = mono_ns();
	end = t0 + 60 * (int64_t)1000000000;
	for (i = 0; i < nc; i++)
		client_fill(&c[i]);
	while (left > 0) {
		if ((n = epoll_wait(ep, evs, 64, TIMEOUT_MS)) == -1) {
			if (errno == EINTR)
				continue;
			fatal_sys("epoll_wait");
		}
		if (n == 0 || mono_ns() > end)
			fatal("registrations stalled: %ld of %ld left", left,
			    regs);
		for (i = 0; i < n; i++)
			client_input(evs[i].data.ptr, &left);
	}
	t0 = mono_ns() - t0;
	close(ep);
	return (double)regs * 1e9 / (double)t0;
}

int
main(int argc, char **argv)
{
	struct sess a, w, *c;
	int64_t *reg, *look, *join;
	long rtt_n = 20000, join_n = 2000, regs = 100000, rss0, rss1;
	int64_t bcpu, ccpu;
	double rate1, rate16;
	int i, clients = 16, cpu = -1, idle = 0, idle_ms = 12000;
	int64_t *rest = NULL, *busy = NULL, idle_cpu = 0;
	long nrest = 0, nbusy = 0, imax = 4000000;
	double open_s = 0;
	struct jout j;

	prog = "bench-broker";
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (i + 1 >= argc)
			usage_error("%s needs a value", o);
		if (!strcmp(o, "--epmd"))
			epmd_path = argv[++i];
		else if (!strcmp(o, "--cpu"))
			cpu = (int)opt_long(o, argv[++i], -1, CPU_SETSIZE - 1);
		else if (!strcmp(o, "--rtt-count"))
			rtt_n = opt_long(o, argv[++i], 1, 10000000);
		else if (!strcmp(o, "--join-count"))
			join_n = opt_long(o, argv[++i], 1, 60000);
		else if (!strcmp(o, "--regs"))
			regs = opt_long(o, argv[++i], 1, 10000000);
		else if (!strcmp(o, "--inflight"))
			inflight = (int)opt_long(o, argv[++i], 1, 1000);
		else if (!strcmp(o, "--clients"))
			clients = (int)opt_long(o, argv[++i], 1, 1000);
		else if (!strcmp(o, "--idle"))
			idle = (int)opt_long(o, argv[++i], 0, 100000);
		else if (!strcmp(o, "--idle-ms"))
			idle_ms = (int)opt_long(o, argv[++i], 1000, 600000);
		else
			usage_error("unknown option '%s'", o);
	}
	if (epmd_path == NULL)
		usage_error("usage: bench-broker --epmd PATH [--cpu N] "
		    "[--rtt-count N] [--join-count N] [--regs N] "
		    "[--clients N] [--inflight N] [--idle N [--idle-ms MS]]");
	if ((reg = calloc((size_t)rtt_n, sizeof(*reg))) == NULL ||
	    (look = calloc((size_t)rtt_n, sizeof(*look))) == NULL ||
	    (join = calloc((size_t)join_n, sizeof(*join))) == NULL ||
	    (c = calloc((size_t)clients, sizeof(*c))) == NULL)
		fatal("out of memory");
	broker_start();
	if (cpu >= 0) {
		pin(0, cpu);
		pin(broker_pid, cpu);
	}
	sess_open(&a, 1000);
	sess_open(&w, 1001);
	rate1 = phase_register(&a, rtt_n, reg);
	phase_lookup(&a, rtt_n, look);
	phase_join(&a, &w, join_n, join);
	if (cpu >= 0) {
		pin(0, -1);
		pin(broker_pid, -1);
	}
	for (i = 0; i < clients; i++)
		sess_open(&c[i], i);
	if ((rss0 = proc_rss_kb(broker_pid)) < 0)
		fatal("cannot read the broker's VmRSS");
	bcpu = proc_cpu_ns(broker_pid);
	ccpu = cpu_self_ns();
	rate16 = phase_clients(c, clients, regs);
	ccpu = cpu_self_ns() - ccpu;
	bcpu = proc_cpu_ns(broker_pid) - bcpu;
	if ((rss1 = proc_rss_kb(broker_pid)) < 0)
		fatal("cannot read the broker's VmRSS");
	for (i = 0; i < clients; i++)
		sess_close(&c[i]);
	if (idle > 0) {
		if ((rest = calloc((size_t)imax, sizeof(*rest))) == NULL ||
		    (busy = calloc((size_t)imax, sizeof(*busy))) == NULL)
			fatal("out of memory");
		phase_idle(&a, idle, idle_ms, rest, &nrest, busy, &nbusy, imax,
		    &idle_cpu, &open_s);
		sort_i64(rest, (size_t)nrest);
		sort_i64(busy, (size_t)nbusy);
	}
	sess_close(&w);
	sess_close(&a);
	broker_stop();

	sort_i64(reg, (size_t)rtt_n);
	sort_i64(look, (size_t)rtt_n);
	sort_i64(join, (size_t)join_n);
	json_begin(&j, stdout);
	json_str(&j, "case", "broker");
	json_int(&j, "cpu", cpu);
	json_int(&j, "rtt_count", rtt_n);
	json_num(&j, "register_p50_us", pct_us(reg, (size_t)rtt_n, 0.5));
	json_num(&j, "register_p99_us", pct_us(reg, (size_t)rtt_n, 0.99));
	json_num(&j, "register_per_s_1", rate1);
	json_num(&j, "lookup_p50_us", pct_us(look, (size_t)rtt_n, 0.5));
	json_num(&j, "lookup_p99_us", pct_us(look, (size_t)rtt_n, 0.99));
	json_int(&j, "join_count", join_n);
	json_num(&j, "join_p50_us", pct_us(join, (size_t)join_n, 0.5));
	json_num(&j, "join_p99_us", pct_us(join, (size_t)join_n, 0.99));
	json_int(&j, "clients", clients);
	json_int(&j, "registrations", regs);
	json_int(&j, "inflight", inflight);
	json_num(&j, "register_per_s_16", rate16);
	json_num(&j, "broker_cpu_ns_per_registration", (double)bcpu /
	    (double)regs);
	json_num(&j, "client_cpu_ns_per_registration", (double)ccpu /
	    (double)regs);
	json_int(&j, "broker_rss_before_kb", rss0);
	json_int(&j, "broker_rss_after_kb", rss1);
	json_num(&j, "bytes_per_registration", (double)(rss1 - rss0) *
	    1024.0 / (double)regs);
	if (idle > 0) {
		json_int(&j, "idle_sessions", idle);
		json_num(&j, "idle_open_s", open_s);
		json_num(&j, "lookup_rest_p50_us", pct_us(rest, (size_t)nrest,
		    0.5));
		json_num(&j, "lookup_rest_p99_us", pct_us(rest, (size_t)nrest,
		    0.99));
		json_num(&j, "lookup_rest_max_us", (double)rest[nrest - 1] /
		    1e3);
		json_num(&j, "lookup_idle_p50_us", pct_us(busy, (size_t)nbusy,
		    0.5));
		json_num(&j, "lookup_idle_p99_us", pct_us(busy, (size_t)nbusy,
		    0.99));
		json_num(&j, "lookup_idle_max_us", (double)busy[nbusy - 1] /
		    1e3);
		json_num(&j, "idle_broker_cpu_ms", (double)idle_cpu / 1e6);
		free(rest);
		free(busy);
	}
	json_int(&j, "lost", 0);
	json_int(&j, "errors", 0);
	json_end(&j);
	free(reg);
	free(look);
	free(join);
	free(c);
	return 0;
}
