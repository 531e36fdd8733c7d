/*
 * common.c - helpers shared by the programs of `make bench` (see
 * common.h).  Not part of libsipc.
 */
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

const char *prog = "bench";
void	  (*fatal_hook)(void);

static pid_t	kids[KIDS_MAX];
static int	nkids;

/* ---- CPU, memory --------------------------------------------------------- */

static int64_t
rusage_ns(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) == -1)
		return 0;
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    1000000000 + ((int64_t)ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000;
}

int64_t
cpu_self_ns(void)
{
	return rusage_ns(RUSAGE_SELF);
}

int64_t
cpu_children_ns(void)
{
	return rusage_ns(RUSAGE_CHILDREN);
}

long
peak_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

int
cpu_pin(pid_t pid, int cpu)
{
	cpu_set_t set;
	int i;

	CPU_ZERO(&set);
	if (cpu >= 0)
		CPU_SET(cpu, &set);
	else
		for (i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	return sched_setaffinity(pid, sizeof(set), &set);
}

/* ---- Errors -------------------------------------------------------------- */

static void __attribute__((noreturn))
vfatal(int with_errno, const char *fmt, va_list ap)
{
	int e = errno;

	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	if (with_errno)
		fprintf(stderr, ": %s", strerror(e));
	fputc('\n', stderr);
	if (fatal_hook != NULL)
		fatal_hook();
	kids_reap(0);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(0, fmt, ap);
}

void
fatal_sys(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(1, fmt, ap);
}

void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- Children ------------------------------------------------------------ */

static int	(*kid_fn)(void *);

static int
kid_main(void *arg)
{
	/* Our siblings are not ours to kill. */
	nkids = 0;
	return kid_fn(arg);
}

pid_t
kid_start(int (*fn)(void *), void *arg)
{
	pid_t pid;

	if (nkids == KIDS_MAX)
		fatal("more than %d child processes", KIDS_MAX);
	kid_fn = fn;
	if ((pid = proc_fork(kid_main, arg)) == -1)
		fatal_sys("fork");
	return kid_add(pid);
}

pid_t
kid_add(pid_t pid)
{
	if (nkids == KIDS_MAX)
		fatal("more than %d child processes", KIDS_MAX);
	kids[nkids++] = pid;
	return pid;
}

int
kids_reap(int grace_ms)
{
	int64_t end = mono_ms() + grace_ms;
	int i, st, left, failed = 0;
	pid_t r;

	for (;;) {
		left = 0;
		for (i = 0; i < nkids; i++) {
			if (kids[i] <= 0)
				continue;
			r = waitpid(kids[i], &st, WNOHANG);
			if (r == kids[i] || (r == -1 && errno == ECHILD)) {
				if (r == kids[i] && !(WIFEXITED(st) &&
				    WEXITSTATUS(st) == 0))
					failed++;
				kids[i] = -1;
			} else
				left++;
		}
		if (left == 0 || mono_ms() >= end)
			break;
		sleep_ms(5);
	}
	for (i = 0; i < nkids; i++) {
		if (kids[i] <= 0)
			continue;
		kill(kids[i], SIGKILL);
		while (waitpid(kids[i], NULL, 0) == -1 && errno == EINTR)
			;
		kids[i] = -1;
		failed++;
	}
	nkids = 0;
	return failed;
}

/* ---- Benchmark messages -------------------------------------------------- */

void
put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
bm_init(uint8_t *buf, size_t len, int kind)
{
	size_t i;

	for (i = BM_HDR; i < len; i++)
		buf[i] = (uint8_t)(i * 7);
	memcpy(buf, "SBn1", 4);
	buf[4] = (uint8_t)kind;
	buf[5] = buf[6] = buf[7] = 0;
	put64(buf + 8, 0);
}

int
bm_kind(const void *p, size_t len)
{
	const uint8_t *b = p;

	if (len < BM_HDR || memcmp(b, "SBn1", 4) != 0)
		return -1;
	return b[4];
}

int
rx_check_msg(struct rx_check *c, const uint8_t *p, size_t len)
{
	uint64_t n;

	switch (bm_kind(p, len)) {
	case K_DATA:
		if (!c->begun || c->ended) {
			c->r.bad++;
			return K_DATA;
		}
		n = get64(p + 8);
		if (n == c->expect && len == c->size) {
			c->r.got++;
			c->expect++;
		} else {
			c->r.bad++;
			if (n >= c->expect)
				c->expect = n + 1;
		}
		c->r.bytes += len;
		if (n == 0)
			c->r.first_ns = mono_ns();
		if (n + 1 == c->count)
			c->r.last_ns = mono_ns();
		return K_DATA;
	case K_BEGIN:
		if (len < CTL_LEN)
			break;
		memset(c, 0, sizeof(*c));
		c->count = get64(p + F_COUNT);
		c->size = (size_t)get64(p + F_SIZE);
		c->cpu0 = cpu_self_ns();
		c->begun = 1;
		return K_BEGIN;
	case K_END:
		if (!c->begun)
			break;
		c->ended = 1;
		c->r.cpu_ns = cpu_self_ns() - c->cpu0;
		return K_END;
	}
	c->r.bad++;
	return -1;
}

void
rx_collect(const int *pipes, int n, int64_t t0, int timeout_ms,
    struct rx_total *t)
{
	struct rx_report rep;
	int i;

	memset(t, 0, sizeof(*t));
	t->end_ns = t0;
	for (i = 0; i < n; i++) {
		if (read_full(pipes[i], &rep, sizeof(rep), timeout_ms) == -1)
			fatal_sys("report of receiver %d", i);
		close(pipes[i]);
		t->got += rep.got;
		t->bad += rep.bad;
		t->cpu_ns += rep.cpu_ns;
		if (rep.last_ns > t->end_ns)
			t->end_ns = rep.last_ns;
	}
}

/* ---- Samples ------------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

void
sort_i64(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
}

double
pct_us(const int64_t *v, size_t n, double q)
{
	double rank = q * (double)n;
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)rank;
	if ((double)i < rank)
		i++;		/* ceil: the nearest rank */
	i = i == 0 ? 0 : i - 1;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}

long
warmup_count(long count, long cap)
{
	long w = count / 10 < 10 ? 10 : count / 10;

	return w > cap ? cap : w;
}

/* ---- JSON ---------------------------------------------------------------- */

void
json_begin(struct jout *j, FILE *fp)
{
	j->fp = fp;
	j->n = 0;
	fputc('{', fp);
}

static void
json_key(struct jout *j, const char *key)
{
	fprintf(j->fp, "%s\"%s\": ", j->n++ ? ", " : "", key);
}

void
json_num(struct jout *j, const char *key, double v)
{
	json_key(j, key);
	fprintf(j->fp, "%.6g", v);
}

void
json_int(struct jout *j, const char *key, long long v)
{
	json_key(j, key);
	fprintf(j->fp, "%lld", v);
}

void
json_str(struct jout *j, const char *key, const char *v)
{
	json_key(j, key);
	fputc('"', j->fp);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', j->fp);
		if ((unsigned char)*v >= 0x20)
			fputc(*v, j->fp);
	}
	fputc('"', j->fp);
}

void
json_end(struct jout *j)
{
	fputs("}\n", j->fp);
	fflush(j->fp);
}

void
json_latency(struct jout *j, const int64_t *v, size_t n)
{
	json_num(j, "p50_us", pct_us(v, n, 0.50));
	json_num(j, "p99_us", pct_us(v, n, 0.99));
	json_num(j, "p999_us", pct_us(v, n, 0.999));
	json_num(j, "min_us", pct_us(v, n, 0.0));
	json_num(j, "max_us", pct_us(v, n, 1.0));
}

/* The fields every case's object starts with, on stdout. */
static void
json_case(struct jout *j, const struct case_opts *o, const char *kase,
    const char *impl)
{
	json_begin(j, stdout);
	json_str(j, "case", kase);
	json_str(j, "impl", impl);
	json_int(j, "size", o->size);
	json_int(j, "count", o->count);
}

int
json_stream(const struct case_opts *o, const char *kase, const char *impl,
    int n, int64_t t0, const struct rx_total *t, int64_t cpu_tx)
{
	double ns = (double)(t->end_ns - t0), msgs = (double)o->count;
	uint64_t want = (uint64_t)o->count * (uint64_t)n;
	struct jout j;

	json_case(&j, o, kase, impl);
	json_int(&j, "receivers", n);
	json_num(&j, "seconds", ns / 1e9);
	json_num(&j, "messages_per_s", msgs * 1e9 / ns);
	json_num(&j, "deliveries_per_s", (double)t->got * 1e9 / ns);
	json_num(&j, "mb_per_s", (double)t->got * (double)o->size * 1e3 / ns);
	json_int(&j, "lost", (long long)(want - t->got));
	json_int(&j, "errors", (long long)t->bad);
	json_num(&j, "cpu_ns_per_message", (double)(cpu_tx + t->cpu_ns) /
	    msgs);
	json_num(&j, "sender_cpu_ns_per_message", (double)cpu_tx / msgs);
	json_num(&j, "receiver_cpu_ns_per_message", (double)t->cpu_ns / msgs);
	json_int(&j, "sender_peak_rss_kb", peak_rss_kb());
	json_end(&j);
	return t->got == want && t->bad == 0 ? 0 : 1;
}

void
json_samples(const struct case_opts *o, const char *kase, const char *impl,
    int64_t wall_ns, int64_t *samples, int64_t cpu_ns, int round_trips,
    const char *definition)
{
	struct jout j;

	sort_i64(samples, (size_t)o->count);
	json_case(&j, o, kase, impl);
	json_num(&j, "seconds", (double)wall_ns / 1e9);
	if (round_trips)
		json_num(&j, "round_trips_per_s", (double)o->count * 1e9 /
		    (double)wall_ns);
	json_latency(&j, samples, (size_t)o->count);
	json_int(&j, "lost", 0);
	json_int(&j, "errors", 0);
	json_num(&j, "cpu_ns_per_message", (double)cpu_ns / (double)o->count);
	if (definition)
		json_str(&j, "definition", definition);
	json_end(&j);
}

int
json_pipeline(const struct case_opts *o, const char *kase, const char *impl,
    long window, int64_t wall_ns, int64_t cpu_ns, long bad)
{
	struct jout j;

	json_case(&j, o, kase, impl);
	json_int(&j, "window", window);
	json_num(&j, "seconds", (double)wall_ns / 1e9);
	json_num(&j, "requests_per_s", (double)o->count /
	    ((double)wall_ns / 1e9));
	json_num(&j, "cpu_ns_per_message", (double)cpu_ns / (double)o->count);
	json_int(&j, "lost", 0);
	json_int(&j, "errors", bad);
	json_end(&j);
	return bad ? 1 : 0;
}

/* ---- Options ------------------------------------------------------------- */

long
opt_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno == ERANGE || v < min ||
	    v > max)
		usage_error("%s: '%s' is not a number from %ld to %ld", opt, s,
		    min, max);
	return v;
}

void
case_opts_parse(int argc, char **argv, struct case_opts *o, int unix_ok,
    const char *usage)
{
	int i;

	if (argc < 2)
		usage_error("%s", usage);
	o->mode = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (unix_ok && !strcmp(a, "--unix")) {
			o->unix_sock = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage_error("%s needs a value", a);
		if (!strcmp(a, "--size"))
			o->size = opt_long(a, argv[++i], BM_HDR, BM_SIZE_MAX);
		else if (!strcmp(a, "--count"))
			o->count = opt_long(a, argv[++i], 1, 1000000000);
		else if (!strcmp(a, "--receivers"))
			o->receivers = opt_long(a, argv[++i], 1, KIDS_MAX);
		else
			usage_error("unknown option '%s'", a);
	}
}

void
case_count_max(const struct case_opts *o, long max)
{
	if (o->count > max)
		usage_error("%s: --count at most %ld", o->mode, max);
}
