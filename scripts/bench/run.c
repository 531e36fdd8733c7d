/*
 * run.c - bench-run: the driver of `make bench`.  It runs every case of
 * every implementation side by side, round-robin (so that drift of the
 * machine hits all of them alike), prints a table of medians with
 * min-max and the ratios sipc is judged by, and writes the same as JSON.
 *
 *   bench-run --build DIR [--rounds N] [--seconds S] [--rtt-cpu N]
 *             [--out FILE] [--quick] [--shm-only] [--roudi-config FILE]
 *
 * Each measurement is a process of its own that prints one JSON object:
 * `sipc bench` (DIR/bin/sipc) for sipc, over a broker this driver starts
 * on a loopback port (sipc tcp) and over the local registry (sipc local);
 * bench-zmq, bench-nats, bench-tcp and bench-broker (DIR/bench/bin) for
 * the rest, NATS against a nats-server this driver starts on a loopback
 * port.  The shared-memory section (--shm-only: it alone) has its own
 * cases and peers: bench-iox against a RouDi this driver starts for each
 * of its rounds (with --roudi-config, scripts/bench/roudi.toml by
 * default), the Unix socket and memcpy of bench-tcp.
 * Before the rounds (5 by default), a pilot run of each sizes its message
 * count so that one measurement takes about --seconds (2).  Every process
 * is bounded in time and killed and reaped by pid.  Ratios are taken per
 * round (sipc against its peer of the same round) and reported as their
 * median and range.
 *
 * It compares; it changes nothing in sipc.  Exit 0 when every measurement
 * ran and nothing was lost, 1 otherwise (missed targets are reported,
 * not failed on), 2 on bad usage.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/jsonout.h"
#include "common.h"

#define MAX_ROUNDS	15
#define MAX_KV		64
#define OUT_MAX		(64 * 1024)
#define RUN_TIMEOUT_MS	30000	/* one measurement, setup included */
#define BUDGET_S	2400	/* then the rest is skipped (16 min is usual) */

/* ---- Implementations and cases ------------------------------------------- */

enum impl {
	I_SIPC_TCP,
	I_SIPC_LOCAL,
	I_ZMQ,
	I_TCP,
	I_UNIX,
	I_NATS,
	I_BEFORE,	/* sipc tcp of another build (--before) */
	I_BROKER,
	NIMPL
};

static const char *impl_title[NIMPL] = {
	"sipc tcp", "sipc local", "ZeroMQ", "TCP (limit)", "Unix (limit)",
	"NATS", "sipc tcp before", "sipc-epmd"
};
static const char *impl_key[NIMPL] = {
	"sipc_tcp", "sipc_local", "zmq", "tcp", "unix", "nats",
	"sipc_tcp_before", "broker"
};

enum kind {
	C_TPUT,		/* one-way stream, 1 or more receivers */
	C_RTT,		/* ping-pong */
	C_CONNECT,	/* connect + first message */
	C_REQ_RTT,	/* one request at a time */
	C_REQ_PIPE,	/* receivers requests outstanding */
	C_REQ_FIRST,	/* a new requester, its first request */
	C_BROKER	/* bench-broker, every broker figure at once */
};

struct kv {
	char	key[48];
	double	num;
	int	is_num;
};

struct run {
	struct kv	 kv[MAX_KV];
	int		 nkv;
	char		*raw;		/* the JSON line, for results.json */
};

struct cell {
	long		 count;
	int		 n;		/* runs done */
	int		 failed;	/* runs that failed */
	struct run	 runs[MAX_ROUNDS];
};

struct bcase {
	const char	*key;
	const char	*title;
	enum kind	 kind;
	long		 size;
	int		 receivers;
	unsigned	 impls;		/* 1 << enum impl */
	const char	*metric;	/* the figure compared */
	int		 lower_better;
	struct cell	 cell[NIMPL];
};

#define B(i)	(1u << (i))
#define TPUT_IMPLS	(B(I_SIPC_TCP) | B(I_SIPC_LOCAL) | B(I_ZMQ) | \
			 B(I_TCP) | B(I_UNIX))
/* Request/reply: TCP and Unix are the ping-pong of rtt_64. */
#define REQ_IMPLS	(B(I_SIPC_TCP) | B(I_SIPC_LOCAL) | B(I_ZMQ) | \
			 B(I_NATS))

static struct bcase cases[] = {
	{ "tput_64", "1->1 64 B", C_TPUT, 64, 1, TPUT_IMPLS,
	    "messages_per_s", 0, { { 0 } } },
	{ "tput_1k", "1->1 1 KiB", C_TPUT, 1024, 1, TPUT_IMPLS,
	    "messages_per_s", 0, { { 0 } } },
	{ "tput_64k", "1->1 64 KiB", C_TPUT, 65536, 1, TPUT_IMPLS,
	    "messages_per_s", 0, { { 0 } } },
	{ "fan8_64", "1->8 64 B", C_TPUT, 64, 8, TPUT_IMPLS,
	    "deliveries_per_s", 0, { { 0 } } },
	{ "fan8_1k", "1->8 1 KiB", C_TPUT, 1024, 8, TPUT_IMPLS,
	    "deliveries_per_s", 0, { { 0 } } },
	{ "rtt_64", "round trip 64 B", C_RTT, 64, 1, TPUT_IMPLS,
	    "p50_us", 1, { { 0 } } },
	{ "connect", "connect + 1st msg", C_CONNECT, 64, 1,
	    B(I_SIPC_TCP) | B(I_SIPC_LOCAL) | B(I_ZMQ) | B(I_TCP),
	    "p50_us", 1, { { 0 } } },
	{ "req_rtt", "request 64 B", C_REQ_RTT, 64, 1, REQ_IMPLS,
	    "p50_us", 1, { { 0 } } },
	{ "req_pipe_64", "64 outstanding, 64 B", C_REQ_PIPE, 64, 64,
	    REQ_IMPLS, "requests_per_s", 0, { { 0 } } },
	{ "req_pipe_1k", "64 outstanding, 1 KiB", C_REQ_PIPE, 1024, 64,
	    REQ_IMPLS, "requests_per_s", 0, { { 0 } } },
	{ "req_first", "new requester + 1st req", C_REQ_FIRST, 64, 1,
	    B(I_SIPC_TCP) | B(I_SIPC_LOCAL), "p50_us", 1, { { 0 } } },
	{ "broker", "broker", C_BROKER, 0, 0, B(I_BROKER),
	    "lookup_p50_us", 1, { { 0 } } },
};
#define NCASES	(sizeof(cases) / sizeof(cases[0]))

/* ---- Settings ------------------------------------------------------------ */

static const char *build = NULL;
static const char *before = NULL;	/* --before: another build */
static char	   path_before[512];
static char	   path_sipc[512], path_epmd[512], path_tcp[512],
		   path_zmq[512], path_broker[512], path_out[512],
		   path_log[512], path_nats[512], path_nats_log[512];
static int	   rounds = 5;
static double	   target_s = 2.0;
static int	   rtt_cpu = -2;	/* -2: the last CPU; -1: none */
static char	   broker_addr[64];
static pid_t	   epmd_pid = -1;
static char	   nats_url[64];
static pid_t	   nats_pid = -1;
static int	   failures;
static int64_t	   t_start;
static int	   skipped;
static int	   shm_only;		/* --shm-only */
static double	   other_cpu_pct = -1;	/* others' share of the CPUs */
static double	   steal_pct = -1;	/* the hypervisor's */

/* ---- Running one measurement --------------------------------------------- */

/* Parses one run's line, a flat JSON object, into r: its numbers by key
 * (strings and other values only counted).  0, or -1 when s is not one
 * JSON object. */
static int
parse_json(const char *s, struct run *r)
{
	struct json_object *o;
	size_t kl;

	r->nkv = 0;
	if ((o = json_tokener_parse(s)) == NULL)
		return -1;
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -1;
	}
	json_object_object_foreach(o, key, val) {
		kl = strlen(key);
		if (r->nkv >= MAX_KV || kl >= sizeof(r->kv[0].key))
			continue;
		memcpy(r->kv[r->nkv].key, key, kl + 1);
		r->kv[r->nkv].is_num = json_object_is_type(val,
		    json_type_double) || json_object_is_type(val,
		    json_type_int);
		r->kv[r->nkv].num = r->kv[r->nkv].is_num ?
		    json_object_get_double(val) : 0;
		r->nkv++;
	}
	json_object_put(o);
	return 0;
}

static int
get_num(const struct run *r, const char *key, double *v)
{
	int i;

	for (i = 0; i < r->nkv; i++)
		if (r->kv[i].is_num && !strcmp(r->kv[i].key, key)) {
			*v = r->kv[i].num;
			return 0;
		}
	return -1;
}

/*
 * Runs argv (pinned to cpu when >= 0), bounded by RUN_TIMEOUT_MS, and
 * parses the JSON object it prints.  0, or -1 after a message.
 */
static int
run_cmd(char *const argv[], int cpu, const char *what, struct run *r)
{
	char *out, *nl;
	size_t len = 0;
	int64_t end = mono_ns() + (int64_t)RUN_TIMEOUT_MS * 1000000;
	struct pollfd pfd;
	int p[2], st, rc, timed_out = 0, left, parsed;
	pid_t pid, parent = getpid();
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if ((out = malloc(OUT_MAX + 1)) == NULL)
		fatal("out of memory");
	if (pipe2(p, O_CLOEXEC) == -1)
		fatal_sys("pipe");
	fflush(NULL);
	if ((pid = fork()) == -1)
		fatal_sys("fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (cpu >= 0 && cpu_pin(0, cpu) == -1)
			fprintf(stderr, "bench-run: %s: not pinned to CPU %d: "
			    "%s\n", what, cpu, strerror(errno));
		dup2(p[1], 1);
		execv(argv[0], argv);
		fprintf(stderr, "bench-run: cannot execute %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		left = (int)((end - mono_ns()) / 1000000);
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		pfd.fd = p[0];
		pfd.events = POLLIN;
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, left)) == -1 && errno != EINTR)
			fatal_sys("poll");
		if (rc <= 0)
			continue;
		n = read(p[0], out + len, OUT_MAX - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == OUT_MAX)
			break;
	}
	close(p[0]);
	out[len] = '\0';
	if (timed_out) {
		/* SIGTERM lets sipc bench clean up its children and its
		 * directory; SIGKILL after 3 s. */
		proc_stop(pid, 3000);
		fprintf(stderr, "bench-run: %s: no result within %d s; "
		    "killed\n", what, RUN_TIMEOUT_MS / 1000);
		free(out);
		return -1;
	}
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if ((nl = strchr(out, '\n')) != NULL)
		*nl = '\0';
	parsed = parse_json(out, r) == 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && parsed) {
		r->raw = out;
		return 0;
	}
	if (WIFSIGNALED(st))
		fprintf(stderr, "bench-run: %s: killed by signal %d\n", what,
		    WTERMSIG(st));
	else
		fprintf(stderr, "bench-run: %s: exit status %d%s\n", what,
		    WEXITSTATUS(st), WEXITSTATUS(st) == 0 ?
		    ", output is no JSON object" : "");
	/* A run with loss exits 1 but still reports: keep that. */
	if (parsed && r->nkv > 0)
		r->raw = out;
	else
		free(out);
	return -1;
}

/* ---- Command lines ------------------------------------------------------- */

struct argv_buf {
	char	*v[32];
	char	 s[32][64];
	int	 n;
};

static void
arg(struct argv_buf *a, const char *s)
{
	snprintf(a->s[a->n], sizeof(a->s[0]), "%s", s);
	a->v[a->n] = a->s[a->n];
	a->n++;
	a->v[a->n] = NULL;
}

/* Option opt with a number. */
static void
argl(struct argv_buf *a, const char *opt, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	arg(a, opt);
	arg(a, buf);
}

/* The command for one case and implementation with count messages. */
static void
command(const struct bcase *c, enum impl im, long count,
    struct argv_buf *a)
{
	static const char *sipc_case[] = { "throughput", "latency", "connect" };
	int req = c->kind == C_REQ_RTT || c->kind == C_REQ_PIPE ||
	    c->kind == C_REQ_FIRST;

	memset(a, 0, sizeof(*a));
	if (req && (im == I_SIPC_TCP || im == I_SIPC_LOCAL)) {
		arg(a, path_sipc);
		arg(a, "bench");
		arg(a, "rpc");
		arg(a, "--cases");
		arg(a, c->kind == C_REQ_RTT ? "rtt" : c->kind == C_REQ_PIPE ?
		    "pipeline" : "first");
		if (im == I_SIPC_TCP) {
			arg(a, "--broker");
			arg(a, broker_addr);
		} else
			arg(a, "--local");
		argl(a, "--window", c->receivers);
		argl(a, "--size", c->size);
		argl(a, "--count", count);
		arg(a, "--json");
		return;
	}
	switch (im) {
	case I_NATS:
		arg(a, path_nats);
		arg(a, c->kind == C_REQ_RTT ? "rtt" : "pipeline");
		arg(a, "--url");
		arg(a, nats_url);
		argl(a, "--receivers", c->receivers);
		argl(a, "--size", c->size);
		argl(a, "--count", count);
		break;
	case I_SIPC_TCP:
	case I_SIPC_LOCAL:
	case I_BEFORE:
		/* sipc tcp stays on TCP, where the same-host path would
		 * take the ring (that is the shared-memory section's). */
		if (im != I_SIPC_LOCAL) {
			arg(a, "/usr/bin/env");
			arg(a, "SIPC_TRANSPORT=tcp");
		}
		arg(a, im == I_BEFORE ? path_before : path_sipc);
		arg(a, "bench");
		arg(a, c->kind == C_TPUT ? (c->receivers > 1 ? "fanout" :
		    sipc_case[0]) : c->kind == C_RTT ? sipc_case[1] :
		    sipc_case[2]);
		if (im != I_SIPC_LOCAL) {
			arg(a, "--broker");
			arg(a, broker_addr);
			if (c->kind != C_CONNECT)
				arg(a, "--spawn");
		} else
			arg(a, "--local");
		if (c->kind == C_TPUT) {
			argl(a, "--receivers", c->receivers);
		}
		argl(a, "--size", c->size);
		argl(a, "--count", count);
		arg(a, "--json");
		break;
	case I_ZMQ:
		arg(a, path_zmq);
		arg(a, c->kind == C_TPUT ? (c->receivers > 1 ? "xpub" :
		    "push") : c->kind == C_RTT || c->kind == C_REQ_RTT ?
		    "reqrep" : c->kind == C_REQ_PIPE ? "dealer" : "connect");
		if ((c->kind == C_TPUT && c->receivers > 1) ||
		    c->kind == C_REQ_PIPE) {
			argl(a, "--receivers", c->receivers);
		}
		argl(a, "--size", c->size);
		argl(a, "--count", count);
		break;
	case I_TCP:
	case I_UNIX:
		arg(a, path_tcp);
		arg(a, c->kind == C_TPUT ? "stream" : c->kind == C_RTT ?
		    "pingpong" : "connect");
		if (c->kind == C_TPUT) {
			argl(a, "--receivers", c->receivers);
		}
		if (im == I_UNIX)
			arg(a, "--unix");
		argl(a, "--size", c->size);
		argl(a, "--count", count);
		break;
	case I_BROKER:
		arg(a, path_broker);
		arg(a, "--epmd");
		arg(a, path_epmd);
		argl(a, "--cpu", rtt_cpu);
		if (target_s < 0.5) {	/* --quick */
			argl(a, "--rtt-count", 2000);
			argl(a, "--join-count", 200);
		}
		break;
	default:
		break;
	}
}

/* Round trips and connects run pinned (see --rtt-cpu). */
static int
kind_cpu(enum kind kind)
{
	return kind == C_RTT || kind == C_CONNECT || kind == C_REQ_RTT ||
	    kind == C_REQ_FIRST ? rtt_cpu : -1;
}

/* ---- Calibration and measurement ----------------------------------------- */

/*
 * One implementation in one case, as calibrate_job() and measure_job()
 * see it: the case's kind and message size, the cell its runs go to, and
 * cmd, which builds its command line for count messages.  The cases of
 * the main table and of the shared-memory section both come down to it.
 */
struct job {
	enum kind	 kind;
	long		 size;
	long		 max;		/* messages per run, at most */
	char		 what[96];	/* "ZeroMQ 1->1 64 B", for messages */
	struct cell	*cell;
	const void	*c;		/* the case, for cmd */
	int		 im;		/* the implementation, for cmd */
	void		(*cmd)(const struct job *, long, struct argv_buf *);
};

static long
pilot_count(enum kind kind, long size)
{
	switch (kind) {
	case C_TPUT:
		return size >= 65536 ? 2000 : size >= 1024 ? 20000 : 100000;
	case C_RTT:
	case C_REQ_RTT:
		return 2000;
	case C_REQ_PIPE:
		return 20000;
	case C_CONNECT:
	case C_REQ_FIRST:
		return 50;
	default:
		return 0;
	}
}

static long
max_count(enum kind kind, enum impl im)
{
	switch (kind) {
	case C_TPUT:
	case C_REQ_PIPE:
		return 100000000;
	case C_RTT:
	case C_REQ_RTT:
		return 1000000;
	default:
		/* Each TCP connect leaves a port in TIME_WAIT. */
		return im == I_TCP || im == I_ZMQ ? 3000 : 2000;
	}
}

/* Sizes j's count: a pilot run (grown until it is long enough to time),
 * scaled to target_s.  0, or -1 when the pilot failed. */
static int
calibrate_job(struct job *j)
{
	struct argv_buf a;
	struct run r;
	char what[128];
	double secs;
	long n = pilot_count(j->kind, j->size), want;
	int tries;

	snprintf(what, sizeof(what), "%s (pilot)", j->what);
	for (tries = 0; tries < 4; tries++) {
		j->cmd(j, n, &a);
		if (run_cmd(a.v, kind_cpu(j->kind), what, &r) == -1) {
			free(r.raw);
			return -1;
		}
		free(r.raw);
		if (get_num(&r, "seconds", &secs) == -1 || secs <= 0) {
			fprintf(stderr, "bench-run: %s: no \"seconds\"\n",
			    what);
			return -1;
		}
		if (secs >= target_s / 10 || n >= j->max)
			break;
		n = n * 10 > j->max ? j->max : n * 10;
	}
	want = (long)((double)n * target_s / secs);
	if (want < pilot_count(j->kind, j->size))
		want = pilot_count(j->kind, j->size);
	if (want > j->max)
		want = j->max;
	j->cell->count = want;
	return 0;
}

/* One run of j, kept in its cell. */
static void
measure_job(const struct job *j, int round)
{
	struct cell *cl = j->cell;
	struct argv_buf a;
	struct run r;
	char what[128];

	if (cl->count < 0)
		return;		/* its pilot failed */
	snprintf(what, sizeof(what), "%s, round %d", j->what, round + 1);
	/* Something is badly wrong when the whole bench runs this long:
	 * stop measuring, still report what there is. */
	if (mono_ns() - t_start > (int64_t)BUDGET_S * 1000000000) {
		if (skipped++ == 0)
			fprintf(stderr, "bench-run: over %d s; skipping the "
			    "remaining measurements\n", BUDGET_S);
		cl->failed++;
		failures++;
		return;
	}
	j->cmd(j, cl->count, &a);
	if (run_cmd(a.v, kind_cpu(j->kind), what, &r) == -1) {
		cl->failed++;
		failures++;
		/* A run that reported (loss) is kept, to be shown. */
		if (r.raw == NULL)
			return;
	}
	cl->runs[cl->n++] = r;
}

static void
main_cmd(const struct job *j, long count, struct argv_buf *a)
{
	command(j->c, (enum impl)j->im, count, a);
}

/* The job of implementation im in case c of the main table. */
static void
main_job(struct bcase *c, enum impl im, struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->kind = c->kind;
	j->size = c->size;
	j->max = max_count(c->kind, im);
	snprintf(j->what, sizeof(j->what), "%s %s", impl_title[im], c->title);
	j->cell = &c->cell[im];
	j->c = c;
	j->im = im;
	j->cmd = main_cmd;
}

static int
calibrate(struct bcase *c, enum impl im)
{
	struct job j;

	if (c->kind == C_BROKER) {
		c->cell[im].count = 0;
		return 0;
	}
	main_job(c, im, &j);
	return calibrate_job(&j);
}

static void
measure(struct bcase *c, enum impl im, int round)
{
	struct job j;

	main_job(c, im, &j);
	measure_job(&j, round);
}

/* ---- The broker for sipc tcp --------------------------------------------- */

static void
epmd_start(void)
{
	char portfile[560], *extra[] = { "--log-level", "warn", NULL };
	int port;

	snprintf(portfile, sizeof(portfile), "%s.port", path_log);
	unlink(path_log);	/* this run's log only */
	epmd_pid = epmd_spawn(path_epmd, "127.0.0.1:0", portfile, path_log,
	    extra, 10000, &port);
	if (epmd_pid == -1)
		fatal("%s did not start (see %s)", path_epmd, path_log);
	kid_add(epmd_pid);
	unlink(portfile);
	snprintf(broker_addr, sizeof(broker_addr), "127.0.0.1:%d", port);
}

/*
 * Stops a server this driver started, by its pid only (the other server
 * keeps running), and says so when it did not exit with status want on
 * SIGTERM within 3 s.
 */
static void
server_stop(pid_t *pid, int want, const char *name, const char *log)
{
	int st;

	if (*pid > 0 && ((st = proc_stop(*pid, 3000)) == -1 ||
	    !WIFEXITED(st) || WEXITSTATUS(st) != want))
		fprintf(stderr, "bench-run: %s did not stop cleanly (see %s)\n",
		    name, log);
	*pid = -1;
}

/* ---- nats-server for NATS ------------------------------------------------ */

static int
nats_exec(void *arg)
{
	char port[16];
	int fd;

	snprintf(port, sizeof(port), "%d", *(int *)arg);
	if ((fd = open(path_nats_log, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0644)) != -1) {
		dup2(fd, 2);
		dup2(fd, 1);
	}
	execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", port,
	    (char *)NULL);
	return 127;
}

/* Starts nats-server on a free loopback port; without it (not
 * installed), the NATS measurements fail and say so. */
static void
nats_start(void)
{
	int port = free_port(), fd, i;

	if (port <= 0)
		return;
	nats_pid = kid_start(nats_exec, &port);
	for (i = 0; i < 200; i++) {
		if ((fd = connect_loopback(port)) != -1) {
			close(fd);
			snprintf(nats_url, sizeof(nats_url),
			    "nats://127.0.0.1:%d", port);
			return;
		}
		sleep_ms(25);
	}
	fprintf(stderr, "bench-run: nats-server did not start (see %s)\n",
	    path_nats_log);
}

/* ---- Statistics ---------------------------------------------------------- */

struct stat3 {
	double	med;
	double	min;
	double	max;
	int	n;
};

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of key over the cell's runs. */
static struct stat3
stat_of(const struct cell *cl, const char *key)
{
	struct stat3 s = { 0, 0, 0, 0 };
	double v[MAX_ROUNDS];
	int i;

	for (i = 0; i < cl->n; i++)
		if (get_num(&cl->runs[i], key, &v[s.n]) == 0)
			s.n++;
	if (s.n == 0)
		return s;
	qsort(v, (size_t)s.n, sizeof(double), cmp_d);
	s.min = v[0];
	s.max = v[s.n - 1];
	s.med = s.n % 2 ? v[s.n / 2] : (v[s.n / 2 - 1] + v[s.n / 2]) / 2;
	return s;
}

static double
sum_of(const struct cell *cl, const char *key)
{
	double v, sum = 0;
	int i;

	for (i = 0; i < cl->n; i++)
		if (get_num(&cl->runs[i], key, &v) == 0)
			sum += v;
	return sum;
}

/* Messages lost (also as the sender saw it), and out of order, damaged
 * or reported missing, in all the cell's runs. */
static double
lost_of(const struct cell *cl)
{
	return sum_of(cl, "lost") + sum_of(cl, "sender_lost");
}

static double
bad_of(const struct cell *cl)
{
	return sum_of(cl, "errors") + sum_of(cl, "gaps");
}

static double
max_of(const struct cell *cl, const char *key)
{
	double v, m = 0;
	int i;

	for (i = 0; i < cl->n; i++)
		if (get_num(&cl->runs[i], key, &v) == 0 && v > m)
			m = v;
	return m;
}

/* v as "6.10" + suffix "M", "950" + "k", "54.2" + "". */
static void
human(double v, char *buf, size_t size, const char **suffix)
{
	static const struct {
		double		 from;	/* v >= from uses this unit */
		double		 div;
		const char	*s;
		const char	*fmt;
	} u[] = {
		{ 1e9, 1e9, "G", "%.2f" }, { 1e6, 1e6, "M", "%.2f" },
		{ 1e4, 1e3, "k", "%.0f" }, { 100, 1, "", "%.0f" },
		{ 0, 1, "", "%.1f" }
	};
	size_t i;

	for (i = 0; u[i].from > 0 && v < u[i].from; i++)
		;
	snprintf(buf, size, u[i].fmt, v / u[i].div);
	*suffix = u[i].s;
}

/* "6.10M (5.90-6.20M)", "54.2 (50.1-61.0)", "1.2M (950k-1.3M)" */
static void
fmt_stat(const struct stat3 *s, char *buf, size_t size)
{
	const char *sa, *sb, *sc;
	char a[16], b[16], c[16];

	if (s->n == 0) {
		snprintf(buf, size, "-");
		return;
	}
	human(s->med, a, sizeof(a), &sa);
	human(s->min, b, sizeof(b), &sb);
	human(s->max, c, sizeof(c), &sc);
	if (s->n == 1)
		snprintf(buf, size, "%s%s", a, sa);
	else if (!strcmp(sa, sb) && !strcmp(sb, sc))
		snprintf(buf, size, "%s%s (%s-%s)", a, sa, b, c);
	else
		snprintf(buf, size, "%s%s (%s%s-%s%s)", a, sa, b, sb, c, sc);
}

/* ---- Table --------------------------------------------------------------- */

#define COLW	21

/* A row of the table: key of cells[0..n), blank where mask has no bit. */
static void
row_cells(const struct cell *cells, unsigned mask, unsigned hide, int n,
    const char *label, const char *key)
{
	char buf[64];
	struct stat3 s;
	int i;

	printf("%-*s", 30, label);
	for (i = 0; i < n; i++) {
		if (hide & B(i))
			continue;
		if (!(mask & B(i))) {
			printf("%-*s", COLW, "");
			continue;
		}
		if (cells[i].n == 0) {
			printf("%-*s", COLW, "FAILED");
			continue;
		}
		s = stat_of(&cells[i], key);
		fmt_stat(&s, buf, sizeof(buf));
		printf("%-*s", COLW, buf);
	}
	printf("\n");
}

static void
row_loss_cells(const struct cell *cells, unsigned mask, unsigned hide, int n)
{
	char buf[64];
	int i;

	printf("%-*s", 30, "  lost / errors");
	for (i = 0; i < n; i++) {
		if (hide & B(i))
			continue;
		if (!(mask & B(i)) || cells[i].n == 0) {
			printf("%-*s", COLW, "");
			continue;
		}
		snprintf(buf, sizeof(buf), "%.0f / %.0f", lost_of(&cells[i]),
		    bad_of(&cells[i]));
		printf("%-*s", COLW, buf);
	}
	printf("\n");
}

/* Columns of the main table not shown: sipc tcp before without
 * --before. */
static unsigned
main_hidden(void)
{
	return before ? 0 : B(I_BEFORE);
}

static void
row(const struct bcase *c, const char *label, const char *key)
{
	row_cells(c->cell, c->impls, main_hidden(), I_BROKER, label, key);
}

static void
row_loss(const struct bcase *c)
{
	row_loss_cells(c->cell, c->impls, main_hidden(), I_BROKER);
}

static struct bcase *
find_case(const char *key)
{
	size_t i;

	for (i = 0; i < NCASES; i++)
		if (!strcmp(cases[i].key, key))
			return &cases[i];
	return NULL;
}

static void
print_table(void)
{
	const struct bcase *c;
	const struct cell *bk;
	struct stat3 s;
	char buf[64], lab[64];
	size_t k;
	int i;

	printf("\n%-*s", 30, "case (median, min-max)");
	for (i = 0; i < I_BROKER; i++)
		if (!(main_hidden() & B(i)))
			printf("%-*s", COLW, impl_title[i]);
	printf("\n");
	for (k = 0; k < NCASES; k++) {
		c = &cases[k];
		switch (c->kind) {
		case C_TPUT:
			snprintf(lab, sizeof(lab), "%s  %s", c->title,
			    c->receivers > 1 ? "deliveries/s" : "msg/s");
			row(c, lab, c->metric);
			row(c, "  MB/s", "mb_per_s");
			row(c, "  CPU ns per message", "cpu_ns_per_message");
			row(c, "  sender peak RSS kB", "sender_peak_rss_kb");
			row_loss(c);
			break;
		case C_RTT:
			snprintf(lab, sizeof(lab), "%s  p50 us", c->title);
			row(c, lab, "p50_us");
			row(c, "  p99 us", "p99_us");
			row(c, "  p99.9 us", "p999_us");
			row(c, "  CPU ns per round trip",
			    "cpu_ns_per_message");
			break;
		case C_CONNECT:
		case C_REQ_FIRST:
			snprintf(lab, sizeof(lab), "%s  p50 us", c->title);
			row(c, lab, "p50_us");
			row(c, "  p99 us", "p99_us");
			row(c, "  p99.9 us", "p999_us");
			break;
		case C_REQ_RTT:
			snprintf(lab, sizeof(lab), "%s  p50 us", c->title);
			row(c, lab, "p50_us");
			row(c, "  p99 us", "p99_us");
			row(c, "  CPU ns per request", "cpu_ns_per_message");
			row_loss(c);
			break;
		case C_REQ_PIPE:
			snprintf(lab, sizeof(lab), "%s  req/s", c->title);
			row(c, lab, c->metric);
			row(c, "  CPU ns per request", "cpu_ns_per_message");
			row_loss(c);
			break;
		default:
			break;
		}
	}
	printf("\n  ZeroMQ: PUSH/PULL (1->1), XPUB with ZMQ_XPUB_NODROP "
	    "(1->8), REQ/REP (round trip, request),\n  DEALER/ROUTER "
	    "(outstanding).  NATS: nats-server on loopback, libnats: "
	    "Request() with SendAsap\n  (request), PublishRequest() to one "
	    "inbox (outstanding).  sipc: sipc bench rpc; its CPU\n  per "
	    "request is the requester's alone, the peers' both sides'.\n");
	if (rtt_cpu >= 0)
		printf("  Round trips and connects: every process on CPU %d "
		    "(see scripts/bench/README.md).\n", rtt_cpu);
	else
		printf("  Round trips and connects: not pinned.\n");
	c = find_case("broker");
	bk = &c->cell[I_BROKER];
	if (bk->n == 0) {
		printf("\nsipc-epmd: FAILED\n");
		return;
	}
	printf("\nsipc-epmd (its own broker per round)       median "
	    "(min-max)\n");
#define BROW(label, key) do {						\
		s = stat_of(bk, key);					\
		fmt_stat(&s, buf, sizeof(buf));				\
		printf("  %-40s %s\n", label, buf);			\
	} while (0)
	BROW("REGISTER round trip p50 us", "register_p50_us");
	BROW("REGISTER round trip p99 us", "register_p99_us");
	BROW("LOOKUP round trip p50 us", "lookup_p50_us");
	BROW("LOOKUP round trip p99 us", "lookup_p99_us");
	BROW("REGISTER -> JOIN at a watcher p50 us", "join_p50_us");
	BROW("REGISTER -> JOIN at a watcher p99 us", "join_p99_us");
	BROW("registrations/s, 1 client", "register_per_s_1");
	BROW("registrations/s, 16 clients", "register_per_s_16");
	BROW("  broker CPU ns per registration", "broker_cpu_ns_per_registration");
	BROW("  client CPU ns per registration", "client_cpu_ns_per_registration");
	BROW("broker bytes per registration (100k)", "bytes_per_registration");
#undef BROW
}

/* ---- Ratios and targets -------------------------------------------------- */

/* The shared-memory section's, further below. */
static double	shm_loss(void);
static void	print_shm(int *, int *);

struct ratio {
	char		 name[96];
	const char	*impl;
	double		 value;		/* the median of the rounds' ratios */
	double		 lo;		/* their minimum and maximum */
	double		 hi;
	int		 nrounds;	/* 0: from medians, not rounds */
	double		 target;
	int		 has_target;
	int		 at_most;	/* value must be <= target */
	int		 ok;		/* both figures were measured */
};

static struct ratio ratios[64];
static int nratios;

static double
med(const char *ck, enum impl im, const char *key, int *ok)
{
	struct bcase *c = find_case(ck);
	struct stat3 s;

	if (c == NULL || c->cell[im].n == 0) {
		*ok = 0;
		return 0;
	}
	s = stat_of(&c->cell[im], key);
	if (s.n == 0)
		*ok = 0;
	return s.med;
}

/*
 * The ratio of each round: a's run of round i against b's of the same
 * round (runs alternate within a round, so both saw the same machine);
 * r gets their median, minimum and maximum.  Unchanged when no round
 * has both.
 */
static void
round_ratios(struct ratio *r, const struct cell *a, const struct cell *b,
    const char *key)
{
	double v[MAX_ROUNDS], x, y;
	int i, n = 0;

	for (i = 0; i < a->n && i < b->n; i++)
		if (get_num(&a->runs[i], key, &x) == 0 &&
		    get_num(&b->runs[i], key, &y) == 0 && y > 0)
			v[n++] = x / y;
	if (n == 0)
		return;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_d);
	r->value = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	r->lo = v[0];
	r->hi = v[n - 1];
	r->nrounds = n;
	r->ok = 1;
}

static void
add_ratio(const char *name, enum impl im, double num, double den, int ok,
    double target, int has_target, int at_most)
{
	struct ratio *r;

	if (nratios == (int)(sizeof(ratios) / sizeof(ratios[0])))
		return;
	r = &ratios[nratios++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->impl = impl_key[im];
	r->ok = ok && den > 0;
	r->value = r->lo = r->hi = r->ok ? num / den : 0;
	r->target = target;
	r->has_target = has_target;
	r->at_most = at_most;
}

/* Adds num/den of both sipc implementations (only sipc local: local_only). */
static void
add_pair(const char *name, const char *ck, const char *key, const char *dck,
    enum impl den, double target, int has_target, int at_most,
    int local_only)
{
	double a, b;
	enum impl im;
	int ok;

	for (im = I_SIPC_TCP; im <= I_SIPC_LOCAL; im++) {
		if (local_only && im != I_SIPC_LOCAL)
			continue;
		ok = 1;
		a = med(ck, im, key, &ok);
		b = med(dck, den, key, &ok);
		add_ratio(name, im, a, b, ok, target, has_target, at_most);
		round_ratios(&ratios[nratios - 1], &find_case(ck)->cell[im],
		    &find_case(dck)->cell[den], key);
	}
}

/*
 * sipc tcp against the same over TCP of the --before build, in the same
 * rounds: issue 18's target is CPU per 64 B message at most half the old
 * code's.
 */
static void
before_ratios(void)
{
	static const struct {
		const char	*ck;
		const char	*key;
		const char	*name;
		double		 target;	/* at most; 0: none */
	} br[] = {
		{ "tput_64", "cpu_ns_per_message",
		    "1->1 64 B CPU ns per message vs before", 0.5 },
		{ "fan8_64", "cpu_ns_per_message",
		    "1->8 64 B CPU ns per message vs before", 0 },
		{ "tput_64", "messages_per_s", "1->1 64 B msg/s vs before", 0 },
		{ "fan8_64", "deliveries_per_s",
		    "1->8 64 B deliveries/s vs before", 0 },
		{ "tput_1k", "messages_per_s", "1->1 1 KiB msg/s vs before", 0 },
		{ "tput_64k", "messages_per_s",
		    "1->1 64 KiB msg/s vs before", 0 },
		{ "rtt_64", "p50_us", "round trip p50 vs before", 0 },
	};
	size_t k;
	int ok;
	double a, b;

	for (k = 0; k < sizeof(br) / sizeof(br[0]); k++) {
		ok = 1;
		a = med(br[k].ck, I_SIPC_TCP, br[k].key, &ok);
		b = med(br[k].ck, I_BEFORE, br[k].key, &ok);
		add_ratio(br[k].name, I_SIPC_TCP, a, b, ok, br[k].target,
		    br[k].target > 0, 1);
		round_ratios(&ratios[nratios - 1],
		    &find_case(br[k].ck)->cell[I_SIPC_TCP],
		    &find_case(br[k].ck)->cell[I_BEFORE], br[k].key);
	}
}

static void
compute_ratios(void)
{
	static const struct {
		const char	*ck;
		const char	*name;
		double		 zmq;	/* target vs ZeroMQ, 0: none */
		double		 lim;	/* target vs the TCP limit, 0: none */
	} tp[] = {
		{ "tput_64", "1->1 64 B msg/s", 2.0, 0 },
		{ "tput_1k", "1->1 1 KiB msg/s", 2.0, 0 },
		{ "tput_64k", "1->1 64 KiB msg/s", 1.5, 0.7 },
		{ "fan8_64", "1->8 64 B deliveries/s", 2.0, 0 },
		{ "fan8_1k", "1->8 1 KiB deliveries/s", 2.0, 0 },
	};
	char name[96];
	double a, q, hwm;
	const char *m;
	enum impl im;
	size_t k;
	int ok;

	for (k = 0; k < sizeof(tp) / sizeof(tp[0]); k++) {
		m = find_case(tp[k].ck)->metric;
		snprintf(name, sizeof(name), "%s vs ZeroMQ", tp[k].name);
		add_pair(name, tp[k].ck, m, tp[k].ck, I_ZMQ, tp[k].zmq, 1, 0,
		    0);
		snprintf(name, sizeof(name), "%s vs TCP limit", tp[k].name);
		add_pair(name, tp[k].ck, m, tp[k].ck, I_TCP, tp[k].lim,
		    tp[k].lim > 0, 0, 0);
		snprintf(name, sizeof(name), "%s vs Unix limit", tp[k].name);
		add_pair(name, tp[k].ck, m, tp[k].ck, I_UNIX, 0, 0, 0, 1);
	}
	if (before)
		before_ratios();
	add_pair("round trip p50 vs TCP ping-pong", "rtt_64", "p50_us",
	    "rtt_64", I_TCP, 1.5, 1, 1, 0);
	add_pair("round trip p50 vs Unix ping-pong", "rtt_64", "p50_us",
	    "rtt_64", I_UNIX, 0, 0, 1, 1);
	add_pair("round trip p50 vs ZeroMQ REQ/REP", "rtt_64", "p50_us",
	    "rtt_64", I_ZMQ, 0, 0, 1, 0);
	add_pair("connect + 1st msg p50 vs ZeroMQ", "connect", "p50_us",
	    "connect", I_ZMQ, 0, 0, 1, 0);
	add_pair("connect + 1st msg p50 vs TCP", "connect", "p50_us",
	    "connect", I_TCP, 2.5, 1, 1, 0);
	/* Request/reply (targets of the request/reply issue). */
	ok = 1;
	add_ratio("request p50 vs TCP ping-pong", I_SIPC_TCP,
	    med("req_rtt", I_SIPC_TCP, "p50_us", &ok),
	    med("rtt_64", I_TCP, "p50_us", &ok), ok, 1.25, 1, 1);
	round_ratios(&ratios[nratios - 1], &find_case("req_rtt")->cell[
	    I_SIPC_TCP], &find_case("rtt_64")->cell[I_TCP], "p50_us");
	ok = 1;
	add_ratio("request p50 vs Unix ping-pong", I_SIPC_LOCAL,
	    med("req_rtt", I_SIPC_LOCAL, "p50_us", &ok),
	    med("rtt_64", I_UNIX, "p50_us", &ok), ok, 1.25, 1, 1);
	round_ratios(&ratios[nratios - 1], &find_case("req_rtt")->cell[
	    I_SIPC_LOCAL], &find_case("rtt_64")->cell[I_UNIX], "p50_us");
	add_pair("request p50 vs ZeroMQ REQ/REP", "req_rtt", "p50_us",
	    "req_rtt", I_ZMQ, 0, 0, 1, 0);
	add_pair("request p50 vs NATS", "req_rtt", "p50_us", "req_rtt",
	    I_NATS, 0, 0, 1, 0);
	add_pair("64 outstanding 64 B req/s vs NATS", "req_pipe_64",
	    "requests_per_s", "req_pipe_64", I_NATS, 3.0, 1, 0, 0);
	add_pair("64 outstanding 64 B req/s vs ZeroMQ D/R", "req_pipe_64",
	    "requests_per_s", "req_pipe_64", I_ZMQ, 2.0, 1, 0, 0);
	add_pair("64 outstanding 1 KiB req/s vs NATS", "req_pipe_1k",
	    "requests_per_s", "req_pipe_1k", I_NATS, 3.0, 1, 0, 0);
	add_pair("64 outstanding 1 KiB req/s vs ZeroMQ D/R", "req_pipe_1k",
	    "requests_per_s", "req_pipe_1k", I_ZMQ, 2.0, 1, 0, 0);
	for (im = I_SIPC_TCP; im <= I_SIPC_LOCAL; im++) {
		ok = 1;
		a = med("req_first", im, "p50_us", &ok);
		q = med("connect", I_TCP, "p50_us", &ok) +
		    med("rtt_64", I_TCP, "p50_us", &ok);
		add_ratio("new requester p50 vs TCP connect+ping-pong", im,
		    a, q, ok, 3.0, 1, 1);
	}
	/* Memory: the largest backlog of any run, against the mark. */
	for (im = I_SIPC_TCP; im <= I_SIPC_LOCAL; im++) {
		q = hwm = 0;
		for (k = 0; k < NCASES; k++) {
			if (cases[k].kind != C_TPUT)
				continue;
			a = max_of(&cases[k].cell[im], "queued_bytes_max");
			if (a > q)
				q = a;
			a = max_of(&cases[k].cell[im], "hwm_bytes");
			if (a > hwm)
				hwm = a;
		}
		add_ratio("largest sender backlog / high-water mark", im, q,
		    hwm, hwm > 0, 1.0, 1, 1);
	}
	ok = 1;
	a = med("broker", I_BROKER, "lookup_p50_us", &ok);
	q = med("rtt_64", I_TCP, "p50_us", &ok);
	add_ratio("LOOKUP p50 vs TCP ping-pong p50", I_BROKER, a, q, ok, 1.5,
	    1, 1);
	ok = 1;
	a = med("broker", I_BROKER, "register_per_s_16", &ok);
	add_ratio("registrations/s, 16 clients", I_BROKER, a, 1, ok, 100000,
	    1, 0);
	ok = 1;
	a = med("broker", I_BROKER, "bytes_per_registration", &ok);
	add_ratio("broker bytes per registration", I_BROKER, a, 1, ok, 512,
	    1, 1);
}

static int
ratio_pass(const struct ratio *r)
{
	if (!r->ok)
		return 0;
	return r->at_most ? r->value <= r->target : r->value >= r->target;
}

static long long
total_loss(void)
{
	long long n = 0;
	size_t k;
	int i;

	for (k = 0; k < NCASES; k++)
		for (i = 0; i < NIMPL; i++)
			n += (long long)(lost_of(&cases[k].cell[i]) +
			    bad_of(&cases[k].cell[i]));
	return n + (long long)shm_loss();
}

static void
fmt_ratio(const struct ratio *r, char *buf, size_t size)
{
	if (r == NULL)
		buf[0] = '\0';
	else if (!r->ok)
		snprintf(buf, size, "n/a%s", r->has_target ? " MISS" : "");
	else if (r->nrounds > 1)
		snprintf(buf, size, "%.2fx (%.2f-%.2f)%s", r->value, r->lo,
		    r->hi, r->has_target ? (ratio_pass(r) ? " ok" : " MISS") :
		    "");
	else
		snprintf(buf, size, "%.2fx%s", r->value, r->has_target ?
		    (ratio_pass(r) ? " ok" : " MISS") : "");
}

static void
print_main_ratios(int *met, int *total)
{
	const struct ratio *r, *t, *l;
	char a[48], b[48], tgt[32];
	int i;

	printf("\nratios, median of the rounds' (min-max)           "
	    "target      sipc tcp                  sipc local\n");
	for (i = 0; i < nratios; i++) {
		r = &ratios[i];
		if (!strcmp(r->impl, "broker"))
			continue;
		/* One line per name: sipc tcp, then sipc local. */
		if (i > 0 && !strcmp(ratios[i - 1].name, r->name))
			continue;
		t = !strcmp(r->impl, "sipc_tcp") ? r : NULL;
		l = t == NULL ? r : i + 1 < nratios &&
		    !strcmp(ratios[i + 1].name, r->name) ? &ratios[i + 1] :
		    NULL;
		if (r->has_target)
			snprintf(tgt, sizeof(tgt), "%s %.2fx", r->at_most ?
			    "<=" : ">=", r->target);
		else
			snprintf(tgt, sizeof(tgt), "-");
		fmt_ratio(t, a, sizeof(a));
		fmt_ratio(l, b, sizeof(b));
		printf("  %-48s%-12s%-26s%s\n", r->name, tgt, a, b);
	}
	for (i = 0; i < nratios; i++) {
		if (!ratios[i].has_target)
			continue;
		(*total)++;
		*met += ratio_pass(&ratios[i]);
	}
	printf("\nsipc-epmd                                         "
	    "target      measured\n");
	for (i = 0; i < nratios; i++) {
		r = &ratios[i];
		if (strcmp(r->impl, "broker"))
			continue;
		if (strstr(r->name, " vs ")) {
			snprintf(tgt, sizeof(tgt), "<= %.2fx", r->target);
			fmt_ratio(r, a, sizeof(a));
		} else {
			snprintf(tgt, sizeof(tgt), "%s %.0f", r->at_most ?
			    "<=" : ">=", r->target);
			snprintf(a, sizeof(a), r->ok ? "%.0f %s" : "n/a",
			    r->value, ratio_pass(r) ? "ok" : "MISS");
		}
		printf("  %-48s%-12s%s\n", r->name, tgt, a);
	}
}

/* Every table of ratios, the loss and the targets met (in *met, out of
 * *total). */
static void
print_ratios(int *met, int *total)
{
	int lossless = total_loss() == 0;

	*met = *total = 0;
	if (!shm_only)
		print_main_ratios(met, total);
	print_shm(met, total);
	(*total)++;
	*met += lossless;
	printf("\n  zero loss in every run: %s (%lld messages lost, out of "
	    "order or damaged in all runs)\n", lossless ? "yes" : "NO",
	    total_loss());
	printf("  targets met: %d of %d\n", *met, *total);
}

/* ---- results.json -------------------------------------------------------- */

/* Adds name: {"median", "min", "max"} of key over the cell's runs, when
 * some run reported it: 0, or -1 when out of memory. */
static int
json_stat(struct json_object *o, const char *name, const struct cell *cl,
    const char *key)
{
	struct json_object *st;
	struct stat3 s = stat_of(cl, key);
	int err = 0;

	if (s.n == 0)
		return 0;
	st = json_object_new_object();
	err |= jo_add(st, "median", jo_num(s.med, "%.6g"));
	err |= jo_add(st, "min", jo_num(s.min, "%.6g"));
	err |= jo_add(st, "max", jo_num(s.max, "%.6g"));
	if (err) {
		json_object_put(st);
		return -1;
	}
	return jo_add(o, name, st);
}

/* Figures kept in results.json besides each case's metric. */
static const char *json_extra[] = { "mb_per_s", "cpu_ns_per_message",
    "requests_per_s",
    "p99_us", "p999_us", "queued_bytes_max", "sender_peak_rss_kb",
    "register_p50_us", "register_p99_us", "lookup_p99_us",
    "join_p50_us", "join_p99_us", "register_per_s_1",
    "register_per_s_16", "bytes_per_registration",
    "broker_cpu_ns_per_registration" };

/* Ends an object built with jo_add(): o, or NULL (o freed) after an
 * allocation failed. */
static struct json_object *
json_done(struct json_object *o, int err)
{
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* One implementation's cell of a case, with every run's own JSON. */
static struct json_object *
json_cell(const char *metric, const struct cell *cl)
{
	struct json_object *o = json_object_new_object(), *runs, *run;
	size_t e;
	int j, err = 0;

	err |= jo_add(o, "count", jo_i64(cl->count));
	err |= jo_add(o, "runs_ok", jo_i64(cl->n));
	err |= jo_add(o, "runs_failed", jo_i64(cl->failed));
	err |= json_stat(o, metric, cl, metric);
	for (e = 0; e < sizeof(json_extra) / sizeof(json_extra[0]); e++)
		if (strcmp(json_extra[e], metric))
			err |= json_stat(o, json_extra[e], cl, json_extra[e]);
	err |= jo_add(o, "lost", jo_num(lost_of(cl), "%.0f"));
	err |= jo_add(o, "errors", jo_num(bad_of(cl), "%.0f"));
	runs = json_object_new_array();
	for (j = 0; j < cl->n; j++) {
		/* Each run's line was parsed when it came (parse_json()). */
		if (cl->runs[j].raw == NULL ||
		    (run = json_tokener_parse(cl->runs[j].raw)) == NULL)
			continue;
		err |= jo_push(runs, run);
	}
	err |= jo_add(o, "runs", runs);
	return json_done(o, err);
}

/* A case's head: {"title", "metric", "size", "receivers", "impls": {}};
 * *impls is the (empty) object its cells go into. */
static struct json_object *
json_case(const char *title, const char *metric, long size, int receivers,
    struct json_object **impls)
{
	struct json_object *o = json_object_new_object();
	int err = 0;

	err |= jo_add(o, "title", jo_cstr(title));
	err |= jo_add(o, "metric", jo_cstr(metric));
	err |= jo_add(o, "size", jo_i64(size));
	err |= jo_add(o, "receivers", jo_i64(receivers));
	/* o holds the only reference: *impls lives as long as o. */
	*impls = json_object_new_object();
	err |= jo_add(o, "impls", *impls);
	return json_done(o, err);
}

static struct json_object *
json_ratio(const struct ratio *r)
{
	struct json_object *o = json_object_new_object();
	char target[48];
	int err = 0;

	err |= jo_add(o, "name", jo_cstr(r->name));
	err |= jo_add(o, "impl", jo_cstr(r->impl));
	if (r->ok) {
		err |= jo_add(o, "value", jo_num(r->value, "%.6g"));
		err |= jo_add(o, "min", jo_num(r->lo, "%.6g"));
		err |= jo_add(o, "max", jo_num(r->hi, "%.6g"));
		err |= jo_add(o, "rounds", jo_i64(r->nrounds));
	} else
		err |= jo_add(o, "value", jo_cstr(NULL));
	if (r->has_target) {
		snprintf(target, sizeof(target), "%s %g", r->at_most ? "<=" :
		    ">=", r->target);
		err |= jo_add(o, "target", jo_cstr(target));
		err |= jo_add(o, "pass", json_object_new_boolean(
		    ratio_pass(r)));
	}
	return json_done(o, err);
}

/* ---- Shared memory (issue 15) -------------------------------------------- */

/*
 * The "shared memory" section: the figures a same-host shared-memory
 * path is judged by, against its peers, in a table and ratios of their
 * own.  Each peer is a column with a function that builds its command
 * line; each case names the peers that run it (a bit per peer) and each
 * comparison of shm_cmp[] is a ratio taken per round.  A sipc column is
 * one more peer: an entry in enum shm_peer and shm_peer[] with its
 * command function, its bit in the cases, and its comparisons (with the
 * targets of the issue) in shm_cmp[].
 *
 * iceoryx needs its daemon: each round of this section starts a RouDi
 * (iox-roudi -c roudi.toml, waiting until it says it is ready) and stops
 * it with SIGTERM at the end of the round; RouDi then removes its files
 * in /dev/shm, which is checked.
 */
enum shm_peer {
	P_SIPC,		/* sipc bench --local: the ring, sipc_send() */
	P_SIPC_LOAN,	/* the same with --loan: header written in place */
	P_SIPC_UNIX,	/* SIPC_TRANSPORT=unix: sipc on the Unix socket */
	P_SIPC_TCP,	/* a broker on loopback, SIPC_TRANSPORT=tcp */
	P_IOX,		/* bench-iox: loan, header written */
	P_IOX_COPY,	/* bench-iox --copy: loan, whole message copied in */
	P_UNIX,		/* bench-tcp --unix */
	P_MEMCPY,	/* bench-tcp memcpy */
	NPEER
};

struct shm_case {
	const char	*key;
	const char	*title;
	enum kind	 kind;		/* C_TPUT or C_RTT */
	long		 size;
	int		 receivers;
	unsigned	 peers;		/* 1 << enum shm_peer */
	const char	*metric;
	struct cell	 cell[NPEER];
};

static void	shm_cmd_sipc(const struct job *, long, struct argv_buf *);
static void	shm_cmd_iox(const struct job *, long, struct argv_buf *);
static void	shm_cmd_unix(const struct job *, long, struct argv_buf *);
static void	shm_cmd_memcpy(const struct job *, long, struct argv_buf *);

static const struct {
	const char	*title;
	const char	*key;
	int		 roudi;		/* needs RouDi running */
	void		(*cmd)(const struct job *, long, struct argv_buf *);
} shm_peer[NPEER] = {
	{ "sipc shm", "sipc_shm", 0, shm_cmd_sipc },
	{ "sipc shm (loan)", "sipc_shm_loan", 0, shm_cmd_sipc },
	{ "sipc unix", "sipc_unix", 0, shm_cmd_sipc },
	{ "sipc tcp", "sipc_tcp", 0, shm_cmd_sipc },
	{ "iceoryx (loan)", "iceoryx", 1, shm_cmd_iox },
	{ "iceoryx (copy)", "iceoryx_copy", 1, shm_cmd_iox },
	{ "Unix (limit)", "unix", 0, shm_cmd_unix },
	{ "memcpy (ceiling)", "memcpy", 0, shm_cmd_memcpy },
};

#define SHM_SIPC	(B(P_SIPC) | B(P_SIPC_UNIX) | B(P_SIPC_TCP))
#define SHM_ALL		(SHM_SIPC | B(P_SIPC_LOAN) | B(P_IOX) | \
			 B(P_IOX_COPY) | B(P_UNIX) | B(P_MEMCPY))
#define SHM_FAN		(SHM_SIPC | B(P_SIPC_LOAN) | B(P_IOX) | \
			 B(P_IOX_COPY) | B(P_UNIX))
/* Round trips: sipc bench latency has no loan. */
#define SHM_MSG		(SHM_SIPC | B(P_IOX) | B(P_IOX_COPY) | B(P_UNIX))

static struct shm_case shm_cases[] = {
	{ "shm_tput_64", "1->1 64 B", C_TPUT, 64, 1, SHM_ALL,
	    "messages_per_s", { { 0 } } },
	{ "shm_tput_1k", "1->1 1 KiB", C_TPUT, 1024, 1, SHM_ALL,
	    "messages_per_s", { { 0 } } },
	{ "shm_tput_64k", "1->1 64 KiB", C_TPUT, 65536, 1, SHM_ALL,
	    "messages_per_s", { { 0 } } },
	{ "shm_tput_1m", "1->1 1 MiB", C_TPUT, 1048576, 1, SHM_ALL,
	    "messages_per_s", { { 0 } } },
	{ "shm_fan8_64", "1->8 64 B", C_TPUT, 64, 8, SHM_FAN,
	    "deliveries_per_s", { { 0 } } },
	{ "shm_fan8_64k", "1->8 64 KiB", C_TPUT, 65536, 8, SHM_FAN,
	    "deliveries_per_s", { { 0 } } },
	{ "shm_rtt_64", "round trip 64 B", C_RTT, 64, 1, SHM_MSG,
	    "p50_us", { { 0 } } },
	{ "shm_rtt_64k", "round trip 64 KiB", C_RTT, 65536, 1, SHM_MSG,
	    "p50_us", { { 0 } } },
};
#define NSHM	(sizeof(shm_cases) / sizeof(shm_cases[0]))

/* Per round: peer num's figure key (NULL: the case's metric) over den's
 * in case ck; a target when target > 0 (at most it when at_most). */
static const struct {
	const char	*ck;
	int		 num;
	int		 den;
	const char	*key;
	double		 target;
	int		 at_most;
} shm_cmp[] = {
	/* Issue 15's targets. */
	{ "shm_rtt_64", P_SIPC, P_UNIX, NULL, 0.5, 1 },
	{ "shm_rtt_64", P_SIPC, P_IOX, NULL, 1.5, 1 },
	{ "shm_rtt_64k", P_SIPC, P_UNIX, NULL, 0.5, 1 },
	{ "shm_rtt_64k", P_SIPC, P_IOX, NULL, 1.5, 1 },
	{ "shm_tput_64k", P_SIPC, P_UNIX, NULL, 3, 0 },
	{ "shm_tput_64k", P_SIPC_LOAN, P_UNIX, NULL, 3, 0 },
	{ "shm_tput_64k", P_SIPC, P_MEMCPY, "mb_per_s", 0.5, 0 },
	{ "shm_tput_1m", P_SIPC, P_UNIX, NULL, 3, 0 },
	{ "shm_tput_1m", P_SIPC_LOAN, P_UNIX, NULL, 3, 0 },
	{ "shm_tput_1m", P_SIPC, P_MEMCPY, "mb_per_s", 0.5, 0 },
	{ "shm_fan8_64k", P_SIPC, P_SIPC_UNIX, NULL, 4, 0 },
	/* Where sipc stands otherwise. */
	{ "shm_tput_64", P_SIPC, P_SIPC_UNIX, NULL, 0, 0 },
	{ "shm_tput_64", P_SIPC, P_IOX, NULL, 0, 0 },
	{ "shm_tput_1k", P_SIPC, P_SIPC_UNIX, NULL, 0, 0 },
	{ "shm_tput_64k", P_SIPC, P_SIPC_UNIX, NULL, 0, 0 },
	{ "shm_tput_64k", P_SIPC_LOAN, P_IOX, NULL, 0, 0 },
	{ "shm_tput_1m", P_SIPC_LOAN, P_IOX, NULL, 0, 0 },
	{ "shm_fan8_64k", P_SIPC_LOAN, P_IOX, NULL, 0, 0 },
	{ "shm_rtt_64", P_SIPC, P_SIPC_UNIX, NULL, 0, 1 },
	/* The peers against each other. */
	{ "shm_tput_64", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_64", P_IOX_COPY, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_64", P_IOX_COPY, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_tput_1k", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_1k", P_IOX_COPY, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_1k", P_IOX_COPY, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_tput_64k", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_64k", P_IOX_COPY, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_64k", P_IOX_COPY, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_tput_64k", P_UNIX, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_tput_1m", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_1m", P_IOX_COPY, P_UNIX, NULL, 0, 0 },
	{ "shm_tput_1m", P_IOX_COPY, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_tput_1m", P_UNIX, P_MEMCPY, "mb_per_s", 0, 0 },
	{ "shm_fan8_64", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_fan8_64k", P_IOX, P_UNIX, NULL, 0, 0 },
	{ "shm_fan8_64k", P_IOX_COPY, P_UNIX, NULL, 0, 0 },
	{ "shm_rtt_64", P_IOX, P_UNIX, NULL, 0, 1 },
	{ "shm_rtt_64k", P_IOX, P_UNIX, NULL, 0, 1 },
	{ "shm_rtt_64k", P_IOX_COPY, P_UNIX, NULL, 0, 1 },
};
#define NSHM_CMP	(sizeof(shm_cmp) / sizeof(shm_cmp[0]))

static struct ratio shm_ratios[NSHM_CMP];
static char	    path_iox[512], path_roudi_cfg[512] =
		    "scripts/bench/roudi.toml", path_roudi_log[512];
static pid_t	    roudi_pid = -1;
static pid_t	    main_pid;

/* sipc bench with the transport forced (env(1): the variable for that
 * command only). */
static void
shm_cmd_sipc(const struct job *j, long count, struct argv_buf *a)
{
	const struct shm_case *c = j->c;

	memset(a, 0, sizeof(*a));
	arg(a, "/usr/bin/env");
	arg(a, j->im == P_SIPC_UNIX ? "SIPC_TRANSPORT=unix" :
	    j->im == P_SIPC_TCP ? "SIPC_TRANSPORT=tcp" : "SIPC_TRANSPORT=shm");
	arg(a, path_sipc);
	arg(a, "bench");
	arg(a, c->kind == C_RTT ? "latency" : c->receivers > 1 ? "fanout" :
	    "throughput");
	if (j->im == P_SIPC_TCP) {
		arg(a, "--broker");
		arg(a, broker_addr);
		arg(a, "--spawn");
	} else
		arg(a, "--local");
	if (c->kind == C_TPUT)
		argl(a, "--receivers", c->receivers);
	if (j->im == P_SIPC_LOAN)
		arg(a, "--loan");
	argl(a, "--size", c->size);
	argl(a, "--count", count);
	arg(a, "--json");
}

static void
shm_cmd_iox(const struct job *j, long count, struct argv_buf *a)
{
	const struct shm_case *c = j->c;

	memset(a, 0, sizeof(*a));
	arg(a, path_iox);
	arg(a, c->kind == C_TPUT ? "stream" : "pingpong");
	if (c->kind == C_TPUT)
		argl(a, "--receivers", c->receivers);
	if (j->im == P_IOX_COPY)
		arg(a, "--copy");
	argl(a, "--size", c->size);
	argl(a, "--count", count);
}

static void
shm_cmd_unix(const struct job *j, long count, struct argv_buf *a)
{
	const struct shm_case *c = j->c;

	memset(a, 0, sizeof(*a));
	arg(a, path_tcp);
	arg(a, c->kind == C_TPUT ? "stream" : "pingpong");
	if (c->kind == C_TPUT)
		argl(a, "--receivers", c->receivers);
	arg(a, "--unix");
	argl(a, "--size", c->size);
	argl(a, "--count", count);
}

static void
shm_cmd_memcpy(const struct job *j, long count, struct argv_buf *a)
{
	const struct shm_case *c = j->c;

	memset(a, 0, sizeof(*a));
	arg(a, path_tcp);
	arg(a, "memcpy");
	argl(a, "--size", c->size);
	argl(a, "--count", count);
}

static void
shm_job(struct shm_case *c, int p, struct job *j)
{
	memset(j, 0, sizeof(*j));
	j->kind = c->kind;
	j->size = c->size;
	j->max = max_count(c->kind, I_UNIX);
	snprintf(j->what, sizeof(j->what), "%s %s", shm_peer[p].title,
	    c->title);
	j->cell = &c->cell[p];
	j->c = c;
	j->im = p;
	j->cmd = shm_peer[p].cmd;
}

static int
roudi_exec(void *arg)
{
	int fd;

	/* SIGTERM, not fork_bound()'s SIGKILL, should bench-run die:
	 * RouDi then removes its files in /dev/shm. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if ((fd = open(path_roudi_log, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0644)) != -1) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execlp("iox-roudi", "iox-roudi", "-c", path_roudi_cfg, "-l",
	    "warning", (char *)NULL);
	fprintf(stderr, "bench-run: cannot execute iox-roudi: %s\n",
	    strerror(errno));
	return 127;
}

/* Whether RouDi's log says it is ready, from offset from on. */
static int
roudi_ready(off_t from)
{
	char buf[4096];
	ssize_t n;
	int fd, ready = 0;

	if ((fd = open(path_roudi_log, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	if ((n = pread(fd, buf, sizeof(buf) - 1, from)) > 0) {
		buf[n] = '\0';
		ready = strstr(buf, "RouDi is ready for clients") != NULL;
	}
	close(fd);
	return ready;
}

/* Starts RouDi and waits up to 10 s until it is ready: 0, or -1 after
 * a message (nothing left running). */
static int
roudi_start(void)
{
	struct stat st;
	off_t from = stat(path_roudi_log, &st) == 0 ? st.st_size : 0;
	int i;

	if ((roudi_pid = proc_fork(roudi_exec, NULL)) == -1) {
		fprintf(stderr, "bench-run: fork: %s\n", strerror(errno));
		return -1;
	}
	for (i = 0; i < 400; i++) {
		if (roudi_ready(from))
			return 0;
		if (waitpid(roudi_pid, NULL, WNOHANG) == roudi_pid) {
			roudi_pid = -1;
			break;
		}
		sleep_ms(25);
	}
	if (roudi_pid > 0)
		proc_stop(roudi_pid, 5000);
	roudi_pid = -1;
	fprintf(stderr, "bench-run: iox-roudi did not start (is another "
	    "RouDi running? see %s)\n", path_roudi_log);
	return -1;
}

/*
 * SIGTERM, then a look for what it left.  A RouDi that does not exit
 * with 0 (it aborts when a registered process has died unnoticed) leaves
 * its shared memory, sockets and locks behind: those of the RouDi this
 * driver started (only one can run on a host), named by iceoryx, are
 * removed here then, and each is reported.
 */
static void
roudi_stop(void)
{
	struct passwd *pw = getpwuid(getuid());
	char seg[300], *left[] = { "/dev/shm/iceoryx_mgmt", seg,
	    "/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock" };
	size_t i;
	int st;

	if (roudi_pid <= 0)
		return;
	st = proc_stop(roudi_pid, 5000);
	roudi_pid = -1;
	snprintf(seg, sizeof(seg), "/dev/shm/%s", pw ? pw->pw_name : "?");
	if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		/* A clean stop leaves nothing: say so when it did. */
		for (i = 0; i < 2; i++)
			if (access(left[i], F_OK) == 0) {
				fprintf(stderr, "bench-run: iox-roudi left %s "
				    "behind\n", left[i]);
				failures++;
			}
		return;
	}
	fprintf(stderr, "bench-run: iox-roudi did not stop cleanly (see %s)\n",
	    path_roudi_log);
	failures++;
	for (i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		if (unlink(left[i]) == 0)
			fprintf(stderr, "bench-run: removed %s, which it left "
			    "behind\n", left[i]);
}

/* On exit() (fatal()): RouDi stopped, so that /dev/shm is clean. */
static void
roudi_atexit(void)
{
	if (getpid() == main_pid && roudi_pid > 0)
		proc_stop(roudi_pid, 5000);
}

/*
 * One round of the section (round < 0: the pilots), with a RouDi of its
 * own; the peers take turns as in the main table.
 */
static void
shm_round(int round)
{
	struct shm_case *c;
	struct job j;
	size_t k;
	int i, p, up = roudi_start() == 0, failed = failures;

	for (k = 0; k < NSHM; k++) {
		c = &shm_cases[k];
		for (i = 0; i < NPEER; i++) {
			p = (round < 0 ? i : round + i) % NPEER;
			if (!(c->peers & B(p)) || c->cell[p].count < 0)
				continue;
			shm_job(c, p, &j);
			if (shm_peer[p].roudi && !up) {
				failures++;
				if (round < 0)
					c->cell[p].count = -1;
				else
					c->cell[p].failed++;
				continue;
			}
			if (round >= 0)
				measure_job(&j, round);
			else if (calibrate_job(&j) == -1) {
				c->cell[p].count = -1;
				failures++;
			}
		}
	}
	/* A bench-iox process killed on time out stays registered until
	 * RouDi's monitoring drops it (1.5 s): RouDi would abort on SIGTERM
	 * before that. */
	if (up && failures > failed)
		sleep_ms(2000);
	roudi_stop();
}

static double
shm_loss(void)
{
	double n = 0;
	size_t k;
	int p;

	for (k = 0; k < NSHM; k++)
		for (p = 0; p < NPEER; p++)
			n += lost_of(&shm_cases[k].cell[p]) +
			    bad_of(&shm_cases[k].cell[p]);
	return n;
}

static struct shm_case *
shm_find(const char *key)
{
	size_t k;

	for (k = 0; k < NSHM; k++)
		if (!strcmp(shm_cases[k].key, key))
			return &shm_cases[k];
	return NULL;
}

static void
shm_compute_ratios(void)
{
	const struct shm_case *c;
	struct ratio *r;
	const char *key;
	size_t i;

	for (i = 0; i < NSHM_CMP; i++) {
		r = &shm_ratios[i];
		memset(r, 0, sizeof(*r));
		if ((c = shm_find(shm_cmp[i].ck)) == NULL)
			continue;
		key = shm_cmp[i].key ? shm_cmp[i].key : c->metric;
		snprintf(r->name, sizeof(r->name), "%s %s: %s vs %s",
		    c->title, !strcmp(key, "mb_per_s") ? "MB/s" :
		    !strcmp(key, "p50_us") ? "p50" : c->receivers > 1 ?
		    "deliveries/s" : "msg/s", shm_peer[shm_cmp[i].num].title,
		    shm_peer[shm_cmp[i].den].title);
		r->impl = shm_peer[shm_cmp[i].num].key;
		r->target = shm_cmp[i].target;
		r->has_target = shm_cmp[i].target > 0;
		r->at_most = shm_cmp[i].at_most;
		round_ratios(r, &c->cell[shm_cmp[i].num],
		    &c->cell[shm_cmp[i].den], key);
	}
}

/* The section's table and ratios; its targets are added to *met and
 * *total. */
static void
print_shm(int *met, int *total)
{
	const struct shm_case *c;
	char lab[64], a[48], tgt[32];
	size_t k;
	int i;

	printf("\nshared memory\n%-*s", 30, "case (median, min-max)");
	for (i = 0; i < NPEER; i++)
		printf("%-*s", COLW, shm_peer[i].title);
	printf("\n");
	for (k = 0; k < NSHM; k++) {
		c = &shm_cases[k];
		if (c->kind == C_TPUT) {
			snprintf(lab, sizeof(lab), "%s  %s", c->title,
			    c->receivers > 1 ? "deliveries/s" : "msg/s");
			row_cells(c->cell, c->peers, 0, NPEER, lab, c->metric);
			row_cells(c->cell, c->peers, 0, NPEER, "  MB/s",
			    "mb_per_s");
			row_cells(c->cell, c->peers, 0, NPEER,
			    "  CPU ns per message", "cpu_ns_per_message");
			row_loss_cells(c->cell, c->peers, 0, NPEER);
		} else {
			snprintf(lab, sizeof(lab), "%s  p50 us", c->title);
			row_cells(c->cell, c->peers, 0, NPEER, lab, "p50_us");
			row_cells(c->cell, c->peers, 0, NPEER, "  p99 us",
			    "p99_us");
			row_cells(c->cell, c->peers, 0, NPEER,
			    "  CPU ns per round trip", "cpu_ns_per_message");
		}
	}
	printf("\n  iceoryx: Debian's iceoryx 2.0 C binding, a RouDi per "
	    "round; loan: the sender writes the\n  16-byte header into the "
	    "loaned chunk; copy: the whole message.  Receivers in processes "
	    "of\n  their own wait in a WaitSet.  memcpy: one thread, one "
	    "message copied to a destination\n  walking 8 MiB (see "
	    "scripts/bench/README.md).\n");
	printf("\nshared memory: ratios, median of the rounds' (min-max)      "
	    "target      value\n");
	for (k = 0; k < NSHM_CMP; k++) {
		const struct ratio *r = &shm_ratios[k];

		if (r->has_target)
			snprintf(tgt, sizeof(tgt), "%s %.2fx", r->at_most ?
			    "<=" : ">=", r->target);
		else
			snprintf(tgt, sizeof(tgt), "-");
		fmt_ratio(r, a, sizeof(a));
		printf("  %-58s%-12s%s\n", r->name, tgt, a);
		if (r->has_target) {
			(*total)++;
			*met += ratio_pass(r);
		}
	}
}

/* results.json: "shm_cases" and "shm_ratios", after the others. */
static int
write_shm_json(struct json_object *o)
{
	struct json_object *cs, *co, *im, *ra;
	const struct shm_case *c;
	size_t k;
	int p, err = 0;

	cs = json_object_new_object();
	for (k = 0; k < NSHM; k++) {
		c = &shm_cases[k];
		if ((co = json_case(c->title, c->metric, c->size, c->receivers,
		    &im)) == NULL) {
			err = -1;
			continue;
		}
		for (p = 0; p < NPEER; p++)
			if (c->peers & B(p))
				err |= jo_add(im, shm_peer[p].key,
				    json_cell(c->metric, &c->cell[p]));
		err |= jo_add(cs, c->key, co);
	}
	err |= jo_add(o, "shm_cases", cs);
	ra = json_object_new_array();
	for (k = 0; k < NSHM_CMP; k++)
		err |= jo_push(ra, json_ratio(&shm_ratios[k]));
	err |= jo_add(o, "shm_ratios", ra);
	return err;
}

static void
write_json(double elapsed, int met, int total)
{
	struct json_object *o = json_object_new_object(), *cs, *co, *im, *ra;
	const struct bcase *c;
	struct utsname u;
	FILE *fp;
	size_t k;
	int i, err = 0;

	uname(&u);
	err |= jo_add(o, "rounds", jo_i64(rounds));
	err |= jo_add(o, "seconds_per_measurement", jo_num(target_s, "%.2f"));
	err |= jo_add(o, "elapsed_s", jo_num(elapsed, "%.1f"));
	err |= jo_add(o, "cpus", jo_i64(sysconf(_SC_NPROCESSORS_ONLN)));
	err |= jo_add(o, "kernel", jo_cstr(u.release));
	err |= jo_add(o, "rtt_cpu", jo_i64(rtt_cpu));
	err |= jo_add(o, "other_cpu_percent", jo_num(other_cpu_pct, "%.1f"));
	err |= jo_add(o, "steal_percent", jo_num(steal_pct, "%.1f"));
	cs = json_object_new_object();
	for (k = 0; k < NCASES; k++) {
		c = &cases[k];
		if ((co = json_case(c->title, c->metric, c->size, c->receivers,
		    &im)) == NULL) {
			err = -1;
			continue;
		}
		for (i = 0; i < NIMPL; i++)
			if (c->impls & B(i))
				err |= jo_add(im, impl_key[i],
				    json_cell(c->metric, &c->cell[i]));
		err |= jo_add(cs, c->key, co);
	}
	err |= jo_add(o, "cases", cs);
	ra = json_object_new_array();
	for (i = 0; i < nratios; i++)
		err |= jo_push(ra, json_ratio(&ratios[i]));
	err |= jo_add(o, "ratios", ra);
	err |= write_shm_json(o);
	err |= jo_add(o, "all_lossless", json_object_new_boolean(
	    total_loss() == 0));
	err |= jo_add(o, "total_lost_or_bad", jo_i64(total_loss()));
	err |= jo_add(o, "measurements_failed", jo_i64(failures));
	err |= jo_add(o, "targets_met", jo_i64(met));
	err |= jo_add(o, "targets", jo_i64(total));
	if (err) {
		fprintf(stderr, "bench-run: %s: out of memory\n", path_out);
		json_object_put(o);
		failures++;
		return;
	}
	if ((fp = fopen(path_out, "w")) == NULL) {
		fprintf(stderr, "bench-run: %s: %s\n", path_out,
		    strerror(errno));
		json_object_put(o);
		failures++;
		return;
	}
	if (jo_write(fp, o, JO_PRETTY) == -1 || fclose(fp) != 0) {
		fprintf(stderr, "bench-run: writing %s: %s\n", path_out,
		    strerror(errno));
		failures++;
	}
	json_object_put(o);
}

/* ---- Other load on the machine ------------------------------------------- */

/* The machine's CPU time from /proc/stat, in ns: busy (steal: 0) or
 * taken by the hypervisor for others (steal: 1). */
static int64_t
machine_cpu_ns(int steal)
{
	unsigned long long v[8] = { 0 };
	FILE *fp;
	int n;

	if ((fp = fopen("/proc/stat", "r")) == NULL)
		return 0;
	n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(fp);
	if (n < 4)
		return 0;
	/* Busy: user, nice, system, irq, softirq; not idle (3), iowait
	 * (4) or steal (7). */
	return (int64_t)(steal ? v[7] : v[0] + v[1] + v[2] + v[5] + v[6]) *
	    (1000000000 / sysconf(_SC_CLK_TCK));
}

/* CPU time of this process and every descendant it has reaped. */
static int64_t
own_cpu_ns(void)
{
	return cpu_self_ns() + cpu_children_ns();
}

/* ---- Main ---------------------------------------------------------------- */

static void
paths(void)
{
	snprintf(path_sipc, sizeof(path_sipc), "%s/bin/sipc", build);
	snprintf(path_epmd, sizeof(path_epmd), "%s/bin/sipc-epmd", build);
	snprintf(path_tcp, sizeof(path_tcp), "%s/bench/bin/bench-tcp", build);
	snprintf(path_zmq, sizeof(path_zmq), "%s/bench/bin/bench-zmq", build);
	snprintf(path_broker, sizeof(path_broker), "%s/bench/bin/bench-broker",
	    build);
	snprintf(path_log, sizeof(path_log), "%s/bench/sipc-epmd.log", build);
	snprintf(path_nats, sizeof(path_nats), "%s/bench/bin/bench-nats",
	    build);
	snprintf(path_nats_log, sizeof(path_nats_log),
	    "%s/bench/nats-server.log", build);
	snprintf(path_iox, sizeof(path_iox), "%s/bench/bin/bench-iox", build);
	snprintf(path_roudi_log, sizeof(path_roudi_log), "%s/bench/roudi.log",
	    build);
	if (path_out[0] == '\0')
		snprintf(path_out, sizeof(path_out), "%s/bench/results.json",
		    build);
	if (before)
		snprintf(path_before, sizeof(path_before), "%s/bin/sipc",
		    before);
}

int
main(int argc, char **argv)
{
	int64_t t0 = t_start = mono_ns(), busy0 = machine_cpu_ns(0),
	    steal0 = machine_cpu_ns(1),
	    own0 = own_cpu_ns();
	size_t k;
	int i, rd, im, start, met, total;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	prog = "bench-run";
	signal(SIGPIPE, SIG_IGN);
	main_pid = getpid();
	atexit(roudi_atexit);
	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--quick")) {
			rounds = 1;
			target_s = 0.2;
			continue;
		}
		if (!strcmp(o, "--shm-only")) {
			shm_only = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage_error("%s needs a value", o);
		if (!strcmp(o, "--build"))
			build = argv[++i];
		else if (!strcmp(o, "--rounds"))
			rounds = (int)opt_long(o, argv[++i], 1, MAX_ROUNDS);
		else if (!strcmp(o, "--seconds"))
			target_s = (double)opt_long(o, argv[++i], 1, 60);
		else if (!strcmp(o, "--rtt-cpu"))
			rtt_cpu = (int)opt_long(o, argv[++i], -1, ncpu - 1);
		else if (!strcmp(o, "--out"))
			snprintf(path_out, sizeof(path_out), "%s", argv[++i]);
		else if (!strcmp(o, "--before"))
			before = argv[++i];
		else if (!strcmp(o, "--roudi-config"))
			snprintf(path_roudi_cfg, sizeof(path_roudi_cfg), "%s",
			    argv[++i]);
		else
			usage_error("unknown option '%s'", o);
	}
	if (build == NULL)
		usage_error("usage: bench-run --build DIR [--rounds N] "
		    "[--seconds S] [--rtt-cpu N] [--out FILE] [--quick] "
		    "[--shm-only] [--roudi-config FILE] [--before DIR]");
	if (rtt_cpu == -2)
		rtt_cpu = ncpu > 1 ? (int)ncpu - 1 : -1;
	paths();
	if (access(path_sipc, X_OK) || access(path_epmd, X_OK) ||
	    access(path_tcp, X_OK) || access(path_zmq, X_OK) ||
	    access(path_broker, X_OK) || access(path_nats, X_OK) ||
	    access(path_iox, X_OK))
		fatal("programs missing under %s: run make bench", build);
	if (access(path_roudi_cfg, R_OK))
		fatal("%s: %s (--roudi-config)", path_roudi_cfg,
		    strerror(errno));
	if (before && access(path_before, X_OK))
		fatal("%s: %s (--before)", path_before, strerror(errno));
	/* The other build's sipc over TCP in every one-way case and the
	 * round trip, beside this one's. */
	for (k = 0; k < NCASES && before; k++)
		if (cases[k].kind == C_TPUT || cases[k].kind == C_RTT)
			cases[k].impls |= B(I_BEFORE);
	unlink(path_roudi_log);		/* this run's log only */
	epmd_start();			/* sipc tcp of both sections */
	if (!shm_only)
		nats_start();
	printf("make bench: %d round%s of %zu + %zu shared-memory cases, "
	    "%.1f s per measurement, %ld CPUs", rounds, rounds == 1 ? "" :
	    "s", shm_only ? 0 : NCASES, NSHM, target_s, ncpu);
	printf("; sipc tcp via the broker at %s", broker_addr);
	printf("\n");
	printf("sizing message counts (one pilot run each) ...\n");
	fflush(stdout);
	for (k = 0; k < NCASES && !shm_only; k++)
		for (im = 0; im < NIMPL; im++)
			if ((cases[k].impls & B(im)) &&
			    calibrate(&cases[k], (enum impl)im) == -1) {
				cases[k].cell[im].count = -1;
				failures++;
			}
	shm_round(-1);
	for (rd = 0; rd < rounds; rd++) {
		printf("round %d of %d (%.0f s so far) ...\n", rd + 1, rounds,
		    (double)(mono_ns() - t0) / 1e9);
		fflush(stdout);
		for (k = 0; k < NCASES && !shm_only; k++) {
			/* Round-robin, each round starting one further. */
			start = rd % NIMPL;
			for (i = 0; i < NIMPL; i++) {
				im = (start + i) % NIMPL;
				if (cases[k].impls & B(im))
					measure(&cases[k], (enum impl)im, rd);
			}
		}
		shm_round(rd);
	}
	server_stop(&epmd_pid, 0, "sipc-epmd", path_log);
	/* nats-server exits 1 on SIGTERM, by design. */
	server_stop(&nats_pid, 1, "nats-server", path_nats_log);
	/* What else ran meanwhile: the machine's busy time less ours. */
	other_cpu_pct = (double)((machine_cpu_ns(0) - busy0) - (own_cpu_ns() -
	    own0)) * 100.0 / ((double)(mono_ns() - t0) * (double)ncpu);
	if (other_cpu_pct < 0)
		other_cpu_pct = 0;
	steal_pct = (double)(machine_cpu_ns(1) - steal0) * 100.0 /
	    ((double)(mono_ns() - t0) * (double)ncpu);
	if (!shm_only) {
		print_table();
		compute_ratios();
	}
	shm_compute_ratios();
	print_ratios(&met, &total);
	write_json((double)(mono_ns() - t0) / 1e9, met, total);
	printf("\n  other processes used %.0f %% of the machine's CPU time "
	    "during the bench, the hypervisor (steal) %.1f %%%s\n",
	    other_cpu_pct, steal_pct, other_cpu_pct > 10 || steal_pct > 5 ?
	    ": the figures are disturbed; run again on a quiet machine" :
	    "");
	printf("\n%s written; %.0f s in all.\n", path_out,
	    (double)(mono_ns() - t0) / 1e9);
	for (k = 0; k < NCASES; k++)
		for (im = 0; im < NIMPL; im++)
			for (i = 0; i < cases[k].cell[im].n; i++)
				free(cases[k].cell[im].runs[i].raw);
	if (failures)
		fprintf(stderr, "bench-run: %d measurement%s failed (see "
		    "above)\n", failures, failures == 1 ? "" : "s");
	if (total_loss())
		fprintf(stderr, "bench-run: messages were lost or damaged\n");
	return failures || total_loss() ? 1 : 0;
}
