/*
 * sipc.c - the sipc command: send and receive messages from scripts.
 *
 *   sipc recv HANDLE [options]       print each message
 *   sipc send HANDLE [options] [MESSAGE...]
 *   sipc reply HANDLE [options]      answer requests (rpc.c)
 *   sipc request HANDLE [DATA]       ask one responder, or all (rpc.c)
 *
 * Uses only the public API (sipc.h), like any other program would.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "bench.h"
#include "opts.h"
#include "rpc.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sipc recv HANDLE [--broker HOST:PORT] [--listen ADDR]\n"
	    "                        [--register-address IP] [--ports LIST]\n"
	    "                        [--count N] [--output FILE]\n"
	    "                        [--framing lines|length] [--verbose]\n"
	    "       sipc send HANDLE [--broker HOST:PORT] [--wait-receivers N]\n"
	    "                        [--timeout MS] [--file FILE] [--compress]\n"
	    "                        [--policy block|drop|disconnect]\n"
	    "                        [--hwm BYTES] [MESSAGE...]\n"
	    "       sipc reply HANDLE [--broker HOST:PORT] [--exec CMD] "
	    "[--jobs N]\n"
	    "                         [--count N] [--listen ADDR] [--verbose]\n"
	    "       sipc request HANDLE [DATA | --file FILE] [--timeout MS]\n"
	    "                         [--all] [--compress] [--broker HOST:PORT]\n"
	    "       sipc bench throughput|fanout|latency|connect [options]\n"
	    "       sipc bench serve HANDLE [options]   (sipc bench --help)\n"
	    "security (recv, send): [--tls-ca FILE] [--tls-cert FILE --tls-key "
	    "FILE]\n"
	    "                        [--tls-server-name NAME] "
	    "[--tls-verify-peer]\n"
	    "                        [--password-file FILE [--salt SALT]]\n"
	    "\n"
	    "Without --broker and $SIPC_BROKER, sipc uses the local registry\n"
	    "in $XDG_RUNTIME_DIR/sipc (one user, one machine, no daemon).\n"
	    "\n"
	    "recv prints each message followed by a newline (lines) or as a\n"
	    "4-byte big-endian length and the bytes (length), and exits after\n"
	    "--count messages, or on SIGINT/SIGTERM.\n"
	    "\n"
	    "send sends its MESSAGE arguments, else each line of FILE or of\n"
	    "standard input (without its newline), then waits until every\n"
	    "receiver acknowledged everything.  --timeout (default 10000 ms)\n"
	    "bounds the whole command: the broker, the receivers, sending\n"
	    "and the acknowledgements.  At a receiver's high-water mark (--hwm,\n"
	    "default 8 MiB unacknowledged) --policy block waits, drop skips\n"
	    "the message for it, disconnect cuts it off; both count as lost.\n"
	    "Exit 0 when every message reached every receiver it was sent\n"
	    "to, 1 otherwise (with a count on standard error), 2 on bad "
	    "usage.\n"
	    "\n"
	    "reply answers each request with the request itself, or with\n"
	    "--exec runs CMD (sh -c) per request, the request on its standard\n"
	    "input: its standard output is the reply, a non-zero exit an\n"
	    "error reply; --jobs N runs N at once.  request prints the reply\n"
	    "(with --all, each responder's, one per line) and exits 0 on a\n"
	    "reply, 3 when no responder is registered, 4 on timeout\n"
	    "(default 5000 ms), 5 on an error reply, 6 when the responder\n"
	    "went away, 1 on other errors.\n"
	    "\n"
	    "The security flags apply to the broker session and to the\n"
	    "connections between senders and receivers alike: with TLS a\n"
	    "receiver serves --tls-cert/--tls-key and a sender checks it with\n"
	    "--tls-ca; in password mode (--password-file, or $SIPC_PASSWORD)\n"
	    "both prove they know the password.\n");
}

/* Blocks SIGINT and SIGTERM in every thread; main waits for them. */
static void
block_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- recv ---------------------------------------------------------------- */

struct recv_state {
	FILE		*out;
	int		 length_framing;
	long		 count;		/* 0: no limit */
	atomic_long	 got;
	atomic_int	 done;
	atomic_int	 write_error;
	int		 verbose;
};

static void
recv_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	const void *data = m->data;
	size_t len = m->len;
	struct recv_state *st = arg;
	unsigned char be[4];
	long n;

	(void)rx;
	if (atomic_load(&st->done))
		return;
	if (st->length_framing) {
		be[0] = (unsigned char)(len >> 24);
		be[1] = (unsigned char)(len >> 16);
		be[2] = (unsigned char)(len >> 8);
		be[3] = (unsigned char)len;
		if (fwrite(be, 1, 4, st->out) != 4)
			atomic_store(&st->write_error, errno ? errno : EIO);
	}
	if (len && fwrite(data, 1, len, st->out) != len)
		atomic_store(&st->write_error, errno ? errno : EIO);
	if (!st->length_framing && fputc('\n', st->out) == EOF)
		atomic_store(&st->write_error, errno ? errno : EIO);
	n = atomic_fetch_add(&st->got, 1) + 1;
	if (atomic_load(&st->write_error) || (st->count && n >= st->count))
		atomic_store(&st->done, 1);
}

static void
recv_gap(sipc_receiver *rx, uint64_t sender_id, uint64_t first,
    uint64_t count, void *arg)
{
	(void)rx;
	(void)arg;
	fprintf(stderr, "sipc recv: %llu messages from sender %016llx "
	    "missing (from #%llu)\n", (unsigned long long)count,
	    (unsigned long long)sender_id, (unsigned long long)first);
}

static void
recv_peer(sipc_receiver *rx, uint64_t sender_id, const char *peer, void *arg)
{
	struct recv_state *st = arg;

	(void)rx;
	if (st->verbose)
		fprintf(stderr, "sipc recv: sender %016llx from %s\n",
		    (unsigned long long)sender_id, peer);
}

static int
cmd_recv(int argc, char **argv)
{
	struct sipc_receiver_opts o;
	struct recv_state st;
	sipc_receiver *rx;
	sipc_epm *epm = NULL;
	const char *handle = NULL, *broker = NULL, *output = NULL;
	char ep[160], pw[CLI_PASSWORD_MAX];
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	sigset_t set;
	long v;
	int i, rc, err;

	memset(&st, 0, sizeof(st));
	sipc_receiver_opts_init(&o);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			st.verbose = 1;
			continue;
		}
		if ((rc = cli_security_opt(&o.security, a, val, pw)) != 0) {
			if (rc < 0)
				return 2;
			i += rc - 1;
			continue;
		}
		if (a[0] != '-') {
			if (handle) {
				fprintf(stderr, "sipc recv: unexpected "
				    "argument '%s'\n", a);
				return 2;
			}
			handle = a;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc recv: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--broker"))
			broker = val;
		else if (cli_receiver_opt(&o, a, val))
			;
		else if (!strcmp(a, "--output"))
			output = val;
		else if (!strcmp(a, "--count")) {
			if (cli_parse_long(a, val, 1, LONG_MAX, &v) == -1)
				return 2;
			st.count = v;
		} else if (!strcmp(a, "--framing")) {
			if (!strcmp(val, "length"))
				st.length_framing = 1;
			else if (strcmp(val, "lines")) {
				fprintf(stderr, "sipc recv: --framing: '%s' is "
				    "not lines or length\n", val);
				return 2;
			}
		} else {
			fprintf(stderr, "sipc recv: unknown option '%s'\n", a);
			return 2;
		}
	}
	if (handle == NULL) {
		fprintf(stderr, "sipc recv: a HANDLE is needed\n");
		usage(stderr);
		return 2;
	}
	st.out = stdout;
	if (output && (st.out = fopen(output, "wb")) == NULL) {
		fprintf(stderr, "sipc recv: %s: %s\n", output,
		    strerror(errno));
		return 1;
	}
	cli_security_env(&o.security);
	block_stop_signals(&set);
	if (cli_epm_sec(broker, 5000, &o.security, &epm) != 0)
		return 1;
	o.on_message = recv_message;
	o.on_gap = recv_gap;
	o.on_connect = recv_peer;
	o.on_disconnect = recv_peer;
	o.arg = &st;
	if ((rc = sipc_receiver_new(handle, epm, &o, &rx)) != 0) {
		fprintf(stderr, "sipc recv: %s\n", *sipc_errmsg() ?
		    sipc_errmsg() : sipc_strerror(rc));
		sipc_epm_close(epm);
		return 1;
	}
	if (st.verbose && sipc_receiver_endpoint(rx, ep, sizeof(ep)) == 0)
		fprintf(stderr, "sipc recv: '%s' at %s\n", handle, ep);
	while (!atomic_load(&st.done)) {
		if (sigtimedwait(&set, NULL, &ts) > 0)
			break;
	}
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	err = atomic_load(&st.write_error);
	if (fflush(st.out) != 0 && err == 0)
		err = errno;
	if (output && fclose(st.out) != 0 && err == 0)
		err = errno;
	if (err) {
		fprintf(stderr, "sipc recv: writing %s: %s\n",
		    output ? output : "standard output", strerror(err));
		return 1;
	}
	return 0;
}

/* ---- send ---------------------------------------------------------------- */

struct send_state {
	atomic_ullong	lost;
	atomic_int	reported;
};

static void
send_failed(sipc_sender *tx, int error, const char *endpoint,
    uint64_t lost, void *arg)
{
	struct send_state *st = arg;

	(void)tx;
	atomic_fetch_add(&st->lost, lost);
	fprintf(stderr, "sipc send: %llu messages to %s lost: %s\n",
	    (unsigned long long)lost, endpoint, sipc_strerror(error));
}

/* Milliseconds on the monotonic clock. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (of now_ms()), at least 0. */
static int
ms_left(int64_t deadline)
{
	int64_t now = now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/*
 * Sends one message before deadline.  The sender waits at most
 * SEND_SLICE_MS in sipc_send at a high-water mark (and does not send then),
 * so that the whole command keeps to --timeout: try again while time is
 * left.
 */
#define SEND_SLICE_MS	50
static int
send_one(sipc_sender *tx, const char *data, size_t len, long *sent,
    int64_t deadline, long timeout)
{
	int rc;

	while ((rc = sipc_send(tx, data, len)) == SIPC_ETIMEDOUT &&
	    ms_left(deadline) > 0)
		;
	if (rc == SIPC_ETIMEDOUT) {
		fprintf(stderr, "sipc send: a receiver stayed at its "
		    "high-water mark; gave up after %ld ms\n", timeout);
		return -1;
	}
	if (rc != 0) {
		fprintf(stderr, "sipc send: %s\n", *sipc_errmsg() ?
		    sipc_errmsg() : sipc_strerror(rc));
		return -1;
	}
	(*sent)++;
	return 0;
}

static int
cmd_send(int argc, char **argv)
{
	struct sipc_sender_opts o;
	struct sipc_security sec;
	struct send_state st;
	sipc_sender *tx;
	sipc_epm *epm = NULL;
	const char *handle = NULL, *broker = NULL, *file = NULL;
	char pw[CLI_PASSWORD_MAX];
	char **msgs = argv, *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long wait_n = 0, timeout = 10000, sent = 0, hwm = 0;
	int i, nmsgs = 0, rc, failed = 0, compress = 0;
	int policy = SIPC_POLICY_BLOCK;
	int64_t deadline;
	FILE *in = NULL;

	memset(&st, 0, sizeof(st));
	memset(&sec, 0, sizeof(sec));
	/*
	 * The MESSAGE arguments are gathered at the front of argv, as
	 * getopt(3) permutes it: msgs[nmsgs] is always a slot already read,
	 * since the handle (or "--") comes before any message.
	 */
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--")) {
			while (++i < argc)
				msgs[nmsgs++] = argv[i];
			break;
		}
		if (!strcmp(a, "--compress")) {
			compress = 1;
			continue;
		}
		if ((rc = cli_security_opt(&sec, a, val, pw)) != 0) {
			if (rc < 0)
				return 2;
			i += rc - 1;
			continue;
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (handle == NULL)
				handle = a;
			else
				msgs[nmsgs++] = argv[i];
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc send: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--broker"))
			broker = val;
		else if (!strcmp(a, "--file"))
			file = val;
		else if (!strcmp(a, "--wait-receivers")) {
			if (cli_parse_long(a, val, 0, 1000000, &wait_n) == -1)
				return 2;
		} else if (!strcmp(a, "--timeout")) {
			if (cli_parse_long(a, val, 0, 86400000, &timeout) ==
			    -1)
				return 2;
		} else if (!strcmp(a, "--hwm")) {
			if (cli_parse_long(a, val, 1, 1L << 40, &hwm) == -1)
				return 2;
		} else if (!strcmp(a, "--policy")) {
			if (!strcmp(val, "block"))
				policy = SIPC_POLICY_BLOCK;
			else if (!strcmp(val, "drop"))
				policy = SIPC_POLICY_DROP;
			else if (!strcmp(val, "disconnect"))
				policy = SIPC_POLICY_DISCONNECT;
			else {
				fprintf(stderr, "sipc send: --policy '%s': "
				    "expected block, drop or disconnect\n",
				    val);
				return 2;
			}
		} else {
			fprintf(stderr, "sipc send: unknown option '%s'\n", a);
			return 2;
		}
	}
	if (handle == NULL) {
		fprintf(stderr, "sipc send: a HANDLE is needed\n");
		usage(stderr);
		return 2;
	}
	if (nmsgs == 0) {
		in = stdin;
		if (file && (in = fopen(file, "rb")) == NULL) {
			fprintf(stderr, "sipc send: %s: %s\n", file,
			    strerror(errno));
			return 1;
		}
	}
	cli_security_env(&sec);
	signal(SIGPIPE, SIG_IGN);
	/* --timeout bounds the whole command: every wait below takes what
	 * is left of it. */
	deadline = now_ms() + timeout;
	/* Waiting for receivers covers waiting for the broker too: connect
	 * in the background then, so the broker may start after us. */
	if (cli_epm_sec(broker, wait_n > 0 ? 0 : ms_left(deadline), &sec,
	    &epm) != 0)
		return 1;
	sipc_sender_opts_init(&o);
	o.security = sec;
	o.compress = compress;
	o.policy = policy;
	if (hwm > 0)
		o.hwm_bytes = (size_t)hwm;
	o.on_send_failed = send_failed;
	o.arg = &st;
	o.send_timeout_ms = SEND_SLICE_MS;
	o.linger_ms = 0;	/* the flush below waited already */
	if ((rc = sipc_sender_new(handle, epm, &o, &tx)) != 0) {
		fprintf(stderr, "sipc send: %s\n", *sipc_errmsg() ?
		    sipc_errmsg() : sipc_strerror(rc));
		sipc_epm_close(epm);
		return 1;
	}
	if (wait_n > 0 && sipc_sender_wait_receivers(tx, (size_t)wait_n,
	    ms_left(deadline)) != 0) {
		fprintf(stderr, "sipc send: only %zu of %ld receivers of '%s' "
		    "after %ld ms\n", sipc_sender_receivers(tx), wait_n,
		    handle, timeout);
		failed = 1;
		goto done;
	}
	for (i = 0; i < nmsgs && !failed; i++)
		failed = send_one(tx, msgs[i], strlen(msgs[i]), &sent,
		    deadline, timeout) != 0;
	while (in && !failed && (n = getline(&line, &cap, in)) != -1) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		failed = send_one(tx, line, (size_t)n, &sent, deadline,
		    timeout) != 0;
	}
	if (in && ferror(in)) {
		fprintf(stderr, "sipc send: reading %s: %s\n",
		    file ? file : "standard input", strerror(errno));
		failed = 1;
	}
	if (sipc_sender_flush(tx, ms_left(deadline)) != 0) {
		fprintf(stderr, "sipc send: %s\n", sipc_errmsg());
		failed = 1;
	}
done:
	if (sipc_sender_close(tx) != 0)
		failed = 1;
	sipc_epm_close(epm);
	if (atomic_load(&st.lost) > 0) {
		fprintf(stderr, "sipc send: %llu of %ld messages did not reach "
		    "every receiver\n", (unsigned long long)
		    atomic_load(&st.lost), sent);
		failed = 1;
	}
	free(line);
	if (in && in != stdin)
		fclose(in);
	return failed ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "recv"))
		return cmd_recv(argc - 2, argv + 2);
	if (!strcmp(argv[1], "send"))
		return cmd_send(argc - 2, argv + 2);
	if (!strcmp(argv[1], "reply"))
		return cmd_reply(argc - 2, argv + 2);
	if (!strcmp(argv[1], "request"))
		return cmd_request(argc - 2, argv + 2);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 2, argv + 2);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("sipc %d.%d.%d\n", SIPC_VERSION_MAJOR,
		    SIPC_VERSION_MINOR, SIPC_VERSION_PATCH);
		return 0;
	}
	fprintf(stderr, "sipc: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
