/*
 * ioxbench.c - bench-iox: iceoryx (Debian's iceoryx 2.0, its C binding),
 * the zero-copy shared-memory peer of the "shared memory" section of
 * `make bench`.
 *
 *   bench-iox stream   [--size B] [--count N] [--receivers N] [--copy]
 *   bench-iox pingpong [--size B] [--count N] [--copy]
 *
 * A RouDi (iox-roudi) must be running, with mempools for chunks of --size
 * bytes (bench-run starts one with scripts/bench/roudi.toml and stops it
 * afterwards); without one, iox_runtime_init() waits for it and bench-run
 * kills this after its time limit.
 *
 * stream: one publisher; each receiver is a process of its own with one
 * subscriber, which waits in a WaitSet (a futex: no CPU while idle),
 * takes every chunk, checks its order and reports over a pipe, like
 * bench-tcp's receivers.  The publisher waits for consumers
 * (ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER, QueueFullPolicy_BLOCK_PRODUCER:
 * nothing is dropped; iceoryx then spins with sched_yield() while a queue
 * is full).  pingpong: a --size chunk on one service, and back on another
 * from an echoing process; both wait in a WaitSet.
 *
 * The API used: loan a chunk, write it, publish it.  By default (the loan
 * API) the sender writes only the 16-byte message header into the chunk
 * and the echo copies only that: a message produced in place costs its
 * production, the same over any transport.  --copy writes the whole
 * message into the chunk with memcpy() from a private buffer, and the
 * echo copies the whole message, what a send that takes a buffer costs.
 * Receivers read the header only (bench-tcp's read the header of bytes the
 * kernel copied for them); the pinger compares the whole echo with --copy.
 * The length of each message travels in an 8-byte user header of the
 * chunk (the C binding has no accessor for the payload size).
 *
 * Prints one JSON object like bench-tcp's; exit 0, 1 on errors or loss,
 * 2 on bad usage.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iceoryx_binding_c/chunk.h"
#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"
#include "iceoryx_binding_c/wait_set.h"

#include "common.h"

#define TIMEOUT_MS	30000
#define SUB_WAIT_MS	10000	/* until a subscriber is connected */
#define STOP_MS		3000	/* for a child to leave RouDi on SIGTERM */
/* The largest chunk of scripts/bench/roudi.toml (1 MiB + 256): a loan
 * of more makes iceoryx abort, leaving its process registered. */
#define SIZE_MAX_IOX	(1024L * 1024)
#define UHDR		8	/* user header: the payload length */
#define SERVICE		"sipc-bench"
/* Chunks in a subscriber's queue: RouDi's mempools (roudi.toml) hold
 * more chunks of each size than that plus the receivers' and the
 * publisher's own, so a loan never runs out. */
#define QUEUE_SMALL	256
#define QUEUE_LARGE	32	/* above 64 KiB */

static struct case_opts cfg;
static int		copy_api;
static char		instance[32];	/* the measuring process's pid */
static volatile sig_atomic_t stopping;	/* SIGTERM or SIGINT came */
static pid_t		kid_pid[KIDS_MAX];
static const char	*kid_role[KIDS_MAX];
static int		nkid;
static int		kids_gone;	/* reaped: their pids are not ours */
static pid_t		main_pid;

/*
 * Every process here ends through exit(), so that its runtime leaves
 * RouDi and removes its socket (/tmp/NAME) in a destructor: a process
 * that dies otherwise stays registered until RouDi's monitoring drops it
 * (1.5 s), and a RouDi stopped before that aborts, leaving its shared
 * memory behind.  So SIGTERM only sets stopping (passed on to the
 * children by the parent), which every loop here checks; fatal() in the
 * parent stops the children with SIGTERM before it kills what is left.
 */
static void
on_signal(int sig)
{
	int i, e = errno;

	stopping = 1;
	if (getpid() == main_pid && !kids_gone)
		for (i = 0; i < nkid; i++)
			kill(kid_pid[i], SIGTERM);
	errno = e;
}

static void
check_stop(void)
{
	if (stopping)
		fatal("stopped by a signal");
}

/* fatal_hook in the parent: the children leave RouDi first. */
static void
kids_stop(void)
{
	int64_t end = mono_ms() + STOP_MS;
	int i, left;

	if (kids_gone)
		return;
	for (i = 0; i < nkid; i++)
		kill(kid_pid[i], SIGTERM);
	do {
		for (i = left = 0; i < nkid; i++)
			if (waitpid(kid_pid[i], NULL, WNOHANG) == 0)
				left++;
		if (left)
			sleep_ms(5);
	} while (left && mono_ms() < end);
}

/* At exit in the parent, with every child reaped: the socket files of a
 * child that did not leave RouDi, by its pid. */
static void
kids_files(void)
{
	char path[96];
	int i;

	for (i = 0; i < nkid; i++) {
		snprintf(path, sizeof(path), "/tmp/sipc-bench-%s-%ld",
		    kid_role[i], (long)kid_pid[i]);
		unlink(path);
		strncat(path, ".lock", sizeof(path) - strlen(path) - 1);
		unlink(path);
	}
}

static pid_t
iox_kid_start(int (*fn)(void *), void *arg, const char *role)
{
	pid_t pid = kid_start(fn, arg);

	kid_role[nkid] = role;
	kid_pid[nkid++] = pid;
	if (nkid == 1) {
		fatal_hook = kids_stop;
		atexit(kids_files);
	}
	return pid;
}

/* In a child: its siblings are not its own. */
static void
kid_init(void)
{
	nkid = 0;
	fatal_hook = NULL;
}

/* A name for this process's runtime, unique on the host. */
static void
runtime_init(const char *role)
{
	char name[64];

	snprintf(name, sizeof(name), "sipc-bench-%s-%ld", role,
	    (long)getpid());
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
}

static uint64_t
queue_capacity(void)
{
	return cfg.size > 65536 ? QUEUE_LARGE : QUEUE_SMALL;
}

static iox_pub_t
pub_new(iox_pub_storage_t *st, const char *event)
{
	iox_pub_options_t o;

	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.offerOnCreate = true;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	return iox_pub_init(st, SERVICE, instance, event, &o);
}

static iox_sub_t
sub_new(iox_sub_storage_t *st, const char *event)
{
	iox_sub_options_t o;

	iox_sub_options_init(&o);
	o.queueCapacity = queue_capacity();
	o.historyRequest = 0;
	o.subscribeOnCreate = true;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	return iox_sub_init(st, SERVICE, instance, event, &o);
}

/* Waits until sub is connected to a publisher, at most SUB_WAIT_MS. */
static void
sub_wait_connected(iox_sub_t sub, const char *who)
{
	int64_t end = mono_ms() + SUB_WAIT_MS;

	while (iox_sub_get_subscription_state(sub) !=
	    SubscribeState_SUBSCRIBED) {
		check_stop();
		if (mono_ms() >= end)
			fatal("%s: not subscribed within %d ms", who,
			    SUB_WAIT_MS);
		sleep_ms(2);
	}
}

/*
 * Loans a chunk of len bytes with the length in its user header.  Waits
 * (yielding) while the mempool is exhausted, at most TIMEOUT_MS.
 */
static uint8_t *
loan(iox_pub_t pub, size_t len)
{
	enum iox_AllocationResult r;
	void *p = NULL, *uh;
	int64_t end = 0;

	for (;;) {
		r = iox_pub_loan_aligned_chunk_with_user_header(pub, &p,
		    (uint32_t)len, IOX_C_CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT,
		    UHDR, UHDR);
		if (r == AllocationResult_SUCCESS)
			break;
		if (r != AllocationResult_RUNNING_OUT_OF_CHUNKS)
			fatal("loan of a %zu-byte chunk failed (%d): does "
			    "RouDi's config have a mempool that large?", len,
			    (int)r);
		check_stop();
		if (end == 0)
			end = mono_ms() + TIMEOUT_MS;
		else if (mono_ms() >= end)
			fatal("no free chunk within %d ms", TIMEOUT_MS);
		sched_yield();
	}
	uh = iox_chunk_header_to_user_header(
	    iox_chunk_header_from_user_payload(p));
	memcpy(uh, &(uint64_t){ len }, UHDR);
	return p;
}

/* The length a chunk's user header says. */
static size_t
chunk_len(const void *p)
{
	uint64_t len;

	memcpy(&len, iox_chunk_header_to_user_header_const(
	    iox_chunk_header_from_user_payload_const(p)), UHDR);
	return (size_t)len;
}

/*
 * Takes the next chunk of sub into *p, waiting in ws up to TIMEOUT_MS
 * for one: 0, or -1 on time.
 */
static int
take(iox_sub_t sub, iox_ws_t ws, const void **p)
{
	iox_notification_info_t ev[1];
	struct timespec ts = { 0, 100000000 };	/* stopping, seen in 0.1 s */
	int64_t end = 0;
	uint64_t missed;
	enum iox_ChunkReceiveResult r;

	for (;;) {
		r = iox_sub_take_chunk(sub, p);
		if (r == ChunkReceiveResult_SUCCESS)
			return 0;
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			fatal("take_chunk failed (%d)", (int)r);
		check_stop();
		if (end == 0)
			end = mono_ms() + TIMEOUT_MS;
		else if (mono_ms() >= end)
			return -1;
		(void)iox_ws_timed_wait(ws, ts, ev, 1, &missed);
	}
}

/* Publishes a control message (BEGIN or END) of run. */
static void
publish_ctl(iox_pub_t pub, int kind)
{
	uint8_t *p = loan(pub, CTL_LEN);

	bm_init(p, CTL_LEN, kind);
	put64(p + F_COUNT, (uint64_t)cfg.count);
	put64(p + F_SIZE, (uint64_t)cfg.size);
	iox_pub_publish_chunk(pub, p);
}

/* ---- stream -------------------------------------------------------------- */

struct stream_kid {
	int	ready;		/* pipe, write end: 'R', then 'Y', report */
	int	index;
};

static int
stream_receiver(void *arg)
{
	struct stream_kid *k = arg;
	iox_sub_storage_t sst;
	iox_ws_storage_t wst;
	iox_sub_t sub;
	iox_ws_t ws;
	struct rx_check c;
	const void *p;
	char who[32];
	int kind, done = 0;

	kid_init();
	snprintf(who, sizeof(who), "receiver %d", k->index);
	runtime_init("rx");
	sub = sub_new(&sst, "data");
	ws = iox_ws_init(&wst);
	if (iox_ws_attach_subscriber_state(ws, sub, SubscriberState_HAS_DATA,
	    0, NULL) != WaitSetResult_SUCCESS)
		fatal("%s: cannot attach to a WaitSet", who);
	sub_wait_connected(sub, who);
	if (write_full(k->ready, "R", 1) == -1)
		fatal_sys("%s: report pipe", who);
	memset(&c, 0, sizeof(c));
	while (!done) {
		if (take(sub, ws, &p) == -1)
			fatal("%s: nothing for %d ms", who, TIMEOUT_MS);
		kind = rx_check_msg(&c, p, chunk_len(p));
		iox_sub_release_chunk(sub, p);
		if (kind == K_BEGIN && write_full(k->ready, "Y", 1) == -1)
			fatal_sys("%s: report pipe", who);
		if (kind == K_END) {
			if (write_full(k->ready, &c.r, sizeof(c.r)) == -1)
				fatal_sys("%s: report pipe", who);
			done = 1;
		}
	}
	iox_ws_deinit(ws);
	iox_sub_deinit(sub);
	/* exit(), not _exit(): the runtime leaves RouDi in a destructor. */
	fflush(NULL);
	exit(0);
}

static void
wait_byte(int fd, char want, int i)
{
	char y;

	if (read_full(fd, &y, 1, TIMEOUT_MS) == -1 || y != want)
		fatal_sys("receiver %d did not start", i);
}

static int
run_stream(void)
{
	struct stream_kid k[KIDS_MAX];
	struct rx_total tot;
	iox_pub_storage_t pst;
	iox_pub_t pub;
	uint8_t *tmpl, *p;
	int pipes[KIDS_MAX], fd[2], i, n = (int)cfg.receivers, rc, left;
	int64_t t0, cpu0;
	size_t len = (size_t)cfg.size;
	long m;

	/* Children first: the runtime has threads. */
	for (i = 0; i < n; i++) {
		if (pipe2(fd, O_CLOEXEC) == -1)
			fatal_sys("pipe");
		k[i].ready = fd[1];
		k[i].index = i;
		pipes[i] = fd[0];
		iox_kid_start(stream_receiver, &k[i], "rx");
		close(fd[1]);
	}
	if ((tmpl = malloc(len)) == NULL)
		fatal("out of memory");
	bm_init(tmpl, len, K_DATA);
	runtime_init("tx");
	pub = pub_new(&pst, "data");
	for (i = 0; i < n; i++)
		wait_byte(pipes[i], 'R', i);
	publish_ctl(pub, K_BEGIN);
	for (i = 0; i < n; i++)
		wait_byte(pipes[i], 'Y', i);

	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (m = 0; m < cfg.count; m++) {
		if (stopping)
			check_stop();
		p = loan(pub, len);
		if (copy_api) {
			put64(tmpl + 8, (uint64_t)m);
			memcpy(p, tmpl, len);
		} else {
			memcpy(p, tmpl, BM_HDR);
			put64(p + 8, (uint64_t)m);
		}
		iox_pub_publish_chunk(pub, p);
	}
	publish_ctl(pub, K_END);

	rx_collect(pipes, n, t0, TIMEOUT_MS, &tot);
	cpu0 = cpu_self_ns() - cpu0;
	left = kids_reap(5000);
	kids_gone = 1;
	if (left)
		fatal("a receiver failed");
	rc = json_stream(&cfg, "stream", copy_api ? "iceoryx_copy" :
	    "iceoryx", n, t0, &tot, cpu0);
	iox_pub_deinit(pub);
	free(tmpl);
	return rc;
}

/* ---- pingpong ------------------------------------------------------------ */

struct echo_kid {
	int	rep;		/* pipe, write end: 'R', then its CPU time */
};

static int
echo_child(void *arg)
{
	struct echo_kid *k = arg;
	iox_sub_storage_t sst;
	iox_pub_storage_t pst;
	iox_ws_storage_t wst;
	iox_sub_t sub;
	iox_pub_t pub;
	iox_ws_t ws;
	const void *in;
	uint8_t *out;
	size_t len;
	int64_t cpu0 = 0;
	int kind;

	kid_init();
	runtime_init("echo");
	pub = pub_new(&pst, "pong");
	sub = sub_new(&sst, "ping");
	ws = iox_ws_init(&wst);
	if (iox_ws_attach_subscriber_state(ws, sub, SubscriberState_HAS_DATA,
	    0, NULL) != WaitSetResult_SUCCESS)
		fatal("echo: cannot attach to a WaitSet");
	sub_wait_connected(sub, "echo");
	if (write_full(k->rep, "R", 1) == -1)
		fatal_sys("echo: report pipe");
	for (;;) {
		if (take(sub, ws, &in) == -1)
			fatal("echo: nothing for %d ms", TIMEOUT_MS);
		len = chunk_len(in);
		kind = bm_kind(in, len);
		if (kind == K_BEGIN) {		/* not answered */
			cpu0 = cpu_self_ns();
			iox_sub_release_chunk(sub, in);
			continue;
		}
		if (kind == K_END) {
			iox_sub_release_chunk(sub, in);
			break;
		}
		out = loan(pub, len);
		memcpy(out, in, copy_api || len < BM_HDR ? len : BM_HDR);
		iox_pub_publish_chunk(pub, out);
		iox_sub_release_chunk(sub, in);
	}
	cpu0 = cpu_self_ns() - cpu0;
	if (write_full(k->rep, &cpu0, sizeof(cpu0)) == -1)
		fatal_sys("echo: report pipe");
	iox_ws_deinit(ws);
	iox_sub_deinit(sub);
	iox_pub_deinit(pub);
	fflush(NULL);
	exit(0);
}

static int
run_pingpong(void)
{
	struct echo_kid k;
	iox_sub_storage_t sst;
	iox_pub_storage_t pst;
	iox_ws_storage_t wst;
	iox_sub_t sub;
	iox_pub_t pub;
	iox_ws_t ws;
	const void *in;
	uint8_t *msg, *p;
	int64_t *samples, t, t0, cpu0, cpu_rx;
	size_t len = (size_t)cfg.size;
	long i, warm, total;
	int fd[2], left;
	char y;

	if (pipe2(fd, O_CLOEXEC) == -1)
		fatal_sys("pipe");
	k.rep = fd[1];
	iox_kid_start(echo_child, &k, "echo");
	close(fd[1]);
	warm = warmup_count(cfg.count, 1000);
	total = warm + cfg.count;
	if ((msg = malloc(len)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	bm_init(msg, len, K_PING);
	runtime_init("ping");
	pub = pub_new(&pst, "ping");
	sub = sub_new(&sst, "pong");
	ws = iox_ws_init(&wst);
	if (iox_ws_attach_subscriber_state(ws, sub, SubscriberState_HAS_DATA,
	    0, NULL) != WaitSetResult_SUCCESS)
		fatal("cannot attach to a WaitSet");
	sub_wait_connected(sub, "pinger");
	if (read_full(fd[0], &y, 1, TIMEOUT_MS) == -1 || y != 'R')
		fatal_sys("the echo process did not start");
	publish_ctl(pub, K_BEGIN);

	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			t0 = mono_ns();
		}
		check_stop();
		put64(msg + 8, (uint64_t)i);
		t = mono_ns();
		p = loan(pub, len);
		memcpy(p, msg, copy_api ? len : BM_HDR);
		iox_pub_publish_chunk(pub, p);
		if (take(sub, ws, &in) == -1)
			fatal("pong %ld: nothing for %d ms", i, TIMEOUT_MS);
		if (i >= warm)
			samples[i - warm] = mono_ns() - t;
		if (chunk_len(in) != len || memcmp(in, msg, copy_api ? len :
		    BM_HDR) != 0)
			fatal("pong %ld is not the ping", i);
		iox_sub_release_chunk(sub, in);
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	publish_ctl(pub, K_END);
	if (read_full(fd[0], &cpu_rx, sizeof(cpu_rx), TIMEOUT_MS) == -1)
		fatal_sys("report of the echo process");
	close(fd[0]);
	left = kids_reap(5000);
	kids_gone = 1;
	if (left)
		fatal("the echo process failed");
	/* The echo's CPU covers its warm-up too: a slight overstatement. */
	json_samples(&cfg, "pingpong", copy_api ? "iceoryx_copy" : "iceoryx",
	    t0, samples, cpu0 + cpu_rx, 1, NULL);
	iox_ws_deinit(ws);
	iox_sub_deinit(sub);
	iox_pub_deinit(pub);
	free(msg);
	free(samples);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	char *av[32];
	int i, ac = 0;

	prog = "bench-iox";
	main_pid = getpid();
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	cfg.size = 64;
	cfg.count = 100000;
	cfg.receivers = 1;
	/* --copy is ours; the rest is every bench program's. */
	for (i = 0; i < argc && ac < (int)(sizeof(av) / sizeof(av[0])) - 1;
	    i++) {
		if (i > 0 && !strcmp(argv[i], "--copy"))
			copy_api = 1;
		else
			av[ac++] = argv[i];
	}
	if (i < argc)
		usage_error("too many arguments");
	av[ac] = NULL;
	case_opts_parse(ac, av, &cfg, 0, "usage: bench-iox stream|pingpong "
	    "[--size B] [--count N] [--receivers N] [--copy]");
	if (cfg.size > SIZE_MAX_IOX)
		usage_error("--size: at most %ld (the largest chunk of "
		    "scripts/bench/roudi.toml)", SIZE_MAX_IOX);
	snprintf(instance, sizeof(instance), "%ld", (long)getpid());
	if (!strcmp(cfg.mode, "stream"))
		return run_stream();
	if (!strcmp(cfg.mode, "pingpong")) {
		case_count_max(&cfg, 10000000);
		return run_pingpong();
	}
	usage_error("unknown case '%s' (stream, pingpong)", cfg.mode);
}
