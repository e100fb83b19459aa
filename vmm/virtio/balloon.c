// SPDX-License-Identifier: MIT
/*
 * virtio-balloon (virtio 1.x section 5.5) with free page reporting only: the guest
 * hands back the pages it has free, and the host's copies of them are dropped, so an
 * idle guest that once used its memory stops costing the host that memory.
 *
 * Queues, numbered as Linux numbers them (an absent queue takes no index): 0 inflateq,
 * 1 deflateq, 2 reporting_vq. Neither statsq nor free_page_vq is offered. num_pages
 * is always 0, so a driver never inflates; a chain on inflateq or deflateq is returned
 * unread (the pages it names stay the guest's, untouched).
 *
 * A reporting chain's writable buffers are free guest pages (blocks of pageblock
 * order, 2 MiB on x86). virtq_pop() has checked each lies wholly inside guest RAM and
 * turned it into host segments; each segment's whole pages are dropped: shared memfd
 * RAM with MADV_REMOVE (frees the file's pages: a hole, which reads as zeros), private
 * RAM (--memory-merge, or a restored snapshot's file mapping) with MADV_DONTNEED. The
 * driver makes no assumption about a reported page's contents (we offer no
 * PAGE_POISON), and the chain comes back with used length 0 as the spec asks. A chain
 * with a device-readable buffer is refused whole: nothing is dropped.
 *
 * Live migration: dropped ranges are marked dirty as device writes are, so the
 * destination's copy reads as the source's does (zeros, or the snapshot's file).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#include "devconf.h"
#include "devices.h"
#include "internal.h"
#include "log.h"
#include "spec.h"
#include "virtio-pci.h"
#include "virtio.h"

#define BALLOON_QUEUE_SIZE 64 /* Linux wants room for 32 reported blocks */
#define BALLOON_QUEUES	   3
#define BALLOON_Q_REPORT   2
#define BALLOON_PAGE	   4096u

/* The config space: num_pages (always 0) and actual (what the driver says it holds). */
#define BALLOON_CFG_SIZE 8

struct balloon {
	struct virtq_elem elem;
	pthread_mutex_t lock; /* cfg: vCPU threads read and write it */
	uint8_t cfg[BALLOON_CFG_SIZE];
};

struct virtio_balloon_state {
	uint8_t cfg[BALLOON_CFG_SIZE];
};

static void balloon_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct balloon *b = vdev->priv;

	pthread_mutex_lock(&b->lock);
	memcpy(data, b->cfg + off, len); /* off + len <= cfg_size, checked by the transport */
	pthread_mutex_unlock(&b->lock);
}

static void balloon_cfg_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			      unsigned int len)
{
	struct balloon *b = vdev->priv;
	uint32_t end = off + len; /* both small: checked by the transport */

	/* Only actual (bytes 4..7) is the driver's; num_pages stays the device's 0. */
	if (off < 4) {
		if (end <= 4)
			return;
		data = (const uint8_t *)data + (4 - off);
		off = 4;
	}
	pthread_mutex_lock(&b->lock);
	memcpy(b->cfg + off, data, end - off);
	pthread_mutex_unlock(&b->lock);
}

/* Give the host's copy of [p, p+len) back: whole pages inside the segment only. */
static void balloon_drop(struct virtio_dev *vdev, uint8_t *p, size_t len)
{
	const struct guest_mem *gm = vdev->mem;
	uintptr_t start = ((uintptr_t)p + BALLOON_PAGE - 1) & ~(uintptr_t)(BALLOON_PAGE - 1);
	uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)(BALLOON_PAGE - 1);

	if (start >= end)
		return;
	if (madvise((void *)start, end - start, gm->shared ? MADV_REMOVE : MADV_DONTNEED) < 0) {
		log_limited(&vdev->log_rl, LOG_WARN, "virtio-balloon: cannot free reported pages: %s",
			    strerror(errno));
		return;
	}
	guest_mem_mark_dirty(gm, (void *)start, end - start);
}

static int balloon_report(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	unsigned int i;

	*written = 0;
	if (e->out_num) {
		log_limited(&vdev->log_rl, LOG_WARN,
			    "virtio-balloon: a reported range is not device-writable; ignored");
		return 0;
	}
	for (i = 0; i < e->in_num; i++)
		balloon_drop(vdev, e->iov[i].iov_base, e->iov[i].iov_len);
	return 0;
}

/* inflateq, deflateq: never used with num_pages 0; returned unread. */
static int balloon_ignore(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	(void)vdev;
	(void)e;
	*written = 0;
	return 0;
}

static void balloon_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct balloon *b = vdev->priv;

	(void)events;
	if (tag == BALLOON_Q_REPORT)
		virtio_dev_drain(vdev, tag, &b->elem, balloon_report);
	else if (tag < BALLOON_Q_REPORT)
		virtio_dev_drain(vdev, tag, &b->elem, balloon_ignore);
}

static int balloon_save(struct virtio_dev *vdev, void *state)
{
	struct balloon *b = vdev->priv;
	struct virtio_balloon_state *st = state;

	pthread_mutex_lock(&b->lock);
	memcpy(st->cfg, b->cfg, sizeof(st->cfg));
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int balloon_load(struct virtio_dev *vdev, const void *state)
{
	struct balloon *b = vdev->priv;
	const struct virtio_balloon_state *st = state;

	/* num_pages is the device's: a stream that asks for another target is not ours. */
	if (memcmp(st->cfg, b->cfg, 4))
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	memcpy(b->cfg, st->cfg, sizeof(b->cfg));
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static void balloon_reset(struct virtio_dev *vdev)
{
	struct balloon *b = vdev->priv;

	pthread_mutex_lock(&b->lock);
	memset(b->cfg, 0, sizeof(b->cfg));
	pthread_mutex_unlock(&b->lock);
}

static void balloon_destroy(struct virtio_dev *vdev)
{
	struct balloon *b = vdev->priv;

	pthread_mutex_destroy(&b->lock);
	free(b);
	vdev->priv = NULL;
}

const struct virtio_dev_ops virtio_balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.pci_class = 0x0500, /* memory controller, RAM */
	.cfg_size = BALLOON_CFG_SIZE,
	.cfg_read = balloon_cfg_read,
	.cfg_write = balloon_cfg_write,
	.handle = balloon_handle,
	.reset = balloon_reset,
	.destroy = balloon_destroy,
	.state_size = sizeof(struct virtio_balloon_state),
	.save = balloon_save,
	.load = balloon_load,
};

int virtio_balloon_init(struct virtio_dev *vdev, const struct guest_mem *mem)
{
	struct balloon *b = calloc(1, sizeof(*b));
	int err;

	if (!b) {
		log_error("--balloon: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&b->lock, NULL);
	err = virtio_dev_init(vdev, &virtio_balloon_ops, b, mem, BALLOON_QUEUES,
			      BALLOON_QUEUE_SIZE, 1ULL << VIRTIO_BALLOON_F_REPORTING);
	if (err) {
		pthread_mutex_destroy(&b->lock);
		free(b);
	}
	return err;
}

static int virtio_balloon_create(struct pci_bus *bus, const struct guest_mem *mem,
				 const char *spec, struct virtio_pci **out)
{
	return virtio_pci_create_plain(bus, mem, "--balloon", spec, virtio_balloon_init, out);
}

/* ---- the --balloon class (vmm/devconf.h): no options ---- */

const struct dev_class dev_class_balloon = {
	.name = "balloon",
	.synopsis = "",
	.help = DEV_HELP_INDENT "a virtio-balloon: the guest's free pages go back to the host\n",
	.arg_optional = true,
	.parse = spec_none_parse,
	.to_json = spec_none_to_json,
	.free = free,
	.create = virtio_balloon_create,
	.reopens_in_jail = spec_none_reopens,
};
