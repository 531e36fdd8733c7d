/*
 * jsonout.h - JSON output for sipc's programs, built with json-c.
 *
 * Two layers.  The first makes json-c values that are always valid JSON:
 * strings from bytes that may not be UTF-8 (each bad byte becomes U+FFFD),
 * numbers printed the way the tools always printed them, and null for a
 * number that is not finite (json-c would write NaN, which no parser
 * takes).  The second shapes the broker's data: a registration, a handle
 * with its receivers, a session, the counters.  brokerctl --json and
 * sipc-epmd's /v1 endpoints both build their documents from these, so the
 * same data has the same keys and types in both.
 *
 * Every function that returns a json_object returns a new reference the
 * caller owns (json_object_put() frees it), or NULL when out of memory.
 * Nothing here keeps state; any thread may call it.
 */
#ifndef SIPC_COMMON_JSONOUT_H
#define SIPC_COMMON_JSONOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "../proto/wire.h"

/* Flags for jo_write(): one line, '/' left alone, optionally spaced. */
#define JO_COMPACT	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JO_SPACED	(JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JO_PRETTY	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- Values -------------------------------------------------------------- */

/*
 * A string of the n bytes at s (NULs included), as UTF-8: every byte that
 * does not start a valid sequence (overlong forms, surrogates and code
 * points above U+10FFFF included) becomes U+FFFD.  json-c then escapes
 * quotes, backslashes and control characters.
 */
struct json_object *jo_str(const void *s, size_t n);
/* jo_str() of a NUL-terminated string; NULL s gives JSON null. */
struct json_object *jo_cstr(const char *s);
/* v printed with the printf format fmt ("%.6g", "%.3f"), as a JSON number;
 * null when v is NaN or infinite. */
struct json_object *jo_num(double v, const char *fmt);
struct json_object *jo_u64(uint64_t v);
struct json_object *jo_i64(int64_t v);
/* A Unix time in milliseconds as "2026-01-02T03:04:05.678Z" (UTC). */
struct json_object *jo_time(uint64_t unix_ms);

/*
 * Adds v under key to object o, taking v's reference whatever happens.
 * Returns 0, or -1 when v is NULL (an allocation failed before) or the
 * add fails; the caller checks once, at the end, with jo_ok().
 */
int	jo_add(struct json_object *o, const char *key, struct json_object *v);
/* Appends v to array a; same ownership and result as jo_add(). */
int	jo_push(struct json_object *a, struct json_object *v);

/*
 * Writes o to fp as one line ending in '\n' with json-c flags (JO_*), then
 * flushes.  Does not take o.  0, or -1 when out of memory or fp failed.
 */
int	jo_write(FILE *fp, struct json_object *o, int flags);

/* ---- The broker's data --------------------------------------------------- */

/*
 * One registration: {"event"?, "id", "address", "port", "host", "pid",
 * "registered_at"}.  event (NULL: no key) is brokerctl watch's "present",
 * "join".  address is the IP, or the socket path for a Unix endpoint
 * (port 0).
 */
struct json_object *jo_record(const struct wire_record *r, const char *event);
/* One handle of a list: {"handle", "receivers"}. */
struct json_object *jo_handle(const char *handle, size_t len,
	    uint32_t receivers);

/* A counter, as STATS carries it. */
struct jo_stat {
	const char	*name;
	size_t		 len;
	uint64_t	 value;
};
/* The counters as one object {"name": value, ...}, in order. */
struct json_object *jo_stats(const struct jo_stat *st, size_t n);

/* One broker session, as sipc-epmd knows it. */
struct jo_session {
	uint64_t	 id;
	const char	*peer;		/* "addr:port" */
	const char	*state;		/* "handshake", "ready", "closing" */
	const char	*security;	/* "tls", "password" or "none" */
	const char	*host;		/* from HELLO; "" before it */
	const char	*software;	/* from HELLO */
	uint32_t	 pid;		/* from HELLO; 0 before it */
	uint8_t		 protocol;	/* version agreed; 0 before HELLO */
	uint64_t	 age_ms;
	uint64_t	 idle_ms;	/* since the last frame received */
	uint32_t	 registrations;
	uint32_t	 watches;
};
/* {"id", "peer", "state", "security", "host", "software", "pid",
 * "protocol", "age_s", "idle_s", "registrations", "watches"}. */
struct json_object *jo_session(const struct jo_session *s);

#endif
