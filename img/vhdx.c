// SPDX-License-Identifier: MIT
/*
 * VHDX ([MS-VHDX]). Layout, all little-endian:
 *   0      file type identifier "vhdxfile"
 *   64K    header 1, 128K header 2: "head", CRC-32C, sequence number, GUIDs, log
 *          position; the valid header with the higher sequence number is current
 *   192K   region table 1 (256K: copy 2): "regi", CRC-32C, entries {GUID, offset,
 *          length, required} locating the BAT and the metadata region
 *   log    circular buffer of entries replayed on open when the header's LogGuid
 *          is set: each entry carries 4 KiB sectors (and zero ranges) of metadata
 *   BAT    u64 per block: state (bits 0-2) and file offset in MiB (bits 20-63);
 *          after every chunk_ratio payload entries one sector-bitmap entry
 *   meta   table of items: file parameters (block size, has-parent), virtual
 *          disk size, logical/physical sector size, disk id, parent locator
 *
 * Payload block states: NOT_PRESENT (zeros; the parent's data in a differencing
 * disk), UNDEFINED/ZERO/UNMAPPED (zeros), FULLY_PRESENT (data at the offset),
 * PARTIALLY_PRESENT (differencing: the sector bitmap says, per sector, data here
 * or in the parent).
 *
 * Log replay: on open, if the header names a log, the active sequence (the
 * valid entries with the highest sequence number whose tail is in the sequence)
 * is applied. Every range it writes must lie inside the file, which must be at
 * least as long as the log's FlushedFileOffset: replay never grows the file, and
 * zero descriptors become zero ranges (fallocate), not written zeros. Writable opens replay into the file, then clear the header's
 * LogGuid; read-only opens keep the replayed sectors in memory as an overlay on
 * every read of the file, and never write.
 *
 * Metadata update order (crash safety) -- only the BAT changes after create:
 *   write: payload data goes to a new block at the end of the file (1 MiB
 *          aligned); the BAT entry changes in memory only.
 *   flush: 1. fdatasync                             -- data stable
 *          2. first time: header update with a fresh LogGuid, fdatasync
 *          3. log entry with the dirty BAT sectors, fdatasync
 *          4. write the BAT sectors in place, fdatasync
 *   close: header update with LogGuid zero, fdatasync.
 * A crash before 3 completes leaves the old BAT (old data); after 3, replay
 * applies the new BAT sectors. Each entry is a sequence of its own (its tail
 * is itself), written after the previous one in the circular log.
 * Differencing disks: a write to a block not present copies the block from the
 * parent first (no sector bitmaps are written by plinth).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "img-internal.h"

static const uint8_t GUID_BAT[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
static const uint8_t GUID_META[16] = { 0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e };
static const uint8_t GUID_FILE_PARAMS[16] = { 0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b };
static const uint8_t GUID_DISK_SIZE[16] = { 0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 };
static const uint8_t GUID_DISK_ID[16] = { 0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46 };
static const uint8_t GUID_LOGICAL_SECTOR[16] = { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f };
static const uint8_t GUID_PHYSICAL_SECTOR[16] = { 0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44, 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56 };
static const uint8_t GUID_PARENT_LOCATOR[16] = { 0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c };
static const uint8_t GUID_LOCATOR_TYPE_VHDX[16] = { 0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a, 0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13 };

#define VHDX_HEADER1 (64 * KiB)
#define VHDX_HEADER2 (128 * KiB)
#define VHDX_RT1 (192 * KiB)
#define VHDX_RT_SIZE (64 * KiB)
#define VHDX_HDR_SIZE 4096
#define VHDX_LOG_SECTOR 4096
#define VHDX_MAX_LOG (8 * MiB)
#define VHDX_MAX_SIZE (64ULL * 1024 * GiB) /* 64 TiB, the format's limit */

enum {
	PAYLOAD_NOT_PRESENT = 0,
	PAYLOAD_UNDEFINED = 1,
	PAYLOAD_ZERO = 2,
	PAYLOAD_UNMAPPED = 3,
	PAYLOAD_FULLY_PRESENT = 6,
	PAYLOAD_PARTIALLY_PRESENT = 7,
	SB_PRESENT = 6,
};

struct overlay { /* replayed log sector kept in memory (read-only opens) */
	uint64_t off, len;
	uint8_t *data; /* NULL = zeros */
};

struct vhdx {
	uint8_t hdr[VHDX_HDR_SIZE]; /* current header */
	uint64_t hdr_slot;          /* its offset */
	uint64_t seq;
	uint64_t log_off, log_len;
	uint64_t bat_off, bat_len, meta_off, meta_len;
	uint32_t block_size, logical_sector, physical_sector;
	bool has_parent, leave_allocated;
	uint64_t chunk_ratio, payload_blocks;
	uint64_t *bat;              /* host endian */
	uint64_t bat_entries;
	uint8_t *bat_dirty;         /* one flag per 4 KiB sector of the BAT */
	uint64_t alloc_end;         /* where the next block goes (1 MiB aligned) */
	uint8_t disk_id[16];
	uint64_t size_item_off;     /* file offset of the virtual disk size item */
	struct overlay *ov;
	size_t n_ov;
	bool log_active;            /* our LogGuid is in the header */
	uint64_t log_seq, log_pos;  /* next entry's sequence number and offset */
	bool data_guid_done;
	uint8_t *sbm;               /* cached sector bitmap block (1 MiB) */
	uint64_t sbm_index;         /* which one, UINT64_MAX = none */
};

static const char *const vhdx_create_keys[] = {
	"size", "subformat", "block_size", "backing_file", "backing_fmt", NULL,
};

/* Read from the file, with replayed log sectors on top (read-only opens). */
static int vx_pread(struct pimg *img, void *buf, uint64_t len, uint64_t off, bool strict)
{
	struct vhdx *x = img->priv;
	int ret = pfile_pread(img->file, buf, len, off, strict);

	if (ret)
		return ret;
	for (size_t i = 0; i < x->n_ov; i++) {
		struct overlay *o = &x->ov[i];
		uint64_t s = MAX(o->off, off), e = MIN(o->off + o->len, off + len);

		if (s >= e)
			continue;
		if (o->data)
			memcpy((uint8_t *)buf + (s - off), o->data + (s - o->off), e - s);
		else
			memset((uint8_t *)buf + (s - off), 0, e - s);
	}
	return 0;
}

static bool header_valid(const uint8_t *h)
{
	uint8_t c[VHDX_HDR_SIZE];

	if (memcmp(h, "head", 4))
		return false;
	memcpy(c, h, sizeof(c));
	memset(c + 4, 0, 4);
	return pimg_crc32c(0, c, sizeof(c)) == ld_le32(h + 4);
}

static void header_seal(uint8_t *h)
{
	st_le32(h + 4, 0);
	st_le32(h + 4, pimg_crc32c(0, h, VHDX_HDR_SIZE));
}

/* Write a new header (copy of the current with changes applied) to the other slot. */
static int header_update(struct pimg *img, const uint8_t *log_guid, bool new_data_guid)
{
	struct vhdx *x = img->priv;
	uint64_t slot = x->hdr_slot == VHDX_HEADER1 ? VHDX_HEADER2 : VHDX_HEADER1;
	uint8_t h[VHDX_HDR_SIZE];
	int ret;

	memcpy(h, x->hdr, sizeof(h));
	st_le64(h + 8, x->seq + 1);
	pimg_random(h + 16, 16); /* FileWriteGuid */
	if (new_data_guid)
		pimg_random(h + 32, 16);
	if (log_guid)
		memcpy(h + 48, log_guid, 16);
	header_seal(h);
	ret = pfile_pwrite(img->file, h, sizeof(h), slot);
	if (!ret)
		ret = pfile_sync(img->file);
	if (ret)
		return ret;
	memcpy(x->hdr, h, sizeof(h));
	x->hdr_slot = slot;
	x->seq++;
	return 0;
}

/* ---- log ------------------------------------------------------------------ */

struct log_entry {
	uint64_t pos, len, seq, tail;
	uint32_t ndesc;
	uint64_t flushed_end;
};

/* Copy len bytes of the circular log starting at pos into out. */
static void log_copy(const struct vhdx *x, const uint8_t *log, uint64_t pos, uint64_t len, uint8_t *out)
{
	for (uint64_t i = 0; i < len; i++)
		out[i] = log[(pos + i) % x->log_len];
}

/* Cheap checks of an entry header at pos (no checksum). */
static bool entry_header(const struct vhdx *x, const uint8_t *log, uint64_t pos, struct log_entry *e)
{
	uint8_t h[64];

	log_copy(x, log, pos, sizeof(h), h);
	if (memcmp(h, "loge", 4) || memcmp(h + 32, x->hdr + 48, 16))
		return false;
	e->pos = pos;
	e->len = ld_le32(h + 8);
	e->tail = ld_le32(h + 12);
	e->seq = ld_le64(h + 16);
	e->ndesc = ld_le32(h + 24);
	e->flushed_end = ld_le64(h + 48);
	if (!e->len || e->len % VHDX_LOG_SECTOR || e->len > x->log_len || e->tail % VHDX_LOG_SECTOR ||
	    e->tail >= x->log_len || !e->seq)
		return false;
	/* descriptors, then one data sector per data descriptor: bounded by the length */
	if (align_up(64 + (uint64_t)e->ndesc * 32, VHDX_LOG_SECTOR) > e->len)
		return false;
	return true;
}

static bool entry_valid(const struct vhdx *x, const uint8_t *log, const struct log_entry *e, uint8_t *tmp)
{
	uint32_t want;

	log_copy(x, log, e->pos, e->len, tmp);
	want = ld_le32(tmp + 4);
	memset(tmp + 4, 0, 4);
	return pimg_crc32c(0, tmp, e->len) == want;
}

static int add_overlay(struct vhdx *x, uint64_t off, uint64_t len, const uint8_t *data)
{
	struct overlay *n = realloc(x->ov, (x->n_ov + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	x->ov = n;
	n[x->n_ov].off = off;
	n[x->n_ov].len = len;
	n[x->n_ov].data = NULL;
	if (data) {
		n[x->n_ov].data = malloc(len);
		if (!n[x->n_ov].data)
			return -ENOMEM;
		memcpy(n[x->n_ov].data, data, len);
	}
	x->n_ov++;
	return 0;
}

/* Turn one validated entry (linear copy in buf) into overlay ranges. */
static int entry_apply(struct pimg *img, const struct log_entry *e, const uint8_t *buf)
{
	struct vhdx *x = img->priv;
	uint64_t data_pos = align_up(64 + (uint64_t)e->ndesc * 32, VHDX_LOG_SECTOR);
	uint8_t sector[VHDX_LOG_SECTOR];
	int ret;

	for (uint32_t i = 0; i < e->ndesc; i++) {
		const uint8_t *d = buf + 64 + (uint64_t)i * 32;
		uint64_t foff = ld_le64(d + 16);

		if (foff % VHDX_LOG_SECTOR || foff < 1 * MiB || foff > VHDX_MAX_SIZE * 2 ||
		    (foff < x->log_off + x->log_len && foff + VHDX_LOG_SECTOR > x->log_off))
			return -EINVAL;
		if (!memcmp(d, "zero", 4)) {
			uint64_t zlen = ld_le64(d + 8);

			if (zlen % VHDX_LOG_SECTOR || zlen > 1 * GiB)
				return -EINVAL;
			/* Replay never grows the file: metadata it rewrites is inside it. */
			if (!range_within(foff, zlen, img->file->size))
				return -ERANGE;
			ret = add_overlay(x, foff, zlen, NULL);
		} else if (!memcmp(d, "desc", 4)) {
			const uint8_t *ds = buf + data_pos;

			if (!range_within(foff, VHDX_LOG_SECTOR, img->file->size))
				return -ERANGE;
			if (data_pos + VHDX_LOG_SECTOR > e->len || memcmp(ds, "data", 4) ||
			    ld_le32(ds + 4) != (uint32_t)(ld_le64(d + 24) >> 32) ||
			    ld_le32(ds + 4092) != (uint32_t)ld_le64(d + 24))
				return -EINVAL;
			memcpy(sector, d + 8, 8);           /* leading bytes */
			memcpy(sector + 8, ds + 8, 4084);   /* data */
			memcpy(sector + 4092, d + 4, 4);    /* trailing bytes */
			data_pos += VHDX_LOG_SECTOR;
			ret = add_overlay(x, foff, VHDX_LOG_SECTOR, sector);
		} else {
			return -EINVAL;
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Find the active sequence and turn it into overlay ranges. Candidate heads are
 * tried from the highest sequence number down (at most 16), so hostile logs cost
 * bounded work. Returns 0 (x->n_ov may be 0: nothing to replay) or -errno.
 */
static int log_load(struct pimg *img, uint64_t *max_seq, uint64_t *flushed_end)
{
	struct vhdx *x = img->priv;
	uint64_t n = x->log_len / VHDX_LOG_SECTOR;
	struct log_entry *cand = NULL, *chain = NULL;
	uint8_t *log, *tmp;
	size_t nc = 0;
	int ret = -ENOMEM;

	*max_seq = 0;
	*flushed_end = 0;
	log = malloc(x->log_len);
	tmp = malloc(x->log_len);
	cand = calloc(n, sizeof(*cand));
	chain = calloc(n, sizeof(*chain));
	if (!log || !tmp || !cand || !chain)
		goto out;
	ret = pfile_pread(img->file, log, x->log_len, x->log_off, true);
	if (ret) {
		log_error("%s: cannot read the VHDX log", img->path);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++)
		if (entry_header(x, log, i * VHDX_LOG_SECTOR, &cand[nc]))
			nc++;
	for (int attempt = 0; attempt < 16 && nc; attempt++) {
		size_t best = 0, len = 0;
		uint64_t pos;
		bool ok = true;

		for (size_t i = 1; i < nc; i++)
			if (cand[i].seq > cand[best].seq)
				best = i;
		if (!cand[best].seq)
			break;
		if (!entry_valid(x, log, &cand[best], tmp)) {
			cand[best].seq = 0;
			continue;
		}
		/* Walk from the head's tail forward to the head. */
		pos = cand[best].tail;
		for (uint64_t steps = 0; ok && steps < n; steps++) {
			struct log_entry e;

			if (!entry_header(x, log, pos, &e) || !entry_valid(x, log, &e, tmp) ||
			    (len && e.seq != chain[len - 1].seq + 1)) {
				ok = false;
				break;
			}
			chain[len++] = e;
			if (e.pos == cand[best].pos)
				break;
			pos = (pos + e.len) % x->log_len;
		}
		if (!ok || !len || chain[len - 1].pos != cand[best].pos) {
			cand[best].seq = 0;
			continue;
		}
		for (size_t i = 0; i < len; i++) {
			log_copy(x, log, chain[i].pos, chain[i].len, tmp);
			ret = entry_apply(img, &chain[i], tmp);
			if (ret) {
				log_error("%s: corrupt VHDX log entry (sequence %" PRIu64 ")%s", img->path,
					  chain[i].seq,
					  ret == -ERANGE ? ": it writes beyond the end of the file" : "");
				ret = -EINVAL;
				goto out;
			}
		}
		*max_seq = cand[best].seq;
		*flushed_end = cand[best].flushed_end;
		x->log_pos = (cand[best].pos + cand[best].len) % x->log_len;
		break;
	}
	ret = 0;
out:
	free(log);
	free(tmp);
	free(cand);
	free(chain);
	return ret;
}

/* Writable open with a pending log: write the overlay into the file, clear the log. */
static int log_replay_to_file(struct pimg *img)
{
	struct vhdx *x = img->priv;
	static const uint8_t null_guid[16];
	int ret;

	for (size_t i = 0; i < x->n_ov; i++) {
		struct overlay *o = &x->ov[i];

		/* Inside the file (entry_apply): zero ranges allocate nothing where the file
		 * system can zero or punch a range. */
		if (o->data)
			ret = pfile_pwrite(img->file, o->data, o->len, o->off);
		else
			ret = pfile_write_zeroes(img->file, o->off, o->len);
		if (ret)
			return ret;
		free(o->data);
	}
	free(x->ov);
	x->ov = NULL;
	x->n_ov = 0;
	ret = pfile_sync(img->file);
	if (ret)
		return ret;
	return header_update(img, null_guid, false);
}

/* Append one log entry carrying n 4 KiB sectors (secs[i] for file offset foffs[i]). */
static int log_write_entry(struct pimg *img, const uint64_t *foffs, uint8_t *const *secs, uint32_t n)
{
	struct vhdx *x = img->priv;
	uint64_t desc_bytes = align_up(64 + (uint64_t)n * 32, VHDX_LOG_SECTOR);
	uint64_t len = desc_bytes + (uint64_t)n * VHDX_LOG_SECTOR, seq = x->log_seq++;
	uint8_t *e;
	int ret;

	if (len > x->log_len)
		return -ENOSPC;
	if (x->log_pos + len > x->log_len)
		x->log_pos = 0; /* entries we write never wrap */
	e = calloc(1, len);
	if (!e)
		return -ENOMEM;
	memcpy(e, "loge", 4);
	st_le32(e + 8, (uint32_t)len);
	st_le32(e + 12, (uint32_t)x->log_pos); /* tail: this entry */
	st_le64(e + 16, seq);
	st_le32(e + 24, n);
	memcpy(e + 32, x->hdr + 48, 16);
	st_le64(e + 48, img->file->size); /* FlushedFileOffset */
	st_le64(e + 56, img->file->size); /* LastFileOffset */
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *d = e + 64 + (uint64_t)i * 32, *ds = e + desc_bytes + (uint64_t)i * VHDX_LOG_SECTOR;
		const uint8_t *sec = secs[i];

		memcpy(d, "desc", 4);
		memcpy(d + 4, sec + 4092, 4);
		memcpy(d + 8, sec, 8);
		st_le64(d + 16, foffs[i]);
		st_le64(d + 24, seq);
		memcpy(ds, "data", 4);
		st_le32(ds + 4, (uint32_t)(seq >> 32));
		memcpy(ds + 8, sec + 8, 4084);
		st_le32(ds + 4092, (uint32_t)seq);
	}
	st_le32(e + 4, pimg_crc32c(0, e, len));
	ret = pfile_pwrite(img->file, e, len, x->log_off + x->log_pos);
	free(e);
	if (ret)
		return ret;
	x->log_pos = (x->log_pos + len) % x->log_len;
	return 0;
}

/*
 * Update metadata sectors crash-safely: log entry, fdatasync, in place, fdatasync
 * (steps 2-4 at the top of the file). Data the sectors point at must be stable.
 */
static int log_update(struct pimg *img, const uint64_t *foffs, uint8_t *const *secs, uint32_t n)
{
	struct vhdx *x = img->priv;
	int ret;

	if (!x->log_active) {
		uint8_t guid[16];

		pimg_random(guid, sizeof(guid));
		ret = header_update(img, guid, false);
		if (ret)
			return ret;
		x->log_active = true;
	}
	ret = log_write_entry(img, foffs, secs, n);
	if (!ret)
		ret = pfile_sync(img->file);
	for (uint32_t i = 0; i < n && !ret; i++)
		ret = pfile_pwrite(img->file, secs[i], VHDX_LOG_SECTOR, foffs[i]);
	if (!ret)
		ret = pfile_sync(img->file);
	return ret;
}

static int vhdx_flush(struct pimg *img)
{
	struct vhdx *x = img->priv;
	uint64_t nsec = (x->bat_entries * 8 + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
	uint64_t *foffs, *batch, max_batch;
	uint8_t **secs;
	uint32_t n = 0;
	bool any = false;
	int ret;

	for (uint64_t s = 0; s < nsec; s++)
		any |= x->bat_dirty[s];
	if (!any)
		return 0;
	ret = pfile_sync(img->file); /* 1 */
	if (ret)
		return ret;
	max_batch = MIN((x->log_len - VHDX_LOG_SECTOR) / VHDX_LOG_SECTOR, 100);
	batch = calloc(max_batch, sizeof(*batch));
	foffs = calloc(max_batch, sizeof(*foffs));
	secs = calloc(max_batch, sizeof(*secs));
	for (uint64_t i = 0; secs && i < max_batch; i++) {
		secs[i] = malloc(VHDX_LOG_SECTOR);
		if (!secs[i])
			ret = -ENOMEM;
	}
	if (!batch || !foffs || !secs)
		ret = -ENOMEM;
	for (uint64_t s = 0; s <= nsec && !ret; s++) {
		if (s < nsec && x->bat_dirty[s]) {
			uint64_t first = s * (VHDX_LOG_SECTOR / 8);

			memset(secs[n], 0, VHDX_LOG_SECTOR);
			for (uint64_t k = 0; k < VHDX_LOG_SECTOR / 8 && first + k < x->bat_entries; k++)
				st_le64(secs[n] + k * 8, x->bat[first + k]);
			/* Entries past bat_entries in this sector keep their on-disk value. */
			if (first + VHDX_LOG_SECTOR / 8 > x->bat_entries) {
				uint64_t keep = x->bat_entries - first;

				ret = vx_pread(img, secs[n] + keep * 8, VHDX_LOG_SECTOR - keep * 8,
					       x->bat_off + s * VHDX_LOG_SECTOR + keep * 8, true);
				if (ret)
					break;
			}
			foffs[n] = x->bat_off + s * VHDX_LOG_SECTOR;
			batch[n++] = s;
		}
		if (n && (n == max_batch || s == nsec)) {
			ret = log_update(img, foffs, secs, n); /* 2-4 */
			for (uint32_t i = 0; i < n && !ret; i++)
				x->bat_dirty[batch[i]] = 0;
			n = 0;
		}
	}
	for (uint64_t i = 0; secs && i < max_batch; i++)
		free(secs[i]);
	free(secs);
	free(foffs);
	free(batch);
	return ret;
}

/* ---- mapping ---------------------------------------------------------------- */

static uint64_t bat_index(const struct vhdx *x, uint64_t block)
{
	return block + block / x->chunk_ratio;
}

static bool overlaps_meta(const struct vhdx *x, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	if (off < 1 * MiB)
		return true;
	if (off < x->log_off + x->log_len && end > x->log_off)
		return true;
	if (off < x->bat_off + x->bat_len && end > x->bat_off)
		return true;
	return off < x->meta_off + x->meta_len && end > x->meta_off;
}

static int block_offset(struct pimg *img, uint64_t entry, uint64_t *host)
{
	struct vhdx *x = img->priv;

	*host = (entry >> 20) * MiB;
	if (overlaps_meta(x, *host, x->block_size) || *host >= MAX(img->file->size, x->alloc_end)) {
		log_error("%s: BAT entry points outside the payload area (%#" PRIx64 ")", img->path, *host);
		return -EIO;
	}
	return 0;
}

static int load_sector_bitmap(struct pimg *img, uint64_t block)
{
	struct vhdx *x = img->priv;
	uint64_t sbi = block / x->chunk_ratio, entry, host;

	if (x->sbm_index == sbi)
		return 0;
	entry = x->bat[sbi * (x->chunk_ratio + 1) + x->chunk_ratio];
	if ((entry & 7) != SB_PRESENT) {
		log_error("%s: partially present block without a sector bitmap", img->path);
		return -EIO;
	}
	host = (entry >> 20) * MiB;
	if (overlaps_meta(x, host, 1 * MiB) || !range_within(host, 1 * MiB, img->file->size)) {
		log_error("%s: sector bitmap outside the file", img->path);
		return -EIO;
	}
	if (!x->sbm) {
		x->sbm = malloc(1 * MiB);
		if (!x->sbm)
			return -ENOMEM;
	}
	x->sbm_index = UINT64_MAX;
	if (vx_pread(img, x->sbm, 1 * MiB, host, true))
		return -EIO;
	x->sbm_index = sbi;
	return 0;
}

static int vhdx_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct vhdx *x = img->priv;
	uint64_t b = off / x->block_size, entry = x->bat[bat_index(x, b)], host;
	int ret;

	*pnum = len;
	switch (entry & 7) {
	case PAYLOAD_NOT_PRESENT:
		return x->has_parent ? PIMG_UNALLOCATED : PIMG_ZERO;
	case PAYLOAD_UNDEFINED:
	case PAYLOAD_ZERO:
	case PAYLOAD_UNMAPPED:
		return PIMG_ZERO;
	case PAYLOAD_FULLY_PRESENT:
		ret = block_offset(img, entry, &host);
		return ret ? ret : PIMG_DATA;
	case PAYLOAD_PARTIALLY_PRESENT: {
		uint64_t s, first, n, bits_per_chunk;

		if (!x->has_parent)
			return -EIO;
		ret = block_offset(img, entry, &host);
		if (!ret)
			ret = load_sector_bitmap(img, b);
		if (ret)
			return ret;
		bits_per_chunk = x->chunk_ratio * (x->block_size / x->logical_sector);
		s = (off / x->logical_sector) % bits_per_chunk;
		first = (x->sbm[s / 8] >> (s % 8)) & 1;
		for (n = 1; n < len / x->logical_sector; n++)
			if (((x->sbm[(s + n) / 8] >> ((s + n) % 8)) & 1) != first)
				break;
		*pnum = MIN(len, n * x->logical_sector);
		return first ? PIMG_DATA : PIMG_UNALLOCATED;
	}
	default:
		log_error("%s: invalid BAT entry state %u", img->path, (unsigned)(entry & 7));
		return -EIO;
	}
}

static int vhdx_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct vhdx *x = img->priv;
	uint64_t host;
	int ret = block_offset(img, x->bat[bat_index(x, off / x->block_size)], &host);

	if (ret)
		return ret;
	return vx_pread(img, buf, len, host + off % x->block_size, false);
}

static void bat_set(struct vhdx *x, uint64_t block, uint64_t entry)
{
	uint64_t i = bat_index(x, block);

	x->bat[i] = entry;
	x->bat_dirty[i * 8 / VHDX_LOG_SECTOR] = 1;
}

/* A new block at the end of the file; for a child, filled with the parent's data. */
static int alloc_block(struct pimg *img, uint64_t block, uint64_t *host)
{
	struct vhdx *x = img->priv;
	uint64_t h = x->alloc_end, start = block * x->block_size;
	int ret;

	if (h + x->block_size > VHDX_MAX_SIZE * 2)
		return -EFBIG;
	ret = pfile_truncate(img->file, MAX(img->file->size, h + x->block_size));
	if (ret)
		return ret;
	if (x->has_parent && img->backing) {
		uint8_t *buf = malloc(1 * MiB);

		if (!buf)
			return -ENOMEM;
		for (uint64_t o = 0; o < x->block_size && start + o < img->size && !ret; o += 1 * MiB) {
			uint64_t n = MIN(1 * MiB, MIN(x->block_size - o, img->size - start - o));

			ret = pimg_read_backing(img, buf, n, start + o);
			if (!ret && !pimg_is_zero(buf, n))
				ret = pfile_pwrite(img->file, buf, n, h + o);
		}
		free(buf);
		if (ret)
			return ret;
	}
	x->alloc_end = h + x->block_size;
	*host = h;
	bat_set(x, block, (h / MiB) << 20 | PAYLOAD_FULLY_PRESENT);
	return 0;
}

static int first_write(struct pimg *img)
{
	struct vhdx *x = img->priv;
	int ret;

	if (x->data_guid_done)
		return 0;
	ret = header_update(img, NULL, true); /* new DataWriteGuid before user data changes */
	if (!ret)
		x->data_guid_done = true;
	return ret;
}

static int vhdx_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	struct vhdx *x = img->priv;
	uint64_t b = off / x->block_size, entry = x->bat[bat_index(x, b)], host;
	int ret = first_write(img);

	if (ret)
		return ret;
	switch (entry & 7) {
	case PAYLOAD_FULLY_PRESENT:
		ret = block_offset(img, entry, &host);
		break;
	case PAYLOAD_PARTIALLY_PRESENT:
		log_error("%s: writing to partially present VHDX blocks is not supported", img->path);
		return -ENOTSUP;
	case PAYLOAD_NOT_PRESENT:
		ret = alloc_block(img, b, &host);
		break;
	default: /* zero states: a fresh block reads as zeros, ignore the parent */
		if (x->has_parent) {
			bool saved = x->has_parent;

			x->has_parent = false;
			ret = alloc_block(img, b, &host);
			x->has_parent = saved;
		} else {
			ret = alloc_block(img, b, &host);
		}
		break;
	}
	if (ret)
		return ret;
	return pfile_pwrite(img->file, buf, len, host + off % x->block_size);
}

static int vhdx_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct vhdx *x = img->priv;
	uint64_t b = off / x->block_size, st = x->bat[bat_index(x, b)] & 7;

	if (st == PAYLOAD_ZERO || st == PAYLOAD_UNMAPPED || st == PAYLOAD_UNDEFINED ||
	    (st == PAYLOAD_NOT_PRESENT && !x->has_parent))
		return 0;
	if (len != x->block_size || !may_unmap || x->leave_allocated)
		return -ENOTSUP;
	bat_set(x, b, PAYLOAD_ZERO); /* the old block is left unused (not reused while open) */
	return 0;
}

/* ---- open ------------------------------------------------------------------ */

static void vhdx_close(struct pimg *img)
{
	struct vhdx *x = img->priv;

	if (!x)
		return;
	if (x->log_active && !(img->flags & PIMG_O_RDONLY)) {
		static const uint8_t null_guid[16];

		/* Clean close: the log is empty (everything applied in vhdx_flush). */
		if (!vhdx_flush(img))
			header_update(img, null_guid, false);
	}
	for (size_t i = 0; i < x->n_ov; i++)
		free(x->ov[i].data);
	free(x->ov);
	free(x->bat);
	free(x->bat_dirty);
	free(x->sbm);
	free(x);
	img->priv = NULL;
}

static int vhdx_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	return len >= 8 && !memcmp(head, "vhdxfile", 8) ? 100 : 0;
}

static int read_regions(struct pimg *img)
{
	struct vhdx *x = img->priv;
	uint8_t *rt = malloc(VHDX_RT_SIZE);
	bool ok = false;
	int ret = -EINVAL;

	if (!rt)
		return -ENOMEM;
	for (int copy = 0; copy < 2 && !ok; copy++) {
		uint32_t want, n;

		if (vx_pread(img, rt, VHDX_RT_SIZE, VHDX_RT1 + (uint64_t)copy * VHDX_RT_SIZE, true) ||
		    memcmp(rt, "regi", 4))
			continue;
		want = ld_le32(rt + 4);
		memset(rt + 4, 0, 4);
		if (pimg_crc32c(0, rt, VHDX_RT_SIZE) != want)
			continue;
		n = ld_le32(rt + 8);
		if (n > 2047)
			continue;
		x->bat_off = x->meta_off = 0;
		ok = true;
		for (uint32_t i = 0; i < n && ok; i++) {
			const uint8_t *e = rt + 16 + i * 32;
			uint64_t off = ld_le64(e + 16);
			uint32_t len = ld_le32(e + 24);

			if (off % MiB || len % MiB || !len || off < 1 * MiB ||
			    !range_within(off, len, img->file->size)) {
				ok = false;
			} else if (!memcmp(e, GUID_BAT, 16)) {
				x->bat_off = off;
				x->bat_len = len;
			} else if (!memcmp(e, GUID_META, 16)) {
				x->meta_off = off;
				x->meta_len = len;
			} else if (ld_le32(e + 28) & 1) {
				log_error("%s: unknown required VHDX region", img->path);
				ok = false;
			}
		}
		if (ok && (!x->bat_off || !x->meta_off))
			ok = false;
	}
	free(rt);
	if (!ok)
		log_error("%s: no valid VHDX region table (bad signature, checksum or entries)", img->path);
	else
		ret = 0;
	return ret;
}

struct meta_item {
	const uint8_t *guid;
	uint32_t off, len;
};

static int read_metadata(struct pimg *img, uint8_t **locator, uint32_t *locator_len)
{
	struct vhdx *x = img->priv;
	uint8_t tab[64 * KiB], item[16];
	uint16_t n;
	uint64_t size = 0;
	bool have_params = false, have_size = false, have_lss = false;

	*locator = NULL;
	if (x->meta_len < 64 * KiB || vx_pread(img, tab, sizeof(tab), x->meta_off, true) ||
	    memcmp(tab, "metadata", 8)) {
		log_error("%s: VHDX metadata table missing", img->path);
		return -EINVAL;
	}
	n = ld_le16(tab + 10);
	if (n > 2047) {
		log_error("%s: too many VHDX metadata entries", img->path);
		return -EINVAL;
	}
	x->logical_sector = 512;
	x->physical_sector = 4096;
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *e = tab + 32 + i * 32;
		uint32_t off = ld_le32(e + 16), len = ld_le32(e + 20), flags = ld_le32(e + 24);

		if (len == 0)
			continue;
		if (off < 64 * KiB || !range_within(off, len, x->meta_len)) {
			log_error("%s: VHDX metadata item outside its region", img->path);
			return -EINVAL;
		}
		if (!memcmp(e, GUID_PARENT_LOCATOR, 16)) {
			if (len > 64 * KiB)
				return -EINVAL;
			free(*locator);
			*locator = malloc(len);
			if (!*locator)
				return -ENOMEM;
			if (vx_pread(img, *locator, len, x->meta_off + off, true))
				return -EIO;
			*locator_len = len;
			continue;
		}
		if (len > sizeof(item)) {
			if (flags & 4) {
				log_error("%s: unknown required VHDX metadata item", img->path);
				return -ENOTSUP;
			}
			continue;
		}
		if (vx_pread(img, item, len, x->meta_off + off, true))
			return -EIO;
		if (!memcmp(e, GUID_FILE_PARAMS, 16) && len >= 8) {
			x->block_size = ld_le32(item);
			x->leave_allocated = ld_le32(item + 4) & 1;
			x->has_parent = ld_le32(item + 4) & 2;
			have_params = true;
		} else if (!memcmp(e, GUID_DISK_SIZE, 16) && len >= 8) {
			size = ld_le64(item);
			x->size_item_off = x->meta_off + off;
			have_size = true;
		} else if (!memcmp(e, GUID_LOGICAL_SECTOR, 16) && len >= 4) {
			x->logical_sector = ld_le32(item);
			have_lss = true;
		} else if (!memcmp(e, GUID_PHYSICAL_SECTOR, 16) && len >= 4) {
			x->physical_sector = ld_le32(item);
		} else if (!memcmp(e, GUID_DISK_ID, 16) && len >= 16) {
			memcpy(x->disk_id, item, 16);
		} else if (flags & 4) {
			log_error("%s: unknown required VHDX metadata item", img->path);
			return -ENOTSUP;
		}
	}
	if (!have_params || !have_size || !have_lss) {
		log_error("%s: VHDX metadata lacks required items", img->path);
		return -EINVAL;
	}
	if (x->block_size < 1 * MiB || x->block_size > 256 * MiB || !is_pow2(x->block_size) ||
	    (x->logical_sector != 512 && x->logical_sector != 4096) || size % x->logical_sector ||
	    size > VHDX_MAX_SIZE || size == 0) {
		log_error("%s: bad VHDX parameters (block %u, sector %u, size %" PRIu64 ")", img->path,
			  x->block_size, x->logical_sector, size);
		return -EINVAL;
	}
	img->size = size;
	return 0;
}

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" to the 16 bytes of a GUID as stored on disk. */
static bool parse_guid(const char *s, uint8_t *g)
{
	unsigned a, b, c, d[8];
	int end = 0;

	if (sscanf(s, "{%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x}%n", &a, &b, &c, &d[0], &d[1], &d[2],
		   &d[3], &d[4], &d[5], &d[6], &d[7], &end) != 11 || end != 38 || s[end])
		return false;
	st_le32(g, a);
	st_le16(g + 4, (uint16_t)b);
	st_le16(g + 6, (uint16_t)c);
	for (int i = 0; i < 8; i++)
		g[8 + i] = (uint8_t)d[i];
	return true;
}

/*
 * Parent locator key/value pairs: relative_path first, then absolute_win32_path;
 * parent_linkage is the parent's data write GUID when the child was made (core.c
 * compares it with the parent's).
 */
static int parse_locator(struct pimg *img, const uint8_t *loc, uint32_t len)
{
	char rel[1024] = "", abs_path[1024] = "";
	uint16_t n;

	if (len < 20 || memcmp(loc, GUID_LOCATOR_TYPE_VHDX, 16)) {
		log_error("%s: unknown VHDX parent locator", img->path);
		return -EINVAL;
	}
	n = ld_le16(loc + 18);
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *kv = loc + 20 + (uint64_t)i * 12;
		uint32_t ko, vo;
		uint16_t kl, vl;
		char key[64] = "", val[1024] = "";

		if (20 + (uint64_t)(i + 1) * 12 > len)
			return -EINVAL;
		ko = ld_le32(kv);
		vo = ld_le32(kv + 4);
		kl = ld_le16(kv + 8);
		vl = ld_le16(kv + 10);
		if (!range_within(ko, kl, len) || !range_within(vo, vl, len))
			return -EINVAL;
		for (uint16_t c = 0; c + 1 < kl && c / 2 < sizeof(key) - 1; c += 2)
			key[c / 2] = (char)(ld_le16(loc + ko + c) < 128 ? ld_le16(loc + ko + c) : '?');
		for (uint16_t c = 0; c + 1 < vl && c / 2 < sizeof(val) - 1; c += 2) {
			uint16_t ch = ld_le16(loc + vo + c);

			val[c / 2] = (char)(ch == '\\' ? '/' : ch < 128 ? ch : '?');
		}
		if (!strcmp(key, "relative_path"))
			snprintf(rel, sizeof(rel), "%s", !strncmp(val, "./", 2) ? val + 2 : val);
		else if (!strcmp(key, "absolute_win32_path"))
			snprintf(abs_path, sizeof(abs_path), "%s", val);
		else if (!strcmp(key, "parent_linkage") && parse_guid(val, img->parent_id))
			img->parent_id_len = 16;
	}
	if (!img->parent_id_len) {
		log_error("%s: VHDX parent locator without a parent_linkage GUID", img->path);
		return -EINVAL;
	}
	if (rel[0]) {
		if (!pimg_external_find(img, rel, NULL) || !abs_path[0] || !pimg_external_allowed(img)) {
			img->backing_name = strdup(rel);
			goto done;
		}
	}
	if (!abs_path[0]) {
		log_error("%s: VHDX parent locator names no parent", img->path);
		return -EINVAL;
	}
	img->backing_name = strdup(abs_path);
done:
	img->backing_fmt = strdup("vhdx");
	return img->backing_name && img->backing_fmt ? 0 : -ENOMEM;
}

static int vhdx_open(struct pimg *img)
{
	bool writable = !(img->flags & PIMG_O_RDONLY);
	uint8_t h1[VHDX_HDR_SIZE], h2[VHDX_HDR_SIZE], id[8];
	uint8_t *locator = NULL;
	uint32_t locator_len = 0;
	uint64_t max_seq = 0, flushed_end = 0, nsec;
	bool v1, v2;
	struct vhdx *x;
	static const uint8_t null_guid[16];
	int ret = -EINVAL;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	img->priv = x;
	x->sbm_index = UINT64_MAX;
	if (pfile_pread(img->file, id, 8, 0, true) || memcmp(id, "vhdxfile", 8)) {
		log_error("%s: not a VHDX file", img->path);
		goto out;
	}
	v1 = !pfile_pread(img->file, h1, sizeof(h1), VHDX_HEADER1, true) && header_valid(h1);
	v2 = !pfile_pread(img->file, h2, sizeof(h2), VHDX_HEADER2, true) && header_valid(h2);
	if (!v1 && !v2) {
		log_error("%s: no valid VHDX header (bad signature or checksum)", img->path);
		goto out;
	}
	if (v1 && (!v2 || ld_le64(h1 + 8) >= ld_le64(h2 + 8))) {
		memcpy(x->hdr, h1, sizeof(h1));
		x->hdr_slot = VHDX_HEADER1;
	} else {
		memcpy(x->hdr, h2, sizeof(h2));
		x->hdr_slot = VHDX_HEADER2;
	}
	x->seq = ld_le64(x->hdr + 8);
	memcpy(img->id, x->hdr + 32, 16); /* data write GUID: a child's parent_linkage */
	img->id_len = 16;
	if (ld_le16(x->hdr + 66) != 1 || ld_le16(x->hdr + 64) != 0) {
		log_error("%s: unsupported VHDX version %u (log version %u)", img->path, ld_le16(x->hdr + 66),
			  ld_le16(x->hdr + 64));
		ret = -ENOTSUP;
		goto out;
	}
	x->log_len = ld_le32(x->hdr + 68);
	x->log_off = ld_le64(x->hdr + 72);
	if (x->log_len % MiB || x->log_off % MiB || x->log_len < 1 * MiB || x->log_len > VHDX_MAX_LOG ||
	    x->log_off < 1 * MiB || !range_within(x->log_off, x->log_len, img->file->size)) {
		log_error("%s: bad VHDX log position or length", img->path);
		goto out;
	}
	/* Replay a pending log before trusting anything it may have changed. */
	if (memcmp(x->hdr + 48, null_guid, 16)) {
		ret = log_load(img, &max_seq, &flushed_end);
		if (ret)
			goto out;
		if (x->n_ov && flushed_end > img->file->size) {
			/* The log was written when the file was at least this long: data is gone. */
			log_error("%s: the VHDX log says the file had %" PRIu64 " bytes; it has %" PRIu64
				  " (truncated?): refusing to replay it", img->path, flushed_end,
				  img->file->size);
			ret = -EINVAL;
			goto out;
		}
		if (x->n_ov && writable) {
			ret = log_replay_to_file(img);
			if (ret) {
				log_error("%s: VHDX log replay failed: %s", img->path, strerror(-ret));
				goto out;
			}
		} else if (!x->n_ov && writable) {
			ret = header_update(img, null_guid, false);
			if (ret)
				goto out;
		}
		ret = -EINVAL;
	}
	if (read_regions(img) || read_metadata(img, &locator, &locator_len))
		goto out;
	x->chunk_ratio = ((1ULL << 23) * x->logical_sector) / x->block_size;
	x->payload_blocks = (img->size + x->block_size - 1) / x->block_size;
	if (x->has_parent) {
		uint64_t sb = (x->payload_blocks + x->chunk_ratio - 1) / x->chunk_ratio;

		x->bat_entries = sb * (x->chunk_ratio + 1);
		if (!locator) {
			log_error("%s: differencing VHDX without parent locator", img->path);
			goto out;
		}
		ret = parse_locator(img, locator, locator_len);
		if (ret)
			goto out;
		ret = -EINVAL;
	} else {
		x->bat_entries = x->payload_blocks + (x->payload_blocks - 1) / x->chunk_ratio;
	}
	if (x->bat_entries * 8 > x->bat_len) {
		log_error("%s: VHDX BAT region too small for the disk size", img->path);
		goto out;
	}
	x->bat = malloc(x->bat_entries * 8);
	nsec = (x->bat_entries * 8 + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
	x->bat_dirty = calloc(nsec, 1);
	if (!x->bat || !x->bat_dirty) {
		ret = -ENOMEM;
		goto out;
	}
	if (vx_pread(img, x->bat, x->bat_entries * 8, x->bat_off, true))
		goto out;
	for (uint64_t i = 0; i < x->bat_entries; i++)
		x->bat[i] = le64toh(x->bat[i]);
	x->alloc_end = align_up(img->file->size, MiB);
	x->log_seq = max_seq + 1;
	free(locator);
	img->granule = x->block_size;
	/* Log entries laid over reads (x->ov) change the caller's buffer after the read. */
	img->batched = !x->n_ov;
	return 0;
out:
	free(locator);
	vhdx_close(img);
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

static void put_meta_entry(uint8_t *tab, int i, const uint8_t *guid, uint32_t off, uint32_t len, uint32_t flags)
{
	uint8_t *e = tab + 32 + i * 32;

	memcpy(e, guid, 16);
	st_le32(e + 16, off);
	st_le32(e + 20, len);
	st_le32(e + 24, flags);
}

static size_t put_utf16(uint8_t *p, const char *s, bool backslash)
{
	size_t n = 0;

	for (; *s; s++, n += 2)
		st_le16(p + n, (uint16_t)(backslash && *s == '/' ? '\\' : (uint8_t)*s));
	return n;
}

static int vhdx_create(const char *path, const struct pimg_create_opts *o)
{
	bool fixed = false;
	uint64_t size = o->size, block = o->block_size, chunk, blocks, bat_entries, bat_len, meta_off,
		 data_off, end;
	uint8_t *buf, parent_guid[16] = { 0 };
	struct pimg_file *f;
	int ret, nmeta = 5;

	if (o->subformat && !strcmp(o->subformat, "fixed"))
		fixed = true;
	else if (o->subformat && strcmp(o->subformat, "dynamic")) {
		log_error("VHDX subformat must be dynamic or fixed");
		return -EINVAL;
	}
	if (!block)
		block = size > 32 * 1024 * GiB ? 64 * MiB : size > 100 * GiB ? 32 * MiB
			: size > 1 * GiB ? 16 * MiB : 8 * MiB;
	if (block < 1 * MiB || block > 256 * MiB || !is_pow2(block)) {
		log_error("VHDX block_size must be a power of two from 1M to 256M");
		return -EINVAL;
	}
	if (!size || size > VHDX_MAX_SIZE) {
		log_error("VHDX size must be from 512 bytes to 64 TiB");
		return -EINVAL;
	}
	if (o->backing_file) {
		struct pimg *p;
		char *pp;

		if (fixed) {
			log_error("a fixed VHDX cannot have a parent");
			return -EINVAL;
		}
		pp = pimg_path_relative_to(path, o->backing_file);
		p = pp ? pimg_open(pp, "vhdx", PIMG_O_RDONLY | PIMG_O_NO_BACKING) : NULL;
		free(pp);
		if (!p) {
			log_error("the parent of a differencing VHDX must be a VHDX");
			return -EINVAL;
		}
		memcpy(parent_guid, ((struct vhdx *)p->priv)->hdr + 32, 16);
		pimg_close(p);
		nmeta = 6;
	}
	chunk = ((1ULL << 23) * 512) / block;
	blocks = (size + block - 1) / block;
	bat_entries = o->backing_file ? ((blocks + chunk - 1) / chunk) * (chunk + 1)
				      : blocks + (blocks - 1) / chunk;
	bat_len = align_up(bat_entries * 8, MiB);
	meta_off = 2 * MiB + bat_len;
	data_off = meta_off + 1 * MiB;
	buf = calloc(1, 1 * MiB);
	if (!buf)
		return -ENOMEM;
	f = pfile_open(path, false, true);
	if (!f) {
		free(buf);
		return -EIO;
	}
	/* file identifier */
	memcpy(buf, "vhdxfile", 8);
	put_utf16(buf + 8, "plinth-img", false);
	ret = pfile_pwrite(f, buf, 64 * KiB, 0);
	/* headers: both valid, the second current */
	for (int i = 0; i < 2 && !ret; i++) {
		uint8_t h[VHDX_HDR_SIZE] = { 0 };

		memcpy(h, "head", 4);
		st_le64(h + 8, (uint64_t)i + 1);
		pimg_random(h + 16, 32);
		st_le16(h + 64, 0);
		st_le16(h + 66, 1);
		st_le32(h + 68, 1 * MiB);
		st_le64(h + 72, 1 * MiB);
		header_seal(h);
		ret = pfile_pwrite(f, h, sizeof(h), i ? VHDX_HEADER2 : VHDX_HEADER1);
	}
	/* region tables */
	if (!ret) {
		memset(buf, 0, VHDX_RT_SIZE);
		memcpy(buf, "regi", 4);
		st_le32(buf + 8, 2);
		memcpy(buf + 16, GUID_BAT, 16);
		st_le64(buf + 32, 2 * MiB);
		st_le32(buf + 40, (uint32_t)bat_len);
		st_le32(buf + 44, 1);
		memcpy(buf + 48, GUID_META, 16);
		st_le64(buf + 64, meta_off);
		st_le32(buf + 72, 1 * MiB);
		st_le32(buf + 76, 1);
		st_le32(buf + 4, pimg_crc32c(0, buf, VHDX_RT_SIZE));
		ret = pfile_pwrite(f, buf, VHDX_RT_SIZE, VHDX_RT1);
		if (!ret)
			ret = pfile_pwrite(f, buf, VHDX_RT_SIZE, VHDX_RT1 + VHDX_RT_SIZE);
	}
	/* metadata */
	if (!ret) {
		uint8_t *item = buf + 64 * KiB;

		memset(buf, 0, 1 * MiB);
		memcpy(buf, "metadata", 8);
		st_le16(buf + 10, (uint16_t)nmeta);
		put_meta_entry(buf, 0, GUID_FILE_PARAMS, 64 * KiB, 8, 4);
		st_le32(item, (uint32_t)block);
		st_le32(item + 4, (fixed ? 1 : 0) | (o->backing_file ? 2 : 0));
		put_meta_entry(buf, 1, GUID_DISK_SIZE, 64 * KiB + 8, 8, 6);
		st_le64(item + 8, size);
		put_meta_entry(buf, 2, GUID_DISK_ID, 64 * KiB + 16, 16, 6);
		pimg_random(item + 16, 16);
		put_meta_entry(buf, 3, GUID_LOGICAL_SECTOR, 64 * KiB + 32, 4, 6);
		st_le32(item + 32, 512);
		put_meta_entry(buf, 4, GUID_PHYSICAL_SECTOR, 64 * KiB + 36, 4, 6);
		st_le32(item + 36, 4096);
		if (o->backing_file) {
			/* Locator: linkage GUID string, relative and absolute paths (UTF-16LE). */
			uint8_t *loc = item + 64;
			const char *keys[3] = { "parent_linkage", "relative_path", "absolute_win32_path" };
			char vals[3][1100];
			uint32_t p = 20 + 3 * 12;
			const uint8_t *g = parent_guid;

			if (strlen(o->backing_file) > 1000) {
				ret = -ENAMETOOLONG;
				goto out;
			}
			snprintf(vals[0], sizeof(vals[0]),
				 "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}", ld_le32(g), ld_le16(g + 4),
				 ld_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
			snprintf(vals[1], sizeof(vals[1]), "%s%s", o->backing_file[0] == '/' ? "" : "./",
				 o->backing_file);
			snprintf(vals[2], sizeof(vals[2]), "%s", o->backing_file);
			memcpy(loc, GUID_LOCATOR_TYPE_VHDX, 16);
			st_le16(loc + 18, 3);
			for (int i = 0; i < 3; i++) {
				uint8_t *kv = loc + 20 + i * 12;
				size_t kl = put_utf16(loc + p, keys[i], false);

				st_le32(kv, p);
				st_le16(kv + 8, (uint16_t)kl);
				p += (uint32_t)kl;
				kl = put_utf16(loc + p, vals[i], i == 1);
				st_le32(kv + 4, p);
				st_le16(kv + 10, (uint16_t)kl);
				p += (uint32_t)kl;
			}
			put_meta_entry(buf, 5, GUID_PARENT_LOCATOR, 64 * KiB + 64, p, 6);
		}
		ret = pfile_pwrite(f, buf, 1 * MiB, meta_off);
	}
	/* BAT: dynamic blocks not present; fixed blocks all present, in order */
	end = data_off;
	if (!ret && fixed) {
		uint64_t *bat = calloc(bat_len / 8, 8);

		if (!bat) {
			ret = -ENOMEM;
			goto out;
		}
		for (uint64_t b = 0; b < blocks; b++) {
			bat[b + b / chunk] = htole64(((end / MiB) << 20) | PAYLOAD_FULLY_PRESENT);
			end += block;
		}
		ret = pfile_pwrite(f, bat, bat_len, 2 * MiB);
		free(bat);
	}
	if (!ret)
		ret = pfile_truncate(f, fixed ? end : data_off);
	if (!ret)
		ret = pfile_sync(f);
out:
	if (ret)
		log_error("%s: %s", path, strerror(-ret));
	pfile_close(f);
	free(buf);
	return ret;
}

/* Grow within the BAT region: the size item changes through the log. */
static int vhdx_resize(struct pimg *img, uint64_t size)
{
	struct vhdx *x = img->priv;
	uint64_t blocks = (size + x->block_size - 1) / x->block_size, entries, nsec, sector;
	uint8_t *sec, *dirty;
	uint64_t *bat;
	int ret;

	if (size < img->size) {
		log_error("%s: shrinking VHDX images is not supported", img->path);
		return -ENOTSUP;
	}
	if (size % x->logical_sector || size > VHDX_MAX_SIZE)
		return -EINVAL;
	entries = x->has_parent ? (blocks + x->chunk_ratio - 1) / x->chunk_ratio * (x->chunk_ratio + 1)
				: blocks + (blocks - 1) / x->chunk_ratio;
	if (entries * 8 > x->bat_len) {
		log_error("%s: the VHDX BAT region has room for %" PRIu64 " blocks only", img->path,
			  x->bat_len / 8 * x->chunk_ratio / (x->chunk_ratio + 1));
		return -ENOTSUP;
	}
	ret = vhdx_flush(img);
	if (ret)
		return ret;
	nsec = (entries * 8 + VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
	bat = realloc(x->bat, entries * 8);
	if (!bat)
		return -ENOMEM;
	x->bat = bat;
	dirty = calloc(nsec, 1);
	if (!dirty)
		return -ENOMEM;
	free(x->bat_dirty);
	x->bat_dirty = dirty;
	ret = vx_pread(img, bat + x->bat_entries, (entries - x->bat_entries) * 8,
		       x->bat_off + x->bat_entries * 8, true);
	if (ret)
		return ret;
	for (uint64_t i = x->bat_entries; i < entries; i++)
		bat[i] = le64toh(bat[i]);
	sec = malloc(VHDX_LOG_SECTOR);
	if (!sec)
		return -ENOMEM;
	sector = x->size_item_off & ~(uint64_t)(VHDX_LOG_SECTOR - 1);
	ret = vx_pread(img, sec, VHDX_LOG_SECTOR, sector, true);
	if (!ret) {
		st_le64(sec + (x->size_item_off - sector), size);
		ret = log_update(img, &sector, &sec, 1);
	}
	free(sec);
	if (ret)
		return ret;
	x->bat_entries = entries;
	x->payload_blocks = blocks;
	img->size = size;
	return 0;
}

static int vhdx_info(struct pimg *img, struct pimg_info *info)
{
	struct vhdx *x = img->priv;

	info->cluster_size = x->block_size;
	pimg_info_add_num(info, "logical-sector-size", x->logical_sector);
	pimg_info_add_num(info, "physical-sector-size", x->physical_sector);
	pimg_info_add_bool(info, "leave-blocks-allocated", x->leave_allocated);
	pimg_info_add_bool(info, "has-parent", x->has_parent);
	pimg_info_add_num(info, "log-size", (int64_t)x->log_len);
	pimg_info_add_bool(info, "log-replayed-in-memory", x->n_ov != 0);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every present block inside the payload area, none overlapping another. */
static int vhdx_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct vhdx *x = img->priv;
	uint64_t *offs = malloc(MAX(x->payload_blocks, 1) * 8), n = 0;

	if (!offs)
		return -ENOMEM;
	res->total_clusters = x->payload_blocks;
	res->image_end_offset = img->file->size;
	for (uint64_t b = 0; b < x->payload_blocks; b++) {
		uint64_t e = x->bat[bat_index(x, b)], st = e & 7, host = (e >> 20) * MiB;

		if (st == 4 || st == 5) {
			check_log(res, "%s: ERROR block %" PRIu64 ": invalid state %" PRIu64, img->path, b, st);
			res->corruptions++;
			continue;
		}
		if (st != PAYLOAD_FULLY_PRESENT && st != PAYLOAD_PARTIALLY_PRESENT)
			continue;
		res->allocated_clusters++;
		if (overlaps_meta(x, host, x->block_size) || host >= img->file->size) {
			check_log(res, "%s: ERROR block %" PRIu64 " at %#" PRIx64 " outside the payload area", img->path, b, host);
			res->corruptions++;
			continue;
		}
		offs[n++] = host;
	}
	qsort(offs, n, 8, cmp_u64);
	for (uint64_t i = 1; i < n; i++) {
		if (offs[i] - offs[i - 1] < x->block_size) {
			check_log(res, "%s: ERROR blocks at %#" PRIx64 " and %#" PRIx64 " overlap", img->path, offs[i - 1], offs[i]);
			res->corruptions++;
		}
	}
	free(offs);
	return 0;
}

const struct pimg_format pimg_fmt_vhdx = {
	.name = "vhdx",
	.create_keys = vhdx_create_keys,
	.probe = vhdx_probe,
	.open = vhdx_open,
	.close = vhdx_close,
	.create = vhdx_create,
	.block_status = vhdx_block_status,
	.read = vhdx_read,
	.write = vhdx_write,
	.write_zeroes = vhdx_write_zeroes,
	.flush = vhdx_flush,
	.info = vhdx_info,
	.check = vhdx_check,
	.resize = vhdx_resize,
};
