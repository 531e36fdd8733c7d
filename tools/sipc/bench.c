/*
 * bench.c - sipc bench: measure sipc on this host, or between hosts.
 *
 *   sipc bench throughput|fanout|latency|connect [options]
 *   sipc bench serve HANDLE [options]    receivers for runs from elsewhere
 *
 * The measuring side sends; its receivers are "serve" processes: children
 * it starts itself (the local registry, in a private directory; or a
 * broker with --spawn), or ones a user started on other hosts (--broker).
 * Serve processes count and check every message and report back over sipc
 * itself (HANDLE.report); round trips are ping-pong over HANDLE.ping and
 * HANDLE.pong, echoed from inside the receiving callback.
 *
 * Uses only the public API (sipc.h), like any other program.  It measures;
 * it tunes nothing and is no part of the library.  The side-by-side
 * comparison with ZeroMQ and plain TCP is `make bench` (scripts/bench/).
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "bench.h"
#include "opts.h"

/*
 * Every benchmark message starts with a 16-byte header: "SBn1", a kind
 * byte, three zero bytes, and a big-endian counter (data: 0, 1, 2, ...).
 * Control messages (BEGIN, END, READY, REPORT) carry big-endian u64 fields
 * after it at the offsets below.
 */
#define BM_MAGIC	"SBn1"
#define BM_HDR		16
#define K_DATA		'D'
#define K_PING		'P'
#define K_BEGIN		'B'
#define K_END		'E'
#define K_READY		'Y'
#define K_REPORT	'R'

#define F_RUN		16	/* BEGIN, END, READY, REPORT: run id */
#define F_COUNT		24	/* BEGIN, END: data messages in the run */
#define F_SIZE		32	/* BEGIN: bytes per data message */
#define F_MODE		40	/* BEGIN: MODE_* */
#define CTL_LEN		64

#define F_INST		24	/* READY, REPORT: the serve process */
#define F_GOT		32	/* REPORT: data messages in order */
#define F_BAD		40	/* out of order, duplicate, wrong size */
#define F_GAPS		48	/* reported missing by on_gap */
#define F_BYTES		56
#define F_CPU		64	/* CPU ns between BEGIN and END */
#define F_FIRST		72	/* CLOCK_MONOTONIC ns: first data message */
#define F_LAST		80	/* and the last one */
#define F_ECHOED	88
#define F_ECHOFAIL	96
#define F_FOREIGN	104	/* messages of other senders or runs */
#define REPORT_LEN	112

enum mode {
	MODE_THROUGHPUT = 1,
	MODE_FANOUT,
	MODE_LATENCY,
	MODE_CONNECT
};

#define DEF_HANDLE	"sipc-bench"
#define HANDLE_ROOM	(255 - 24)	/* for ".report", ".c<pid>.<i>" */
#define MAX_RECEIVERS	256
#define MAX_SIZE	(64L * 1024 * 1024)
#define SLICE_MS	100		/* wake-up period of every wait */
#define STATS_BYTES	(1024 * 1024)	/* send loop: sample the backlog */

/* SIGINT or SIGTERM: every loop and wait of the bench stops and cleans
 * up (children, the private directory). */
static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	interrupted = sig;
}

static int
check_interrupted(void)
{
	if (!interrupted)
		return 0;
	fprintf(stderr, "sipc bench: interrupted by signal %d\n",
	    (int)interrupted);
	return -1;
}

/* ---- Small helpers ------------------------------------------------------- */

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of this process (every thread), or of its reaped children. */
static int64_t
cpu_ns(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) == -1)
		return 0;
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    1000000000 + ((int64_t)ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000;
}

static long
peak_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static long
rss_kb(void)
{
	FILE *fp;
	long pages = 0, resident = 0;

	if ((fp = fopen("/proc/self/statm", "r")) == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A message of len bytes (>= BM_HDR) of kind; the filler is a pattern. */
static void
bm_init(uint8_t *buf, size_t len, int kind)
{
	size_t i;

	for (i = BM_HDR; i < len; i++)
		buf[i] = (uint8_t)(i * 7);
	memcpy(buf, BM_MAGIC, 4);
	buf[4] = (uint8_t)kind;
	buf[5] = buf[6] = buf[7] = 0;
	put64(buf + 8, 0);
}

/* The kind of a benchmark message, or -1 for anything else. */
static int
bm_kind(const void *data, size_t len)
{
	const uint8_t *p = data;

	if (len < BM_HDR || memcmp(p, BM_MAGIC, 4) != 0)
		return -1;
	return p[4];
}

static uint64_t
random64(void)
{
	uint64_t v = 0;
	FILE *fp;

	if ((fp = fopen("/dev/urandom", "rb")) != NULL) {
		if (fread(&v, sizeof(v), 1, fp) != 1)
			v = 0;
		fclose(fp);
	}
	if (v == 0)
		v = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
	return v ? v : 1;
}

static const char *
errtext(int rc)
{
	return *sipc_errmsg() ? sipc_errmsg() : sipc_strerror(rc);
}

static void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* Waits on cv (under mu) for at most ms milliseconds. */
static void
cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..1] of sorted v[0..n), in microseconds. */
static double
pct_us(const int64_t *v, size_t n, double q)
{
	double rank = q * (double)n;
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)rank;
	if ((double)i < rank)
		i++;		/* ceil */
	i = i == 0 ? 0 : i - 1;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

/* ---- Options ------------------------------------------------------------- */

/* --broker, else $SIPC_BROKER unless --local, into *broker (NULL: the
 * local registry); 0, or -1 after a message (who: "sipc bench"). */
static int
broker_choice(const char *who, int local, const char **broker)
{
	const char *env;

	if (local && *broker) {
		fprintf(stderr, "%s: --local and --broker exclude each other\n",
		    who);
		return -1;
	}
	if (!local && *broker == NULL && (env = getenv("SIPC_BROKER")) &&
	    *env)
		*broker = env;
	return 0;
}

struct opts {
	enum mode	 mode;
	long		 size;
	long		 count;
	long		 receivers;
	const char	*broker;	/* NULL: local */
	int		 spawn;		/* start our own serve children */
	int		 json;
	const char	*handle;
	long		 timeout_ms;	/* each wait */
	long		 max_time_ms;	/* the whole measurement */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sipc bench throughput|fanout|latency|connect\n"
	    "                  [--size BYTES] [--count N] [--receivers N]\n"
	    "                  [--broker HOST:PORT [--spawn] | --local]\n"
	    "                  [--handle HANDLE] [--timeout MS] "
	    "[--max-time MS] [--json]\n"
	    "       sipc bench serve HANDLE [--broker HOST:PORT | --local]\n"
	    "                  [--runs N] [--max-time MS] [--quiet]\n"
	    "\n"
	    "throughput  one sender, --receivers (1) receivers: --count "
	    "messages of\n"
	    "            --size bytes (64), then flush; the time runs from "
	    "the first\n"
	    "            send until every receiver has every message.\n"
	    "fanout      the same with 8 receivers by default; rates count "
	    "deliveries\n"
	    "            (messages x receivers).\n"
	    "latency     ping-pong: a message to HANDLE.ping, echoed back on\n"
	    "            HANDLE.pong from the receiving callback; round trips "
	    "in us.\n"
	    "connect     from sipc_sender_new() on a new handle until its "
	    "first\n"
	    "            message reaches a fresh receiver (registered before, "
	    "in this\n"
	    "            process on its own EPM): discovery, connection, "
	    "handshake and\n"
	    "            one message; --count times, in us.\n"
	    "\n"
	    "Without --broker (and $SIPC_BROKER), or with --local, the bench "
	    "uses the\n"
	    "local registry in a private temporary directory and starts its "
	    "receivers\n"
	    "as child processes.  With --broker it uses receivers started "
	    "elsewhere:\n"
	    "    sipc bench serve HANDLE --broker HOST:PORT   (on each "
	    "receiving host)\n"
	    "    sipc bench fanout --handle HANDLE --broker HOST:PORT "
	    "--receivers N\n"
	    "or, with --spawn, starts them here.  One bench at a time per "
	    "HANDLE\n"
	    "(default " DEF_HANDLE ").  serve answers every kind of run until "
	    "--runs\n"
	    "runs are done, --max-time passes, or SIGINT/SIGTERM.\n"
	    "\n"
	    "Reported: messages/s, MB/s (10^6 payload bytes delivered), loss "
	    "(must\n"
	    "be 0), CPU time per message (this process and its receivers, "
	    "each by\n"
	    "getrusage over the measured interval), latency percentiles.  "
	    "--json\n"
	    "prints one JSON object instead.  --timeout bounds every wait "
	    "(10000 ms),\n"
	    "--max-time the whole measurement (120000 ms).  Exit 0 when "
	    "nothing was\n"
	    "lost, 1 on errors or loss, 2 on bad usage.\n");
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	int i, local = 0, rx_set = 0, count_set = 0;
	long v;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(a, "--local")) {
			local = 1;
			continue;
		}
		if (!strcmp(a, "--spawn")) {
			o->spawn = 1;
			continue;
		}
		if (a[0] != '-') {
			fprintf(stderr, "sipc bench: unexpected argument "
			    "'%s'\n", a);
			return -1;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc bench: %s needs a value\n", a);
			return -1;
		}
		i++;
		if (!strcmp(a, "--broker"))
			o->broker = val;
		else if (!strcmp(a, "--handle")) {
			if (strlen(val) == 0 || strlen(val) > HANDLE_ROOM) {
				fprintf(stderr, "sipc bench: --handle: 1 to "
				    "%d bytes\n", HANDLE_ROOM);
				return -1;
			}
			o->handle = val;
		} else if (!strcmp(a, "--size")) {
			if (cli_parse_long(a, val, BM_HDR, MAX_SIZE,
			    &o->size) == -1)
				return -1;
		} else if (!strcmp(a, "--count")) {
			if (cli_parse_long(a, val, 1, 100000000, &o->count) ==
			    -1)
				return -1;
			count_set = 1;
		} else if (!strcmp(a, "--receivers")) {
			if (cli_parse_long(a, val, 1, MAX_RECEIVERS,
			    &o->receivers) == -1)
				return -1;
			rx_set = 1;
		} else if (!strcmp(a, "--timeout")) {
			if (cli_parse_long(a, val, 100, 3600000, &v) == -1)
				return -1;
			o->timeout_ms = v;
		} else if (!strcmp(a, "--max-time")) {
			if (cli_parse_long(a, val, 100, 86400000, &v) == -1)
				return -1;
			o->max_time_ms = v;
		} else {
			fprintf(stderr, "sipc bench: unknown option '%s'\n",
			    a);
			return -1;
		}
	}
	if (broker_choice("sipc bench", local, &o->broker) == -1)
		return -1;
	if (o->broker == NULL)
		o->spawn = 1;		/* local: always our own children */
	if (o->mode == MODE_FANOUT && !rx_set)
		o->receivers = 8;
	if ((o->mode == MODE_LATENCY || o->mode == MODE_CONNECT) &&
	    o->count > 10000000) {
		fprintf(stderr, "sipc bench: --count: at most 10000000 for "
		    "%s\n", o->mode == MODE_LATENCY ? "latency" : "connect");
		return -1;
	}
	if (o->mode == MODE_CONNECT && rx_set)
		fprintf(stderr, "sipc bench: connect uses one receiver at a "
		    "time; --receivers ignored\n");
	if (!count_set) {
		if (o->mode == MODE_LATENCY)
			o->count = 10000;
		else if (o->mode == MODE_CONNECT)
			o->count = 200;
		else {
			/* About 1 GiB of payload, 1000 to 10^6 messages. */
			o->count = (1L << 30) / o->size;
			if (o->count > 1000000)
				o->count = 1000000;
			if (o->count < 1000)
				o->count = 1000;
		}
	}
	return 0;
}

/* ---- serve: receivers for benchmark runs --------------------------------- */

struct sevent {
	int		kind;		/* K_BEGIN, K_END */
	int		mode;
	uint8_t		msg[REPORT_LEN];	/* END: the report to send */
	uint64_t	run;
};

#define SEV_MAX		16

struct serve {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct sevent	 ev[SEV_MAX];	/* under mu */
	unsigned	 ev_head;
	unsigned	 ev_n;
	int		 ev_lost;

	uint64_t	 instance;
	sipc_epm	*epm;
	sipc_receiver	*rx_data;
	sipc_receiver	*rx_ping;
	sipc_sender	*tx_report;
	sipc_sender	*tx_pong;	/* set before any receiver exists */

	/* I/O thread only. */
	uint64_t	 run;
	uint64_t	 data_sender;
	int		 active;
	uint64_t	 count;
	uint64_t	 size;
	uint64_t	 expect;
	uint64_t	 got;
	uint64_t	 bad;
	uint64_t	 gaps;
	uint64_t	 bytes;
	uint64_t	 foreign;
	int64_t		 cpu0;
	int64_t		 first_ns;
	int64_t		 last_ns;
	uint64_t	 echoed;
	uint64_t	 echo_failed;
};

static void
serve_post(struct serve *s, const struct sevent *e)
{
	pthread_mutex_lock(&s->mu);
	if (s->ev_n < SEV_MAX) {
		s->ev[(s->ev_head + s->ev_n) % SEV_MAX] = *e;
		s->ev_n++;
	} else
		s->ev_lost = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
serve_begin(struct serve *s, const uint8_t *p, uint64_t sender_id)
{
	struct sevent e;
	uint64_t run = get64(p + F_RUN);

	if (run != s->run) {
		/* A new run: everything counts from here. */
		s->run = run;
		s->data_sender = sender_id;
		s->count = get64(p + F_COUNT);
		s->size = get64(p + F_SIZE);
		s->expect = 0;
		s->got = s->bad = s->gaps = s->bytes = s->foreign = 0;
		s->echoed = s->echo_failed = 0;
		s->first_ns = s->last_ns = 0;
		s->cpu0 = cpu_ns(RUSAGE_SELF);
		s->active = 1;
	}
	memset(&e, 0, sizeof(e));
	e.kind = K_BEGIN;
	e.run = run;
	e.mode = (int)get64(p + F_MODE);
	serve_post(s, &e);
}

static void
serve_end(struct serve *s, const uint8_t *p, uint64_t sender_id)
{
	struct sevent e;

	if (!s->active || get64(p + F_RUN) != s->run ||
	    sender_id != s->data_sender) {
		s->foreign++;
		return;
	}
	s->active = 0;
	memset(&e, 0, sizeof(e));
	e.kind = K_END;
	e.run = s->run;
	bm_init(e.msg, REPORT_LEN, K_REPORT);
	put64(e.msg + F_RUN, s->run);
	put64(e.msg + F_INST, s->instance);
	put64(e.msg + F_GOT, s->got);
	put64(e.msg + F_BAD, s->bad);
	put64(e.msg + F_GAPS, s->gaps);
	put64(e.msg + F_BYTES, s->bytes);
	put64(e.msg + F_CPU, (uint64_t)(cpu_ns(RUSAGE_SELF) - s->cpu0));
	put64(e.msg + F_FIRST, (uint64_t)s->first_ns);
	put64(e.msg + F_LAST, (uint64_t)s->last_ns);
	put64(e.msg + F_ECHOED, s->echoed);
	put64(e.msg + F_ECHOFAIL, s->echo_failed);
	put64(e.msg + F_FOREIGN, s->foreign);
	serve_post(s, &e);
}

/* HANDLE: BEGIN, the data messages, END. */
static void
serve_data(sipc_receiver *rx, const char *handle, const void *data,
    size_t len, uint64_t sender_id, uint64_t seq, void *arg)
{
	struct serve *s = arg;
	const uint8_t *p = data;
	uint64_t c;

	(void)rx;
	(void)handle;
	(void)seq;
	switch (bm_kind(data, len)) {
	case K_DATA:
		if (!s->active || sender_id != s->data_sender) {
			s->foreign++;
			return;
		}
		c = get64(p + 8);
		if (c == s->expect && len == s->size) {
			s->got++;
			s->expect++;
		} else {
			s->bad++;
			if (c >= s->expect)
				s->expect = c + 1;
		}
		s->bytes += len;
		if (c == 0)
			s->first_ns = now_ns();
		if (c + 1 == s->count)
			s->last_ns = now_ns();
		break;
	case K_BEGIN:
		if (len >= CTL_LEN)
			serve_begin(s, p, sender_id);
		break;
	case K_END:
		if (len >= CTL_LEN)
			serve_end(s, p, sender_id);
		break;
	default:
		s->foreign++;
		break;
	}
}

/* HANDLE.ping: echo on HANDLE.pong, from the I/O thread (never blocks). */
static void
serve_ping(sipc_receiver *rx, const char *handle, const void *data,
    size_t len, uint64_t sender_id, uint64_t seq, void *arg)
{
	struct serve *s = arg;

	(void)rx;
	(void)handle;
	(void)sender_id;
	(void)seq;
	if (sipc_send(s->tx_pong, data, len) == 0)
		s->echoed++;
	else
		s->echo_failed++;
}

static void
serve_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first,
    uint64_t count, void *arg)
{
	struct serve *s = arg;

	(void)rx;
	(void)first;
	if (sender_id == s->data_sender)
		s->gaps += count;
}

/* Sends msg on tx once it has a receiver; 0 or -1 after a message. */
static int
serve_reply(sipc_sender *tx, const uint8_t *msg, size_t len, int timeout_ms,
    int quiet)
{
	int rc;

	if ((rc = sipc_sender_wait_receivers(tx, 1, timeout_ms)) != 0 ||
	    (rc = sipc_send(tx, msg, len)) != 0) {
		if (!quiet)
			fprintf(stderr, "sipc bench serve: cannot answer the "
			    "bench: %s\n", errtext(rc));
		return -1;
	}
	return 0;
}

/*
 * After the last run: stay until the bench's senders have closed (10 s at
 * most), so that they see every acknowledgement before we go.
 */
static void
serve_linger(sipc_receiver *rx_data, sipc_receiver *rx_ping)
{
	struct sipc_receiver_stats a, b;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int64_t end = now_ns() + 10 * (int64_t)1000000000;

	while (now_ns() < end) {
		if (sipc_receiver_stats(rx_data, &a) != 0 ||
		    sipc_receiver_stats(rx_ping, &b) != 0 ||
		    a.senders + b.senders == 0)
			return;
		nanosleep(&ts, NULL);
	}
}

struct serve_cfg {
	const char	*handle;
	const char	*broker;	/* NULL: the local registry */
	long		 runs;		/* 0: until stopped */
	long		 max_time;	/* ms, 0: no limit */
	int		 quiet;
};

/* Options of serve into *c: 0, 1 after --help, -1 after a usage error. */
static int
serve_parse(int argc, char **argv, struct serve_cfg *c)
{
	int i, local = 0;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--local")) {
			local = 1;
			continue;
		}
		if (!strcmp(a, "--quiet")) {
			c->quiet = 1;
			continue;
		}
		if (a[0] != '-') {
			if (c->handle) {
				fprintf(stderr, "sipc bench serve: unexpected "
				    "argument '%s'\n", a);
				return -1;
			}
			c->handle = a;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc bench serve: %s needs a value\n",
			    a);
			return -1;
		}
		i++;
		if (!strcmp(a, "--broker"))
			c->broker = val;
		else if (!strcmp(a, "--runs")) {
			if (cli_parse_long(a, val, 1, LONG_MAX, &c->runs) == -1)
				return -1;
		} else if (!strcmp(a, "--max-time")) {
			if (cli_parse_long(a, val, 100, LONG_MAX / 1000000,
			    &c->max_time) == -1)
				return -1;
		} else {
			fprintf(stderr, "sipc bench serve: unknown option "
			    "'%s'\n", a);
			return -1;
		}
	}
	if (c->handle == NULL || strlen(c->handle) > HANDLE_ROOM) {
		fprintf(stderr, "sipc bench serve: a HANDLE of 1 to %d bytes "
		    "is needed\n", HANDLE_ROOM);
		return -1;
	}
	return broker_choice("sipc bench serve", local, &c->broker);
}

/*
 * The EPM, the senders (HANDLE.report, HANDLE.pong) and then the
 * receivers (HANDLE.ping, HANDLE): a receiver that exists can be sent to,
 * and its answers must have somewhere to go.  0 or -1 after a message.
 */
static int
serve_open(struct serve *s, const struct serve_cfg *c)
{
	struct sipc_receiver_opts ro;
	struct sipc_sender_opts so;
	char name[300];
	int rc;

	if (c->broker == NULL) {
		if ((rc = sipc_epm_local(&s->epm)) != 0) {
			fprintf(stderr, "sipc bench serve: local registry: "
			    "%s\n", errtext(rc));
			return -1;
		}
	} else if (cli_epm(c->broker, 10000, &s->epm) != 0)
		return -1;
	sipc_sender_opts_init(&so);
	so.linger_ms = 2000;
	snprintf(name, sizeof(name), "%s.report", c->handle);
	if ((rc = sipc_sender_new(name, s->epm, &so, &s->tx_report)) != 0)
		goto fail;
	snprintf(name, sizeof(name), "%s.pong", c->handle);
	if ((rc = sipc_sender_new(name, s->epm, &so, &s->tx_pong)) != 0)
		goto fail;
	sipc_receiver_opts_init(&ro);
	ro.on_message = serve_ping;
	ro.arg = s;
	snprintf(name, sizeof(name), "%s.ping", c->handle);
	if ((rc = sipc_receiver_new(name, s->epm, &ro, &s->rx_ping)) != 0)
		goto fail;
	ro.on_message = serve_data;
	ro.on_gap = serve_gap;
	snprintf(name, sizeof(name), "%s", c->handle);
	if ((rc = sipc_receiver_new(name, s->epm, &ro, &s->rx_data)) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "sipc bench serve: %s: %s\n", name, errtext(rc));
	return -1;
}

static void
serve_close(struct serve *s)
{
	/* Receivers first: no callback may use tx_pong after it closes. */
	sipc_receiver_close(s->rx_data);
	sipc_receiver_close(s->rx_ping);
	sipc_sender_close(s->tx_pong);
	sipc_sender_close(s->tx_report);
	sipc_epm_close(s->epm);
}

/* Answers a BEGIN with READY once the way back (and, for round trips,
 * the echo path) is open. */
static void
serve_ready(struct serve *s, const struct serve_cfg *c,
    const struct sevent *e)
{
	uint8_t ready[CTL_LEN];
	int rc;

	if (e->mode == MODE_LATENCY && (rc = sipc_sender_wait_receivers(
	    s->tx_pong, 1, 10000)) != 0) {
		if (!c->quiet)
			fprintf(stderr, "sipc bench serve: no receiver of "
			    "%s.pong: %s\n", c->handle, errtext(rc));
		return;
	}
	bm_init(ready, sizeof(ready), K_READY);
	put64(ready + F_RUN, e->run);
	put64(ready + F_INST, s->instance);
	serve_reply(s->tx_report, ready, sizeof(ready), 10000, c->quiet);
}

/*
 * Serves runs until c->runs are done (0), --max-time passes or a signal
 * in set arrives (0, or 1 when runs were asked for and not done).
 */
static int
serve_loop(struct serve *s, const struct serve_cfg *c, sigset_t *set)
{
	struct timespec zero = { 0, 0 };
	struct sevent e;
	int64_t deadline = c->max_time ? now_ns() + (int64_t)c->max_time *
	    1000000 : 0;
	long done = 0;
	int have;

	for (;;) {
		if (sigtimedwait(set, NULL, &zero) > 0)
			return 0;
		if (deadline && now_ns() > deadline) {
			if (!c->quiet)
				fprintf(stderr, "sipc bench serve: --max-time "
				    "%ld ms passed; stopping\n", c->max_time);
			return c->runs ? 1 : 0;
		}
		pthread_mutex_lock(&s->mu);
		if (s->ev_n == 0)
			cond_wait_ms(&s->cv, &s->mu, SLICE_MS);
		if ((have = s->ev_n > 0) != 0) {
			e = s->ev[s->ev_head];
			s->ev_head = (s->ev_head + 1) % SEV_MAX;
			s->ev_n--;
		}
		if (s->ev_lost && !c->quiet)
			fprintf(stderr, "sipc bench serve: events lost\n");
		s->ev_lost = 0;
		pthread_mutex_unlock(&s->mu);
		if (!have)
			continue;
		if (e.kind == K_BEGIN) {
			serve_ready(s, c, &e);
			continue;
		}
		if (serve_reply(s->tx_report, e.msg, REPORT_LEN, 10000,
		    c->quiet) == 0)
			sipc_sender_flush(s->tx_report, 5000);
		if (c->runs && ++done >= c->runs) {
			serve_linger(s->rx_data, s->rx_ping);
			return 0;
		}
	}
}

static int
cmd_serve(int argc, char **argv)
{
	struct serve_cfg c;
	struct serve *s;
	sigset_t set;
	char ep[160];
	int rc, status = 1;

	if ((rc = serve_parse(argc, argv, &c)) != 0)
		return rc == 1 ? 0 : 2;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fprintf(stderr, "sipc bench serve: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&s->mu, NULL);
	cond_init_mono(&s->cv);
	s->instance = random64();
	/* Before any thread exists, so that they all inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (serve_open(s, &c) == 0) {
		if (!c.quiet && sipc_receiver_endpoint(s->rx_data, ep,
		    sizeof(ep)) == 0)
			fprintf(stderr, "sipc bench serve: '%s' at %s (%s); "
			    "waiting for benchmark runs\n", c.handle, ep,
			    c.broker ? c.broker : "local registry");
		status = serve_loop(s, &c, &set);
	}
	serve_close(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return status;
}

/* ---- The measuring side -------------------------------------------------- */

/* What the bench uses of a REPORT. */
struct report {
	uint64_t	got;
	uint64_t	bad;
	uint64_t	gaps;
	int64_t		cpu;
	int64_t		last_ns;
	int64_t		arrived_ns;
};

struct bench {
	struct opts	 o;
	char		 handle[256];
	char		 tmpdir[128];	/* local: private registry */
	pid_t		 kids[MAX_RECEIVERS];
	int		 nkids;
	sipc_epm	*epm;
	sipc_receiver	*rx_report;
	sipc_receiver	*rx_pong;
	uint64_t	 run;

	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	/* Under mu. */
	uint64_t	 ready[MAX_RECEIVERS];
	size_t		 nready;
	struct report	 rep[MAX_RECEIVERS];
	size_t		 nrep;
	uint64_t	 send_lost;

	/* Ping-pong: the I/O thread only, from the first ping to done. */
	sipc_sender	*tx_ping;
	uint8_t		*ping;
	size_t		 echoers;
	size_t		 pongs;		/* for the ping in flight */
	long		 seq;		/* ping in flight */
	long		 warmup;
	long		 total;
	int64_t		 t_ping;
	int64_t		*samples;
	uint64_t	 stray;
	int		 lat_error;	/* under mu with done */
	int		 done;		/* under mu */
	long		 progress;	/* under mu */

	/* connect: under mu. */
	int		 arrived;
	int64_t		 t_arrived;
};

struct result {
	double		 seconds;
	uint64_t	 messages;
	uint64_t	 deliveries;
	uint64_t	 lost;
	uint64_t	 bad;
	uint64_t	 gaps;
	uint64_t	 sender_lost;
	int64_t		 cpu_self;
	int64_t		 cpu_rx;
	long		 rss_before_kb;
	long		 peak_rss_kb;
	size_t		 queued_max;
	size_t		 hwm;
	size_t		 receivers;
	int		 rx_clock;	/* end time from the receivers' clock */
	int64_t		*samples;	/* latency, connect: sorted, ns */
	size_t		 nsamples;
	int64_t		*ready;		/* connect: to sender ready, sorted */
};

static void
bench_report_cb(sipc_receiver *rx, const char *handle, const void *data,
    size_t len, uint64_t sender_id, uint64_t seq, void *arg)
{
	struct bench *b = arg;
	const uint8_t *p = data;
	struct report *r;
	int kind = bm_kind(data, len);
	size_t i;

	(void)rx;
	(void)handle;
	(void)sender_id;
	(void)seq;
	if ((kind != K_READY && kind != K_REPORT) || len < CTL_LEN ||
	    get64(p + F_RUN) != b->run)
		return;
	pthread_mutex_lock(&b->mu);
	if (kind == K_READY) {
		for (i = 0; i < b->nready; i++)
			if (b->ready[i] == get64(p + F_INST))
				break;
		if (i == b->nready && b->nready < MAX_RECEIVERS)
			b->ready[b->nready++] = get64(p + F_INST);
	} else if (len >= REPORT_LEN && b->nrep < MAX_RECEIVERS) {
		r = &b->rep[b->nrep++];
		r->got = get64(p + F_GOT);
		r->bad = get64(p + F_BAD);
		r->gaps = get64(p + F_GAPS);
		r->cpu = (int64_t)get64(p + F_CPU);
		r->last_ns = (int64_t)get64(p + F_LAST);
		r->arrived_ns = now_ns();
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void
bench_send_failed(sipc_sender *tx, int error, const char *endpoint,
    uint64_t lost, void *arg)
{
	struct bench *b = arg;

	(void)tx;
	pthread_mutex_lock(&b->mu);
	b->send_lost += lost;
	pthread_mutex_unlock(&b->mu);
	fprintf(stderr, "sipc bench: %llu messages to %s lost: %s\n",
	    (unsigned long long)lost, endpoint, sipc_strerror(error));
}

/* ---- Children ------------------------------------------------------------ */

/* Starts n serve children on b->handle; 0 or -1 after a message. */
static int
kids_spawn(struct bench *b, int n)
{
	char maxt[32], *argv[12];
	pid_t pid, parent = getpid();
	int i, a = 0;

	snprintf(maxt, sizeof(maxt), "%ld", b->o.max_time_ms +
	    3 * b->o.timeout_ms);
	argv[a++] = "sipc";
	argv[a++] = "bench";
	argv[a++] = "serve";
	argv[a++] = b->handle;
	if (b->o.broker) {
		argv[a++] = "--broker";
		argv[a++] = (char *)b->o.broker;
	} else
		argv[a++] = "--local";
	argv[a++] = "--runs";
	argv[a++] = "1";
	argv[a++] = "--max-time";
	argv[a++] = maxt;
	argv[a++] = "--quiet";
	argv[a] = NULL;
	fflush(NULL);
	for (i = 0; i < n; i++) {
		if ((pid = fork()) == -1) {
			fprintf(stderr, "sipc bench: fork: %s\n",
			    strerror(errno));
			return -1;
		}
		if (pid == 0) {
			/* Die with the bench, even when it is killed. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(1);
			execv("/proc/self/exe", argv);
			_exit(127);
		}
		b->kids[b->nkids++] = pid;
	}
	return 0;
}

/* -1 (after a message) when a child has ended before its time. */
static int
kids_check(struct bench *b)
{
	int i, st;
	pid_t pid;

	for (i = 0; i < b->nkids; i++) {
		if (b->kids[i] <= 0)
			continue;
		if ((pid = waitpid(b->kids[i], &st, WNOHANG)) != b->kids[i])
			continue;
		b->kids[i] = -1;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;	/* done with its run */
		if (WIFEXITED(st))
			fprintf(stderr, "sipc bench: receiver process %ld "
			    "exited with status %d%s\n", (long)pid,
			    WEXITSTATUS(st), WEXITSTATUS(st) == 127 ?
			    " (cannot execute /proc/self/exe)" : "");
		else
			fprintf(stderr, "sipc bench: receiver process %ld "
			    "killed by signal %d\n", (long)pid,
			    WTERMSIG(st));
		return -1;
	}
	return 0;
}

static int
kids_left(struct bench *b)
{
	int i, n = 0;

	for (i = 0; i < b->nkids; i++)
		n += b->kids[i] > 0;
	return n;
}

/*
 * Lets the children end on their own for grace_ms, then SIGTERM, then
 * SIGKILL; reaps each by its pid.
 */
static void
kids_reap(struct bench *b, int grace_ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int64_t end;
	int i, phase;

	for (phase = 0; phase < 3 && kids_left(b); phase++) {
		if (phase > 0)
			for (i = 0; i < b->nkids; i++)
				if (b->kids[i] > 0)
					kill(b->kids[i], phase == 1 ?
					    SIGTERM : SIGKILL);
		end = now_ns() + (int64_t)(phase == 0 ? grace_ms : 2000) *
		    1000000;
		while (kids_left(b) && now_ns() < end) {
			for (i = 0; i < b->nkids; i++)
				if (b->kids[i] > 0 && waitpid(b->kids[i], NULL,
				    WNOHANG) == b->kids[i])
					b->kids[i] = -1;
			if (kids_left(b))
				nanosleep(&ts, NULL);
		}
	}
	for (i = 0; i < b->nkids; i++)
		if (b->kids[i] > 0 && waitpid(b->kids[i], NULL, 0) ==
		    b->kids[i])
			b->kids[i] = -1;
	b->nkids = 0;
}

/* ---- Private registry directory ------------------------------------------ */

static int
tmpdir_make(struct bench *b)
{
	const char *t = getenv("TMPDIR");

	/* Socket paths must fit 107 bytes: keep the directory short. */
	if (t == NULL || t[0] != '/' || strlen(t) > 40)
		t = "/tmp";
	snprintf(b->tmpdir, sizeof(b->tmpdir), "%s/sipc-bench.XXXXXX", t);
	if (mkdtemp(b->tmpdir) == NULL) {
		fprintf(stderr, "sipc bench: mkdtemp %s: %s\n", b->tmpdir,
		    strerror(errno));
		b->tmpdir[0] = '\0';
		return -1;
	}
	/* mkdtemp makes it 0700: the registry's own rule. */
	if (setenv("XDG_RUNTIME_DIR", b->tmpdir, 1) == -1 ||
	    unsetenv("SIPC_BROKER") == -1) {
		fprintf(stderr, "sipc bench: setenv: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void
tmpdir_remove(struct bench *b)
{
	char sub[192], path[512];
	struct dirent *de;
	DIR *d;

	if (b->tmpdir[0] == '\0')
		return;
	snprintf(sub, sizeof(sub), "%s/sipc", b->tmpdir);
	if ((d = opendir(sub)) != NULL) {
		/* Sockets of receivers that did not get to unlink them. */
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub,
			    de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(sub);
	if (rmdir(b->tmpdir) == -1)
		fprintf(stderr, "sipc bench: cannot remove %s: %s\n",
		    b->tmpdir, strerror(errno));
	b->tmpdir[0] = '\0';
}

/* ---- Setup and teardown -------------------------------------------------- */

static int
bench_epm(struct bench *b, sipc_epm **epm)
{
	int rc;

	if (b->o.broker)
		return cli_epm(b->o.broker, (int)b->o.timeout_ms, epm) == 0 ?
		    0 : -1;
	if ((rc = sipc_epm_local(epm)) != 0) {
		fprintf(stderr, "sipc bench: local registry: %s\n",
		    errtext(rc));
		return -1;
	}
	return 0;
}

static int
bench_receiver(struct bench *b, const char *suffix, sipc_message_fn fn,
    sipc_receiver **rx)
{
	struct sipc_receiver_opts ro;
	char name[300];
	int rc;

	sipc_receiver_opts_init(&ro);
	ro.on_message = fn;
	ro.arg = b;
	snprintf(name, sizeof(name), "%s%s", b->handle, suffix);
	if ((rc = sipc_receiver_new(name, b->epm, &ro, rx)) != 0) {
		fprintf(stderr, "sipc bench: receiver %s: %s\n", name,
		    errtext(rc));
		return -1;
	}
	return 0;
}

static int
bench_sender(struct bench *b, const char *suffix, sipc_sender **tx)
{
	struct sipc_sender_opts so;
	char name[300];
	int rc;

	sipc_sender_opts_init(&so);
	so.on_send_failed = bench_send_failed;
	so.arg = b;
	so.send_timeout_ms = (int)b->o.timeout_ms;
	so.linger_ms = (int)b->o.timeout_ms;
	snprintf(name, sizeof(name), "%s%s", b->handle, suffix);
	if ((rc = sipc_sender_new(name, b->epm, &so, tx)) != 0) {
		fprintf(stderr, "sipc bench: sender %s: %s\n", name,
		    errtext(rc));
		return -1;
	}
	return 0;
}

static const char *
epm_name(const struct bench *b)
{
	return b->o.broker ? "broker" : "local";
}

/*
 * Waits until tx has want receivers, checking the children; 0, or -1
 * after saying what is missing (and, for remote receivers, what to
 * start).
 */
static int
wait_receivers(struct bench *b, sipc_sender *tx, size_t want)
{
	int64_t end = now_ns() + b->o.timeout_ms * 1000000;

	while (sipc_sender_wait_receivers(tx, want, SLICE_MS) != 0) {
		if (check_interrupted() || (b->nkids && kids_check(b) == -1))
			return -1;
		if (now_ns() < end)
			continue;
		fprintf(stderr, "sipc bench: %zu of %zu receivers of '%s' "
		    "after %ld ms\n", sipc_sender_receivers(tx), want,
		    b->handle, b->o.timeout_ms);
		if (!b->o.spawn)
			fprintf(stderr,
			    "Start them on the receiving host(s), one "
			    "process per receiver:\n"
			    "    sipc bench serve %s --broker %s\n"
			    "or let the bench start them here with "
			    "--spawn.\n", b->handle, b->o.broker);
		return -1;
	}
	return 0;
}

static int
have_ready(struct bench *b, size_t want)
{
	return b->nready >= want;
}

static int
have_reports(struct bench *b, size_t want)
{
	return b->nrep >= want;
}

/*
 * Waits (under nothing) until pred(b, want) holds under b->mu, at most
 * ms milliseconds, checking the children; 0, 1 on timeout, -1 when a
 * child died.
 */
static int
wait_for(struct bench *b, int (*pred)(struct bench *, size_t), size_t want,
    long ms)
{
	int64_t end = now_ns() + (int64_t)ms * 1000000;
	int ok;

	for (;;) {
		pthread_mutex_lock(&b->mu);
		if (!(ok = pred(b, want)))
			cond_wait_ms(&b->cv, &b->mu, SLICE_MS);
		ok = pred(b, want);
		pthread_mutex_unlock(&b->mu);
		if (ok)
			return 0;
		if (check_interrupted() || (b->nkids && kids_check(b) == -1))
			return -1;
		if (now_ns() >= end)
			return 1;
	}
}

/* BEGIN on ctl until want receivers answered READY; 0 or -1. */
static int
handshake(struct bench *b, sipc_sender *ctl, size_t want, int mode,
    uint64_t count)
{
	uint8_t msg[CTL_LEN];
	int64_t end = now_ns() + b->o.timeout_ms * 1000000;
	int rc;

	bm_init(msg, sizeof(msg), K_BEGIN);
	put64(msg + F_RUN, b->run);
	put64(msg + F_COUNT, count);
	put64(msg + F_SIZE, (uint64_t)b->o.size);
	put64(msg + F_MODE, (uint64_t)mode);
	/* Resent each second: a serve process that answered into a path
	 * not yet open (a previous bench's receiver) answers again. */
	for (;;) {
		if ((rc = sipc_send(ctl, msg, sizeof(msg))) != 0) {
			fprintf(stderr, "sipc bench: send: %s\n",
			    errtext(rc));
			return -1;
		}
		if ((rc = wait_for(b, have_ready, want, 1000)) == 0)
			return 0;
		if (rc == -1)
			return -1;
		if (now_ns() >= end)
			break;
	}
	pthread_mutex_lock(&b->mu);
	fprintf(stderr, "sipc bench: %zu of %zu receivers answered within "
	    "%ld ms (is another bench using '%s'?)\n", b->nready, want,
	    b->o.timeout_ms, b->handle);
	pthread_mutex_unlock(&b->mu);
	return -1;
}

static int
send_end(struct bench *b, sipc_sender *ctl, uint64_t count)
{
	uint8_t msg[CTL_LEN];
	int rc;

	bm_init(msg, sizeof(msg), K_END);
	put64(msg + F_RUN, b->run);
	put64(msg + F_COUNT, count);
	if ((rc = sipc_send(ctl, msg, sizeof(msg))) != 0) {
		fprintf(stderr, "sipc bench: send: %s\n", errtext(rc));
		return -1;
	}
	return 0;
}

/* Waits for want REPORTs; 0 or -1 after a message. */
static int
collect(struct bench *b, size_t want)
{
	int rc;

	if ((rc = wait_for(b, have_reports, want, b->o.timeout_ms)) == 0)
		return 0;
	if (rc == 1) {
		pthread_mutex_lock(&b->mu);
		fprintf(stderr, "sipc bench: %zu of %zu receivers reported "
		    "within %ld ms\n", b->nrep, want, b->o.timeout_ms);
		pthread_mutex_unlock(&b->mu);
	}
	return -1;
}

static void
sum_reports(struct bench *b, struct result *r)
{
	size_t i;

	for (i = 0; i < b->nrep; i++) {
		r->deliveries += b->rep[i].got;
		r->bad += b->rep[i].bad;
		r->gaps += b->rep[i].gaps;
		r->cpu_rx += b->rep[i].cpu;
	}
}

/* ---- throughput and fanout ----------------------------------------------- */

static int
run_throughput(struct bench *b, struct result *r)
{
	struct sipc_sender_opts so;
	struct sipc_sender_stats st;
	sipc_sender *tx = NULL;
	uint8_t *buf = NULL;
	int64_t t0, t1, cpu0, deadline;
	size_t want, i;
	long n, every, left;
	int rc, ret = -1;

	if (b->o.spawn && kids_spawn(b, (int)b->o.receivers) == -1)
		goto out;
	if (bench_sender(b, "", &tx) == -1 ||
	    wait_receivers(b, tx, (size_t)b->o.receivers) == -1)
		goto out;
	want = sipc_sender_receivers(tx);
	if (want > MAX_RECEIVERS) {
		fprintf(stderr, "sipc bench: %zu receivers of '%s'; at most %d "
		    "can be measured\n", want, b->handle, MAX_RECEIVERS);
		goto out;
	}
	if (want != (size_t)b->o.receivers)
		fprintf(stderr, "sipc bench: %zu receivers of '%s' (not %ld); "
		    "measuring with all of them\n", want, b->handle,
		    b->o.receivers);
	if (handshake(b, tx, want, b->o.mode, (uint64_t)b->o.count) == -1)
		goto out;
	if ((buf = malloc((size_t)b->o.size)) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bm_init(buf, (size_t)b->o.size, K_DATA);
	r->receivers = want;
	sipc_sender_opts_init(&so);
	r->hwm = so.hwm_bytes;	/* bench_sender() keeps the default */
	r->rss_before_kb = rss_kb();
	every = STATS_BYTES / b->o.size < 1 ? 1 : STATS_BYTES / b->o.size;
	left = every;
	deadline = now_ns() + b->o.max_time_ms * 1000000;
	cpu0 = cpu_ns(RUSAGE_SELF);
	t0 = now_ns();
	for (n = 0; n < b->o.count; n++) {
		put64(buf + 8, (uint64_t)n);
		if ((rc = sipc_send(tx, buf, (size_t)b->o.size)) != 0) {
			fprintf(stderr, "sipc bench: message %ld: %s\n", n,
			    errtext(rc));
			goto out;
		}
		/* Each `every` messages (counted down: no division per
		 * message in the timed loop). */
		if (--left == 0) {
			left = every;
			if (sipc_sender_stats(tx, &st) == 0 &&
			    st.queued_bytes > r->queued_max)
				r->queued_max = st.queued_bytes;
			if (check_interrupted())
				goto out;
			if (now_ns() > deadline) {
				fprintf(stderr, "sipc bench: only %ld of %ld "
				    "messages sent within --max-time %ld ms\n",
				    n + 1, b->o.count, b->o.max_time_ms);
				goto out;
			}
		}
	}
	if ((rc = sipc_sender_flush(tx, (int)b->o.timeout_ms)) != 0) {
		fprintf(stderr, "sipc bench: flush: %s\n", errtext(rc));
		goto out;
	}
	if (sipc_sender_stats(tx, &st) == 0) {
		if (st.queued_bytes > r->queued_max)
			r->queued_max = st.queued_bytes;
		r->sender_lost = st.lost;
	}
	if (send_end(b, tx, (uint64_t)b->o.count) == -1 ||
	    collect(b, want) == -1)
		goto out;
	r->cpu_self = cpu_ns(RUSAGE_SELF) - cpu0;
	r->peak_rss_kb = peak_rss_kb();
	/* Done when the last receiver had the last message: its own clock
	 * when it runs on this host, else when its report came in. */
	r->rx_clock = b->o.spawn;
	t1 = t0;
	pthread_mutex_lock(&b->mu);
	for (i = 0; i < b->nrep; i++) {
		int64_t t = r->rx_clock ? b->rep[i].last_ns :
		    b->rep[i].arrived_ns;

		if (r->rx_clock && t == 0)
			t = b->rep[i].arrived_ns;	/* lost the last */
		if (t > t1)
			t1 = t;
	}
	sum_reports(b, r);
	r->sender_lost += b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->messages = (uint64_t)b->o.count;
	r->lost = r->messages * want > r->deliveries ?
	    r->messages * want - r->deliveries : 0;
	r->seconds = (double)(t1 - t0) / 1e9;
	ret = 0;
out:
	if (tx && sipc_sender_close(tx) != 0 && ret == 0)
		fprintf(stderr, "sipc bench: some messages were not "
		    "acknowledged at close\n");
	free(buf);
	return ret;
}

/* ---- latency ------------------------------------------------------------- */

static void
lat_finish(struct bench *b, int error)
{
	pthread_mutex_lock(&b->mu);
	b->lat_error = error;
	b->done = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* HANDLE.pong, on the I/O thread: time the round trip, send the next. */
static void
bench_pong_cb(sipc_receiver *rx, const char *handle, const void *data,
    size_t len, uint64_t sender_id, uint64_t seq, void *arg)
{
	struct bench *b = arg;
	const uint8_t *p = data;
	int64_t now = now_ns();
	int rc;

	(void)rx;
	(void)handle;
	(void)sender_id;
	(void)seq;
	if (b->seq < 0 || b->seq >= b->total || bm_kind(data, len) != K_PING ||
	    len != (size_t)b->o.size || get64(p + 8) != (uint64_t)b->seq) {
		b->stray++;
		return;
	}
	if (++b->pongs < b->echoers)
		return;
	if (b->seq >= b->warmup)
		b->samples[b->seq - b->warmup] = now - b->t_ping;
	if (++b->seq == b->total) {
		lat_finish(b, 0);
		return;
	}
	if ((b->seq & 1023) == 0) {
		pthread_mutex_lock(&b->mu);
		b->progress = b->seq;
		pthread_mutex_unlock(&b->mu);
	}
	b->pongs = 0;
	put64(b->ping + 8, (uint64_t)b->seq);
	b->t_ping = now_ns();
	if ((rc = sipc_send(b->tx_ping, b->ping, (size_t)b->o.size)) != 0)
		lat_finish(b, rc);
}

static int
run_latency(struct bench *b, struct result *r)
{
	sipc_sender *ctl = NULL;
	int64_t t0, cpu0, end, stall_end;
	size_t want;
	long last = -1;
	int rc, ret = -1, done;

	if (bench_receiver(b, ".pong", bench_pong_cb, &b->rx_pong) == -1)
		return -1;
	if (b->o.spawn && kids_spawn(b, (int)b->o.receivers) == -1)
		goto out;
	if (bench_sender(b, "", &ctl) == -1 ||
	    bench_sender(b, ".ping", &b->tx_ping) == -1 ||
	    wait_receivers(b, ctl, (size_t)b->o.receivers) == -1)
		goto out;
	want = sipc_sender_receivers(ctl);
	if (want > MAX_RECEIVERS) {
		fprintf(stderr, "sipc bench: %zu receivers of '%s'; at most %d "
		    "can be measured\n", want, b->handle, MAX_RECEIVERS);
		goto out;
	}
	if (wait_receivers(b, b->tx_ping, want) == -1 ||
	    handshake(b, ctl, want, MODE_LATENCY, 0) == -1)
		goto out;
	b->warmup = b->o.count / 10;
	if (b->warmup > 1000)
		b->warmup = 1000;
	if (b->warmup < 10)
		b->warmup = 10;
	b->total = b->warmup + b->o.count;
	b->echoers = want;
	r->receivers = want;
	if ((b->samples = calloc((size_t)b->o.count, sizeof(int64_t))) ==
	    NULL || (b->ping = malloc((size_t)b->o.size)) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bm_init(b->ping, (size_t)b->o.size, K_PING);
	b->seq = 0;
	b->pongs = 0;
	cpu0 = cpu_ns(RUSAGE_SELF);
	t0 = now_ns();
	end = t0 + b->o.max_time_ms * 1000000;
	stall_end = t0 + b->o.timeout_ms * 1000000;
	b->t_ping = now_ns();
	if ((rc = sipc_send(b->tx_ping, b->ping, (size_t)b->o.size)) != 0) {
		fprintf(stderr, "sipc bench: ping: %s\n", errtext(rc));
		b->seq = -1;
		goto out;
	}
	/* From here the ping-pong runs on the I/O thread by itself. */
	for (;;) {
		pthread_mutex_lock(&b->mu);
		if (!b->done)
			cond_wait_ms(&b->cv, &b->mu, SLICE_MS);
		done = b->done;
		if (b->progress != last) {
			last = b->progress;
			stall_end = now_ns() + b->o.timeout_ms * 1000000;
		}
		pthread_mutex_unlock(&b->mu);
		if (done)
			break;
		if (check_interrupted() || (b->nkids && kids_check(b) == -1))
			goto out;
		if (now_ns() > stall_end || now_ns() > end) {
			fprintf(stderr, "sipc bench: no echo for %ld ms "
			    "(round trip %ld of %ld)\n", b->o.timeout_ms,
			    last, b->total);
			goto out;
		}
	}
	r->seconds = (double)(now_ns() - t0) / 1e9;
	r->cpu_self = cpu_ns(RUSAGE_SELF) - cpu0;
	if (b->lat_error) {
		fprintf(stderr, "sipc bench: ping: %s\n",
		    sipc_strerror(b->lat_error));
		goto out;
	}
	if (send_end(b, ctl, 0) == -1 || collect(b, want) == -1)
		goto out;
	pthread_mutex_lock(&b->mu);
	sum_reports(b, r);
	r->sender_lost = b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->messages = (uint64_t)b->o.count;
	r->bad = b->stray;
	qsort(b->samples, (size_t)b->o.count, sizeof(int64_t), cmp_i64);
	r->samples = b->samples;
	r->nsamples = (size_t)b->o.count;
	b->samples = NULL;
	r->peak_rss_kb = peak_rss_kb();
	ret = 0;
out:
	/* After a failure, stop the ping-pong before its sender goes; after
	 * success it has stopped, and the receiver stays until the echoing
	 * children are gone, so that their last pongs are acknowledged. */
	if (ret != 0) {
		sipc_receiver_close(b->rx_pong);
		b->rx_pong = NULL;
	}
	sipc_sender_close(b->tx_ping);
	b->tx_ping = NULL;
	sipc_sender_close(ctl);
	free(b->samples);
	b->samples = NULL;
	free(b->ping);
	b->ping = NULL;
	return ret;
}

/* ---- connect ------------------------------------------------------------- */

static void
connect_msg_cb(sipc_receiver *rx, const char *handle, const void *data,
    size_t len, uint64_t sender_id, uint64_t seq, void *arg)
{
	struct bench *b = arg;
	int64_t t = now_ns();

	(void)rx;
	(void)handle;
	(void)data;
	(void)len;
	(void)sender_id;
	(void)seq;
	pthread_mutex_lock(&b->mu);
	if (b->arrived++ == 0)
		b->t_arrived = t;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static int
have_arrived(struct bench *b, size_t want)
{
	return (size_t)b->arrived >= want;
}

static int
run_connect(struct bench *b, struct result *r)
{
	struct sipc_receiver_opts ro;
	struct sipc_sender_opts so;
	sipc_epm *epm_tx = NULL;
	sipc_receiver *rx = NULL;
	sipc_sender *tx = NULL;
	uint8_t *msg = NULL;
	char name[300];
	int64_t t0, t_ready, cpu0, wall0, end;
	long i, warm, total;
	int rc, ret = -1;

	/* The receivers on b->epm, the senders on an EPM of their own: two
	 * I/O threads and two broker sessions, as two processes have. */
	if (bench_epm(b, &epm_tx) == -1)
		return -1;
	warm = b->o.count / 10 < 10 ? 10 : b->o.count / 10;
	if (warm > 100)
		warm = 100;
	total = warm + b->o.count;
	if ((r->samples = calloc((size_t)b->o.count, sizeof(int64_t))) ==
	    NULL || (r->ready = calloc((size_t)b->o.count,
	    sizeof(int64_t))) == NULL || (msg = malloc((size_t)b->o.size)) ==
	    NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bm_init(msg, (size_t)b->o.size, K_DATA);
	sipc_receiver_opts_init(&ro);
	ro.on_message = connect_msg_cb;
	ro.arg = b;
	sipc_sender_opts_init(&so);
	so.on_send_failed = bench_send_failed;
	so.arg = b;
	so.linger_ms = (int)b->o.timeout_ms;
	end = now_ns() + b->o.max_time_ms * 1000000;
	cpu0 = cpu_ns(RUSAGE_SELF);
	wall0 = now_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_ns(RUSAGE_SELF);
			wall0 = now_ns();
		}
		if (now_ns() > end) {
			fprintf(stderr, "sipc bench: only %ld of %ld connects "
			    "within --max-time %ld ms\n", i, total,
			    b->o.max_time_ms);
			goto out;
		}
		if (check_interrupted())
			goto out;
		snprintf(name, sizeof(name), "%s.c%ld", b->handle, i);
		if ((rc = sipc_receiver_new(name, b->epm, &ro, &rx)) != 0) {
			fprintf(stderr, "sipc bench: receiver %s: %s\n", name,
			    errtext(rc));
			goto out;
		}
		pthread_mutex_lock(&b->mu);
		b->arrived = 0;
		pthread_mutex_unlock(&b->mu);
		t0 = now_ns();
		if ((rc = sipc_sender_new(name, epm_tx, &so, &tx)) != 0) {
			fprintf(stderr, "sipc bench: sender %s: %s\n", name,
			    errtext(rc));
			goto out;
		}
		if ((rc = sipc_sender_wait_receivers(tx, 1,
		    (int)b->o.timeout_ms)) != 0) {
			fprintf(stderr, "sipc bench: sender %s found no "
			    "receiver: %s\n", name, errtext(rc));
			goto out;
		}
		t_ready = now_ns();
		put64(msg + 8, (uint64_t)i);
		if ((rc = sipc_send(tx, msg, (size_t)b->o.size)) != 0) {
			fprintf(stderr, "sipc bench: send: %s\n", errtext(rc));
			goto out;
		}
		if (wait_for(b, have_arrived, 1, b->o.timeout_ms) != 0) {
			fprintf(stderr, "sipc bench: the first message on %s "
			    "did not arrive within %ld ms\n", name,
			    b->o.timeout_ms);
			r->lost++;
			goto out;
		}
		if (i >= warm) {
			r->samples[i - warm] = b->t_arrived - t0;
			r->ready[i - warm] = t_ready - t0;
		}
		if ((rc = sipc_sender_flush(tx, (int)b->o.timeout_ms)) != 0) {
			fprintf(stderr, "sipc bench: flush: %s\n",
			    errtext(rc));
			goto out;
		}
		sipc_sender_close(tx);
		tx = NULL;
		sipc_receiver_close(rx);
		rx = NULL;
		pthread_mutex_lock(&b->mu);
		if (b->arrived != 1)
			r->bad += (uint64_t)(b->arrived > 1 ? b->arrived - 1 :
			    1);
		pthread_mutex_unlock(&b->mu);
	}
	r->seconds = (double)(now_ns() - wall0) / 1e9;
	r->cpu_self = cpu_ns(RUSAGE_SELF) - cpu0;
	r->messages = (uint64_t)b->o.count;
	r->deliveries = r->messages;
	r->receivers = 1;
	r->nsamples = (size_t)b->o.count;
	qsort(r->samples, r->nsamples, sizeof(int64_t), cmp_i64);
	qsort(r->ready, r->nsamples, sizeof(int64_t), cmp_i64);
	pthread_mutex_lock(&b->mu);
	r->sender_lost = b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->peak_rss_kb = peak_rss_kb();
	ret = 0;
out:
	sipc_sender_close(tx);
	sipc_receiver_close(rx);
	sipc_epm_close(epm_tx);
	free(msg);
	return ret;
}

/* ---- Output -------------------------------------------------------------- */

static const char *
mode_name(enum mode m)
{
	switch (m) {
	case MODE_THROUGHPUT:
		return "throughput";
	case MODE_FANOUT:
		return "fanout";
	case MODE_LATENCY:
		return "latency";
	default:
		return "connect";
	}
}

static void
print_json(const struct bench *b, const struct result *r)
{
	double msgs = (double)r->messages;
	double cpu = (double)(r->cpu_self + r->cpu_rx);

	printf("{\"case\": \"%s\", \"epm\": \"%s\", \"receivers_started\": "
	    "\"%s\", \"size\": %ld, \"count\": %ld, \"receivers\": %zu, "
	    "\"seconds\": %.6f", mode_name(b->o.mode), epm_name(b),
	    b->o.spawn ? "here" : "elsewhere", b->o.size, b->o.count,
	    r->receivers, r->seconds);
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT) {
		printf(", \"messages_per_s\": %.1f, \"deliveries_per_s\": "
		    "%.1f, \"mb_per_s\": %.3f, \"end_time\": \"%s\"",
		    msgs / r->seconds, (double)r->deliveries / r->seconds,
		    (double)r->deliveries * (double)b->o.size / r->seconds /
		    1e6, r->rx_clock ? "receiver clock" : "report arrival");
	}
	printf(", \"lost\": %llu, \"errors\": %llu, \"gaps\": %llu, "
	    "\"sender_lost\": %llu, \"cpu_ns_per_message\": %.1f, "
	    "\"sender_cpu_ns_per_message\": %.1f, "
	    "\"receiver_cpu_ns_per_message\": %.1f",
	    (unsigned long long)r->lost, (unsigned long long)r->bad,
	    (unsigned long long)r->gaps, (unsigned long long)r->sender_lost,
	    cpu / msgs, (double)r->cpu_self / msgs, (double)r->cpu_rx / msgs);
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT)
		printf(", \"sender_rss_before_kb\": %ld, "
		    "\"sender_peak_rss_kb\": %ld, \"queued_bytes_max\": %zu, "
		    "\"hwm_bytes\": %zu", r->rss_before_kb, r->peak_rss_kb,
		    r->queued_max, r->hwm);
	if (r->nsamples) {
		printf(", \"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": "
		    "%.2f, \"min_us\": %.2f, \"max_us\": %.2f",
		    pct_us(r->samples, r->nsamples, 0.50),
		    pct_us(r->samples, r->nsamples, 0.99),
		    pct_us(r->samples, r->nsamples, 0.999),
		    pct_us(r->samples, r->nsamples, 0.0),
		    pct_us(r->samples, r->nsamples, 1.0));
		if (b->o.mode == MODE_LATENCY)
			printf(", \"round_trips_per_s\": %.1f",
			    msgs / r->seconds);
	}
	if (r->ready)
		printf(", \"ready_p50_us\": %.2f, \"definition\": \"from "
		    "sipc_sender_new() to on_message of the first message at "
		    "a fresh receiver\"",
		    pct_us(r->ready, r->nsamples, 0.50));
	printf("}\n");
}

static void
print_text(const struct bench *b, const struct result *r)
{
	double msgs = (double)r->messages;
	double cpu = (double)(r->cpu_self + r->cpu_rx);

	printf("sipc bench %s: %ld B messages, %s", mode_name(b->o.mode),
	    b->o.size, b->o.broker ? "broker " : "local registry (private "
	    "directory)");
	if (b->o.broker)
		printf("%s", b->o.broker);
	printf(", receivers %s\n", b->o.spawn ? "started here" :
	    "started elsewhere");
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT) {
		printf("  messages   %llu to each of %zu receivers; "
		    "delivered in order %llu, lost %llu, out of order or "
		    "damaged %llu\n", (unsigned long long)r->messages,
		    r->receivers, (unsigned long long)r->deliveries,
		    (unsigned long long)r->lost, (unsigned long long)r->bad);
		printf("  time       %.3f s, first send to last delivery "
		    "(%s)\n", r->seconds, r->rx_clock ? "receivers' clock" :
		    "report arrival");
		printf("  rate       %.0f messages/s, %.0f deliveries/s, "
		    "%.1f MB/s\n", msgs / r->seconds,
		    (double)r->deliveries / r->seconds,
		    (double)r->deliveries * (double)b->o.size / r->seconds /
		    1e6);
		printf("  cpu        %.0f ns per message (sender %.0f, "
		    "receivers %.0f)\n", cpu / msgs,
		    (double)r->cpu_self / msgs, (double)r->cpu_rx / msgs);
		printf("  sender     RSS %ld kB before, peak %ld kB; largest "
		    "backlog %zu B (high-water mark %zu B)\n",
		    r->rss_before_kb, r->peak_rss_kb, r->queued_max, r->hwm);
		return;
	}
	if (b->o.mode == MODE_LATENCY)
		printf("  round trip %llu x (to %zu echoing receiver%s), "
		    "%.0f/s\n", (unsigned long long)r->messages, r->receivers,
		    r->receivers == 1 ? "" : "s", msgs / r->seconds);
	else
		printf("  connect    %llu x: sipc_sender_new() on a new "
		    "handle until on_message\n             of its first "
		    "message at a fresh receiver\n",
		    (unsigned long long)r->messages);
	printf("  us         p50 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f, "
	    "max %.1f)\n", pct_us(r->samples, r->nsamples, 0.50),
	    pct_us(r->samples, r->nsamples, 0.99),
	    pct_us(r->samples, r->nsamples, 0.999),
	    pct_us(r->samples, r->nsamples, 0.0),
	    pct_us(r->samples, r->nsamples, 1.0));
	if (r->ready)
		printf("  of which   p50 %.1f us until the sender was "
		    "connected\n", pct_us(r->ready, r->nsamples, 0.50));
	printf("  cpu        %.0f ns per %s (this process %.0f, "
	    "receivers %.0f)\n", cpu / msgs, b->o.mode == MODE_LATENCY ?
	    "round trip" : "connect", (double)r->cpu_self / msgs,
	    (double)r->cpu_rx / msgs);
	printf("  lost       %llu\n", (unsigned long long)r->lost);
}

/* ---- Entry --------------------------------------------------------------- */

int
cmd_bench(int argc, char **argv)
{
	struct sigaction sa;
	struct bench *b;
	struct result r;
	enum mode m;
	int ret = 1;

	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[0], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[0], "throughput"))
		m = MODE_THROUGHPUT;
	else if (!strcmp(argv[0], "fanout"))
		m = MODE_FANOUT;
	else if (!strcmp(argv[0], "latency"))
		m = MODE_LATENCY;
	else if (!strcmp(argv[0], "connect"))
		m = MODE_CONNECT;
	else {
		fprintf(stderr, "sipc bench: unknown case '%s'\n", argv[0]);
		usage(stderr);
		return 2;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		return 1;
	}
	b->o.mode = m;
	b->o.size = 64;
	b->o.receivers = 1;
	b->o.timeout_ms = 10000;
	b->o.max_time_ms = 120000;
	if (parse_opts(argc - 1, argv + 1, &b->o) == -1) {
		free(b);
		return 2;
	}
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&b->mu, NULL);
	cond_init_mono(&b->cv);
	b->run = random64();
	b->seq = -1;
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Children of ours get a handle of their own, so that nothing else
	 * answers (a broker may serve other benches at the same time). */
	if (b->o.spawn)
		snprintf(b->handle, sizeof(b->handle), "%s.%ld",
		    b->o.handle ? b->o.handle : DEF_HANDLE, (long)getpid());
	else
		snprintf(b->handle, sizeof(b->handle), "%s",
		    b->o.handle ? b->o.handle : DEF_HANDLE);
	if (b->o.broker == NULL && tmpdir_make(b) == -1)
		goto out;
	if (bench_epm(b, &b->epm) == -1)
		goto out;
	if (m != MODE_CONNECT && bench_receiver(b, ".report",
	    bench_report_cb, &b->rx_report) == -1)
		goto out;
	switch (m) {
	case MODE_THROUGHPUT:
	case MODE_FANOUT:
		ret = run_throughput(b, &r);
		break;
	case MODE_LATENCY:
		ret = run_latency(b, &r);
		break;
	case MODE_CONNECT:
		ret = run_connect(b, &r);
		break;
	}
	ret = ret == 0 ? 0 : 1;
	if (ret == 0) {
		if (b->o.json)
			print_json(b, &r);
		else
			print_text(b, &r);
		if (r.lost || r.bad || r.gaps || r.sender_lost) {
			fprintf(stderr, "sipc bench: LOSS: %llu lost, %llu out "
			    "of order or damaged, %llu reported missing, %llu "
			    "reported lost by the sender\n",
			    (unsigned long long)r.lost,
			    (unsigned long long)r.bad,
			    (unsigned long long)r.gaps,
			    (unsigned long long)r.sender_lost);
			ret = 1;
		}
	}
out:
	/* Children end after their report; whatever is left is killed. */
	kids_reap(b, ret == 0 ? 5000 : 0);
	sipc_receiver_close(b->rx_pong);
	sipc_receiver_close(b->rx_report);
	sipc_epm_close(b->epm);
	tmpdir_remove(b);
	free(r.samples);
	free(r.ready);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
	return ret;
}
