/*
 * fuzz_reader.c - libFuzzer target: the receiving side of a data
 * connection, libclient/reader.c, driven the way libclient/receiver.c
 * drives it: bytes arrive in chunks into its read buffer (struct dp_buf:
 * compacted, grown to the size dp_read() asks for, doubled while chunks
 * fill it, shrunk after a large frame), every complete frame is read
 * straight from the buffer, DHELLO opens the reader, ERROR or a protocol
 * error ends the connection.
 *
 * Input: byte 0 holds options (bit 0: DHELLO opens the reader with zlib
 * allowed; bit 1: the receiver refuses the DHELLO and closes), byte 1 seeds
 * the chunk sizes (1 byte to 64 KiB), the rest is what the sender sends.
 * max_message is 64 KiB, so that zlib bombs hit the limit quickly.
 *
 * Checked besides memory safety: what dp_read() asks for is more than it
 * has and within the limits, what it takes is at most what it has, and the
 * events it returns are what reader.h promises (bodies within the frame or
 * the inflate buffer and at most max_message, DATA and PING only after
 * DHELLO, a code for every error).
 */
#include <string.h>

#include "../../libclient/reader.h"
#include "fuzz.h"

#define MAX_MESSAGE	(64 * 1024)
/* receiver.c has 64 KiB to 256 KiB; small here, so that short inputs make
 * the buffer compact, grow and shrink. */
#define RBUF_MIN	1024
#define RBUF_MAX	4096

#define OPT_ZLIB	0x01
#define OPT_REFUSE	0x02

struct conn {
	struct dp_reader rd;
	struct dp_buf	 in;
	int		 closed;
	int		 refuse;
	int		 zlib;
	uint32_t	 sum;		/* of every body byte: makes ASan look */
};

/* Where the body sums go, so that the compiler keeps the reads. */
static volatile uint32_t fz_sink;

static int
inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
	return p >= base && n <= size && p - base <= (ptrdiff_t)(size - n);
}

static void
check_event(struct conn *c, const struct dp_event *ev, const uint8_t *frame,
    size_t n, int was_open)
{
	size_t i;

	FZ_ASSERT(n >= SIPC_HEADER_SIZE);
	FZ_ASSERT(ev->wire_len == n - SIPC_HEADER_SIZE);
	switch (ev->type) {
	case DP_DHELLO:
		FZ_ASSERT(!was_open);
		FZ_ASSERT(wire_handle_valid(ev->hello.handle.ptr,
		    ev->hello.handle.len));
		FZ_ASSERT(inside((const uint8_t *)ev->hello.handle.ptr,
		    ev->hello.handle.len, frame, n));
		FZ_ASSERT(ev->hello.sender_id != 0 &&
		    ev->hello.first_seq != 0);
		break;
	case DP_DATA:
		FZ_ASSERT(was_open);
		FZ_ASSERT(ev->seq != 0);
		FZ_ASSERT(ev->len <= MAX_MESSAGE);
		if (ev->len == 0)
			break;
		FZ_ASSERT(inside(ev->body, ev->len, frame + SIPC_HEADER_SIZE +
		    SIPC_DATA_PREFIX, n - SIPC_HEADER_SIZE - SIPC_DATA_PREFIX) ||
		    (c->zlib && inside(ev->body, ev->len, c->rd.fr.zbuf,
		    c->rd.fr.zcap)));
		for (i = 0; i < ev->len; i++)
			c->sum += ev->body[i];
		break;
	case DP_PING:
	case DP_PONG:
		FZ_ASSERT(was_open);
		FZ_ASSERT(n == SIPC_HEADER_SIZE + 8);
		break;
	case DP_ERROR:
		FZ_ASSERT(ev->error.code != 0);
		FZ_ASSERT(ev->error.text.len <= SIPC_ERROR_TEXT_MAX);
		break;
	default:
		FZ_ASSERT(!"unknown event type");
	}
}

/* receiver.c rconn_parse(): every complete frame in the buffer. */
static void
conn_parse(struct conn *c)
{
	struct dp_event ev;
	char why[128];
	uint16_t code;
	size_t need, avail, limit;
	int n, was_open;

	while (!c->closed) {
		avail = c->in.len - c->in.off;
		was_open = c->rd.open;
		why[0] = '\0';
		n = dp_read(&c->rd, c->in.p + c->in.off, avail, &ev, &need,
		    &code, why, sizeof(why));
		if (n < 0) {
			/* The receiver sends ERROR code, why, and closes. */
			FZ_ASSERT(code >= 1 && code <= WIRE_ERR_LAST);
			FZ_ASSERT(why[0] != '\0' && strlen(why) < sizeof(why));
			c->closed = 1;
			return;
		}
		if (n == 0) {
			limit = was_open ? SIPC_DATA_PREFIX + MAX_MESSAGE :
			    SIPC_HELLO_FRAME_MAX;
			FZ_ASSERT(need > avail);
			FZ_ASSERT(need <= SIPC_HEADER_SIZE + limit);
			if (dp_buf_room(&c->in, need) == -1) {
				c->closed = 1;	/* out of memory */
				return;
			}
			FZ_ASSERT(c->in.off + need <= c->in.cap);
			break;
		}
		FZ_ASSERT((size_t)n <= avail);
		check_event(c, &ev, c->in.p + c->in.off, (size_t)n, was_open);
		c->in.off += (size_t)n;
		switch (ev.type) {
		case DP_DHELLO:
			if (c->refuse) {
				c->closed = 1;	/* ERROR WRONG_RECEIVER */
				return;
			}
			dp_reader_open(&c->rd, c->zlib);
			break;
		case DP_ERROR:
			c->closed = 1;
			return;
		default:
			break;
		}
	}
	dp_buf_settle(&c->in);
	FZ_ASSERT(c->in.off <= c->in.len && c->in.len <= c->in.cap);
}

/* Chunk sizes: what one read() returns. */
static size_t
next_chunk(uint32_t *x)
{
	static const size_t sizes[] = {
		1, 2, 3, 7, 15, 16, 17, 24, 64, 255, 1024, 4096, 65536
	};

	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return sizes[*x % (sizeof(sizes) / sizeof(sizes[0]))];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c;
	uint32_t rnd;
	size_t space, n;
	uint8_t *p;

	if (size < 2)
		return 0;
	memset(&c, 0, sizeof(c));
	c.zlib = (data[0] & OPT_ZLIB) != 0;
	c.refuse = (data[0] & OPT_REFUSE) != 0;
	rnd = 0x9e3779b9u ^ data[1];
	data += 2;
	size -= 2;
	dp_reader_init(&c.rd, MAX_MESSAGE);
	if (dp_buf_init(&c.in, RBUF_MIN, RBUF_MAX) == -1)
		return 0;
	/* receiver.c rconn_readcb(): read what fits, parse, again. */
	while (size > 0 && !c.closed) {
		p = dp_buf_space(&c.in, &space);
		/* The parser always leaves room for the frame it waits for:
		 * a full buffer here would read 0 bytes, "closed by the
		 * sender". */
		FZ_ASSERT(space > 0);
		n = next_chunk(&rnd);
		if (n > space)
			n = space;
		if (n > size)
			n = size;
		memcpy(p, data, n);
		dp_buf_add(&c.in, n, space);
		data += n;
		size -= n;
		conn_parse(&c);
	}
	dp_reader_free(&c.rd);
	dp_buf_free(&c.in);
	fz_sink = c.sum;
	return 0;
}
