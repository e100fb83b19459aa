// SPDX-License-Identifier: MIT
/* The log rate limiter: burst, refill, the count of dropped lines, a clock that goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

#define MS 1000000ull

static void test_burst_then_rate(void **state)
{
	struct ratelimit rl;
	uint64_t dropped = 99, t = 5000 * MS;
	unsigned int i, allowed = 0;

	(void)state;
	ratelimit_init(&rl, 3, 100);
	for (i = 0; i < 3; i++) {
		assert_true(ratelimit_allow_at(&rl, t, &dropped));
		assert_int_equal(dropped, 0);
	}
	/* A guest hammering: 1000 lines in the same instant, none let through. */
	for (i = 0; i < 1000; i++)
		assert_false(ratelimit_allow_at(&rl, t, &dropped));
	/* 99 ms later: still nothing; at 100 ms one, which reports the 1001 dropped. */
	assert_false(ratelimit_allow_at(&rl, t + 99 * MS, NULL));
	assert_true(ratelimit_allow_at(&rl, t + 100 * MS, &dropped));
	assert_int_equal(dropped, 1001);
	/* Ten seconds of one attempt per ms: about one line per 100 ms gets through. */
	for (i = 1; i <= 10000; i++)
		allowed += ratelimit_allow_at(&rl, t + 100 * MS + i * MS, NULL);
	assert_in_range(allowed, 99, 101);
}

static void test_refill_capped(void **state)
{
	struct ratelimit rl;
	unsigned int i, allowed = 0;

	(void)state;
	ratelimit_init(&rl, 2, 10);
	/* An hour of silence earns the burst back, not 360000 lines. */
	for (i = 0; i < 10; i++)
		allowed += ratelimit_allow_at(&rl, 3600000 * MS, NULL);
	assert_int_equal(allowed, 2);
}

static void test_clock_back(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, 1, 50);
	assert_true(ratelimit_allow_at(&rl, 1000 * MS, NULL));
	assert_false(ratelimit_allow_at(&rl, 10 * MS, NULL)); /* earlier: no credit */
	assert_false(ratelimit_allow_at(&rl, 1049 * MS, NULL));
	assert_true(ratelimit_allow_at(&rl, 1050 * MS, NULL));
}

static void test_zero_args(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, 0, 0); /* at least one line per ms */
	assert_true(ratelimit_allow_at(&rl, 0, NULL));
	assert_false(ratelimit_allow_at(&rl, 0, NULL));
	assert_true(ratelimit_allow_at(&rl, MS, NULL));
	/* log_limited goes through the same limiter (quiet here: nothing printed). */
	log_set_level(LOG_QUIET);
	log_limited(&rl, LOG_WARN, "not printed %d", 1);
	log_set_level(LOG_WARN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_refill_capped),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_zero_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
