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
int	 set_nonblock(int fd);
/* A condition variable on the monotonic clock, and a wait on it until
 * deadline (mono_ms; -1: forever).  The wait returns 0, or ETIMEDOUT. */
void	 cond_init_mono(pthread_cond_t *cv);
int	 cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
	    int64_t deadline);
/* mono_ms() + timeout_ms, or -1 for a negative timeout. */
int64_t	 deadline_after(int timeout_ms);
/* Socket options of data connections: TCP_NODELAY (buffer sizes stay
 * the kernel's autotuned ones; see util.c). */
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
	uint64_t		 id;		/* broker's, once registered */
	uint32_t		 reqid;		/* pending REGISTER */
	/* The first answer (0 or SIPC_E*, message); then cleared. */
	void			(*done)(void *, int, const char *);
	void			*arg;
};

enum epm_kind {
	EPM_LOCAL,
	EPM_BROKER
};

struct epm_broker;
struct epm_local;

struct sipc_epm {
	enum epm_kind		 kind;
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
};

/* The EPM for epm (NULL: the default), with a reference taken. */
int	 epm_acquire(sipc_epm *epm, sipc_epm **out);
void	 epm_release(sipc_epm *epm);
/* Wakes threads waiting on epm->cv. */
void	 epm_broadcast(sipc_epm *epm);

/* On the loop thread: */
void	 epm_reg_add(sipc_epm *epm, struct epm_reg *r);
void	 epm_reg_remove(sipc_epm *epm, struct epm_reg *r);
void	 epm_watch_add(sipc_epm *epm, struct epm_watch *w);
void	 epm_watch_remove(sipc_epm *epm, struct epm_watch *w);

/* epm_broker.c */
int	 broker_new(sipc_epm *epm, const char *addr);
/* Why the session is not up: a SIPC_E* code, sipc_errmsg set. */
int	 broker_connect_error(sipc_epm *epm);
void	 broker_free(sipc_epm *epm);
void	 broker_reg_add(sipc_epm *epm, struct epm_reg *r);
void	 broker_reg_remove(sipc_epm *epm, struct epm_reg *r);
void	 broker_watch_add(sipc_epm *epm, struct epm_watch *w);
void	 broker_watch_remove(sipc_epm *epm, struct epm_watch *w);
/* The local address of the broker session, port 0; 0 or SIPC_ENOTCONN. */
int	 broker_local_addr(sipc_epm *epm, struct sockaddr_storage *ss,
	    socklen_t *sl);

/* epm_local.c */
int	 local_new(sipc_epm *epm);
void	 local_free(sipc_epm *epm);
void	 local_reg_add(sipc_epm *epm, struct epm_reg *r);
void	 local_reg_remove(sipc_epm *epm, struct epm_reg *r);
void	 local_watch_add(sipc_epm *epm, struct epm_watch *w);
void	 local_watch_remove(sipc_epm *epm, struct epm_watch *w);
/* The registry directory ("/run/user/1000/sipc"). */
const char *local_dir(sipc_epm *epm);
/* Creates and checks the registry directory; 0 or SIPC_EPERM/ESYS. */
int	 local_dir_prepare(char *dir, size_t size);
/* Socket path of a receiver: DIR/HASH.PID.INSTANCE; 0 or SIPC_EINVAL. */
int	 local_socket_path(sipc_epm *epm, const char *handle, size_t hlen,
	    uint64_t instance, char *path, size_t size);

#endif
