/*
 * receiver.c - the original's console receiver, in C: prints every
 * message of handle "Foo" as 'Foo1' received.
 *
 *   sipc-example-receiver [--broker HOST:PORT]
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

static void
on_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	(void)rx;
	(void)arg;
	/* Runs on sipc's I/O thread; m->data is valid during this call. */
	printf("'%.*s' received\n", (int)m->len, (const char *)m->data);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	sipc_epm *epm;
	const char *broker = NULL;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--broker") == 0)
		broker = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--broker HOST:PORT]\n", argv[0]);
		return 2;
	}
	if ((rc = sipc_epm_connect(broker, NULL, &epm)) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], sipc_errmsg());
		return 1;
	}
	sipc_receiver_opts_init(&o);
	o.on_message = on_message;
	if ((rc = sipc_receiver_new("Foo", epm, &o, &rx)) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], sipc_errmsg());
		sipc_epm_close(epm);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("Receiving 'Foo'; Ctrl-C stops.\n");
	fflush(stdout);
	while (!stop)
		pause();
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	return 0;
}
