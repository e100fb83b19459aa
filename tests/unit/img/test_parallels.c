// SPDX-License-Identifier: MIT
/* Parallels: images built from the format description, both magics; hostile headers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "helpers.h"

#define CL (64 * 1024)
#define NCL 16

/*
 * A 1 MiB disk of 64 KiB clusters: clusters 1, 5 and 15 allocated in the file in
 * the order 15, 1, 5 (after the header and BAT, one cluster in), the rest holes.
 * ext: "WithouFreSpacExt" (BAT in clusters), else "WithoutFreeSpace" (sectors).
 * expect receives the disk's content.
 */
static void build(const char *p, bool ext, uint8_t *expect)
{
	static const uint32_t order[] = { 15, 1, 5 };
	size_t len = CL * 4;
	uint8_t *f = calloc(1, len);

	assert_non_null(f);
	memset(expect, 0, NCL * CL);
	memcpy(f, ext ? "WithouFreSpacExt" : "WithoutFreeSpace", 16);
	st_le32(f + 16, 2);
	st_le32(f + 20, 16);
	st_le32(f + 24, 4);
	st_le32(f + 28, CL / 512);
	st_le32(f + 32, NCL);
	st_le64(f + 36, (uint64_t)NCL * CL / 512 | (ext ? 0 : 0xabcd00000000ULL)); /* junk above 32 bits */
	st_le32(f + 48, CL / 512);
	for (uint32_t i = 0; i < ARRAY_SIZE(order); i++) {
		uint64_t host = (uint64_t)(i + 1) * CL;

		st_le32(f + 64 + 4 * order[i], (uint32_t)(ext ? host / CL : host / 512));
		fill_pattern(f + host, CL, order[i] + 100);
		memcpy(expect + (size_t)order[i] * CL, f + host, CL);
	}
	write_file(p, f, len);
	free(f);
}

static void test_read(void **state)
{
	uint8_t *expect = malloc(NCL * CL);
	char p[256];
	struct pimg_check res;
	struct pimg *img;
	uint64_t pnum;

	(void)state;
	assert_non_null(expect);
	for (int ext = 0; ext < 2; ext++) {
		tmp_path(p, sizeof(p), "a.hds");
		build(p, ext, expect);
		assert_string_equal(pimg_probe(p), "parallels");
		img = pimg_open(p, NULL, PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_size(img), NCL * CL);
		assert_int_equal(pimg_granule(img), CL);
		assert_content(img, expect, NCL * CL);
		assert_int_equal(pimg_block_status(img, 0, NCL * CL, &pnum, false), PIMG_ZERO);
		assert_int_equal(pnum, CL);
		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		assert_int_equal(res.allocated_clusters, 3);
		pimg_close(img);
		/* read only: a writable open is refused, and nothing creates one */
		assert_null(pimg_open(p, "parallels", 0));
		assert_int_equal(pimg_create(p, "parallels", 1 * MiB, NULL), -ENOTSUP);
	}
	free(expect);
}

/* Old images: 63-sector clusters (not a power of two), offsets in sectors. */
static void test_odd_clusters(void **state)
{
	const uint32_t cl = 63 * 512, n = 6;
	uint8_t *f = calloc(1, 512 + (size_t)n * cl), *expect = calloc(n, cl);
	char p[256];
	struct pimg *img;

	(void)state;
	assert_non_null(f);
	assert_non_null(expect);
	memcpy(f, "WithoutFreeSpace", 16);
	st_le32(f + 16, 2);
	st_le32(f + 28, 63);
	st_le32(f + 32, n);
	st_le64(f + 36, (uint64_t)n * 63);
	st_le32(f + 48, 1);
	/* clusters 1 and 4 hold data, stored in the file's first two data clusters */
	st_le32(f + 64 + 4 * 1, 1);
	st_le32(f + 64 + 4 * 4, 1 + 63);
	fill_pattern(f + 512, 2 * cl, 8);
	memcpy(expect + cl, f + 512, cl);
	memcpy(expect + 4 * cl, f + 512 + cl, cl);
	tmp_path(p, sizeof(p), "odd.hds");
	write_file(p, f, 512 + 2 * (size_t)cl);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), (uint64_t)n * cl);
	assert_content(img, expect, (uint64_t)n * cl);
	pimg_close(img);
	free(f);
	free(expect);
}

static void test_hostile(void **state)
{
	uint8_t *expect = malloc(NCL * CL), v[8], buf[4096];
	char p[256];
	struct pimg_check res;
	struct pimg *img;

	(void)state;
	assert_non_null(expect);
	tmp_path(p, sizeof(p), "h.hds");
	/* an entry in the header: reads of that cluster fail, check counts it */
	build(p, false, expect);
	st_le32(v, 1);
	corrupt(p, 64 + 4 * 3, v, 4);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 3 * CL), -EIO);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions, 1);
	pimg_close(img);
	/* an entry past the file end reads zeros but is a corruption; so is a shared cluster */
	build(p, true, expect);
	st_le32(v, 0xfffffff0);
	corrupt(p, 64 + 4 * 3, v, 4);
	st_le32(v, 1);
	corrupt(p, 64 + 4 * 4, v, 4);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 3 * CL), 0);
	assert_true(pimg_is_zero(buf, sizeof(buf)));
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions, 2);
	pimg_close(img);
	/* refused: version, cluster size, disk bigger than the BAT, BAT past the file,
	 * data offset inside the BAT */
	static const struct { uint32_t off, val; } bad[] = {
		{ 16, 3 }, { 28, 0 }, { 28, 0x100000 }, { 36, NCL * CL / 512 + 1 },
		{ 32, 0x10000000 }, { 32, 0x4000 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		build(p, true, expect);
		st_le32(v, bad[i].val);
		corrupt(p, bad[i].off, v, 4);
		img = pimg_open(p, "parallels", PIMG_O_RDONLY);
		if (img)
			fail_msg("header field at %u = %#x was accepted", bad[i].off, bad[i].val);
	}
	build(p, true, expect);
	mutate_and_open(p, "parallels", 256, 200);
	free(expect);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_odd_clusters),
		cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
