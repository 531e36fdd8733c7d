/*
 * test_registry.c - the broker's registry as a pure data structure: adding,
 * removing, ownership, idempotence, limits, owners going away (session
 * close and heartbeat expiry), watch events, ordered listing, and many
 * entries at once.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../broker/registry.h"

struct seen {
	int	joins;
	int	leaves;
	uint8_t	last_reason;
	uint64_t last_id;
};

static void
notify(void *arg, const struct reg_event *ev)
{
	struct seen *s = arg;

	if (ev->kind == REG_JOIN)
		s->joins++;
	else {
		s->leaves++;
		s->last_reason = ev->reason;
	}
	s->last_id = ev->reg->id;
}

static const uint8_t seed[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    13, 14, 15, 16 };

static struct wire_endpoint
ep(uint16_t port)
{
	struct wire_endpoint e;

	memset(&e, 0, sizeof(e));
	e.family = WIRE_AF_INET;
	e.addr[0] = 127;
	e.addr[3] = 1;
	e.port = port;
	return e;
}

START_TEST(test_siphash_vectors)
{
	/* Reference vectors of SipHash-2-4, key 00..0f. */
	uint8_t key[16], msg[15];
	int i;

	for (i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	ck_assert_uint_eq(reg_siphash(key, msg, 0), 0x726fdb47dd0e0e31ULL);
	ck_assert_uint_eq(reg_siphash(key, msg, 1), 0x74f839c593dc67fdULL);
	ck_assert_uint_eq(reg_siphash(key, msg, 15), 0xa129ca6149be45e5ULL);
}
END_TEST

START_TEST(test_add_remove)
{
	struct seen seen = { 0 };
	struct registry *r = reg_new(notify, &seen, 100, seed);
	struct reg_owner a, b;
	struct registration *g, *g2;
	struct wire_endpoint e = ep(5000);
	struct reg_stats st;

	reg_owner_init(&a, NULL);
	reg_owner_init(&b, NULL);
	ck_assert_int_eq(reg_add(r, &a, "h", 1, 7, &e, 1, 10, &g), REG_NEW);
	ck_assert_uint_eq(g->id, 100);
	ck_assert_ptr_eq(reg_find(r, 100), g);
	/* The same again is idempotent. */
	ck_assert_int_eq(reg_add(r, &a, "h", 1, 7, &e, 2, 10, &g2), REG_SAME);
	ck_assert_ptr_eq(g2, g);
	/* The same endpoint from another owner, or another instance. */
	ck_assert_int_eq(reg_add(r, &b, "h", 1, 7, &e, 2, 10, &g2),
	    REG_EEXISTS);
	ck_assert_int_eq(reg_add(r, &a, "h", 1, 8, &e, 2, 10, &g2),
	    REG_EEXISTS);
	/* The same endpoint under another handle is another registration. */
	ck_assert_int_eq(reg_add(r, &a, "h2", 2, 7, &e, 2, 10, &g2), REG_NEW);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations, 2);
	ck_assert_uint_eq(st.handles, 2);
	/* Only the owner may remove. */
	ck_assert_int_eq(reg_remove(r, &b, 100, WIRE_LEAVE_UNREGISTERED),
	    REG_ENOTOWNER);
	ck_assert_int_eq(reg_remove(r, &a, 999, WIRE_LEAVE_UNREGISTERED),
	    REG_ENOTFOUND);
	ck_assert_int_eq(reg_remove(r, &a, 100, WIRE_LEAVE_UNREGISTERED), 0);
	ck_assert_ptr_null(reg_find(r, 100));
	ck_assert_ptr_null(reg_handle_find(r, "h", 1));
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations, 1);
	ck_assert_uint_eq(st.handles, 1);
	/* Nobody watched: no events. */
	ck_assert_int_eq(seen.joins + seen.leaves, 0);
	reg_owner_clear(r, &a, WIRE_LEAVE_CLOSED);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations, 0);
	ck_assert_uint_eq(st.handles, 0);
	reg_free(r);
}
END_TEST

START_TEST(test_limits)
{
	struct registry *r = reg_new(NULL, NULL, 1, seed);
	struct reg_owner a, b;
	struct registration *g;
	struct wire_endpoint e;
	int i;

	reg_owner_init(&a, NULL);
	reg_owner_init(&b, NULL);
	for (i = 0; i < 3; i++) {
		e = ep((uint16_t)(1000 + i));
		ck_assert_int_eq(reg_add(r, &a, "h", 1, 1, &e, 0, 3, &g),
		    REG_NEW);
	}
	e = ep(2000);
	ck_assert_int_eq(reg_add(r, &a, "h", 1, 1, &e, 0, 3, &g), REG_ELIMIT);
	/* At the limit an idempotent repeat still succeeds. */
	e = ep(1000);
	ck_assert_int_eq(reg_add(r, &a, "h", 1, 1, &e, 0, 3, &g), REG_SAME);
	/* A handle holds SIPC_MAX_RECEIVERS_PER_HANDLE, no more. */
	for (i = 3; i < SIPC_MAX_RECEIVERS_PER_HANDLE; i++) {
		e = ep((uint16_t)(1000 + i));
		ck_assert_int_eq(reg_add(r, &b, "h", 1, 1, &e, 0, 100000, &g),
		    REG_NEW);
	}
	e = ep(60000);
	ck_assert_int_eq(reg_add(r, &b, "h", 1, 1, &e, 0, 100000, &g),
	    REG_EFULL);
	reg_owner_clear(r, &a, WIRE_LEAVE_CLOSED);
	ck_assert_int_eq(reg_add(r, &b, "h", 1, 1, &e, 0, 100000, &g),
	    REG_NEW);
	reg_free(r);
}
END_TEST

START_TEST(test_watch_events)
{
	struct seen seen = { 0 };
	struct registry *r = reg_new(notify, &seen, 1, seed);
	struct reg_owner rx, tx;
	struct registration *g;
	struct reg_handle *h;
	struct wire_endpoint e1 = ep(1), e2 = ep(2);
	struct reg_stats st;

	reg_owner_init(&rx, NULL);
	reg_owner_init(&tx, NULL);
	/* Watching a handle with no receivers yet keeps the handle. */
	ck_assert_int_eq(reg_watch(r, &tx, "h", 1, 10, &h), REG_NEW);
	ck_assert_int_eq(reg_watch(r, &tx, "h", 1, 10, &h), REG_SAME);
	ck_assert_int_eq(h->nwatches, 1);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.watches, 1);
	ck_assert_uint_eq(st.handles, 0);
	ck_assert_int_eq(reg_add(r, &rx, "h", 1, 1, &e1, 0, 10, &g), REG_NEW);
	ck_assert_int_eq(seen.joins, 1);
	ck_assert_int_eq(reg_add(r, &rx, "h", 1, 1, &e1, 0, 10, &g),
	    REG_SAME);
	ck_assert_int_eq(seen.joins, 1);	/* no JOIN for a repeat */
	ck_assert_int_eq(reg_add(r, &rx, "h", 1, 1, &e2, 0, 10, &g), REG_NEW);
	ck_assert_int_eq(seen.joins, 2);
	ck_assert_int_eq(reg_remove(r, &rx, g->id, WIRE_LEAVE_UNREGISTERED),
	    0);
	ck_assert_int_eq(seen.leaves, 1);
	ck_assert_int_eq(seen.last_reason, WIRE_LEAVE_UNREGISTERED);
	/* The receiver's session expires: LEAVE with that reason. */
	reg_owner_clear(r, &rx, WIRE_LEAVE_EXPIRED);
	ck_assert_int_eq(seen.leaves, 2);
	ck_assert_int_eq(seen.last_reason, WIRE_LEAVE_EXPIRED);
	/* After UNWATCH nothing more arrives. */
	ck_assert_int_eq(reg_unwatch(r, &tx, "h", 1), 0);
	ck_assert_int_eq(reg_unwatch(r, &tx, "h", 1), REG_ENOTFOUND);
	ck_assert_int_eq(reg_add(r, &rx, "h", 1, 1, &e1, 0, 10, &g), REG_NEW);
	ck_assert_int_eq(seen.joins, 2);
	/* Another watcher's session closes: its watch goes, nothing else. */
	ck_assert_int_eq(reg_watch(r, &tx, "h", 1, 10, &h), REG_NEW);
	reg_owner_clear(r, &tx, WIRE_LEAVE_CLOSED);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.watches, 0);
	ck_assert_uint_eq(st.registrations, 1);
	reg_owner_clear(r, &rx, WIRE_LEAVE_CLOSED);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations + st.handles + st.watches, 0);
	reg_free(r);
}
END_TEST

START_TEST(test_watch_limit)
{
	struct registry *r = reg_new(NULL, NULL, 1, seed);
	struct reg_owner o;
	struct reg_handle *h;

	reg_owner_init(&o, NULL);
	ck_assert_int_eq(reg_watch(r, &o, "a", 1, 2, &h), REG_NEW);
	ck_assert_int_eq(reg_watch(r, &o, "b", 1, 2, &h), REG_NEW);
	ck_assert_int_eq(reg_watch(r, &o, "c", 1, 2, &h), REG_ELIMIT);
	reg_owner_clear(r, &o, WIRE_LEAVE_CLOSED);
	reg_free(r);
}
END_TEST

START_TEST(test_list_order_and_paging)
{
	static const char *const names[] = { "b", "a", "c", "ab", "aa", "z" };
	struct registry *r = reg_new(NULL, NULL, 1, seed);
	struct reg_handle *out[10];
	struct registration *g;
	struct wire_endpoint e;
	struct reg_owner o;
	long n;
	size_t i;

	reg_owner_init(&o, NULL);
	for (i = 0; i < 6; i++) {
		e = ep((uint16_t)(10 + i));
		reg_add(r, &o, names[i], strlen(names[i]), 1, &e, 0, 100, &g);
	}
	/* A handle with only a watcher is not listed. */
	ck_assert_int_eq(reg_watch(r, &o, "w", 1, 10, (struct reg_handle **)
	    &out[0]), REG_NEW);
	n = reg_list(r, "", 0, out, 10);
	ck_assert_int_eq(n, 6);
	ck_assert_str_eq(out[0]->name, "a");
	ck_assert_str_eq(out[1]->name, "aa");
	ck_assert_str_eq(out[2]->name, "ab");
	ck_assert_str_eq(out[3]->name, "b");
	ck_assert_str_eq(out[5]->name, "z");
	n = reg_list(r, "ab", 2, out, 2);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(out[0]->name, "b");
	ck_assert_str_eq(out[1]->name, "c");
	n = reg_list(r, "b0", 2, out, 10);	/* not a handle: after it */
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(out[0]->name, "c");
	n = reg_list(r, "z", 1, out, 10);
	ck_assert_int_eq(n, 0);
	reg_owner_clear(r, &o, WIRE_LEAVE_CLOSED);
	ck_assert_int_eq(reg_list(r, "", 0, out, 10), 0);
	reg_free(r);
}
END_TEST

START_TEST(test_many)
{
	struct registry *r = reg_new(NULL, NULL, 1, seed);
	struct reg_owner o[4];
	struct registration *g;
	struct reg_handle **all;
	struct wire_endpoint e;
	struct reg_stats st;
	char name[32];
	int i;
	long n;

	for (i = 0; i < 4; i++)
		reg_owner_init(&o[i], NULL);
	for (i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "handle-%06d", i);
		e = ep((uint16_t)(1 + i % 60000));
		ck_assert_int_eq(reg_add(r, &o[i % 4], name, strlen(name), 1,
		    &e, 0, 1000000, &g), REG_NEW);
	}
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations, 100000);
	ck_assert_uint_eq(st.handles, 100000);
	ck_assert_ptr_nonnull(reg_handle_find(r, "handle-054321", 13));
	all = calloc(100000, sizeof(*all));
	n = reg_list(r, "handle-099990", 13, all, 100000);
	ck_assert_int_eq(n, 9);
	free(all);
	/* Every id can be found, removing through owners empties it. */
	for (i = 0; i < 4; i++)
		reg_owner_clear(r, &o[i], WIRE_LEAVE_CLOSED);
	reg_stats(r, &st);
	ck_assert_uint_eq(st.registrations, 0);
	reg_free(r);
}
END_TEST

/* Cluster mode: ids given by the caller, a host and pid of their own, a
 * mirror that may hold the same endpoint twice, twice the per-handle
 * limit at most. */
START_TEST(test_add_id_mirror)
{
	struct seen seen = { 0 };
	struct registry *r = reg_new(notify, &seen, 1, seed);
	struct reg_owner local, remote;
	struct registration *g, *g2;
	struct reg_handle *h;
	struct wire_endpoint e = ep(6000);
	int i, rc;

	reg_owner_init(&local, NULL);
	reg_owner_init(&remote, NULL);
	local.host = "here";
	local.hostlen = 4;
	ck_assert_int_eq(reg_watch(r, &local, "m", 1, 10, &h), REG_NEW);
	ck_assert_int_eq(reg_add_id(r, &remote, "m", 1, 7, &e, 1000, 100,
	    (77ULL << 20) | 1, 1, "there", 5, 42, &g), REG_NEW);
	ck_assert_uint_eq(g->id, (77ULL << 20) | 1);
	ck_assert_str_eq(g->rhost, "there");
	ck_assert_uint_eq(g->rhostlen, 5);
	ck_assert_uint_eq(g->rpid, 42);
	ck_assert_int_eq(seen.joins, 1);
	/* The same id again: nothing new, no JOIN. */
	ck_assert_int_eq(reg_add_id(r, &remote, "m", 1, 7, &e, 1000, 100,
	    (77ULL << 20) | 1, 1, "there", 5, 42, &g2), REG_SAME);
	ck_assert_ptr_eq(g2, g);
	ck_assert_int_eq(seen.joins, 1);
	/* The same receiver registered again elsewhere: both, in order. */
	ck_assert_int_eq(reg_add_id(r, &local, "m", 1, 7, &e, 1001, 100,
	    (78ULL << 20) | 1, 1, NULL, 0, 0, &g2), REG_NEW);
	ck_assert_ptr_null(g2->rhost);
	ck_assert_int_eq(h->nregs, 2);
	ck_assert_ptr_eq(TAILQ_FIRST(&h->regs), g);
	ck_assert_int_eq(seen.joins, 2);
	/* Not a mirror: the endpoint is taken. */
	ck_assert_int_eq(reg_add(r, &remote, "m", 1, 9, &e, 1002, 100, &g2),
	    REG_EEXISTS);
	ck_assert_int_eq(reg_remove(r, &remote, (77ULL << 20) | 1,
	    WIRE_LEAVE_CLOSED), 0);
	ck_assert_int_eq(seen.leaves, 1);
	/* Up to twice the per-handle limit in a mirror, not more. */
	for (i = 0, rc = REG_NEW; rc == REG_NEW; i++) {
		e = ep((uint16_t)(7000 + i));
		rc = reg_add_id(r, &remote, "full", 4, 1, &e, 0, UINT32_MAX,
		    (90ULL << 20) | (uint64_t)(i + 1), 1, "x", 1, 1, &g);
	}
	ck_assert_int_eq(rc, REG_EFULL);
	ck_assert_int_eq(i - 1, 2 * SIPC_MAX_RECEIVERS_PER_HANDLE);
	reg_owner_clear(r, &remote, WIRE_LEAVE_CLOSED);
	reg_owner_clear(r, &local, WIRE_LEAVE_CLOSED);
	reg_free(r);
}
END_TEST

START_TEST(test_ep_roundtrip)
{
	struct registry *r = reg_new(NULL, NULL, 1, seed);
	struct registration *g;
	struct wire_endpoint e, back;
	struct reg_owner o;

	reg_owner_init(&o, NULL);
	memset(&e, 0, sizeof(e));
	e.family = WIRE_AF_UNIX;
	strcpy(e.path, "/run/user/1/sipc/x.sock");
	ck_assert_int_eq(reg_add(r, &o, "u", 1, 5, &e, 0, 10, &g), REG_NEW);
	reg_ep_to_wire(&g->ep, &back);
	ck_assert_int_eq(back.family, WIRE_AF_UNIX);
	ck_assert_str_eq(back.path, e.path);
	ck_assert(reg_ep_equal(&g->ep, &e));
	e.path[5] = 'X';
	ck_assert(!reg_ep_equal(&g->ep, &e));
	reg_owner_clear(r, &o, WIRE_LEAVE_CLOSED);
	reg_free(r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_siphash_vectors);
	tcase_add_test(tc, test_add_remove);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_watch_events);
	tcase_add_test(tc, test_watch_limit);
	tcase_add_test(tc, test_list_order_and_paging);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_ep_roundtrip);
	tcase_add_test(tc, test_add_id_mirror);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
