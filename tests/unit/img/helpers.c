// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"

static char tmp_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_tmp_dir(void)
{
	nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tmp_path(char *buf, size_t len, const char *name)
{
	char *dir = tmp_dir;

	if (!dir[0]) {
		snprintf(dir, sizeof(tmp_dir), "/tmp/plinth-img-unit.XXXXXX");
		assert_non_null(mkdtemp(dir));
		atexit(rm_tmp_dir);
	}
	snprintf(buf, len, "%s/%s", dir, name);
}

struct pimg *open_ext(const char *path, const char *fmt, unsigned flags)
{
	static const struct pimg_open_policy allow = { .allow_external = true };

	return pimg_open_with(path, fmt, flags, &allow);
}

void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

void assert_content(struct pimg *img, const uint8_t *expected, uint64_t size)
{
	uint8_t *buf = malloc(1 * MiB);

	assert_non_null(buf);
	assert_int_equal(pimg_size(img) >= size, 1);
	for (uint64_t off = 0; off < size; off += 1 * MiB) {
		uint64_t n = MIN(1 * MiB, size - off);

		assert_int_equal(pimg_pread(img, buf, n, off), 0);
		if (memcmp(buf, expected + off, n)) {
			for (uint64_t i = 0; i < n; i++)
				if (buf[i] != expected[off + i])
					fail_msg("content differs at offset %llu", (unsigned long long)(off + i));
		}
	}
	free(buf);
}

static void do_write(struct pimg *img, uint8_t *shadow, uint64_t off, uint64_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	fill_pattern(buf, len, seed);
	assert_int_equal(pimg_pwrite(img, buf, len, off), 0);
	memcpy(shadow + off, buf, len);
	free(buf);
}

void workout(const char *fmt, const char *opts, uint64_t size)
{
	char path[256];
	uint8_t *shadow = calloc(1, size);
	struct pimg *img;
	uint32_t g;
	uint8_t *buf;

	assert_non_null(shadow);
	tmp_path(path, sizeof(path), "workout.img");
	assert_int_equal(pimg_create(path, fmt, size, opts), 0);
	img = open_ext(path, fmt, 0);
	assert_non_null(img);
	size = MIN(size, pimg_size(img));
	g = pimg_granule(img);
	assert_true(4ULL * g <= size); /* the offsets below need room */
	/* aligned, whole granule, unaligned, crossing a granule boundary, last byte */
	do_write(img, shadow, 0, 4096, 1);
	do_write(img, shadow, g, g, 2);
	do_write(img, shadow, 3 * g - 700, 1400, 3);
	do_write(img, shadow, 12345, 1, 4);
	do_write(img, shadow, size - 1, 1, 5);
	do_write(img, shadow, size / 2 + 100, 70000, 6);
	assert_content(img, shadow, size);
	/* overwrite in place, zero a range, discard a granule */
	do_write(img, shadow, 1000, 3000, 7);
	assert_int_equal(pimg_write_zeroes(img, g + 512, 1024), 0);
	memset(shadow + g + 512, 0, 1024);
	assert_int_equal(pimg_write_zeroes(img, size / 2, MIN(2 * (uint64_t)g, size / 2)), 0);
	memset(shadow + size / 2, 0, MIN(2 * (uint64_t)g, size / 2));
	assert_content(img, shadow, size);
	buf = calloc(1, 4096);
	assert_non_null(buf);
	assert_int_equal(pimg_pwrite(img, buf, 4096, 8192), 0); /* zeros written as data */
	memset(shadow + 8192, 0, 4096);
	free(buf);
	/* out of range and read-only errors */
	assert_int_equal(pimg_pwrite(img, shadow, 512, pimg_size(img)), -EINVAL);
	assert_int_equal(pimg_flush(img), 0);
	assert_content(img, shadow, size);
	pimg_close(img);

	img = open_ext(path, fmt, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, shadow, size);
	assert_int_equal(pimg_pwrite(img, shadow, 512, 0), -EROFS);
	{
		struct pimg_check res;
		int ret = pimg_check(img, &res, 0);

		assert_true(ret == 0 || ret == -ENOTSUP);
		if (!ret) {
			assert_int_equal(res.corruptions, 0);
			assert_int_equal(res.leaks, 0);
		}
	}
	pimg_close(img);
	free(shadow);
}

void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(pwrite_full(fd, buf, len, 0), 0);
	close(fd);
}

void corrupt(const char *path, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite_full(fd, bytes, len, (off_t)off), 0);
	close(fd);
}

static void copy_file(const char *from, const char *to, uint8_t **data, size_t *len)
{
	int fd = open(from, O_RDONLY);
	off_t n;

	assert_true(fd >= 0);
	n = lseek(fd, 0, SEEK_END);
	*len = (size_t)n;
	*data = malloc(*len + 1);
	assert_non_null(*data);
	assert_int_equal(pread_full(fd, *data, *len, 0), 0);
	close(fd);
	write_file(to, *data, *len);
}

void mutate_and_open(const char *path, const char *fmt, uint64_t span, int n_iter)
{
	char mpath[256];
	uint8_t *orig, *data, *buf = malloc(1 * MiB);
	size_t len;
	uint64_t x = 12345;

	assert_non_null(buf);
	tmp_path(mpath, sizeof(mpath), "mutant.img");
	copy_file(path, mpath, &orig, &len);
	data = malloc(len);
	assert_non_null(data);
	span = MIN(span, len);
	for (int it = 0; it < n_iter; it++) {
		struct pimg *img;

		memcpy(data, orig, len);
		for (int k = 0; k < 1 + it % 4; k++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			data[(x >> 20) % span] ^= (uint8_t)(1u << ((x >> 8) % 8));
			if (it % 5 == 0) /* whole bytes set to extremes */
				data[(x >> 33) % span] = (x & 1) ? 0xff : 0x00;
		}
		write_file(mpath, data, it % 7 == 6 ? len / 2 : len); /* sometimes truncated */
		img = open_ext(mpath, fmt, PIMG_O_RDONLY);
		if (!img)
			continue;
		for (uint64_t off = 0; off < pimg_size(img) && off < 256 * MiB; off += 1 * MiB) {
			if (pimg_pread(img, buf, MIN(1 * MiB, pimg_size(img) - off), off))
				break;
		}
		{
			struct pimg_check res;
			struct pimg_info info;

			pimg_check(img, &res, 0);
			if (!pimg_get_info(img, &info))
				pimg_info_free(&info);
		}
		pimg_close(img);
	}
	free(orig);
	free(data);
	free(buf);
}

long fault_write_budget = -1;
uint64_t fault_lo, fault_hi;

static int fault_pwrite(struct pimg_file *f, const void *buf, size_t len, uint64_t off)
{
	if (fault_lo < fault_hi) {
		if (off < fault_hi && off + len > fault_lo)
			return -EIO;
	} else if (fault_write_budget >= 0) {
		if (fault_write_budget == 0)
			return -EIO;
		fault_write_budget--;
	}
	return pimg_posix_file_ops.pwrite(f, buf, len, off);
}

long fault_sync_failures;

static int fault_sync(struct pimg_file *f)
{
	if (fault_sync_failures > 0) {
		fault_sync_failures--;
		return -EIO;
	}
	return pimg_posix_file_ops.sync(f);
}

static int fault_pread(struct pimg_file *f, void *buf, size_t len, uint64_t off)
{
	return pimg_posix_file_ops.pread(f, buf, len, off);
}

static int fault_punch(struct pimg_file *f, uint64_t off, uint64_t len)
{
	return pimg_posix_file_ops.punch(f, off, len);
}

static int fault_truncate(struct pimg_file *f, uint64_t size)
{
	return pimg_posix_file_ops.truncate(f, size);
}

const struct pimg_file_ops fault_ops = {
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.sync = fault_sync,
	.punch = fault_punch,
	.truncate = fault_truncate,
};

uint64_t fault_read_lo, fault_read_hi;
unsigned long fault_vec_writes;

static uint64_t iov_total(const struct iovec *iov, int n)
{
	uint64_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

static int fault_pwritev(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off)
{
	uint64_t len = iov_total(iov, n);

	fault_vec_writes++;
	if (fault_lo < fault_hi && off < fault_hi && off + len > fault_lo)
		return -EIO;
	return pimg_posix_file_ops.pwritev(f, iov, n, off);
}

static int fault_preadv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off)
{
	uint64_t len = iov_total(iov, n);

	if (fault_read_lo < fault_read_hi && off < fault_read_hi && off + len > fault_read_lo)
		return -EIO;
	return pimg_posix_file_ops.preadv(f, iov, n, off);
}

const struct pimg_file_ops fault_vec_ops = {
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.sync = fault_sync,
	.punch = fault_punch,
	.truncate = fault_truncate,
	.preadv = fault_preadv,
	.pwritev = fault_pwritev,
};
