// SPDX-License-Identifier: MIT
/*
 * VHD ("vpc" in qemu-img's words): Microsoft's Virtual Hard Disk Image Format.
 *
 *   fixed:        [data ........................][footer 512]
 *   dynamic/diff: [footer copy][dyn header 1024][BAT][parent locators]
 *                 [block: bitmap | data] ... [footer 512]
 * All fields are big-endian. The BAT maps each block (2 MiB by default) to the
 * sector where its bitmap starts, 0xFFFFFFFF = not allocated. For a differencing
 * disk a clear bitmap bit means "read the parent"; for a dynamic disk QEMU and
 * Windows treat an allocated block as entirely present, and so do we.
 *
 * Size: the footer holds a current size and a CHS geometry. Like QEMU we use the
 * CHS size unless the creator application is one that writes exact sizes
 * ("win ", "qem2", "d2v ", "CTXS", "tap\0") or the geometry is the maximum.
 * We create with creator "plnt" and a CHS-rounded size, or with force_size=on
 * with "qem2" and the maximum geometry (what QEMU writes), so that every reader
 * agrees on the size.
 *
 * Metadata update order (crash safety), for a write to an unallocated block:
 *   1. write the footer at the new end of file (past the new block)
 *   2. write the block's bitmap where the old footer was (dynamic: all ones,
 *      the data area is a fresh file extension and reads as zeros)
 *   3. write the data
 *   -- flush: fdatasync; write dirty bitmaps and the BAT; fdatasync.
 * A crash before the BAT reaches the disk leaves an unreferenced block (old
 * data is read); the file always ends with a valid footer. Bitmap bits of a
 * differencing disk are set only after the data is stable (same flush order).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "img-internal.h"

#define VHD_FOOTER_SIZE 512
#define VHD_DYN_SIZE 1024
#define VHD_FIXED 2
#define VHD_DYNAMIC 3
#define VHD_DIFF 4
#define VHD_UNUSED 0xFFFFFFFFu
#define VHD_MAX_GEOMETRY (65535ULL * 16 * 255)
#define VHD_MAX_SECTORS (0xff000000ULL) /* 2040 GiB, as QEMU */
#define VHD_EPOCH 946684800 /* 2000-01-01 00:00:00 UTC */
#define VHD_BM_CACHE 16

struct bm_entry {
	uint32_t block; /* VHD_UNUSED = free */
	uint8_t *bm;
	bool dirty;
	uint64_t stamp;
};

struct vpc {
	uint8_t footer[VHD_FOOTER_SIZE];
	uint32_t type;
	uint32_t block_size, bitmap_size; /* bitmap_size: bytes, sector multiple */
	uint32_t *bat;                    /* host endian */
	uint32_t bat_entries;             /* entries the size needs (those in memory) */
	uint32_t bat_max;                 /* entries in the file's table */
	uint64_t dyn_off;                 /* the dynamic header */
	uint64_t bat_offset;
	uint32_t bat_dirty_lo, bat_dirty_hi; /* dirty entry range, lo > hi = clean */
	uint64_t meta_end;   /* end of the headers and the BAT: blocks start after */
	uint64_t footer_off; /* where the footer is: blocks are allocated here */
	struct bm_entry bmc[VHD_BM_CACHE];
	uint64_t tick;
	uint8_t *ones;       /* an all-ones bitmap for new dynamic blocks */
};

static const char *const vpc_create_keys[] = {
	"size", "subformat", "force_size", "backing_file", "backing_fmt", "block_size", NULL,
};

static uint32_t vhd_checksum(const uint8_t *p, size_t len, size_t skip_off)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < skip_off || i >= skip_off + 4)
			sum += p[i];
	return ~sum;
}

/* The VHD specification's CHS algorithm (appendix), in sectors. */
static void vhd_geometry(uint64_t sectors, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
	uint64_t cth;
	uint32_t h, s;

	if (sectors > VHD_MAX_GEOMETRY)
		sectors = VHD_MAX_GEOMETRY;
	if (sectors >= 65535ULL * 16 * 63) {
		s = 255;
		h = 16;
		cth = sectors / s;
	} else {
		s = 17;
		cth = sectors / s;
		h = (uint32_t)((cth + 1023) / 1024);
		if (h < 4)
			h = 4;
		if (cth >= h * 1024ULL || h > 16) {
			s = 31;
			h = 16;
			cth = sectors / s;
		}
		if (cth >= h * 1024ULL) {
			s = 63;
			h = 16;
			cth = sectors / s;
		}
	}
	*cyls = (uint16_t)(cth / h);
	*heads = (uint8_t)h;
	*spt = (uint8_t)s;
}

static bool footer_valid(const uint8_t *f)
{
	return !memcmp(f, "conectix", 8) && ld_be32(f + 64) == vhd_checksum(f, 512, 64);
}

static uint64_t footer_size(const uint8_t *f)
{
	static const char *const exact[] = { "win ", "qem2", "d2v ", "CTXS" };
	uint64_t chs = (uint64_t)ld_be16(f + 56) * f[58] * f[59];
	bool use_chs = memcmp(f + 28, "tap\0", 4) != 0;

	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (!memcmp(f + 28, exact[i], 4))
			use_chs = false;
	if (!use_chs || chs == VHD_MAX_GEOMETRY)
		return ld_be64(f + 48);
	return chs * SECTOR_SIZE;
}

static int vpc_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	if (len >= 8 && !memcmp(head, "conectix", 8))
		return 100;
	/* A fixed VHD has its footer only at the end (QEMU probes it as raw). */
	if (tail && footer_valid(tail) && ld_be32(tail + 60) == VHD_FIXED)
		return 50;
	return 0;
}

/* ---- bitmap cache (differencing disks) ---------------------------------- */

static uint64_t block_host(const struct vpc *v, uint32_t b)
{
	return (uint64_t)v->bat[b] * SECTOR_SIZE;
}

static int write_bitmap(struct pimg *img, struct bm_entry *e)
{
	struct vpc *v = img->priv;
	int ret = pfile_pwrite(img->file, e->bm, v->bitmap_size, block_host(v, e->block));

	if (!ret)
		e->dirty = false;
	return ret;
}

static int write_bat(struct pimg *img)
{
	struct vpc *v = img->priv;
	uint32_t lo = v->bat_dirty_lo, hi = v->bat_dirty_hi, n;
	uint32_t *be;
	int ret;

	if (lo > hi)
		return 0;
	n = hi - lo + 1;
	be = malloc((size_t)n * 4);
	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		be[i] = htobe32(v->bat[lo + i]);
	ret = pfile_pwrite(img->file, be, (size_t)n * 4, v->bat_offset + (uint64_t)lo * 4);
	free(be);
	if (!ret) {
		v->bat_dirty_lo = UINT32_MAX;
		v->bat_dirty_hi = 0;
	}
	return ret;
}

static int vpc_flush(struct pimg *img)
{
	struct vpc *v = img->priv;
	bool dirty;
	int ret;

	if (v->type == VHD_FIXED)
		return 0;
	dirty = v->bat_dirty_lo <= v->bat_dirty_hi;
	for (unsigned i = 0; i < VHD_BM_CACHE; i++)
		dirty |= v->bmc[i].block != VHD_UNUSED && v->bmc[i].dirty;
	if (!dirty)
		return 0;
	/* Data first, then the bitmaps and BAT that point at it. */
	ret = pfile_sync(img->file);
	if (ret)
		return ret;
	for (unsigned i = 0; i < VHD_BM_CACHE; i++) {
		if (v->bmc[i].block != VHD_UNUSED && v->bmc[i].dirty) {
			ret = write_bitmap(img, &v->bmc[i]);
			if (ret)
				return ret;
		}
	}
	return write_bat(img);
}

/* The bitmap of allocated block b (loaded, or all zeros when fresh). */
static int get_bitmap(struct pimg *img, uint32_t b, bool fresh, struct bm_entry **out)
{
	struct vpc *v = img->priv;
	struct bm_entry *victim = NULL;
	int ret;

	for (unsigned i = 0; i < VHD_BM_CACHE; i++) {
		if (v->bmc[i].block == b) {
			v->bmc[i].stamp = ++v->tick;
			*out = &v->bmc[i];
			return 0;
		}
	}
	for (unsigned i = 0; i < VHD_BM_CACHE && (!victim || victim->block != VHD_UNUSED); i++)
		if (!victim || v->bmc[i].block == VHD_UNUSED || v->bmc[i].stamp < victim->stamp)
			victim = &v->bmc[i];
	if (victim->block != VHD_UNUSED && victim->dirty) {
		ret = vpc_flush(img);
		if (ret)
			return ret;
	}
	victim->block = VHD_UNUSED;
	if (fresh) {
		memset(victim->bm, 0, v->bitmap_size);
		victim->dirty = true;
	} else {
		ret = pfile_pread(img->file, victim->bm, v->bitmap_size, block_host(v, b), true);
		if (ret) {
			log_error("%s: cannot read the bitmap of block %u", img->path, b);
			return ret;
		}
		victim->dirty = false;
	}
	victim->block = b;
	victim->stamp = ++v->tick;
	*out = victim;
	return 0;
}

static bool bm_test(const uint8_t *bm, uint64_t s)
{
	return bm[s / 8] & (0x80 >> (s % 8));
}

/* ---- I/O ------------------------------------------------------------------- */

static int check_block(struct pimg *img, uint32_t b)
{
	struct vpc *v = img->priv;
	uint64_t h = block_host(v, b);

	if (h < v->meta_end || h + v->bitmap_size > v->footer_off ||
	    (h < v->bat_offset + (uint64_t)v->bat_max * 4 && h + v->bitmap_size > v->bat_offset)) {
		log_error("%s: BAT entry %u points outside the data area (sector %u)", img->path, b, v->bat[b]);
		return -EIO;
	}
	return 0;
}

static int vpc_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct vpc *v = img->priv;
	uint32_t b;
	struct bm_entry *e;
	uint64_t s, n, first;
	int ret;

	*pnum = len;
	if (v->type == VHD_FIXED)
		return PIMG_DATA;
	b = (uint32_t)(off / v->block_size);
	if (v->bat[b] == VHD_UNUSED)
		return PIMG_UNALLOCATED;
	ret = check_block(img, b);
	if (ret)
		return ret;
	if (v->type == VHD_DYNAMIC)
		return PIMG_DATA;
	ret = get_bitmap(img, b, false, &e);
	if (ret)
		return ret;
	s = (off % v->block_size) / SECTOR_SIZE;
	first = bm_test(e->bm, s);
	for (n = 1; n < len / SECTOR_SIZE && bm_test(e->bm, s + n) == first; n++)
		;
	*pnum = n * SECTOR_SIZE;
	return first ? PIMG_DATA : PIMG_UNALLOCATED;
}

static int vpc_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct vpc *v = img->priv;
	uint32_t b;

	if (v->type == VHD_FIXED)
		return pfile_pread(img->file, buf, len, off, true);
	b = (uint32_t)(off / v->block_size);
	return pfile_pread(img->file, buf, len,
			   block_host(v, b) + v->bitmap_size + off % v->block_size, false);
}

static int rewrite_footer(struct pimg *img, uint64_t at)
{
	struct vpc *v = img->priv;

	return pfile_pwrite(img->file, v->footer, VHD_FOOTER_SIZE, at);
}

static int alloc_block(struct pimg *img, uint32_t b)
{
	struct vpc *v = img->priv;
	uint64_t host = v->footer_off, end = host + v->bitmap_size + v->block_size;
	int ret;

	if (host / SECTOR_SIZE >= VHD_UNUSED || end > (uint64_t)INT64_MAX) {
		log_error("%s: VHD file would exceed 2 TiB of sectors", img->path);
		return -EFBIG;
	}
	/* 1: footer at the new end; 2: bitmap over the old footer */
	ret = rewrite_footer(img, end);
	if (ret)
		return ret;
	v->footer_off = end;
	if (v->type == VHD_DYNAMIC) {
		ret = pfile_pwrite(img->file, v->ones, v->bitmap_size, host);
	} else {
		uint8_t *z = calloc(1, v->bitmap_size);

		ret = z ? pfile_pwrite(img->file, z, v->bitmap_size, host) : -ENOMEM;
		free(z);
	}
	if (ret)
		return ret;
	v->bat[b] = (uint32_t)(host / SECTOR_SIZE);
	v->bat_dirty_lo = MIN(v->bat_dirty_lo, b);
	v->bat_dirty_hi = MAX(v->bat_dirty_hi, b);
	if (v->type == VHD_DIFF) {
		struct bm_entry *e;

		return get_bitmap(img, b, true, &e);
	}
	return 0;
}

static int vpc_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	struct vpc *v = img->priv;
	uint32_t b;
	int ret;

	if (v->type == VHD_FIXED)
		return pfile_pwrite(img->file, buf, len, off);
	b = (uint32_t)(off / v->block_size);
	if (v->bat[b] == VHD_UNUSED) {
		ret = alloc_block(img, b);
		if (ret)
			return ret;
	} else {
		ret = check_block(img, b);
		if (ret)
			return ret;
	}
	ret = pfile_pwrite(img->file, buf, len, block_host(v, b) + v->bitmap_size + off % v->block_size);
	if (ret)
		return ret;
	if (v->type == VHD_DIFF) {
		struct bm_entry *e;
		uint64_t s = (off % v->block_size) / SECTOR_SIZE;

		ret = get_bitmap(img, b, false, &e);
		if (ret)
			return ret;
		for (uint64_t i = 0; i < len / SECTOR_SIZE; i++)
			e->bm[(s + i) / 8] |= (uint8_t)(0x80 >> ((s + i) % 8));
		e->dirty = true;
	}
	return 0;
}

static int vpc_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct vpc *v = img->priv;

	/* An unallocated block of a dynamic disk already reads as zeros. */
	if (v->type == VHD_DYNAMIC && v->bat[off / v->block_size] == VHD_UNUSED)
		return 0;
	return -ENOTSUP;
}

/* ---- open ------------------------------------------------------------------ */

static void vpc_close(struct pimg *img)
{
	struct vpc *v = img->priv;

	if (!v)
		return;
	for (unsigned i = 0; i < VHD_BM_CACHE; i++)
		free(v->bmc[i].bm);
	free(v->bat);
	free(v->ones);
	free(v);
	img->priv = NULL;
}

/* UTF-16 (le or be) to UTF-8 for paths; non-ASCII kept as UTF-8. Returns malloc'd or NULL. */
static char *utf16_to_utf8(const uint8_t *p, size_t bytes, bool le)
{
	char *out = malloc(bytes * 2 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i + 1 < bytes; i += 2) {
		uint32_t c = le ? ld_le16(p + i) : ld_be16(p + i);

		if (!c)
			break;
		if (c >= 0xD800 && c < 0xE000)
			c = '?'; /* surrogates: not worth supporting in file names here */
		if (c < 0x80) {
			*o++ = (char)c;
		} else if (c < 0x800) {
			*o++ = (char)(0xC0 | (c >> 6));
			*o++ = (char)(0x80 | (c & 0x3F));
		} else {
			*o++ = (char)(0xE0 | (c >> 12));
			*o++ = (char)(0x80 | ((c >> 6) & 0x3F));
			*o++ = (char)(0x80 | (c & 0x3F));
		}
	}
	*o = 0;
	return out;
}

/* ASCII/UTF-8 to UTF-16 (le or be); returns bytes written, at most cap. */
static size_t utf8_to_utf16(const char *s, uint8_t *out, size_t cap, bool le)
{
	size_t n = 0;

	while (*s && n + 2 <= cap) {
		uint32_t c = (uint8_t)*s++;

		if (c >= 0xC0 && c < 0xE0 && (*s & 0xC0) == 0x80)
			c = ((c & 0x1F) << 6) | (*s++ & 0x3F);
		else if (c >= 0xE0 && c < 0xF0 && (s[0] & 0xC0) == 0x80 && (s[1] & 0xC0) == 0x80) {
			c = ((c & 0x0F) << 12) | ((s[0] & 0x3F) << 6) | (s[1] & 0x3F);
			s += 2;
		}
		if (le)
			st_le16(out + n, (uint16_t)c);
		else
			st_be16(out + n, (uint16_t)c);
		n += 2;
	}
	return n;
}

/*
 * The error for a parent that is nowhere: every name the child gives (locator
 * kind and name) and every path tried, in the order tried.
 */
static void log_missing_parent(const struct pimg *img, char *const *cand, const char *const *kind,
			       size_t nc)
{
	char names[1024] = "", looked[2048] = "";
	size_t nl = 0, ll = 0;

	for (size_t i = 0; i < nc; i++) {
		char *p = cand[i][0] ? pimg_path_relative_to(img->path, cand[i]) : NULL;
		bool dup = false;

		if (cand[i][0] && nl < sizeof(names))
			nl += (size_t)snprintf(names + nl, sizeof(names) - nl, "%s'%s' (%s)", nl ? ", " : "",
					       cand[i], kind[i]);
		for (size_t j = 0; p && j < i; j++)
			dup |= cand[j][0] && !strcmp(cand[j], cand[i]);
		if (p && !dup && ll < sizeof(looked))
			ll += (size_t)snprintf(looked + ll, sizeof(looked) - ll, "%s%s", ll ? ", " : "", p);
		free(p);
	}
	log_error("%s: differencing VHD: parent not found; the image names %s; looked for %s",
		  img->path, nl ? names : "no parent at all", ll ? looked : "nothing");
}

/* Pick the parent's path from the locators (relative first), else the unicode name. */
static int find_parent(struct pimg *img, const uint8_t *dyn)
{
	static const char *const pass_kind[] = { "W2ru locator", "MacX locator", "W2ku locator" };
	struct vpc *v = img->priv;
	char *cand[9] = { 0 }, *refused = NULL;
	const char *kind[9];
	size_t nc = 0;
	int ret = 0;

	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < 8; i++) {
			const uint8_t *l = dyn + 576 + i * 24;
			uint32_t code = ld_be32(l), len = ld_be32(l + 8);
			uint64_t off = ld_be64(l + 16);
			uint8_t buf[2048];
			char *s = NULL;

			if (!code || !len)
				continue;
			if ((pass == 0 && code != 0x57327275 /* W2ru */) ||
			    (pass == 1 && code != 0x4D616358 /* MacX */) ||
			    (pass == 2 && code != 0x57326B75 /* W2ku */))
				continue;
			if (len > sizeof(buf) || !range_within(off, len, img->file->size) ||
			    pfile_pread(img->file, buf, len, off, true)) {
				log_error("%s: bad parent locator %d", img->path, i);
				ret = -EINVAL;
				goto out;
			}
			if (code == 0x4D616358) {
				s = strndup((const char *)buf, len);
				if (s && !strncmp(s, "file://", 7))
					memmove(s, s + 7, strlen(s + 7) + 1);
			} else {
				s = utf16_to_utf8(buf, len, true);
				for (char *c = s; s && *c; c++)
					if (*c == '\\')
						*c = '/';
				if (s && !strncmp(s, "./", 2))
					memmove(s, s + 2, strlen(s + 2) + 1);
			}
			if (!s) {
				ret = -ENOMEM;
				goto out;
			}
			kind[nc] = pass_kind[pass];
			cand[nc++] = s;
			if (nc == 8)
				break;
		}
	}
	cand[nc] = utf16_to_utf8(dyn + 64, 512, false);
	kind[nc] = "parent Unicode name";
	if (cand[nc])
		nc++;
	for (size_t i = 0; i < nc; i++) {
		int found = cand[i][0] ? pimg_external_find(img, cand[i], NULL) : -ENOENT;

		if (found && found != -ENOENT && !refused)
			refused = cand[i]; /* the core says why when it opens it */
		if (!found) {
			img->backing_name = strdup(cand[i]);
			img->backing_fmt = strdup("vpc");
			if (!img->backing_name || !img->backing_fmt)
				ret = -ENOMEM;
			goto out;
		}
	}
	if ((img->flags & (PIMG_O_NO_BACKING | PIMG_O_BACKING_REPORT)) || refused) {
		/* info on a lone child: report the recorded name (the core refuses or reports
		 * it when it is needed) */
		img->backing_name = strdup(refused ? refused : nc ? cand[nc - 1] : "");
		img->backing_fmt = strdup("vpc");
		goto out;
	}
	log_missing_parent(img, cand, kind, nc);
	ret = -ENOENT;
out:
	for (size_t i = 0; i < nc; i++)
		free(cand[i]);
	(void)v;
	return ret;
}

static int vpc_open(struct pimg *img)
{
	struct vpc *v;
	uint8_t dyn[VHD_DYN_SIZE];
	uint64_t fsz = img->file->size, size, data_off;
	int ret = -EINVAL;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	img->priv = v;
	for (unsigned i = 0; i < VHD_BM_CACHE; i++)
		v->bmc[i].block = VHD_UNUSED;
	v->bat_dirty_lo = UINT32_MAX;
	if (fsz < VHD_FOOTER_SIZE) {
		log_error("%s: file too small for a VHD footer", img->path);
		goto out_free;
	}
	/* The footer at the end; a dynamic disk's copy at offset 0 if that one is damaged. */
	if (pfile_pread(img->file, v->footer, VHD_FOOTER_SIZE, fsz - VHD_FOOTER_SIZE, true) ||
	    !footer_valid(v->footer)) {
		if (pfile_pread(img->file, v->footer, VHD_FOOTER_SIZE, 0, true) || !footer_valid(v->footer) ||
		    ld_be32(v->footer + 60) == VHD_FIXED) {
			log_error("%s: no valid VHD footer (bad cookie or checksum)", img->path);
			goto out_free;
		}
		if (!(img->flags & PIMG_O_RDONLY)) {
			log_error("%s: VHD footer at the end is damaged; open read-only to copy the data",
				  img->path);
			goto out_free;
		}
	}
	v->type = ld_be32(v->footer + 60);
	memcpy(img->id, v->footer + 68, 16); /* unique id: a child records it as its parent's */
	img->id_len = 16;
	size = footer_size(v->footer);
	if (size % SECTOR_SIZE || size / SECTOR_SIZE > VHD_MAX_SECTORS) {
		log_error("%s: bad VHD size %" PRIu64, img->path, size);
		goto out_free;
	}
	v->footer_off = fsz - VHD_FOOTER_SIZE;
	if (v->type == VHD_FIXED) {
		if (size > fsz - VHD_FOOTER_SIZE) {
			log_error("%s: fixed VHD is shorter than its size", img->path);
			goto out_free;
		}
		img->size = size;
		img->granule = 1 * MiB;
		img->batched = true;
		return 0;
	}
	if (v->type != VHD_DYNAMIC && v->type != VHD_DIFF) {
		log_error("%s: unsupported VHD disk type %u", img->path, v->type);
		goto out_free;
	}
	if (fsz % SECTOR_SIZE && !(img->flags & PIMG_O_RDONLY)) {
		log_error("%s: VHD file size not a multiple of 512", img->path);
		goto out_free;
	}
	data_off = ld_be64(v->footer + 16);
	if (!range_within(data_off, VHD_DYN_SIZE, fsz) ||
	    pfile_pread(img->file, dyn, VHD_DYN_SIZE, data_off, true) || memcmp(dyn, "cxsparse", 8)) {
		log_error("%s: VHD dynamic header missing", img->path);
		goto out_free;
	}
	if (ld_be32(dyn + 36) != vhd_checksum(dyn, VHD_DYN_SIZE, 36)) {
		log_error("%s: VHD dynamic header checksum mismatch", img->path);
		goto out_free;
	}
	v->dyn_off = data_off;
	v->bat_offset = ld_be64(dyn + 16);
	v->bat_entries = ld_be32(dyn + 28);
	v->block_size = ld_be32(dyn + 32);
	v->bat_max = v->bat_entries;
	if (!is_pow2(v->block_size) || v->block_size < SECTOR_SIZE || v->block_size > 256 * MiB) {
		log_error("%s: bad VHD block size %u", img->path, v->block_size);
		goto out_free;
	}
	v->bitmap_size = (uint32_t)align_up((v->block_size / SECTOR_SIZE + 7) / 8, SECTOR_SIZE);
	/* Only the entries the disk size needs are read: the table may claim more. */
	if ((uint64_t)v->bat_entries * v->block_size >= size)
		v->bat_entries = (uint32_t)((size + v->block_size - 1) / v->block_size);
	else
		v->bat_entries = UINT32_MAX; /* too small: refused below */
	if ((uint64_t)v->bat_entries * v->block_size < size ||
	    !range_within(v->bat_offset, (uint64_t)v->bat_entries * 4, fsz)) {
		log_error("%s: VHD block table does not fit the disk size or the file", img->path);
		goto out_free;
	}
	ret = -ENOMEM;
	v->bat = malloc((size_t)MAX(v->bat_entries, 1) * 4);
	v->ones = malloc(v->bitmap_size);
	if (!v->bat || !v->ones)
		goto out_free;
	memset(v->ones, 0xff, v->bitmap_size);
	for (unsigned i = 0; i < VHD_BM_CACHE; i++) {
		v->bmc[i].bm = malloc(v->bitmap_size);
		if (!v->bmc[i].bm)
			goto out_free;
	}
	ret = pfile_pread(img->file, v->bat, (size_t)v->bat_entries * 4, v->bat_offset, true);
	if (ret)
		goto out_free;
	for (uint32_t i = 0; i < v->bat_entries; i++)
		v->bat[i] = be32toh(v->bat[i]);
	/* Blocks live after the headers and never on the BAT (locators may be anywhere). */
	v->meta_end = data_off + VHD_DYN_SIZE;
	if (v->type == VHD_DIFF) {
		ret = find_parent(img, dyn);
		if (ret)
			goto out_free;
		memcpy(img->parent_id, dyn + 40, 16);
		img->parent_id_len = 16;
	}
	img->size = size;
	img->granule = v->block_size;
	img->batched = true;
	return 0;

out_free:
	vpc_close(img);
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

static void make_footer(uint8_t *f, uint32_t type, uint64_t size, bool force, uint64_t data_off)
{
	uint64_t sectors = size / SECTOR_SIZE;
	uint16_t c;
	uint8_t h, s;

	memset(f, 0, VHD_FOOTER_SIZE);
	memcpy(f, "conectix", 8);
	st_be32(f + 8, 2);
	st_be32(f + 12, 0x00010000);
	st_be64(f + 16, data_off);
	st_be32(f + 24, (uint32_t)(time(NULL) - VHD_EPOCH));
	memcpy(f + 28, force ? "qem2" : "plnt", 4);
	st_be32(f + 32, 0x00010000);
	memcpy(f + 36, "Wi2k", 4);
	st_be64(f + 40, size);
	st_be64(f + 48, size);
	if (force || sectors >= VHD_MAX_GEOMETRY) {
		c = 65535;
		h = 16;
		s = 255;
	} else {
		vhd_geometry(sectors, &c, &h, &s);
	}
	st_be16(f + 56, c);
	f[58] = h;
	f[59] = s;
	st_be32(f + 60, type);
	pimg_random(f + 68, 16);
	st_be32(f + 64, vhd_checksum(f, VHD_FOOTER_SIZE, 64));
}

/* Round size up to what the CHS geometry can express (unless force_size). */
static uint64_t vhd_round_size(uint64_t size)
{
	uint64_t sectors = size / SECTOR_SIZE;
	uint16_t c;
	uint8_t h, s;

	if (sectors >= VHD_MAX_GEOMETRY)
		return size;
	for (uint64_t i = 0;; i++) {
		vhd_geometry(sectors + i, &c, &h, &s);
		if ((uint64_t)c * h * s >= sectors)
			return (uint64_t)c * h * s * SECTOR_SIZE;
	}
}

static int vpc_create(const char *path, const struct pimg_create_opts *o)
{
	uint32_t type = VHD_DYNAMIC, block = o->block_size ? o->block_size : 2 * MiB, entries;
	uint8_t footer[VHD_FOOTER_SIZE], dyn[VHD_DYN_SIZE];
	uint8_t parent_footer[VHD_FOOTER_SIZE] = { 0 };
	uint64_t size = o->size, bat_bytes, loc_off, end;
	struct pimg_file *f;
	uint8_t *bat;
	int ret;

	if (o->subformat && !strcmp(o->subformat, "fixed")) {
		type = VHD_FIXED;
	} else if (o->subformat && strcmp(o->subformat, "dynamic")) {
		log_error("VHD subformat must be fixed or dynamic");
		return -EINVAL;
	}
	if (o->backing_file) {
		struct pimg *p;
		char *pp;

		if (type == VHD_FIXED) {
			log_error("a fixed VHD cannot have a parent");
			return -EINVAL;
		}
		if (o->backing_fmt && strcmp(o->backing_fmt, "vpc") && strcmp(o->backing_fmt, "vhd")) {
			log_error("the parent of a differencing VHD must be a VHD (backing_fmt=vpc)");
			return -EINVAL;
		}
		pp = pimg_path_relative_to(path, o->backing_file);
		p = pp ? pimg_open(pp, "vpc", PIMG_O_RDONLY | PIMG_O_NO_BACKING) : NULL;
		free(pp);
		if (!p)
			return -EINVAL;
		memcpy(parent_footer, ((struct vpc *)p->priv)->footer, VHD_FOOTER_SIZE);
		size = pimg_size(p);
		pimg_close(p);
		type = VHD_DIFF;
	}
	if (!is_pow2(block) || block < SECTOR_SIZE || block > 256 * MiB) {
		log_error("VHD block_size must be a power of two up to 256M");
		return -EINVAL;
	}
	if (!o->force_size && !o->backing_file)
		size = vhd_round_size(size);
	if (size / SECTOR_SIZE > VHD_MAX_SECTORS) {
		log_error("VHD images are limited to 2040 GiB");
		return -EFBIG;
	}
	make_footer(footer, type, size, o->force_size || o->backing_file, type == VHD_FIXED ? UINT64_MAX : 512);
	f = pfile_open(path, false, true);
	if (!f)
		return -EIO;
	if (type == VHD_FIXED) {
		ret = pfile_truncate(f, size);
		if (!ret)
			ret = pfile_pwrite(f, footer, VHD_FOOTER_SIZE, size);
		goto out_sync;
	}
	entries = (uint32_t)((size + block - 1) / block);
	bat_bytes = align_up((uint64_t)entries * 4, SECTOR_SIZE);
	bat = malloc(bat_bytes);
	if (!bat) {
		ret = -ENOMEM;
		goto out_close;
	}
	memset(bat, 0xff, bat_bytes);
	memset(dyn, 0, sizeof(dyn));
	memcpy(dyn, "cxsparse", 8);
	st_be64(dyn + 8, UINT64_MAX);
	st_be64(dyn + 16, 512 + VHD_DYN_SIZE);
	st_be32(dyn + 24, 0x00010000);
	st_be32(dyn + 28, entries);
	st_be32(dyn + 32, block);
	end = 512 + VHD_DYN_SIZE + bat_bytes;
	if (type == VHD_DIFF) {
		uint8_t loc[2][1024];
		size_t ll[2];
		char *rel;

		memcpy(dyn + 40, parent_footer + 68, 16);
		st_be32(dyn + 56, ld_be32(parent_footer + 24));
		utf8_to_utf16(o->backing_file, dyn + 64, 512, false);
		/* W2ru: the name relative to the child, as Windows writes it; MacX: a file URL. */
		if (asprintf(&rel, "%s%s", o->backing_file[0] == '/' ? "" : ".\\", o->backing_file) < 0) {
			ret = -ENOMEM;
			free(bat);
			goto out_close;
		}
		for (char *c = rel; *c; c++)
			if (*c == '/' && o->backing_file[0] != '/')
				*c = '\\';
		ll[0] = utf8_to_utf16(rel, loc[0], sizeof(loc[0]), true);
		free(rel);
		ll[1] = (size_t)snprintf((char *)loc[1], sizeof(loc[1]), "file://%s", o->backing_file);
		ll[1] = MIN(ll[1], sizeof(loc[1]));
		loc_off = end;
		for (int i = 0; i < 2; i++) {
			uint8_t *l = dyn + 576 + i * 24;
			uint8_t sec[1024] = { 0 };

			memcpy(sec, loc[i], ll[i]);
			memcpy(l, i == 0 ? "W2ru" : "MacX", 4);
			st_be32(l + 4, 2); /* data space: sectors */
			st_be32(l + 8, (uint32_t)ll[i]);
			st_be64(l + 16, loc_off);
			ret = pfile_pwrite(f, sec, sizeof(sec), loc_off);
			if (ret) {
				free(bat);
				goto out_close;
			}
			loc_off += sizeof(sec);
		}
		end = loc_off;
	}
	st_be32(dyn + 36, vhd_checksum(dyn, VHD_DYN_SIZE, 36));
	ret = pfile_pwrite(f, footer, VHD_FOOTER_SIZE, 0);
	if (!ret)
		ret = pfile_pwrite(f, dyn, VHD_DYN_SIZE, 512);
	if (!ret)
		ret = pfile_pwrite(f, bat, bat_bytes, 512 + VHD_DYN_SIZE);
	if (!ret)
		ret = pfile_pwrite(f, footer, VHD_FOOTER_SIZE, end);
	free(bat);
out_sync:
	if (!ret)
		ret = pfile_sync(f);
out_close:
	if (ret)
		log_error("%s: %s", path, strerror(-ret));
	pfile_close(f);
	return ret;
}

/*
 * A bigger block table, where the footer is (the footer moves past it first);
 * then the dynamic header points at it. A crash before the header write leaves
 * the old table in use.
 */
static int move_bat(struct pimg *img, uint32_t need)
{
	struct vpc *v = img->priv;
	uint64_t bytes = align_up((uint64_t)need * 4, SECTOR_SIZE), at = v->footer_off;
	uint32_t max = (uint32_t)(bytes / 4), *be;
	uint8_t dyn[VHD_DYN_SIZE];
	int ret;

	ret = vpc_flush(img);
	if (!ret)
		ret = pfile_pread(img->file, dyn, sizeof(dyn), v->dyn_off, true);
	if (ret)
		return ret;
	be = malloc(bytes);
	if (!be)
		return -ENOMEM;
	memset(be, 0xff, bytes);
	for (uint32_t i = 0; i < v->bat_entries; i++)
		be[i] = htobe32(v->bat[i]);
	ret = rewrite_footer(img, at + bytes);
	if (!ret)
		ret = pfile_pwrite(img->file, be, bytes, at);
	free(be);
	if (!ret)
		ret = pfile_sync(img->file);
	if (ret)
		return ret;
	v->footer_off = at + bytes;
	st_be64(dyn + 16, at);
	st_be32(dyn + 28, max);
	st_be32(dyn + 36, 0);
	st_be32(dyn + 36, vhd_checksum(dyn, VHD_DYN_SIZE, 36));
	ret = pfile_pwrite(img->file, dyn, sizeof(dyn), v->dyn_off);
	if (!ret)
		ret = pfile_sync(img->file);
	if (ret)
		return ret;
	v->bat_offset = at;
	v->bat_max = max;
	return 0;
}

/*
 * Grow the disk: the footer says the new size (creator "qem2", maximum geometry,
 * like force_size=on, so every reader takes the exact size). A fixed disk's
 * footer moves to the new end first, then its old place is zeroed; a dynamic
 * disk grows only within its block table.
 */
static int vpc_resize(struct pimg *img, uint64_t size)
{
	struct vpc *v = img->priv;
	uint8_t f[VHD_FOOTER_SIZE];
	uint16_t c = 65535;
	int ret;

	if (size < img->size) {
		log_error("%s: shrinking VHD images is not supported", img->path);
		return -ENOTSUP;
	}
	if (size / SECTOR_SIZE > VHD_MAX_SECTORS)
		return -EFBIG;
	if (v->type != VHD_FIXED) {
		uint64_t need = (size + v->block_size - 1) / v->block_size;
		uint32_t *bat;

		if (need > v->bat_max) {
			ret = move_bat(img, (uint32_t)need);
			if (ret)
				return ret;
		}
		bat = realloc(v->bat, need * 4);
		if (!bat)
			return -ENOMEM;
		v->bat = bat;
		ret = pfile_pread(img->file, bat + v->bat_entries, (need - v->bat_entries) * 4,
				  v->bat_offset + (uint64_t)v->bat_entries * 4, true);
		if (ret)
			return ret;
		for (uint64_t i = v->bat_entries; i < need; i++)
			bat[i] = be32toh(bat[i]);
		v->bat_entries = (uint32_t)need;
	}
	memcpy(f, v->footer, sizeof(f));
	memcpy(f + 28, "qem2", 4);
	st_be64(f + 48, size);
	st_be16(f + 56, c);
	f[58] = 16;
	f[59] = 255;
	st_be32(f + 64, 0);
	st_be32(f + 64, vhd_checksum(f, VHD_FOOTER_SIZE, 64));
	memcpy(v->footer, f, sizeof(f));
	if (v->type == VHD_FIXED) {
		uint8_t zero[VHD_FOOTER_SIZE] = { 0 };
		uint64_t old = v->footer_off;

		ret = rewrite_footer(img, size);
		if (!ret)
			ret = pfile_sync(img->file);
		if (!ret && old < size)
			ret = pfile_pwrite(img->file, zero, sizeof(zero), old);
		if (ret)
			return ret;
		v->footer_off = size;
	} else {
		ret = rewrite_footer(img, v->footer_off);
		if (!ret)
			ret = pfile_pwrite(img->file, f, sizeof(f), 0);
		if (ret)
			return ret;
	}
	img->size = size;
	return 0;
}

static int vpc_info(struct pimg *img, struct pimg_info *info)
{
	struct vpc *v = img->priv;
	char app[5];

	if (v->type != VHD_FIXED)
		info->cluster_size = v->block_size;
	pimg_info_add_str(info, "subformat",
			  v->type == VHD_FIXED ? "fixed" : v->type == VHD_DYNAMIC ? "dynamic" : "differencing");
	memcpy(app, v->footer + 28, 4);
	app[4] = 0;
	for (int i = 0; i < 4; i++)
		if (app[i] && (app[i] < 32 || app[i] > 126))
			app[i] = '?';
	pimg_info_add_str(info, "creator-app", app);
	return 0;
}

/* Every BAT entry inside the data area, no two blocks overlapping. */
static int vpc_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct vpc *v = img->priv;
	uint64_t span;
	uint32_t *sorted;
	uint32_t n = 0;

	res->total_clusters = v->type == VHD_FIXED ? 1 : (img->size + v->block_size - 1) / v->block_size;
	res->image_end_offset = img->file->size;
	if (v->type == VHD_FIXED) {
		res->allocated_clusters = 1;
		return 0;
	}
	sorted = malloc((size_t)MAX(v->bat_entries, 1) * 4);
	if (!sorted)
		return -ENOMEM;
	span = v->bitmap_size + (uint64_t)v->block_size;
	for (uint32_t b = 0; b < v->bat_entries; b++) {
		uint64_t h;

		if (v->bat[b] == VHD_UNUSED)
			continue;
		h = block_host(v, b);
		if (h < v->meta_end || h + span > v->footer_off ||
		    (h < v->bat_offset + (uint64_t)v->bat_max * 4 && h + span > v->bat_offset)) {
			check_log(res, "%s: ERROR block %u at %#" PRIx64 " outside the data area", img->path, b, h);
			res->corruptions++;
			continue;
		}
		sorted[n++] = v->bat[b];
	}
	res->allocated_clusters = n;
	pimg_sort_u32(sorted, n);
	for (uint32_t i = 1; i < n; i++) {
		if ((uint64_t)(sorted[i] - sorted[i - 1]) * SECTOR_SIZE < span) {
			check_log(res, "%s: ERROR blocks at sectors %u and %u overlap", img->path, sorted[i - 1], sorted[i]);
			res->corruptions++;
		}
	}
	free(sorted);
	return 0;
}

const struct pimg_format pimg_fmt_vpc = {
	.name = "vpc",
	.create_keys = vpc_create_keys,
	.probe = vpc_probe,
	.open = vpc_open,
	.close = vpc_close,
	.create = vpc_create,
	.block_status = vpc_block_status,
	.read = vpc_read,
	.write = vpc_write,
	.write_zeroes = vpc_write_zeroes,
	.flush = vpc_flush,
	.info = vpc_info,
	.check = vpc_check,
	.resize = vpc_resize,
};
