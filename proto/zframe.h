/*
 * zframe.h - zlib compression of frame payloads (the COMPRESSED flag, see
 * PROTOCOL.md).  Pure computation over buffers; the inflated size is
 * bounded by the caller's limit, so a zlib bomb costs at most that much
 * memory and then fails.
 */
#ifndef SIPC_PROTO_ZFRAME_H
#define SIPC_PROTO_ZFRAME_H

#include <stddef.h>
#include <stdint.h>

#define ZF_ETOOBIG	(-1)	/* inflates to more than the limit */
#define ZF_ECORRUPT	(-2)	/* not a complete zlib stream */
#define ZF_ENOMEM	(-3)

/* Payloads smaller than this are not worth compressing. */
#define ZF_MIN_BROKER	1024
#define ZF_MIN_DATA	256

/*
 * Compresses in[0..len) into a new malloc'ed buffer (*out, *outlen bytes,
 * the caller frees it).  Returns 0, or 1 when the payload is better sent
 * as is (compressing does not make it smaller, or zlib fails; nothing
 * allocated), or ZF_ENOMEM.
 */
int	zf_deflate(const void *in, size_t len, uint8_t **out, size_t *outlen);

/*
 * Inflates in[0..len) into *buf (capacity *cap, grown with realloc as
 * needed, never beyond limit bytes; the caller owns and frees it).  The
 * stream must end exactly at the end of the input.  Returns 0 with
 * *outlen, ZF_ETOOBIG, ZF_ECORRUPT or ZF_ENOMEM.
 */
int	zf_inflate(const void *in, size_t len, size_t limit, uint8_t **buf,
	    size_t *cap, size_t *outlen);
/* The same, keeping the first off bytes of *buf (the caller's, also when
 * the buffer grows) and inflating after them: *outlen counts only the
 * inflated bytes, which limit bounds.  With *cap < off the buffer is
 * grown first; the caller writes its off bytes after the call. */
int	zf_inflate_at(const void *in, size_t len, size_t off, size_t limit,
	    uint8_t **buf, size_t *cap, size_t *outlen);

#endif
