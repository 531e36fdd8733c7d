/*
 * test_liveness.c - common/liveness.c: when PINGs are due, when a peer is
 * dead, how the silence before a PING is spread, and reconnection delays.
 */
#include <check.h>
#include <stdint.h>

#include "../../common/liveness.h"
#include "../../proto/limits.h"

START_TEST(test_heartbeats)
{
	struct liveness l;

	live_start(&l, 1000, 50000, 0);
	ck_assert(!live_ping_due(&l, 50999));
	ck_assert(live_ping_due(&l, 51000));
	ck_assert_int_eq(live_next(&l), 51000);
	/* A frame out moves the PING; a frame in moves death. */
	live_tx(&l, 50800);
	ck_assert(!live_ping_due(&l, 51000));
	ck_assert(live_ping_due(&l, 51800));
	ck_assert(!live_dead(&l, 50000 + SIPC_HEARTBEAT_MISSES * 1000 - 1));
	ck_assert(live_dead(&l, 50000 + SIPC_HEARTBEAT_MISSES * 1000));
	live_rx(&l, 52000);
	ck_assert(!live_dead(&l, 53000));
	ck_assert(live_dead(&l, 52000 + SIPC_HEARTBEAT_MISSES * 1000));
	/* The next event is the earlier of the two. */
	live_tx(&l, 60000);
	ck_assert_int_eq(live_next(&l), 52000 + SIPC_HEARTBEAT_MISSES * 1000);
}
END_TEST

/* Sessions started together ping apart: each first within [interval/2,
 * interval], spread over that range; after a frame out, an interval. */
START_TEST(test_jitter_spreads)
{
	struct liveness l;
	int64_t lo = INT64_MAX, hi = 0, d;
	int i, early = 0;

	for (i = 0; i < 1000; i++) {
		live_start(&l, 5000, 0, 1);
		d = l.next_ping;
		ck_assert_int_ge(d, 2500);
		ck_assert_int_le(d, 5000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		early += d < 3750;
		live_tx(&l, 10000);
		ck_assert_int_eq(l.next_ping, 15000);
	}
	ck_assert_int_lt(lo, 2700);
	ck_assert_int_gt(hi, 4800);
	ck_assert_int_gt(early, 300);
	ck_assert_int_lt(early, 700);
}
END_TEST

START_TEST(test_backoff)
{
	struct backoff b;
	int i, d, step = 50;

	backoff_init(&b, 50, 1000);
	for (i = 0; i < 10; i++) {
		d = backoff_next(&b);
		ck_assert_int_ge(d, step * 3 / 4);
		ck_assert_int_le(d, step * 5 / 4);
		step = step * 2 > 1000 ? 1000 : step * 2;
	}
	ck_assert_int_eq(b.cur_ms, 1000);
	backoff_reset(&b);
	d = backoff_next(&b);
	ck_assert_int_le(d, 63);
	backoff_max(&b);
	d = backoff_next(&b);
	ck_assert_int_ge(d, 750);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("liveness");
	TCase *tc = tcase_create("liveness");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_heartbeats);
	tcase_add_test(tc, test_jitter_spreads);
	tcase_add_test(tc, test_backoff);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
