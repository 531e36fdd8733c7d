/*
 * bench_rpc.c - sipc bench rpc: request/reply measured against a
 * responder in a process of its own ("sipc reply", echoing):
 *
 *   rtt       synchronous requests one after another: round trip
 *             percentiles
 *   pipeline  asynchronous requests, --window of them outstanding at
 *             every moment: requests per second
 *   first     a new requester each time (create, connect, one round
 *             trip, close): percentiles
 *   clients   --clients (5,000) requesters at once, each made for its one
 *             request, from --procs (10) processes of as many threads,
 *             against --responders (4) responders: failures (must be 0),
 *             the time for all and each one's percentiles (the issue's
 *             "5,000 parallel clients")
 *
 * Every reply is checked against its request (the echo must be exact).
 */
#include <sys/resource.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/jsonout.h"
#include "bench_int.h"
#include "opts.h"

extern char **environ;

struct rpc_opts {
	long		 size;
	long		 count;
	long		 window;
	long		 first;		/* new requesters in "first" */
	long		 clients;
	long		 procs;
	long		 responders;
	int		 json;
	const char	*cases;		/* "rtt,pipeline,first" */
};

struct rpc_result {
	int64_t		*rtt;		/* ns, sorted */
	size_t		 nrtt;
	double		 per_s;		/* pipeline */
	int64_t		*first;
	size_t		 nfirst;
	int64_t		*client;	/* clients: each one's time */
	size_t		 nclient;
	double		 clients_s;
	double		 seconds;	/* the whole measurement */
	uint64_t	 bad;		/* replies not equal to the request */
	uint64_t	 failed;
	double		 cpu_ns;	/* pipeline: ours, per request */
	double		 cpu_all;	/* ours in all, ns */
};

struct pipe_state {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	sipc_requester	*rq;
	uint8_t		*msg;		/* read only while it runs */
	size_t		 len;
	atomic_long	 sent;
	atomic_long	 done;
	long		 total;
	uint64_t	 bad;
	uint64_t	 failed;
};

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const int64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	if (n == 0)
		return 0;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

/* Starts "sipc reply HANDLE" as a child: its pid, or -1. */
static pid_t
spawn_responder(const char *handle, const char *broker)
{
	char *argv[] = { "sipc", "reply", (char *)handle, "--broker",
	    (char *)broker, NULL };
	pid_t pid;

	if (broker == NULL)
		argv[3] = NULL;
	if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv,
	    environ) != 0)
		return -1;
	return pid;
}

static int
check(const struct sipc_reply *r, const uint8_t *msg, size_t len)
{
	return r->len == len && memcmp(r->data, msg, len) == 0;
}

/* Waits until the responder answers (it registers after it starts). */
static int
wait_responder(sipc_requester *rq, long timeout_ms)
{
	struct sipc_reply *r;
	int64_t end = bench_now_ns() + timeout_ms * 1000000;
	int rc;

	do {
		r = NULL;
		rc = sipc_request(rq, "hi", 2, 1000, 0, &r);
		sipc_reply_free(r);
		if (rc == 0)
			return 0;
		usleep(10000);
	} while (bench_now_ns() < end);
	fprintf(stderr, "sipc bench rpc: no responder answered: %s\n",
	    sipc_strerror(rc));
	return -1;
}

static int
run_rtt(sipc_requester *rq, const struct rpc_opts *o, uint8_t *msg,
    struct rpc_result *res)
{
	struct sipc_reply *r;
	long i, warm = o->count / 10 + 1;
	int64_t t0;

	if ((res->rtt = calloc((size_t)o->count, sizeof(int64_t))) == NULL)
		return -1;
	for (i = 0; i < warm + o->count; i++) {
		bench_put64(msg + 8, (uint64_t)i);
		r = NULL;
		t0 = bench_now_ns();
		if (sipc_request(rq, msg, (size_t)o->size, 10000, 0, &r) !=
		    0) {
			res->failed++;
			continue;
		}
		if (i >= warm)
			res->rtt[res->nrtt++] = bench_now_ns() - t0;
		res->bad += !check(r, msg, (size_t)o->size);
		sipc_reply_free(r);
	}
	qsort(res->rtt, res->nrtt, sizeof(int64_t), cmp64);
	return 0;
}

static int	pipe_next(struct pipe_state *p);

/* On the I/O thread: one answer in, the next request out. */
static void
pipe_reply(sipc_requester *rq, uint64_t id, const struct sipc_reply *r,
    void *arg)
{
	struct pipe_state *p = arg;

	(void)rq;
	(void)id;
	if (r->error)
		p->failed++;
	else if (r->len != p->len || memcmp(r->data, p->msg, p->len) != 0)
		p->bad++;
	if (pipe_next(p) == -1) {	/* never sent: done too */
		p->failed++;
		atomic_fetch_add(&p->done, 1);
	}
	if (atomic_fetch_add(&p->done, 1) + 1 >= p->total) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

/* Sends the next request, if any is left: 0, or -1 when it failed. */
static int
pipe_next(struct pipe_state *p)
{
	if (atomic_fetch_add(&p->sent, 1) >= p->total)
		return 0;
	return sipc_request_async(p->rq, p->msg, p->len, 10000, 0,
	    pipe_reply, p, NULL) == 0 ? 0 : -1;
}

static int
run_pipeline(sipc_requester *rq, const struct rpc_opts *o, uint8_t *msg,
    struct rpc_result *res)
{
	struct pipe_state p;
	int64_t t0, c0;
	long i;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	p.rq = rq;
	p.msg = msg;
	p.len = (size_t)o->size;
	p.total = o->count;
	t0 = bench_now_ns();
	c0 = bench_cpu_ns(RUSAGE_SELF);
	/* The first window from here; each answer sends the next. */
	for (i = 0; i < o->window; i++)
		if (pipe_next(&p) == -1) {
			fprintf(stderr, "sipc bench rpc: cannot send\n");
			return -1;
		}
	pthread_mutex_lock(&p.mu);
	while (atomic_load(&p.done) < p.total)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	res->per_s = (double)o->count / ((double)(bench_now_ns() - t0) / 1e9);
	res->cpu_ns = (double)(bench_cpu_ns(RUSAGE_SELF) - c0) /
	    (double)o->count;
	res->bad += p.bad;
	res->failed += p.failed;
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	return 0;
}

static int
run_first(sipc_epm *epm, const char *handle, const struct rpc_opts *o,
    uint8_t *msg, struct rpc_result *res)
{
	struct sipc_reply *r;
	sipc_requester *rq;
	long i, n = o->first;
	int64_t t0;

	if ((res->first = calloc((size_t)n, sizeof(int64_t))) == NULL)
		return -1;
	for (i = 0; i < n + 10; i++) {
		t0 = bench_now_ns();
		if (sipc_requester_new(handle, epm, NULL, &rq) != 0) {
			res->failed++;
			continue;
		}
		r = NULL;
		if (sipc_request(rq, msg, (size_t)o->size, 10000, 0, &r) == 0) {
			if (i >= 10)
				res->first[res->nfirst++] = bench_now_ns() - t0;
			res->bad += !check(r, msg, (size_t)o->size);
		} else
			res->failed++;
		sipc_reply_free(r);
		sipc_requester_close(rq);
	}
	qsort(res->first, res->nfirst, sizeof(int64_t), cmp64);
	return 0;
}

/* ---- clients: many requesters at once, in processes of their own ------- */

struct client {
	sipc_epm		*epm;
	const char		*handle;
	pthread_barrier_t	*go;
	int			 n;
	int64_t			 ns;	/* -1: failed */
};

static void *
client_main(void *arg)
{
	struct client *c = arg;
	struct sipc_reply *r = NULL;
	sipc_requester *rq;
	char data[64];
	int64_t t0;

	pthread_barrier_wait(c->go);
	snprintf(data, sizeof(data), "client %ld.%d", (long)getpid(), c->n);
	t0 = bench_now_ns();
	c->ns = -1;
	if (sipc_requester_new(c->handle, c->epm, NULL, &rq) != 0)
		return NULL;
	if (sipc_request(rq, data, strlen(data), 60000, 0, &r) == 0 &&
	    r->len == strlen(data) && memcmp(r->data, data, r->len) == 0)
		c->ns = bench_now_ns() - t0;
	sipc_reply_free(r);
	sipc_requester_close(rq);
	return NULL;
}

/*
 * "sipc bench rpc-clients HANDLE THREADS [BROKER]": one process of
 * clients.  Says "r" on standard output when its threads wait; they go
 * when standard input ends; then writes, binary, how many answered and
 * each one's time (ns).
 */
int
bench_rpc_clients(int argc, char **argv)
{
	static struct client c[100000];
	pthread_barrier_t go;
	pthread_attr_t a;
	pthread_t *th;
	sipc_epm *epm;
	uint32_t n = 0;
	long threads, i;
	char x;

	if (argc < 2 || (threads = atol(argv[1])) < 1 || threads > 100000)
		return 2;
	if ((argc > 2 ? sipc_epm_connect(argv[2], NULL, &epm) :
	    sipc_epm_local(&epm)) != 0 ||
	    (th = calloc((size_t)threads, sizeof(*th))) == NULL)
		return 1;
	pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 128 * 1024);
	for (i = 0; i < threads; i++) {
		c[i].epm = epm;
		c[i].handle = argv[0];
		c[i].go = &go;
		c[i].n = (int)i;
		if (pthread_create(&th[i], &a, client_main, &c[i]) != 0)
			return 1;
	}
	if (write(1, "r", 1) != 1)
		return 1;
	while (read(0, &x, 1) > 0)
		;
	pthread_barrier_wait(&go);
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		n += c[i].ns >= 0;
	}
	if (write(1, &n, sizeof(n)) != sizeof(n))
		return 1;
	for (i = 0; i < threads; i++)
		if (c[i].ns >= 0 && write(1, &c[i].ns, sizeof(c[i].ns)) !=
		    sizeof(c[i].ns))
			return 1;
	sipc_epm_close(epm);
	free(th);
	return 0;
}

static int
read_all(int fd, void *buf, size_t n)
{
	ssize_t r;
	size_t off = 0;

	while (off < n) {
		r = read(fd, (char *)buf + off, n - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static int
run_clients(struct bench *b, const struct rpc_opts *o, int nresp,
    struct rpc_result *res)
{
	posix_spawn_file_actions_t fa;
	char threads[32];
	char *argv[] = { "sipc", "bench", "rpc-clients", b->handle, threads,
	    (char *)b->o.broker, NULL };
	int in[100][2], out[100][2], status;
	pid_t pid[100];
	uint32_t n;
	int64_t t0;
	long p, k;
	char x;

	(void)nresp;
	snprintf(threads, sizeof(threads), "%ld", o->clients / o->procs);
	if ((res->client = calloc((size_t)o->clients, sizeof(int64_t))) ==
	    NULL)
		return -1;
	for (p = 0; p < o->procs; p++) {
		if (pipe2(in[p], O_CLOEXEC) == -1 ||
		    pipe2(out[p], O_CLOEXEC) == -1)
			return -1;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, in[p][0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[p][1], 1);
		if (posix_spawn(&pid[p], "/proc/self/exe", &fa, NULL, argv,
		    environ) != 0)
			return -1;
		posix_spawn_file_actions_destroy(&fa);
		close(in[p][0]);
		close(out[p][1]);
	}
	for (p = 0; p < o->procs; p++)
		if (read_all(out[p][0], &x, 1) == -1)
			return -1;
	t0 = bench_now_ns();
	for (p = 0; p < o->procs; p++)
		close(in[p][1]);		/* all at once */
	for (p = 0; p < o->procs; p++) {
		if (read_all(out[p][0], &n, sizeof(n)) == -1)
			return -1;
		for (k = 0; k < (long)n && res->nclient < (size_t)o->clients;
		    k++)
			if (read_all(out[p][0], &res->client[res->nclient++],
			    sizeof(int64_t)) == -1)
				return -1;
		close(out[p][0]);
		while (waitpid(pid[p], &status, 0) == -1 && errno == EINTR)
			;
	}
	res->clients_s = (double)(bench_now_ns() - t0) / 1e9;
	res->failed += (uint64_t)(o->procs * (o->clients / o->procs)) -
	    res->nclient;
	qsort(res->client, res->nclient, sizeof(int64_t), cmp64);
	return 0;
}

static void
print(const struct bench *b, const struct rpc_opts *o,
    const struct rpc_result *r)
{
	const char *mode = b->o.broker ? "broker" : "local";

	if (o->json) {
		/* The keys of make bench: one case, generic names. */
		const int64_t *v = r->nrtt ? r->rtt : r->first;
		size_t n = r->nrtt ? r->nrtt : r->nfirst;
		struct json_object *j = json_object_new_object();
		int err = 0;

		err |= jo_add(j, "case", jo_cstr("rpc"));
		err |= jo_add(j, "impl", jo_cstr(b->o.broker ? "sipc_tcp" :
		    "sipc_local"));
		err |= jo_add(j, "cases", jo_cstr(o->cases));
		err |= jo_add(j, "size", jo_i64(o->size));
		err |= jo_add(j, "count", jo_i64(o->count));
		err |= jo_add(j, "window", jo_i64(o->window));
		err |= jo_add(j, "seconds", jo_num(r->seconds, "%.6f"));
		if (n) {
			err |= jo_add(j, "p50_us", jo_num(pct(v, n, 0.5),
			    "%.3f"));
			err |= jo_add(j, "p99_us", jo_num(pct(v, n, 0.99),
			    "%.3f"));
			err |= jo_add(j, "p999_us", jo_num(pct(v, n, 0.999),
			    "%.3f"));
		}
		if (r->per_s > 0)
			err |= jo_add(j, "requests_per_s", jo_num(r->per_s,
			    "%.0f"));
		if (r->clients_s > 0) {
			err |= jo_add(j, "clients", jo_i64(o->clients));
			err |= jo_add(j, "clients_answered",
			    jo_u64(r->nclient));
			err |= jo_add(j, "clients_s", jo_num(r->clients_s,
			    "%.3f"));
			err |= jo_add(j, "client_p50_ms", jo_num(pct(r->client,
			    r->nclient, 0.5) / 1000, "%.3f"));
			err |= jo_add(j, "client_p99_ms", jo_num(pct(r->client,
			    r->nclient, 0.99) / 1000, "%.3f"));
		}
		err |= jo_add(j, "cpu_ns_per_message", jo_num(r->per_s > 0 ?
		    r->cpu_ns : n ? r->cpu_all / (double)n : 0, "%.0f"));
		err |= jo_add(j, "lost", jo_u64(r->failed));
		err |= jo_add(j, "errors", jo_u64(r->bad));
		if (err || jo_write(stdout, j, JO_SPACED) == -1)
			fprintf(stderr, "sipc bench rpc: cannot write the JSON "
			    "result\n");
		json_object_put(j);
		return;
	}
	printf("sipc bench rpc: %ld B requests, %s, responder: sipc reply "
	    "(a process of its own)\n", o->size, mode);
	if (r->nrtt)
		printf("  rtt        %zu x: p50 %.1f us  p99 %.1f us\n",
		    r->nrtt, pct(r->rtt, r->nrtt, 0.5),
		    pct(r->rtt, r->nrtt, 0.99));
	if (r->per_s > 0)
		printf("  pipeline   %ld outstanding: %.0f requests/s, %.0f "
		    "CPU ns per request here\n", o->window, r->per_s,
		    r->cpu_ns);
	if (r->nfirst)
		printf("  first      %zu new requesters: p50 %.1f us  p99 %.1f "
		    "us (create, connect, round trip)\n", r->nfirst,
		    pct(r->first, r->nfirst, 0.5),
		    pct(r->first, r->nfirst, 0.99));
	if (r->clients_s > 0)
		printf("  clients    %ld at once from %ld processes, %ld "
		    "responders: %zu answered in %.0f ms, each p50 %.1f ms  "
		    "p99 %.1f ms\n", o->clients, o->procs, o->responders,
		    r->nclient, r->clients_s * 1000,
		    pct(r->client, r->nclient, 0.5) / 1000,
		    pct(r->client, r->nclient, 0.99) / 1000);
	printf("  checked    %llu wrong replies, %llu failed\n",
	    (unsigned long long)r->bad, (unsigned long long)r->failed);
}

static int
parse(int argc, char **argv, struct bench *b, struct rpc_opts *o)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(a, "--local")) {
			b->o.broker = NULL;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc bench rpc: unknown option or "
			    "missing value: %s\n", a);
			return -1;
		}
		i++;
		if (!strcmp(a, "--size")) {
			if (cli_parse_long(a, val, 16, MAX_SIZE, &o->size))
				return -1;
		} else if (!strcmp(a, "--count")) {
			if (cli_parse_long(a, val, 1, 100000000, &o->count))
				return -1;
		} else if (!strcmp(a, "--clients")) {
			if (cli_parse_long(a, val, 1, 100000, &o->clients))
				return -1;
		} else if (!strcmp(a, "--procs")) {
			if (cli_parse_long(a, val, 1, 100, &o->procs))
				return -1;
		} else if (!strcmp(a, "--responders")) {
			if (cli_parse_long(a, val, 1, 64, &o->responders))
				return -1;
		} else if (!strcmp(a, "--window")) {
			if (cli_parse_long(a, val, 1, 100000, &o->window))
				return -1;
		} else if (!strcmp(a, "--broker"))
			b->o.broker = val;
		else if (!strcmp(a, "--cases"))
			o->cases = val;
		else {
			fprintf(stderr, "sipc bench rpc: unknown option %s\n",
			    a);
			return -1;
		}
	}
	return 0;
}

int
bench_rpc(int argc, char **argv)
{
	struct rpc_opts o = { 64, 20000, 64, 0, 5000, 10, 4, 0,
	    "rtt,pipeline,first" };
	struct rpc_result res;
	struct bench *b;
	sipc_requester *rq = NULL;
	uint8_t *msg = NULL;
	pid_t kids[64];
	int64_t t0, c0;
	int ret = 1, status, nkids = 0, i;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return 1;
	b->o.timeout_ms = 10000;
	b->o.broker = getenv("SIPC_BROKER");
	memset(&res, 0, sizeof(res));
	if (parse(argc, argv, b, &o) == -1) {
		free(b);
		return 2;
	}
	snprintf(b->handle, sizeof(b->handle), "sipc-bench-rpc.%ld",
	    (long)getpid());
	if ((b->o.broker == NULL && bench_tmpdir_make(b) == -1) ||
	    bench_epm(b, &b->epm) == -1)
		goto out;
	/* One responder, or --responders for "clients". */
	for (i = 0; i < (strstr(o.cases, "clients") ? o.responders : 1);
	    i++) {
		if ((kids[nkids] = spawn_responder(b->handle,
		    b->o.broker)) == -1) {
			fprintf(stderr, "sipc bench rpc: cannot start sipc "
			    "reply: %s\n", strerror(errno));
			goto out;
		}
		nkids++;
	}
	if ((msg = malloc((size_t)o.size)) == NULL ||
	    sipc_requester_new(b->handle, b->epm, NULL, &rq) != 0 ||
	    wait_responder(rq, 10000) == -1)
		goto out;
	bench_msg_init(msg, (size_t)o.size, K_DATA);
	t0 = bench_now_ns();
	c0 = bench_cpu_ns(RUSAGE_SELF);
	if (strstr(o.cases, "rtt") && run_rtt(rq, &o, msg, &res) == -1)
		goto out;
	if (strstr(o.cases, "pipeline") &&
	    run_pipeline(rq, &o, msg, &res) == -1)
		goto out;
	sipc_requester_close(rq);
	rq = NULL;
	/* Alone, "first" makes --count new requesters; with the others,
	 * a tenth of it (100 to 2000). */
	o.first = strcmp(o.cases, "first") == 0 ? o.count :
	    o.count / 10 < 100 ? 100 : o.count / 10 > 2000 ? 2000 :
	    o.count / 10;
	if (strstr(o.cases, "first") &&
	    run_first(b->epm, b->handle, &o, msg, &res) == -1)
		goto out;
	if (strstr(o.cases, "clients") &&
	    run_clients(b, &o, nkids, &res) == -1)
		goto out;
	res.seconds = (double)(bench_now_ns() - t0) / 1e9;
	res.cpu_all = (double)(bench_cpu_ns(RUSAGE_SELF) - c0);
	print(b, &o, &res);
	ret = res.bad || res.failed ? 1 : 0;
out:
	sipc_requester_close(rq);
	for (i = 0; i < nkids; i++) {
		kill(kids[i], SIGTERM);
		while (waitpid(kids[i], &status, 0) == -1 && errno == EINTR)
			;
	}
	sipc_epm_close(b->epm);
	bench_tmpdir_remove(b);
	free(res.rtt);
	free(res.first);
	free(res.client);
	free(msg);
	free(b);
	return ret;
}
