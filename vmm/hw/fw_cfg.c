// SPDX-License-Identifier: MIT
/*
 * fw_cfg (see fw_cfg.h). Protocol, as firmware uses it:
 *   - write a key to the selector (0x510, 16 bits little-endian): selects the
 *     item and rewinds to its start;
 *   - read the data port (0x511) byte by byte: the item's bytes, then zeros;
 *   - or DMA: write the guest-physical address of a 16-byte descriptor
 *     { be32 control, be32 length, be64 address } to 0x514 (high) and 0x518
 *     (low). control's top 16 bits are a key when SELECT is set; READ copies
 *     length bytes of the item (zeros past its end) to address, SKIP advances;
 *     WRITE is refused (every item is read-only). The device then stores 0 (or
 *     ERROR) back into control.
 */
#include "fw_cfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const uint8_t fw_cfg_signature[4] = { 'Q', 'E', 'M', 'U' };
#define FW_CFG_FEATURES 0x3 /* traditional interface | DMA */
/* Reading the DMA port gives "QEMU CFG" (big-endian), so firmware can probe it. */
static const uint8_t fw_cfg_dma_signature[8] = { 'Q', 'E', 'M', 'U', ' ', 'C', 'F', 'G' };

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int item_set(struct fw_cfg_item *it, const void *data, uint32_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return -ENOMEM;
	if (size)
		memcpy(copy, data, size);
	free(it->data);
	it->data = copy;
	it->size = size;
	return 0;
}

/* The directory: be32 count, then per file { be32 size, be16 key, be16 0, name[56] }. */
static int fw_cfg_rebuild_dir(struct fw_cfg *fc)
{
	uint8_t dir[4 + FW_CFG_MAX_FILES * 64];
	unsigned int i;

	memset(dir, 0, sizeof(dir));
	put_be32(dir, fc->nr_files);
	for (i = 0; i < fc->nr_files; i++) {
		uint8_t *e = dir + 4 + 64 * i;

		put_be32(e, fc->item[FW_CFG_FILE_FIRST + i].size);
		put_be16(e + 4, (uint16_t)(FW_CFG_FILE_FIRST + i));
		memcpy(e + 8, fc->name[i], FW_CFG_NAME_LEN);
	}
	return item_set(&fc->item[FW_CFG_FILE_DIR], dir, 4 + 64 * fc->nr_files);
}

int fw_cfg_init(struct fw_cfg *fc, const struct guest_mem *mem)
{
	uint8_t features[4] = { FW_CFG_FEATURES, 0, 0, 0 };
	int ret;

	memset(fc, 0, sizeof(*fc));
	pthread_mutex_init(&fc->lock, NULL);
	fc->mem = mem;
	ret = item_set(&fc->item[FW_CFG_SIGNATURE], fw_cfg_signature, sizeof(fw_cfg_signature));
	if (!ret)
		ret = item_set(&fc->item[FW_CFG_ID], features, sizeof(features));
	if (!ret)
		ret = fw_cfg_rebuild_dir(fc);
	if (ret)
		fw_cfg_destroy(fc);
	return ret;
}

void fw_cfg_destroy(struct fw_cfg *fc)
{
	unsigned int i;

	for (i = 0; i < FW_CFG_MAX_KEYS; i++) {
		free(fc->item[i].data);
		fc->item[i].data = NULL;
	}
	pthread_mutex_destroy(&fc->lock);
}

int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const void *data, uint32_t size)
{
	if (key >= FW_CFG_FILE_FIRST || key == FW_CFG_FILE_DIR || size > FW_CFG_MAX_ITEM)
		return -EINVAL;
	return item_set(&fc->item[key], data, size);
}

int fw_cfg_add_u16(struct fw_cfg *fc, uint16_t key, uint16_t v)
{
	uint8_t b[2];

	put_le(b, v, sizeof(b));
	return fw_cfg_add_item(fc, key, b, sizeof(b));
}

int fw_cfg_add_u64(struct fw_cfg *fc, uint16_t key, uint64_t v)
{
	uint8_t b[8];

	put_le(b, v, sizeof(b));
	return fw_cfg_add_item(fc, key, b, sizeof(b));
}

int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, uint32_t size)
{
	size_t len = strlen(name);
	unsigned int i;
	int ret;

	if (!len || len >= FW_CFG_NAME_LEN || size > FW_CFG_MAX_ITEM)
		return -EINVAL;
	for (i = 0; i < fc->nr_files; i++)
		if (!strcmp(fc->name[i], name))
			return -EEXIST;
	if (fc->nr_files >= FW_CFG_MAX_FILES)
		return -ENOSPC;
	ret = item_set(&fc->item[FW_CFG_FILE_FIRST + fc->nr_files], data, size);
	if (ret)
		return ret;
	memset(fc->name[fc->nr_files], 0, FW_CFG_NAME_LEN);
	memcpy(fc->name[fc->nr_files], name, len);
	fc->nr_files++;
	ret = fw_cfg_rebuild_dir(fc);
	if (ret) {
		fc->nr_files--;
		free(fc->item[FW_CFG_FILE_FIRST + fc->nr_files].data);
		fc->item[FW_CFG_FILE_FIRST + fc->nr_files].data = NULL;
	}
	return ret;
}

/* The selected item, or NULL for an unused key (reads give zeros). Lock held. */
static const struct fw_cfg_item *fw_cfg_cur(const struct fw_cfg *fc)
{
	if (fc->key >= FW_CFG_MAX_KEYS || !fc->item[fc->key].data)
		return NULL;
	return &fc->item[fc->key];
}

/* Advance the read position, saturating (it never wraps back into the item). */
static void fw_cfg_advance(struct fw_cfg *fc, uint32_t n)
{
	if (add_overflow(fc->offset, n, &fc->offset))
		fc->offset = UINT32_MAX;
}

/* Copy n bytes from the current position (zeros past the end) and advance. Lock held. */
static void fw_cfg_copy_out(struct fw_cfg *fc, uint8_t *dst, uint32_t n)
{
	const struct fw_cfg_item *it = fw_cfg_cur(fc);
	uint32_t have = 0;

	if (it && fc->offset < it->size)
		have = MIN(n, it->size - fc->offset);
	if (have)
		memcpy(dst, it->data + fc->offset, have);
	memset(dst + have, 0, n - have);
	fw_cfg_advance(fc, n);
}

/* Run the descriptor at gpa. Lock held. */
static void fw_cfg_dma(struct fw_cfg *fc, uint64_t gpa)
{
	uint8_t *desc = guest_mem_ptr(fc->mem, gpa, 16);
	uint32_t control, length, status = 0;
	uint64_t addr;
	uint8_t *dst;

	fc->dma_requests++;
	if (!desc) {
		fc->dma_errors++; /* nowhere to report it */
		return;
	}
	control = get_be32(desc);
	length = get_be32(desc + 4);
	addr = (uint64_t)get_be32(desc + 8) << 32 | get_be32(desc + 12);
	if (control & FW_CFG_DMA_SELECT) {
		fc->key = (uint16_t)(control >> 16);
		fc->offset = 0;
	}
	if (control & FW_CFG_DMA_READ) {
		dst = length ? guest_mem_ptr(fc->mem, addr, length) : NULL;
		if (length && !dst) {
			status = FW_CFG_DMA_ERROR;
		} else if (length) {
			fw_cfg_copy_out(fc, dst, length);
			guest_mem_mark_dirty(fc->mem, dst, length);
		}
	} else if (control & FW_CFG_DMA_WRITE) {
		status = FW_CFG_DMA_ERROR; /* read-only items */
	} else if (control & FW_CFG_DMA_SKIP) {
		fw_cfg_advance(fc, length);
	}
	if (status)
		fc->dma_errors++;
	put_be32(desc, status);
	guest_mem_mark_dirty(fc->mem, desc, 4);
}

static void fw_cfg_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct fw_cfg *fc = opaque;
	uint8_t *p = data;

	memset(data, 0, len);
	pthread_mutex_lock(&fc->lock);
	if (off == 1 && len == 1) {
		fw_cfg_copy_out(fc, p, 1);
	} else if (off >= 4 && off + len <= 12) {
		memcpy(p, fw_cfg_dma_signature + (off - 4), len);
	} else if (off == 0 && len == 2) {
		put_le(p, fc->key, 2);
	}
	pthread_mutex_unlock(&fc->lock);
}

static void fw_cfg_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct fw_cfg *fc = opaque;
	const uint8_t *p = data;

	pthread_mutex_lock(&fc->lock);
	if (off == 0 && len == 2) {
		fc->key = (uint16_t)get_le(p, 2);
		fc->offset = 0;
	} else if (off == 4 && len == 4) {
		fc->dma_high = get_be32(p);
	} else if (off == 8 && len == 4) {
		fw_cfg_dma(fc, (uint64_t)fc->dma_high << 32 | get_be32(p));
		fc->dma_high = 0;
	}
	/* Data port writes (legacy write interface) are ignored: items are read-only. */
	pthread_mutex_unlock(&fc->lock);
}

const struct bus_dev_ops fw_cfg_ops = {
	.read = fw_cfg_read,
	.write = fw_cfg_write,
};
