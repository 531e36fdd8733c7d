/*
 * bench_util.c - sipc bench: the small helpers that both the serve
 * processes and the measuring side use: clocks and CPU time, the header of
 * a benchmark message, condition variables on the monotonic clock.
 *
 * No state and no sipc objects; it knows nothing of runs, receivers or
 * results.
 */
#include <sys/resource.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_int.h"

int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of this process (every thread), or of its reaped children. */
int64_t
bench_cpu_ns(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) == -1)
		return 0;
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    1000000000 + ((int64_t)ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000;
}

void
bench_put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t
bench_get64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A message of len bytes (>= BM_HDR) of kind; the filler is a pattern. */
void
bench_msg_init(uint8_t *buf, size_t len, int kind)
{
	size_t i;

	for (i = BM_HDR; i < len; i++)
		buf[i] = (uint8_t)(i * 7);
	memcpy(buf, BM_MAGIC, 4);
	buf[4] = (uint8_t)kind;
	buf[5] = buf[6] = buf[7] = 0;
	bench_put64(buf + 8, 0);
}

/* The kind of a benchmark message, or -1 for anything else. */
int
bench_msg_kind(const void *data, size_t len)
{
	const uint8_t *p = data;

	if (len < BM_HDR || memcmp(p, BM_MAGIC, 4) != 0)
		return -1;
	return p[4];
}

uint64_t
bench_random64(void)
{
	uint64_t v = 0;
	FILE *fp;

	if ((fp = fopen("/dev/urandom", "rb")) != NULL) {
		if (fread(&v, sizeof(v), 1, fp) != 1)
			v = 0;
		fclose(fp);
	}
	if (v == 0)
		v = (uint64_t)bench_now_ns() ^ ((uint64_t)getpid() << 32);
	return v ? v : 1;
}

const char *
bench_errtext(int rc)
{
	return *sipc_errmsg() ? sipc_errmsg() : sipc_strerror(rc);
}

void
bench_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* Waits on cv (under mu) for at most ms milliseconds. */
void
bench_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

