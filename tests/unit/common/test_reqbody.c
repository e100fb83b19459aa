// SPDX-License-Identifier: MIT
/* req_body_append(): a request body in chunks, capped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "reqbody.h"

static void test_chunks_are_joined(void **state)
{
	struct req_body b = {0};

	(void)state;
	assert_int_equal(req_body_append(&b, "{\"a\":", 5, 16), 0);
	assert_int_equal(req_body_append(&b, "", 0, 16), 0);
	assert_int_equal(req_body_append(&b, " 1}", 3, 16), 0);
	assert_false(b.too_big);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "{\"a\": 1}", 8);
	req_body_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_cap_exact_and_past(void **state)
{
	char big[32];
	struct req_body b = {0};

	(void)state;
	memset(big, 'x', sizeof(big));
	/* Exactly the cap is kept. */
	assert_int_equal(req_body_append(&b, big, 10, 16), 0);
	assert_int_equal(req_body_append(&b, big, 6, 16), 0);
	assert_false(b.too_big);
	assert_int_equal(b.len, 16);
	/* One byte more: nothing kept, and nothing later either. */
	assert_int_equal(req_body_append(&b, big, 1, 16), 0);
	assert_true(b.too_big);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(req_body_append(&b, big, 1, 16), 0);
	assert_true(b.too_big);
	assert_null(b.data);
	req_body_free(&b);
}

static void test_one_chunk_past_cap(void **state)
{
	char big[32];
	struct req_body b = {0};

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(req_body_append(&b, big, sizeof(big), 16), 0);
	assert_true(b.too_big);
	assert_null(b.data);
	/* A chunk size that would wrap len + n around is past the cap too. */
	b = (struct req_body){0};
	assert_int_equal(req_body_append(&b, big, 4, 16), 0);
	assert_int_equal(req_body_append(&b, big, SIZE_MAX, 16), 0);
	assert_true(b.too_big);
	assert_null(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_are_joined),
		cmocka_unit_test(test_cap_exact_and_past),
		cmocka_unit_test(test_one_chunk_past_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
