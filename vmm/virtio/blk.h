/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk internals shared with its tests and fuzz target: the storage backend
 * interface the device does all its I/O through (so that tests inject faults with
 * the same ops table production uses), and the constructor below the command line.
 */
#ifndef PLINTH_VMM_VIRTIO_BLK_H
#define PLINTH_VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio.h"

/*
 * A disk as the device sees it: byte offsets, already checked against size().
 * Every call returns 0 or -errno; called only from the device's I/O thread.
 */
struct blk_backend_ops {
	const char *name;
	int (*read)(void *be, void *buf, size_t len, uint64_t off);
	int (*write)(void *be, const void *buf, size_t len, uint64_t off);
	/* Optional: a request's n buffers at once, in order from off (else one read or
	 * write per buffer). */
	int (*readv)(void *be, const struct iovec *iov, int n, uint64_t off);
	int (*writev)(void *be, const struct iovec *iov, int n, uint64_t off);
	/* Completed writes reach stable storage (fdatasync or equivalent). */
	int (*flush)(void *be);
	/* Hint: the range is unused. -EOPNOTSUPP is fine (treated as done). */
	int (*discard)(void *be, uint64_t off, uint64_t len);
	/* The range reads as zeros afterwards. */
	int (*write_zeroes)(void *be, uint64_t off, uint64_t len, bool may_unmap);
	uint64_t (*size)(void *be);
	void (*close)(void *be);
	/*
	 * Optional, for a live migration's hand-over of the image files (the I/O
	 * thread is stopped): release flushes and closes the files, so that the
	 * destination may open them; acquire (re)opens them with their locks, fresh
	 * (no metadata cached from before), and checks the size is unchanged.
	 * Requests while released fail with -EIO. 0 or -errno; acquire answers
	 * -EWOULDBLOCK, without logging, while another process holds the image.
	 */
	int (*release)(void *be);
	int (*acquire)(void *be);
};

/*
 * A disk image through the image library (plinth-img.h): format is the library's
 * name ("raw", "qcow2", "vpc", "vhdx", "vmdk", "vdi", "parallels") or NULL to probe, which the library
 * refuses for a writable file without a recognised header. NULL on error (logged).
 */
void *blk_img_open(const char *path, const char *format, bool readonly);
/* The same, for a migration's destination: opened read-only without locks (the
 * source holds them) until the acquire op takes it over. */
void *blk_img_open_incoming(const char *path, const char *format, bool readonly);
extern const struct blk_backend_ops blk_img_ops;

struct blk_opts {
	bool readonly;
	char id[20]; /* VIRTIO_BLK_T_GET_ID answer, NUL-padded */
};

/*
 * A virtio-blk device over backend be (ownership passes to the device: closed by
 * its destroy, or here on failure). vdev must stay valid until virtio_dev_fini.
 * 0 or -errno.
 */
int virtio_blk_init(struct virtio_dev *vdev, const struct guest_mem *mem,
		    const struct blk_backend_ops *bops, void *be, const struct blk_opts *opts);

/* Serializable device state: identity only (all I/O is synchronous, none in flight). */
struct virtio_blk_state {
	uint64_t capacity; /* sectors */
	uint8_t readonly;
};

extern const struct virtio_dev_ops virtio_blk_ops;

/* The backend's release / acquire (above) for a virtio-blk device; 0 for a
 * backend without them. */
int virtio_blk_release(struct virtio_dev *vdev);
int virtio_blk_acquire(struct virtio_dev *vdev);
/* The image file a virtio-blk device over the image library holds open (not owned;
 * its disk identity is read from it), or -ENODEV. */
int virtio_blk_file(struct virtio_dev *vdev);

#endif
