// SPDX-License-Identifier: MIT
/*
 * virtio-balloon's queues on hostile chains (reported ranges anywhere, readable or
 * writable, straddling slots), after config writes of the input's bytes. Guest memory
 * is the input (virtio_harness.h); what is reported is dropped from it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "internal.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = fz_load(data, size);
	struct virtio_dev vdev;
	uint8_t cfg[8], val[8] = { 0 };
	unsigned int off;

	if (virtio_balloon_init(&vdev, &f->gm))
		abort();
	/* Writes of every offset and length the transport lets through. */
	memcpy(val, data, size < sizeof(val) ? size : sizeof(val));
	for (off = 0; off < 8; off++) {
		vdev.ops->cfg_write(&vdev, off, val, 1 + val[off] % (8 - off));
		vdev.ops->cfg_read(&vdev, 0, cfg, sizeof(cfg));
		if (cfg[0] | cfg[1] | cfg[2] | cfg[3])
			abort(); /* num_pages is never the driver's */
	}
	if (!fz_device(&vdev, data, size, 0)) {
		virtio_balloon_ops.handle(&vdev, 2, EPOLLIN);
		virtio_balloon_ops.handle(&vdev, 0, EPOLLIN);
		virtio_balloon_ops.handle(&vdev, 1, EPOLLIN);
	}
	virtio_dev_fini(&vdev);
	return 0;
}
