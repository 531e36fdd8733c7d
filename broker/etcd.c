/*
 * etcd.c - etcd v3 over its JSON gateway (see etcd.h).
 *
 * One evhttp connection carries the requests (HTTP/1.1, kept alive, one at
 * a time in order); each watch has a connection of its own, because a
 * watch answer never ends.  Any failure of a connection retires it: the
 * requests still queued on it complete with ETCD_ECONNECT, the next
 * request opens a connection to the next endpoint.  Connections are never
 * freed inside libevent's callbacks: retired ones wait on e->reap_list
 * until the reaper event runs, and so do completions that must not run
 * inside the call that started them.
 */
#include <sys/queue.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "etcd.h"

/* A watch stream is idle for as long as nothing changes: no read timeout,
 * in effect.  The broker finds a dead etcd through its lease keepalives. */
#define WATCH_IDLE_S	(7 * 24 * 3600)

const double etcd_lat_bounds_ms[7] = { 0.5, 1, 2, 5, 10, 50, 250 };

enum req_kind {
	RK_PUT,
	RK_RANGE,
	RK_DELETE,
	RK_TXN,
	RK_GRANT,
	RK_KEEPALIVE,
	RK_REVOKE
};

struct endpoint {
	char	 url[256];
	char	 host[256];
	int	 port;
	int	 tls;
};

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct evhttp_connection *evcon;
	int			 retired;
};
TAILQ_HEAD(conn_list, conn);

struct req {
	TAILQ_ENTRY(req)	 entry;		/* in e->reqs or e->doneq */
	struct etcd		*e;
	struct conn		*conn;
	struct evhttp_request	*hreq;		/* NULL once answered */
	enum req_kind		 kind;
	etcd_cb			 cb;
	void			*arg;
	uint64_t		 start_us;
	int			 err;		/* for a deferred completion */
	char			 why[200];
	int			 starting;	/* inside evhttp_make_request */
	int			 http_err;	/* from the error callback */
};
TAILQ_HEAD(req_list, req);

struct etcd {
	struct event_base	*base;
	struct endpoint		 eps[ETCD_MAX_ENDPOINTS];
	int			 neps;
	int			 cur;
	SSL_CTX			*ssl;
	uint32_t		 timeout_ms;
	size_t			 max_response;
	struct conn		*conn;		/* for requests; NULL: none */
	struct req_list		 reqs;		/* waiting for an answer */
	struct req_list		 doneq;		/* to complete from the reaper */
	struct conn_list	 dead;		/* to free from the reaper */
	struct event		*reaper;
	struct etcd_stats	 st;
};

struct etcd_txn {
	json_object	*ops;	/* array of RequestOp */
};

struct etcd_watch {
	struct etcd		*e;
	etcd_watch_fn		 fn;
	void			*arg;
	struct conn		*conn;
	struct evhttp_request	*hreq;
	struct evbuffer		*line;		/* an unfinished message */
	int			 over;		/* reported its end */
	int			 http_err;
	int			 starting;	/* in evhttp_make_request */
	int			 start_failed;
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- base64 and JSON helpers --------------------------------------------- */

/* A JSON string holding base64 of data[0..len), or NULL. */
static json_object *
b64_json(const void *data, size_t len)
{
	json_object *o;
	char *buf;
	int n;

	if (len > (size_t)INT32_MAX / 2 || (buf = malloc(len / 3 * 4 + 8)) ==
	    NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)buf, data, (int)len);
	o = json_object_new_string_len(buf, n);
	free(buf);
	return o;
}

/*
 * Decodes the base64 in s[0..len) into a new buffer (NUL-terminated for
 * convenience): 0, or -1 when s is not base64.
 */
static int
b64_decode(const char *s, size_t len, uint8_t **out, size_t *olen)
{
	uint8_t *buf;
	int n, pad = 0;

	if (len % 4 != 0 || len > (size_t)INT32_MAX)
		return -1;
	if ((buf = malloc(len / 4 * 3 + 1)) == NULL)
		return -1;
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	if ((n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len)) <
	    0 || n < pad) {
		free(buf);
		return -1;
	}
	buf[n - pad] = '\0';
	*out = buf;
	*olen = (size_t)(n - pad);
	return 0;
}

/* etcd writes 64-bit numbers as strings; numbers are taken too.  Absent:
 * 0 (proto3 leaves zero values out).  -1 when present but not a number. */
static int
get_i64(json_object *obj, const char *name, int64_t *out)
{
	json_object *v;
	const char *s;
	char *end;
	long long n;

	*out = 0;
	if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_int:
		*out = json_object_get_int64(v);
		return 0;
	case json_type_string:
		s = json_object_get_string(v);
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno || end == s || *end != '\0')
			return -1;
		*out = n;
		return 0;
	default:
		return -1;
	}
}

static int
get_bool(json_object *obj, const char *name)
{
	json_object *v;

	return json_object_object_get_ex(obj, name, &v) &&
	    json_object_get_type(v) == json_type_boolean &&
	    json_object_get_boolean(v);
}

static int
header_revision(json_object *obj, int64_t *rev)
{
	json_object *h;

	*rev = 0;
	if (!json_object_object_get_ex(obj, "header", &h))
		return 0;
	if (!json_object_is_type(h, json_type_object))
		return -1;
	return get_i64(h, "revision", rev);
}

/* Parses one KeyValue into kv (buffers appended to *bufs, freed by the
 * caller): 0 or -1. */
static int
parse_kv(json_object *o, struct etcd_kv *kv, uint8_t **bufs, size_t *nbufs)
{
	json_object *k, *v;
	uint8_t *p;
	size_t n;

	memset(kv, 0, sizeof(*kv));
	if (!json_object_is_type(o, json_type_object))
		return -1;
	if (!json_object_object_get_ex(o, "key", &k) ||
	    !json_object_is_type(k, json_type_string) ||
	    b64_decode(json_object_get_string(k),
	    (size_t)json_object_get_string_len(k), &p, &n) == -1)
		return -1;
	bufs[(*nbufs)++] = p;
	kv->key = p;
	kv->klen = n;
	if (json_object_object_get_ex(o, "value", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    b64_decode(json_object_get_string(v),
		    (size_t)json_object_get_string_len(v), &p, &n) == -1)
			return -1;
		bufs[(*nbufs)++] = p;
		kv->value = p;
		kv->vlen = n;
	} else {
		kv->value = (const uint8_t *)"";
		kv->vlen = 0;
	}
	if (get_i64(o, "create_revision", &kv->create_revision) == -1 ||
	    get_i64(o, "mod_revision", &kv->mod_revision) == -1 ||
	    get_i64(o, "lease", &kv->lease) == -1)
		return -1;
	return 0;
}

/* Parses s[0..len) as one JSON object: NULL when it is not one. */
static json_object *
parse_json(const char *s, size_t len)
{
	struct json_tokener *tok;
	json_object *o;

	if (len > INT32_MAX || (tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* ---- Client ---------------------------------------------------------------- */

static void	reaper_cb(evutil_socket_t fd, short what, void *arg);

static int
parse_endpoint(const char *url, struct endpoint *ep, char *err, size_t errlen)
{
	struct evhttp_uri *u;
	const char *scheme, *host;
	int port;

	if (strlen(url) >= sizeof(ep->url) ||
	    (u = evhttp_uri_parse(url)) == NULL) {
		snprintf(err, errlen, "etcd endpoint '%s': not a URL", url);
		return -1;
	}
	scheme = evhttp_uri_get_scheme(u);
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u);
	if (scheme == NULL || (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0) || host == NULL ||
	    host[0] == '\0' || strlen(host) >= sizeof(ep->host)) {
		snprintf(err, errlen, "etcd endpoint '%s': want "
		    "http://HOST:PORT or https://HOST:PORT", url);
		evhttp_uri_free(u);
		return -1;
	}
	snprintf(ep->url, sizeof(ep->url), "%s", url);
	snprintf(ep->host, sizeof(ep->host), "%s", host);
	ep->tls = strcasecmp(scheme, "https") == 0;
	ep->port = port > 0 ? port : 2379;
	evhttp_uri_free(u);
	return 0;
}

static int
tls_setup(struct etcd *e, const struct etcd_config *c, char *err,
    size_t errlen)
{
	if ((e->ssl = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(e->ssl, TLS1_2_VERSION);
	SSL_CTX_set_verify(e->ssl, SSL_VERIFY_PEER, NULL);
	if (c->tls_ca ? SSL_CTX_load_verify_locations(e->ssl, c->tls_ca,
	    NULL) != 1 : SSL_CTX_set_default_verify_paths(e->ssl) != 1) {
		snprintf(err, errlen, "etcd TLS: cannot load CA %s",
		    c->tls_ca ? c->tls_ca : "(system)");
		return -1;
	}
	if (c->tls_cert && (SSL_CTX_use_certificate_chain_file(e->ssl,
	    c->tls_cert) != 1 || SSL_CTX_use_PrivateKey_file(e->ssl,
	    c->tls_key ? c->tls_key : c->tls_cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(e->ssl) != 1)) {
		snprintf(err, errlen, "etcd TLS: cannot load the client "
		    "certificate %s and its key", c->tls_cert);
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "etcd TLS: out of memory");
	return -1;
}

struct etcd *
etcd_new(struct event_base *base, const struct etcd_config *c, char *err,
    size_t errlen)
{
	struct etcd *e;
	char *list, *tok, *save = NULL;
	int tls = 0, i;

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (list = strdup(c->endpoints ? c->endpoints : "")) == NULL) {
		free(e);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->base = base;
	TAILQ_INIT(&e->reqs);
	TAILQ_INIT(&e->doneq);
	TAILQ_INIT(&e->dead);
	e->timeout_ms = c->timeout_ms ? c->timeout_ms : ETCD_DEF_TIMEOUT_MS;
	e->max_response = c->max_response ? c->max_response :
	    ETCD_DEF_MAX_RESPONSE;
	for (tok = strtok_r(list, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (*tok == '\0')
			continue;
		if (e->neps == ETCD_MAX_ENDPOINTS) {
			snprintf(err, errlen, "more than %d etcd endpoints",
			    ETCD_MAX_ENDPOINTS);
			goto fail;
		}
		if (parse_endpoint(tok, &e->eps[e->neps], err, errlen) == -1)
			goto fail;
		e->neps++;
	}
	if (e->neps == 0) {
		snprintf(err, errlen, "no etcd endpoint given");
		goto fail;
	}
	for (i = 0; i < e->neps; i++)
		tls |= e->eps[i].tls;
	if ((tls || c->tls_ca || c->tls_cert) && tls_setup(e, c, err,
	    errlen) == -1)
		goto fail;
	if ((e->reaper = event_new(base, -1, 0, reaper_cb, e)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	free(list);
	return e;
fail:
	free(list);
	etcd_free(e);
	return NULL;
}

const char *
etcd_endpoint(const struct etcd *e)
{
	return e->eps[e->cur].url;
}

const struct etcd_stats *
etcd_stats(const struct etcd *e)
{
	return &e->st;
}

static struct conn *
conn_open(struct etcd *e, int idle_s)
{
	const struct endpoint *ep = &e->eps[e->cur];
	struct bufferevent *bev = NULL;
	struct conn *c;
	SSL *ssl;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (ep->tls) {
		if ((ssl = SSL_new(e->ssl)) == NULL)
			goto fail;
		SSL_set_tlsext_host_name(ssl, ep->host);
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, ep->host) != 1 ||
		    (bev = bufferevent_openssl_socket_new(e->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
		    BEV_OPT_DEFER_CALLBACKS)) == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
		c->evcon = evhttp_connection_base_bufferevent_new(e->base,
		    NULL, bev, ep->host, (unsigned short)ep->port);
		if (c->evcon == NULL) {
			bufferevent_free(bev);
			goto fail;
		}
	} else if ((c->evcon = evhttp_connection_base_new(e->base, NULL,
	    ep->host, (unsigned short)ep->port)) == NULL)
		goto fail;
	if (idle_s) {
		evhttp_connection_set_timeout(c->evcon, idle_s);
	} else {
		struct timeval tv;

		tv.tv_sec = e->timeout_ms / 1000;
		tv.tv_usec = (e->timeout_ms % 1000) * 1000;
		evhttp_connection_set_timeout_tv(c->evcon, &tv);
		evhttp_connection_set_max_body_size(c->evcon,
		    (ev_ssize_t)e->max_response);
	}
	evhttp_connection_set_max_headers_size(c->evcon, 64 * 1024);
	evhttp_connection_set_retries(c->evcon, 0);
	return c;
fail:
	free(c);
	return NULL;
}

/* Frees c from the reaper, outside libevent's callbacks. */
static void
conn_retire(struct etcd *e, struct conn *c)
{
	if (c->retired)
		return;
	c->retired = 1;
	TAILQ_INSERT_TAIL(&e->dead, c, entry);
	event_active(e->reaper, EV_TIMEOUT, 0);
}

static void
stat_done(struct etcd *e, int err, uint64_t lat)
{
	int i;

	e->st.requests++;
	if (err) {
		e->st.errors++;
		return;
	}
	e->st.latency_us_sum += lat;
	if (lat > e->st.latency_us_max)
		e->st.latency_us_max = lat;
	for (i = 0; i < 7; i++)
		if ((double)lat <= etcd_lat_bounds_ms[i] * 1000)
			break;
	e->st.lat_le[i]++;
}

/* Completes q with an error from the reaper (never inside the caller). */
static void
req_fail_later(struct req *q, int err, const char *why)
{
	struct etcd *e = q->e;

	q->err = err;
	snprintf(q->why, sizeof(q->why), "%s", why);
	q->hreq = NULL;
	TAILQ_REMOVE(&e->reqs, q, entry);
	TAILQ_INSERT_TAIL(&e->doneq, q, entry);
	event_active(e->reaper, EV_TIMEOUT, 0);
}

/*
 * The request connection failed: later requests go to the next endpoint,
 * those still queued on this one fail.  They are not canceled in libevent
 * (that would re-enter its failure path): freeing the connection from the
 * reaper frees them, and req_cb ignores whatever they report before that.
 */
static void
conn_failed(struct etcd *e, struct conn *c)
{
	struct req *q, *qn;

	if (e->conn == c) {
		e->conn = NULL;
		e->cur = (e->cur + 1) % e->neps;
	}
	for (q = TAILQ_FIRST(&e->reqs); q; q = qn) {
		qn = TAILQ_NEXT(q, entry);
		if (q->conn != c || q->hreq == NULL)
			continue;
		req_fail_later(q, ETCD_ECONNECT, "connection to etcd lost");
	}
	conn_retire(e, c);
}

static void
complete(struct req *q, struct etcd_res *res)
{
	struct etcd *e = q->e;

	res->latency_us = now_us() - q->start_us;
	stat_done(e, res->err, res->latency_us);
	q->cb(q->arg, res);
	free(q);
}

static void
reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd *e = arg;
	struct etcd_res res;
	struct conn *c;
	struct req *q;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&e->dead)) != NULL) {
		TAILQ_REMOVE(&e->dead, c, entry);
		evhttp_connection_free(c->evcon);
		free(c);
	}
	while ((q = TAILQ_FIRST(&e->doneq)) != NULL) {
		TAILQ_REMOVE(&e->doneq, q, entry);
		memset(&res, 0, sizeof(res));
		res.err = q->err;
		res.why = q->why;
		complete(q, &res);
	}
}

void
etcd_free(struct etcd *e)
{
	struct conn *c;
	struct req *q;

	if (e == NULL)
		return;
	while ((q = TAILQ_FIRST(&e->reqs)) != NULL) {
		TAILQ_REMOVE(&e->reqs, q, entry);
		free(q);
	}
	while ((q = TAILQ_FIRST(&e->doneq)) != NULL) {
		TAILQ_REMOVE(&e->doneq, q, entry);
		free(q);
	}
	/* Freeing a connection frees its requests without callbacks. */
	if (e->conn)
		TAILQ_INSERT_TAIL(&e->dead, e->conn, entry);
	while ((c = TAILQ_FIRST(&e->dead)) != NULL) {
		TAILQ_REMOVE(&e->dead, c, entry);
		evhttp_connection_free(c->evcon);
		free(c);
	}
	if (e->reaper)
		event_free(e->reaper);
	if (e->ssl)
		SSL_CTX_free(e->ssl);
	free(e);
}

/* ---- Answers ------------------------------------------------------------- */

static const char *
http_err_text(int code)
{
	switch (code) {
	case EVREQ_HTTP_TIMEOUT:
		return "etcd did not answer in time";
	case EVREQ_HTTP_EOF:
		return "etcd closed the connection";
	case EVREQ_HTTP_INVALID_HEADER:
		return "etcd sent an invalid HTTP header";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "etcd's answer is larger than the limit";
	default:
		return "connection to etcd failed";
	}
}

/* Fills res from an error document {"error":..,"code":..,"message":..}. */
static void
server_error(json_object *o, struct etcd_res *res, char *why, size_t len)
{
	json_object *m;
	const char *text = "etcd reports an error";

	if (json_object_object_get_ex(o, "error", &m) &&
	    json_object_is_type(m, json_type_object))
		o = m;	/* a stream's {"error":{...}} */
	if ((json_object_object_get_ex(o, "message", &m) ||
	    json_object_object_get_ex(o, "error", &m)) &&
	    json_object_is_type(m, json_type_string))
		text = json_object_get_string(m);
	snprintf(why, len, "etcd: %s", text);
	res->err = strstr(text, "lease not found") ? ETCD_ENOLEASE :
	    ETCD_ESERVER;
	res->why = why;
}

static void
parse_answer(struct req *q, json_object *o, struct etcd_res *res,
    uint8_t **bufs, size_t *nbufs, char *why, size_t wlen)
{
	json_object *a, *r;
	size_t i, n;

	if (q->kind == RK_KEEPALIVE) {
		/* A stream of one message: {"result":{...}} */
		if (!json_object_object_get_ex(o, "result", &r) ||
		    !json_object_is_type(r, json_type_object))
			goto bad;
		o = r;
	}
	if (header_revision(o, &res->revision) == -1)
		goto bad;
	switch (q->kind) {
	case RK_RANGE:
		if (get_i64(o, "count", &res->count) == -1)
			goto bad;
		res->more = get_bool(o, "more");
		if (!json_object_object_get_ex(o, "kvs", &a))
			return;
		if (!json_object_is_type(a, json_type_array))
			goto bad;
		n = json_object_array_length(a);
		if (n == 0)
			return;
		res->kvs = calloc(n, sizeof(*res->kvs));
		/* kvs[] keys and values, two buffers each */
		if (res->kvs == NULL)
			goto nomem;
		for (i = 0; i < n; i++)
			if (parse_kv(json_object_array_get_idx(a, i),
			    &res->kvs[i], bufs, nbufs) == -1)
				goto bad;
		res->nkvs = n;
		return;
	case RK_DELETE:
		if (get_i64(o, "deleted", &res->deleted) == -1)
			goto bad;
		return;
	case RK_TXN:
		res->succeeded = get_bool(o, "succeeded");
		return;
	case RK_GRANT:
	case RK_KEEPALIVE:
		if (get_i64(o, "ID", &res->lease_id) == -1 ||
		    get_i64(o, "TTL", &res->ttl) == -1)
			goto bad;
		if (q->kind == RK_GRANT && res->ttl <= 0) {
			snprintf(why, wlen, "etcd granted no lease");
			res->err = ETCD_ESERVER;
			res->why = why;
		}
		return;
	default:
		return;
	}
bad:
	snprintf(why, wlen, "etcd's answer has an unexpected shape");
	res->err = ETCD_EBADRESPONSE;
	res->why = why;
	return;
nomem:
	res->err = ETCD_ENOMEM;
	res->why = "out of memory";
}

static void
req_errcb(enum evhttp_request_error err, void *arg)
{
	struct req *q = arg;

	q->http_err = (int)err;
}

static void
req_cb(struct evhttp_request *hreq, void *arg)
{
	struct req *q = arg;
	struct etcd *e = q->e;
	struct etcd_res res;
	struct evbuffer *in;
	json_object *o = NULL;
	uint8_t **bufs = NULL;
	size_t nbufs = 0, len, i;
	char why[300];
	int code;

	if (q->hreq == NULL)
		return;		/* already failed through conn_failed */
	q->hreq = NULL;
	memset(&res, 0, sizeof(res));
	code = hreq ? evhttp_request_get_response_code(hreq) : 0;
	if (code == 0) {
		if (q->starting) {
			/* Failed inside evhttp_make_request: complete after
			 * the caller returned. */
			q->err = ETCD_ECONNECT;
			snprintf(q->why, sizeof(q->why), "%s",
			    http_err_text(q->http_err));
			return;
		}
		TAILQ_REMOVE(&e->reqs, q, entry);
		/* libevent reports a refused connect as a timeout too: only
		 * a request that waited its time out timed out. */
		res.err = q->http_err == EVREQ_HTTP_TIMEOUT && now_us() -
		    q->start_us >= (uint64_t)e->timeout_ms * 900 ?
		    ETCD_ETIMEDOUT : ETCD_ECONNECT;
		res.why = res.err == ETCD_ECONNECT ? "cannot connect to etcd, "
		    "or the connection broke" : http_err_text(q->http_err);
		if (q->http_err == EVREQ_HTTP_DATA_TOO_LONG)
			res.err = ETCD_EBADRESPONSE;
		conn_failed(e, q->conn);
		complete(q, &res);
		return;
	}
	TAILQ_REMOVE(&e->reqs, q, entry);
	in = evhttp_request_get_input_buffer(hreq);
	len = evbuffer_get_length(in);
	if (len > e->max_response) {
		res.err = ETCD_EBADRESPONSE;
		snprintf(why, sizeof(why), "etcd's answer of %zu bytes is "
		    "larger than the limit", len);
		res.why = why;
	} else if ((o = parse_json((const char *)evbuffer_pullup(in, -1),
	    len)) == NULL) {
		res.err = ETCD_EBADRESPONSE;
		snprintf(why, sizeof(why), "etcd's answer (HTTP %d) is not a "
		    "JSON object", code);
		res.why = why;
	} else if (code != 200 || json_object_object_get_ex(o, "error",
	    NULL)) {
		server_error(o, &res, why, sizeof(why));
	} else {
		/* Two decoded buffers per key-value pair at most. */
		json_object *a;
		size_t n = 0;

		if (json_object_object_get_ex(o, "kvs", &a) &&
		    json_object_is_type(a, json_type_array))
			n = json_object_array_length(a);
		if ((bufs = calloc(2 * n + 1, sizeof(*bufs))) == NULL) {
			res.err = ETCD_ENOMEM;
			res.why = "out of memory";
		} else
			parse_answer(q, o, &res, bufs, &nbufs, why,
			    sizeof(why));
	}
	if (res.err) {
		free(res.kvs);
		res.kvs = NULL;
		res.nkvs = 0;
	}
	complete(q, &res);
	free(res.kvs);
	for (i = 0; i < nbufs; i++)
		free(bufs[i]);
	free(bufs);
	json_object_put(o);
}

/* POSTs body (taken over) to path; 0 or -1. */
static int
request(struct etcd *e, enum req_kind kind, const char *path,
    json_object *body, etcd_cb cb, void *arg)
{
	const struct endpoint *ep;
	struct evkeyvalq *hdr;
	struct req *q;
	const char *s;
	size_t len;
	int rc;

	if (body == NULL)
		return -1;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		json_object_put(body);
		return -1;
	}
	q->e = e;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	q->start_us = now_us();
	TAILQ_INSERT_TAIL(&e->reqs, q, entry);
	if (e->conn == NULL && (e->conn = conn_open(e, 0)) == NULL) {
		json_object_put(body);
		req_fail_later(q, ETCD_ENOMEM, "cannot open a connection");
		return 0;
	}
	ep = &e->eps[e->cur];
	q->conn = e->conn;
	if ((q->hreq = evhttp_request_new(req_cb, q)) == NULL) {
		json_object_put(body);
		req_fail_later(q, ETCD_ENOMEM, "out of memory");
		return 0;
	}
	evhttp_request_set_error_cb(q->hreq, req_errcb);
	hdr = evhttp_request_get_output_headers(q->hreq);
	evhttp_add_header(hdr, "Host", ep->host);
	evhttp_add_header(hdr, "Content-Type", "application/json");
	s = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN,
	    &len);
	rc = s ? evbuffer_add(evhttp_request_get_output_buffer(q->hreq), s,
	    len) : -1;
	json_object_put(body);
	if (rc == -1) {
		evhttp_request_free(q->hreq);
		req_fail_later(q, ETCD_ENOMEM, "out of memory");
		return 0;
	}
	q->starting = 1;
	rc = evhttp_make_request(q->conn->evcon, q->hreq, EVHTTP_REQ_POST,
	    path);
	q->starting = 0;
	if (rc == -1 || q->hreq == NULL) {
		/* libevent owns (and freed) the request either way. */
		struct conn *c = q->conn;

		req_fail_later(q, ETCD_ECONNECT, q->why[0] ? q->why :
		    "cannot connect to etcd");
		if (e->conn == c)
			conn_failed(e, c);
	}
	return 0;
}

/* ---- Requests ------------------------------------------------------------ */

static int
add_bytes(json_object *o, const char *name, const void *data, size_t len)
{
	json_object *v;

	if ((v = b64_json(data, len)) == NULL)
		return -1;
	return json_object_object_add(o, name, v) == 0 ? 0 : -1;
}

static int
add_i64(json_object *o, const char *name, int64_t n)
{
	char buf[32];
	json_object *v;

	snprintf(buf, sizeof(buf), "%" PRId64, n);
	if ((v = json_object_new_string(buf)) == NULL)
		return -1;
	return json_object_object_add(o, name, v) == 0 ? 0 : -1;
}

static json_object *
put_body(const void *key, size_t klen, const void *value, size_t vlen,
    int64_t lease)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	if (add_bytes(o, "key", key, klen) == -1 ||
	    add_bytes(o, "value", value, vlen) == -1 ||
	    (lease && add_i64(o, "lease", lease) == -1)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *
range_body(const void *key, size_t klen, const void *end, size_t elen)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	if (add_bytes(o, "key", key, klen) == -1 ||
	    (end && add_bytes(o, "range_end", end, elen) == -1)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int
etcd_put(struct etcd *e, const void *key, size_t klen, const void *value,
    size_t vlen, int64_t lease, etcd_cb cb, void *arg)
{
	return request(e, RK_PUT, "/v3/kv/put", put_body(key, klen, value,
	    vlen, lease), cb, arg);
}

int
etcd_range(struct etcd *e, const void *key, size_t klen,
    const void *range_end, size_t rlen, int64_t revision, int64_t limit,
    etcd_cb cb, void *arg)
{
	json_object *o = range_body(key, klen, range_end, rlen);

	if (o && ((revision && add_i64(o, "revision", revision) == -1) ||
	    (limit && add_i64(o, "limit", limit) == -1))) {
		json_object_put(o);
		o = NULL;
	}
	return request(e, RK_RANGE, "/v3/kv/range", o, cb, arg);
}

int
etcd_delete(struct etcd *e, const void *key, size_t klen,
    const void *range_end, size_t rlen, etcd_cb cb, void *arg)
{
	return request(e, RK_DELETE, "/v3/kv/deleterange", range_body(key,
	    klen, range_end, rlen), cb, arg);
}

static json_object *
lease_body(const char *name, int64_t n)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	if (add_i64(o, name, n) == -1) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int
etcd_lease_grant(struct etcd *e, int64_t ttl_s, etcd_cb cb, void *arg)
{
	return request(e, RK_GRANT, "/v3/lease/grant", lease_body("TTL",
	    ttl_s), cb, arg);
}

int
etcd_lease_keepalive(struct etcd *e, int64_t id, etcd_cb cb, void *arg)
{
	return request(e, RK_KEEPALIVE, "/v3/lease/keepalive",
	    lease_body("ID", id), cb, arg);
}

int
etcd_lease_revoke(struct etcd *e, int64_t id, etcd_cb cb, void *arg)
{
	return request(e, RK_REVOKE, "/v3/lease/revoke", lease_body("ID", id),
	    cb, arg);
}

size_t
etcd_prefix_end(const void *prefix, size_t len, uint8_t *out)
{
	const uint8_t *p = prefix;
	size_t i;

	memcpy(out, p, len);
	for (i = len; i > 0; i--) {
		if (out[i - 1] < 0xff) {
			out[i - 1]++;
			return i;
		}
	}
	out[0] = 0;
	return 1;	/* "\0": every key from prefix on */
}

struct etcd_txn *
etcd_txn_new(void)
{
	struct etcd_txn *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->ops = json_object_new_array()) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static int
txn_add(struct etcd_txn *t, const char *kind, json_object *body)
{
	json_object *op;

	if (body == NULL)
		return -1;
	if ((op = json_object_new_object()) == NULL) {
		json_object_put(body);
		return -1;
	}
	json_object_object_add(op, kind, body);
	if (json_object_array_add(t->ops, op) != 0) {
		json_object_put(op);
		return -1;
	}
	return 0;
}

int
etcd_txn_put(struct etcd_txn *t, const void *key, size_t klen,
    const void *value, size_t vlen, int64_t lease)
{
	return txn_add(t, "request_put", put_body(key, klen, value, vlen,
	    lease));
}

int
etcd_txn_delete(struct etcd_txn *t, const void *key, size_t klen)
{
	return txn_add(t, "request_delete_range", range_body(key, klen, NULL,
	    0));
}

size_t
etcd_txn_ops(const struct etcd_txn *t)
{
	return json_object_array_length(t->ops);
}

void
etcd_txn_free(struct etcd_txn *t)
{
	if (t == NULL)
		return;
	json_object_put(t->ops);
	free(t);
}

int
etcd_txn_send(struct etcd *e, struct etcd_txn *t, etcd_cb cb, void *arg)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL) {
		etcd_txn_free(t);
		return -1;
	}
	json_object_object_add(o, "success", t->ops);
	t->ops = NULL;
	free(t);
	return request(e, RK_TXN, "/v3/kv/txn", o, cb, arg);
}

/* ---- Watch --------------------------------------------------------------- */

struct etcd_watch *
etcd_watch_new(struct etcd *e, etcd_watch_fn fn, void *arg)
{
	struct etcd_watch *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if ((w->line = evbuffer_new()) == NULL) {
		free(w);
		return NULL;
	}
	w->e = e;
	w->fn = fn;
	w->arg = arg;
	return w;
}

void
etcd_watch_stop(struct etcd_watch *w)
{
	if (w->hreq) {
		evhttp_cancel_request(w->hreq);
		w->hreq = NULL;
	}
	if (w->conn) {
		conn_retire(w->e, w->conn);
		w->conn = NULL;
	}
	evbuffer_drain(w->line, evbuffer_get_length(w->line));
}

void
etcd_watch_free(struct etcd_watch *w)
{
	if (w == NULL)
		return;
	etcd_watch_stop(w);
	evbuffer_free(w->line);
	free(w);
}

/* Ends the stream and reports why (once). */
static void
watch_over(struct etcd_watch *w, enum etcd_watch_what what, int64_t rev,
    const char *why)
{
	if (w->over)
		return;
	w->over = 1;
	w->e->st.watch_restarts++;
	if (w->hreq) {
		/* Inside its callbacks: let libevent finish with it, the
		 * connection goes from the reaper. */
		w->hreq = NULL;
	}
	if (w->conn) {
		conn_retire(w->e, w->conn);
		w->conn = NULL;
	}
	w->fn(w->arg, what, NULL, 0, rev, why);
}

/* One WatchResponse message: 0, or -1 once the watch is over. */
static int
watch_message(struct etcd_watch *w, const char *s, size_t len)
{
	struct etcd_event *evs = NULL;
	json_object *o, *r, *a, *ev, *t, *kv;
	uint8_t **bufs = NULL;
	size_t n = 0, i, nbufs = 0;
	int64_t rev, crev;
	char why[200];

	if ((o = parse_json(s, len)) == NULL) {
		watch_over(w, ETCD_W_ERROR, 0, "a watch message from etcd is "
		    "not a JSON object");
		return -1;
	}
	if (!json_object_object_get_ex(o, "result", &r) ||
	    !json_object_is_type(r, json_type_object)) {
		if (json_object_object_get_ex(o, "error", NULL)) {
			struct etcd_res res;

			memset(&res, 0, sizeof(res));
			server_error(o, &res, why, sizeof(why));
		} else
			snprintf(why, sizeof(why), "a watch message from etcd "
			    "has no result");
		json_object_put(o);
		watch_over(w, ETCD_W_ERROR, 0, why);
		return -1;
	}
	if (header_revision(r, &rev) == -1 ||
	    get_i64(r, "compact_revision", &crev) == -1)
		goto bad;
	if (crev > 0) {
		json_object_put(o);
		snprintf(why, sizeof(why), "etcd compacted the history up to "
		    "revision %" PRId64, crev);
		watch_over(w, ETCD_W_COMPACTED, crev, why);
		return -1;
	}
	if (get_bool(r, "canceled")) {
		json_object *cr;

		snprintf(why, sizeof(why), "etcd canceled the watch");
		if (json_object_object_get_ex(r, "cancel_reason", &cr) &&
		    json_object_is_type(cr, json_type_string))
			snprintf(why, sizeof(why), "etcd canceled the watch: "
			    "%s", json_object_get_string(cr));
		json_object_put(o);
		watch_over(w, ETCD_W_CANCELED, rev, why);
		return -1;
	}
	if (get_bool(r, "created")) {
		json_object_put(o);
		w->fn(w->arg, ETCD_W_CREATED, NULL, 0, rev, NULL);
		return 0;
	}
	if (json_object_object_get_ex(r, "events", &a)) {
		if (!json_object_is_type(a, json_type_array))
			goto bad;
		n = json_object_array_length(a);
	}
	if (n == 0) {
		json_object_put(o);
		return 0;	/* a progress notice */
	}
	if ((evs = calloc(n, sizeof(*evs))) == NULL ||
	    (bufs = calloc(2 * n, sizeof(*bufs))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		ev = json_object_array_get_idx(a, i);
		if (!json_object_is_type(ev, json_type_object) ||
		    !json_object_object_get_ex(ev, "kv", &kv) ||
		    parse_kv(kv, &evs[i].kv, bufs, &nbufs) == -1)
			goto bad;
		evs[i].type = ETCD_EV_PUT;
		if (json_object_object_get_ex(ev, "type", &t)) {
			if (json_object_is_type(t, json_type_string) &&
			    strcmp(json_object_get_string(t), "DELETE") == 0)
				evs[i].type = ETCD_EV_DELETE;
			else if (!json_object_is_type(t, json_type_string) ||
			    strcmp(json_object_get_string(t), "PUT") != 0)
				goto bad;
		}
	}
	w->e->st.watch_events += n;
	w->fn(w->arg, ETCD_W_EVENTS, evs, n, rev, NULL);
	for (i = 0; i < nbufs; i++)
		free(bufs[i]);
	free(bufs);
	free(evs);
	json_object_put(o);
	return 0;
bad:
	snprintf(why, sizeof(why), "a watch message from etcd has an "
	    "unexpected shape");
	goto fail;
nomem:
	snprintf(why, sizeof(why), "out of memory");
fail:
	for (i = 0; i < nbufs; i++)
		free(bufs[i]);
	free(bufs);
	free(evs);
	json_object_put(o);
	watch_over(w, ETCD_W_ERROR, 0, why);
	return -1;
}

/* Splits what arrived into messages, one a line. */
static void
watch_feed(struct etcd_watch *w, struct evbuffer *in)
{
	struct evbuffer_ptr p;
	size_t len;
	char *s;

	evbuffer_add_buffer(w->line, in);
	for (;;) {
		p = evbuffer_search_eol(w->line, NULL, &len, EVBUFFER_EOL_LF);
		if (p.pos < 0)
			break;
		s = (char *)evbuffer_pullup(w->line, p.pos + (ev_ssize_t)len);
		if (p.pos > 0 && watch_message(w, s, (size_t)p.pos) == -1)
			return;
		evbuffer_drain(w->line, (size_t)p.pos + len);
	}
	if (evbuffer_get_length(w->line) > w->e->max_response)
		watch_over(w, ETCD_W_ERROR, 0, "a watch message from etcd is "
		    "larger than the limit");
}

static void
watch_chunk_cb(struct evhttp_request *hreq, void *arg)
{
	struct etcd_watch *w = arg;

	if (w->over || hreq != w->hreq)
		return;
	if (evhttp_request_get_response_code(hreq) != 200) {
		watch_over(w, ETCD_W_ERROR, 0, "etcd refused the watch");
		return;
	}
	watch_feed(w, evhttp_request_get_input_buffer(hreq));
}

static void
watch_errcb(enum evhttp_request_error err, void *arg)
{
	struct etcd_watch *w = arg;

	w->http_err = (int)err;
}

static void
watch_done_cb(struct evhttp_request *hreq, void *arg)
{
	struct etcd_watch *w = arg;
	char why[200];

	if (w->over || w->hreq == NULL || (hreq && hreq != w->hreq))
		return;
	if (w->starting) {
		w->hreq = NULL;
		w->start_failed = 1;
		return;
	}
	if (hreq && evhttp_request_get_response_code(hreq) == 200) {
		watch_feed(w, evhttp_request_get_input_buffer(hreq));
		if (w->over)
			return;
		snprintf(why, sizeof(why), "etcd ended the watch stream");
	} else if (hreq && evhttp_request_get_response_code(hreq) != 0)
		snprintf(why, sizeof(why), "etcd refused the watch (HTTP %d)",
		    evhttp_request_get_response_code(hreq));
	else
		snprintf(why, sizeof(why), "watch: %s",
		    http_err_text(w->http_err));
	watch_over(w, ETCD_W_ERROR, 0, why);
}

int
etcd_watch_start(struct etcd_watch *w, const void *key, size_t klen,
    const void *range_end, size_t rlen, int64_t start_rev)
{
	struct etcd *e = w->e;
	json_object *o, *cr;
	struct evkeyvalq *hdr;
	const char *s;
	size_t len;
	int rc;

	etcd_watch_stop(w);
	w->over = 0;
	w->http_err = 0;
	if ((o = json_object_new_object()) == NULL)
		return -1;
	if ((cr = range_body(key, klen, range_end, rlen)) == NULL ||
	    (start_rev && add_i64(cr, "start_revision", start_rev) == -1)) {
		json_object_put(cr);
		json_object_put(o);
		return -1;
	}
	json_object_object_add(o, "create_request", cr);
	if ((w->conn = conn_open(e, WATCH_IDLE_S)) == NULL ||
	    (w->hreq = evhttp_request_new(watch_done_cb, w)) == NULL) {
		json_object_put(o);
		if (w->conn) {
			conn_retire(e, w->conn);
			w->conn = NULL;
		}
		return -1;
	}
	evhttp_request_set_chunked_cb(w->hreq, watch_chunk_cb);
	evhttp_request_set_error_cb(w->hreq, watch_errcb);
	hdr = evhttp_request_get_output_headers(w->hreq);
	evhttp_add_header(hdr, "Host", e->eps[e->cur].host);
	evhttp_add_header(hdr, "Content-Type", "application/json");
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	rc = s ? evbuffer_add(evhttp_request_get_output_buffer(w->hreq), s,
	    len) : -1;
	json_object_put(o);
	if (rc == -1) {
		evhttp_request_free(w->hreq);
		w->hreq = NULL;
		etcd_watch_stop(w);
		return -1;
	}
	w->starting = 1;
	w->start_failed = 0;
	rc = evhttp_make_request(w->conn->evcon, w->hreq, EVHTTP_REQ_POST,
	    "/v3/watch");
	w->starting = 0;
	if (rc == -1 || w->start_failed) {
		/* libevent owns the request either way. */
		w->hreq = NULL;
		conn_retire(e, w->conn);
		w->conn = NULL;
		e->cur = (e->cur + 1) % e->neps;
		return -1;
	}
	return 0;
}
