// SPDX-License-Identifier: MIT
/*
 * virtio-input's hostile paths: config writes (select/subsel and anything else the
 * driver writes) followed by full config reads, statusq buffers given directly,
 * then both queues on hostile chains with events waiting. Guest memory is the
 * input (virtio_harness.h).
 *
 * Input bytes 0x2000..0x3000: operations of 4 bytes: kind (bit 0: keyboard or
 * tablet; bits 1-2: config write, status buffer, event report), offset, length,
 * value; bytes 0x3000..0x3100: the status buffers' and events' bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "input.h"
#include "internal.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = fz_load(data, size);
	struct virtio_dev vdev[2];
	struct virtio_input_config c;
	struct virtio_input_event evs[16];
	uint8_t bytes[0x100] = { 0 };
	size_t pos = 0x2000, end = size < 0x3000 ? size : 0x3000, k;

	if (size > 0x3000)
		memcpy(bytes, data + 0x3000, size - 0x3000 < sizeof(bytes) ? size - 0x3000 : sizeof(bytes));
	if (virtio_input_init(&vdev[0], &f->gm, INPUT_KEYBOARD) ||
	    virtio_input_init(&vdev[1], &f->gm, INPUT_TABLET))
		abort();
	for (; pos + 4 <= end; pos += 4) {
		struct virtio_dev *d = &vdev[data[pos] & 1];
		uint8_t off = data[pos + 1], len = data[pos + 2];

		switch ((data[pos] >> 1) & 3) {
		case 0:
			virtio_input_cfg_write(d, off, &data[pos + 3], len ? 1 : 0);
			virtio_input_cfg_write(d, off, bytes, len);
			d->ops->cfg_read(d, 0, &c, sizeof(c));
			if (c.size > sizeof(c.u))
				abort();
			break;
		case 1:
			virtio_input_status(d, bytes + off % 0x80, len % 0x81);
			break;
		default:
			memcpy(evs, bytes + off % 0x80, sizeof(evs));
			virtio_input_send(d, evs, len % 17);
			break;
		}
	}
	for (k = 0; k < 2; k++) {
		if (!fz_device(&vdev[k], data, size, 0)) {
			virtio_input_ops.handle(&vdev[k], VIRTIO_TAG_DEV, EPOLLIN);
			virtio_input_ops.handle(&vdev[k], 0, EPOLLIN);
			virtio_input_ops.handle(&vdev[k], 1, EPOLLIN);
		}
		virtio_dev_fini(&vdev[k]);
	}
	return 0;
}
