/*
 * registry.c - handle -> registrations, watches, ids (see registry.h).
 *
 * Two hash tables: handles by name (SipHash under a per-process key, so a
 * client cannot pick colliding handles) and registrations by id.  Both chain
 * and double when their load passes one.  LIST wants handles in order; the
 * sorted array is rebuilt lazily, only after the set of handles changed.
 */
#include <stdlib.h>
#include <string.h>

#include "registry.h"

struct registry {
	reg_notify_fn		  notify;
	void			 *arg;
	uint8_t			  seed[16];
	uint64_t		  next_id;

	struct reg_handle	**hbuckets;
	size_t			  hmask;
	size_t			  nhandle_entries;	/* incl. watch-only */

	struct registration	**ibuckets;
	size_t			  imask;

	struct reg_stats	  st;

	struct reg_handle	**sorted;
	size_t			  nsorted;
	size_t			  sorted_cap;
	int			  sorted_dirty;
};

#define INITIAL_BUCKETS	64

/* ---- SipHash-2-4 --------------------------------------------------------- */

static uint64_t
ld_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

uint64_t
reg_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = ld_le64(key), k1 = ld_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = ld_le64(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (; left > 0; left--)
		b |= (uint64_t)p[i + left - 1] << (8 * (left - 1));
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- Creation ------------------------------------------------------------ */

struct registry *
reg_new(reg_notify_fn notify, void *arg, uint64_t first_id,
    const uint8_t seed[16])
{
	struct registry *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->notify = notify;
	r->arg = arg;
	r->next_id = first_id ? first_id : 1;
	memcpy(r->seed, seed, sizeof(r->seed));
	r->hbuckets = calloc(INITIAL_BUCKETS, sizeof(*r->hbuckets));
	r->ibuckets = calloc(INITIAL_BUCKETS, sizeof(*r->ibuckets));
	if (r->hbuckets == NULL || r->ibuckets == NULL) {
		reg_free(r);
		return NULL;
	}
	r->hmask = r->imask = INITIAL_BUCKETS - 1;
	return r;
}

void
reg_free(struct registry *r)
{
	struct reg_handle *h, *hn;
	struct registration *g, *gn;
	struct reg_watch *w, *wn;
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; r->hbuckets && i <= r->hmask; i++) {
		for (h = r->hbuckets[i]; h; h = hn) {
			hn = h->next;
			for (g = TAILQ_FIRST(&h->regs); g; g = gn) {
				gn = TAILQ_NEXT(g, h_entry);
				free(g->ep.path);
				free(g->rhost);
				free(g);
			}
			for (w = TAILQ_FIRST(&h->watches); w; w = wn) {
				wn = TAILQ_NEXT(w, h_entry);
				free(w);
			}
			free(h);
		}
	}
	free(r->hbuckets);
	free(r->ibuckets);
	free(r->sorted);
	free(r);
}

void
reg_owner_init(struct reg_owner *o, void *arg)
{
	memset(o, 0, sizeof(*o));
	TAILQ_INIT(&o->regs);
	TAILQ_INIT(&o->watches);
	o->arg = arg;
}

/* ---- Handles ------------------------------------------------------------- */

static void
handle_rehash(struct registry *r)
{
	size_t nsize = (r->hmask + 1) * 2, i;
	struct reg_handle **nb, *h, *hn;

	if ((nb = calloc(nsize, sizeof(*nb))) == NULL)
		return;		/* keep the old table: slower, still right */
	for (i = 0; i <= r->hmask; i++) {
		for (h = r->hbuckets[i]; h; h = hn) {
			hn = h->next;
			h->next = nb[h->hash & (nsize - 1)];
			nb[h->hash & (nsize - 1)] = h;
		}
	}
	free(r->hbuckets);
	r->hbuckets = nb;
	r->hmask = nsize - 1;
}

struct reg_handle *
reg_handle_find(struct registry *r, const char *name, size_t len)
{
	uint64_t hash = reg_siphash(r->seed, name, len);
	struct reg_handle *h;

	for (h = r->hbuckets[hash & r->hmask]; h; h = h->next)
		if (h->hash == hash && h->len == len &&
		    memcmp(h->name, name, len) == 0)
			return h;
	return NULL;
}

static struct reg_handle *
handle_get(struct registry *r, const char *name, size_t len)
{
	struct reg_handle *h;

	if ((h = reg_handle_find(r, name, len)) != NULL)
		return h;
	if ((h = calloc(1, sizeof(*h) + len + 1)) == NULL)
		return NULL;
	h->hash = reg_siphash(r->seed, name, len);
	h->len = (uint16_t)len;
	memcpy(h->name, name, len);
	TAILQ_INIT(&h->regs);
	TAILQ_INIT(&h->watches);
	h->next = r->hbuckets[h->hash & r->hmask];
	r->hbuckets[h->hash & r->hmask] = h;
	if (++r->nhandle_entries > r->hmask + 1)
		handle_rehash(r);
	return h;
}

/* Frees h when nothing refers to it any more. */
static void
handle_put(struct registry *r, struct reg_handle *h)
{
	struct reg_handle **pp;

	if (h->nregs || h->nwatches)
		return;
	for (pp = &r->hbuckets[h->hash & r->hmask]; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	r->nhandle_entries--;
	free(h);
}

/* ---- Registrations ------------------------------------------------------- */

void
reg_ep_to_wire(const struct reg_ep *in, struct wire_endpoint *out)
{
	memset(out, 0, sizeof(*out));
	out->family = in->family;
	out->port = in->port;
	memcpy(out->addr, in->addr, sizeof(out->addr));
	if (in->family == WIRE_AF_UNIX && in->path)
		strncpy(out->path, in->path, sizeof(out->path) - 1);
}

int
reg_ep_equal(const struct reg_ep *a, const struct wire_endpoint *b)
{
	if (a->family != b->family)
		return 0;
	switch (a->family) {
	case WIRE_AF_INET:
		return a->port == b->port && memcmp(a->addr, b->addr, 4) == 0;
	case WIRE_AF_INET6:
		return a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
	default:
		return strcmp(a->path, b->path) == 0;
	}
}

static void
id_rehash(struct registry *r)
{
	size_t nsize = (r->imask + 1) * 2, i;
	struct registration **nb, *g, *gn;

	if ((nb = calloc(nsize, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i <= r->imask; i++) {
		for (g = r->ibuckets[i]; g; g = gn) {
			gn = g->id_next;
			g->id_next = nb[g->id & (nsize - 1)];
			nb[g->id & (nsize - 1)] = g;
		}
	}
	free(r->ibuckets);
	r->ibuckets = nb;
	r->imask = nsize - 1;
}

struct registration *
reg_find(struct registry *r, uint64_t id)
{
	struct registration *g;

	for (g = r->ibuckets[id & r->imask]; g; g = g->id_next)
		if (g->id == id)
			return g;
	return NULL;
}

int
reg_add(struct registry *r, struct reg_owner *o, const char *name,
    size_t len, uint64_t instance, const struct wire_endpoint *ep,
    uint64_t now_ms, uint32_t max_regs, struct registration **out)
{
	return reg_add_id(r, o, name, len, instance, ep, now_ms, max_regs, 0,
	    0, NULL, 0, 0, out);
}

int
reg_add_id(struct registry *r, struct reg_owner *o, const char *name,
    size_t len, uint64_t instance, const struct wire_endpoint *ep,
    uint64_t now_ms, uint32_t max_regs, uint64_t id, int mirror,
    const char *host, size_t hostlen, uint32_t pid, struct registration **out)
{
	struct reg_handle *h;
	struct registration *g;
	struct reg_event ev;

	if (id != 0 && (g = reg_find(r, id)) != NULL) {
		*out = g;
		return REG_SAME;
	}
	if ((h = reg_handle_find(r, name, len)) != NULL) {
		TAILQ_FOREACH(g, &h->regs, h_entry) {
			if (mirror)
				break;
			if (!reg_ep_equal(&g->ep, ep))
				continue;
			if (g->owner != o || g->instance != instance)
				return REG_EEXISTS;
			*out = g;
			return REG_SAME;
		}
		/* A mirror follows etcd, where brokers checking the limit at
		 * once may overshoot it a little: room for that, bounded. */
		if (h->nregs >= (mirror ? 2 : 1) *
		    SIPC_MAX_RECEIVERS_PER_HANDLE)
			return REG_EFULL;
	}
	if (o->nregs >= max_regs)
		return REG_ELIMIT;
	if (h == NULL && (h = handle_get(r, name, len)) == NULL)
		return REG_ENOMEM;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		goto nomem;
	g->ep.family = ep->family;
	g->ep.port = ep->port;
	memcpy(g->ep.addr, ep->addr, sizeof(g->ep.addr));
	if (ep->family == WIRE_AF_UNIX &&
	    (g->ep.path = strdup(ep->path)) == NULL) {
		free(g);
		goto nomem;
	}
	if (host) {
		if ((g->rhost = malloc(hostlen + 1)) == NULL) {
			free(g->ep.path);
			free(g);
			goto nomem;
		}
		memcpy(g->rhost, host, hostlen);
		g->rhost[hostlen] = '\0';
		g->rhostlen = (uint16_t)hostlen;
		g->rpid = pid;
	}
	g->id = id ? id : r->next_id++;
	g->instance = instance;
	g->registered_ms = now_ms;
	g->owner = o;
	g->handle = h;
	g->id_next = r->ibuckets[g->id & r->imask];
	r->ibuckets[g->id & r->imask] = g;
	TAILQ_INSERT_TAIL(&h->regs, g, h_entry);
	TAILQ_INSERT_TAIL(&o->regs, g, o_entry);
	o->nregs++;
	if (h->nregs++ == 0) {
		r->st.handles++;
		r->sorted_dirty = 1;
	}
	if (++r->st.registrations > r->imask + 1)
		id_rehash(r);
	if (h->nwatches && r->notify) {
		ev.kind = REG_JOIN;
		ev.handle = h;
		ev.reg = g;
		ev.reason = 0;
		r->notify(r->arg, &ev);
	}
	*out = g;
	return REG_NEW;
nomem:
	handle_put(r, h);
	return REG_ENOMEM;
}

static void
reg_unlink(struct registry *r, struct registration *g, uint8_t reason)
{
	struct reg_handle *h = g->handle;
	struct registration **pp;
	struct reg_event ev;

	if (h->nwatches && r->notify) {
		ev.kind = REG_LEAVE;
		ev.handle = h;
		ev.reg = g;
		ev.reason = reason;
		r->notify(r->arg, &ev);
	}
	for (pp = &r->ibuckets[g->id & r->imask]; *pp; pp = &(*pp)->id_next) {
		if (*pp == g) {
			*pp = g->id_next;
			break;
		}
	}
	TAILQ_REMOVE(&h->regs, g, h_entry);
	TAILQ_REMOVE(&g->owner->regs, g, o_entry);
	g->owner->nregs--;
	r->st.registrations--;
	if (--h->nregs == 0) {
		r->st.handles--;
		r->sorted_dirty = 1;
	}
	handle_put(r, h);
	free(g->ep.path);
	free(g->rhost);
	free(g);
}

int
reg_remove(struct registry *r, struct reg_owner *o, uint64_t id,
    uint8_t reason)
{
	struct registration *g;

	if ((g = reg_find(r, id)) == NULL)
		return REG_ENOTFOUND;
	if (g->owner != o)
		return REG_ENOTOWNER;
	reg_unlink(r, g, reason);
	return 0;
}

/* ---- Watches ------------------------------------------------------------- */

int
reg_watch(struct registry *r, struct reg_owner *o, const char *name,
    size_t len, uint32_t max_watches, struct reg_handle **out)
{
	struct reg_handle *h;
	struct reg_watch *w;

	if ((h = reg_handle_find(r, name, len)) != NULL) {
		TAILQ_FOREACH(w, &h->watches, h_entry) {
			if (w->owner == o) {
				*out = h;
				return REG_SAME;
			}
		}
	}
	if (o->nwatches >= max_watches)
		return REG_ELIMIT;
	if (h == NULL && (h = handle_get(r, name, len)) == NULL)
		return REG_ENOMEM;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		handle_put(r, h);
		return REG_ENOMEM;
	}
	w->owner = o;
	w->handle = h;
	TAILQ_INSERT_TAIL(&h->watches, w, h_entry);
	TAILQ_INSERT_TAIL(&o->watches, w, o_entry);
	h->nwatches++;
	o->nwatches++;
	r->st.watches++;
	*out = h;
	return REG_NEW;
}

static void
watch_unlink(struct registry *r, struct reg_watch *w)
{
	struct reg_handle *h = w->handle;

	TAILQ_REMOVE(&h->watches, w, h_entry);
	TAILQ_REMOVE(&w->owner->watches, w, o_entry);
	h->nwatches--;
	w->owner->nwatches--;
	r->st.watches--;
	free(w);
	handle_put(r, h);
}

int
reg_unwatch(struct registry *r, struct reg_owner *o, const char *name,
    size_t len)
{
	struct reg_handle *h;
	struct reg_watch *w;

	if ((h = reg_handle_find(r, name, len)) == NULL)
		return REG_ENOTFOUND;
	TAILQ_FOREACH(w, &h->watches, h_entry) {
		if (w->owner == o) {
			watch_unlink(r, w);
			return 0;
		}
	}
	return REG_ENOTFOUND;
}

void
reg_owner_clear(struct registry *r, struct reg_owner *o, uint8_t reason)
{
	struct registration *g;
	struct reg_watch *w;

	/* Watches first: the owner is going away and needs no LEAVE of its
	 * own registrations. */
	while ((w = TAILQ_FIRST(&o->watches)) != NULL)
		watch_unlink(r, w);
	while ((g = TAILQ_FIRST(&o->regs)) != NULL)
		reg_unlink(r, g, reason);
}

/* ---- Listing ------------------------------------------------------------- */

static int
name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
handle_cmp(const void *a, const void *b)
{
	const struct reg_handle *x = *(struct reg_handle *const *)a;
	const struct reg_handle *y = *(struct reg_handle *const *)b;

	return name_cmp(x->name, x->len, y->name, y->len);
}

static int
sort_handles(struct registry *r)
{
	struct reg_handle *h, **ns;
	size_t i, n = 0;

	if (!r->sorted_dirty && r->sorted)
		return 0;
	if (r->st.handles > r->sorted_cap || r->sorted == NULL) {
		size_t cap = r->st.handles ? r->st.handles : 1;

		if ((ns = realloc(r->sorted, cap * sizeof(*ns))) == NULL)
			return -1;
		r->sorted = ns;
		r->sorted_cap = cap;
	}
	for (i = 0; i <= r->hmask; i++)
		for (h = r->hbuckets[i]; h; h = h->next)
			if (h->nregs)
				r->sorted[n++] = h;
	qsort(r->sorted, n, sizeof(*r->sorted), handle_cmp);
	r->nsorted = n;
	r->sorted_dirty = 0;
	return 0;
}

long
reg_list(struct registry *r, const char *after, size_t alen,
    struct reg_handle **out, size_t max)
{
	size_t lo = 0, hi, mid, n;

	if (sort_handles(r) == -1)
		return -1;
	hi = r->nsorted;
	if (alen > 0) {
		/* First handle strictly greater than after. */
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (name_cmp(r->sorted[mid]->name, r->sorted[mid]->len,
			    after, alen) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	n = r->nsorted - lo;
	if (n > max)
		n = max;
	memcpy(out, r->sorted + lo, n * sizeof(*out));
	return (long)n;
}

void
reg_stats(const struct registry *r, struct reg_stats *st)
{
	*st = r->st;
}
