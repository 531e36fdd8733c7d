/*
 * clock.h - the clocks and the random numbers that sipc-epmd and libsipc
 * both use, in milliseconds.  Nothing else: no I/O, no state.
 */
#ifndef SIPC_COMMON_CLOCK_H
#define SIPC_COMMON_CLOCK_H

#include <stdint.h>

/* Milliseconds on the monotonic clock: for timeouts and intervals. */
int64_t		mono_ms(void);
/* The same in nanoseconds: for measuring (tests, benchmarks). */
int64_t		mono_ns(void);
/* Unix time in milliseconds: for what people and other hosts read. */
uint64_t	wall_ms(void);
/* A random non-zero number from OpenSSL's generator (ids, jitter). */
uint64_t	random_u64(void);

#endif
