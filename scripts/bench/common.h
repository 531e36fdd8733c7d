/*
 * common.h - helpers shared by the programs of `make bench` (bench-tcp,
 * bench-zmq, bench-broker, bench-run): clocks and CPU time, child
 * processes that are always killed and reaped by pid, bounded reads and
 * writes, the benchmark message header and its checks, percentiles and
 * one-line JSON output.
 *
 * It is no part of libsipc or of the sipc command (libclient/bench.c
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

/* ---- Time, CPU, memory --------------------------------------------------- */

int64_t	now_ns(void);			/* CLOCK_MONOTONIC */
int64_t	cpu_self_ns(void);		/* user + system, every thread */
long	peak_rss_kb(void);		/* this process's high-water mark */
long	proc_rss_kb(pid_t pid);		/* VmRSS of a process, -1 on error */
void	sleep_ms(int ms);

/* ---- Errors -------------------------------------------------------------- */

/* The program's name for messages ("bench-tcp"). */
extern const char *prog;

/* Prints "prog: message" (and ": strerror(errno)" for fatal_sys), kills
 * and reaps every child started by kid_start(), and exits 1. */
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
 * Forks a child that runs fn(arg) and exits with its result; the child
 * gets SIGKILL when this process dies.  Returns the pid (also kept for
 * kids_reap() and fatal()).  Call before creating threads in the parent.
 */
pid_t	kid_start(int (*fn)(void *), void *arg);
/* Waits up to grace_ms for every child to exit, then SIGKILLs the rest;
 * reaps all.  Returns how many exited other than with status 0. */
int	kids_reap(int grace_ms);

/* ---- Bounded I/O --------------------------------------------------------- */

/* Reads exactly n bytes within timeout_ms: 0, or -1 (errno set; ETIMEDOUT
 * on time, EPIPE at end of file). */
int	read_full(int fd, void *buf, size_t n, int timeout_ms);
/* Writes all n bytes (blocking descriptor, or waiting for POLLOUT):
 * 0 or -1 with errno. */
int	write_full(int fd, const void *buf, size_t n);

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

/* ---- Samples ------------------------------------------------------------- */

void	sort_i64(int64_t *v, size_t n);
/* Nearest-rank percentile q in [0, 1] of sorted v[0..n), microseconds. */
double	pct_us(const int64_t *v, size_t n, double q);

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

#endif
