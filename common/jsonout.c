/*
 * jsonout.c - JSON values and the broker's data shaped as JSON, with
 * json-c; see jsonout.h.  No hand-written escaping: json-c escapes, this
 * file only makes sure what it gets is UTF-8.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../proto/addr.h"
#include "jsonout.h"

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when there is none
 * (the rules of wire_utf8_valid()). */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp, min;
	size_t need, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		need = 1;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		need = 2;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		need = 3;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	if (n <= need)
		return 0;
	for (i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

struct json_object *
jo_str(const void *s, size_t n)
{
	static const char repl[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *p = s;
	struct json_object *o;
	size_t i, k, bad = 0, out;
	char *buf;

	if (n > (size_t)INT32_MAX / 3)
		return NULL;
	for (i = 0; i < n; i += k ? k : 1)
		if ((k = utf8_seq(p + i, n - i)) == 0)
			bad++;
	if (bad == 0)
		return json_object_new_string_len(s, (int)n);
	out = n + bad * 2;		/* 1 byte becomes 3 */
	if ((buf = malloc(out)) == NULL)
		return NULL;
	for (i = 0, out = 0; i < n; i += k ? k : 1) {
		if ((k = utf8_seq(p + i, n - i)) == 0) {
			memcpy(buf + out, repl, 3);
			out += 3;
		} else {
			memcpy(buf + out, p + i, k);
			out += k;
		}
	}
	o = json_object_new_string_len(buf, (int)out);
	free(buf);
	return o;
}

struct json_object *
jo_cstr(const char *s)
{
	/* JSON null: a double whose text is "null" (json-c's own null is a
	 * NULL pointer, which here means out of memory). */
	if (s == NULL)
		return json_object_new_double_s(0, "null");
	return jo_str(s, strlen(s));
}

struct json_object *
jo_num(double v, const char *fmt)
{
	char buf[64];

	if (!isfinite(v))
		return json_object_new_double_s(0, "null");
	snprintf(buf, sizeof(buf), fmt, v);
	return json_object_new_double_s(v, buf);
}

struct json_object *
jo_u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

struct json_object *
jo_i64(int64_t v)
{
	return json_object_new_int64(v);
}

struct json_object *
jo_time(uint64_t unix_ms)
{
	time_t t = (time_t)(unix_ms / 1000);
	char tmp[32], buf[40];
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return json_object_new_double_s(0, "null");
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, sizeof(buf), "%s.%03uZ", tmp, (unsigned)(unix_ms % 1000));
	return json_object_new_string(buf);
}

int
jo_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (v == NULL || o == NULL)
		goto fail;
	if (json_object_object_add(o, key, v) != 0)
		goto fail;
	return 0;
fail:
	json_object_put(v);
	return -1;
}

int
jo_push(struct json_object *a, struct json_object *v)
{
	if (v == NULL || a == NULL || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

int
jo_write(FILE *fp, struct json_object *o, int flags)
{
	const char *s;

	if (o == NULL || (s = json_object_to_json_string_ext(o, flags)) == NULL)
		return -1;
	if (fputs(s, fp) == EOF || fputc('\n', fp) == EOF || fflush(fp) != 0)
		return -1;
	return 0;
}

/* ---- The broker's data --------------------------------------------------- */

/* Ends a shape: o when every add succeeded, else NULL (o freed). */
static struct json_object *
done(struct json_object *o, int err)
{
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *
jo_record(const struct wire_record *r, const char *event)
{
	struct json_object *o;
	char host[128];
	unsigned port = r->ep.family == WIRE_AF_UNIX ? 0 : r->ep.port;
	int err = 0;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	addr_format_host(&r->ep, host, sizeof(host));
	if (event)
		err |= jo_add(o, "event", jo_cstr(event));
	err |= jo_add(o, "id", jo_u64(r->id));
	err |= jo_add(o, "address", jo_cstr(host));
	err |= jo_add(o, "port", jo_u64(port));
	err |= jo_add(o, "host", jo_str(r->host.ptr, r->host.len));
	err |= jo_add(o, "pid", jo_u64(r->pid));
	err |= jo_add(o, "registered_at", jo_time(r->registered_ms));
	return done(o, err);
}

struct json_object *
jo_handle(const char *handle, size_t len, uint32_t receivers)
{
	struct json_object *o;
	int err = 0;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	err |= jo_add(o, "handle", jo_str(handle, len));
	err |= jo_add(o, "receivers", jo_u64(receivers));
	return done(o, err);
}

struct json_object *
jo_stats(const struct jo_stat *st, size_t n)
{
	struct json_object *o;
	char name[SIPC_STAT_NAME_MAX + 1];
	size_t i, len;
	int err = 0;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		/* Keys are json-c C strings: bounded, and valid UTF-8 as the
		 * wire demands (a stray NUL would only cut the key short). */
		len = st[i].len < SIPC_STAT_NAME_MAX ? st[i].len :
		    SIPC_STAT_NAME_MAX;
		memcpy(name, st[i].name, len);
		name[len] = '\0';
		if (!wire_utf8_valid(name, len)) {
			err = -1;
			break;
		}
		err |= jo_add(o, name, jo_u64(st[i].value));
	}
	return done(o, err);
}

struct json_object *
jo_session(const struct jo_session *s)
{
	struct json_object *o;
	int err = 0;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	err |= jo_add(o, "id", jo_u64(s->id));
	err |= jo_add(o, "peer", jo_cstr(s->peer));
	err |= jo_add(o, "state", jo_cstr(s->state));
	err |= jo_add(o, "security", jo_cstr(s->security));
	err |= jo_add(o, "host", jo_cstr(s->host));
	err |= jo_add(o, "software", jo_cstr(s->software));
	err |= jo_add(o, "pid", jo_u64(s->pid));
	err |= jo_add(o, "protocol", jo_u64(s->protocol));
	err |= jo_add(o, "age_s", jo_num((double)s->age_ms / 1000, "%.3f"));
	err |= jo_add(o, "idle_s", jo_num((double)s->idle_ms / 1000, "%.3f"));
	err |= jo_add(o, "registrations", jo_u64(s->registrations));
	err |= jo_add(o, "watches", jo_u64(s->watches));
	return done(o, err);
}
