/*
 * cluster.c - sipc-epmd as one broker of a cluster on etcd (--etcd).
 *
 * etcd is the only source of truth; there is no consensus here.  Layout
 * under the prefix P (default "/sipc/v1/"), documented in README:
 *
 *   P reg/<handle>/<id, 16 hex digits>   one registration (JSON value),
 *                                        under the lease of its broker
 *   P brokers/<broker uuid>              one broker (JSON), same lease
 *
 * Writes: REGISTER is checked against the mirror, queued, and written in
 * a transaction with every other write queued meanwhile (at most
 * CL_TXN_OPS operations); OK goes to the client once etcd has it.  The
 * registration then enters the local registry at once; the watch event
 * that follows finds it there.  A session that ends, or UNREGISTER,
 * deletes its keys the same way.  A broker that stops does not: its
 * clients register at other brokers, replacing its registrations one by
 * one (JOIN before LEAVE), and its lease takes the rest.
 *
 * Reads: every broker mirrors the whole prefix through one watch into its
 * registry, registrations of other brokers under one owner (c->remote), in
 * the order of etcd's revisions.  LOOKUP, LIST, WATCH, JOIN and LEAVE work
 * from the registry exactly as on a standalone broker.
 *
 * Ids: a broker claims an epoch, the revision at which etcd stored its
 * broker key; ids are epoch << 20 | n (n = 1 .. 2^20-1, then a new epoch).
 * A revision belongs to one write of one broker, so ids are unique across
 * the cluster and never reused, and they stay below 2^53 while etcd's
 * revision is below 2^33.
 *
 * Failures: a request that fails marks etcd unreachable ("degraded"): the
 * mirror keeps answering, REGISTER gets ERROR UNAVAILABLE, and the
 * keepalive timer retries every CL_RETRY_MS.  When etcd answers again the
 * broker ranges the prefix and reconciles the mirror with it: only what
 * changed gives JOIN or LEAVE.  A lease found gone (the broker was paused
 * past its TTL) is replaced and every live registration written again
 * under the new one, with the same id.  A watch that breaks, is cancelled
 * or finds its revision compacted leads to the same range and reconcile.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <json-c/json.h>
#include <openssl/rand.h>

#include "../proto/addr.h"
#include "etcd.h"
#include "epmd.h"

#define CL_TXN_OPS	128	/* etcd's default --max-txn-ops */
/* Transactions in flight at once, each on a connection of its own: etcd
 * commits concurrent ones together (one fsync), so a write waits for at
 * most one commit instead of queueing behind the one in flight. */
#define CL_WRITERS	4
#define CL_ID_BITS	20
#define CL_RETRY_MS	500
#define CL_RANGE_PAGE	2000
#define CL_MAX_BROKERS	256
#define CL_BROKER_JSON	1024
#define CL_START_WAIT_MS 5000
#define CL_VALUE_MAX	4096	/* a registration's JSON, bytes */

enum item_kind {
	CI_REGISTER,	/* a client's REGISTER: answered after the write */
	CI_PUT,		/* write a live registration again */
	CI_DELETE	/* delete a key */
};

struct item {
	TAILQ_ENTRY(item)	 entry;
	enum item_kind		 kind;
	struct session		*s;		/* REGISTER; NULL: session gone */
	uint32_t		 reqid;
	uint64_t		 id;		/* assigned at the write */
	uint64_t		 supersede;	/* remote id it replaces, or 0 */
	uint64_t		 instance;
	uint64_t		 registered_ms;
	struct wire_endpoint	 ep;
	uint16_t		 hlen;
	char			 handle[SIPC_HANDLE_MAX + 1];
	char			*key;		/* DELETE */
	size_t			 klen;
	int			 committed;	/* REGISTER applied */
};
TAILQ_HEAD(item_list, item);

struct cluster;

/* One connection for transactions, and what it has in flight. */
struct writer {
	struct cluster		*c;
	struct etcd		*etcd;
	struct item_list	 inflight;	/* empty: free */
};

struct cl_broker {
	char	uuid[17];
	char	json[CL_BROKER_JSON];
};

struct cluster {
	struct broker		*b;
	struct etcd		*etcd;
	struct etcd_watch	*watch;
	char			 prefix[128];
	size_t			 plen;
	char			 uuid[17];
	int64_t			 lease;		/* 0: none */
	uint64_t		 epoch;		/* 0: none claimed */
	uint32_t		 counter;
	int			 degraded;
	int			 synced;	/* mirror follows the watch */
	int			 busy;		/* a recovery step in flight */
	int			 started;	/* ready callback called */
	void			(*ready)(struct broker *);
	struct reg_owner	 remote;
	struct item_list	 queue;
	struct writer		 w[CL_WRITERS];
	uint32_t		 nqueued;
	struct event		*flush_ev;
	struct event		*tick;
	struct event		*start_timer;
	int64_t			 last_keepalive_ms;
	int			 keepalive_busy;
	int64_t			 watch_rev;	/* revision applied last */
	/* A range in pages, all at one revision, marking what it finds. */
	int64_t			 range_rev;
	uint64_t		 rs_stamp;
	uint64_t		 rs_joined;
	struct cl_broker	 brokers[CL_MAX_BROKERS];
	int			 nbrokers;
	char			 why[256];	/* the last etcd failure */
	struct cl_stats {
		uint64_t	txns;
		uint64_t	txn_ops;
		uint64_t	events;
		uint64_t	resyncs;
		uint64_t	lease_losses;
		uint64_t	degraded_total;
		uint64_t	bad_values;
		uint64_t	refused;
	}			 st;
	int			 shutdown;
};

static void	cl_recover(struct cluster *c);
static void	cl_flush_later(struct cluster *c);

/* ---- Keys and values ----------------------------------------------------- */

static size_t
reg_key(const struct cluster *c, const char *handle, size_t hlen,
    uint64_t id, char *out, size_t size)
{
	int n = snprintf(out, size, "%sreg/%.*s/%016" PRIx64, c->prefix,
	    (int)hlen, handle, id);

	return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* The JSON value of a registration (a new string, or NULL). */
static char *
reg_value(const struct cluster *c, const char *handle, size_t hlen,
    uint64_t id, uint64_t instance, const struct wire_endpoint *ep,
    const char *host, size_t hostlen, uint32_t pid, uint64_t registered_ms)
{
	json_object *o;
	char buf[40], *out = NULL;
	static const char hex[] = "0123456789abcdef";
	char addr[33];
	int i;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	for (i = 0; i < 16; i++) {
		addr[2 * i] = hex[ep->addr[i] >> 4];
		addr[2 * i + 1] = hex[ep->addr[i] & 15];
	}
	addr[32] = '\0';
	json_object_object_add(o, "v", json_object_new_int(1));
	json_object_object_add(o, "broker", json_object_new_string(c->uuid));
	json_object_object_add(o, "handle", json_object_new_string_len(handle,
	    (int)hlen));
	snprintf(buf, sizeof(buf), "%" PRIu64, id);
	json_object_object_add(o, "id", json_object_new_string(buf));
	snprintf(buf, sizeof(buf), "%" PRIu64, instance);
	json_object_object_add(o, "instance", json_object_new_string(buf));
	json_object_object_add(o, "family", json_object_new_int(ep->family));
	json_object_object_add(o, "addr", json_object_new_string(addr));
	json_object_object_add(o, "port", json_object_new_int(ep->port));
	if (ep->family == WIRE_AF_UNIX)
		json_object_object_add(o, "path",
		    json_object_new_string(ep->path));
	json_object_object_add(o, "host", json_object_new_string_len(host,
	    (int)hostlen));
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "registered_ms",
	    json_object_new_int64((int64_t)registered_ms));
	out = strdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

struct rec {
	char		 broker[17];
	char		 handle[SIPC_HANDLE_MAX + 1];
	uint16_t	 hlen;
	uint64_t	 id;
	uint64_t	 instance;
	struct wire_endpoint ep;
	char		 host[SIPC_HOST_MAX + 1];
	uint16_t	 hostlen;
	uint32_t	 pid;
	uint64_t	 registered_ms;
};

static int
json_u64(json_object *o, const char *name, uint64_t *out)
{
	json_object *v;
	const char *s;
	char *end;

	if (!json_object_object_get_ex(o, name, &v))
		return -1;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0)
			return -1;
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (!isdigit((unsigned char)s[0]))
		return -1;
	*out = strtoull(s, &end, 10);
	return *end == '\0' ? 0 : -1;
}

static const char *
json_str(json_object *o, const char *name, size_t *len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static int
unhex(const char *s, uint8_t *out, size_t n)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		hi = isxdigit((unsigned char)s[2 * i]) ? (isdigit((unsigned
		    char)s[2 * i]) ? s[2 * i] - '0' : (tolower((unsigned
		    char)s[2 * i]) - 'a' + 10)) : -1;
		lo = isxdigit((unsigned char)s[2 * i + 1]) ? (isdigit(
		    (unsigned char)s[2 * i + 1]) ? s[2 * i + 1] - '0' :
		    (tolower((unsigned char)s[2 * i + 1]) - 'a' + 10)) : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* The id at the end of a registration key, or 0. */
static uint64_t
key_id(const uint8_t *key, size_t klen)
{
	char buf[17];
	char *end;
	uint64_t id;

	if (klen < 17 || key[klen - 17] != '/')
		return 0;
	memcpy(buf, key + klen - 16, 16);
	buf[16] = '\0';
	id = strtoull(buf, &end, 16);
	return *end == '\0' ? id : 0;
}

/*
 * Parses a registration's key and value into r, checking every field as
 * the wire would: 0, or -1 (the key is then ignored and counted).
 */
static int
parse_rec(const struct cluster *c, const struct etcd_kv *kv, struct rec *r)
{
	json_object *o;
	const char *s;
	size_t n, hoff = c->plen + 4;
	uint64_t v;
	int ok = -1;

	memset(r, 0, sizeof(*r));
	if (kv->vlen > CL_VALUE_MAX || kv->klen < hoff + 18 ||
	    (r->id = key_id(kv->key, kv->klen)) == 0)
		return -1;
	if ((o = json_tokener_parse((const char *)kv->value)) == NULL)
		return -1;
	if (!json_object_is_type(o, json_type_object))
		goto out;
	if ((s = json_str(o, "broker", &n)) == NULL || n != 16)
		goto out;
	memcpy(r->broker, s, 16);
	if ((s = json_str(o, "handle", &n)) == NULL || n > SIPC_HANDLE_MAX ||
	    !wire_handle_valid(s, n) || n != kv->klen - hoff - 17 ||
	    memcmp(s, kv->key + hoff, n) != 0)
		goto out;
	memcpy(r->handle, s, n);
	r->hlen = (uint16_t)n;
	if (json_u64(o, "id", &v) == -1 || v != r->id ||
	    json_u64(o, "instance", &r->instance) == -1 ||
	    json_u64(o, "family", &v) == -1 || v > 255)
		goto out;
	r->ep.family = (uint8_t)v;
	if (json_u64(o, "port", &v) == -1 || v > 65535)
		goto out;
	r->ep.port = (uint16_t)v;
	if ((s = json_str(o, "addr", &n)) == NULL || n != 32 ||
	    unhex(s, r->ep.addr, 16) == -1)
		goto out;
	if (r->ep.family == WIRE_AF_UNIX) {
		if ((s = json_str(o, "path", &n)) == NULL ||
		    n > SIPC_UNIX_PATH_MAX)
			goto out;
		memcpy(r->ep.path, s, n);
	}
	if (!wire_endpoint_valid(&r->ep))
		goto out;
	if ((s = json_str(o, "host", &n)) == NULL || n > SIPC_HOST_MAX ||
	    (n && !wire_handle_valid(s, n)))
		goto out;
	memcpy(r->host, s, n);
	r->hostlen = (uint16_t)n;
	if (json_u64(o, "pid", &v) == -1 || v > UINT32_MAX)
		goto out;
	r->pid = (uint32_t)v;
	if (json_u64(o, "registered_ms", &r->registered_ms) == -1)
		goto out;
	ok = 0;
out:
	json_object_put(o);
	return ok;
}

static int
key_is(const struct cluster *c, const uint8_t *key, size_t klen,
    const char *sub)
{
	size_t n = strlen(sub);

	return klen > c->plen + n && memcmp(key, c->prefix, c->plen) == 0 &&
	    memcmp(key + c->plen, sub, n) == 0;
}

/* ---- State --------------------------------------------------------------- */

static void
set_degraded(struct cluster *c, const char *why)
{
	snprintf(c->why, sizeof(c->why), "%s", why);
	c->synced = 0;
	if (c->degraded)
		return;
	c->degraded = 1;
	c->st.degraded_total++;
	log_warnx("cluster: etcd at %s unreachable (%s): serving the mirror "
	    "read-only, refusing registrations", etcd_endpoint(c->etcd), why);
	if (c->watch)
		etcd_watch_stop(c->watch);
}

static void
tick_after(struct cluster *c, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->tick, &tv);
}

static uint32_t
keepalive_ms(const struct cluster *c)
{
	uint32_t ms = c->b->cfg.etcd_ttl_s * 1000 / 3;

	return ms < 200 ? 200 : ms;
}

static void
became_ready(struct cluster *c)
{
	if (c->degraded) {
		c->degraded = 0;
		log_info("cluster: etcd at %s answers again: mirror in sync at "
		    "revision %" PRId64 ", registrations accepted",
		    etcd_endpoint(c->etcd), c->watch_rev);
	} else
		log_info("cluster: in sync with etcd at %s, revision %" PRId64
		    ", broker %s, lease %" PRIx64, etcd_endpoint(c->etcd),
		    c->watch_rev, c->uuid, (uint64_t)c->lease);
	if (!c->started) {
		c->started = 1;
		if (c->start_timer)
			evtimer_del(c->start_timer);
		c->ready(c->b);
	}
	cl_flush_later(c);
}

/* ---- The mirror ---------------------------------------------------------- */

static struct registration *
local_reg(struct cluster *c, uint64_t id)
{
	struct registration *g = c->b->reg ? reg_find(c->b->reg, id) : NULL;

	return g && g->owner != &c->remote ? g : NULL;
}

static void
queue_item(struct cluster *c, struct item *it)
{
	TAILQ_INSERT_TAIL(&c->queue, it, entry);
	c->nqueued++;
	cl_flush_later(c);
}

static void
queue_delete(struct cluster *c, const void *key, size_t klen)
{
	struct item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL ||
	    (it->key = malloc(klen)) == NULL) {
		free(it);
		return;		/* the lease or the next reconcile does it */
	}
	it->kind = CI_DELETE;
	memcpy(it->key, key, klen);
	it->klen = klen;
	queue_item(c, it);
}

static void
queue_reput(struct cluster *c, const struct registration *g)
{
	struct item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL)
		return;
	it->kind = CI_PUT;
	it->id = g->id;
	queue_item(c, it);
}

/*
 * A REGISTER that etcd stored: into the registry (JOIN), OK to the
 * client, then LEAVE of the registration it replaces.  Runs from the
 * watch event of its key or from the transaction's answer, whichever
 * comes first, so that the mirror follows etcd's order either way.
 */
static void
commit_item(struct cluster *c, struct item *it)
{
	struct broker *b = c->b;
	struct registration *g;
	struct wbuf *w = &b->out;
	char key[SIPC_HANDLE_MAX + 200];
	size_t klen;
	int rc;

	it->committed = 1;
	if (it->s == NULL) {
		/* The session ended while etcd wrote it. */
		if ((klen = reg_key(c, it->handle, it->hlen, it->id, key,
		    sizeof(key))) > 0)
			queue_delete(c, key, klen);
		return;
	}
	rc = reg_add_id(b->reg, &it->s->owner, it->handle, it->hlen,
	    it->instance, &it->ep, it->registered_ms,
	    b->cfg.max_registrations, it->id, 1, NULL, 0, 0, &g);
	if (rc == REG_NEW || rc == REG_SAME) {
		log_debug("session %llu: registered '%.*s' as %" PRIu64
		    " in etcd%s", (unsigned long long)it->s->id, (int)it->hlen,
		    it->handle, it->id, it->supersede ? ", replacing the "
		    "registration of a broker that failed" : "");
		wbuf_reset(w);
		if (wire_enc_ok_register(w, it->reqid, g->id) == 0)
			session_send(it->s, w->data, w->len);
		/* JOIN of the new one first, then LEAVE of the one it
		 * replaces: a sender keeps its connection. */
		if (it->supersede && (g = reg_find(b->reg, it->supersede)) !=
		    NULL && g->owner == &c->remote)
			reg_remove(b->reg, &c->remote, it->supersede,
			    WIRE_LEAVE_CLOSED);
		return;
	}
	session_error(it->s, it->reqid, rc == REG_ELIMIT || rc == REG_EFULL ?
	    WIRE_ERR_LIMIT : WIRE_ERR_INTERNAL, "cannot register: %s",
	    rc == REG_ENOMEM ? "out of memory" : "limit reached");
	if ((klen = reg_key(c, it->handle, it->hlen, it->id, key,
	    sizeof(key))) > 0)
		queue_delete(c, key, klen);
}

static struct item *
inflight_register(struct cluster *c, uint64_t id)
{
	struct item *it;
	int i;

	for (i = 0; i < CL_WRITERS; i++)
		TAILQ_FOREACH(it, &c->w[i].inflight, entry)
			if (it->kind == CI_REGISTER && it->id == id)
				return it;
	return NULL;
}

/* A writer with nothing in flight, or NULL. */
static struct writer *
free_writer(struct cluster *c)
{
	int i;

	for (i = 0; i < CL_WRITERS; i++)
		if (TAILQ_EMPTY(&c->w[i].inflight))
			return &c->w[i];
	return NULL;
}

static void
mirror_put(struct cluster *c, const struct etcd_kv *kv)
{
	struct registration *g;
	struct rec r;
	int rc;

	if (parse_rec(c, kv, &r) == -1) {
		if (c->st.bad_values++ < 10)
			log_warnx("cluster: ignoring key %.*s: its value is "
			    "not a valid registration", (int)(kv->klen > 200 ?
			    200 : kv->klen), kv->key);
		return;
	}
	if (memcmp(r.broker, c->uuid, 16) == 0) {
		/* Ours: one being written commits now; live ones are in the
		 * registry already; any other belonged to a session that
		 * ended before the write. */
		struct item *it = inflight_register(c, r.id);

		if (it != NULL) {
			if (!it->committed)
				commit_item(c, it);
		} else if (local_reg(c, r.id) == NULL)
			queue_delete(c, kv->key, kv->klen);
		return;
	}
	rc = reg_add_id(c->b->reg, &c->remote, r.handle, r.hlen, r.instance,
	    &r.ep, r.registered_ms, UINT32_MAX, r.id, 1, r.host, r.hostlen,
	    r.pid, &g);
	if (rc == REG_ENOMEM)
		log_warnx("cluster: out of memory mirroring %" PRIu64, r.id);
}

static void
mirror_delete(struct cluster *c, const struct etcd_kv *kv)
{
	struct registration *g, *o;
	uint64_t id = key_id(kv->key, kv->klen);

	if (id == 0 || (g = reg_find(c->b->reg, id)) == NULL)
		return;
	if (g->owner == &c->remote) {
		reg_remove(c->b->reg, &c->remote, id, WIRE_LEAVE_CLOSED);
		return;
	}
	/* One of ours, deleted behind our back.  Replaced by the same
	 * receiver at another broker (it moved while its session here still
	 * looked alive): let it go.  Otherwise our lease ran out while we
	 * were paused: write it again. */
	TAILQ_FOREACH(o, &g->handle->regs, h_entry) {
		if (o != g && o->owner == &c->remote &&
		    o->instance == g->instance && o->ep.family == g->ep.family &&
		    o->ep.port == g->ep.port &&
		    memcmp(o->ep.addr, g->ep.addr, sizeof(o->ep.addr)) == 0 &&
		    (o->ep.family != WIRE_AF_UNIX ||
		    strcmp(o->ep.path, g->ep.path) == 0)) {
			reg_remove(c->b->reg, g->owner, id, WIRE_LEAVE_CLOSED);
			return;
		}
	}
	queue_reput(c, g);
}

static void
broker_put(struct cluster *c, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen)
{
	const uint8_t *u = key + c->plen + 8;
	size_t ulen = klen - c->plen - 8;
	int i;

	if (ulen != 16)
		return;
	for (i = 0; i < c->nbrokers; i++)
		if (memcmp(c->brokers[i].uuid, u, 16) == 0)
			break;
	if (i == c->nbrokers) {
		if (c->nbrokers == CL_MAX_BROKERS)
			return;
		c->nbrokers++;
		memcpy(c->brokers[i].uuid, u, 16);
		c->brokers[i].uuid[16] = '\0';
	}
	snprintf(c->brokers[i].json, CL_BROKER_JSON, "%.*s",
	    (int)(vlen < CL_BROKER_JSON ? vlen : CL_BROKER_JSON - 1), val);
}

static void
broker_del(struct cluster *c, const uint8_t *key, size_t klen)
{
	int i;

	if (klen != c->plen + 8 + 16)
		return;
	for (i = 0; i < c->nbrokers; i++) {
		if (memcmp(c->brokers[i].uuid, key + c->plen + 8, 16) == 0) {
			c->brokers[i] = c->brokers[--c->nbrokers];
			return;
		}
	}
}

static void
on_watch(void *arg, enum etcd_watch_what what, const struct etcd_event *evs,
    size_t nev, int64_t rev, const char *why)
{
	struct cluster *c = arg;
	size_t i;

	switch (what) {
	case ETCD_W_CREATED:
		return;
	case ETCD_W_EVENTS:
		for (i = 0; i < nev; i++) {
			const struct etcd_kv *kv = &evs[i].kv;

			c->st.events++;
			if (kv->mod_revision > c->watch_rev)
				c->watch_rev = kv->mod_revision;
			if (key_is(c, kv->key, kv->klen, "reg/")) {
				if (evs[i].type == ETCD_EV_PUT)
					mirror_put(c, kv);
				else
					mirror_delete(c, kv);
			} else if (key_is(c, kv->key, kv->klen, "brokers/")) {
				if (evs[i].type == ETCD_EV_PUT)
					broker_put(c, kv->key, kv->klen,
					    kv->value, kv->vlen);
				else
					broker_del(c, kv->key, kv->klen);
			}
		}
		return;
	default:
		log_warnx("cluster: watch ended (%s): ranging again", why ?
		    why : "?");
		c->synced = 0;
		/* From the timer, not from inside the watch's callback. */
		tick_after(c, 50);
		return;
	}
}

/* ---- Range and reconcile ------------------------------------------------- */

/*
 * A page of a fresh range (at c->range_rev) against the mirror: what the
 * mirror lacks joins (JOIN) at once, what it has is marked seen and stays
 * untouched, so a re-sync after an outage makes no storm.  Memory: one
 * page at a time.
 */
static void
range_apply(struct cluster *c, const struct etcd_res *res)
{
	struct registration *g;
	size_t i;
	uint64_t id;

	for (i = 0; i < res->nkvs; i++) {
		const struct etcd_kv *kv = &res->kvs[i];

		if (key_is(c, kv->key, kv->klen, "brokers/")) {
			broker_put(c, kv->key, kv->klen, kv->value, kv->vlen);
			continue;
		}
		if (!key_is(c, kv->key, kv->klen, "reg/") ||
		    (id = key_id(kv->key, kv->klen)) == 0)
			continue;
		if ((g = reg_find(c->b->reg, id)) == NULL) {
			mirror_put(c, kv);
			if ((g = reg_find(c->b->reg, id)) == NULL)
				continue;	/* bad, or ours and gone */
			c->rs_joined++;
		}
		g->seen = c->rs_stamp;
	}
}

/* The range is complete: what etcd lacks leaves (LEAVE); ours that etcd
 * lacks are written again. */
static void
range_sweep(struct cluster *c)
{
	struct broker *b = c->b;
	struct registration *g, *gn;
	struct session *s;
	size_t left = 0, reput = 0;

	for (g = TAILQ_FIRST(&c->remote.regs); g; g = gn) {
		gn = TAILQ_NEXT(g, o_entry);
		if (g->seen != c->rs_stamp) {
			reg_remove(b->reg, &c->remote, g->id,
			    WIRE_LEAVE_EXPIRED);
			left++;
		}
	}
	TAILQ_FOREACH(s, &b->sessions, entry) {
		TAILQ_FOREACH(g, &s->owner.regs, o_entry) {
			if (g->seen != c->rs_stamp) {
				queue_reput(c, g);
				reput++;
			}
		}
	}
	c->st.resyncs++;
	log_info("cluster: mirror reconciled with etcd at revision %" PRId64
	    ": %" PRIu64 " joined, %zu left, %zu of ours written again, %u "
	    "remote registrations now", c->range_rev, c->rs_joined, left,
	    reput, c->remote.nregs);
}

static void	range_page(struct cluster *c, const uint8_t *from,
		    size_t flen);

/* Longest key: prefix, "reg/", a handle, "/", 16 hex digits. */
#define CL_KEY_MAX	(128 + 4 + SIPC_HANDLE_MAX + 1 + 16)

static void
on_range(void *arg, const struct etcd_res *res)
{
	struct cluster *c = arg;
	uint8_t end[CL_KEY_MAX + 2];
	size_t elen;

	if (res->err) {
		c->busy = 0;
		set_degraded(c, res->why);
		tick_after(c, CL_RETRY_MS);
		return;
	}
	if (c->range_rev == 0)
		c->range_rev = res->revision;
	range_apply(c, res);
	if (res->more && res->nkvs > 0) {
		/* The next page starts just after the last key. */
		const struct etcd_kv *last = &res->kvs[res->nkvs - 1];

		if (last->klen > CL_KEY_MAX) {
			c->busy = 0;
			set_degraded(c, "a key in etcd is longer than any "
			    "this cluster writes");
			tick_after(c, CL_RETRY_MS);
			return;
		}
		memcpy(end, last->key, last->klen);
		end[last->klen] = 0;
		range_page(c, end, last->klen + 1);
		return;
	}
	range_sweep(c);
	c->watch_rev = c->range_rev;
	elen = etcd_prefix_end(c->prefix, c->plen, end);
	if (etcd_watch_start(c->watch, c->prefix, c->plen, end, elen,
	    c->range_rev + 1) == -1) {
		c->busy = 0;
		set_degraded(c, "cannot start the watch");
		tick_after(c, CL_RETRY_MS);
		return;
	}
	c->busy = 0;
	c->synced = 1;
	became_ready(c);
	tick_after(c, (int)keepalive_ms(c));
}

static void
range_page(struct cluster *c, const uint8_t *from, size_t flen)
{
	uint8_t end[256];
	size_t elen = etcd_prefix_end(c->prefix, c->plen, end);

	if (etcd_range(c->etcd, from, flen, end, elen, c->range_rev,
	    CL_RANGE_PAGE, on_range, c) == -1) {
		c->busy = 0;
		set_degraded(c, "out of memory");
		tick_after(c, CL_RETRY_MS);
	}
}

static void
resync(struct cluster *c)
{
	etcd_watch_stop(c->watch);
	c->busy = 1;
	c->range_rev = 0;
	c->rs_stamp++;
	c->rs_joined = 0;
	c->nbrokers = 0;
	range_page(c, (const uint8_t *)c->prefix, c->plen);
}

/* ---- Lease and epoch ----------------------------------------------------- */

static char *
broker_value(struct cluster *c)
{
	struct broker *b = c->b;
	struct reg_stats rs;
	json_object *o;
	char host[SIPC_HOST_MAX + 1], *out;

	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	reg_stats(b->reg, &rs);
	if ((o = json_object_new_object()) == NULL)
		return NULL;
	json_object_object_add(o, "uuid", json_object_new_string(c->uuid));
	json_object_object_add(o, "listen", json_object_new_string(
	    b->nlisteners ? b->listeners[0].name : ""));
	json_object_object_add(o, "host", json_object_new_string(host));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "sessions",
	    json_object_new_int64(b->nsessions));
	json_object_object_add(o, "registrations",
	    json_object_new_int64((int64_t)(rs.registrations -
	    c->remote.nregs)));
	json_object_object_add(o, "etcd", json_object_new_string(c->degraded ?
	    "degraded" : "ok"));
	json_object_object_add(o, "started_ms", json_object_new_int64(
	    (int64_t)(wall_ms() - ((uint64_t)mono_ms() -
	    b->started_mono_ms))));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

static void
on_refresh(void *arg, const struct etcd_res *res)
{
	(void)arg;
	(void)res;	/* a failure shows in the next keepalive */
}

static void
on_claim(void *arg, const struct etcd_res *res)
{
	struct cluster *c = arg;

	c->busy = 0;
	if (res->err == ETCD_ENOLEASE) {
		c->lease = 0;
		cl_recover(c);
		return;
	}
	if (res->err) {
		set_degraded(c, res->why);
		tick_after(c, CL_RETRY_MS);
		return;
	}
	if (res->revision <= 0 || (uint64_t)res->revision >= (1ULL << 33)) {
		log_errorx("cluster: etcd's revision %" PRId64 " is past what "
		    "registration ids can hold", res->revision);
		set_degraded(c, "revision out of range");
		return;
	}
	c->epoch = (uint64_t)res->revision;
	c->counter = 0;
	cl_recover(c);
}

/* Writes the broker key; its revision becomes the new epoch when
 * claim is set. */
static void
put_broker_key(struct cluster *c, etcd_cb cb)
{
	char key[200], *val;

	snprintf(key, sizeof(key), "%sbrokers/%s", c->prefix, c->uuid);
	if ((val = broker_value(c)) == NULL)
		return;
	if (etcd_put(c->etcd, key, strlen(key), val, strlen(val), c->lease,
	    cb ? cb : on_refresh, c) == 0 && cb)
		c->busy = 1;
	free(val);
}

static void
on_grant(void *arg, const struct etcd_res *res)
{
	struct cluster *c = arg;

	c->busy = 0;
	if (res->err) {
		set_degraded(c, res->why);
		tick_after(c, CL_RETRY_MS);
		return;
	}
	c->lease = res->lease_id;
	c->epoch = 0;	/* claimed again with the new lease's key */
	cl_recover(c);
}

/* Takes the next step towards a lease, an epoch and a synced mirror. */
static void
cl_recover(struct cluster *c)
{
	if (c->busy || c->shutdown)
		return;
	if (c->lease == 0) {
		c->synced = 0;
		if (etcd_lease_grant(c->etcd, c->b->cfg.etcd_ttl_s, on_grant,
		    c) == 0)
			c->busy = 1;
		return;
	}
	if (c->epoch == 0 || c->counter >= (1u << CL_ID_BITS) - 1) {
		c->epoch = 0;
		put_broker_key(c, on_claim);
		return;
	}
	if (!c->synced) {
		resync(c);
		return;
	}
	cl_flush_later(c);
}

static void
on_keepalive(void *arg, const struct etcd_res *res)
{
	struct cluster *c = arg;

	c->keepalive_busy = 0;
	if (res->err) {
		set_degraded(c, res->why);
		tick_after(c, CL_RETRY_MS);
		return;
	}
	if (res->ttl <= 0) {
		c->st.lease_losses++;
		log_warnx("cluster: lease %" PRIx64 " is gone (paused past "
		    "its TTL of %u s?): registering every live session again",
		    (uint64_t)c->lease, c->b->cfg.etcd_ttl_s);
		c->lease = 0;
		c->synced = 0;
		if (!c->degraded) {
			c->degraded = 1;
			c->st.degraded_total++;
		}
		cl_recover(c);
		return;
	}
	if (c->degraded || !c->synced) {
		c->synced = 0;
		cl_recover(c);
		return;
	}
	/* Healthy: refresh what brokerctl cluster shows. */
	put_broker_key(c, NULL);
	tick_after(c, (int)keepalive_ms(c));
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	(void)fd;
	(void)what;
	if (c->shutdown)
		return;
	if (c->busy) {
		tick_after(c, CL_RETRY_MS);
		return;
	}
	if (c->lease == 0) {
		cl_recover(c);
		return;
	}
	if (c->keepalive_busy)
		return;
	if (etcd_lease_keepalive(c->etcd, c->lease, on_keepalive, c) == 0)
		c->keepalive_busy = 1;
	else
		tick_after(c, CL_RETRY_MS);
}

/* ---- Writes -------------------------------------------------------------- */

static void
answer_unavailable(struct cluster *c, struct item *it)
{
	if (it->s == NULL)
		return;
	c->st.refused++;
	session_error(it->s, it->reqid, WIRE_ERR_UNAVAILABLE, "the cluster's "
	    "etcd is unreachable (%s): registrations are refused until it "
	    "is back", c->why[0] ? c->why : "starting");
}

static void
item_free(struct item *it)
{
	free(it->key);
	free(it);
}

static void
on_txn(void *arg, const struct etcd_res *res)
{
	struct writer *wr = arg;
	struct cluster *c = wr->c;
	struct item *it;

	if (res->err == ETCD_ENOLEASE) {
		/* Back to the queue's head, in order, for the new lease. */
		while ((it = TAILQ_LAST(&wr->inflight, item_list)) != NULL) {
			TAILQ_REMOVE(&wr->inflight, it, entry);
			TAILQ_INSERT_HEAD(&c->queue, it, entry);
			c->nqueued++;
		}
		c->st.lease_losses++;
		c->lease = 0;
		c->synced = 0;
		cl_recover(c);
		return;
	}
	while ((it = TAILQ_FIRST(&wr->inflight)) != NULL) {
		TAILQ_REMOVE(&wr->inflight, it, entry);
		if (res->err) {
			if (it->kind == CI_REGISTER && !it->committed)
				answer_unavailable(c, it);
			/* PUT and DELETE: the reconcile after the outage
			 * does them. */
			item_free(it);
			continue;
		}
		if (it->kind != CI_REGISTER) {
			item_free(it);
			continue;
		}
		if (!it->committed)
			commit_item(c, it);
		item_free(it);
	}
	if (res->err) {
		set_degraded(c, res->why);
		tick_after(c, CL_RETRY_MS);
		return;
	}
	cl_flush_later(c);
}

/* The keys of one transaction: etcd refuses a key twice in one. */
struct txn_keys {
	char	*k[CL_TXN_OPS];
	size_t	 n;
};

/* 1 when key is new to the transaction (and now in it), 0 when it is
 * there already, -1 when out of memory. */
static int
txn_key(struct txn_keys *tk, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < tk->n; i++)
		if (strlen(tk->k[i]) == klen && memcmp(tk->k[i], key, klen) ==
		    0)
			return 0;
	if (tk->n == CL_TXN_OPS || (tk->k[tk->n] = strndup(key, klen)) ==
	    NULL)
		return -1;
	tk->n++;
	return 1;
}

/* Adds it to t: the number of operations, 0 when it needs none (a PUT of
 * a registration that is gone), -1 when out of memory, -2 when one of its
 * keys is in t already (it goes in the next transaction). */
static int
add_item(struct cluster *c, struct etcd_txn *t, struct item *it,
    struct txn_keys *tk)
{
	struct broker *b = c->b;
	struct registration *g;
	struct wire_endpoint ep;
	char key[SIPC_HANDLE_MAX + 200], *val;
	size_t klen;
	int n = 1;

	switch (it->kind) {
	case CI_DELETE:
		if ((n = txn_key(tk, it->key, it->klen)) <= 0)
			return n == 0 ? -2 : -1;
		return etcd_txn_delete(t, it->key, it->klen) == 0 ? 1 : -1;
	case CI_PUT:
		if ((g = local_reg(c, it->id)) == NULL)
			return 0;
		reg_ep_to_wire(&g->ep, &ep);
		klen = reg_key(c, g->handle->name, g->handle->len, g->id, key,
		    sizeof(key));
		if ((n = txn_key(tk, key, klen)) <= 0)
			return n == 0 ? -2 : -1;
		n = 1;
		val = reg_value(c, g->handle->name, g->handle->len, g->id,
		    g->instance, &ep, g->owner->host, g->owner->hostlen,
		    g->owner->pid, g->registered_ms);
		break;
	default:
		it->id = c->epoch << CL_ID_BITS | ++c->counter;
		klen = reg_key(c, it->handle, it->hlen, it->id, key,
		    sizeof(key));
		if (txn_key(tk, key, klen) != 1)
			return -1;	/* a new id: cannot be there */
		val = reg_value(c, it->handle, it->hlen, it->id, it->instance,
		    &it->ep, it->s ? it->s->owner.host : "", it->s ?
		    it->s->owner.hostlen : 0, it->s ? it->s->owner.pid : 0,
		    it->registered_ms);
		break;
	}
	if (val == NULL || klen == 0 || etcd_txn_put(t, key, klen, val,
	    strlen(val), c->lease) == -1) {
		free(val);
		return -1;
	}
	free(val);
	if (it->kind == CI_REGISTER && it->supersede &&
	    (g = reg_find(b->reg, it->supersede)) != NULL &&
	    g->owner == &c->remote) {
		klen = reg_key(c, g->handle->name, g->handle->len, g->id, key,
		    sizeof(key));
		if (txn_key(tk, key, klen) == 1 &&
		    etcd_txn_delete(t, key, klen) == 0)
			n++;
	}
	return n;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	struct txn_keys tk;
	struct etcd_txn *t;
	struct writer *wr;
	struct item *it;
	size_t ops, i;
	int n;

	(void)fd;
	(void)what;
	if (TAILQ_EMPTY(&c->queue) || c->shutdown)
		return;
	if (c->degraded || c->lease == 0 || c->epoch == 0) {
		/* Refuse what clients wait for; keep the rest for later. */
		struct item *itn;

		for (it = TAILQ_FIRST(&c->queue); it; it = itn) {
			itn = TAILQ_NEXT(it, entry);
			if (it->kind == CI_REGISTER && c->degraded) {
				TAILQ_REMOVE(&c->queue, it, entry);
				c->nqueued--;
				answer_unavailable(c, it);
				item_free(it);
			}
		}
		return;
	}
next:
	if (TAILQ_EMPTY(&c->queue) || (wr = free_writer(c)) == NULL)
		return;
	if (c->counter >= (1u << CL_ID_BITS) - CL_TXN_OPS) {
		cl_recover(c);	/* a new epoch first */
		return;
	}
	if ((t = etcd_txn_new()) == NULL)
		return;
	tk.n = 0;
	ops = 0;
	while ((it = TAILQ_FIRST(&c->queue)) != NULL && ops + 2 <= CL_TXN_OPS) {
		if ((n = add_item(c, t, it, &tk)) < 0)
			break;
		TAILQ_REMOVE(&c->queue, it, entry);
		c->nqueued--;
		if (n == 0) {
			item_free(it);
			continue;
		}
		ops += (size_t)n;
		TAILQ_INSERT_TAIL(&wr->inflight, it, entry);
	}
	for (i = 0; i < tk.n; i++)
		free(tk.k[i]);
	if (ops == 0) {
		etcd_txn_free(t);
		return;
	}
	c->st.txns++;
	c->st.txn_ops += ops;
	if (etcd_txn_send(wr->etcd, t, on_txn, wr) == -1) {
		struct etcd_res res;

		memset(&res, 0, sizeof(res));
		res.err = ETCD_ENOMEM;
		res.why = "out of memory";
		on_txn(wr, &res);
		return;
	}
	goto next;
}

static void
cl_flush_later(struct cluster *c)
{
	if (!TAILQ_EMPTY(&c->queue) && free_writer(c) != NULL)
		event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* ---- The broker's side --------------------------------------------------- */

void
cluster_register(struct session *s, uint32_t reqid,
    const struct wire_register *m)
{
	struct broker *b = s->b;
	struct cluster *c = b->cluster;
	struct reg_handle *h;
	struct registration *g;
	struct item *it;
	uint64_t supersede = 0;
	char ep[160];

	if ((h = reg_handle_find(b->reg, m->handle.ptr, m->handle.len))) {
		TAILQ_FOREACH(g, &h->regs, h_entry) {
			if (!reg_ep_equal(&g->ep, &m->ep))
				continue;
			if (g->owner == &s->owner && g->instance ==
			    m->instance) {
				wbuf_reset(&b->out);
				if (wire_enc_ok_register(&b->out, reqid,
				    g->id) == 0)
					session_send(s, b->out.data,
					    b->out.len);
				return;
			}
			if (g->owner == &c->remote && g->instance ==
			    m->instance) {
				/* The same receiver, moved here from a broker
				 * that failed: replace that registration. */
				supersede = g->id;
				continue;
			}
			addr_format_endpoint(&m->ep, ep, sizeof(ep));
			session_error(s, reqid, WIRE_ERR_EXISTS, "%s is already "
			    "registered for this handle by another session or "
			    "receiver", ep);
			return;
		}
		if (h->nregs >= SIPC_MAX_RECEIVERS_PER_HANDLE) {
			session_error(s, reqid, WIRE_ERR_LIMIT, "the handle "
			    "has %d receivers, the limit",
			    SIPC_MAX_RECEIVERS_PER_HANDLE);
			return;
		}
	}
	if (s->owner.nregs >= b->cfg.max_registrations) {
		session_error(s, reqid, WIRE_ERR_LIMIT, "this session holds %u "
		    "registrations, the limit", b->cfg.max_registrations);
		return;
	}
	if (c->degraded || !c->started) {
		c->st.refused++;
		session_error(s, reqid, WIRE_ERR_UNAVAILABLE, "the cluster's "
		    "etcd is unreachable (%s): registrations are refused until "
		    "it is back", c->why[0] ? c->why : "starting");
		return;
	}
	if (c->nqueued >= b->cfg.max_sessions * 4 + 10000) {
		session_error(s, reqid, WIRE_ERR_UNAVAILABLE, "etcd is behind: "
		    "%u registrations wait to be written", c->nqueued);
		return;
	}
	if ((it = calloc(1, sizeof(*it))) == NULL) {
		session_error(s, reqid, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
	it->kind = CI_REGISTER;
	it->s = s;
	it->reqid = reqid;
	it->supersede = supersede;
	it->instance = m->instance;
	it->ep = m->ep;
	it->registered_ms = wall_ms();
	it->hlen = m->handle.len;
	memcpy(it->handle, m->handle.ptr, m->handle.len);
	queue_item(c, it);
}

void
cluster_unregistered(struct broker *b, const struct registration *g)
{
	struct cluster *c = b->cluster;
	char key[SIPC_HANDLE_MAX + 200];
	size_t klen;

	if ((klen = reg_key(c, g->handle->name, g->handle->len, g->id, key,
	    sizeof(key))) > 0)
		queue_delete(c, key, klen);
}

void
cluster_session_end(struct broker *b, struct session *s)
{
	struct cluster *c = b->cluster;
	struct registration *g;
	struct item *it;
	int i;

	TAILQ_FOREACH(g, &s->owner.regs, o_entry)
		cluster_unregistered(b, g);
	TAILQ_FOREACH(it, &c->queue, entry)
		if (it->s == s)
			it->s = NULL;
	for (i = 0; i < CL_WRITERS; i++)
		TAILQ_FOREACH(it, &c->w[i].inflight, entry)
			if (it->s == s)
				it->s = NULL;
}

static void
start_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	(void)fd;
	(void)what;
	if (c->started)
		return;
	log_warnx("cluster: no answer from etcd within %d ms: accepting "
	    "clients with an empty mirror, registrations refused",
	    CL_START_WAIT_MS);
	if (!c->degraded) {
		c->degraded = 1;
		c->st.degraded_total++;
	}
	c->started = 1;
	c->ready(c->b);
}

int
cluster_start(struct broker *b, void (*ready)(struct broker *))
{
	struct config *cfg = &b->cfg;
	struct etcd_config ec;
	struct cluster *c;
	struct timeval tv = { CL_START_WAIT_MS / 1000, 0 };
	uint8_t u[8];
	char err[256];
	int i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->b = b;
	c->ready = ready;
	TAILQ_INIT(&c->queue);
	for (i = 0; i < CL_WRITERS; i++) {
		TAILQ_INIT(&c->w[i].inflight);
		c->w[i].c = c;
	}
	reg_owner_init(&c->remote, NULL);
	snprintf(c->prefix, sizeof(c->prefix), "%s", cfg->etcd_prefix ?
	    cfg->etcd_prefix : "/sipc/v1/");
	c->plen = strlen(c->prefix);
	if (RAND_bytes(u, sizeof(u)) != 1) {
		free(c);
		return -1;
	}
	for (i = 0; i < 8; i++)
		snprintf(c->uuid + 2 * i, 3, "%02x", u[i]);
	memset(&ec, 0, sizeof(ec));
	ec.endpoints = cfg->etcd;
	ec.tls_ca = cfg->etcd_ca;
	ec.tls_cert = cfg->etcd_cert;
	ec.tls_key = cfg->etcd_key;
	ec.timeout_ms = cfg->etcd_timeout_ms;
	if ((c->etcd = etcd_new(b->base, &ec, err, sizeof(err))) == NULL) {
		log_errorx("cluster: %s", err);
		free(c);
		return -1;
	}
	for (i = 0; i < CL_WRITERS; i++) {
		if ((c->w[i].etcd = etcd_new(b->base, &ec, err,
		    sizeof(err))) == NULL) {
			log_errorx("cluster: %s", err);
			b->cluster = c;
			cluster_free(b);
			return -1;
		}
	}
	if ((c->watch = etcd_watch_new(c->etcd, on_watch, c)) == NULL ||
	    (c->flush_ev = event_new(b->base, -1, 0, flush_cb, c)) == NULL ||
	    (c->tick = evtimer_new(b->base, tick_cb, c)) == NULL ||
	    (c->start_timer = evtimer_new(b->base, start_timeout_cb, c)) ==
	    NULL) {
		b->cluster = c;
		cluster_free(b);
		return -1;
	}
	b->cluster = c;
	log_info("cluster: broker %s joining through etcd %s, prefix %s, "
	    "lease TTL %u s", c->uuid, cfg->etcd, c->prefix, cfg->etcd_ttl_s);
	evtimer_add(c->start_timer, &tv);
	cl_recover(c);
	return 0;
}

static void
on_goodbye(void *arg, const struct etcd_res *res)
{
	struct broker *b = arg;

	(void)res;
	if (b->shutdown_hold > 0)
		b->shutdown_hold--;
	if (b->shutting_down && b->nsessions == 0 && b->shutdown_hold == 0)
		event_base_loopbreak(b->base);
}

void
cluster_shutdown(struct broker *b)
{
	struct cluster *c = b->cluster;
	char key[200];

	if (c == NULL || c->shutdown)
		return;
	c->shutdown = 1;
	/*
	 * The lease is not revoked: the clients move to other brokers and
	 * register there, each new registration replacing one of ours (JOIN
	 * before LEAVE, so a stop is as invisible as a crash); what nobody
	 * replaces goes when the lease runs out.  Only the broker's own key
	 * goes now, so that brokerctl cluster stops listing it.
	 */
	snprintf(key, sizeof(key), "%sbrokers/%s", c->prefix, c->uuid);
	if (c->lease && etcd_delete(c->etcd, key, strlen(key), NULL, 0,
	    on_goodbye, b) == 0)
		b->shutdown_hold++;
}

void
cluster_free(struct broker *b)
{
	struct cluster *c = b->cluster;
	struct item *it;
	int i;

	if (c == NULL)
		return;
	while ((it = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, it, entry);
		item_free(it);
	}
	for (i = 0; i < CL_WRITERS; i++) {
		while ((it = TAILQ_FIRST(&c->w[i].inflight)) != NULL) {
			TAILQ_REMOVE(&c->w[i].inflight, it, entry);
			item_free(it);
		}
		etcd_free(c->w[i].etcd);
	}
	if (b->reg)
		reg_owner_clear(b->reg, &c->remote, WIRE_LEAVE_CLOSED);
	etcd_watch_free(c->watch);
	etcd_free(c->etcd);
	if (c->flush_ev)
		event_free(c->flush_ev);
	if (c->tick)
		event_free(c->tick);
	if (c->start_timer)
		event_free(c->start_timer);
	free(c);
	b->cluster = NULL;
}

/* ---- Reporting ----------------------------------------------------------- */

/* The etcd client counters of every connection, summed into *sum. */
static const struct etcd_stats *
all_stats(const struct cluster *c, struct etcd_stats *sum)
{
	const struct etcd_stats *s;
	int i, k;

	*sum = *etcd_stats(c->etcd);
	for (i = 0; i < CL_WRITERS; i++) {
		s = etcd_stats(c->w[i].etcd);
		sum->requests += s->requests;
		sum->errors += s->errors;
		sum->latency_us_sum += s->latency_us_sum;
		if (s->latency_us_max > sum->latency_us_max)
			sum->latency_us_max = s->latency_us_max;
		for (k = 0; k < 8; k++)
			sum->lat_le[k] += s->lat_le[k];
	}
	return sum;
}

int
cluster_degraded(const struct broker *b)
{
	return b->cluster && b->cluster->degraded;
}

/*
 * Three STATS entries per broker known from etcd, at most room entries:
 * "broker/ADDR/sessions", ".../registrations", ".../etcd_ok"; this
 * broker's own from its live counters.  Returns how many it added.
 */
static uint32_t
broker_stats(struct cluster *c, struct wbuf *w, uint32_t room)
{
	struct broker *b = c->b;
	struct reg_stats rs;
	char name[SIPC_STAT_NAME_MAX + 1];
	const char *listen;
	json_object *o, *v;
	uint64_t sessions, regs;
	int i, ok;
	uint32_t n = 0;

	for (i = 0; i < c->nbrokers && n + 3 <= room; i++) {
		if ((o = json_tokener_parse(c->brokers[i].json)) == NULL)
			continue;
		listen = json_object_object_get_ex(o, "listen", &v) ?
		    json_object_get_string(v) : "?";
		sessions = json_object_object_get_ex(o, "sessions", &v) ?
		    (uint64_t)json_object_get_int64(v) : 0;
		regs = json_object_object_get_ex(o, "registrations", &v) ?
		    (uint64_t)json_object_get_int64(v) : 0;
		ok = json_object_object_get_ex(o, "etcd", &v) &&
		    strcmp(json_object_get_string(v), "ok") == 0;
		if (memcmp(c->brokers[i].uuid, c->uuid, 16) == 0) {
			reg_stats(b->reg, &rs);
			sessions = b->nsessions;
			regs = rs.registrations - c->remote.nregs;
			ok = !c->degraded;
		}
		if (strlen(listen) + 22 <= SIPC_STAT_NAME_MAX) {
			snprintf(name, sizeof(name), "broker/%s/sessions",
			    listen);
			wire_put_stat(w, name, sessions);
			snprintf(name, sizeof(name), "broker/%s/registrations",
			    listen);
			wire_put_stat(w, name, regs);
			snprintf(name, sizeof(name), "broker/%s/etcd_ok",
			    listen);
			wire_put_stat(w, name, (uint64_t)ok);
			n += 3;
		}
		json_object_put(o);
	}
	return n;
}

uint32_t
cluster_put_stats(struct broker *b, struct wbuf *w)
{
	struct cluster *c = b->cluster;
	struct etcd_stats sum;
	const struct etcd_stats *es;

	if (c == NULL)
		return 0;
	es = all_stats(c, &sum);
	wire_put_stat(w, "cluster_degraded", (uint64_t)c->degraded);
	wire_put_stat(w, "cluster_brokers", (uint64_t)c->nbrokers);
	wire_put_stat(w, "cluster_remote_registrations", c->remote.nregs);
	wire_put_stat(w, "cluster_revision", (uint64_t)c->watch_rev);
	wire_put_stat(w, "etcd_requests", es->requests);
	wire_put_stat(w, "etcd_errors", es->errors);
	wire_put_stat(w, "etcd_watch_events", es->watch_events);
	wire_put_stat(w, "cluster_resyncs", c->st.resyncs);
	wire_put_stat(w, "cluster_lease_losses", c->st.lease_losses);
	wire_put_stat(w, "cluster_refused", c->st.refused);
	return 10 + broker_stats(c, w, SIPC_STATS_MAX - 25 - 10);
}

void
cluster_metrics(struct broker *b, struct evbuffer *o)
{
	struct cluster *c = b->cluster;
	struct etcd_stats sum;
	const struct etcd_stats *es;
	uint64_t cum = 0;
	int i;

	if (c == NULL)
		return;
	es = all_stats(c, &sum);
	evbuffer_add_printf(o,
	    "# HELP sipc_epmd_cluster_degraded 1 while etcd is unreachable "
	    "(mirror read-only).\n# TYPE sipc_epmd_cluster_degraded gauge\n"
	    "sipc_epmd_cluster_degraded %d\n"
	    "# HELP sipc_epmd_cluster_brokers Brokers registered in etcd.\n"
	    "# TYPE sipc_epmd_cluster_brokers gauge\n"
	    "sipc_epmd_cluster_brokers %d\n"
	    "# HELP sipc_epmd_cluster_remote_registrations Registrations "
	    "of other brokers in the mirror.\n"
	    "# TYPE sipc_epmd_cluster_remote_registrations gauge\n"
	    "sipc_epmd_cluster_remote_registrations %u\n"
	    "# HELP sipc_epmd_etcd_errors_total etcd requests that failed.\n"
	    "# TYPE sipc_epmd_etcd_errors_total counter\n"
	    "sipc_epmd_etcd_errors_total %" PRIu64 "\n"
	    "# HELP sipc_epmd_etcd_watch_events_total Watch events applied.\n"
	    "# TYPE sipc_epmd_etcd_watch_events_total counter\n"
	    "sipc_epmd_etcd_watch_events_total %" PRIu64 "\n"
	    "# HELP sipc_epmd_etcd_resyncs_total Ranges that reconciled the "
	    "mirror.\n# TYPE sipc_epmd_etcd_resyncs_total counter\n"
	    "sipc_epmd_etcd_resyncs_total %" PRIu64 "\n"
	    "# HELP sipc_epmd_etcd_txn_ops_total Operations written in "
	    "transactions.\n# TYPE sipc_epmd_etcd_txn_ops_total counter\n"
	    "sipc_epmd_etcd_txn_ops_total %" PRIu64 "\n"
	    "# HELP sipc_epmd_etcd_request_seconds Latency of etcd requests "
	    "that succeeded.\n# TYPE sipc_epmd_etcd_request_seconds "
	    "histogram\n", c->degraded, c->nbrokers, c->remote.nregs,
	    es->errors, es->watch_events, c->st.resyncs, c->st.txn_ops);
	for (i = 0; i < 7; i++) {
		cum += es->lat_le[i];
		evbuffer_add_printf(o, "sipc_epmd_etcd_request_seconds_bucket"
		    "{le=\"%g\"} %" PRIu64 "\n", etcd_lat_bounds_ms[i] / 1000,
		    cum);
	}
	cum += es->lat_le[7];
	evbuffer_add_printf(o, "sipc_epmd_etcd_request_seconds_bucket"
	    "{le=\"+Inf\"} %" PRIu64 "\nsipc_epmd_etcd_request_seconds_sum "
	    "%.6f\nsipc_epmd_etcd_request_seconds_count %" PRIu64 "\n", cum,
	    (double)es->latency_us_sum / 1e6, cum);
}

/* One line per broker for STATS-like listings: "uuid json". */
int
cluster_brokers(struct broker *b, int i, const char **uuid,
    const char **json)
{
	struct cluster *c = b->cluster;

	if (c == NULL || i < 0 || i >= c->nbrokers)
		return -1;
	*uuid = c->brokers[i].uuid;
	*json = c->brokers[i].json;
	return 0;
}
