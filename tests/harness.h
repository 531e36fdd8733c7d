/*
 * harness.h - what the tests (tests/testutil.c builds on it, with Check)
 * and the benchmarks (scripts/bench/common.c) both need to run real
 * processes: sleeping, children started and always stopped and reaped by
 * pid, a sipc-epmd on a loopback port, /proc readings, and bounded reads
 * and writes.  No Check, no libsipc: the clocks are common/clock.h's.
 *
 * Every child gets SIGKILL when the process that started it dies, so that
 * nothing outlives a test or a benchmark that was killed.
 */
#ifndef SIPC_TESTS_HARNESS_H
#define SIPC_TESTS_HARNESS_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/clock.h"

void	sleep_ms(int ms);

/* ---- Children ------------------------------------------------------------ */

/*
 * Starts argv[0] with argv; its stdout and stderr go to out_path (opened
 * for appending; NULL: ours).  Returns the pid, or -1.
 */
pid_t	proc_spawn(char *const argv[], const char *out_path);
/* Forks a child that runs fn(arg) and _exits with its result: the pid,
 * or -1.  Call before creating threads. */
pid_t	proc_fork(int (*fn)(void *), void *arg);
/* Waits up to timeout_ms for pid to exit: its wait status, or -1. */
int	proc_wait(pid_t pid, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL: the wait status, or -1. */
int	proc_stop(pid_t pid, int timeout_ms);
/* 1 when a wait status says "exited with 0". */
int	proc_ok(int status);

/* Resident memory (kB) and CPU time (user + system, ns) of a process
 * from /proc; -1 when it cannot be read. */
long	proc_rss_kb(pid_t pid);
int64_t	proc_cpu_ns(pid_t pid);

/* ---- A broker ------------------------------------------------------------ */

/*
 * The port that a child started with --port-file path writes there once
 * it listens; -1 when the child exited or timeout_ms passed first.  A
 * child that exited is reaped here.
 */
int	port_file_wait(const char *path, pid_t pid, int timeout_ms);
/*
 * Starts the sipc-epmd at path on listen ("127.0.0.1:0") with --port-file
 * portfile and the arguments in extra (NULL-ended, or NULL), output to log
 * (NULL: ours), and waits up to timeout_ms until it accepts.  Returns the
 * pid and *port, or -1 (nothing left running).
 */
pid_t	epmd_spawn(const char *path, const char *listen, const char *portfile,
	    const char *log, char *const extra[], int timeout_ms, int *port);

/* ---- Sockets and bounded I/O --------------------------------------------- */

/* A TCP socket on 127.0.0.1 and an ephemeral port (in *port), listening
 * with backlog (0: only bound), or -1. */
int	listen_loopback(int backlog, int *port);
/* A loopback TCP port that was free a moment ago, or -1. */
int	free_port(void);
/* A blocking TCP connection to 127.0.0.1:port (TCP_NODELAY), or -1. */
int	connect_loopback(int port);
/* Reads exactly n bytes within timeout_ms: 0, or -1 (errno set; ETIMEDOUT
 * on time, EPIPE at end of file). */
int	read_full(int fd, void *buf, size_t n, int timeout_ms);
/* Writes all n bytes (blocking descriptor, or waiting for POLLOUT):
 * 0 or -1 with errno. */
int	write_full(int fd, const void *buf, size_t n);

#endif
