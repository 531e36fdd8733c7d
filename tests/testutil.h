/*
 * testutil.h - helpers for sipc's Check tests: built programs, a
 * temporary directory, a broker on an ephemeral loopback port, commands
 * with captured output, files, and a raw-socket protocol client.  The
 * processes, clocks and bounded I/O under them are harness.h's, which the
 * benchmarks share.
 */
#ifndef SIPC_TESTUTIL_H
#define SIPC_TESTUTIL_H

#include <sys/types.h>
#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/wire.h"
#include "harness.h"

/* Absolute path of a built program: $SIPC_BUILD/bin/NAME. */
const char	*tu_bin(const char *name);
/* A fresh temporary directory, removed by tu_cleanup(). */
const char	*tu_tmpdir(void);
void		 tu_cleanup(void);
/*
 * Starts "sipc recv handle --count count --output outf" through the broker
 * at addr (listening on loopback) or, addr NULL, the local registry; its
 * stderr goes to errf (NULL: the test's own).
 */
pid_t		 tu_spawn_recv(const char *addr, const char *handle, long count,
		    const char *outf, const char *errf);

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

/* A private local registry ($XDG_RUNTIME_DIR under tu_tmpdir()), no
 * broker, no forced transport: nothing meets the user's processes. */
void		 tu_local_registry(void);
/* A test's mode (_i of the loop tests): 0 the local registry alone, 1 a
 * broker of its own in *b too (b->pid 0 otherwise).  Stopped by
 * tu_mode_teardown(). */
void		 tu_mode_setup(struct tu_broker *b, int mode);
void		 tu_mode_teardown(struct tu_broker *b);

/* ---- Raw protocol client ------------------------------------------------- */

/* A blocking connection to a Unix socket, or -1 (TCP: connect_loopback). */
int		 tu_connect_unix(const char *path);
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
/* A new session with the broker on bport (HELLO with a 5 s heartbeat)
 * that registered handle at 127.0.0.1:port: its fd, or -1. */
int		 tu_register_at(uint16_t bport, const char *handle,
		    uint16_t port, uint64_t instance);
/*
 * Accepts one sender's data connection on lfd and reads its DHELLO (*h,
 * and *m, which points into buf of cap bytes) within 10 s: the fd, or -1.
 */
int		 tu_accept_dhello(int lfd, struct wire_header *h,
		    struct wire_dhello *m, uint8_t *buf, size_t cap);
/*
 * A raw sender: connects to the receiver's Unix socket at path, sends
 * DHELLO (handle, features, sender id, first_seq, heartbeat, ack_bytes)
 * and reads its OK into *ok (Check assertions on the way): the fd.
 */
int		 tu_raw_sender(const char *path, const char *handle,
		    uint32_t features, uint64_t sender_id, uint64_t first_seq,
		    uint32_t heartbeat_ms, uint32_t ack_bytes,
		    struct wire_dhello_ok *ok);

#endif
