/*
 * registry.h - the broker's registry: handle -> registrations, and who
 * watches which handle.
 *
 * A pure data structure: no I/O, no clock, no globals.  Every registration
 * and every watch belongs to an owner (a struct reg_owner embedded in a broker
 * session); clearing the owner removes both.  Changes to a watched handle are
 * reported through the notify callback given to reg_new(), once per change,
 * before the registration is freed; the caller walks h->watches to fan out.
 */
#ifndef SIPC_BROKER_REGISTRY_H
#define SIPC_BROKER_REGISTRY_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/wire.h"

struct registry;
struct reg_handle;
struct reg_owner;

/* Endpoint as stored: 24 bytes plus a path only for Unix sockets. */
struct reg_ep {
	uint8_t		 family;	/* WIRE_AF_* */
	uint16_t	 port;
	uint8_t		 addr[16];
	char		*path;		/* WIRE_AF_UNIX only, owned */
};

struct registration {
	uint64_t		 id;
	uint64_t		 instance;
	uint64_t		 registered_ms;
	struct reg_ep		 ep;
	/* A registration mirrored from another broker (cluster mode) has
	 * its own host and pid; NULL: the owner's. */
	char			*rhost;		/* owned */
	uint16_t		 rhostlen;
	uint32_t		 rpid;
	uint64_t		 seen;		/* cluster.c's re-sync mark */
	struct reg_owner	*owner;
	struct reg_handle	*handle;
	struct registration	*id_next;	/* id hash chain */
	TAILQ_ENTRY(registration) h_entry;	/* in handle->regs */
	TAILQ_ENTRY(registration) o_entry;	/* in owner->regs */
};

struct reg_watch {
	struct reg_owner	*owner;
	struct reg_handle	*handle;
	TAILQ_ENTRY(reg_watch)	 h_entry;	/* in handle->watches */
	TAILQ_ENTRY(reg_watch)	 o_entry;	/* in owner->watches */
};

TAILQ_HEAD(reg_list, registration);
TAILQ_HEAD(watch_list, reg_watch);

struct reg_handle {
	struct reg_handle	*next;		/* hash chain */
	uint64_t		 hash;
	struct reg_list		 regs;
	struct watch_list	 watches;
	uint32_t		 nregs;
	uint32_t		 nwatches;
	uint16_t		 len;
	char			 name[];	/* len bytes, then a NUL */
};

/* The owner side; embedded in whatever owns registrations (a session). */
struct reg_owner {
	struct reg_list		 regs;
	struct watch_list	 watches;
	uint32_t		 nregs;
	uint32_t		 nwatches;
	const char		*host;		/* owned by the embedder */
	uint16_t		 hostlen;
	uint32_t		 pid;
	void			*arg;		/* the embedder */
};

enum reg_event_kind {
	REG_JOIN,
	REG_LEAVE
};

struct reg_event {
	enum reg_event_kind	 kind;
	struct reg_handle	*handle;
	struct registration	*reg;
	uint8_t			 reason;	/* WIRE_LEAVE_*, for REG_LEAVE */
};

typedef void (*reg_notify_fn)(void *arg, const struct reg_event *ev);

/* Results. */
#define REG_NEW		0
#define REG_SAME	1	/* idempotent repeat */
#define REG_ENOMEM	(-1)
#define REG_EEXISTS	(-2)	/* endpoint registered by another owner */
#define REG_ELIMIT	(-3)	/* owner's limit reached */
#define REG_EFULL	(-4)	/* handle has SIPC_MAX_RECEIVERS_PER_HANDLE */
#define REG_ENOTFOUND	(-5)
#define REG_ENOTOWNER	(-6)

struct reg_stats {
	uint64_t	registrations;
	uint64_t	handles;	/* handles with at least one receiver */
	uint64_t	watches;
};

/*
 * Creates a registry.  first_id is the first registration id to hand out
 * (ids then count up; the broker puts a random generation in the high bits);
 * seed keys the handle hash so that clients cannot choose colliding handles.
 * Returns NULL when out of memory.
 */
struct registry	*reg_new(reg_notify_fn notify, void *arg, uint64_t first_id,
		    const uint8_t seed[16]);
/* Frees everything, without notifications.  Owners must not be used again
 * except through reg_owner_init(). */
void		 reg_free(struct registry *r);

void		 reg_owner_init(struct reg_owner *o, void *arg);
/* Removes every registration (LEAVE with reason) and watch of o. */
void		 reg_owner_clear(struct registry *r, struct reg_owner *o,
		    uint8_t reason);

/*
 * Adds a registration of (handle, endpoint) for owner o, at most max_regs
 * per owner.  Registering the same endpoint with the same instance again is
 * a no-op that returns REG_SAME and the existing registration.  Returns
 * REG_NEW, REG_SAME, REG_EEXISTS, REG_ELIMIT, REG_EFULL or REG_ENOMEM.
 * The handle must be valid (wire_handle_valid) and ep too.
 */
int		 reg_add(struct registry *r, struct reg_owner *o,
		    const char *handle, size_t hlen, uint64_t instance,
		    const struct wire_endpoint *ep, uint64_t now_ms,
		    uint32_t max_regs, struct registration **out);
/*
 * Cluster mode: adds a registration with the id given (not one of the
 * registry's), skipping the endpoint checks when mirror is set (etcd is
 * the truth: a mirrored registration may share its endpoint with one it
 * supersedes); host[0..hostlen) and pid, when host is not NULL, are kept
 * with it instead of the owner's.  The limits still hold (a mirror's
 * receivers per handle up to twice the limit, for concurrent brokers'
 * overshoot).  Returns REG_NEW,
 * REG_SAME (id already present: *out is it), REG_EEXISTS, REG_ELIMIT,
 * REG_EFULL or REG_ENOMEM.
 */
int		 reg_add_id(struct registry *r, struct reg_owner *o,
		    const char *handle, size_t hlen, uint64_t instance,
		    const struct wire_endpoint *ep, uint64_t registered_ms,
		    uint32_t max_regs, uint64_t id, int mirror,
		    const char *host, size_t hostlen, uint32_t pid,
		    struct registration **out);
/* Removes registration id if o owns it: 0, REG_ENOTFOUND, REG_ENOTOWNER. */
int		 reg_remove(struct registry *r, struct reg_owner *o,
		    uint64_t id, uint8_t reason);
struct registration *reg_find(struct registry *r, uint64_t id);
struct reg_handle *reg_handle_find(struct registry *r, const char *handle,
		    size_t hlen);

/* Watch a handle: REG_NEW, REG_SAME, REG_ELIMIT or REG_ENOMEM; *out is the
 * handle either way on success. */
int		 reg_watch(struct registry *r, struct reg_owner *o,
		    const char *handle, size_t hlen, uint32_t max_watches,
		    struct reg_handle **out);
/* 0 or REG_ENOTFOUND. */
int		 reg_unwatch(struct registry *r, struct reg_owner *o,
		    const char *handle, size_t hlen);

/*
 * Handles that have receivers, in byte order, starting after the handle
 * after[0..alen) (alen 0: from the first).  Fills out[0..max) and returns
 * how many, or -1 when out of memory.
 */
long		 reg_list(struct registry *r, const char *after, size_t alen,
		    struct reg_handle **out, size_t max);

void		 reg_stats(const struct registry *r, struct reg_stats *st);

/* Converts between the wire and the stored endpoint form. */
void		 reg_ep_to_wire(const struct reg_ep *in,
		    struct wire_endpoint *out);
/* 1 when the stored endpoint equals the wire one. */
int		 reg_ep_equal(const struct reg_ep *a,
		    const struct wire_endpoint *b);

/* SipHash-2-4 of data under a 16-byte key. */
uint64_t	 reg_siphash(const uint8_t key[16], const void *data,
		    size_t len);

#endif
