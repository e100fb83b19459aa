/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory: a small list of slots, each a contiguous guest-physical
 * range backed by one host mapping. Every device reaches guest memory through
 * guest_mem_ptr(), which refuses ranges that are not wholly inside one slot, so a
 * guest-supplied address or length can never reach outside guest RAM.
 */
#ifndef PLINTH_VMM_MEM_H
#define PLINTH_VMM_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define GUEST_MEM_MAX_SLOTS 8

struct guest_mem_slot {
	uint64_t gpa;  /* guest-physical start */
	uint64_t size; /* bytes */
	uint8_t *hva;  /* host mapping of the whole slot (owned by the guest_mem) */
	uint64_t file_off; /* offset of this slot in the backing file (memfd or snapshot) */
	/*
	 * While a migration tracks dirty pages: one bit per 4 KiB page that a device
	 * wrote (KVM's dirty log covers only vCPU writes); NULL otherwise. Set and
	 * read atomically (guest_mem_mark_dirty).
	 */
	unsigned long *dev_dirty;
};

struct guest_mem {
	struct guest_mem_slot slot[GUEST_MEM_MAX_SLOTS];
	unsigned int nr_slots;
	int fd;          /* backing memfd/file for all slots, -1 if anonymous */
	bool shared;     /* fd is mapped MAP_SHARED: a hole in it is a page never written */
	uint64_t total;  /* sum of slot sizes */
};

/*
 * Host pointer for [gpa, gpa+len) or NULL if that range is not wholly inside one
 * slot (or wraps). len 0 is treated as 1 byte for the check.
 */
static inline void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	if (len == 0)
		len = 1;
	for (i = 0; i < gm->nr_slots; i++) {
		const struct guest_mem_slot *s = &gm->slot[i];
		uint64_t off = gpa - s->gpa;

		/* Unsigned wrap makes gpa < s->gpa fail the first test. */
		if (off < s->size && len <= s->size - off)
			return s->hva + off;
	}
	return 0;
}

/*
 * Record that a device wrote host range [hva, hva+len) of guest RAM (for live
 * migration); a no-op unless dirty tracking is on.
 */
static inline void guest_mem_mark_dirty(const struct guest_mem *gm, const void *hva,
					 uint64_t len)
{
	unsigned int i;

	for (i = 0; i < gm->nr_slots; i++) {
		const struct guest_mem_slot *s = &gm->slot[i];
		unsigned long *bm = __atomic_load_n(&s->dev_dirty, __ATOMIC_ACQUIRE);
		uintptr_t off = (uintptr_t)hva - (uintptr_t)s->hva;
		uint64_t p, last;

		if (!bm || off >= s->size || !len)
			continue;
		last = (off + (len < s->size - off ? len : s->size - off) - 1) >> 12;
		for (p = off >> 12; p <= last; p++)
			__atomic_fetch_or(&bm[p / (8 * sizeof(long))], 1UL << (p % (8 * sizeof(long))),
					  __ATOMIC_RELAXED);
	}
}

/*
 * Create guest RAM of size bytes (a multiple of 4 KiB) backed by one memfd,
 * mapped MAP_SHARED, split into slots by the caller's layout: layout[i] gives
 * each slot's guest address and size (sizes summing to size). mergeable: private
 * anonymous memory marked MADV_MERGEABLE instead, which KSM can merge (a shared
 * memfd it never does); no fd then, so a migration can't skip never-written
 * ranges by their holes. 0 or -errno.
 */
struct guest_mem_layout {
	uint64_t gpa;
	uint64_t size;
};
int guest_mem_create(struct guest_mem *gm, const struct guest_mem_layout *layout,
		     unsigned int nr, bool mergeable);
/*
 * The same layout mapped from fd (a snapshot's memory file, slots back to back
 * from offset 0) MAP_PRIVATE: pages are read lazily on first touch and guest
 * writes never reach the file. fd is duplicated. 0 or -errno (logged).
 */
int guest_mem_map_file(struct guest_mem *gm, const struct guest_mem_layout *layout,
		       unsigned int nr, int fd);
/* Unmap all slots and close the backing file. Safe on a zeroed struct. */
void guest_mem_destroy(struct guest_mem *gm);

#endif
