/*
 * reader.c - data-plane frames, receiving side (see reader.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

void
dp_reader_init(struct dp_reader *r, size_t max_message)
{
	memset(r, 0, sizeof(*r));
	r->max_message = max_message;
	/* Before DHELLO only a small frame; after it, one message. */
	frame_init(&r->fr, SIPC_HELLO_FRAME_MAX, 1);
}

void
dp_reader_open(struct dp_reader *r, int zlib)
{
	r->open = 1;
	frame_open(&r->fr, SIPC_PROTO_VERSION_MAX, zlib,
	    (uint32_t)(SIPC_DATA_PREFIX + r->max_message), r->max_message);
}

void
dp_reader_free(struct dp_reader *r)
{
	frame_free(&r->fr);
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
	struct frame_err err;
	struct wire_data d;
	struct frame f;
	const uint8_t *p;
	int rc;

	if ((rc = frame_next(&r->fr, buf, len, &f, need, &err)) <= 0) {
		if (rc < 0)
			fail(code, why, whylen, err.code, err.why);
		return rc;
	}
	p = f.payload;
	/* Field by field: the decoders fill the frame's own part, and a
	 * memset of the whole event (its DHELLO, ERROR and SHM_RING parts)
	 * was 5 % of all CPU with 64 B messages. */
	ev->seq = ev->token = 0;
	ev->body = NULL;
	ev->len = 0;
	ev->reqid = f.h.reqid;
	ev->wire_len = f.wire_len;
	if (!r->open && f.h.type != WIRE_DHELLO && f.h.type != WIRE_ERROR)
		return fail(code, why, whylen, WIRE_ERR_HELLO_REQUIRED,
		    "send DHELLO first");
	switch (f.h.type) {
	case WIRE_DHELLO:
		if (r->hello_seen)
			return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
			    "DHELLO twice");
		if (wire_dec_dhello(p, f.h.len, &ev->hello) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed DHELLO");
		r->hello_seen = 1;
		ev->type = DP_DHELLO;
		break;
	case WIRE_DATA:
		if (wire_dec_data(p, f.h.len, &d) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed DATA");
		if (f.h.reqid != 0 && !r->reply)
			return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
			    "a request, but REPLY was not granted");
		ev->type = DP_DATA;
		ev->seq = d.seq;
		ev->body = d.body;
		ev->len = d.len;
		break;
	case WIRE_PING:
	case WIRE_PONG:
		if (wire_dec_u64(p, f.h.len, &ev->token) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed PING or PONG");
		ev->type = f.h.type == WIRE_PING ? DP_PING : DP_PONG;
		break;
	case WIRE_SHM_RING:
		if (!r->shm)
			return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
			    "SHM_RING, but SHM was not granted");
		if (f.h.reqid != 0 ||
		    wire_dec_shm_ring(p, f.h.len, &ev->ring) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed SHM_RING");
		ev->type = DP_SHM_RING;
		break;
	case WIRE_ERROR:
		if (wire_dec_error(p, f.h.len, &ev->error) != 0)
			return fail(code, why, whylen, WIRE_ERR_BAD_MESSAGE,
			    "malformed ERROR");
		ev->type = DP_ERROR;
		break;
	default:
		return fail(code, why, whylen, WIRE_ERR_UNEXPECTED,
		    "not a frame a receiver takes");
	}
	return (int)f.size;
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
