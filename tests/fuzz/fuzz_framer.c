/*
 * fuzz_framer.c - libFuzzer target: the stream framer, proto/frame.c, the
 * one every connection of sipc reads through.
 *
 * Input: byte 0 holds options (bit 0: a data connection; bit 1: zlib
 * negotiated; bit 2: the handshake ends after the first frame, which then
 * fixes version 1 and the limits below), byte 1 picks the limit once open
 * (64 B, 4 KiB, 64 KiB or 1 MiB), byte 2 seeds the chunk sizes, the rest is
 * the stream.
 *
 * The stream is framed twice: from one buffer holding all of it, and as a
 * connection reads it, in chunks into a growing buffer.  Both must find
 * the same frames (type, flags, id, lengths, payload bytes) and end the
 * same way (an error with the same code, or a frame still incomplete).
 * Checked besides memory safety: a frame takes at most the bytes there
 * are, header and payload as its header says, within the limit; a payload
 * lies inside the input or inside the inflate buffer, inflated to at most
 * the inflate limit; "need more" asks for more than there is, within the
 * limit; every error has a code and a text.
 */
#include <string.h>

#include "../../proto/frame.h"
#include "fuzz.h"

#define OPT_DATA	0x01
#define OPT_ZLIB	0x02
#define OPT_OPEN	0x04
#define MAX_FRAMES	4096

static const uint32_t limits[] = { 64, 4096, 65536, 1 << 20 };

/* What one run found, to compare the two. */
struct trace {
	uint32_t	 n;
	uint32_t	 sum[MAX_FRAMES];	/* per frame: header and bytes */
	int		 end;			/* 0: incomplete, -1: error */
	uint16_t	 code;
};

struct opts {
	int		 data;
	int		 zlib;
	int		 open;
	uint32_t	 limit;
};

static int
inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
	return n == 0 || (p >= base && n <= size &&
	    p - base <= (ptrdiff_t)(size - n));
}

static uint32_t
sum_frame(const struct frame *fr)
{
	uint32_t s = (uint32_t)fr->h.type * 31 + fr->h.flags * 7 +
	    fr->h.reqid * 3 + fr->h.len + fr->wire_len * 5;
	uint32_t i;

	for (i = 0; i < fr->h.len; i++)
		s = s * 33 + fr->payload[i];
	return s;
}

static void
start(struct framer *f, const struct opts *o)
{
	frame_init(f, SIPC_HELLO_FRAME_MAX, o->data);
}

/* After each frame: the handshake may end with the first. */
static void
after(struct framer *f, const struct opts *o, uint32_t nframes)
{
	if (o->open && nframes == 1)
		frame_open(f, 1, o->zlib, o->limit, o->limit);
}

/* Frames buf[0..len) at *off: returns 1 with a frame recorded, 0 or -1
 * at the end (recorded in t). */
static int
step(struct framer *f, const struct opts *o, const uint8_t *buf,
    size_t len, size_t *off, struct trace *t)
{
	struct frame_err err;
	struct frame fr;
	size_t need = 0;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = frame_next(f, buf + *off, len - *off, &fr, &need, &err);
	if (rc == 0) {
		FZ_ASSERT(need > len - *off);
		FZ_ASSERT(need <= SIPC_HEADER_SIZE + (size_t)f->limit);
		t->end = 0;
		return 0;
	}
	if (rc == -1) {
		FZ_ASSERT(err.code != 0 && err.code <= WIRE_ERR_LAST);
		FZ_ASSERT(err.why[0] != '\0');
		t->end = -1;
		t->code = err.code;
		return -1;
	}
	FZ_ASSERT(rc == 1);
	FZ_ASSERT(fr.size == SIPC_HEADER_SIZE + (size_t)fr.wire_len);
	FZ_ASSERT(fr.size <= len - *off);
	FZ_ASSERT(fr.wire_len <= f->limit);
	if (fr.h.flags & WIRE_F_COMPRESSED) {
		FZ_ASSERT(f->zlib);
		FZ_ASSERT(!f->data || fr.h.type == WIRE_DATA);
		FZ_ASSERT(fr.h.len <= f->inflate_limit +
		    (f->data ? SIPC_DATA_PREFIX : 0));
		FZ_ASSERT(inside(fr.payload, fr.h.len, f->zbuf, f->zcap) ||
		    fr.h.len == 0);
	} else {
		FZ_ASSERT(fr.h.len == fr.wire_len);
		FZ_ASSERT(fr.payload == buf + *off + SIPC_HEADER_SIZE);
	}
	if (f->version)
		FZ_ASSERT(fr.h.version == f->version);
	if (t->n < MAX_FRAMES)
		t->sum[t->n] = sum_frame(&fr);
	t->n++;
	*off += fr.size;
	after(f, o, t->n);
	return 1;
}

/* The whole stream in one buffer. */
static void
run_whole(const struct opts *o, const uint8_t *p, size_t len,
    struct trace *t)
{
	struct framer f;
	size_t off = 0;

	start(&f, o);
	while (step(&f, o, p, len, &off, t) == 1)
		;
	frame_free(&f);
}

/* In chunks, as a connection reads it; the buffer holds what is not
 * framed yet and grows to what the framer asks for. */
static void
run_chunks(const struct opts *o, const uint8_t *p, size_t len,
    uint8_t seed, struct trace *t)
{
	struct framer f;
	uint8_t *buf = NULL;
	size_t have = 0, off, pos = 0, chunk;
	uint32_t x = seed * 2654435761u + 1;
	int rc = 0;

	start(&f, o);
	while (pos < len) {
		x = x * 1103515245u + 12345u;
		chunk = 1 + (x >> 16) % 512;
		if (chunk > len - pos)
			chunk = len - pos;
		if ((buf = realloc(buf, have + chunk)) == NULL)
			abort();
		memcpy(buf + have, p + pos, chunk);
		have += chunk;
		pos += chunk;
		off = 0;
		while ((rc = step(&f, o, buf, have, &off, t)) == 1)
			;
		memmove(buf, buf + off, have - off);
		have -= off;
		if (rc == -1)
			break;
	}
	if (len == 0)
		t->end = 0;
	free(buf);
	frame_free(&f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trace a, b;
	struct opts o;
	uint32_t i;
	uint8_t seed;

	if (size < 3)
		return 0;
	o.data = (data[0] & OPT_DATA) != 0;
	o.zlib = (data[0] & OPT_ZLIB) != 0;
	o.open = (data[0] & OPT_OPEN) != 0;
	o.limit = limits[data[1] % 4];
	seed = data[2];
	data += 3;
	size -= 3;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	run_whole(&o, data, size, &a);
	run_chunks(&o, data, size, seed, &b);
	FZ_ASSERT(a.n == b.n);
	for (i = 0; i < a.n && i < MAX_FRAMES; i++)
		FZ_ASSERT(a.sum[i] == b.sum[i]);
	FZ_ASSERT(a.end == b.end);
	FZ_ASSERT(a.code == b.code);
	return 0;
}
