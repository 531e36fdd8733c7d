/*
 * metrics.c - sipc-epmd's HTTP port on libevent's evhttp: the Prometheus
 * endpoint (GET /metrics, text format 0.0.4) here, the JSON endpoints and
 * the status page of monitor.c beside it; and the summary line logged
 * every minute.
 *
 * /metrics has counters only; /v1 shows handles, addresses and hosts, so
 * the port follows protected mode (monitor_check_protected()).
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../proto/addr.h"
#include "epmd.h"
#include "monitor.h"

/* One metric with its HELP and TYPE lines; type is "gauge" or "counter". */
static void
metric(struct evbuffer *o, const char *type, const char *name,
    const char *help, uint64_t v)
{
	evbuffer_add_printf(o, "# HELP sipc_epmd_%s %s\n# TYPE sipc_epmd_%s "
	    "%s\nsipc_epmd_%s %llu\n", name, help, name, type, name,
	    (unsigned long long)v);
}

#define gauge(o, name, help, v)		metric(o, "gauge", name, help, v)
#define counter(o, name, help, v)	metric(o, "counter", name, help, v)

/* Renders every metric into o. */
static void
metrics_render(struct broker *b, struct evbuffer *o)
{
	struct reg_stats rs;
	uint16_t code;

	reg_stats(b->reg, &rs);
	gauge(o, "sessions", "Open sessions.", b->nsessions);
	gauge(o, "registrations", "Registrations held.", rs.registrations);
	gauge(o, "handles", "Handles with at least one receiver.",
	    rs.handles);
	gauge(o, "watches", "Watches held.", rs.watches);
	gauge(o, "uptime_seconds", "Seconds since the broker started.",
	    ((uint64_t)mono_ms() - b->started_mono_ms) / 1000);
	counter(o, "sessions_opened_total", "Sessions accepted.",
	    b->st.sessions_total);
	counter(o, "frames_received_total", "Frames received.",
	    b->st.frames_in);
	counter(o, "frames_sent_total", "Frames sent.", b->st.frames_out);
	counter(o, "bytes_received_total", "Bytes of frames received.",
	    b->st.bytes_in);
	counter(o, "bytes_sent_total", "Bytes of frames sent.",
	    b->st.bytes_out);
	counter(o, "heartbeat_expiries_total", "Sessions ended for missed "
	    "heartbeats.", b->st.heartbeat_expiries);
	counter(o, "handshake_timeouts_total", "Connections closed for not "
	    "completing HELLO in time.", b->st.handshake_timeouts);
	counter(o, "tls_handshake_failures_total", "TLS or password "
	    "handshakes that failed, and plain-text clients on TLS ports.",
	    b->st.tls_failures);
	counter(o, "accept_pauses_total", "Times accept paused for lack of "
	    "descriptors.", b->st.accept_paused);
	evbuffer_add_printf(o, "# HELP sipc_epmd_errors_sent_total ERROR "
	    "frames sent, by code.\n# TYPE sipc_epmd_errors_sent_total "
	    "counter\n");
	for (code = 1; code <= WIRE_ERR_LAST; code++)
		evbuffer_add_printf(o, "sipc_epmd_errors_sent_total{code=\"%s\"} "
		    "%llu\n", wire_errcode_name(code),
		    (unsigned long long)b->st.errors_by_code[code]);
	cluster_metrics(b, o);
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct broker *b = arg;
	struct evbuffer *o;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	if ((o = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	metrics_render(b, o);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", o);
	evbuffer_free(o);
}

static void
other_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "try /, /metrics, /v1/varz, /v1/handles "
	    "or /v1/sessions");
}

int
metrics_start(struct broker *b, const char *spec)
{
	char host[256];
	const char *why;
	uint16_t port;

	if (addr_parse(spec, host, sizeof(host), &port, 0, &why) == -1) {
		log_errorx("metrics %s: %s", spec, why);
		return -1;
	}
	if ((b->http = evhttp_new(b->base)) == NULL) {
		log_errorx("metrics: cannot create the HTTP server");
		return -1;
	}
	/* Scrapers are small and quick: bound what a client may hold. */
	evhttp_set_timeout(b->http, 10);
	evhttp_set_max_headers_size(b->http, 8192);
	evhttp_set_max_body_size(b->http, 0);
	evhttp_set_allowed_methods(b->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(b->http, "/metrics", metrics_cb, b);
	evhttp_set_gencb(b->http, other_cb, b);
	if (monitor_start(b, b->http) == -1) {
		evhttp_free(b->http);
		b->http = NULL;
		return -1;
	}
	if (evhttp_bind_socket(b->http, host, port) == -1) {
		log_warn("metrics %s: cannot listen", spec);
		evhttp_free(b->http);
		b->http = NULL;
		return -1;
	}
	log_info("metrics on %s://%s/metrics, status page at /", monitor_tls_on() ? "https" : "http", spec);
	return 0;
}

void
metrics_stop(struct broker *b)
{
	if (b->http)
		evhttp_free(b->http);
	b->http = NULL;
	if (b->summary)
		event_free(b->summary);
	b->summary = NULL;
}

/* Every minute (summary_ms), one line at info level: where things
 * stand. */
static void
summary_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct reg_stats rs;

	(void)fd;
	(void)what;
	reg_stats(b->reg, &rs);
	log_info("summary: %u sessions, %llu registrations, %llu handles, "
	    "%llu watches; last minute: %llu sessions opened, %llu frames "
	    "in, %llu out, %llu errors sent", b->nsessions,
	    (unsigned long long)rs.registrations,
	    (unsigned long long)rs.handles, (unsigned long long)rs.watches,
	    (unsigned long long)(b->st.sessions_total - b->last.sessions_total),
	    (unsigned long long)(b->st.frames_in - b->last.frames_in),
	    (unsigned long long)(b->st.frames_out - b->last.frames_out),
	    (unsigned long long)(b->st.errors_sent - b->last.errors_sent));
	b->last = b->st;
}

int
summary_start(struct broker *b)
{
	struct timeval tv;

	if (b->summary) {
		event_free(b->summary);
		b->summary = NULL;
	}
	if (b->cfg.summary_ms == 0)
		return 0;
	tv.tv_sec = b->cfg.summary_ms / 1000;
	tv.tv_usec = (b->cfg.summary_ms % 1000) * 1000;
	if ((b->summary = event_new(b->base, -1, EV_PERSIST, summary_cb,
	    b)) == NULL || event_add(b->summary, &tv) == -1) {
		log_errorx("cannot start the summary timer");
		return -1;
	}
	return 0;
}
