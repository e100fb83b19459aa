// SPDX-License-Identifier: MIT
/*
 * virtio-gpu's command parser: a sequence of hostile control and cursor commands
 * against one device (resources made by one command are used by the next), then
 * both queues on hostile chains. Guest memory is the input (virtio_harness.h).
 *
 * Input bytes 0x2000..0x4000 (past both queues' rings): commands, each a byte (bit 0:
 * cursor queue, the rest: the answer's room) and a 16-bit length, then that many
 * bytes. The fake display checks that every update lies inside the last size it
 * was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "fake_display.h"
#include "gpu.h"
#include "internal.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_display {
	uint32_t w, h;
	uint64_t sum;
};

static void fd_resize(void *o, uint32_t w, uint32_t h)
{
	struct fz_display *d = o;

	d->w = w;
	d->h = h;
}

static void fd_update(void *o, const uint8_t *pixels, uint32_t stride, enum gpu_pixel_order order,
		      uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct fz_display *d = o;
	uint32_t r;

	(void)order;
	if ((uint64_t)x + w > d->w || (uint64_t)y + h > d->h || !w || !h)
		abort();
	/* Touch the first and last byte of each row: ASan sees a read outside. */
	for (r = 0; r < h; r++)
		d->sum += pixels[(size_t)r * stride] + pixels[(size_t)r * stride + w * 4 - 1];
}

static void fd_destroy(void *o)
{
	(void)o;
}

static const struct gpu_display_ops fz_display_ops = {
	.resize = fd_resize, .update = fd_update, .spawn = fake_display_spawn, .destroy = fd_destroy,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = fz_load(data, size);
	struct fz_display disp = { 0 };
	struct virtio_dev vdev;
	uint8_t resp[512];
	size_t pos = 0x2000, end = size < 0x4000 ? size : 0x4000;

	if (virtio_gpu_init(&vdev, &f->gm, 1024, 768, &fz_display_ops, &disp))
		abort();
	while (pos + 3 <= end) {
		uint8_t kind = data[pos];
		size_t len = data[pos + 1] | (size_t)data[pos + 2] << 8;

		pos += 3;
		if (len > end - pos)
			len = end - pos;
		if (kind & 1)
			virtio_gpu_cursor_cmd(&vdev, data + pos, len);
		else if (virtio_gpu_cmd(&vdev, data + pos, len, resp, kind >> 1) > (size_t)(kind >> 1))
			abort();
		pos += len;
	}
	if (!fz_device(&vdev, data, size, 0)) {
		virtio_gpu_ops.handle(&vdev, 0, EPOLLIN);
		virtio_gpu_ops.handle(&vdev, 1, EPOLLIN);
	}
	virtio_dev_fini(&vdev);
	return 0;
}
