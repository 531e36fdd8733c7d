/*
 * frame.c - the stream framer (see frame.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "zframe.h"

void
frame_init(struct framer *f, uint32_t limit, int data)
{
	memset(f, 0, sizeof(*f));
	f->limit = limit;
	f->inflate_limit = limit;
	f->data = data;
}

void
frame_open(struct framer *f, uint8_t version, int zlib, uint32_t limit,
    size_t inflate_limit)
{
	f->version = version;
	f->zlib = zlib;
	f->limit = limit;
	f->inflate_limit = inflate_limit;
}

void
frame_free(struct framer *f)
{
	free(f->zbuf);
	f->zbuf = NULL;
	f->zcap = 0;
}

static int
fail(struct frame_err *err, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct frame_err *err, uint16_t code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->why, sizeof(err->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* Checks the header at buf (SIPC_HEADER_SIZE bytes): 0, or -1. */
static int
check_header(const struct framer *f, const uint8_t *buf,
    struct wire_header *h, struct frame_err *err)
{
	switch (wire_header_decode(buf, f->limit, h)) {
	case 0:
		break;
	case WIRE_EMAGIC:
		return fail(err, WIRE_ERR_BAD_FRAME, "bad magic 0x%02x%02x, "
		    "not a sipc peer%s", buf[0], buf[1],
		    buf[0] == 0x16 && buf[1] == 0x03 ? " (a TLS client on "
		    "this plain-text port?)" : "");
	case WIRE_ERESERVED:
		return fail(err, WIRE_ERR_BAD_FRAME, "reserved header bits "
		    "set");
	case WIRE_ETOOBIG:
		return fail(err, WIRE_ERR_TOO_LARGE, "frame of %u bytes "
		    "exceeds the limit of %u", h->len, f->limit);
	default:
		return fail(err, WIRE_ERR_BAD_FRAME, "bad frame header");
	}
	if (f->version && h->version != f->version)
		return fail(err, WIRE_ERR_BAD_FRAME, "frame of version %u in "
		    "a version %u connection", h->version, f->version);
	if ((h->flags & WIRE_F_COMPRESSED) &&
	    (!f->zlib || (f->data && h->type != WIRE_DATA &&
	    h->type != WIRE_REPLY)))
		return fail(err, WIRE_ERR_BAD_FRAME, "compressed frame, but "
		    "compression was not negotiated");
	return 0;
}

/* Inflates fr's payload into f->zbuf, bounded: 0, or -1. */
static int
inflate_payload(struct framer *f, struct frame *fr, struct frame_err *err)
{
	const uint8_t *p = fr->payload;
	size_t off = 0, zlen;
	uint8_t *nb;
	int rc;

	if (f->data && fr->h.type == WIRE_DATA) {
		/* DATA: the sequence number stays as is, the body after it
		 * is the zlib stream (REPLY: the whole payload is). */
		off = SIPC_DATA_PREFIX;
		if (fr->wire_len < off)
			return fail(err, WIRE_ERR_BAD_MESSAGE, "compressed "
			    "DATA shorter than its sequence number");
		if (f->zcap < off) {
			if ((nb = realloc(f->zbuf, off)) == NULL)
				return fail(err, WIRE_ERR_INTERNAL, "out of "
				    "memory");
			f->zbuf = nb;
			f->zcap = off;
		}
	}
	rc = zf_inflate_at(p + off, fr->wire_len - off, off, f->inflate_limit,
	    &f->zbuf, &f->zcap, &zlen);
	if (rc == ZF_ENOMEM)
		return fail(err, WIRE_ERR_INTERNAL, "out of memory");
	if (rc != 0)
		return fail(err, WIRE_ERR_COMPRESSION, "%s", rc == ZF_ETOOBIG ?
		    "compressed payload inflates past the limit" :
		    "corrupt compressed payload");
	if (off + zlen == 0) {
		/* An empty stream: nothing allocated, nothing to point at. */
		fr->payload = p;
		fr->h.len = 0;
		return 0;
	}
	memcpy(f->zbuf, p, off);
	fr->payload = f->zbuf;
	fr->h.len = (uint32_t)(off + zlen);
	return 0;
}

int
frame_next(struct framer *f, const uint8_t *buf, size_t len,
    struct frame *fr, size_t *need, struct frame_err *err)
{
	size_t size;

	if (len < SIPC_HEADER_SIZE) {
		*need = SIPC_HEADER_SIZE;
		return 0;
	}
	if (check_header(f, buf, &fr->h, err) == -1)
		return -1;
	size = SIPC_HEADER_SIZE + (size_t)fr->h.len;
	if (len < size) {
		*need = size;
		return 0;
	}
	fr->payload = buf + SIPC_HEADER_SIZE;
	fr->wire_len = fr->h.len;
	fr->size = size;
	if ((fr->h.flags & WIRE_F_COMPRESSED) &&
	    inflate_payload(f, fr, err) == -1)
		return -1;
	return 1;
}
