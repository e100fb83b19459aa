// SPDX-License-Identifier: MIT
/* qcow2: round trips, compression, hostile headers, crash consistency. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"

static void test_workout_default(void **state)
{
	(void)state;
	workout("qcow2", NULL, 16 * MiB);
}

static void test_workout_small_clusters(void **state)
{
	(void)state;
	/* 512-byte clusters: refcount table growth, many L2 tables and cache evictions */
	workout("qcow2", "cluster_size=512", 24 * MiB);
}

static void test_workout_big_clusters(void **state)
{
	(void)state;
	workout("qcow2", "cluster_size=2M", 16 * MiB);
}

static void test_workout_extl2(void **state)
{
	(void)state;
	/* subclusters of 2 KiB (64 KiB clusters) and 512 bytes (16 KiB clusters) */
	workout("qcow2", "extended_l2=on", 16 * MiB);
	workout("qcow2", "extended_l2=on,cluster_size=16k", 8 * MiB);
}

/* Compare img with expect, close it, reopen read-only: the same content and a clean check. */
static void close_and_verify(struct pimg *img, const char *path, const uint8_t *expect, uint64_t size)
{
	struct pimg_check res;

	assert_content(img, expect, size);
	pimg_close(img);
	img = open_ext(path, "qcow2", PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, expect, size);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions + res.leaks, 0);
	pimg_close(img);
}

/* Partial subcluster writes, zeroes and discards over a backing file, against a shadow. */
static void test_extl2_backing(void **state)
{
	char base[256], top[256];
	uint64_t size = 4 * MiB;
	uint8_t *shadow = malloc(size), *buf = malloc(200000);
	struct pimg *img;
	uint64_t rng = 7;

	(void)state;
	assert_non_null(shadow);
	assert_non_null(buf);
	tmp_path(base, sizeof(base), "xbase.qcow2");
	tmp_path(top, sizeof(top), "xtop.qcow2");
	assert_int_equal(pimg_create(base, "qcow2", size, NULL), 0);
	img = pimg_open(base, "qcow2", 0);
	assert_non_null(img);
	fill_pattern(shadow, size, 11);
	assert_int_equal(pimg_pwrite(img, shadow, size, 0), 0);
	pimg_close(img);
	assert_int_equal(pimg_create(top, "qcow2", 0, "extended_l2=on,backing_file=xbase.qcow2,backing_fmt=qcow2"), 0);
	img = open_ext(top, "qcow2", 0);
	assert_non_null(img);
	for (int i = 0; i < 300; i++) {
		uint64_t len, off;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		len = 1 + (rng >> 33) % (i % 10 == 0 ? 200000 : 3000);
		off = (rng >> 13) % (size - len);
		if (i % 17 == 5) {
			assert_int_equal(pimg_write_zeroes(img, off, len), 0);
			memset(shadow + off, 0, len);
		} else if (i % 23 == 11) {
			/* any range: per cluster piece of whole sectors (the core's rule), its whole
			 * 2 KiB subclusters read as zeros, the edges as before */
			assert_int_equal(pimg_discard(img, off, len), 0);
			for (uint64_t p = off, end = off + len; p < end;) {
				uint64_t n = MIN(end - p, 65536 - (p & 65535));
				uint64_t a0 = align_up(p, 2048), a1 = (p + n) & ~2047ULL;

				if (!(p % 512) && !(n % 512) && a0 < a1)
					memset(shadow + a0, 0, a1 - a0);
				p += n;
			}
		} else if (i % 23 == 7) {
			off &= ~(uint64_t)65535;
			len = 65536;
			assert_int_equal(pimg_discard(img, off, len), 0);
			memset(shadow + off, 0, len); /* over a backing file a discard reads as zeros */
		} else {
			fill_pattern(buf, len, (uint64_t)i + 100);
			assert_int_equal(pimg_pwrite(img, buf, len, off), 0);
			memcpy(shadow + off, buf, len);
		}
		if (i % 50 == 0)
			assert_content(img, shadow, size);
	}
	close_and_verify(img, top, shadow, size);
	free(shadow);
	free(buf);
}

/* A guest's write + discard loop: freed clusters are reused, so the file stays bounded. */
static void test_discard_reuse_bounded(void **state)
{
	char p[256];
	uint8_t buf[65536];
	struct pimg *img;
	struct pimg_check res;
	struct stat st;

	(void)state;
	tmp_path(p, sizeof(p), "reuse.qcow2");
	assert_int_equal(pimg_create(p, "qcow2", 4 * MiB, NULL), 0);
	img = pimg_open(p, "qcow2", 0);
	assert_non_null(img);
	for (int i = 0; i < 2000; i++) {
		fill_pattern(buf, sizeof(buf), (uint64_t)i);
		assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 65536), 0);
		assert_int_equal(pimg_discard(img, 65536, sizeof(buf)), 0);
		if (i % 100 == 99)
			assert_int_equal(pimg_flush(img), 0); /* half the time with flushes, half without */
		if (i == 999)
			break;
	}
	for (int i = 0; i < 1000; i++) {
		fill_pattern(buf, sizeof(buf), (uint64_t)i);
		assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 65536), 0);
		assert_int_equal(pimg_discard(img, 65536, sizeof(buf)), 0);
	}
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 2 * 65536), 0);
	pimg_close(img);
	/* 4 MiB of data + header, L1, refcount table and block, one L2 table: at most ~4.5 MiB */
	assert_int_equal(stat(p, &st), 0);
	assert_true((uint64_t)st.st_size <= 4 * MiB + 8 * 65536);
	/* the freed clusters were punched: only metadata and one data cluster use space */
	assert_true((uint64_t)st.st_blocks * 512 <= 16 * 65536);
	img = pimg_open(p, "qcow2", PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_check(img, &res, 0), 0);
	assert_int_equal(res.corruptions + res.leaks, 0);
	assert_int_equal(pimg_pread(img, buf + 0, 4096, 2 * 65536), 0);
	pimg_close(img);
}

/* The whole file at path, malloc'ed; its length in *len. */
static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	*len = (size_t)ftell(f);
	rewind(f);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

/*
 * pimg_compress with two compressors of one image (as convert -c's threads do), then
 * pimg_write_compressed_data in order: the same file as pimg_write_compressed makes;
 * an incompressible cluster goes plainly; results that qcow2 could not hold are refused.
 */
static void test_compress_two_steps(void **state)
{
	const char *opts[] = { NULL, "compression_type=zstd" };

	(void)state;
	for (unsigned o = 0; o < 2; o++) {
		char p1[256], p2[256];
		uint64_t size = 2 * MiB + 3584, cs = 65536;
		uint8_t *data = malloc(size), *out = NULL, *a, *b;
		struct pimg *one, *two;
		struct pimg_compressor *c[2];
		size_t clen, la, lb;

		assert_non_null(data);
		for (uint64_t i = 0; i < size; i++)
			data[i] = (uint8_t)(i % 251);
		fill_pattern(data + 512 * 1024, cs, 9); /* does not compress */
		tmp_path(p1, sizeof(p1), "one.qcow2");
		tmp_path(p2, sizeof(p2), "two.qcow2");
		assert_int_equal(pimg_create(p1, "qcow2", size, opts[o]), 0);
		assert_int_equal(pimg_create(p2, "qcow2", size, opts[o]), 0);
		one = pimg_open(p1, "qcow2", 0);
		two = pimg_open(p2, "qcow2", 0);
		assert_non_null(one);
		assert_non_null(two);
		c[0] = pimg_compressor_new(two);
		c[1] = pimg_compressor_new(two);
		assert_non_null(c[0]);
		assert_non_null(c[1]);
		out = malloc(pimg_compress_bound(two));
		assert_non_null(out);
		for (uint64_t off = 0; off < size; off += cs) {
			size_t n = MIN(cs, size - off);
			int r = pimg_compress(c[(off / cs) % 2], data + off, n, off, out, &clen);

			if (off == 512 * 1024)
				assert_int_equal(r, -ENOSPC);
			else
				assert_int_equal(r, 0);
			assert_int_equal(pimg_write_compressed_data(two, r ? NULL : out, r ? 0 : clen,
								    data + off, n, off), 0);
			assert_int_equal(pimg_write_compressed(one, data + off, n, off), 0);
		}
		assert_int_equal(pimg_compress(c[0], data, 4096, 0, out, &clen), -EINVAL);
		assert_int_equal(pimg_write_compressed_data(two, out, cs, data, cs, 0), -EINVAL);
		assert_content(two, data, size);
		pimg_compressor_free(c[0]);
		pimg_compressor_free(c[1]);
		pimg_close(one);
		pimg_close(two);
		a = read_file(p1, &la);
		b = read_file(p2, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		free(a);
		free(b);
		free(out);
		free(data);
	}
}

static void compressed_roundtrip(const char *opts)
{
	char p[256];
	uint64_t size = 4 * MiB;
	uint8_t *data = malloc(size);
	struct pimg *img;

	assert_non_null(data);
	/* compressible: a pattern repeated every 256 bytes, with some random clusters */
	for (uint64_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i % 251);
	fill_pattern(data + 1 * MiB, 65536, 4);
	tmp_path(p, sizeof(p), "comp.qcow2");
	assert_int_equal(pimg_create(p, "qcow2", size, opts), 0);
	img = pimg_open(p, "qcow2", 0);
	assert_non_null(img);
	for (uint64_t off = 0; off < size; off += 65536)
		assert_int_equal(pimg_write_compressed(img, data + off, 65536, off), 0);
	assert_int_equal(pimg_write_compressed(img, data, 4096, 0), -EINVAL);
	assert_content(img, data, size);
	/* overwrite part of a compressed cluster: copy-on-write to a plain cluster */
	fill_pattern(data + 70000, 1000, 8);
	assert_int_equal(pimg_pwrite(img, data + 70000, 1000, 70000), 0);
	assert_content(img, data, size);
	pimg_close(img);
	img = pimg_open(p, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, data, size);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		assert_int_equal(res.leaks, 0);
	}
	pimg_close(img);
	free(data);
}

static void test_compressed_zlib(void **state)
{
	(void)state;
	compressed_roundtrip(NULL);
}

static void test_compressed_zstd(void **state)
{
	(void)state;
	compressed_roundtrip("compression_type=zstd");
}

static void make_image(char *p, size_t len, const char *name)
{
	uint8_t buf[65536];
	struct pimg *img;

	tmp_path(p, len, name);
	assert_int_equal(pimg_create(p, "qcow2", 8 * MiB, NULL), 0);
	img = pimg_open(p, "qcow2", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 1);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 0), 0);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 5 * MiB), 0);
	pimg_close(img);
}

static void expect_open_fails(const char *p, uint64_t off, const void *bytes, size_t len)
{
	char q[256];
	struct pimg *img;

	make_image(q, sizeof(q), "hostile.qcow2");
	corrupt(q, off, bytes, len);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_null(img);
	(void)p;
}

static void test_hostile_headers(void **state)
{
	uint8_t be64_huge[8] = { 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00 };
	uint8_t be32_big[4] = { 0x7f, 0xff, 0xff, 0xff };
	uint8_t bits[4] = { 0, 0, 0, 40 };
	uint8_t ver[4] = { 0, 0, 0, 9 };
	uint8_t incompat[8] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
	uint8_t crypt[4] = { 0, 0, 0, 1 };
	uint8_t hlen[4] = { 0, 0, 0xff, 0xf0 };

	(void)state;
	expect_open_fails(NULL, 4, ver, 4);              /* version */
	expect_open_fails(NULL, 20, bits, 4);            /* cluster_bits */
	expect_open_fails(NULL, 24, be64_huge, 8);       /* virtual size */
	expect_open_fails(NULL, 32, crypt, 4);           /* encryption */
	expect_open_fails(NULL, 36, be32_big, 4);        /* L1 size */
	expect_open_fails(NULL, 40, be64_huge, 8);       /* L1 offset */
	expect_open_fails(NULL, 48, be64_huge, 8);       /* refcount table offset */
	expect_open_fails(NULL, 56, be32_big, 4);        /* refcount table clusters */
	expect_open_fails(NULL, 72, incompat, 8);        /* unknown incompatible feature */
	expect_open_fails(NULL, 100, hlen, 4);           /* header length */
	{
		char q[256];
		uint8_t off[8] = { 0, 0, 0, 0, 0, 0, 0xff, 0xf0 };

		make_image(q, sizeof(q), "bf.qcow2");
		corrupt(q, 8, off, 8); /* backing file offset beyond the first cluster */
		assert_null(pimg_open(q, NULL, PIMG_O_RDONLY));
	}
	{
		char q[256];

		make_image(q, sizeof(q), "trunc.qcow2");
		assert_int_equal(truncate(q, 50), 0);
		assert_null(pimg_open(q, NULL, PIMG_O_RDONLY));
		assert_int_equal(truncate(q, 0), 0);
		assert_null(pimg_open(q, "qcow2", PIMG_O_RDONLY));
	}
}

static void test_hostile_l2_entries(void **state)
{
	char q[256];
	uint8_t h[104], e[8], buf[4096];
	struct pimg *img;
	uint64_t l1, l2;
	int fd;

	(void)state;
	make_image(q, sizeof(q), "l2.qcow2");
	fd = open(q, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread_full(fd, h, sizeof(h), 0), 0);
	l1 = ld_be64(h + 40);
	assert_int_equal(pread_full(fd, e, 8, (off_t)l1), 0);
	l2 = ld_be64(e) & 0x00fffffffffffe00ULL;
	/* data cluster beyond the end of the file */
	st_be64(e, (1ULL << 63) | (1ULL << 40));
	assert_int_equal(pwrite_full(fd, e, 8, (off_t)l2), 0);
	close(fd);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 0), -EIO);
	pimg_close(img);
	/* data cluster overlapping the header */
	fd = open(q, O_RDWR);
	st_be64(e, (1ULL << 63) | 0);
	e[7] = 0;
	st_be64(e, (1ULL << 63) | 512);
	assert_int_equal(pwrite_full(fd, e, 8, (off_t)l2), 0);
	close(fd);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 0), -EIO);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_true(res.corruptions > 0);
	}
	pimg_close(img);
	/* L1 entry pointing into the header */
	fd = open(q, O_RDWR);
	st_be64(e, 0);
	assert_int_equal(pwrite_full(fd, e, 8, (off_t)l1), 0);
	st_be64(e, 1ULL << 63 | 0x200);
	assert_int_equal(pwrite_full(fd, e, 8, (off_t)l1), 0);
	close(fd);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 0), -EIO);
	pimg_close(img);
}

static void test_mutations(void **state)
{
	char q[256];

	(void)state;
	make_image(q, sizeof(q), "mut.qcow2");
	mutate_and_open(q, NULL, 4 * 65536, 300);
}

/* Fail the n-th write and everything after: the image must check with leaks at most. */
static void test_crash_consistency(void **state)
{
	char q[256];
	uint8_t *old = malloc(2 * MiB), *new = malloc(2 * MiB), *buf = malloc(2 * MiB);

	(void)state;
	assert_non_null(old);
	assert_non_null(new);
	assert_non_null(buf);
	fill_pattern(old, 2 * MiB, 1);
	fill_pattern(new, 2 * MiB, 2);
	for (long budget = 0; budget < 60; budget += 3) {
		struct pimg *img;
		struct pimg_check res;

		tmp_path(q, sizeof(q), "crash.qcow2");
		assert_int_equal(pimg_create(q, "qcow2", 4 * MiB, "cluster_size=4096"), 0);
		img = pimg_open(q, "qcow2", 0);
		assert_non_null(img);
		assert_int_equal(pimg_pwrite(img, old, 1 * MiB, 0), 0);
		pimg_close(img);

		pimg_set_file_ops_for_testing(&fault_ops);
		fault_write_budget = budget;
		img = pimg_open(q, "qcow2", 0);
		pimg_set_file_ops_for_testing(NULL);
		assert_non_null(img);
		/* overwrite in place, allocate new clusters, then flush (which may fail) */
		pimg_pwrite(img, new, 1 * MiB, 512 * KiB);
		pimg_pwrite(img, new, 512 * KiB, 3 * MiB);
		pimg_flush(img);
		pimg_close(img);
		fault_write_budget = -1;

		img = pimg_open(q, "qcow2", PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		/* every 4 KiB cluster reads old or new data */
		assert_int_equal(pimg_pread(img, buf, 2 * MiB, 0), 0);
		for (uint64_t c = 0; c < 2 * MiB; c += 4096) {
			const uint8_t *o = c < 1 * MiB ? old + c : NULL, *n = c >= 512 * KiB ? new + c - 512 * KiB : NULL;
			static const uint8_t zero[4096];

			assert_true((o && !memcmp(buf + c, o, 4096)) || (n && !memcmp(buf + c, n, 4096)) ||
				    (!o && !memcmp(buf + c, zero, 4096)));
		}
		pimg_close(img);
		if (res.leaks) {
			img = pimg_open(q, "qcow2", 0);
			assert_non_null(img);
			assert_int_equal(pimg_check(img, &res, PIMG_REPAIR_LEAKS), 0);
			pimg_close(img);
			img = pimg_open(q, "qcow2", PIMG_O_RDONLY);
			assert_int_equal(pimg_check(img, &res, 0), 0);
			assert_int_equal(res.leaks + res.corruptions, 0);
			pimg_close(img);
		}
	}
	free(old);
	free(new);
	free(buf);
}

/*
 * Reuse under crashes: discard, flush, then write elsewhere (into the freed clusters),
 * failing the n-th write. The discarded range must read its old data or zeros, never
 * the new data of the clusters that replaced it; check finds leaks at most.
 */
static void test_crash_reuse(void **state)
{
	char q[256];
	uint8_t *a = malloc(1 * MiB), *b = malloc(512 * KiB), *buf = malloc(3 * MiB);
	static const uint8_t zero[4096];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(buf);
	fill_pattern(a, 1 * MiB, 21);
	fill_pattern(b, 512 * KiB, 22);
	/* the last round fails nothing: the new data must have gone into the freed clusters */
	for (long budget = 0; budget <= 84; budget += 4) {
		struct pimg *img;
		struct pimg_check res;
		struct stat st0, st1;

		tmp_path(q, sizeof(q), "crash-reuse.qcow2");
		assert_int_equal(pimg_create(q, "qcow2", 4 * MiB, "cluster_size=4096"), 0);
		img = pimg_open(q, "qcow2", 0);
		assert_non_null(img);
		assert_int_equal(pimg_pwrite(img, a, 1 * MiB, 0), 0);
		pimg_close(img);
		assert_int_equal(stat(q, &st0), 0);

		pimg_set_file_ops_for_testing(&fault_ops);
		fault_write_budget = budget == 84 ? -1 : budget;
		img = pimg_open(q, "qcow2", 0);
		pimg_set_file_ops_for_testing(NULL);
		assert_non_null(img);
		pimg_discard(img, 0, 512 * KiB);
		pimg_flush(img);
		pimg_pwrite(img, b, 512 * KiB, 2 * MiB);
		pimg_flush(img);
		pimg_close(img);
		fault_write_budget = -1;
		assert_int_equal(stat(q, &st1), 0);
		if (budget == 84) /* one new L2 table at most */
			assert_true(st1.st_size <= st0.st_size + 4096);

		img = pimg_open(q, "qcow2", PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		assert_int_equal(pimg_pread(img, buf, 3 * MiB, 0), 0);
		for (uint64_t c = 0; c < 512 * KiB; c += 4096)
			assert_true(!memcmp(buf + c, a + c, 4096) || !memcmp(buf + c, zero, 4096));
		assert_memory_equal(buf + 512 * KiB, a + 512 * KiB, 512 * KiB);
		for (uint64_t c = 0; c < 512 * KiB; c += 4096)
			assert_true(!memcmp(buf + 2 * MiB + c, b + c, 4096) || !memcmp(buf + 2 * MiB + c, zero, 4096));
		pimg_close(img);
	}
	free(a);
	free(b);
	free(buf);
}

/* Discard and zero the tail of the last cluster only: the rest of it keeps its data
 * (it was zeroed whole when the range ended at the virtual size). Subclusters too. */
static void test_partial_tail_discard(void **state)
{
	static const char *const opts[] = { NULL, "extended_l2=on" };
	uint64_t size = 1 * MiB;
	uint8_t *data = malloc(size);
	char p[256];

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		struct pimg *img;

		tmp_path(p, sizeof(p), "tail.qcow2");
		assert_int_equal(pimg_create(p, "qcow2", size, opts[i]), 0);
		img = pimg_open(p, "qcow2", 0);
		assert_non_null(img);
		fill_pattern(data, size, 31 + i);
		assert_int_equal(pimg_pwrite(img, data, size, 0), 0);
		assert_int_equal(pimg_discard(img, size - 4096, 4096), 0);
		assert_int_equal(pimg_write_zeroes(img, size - 65536 - 8192, 4096), 0);
		memset(data + size - 65536 - 8192, 0, 4096);
		if (i) /* with subclusters a discard of whole subclusters takes effect */
			memset(data + size - 4096, 0, 4096);
		/* a discard inside one 2 KiB subcluster is left alone */
		assert_int_equal(pimg_discard(img, 100 * 1024 + 512, 1024), 0);
		close_and_verify(img, p, data, size);
	}
	free(data);
}

static void test_resize_and_discard(void **state)
{
	char q[256];
	uint8_t buf[65536], out[65536];
	struct pimg *img;

	(void)state;
	tmp_path(q, sizeof(q), "resize.qcow2");
	assert_int_equal(pimg_create(q, "qcow2", 1 * MiB, "cluster_size=512"), 0);
	img = pimg_open(q, "qcow2", 0);
	assert_non_null(img);
	fill_pattern(buf, sizeof(buf), 3);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 0), 0);
	assert_int_equal(pimg_resize(img, 512 * MiB), 0);
	assert_int_equal(pimg_size(img), 512 * MiB);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 500 * MiB), 0);
	assert_int_equal(pimg_discard(img, 0, 32768), 0);
	assert_int_equal(pimg_pread(img, out, 32768, 0), 0);
	memset(buf, 0, 32768);
	assert_memory_equal(out, buf, 32768);
	assert_int_equal(pimg_resize(img, 1 * MiB), -ENOTSUP);
	pimg_close(img);
	img = pimg_open(q, NULL, PIMG_O_RDONLY);
	assert_int_equal(pimg_size(img), 512 * MiB);
	{
		struct pimg_check res;

		assert_int_equal(pimg_check(img, &res, 0), 0);
		assert_int_equal(res.corruptions, 0);
		assert_int_equal(res.leaks, 0);
	}
	pimg_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workout_default),
		cmocka_unit_test(test_workout_small_clusters),
		cmocka_unit_test(test_workout_big_clusters),
		cmocka_unit_test(test_workout_extl2),
		cmocka_unit_test(test_extl2_backing),
		cmocka_unit_test(test_discard_reuse_bounded),
		cmocka_unit_test(test_compressed_zlib),
		cmocka_unit_test(test_compressed_zstd),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_hostile_l2_entries),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_crash_consistency),
		cmocka_unit_test(test_crash_reuse),
		cmocka_unit_test(test_resize_and_discard),
		cmocka_unit_test(test_partial_tail_discard),
		cmocka_unit_test(test_compress_two_steps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
