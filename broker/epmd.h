/*
 * epmd.h - sipc-epmd's internal header: configuration, the broker, its
 * listeners and sessions.  One libevent loop runs everything; nothing here
 * is thread-safe and nothing needs to be.
 */
#ifndef SIPC_BROKER_EPMD_H
#define SIPC_BROKER_EPMD_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "../common/clock.h"
#include "../common/liveness.h"
#include "../proto/frame.h"
#include "../proto/wire.h"
#include "log.h"
#include "registry.h"

#define EPMD_SOFTWARE		"sipc-epmd/" SIPC_VERSION
#define EPMD_DEFAULT_PORT	4455
#define EPMD_MAX_LISTEN		16

/* ---- config.c ------------------------------------------------------------ */

struct config {
	char		*listen[EPMD_MAX_LISTEN];
	int		 nlisten;
	uint16_t	 port;		/* of the default listeners */
	uint32_t	 listen_backlog;
	char		*port_file;
	char		*pidfile;
	int		 daemon;
	enum log_level	 log_level;
	uint32_t	 heartbeat_ms;
	uint32_t	 handshake_ms;
	uint32_t	 idle_ms;
	uint32_t	 max_sessions;
	uint32_t	 max_sessions_per_peer;
	uint32_t	 max_registrations;
	uint32_t	 max_watches;
	uint32_t	 max_frame;
	int		 compression;
	char		*tls_cert;
	char		*tls_key;
	char		*tls_ca;
	int		 tls_verify_client;
	int		 tls12;
	char		*password_file;
	char		*salt;
	int		 insecure;
	char		*user;
	char		*metrics;
	uint32_t	 summary_ms;
	/* Cluster mode (cluster.c): etcd URLs; NULL: standalone. */
	char		*etcd;
	char		*etcd_prefix;
	uint32_t	 etcd_ttl_s;
	uint32_t	 etcd_timeout_ms;
	char		*etcd_ca;
	char		*etcd_cert;
	char		*etcd_key;
};

/* What the command line said, kept to re-apply over the file on reload. */
struct cmdline {
	char		*config_file;
	int		 check_config;
	const char	*password;	/* the original's positional form */
	int		 nset;
	const char	*set_key[64];
	const char	*set_val[64];
};

void	config_defaults(struct config *c);
void	config_free(struct config *c);
/*
 * Parses argv into *cl (exits 2 with a usage message on bad options), then
 * builds *c: defaults, the config file if any, the command line on top.
 * Returns 0, or -1 after printing what was wrong (*c then holds nothing to
 * free).
 */
int	config_cmdline(int argc, char **argv, struct cmdline *cl);
int	config_load(const struct cmdline *cl, struct config *c);
void	config_print(const struct config *c, FILE *fp);
void	config_usage(FILE *fp);

/* ---- the broker ---------------------------------------------------------- */

struct session;
TAILQ_HEAD(session_list, session);

struct listener {
	int			 fd;
	struct sockaddr_storage	 ss;		/* bound address */
	struct evconnlistener	*evl;
	char			 name[80];	/* "127.0.0.1:4455" */
	uint16_t		 port;
};

struct broker_stats {
	uint64_t	sessions_total;
	uint64_t	frames_in;
	uint64_t	frames_out;
	uint64_t	bytes_in;
	uint64_t	bytes_out;
	uint64_t	errors_sent;
	uint64_t	errors_by_code[WIRE_ERR_LAST + 1];
	uint64_t	heartbeat_expiries;
	uint64_t	handshake_timeouts;
	uint64_t	accept_paused;
	uint64_t	tls_failures;
};

struct broker {
	struct event_base	*base;
	struct config		 cfg;
	struct cmdline		 cl;
	char			 cwd[PATH_MAX];	/* at start; "": unknown */
	struct registry		*reg;
	struct listener		 listeners[EPMD_MAX_LISTEN];
	int			 nlisteners;
	struct session_list	 sessions;
	uint32_t		 nsessions;
	/* Plain sessions with output to write at the end of this turn. */
	TAILQ_HEAD(, session)	 flushq;
	struct event		*flush;
	uint64_t		 next_session_id;
	uint64_t		 started_mono_ms;
	struct broker_stats	 st;
	struct broker_stats	 last;		/* at the last summary */
	struct evhttp		*http;		/* --metrics */
	struct event		*summary;
	struct wbuf		 out;		/* scratch for one answer */
	struct wbuf		 evout;		/* scratch for JOIN/LEAVE */
	SSL_CTX			*tls;		/* NULL: plain text */
	int			 psk;		/* password mode */
	int			 reserve_fd;	/* spare descriptor, EMFILE */
	struct event		*accept_resume;
	struct event		*sig_term;
	struct event		*sig_int;
	struct event		*sig_hup;
	int			 shutting_down;
	int			 shutdown_hold;	/* requests to finish first */
	struct cluster		*cluster;	/* NULL: standalone */
	int			 ready_fd;	/* --daemon: tell the parent */
};


/* ---- listen.c ------------------------------------------------------------ */

/*
 * Binds every configured listener (the defaults when none is configured).
 * Returns 0, or -1 after logging which address failed and why.
 */
int	listen_bind(struct broker *b);
/* Starts accepting on the bound sockets: 0 or -1. */
int	listen_start(struct broker *b);
/* Protected mode: -1 (logged) when a listener is reachable from the
 * network without TLS or a password and insecure is not set. */
int	listen_check_protected(struct broker *b);
void	listen_close(struct broker *b);
/* Gives every listening socket the backlog of b->cfg (SIGHUP). */
void	listen_set_backlog(struct broker *b);
int	listen_write_port_file(struct broker *b, const char *path);

/* ---- metrics.c ----------------------------------------------------------- */

/* Serves Prometheus metrics at http://spec/metrics (spec: "ADDR:PORT"):
 * 0 or -1 (logged). */
int	metrics_start(struct broker *b, const char *spec);
/* (Re)starts the summary line, logged every cfg.summary_ms milliseconds
 * (never when 0): 0 or -1 (logged). */
int	summary_start(struct broker *b);
/* Stops both; the broker may call it when neither was started. */
void	metrics_stop(struct broker *b);

/* ---- cluster.c ----------------------------------------------------------- */

struct cluster;
struct evbuffer;

/*
 * Joins the cluster of cfg.etcd: lease, epoch, a full range into the
 * registry, then one watch.  ready(b) is called once, when the mirror is
 * in sync or after CL_START_WAIT_MS without etcd (then degraded).  Returns
 * 0, or -1 (logged) on a bad setting.
 */
int	cluster_start(struct broker *b, void (*ready)(struct broker *));
/* On the way out (SIGTERM): deletes the broker's own key; its
 * registrations stay for its clients to replace elsewhere, the rest go
 * with the lease. */
void	cluster_shutdown(struct broker *b);
void	cluster_free(struct broker *b);
/* REGISTER in cluster mode: answered once etcd has it (or refused). */
void	cluster_register(struct session *s, uint32_t reqid,
	    const struct wire_register *m);
/* A local registration is going (UNREGISTER): delete its key. */
void	cluster_unregistered(struct broker *b, const struct registration *g);
/* Session s ends: delete its keys, forget its pending REGISTERs. */
void	cluster_session_end(struct broker *b, struct session *s);
int	cluster_degraded(const struct broker *b);
/* Appends the cluster's STATS entries to w: how many. */
uint32_t cluster_put_stats(struct broker *b, struct wbuf *w);
/* Appends the cluster's Prometheus metrics to o. */
void	cluster_metrics(struct broker *b, struct evbuffer *o);
/* The i-th broker known in etcd: 0, or -1 past the last. */
int	cluster_brokers(struct broker *b, int i, const char **uuid,
	    const char **json);

/* ---- session.c ----------------------------------------------------------- */

enum session_state {
	SESSION_HANDSHAKE,	/* TLS (if any), then waiting for HELLO */
	SESSION_READY,
	SESSION_CLOSING		/* flushing a last ERROR, then freed */
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	struct broker		*b;
	int			 fd;
	/*
	 * Plain sessions do their own socket I/O: rev reads into in; output
	 * collects in out and goes in one write per loop turn (flushq), wev
	 * waits only while the socket is full.  TLS sessions use bev, whose
	 * buffers in and out then are.
	 */
	struct bufferevent	*bev;		/* TLS: NULL before TLS starts */
	struct evbuffer		*in;
	struct evbuffer		*out;
	struct event		*rev;
	struct event		*wev;
	int			 flushing;	/* on b->flushq */
	TAILQ_ENTRY(session)	 flush_entry;
	struct event		*peek;		/* TLS: first bytes */
	int			 tls_done;
	struct event		*timer;
	uint64_t		 id;
	enum session_state	 state;
	char			 peer[64];	/* "addr:port" for logs */
	char			 peer_addr[48];	/* address only */
	uint8_t			 version;
	uint32_t		 features;
	uint32_t		 heartbeat_ms;
	uint32_t		 max_frame;	/* current payload limit */
	struct framer		 framer;
	struct liveness		 live;		/* once READY */
	uint64_t		 opened_ms;
	uint64_t		 last_rx_ms;
	uint64_t		 last_req_ms;
	uint64_t		 close_deadline_ms;
	char			 host[SIPC_HOST_MAX + 1];
	char			 software[SIPC_SOFTWARE_MAX + 1];
	uint32_t		 pid;
	struct reg_owner	 owner;
	/* A close requested from a place that must not free (fan-out). */
	int			 pending_close;
	uint16_t		 pending_code;
	char			 pending_text[128];
};

/* Takes over fd, accepted from peer; closes it on failure. */
void	session_accept(struct broker *b, int fd, const struct sockaddr *sa,
	    socklen_t salen);
/* HELLO succeeded: lift the frame limit, start heartbeats. */
void	session_ready(struct session *s);
/*
 * Sends one encoded frame.  Returns 0, or -1 when the session can take no
 * more output (it is then closing).
 */
int	session_send(struct session *s, const uint8_t *frame, size_t len);
/* Encodes and sends an ERROR answering reqid. */
void	session_error(struct session *s, uint32_t reqid, uint16_t code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * Closes the session: its registrations and watches go at once; code != 0
 * sends a last ERROR first.  The memory is freed later, never inside the
 * call, so callers may still read s.
 */
void	session_close(struct session *s, uint16_t code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Same, for places that walk registry lists: takes effect on the next turn
 * of the loop. */
void	session_close_later(struct session *s, uint16_t code, const char *text);
/* Sets up the sessions' shared state once b->base exists: 0 or -1. */
int	session_init(struct broker *b);
void	session_close_all(struct broker *b, uint16_t code, const char *text);
/* Frees every session and the shared state. */
void	session_free_all(struct broker *b);
/* Counts open sessions whose peer address is addr. */
uint32_t session_count_peer(struct broker *b, const char *addr);

/* ---- dispatch.c ---------------------------------------------------------- */

/* Handles one complete frame of session s. */
void	dispatch_frame(struct session *s, const struct wire_header *h,
	    const uint8_t *payload);
/* A registration as the wire carries it (LOOKUP, JOIN, /v1/handles);
 * rec points into g and its owner. */
void	dispatch_record(const struct registration *g, struct wire_record *rec);
/* The registry's notify callback: JOIN and LEAVE to watchers. */
void	dispatch_notify(void *arg, const struct reg_event *ev);

#endif
