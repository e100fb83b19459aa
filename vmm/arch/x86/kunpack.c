// SPDX-License-Identifier: MIT
#include "kunpack.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include "util.h"

/* LZ4's legacy frame (lz4 -l): this magic, then blocks of at most 8 MiB of output, each
 * a 4-byte little-endian compressed length and the block (lz4_Block_format.md). */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v; /* x86-64 hosts only: little-endian like the kernel's tables */
}

enum kpayload_kind kpayload_kind(const uint8_t *p, size_t len)
{
	if (len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8)
		return KPAYLOAD_GZIP;
	if (len >= 4 && le32(p) == LZ4_LEGACY_MAGIC)
		return KPAYLOAD_LZ4;
	if (len >= 4 && le32(p) == 0xfd2fb528u)
		return KPAYLOAD_ZSTD;
	return KPAYLOAD_OTHER;
}

const char *kpayload_name(enum kpayload_kind kind)
{
	switch (kind) {
	case KPAYLOAD_GZIP:
		return "gzip";
	case KPAYLOAD_LZ4:
		return "LZ4";
	case KPAYLOAD_ZSTD:
		return "zstd";
	default:
		return "other";
	}
}

/* A gzip member's first n bytes of output into out (whole: all of it, exactly n). */
static int gzip_inflate(const uint8_t *p, size_t len, uint8_t *out, size_t n, int whole)
{
	z_stream z = {0};
	int ret;

	if (len > UINT32_MAX || n > UINT32_MAX || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOEXEC;
	z.next_in = (Bytef *)p;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)n;
	ret = inflate(&z, whole ? Z_FINISH : Z_SYNC_FLUSH);
	inflateEnd(&z);
	if (z.total_out != n || (whole ? ret != Z_STREAM_END : ret != Z_OK && ret != Z_STREAM_END))
		return -ENOEXEC;
	return 0;
}

static int unpack_gzip(const uint8_t *p, size_t len, uint8_t *out, size_t out_len, const char **why)
{
	if (gzip_inflate(p, len, out, out_len, 1)) {
		*why = "gzip payload is corrupt or not the size its trailer says";
		return -ENOEXEC;
	}
	return 0;
}

/*
 * The next block of a legacy LZ4 payload p[0, len), reading from *pos (frames may follow
 * one another: a magic between blocks is skipped): 1 with the block's data at *data and
 * its compressed length in *csz, *pos then past it; 0 at the end; -1 if the payload is
 * corrupt there (a length that is zero, larger than any 8 MiB block compresses to, or
 * past the end).
 */
static int lz4_next_block(const uint8_t *p, size_t len, size_t *pos, size_t *data, uint32_t *csz)
{
	while (*pos < len) {
		uint32_t c;

		if (len - *pos < 4)
			return -1;
		c = le32(p + *pos);
		*pos += 4;
		if (c == LZ4_LEGACY_MAGIC)
			continue;
		if (!c || c > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK) || c > len - *pos)
			return -1;
		*data = *pos;
		*csz = c;
		*pos += c;
		return 1;
	}
	return 0;
}

/*
 * A legacy LZ4 payload on two threads. Its blocks are independent, and the kernel's
 * build (lz4 -l) fills every block but the last with exactly 8 MiB of output, so block
 * i's output starts at i * 8 MiB and the halves can be unpacked at once, each thread
 * faulting in its own pages (the emulated host's page faults cost as much as the
 * decompression). A payload that does not have that shape, or a thread that cannot be
 * made (a seccomp filter without clone answers EPERM), is left to the serial loop.
 */
#define LZ4_SPLIT_MAX_BLOCKS 128 /* 1 GiB of output; a kernel is tens of MiB */

struct lz4_share {
	const uint8_t *p;
	const size_t *at;     /* each block's data, as an offset in p */
	const uint32_t *csz;  /* and its compressed length */
	size_t first, end;    /* the blocks this share unpacks */
	uint8_t *out;
	size_t out_len;
	int ok;
};

static void *lz4_share_run(void *arg)
{
	struct lz4_share *s = arg;
	size_t i;

	s->ok = 1;
	for (i = s->first; i < s->end && s->ok; i++) {
		size_t off = i * LZ4_LEGACY_BLOCK, want = MIN(s->out_len - off, (size_t)LZ4_LEGACY_BLOCK);

		mem_populate(s->out + off, want, true);
		s->ok = LZ4_decompress_safe((const char *)s->p + s->at[i], (char *)s->out + off,
					    (int)s->csz[i], (int)want) == (int)want;
	}
	return NULL;
}

/* 0 if the payload was unpacked on two threads; -EAGAIN if the serial loop must do it. */
static int unpack_lz4_split(const uint8_t *p, size_t len, uint8_t *out, size_t out_len)
{
	size_t at[LZ4_SPLIT_MAX_BLOCKS], pos = 4, n = 0, d;
	uint32_t csz[LZ4_SPLIT_MAX_BLOCKS], c;
	struct lz4_share lo, hi;
	pthread_t t;
	int r;

	while ((r = lz4_next_block(p, len, &pos, &d, &c)) > 0) {
		if (n == LZ4_SPLIT_MAX_BLOCKS)
			return -EAGAIN;
		at[n] = d;
		csz[n++] = c;
	}
	if (r < 0)
		return -EAGAIN;
	/* Every block but the last full: n blocks hold more than n - 1 times 8 MiB. */
	if (n < 2 || out_len <= (n - 1) * (size_t)LZ4_LEGACY_BLOCK ||
	    out_len > n * (size_t)LZ4_LEGACY_BLOCK)
		return -EAGAIN;
	lo = (struct lz4_share){ p, at, csz, 0, n / 2, out, out_len, 0 };
	hi = lo;
	hi.first = n / 2;
	hi.end = n;
	if (pthread_create(&t, NULL, lz4_share_run, &hi))
		return -EAGAIN;
	lz4_share_run(&lo);
	pthread_join(t, NULL);
	return lo.ok && hi.ok ? 0 : -EAGAIN;
}

static int unpack_lz4(const uint8_t *p, size_t len, uint8_t *out, size_t out_len, const char **why)
{
	size_t at = 4, done = 0, data;
	uint32_t csz;
	int r;

	if (!unpack_lz4_split(p, len, out, out_len))
		return 0;
	mem_populate(out, out_len, true);
	while ((r = lz4_next_block(p, len, &at, &data, &csz)) > 0) {
		int n = LZ4_decompress_safe((const char *)p + data, (char *)out + done, (int)csz,
					    (int)MIN(out_len - done, (size_t)LZ4_LEGACY_BLOCK));

		if (n <= 0)
			goto corrupt;
		done += (size_t)n;
	}
	if (r < 0 || done != out_len)
		goto corrupt;
	return 0;
corrupt:
	*why = "LZ4 payload is corrupt or not the size its trailer says";
	return -ENOEXEC;
}

static int unpack_zstd(const uint8_t *p, size_t len, uint8_t *out, size_t out_len, const char **why)
{
	size_t n = ZSTD_decompress(out, out_len, p, len);

	if (ZSTD_isError(n) || n != out_len) {
		*why = "zstd payload is corrupt or not the size its trailer says";
		return -ENOEXEC;
	}
	return 0;
}

int kpayload_size(const uint8_t *p, size_t len, size_t max_out, size_t *size, const char **why)
{
	if (kpayload_kind(p, len) == KPAYLOAD_OTHER) {
		*why = "the kernel's compression is not one plinth unpacks (gzip, LZ4, zstd)";
		return -ENOTSUP;
	}
	if (len < 8) {
		*why = "kernel payload truncated";
		return -ENOEXEC;
	}
	*size = le32(p + len - 4);
	if (!*size || *size > max_out) {
		*why = "kernel payload's size is zero or larger than the kernel says it needs";
		return -ENOEXEC;
	}
	return 0;
}

static int peek_lz4(const uint8_t *p, size_t len, uint8_t *out, size_t n)
{
	uint32_t csz;

	if (len < 8 || n > LZ4_LEGACY_BLOCK)
		return -ENOEXEC;
	csz = le32(p + 4);
	if (!csz || csz > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK) || csz > len - 8)
		return -ENOEXEC;
	return LZ4_decompress_safe_partial((const char *)p + 8, (char *)out, (int)csz, (int)n,
					   (int)n) == (int)n ? 0 : -ENOEXEC;
}

static int peek_zstd(const uint8_t *p, size_t len, uint8_t *out, size_t n)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer in = {p, len, 0};
	ZSTD_outBuffer o = {out, n, 0};
	size_t r = 0;

	if (!dc)
		return -ENOMEM;
	while (o.pos < n && in.pos < in.size) {
		r = ZSTD_decompressStream(dc, &o, &in);
		if (ZSTD_isError(r) || !r)
			break;
	}
	ZSTD_freeDCtx(dc);
	return o.pos == n ? 0 : -ENOEXEC;
}

int kpayload_peek(const uint8_t *p, size_t len, uint8_t *out, size_t n, const char **why)
{
	enum kpayload_kind kind = kpayload_kind(p, len);
	int ret;

	if (len < 8)
		ret = -ENOEXEC;
	else if (kind == KPAYLOAD_GZIP)
		ret = gzip_inflate(p, len, out, n, 0);
	else if (kind == KPAYLOAD_LZ4)
		ret = peek_lz4(p, len - 4, out, n);
	else if (kind == KPAYLOAD_ZSTD)
		ret = peek_zstd(p, len - 4, out, n);
	else
		ret = -ENOTSUP;
	if (ret)
		*why = "kernel payload's first bytes do not decompress";
	return ret;
}

int kpayload_unpack_into(const uint8_t *p, size_t len, uint8_t *out, size_t size, const char **why)
{
	enum kpayload_kind kind = kpayload_kind(p, len);

	/* gzip's own trailer is the size; the others have it appended after their data. */
	if (len < 8 || size != le32(p + len - 4)) {
		*why = "kernel payload is not the size its trailer says";
		return -ENOEXEC;
	}
	if (kind != KPAYLOAD_LZ4)
		mem_populate(out, size, true);
	if (kind == KPAYLOAD_GZIP)
		return unpack_gzip(p, len, out, size, why);
	if (kind == KPAYLOAD_LZ4)
		return unpack_lz4(p, len - 4, out, size, why);
	if (kind == KPAYLOAD_ZSTD)
		return unpack_zstd(p, len - 4, out, size, why);
	*why = "the kernel's compression is not one plinth unpacks (gzip, LZ4, zstd)";
	return -ENOTSUP;
}

/* Count one list of the table, reading down from *at (the offset just past it); leaves
 * *at on its terminating zero. */
static int kreloc_list(const uint8_t *buf, size_t elf_end, size_t *at, size_t *n)
{
	*n = 0;
	for (;;) {
		if (*at < elf_end + 4)
			return -ENOEXEC;
		*at -= 4;
		if (!le32(buf + *at))
			return 0;
		(*n)++;
	}
}

int kreloc_find(const uint8_t *buf, size_t len, size_t elf_end, struct kreloc_table *t,
		const char **why)
{
	size_t at = len;

	memset(t, 0, sizeof(*t));
	t->base = buf;
	if (elf_end > len || (len - elf_end) % 4) {
		*why = "kernel relocation table is not whole 32-bit entries";
		return -ENOEXEC;
	}
	if (len == elf_end)
		return 0;
	t->at32 = len - 4;
	if (kreloc_list(buf, elf_end, &at, &t->n32))
		goto bad;
	t->atinv = at - 4;
	if (kreloc_list(buf, elf_end, &at, &t->ninv))
		goto bad;
	t->at64 = at - 4;
	if (kreloc_list(buf, elf_end, &at, &t->n64) || at != elf_end)
		goto bad;
	return 0;
bad:
	*why = "kernel relocation table does not end where the ELF file does";
	return -ENOEXEC;
}

/* The image offset of entry i of the list ending at off, if a field of width bytes
 * there lies inside the image. */
static int kreloc_field(const struct kreloc_table *t, size_t off, size_t i, uint64_t img_len,
			uint64_t link_vaddr, unsigned int width, uint64_t *pos)
{
	uint64_t va = (uint64_t)(int64_t)(int32_t)le32(t->base + off - 4 * i);

	*pos = va - link_vaddr;
	return img_len >= width && *pos <= img_len - width ? 0 : -ENOEXEC;
}

int kreloc_apply(const struct kreloc_table *t, uint8_t *img, uint64_t img_len, uint64_t link_vaddr,
		 uint64_t delta, const char **why)
{
	const struct {
		size_t at, n;
		unsigned int width;
		int sign;
	} lists[] = {{t->at32, t->n32, 4, 1}, {t->atinv, t->ninv, 4, -1}, {t->at64, t->n64, 8, 1}};
	unsigned int l, pass;
	uint64_t pos;
	size_t i;

	/* Check every field first, so that a bad table leaves the image untouched. */
	for (pass = 0; pass < 2; pass++) {
		for (l = 0; l < ARRAY_SIZE(lists); l++) {
			for (i = 0; i < lists[l].n; i++) {
				if (kreloc_field(t, lists[l].at, i, img_len, link_vaddr, lists[l].width,
						 &pos)) {
					*why = "kernel relocation outside the kernel's image";
					return -ENOEXEC;
				}
				if (!pass)
					continue;
				if (lists[l].width == 8) {
					uint64_t v;

					memcpy(&v, img + pos, 8);
					v += delta;
					memcpy(img + pos, &v, 8);
				} else {
					uint32_t v;

					memcpy(&v, img + pos, 4);
					v = lists[l].sign > 0 ? v + (uint32_t)delta : v - (uint32_t)delta;
					memcpy(img + pos, &v, 4);
				}
			}
		}
	}
	return 0;
}
