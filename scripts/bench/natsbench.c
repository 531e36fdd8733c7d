/*
 * natsbench.c - bench-nats: the NATS side of `make bench`'s request/reply
 * cases, with Debian's libnats (the C client) and a nats-server that
 * bench-run starts on a loopback port.  Written the way the client's
 * documentation suggests, with its default options.
 *
 *   bench-nats rtt      --url URL [--size B] [--count N]
 *                       natsConnection_Request(), one at a time
 *   bench-nats pipeline --url URL [--size B] [--count N] [--receivers W]
 *                       W (64) requests outstanding: PublishRequest() with
 *                       one reply inbox, answers taken from it
 *
 * The responder is a child process (forked before any NATS connection
 * exists) with its own connection, echoing every request to its reply
 * subject; it reports its CPU time over a pipe at the end.  Prints one
 * JSON object; exit 0, 1 on errors, 2 on bad usage.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "common.h"

#define TIMEOUT_MS	30000
#define SUBJECT		"sipc.bench.rpc"

static struct case_opts cfg;
static const char *url;

struct responder {
	int	pipe;	/* child -> parent: ready, then CPU time */
	int	asap;
};

static void
ncheck(natsStatus s, const char *what)
{
	if (s != NATS_OK)
		fatal("%s: %s", what, natsStatus_GetText(s));
}

/* A connection to url; asap: every publish goes out at once. */
static natsConnection *
nconnect(int asap)
{
	natsConnection *nc;
	natsOptions *o;

	ncheck(natsOptions_Create(&o), "options");
	ncheck(natsOptions_SetURL(o, url), "URL");
	ncheck(natsOptions_SetSendAsap(o, asap != 0), "SendAsap");
	ncheck(natsConnection_Connect(&nc, o), "connect");
	natsOptions_Destroy(o);
	return nc;
}

static int
responder_main(void *arg)
{
	struct responder *r = arg;
	natsConnection *nc;
	natsSubscription *sub;
	natsMsg *m;
	int64_t cpu0 = 0;
	int first = 1, end = 0;
	char ok = 'r';

	nc = nconnect(r->asap);
	ncheck(natsConnection_SubscribeSync(&sub, nc, SUBJECT), "subscribe");
	ncheck(natsConnection_Flush(nc), "responder flush");
	if (write_full(r->pipe, &ok, 1) == -1)
		fatal_sys("responder: ready pipe");
	while (!end) {
		ncheck(natsSubscription_NextMsg(&m, sub, TIMEOUT_MS),
		    "responder: next request");
		if (first) {
			cpu0 = cpu_self_ns();
			first = 0;
		}
		end = bm_kind(natsMsg_GetData(m),
		    (size_t)natsMsg_GetDataLength(m)) == K_END;
		ncheck(natsConnection_Publish(nc, natsMsg_GetReply(m),
		    natsMsg_GetData(m), natsMsg_GetDataLength(m)), "reply");
		natsMsg_Destroy(m);
	}
	ncheck(natsConnection_Flush(nc), "responder flush");
	cpu0 = cpu_self_ns() - cpu0;
	if (write_full(r->pipe, &cpu0, sizeof(cpu0)) == -1)
		fatal_sys("responder: report pipe");
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	nats_Close();
	return 0;
}

/* The responder child, ready; its pipe into *fd. */
static void
responder_start(int *fd, int asap)
{
	struct responder r;
	int p[2];
	char ok;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal_sys("pipe");
	r.pipe = p[1];
	r.asap = asap;
	kid_start(responder_main, &r);
	close(p[1]);
	if (read_full(p[0], &ok, 1, TIMEOUT_MS) == -1)
		fatal_sys("the responder did not start");
	*fd = p[0];
}

/* Ends the responder; its CPU time. */
static int64_t
responder_stop(natsConnection *nc, int fd)
{
	uint8_t end[CTL_LEN];
	natsMsg *m;
	int64_t cpu;

	bm_init(end, sizeof(end), K_END);
	ncheck(natsConnection_Request(&m, nc, SUBJECT, end, sizeof(end),
	    TIMEOUT_MS), "END");
	natsMsg_Destroy(m);
	if (read_full(fd, &cpu, sizeof(cpu), TIMEOUT_MS) == -1)
		fatal_sys("report of the responder");
	close(fd);
	if (kids_reap(5000))
		fatal("the responder failed");
	return cpu;
}

static int
same(const natsMsg *m, const uint8_t *msg)
{
	return natsMsg_GetDataLength(m) == (int)cfg.size &&
	    memcmp(natsMsg_GetData(m), msg, (size_t)cfg.size) == 0;
}

static int
run_rtt(void)
{
	natsConnection *nc;
	natsMsg *m;
	uint8_t *msg;
	int64_t *samples, t, t0, cpu0, cpu_rx;
	long i, warm = warmup_count(cfg.count, 1000), bad = 0;
	int fd;

	responder_start(&fd, 1);
	nc = nconnect(1);
	if ((msg = malloc((size_t)cfg.size)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_PING);
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (i = 0; i < warm + cfg.count; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			t0 = mono_ns();
		}
		put64(msg + 8, (uint64_t)i);
		t = mono_ns();
		ncheck(natsConnection_Request(&m, nc, SUBJECT, msg,
		    (int)cfg.size, TIMEOUT_MS), "request");
		if (i >= warm)
			samples[i - warm] = mono_ns() - t;
		bad += !same(m, msg);
		natsMsg_Destroy(m);
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	cpu_rx = responder_stop(nc, fd);
	natsConnection_Destroy(nc);
	nats_Close();
	if (bad)
		fatal("%ld replies were not their request", bad);
	json_samples(&cfg, "rtt", "nats", t0, samples, cpu0 + cpu_rx, 1,
	    "natsConnection_Request() to its reply");
	free(msg);
	free(samples);
	return 0;
}

static int
run_pipeline(void)
{
	natsConnection *nc;
	natsSubscription *sub;
	natsInbox *inbox;
	natsMsg *m;
	uint8_t *msg;
	int64_t t0, cpu0, cpu_rx;
	long sent = 0, got = 0, bad = 0, window = cfg.receivers;
	int fd;

	responder_start(&fd, 0);
	nc = nconnect(0);
	ncheck(natsInbox_Create(&inbox), "inbox");
	ncheck(natsConnection_SubscribeSync(&sub, nc, inbox), "subscribe");
	if ((msg = malloc((size_t)cfg.size)) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_PING);
	/* One round trip first: everything is up when the clock starts. */
	ncheck(natsConnection_Request(&m, nc, SUBJECT, msg, (int)cfg.size,
	    TIMEOUT_MS), "first request");
	natsMsg_Destroy(m);
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (; sent < window && sent < cfg.count; sent++)
		ncheck(natsConnection_PublishRequest(nc, SUBJECT, inbox, msg,
		    (int)cfg.size), "request");
	while (got < cfg.count) {
		ncheck(natsSubscription_NextMsg(&m, sub, TIMEOUT_MS),
		    "reply");
		bad += !same(m, msg);
		natsMsg_Destroy(m);
		got++;
		if (sent < cfg.count) {
			ncheck(natsConnection_PublishRequest(nc, SUBJECT,
			    inbox, msg, (int)cfg.size), "request");
			sent++;
		}
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	cpu_rx = responder_stop(nc, fd);
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	natsConnection_Destroy(nc);
	nats_Close();
	free(msg);
	return json_pipeline(&cfg, "pipeline", "nats", window, t0, cpu0 + cpu_rx,
	    bad);
}

int
main(int argc, char **argv)
{
	char **args;
	int i, n = 0;

	prog = "bench-nats";
	signal(SIGPIPE, SIG_IGN);
	/* --url is ours; the rest are the common case options. */
	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		fatal("out of memory");
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--url") && i + 1 < argc)
			url = argv[++i];
		else
			args[n++] = argv[i];
	}
	cfg.size = 64;
	cfg.count = 100000;
	cfg.receivers = 64;
	case_opts_parse(n, args, &cfg, 0, "usage: bench-nats rtt|pipeline "
	    "--url URL [--size B] [--count N] [--receivers WINDOW]");
	if (url == NULL)
		usage_error("--url nats://127.0.0.1:PORT is needed");
	if (cfg.size < CTL_LEN)
		usage_error("--size at least %d", CTL_LEN);
	if (!strcmp(cfg.mode, "rtt"))
		return run_rtt();
	if (!strcmp(cfg.mode, "pipeline"))
		return run_pipeline();
	usage_error("unknown case '%s' (rtt, pipeline)", cfg.mode);
}
