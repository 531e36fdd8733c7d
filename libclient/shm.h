/*
 * shm.h - the shared-memory ring of same-host data connections (shm.c),
 * PROTOCOL.md section 6.7.
 *
 * A sender writes each message once into a ring in a sealed memfd that
 * every local receiver maps read-only; each receiver says how far it has
 * read in a cursor page of its own, which the sender maps read-only.
 * Nothing has a name in a file system: both live while a process holds
 * the descriptor or a mapping, and go with the last one.
 *
 * Layout (host byte order, both sides are on one host):
 *
 *   ring:   4096-byte header, then `size` bytes of entries (a power of
 *           two); positions count bytes written since the ring was made,
 *           an entry at position p starts at data + (p & (size - 1)).
 *   entry:  u32 len, u16 type, u16 flags, u64 seq, then len bytes, the
 *           whole padded to 16 bytes; an entry never wraps (a PAD entry
 *           fills the end of the data area first).
 *   cursor: 4096 bytes written by its receiver only.
 */
#ifndef SIPC_SHM_H
#define SIPC_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_RING_MAGIC		0x53495052u	/* "SIPR" */
#define SHM_CURSOR_MAGIC	0x53495043u	/* "SIPC" */
#define SHM_LAYOUT		1
#define SHM_HDR_BYTES		4096
#define SHM_CURSOR_BYTES	4096
#define SHM_ALIGN		16
#define SHM_ENTRY_HDR		16
#define SHM_CHUNK_HDR		16		/* u64 total, u64 offset */
#define SHM_MIN_SIZE		(64 * 1024)
#define SHM_MAX_SIZE		(1024 * 1024 * 1024)
#define SHM_SMALLEST_RING	(1024 * 1024)	/* what a sender makes */

/* Entry types. */
#define SHM_E_MSG		1	/* one whole message: seq, body */
#define SHM_E_PAD		2	/* skip to the end of the data area */
#define SHM_E_SWITCH		3	/* the ring ends; seq: the next's gen */
#define SHM_E_CHUNK		4	/* part of a message larger than
					   SHM_MAX_ENTRY of the ring */
/* CHUNK flags. */
#define SHM_F_LAST		0x0001

struct shm_ring_hdr {
	uint32_t		 magic;
	uint32_t		 layout;
	uint64_t		 size;		/* bytes of entries */
	uint64_t		 gen;
	uint8_t			 pad0[40];
	_Atomic uint64_t	 head;		/* offset 64: bytes published */
	uint8_t			 pad1[56];
	_Atomic uint32_t	 want_progress;	/* offset 128 */
};

struct shm_cursor_hdr {
	uint32_t		 magic;
	uint32_t		 layout;
	uint8_t			 pad0[56];
	_Atomic uint64_t	 released_pos;	/* offset 64 */
	_Atomic uint64_t	 released_seq;	/* offset 72 */
	_Atomic uint64_t	 gen;		/* offset 80 */
	uint8_t			 pad1[40];
	_Atomic uint32_t	 sleeping;	/* offset 128 */
};

struct shm_entry {
	uint32_t		 len;
	uint16_t		 type;
	uint16_t		 flags;
	uint64_t		 seq;
};

/* The sender's ring: written by one thread (the sender's I/O thread). */
struct shm_ring {
	int			 fd;		/* -1: none */
	struct shm_ring_hdr	*h;
	uint8_t			*data;
	uint64_t		 size;
	uint64_t		 head;		/* written, maybe not published */
	uint64_t		 gen;
};

/* A receiver's read-only view of a ring. */
struct shm_view {
	const struct shm_ring_hdr *h;		/* NULL: none */
	const uint8_t		*data;
	uint64_t		 size;
	uint64_t		 gen;
	uint64_t		 pos;		/* next entry */
};

/* A cursor page: the receiver's mapping is writable, the sender's not. */
struct shm_cursor {
	int			 fd;		/* -1: none (sender: closed) */
	struct shm_cursor_hdr	*h;
};

/* Bytes an entry with len bytes of body takes in the ring. */
static inline uint64_t
shm_entry_bytes(uint64_t len)
{
	return (SHM_ENTRY_HDR + len + SHM_ALIGN - 1) & ~(uint64_t)(SHM_ALIGN - 1);
}

/* Largest body of one entry in a ring of size bytes. */
static inline uint64_t
shm_max_entry(uint64_t size)
{
	return size / 4 - SHM_ENTRY_HDR;
}

/* Ring size for want bytes (twice the high-water mark: room for one
 * receiver at its mark and the others ahead of it): the power of two at
 * or above, SHM_SMALLEST_RING .. SHM_MAX_SIZE. */
uint64_t shm_ring_size(uint64_t want);

/* Makes a ring of size bytes (a power of two, SHM_MIN_SIZE ..
 * SHM_MAX_SIZE): 0, or -1 with err. */
int	shm_ring_create(struct shm_ring *r, uint64_t size, uint64_t gen,
	    char *err, size_t errlen);
void	shm_ring_destroy(struct shm_ring *r);
/*
 * Writes an entry of n1 + n2 body bytes (two pieces) at the head, given
 * that everything before tail is free: 0, or -1 when it does not fit now.
 * Not visible to receivers before shm_ring_publish().
 */
int	shm_ring_put(struct shm_ring *r, uint64_t tail, uint16_t type,
	    uint16_t flags, uint64_t seq, const void *p1, size_t n1,
	    const void *p2, size_t n2);
/* Bytes an entry of len takes at the head now, padding included. */
uint64_t shm_ring_need(const struct shm_ring *r, uint64_t len);
/* Makes what was put visible. */
void	shm_ring_publish(struct shm_ring *r);

/* Maps ring fd read-only, checking its seals, size and header against
 * gen: 0, or -1 with err.  Takes fd on success (closed by unmap). */
int	shm_view_map(struct shm_view *v, int fd, uint64_t gen, uint64_t size,
	    uint64_t start, char *err, size_t errlen);
void	shm_view_unmap(struct shm_view *v);
/*
 * The entry at v->pos, up to head: 1 with *e and *body (PAD entries are
 * skipped; v->pos is not advanced), 0 when none is there, -1 when the
 * ring is garbage (why says what).
 */
int	shm_view_peek(struct shm_view *v, uint64_t head, struct shm_entry *e,
	    const uint8_t **body, char *why, size_t whylen);

/* Receiver: a new cursor page: 0, or -1 with err. */
int	shm_cursor_create(struct shm_cursor *c, char *err, size_t errlen);
/* Sender: maps a receiver's page read-only: 0, or -1 with err.  Takes fd
 * on success. */
int	shm_cursor_map(struct shm_cursor *c, int fd, char *err, size_t errlen);
void	shm_cursor_close(struct shm_cursor *c);

/* An eventfd, non-blocking: the fd, or -1. */
int	shm_eventfd(void);
/* Wakes the side sleeping on fd (write 1; a full counter is awake). */
void	shm_wake(int fd);
/* Clears fd's counter. */
void	shm_drain_eventfd(int fd);

#endif
