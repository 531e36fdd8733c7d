/*
 * test_etcd.c - broker/etcd.c, the etcd v3 JSON gateway client, against a
 * real etcd (started here on free loopback ports, stopped by pid) and,
 * for answers a real etcd never gives, against an evhttp server in the
 * test that answers with malformed, oversized and cancelling documents.
 */
#include <string.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../../broker/etcd.h"
#include "../etcdutil.h"
#include "../testutil.h"

static struct etu_cluster cl;
static struct event_base *base;
static struct etcd *ec;

/* ---- Driving the loop ---------------------------------------------------- */

struct got {
	int		 done;
	int		 err;
	char		 why[300];
	int64_t		 revision;
	int64_t		 lease_id;
	int64_t		 ttl;
	int64_t		 deleted;
	int64_t		 count;
	size_t		 nkvs;
	char		 keys[16][64];
	char		 vals[16][64];
	int64_t		 leases[16];
};

static void
on_res(void *arg, const struct etcd_res *r)
{
	struct got *g = arg;
	size_t i;

	g->done = 1;
	g->err = r->err;
	if (r->why)
		snprintf(g->why, sizeof(g->why), "%s", r->why);
	g->revision = r->revision;
	g->lease_id = r->lease_id;
	g->ttl = r->ttl;
	g->deleted = r->deleted;
	g->count = r->count;
	g->nkvs = r->nkvs;
	for (i = 0; i < r->nkvs && i < 16; i++) {
		snprintf(g->keys[i], 64, "%.*s", (int)r->kvs[i].klen,
		    r->kvs[i].key);
		snprintf(g->vals[i], 64, "%.*s", (int)r->kvs[i].vlen,
		    r->kvs[i].value);
		g->leases[i] = r->kvs[i].lease;
	}
}

/* Runs the loop until *flag or timeout_ms: 1 when flag was set. */
static int
run_until(int *flag, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct timeval tv = { 0, 10000 };

	while (!*flag && mono_ms() < end) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return *flag;
}

#define CALL(g, expr) do {						\
	memset(&(g), 0, sizeof(g));					\
	ck_assert_int_eq((expr), 0);					\
	ck_assert_msg(run_until(&(g).done, 5000), "no answer: " #expr);	\
} while (0)

static void
setup_etcd(void)
{
	char err[200];
	struct etcd_config c;

	ck_assert_int_eq(etu_start(&cl, tu_tmpdir(), 1, 20000), 0);
	base = event_base_new();
	memset(&c, 0, sizeof(c));
	c.endpoints = cl.endpoints;
	ec = etcd_new(base, &c, err, sizeof(err));
	ck_assert_msg(ec != NULL, "%s", err);
}

static void
teardown_etcd(void)
{
	etcd_free(ec);
	ec = NULL;
	event_base_free(base);
	base = NULL;
	etu_stop(&cl);
	tu_cleanup();
}

/* ---- Against a real etcd ------------------------------------------------- */

START_TEST(kv_roundtrip)
{
	struct got g, r;
	static const uint8_t bin[] = { 'b', 0, 0xff, '/' };
	uint8_t end[16];
	size_t elen;

	CALL(g, etcd_put(ec, "/t/a", 4, "one", 3, 0, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	ck_assert_int_gt(g.revision, 0);
	CALL(g, etcd_put(ec, "/t/b", 4, bin, sizeof(bin), 0, on_res, &g));
	ck_assert_int_eq(g.err, 0);
	CALL(g, etcd_put(ec, "/u/c", 4, "x", 1, 0, on_res, &g));
	elen = etcd_prefix_end("/t/", 3, end);
	CALL(r, etcd_range(ec, "/t/", 3, end, elen, 0, 0, on_res, &r));
	ck_assert_msg(r.err == 0, "%s", r.why);
	ck_assert_int_eq(r.nkvs, 2);
	ck_assert_int_eq(r.count, 2);
	ck_assert_str_eq(r.keys[0], "/t/a");
	ck_assert_str_eq(r.vals[0], "one");
	ck_assert_int_eq(r.revision, g.revision);
	/* At an older revision /t/b did not exist yet. */
	CALL(r, etcd_range(ec, "/t/", 3, end, elen, g.revision - 2, 0,
	    on_res, &r));
	ck_assert_int_eq(r.nkvs, 1);
	CALL(r, etcd_delete(ec, "/t/", 3, end, elen, on_res, &r));
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.deleted, 2);
	CALL(r, etcd_range(ec, "/t/", 3, end, elen, 0, 0, on_res, &r));
	ck_assert_int_eq(r.nkvs, 0);
	ck_assert_int_eq(etcd_stats(ec)->errors, 0);
	ck_assert_int_ge(etcd_stats(ec)->requests, 7);
}
END_TEST

START_TEST(lease_life)
{
	struct got g, r;
	int64_t id;

	CALL(g, etcd_lease_grant(ec, 5, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	ck_assert_int_ne(g.lease_id, 0);
	ck_assert_int_eq(g.ttl, 5);
	id = g.lease_id;
	CALL(g, etcd_put(ec, "/l/k", 4, "v", 1, id, on_res, &g));
	ck_assert_int_eq(g.err, 0);
	CALL(r, etcd_range(ec, "/l/k", 4, NULL, 0, 0, 0, on_res, &r));
	ck_assert_int_eq(r.nkvs, 1);
	ck_assert_int_eq(r.leases[0], id);
	CALL(g, etcd_lease_keepalive(ec, id, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	ck_assert_int_eq(g.ttl, 5);
	CALL(g, etcd_lease_revoke(ec, id, on_res, &g));
	ck_assert_int_eq(g.err, 0);
	/* The key went with the lease; the lease is gone for good. */
	CALL(r, etcd_range(ec, "/l/k", 4, NULL, 0, 0, 0, on_res, &r));
	ck_assert_int_eq(r.nkvs, 0);
	CALL(g, etcd_lease_keepalive(ec, id, on_res, &g));
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.ttl, 0);
	CALL(g, etcd_put(ec, "/l/k", 4, "v", 1, id, on_res, &g));
	ck_assert_int_eq(g.err, ETCD_ENOLEASE);
	ck_assert_msg(strstr(g.why, "lease not found") != NULL, "%s", g.why);
}
END_TEST

START_TEST(txn_batch)
{
	struct etcd_txn *t;
	struct got g, r;
	uint8_t end[8];
	char k[16];
	int i;

	ck_assert_ptr_nonnull(t = etcd_txn_new());
	for (i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "/x/%02d", i);
		ck_assert_int_eq(etcd_txn_put(t, k, strlen(k), k, strlen(k),
		    0), 0);
	}
	ck_assert_int_eq(etcd_txn_ops(t), 10);
	CALL(g, etcd_txn_send(ec, t, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	ck_assert_ptr_nonnull(t = etcd_txn_new());
	etcd_txn_delete(t, "/x/00", 5);
	etcd_txn_put(t, "/x/10", 5, "new", 3, 0);
	CALL(r, etcd_txn_send(ec, t, on_res, &r));
	ck_assert_int_eq(r.err, 0);
	/* One revision per transaction. */
	ck_assert_int_eq(r.revision, g.revision + 1);
	CALL(r, etcd_range(ec, "/x/", 3, end, etcd_prefix_end("/x/", 3, end),
	    0, 0, on_res, &r));
	ck_assert_int_eq(r.nkvs, 10);
	ck_assert_str_eq(r.keys[0], "/x/01");
	ck_assert_str_eq(r.vals[9], "new");
}
END_TEST

struct wgot {
	int	 created;
	int	 over;
	enum etcd_watch_what what;
	int64_t	 rev;
	int	 n;
	int	 types[64];
	char	 keys[64][32];
	int64_t	 revs[64];
	char	 why[200];
};

static void
on_watch(void *arg, enum etcd_watch_what what, const struct etcd_event *evs,
    size_t nev, int64_t rev, const char *why)
{
	struct wgot *w = arg;
	size_t i;

	switch (what) {
	case ETCD_W_CREATED:
		w->created = 1;
		return;
	case ETCD_W_EVENTS:
		for (i = 0; i < nev && w->n < 64; i++, w->n++) {
			w->types[w->n] = evs[i].type;
			snprintf(w->keys[w->n], 32, "%.*s",
			    (int)evs[i].kv.klen, evs[i].kv.key);
			w->revs[w->n] = evs[i].kv.mod_revision;
		}
		return;
	default:
		w->over = 1;
		w->what = what;
		w->rev = rev;
		snprintf(w->why, sizeof(w->why), "%s", why ? why : "");
		return;
	}
}

START_TEST(watch_order)
{
	struct etcd_watch *w;
	struct wgot wg;
	struct got g;
	uint8_t end[8];
	size_t elen = etcd_prefix_end("/w/", 3, end);
	int64_t first;
	int i;

	memset(&wg, 0, sizeof(wg));
	CALL(g, etcd_put(ec, "/w/old", 6, "1", 1, 0, on_res, &g));
	first = g.revision;
	ck_assert_ptr_nonnull(w = etcd_watch_new(ec, on_watch, &wg));
	/* From a past revision: the old put comes first. */
	ck_assert_int_eq(etcd_watch_start(w, "/w/", 3, end, elen, first), 0);
	ck_assert(run_until(&wg.created, 5000));
	CALL(g, etcd_put(ec, "/w/a", 4, "1", 1, 0, on_res, &g));
	CALL(g, etcd_put(ec, "/other", 6, "1", 1, 0, on_res, &g));
	CALL(g, etcd_delete(ec, "/w/a", 4, NULL, 0, on_res, &g));
	for (i = 0; i < 100 && wg.n < 3; i++) {
		int never = 0;

		run_until(&never, 20);
	}
	ck_assert_int_eq(wg.n, 3);
	ck_assert_str_eq(wg.keys[0], "/w/old");
	ck_assert_int_eq(wg.types[0], ETCD_EV_PUT);
	ck_assert_str_eq(wg.keys[1], "/w/a");
	ck_assert_int_eq(wg.types[2], ETCD_EV_DELETE);
	ck_assert_int_lt(wg.revs[0], wg.revs[1]);
	ck_assert_int_lt(wg.revs[1], wg.revs[2]);
	ck_assert_int_eq(wg.over, 0);
	etcd_watch_free(w);
}
END_TEST

START_TEST(watch_compacted)
{
	struct etcd_watch *w;
	struct wgot wg;
	struct got g;
	char out[256];
	int64_t first;
	int i;

	memset(&wg, 0, sizeof(wg));
	CALL(g, etcd_put(ec, "/c/a", 4, "1", 1, 0, on_res, &g));
	first = g.revision;
	for (i = 0; i < 3; i++)
		CALL(g, etcd_put(ec, "/c/a", 4, "2", 1, 0, on_res, &g));
	ck_assert_int_eq(tu_sh(10, out, sizeof(out), "ETCDCTL_API=3 etcdctl "
	    "--endpoints=%s compact %lld >/dev/null 2>&1", cl.endpoints,
	    (long long)g.revision), 0);
	ck_assert_ptr_nonnull(w = etcd_watch_new(ec, on_watch, &wg));
	ck_assert_int_eq(etcd_watch_start(w, "/c/", 3, NULL, 0, first), 0);
	ck_assert(run_until(&wg.over, 5000));
	ck_assert_int_eq(wg.what, ETCD_W_COMPACTED);
	ck_assert_int_eq(wg.rev, g.revision);
	etcd_watch_free(w);
}
END_TEST

START_TEST(endpoint_failover)
{
	struct etcd_config c;
	struct etcd *e2;
	struct got g;
	char eps[200], err[200];

	/* The first endpoint refuses connections. */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", free_port(),
	    cl.endpoints);
	memset(&c, 0, sizeof(c));
	c.endpoints = eps;
	ck_assert_ptr_nonnull(e2 = etcd_new(base, &c, err, sizeof(err)));
	CALL(g, etcd_put(e2, "/f", 2, "1", 1, 0, on_res, &g));
	ck_assert_int_eq(g.err, ETCD_ECONNECT);
	ck_assert_str_eq(etcd_endpoint(e2), cl.endpoints);
	CALL(g, etcd_put(e2, "/f", 2, "1", 1, 0, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	etcd_free(e2);
}
END_TEST

START_TEST(bad_config)
{
	struct etcd_config c;
	char err[200];

	memset(&c, 0, sizeof(c));
	c.endpoints = "ftp://x:1";
	ck_assert_ptr_null(etcd_new(base, &c, err, sizeof(err)));
	ck_assert_msg(strstr(err, "want http") != NULL, "%s", err);
	c.endpoints = "";
	ck_assert_ptr_null(etcd_new(base, &c, err, sizeof(err)));
	c.endpoints = "https://127.0.0.1:1";
	c.tls_ca = "/nonexistent/ca.pem";
	ck_assert_ptr_null(etcd_new(base, &c, err, sizeof(err)));
	ck_assert_msg(strstr(err, "CA") != NULL, "%s", err);
}
END_TEST

/* TLS to etcd: with the CA and a client certificate it works, watch
 * included; without the certificate, or trusting another CA, it fails. */
START_TEST(tls)
{
	struct etcd_config c;
	struct etcd_watch *w;
	struct etcd *e;
	struct wgot wg;
	struct got g;
	char dir[300], ca[300], cert[300], key[300], other[300], err[200];

	snprintf(dir, sizeof(dir), "%s/certs", tu_tmpdir());
	ck_assert_int_eq(tu_sh(60, NULL, 0, "sh %s/tests/certs.sh %s",
	    getenv("SIPC_SRC") ? getenv("SIPC_SRC") : ".", dir), 0);
	ck_assert_int_eq(etu_start_tls(&cl, tu_tmpdir(), 1, 20000, dir), 0);
	ck_assert(strncmp(cl.endpoints, "https://", 8) == 0);
	base = event_base_new();
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/client.pem", dir);
	snprintf(key, sizeof(key), "%s/client.key", dir);
	snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
	memset(&c, 0, sizeof(c));
	c.endpoints = cl.endpoints;
	c.tls_ca = ca;
	c.tls_cert = cert;
	c.tls_key = key;
	ck_assert_ptr_nonnull(e = etcd_new(base, &c, err, sizeof(err)));
	CALL(g, etcd_put(e, "/tls/a", 6, "1", 1, 0, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	memset(&wg, 0, sizeof(wg));
	ck_assert_ptr_nonnull(w = etcd_watch_new(e, on_watch, &wg));
	ck_assert_int_eq(etcd_watch_start(w, "/tls/a", 6, NULL, 0,
	    g.revision), 0);
	ck_assert(run_until(&wg.created, 5000));
	while (wg.n < 1 && run_until(&wg.over, 50) == 0)
		;
	ck_assert_int_eq(wg.n, 1);
	ck_assert_str_eq(wg.keys[0], "/tls/a");
	CALL(g, etcd_range(e, "/tls/a", 6, NULL, 0, 0, 0, on_res, &g));
	ck_assert_int_eq(g.nkvs, 1);
	etcd_watch_free(w);
	etcd_free(e);
	/* No client certificate: etcd refuses the handshake. */
	c.tls_cert = c.tls_key = NULL;
	ck_assert_ptr_nonnull(e = etcd_new(base, &c, err, sizeof(err)));
	CALL(g, etcd_put(e, "/tls/b", 6, "1", 1, 0, on_res, &g));
	ck_assert_int_ne(g.err, 0);
	etcd_free(e);
	/* etcd's certificate is not from the CA we trust. */
	c.tls_ca = other;
	c.tls_cert = cert;
	c.tls_key = key;
	ck_assert_ptr_nonnull(e = etcd_new(base, &c, err, sizeof(err)));
	CALL(g, etcd_put(e, "/tls/b", 6, "1", 1, 0, on_res, &g));
	ck_assert_int_ne(g.err, 0);
	etcd_free(e);
	event_base_free(base);
	base = NULL;
	etu_stop(&cl);
	tu_cleanup();
}
END_TEST

/* ---- Against a bad server ------------------------------------------------ */

static const char *bad_body;

static void
bad_kv(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	(void)arg;
	evbuffer_add(b, bad_body, strlen(bad_body));
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
bad_watch(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	(void)arg;
	evhttp_send_reply_start(req, 200, "OK");
	evbuffer_add_printf(b, "{\"result\":{\"header\":{\"revision\":\"5\"},"
	    "\"created\":true}}\n%s", bad_body);
	evhttp_send_reply_chunk(req, b);
	evbuffer_free(b);
	/* Ended at once (a request left open would outlive evhttp_free()):
	 * the client must judge the message before the end of the stream. */
	evhttp_send_reply_end(req);
}

struct bad {
	struct evhttp	*http;
	struct etcd	*e;
	int		 port;
};

static void
bad_start(struct bad *s, size_t max_response)
{
	struct etcd_config c;
	char eps[64], err[200];

	base = event_base_new();
	ck_assert_ptr_nonnull(s->http = evhttp_new(base));
	evhttp_set_cb(s->http, "/v3/kv/range", bad_kv, NULL);
	evhttp_set_cb(s->http, "/v3/watch", bad_watch, NULL);
	s->port = free_port();
	ck_assert_int_eq(evhttp_bind_socket(s->http, "127.0.0.1",
	    (uint16_t)s->port), 0);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", s->port);
	memset(&c, 0, sizeof(c));
	c.endpoints = eps;
	c.max_response = max_response;
	c.timeout_ms = 2000;
	ck_assert_ptr_nonnull(s->e = etcd_new(base, &c, err, sizeof(err)));
}

static void
bad_stop(struct bad *s)
{
	etcd_free(s->e);
	evhttp_free(s->http);
	event_base_free(base);
	base = NULL;
}

START_TEST(bad_answers)
{
	static const char *bodies[] = {
		"not json at all",
		"[1,2,3]",
		"{\"kvs\":\"a string\"}",
		"{\"kvs\":[{\"key\":\"!!!notbase64\"}]}",
		"{\"header\":{\"revision\":\"12abc\"}}",
		"{\"kvs\":[{\"key\":\"YQ==\"}]} trailing",
		"{\"error\":\"boom\",\"code\":2,\"message\":\"boom\"}",
	};
	struct bad s;
	struct got g;
	size_t i;

	bad_start(&s, 4096);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		bad_body = bodies[i];
		CALL(g, etcd_range(s.e, "a", 1, NULL, 0, 0, 0, on_res, &g));
		ck_assert_msg(g.err == (i == 6 ? ETCD_ESERVER :
		    ETCD_EBADRESPONSE), "body %zu: err %d (%s)", i, g.err,
		    g.why);
	}
	/* Larger than the limit: refused before parsing. */
	{
		char *big = malloc(10000);

		memset(big, ' ', 9999);
		big[0] = '{';
		big[9998] = '}';
		big[9999] = '\0';
		bad_body = big;
		CALL(g, etcd_range(s.e, "a", 1, NULL, 0, 0, 0, on_res, &g));
		ck_assert_int_eq(g.err, ETCD_EBADRESPONSE);
		free(big);
	}
	/* A good one still works afterwards (on a new connection). */
	bad_body = "{\"header\":{\"revision\":\"7\"},\"kvs\":[{\"key\":\"YQ==\","
	    "\"value\":\"Yg==\",\"mod_revision\":\"7\"}],\"count\":\"1\"}";
	CALL(g, etcd_range(s.e, "a", 1, NULL, 0, 0, 0, on_res, &g));
	ck_assert_msg(g.err == 0, "%s", g.why);
	ck_assert_int_eq(g.revision, 7);
	ck_assert_str_eq(g.keys[0], "a");
	ck_assert_str_eq(g.vals[0], "b");
	bad_stop(&s);
}
END_TEST

static void
watch_case(const char *body, size_t max, enum etcd_watch_what want,
    const char *why)
{
	struct etcd_watch *w;
	struct wgot wg;
	struct bad s;

	memset(&wg, 0, sizeof(wg));
	bad_body = body;
	bad_start(&s, max);
	ck_assert_ptr_nonnull(w = etcd_watch_new(s.e, on_watch, &wg));
	ck_assert_int_eq(etcd_watch_start(w, "a", 1, NULL, 0, 0), 0);
	ck_assert(run_until(&wg.over, 5000));
	ck_assert_int_eq(wg.created, 1);
	ck_assert_int_eq(wg.what, want);
	ck_assert_msg(strstr(wg.why, why) != NULL, "%s", wg.why);
	etcd_watch_free(w);
	bad_stop(&s);
}

START_TEST(bad_watch_messages)
{
	static char big[3000];

	watch_case("garbage\n", 4096, ETCD_W_ERROR, "not a JSON object");
	watch_case("{\"result\":{\"events\":[{\"kv\":{\"key\":3}}]}}\n", 4096,
	    ETCD_W_ERROR, "unexpected shape");
	watch_case("{\"result\":{\"canceled\":true,\"cancel_reason\":"
	    "\"mvcc: required revision has been compacted\"}}\n", 4096,
	    ETCD_W_CANCELED, "compacted");
	watch_case("{\"result\":{\"compact_revision\":\"4\"}}\n", 4096,
	    ETCD_W_COMPACTED, "revision 4");
	watch_case("{\"error\":{\"grpc_code\":14,\"message\":\"unavailable\"}}"
	    "\n", 4096, ETCD_W_ERROR, "unavailable");
	/* A message with no end, past the limit. */
	memset(big, 'x', sizeof(big) - 1);
	watch_case(big, 1024, ETCD_W_ERROR, "larger than the limit");
}
END_TEST

static Suite *
etcd_suite(void)
{
	Suite *s = suite_create("etcd");
	TCase *tc = tcase_create("real");
	TCase *bad = tcase_create("bad");

	tcase_add_checked_fixture(tc, setup_etcd, teardown_etcd);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, kv_roundtrip);
	tcase_add_test(tc, lease_life);
	tcase_add_test(tc, txn_batch);
	tcase_add_test(tc, watch_order);
	tcase_add_test(tc, watch_compacted);
	tcase_add_test(tc, endpoint_failover);
	tcase_add_test(tc, bad_config);
	suite_add_tcase(s, tc);
	tcase_set_timeout(bad, 60);
	tcase_add_test(bad, tls);
	tcase_add_test(bad, bad_answers);
	tcase_add_test(bad, bad_watch_messages);
	suite_add_tcase(s, bad);
	return s;
}

int
main(void)
{
	return tu_run(etcd_suite());
}
