/*
 * dispatch.c - what sipc-epmd does with each message: a handler per type,
 * each decoding its payload, acting on the registry and answering with
 * exactly one OK or ERROR carrying the request id.  JOIN and LEAVE for
 * watchers are encoded once per change and queued to every watcher.
 *
 * Bad input gets an ERROR and the session goes on; only framing errors
 * (found in session.c) and a failed version negotiation close a session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/addr.h"
#include "epmd.h"
#include "monitor.h"

struct handler {
	uint8_t	  type;
	int	  request;	/* counts as activity for the idle timeout */
	void	(*fn)(struct session *, const struct wire_header *,
		    const uint8_t *);
};

static void
bad_message(struct session *s, const struct wire_header *h, int err)
{
	uint16_t code = WIRE_ERR_BAD_MESSAGE;

	if (err == WIRE_EHANDLE)
		code = WIRE_ERR_BAD_HANDLE;
	else if (err == WIRE_EENDPOINT)
		code = WIRE_ERR_BAD_ENDPOINT;
	session_error(s, h->reqid, code, "%s: %s", wire_type_name(h->type),
	    wire_strerror(err));
}

static void
send_out(struct session *s, int rc, uint32_t reqid)
{
	struct wbuf *w = &s->b->out;

	if (rc == 0)
		session_send(s, w->data, w->len);
	else
		session_error(s, reqid, WIRE_ERR_INTERNAL, "cannot encode "
		    "answer: %s", wire_strerror(rc));
}

void
dispatch_record(const struct registration *g, struct wire_record *rec)
{
	rec->id = g->id;
	rec->instance = g->instance;
	reg_ep_to_wire(&g->ep, &rec->ep);
	if (g->rhost) {
		rec->host.ptr = g->rhost;
		rec->host.len = g->rhostlen;
		rec->pid = g->rpid;
	} else {
		rec->host.ptr = g->owner->host;
		rec->host.len = g->owner->hostlen;
		rec->pid = g->owner->pid;
	}
	rec->registered_ms = g->registered_ms;
}

/* ---- Handshake and heartbeats -------------------------------------------- */

static void
on_hello(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct wire_hello_ok ok;
	struct wire_hello m;
	uint32_t hb;
	int rc, v;

	if (s->state != SESSION_HANDSHAKE) {
		session_error(s, h->reqid, WIRE_ERR_UNEXPECTED, "HELLO was "
		    "already done");
		return;
	}
	if ((rc = wire_dec_hello(p, h->len, &m)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	v = m.max_version < SIPC_PROTO_VERSION_MAX ? m.max_version :
	    SIPC_PROTO_VERSION_MAX;
	if (v < m.min_version || v < SIPC_PROTO_VERSION_MIN) {
		session_close(s, WIRE_ERR_VERSION, "client speaks protocol "
		    "versions %u to %u, this broker speaks %u to %u",
		    m.min_version, m.max_version, SIPC_PROTO_VERSION_MIN,
		    SIPC_PROTO_VERSION_MAX);
		return;
	}
	/* A client may ask for faster heartbeats than the broker's, never
	 * slower ones. */
	hb = b->cfg.heartbeat_ms;
	if (m.heartbeat_ms && m.heartbeat_ms < hb)
		hb = m.heartbeat_ms < SIPC_MIN_HEARTBEAT_MS ?
		    SIPC_MIN_HEARTBEAT_MS : m.heartbeat_ms;
	s->version = (uint8_t)v;
	s->features = b->cfg.compression ? m.features & WIRE_FEAT_ZLIB : 0;
	s->heartbeat_ms = hb;
	memcpy(s->host, m.host.ptr, m.host.len);
	s->host[m.host.len] = '\0';
	memcpy(s->software, m.software.ptr, m.software.len);
	s->software[m.software.len] = '\0';
	s->pid = m.pid;
	s->owner.host = s->host;
	s->owner.hostlen = m.host.len;
	s->owner.pid = m.pid;

	memset(&ok, 0, sizeof(ok));
	ok.version = s->version;
	ok.features = s->features;
	ok.heartbeat_ms = hb;
	ok.session_id = s->id;
	ok.max_frame = b->cfg.max_frame;
	ok.software.ptr = EPMD_SOFTWARE;
	ok.software.len = (uint16_t)strlen(EPMD_SOFTWARE);
	wbuf_reset(&b->out);
	send_out(s, wire_enc_ok_hello(&b->out, h->reqid, &ok), h->reqid);
	session_ready(s);
	log_debug("session %llu: HELLO from %s on %s, pid %u, heartbeat %u ms",
	    (unsigned long long)s->id, s->software[0] ? s->software : "?",
	    s->host[0] ? s->host : "?", s->pid, hb);
}

static void
on_ping(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct wbuf *w = &s->b->out;
	uint64_t token;
	int rc;

	if ((rc = wire_dec_u64(p, h->len, &token)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	wbuf_reset(w);
	send_out(s, wire_enc_u64(w, WIRE_PONG, h->reqid, token), h->reqid);
}

static void
on_pong(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	(void)s;
	(void)h;
	(void)p;
	/* Arrival alone counts: session.c updated last_rx_ms. */
}

static void
on_error(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct wire_error e;

	/* Never answered: an ERROR for an ERROR could loop forever. */
	if (wire_dec_error(p, h->len, &e) == 0)
		log_debug("session %llu: peer reports %s: %.*s",
		    (unsigned long long)s->id, wire_errcode_name(e.code),
		    (int)e.text.len, e.text.ptr);
}

/* ---- Registrations ------------------------------------------------------- */

static void
on_register(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct registration *g;
	struct wire_register m;
	char ep[160];
	int rc;

	if ((rc = wire_dec_register(p, h->len, &m)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	if (b->cluster) {
		cluster_register(s, h->reqid, &m);
		return;
	}
	rc = reg_add(b->reg, &s->owner, m.handle.ptr, m.handle.len,
	    m.instance, &m.ep, wall_ms(), b->cfg.max_registrations, &g);
	switch (rc) {
	case REG_NEW:
		if (log_get_level() == LOG_LEVEL_DEBUG) {
			addr_format_endpoint(&m.ep, ep, sizeof(ep));
			log_debug("session %llu: registered '%.*s' at %s as "
			    "%llu", (unsigned long long)s->id,
			    (int)m.handle.len, m.handle.ptr, ep,
			    (unsigned long long)g->id);
		}
		/* FALLTHROUGH */
	case REG_SAME:
		wbuf_reset(&b->out);
		send_out(s, wire_enc_ok_register(&b->out, h->reqid, g->id),
		    h->reqid);
		return;
	case REG_EEXISTS:
		addr_format_endpoint(&m.ep, ep, sizeof(ep));
		session_error(s, h->reqid, WIRE_ERR_EXISTS, "%s is already "
		    "registered for this handle by another session or "
		    "receiver", ep);
		return;
	case REG_ELIMIT:
		session_error(s, h->reqid, WIRE_ERR_LIMIT, "this session "
		    "holds %u registrations, the limit",
		    b->cfg.max_registrations);
		return;
	case REG_EFULL:
		session_error(s, h->reqid, WIRE_ERR_LIMIT, "the handle has "
		    "%d receivers, the limit", SIPC_MAX_RECEIVERS_PER_HANDLE);
		return;
	default:
		session_error(s, h->reqid, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
}

static void
on_unregister(struct session *s, const struct wire_header *h,
    const uint8_t *p)
{
	struct broker *b = s->b;
	struct registration *g;
	uint64_t id;
	int rc;

	if ((rc = wire_dec_u64(p, h->len, &id)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	if (b->cluster && (g = reg_find(b->reg, id)) != NULL &&
	    g->owner == &s->owner)
		cluster_unregistered(b, g);
	switch (reg_remove(b->reg, &s->owner, id, WIRE_LEAVE_UNREGISTERED)) {
	case 0:
		log_debug("session %llu: unregistered %llu",
		    (unsigned long long)s->id, (unsigned long long)id);
		wbuf_reset(&b->out);
		send_out(s, wire_enc_ok_empty(&b->out, h->reqid,
		    WIRE_UNREGISTER), h->reqid);
		return;
	case REG_ENOTOWNER:
		session_error(s, h->reqid, WIRE_ERR_NOT_OWNER, "registration "
		    "%llu belongs to another session",
		    (unsigned long long)id);
		return;
	default:
		session_error(s, h->reqid, WIRE_ERR_NOT_FOUND, "no "
		    "registration %llu", (unsigned long long)id);
		return;
	}
}

/* Answers LOOKUP or WATCH with every registration of handle h. */
static void
send_records(struct session *s, const struct wire_header *h,
    struct reg_handle *rh)
{
	struct wbuf *w = &s->b->out;
	struct registration *g;
	struct wire_record rec;
	uint32_t n = 0;
	size_t start;

	wbuf_reset(w);
	start = wire_enc_ok_seq_begin(w, h->reqid, h->type);
	if (rh) {
		TAILQ_FOREACH(g, &rh->regs, h_entry) {
			dispatch_record(g, &rec);
			wire_put_record(w, &rec);
			n++;
		}
	}
	send_out(s, wire_enc_ok_seq_end(w, start, n), h->reqid);
}

static void
on_lookup(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct wire_str handle;
	int rc;

	if ((rc = wire_dec_handle(p, h->len, &handle)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	send_records(s, h, reg_handle_find(s->b->reg, handle.ptr, handle.len));
}

static void
on_watch(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct reg_handle *rh;
	struct wire_str handle;
	int rc;

	if ((rc = wire_dec_handle(p, h->len, &handle)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	rc = reg_watch(b->reg, &s->owner, handle.ptr, handle.len,
	    b->cfg.max_watches, &rh);
	if (rc == REG_ELIMIT) {
		session_error(s, h->reqid, WIRE_ERR_LIMIT, "this session "
		    "holds %u watches, the limit", b->cfg.max_watches);
		return;
	}
	if (rc < 0) {
		session_error(s, h->reqid, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
	/* The snapshot and later JOIN/LEAVE cannot interleave: both happen
	 * on this one thread, the snapshot first. */
	send_records(s, h, rh);
}

static void
on_unwatch(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct wire_str handle;
	int rc;

	if ((rc = wire_dec_handle(p, h->len, &handle)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	if (reg_unwatch(b->reg, &s->owner, handle.ptr, handle.len) != 0) {
		session_error(s, h->reqid, WIRE_ERR_NOT_FOUND, "not watching "
		    "'%.*s'", (int)handle.len, handle.ptr);
		return;
	}
	wbuf_reset(&b->out);
	send_out(s, wire_enc_ok_empty(&b->out, h->reqid, WIRE_UNWATCH),
	    h->reqid);
}

static void
on_list(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct wbuf *w = &b->out;
	struct reg_handle **hs;
	struct wire_list m;
	uint32_t limit, count = 0;
	size_t start;
	long n;
	int rc;

	if ((rc = wire_dec_list(p, h->len, &m)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	limit = m.limit == 0 || m.limit > SIPC_LIST_PAGE_MAX ?
	    SIPC_LIST_PAGE_MAX : m.limit;
	if ((hs = calloc(limit + 1, sizeof(*hs))) == NULL ||
	    (n = reg_list(b->reg, m.after.ptr, m.after.len, hs,
	    limit + 1)) < 0) {
		free(hs);
		session_error(s, h->reqid, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
	wbuf_reset(w);
	start = wire_enc_ok_list_begin(w, h->reqid);
	while (count < limit && count < (uint32_t)n) {
		/* Stop early rather than exceed the frame limit. */
		if (w->len + 2 + hs[count]->len + 4 >
		    SIPC_HEADER_SIZE + (size_t)b->cfg.max_frame)
			break;
		wire_put_list_entry(w, hs[count]->name, hs[count]->len,
		    hs[count]->nregs);
		count++;
	}
	free(hs);
	send_out(s, wire_enc_ok_list_end(w, start, count, (uint32_t)n > count),
	    h->reqid);
}

static void
on_stats(struct session *s, const struct wire_header *h, const uint8_t *p)
{
	struct broker *b = s->b;
	struct wbuf *w = &b->out;
	struct jo_stat st[SIPC_STATS_MAX];
	size_t start, i, n;
	int rc;

	if ((rc = wire_dec_empty(p, h->len)) != 0) {
		bad_message(s, h, rc);
		return;
	}
	/* The same list as /v1/varz's counters (monitor.c). */
	n = monitor_counters(b, st, SIPC_STATS_MAX);
	wbuf_reset(w);
	start = wire_enc_ok_seq_begin(w, h->reqid, WIRE_STATS);
	for (i = 0; i < n; i++)
		wire_put_stat(w, st[i].name, st[i].value);
	/* Cluster mode: its state, and each broker's entry. */
	n += cluster_put_stats(b, w);
	send_out(s, wire_enc_ok_seq_end(w, start, (uint32_t)n), h->reqid);
}

static void
on_unexpected(struct session *s, const struct wire_header *h,
    const uint8_t *p)
{
	(void)p;
	session_error(s, h->reqid, WIRE_ERR_UNEXPECTED, "%s is not a message "
	    "a broker takes", wire_type_name(h->type));
}

static const struct handler handlers[] = {
	{ WIRE_HELLO,		1, on_hello },
	{ WIRE_PING,		0, on_ping },
	{ WIRE_PONG,		0, on_pong },
	{ WIRE_ERROR,		0, on_error },
	{ WIRE_REGISTER,	1, on_register },
	{ WIRE_UNREGISTER,	1, on_unregister },
	{ WIRE_LOOKUP,		1, on_lookup },
	{ WIRE_WATCH,		1, on_watch },
	{ WIRE_UNWATCH,		1, on_unwatch },
	{ WIRE_LIST,		1, on_list },
	{ WIRE_STATS,		1, on_stats },
	{ WIRE_OK,		0, on_unexpected },
	{ WIRE_JOIN,		0, on_unexpected },
	{ WIRE_LEAVE,		0, on_unexpected },
	{ WIRE_DHELLO,		0, on_unexpected },
	{ WIRE_DATA,		0, on_unexpected },
	{ WIRE_ACK,		0, on_unexpected },
	{ WIRE_REPLY,		0, on_unexpected },
};

void
dispatch_frame(struct session *s, const struct wire_header *h,
    const uint8_t *p)
{
	size_t i;

	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (handlers[i].type != h->type)
			continue;
		if (s->state == SESSION_HANDSHAKE && h->type != WIRE_HELLO) {
			session_error(s, h->reqid, WIRE_ERR_HELLO_REQUIRED,
			    "send HELLO first (got %s)",
			    wire_type_name(h->type));
			return;
		}
		if (handlers[i].request)
			s->last_req_ms = s->last_rx_ms;
		handlers[i].fn(s, h, p);
		return;
	}
	session_error(s, h->reqid, WIRE_ERR_UNKNOWN_TYPE, "unknown message "
	    "type 0x%02x", h->type);
}

void
dispatch_notify(void *arg, const struct reg_event *ev)
{
	struct broker *b = arg;
	struct wbuf *w = &b->evout;
	struct wire_join j;
	struct wire_leave l;
	struct reg_watch *rw;
	struct session *s;
	int rc;

	wbuf_reset(w);
	if (ev->kind == REG_JOIN) {
		j.handle.ptr = ev->handle->name;
		j.handle.len = ev->handle->len;
		dispatch_record(ev->reg, &j.rec);
		rc = wire_enc_join(w, &j);
	} else {
		l.handle.ptr = ev->handle->name;
		l.handle.len = ev->handle->len;
		l.id = ev->reg->id;
		l.reason = ev->reason;
		rc = wire_enc_leave(w, &l);
	}
	if (rc != 0) {
		log_warnx("cannot encode %s: %s", ev->kind == REG_JOIN ?
		    "JOIN" : "LEAVE", wire_strerror(rc));
		return;
	}
	TAILQ_FOREACH(rw, &ev->handle->watches, h_entry) {
		s = rw->owner->arg;
		session_send(s, w->data, w->len);
	}
}
