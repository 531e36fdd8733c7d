/*
 * clock.c - monotonic and wall-clock milliseconds, and random numbers
 * (see clock.h).
 */
#include <stdint.h>
#include <time.h>

#include <openssl/rand.h>

#include "clock.h"

int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
mono_ms(void)
{
	return mono_ns() / 1000000;
}

uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
random_u64(void)
{
	uint64_t v = 0;

	while (v == 0) {
		if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) {
			/* OpenSSL's generator failing is not recoverable
			 * here; fall back to something unique enough. */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			v ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^
			    (uint64_t)ts.tv_sec;
		}
	}
	return v;
}
