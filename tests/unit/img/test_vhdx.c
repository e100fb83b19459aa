// SPDX-License-Identifier: MIT
/* VHDX: round trips, differencing, log replay after a crash, hostile headers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"

static void test_workout_dynamic(void **state)
{
	(void)state;
	workout("vhdx", "block_size=1M", 16 * MiB);
}

static void test_workout_fixed(void **state)
{
	(void)state;
	workout("vhdx", "subformat=fixed,block_size=1M", 16 * MiB);
}

static void test_differencing(void **state)
{
	char parent[256], child[256];
	uint64_t size = 8 * MiB;
	uint8_t *expect = malloc(size), buf[3000];
	struct pimg *img;

	(void)state;
	assert_non_null(expect);
	tmp_path(parent, sizeof(parent), "parent.vhdx");
	tmp_path(child, sizeof(child), "child.vhdx");
	assert_int_equal(pimg_create(parent, "vhdx", size, "block_size=1M"), 0);
	img = pimg_open(parent, "vhdx", 0);
	assert_non_null(img);
	fill_pattern(expect, size, 21);
	assert_int_equal(pimg_pwrite(img, expect, size, 0), 0);
	pimg_close(img);
	assert_int_equal(pimg_create(child, "vhdx", 0, "backing_file=parent.vhdx,block_size=1M"), 0);
	img = open_ext(child, NULL, 0);
	assert_non_null(img);
	assert_non_null(pimg_backing(img));
	assert_content(img, expect, size);
	fill_pattern(buf, sizeof(buf), 22);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 3 * MiB - 1000), 0);
	memcpy(expect + 3 * MiB - 1000, buf, sizeof(buf));
	assert_content(img, expect, size);
	pimg_close(img);
	img = open_ext(child, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, expect, size);
	pimg_close(img);
	free(expect);
}

/* A VHDX of size bytes holding data (1-4 MiB and 20-21 MiB), whose BAT update is
 * only in the log: the in-place write of the BAT region failed. */
static void make_pending_log(const char *p, const uint8_t *data, uint64_t size)
{
	struct pimg *img;

	assert_int_equal(pimg_create(p, "vhdx", size, "block_size=1M"), 0);
	pimg_set_file_ops_for_testing(&fault_ops);
	fault_lo = 2 * MiB; /* the BAT region */
	fault_hi = 3 * MiB;
	img = pimg_open(p, "vhdx", 0);
	pimg_set_file_ops_for_testing(NULL);
	assert_non_null(img);
	assert_int_equal(pimg_pwrite(img, data + 1 * MiB, 3 * MiB, 1 * MiB), 0);
	assert_int_equal(pimg_pwrite(img, data + 20 * MiB, 1 * MiB, 20 * MiB), 0);
	assert_int_not_equal(pimg_flush(img), 0); /* the "crash" */
	pimg_close(img);
	fault_lo = fault_hi = 0;
}

/* Turn the first descriptor of the newest log entry into "zero" (off, len); fix the CRC. */
static void log_entry_to_zero(const char *p, uint64_t off, uint64_t len)
{
	uint8_t *log = malloc(1 * MiB), v[8];
	uint64_t e = 0;
	uint32_t elen;
	int fd = open(p, O_RDWR);

	assert_non_null(log);
	assert_true(fd >= 0);
	assert_int_equal(pread_full(fd, log, 1 * MiB, 1 * MiB), 0); /* the log region */
	/* the newest entry (the close after the failed flush may have logged again) */
	for (uint64_t o = 0, seq = 0; o < 1 * MiB; o += 4096) {
		if (!memcmp(log + o, "loge", 4) && ld_le64(log + o + 16) > seq) {
			seq = ld_le64(log + o + 16);
			e = o;
		}
	}
	assert_memory_equal(log + e, "loge", 4);
	elen = ld_le32(log + e + 8);
	memcpy(log + e + 64, "zero", 4);
	st_le64(log + e + 64 + 8, len);
	st_le64(log + e + 64 + 16, off);
	memset(log + e + 4, 0, 4);
	st_le32(v, pimg_crc32c(0, log + e, elen));
	memcpy(log + e + 4, v, 4);
	assert_int_equal(pwrite_full(fd, log + e, elen, (off_t)(1 * MiB + e)), 0);
	close(fd);
	free(log);
}

/*
 * A log "zero" descriptor: replayed inside the file as a hole, never by writing
 * zeros (an 8 MiB image grew to 272 MiB on open before); one that reaches beyond
 * the file's end is refused, and the file is left as it was.
 */
static void test_log_zero_replay_bounded(void **state)
{
	char p[256];
	uint64_t size = 32 * MiB;
	uint8_t *data = calloc(1, size);
	struct pimg *img;
	struct stat before, after;

	(void)state;
	assert_non_null(data);
	fill_pattern(data + 1 * MiB, 3 * MiB, 41);
	fill_pattern(data + 20 * MiB, 1 * MiB, 42);
	tmp_path(p, sizeof(p), "logzero.vhdx");

	make_pending_log(p, data, size);
	log_entry_to_zero(p, 64 * MiB, 1 * GiB); /* far beyond the end of the file */
	assert_int_equal(stat(p, &before), 0);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	assert_null(pimg_open(p, NULL, 0));
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_blocks, before.st_blocks);

	/* Inside the file, over the unused (never written) tail of the BAT region. */
	make_pending_log(p, data, size);
	log_entry_to_zero(p, 2 * MiB + 4096, 1 * MiB - 4096);
	assert_int_equal(stat(p, &before), 0);
	img = pimg_open(p, NULL, 0);
	assert_non_null(img);
	pimg_close(img);
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_true(after.st_blocks <= before.st_blocks + 128); /* 64 KiB: a header update */
	/* The zeroed entry dropped the BAT update: the image reads as it was created. */
	memset(data, 0, size);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, data, size);
	pimg_close(img);
	free(data);
}

/*
 * Writes reach the file, the log entry too, but the BAT update in place fails:
 * the next open must replay the log and see the new data -- in memory when
 * read-only, in the file when writable. qemu-img, if installed, must agree.
 */
static void test_log_replay(void **state)
{
	char p[256], cmd[2048];
	uint64_t size = 32 * MiB;
	uint8_t *data = malloc(size);
	struct pimg *img;

	(void)state;
	assert_non_null(data);
	memset(data, 0, size);
	fill_pattern(data + 1 * MiB, 3 * MiB, 31);
	fill_pattern(data + 20 * MiB, 1 * MiB, 32);
	tmp_path(p, sizeof(p), "log.vhdx");
	make_pending_log(p, data, size);

	if (!access("/usr/bin/qemu-img", X_OK)) {
		/* qemu replays our log (check -r all) and reads the same content */
		char q[256];
		uint8_t *buf = malloc(size);
		int fd;

		tmp_path(q, sizeof(q), "log-copy.vhdx");
		snprintf(cmd, sizeof(cmd), "cp %s %s && qemu-img check -q -r all %s >/dev/null 2>&1 && "
			 "qemu-img convert -f vhdx -O raw %s %s.raw", p, q, q, q, q);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "%s.raw", q);
		fd = open(cmd, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread_full(fd, buf, size, 0), 0);
		close(fd);
		assert_memory_equal(buf, data, size);
		free(buf);
	} else {
		print_message("qemu-img not installed: oracle part of the log test not run\n");
	}

	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, data, size); /* replayed in memory */
	pimg_close(img);
	img = pimg_open(p, NULL, 0); /* replayed into the file */
	assert_non_null(img);
	assert_content(img, data, size);
	pimg_close(img);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, data, size);
	pimg_close(img);
	free(data);
}

static void make_image(char *p, size_t len)
{
	uint8_t buf[65536];
	struct pimg *img;

	tmp_path(p, len, "h.vhdx");
	assert_int_equal(pimg_create(p, "vhdx", 16 * MiB, "block_size=1M"), 0);
	img = pimg_open(p, "vhdx", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 2);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 5 * MiB), 0);
	pimg_close(img);
}

static void test_hostile(void **state)
{
	char p[256];
	uint8_t x = 0x55, v[8], buf[4096];
	struct pimg *img;

	(void)state;
	/* both headers bad: refused; one bad: the other is used */
	make_image(p, sizeof(p));
	corrupt(p, 64 * KiB + 100, &x, 1);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	pimg_close(img);
	corrupt(p, 128 * KiB + 100, &x, 1);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* both region tables bad */
	make_image(p, sizeof(p));
	corrupt(p, 192 * KiB + 40, &x, 1);
	corrupt(p, 256 * KiB + 40, &x, 1);
	assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	/* BAT entry pointing into the log, and far beyond the file */
	make_image(p, sizeof(p));
	st_le64(v, (1ULL << 20) | 6);
	corrupt(p, 2 * MiB + 5 * 8, v, 8);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 5 * MiB), -EIO);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_true(res.corruptions > 0);
	}
	pimg_close(img);
	st_le64(v, (0xfffffffffULL << 20) | 6);
	corrupt(p, 2 * MiB + 5 * 8, v, 8);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 5 * MiB), -EIO);
	pimg_close(img);
	/* metadata: absurd virtual size */
	make_image(p, sizeof(p));
	{
		struct pimg *m = pimg_open(p, NULL, PIMG_O_RDONLY);
		uint64_t meta_off;

		assert_non_null(m);
		pimg_close(m);
		meta_off = 3 * MiB; /* 16 MiB / 1 MiB blocks: BAT region is 1 MiB at 2 MiB */
		st_le64(v, 1ULL << 62);
		corrupt(p, meta_off + 64 * KiB + 8, v, 8);
		assert_null(pimg_open(p, NULL, PIMG_O_RDONLY));
	}
}

static void test_mutations(void **state)
{
	char p[256];

	(void)state;
	make_image(p, sizeof(p));
	mutate_and_open(p, NULL, 64 * KiB * 5, 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workout_dynamic),
		cmocka_unit_test(test_workout_fixed),
		cmocka_unit_test(test_differencing),
		cmocka_unit_test(test_log_replay),
		cmocka_unit_test(test_log_zero_replay_bounded),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
