/*
 * wire.h - the sipc wire codec: frame header, every broker message and every
 * data-plane message, bytes <-> structs.
 *
 * This is pure code: no I/O, no sockets, no globals, no event loop.  Decoders
 * read through a bounded cursor, check every length before using it, never
 * allocate, and fail unless the payload was consumed exactly.  Strings they
 * return point into the caller's buffer (struct wire_str is not
 * NUL-terminated).  Encoders append whole frames to a struct wbuf whose
 * maximum size is fixed when it is created.
 *
 * proto/PROTOCOL.md is the normative description; this file follows it.
 */
#ifndef SIPC_PROTO_WIRE_H
#define SIPC_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"

#define WIRE_MAGIC0		0x53	/* 'S' */
#define WIRE_MAGIC1		0x49	/* 'I' */

/* Message types (header byte 3). */
enum wire_type {
	WIRE_HELLO		= 0x01,
	WIRE_OK			= 0x02,
	WIRE_ERROR		= 0x03,
	WIRE_PING		= 0x04,
	WIRE_PONG		= 0x05,
	WIRE_REGISTER		= 0x10,
	WIRE_UNREGISTER		= 0x11,
	WIRE_LOOKUP		= 0x12,
	WIRE_WATCH		= 0x13,
	WIRE_UNWATCH		= 0x14,
	WIRE_LIST		= 0x15,
	WIRE_STATS		= 0x16,
	WIRE_JOIN		= 0x20,
	WIRE_LEAVE		= 0x21,
	WIRE_DHELLO		= 0x40,	/* data plane: sender -> receiver */
	WIRE_DATA		= 0x41,
	WIRE_ACK		= 0x42,	/* data plane: receiver -> sender */
	WIRE_REPLY		= 0x43,
	WIRE_SHM_RING		= 0x44,	/* sender -> receiver, with fds */
	WIRE_SHM_CURSOR		= 0x45	/* receiver -> sender, with fds */
};

/* Header flags. */
#define WIRE_F_COMPRESSED	0x0001	/* payload is a zlib stream */
#define WIRE_F_KNOWN		0x0001	/* every flag version 1 defines */

/* Feature bits negotiated in HELLO and DHELLO. */
#define WIRE_FEAT_ZLIB		0x00000001u
#define WIRE_FEAT_REPLY		0x00000002u
#define WIRE_FEAT_SHM		0x00000004u
#define WIRE_FEAT_KNOWN		0x00000007u

/* Endpoint families. */
#define WIRE_AF_UNIX		1
#define WIRE_AF_INET		4
#define WIRE_AF_INET6		6

/* LEAVE reasons. */
#define WIRE_LEAVE_UNREGISTERED	1
#define WIRE_LEAVE_CLOSED	2
#define WIRE_LEAVE_EXPIRED	3

/* Error codes carried in ERROR frames (see PROTOCOL.md, "Error codes"). */
enum wire_errcode {
	WIRE_ERR_BAD_FRAME	= 1,
	WIRE_ERR_VERSION	= 2,
	WIRE_ERR_BAD_MESSAGE	= 3,
	WIRE_ERR_UNKNOWN_TYPE	= 4,
	WIRE_ERR_UNEXPECTED	= 5,
	WIRE_ERR_HELLO_REQUIRED	= 6,
	WIRE_ERR_BAD_HANDLE	= 7,
	WIRE_ERR_BAD_ENDPOINT	= 8,
	WIRE_ERR_NOT_FOUND	= 9,
	WIRE_ERR_NOT_OWNER	= 10,
	WIRE_ERR_LIMIT		= 11,
	WIRE_ERR_EXISTS		= 12,
	WIRE_ERR_TOO_LARGE	= 13,
	WIRE_ERR_TIMEOUT	= 14,
	WIRE_ERR_SHUTDOWN	= 15,
	WIRE_ERR_BUSY		= 16,
	WIRE_ERR_INTERNAL	= 17,
	WIRE_ERR_AUTH		= 18,
	WIRE_ERR_WRONG_RECEIVER	= 19,
	WIRE_ERR_SLOW		= 20,
	WIRE_ERR_COMPRESSION	= 21,
	WIRE_ERR_NO_REPLY	= 22,
	WIRE_ERR_REQUEST_FAILED	= 23,
	WIRE_ERR_UNAVAILABLE	= 24
};
#define WIRE_ERR_LAST		24

/* Codec results: 0 or one of these. */
#define WIRE_ETRUNC	(-1)	/* payload ends inside a field */
#define WIRE_ETRAIL	(-2)	/* bytes left after the last field */
#define WIRE_EMAGIC	(-3)	/* header does not start with "SI" */
#define WIRE_ERESERVED	(-4)	/* reserved header field or flag set */
#define WIRE_ETOOBIG	(-5)	/* payload length over the caller's limit */
#define WIRE_EUTF8	(-6)	/* a string is not valid UTF-8 */
#define WIRE_EHANDLE	(-7)	/* a handle is empty, too long or invalid */
#define WIRE_EENDPOINT	(-8)	/* bad family, port 0, bad path */
#define WIRE_EVALUE	(-9)	/* a field is out of its range */
#define WIRE_ENOSPACE	(-10)	/* encoder would exceed its buffer limit */
#define WIRE_ETYPE	(-11)	/* OK answers another request type */
#define WIRE_ENOMEM	(-12)	/* encoder could not allocate */

/* ---- Header -------------------------------------------------------------- */

struct wire_header {
	uint8_t		version;
	uint8_t		type;
	uint16_t	flags;
	uint32_t	reqid;
	uint32_t	len;	/* payload bytes after the header */
};

/*
 * Decode the SIPC_HEADER_SIZE bytes at buf.  Checks the magic, the reserved
 * field and flags, and that len <= max_len; the version is left to the caller
 * (HELLO negotiates it).  Returns 0, WIRE_EMAGIC, WIRE_ERESERVED or
 * WIRE_ETOOBIG.  On WIRE_ETOOBIG *h is filled in.
 */
int	wire_header_decode(const uint8_t *buf, uint32_t max_len,
	    struct wire_header *h);
void	wire_header_encode(uint8_t *buf, const struct wire_header *h);

/* ---- Values -------------------------------------------------------------- */

/* A length-prefixed string inside a frame: not NUL-terminated. */
struct wire_str {
	const char	*ptr;
	uint16_t	 len;
};

struct wire_endpoint {
	uint8_t		family;		/* WIRE_AF_* */
	uint16_t	port;		/* INET, INET6: 1..65535 */
	uint8_t		addr[16];	/* INET: 4 bytes, INET6: 16, network order */
	char		path[SIPC_UNIX_PATH_MAX + 1];	/* UNIX: NUL-terminated */
};

/* One registration as the broker reports it. */
struct wire_record {
	uint64_t		id;
	uint64_t		instance;
	struct wire_endpoint	ep;
	struct wire_str		host;
	uint32_t		pid;
	uint64_t		registered_ms;	/* Unix time in milliseconds */
};

/* A validated sequence of items, decoded one by one with *_next(). */
struct wire_seq {
	uint32_t	 count;
	const uint8_t	*p;
	size_t		 len;
};

/* ---- Messages ------------------------------------------------------------ */

struct wire_hello {
	uint8_t		min_version;
	uint8_t		max_version;
	uint32_t	features;
	uint32_t	heartbeat_ms;	/* wished interval, 0: the broker's */
	struct wire_str	software;
	struct wire_str	host;
	uint32_t	pid;
};

struct wire_hello_ok {
	uint8_t		version;
	uint32_t	features;
	uint32_t	heartbeat_ms;
	uint64_t	session_id;
	uint32_t	max_frame;
	struct wire_str	software;
};

struct wire_register {
	struct wire_str		handle;
	uint64_t		instance;
	struct wire_endpoint	ep;
};

struct wire_list {
	struct wire_str	after;		/* empty: from the first handle */
	uint32_t	limit;		/* 0: as many as fit */
};

struct wire_list_entry {
	struct wire_str	handle;
	uint32_t	receivers;
};

struct wire_list_ok {
	uint8_t		more;
	struct wire_seq	entries;
};

struct wire_stat {
	struct wire_str	name;
	uint64_t	value;
};

struct wire_join {
	struct wire_str		handle;
	struct wire_record	rec;
};

struct wire_leave {
	struct wire_str	handle;
	uint64_t	id;
	uint8_t		reason;		/* WIRE_LEAVE_* */
};

struct wire_error {
	uint16_t	code;		/* enum wire_errcode */
	struct wire_str	text;
};

struct wire_dhello {
	uint8_t		min_version;
	uint8_t		max_version;
	uint32_t	features;
	uint64_t	sender_id;
	uint64_t	instance;	/* receiver expected, 0: any */
	uint64_t	first_seq;	/* seq of the first DATA on this connection */
	uint32_t	heartbeat_ms;
	uint32_t	ack_bytes;	/* ACK at least every this many bytes */
	struct wire_str	handle;
};

/* SHM_RING (PROTOCOL.md 6.7): the ring's fd and the sender's eventfd
 * travel with it as SCM_RIGHTS. */
struct wire_shm_ring {
	uint64_t	 gen;
	uint64_t	 size;		/* bytes of entries */
	uint64_t	 start;		/* the receiver's first position */
};

struct wire_dhello_ok {
	uint8_t		version;
	uint32_t	features;
	uint64_t	instance;
	uint64_t	last_seq;	/* last seq delivered from this sender */
	uint32_t	max_message;
};

struct wire_data {
	uint64_t	 seq;
	const uint8_t	*body;
	size_t		 len;
};

/* ---- Decoders ------------------------------------------------------------ */
/*
 * Each takes the payload that follows the header (p, len bytes) and fills
 * *out.  Returns 0 or a negative WIRE_E* code; *out is undefined on error.
 */
int	wire_dec_hello(const uint8_t *p, size_t len, struct wire_hello *out);
int	wire_dec_register(const uint8_t *p, size_t len,
	    struct wire_register *out);
int	wire_dec_u64(const uint8_t *p, size_t len, uint64_t *out);
	/* UNREGISTER, PING, PONG, ACK */
int	wire_dec_handle(const uint8_t *p, size_t len, struct wire_str *out);
	/* LOOKUP, WATCH, UNWATCH */
int	wire_dec_list(const uint8_t *p, size_t len, struct wire_list *out);
int	wire_dec_empty(const uint8_t *p, size_t len);		/* STATS */
int	wire_dec_join(const uint8_t *p, size_t len, struct wire_join *out);
int	wire_dec_leave(const uint8_t *p, size_t len, struct wire_leave *out);
int	wire_dec_error(const uint8_t *p, size_t len, struct wire_error *out);
int	wire_dec_dhello(const uint8_t *p, size_t len, struct wire_dhello *out);
int	wire_dec_data(const uint8_t *p, size_t len, struct wire_data *out);

/* OK: the first payload byte names the request type it answers. */
int	wire_dec_ok_type(const uint8_t *p, size_t len, uint8_t *type);
int	wire_dec_ok_hello(const uint8_t *p, size_t len,
	    struct wire_hello_ok *out);
int	wire_dec_ok_empty(const uint8_t *p, size_t len, uint8_t type);
	/* UNREGISTER, UNWATCH */
int	wire_dec_ok_register(const uint8_t *p, size_t len, uint64_t *id);
int	wire_dec_ok_records(const uint8_t *p, size_t len, uint8_t type,
	    struct wire_seq *out);	/* LOOKUP, WATCH: wire_record items */
int	wire_dec_ok_list(const uint8_t *p, size_t len,
	    struct wire_list_ok *out);
int	wire_dec_ok_stats(const uint8_t *p, size_t len, struct wire_seq *out);
int	wire_dec_ok_dhello(const uint8_t *p, size_t len,
	    struct wire_dhello_ok *out);
/* SHM_RING's payload: size a power of two, start a multiple of 16. */
int	wire_dec_shm_ring(const uint8_t *p, size_t len,
	    struct wire_shm_ring *out);

/*
 * Iterators over a sequence a decoder validated: each returns 1 and fills
 * *out while items remain, then 0.
 */
int	wire_next_record(struct wire_seq *s, struct wire_record *out);
int	wire_next_list_entry(struct wire_seq *s, struct wire_list_entry *out);
int	wire_next_stat(struct wire_seq *s, struct wire_stat *out);

/* ---- Encoders ------------------------------------------------------------ */

/* A growable output buffer with a hard maximum (curl's dynbuf). */
struct wbuf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
	int	 err;		/* sticky: first failure */
};

void	wbuf_init(struct wbuf *b, size_t max);
void	wbuf_reset(struct wbuf *b);
void	wbuf_free(struct wbuf *b);

/*
 * Low level: start a frame (writes the header with length 0 and returns its
 * offset), append fields, then wire_frame_end() patches the length.  Any
 * failure is sticky in b->err and returned by wire_frame_end(), which then
 * drops the partial frame.
 */
size_t	wire_frame_begin(struct wbuf *b, uint8_t type, uint16_t flags,
	    uint32_t reqid);
int	wire_frame_end(struct wbuf *b, size_t start);
void	wire_put_u8(struct wbuf *b, uint8_t v);
void	wire_put_u16(struct wbuf *b, uint16_t v);
void	wire_put_u32(struct wbuf *b, uint32_t v);
void	wire_put_u64(struct wbuf *b, uint64_t v);
void	wire_put_bytes(struct wbuf *b, const void *p, size_t n);
void	wire_put_str(struct wbuf *b, const char *s, size_t n, size_t max);
void	wire_put_endpoint(struct wbuf *b, const struct wire_endpoint *ep);
void	wire_put_record(struct wbuf *b, const struct wire_record *r);

/* Whole frames.  Each returns 0, WIRE_ENOSPACE or WIRE_EVALUE (a field the
 * decoder would reject, such as an invalid handle). */
int	wire_enc_hello(struct wbuf *b, uint32_t reqid,
	    const struct wire_hello *m);
int	wire_enc_ok_hello(struct wbuf *b, uint32_t reqid,
	    const struct wire_hello_ok *m);
int	wire_enc_register(struct wbuf *b, uint32_t reqid,
	    const struct wire_register *m);
int	wire_enc_ok_register(struct wbuf *b, uint32_t reqid, uint64_t id);
int	wire_enc_u64(struct wbuf *b, uint8_t type, uint32_t reqid,
	    uint64_t v);	/* UNREGISTER, PING, PONG, ACK */
int	wire_enc_handle(struct wbuf *b, uint8_t type, uint32_t reqid,
	    const char *handle, size_t len);	/* LOOKUP, WATCH, UNWATCH */
int	wire_enc_list(struct wbuf *b, uint32_t reqid,
	    const struct wire_list *m);
int	wire_enc_empty(struct wbuf *b, uint8_t type, uint32_t reqid);
int	wire_enc_ok_empty(struct wbuf *b, uint32_t reqid, uint8_t type);
int	wire_enc_join(struct wbuf *b, const struct wire_join *m);
int	wire_enc_leave(struct wbuf *b, const struct wire_leave *m);
int	wire_enc_error(struct wbuf *b, uint32_t reqid, uint16_t code,
	    const char *text);
int	wire_enc_dhello(struct wbuf *b, uint32_t reqid,
	    const struct wire_dhello *m);
int	wire_enc_ok_dhello(struct wbuf *b, uint32_t reqid,
	    const struct wire_dhello_ok *m);
int	wire_enc_shm_ring(struct wbuf *b, const struct wire_shm_ring *m);
/* SHM_CURSOR: the gen of the ring it answers (wire_enc_u64's frame). */

/*
 * OK answers with a list (LOOKUP, WATCH, LIST, STATS): begin, add items with
 * wire_put_record() and friends, end with the item count.  For LIST the
 * "more" byte is written by wire_enc_ok_list_begin() as 0 and set by
 * wire_enc_ok_list_end().
 */
size_t	wire_enc_ok_seq_begin(struct wbuf *b, uint32_t reqid, uint8_t type);
int	wire_enc_ok_seq_end(struct wbuf *b, size_t start, uint32_t count);
size_t	wire_enc_ok_list_begin(struct wbuf *b, uint32_t reqid);
int	wire_enc_ok_list_end(struct wbuf *b, size_t start, uint32_t count,
	    int more);
void	wire_put_list_entry(struct wbuf *b, const char *handle, size_t len,
	    uint32_t receivers);
void	wire_put_stat(struct wbuf *b, const char *name, uint64_t value);

/* ---- Helpers ------------------------------------------------------------- */

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int	wire_utf8_valid(const void *s, size_t n);
/* 1 when s[0..n) is a valid handle: 1..SIPC_HANDLE_MAX bytes of UTF-8
 * without control characters (U+0000-U+001F, U+007F-U+009F). */
int	wire_handle_valid(const void *s, size_t n);
/* 1 when ep is a valid endpoint (family, port; path: 1..107 bytes of UTF-8
 * starting with '/'). */
int	wire_endpoint_valid(const struct wire_endpoint *ep);

const char *wire_type_name(uint8_t type);	/* "HELLO", ..., "?" */
const char *wire_errcode_name(uint16_t code);	/* "BAD_FRAME", ... */
const char *wire_strerror(int err);		/* WIRE_E* */

/* Big-endian loads and stores, for code that builds frames in place. */
static inline void
wire_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
wire_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
wire_be64(uint8_t *p, uint64_t v)
{
	wire_be32(p, (uint32_t)(v >> 32));
	wire_be32(p + 4, (uint32_t)v);
}

static inline uint16_t
wire_ld16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
wire_ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
wire_ld64(const uint8_t *p)
{
	return (uint64_t)wire_ld32(p) << 32 | wire_ld32(p + 4);
}

#endif
