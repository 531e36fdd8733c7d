/*
 * fuzz_broker.c - libFuzzer target: every payload decoder of wire.h, broker
 * messages and OK answers, without the frame around them, so that every
 * truncation and every length is reachable in one step.
 *
 * The first input byte selects what runs:
 *
 *   0x00-0x7f  decoder (byte % FZ_DEC_COUNT, enum fz_dec in fuzz.h) on
 *              the rest of the input, through fz_check_msg (msg.c): an
 *              accepted payload must be valid in every field, iterate its
 *              sequences to exactly their count and encode back to itself;
 *   0x80-0xff  round trip (byte % RT_COUNT): the rest of the input chooses
 *              a valid message (valid as PROTOCOL.md describes it), which
 *              is encoded; the encoder must accept it and the decoder must
 *              give it back, field by field.
 *
 * The second half finds what the first cannot: valid messages a decoder
 * refuses.
 */
#include <string.h>

#include "fuzz.h"

enum rt {
	RT_HELLO,
	RT_OK_HELLO,
	RT_REGISTER,
	RT_RECORDS,	/* OK(LOOKUP), OK(WATCH) */
	RT_JOIN,
	RT_LEAVE,
	RT_LIST,
	RT_OK_LIST,
	RT_OK_STATS,
	RT_ERROR,
	RT_DHELLO,
	RT_COUNT
};

#define RT_RECORDS_MAX	8
#define RT_ENTRIES_MAX	8
#define RT_WBUF_MAX	(1024 * 1024)

/* ---- Valid values from fuzzer bytes ---------------------------------------- */

enum gen_kind {
	GEN_TEXT,	/* any UTF-8 but NUL (ERROR text, Unix paths) */
	GEN_NAME	/* no control characters either */
};

static size_t
put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * A valid UTF-8 string of at most max bytes (buf holds max + 1), of code
 * points of every encoded length; NUL-terminated.  Returns its length.
 */
static size_t
gen_str(struct fz_src *s, char *buf, size_t max, enum gen_kind kind)
{
	size_t n = 0, want, k;
	uint32_t cp;
	uint8_t b;
	char tmp[4];

	want = max > 255 ? fz_u16(s) % (max + 1) : fz_u8(s) % (max + 1);
	while (n < want && s->left > 0) {
		b = fz_u8(s);
		switch (b >> 6) {
		case 0:
		case 1:
			cp = b;
			break;
		case 2:
			cp = 0x80 + fz_u16(s) % (0x800 - 0x80);
			break;
		default:
			if (b & 1) {
				cp = 0x800 + fz_u16(s) % (0x10000 - 0x800);
				if (cp >= 0xd800 && cp <= 0xdfff)
					cp -= 0x800;	/* no surrogates */
			} else
				cp = 0x10000 + fz_u32(s) % 0x100000;
			break;
		}
		if (cp == 0)
			cp = ' ';
		if (kind == GEN_NAME && (cp < 0x20 || (cp >= 0x7f &&
		    cp <= 0x9f)))
			cp = 'a' + cp % 26;
		k = put_utf8(tmp, cp);
		if (n + k > want)
			break;
		memcpy(buf + n, tmp, k);
		n += k;
	}
	buf[n] = '\0';
	FZ_ASSERT(wire_utf8_valid(buf, n));
	return n;
}

static struct wire_str
gen_handle(struct fz_src *s, char *buf)
{
	size_t n = gen_str(s, buf, SIPC_HANDLE_MAX, GEN_NAME);

	if (n == 0) {
		buf[0] = 'h';
		n = 1;
	}
	return (struct wire_str){ buf, (uint16_t)n };
}

static struct wire_str
gen_name(struct fz_src *s, char *buf, size_t max)
{
	size_t n = gen_str(s, buf, max, GEN_NAME);

	return (struct wire_str){ buf, (uint16_t)n };
}

static uint64_t
nonzero64(uint64_t v)
{
	return v ? v : 1;
}

static void
gen_endpoint(struct fz_src *s, struct wire_endpoint *ep)
{
	size_t i;

	memset(ep, 0, sizeof(*ep));
	switch (fz_u8(s) % 3) {
	case 0:
		ep->family = WIRE_AF_INET;
		for (i = 0; i < 4; i++)
			ep->addr[i] = fz_u8(s);
		break;
	case 1:
		ep->family = WIRE_AF_INET6;
		for (i = 0; i < 16; i++)
			ep->addr[i] = fz_u8(s);
		break;
	default:
		/* Any path: '/' and up to 106 more bytes of UTF-8. */
		ep->family = WIRE_AF_UNIX;
		ep->path[0] = '/';
		gen_str(s, ep->path + 1, SIPC_UNIX_PATH_MAX - 1, GEN_TEXT);
		return;
	}
	ep->port = fz_u16(s);
	if (ep->port == 0)
		ep->port = 1;
}

static void
gen_record(struct fz_src *s, struct wire_record *r, char *host)
{
	memset(r, 0, sizeof(*r));
	r->id = nonzero64(fz_u64(s));
	r->instance = nonzero64(fz_u64(s));
	gen_endpoint(s, &r->ep);
	r->host = gen_name(s, host, SIPC_HOST_MAX);
	r->pid = fz_u32(s);
	r->registered_ms = fz_u64(s);
}

/* ---- Comparing ------------------------------------------------------------- */

static int
str_eq(struct wire_str a, struct wire_str b)
{
	return a.len == b.len && (a.len == 0 ||
	    memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int
endpoint_eq(const struct wire_endpoint *a, const struct wire_endpoint *b)
{
	if (a->family != b->family)
		return 0;
	switch (a->family) {
	case WIRE_AF_INET:
		return a->port == b->port && memcmp(a->addr, b->addr, 4) == 0;
	case WIRE_AF_INET6:
		return a->port == b->port &&
		    memcmp(a->addr, b->addr, 16) == 0;
	default:
		return strcmp(a->path, b->path) == 0;
	}
}

static int
record_eq(const struct wire_record *a, const struct wire_record *b)
{
	return a->id == b->id && a->instance == b->instance &&
	    endpoint_eq(&a->ep, &b->ep) && str_eq(a->host, b->host) &&
	    a->pid == b->pid && a->registered_ms == b->registered_ms;
}

/*
 * The one frame in w, encoded from a valid message (rc: the encoder's
 * result), has a valid header of this type, and decoder dec accepts its
 * payload (and the checks of fz_check_msg hold).  Returns the payload.
 */
static const uint8_t *
encoded(const struct wbuf *w, int rc, uint8_t type, int dec, size_t *len)
{
	struct wire_header h;

	if (rc != 0)
		fprintf(stderr, "encoder refused a valid message: %s\n",
		    wire_strerror(rc));
	FZ_ASSERT(rc == 0);
	FZ_ASSERT(w->len >= SIPC_HEADER_SIZE);
	FZ_ASSERT(wire_header_decode(w->data, UINT32_MAX, &h) == 0);
	FZ_ASSERT(h.type == type && h.len == w->len - SIPC_HEADER_SIZE);
	*len = h.len;
	rc = fz_check_msg(dec, w->data + SIPC_HEADER_SIZE, h.len);
	if (rc != 0)
		fprintf(stderr, "decoder refused a valid message: %s\n",
		    wire_strerror(rc));
	FZ_ASSERT(rc == 0);
	return w->data + SIPC_HEADER_SIZE;
}

/* ---- Round trips ----------------------------------------------------------- */

/* A version range that encoders accept: 1 <= min <= max. */
static void
gen_versions(struct fz_src *s, uint8_t *min, uint8_t *max)
{
	*min = fz_u8(s);
	*max = fz_u8(s);
	if (*min == 0)
		*min = 1;
	if (*max < *min)
		*max = *min;
}

static void
rt_hello(struct fz_src *s, struct wbuf *w)
{
	char sw[SIPC_SOFTWARE_MAX + 1], host[SIPC_HOST_MAX + 1];
	struct wire_hello m, d;
	const uint8_t *p;
	size_t len;

	gen_versions(s, &m.min_version, &m.max_version);
	m.features = fz_u32(s);
	m.heartbeat_ms = fz_u32(s);
	m.software = gen_name(s, sw, SIPC_SOFTWARE_MAX);
	m.host = gen_name(s, host, SIPC_HOST_MAX);
	m.pid = fz_u32(s);
	p = encoded(w, wire_enc_hello(w, 7, &m), WIRE_HELLO, FZ_DEC_HELLO,
	    &len);
	FZ_ASSERT(wire_dec_hello(p, len, &d) == 0);
	FZ_ASSERT(d.min_version == m.min_version &&
	    d.max_version == m.max_version && d.features == m.features &&
	    d.heartbeat_ms == m.heartbeat_ms && d.pid == m.pid &&
	    str_eq(d.software, m.software) && str_eq(d.host, m.host));
}

static void
rt_ok_hello(struct fz_src *s, struct wbuf *w)
{
	char sw[SIPC_SOFTWARE_MAX + 1];
	struct wire_hello_ok m, d;
	const uint8_t *p;
	size_t len;

	m.version = fz_u8(s);
	if (m.version == 0)
		m.version = 1;
	m.features = fz_u32(s);
	m.heartbeat_ms = fz_u32(s);
	if (m.heartbeat_ms == 0)
		m.heartbeat_ms = 1;
	m.session_id = fz_u64(s);
	m.max_frame = fz_u32(s);
	if (m.max_frame < SIPC_HELLO_FRAME_MAX)
		m.max_frame = SIPC_HELLO_FRAME_MAX;
	m.software = gen_name(s, sw, SIPC_SOFTWARE_MAX);
	p = encoded(w, wire_enc_ok_hello(w, 7, &m), WIRE_OK,
	    FZ_DEC_OK_HELLO, &len);
	FZ_ASSERT(wire_dec_ok_hello(p, len, &d) == 0);
	FZ_ASSERT(d.version == m.version && d.features == m.features &&
	    d.heartbeat_ms == m.heartbeat_ms &&
	    d.session_id == m.session_id && d.max_frame == m.max_frame &&
	    str_eq(d.software, m.software));
}

static void
rt_register(struct fz_src *s, struct wbuf *w)
{
	char handle[SIPC_HANDLE_MAX + 1];
	struct wire_register m, d;
	const uint8_t *p;
	size_t len;

	m.handle = gen_handle(s, handle);
	m.instance = nonzero64(fz_u64(s));
	gen_endpoint(s, &m.ep);
	p = encoded(w, wire_enc_register(w, 7, &m), WIRE_REGISTER,
	    FZ_DEC_REGISTER, &len);
	FZ_ASSERT(wire_dec_register(p, len, &d) == 0);
	FZ_ASSERT(str_eq(d.handle, m.handle) && d.instance == m.instance &&
	    endpoint_eq(&d.ep, &m.ep));
}

static void
rt_records(struct fz_src *s, struct wbuf *w)
{
	char hosts[RT_RECORDS_MAX][SIPC_HOST_MAX + 1];
	struct wire_record recs[RT_RECORDS_MAX], d;
	struct wire_seq seq;
	const uint8_t *p;
	uint8_t type;
	uint32_t i, n;
	size_t start, len;

	type = fz_u8(s) & 1 ? WIRE_WATCH : WIRE_LOOKUP;
	n = fz_u8(s) % (RT_RECORDS_MAX + 1);
	start = wire_enc_ok_seq_begin(w, 7, type);
	for (i = 0; i < n; i++) {
		gen_record(s, &recs[i], hosts[i]);
		wire_put_record(w, &recs[i]);
	}
	p = encoded(w, wire_enc_ok_seq_end(w, start, n), WIRE_OK,
	    type == WIRE_LOOKUP ? FZ_DEC_OK_LOOKUP : FZ_DEC_OK_WATCH, &len);
	FZ_ASSERT(wire_dec_ok_records(p, len, type, &seq) == 0);
	FZ_ASSERT(seq.count == n);
	for (i = 0; i < n; i++) {
		FZ_ASSERT(wire_next_record(&seq, &d));
		FZ_ASSERT(record_eq(&d, &recs[i]));
	}
	FZ_ASSERT(!wire_next_record(&seq, &d));
}

static void
rt_join(struct fz_src *s, struct wbuf *w)
{
	char handle[SIPC_HANDLE_MAX + 1], host[SIPC_HOST_MAX + 1];
	struct wire_join m, d;
	const uint8_t *p;
	size_t len;

	m.handle = gen_handle(s, handle);
	gen_record(s, &m.rec, host);
	p = encoded(w, wire_enc_join(w, &m), WIRE_JOIN, FZ_DEC_JOIN, &len);
	FZ_ASSERT(wire_dec_join(p, len, &d) == 0);
	FZ_ASSERT(str_eq(d.handle, m.handle) && record_eq(&d.rec, &m.rec));
}

static void
rt_leave(struct fz_src *s, struct wbuf *w)
{
	char handle[SIPC_HANDLE_MAX + 1];
	struct wire_leave m, d;
	const uint8_t *p;
	size_t len;

	m.handle = gen_handle(s, handle);
	m.id = nonzero64(fz_u64(s));
	m.reason = (uint8_t)(WIRE_LEAVE_UNREGISTERED + fz_u8(s) % 3);
	p = encoded(w, wire_enc_leave(w, &m), WIRE_LEAVE, FZ_DEC_LEAVE, &len);
	FZ_ASSERT(wire_dec_leave(p, len, &d) == 0);
	FZ_ASSERT(str_eq(d.handle, m.handle) && d.id == m.id &&
	    d.reason == m.reason);
}

static void
rt_list(struct fz_src *s, struct wbuf *w)
{
	char after[SIPC_HANDLE_MAX + 1];
	struct wire_list m, d;
	const uint8_t *p;
	size_t len;

	m.after = gen_name(s, after, SIPC_HANDLE_MAX);
	m.limit = fz_u32(s);
	p = encoded(w, wire_enc_list(w, 7, &m), WIRE_LIST, FZ_DEC_LIST, &len);
	FZ_ASSERT(wire_dec_list(p, len, &d) == 0);
	FZ_ASSERT(str_eq(d.after, m.after) && d.limit == m.limit);
}

static void
rt_ok_list(struct fz_src *s, struct wbuf *w)
{
	char handles[RT_ENTRIES_MAX][SIPC_HANDLE_MAX + 1];
	struct wire_str hs[RT_ENTRIES_MAX];
	uint32_t recv[RT_ENTRIES_MAX], i, n;
	struct wire_list_entry e;
	struct wire_list_ok d;
	const uint8_t *p;
	size_t start, len;
	int more;

	more = fz_u8(s) & 1;
	n = fz_u8(s) % (RT_ENTRIES_MAX + 1);
	start = wire_enc_ok_list_begin(w, 7);
	for (i = 0; i < n; i++) {
		hs[i] = gen_handle(s, handles[i]);
		recv[i] = fz_u32(s);
		wire_put_list_entry(w, hs[i].ptr, hs[i].len, recv[i]);
	}
	p = encoded(w, wire_enc_ok_list_end(w, start, n, more), WIRE_OK,
	    FZ_DEC_OK_LIST, &len);
	FZ_ASSERT(wire_dec_ok_list(p, len, &d) == 0);
	FZ_ASSERT(d.more == more && d.entries.count == n);
	for (i = 0; i < n; i++) {
		FZ_ASSERT(wire_next_list_entry(&d.entries, &e));
		FZ_ASSERT(str_eq(e.handle, hs[i]) && e.receivers == recv[i]);
	}
	FZ_ASSERT(!wire_next_list_entry(&d.entries, &e));
}

static void
rt_ok_stats(struct fz_src *s, struct wbuf *w)
{
	char names[RT_ENTRIES_MAX][SIPC_STAT_NAME_MAX + 1];
	uint64_t vals[RT_ENTRIES_MAX];
	struct wire_stat st;
	struct wire_seq seq;
	const uint8_t *p;
	uint32_t i, n;
	size_t start, len;

	n = fz_u8(s) % (RT_ENTRIES_MAX + 1);
	start = wire_enc_ok_seq_begin(w, 7, WIRE_STATS);
	for (i = 0; i < n; i++) {
		/* A counter has a name (fz_check_msg insists). */
		if (gen_str(s, names[i], SIPC_STAT_NAME_MAX, GEN_NAME) == 0)
			strcpy(names[i], "n");
		vals[i] = fz_u64(s);
		wire_put_stat(w, names[i], vals[i]);
	}
	p = encoded(w, wire_enc_ok_seq_end(w, start, n), WIRE_OK,
	    FZ_DEC_OK_STATS, &len);
	FZ_ASSERT(wire_dec_ok_stats(p, len, &seq) == 0 && seq.count == n);
	for (i = 0; i < n; i++) {
		FZ_ASSERT(wire_next_stat(&seq, &st));
		FZ_ASSERT(st.name.len == strlen(names[i]) &&
		    memcmp(st.name.ptr, names[i], st.name.len) == 0 &&
		    st.value == vals[i]);
	}
	FZ_ASSERT(!wire_next_stat(&seq, &st));
}

static void
rt_error(struct fz_src *s, struct wbuf *w)
{
	/* Longer than an ERROR may carry: the encoder cuts it at a
	 * character boundary, and the cut text must still decode. */
	char text[3 * SIPC_ERROR_TEXT_MAX + 1];
	struct wire_error d;
	const uint8_t *p;
	uint16_t code;
	size_t n, len;

	code = fz_u16(s);
	if (code == 0)
		code = WIRE_ERR_INTERNAL;
	n = gen_str(s, text, sizeof(text) - 1, GEN_TEXT);
	p = encoded(w, wire_enc_error(w, 7, code, text), WIRE_ERROR,
	    FZ_DEC_ERROR, &len);
	FZ_ASSERT(wire_dec_error(p, len, &d) == 0 && d.code == code);
	FZ_ASSERT(d.text.len <= n && d.text.len <= SIPC_ERROR_TEXT_MAX);
	FZ_ASSERT(d.text.len == 0 || memcmp(d.text.ptr, text, d.text.len) == 0);
	/* Cut only when too long, and by less than one character. */
	FZ_ASSERT(n <= SIPC_ERROR_TEXT_MAX ? d.text.len == n :
	    d.text.len + 4 > SIPC_ERROR_TEXT_MAX);
}

static void
rt_dhello(struct fz_src *s, struct wbuf *w)
{
	char handle[SIPC_HANDLE_MAX + 1];
	struct wire_dhello m, d;
	const uint8_t *p;
	size_t len;

	gen_versions(s, &m.min_version, &m.max_version);
	m.features = fz_u32(s);
	m.sender_id = nonzero64(fz_u64(s));
	m.instance = fz_u64(s);
	m.first_seq = nonzero64(fz_u64(s));
	m.heartbeat_ms = fz_u32(s);
	m.ack_bytes = fz_u32(s);
	m.handle = gen_handle(s, handle);
	p = encoded(w, wire_enc_dhello(w, 7, &m), WIRE_DHELLO,
	    FZ_DEC_DHELLO, &len);
	FZ_ASSERT(wire_dec_dhello(p, len, &d) == 0);
	FZ_ASSERT(d.min_version == m.min_version &&
	    d.max_version == m.max_version && d.features == m.features &&
	    d.sender_id == m.sender_id && d.instance == m.instance &&
	    d.first_seq == m.first_seq && d.heartbeat_ms == m.heartbeat_ms &&
	    d.ack_bytes == m.ack_bytes && str_eq(d.handle, m.handle));
}

static void
round_trip(int which, struct fz_src *s)
{
	struct wbuf w;

	wbuf_init(&w, RT_WBUF_MAX);
	switch (which) {
	case RT_HELLO:		rt_hello(s, &w); break;
	case RT_OK_HELLO:	rt_ok_hello(s, &w); break;
	case RT_REGISTER:	rt_register(s, &w); break;
	case RT_RECORDS:	rt_records(s, &w); break;
	case RT_JOIN:		rt_join(s, &w); break;
	case RT_LEAVE:		rt_leave(s, &w); break;
	case RT_LIST:		rt_list(s, &w); break;
	case RT_OK_LIST:	rt_ok_list(s, &w); break;
	case RT_OK_STATS:	rt_ok_stats(s, &w); break;
	case RT_ERROR:		rt_error(s, &w); break;
	default:		rt_dhello(s, &w); break;
	}
	wbuf_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_src s;

	if (size < 1)
		return 0;
	if (data[0] < 0x80) {
		(void)fz_check_msg(data[0] % FZ_DEC_COUNT, data + 1, size - 1);
		return 0;
	}
	s.p = data + 1;
	s.left = size - 1;
	round_trip((data[0] - 0x80) % RT_COUNT, &s);
	return 0;
}
