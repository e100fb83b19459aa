/* SPDX-License-Identifier: MIT */
/*
 * Test doubles for the virtio unit tests: guest memory over malloc'd buffers and the
 * driver's side of a split virtqueue, built by hand so that tests (and fuzz targets)
 * can put any descriptor, well-formed or hostile, in front of the device.
 *
 * Memory map: slot 0 is [0, FAKE_SLOT0) and slot 1 [FAKE_SLOT0, FAKE_SLOT0 +
 * FAKE_SLOT1), adjacent, so a buffer may straddle them; everything above is a hole.
 */
#ifndef PLINTH_TESTS_VIRTIO_FAKE_H
#define PLINTH_TESTS_VIRTIO_FAKE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "mem.h"

#define FAKE_SLOT0 (1u << 20)
#define FAKE_SLOT1 (64u << 10)
#define FAKE_RAM   (FAKE_SLOT0 + FAKE_SLOT1)

struct fake_mem {
	struct guest_mem gm;
	uint8_t *buf[2];
};

static inline void fake_mem_init(struct fake_mem *fm)
{
	memset(fm, 0, sizeof(*fm));
	fm->buf[0] = calloc(1, FAKE_SLOT0);
	fm->buf[1] = calloc(1, FAKE_SLOT1);
	if (!fm->buf[0] || !fm->buf[1])
		abort();
	fm->gm.slot[0] = (struct guest_mem_slot){ .gpa = 0, .size = FAKE_SLOT0, .hva = fm->buf[0] };
	fm->gm.slot[1] = (struct guest_mem_slot){ .gpa = FAKE_SLOT0, .size = FAKE_SLOT1,
						  .hva = fm->buf[1] };
	fm->gm.nr_slots = 2;
	fm->gm.fd = -1;
	fm->gm.total = FAKE_RAM;
}

static inline void fake_mem_fini(struct fake_mem *fm)
{
	free(fm->buf[0]);
	free(fm->buf[1]);
}

/* Host pointer for a gpa the test chose (aborts on a test bug, not a device bug). */
static inline void *gpa_ptr(struct fake_mem *fm, uint64_t gpa)
{
	if (gpa < FAKE_SLOT0)
		return fm->buf[0] + gpa;
	if (gpa < FAKE_RAM)
		return fm->buf[1] + (gpa - FAKE_SLOT0);
	abort();
}

/* The driver's view of one split queue laid out at base (16-byte aligned). */
struct drv_vq {
	struct fake_mem *fm;
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t avail_idx;
};

static inline void drv_vq_setup(struct drv_vq *d, struct fake_mem *fm, uint16_t size,
				uint64_t base)
{
	d->fm = fm;
	d->size = size;
	d->desc = base;
	d->avail = base + 16u * size;
	d->used = (d->avail + 6u + 2u * size + 3) & ~3ull;
	d->avail_idx = 0;
	memset(gpa_ptr(fm, base), 0, (size_t)(d->used + 6 + 8u * size - base));
}

static inline void drv_set_desc(struct drv_vq *d, uint16_t i, uint64_t addr, uint32_t len,
				uint16_t flags, uint16_t next)
{
	struct vring_desc *v = gpa_ptr(d->fm, d->desc + 16u * i);

	v->addr = addr;
	v->len = len;
	v->flags = flags;
	v->next = next;
}

/* Write an arbitrary descriptor anywhere (indirect tables). */
static inline void drv_put_desc(struct fake_mem *fm, uint64_t gpa, uint64_t addr, uint32_t len,
				uint16_t flags, uint16_t next)
{
	struct vring_desc v = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(gpa_ptr(fm, gpa), &v, sizeof(v));
}

static inline uint16_t *drv_avail_field(struct drv_vq *d, unsigned int idx)
{
	return gpa_ptr(d->fm, d->avail + 2u * idx); /* 0 flags, 1 idx, 2.. ring, 2+size used_event */
}

static inline void drv_set_avail_idx(struct drv_vq *d, uint16_t idx)
{
	*drv_avail_field(d, 1) = idx;
}

static inline void drv_kick_head(struct drv_vq *d, uint16_t head)
{
	*drv_avail_field(d, 2u + (d->avail_idx & (d->size - 1))) = head;
	d->avail_idx++;
	drv_set_avail_idx(d, d->avail_idx);
}

static inline uint16_t drv_used_idx(struct drv_vq *d)
{
	return *(volatile uint16_t *)gpa_ptr(d->fm, d->used + 2);
}

static inline uint16_t drv_used_flags(struct drv_vq *d)
{
	return *(uint16_t *)gpa_ptr(d->fm, d->used);
}

static inline void drv_used_elem(struct drv_vq *d, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint32_t *e = gpa_ptr(d->fm, d->used + 4 + 8u * (i & (d->size - 1)));

	*id = e[0];
	*len = e[1];
}

static inline uint16_t drv_avail_event(struct drv_vq *d)
{
	return *(uint16_t *)gpa_ptr(d->fm, d->used + 4 + 8u * d->size);
}

static inline void drv_set_used_event(struct drv_vq *d, uint16_t v)
{
	*drv_avail_field(d, 2u + d->size) = v;
}

#endif
