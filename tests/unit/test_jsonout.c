/*
 * test_jsonout.c - common/jsonout.c, the JSON every sipc program writes:
 * hostile strings (quotes, backslashes, every control character, NULs,
 * markup, and every kind of invalid UTF-8) go in, and what comes out is
 * JSON that json-c's strict parser, validating UTF-8, reads back to the
 * expected text; numbers keep their printf form, and the ones JSON cannot
 * carry become null; the broker's shapes have their keys and types.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/jsonout.h"

#define FFFD	"\xef\xbf\xbd"

/* Serializes o (taking it) as jo_write() would, parses the text back with
 * the strict, UTF-8 validating parser and returns the result. */
static struct json_object *
roundtrip(struct json_object *o, int flags, char **text)
{
	struct json_tokener *tok;
	struct json_object *back;
	const char *s;

	ck_assert_ptr_nonnull(o);
	s = json_object_to_json_string_ext(o, flags);
	ck_assert_ptr_nonnull(s);
	*text = strdup(s);
	json_object_put(o);
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	back = json_tokener_parse_ex(tok, *text, (int)strlen(*text));
	ck_assert_msg(json_tokener_get_error(tok) == json_tokener_success,
	    "not JSON: %s (%s)", *text,
	    json_tokener_error_desc(json_tokener_get_error(tok)));
	json_tokener_free(tok);
	return back;
}

/* One string through an object, as every writer uses it. */
static void
check_str(const char *in, size_t n, const char *want, size_t wlen)
{
	struct json_object *o = json_object_new_object(), *back, *v;
	char *text;
	size_t i;

	ck_assert_int_eq(jo_add(o, "handle", jo_str(in, n)), 0);
	back = roundtrip(o, JO_COMPACT, &text);
	/* Nothing raw below 0x20 and no byte that is not UTF-8 in the text. */
	for (i = 0; text[i]; i++)
		ck_assert_msg((unsigned char)text[i] >= 0x20, "raw control "
		    "character at %zu of %s", i, text);
	ck_assert(json_object_object_get_ex(back, "handle", &v));
	ck_assert_int_eq(json_object_get_string_len(v), (int)wlen);
	ck_assert_msg(memcmp(json_object_get_string(v), want, wlen) == 0,
	    "%s", text);
	json_object_put(back);
	free(text);
}

#define STR(in, want)	check_str(in, sizeof(in) - 1, want, sizeof(want) - 1)

START_TEST(test_hostile_strings)
{
	char all[32];
	int i;

	STR("plain", "plain");
	STR("", "");
	STR("q\"uo\"te", "q\"uo\"te");
	STR("back\\slash\\", "back\\slash\\");
	STR("/path/to/sock", "/path/to/sock");
	STR("<script>alert(1)</script>", "<script>alert(1)</script>");
	STR("</script><!--", "</script><!--");
	STR("tab\tnl\ncr\r\x01\x1f\x7f", "tab\tnl\ncr\r\x01\x1f\x7f");
	STR("nul\0inside", "nul\0inside");
	STR("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe2\x80\xa8",
	    "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe2\x80\xa8");
	/* Every control character, each escaped, each read back. */
	for (i = 0; i < 32; i++)
		all[i] = (char)i;
	check_str(all, 32, all, 32);
	/* Invalid UTF-8: each bad byte is one U+FFFD, the rest stays. */
	STR("\xff", FFFD);
	STR("a\x80" "b", "a" FFFD "b");			/* lone continuation */
	STR("\xc0\xaf", FFFD FFFD);			/* overlong '/' */
	STR("\xe0\x80\xaf", FFFD FFFD FFFD);		/* overlong, 3 bytes */
	STR("\xed\xa0\x80", FFFD FFFD FFFD);		/* surrogate D800 */
	STR("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);	/* > U+10FFFF */
	STR("end\xe2\x9c", "end" FFFD FFFD);		/* cut short */
	STR("\xc3" "\"", FFFD "\"");			/* eats no quote */
	STR("\xc3\\", FFFD "\\");
}
END_TEST

START_TEST(test_numbers)
{
	struct json_object *a = json_object_new_array(), *back;
	char *text;

	ck_assert_int_eq(jo_push(a, jo_num(1234.5678, "%.6g")), 0);
	ck_assert_int_eq(jo_push(a, jo_num(0.1, "%.3f")), 0);
	ck_assert_int_eq(jo_push(a, jo_num(NAN, "%.6g")), 0);
	ck_assert_int_eq(jo_push(a, jo_num(INFINITY, "%.1f")), 0);
	ck_assert_int_eq(jo_push(a, jo_num(-INFINITY, "%.1f")), 0);
	ck_assert_int_eq(jo_push(a, jo_u64(UINT64_MAX)), 0);
	ck_assert_int_eq(jo_push(a, jo_i64(-5)), 0);
	ck_assert_int_eq(jo_push(a, jo_cstr(NULL)), 0);
	ck_assert_int_eq(jo_push(a, jo_time(1767225600123ULL)), 0);
	back = roundtrip(a, JO_COMPACT, &text);
	/* The printf forms the tools always printed; null for NaN and inf. */
	ck_assert_str_eq(text, "[1234.57,0.100,null,null,null,"
	    "18446744073709551615,-5,null,\"2026-01-01T00:00:00.123Z\"]");
	ck_assert_int_eq(json_object_get_type(json_object_array_get_idx(back,
	    2)), json_type_null);
	json_object_put(back);
	free(text);
}
END_TEST

START_TEST(test_add_failures)
{
	struct json_object *o = json_object_new_object();

	/* A NULL value (an allocation that failed) is reported, once. */
	ck_assert_int_eq(jo_add(o, "x", NULL), -1);
	ck_assert_int_eq(jo_push(NULL, jo_u64(1)), -1);
	ck_assert_int_eq(jo_add(NULL, "x", jo_u64(1)), -1);
	ck_assert_int_eq(jo_write(stdout, NULL, JO_COMPACT), -1);
	ck_assert_ptr_null(jo_str("x", (size_t)INT32_MAX));
	json_object_put(o);
}
END_TEST

START_TEST(test_shapes)
{
	struct json_object *o, *v;
	struct wire_record r;
	struct jo_stat st[2] = { { "frames_in", 9, 7 },
	    { "uptime_s", 8, 3 } };
	struct jo_session js;
	static const char *rec_keys[] = { "id", "address", "port", "host",
	    "pid", "registered_at" };
	static const char *sess_keys[] = { "id", "peer", "state", "security",
	    "host", "software", "pid", "protocol", "age_s", "idle_s",
	    "registrations", "watches" };
	char *text;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.id = (1ULL << 52) + 1;
	r.ep.family = WIRE_AF_INET;
	r.ep.port = 4000;
	r.ep.addr[0] = 127;
	r.ep.addr[3] = 1;
	r.host.ptr = "h\"ost\xff";
	r.host.len = 6;
	r.pid = 42;
	r.registered_ms = 1000;
	o = roundtrip(jo_record(&r, "join"), JO_COMPACT, &text);
	ck_assert_str_eq(text, "{\"event\":\"join\",\"id\":4503599627370497,"
	    "\"address\":\"127.0.0.1\",\"port\":4000,\"host\":\"h\\\"ost"
	    FFFD "\",\"pid\":42,\"registered_at\":\"1970-01-01T00:00:01.000Z\"}");
	for (i = 0; i < sizeof(rec_keys) / sizeof(rec_keys[0]); i++)
		ck_assert(json_object_object_get_ex(o, rec_keys[i], &v));
	json_object_put(o);
	free(text);

	o = roundtrip(jo_handle("<b>\x01", 4, 3), JO_COMPACT, &text);
	ck_assert_str_eq(text, "{\"handle\":\"<b>\\u0001\",\"receivers\":3}");
	json_object_put(o);
	free(text);

	o = roundtrip(jo_stats(st, 2), JO_COMPACT, &text);
	ck_assert_str_eq(text, "{\"frames_in\":7,\"uptime_s\":3}");
	json_object_put(o);
	free(text);

	memset(&js, 0, sizeof(js));
	js.peer = "127.0.0.1:5";
	js.state = "ready";
	js.security = "tls";
	js.host = "\xc3";
	js.software = "sipc/\"0\"";
	js.age_ms = 1500;
	o = roundtrip(jo_session(&js), JO_SPACED, &text);
	for (i = 0; i < sizeof(sess_keys) / sizeof(sess_keys[0]); i++)
		ck_assert_msg(json_object_object_get_ex(o, sess_keys[i], &v),
		    "%s", sess_keys[i]);
	ck_assert(json_object_object_get_ex(o, "age_s", &v));
	ck_assert(json_object_get_double(v) == 1.5);
	ck_assert(json_object_object_get_ex(o, "host", &v));
	ck_assert_str_eq(json_object_get_string(v), FFFD);
	json_object_put(o);
	free(text);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jsonout");
	TCase *tc = tcase_create("jsonout");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_hostile_strings);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_add_failures);
	tcase_add_test(tc, test_shapes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
