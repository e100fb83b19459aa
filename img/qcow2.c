// SPDX-License-Identifier: MIT
/*
 * qcow2 (QEMU copy-on-write v2/v3; docs/interop/qcow2.txt).
 *
 * Guest offset -> L1 index -> L2 table (one cluster) -> L2 entry:
 *   0                      unallocated (backing file, or zeros)
 *   bit 0 (v3)             reads as zeros (host offset may be kept or 0)
 *   bits 9..55             host cluster offset; bit 63 COPIED = refcount is 1
 *   bit 62 COMPRESSED      host byte offset + extra 512-byte sectors (deflate/zstd)
 * Host clusters are counted in refcount blocks, found through the refcount table.
 *
 * Support: v3 read/write, v2 read-only; zlib and zstd compressed clusters read,
 * written by pimg_write_compressed; images with internal snapshots, the dirty or
 * corrupt bit, extended L2 entries, external data files or encryption are opened
 * read-only or refused.
 *
 * Invariants (every write path keeps them):
 *  I1. A host cluster is never referenced by an on-disk L1/L2 entry before its
 *      refcount, and (for data) its content, is on stable storage.
 *  I2. A refcount is never decremented on disk before the on-disk L1/L2 entries
 *      that referenced the cluster are gone from stable storage.
 *  I3. Allocation only appends (alloc_end grows); freed clusters are not reused
 *      while the image is open, so a freed-but-still-referenced cluster is never
 *      overwritten.
 *  I4. Data is written in place only to clusters whose L2 entry has COPIED set.
 * Hence after a crash at any point the image reads old or new data for every
 * cluster, and the worst damage is leaked clusters (check reports exit 3,
 * "check -r leaks" repairs it).
 *
 * Metadata update order (qcow2_flush, also run when a cache overflows):
 *   1. write dirty refcount blocks and, if it moved, the refcount table
 *   2. fdatasync                              -- data + refcounts durable (I1)
 *   3. if the refcount table moved: write header fields, fdatasync; the old
 *      table's clusters join the pending frees
 *   4. write dirty L2 tables, fdatasync       -- L2s durable before L1 points at them
 *   5. write the L1 table if dirty, fdatasync
 *   6. apply pending frees (refcount -1), write refcount blocks, fdatasync (I2)
 *
 * State of a cached table:  clean --(modify)--> dirty --(flush step 1/4)--> clean
 * A dirty entry is never evicted; when a cache holds more than its budget the
 * request that filled it ends with a flush, so memory stays bounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "img-internal.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL
#define QCOW2_COPIED (1ULL << 63)
#define QCOW2_COMPRESSED (1ULL << 62)
#define QCOW2_ZERO 1ULL
#define QCOW2_MAX_L1_ENTRIES (4u * 1024 * 1024)   /* 32 MiB of L1, as QEMU */
#define QCOW2_MAX_RT_BYTES (8u * 1024 * 1024)     /* refcount table */
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_HOST_OFFSET (1ULL << 56)

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define COMPAT_LAZY_REFCOUNTS (1ULL << 0)

#define EXT_END 0
#define EXT_BACKING_FMT 0xE2792ACAu
#define EXT_FEATURE_TABLE 0x6803f857u
#define EXT_DATA_FILE 0x44415441u

#define HDR_V2_LEN 72
#define HDR_V3_LEN 104
#define HDR_CREATE_LEN 112

enum { COMP_ZLIB = 0, COMP_ZSTD = 1 };

struct cache_entry {
	uint64_t off;  /* host offset of the table, 0 = free slot */
	uint8_t *data; /* one cluster */
	bool dirty;
	uint64_t stamp;
};

struct cache {
	struct cache_entry *e;
	unsigned n, budget, max;
	uint32_t size; /* bytes per table */
	uint64_t tick;
};

struct qcow2 {
	uint32_t version, cluster_bits, cluster_size;
	uint64_t l2_entries;
	uint64_t *l1;         /* host endian, l1_size entries */
	uint32_t l1_size;     /* entries on disk */
	uint32_t l1_mem;      /* entries in memory: all when writable, else what the size needs */
	uint64_t l1_offset;
	bool l1_dirty;
	uint64_t *rt;         /* refcount table, host endian */
	uint64_t rt_entries;
	uint64_t rt_offset;
	uint32_t rt_clusters;
	bool rt_dirty, header_dirty;
	uint32_t refcount_order;
	uint64_t rb_entries;  /* refcounts per refcount block */
	uint64_t incompat, compat, autoclear;
	uint32_t header_length;
	uint8_t compression;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	struct cache l2c, rbc;
	uint64_t alloc_end;   /* next free host offset (I3) */
	uint64_t comp_cursor; /* where the next compressed cluster may start, 0 = fresh cluster */
	uint64_t *frees;      /* pending refcount decrements (step 6) */
	size_t n_frees, cap_frees;
	uint64_t *frees_after_header; /* superseded refcount tables (step 3) */
	size_t n_fah, cap_fah;
	uint8_t *cbuf;        /* compressed bytes, 2 clusters */
	uint8_t *tmp;         /* one cluster for copy-on-write */
	uint8_t *dec;         /* last decompressed cluster */
	uint64_t dec_entry;   /* its L2 entry, 0 = none */
	z_stream zs;
	bool zs_init;
	ZSTD_DCtx *zd;
	bool writable;
};

static const char *const qcow2_create_keys[] = {
	"size", "backing_file", "backing_fmt", "cluster_size", "compression_type", "compat",
	"preallocation", NULL,
};

/* ---- table cache --------------------------------------------------------- */

static int cache_init(struct cache *c, unsigned budget, uint32_t cluster_size)
{
	c->budget = budget;
	c->max = budget * 2 + 8;
	c->size = cluster_size;
	c->e = calloc(c->max, sizeof(*c->e)); /* tables are allocated on first use */
	return c->e ? 0 : -ENOMEM;
}

static void cache_free(struct cache *c)
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
static int cache_get(struct pimg *img, struct cache *c, uint64_t off, bool load, uint8_t **out)
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

static void cache_mark_dirty(struct cache *c, const uint8_t *data)
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

static int refcount_get(struct pimg *img, uint64_t host, uint64_t *out)
{
	struct qcow2 *q = img->priv;
	uint64_t ci = host >> q->cluster_bits, rti = ci / q->rb_entries, rbo;
	uint8_t *rb;
	int ret;

	*out = 0;
	if (rti >= q->rt_entries)
		return 0;
	rbo = q->rt[rti] & QCOW2_OFFSET_MASK;
	if (!rbo)
		return 0;
	if (!rt_entry_ok(img, rbo))
		return -EIO;
	ret = cache_get(img, &q->rbc, rbo, true, &rb);
	if (ret)
		return ret;
	*out = rb_get(q, rb, ci % q->rb_entries);
	return 0;
}

static int refcount_add(struct pimg *img, uint64_t host, int delta, unsigned depth);

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
		ret = refcount_add(img, new_off + i * cs, 1, depth + 1);
		if (ret)
			return ret;
	}
	return 0;
}

static int refcount_add(struct pimg *img, uint64_t host, int delta, unsigned depth)
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
		ret = cache_get(img, &q->rbc, rbo, false, &rb);
		if (ret)
			return ret;
		q->rt[rti] = rbo;
		q->rt_dirty = true;
		ret = refcount_add(img, rbo, 1, depth + 1);
		if (ret)
			return ret;
	} else if (!rt_entry_ok(img, rbo)) {
		log_error("%s: corrupt refcount table entry %" PRIu64, img->path, rti);
		return -EIO;
	}
	ret = cache_get(img, &q->rbc, rbo, true, &rb);
	if (ret)
		return ret;
	v = rb_get(q, rb, ci % q->rb_entries);
	if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && v > refcount_max(q) - (uint64_t)delta)) {
		log_error("%s: refcount of cluster at %" PRIu64 " out of range", img->path, host);
		return -EIO;
	}
	rb_set(q, rb, ci % q->rb_entries, v + (uint64_t)(int64_t)delta);
	cache_mark_dirty(&q->rbc, rb);
	return 0;
}

static int alloc_clusters(struct pimg *img, uint64_t n, uint64_t *out)
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
		ret = refcount_add(img, start + i * q->cluster_size, 1, 0);
		if (ret)
			return ret;
	}
	*out = start;
	return 0;
}

static int push_free(struct qcow2 *q, uint64_t host)
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
static void compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *end)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t nsec = ((entry >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;

	*off = entry & ((1ULL << x) - 1);
	*end = (*off & ~511ULL) + nsec * 512;
}

/* Queue the release of whatever host clusters an L2 entry held (applied in step 6). */
static int release_entry(struct pimg *img, uint64_t entry)
{
	struct qcow2 *q = img->priv;
	int ret;

	if (entry & QCOW2_COMPRESSED) {
		uint64_t off, end;

		compressed_range(q, entry, &off, &end);
		for (uint64_t c = off & ~(uint64_t)(q->cluster_size - 1); c < end; c += q->cluster_size) {
			ret = push_free(q, c);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (entry & QCOW2_OFFSET_MASK)
		return push_free(q, entry & QCOW2_OFFSET_MASK);
	return 0;
}

/* ---- flush: the metadata update order at the top of the file ------------- */

static int write_l1(struct pimg *img, uint64_t off, const uint64_t *l1, uint32_t n)
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

static int qcow2_flush(struct pimg *img)
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
			ret = push_free(q, q->frees_after_header[i]);
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
		ret = write_l1(img, q->l1_offset, q->l1, q->l1_size);
		if (!ret)
			ret = pfile_sync(img->file);
		if (ret)
			return ret;
		q->l1_dirty = false;
	}
	/* 6: pending frees, now that nothing on disk references them */
	if (q->n_frees) {
		for (size_t i = 0; i < q->n_frees; i++) {
			cache_drop(&q->l2c, q->frees[i]);
			ret = refcount_add(img, q->frees[i], -1, 0);
			if (ret)
				return ret;
		}
		q->n_frees = 0;
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
static int trim_caches(struct pimg *img)
{
	struct qcow2 *q = img->priv;

	if (cache_used(&q->l2c) > q->l2c.budget || cache_used(&q->rbc) > q->rbc.budget ||
	    q->n_frees > 65536) {
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

/* ---- mapping ---------------------------------------------------------------- */

static bool overlaps_metadata(const struct qcow2 *q, uint64_t host, uint64_t len)
{
	uint64_t end = host + len;

	if (host < q->cluster_size)
		return true;
	if (host < q->l1_offset + (uint64_t)q->l1_size * 8 && end > q->l1_offset)
		return true;
	if (host < q->rt_offset + (uint64_t)q->rt_clusters * q->cluster_size && end > q->rt_offset)
		return true;
	return false;
}

/*
 * Find the L2 table for guest offset off. With alloc, a missing table is
 * allocated. *l2 is NULL (and 0 returned) for an unallocated table otherwise.
 */
static int get_l2(struct pimg *img, uint64_t off, bool alloc, uint8_t **l2)
{
	struct qcow2 *q = img->priv;
	uint64_t l1i = off >> (q->cluster_bits * 2 - 3), l2o;
	int ret;

	*l2 = NULL;
	if (l1i >= q->l1_mem) {
		log_error("%s: offset beyond the L1 table", img->path);
		return -EIO;
	}
	l2o = q->l1[l1i] & QCOW2_OFFSET_MASK;
	if (!l2o) {
		if (!alloc)
			return 0;
		ret = alloc_clusters(img, 1, &l2o);
		if (ret)
			return ret;
		ret = cache_get(img, &q->l2c, l2o, false, l2);
		if (ret)
			return ret;
		q->l1[l1i] = l2o | QCOW2_COPIED;
		q->l1_dirty = true;
		return 0;
	}
	if ((l2o & (q->cluster_size - 1)) || overlaps_metadata(q, l2o, q->cluster_size)) {
		log_error("%s: corrupt L1 entry %" PRIu64 " (L2 table offset %#" PRIx64 ")", img->path,
			  l1i, l2o);
		return -EIO;
	}
	if (alloc && !(q->l1[l1i] & QCOW2_COPIED)) {
		log_error("%s: L2 table at %#" PRIx64 " is shared; cannot write", img->path, l2o);
		return -EIO;
	}
	return cache_get(img, &q->l2c, l2o, true, l2);
}

static uint64_t l2_index(const struct qcow2 *q, uint64_t off)
{
	return (off >> q->cluster_bits) & (q->l2_entries - 1);
}

static int get_entry(struct pimg *img, uint64_t off, uint64_t *entry)
{
	struct qcow2 *q = img->priv;
	uint8_t *l2;
	int ret = get_l2(img, off, false, &l2);

	*entry = 0;
	if (ret || !l2)
		return ret;
	*entry = ld_be64(l2 + l2_index(q, off) * 8);
	return 0;
}

static int qcow2_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct qcow2 *q = img->priv;
	uint64_t e;
	int ret = get_entry(img, off, &e);

	if (ret)
		return ret;
	*pnum = len;
	if (e & QCOW2_COMPRESSED)
		return PIMG_DATA;
	if ((e & QCOW2_ZERO) && q->version >= 3)
		return PIMG_ZERO;
	return (e & QCOW2_OFFSET_MASK) ? PIMG_DATA : PIMG_UNALLOCATED;
}

static int decompress_cluster(struct pimg *img, uint64_t entry)
{
	struct qcow2 *q = img->priv;
	uint64_t coff, cend, clen;
	int ret;

	if (q->dec_entry == entry)
		return 0;
	compressed_range(q, entry, &coff, &cend);
	clen = cend - coff;
	if (coff >= img->file->size || clen > 2ULL * q->cluster_size) {
		log_error("%s: compressed cluster at %#" PRIx64 " lies outside the file", img->path, coff);
		return -EIO;
	}
	ret = pfile_pread(img->file, q->cbuf, clen, coff, false);
	if (ret)
		return ret;
	q->dec_entry = 0;
	if (q->compression == COMP_ZLIB) {
		if (!q->zs_init) {
			if (inflateInit2(&q->zs, -12) != Z_OK)
				return -ENOMEM;
			q->zs_init = true;
		} else if (inflateReset(&q->zs) != Z_OK) {
			return -EIO;
		}
		q->zs.next_in = q->cbuf;
		q->zs.avail_in = (uInt)clen;
		q->zs.next_out = q->dec;
		q->zs.avail_out = q->cluster_size;
		ret = inflate(&q->zs, Z_FINISH);
		if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR) || q->zs.avail_out) {
			log_error("%s: corrupt compressed cluster at %#" PRIx64, img->path, coff);
			return -EIO;
		}
	} else {
		ZSTD_inBuffer in = { q->cbuf, clen, 0 };
		ZSTD_outBuffer out = { q->dec, q->cluster_size, 0 };

		if (!q->zd) {
			q->zd = ZSTD_createDCtx();
			if (!q->zd)
				return -ENOMEM;
		}
		ZSTD_DCtx_reset(q->zd, ZSTD_reset_session_only);
		while (out.pos < out.size) {
			size_t r = ZSTD_decompressStream(q->zd, &out, &in);

			if (ZSTD_isError(r) || (in.pos == in.size && out.pos < out.size) || r == 0)
				break;
		}
		if (out.pos != out.size) {
			log_error("%s: corrupt zstd cluster at %#" PRIx64, img->path, coff);
			return -EIO;
		}
	}
	q->dec_entry = entry;
	return 0;
}

static int check_data_offset(struct pimg *img, uint64_t host)
{
	struct qcow2 *q = img->priv;

	if ((host & (q->cluster_size - 1)) || overlaps_metadata(q, host, q->cluster_size)) {
		log_error("%s: corrupt L2 entry (data cluster offset %#" PRIx64 ")", img->path, host);
		return -EIO;
	}
	if (host >= img->file->size && host >= q->alloc_end) {
		log_error("%s: L2 entry points beyond the end of the file (%#" PRIx64 ")", img->path, host);
		return -EIO;
	}
	return 0;
}

static int qcow2_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;
	uint64_t e, in = off & (q->cluster_size - 1), host;
	int ret = get_entry(img, off, &e);

	if (ret)
		return ret;
	if (e & QCOW2_COMPRESSED) {
		ret = decompress_cluster(img, e);
		if (!ret)
			memcpy(buf, q->dec + in, len);
		return ret;
	}
	host = e & QCOW2_OFFSET_MASK;
	ret = check_data_offset(img, host);
	if (ret)
		return ret;
	return pfile_pread(img->file, buf, len, host + in, false);
}

/* Fill q->tmp with the current content of the cluster at guest offset coff. */
static int read_old_cluster(struct pimg *img, uint64_t e, uint64_t coff)
{
	struct qcow2 *q = img->priv;
	uint64_t n = MIN((uint64_t)q->cluster_size, img->size - coff);
	int ret;

	memset(q->tmp, 0, q->cluster_size);
	if (e & QCOW2_COMPRESSED) {
		ret = decompress_cluster(img, e);
		if (!ret)
			memcpy(q->tmp, q->dec, q->cluster_size);
		return ret;
	}
	if ((e & QCOW2_ZERO) && q->version >= 3)
		return 0;
	if (e & QCOW2_OFFSET_MASK) {
		ret = check_data_offset(img, e & QCOW2_OFFSET_MASK);
		if (ret)
			return ret;
		return pfile_pread(img->file, q->tmp, q->cluster_size, e & QCOW2_OFFSET_MASK, false);
	}
	return pimg_read_backing(img, q->tmp, n, coff);
}

static int qcow2_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, in = off & (cs - 1), coff = off - in, e, host;
	uint8_t *l2;
	int ret;

	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	e = ld_be64(l2 + l2_index(q, off) * 8);
	host = e & QCOW2_OFFSET_MASK;
	if (!(e & QCOW2_COMPRESSED) && (e & QCOW2_COPIED) && host && !(e & QCOW2_ZERO)) {
		ret = check_data_offset(img, host);
		if (ret)
			return ret;
		return pfile_pwrite(img->file, buf, len, host + in);
	}
	/* Copy-on-write into a new cluster. */
	if (len != cs) {
		ret = read_old_cluster(img, e, coff);
		if (ret)
			return ret;
		memcpy(q->tmp + in, buf, len);
		buf = q->tmp;
	}
	ret = alloc_clusters(img, 1, &host);
	if (ret)
		return ret;
	ret = pfile_pwrite(img->file, buf, cs, host);
	if (ret)
		return ret;
	/* The allocation may have evicted our L2 table's slot: look it up again. */
	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	st_be64(l2 + l2_index(q, off) * 8, host | QCOW2_COPIED);
	cache_mark_dirty(&q->l2c, l2);
	if (q->dec_entry == e)
		q->dec_entry = 0;
	ret = release_entry(img, e);
	if (ret)
		return ret;
	return trim_caches(img);
}

/* Set the L2 entry of the whole cluster at off to val, releasing what it held. */
static int set_entry(struct pimg *img, uint64_t off, uint64_t val)
{
	struct qcow2 *q = img->priv;
	uint8_t *l2;
	uint64_t e;
	int ret = get_l2(img, off, true, &l2);

	if (ret)
		return ret;
	e = ld_be64(l2 + l2_index(q, off) * 8);
	st_be64(l2 + l2_index(q, off) * 8, val);
	cache_mark_dirty(&q->l2c, l2);
	if (q->dec_entry == e)
		q->dec_entry = 0;
	ret = release_entry(img, e);
	if (ret)
		return ret;
	return trim_caches(img);
}

static int qcow2_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct qcow2 *q = img->priv;
	uint64_t e;
	int ret;

	if (len != q->cluster_size && off + len != img->size)
		return -ENOTSUP;
	if (q->version < 3)
		return -ENOTSUP;
	ret = get_entry(img, off, &e);
	if (ret)
		return ret;
	if ((e & QCOW2_ZERO) && !(e & QCOW2_COMPRESSED))
		return 0;
	if (!e && !img->backing)
		return 0; /* already reads as zeros */
	if (!may_unmap && (e & QCOW2_OFFSET_MASK) && (e & QCOW2_COPIED) && !(e & QCOW2_COMPRESSED))
		return -ENOTSUP; /* keep the allocation: the core writes zeros in place */
	return set_entry(img, off, QCOW2_ZERO);
}

static int qcow2_discard(struct pimg *img, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;

	if (len != q->cluster_size && off + len != img->size)
		return 0; /* partial clusters are left alone */
	if (img->backing_name) /* unallocated would expose the backing file */
		return q->version >= 3 ? set_entry(img, off, QCOW2_ZERO) : 0;
	return set_entry(img, off, 0);
}

static int compress_cluster(struct pimg *img, const void *buf, size_t *out_len)
{
	struct qcow2 *q = img->priv;
	size_t cap = q->cluster_size - SECTOR_SIZE;

	if (q->compression == COMP_ZSTD) {
		size_t r = ZSTD_compress(q->cbuf, cap, buf, q->cluster_size, 3);

		if (ZSTD_isError(r))
			return -ENOSPC; /* did not fit: not worth it */
		*out_len = r;
		return 0;
	}
	z_stream zs = { 0 };

	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	zs.next_in = (Bytef *)(uintptr_t)buf;
	zs.avail_in = q->cluster_size;
	zs.next_out = q->cbuf;
	zs.avail_out = (uInt)cap;
	int r = deflate(&zs, Z_FINISH);

	*out_len = cap - zs.avail_out;
	deflateEnd(&zs);
	return r == Z_STREAM_END ? 0 : -ENOSPC;
}

static int qcow2_write_compressed(struct pimg *img, const void *data, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, host, add, entry, start;
	const void *buf = data;
	size_t clen;
	unsigned x = 62 - (q->cluster_bits - 8);
	int ret;

	if (len < cs) { /* tail of the image: pad */
		memset(q->tmp, 0, cs);
		memcpy(q->tmp, data, len);
		buf = q->tmp;
	}
	ret = compress_cluster(img, buf, &clen);
	if (ret == -ENOSPC)
		return qcow2_write(img, buf, cs, off);
	if (ret)
		return ret;
	/* Pack into the current partly used cluster when it is the last allocated one. */
	start = q->comp_cursor;
	if (start && (start & (cs - 1)) && (start & ~(cs - 1)) + cs == q->alloc_end) {
		uint64_t room = cs - (start & (cs - 1));

		ret = refcount_add(img, start & ~(cs - 1), 1, 0);
		if (!ret && clen > room)
			ret = alloc_clusters(img, (clen - room + cs - 1) / cs, &host);
		if (ret)
			return ret;
		host = start;
	} else {
		ret = alloc_clusters(img, (clen + cs - 1) / cs, &host);
		if (ret)
			return ret;
	}
	ret = pfile_pwrite(img->file, q->cbuf, clen, host);
	if (ret)
		return ret;
	q->comp_cursor = align_up(host + clen, SECTOR_SIZE);
	add = ((host + clen - 1) >> 9) - (host >> 9);
	entry = host | (add << x) | QCOW2_COMPRESSED;
	return set_entry(img, off, entry);
}

/* ---- open ------------------------------------------------------------------ */

static int qcow2_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	/* The magic alone decides: a bad version must be an error, not a raw image. */
	return len >= 4 && ld_be32(head) == QCOW2_MAGIC ? 100 : 0;
}

static void qcow2_free(struct qcow2 *q)
{
	if (!q)
		return;
	cache_free(&q->l2c);
	cache_free(&q->rbc);
	free(q->l1);
	free(q->rt);
	free(q->frees);
	free(q->frees_after_header);
	free(q->cbuf);
	free(q->tmp);
	free(q->dec);
	if (q->zs_init)
		inflateEnd(&q->zs);
	ZSTD_freeDCtx(q->zd);
	free(q);
}

static void qcow2_close(struct pimg *img)
{
	qcow2_free(img->priv);
	img->priv = NULL;
}

static int parse_extensions(struct pimg *img, const uint8_t *h, size_t hlen, uint64_t start,
			    uint64_t end)
{
	uint64_t off = start;

	while (off + 8 <= end && off + 8 <= hlen) {
		uint32_t type = ld_be32(h + off), len = ld_be32(h + off + 4);

		if (type == EXT_END)
			return 0;
		if (!range_within(off + 8, len, MIN(end, hlen))) {
			log_error("%s: qcow2 header extension %#x overruns the header", img->path, type);
			return -EINVAL;
		}
		if (type == EXT_BACKING_FMT) {
			if (len == 0 || len > 31 || memchr(h + off + 8, 0, len)) {
				log_error("%s: bad backing format extension", img->path);
				return -EINVAL;
			}
			free(img->backing_fmt);
			img->backing_fmt = strndup((const char *)h + off + 8, len);
			if (!img->backing_fmt)
				return -ENOMEM;
		} else if (type == EXT_DATA_FILE) {
			log_error("%s: qcow2 external data files are not supported", img->path);
			return -ENOTSUP;
		}
		off += 8 + align_up(len, 8);
	}
	return 0;
}

static int load_table(struct pimg *img, uint64_t off, uint64_t entries, uint64_t **out)
{
	uint64_t *t = calloc(MAX(entries, 1), sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	ret = pfile_pread(img->file, t, entries * 8, off, true);
	if (ret) {
		free(t);
		log_error("%s: cannot read table at %" PRIu64 " (truncated image?)", img->path, off);
		return ret == -EIO ? -EINVAL : ret;
	}
	for (uint64_t i = 0; i < entries; i++)
		t[i] = be64toh(t[i]);
	*out = t;
	return 0;
}

static int qcow2_open(struct pimg *img)
{
	uint8_t h[4096];
	struct qcow2 *q;
	uint64_t cs, l1_need, bf_off, size, hsz = MIN(img->file->size, sizeof(h));
	uint32_t bf_len;
	bool writable = !(img->flags & PIMG_O_RDONLY);
	int ret = -EINVAL;

	memset(h, 0, sizeof(h));
	if (hsz < HDR_V2_LEN || pfile_pread(img->file, h, hsz, 0, true)) {
		log_error("%s: truncated qcow2 header", img->path);
		return -EINVAL;
	}
	if (ld_be32(h) != QCOW2_MAGIC) {
		log_error("%s: not a qcow2 image", img->path);
		return -EINVAL;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	img->priv = q;
	q->version = ld_be32(h + 4);
	q->cluster_bits = ld_be32(h + 20);
	if (q->version != 2 && q->version != 3) {
		log_error("%s: unsupported qcow2 version %u", img->path, q->version);
		goto out_free;
	}
	if (q->cluster_bits < 9 || q->cluster_bits > 21) {
		log_error("%s: bad qcow2 cluster size (2^%u)", img->path, q->cluster_bits);
		goto out_free;
	}
	cs = q->cluster_size = 1u << q->cluster_bits;
	q->l2_entries = cs / 8;
	size = ld_be64(h + 24);
	if (ld_be32(h + 32)) {
		log_error("%s: encrypted qcow2 images are not supported", img->path);
		ret = -ENOTSUP;
		goto out_free;
	}
	q->l1_size = ld_be32(h + 36);
	q->l1_offset = ld_be64(h + 40);
	q->rt_offset = ld_be64(h + 48);
	q->rt_clusters = ld_be32(h + 56);
	q->nb_snapshots = ld_be32(h + 60);
	q->snapshots_offset = ld_be64(h + 64);
	if (q->version == 2) {
		q->header_length = HDR_V2_LEN;
		q->refcount_order = 4;
	} else {
		if (hsz < HDR_V3_LEN) {
			log_error("%s: truncated qcow2 v3 header", img->path);
			goto out_free;
		}
		q->incompat = ld_be64(h + 72);
		q->compat = ld_be64(h + 80);
		q->autoclear = ld_be64(h + 88);
		q->refcount_order = ld_be32(h + 96);
		q->header_length = ld_be32(h + 100);
		if (q->header_length < HDR_V3_LEN || q->header_length > MIN(cs, hsz) ||
		    q->header_length % 8) {
			log_error("%s: bad qcow2 header length %u", img->path, q->header_length);
			goto out_free;
		}
		if (q->refcount_order > 6) {
			log_error("%s: bad refcount order %u", img->path, q->refcount_order);
			goto out_free;
		}
		if (q->header_length > HDR_V3_LEN)
			q->compression = h[104];
	}
	if (q->incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION)) {
		log_error("%s: unsupported qcow2 incompatible features %#" PRIx64 "%s", img->path,
			  q->incompat,
			  q->incompat & INCOMPAT_EXTL2 ? " (extended L2 entries)"
			  : q->incompat & INCOMPAT_DATA_FILE ? " (external data file)" : "");
		ret = -ENOTSUP;
		goto out_free;
	}
	if (q->compression > COMP_ZSTD ||
	    (q->compression != COMP_ZLIB) != !!(q->incompat & INCOMPAT_COMPRESSION)) {
		log_error("%s: bad qcow2 compression type %u", img->path, q->compression);
		goto out_free;
	}
	if (size % SECTOR_SIZE || size > (1ULL << 60)) {
		log_error("%s: bad qcow2 virtual size %" PRIu64, img->path, size);
		goto out_free;
	}
	l1_need = (size + (cs * q->l2_entries) - 1) / (cs * q->l2_entries);
	if (q->l1_size < l1_need || q->l1_size > QCOW2_MAX_L1_ENTRIES) {
		log_error("%s: L1 table size %u does not fit the virtual size", img->path, q->l1_size);
		goto out_free;
	}
	if ((q->l1_offset & (cs - 1)) || !q->l1_offset ||
	    !range_within(q->l1_offset, (uint64_t)q->l1_size * 8, img->file->size)) {
		log_error("%s: L1 table lies outside the file", img->path);
		goto out_free;
	}
	if ((q->rt_offset & (cs - 1)) || !q->rt_offset || !q->rt_clusters ||
	    (uint64_t)q->rt_clusters * cs > QCOW2_MAX_RT_BYTES ||
	    !range_within(q->rt_offset, (uint64_t)q->rt_clusters * cs, img->file->size)) {
		log_error("%s: refcount table lies outside the file", img->path);
		goto out_free;
	}
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS ||
	    (q->nb_snapshots && ((q->snapshots_offset & (cs - 1)) ||
				 !range_within(q->snapshots_offset, (uint64_t)q->nb_snapshots * 40,
					       img->file->size)))) {
		log_error("%s: bad snapshot table", img->path);
		goto out_free;
	}
	bf_off = ld_be64(h + 8);
	bf_len = ld_be32(h + 16);
	ret = parse_extensions(img, h, hsz, q->header_length, bf_off ? MIN(bf_off, cs) : cs);
	if (ret)
		goto out_free;
	ret = -EINVAL;
	if (bf_off) {
		if (bf_len == 0 || bf_len > 1023 || !range_within(bf_off, bf_len, MIN(cs, hsz)) ||
		    memchr(h + bf_off, 0, bf_len)) {
			log_error("%s: bad backing file name in the header", img->path);
			goto out_free;
		}
		img->backing_name = strndup((const char *)h + bf_off, bf_len);
		if (!img->backing_name) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	q->rb_entries = cs * 8 / (1u << q->refcount_order);
	q->rt_entries = (uint64_t)q->rt_clusters * cs / 8;
	/* A read-only open needs only the entries that map the virtual size. */
	q->l1_mem = writable ? q->l1_size : (uint32_t)l1_need;
	ret = load_table(img, q->l1_offset, q->l1_mem, &q->l1);
	if (!ret)
		ret = load_table(img, q->rt_offset, q->rt_entries, &q->rt);
	if (ret)
		goto out_free;
	ret = -ENOMEM;
	q->cbuf = malloc(2 * cs);
	q->tmp = malloc(cs);
	q->dec = malloc(cs);
	if (!q->cbuf || !q->tmp || !q->dec ||
	    cache_init(&q->l2c, (unsigned)MIN(MAX(8 * MiB / cs, 4), 256), (uint32_t)cs) ||
	    cache_init(&q->rbc, (unsigned)MIN(MAX(2 * MiB / cs, 4), 64), (uint32_t)cs))
		goto out_free;
	q->alloc_end = align_up(img->file->size, cs);

	if (writable) {
		const char *why = NULL;

		if (q->version < 3)
			why = "qcow2 version 2 images are read-only here; convert to -O qcow2 first";
		else if (q->nb_snapshots)
			why = "images with internal snapshots are read-only here";
		else if (q->incompat & INCOMPAT_CORRUPT)
			why = "image is marked corrupt";
		else if ((q->incompat & INCOMPAT_DIRTY) && !(img->flags & PIMG_O_REPAIR))
			why = "image is dirty (lazy refcounts); run 'plinth-img check -r all' first";
		if (why) {
			log_error("%s: cannot open for writing: %s", img->path, why);
			ret = -EROFS;
			goto out_free;
		}
		if (q->autoclear) {
			/* Unknown autoclear features (e.g. bitmaps) become invalid once we write. */
			uint8_t z[8] = { 0 };

			ret = pfile_pwrite(img->file, z, 8, 88);
			if (!ret)
				ret = pfile_sync(img->file);
			if (ret)
				goto out_free;
			q->autoclear = 0;
		}
		q->writable = true;
	}
	img->size = size;
	img->granule = (uint32_t)cs;
	return 0;

out_free:
	qcow2_free(q);
	img->priv = NULL;
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

static int qcow2_create(const char *path, const struct pimg_create_opts *o)
{
	uint64_t cs = o->cluster_size ? o->cluster_size : 64 * KiB, l2e = cs / 8, l1_size, l1_cl,
		 rt_cl = 1, rb_cl = 1, total, rb_entries = cs * 8 / 16, rt_off, rb_off, l1_off;
	uint8_t comp = COMP_ZLIB;
	struct pimg_file *f;
	uint8_t *buf;
	size_t ext;
	int ret;

	if (cs < 512 || cs > 2 * MiB || !is_pow2(cs)) {
		log_error("qcow2 cluster_size must be a power of two from 512 to 2M");
		return -EINVAL;
	}
	if (o->compression_type) {
		if (!strcmp(o->compression_type, "zstd")) {
			comp = COMP_ZSTD;
		} else if (strcmp(o->compression_type, "zlib")) {
			log_error("compression_type must be zlib or zstd");
			return -EINVAL;
		}
	}
	if (o->size > (1ULL << 56)) {
		log_error("qcow2 size too large");
		return -EFBIG;
	}
	l1_size = (o->size + cs * l2e - 1) / (cs * l2e);
	if (l1_size > QCOW2_MAX_L1_ENTRIES) {
		log_error("image too large for cluster size %" PRIu64, cs);
		return -EFBIG;
	}
	l1_cl = MAX((l1_size * 8 + cs - 1) / cs, 1);
	/* Fixed point: refcount blocks covering header, table, blocks and L1. */
	for (;;) {
		uint64_t nrb, nrt;

		total = 1 + rt_cl + rb_cl + l1_cl;
		nrb = (total + rb_entries - 1) / rb_entries;
		nrt = (nrb * 8 + cs - 1) / cs;
		if (nrb == rb_cl && nrt == rt_cl)
			break;
		rb_cl = nrb;
		rt_cl = nrt;
	}
	rt_off = cs;
	rb_off = rt_off + rt_cl * cs;
	l1_off = rb_off + rb_cl * cs;

	buf = calloc(1, cs);
	if (!buf)
		return -ENOMEM;
	f = pfile_open(path, false, true);
	if (!f) {
		free(buf);
		return -EIO;
	}
	/* Header */
	st_be32(buf, QCOW2_MAGIC);
	st_be32(buf + 4, 3);
	st_be32(buf + 20, (uint32_t)__builtin_ctzll(cs));
	st_be64(buf + 24, o->size);
	st_be32(buf + 36, (uint32_t)l1_size);
	st_be64(buf + 40, l1_off);
	st_be64(buf + 48, rt_off);
	st_be32(buf + 56, (uint32_t)rt_cl);
	st_be64(buf + 72, comp == COMP_ZSTD ? INCOMPAT_COMPRESSION : 0);
	st_be32(buf + 96, 4);
	st_be32(buf + 100, HDR_CREATE_LEN);
	buf[104] = comp;
	ext = HDR_CREATE_LEN;
	if (o->backing_file) {
		size_t blen = strlen(o->backing_file), flen = o->backing_fmt ? strlen(o->backing_fmt) : 0;

		if (blen == 0 || blen > 1023 || flen > 31 || ext + 8 + 32 + 8 + blen > cs) {
			log_error("%s: backing file name too long for the header", path);
			ret = -EINVAL;
			goto out_close;
		}
		if (flen) {
			st_be32(buf + ext, EXT_BACKING_FMT);
			st_be32(buf + ext + 4, (uint32_t)flen);
			memcpy(buf + ext + 8, o->backing_fmt, flen);
			ext += 8 + align_up(flen, 8);
		}
		ext += 8; /* end-of-extensions: type 0, length 0 */
		st_be64(buf + 8, ext);
		st_be32(buf + 16, (uint32_t)blen);
		memcpy(buf + ext, o->backing_file, blen);
	}
	ret = pfile_pwrite(f, buf, cs, 0);
	if (ret)
		goto out_io;
	/* Refcount table */
	for (uint64_t t = 0; t < rt_cl; t++) {
		memset(buf, 0, cs);
		for (uint64_t i = 0; i < cs / 8; i++) {
			uint64_t idx = t * (cs / 8) + i;

			if (idx < rb_cl)
				st_be64(buf + i * 8, rb_off + idx * cs);
		}
		ret = pfile_pwrite(f, buf, cs, rt_off + t * cs);
		if (ret)
			goto out_io;
	}
	/* Refcount blocks: every metadata cluster has refcount 1 */
	for (uint64_t b = 0; b < rb_cl; b++) {
		memset(buf, 0, cs);
		for (uint64_t i = 0; i < rb_entries; i++)
			if (b * rb_entries + i < total)
				st_be16(buf + i * 2, 1);
		ret = pfile_pwrite(f, buf, cs, rb_off + b * cs);
		if (ret)
			goto out_io;
	}
	/* L1 (zeros) */
	ret = pfile_truncate(f, l1_off + l1_cl * cs);
	if (!ret)
		ret = pfile_sync(f);
out_io:
	if (ret)
		log_error("%s: %s", path, strerror(-ret));
out_close:
	pfile_close(f);
	free(buf);
	return ret;
}

/* ---- info ------------------------------------------------------------------ */

static int read_snapshots(struct pimg *img, struct pimg_info *info)
{
	struct qcow2 *q = img->priv;
	uint64_t off = q->snapshots_offset;

	if (!q->nb_snapshots)
		return 0;
	info->snapshots = calloc(q->nb_snapshots, sizeof(*info->snapshots));
	if (!info->snapshots)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct pimg_snapshot_info *s = &info->snapshots[i];
		uint8_t h[40];
		uint32_t extra, id_len, name_len;
		uint8_t ex[24] = { 0 };
		char idbuf[64], namebuf[256];

		if (pfile_pread(img->file, h, sizeof(h), off, true))
			goto bad;
		id_len = ld_be16(h + 12);
		name_len = ld_be16(h + 14);
		s->date_sec = ld_be32(h + 16);
		s->date_nsec = ld_be32(h + 20);
		s->vm_clock_nsec = ld_be64(h + 24);
		s->vm_state_size = ld_be32(h + 32);
		extra = ld_be32(h + 36);
		if (extra > 1024)
			goto bad;
		if (pfile_pread(img->file, ex, MIN(extra, sizeof(ex)), off + 40, true))
			goto bad;
		if (extra >= 8)
			s->vm_state_size = ld_be64(ex);
		s->icount = extra >= 24 ? ld_be64(ex + 16) : UINT64_MAX;
		off += 40 + extra;
		if (pfile_pread(img->file, idbuf, MIN(id_len, sizeof(idbuf) - 1), off, true))
			goto bad;
		idbuf[MIN(id_len, sizeof(idbuf) - 1)] = 0;
		off += id_len;
		if (pfile_pread(img->file, namebuf, MIN(name_len, sizeof(namebuf) - 1), off, true))
			goto bad;
		namebuf[MIN(name_len, sizeof(namebuf) - 1)] = 0;
		off = align_up(off + name_len, 8);
		snprintf(s->id, sizeof(s->id), "%s", idbuf);
		snprintf(s->name, sizeof(s->name), "%s", namebuf);
		info->n_snapshots = i + 1;
	}
	return 0;
bad:
	log_error("%s: corrupt snapshot table", img->path);
	return -EINVAL;
}

static int qcow2_info(struct pimg *img, struct pimg_info *info)
{
	struct qcow2 *q = img->priv;

	info->cluster_size = q->cluster_size;
	info->dirty = q->incompat & INCOMPAT_DIRTY;
	pimg_info_add_str(info, "compat", q->version >= 3 ? "1.1" : "0.10");
	pimg_info_add_str(info, "compression-type", q->compression == COMP_ZSTD ? "zstd" : "zlib");
	pimg_info_add_bool(info, "lazy-refcounts", q->compat & COMPAT_LAZY_REFCOUNTS);
	pimg_info_add_num(info, "refcount-bits", 1 << q->refcount_order);
	pimg_info_add_bool(info, "corrupt", q->incompat & INCOMPAT_CORRUPT);
	pimg_info_add_bool(info, "extended-l2", false);
	return read_snapshots(img, info);
}

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

				compressed_range(q, e, &o, &end);
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

static int qcow2_check(struct pimg *img, struct pimg_check *res, unsigned repair)
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
		if (load_table(img, sl1o, sl1n, &sl1) == 0) {
			check_l1(&c, sl1, sl1n);
			free(sl1);
		}
	}
	/* Compare with the stored refcounts. */
	for (uint64_t i = 0; i < c.nclusters; i++) {
		uint64_t stored;

		ret = refcount_get(img, i * cs, &stored);
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
				ret = refcount_add(img, i * cs, -(int)(stored - c.ref[i]), 0);
				if (ret)
					goto out;
				res->leaks_fixed++;
			}
		} else {
			check_log(res, "%s: ERROR cluster %" PRIu64 " refcount=%" PRIu64 " reference=%u", img->path,
				  i, stored, c.ref[i]);
			res->corruptions++;
			if (repair & PIMG_REPAIR_ALL) {
				ret = refcount_add(img, i * cs, (int)(c.ref[i] - stored), 0);
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

/* ---- resize ---------------------------------------------------------------- */

static int qcow2_resize(struct pimg *img, uint64_t size)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, need = (size + cs * q->l2_entries - 1) / (cs * q->l2_entries);
	uint64_t new_l1 = 0, old_l1 = q->l1_offset, old_cl = ((uint64_t)q->l1_size * 8 + cs - 1) / cs;
	uint8_t h[24];
	int ret;

	if (size < img->size) {
		log_error("%s: shrinking qcow2 images is not supported", img->path);
		return -ENOTSUP;
	}
	if (need > QCOW2_MAX_L1_ENTRIES)
		return -EFBIG;
	if (need > q->l1_size) {
		uint64_t ncl = (need * 8 + cs - 1) / cs;
		uint64_t *l1 = calloc(need, sizeof(*l1));

		if (!l1)
			return -ENOMEM;
		ret = alloc_clusters(img, ncl, &new_l1);
		if (!ret)
			ret = qcow2_flush(img); /* refcounts of the new L1 durable */
		if (!ret) {
			memcpy(l1, q->l1, (size_t)q->l1_size * 8);
			ret = write_l1(img, new_l1, l1, (uint32_t)need);
		}
		if (!ret)
			ret = pfile_truncate(img->file, MAX(img->file->size, new_l1 + ncl * cs));
		if (!ret)
			ret = pfile_sync(img->file);
		if (ret) {
			free(l1);
			return ret;
		}
		free(q->l1);
		q->l1 = l1;
		q->l1_size = q->l1_mem = (uint32_t)need;
		q->l1_offset = new_l1;
	}
	/* One sector write: size (24..31), L1 size (36..39) and L1 offset (40..47). */
	ret = pfile_pread(img->file, h, sizeof(h), 24, true);
	if (ret)
		return ret;
	st_be64(h, size);
	st_be32(h + 12, q->l1_size);
	st_be64(h + 16, q->l1_offset);
	ret = pfile_pwrite(img->file, h, sizeof(h), 24);
	if (!ret)
		ret = pfile_sync(img->file);
	if (ret)
		return ret;
	img->size = size;
	if (new_l1) {
		for (uint64_t i = 0; i < old_cl; i++) {
			ret = push_free(q, old_l1 + i * cs);
			if (ret)
				return ret;
		}
	}
	return qcow2_flush(img);
}

const struct pimg_format pimg_fmt_qcow2 = {
	.name = "qcow2",
	.create_keys = qcow2_create_keys,
	.probe = qcow2_probe,
	.open = qcow2_open,
	.close = qcow2_close,
	.create = qcow2_create,
	.block_status = qcow2_block_status,
	.read = qcow2_read,
	.write = qcow2_write,
	.write_zeroes = qcow2_write_zeroes,
	.discard = qcow2_discard,
	.write_compressed = qcow2_write_compressed,
	.flush = qcow2_flush,
	.info = qcow2_info,
	.check = qcow2_check,
	.resize = qcow2_resize,
};
