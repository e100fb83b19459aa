/* SPDX-License-Identifier: MIT */
/*
 * Shared by the virtio fuzz targets: a small guest memory (64 KiB plus an adjacent
 * 4 KiB slot, so buffers can straddle slots or run off the end) loaded with the
 * fuzz input, and split queues whose rings live inside that input.
 *
 * Input layout (it is also guest memory, from address 0):
 *   byte 0: queue size as log2 (0..6), byte 1: ring feature bits (bit 0
 *   INDIRECT_DESC, bit 1 EVENT_IDX), byte 2: device feature byte (the target
 *   decides), bytes 3..: anything. Queue q's descriptor table is at 0x100 +
 *   q * 0xc00, its avail ring 0x500 past that, its used ring 0x800 past that.
 */
#ifndef PLINTH_FUZZ_VIRTIO_HARNESS_H
#define PLINTH_FUZZ_VIRTIO_HARNESS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "mem.h"
#include "queue.h"
#include "virtio.h"

#define FZ_RAM0 0x10000u
#define FZ_RAM1 0x1000u

struct fz {
	struct guest_mem gm;
	uint8_t *ram0, *ram1;
};

/* One set of buffers for the process: the fuzzer runs inputs one after another. */
static inline struct fz *fz_load(const uint8_t *data, size_t size)
{
	static struct fz f;
	size_t n0 = size < FZ_RAM0 ? size : FZ_RAM0;

	if (!f.ram0) {
		f.ram0 = malloc(FZ_RAM0);
		f.ram1 = malloc(FZ_RAM1);
		if (!f.ram0 || !f.ram1)
			abort();
		f.gm.slot[0] = (struct guest_mem_slot){ .gpa = 0, .size = FZ_RAM0, .hva = f.ram0 };
		f.gm.slot[1] = (struct guest_mem_slot){ .gpa = FZ_RAM0, .size = FZ_RAM1,
							.hva = f.ram1 };
		f.gm.nr_slots = 2;
		f.gm.fd = -1;
		f.gm.total = FZ_RAM0 + FZ_RAM1;
	}
	memset(f.ram0, 0, FZ_RAM0);
	memset(f.ram1, 0, FZ_RAM1);
	memcpy(f.ram0, data, n0);
	if (size > n0)
		memcpy(f.ram1, data + n0, size - n0 < FZ_RAM1 ? size - n0 : FZ_RAM1);
	return &f;
}

static inline uint8_t fz_byte(const uint8_t *data, size_t size, size_t i)
{
	return i < size ? data[i] : 0;
}

static inline uint64_t fz_ring_features(const uint8_t *data, size_t size)
{
	uint8_t b = fz_byte(data, size, 1);

	return ((b & 1) ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0) |
	       ((b & 2) ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0);
}

/* Point queue q of vdev at its rings in the input and enable it. 0 or -errno. */
static inline int fz_queue(struct virtio_dev *vdev, unsigned int q, const uint8_t *data,
			   size_t size)
{
	struct virtq *vq = &vdev->vq[q];
	unsigned int lg = fz_byte(data, size, 0) % 7;
	uint64_t base = 0x100 + 0xc00ull * q;

	vq->st.size = (uint16_t)(1u << lg);
	if (vq->st.size > vq->max_size)
		vq->st.size = vq->max_size;
	vq->st.desc_gpa = base;
	vq->st.avail_gpa = base + 0x500;
	vq->st.used_gpa = base + 0x800;
	virtq_set_features(vq, vdev->features);
	return virtq_enable(vq);
}

static void fz_notify_queue(struct virtio_dev *vdev, unsigned int q)
{
}

static void fz_notify_config(struct virtio_dev *vdev)
{
}

static void fz_needs_reset(struct virtio_dev *vdev)
{
}

static const struct virtio_transport_ops fz_transport = {
	.notify_queue = fz_notify_queue,
	.notify_config = fz_notify_config,
	.needs_reset = fz_needs_reset,
};

/* Negotiate everything offered (masked by the input's bytes) and set up all queues. */
static inline int fz_device(struct virtio_dev *vdev, const uint8_t *data, size_t size,
			    uint64_t device_mask)
{
	unsigned int q;

	vdev->tops = &fz_transport;
	vdev->features = vdev->host_features &
			 (fz_ring_features(data, size) | device_mask |
			  (1ULL << 32) /* VERSION_1 */);
	for (q = 0; q < vdev->num_queues; q++)
		if (fz_queue(vdev, q, data, size))
			return -1;
	return 0;
}

#endif
