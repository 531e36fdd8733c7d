/*
 * shm.c - the shared-memory ring: memfds, seals, mappings, entries
 * (PROTOCOL.md section 6.7).
 *
 * The sender's mapping is the only writable one the ring ever has: it is
 * made before F_SEAL_FUTURE_WRITE, which then refuses every later
 * writable mapping and write() (so a receiver cannot write into what the
 * others read), and F_SEAL_SHRINK | F_SEAL_GROW keep its size (so a
 * mapping never faults past the end).  A receiver refuses a ring without
 * those seals; the sender refuses a cursor page without them, likewise.
 */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"

_Static_assert(sizeof(struct shm_ring_hdr) <= SHM_HDR_BYTES, "ring header");
_Static_assert(sizeof(struct shm_cursor_hdr) <= SHM_CURSOR_BYTES, "cursor");
_Static_assert(sizeof(struct shm_entry) == SHM_ENTRY_HDR, "entry header");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "lock-free 64-bit atomics");

#define SEALS_NEEDED	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE)

uint64_t
shm_ring_size(uint64_t want)
{
	uint64_t s = SHM_SMALLEST_RING;

	while (s < want && s < SHM_MAX_SIZE)
		s <<= 1;
	return s;
}

/* A sealable memfd of len bytes, mapped read-write at *p, then sealed
 * against growing, shrinking and any further writable mapping. */
static int
memfd_sealed(const char *name, size_t len, void **p, char *err,
    size_t errlen)
{
	int fd;

	if ((fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)len) == -1) {
		snprintf(err, errlen, "memfd of %zu bytes: %s", len,
		    strerror(errno));
		close(fd);
		return -1;
	}
	*p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of %zu bytes: %s", len,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_ADD_SEALS, SEALS_NEEDED | F_SEAL_SEAL) == -1) {
		snprintf(err, errlen, "memfd seals: %s", strerror(errno));
		munmap(*p, len);
		close(fd);
		return -1;
	}
	return fd;
}

/* Checks that fd is a memfd of exactly len bytes with the seals. */
static int
memfd_check(int fd, size_t len, const char *what, char *err, size_t errlen)
{
	struct stat st;
	int seals;

	if ((seals = fcntl(fd, F_GET_SEALS)) == -1 ||
	    (seals & SEALS_NEEDED) != SEALS_NEEDED) {
		snprintf(err, errlen, "%s is not a sealed memfd", what);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != len) {
		snprintf(err, errlen, "%s has %lld bytes, not %zu", what,
		    (long long)st.st_size, len);
		return -1;
	}
	return 0;
}

int
shm_ring_create(struct shm_ring *r, uint64_t size, uint64_t gen, char *err,
    size_t errlen)
{
	void *p;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (size < SHM_MIN_SIZE || size > SHM_MAX_SIZE ||
	    (size & (size - 1)) != 0) {
		snprintf(err, errlen, "ring size %llu is not a power of two "
		    "in %u .. %u", (unsigned long long)size, SHM_MIN_SIZE,
		    SHM_MAX_SIZE);
		return -1;
	}
	if ((r->fd = memfd_sealed("sipc-ring", SHM_HDR_BYTES + size, &p, err,
	    errlen)) == -1)
		return -1;
	r->h = p;
	r->data = (uint8_t *)p + SHM_HDR_BYTES;
	r->size = size;
	r->gen = gen;
	r->h->magic = SHM_RING_MAGIC;
	r->h->layout = SHM_LAYOUT;
	r->h->size = size;
	r->h->gen = gen;
	atomic_store(&r->h->head, 0);
	atomic_store(&r->h->want_progress, 0);
	return 0;
}

void
shm_ring_destroy(struct shm_ring *r)
{
	if (r->h)
		munmap(r->h, SHM_HDR_BYTES + r->size);
	if (r->fd != -1)
		close(r->fd);
	r->h = NULL;
	r->data = NULL;
	r->fd = -1;
}

uint64_t
shm_ring_need(const struct shm_ring *r, uint64_t len)
{
	uint64_t off = r->head & (r->size - 1), n = shm_entry_bytes(len);

	return off + n > r->size ? r->size - off + n : n;
}

int
shm_ring_put(struct shm_ring *r, uint64_t tail, uint16_t type,
    uint16_t flags, uint64_t seq, const void *p1, size_t n1, const void *p2,
    size_t n2)
{
	uint64_t off, n = shm_entry_bytes(n1 + n2);
	struct shm_entry e;
	uint8_t *at;

	if (r->head - tail + shm_ring_need(r, n1 + n2) > r->size)
		return -1;
	off = r->head & (r->size - 1);
	if (off + n > r->size) {
		/* The rest of the data area is one PAD: entries never wrap. */
		e.len = (uint32_t)(r->size - off - SHM_ENTRY_HDR);
		e.type = SHM_E_PAD;
		e.flags = 0;
		e.seq = 0;
		memcpy(r->data + off, &e, sizeof(e));
		r->head += r->size - off;
		off = 0;
	}
	e.len = (uint32_t)(n1 + n2);
	e.type = type;
	e.flags = flags;
	e.seq = seq;
	at = r->data + off;
	memcpy(at, &e, sizeof(e));
	if (n1)
		memcpy(at + SHM_ENTRY_HDR, p1, n1);
	if (n2)
		memcpy(at + SHM_ENTRY_HDR + n1, p2, n2);
	r->head += n;
	return 0;
}

void
shm_ring_publish(struct shm_ring *r)
{
	atomic_store_explicit(&r->h->head, r->head, memory_order_release);
}

int
shm_view_map(struct shm_view *v, int fd, uint64_t gen, uint64_t size,
    uint64_t start, char *err, size_t errlen)
{
	const struct shm_ring_hdr *h;
	void *p;

	memset(v, 0, sizeof(*v));
	if (size < SHM_MIN_SIZE || size > SHM_MAX_SIZE ||
	    (size & (size - 1)) != 0 || start % SHM_ALIGN != 0) {
		snprintf(err, errlen, "ring size %llu or start %llu invalid",
		    (unsigned long long)size, (unsigned long long)start);
		return -1;
	}
	if (memfd_check(fd, SHM_HDR_BYTES + size, "ring", err, errlen) == -1)
		return -1;
	p = mmap(NULL, SHM_HDR_BYTES + size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of the ring: %s", strerror(errno));
		return -1;
	}
	h = p;
	if (h->magic != SHM_RING_MAGIC || h->layout != SHM_LAYOUT ||
	    h->size != size || h->gen != gen) {
		snprintf(err, errlen, "ring header does not match SHM_RING");
		munmap(p, SHM_HDR_BYTES + size);
		return -1;
	}
	close(fd);
	v->h = h;
	v->data = (const uint8_t *)p + SHM_HDR_BYTES;
	v->size = size;
	v->gen = gen;
	v->pos = start;
	return 0;
}

void
shm_view_unmap(struct shm_view *v)
{
	if (v->h)
		munmap((void *)v->h, SHM_HDR_BYTES + v->size);
	v->h = NULL;
	v->data = NULL;
}

int
shm_view_peek(struct shm_view *v, uint64_t head, struct shm_entry *e,
    const uint8_t **body, char *why, size_t whylen)
{
	uint64_t off, n;

	for (;;) {
		if (v->pos == head)
			return 0;
		if (head - v->pos > v->size || v->pos % SHM_ALIGN) {
			snprintf(why, whylen, "ring head %llu is not within "
			    "the ring from %llu", (unsigned long long)head,
			    (unsigned long long)v->pos);
			return -1;
		}
		off = v->pos & (v->size - 1);
		/* One copy of the header: the sender may not change what
		 * was checked. */
		memcpy(e, v->data + off, sizeof(*e));
		n = shm_entry_bytes(e->len);
		if (off + n > v->size || n > head - v->pos) {
			snprintf(why, whylen, "ring entry of %u bytes at %llu "
			    "runs past the %s", e->len,
			    (unsigned long long)v->pos,
			    off + n > v->size ? "ring" : "head");
			return -1;
		}
		switch (e->type) {
		case SHM_E_PAD:
			if (off + n != v->size) {
				snprintf(why, whylen, "ring PAD at %llu does "
				    "not end the ring",
				    (unsigned long long)v->pos);
				return -1;
			}
			v->pos += n;
			continue;
		case SHM_E_CHUNK:
			if (e->len < SHM_CHUNK_HDR) {
				snprintf(why, whylen, "ring CHUNK of %u bytes",
				    e->len);
				return -1;
			}
			/* FALLTHROUGH */
		case SHM_E_MSG:
		case SHM_E_SWITCH:
			*body = v->data + off + SHM_ENTRY_HDR;
			return 1;
		default:
			snprintf(why, whylen, "ring entry type %u at %llu",
			    e->type, (unsigned long long)v->pos);
			return -1;
		}
	}
}

int
shm_cursor_create(struct shm_cursor *c, char *err, size_t errlen)
{
	void *p;

	if ((c->fd = memfd_sealed("sipc-cursor", SHM_CURSOR_BYTES, &p, err,
	    errlen)) == -1)
		return -1;
	c->h = p;
	c->h->magic = SHM_CURSOR_MAGIC;
	c->h->layout = SHM_LAYOUT;
	return 0;
}

int
shm_cursor_map(struct shm_cursor *c, int fd, char *err, size_t errlen)
{
	void *p;

	c->fd = -1;
	c->h = NULL;
	if (memfd_check(fd, SHM_CURSOR_BYTES, "cursor", err, errlen) == -1)
		return -1;
	p = mmap(NULL, SHM_CURSOR_BYTES, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of the cursor: %s",
		    strerror(errno));
		return -1;
	}
	c->h = p;
	if (c->h->magic != SHM_CURSOR_MAGIC || c->h->layout != SHM_LAYOUT) {
		snprintf(err, errlen, "cursor header is not sipc's");
		munmap(p, SHM_CURSOR_BYTES);
		c->h = NULL;
		return -1;
	}
	close(fd);
	return 0;
}

void
shm_cursor_close(struct shm_cursor *c)
{
	if (c->h)
		munmap(c->h, SHM_CURSOR_BYTES);
	if (c->fd != -1)
		close(c->fd);
	c->h = NULL;
	c->fd = -1;
}

int
shm_eventfd(void)
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void
shm_wake(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(fd, &one, sizeof(one));
	while (n == -1 && errno == EINTR);
}

void
shm_drain_eventfd(int fd)
{
	uint64_t v;
	ssize_t n;

	do
		n = read(fd, &v, sizeof(v));
	while (n == -1 && errno == EINTR);
}
