// SPDX-License-Identifier: MIT
/* qcow2: check (see qcow2.h). */
#include "qcow2.h"

/* ---- check ----------------------------------------------------------------- */

struct check_ctx {
	struct pimg *img;
	uint32_t *ref;       /* expected refcount per host cluster */
	uint64_t nclusters;  /* clusters covered by ref[] */
	struct pimg_check *res;
	uint8_t *l2buf;
};

static void mark(struct check_ctx *c, uint64_t off, uint64_t len)
{
	struct qcow2 *q = c->img->priv;
	uint64_t first = off >> q->cluster_bits, last;

	if (!len)
		return;
	last = (off + len - 1) >> q->cluster_bits;
	for (uint64_t i = first; i <= last; i++) {
		if (i >= c->nclusters) {
			c->res->corruptions++;
			return;
		}
		if (c->ref[i] != UINT32_MAX)
			c->ref[i]++;
	}
}

static void check_l1(struct check_ctx *c, const uint64_t *l1, uint32_t l1_size)
{
	struct pimg *img = c->img;
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size;

	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2o = l1[i] & QCOW2_OFFSET_MASK;

		if (!l2o)
			continue;
		if ((l2o & (cs - 1)) || !range_within(l2o, cs, img->file->size)) {
			check_log(c->res, "%s: ERROR L1 entry %u: L2 table offset %#" PRIx64 " invalid", img->path, i, l2o);
			c->res->corruptions++;
			continue;
		}
		mark(c, l2o, cs);
		if (pfile_pread(img->file, c->l2buf, cs, l2o, true)) {
			c->res->check_errors = true;
			continue;
		}
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint64_t e = ld_be64(c->l2buf + j * 8);

			if (e & QCOW2_COMPRESSED) {
				uint64_t o, end;

				qcow2_compressed_range(q, e, &o, &end);
				if (o >= img->file->size) {
					c->res->corruptions++;
					continue;
				}
				mark(c, o, end - o);
				c->res->allocated_clusters++;
			} else if (e & QCOW2_OFFSET_MASK) {
				uint64_t h = e & QCOW2_OFFSET_MASK;

				if ((h & (cs - 1)) || h >= img->file->size) {
					check_log(c->res, "%s: ERROR L2 entry at %#" PRIx64 ": data offset %#" PRIx64 " invalid",
						  img->path, l2o + j * 8, h);
					c->res->corruptions++;
					continue;
				}
				mark(c, h, cs);
				c->res->allocated_clusters++;
				if (h + cs > c->res->image_end_offset)
					c->res->image_end_offset = h + cs;
			}
		}
	}
}

int qcow2_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, off;
	struct check_ctx c = { .img = img, .res = res };
	int ret = 0;

	c.nclusters = (MAX(img->file->size, q->alloc_end) + cs - 1) / cs;
	if (c.nclusters > (1ULL << 28)) {
		log_error("%s: image too large to check", img->path);
		return -EFBIG;
	}
	ret = qcow2_flush(img);
	if (ret)
		return ret;
	c.ref = calloc(MAX(c.nclusters, 1), sizeof(*c.ref));
	c.l2buf = malloc(cs);
	if (!c.ref || !c.l2buf) {
		ret = -ENOMEM;
		goto out;
	}
	mark(&c, 0, cs);
	mark(&c, q->l1_offset, (uint64_t)q->l1_size * 8);
	mark(&c, q->rt_offset, (uint64_t)q->rt_clusters * cs);
	check_l1(&c, q->l1, q->l1_mem);
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t rbo = q->rt[i] & QCOW2_OFFSET_MASK;

		if (!rbo)
			continue;
		if ((rbo & (cs - 1)) || !range_within(rbo, cs, img->file->size)) {
			check_log(res, "%s: ERROR refcount block %" PRIu64 " offset %#" PRIx64 " invalid", img->path, i, rbo);
			res->corruptions++;
			continue;
		}
		mark(&c, rbo, cs);
	}
	/* Snapshots: their table and their L1 tables keep clusters alive too. */
	off = q->snapshots_offset;
	for (uint32_t s = 0; s < q->nb_snapshots; s++) {
		uint8_t h[40];
		uint64_t sl1o, *sl1 = NULL;
		uint32_t sl1n, len;

		if (pfile_pread(img->file, h, sizeof(h), off, true)) {
			res->corruptions++;
			break;
		}
		sl1o = ld_be64(h);
		sl1n = ld_be32(h + 8);
		len = 40 + ld_be32(h + 36) + ld_be16(h + 12) + ld_be16(h + 14);
		mark(&c, off, len);
		off = align_up(off + len, 8);
		if (sl1n > QCOW2_MAX_L1_ENTRIES || (sl1o & (cs - 1)) ||
		    !range_within(sl1o, (uint64_t)sl1n * 8, img->file->size)) {
			res->corruptions++;
			continue;
		}
		mark(&c, sl1o, (uint64_t)sl1n * 8);
		if (qcow2_load_table(img, sl1o, sl1n, &sl1) == 0) {
			check_l1(&c, sl1, sl1n);
			free(sl1);
		}
	}
	/* Compare with the stored refcounts. */
	for (uint64_t i = 0; i < c.nclusters; i++) {
		uint64_t stored;

		ret = qcow2_refcount_get(img, i * cs, &stored);
		if (ret) {
			res->corruptions++;
			ret = 0;
			continue;
		}
		if (stored == c.ref[i])
			continue;
		if (stored > c.ref[i]) {
			res->leaks++;
			if (repair & (PIMG_REPAIR_LEAKS | PIMG_REPAIR_ALL)) {
				ret = qcow2_refcount_add(img, i * cs, -(int)(stored - c.ref[i]), 0);
				if (ret)
					goto out;
				res->leaks_fixed++;
			}
		} else {
			check_log(res, "%s: ERROR cluster %" PRIu64 " refcount=%" PRIu64 " reference=%u", img->path,
				  i, stored, c.ref[i]);
			res->corruptions++;
			if (repair & PIMG_REPAIR_ALL) {
				ret = qcow2_refcount_add(img, i * cs, (int)(c.ref[i] - stored), 0);
				if (ret)
					goto out;
				res->corruptions_fixed++;
			}
		}
	}
	res->total_clusters = (img->size + cs - 1) / cs;
	if (!res->image_end_offset)
		res->image_end_offset = img->file->size;
	res->image_end_offset = MAX(res->image_end_offset, align_up(img->file->size, cs));
	if (repair)
		ret = qcow2_flush(img);
	if (!ret && (repair & PIMG_REPAIR_ALL) && (q->incompat & INCOMPAT_DIRTY) &&
	    res->corruptions == res->corruptions_fixed) {
		/* Refcounts are right again: the image is clean. */
		uint8_t b[8];

		st_be64(b, q->incompat & ~INCOMPAT_DIRTY);
		ret = pfile_pwrite(img->file, b, sizeof(b), 72);
		if (!ret)
			ret = pfile_sync(img->file);
		if (!ret)
			q->incompat &= ~INCOMPAT_DIRTY;
	}
out:
	free(c.ref);
	free(c.l2buf);
	return ret;
}

