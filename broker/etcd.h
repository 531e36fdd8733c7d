/*
 * etcd.h - a client of etcd's v3 JSON gateway (etcd 3.4: POST /v3/...),
 * over libevent's evhttp, with json-c for every JSON document and OpenSSL
 * for TLS.  It knows etcd, not sipc: the broker's cluster mode (cluster.c)
 * is its only user.
 *
 * What it speaks: kv put, range, deleterange and txn; lease grant,
 * keepalive (one request per renewal) and revoke; one streaming watch per
 * struct etcd_watch.  Keys and values are bytes (base64 in the JSON, done
 * here).  Every answer is bounded (max_response bytes; a watch message the
 * same), parsed with json-c and checked field by field; anything else is an
 * ETCD_EBADRESPONSE, never a crash.
 *
 * Endpoints: a list of URLs ("http://127.0.0.1:2379,https://b:2379").  All
 * requests go to the current one; a connection failure moves to the next
 * for the following requests.  Requests are not retried here: the caller
 * knows which ones may be.
 *
 * Threads: none.  Everything runs on the event base given to etcd_new(),
 * and every callback is called from it, never from inside the call that
 * started the request.
 */
#ifndef SIPC_BROKER_ETCD_H
#define SIPC_BROKER_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#define ETCD_MAX_ENDPOINTS	16
/* Default bound of one answer or one watch message, in bytes. */
#define ETCD_DEF_MAX_RESPONSE	(64u << 20)
#define ETCD_DEF_TIMEOUT_MS	3000

/* Errors, in etcd_res.err (0: success). */
#define ETCD_ECONNECT		1	/* no connection, or it broke */
#define ETCD_ETIMEDOUT		2
#define ETCD_EBADRESPONSE	3	/* not JSON, wrong shape, too large */
#define ETCD_ESERVER		4	/* etcd answered with an error */
#define ETCD_ENOLEASE		5	/* the lease is gone (expired/revoked) */
#define ETCD_ENOMEM		6
#define ETCD_ECANCELED		7	/* etcd_free() or etcd_watch_stop() */

struct etcd_config {
	const char	*endpoints;	/* comma-separated URLs */
	const char	*tls_ca;	/* PEM file; NULL: system default */
	const char	*tls_cert;	/* client certificate, PEM; or NULL */
	const char	*tls_key;	/* its key, PEM */
	uint32_t	 timeout_ms;	/* per request; 0: default */
	size_t		 max_response;	/* bytes; 0: default */
};

struct etcd_kv {
	const uint8_t	*key;		/* valid during the callback only */
	size_t		 klen;
	const uint8_t	*value;
	size_t		 vlen;
	int64_t		 create_revision;
	int64_t		 mod_revision;
	int64_t		 lease;
};

/* The result of one request; valid during the callback only. */
struct etcd_res {
	int		 err;		/* 0 or ETCD_E* */
	const char	*why;		/* err != 0: what happened, in words */
	int64_t		 revision;	/* the header's: the store's revision */
	struct etcd_kv	*kvs;		/* range: nkvs pairs */
	size_t		 nkvs;
	int		 more;		/* range: limit cut the answer */
	int64_t		 count;		/* range: keys in the range */
	int64_t		 deleted;	/* deleterange */
	int64_t		 lease_id;	/* grant, keepalive */
	int64_t		 ttl;		/* grant, keepalive: s; 0: lease gone */
	int		 succeeded;	/* txn: the compare held */
	uint64_t	 latency_us;
};

typedef void (*etcd_cb)(void *arg, const struct etcd_res *res);

/* Counters for /metrics, kept by the client. */
struct etcd_stats {
	uint64_t	requests;
	uint64_t	errors;		/* any err != 0 */
	uint64_t	latency_us_sum;	/* of the requests that succeeded */
	uint64_t	latency_us_max;
	uint64_t	lat_le[8];	/* <= 0.5,1,2,5,10,50,250 ms, +Inf */
	uint64_t	watch_events;
	uint64_t	watch_restarts;
};
extern const double etcd_lat_bounds_ms[7];

struct etcd;
struct etcd_txn;
struct etcd_watch;

/*
 * Creates a client on base.  Parses and checks c->endpoints and loads the
 * TLS files; connects lazily.  Returns NULL with a reason in err[0..errlen)
 * on a bad URL, an unreadable TLS file or no memory.  The strings in c are
 * copied.
 */
struct etcd	*etcd_new(struct event_base *base, const struct etcd_config *c,
		    char *err, size_t errlen);
/* Frees the client: pending requests are dropped, their callbacks not
 * called; watches must have been freed first. */
void		 etcd_free(struct etcd *e);
/* The URL requests go to now. */
const char	*etcd_endpoint(const struct etcd *e);
const struct etcd_stats *etcd_stats(const struct etcd *e);

/*
 * The requests.  Each returns 0 and calls cb(arg, res) exactly once later,
 * or returns -1 (out of memory) and never calls it.  key and value are
 * bytes, copied.  range_end NULL with rlen 0 means "this key"; the helper
 * etcd_prefix_end() gives the end of a prefix range.  lease 0: none.
 */
int	etcd_put(struct etcd *e, const void *key, size_t klen,
	    const void *value, size_t vlen, int64_t lease, etcd_cb cb,
	    void *arg);
/* limit 0: all; revision 0: the newest. */
int	etcd_range(struct etcd *e, const void *key, size_t klen,
	    const void *range_end, size_t rlen, int64_t revision,
	    int64_t limit, etcd_cb cb, void *arg);
int	etcd_delete(struct etcd *e, const void *key, size_t klen,
	    const void *range_end, size_t rlen, etcd_cb cb, void *arg);
/* TTL in seconds; etcd may grant a longer one (res->ttl). */
int	etcd_lease_grant(struct etcd *e, int64_t ttl_s, etcd_cb cb,
	    void *arg);
/* res->ttl is 0 when the lease no longer exists. */
int	etcd_lease_keepalive(struct etcd *e, int64_t id, etcd_cb cb,
	    void *arg);
int	etcd_lease_revoke(struct etcd *e, int64_t id, etcd_cb cb, void *arg);

/* Fills out with the first key after every key that starts with prefix
 * (etcd's range_end of a prefix): its length, or 0 for "no end" ("\0"). */
size_t	etcd_prefix_end(const void *prefix, size_t len, uint8_t *out);

/*
 * Transactions without compares: a list of puts and deletes applied
 * together at one revision.  etcd_txn_new() returns NULL when out of
 * memory; each add returns 0 or -1 (out of memory; the txn stays usable
 * and unchanged).  etcd_txn_send() takes t over whatever it returns.
 */
struct etcd_txn	*etcd_txn_new(void);
int		 etcd_txn_put(struct etcd_txn *t, const void *key, size_t klen,
		    const void *value, size_t vlen, int64_t lease);
int		 etcd_txn_delete(struct etcd_txn *t, const void *key,
		    size_t klen);
size_t		 etcd_txn_ops(const struct etcd_txn *t);
void		 etcd_txn_free(struct etcd_txn *t);
int		 etcd_txn_send(struct etcd *e, struct etcd_txn *t, etcd_cb cb,
		    void *arg);

/* ---- Watch --------------------------------------------------------------- */

#define ETCD_EV_PUT	0
#define ETCD_EV_DELETE	1

struct etcd_event {
	int		 type;		/* ETCD_EV_* */
	struct etcd_kv	 kv;		/* DELETE: key and mod_revision only */
};

enum etcd_watch_what {
	ETCD_W_CREATED,		/* the stream is up */
	ETCD_W_EVENTS,		/* evs[0..nev): one revision's changes */
	ETCD_W_COMPACTED,	/* start revision compacted: range again */
	ETCD_W_CANCELED,	/* the server ended the watch */
	ETCD_W_ERROR		/* broken stream, bad message, too large */
};

/*
 * What a watch reports, on the loop: revision is the header's; for
 * COMPACTED it is the compact revision.  After COMPACTED, CANCELED and
 * ERROR the watch is over: the caller may restart it with
 * etcd_watch_start() (after a fresh range, to miss nothing).
 */
typedef void (*etcd_watch_fn)(void *arg, enum etcd_watch_what what,
	    const struct etcd_event *evs, size_t nev, int64_t revision,
	    const char *why);

/* Creates a watch object bound to e (not started); NULL: no memory. */
struct etcd_watch *etcd_watch_new(struct etcd *e, etcd_watch_fn fn,
		    void *arg);
/*
 * Watches [key, range_end) from revision start_rev (0: from now) on its
 * own connection, stopping a stream still running first.  Returns 0, or
 * -1 (no memory, or no connection could be started: try again later).
 * Call it from a timer or a request's callback, not from inside the
 * watch's own callback: a stream ending is still unwinding there.
 */
int		 etcd_watch_start(struct etcd_watch *w, const void *key,
		    size_t klen, const void *range_end, size_t rlen,
		    int64_t start_rev);
/* Stops the stream (no callback). */
void		 etcd_watch_stop(struct etcd_watch *w);
void		 etcd_watch_free(struct etcd_watch *w);

#endif
