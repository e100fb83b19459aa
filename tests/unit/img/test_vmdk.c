// SPDX-License-Identifier: MIT
/* VMDK: the three subformats, hostile descriptors and headers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"

static void test_workout_sparse(void **state)
{
	(void)state;
	workout("vmdk", NULL, 16 * MiB);
}

static void test_workout_flat(void **state)
{
	(void)state;
	workout("vmdk", "subformat=monolithicFlat", 16 * MiB);
	workout("vmdk", "subformat=twoGbMaxExtentFlat", 16 * MiB);
}

static void test_workout_split_sparse(void **state)
{
	(void)state;
	workout("vmdk", "subformat=twoGbMaxExtentSparse", 16 * MiB);
}

static void test_stream(void **state)
{
	char p[256];
	uint64_t size = 4 * MiB;
	uint8_t *data = calloc(1, size);
	struct pimg *img;

	(void)state;
	assert_non_null(data);
	fill_pattern(data, 3 * 65536, 1);
	fill_pattern(data + 2 * MiB, 65536, 2);
	tmp_path(p, sizeof(p), "stream.vmdk");
	assert_int_equal(pimg_create(p, "vmdk", size, "subformat=streamOptimized"), 0);
	img = pimg_open(p, "vmdk", 0);
	assert_non_null(img);
	assert_true(pimg_sequential_only(img));
	for (uint64_t off = 0; off < size; off += 65536)
		if (!pimg_is_zero(data + off, 65536))
			assert_int_equal(pimg_write_compressed(img, data + off, 65536, off), 0);
	/* going back is refused */
	assert_int_equal(pimg_write_compressed(img, data, 65536, 0), -EINVAL);
	assert_int_equal(pimg_pwrite(img, data, 512, 0), -EINVAL);
	pimg_close(img);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, data, size);
	pimg_close(img);
	/* a finished stream is write-once */
	assert_null(pimg_open(p, "vmdk", 0));
	free(data);
}

static const char *const bad_descriptors[] = {
	"# Disk DescriptorFile\nRW 100 FLAT \"/etc/hostname\" 0\n",
	"# Disk DescriptorFile\nRW 100 FLAT \"../x-flat.vmdk\" 0\n",
	"# Disk DescriptorFile\nRW 100 FLAT \"sub/../../x\" 0\n",
	"# Disk DescriptorFile\nRW 99999999999999999999 FLAT \"x-flat.vmdk\" 0\n",
	"# Disk DescriptorFile\nRW 100 FLAT \"x-flat.vmdk\" 999999999999999\n",
	"# Disk DescriptorFile\nRW 100 FLAT \"unterminated\n",
	"# Disk DescriptorFile\nRW 0 FLAT \"x-flat.vmdk\" 0\n",
	"# Disk DescriptorFile\nRW 100 WEIRD \"x-flat.vmdk\" 0\n",
	"# Disk DescriptorFile\nNOACCESS 100 FLAT \"x-flat.vmdk\" 0\n",
	"# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\n",
	"# Disk DescriptorFile\nRW 100000 FLAT \"x-flat.vmdk\" 0\n", /* longer than the file */
	"# Disk DescriptorFile\nRW 10 SPARSE \"x-flat.vmdk\"\n",   /* no sparse header */
};

static void test_hostile_descriptors(void **state)
{
	char d[256], flat[256];
	static uint8_t buf[81920];
	struct pimg *img;

	(void)state;
	tmp_path(d, sizeof(d), "x.vmdk");
	tmp_path(flat, sizeof(flat), "x-flat.vmdk");
	write_file(flat, buf, 51200);
	for (size_t i = 0; i < ARRAY_SIZE(bad_descriptors); i++) {
		write_file(d, bad_descriptors[i], strlen(bad_descriptors[i]));
		img = open_ext(d, "vmdk", PIMG_O_RDONLY);
		if (img)
			fail_msg("descriptor %zu accepted", i);
	}
	/* blank lines and garbage are tolerated; a ZERO extent and RDONLY work */
	{
		const char *ok = "# Disk DescriptorFile\n\n\ngarbage line\nRW 100 FLAT \"x-flat.vmdk\" 0\n\n"
				 "RDONLY 50 FLAT \"x-flat.vmdk\" 0\nRW 8 ZERO\n";

		write_file(d, ok, strlen(ok));
		img = open_ext(d, "vmdk", PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_size(img), 158 * 512);
		assert_int_equal(pimg_pread(img, buf, 158 * 512, 0), 0);
		pimg_close(img);
	}
}

static void make_sparse(char *p, size_t len)
{
	uint8_t buf[65536 * 2];
	struct pimg *img;

	tmp_path(p, len, "m.vmdk");
	assert_int_equal(pimg_create(p, "vmdk", 64 * MiB, NULL), 0);
	img = pimg_open(p, "vmdk", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 3);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 40 * MiB), 0);
	pimg_close(img);
}

static void test_hostile_sparse(void **state)
{
	char p[256];
	uint8_t v[8], buf[4096];
	struct pimg *img;

	(void)state;
	/* grain directory offset that overflows when multiplied by 512 */
	make_sparse(p, sizeof(p));
	st_le64(v, 0x0100000000000000ULL);
	corrupt(p, 56, v, 8);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* absurd grain size */
	make_sparse(p, sizeof(p));
	st_le64(v, 3);
	corrupt(p, 20, v, 8);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* descriptor size out of the file */
	make_sparse(p, sizeof(p));
	st_le64(v, 1ULL << 40);
	corrupt(p, 36, v, 8);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* grain table entry beyond the end of the file */
	make_sparse(p, sizeof(p));
	{
		struct pimg *m = pimg_open(p, NULL, PIMG_O_RDONLY);
		uint64_t gd;
		uint32_t gt;
		int fd;

		assert_non_null(m);
		pimg_close(m);
		fd = open(p, O_RDWR);
		assert_int_equal(pread_full(fd, v, 8, 56), 0);
		gd = ld_le64(v);
		assert_int_equal(pread_full(fd, v, 4, (off_t)(gd * 512 + 4)), 0); /* GD entry 1: 32-64 MiB */
		gt = ld_le32(v);
		st_le32(v, 0x7ffffff0);
		assert_int_equal(pwrite_full(fd, v, 4, (off_t)(gt * 512ULL + 4 * 128)), 0); /* grain at 40 MiB */
		close(fd);
	}
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 40 * MiB), -EIO);
	pimg_close(img);
	/* grain table entry pointing into the descriptor (metadata): refused, also for writes */
	{
		int fd = open(p, O_RDWR);
		uint64_t gd;
		uint32_t gt;

		assert_int_equal(pread_full(fd, v, 8, 56), 0);
		gd = ld_le64(v);
		assert_int_equal(pread_full(fd, v, 4, (off_t)(gd * 512 + 4)), 0);
		gt = ld_le32(v);
		st_le32(v, 2);
		assert_int_equal(pwrite_full(fd, v, 4, (off_t)(gt * 512ULL + 4 * 128)), 0);
		close(fd);
	}
	img = pimg_open(p, NULL, 0);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 40 * MiB), -EIO);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 40 * MiB), -EIO);
	pimg_close(img);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_true(res.corruptions > 0);
	}
	pimg_close(img);
}

/* A monolithicSparse file whose embedded descriptor names another file (renamed, or
 * FreeBSD mkimg's empty name) is its own extent; a lone split extent opens alone. */
static void test_embedded_is_self(void **state)
{
	char p[256], q[256];
	uint8_t buf[65536], got[65536], zero16[16] = { 0 };
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "self.vmdk");
	tmp_path(q, sizeof(q), "renamed.vmdk");
	assert_int_equal(pimg_create(p, "vmdk", 4 * MiB, NULL), 0);
	img = pimg_open(p, "vmdk", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 9);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 1 * MiB), 0);
	pimg_close(img);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(pimg_create(p, "vmdk", 2 * MiB, NULL), 0); /* a decoy under the old name */
	img = pimg_open(q, NULL, 0); /* the descriptor still says "self.vmdk" */
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4 * MiB);
	assert_int_equal(pimg_pread(img, got, sizeof(got), 1 * MiB), 0);
	assert_memory_equal(got, buf, sizeof(got));
	pimg_close(img);
	/* no descriptor at all (offset and size 0): the header's capacity */
	corrupt(q, 28, zero16, 16);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4 * MiB);
	assert_int_equal(pimg_pread(img, got, sizeof(got), 1 * MiB), 0);
	assert_memory_equal(got, buf, sizeof(got));
	pimg_close(img);
}

/* Extents sharing one flat file at offsets: one open file, writable, data at the offsets. */
static void test_shared_flat_file(void **state)
{
	static const char desc[] = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
				   "RW 2048 FLAT \"shared.bin\" 2048\nRW 2048 FLAT \"shared.bin\" 0\n";
	char p[256], f[256];
	uint8_t *data = calloc(1, 2 * MiB), buf[4096];
	struct pimg *img;
	FILE *fp;

	(void)state;
	assert_non_null(data);
	tmp_path(f, sizeof(f), "shared.bin");
	tmp_path(p, sizeof(p), "shared.vmdk");
	fill_pattern(data, 2 * MiB, 4);
	write_file(f, data, 2 * MiB);
	write_file(p, desc, sizeof(desc) - 1);
	img = open_ext(p, NULL, 0);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 2 * MiB);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf, data + 1 * MiB, sizeof(buf)); /* the first extent is the second half */
	memset(buf, 0x5c, sizeof(buf));
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 1 * MiB + 512), 0);
	pimg_close(img);
	fp = fopen(f, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(data, 1, 2 * MiB, fp), 2 * MiB);
	fclose(fp);
	assert_memory_equal(data + 512, buf, sizeof(buf)); /* the second extent starts the file */
	free(data);
}

/* Version 3 hosted sparse extents (changed-block tracking) are read only. */
static void test_version3_read_only(void **state)
{
	char p[256];
	uint8_t v3[4] = { 3, 0, 0, 0 };
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "v3.vmdk");
	assert_int_equal(pimg_create(p, "vmdk", 4 * MiB, NULL), 0);
	corrupt(p, 4, v3, 4);
	assert_null(pimg_open(p, NULL, 0));
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	pimg_close(img);
}

/*
 * An ESX sparse (COWD) extent built from the layout: 4096 sectors of 512-byte
 * grains, the GD at sector 4, one GT at sector 5, grain 10 at sector 37.
 */
static void make_cowd(const char *p, uint8_t *grain)
{
	size_t len = 38 * 512;
	uint8_t *f = calloc(1, len);

	assert_non_null(f);
	memcpy(f, "COWD", 4);
	st_le32(f + 4, 1);
	st_le32(f + 8, 3);
	st_le32(f + 12, 4096);
	st_le32(f + 16, 1);
	st_le32(f + 20, 4);
	st_le32(f + 24, 1);
	st_le32(f + 4 * 512, 5);
	st_le32(f + 5 * 512 + 10 * 4, 37);
	fill_pattern(grain, 512, 77);
	memcpy(f + 37 * 512, grain, 512);
	write_file(p, f, len);
	free(f);
}

static void test_cowd(void **state)
{
	uint8_t grain[512], buf[1024], v[4];
	char p[256];
	struct pimg_check res;
	struct pimg *img;

	(void)state;
	tmp_path(p, sizeof(p), "cowd.vmdk");
	make_cowd(p, grain);
	assert_string_equal(pimg_probe(p), "vmdk");
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4096 * 512);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 9 * 512), 0);
	assert_true(pimg_is_zero(buf, 512));
	assert_memory_equal(buf + 512, grain, 512);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions, 0);
	pimg_close(img);
	assert_null(pimg_open(p, NULL, 0)); /* read only */
	/* a grain inside the header, a GD too small, a grain size that is not a power of two */
	st_le32(v, 2);
	corrupt(p, 5 * 512 + 10 * 4, v, 4);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, 512, 10 * 512), -EIO);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions, 1);
	pimg_close(img);
	make_cowd(p, grain);
	st_le32(v, 8192);
	corrupt(p, 12, v, 4);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	make_cowd(p, grain);
	st_le32(v, 3);
	corrupt(p, 16, v, 4);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	make_cowd(p, grain);
	mutate_and_open(p, "vmdk", 5 * 512 + 64, 200);
}

/*
 * A seSparse extent from the layout qemu reads: 4096 sectors, constant header at
 * 0, volatile header at 1, the GD at 2, one GT at 3 (64 sectors), grains from 67:
 * grain 5 allocated (index 0), grain 6 a zero grain.
 */
static void make_sesparse(const char *p, uint8_t *grain)
{
	size_t len = 68 * 512 + 4096;
	uint8_t *f = calloc(1, len);

	assert_non_null(f);
	st_le64(f, 0xcafebabe);
	st_le64(f + 8, 0x200000001ULL);
	st_le64(f + 16, 4096);
	st_le64(f + 24, 8);
	st_le64(f + 32, 64);
	st_le64(f + 80, 1);   /* volatile header */
	st_le64(f + 88, 1);
	st_le64(f + 128, 2);  /* GD */
	st_le64(f + 136, 1);
	st_le64(f + 144, 3);  /* GTs */
	st_le64(f + 152, 64);
	st_le64(f + 192, 67); /* grains */
	st_le64(f + 200, 8);
	st_le64(f + 512, 0xcafecafe);
	st_le64(f + 2 * 512, 0x1000000000000000ULL);
	st_le64(f + 3 * 512 + 5 * 8, 0x3000000000000000ULL);
	st_le64(f + 3 * 512 + 6 * 8, 0x2000000000000000ULL);
	fill_pattern(grain, 4096, 55);
	memcpy(f + 67 * 512, grain, 4096);
	write_file(p, f, len);
	free(f);
}

static void test_sesparse(void **state)
{
	uint8_t grain[4096], buf[3 * 4096], v[8];
	char p[256];
	struct pimg *img;
	uint64_t pnum;

	(void)state;
	tmp_path(p, sizeof(p), "x-sesparse.vmdk");
	make_sesparse(p, grain);
	assert_string_equal(pimg_probe(p), "vmdk");
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4096 * 512);
	assert_int_equal(pimg_block_status(img, 4 * 4096, 3 * 4096, &pnum, false), PIMG_UNALLOCATED);
	assert_int_equal(pnum, 4096);
	assert_int_equal(pimg_block_status(img, 5 * 4096, 2 * 4096, &pnum, false), PIMG_DATA);
	assert_int_equal(pimg_block_status(img, 6 * 4096, 4096, &pnum, false), PIMG_ZERO);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 4 * 4096), 0);
	assert_true(pimg_is_zero(buf, 4096));
	assert_memory_equal(buf + 4096, grain, 4096);
	assert_true(pimg_is_zero(buf + 8192, 4096));
	pimg_close(img);
	assert_null(pimg_open(p, NULL, 0)); /* read only */
	/* refused at open: a journal to replay, another grain size */
	st_le64(v, 1);
	corrupt(p, 512 + 24, v, 8);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	make_sesparse(p, grain);
	st_le64(v, 16);
	corrupt(p, 24, v, 8);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* refused on use: a bad GD entry, an unknown GT entry type, a grain index that overflows */
	static const struct { uint64_t off, val; } bad[] = {
		{ 2 * 512, 0x2000000000000000ULL }, { 3 * 512 + 5 * 8, 0x5000000000000000ULL },
		{ 3 * 512 + 5 * 8, 0x3fffffffffffffffULL }, { 3 * 512 + 4 * 8, 0x0000000000000001ULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		make_sesparse(p, grain);
		st_le64(v, bad[i].val);
		corrupt(p, bad[i].off, v, 8);
		img = pimg_open(p, NULL, PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_pread(img, buf, sizeof(buf), 4 * 4096), -EIO);
		pimg_close(img);
	}
	make_sesparse(p, grain);
	mutate_and_open(p, "vmdk", 4 * 512, 200);
}

static void test_mutations(void **state)
{
	char p[256];

	(void)state;
	make_sparse(p, sizeof(p));
	mutate_and_open(p, NULL, 16 * 1024, 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workout_sparse),
		cmocka_unit_test(test_workout_flat),
		cmocka_unit_test(test_workout_split_sparse),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_hostile_descriptors),
		cmocka_unit_test(test_hostile_sparse),
		cmocka_unit_test(test_embedded_is_self),
		cmocka_unit_test(test_shared_flat_file),
		cmocka_unit_test(test_version3_read_only),
		cmocka_unit_test(test_cowd),
		cmocka_unit_test(test_sesparse),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
