// SPDX-License-Identifier: MIT
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "util.h"

static void test_parse_size_suffixes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64K", &v), 0);
	assert_int_equal(v, 64 * 1024);
	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(parse_size("3MB", &v), 0);
	assert_int_equal(v, 3ULL << 20);
}

static void test_parse_size_rejects(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("M", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("12MM", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size("17179869184G", &v), -ERANGE);
	assert_int_equal(v, 7);
}

static void test_parse_uint(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_uint("4", 1, 64, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_uint("0", 1, 64, &v), -ERANGE);
	assert_int_equal(parse_uint("65", 1, 64, &v), -ERANGE);
	assert_int_equal(parse_uint("4x", 1, 64, &v), -EINVAL);
	assert_int_equal(parse_uint(" 4", 1, 64, &v), -EINVAL);
}

static void test_range_within(void **state)
{
	(void)state;
	assert_true(range_within(0, 10, 10));
	assert_false(range_within(1, 10, 10));
	assert_true(range_within(10, 0, 10));
	assert_false(range_within(UINT64_MAX, 2, UINT64_MAX));
	assert_false(range_within(2, UINT64_MAX, UINT64_MAX));
}

/* mem_populate brings pages in without changing a byte, for ranges at any offset. */
static void test_mem_populate(void **state)
{
	size_t len = 16 * 4096;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char vec[16];
	size_t i;

	(void)state;
	assert_true(p != MAP_FAILED);
	p[5 * 4096 + 7] = 0xa5;
	assert_true(mem_populate(p, 0, true));
	/* From the middle of page 1 to the middle of page 9: pages 1-9, not 0 or 10. */
	assert_true(mem_populate(p + 4096 + 100, 8 * 4096, true));
	assert_int_equal(mincore(p, len, vec), 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(vec[i] & 1, (i >= 1 && i <= 9) || i == 5);
	assert_int_equal(p[5 * 4096 + 7], 0xa5);
	assert_int_equal(p[4096 + 100], 0);
	assert_true(mem_populate(p + 12 * 4096, 4 * 4096, false));
	/* Past the mapping's end: refused, nothing else harmed. */
	munmap(p + 15 * 4096, 4096);
	assert_false(mem_populate(p + 14 * 4096, 2 * 4096, true));
	assert_int_equal(p[5 * 4096 + 7], 0xa5);
	munmap(p, 15 * 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_suffixes),
		cmocka_unit_test(test_parse_size_rejects),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_range_within),
		cmocka_unit_test(test_mem_populate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
