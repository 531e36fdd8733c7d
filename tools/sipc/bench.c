/*
 * bench.c - sipc bench: measure sipc on this host, or between hosts.
 *
 *   sipc bench throughput|fanout|latency|connect [options]
 *   sipc bench serve HANDLE [options]    receivers for runs from elsewhere
 *
 * The measuring side sends; its receivers are "serve" processes: children
 * it starts itself (the local registry, in a private directory; or a
 * broker with --spawn), or ones a user started on other hosts (--broker).
 * Serve processes count and check every message and report back over sipc
 * itself (HANDLE.report); round trips are ping-pong over HANDLE.ping and
 * HANDLE.pong, echoed from inside the receiving callback.
 *
 * Uses only the public API (sipc.h), like any other program.  It measures;
 * it tunes nothing and is no part of the library.  The side-by-side
 * comparison with ZeroMQ and plain TCP is `make bench` (scripts/bench/).
 *
 * This file is the command: options, usage, output and cmd_bench().  The
 * serve processes are bench_serve.c; the measuring side's set-up, children
 * and private registry bench_run.c; the measurements bench_cases.c; the
 * helpers they all use bench_util.c; bench_int.h holds them together.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/jsonout.h"
#include "bench.h"
#include "bench_int.h"
#include "opts.h"

/* SIGINT or SIGTERM: every loop and wait of the bench stops and cleans
 * up (children, the private directory). */
static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	interrupted = sig;
}

int
bench_check_interrupted(void)
{
	if (!interrupted)
		return 0;
	fprintf(stderr, "sipc bench: interrupted by signal %d\n",
	    (int)interrupted);
	return -1;
}

/* ---- Options ------------------------------------------------------------- */

/* --broker, else $SIPC_BROKER unless --local, into *broker (NULL: the
 * local registry); 0, or -1 after a message (who: "sipc bench"). */
int
bench_broker_choice(const char *who, int local, const char **broker)
{
	const char *env;

	if (local && *broker) {
		fprintf(stderr, "%s: --local and --broker exclude each other\n",
		    who);
		return -1;
	}
	if (!local && *broker == NULL && (env = getenv("SIPC_BROKER")) &&
	    *env)
		*broker = env;
	return 0;
}

void
bench_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sipc bench throughput|fanout|latency|connect\n"
	    "                  [--size BYTES] [--count N] [--receivers N]\n"
	    "                  [--broker HOST:PORT [--spawn] | --local]\n"
	    "                  [--handle HANDLE] [--timeout MS] "
	    "[--max-time MS] [--loan] [--from-thread]\n"
	    "                  [--handoff-only] [--json]\n"
	    "       sipc bench serve HANDLE [--broker HOST:PORT | --local]\n"
	    "                  [--runs N] [--max-time MS] [--quiet]\n"
	    "       sipc bench rpc [--size BYTES] [--count N] [--window N]\n"
	    "                  [--cases rtt,pipeline,first,clients] "
	    "[--clients N] [--procs N]\n"
	    "                  [--responders N] "
	    "[--broker HOST:PORT | --local] [--json]\n"
	    "\n"
	    "throughput  one sender, --receivers (1) receivers: --count "
	    "messages of\n"
	    "            --size bytes (64), then flush; the time runs from "
	    "the first\n"
	    "            send until every receiver has every message.\n"
	    "fanout      the same with 8 receivers by default; rates count "
	    "deliveries\n"
	    "            (messages x receivers).  --loan: written in place "
	    "with\n"
	    "            sipc_send_loan() and sipc_send_commit() (zero "
	    "copy).\n"
	    "latency     ping-pong: a message to HANDLE.ping, echoed back on\n"
	    "            HANDLE.pong from the receiving callback; round trips "
	    "in us.\n"
	    "            The next ping goes from the pong's callback, or with\n"
	    "            --from-thread from the main thread, woken by it.\n"
	    "--handoff-only  this process's senders hand every message to "
	    "the I/O\n"
	    "            thread (sipc_sender_opts.handoff_only: no direct "
	    "sends).\n"
	    "connect     from sipc_sender_new() on a new handle until its "
	    "first\n"
	    "            message reaches a fresh receiver (registered before, "
	    "in this\n"
	    "            process on its own EPM): discovery, connection, "
	    "handshake and\n"
	    "            one message; --count times, in us.\n"
	    "rpc         request/reply against a `sipc reply` child: rtt (one "
	    "request\n"
	    "            at a time, round trips in us), pipeline (--window "
	    "(64)\n"
	    "            outstanding: requests/s), first (a new requester "
	    "each time:\n"
	    "            create, connect, one round trip, in us), clients "
	    "(--clients\n"
	    "            (5000) requesters at once from --procs (10) "
	    "processes, one\n"
	    "            request each, against --responders (4)).\n"
	    "\n"
	    "Without --broker (and $SIPC_BROKER), or with --local, the bench "
	    "uses the\n"
	    "local registry in a private temporary directory and starts its "
	    "receivers\n"
	    "as child processes.  With --broker it uses receivers started "
	    "elsewhere:\n"
	    "    sipc bench serve HANDLE --broker HOST:PORT   (on each "
	    "receiving host)\n"
	    "    sipc bench fanout --handle HANDLE --broker HOST:PORT "
	    "--receivers N\n"
	    "or, with --spawn, starts them here.  One bench at a time per "
	    "HANDLE\n"
	    "(default " DEF_HANDLE ").  serve answers every kind of run until "
	    "--runs\n"
	    "runs are done, --max-time passes, or SIGINT/SIGTERM.\n"
	    "\n"
	    "Reported: messages/s, MB/s (10^6 payload bytes delivered), loss "
	    "(must\n"
	    "be 0), CPU time per message (this process and its receivers, "
	    "each by\n"
	    "getrusage over the measured interval), latency percentiles.  "
	    "--json\n"
	    "prints one JSON object instead.  --timeout bounds every wait "
	    "(10000 ms),\n"
	    "--max-time the whole measurement (120000 ms).  Exit 0 when "
	    "nothing was\n"
	    "lost, 1 on errors or loss, 2 on bad usage.\n");
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	int i, local = 0, rx_set = 0, count_set = 0;
	long v;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			bench_usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(a, "--local")) {
			local = 1;
			continue;
		}
		if (!strcmp(a, "--spawn")) {
			o->spawn = 1;
			continue;
		}
		if (!strcmp(a, "--loan")) {
			o->loan = 1;
			continue;
		}
		if (!strcmp(a, "--from-thread")) {
			o->from_thread = 1;
			continue;
		}
		if (!strcmp(a, "--handoff-only")) {
			o->handoff_only = 1;
			continue;
		}
		if (a[0] != '-') {
			fprintf(stderr, "sipc bench: unexpected argument "
			    "'%s'\n", a);
			return -1;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc bench: %s needs a value\n", a);
			return -1;
		}
		i++;
		if (!strcmp(a, "--broker"))
			o->broker = val;
		else if (!strcmp(a, "--handle")) {
			if (strlen(val) == 0 || strlen(val) > HANDLE_ROOM) {
				fprintf(stderr, "sipc bench: --handle: 1 to "
				    "%d bytes\n", HANDLE_ROOM);
				return -1;
			}
			o->handle = val;
		} else if (!strcmp(a, "--size")) {
			if (cli_parse_long(a, val, BM_HDR, MAX_SIZE,
			    &o->size) == -1)
				return -1;
		} else if (!strcmp(a, "--count")) {
			if (cli_parse_long(a, val, 1, 100000000, &o->count) ==
			    -1)
				return -1;
			count_set = 1;
		} else if (!strcmp(a, "--receivers")) {
			if (cli_parse_long(a, val, 1, MAX_RECEIVERS,
			    &o->receivers) == -1)
				return -1;
			rx_set = 1;
		} else if (!strcmp(a, "--timeout")) {
			if (cli_parse_long(a, val, 100, 3600000, &v) == -1)
				return -1;
			o->timeout_ms = v;
		} else if (!strcmp(a, "--max-time")) {
			if (cli_parse_long(a, val, 100, 86400000, &v) == -1)
				return -1;
			o->max_time_ms = v;
		} else {
			fprintf(stderr, "sipc bench: unknown option '%s'\n",
			    a);
			return -1;
		}
	}
	if (bench_broker_choice("sipc bench", local, &o->broker) == -1)
		return -1;
	if (o->broker == NULL)
		o->spawn = 1;		/* local: always our own children */
	if (o->mode == MODE_FANOUT && !rx_set)
		o->receivers = 8;
	if ((o->mode == MODE_LATENCY || o->mode == MODE_CONNECT) &&
	    o->count > 10000000) {
		fprintf(stderr, "sipc bench: --count: at most 10000000 for "
		    "%s\n", o->mode == MODE_LATENCY ? "latency" : "connect");
		return -1;
	}
	if (o->mode == MODE_CONNECT && rx_set)
		fprintf(stderr, "sipc bench: connect uses one receiver at a "
		    "time; --receivers ignored\n");
	if (!count_set) {
		if (o->mode == MODE_LATENCY)
			o->count = 10000;
		else if (o->mode == MODE_CONNECT)
			o->count = 200;
		else {
			/* About 1 GiB of payload, 1000 to 10^6 messages. */
			o->count = (1L << 30) / o->size;
			if (o->count > 1000000)
				o->count = 1000000;
			if (o->count < 1000)
				o->count = 1000;
		}
	}
	return 0;
}

/* ---- Output -------------------------------------------------------------- */

static const char *
epm_name(const struct bench *b)
{
	return b->o.broker ? "broker" : "local";
}

/* Nearest-rank percentile q (0..1] of sorted v[0..n), in microseconds. */
static double
pct_us(const int64_t *v, size_t n, double q)
{
	double rank = q * (double)n;
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)rank;
	if ((double)i < rank)
		i++;		/* ceil */
	i = i == 0 ? 0 : i - 1;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

static const char *
mode_name(enum mode m)
{
	switch (m) {
	case MODE_THROUGHPUT:
		return "throughput";
	case MODE_FANOUT:
		return "fanout";
	case MODE_LATENCY:
		return "latency";
	default:
		return "connect";
	}
}

/* One JSON line (json-c, via common/jsonout.c): the keys make bench and
 * scripts read; numbers keep the precision they always had. */
static void
print_json(const struct bench *b, const struct result *r)
{
	struct json_object *o = json_object_new_object();
	double msgs = (double)r->messages;
	double cpu = (double)(r->cpu_self + r->cpu_rx);
	int err = 0;

	err |= jo_add(o, "case", jo_cstr(mode_name(b->o.mode)));
	err |= jo_add(o, "epm", jo_cstr(epm_name(b)));
	err |= jo_add(o, "receivers_started",
	    jo_cstr(b->o.spawn ? "here" : "elsewhere"));
	err |= jo_add(o, "size", jo_i64(b->o.size));
	err |= jo_add(o, "count", jo_i64(b->o.count));
	if (b->o.from_thread)
		err |= jo_add(o, "from_thread", jo_i64(1));
	if (b->o.handoff_only)
		err |= jo_add(o, "handoff_only", jo_i64(1));
	err |= jo_add(o, "receivers", jo_u64(r->receivers));
	err |= jo_add(o, "seconds", jo_num(r->seconds, "%.6f"));
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT) {
		err |= jo_add(o, "messages_per_s",
		    jo_num(msgs / r->seconds, "%.1f"));
		err |= jo_add(o, "deliveries_per_s",
		    jo_num((double)r->deliveries / r->seconds, "%.1f"));
		err |= jo_add(o, "mb_per_s", jo_num((double)r->deliveries *
		    (double)b->o.size / r->seconds / 1e6, "%.3f"));
		err |= jo_add(o, "end_time", jo_cstr(r->rx_clock ?
		    "receiver clock" : "report arrival"));
	}
	err |= jo_add(o, "lost", jo_u64(r->lost));
	err |= jo_add(o, "errors", jo_u64(r->bad));
	err |= jo_add(o, "gaps", jo_u64(r->gaps));
	err |= jo_add(o, "sender_lost", jo_u64(r->sender_lost));
	err |= jo_add(o, "cpu_ns_per_message", jo_num(cpu / msgs, "%.1f"));
	err |= jo_add(o, "sender_cpu_ns_per_message",
	    jo_num((double)r->cpu_self / msgs, "%.1f"));
	err |= jo_add(o, "receiver_cpu_ns_per_message",
	    jo_num((double)r->cpu_rx / msgs, "%.1f"));
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT) {
		err |= jo_add(o, "sender_rss_before_kb",
		    jo_i64(r->rss_before_kb));
		err |= jo_add(o, "sender_peak_rss_kb", jo_i64(r->peak_rss_kb));
		err |= jo_add(o, "queued_bytes_max", jo_u64(r->queued_max));
		err |= jo_add(o, "hwm_bytes", jo_u64(r->hwm));
		err |= jo_add(o, "sent_direct", jo_u64(r->sent_direct));
	}
	if (r->nsamples) {
		err |= jo_add(o, "p50_us", jo_num(pct_us(r->samples,
		    r->nsamples, 0.50), "%.2f"));
		err |= jo_add(o, "p99_us", jo_num(pct_us(r->samples,
		    r->nsamples, 0.99), "%.2f"));
		err |= jo_add(o, "p999_us", jo_num(pct_us(r->samples,
		    r->nsamples, 0.999), "%.2f"));
		err |= jo_add(o, "min_us", jo_num(pct_us(r->samples,
		    r->nsamples, 0.0), "%.2f"));
		err |= jo_add(o, "max_us", jo_num(pct_us(r->samples,
		    r->nsamples, 1.0), "%.2f"));
		if (b->o.mode == MODE_LATENCY)
			err |= jo_add(o, "round_trips_per_s",
			    jo_num(msgs / r->seconds, "%.1f"));
	}
	if (r->ready) {
		err |= jo_add(o, "ready_p50_us", jo_num(pct_us(r->ready,
		    r->nsamples, 0.50), "%.2f"));
		err |= jo_add(o, "definition", jo_cstr("from sipc_sender_new() "
		    "to on_message of the first message at a fresh receiver"));
	}
	if (err || jo_write(stdout, o, JO_SPACED) == -1)
		fprintf(stderr, "sipc bench: cannot write the JSON result\n");
	json_object_put(o);
}

static void
print_text(const struct bench *b, const struct result *r)
{
	double msgs = (double)r->messages;
	double cpu = (double)(r->cpu_self + r->cpu_rx);

	printf("sipc bench %s: %ld B messages, %s", mode_name(b->o.mode),
	    b->o.size, b->o.broker ? "broker " : "local registry (private "
	    "directory)");
	if (b->o.broker)
		printf("%s", b->o.broker);
	printf(", receivers %s\n", b->o.spawn ? "started here" :
	    "started elsewhere");
	if (b->o.mode == MODE_THROUGHPUT || b->o.mode == MODE_FANOUT) {
		printf("  messages   %llu to each of %zu receivers; "
		    "delivered in order %llu, lost %llu, out of order or "
		    "damaged %llu\n", (unsigned long long)r->messages,
		    r->receivers, (unsigned long long)r->deliveries,
		    (unsigned long long)r->lost, (unsigned long long)r->bad);
		printf("  time       %.3f s, first send to last delivery "
		    "(%s)\n", r->seconds, r->rx_clock ? "receivers' clock" :
		    "report arrival");
		printf("  rate       %.0f messages/s, %.0f deliveries/s, "
		    "%.1f MB/s\n", msgs / r->seconds,
		    (double)r->deliveries / r->seconds,
		    (double)r->deliveries * (double)b->o.size / r->seconds /
		    1e6);
		printf("  cpu        %.0f ns per message (sender %.0f, "
		    "receivers %.0f)\n", cpu / msgs,
		    (double)r->cpu_self / msgs, (double)r->cpu_rx / msgs);
		printf("  sender     RSS %ld kB before, peak %ld kB; largest "
		    "backlog %zu B (high-water mark %zu B)\n",
		    r->rss_before_kb, r->peak_rss_kb, r->queued_max, r->hwm);
		return;
	}
	if (b->o.mode == MODE_LATENCY)
		printf("  round trip %llu x (to %zu echoing receiver%s), "
		    "%.0f/s\n", (unsigned long long)r->messages, r->receivers,
		    r->receivers == 1 ? "" : "s", msgs / r->seconds);
	else
		printf("  connect    %llu x: sipc_sender_new() on a new "
		    "handle until on_message\n             of its first "
		    "message at a fresh receiver\n",
		    (unsigned long long)r->messages);
	printf("  us         p50 %.1f  p99 %.1f  p99.9 %.1f  (min %.1f, "
	    "max %.1f)\n", pct_us(r->samples, r->nsamples, 0.50),
	    pct_us(r->samples, r->nsamples, 0.99),
	    pct_us(r->samples, r->nsamples, 0.999),
	    pct_us(r->samples, r->nsamples, 0.0),
	    pct_us(r->samples, r->nsamples, 1.0));
	if (r->ready)
		printf("  of which   p50 %.1f us until the sender was "
		    "connected\n", pct_us(r->ready, r->nsamples, 0.50));
	printf("  cpu        %.0f ns per %s (this process %.0f, "
	    "receivers %.0f)\n", cpu / msgs, b->o.mode == MODE_LATENCY ?
	    "round trip" : "connect", (double)r->cpu_self / msgs,
	    (double)r->cpu_rx / msgs);
	printf("  lost       %llu\n", (unsigned long long)r->lost);
}

/* ---- Entry --------------------------------------------------------------- */

int
cmd_bench(int argc, char **argv)
{
	struct sigaction sa;
	struct bench *b;
	struct result r;
	enum mode m;
	int ret = 1;

	if (argc < 1) {
		bench_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		bench_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[0], "serve"))
		return bench_serve(argc - 1, argv + 1);
	if (!strcmp(argv[0], "rpc"))
		return bench_rpc(argc - 1, argv + 1);
	if (!strcmp(argv[0], "rpc-clients"))
		return bench_rpc_clients(argc - 1, argv + 1);
	if (!strcmp(argv[0], "throughput"))
		m = MODE_THROUGHPUT;
	else if (!strcmp(argv[0], "fanout"))
		m = MODE_FANOUT;
	else if (!strcmp(argv[0], "latency"))
		m = MODE_LATENCY;
	else if (!strcmp(argv[0], "connect"))
		m = MODE_CONNECT;
	else {
		fprintf(stderr, "sipc bench: unknown case '%s'\n", argv[0]);
		bench_usage(stderr);
		return 2;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		return 1;
	}
	b->o.mode = m;
	b->o.size = 64;
	b->o.receivers = 1;
	b->o.timeout_ms = 10000;
	b->o.max_time_ms = 120000;
	if (parse_opts(argc - 1, argv + 1, &b->o) == -1) {
		free(b);
		return 2;
	}
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&b->mu, NULL);
	bench_cond_init_mono(&b->cv);
	b->run = bench_random64();
	b->seq = -1;
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Children of ours get a handle of their own, so that nothing else
	 * answers (a broker may serve other benches at the same time). */
	if (b->o.spawn)
		snprintf(b->handle, sizeof(b->handle), "%s.%ld",
		    b->o.handle ? b->o.handle : DEF_HANDLE, (long)getpid());
	else
		snprintf(b->handle, sizeof(b->handle), "%s",
		    b->o.handle ? b->o.handle : DEF_HANDLE);
	if (b->o.broker == NULL && bench_tmpdir_make(b) == -1)
		goto out;
	if (bench_epm(b, &b->epm) == -1)
		goto out;
	if (m != MODE_CONNECT && bench_receiver(b, ".report",
	    bench_report_cb, &b->rx_report) == -1)
		goto out;
	switch (m) {
	case MODE_THROUGHPUT:
	case MODE_FANOUT:
		ret = bench_run_throughput(b, &r);
		break;
	case MODE_LATENCY:
		ret = bench_run_latency(b, &r);
		break;
	case MODE_CONNECT:
		ret = bench_run_connect(b, &r);
		break;
	}
	ret = ret == 0 ? 0 : 1;
	if (ret == 0) {
		if (b->o.json)
			print_json(b, &r);
		else
			print_text(b, &r);
		if (r.lost || r.bad || r.gaps || r.sender_lost) {
			fprintf(stderr, "sipc bench: LOSS: %llu lost, %llu out "
			    "of order or damaged, %llu reported missing, %llu "
			    "reported lost by the sender\n",
			    (unsigned long long)r.lost,
			    (unsigned long long)r.bad,
			    (unsigned long long)r.gaps,
			    (unsigned long long)r.sender_lost);
			ret = 1;
		}
	}
out:
	/* Children end after their report; whatever is left is killed. */
	bench_kids_reap(b, ret == 0 ? 5000 : 0);
	sipc_receiver_close(b->rx_pong);
	sipc_receiver_close(b->rx_report);
	sipc_epm_close(b->epm);
	bench_tmpdir_remove(b);
	free(r.samples);
	free(r.ready);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
	return ret;
}
