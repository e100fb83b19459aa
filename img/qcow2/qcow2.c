// SPDX-License-Identifier: MIT
/* qcow2: open, create, info, resize, mapping and I/O; the ops table (see qcow2.h). */
#include "qcow2.h"

static const char *const qcow2_create_keys[] = {
	"size", "backing_file", "backing_fmt", "cluster_size", "compression_type", "compat",
	"preallocation", "extended_l2", NULL,
};

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
	uint64_t l1i = (off >> q->cluster_bits) / q->l2_entries, l2o;
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
		ret = qcow2_alloc_data_cluster(img, &l2o);
		if (ret)
			return ret;
		ret = qcow2_cache_get(img, &q->l2c, l2o, false, l2);
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
	return qcow2_cache_get(img, &q->l2c, l2o, true, l2);
}

/* Where the entry of guest offset off sits in its L2 table. */
static uint8_t *l2_slot(const struct qcow2 *q, uint8_t *l2, uint64_t off)
{
	return l2 + ((off >> q->cluster_bits) & (q->l2_entries - 1)) * q->l2_entry_size;
}

/* The L2 entry of guest offset off and, with extended L2 entries, its subcluster
 * bitmap (*bm; 0 otherwise). Both 0 for an unallocated L2 table. */
static int get_entry(struct pimg *img, uint64_t off, uint64_t *entry, uint64_t *bm)
{
	struct qcow2 *q = img->priv;
	uint8_t *l2, *p;
	int ret = get_l2(img, off, false, &l2);

	*entry = *bm = 0;
	if (ret || !l2)
		return ret;
	p = l2_slot(q, l2, off);
	*entry = ld_be64(p);
	if (q->extl2)
		*bm = ld_be64(p + 8);
	return 0;
}

/* Status of subcluster sc of a standard cluster with extended L2 entries. */
static int sc_status(uint64_t e, uint64_t bm, unsigned sc)
{
	if (bm & (1ULL << sc))
		return PIMG_DATA;
	if (bm & (1ULL << (sc + 32)))
		return PIMG_ZERO;
	(void)e;
	return PIMG_UNALLOCATED;
}

static int qcow2_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct qcow2 *q = img->priv;
	uint64_t e, bm, in, end;
	unsigned sc;
	int ret = get_entry(img, off, &e, &bm), st;

	if (ret)
		return ret;
	*pnum = len;
	if (e & QCOW2_COMPRESSED)
		return PIMG_DATA;
	if (!q->extl2) {
		if ((e & QCOW2_ZERO) && q->version >= 3)
			return PIMG_ZERO;
		return (e & QCOW2_OFFSET_MASK) ? PIMG_DATA : PIMG_UNALLOCATED;
	}
	/* Subclusters: the run of those sharing the first one's status. */
	in = off & (q->cluster_size - 1);
	end = in + len;
	sc = (unsigned)(in >> q->sc_bits);
	st = sc_status(e, bm, sc);
	if (st == PIMG_DATA && !(e & QCOW2_OFFSET_MASK)) {
		log_error("%s: corrupt extended L2 entry for offset %#" PRIx64 " (allocated subcluster without a cluster)",
			  img->path, off);
		return -EIO;
	}
	while (++sc < 32 && ((uint64_t)sc << q->sc_bits) < end && sc_status(e, bm, sc) == st)
		;
	*pnum = MIN(((uint64_t)sc << q->sc_bits), end) - in;
	return st;
}

static int decompress_cluster(struct pimg *img, uint64_t entry)
{
	struct qcow2 *q = img->priv;
	uint64_t coff, cend, clen;
	int ret;

	if (q->dec_entry == entry)
		return 0;
	qcow2_compressed_range(q, entry, &coff, &cend);
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
	uint64_t e, bm, in = off & (q->cluster_size - 1), host;
	int ret = get_entry(img, off, &e, &bm);

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

/*
 * Fill q->tmp[from, to) with what the guest reads in the cluster at guest offset
 * coff (whose entry is e, bm): its data, zeros or the backing file's.
 */
static int read_old(struct pimg *img, uint64_t e, uint64_t bm, uint64_t coff, uint64_t from, uint64_t to)
{
	struct qcow2 *q = img->priv;
	uint64_t host = e & QCOW2_OFFSET_MASK;
	int ret;

	if (e & QCOW2_COMPRESSED) {
		ret = decompress_cluster(img, e);
		if (!ret)
			memcpy(q->tmp + from, q->dec + from, to - from);
		return ret;
	}
	if (host) {
		ret = check_data_offset(img, host);
		if (ret)
			return ret;
	}
	while (from < to) {
		uint64_t n = to - from;
		int st;

		if (q->extl2) {
			unsigned sc = (unsigned)(from >> q->sc_bits);

			st = sc_status(e, bm, sc);
			n = MIN(n, ((uint64_t)(sc + 1) << q->sc_bits) - from);
		} else {
			st = ((e & QCOW2_ZERO) && q->version >= 3) ? PIMG_ZERO : host ? PIMG_DATA : PIMG_UNALLOCATED;
		}
		if (st == PIMG_DATA && !host)
			return -EIO;
		if (st == PIMG_DATA) {
			ret = pfile_pread(img->file, q->tmp + from, n, host + from, false);
		} else if (st == PIMG_ZERO || coff + from >= img->size) {
			memset(q->tmp + from, 0, n);
			ret = 0;
		} else {
			uint64_t m = MIN(n, img->size - coff - from);

			memset(q->tmp + from + m, 0, n - m);
			ret = pimg_read_backing(img, q->tmp + from, m, coff + from);
		}
		if (ret)
			return ret;
		from += n;
	}
	return 0;
}

/* Store entry e (and bitmap bm with extended L2 entries) at the slot of guest offset off. */
static void put_entry(struct qcow2 *q, uint8_t *l2, uint64_t off, uint64_t e, uint64_t bm)
{
	uint8_t *p = l2_slot(q, l2, off);

	st_be64(p, e);
	if (q->extl2)
		st_be64(p + 8, bm);
	qcow2_cache_mark_dirty(&q->l2c, l2);
}

/* Allocation bits of the subclusters that [in, in + len) of a cluster touches. */
static uint64_t sc_mask(const struct qcow2 *q, uint64_t in, uint64_t len)
{
	unsigned first = (unsigned)(in >> q->sc_bits), last = (unsigned)((in + len - 1) >> q->sc_bits);

	return (last == 31 ? 0xffffffffULL : (1ULL << (last + 1)) - 1) & ~((1ULL << first) - 1);
}

/*
 * Write [in, in + len) of the cluster at guest offset coff into the host cluster
 * at host, whose subclusters in bm are already allocated: subclusters that the
 * write covers only in part get their old content around it first.
 */
static int write_subclusters(struct pimg *img, const void *buf, uint64_t in, uint64_t len, uint64_t coff,
			     uint64_t host, uint64_t e, uint64_t bm)
{
	struct qcow2 *q = img->priv;
	uint64_t scs = 1ULL << q->sc_bits, from = in & ~(scs - 1), to = align_up(in + len, scs);
	int ret;

	if (from == in && to == in + len)
		return pfile_pwrite(img->file, buf, len, host + in);
	/* Old content for the partial head and tail subclusters (unless allocated: written in place). */
	if (!(bm & (1ULL << (from >> q->sc_bits)))) {
		ret = read_old(img, e, bm, coff, from, from + scs);
		if (ret)
			return ret;
	} else if (from != in) {
		ret = pfile_pread(img->file, q->tmp + from, in - from, host + from, false);
		if (ret)
			return ret;
	}
	if (!(bm & (1ULL << ((to - 1) >> q->sc_bits)))) {
		ret = read_old(img, e, bm, coff, to - scs, to);
		if (ret)
			return ret;
	} else if (to != in + len) {
		ret = pfile_pread(img->file, q->tmp + in + len, to - in - len, host + in + len, false);
		if (ret)
			return ret;
	}
	memcpy(q->tmp + in, buf, len);
	return pfile_pwrite(img->file, q->tmp + from, to - from, host + from);
}

static int qcow2_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, in = off & (cs - 1), coff = off - in, e, bm = 0, host, mask;
	uint8_t *l2;
	int ret;

	if (q->repair_only)
		return -EROFS;
	qcow2_bitmaps_mark(q, off, len);
	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	e = ld_be64(l2_slot(q, l2, off));
	if (q->extl2)
		bm = ld_be64(l2_slot(q, l2, off) + 8);
	host = e & QCOW2_OFFSET_MASK;
	if (q->extl2 && !(e & QCOW2_COMPRESSED) && (!host || (e & QCOW2_COPIED))) {
		/* Subclusters: allocate the cluster if needed, write only what is touched. */
		mask = sc_mask(q, in, len);
		if (!host) {
			if (bm & 0xffffffffULL) {
				log_error("%s: corrupt extended L2 entry for offset %#" PRIx64, img->path, off);
				return -EIO;
			}
			ret = qcow2_alloc_data_cluster(img, &host);
			if (ret)
				return ret;
		} else {
			ret = check_data_offset(img, host);
			if (ret)
				return ret;
		}
		ret = write_subclusters(img, buf, in, len, coff, host, e, bm);
		if (ret)
			return ret;
		if (host == (e & QCOW2_OFFSET_MASK) && (bm & mask) == mask)
			return 0;
		ret = get_l2(img, off, true, &l2); /* the allocation may have evicted it */
		if (ret)
			return ret;
		put_entry(q, l2, off, host | QCOW2_COPIED, (bm | mask) & ~(mask << 32));
		return qcow2_trim_caches(img);
	}
	if (!(e & QCOW2_COMPRESSED) && (e & QCOW2_COPIED) && host && !(e & QCOW2_ZERO)) {
		ret = check_data_offset(img, host);
		if (ret)
			return ret;
		return pfile_pwrite(img->file, buf, len, host + in);
	}
	/* Copy-on-write into a new cluster. */
	if (len != cs) {
		ret = read_old(img, e, bm, coff, 0, cs);
		if (ret)
			return ret;
		memcpy(q->tmp + in, buf, len);
		buf = q->tmp;
	}
	ret = qcow2_alloc_data_cluster(img, &host);
	if (ret)
		return ret;
	ret = pfile_pwrite(img->file, buf, cs, host);
	if (ret)
		return ret;
	/* The allocation may have evicted our L2 table's slot: look it up again. */
	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	put_entry(q, l2, off, host | QCOW2_COPIED, 0xffffffffULL);
	if (q->dec_entry == e)
		q->dec_entry = 0;
	ret = qcow2_release_entry(img, e);
	if (ret)
		return ret;
	return qcow2_trim_caches(img);
}

/* Set the L2 entry (and bitmap) of the whole cluster at off, releasing what it held. */
static int set_entry(struct pimg *img, uint64_t off, uint64_t val, uint64_t bm)
{
	struct qcow2 *q = img->priv;
	uint8_t *l2;
	uint64_t e;
	int ret;

	if (q->repair_only)
		return -EROFS;
	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	e = ld_be64(l2_slot(q, l2, off));
	put_entry(q, l2, off, val, bm);
	if (q->dec_entry == e)
		q->dec_entry = 0;
	ret = qcow2_release_entry(img, e);
	if (ret)
		return ret;
	return qcow2_trim_caches(img);
}

/* Entry and bitmap of a cluster that reads as zeros. */
#define ZERO_ENTRY(q) ((q)->extl2 ? 0 : QCOW2_ZERO)
#define ZERO_BM 0xffffffff00000000ULL

/* [off, off + len) is a whole cluster (the last one may end at the virtual size). */
static bool whole_cluster(const struct pimg *img, uint64_t off, uint64_t len)
{
	const struct qcow2 *q = img->priv;

	return !(off & (q->cluster_size - 1)) && (len == q->cluster_size || off + len == img->size);
}

/*
 * Extended L2 entries: make the whole subclusters of [off, off + len) (inside one
 * cluster) read as zeros (zero bits) or, for a discard without a backing file,
 * unallocated. A cluster left with no allocated subcluster is released.
 * -ENOTSUP where it cannot (compressed cluster, or zeroing a partial subcluster).
 */
static int zero_subclusters(struct pimg *img, uint64_t len, uint64_t off, bool discard)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, scs = 1ULL << q->sc_bits, in = off & (cs - 1);
	uint64_t from = align_up(in, scs), to = (in + len) & ~(scs - 1), mask, e, bm, nbm;
	uint8_t *l2;
	int ret;

	if (from >= to || (!discard && (from != in || to != in + len)))
		return -ENOTSUP;
	ret = get_l2(img, off, true, &l2);
	if (ret)
		return ret;
	e = ld_be64(l2_slot(q, l2, off));
	bm = ld_be64(l2_slot(q, l2, off) + 8);
	if (e & QCOW2_COMPRESSED)
		return -ENOTSUP;
	mask = sc_mask(q, from, to - from);
	nbm = bm & ~mask;
	if (!discard || img->backing_name)
		nbm |= mask << 32;
	else
		nbm &= ~(mask << 32);
	if (nbm == bm)
		return 0;
	if ((e & QCOW2_OFFSET_MASK) && !(nbm & 0xffffffffULL)) {
		put_entry(q, l2, off, 0, nbm); /* no data left in the cluster: release it */
		ret = qcow2_release_entry(img, e);
		if (ret)
			return ret;
	} else {
		put_entry(q, l2, off, e, nbm);
	}
	return qcow2_trim_caches(img);
}

static int qcow2_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct qcow2 *q = img->priv;
	uint64_t e, bm;
	int ret;

	if (q->version < 3 || q->repair_only)
		return -ENOTSUP;
	qcow2_bitmaps_mark(q, off, len);
	if (!whole_cluster(img, off, len))
		return q->extl2 && may_unmap ? zero_subclusters(img, len, off, false) : -ENOTSUP;
	ret = get_entry(img, off, &e, &bm);
	if (ret)
		return ret;
	if (q->extl2 ? (!(e & QCOW2_OFFSET_MASK) && bm == ZERO_BM) : ((e & QCOW2_ZERO) && !(e & QCOW2_COMPRESSED)))
		return 0;
	if (!e && !bm && !img->backing)
		return 0; /* already reads as zeros */
	if (!may_unmap && (e & QCOW2_OFFSET_MASK) && (e & QCOW2_COPIED) && !(e & QCOW2_COMPRESSED))
		return -ENOTSUP; /* keep the allocation: the core writes zeros in place */
	return set_entry(img, off, ZERO_ENTRY(q), ZERO_BM);
}

static int qcow2_discard(struct pimg *img, uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;

	if (q->repair_only)
		return -EROFS;
	qcow2_bitmaps_mark(q, off, len);
	if (!whole_cluster(img, off, len)) {
		if (q->extl2) {
			int ret = zero_subclusters(img, len, off, true);

			return ret == -ENOTSUP ? 0 : ret;
		}
		return 0; /* partial clusters are left alone */
	}
	if (img->backing_name) /* unallocated would expose the backing file */
		return q->version >= 3 ? set_entry(img, off, ZERO_ENTRY(q), ZERO_BM) : 0;
	return set_entry(img, off, 0, 0);
}

/* Thread-safe: reads only the cluster size and compression type, fixed at open. */
static int qcow2_compress(const struct pimg *img, struct pimg_compressor *c, const void *buf,
			  uint64_t off, void *out, size_t *clen)
{
	const struct qcow2 *q = img->priv;
	size_t cap = q->cluster_size - SECTOR_SIZE; /* more would not save a cluster */

	(void)off;
	if (q->compression == COMP_ZSTD)
		return pimg_zstd(c, 3, buf, q->cluster_size, out, cap, clen);
	return pimg_deflate(c, -12, 9, buf, q->cluster_size, out, cap, clen);
}

static int qcow2_write_compressed(struct pimg *img, const void *cdata, size_t clen, const void *data,
				  uint64_t len, uint64_t off)
{
	struct qcow2 *q = img->priv;
	uint64_t cs = q->cluster_size, host, add, entry, start;
	const void *buf = data;
	unsigned x = 62 - (q->cluster_bits - 8);
	int ret;

	qcow2_bitmaps_mark(q, off, len);
	if (len < cs) { /* tail of the image: pad */
		memset(q->tmp, 0, cs);
		memcpy(q->tmp, data, len);
		buf = q->tmp;
	}
	if (!cdata)
		return qcow2_write(img, buf, cs, off);
	if (q->repair_only)
		return -EROFS;
	if (clen > cs - SECTOR_SIZE) /* not what qcow2_compress makes */
		return -EINVAL;
	/* Pack into the current partly used cluster when it is the last allocated one. */
	start = q->comp_cursor;
	if (start && (start & (cs - 1)) && (start & ~(cs - 1)) + cs == q->alloc_end) {
		uint64_t room = cs - (start & (cs - 1));

		ret = qcow2_refcount_add(img, start & ~(cs - 1), 1, 0);
		if (!ret && clen > room)
			ret = qcow2_alloc_clusters(img, (clen - room + cs - 1) / cs, &host);
		if (ret)
			return ret;
		host = start;
	} else {
		ret = qcow2_alloc_clusters(img, (clen + cs - 1) / cs, &host);
		if (ret)
			return ret;
	}
	ret = pfile_pwrite(img->file, cdata, clen, host);
	if (ret)
		return ret;
	q->comp_cursor = align_up(host + clen, SECTOR_SIZE);
	add = ((host + clen - 1) >> 9) - (host >> 9);
	entry = host | (add << x) | QCOW2_COMPRESSED;
	return set_entry(img, off, entry, 0);
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
	qcow2_cache_free(&q->l2c);
	qcow2_cache_free(&q->rbc);
	free(q->l1);
	free(q->rt);
	free(q->frees);
	free(q->frees_after_header);
	qcow2_free_snapshots(q);
	qcow2_free_bitmaps(q);
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
	struct qcow2 *q = img->priv;

	if (q->writable && !q->repair_only && q->nb_bitmaps)
		qcow2_bitmaps_store(img);
	qcow2_free(img->priv);
	img->priv = NULL;
}

const char *qcow2_table_fault(const struct qcow2 *q, uint64_t file_size, uint64_t off, uint64_t len)
{
	if (off & (q->cluster_size - 1))
		return "is not aligned to a cluster";
	if (off < q->cluster_size)
		return "overlaps the header";
	if (!range_within(off, len, file_size))
		return "lies outside the file";
	return NULL;
}

static int parse_extensions(struct pimg *img, const uint8_t *h, size_t hlen, uint64_t start,
			    uint64_t end)
{
	struct qcow2 *q = img->priv;
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
		} else if (type == EXT_BITMAPS) {
			int ret = qcow2_bitmap_ext(img, h + off + 8, len);

			if (ret)
				return ret;
		} else if (type == EXT_DATA_FILE) {
			log_error("%s: qcow2 external data files are not supported", img->path);
			return -ENOTSUP;
		} else if (type != EXT_FEATURE_TABLE && !q->unknown_ext) {
			q->unknown_ext = type;
		}
		off += 8 + align_up(len, 8);
	}
	return 0;
}

int qcow2_load_table(struct pimg *img, uint64_t off, uint64_t entries, uint64_t **out)
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
	bool writable = !(img->flags & PIMG_O_RDONLY), repair = img->flags & PIMG_O_REPAIR;
	const char *why;
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
	if (q->incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)) {
		log_error("%s: unsupported qcow2 incompatible features %#" PRIx64 "%s", img->path,
			  q->incompat, q->incompat & INCOMPAT_DATA_FILE ? " (external data file)" : "");
		ret = -ENOTSUP;
		goto out_free;
	}
	if (q->incompat & INCOMPAT_EXTL2) {
		/* 32 subclusters of at least 512 bytes each: clusters of 16 KiB or more. */
		if (q->cluster_bits < 14) {
			log_error("%s: extended L2 entries need clusters of 16 KiB or more (2^%u)", img->path,
				  q->cluster_bits);
			goto out_free;
		}
		q->extl2 = true;
		q->l2_entry_size = 16;
		q->sc_bits = q->cluster_bits - 5;
	} else {
		q->l2_entry_size = 8;
		q->sc_bits = q->cluster_bits;
	}
	q->l2_entries = cs / q->l2_entry_size;
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
	why = qcow2_table_fault(q, img->file->size, q->l1_offset, (uint64_t)q->l1_size * 8);
	if (why) {
		log_error("%s: L1 table at %#" PRIx64 " (%u entries) %s", img->path, q->l1_offset, q->l1_size, why);
		goto out_free;
	}
	why = (uint64_t)q->rt_clusters * cs > QCOW2_MAX_RT_BYTES ? "is larger than 8 MiB"
	      : !q->rt_clusters ? "is empty"
	      : qcow2_table_fault(q, img->file->size, q->rt_offset, (uint64_t)q->rt_clusters * cs);
	if (why) {
		log_error("%s: refcount table at %#" PRIx64 " (%u clusters) %s", img->path, q->rt_offset,
			  q->rt_clusters, why);
		goto out_free;
	}
	ret = qcow2_read_snapshots(img);
	if (ret)
		goto out_free;
	ret = -EINVAL;
	bf_off = ld_be64(h + 8);
	bf_len = ld_be32(h + 16);
	ret = parse_extensions(img, h, hsz, q->header_length, bf_off ? MIN(bf_off, cs) : cs);
	if (!ret)
		ret = qcow2_read_bitmaps(img);
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
	ret = qcow2_load_table(img, q->l1_offset, q->l1_mem, &q->l1);
	if (!ret)
		ret = qcow2_load_table(img, q->rt_offset, q->rt_entries, &q->rt);
	if (ret)
		goto out_free;
	ret = -ENOMEM;
	q->cbuf = malloc(2 * cs);
	q->tmp = malloc(cs);
	q->dec = malloc(cs);
	if (!q->cbuf || !q->tmp || !q->dec ||
	    qcow2_cache_init(&q->l2c, (unsigned)MIN(MAX(8 * MiB / cs, 4), 256), (uint32_t)cs) ||
	    qcow2_cache_init(&q->rbc, (unsigned)MIN(MAX(2 * MiB / cs, 4), 64), (uint32_t)cs))
		goto out_free;
	q->alloc_end = align_up(img->file->size, cs);

	img->size = size;
	if (writable) {
		why = NULL;
		if (q->version < 3)
			why = "qcow2 version 2 images are read-only here; convert to -O qcow2 first";
		else if (q->nb_snapshots && !repair)
			why = "images with internal snapshots are read-only here";
		else if (q->incompat & INCOMPAT_CORRUPT)
			why = "image is marked corrupt";
		else if ((q->incompat & INCOMPAT_DIRTY) && !repair)
			why = "image is dirty (lazy refcounts); run 'plinth-img check -r all' first";
		if (why) {
			log_error("%s: cannot open for writing: %s", img->path, why);
			ret = -EROFS;
			goto out_free;
		}
		if (repair) {
			/* A repair must not drop what it does not understand. */
			if (q->compat & ~KNOWN_COMPAT)
				why = "unknown compatible features";
			else if (q->autoclear & ~KNOWN_AUTOCLEAR)
				why = "unknown autoclear features";
			else if (q->unknown_ext)
				why = "an unknown header extension";
			else if (q->bm_error)
				why = q->bm_error;
			if (why) {
				log_error("%s: will not repair an image with %s (%#" PRIx64 ")", img->path, why,
					  q->compat & ~KNOWN_COMPAT ? q->compat
					  : q->autoclear & ~KNOWN_AUTOCLEAR ? q->autoclear : (uint64_t)q->unknown_ext);
				ret = -EROFS;
				goto out_free;
			}
			/* Repair changes refcounts only: bitmaps and autoclear bits stay valid. */
			q->repair_only = true;
		} else {
			ret = qcow2_bitmaps_for_writing(img);
			if (ret)
				goto out_free;
		}
		q->writable = true;
		if (!repair) {
			/* Growth bound: header, L1, refcount table, every L2 table and data cluster,
			 * the refcount blocks for all of them, and a little slack. */
			uint64_t n = 1 + ((uint64_t)q->l1_size * 8 + cs - 1) / cs + q->rt_clusters + l1_need +
				     (size + cs - 1) / cs;

			q->grow_limit = (n + n / q->rb_entries + 4) * cs;
			q->reuse = q->punch = true;
			q->free_hint = 1;
		}
	}
	img->granule = (uint32_t)cs;
	img->batched = true;
	return 0;

out_free:
	qcow2_free(q);
	img->priv = NULL;
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

static int qcow2_create(const char *path, const struct pimg_create_opts *o)
{
	uint64_t cs = o->cluster_size ? o->cluster_size : 64 * KiB, l2e = cs / (o->extended_l2 ? 16 : 8), l1_size, l1_cl,
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
	if (o->extended_l2 && cs < 16 * KiB) {
		log_error("qcow2 extended_l2 needs a cluster_size of 16k or more");
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
	st_be64(buf + 72, (comp == COMP_ZSTD ? INCOMPAT_COMPRESSION : 0) | (o->extended_l2 ? INCOMPAT_EXTL2 : 0));
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

static int qcow2_info(struct pimg *img, struct pimg_info *info)
{
	struct qcow2 *q = img->priv;
	int ret;

	info->cluster_size = q->cluster_size;
	info->dirty = q->incompat & INCOMPAT_DIRTY;
	pimg_info_add_str(info, "compat", q->version >= 3 ? "1.1" : "0.10");
	pimg_info_add_str(info, "compression-type", q->compression == COMP_ZSTD ? "zstd" : "zlib");
	pimg_info_add_bool(info, "lazy-refcounts", q->compat & COMPAT_LAZY_REFCOUNTS);
	pimg_info_add_num(info, "refcount-bits", 1 << q->refcount_order);
	pimg_info_add_bool(info, "corrupt", q->incompat & INCOMPAT_CORRUPT);
	pimg_info_add_bool(info, "extended-l2", q->extl2);
	ret = qcow2_snapshot_info(img, info);
	if (!ret)
		ret = qcow2_bitmap_info(img, info);
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
	ret = qcow2_bitmaps_resize(img, size, false);
	if (ret)
		return ret;
	if (need > QCOW2_MAX_L1_ENTRIES)
		return -EFBIG;
	if (need > q->l1_size) {
		uint64_t ncl = (need * 8 + cs - 1) / cs;
		uint64_t *l1 = calloc(need, sizeof(*l1));

		if (!l1)
			return -ENOMEM;
		ret = qcow2_alloc_clusters(img, ncl, &new_l1);
		if (!ret)
			ret = qcow2_flush(img); /* refcounts of the new L1 durable */
		if (!ret) {
			memcpy(l1, q->l1, (size_t)q->l1_size * 8);
			ret = qcow2_write_l1(img, new_l1, l1, (uint32_t)need);
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
	qcow2_bitmaps_resize(img, size, true);
	if (new_l1) {
		for (uint64_t i = 0; i < old_cl; i++) {
			ret = qcow2_push_free(q, old_l1 + i * cs);
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
	.compress = qcow2_compress,
	.write_compressed = qcow2_write_compressed,
	.flush = qcow2_flush,
	.info = qcow2_info,
	.check = qcow2_check,
	.resize = qcow2_resize,
};
