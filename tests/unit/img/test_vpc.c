// SPDX-License-Identifier: MIT
/* VHD: fixed, dynamic, differencing round trips; hostile footers and tables. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"

static void test_workout_dynamic(void **state)
{
	(void)state;
	workout("vpc", NULL, 16 * MiB);
}

static void test_workout_fixed(void **state)
{
	(void)state;
	workout("vpc", "subformat=fixed", 16 * MiB);
}

static void test_size_rounding(void **state)
{
	char p[256];
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "round.vhd");
	assert_int_equal(pimg_create(p, "vpc", 1 * GiB, NULL), 0);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 1073995776ULL); /* CHS-rounded, as qemu-img */
	pimg_close(img);
	assert_int_equal(pimg_create(p, "vpc", 1 * GiB, "force_size=on"), 0);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 1 * GiB);
	pimg_close(img);
}

/* Parent + child: reads combine them; writes land in the child only. */
static void test_differencing(void **state)
{
	char parent[256], child[256];
	uint64_t size = 8 * MiB;
	uint8_t *expect = malloc(size), *pdata = malloc(size), buf[5000];
	struct pimg *img;

	(void)state;
	assert_non_null(expect);
	assert_non_null(pdata);
	tmp_path(parent, sizeof(parent), "parent.vhd");
	tmp_path(child, sizeof(child), "child.vhd");
	assert_int_equal(pimg_create(parent, "vpc", size, "force_size=on"), 0);
	img = pimg_open(parent, "vpc", 0);
	assert_non_null(img);
	fill_pattern(pdata, size, 11);
	memset(pdata + 3 * MiB, 0, 2 * MiB); /* a hole in the parent */
	assert_int_equal(pimg_pwrite(img, pdata, 3 * MiB, 0), 0);
	assert_int_equal(pimg_pwrite(img, pdata + 5 * MiB, 3 * MiB, 5 * MiB), 0);
	pimg_close(img);

	assert_int_equal(pimg_create(child, "vpc", 0, "backing_file=parent.vhd"), 0);
	img = open_ext(child, NULL, 0);
	assert_non_null(img);
	assert_non_null(pimg_backing(img));
	memcpy(expect, pdata, size);
	assert_content(img, expect, size);
	fill_pattern(buf, sizeof(buf), 12);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 1 * MiB + 100), 0); /* unaligned */
	memcpy(expect + 1 * MiB + 100, buf, sizeof(buf));
	assert_int_equal(pimg_pwrite(img, buf, 4096, 4 * MiB), 0); /* over the parent's hole */
	memcpy(expect + 4 * MiB, buf, 4096);
	assert_content(img, expect, size);
	pimg_close(img);

	img = open_ext(child, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, expect, size);
	pimg_close(img);
	img = pimg_open(parent, NULL, PIMG_O_RDONLY);
	assert_content(img, pdata, size); /* the parent is untouched */
	pimg_close(img);
	/* commit into the parent */
	img = open_ext(child, NULL, PIMG_O_RDONLY);
	assert_int_equal(pimg_commit(img), 0);
	pimg_close(img);
	img = pimg_open(parent, NULL, PIMG_O_RDONLY);
	assert_content(img, expect, size);
	pimg_close(img);
	free(expect);
	free(pdata);
}

static void make_dynamic(char *p, size_t len)
{
	uint8_t buf[65536];
	struct pimg *img;

	tmp_path(p, len, "h.vhd");
	assert_int_equal(pimg_create(p, "vpc", 8 * MiB, NULL), 0);
	img = pimg_open(p, "vpc", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 2);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 2 * MiB), 0);
	pimg_close(img);
}

static void test_hostile(void **state)
{
	char p[256];
	uint8_t x[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, bat[4], buf[4096];
	struct pimg *img;

	(void)state;
	/* bad footer checksum at the end and at the start: refused */
	make_dynamic(p, sizeof(p));
	{
		int fd = open(p, O_RDWR);
		off_t end = lseek(fd, 0, SEEK_END);

		assert_int_equal(pwrite_full(fd, x, 1, end - 512 + 1), 0);
		close(fd);
	}
	img = pimg_open(p, "vpc", PIMG_O_RDONLY);
	assert_non_null(img); /* the copy at offset 0 saves it, read-only */
	pimg_close(img);
	assert_null(pimg_open(p, "vpc", 0));
	corrupt(p, 1, x, 1);
	assert_null(pimg_open(p, "vpc", PIMG_O_RDONLY));
	/* BAT entry pointing into the header area, and past the end */
	make_dynamic(p, sizeof(p));
	st_be32(bat, 1);
	corrupt(p, 1536 + 4, bat, 4);
	img = pimg_open(p, "vpc", PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 2 * MiB), -EIO);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_true(res.corruptions > 0);
	}
	pimg_close(img);
	st_be32(bat, 0x7ffffff0);
	corrupt(p, 1536 + 4, bat, 4);
	img = pimg_open(p, "vpc", PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 2 * MiB), -EIO);
	pimg_close(img);
	/* absurd block size and table size */
	make_dynamic(p, sizeof(p));
	st_be32(bat, 3);
	corrupt(p, 512 + 32, bat, 4);
	assert_null(pimg_open(p, "vpc", PIMG_O_RDONLY));
	make_dynamic(p, sizeof(p));
	st_be32(bat, 0xffffffff);
	corrupt(p, 512 + 28, bat, 4);
	assert_null(pimg_open(p, "vpc", PIMG_O_RDONLY));
}

static void test_mutations(void **state)
{
	char p[256];

	(void)state;
	make_dynamic(p, sizeof(p));
	mutate_and_open(p, "vpc", 4096, 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workout_dynamic),
		cmocka_unit_test(test_workout_fixed),
		cmocka_unit_test(test_size_rounding),
		cmocka_unit_test(test_differencing),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
