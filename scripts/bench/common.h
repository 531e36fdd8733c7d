/*
 * common.h - helpers shared by the programs of `make bench` (bench-tcp,
 * bench-zmq, bench-nats, bench-broker, bench-run): CPU time, the children
 * that fatal() kills, the benchmark message header and its checks,
 * percentiles, one-line JSON output, and the options and results bench-tcp
 * and bench-zmq have in common.  Clocks, processes, the broker and bounded
 * I/O are tests/harness.h's, which the tests use too.
 *
 * It is no part of libsipc or of the sipc command (tools/sipc/bench*.c
 * keeps to the public API and has its own copies of the few helpers it
 * needs); the message header below is the same as bench.c's, so every
 * program counts and checks messages the same way.
 */
#ifndef SIPC_BENCH_COMMON_H
#define SIPC_BENCH_COMMON_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../tests/harness.h"

/* ---- CPU, memory --------------------------------------------------------- */

int64_t	cpu_self_ns(void);		/* user + system, every thread */
int64_t	cpu_children_ns(void);		/* the same of reaped children */
long	peak_rss_kb(void);		/* this process's high-water mark */
/* Pins process pid (0: this one) to CPU cpu, or (-1) lets it run on
 * every CPU again; 0 or -1 with errno. */
int	cpu_pin(pid_t pid, int cpu);

/* ---- Errors -------------------------------------------------------------- */

/* The program's name for messages ("bench-tcp"). */
extern const char *prog;
/* Run by fatal() before it kills the children (NULL: nothing), for a
 * program whose children must end their own way first (bench-iox). */
extern void (*fatal_hook)(void);

/* Prints "prog: message" (and ": strerror(errno)" for fatal_sys), calls
 * fatal_hook when set, kills and reaps every child started by
 * kid_start(), and exits 1. */
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatal_sys(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Usage errors: message, exit 2. */
void	usage_error(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* ---- Children ------------------------------------------------------------ */

#define KIDS_MAX	64

/*
 * proc_fork(fn, arg), the pid kept for kids_reap() and fatal(); fatal()
 * when it cannot fork.  Call before creating threads in the parent.
 */
pid_t	kid_start(int (*fn)(void *), void *arg);
/* Keeps pid, a child started otherwise (epmd_spawn()), the same way. */
pid_t	kid_add(pid_t pid);
/* Waits up to grace_ms for every child to exit, then SIGKILLs the rest;
 * reaps all.  Returns how many exited other than with status 0. */
int	kids_reap(int grace_ms);

/* ---- Benchmark messages -------------------------------------------------- */

/*
 * 16-byte header: "SBn1", kind, three zero bytes, big-endian counter.
 * Control messages put big-endian u64 fields after it.
 */
#define BM_HDR		16
#define K_DATA		'D'
#define K_PING		'P'
#define K_BEGIN		'B'
#define K_END		'E'

#define F_COUNT		16	/* BEGIN, END */
#define F_SIZE		24	/* BEGIN */
#define CTL_LEN		64
#define BM_SIZE_MAX	(64L * 1024 * 1024)	/* --size */

void	 put64(uint8_t *p, uint64_t v);
uint64_t get64(const uint8_t *p);
void	 put32(uint8_t *p, uint32_t v);
uint32_t get32(const uint8_t *p);
/* Fills buf (len >= BM_HDR) as a message of kind, counter 0. */
void	 bm_init(uint8_t *buf, size_t len, int kind);
/* Kind of a message, -1 when it is none of ours. */
int	 bm_kind(const void *p, size_t len);

/* What a receiver saw in one run; written to its parent over a pipe. */
struct rx_report {
	uint64_t	got;		/* data messages in order */
	uint64_t	bad;		/* out of order, duplicate, wrong size */
	uint64_t	bytes;
	int64_t		cpu_ns;		/* between BEGIN and END */
	int64_t		first_ns;	/* CLOCK_MONOTONIC, first message */
	int64_t		last_ns;	/* and the last one */
};

/* A receiver's count of one run. */
struct rx_check {
	struct rx_report r;
	uint64_t	 expect;
	uint64_t	 count;		/* from BEGIN */
	size_t		 size;		/* from BEGIN */
	int64_t		 cpu0;
	int		 begun;
	int		 ended;
};

/*
 * Feeds one message to c.  BEGIN starts the run (and returns K_BEGIN),
 * END ends it (K_END; c->r is then complete), data is counted (K_DATA);
 * anything else is counted as bad.
 */
int	rx_check_msg(struct rx_check *c, const uint8_t *p, size_t len);

/* A stream run's receiver reports, added up. */
struct rx_total {
	uint64_t	got;
	uint64_t	bad;
	int64_t		cpu_ns;
	int64_t		end_ns;		/* the latest last_ns, at least t0 */
};

/* Reads one struct rx_report from each of pipes[0..n) within timeout_ms
 * (closing each) into *t; fatal() when one does not come. */
void	rx_collect(const int *pipes, int n, int64_t t0, int timeout_ms,
	    struct rx_total *t);

/* ---- Samples ------------------------------------------------------------- */

void	sort_i64(int64_t *v, size_t n);
/* Nearest-rank percentile q in [0, 1] of sorted v[0..n), microseconds. */
double	pct_us(const int64_t *v, size_t n, double q);
/* Untimed warm-up rounds before count timed ones: a tenth, 10 to cap. */
long	warmup_count(long count, long cap);

/* ---- JSON: one object on one line ---------------------------------------- */

struct jout {
	FILE	*fp;
	int	 n;
};

void	json_begin(struct jout *j, FILE *fp);
void	json_num(struct jout *j, const char *key, double v);
void	json_int(struct jout *j, const char *key, long long v);
void	json_str(struct jout *j, const char *key, const char *v);
void	json_end(struct jout *j);

/* Latency fields p50_us, p99_us, p999_us, min_us, max_us of sorted v. */
void	json_latency(struct jout *j, const int64_t *v, size_t n);

/* ---- Options ------------------------------------------------------------- */

/* A decimal in [min, max] for option opt; usage_error() otherwise. */
long	opt_long(const char *opt, const char *s, long min, long max);

/* bench-tcp's and bench-zmq's command line: CASE [--size B] [--count N]
 * [--receivers N] [--unix]. */
struct case_opts {
	const char	*mode;
	long		 size;
	long		 count;
	long		 receivers;
	int		 unix_sock;
};

/* Parses argv into o, which holds the defaults; --unix only when unix_ok.
 * usage_error() with the usage line when there is no CASE. */
void	case_opts_parse(int argc, char **argv, struct case_opts *o,
	    int unix_ok, const char *usage);
/* usage_error() when o->count is above what o->mode keeps samples for. */
void	case_count_max(const struct case_opts *o, long max);

/* ---- Results of bench-tcp and bench-zmq ---------------------------------- */

/*
 * Prints the JSON object of a stream run of o with n receivers, timed
 * from t0, and the sender's CPU time cpu_tx.  Returns the exit status: 0
 * when every receiver had every message in order, else 1.
 */
int	json_stream(const struct case_opts *o, const char *kase,
	    const char *impl, int n, int64_t t0, const struct rx_total *t,
	    int64_t cpu_tx);
/*
 * Prints the JSON object of a round-trip or connect run of o: samples
 * (o->count of them, ns; sorted here), wall_ns for all of them and
 * cpu_ns spent; round_trips_per_s when round_trips, a "definition" of a
 * sample when definition is not NULL.
 */
void	json_samples(const struct case_opts *o, const char *kase,
	    const char *impl, int64_t wall_ns, int64_t *samples,
	    int64_t cpu_ns, int round_trips, const char *definition);
/*
 * Prints the JSON object of a pipelined run of o, window requests
 * outstanding: wall_ns for all, cpu_ns spent, bad replies.  Returns the
 * exit status: 0 when no reply was bad, else 1.
 */
int	json_pipeline(const struct case_opts *o, const char *kase,
	    const char *impl, long window, int64_t wall_ns, int64_t cpu_ns,
	    long bad);

#endif
