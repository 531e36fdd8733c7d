/*
 * ctlconn.h - a blocking broker session for brokerctl: connect, HELLO, one
 * request at a time, and reading pushed JOIN/LEAVE for watch.  Every call
 * is bounded by the connection's timeout; errors are written into err as
 * one line naming the address and the cause.
 */
#ifndef SIPC_BROKER_CTLCONN_H
#define SIPC_BROKER_CTLCONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "../../common/tls.h"
#include "../../proto/frame.h"
#include "../../proto/wire.h"

struct ctlconn {
	int			 fd;
	SSL_CTX			*ctx;		/* TLS or password mode */
	SSL			*ssl;
	int			 psk;
	int			 timeout_ms;
	char			 addr[300];	/* as given, for messages */
	uint32_t		 next_reqid;
	uint32_t		 max_frame;
	struct wire_hello_ok	 hello;
	char			 software[SIPC_SOFTWARE_MAX + 1];
	struct wbuf		 out;
	struct framer		 framer;
	uint8_t			*in;		/* last frame, as received */
	size_t			 incap;
	const uint8_t		*payload;	/* in, or inflated */
	char			 err[768];
};

/*
 * Connects to addr ("HOST[:PORT]", port 4455 when none is given), with TLS
 * when tc is not NULL (the certificate is checked against HOST; tc is only
 * read during the call), and does HELLO.  timeout_ms (milliseconds) bounds
 * connecting with TLS, and each answer of this and later calls.  0, or -1
 * with c->err set; either way ctl_close() frees what c holds.
 */
int	ctl_open(struct ctlconn *c, const char *addr, int timeout_ms,
	    const struct tls_conf *tc);
/* Ends the session (TLS close_notify if any), closes and frees. */
void	ctl_close(struct ctlconn *c);

/*
 * Sends the frame in c->out (encoded by the caller with request id
 * ctl_reqid(c)) and waits for its answer, answering heartbeats meanwhile.
 * Returns 0 with *h and *payload (valid until the next call) for an OK,
 * 1 for an ERROR (decoded into *e, text in c->err), -1 on failure.
 */
uint32_t ctl_reqid(struct ctlconn *c);
int	ctl_request(struct ctlconn *c, uint32_t reqid, struct wire_header *h,
	    const uint8_t **payload, struct wire_error *e);
/*
 * Waits up to timeout_ms (-1: forever) for a pushed frame (JOIN, LEAVE,
 * ERROR), answering PINGs.  Returns 0 with the frame, 1 on timeout, -1 on
 * failure or when the broker closed.
 */
int	ctl_next_event(struct ctlconn *c, int timeout_ms,
	    struct wire_header *h, const uint8_t **payload);

#endif
