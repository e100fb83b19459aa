/* SPDX-License-Identifier: MIT */
/*
 * plinth-img: the disk image library (raw, qcow2, VHD, VHDX, VMDK, VDI; Parallels read-only).
 *
 * This is the library's only public header. It knows nothing of VMs: the VMM's
 * virtio-blk, the plinth-img tool and the tests all use images through it.
 *
 * Errors: calls return 0 (or a non-negative value where stated) or -errno;
 * constructors return a pointer or NULL. The reason for a failure is logged once,
 * where it happened, as one line through common/log.h: a caller that needs the
 * sentence (a daemon recording why a task failed) sets a sink there, or captures the
 * first error of one call on its thread (log_capture_begin/end).
 *
 * Threads: a struct pimg (with its backing chain) is not internally locked. Rule:
 * each open image is used by ONE thread at a time -- the disk's I/O thread.
 * Different images may be used by different threads concurrently: the library has
 * no mutable global state. Opening the same file twice for writing is not
 * supported; writable opens take an exclusive flock(2) on the file to refuse it,
 * read-only opens a shared one.
 *
 * Offsets and lengths are bytes. Any offset and length inside the virtual size is
 * accepted; 512-byte aligned requests avoid a read-modify-write.
 *
 * Durability: pimg_flush() returns once all completed writes, and the metadata
 * that maps them, are on stable storage (fdatasync). Until then a crash may lose
 * them but leaves an image that reads old or new data (see the update order at the
 * top of each format's source file).
 */
#ifndef PLINTH_IMG_H
#define PLINTH_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct pimg;

/* pimg_open() flags */
#define PIMG_O_RDONLY     (1u << 0) /* never write to the image (nor its chain) */
#define PIMG_O_NO_BACKING (1u << 1) /* do not open the backing file: unallocated reads as zero */
/* Open writable for pimg_check() repairs only: accepts images whose metadata needs
 * repair before normal writes (a dirty qcow2 with lazy refcounts). */
#define PIMG_O_REPAIR     (1u << 2)
/* Never fdatasync (qemu-img's cache=unsafe): for scratch copies only; a crash
 * may leave anything. */
#define PIMG_O_UNSAFE     (1u << 3)
/* Take no file locks (the image and its chain): for a live migration's destination,
 * which reads the image's size while the source still holds it, then reopens it
 * normally once the source has let go. Use with PIMG_O_RDONLY. */
#define PIMG_O_NOLOCK     (1u << 4)
/* With PIMG_O_RDONLY, for reporting (plinth-img info --backing-chain): open as much
 * of the backing chain as the policy allows; a backing file that is refused or
 * missing is left closed and pimg_backing_refusal() says why, where the open would
 * otherwise fail. Reads that need it fail (-ENOENT). */
#define PIMG_O_BACKING_REPORT (1u << 5)

/*
 * External files: the files an image names in its own bytes -- a qcow2 backing
 * file, a VHD, VHDX or VMDK parent, a VMDK descriptor's extents. Those names are
 * as hostile as the rest of the image, so an open follows none of them unless its
 * policy allows it, and then only:
 *   - inside the top image's own directory or one of dirs (absolute names too),
 *     reached through real directories: no symbolic link anywhere below the
 *     allowed directory, the file itself included;
 *   - a regular file, or a block device if allow_block_devices;
 *   - in the recorded format (a backing file without one is probed, and a file
 *     with no recognised header is refused rather than read as raw);
 *   - the parent the child was made from: the VHD unique id, VHDX data write GUID
 *     or VMDK CID the child recorded must match.
 * A refusal is one log line naming the image, the name it gave and the reason.
 * An embedded VMDK descriptor (monolithicSparse, streamOptimized) always means the
 * file itself, whatever name it writes.
 */
struct pimg_open_policy {
	bool allow_external;        /* follow the names at all (default: no) */
	const char *const *dirs;    /* more allowed directories, NULL-terminated; may be NULL */
	bool allow_block_devices;   /* an external file may be a block device */
};

/*
 * Open an image. format is a format name ("raw", "qcow2", "vpc", "vhdx", "vmdk",
 * "vdi", "parallels") or NULL to probe the header. Probing never selects raw for a
 * writable open: a file without a recognised header is refused unless format is
 * "raw"; nor for a file that carries the magic of a format the library does not
 * read (QED, cloop, Bochs, DMG, LUKS, compressed or tar files...). Opens no
 * file but the image itself: an image that names a backing file, parent or extent
 * is refused unless PIMG_O_NO_BACKING (then unallocated ranges read as zero; a VMDK
 * descriptor's extents are still needed); pimg_open_with() allows them. Backing
 * files are opened read-only, their chain depth is limited and loops refused.
 * Returns the image (owned by the caller, freed by pimg_close) or NULL.
 */
struct pimg *pimg_open(const char *path, const char *format, unsigned flags);
/* pimg_open under an external-file policy (see struct pimg_open_policy); policy NULL
 * or all zero is pimg_open: only the image itself. policy is read during the call only. */
struct pimg *pimg_open_with(const char *path, const char *format, unsigned flags,
			    const struct pimg_open_policy *policy);
/*
 * pimg_open_with on a file already open: fd (ownership passes; closed on failure
 * too) is the image, opened O_RDWR for a writable open. name stands for the file
 * in messages and, under a policy that allows external files, says whose
 * directory they may come from. The lock is taken on fd's open file description
 * (flock), so a caller that keeps a duplicate of fd keeps the lock after
 * pimg_close until it closes that duplicate or unlocks it (flock LOCK_UN). For a
 * process that must open an image again where its path no longer leads (a live
 * migration's destination inside --jail): it opens the file first and keeps it.
 */
struct pimg *pimg_open_fd(int fd, const char *name, const char *format, unsigned flags,
			  const struct pimg_open_policy *policy);
/*
 * Close the directory descriptors an image opened under an external-file policy keeps
 * for later opens (pimg_commit reopening its backing file writable). Every file the
 * chain reads is already open, so reads and writes go on; a later commit of img
 * fails. The VMM calls it before --jail: an open directory is a way out of a chroot.
 */
void pimg_drop_dirs(struct pimg *img);
/* Flush (if writable) and free the image and its backing chain. NULL is allowed. */
void pimg_close(struct pimg *img);

/* Probe a file's format without opening it: returns a static name or NULL (raw/unknown). */
const char *pimg_probe(const char *path);

uint64_t pimg_size(const struct pimg *img);
const char *pimg_format(const struct pimg *img);
/* Allocation granule (cluster, grain or block size) in bytes; 4 KiB for raw. */
uint32_t pimg_granule(const struct pimg *img);
bool pimg_read_only(const struct pimg *img);
/* The opened backing image, or NULL. Owned by img. */
struct pimg *pimg_backing(const struct pimg *img);
/* The path the image was opened by: as given for the top image, the resolved one for
 * a backing file. Owned by img. */
const char *pimg_filename(const struct pimg *img);
/* With PIMG_O_BACKING_REPORT: why img's backing file was not opened (one line, owned
 * by img), or NULL when it was opened or there is none. */
const char *pimg_backing_refusal(const struct pimg *img);

int pimg_pread(struct pimg *img, void *buf, size_t len, uint64_t off);
int pimg_pwrite(struct pimg *img, const void *buf, size_t len, uint64_t off);
/*
 * The same for n buffers read or written in order from off (the range is their sum), as
 * one request: raw images in preadv/pwritev calls, other formats with their data
 * transfers merged where they continue each other in the file. Buffers may be of any
 * length (unaligned ones are read-modified-written as pimg_pwrite does).
 */
int pimg_preadv(struct pimg *img, const struct iovec *iov, int n, uint64_t off);
int pimg_pwritev(struct pimg *img, const struct iovec *iov, int n, uint64_t off);
/* Make [off, off+len) read as zeros, deallocating where the format can. */
int pimg_write_zeroes(struct pimg *img, uint64_t off, uint64_t len);
/* Hint that [off, off+len) is unused; content afterwards reads as zero or as before. */
int pimg_discard(struct pimg *img, uint64_t off, uint64_t len);
int pimg_flush(struct pimg *img);

/*
 * Write one whole granule compressed (qcow2, VMDK streamOptimized). off must be
 * granule aligned, len the granule (or the tail of the image). Falls back to a
 * plain write where compression does not pay. -ENOTSUP for other formats.
 */
int pimg_write_compressed(struct pimg *img, const void *buf, size_t len, uint64_t off);

/*
 * The same in two steps, so that several threads compress while one writes (convert
 * -c): each thread has its own compressor for img (NULL when out of memory or img does
 * not compress: -ENOTSUP); pimg_compress turns one granule (the rules of
 * pimg_write_compressed) into at most pimg_compress_bound(img) bytes at out, and
 * returns -ENOSPC where compression does not pay; pimg_write_compressed_data writes
 * that result, or buf plainly when cdata is NULL. Compressors of one image may run at
 * once, also while another thread writes it; writes stay one thread's, in order.
 */
struct pimg_compressor;
struct pimg_compressor *pimg_compressor_new(const struct pimg *img);
void pimg_compressor_free(struct pimg_compressor *c);
size_t pimg_compress_bound(const struct pimg *img);
int pimg_compress(struct pimg_compressor *c, const void *buf, size_t len, uint64_t off, void *out,
		  size_t *clen);
int pimg_write_compressed_data(struct pimg *img, const void *cdata, size_t clen, const void *buf,
			       size_t len, uint64_t off);
/* True if len bytes at buf are all zero. */
bool pimg_is_zero(const void *buf, size_t len);

/* True if the format accepts only sequential writes (streamOptimized VMDK). */
bool pimg_sequential_only(const struct pimg *img);

/*
 * Give img's file a helper thread that takes half of every read of 2 MiB or more, and
 * of every such write to a block device, so that two CPUs copy to and from the page
 * cache (plinth-img convert); a regular file's writes stay whole (its inode lock would
 * run the halves one after the other). Calls
 * still return when all of their transfer is done. For tools only: a process whose
 * threads run under a seccomp filter (the VMM) must not start threads this way.
 * 0 or -errno (then transfers stay on the calling thread).
 */
int pimg_set_io_helper(struct pimg *img);

enum pimg_status {
	PIMG_DATA = 0,        /* allocated in this image; read it */
	PIMG_ZERO = 1,        /* reads as zeros, known without reading data */
	PIMG_UNALLOCATED = 2, /* not in this image: comes from the backing file (or zeros) */
};

/*
 * Status of [off, off+len): returns an enum pimg_status and sets *pnum to the
 * length (> 0, <= len) that shares it, or -errno. With through_backing,
 * unallocated ranges are resolved in the backing chain and only DATA or ZERO
 * comes back.
 */
int pimg_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum,
		      bool through_backing);

/*
 * Create an image. options is qemu-img's "-o" syntax ("key=value,key=value") or
 * NULL; accepted keys depend on the format (backing_file, backing_fmt,
 * cluster_size, compression_type, subformat, force_size, block_size, ...).
 * size 0 with a backing_file takes the backing file's size.
 */
int pimg_create(const char *path, const char *format, uint64_t size, const char *options);

/* What info shows. Strings are owned by the struct; free with pimg_info_free(). */
struct pimg_snapshot_info {
	char id[64];
	char name[256];
	uint64_t vm_state_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t icount;
};

/* A persistent dirty bitmap stored in the image (qcow2). */
struct pimg_bitmap_info {
	char name[1024];
	uint64_t granularity; /* bytes per bit */
	bool in_use;          /* not saved cleanly: may be inconsistent */
	bool auto_;           /* tracks every write (enabled) */
};

struct pimg_info_item {
	char key[48];
	bool is_num; /* num, else str */
	bool is_bool;
	int64_t num;
	char str[256];
};

struct pimg_info {
	char format[16];
	uint64_t virtual_size;
	uint64_t actual_size; /* bytes allocated on the host (st_blocks) */
	uint32_t cluster_size;    /* 0 if not meaningful */
	char backing_file[1024];  /* as written in the image, "" if none */
	char backing_fmt[32];
	bool dirty;
	size_t n_snapshots;
	struct pimg_snapshot_info *snapshots; /* owned */
	size_t n_bitmaps;
	struct pimg_bitmap_info *bitmaps;     /* owned */
	size_t n_items;                       /* format-specific information */
	struct pimg_info_item items[24];
};

int pimg_get_info(struct pimg *img, struct pimg_info *info);
void pimg_info_free(struct pimg_info *info);

/* Result of a consistency check. */
struct pimg_check {
	uint64_t corruptions;       /* errors that can make reads return wrong data */
	uint64_t leaks;             /* allocated but unused clusters */
	uint64_t corruptions_fixed;
	uint64_t leaks_fixed;
	uint64_t allocated_clusters;
	uint64_t total_clusters;
	uint64_t image_end_offset;
	bool check_errors; /* the check itself could not complete */
};

#define PIMG_REPAIR_LEAKS (1u << 0)
#define PIMG_REPAIR_ALL   (1u << 1)

/* Check (and with repair flags, fix) the image's metadata. 0 or -errno (-ENOTSUP). */
int pimg_check(struct pimg *img, struct pimg_check *res, unsigned repair);

/* Change the virtual size: raw grows and shrinks; qcow2, VHD and VHDX grow; VMDK refuses (-ENOTSUP). */
int pimg_resize(struct pimg *img, uint64_t size);

/*
 * Copy every range allocated in img (not its backing file) into the backing file,
 * which is reopened writable for the purpose. img's content is unchanged.
 */
int pimg_commit(struct pimg *img);

#endif
