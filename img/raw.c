// SPDX-License-Identifier: MIT
/*
 * raw: the image is the disk. Guest offset == host offset; holes in the host
 * file are the unallocated (zero) ranges. Never probed: opening a writable raw
 * image needs format "raw" spelled out (see core.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "img-internal.h"

static const char *const raw_create_keys[] = { "size", "preallocation", NULL };

static int raw_open(struct pimg *img)
{
	img->size = img->file->size;
	img->granule = 4096;
	return 0;
}

static void raw_close(struct pimg *img)
{
}

static int raw_create(const char *path, const struct pimg_create_opts *o)
{
	struct pimg_file *f = pfile_open(path, false, true);
	int ret;

	if (!f)
		return -EIO;
	ret = pfile_truncate(f, o->size);
	if (ret)
		log_error("%s: cannot set size: %s", path, strerror(-ret));
	pfile_close(f);
	return ret;
}

/* Holes (SEEK_HOLE) are zero, everything else data. */
static int raw_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	off_t data, hole;

	data = lseek(img->file->fd, (off_t)off, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) { /* only a hole up to the end */
			*pnum = len;
			return PIMG_ZERO;
		}
		*pnum = len; /* no SEEK_DATA on this filesystem: all data */
		return PIMG_DATA;
	}
	if ((uint64_t)data > off) {
		*pnum = MIN(len, (uint64_t)data - off);
		return PIMG_ZERO;
	}
	hole = lseek(img->file->fd, (off_t)off, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole <= off) {
		*pnum = len;
		return PIMG_DATA;
	}
	*pnum = MIN(len, (uint64_t)hole - off);
	return PIMG_DATA;
}

static int raw_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	return pfile_pread(img->file, buf, len, off, false);
}

static int raw_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	return pfile_pwrite(img->file, buf, len, off);
}

static int raw_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	/* Punching keeps the size and reads back zeros. */
	if (!may_unmap || pfile_punch(img->file, off, len))
		return -ENOTSUP;
	return 0;
}

static int raw_discard(struct pimg *img, uint64_t len, uint64_t off)
{
	int ret = pfile_punch(img->file, off, len);

	return ret == -EOPNOTSUPP ? 0 : ret;
}

static int raw_resize(struct pimg *img, uint64_t size)
{
	int ret = pfile_truncate(img->file, size);

	if (!ret)
		img->size = size;
	return ret;
}

const struct pimg_format pimg_fmt_raw = {
	.name = "raw",
	.create_keys = raw_create_keys,
	.open = raw_open,
	.close = raw_close,
	.create = raw_create,
	.block_status = raw_block_status,
	.read = raw_read,
	.write = raw_write,
	.write_zeroes = raw_write_zeroes,
	.discard = raw_discard,
	.resize = raw_resize,
	.byte_granular = true,
};
