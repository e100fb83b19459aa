// SPDX-License-Identifier: MIT
/*
 * VDI: VirtualBox's Virtual Disk Image (header version 1.1).
 *
 *   [pre-header: text 64 | signature 0xBEDA107F | version 0x00010001]
 *   [header at 72: size, type, flags, comment, offBlocks, offData, geometry,
 *    disk size, block size, extra, blocks, allocated, UUIDs]
 *   [block map at offBlocks: one u32 per block]  [blocks at offData ...]
 * All fields are little-endian. A block-map entry is the index of the block's
 * slot in the data area (host = offData + index * (extra + block) + extra),
 * 0xFFFFFFFF = not allocated, 0xFFFFFFFE = reads as zeros. "normal" (dynamic)
 * images allocate slots in write order; "fixed" images come with every slot
 * allocated, in order. Undo and differencing images (whose parent VirtualBox
 * finds by UUID in its media registry) are refused.
 *
 * We create like VirtualBox: header text "<<< Oracle VM VirtualBox Disk Image
 * >>>", 1 MiB blocks, the block map and the data area aligned to 1 MiB.
 *
 * Invariants:
 *   1. Every allocated entry is < cBlocks (the slot area is the disk's size).
 *   2. No two entries share a slot.
 *   3. The header's cBlocksAllocated is the number of allocated entries (a
 *      crash may break this one: check reports it as a leak, -r leaks fixes it).
 * New slots are taken after the highest slot in use (where VirtualBox and
 * qemu also allocate when 3. holds), or, once that reaches cBlocks, the lowest
 * free one (only after a crash or another tool left a gap).
 *
 * Metadata update order (crash safety), for a write to an unallocated block:
 *   1. extend the file past the new slot (it reads as zeros) or zero a reused slot
 *   2. write the data
 *   -- flush: fdatasync; write the dirty block-map range and the header.
 * A crash before the map reaches the disk leaves an unreferenced slot, which
 * the next allocation takes again; old data is read meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "img-internal.h"

#define VDI_SIGNATURE 0xBEDA107Fu
#define VDI_VERSION_1_1 0x00010001u
#define VDI_HEADER_OFF 72    /* the header follows the 72-byte pre-header */
#define VDI_HEADER1_SIZE 384 /* version 1.1 without the LCHS geometry */
#define VDI_HEADER1P_SIZE 400 /* version 1.1 with it (what VirtualBox writes) */
#define VDI_TYPE_NORMAL 1
#define VDI_TYPE_FIXED 2
#define VDI_TYPE_UNDO 3
#define VDI_TYPE_DIFF 4
#define VDI_FREE 0xFFFFFFFFu
#define VDI_ZERO 0xFFFFFFFEu
#define VDI_ALIGN (1 * MiB)
#define VDI_DEFAULT_BLOCK (1 * MiB)
#define VDI_MAX_BLOCK (256 * MiB)
#define VDI_TEXT "<<< Oracle VM VirtualBox Disk Image >>>\n"
/* The block map is held in memory: at most 16 Mi entries (64 MiB; 16 TiB of 1 MiB blocks). */
#define VDI_MAX_BLOCKS (1u << 24)

/* Header field offsets (from the start of the file). */
enum {
	H_SIGNATURE = 64, H_VERSION = 68, H_SIZE = 72, H_TYPE = 76, H_FLAGS = 80,
	H_COMMENT = 84, H_OFF_BLOCKS = 340, H_OFF_DATA = 344,
	H_CYLS = 348, H_HEADS = 352, H_SECTORS = 356, H_SECTOR_SIZE = 360,
	H_DISK_SIZE = 368, H_BLOCK_SIZE = 376, H_BLOCK_EXTRA = 380,
	H_BLOCKS = 384, H_ALLOCATED = 388, H_UUID_CREATE = 392, H_UUID_MODIFY = 408,
	H_UUID_LINK = 424, H_UUID_PARENT = 440, H_LCHS = 456, H_END = 472,
};

struct vdi {
	uint8_t header[512];      /* the first 512 bytes, as read (rewritten on flush) */
	uint32_t type;
	uint32_t block_size, extra;
	uint32_t blocks;          /* entries in the map (cBlocks) */
	uint32_t allocated;       /* allocated entries */
	uint32_t *map;            /* host endian, `blocks` entries, owned */
	uint64_t off_blocks, off_data;
	uint32_t next_slot;       /* the highest slot in use + 1 */
	uint32_t dirty_lo, dirty_hi; /* dirty map range; lo > hi = clean */
	bool header_dirty;
};

static const char *const vdi_create_keys[] = { "size", "subformat", "static", "preallocation", NULL };

static int vdi_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	(void)tail;
	(void)size;
	if (len >= H_SIZE && ld_le32(head + H_SIGNATURE) == VDI_SIGNATURE)
		return 100;
	return 0;
}

static uint64_t slot_size(const struct vdi *v)
{
	return (uint64_t)v->extra + v->block_size;
}

/* Host offset of the data of a block in slot `slot`. */
static uint64_t slot_host(const struct vdi *v, uint32_t slot)
{
	return v->off_data + (uint64_t)slot * slot_size(v) + v->extra;
}

static bool allocated(uint32_t e)
{
	return e < VDI_ZERO;
}

static int entry_checked(struct pimg *img, uint32_t b, uint32_t *slot)
{
	struct vdi *v = img->priv;

	*slot = v->map[b];
	if (allocated(*slot) && *slot >= v->blocks) {
		log_error("%s: VDI block %u points at slot %u, beyond the %u slots of the disk",
			  img->path, b, *slot, v->blocks);
		return -EIO;
	}
	return 0;
}

static int vdi_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct vdi *v = img->priv;
	uint32_t slot;
	int ret = entry_checked(img, (uint32_t)(off / v->block_size), &slot);

	if (ret)
		return ret;
	*pnum = len;
	if (slot == VDI_FREE)
		return PIMG_UNALLOCATED;
	if (slot == VDI_ZERO)
		return PIMG_ZERO;
	return PIMG_DATA;
}

static int vdi_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct vdi *v = img->priv;
	uint32_t slot = v->map[off / v->block_size];

	/* A block short at the end of the file reads as zeros there (qemu's habit too). */
	return pfile_pread(img->file, buf, len, slot_host(v, slot) + off % v->block_size, false);
}

/* The slot for a new block: after the highest in use, else the lowest free one. */
static int find_slot(struct pimg *img, uint32_t *out)
{
	struct vdi *v = img->priv;
	uint8_t *used;

	if (v->next_slot < v->blocks) {
		*out = v->next_slot;
		return 0;
	}
	used = calloc(1, (size_t)v->blocks / 8 + 1);
	if (!used)
		return -ENOMEM;
	for (uint32_t b = 0; b < v->blocks; b++)
		if (allocated(v->map[b]))
			used[v->map[b] / 8] |= (uint8_t)(1u << (v->map[b] % 8));
	for (uint32_t s = 0; s < v->blocks; s++) {
		if (!(used[s / 8] & (1u << (s % 8)))) {
			free(used);
			*out = s;
			return 0;
		}
	}
	free(used);
	log_error("%s: every VDI slot is in use, yet block map entries are free (run check)", img->path);
	return -EIO;
}

static int alloc_block(struct pimg *img, uint32_t b)
{
	struct vdi *v = img->priv;
	uint64_t start, end;
	uint32_t slot;
	int ret;

	ret = find_slot(img, &slot);
	if (ret)
		return ret;
	start = slot_host(v, slot);
	end = start + v->block_size;
	if (start >= img->file->size) {
		/* 1: a fresh extension reads as zeros */
		ret = pfile_truncate(img->file, end);
	} else {
		uint8_t *z = calloc(1, v->block_size);

		ret = z ? pfile_pwrite(img->file, z, v->block_size, start) : -ENOMEM;
		free(z);
	}
	if (ret)
		return ret;
	v->map[b] = slot;
	if (slot >= v->next_slot)
		v->next_slot = slot + 1;
	v->allocated++;
	v->dirty_lo = MIN(v->dirty_lo, b);
	v->dirty_hi = MAX(v->dirty_hi, b);
	v->header_dirty = true;
	return 0;
}

static int vdi_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	struct vdi *v = img->priv;
	uint32_t b = (uint32_t)(off / v->block_size), slot;
	int ret = entry_checked(img, b, &slot);

	if (ret)
		return ret;
	if (!allocated(slot)) {
		ret = alloc_block(img, b);
		if (ret)
			return ret;
		slot = v->map[b];
	}
	return pfile_pwrite(img->file, buf, len, slot_host(v, slot) + off % v->block_size);
}

static int vdi_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct vdi *v = img->priv;

	(void)len;
	(void)may_unmap;
	/* Unallocated and zero blocks read as zeros already. Allocated slots stay
	 * (freeing one would leave a gap that other writers fill over live data). */
	if (!allocated(v->map[off / v->block_size]))
		return 0;
	return -ENOTSUP;
}

static int vdi_flush(struct pimg *img)
{
	struct vdi *v = img->priv;
	uint32_t lo = v->dirty_lo, hi = v->dirty_hi;
	int ret;

	if (lo > hi && !v->header_dirty)
		return 0;
	/* Data first, then the map and header that point at it. */
	ret = pfile_sync(img->file);
	if (ret)
		return ret;
	if (lo <= hi) {
		uint32_t n = hi - lo + 1;
		uint32_t *le = malloc((size_t)n * 4);

		if (!le)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			le[i] = htole32(v->map[lo + i]);
		ret = pfile_pwrite(img->file, le, (size_t)n * 4, v->off_blocks + (uint64_t)lo * 4);
		free(le);
		if (ret)
			return ret;
		v->dirty_lo = UINT32_MAX;
		v->dirty_hi = 0;
	}
	if (v->header_dirty) {
		st_le32(v->header + H_ALLOCATED, v->allocated);
		ret = pfile_pwrite(img->file, v->header, VDI_HEADER_OFF + ld_le32(v->header + H_SIZE), 0);
		if (ret)
			return ret;
		v->header_dirty = false;
	}
	return 0;
}

/* ---- open -------------------------------------------------------------------- */

static void vdi_close(struct pimg *img)
{
	struct vdi *v = img->priv;

	if (!v)
		return;
	free(v->map);
	free(v);
	img->priv = NULL;
}

static int vdi_open(struct pimg *img)
{
	uint64_t fsz = img->file->size, size, map_end;
	uint32_t hsize, version, sector_size;
	struct vdi *v;
	int ret = -EINVAL;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	img->priv = v;
	v->dirty_lo = UINT32_MAX;
	if (fsz < H_END || pfile_pread(img->file, v->header, MIN(fsz, sizeof(v->header)), 0, true)) {
		log_error("%s: file too small for a VDI header", img->path);
		goto out_free;
	}
	if (ld_le32(v->header + H_SIGNATURE) != VDI_SIGNATURE) {
		log_error("%s: no VDI signature", img->path);
		goto out_free;
	}
	version = ld_le32(v->header + H_VERSION);
	hsize = ld_le32(v->header + H_SIZE);
	if (version != VDI_VERSION_1_1 || (hsize != VDI_HEADER1_SIZE && hsize != VDI_HEADER1P_SIZE)) {
		log_error("%s: unsupported VDI header version %u.%u (size %u); 1.1 is supported",
			  img->path, version >> 16, version & 0xffff, hsize);
		goto out_free;
	}
	v->type = ld_le32(v->header + H_TYPE);
	if (v->type == VDI_TYPE_UNDO || v->type == VDI_TYPE_DIFF) {
		log_error("%s: VDI %s images are not supported (their parent is found by UUID in "
			  "VirtualBox's media registry); clone it to a normal image in VirtualBox first",
			  img->path, v->type == VDI_TYPE_UNDO ? "undo" : "differencing");
		goto out_free;
	}
	if (v->type != VDI_TYPE_NORMAL && v->type != VDI_TYPE_FIXED) {
		log_error("%s: unknown VDI image type %u", img->path, v->type);
		goto out_free;
	}
	sector_size = ld_le32(v->header + H_SECTOR_SIZE);
	v->off_blocks = ld_le32(v->header + H_OFF_BLOCKS);
	v->off_data = ld_le32(v->header + H_OFF_DATA);
	size = ld_le64(v->header + H_DISK_SIZE);
	v->block_size = ld_le32(v->header + H_BLOCK_SIZE);
	v->extra = ld_le32(v->header + H_BLOCK_EXTRA);
	v->blocks = ld_le32(v->header + H_BLOCKS);
	if (sector_size != SECTOR_SIZE) {
		log_error("%s: VDI sector size %u (only 512 is supported)", img->path, sector_size);
		goto out_free;
	}
	if (!is_pow2(v->block_size) || v->block_size < SECTOR_SIZE || v->block_size > VDI_MAX_BLOCK ||
	    v->extra % SECTOR_SIZE || v->extra > VDI_MAX_BLOCK) {
		log_error("%s: bad VDI block size %u (+%u extra)", img->path, v->block_size, v->extra);
		goto out_free;
	}
	if (v->blocks > VDI_MAX_BLOCKS) {
		log_error("%s: VDI with %u blocks (more than %u are not supported)", img->path, v->blocks,
			  VDI_MAX_BLOCKS);
		ret = -EFBIG;
		goto out_free;
	}
	if (size % SECTOR_SIZE || size > (uint64_t)v->blocks * v->block_size ||
	    (uint64_t)v->blocks * v->block_size - size >= v->block_size) {
		log_error("%s: VDI disk size %" PRIu64 " does not match its %u blocks of %u bytes",
			  img->path, size, v->blocks, v->block_size);
		goto out_free;
	}
	map_end = v->off_blocks + (uint64_t)v->blocks * 4;
	if (v->off_blocks < VDI_HEADER_OFF + (uint64_t)hsize || map_end > v->off_data || !range_within(v->off_blocks, (uint64_t)v->blocks * 4, fsz)) {
		log_error("%s: VDI block map (at %" PRIu64 ", %u entries) overlaps the header or the data "
			  "area or lies outside the file", img->path, v->off_blocks, v->blocks);
		goto out_free;
	}
	ret = -ENOMEM;
	v->map = malloc((size_t)MAX(v->blocks, 1) * 4);
	if (!v->map)
		goto out_free;
	ret = pfile_pread(img->file, v->map, (size_t)v->blocks * 4, v->off_blocks, true);
	if (ret) {
		log_error("%s: cannot read the VDI block map", img->path);
		goto out_free;
	}
	for (uint32_t b = 0; b < v->blocks; b++) {
		v->map[b] = le32toh(v->map[b]);
		if (allocated(v->map[b])) {
			v->allocated++;
			/* entries beyond the slot area are refused when used (entry_checked) */
			if (v->map[b] < v->blocks && v->map[b] >= v->next_slot)
				v->next_slot = v->map[b] + 1;
		}
	}
	if (!(img->flags & PIMG_O_RDONLY) && v->allocated != ld_le32(v->header + H_ALLOCATED))
		log_warn("%s: VDI header counts %u allocated blocks, the map %u (fixed on the next write)",
			 img->path, ld_le32(v->header + H_ALLOCATED), v->allocated);
	img->size = size;
	img->granule = v->block_size;
	return 0;

out_free:
	vdi_close(img);
	return ret;
}

/* ---- create ------------------------------------------------------------------ */

static void make_uuid(uint8_t *u)
{
	pimg_random(u, 16);
	u[7] = (uint8_t)((u[7] & 0x0f) | 0x40); /* version 4, stored as RTUUID (little-endian fields) */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

static int vdi_create(const char *path, const struct pimg_create_opts *o)
{
	uint8_t h[512] = { 0 };
	uint64_t blocks64 = (o->size + VDI_DEFAULT_BLOCK - 1) / VDI_DEFAULT_BLOCK, map_bytes, off_data, end;
	bool fixed = o->static_image;
	struct pimg_file *f;
	uint32_t blocks, *map;
	int ret;

	if (o->subformat && !strcmp(o->subformat, "fixed"))
		fixed = true;
	else if (o->subformat && strcmp(o->subformat, "dynamic")) {
		log_error("VDI subformat must be dynamic or fixed");
		return -EINVAL;
	}
	if (o->backing_file) {
		log_error("VDI images cannot have a backing file here");
		return -EINVAL;
	}
	if (blocks64 > VDI_MAX_BLOCKS) {
		log_error("VDI images are limited to %u blocks of 1 MiB (16 TiB)", VDI_MAX_BLOCKS);
		return -EFBIG;
	}
	blocks = (uint32_t)blocks64;
	map_bytes = align_up((uint64_t)blocks * 4, VDI_ALIGN);
	off_data = VDI_ALIGN + map_bytes;
	end = off_data + (fixed ? blocks64 * VDI_DEFAULT_BLOCK : 0);
	if (end > (uint64_t)INT64_MAX || off_data > UINT32_MAX) {
		log_error("VDI image too large");
		return -EFBIG;
	}
	memcpy(h, VDI_TEXT, sizeof(VDI_TEXT) - 1);
	st_le32(h + H_SIGNATURE, VDI_SIGNATURE);
	st_le32(h + H_VERSION, VDI_VERSION_1_1);
	st_le32(h + H_SIZE, VDI_HEADER1P_SIZE);
	st_le32(h + H_TYPE, fixed ? VDI_TYPE_FIXED : VDI_TYPE_NORMAL);
	st_le32(h + H_OFF_BLOCKS, VDI_ALIGN);
	st_le32(h + H_OFF_DATA, (uint32_t)off_data);
	st_le32(h + H_SECTOR_SIZE, SECTOR_SIZE);
	st_le64(h + H_DISK_SIZE, o->size);
	st_le32(h + H_BLOCK_SIZE, VDI_DEFAULT_BLOCK);
	st_le32(h + H_BLOCKS, blocks);
	st_le32(h + H_ALLOCATED, fixed ? blocks : 0);
	make_uuid(h + H_UUID_CREATE);
	make_uuid(h + H_UUID_MODIFY);
	st_le32(h + H_LCHS + 12, SECTOR_SIZE);

	map = malloc((size_t)MAX(blocks, 1) * 4);
	if (!map)
		return -ENOMEM;
	for (uint32_t b = 0; b < blocks; b++)
		map[b] = htole32(fixed ? b : VDI_FREE);
	f = pfile_open(path, false, true);
	if (!f) {
		free(map);
		return -EIO;
	}
	ret = pfile_pwrite(f, h, sizeof(h), 0);
	if (!ret)
		ret = pfile_pwrite(f, map, (size_t)blocks * 4, VDI_ALIGN);
	if (!ret)
		ret = pfile_truncate(f, end);
	if (!ret)
		ret = pfile_sync(f);
	if (ret)
		log_error("%s: %s", path, strerror(-ret));
	free(map);
	pfile_close(f);
	return ret;
}

/* ---- info, check --------------------------------------------------------------- */

static void uuid_str(const uint8_t *u, char *out, size_t len)
{
	/* RTUUID: the first three fields are little-endian. */
	snprintf(out, len, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", ld_le32(u),
		 ld_le16(u + 4), ld_le16(u + 6), u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int vdi_info(struct pimg *img, struct pimg_info *info)
{
	struct vdi *v = img->priv;
	char uuid[40];

	info->cluster_size = v->block_size;
	pimg_info_add_str(info, "subformat", v->type == VDI_TYPE_FIXED ? "fixed" : "dynamic");
	uuid_str(v->header + H_UUID_CREATE, uuid, sizeof(uuid));
	pimg_info_add_str(info, "uuid", uuid);
	pimg_info_add_num(info, "allocated-blocks", v->allocated);
	return 0;
}

/* Invariants 1-3 of the top of this file. */
static int vdi_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct vdi *v = img->priv;
	uint32_t *sorted, n = 0, hdr = ld_le32(v->header + H_ALLOCATED);
	int ret;

	res->total_clusters = v->blocks;
	res->image_end_offset = img->file->size;
	sorted = malloc((size_t)MAX(v->blocks, 1) * 4);
	if (!sorted)
		return -ENOMEM;
	for (uint32_t b = 0; b < v->blocks; b++) {
		if (!allocated(v->map[b]))
			continue;
		if (v->map[b] >= v->blocks) {
			check_log(res, "%s: ERROR block %u points at slot %u, beyond the %u slots",
				  img->path, b, v->map[b], v->blocks);
			res->corruptions++;
			continue;
		}
		sorted[n++] = v->map[b];
	}
	res->allocated_clusters = n;
	pimg_sort_u32(sorted, n);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1]) {
			check_log(res, "%s: ERROR slot %u is used by two blocks", img->path, sorted[i]);
			res->corruptions++;
		}
	}
	free(sorted);
	/* A crash between the map and the header writes leaves this: reads are unaffected. */
	if (hdr != v->allocated) {
		check_log(res, "%s: Leaked: the header counts %u allocated blocks, the map %u",
			  img->path, hdr, v->allocated);
		res->leaks++;
		if (repair) {
			v->header_dirty = true;
			ret = vdi_flush(img);
			if (ret)
				return ret;
			res->leaks_fixed++;
		}
	}
	return 0;
}

const struct pimg_format pimg_fmt_vdi = {
	.name = "vdi",
	.create_keys = vdi_create_keys,
	.probe = vdi_probe,
	.open = vdi_open,
	.close = vdi_close,
	.create = vdi_create,
	.block_status = vdi_block_status,
	.read = vdi_read,
	.write = vdi_write,
	.write_zeroes = vdi_write_zeroes,
	.flush = vdi_flush,
	.info = vdi_info,
	.check = vdi_check,
};
