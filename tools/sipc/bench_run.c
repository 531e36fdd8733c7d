/*
 * bench_run.c - sipc bench: the measuring side's set-up around a run.  The
 * callbacks that collect READY and REPORT, the serve children, the private
 * registry directory, the EPM, receivers and senders of a bench, and the
 * steps every run takes: wait for receivers, BEGIN until READY, END, wait
 * for the reports.
 *
 * It times nothing and prints no results: the measurements are
 * bench_cases.c, the output bench.c.
 */
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_int.h"
#include "opts.h"

/* ---- READY, REPORT and lost messages ------------------------------------- */

/* HANDLE.report, on the I/O thread: the READY and REPORT of this run. */
void
bench_report_cb(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct bench *b = arg;
	const uint8_t *p = m->data;
	size_t len = m->len;
	struct report *r;
	int kind = bench_msg_kind(p, len);
	size_t i;

	(void)rx;
	if ((kind != K_READY && kind != K_REPORT) || len < CTL_LEN ||
	    bench_get64(p + F_RUN) != b->run)
		return;
	pthread_mutex_lock(&b->mu);
	if (kind == K_READY) {
		for (i = 0; i < b->nready; i++)
			if (b->ready[i] == bench_get64(p + F_INST))
				break;
		if (i == b->nready && b->nready < MAX_RECEIVERS)
			b->ready[b->nready++] = bench_get64(p + F_INST);
	} else if (len >= REPORT_LEN && b->nrep < MAX_RECEIVERS) {
		r = &b->rep[b->nrep++];
		r->got = bench_get64(p + F_GOT);
		r->bad = bench_get64(p + F_BAD);
		r->gaps = bench_get64(p + F_GAPS);
		r->cpu = (int64_t)bench_get64(p + F_CPU);
		r->last_ns = (int64_t)bench_get64(p + F_LAST);
		r->arrived_ns = bench_now_ns();
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* on_send_failed of the bench's senders. */
void
bench_send_failed(sipc_sender *tx, int error, const char *endpoint,
    uint64_t lost, void *arg)
{
	struct bench *b = arg;

	(void)tx;
	pthread_mutex_lock(&b->mu);
	b->send_lost += lost;
	pthread_mutex_unlock(&b->mu);
	fprintf(stderr, "sipc bench: %llu messages to %s lost: %s\n",
	    (unsigned long long)lost, endpoint, sipc_strerror(error));
}

/* ---- Children ------------------------------------------------------------ */

/* Starts n serve children on b->handle; 0 or -1 after a message. */
int
bench_kids_spawn(struct bench *b, int n)
{
	char maxt[32], *argv[12];
	pid_t pid, parent = getpid();
	int i, a = 0;

	snprintf(maxt, sizeof(maxt), "%ld", b->o.max_time_ms +
	    3 * b->o.timeout_ms);
	argv[a++] = "sipc";
	argv[a++] = "bench";
	argv[a++] = "serve";
	argv[a++] = b->handle;
	if (b->o.broker) {
		argv[a++] = "--broker";
		argv[a++] = (char *)b->o.broker;
	} else
		argv[a++] = "--local";
	argv[a++] = "--runs";
	argv[a++] = "1";
	argv[a++] = "--max-time";
	argv[a++] = maxt;
	argv[a++] = "--quiet";
	argv[a] = NULL;
	fflush(NULL);
	for (i = 0; i < n; i++) {
		if ((pid = fork()) == -1) {
			fprintf(stderr, "sipc bench: fork: %s\n",
			    strerror(errno));
			return -1;
		}
		if (pid == 0) {
			/* Die with the bench, even when it is killed. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(1);
			execv("/proc/self/exe", argv);
			_exit(127);
		}
		b->kids[b->nkids++] = pid;
	}
	return 0;
}

/* -1 (after a message) when a child has ended before its time. */
int
bench_kids_check(struct bench *b)
{
	int i, st;
	pid_t pid;

	for (i = 0; i < b->nkids; i++) {
		if (b->kids[i] <= 0)
			continue;
		if ((pid = waitpid(b->kids[i], &st, WNOHANG)) != b->kids[i])
			continue;
		b->kids[i] = -1;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;	/* done with its run */
		if (WIFEXITED(st))
			fprintf(stderr, "sipc bench: receiver process %ld "
			    "exited with status %d%s\n", (long)pid,
			    WEXITSTATUS(st), WEXITSTATUS(st) == 127 ?
			    " (cannot execute /proc/self/exe)" : "");
		else
			fprintf(stderr, "sipc bench: receiver process %ld "
			    "killed by signal %d\n", (long)pid,
			    WTERMSIG(st));
		return -1;
	}
	return 0;
}

static int
kids_left(struct bench *b)
{
	int i, n = 0;

	for (i = 0; i < b->nkids; i++)
		n += b->kids[i] > 0;
	return n;
}

/*
 * Lets the children end on their own for grace_ms, then SIGTERM, then
 * SIGKILL; reaps each by its pid.
 */
void
bench_kids_reap(struct bench *b, int grace_ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int64_t end;
	int i, phase;

	for (phase = 0; phase < 3 && kids_left(b); phase++) {
		if (phase > 0)
			for (i = 0; i < b->nkids; i++)
				if (b->kids[i] > 0)
					kill(b->kids[i], phase == 1 ?
					    SIGTERM : SIGKILL);
		end = bench_now_ns() + (int64_t)(phase == 0 ? grace_ms : 2000) *
		    1000000;
		while (kids_left(b) && bench_now_ns() < end) {
			for (i = 0; i < b->nkids; i++)
				if (b->kids[i] > 0 && waitpid(b->kids[i], NULL,
				    WNOHANG) == b->kids[i])
					b->kids[i] = -1;
			if (kids_left(b))
				nanosleep(&ts, NULL);
		}
	}
	for (i = 0; i < b->nkids; i++)
		if (b->kids[i] > 0 && waitpid(b->kids[i], NULL, 0) ==
		    b->kids[i])
			b->kids[i] = -1;
	b->nkids = 0;
}

/* ---- Private registry directory ------------------------------------------ */

int
bench_tmpdir_make(struct bench *b)
{
	const char *t = getenv("TMPDIR");

	/* Socket paths must fit 107 bytes: keep the directory short. */
	if (t == NULL || t[0] != '/' || strlen(t) > 40)
		t = "/tmp";
	snprintf(b->tmpdir, sizeof(b->tmpdir), "%s/sipc-bench.XXXXXX", t);
	if (mkdtemp(b->tmpdir) == NULL) {
		fprintf(stderr, "sipc bench: mkdtemp %s: %s\n", b->tmpdir,
		    strerror(errno));
		b->tmpdir[0] = '\0';
		return -1;
	}
	/* mkdtemp makes it 0700: the registry's own rule. */
	if (setenv("XDG_RUNTIME_DIR", b->tmpdir, 1) == -1 ||
	    unsetenv("SIPC_BROKER") == -1) {
		fprintf(stderr, "sipc bench: setenv: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

void
bench_tmpdir_remove(struct bench *b)
{
	char sub[192], path[512];
	struct dirent *de;
	DIR *d;

	if (b->tmpdir[0] == '\0')
		return;
	snprintf(sub, sizeof(sub), "%s/sipc", b->tmpdir);
	if ((d = opendir(sub)) != NULL) {
		/* Sockets of receivers that did not get to unlink them. */
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub,
			    de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(sub);
	if (rmdir(b->tmpdir) == -1)
		fprintf(stderr, "sipc bench: cannot remove %s: %s\n",
		    b->tmpdir, strerror(errno));
	b->tmpdir[0] = '\0';
}

/* ---- Setup and teardown -------------------------------------------------- */

int
bench_epm(struct bench *b, sipc_epm **epm)
{
	int rc;

	if (b->o.broker)
		return cli_epm(b->o.broker, (int)b->o.timeout_ms, epm) == 0 ?
		    0 : -1;
	if ((rc = sipc_epm_local(epm)) != 0) {
		fprintf(stderr, "sipc bench: local registry: %s\n",
		    bench_errtext(rc));
		return -1;
	}
	return 0;
}

int
bench_receiver(struct bench *b, const char *suffix, sipc_message_fn fn,
    sipc_receiver **rx)
{
	struct sipc_receiver_opts ro;
	char name[300];
	int rc;

	sipc_receiver_opts_init(&ro);
	ro.on_message = fn;
	ro.arg = b;
	snprintf(name, sizeof(name), "%s%s", b->handle, suffix);
	if ((rc = sipc_receiver_new(name, b->epm, &ro, rx)) != 0) {
		fprintf(stderr, "sipc bench: receiver %s: %s\n", name,
		    bench_errtext(rc));
		return -1;
	}
	return 0;
}

int
bench_sender(struct bench *b, const char *suffix, sipc_sender **tx)
{
	struct sipc_sender_opts so;
	char name[300];
	int rc;

	sipc_sender_opts_init(&so);
	so.on_send_failed = bench_send_failed;
	so.arg = b;
	so.send_timeout_ms = (int)b->o.timeout_ms;
	so.linger_ms = (int)b->o.timeout_ms;
	so.handoff_only = b->o.handoff_only;
	snprintf(name, sizeof(name), "%s%s", b->handle, suffix);
	if ((rc = sipc_sender_new(name, b->epm, &so, tx)) != 0) {
		fprintf(stderr, "sipc bench: sender %s: %s\n", name,
		    bench_errtext(rc));
		return -1;
	}
	return 0;
}

/*
 * Waits until tx has want receivers, checking the children; 0, or -1
 * after saying what is missing (and, for remote receivers, what to
 * start).
 */
int
bench_wait_receivers(struct bench *b, sipc_sender *tx, size_t want)
{
	int64_t end = bench_now_ns() + b->o.timeout_ms * 1000000;

	while (sipc_sender_wait_receivers(tx, want, SLICE_MS) != 0) {
		if (bench_check_interrupted() || (b->nkids &&
		    bench_kids_check(b) == -1))
			return -1;
		if (bench_now_ns() < end)
			continue;
		fprintf(stderr, "sipc bench: %zu of %zu receivers of '%s' "
		    "after %ld ms\n", sipc_sender_receivers(tx), want,
		    b->handle, b->o.timeout_ms);
		if (!b->o.spawn)
			fprintf(stderr,
			    "Start them on the receiving host(s), one "
			    "process per receiver:\n"
			    "    sipc bench serve %s --broker %s\n"
			    "or let the bench start them here with "
			    "--spawn.\n", b->handle, b->o.broker);
		return -1;
	}
	return 0;
}

static int
have_ready(struct bench *b, size_t want)
{
	return b->nready >= want;
}

static int
have_reports(struct bench *b, size_t want)
{
	return b->nrep >= want;
}

/*
 * Waits (under nothing) until pred(b, want) holds under b->mu, at most
 * ms milliseconds, checking the children; 0, 1 on timeout, -1 when a
 * child died.
 */
int
bench_wait_for(struct bench *b, int (*pred)(struct bench *, size_t),
    size_t want, long ms)
{
	int64_t end = bench_now_ns() + (int64_t)ms * 1000000;
	int ok;

	for (;;) {
		pthread_mutex_lock(&b->mu);
		if (!(ok = pred(b, want)))
			bench_cond_wait_ms(&b->cv, &b->mu, SLICE_MS);
		ok = pred(b, want);
		pthread_mutex_unlock(&b->mu);
		if (ok)
			return 0;
		if (bench_check_interrupted() || (b->nkids &&
		    bench_kids_check(b) == -1))
			return -1;
		if (bench_now_ns() >= end)
			return 1;
	}
}

/* BEGIN on ctl until want receivers answered READY; 0 or -1. */
int
bench_handshake(struct bench *b, sipc_sender *ctl, size_t want, int mode,
    uint64_t count)
{
	uint8_t msg[CTL_LEN];
	int64_t end = bench_now_ns() + b->o.timeout_ms * 1000000;
	int rc;

	bench_msg_init(msg, sizeof(msg), K_BEGIN);
	bench_put64(msg + F_RUN, b->run);
	bench_put64(msg + F_COUNT, count);
	bench_put64(msg + F_SIZE, (uint64_t)b->o.size);
	bench_put64(msg + F_MODE, (uint64_t)mode);
	/* Resent each second: a serve process that answered into a path
	 * not yet open (a previous bench's receiver) answers again. */
	for (;;) {
		if ((rc = sipc_send(ctl, msg, sizeof(msg))) != 0) {
			fprintf(stderr, "sipc bench: send: %s\n",
			    bench_errtext(rc));
			return -1;
		}
		if ((rc = bench_wait_for(b, have_ready, want, 1000)) == 0)
			return 0;
		if (rc == -1)
			return -1;
		if (bench_now_ns() >= end)
			break;
	}
	pthread_mutex_lock(&b->mu);
	fprintf(stderr, "sipc bench: %zu of %zu receivers answered within "
	    "%ld ms (is another bench using '%s'?)\n", b->nready, want,
	    b->o.timeout_ms, b->handle);
	pthread_mutex_unlock(&b->mu);
	return -1;
}

int
bench_send_end(struct bench *b, sipc_sender *ctl, uint64_t count)
{
	uint8_t msg[CTL_LEN];
	int rc;

	bench_msg_init(msg, sizeof(msg), K_END);
	bench_put64(msg + F_RUN, b->run);
	bench_put64(msg + F_COUNT, count);
	if ((rc = sipc_send(ctl, msg, sizeof(msg))) != 0) {
		fprintf(stderr, "sipc bench: send: %s\n", bench_errtext(rc));
		return -1;
	}
	return 0;
}

/* Waits for want REPORTs; 0 or -1 after a message. */
int
bench_collect(struct bench *b, size_t want)
{
	int rc;

	if ((rc = bench_wait_for(b, have_reports, want, b->o.timeout_ms)) == 0)
		return 0;
	if (rc == 1) {
		pthread_mutex_lock(&b->mu);
		fprintf(stderr, "sipc bench: %zu of %zu receivers reported "
		    "within %ld ms\n", b->nrep, want, b->o.timeout_ms);
		pthread_mutex_unlock(&b->mu);
	}
	return -1;
}

void
bench_sum_reports(struct bench *b, struct result *r)
{
	size_t i;

	for (i = 0; i < b->nrep; i++) {
		r->deliveries += b->rep[i].got;
		r->bad += b->rep[i].bad;
		r->gaps += b->rep[i].gaps;
		r->cpu_rx += b->rep[i].cpu;
	}
}

