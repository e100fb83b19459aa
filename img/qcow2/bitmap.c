// SPDX-License-Identifier: MIT
/*
 * qcow2: the persistent bitmaps extension (docs/interop/qcow2.txt, "Bitmaps").
 *
 * plinth reads the directory to list the bitmaps (info) and to count their
 * clusters (check), so that a repair never frees them. A normal writable open
 * tracks guest writes in every enabled ("auto") bitmap, as QEMU does: the
 * bitmap is loaded into memory (at most BM_MAX_MEM in all) and marked in_use on
 * disk; each write, zeroing and discard sets its bits; a clean close writes the
 * bits back and clears in_use. Order at close: data clusters written (new ones
 * allocated), flush (refcounts durable), tables rewritten, fdatasync, in_use
 * cleared, fdatasync, then the replaced clusters freed. A crash before the end
 * leaves in_use set: QEMU then reports the bitmap inconsistent, never wrong.
 * An enabled bitmap that cannot be tracked (malformed, too large) is only
 * marked in_use. Disabled bitmaps stay as they are. The extension counts only
 * while its autoclear bit is set, as in QEMU; unknown autoclear bits are
 * cleared by a writer.
 *
 * A malformed directory does not stop the image's data from being read: the
 * reason is kept in q->bm_error, check reports it and repair refuses to run.
 */
#include "qcow2.h"

#define BM_ENTRY 24
#define BM_MAX_BITMAPS 65535
#define BM_MAX_DIR_SIZE (1024u * 65535u)
#define BM_MAX_NAME 1023
#define BM_MAX_MEM (64u * 1024 * 1024) /* tracked bitmaps in memory, all together */

void qcow2_free_bitmaps(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->nb_bitmaps && q->bitmaps; i++) {
		free(q->bitmaps[i].name);
		free(q->bitmaps[i].bits);
		free(q->bitmaps[i].table);
	}
	free(q->bitmaps);
	q->bitmaps = NULL;
	free(q->bm_error);
	q->bm_error = NULL;
}

/* The extension's payload (len bytes at p): remember where the directory is. */
int qcow2_bitmap_ext(struct pimg *img, const uint8_t *p, uint32_t len)
{
	struct qcow2 *q = img->priv;

	if (len < 24) {
		log_error("%s: bitmaps header extension too short (%u bytes)", img->path, len);
		return -EINVAL;
	}
	q->bm_ext = true;
	q->bm_count = ld_be32(p);
	q->bm_dir_size = ld_be64(p + 8);
	q->bm_dir_offset = ld_be64(p + 16);
	return 0;
}

static int bm_fail(struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bm_fail(struct qcow2 *q, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(q->bm_error);
	q->bm_error = s;
	return s ? 0 : -ENOMEM;
}

/* Parse the directory named by the extension; structural faults go to q->bm_error. */
int qcow2_read_bitmaps(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, off = 0;
	uint8_t *dir;
	uint32_t i;
	int ret = 0;

	if (!q->bm_ext || !(q->autoclear & AUTOCLEAR_BITMAPS))
		return 0;
	if (q->version < 3)
		return bm_fail(q, "bitmaps extension in a version 2 image");
	if (!q->bm_count || q->bm_count > BM_MAX_BITMAPS)
		return bm_fail(q, "bitmaps extension with %u bitmaps (1 to %u)", q->bm_count, BM_MAX_BITMAPS);
	if (q->bm_dir_size < BM_ENTRY || q->bm_dir_size > BM_MAX_DIR_SIZE || (q->bm_dir_offset & (cs - 1)) ||
	    q->bm_dir_offset < cs || !range_within(q->bm_dir_offset, q->bm_dir_size, img->file->size))
		return bm_fail(q, "bitmap directory at %#" PRIx64 " (%" PRIu64 " bytes) lies outside the file",
			       q->bm_dir_offset, q->bm_dir_size);
	dir = malloc(q->bm_dir_size);
	q->bitmaps = calloc(q->bm_count, sizeof(*q->bitmaps));
	if (!dir || !q->bitmaps) {
		free(dir);
		return -ENOMEM;
	}
	if (pfile_pread(img->file, dir, q->bm_dir_size, q->bm_dir_offset, true)) {
		ret = bm_fail(q, "cannot read the bitmap directory at %#" PRIx64, q->bm_dir_offset);
		goto out;
	}
	for (i = 0; i < q->bm_count; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];
		uint32_t extra;
		uint16_t name_len;

		if (!range_within(off, BM_ENTRY, q->bm_dir_size)) {
			ret = bm_fail(q, "bitmap directory entry %u overruns the directory", i);
			goto out;
		}
		b->table_offset = ld_be64(dir + off);
		b->table_size = ld_be32(dir + off + 8);
		b->flags = ld_be32(dir + off + 12);
		b->type = dir[off + 16];
		b->gran_bits = dir[off + 17];
		name_len = ld_be16(dir + off + 18);
		extra = ld_be32(dir + off + 20);
		if (!name_len || name_len > BM_MAX_NAME ||
		    !range_within(off + BM_ENTRY, (uint64_t)extra + name_len, q->bm_dir_size)) {
			ret = bm_fail(q, "bitmap directory entry %u at %#" PRIx64 " has a bad name or extra data size",
				      i, q->bm_dir_offset + off);
			goto out;
		}
		b->name = strndup((const char *)dir + off + BM_ENTRY + extra, name_len);
		if (!b->name) {
			ret = -ENOMEM;
			goto out;
		}
		b->dir_off = q->bm_dir_offset + off;
		off = align_up(off + BM_ENTRY + extra + name_len, 8);
	}
	q->nb_bitmaps = q->bm_count;
out:
	if (!q->nb_bitmaps) {
		for (uint32_t j = 0; j < q->bm_count; j++)
			free(q->bitmaps[j].name);
		free(q->bitmaps);
		q->bitmaps = NULL;
	}
	free(dir);
	return ret;
}

int qcow2_bitmap_info(struct pimg *img, struct pimg_info *info)
{
	struct qcow2 *q = img->priv;

	if (!q->nb_bitmaps)
		return 0;
	info->bitmaps = calloc(q->nb_bitmaps, sizeof(*info->bitmaps));
	if (!info->bitmaps)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		const struct qcow2_bitmap *b = &q->bitmaps[i];
		struct pimg_bitmap_info *o = &info->bitmaps[i];

		snprintf(o->name, sizeof(o->name), "%s", b->name);
		o->granularity = b->gran_bits < 64 ? 1ULL << b->gran_bits : 0;
		o->in_use = b->flags & BM_FLAG_IN_USE;
		o->auto_ = b->flags & BM_FLAG_AUTO;
	}
	info->n_bitmaps = q->nb_bitmaps;
	return 0;
}

/* Load bitmap b into memory for tracking; false (and nothing kept) if it is not sound. */
static bool bm_load(struct pimg *img, struct qcow2_bitmap *b, uint64_t *mem_left)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, need;

	if (b->type != 1 || b->gran_bits < 9 || b->gran_bits > 31 || (b->flags & ~7u))
		return false;
	b->nbits = (img->size + (1ULL << b->gran_bits) - 1) >> b->gran_bits;
	need = qcow2_bitmap_table_need(q, img->size, b->gran_bits);
	if (b->table_size != need || need * cs > *mem_left ||
	    qcow2_table_fault(q, img->file->size, b->table_offset, (uint64_t)b->table_size * 8))
		return false;
	b->bits = calloc(1, MAX(need * cs, 1));
	if (!b->bits || qcow2_load_table(img, b->table_offset, b->table_size, &b->table))
		goto out_free;
	for (uint32_t j = 0; j < b->table_size; j++) {
		uint64_t e = b->table[j], o = e & QCOW2_OFFSET_MASK;

		if ((e & 0xff000000000001feULL) || (o && (e & 1)) || (o & (cs - 1)))
			goto out_free;
		if (o && qcow2_table_fault(q, img->file->size, o, cs))
			goto out_free;
		if (o && pfile_pread(img->file, b->bits + (uint64_t)j * cs, cs, o, false))
			goto out_free;
		if (!o && (e & 1))
			memset(b->bits + (uint64_t)j * cs, 0xff, cs);
	}
	*mem_left -= need * cs;
	return true;
out_free:
	free(b->bits);
	free(b->table);
	b->bits = NULL;
	b->table = NULL;
	return false;
}

/* A writable (not repair) open: enabled bitmaps are tracked and in_use, unknown autoclear bits go. */
int qcow2_bitmaps_for_writing(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	uint64_t keep = q->nb_bitmaps ? AUTOCLEAR_BITMAPS : 0, mem_left = BM_MAX_MEM;
	bool wrote = false;
	int ret;

	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];
		uint8_t f[4];

		if (!(b->flags & BM_FLAG_AUTO) || (b->flags & BM_FLAG_IN_USE))
			continue;
		if (!bm_load(img, b, &mem_left))
			log_warn("%s: bitmap '%s' cannot be tracked; marked in-use", img->path, b->name);
		b->flags |= BM_FLAG_IN_USE;
		st_be32(f, b->flags);
		ret = pfile_pwrite(img->file, f, sizeof(f), b->dir_off + 12);
		if (ret)
			return ret;
		wrote = true;
	}
	if ((q->autoclear & ~keep) != 0) {
		uint8_t a[8];

		st_be64(a, q->autoclear & keep);
		ret = pfile_pwrite(img->file, a, sizeof(a), 88);
		if (ret)
			return ret;
		q->autoclear &= keep;
		wrote = true;
		if (!keep)
			qcow2_free_bitmaps(q);
	}
	return wrote ? pfile_sync(img->file) : 0;
}

void qcow2_bitmaps_mark(struct qcow2 *q, uint64_t off, uint64_t len)
{
	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];
		uint64_t first, last;

		if (!b->bits || !len)
			continue;
		first = off >> b->gran_bits;
		last = MIN((off + len - 1) >> b->gran_bits, b->nbits - 1);
		for (uint64_t bit = first; bit <= last;) {
			if (!(bit & 7) && bit + 8 <= last + 1) {
				uint64_t n = (last + 1 - bit) / 8;

				memset(b->bits + bit / 8, 0xff, n);
				bit += n * 8;
			} else {
				b->bits[bit / 8] |= (uint8_t)(1u << (bit & 7));
				bit++;
			}
		}
	}
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/* Write bitmap b's bits into its data clusters and its table (in place: it is in_use). */
static int bm_write(struct pimg *img, struct qcow2_bitmap *b)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, *be;
	bool changed = false;
	int ret;

	for (uint32_t j = 0; j < b->table_size; j++) {
		uint64_t old = b->table[j], o = old & QCOW2_OFFSET_MASK, rc = 0, e;
		const uint8_t *p = b->bits + (uint64_t)j * cs;

		if (all_zero(p, cs)) {
			e = 0;
		} else {
			if (o)
				ret = qcow2_refcount_get(img, o, &rc);
			if (o && !ret && rc == 1) {
				e = o;
			} else {
				ret = qcow2_alloc_clusters(img, 1, &e);
				if (ret)
					return ret;
			}
			ret = pfile_pwrite(img->file, p, cs, e);
			if (ret)
				return ret;
		}
		if (e == old)
			continue;
		if (o && (e & QCOW2_OFFSET_MASK) != o) {
			ret = qcow2_push_free(q, o);
			if (ret)
				return ret;
		}
		b->table[j] = e;
		changed = true;
	}
	if (!changed)
		return 0;
	ret = qcow2_flush(img); /* new clusters' refcounts and data durable before the table */
	if (ret)
		return ret;
	be = malloc((size_t)b->table_size * 8 + 8);
	if (!be)
		return -ENOMEM;
	for (uint32_t j = 0; j < b->table_size; j++)
		be[j] = htobe64(b->table[j]);
	ret = pfile_pwrite(img->file, be, (size_t)b->table_size * 8, b->table_offset);
	free(be);
	return ret;
}

int qcow2_bitmaps_store(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	int ret = qcow2_flush(img);

	for (uint32_t i = 0; !ret && i < q->nb_bitmaps; i++)
		if (q->bitmaps[i].bits)
			ret = bm_write(img, &q->bitmaps[i]);
	if (!ret)
		ret = pfile_sync(img->file);
	for (uint32_t i = 0; !ret && i < q->nb_bitmaps; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];
		uint8_t f[4];

		if (!b->bits)
			continue;
		st_be32(f, b->flags & ~BM_FLAG_IN_USE);
		ret = pfile_pwrite(img->file, f, sizeof(f), b->dir_off + 12);
	}
	if (!ret)
		ret = pfile_sync(img->file);
	if (!ret)
		ret = qcow2_flush(img); /* replaced clusters freed, now that no table names them */
	if (!ret)
		ret = pfile_sync(img->file);
	if (ret)
		log_error("%s: could not save the dirty bitmaps (%s); they stay marked in-use", img->path,
			  strerror(-ret));
	return ret;
}

/* Bitmap table entries (clusters of bits) a bitmap of granularity 2^gran_bits needs for size. */
uint64_t qcow2_bitmap_table_need(const struct qcow2 *q, uint64_t size, uint8_t gran_bits)
{
	uint64_t nbits = gran_bits < 64 ? (size + (1ULL << gran_bits) - 1) >> gran_bits : 1;

	return ((nbits + 7) / 8 + q->cluster_size - 1) / q->cluster_size;
}

int qcow2_bitmaps_resize(struct pimg *img, uint64_t size, bool commit)
{
	struct qcow2 *q = img->priv;

	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];

		if (!commit && qcow2_bitmap_table_need(q, size, b->gran_bits) != b->table_size) {
			log_error("%s: bitmap '%s' would need a larger bitmap table; remove it or resize with qemu-img",
				  img->path, b->name);
			return -ENOTSUP;
		}
		if (commit && b->bits)
			b->nbits = (size + (1ULL << b->gran_bits) - 1) >> b->gran_bits; /* new bits are clean */
	}
	return 0;
}
