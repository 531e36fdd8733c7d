/*
 * eventloop.c - sipc in a program's own libevent loop: no callback of
 * the program runs on sipc's I/O thread.  It receives the messages of a
 * handle and asks a responder about each one; both wait in sipc's queues
 * until the loop sees their descriptors readable.
 *
 *   sipc-example-eventloop HANDLE RPC-HANDLE COUNT [--broker HOST:PORT]
 *
 * For each message of HANDLE it sends the message as a request to a
 * responder of RPC-HANDLE (for example "sipc reply RPC-HANDLE", which
 * echoes) and prints "MESSAGE -> REPLY"; it exits 0 after COUNT replies.
 * Without --broker (and $SIPC_BROKER) it uses the local registry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sipc.h>

struct app {
	sipc_receiver		*rx;
	sipc_requester		*rq;
	struct event_base	*base;
	long			 left;		/* replies still to print */
	int			 status;
};

/* Messages wait: take every one (timeout 0) and ask about it. */
static void
on_messages(evutil_socket_t fd, short what, void *arg)
{
	struct app *a = arg;
	struct sipc_message *m;
	int rc;

	(void)fd;
	(void)what;
	while ((rc = sipc_receiver_recv(a->rx, &m, 0)) == 0) {
		rc = sipc_request_start(a->rq, m->data, m->len, 5000, 0, NULL);
		if (rc != 0)
			fprintf(stderr, "request: %s\n", sipc_strerror(rc));
		sipc_message_free(m);
	}
}

/* Answers wait: print each. */
static void
on_replies(evutil_socket_t fd, short what, void *arg)
{
	struct app *a = arg;
	struct sipc_reply *r;
	uint64_t id;

	(void)fd;
	(void)what;
	while (a->left > 0 &&
	    sipc_requester_collect(a->rq, &id, &r, 0) == 0) {
		if (r->error == 0)
			printf("request %llu -> %.*s\n", (unsigned long long)id,
			    (int)r->len, (const char *)r->data);
		else {
			printf("request %llu failed: %s\n",
			    (unsigned long long)id, sipc_strerror(r->error));
			a->status = 1;
		}
		fflush(stdout);
		sipc_reply_free(r);
		if (--a->left == 0)
			event_base_loopbreak(a->base);
	}
}

int
main(int argc, char **argv)
{
	struct sipc_receiver_opts ro;
	struct event *mev = NULL, *rev = NULL;
	struct app a;
	sipc_epm *epm = NULL;
	const char *broker = NULL;
	int rc;

	if (argc == 6 && strcmp(argv[4], "--broker") == 0)
		broker = argv[5];
	else if (argc != 4) {
		fprintf(stderr, "usage: sipc-example-eventloop HANDLE "
		    "RPC-HANDLE COUNT [--broker HOST:PORT]\n");
		return 2;
	}
	memset(&a, 0, sizeof(a));
	a.left = atol(argv[3]);
	if ((rc = sipc_epm_connect(broker, NULL, &epm)) != 0) {
		fprintf(stderr, "epm: %s: %s\n", sipc_strerror(rc),
		    sipc_errmsg());
		return 1;
	}
	/* No on_message: pull mode. */
	sipc_receiver_opts_init(&ro);
	if ((rc = sipc_receiver_new(argv[1], epm, &ro, &a.rx)) != 0 ||
	    (rc = sipc_requester_new(argv[2], epm, NULL, &a.rq)) != 0) {
		fprintf(stderr, "%s: %s\n", sipc_strerror(rc), sipc_errmsg());
		a.status = 1;
		goto out;
	}
	if ((a.base = event_base_new()) == NULL ||
	    (mev = event_new(a.base, sipc_receiver_fd(a.rx),
	    EV_READ | EV_PERSIST, on_messages, &a)) == NULL ||
	    (rev = event_new(a.base, sipc_requester_fd(a.rq),
	    EV_READ | EV_PERSIST, on_replies, &a)) == NULL ||
	    event_add(mev, NULL) == -1 || event_add(rev, NULL) == -1) {
		fprintf(stderr, "cannot set up the event loop\n");
		a.status = 1;
		goto out;
	}
	printf("ready\n");
	fflush(stdout);
	if (a.left > 0)
		event_base_dispatch(a.base);
out:
	if (mev)
		event_free(mev);
	if (rev)
		event_free(rev);
	if (a.base)
		event_base_free(a.base);
	sipc_requester_close(a.rq);
	sipc_receiver_close(a.rx);
	sipc_epm_close(epm);
	return a.status;
}
