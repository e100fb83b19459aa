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
};

struct guest_mem {
	struct guest_mem_slot slot[GUEST_MEM_MAX_SLOTS];
	unsigned int nr_slots;
	int fd;          /* backing memfd/file for all slots, -1 if anonymous */
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
 * Create guest RAM of size bytes (a multiple of 4 KiB) backed by one memfd,
 * mapped MAP_SHARED, split into slots by the caller's layout: layout[i] gives
 * each slot's guest address and size (sizes summing to size). 0 or -errno.
 */
struct guest_mem_layout {
	uint64_t gpa;
	uint64_t size;
};
int guest_mem_create(struct guest_mem *gm, const struct guest_mem_layout *layout,
		     unsigned int nr);
/* Unmap all slots and close the backing file. Safe on a zeroed struct. */
void guest_mem_destroy(struct guest_mem *gm);

#endif
