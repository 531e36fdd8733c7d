/*
 * testutil.h - helpers for sipc's integration tests: start and stop real
 * processes (by pid, with a parent-death signal so that nothing outlives a
 * test that timed out), a broker on an ephemeral loopback port, commands
 * with captured output, and a raw-socket protocol client.
 */
#ifndef SIPC_TESTUTIL_H
#define SIPC_TESTUTIL_H

#include <sys/types.h>
#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/wire.h"

/* Absolute path of a built program: $SIPC_BUILD/bin/NAME. */
const char	*tu_bin(const char *name);
/* A fresh temporary directory, removed by tu_cleanup(). */
const char	*tu_tmpdir(void);
void		 tu_cleanup(void);
/* Milliseconds on the monotonic clock. */
int64_t		 tu_now_ms(void);
void		 tu_sleep_ms(int ms);

/*
 * Starts argv[0] with argv; stdout and stderr go to out_path (NULL: the
 * test's own).  The child gets SIGKILL if the test process dies.
 */
pid_t		 tu_spawn(char *const argv[], const char *out_path);
/* SIGTERM, wait up to timeout_ms, then SIGKILL.  Returns the wait status. */
int		 tu_stop(pid_t pid, int timeout_ms);
/* Waits up to timeout_ms for pid to exit: status, or -1 on timeout. */
int		 tu_wait(pid_t pid, int timeout_ms);
/*
 * Starts "sipc recv handle --count count --output outf" through the broker
 * at addr (listening on loopback) or, addr NULL, the local registry; its
 * stderr goes to errf (NULL: the test's own).
 */
pid_t		 tu_spawn_recv(const char *addr, const char *handle, long count,
		    const char *outf, const char *errf);
/*
 * Waits up to timeout_ms for path to hold a port number (what sipc-epmd
 * --port-file writes once it accepts); gives up early when pid exits.
 * Returns the port, or 0.
 */
uint16_t	 tu_port_file(const char *path, pid_t pid, int timeout_ms);

struct tu_broker {
	pid_t		pid;
	uint16_t	port;
	char		addr[32];	/* "127.0.0.1:PORT" */
	char		log[256];	/* its stderr */
};

/*
 * Starts sipc-epmd on 127.0.0.1:0 with the extra arguments (NULL-ended)
 * and waits until it accepts.  Returns 0 or -1.
 */
int		 tu_broker_start(struct tu_broker *b, ...);
/* The same on 127.0.0.1:port (for restarting on the same port). */
int		 tu_broker_start_port(struct tu_broker *b, uint16_t port, ...);
void		 tu_broker_stop(struct tu_broker *b);

/*
 * Runs a shell command with a time limit of timeout_s seconds, capturing
 * stdout into out (NUL-terminated, truncated to size).  Returns the exit
 * status (124 on timeout), or -1.
 */
int		 tu_sh(int timeout_s, char *out, size_t size, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));
/* A loopback TCP port that was free a moment ago. */
uint16_t	 tu_free_port(void);
/* Resident memory (kB) and CPU time used (ms) of a process; -1. */
long		 tu_rss_kb(pid_t pid);
long		 tu_cpu_ms(pid_t pid);
/* Number of lines of the file that contain needle. */
int		 tu_file_count(const char *path, const char *needle);
/* Waits up to timeout_ms for n such lines: 1 when they are there, else 0. */
int		 tu_wait_file(const char *path, const char *needle, int n,
		    int timeout_ms);
/* Number of lines (newlines) of the file, or -1. */
long		 tu_file_lines(const char *path);
/* Counts occurrences of needle in s. */
int		 tu_count(const char *s, const char *needle);

/*
 * Runs the Check suite (output as $CK_VERBOSITY says): the exit status for
 * main, 0 when every test passed, else 1.
 */
int		 tu_run(Suite *s);

/* ---- Raw protocol client ------------------------------------------------- */

int		 tu_connect(uint16_t port);	/* blocking fd or -1 */
int		 tu_connect_unix(const char *path);	/* the same */
int		 tu_send(int fd, const void *p, size_t n);
/* Sends the frame in w and resets w. */
int		 tu_send_wbuf(int fd, struct wbuf *w);
/*
 * Reads one frame within timeout_ms into *h and payload (cap bytes).
 * Returns 0, 1 on timeout, -1 on EOF or error.
 */
int		 tu_recv(int fd, struct wire_header *h, uint8_t *payload,
		    size_t cap, int timeout_ms);
/* Reads frames until one with type (answering PINGs): 0 or -1. */
int		 tu_recv_type(int fd, uint8_t type, struct wire_header *h,
		    uint8_t *payload, size_t cap, int timeout_ms);
/* 1 when the peer closed fd within timeout_ms (after reading all). */
int		 tu_closed(int fd, int timeout_ms);
/* HELLO with the given heartbeat wish; 0 or -1. */
int		 tu_hello(int fd, uint32_t heartbeat_ms);
/* REGISTER handle at 127.0.0.1:port; the id, or 0 on failure. */
uint64_t	 tu_register(int fd, uint32_t reqid, const char *handle,
		    uint16_t port, uint64_t instance);

#endif
