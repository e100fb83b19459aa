/* SPDX-License-Identifier: MIT */
/*
 * qcow2 (QEMU copy-on-write v2/v3; docs/interop/qcow2.txt), split by concern:
 *   qcow2.c     open, create, info, resize, guest offset mapping and I/O; the ops table
 *   refcount.c  the table caches, refcounts, cluster allocation, the flush order below
 *   snapshot.c  the internal snapshot table
 *   bitmap.c    the persistent bitmaps extension (directory, tables)
 *   check.c     check and repair
 *
 * Guest offset -> L1 index -> L2 table (one cluster) -> L2 entry:
 *   0                      unallocated (backing file, or zeros)
 *   bit 0 (v3)             reads as zeros (host offset may be kept or 0)
 *   bits 9..55             host cluster offset; bit 63 COPIED = refcount is 1
 *   bit 62 COMPRESSED      host byte offset + extra 512-byte sectors (deflate/zstd)
 * With extended L2 entries (incompatible bit 4) each entry is followed by a
 * 64-bit subcluster bitmap: bit n (n < 32) subcluster n allocated in the host
 * cluster, bit 32 + n subcluster n reads as zeros, neither: unallocated. The core
 * still splits at clusters; block_status answers per run of subclusters.
 * Host clusters are counted in refcount blocks, found through the refcount table.
 *
 * Support: v3 read/write (extended L2 entries too), v2 read-only; zlib and zstd
 * compressed clusters read, written by pimg_write_compressed; images with internal
 * snapshots (except for check -r), the dirty (except for check -r) or corrupt bit
 * are opened read-only; external data files and encryption are refused.
 *
 * Invariants (every write path keeps them):
 *  I1. A host cluster is never referenced by an on-disk L1/L2 entry before its
 *      refcount, and (for data) its content, is on stable storage.
 *  I2. A refcount is never decremented on disk before the on-disk L1/L2 entries
 *      that referenced the cluster are gone from stable storage.
 *  I3. A freed cluster is reused only once its refcount is 0 (flush step 6 has
 *      run, so no on-disk entry references it): a freed-but-still-referenced
 *      cluster is never overwritten. Data clusters and L2 tables take the lowest
 *      free cluster; other allocations append at alloc_end. Freed clusters are
 *      punched, free clusters at the end of the file cut off; pending frees are
 *      applied once they exceed 32 MiB and before the file would grow beyond
 *      the virtual size plus metadata (grow_limit), which bounds the file.
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
#ifndef PLINTH_IMG_QCOW2_H
#define PLINTH_IMG_QCOW2_H

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
#define QCOW2_MAX_SNAPSHOTS 65536                 /* QEMU's limits for the snapshot table */
#define QCOW2_MAX_SNAPSHOTS_SIZE (64u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024
#define QCOW2_MAX_HOST_OFFSET (1ULL << 56)

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define AUTOCLEAR_BITMAPS (1ULL << 0)
#define AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)
#define KNOWN_AUTOCLEAR (AUTOCLEAR_BITMAPS | AUTOCLEAR_DATA_FILE_RAW)
#define KNOWN_COMPAT COMPAT_LAZY_REFCOUNTS

#define BM_FLAG_IN_USE (1u << 0)
#define BM_FLAG_AUTO (1u << 1)
#define BM_FLAG_EXTRA_COMPAT (1u << 2)

#define EXT_END 0
#define EXT_BACKING_FMT 0xE2792ACAu
#define EXT_FEATURE_TABLE 0x6803f857u
#define EXT_DATA_FILE 0x44415441u
#define EXT_BITMAPS 0x23852875u
#define EXT_CRYPTO 0x0537be77u

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

/* One entry of the snapshot table (snapshot.c). */
struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size;   /* UINT64_MAX when the entry has no such field */
	uint64_t icount;      /* UINT64_MAX when absent */
	char *id, *name;      /* owned, NUL-terminated */
};

/* One entry of the bitmap directory (bitmap.c). */
struct qcow2_bitmap {
	uint64_t table_offset;
	uint32_t table_size;  /* entries */
	uint32_t flags;
	uint8_t type, gran_bits;
	uint64_t dir_off;     /* where its directory entry is, for messages */
	char *name;           /* owned */
	/* Tracked while writable (enabled bitmaps that loaded cleanly), else NULL: */
	uint8_t *bits;        /* the whole bitmap, owned */
	uint64_t nbits;       /* bits covering the virtual size */
	uint64_t *table;      /* its bitmap table, host endian, owned */
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
	uint64_t snapshots_size;      /* bytes of the table, from parsing it */
	struct qcow2_snapshot *snaps; /* nb_snapshots entries, owned */
	bool bm_ext;                  /* a bitmaps extension is present */
	uint32_t bm_count;            /* as the extension says */
	uint64_t bm_dir_offset, bm_dir_size;
	struct qcow2_bitmap *bitmaps; /* nb_bitmaps entries, owned; 0 if unused or malformed */
	uint32_t nb_bitmaps;
	char *bm_error;               /* why the directory was not used, owned, or NULL */
	bool extl2;                   /* extended L2 entries: 16-byte entries, 32 subclusters */
	uint32_t l2_entry_size;       /* 8 or 16 */
	uint32_t sc_bits;             /* log2 of the subcluster size (= cluster_bits without extl2) */
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
	bool reuse;                   /* allocate clusters whose refcount dropped to 0 (not in repair) */
	bool punch;                   /* punch holes where clusters are freed */
	uint64_t free_hint;           /* no free cluster below this index (reuse) */
	uint64_t grow_limit;          /* virtual size + metadata: beyond it, reuse before growing */
	bool repair_only;             /* opened for check -r: only refcounts may change */
	uint32_t unknown_ext;         /* type of the first unknown header extension, or 0 */
};

/* ---- refcount.c ------------------------------------------------------------ */

int qcow2_cache_init(struct cache *c, unsigned budget, uint32_t cluster_size);
void qcow2_cache_free(struct cache *c);
/* The table at host offset off, loaded (load) or zeroed and dirty; valid until the
 * next qcow2_cache_get on the same cache. */
int qcow2_cache_get(struct pimg *img, struct cache *c, uint64_t off, bool load, uint8_t **out);
void qcow2_cache_mark_dirty(struct cache *c, const uint8_t *data);
int qcow2_refcount_get(struct pimg *img, uint64_t host, uint64_t *out);
int qcow2_refcount_add(struct pimg *img, uint64_t host, int delta, unsigned depth);
/* n new clusters (refcount 1) at *out. */
int qcow2_alloc_clusters(struct pimg *img, uint64_t n, uint64_t *out);
/* One cluster for data or an L2 table: reuses a free one when it can (I3). */
int qcow2_alloc_data_cluster(struct pimg *img, uint64_t *out);
/* Queue a refcount decrement, applied in flush step 6. */
int qcow2_push_free(struct qcow2 *q, uint64_t host);
/* Host byte range [*off, *end) of a compressed cluster's data. */
void qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *end);
/* Queue the release of whatever host clusters an L2 entry held. */
int qcow2_release_entry(struct pimg *img, uint64_t entry);
int qcow2_write_l1(struct pimg *img, uint64_t off, const uint64_t *l1, uint32_t n);
int qcow2_flush(struct pimg *img);
/* End of a modifying request: flush when a cache is over budget. */
int qcow2_trim_caches(struct pimg *img);

/* ---- snapshot.c, bitmap.c ------------------------------------------------- */

int qcow2_read_snapshots(struct pimg *img);
void qcow2_free_snapshots(struct qcow2 *q);
int qcow2_snapshot_info(struct pimg *img, struct pimg_info *info);
int qcow2_bitmap_ext(struct pimg *img, const uint8_t *p, uint32_t len);
int qcow2_read_bitmaps(struct pimg *img);
void qcow2_free_bitmaps(struct qcow2 *q);
int qcow2_bitmap_info(struct pimg *img, struct pimg_info *info);
int qcow2_bitmaps_for_writing(struct pimg *img);
/* A guest write (or zeroing, discard) of [off, off + len): set the tracked bits. */
void qcow2_bitmaps_mark(struct qcow2 *q, uint64_t off, uint64_t len);
/* A resize to size: refuse (-ENOTSUP) where a bitmap table would have to grow;
 * with commit, extend the tracked bitmaps (the new range is clean). */
/* Bitmap table entries a bitmap of granularity 2^gran_bits needs for a disk of size bytes. */
uint64_t qcow2_bitmap_table_need(const struct qcow2 *q, uint64_t size, uint8_t gran_bits);
int qcow2_bitmaps_resize(struct pimg *img, uint64_t size, bool commit);
/* Write the tracked bitmaps back and clear their in_use flag (writable close). */
int qcow2_bitmaps_store(struct pimg *img);

/* ---- check.c --------------------------------------------------------------- */

int qcow2_check(struct pimg *img, struct pimg_check *res, unsigned repair);

/* ---- qcow2.c (shared with check.c) ----------------------------------------- */

/* Read entries 64-bit big-endian words at off into a new host-endian array (*out, owned). */
int qcow2_load_table(struct pimg *img, uint64_t off, uint64_t entries, uint64_t **out);
/* Why a table of len bytes at off is unusable ("overlaps the header", ...), or NULL. */
const char *qcow2_table_fault(const struct qcow2 *q, uint64_t file_size, uint64_t off, uint64_t len);

#endif
