/*
 * gen_corpus.c - writes the seed corpus of the fuzz targets, so that it can
 * be made again and reviewed: "make fuzz-corpus" runs it into
 * tests/fuzz/corpus/.  Deterministic: the same files every time.
 *
 *   gen_corpus DIR      writes DIR/fuzz_frame/..., DIR/fuzz_broker/...
 *
 * Seeds are valid frames of every message type (the values of
 * tests/unit/test_wire.c and of the hex examples in proto/PROTOCOL.md),
 * and truncated, padded and corrupted variants; for the reader and zlib,
 * whole data connections, compressed bodies and zlib bombs.  Not a
 * target, and not part of the tests.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "../../proto/zframe.h"
#include "fuzz.h"

#define S(lit)	((struct wire_str){ lit, sizeof(lit) - 1 })

static const char *outdir;
static int nfiles;

/* ---- Files ----------------------------------------------------------------- */

static void
mkdir_p(const char *path)
{
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* DIR/target/name := prefix (plen bytes) then p[0..len). */
static void
emit2(const char *target, const char *name, const void *prefix, size_t plen,
    const void *p, size_t len)
{
	char path[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir_p(path);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	if ((fp = fopen(path, "wb")) == NULL ||
	    (plen && fwrite(prefix, 1, plen, fp) != plen) ||
	    (len && fwrite(p, 1, len, fp) != len) || fclose(fp) != 0) {
		fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	nfiles++;
}

static void
emit(const char *target, const char *name, const void *p, size_t len)
{
	emit2(target, name, NULL, 0, p, len);
}

static void
check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "gen_corpus: encoding %s: %s\n", what,
		    wire_strerror(rc));
		exit(1);
	}
}

/* ---- The messages ---------------------------------------------------------- */

static struct wire_endpoint
ep4(void)
{
	struct wire_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.family = WIRE_AF_INET;
	memcpy(ep.addr, "\x7f\x00\x00\x01", 4);
	ep.port = 40000;
	return ep;
}

static struct wire_endpoint
ep6(void)
{
	struct wire_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.family = WIRE_AF_INET6;
	ep.addr[15] = 1;
	ep.port = 40001;
	return ep;
}

static struct wire_endpoint
epunix(const char *path)
{
	struct wire_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.family = WIRE_AF_UNIX;
	snprintf(ep.path, sizeof(ep.path), "%s", path);
	return ep;
}

static struct wire_record
record(struct wire_endpoint ep)
{
	struct wire_record r;

	memset(&r, 0, sizeof(r));
	r.id = 0x100000001ULL;
	r.instance = 0x0102030405060708ULL;
	r.ep = ep;
	r.host = S("box");
	r.pid = 4242;
	r.registered_ms = 1763750000000ULL;
	return r;
}

struct msg {
	const char	*name;
	int		 dec;		/* enum fz_dec of the payload */
	uint8_t		*frame;		/* header and payload */
	size_t		 len;
};

#define MAXMSG	32
static struct msg msgs[MAXMSG];
static int nmsgs;

/* Takes the one frame in w as message name. */
static void
add(const char *name, int dec, struct wbuf *w, int rc)
{
	check(rc, name);
	if (nmsgs == MAXMSG) {
		fprintf(stderr, "gen_corpus: raise MAXMSG\n");
		exit(1);
	}
	msgs[nmsgs].name = name;
	msgs[nmsgs].dec = dec;
	msgs[nmsgs].frame = malloc(w->len);
	if (msgs[nmsgs].frame == NULL)
		exit(1);
	memcpy(msgs[nmsgs].frame, w->data, w->len);
	msgs[nmsgs].len = w->len;
	nmsgs++;
	wbuf_reset(w);
}

static void
make_messages(void)
{
	struct wire_hello hello = { 1, 1, WIRE_FEAT_ZLIB, 5000,
	    S("sipc/0.1.0"), S("box"), 4242 };
	struct wire_hello_ok hok = { 1, 0, 5000, 7, 1048576,
	    S("sipc-epmd/0.1.0") };
	struct wire_register reg = { S("chat"), 0x0102030405060708ULL,
	    { 0 } };
	struct wire_list list = { S("chat"), 100 };
	struct wire_join join;
	struct wire_leave leave = { S("chat"), 0x100000001ULL,
	    WIRE_LEAVE_CLOSED };
	struct wire_dhello dh = { 1, 1, WIRE_FEAT_ZLIB, 0x1111111111111111ULL,
	    0x0102030405060708ULL, 1, 5000, 2097152, S("chat") };
	struct wire_dhello_ok dok = { 1, 0, 0x0102030405060708ULL, 0,
	    67108864 };
	struct wire_record r;
	struct wbuf w;
	size_t s;

	wbuf_init(&w, 1 << 20);
	add("hello", FZ_DEC_HELLO, &w, wire_enc_hello(&w, 1, &hello));
	add("ok-hello", FZ_DEC_OK, &w, wire_enc_ok_hello(&w, 1, &hok));
	reg.ep = ep4();
	add("register", FZ_DEC_REGISTER, &w, wire_enc_register(&w, 2, &reg));
	reg.ep = ep6();
	add("register-ipv6", FZ_DEC_REGISTER, &w,
	    wire_enc_register(&w, 3, &reg));
	reg.ep = epunix("/run/sipc/r1");
	add("register-unix", FZ_DEC_REGISTER, &w,
	    wire_enc_register(&w, 3, &reg));
	add("ok-register", FZ_DEC_OK, &w,
	    wire_enc_ok_register(&w, 2, 0x100000001ULL));
	add("unregister", FZ_DEC_U64, &w,
	    wire_enc_u64(&w, WIRE_UNREGISTER, 3, 0x100000001ULL));
	add("ok-unregister", FZ_DEC_OK, &w,
	    wire_enc_ok_empty(&w, 3, WIRE_UNREGISTER));
	add("lookup", FZ_DEC_HANDLE, &w,
	    wire_enc_handle(&w, WIRE_LOOKUP, 4, "chat", 4));
	/* Records of every family, the shortest Unix path included. */
	s = wire_enc_ok_seq_begin(&w, 4, WIRE_LOOKUP);
	r = record(ep4());
	wire_put_record(&w, &r);
	r = record(ep6());
	wire_put_record(&w, &r);
	r = record(epunix("/run/sipc/r1"));
	wire_put_record(&w, &r);
	r = record(epunix("/"));
	r.host = S("");
	wire_put_record(&w, &r);
	add("ok-lookup", FZ_DEC_OK, &w, wire_enc_ok_seq_end(&w, s, 4));
	add("watch", FZ_DEC_HANDLE, &w,
	    wire_enc_handle(&w, WIRE_WATCH, 5, "chat", 4));
	s = wire_enc_ok_seq_begin(&w, 5, WIRE_WATCH);
	r = record(ep4());
	wire_put_record(&w, &r);
	add("ok-watch", FZ_DEC_OK, &w, wire_enc_ok_seq_end(&w, s, 1));
	add("unwatch", FZ_DEC_HANDLE, &w,
	    wire_enc_handle(&w, WIRE_UNWATCH, 6, "chat", 4));
	add("ok-unwatch", FZ_DEC_OK, &w,
	    wire_enc_ok_empty(&w, 6, WIRE_UNWATCH));
	add("list", FZ_DEC_LIST, &w, wire_enc_list(&w, 7, &list));
	s = wire_enc_ok_list_begin(&w, 7);
	wire_put_list_entry(&w, "chat", 4, 3);
	wire_put_list_entry(&w, "jobs", 4, 1);
	add("ok-list", FZ_DEC_OK, &w, wire_enc_ok_list_end(&w, s, 2, 1));
	add("stats", FZ_DEC_EMPTY, &w, wire_enc_empty(&w, WIRE_STATS, 8));
	s = wire_enc_ok_seq_begin(&w, 8, WIRE_STATS);
	wire_put_stat(&w, "sessions", 2);
	wire_put_stat(&w, "uptime_s", 3600);
	add("ok-stats", FZ_DEC_OK, &w, wire_enc_ok_seq_end(&w, s, 2));
	add("ping", FZ_DEC_U64, &w,
	    wire_enc_u64(&w, WIRE_PING, 9, 0x0102030405060708ULL));
	add("pong", FZ_DEC_U64, &w,
	    wire_enc_u64(&w, WIRE_PONG, 9, 0x0102030405060708ULL));
	join.handle = S("chat");
	join.rec = record(ep4());
	add("join", FZ_DEC_JOIN, &w, wire_enc_join(&w, &join));
	join.rec = record(epunix("/tmp/sipc-1000/0123456789abcdef"));
	add("join-unix", FZ_DEC_JOIN, &w, wire_enc_join(&w, &join));
	add("leave", FZ_DEC_LEAVE, &w, wire_enc_leave(&w, &leave));
	add("error", FZ_DEC_ERROR, &w, wire_enc_error(&w, 2,
	    WIRE_ERR_BAD_HANDLE, "invalid handle"));
	add("dhello", FZ_DEC_DHELLO, &w, wire_enc_dhello(&w, 1, &dh));
	add("ok-dhello", FZ_DEC_OK, &w, wire_enc_ok_dhello(&w, 1, &dok));
	s = wire_frame_begin(&w, WIRE_DATA, 0, 0);
	wire_put_u64(&w, 1);
	wire_put_bytes(&w, "Foo1", 4);
	add("data", FZ_DEC_DATA, &w, wire_frame_end(&w, s));
	add("ack", FZ_DEC_U64, &w,
	    wire_enc_u64(&w, WIRE_ACK, 0, 0x100000001ULL));
	s = wire_frame_begin(&w, WIRE_REPLY, 0, 5);
	wire_put_bytes(&w, "re", 2);
	add("reply", -1, &w, wire_frame_end(&w, s));
	wbuf_free(&w);
}

static const struct msg *
msg(const char *name)
{
	int i;

	for (i = 0; i < nmsgs; i++)
		if (strcmp(msgs[i].name, name) == 0)
			return &msgs[i];
	fprintf(stderr, "gen_corpus: no message %s\n", name);
	exit(1);
}

/* ---- Helpers for frames ---------------------------------------------------- */

struct buf {
	uint8_t	*p;
	size_t	 len;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if ((b->p = realloc(b->p, b->len + n)) == NULL)
		exit(1);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_add_msg(struct buf *b, const char *name)
{
	const struct msg *m = msg(name);

	buf_add(b, m->frame, m->len);
}

/* A frame of type with flags and the payload p[0..len). */
static void
buf_add_frame(struct buf *b, uint8_t type, uint16_t flags, uint32_t reqid,
    const void *p, size_t len)
{
	struct wire_header h = { SIPC_PROTO_VERSION_MAX, type, flags, reqid,
	    (uint32_t)len };
	uint8_t hdr[SIPC_HEADER_SIZE];

	wire_header_encode(hdr, &h);
	buf_add(b, hdr, sizeof(hdr));
	if (len)
		buf_add(b, p, len);
}

static uint8_t *
deflated(const void *p, size_t len, size_t *zlen)
{
	uint8_t *z;

	if (zf_deflate(p, len, &z, zlen) != 0) {
		fprintf(stderr, "gen_corpus: data does not compress\n");
		exit(1);
	}
	return z;
}

/* A DATA payload (seq and body), the body compressed when z. */
static void
buf_add_data(struct buf *b, uint64_t seq, const void *body, size_t len,
    int z)
{
	uint8_t *zb = NULL, *pl;
	size_t zlen = 0, plen;

	if (z)
		zb = deflated(body, len, &zlen);
	plen = SIPC_DATA_PREFIX + (z ? zlen : len);
	if ((pl = malloc(plen)) == NULL)
		exit(1);
	wire_be64(pl, seq);
	memcpy(pl + SIPC_DATA_PREFIX, z ? zb : body, z ? zlen : len);
	buf_add_frame(b, WIRE_DATA, z ? WIRE_F_COMPRESSED : 0, 0, pl, plen);
	free(pl);
	free(zb);
}

/* Bytes of a small LCG, for filler that is not all alike. */
static void
noise(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* ---- fuzz_frame ------------------------------------------------------------ */

static void
gen_frame(void)
{
	static const char *const cut[] = {
		"hello", "register-unix", "ok-lookup", "ok-list", "ok-stats",
		"join", "leave", "error", "dhello", "ok-hello"
	};
	const struct msg *m;
	struct buf b = { 0 };
	uint8_t *f, *z, zeros[4096] = { 0 };
	char name[64];
	size_t i, zlen;

	for (i = 0; i < (size_t)nmsgs; i++)
		emit("fuzz_frame", msgs[i].name, msgs[i].frame, msgs[i].len);
	/* One byte short and one byte over, with the length to match. */
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		m = msg(cut[i]);
		if ((f = malloc(m->len + 1)) == NULL)
			exit(1);
		memcpy(f, m->frame, m->len);
		wire_be32(f + 12, (uint32_t)(m->len - SIPC_HEADER_SIZE - 1));
		snprintf(name, sizeof(name), "%s-short", cut[i]);
		emit("fuzz_frame", name, f, m->len - 1);
		f[m->len] = 0;
		wire_be32(f + 12, (uint32_t)(m->len - SIPC_HEADER_SIZE + 1));
		snprintf(name, sizeof(name), "%s-long", cut[i]);
		emit("fuzz_frame", name, f, m->len + 1);
		free(f);
	}
	/* Broken headers. */
	m = msg("ping");
	if ((f = malloc(m->len)) == NULL)
		exit(1);
	memcpy(f, m->frame, m->len);
	f[0] = 0x16;
	f[1] = 0x03;
	emit("fuzz_frame", "bad-magic-tls", f, m->len);
	memcpy(f, m->frame, m->len);
	f[7] = 1;
	emit("fuzz_frame", "reserved-set", f, m->len);
	memcpy(f, m->frame, m->len);
	f[4] = 0x80;
	emit("fuzz_frame", "unknown-flag", f, m->len);
	memcpy(f, m->frame, m->len);
	wire_be32(f + 12, 0x7fffffff);
	emit("fuzz_frame", "too-large", f, m->len);
	free(f);
	/* A session's worth of frames in one stream. */
	buf_add_msg(&b, "hello");
	buf_add_msg(&b, "register");
	buf_add_msg(&b, "watch");
	buf_add_msg(&b, "ping");
	buf_add_msg(&b, "list");
	buf_add_msg(&b, "stats");
	emit("fuzz_frame", "session", b.p, b.len);
	b.len = 0;
	/* Compressed payloads (the whole payload, as on broker sessions). */
	m = msg("ok-lookup");
	z = deflated(m->frame + SIPC_HEADER_SIZE, m->len - SIPC_HEADER_SIZE,
	    &zlen);
	buf_add_frame(&b, WIRE_OK, WIRE_F_COMPRESSED, 4, z, zlen);
	emit("fuzz_frame", "ok-lookup-z", b.p, b.len);
	b.len = 0;
	free(z);
	/* 64 KiB + 4 KiB of zeros: inflates past the frame limit. */
	{
		size_t big = 68 * 1024;
		uint8_t *bomb = calloc(1, big);

		if (bomb == NULL)
			exit(1);
		z = deflated(bomb, big, &zlen);
		buf_add_frame(&b, WIRE_DATA, WIRE_F_COMPRESSED, 0, z, zlen);
		emit("fuzz_frame", "bomb-z", b.p, b.len);
		b.len = 0;
		free(z);
		free(bomb);
	}
	z = deflated(zeros, sizeof(zeros), &zlen);
	z[zlen - 1] ^= 1;	/* bad Adler-32 */
	buf_add_frame(&b, WIRE_DATA, WIRE_F_COMPRESSED, 0, z, zlen);
	emit("fuzz_frame", "corrupt-z", b.p, b.len);
	free(z);
	free(b.p);
}

/* ---- fuzz_broker ----------------------------------------------------------- */

static const char *const rt_names[] = {
	"hello", "ok-hello", "register", "records", "join", "leave", "list",
	"ok-list", "ok-stats", "error", "dhello"
};

static void
gen_broker(void)
{
	/* The OK decoders by name, with the answer each one reads. */
	static const struct {
		int		 dec;
		const char	*msg;
	} oks[] = {
		{ FZ_DEC_OK_HELLO, "ok-hello" },
		{ FZ_DEC_OK_UNREGISTER, "ok-unregister" },
		{ FZ_DEC_OK_UNWATCH, "ok-unwatch" },
		{ FZ_DEC_OK_REGISTER, "ok-register" },
		{ FZ_DEC_OK_LOOKUP, "ok-lookup" },
		{ FZ_DEC_OK_WATCH, "ok-watch" },
		{ FZ_DEC_OK_LIST, "ok-list" },
		{ FZ_DEC_OK_STATS, "ok-stats" },
		{ FZ_DEC_OK_DHELLO, "ok-dhello" },
	};
	const struct msg *m;
	uint8_t sel, rnd[160];
	char name[64];
	size_t i, plen;
	const uint8_t *p;

	for (i = 0; i < (size_t)nmsgs; i++) {
		m = &msgs[i];
		if (m->dec < 0)
			continue;
		sel = (uint8_t)m->dec;
		p = m->frame + SIPC_HEADER_SIZE;
		plen = m->len - SIPC_HEADER_SIZE;
		snprintf(name, sizeof(name), "%02x-%s", sel, m->name);
		emit2("fuzz_broker", name, &sel, 1, p, plen);
		/* Cut in the middle: a field left half read. */
		if (plen > 2) {
			snprintf(name, sizeof(name), "%02x-%s-cut", sel,
			    m->name);
			emit2("fuzz_broker", name, &sel, 1, p, plen / 2);
		}
	}
	for (i = 0; i < sizeof(oks) / sizeof(oks[0]); i++) {
		m = msg(oks[i].msg);
		sel = (uint8_t)oks[i].dec;
		snprintf(name, sizeof(name), "%02x-%s", sel, m->name);
		emit2("fuzz_broker", name, &sel, 1, m->frame + SIPC_HEADER_SIZE,
		    m->len - SIPC_HEADER_SIZE);
	}
	/* Round trips: values from filler bytes, and from none. */
	for (i = 0; i < sizeof(rt_names) / sizeof(rt_names[0]); i++) {
		sel = (uint8_t)(0x80 + i);
		noise(rnd, sizeof(rnd), (uint32_t)i + 1);
		snprintf(name, sizeof(name), "%02x-rt-%s", sel, rt_names[i]);
		emit2("fuzz_broker", name, &sel, 1, rnd, sizeof(rnd));
		snprintf(name, sizeof(name), "%02x-rt-%s-zero", sel,
		    rt_names[i]);
		emit2("fuzz_broker", name, &sel, 1, NULL, 0);
	}
}

/* ---- fuzz_reader ----------------------------------------------------------- */

/* Options byte (fuzz_reader.c) and chunk seed. */
#define R_ZLIB		0x01
#define R_REFUSE	0x02

static void
emit_reader(const char *name, uint8_t opts, uint8_t seed, struct buf *b)
{
	uint8_t pre[2] = { opts, seed };

	emit2("fuzz_reader", name, pre, 2, b->p, b->len);
	b->len = 0;
}

static void
gen_reader(void)
{
	struct wire_dhello dh = { 1, 1, WIRE_FEAT_ZLIB, 0x1111111111111111ULL,
	    0, 1, 5000, 65536, S("chat") };
	struct buf b = { 0 };
	struct wbuf w;
	uint8_t *big, hdr[SIPC_HEADER_SIZE];
	const size_t max = 64 * 1024;	/* fuzz_reader's max_message */
	int i;

	wbuf_init(&w, 4096);
	check(wire_enc_dhello(&w, 1, &dh), "dhello");
	if ((big = malloc(2 * max)) == NULL)
		exit(1);
	noise(big, 2 * max, 7);

	/* A plain connection, read in chunks of several seeds. */
	for (i = 0; i < 3; i++) {
		char name[32];

		buf_add(&b, w.data, w.len);
		buf_add_data(&b, 1, "Foo1", 4, 0);
		buf_add_msg(&b, "ping");
		buf_add_data(&b, 2, "", 0, 0);
		buf_add_msg(&b, "pong");
		buf_add_data(&b, 5, big, 3000, 0);
		snprintf(name, sizeof(name), "session-%d", i);
		emit_reader(name, 0, (uint8_t)(i * 77), &b);
	}
	/* Compressed bodies, small and large. */
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, "Foo1Foo1Foo1Foo1Foo1Foo1Foo1Foo1", 32, 1);
	memset(big, 'x', max);
	buf_add_data(&b, 2, big, 20000, 1);
	buf_add_data(&b, 3, "plain", 5, 0);
	emit_reader("session-zlib", R_ZLIB, 3, &b);
	/* Exactly max_message inflated, and one byte more. */
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, big, max, 1);
	emit_reader("zlib-at-limit", R_ZLIB, 5, &b);
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, big, max + 1, 1);
	emit_reader("zlib-over-limit", R_ZLIB, 5, &b);
	/* A bomb: 2 * max_message of zeros in a few hundred bytes. */
	memset(big, 0, 2 * max);
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, big, 2 * max, 1);
	emit_reader("zlib-bomb", R_ZLIB, 9, &b);
	/* Compressed, but not negotiated. */
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, "Foo1Foo1Foo1Foo1Foo1Foo1Foo1Foo1", 32, 1);
	emit_reader("zlib-not-negotiated", 0, 9, &b);
	/* Out of order. */
	buf_add_data(&b, 1, "Foo1", 4, 0);
	emit_reader("data-before-dhello", 0, 1, &b);
	buf_add(&b, w.data, w.len);
	buf_add(&b, w.data, w.len);
	emit_reader("dhello-twice", 0, 1, &b);
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, "Foo1", 4, 0);
	emit_reader("dhello-refused", R_REFUSE, 1, &b);
	buf_add_msg(&b, "error");
	emit_reader("error-first", 0, 1, &b);
	buf_add(&b, w.data, w.len);
	buf_add_msg(&b, "register");
	emit_reader("not-for-receivers", 0, 1, &b);
	/* Limits: a message as large as allowed, one byte more, a first
	 * frame over the DHELLO limit. */
	buf_add(&b, w.data, w.len);
	noise(big, max, 11);
	buf_add_data(&b, 1, big, max, 0);
	emit_reader("data-at-limit", 0, 10, &b);
	buf_add(&b, w.data, w.len);
	buf_add_frame(&b, WIRE_DATA, 0, 0, NULL, 0);
	wire_be32(b.p + b.len - 4, (uint32_t)(SIPC_DATA_PREFIX + max + 1));
	emit_reader("data-over-limit", 0, 10, &b);
	buf_add_frame(&b, WIRE_DHELLO, 0, 1, NULL, 0);
	wire_be32(b.p + b.len - 4, SIPC_HELLO_FRAME_MAX + 1);
	emit_reader("dhello-over-limit", 0, 10, &b);
	/* Wrong version byte after DHELLO. */
	buf_add(&b, w.data, w.len);
	buf_add_msg(&b, "ping");
	b.p[b.len - 8 - SIPC_HEADER_SIZE + 2] = 2;
	emit_reader("wrong-version", 0, 10, &b);
	/* A truncated stream: the last frame never completes. */
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, "Foo1", 4, 0);
	b.len -= 2;
	emit_reader("truncated", 0, 10, &b);
	/* A header alone. */
	memcpy(hdr, w.data, sizeof(hdr));
	buf_add(&b, hdr, sizeof(hdr));
	emit_reader("header-only", 0, 10, &b);
	free(big);
	free(b.p);
	wbuf_free(&w);
}

/* ---- fuzz_framer ----------------------------------------------------------- */

/* Options byte (fuzz_framer.c), limit choice, chunk seed. */
#define F_DATA		0x01
#define F_ZLIB		0x02
#define F_OPEN		0x04

static void
emit_framer(const char *name, uint8_t opts, uint8_t limit, uint8_t seed,
    struct buf *b)
{
	uint8_t pre[3] = { opts, limit, seed };

	emit2("fuzz_framer", name, pre, 3, b->p, b->len);
	b->len = 0;
}

static void
gen_framer(void)
{
	struct wire_dhello dh = { 1, 1, WIRE_FEAT_ZLIB, 0x1111111111111111ULL,
	    0, 1, 5000, 65536, S("chat") };
	struct buf b = { 0 };
	struct wbuf w;
	uint8_t *big, *z;
	size_t zlen;

	wbuf_init(&w, 4096);
	check(wire_enc_dhello(&w, 1, &dh), "dhello");
	if ((big = malloc(128 * 1024)) == NULL)
		exit(1);
	/* A broker session: HELLO, requests, a compressed answer. */
	buf_add_msg(&b, "hello");
	buf_add_msg(&b, "register");
	buf_add_msg(&b, "lookup");
	buf_add_msg(&b, "ping");
	emit_framer("broker-plain", F_OPEN, 2, 1, &b);
	memset(big, 'r', 8000);
	z = deflated(big, 8000, &zlen);
	buf_add_msg(&b, "hello");
	buf_add_frame(&b, WIRE_OK, WIRE_F_COMPRESSED, 2, z, zlen);
	buf_add_msg(&b, "stats");
	emit_framer("broker-zlib", F_OPEN | F_ZLIB, 2, 7, &b);
	buf_add_frame(&b, WIRE_OK, WIRE_F_COMPRESSED, 2, z, zlen);
	emit_framer("broker-zlib-not-negotiated", F_OPEN, 2, 7, &b);
	buf_add_msg(&b, "hello");
	buf_add_frame(&b, WIRE_OK, WIRE_F_COMPRESSED, 2, z, zlen);
	emit_framer("broker-zlib-over-limit", F_OPEN | F_ZLIB, 1, 3, &b);
	free(z);
	/* A data connection, plain and compressed, and a bomb. */
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, "Foo1", 4, 0);
	buf_add_msg(&b, "ping");
	buf_add_data(&b, 2, "", 0, 0);
	emit_framer("data-plain", F_DATA | F_OPEN, 2, 5, &b);
	memset(big, 'x', 60000);
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, big, 60000, 1);
	buf_add_data(&b, 2, "Foo1Foo1Foo1Foo1Foo1Foo1Foo1Foo1", 32, 1);
	buf_add_data(&b, 3, "plain", 5, 0);
	emit_framer("data-zlib", F_DATA | F_OPEN | F_ZLIB, 2, 9, &b);
	memset(big, 0, 128 * 1024);
	buf_add(&b, w.data, w.len);
	buf_add_data(&b, 1, big, 128 * 1024, 1);
	emit_framer("data-zlib-bomb", F_DATA | F_OPEN | F_ZLIB, 2, 9, &b);
	z = deflated(big, 1000, &zlen);
	buf_add(&b, w.data, w.len);
	buf_add_frame(&b, WIRE_PING, WIRE_F_COMPRESSED, 0, z, zlen);
	emit_framer("data-zlib-not-data", F_DATA | F_OPEN | F_ZLIB, 2, 9, &b);
	free(z);
	/* Limits, version, garbage. */
	buf_add_frame(&b, WIRE_HELLO, 0, 1, NULL, 0);
	wire_be32(b.p + b.len - 4, SIPC_HELLO_FRAME_MAX + 1);
	emit_framer("hello-over-limit", F_OPEN, 2, 1, &b);
	buf_add_msg(&b, "hello");
	buf_add_msg(&b, "ping");
	b.p[b.len - 8 - SIPC_HEADER_SIZE + 2] = 2;
	emit_framer("wrong-version", F_OPEN, 2, 1, &b);
	buf_add(&b, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
	noise(big, 200, 3);
	buf_add(&b, big, 200);
	emit_framer("tls-client-hello", 0, 0, 1, &b);
	buf_add_msg(&b, "hello");
	buf_add_data(&b, 1, "Foo1", 4, 0);
	b.len -= 2;
	emit_framer("truncated", F_OPEN, 3, 2, &b);
	free(big);
	free(b.p);
	wbuf_free(&w);
}

/* ---- fuzz_zframe ----------------------------------------------------------- */

static void
gen_zframe(void)
{
	static const char text[] = "The quick brown fox jumps over the lazy "
	    "dog. The quick brown fox jumps over the lazy dog.";
	uint8_t *z, *big, mode, pre[2];
	size_t zlen, n;

	/* Mode 0: inflate, limit 64 KiB. */
	mode = 0;
	z = deflated(text, sizeof(text) - 1, &zlen);
	emit2("fuzz_zframe", "0-text", &mode, 1, z, zlen);
	emit2("fuzz_zframe", "0-text-truncated", &mode, 1, z, zlen - 3);
	z = realloc(z, zlen + 1);
	z[zlen] = 0;
	emit2("fuzz_zframe", "0-text-trailing", &mode, 1, z, zlen + 1);
	emit2("fuzz_zframe", "0-raw-deflate", &mode, 1, z + 2, zlen - 6);
	free(z);
	/* A stream that asks for a preset dictionary. */
	emit2("fuzz_zframe", "0-dictionary", &mode, 1,
	    "\x78\xbb\x00\x00\x00\x01\x03\x00\x00\x00\x00\x01", 12);
	/* An empty stream (stored, final, no bytes). */
	emit2("fuzz_zframe", "0-empty", &mode, 1,
	    "\x78\x01\x01\x00\x00\xff\xff\x00\x00\x00\x01", 11);
	n = 256 * 1024;
	if ((big = calloc(1, n)) == NULL)
		exit(1);
	z = deflated(big, n, &zlen);
	emit2("fuzz_zframe", "0-bomb", &mode, 1, z, zlen);
	free(z);
	/* Mode 1: small limits, at and past them. */
	pre[0] = 1;
	pre[1] = 1;	/* 64 bytes */
	noise(big, 128, 3);
	memset(big, 'a', 64);
	z = deflated(big, 64, &zlen);
	emit2("fuzz_zframe", "1-at-limit", pre, 2, z, zlen);
	free(z);
	memset(big, 'a', 65);
	z = deflated(big, 65, &zlen);
	emit2("fuzz_zframe", "1-over-limit", pre, 2, z, zlen);
	free(z);
	pre[1] = 0;	/* nothing at all */
	z = deflated(text, sizeof(text) - 1, &zlen);
	emit2("fuzz_zframe", "1-zero-limit", pre, 2, z, zlen);
	free(z);
	/* Mode 2: what compresses, what does not. */
	mode = 2;
	emit2("fuzz_zframe", "2-text", &mode, 1, text, sizeof(text) - 1);
	noise(big, 512, 5);
	emit2("fuzz_zframe", "2-noise", &mode, 1, big, 512);
	memset(big, 0, 4096);
	emit2("fuzz_zframe", "2-zeros", &mode, 1, big, 4096);
	free(big);
}

/* ---- fuzz_parse ------------------------------------------------------------ */

static void
gen_parse(void)
{
	/* Selector byte: bits 0-1 the parser, bits 2-3 the ADDR_* flags. */
	static const struct {
		const char	*name;
		uint8_t		 sel, size;
		const char	*s;
	} seeds[] = {
		{ "addr-v4", 0, 64, "127.0.0.1:4455" },
		{ "addr-v6", 0, 64, "[::1]:4455" },
		{ "addr-name", 0, 255, "broker.example.org:4455" },
		{ "addr-host-only", 0x04, 64, "localhost" },
		{ "addr-bare-v6", 0x04, 64, "fe80::1%eth0" },
		{ "addr-bracket-only", 0x04, 64, "[::1]" },
		{ "addr-port0", 0x08, 64, "0.0.0.0:0" },
		{ "addr-optional-port0", 0x0c, 64, "[::]:0" },
		{ "addr-no-bracket", 0, 64, "[::1" },
		{ "addr-junk-after", 0, 64, "[::1]x" },
		{ "addr-empty-host", 0, 64, ":4455" },
		{ "addr-tiny-buffer", 0, 3, "abcdef:1" },
		{ "addr-big-port", 0, 64, "h:65536" },
		{ "port", 1, 0, "4455" },
		{ "port-zero", 1 | 0x08, 0, "0" },
		{ "port-leading-zeros", 1, 0, "00080" },
		{ "port-too-long", 1, 0, "123456" },
		{ "salt-hex", 2, 64, "0102030405" },
		{ "salt-array", 2, 64, "{0x01,0x02,0x03}" },
		{ "salt-array-loose", 2, 64, " { 1 , 0X2,ff } " },
		{ "salt-odd", 2, 64, "012" },
		{ "salt-cap", 2, 2, "010203" },
		{ "salt-max", 2, 64, "000102030405060708090a0b0c0d0e0f"
		    "101112131415161718191a1b1c1d1e1f"
		    "202122232425262728292a2b2c2d2e2f"
		    "303132333435363738393a3b3c3d3e3f" },
		{ "salt-high-bytes", 2, 64, "\xc3\xa9\xff{0x\xe0}" },
	};
	uint8_t pre[2];
	size_t i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		pre[0] = seeds[i].sel;
		pre[1] = seeds[i].size;
		emit2("fuzz_parse", seeds[i].name, pre, 2, seeds[i].s,
		    strlen(seeds[i].s));
	}
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	outdir = argv[1];
	mkdir_p(outdir);
	make_messages();
	gen_frame();
	gen_broker();
	gen_reader();
	gen_zframe();
	gen_parse();
	gen_framer();
	printf("gen_corpus: %d files in %s\n", nfiles, outdir);
	return 0;
}
