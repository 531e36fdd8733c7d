/*
 * wire_dec.c - the decoders of the sipc wire codec (see wire.h and
 * PROTOCOL.md): every payload, through struct rd, a bounded cursor whose
 * first failure is sticky, so a decoder reads fields in order and checks
 * once at the end (rd_end) that nothing failed and nothing is left over;
 * and the iterators over the sequences of records, list entries and
 * counters that OK answers carry.  Headers, encoders and the checks of
 * names are wire.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "wire_int.h"

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
	else if (kind == STR_NAME && !wire_name_valid(p, n))
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

int
wire_dec_shm_ring(const uint8_t *p, size_t len, struct wire_shm_ring *m)
{
	struct rd r;

	rd_init(&r, p, len);
	m->gen = rd_u64(&r);
	m->size = rd_u64(&r);
	m->start = rd_u64(&r);
	if (r.err == 0 && (m->size == 0 || (m->size & (m->size - 1)) != 0 ||
	    m->start % 16 != 0))
		rd_fail(&r, WIRE_EVALUE);
	return rd_end(&r);
}

/* ---- Iterators ----------------------------------------------------------- */

/* Starts reading the next entry of s: 0 when there is none. */
static int
seq_begin(const struct wire_seq *s, struct rd *r)
{
	if (s->count == 0)
		return 0;
	rd_init(r, s->p, s->len);
	return 1;
}

/* Moves s past the entry r read: 1, or 0 when it was malformed. */
static int
seq_commit(struct wire_seq *s, const struct rd *r)
{
	if (r->err)
		return 0;
	s->count--;
	s->p = r->p;
	s->len = r->left;
	return 1;
}

int
wire_next_record(struct wire_seq *s, struct wire_record *out)
{
	struct rd r;

	if (!seq_begin(s, &r))
		return 0;
	rd_record(&r, out);
	return seq_commit(s, &r);
}

int
wire_next_list_entry(struct wire_seq *s, struct wire_list_entry *out)
{
	struct rd r;

	if (!seq_begin(s, &r))
		return 0;
	rd_str(&r, &out->handle, SIPC_HANDLE_MAX, STR_HANDLE);
	out->receivers = rd_u32(&r);
	return seq_commit(s, &r);
}

int
wire_next_stat(struct wire_seq *s, struct wire_stat *out)
{
	struct rd r;

	if (!seq_begin(s, &r))
		return 0;
	rd_str(&r, &out->name, SIPC_STAT_NAME_MAX, STR_NAME);
	out->value = rd_u64(&r);
	return seq_commit(s, &r);
}
