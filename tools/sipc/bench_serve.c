/*
 * bench_serve.c - sipc bench serve: the receiving end of benchmark runs.
 *
 * A serve process receives on HANDLE and HANDLE.ping.  It counts and checks
 * every data message of a run, echoes each ping on HANDLE.pong from inside
 * the receiving callback, answers BEGIN with READY and END with a REPORT on
 * HANDLE.report, and ends after --runs runs, --max-time or a signal.  The
 * bench starts these as its children, or a user starts them on other hosts.
 *
 * It computes no rates and prints no results: that is the measuring side
 * (bench_run.c, bench_cases.c, bench.c).
 */
#include <sys/resource.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_int.h"
#include "opts.h"

struct sevent {
	int		kind;		/* K_BEGIN, K_END */
	int		mode;
	uint8_t		msg[REPORT_LEN];	/* END: the report to send */
	uint64_t	run;
};

#define SEV_MAX		16

struct serve {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct sevent	 ev[SEV_MAX];	/* under mu */
	unsigned	 ev_head;
	unsigned	 ev_n;
	int		 ev_lost;

	uint64_t	 instance;
	sipc_epm	*epm;
	sipc_receiver	*rx_data;
	sipc_receiver	*rx_ping;
	sipc_sender	*tx_report;
	sipc_sender	*tx_pong;	/* set before any receiver exists */

	/* I/O thread only. */
	uint64_t	 run;
	uint64_t	 data_sender;
	int		 active;
	uint64_t	 count;
	uint64_t	 size;
	uint64_t	 expect;
	uint64_t	 got;
	uint64_t	 bad;
	uint64_t	 gaps;
	uint64_t	 bytes;
	uint64_t	 foreign;
	int64_t		 cpu0;
	int64_t		 first_ns;
	int64_t		 last_ns;
	uint64_t	 echoed;
	uint64_t	 echo_failed;
};

static void
serve_post(struct serve *s, const struct sevent *e)
{
	pthread_mutex_lock(&s->mu);
	if (s->ev_n < SEV_MAX) {
		s->ev[(s->ev_head + s->ev_n) % SEV_MAX] = *e;
		s->ev_n++;
	} else
		s->ev_lost = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
serve_begin(struct serve *s, const uint8_t *p, uint64_t sender_id)
{
	struct sevent e;
	uint64_t run = bench_get64(p + F_RUN);

	if (run != s->run) {
		/* A new run: everything counts from here. */
		s->run = run;
		s->data_sender = sender_id;
		s->count = bench_get64(p + F_COUNT);
		s->size = bench_get64(p + F_SIZE);
		s->expect = 0;
		s->got = s->bad = s->gaps = s->bytes = s->foreign = 0;
		s->echoed = s->echo_failed = 0;
		s->first_ns = s->last_ns = 0;
		s->cpu0 = bench_cpu_ns(RUSAGE_SELF);
		s->active = 1;
	}
	memset(&e, 0, sizeof(e));
	e.kind = K_BEGIN;
	e.run = run;
	e.mode = (int)bench_get64(p + F_MODE);
	serve_post(s, &e);
}

static void
serve_end(struct serve *s, const uint8_t *p, uint64_t sender_id)
{
	struct sevent e;

	if (!s->active || bench_get64(p + F_RUN) != s->run ||
	    sender_id != s->data_sender) {
		s->foreign++;
		return;
	}
	s->active = 0;
	memset(&e, 0, sizeof(e));
	e.kind = K_END;
	e.run = s->run;
	bench_msg_init(e.msg, REPORT_LEN, K_REPORT);
	bench_put64(e.msg + F_RUN, s->run);
	bench_put64(e.msg + F_INST, s->instance);
	bench_put64(e.msg + F_GOT, s->got);
	bench_put64(e.msg + F_BAD, s->bad);
	bench_put64(e.msg + F_GAPS, s->gaps);
	bench_put64(e.msg + F_BYTES, s->bytes);
	bench_put64(e.msg + F_CPU, (uint64_t)(bench_cpu_ns(RUSAGE_SELF) -
	    s->cpu0));
	bench_put64(e.msg + F_FIRST, (uint64_t)s->first_ns);
	bench_put64(e.msg + F_LAST, (uint64_t)s->last_ns);
	bench_put64(e.msg + F_ECHOED, s->echoed);
	bench_put64(e.msg + F_ECHOFAIL, s->echo_failed);
	bench_put64(e.msg + F_FOREIGN, s->foreign);
	serve_post(s, &e);
}

/* HANDLE: BEGIN, the data messages, END. */
static void
serve_data(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct serve *s = arg;
	const uint8_t *p = m->data;
	size_t len = m->len;
	uint64_t sender_id = m->sender_id, c;

	(void)rx;
	switch (bench_msg_kind(p, len)) {
	case K_DATA:
		if (!s->active || sender_id != s->data_sender) {
			s->foreign++;
			return;
		}
		c = bench_get64(p + 8);
		if (c == s->expect && len == s->size) {
			s->got++;
			s->expect++;
		} else {
			s->bad++;
			if (c >= s->expect)
				s->expect = c + 1;
		}
		s->bytes += len;
		if (c == 0)
			s->first_ns = bench_now_ns();
		if (c + 1 == s->count)
			s->last_ns = bench_now_ns();
		break;
	case K_BEGIN:
		if (len >= CTL_LEN)
			serve_begin(s, p, sender_id);
		break;
	case K_END:
		if (len >= CTL_LEN)
			serve_end(s, p, sender_id);
		break;
	default:
		s->foreign++;
		break;
	}
}

/* HANDLE.ping: echo on HANDLE.pong, from the I/O thread (never blocks). */
static void
serve_ping(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct serve *s = arg;

	(void)rx;
	if (sipc_send(s->tx_pong, m->data, m->len) == 0)
		s->echoed++;
	else
		s->echo_failed++;
}

static void
serve_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first,
    uint64_t count, void *arg)
{
	struct serve *s = arg;

	(void)rx;
	(void)first;
	if (sender_id == s->data_sender)
		s->gaps += count;
}

/* Sends msg on tx once it has a receiver; 0 or -1 after a message. */
static int
serve_reply(sipc_sender *tx, const uint8_t *msg, size_t len, int timeout_ms,
    int quiet)
{
	int rc;

	if ((rc = sipc_sender_wait_receivers(tx, 1, timeout_ms)) != 0 ||
	    (rc = sipc_send(tx, msg, len)) != 0) {
		if (!quiet)
			fprintf(stderr, "sipc bench serve: cannot answer the "
			    "bench: %s\n", bench_errtext(rc));
		return -1;
	}
	return 0;
}

/*
 * After the last run: stay until the bench's senders have closed (10 s at
 * most), so that they see every acknowledgement before we go.
 */
static void
serve_linger(sipc_receiver *rx_data, sipc_receiver *rx_ping)
{
	struct sipc_receiver_stats a, b;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int64_t end = bench_now_ns() + 10 * (int64_t)1000000000;

	while (bench_now_ns() < end) {
		if (sipc_receiver_stats(rx_data, &a) != 0 ||
		    sipc_receiver_stats(rx_ping, &b) != 0 ||
		    a.senders + b.senders == 0)
			return;
		nanosleep(&ts, NULL);
	}
}

struct serve_cfg {
	const char	*handle;
	const char	*broker;	/* NULL: the local registry */
	long		 runs;		/* 0: until stopped */
	long		 max_time;	/* ms, 0: no limit */
	int		 quiet;
};

/* Options of serve into *c: 0, 1 after --help, -1 after a usage error. */
static int
serve_parse(int argc, char **argv, struct serve_cfg *c)
{
	int i, local = 0;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			bench_usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--local")) {
			local = 1;
			continue;
		}
		if (!strcmp(a, "--quiet")) {
			c->quiet = 1;
			continue;
		}
		if (a[0] != '-') {
			if (c->handle) {
				fprintf(stderr, "sipc bench serve: unexpected "
				    "argument '%s'\n", a);
				return -1;
			}
			c->handle = a;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc bench serve: %s needs a value\n",
			    a);
			return -1;
		}
		i++;
		if (!strcmp(a, "--broker"))
			c->broker = val;
		else if (!strcmp(a, "--runs")) {
			if (cli_parse_long(a, val, 1, LONG_MAX, &c->runs) == -1)
				return -1;
		} else if (!strcmp(a, "--max-time")) {
			if (cli_parse_long(a, val, 100, LONG_MAX / 1000000,
			    &c->max_time) == -1)
				return -1;
		} else {
			fprintf(stderr, "sipc bench serve: unknown option "
			    "'%s'\n", a);
			return -1;
		}
	}
	if (c->handle == NULL || strlen(c->handle) > HANDLE_ROOM) {
		fprintf(stderr, "sipc bench serve: a HANDLE of 1 to %d bytes "
		    "is needed\n", HANDLE_ROOM);
		return -1;
	}
	return bench_broker_choice("sipc bench serve", local, &c->broker);
}

/*
 * The EPM, the senders (HANDLE.report, HANDLE.pong) and then the
 * receivers (HANDLE.ping, HANDLE): a receiver that exists can be sent to,
 * and its answers must have somewhere to go.  0 or -1 after a message.
 */
static int
serve_open(struct serve *s, const struct serve_cfg *c)
{
	struct sipc_receiver_opts ro;
	struct sipc_sender_opts so;
	char name[300];
	int rc;

	if (c->broker == NULL) {
		if ((rc = sipc_epm_local(&s->epm)) != 0) {
			fprintf(stderr, "sipc bench serve: local registry: "
			    "%s\n", bench_errtext(rc));
			return -1;
		}
	} else if (cli_epm(c->broker, 10000, &s->epm) != 0)
		return -1;
	sipc_sender_opts_init(&so);
	so.linger_ms = 2000;
	snprintf(name, sizeof(name), "%s.report", c->handle);
	if ((rc = sipc_sender_new(name, s->epm, &so, &s->tx_report)) != 0)
		goto fail;
	snprintf(name, sizeof(name), "%s.pong", c->handle);
	if ((rc = sipc_sender_new(name, s->epm, &so, &s->tx_pong)) != 0)
		goto fail;
	sipc_receiver_opts_init(&ro);
	ro.on_message = serve_ping;
	ro.arg = s;
	snprintf(name, sizeof(name), "%s.ping", c->handle);
	if ((rc = sipc_receiver_new(name, s->epm, &ro, &s->rx_ping)) != 0)
		goto fail;
	ro.on_message = serve_data;
	ro.on_gap = serve_gap;
	snprintf(name, sizeof(name), "%s", c->handle);
	if ((rc = sipc_receiver_new(name, s->epm, &ro, &s->rx_data)) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "sipc bench serve: %s: %s\n", name, bench_errtext(rc));
	return -1;
}

static void
serve_close(struct serve *s)
{
	/* Receivers first: no callback may use tx_pong after it closes. */
	sipc_receiver_close(s->rx_data);
	sipc_receiver_close(s->rx_ping);
	sipc_sender_close(s->tx_pong);
	sipc_sender_close(s->tx_report);
	sipc_epm_close(s->epm);
}

/* Answers a BEGIN with READY once the way back (and, for round trips,
 * the echo path) is open. */
static void
serve_ready(struct serve *s, const struct serve_cfg *c,
    const struct sevent *e)
{
	uint8_t ready[CTL_LEN];
	int rc;

	if (e->mode == MODE_LATENCY && (rc = sipc_sender_wait_receivers(
	    s->tx_pong, 1, 10000)) != 0) {
		if (!c->quiet)
			fprintf(stderr, "sipc bench serve: no receiver of "
			    "%s.pong: %s\n", c->handle, bench_errtext(rc));
		return;
	}
	bench_msg_init(ready, sizeof(ready), K_READY);
	bench_put64(ready + F_RUN, e->run);
	bench_put64(ready + F_INST, s->instance);
	serve_reply(s->tx_report, ready, sizeof(ready), 10000, c->quiet);
}

/*
 * Serves runs until c->runs are done (0), --max-time passes or a signal
 * in set arrives (0, or 1 when runs were asked for and not done).
 */
static int
serve_loop(struct serve *s, const struct serve_cfg *c, sigset_t *set)
{
	struct timespec zero = { 0, 0 };
	struct sevent e;
	int64_t deadline = c->max_time ? bench_now_ns() + (int64_t)c->max_time *
	    1000000 : 0;
	long done = 0;
	int have;

	for (;;) {
		if (sigtimedwait(set, NULL, &zero) > 0)
			return 0;
		if (deadline && bench_now_ns() > deadline) {
			if (!c->quiet)
				fprintf(stderr, "sipc bench serve: --max-time "
				    "%ld ms passed; stopping\n", c->max_time);
			return c->runs ? 1 : 0;
		}
		pthread_mutex_lock(&s->mu);
		if (s->ev_n == 0)
			bench_cond_wait_ms(&s->cv, &s->mu, SLICE_MS);
		if ((have = s->ev_n > 0) != 0) {
			e = s->ev[s->ev_head];
			s->ev_head = (s->ev_head + 1) % SEV_MAX;
			s->ev_n--;
		}
		if (s->ev_lost && !c->quiet)
			fprintf(stderr, "sipc bench serve: events lost\n");
		s->ev_lost = 0;
		pthread_mutex_unlock(&s->mu);
		if (!have)
			continue;
		if (e.kind == K_BEGIN) {
			serve_ready(s, c, &e);
			continue;
		}
		if (serve_reply(s->tx_report, e.msg, REPORT_LEN, 10000,
		    c->quiet) == 0)
			sipc_sender_flush(s->tx_report, 5000);
		if (c->runs && ++done >= c->runs) {
			serve_linger(s->rx_data, s->rx_ping);
			return 0;
		}
	}
}

int
bench_serve(int argc, char **argv)
{
	struct serve_cfg c;
	struct serve *s;
	sigset_t set;
	char ep[160];
	int rc, status = 1;

	if ((rc = serve_parse(argc, argv, &c)) != 0)
		return rc == 1 ? 0 : 2;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fprintf(stderr, "sipc bench serve: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&s->mu, NULL);
	bench_cond_init_mono(&s->cv);
	s->instance = bench_random64();
	/* Before any thread exists, so that they all inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (serve_open(s, &c) == 0) {
		if (!c.quiet && sipc_receiver_endpoint(s->rx_data, ep,
		    sizeof(ep)) == 0)
			fprintf(stderr, "sipc bench serve: '%s' at %s (%s); "
			    "waiting for benchmark runs\n", c.handle, ep,
			    c.broker ? c.broker : "local registry");
		status = serve_loop(s, &c, &set);
	}
	serve_close(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return status;
}
