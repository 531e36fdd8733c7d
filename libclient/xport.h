/*
 * xport.h - plain or TLS byte transport for data connections (xport.c).
 * Non-blocking: calls that would block fail with errno EAGAIN.
 */
#ifndef SIPC_XPORT_H
#define SIPC_XPORT_H

#include <sys/types.h>
#include <sys/uio.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define XP_MAX_FDS	4

struct xport {
	int		 fd;
	SSL		*ssl;		/* NULL: plain */
	int		 tls_done;
	uint8_t		*stage;		/* TLS: bytes taken, not yet sent */
	size_t		 stage_len;
	size_t		 stage_off;
	/* A plain Unix socket that may carry descriptors (SCM_RIGHTS): reads
	 * keep what comes, in order, for the frame that needs them. */
	int		 fdpass;
	int		 fds[XP_MAX_FDS];
	int		 nfds;
	int		 fd_excess;	/* more came than fit: a protocol error */
};

#define XP_DONE		0
#define XP_WANT_READ	1
#define XP_WANT_WRITE	2
#define XP_FAILED	(-1)

void	 xp_init(struct xport *x, int fd);
/* Puts TLS on the connection (host: what the client checks).  0 or -1. */
int	 xp_tls_start(struct xport *x, SSL_CTX *ctx, int server,
	    const char *host);
struct wire_endpoint;
/*
 * A client's TLS toward ep: the name its certificate must carry is
 * tls_name when set, else the IP address connected to (none for a Unix
 * socket; none in password mode).  0 or -1.
 */
int	 xp_tls_client(struct xport *x, SSL_CTX *ctx, int psk,
	    const char *tls_name, const struct wire_endpoint *ep);
struct event;
/*
 * A client's handshake step on the loop: XP_DONE, or XP_WANT_READ (also
 * for WANT_WRITE, with the write event wev armed for it), or XP_FAILED
 * with err.  wev is disarmed otherwise (*armed: its state).
 */
int	 xp_client_step(struct xport *x, int psk, struct event *wev,
	    int *armed, char *err, size_t errlen);
/* Advances the handshake: XP_DONE, XP_WANT_*, or XP_FAILED with err. */
int	 xp_handshake(struct xport *x, int psk, int server, char *err,
	    size_t errlen);
/* read(): bytes, 0 at EOF, -1 with errno. */
ssize_t	 xp_read(struct xport *x, void *buf, size_t len);
/* Decrypted bytes waiting inside TLS (the socket may look idle). */
size_t	 xp_in_pending(struct xport *x);
/* writev(): bytes taken from iov, -1 with errno (EAGAIN: try later). */
ssize_t	 xp_writev(struct xport *x, const struct iovec *iov, int n);
ssize_t	 xp_write(struct xport *x, const void *buf, size_t len);
/* 1 while TLS holds taken bytes not yet on the socket. */
int	 xp_out_pending(const struct xport *x);
/* Writes those: 0 done, 1 would block, -1 error. */
int	 xp_flush(struct xport *x);
/*
 * Sends len bytes (a whole small frame) with descriptors fds[0..n) on a
 * plain Unix socket: bytes taken, or -1 with errno.  The descriptors go
 * with the first byte; the caller keeps its own.
 */
ssize_t	 xp_send_fds(struct xport *x, const void *buf, size_t len,
	    const int *fds, int n);
/* Takes the oldest descriptor received: it, or -1 when none waits. */
int	 xp_take_fd(struct xport *x);
/* Frees TLS state, closes the socket and descriptors not taken. */
void	 xp_close(struct xport *x);

/*
 * A connection's output: whole frames, bytes p[off..len) not written yet.
 * It grows for what waits (replies can be large) and, once all is
 * written, a buffer grown past OUTBUF_KEEP bytes goes back.
 */
#define OUTBUF_MIN	1024
#define OUTBUF_KEEP	(64 * 1024)

struct outbuf {
	uint8_t		*p;
	size_t		 len;
	size_t		 off;
	size_t		 cap;
};

/* Appends n bytes: 0, or -1 out of memory (nothing appended). */
int	 outbuf_add(struct outbuf *o, const void *p, size_t n);
/* Appends a frame with a u64 payload (ACK, PING, PONG): 0 or -1. */
int	 outbuf_u64(struct outbuf *o, uint8_t type, uint32_t reqid,
	    uint64_t v);
/* Appends ERROR code with text, for request reqid (0: none): 0 or -1. */
int	 outbuf_error(struct outbuf *o, uint32_t reqid, uint16_t code,
	    const char *text);
static inline size_t
outbuf_pending(const struct outbuf *o)
{
	return o->len - o->off;
}
/* Drops what is not written, when nothing of it is (no frame is cut). */
void	 outbuf_discard(struct outbuf *o);
void	 outbuf_free(struct outbuf *o);
/*
 * Writes o to x (and what TLS holds): 1 when everything is on the socket,
 * 0 when the socket is full (wait for EV_WRITE), -1 on an error (errno).
 * *wrote is set when any byte went out (may be NULL).
 */
int	 outbuf_write(struct outbuf *o, struct xport *x, int *wrote);

#endif
