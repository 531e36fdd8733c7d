/*
 * msg.c - the message oracle of fuzz_frame and fuzz_broker (see fuzz.h):
 * decode a payload, check what wire.h promises about what it accepted, and
 * encode the result again, which must give back the same bytes.
 *
 * Not a target by itself, and no libFuzzer in it: it is linked into the
 * targets and into the replay test alike.
 */
#include <string.h>

#include "../../proto/addr.h"
#include "fuzz.h"

/* Big enough for any payload a target gets (-max_len is far smaller). */
#define REENCODE_MAX	(64u * 1024 * 1024)

int
fz_dec_for_type(uint8_t type)
{
	switch (type) {
	case WIRE_HELLO:	return FZ_DEC_HELLO;
	case WIRE_OK:		return FZ_DEC_OK;
	case WIRE_ERROR:	return FZ_DEC_ERROR;
	case WIRE_PING:
	case WIRE_PONG:
	case WIRE_UNREGISTER:
	case WIRE_ACK:		return FZ_DEC_U64;
	case WIRE_REGISTER:	return FZ_DEC_REGISTER;
	case WIRE_LOOKUP:
	case WIRE_WATCH:
	case WIRE_UNWATCH:	return FZ_DEC_HANDLE;
	case WIRE_LIST:		return FZ_DEC_LIST;
	case WIRE_STATS:	return FZ_DEC_EMPTY;
	case WIRE_JOIN:		return FZ_DEC_JOIN;
	case WIRE_LEAVE:	return FZ_DEC_LEAVE;
	case WIRE_DHELLO:	return FZ_DEC_DHELLO;
	case WIRE_DATA:		return FZ_DEC_DATA;
	default:		return -1;	/* REPLY: no decoder, all body */
	}
}

/* ---- What an accepted payload must look like ----------------------------- */

/* A string the decoder returned: inside the payload, UTF-8, no NUL. */
static void
check_str(struct wire_str s, const uint8_t *p, size_t len, size_t max)
{
	FZ_ASSERT(s.len <= max);
	if (s.len == 0)
		return;
	FZ_ASSERT((const uint8_t *)s.ptr >= p);
	FZ_ASSERT((const uint8_t *)s.ptr + s.len <= p + len);
	FZ_ASSERT(wire_utf8_valid(s.ptr, s.len));
	FZ_ASSERT(memchr(s.ptr, 0, s.len) == NULL);
}

/* A name: a string without control characters (possibly empty). */
static void
check_name(struct wire_str s, const uint8_t *p, size_t len, size_t max)
{
	check_str(s, p, len, max);
	FZ_ASSERT(s.len == 0 || wire_handle_valid(s.ptr, s.len));
}

static void
check_handle(struct wire_str s, const uint8_t *p, size_t len)
{
	check_str(s, p, len, SIPC_HANDLE_MAX);
	FZ_ASSERT(wire_handle_valid(s.ptr, s.len));
}

static void
check_endpoint(const struct wire_endpoint *ep)
{
	char small[8], big[256];
	size_t n;

	FZ_ASSERT(wire_endpoint_valid(ep));
	switch (ep->family) {
	case WIRE_AF_INET:
	case WIRE_AF_INET6:
		FZ_ASSERT(ep->port != 0);
		break;
	case WIRE_AF_UNIX:
		/* PROTOCOL.md 3.2: path is a str (UTF-8), 1-107 bytes,
		 * starting with '/'. */
		n = strnlen(ep->path, sizeof(ep->path));
		FZ_ASSERT(n >= 1 && n <= SIPC_UNIX_PATH_MAX);
		FZ_ASSERT(ep->path[0] == '/');
		FZ_ASSERT(wire_utf8_valid(ep->path, n));
		break;
	default:
		FZ_ASSERT(!"endpoint of an unknown family accepted");
	}
	/* The formatters take whatever a decoder accepts, in any buffer. */
	addr_format_endpoint(ep, small, sizeof(small));
	addr_format_endpoint(ep, big, sizeof(big));
	FZ_ASSERT(strlen(big) < sizeof(big));
	addr_format_host(ep, small, sizeof(small));
	addr_format_host(ep, big, sizeof(big));
}

static void
check_record(const struct wire_record *r, const uint8_t *p, size_t len)
{
	FZ_ASSERT(r->id != 0 && r->instance != 0);
	check_endpoint(&r->ep);
	check_name(r->host, p, len, SIPC_HOST_MAX);
}

/* The payload of the one frame in w must be p[0..len). */
static void
same_payload(const struct wbuf *w, int rc, const uint8_t *p, size_t len)
{
	if (rc != 0)
		fprintf(stderr, "re-encoding failed: %s\n", wire_strerror(rc));
	FZ_ASSERT(rc == 0);
	FZ_ASSERT(w->len == SIPC_HEADER_SIZE + len);
	FZ_ASSERT(len == 0 ||
	    memcmp(w->data + SIPC_HEADER_SIZE, p, len) == 0);
}

/* A NUL-terminated copy of a decoded string (which holds no NUL). */
static const char *
cstr(struct wire_str s, char *buf, size_t size)
{
	FZ_ASSERT(s.len < size);
	if (s.len)
		memcpy(buf, s.ptr, s.len);
	buf[s.len] = '\0';
	return buf;
}

/* ---- One decoder each ------------------------------------------------------ */

static int
msg_hello(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_hello m;
	int rc;

	if ((rc = wire_dec_hello(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.min_version >= 1 && m.min_version <= m.max_version);
	check_name(m.software, p, len, SIPC_SOFTWARE_MAX);
	check_name(m.host, p, len, SIPC_HOST_MAX);
	same_payload(w, wire_enc_hello(w, 1, &m), p, len);
	return 0;
}

static int
msg_register(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_register m;
	int rc;

	if ((rc = wire_dec_register(p, len, &m)) != 0)
		return rc;
	check_handle(m.handle, p, len);
	FZ_ASSERT(m.instance != 0);
	check_endpoint(&m.ep);
	same_payload(w, wire_enc_register(w, 1, &m), p, len);
	return 0;
}

static int
msg_u64(struct wbuf *w, const uint8_t *p, size_t len)
{
	uint64_t v;
	int rc;

	if ((rc = wire_dec_u64(p, len, &v)) != 0)
		return rc;
	same_payload(w, wire_enc_u64(w, WIRE_PING, 1, v), p, len);
	return 0;
}

static int
msg_handle(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_str h;
	int rc;

	if ((rc = wire_dec_handle(p, len, &h)) != 0)
		return rc;
	check_handle(h, p, len);
	same_payload(w, wire_enc_handle(w, WIRE_LOOKUP, 1, h.ptr, h.len), p,
	    len);
	return 0;
}

static int
msg_list(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_list m;
	int rc;

	if ((rc = wire_dec_list(p, len, &m)) != 0)
		return rc;
	check_name(m.after, p, len, SIPC_HANDLE_MAX);
	same_payload(w, wire_enc_list(w, 1, &m), p, len);
	return 0;
}

static int
msg_empty(struct wbuf *w, const uint8_t *p, size_t len)
{
	int rc;

	if ((rc = wire_dec_empty(p, len)) != 0)
		return rc;
	same_payload(w, wire_enc_empty(w, WIRE_STATS, 1), p, len);
	return 0;
}

static int
msg_join(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_join m;
	int rc;

	if ((rc = wire_dec_join(p, len, &m)) != 0)
		return rc;
	check_handle(m.handle, p, len);
	check_record(&m.rec, p, len);
	same_payload(w, wire_enc_join(w, &m), p, len);
	return 0;
}

static int
msg_leave(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_leave m;
	int rc;

	if ((rc = wire_dec_leave(p, len, &m)) != 0)
		return rc;
	check_handle(m.handle, p, len);
	FZ_ASSERT(m.id != 0);
	FZ_ASSERT(m.reason >= WIRE_LEAVE_UNREGISTERED &&
	    m.reason <= WIRE_LEAVE_EXPIRED);
	same_payload(w, wire_enc_leave(w, &m), p, len);
	return 0;
}

static int
msg_error(struct wbuf *w, const uint8_t *p, size_t len)
{
	char text[SIPC_ERROR_TEXT_MAX + 1];
	struct wire_error m;
	int rc;

	if ((rc = wire_dec_error(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.code != 0);
	check_str(m.text, p, len, SIPC_ERROR_TEXT_MAX);
	(void)wire_errcode_name(m.code);
	same_payload(w, wire_enc_error(w, 1, m.code,
	    cstr(m.text, text, sizeof(text))), p, len);
	return 0;
}

static int
msg_dhello(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_dhello m;
	int rc;

	if ((rc = wire_dec_dhello(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.min_version >= 1 && m.min_version <= m.max_version);
	FZ_ASSERT(m.sender_id != 0 && m.first_seq != 0);
	check_handle(m.handle, p, len);
	same_payload(w, wire_enc_dhello(w, 1, &m), p, len);
	return 0;
}

static int
msg_data(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_data d;
	size_t s;
	int rc;

	if ((rc = wire_dec_data(p, len, &d)) != 0)
		return rc;
	FZ_ASSERT(d.seq != 0);
	FZ_ASSERT(d.body == p + SIPC_DATA_PREFIX);
	FZ_ASSERT(d.len == len - SIPC_DATA_PREFIX);
	s = wire_frame_begin(w, WIRE_DATA, 0, 0);
	wire_put_u64(w, d.seq);
	wire_put_bytes(w, d.body, d.len);
	same_payload(w, wire_frame_end(w, s), p, len);
	return 0;
}

static int
msg_ok_hello(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_hello_ok m;
	int rc;

	if ((rc = wire_dec_ok_hello(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.version != 0 && m.heartbeat_ms != 0);
	FZ_ASSERT(m.max_frame >= SIPC_HELLO_FRAME_MAX);
	check_name(m.software, p, len, SIPC_SOFTWARE_MAX);
	same_payload(w, wire_enc_ok_hello(w, 1, &m), p, len);
	return 0;
}

static int
msg_ok_empty(struct wbuf *w, const uint8_t *p, size_t len, uint8_t type)
{
	int rc;

	if ((rc = wire_dec_ok_empty(p, len, type)) != 0)
		return rc;
	same_payload(w, wire_enc_ok_empty(w, 1, type), p, len);
	return 0;
}

static int
msg_ok_register(struct wbuf *w, const uint8_t *p, size_t len)
{
	uint64_t id;
	int rc;

	if ((rc = wire_dec_ok_register(p, len, &id)) != 0)
		return rc;
	FZ_ASSERT(id != 0);
	same_payload(w, wire_enc_ok_register(w, 1, id), p, len);
	return 0;
}

static int
msg_ok_records(struct wbuf *w, const uint8_t *p, size_t len, uint8_t type)
{
	struct wire_record rec;
	struct wire_seq seq;
	uint32_t count, n = 0;
	size_t s;
	int rc;

	if ((rc = wire_dec_ok_records(p, len, type, &seq)) != 0)
		return rc;
	count = seq.count;
	s = wire_enc_ok_seq_begin(w, 1, type);
	while (wire_next_record(&seq, &rec)) {
		check_record(&rec, p, len);
		wire_put_record(w, &rec);
		n++;
	}
	/* The iterator yields exactly what the decoder validated. */
	FZ_ASSERT(n == count && seq.count == 0 && seq.len == 0);
	same_payload(w, wire_enc_ok_seq_end(w, s, count), p, len);
	return 0;
}

static int
msg_ok_list(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_list_entry e;
	struct wire_list_ok m;
	uint32_t count, n = 0;
	size_t s;
	int rc;

	if ((rc = wire_dec_ok_list(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.more <= 1);
	count = m.entries.count;
	s = wire_enc_ok_list_begin(w, 1);
	while (wire_next_list_entry(&m.entries, &e)) {
		check_handle(e.handle, p, len);
		wire_put_list_entry(w, e.handle.ptr, e.handle.len, e.receivers);
		n++;
	}
	FZ_ASSERT(n == count && m.entries.count == 0 && m.entries.len == 0);
	same_payload(w, wire_enc_ok_list_end(w, s, count, m.more), p, len);
	return 0;
}

static int
msg_ok_stats(struct wbuf *w, const uint8_t *p, size_t len)
{
	char name[SIPC_STAT_NAME_MAX + 1];
	struct wire_stat st;
	struct wire_seq seq;
	uint32_t count, n = 0;
	size_t s;
	int rc;

	if ((rc = wire_dec_ok_stats(p, len, &seq)) != 0)
		return rc;
	FZ_ASSERT(seq.count <= SIPC_STATS_MAX);
	count = seq.count;
	s = wire_enc_ok_seq_begin(w, 1, WIRE_STATS);
	while (wire_next_stat(&seq, &st)) {
		FZ_ASSERT(st.name.len >= 1);
		check_name(st.name, p, len, SIPC_STAT_NAME_MAX);
		wire_put_stat(w, cstr(st.name, name, sizeof(name)), st.value);
		n++;
	}
	FZ_ASSERT(n == count && seq.count == 0 && seq.len == 0);
	same_payload(w, wire_enc_ok_seq_end(w, s, count), p, len);
	return 0;
}

static int
msg_ok_dhello(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_dhello_ok m;
	int rc;

	if ((rc = wire_dec_ok_dhello(p, len, &m)) != 0)
		return rc;
	FZ_ASSERT(m.version != 0 && m.instance != 0);
	same_payload(w, wire_enc_ok_dhello(w, 1, &m), p, len);
	return 0;
}

/* An OK as a client reads it: the first byte says which decoder. */
static int
msg_ok(struct wbuf *w, const uint8_t *p, size_t len)
{
	struct wire_seq seq;
	uint8_t type;
	int rc;

	if ((rc = wire_dec_ok_type(p, len, &type)) != 0)
		return rc;
	/* Only LOOKUP and WATCH answers carry records. */
	FZ_ASSERT(wire_dec_ok_records(p, len, WIRE_HELLO, &seq) == WIRE_ETYPE);
	switch (type) {
	case WIRE_HELLO:	return msg_ok_hello(w, p, len);
	case WIRE_REGISTER:	return msg_ok_register(w, p, len);
	case WIRE_LOOKUP:
	case WIRE_WATCH:	return msg_ok_records(w, p, len, type);
	case WIRE_LIST:		return msg_ok_list(w, p, len);
	case WIRE_STATS:	return msg_ok_stats(w, p, len);
	case WIRE_DHELLO:	return msg_ok_dhello(w, p, len);
	default:		return msg_ok_empty(w, p, len, type);
	}
}

int
fz_check_msg(int dec, const uint8_t *p, size_t len)
{
	struct wbuf w;
	int rc;

	wbuf_init(&w, REENCODE_MAX);
	switch (dec) {
	case FZ_DEC_HELLO:	rc = msg_hello(&w, p, len); break;
	case FZ_DEC_REGISTER:	rc = msg_register(&w, p, len); break;
	case FZ_DEC_U64:	rc = msg_u64(&w, p, len); break;
	case FZ_DEC_HANDLE:	rc = msg_handle(&w, p, len); break;
	case FZ_DEC_LIST:	rc = msg_list(&w, p, len); break;
	case FZ_DEC_EMPTY:	rc = msg_empty(&w, p, len); break;
	case FZ_DEC_JOIN:	rc = msg_join(&w, p, len); break;
	case FZ_DEC_LEAVE:	rc = msg_leave(&w, p, len); break;
	case FZ_DEC_ERROR:	rc = msg_error(&w, p, len); break;
	case FZ_DEC_DHELLO:	rc = msg_dhello(&w, p, len); break;
	case FZ_DEC_DATA:	rc = msg_data(&w, p, len); break;
	case FZ_DEC_OK:		rc = msg_ok(&w, p, len); break;
	case FZ_DEC_OK_HELLO:	rc = msg_ok_hello(&w, p, len); break;
	case FZ_DEC_OK_UNREGISTER:
		rc = msg_ok_empty(&w, p, len, WIRE_UNREGISTER);
		break;
	case FZ_DEC_OK_UNWATCH:
		rc = msg_ok_empty(&w, p, len, WIRE_UNWATCH);
		break;
	case FZ_DEC_OK_REGISTER: rc = msg_ok_register(&w, p, len); break;
	case FZ_DEC_OK_LOOKUP:	rc = msg_ok_records(&w, p, len, WIRE_LOOKUP);
		break;
	case FZ_DEC_OK_WATCH:	rc = msg_ok_records(&w, p, len, WIRE_WATCH);
		break;
	case FZ_DEC_OK_LIST:	rc = msg_ok_list(&w, p, len); break;
	case FZ_DEC_OK_STATS:	rc = msg_ok_stats(&w, p, len); break;
	case FZ_DEC_OK_DHELLO:	rc = msg_ok_dhello(&w, p, len); break;
	default:		rc = WIRE_ETYPE; break;
	}
	/* Every failure is one of the documented codes, with a text. */
	FZ_ASSERT(rc <= 0 && rc >= WIRE_ENOMEM);
	FZ_ASSERT(strcmp(wire_strerror(rc), "unknown codec error") != 0);
	wbuf_free(&w);
	return rc;
}
