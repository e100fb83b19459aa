// SPDX-License-Identifier: MIT
/* The generic layer: raw, probing rules, backing chains, option parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "helpers.h"

static void test_raw_workout(void **state)
{
	(void)state;
	workout("raw", NULL, 8 * MiB);
}

static void test_writable_raw_never_probed(void **state)
{
	char path[256];
	uint8_t buf[4096];
	struct pimg *img;

	(void)state;
	tmp_path(path, sizeof(path), "plain.raw");
	fill_pattern(buf, sizeof(buf), 9);
	write_file(path, buf, sizeof(buf));
	assert_null(pimg_open(path, NULL, 0));          /* writable + unknown header: refused */
	img = pimg_open(path, NULL, PIMG_O_RDONLY);      /* read-only: raw */
	assert_non_null(img);
	assert_string_equal(pimg_format(img), "raw");
	pimg_close(img);
	img = pimg_open(path, "raw", 0);                 /* explicit raw: fine */
	assert_non_null(img);
	pimg_close(img);
}

/* Another tool's magic is never read as raw unless raw is asked for; plain data still is. */
static void test_foreign_magic_not_raw(void **state)
{
	static const struct { const char *magic; size_t len, off; bool tail; } cases[] = {
		{ "QED", 4, 0, false }, { "Bochs Virtual HD Image", 22, 0, false },
		{ "koly", 4, 0, true }, { "\x1f\x8b\x08", 3, 0, false }, { "ustar", 5, 257, false },
	};
	uint8_t buf[8192];
	char p[256];
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "foreign.img");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(buf, 0x41, sizeof(buf));
		memcpy(buf + (cases[i].tail ? sizeof(buf) - 512 : cases[i].off), cases[i].magic, cases[i].len);
		write_file(p, buf, sizeof(buf));
		assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
		assert_null(pimg_probe(p));
		img = pimg_open(p, "raw", PIMG_O_RDONLY);
		assert_non_null(img);
		pimg_close(img);
	}
	memset(buf, 0x41, sizeof(buf));
	write_file(p, buf, sizeof(buf));
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_string_equal(pimg_format(img), "raw");
	pimg_close(img);
}

static void test_unaligned_raw_size(void **state)
{
	char path[256];
	uint8_t buf[1000], out[1000];
	struct pimg *img;

	(void)state;
	tmp_path(path, sizeof(path), "odd.raw");
	fill_pattern(buf, sizeof(buf), 3);
	write_file(path, buf, sizeof(buf));
	img = pimg_open(path, "raw", PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 1000);
	assert_int_equal(pimg_pread(img, out, 1000, 0), 0);
	assert_memory_equal(buf, out, 1000);
	assert_int_equal(pimg_pread(img, out, 2, 999), -EINVAL);
	pimg_close(img);
}

static void test_backing_loop_refused(void **state)
{
	char a[256], b[256];

	(void)state;
	tmp_path(a, sizeof(a), "loop-a.qcow2");
	tmp_path(b, sizeof(b), "loop-b.qcow2");
	assert_int_equal(pimg_create(a, "qcow2", 1 * MiB, NULL), 0);
	assert_int_equal(pimg_create(b, "qcow2", 0, "backing_file=loop-a.qcow2,backing_fmt=qcow2"), 0);
	/* Rewrite a as an overlay of b: a -> b -> a */
	assert_int_equal(pimg_create(a, "qcow2", 1 * MiB, "backing_file=loop-b.qcow2,backing_fmt=qcow2"), 0);
	assert_null(pimg_open(a, NULL, PIMG_O_RDONLY));
	assert_null(pimg_open(b, NULL, PIMG_O_RDONLY));
	/* without following backing files both open */
	{
		struct pimg *img = pimg_open(a, NULL, PIMG_O_RDONLY | PIMG_O_NO_BACKING);

		assert_non_null(img);
		pimg_close(img);
	}
}

static void test_backing_depth_limited(void **state)
{
	char p[256], prev[64] = "";

	(void)state;
	for (int i = 0; i <= MAX_BACKING_DEPTH + 1; i++) {
		char name[64], opts[160];

		snprintf(name, sizeof(name), "chain-%d.qcow2", i);
		tmp_path(p, sizeof(p), name);
		snprintf(opts, sizeof(opts), "backing_file=%s,backing_fmt=qcow2", prev);
		assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, i ? opts : NULL), 0);
		snprintf(prev, sizeof(prev), "%s", name);
	}
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	tmp_path(p, sizeof(p), "chain-10.qcow2");
	{
		struct pimg *img = pimg_open(p, NULL, PIMG_O_RDONLY);

		assert_non_null(img);
		pimg_close(img);
	}
}

static void test_create_options_checked(void **state)
{
	char p[256];

	(void)state;
	tmp_path(p, sizeof(p), "opts.img");
	assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, "cluster_size=3000"), -EINVAL);
	assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, "nonsense=1"), -EINVAL);
	assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, "cluster_size"), -EINVAL);
	assert_int_equal(pimg_create(p, "raw", 1 * MiB, "subformat=fixed"), -EINVAL);
	assert_int_equal(pimg_create(p, "vpc", 1 * MiB, "subformat=weird"), -EINVAL);
	assert_int_equal(pimg_create(p, "nosuchformat", 1 * MiB, NULL), -EINVAL);
	assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, "cluster_size=4k,"), 0);
	assert_int_equal(pimg_create(p, "qcow2", 1 * MiB, "cluster_size=4k,,"), -EINVAL);
}

static void test_backing_reads_and_cow(void **state)
{
	char base[256], top[256];
	uint8_t *expect = malloc(4 * MiB), buf[3000];
	struct pimg *img;

	(void)state;
	assert_non_null(expect);
	tmp_path(base, sizeof(base), "cow-base.raw");
	tmp_path(top, sizeof(top), "cow-top.qcow2");
	fill_pattern(expect, 4 * MiB, 77);
	write_file(base, expect, 4 * MiB);
	assert_int_equal(pimg_create(top, "qcow2", 0, "backing_file=cow-base.raw,backing_fmt=raw,cluster_size=4096"), 0);
	img = pimg_open(top, "qcow2", 0);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4 * MiB);
	fill_pattern(buf, sizeof(buf), 5);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 4096 + 100), 0); /* partial clusters: COW */
	memcpy(expect + 4096 + 100, buf, sizeof(buf));
	assert_int_equal(pimg_write_zeroes(img, 65536, 8192), 0);
	memset(expect + 65536, 0, 8192);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	img = pimg_open(top, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	/* commit: the base now holds the overlay's content */
	img = pimg_open(top, NULL, PIMG_O_RDONLY);
	assert_int_equal(pimg_commit(img), 0);
	pimg_close(img);
	img = pimg_open(base, "raw", PIMG_O_RDONLY);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	free(expect);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_workout),
		cmocka_unit_test(test_writable_raw_never_probed),
		cmocka_unit_test(test_unaligned_raw_size),
		cmocka_unit_test(test_foreign_magic_not_raw),
		cmocka_unit_test(test_backing_loop_refused),
		cmocka_unit_test(test_backing_depth_limited),
		cmocka_unit_test(test_create_options_checked),
		cmocka_unit_test(test_backing_reads_and_cow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
