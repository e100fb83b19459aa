/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the generic layer (core.c), the protocol (file.c) and the
 * formats (one file each). Not installed: users include plinth-img.h only.
 *
 * Layering: "formats map offsets; protocols move bytes".
 *   core.c   -- request checks, alignment (read-modify-write), splitting at the
 *               format's granule, zero detection, backing-chain reads.
 *   <format> -- maps a guest range inside ONE granule to host bytes.
 *   file.c   -- moves bytes to and from a host file (an ops table, so tests can
 *               inject faults exactly where production does I/O).
 */
#ifndef PLINTH_IMG_INTERNAL_H
#define PLINTH_IMG_INTERNAL_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "log.h"
#include "plinth-img.h"
#include "util.h"

#define SECTOR_SIZE      512u
#define MAX_BACKING_DEPTH 16

/* ---- protocol: a host file ---------------------------------------------- */

struct pimg_file;

struct pimg_file_ops {
	int (*pread)(struct pimg_file *f, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct pimg_file *f, const void *buf, size_t len, uint64_t off);
	int (*sync)(struct pimg_file *f);
	int (*punch)(struct pimg_file *f, uint64_t off, uint64_t len);
	int (*truncate)(struct pimg_file *f, uint64_t size);
	/* Optional: make a range inside the file read as zeros without writing them
	 * (-EOPNOTSUPP: the caller writes zeros). */
	int (*zero_range)(struct pimg_file *f, uint64_t off, uint64_t len);
	/* Optional: vectored transfers, all or -errno (NULL: one pread/pwrite per piece). */
	int (*preadv)(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off);
	int (*pwritev)(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off);
};

/*
 * Transfers of one request that follow each other in the file, merged into one
 * vectored call (pfile_batch_begin). Only pieces of the request's own buffer are
 * queued; any other operation on the file sends the queue first, so the file sees
 * the same order of writes as without the batch.
 */
#define PFILE_BATCH_IOV 64
struct pfile_batch {
	const uint8_t *lo, *hi; /* the request's buffer: only transfers inside it queue */
	unsigned depth;         /* nested begins */
	bool write;             /* what the queue holds */
	int n;                  /* iov entries queued */
	uint64_t off, len;      /* file range of the queue */
	struct iovec iov[PFILE_BATCH_IOV];
};

struct pimg_file {
	const struct pimg_file_ops *ops;
	int fd;
	bool rdonly;
	bool unsafe;    /* PIMG_O_UNSAFE: sync is a no-op */
	bool blockdev;  /* a block device, not a regular file */
	bool sync_failed; /* a sync failed: every later one fails with -EIO (sticky) */
	uint64_t size;  /* current length, kept up to date by pwrite/truncate (queued ones too) */
	struct pfile_batch batch;
	struct pfile_helper *helper; /* owned: takes half of large transfers, or NULL */
	void *opaque;   /* for wrapping ops (tests) */
	char *path;     /* owned */
};

extern const struct pimg_file_ops pimg_posix_file_ops;

/* Open a host file; create with O_CREAT|O_TRUNC when create. NULL on error (logged).
 * The file is locked (shared if rdonly, else exclusive) unless nolock. */
struct pimg_file *pfile_open_lock(const char *path, bool rdonly, bool create, bool nolock);
struct pimg_file *pfile_open(const char *path, bool rdonly, bool create);
/* The same for an fd already open (ownership passes, closed on failure too). */
struct pimg_file *pfile_from_fd(int fd, const char *path, bool rdonly, bool nolock);
void pfile_close(struct pimg_file *f);
/*
 * Read exactly len bytes; bytes beyond the end of the file read as zeros unless
 * strict (then -EIO). Metadata reads are strict, data reads not (QEMU's habit of
 * leaving the last cluster short).
 */
int pfile_pread(struct pimg_file *f, void *buf, size_t len, uint64_t off, bool strict);
int pfile_pwrite(struct pimg_file *f, const void *buf, size_t len, uint64_t off);
int pfile_sync(struct pimg_file *f);
int pfile_punch(struct pimg_file *f, uint64_t off, uint64_t len);
int pfile_truncate(struct pimg_file *f, uint64_t size);
/* Make [off, off+len), inside the file, read as zeros (zero range or hole where the
 * file system can, else written zeros). Never grows the file. */
int pfile_write_zeroes(struct pimg_file *f, uint64_t off, uint64_t len);
/* A failed sync sticks: pfile_sync, and so pimg_flush, fail with -EIO from then on. */
/*
 * Between begin and end, data reads and writes into or out of [buf, buf+len) that
 * continue the previous one in the file are queued, and sent as one preadv/pwritev
 * when the run breaks, at any other operation on the file, or at end. The caller
 * must not look at read bytes, nor change written ones, before end; an error of a
 * queued transfer is returned by whatever sends it (end at the latest). Begins nest;
 * only the outermost buffer counts. For formats that set pimg.batched.
 */
void pfile_batch_begin(struct pimg_file *f, const void *buf, uint64_t len);
/* Inside a batch: transfers into or out of [buf, buf+len) are queued from now on, in
 * place of the previous window's (a vectored request's next buffer); what is queued
 * stays, and the caller leaves every window's bytes alone until end. */
void pfile_batch_window(struct pimg_file *f, const void *buf, uint64_t len);
int pfile_batch_end(struct pimg_file *f);
/*
 * Vectored read or write of n buffers (len bytes in all, n >= 0, any count) at off:
 * one preadv/pwritev per PFILE_BATCH_IOV buffers (writes to a regular file in pieces,
 * as pfile_pwrite). Reads past the end of the file read as zeros, as pfile_pread's
 * non-strict ones.
 */
int pfile_rwv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t len, uint64_t off,
	      bool write);
/* Start f's helper thread (pimg_set_io_helper); 0 or -errno. Stopped by pfile_close. */
int pfile_start_helper(struct pimg_file *f);

/* Test hook: the ops used by every pfile_open() of this process (NULL: posix). */
void pimg_set_file_ops_for_testing(const struct pimg_file_ops *ops);

/* ---- create options ------------------------------------------------------ */

struct pimg_create_opts {
	uint64_t size;
	const char *backing_file; /* NULL if none */
	const char *backing_fmt;
	uint64_t backing_size;    /* filled by pimg_create when a backing file is given */
	uint32_t cluster_size;    /* 0: format default */
	uint32_t block_size;      /* VHDX block size, 0: default */
	const char *subformat;    /* NULL: format default */
	const char *compression_type;
	bool force_size;
	bool lazy_refcounts;
	bool extended_l2;         /* qcow2: 32 subclusters per cluster */
	const char *adapter_type; /* VMDK */
	bool static_image;        /* VDI: static=on, every block allocated (qemu-img's name) */
};

/* ---- formats -------------------------------------------------------------- */

struct pimg_format {
	const char *name;
	/* Keys accepted by create's -o. */
	const char *const *create_keys;
	/*
	 * Score a file's head (first head_len bytes, up to 64 KiB) and tail (last
	 * 512 bytes, or NULL). 0: not this format; 100: certain.
	 */
	int (*probe)(const uint8_t *head, size_t head_len, const uint8_t *tail, uint64_t file_size);
	/* Parse the image on img->file; set img->size, img->granule, img->priv, backing names. */
	int (*open)(struct pimg *img);
	void (*close)(struct pimg *img);
	int (*create)(const char *path, const struct pimg_create_opts *o);

	/*
	 * Request callbacks. The core guarantees: off and len are 512-aligned (the
	 * raw format sets byte_granular to receive any), len > 0 and the range lies
	 * inside one granule and inside the virtual size; writes only on writable
	 * images.
	 */
	int (*block_status)(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum);
	int (*read)(struct pimg *img, void *buf, uint64_t len, uint64_t off);   /* DATA ranges only */
	int (*write)(struct pimg *img, const void *buf, uint64_t len, uint64_t off);
	/* Optional: -ENOTSUP makes the core write a buffer of zeros instead. */
	int (*write_zeroes)(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap);
	int (*discard)(struct pimg *img, uint64_t len, uint64_t off);
	/*
	 * Optional, both or neither. compress: one whole granule (zero padded) at off into
	 * out (pimg_compress_bound bytes) with c's streams; it reads only what open set, so
	 * threads may compress for one image at once, also while another writes it.
	 * 0 and *clen, or -ENOSPC where compression does not pay. write_compressed: what
	 * compress made (cdata, clen), or buf (len bytes, the granule or the image's tail)
	 * plainly when cdata is NULL.
	 */
	int (*compress)(const struct pimg *img, struct pimg_compressor *c, const void *granule,
			uint64_t off, void *out, size_t *clen);
	int (*write_compressed)(struct pimg *img, const void *cdata, size_t clen, const void *buf,
				uint64_t len, uint64_t off);
	int (*flush)(struct pimg *img); /* metadata out, then the core syncs the file */
	int (*info)(struct pimg *img, struct pimg_info *info);
	int (*check)(struct pimg *img, struct pimg_check *res, unsigned repair);
	int (*resize)(struct pimg *img, uint64_t size);
	bool byte_granular;
};

struct pimg {
	const struct pimg_format *fmt;
	struct pimg_file *file;
	char *path;          /* as given, owned */
	unsigned flags;
	uint64_t size;       /* virtual size */
	uint32_t granule;    /* power of two >= 512 */
	bool batched;        /* set by open: read/write never touch the caller's buffer
			      * after a pfile transfer into or out of it (pfile_batch_begin) */
	bool sequential_only;
	/* pimg_write_compressed's compressor and its output buffer, made at first use; owned. */
	struct pimg_compressor *comp;
	uint8_t *comp_out;
	void *priv;          /* the format's state, owned by the format */
	/* Backing file as named in the image (owned), and its format or NULL. */
	char *backing_name;
	char *backing_fmt;
	struct pimg *backing;
	unsigned depth;      /* 0 for the top image */
	/* Chain loop detection: device/inode of every image above this one. */
	uint64_t chain_ids[MAX_BACKING_DEPTH + 1][2];
	/* Which external files the chain may open (core.c); owned by the top image,
	 * shared by its chain; NULL: none (the default). */
	struct pimg_trust *trust;
	/* PIMG_O_BACKING_REPORT: why the backing file was not opened (owned), or NULL. */
	char *backing_refused;
	/*
	 * Parent identity, set by the format at open: id is what a child of this image
	 * records (VHD unique id, VHDX data write GUID, VMDK CID), parent_id what this
	 * image records of its parent. The core compares them when it opens the
	 * backing file; length 0: nothing to compare.
	 */
	uint8_t id[16], parent_id[16];
	uint8_t id_len, parent_id_len;
};

extern const struct pimg_format pimg_fmt_raw, pimg_fmt_qcow2, pimg_fmt_vpc, pimg_fmt_vhdx,
	pimg_fmt_vmdk, pimg_fmt_vdi, pimg_fmt_parallels;

const struct pimg_format *pimg_find_format(const char *name);

/* Read [off, off+len) from the backing chain (zeros where there is none). */
int pimg_read_backing(struct pimg *img, void *buf, uint64_t len, uint64_t off);

/* Resolve name relative to the directory of base; returns malloc'd path. For names
 * the operator gives (create's backing_file), never for names read from an image. */
char *pimg_path_relative_to(const char *base, const char *name);

/*
 * External files: every file an image names (backing file, parent, extent) is
 * opened here, under the chain's policy (struct pimg_open_policy): refused unless
 * allowed, and then only inside an allowed directory, through real directories (no
 * symbolic links), a regular file (a block device only if allowed).
 *
 * pimg_open_external: the file named by img, opened (read-only if rdonly, locked like
 * img unless PIMG_O_NOLOCK). NULL on refusal or error, after one line naming img,
 * what ("extent", ...) and why.
 */
struct pimg_file *pimg_open_external(struct pimg *img, const char *name, bool rdonly,
				     const char *what);
/* True if the policy allows external files for img's chain. */
bool pimg_external_allowed(const struct pimg *img);
/* Whether name resolves, under the policy, to a file that could be opened (no log line):
 * 0 yes (then *st, if given, is its fstat), -ENOENT no such file, another -errno
 * refused. For formats that try several recorded names (VHD and VHDX parent
 * locators) or share one file between extents. */
int pimg_external_find(const struct pimg *img, const char *name, struct stat *st);

/* Helpers for formats: little/big-endian loads and stores on possibly unaligned bytes. */
static inline uint16_t ld_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline uint32_t ld_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint64_t ld_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline uint16_t ld_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t ld_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t ld_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void st_be16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static inline void st_be32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void st_be64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline void st_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void st_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void st_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* Log a check finding; only the first 20 are printed, the counts say the rest. */
#define check_log(res, ...)                                        \
	do {                                                       \
		if ((res)->corruptions + (res)->leaks < 20)        \
			log_error(__VA_ARGS__);                    \
	} while (0)

/* info helpers */
void pimg_info_add_str(struct pimg_info *info, const char *key, const char *val);
void pimg_info_add_num(struct pimg_info *info, const char *key, int64_t val);
void pimg_info_add_bool(struct pimg_info *info, const char *key, bool val);

/* Sort table entries (block offsets) in place, for overlap checks. */
void pimg_sort_u32(uint32_t *v, size_t n);

/* CRC-32C (Castagnoli), as VHDX uses it. */
uint32_t pimg_crc32c(uint32_t crc, const void *buf, size_t len);

/* Random bytes for GUIDs / unique ids (getrandom). */
void pimg_random(void *buf, size_t len);

/*
 * Compression streams kept in a pimg_compressor across granules (core.c), so that no
 * granule pays for setting a stream up. Each returns 0 and *out_len, -ENOSPC when the
 * result would not fit in cap, -ENOMEM. pimg_deflate: zlib's deflate at the default
 * level with those window bits (negative: raw deflate, 15: zlib header) and memory level.
 */
int pimg_deflate(struct pimg_compressor *c, int window_bits, int mem_level, const void *in,
		 size_t len, void *out, size_t cap, size_t *out_len);
int pimg_zstd(struct pimg_compressor *c, int level, const void *in, size_t len, void *out,
	      size_t cap, size_t *out_len);

#endif
