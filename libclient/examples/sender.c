/*
 * sender.c - the original's console sender, in C: sends Foo1, Foo2, ...
 * on handle "Foo" once a second and says where each went.
 *
 *   sipc-example-sender [--broker HOST:PORT]
 *
 * Without --broker (and $SIPC_BROKER) it uses the local registry.  Stops
 * on Ctrl-C.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sipc.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The original's AfterMessageSent: which receivers got message seq.  A
 * sender numbers its messages 1, 2, 3, ..., so message seq is "Foo<seq>". */
static void
after_send(sipc_sender *tx, uint64_t seq, const char *const *endpoints,
    size_t n, void *arg)
{
	(void)tx;
	(void)endpoints;
	(void)arg;
	if (n == 0)
		printf("'Foo%llu' sent, but no receivers found\n",
		    (unsigned long long)seq);
	else
		printf("'Foo%llu' sent\n", (unsigned long long)seq);
	fflush(stdout);
}

/* The original's OnSendFailed. */
static void
on_send_failed(sipc_sender *tx, int error, const char *endpoint,
    uint64_t lost, void *arg)
{
	(void)tx;
	(void)arg;
	printf("%llu message(s) to %s failed: %s\n", (unsigned long long)lost,
	    endpoint, sipc_strerror(error));
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct sipc_sender_opts o;
	struct sipc_epm_opts eo;
	sipc_sender *tx;
	sipc_epm *epm;
	const char *broker = NULL;
	char msg[32];
	unsigned long i;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--broker") == 0)
		broker = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--broker HOST:PORT]\n", argv[0]);
		return 2;
	}
	sipc_epm_opts_init(&eo);
	if ((rc = sipc_epm_connect(broker, &eo, &epm)) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], sipc_errmsg());
		return 1;
	}
	sipc_sender_opts_init(&o);
	o.after_send = after_send;
	o.on_send_failed = on_send_failed;
	if ((rc = sipc_sender_new("Foo", epm, &o, &tx)) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], sipc_errmsg());
		sipc_epm_close(epm);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (i = 1; !stop; i++) {
		snprintf(msg, sizeof(msg), "Foo%lu", i);
		if ((rc = sipc_send(tx, msg, strlen(msg))) != 0)
			fprintf(stderr, "%s: %s\n", argv[0], sipc_errmsg());
		sleep(1);
	}
	sipc_sender_close(tx);
	sipc_epm_close(epm);
	return 0;
}
