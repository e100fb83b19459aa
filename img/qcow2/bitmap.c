// SPDX-License-Identifier: MIT
/*
 * qcow2: the persistent bitmaps extension (docs/interop/qcow2.txt, "Bitmaps").
 *
 * plinth reads the directory to list the bitmaps (info) and to count their
 * clusters (check), so that a repair never frees them. It does not track writes
 * in them: a normal writable open marks every enabled ("auto") bitmap in_use,
 * which QEMU shows as inconsistent (the bitmap must be removed or cleared
 * before the next incremental backup); disabled bitmaps stay valid, and every
 * cluster stays accounted for. The extension counts only while its autoclear
 * bit is set, as in QEMU; unknown autoclear bits are cleared by a writer.
 *
 * A malformed directory does not stop the image's data from being read: the
 * reason is kept in q->bm_error, check reports it and repair refuses to run.
 */
#include "qcow2.h"

#define BM_ENTRY 24
#define BM_MAX_BITMAPS 65535
#define BM_MAX_DIR_SIZE (1024u * 65535u)
#define BM_MAX_NAME 1023

void qcow2_free_bitmaps(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->nb_bitmaps && q->bitmaps; i++)
		free(q->bitmaps[i].name);
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

/* A writable (not repair) open: enabled bitmaps become in_use, unknown autoclear bits go. */
int qcow2_bitmaps_for_writing(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	uint64_t keep = q->nb_bitmaps ? AUTOCLEAR_BITMAPS : 0;
	bool wrote = false;
	int ret;

	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		struct qcow2_bitmap *b = &q->bitmaps[i];
		uint8_t f[4];

		if (!(b->flags & BM_FLAG_AUTO) || (b->flags & BM_FLAG_IN_USE))
			continue;
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
