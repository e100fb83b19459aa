// SPDX-License-Identifier: MIT
#include "pflash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define CMD_READ_ARRAY	  0xff
#define CMD_READ_ARRAY0	  0x00
#define CMD_PROGRAM	  0x10
#define CMD_PROGRAM_ALT	  0x40
#define CMD_ERASE	  0x20
#define CMD_ERASE_CONFIRM 0xd0
#define CMD_CLEAR_STATUS  0x50
#define CMD_READ_STATUS	  0x70
#define STATUS_READY	  0x80

int pflash_init(struct pflash *f, uint8_t *data, uint64_t size, int fd)
{
	if (!size || size % PFLASH_BLOCK)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->data = data;
	f->size = size;
	f->fd = fd;
	f->mode = PFLASH_ARRAY;
	f->status = STATUS_READY;
	return 0;
}

void pflash_destroy(struct pflash *f)
{
	free(f->data);
	f->data = NULL;
	pthread_mutex_destroy(&f->lock);
}

/* Write [off, off+len) of the store through to the file. Lock held. */
static void pflash_persist(struct pflash *f, uint64_t off, uint64_t len)
{
	int ret;

	if (f->fd < 0)
		return;
	ret = pwrite_full(f->fd, f->data + off, len, (off_t)off);
	if (ret) {
		if (!f->write_errors++)
			log_error("firmware vars: cannot write the vars file: %s", strerror(-ret));
		f->status |= 0x10; /* program error */
	}
}

static void pflash_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pflash *f = opaque;

	pthread_mutex_lock(&f->lock);
	if (f->mode == PFLASH_ARRAY && range_within(off, len, f->size))
		memcpy(data, f->data + off, len);
	else if (f->mode == PFLASH_ARRAY)
		memset(data, 0xff, len);
	else
		memset(data, f->status, len); /* the status register on every byte lane */
	pthread_mutex_unlock(&f->lock);
}

static void pflash_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pflash *f = opaque;
	uint8_t v = *(const uint8_t *)data;
	uint64_t block;

	pthread_mutex_lock(&f->lock);
	if (!range_within(off, len, f->size))
		goto out_unlock;
	switch (f->mode) {
	case PFLASH_PROGRAM:
		/* The data cycle: program len bytes (OVMF writes one at a time). */
		memcpy(f->data + off, data, len);
		pflash_persist(f, off, len);
		f->status |= STATUS_READY;
		f->mode = PFLASH_STATUS;
		goto out_unlock;
	case PFLASH_ERASE:
		if (v == CMD_ERASE_CONFIRM) {
			block = off - off % PFLASH_BLOCK;
			memset(f->data + block, 0xff, PFLASH_BLOCK);
			pflash_persist(f, block, PFLASH_BLOCK);
			f->status |= STATUS_READY;
		} else {
			f->status |= 0x30; /* command sequence error */
		}
		f->mode = PFLASH_STATUS;
		goto out_unlock;
	default:
		break;
	}
	switch (v) {
	case CMD_READ_ARRAY:
	case CMD_READ_ARRAY0:
		f->mode = PFLASH_ARRAY;
		break;
	case CMD_PROGRAM:
	case CMD_PROGRAM_ALT:
		f->mode = PFLASH_PROGRAM;
		break;
	case CMD_ERASE:
		f->mode = PFLASH_ERASE;
		break;
	case CMD_CLEAR_STATUS:
		f->status = 0;
		f->mode = PFLASH_ARRAY;
		break;
	case CMD_READ_STATUS:
		f->mode = PFLASH_STATUS;
		break;
	default:
		/* IDs and CFI queries: unsupported, the firmware does not ask. */
		f->mode = PFLASH_ARRAY;
		break;
	}
out_unlock:
	pthread_mutex_unlock(&f->lock);
}

const struct bus_dev_ops pflash_ops = {
	.read = pflash_read,
	.write = pflash_write,
};
