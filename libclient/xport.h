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

struct xport {
	int		 fd;
	SSL		*ssl;		/* NULL: plain */
	int		 tls_done;
	uint8_t		*stage;		/* TLS: bytes taken, not yet sent */
	size_t		 stage_len;
	size_t		 stage_off;
};

#define XP_DONE		0
#define XP_WANT_READ	1
#define XP_WANT_WRITE	2
#define XP_FAILED	(-1)

void	 xp_init(struct xport *x, int fd);
/* Puts TLS on the connection (host: what the client checks).  0 or -1. */
int	 xp_tls_start(struct xport *x, SSL_CTX *ctx, int server,
	    const char *host);
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
/* Frees TLS state and closes the socket. */
void	 xp_close(struct xport *x);

#endif
