/*
 * wire.c - the sipc wire codec (see wire.h and PROTOCOL.md).
 *
 * Decoding goes through struct rd, a bounded cursor whose first failure is
 * sticky, so a decoder reads fields in order and checks once at the end
 * (rd_end) that nothing failed and nothing is left over.  Encoding appends to
 * a struct wbuf that never grows past its maximum.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* ---- Decoding cursor ----------------------------------------------------- */

struct rd {
	const uint8_t	*p;
	size_t		 left;
	int		 err;
};

/* How a string field is checked. */
enum str_kind {
	STR_TEXT,	/* UTF-8 without NUL */
	STR_NAME,	/* UTF-8 without control characters */
	STR_HANDLE	/* a handle: STR_NAME, 1..SIPC_HANDLE_MAX bytes */
};

static void
rd_init(struct rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->err = 0;
}

static void
rd_fail(struct rd *r, int err)
{
	if (r->err == 0)
		r->err = err;
}

static const uint8_t *
rd_take(struct rd *r, size_t n)
{
	const uint8_t *p;

	if (r->err)
		return NULL;
	if (r->left < n) {
		rd_fail(r, WIRE_ETRUNC);
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t
rd_u8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);

	return p ? p[0] : 0;
}

static uint16_t
rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);

	return p ? wire_ld16(p) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);

	return p ? wire_ld32(p) : 0;
}

static uint64_t
rd_u64(struct rd *r)
{
	const uint8_t *p = rd_take(r, 8);

	return p ? wire_ld64(p) : 0;
}

static int
name_valid(const uint8_t *p, size_t n)
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

static void
rd_str(struct rd *r, struct wire_str *s, size_t max, enum str_kind kind)
{
	uint16_t n = rd_u16(r);
	const uint8_t *p = rd_take(r, n);

	s->ptr = NULL;
	s->len = 0;
	if (r->err)
		return;
	s->ptr = (const char *)p;
	s->len = n;
	if (kind == STR_HANDLE) {
		if (!wire_handle_valid(p, n))
			rd_fail(r, WIRE_EHANDLE);
		return;
	}
	if (n > max)
		rd_fail(r, WIRE_EVALUE);
	else if (!wire_utf8_valid(p, n))
		rd_fail(r, WIRE_EUTF8);
	else if (kind == STR_NAME && !name_valid(p, n))
		rd_fail(r, WIRE_EVALUE);
	else if (kind == STR_TEXT && memchr(p, 0, n) != NULL)
		rd_fail(r, WIRE_EVALUE);
}

static void
rd_endpoint(struct rd *r, struct wire_endpoint *ep)
{
	const uint8_t *p;
	uint16_t n;

	memset(ep, 0, sizeof(*ep));
	ep->family = rd_u8(r);
	switch (ep->family) {
	case WIRE_AF_INET:
	case WIRE_AF_INET6:
		n = ep->family == WIRE_AF_INET ? 4 : 16;
		p = rd_take(r, n);
		if (r->err == 0)
			memcpy(ep->addr, p, n);
		ep->port = rd_u16(r);
		break;
	case WIRE_AF_UNIX:
		n = rd_u16(r);
		p = rd_take(r, n);
		if (r->err)
			return;
		/* A NUL would cut the path short in the NUL-terminated copy:
		 * "/a\0b" must not become "/a". */
		if (n == 0 || n > SIPC_UNIX_PATH_MAX ||
		    memchr(p, 0, n) != NULL) {
			rd_fail(r, WIRE_EENDPOINT);
			return;
		}
		memcpy(ep->path, p, n);
		ep->path[n] = '\0';
		break;
	default:
		if (r->err == 0)
			rd_fail(r, WIRE_EENDPOINT);
		return;
	}
	if (r->err == 0 && !wire_endpoint_valid(ep))
		rd_fail(r, WIRE_EENDPOINT);
}

static void
rd_record(struct rd *r, struct wire_record *rec)
{
	rec->id = rd_u64(r);
	rec->instance = rd_u64(r);
	rd_endpoint(r, &rec->ep);
	rd_str(r, &rec->host, SIPC_HOST_MAX, STR_NAME);
	rec->pid = rd_u32(r);
	rec->registered_ms = rd_u64(r);
	if (r->err == 0 && (rec->id == 0 || rec->instance == 0))
		rd_fail(r, WIRE_EVALUE);
}

static int
rd_end(struct rd *r)
{
	if (r->err)
		return r->err;
	if (r->left)
		return WIRE_ETRAIL;
	return 0;
}

/* Reads the answered-type byte of an OK and checks it. */
static void
rd_ok_type(struct rd *r, uint8_t want)
{
	uint8_t t = rd_u8(r);

	if (r->err == 0 && t != want)
		rd_fail(r, WIRE_ETYPE);
}

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

/* ---- Decoders ------------------------------------------------------------ */

int
wire_dec_hello(const uint8_t *p, size_t len, struct wire_hello *m)
{
	struct rd r;

	rd_init(&r, p, len);
	m->min_version = rd_u8(&r);
	m->max_version = rd_u8(&r);
	m->features = rd_u32(&r);
	m->heartbeat_ms = rd_u32(&r);
	rd_str(&r, &m->software, SIPC_SOFTWARE_MAX, STR_NAME);
	rd_str(&r, &m->host, SIPC_HOST_MAX, STR_NAME);
	m->pid = rd_u32(&r);
	if (r.err == 0 && (m->min_version == 0 ||
	    m->min_version > m->max_version))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_register(const uint8_t *p, size_t len, struct wire_register *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_str(&r, &m->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	m->instance = rd_u64(&r);
	rd_endpoint(&r, &m->ep);
	if (r.err == 0 && m->instance == 0)
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_u64(const uint8_t *p, size_t len, uint64_t *out)
{
	struct rd r;

	rd_init(&r, p, len);
	*out = rd_u64(&r);
	return rd_end(&r);
}

int
wire_dec_handle(const uint8_t *p, size_t len, struct wire_str *out)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_str(&r, out, SIPC_HANDLE_MAX, STR_HANDLE);
	return rd_end(&r);
}

int
wire_dec_list(const uint8_t *p, size_t len, struct wire_list *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_str(&r, &m->after, SIPC_HANDLE_MAX, STR_NAME);
	m->limit = rd_u32(&r);
	return rd_end(&r);
}

int
wire_dec_empty(const uint8_t *p, size_t len)
{
	(void)p;
	return len == 0 ? 0 : WIRE_ETRAIL;
}

int
wire_dec_join(const uint8_t *p, size_t len, struct wire_join *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_str(&r, &m->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	rd_record(&r, &m->rec);
	return rd_end(&r);
}

int
wire_dec_leave(const uint8_t *p, size_t len, struct wire_leave *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_str(&r, &m->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	m->id = rd_u64(&r);
	m->reason = rd_u8(&r);
	if (r.err == 0 && (m->id == 0 || m->reason < WIRE_LEAVE_UNREGISTERED ||
	    m->reason > WIRE_LEAVE_EXPIRED))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_error(const uint8_t *p, size_t len, struct wire_error *m)
{
	struct rd r;

	rd_init(&r, p, len);
	m->code = rd_u16(&r);
	rd_str(&r, &m->text, SIPC_ERROR_TEXT_MAX, STR_TEXT);
	if (r.err == 0 && m->code == 0)
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_dhello(const uint8_t *p, size_t len, struct wire_dhello *m)
{
	struct rd r;

	rd_init(&r, p, len);
	m->min_version = rd_u8(&r);
	m->max_version = rd_u8(&r);
	m->features = rd_u32(&r);
	m->sender_id = rd_u64(&r);
	m->instance = rd_u64(&r);
	m->first_seq = rd_u64(&r);
	m->heartbeat_ms = rd_u32(&r);
	m->ack_bytes = rd_u32(&r);
	rd_str(&r, &m->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	if (r.err == 0 && (m->min_version == 0 ||
	    m->min_version > m->max_version || m->sender_id == 0 ||
	    m->first_seq == 0))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_data(const uint8_t *p, size_t len, struct wire_data *m)
{
	if (len < SIPC_DATA_PREFIX)
		return WIRE_ETRUNC;
	m->seq = wire_ld64(p);
	m->body = p + SIPC_DATA_PREFIX;
	m->len = len - SIPC_DATA_PREFIX;
	return m->seq == 0 ? WIRE_EVALUE : 0;
}

int
wire_dec_ok_type(const uint8_t *p, size_t len, uint8_t *type)
{
	if (len < 1)
		return WIRE_ETRUNC;
	*type = p[0];
	return 0;
}

int
wire_dec_ok_hello(const uint8_t *p, size_t len, struct wire_hello_ok *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_ok_type(&r, WIRE_HELLO);
	m->version = rd_u8(&r);
	m->features = rd_u32(&r);
	m->heartbeat_ms = rd_u32(&r);
	m->session_id = rd_u64(&r);
	m->max_frame = rd_u32(&r);
	rd_str(&r, &m->software, SIPC_SOFTWARE_MAX, STR_NAME);
	if (r.err == 0 && (m->version == 0 || m->heartbeat_ms == 0 ||
	    m->max_frame < SIPC_HELLO_FRAME_MAX))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

int
wire_dec_ok_empty(const uint8_t *p, size_t len, uint8_t type)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_ok_type(&r, type);
	return rd_end(&r);
}

int
wire_dec_ok_register(const uint8_t *p, size_t len, uint64_t *id)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_ok_type(&r, WIRE_REGISTER);
	*id = rd_u64(&r);
	if (r.err == 0 && *id == 0)
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

/* Smallest encoded record: id, instance, a Unix endpoint with a one-byte
 * path (family, length, "/": smaller than any IPv4 one), an empty host
 * name, pid, time. */
#define RECORD_MIN	(8 + 8 + (1 + 2 + 1) + 2 + 4 + 8)

int
wire_dec_ok_records(const uint8_t *p, size_t len, uint8_t type,
    struct wire_seq *out)
{
	struct wire_record rec;
	struct rd r;
	uint32_t i;

	if (type != WIRE_LOOKUP && type != WIRE_WATCH)
		return WIRE_ETYPE;
	rd_init(&r, p, len);
	rd_ok_type(&r, type);
	out->count = rd_u32(&r);
	if (r.err == 0 && out->count > r.left / RECORD_MIN)
		rd_fail(&r, WIRE_ETRUNC);
	out->p = r.p;
	out->len = r.left;
	for (i = 0; i < out->count && r.err == 0; i++)
		rd_record(&r, &rec);
	return rd_end(&r);
}

int
wire_dec_ok_list(const uint8_t *p, size_t len, struct wire_list_ok *out)
{
	struct wire_str h;
	struct rd r;
	uint32_t i;

	rd_init(&r, p, len);
	rd_ok_type(&r, WIRE_LIST);
	out->more = rd_u8(&r);
	out->entries.count = rd_u32(&r);
	if (r.err == 0 && out->more > 1)
		rd_fail(&r, WIRE_EVALUE);
	if (r.err == 0 && out->entries.count > r.left / (2 + 1 + 4))
		rd_fail(&r, WIRE_ETRUNC);
	out->entries.p = r.p;
	out->entries.len = r.left;
	for (i = 0; i < out->entries.count && r.err == 0; i++) {
		rd_str(&r, &h, SIPC_HANDLE_MAX, STR_HANDLE);
		(void)rd_u32(&r);
	}
	return rd_end(&r);
}

int
wire_dec_ok_stats(const uint8_t *p, size_t len, struct wire_seq *out)
{
	struct wire_str name;
	struct rd r;
	uint32_t i;

	rd_init(&r, p, len);
	rd_ok_type(&r, WIRE_STATS);
	out->count = rd_u32(&r);
	if (r.err == 0 && out->count > SIPC_STATS_MAX)
		rd_fail(&r, WIRE_EVALUE);
	out->p = r.p;
	out->len = r.left;
	for (i = 0; i < out->count && r.err == 0; i++) {
		rd_str(&r, &name, SIPC_STAT_NAME_MAX, STR_NAME);
		(void)rd_u64(&r);
		if (r.err == 0 && name.len == 0)
			rd_fail(&r, WIRE_EVALUE);
	}
	return rd_end(&r);
}

int
wire_dec_ok_dhello(const uint8_t *p, size_t len, struct wire_dhello_ok *m)
{
	struct rd r;

	rd_init(&r, p, len);
	rd_ok_type(&r, WIRE_DHELLO);
	m->version = rd_u8(&r);
	m->features = rd_u32(&r);
	m->instance = rd_u64(&r);
	m->last_seq = rd_u64(&r);
	m->max_message = rd_u32(&r);
	if (r.err == 0 && (m->version == 0 || m->instance == 0))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

/* ---- Iterators ----------------------------------------------------------- */

int
wire_next_record(struct wire_seq *s, struct wire_record *out)
{
	struct rd r;

	if (s->count == 0)
		return 0;
	rd_init(&r, s->p, s->len);
	rd_record(&r, out);
	if (r.err)
		return 0;
	s->count--;
	s->p = r.p;
	s->len = r.left;
	return 1;
}

int
wire_next_list_entry(struct wire_seq *s, struct wire_list_entry *out)
{
	struct rd r;

	if (s->count == 0)
		return 0;
	rd_init(&r, s->p, s->len);
	rd_str(&r, &out->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	out->receivers = rd_u32(&r);
	if (r.err)
		return 0;
	s->count--;
	s->p = r.p;
	s->len = r.left;
	return 1;
}

int
wire_next_stat(struct wire_seq *s, struct wire_stat *out)
{
	struct rd r;

	if (s->count == 0)
		return 0;
	rd_init(&r, s->p, s->len);
	rd_str(&r, &out->name, SIPC_STAT_NAME_MAX, STR_NAME);
	out->value = rd_u64(&r);
	if (r.err)
		return 0;
	s->count--;
	s->p = r.p;
	s->len = r.left;
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

void
wire_put_u8(struct wbuf *b, uint8_t v)
{
	uint8_t *p = wbuf_room(b, 1);

	if (p)
		p[0] = v;
}

void
wire_put_u16(struct wbuf *b, uint16_t v)
{
	uint8_t *p = wbuf_room(b, 2);

	if (p)
		wire_be16(p, v);
}

void
wire_put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t *p = wbuf_room(b, 4);

	if (p)
		wire_be32(p, v);
}

void
wire_put_u64(struct wbuf *b, uint64_t v)
{
	uint8_t *p = wbuf_room(b, 8);

	if (p)
		wire_be64(p, v);
}

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
	if (s.len && !name_valid((const uint8_t *)s.ptr, s.len)) {
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
	return n >= 1 && n <= SIPC_HANDLE_MAX && name_valid(s, n);
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
		"WRONG_RECEIVER", "SLOW", "COMPRESSION"
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
