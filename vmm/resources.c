// SPDX-License-Identifier: MIT
#include "resources.h"

#include <errno.h>
#include <string.h>

#include "util.h"

void res_init(struct resources *r, uint64_t mmio_base, uint64_t mmio_len, uint64_t io_base,
	      uint64_t io_len)
{
	memset(r, 0, sizeof(*r));
	r->pci_mmio = (struct res_window){mmio_base, mmio_len, mmio_base};
	r->pci_io = (struct res_window){io_base, io_len, io_base};
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Both ranges are known not to wrap. */
	return a < b + blen && b < a + alen;
}

/* The first claim of kind overlapping [base, base+len), or NULL. */
static const struct res_range *first_overlap(const struct resources *r, enum res_kind kind,
					     uint64_t base, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < r->nr_ranges; i++) {
		const struct res_range *c = &r->range[i];

		if (c->kind == kind && ranges_overlap(base, len, c->base, c->len))
			return c;
	}
	return NULL;
}

bool res_overlaps(const struct resources *r, enum res_kind kind, uint64_t base, uint64_t len)
{
	return first_overlap(r, kind, base, len) != NULL;
}

static int res_push(struct resources *r, enum res_kind kind, uint64_t base, uint64_t len,
		    unsigned int flags, const char *owner)
{
	if (r->nr_ranges == RES_MAX_RANGES)
		return -ENOSPC;
	r->range[r->nr_ranges++] = (struct res_range){
		.kind = kind, .base = base, .len = len, .flags = flags, .owner = owner};
	return 0;
}

int res_claim(struct resources *r, enum res_kind kind, uint64_t base, uint64_t len,
	      unsigned int flags, const char *owner)
{
	const struct res_window *w = kind == RES_MMIO ? &r->pci_mmio : &r->pci_io;
	uint64_t end;

	if (!len || add_overflow(base, len, &end) || (kind == RES_PIO && end > 0x10000))
		return -EINVAL;
	/* Fixed claims stay out of the PCI windows: those belong to BARs. */
	if (w->len && ranges_overlap(base, len, w->base, w->len))
		return -EEXIST;
	if (res_overlaps(r, kind, base, len))
		return -EEXIST;
	return res_push(r, kind, base, len, flags, owner);
}

/* [*start, +len) aligned, from *start on, inside w; false when it does not fit. */
static bool fit(const struct res_window *w, uint64_t len, uint64_t align, uint64_t *start)
{
	uint64_t end;

	if (add_overflow(*start, align - 1, start))
		return false;
	*start &= ~(align - 1);
	return !add_overflow(*start, len, &end) && end <= w->base + w->len;
}

int res_alloc(struct resources *r, enum res_kind kind, uint64_t len, uint64_t align,
	      const char *owner, uint64_t *base)
{
	struct res_window *w = kind == RES_MMIO ? &r->pci_mmio : &r->pci_io;
	const struct res_range *c;
	uint64_t start = w->next;
	int ret;

	if (!len || !is_pow2(align))
		return -EINVAL;
	/*
	 * Above everything carved so far, as a boot always places its BARs (so their
	 * layout does not depend on the order of frees); once that end of the window is
	 * used up, the first gap that space given back (res_release: hot-unplugged
	 * devices) left, so that adding and removing devices never runs the window dry.
	 */
	if (!fit(w, len, align, &start) || first_overlap(r, kind, start, len)) {
		start = w->base;
		for (;;) {
			if (!fit(w, len, align, &start))
				return -ENOSPC;
			c = first_overlap(r, kind, start, len);
			if (!c)
				break;
			start = c->base + c->len; /* claims do not wrap */
		}
	}
	ret = res_push(r, kind, start, len, 0, owner);
	if (ret)
		return ret;
	if (start + len > w->next)
		w->next = start + len;
	*base = start;
	return 0;
}

int res_release(struct resources *r, enum res_kind kind, uint64_t base, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < r->nr_ranges; i++) {
		struct res_range *c = &r->range[i];

		if (c->kind == kind && c->base == base && c->len == len) {
			memmove(c, c + 1, (r->nr_ranges - i - 1) * sizeof(*c));
			r->nr_ranges--;
			return 0;
		}
	}
	return -ENOENT;
}

int res_irq_claim(struct resources *r, unsigned int irq)
{
	if (irq >= 24)
		return -EINVAL;
	if (r->irq_used & (1u << irq))
		return -EEXIST;
	r->irq_used |= 1u << irq;
	return 0;
}

int res_irq_alloc(struct resources *r, unsigned int *irq)
{
	unsigned int i;

	for (i = 5; i < 24; i++) {
		if (!(r->irq_used & (1u << i))) {
			r->irq_used |= 1u << i;
			*irq = i;
			return 0;
		}
	}
	return -ENOSPC;
}

int res_pci_slot(struct resources *r, int slot)
{
	int i;

	if (slot >= 32)
		return -EINVAL;
	if (slot >= 0) {
		if (r->pci_slots & (1u << slot))
			return -EEXIST;
		r->pci_slots |= 1u << slot;
		return slot;
	}
	for (i = 0; i < 32; i++) {
		if (!(r->pci_slots & (1u << i))) {
			r->pci_slots |= 1u << i;
			return i;
		}
	}
	return -ENOSPC;
}

void res_pci_slot_free(struct resources *r, unsigned int slot)
{
	if (slot < 32)
		r->pci_slots &= ~(1u << slot);
}

int res_add_isa(struct resources *r, const struct res_isa_dev *dev)
{
	if (r->nr_isa == RES_MAX_ISA)
		return -ENOSPC;
	if (!dev->name || strlen(dev->name) != 4 || !dev->hid || strlen(dev->hid) != 7)
		return -EINVAL;
	r->isa[r->nr_isa++] = *dev;
	return 0;
}
