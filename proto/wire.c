/*
 * wire.c - the sipc wire codec (see wire.h and PROTOCOL.md): frame
 * headers, the encoders, and the checks of strings, handles and endpoints
 * that both directions use.  Encoding appends to a struct wbuf that never
 * grows past its maximum.  The decoders are wire_dec.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "wire_int.h"

/* ---- Header -------------------------------------------------------------- */

int
wire_header_decode(const uint8_t *buf, uint32_t max_len, struct wire_header *h)
{
	if (buf[0] != WIRE_MAGIC0 || buf[1] != WIRE_MAGIC1)
		return WIRE_EMAGIC;
	h->version = buf[2];
	h->type = buf[3];
	h->flags = wire_ld16(buf + 4);
	h->reqid = wire_ld32(buf + 8);
	h->len = wire_ld32(buf + 12);
	if (wire_ld16(buf + 6) != 0 || (h->flags & ~WIRE_F_KNOWN) != 0)
		return WIRE_ERESERVED;
	if (h->len > max_len)
		return WIRE_ETOOBIG;
	return 0;
}

void
wire_header_encode(uint8_t *buf, const struct wire_header *h)
{
	buf[0] = WIRE_MAGIC0;
	buf[1] = WIRE_MAGIC1;
	buf[2] = h->version;
	buf[3] = h->type;
	wire_be16(buf + 4, h->flags);
	wire_be16(buf + 6, 0);
	wire_be32(buf + 8, h->reqid);
	wire_be32(buf + 12, h->len);
}

/* ---- Names --------------------------------------------------------------- */

int
wire_name_valid(const uint8_t *p, size_t n)
{
	size_t i;

	if (!wire_utf8_valid(p, n))
		return 0;
	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
		/* U+0080..U+009F are encoded as C2 80..C2 9F. */
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

/* ---- Output buffer ------------------------------------------------------- */

void
wbuf_init(struct wbuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
wbuf_reset(struct wbuf *b)
{
	b->len = 0;
	b->err = 0;
}

void
wbuf_free(struct wbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Makes room for n more bytes; returns a pointer to them or NULL. */
static uint8_t *
wbuf_room(struct wbuf *b, size_t n)
{
	size_t want, ncap;
	uint8_t *nd;

	if (b->err)
		return NULL;
	if (n > b->max - b->len) {
		b->err = WIRE_ENOSPACE;
		return NULL;
	}
	want = b->len + n;
	if (want > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < want)
			ncap = ncap > b->max / 2 ? b->max : ncap * 2;
		if ((nd = realloc(b->data, ncap)) == NULL) {
			b->err = WIRE_ENOMEM;
			return NULL;
		}
		b->data = nd;
		b->cap = ncap;
	}
	nd = b->data + b->len;
	b->len += n;
	return nd;
}

/* Each appends one big-endian integer; on a failed buffer, nothing. */
#define WIRE_PUT(name, type, n, store)			\
void							\
name(struct wbuf *b, type v)				\
{							\
	uint8_t *p = wbuf_room(b, n);			\
							\
	if (p)						\
		store;					\
}

WIRE_PUT(wire_put_u8, uint8_t, 1, p[0] = v)
WIRE_PUT(wire_put_u16, uint16_t, 2, wire_be16(p, v))
WIRE_PUT(wire_put_u32, uint32_t, 4, wire_be32(p, v))
WIRE_PUT(wire_put_u64, uint64_t, 8, wire_be64(p, v))

void
wire_put_bytes(struct wbuf *b, const void *src, size_t n)
{
	uint8_t *p = wbuf_room(b, n);

	if (p && n)
		memcpy(p, src, n);
}

void
wire_put_str(struct wbuf *b, const char *s, size_t n, size_t max)
{
	if (n > max || n > UINT16_MAX) {
		if (b->err == 0)
			b->err = WIRE_EVALUE;
		return;
	}
	wire_put_u16(b, (uint16_t)n);
	wire_put_bytes(b, s, n);
}

void
wire_put_endpoint(struct wbuf *b, const struct wire_endpoint *ep)
{
	if (!wire_endpoint_valid(ep)) {
		if (b->err == 0)
			b->err = WIRE_EVALUE;
		return;
	}
	wire_put_u8(b, ep->family);
	switch (ep->family) {
	case WIRE_AF_INET:
		wire_put_bytes(b, ep->addr, 4);
		wire_put_u16(b, ep->port);
		break;
	case WIRE_AF_INET6:
		wire_put_bytes(b, ep->addr, 16);
		wire_put_u16(b, ep->port);
		break;
	default:
		wire_put_str(b, ep->path, strlen(ep->path), SIPC_UNIX_PATH_MAX);
		break;
	}
}

void
wire_put_record(struct wbuf *b, const struct wire_record *r)
{
	wire_put_u64(b, r->id);
	wire_put_u64(b, r->instance);
	wire_put_endpoint(b, &r->ep);
	wire_put_str(b, r->host.ptr, r->host.len, SIPC_HOST_MAX);
	wire_put_u32(b, r->pid);
	wire_put_u64(b, r->registered_ms);
}

size_t
wire_frame_begin(struct wbuf *b, uint8_t type, uint16_t flags, uint32_t reqid)
{
	struct wire_header h = { SIPC_PROTO_VERSION_MAX, type, flags, reqid, 0 };
	size_t start = b->len;
	uint8_t *p = wbuf_room(b, SIPC_HEADER_SIZE);

	if (p)
		wire_header_encode(p, &h);
	return start;
}

int
wire_frame_end(struct wbuf *b, size_t start)
{
	size_t len;
	int err;

	if (b->err == 0 && b->len - start - SIPC_HEADER_SIZE > UINT32_MAX)
		b->err = WIRE_ENOSPACE;
	if ((err = b->err) != 0) {
		/* Drop the partial frame; the buffer stays usable. */
		b->len = start < b->len ? start : b->len;
		b->err = 0;
		return err;
	}
	len = b->len - start - SIPC_HEADER_SIZE;
	wire_be32(b->data + start + 12, (uint32_t)len);
	return 0;
}

/* ---- Frame encoders ------------------------------------------------------ */

static void
put_name(struct wbuf *b, struct wire_str s, size_t max)
{
	if (s.len && !wire_name_valid((const uint8_t *)s.ptr, s.len)) {
		if (b->err == 0)
			b->err = WIRE_EVALUE;
		return;
	}
	wire_put_str(b, s.ptr, s.len, max);
}

static void
put_handle(struct wbuf *b, const char *h, size_t n)
{
	if (!wire_handle_valid(h, n)) {
		if (b->err == 0)
			b->err = WIRE_EVALUE;
		return;
	}
	wire_put_str(b, h, n, SIPC_HANDLE_MAX);
}

int
wire_enc_hello(struct wbuf *b, uint32_t reqid, const struct wire_hello *m)
{
	size_t s = wire_frame_begin(b, WIRE_HELLO, 0, reqid);

	wire_put_u8(b, m->min_version);
	wire_put_u8(b, m->max_version);
	wire_put_u32(b, m->features);
	wire_put_u32(b, m->heartbeat_ms);
	put_name(b, m->software, SIPC_SOFTWARE_MAX);
	put_name(b, m->host, SIPC_HOST_MAX);
	wire_put_u32(b, m->pid);
	return wire_frame_end(b, s);
}

int
wire_enc_ok_hello(struct wbuf *b, uint32_t reqid, const struct wire_hello_ok *m)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, WIRE_HELLO);
	wire_put_u8(b, m->version);
	wire_put_u32(b, m->features);
	wire_put_u32(b, m->heartbeat_ms);
	wire_put_u64(b, m->session_id);
	wire_put_u32(b, m->max_frame);
	put_name(b, m->software, SIPC_SOFTWARE_MAX);
	return wire_frame_end(b, s);
}

int
wire_enc_register(struct wbuf *b, uint32_t reqid, const struct wire_register *m)
{
	size_t s = wire_frame_begin(b, WIRE_REGISTER, 0, reqid);

	put_handle(b, m->handle.ptr, m->handle.len);
	wire_put_u64(b, m->instance);
	wire_put_endpoint(b, &m->ep);
	return wire_frame_end(b, s);
}

int
wire_enc_ok_register(struct wbuf *b, uint32_t reqid, uint64_t id)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, WIRE_REGISTER);
	wire_put_u64(b, id);
	return wire_frame_end(b, s);
}

int
wire_enc_u64(struct wbuf *b, uint8_t type, uint32_t reqid, uint64_t v)
{
	size_t s = wire_frame_begin(b, type, 0, reqid);

	wire_put_u64(b, v);
	return wire_frame_end(b, s);
}

int
wire_enc_handle(struct wbuf *b, uint8_t type, uint32_t reqid,
    const char *handle, size_t len)
{
	size_t s = wire_frame_begin(b, type, 0, reqid);

	put_handle(b, handle, len);
	return wire_frame_end(b, s);
}

int
wire_enc_list(struct wbuf *b, uint32_t reqid, const struct wire_list *m)
{
	size_t s = wire_frame_begin(b, WIRE_LIST, 0, reqid);

	put_name(b, m->after, SIPC_HANDLE_MAX);
	wire_put_u32(b, m->limit);
	return wire_frame_end(b, s);
}

int
wire_enc_empty(struct wbuf *b, uint8_t type, uint32_t reqid)
{
	return wire_frame_end(b, wire_frame_begin(b, type, 0, reqid));
}

int
wire_enc_ok_empty(struct wbuf *b, uint32_t reqid, uint8_t type)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, type);
	return wire_frame_end(b, s);
}

int
wire_enc_join(struct wbuf *b, const struct wire_join *m)
{
	size_t s = wire_frame_begin(b, WIRE_JOIN, 0, 0);

	put_handle(b, m->handle.ptr, m->handle.len);
	wire_put_record(b, &m->rec);
	return wire_frame_end(b, s);
}

int
wire_enc_leave(struct wbuf *b, const struct wire_leave *m)
{
	size_t s = wire_frame_begin(b, WIRE_LEAVE, 0, 0);

	put_handle(b, m->handle.ptr, m->handle.len);
	wire_put_u64(b, m->id);
	wire_put_u8(b, m->reason);
	return wire_frame_end(b, s);
}

int
wire_enc_error(struct wbuf *b, uint32_t reqid, uint16_t code, const char *text)
{
	size_t s = wire_frame_begin(b, WIRE_ERROR, 0, reqid);
	size_t n = strlen(text);

	/* Cut long texts at a character boundary rather than fail. */
	if (n > SIPC_ERROR_TEXT_MAX) {
		n = SIPC_ERROR_TEXT_MAX;
		while (n > 0 && ((uint8_t)text[n] & 0xc0) == 0x80)
			n--;
	}
	wire_put_u16(b, code);
	wire_put_str(b, text, n, SIPC_ERROR_TEXT_MAX);
	return wire_frame_end(b, s);
}

int
wire_enc_dhello(struct wbuf *b, uint32_t reqid, const struct wire_dhello *m)
{
	size_t s = wire_frame_begin(b, WIRE_DHELLO, 0, reqid);

	wire_put_u8(b, m->min_version);
	wire_put_u8(b, m->max_version);
	wire_put_u32(b, m->features);
	wire_put_u64(b, m->sender_id);
	wire_put_u64(b, m->instance);
	wire_put_u64(b, m->first_seq);
	wire_put_u32(b, m->heartbeat_ms);
	wire_put_u32(b, m->ack_bytes);
	put_handle(b, m->handle.ptr, m->handle.len);
	return wire_frame_end(b, s);
}

int
wire_enc_ok_dhello(struct wbuf *b, uint32_t reqid,
    const struct wire_dhello_ok *m)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, WIRE_DHELLO);
	wire_put_u8(b, m->version);
	wire_put_u32(b, m->features);
	wire_put_u64(b, m->instance);
	wire_put_u64(b, m->last_seq);
	wire_put_u32(b, m->max_message);
	return wire_frame_end(b, s);
}

int
wire_enc_shm_ring(struct wbuf *b, const struct wire_shm_ring *m)
{
	size_t s = wire_frame_begin(b, WIRE_SHM_RING, 0, 0);

	wire_put_u64(b, m->gen);
	wire_put_u64(b, m->size);
	wire_put_u64(b, m->start);
	return wire_frame_end(b, s);
}

size_t
wire_enc_ok_seq_begin(struct wbuf *b, uint32_t reqid, uint8_t type)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, type);
	wire_put_u32(b, 0);	/* count, patched by wire_enc_ok_seq_end() */
	return s;
}

int
wire_enc_ok_seq_end(struct wbuf *b, size_t start, uint32_t count)
{
	if (b->err == 0)
		wire_be32(b->data + start + SIPC_HEADER_SIZE + 1, count);
	return wire_frame_end(b, start);
}

size_t
wire_enc_ok_list_begin(struct wbuf *b, uint32_t reqid)
{
	size_t s = wire_frame_begin(b, WIRE_OK, 0, reqid);

	wire_put_u8(b, WIRE_LIST);
	wire_put_u8(b, 0);	/* more */
	wire_put_u32(b, 0);	/* count */
	return s;
}

int
wire_enc_ok_list_end(struct wbuf *b, size_t start, uint32_t count, int more)
{
	if (b->err == 0) {
		b->data[start + SIPC_HEADER_SIZE + 1] = more ? 1 : 0;
		wire_be32(b->data + start + SIPC_HEADER_SIZE + 2, count);
	}
	return wire_frame_end(b, start);
}

void
wire_put_list_entry(struct wbuf *b, const char *handle, size_t len,
    uint32_t receivers)
{
	put_handle(b, handle, len);
	wire_put_u32(b, receivers);
}

void
wire_put_stat(struct wbuf *b, const char *name, uint64_t value)
{
	wire_put_str(b, name, strlen(name), SIPC_STAT_NAME_MAX);
	wire_put_u64(b, value);
}

/* ---- Helpers ------------------------------------------------------------- */

int
wire_utf8_valid(const void *s, size_t n)
{
	const uint8_t *p = s, *end = p + n;
	uint32_t cp, min;
	size_t need, i;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			need = 1;
			cp = *p & 0x1f;
			min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			need = 2;
			cp = *p & 0x0f;
			min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			need = 3;
			cp = *p & 0x07;
			min = 0x10000;
		} else
			return 0;
		if ((size_t)(end - p) <= need)
			return 0;
		for (i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += need + 1;
	}
	return 1;
}

int
wire_handle_valid(const void *s, size_t n)
{
	return n >= 1 && n <= SIPC_HANDLE_MAX && wire_name_valid(s, n);
}

int
wire_endpoint_valid(const struct wire_endpoint *ep)
{
	size_t n;

	switch (ep->family) {
	case WIRE_AF_INET:
	case WIRE_AF_INET6:
		return ep->port != 0;
	case WIRE_AF_UNIX:
		/* The path is a str on the wire: UTF-8 (PROTOCOL.md 1). */
		n = strnlen(ep->path, sizeof(ep->path));
		return n >= 1 && n <= SIPC_UNIX_PATH_MAX && ep->path[0] == '/' &&
		    wire_utf8_valid(ep->path, n);
	default:
		return 0;
	}
}

const char *
wire_type_name(uint8_t type)
{
	switch (type) {
	case WIRE_HELLO:	return "HELLO";
	case WIRE_OK:		return "OK";
	case WIRE_ERROR:	return "ERROR";
	case WIRE_PING:		return "PING";
	case WIRE_PONG:		return "PONG";
	case WIRE_REGISTER:	return "REGISTER";
	case WIRE_UNREGISTER:	return "UNREGISTER";
	case WIRE_LOOKUP:	return "LOOKUP";
	case WIRE_WATCH:	return "WATCH";
	case WIRE_UNWATCH:	return "UNWATCH";
	case WIRE_LIST:		return "LIST";
	case WIRE_STATS:	return "STATS";
	case WIRE_JOIN:		return "JOIN";
	case WIRE_LEAVE:	return "LEAVE";
	case WIRE_DHELLO:	return "DHELLO";
	case WIRE_DATA:		return "DATA";
	case WIRE_ACK:		return "ACK";
	case WIRE_SHM_RING:	return "SHM_RING";
	case WIRE_SHM_CURSOR:	return "SHM_CURSOR";
	case WIRE_REPLY:	return "REPLY";
	default:		return "?";
	}
}

const char *
wire_errcode_name(uint16_t code)
{
	static const char *const names[] = {
		"?", "BAD_FRAME", "VERSION", "BAD_MESSAGE", "UNKNOWN_TYPE",
		"UNEXPECTED", "HELLO_REQUIRED", "BAD_HANDLE", "BAD_ENDPOINT",
		"NOT_FOUND", "NOT_OWNER", "LIMIT", "EXISTS", "TOO_LARGE",
		"TIMEOUT", "SHUTDOWN", "BUSY", "INTERNAL", "AUTH",
		"WRONG_RECEIVER", "SLOW", "COMPRESSION", "NO_REPLY",
		"REQUEST_FAILED",
		"UNAVAILABLE"
	};

	return code <= WIRE_ERR_LAST ? names[code] : "?";
}

const char *
wire_strerror(int err)
{
	switch (err) {
	case 0:			return "success";
	case WIRE_ETRUNC:	return "payload ends inside a field";
	case WIRE_ETRAIL:	return "bytes left after the last field";
	case WIRE_EMAGIC:	return "bad magic";
	case WIRE_ERESERVED:	return "reserved header bits set";
	case WIRE_ETOOBIG:	return "frame too large";
	case WIRE_EUTF8:	return "string is not valid UTF-8";
	case WIRE_EHANDLE:	return "invalid handle";
	case WIRE_EENDPOINT:	return "invalid endpoint";
	case WIRE_EVALUE:	return "field out of range";
	case WIRE_ENOSPACE:	return "frame exceeds buffer limit";
	case WIRE_ETYPE:	return "OK answers another request";
	case WIRE_ENOMEM:	return "out of memory";
	default:		return "unknown codec error";
	}
}
