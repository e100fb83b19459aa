// SPDX-License-Identifier: MIT
#include "mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int guest_mem_create(struct guest_mem *gm, const struct guest_mem_layout *layout, unsigned int nr)
{
	uint64_t total = 0, off = 0;
	unsigned int i;
	int ret;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	if (!nr || nr > GUEST_MEM_MAX_SLOTS)
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		if (!layout[i].size || (layout[i].size | layout[i].gpa) & 0xfff ||
		    add_overflow(total, layout[i].size, &total))
			return -EINVAL;
	}

	gm->fd = memfd_create("plinth-ram", MFD_CLOEXEC);
	if (gm->fd < 0) {
		ret = -errno;
		log_error("cannot create guest memory: memfd_create: %s", strerror(errno));
		return ret;
	}
	if (ftruncate(gm->fd, (off_t)total) < 0) {
		ret = -errno;
		log_error("cannot size guest memory to %llu bytes: %s", (unsigned long long)total,
			  strerror(errno));
		goto out_close_fd;
	}
	for (i = 0; i < nr; i++) {
		struct guest_mem_slot *s = &gm->slot[i];
		void *p = mmap(NULL, layout[i].size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_NORESERVE, gm->fd, (off_t)off);

		if (p == MAP_FAILED) {
			ret = -errno;
			log_error("cannot map %llu bytes of guest memory: %s",
				  (unsigned long long)layout[i].size, strerror(errno));
			goto out_unmap;
		}
		/* Guest RAM is never useful in a core dump and may be large. */
		madvise(p, layout[i].size, MADV_DONTDUMP);
		/*
		 * Huge pages where the host allows them for shared memory
		 * (shmem_enabled = advise): fewer nested-paging faults.
		 */
		madvise(p, layout[i].size, MADV_HUGEPAGE);
		s->gpa = layout[i].gpa;
		s->size = layout[i].size;
		s->hva = p;
		s->file_off = off;
		off += layout[i].size;
		gm->nr_slots++;
	}
	gm->total = total;
	return 0;

out_unmap:
	for (i = 0; i < gm->nr_slots; i++)
		munmap(gm->slot[i].hva, gm->slot[i].size);
	gm->nr_slots = 0;
out_close_fd:
	close(gm->fd);
	gm->fd = -1;
	return ret;
}

void guest_mem_destroy(struct guest_mem *gm)
{
	unsigned int i;

	for (i = 0; i < gm->nr_slots; i++)
		munmap(gm->slot[i].hva, gm->slot[i].size);
	gm->nr_slots = 0;
	if (gm->fd > 0)
		close(gm->fd);
	gm->fd = -1;
	gm->total = 0;
}
