// SPDX-License-Identifier: MIT
/*
 * qcow2: check and repair.
 *
 * Every host cluster's expected refcount is computed from every structure the
 * format defines: the header cluster (with its extensions), the active L1 table
 * and its L2 tables and data, the refcount table and blocks, the snapshot table
 * and each snapshot's L1/L2 tables, and the bitmap directory, tables and data
 * (while the bitmaps autoclear bit says they are valid, as QEMU counts them).
 * Then the stored refcounts are compared with it.
 *
 * Each finding is one line naming the structure and its offset. Repair only
 * changes refcounts and COPIED flags: leaks (stored > expected) are released only
 * when every structure could be walked, so a table this check could not read
 * never loses its clusters; refcounts that are too low are raised (-r all).
 */
#include "qcow2.h"

#define BT_RESERVED 0xff000000000001feULL

struct check_ctx {
	struct pimg *img;
	struct qcow2 *q;
	uint32_t *ref;       /* expected refcount per host cluster */
	uint64_t nclusters;  /* clusters covered by ref[] */
	struct pimg_check *res;
	uint8_t *l2buf;
	bool incomplete;     /* a table could not be walked: leaks are not repaired */
};

/* One finding: a line (the first 20 of them) and a count. */
static void finding(struct check_ctx *c, bool corruption, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finding(struct check_ctx *c, bool corruption, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	check_log(c->res, "%s: %s", c->img->path, line);
	if (corruption)
		c->res->corruptions++;
	else
		c->res->leaks++;
}

/* Count one reference to every cluster of [off, off + len) for the structure what. */
static void mark(struct check_ctx *c, uint64_t off, uint64_t len, const char *what)
{
	uint64_t first, last;

	if (!len)
		return;
	first = off >> c->q->cluster_bits;
	last = (off + len - 1) >> c->q->cluster_bits;
	if (last >= c->nclusters) {
		finding(c, true, "ERROR %s at %#" PRIx64 " (%" PRIu64 " bytes) extends beyond the end of the file",
			what, off, len);
		return;
	}
	for (uint64_t i = first; i <= last; i++)
		if (c->ref[i] != UINT32_MAX)
			c->ref[i]++;
}

/* Walk one L1 table (label: "active" or "snapshot N") and its L2 tables. */
static void check_l1(struct check_ctx *c, const uint64_t *l1, uint32_t l1_size, bool active, const char *label)
{
	struct pimg *img = c->img;
	struct qcow2 *q = c->q;
	uint64_t cs = q->cluster_size;

	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2o = l1[i] & QCOW2_OFFSET_MASK;
		const char *why;

		if (!l2o)
			continue;
		why = qcow2_table_fault(q, img->file->size, l2o, cs);
		if (why) {
			finding(c, true, "ERROR %s L1 entry %u: L2 table at %#" PRIx64 " %s", label, i, l2o, why);
			c->incomplete = true;
			continue;
		}
		mark(c, l2o, cs, "L2 table");
		if (pfile_pread(img->file, c->l2buf, cs, l2o, true)) {
			finding(c, true, "ERROR %s L1 entry %u: cannot read the L2 table at %#" PRIx64, label, i, l2o);
			c->res->check_errors = true;
			c->incomplete = true;
			continue;
		}
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			const uint8_t *p = c->l2buf + j * q->l2_entry_size;
			uint64_t e = ld_be64(p), bm = q->extl2 ? ld_be64(p + 8) : 0, at = l2o + j * q->l2_entry_size;

			if (e & QCOW2_COMPRESSED) {
				uint64_t o, end;

				qcow2_compressed_range(q, e, &o, &end);
				if (bm)
					finding(c, true, "ERROR %s L2 entry at %#" PRIx64 ": compressed cluster with a subcluster bitmap %#" PRIx64,
						label, at, bm);
				mark(c, o & ~(cs - 1), end - (o & ~(cs - 1)), "compressed cluster");
				if (active)
					c->res->allocated_clusters++;
				continue;
			}
			if (q->extl2 && (bm & (bm >> 32) & 0xffffffffULL))
				finding(c, true, "ERROR %s L2 entry at %#" PRIx64 ": subclusters both allocated and zero (bitmap %#" PRIx64 ")",
					label, at, bm);
			if (!(e & QCOW2_OFFSET_MASK)) {
				if (q->extl2 && (bm & 0xffffffffULL))
					finding(c, true, "ERROR %s L2 entry at %#" PRIx64 ": allocated subclusters without a cluster",
						label, at);
				continue;
			}
			uint64_t h = e & QCOW2_OFFSET_MASK;

			if (h & (cs - 1)) {
				finding(c, true, "ERROR %s L2 entry at %#" PRIx64 ": data cluster offset %#" PRIx64 " is not aligned",
					label, at, h);
				continue;
			}
			if ((h >> q->cluster_bits) >= c->nclusters) {
				finding(c, true, "ERROR %s L2 entry at %#" PRIx64 ": data cluster %#" PRIx64 " lies beyond the end of the file",
					label, at, h);
				continue;
			}
			mark(c, h, cs, "data cluster");
			if (active) {
				c->res->allocated_clusters++;
				if (h + cs > c->res->image_end_offset)
					c->res->image_end_offset = h + cs;
			}
		}
	}
}

static void check_snapshots(struct check_ctx *c)
{
	struct qcow2 *q = c->q;
	char label[48];

	if (!q->nb_snapshots)
		return;
	mark(c, q->snapshots_offset, q->snapshots_size, "snapshot table");
	for (uint32_t s = 0; s < q->nb_snapshots; s++) {
		const struct qcow2_snapshot *sn = &q->snaps[s];
		uint64_t *l1 = NULL;
		const char *why;

		snprintf(label, sizeof(label), "snapshot %u", s);
		why = sn->l1_size > QCOW2_MAX_L1_ENTRIES ? "is larger than 32 MiB"
		      : qcow2_table_fault(q, c->img->file->size, sn->l1_offset, (uint64_t)sn->l1_size * 8);
		if (why) {
			finding(c, true, "ERROR snapshot %u ('%.64s'): L1 table at %#" PRIx64 " (%u entries) %s", s, sn->name,
				sn->l1_offset, sn->l1_size, why);
			c->incomplete = true;
			continue;
		}
		mark(c, sn->l1_offset, (uint64_t)sn->l1_size * 8, "snapshot L1 table");
		if (qcow2_load_table(c->img, sn->l1_offset, sn->l1_size, &l1)) {
			c->res->check_errors = true;
			c->incomplete = true;
			continue;
		}
		check_l1(c, l1, sn->l1_size, false, label);
		free(l1);
	}
}

static void check_bitmaps(struct check_ctx *c)
{
	struct qcow2 *q = c->q;
	uint64_t cs = q->cluster_size;

	if (q->bm_error) {
		finding(c, true, "ERROR bitmaps: %s", q->bm_error);
		c->incomplete = true;
		return;
	}
	if (!q->nb_bitmaps)
		return;
	mark(c, q->bm_dir_offset, q->bm_dir_size, "bitmap directory");
	for (uint32_t i = 0; i < q->nb_bitmaps; i++) {
		const struct qcow2_bitmap *b = &q->bitmaps[i];
		uint64_t *t = NULL, need;
		const char *why;

		if (b->type != 1 || b->gran_bits < 9 || b->gran_bits > 31 || (b->flags & ~7u)) {
			finding(c, true, "ERROR bitmap '%.64s' (directory entry at %#" PRIx64 "): bad type %u, granularity 2^%u or flags %#x",
				b->name, b->dir_off, b->type, b->gran_bits, b->flags);
		}
		need = qcow2_bitmap_table_need(q, c->img->size, b->gran_bits);
		why = b->table_size != need ? "does not match the virtual size"
		      : qcow2_table_fault(q, c->img->file->size, b->table_offset, (uint64_t)b->table_size * 8);
		if (why) {
			finding(c, true, "ERROR bitmap '%.64s': table at %#" PRIx64 " (%u entries) %s", b->name,
				b->table_offset, b->table_size, why);
			c->incomplete = true;
			continue;
		}
		mark(c, b->table_offset, (uint64_t)b->table_size * 8, "bitmap table");
		if (qcow2_load_table(c->img, b->table_offset, b->table_size, &t)) {
			c->res->check_errors = true;
			c->incomplete = true;
			continue;
		}
		for (uint32_t j = 0; j < b->table_size; j++) {
			uint64_t e = t[j], o = e & QCOW2_OFFSET_MASK;

			if ((e & BT_RESERVED) || (o && (e & 1)) || (o & (cs - 1))) {
				finding(c, true, "ERROR bitmap '%.64s': table entry %u at %#" PRIx64 " is invalid (%#" PRIx64 ")",
					b->name, j, b->table_offset + (uint64_t)j * 8, e);
				continue;
			}
			if (o)
				mark(c, o, cs, "bitmap data cluster");
		}
		free(t);
	}
}

/* COPIED must be set exactly where the refcount is 1 (active L1 and its L2 tables). */
static int check_copied(struct check_ctx *c, const uint64_t *l1, uint32_t l1_size, bool fix)
{
	struct pimg *img = c->img;
	struct qcow2 *q = c->q;
	uint64_t cs = q->cluster_size, rc;
	int ret;

	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2o = l1[i] & QCOW2_OFFSET_MASK;
		bool dirty = false;

		if (!l2o || qcow2_table_fault(q, img->file->size, l2o, cs))
			continue;
		ret = qcow2_refcount_get(img, l2o, &rc);
		if (ret)
			continue;
		if ((rc == 1) != !!(l1[i] & QCOW2_COPIED)) {
			finding(c, true, "ERROR OFLAG_COPIED L2 table at %#" PRIx64 ": L1 entry %u=%#" PRIx64 " refcount=%" PRIu64,
				l2o, i, l1[i], rc);
			if (fix) {
				uint8_t b[8];

				st_be64(b, rc == 1 ? l1[i] | QCOW2_COPIED : l1[i] & ~QCOW2_COPIED);
				ret = pfile_pwrite(img->file, b, 8, q->l1_offset + (uint64_t)i * 8);
				if (ret)
					return ret;
				if (i < q->l1_mem)
					q->l1[i] = ld_be64(b);
				c->res->corruptions_fixed++;
			}
		}
		if (pfile_pread(img->file, c->l2buf, cs, l2o, true))
			continue;
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint8_t *p = c->l2buf + j * q->l2_entry_size;
			uint64_t e = ld_be64(p), h = e & QCOW2_OFFSET_MASK;

			if ((e & QCOW2_COMPRESSED) || !h || (h & (cs - 1)))
				continue;
			ret = qcow2_refcount_get(img, h, &rc);
			if (ret || (rc == 1) == !!(e & QCOW2_COPIED))
				continue;
			finding(c, true, "ERROR OFLAG_COPIED data cluster: L2 entry at %#" PRIx64 "=%#" PRIx64 " refcount=%" PRIu64,
				l2o + j * q->l2_entry_size, e, rc);
			if (fix) {
				st_be64(p, rc == 1 ? e | QCOW2_COPIED : e & ~QCOW2_COPIED);
				dirty = true;
				c->res->corruptions_fixed++;
			}
		}
		if (dirty) {
			ret = pfile_pwrite(img->file, c->l2buf, cs, l2o);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* Compare stored refcounts with the expected ones, repairing as asked. */
static int compare_refcounts(struct check_ctx *c, unsigned repair)
{
	struct pimg *img = c->img;
	struct qcow2 *q = c->q;
	uint64_t cs = q->cluster_size, bad_rti = UINT64_MAX;
	bool fix_leaks = (repair & (PIMG_REPAIR_LEAKS | PIMG_REPAIR_ALL)) && !c->incomplete;
	int ret;

	if ((repair & (PIMG_REPAIR_LEAKS | PIMG_REPAIR_ALL)) && c->incomplete)
		log_error("%s: leaked clusters are not freed: a table above could not be walked", img->path);
	for (uint64_t i = 0; i < c->nclusters; i++) {
		uint64_t stored, rti = i / q->rb_entries;

		if (rti == bad_rti)
			continue;
		ret = qcow2_refcount_get(img, i * cs, &stored);
		if (ret) {
			finding(c, true, "ERROR refcount table entry %" PRIu64 ": refcount block at %#" PRIx64 " is invalid", rti,
				rti < q->rt_entries ? q->rt[rti] : 0);
			bad_rti = rti;
			c->incomplete = fix_leaks = false;
			continue;
		}
		if (stored == c->ref[i])
			continue;
		if (stored > c->ref[i]) {
			finding(c, false, "Leaked cluster %" PRIu64 " at %#" PRIx64 " refcount=%" PRIu64 " reference=%u", i,
				i * cs, stored, c->ref[i]);
			if (fix_leaks) {
				ret = qcow2_refcount_add(img, i * cs, -(int)(stored - c->ref[i]), 0);
				if (ret)
					return ret;
				c->res->leaks_fixed++;
			}
		} else {
			finding(c, true, "ERROR cluster %" PRIu64 " at %#" PRIx64 " refcount=%" PRIu64 " reference=%u", i, i * cs,
				stored, c->ref[i]);
			if (repair & PIMG_REPAIR_ALL) {
				ret = qcow2_refcount_add(img, i * cs, (int)(c->ref[i] - stored), 0);
				if (ret)
					return ret;
				c->res->corruptions_fixed++;
			}
		}
	}
	return 0;
}

int qcow2_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, *l1 = NULL;
	struct check_ctx c = { .img = img, .q = q, .res = res };
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
	/* The whole active L1 table, also entries beyond what the virtual size needs. */
	ret = qcow2_load_table(img, q->l1_offset, q->l1_size, &l1);
	if (ret)
		goto out;
	mark(&c, 0, cs, "header");
	mark(&c, q->l1_offset, (uint64_t)q->l1_size * 8, "L1 table");
	mark(&c, q->rt_offset, (uint64_t)q->rt_clusters * cs, "refcount table");
	check_l1(&c, l1, q->l1_size, true, "active");
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t rbo = q->rt[i] & QCOW2_OFFSET_MASK;
		const char *why;

		if (!rbo)
			continue;
		why = qcow2_table_fault(q, img->file->size, rbo, cs);
		if (why) {
			finding(&c, true, "ERROR refcount block %" PRIu64 " at %#" PRIx64 " %s", i, rbo, why);
			continue;
		}
		mark(&c, rbo, cs, "refcount block");
	}
	check_snapshots(&c);
	check_bitmaps(&c);
	ret = compare_refcounts(&c, repair);
	if (!ret && repair)
		ret = qcow2_flush(img);
	if (!ret)
		ret = check_copied(&c, l1, q->l1_size, repair & PIMG_REPAIR_ALL);
	if (!ret && repair)
		ret = pfile_sync(img->file);
	if (ret)
		goto out;
	res->total_clusters = (img->size + cs - 1) / cs;
	if (!res->image_end_offset)
		res->image_end_offset = img->file->size;
	res->image_end_offset = MAX(res->image_end_offset, align_up(img->file->size, cs));
	if ((repair & PIMG_REPAIR_ALL) && (q->incompat & INCOMPAT_DIRTY) && res->corruptions == res->corruptions_fixed) {
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
	free(l1);
	free(c.ref);
	free(c.l2buf);
	return ret;
}
