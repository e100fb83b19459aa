// SPDX-License-Identifier: MIT
/*
 * qcow2: the internal snapshot table, parsed once at open.
 *
 * Limits are QEMU's (block/qcow2.h), which are the format's in practice: at most
 * 65536 snapshots, a table of at most 64 MiB, at most 1 KiB of extra data per
 * entry. IDs and names may be up to 65535 bytes (the u16 length fields). The
 * snapshots' L1 tables are not checked here: a bad one must not stop the active
 * image from being read; check reports it.
 */
#include "qcow2.h"

#define SNAP_HDR 40

void qcow2_free_snapshots(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->nb_snapshots && q->snaps; i++) {
		free(q->snaps[i].id);
		free(q->snaps[i].name);
	}
	free(q->snaps);
	q->snaps = NULL;
}

/* Read a length-prefixed string of the table at off into a new NUL-terminated copy. */
static int read_str(struct pimg *img, uint64_t off, uint16_t len, char **out)
{
	char *s = malloc((size_t)len + 1);

	if (!s)
		return -ENOMEM;
	if (pfile_pread(img->file, s, len, off, true)) {
		free(s);
		return -EINVAL;
	}
	s[len] = 0;
	*out = s;
	return 0;
}

int qcow2_read_snapshots(struct pimg *img)
{
	struct qcow2 *q = img->priv;
	uint64_t off = q->snapshots_offset, entry = off;
	const char *why = NULL;
	uint32_t i;
	int ret;

	q->snapshots_size = 0;
	if (!q->nb_snapshots)
		return 0;
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		log_error("%s: %u internal snapshots (at most %u)", img->path, q->nb_snapshots,
			  QCOW2_MAX_SNAPSHOTS);
		return -EINVAL;
	}
	if ((off & (q->cluster_size - 1)) || off < q->cluster_size) {
		log_error("%s: snapshot table offset %#" PRIx64 " is not a cluster of its own", img->path, off);
		return -EINVAL;
	}
	q->snaps = calloc(q->nb_snapshots, sizeof(*q->snaps));
	if (!q->snaps)
		return -ENOMEM;
	for (i = 0; i < q->nb_snapshots; i++, entry = off) {
		struct qcow2_snapshot *s = &q->snaps[i];
		uint8_t h[SNAP_HDR], ex[24] = { 0 };
		uint32_t extra;
		uint16_t id_len, name_len;

		if (pfile_pread(img->file, h, sizeof(h), off, true)) {
			why = "ends beyond the end of the file";
			goto bad;
		}
		s->l1_offset = ld_be64(h);
		s->l1_size = ld_be32(h + 8);
		id_len = ld_be16(h + 12);
		name_len = ld_be16(h + 14);
		s->date_sec = ld_be32(h + 16);
		s->date_nsec = ld_be32(h + 20);
		s->vm_clock_nsec = ld_be64(h + 24);
		s->vm_state_size = ld_be32(h + 32);
		extra = ld_be32(h + 36);
		if (extra > QCOW2_MAX_SNAPSHOT_EXTRA) {
			why = "has more than 1 KiB of extra data";
			goto bad;
		}
		if (pfile_pread(img->file, ex, MIN(extra, sizeof(ex)), off + SNAP_HDR, true)) {
			why = "ends beyond the end of the file";
			goto bad;
		}
		if (extra >= 8)
			s->vm_state_size = ld_be64(ex);
		s->disk_size = extra >= 16 ? ld_be64(ex + 8) : UINT64_MAX;
		s->icount = extra >= 24 ? ld_be64(ex + 16) : UINT64_MAX;
		off += SNAP_HDR + extra;
		ret = read_str(img, off, id_len, &s->id);
		if (!ret)
			ret = read_str(img, off + id_len, name_len, &s->name);
		if (ret == -ENOMEM)
			goto out_free;
		if (ret) {
			why = "ends beyond the end of the file";
			goto bad;
		}
		off = align_up(off + id_len + name_len, 8);
		if (off - q->snapshots_offset > QCOW2_MAX_SNAPSHOTS_SIZE) {
			why = "makes the table larger than 64 MiB";
			goto bad;
		}
	}
	q->snapshots_size = off - q->snapshots_offset;
	return 0;
bad:
	log_error("%s: snapshot table entry %u at %#" PRIx64 " %s", img->path, i, entry, why);
	ret = -EINVAL;
out_free:
	qcow2_free_snapshots(q);
	return ret;
}

int qcow2_snapshot_info(struct pimg *img, struct pimg_info *info)
{
	struct qcow2 *q = img->priv;

	if (!q->nb_snapshots)
		return 0;
	info->snapshots = calloc(q->nb_snapshots, sizeof(*info->snapshots));
	if (!info->snapshots)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		const struct qcow2_snapshot *s = &q->snaps[i];
		struct pimg_snapshot_info *o = &info->snapshots[i];

		snprintf(o->id, sizeof(o->id), "%s", s->id);
		snprintf(o->name, sizeof(o->name), "%s", s->name);
		o->date_sec = s->date_sec;
		o->date_nsec = s->date_nsec;
		o->vm_clock_nsec = s->vm_clock_nsec;
		o->vm_state_size = s->vm_state_size;
		o->icount = s->icount;
	}
	info->n_snapshots = q->nb_snapshots;
	return 0;
}
