/*
 * frame.h - the one stream framer of sipc: finds whole frames in the bytes
 * a connection received, checks every header against the connection's
 * limits before a payload byte is looked at, and inflates compressed
 * payloads, bounded.  The broker's sessions, the library's broker client,
 * brokerctl and both ends of data connections all read through it.
 *
 * Pure: no I/O, no clock, no globals.  The caller owns the bytes; the
 * framer owns only the buffer it inflates into.  It does not decode
 * payloads (wire.h does) and does not know which types a peer may send.
 */
#ifndef SIPC_PROTO_FRAME_H
#define SIPC_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* What a connection accepts; change it as the handshake goes. */
struct framer {
	uint32_t	 limit;		/* largest payload on the wire */
	size_t		 inflate_limit;	/* largest payload inflated (DATA:
					   its body) */
	uint8_t		 version;	/* 0: any (before HELLO/DHELLO) */
	int		 zlib;		/* COMPRESSED allowed */
	int		 data;		/* a data connection: COMPRESSED only
					   on DATA, whose body alone is */
	uint8_t		*zbuf;		/* inflated payloads */
	size_t		 zcap;
};

/* One frame, as frame_next() found it. */
struct frame {
	struct wire_header h;		/* h.len: bytes at payload */
	const uint8_t	*payload;	/* inflated when it was compressed;
					   valid until the next call */
	uint32_t	 wire_len;	/* payload bytes as received */
	size_t		 size;		/* bytes it took: header + wire_len */
};

/* Why the peer broke the protocol: the ERROR code to send, and a text. */
struct frame_err {
	uint16_t	 code;
	char		 why[160];
};

/*
 * Starts f for a connection that accepts payloads of up to limit bytes
 * (before the handshake: SIPC_HELLO_FRAME_MAX), any version byte, no
 * compression.  data: a data connection (see struct framer).
 */
void	frame_init(struct framer *f, uint32_t limit, int data);
/*
 * After the handshake: the version every frame must carry from now on,
 * whether COMPRESSED was negotiated, the payload limit on the wire and the
 * limit of what a payload (DATA: its body) inflates to.
 */
void	frame_open(struct framer *f, uint8_t version, int zlib,
	    uint32_t limit, size_t inflate_limit);
void	frame_free(struct framer *f);

/*
 * Looks for one frame at buf[0..len).  Returns 1 with *fr filled; 0 when
 * the frame is not whole yet, with *need the bytes it takes in all (the
 * header is checked already: *need is within the limit, so the caller may
 * make that much room); -1 when the peer broke the protocol (*err: send
 * ERROR err->code when the connection allows it, then close).
 */
int	frame_next(struct framer *f, const uint8_t *buf, size_t len,
	    struct frame *fr, size_t *need, struct frame_err *err);

#endif
