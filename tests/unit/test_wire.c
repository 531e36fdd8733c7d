/*
 * test_wire.c - the codec, table-driven: every message round-trips, every
 * truncation and every trailing byte is rejected, every limit holds at and
 * past its bound, bad magic, flags, lengths, UTF-8, handles and endpoints
 * are refused, and the hex examples in proto/PROTOCOL.md are exactly what
 * the encoder produces.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/addr.h"
#include "../../proto/frame.h"
#include "../../proto/zframe.h"
#include "../../proto/wire.h"
#include "../../libclient/reader.h"

#define S(lit)	((struct wire_str){ lit, sizeof(lit) - 1 })

static int
str_eq(struct wire_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static struct wire_endpoint
ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct wire_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.family = WIRE_AF_INET;
	ep.addr[0] = a;
	ep.addr[1] = b;
	ep.addr[2] = c;
	ep.addr[3] = d;
	ep.port = port;
	return ep;
}

static struct wire_record
sample_record(void)
{
	struct wire_record r;

	memset(&r, 0, sizeof(r));
	r.id = 0x100000001ULL;
	r.instance = 0x0102030405060708ULL;
	r.ep = ep4(127, 0, 0, 1, 40000);
	r.host = S("box");
	r.pid = 4242;
	r.registered_ms = 1763750000000ULL;
	return r;
}

static int
record_ok(const struct wire_record *r)
{
	struct wire_record w = sample_record();

	return r->id == w.id && r->instance == w.instance &&
	    r->ep.family == WIRE_AF_INET && r->ep.port == 40000 &&
	    memcmp(r->ep.addr, w.ep.addr, 4) == 0 && str_eq(r->host, "box") &&
	    r->pid == 4242 && r->registered_ms == w.registered_ms;
}

/* ---- One case per message ------------------------------------------------ */

struct wcase {
	const char	*name;		/* as in PROTOCOL.md's examples */
	uint8_t		 type;
	int		 body_is_rest;	/* DATA, REPLY: trailing bytes are the
					   body */
	int		(*enc)(struct wbuf *);
	int		(*dec)(const uint8_t *, size_t);	/* 0 and fields ok */
};

static int
enc_hello(struct wbuf *b)
{
	struct wire_hello m = { 1, 1, WIRE_FEAT_ZLIB, 5000,
	    S("sipc/0.1.0"), S("box"), 4242 };

	return wire_enc_hello(b, 1, &m);
}

static int
dec_hello(const uint8_t *p, size_t n)
{
	struct wire_hello m;
	int rc = wire_dec_hello(p, n, &m);

	if (rc)
		return rc;
	return !(m.min_version == 1 && m.max_version == 1 &&
	    m.features == WIRE_FEAT_ZLIB && m.heartbeat_ms == 5000 &&
	    str_eq(m.software, "sipc/0.1.0") && str_eq(m.host, "box") &&
	    m.pid == 4242);
}

static int
enc_ok_hello(struct wbuf *b)
{
	struct wire_hello_ok m = { 1, 0, 5000, 7, 1048576,
	    S("sipc-epmd/0.1.0") };

	return wire_enc_ok_hello(b, 1, &m);
}

static int
dec_ok_hello(const uint8_t *p, size_t n)
{
	struct wire_hello_ok m;
	int rc = wire_dec_ok_hello(p, n, &m);

	if (rc)
		return rc;
	return !(m.version == 1 && m.features == 0 && m.heartbeat_ms == 5000 &&
	    m.session_id == 7 && m.max_frame == 1048576 &&
	    str_eq(m.software, "sipc-epmd/0.1.0"));
}

static int
enc_register(struct wbuf *b)
{
	struct wire_register m;

	m.handle = S("chat");
	m.instance = 0x0102030405060708ULL;
	m.ep = ep4(127, 0, 0, 1, 40000);
	return wire_enc_register(b, 2, &m);
}

static int
dec_register(const uint8_t *p, size_t n)
{
	struct wire_register m;
	int rc = wire_dec_register(p, n, &m);

	if (rc)
		return rc;
	return !(str_eq(m.handle, "chat") &&
	    m.instance == 0x0102030405060708ULL &&
	    m.ep.family == WIRE_AF_INET && m.ep.port == 40000 &&
	    m.ep.addr[0] == 127 && m.ep.addr[3] == 1);
}

static int
enc_register6(struct wbuf *b)
{
	struct wire_register m;

	memset(&m, 0, sizeof(m));
	m.handle = S("chat");
	m.instance = 9;
	m.ep.family = WIRE_AF_INET6;
	m.ep.addr[15] = 1;
	m.ep.port = 40001;
	return wire_enc_register(b, 3, &m);
}

static int
dec_register6(const uint8_t *p, size_t n)
{
	struct wire_register m;
	int rc = wire_dec_register(p, n, &m);

	if (rc)
		return rc;
	return !(m.ep.family == WIRE_AF_INET6 && m.ep.addr[15] == 1 &&
	    m.ep.addr[0] == 0 && m.ep.port == 40001 && m.instance == 9);
}

static int
enc_register_unix(struct wbuf *b)
{
	struct wire_register m;

	memset(&m, 0, sizeof(m));
	m.handle = S("chat");
	m.instance = 9;
	m.ep.family = WIRE_AF_UNIX;
	strcpy(m.ep.path, "/run/sipc/r1");
	return wire_enc_register(b, 3, &m);
}

static int
dec_register_unix(const uint8_t *p, size_t n)
{
	struct wire_register m;
	int rc = wire_dec_register(p, n, &m);

	if (rc)
		return rc;
	return !(m.ep.family == WIRE_AF_UNIX &&
	    strcmp(m.ep.path, "/run/sipc/r1") == 0);
}

static int
enc_ok_register(struct wbuf *b)
{
	return wire_enc_ok_register(b, 2, 0x100000001ULL);
}

static int
dec_ok_register(const uint8_t *p, size_t n)
{
	uint64_t id;
	int rc = wire_dec_ok_register(p, n, &id);

	return rc ? rc : !(id == 0x100000001ULL);
}

static int
enc_unregister(struct wbuf *b)
{
	return wire_enc_u64(b, WIRE_UNREGISTER, 3, 0x100000001ULL);
}

static int
dec_u64_id(const uint8_t *p, size_t n)
{
	uint64_t v;
	int rc = wire_dec_u64(p, n, &v);

	return rc ? rc : !(v == 0x100000001ULL);
}

static int
enc_ok_unregister(struct wbuf *b)
{
	return wire_enc_ok_empty(b, 3, WIRE_UNREGISTER);
}

static int
dec_ok_unregister(const uint8_t *p, size_t n)
{
	return wire_dec_ok_empty(p, n, WIRE_UNREGISTER);
}

static int
enc_lookup(struct wbuf *b)
{
	return wire_enc_handle(b, WIRE_LOOKUP, 4, "chat", 4);
}

static int
dec_handle_chat(const uint8_t *p, size_t n)
{
	struct wire_str h;
	int rc = wire_dec_handle(p, n, &h);

	return rc ? rc : !str_eq(h, "chat");
}

static int
enc_ok_lookup(struct wbuf *b)
{
	struct wire_record r = sample_record();
	size_t s = wire_enc_ok_seq_begin(b, 4, WIRE_LOOKUP);

	wire_put_record(b, &r);
	return wire_enc_ok_seq_end(b, s, 1);
}

static int
dec_ok_lookup(const uint8_t *p, size_t n)
{
	struct wire_record r;
	struct wire_seq seq;
	int rc = wire_dec_ok_records(p, n, WIRE_LOOKUP, &seq);

	if (rc)
		return rc;
	if (seq.count != 1 || !wire_next_record(&seq, &r) || !record_ok(&r))
		return 1;
	return wire_next_record(&seq, &r);
}

static int
enc_watch(struct wbuf *b)
{
	return wire_enc_handle(b, WIRE_WATCH, 5, "chat", 4);
}

static int
enc_ok_watch(struct wbuf *b)
{
	size_t s = wire_enc_ok_seq_begin(b, 5, WIRE_WATCH);

	return wire_enc_ok_seq_end(b, s, 0);
}

static int
dec_ok_watch(const uint8_t *p, size_t n)
{
	struct wire_seq seq;
	int rc = wire_dec_ok_records(p, n, WIRE_WATCH, &seq);

	return rc ? rc : !(seq.count == 0);
}

static int
enc_unwatch(struct wbuf *b)
{
	return wire_enc_handle(b, WIRE_UNWATCH, 6, "chat", 4);
}

static int
enc_ok_unwatch(struct wbuf *b)
{
	return wire_enc_ok_empty(b, 6, WIRE_UNWATCH);
}

static int
dec_ok_unwatch(const uint8_t *p, size_t n)
{
	return wire_dec_ok_empty(p, n, WIRE_UNWATCH);
}

static int
enc_list(struct wbuf *b)
{
	struct wire_list m = { S(""), 100 };

	return wire_enc_list(b, 7, &m);
}

static int
dec_list(const uint8_t *p, size_t n)
{
	struct wire_list m;
	int rc = wire_dec_list(p, n, &m);

	return rc ? rc : !(m.after.len == 0 && m.limit == 100);
}

static int
enc_ok_list(struct wbuf *b)
{
	size_t s = wire_enc_ok_list_begin(b, 7);

	wire_put_list_entry(b, "chat", 4, 3);
	wire_put_list_entry(b, "jobs", 4, 1);
	return wire_enc_ok_list_end(b, s, 2, 0);
}

static int
dec_ok_list(const uint8_t *p, size_t n)
{
	struct wire_list_entry e1, e2;
	struct wire_list_ok ok;
	int rc = wire_dec_ok_list(p, n, &ok);

	if (rc)
		return rc;
	return !(ok.more == 0 && ok.entries.count == 2 &&
	    wire_next_list_entry(&ok.entries, &e1) &&
	    wire_next_list_entry(&ok.entries, &e2) &&
	    str_eq(e1.handle, "chat") && e1.receivers == 3 &&
	    str_eq(e2.handle, "jobs") && e2.receivers == 1);
}

static int
enc_stats(struct wbuf *b)
{
	return wire_enc_empty(b, WIRE_STATS, 8);
}

static int
dec_stats(const uint8_t *p, size_t n)
{
	return wire_dec_empty(p, n);
}

static int
enc_ok_stats(struct wbuf *b)
{
	size_t s = wire_enc_ok_seq_begin(b, 8, WIRE_STATS);

	wire_put_stat(b, "sessions", 2);
	return wire_enc_ok_seq_end(b, s, 1);
}

static int
dec_ok_stats(const uint8_t *p, size_t n)
{
	struct wire_stat st;
	struct wire_seq seq;
	int rc = wire_dec_ok_stats(p, n, &seq);

	if (rc)
		return rc;
	return !(seq.count == 1 && wire_next_stat(&seq, &st) &&
	    str_eq(st.name, "sessions") && st.value == 2);
}

static int
enc_ping(struct wbuf *b)
{
	return wire_enc_u64(b, WIRE_PING, 9, 0x0102030405060708ULL);
}

static int
enc_pong(struct wbuf *b)
{
	return wire_enc_u64(b, WIRE_PONG, 9, 0x0102030405060708ULL);
}

static int
dec_token(const uint8_t *p, size_t n)
{
	uint64_t v;
	int rc = wire_dec_u64(p, n, &v);

	return rc ? rc : !(v == 0x0102030405060708ULL);
}

static int
enc_join(struct wbuf *b)
{
	struct wire_join m;

	m.handle = S("chat");
	m.rec = sample_record();
	return wire_enc_join(b, &m);
}

static int
dec_join(const uint8_t *p, size_t n)
{
	struct wire_join m;
	int rc = wire_dec_join(p, n, &m);

	return rc ? rc : !(str_eq(m.handle, "chat") && record_ok(&m.rec));
}

static int
enc_leave(struct wbuf *b)
{
	struct wire_leave m = { S("chat"), 0x100000001ULL, WIRE_LEAVE_CLOSED };

	return wire_enc_leave(b, &m);
}

static int
dec_leave(const uint8_t *p, size_t n)
{
	struct wire_leave m;
	int rc = wire_dec_leave(p, n, &m);

	return rc ? rc : !(str_eq(m.handle, "chat") &&
	    m.id == 0x100000001ULL && m.reason == WIRE_LEAVE_CLOSED);
}

static int
enc_error(struct wbuf *b)
{
	return wire_enc_error(b, 2, WIRE_ERR_BAD_HANDLE, "invalid handle");
}

static int
dec_error(const uint8_t *p, size_t n)
{
	struct wire_error e;
	int rc = wire_dec_error(p, n, &e);

	return rc ? rc : !(e.code == WIRE_ERR_BAD_HANDLE &&
	    str_eq(e.text, "invalid handle"));
}

static int
enc_dhello(struct wbuf *b)
{
	struct wire_dhello m = { 1, 1, 0, 0x1111111111111111ULL,
	    0x0102030405060708ULL, 1, 5000, 2097152, S("chat") };

	return wire_enc_dhello(b, 1, &m);
}

static int
dec_dhello(const uint8_t *p, size_t n)
{
	struct wire_dhello m;
	int rc = wire_dec_dhello(p, n, &m);

	return rc ? rc : !(m.min_version == 1 && m.max_version == 1 &&
	    m.sender_id == 0x1111111111111111ULL &&
	    m.instance == 0x0102030405060708ULL && m.first_seq == 1 &&
	    m.heartbeat_ms == 5000 && m.ack_bytes == 2097152 &&
	    str_eq(m.handle, "chat"));
}

static int
enc_ok_dhello(struct wbuf *b)
{
	struct wire_dhello_ok m = { 1, 0, 0x0102030405060708ULL, 0,
	    67108864 };

	return wire_enc_ok_dhello(b, 1, &m);
}

static int
dec_ok_dhello(const uint8_t *p, size_t n)
{
	struct wire_dhello_ok m;
	int rc = wire_dec_ok_dhello(p, n, &m);

	return rc ? rc : !(m.version == 1 &&
	    m.instance == 0x0102030405060708ULL && m.last_seq == 0 &&
	    m.max_message == 67108864);
}

static int
enc_data(struct wbuf *b)
{
	size_t s = wire_frame_begin(b, WIRE_DATA, 0, 0);

	wire_put_u64(b, 1);
	wire_put_bytes(b, "Foo1", 4);
	return wire_frame_end(b, s);
}

static int
dec_data(const uint8_t *p, size_t n)
{
	struct wire_data d;
	int rc = wire_dec_data(p, n, &d);

	return rc ? rc : !(d.seq == 1 && d.len == 4 &&
	    memcmp(d.body, "Foo1", 4) == 0);
}

static int
enc_ack(struct wbuf *b)
{
	return wire_enc_u64(b, WIRE_ACK, 0, 0x100000001ULL);
}

/* Request/reply (PROTOCOL.md 6.6): what a requester and a responder say. */
static int
enc_dhello_reply(struct wbuf *b)
{
	struct wire_dhello m = { 1, 1, WIRE_FEAT_REPLY, 0x2222222222222223ULL,
	    0x0102030405060708ULL, 1, 5000, 0xffffffffu, S("calc") };

	return wire_enc_dhello(b, 1, &m);
}

static int
dec_dhello_reply(const uint8_t *p, size_t n)
{
	struct wire_dhello m;
	int rc = wire_dec_dhello(p, n, &m);

	return rc ? rc : !(m.features == WIRE_FEAT_REPLY &&
	    m.sender_id == 0x2222222222222223ULL &&
	    m.instance == 0x0102030405060708ULL &&
	    m.first_seq == 1 && m.ack_bytes == 0xffffffffu &&
	    str_eq(m.handle, "calc"));
}

static int
enc_ok_dhello_reply(struct wbuf *b)
{
	struct wire_dhello_ok m = { 1, WIRE_FEAT_REPLY,
	    0x0102030405060708ULL, 0, 67108864 };

	return wire_enc_ok_dhello(b, 1, &m);
}

static int
dec_ok_dhello_reply(const uint8_t *p, size_t n)
{
	struct wire_dhello_ok m;
	int rc = wire_dec_ok_dhello(p, n, &m);

	return rc ? rc : !(m.features == WIRE_FEAT_REPLY &&
	    m.instance == 0x0102030405060708ULL && m.last_seq == 0);
}

/* A ring of 8 MiB, generation 1, read from position 0 (PROTOCOL.md 6.7). */
static int
enc_shm_ring(struct wbuf *b)
{
	struct wire_shm_ring m = { 1, 8388608, 0 };

	return wire_enc_shm_ring(b, &m);
}

static int
dec_shm_ring(const uint8_t *p, size_t n)
{
	struct wire_shm_ring m;
	int rc = wire_dec_shm_ring(p, n, &m);

	return rc ? rc : !(m.gen == 1 && m.size == 8388608 && m.start == 0);
}

static int
enc_shm_cursor(struct wbuf *b)
{
	return wire_enc_u64(b, WIRE_SHM_CURSOR, 0, 1);
}

static int
dec_shm_cursor(const uint8_t *p, size_t n)
{
	uint64_t v;
	int rc = wire_dec_u64(p, n, &v);

	return rc ? rc : v != 1;
}

/* A request: DATA with request id 7. */
static int
enc_request(struct wbuf *b)
{
	size_t s = wire_frame_begin(b, WIRE_DATA, 0, 7);

	wire_put_u64(b, 1);
	wire_put_bytes(b, "ping", 4);
	return wire_frame_end(b, s);
}

static int
dec_request(const uint8_t *p, size_t n)
{
	struct wire_data d;
	int rc = wire_dec_data(p, n, &d);

	return rc ? rc : !(d.seq == 1 && d.len == 4 &&
	    memcmp(d.body, "ping", 4) == 0);
}

/* REPLY has no encoder of its own: a header, then the body, as
 * libclient/responder.c builds it. */
static int
enc_reply(struct wbuf *b)
{
	struct wire_header h = { 1, WIRE_REPLY, 0, 7, 4 };
	uint8_t hdr[SIPC_HEADER_SIZE];

	wire_header_encode(hdr, &h);
	wire_put_bytes(b, hdr, sizeof(hdr));
	wire_put_bytes(b, "pong", 4);
	return b->err;
}

/* The whole payload is the body: any length decodes. */
static int
dec_reply(const uint8_t *p, size_t n)
{
	return !(n == 4 && memcmp(p, "pong", 4) == 0);
}

static int
enc_error_no_reply(struct wbuf *b)
{
	return wire_enc_error(b, 7, WIRE_ERR_NO_REPLY, "the responder "
	    "dropped the request");
}

static int
dec_error_no_reply(const uint8_t *p, size_t n)
{
	struct wire_error e;
	int rc = wire_dec_error(p, n, &e);

	return rc ? rc : !(e.code == WIRE_ERR_NO_REPLY &&
	    str_eq(e.text, "the responder dropped the request"));
}

static int
enc_error_request_failed(struct wbuf *b)
{
	return wire_enc_error(b, 8, WIRE_ERR_REQUEST_FAILED,
	    "division by zero");
}

static int
dec_error_request_failed(const uint8_t *p, size_t n)
{
	struct wire_error e;
	int rc = wire_dec_error(p, n, &e);

	return rc ? rc : !(e.code == WIRE_ERR_REQUEST_FAILED &&
	    str_eq(e.text, "division by zero"));
}

static int
enc_error_unavailable(struct wbuf *b)
{
	return wire_enc_error(b, 3, WIRE_ERR_UNAVAILABLE,
	    "etcd is unreachable");
}

static int
dec_error_unavailable(const uint8_t *p, size_t n)
{
	struct wire_error e;
	int rc = wire_dec_error(p, n, &e);

	return rc ? rc : !(e.code == WIRE_ERR_UNAVAILABLE &&
	    str_eq(e.text, "etcd is unreachable"));
}

static const struct wcase cases[] = {
	{ "HELLO", WIRE_HELLO, 0, enc_hello, dec_hello },
	{ "OK-HELLO", WIRE_OK, 0, enc_ok_hello, dec_ok_hello },
	{ "REGISTER", WIRE_REGISTER, 0, enc_register, dec_register },
	{ "REGISTER-IPV6", WIRE_REGISTER, 0, enc_register6, dec_register6 },
	{ "REGISTER-UNIX", WIRE_REGISTER, 0, enc_register_unix,
	    dec_register_unix },
	{ "OK-REGISTER", WIRE_OK, 0, enc_ok_register, dec_ok_register },
	{ "UNREGISTER", WIRE_UNREGISTER, 0, enc_unregister, dec_u64_id },
	{ "OK-UNREGISTER", WIRE_OK, 0, enc_ok_unregister, dec_ok_unregister },
	{ "LOOKUP", WIRE_LOOKUP, 0, enc_lookup, dec_handle_chat },
	{ "OK-LOOKUP", WIRE_OK, 0, enc_ok_lookup, dec_ok_lookup },
	{ "WATCH", WIRE_WATCH, 0, enc_watch, dec_handle_chat },
	{ "OK-WATCH", WIRE_OK, 0, enc_ok_watch, dec_ok_watch },
	{ "UNWATCH", WIRE_UNWATCH, 0, enc_unwatch, dec_handle_chat },
	{ "OK-UNWATCH", WIRE_OK, 0, enc_ok_unwatch, dec_ok_unwatch },
	{ "LIST", WIRE_LIST, 0, enc_list, dec_list },
	{ "OK-LIST", WIRE_OK, 0, enc_ok_list, dec_ok_list },
	{ "STATS", WIRE_STATS, 0, enc_stats, dec_stats },
	{ "OK-STATS", WIRE_OK, 0, enc_ok_stats, dec_ok_stats },
	{ "PING", WIRE_PING, 0, enc_ping, dec_token },
	{ "PONG", WIRE_PONG, 0, enc_pong, dec_token },
	{ "JOIN", WIRE_JOIN, 0, enc_join, dec_join },
	{ "LEAVE", WIRE_LEAVE, 0, enc_leave, dec_leave },
	{ "ERROR", WIRE_ERROR, 0, enc_error, dec_error },
	{ "DHELLO", WIRE_DHELLO, 0, enc_dhello, dec_dhello },
	{ "OK-DHELLO", WIRE_OK, 0, enc_ok_dhello, dec_ok_dhello },
	{ "DATA", WIRE_DATA, 1, enc_data, dec_data },
	{ "ACK", WIRE_ACK, 0, enc_ack, dec_u64_id },
	{ "DHELLO-REPLY", WIRE_DHELLO, 0, enc_dhello_reply, dec_dhello_reply },
	{ "SHM-RING", WIRE_SHM_RING, 0, enc_shm_ring, dec_shm_ring },
	{ "SHM-CURSOR", WIRE_SHM_CURSOR, 0, enc_shm_cursor, dec_shm_cursor },
	{ "OK-DHELLO-REPLY", WIRE_OK, 0, enc_ok_dhello_reply,
	    dec_ok_dhello_reply },
	{ "REQUEST", WIRE_DATA, 1, enc_request, dec_request },
	{ "REPLY", WIRE_REPLY, 1, enc_reply, dec_reply },
	{ "ERROR-NO-REPLY", WIRE_ERROR, 0, enc_error_no_reply,
	    dec_error_no_reply },
	{ "ERROR-REQUEST-FAILED", WIRE_ERROR, 0, enc_error_request_failed,
	    dec_error_request_failed },
	{ "ERROR-UNAVAILABLE", WIRE_ERROR, 0, enc_error_unavailable,
	    dec_error_unavailable },
};
#define NCASES	(sizeof(cases) / sizeof(cases[0]))

static void
encode_case(const struct wcase *c, struct wbuf *b, struct wire_header *h)
{
	wbuf_init(b, 1 << 20);
	ck_assert_msg(c->enc(b) == 0, "%s: encode failed", c->name);
	ck_assert_int_ge(b->len, SIPC_HEADER_SIZE);
	ck_assert_int_eq(wire_header_decode(b->data, UINT32_MAX, h), 0);
	ck_assert_int_eq(h->type, c->type);
	ck_assert_int_eq(h->version, 1);
	ck_assert_int_eq(h->len, b->len - SIPC_HEADER_SIZE);
}

START_TEST(test_roundtrip)
{
	const struct wcase *c = &cases[_i];
	struct wire_header h;
	struct wbuf b;

	encode_case(c, &b, &h);
	ck_assert_msg(c->dec(b.data + SIPC_HEADER_SIZE, h.len) == 0,
	    "%s: decode or field mismatch", c->name);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_truncations)
{
	const struct wcase *c = &cases[_i];
	struct wire_header h;
	struct wbuf b;
	uint8_t *copy;
	size_t cut, min = !c->body_is_rest ? 0 :
	    c->type == WIRE_REPLY ? 0 : SIPC_DATA_PREFIX;

	encode_case(c, &b, &h);
	/* Every shorter payload fails (copied so ASan sees overreads). */
	for (cut = 0; cut < h.len; cut++) {
		if (c->body_is_rest && cut >= min)
			break;
		copy = malloc(cut ? cut : 1);
		memcpy(copy, b.data + SIPC_HEADER_SIZE, cut);
		ck_assert_msg(c->dec(copy, cut) != 0,
		    "%s: accepted a payload cut to %zu of %u bytes",
		    c->name, cut, h.len);
		free(copy);
	}
	/* One byte more is rejected too, except where it is the body. */
	if (!c->body_is_rest) {
		copy = malloc(h.len + 1);
		memcpy(copy, b.data + SIPC_HEADER_SIZE, h.len);
		copy[h.len] = 0;
		ck_assert_msg(c->dec(copy, h.len + 1) == WIRE_ETRAIL,
		    "%s: accepted a trailing byte", c->name);
		free(copy);
	}
	wbuf_free(&b);
}
END_TEST

/* ---- Header -------------------------------------------------------------- */

START_TEST(test_header)
{
	struct wire_header h = { 1, WIRE_PING, 0, 77, 8 }, d;
	uint8_t buf[SIPC_HEADER_SIZE];

	wire_header_encode(buf, &h);
	ck_assert_int_eq(wire_header_decode(buf, 8, &d), 0);
	ck_assert_int_eq(d.reqid, 77);
	ck_assert_int_eq(d.len, 8);
	/* Length at the limit passes, one past it does not. */
	ck_assert_int_eq(wire_header_decode(buf, 7, &d), WIRE_ETOOBIG);
	h.len = 0xffffffffu;
	wire_header_encode(buf, &h);
	ck_assert_int_eq(wire_header_decode(buf, SIPC_MAX_BROKER_FRAME, &d),
	    WIRE_ETOOBIG);
	/* Bad magic. */
	wire_header_encode(buf, &h);
	buf[0] = 'G';
	ck_assert_int_eq(wire_header_decode(buf, UINT32_MAX, &d),
	    WIRE_EMAGIC);
	wire_header_encode(buf, &h);
	buf[1] = 'E';
	ck_assert_int_eq(wire_header_decode(buf, UINT32_MAX, &d),
	    WIRE_EMAGIC);
	/* Reserved field and unknown flags. */
	h.len = 0;
	wire_header_encode(buf, &h);
	buf[7] = 1;
	ck_assert_int_eq(wire_header_decode(buf, 100, &d), WIRE_ERESERVED);
	h.flags = 0x0002;
	wire_header_encode(buf, &h);
	ck_assert_int_eq(wire_header_decode(buf, 100, &d), WIRE_ERESERVED);
	h.flags = WIRE_F_COMPRESSED;
	wire_header_encode(buf, &h);
	ck_assert_int_eq(wire_header_decode(buf, 100, &d), 0);
	ck_assert_int_eq(d.flags, WIRE_F_COMPRESSED);
	/* The version is left to the session: any value decodes. */
	h.version = 9;
	wire_header_encode(buf, &h);
	ck_assert_int_eq(wire_header_decode(buf, 100, &d), 0);
	ck_assert_int_eq(d.version, 9);
}
END_TEST

START_TEST(test_hello_versions)
{
	struct wire_hello m = { 2, 1, 0, 0, S(""), S(""), 1 }, d;
	struct wbuf b;

	/* min > max and min 0 are malformed. */
	wbuf_init(&b, 4096);
	ck_assert_int_eq(wire_enc_hello(&b, 1, &m), 0);
	ck_assert_int_eq(wire_dec_hello(b.data + 16, b.len - 16, &d),
	    WIRE_EVALUE);
	wbuf_reset(&b);
	m.min_version = 0;
	ck_assert_int_eq(wire_enc_hello(&b, 1, &m), 0);
	ck_assert_int_eq(wire_dec_hello(b.data + 16, b.len - 16, &d),
	    WIRE_EVALUE);
	/* A future range decodes; negotiation is the broker's job. */
	wbuf_reset(&b);
	m.min_version = 2;
	m.max_version = 5;
	ck_assert_int_eq(wire_enc_hello(&b, 1, &m), 0);
	ck_assert_int_eq(wire_dec_hello(b.data + 16, b.len - 16, &d), 0);
	ck_assert_int_eq(d.max_version, 5);
	wbuf_free(&b);
}
END_TEST

/* ---- Strings, handles, endpoints ----------------------------------------- */

START_TEST(test_utf8)
{
	static const struct {
		const char	*s;
		int		 ok;
	} t[] = {
		{ "plain", 1 },
		{ "caf\xc3\xa9", 1 },			/* é */
		{ "\xe2\x82\xac", 1 },			/* € */
		{ "\xf0\x9f\x98\x80", 1 },		/* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 1 },		/* U+10FFFF */
		{ "\xc3", 0 },				/* cut */
		{ "\xe2\x82", 0 },			/* cut */
		{ "\xc0\xaf", 0 },			/* overlong '/' */
		{ "\xe0\x80\xaf", 0 },			/* overlong */
		{ "\xf0\x80\x80\xaf", 0 },		/* overlong */
		{ "\xed\xa0\x80", 0 },			/* surrogate */
		{ "\xf4\x90\x80\x80", 0 },		/* > U+10FFFF */
		{ "\xff", 0 },
		{ "\x80", 0 },				/* lone continuation */
		{ "a\xc3(", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(wire_utf8_valid(t[i].s, strlen(t[i].s)) ==
		    t[i].ok, "case %zu", i);
}
END_TEST

START_TEST(test_handles)
{
	char h[SIPC_HANDLE_MAX + 2];
	struct wire_str out;
	struct wbuf b;

	memset(h, 'x', sizeof(h));
	ck_assert(wire_handle_valid(h, SIPC_HANDLE_MAX));
	ck_assert(!wire_handle_valid(h, SIPC_HANDLE_MAX + 1));
	ck_assert(!wire_handle_valid(h, 0));
	ck_assert(wire_handle_valid("a/b c.d", 7));
	ck_assert(!wire_handle_valid("a\nb", 3));
	ck_assert(!wire_handle_valid("a\x7f", 2));
	ck_assert(!wire_handle_valid("a\0b", 3));
	ck_assert(!wire_handle_valid("a\xc2\x85", 3));		/* NEL, C1 */
	ck_assert(wire_handle_valid("a\xc2\xa0", 3));		/* NBSP */
	ck_assert(!wire_handle_valid("\xc3", 1));

	/* The encoder refuses what the decoder would refuse. */
	wbuf_init(&b, 4096);
	ck_assert_int_eq(wire_enc_handle(&b, WIRE_LOOKUP, 1, h,
	    SIPC_HANDLE_MAX + 1), WIRE_EVALUE);
	ck_assert_int_eq(b.len, 0);
	ck_assert_int_eq(wire_enc_handle(&b, WIRE_LOOKUP, 1, "", 0),
	    WIRE_EVALUE);
	ck_assert_int_eq(wire_enc_handle(&b, WIRE_LOOKUP, 1, h,
	    SIPC_HANDLE_MAX), 0);
	ck_assert_int_eq(wire_dec_handle(b.data + 16, b.len - 16, &out), 0);
	ck_assert_int_eq(out.len, SIPC_HANDLE_MAX);

	/* Decoder: a 256-byte handle built by hand is refused. */
	{
		uint8_t p[2 + SIPC_HANDLE_MAX + 1];

		p[0] = 0x01;
		p[1] = 0x00;
		memset(p + 2, 'x', SIPC_HANDLE_MAX + 1);
		ck_assert_int_eq(wire_dec_handle(p, sizeof(p), &out),
		    WIRE_EHANDLE);
		p[1] = 0x00;
		p[0] = 0x00;	/* length 0 */
		ck_assert_int_eq(wire_dec_handle(p, 2, &out), WIRE_EHANDLE);
		p[0] = 0;
		p[1] = 2;
		p[2] = 0xc3;
		p[3] = 0x28;	/* bad UTF-8 */
		ck_assert_int_eq(wire_dec_handle(p, 4, &out), WIRE_EHANDLE);
		p[2] = 'a';
		p[3] = '\t';
		ck_assert_int_eq(wire_dec_handle(p, 4, &out), WIRE_EHANDLE);
	}
	wbuf_free(&b);
}
END_TEST

START_TEST(test_endpoints)
{
	struct wire_register m, d;
	struct wbuf b;
	uint8_t *pl;
	size_t n;

	wbuf_init(&b, 4096);
	memset(&m, 0, sizeof(m));
	m.handle = S("h");
	m.instance = 1;
	m.ep = ep4(10, 0, 0, 1, 0);		/* port 0 */
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), WIRE_EVALUE);
	m.ep.family = 9;
	m.ep.port = 1;
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), WIRE_EVALUE);
	m.ep.family = WIRE_AF_UNIX;
	strcpy(m.ep.path, "relative");
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), WIRE_EVALUE);
	m.ep = ep4(10, 0, 0, 1, 65535);
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), 0);

	/* Patch the encoded bytes: port 0, then family 9. */
	pl = b.data + 16;
	n = b.len - 16;
	pl[n - 1] = 0;
	pl[n - 2] = 0;
	ck_assert_int_eq(wire_dec_register(pl, n, &d), WIRE_EENDPOINT);
	pl[n - 1] = 1;
	pl[n - 7] = 9;
	ck_assert_int_eq(wire_dec_register(pl, n, &d), WIRE_EENDPOINT);
	pl[n - 7] = WIRE_AF_INET;
	ck_assert_int_eq(wire_dec_register(pl, n, &d), 0);
	/* instance 0 is not a receiver. */
	memset(pl + 3, 0, 8);
	ck_assert_int_eq(wire_dec_register(pl, n, &d), WIRE_EVALUE);

	/* Unix paths: not UTF-8, or with a NUL that would cut "/a\0b" short
	 * to "/a", are refused by encoder and decoder (found by fuzzing). */
	m.instance = 1;
	m.ep.family = WIRE_AF_UNIX;
	memset(m.ep.path, 0, sizeof(m.ep.path));
	strcpy(m.ep.path, "/a\xc3\x28");
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), WIRE_EVALUE);
	strcpy(m.ep.path, "/aXb");
	wbuf_reset(&b);
	ck_assert_int_eq(wire_enc_register(&b, 1, &m), 0);
	pl = b.data + 16;
	n = b.len - 16;
	ck_assert_int_eq(wire_dec_register(pl, n, &d), 0);
	pl[n - 2] = 0;				/* "/a\0b" */
	ck_assert_int_eq(wire_dec_register(pl, n, &d), WIRE_EENDPOINT);
	pl[n - 2] = 0xc3;			/* "/a\xc3b": not UTF-8 */
	ck_assert_int_eq(wire_dec_register(pl, n, &d), WIRE_EENDPOINT);

	/* The smallest record, a one-byte path "/", is a valid answer. */
	{
		struct wire_record r = sample_record(), o;
		struct wire_seq seq;
		size_t at;

		r.ep.family = WIRE_AF_UNIX;
		memset(r.ep.path, 0, sizeof(r.ep.path));
		strcpy(r.ep.path, "/");
		r.host = S("");
		wbuf_reset(&b);
		at = wire_enc_ok_seq_begin(&b, 4, WIRE_LOOKUP);
		wire_put_record(&b, &r);
		ck_assert_int_eq(wire_enc_ok_seq_end(&b, at, 1), 0);
		ck_assert_int_eq(wire_dec_ok_records(b.data + 16, b.len - 16,
		    WIRE_LOOKUP, &seq), 0);
		ck_assert(wire_next_record(&seq, &o));
		ck_assert_str_eq(o.ep.path, "/");
	}
	wbuf_free(&b);
}
END_TEST

START_TEST(test_error_text_limit)
{
	char text[SIPC_ERROR_TEXT_MAX + 40];
	struct wire_error e;
	struct wbuf b;
	uint8_t *p;

	memset(text, 'e', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	wbuf_init(&b, 4096);
	/* The encoder cuts long texts to the limit. */
	ck_assert_int_eq(wire_enc_error(&b, 1, WIRE_ERR_INTERNAL, text), 0);
	ck_assert_int_eq(wire_dec_error(b.data + 16, b.len - 16, &e), 0);
	ck_assert_int_eq(e.text.len, SIPC_ERROR_TEXT_MAX);
	/* A hand-made one past the limit is refused. */
	p = calloc(1, 4 + SIPC_ERROR_TEXT_MAX + 1);
	p[1] = 1;
	p[2] = (SIPC_ERROR_TEXT_MAX + 1) >> 8;
	p[3] = (SIPC_ERROR_TEXT_MAX + 1) & 0xff;
	memset(p + 4, 'e', SIPC_ERROR_TEXT_MAX + 1);
	ck_assert_int_eq(wire_dec_error(p, 4 + SIPC_ERROR_TEXT_MAX + 1, &e),
	    WIRE_EVALUE);
	free(p);
	/* Code 0 is not an error. */
	{
		uint8_t z[] = { 0, 0, 0, 1, 'x' };

		ck_assert_int_eq(wire_dec_error(z, sizeof(z), &e),
		    WIRE_EVALUE);
		z[1] = 1;
		ck_assert_int_eq(wire_dec_error(z, sizeof(z), &e), 0);
	}
	wbuf_free(&b);
}
END_TEST

START_TEST(test_counts_bounded)
{
	/* An OK(LOOKUP) claiming 4 billion records in 10 bytes fails at
	 * once instead of looping. */
	uint8_t p[] = { WIRE_LOOKUP, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0 };
	uint8_t q[] = { WIRE_STATS, 0, 0, 1, 1 };	/* 257 counters */
	uint8_t r[] = { WIRE_LIST, 2, 0, 0, 0, 0 };	/* more = 2 */
	struct wire_list_ok lo;
	struct wire_seq seq;

	ck_assert_int_eq(wire_dec_ok_records(p, sizeof(p), WIRE_LOOKUP, &seq),
	    WIRE_ETRUNC);
	ck_assert_int_eq(wire_dec_ok_records(p, sizeof(p), WIRE_WATCH, &seq),
	    WIRE_ETYPE);
	ck_assert_int_eq(wire_dec_ok_stats(q, sizeof(q), &seq), WIRE_EVALUE);
	ck_assert_int_eq(wire_dec_ok_list(r, sizeof(r), &lo), WIRE_EVALUE);
}
END_TEST

START_TEST(test_wbuf_limit)
{
	struct wbuf b;
	struct wire_record r = sample_record();
	size_t s;
	int i, rc;

	/* A buffer of 200 bytes takes one record answer, not ten. */
	wbuf_init(&b, 200);
	s = wire_enc_ok_seq_begin(&b, 1, WIRE_LOOKUP);
	for (i = 0; i < 10; i++)
		wire_put_record(&b, &r);
	rc = wire_enc_ok_seq_end(&b, s, 10);
	ck_assert_int_eq(rc, WIRE_ENOSPACE);
	ck_assert_int_eq(b.len, 0);	/* partial frame dropped */
	ck_assert_int_eq(b.err, 0);	/* usable again */
	ck_assert_int_eq(wire_enc_u64(&b, WIRE_PING, 1, 1), 0);
	ck_assert_int_eq(b.len, 24);
	wbuf_free(&b);
}
END_TEST

START_TEST(test_addr_parse)
{
	char host[64];
	const char *why;
	uint16_t port = 4455;

	ck_assert_int_eq(addr_parse("127.0.0.1:80", host, sizeof(host), &port,
	    0, &why), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(port, 80);
	ck_assert_int_eq(addr_parse("[::1]:81", host, sizeof(host), &port, 0,
	    &why), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(port, 81);
	port = 4455;
	ck_assert_int_eq(addr_parse("example.org", host, sizeof(host), &port,
	    ADDR_PORT_OPTIONAL, &why), 0);
	ck_assert_int_eq(port, 4455);
	ck_assert_int_eq(addr_parse("::1", host, sizeof(host), &port,
	    ADDR_PORT_OPTIONAL, &why), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(addr_parse("h:0", host, sizeof(host), &port, 0,
	    &why), -1);
	ck_assert_int_eq(addr_parse("h:0", host, sizeof(host), &port,
	    ADDR_ALLOW_PORT0, &why), 0);
	ck_assert_int_eq(addr_parse("h:65536", host, sizeof(host), &port, 0,
	    &why), -1);
	ck_assert_int_eq(addr_parse("h:x", host, sizeof(host), &port, 0,
	    &why), -1);
	ck_assert_int_eq(addr_parse(":80", host, sizeof(host), &port, 0,
	    &why), -1);
	ck_assert_int_eq(addr_parse("[::1", host, sizeof(host), &port, 0,
	    &why), -1);
	ck_assert_int_eq(addr_parse("h", host, sizeof(host), &port, 0, &why),
	    -1);
}
END_TEST

/* ---- PROTOCOL.md examples ------------------------------------------------ */

/*
 * PROTOCOL.md marks each example with a line "<!-- example NAME -->"
 * followed by an indented block of hex bytes.  Each must equal what the
 * encoder makes for the case of that name.
 */
static size_t
doc_example(const char *doc, const char *name, uint8_t *out, size_t cap)
{
	char marker[80];
	const char *p, *end;
	size_t n = 0;
	unsigned v;
	int used;

	snprintf(marker, sizeof(marker), "<!-- example %s -->", name);
	if ((p = strstr(doc, marker)) == NULL)
		return 0;
	p += strlen(marker);
	/* The block ends at the first line that is not hex. */
	if ((p = strstr(p, "```\n")) == NULL)
		return 0;
	p += 4;
	if ((end = strstr(p, "```")) == NULL)
		return 0;
	while (p < end) {
		if (*p == ' ' || *p == '\n') {
			p++;
			continue;
		}
		if (sscanf(p, "%2x%n", &v, &used) != 1 || used != 2)
			return 0;
		if (n < cap)
			out[n++] = (uint8_t)v;
		p += 2;
	}
	return n;
}

/* ---- The framer ------------------------------------------------------------ */

/* A frame of type with flags, version and payload p[0..len) at buf. */
static size_t
mkframe(uint8_t *buf, uint8_t version, uint8_t type, uint16_t flags,
    const void *p, size_t len)
{
	struct wire_header h = { version, type, flags, 7, (uint32_t)len };

	wire_header_encode(buf, &h);
	if (len)
		memcpy(buf + SIPC_HEADER_SIZE, p, len);
	return SIPC_HEADER_SIZE + len;
}

/* frame_next over buf[0..len): its result, and *code on an error. */
static int
next(struct framer *f, const uint8_t *buf, size_t len, struct frame *fr,
    size_t *need, uint16_t *code)
{
	struct frame_err err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = frame_next(f, buf, len, fr, need, &err);
	if (rc == -1) {
		ck_assert_int_ne(err.code, 0);
		ck_assert_int_ne(err.why[0], '\0');
		*code = err.code;
	}
	return rc;
}

/* Whole, partial, over the limit, bad headers, versions. */
START_TEST(test_framer_bounds)
{
	static uint8_t buf[8192];
	struct framer f;
	struct frame fr;
	size_t n, need;
	uint16_t code = 0;
	int i;

	frame_init(&f, SIPC_HELLO_FRAME_MAX, 0);
	ck_assert_int_eq(next(&f, buf, 0, &fr, &need, &code), 0);
	ck_assert_uint_eq(need, SIPC_HEADER_SIZE);
	n = mkframe(buf, 1, WIRE_PING, 0, "\1\2\3\4\5\6\7\10", 8);
	/* Every prefix is incomplete, asking for the whole frame once the
	 * header is there. */
	for (i = 0; i < (int)n; i++) {
		ck_assert_int_eq(next(&f, buf, (size_t)i, &fr, &need, &code),
		    0);
		ck_assert_uint_eq(need, i < SIPC_HEADER_SIZE ?
		    SIPC_HEADER_SIZE : n);
	}
	ck_assert_int_eq(next(&f, buf, n + 5, &fr, &need, &code), 1);
	ck_assert_uint_eq(fr.size, n);
	ck_assert_uint_eq(fr.h.len, 8);
	ck_assert_uint_eq(fr.wire_len, 8);
	ck_assert_ptr_eq(fr.payload, buf + SIPC_HEADER_SIZE);
	/* At the limit, and one byte over: refused from the header alone. */
	n = mkframe(buf, 1, WIRE_HELLO, 0, NULL, 0);
	wire_be32(buf + 12, SIPC_HELLO_FRAME_MAX);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 0);
	ck_assert_uint_eq(need, SIPC_HEADER_SIZE + SIPC_HELLO_FRAME_MAX);
	wire_be32(buf + 12, SIPC_HELLO_FRAME_MAX + 1);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_TOO_LARGE);
	/* Bad magic (a TLS ClientHello too), reserved bits, unknown flags. */
	memcpy(buf, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\0\0\0\0\0",
	    16);
	ck_assert_int_eq(next(&f, buf, 16, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	n = mkframe(buf, 1, WIRE_PING, 0, NULL, 0);
	buf[7] = 1;
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	n = mkframe(buf, 1, WIRE_PING, 0x8000, NULL, 0);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	/* Any version before the handshake, only the chosen one after. */
	n = mkframe(buf, 9, WIRE_HELLO, 0, NULL, 0);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 1);
	frame_open(&f, 1, 0, 1 << 20, 1 << 20);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	n = mkframe(buf, 1, WIRE_LOOKUP, 0, NULL, 0);
	wire_be32(buf + 12, 1 << 20);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 0);
	ck_assert_uint_eq(need, SIPC_HEADER_SIZE + (1 << 20));
	frame_free(&f);
}
END_TEST

/* Compressed payloads: negotiated or not, whole or DATA bodies, bounded. */
START_TEST(test_framer_zlib)
{
	static uint8_t buf[70000], plain[70000];
	struct framer f;
	struct frame fr;
	uint8_t *z, data[8 + 4096];
	size_t n, zlen, need;
	uint16_t code = 0;

	memset(plain, 'q', sizeof(plain));
	ck_assert_int_eq(zf_deflate(plain, 5000, &z, &zlen), 0);
	/* A broker session: not before it is negotiated. */
	frame_init(&f, SIPC_HELLO_FRAME_MAX, 0);
	n = mkframe(buf, 1, WIRE_OK, WIRE_F_COMPRESSED, z, zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	frame_open(&f, 1, 1, 1 << 20, 5000);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 1);
	ck_assert_uint_eq(fr.h.len, 5000);
	ck_assert_uint_eq(fr.wire_len, zlen);
	ck_assert_uint_eq(fr.size, n);
	ck_assert_int_eq(memcmp(fr.payload, plain, 5000), 0);
	/* One byte of limit less: refused, as a bomb would be. */
	frame_open(&f, 1, 1, 1 << 20, 4999);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_COMPRESSION);
	/* Corrupt: a byte of the stream flipped. */
	frame_open(&f, 1, 1, 1 << 20, 1 << 20);
	buf[SIPC_HEADER_SIZE + zlen / 2] ^= 0x55;
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_COMPRESSION);
	frame_free(&f);

	/* A data connection: only DATA, whose sequence number stays. */
	frame_init(&f, SIPC_HELLO_FRAME_MAX, 1);
	frame_open(&f, 1, 1, SIPC_DATA_PREFIX + 65536, 65536);
	wire_be64(data, 42);
	memcpy(data + 8, z, zlen);
	n = mkframe(buf, 1, WIRE_DATA, WIRE_F_COMPRESSED, data, 8 + zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 1);
	ck_assert_uint_eq(fr.h.len, 8 + 5000);
	ck_assert_uint_eq(wire_ld64(fr.payload), 42);
	ck_assert_int_eq(memcmp(fr.payload + 8, plain, 5000), 0);
	n = mkframe(buf, 1, WIRE_PING, WIRE_F_COMPRESSED, z, zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	n = mkframe(buf, 1, WIRE_DATA, WIRE_F_COMPRESSED, data, 5);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_MESSAGE);
	free(z);
	/* A body of zeros that inflates past the limit. */
	memset(plain, 0, sizeof(plain));
	ck_assert_int_eq(zf_deflate(plain, 65537, &z, &zlen), 0);
	memcpy(data + 8, z, zlen);
	n = mkframe(buf, 1, WIRE_DATA, WIRE_F_COMPRESSED, data, 8 + zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_COMPRESSION);
	free(z);
	frame_free(&f);
}
END_TEST

/*
 * REPLY on a data connection (the requester's framer): with ZLIB
 * negotiated its whole payload is one zlib stream, bounded like any
 * payload; without ZLIB, COMPRESSED on it is a framing error.
 */
/* The receiver's reader: a request (DATA with a request id) only where
 * REPLY was granted; UNEXPECTED elsewhere (PROTOCOL.md 6.6). */
START_TEST(test_reader_request)
{
	struct wire_dhello m;
	struct dp_reader r;
	struct dp_event ev;
	struct wbuf w;
	char why[128];
	uint16_t code = 0;
	size_t need, off;
	int n, granted;

	for (granted = 0; granted < 2; granted++) {
		wbuf_init(&w, 4096);
		memset(&m, 0, sizeof(m));
		m.min_version = m.max_version = 1;
		m.features = WIRE_FEAT_REPLY;
		m.sender_id = 1;
		m.first_seq = 1;
		m.heartbeat_ms = 5000;
		m.handle.ptr = "h";
		m.handle.len = 1;
		ck_assert_int_eq(wire_enc_dhello(&w, 1, &m), 0);
		off = w.len;
		ck_assert_int_eq(enc_request(&w), 0);	/* reqid 7, "ping" */
		dp_reader_init(&r, 1024);
		n = dp_read(&r, w.data, off, &ev, &need, &code, why,
		    sizeof(why));
		ck_assert_int_eq(n, (int)off);
		ck_assert_int_eq(ev.type, DP_DHELLO);
		dp_reader_open(&r, 0);
		r.reply = granted;
		n = dp_read(&r, w.data + off, w.len - off, &ev, &need, &code,
		    why, sizeof(why));
		if (granted) {
			ck_assert_int_eq(n, (int)(w.len - off));
			ck_assert_int_eq(ev.type, DP_DATA);
			ck_assert_uint_eq(ev.reqid, 7);
			ck_assert_uint_eq(ev.len, 4);
		} else {
			ck_assert_int_eq(n, -1);
			ck_assert_uint_eq(code, WIRE_ERR_UNEXPECTED);
		}
		dp_reader_free(&r);
		wbuf_free(&w);
	}
}
END_TEST

START_TEST(test_framer_reply)
{
	static uint8_t buf[70000], plain[70000];
	struct framer f;
	struct frame fr;
	uint8_t *z;
	size_t n, zlen, need;
	uint16_t code = 0;

	memset(plain, 'r', sizeof(plain));
	ck_assert_int_eq(zf_deflate(plain, 5000, &z, &zlen), 0);
	n = mkframe(buf, 1, WIRE_REPLY, WIRE_F_COMPRESSED, z, zlen);
	/* Negotiated: inflated whole, no sequence number kept aside. */
	frame_init(&f, SIPC_HELLO_FRAME_MAX, 1);
	frame_open(&f, 1, 1, 65536, 65536);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 1);
	ck_assert_uint_eq(fr.h.type, WIRE_REPLY);
	ck_assert_uint_eq(fr.h.reqid, 7);
	ck_assert_uint_eq(fr.h.len, 5000);
	ck_assert_uint_eq(fr.wire_len, zlen);
	ck_assert_uint_eq(fr.size, n);
	ck_assert_int_eq(memcmp(fr.payload, plain, 5000), 0);
	/* Past the requester's limit once inflated: COMPRESSION. */
	frame_open(&f, 1, 1, 65536, 4999);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_COMPRESSION);
	/* An uncompressed REPLY passes as it is. */
	frame_open(&f, 1, 1, 65536, 65536);
	n = mkframe(buf, 1, WIRE_REPLY, 0, "pong", 4);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), 1);
	ck_assert_uint_eq(fr.h.len, 4);
	ck_assert_ptr_eq(fr.payload, buf + SIPC_HEADER_SIZE);
	frame_free(&f);

	/* ZLIB not negotiated, before the handshake or after it. */
	n = mkframe(buf, 1, WIRE_REPLY, WIRE_F_COMPRESSED, z, zlen);
	frame_init(&f, 65536, 1);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	frame_open(&f, 1, 0, 65536, 65536);
	code = 0;
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	frame_free(&f);
	/* Nor other frames than DATA and REPLY on a data connection. */
	frame_init(&f, 65536, 1);
	frame_open(&f, 1, 1, 65536, 65536);
	n = mkframe(buf, 1, WIRE_ERROR, WIRE_F_COMPRESSED, z, zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	n = mkframe(buf, 1, WIRE_ACK, WIRE_F_COMPRESSED, z, zlen);
	ck_assert_int_eq(next(&f, buf, n, &fr, &need, &code), -1);
	ck_assert_int_eq(code, WIRE_ERR_BAD_FRAME);
	frame_free(&f);
	free(z);
}
END_TEST

START_TEST(test_doc_examples)
{
	const char *path = getenv("SIPC_PROTOCOL_MD");
	char *doc;
	uint8_t ex[4096];
	struct wire_header h;
	struct wbuf b;
	size_t i, n;
	long len;
	FILE *fp;

	fp = fopen(path ? path : "proto/PROTOCOL.md", "r");
	ck_assert_msg(fp != NULL, "cannot open PROTOCOL.md");
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	doc = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(fread(doc, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	for (i = 0; i < NCASES; i++) {
		encode_case(&cases[i], &b, &h);
		n = doc_example(doc, cases[i].name, ex, sizeof(ex));
		ck_assert_msg(n > 0, "PROTOCOL.md has no example %s",
		    cases[i].name);
		ck_assert_msg(n == b.len && memcmp(ex, b.data, n) == 0,
		    "PROTOCOL.md example %s differs from the encoder",
		    cases[i].name);
		wbuf_free(&b);
	}
	free(doc);
}
END_TEST

/* Prints every example, for writing PROTOCOL.md: test_wire --examples. */
static void
print_examples(void)
{
	struct wire_header h;
	struct wbuf b;
	size_t i, j;

	for (i = 0; i < NCASES; i++) {
		wbuf_init(&b, 1 << 20);
		cases[i].enc(&b);
		(void)h;
		printf("<!-- example %s -->\n```\n", cases[i].name);
		for (j = 0; j < b.len; j++)
			printf("%02x%s", b.data[j],
			    (j + 1) % 16 == 0 || j + 1 == b.len ? "\n" : " ");
		printf("```\n\n");
		wbuf_free(&b);
	}
}

int
main(int argc, char **argv)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("codec");
	SRunner *sr;
	int failed;

	if (argc > 1 && strcmp(argv[1], "--examples") == 0) {
		print_examples();
		return 0;
	}
	tcase_add_loop_test(tc, test_roundtrip, 0, NCASES);
	tcase_add_loop_test(tc, test_truncations, 0, NCASES);
	tcase_add_test(tc, test_header);
	tcase_add_test(tc, test_hello_versions);
	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_handles);
	tcase_add_test(tc, test_endpoints);
	tcase_add_test(tc, test_error_text_limit);
	tcase_add_test(tc, test_counts_bounded);
	tcase_add_test(tc, test_wbuf_limit);
	tcase_add_test(tc, test_addr_parse);
	tcase_add_test(tc, test_framer_bounds);
	tcase_add_test(tc, test_framer_zlib);
	tcase_add_test(tc, test_framer_reply);
	tcase_add_test(tc, test_reader_request);
	tcase_add_test(tc, test_doc_examples);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
