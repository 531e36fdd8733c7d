/*
 * clusterbench.c - bench-cluster: the broker cluster on etcd side by side
 * with a standalone sipc-epmd and with etcd used directly (issue 16).
 *
 *   bench-cluster --build DIR [--ms N] [--clients N] [--samples N]
 *
 * It starts a 1-node etcd (/usr/bin/etcd, or $SIPC_ETCD) in a temporary
 * directory on free loopback ports and, for each of three set-ups,
 * measures:
 *   reg/s      registrations/s with --clients (16) clients, each waiting
 *              for its answer before the next, for --ms (2,000) ms;
 *              brokers: REGISTER; cluster: the clients spread over the
 *              three brokers; etcd: lease grant plus put, as a client of
 *              etcd would register by itself;
 *   lookup/s   lookups/s at one broker (etcd: range of one key) by the
 *              same number of clients, for --ms;
 *   lookup     LOOKUP (range) round trips of one client, p50 and p99;
 *   join       REGISTER at broker A until the JOIN reaches a watcher at
 *              broker B (standalone: the same broker; etcd: put until the
 *              watch event), p50 and p99 of --samples (300).
 * The set-ups: "standalone" (one sipc-epmd), "cluster" (three sipc-epmd
 * --etcd on that etcd, lease TTL 10 s) and "etcd" (its JSON gateway
 * through broker/etcd.c, one connection per client).
 *
 * Prints a table and then one JSON object with every figure; exit 0, 1
 * on errors.  Everything it starts is stopped by pid.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../broker/etcd.h"
#include "../../proto/wire.h"
#include "../../tests/etcdutil.h"
#include "common.h"

#define IN_CAP		(1024 * 1024)
#define TIMEOUT_MS	10000
#define MAX_CLIENTS	64

static const char *build = "build";
static int	   run_ms = 2000;
static int	   nclients = 16;
static int	   nsamples = 300;

/* ---- Raw broker sessions ------------------------------------------------- */

struct sess {
	int		 fd;
	uint8_t		*in;
	uint8_t		*frame;		/* the payload sess_next() returns */
	size_t		 len;
	uint32_t	 reqid;
	struct wbuf	 out;
};

static void	sess_next(struct sess *, struct wire_header *,
		    const uint8_t **);

static void
sess_open(struct sess *s, int port)
{
	struct timeval tv = { TIMEOUT_MS / 1000, 0 };
	struct wire_hello m;
	struct wire_header h;
	const uint8_t *p;

	memset(s, 0, sizeof(*s));
	if ((s->fd = connect_loopback(port)) == -1)
		fatal_sys("connect to broker port %d", port);
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if ((s->in = malloc(IN_CAP)) == NULL ||
	    (s->frame = malloc(IN_CAP)) == NULL)
		fatal("out of memory");
	wbuf_init(&s->out, 4096);
	memset(&m, 0, sizeof(m));
	m.min_version = m.max_version = SIPC_PROTO_VERSION_MAX;
	m.heartbeat_ms = 30000;
	m.software.ptr = "bench-cluster";
	m.software.len = 13;
	m.host.ptr = "bench";
	m.host.len = 5;
	m.pid = (uint32_t)getpid();
	wire_enc_hello(&s->out, ++s->reqid, &m);
	if (write_full(s->fd, s->out.data, s->out.len) == -1)
		fatal_sys("send HELLO");
	wbuf_reset(&s->out);
	sess_next(s, &h, &p);
}

static void
sess_close(struct sess *s)
{
	close(s->fd);
	free(s->in);
	free(s->frame);
	wbuf_free(&s->out);
}

/* The next frame (PINGs answered); an ERROR is fatal. */
static void
sess_next(struct sess *s, struct wire_header *h, const uint8_t **p)
{
	struct wire_error e;
	uint64_t token;
	ssize_t r;

	for (;;) {
		if (s->len >= SIPC_HEADER_SIZE) {
			if (wire_header_decode(s->in, IN_CAP, h) != 0)
				fatal("bad frame from the broker");
			if (s->len >= SIPC_HEADER_SIZE + (size_t)h->len) {
				uint8_t *frame = s->frame;

				memcpy(frame, s->in + SIPC_HEADER_SIZE, h->len);
				memmove(s->in, s->in + SIPC_HEADER_SIZE +
				    h->len, s->len - SIPC_HEADER_SIZE - h->len);
				s->len -= SIPC_HEADER_SIZE + h->len;
				*p = frame;
				if (h->type == WIRE_PING) {
					wire_dec_u64(frame, h->len, &token);
					wire_enc_u64(&s->out, WIRE_PONG,
					    h->reqid, token);
					write_full(s->fd, s->out.data,
					    s->out.len);
					wbuf_reset(&s->out);
					continue;
				}
				break;
			}
		}
		r = recv(s->fd, s->in + s->len, IN_CAP - s->len, 0);
		if (r == 0)
			fatal("the broker closed the session");
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			fatal_sys("read from the broker");
		s->len += (size_t)r;
	}
	if (h->type == WIRE_ERROR) {
		if (wire_dec_error(*p, h->len, &e) == 0)
			fatal("broker: %s: %.*s", wire_errcode_name(e.code),
			    (int)e.text.len, e.text.ptr);
		fatal("broker: malformed ERROR");
	}
}

/* Sends s->out and waits for the answer to reqid. */
static void
sess_call(struct sess *s, uint32_t reqid, struct wire_header *h,
    const uint8_t **p)
{
	if (write_full(s->fd, s->out.data, s->out.len) == -1)
		fatal_sys("send to the broker");
	wbuf_reset(&s->out);
	do
		sess_next(s, h, p);
	while (!((h->type == WIRE_OK || h->type == WIRE_ERROR) &&
	    h->reqid == reqid));
}

static uint64_t
sess_register(struct sess *s, const char *handle, uint16_t port,
    uint32_t addr)
{
	struct wire_register m;
	struct wire_header h;
	const uint8_t *p;
	uint64_t id;
	uint32_t reqid = ++s->reqid;

	memset(&m, 0, sizeof(m));
	m.handle.ptr = handle;
	m.handle.len = (uint16_t)strlen(handle);
	m.instance = 1;
	m.ep.family = WIRE_AF_INET;
	m.ep.port = port;
	m.ep.addr[0] = 127;
	m.ep.addr[1] = (uint8_t)(addr >> 16);
	m.ep.addr[2] = (uint8_t)(addr >> 8);
	m.ep.addr[3] = (uint8_t)addr;
	wire_enc_register(&s->out, reqid, &m);
	sess_call(s, reqid, &h, &p);
	if (wire_dec_ok_register(p, h.len, &id) != 0)
		fatal("malformed OK(REGISTER)");
	return id;
}

static void
sess_lookup(struct sess *s, const char *handle)
{
	struct wire_header h;
	const uint8_t *p;
	uint32_t reqid = ++s->reqid;

	wire_enc_handle(&s->out, WIRE_LOOKUP, reqid, handle, strlen(handle));
	sess_call(s, reqid, &h, &p);
}

/* ---- Figures --------------------------------------------------------------- */

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double q)
{
	int i;

	qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
	i = (int)(q * (n - 1) + 0.5);
	return n ? v[i] : 0;
}

struct row {
	const char	*name;
	double		 reg_s;
	double		 lookup_s;
	double		 lookup_p50;
	double		 lookup_p99;
	double		 join_p50;
	double		 join_p99;
};

/* ---- Brokers --------------------------------------------------------------- */

struct worker {
	pthread_t	 t;
	int		 port;
	int		 idx;
	int		 lookup;	/* else register */
	long		 done;
	int64_t		 end_ms;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct sess s;
	char handle[40];
	uint32_t n = 0;

	sess_open(&s, w->port);
	if (w->lookup) {
		while (mono_ms() < w->end_ms) {
			sess_lookup(&s, "bench-lookup");
			w->done++;
		}
	} else {
		while (mono_ms() < w->end_ms) {
			/* A distinct endpoint per registration, 1,000 a
			 * handle (a handle holds 2,048 at most). */
			snprintf(handle, sizeof(handle), "bench-%d-%u", w->idx,
			    n / 1000);
			sess_register(&s, handle, (uint16_t)(1 + n % 60000),
			    (uint32_t)w->idx << 8 | (n / 60000));
			n++;
			w->done++;
		}
	}
	sess_close(&s);
	return NULL;
}

static double
broker_rate(const int *ports, int nports, int lookup)
{
	struct worker w[MAX_CLIENTS];
	int64_t t0 = mono_ms(), end = t0 + run_ms;
	long total = 0;
	int i;

	for (i = 0; i < nclients; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].port = ports[i % nports];
		w[i].idx = i;
		w[i].lookup = lookup;
		w[i].end_ms = end;
		if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0)
			fatal("pthread_create");
	}
	for (i = 0; i < nclients; i++) {
		pthread_join(w[i].t, NULL);
		total += w[i].done;
	}
	return (double)total * 1000.0 / (double)(mono_ms() - t0);
}

static void
broker_case(struct row *r, const int *ports, int nports)
{
	static double lat[100000];
	struct sess a, b, reg;
	struct wire_header h;
	const uint8_t *p;
	struct timespec t0, t1;
	uint64_t id;
	int i, n = 0;

	/* One receiver to look up, seen at every broker. */
	sess_open(&reg, ports[0]);
	sess_register(&reg, "bench-lookup", 9, 0xffffff);
	sleep_ms(300);
	r->reg_s = broker_rate(ports, nports, 0);
	r->lookup_s = broker_rate(ports, 1, 1);
	sess_open(&a, ports[0]);
	for (i = 0; i < nsamples * 10 && i < 100000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		sess_lookup(&a, "bench-lookup");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		lat[n++] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	r->lookup_p50 = pct(lat, n, 0.5);
	r->lookup_p99 = pct(lat, n, 0.99);
	/* JOIN at B of a REGISTER at A. */
	sess_open(&b, ports[nports > 1 ? 1 : 0]);
	wire_enc_handle(&b.out, WIRE_WATCH, ++b.reqid, "bench-join", 10);
	sess_call(&b, b.reqid, &h, &p);
	for (n = 0; n < nsamples; n++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		id = sess_register(&a, "bench-join", (uint16_t)(1000 + n), 7);
		do
			sess_next(&b, &h, &p);
		while (h.type != WIRE_JOIN);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		lat[n] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
		wire_enc_u64(&a.out, WIRE_UNREGISTER, ++a.reqid, id);
		sess_call(&a, a.reqid, &h, &p);
		do
			sess_next(&b, &h, &p);
		while (h.type != WIRE_LEAVE);
	}
	r->join_p50 = pct(lat, n, 0.5);
	r->join_p99 = pct(lat, n, 0.99);
	sess_close(&a);
	sess_close(&b);
	sess_close(&reg);
}

static pid_t
broker_start(const char *tmp, int i, const char *etcd, int *port)
{
	char portfile[400], epmd[400];
	char *extra[] = { "--max-registrations", "10000000",
	    "--log-level", "warn", "--etcd", (char *)etcd, NULL };
	pid_t pid;

	if (etcd == NULL)
		extra[4] = NULL;
	snprintf(epmd, sizeof(epmd), "%s/bin/sipc-epmd", build);
	snprintf(portfile, sizeof(portfile), "%s/broker%d.port", tmp, i);
	pid = epmd_spawn(epmd, "127.0.0.1:0", portfile, NULL, extra,
	    TIMEOUT_MS, port);
	if (pid == -1)
		fatal("%s did not start", epmd);
	kid_add(pid);
	return pid;
}

/* ---- etcd directly ----------------------------------------------------- */

struct eclient {
	struct etcd	*e;
	int		 idx;
	long		 done;
	int		 lookup;
	int		 busy;
	uint32_t	 n;
};

static struct event_base *ebase;
static int64_t e_end;
static int e_running;

static void	eclient_next(struct eclient *c);

static void
on_put(void *arg, const struct etcd_res *r)
{
	struct eclient *c = arg;

	if (r->err)
		fatal("etcd: %s", r->why);
	c->done++;
	eclient_next(c);
}

static void
on_grant(void *arg, const struct etcd_res *r)
{
	struct eclient *c = arg;
	char key[64];

	if (r->err)
		fatal("etcd: %s", r->why);
	snprintf(key, sizeof(key), "/bench/reg/%d/%u", c->idx, c->n++);
	if (etcd_put(c->e, key, strlen(key), "{\"endpoint\":\"127.0.0.1:1\"}",
	    26, r->lease_id, on_put, c) == -1)
		fatal("out of memory");
}

static void
on_range(void *arg, const struct etcd_res *r)
{
	struct eclient *c = arg;

	if (r->err)
		fatal("etcd: %s", r->why);
	c->done++;
	eclient_next(c);
}

static void
eclient_next(struct eclient *c)
{
	if (mono_ms() >= e_end) {
		if (--e_running == 0)
			event_base_loopbreak(ebase);
		return;
	}
	if (c->lookup)
		etcd_range(c->e, "/bench/lookup", 13, NULL, 0, 0, 0, on_range,
		    c);
	else
		etcd_lease_grant(c->e, 10, on_grant, c);
}

static struct etcd *
eclient_new(const char *endpoints)
{
	struct etcd_config ec;
	struct etcd *e;
	char err[256];

	memset(&ec, 0, sizeof(ec));
	ec.endpoints = endpoints;
	ec.timeout_ms = TIMEOUT_MS;
	if ((e = etcd_new(ebase, &ec, err, sizeof(err))) == NULL)
		fatal("etcd client: %s", err);
	return e;
}

static double
etcd_rate(const char *endpoints, int lookup)
{
	static struct eclient cs[MAX_CLIENTS];
	int64_t t0 = mono_ms();
	long total = 0;
	int i;

	e_end = t0 + run_ms;
	e_running = nclients;
	for (i = 0; i < nclients; i++) {
		memset(&cs[i], 0, sizeof(cs[i]));
		cs[i].e = eclient_new(endpoints);
		cs[i].idx = i;
		cs[i].lookup = lookup;
		eclient_next(&cs[i]);
	}
	event_base_dispatch(ebase);
	for (i = 0; i < nclients; i++) {
		total += cs[i].done;
		etcd_free(cs[i].e);
	}
	return (double)total * 1000.0 / (double)(mono_ms() - t0);
}

struct one {
	int		 done;
	int64_t		 t1_ns;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
on_one(void *arg, const struct etcd_res *r)
{
	struct one *o = arg;

	if (r->err)
		fatal("etcd: %s", r->why);
	o->done = 1;
	o->t1_ns = now_ns();
	event_base_loopbreak(ebase);
}

static void
on_wev(void *arg, enum etcd_watch_what what, const struct etcd_event *evs,
    size_t nev, int64_t rev, const char *why)
{
	struct one *o = arg;

	(void)evs;
	(void)rev;
	if (what == ETCD_W_CREATED)
		o->done = 1;
	else if (what == ETCD_W_EVENTS && nev > 0)
		o->done = 2;
	else if (what != ETCD_W_EVENTS)
		fatal("etcd watch: %s", why ? why : "?");
	o->t1_ns = now_ns();
	event_base_loopbreak(ebase);
}

static void
etcd_case(struct row *r, const char *endpoints)
{
	static double lat[100000];
	struct etcd *e = eclient_new(endpoints);
	struct etcd_watch *w;
	struct one o, wo;
	int64_t t0;
	int i, n = 0;
	char key[32];

	memset(&o, 0, sizeof(o));
	etcd_put(e, "/bench/lookup", 13, "x", 1, 0, on_one, &o);
	event_base_dispatch(ebase);
	r->reg_s = etcd_rate(endpoints, 0);
	r->lookup_s = etcd_rate(endpoints, 1);
	for (i = 0; i < nsamples * 10 && i < 100000; i++) {
		memset(&o, 0, sizeof(o));
		t0 = now_ns();
		etcd_range(e, "/bench/lookup", 13, NULL, 0, 0, 0, on_one, &o);
		while (!o.done)
			event_base_dispatch(ebase);
		lat[n++] = (double)(o.t1_ns - t0) / 1e3;
	}
	r->lookup_p50 = pct(lat, n, 0.5);
	r->lookup_p99 = pct(lat, n, 0.99);
	/* put until the watch event, on another connection */
	memset(&wo, 0, sizeof(wo));
	if ((w = etcd_watch_new(eclient_new(endpoints), on_wev, &wo)) == NULL)
		fatal("out of memory");
	{
		uint8_t end[32];
		size_t elen = etcd_prefix_end("/bench/join/", 12, end);

		if (etcd_watch_start(w, "/bench/join/", 12, end, elen, 0) ==
		    -1)
			fatal("cannot start the watch");
	}
	while (wo.done != 1)
		event_base_dispatch(ebase);
	for (n = 0; n < nsamples; n++) {
		snprintf(key, sizeof(key), "/bench/join/%d", n);
		wo.done = 0;
		memset(&o, 0, sizeof(o));
		t0 = now_ns();
		etcd_put(e, key, strlen(key), "x", 1, 0, on_one, &o);
		while (wo.done != 2 || !o.done)
			event_base_dispatch(ebase);
		lat[n] = (double)(wo.t1_ns - t0) / 1e3;
	}
	r->join_p50 = pct(lat, n, 0.5);
	r->join_p99 = pct(lat, n, 0.99);
	etcd_watch_free(w);
	etcd_free(e);
}

/* ---- Main ---------------------------------------------------------------- */

static void
print_rows(const struct row *rows, int n)
{
	int i;

	printf("%-12s %10s %10s %12s %12s %12s %12s\n", "set-up", "reg/s",
	    "lookup/s", "lookup p50", "lookup p99", "join p50", "join p99");
	for (i = 0; i < n; i++)
		printf("%-12s %10.0f %10.0f %10.0f us %10.0f us %10.0f us "
		    "%10.0f us\n", rows[i].name, rows[i].reg_s,
		    rows[i].lookup_s, rows[i].lookup_p50, rows[i].lookup_p99,
		    rows[i].join_p50, rows[i].join_p99);
	printf("\ncluster/standalone lookup p50: %.2fx (target <= 1.2x); "
	    "cluster/etcd reg/s: %.2fx (target >= 2x); cluster join p99 / "
	    "etcd put-to-watch p99: %.2fx (target <= 2x)\n",
	    rows[1].lookup_p50 / rows[0].lookup_p50, rows[1].reg_s /
	    rows[2].reg_s, rows[1].join_p99 / rows[2].join_p99);
	printf("{\"clients\":%d", nclients);
	for (i = 0; i < n; i++)
		printf(",\"%s\":{\"register_per_s\":%.0f,\"lookup_per_s\":%.0f,"
		    "\"lookup_p50_us\":%.1f,\"lookup_p99_us\":%.1f,"
		    "\"join_p50_us\":%.1f,\"join_p99_us\":%.1f}", rows[i].name,
		    rows[i].reg_s, rows[i].lookup_s, rows[i].lookup_p50,
		    rows[i].lookup_p99, rows[i].join_p50, rows[i].join_p99);
	printf("}\n");
}

int
main(int argc, char **argv)
{
	struct etu_cluster ec;
	struct row rows[3];
	char tmp[] = "/tmp/bench-cluster.XXXXXX", cmd[300];
	int ports[3], i, rc;
	pid_t pids[3];

	prog = "bench-cluster";
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--build") && i + 1 < argc)
			build = argv[++i];
		else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			run_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			nclients = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			nsamples = atoi(argv[++i]);
		else
			usage_error("bench-cluster --build DIR [--ms N] "
			    "[--clients N] [--samples N]");
	}
	if (run_ms < 100 || nclients < 1 || nclients > MAX_CLIENTS ||
	    nsamples < 10 || nsamples > 10000)
		usage_error("--ms >= 100, --clients 1..%d, --samples "
		    "10..10000", MAX_CLIENTS);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmp) == NULL)
		fatal_sys("mkdtemp");
	if ((ebase = event_base_new()) == NULL)
		fatal("event_base_new");
	memset(rows, 0, sizeof(rows));
	rows[0].name = "standalone";
	rows[1].name = "cluster";
	rows[2].name = "etcd";

	pids[0] = broker_start(tmp, 0, NULL, &ports[0]);
	broker_case(&rows[0], ports, 1);
	proc_stop(pids[0], 3000);

	if (etu_start(&ec, tmp, 1, 20000) == -1)
		fatal("etcd did not start");
	for (i = 0; i < 3; i++)
		pids[i] = broker_start(tmp, i, ec.endpoints, &ports[i]);
	broker_case(&rows[1], ports, 3);
	for (i = 0; i < 3; i++)
		proc_stop(pids[i], 3000);
	etcd_case(&rows[2], ec.endpoints);
	etu_stop(&ec);

	print_rows(rows, 3);
	event_base_free(ebase);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	rc = system(cmd);
	(void)rc;
	kids_reap(1000);
	return 0;
}
