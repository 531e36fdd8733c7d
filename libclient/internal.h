/*
 * internal.h - libsipc's internal header: the I/O loop, end point managers
 * and their two backends (broker session, local registry), and what
 * senders and receivers need from them.  Nothing here is public; only
 * include/sipc.h is, and only sipc_* symbols are exported (sipc.map).
 *
 * Rule of the house: every structure below is touched only on its EPM's
 * I/O thread, except where a field says "atomic" or "under mu".
 */
#ifndef SIPC_INTERNAL_H
#define SIPC_INTERNAL_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "../common/clock.h"
#include "../proto/wire.h"
#include "include/sipc.h"

/* ---- error.c ------------------------------------------------------------- */

/* Sets this thread's sipc_errmsg() and returns code. */
int	 seterr(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Same, appending ": strerror(errno)". */
int	 seterr_sys(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 clearerr_sipc(void);

/* ---- security.c ---------------------------------------------------------- */

/* 1 when s asks for TLS or password mode. */
int	 security_on(const struct sipc_security *s);
/*
 * An OpenSSL context for s, accepting (server) or connecting; *ctx NULL
 * when s asks for plain text; *psk 1 in password mode.  0, or SIPC_EINVAL /
 * SIPC_EAUTH with sipc_errmsg set (unreadable file, bad key...).
 */
int	 security_ctx(const struct sipc_security *s, int server,
	    SSL_CTX **ctx, int *psk);

/* ---- util.c -------------------------------------------------------------- */

/*
 * Structs that carry their size first (sipc.h, "Structs that grow").
 * sized_in: the caller's src (its size in its first field) over dst
 * (dsize bytes, holding the defaults): fields the caller does not have keep
 * them; fields past ours must be zero.  0, or SIPC_EINVAL naming what.
 * sized_out: our src (ssize bytes) into the caller's dst of dsize bytes;
 * what we do not have is zeroed; dst's size field says what we filled
 * (options set it back to the caller's size: see *_opts_init_size).
 */
int	 sized_in(void *dst, size_t dsize, const void *src, const char *what);
/* An *_opts_init_size(): the defaults (ssize bytes) into the caller's
 * options of dsize bytes, whose size field then says dsize. */
void	 sized_opts(void *dst, size_t dsize, const void *defaults,
	    size_t ssize);
void	 sized_out(void *dst, size_t dsize, const void *src, size_t ssize);

/* Formats a sockaddr as "1.2.3.4:5" / "[::1]:5" / "local". */
void	 sa_format(const struct sockaddr *sa, char *buf, size_t size);
/* sockaddr <-> wire endpoint (INET, INET6, UNIX). */
int	 sa_to_endpoint(const struct sockaddr *sa, struct wire_endpoint *ep);
socklen_t endpoint_to_sa(const struct wire_endpoint *ep,
	    struct sockaddr_storage *ss);
/*
 * Resolves "HOST[:PORT]" (default_port when absent) to a socket address.
 * Returns 0 or a SIPC_E* code with sipc_errmsg set.
 */
int	 resolve_hostport(const char *s, uint16_t default_port,
	    struct sockaddr_storage *ss, socklen_t *sl);
/* Parses a numeric IP into ss with port 0; 0 or -1. */
int	 parse_ip(const char *s, struct sockaddr_storage *ss, socklen_t *sl);
int	 endpoint_equal(const struct wire_endpoint *a,
	    const struct wire_endpoint *b);
int	 set_nonblock(int fd);
/* A condition variable on the monotonic clock, and a wait on it until
 * deadline (mono_ms; -1: forever).  The wait returns 0, or ETIMEDOUT. */
void	 cond_init_mono(pthread_cond_t *cv);
/* What a sender or receiver frees last: its lock, its condition and its
 * TLS context (NULL: none). */
void	 waiters_fini(pthread_mutex_t *mu, pthread_cond_t *cv, SSL_CTX *tls);
int	 cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
	    int64_t deadline);
/* mono_ms() + timeout_ms, or -1 for a negative timeout. */
int64_t	 deadline_after(int timeout_ms);
/* Socket options of data connections: TCP_NODELAY (buffer sizes stay
 * the kernel's autotuned ones; see util.c). */
/*
 * The Unix socket at which a broker-mode receiver (handle, pid, instance)
 * also listens for senders of its own host: the abstract name
 * "sipc/h/HASH.PID.INSTANCE" (epm_local.c).  Fills *sun; its length.
 */
struct sockaddr_un;
socklen_t samehost_addr(const char *handle, size_t hlen, long pid,
	    uint64_t instance, struct sockaddr_un *sun);
/*
 * 0 when $SIPC_TRANSPORT is "unix" or "tcp": no shared memory, messages go
 * on the socket; 1 otherwise (same-host Unix connections use the ring).
 */
int	 transport_shm_allowed(void);
void	 tune_data_socket(int fd, int is_tcp);
/* Runs timer ev once, ms milliseconds from now (at once when ms <= 0). */
void	 timer_after(struct event *ev, int64_t ms);
/* Adds (on) or deletes write event ev, with *armed saying whether it is
 * added, so that nothing is asked of libevent when nothing changes. */
void	 wev_set(struct event *ev, int *armed, int on);

/* ---- loop.c: one I/O thread ---------------------------------------------- */

struct loop_call;

struct loop {
	struct event_base	*base;
	pthread_t		 thread;
	int			 started;
	pthread_mutex_t		 mu;		/* calls, stop */
	pthread_cond_t		 cv;
	TAILQ_HEAD(, loop_call)	 calls;
	struct event		*call_ev;
	int			 stop;
};

int	 loop_init(struct loop *l);		/* creates the thread */
/* Stops and joins the thread; frees the base.  Must not run on it. */
void	 loop_fini(struct loop *l);
int	 loop_in_thread(const struct loop *l);
/* Runs fn(arg) on the loop thread and waits for it (inline when already
 * there). */
void	 loop_call(struct loop *l, void (*fn)(void *), void *arg);
/* On the loop thread: runs fn(-1, 0, arg) at once when now is set, else on
 * the loop's next turn, after the callback that is running returns (at
 * once too if that cannot be scheduled). */
void	 loop_later(struct loop *l, int now, event_callback_fn fn, void *arg);

/* ---- End point managers -------------------------------------------------- */

/* A receiver as a sender learns of it. */
struct peer {
	uint64_t		id;		/* broker registration id */
	uint64_t		instance;
	struct wire_endpoint	ep;
	char			host[SIPC_HOST_MAX + 1];
	uint32_t		pid;
};

/* A sender's interest in a handle (epm.c dispatches to it). */
struct epm_watch {
	TAILQ_ENTRY(epm_watch)	 entry;
	const char		*handle;	/* owned by the sender */
	uint16_t		 hlen;
	/* A receiver is there (from a snapshot or a JOIN). */
	void			(*on_join)(void *, const struct peer *);
	/* A receiver went away: by id (broker) or endpoint (local). */
	void			(*on_leave)(void *, const struct peer *);
	/* The broker session came back: a fresh snapshot follows as
	 * on_join calls, then on_synced. */
	void			(*on_resync)(void *);
	void			(*on_synced)(void *);
	void			*arg;
	uint32_t		 reqid;		/* pending WATCH */
};

/* A receiver's registration. */
struct epm_reg {
	TAILQ_ENTRY(epm_reg)	 entry;
	char			 handle[SIPC_HANDLE_MAX + 1];
	uint16_t		 hlen;
	uint64_t		 instance;
	struct wire_endpoint	 ep;
	/* Local registry: the hidden name the socket listens under until
	 * reg_add renames it to ep.path; "" then. */
	char			 staged[SIPC_UNIX_PATH_MAX + 1];
	uint64_t		 id;		/* broker's, once registered */
	uint32_t		 reqid;		/* pending REGISTER */
	/* The first answer (0 or SIPC_E*, message); then cleared. */
	void			(*done)(void *, int, const char *);
	void			*arg;
};

/* What a receiver asks of its EPM to listen (epm_ops.listen). */
struct epm_listen {
	const char		*handle;
	uint16_t		 hlen;
	uint64_t		 instance;
	/* Broker: struct sipc_receiver_opts' fields of the same names. */
	const char		*listen_address;
	const char		*register_address;
	const char		*allowed_ports;
	/* Out: the listening socket (non-blocking), the endpoint to
	 * register, and (local) the name it listens under until then. */
	int			 fd;
	struct wire_endpoint	 ep;
	char			 staged[SIPC_UNIX_PATH_MAX + 1];
};

/*
 * An end point manager: senders and receivers reach the registry only
 * through this table, so that a new kind (a broker cluster) is a new
 * table, never a branch in them.  Every operation but new and listen runs
 * on the EPM's loop thread.
 */
struct epm_ops {
	const char	*name;
	int		 local;		/* sipc_epm_is_local(): no daemon */
	/* Sets up epm (addr: the broker's, NULL for the local registry): 0
	 * or SIPC_E* with sipc_errmsg set; on the caller's thread. */
	int		(*create)(sipc_epm *, const char *addr);
	void		(*destroy)(sipc_epm *);
	/* A receiver's socket and endpoint: 0 or SIPC_E*; on the caller's
	 * thread. */
	int		(*listen)(sipc_epm *, struct epm_listen *);
	/* Registers r; r->done hears the first answer. */
	void		(*reg_add)(sipc_epm *, struct epm_reg *);
	void		(*reg_remove)(sipc_epm *, struct epm_reg *);
	void		(*watch_add)(sipc_epm *, struct epm_watch *);
	void		(*watch_remove)(sipc_epm *, struct epm_watch *);
	/* Nobody listens at p's endpoint: 1 when the receiver is gone for
	 * good (the sender forgets it), 0 when it may come back. */
	int		(*refused)(sipc_epm *, const struct peer *p);
	/* After the registry came back, how long a sender keeps receivers
	 * its new snapshot lacks, in ms: they may still be re-registering. */
	int		 resync_grace_ms;
};

extern const struct epm_ops epm_local_ops;
extern const struct epm_ops epm_broker_ops;

struct epm_broker;
struct epm_local;
struct rpc_pool;
struct call;

struct sipc_epm {
	const struct epm_ops	*ops;
	struct loop		 loop;
	atomic_int		 refs;
	int			 is_default;
	/* Threads waiting for a state change of this EPM. */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	atomic_int		 connected;	/* broker session up */
	atomic_int		 failed;	/* auth or version: final */
	struct sipc_epm_opts	 opts;
	TAILQ_HEAD(, epm_reg)	 regs;
	TAILQ_HEAD(, epm_watch)	 watches;
	struct epm_broker	*broker;
	struct epm_local	*local;
	/* Request/reply (requester.c), on the I/O thread: the pools of
	 * requesters, and answered calls whose callbacks are due. */
	TAILQ_HEAD(, rpc_pool)	 rpc_pools;
	TAILQ_HEAD(, rpc_pool)	 rpc_dead;	/* freed next turn */
	TAILQ_HEAD(, call)	 rpc_done;
	struct event		*rpc_done_ev;
};

/* requester.c: frees what request/reply left on epm's I/O thread. */
void	 rpc_fini(sipc_epm *epm);

/* The EPM for epm (NULL: the default), with a reference taken. */
int	 epm_acquire(sipc_epm *epm, sipc_epm **out);
void	 epm_release(sipc_epm *epm);
/* Run fn(arg) on epm's I/O thread from another thread and wait for it,
 * holding a reference of our own: when fn released the last other user,
 * the I/O thread has stopped before this returns. */
void	 epm_call_last(sipc_epm *epm, void (*fn)(void *), void *arg);
/* Wakes threads waiting on epm->cv. */
void	 epm_broadcast(sipc_epm *epm);

/* On the loop thread: */
void	 epm_reg_add(sipc_epm *epm, struct epm_reg *r);
void	 epm_reg_remove(sipc_epm *epm, struct epm_reg *r);
void	 epm_watch_add(sipc_epm *epm, struct epm_watch *w);
void	 epm_watch_remove(sipc_epm *epm, struct epm_watch *w);

/* epm_broker.c */
/* Why the session is not up: a SIPC_E* code, sipc_errmsg set. */
int	 broker_connect_error(sipc_epm *epm);
/* The local address of the broker session, port 0; 0 or SIPC_ENOTCONN. */
int	 broker_local_addr(sipc_epm *epm, struct sockaddr_storage *ss,
	    socklen_t *sl);
/* listen_tcp.c: the broker table's listen. */
int	 broker_listen(sipc_epm *epm, struct epm_listen *l);

#endif
