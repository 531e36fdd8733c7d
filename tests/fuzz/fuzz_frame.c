/*
 * fuzz_frame.c - libFuzzer target: a byte stream as a peer sends it on a
 * broker session or a data connection.  Each frame is a 16-byte header
 * (wire_header_decode, checked against the limit before the payload is
 * looked at) and its payload; a COMPRESSED payload is inflated first,
 * bounded by the same limit, as sipc-epmd's session and libsipc's broker
 * client do; then the payload goes to the decoder of its type (fz_check_msg
 * in msg.c, which also checks what the decoder accepted).  The stream goes
 * on after the payload, so the input may hold several frames; it ends at
 * the first framing error or an incomplete frame.
 *
 * What this does not cover: which decoder a type gets in which state (that
 * is the broker's dispatch and the client's), and the data-plane reader
 * (fuzz_reader).
 */
#include <stdlib.h>
#include <string.h>

#include "../../proto/zframe.h"
#include "fuzz.h"

/* The frame limit of this imaginary peer: small, so that zlib bombs reach
 * it fast; still more than -max_len, so that any frame can be complete. */
#define FRAME_LIMIT	(64 * 1024)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_header h;
	uint8_t hdr[SIPC_HEADER_SIZE];
	const uint8_t *p;
	uint8_t *zbuf = NULL;
	size_t zcap = 0, zlen, plen;
	int rc, dec;

	while (size >= SIPC_HEADER_SIZE) {
		rc = wire_header_decode(data, FRAME_LIMIT, &h);
		if (rc != 0) {
			FZ_ASSERT(rc == WIRE_EMAGIC || rc == WIRE_ERESERVED ||
			    rc == WIRE_ETOOBIG);
			if (rc == WIRE_ETOOBIG)
				FZ_ASSERT(h.len > FRAME_LIMIT);
			break;		/* the peer closes the connection */
		}
		FZ_ASSERT(h.len <= FRAME_LIMIT);
		FZ_ASSERT((h.flags & ~WIRE_F_KNOWN) == 0);
		/* The header codec is exact both ways. */
		wire_header_encode(hdr, &h);
		FZ_ASSERT(memcmp(hdr, data, SIPC_HEADER_SIZE) == 0);
		(void)wire_type_name(h.type);
		if (size - SIPC_HEADER_SIZE < h.len)
			break;		/* the rest is on its way */
		p = data + SIPC_HEADER_SIZE;
		plen = h.len;
		if (h.flags & WIRE_F_COMPRESSED) {
			rc = zf_inflate(p, plen, FRAME_LIMIT, &zbuf, &zcap,
			    &zlen);
			if (rc != 0) {
				FZ_ASSERT(rc == ZF_ETOOBIG ||
				    rc == ZF_ECORRUPT);
				break;
			}
			FZ_ASSERT(zlen <= FRAME_LIMIT && zlen <= zcap);
			p = zbuf ? zbuf : p;
			plen = zlen;
		}
		if ((dec = fz_dec_for_type(h.type)) >= 0)
			(void)fz_check_msg(dec, p, plen);
		data += SIPC_HEADER_SIZE + (size_t)h.len;
		size -= SIPC_HEADER_SIZE + (size_t)h.len;
	}
	free(zbuf);
	return 0;
}
