/*
 * receiver.h - what the files of the receiver share (internal to
 * libsipc): one connection from one sender, and the receiver itself.
 *
 *   receiver.c       the public API: listening, registering, accepting,
 *                    closing
 *   receiver_conn.c  one connection from one sender: TLS, DHELLO, reading
 *                    and delivering DATA, gaps and duplicates, ACKs,
 *                    heartbeats, the memory of senders seen
 *   responder.c      requests on those connections, and their answers
 *   receiver_shm.c   the shared-memory ring of a same-host sender
 */
#ifndef SIPC_RECEIVER_H
#define SIPC_RECEIVER_H

#include <stdint.h>

#include "../common/liveness.h"
#include "internal.h"
#include "reader.h"
#include "shm.h"
#include "xport.h"

/* Read buffer: starts small (idle connections cost little) and doubles,
 * up to RBUF_MAX, whenever a read fills it (a busy sender).  Not more:
 * the kernel copies into it, and a buffer that no longer fits the CPU's
 * cache next to the socket's own made TCP reads slower (1 MiB: 41-47k
 * messages of 64 KiB/s; 256 KiB: 48-61k, 2 vCPUs of 1 MiB L2 each). */
#define RBUF_MIN	(64 * 1024)
#define RBUF_MAX	(256 * 1024)
#define ACK_DELAY_MS	20
#define DHELLO_MS	5000	/* a sender must say DHELLO within this */
#define ACCEPT_PAUSE_MS	100
#define READS_PER_EVENT	8

enum rphase {
	R_PEEK,		/* TLS receiver: plain-text sipc, or TLS? */
	R_TLS,		/* TLS handshake */
	R_OPEN		/* frames: DHELLO first */
};

struct rconn {
	TAILQ_ENTRY(rconn)	 entry;
	struct sipc_receiver	*rx;
	struct xport		 xp;
	enum rphase		 phase;
	struct dp_reader	 rd;
	struct event		*rev;
	struct event		*wev;
	struct event		*timer;
	int			 wev_armed;
	int			 ready;		/* DHELLO done */
	int			 closing;	/* last ERROR queued */
	char			 peer[64];
	uint64_t		 sender_id;
	uint64_t		 expected;	/* next seq in order */
	uint64_t		 delivered;	/* last seq delivered */
	uint64_t		 acked;		/* last seq acknowledged */
	uint64_t		 unacked_bytes;
	uint32_t		 ack_bytes;
	struct dp_buf		 in;
	struct outbuf		 out;		/* frames to write */
	int			 zlib;		/* ZLIB granted */
	int			 requester;	/* offered REPLY: not a sender */
	/* Requests (responder.c): each holds a reference; a connection
	 * closed while some are unanswered waits in rx->zombies for them. */
	int			 refs;
	int			 closed;
	int			 inflight;	/* unanswered requests */
	int			 paused;	/* not reading: too many */
	int64_t			 opened;
	struct liveness		 live;		/* from DHELLO on */
	int64_t			 ack_due;	/* 0: no ACK pending */
	/* Shared memory (receiver_shm.c): the ring read now and the one
	 * announced to follow it, our cursor page, our eventfd and the
	 * sender's, a large message being put together from CHUNKs. */
	int			 shm;		/* SHM granted */
	struct shm_view		 view;
	struct shm_view		 next;
	struct shm_cursor	 cur;
	int			 efd;
	int			 tx_efd;
	struct event		*shm_ev;
	uint8_t			*chunk;
	uint64_t		 chunk_seq;
	uint64_t		 chunk_skip;	/* seq of a message over
						   max_message: its CHUNKs */
	size_t			 chunk_len;
	size_t			 chunk_total;
};

struct sipc_receiver {
	sipc_epm			*epm;
	char				 handle[SIPC_HANDLE_MAX + 1];
	uint16_t			 hlen;
	struct sipc_receiver_opts	 opts;
	SSL_CTX				*tls;		/* NULL: plain text */
	int				 psk;
	uint64_t			 instance;
	int				 lfd;
	/* Broker mode: also a Unix socket for senders of this host, so
	 * that they can use the ring (PROTOCOL.md 6.7); -1: none. */
	int				 hfd;
	struct event			*hev;
	struct event			*lev;
	struct event			*accept_resume;
	struct epm_reg			 reg;
	int				 registered;
	char				 endpoint[128];
	TAILQ_HEAD(, rconn)		 conns;
	TAILQ_HEAD(, rconn)		 zombies;	/* closed, referenced */
	struct reply_port		*port;		/* on_request set */
	/* Per sender id seen, oldest replaced first: the next seq
	 * expected (what lies before is delivered or reported as a gap) and
	 * the last seq delivered (0: none yet). */
	uint64_t			 mem_id[SIPC_SENDER_MEMORY];
	uint64_t			 mem_expected[SIPC_SENDER_MEMORY];
	uint64_t			 mem_delivered[SIPC_SENDER_MEMORY];
	size_t				 mem_next;
	atomic_uint_fast64_t		 st_messages;
	atomic_uint_fast64_t		 st_bytes;
	atomic_uint_fast64_t		 st_gaps;
	atomic_uint_fast64_t		 st_dups;
	atomic_uint_fast64_t		 st_senders;
	atomic_uint_fast64_t		 st_requests;
	int				 dead;
	/* The registration's first answer, for sipc_receiver_new. */
	pthread_mutex_t			 mu;
	pthread_cond_t			 cv;
	int				 reg_done;
	int				 reg_rc;
	char				 reg_err[600];
	struct rx_pull			*pull;		/* pull.c; NULL: none */
};

/* receiver_conn.c */
void	queue_ack(struct rconn *c);
void	rconn_close(struct rconn *c, const char *why);
void	rconn_new(struct sipc_receiver *rx, int fd, const struct sockaddr *sa);
/* Appends a whole frame to c's output: 0, or -1 out of memory. */
int	rconn_out(struct rconn *c, const void *frame, size_t len);
/* Writes c's output: 0, or -1 when c was closed. */
int	rconn_flush(struct rconn *c);
/* An ERROR answering request reqid; the connection stays. */
void	rconn_error(struct rconn *c, uint32_t reqid, uint16_t code,
	    const char *text);
/* Stop and go on reading c (too many requests unanswered). */
void	rconn_pause(struct rconn *c);
void	rconn_resume(struct rconn *c);

/* Delivers one DATA (from the socket or the ring): in order, a gap, or a
 * duplicate. */
void	rconn_data(struct rconn *c, const struct dp_event *ev);
/* Queues ERROR code and closes after it: -1. */
int	rconn_fail(struct rconn *c, uint16_t code, const char *text);

/* receiver_shm.c, on the I/O thread */
/* 1 when SHM may be granted on c to a sender that offered it. */
int	rshm_grant(const struct rconn *c, uint32_t offered);
void	rshm_init(struct rconn *c);
/* SHM_RING: 0, or -1 when c failed. */
int	rshm_on_ring(struct rconn *c, const struct wire_shm_ring *m);
/* Delivers what the ring holds (all: up to its head, no sleeping): 0, or
 * -1 when c failed (it may be freed). */
int	rshm_drain(struct rconn *c, int all);
void	rshm_close(struct rconn *c);

/* responder.c, on the I/O thread */
struct reply_port;
int	rsp_port_open(struct sipc_receiver *rx);
void	rsp_port_close(struct sipc_receiver *rx);
void	rsp_request(struct rconn *c, const struct dp_event *ev);

/* pull.c: pull mode (pull.h) */
struct rx_pull;

#endif
