/*
 * requester.h - what the two files of the requester share (internal to
 * libsipc).
 *
 *   requester.c      pools (the requesters of one EPM and handle, and
 *                    the responders they follow); calls (one request or
 *                    survey): choosing a responder, deadlines, answers
 *   requester_api.c  the public API: submission, waiting, cancel
 *   req_conn.c   one connection of a pool to one responder: connect, TLS,
 *                DHELLO, writing requests, reading REPLY and ERROR,
 *                heartbeats, going down and coming back
 *
 * Everything here runs on the EPM's I/O thread, except the submission
 * queue of each requester (its own lock).
 */
#ifndef SIPC_REQUESTER_H
#define SIPC_REQUESTER_H

#include <stdint.h>

#include <event2/event_struct.h>

#include "../common/liveness.h"
#include "../proto/frame.h"
#include "internal.h"
#include "reader.h"
#include "xport.h"

#define QRBUF_MIN	(16 * 1024)
#define QRBUF_MAX	(256 * 1024)
#define QRECONNECT_MIN_MS 50
#define QRECONNECT_MAX_MS 2000

enum qstate {
	Q_DOWN,		/* not connected; the timer retries */
	Q_CONNECTING,
	Q_TLS,
	Q_HANDSHAKE,	/* DHELLO sent */
	Q_READY,	/* REPLY granted: a responder */
	Q_PASSIVE	/* a receiver that answers no requests */
};

struct call;

/* A request in flight on a connection: its call, and which of the call's
 * answers it is (a survey has one per responder). */
struct pend {
	uint32_t	 reqid;		/* 0: a free slot */
	uint32_t	 idx;
	struct call	*call;
};

struct qconn {
	TAILQ_ENTRY(qconn)	 entry;
	struct rpc_pool		*pool;
	struct peer		 peer;
	char			 name[64];
	enum qstate		 state;
	int			 tried;		/* an attempt ended */
	int			 last_error;	/* SIPC_EAUTH, SIPC_ETLS: why
						   the last attempt failed */
	int			 confirmed;	/* in the latest snapshot */
	struct xport		 xp;
	struct framer		 fr;
	struct event		*rev;
	struct event		*wev;
	struct event		*timer;
	int			 wev_armed;
	struct liveness		 live;
	struct backoff		 backoff;
	int64_t			 deadline;	/* connect, handshake */
	struct outbuf		 out;
	struct dp_buf		 in;
	uint64_t		 sender_id;	/* one per connection */
	uint64_t		 seq;		/* last DATA sent */
	uint32_t		 last_reqid;	/* last request id used */
	int			 wrapped;	/* request ids came round */
	uint32_t		 max_message;	/* the responder's */
	int			 zlib;
	/* Requests in flight, by request id: open addressing, linear
	 * probing, size a power of two at least twice npend. */
	struct pend		*tab;
	uint32_t		 tab_mask;
	uint32_t		 npend;
};

/* The requesters of one EPM and handle with the same options (and no
 * security options: those get a pool each), and the responders they
 * share. */
struct rpc_pool {
	TAILQ_ENTRY(rpc_pool)	 entry;
	sipc_epm		*epm;
	char			 handle[SIPC_HANDLE_MAX + 1];
	uint16_t		 hlen;
	struct sipc_requester_opts opts;	/* strings cleared */
	int			 shared;
	SSL_CTX			*tls;
	int			 psk;
	char			 tls_name[256];
	struct epm_watch	 watch;
	int			 synced;	/* the first snapshot came */
	TAILQ_HEAD(, qconn)	 conns;
	TAILQ_HEAD(, call)	 waiting;	/* for a responder */
	unsigned		 rr;		/* round-robin among equals */
	int			 refs;		/* requesters */
	int			 dead;
	uint64_t		 st_requests;
	uint64_t		 st_replies;
	uint64_t		 st_failed;
	uint64_t		 st_late;
};

/* Where one answer of a survey comes from. */
struct ask {
	struct qconn		*c;	/* NULL: answered or given up */
	uint32_t		 reqid;
	char			 name[64];
	uint8_t			*data;	/* a copy of the answer */
};

/* One request or survey. */
struct call {
	TAILQ_ENTRY(call)	 entry;		/* the requester's */
	TAILQ_ENTRY(call)	 wentry;	/* pool->waiting, epm->rpc_done */
	struct call		*next;		/* submission queue */
	sipc_requester		*rq;
	uint64_t		 id;
	int			 survey;
	int			 flags;
	int			 waiting;
	int			 halved;	/* survey: its wait is bounded */
	int			 retried;
	int			 timeout_ms;
	int64_t			 deadline;	/* mono_ms() */
	struct event		 timer;
	int			 timer_set;
	/* A single request: where it went, and its answer once it came
	 * (one block with the data and the responder's name). */
	struct qconn		*c;
	uint32_t		 reqid;
	struct sipc_reply	*res;
	int			 done;		/* on epm->rpc_done */
	sipc_reply_fn		 cb;
	sipc_survey_fn		 scb;
	void			*arg;
	/* A survey: every responder asked. */
	struct ask		*asks;
	struct sipc_reply	*replies;
	size_t			 asked;
	size_t			 answered;
	size_t			 len;
	uint8_t			 body[];	/* the request */
};

struct sipc_requester {
	struct rpc_pool		*pool;
	sipc_epm		*epm;
	TAILQ_HEAD(, call)	 calls;		/* submitted, not answered */
	size_t			 outstanding;
	int			 ct_ms;		/* the common timeout at */
	const struct timeval	*ct_tv;

	atomic_uint_fast64_t	 next_id;
	/* Calls from other threads, for the I/O thread to take. */
	pthread_mutex_t		 qmu;
	struct call		*qhead;
	struct call		**qtail;
	struct event		*qev;
	int			 closing;
	/* Pull mode (sipc_request_start): answers waiting for the
	 * program; made on first use, under qmu. */
	struct pullq		*done;
};

/* What attach_on_loop() needs: rq joins the pool of handle and opts. */
struct attach {
	sipc_requester		*rq;
	const char		*handle;
	const struct sipc_requester_opts *opts;
	SSL_CTX			*tls;
	int			 psk;
	const char		*tls_name;
	int			 rc;
};

/* requester.c, on the I/O thread */
void	attach_on_loop(void *arg);
void	pool_free(struct rpc_pool *p);
void	call_start(struct call *k);
/* Takes k out of every list and timer, with no callback; frees it. */
void	call_unlink(struct call *k);
void	call_free(struct call *k);
/* Answers for the calls of a connection */
void	call_answer(struct call *k, uint32_t idx, int error,
	    const uint8_t *data, size_t len, const char *from);
/* c is ready, passive or down: calls waiting for a responder go on. */
void	pool_kick(struct rpc_pool *p);

/* req_conn.c */
struct qconn *qconn_new(struct rpc_pool *p, const struct peer *peer);
/* Forgets the responder: its requests fail with error; frees c. */
void	qconn_remove(struct qconn *c, int error);
/* Sends call k (its answer idx) on c with a request id of c's: 0, or -1
 * out of memory (nothing sent, k not answered). */
int	qconn_send(struct qconn *c, struct call *k, uint32_t idx);
/* Forgets request reqid of c (answered, timed out, cancelled). */
void	qconn_forget(struct qconn *c, uint32_t reqid);

#endif
