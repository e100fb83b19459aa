// SPDX-License-Identifier: MIT
/* virtio-blk's request parser on hostile chains, over a 64 KiB in-memory disk. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "blk.h"
#include "virtio_harness.h"

#define DISK 0x10000u

struct disk {
	uint8_t data[DISK];
};

static int d_read(void *be, void *buf, size_t len, uint64_t off)
{
	struct disk *d = be;

	if (off > DISK || len > DISK - off)
		abort(); /* the device must have checked */
	memcpy(buf, d->data + off, len);
	return 0;
}

static int d_write(void *be, const void *buf, size_t len, uint64_t off)
{
	struct disk *d = be;

	if (off > DISK || len > DISK - off)
		abort();
	memcpy(d->data + off, buf, len);
	return 0;
}

static int d_flush(void *be)
{
	return 0;
}

static int d_range(void *be, uint64_t off, uint64_t len)
{
	if (off > DISK || len > DISK - off)
		abort();
	return 0;
}

static int d_zeroes(void *be, uint64_t off, uint64_t len, bool unmap)
{
	struct disk *d = be;

	if (off > DISK || len > DISK - off)
		abort();
	memset(d->data + off, 0, len);
	return 0;
}

static uint64_t d_size(void *be)
{
	return DISK;
}

static void d_close(void *be)
{
}

static const struct blk_backend_ops disk_ops = {
	.name = "fuzz",
	.read = d_read,
	.write = d_write,
	.flush = d_flush,
	.discard = d_range,
	.write_zeroes = d_zeroes,
	.size = d_size,
	.close = d_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct disk disk;
	struct fz *f = fz_load(data, size);
	struct blk_opts opts = { .readonly = fz_byte(data, size, 2) & 1, .id = "fuzz" };
	struct virtio_dev vdev;

	if (virtio_blk_init(&vdev, &f->gm, &disk_ops, &disk, &opts))
		abort();
	if (!fz_device(&vdev, data, size, ~0ULL & ~(1ULL << 32) & 0xffffffffull))
		virtio_blk_ops.handle(&vdev, 0, EPOLLIN);
	virtio_dev_fini(&vdev);
	return 0;
}
