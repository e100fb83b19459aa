// SPDX-License-Identifier: MIT
#include "mem.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Check a layout (page-aligned, non-empty slots) and sum its sizes. 0 or -EINVAL. */
static int layout_total(const struct guest_mem_layout *layout, unsigned int nr, uint64_t *total)
{
	unsigned int i;

	*total = 0;
	if (!nr || nr > GUEST_MEM_MAX_SLOTS)
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		if (!layout[i].size || (layout[i].size | layout[i].gpa) & 0xfff ||
		    add_overflow(*total, layout[i].size, total))
			return -EINVAL;
	}
	return 0;
}

/*
 * Map each slot of the layout from gm->fd, back to back in the file, with the given
 * MAP_SHARED/MAP_PRIVATE flag, or private anonymous memory if gm->fd is -1; huge
 * pages on request. On failure unmaps what it mapped and returns -errno; gm->fd stays
 * open for the caller.
 */
static int map_slots(struct guest_mem *gm, const struct guest_mem_layout *layout,
		     unsigned int nr, int share, bool hugepage)
{
	int flags = gm->fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : share;
	uint64_t off = 0;
	unsigned int i;
	int ret;

	for (i = 0; i < nr; i++) {
		struct guest_mem_slot *s = &gm->slot[i];
		void *p = mmap(NULL, layout[i].size, PROT_READ | PROT_WRITE,
			       flags | MAP_NORESERVE, gm->fd, gm->fd < 0 ? 0 : (off_t)off);

		if (p == MAP_FAILED) {
			ret = -errno;
			log_error("cannot map %llu bytes of guest memory: %s",
				  (unsigned long long)layout[i].size, strerror(errno));
			for (i = 0; i < gm->nr_slots; i++)
				munmap(gm->slot[i].hva, gm->slot[i].size);
			gm->nr_slots = 0;
			return ret;
		}
		/* Guest RAM is never useful in a core dump and may be large. */
		madvise(p, layout[i].size, MADV_DONTDUMP);
		/*
		 * Huge pages where the host allows them (for shared memory only with
		 * shmem_enabled = advise): fewer nested-paging faults.
		 */
		if (hugepage)
			madvise(p, layout[i].size, MADV_HUGEPAGE);
		/*
		 * KSM merges only private anonymous pages: identical pages of idle guests
		 * (zeroed, the same kernel) then cost the host one copy while ksmd runs.
		 */
		if (gm->fd < 0 && madvise(p, layout[i].size, MADV_MERGEABLE) < 0 && errno != EINVAL)
			log_warn("guest memory can't be merged by KSM: %s", strerror(errno));
		s->gpa = layout[i].gpa;
		s->size = layout[i].size;
		s->hva = p;
		s->file_off = off;
		off += layout[i].size;
		gm->nr_slots++;
	}
	return 0;
}

int guest_mem_create(struct guest_mem *gm, const struct guest_mem_layout *layout, unsigned int nr,
		     bool mergeable)
{
	uint64_t total;
	int ret;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	ret = layout_total(layout, nr, &total);
	if (ret)
		return ret;
	if (mergeable) {
		ret = map_slots(gm, layout, nr, MAP_PRIVATE, true);
		if (!ret)
			gm->total = total;
		return ret;
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
	ret = map_slots(gm, layout, nr, MAP_SHARED, true);
	if (ret)
		goto out_close_fd;
	gm->shared = true;
	gm->total = total;
	return 0;

out_close_fd:
	close(gm->fd);
	gm->fd = -1;
	return ret;
}

int guest_mem_map_file(struct guest_mem *gm, const struct guest_mem_layout *layout,
		       unsigned int nr, int fd)
{
	uint64_t total;
	struct stat st;
	int ret;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	ret = layout_total(layout, nr, &total);
	if (ret)
		return ret;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != total) {
		log_error("the memory file does not hold %llu bytes of guest RAM",
			  (unsigned long long)total);
		return -EINVAL;
	}
	gm->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (gm->fd < 0) {
		ret = -errno;
		log_error("dup: %s", strerror(errno));
		return ret;
	}
	ret = map_slots(gm, layout, nr, MAP_PRIVATE, false);
	if (ret)
		goto out_close_fd;
	gm->total = total;
	return 0;

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
