/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: an assertion
 * that crashes whatever the build (libFuzzer reports it, the replay test
 * fails on it), a cursor that turns fuzzer bytes into values, and the
 * message oracle of msg.c.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput.  The replay test
 * (replay.c) compiles every target again with the normal compiler, the
 * entry point renamed by -DLLVMFuzzerTestOneInput=fuzz_<target>_one, and
 * feeds it the seed corpus and the regression inputs.
 */
#ifndef SIPC_FUZZ_H
#define SIPC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../proto/wire.h"

/* A broken invariant: a crash libFuzzer saves, whatever the sanitizers. */
#define FZ_ASSERT(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #c);				\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- Input cursor ---------------------------------------------------------- */

/* Reads values from the fuzzer's bytes; past the end everything is 0. */
struct fz_src {
	const uint8_t	*p;
	size_t		 left;
};

static inline uint8_t
fz_u8(struct fz_src *s)
{
	if (s->left == 0)
		return 0;
	s->left--;
	return *s->p++;
}

/* Big-endian, like the wire; each read in its own statement, since the
 * operands of | are evaluated in no fixed order. */
static inline uint16_t
fz_u16(struct fz_src *s)
{
	uint16_t hi = fz_u8(s);

	return (uint16_t)(hi << 8 | fz_u8(s));
}

static inline uint32_t
fz_u32(struct fz_src *s)
{
	uint32_t hi = fz_u16(s);

	return hi << 16 | fz_u16(s);
}

static inline uint64_t
fz_u64(struct fz_src *s)
{
	uint64_t hi = fz_u32(s);

	return hi << 32 | fz_u32(s);
}

/* ---- Messages (msg.c) ------------------------------------------------------ */

/*
 * Every payload decoder of wire.h, by what it decodes.  fuzz_broker selects
 * one with its first input byte (modulo FZ_DEC_COUNT), gen_corpus writes
 * its seeds in the same order: append only.
 */
enum fz_dec {
	FZ_DEC_HELLO,
	FZ_DEC_REGISTER,
	FZ_DEC_U64,		/* UNREGISTER, PING, PONG, ACK */
	FZ_DEC_HANDLE,		/* LOOKUP, WATCH, UNWATCH */
	FZ_DEC_LIST,
	FZ_DEC_EMPTY,		/* STATS */
	FZ_DEC_JOIN,
	FZ_DEC_LEAVE,
	FZ_DEC_ERROR,
	FZ_DEC_DHELLO,
	FZ_DEC_DATA,
	FZ_DEC_OK,		/* any OK: by its first byte, as a client */
	FZ_DEC_OK_HELLO,
	FZ_DEC_OK_UNREGISTER,
	FZ_DEC_OK_UNWATCH,
	FZ_DEC_OK_REGISTER,
	FZ_DEC_OK_LOOKUP,
	FZ_DEC_OK_WATCH,
	FZ_DEC_OK_LIST,
	FZ_DEC_OK_STATS,
	FZ_DEC_OK_DHELLO,
	FZ_DEC_COUNT
};

/* The decoder a peer uses for a frame of this type; -1 for none. */
int	fz_dec_for_type(uint8_t type);

/*
 * Decodes p[0..len) with decoder dec.  When it is accepted, checks what the
 * decoder promises: every string inside the payload and valid as its field
 * requires, sequences that iterate to exactly their count, and that
 * encoding the decoded message again gives the same bytes (the codec is
 * canonical, so an accepted payload that encodes differently was misread).
 * Returns the decoder's result; breaks an FZ_ASSERT on a violation.
 */
int	fz_check_msg(int dec, const uint8_t *p, size_t len);

#endif
