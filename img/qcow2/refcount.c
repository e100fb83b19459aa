// SPDX-License-Identifier: MIT
/* qcow2: refcount (see qcow2.h). */
#include "qcow2.h"

/* ---- table cache --------------------------------------------------------- */

int qcow2_cache_init(struct cache *c, unsigned budget, uint32_t cluster_size)
{
	c->budget = budget;
	c->max = budget * 2 + 8;
	c->size = cluster_size;
	c->e = calloc(c->max, sizeof(*c->e)); /* tables are allocated on first use */
	return c->e ? 0 : -ENOMEM;
}

void qcow2_cache_free(struct cache *c)
{
	if (!c->e)
		return;
	for (unsigned i = 0; i < c->max; i++)
		free(c->e[i].data);
	free(c->e);
	c->e = NULL;
}

static void cache_drop(struct cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off == off)
			c->e[i].off = 0;
}

/*
 * Get the table at host offset off: loaded from the file if load, else zeroed
 * (a new table, marked dirty). The pointer stays valid until the next cache_get
 * on the same cache evicts its entry; the most recent entry is never evicted.
 */
int qcow2_cache_get(struct pimg *img, struct cache *c, uint64_t off, bool load, uint8_t **out)
{
	struct qcow2 *q = img->priv;
	struct cache_entry *victim = NULL;
	int ret;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->e[i].off == off) {
			c->e[i].stamp = ++c->tick;
			*out = c->e[i].data;
			return 0;
		}
	}
	for (unsigned i = 0; i < c->n; i++) {
		struct cache_entry *e = &c->e[i];

		if (!e->off) {
			victim = e;
			break;
		}
		if (c->n >= c->budget && !e->dirty && (!victim || e->stamp < victim->stamp))
			victim = e;
	}
	if (!victim) {
		if (c->n >= c->max) {
			log_error("%s: qcow2 metadata cache overflow", img->path);
			return -EIO;
		}
		victim = &c->e[c->n++];
	}
	if (!victim->data) {
		victim->data = malloc(c->size);
		if (!victim->data)
			return -ENOMEM;
	}
	if (load) {
		ret = pfile_pread(img->file, victim->data, q->cluster_size, off, true);
		if (ret) {
			victim->off = 0;
			log_error("%s: cannot read metadata table at offset %" PRIu64 "%s", img->path,
				  off, ret == -EIO ? " (beyond the end of the file?)" : "");
			return ret;
		}
		victim->dirty = false;
	} else {
		memset(victim->data, 0, q->cluster_size);
		victim->dirty = true;
	}
	victim->off = off;
	victim->stamp = ++c->tick;
	*out = victim->data;
	return 0;
}

void qcow2_cache_mark_dirty(struct cache *c, const uint8_t *data)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].data == data)
			c->e[i].dirty = true;
}

static unsigned cache_used(const struct cache *c)
{
	unsigned used = 0;

	for (unsigned i = 0; i < c->n; i++)
		used += c->e[i].off != 0;
	return used;
}

static int cache_write_dirty(struct pimg *img, struct cache *c, bool *wrote)
{
	struct qcow2 *q = img->priv;

	for (unsigned i = 0; i < c->n; i++) {
		struct cache_entry *e = &c->e[i];
		int ret;

		if (!e->off || !e->dirty)
			continue;
		ret = pfile_pwrite(img->file, e->data, q->cluster_size, e->off);
		if (ret)
			return ret;
		e->dirty = false;
		*wrote = true;
	}
	return 0;
}

/* ---- refcounts ----------------------------------------------------------- */

static uint64_t rb_get(const struct qcow2 *q, const uint8_t *rb, uint64_t i)
{
	unsigned bits = 1u << q->refcount_order;

	switch (bits) {
	case 64: return ld_be64(rb + i * 8);
	case 32: return ld_be32(rb + i * 4);
	case 16: return ld_be16(rb + i * 2);
	case 8: return rb[i];
	default: {
		uint64_t bit = i * bits;

		return (rb[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	}
}

static void rb_set(const struct qcow2 *q, uint8_t *rb, uint64_t i, uint64_t v)
{
	unsigned bits = 1u << q->refcount_order;

	switch (bits) {
	case 64: st_be64(rb + i * 8, v); break;
	case 32: st_be32(rb + i * 4, (uint32_t)v); break;
	case 16: st_be16(rb + i * 2, (uint16_t)v); break;
	case 8: rb[i] = (uint8_t)v; break;
	default: {
		uint64_t bit = i * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));

		rb[bit / 8] = (uint8_t)((rb[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
	}
	}
}

static uint64_t refcount_max(const struct qcow2 *q)
{
	return q->refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << q->refcount_order)) - 1;
}

static bool rt_entry_ok(struct pimg *img, uint64_t rbo)
{
	struct qcow2 *q = img->priv;

	return !(rbo & (q->cluster_size - 1)) && rbo < q->alloc_end;
}

/* The refcount block of refcount table entry rti (*rb NULL when it has none). */
static int load_rb(struct pimg *img, uint64_t rti, uint8_t **rb)
{
	struct qcow2 *q = img->priv;
	uint64_t rbo;

	*rb = NULL;
	if (rti >= q->rt_entries)
		return 0;
	rbo = q->rt[rti] & QCOW2_OFFSET_MASK;
	if (!rbo)
		return 0;
	if (!rt_entry_ok(img, rbo))
		return -EIO;
	return qcow2_cache_get(img, &q->rbc, rbo, true, rb);
}

int qcow2_refcount_get(struct pimg *img, uint64_t host, uint64_t *out)
{
	struct qcow2 *q = img->priv;
	uint64_t ci = host >> q->cluster_bits;
	uint8_t *rb;
	int ret = load_rb(img, ci / q->rb_entries, &rb);

	*out = ret || !rb ? 0 : rb_get(q, rb, ci % q->rb_entries);
	return ret;
}


/* Move the refcount table to the end of the file with room for at least need entries. */
static int grow_refcount_table(struct pimg *img, uint64_t need, unsigned depth)
{
	struct qcow2 *q = img->priv;
	uint64_t entries, clusters, cs = q->cluster_size, new_off, *nrt;
	int ret;

	entries = MAX(need, q->rt_entries * 2);
	/* Room for the table itself and the refcount blocks it may need. */
	entries += (64 * cs / q->rb_entries / cs) + 16;
	clusters = (entries * 8 + cs - 1) / cs;
	if (clusters * cs > QCOW2_MAX_RT_BYTES) {
		log_error("%s: refcount table would exceed %u bytes", img->path, QCOW2_MAX_RT_BYTES);
		return -EFBIG;
	}
	entries = clusters * cs / 8;
	nrt = calloc(entries, sizeof(*nrt));
	if (!nrt)
		return -ENOMEM;
	memcpy(nrt, q->rt, q->rt_entries * sizeof(*nrt));
	new_off = q->alloc_end;
	q->alloc_end += clusters * cs;

	/* The superseded table is freed once the header points at the new one. */
	for (uint64_t i = 0; i < q->rt_clusters; i++) {
		if (q->n_fah == q->cap_fah) {
			size_t cap = q->cap_fah ? q->cap_fah * 2 : 16;
			uint64_t *n = realloc(q->frees_after_header, cap * sizeof(*n));

			if (!n) {
				free(nrt);
				return -ENOMEM;
			}
			q->frees_after_header = n;
			q->cap_fah = cap;
		}
		q->frees_after_header[q->n_fah++] = q->rt_offset + i * cs;
	}
	free(q->rt);
	q->rt = nrt;
	q->rt_entries = entries;
	q->rt_offset = new_off;
	q->rt_clusters = (uint32_t)clusters;
	q->rt_dirty = q->header_dirty = true;
	for (uint64_t i = 0; i < clusters; i++) {
		ret = qcow2_refcount_add(img, new_off + i * cs, 1, depth + 1);
		if (ret)
			return ret;
	}
	return 0;
}

int qcow2_refcount_add(struct pimg *img, uint64_t host, int delta, unsigned depth)
{
	struct qcow2 *q = img->priv;
	uint64_t ci = host >> q->cluster_bits, rti = ci / q->rb_entries, rbo, v;
	uint8_t *rb;
	int ret;

	if (depth > 8) {
		log_error("%s: refcount update recursion too deep", img->path);
		return -EIO;
	}
	if (rti >= q->rt_entries) {
		if (delta < 0)
			return -EIO;
		ret = grow_refcount_table(img, rti + 1, depth);
		if (ret)
			return ret;
	}
	rbo = q->rt[rti] & QCOW2_OFFSET_MASK;
	if (!rbo) {
		if (delta < 0) {
			log_error("%s: freeing a cluster without refcount block", img->path);
			return -EIO;
		}
		rbo = q->alloc_end;
		q->alloc_end += q->cluster_size;
		ret = qcow2_cache_get(img, &q->rbc, rbo, false, &rb);
		if (ret)
			return ret;
		q->rt[rti] = rbo;
		q->rt_dirty = true;
		ret = qcow2_refcount_add(img, rbo, 1, depth + 1);
		if (ret)
			return ret;
	} else if (!rt_entry_ok(img, rbo)) {
		log_error("%s: corrupt refcount table entry %" PRIu64, img->path, rti);
		return -EIO;
	}
	ret = qcow2_cache_get(img, &q->rbc, rbo, true, &rb);
	if (ret)
		return ret;
	v = rb_get(q, rb, ci % q->rb_entries);
	if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && v > refcount_max(q) - (uint64_t)delta)) {
		log_error("%s: refcount of cluster at %" PRIu64 " out of range", img->path, host);
		return -EIO;
	}
	rb_set(q, rb, ci % q->rb_entries, v + (uint64_t)(int64_t)delta);
	qcow2_cache_mark_dirty(&q->rbc, rb);
	return 0;
}

int qcow2_alloc_clusters(struct pimg *img, uint64_t n, uint64_t *out)
{
	struct qcow2 *q = img->priv;
	uint64_t start = q->alloc_end, bytes;
	int ret;

	if (mul_overflow(n, (uint64_t)q->cluster_size, &bytes) ||
	    start + bytes >= QCOW2_MAX_HOST_OFFSET) {
		log_error("%s: image file would exceed the qcow2 offset limit", img->path);
		return -EFBIG;
	}
	q->alloc_end += bytes;
	for (uint64_t i = 0; i < n; i++) {
		ret = qcow2_refcount_add(img, start + i * q->cluster_size, 1, 0);
		if (ret)
			return ret;
	}
	*out = start;
	return 0;
}

/* The first cluster at or after q->free_hint with refcount 0, below alloc_end; 0 if none. */
static int find_free(struct pimg *img, uint64_t *out)
{
	struct qcow2 *q = img->priv;
	uint64_t end = q->alloc_end >> q->cluster_bits, ci = MAX(q->free_hint, 1);
	int ret;

	*out = 0;
	while (ci < end) {
		uint64_t rti = ci / q->rb_entries, last;
		uint8_t *rb;

		if (rti >= q->rt_entries)
			break;
		ret = load_rb(img, rti, &rb);
		if (ret)
			return ret;
		if (!rb) {
			q->free_hint = ci;
			*out = ci << q->cluster_bits; /* no refcount block: every refcount is 0 */
			return 0;
		}
		last = MIN(end, (rti + 1) * q->rb_entries);
		for (; ci < last; ci++) {
			if (!rb_get(q, rb, ci % q->rb_entries)) {
				q->free_hint = ci;
				*out = ci << q->cluster_bits;
				return 0;
			}
		}
	}
	q->free_hint = ci;
	return 0;
}

int qcow2_alloc_data_cluster(struct pimg *img, uint64_t *out)
{
	struct qcow2 *q = img->priv;
	uint64_t host;
	int ret;

	if (!q->reuse)
		return qcow2_alloc_clusters(img, 1, out);
	ret = find_free(img, &host);
	if (!ret && !host && q->n_frees && q->alloc_end >= q->grow_limit) {
		/* At the bound: make the pending frees reusable rather than grow. */
		ret = qcow2_flush(img);
		if (!ret)
			ret = find_free(img, &host);
	}
	if (ret)
		return ret;
	if (!host)
		return qcow2_alloc_clusters(img, 1, out);
	ret = qcow2_refcount_add(img, host, 1, 0);
	if (ret)
		return ret;
	q->free_hint = (host >> q->cluster_bits) + 1;
	*out = host;
	return 0;
}

int qcow2_push_free(struct qcow2 *q, uint64_t host)
{
	if (q->n_frees == q->cap_frees) {
		size_t cap = q->cap_frees ? q->cap_frees * 2 : 64;
		uint64_t *n = realloc(q->frees, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		q->frees = n;
		q->cap_frees = cap;
	}
	q->frees[q->n_frees++] = host;
	return 0;
}

/* Compressed data: [offset, end) in host bytes. */
void qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *end)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t nsec = ((entry >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;

	*off = entry & ((1ULL << x) - 1);
	*end = (*off & ~511ULL) + nsec * 512;
}

/* Queue the release of whatever host clusters an L2 entry held (applied in step 6). */
int qcow2_release_entry(struct pimg *img, uint64_t entry)
{
	struct qcow2 *q = img->priv;
	int ret;

	if (entry & QCOW2_COMPRESSED) {
		uint64_t off, end;

		qcow2_compressed_range(q, entry, &off, &end);
		for (uint64_t c = off & ~(uint64_t)(q->cluster_size - 1); c < end; c += q->cluster_size) {
			ret = qcow2_push_free(q, c);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (entry & QCOW2_OFFSET_MASK)
		return qcow2_push_free(q, entry & QCOW2_OFFSET_MASK);
	return 0;
}

/* ---- flush: the metadata update order at the top of the file ------------- */

int qcow2_write_l1(struct pimg *img, uint64_t off, const uint64_t *l1, uint32_t n)
{
	uint64_t *be = malloc((size_t)MAX(n, 1) * 8);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		be[i] = htobe64(l1[i]);
	ret = pfile_pwrite(img->file, be, (size_t)n * 8, off);
	free(be);
	return ret;
}

static int write_rt(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	size_t bytes = (size_t)q->rt_clusters * q->cluster_size;
	uint64_t *be = calloc(1, bytes);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < q->rt_entries; i++)
		be[i] = htobe64(q->rt[i]);
	ret = pfile_pwrite(img->file, be, bytes, q->rt_offset);
	free(be);
	return ret;
}

/* Free clusters at the end of the file are cut off (after step 6: nothing references them). */
static int trim_tail(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, end = q->alloc_end, rc;
	int ret;

	if (!q->reuse)
		return 0;
	while (end > cs) {
		ret = qcow2_refcount_get(img, end - cs, &rc);
		if (ret)
			return ret;
		if (rc)
			break;
		end -= cs;
	}
	if (end == q->alloc_end)
		return 0;
	q->alloc_end = end;
	q->free_hint = MIN(q->free_hint, end >> q->cluster_bits);
	if (end >= img->file->size)
		return 0;
	ret = pfile_sync(img->file); /* the refcounts of step 6 first */
	return ret ? ret : pfile_truncate(img->file, end);
}

int qcow2_flush(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	bool wrote = false;
	int ret;

	if (!q->writable)
		return 0;
	/* 1-2: refcounts (and data written so far) durable */
	ret = cache_write_dirty(img, &q->rbc, &wrote);
	if (ret)
		return ret;
	if (q->rt_dirty) {
		ret = write_rt(img);
		if (ret)
			return ret;
		q->rt_dirty = false;
		wrote = true;
	}
	if (wrote) {
		ret = pfile_sync(img->file);
		if (ret)
			return ret;
	}
	/* 3: header points at the moved refcount table */
	if (q->header_dirty) {
		uint8_t h[12];

		st_be64(h, q->rt_offset);
		st_be32(h + 8, q->rt_clusters);
		ret = pfile_pwrite(img->file, h, sizeof(h), 48);
		if (!ret)
			ret = pfile_sync(img->file);
		if (ret)
			return ret;
		q->header_dirty = false;
		for (size_t i = 0; i < q->n_fah; i++) {
			ret = qcow2_push_free(q, q->frees_after_header[i]);
			if (ret)
				return ret;
		}
		q->n_fah = 0;
	}
	/* 4: L2 tables */
	wrote = false;
	ret = cache_write_dirty(img, &q->l2c, &wrote);
	if (ret)
		return ret;
	if (wrote) {
		ret = pfile_sync(img->file);
		if (ret)
			return ret;
	}
	/* 5: L1 table */
	if (q->l1_dirty) {
		ret = qcow2_write_l1(img, q->l1_offset, q->l1, q->l1_size);
		if (!ret)
			ret = pfile_sync(img->file);
		if (ret)
			return ret;
		q->l1_dirty = false;
	}
	/* 6: pending frees, now that nothing on disk references them */
	if (q->n_frees) {
		for (size_t i = 0; i < q->n_frees; i++) {
			uint64_t host = q->frees[i], left;

			cache_drop(&q->l2c, host);
			ret = qcow2_refcount_add(img, host, -1, 0);
			if (!ret)
				ret = qcow2_refcount_get(img, host, &left);
			if (ret)
				return ret;
			if (left)
				continue;
			/* Free for reuse; give the space back to the host filesystem (best effort). */
			q->free_hint = MIN(q->free_hint, host >> q->cluster_bits);
			if (q->punch)
				pfile_punch(img->file, host, q->cluster_size);
		}
		q->n_frees = 0;
		q->comp_cursor = 0; /* its cluster may have been freed */
		ret = trim_tail(img);
		if (ret)
			return ret;
		wrote = false;
		ret = cache_write_dirty(img, &q->rbc, &wrote);
		if (ret)
			return ret;
		if (q->rt_dirty) { /* cannot happen for frees, kept for safety */
			ret = write_rt(img);
			if (ret)
				return ret;
			q->rt_dirty = false;
		}
	}
	return 0;
}

/* End of a modifying request: keep the caches within budget (flush if not). */
int qcow2_trim_caches(struct pimg *img)
{
	struct qcow2 *q = img->priv;

	/* Pending frees are applied by a flush: bound them (64K clusters, 32 MiB), so that a
	 * guest that discards without flushing cannot grow the file by more than that. */
	if (cache_used(&q->l2c) > q->l2c.budget || cache_used(&q->rbc) > q->rbc.budget ||
	    q->n_frees > 65536 || ((uint64_t)q->n_frees << q->cluster_bits) > 32 * MiB) {
		int ret = qcow2_flush(img);

		if (ret)
			return ret;
		/* Now everything is clean: drop the surplus entries. */
		for (unsigned i = q->l2c.budget; i < q->l2c.n; i++)
			q->l2c.e[i].off = 0;
		for (unsigned i = q->rbc.budget; i < q->rbc.n; i++)
			q->rbc.e[i].off = 0;
	}
	return 0;
}
