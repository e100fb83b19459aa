/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue (virtio 1.x, section 2.7), device side.
 *
 * Everything in the three rings is written by the guest and is hostile: a descriptor
 * is copied out of guest memory once, then checked (index, flags, address, length)
 * before anything is done with it, and every guest range is turned into host
 * pointers through guest_mem_ptr(), so a chain can never reach outside guest RAM.
 *
 * Invariants:
 *  1. A queue is "ready" only after virtq_enable() checked that its three rings lie
 *     wholly inside guest RAM with the alignment the spec requires; ring pointers
 *     are cached then and never change until virtq_reset().
 *  2. A walk visits at most `size` descriptors of a direct chain and at most the
 *     table length of an indirect one, so loops end; nested indirect tables,
 *     INDIRECT together with NEXT, readable-after-writable descriptors, and
 *     indices beyond the table are refused.
 *  3. Once a malformed chain or ring index is seen the queue is "broken": every
 *     later pop returns -EIO without reading the rings, and the device asks its
 *     transport for DEVICE_NEEDS_RESET. Nothing spins on a bad ring.
 *  4. Barriers: avail->idx is read with acquire before ring entries; used entries
 *     are written before used->idx is stored with release; a full fence separates
 *     publishing used->idx (or avail_event) from reading used_event (or re-reading
 *     avail->idx), so neither side misses a notification.
 *
 * Threads: a queue is driven by one thread at a time (the device's I/O thread while
 * the device runs; the vCPU thread configures it only while it is stopped).
 */
#ifndef PLINTH_VMM_VIRTIO_QUEUE_H
#define PLINTH_VMM_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem.h"

#define VIRTQ_MAX_SIZE 1024 /* largest queue we offer (Linux's limit too) */
#define VIRTQ_MAX_SEGS 1024 /* host segments in one chain (also bounds indirect tables) */

/* The serializable part of a queue: what a snapshot or migration must carry. */
struct virtq_state {
	uint16_t size;          /* negotiated size, power of two <= max_size */
	uint8_t ready;          /* queue_enable was accepted */
	uint8_t signalled_valid; /* signalled_used holds a meaningful value (EVENT_IDX) */
	uint64_t desc_gpa;      /* descriptor table */
	uint64_t avail_gpa;     /* driver area */
	uint64_t used_gpa;      /* device area */
	uint16_t last_avail;    /* next avail ring slot the device will consume */
	uint16_t used_idx;      /* next used ring slot the device will fill */
	uint16_t signalled_used; /* used_idx at the last interrupt sent (EVENT_IDX) */
};

struct vring_desc_le;
struct vring_avail_le;
struct vring_used_le;

struct virtq {
	struct virtq_state st;
	uint16_t max_size;         /* offered to the driver */
	const struct guest_mem *mem; /* not owned */
	bool event_idx;            /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;             /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool broken;               /* invariant 3 */
	/* Host pointers into the rings, valid while st.ready (invariant 1). */
	struct vring_desc_le *desc;
	struct vring_avail_le *avail;
	struct vring_used_le *used;
};

/*
 * One descriptor chain turned into host segments: out (device-readable) segments
 * come first, then in (device-writable) ones. A guest buffer that crosses a memory
 * slot boundary becomes several segments.
 */
struct virtq_elem {
	uint16_t head;         /* head descriptor index, returned in the used ring */
	unsigned int out_num;  /* device-readable segments: iov[0, out_num) */
	unsigned int in_num;   /* device-writable segments: iov[out_num, out_num + in_num) */
	uint64_t out_len;      /* bytes in the readable segments */
	uint64_t in_len;       /* bytes in the writable segments */
	struct iovec iov[VIRTQ_MAX_SEGS];
};

/* Set up an unconfigured queue (size defaults to max_size, a power of two). */
void virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t max_size);
/* Forget all driver configuration (device reset). */
void virtq_reset(struct virtq *vq);
/* True if size is acceptable for this queue (power of two, 1..max_size). */
bool virtq_size_ok(const struct virtq *vq, uint64_t size);
/*
 * Check the configured rings (invariant 1) and mark the queue ready.
 * 0, or -EINVAL (bad size or alignment) / -EFAULT (ring outside guest RAM).
 */
int virtq_enable(struct virtq *vq);
/* Apply negotiated ring features (called at DRIVER_OK). */
void virtq_set_features(struct virtq *vq, uint64_t features);

/*
 * Take the next available chain. 1 with *elem filled, 0 when the ring is empty,
 * -EIO when the queue is (now) broken (invariant 3). why, if not NULL, receives a
 * static string naming the defect.
 */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem, const char **why);
/* Return a chain to the driver, written bytes written into its writable part. */
void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t written);
/*
 * Several chains answered at once (a network packet spread over merged buffers):
 * virtq_fill() writes the used element `offset` places past the next free one
 * without publishing it, virtq_flush() publishes count filled elements together.
 */
void virtq_fill(struct virtq *vq, uint16_t head, uint32_t len, uint16_t offset);
void virtq_flush(struct virtq *vq, uint16_t count);
/* Return a chain taken with virtq_pop() to the avail ring unanswered (undo one pop). */
void virtq_unpop(struct virtq *vq);
/* True if the driver wants an interrupt for what was pushed since the last one. */
bool virtq_should_notify(struct virtq *vq);
/*
 * Notification suppression while the device drains the ring. virtq_enable_notify()
 * re-arms notifications and returns true if more chains arrived meanwhile, in which
 * case the caller must drain again.
 */
void virtq_disable_notify(struct virtq *vq);
bool virtq_enable_notify(struct virtq *vq);
/*
 * Like virtq_enable_notify(), for a device that needs more chains than are there
 * (merged receive buffers): ask for a kick once the driver adds beyond avail
 * index seen, and return true if it already has.
 */
bool virtq_enable_notify_after(struct virtq *vq, uint16_t seen);
/* True if the avail ring holds chains not yet popped (no state change). */
bool virtq_has_avail(struct virtq *vq);

/* Copy between a flat buffer and a segment list, starting off bytes into it. Bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t off, void *buf, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned int n, size_t off, const void *buf,
		  size_t len);
/* Total bytes of a segment list. */
size_t iov_size(const struct iovec *iov, unsigned int n);

#endif
