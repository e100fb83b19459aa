// SPDX-License-Identifier: MIT
/* VDI: dynamic and fixed round trips, the on-disk layout, crash safety, hostile headers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "helpers.h"

static void test_workout_dynamic(void **state)
{
	(void)state;
	workout("vdi", NULL, 16 * MiB);
}

static void test_workout_fixed(void **state)
{
	(void)state;
	workout("vdi", "subformat=fixed", 16 * MiB);
	workout("vdi", "static=on", 5 * MiB + 512); /* a last block shorter than 1 MiB */
}

static void read_at(const char *p, uint64_t off, void *buf, size_t len)
{
	FILE *f = fopen(p, "rb");

	assert_non_null(f);
	assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);
}

/* What VirtualBox reads: signature, version 1.1, 1 MiB blocks, slots in write order. */
static void test_layout(void **state)
{
	char p[256];
	uint8_t h[512], buf[4096];
	uint32_t map[8];
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "layout.vdi");
	assert_int_equal(pimg_create(p, "vdi", 8 * MiB, NULL), 0);
	assert_string_equal(pimg_probe(p), "vdi");
	img = pimg_open(p, NULL, 0);
	assert_non_null(img);
	assert_int_equal(pimg_granule(img), 1 * MiB);
	fill_pattern(buf, sizeof(buf), 5);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 6 * MiB), 0);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 1 * MiB + 512), 0);
	assert_int_equal(pimg_write_zeroes(img, 3 * MiB, 1 * MiB), 0); /* stays unallocated */
	pimg_close(img);
	read_at(p, 0, h, sizeof(h));
	assert_memory_equal(h, "<<< Oracle VM VirtualBox Disk Image >>>\n", 40);
	assert_int_equal(ld_le32(h + 64), 0xBEDA107F);
	assert_int_equal(ld_le32(h + 68), 0x00010001);
	assert_int_equal(ld_le32(h + 72), 400);
	assert_int_equal(ld_le32(h + 76), 1);
	assert_int_equal(ld_le64(h + 368), 8 * MiB);
	assert_int_equal(ld_le32(h + 376), 1 * MiB);
	assert_int_equal(ld_le32(h + 384), 8);
	assert_int_equal(ld_le32(h + 388), 2);
	read_at(p, ld_le32(h + 340), map, sizeof(map));
	for (int i = 0; i < 8; i++)
		assert_int_equal(le32toh(map[i]), i == 6 ? 0 : i == 1 ? 1 : 0xFFFFFFFFu);
}

/* A write that fails anywhere leaves an image that reads old or new data; check finds leaks at most. */
static void test_crash(void **state)
{
	uint8_t *old = malloc(2 * MiB), *new = malloc(2 * MiB), *buf = malloc(4 * MiB);
	char p[256];

	(void)state;
	assert_non_null(old);
	assert_non_null(new);
	assert_non_null(buf);
	fill_pattern(old, 2 * MiB, 1);
	fill_pattern(new, 2 * MiB, 2);
	for (long budget = 0; budget < 12; budget++) {
		struct pimg_check res;
		struct pimg *img;

		tmp_path(p, sizeof(p), "crash.vdi");
		assert_int_equal(pimg_create(p, "vdi", 4 * MiB, NULL), 0);
		img = pimg_open(p, "vdi", 0);
		assert_non_null(img);
		assert_int_equal(pimg_pwrite(img, old, 2 * MiB, 0), 0);
		pimg_close(img);

		pimg_set_file_ops_for_testing(&fault_ops);
		fault_write_budget = budget;
		img = pimg_open(p, "vdi", 0);
		pimg_set_file_ops_for_testing(NULL);
		assert_non_null(img);
		pimg_pwrite(img, new, 2 * MiB, 1 * MiB); /* half over old data, half a new block */
		pimg_pwrite(img, new, 1 * MiB, 3 * MiB);
		pimg_flush(img);
		pimg_close(img);
		fault_write_budget = -1;

		img = pimg_open(p, "vdi", PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		assert_int_equal(pimg_pread(img, buf, 4 * MiB, 0), 0);
		for (uint64_t c = 0; c < 4 * MiB; c += 512) {
			static const uint8_t zero[512];
			const uint8_t *o = c < 2 * MiB ? old + c : zero;
			const uint8_t *n = c >= 1 * MiB && c < 3 * MiB ? new + c - 1 * MiB : c >= 3 * MiB ? new + c - 3 * MiB : NULL;

			assert_true(!memcmp(buf + c, o, 512) || (n && !memcmp(buf + c, n, 512)));
		}
		pimg_close(img);
		if (res.leaks) {
			img = pimg_open(p, "vdi", PIMG_O_REPAIR);
			assert_non_null(img);
			assert_int_equal(pimg_check(img, &res, PIMG_REPAIR_LEAKS), 0);
			assert_int_equal(res.leaks_fixed, res.leaks);
			pimg_close(img);
			img = pimg_open(p, "vdi", PIMG_O_RDONLY);
			assert_int_equal(pimg_check(img, &res, 0), 0);
			assert_int_equal(res.leaks + res.corruptions, 0);
			pimg_close(img);
		}
	}
	free(old);
	free(new);
	free(buf);
}

static void make_image(char *p, size_t len)
{
	uint8_t buf[65536];
	struct pimg *img;

	tmp_path(p, len, "h.vdi");
	assert_int_equal(pimg_create(p, "vdi", 8 * MiB, NULL), 0);
	img = pimg_open(p, "vdi", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 2);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 2 * MiB), 0);
	pimg_close(img);
}

/* make_image() with block map entry `block` set to `val`, opened read-only. */
static struct pimg *image_with_entry(char *p, size_t len, uint32_t block, uint32_t val)
{
	uint8_t v[4];
	struct pimg *img;

	make_image(p, len);
	st_le32(v, val);
	corrupt(p, 1 * MiB + block * 4, v, 4);
	img = pimg_open(p, "vdi", PIMG_O_RDONLY);
	assert_non_null(img);
	return img;
}

static void test_hostile(void **state)
{
	char p[256];
	uint8_t v[4], buf[4096];
	struct pimg_check res;
	struct pimg *img;

	(void)state;
	/* a map entry beyond the slot area: reads fail, check counts it */
	img = image_with_entry(p, sizeof(p), 2, 0x7ffffff0);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 2 * MiB), -EIO);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_true(res.corruptions > 0);
	pimg_close(img);
	/* two blocks on one slot */
	img = image_with_entry(p, sizeof(p), 5, 0);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_true(res.corruptions > 0);
	pimg_close(img);
	/* the zero marker reads as zeros */
	img = image_with_entry(p, sizeof(p), 2, 0xFFFFFFFE);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 2 * MiB), 0);
	assert_true(pimg_is_zero(buf, sizeof(buf)));
	pimg_close(img);
	/* refused: bad block size, size beyond the blocks, map past the file, wrong
	 * version, undo and differencing types, a sector size other than 512 */
	static const struct { uint32_t off, val; } bad[] = {
		{ 376, 3 }, { 376, 512 * MiB }, { 368, 0xffffff00 }, { 372, 1 }, { 384, 0x40000000 },
		{ 340, 100 }, { 344, 1 * MiB + 4 }, { 68, 0x00010000 }, { 72, 12 }, { 76, 3 },
		{ 76, 4 }, { 76, 9 }, { 360, 4096 }, { 64, 0xBEDA1070 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		make_image(p, sizeof(p));
		st_le32(v, bad[i].val);
		corrupt(p, bad[i].off, v, 4);
		img = pimg_open(p, "vdi", PIMG_O_RDONLY);
		if (img)
			fail_msg("header field at %u = %#x was accepted", bad[i].off, bad[i].val);
	}
}

static void test_mutations(void **state)
{
	char p[256];

	(void)state;
	make_image(p, sizeof(p));
	mutate_and_open(p, "vdi", 512, 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workout_dynamic),
		cmocka_unit_test(test_workout_fixed),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
