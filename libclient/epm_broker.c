/*
 * epm_broker.c - the broker backend of an EPM: one session with sipc-epmd,
 * kept up for as long as the EPM lives.
 *
 * The broker address may be a list ("a:4455,b:4455"), and a name may
 * resolve to several addresses: together up to MAX_BROKERS.  The session
 * goes to one of them; when it breaks (or cannot be opened) the next one
 * is tried at once, and only after a whole round of failures does the
 * backoff wait.  Brokers of one cluster (sipc-epmd --etcd) share their
 * registrations, so a client fails over without its senders noticing.
 *
 * The session registers the EPM's receivers and watches its senders'
 * handles.  When it breaks it is reopened with capped exponential backoff
 * and jitter, and everything is registered and watched again; senders are
 * told (on_resync) so that they can reconcile their receivers with the new
 * snapshot without dropping connections that still work.  Heartbeats run in
 * both directions: a broker silent for 3 intervals counts as gone.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "../proto/addr.h"
#include "../common/evframe.h"
#include "../common/liveness.h"
#include "internal.h"
#include "../common/tls.h"

#define BACKOFF_MIN_MS		50
#define BACKOFF_MAX_MS		1000	/* a restarted broker is whole in 2 s */
#define HANDSHAKE_MS		5000
#define BROKER_PORT		4455
#define MAX_BROKERS		16
#define FAILOVER_MS		10	/* to the next broker of a list */
#define UNAVAILABLE_RETRY_MS	500	/* REGISTER refused: etcd away */

/* One broker address of the list. */
struct baddr {
	char			 text[300];	/* for messages */
	char			 tls_host[256];	/* checked in the cert */
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
};

enum bstate {
	B_DOWN,
	B_CONNECTING,
	B_HELLO,
	B_READY
};

struct pending {
	TAILQ_ENTRY(pending)	 entry;
	uint32_t		 reqid;
	uint8_t			 type;
	void			*obj;	/* epm_reg or epm_watch; NULL: gone */
};

struct epm_broker {
	sipc_epm		*epm;
	char			 addr[300];	/* the one in use */
	struct baddr		 addrs[MAX_BROKERS];
	int			 naddrs;
	int			 cur;		/* index into addrs */
	int			 failed_round;	/* failures since READY */
	struct event		*retry;		/* REGISTERs refused */
	struct bufferevent	*bev;
	enum bstate		 state;
	uint32_t		 next_reqid;
	uint32_t		 hello_reqid;
	TAILQ_HEAD(, pending)	 pending;
	struct event		*timer;
	struct liveness		 live;		/* once READY */
	int64_t			 deadline;	/* connect or HELLO */
	uint32_t		 max_frame;
	struct backoff		 backoff;
	uint64_t		 generation;	/* bumped when bev goes */
	/* Under epm->mu, read by other threads: */
	struct sockaddr_storage	 local;
	socklen_t		 local_len;
	int			 err_code;
	char			 err_text[400];
	struct wbuf		 out;
	char			 host[SIPC_HOST_MAX + 1];
	uint32_t		 features;	/* negotiated in HELLO */
	struct framer		 framer;
	SSL_CTX			*tls;		/* NULL: plain text */
	int			 psk;
};

static void	b_connect(struct epm_broker *b);
static void	b_down(struct epm_broker *b, int code, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

static void
set_error(struct epm_broker *b, int code, const char *text)
{
	pthread_mutex_lock(&b->epm->mu);
	b->err_code = code;
	snprintf(b->err_text, sizeof(b->err_text), "broker %s: %s", b->addr,
	    text);
	/* Retrying will not fix these: whoever waits for the session may
	 * give up now. */
	if (code == SIPC_EAUTH || code == SIPC_ETLS || code == SIPC_EVERSION) {
		atomic_store(&b->epm->failed, code);
		pthread_cond_broadcast(&b->epm->cv);
	}
	pthread_mutex_unlock(&b->epm->mu);
}

int
broker_connect_error(sipc_epm *epm)
{
	struct epm_broker *b = epm->broker;
	int code;

	pthread_mutex_lock(&epm->mu);
	code = b->err_code ? b->err_code : SIPC_ETIMEDOUT;
	if (b->err_text[0])
		seterr(code, "%s", b->err_text);
	else
		seterr(code, "broker %s: no session within %d ms", b->addr,
		    epm->opts.connect_timeout_ms);
	pthread_mutex_unlock(&epm->mu);
	return code;
}

int
broker_local_addr(sipc_epm *epm, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct epm_broker *b = epm->broker;
	int rc = SIPC_ENOTCONN;

	pthread_mutex_lock(&epm->mu);
	if (atomic_load(&epm->connected) && b->local_len) {
		memcpy(ss, &b->local, sizeof(*ss));
		*sl = b->local_len;
		rc = 0;
	}
	pthread_mutex_unlock(&epm->mu);
	return rc;
}

/* ---- Output -------------------------------------------------------------- */

static int
b_send(struct epm_broker *b)
{
	if (b->bev == NULL || b->out.len == 0)
		return -1;
	if (bufferevent_write(b->bev, b->out.data, b->out.len) == -1)
		return -1;
	live_tx(&b->live, mono_ms());
	return 0;
}

static uint32_t
b_reqid(struct epm_broker *b)
{
	if (++b->next_reqid == 0)
		b->next_reqid = 1;
	return b->next_reqid;
}

static void
b_request(struct epm_broker *b, uint32_t reqid, uint8_t type, void *obj)
{
	struct pending *p;

	if (b_send(b) == -1)
		return;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return;		/* the answer is then ignored */
	p->reqid = reqid;
	p->type = type;
	p->obj = obj;
	TAILQ_INSERT_TAIL(&b->pending, p, entry);
}

static void
send_register(struct epm_broker *b, struct epm_reg *r)
{
	struct wire_register m;

	m.handle.ptr = r->handle;
	m.handle.len = r->hlen;
	m.instance = r->instance;
	m.ep = r->ep;
	r->reqid = b_reqid(b);
	wbuf_reset(&b->out);
	if (wire_enc_register(&b->out, r->reqid, &m) == 0)
		b_request(b, r->reqid, WIRE_REGISTER, r);
}

/* WATCH or UNWATCH w's handle; a WATCH is w's pending one (w->reqid). */
static void
send_watch(struct epm_broker *b, struct epm_watch *w, uint8_t type)
{
	uint32_t reqid = b_reqid(b);

	if (type == WIRE_WATCH)
		w->reqid = reqid;
	wbuf_reset(&b->out);
	if (wire_enc_handle(&b->out, type, reqid, w->handle, w->hlen) == 0)
		b_request(b, reqid, type, type == WIRE_WATCH ? w : NULL);
}

/* Drops every pending request: their answers will not come. */
static void
pending_clear(struct epm_broker *b)
{
	struct pending *p;

	while ((p = TAILQ_FIRST(&b->pending)) != NULL) {
		TAILQ_REMOVE(&b->pending, p, entry);
		free(p);
	}
}

/* Forgets obj in pending answers: it is being freed. */
static void
forget(struct epm_broker *b, void *obj)
{
	struct pending *p;

	TAILQ_FOREACH(p, &b->pending, entry)
		if (p->obj == obj)
			p->obj = NULL;
}

/* ---- Session state ------------------------------------------------------- */

static void
b_ready(struct epm_broker *b, const struct wire_hello_ok *ok)
{
	sipc_epm *epm = b->epm;
	struct epm_watch *w, *wn;
	struct epm_reg *r;

	b->state = B_READY;
	live_start(&b->live, ok->heartbeat_ms, mono_ms(), 1);
	b->max_frame = ok->max_frame;
	b->features = ok->features & WIRE_FEAT_ZLIB;
	frame_open(&b->framer, ok->version, b->features != 0, b->max_frame,
	    b->max_frame);
	atomic_store(&epm->failed, 0);
	backoff_reset(&b->backoff);
	b->failed_round = 0;
	pthread_mutex_lock(&epm->mu);
	b->err_code = 0;
	b->err_text[0] = '\0';
	atomic_store(&epm->connected, 1);
	pthread_cond_broadcast(&epm->cv);
	pthread_mutex_unlock(&epm->mu);
	TAILQ_FOREACH(r, &epm->regs, entry)
		send_register(b, r);
	for (w = TAILQ_FIRST(&epm->watches); w; w = wn) {
		wn = TAILQ_NEXT(w, entry);
		if (w->reqid != 0 && w->on_resync)
			w->on_resync(w->arg);	/* watched before: resync */
		send_watch(b, w, WIRE_WATCH);
	}
	timer_after(b->timer, 0);
}

static void
b_down(struct epm_broker *b, int code, const char *fmt, ...)
{
	sipc_epm *epm = b->epm;
	struct epm_reg *r;
	char text[300];
	va_list ap;
	int delay;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (b->bev) {
		bufferevent_free(b->bev);
		b->bev = NULL;
	}
	b->generation++;
	b->state = B_DOWN;
	pending_clear(b);
	TAILQ_FOREACH(r, &epm->regs, entry)
		r->id = 0;
	set_error(b, code, text);
	pthread_mutex_lock(&epm->mu);
	atomic_store(&epm->connected, 0);
	pthread_cond_broadcast(&epm->cv);
	pthread_mutex_unlock(&epm->mu);
	/* The next broker of a list at once; after a whole round of
	 * failures, jittered backoff, so that clients of a restarted broker
	 * do not all come back in the same instant. */
	if (b->naddrs > 1) {
		b->cur = (b->cur + 1) % b->naddrs;
		snprintf(b->addr, sizeof(b->addr), "%s",
		    b->addrs[b->cur].text);
	}
	if (b->naddrs > 1 && ++b->failed_round < b->naddrs)
		delay = FAILOVER_MS;
	else {
		b->failed_round = 0;
		delay = backoff_next(&b->backoff);
	}
	timer_after(b->timer, delay);
}

/* ---- Input --------------------------------------------------------------- */

static struct pending *
take_pending(struct epm_broker *b, uint32_t reqid)
{
	struct pending *p;

	TAILQ_FOREACH(p, &b->pending, entry) {
		if (p->reqid == reqid) {
			TAILQ_REMOVE(&b->pending, p, entry);
			return p;
		}
	}
	return NULL;
}

static void
record_to_peer(const struct wire_record *rec, struct peer *peer)
{
	memset(peer, 0, sizeof(*peer));
	peer->id = rec->id;
	peer->instance = rec->instance;
	peer->ep = rec->ep;
	memcpy(peer->host, rec->host.ptr, rec->host.len);
	peer->pid = rec->pid;
}

static int
watch_matches(const struct epm_watch *w, struct wire_str h)
{
	return w->hlen == h.len && memcmp(w->handle, h.ptr, h.len) == 0;
}

static void
on_answer(struct epm_broker *b, const struct wire_header *h,
    const uint8_t *p)
{
	struct wire_hello_ok hello;
	struct wire_record rec;
	struct wire_error e;
	struct wire_seq seq;
	struct pending *pd;
	struct epm_reg *r;
	struct epm_watch *w;
	struct peer peer;
	char text[SIPC_ERROR_TEXT_MAX + 64];
	uint64_t id;
	uint64_t gen = b->generation;

	if (h->type == WIRE_ERROR && wire_dec_error(p, h->len, &e) != 0) {
		b_down(b, SIPC_EPROTO, "malformed ERROR");
		return;
	}
	if (h->type == WIRE_ERROR)
		snprintf(text, sizeof(text), "%s: %.*s",
		    wire_errcode_name(e.code), (int)e.text.len, e.text.ptr);
	if (b->state == B_HELLO && h->reqid == b->hello_reqid) {
		if (h->type == WIRE_ERROR) {
			b_down(b, e.code == WIRE_ERR_VERSION ? SIPC_EVERSION :
			    SIPC_EBROKER, "%s", text);
			return;
		}
		if (wire_dec_ok_hello(p, h->len, &hello) != 0) {
			b_down(b, SIPC_EPROTO, "malformed answer to HELLO");
			return;
		}
		b_ready(b, &hello);
		return;
	}
	if (h->type == WIRE_ERROR && h->reqid == 0) {
		/* The broker is about to close the session: say why. */
		set_error(b, SIPC_EBROKER, text);
		return;
	}
	if ((pd = take_pending(b, h->reqid)) == NULL)
		return;
	switch (pd->type) {
	case WIRE_REGISTER:
		if ((r = pd->obj) == NULL)
			break;
		if (h->type == WIRE_ERROR && e.code == WIRE_ERR_UNAVAILABLE) {
			/* A broker of a cluster that lost its etcd: ask again
			 * soon (here, or at the next broker). */
			timer_after(b->retry, UNAVAILABLE_RETRY_MS);
			break;
		}
		if (h->type == WIRE_OK &&
		    wire_dec_ok_register(p, h->len, &id) == 0) {
			r->id = id;
			if (r->done)
				r->done(r->arg, 0, NULL);
		} else if (r->done) {
			r->done(r->arg, SIPC_EBROKER, h->type == WIRE_ERROR ?
			    text : "malformed answer to REGISTER");
		}
		r->done = NULL;
		break;
	case WIRE_WATCH:
		if ((w = pd->obj) == NULL || h->type != WIRE_OK)
			break;
		if (wire_dec_ok_records(p, h->len, WIRE_WATCH, &seq) != 0) {
			free(pd);
			b_down(b, SIPC_EPROTO, "malformed answer to WATCH");
			return;
		}
		while (wire_next_record(&seq, &rec) && b->generation == gen) {
			record_to_peer(&rec, &peer);
			w->on_join(w->arg, &peer);
		}
		if (w->on_synced && b->generation == gen)
			w->on_synced(w->arg);
		break;
	default:
		break;	/* UNREGISTER, UNWATCH: nothing to do */
	}
	free(pd);
}

static void
on_push(struct epm_broker *b, const struct wire_header *h, const uint8_t *p)
{
	sipc_epm *epm = b->epm;
	struct epm_watch *w, *wn;
	struct wire_join j;
	struct wire_leave l;
	struct peer peer;

	if (h->type == WIRE_JOIN) {
		if (wire_dec_join(p, h->len, &j) != 0) {
			b_down(b, SIPC_EPROTO, "malformed JOIN");
			return;
		}
		record_to_peer(&j.rec, &peer);
		for (w = TAILQ_FIRST(&epm->watches); w; w = wn) {
			wn = TAILQ_NEXT(w, entry);
			if (watch_matches(w, j.handle))
				w->on_join(w->arg, &peer);
		}
		return;
	}
	if (wire_dec_leave(p, h->len, &l) != 0) {
		b_down(b, SIPC_EPROTO, "malformed LEAVE");
		return;
	}
	memset(&peer, 0, sizeof(peer));
	peer.id = l.id;
	for (w = TAILQ_FIRST(&epm->watches); w; w = wn) {
		wn = TAILQ_NEXT(w, entry);
		if (watch_matches(w, l.handle))
			w->on_leave(w->arg, &peer);
	}
}

static void
b_readcb(struct bufferevent *bev, void *arg)
{
	struct epm_broker *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint64_t gen = b->generation;
	struct frame_err err;
	struct frame fr;
	int rc;

	while (b->generation == gen) {
		if ((rc = evframe_next(&b->framer, in, &fr, &err)) == 0)
			return;
		if (rc == -1) {
			b_down(b, err.code == WIRE_ERR_INTERNAL ? SIPC_ENOMEM :
			    SIPC_EPROTO, "bad frame from the broker: %s",
			    err.why);
			return;
		}
		live_rx(&b->live, mono_ms());
		switch (fr.h.type) {
		case WIRE_PING:
			wbuf_reset(&b->out);
			if (fr.h.len == 8 && wire_enc_u64(&b->out, WIRE_PONG,
			    fr.h.reqid, wire_ld64(fr.payload)) == 0)
				b_send(b);
			break;
		case WIRE_PONG:
			break;
		case WIRE_OK:
		case WIRE_ERROR:
			on_answer(b, &fr.h, fr.payload);
			break;
		case WIRE_JOIN:
		case WIRE_LEAVE:
			on_push(b, &fr.h, fr.payload);
			break;
		default:
			break;	/* a later version's push: ignore */
		}
		if (b->generation == gen)
			evbuffer_drain(in, fr.size);
	}
}

static void
send_hello(struct epm_broker *b)
{
	struct wire_hello m;

	memset(&m, 0, sizeof(m));
	m.min_version = SIPC_PROTO_VERSION_MIN;
	m.max_version = SIPC_PROTO_VERSION_MAX;
	m.features = WIRE_FEAT_ZLIB;	/* large answers come compressed */
	m.heartbeat_ms = (uint32_t)b->epm->opts.heartbeat_ms;
	m.software.ptr = "sipc/" SIPC_VERSION;
	m.software.len = (uint16_t)strlen(m.software.ptr);
	m.host.ptr = b->host;
	m.host.len = (uint16_t)strlen(b->host);
	m.pid = (uint32_t)getpid();
	b->hello_reqid = b_reqid(b);
	wbuf_reset(&b->out);
	if (wire_enc_hello(&b->out, b->hello_reqid, &m) == 0)
		b_send(b);
}

static void
b_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct epm_broker *b = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = bufferevent_getfd(bev), on = 1, err;

	if (what & BEV_EVENT_CONNECTED) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
			pthread_mutex_lock(&b->epm->mu);
			memcpy(&b->local, &ss, sizeof(ss));
			b->local_len = sl;
			pthread_mutex_unlock(&b->epm->mu);
		}
		b->state = B_HELLO;
		live_rx(&b->live, mono_ms());
		frame_free(&b->framer);
		frame_init(&b->framer, SIPC_HELLO_FRAME_MAX, 0);
		send_hello(b);
		return;
	}
	if (b->tls && b->state == B_CONNECTING) {
		/* The TLS handshake failed: say why, in words. */
		unsigned long e, first = 0;
		char text[400];
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		int code;

		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			if (first == 0)
				first = e;
		if (first == 0 && (what & BEV_EVENT_EOF)) {
			/* In password mode a broker that does not know our
			 * key just hangs up. */
			code = b->psk ? SIPC_EAUTH : SIPC_ECONNECT;
			snprintf(text, sizeof(text), "%s", b->psk ?
			    "authentication failed: the broker closed the "
			    "connection during the handshake" : "connection "
			    "closed during the TLS handshake");
		} else if (first == 0) {
			code = SIPC_ECONNECT;
			snprintf(text, sizeof(text), "connect: %s",
			    strerror(EVUTIL_SOCKET_ERROR()));
		} else
			code = tls_explain_code(first, ssl ?
			    SSL_get_verify_result(ssl) : X509_V_OK, b->psk, 0,
			    text, sizeof(text)) ? SIPC_EAUTH : SIPC_ETLS;
		ERR_clear_error();
		b_down(b, code, "%s", text);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		b_down(b, SIPC_ECONNECT, "connection closed by the broker");
		return;
	}
	err = EVUTIL_SOCKET_ERROR();
	b_down(b, SIPC_ECONNECT, "%s: %s", b->state == B_CONNECTING ?
	    "connect" : "connection", strerror(err));
}

static void
b_connect(struct epm_broker *b)
{
	struct event_base *base = b->epm->loop.base;

	b->state = B_CONNECTING;
	b->deadline = mono_ms() + HANDSHAKE_MS;
	if (b->tls) {
		SSL *ssl = SSL_new(b->tls);

		if (ssl && !b->psk && tls_client_host(ssl,
		    b->addrs[b->cur].tls_host) == -1) {
			SSL_free(ssl);
			ssl = NULL;
		}
		b->bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (b->bev == NULL && ssl)
			SSL_free(ssl);
	} else
		b->bev = bufferevent_socket_new(base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (b->bev == NULL) {
		b_down(b, SIPC_ENOMEM, "out of memory");
		return;
	}
	bufferevent_setcb(b->bev, b_readcb, NULL, b_eventcb, b);
	bufferevent_enable(b->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(b->bev,
	    (struct sockaddr *)&b->addrs[b->cur].ss,
	    (int)b->addrs[b->cur].sl) == -1) {
		b_down(b, SIPC_ECONNECT, "connect: %s",
		    strerror(EVUTIL_SOCKET_ERROR()));
		return;
	}
	timer_after(b->timer, HANDSHAKE_MS);
}

static void
b_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct epm_broker *b = arg;
	int64_t now = mono_ms();

	(void)fd;
	(void)what;
	switch (b->state) {
	case B_DOWN:
		b_connect(b);
		return;
	case B_CONNECTING:
	case B_HELLO:
		if (now >= b->deadline) {
			b_down(b, SIPC_ETIMEDOUT, "no answer within %d ms",
			    HANDSHAKE_MS);
			return;
		}
		timer_after(b->timer, b->deadline - now);
		return;
	case B_READY:
		break;
	}
	if (live_dead(&b->live, now)) {
		b_down(b, SIPC_ETIMEDOUT, "no frame for %lld ms",
		    (long long)(now - b->live.last_rx));
		return;
	}
	if (live_ping_due(&b->live, now)) {
		wbuf_reset(&b->out);
		if (wire_enc_u64(&b->out, WIRE_PING, 0, (uint64_t)now) == 0)
			b_send(b);
	}
	timer_after(b->timer, live_next(&b->live) - now);
}

/* ---- Backend interface --------------------------------------------------- */

static void
start_cb(void *arg)
{
	b_connect(arg);
}

/* A REGISTER was refused for now (UNAVAILABLE): send the ones that have
 * no id and no REGISTER on the way. */
static void
b_retrycb(evutil_socket_t fd, short what, void *arg)
{
	struct epm_broker *b = arg;
	struct epm_reg *r;
	struct pending *p;

	(void)fd;
	(void)what;
	if (b->state != B_READY)
		return;		/* registered again when the session is up */
	TAILQ_FOREACH(r, &b->epm->regs, entry) {
		if (r->id != 0)
			continue;
		TAILQ_FOREACH(p, &b->pending, entry)
			if (p->obj == r && p->type == WIRE_REGISTER)
				break;
		if (p == NULL)
			send_register(b, r);
	}
}

/*
 * Fills b->addrs from "host[:port][,host[:port]...]", every address each
 * name resolves to, at most MAX_BROKERS in all.  SIPC_OK or SIPC_EADDR
 * (with the message set) for an entry that does not parse or resolve.
 */
static int
resolve_list(struct epm_broker *b, const char *list, const char *server_name)
{
	struct addrinfo hints, *res, *ai;
	char buf[1024], host[256], port[8], *tok, *save = NULL;
	const char *why;
	uint16_t p;
	int rc, i;

	if (strlen(list) >= sizeof(buf))
		return seterr(SIPC_EADDR, "broker list longer than %zu bytes",
		    sizeof(buf) - 1);
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ", ", &save); tok;
	    tok = strtok_r(NULL, ", ", &save)) {
		p = BROKER_PORT;
		if (addr_parse(tok, host, sizeof(host), &p,
		    ADDR_PORT_OPTIONAL, &why) == -1)
			return seterr(SIPC_EADDR, "address '%s': %s", tok,
			    why);
		snprintf(port, sizeof(port), "%u", p);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
			return seterr(SIPC_EADDR, "address '%s': %s", tok,
			    gai_strerror(rc));
		for (ai = res; ai && b->naddrs < MAX_BROKERS;
		    ai = ai->ai_next) {
			struct baddr *a = &b->addrs[b->naddrs];

			if (ai->ai_addrlen > sizeof(a->ss))
				continue;
			for (i = 0; i < b->naddrs; i++)
				if (b->addrs[i].sl == ai->ai_addrlen &&
				    memcmp(&b->addrs[i].ss, ai->ai_addr,
				    ai->ai_addrlen) == 0)
					break;
			if (i < b->naddrs)
				continue;	/* listed twice */
			memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
			a->sl = ai->ai_addrlen;
			snprintf(a->text, sizeof(a->text), "%s", tok);
			snprintf(a->tls_host, sizeof(a->tls_host), "%s",
			    server_name ? server_name : host);
			b->naddrs++;
		}
		freeaddrinfo(res);
	}
	if (b->naddrs == 0)
		return seterr(SIPC_EADDR, "no broker address in '%s'", list);
	return 0;
}

static int
broker_create(sipc_epm *epm, const char *addr)
{
	struct epm_broker *b;
	int rc;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return seterr(SIPC_ENOMEM, "out of memory");
	b->epm = epm;
	if ((rc = resolve_list(b, addr,
	    epm->opts.security.tls_server_name)) != 0 ||
	    (rc = security_ctx(&epm->opts.security, 0, &b->tls,
	    &b->psk)) != 0) {
		free(b);
		return rc;
	}
	snprintf(b->addr, sizeof(b->addr), "%s", b->addrs[0].text);
	/* The strings in the options are not kept. */
	memset(&epm->opts.security, 0, sizeof(epm->opts.security));
	TAILQ_INIT(&b->pending);
	wbuf_init(&b->out, SIPC_HEADER_SIZE + SIPC_HELLO_FRAME_MAX);
	frame_init(&b->framer, SIPC_HELLO_FRAME_MAX, 0);
	backoff_init(&b->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	live_start(&b->live, SIPC_DEF_HEARTBEAT_MS, mono_ms(), 0);
	if (gethostname(b->host, sizeof(b->host)) != 0)
		b->host[0] = '\0';
	b->host[sizeof(b->host) - 1] = '\0';
	if (!wire_handle_valid(b->host, strlen(b->host)))
		b->host[0] = '\0';	/* a name the broker would refuse */
	if ((b->timer = evtimer_new(epm->loop.base, b_timercb, b)) == NULL ||
	    (b->retry = evtimer_new(epm->loop.base, b_retrycb, b)) == NULL) {
		if (b->timer)
			event_free(b->timer);
		wbuf_free(&b->out);
		if (b->tls)
			SSL_CTX_free(b->tls);
		free(b);
		return seterr(SIPC_ENOMEM, "out of memory");
	}
	epm->broker = b;
	loop_call(&epm->loop, start_cb, b);
	return 0;
}

static void
broker_destroy(sipc_epm *epm)
{
	struct epm_broker *b = epm->broker;

	if (b == NULL)
		return;
	if (b->bev)
		bufferevent_free(b->bev);
	pending_clear(b);
	event_free(b->timer);
	event_free(b->retry);
	wbuf_free(&b->out);
	frame_free(&b->framer);
	if (b->tls)
		SSL_CTX_free(b->tls);
	free(b);
	epm->broker = NULL;
}

static void
broker_reg_add(sipc_epm *epm, struct epm_reg *r)
{
	struct epm_broker *b = epm->broker;

	r->id = 0;
	if (b->state == B_READY)
		send_register(b, r);
	/* Otherwise registered when the session comes up. */
}

static void
broker_reg_remove(sipc_epm *epm, struct epm_reg *r)
{
	struct epm_broker *b = epm->broker;
	uint32_t reqid;

	forget(b, r);
	if (b->state != B_READY || r->id == 0)
		return;
	reqid = b_reqid(b);
	wbuf_reset(&b->out);
	if (wire_enc_u64(&b->out, WIRE_UNREGISTER, reqid, r->id) == 0)
		b_request(b, reqid, WIRE_UNREGISTER, NULL);
}

static void
broker_watch_add(sipc_epm *epm, struct epm_watch *w)
{
	struct epm_broker *b = epm->broker;

	w->reqid = 0;
	if (b->state == B_READY)
		send_watch(b, w, WIRE_WATCH);
}

static void
broker_watch_remove(sipc_epm *epm, struct epm_watch *w)
{
	struct epm_broker *b = epm->broker;
	struct epm_watch *o;

	forget(b, w);
	if (b->state != B_READY)
		return;
	TAILQ_FOREACH(o, &epm->watches, entry)
		if (o->hlen == w->hlen && memcmp(o->handle, w->handle,
		    w->hlen) == 0)
			return;		/* another sender still watches */
	send_watch(b, w, WIRE_UNWATCH);
}

/* A refused connection: the process may be gone, or its host unreachable;
 * the broker says LEAVE when its session ends, so wait for that. */
static int
broker_refused(sipc_epm *epm, const struct peer *p)
{
	(void)epm;
	(void)p;
	return 0;
}

const struct epm_ops epm_broker_ops = {
	.name = "broker",
	.local = 0,
	.create = broker_create,
	.destroy = broker_destroy,
	.listen = broker_listen,
	.reg_add = broker_reg_add,
	.reg_remove = broker_reg_remove,
	.watch_add = broker_watch_add,
	.watch_remove = broker_watch_remove,
	.refused = broker_refused,
	/* After a broker restart receivers come back one by one. */
	.resync_grace_ms = 3000,
};
