// SPDX-License-Identifier: MIT
/* The generic layer: raw, probing rules, backing chains, option parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"
#include "log.h"

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
	assert_null(open_ext(a, NULL, PIMG_O_RDONLY));
	assert_null(open_ext(b, NULL, PIMG_O_RDONLY));
	/* without following backing files both open */
	{
		struct pimg *img = open_ext(a, NULL, PIMG_O_RDONLY | PIMG_O_NO_BACKING);

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
	assert_null(open_ext(p, NULL, PIMG_O_RDONLY));
	tmp_path(p, sizeof(p), "chain-10.qcow2");
	{
		struct pimg *img = open_ext(p, NULL, PIMG_O_RDONLY);

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
	img = open_ext(top, "qcow2", 0);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), 4 * MiB);
	fill_pattern(buf, sizeof(buf), 5);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 4096 + 100), 0); /* partial clusters: COW */
	memcpy(expect + 4096 + 100, buf, sizeof(buf));
	assert_int_equal(pimg_write_zeroes(img, 65536, 8192), 0);
	memset(expect + 65536, 0, 8192);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	img = open_ext(top, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	/* commit: the base now holds the overlay's content */
	img = open_ext(top, NULL, PIMG_O_RDONLY);
	assert_int_equal(pimg_commit(img), 0);
	pimg_close(img);
	img = pimg_open(base, "raw", PIMG_O_RDONLY);
	assert_content(img, expect, 4 * MiB);
	pimg_close(img);
	free(expect);
}


/* A new image NAME.FMT of size in the test directory (its path in p), opened through ops. */
static struct pimg *create_with_ops(char *p, size_t plen, const char *name, const char *fmt,
				    uint64_t size, const struct pimg_file_ops *ops)
{
	char file[64];
	struct pimg *img;

	snprintf(file, sizeof(file), "%s.%s", name, fmt);
	tmp_path(p, plen, file);
	assert_int_equal(pimg_create(p, fmt, size, NULL), 0);
	pimg_set_file_ops_for_testing(ops);
	img = pimg_open(p, fmt, 0);
	pimg_set_file_ops_for_testing(NULL);
	assert_non_null(img);
	return img;
}

/*
 * A failed fdatasync may have lost data, and the kernel tells only the first
 * caller: once a flush failed, every later flush of the image fails with EIO, even
 * when the file's next fdatasync would succeed.
 */
static void test_flush_failure_sticks(void **state)
{
	static const char *const fmts[] = { "raw", "qcow2" };
	uint8_t buf[4096];

	(void)state;
	memset(buf, 0x5a, sizeof(buf));
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		char p[256];
		struct pimg *img = create_with_ops(p, sizeof(p), "sticky", fmts[i], 1 * MiB, &fault_ops);

		assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 0), 0);
		assert_int_equal(pimg_flush(img), 0);
		assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 8192), 0);
		fault_sync_failures = 1;
		assert_int_not_equal(pimg_flush(img), 0);
		assert_int_equal(fault_sync_failures, 0); /* the next sync would succeed... */
		assert_int_equal(pimg_flush(img), -EIO);  /* ...but the flush still fails */
		assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 16384), 0);
		assert_int_equal(pimg_flush(img), -EIO);
		pimg_close(img);
		/* A new open starts clean. */
		img = pimg_open(p, fmts[i], 0);
		assert_non_null(img);
		assert_int_equal(pimg_flush(img), 0);
		pimg_close(img);
	}
}

/*
 * Transfers merged into one vectored call and split with the helper thread
 * (pimg_set_io_helper): content as written; a large write to a regular file goes out in
 * 1 MiB calls on the caller's thread (its inode lock would run halves one after the
 * other); a failure in the helper's
 * half of a large read, or in a large or merged write, is the caller's error.
 */
static void test_batched_and_helper_transfers(void **state)
{
	static const char *const fmts[] = { "raw", "qcow2", "vhdx" };
	uint64_t len = 6 * MiB + 4096;
	uint8_t *w = malloc(len), *r = malloc(len);

	(void)state;
	assert_non_null(w);
	assert_non_null(r);
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		char p[256];
		struct pimg *img = create_with_ops(p, sizeof(p), "helper", fmts[i], 32 * MiB, &fault_vec_ops);
		uint64_t end;

		assert_int_equal(pimg_set_io_helper(img), 0);
		fill_pattern(w, len, i + 1);
		fault_vec_writes = 0;
		assert_int_equal(pimg_pwrite(img, w, len, 512), 0);
		/* 6 MiB + 4 KiB to a regular file: seven calls of at most 1 MiB, none on the helper. */
		if (!strcmp(fmts[i], "raw"))
			assert_int_equal(fault_vec_writes, 7);
		memset(r, 0, len);
		assert_int_equal(pimg_pread(img, r, len, 512), 0);
		assert_memory_equal(r, w, len);
		/* A fault in the last quarter of a read: in the helper's half. */
		if (!strcmp(fmts[i], "raw")) {
			fault_read_lo = 512 + len / 4 * 3;
			fault_read_hi = fault_read_lo + 4096;
			assert_int_equal(pimg_pread(img, r, len, 512), -EIO);
			fault_read_lo = fault_read_hi = 0;
		}
		/* A fault in the last quarter of the next write. */
		end = strcmp(fmts[i], "raw") ? img->file->size : 16 * MiB;
		fault_lo = end + len / 4 * 3;
		fault_hi = fault_lo + 4096;
		assert_int_equal(pimg_pwrite(img, w, len, 16 * MiB), -EIO);
		fault_lo = fault_hi = 0;
		/* What was written before stays readable. */
		assert_int_equal(pimg_pread(img, r, len, 512), 0);
		assert_memory_equal(r, w, len);
		pimg_close(img);
	}
	free(w);
	free(r);
}

/*
 * A vectored request is the same as its buffers written or read one after the other:
 * buffers of any length (odd, empty, more than one preadv's worth), at an unaligned
 * offset, read back in another cut; raw sends 130 buffers in three pwritev calls; a
 * range past the end, an overflowing sum or a read-only image is refused.
 */
static void test_vectored_requests(void **state)
{
	static const char *const fmts[] = { "raw", "qcow2", "vpc", "vhdx", "vmdk", "vdi" };
	enum { NBUF = 130 };
	uint64_t off = 70000 + 3;
	struct iovec wv[NBUF], rv[NBUF / 2];
	size_t total = 0, lens[NBUF];
	uint8_t *w, *r, *flat;

	(void)state;
	for (int i = 0; i < NBUF; i++) {
		lens[i] = i % 17 == 5 ? 0 : (size_t)(i * 7919 % 9000) + 1;
		total += lens[i];
	}
	w = malloc(total);
	r = malloc(total);
	flat = malloc(total);
	assert_true(w && r && flat);
	for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
		char p[256];
		struct pimg *img = create_with_ops(p, sizeof(p), "vec", fmts[i], 8 * MiB, &fault_vec_ops);
		size_t at = 0;

		fill_pattern(w, total, i + 7);
		for (int k = 0; k < NBUF; at += lens[k], k++)
			wv[k] = (struct iovec){ w + at, lens[k] };
		fault_vec_writes = 0;
		assert_int_equal(pimg_pwritev(img, wv, NBUF, off), 0);
		if (!strcmp(fmts[i], "raw"))
			assert_int_equal(fault_vec_writes, 3); /* 64 + 64 + 2 buffers */
		/* Read back in halves of another cut, and flat. */
		for (int k = 0, a = 0; k < NBUF / 2; k++) {
			size_t n = k == NBUF / 2 - 1 ? total - (size_t)a : total / (NBUF / 2);

			rv[k] = (struct iovec){ r + a, n };
			a += (int)n;
		}
		memset(r, 0, total);
		assert_int_equal(pimg_preadv(img, rv, NBUF / 2, off), 0);
		assert_memory_equal(r, w, total);
		assert_int_equal(pimg_pread(img, flat, total, off), 0);
		assert_memory_equal(flat, w, total);
		/* Bytes just before and after are untouched zeros. */
		assert_int_equal(pimg_pread(img, flat, 3, off - 3), 0);
		assert_int_equal(flat[0] | flat[1] | flat[2], 0);
		assert_int_equal(pimg_pread(img, flat, 3, off + total), 0);
		assert_int_equal(flat[0] | flat[1] | flat[2], 0);
		/* Refused: past the end, a sum that overflows, a negative count. */
		assert_int_equal(pimg_pwritev(img, wv, NBUF, 8 * MiB - 100), -EINVAL);
		assert_int_equal(pimg_preadv(img, rv, NBUF / 2, 8 * MiB - 100), -EINVAL);
		assert_int_equal(pimg_pwritev(img, (struct iovec[]){ { w, SIZE_MAX }, { w, 2 } }, 2, 0), -EINVAL);
		assert_int_equal(pimg_preadv(img, rv, -1, 0), -EINVAL);
		assert_int_equal(pimg_pwritev(img, wv, 0, 0), 0);
		pimg_close(img);
		/* Read-only: refused, and reads still work. */
		img = pimg_open(p, fmts[i], PIMG_O_RDONLY);
		assert_non_null(img);
		assert_int_equal(pimg_pwritev(img, wv, NBUF, off), -EROFS);
		memset(r, 0, total);
		assert_int_equal(pimg_preadv(img, rv, NBUF / 2, off), 0);
		assert_memory_equal(r, w, total);
		pimg_close(img);
	}
	free(w);
	free(r);
	free(flat);
}

/* Create path (in the test directory) as a qcow2 overlay of backing (format bfmt, may be NULL). */
static void overlay(char *path, size_t len, const char *name, const char *backing, const char *bfmt)
{
	char opts[512];

	tmp_path(path, len, name);
	snprintf(opts, sizeof(opts), "backing_file=%s%s%s", backing, bfmt ? ",backing_fmt=" : "",
		 bfmt ? bfmt : "");
	/* pimg_create checks the backing file; write the header by hand where it can't exist */
	assert_int_equal(pimg_create(path, "qcow2", 1 * MiB, opts), 0);
}

/*
 * External files are opt-in: by default the library opens nothing an image names;
 * allowed, only inside the image's directory or a named one, through real
 * directories, a regular file with a header unless its format is recorded, and the
 * parent the child was made from.
 */
static void test_external_files_policy(void **state)
{
	char base[256], top[256], sub[256], other[256], p[256], link[256];
	const char *dirs[2] = { NULL, NULL };
	struct pimg_open_policy pol = { .allow_external = true, .dirs = dirs };
	uint8_t *data = malloc(1 * MiB), buf[4096];
	struct pimg *img;

	(void)state;
	assert_non_null(data);
	fill_pattern(data, 1 * MiB, 91);
	tmp_path(base, sizeof(base), "ext-base.raw");
	write_file(base, data, 1 * MiB);
	overlay(top, sizeof(top), "ext-top.qcow2", "ext-base.raw", "raw");

	/* default: refused, with or without a policy that says no */
	assert_null(pimg_open(top, NULL, PIMG_O_RDONLY));
	assert_null(pimg_open_with(top, NULL, PIMG_O_RDONLY, &(struct pimg_open_policy){ 0 }));
	img = pimg_open(top, NULL, PIMG_O_RDONLY | PIMG_O_NO_BACKING);
	assert_non_null(img);
	pimg_close(img);
	/* allowed: the image's own directory */
	img = pimg_open_with(top, NULL, PIMG_O_RDONLY, &pol);
	assert_non_null(img);
	assert_content(img, data, 1 * MiB);
	pimg_close(img);

	/* a report open keeps the refusal and fails reads that need the backing file */
	img = pimg_open(top, NULL, PIMG_O_RDONLY | PIMG_O_BACKING_REPORT);
	assert_non_null(img);
	assert_null(pimg_backing(img));
	assert_non_null(pimg_backing_refusal(img));
	assert_non_null(strstr(pimg_backing_refusal(img), "ext-base.raw"));
	assert_int_equal(pimg_pread(img, buf, sizeof(buf), 0), -ENOENT);
	pimg_close(img);
	assert_null(pimg_open(top, NULL, PIMG_O_BACKING_REPORT)); /* read-only only */

	/* a symbolic link is refused even when it points inside the directory */
	tmp_path(link, sizeof(link), "ext-link.raw");
	assert_int_equal(symlink("ext-base.raw", link), 0);
	overlay(p, sizeof(p), "ext-viasymlink.qcow2", "ext-link.raw", "raw");
	assert_null(pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol));

	/* outside the directory: absolute, .., a sibling directory unless named */
	tmp_path(sub, sizeof(sub), "ext-a");
	tmp_path(other, sizeof(other), "ext-b");
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mkdir(other, 0700), 0);
	tmp_path(p, sizeof(p), "ext-b/base.raw");
	write_file(p, data, 1 * MiB);
	overlay(p, sizeof(p), "ext-a/top.qcow2", "../ext-b/base.raw", "raw");
	assert_null(pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol));
	dirs[0] = other;
	img = pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol);
	assert_non_null(img);
	assert_content(img, data, 1 * MiB);
	pimg_close(img);
	dirs[0] = NULL;
	overlay(p, sizeof(p), "ext-abs.qcow2", "/etc/hostname", "raw");
	assert_null(pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol));
	/* an absolute name inside the directory is fine */
	overlay(p, sizeof(p), "ext-absin.qcow2", base, "raw");
	img = pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol);
	assert_non_null(img);
	pimg_close(img);

	/* no recorded format and no header: never guessed as raw */
	overlay(p, sizeof(p), "ext-guess.qcow2", "ext-base.raw", NULL); /* create records "raw" */
	{
		/* drop the backing-format header extension: retag it as an unknown one */
		uint8_t ext[4] = { 0xe2, 0x79, 0x2a, 0xca }, hdr[4096], unknown[4] = { 0x7e, 0x57, 0, 0 };
		int fd = open(p, O_RDWR);
		size_t at;

		assert_true(fd >= 0);
		assert_int_equal(pread_full(fd, hdr, sizeof(hdr), 0), 0);
		for (at = 72; at + 4 <= sizeof(hdr) && memcmp(hdr + at, ext, 4); at += 4)
			;
		assert_true(at + 4 <= sizeof(hdr));
		assert_int_equal(pwrite_full(fd, unknown, 4, (off_t)at), 0);
		close(fd);
	}
	assert_null(pimg_open_with(p, NULL, PIMG_O_RDONLY, &pol));

	/* parent identity: a VHD replaced by another of the same name is refused */
	tmp_path(p, sizeof(p), "ext-parent.vhd");
	assert_int_equal(pimg_create(p, "vpc", 1 * MiB, NULL), 0);
	tmp_path(top, sizeof(top), "ext-child.vhd");
	assert_int_equal(pimg_create(top, "vpc", 0, "backing_file=ext-parent.vhd"), 0);
	img = pimg_open_with(top, NULL, PIMG_O_RDONLY, &pol);
	assert_non_null(img);
	pimg_close(img);
	assert_int_equal(pimg_create(p, "vpc", 1 * MiB, NULL), 0);
	assert_null(pimg_open_with(top, NULL, PIMG_O_RDONLY, &pol));
	img = pimg_open_with(top, NULL, PIMG_O_RDONLY | PIMG_O_BACKING_REPORT, &pol);
	assert_non_null(img);
	assert_non_null(strstr(pimg_backing_refusal(img), "not the parent"));
	pimg_close(img);
	free(data);
}

/* Directories open in this process (O_PATH or not). */
static int open_dirs(void)
{
	char link[64];
	struct stat st;
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if (!stat(link, &st) && S_ISDIR(st.st_mode))
			n++;
	}
	return n;
}

/* pimg_drop_dirs: no directory stays open (the VMM's --jail refuses one), reads go on. */
static void test_drop_dirs(void **state)
{
	char base[256], top[256];
	uint8_t *expect = malloc(1 * MiB);
	struct pimg *img;
	int before = open_dirs();

	(void)state;
	assert_non_null(expect);
	tmp_path(base, sizeof(base), "drop-base.raw");
	tmp_path(top, sizeof(top), "drop-top.qcow2");
	fill_pattern(expect, 1 * MiB, 91);
	write_file(base, expect, 1 * MiB);
	assert_int_equal(pimg_create(top, "qcow2", 0, "backing_file=drop-base.raw,backing_fmt=raw"), 0);
	img = open_ext(top, "qcow2", 0);
	assert_non_null(img);
	assert_true(open_dirs() > before); /* the policy's directory, kept for a commit */
	pimg_drop_dirs(img);
	assert_int_equal(open_dirs(), before);
	assert_content(img, expect, 1 * MiB);
	assert_int_not_equal(pimg_commit(img), 0); /* a commit needs the directory */
	pimg_close(img);
	free(expect);
}

/*
 * pimg_open_fd: an image opened from a file descriptor, whatever its path became; the
 * lock lives on the descriptor's open file description; a bad descriptor or image is
 * refused and the descriptor closed.
 */
static void test_open_fd(void **state)
{
	char path[256], moved[300];
	uint8_t buf[4096], back[4096];
	struct pimg *img;
	int fd, keep;

	(void)state;
	tmp_path(path, sizeof(path), "fd.qcow2");
	snprintf(moved, sizeof(moved), "%s.moved", path);
	assert_int_equal(pimg_create(path, "qcow2", 1 * MiB, NULL), 0);
	keep = open(path, O_RDWR | O_CLOEXEC);
	assert_true(keep >= 0);
	assert_int_equal(rename(path, moved), 0);
	img = pimg_open_fd(dup(keep), path, NULL, 0, NULL); /* probed: qcow2 */
	assert_non_null(img);
	assert_string_equal(pimg_format(img), "qcow2");
	fill_pattern(buf, sizeof(buf), 17);
	assert_int_equal(pimg_pwrite(img, buf, sizeof(buf), 65536), 0);
	assert_null(pimg_open(moved, NULL, 0)); /* locked */
	pimg_close(img);
	assert_null(pimg_open(moved, NULL, 0)); /* still: keep shares the locked description */
	assert_int_equal(flock(keep, LOCK_UN), 0);
	img = pimg_open(moved, NULL, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_pread(img, back, sizeof(back), 65536), 0);
	assert_memory_equal(back, buf, sizeof(back));
	pimg_close(img);
	/* Refusals: no descriptor; a descriptor of something that is not an image file. */
	assert_null(pimg_open_fd(-1, "nothing", NULL, 0, NULL));
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_null(pimg_open_fd(fd, "/dev/null", "raw", PIMG_O_RDONLY, NULL));
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed on failure */
	close(keep);
	unlink(moved);
}

/* A caller (plinthd's image tasks) gets the library's error sentence, not stderr. */
static void test_error_sentence_captured(void **state)
{
	struct log_capture c;

	(void)state;
	log_capture_begin(&c);
	assert_null(pimg_open("/nonexistent/plinth/disk.qcow2", NULL, PIMG_O_RDONLY));
	log_capture_end(&c);
	assert_string_equal(c.first_error, "/nonexistent/plinth/disk.qcow2: No such file or directory");
	assert_int_equal(c.errors, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_workout),
		cmocka_unit_test(test_open_fd),
		cmocka_unit_test(test_error_sentence_captured),
		cmocka_unit_test(test_writable_raw_never_probed),
		cmocka_unit_test(test_unaligned_raw_size),
		cmocka_unit_test(test_foreign_magic_not_raw),
		cmocka_unit_test(test_backing_loop_refused),
		cmocka_unit_test(test_backing_depth_limited),
		cmocka_unit_test(test_create_options_checked),
		cmocka_unit_test(test_backing_reads_and_cow),
		cmocka_unit_test(test_flush_failure_sticks),
		cmocka_unit_test(test_batched_and_helper_transfers),
		cmocka_unit_test(test_vectored_requests),
		cmocka_unit_test(test_external_files_policy),
		cmocka_unit_test(test_drop_dirs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
