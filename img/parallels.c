// SPDX-License-Identifier: MIT
/*
 * Parallels expandable disk (the .hds data file of a Parallels .hdd bundle), read only.
 *
 *   [header 64: magic 16 | version 2 | heads | cylinders | tracks | BAT entries |
 *    sectors u64 | in-use u32 | data offset u32 (sectors) | flags | ext offset u64]
 *   [BAT: one u32 per cluster]  [data area: clusters]
 * All fields are little-endian. A cluster is `tracks` sectors. A BAT entry is
 * the cluster's file offset, in sectors for magic "WithoutFreeSpace" and in
 * clusters for "WithouFreSpacExt"; 0 = not allocated (reads as zeros).
 * "WithoutFreeSpace" images keep only a 32-bit sector count (the upper half of
 * the field is junk in old files). The in-use mark ("Ynot") says the writer did
 * not close the image: its data is read as it is and `info` reports it dirty.
 * The format extension (dirty bitmaps) is not needed to read the disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "img-internal.h"

#define PRL_MAGIC "WithoutFreeSpace"
#define PRL_MAGIC_EXT "WithouFreSpacExt"
#define PRL_VERSION 2
#define PRL_INUSE 0x746F6E59u
#define PRL_HEADER 64
#define PRL_MAX_CLUSTER (256 * MiB)
/* The BAT is held in memory: at most 32 Mi entries (128 MiB; 32 TiB of 1 MiB clusters). */
#define PRL_MAX_ENTRIES (1u << 25)

struct parallels {
	uint32_t cluster;    /* bytes */
	uint32_t entries;
	uint32_t *bat;       /* host endian, owned */
	uint64_t unit;       /* bytes per BAT unit: 512 or the cluster size */
	uint64_t data_off;   /* start of the data area, bytes */
	bool ext, dirty;
};

static int prl_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	(void)tail;
	(void)size;
	/* The magic alone: another version is an error naming the format, not a raw disk. */
	if (len >= 16 && (!memcmp(head, PRL_MAGIC, 16) || !memcmp(head, PRL_MAGIC_EXT, 16)))
		return 100;
	return 0;
}

/* Host offset of cluster c, 0 if not allocated; -EIO for an entry inside the header or BAT. */
static int cluster_host(struct pimg *img, uint32_t c, uint64_t *host)
{
	struct parallels *p = img->priv;
	uint64_t e = p->bat[c];

	*host = e * p->unit; /* < 2^32 * 2^28: no overflow */
	if (e && *host < p->data_off) {
		log_error("%s: Parallels BAT entry %u points into the header or the BAT", img->path, c);
		return -EIO;
	}
	return 0;
}

static int prl_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct parallels *p = img->priv;
	uint64_t host;
	int ret = cluster_host(img, (uint32_t)(off / p->cluster), &host);

	if (ret)
		return ret;
	/* A granule may hold more than one cluster (clusters that are not a power of two). */
	*pnum = MIN(len, p->cluster - off % p->cluster);
	return host ? PIMG_DATA : PIMG_ZERO;
}

static int prl_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct parallels *p = img->priv;
	uint64_t host;
	int ret = cluster_host(img, (uint32_t)(off / p->cluster), &host);

	if (ret)
		return ret;
	/* The last cluster may be short in the file: the rest reads as zeros. */
	return pfile_pread(img->file, buf, len, host + off % p->cluster, false);
}

static void prl_close(struct pimg *img)
{
	struct parallels *p = img->priv;

	if (!p)
		return;
	free(p->bat);
	free(p);
	img->priv = NULL;
}

static int prl_open(struct pimg *img)
{
	uint8_t h[PRL_HEADER];
	uint64_t sectors, bat_end, data_off;
	uint32_t tracks;
	struct parallels *p;
	int ret = -EINVAL;

	if (!(img->flags & PIMG_O_RDONLY)) {
		log_error("%s: Parallels images are read only here (convert them to another format)",
			  img->path);
		return -EROFS;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	img->priv = p;
	if (pfile_pread(img->file, h, sizeof(h), 0, true) || prl_probe(h, sizeof(h), NULL, 0) != 100) {
		log_error("%s: no Parallels header", img->path);
		goto out_free;
	}
	if (ld_le32(h + 16) != PRL_VERSION) {
		log_error("%s: unsupported Parallels version %u (2 is supported)", img->path, ld_le32(h + 16));
		ret = -ENOTSUP;
		goto out_free;
	}
	p->ext = !memcmp(h, PRL_MAGIC_EXT, 16);
	tracks = ld_le32(h + 28);
	p->entries = ld_le32(h + 32);
	sectors = ld_le64(h + 36);
	if (!p->ext)
		sectors &= 0xffffffffu;
	p->dirty = ld_le32(h + 44) == PRL_INUSE;
	data_off = ld_le32(h + 48);
	if (!tracks || (uint64_t)tracks * SECTOR_SIZE > PRL_MAX_CLUSTER) {
		log_error("%s: bad Parallels cluster size (%u sectors)", img->path, tracks);
		goto out_free;
	}
	if (p->entries > PRL_MAX_ENTRIES) {
		log_error("%s: Parallels BAT of %u entries (more than %u are not supported)", img->path,
			  p->entries, PRL_MAX_ENTRIES);
		ret = -EFBIG;
		goto out_free;
	}
	p->cluster = tracks * SECTOR_SIZE;
	p->unit = p->ext ? p->cluster : SECTOR_SIZE;
	if (sectors > (uint64_t)p->entries * tracks) {
		log_error("%s: Parallels disk of %" PRIu64 " sectors has only %u clusters of %u sectors",
			  img->path, sectors, p->entries, tracks);
		goto out_free;
	}
	bat_end = PRL_HEADER + (uint64_t)p->entries * 4;
	p->data_off = data_off ? data_off * SECTOR_SIZE : align_up(bat_end, SECTOR_SIZE);
	if (!range_within(PRL_HEADER, (uint64_t)p->entries * 4, img->file->size) ||
	    p->data_off < bat_end) {
		log_error("%s: Parallels BAT (%u entries) lies outside the file or past the data offset",
			  img->path, p->entries);
		goto out_free;
	}
	/* Only the entries the disk size needs are read: the table may claim more. */
	p->entries = (uint32_t)MIN((uint64_t)p->entries, (sectors + tracks - 1) / tracks);
	ret = -ENOMEM;
	p->bat = malloc((size_t)MAX(p->entries, 1) * 4);
	if (!p->bat)
		goto out_free;
	ret = pfile_pread(img->file, p->bat, (size_t)p->entries * 4, PRL_HEADER, true);
	if (ret)
		goto out_free;
	for (uint32_t i = 0; i < p->entries; i++)
		p->bat[i] = le32toh(p->bat[i]);
	img->size = sectors * SECTOR_SIZE;
	/* Clusters of old images need not be a power of two (63 sectors): block_status then
	 * stops at each cluster's end inside a 64 KiB granule. */
	img->granule = is_pow2(p->cluster) ? p->cluster : 64 * KiB;
	return 0;

out_free:
	prl_close(img);
	return ret;
}

static int prl_info(struct pimg *img, struct pimg_info *info)
{
	struct parallels *p = img->priv;

	info->cluster_size = p->cluster;
	info->dirty = p->dirty;
	pimg_info_add_str(info, "magic", p->ext ? PRL_MAGIC_EXT : PRL_MAGIC);
	return 0;
}

/* The spec's rules for BAT entries: in the data area, cluster aligned to it, unique. */
static int prl_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct parallels *p = img->priv;
	uint32_t *sorted, n = 0;

	(void)repair;
	res->total_clusters = p->entries;
	res->image_end_offset = img->file->size;
	sorted = malloc((size_t)MAX(p->entries, 1) * 4);
	if (!sorted)
		return -ENOMEM;
	for (uint32_t c = 0; c < p->entries; c++) {
		uint64_t host = (uint64_t)p->bat[c] * p->unit;

		if (!p->bat[c])
			continue;
		if (host < p->data_off || (host - p->data_off) % p->cluster || host >= img->file->size) {
			check_log(res, "%s: ERROR cluster %u at %#" PRIx64 " is outside the data area or "
				  "not aligned to it", img->path, c, host);
			res->corruptions++;
			continue;
		}
		sorted[n++] = p->bat[c];
	}
	res->allocated_clusters = n;
	pimg_sort_u32(sorted, n);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1]) {
			check_log(res, "%s: ERROR two clusters at %#" PRIx64, img->path,
				  (uint64_t)sorted[i] * p->unit);
			res->corruptions++;
		}
	}
	free(sorted);
	return 0;
}

const struct pimg_format pimg_fmt_parallels = {
	.name = "parallels",
	.probe = prl_probe,
	.open = prl_open,
	.close = prl_close,
	.block_status = prl_block_status,
	.read = prl_read,
	.info = prl_info,
	.check = prl_check,
};
