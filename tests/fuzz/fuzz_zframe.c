/*
 * fuzz_zframe.c - libFuzzer target: bounded zlib (proto/zframe.c).
 *
 * Input: byte 0 selects the mode (modulo 3), the rest is the data.
 *
 *   0  zf_inflate() with a limit of 64 KiB;
 *   1  zf_inflate() with a small limit: byte 1 times 64 bytes (0-16 KiB);
 *   2  zf_deflate() then zf_inflate(): must give back the input, and one
 *      byte less of limit must be "too big".
 *
 * The inflate modes compare with zlib's own uncompress2(): zf_inflate()
 * succeeds exactly when the input is one complete zlib stream of at most
 * limit bytes, with the same bytes, never grows its buffer past the limit,
 * says "too big" for every stream with more, and gives the same answer
 * when it runs again on the buffer it grew (as the reader reuses it).
 */
#include <string.h>

#include <zlib.h>

#include "../../proto/zframe.h"
#include "fuzz.h"

static void
inflate_checked(const uint8_t *in, size_t len, size_t limit)
{
	uint8_t *buf = NULL, *ref;
	size_t cap = 0, outlen = 0, outlen2 = 0;
	uLongf rlen = (uLongf)limit + 1;
	uLong slen = (uLong)len;
	int rc, rc2, zrc, whole;

	rc = zf_inflate(in, len, limit, &buf, &cap, &outlen);
	FZ_ASSERT(rc == 0 || rc == ZF_ETOOBIG || rc == ZF_ECORRUPT);
	FZ_ASSERT(cap <= limit);
	if ((ref = malloc(limit + 1)) == NULL) {
		free(buf);
		return;
	}
	zrc = uncompress2(ref, &rlen, in, &slen);
	whole = zrc == Z_OK && slen == len && rlen <= limit;
	if (whole != (rc == 0))
		fprintf(stderr, "zf_inflate %d, uncompress2 %d (%lu of %zu "
		    "bytes read, %lu out, limit %zu)\n", rc, zrc,
		    (unsigned long)slen, len, (unsigned long)rlen, limit);
	FZ_ASSERT(whole == (rc == 0));
	if (rc == 0) {
		FZ_ASSERT(outlen == rlen);
		FZ_ASSERT(outlen == 0 || memcmp(buf, ref, outlen) == 0);
	}
	/* Inflates past the limit: too big, whatever follows. */
	if (zrc == Z_BUF_ERROR || (zrc == Z_OK && rlen > limit))
		FZ_ASSERT(rc == ZF_ETOOBIG);
	/* Again, into the buffer as the first call left it. */
	rc2 = zf_inflate(in, len, limit, &buf, &cap, &outlen2);
	FZ_ASSERT(rc2 == rc && cap <= limit);
	if (rc == 0)
		FZ_ASSERT(outlen2 == outlen &&
		    (outlen == 0 || memcmp(buf, ref, outlen) == 0));
	free(ref);
	free(buf);
}

static void
round_trip(const uint8_t *in, size_t len)
{
	uint8_t *z = NULL, *buf = NULL;
	size_t zlen = 0, cap = 0, outlen = 0;
	int rc;

	rc = zf_deflate(in, len, &z, &zlen);
	FZ_ASSERT(rc == 0 || rc == 1 || rc == ZF_ENOMEM);
	if (rc != 0)
		return;
	FZ_ASSERT(zlen < len);
	rc = zf_inflate(z, zlen, len, &buf, &cap, &outlen);
	FZ_ASSERT(rc == 0 && outlen == len && memcmp(buf, in, len) == 0);
	free(buf);
	buf = NULL;
	cap = 0;
	rc = zf_inflate(z, zlen, len - 1, &buf, &cap, &outlen);
	FZ_ASSERT(rc == ZF_ETOOBIG);
	free(buf);
	free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		inflate_checked(data + 1, size - 1, 64 * 1024);
		break;
	case 1:
		if (size < 2)
			return 0;
		inflate_checked(data + 2, size - 2, (size_t)data[1] * 64);
		break;
	default:
		round_trip(data + 1, size - 1);
		break;
	}
	return 0;
}
