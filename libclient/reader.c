/*
 * reader.c - data-plane frames, receiving side (see reader.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/zframe.h"
#include "reader.h"

void
dp_reader_init(struct dp_reader *r, size_t max_message)
{
	memset(r, 0, sizeof(*r));
	r->max_message = max_message;
}

void
dp_reader_open(struct dp_reader *r, int zlib)
{
	r->open = 1;
	r->zlib = zlib;
}

void
dp_reader_free(struct dp_reader *r)
{
	free(r->zbuf);
	r->zbuf = NULL;
	r->zcap = 0;
}

static int
fail(uint16_t *code, char *why, size_t whylen, uint16_t c, const char *text)
{
	*code = c;
	snprintf(why, whylen, "%s", text);
	return -1;
}

int
dp_read(struct dp_reader *r, const uint8_t *buf, size_t len,
    struct dp_event *ev, size_t *need, uint16_t *code, char *why,
    size_t whylen)
{
	struct wire_header h;
	struct wire_data d;
	const uint8_t *p;
	uint32_t limit;
	size_t flen, zlen;
	int rc;

	if (len < SIPC_HEADER_SIZE) {
		*need = SIPC_HEADER_SIZE;
		return 0;
	}
	/* Before DHELLO only a small frame; after it, one message. */
	limit = r->open ? (uint32_t)(SIPC_DATA_PREFIX + r->max_message) :
	    SIPC_HELLO_FRAME_MAX;
	rc = wire_header_decode(buf, limit, &h);
	if (rc == WIRE_ETOOBIG) {
		snprintf(why, whylen, "frame of %u bytes over the limit of %u",
		    h.len, limit);
		*code = WIRE_ERR_TOO_LARGE;
		return -1;
	}
	if (rc != 0)
		return fail(code, why, whylen, WIRE_ERR_BAD_FRAME,
		    wire_strerror(rc));
	if (r->hello_seen && h.version != SIPC_PROTO_VERSION_MAX)
		return fail(code, why, whylen, WIRE_ERR_BAD_FRAME,
		    "wrong protocol version in a frame");
	if ((h.flags & WIRE_F_COMPRESSED) && (!r->zlib || h.type != WIRE_DATA))
		return fail(code, why, whylen, WIRE_ERR_BAD_FRAME,
		    "compression not negotiated");
	flen = SIPC_HEADER_SIZE + (size_t)h.len;
	if (len < flen) {
		*need = flen;
		return 0;
	}
	p = buf + SIPC_HEADER_SIZE;
	memset(ev, 0, sizeof(*ev));
	ev->reqid = h.reqid;
	ev->wire_len = h.len;
	if (!r->open && h.type != WIRE_DHELLO && h.type != WIRE_ERROR)
		return fail(code, why, whylen, WIRE_ERR_HELLO_REQUIRED,
		    "send DHELLO first");
	switch (h.type) {
	case WIRE_DHELLO:
		if (r->hello_seen)
			return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
			    "DHELLO twice");
		if (wire_dec_dhello(p, h.len, &ev->hello) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed DHELLO");
		r->hello_seen = 1;
		ev->type = DP_DHELLO;
		return (int)flen;
	case WIRE_DATA:
		if (wire_dec_data(p, h.len, &d) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed DATA");
		if (h.flags & WIRE_F_COMPRESSED) {
			/* Only the body is compressed; it inflates to at most
			 * max_message bytes: a zlib bomb stops there. */
			rc = zf_inflate(d.body, d.len, r->max_message,
			    &r->zbuf, &r->zcap, &zlen);
			if (rc != 0)
				return fail(code, why, whylen,
				    WIRE_ERR_COMPRESSION, rc == ZF_ETOOBIG ?
				    "message inflates past max_message" :
				    "corrupt compressed message");
			d.body = r->zbuf ? r->zbuf : p;
			d.len = zlen;
		}
		ev->type = DP_DATA;
		ev->seq = d.seq;
		ev->body = d.body;
		ev->len = d.len;
		return (int)flen;
	case WIRE_PING:
	case WIRE_PONG:
		if (wire_dec_u64(p, h.len, &ev->token) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed PING or PONG");
		ev->type = h.type == WIRE_PING ? DP_PING : DP_PONG;
		return (int)flen;
	case WIRE_ERROR:
		if (wire_dec_error(p, h.len, &ev->error) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed ERROR");
		ev->type = DP_ERROR;
		return (int)flen;
	default:
		return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
		    "not a frame a receiver takes");
	}
}

/* ---- Read buffer --------------------------------------------------------- */

int
dp_buf_init(struct dp_buf *b, size_t min, size_t max)
{
	memset(b, 0, sizeof(*b));
	if ((b->p = malloc(min)) == NULL)
		return -1;
	b->cap = b->base = min;
	b->max = max;
	return 0;
}

void
dp_buf_free(struct dp_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void
compact(struct dp_buf *b)
{
	memmove(b->p, b->p + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

uint8_t *
dp_buf_space(struct dp_buf *b, size_t *space)
{
	/* Full: dp_buf_room() made room for the frame that waits, so the
	 * parsed bytes before it are what goes. */
	if (b->len == b->cap && b->off > 0)
		compact(b);
	*space = b->cap - b->len;
	return b->p + b->len;
}

void
dp_buf_add(struct dp_buf *b, size_t n, size_t space)
{
	uint8_t *np;

	b->len += n;
	if (n == space && b->cap == b->base && b->base < b->max) {
		np = realloc(b->p, b->base * 2);
		if (np) {
			b->p = np;
			b->cap = b->base = b->base * 2;
		}
	}
}

int
dp_buf_room(struct dp_buf *b, size_t need)
{
	uint8_t *np;

	if (b->off + need <= b->cap)
		return 0;
	if (b->off > 0)
		compact(b);
	if (need <= b->cap)
		return 0;
	/* Exactly the frame: need is bounded by the limits dp_read()
	 * checked the header against. */
	if ((np = realloc(b->p, need)) == NULL)
		return -1;
	b->p = np;
	b->cap = need;
	return 0;
}

void
dp_buf_settle(struct dp_buf *b)
{
	uint8_t *np;

	if (b->off == b->len) {
		b->off = b->len = 0;
		if (b->cap > b->base && (np = realloc(b->p, b->base))) {
			b->p = np;
			b->cap = b->base;
		}
	} else if (b->off > 0 && b->cap - b->len < b->base / 4)
		compact(b);
}
