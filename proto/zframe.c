/*
 * zframe.c - bounded zlib compression of frame payloads (see zframe.h).
 */
#include <limits.h>
#include <stdlib.h>

#include <zlib.h>

#include "zframe.h"

int
zf_deflate(const void *in, size_t len, uint8_t **out, size_t *outlen)
{
	uLongf n;
	uint8_t *b;

	if (len > UINT_MAX)
		return 1;
	n = compressBound((uLong)len);
	if ((b = malloc(n)) == NULL)
		return ZF_ENOMEM;
	/* Speed over ratio: this runs on the sender's path for every
	 * message that is large enough. */
	if (compress2(b, &n, in, (uLong)len, Z_BEST_SPEED) != Z_OK ||
	    n >= len) {
		free(b);
		return 1;
	}
	*out = b;
	*outlen = n;
	return 0;
}

int
zf_inflate(const void *in, size_t len, size_t limit, uint8_t **buf,
    size_t *cap, size_t *outlen)
{
	return zf_inflate_at(in, len, 0, limit, buf, cap, outlen);
}

int
zf_inflate_at(const void *in, size_t len, size_t off, size_t limit,
    uint8_t **buf, size_t *cap, size_t *outlen)
{
	z_stream z = { 0 };
	size_t ncap, room, have;
	uint8_t *nb;
	int rc;

	*outlen = 0;
	if (len > UINT_MAX)
		return ZF_ECORRUPT;
	if (inflateInit(&z) != Z_OK)
		return ZF_ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	for (;;) {
		/* Room for inflated bytes: after the off bytes kept. */
		have = *cap > off ? *cap - off : 0;
		room = have < limit ? have : limit;
		if (z.total_out == room) {
			/* Grow, but never past the limit: a bomb stops here.
			 * At the limit, the stream may only end, with no
			 * byte more. */
			if (room >= limit) {
				uint8_t extra;

				z.next_out = &extra;
				z.avail_out = 1;
				rc = inflate(&z, Z_NO_FLUSH);
				if (rc == Z_STREAM_END && z.avail_out == 1)
					rc = z.avail_in == 0 ? 0 : ZF_ECORRUPT;
				else
					rc = ZF_ETOOBIG;
				break;
			}
			ncap = have ? have * 2 : (len * 4 > 4096 ? len * 4 :
			    4096);
			if (ncap > limit)
				ncap = limit;
			if ((nb = realloc(*buf, off + ncap)) == NULL) {
				rc = ZF_ENOMEM;
				break;
			}
			*buf = nb;
			*cap = off + ncap;
			room = ncap;
		}
		z.next_out = *buf + off + z.total_out;
		z.avail_out = (uInt)(room - z.total_out > UINT_MAX ?
		    UINT_MAX : room - z.total_out);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			rc = z.avail_in == 0 ? 0 : ZF_ECORRUPT;
			break;
		}
		if (rc == Z_BUF_ERROR && z.avail_in == 0) {
			rc = ZF_ECORRUPT;	/* input ends mid-stream */
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			rc = rc == Z_MEM_ERROR ? ZF_ENOMEM : ZF_ECORRUPT;
			break;
		}
	}
	*outlen = z.total_out;
	inflateEnd(&z);
	return rc;
}
