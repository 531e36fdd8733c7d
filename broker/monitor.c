/*
 * monitor.c - what sipc-epmd shows operators on its metrics port, beside
 * /metrics: JSON in the spirit of NATS's monitoring port, and a status
 * page that polls it.
 *
 *   GET /v1/varz      the server: version, uptime, addresses, limits and
 *                     the counters of STATS
 *   GET /v1/handles   handles with their receivers (endpoint, host, pid,
 *                     age, owning session)
 *   GET /v1/sessions  sessions: peer, host and pid from HELLO, age,
 *                     registrations, watches, TLS or password
 *   GET /             the status page (monitor_page.c)
 *
 * The lists page with ?offset=N&limit=M (limit 1 to MONITOR_PAGE_MAX,
 * default MONITOR_PAGE_DEF) and take ?handle=H, one exact handle.  The
 * shapes come from common/jsonout.c, the ones brokerctl --json prints.
 *
 * Unlike /metrics these show handles, addresses and hosts, so a metrics
 * port reachable from the network follows the main listeners' protected
 * mode: refused without TLS or a password unless --insecure, and served
 * over the broker's own TLS (certificate or password) when it has one.
 * Over plain HTTP the Host header must name the server by address, as
 * localhost or as configured (no DNS rebinding).  Nothing here changes
 * the registry: it only reads.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "../common/jsonout.h"
#include "../proto/addr.h"
#include "epmd.h"
#include "monitor.h"

/* Items in one page of /v1/handles or /v1/sessions. */
#define MONITOR_PAGE_MAX	1000
#define MONITOR_PAGE_DEF	100
/* Receivers in one page of /v1/handles: a page ends early rather than
 * pass it (one handle alone may have SIPC_MAX_RECEIVERS_PER_HANDLE). */
#define MONITOR_RECEIVERS_MAX	16384

struct query {
	uint64_t	 offset;
	uint32_t	 limit;
	const char	*handle;	/* NULL: every handle */
	size_t		 hlen;
};

/* The metrics port speaks TLS (monitor_check_protected() decided). */
static int	monitor_tls;
/* The metrics address's host as configured ("127.0.0.1", "localhost"). */
static char	monitor_host[256];

/* ---- The counters: STATS and /v1/varz ------------------------------------ */

size_t
monitor_counters(struct broker *b, struct jo_stat *st, size_t max)
{
	struct reg_stats rs;
	size_t n = 0;

#define C(nm, v) do {							\
	if (n < max) {							\
		st[n].name = nm;					\
		st[n].len = sizeof(nm) - 1;				\
		st[n].value = (v);					\
	}								\
	n++;								\
} while (0)
	reg_stats(b->reg, &rs);
	C("sessions", b->nsessions);
	C("registrations", rs.registrations);
	C("handles", rs.handles);
	C("watches", rs.watches);
	C("uptime_s", ((uint64_t)mono_ms() - b->started_mono_ms) / 1000);
	C("sessions_total", b->st.sessions_total);
	C("frames_in", b->st.frames_in);
	C("frames_out", b->st.frames_out);
	C("bytes_in", b->st.bytes_in);
	C("bytes_out", b->st.bytes_out);
	C("errors_sent", b->st.errors_sent);
	C("heartbeat_expiries", b->st.heartbeat_expiries);
	C("handshake_timeouts", b->st.handshake_timeouts);
	C("accept_paused", b->st.accept_paused);
	C("tls_failures", b->st.tls_failures);
#undef C
	return n < max ? n : max;
}

/* ---- Requests and answers ------------------------------------------------ */

static const char *
security_name(const struct broker *b)
{
	return b->tls == NULL ? "none" : b->psk ? "password" : "tls";
}

static void
add_common_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

/* Sends o (and frees it) as the JSON answer; 500 when o is NULL. */
static void
reply_json(struct evhttp_request *req, struct json_object *o)
{
	struct evbuffer *out;
	const char *s;
	size_t len;

	if (o == NULL || (s = json_object_to_json_string_length(o, JO_COMPACT,
	    &len)) == NULL || (out = evbuffer_new()) == NULL) {
		json_object_put(o);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	if (evbuffer_add(out, s, len) == -1 || evbuffer_add(out, "\n", 1)) {
		evbuffer_free(out);
		json_object_put(o);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	json_object_put(o);
	add_common_headers(req, "application/json; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* A 400 with a JSON body {"error": why}. */
static void
reply_bad(struct evhttp_request *req, const char *why)
{
	struct json_object *o = json_object_new_object();
	struct evbuffer *out = evbuffer_new();

	if (o == NULL || out == NULL || jo_add(o, "error", jo_cstr(why)) ||
	    evbuffer_add_printf(out, "%s\n", json_object_to_json_string_ext(o,
	    JO_COMPACT)) < 0) {
		json_object_put(o);
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, 400, why);
		return;
	}
	json_object_put(o);
	add_common_headers(req, "application/json; charset=utf-8");
	evhttp_send_reply(req, 400, "Bad Request", out);
	evbuffer_free(out);
}


/*
 * 1 when a plain-HTTP request's Host names this server by an address, as
 * localhost, or as configured: a page from elsewhere that had its own name
 * resolve to 127.0.0.1 (DNS rebinding) must not read handles and
 * addresses with the browser's help.  Over TLS the certificate already
 * ties the name to this server.
 */
static int
host_ok(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Host");
	char name[256];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;
	const char *end;

	if (monitor_tls)
		return 1;
	if (h == NULL)
		return 0;
	if (h[0] == '[') {
		if ((end = strchr(h, ']')) == NULL)
			return 0;
		n = (size_t)(end - h - 1);
		if (n >= sizeof(name))
			return 0;
		memcpy(name, h + 1, n);
		name[n] = '\0';
		return inet_pton(AF_INET6, name, &a6) == 1;
	}
	n = (end = strchr(h, ':')) ? (size_t)(end - h) : strlen(h);
	if (n >= sizeof(name))
		return 0;
	memcpy(name, h, n);
	name[n] = '\0';
	return inet_pton(AF_INET, name, &a4) == 1 ||
	    !strcasecmp(name, "localhost") || !strcasecmp(name, monitor_host);
}

/* GET or HEAD, from a page that may read the answer: 0, or -1 after
 * answering 405 or 403. */
static int
admit(struct evhttp_request *req)
{
	enum evhttp_cmd_type c = evhttp_request_get_command(req);

	if (c != EVHTTP_REQ_GET && c != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "only GET");
		return -1;
	}
	if (!host_ok(req)) {
		evhttp_send_error(req, 403, "the Host header must be an IP "
		    "address, localhost or the metrics address");
		return -1;
	}
	return 0;
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end != '\0' || x > max)
		return -1;
	*v = x;
	return 0;
}

/*
 * Reads ?offset, ?limit and ?handle into q; anything else, or a bad value,
 * gets a 400 naming it and returns -1.  q->handle points into *kv, which
 * the caller frees with evhttp_clear_headers().
 */
static int
parse_query(struct evhttp_request *req, struct evkeyvalq *kv,
    struct query *q, char *why, size_t whysize)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyval *e;
	uint64_t v;

	memset(q, 0, sizeof(*q));
	q->limit = MONITOR_PAGE_DEF;
	TAILQ_INIT(kv);
	if (qs == NULL || *qs == '\0')
		return 0;
	if (evhttp_parse_query_str(qs, kv) == -1) {
		snprintf(why, whysize, "malformed query string");
		return -1;
	}
	TAILQ_FOREACH(e, kv, next) {
		if (!strcmp(e->key, "offset")) {
			if (parse_u64(e->value, UINT32_MAX, &v) == -1) {
				snprintf(why, whysize, "offset: a number from "
				    "0 to %u", UINT32_MAX);
				return -1;
			}
			q->offset = v;
		} else if (!strcmp(e->key, "limit")) {
			if (parse_u64(e->value, UINT32_MAX, &v) == -1 ||
			    v == 0) {
				snprintf(why, whysize, "limit: a number from "
				    "1 to %d", MONITOR_PAGE_MAX);
				return -1;
			}
			/* Like NATS: more than the maximum gets the maximum. */
			q->limit = v > MONITOR_PAGE_MAX ? MONITOR_PAGE_MAX :
			    (uint32_t)v;
		} else if (!strcmp(e->key, "handle")) {
			q->handle = e->value;
			q->hlen = strlen(e->value);
			if (!wire_handle_valid(q->handle, q->hlen)) {
				snprintf(why, whysize, "handle: 1 to %d bytes "
				    "of UTF-8 without control characters",
				    SIPC_HANDLE_MAX);
				return -1;
			}
		} else {
			snprintf(why, whysize, "unknown parameter (offset, "
			    "limit and handle are known)");
			return -1;
		}
	}
	return 0;
}

/* The page's frame: {"now", "offset", "limit", "total", "count", "more",
 * KEY: items}, taking items. */
static struct json_object *
page(const struct query *q, uint64_t total, const char *key,
    struct json_object *items)
{
	struct json_object *o = json_object_new_object();
	size_t count = items ? json_object_array_length(items) : 0;
	int err = 0;

	err |= jo_add(o, "now", jo_time(wall_ms()));
	err |= jo_add(o, "offset", jo_u64(q->offset));
	err |= jo_add(o, "limit", jo_u64(q->limit));
	err |= jo_add(o, "total", jo_u64(total));
	err |= jo_add(o, "count", jo_u64(count));
	err |= jo_add(o, "more", json_object_new_boolean(q->offset + count <
	    total));
	err |= jo_add(o, key, items);
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- /v1/varz ------------------------------------------------------------ */

static void
varz_cb(struct evhttp_request *req, void *arg)
{
	struct broker *b = arg;
	struct jo_stat st[32];
	struct json_object *o, *a, *lim;
	char host[256];
	uint64_t up = (uint64_t)mono_ms() - b->started_mono_ms;
	size_t n;
	int i, err = 0;

	if (admit(req) == -1)
		return;
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	o = json_object_new_object();
	err |= jo_add(o, "server", jo_cstr("sipc-epmd"));
	err |= jo_add(o, "version", jo_cstr(SIPC_VERSION));
	err |= jo_add(o, "software", jo_cstr(EPMD_SOFTWARE));
	err |= jo_add(o, "protocol_min", jo_u64(SIPC_PROTO_VERSION_MIN));
	err |= jo_add(o, "protocol_max", jo_u64(SIPC_PROTO_VERSION_MAX));
	err |= jo_add(o, "host", jo_cstr(host));
	err |= jo_add(o, "pid", jo_u64((uint64_t)getpid()));
	err |= jo_add(o, "now", jo_time(wall_ms()));
	err |= jo_add(o, "started_at", jo_time(wall_ms() - up));
	err |= jo_add(o, "uptime_s", jo_num((double)up / 1000, "%.3f"));
	err |= jo_add(o, "security", jo_cstr(security_name(b)));
	a = json_object_new_array();
	for (i = 0; i < b->nlisteners; i++)
		err |= jo_push(a, jo_cstr(b->listeners[i].name));
	err |= jo_add(o, "listen", a);
	err |= jo_add(o, "metrics", jo_cstr(b->cfg.metrics));
	lim = json_object_new_object();
	err |= jo_add(lim, "max_sessions", jo_u64(b->cfg.max_sessions));
	err |= jo_add(lim, "max_sessions_per_peer",
	    jo_u64(b->cfg.max_sessions_per_peer));
	err |= jo_add(lim, "max_registrations",
	    jo_u64(b->cfg.max_registrations));
	err |= jo_add(lim, "max_watches", jo_u64(b->cfg.max_watches));
	err |= jo_add(lim, "max_frame", jo_u64(b->cfg.max_frame));
	err |= jo_add(lim, "heartbeat_ms", jo_u64(b->cfg.heartbeat_ms));
	err |= jo_add(o, "limits", lim);
	n = monitor_counters(b, st, sizeof(st) / sizeof(st[0]));
	err |= jo_add(o, "counters", jo_stats(st, n));
	if (err) {
		json_object_put(o);
		o = NULL;
	}
	reply_json(req, o);
}

/* ---- /v1/handles --------------------------------------------------------- */

/* One receiver: jo_record()'s shape, and its age and owning session. */
static struct json_object *
receiver_json(struct registration *g, uint64_t now)
{
	struct json_object *o;
	struct wire_record rec;
	struct session *s = g->owner->arg;
	int err = 0;

	dispatch_record(g, &rec);
	if ((o = jo_record(&rec, NULL)) == NULL)
		return NULL;
	err |= jo_add(o, "age_s", jo_num(now > g->registered_ms ?
	    (double)(now - g->registered_ms) / 1000 : 0, "%.3f"));
	err |= jo_add(o, "session", jo_u64(s->id));
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* One handle: jo_handle()'s shape, its watchers and its receivers. */
static struct json_object *
handle_json(struct reg_handle *rh, uint64_t now)
{
	struct json_object *o, *a;
	struct registration *g;
	int err = 0;

	if ((o = jo_handle(rh->name, rh->len, rh->nregs)) == NULL)
		return NULL;
	err |= jo_add(o, "watchers", jo_u64(rh->nwatches));
	a = json_object_new_array();
	TAILQ_FOREACH(g, &rh->regs, h_entry)
		err |= jo_push(a, receiver_json(g, now));
	err |= jo_add(o, "endpoints", a);
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static void
handles_cb(struct evhttp_request *req, void *arg)
{
	struct broker *b = arg;
	struct json_object *items;
	struct reg_handle **hs = NULL, *rh;
	struct reg_stats rs;
	struct evkeyvalq kv;
	struct query q;
	uint64_t now = wall_ms(), total, want;
	size_t i, budget = MONITOR_RECEIVERS_MAX;
	char why[160];
	long n;
	int err = 0;

	if (admit(req) == -1)
		return;
	if (parse_query(req, &kv, &q, why, sizeof(why)) == -1) {
		evhttp_clear_headers(&kv);
		reply_bad(req, why);
		return;
	}
	items = json_object_new_array();
	if (q.handle) {
		/* One handle, also when only watched. */
		rh = reg_handle_find(b->reg, q.handle, q.hlen);
		total = rh != NULL;
		if (rh && q.offset == 0)
			err |= jo_push(items, handle_json(rh, now));
		evhttp_clear_headers(&kv);
		reply_json(req, err ? (json_object_put(items), NULL) :
		    page(&q, total, "handles", items));
		return;
	}
	evhttp_clear_headers(&kv);
	reg_stats(b->reg, &rs);
	total = rs.handles;
	want = q.offset + q.limit;
	if (want > total)
		want = total;
	n = 0;
	if (want > q.offset && ((hs = calloc((size_t)want, sizeof(*hs))) ==
	    NULL || (n = reg_list(b->reg, NULL, 0, hs, (size_t)want)) < 0))
		err = -1;
	for (i = (size_t)q.offset; !err && i < (size_t)n; i++) {
		/* End the page early rather than pass the budget, but never
		 * return an empty page while handles remain. */
		if (hs[i]->nregs > budget && i > (size_t)q.offset)
			break;
		budget -= hs[i]->nregs < budget ? hs[i]->nregs : budget;
		err |= jo_push(items, handle_json(hs[i], now));
	}
	free(hs);
	reply_json(req, err ? (json_object_put(items), NULL) :
	    page(&q, total, "handles", items));
}

/* ---- /v1/sessions -------------------------------------------------------- */

static int
session_has_handle(struct session *s, const char *h, size_t len)
{
	struct registration *g;
	struct reg_watch *w;

	TAILQ_FOREACH(g, &s->owner.regs, o_entry)
		if (g->handle->len == len && !memcmp(g->handle->name, h, len))
			return 1;
	TAILQ_FOREACH(w, &s->owner.watches, o_entry)
		if (w->handle->len == len && !memcmp(w->handle->name, h, len))
			return 1;
	return 0;
}

static struct json_object *
session_json(struct session *s, uint64_t now)
{
	static const char *const states[] = { "handshake", "ready",
	    "closing" };
	struct jo_session js;

	memset(&js, 0, sizeof(js));
	js.id = s->id;
	js.peer = s->peer;
	js.state = states[s->state];
	js.security = security_name(s->b);
	js.host = s->host;
	js.software = s->software;
	js.pid = s->pid;
	js.protocol = s->state == SESSION_HANDSHAKE ? 0 : s->version;
	js.age_ms = now - s->opened_ms;
	js.idle_ms = now - s->last_rx_ms;
	js.registrations = s->owner.nregs;
	js.watches = s->owner.nwatches;
	return jo_session(&js);
}

static void
sessions_cb(struct evhttp_request *req, void *arg)
{
	struct broker *b = arg;
	struct json_object *items;
	struct evkeyvalq kv;
	struct session *s;
	struct query q;
	uint64_t now = (uint64_t)mono_ms(), seen = 0;
	char why[160];
	int err = 0;

	if (admit(req) == -1)
		return;
	if (parse_query(req, &kv, &q, why, sizeof(why)) == -1) {
		evhttp_clear_headers(&kv);
		reply_bad(req, why);
		return;
	}
	items = json_object_new_array();
	TAILQ_FOREACH(s, &b->sessions, entry) {
		if (q.handle && !session_has_handle(s, q.handle, q.hlen))
			continue;
		if (seen >= q.offset && seen < q.offset + q.limit)
			err |= jo_push(items, session_json(s, now));
		seen++;
	}
	evhttp_clear_headers(&kv);
	reply_json(req, err ? (json_object_put(items), NULL) :
	    page(&q, seen, "sessions", items));
}

/* ---- / ------------------------------------------------------------------- */

/* The page's Content-Security-Policy: no source but this server, and only
 * the page's own script and style, named by their SHA-256, may run. */
static char	monitor_csp[512];

static int
csp_hash(const char *text, char *out, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	if (EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || size < 4 * ((mdlen + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
	return 0;
}

static void
page_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out;

	(void)arg;
	if (admit(req) == -1)
		return;
	if ((out = evbuffer_new()) == NULL ||
	    evbuffer_add_printf(out, "%s%s%s%s%s", monitor_page_head,
	    monitor_page_style, monitor_page_mid, monitor_page_script,
	    monitor_page_tail) < 0) {
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	add_common_headers(req, "text/html; charset=utf-8");
	evhttp_add_header(h, "Content-Security-Policy", monitor_csp);
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* ---- Set-up -------------------------------------------------------------- */

/* The metrics port speaks TLS with the broker's own context. */
static struct bufferevent *
tls_bev(struct event_base *base, void *arg)
{
	struct broker *b = arg;
	SSL *ssl;

	if ((ssl = SSL_new(b->tls)) == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

/* 1 when every address host resolves to is a loopback one, 0 when one is
 * not, -1 when it does not resolve (logged). */
static int
host_is_loopback(const char *host)
{
	struct addrinfo hints, *res, *ai;
	int rc, all = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		log_errorx("metrics: %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)ai->ai_addr;

		if (ai->ai_family == AF_INET)
			all &= (ntohl(((const struct sockaddr_in *)
			    ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
		else if (ai->ai_family == AF_INET6)
			all &= IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
			    s6->sin6_addr.s6_addr[12] == 127);
		else
			all = 0;
	}
	freeaddrinfo(res);
	return all;
}

int
monitor_check_protected(struct broker *b)
{
	char host[256];
	const char *why;
	uint16_t port;
	int lo;

	monitor_tls = 0;
	if (b->cfg.metrics == NULL)
		return 0;
	if (addr_parse(b->cfg.metrics, host, sizeof(host), &port, 0,
	    &why) == -1) {
		log_errorx("metrics %s: %s", b->cfg.metrics, why);
		return -1;
	}
	snprintf(monitor_host, sizeof(monitor_host), "%s", host);
	if ((lo = host_is_loopback(host)) == -1)
		return -1;
	if (lo)
		return 0;
	if (b->tls) {
		monitor_tls = 1;
		return 0;
	}
	if (!b->cfg.insecure) {
		log_errorx("refusing to serve metrics on %s without TLS or a "
		    "password: its /v1 pages show every handle, address and "
		    "host.  Use --tls-cert and --tls-key, or --password-file "
		    "(the metrics port then speaks TLS too), a loopback "
		    "address, or --insecure to accept that", b->cfg.metrics);
		return -1;
	}
	log_warnx("serving metrics on %s without TLS or a password "
	    "(--insecure)", b->cfg.metrics);
	return 0;
}

int
monitor_tls_on(void)
{
	return monitor_tls;
}

int
monitor_start(struct broker *b, struct evhttp *http)
{
	char sh[64], st[64];

	if (csp_hash(monitor_page_script, sh, sizeof(sh)) == -1 ||
	    csp_hash(monitor_page_style, st, sizeof(st)) == -1) {
		log_errorx("monitor: cannot hash the status page");
		return -1;
	}
	snprintf(monitor_csp, sizeof(monitor_csp), "default-src 'none'; "
	    "script-src 'sha256-%s'; style-src 'sha256-%s'; connect-src "
	    "'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
	    "frame-ancestors 'none'", sh, st);
	if (monitor_tls)
		evhttp_set_bevcb(http, tls_bev, b);
	if (evhttp_set_cb(http, "/v1/varz", varz_cb, b) != 0 ||
	    evhttp_set_cb(http, "/v1/handles", handles_cb, b) != 0 ||
	    evhttp_set_cb(http, "/v1/sessions", sessions_cb, b) != 0 ||
	    evhttp_set_cb(http, "/", page_cb, b) != 0) {
		log_errorx("monitor: cannot set up the HTTP handlers");
		return -1;
	}
	return 0;
}
