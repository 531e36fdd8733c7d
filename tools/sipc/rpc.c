/*
 * rpc.c - the sipc command's request/reply: "sipc reply" answers the
 * requests of a handle (echo, or a command run per request), "sipc
 * request" asks one responder, or every one with --all.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "opts.h"
#include "rpc.h"

extern char **environ;

/* Exit codes of sipc request (sipc(1)). */
#define EX_REPLY	0
#define EX_OTHER	1
#define EX_USAGE	2
#define EX_NORESPONDER	3
#define EX_TIMEOUT	4
#define EX_ERRREPLY	5
#define EX_LOST		6

/* A command's output kept for a reply, at most: the largest message. */
#define EXEC_OUT_MAX	(64u * 1024 * 1024)

/* ---- reply --------------------------------------------------------------- */

struct job {
	struct job		*next;
	struct sipc_request	*req;
};

struct reply_state {
	const char		*cmd;		/* NULL: echo */
	long			 count;		/* 0: no limit */
	atomic_long		 answered;
	atomic_int		 done;
	int			 verbose;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct job		*head;
	struct job		**tail;
	int			 stop;
};

static void
counted(struct reply_state *st)
{
	long n = atomic_fetch_add(&st->answered, 1) + 1;

	if (st->count && n >= st->count)
		atomic_store(&st->done, 1);
}

/* Feeds in[0..len) to fd_in while collecting fd_out into *out (at most
 * EXEC_OUT_MAX bytes); 0, or -1 when the output was too large. */
static int
pump(int fd_in, int fd_out, const uint8_t *in, size_t len, uint8_t **out,
    size_t *olen)
{
	struct pollfd pf[2];
	size_t off = 0, cap = 0;
	uint8_t *np;
	ssize_t n;
	int big = 0;

	*out = NULL;
	*olen = 0;
	if (len == 0) {
		close(fd_in);
		fd_in = -1;
	}
	for (;;) {
		pf[0].fd = fd_in;
		pf[0].events = POLLOUT;
		pf[1].fd = fd_out;
		pf[1].events = POLLIN;
		if (poll(pf, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fd_in != -1 && pf[0].revents) {
			n = write(fd_in, in + off, len - off);
			if (n > 0)
				off += (size_t)n;
			if (n == -1 && errno != EAGAIN && errno != EINTR)
				off = len;	/* it stopped reading */
			if (off == len) {
				close(fd_in);
				fd_in = -1;
			}
		}
		if (pf[1].revents) {
			if (*olen == cap && !big) {
				cap = cap ? cap * 2 : 4096;
				if (cap > EXEC_OUT_MAX ||
				    (np = realloc(*out, cap)) == NULL)
					big = 1;
				else
					*out = np;
			}
			if (big) {
				uint8_t sink[4096];

				n = read(fd_out, sink, sizeof(sink));
			} else
				n = read(fd_out, *out + *olen, cap - *olen);
			if (n == 0 || (n == -1 && errno != EINTR))
				break;
			if (n > 0 && !big)
				*olen += (size_t)n;
		}
	}
	if (fd_in != -1)
		close(fd_in);
	return big ? -1 : 0;
}

/* Runs the command with the request on its standard input; answers with
 * its standard output, or fails the request when it exits non-zero. */
static void
run_job(struct reply_state *st, struct sipc_request *req)
{
	const struct sipc_message *m = sipc_request_message(req);
	char *argv[] = { "sh", "-c", (char *)st->cmd, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none;
	char text[128];
	int in[2], out[2], status = 0, big;
	uint8_t *o;
	size_t olen;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) == -1) {
		sipc_request_fail(req, "cannot make a pipe");
		return;
	}
	if (pipe2(out, O_CLOEXEC) == -1) {
		close(in[0]);
		close(in[1]);
		sipc_request_fail(req, "cannot make a pipe");
		return;
	}
	/* We write while it writes: never block on its input. */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	/* The command gets the signals we block, and SIGPIPE, back. */
	posix_spawnattr_init(&sa);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&sa, &none);
	sigaddset(&none, SIGPIPE);
	posix_spawnattr_setsigdefault(&sa, &none);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	if (posix_spawn(&pid, "/bin/sh", &fa, &sa, argv, environ) != 0) {
		posix_spawnattr_destroy(&sa);
		posix_spawn_file_actions_destroy(&fa);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		sipc_request_fail(req, "cannot run the command");
		return;
	}
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	big = pump(in[1], out[0], m->data, m->len, &o, &olen);
	close(out[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (big)
		sipc_request_fail(req, "the command's output is too large");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		sipc_request_reply(req, o, olen);
	else {
		if (WIFEXITED(status))
			snprintf(text, sizeof(text), "the command exited with "
			    "status %d", WEXITSTATUS(status));
		else
			snprintf(text, sizeof(text), "the command was killed "
			    "by signal %d", WTERMSIG(status));
		sipc_request_fail(req, text);
	}
	free(o);
}

static void *
worker(void *arg)
{
	struct reply_state *st = arg;
	struct job *j;

	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (st->head == NULL && !st->stop)
			pthread_cond_wait(&st->cv, &st->mu);
		if ((j = st->head) == NULL) {
			pthread_mutex_unlock(&st->mu);
			return NULL;
		}
		if ((st->head = j->next) == NULL)
			st->tail = &st->head;
		pthread_mutex_unlock(&st->mu);
		run_job(st, j->req);
		free(j);
		counted(st);
	}
}

/* On sipc's I/O thread: echo at once, or queue for the workers. */
static void
on_request(sipc_receiver *rx, struct sipc_request *req, void *arg)
{
	struct reply_state *st = arg;
	const struct sipc_message *m = sipc_request_message(req);
	struct job *j;

	(void)rx;
	if (st->cmd == NULL) {
		sipc_request_reply(req, m->data, m->len);
		counted(st);
		return;
	}
	if ((j = malloc(sizeof(*j))) == NULL) {
		sipc_request_free(req);
		return;
	}
	j->req = req;
	j->next = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->stop) {
		pthread_mutex_unlock(&st->mu);
		sipc_request_free(req);
		free(j);
		return;
	}
	*st->tail = j;
	st->tail = &j->next;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

int
cmd_reply(int argc, char **argv)
{
	struct sipc_receiver_opts o;
	struct reply_state st;
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	const char *handle = NULL, *broker = NULL;
	char pw[CLI_PASSWORD_MAX], ep[160];
	pthread_t *th = NULL;
	sipc_receiver *rx;
	sipc_epm *epm = NULL;
	struct job *j;
	long jobs = 1, v, i;
	sigset_t set;
	int rc;

	memset(&st, 0, sizeof(st));
	sipc_receiver_opts_init(&o);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			st.verbose = 1;
			continue;
		}
		if ((rc = cli_security_opt(&o.security, a, val, pw)) != 0) {
			if (rc < 0)
				return EX_USAGE;
			i += rc - 1;
			continue;
		}
		if (a[0] != '-') {
			if (handle) {
				fprintf(stderr, "sipc reply: unexpected "
				    "argument '%s'\n", a);
				return EX_USAGE;
			}
			handle = a;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc reply: %s needs a value\n", a);
			return EX_USAGE;
		}
		i++;
		if (!strcmp(a, "--broker"))
			broker = val;
		else if (cli_receiver_opt(&o, a, val))
			;
		else if (!strcmp(a, "--exec"))
			st.cmd = val;
		else if (!strcmp(a, "--jobs")) {
			if (cli_parse_long(a, val, 1, 1024, &jobs) == -1)
				return EX_USAGE;
		} else if (!strcmp(a, "--count")) {
			if (cli_parse_long(a, val, 1, LONG_MAX, &v) == -1)
				return EX_USAGE;
			st.count = v;
		} else {
			fprintf(stderr, "sipc reply: unknown option '%s'\n", a);
			return EX_USAGE;
		}
	}
	if (handle == NULL) {
		fprintf(stderr, "sipc reply: a HANDLE is needed\n");
		return EX_USAGE;
	}
	cli_security_env(&o.security);
	signal(SIGPIPE, SIG_IGN);	/* a command that does not read */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_init(&st.mu, NULL);
	pthread_cond_init(&st.cv, NULL);
	st.tail = &st.head;
	if (st.cmd) {
		if ((th = calloc((size_t)jobs, sizeof(*th))) == NULL)
			return EX_OTHER;
		for (i = 0; i < jobs; i++)
			if (pthread_create(&th[i], NULL, worker, &st) != 0) {
				fprintf(stderr, "sipc reply: cannot start "
				    "worker threads\n");
				return EX_OTHER;
			}
	}
	if (cli_epm_sec(broker, 5000, &o.security, &epm) != 0)
		return EX_OTHER;
	o.on_request = on_request;
	o.arg = &st;
	if ((rc = sipc_receiver_new(handle, epm, &o, &rx)) != 0) {
		fprintf(stderr, "sipc reply: %s\n", *sipc_errmsg() ?
		    sipc_errmsg() : sipc_strerror(rc));
		sipc_epm_close(epm);
		return EX_OTHER;
	}
	if (st.verbose && sipc_receiver_endpoint(rx, ep, sizeof(ep)) == 0)
		fprintf(stderr, "sipc reply: '%s' at %s\n", handle, ep);
	while (!atomic_load(&st.done))
		if (sigtimedwait(&set, NULL, &ts) > 0)
			break;
	/* Requests waiting for a worker are dropped (their requesters
	 * hear NO_REPLY at once); those running finish and are answered,
	 * then the receiver closes. */
	pthread_mutex_lock(&st.mu);
	st.stop = 1;
	while ((j = st.head) != NULL) {
		st.head = j->next;
		sipc_request_free(j->req);
		free(j);
	}
	st.tail = &st.head;
	pthread_cond_broadcast(&st.cv);
	pthread_mutex_unlock(&st.mu);
	for (i = 0; th && i < jobs; i++)
		pthread_join(th[i], NULL);
	free(th);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	return 0;
}

/* ---- request ------------------------------------------------------------- */

static int
exit_code(int rc)
{
	switch (rc) {
	case 0:
		return EX_REPLY;
	case SIPC_ENORESPONDER:
		return EX_NORESPONDER;
	case SIPC_ETIMEDOUT:
		return EX_TIMEOUT;
	case SIPC_EREMOTE:
	case SIPC_ENOREPLY:
		return EX_ERRREPLY;
	case SIPC_EPEERGONE:
		return EX_LOST;
	default:
		return EX_OTHER;
	}
}

/* The whole of fp, at most EXEC_OUT_MAX bytes: 0, or -1 after a message. */
static int
slurp(FILE *fp, const char *name, uint8_t **out, size_t *len)
{
	size_t cap = 0, n;
	uint8_t *np;

	*out = NULL;
	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > EXEC_OUT_MAX * 2 ||
			    (np = realloc(*out, cap)) == NULL) {
				fprintf(stderr, "sipc request: %s is too "
				    "large\n", name);
				return -1;
			}
			*out = np;
		}
		n = fread(*out + *len, 1, cap - *len, fp);
		*len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		fprintf(stderr, "sipc request: reading %s: %s\n", name,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
print_reply(const struct sipc_reply *r)
{
	fwrite(r->data, 1, r->len, stdout);
	if (r->len == 0 || ((const char *)r->data)[r->len - 1] != '\n')
		putchar('\n');
}

static int
request_all(sipc_requester *rq, const uint8_t *data, size_t len,
    int timeout)
{
	struct sipc_survey *s;
	size_t i;
	int rc, worst = 0;

	if ((rc = sipc_survey(rq, data, len, timeout, &s)) != 0) {
		fprintf(stderr, "sipc request: %s\n", sipc_strerror(rc));
		return exit_code(rc);
	}
	for (i = 0; i < s->asked; i++) {
		const struct sipc_reply *r = &s->replies[i];

		if (r->error == 0) {
			print_reply(r);
			continue;
		}
		fprintf(stderr, "sipc request: %s: %s%s%.*s\n", r->responder,
		    sipc_strerror(r->error), r->len ? ": " : "",
		    (int)r->len, (const char *)r->data);
		if (worst == 0 || r->error == SIPC_ETIMEDOUT)
			worst = r->error;
	}
	sipc_survey_free(s);
	return exit_code(worst);
}

int
cmd_request(int argc, char **argv)
{
	struct sipc_requester_opts o;
	struct sipc_reply *r = NULL;
	const char *handle = NULL, *broker = NULL, *file = NULL;
	const char *data = NULL;
	char pw[CLI_PASSWORD_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	sipc_requester *rq;
	sipc_epm *epm = NULL;
	long timeout = 5000;
	int i, rc, all = 0, ex;
	FILE *fp;

	sipc_requester_opts_init(&o);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] :
		    NULL;

		if (!strcmp(a, "--all")) {
			all = 1;
			continue;
		}
		if (!strcmp(a, "--compress")) {
			o.compress = 1;
			continue;
		}
		if ((rc = cli_security_opt(&o.security, a, val, pw)) != 0) {
			if (rc < 0)
				return EX_USAGE;
			i += rc - 1;
			continue;
		}
		if (a[0] != '-') {
			if (handle == NULL)
				handle = a;
			else if (data == NULL)
				data = a;
			else {
				fprintf(stderr, "sipc request: unexpected "
				    "argument '%s'\n", a);
				return EX_USAGE;
			}
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "sipc request: %s needs a value\n", a);
			return EX_USAGE;
		}
		i++;
		if (!strcmp(a, "--broker"))
			broker = val;
		else if (!strcmp(a, "--file"))
			file = val;
		else if (!strcmp(a, "--timeout")) {
			if (cli_parse_long(a, val, 1, INT_MAX, &timeout) == -1)
				return EX_USAGE;
		} else {
			fprintf(stderr, "sipc request: unknown option '%s'\n",
			    a);
			return EX_USAGE;
		}
	}
	if (handle == NULL || (data && file)) {
		fprintf(stderr, "sipc request: a HANDLE is needed, and DATA "
		    "or --file (or standard input), not both\n");
		return EX_USAGE;
	}
	if (data) {
		buf = (uint8_t *)strdup(data);
		len = strlen(data);
	} else {
		fp = file ? fopen(file, "rb") : stdin;
		if (fp == NULL) {
			fprintf(stderr, "sipc request: %s: %s\n", file,
			    strerror(errno));
			return EX_OTHER;
		}
		rc = slurp(fp, file ? file : "standard input", &buf, &len);
		if (fp != stdin)
			fclose(fp);
		if (rc == -1)
			return EX_OTHER;
	}
	cli_security_env(&o.security);
	signal(SIGPIPE, SIG_IGN);
	if (cli_epm_sec(broker, (int)timeout, &o.security, &epm) != 0) {
		free(buf);
		return EX_OTHER;
	}
	if ((rc = sipc_requester_new(handle, epm, &o, &rq)) != 0) {
		fprintf(stderr, "sipc request: %s\n", *sipc_errmsg() ?
		    sipc_errmsg() : sipc_strerror(rc));
		sipc_epm_close(epm);
		free(buf);
		return EX_OTHER;
	}
	if (all)
		ex = request_all(rq, buf, len, (int)timeout);
	else {
		rc = sipc_request(rq, buf, len, (int)timeout, 0, &r);
		if (rc == 0)
			print_reply(r);
		else if (rc == SIPC_EREMOTE)
			fprintf(stderr, "sipc request: %s: %.*s\n",
			    sipc_strerror(rc), (int)r->len,
			    (const char *)r->data);
		else
			fprintf(stderr, "sipc request: %s\n",
			    sipc_strerror(rc));
		sipc_reply_free(r);
		ex = exit_code(rc);
	}
	sipc_requester_close(rq);
	sipc_epm_close(epm);
	free(buf);
	if (fflush(stdout) != 0 && ex == 0)
		ex = EX_OTHER;
	return ex;
}
