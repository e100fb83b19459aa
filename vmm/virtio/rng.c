// SPDX-License-Identifier: MIT
/*
 * virtio-rng (virtio 1.x section 5.4): one queue; the driver posts writable
 * buffers and the device fills them from getrandom(2). A chain is answered with
 * at most RNG_MAX_CHUNK bytes so one request can't keep the thread busy; the
 * driver asks again for more.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <linux/virtio_ids.h>

#include "devices.h"
#include "internal.h"
#include "log.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"
#include "virtio.h"
#include "devconf.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_CHUNK  (64 * 1024)

struct rng {
	struct virtq_elem elem;
};

static int rng_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	const struct iovec *iov = e->iov + e->out_num;
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < e->in_num && done < RNG_MAX_CHUNK; i++) {
		size_t want = MIN(iov[i].iov_len, RNG_MAX_CHUNK - done), got = 0;

		while (got < want) {
			ssize_t n = getrandom((uint8_t *)iov[i].iov_base + got, want - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				log_error("virtio-rng: getrandom: %s", strerror(errno));
				*written = (uint32_t)(done + got);
				return 0;
			}
			got += (size_t)n;
		}
		done += got;
	}
	*written = (uint32_t)done;
	return 0;
}

static void rng_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct rng *r = vdev->priv;

	if (tag == 0)
		virtio_dev_drain(vdev, 0, &r->elem, rng_chain);
}

static void rng_destroy(struct virtio_dev *vdev)
{
	free(vdev->priv);
	vdev->priv = NULL;
}

const struct virtio_dev_ops virtio_rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = 0xff00, /* unclassified */
	.handle = rng_handle,
	.destroy = rng_destroy,
	/* No device state beyond the queue: state_size 0. */
};

int virtio_rng_init(struct virtio_dev *vdev, const struct guest_mem *mem)
{
	struct rng *r = calloc(1, sizeof(*r));
	int err;

	if (!r) {
		log_error("--rng: out of memory");
		return -ENOMEM;
	}
	err = virtio_dev_init(vdev, &virtio_rng_ops, r, mem, 1, RNG_QUEUE_SIZE, 0);
	if (err)
		free(r);
	return err;
}

int virtio_rng_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out)
{
	return virtio_pci_create_plain(bus, mem, "--rng", spec, virtio_rng_init, out);
}

/* ---- the --rng class (vmm/devconf.h): no options ---- */

const struct dev_class dev_class_rng = {
	.name = "rng",
	.synopsis = "",
	.help = DEV_HELP_INDENT "a virtio entropy source (getrandom)\n",
	.arg_optional = true,
	.parse = spec_none_parse,
	.to_json = spec_none_to_json,
	.free = free,
	.create = virtio_rng_create,
	.reopens_in_jail = spec_none_reopens,
};
