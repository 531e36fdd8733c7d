/*
 * reader.h - the receiving side of a data connection as a pure state
 * machine: bytes in, events out.  No I/O, no clock, no callbacks: the
 * receiver (receiver.c) feeds it what it read and acts on the events; the
 * fuzzer (tests/fuzz) feeds it anything.
 *
 * Frames come through the framer (proto/frame.h), which checks every
 * header before looking at a payload and inflates compressed bodies,
 * bounded by max_message; the reader decodes DHELLO, DATA, PING, PONG,
 * ERROR and (SHM granted) SHM_RING, and refuses everything else, and
 * everything out of order (DATA before DHELLO accepted, DHELLO twice).
 */
#ifndef SIPC_READER_H
#define SIPC_READER_H

#include <stddef.h>
#include <stdint.h>

#include "../proto/frame.h"
#include "../proto/wire.h"

struct dp_reader {
	struct framer	 fr;
	size_t		 max_message;	/* bytes of one message body */
	int		 hello_seen;
	int		 open;		/* DHELLO accepted */
	int		 reply;		/* REPLY granted: requests allowed */
	int		 shm;		/* SHM granted: SHM_RING allowed */
};

enum dp_type {
	DP_DHELLO = 1,
	DP_DATA,
	DP_PING,
	DP_PONG,
	DP_ERROR,	/* the peer sent ERROR */
	DP_SHM_RING	/* a ring to read (its fds came with it) */
};

struct dp_event {
	enum dp_type		 type;
	uint32_t		 reqid;
	uint32_t		 wire_len;	/* payload bytes on the wire */
	struct wire_dhello	 hello;		/* DP_DHELLO */
	uint64_t		 seq;		/* DP_DATA */
	const uint8_t		*body;		/* valid until the next call */
	size_t			 len;
	uint64_t		 token;		/* DP_PING, DP_PONG */
	struct wire_error	 error;		/* DP_ERROR */
	struct wire_shm_ring	 ring;		/* DP_SHM_RING */
};

void	dp_reader_init(struct dp_reader *r, size_t max_message);
/* DHELLO accepted: DATA may follow; zlib: compressed bodies allowed. */
void	dp_reader_open(struct dp_reader *r, int zlib);
void	dp_reader_free(struct dp_reader *r);

/*
 * Reads one frame from buf[0..len).  Returns the bytes it took (> 0) with
 * *ev filled; 0 when the frame is not complete yet (*need: the bytes the
 * whole frame takes, already checked against the limits, so the caller may
 * make that much room); or -1 when the peer broke the protocol: send ERROR
 * *code with the text in why, then close.
 */
int	dp_read(struct dp_reader *r, const uint8_t *buf, size_t len,
	    struct dp_event *ev, size_t *need, uint16_t *code, char *why,
	    size_t whylen);

/*
 * A connection's read buffer, frames parsed straight from it: bytes
 * p[off..len) are read and not parsed yet.  It starts at min bytes and its
 * working size doubles up to max while reads fill it (a busy sender); it
 * grows to one frame that does not fit, and back after it.
 */
struct dp_buf {
	uint8_t		*p;
	size_t		 off;
	size_t		 len;
	size_t		 cap;		/* bytes at p */
	size_t		 base;		/* working size */
	size_t		 max;
};

/* 0, or -1 when out of memory. */
int	dp_buf_init(struct dp_buf *b, size_t min, size_t max);
void	dp_buf_free(struct dp_buf *b);
/*
 * Where the next read goes: p + len, *space bytes (> 0).  Moves the
 * unparsed bytes to the front first when the buffer is full.
 */
uint8_t	*dp_buf_space(struct dp_buf *b, size_t *space);
/* n bytes were read into the space: a read that filled it (and filled the
 * working size) doubles the working size. */
void	dp_buf_add(struct dp_buf *b, size_t n, size_t space);
/* Room for a frame of need bytes (dp_read()'s *need) at off: 0, or -1
 * when out of memory. */
int	dp_buf_room(struct dp_buf *b, size_t need);
/* After parsing: an empty buffer starts over at the front (and shrinks to
 * the working size after a large frame); one nearly full is compacted. */
void	dp_buf_settle(struct dp_buf *b);

#endif
