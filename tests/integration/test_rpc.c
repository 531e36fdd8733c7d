/*
 * test_rpc.c - request/reply as README and PROTOCOL.md 6.6 promise it,
 * in both modes (local registry, broker): answers matched to requests by
 * content, 5,000 parallel clients from 10 processes, 5,000 requests in
 * flight from one requester, and each failure: no responder, a responder
 * killed or stopped with requests in flight, cancel racing a reply, a
 * reply after close, deferred and dropped requests, a silent responder in
 * a survey, and responders that break the protocol (raw peers written from
 * the spec).
 *
 * Responders run in processes of their own (forked, started before this
 * process makes any thread), so that killing and stopping them is real.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <check.h>
#include <dirent.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../testutil.h"

static struct tu_broker broker;

static sipc_epm *
new_epm(void)
{
	sipc_epm *epm;

	if (broker.pid > 0)
		ck_assert_int_eq(sipc_epm_connect(broker.addr, NULL, &epm), 0);
	else
		ck_assert_int_eq(sipc_epm_local(&epm), 0);
	return epm;
}

/* ---- Responders in processes of their own --------------------------------- */

enum kind {
	ECHO,		/* answers the request itself, at once */
	HOLD,		/* never answers */
	DROP,		/* drops every request unanswered */
	DEFER,		/* answers from another thread, after delay_ms */
	GATHER		/* answers nothing until 5,000 came, then all */
};

struct rsp {
	enum kind		 kind;
	int			 delay_ms;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct sipc_request	**held;
	size_t			 nheld;
	size_t			 cap;
};

static void
rsp_hold(struct rsp *r, struct sipc_request *req)
{
	pthread_mutex_lock(&r->mu);
	if (r->nheld == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->held = realloc(r->held, r->cap * sizeof(*r->held));
	}
	r->held[r->nheld++] = req;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void
on_req(sipc_receiver *rx, struct sipc_request *req, void *arg)
{
	struct rsp *r = arg;
	const struct sipc_message *m = sipc_request_message(req);
	size_t i;

	(void)rx;
	switch (r->kind) {
	case ECHO:
		sipc_request_reply(req, m->data, m->len);
		break;
	case DROP:
		sipc_request_free(req);
		break;
	case HOLD:
	case DEFER:
		rsp_hold(r, req);
		break;
	case GATHER:
		rsp_hold(r, req);
		if (r->nheld == 5000) {
			for (i = 0; i < r->nheld; i++) {
				m = sipc_request_message(r->held[i]);
				sipc_request_reply(r->held[i], m->data,
				    m->len);
			}
			r->nheld = 0;
		}
		break;
	}
}

/* DEFER: answers what is held, from this thread, delay_ms after. */
static void *
deferrer(void *arg)
{
	struct rsp *r = arg;
	struct sipc_request *req;
	const struct sipc_message *m;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (r->nheld == 0)
			pthread_cond_wait(&r->cv, &r->mu);
		req = r->held[--r->nheld];
		pthread_mutex_unlock(&r->mu);
		sleep_ms(r->delay_ms);
		m = sipc_request_message(req);
		sipc_request_reply(req, m->data, m->len);
	}
	return NULL;
}

/* The responder process: this program run again as
 * "test_rpc --responder HANDLE KIND DELAY_MS FD" (broker address in
 * $RPC_BROKER); it writes a byte to FD once registered. */
static int
responder_main(char **argv)
{
	struct sipc_receiver_opts o;
	struct rsp r;
	sipc_receiver *rx;
	sipc_epm *epm;
	const char *b = getenv("RPC_BROKER");
	pthread_t th;
	int fd = atoi(argv[5]);

	memset(&r, 0, sizeof(r));
	r.kind = (enum kind)atoi(argv[3]);
	r.delay_ms = atoi(argv[4]);
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	if (b ? sipc_epm_connect(b, NULL, &epm) : sipc_epm_local(&epm))
		return 3;
	sipc_receiver_opts_init(&o);
	o.on_request = on_req;
	o.arg = &r;
	o.security.password = getenv("RPC_PASSWORD");
	if (sipc_receiver_new(argv[2], epm, &o, &rx) != 0)
		return 4;
	if (r.kind == DEFER)
		pthread_create(&th, NULL, deferrer, &r);
	(void)write(fd, "r", 1);
	close(fd);
	for (;;)
		pause();	/* until SIGTERM or SIGKILL */
}

/* Starts a responder of handle (a new process, this program again, also
 * from a test that has threads already); returns once it is
 * registered. */
static pid_t
responder(const char *handle, enum kind kind, int delay_ms)
{
	char k[16], d[16], f[16];
	char *argv[] = { "/proc/self/exe", "--responder", (char *)handle, k,
	    d, f, NULL };
	int p[2];
	pid_t pid;
	char c;

	ck_assert_int_eq(pipe(p), 0);
	snprintf(k, sizeof(k), "%d", (int)kind);
	snprintf(d, sizeof(d), "%d", delay_ms);
	snprintf(f, sizeof(f), "%d", p[1]);
	if (broker.pid > 0)
		setenv("RPC_BROKER", broker.addr, 1);
	else
		unsetenv("RPC_BROKER");
	pid = proc_spawn(argv, NULL);
	close(p[1]);
	ck_assert_int_gt(pid, 0);
	ck_assert_msg(read(p[0], &c, 1) == 1, "responder did not start");
	close(p[0]);
	return pid;
}

static void
stop(pid_t pid)
{
	kill(pid, SIGCONT);
	proc_stop(pid, 2000);
}

/* ---- Requests ------------------------------------------------------------ */

static sipc_requester *
new_requester(sipc_epm *epm, const char *handle, size_t max_reply)
{
	struct sipc_requester_opts o;
	sipc_requester *rq;

	sipc_requester_opts_init(&o);
	if (max_reply)
		o.max_reply = max_reply;
	ck_assert_int_eq(sipc_requester_new(handle, epm, &o, &rq), 0);
	return rq;
}

/* One synchronous request: the error, the reply checked against data. */
static int
ask(sipc_requester *rq, const char *data, int timeout_ms)
{
	struct sipc_reply *r = NULL;
	int rc;

	rc = sipc_request(rq, data, strlen(data), timeout_ms, 0, &r);
	if (rc == 0) {
		ck_assert_uint_eq(r->len, strlen(data));
		ck_assert(memcmp(r->data, data, r->len) == 0);
		ck_assert(r->responder[0] != '\0');
	}
	sipc_reply_free(r);
	return rc;
}

/* Asynchronous answers, by request id. */
struct book {
	pthread_mutex_t		 mu;
	size_t			 n;		/* answers */
	size_t			 bad;		/* not matching */
	int			 errors[SIPC_ENOREPLY * -1 + 8];
	int			*seen;		/* per id: answered */
	size_t			 ids;
};

static void
book_init(struct book *b, size_t ids)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	b->seen = calloc(ids + 1, sizeof(int));
	b->ids = ids;
}

static void
book_free(struct book *b)
{
	pthread_mutex_destroy(&b->mu);
	free(b->seen);
}

/* The request with id i carries "req-i": so must its reply. */
static void
on_reply(sipc_requester *rq, uint64_t id, const struct sipc_reply *r,
    void *arg)
{
	struct book *b = arg;
	char want[32];

	(void)rq;
	snprintf(want, sizeof(want), "req-%llu", (unsigned long long)id);
	pthread_mutex_lock(&b->mu);
	b->n++;
	if (id <= b->ids)
		b->seen[id]++;
	if (r->error == 0 && (r->len != strlen(want) ||
	    memcmp(r->data, want, r->len) != 0))
		b->bad++;
	if (r->error <= 0 && -r->error < (int)(sizeof(b->errors) /
	    sizeof(b->errors[0])))
		b->errors[-r->error]++;
	pthread_mutex_unlock(&b->mu);
}

/* Sends request number id (the next) of rq, its content "req-ID". */
static uint64_t
ask_flags(sipc_requester *rq, struct book *b, int timeout_ms, uint64_t id,
    int flags)
{
	char data[32];
	uint64_t got;

	snprintf(data, sizeof(data), "req-%llu", (unsigned long long)id);
	ck_assert_int_eq(sipc_request_async(rq, data, strlen(data),
	    timeout_ms, flags, on_reply, b, &got), 0);
	ck_assert_uint_eq(got, id);	/* ids count from 1 */
	return got;
}

static uint64_t
ask_async(sipc_requester *rq, struct book *b, int timeout_ms, uint64_t id)
{
	return ask_flags(rq, b, timeout_ms, id, 0);
}

static size_t
book_count(struct book *b)
{
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = b->n;
	pthread_mutex_unlock(&b->mu);
	return n;
}

static int
book_wait(struct book *b, size_t n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (book_count(b) < n && mono_ms() < end)
		sleep_ms(2);
	return book_count(b) >= n;
}

/* ---- Basic --------------------------------------------------------------- */

START_TEST(test_request_reply)
{
	struct sipc_requester_stats st;
	struct sipc_survey *s;
	sipc_requester *rq;
	struct book b;
	pid_t r[3];
	sipc_epm *epm;
	size_t i;
	int k;

	tu_mode_setup(&broker, _i);
	for (k = 0; k < 3; k++)
		r[k] = responder("basic", ECHO, 0);
	epm = new_epm();
	rq = new_requester(epm, "basic", 0);
	ck_assert_int_eq(ask(rq, "hello", 5000), 0);
	ck_assert_int_eq(ask(rq, "", 5000), 0);
	book_init(&b, 102);
	for (i = 3; i <= 102; i++)	/* ids 1, 2: the two above */
		ask_async(rq, &b, 5000, i);
	ck_assert(book_wait(&b, 100, 10000));
	ck_assert_uint_eq(b.bad, 0);
	ck_assert_int_eq(b.errors[0], 100);
	ck_assert_int_eq(sipc_survey(rq, "all", 3, 5000, &s), 0);
	ck_assert_uint_eq(s->asked, 3);
	ck_assert_uint_eq(s->answered, 3);
	for (i = 0; i < s->asked; i++) {
		ck_assert_int_eq(s->replies[i].error, 0);
		ck_assert_uint_eq(s->replies[i].len, 3);
	}
	sipc_survey_free(s);
	ck_assert_int_eq(sipc_requester_stats(rq, &st), 0);
	ck_assert_uint_eq(st.requests, 105);
	ck_assert_uint_eq(st.replies, 105);
	ck_assert_uint_eq(st.outstanding, 0);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	book_free(&b);
	for (k = 0; k < 3; k++)
		stop(r[k]);
	tu_mode_teardown(&broker);
}
END_TEST

START_TEST(test_no_responder)
{
	sipc_requester *rq;
	struct sipc_survey *s;
	sipc_epm *epm;
	int64_t t0, took;

	tu_mode_setup(&broker, _i);
	epm = new_epm();
	rq = new_requester(epm, "nobody", 0);
	t0 = mono_ms();
	ck_assert_int_eq(ask(rq, "x", 10000), SIPC_ENORESPONDER);
	took = mono_ms() - t0;
	printf("no responder (%s): SIPC_ENORESPONDER after %lld ms\n",
	    _i ? "broker" : "local", (long long)took);
	ck_assert_int_lt(took, 2000);
	ck_assert_int_eq(ask(rq, "y", 10000), SIPC_ENORESPONDER);
	ck_assert_int_eq(sipc_survey(rq, "z", 1, 10000, &s),
	    SIPC_ENORESPONDER);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- 5,000 parallel clients ---------------------------------------------- */

#define CLIENT_PROCS	10
#define CLIENT_THREADS	500

struct client {
	sipc_epm		*epm;
	pthread_barrier_t	*go;
	int			 proc;
	int			 thread;
	int			 failed;
};

/* One client: its own requester, one request, its reply checked. */
static void *
client_main(void *arg)
{
	struct client *c = arg;
	struct sipc_reply *r = NULL;
	sipc_requester *rq;
	char data[64];

	pthread_barrier_wait(c->go);
	snprintf(data, sizeof(data), "client %d.%d", c->proc, c->thread);
	if (sipc_requester_new("many", c->epm, NULL, &rq) != 0) {
		c->failed = 1;
		return NULL;
	}
	if (sipc_request(rq, data, strlen(data), 60000, 0, &r) != 0 ||
	    r->len != strlen(data) || memcmp(r->data, data, r->len) != 0)
		c->failed = 1;
	sipc_reply_free(r);
	sipc_requester_close(rq);
	return NULL;
}

/* A process of CLIENT_THREADS clients, started together when the parent
 * closes start; exits with the number that failed. */
static void
client_proc(int proc, int start, int ready)
{
	static struct client c[CLIENT_THREADS];
	static pthread_t th[CLIENT_THREADS];
	pthread_barrier_t go;
	pthread_attr_t a;
	sipc_epm *epm;
	int i, failed = 0;
	char x;

	if (broker.pid > 0 ? sipc_epm_connect(broker.addr, NULL, &epm) :
	    sipc_epm_local(&epm))
		_exit(100);
	pthread_barrier_init(&go, NULL, CLIENT_THREADS + 1);
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 128 * 1024);
	for (i = 0; i < CLIENT_THREADS; i++) {
		c[i].epm = epm;
		c[i].go = &go;
		c[i].proc = proc;
		c[i].thread = i;
		if (pthread_create(&th[i], &a, client_main, &c[i]) != 0)
			_exit(101);
	}
	(void)write(ready, "r", 1);
	(void)read(start, &x, 1);	/* EOF: everyone goes */
	pthread_barrier_wait(&go);
	for (i = 0; i < CLIENT_THREADS; i++) {
		pthread_join(th[i], NULL);
		failed += c[i].failed;
	}
	sipc_epm_close(epm);
	_exit(failed > 99 ? 99 : failed);
}

START_TEST(test_5000_clients)
{
	pid_t r[4], kids[CLIENT_PROCS];
	int start[2], ready[2], k, status, failed = 0;
	int64_t t0;
	char x;

	tu_mode_setup(&broker, _i);
	for (k = 0; k < 4; k++)
		r[k] = responder("many", ECHO, 0);
	ck_assert_int_eq(pipe(start), 0);
	ck_assert_int_eq(pipe(ready), 0);
	for (k = 0; k < CLIENT_PROCS; k++) {
		if ((kids[k] = fork()) == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			close(start[1]);
			close(ready[0]);
			client_proc(k, start[0], ready[1]);
		}
		ck_assert_int_gt(kids[k], 0);
	}
	close(start[0]);
	close(ready[1]);
	for (k = 0; k < CLIENT_PROCS; k++)
		ck_assert_int_eq(read(ready[0], &x, 1), 1);
	t0 = mono_ms();
	close(start[1]);		/* all at once */
	for (k = 0; k < CLIENT_PROCS; k++) {
		status = proc_wait(kids[k], 120000);
		ck_assert_msg(status != -1, "client process %d hangs", k);
		ck_assert_msg(WIFEXITED(status), "client process %d died", k);
		failed += WEXITSTATUS(status);
	}
	printf("5,000 clients (%s): %d failed, %lld ms\n",
	    _i ? "broker" : "local", failed, (long long)(mono_ms() - t0));
	ck_assert_int_eq(failed, 0);
	close(ready[0]);
	for (k = 0; k < 4; k++)
		stop(r[k]);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- 5,000 in flight from one requester ----------------------------------- */

static void
wait_stat(sipc_requester *rq, uint64_t requests, int timeout_ms)
{
	struct sipc_requester_stats st;
	int64_t end = mono_ms() + timeout_ms;

	do {
		ck_assert_int_eq(sipc_requester_stats(rq, &st), 0);
		if (st.requests >= requests)
			return;
		sleep_ms(2);
	} while (mono_ms() < end);
	ck_abort_msg("only %llu of %llu requests sent",
	    (unsigned long long)st.requests, (unsigned long long)requests);
}

START_TEST(test_5000_in_flight)
{
	struct mallinfo2 m0, m1;
	sipc_requester *rq;
	struct book b;
	sipc_epm *epm;
	pid_t r;
	size_t i, payload = 0;
	double per;

	tu_mode_setup(&broker, _i);
	r = responder("gather", GATHER, 0);
	epm = new_epm();
	rq = new_requester(epm, "gather", 0);
	book_init(&b, 5000);
	ask_async(rq, &b, 60000, 1);
	wait_stat(rq, 1, 10000);	/* connected */
	m0 = mallinfo2();
	for (i = 2; i < 5000; i++) {
		char data[32];

		payload += (size_t)snprintf(data, sizeof(data), "req-%zu", i);
		ask_async(rq, &b, 60000, i);
	}
	/* 4,999 sent and none answered: the responder gathers 5,000
	 * before it answers any.  (Under ASan mallinfo2 sees nothing.) */
	wait_stat(rq, 4999, 30000);
	m1 = mallinfo2();
	per = ((double)m1.uordblks - (double)m0.uordblks - (double)payload) /
	    4998.0;
	if (m1.uordblks != m0.uordblks)
		printf("5,000 in flight (%s): %.0f bytes of heap per "
		    "outstanding request, payload excluded\n",
		    _i ? "broker" : "local", per);
	ask_async(rq, &b, 60000, 5000);
	ck_assert(book_wait(&b, 5000, 60000));
	ck_assert_uint_eq(b.bad, 0);
	ck_assert_int_eq(b.errors[0], 5000);
	for (i = 1; i <= 5000; i++)
		ck_assert_int_eq(b.seen[i], 1);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	book_free(&b);
	stop(r);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- Failures ------------------------------------------------------------ */

/* A responder SIGKILLed with 100 requests in flight: all 100 fail with
 * SIPC_EPEERGONE at once, and later requests go to the one left; one
 * more, marked idempotent, is retried there and answered. */
START_TEST(test_responder_killed)
{
	struct sipc_survey *s;
	sipc_requester *rq;
	struct book b;
	sipc_epm *epm;
	pid_t hold, echo;
	int64_t t0, took;
	size_t i;

	tu_mode_setup(&broker, _i);
	hold = responder("kill", HOLD, 0);
	epm = new_epm();
	rq = new_requester(epm, "kill", 0);
	book_init(&b, 101);
	for (i = 1; i <= 100; i++)
		ask_async(rq, &b, 30000, i);
	ask_flags(rq, &b, 30000, 101, SIPC_REQUEST_IDEMPOTENT);
	wait_stat(rq, 101, 10000);
	echo = responder("kill", ECHO, 0);
	/* A survey waits for responders still connecting, so after it the
	 * new one is ready; chosen then, with nothing in flight. */
	ck_assert_int_eq(sipc_survey(rq, "who", 3, 500, &s), 0);
	ck_assert_uint_eq(s->asked, 2);
	ck_assert_uint_eq(s->answered, 1);
	sipc_survey_free(s);
	ck_assert_int_eq(ask(rq, "after", 10000), 0);
	t0 = mono_ms();
	kill(hold, SIGKILL);
	ck_assert(book_wait(&b, 101, 10000));
	took = mono_ms() - t0;
	printf("killed responder (%s): 100 requests failed after %lld ms\n",
	    _i ? "broker" : "local", (long long)took);
	ck_assert_int_eq(b.errors[-SIPC_EPEERGONE], 100);
	ck_assert_int_eq(b.errors[0], 1);	/* the idempotent one */
	ck_assert_int_eq(b.seen[101], 1);
	ck_assert_uint_eq(b.bad, 0);
	ck_assert_int_lt(took, 5000);	/* the deadline is 30 s */
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(ask(rq, "still", 10000), 0);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	book_free(&b);
	proc_wait(hold, 5000);
	stop(echo);
	tu_mode_teardown(&broker);
}
END_TEST

/* SIGSTOP is delivered a little later: wait until every thread of pid
 * shows 'T' (stopped) in /proc, at most 5 s. */
static void
wait_stopped(pid_t pid)
{
	char dir[64], path[400], buf[512], *p;
	struct dirent *de;
	int64_t end = mono_ms() + 5000;
	int running;
	FILE *fp;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%ld/task", (long)pid);
	do {
		running = 0;
		if ((d = opendir(dir)) == NULL)
			return;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dir,
			    de->d_name);
			if ((fp = fopen(path, "r")) == NULL)
				continue;
			if (fgets(buf, sizeof(buf), fp) &&
			    (p = strrchr(buf, ')')) != NULL &&
			    p[1] == ' ' && p[2] != 'T' && p[2] != 't')
				running = 1;
			fclose(fp);
		}
		closedir(d);
		if (running)
			sleep_ms(1);
	} while (running && mono_ms() < end);
	ck_assert_msg(!running, "pid %ld did not stop", (long)pid);
}

START_TEST(test_responder_stopped)
{
	sipc_requester *rq;
	sipc_epm *epm;
	int64_t t0, took;
	pid_t r;

	tu_mode_setup(&broker, _i);
	r = responder("stop", ECHO, 0);
	epm = new_epm();
	rq = new_requester(epm, "stop", 0);
	ck_assert_int_eq(ask(rq, "awake", 5000), 0);
	kill(r, SIGSTOP);
	wait_stopped(r);
	t0 = mono_ms();
	ck_assert_int_eq(ask(rq, "asleep", 500), SIPC_ETIMEDOUT);
	took = mono_ms() - t0;
	ck_assert_int_ge(took, 450);
	ck_assert_int_lt(took, 3000);
	kill(r, SIGCONT);
	ck_assert_int_eq(ask(rq, "awake again", 5000), 0);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	stop(r);
	tu_mode_teardown(&broker);
}
END_TEST

/* Cancel races the reply: a cancel that returned 0 means no callback. */
START_TEST(test_cancel_race)
{
	sipc_requester *rq;
	struct book b;
	sipc_epm *epm;
	int *cancelled;
	size_t i, n = 3000, nc = 0, cb = 0;
	pid_t r;

	tu_mode_setup(&broker, 0);
	r = responder("race", ECHO, 0);
	epm = new_epm();
	rq = new_requester(epm, "race", 0);
	book_init(&b, n);
	cancelled = calloc(n + 1, sizeof(int));
	for (i = 1; i <= n; i++) {
		ask_async(rq, &b, 10000, i);
		if (i % 3 == 0)
			sleep_ms(0);
		if (sipc_request_cancel(rq, i) == 0) {
			cancelled[i] = 1;
			nc++;
			pthread_mutex_lock(&b.mu);
			ck_assert_int_eq(b.seen[i], 0);
			pthread_mutex_unlock(&b.mu);
		}
	}
	ck_assert(book_wait(&b, n - nc, 10000));
	sleep_ms(200);	/* late answers, if any, would come now */
	for (i = 1; i <= n; i++) {
		ck_assert_int_eq(b.seen[i], cancelled[i] ? 0 : 1);
		cb += b.seen[i];
	}
	printf("cancel race: %zu cancelled, %zu answered\n", nc, cb);
	ck_assert_uint_eq(b.bad, 0);
	ck_assert_int_eq(sipc_request_cancel(rq, 1), SIPC_ENOTFOUND);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	book_free(&b);
	free(cancelled);
	stop(r);
	tu_mode_teardown(&broker);
}
END_TEST

/* Replies that come after the requester closed touch nothing of it. */
START_TEST(test_reply_after_close)
{
	sipc_requester *rq;
	struct book b;
	sipc_epm *epm;
	size_t i, at_close;
	pid_t r;

	tu_mode_setup(&broker, 0);
	r = responder("late", DEFER, 100);
	epm = new_epm();
	rq = new_requester(epm, "late", 0);
	book_init(&b, 50);
	for (i = 1; i <= 50; i++)
		ask_async(rq, &b, 10000, i);
	wait_stat(rq, 50, 10000);
	sipc_requester_close(rq);
	at_close = book_count(&b);
	sleep_ms(600);	/* the deferred replies arrive meanwhile */
	ck_assert_uint_eq(book_count(&b), at_close);
	/* A new requester on the same EPM and handle works. */
	rq = new_requester(epm, "late", 0);
	ck_assert_int_eq(ask(rq, "again", 10000), 0);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	book_free(&b);
	stop(r);
	tu_mode_teardown(&broker);
}
END_TEST

START_TEST(test_deferred_and_dropped)
{
	sipc_requester *rq, *rd;
	sipc_epm *epm;
	int64_t t0;
	pid_t a, d;

	tu_mode_setup(&broker, _i);
	a = responder("later", DEFER, 20);
	d = responder("drop", DROP, 0);
	epm = new_epm();
	rq = new_requester(epm, "later", 0);
	rd = new_requester(epm, "drop", 0);
	ck_assert_int_eq(ask(rq, "from another thread", 5000), 0);
	t0 = mono_ms();
	ck_assert_int_eq(ask(rd, "dropped", 10000), SIPC_ENOREPLY);
	ck_assert_int_lt(mono_ms() - t0, 2000);
	sipc_requester_close(rq);
	sipc_requester_close(rd);
	sipc_epm_close(epm);
	stop(a);
	stop(d);
	tu_mode_teardown(&broker);
}
END_TEST

/* Survey with one of three responders silent: two replies, then the
 * deadline. */
START_TEST(test_survey_silent)
{
	struct sipc_survey *s;
	sipc_requester *rq;
	sipc_epm *epm;
	pid_t r[3];
	int64_t t0, took;
	size_t i, ok = 0, late = 0;

	tu_mode_setup(&broker, _i);
	r[0] = responder("poll", ECHO, 0);
	r[1] = responder("poll", ECHO, 0);
	r[2] = responder("poll", HOLD, 0);
	epm = new_epm();
	rq = new_requester(epm, "poll", 0);
	t0 = mono_ms();
	ck_assert_int_eq(sipc_survey(rq, "who", 3, 1000, &s), 0);
	took = mono_ms() - t0;
	ck_assert_uint_eq(s->asked, 3);
	ck_assert_uint_eq(s->answered, 2);
	for (i = 0; i < s->asked; i++) {
		ok += s->replies[i].error == 0;
		late += s->replies[i].error == SIPC_ETIMEDOUT;
	}
	ck_assert_uint_eq(ok, 2);
	ck_assert_uint_eq(late, 1);
	ck_assert_int_ge(took, 950);
	ck_assert_int_lt(took, 5000);
	sipc_survey_free(s);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	for (i = 0; i < 3; i++)
		stop(r[i]);
	tu_mode_teardown(&broker);
}
END_TEST

/* Password mode: requests and replies only between those who know it. */
START_TEST(test_password)
{
	struct sipc_requester_opts o;
	sipc_requester *rq;
	sipc_epm *epm;
	int64_t t0;
	pid_t r;

	tu_mode_setup(&broker, 0);
	setenv("RPC_PASSWORD", "correct horse", 1);
	r = responder("secret", ECHO, 0);
	unsetenv("RPC_PASSWORD");
	epm = new_epm();
	sipc_requester_opts_init(&o);
	o.security.password = "correct horse";
	ck_assert_int_eq(sipc_requester_new("secret", epm, &o, &rq), 0);
	ck_assert_int_eq(ask(rq, "over TLS 1.3 with a PSK", 10000), 0);
	sipc_requester_close(rq);
	o.security.password = "wrong";
	ck_assert_int_eq(sipc_requester_new("secret", epm, &o, &rq), 0);
	t0 = mono_ms();
	ck_assert_int_eq(ask(rq, "x", 10000), SIPC_EAUTH);
	ck_assert_int_lt(mono_ms() - t0, 5000);
	sipc_requester_close(rq);
	rq = new_requester(epm, "secret", 0);	/* plain text */
	ck_assert_int_eq(ask(rq, "x", 10000), SIPC_EAUTH);
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	stop(r);
	tu_mode_teardown(&broker);
}
END_TEST

/* ---- Responders that break the protocol ----------------------------------- */

enum bad {
	BAD_UNKNOWN_ID,		/* REPLY to a request never sent */
	BAD_NOT_GRANTED,	/* REPLY without granting REPLY */
	BAD_TOO_LARGE,		/* REPLY over the requester's max_reply */
	BAD_BEFORE_HELLO	/* REPLY before OK(DHELLO) */
};

struct raw {
	int		 lfd;
	uint64_t	 instance;
	enum bad	 bad;
	uint16_t	 got_code;	/* ERROR the requester sent */
	int		 closed;
};

/* Appends a REPLY of len bytes ('r') to w. */
static void
put_reply(struct wbuf *w, uint32_t reqid, size_t len)
{
	struct wire_header h;
	uint8_t hdr[SIPC_HEADER_SIZE], *body = malloc(len);

	memset(&h, 0, sizeof(h));
	h.version = 1;
	h.type = WIRE_REPLY;
	h.reqid = reqid;
	h.len = (uint32_t)len;
	wire_header_encode(hdr, &h);
	memset(body, 'r', len);
	wire_put_bytes(w, hdr, sizeof(hdr));
	wire_put_bytes(w, body, len);
	free(body);
}

/* A responder from the spec alone, misbehaving as told. */
static void *
raw_main(void *arg)
{
	struct raw *p = arg;
	struct wire_dhello m;
	struct wire_dhello_ok ok;
	struct wire_error e;
	struct wire_header h;
	static uint8_t buf[1 << 16];
	struct wbuf w;
	int fd;

	if ((fd = tu_accept_dhello(p->lfd, &h, &m, buf,
	    sizeof(buf))) == -1)
		return NULL;
	wbuf_init(&w, 1 << 16);		/* room for the oversized REPLY */
	if (p->bad == BAD_BEFORE_HELLO) {
		put_reply(&w, 1, 4);
		tu_send_wbuf(fd, &w);
	}
	memset(&ok, 0, sizeof(ok));
	ok.version = 1;
	ok.features = p->bad == BAD_NOT_GRANTED ? 0 : WIRE_FEAT_REPLY;
	ok.instance = p->instance;
	ok.max_message = 1 << 20;
	wire_enc_ok_dhello(&w, h.reqid, &ok);
	/* Not granted: the REPLY in the same write, read before the
	 * requester hangs up on a receiver that answers no requests. */
	if (p->bad == BAD_NOT_GRANTED)
		put_reply(&w, 1, 4);
	tu_send_wbuf(fd, &w);
	if (p->bad == BAD_UNKNOWN_ID || p->bad == BAD_TOO_LARGE) {
		/* Wait for the request, answer it wrongly. */
		if (tu_recv_type(fd, WIRE_DATA, &h, buf, sizeof(buf),
		    10000) != 0)
			goto out;
		put_reply(&w, p->bad == BAD_UNKNOWN_ID ? h.reqid + 1000 :
		    h.reqid, p->bad == BAD_TOO_LARGE ? 4096 : 4);
		tu_send_wbuf(fd, &w);
	}
	if (tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf), 10000) == 0 &&
	    wire_dec_error(buf, h.len, &e) == 0)
		p->got_code = e.code;
	p->closed = tu_closed(fd, 10000);
out:
	wbuf_free(&w);
	close(fd);
	return NULL;
}

START_TEST(test_bad_replies)
{
	struct sipc_reply *rep;
	sipc_requester *rq, *good;
	struct book b;
	struct raw p;
	pthread_t th;
	sipc_epm *epm;
	pid_t slow;
	int bfd, rc, port;
	const uint16_t want[] = { WIRE_ERR_UNEXPECTED, WIRE_ERR_UNEXPECTED,
	    WIRE_ERR_TOO_LARGE, WIRE_ERR_UNEXPECTED };
	char handle[32];

	tu_mode_setup(&broker, 1);
	slow = responder("good", DEFER, 300);
	epm = new_epm();
	good = new_requester(epm, "good", 0);
	memset(&p, 0, sizeof(p));
	for (p.bad = BAD_UNKNOWN_ID; p.bad <= BAD_BEFORE_HELLO; p.bad++) {
		snprintf(handle, sizeof(handle), "bad%d", (int)p.bad);
		p.instance = 0x7700 + (uint64_t)p.bad;
		p.got_code = 0;
		p.closed = 0;
		ck_assert_int_ge(p.lfd = listen_loopback(8, &port), 0);
		ck_assert_int_ge(bfd = tu_register_at(broker.port, handle,
		    (uint16_t)port, p.instance), 0);
		ck_assert_int_eq(pthread_create(&th, NULL, raw_main, &p), 0);
		/* A request in flight elsewhere meanwhile. */
		book_init(&b, 8);
		ask_async(good, &b, 10000, (uint64_t)p.bad + 1);
		rq = new_requester(epm, handle, p.bad == BAD_TOO_LARGE ?
		    1024 : 0);
		rep = NULL;
		rc = sipc_request(rq, "boom", 4, 3000, 0, &rep);
		sipc_reply_free(rep);
		pthread_join(th, NULL);
		ck_assert_msg(p.got_code == want[p.bad], "case %d: ERROR %u",
		    (int)p.bad, p.got_code);
		ck_assert_msg(p.closed, "case %d: not closed", (int)p.bad);
		switch (p.bad) {
		case BAD_UNKNOWN_ID:
		case BAD_TOO_LARGE:
			ck_assert_int_eq(rc, SIPC_EPEERGONE);
			break;
		default:
			/* Never a responder: nothing to ask, or it broke
			 * before a request could go. */
			ck_assert(rc == SIPC_ENORESPONDER ||
			    rc == SIPC_EPEERGONE || rc == SIPC_ETIMEDOUT);
			break;
		}
		/* The other connection did not notice. */
		ck_assert(book_wait(&b, 1, 10000));
		ck_assert_int_eq(b.errors[0], 1);
		book_free(&b);
		sipc_requester_close(rq);
		close(bfd);
		close(p.lfd);
	}
	sipc_requester_close(good);
	sipc_epm_close(epm);
	stop(slow);
	tu_mode_teardown(&broker);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 6 && strcmp(argv[1], "--responder") == 0)
		return responder_main(argv);
	s = suite_create("rpc");
	tc = tcase_create("rpc");

	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_loop_test(tc, test_request_reply, 0, 2);
	tcase_add_loop_test(tc, test_no_responder, 0, 2);
	tcase_add_loop_test(tc, test_deferred_and_dropped, 0, 2);
	tcase_add_loop_test(tc, test_survey_silent, 0, 2);
	tcase_add_loop_test(tc, test_responder_killed, 0, 2);
	tcase_add_loop_test(tc, test_responder_stopped, 0, 2);
	tcase_add_test(tc, test_cancel_race);
	tcase_add_test(tc, test_reply_after_close);
	tcase_add_test(tc, test_bad_replies);
	tcase_add_test(tc, test_password);
	tcase_add_loop_test(tc, test_5000_in_flight, 0, 2);
	tcase_add_loop_test(tc, test_5000_clients, 0, 2);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
