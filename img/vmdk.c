// SPDX-License-Identifier: MIT
/*
 * VMDK (VMware Virtual Disk Format 1.1): a text descriptor naming extents.
 *
 *   descriptor  "# Disk DescriptorFile" ... extent lines:
 *               RW <sectors> SPARSE|FLAT|ZERO "<file>" [<offset>]
 *               embedded in a sparse file (monolithicSparse, streamOptimized)
 *               or a file of its own (monolithicFlat, twoGbMaxExtent*).
 *   sparse      "KDMV" header (little-endian), grain directory (GD) -> grain
 *               tables (GT, numGTEsPerGT u32 each) -> grain sector offsets.
 *               GTE 0 = unallocated, 1 = zero grain (with the zero-grain flag).
 *   stream      compressed grains: {u64 lba, u32 size, zlib stream}, and
 *               metadata markers {u64 sectors, u32 0, u32 type} before the GT,
 *               GD and footer; the GD may be "at the end" (gdOffset = -1): the
 *               footer, a header copy, sits before the end-of-stream marker.
 *
 * Extent paths are hostile: a descriptor file's extents are opened only under the
 * caller's external-file policy (core.c: pimg_open_external); an embedded
 * descriptor's extent is always the file itself.
 *
 * Writes: monolithicSparse and monolithicFlat read-write; streamOptimized is
 * write-once and sequential (the VMware layout: grains, then each GT after its
 * grains, the GD, the footer and the end-of-stream marker, written on flush).
 *
 * Metadata update order (sparse): the grain is written at the end of the file,
 * then on flush: fdatasync; write dirty GTs (primary and redundant); write the
 * GDs if a GT was added; fdatasync. A crash leaves unreferenced grains only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

#include "img-internal.h"

#define VMDK_MAGIC 0x564d444bu /* "KDMV" little-endian */
#define VMDK_COWD_MAGIC 0x44574f43u /* "COWD" little-endian: ESX sparse */
#define VMDK_COWD_GTES 4096
#define VMDK_COWD_HEADER 2048
#define SES_MAGIC 0xcafebabeULL
#define SES_VOLATILE_MAGIC 0xcafecafeULL
#define SES_VERSION 0x200000001ULL
#define SES_GRAIN_SECTORS 8
#define SES_GT_SECTORS 64
#define SES_GTES (SES_GT_SECTORS * SECTOR_SIZE / 8)
#define VMDK_FLAG_NL_TEST (1u << 0)
#define VMDK_FLAG_RGD (1u << 1)
#define VMDK_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)
#define VMDK_GD_AT_END 0xffffffffffffffffULL
#define VMDK_MAX_EXTENTS 1024
#define VMDK_MAX_DESC (1 * MiB)
#define VMDK_GT_CACHE 64
#define MARKER_EOS 0
#define MARKER_GT 1
#define MARKER_GD 2
#define MARKER_FOOTER 3

enum ext_type { EXT_FLAT, EXT_SPARSE, EXT_ZERO, EXT_SESPARSE };

struct gt_entry {
	uint64_t off; /* host byte offset of the GT, 0 = free */
	uint32_t *t;  /* host endian */
	bool dirty;
	uint64_t stamp;
};

struct sparse {
	uint8_t header[512];
	uint32_t flags;
	uint64_t grain;        /* bytes */
	uint32_t gtes;         /* entries per GT */
	uint64_t gd_off, rgd_off; /* bytes, 0 = none */
	uint32_t gd_entries;
	uint32_t *gd, *rgd;    /* host endian, sectors */
	bool gd_dirty;
	uint64_t alloc_end;    /* next free byte (sector aligned) */
	uint64_t data_start;   /* grains start here (the header's overHead): metadata before */
	struct gt_entry cache[VMDK_GT_CACHE];
	uint64_t tick;
	uint8_t *cbuf;         /* compressed grain buffer */
	uint8_t *gbuf;         /* one grain */
	uint64_t dec_off;      /* host offset of the grain held decompressed in gbuf, 0 = none */
	/* streamOptimized writer */
	bool stream_writer, stream_done;
	int64_t last_grain;    /* last grain written, -1 = none */
	uint32_t cur_gt;       /* GT index being filled, UINT32_MAX = none */
	uint32_t *gt_buf;      /* its entries */
};

/* A seSparse extent (ESXi 6.5+ snapshot deltas on VMFS 6), read only. */
struct sesparse {
	uint64_t *gd;          /* host endian, gd_entries */
	uint64_t gd_entries;
	uint64_t gt_off;       /* the grain tables, bytes */
	uint64_t grains_off;   /* the grains, bytes */
	uint64_t *gt;          /* one grain table, host endian */
	uint64_t gt_cached;    /* its index, UINT64_MAX = none */
};

struct extent {
	enum ext_type type;
	uint64_t start, sectors; /* virtual position and length, sectors */
	uint64_t offset;         /* FLAT: start in the file, bytes */
	struct pimg_file *file;
	bool own_file;           /* opened here (else img->file) */
	struct sparse *sp;
	struct sesparse *se;
};

struct vmdk {
	struct extent ext[VMDK_MAX_EXTENTS];
	unsigned n_ext;
	char create_type[64];
	uint32_t cid, parent_cid;
	int desc_version;          /* the descriptor's version= (1..3), 0 if none */
	/* The Disk Data Base keys exporters set (VMware, ESXi, VirtualBox, ovftool), for info. */
	char adapter_type[32], hw_version[16], tools_version[16], uuid[64], long_content_id[40],
		encoding[32];
	int thin;                  /* ddb.thinProvisioned: 1, 0, or -1 if absent */
};

static const char *const vmdk_create_keys[] = {
	"size", "subformat", "backing_file", "backing_fmt", "adapter_type", NULL,
};

static int vmdk_probe(const uint8_t *head, size_t len, const uint8_t *tail, uint64_t size)
{
	static const char d[] = "# Disk DescriptorFile";

	if (len >= 4 && (ld_le32(head) == VMDK_MAGIC || ld_le32(head) == VMDK_COWD_MAGIC))
		return 100;
	if (len >= 16 && ld_le64(head) == SES_MAGIC && ld_le64(head + 8) == SES_VERSION)
		return 100;
	if (len >= sizeof(d) - 1 && !memcmp(head, d, sizeof(d) - 1))
		return 100;
	return 0;
}

/* ---- descriptor ------------------------------------------------------------ */

static char *unquote_value(char *v)
{
	size_t l;

	while (*v == ' ' || *v == '\t')
		v++;
	l = strlen(v);
	while (l && (v[l - 1] == ' ' || v[l - 1] == '\t' || v[l - 1] == '\r'))
		v[--l] = 0;
	if (l >= 2 && v[0] == '"' && v[l - 1] == '"') {
		v[l - 1] = 0;
		v++;
	}
	return v;
}

static int sparse_open(struct pimg *img, struct extent *e);
static int sesparse_open(struct pimg *img, struct extent *e);

/*
 * The file of extent e (not yet counted in v->n_ext), named `name` by a
 * descriptor file: an external file, looked up and opened under the chain's
 * policy (core.c). A file that is already open (the descriptor's own, or one an
 * earlier extent uses at another offset) is shared, not opened twice: a second
 * writable open would fail on our own lock.
 */
static int extent_open_file(struct pimg *img, struct extent *e, const char *name, bool rdonly,
			    struct pimg_file *self)
{
	struct vmdk *v = img->priv;
	struct stat st, o;

	/* Looked up under the chain's external-file policy (core.c), without opening it. */
	if (!pimg_external_find(img, name, &st)) {
		if (!fstat(self->fd, &o) && st.st_dev == o.st_dev && st.st_ino == o.st_ino)
			e->file = self;
		for (unsigned i = 0; !e->file && i < v->n_ext; i++) {
			struct pimg_file *f = v->ext[i].file;

			if (f && !fstat(f->fd, &o) && st.st_dev == o.st_dev && st.st_ino == o.st_ino)
				e->file = f;
		}
	}
	if (!e->file) {
		/* opened under the policy, or refused with one line saying why */
		e->file = pimg_open_external(img, name, rdonly, "VMDK extent");
		e->own_file = e->file != NULL;
	}
	return e->file ? 0 : -EPERM;
}

/* Copy a descriptor value that info prints: no control bytes. */
static void copy_value(char *dst, size_t len, const char *val)
{
	snprintf(dst, len, "%s", val);
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 32 || *c == 127)
			*c = '?';
}

/* Keys of the descriptor's header and Disk Data Base that are kept; others are ignored. */
static void descriptor_key(struct pimg *img, const char *key, const char *val, const char **hint)
{
	struct vmdk *v = img->priv;

	if (!strcmp(key, "createType"))
		copy_value(v->create_type, sizeof(v->create_type), val);
	else if (!strcmp(key, "ddb.adapterType"))
		copy_value(v->adapter_type, sizeof(v->adapter_type), val);
	else if (!strcmp(key, "ddb.virtualHWVersion"))
		copy_value(v->hw_version, sizeof(v->hw_version), val);
	else if (!strcmp(key, "ddb.toolsVersion"))
		copy_value(v->tools_version, sizeof(v->tools_version), val);
	else if (!strcmp(key, "ddb.uuid") || (!strcmp(key, "ddb.uuid.image") && !v->uuid[0]))
		copy_value(v->uuid, sizeof(v->uuid), val); /* VMware's, else VirtualBox's */
	else if (!strcmp(key, "ddb.longContentID"))
		copy_value(v->long_content_id, sizeof(v->long_content_id), val);
	else if (!strcmp(key, "encoding"))
		copy_value(v->encoding, sizeof(v->encoding), val);
	else if (!strcmp(key, "version"))
		v->desc_version = atoi(val);
	else if (!strcmp(key, "CID"))
		v->cid = (uint32_t)strtoul(val, NULL, 16);
	else if (!strcmp(key, "parentCID"))
		v->parent_cid = (uint32_t)strtoul(val, NULL, 16);
	else if (!strcmp(key, "parentFileNameHint"))
		*hint = val;
	else if (!strcmp(key, "ddb.thinProvisioned"))
		v->thin = atoi(val) != 0;
}

/*
 * Parse the descriptor text (NUL-terminated, modified in place). embedded: it
 * sits in the sparse file `self` (monolithicSparse, streamOptimized), whose
 * one SPARSE extent is that file whatever name the line gives: a renamed file
 * keeps its old name inside, and FreeBSD's mkimg writes an empty one.
 */
static int parse_descriptor(struct pimg *img, char *text, struct pimg_file *self, bool embedded)
{
	struct vmdk *v = img->priv;
	char *save = NULL, *line;
	uint64_t total = 0;
	const char *hint = NULL;
	int ret;

	v->parent_cid = 0xffffffffu;
	v->thin = -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char access[16], type[16], name[1024];
		unsigned long long sectors, offset = 0;
		int n;
		char *eq;

		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#' || *line == '\r')
			continue;
		if (!strncmp(line, "RW ", 3) || !strncmp(line, "RDONLY ", 7) || !strncmp(line, "NOACCESS ", 9)) {
			struct extent *e;
			char *q1, *q2;

			if (v->n_ext == VMDK_MAX_EXTENTS) {
				log_error("%s: too many VMDK extents", img->path);
				return -EINVAL;
			}
			n = sscanf(line, "%15s %llu %15s", access, &sectors, type);
			q1 = strchr(line, '"');
			q2 = q1 ? strchr(q1 + 1, '"') : NULL;
			if (n != 3 || !strcmp(access, "NOACCESS") || (!q1 && strcmp(type, "ZERO")) ||
			    (q1 && !q2) || sectors == 0 || (q1 && (size_t)(q2 - q1 - 1) >= sizeof(name))) {
				log_error("%s: bad VMDK extent line: %.80s", img->path, line);
				return -EINVAL;
			}
			if (q1) {
				memcpy(name, q1 + 1, (size_t)(q2 - q1 - 1));
				name[q2 - q1 - 1] = 0;
				if (q2[1] && sscanf(q2 + 1, "%llu", &offset) != 1)
					offset = 0;
			} else {
				name[0] = 0;
			}
			e = &v->ext[v->n_ext];
			memset(e, 0, sizeof(*e));
			if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS"))
				e->type = EXT_FLAT;
			else if (!strcmp(type, "SPARSE") || !strcmp(type, "VMFSSPARSE"))
				e->type = EXT_SPARSE;
			else if (!strcmp(type, "ZERO"))
				e->type = EXT_ZERO;
			else if (!strcmp(type, "SESPARSE"))
				e->type = EXT_SESPARSE;
			else {
				log_error("%s: unsupported VMDK extent type %s", img->path, type);
				return -ENOTSUP;
			}
			if (add_overflow(total, (uint64_t)sectors, &total) || total > (1ULL << 40)) {
				log_error("%s: VMDK extents too large", img->path);
				return -EINVAL;
			}
			if (offset > (1ULL << 54)) {
				log_error("%s: bad VMDK extent offset", img->path);
				return -EINVAL;
			}
			e->start = total - sectors;
			e->sectors = sectors;
			e->offset = offset * SECTOR_SIZE;
			v->n_ext++;
			if (embedded && (e->type != EXT_SPARSE || v->n_ext > 1)) {
				log_error("%s: the descriptor inside a sparse VMDK may name only the file "
					  "itself, as one SPARSE extent", img->path);
				return -EINVAL;
			}
			if (e->type != EXT_ZERO) {
				bool rdonly = (img->flags & PIMG_O_RDONLY) || !strcmp(access, "RDONLY");

				if (embedded) {
					e->file = self;
				} else {
					ret = extent_open_file(img, e, name, rdonly, self);
					if (ret)
						return ret;
				}
				if (e->type == EXT_FLAT && !range_within(e->offset, sectors * SECTOR_SIZE,
									 e->file->size)) {
					log_error("%s: flat extent '%s' is shorter than declared", img->path, name);
					return -EINVAL;
				}
				if (e->type == EXT_SESPARSE) {
					ret = sesparse_open(img, e);
					if (ret)
						return ret;
				}
				if (e->type == EXT_SPARSE) {
					ret = sparse_open(img, e);
					if (ret)
						return ret;
				}
			}
			continue;
		}
		eq = strchr(line, '=');
		if (!eq)
			continue; /* tolerate garbage lines, as VMware does */
		*eq = 0;
		descriptor_key(img, unquote_value(line), unquote_value(eq + 1), &hint);
	}
	if (!v->n_ext) {
		log_error("%s: VMDK descriptor has no extents", img->path);
		return -EINVAL;
	}
	if (hint && v->parent_cid != 0xffffffffu) {
		img->backing_name = strdup(hint);
		if (!img->backing_name)
			return -ENOMEM;
	}
	img->size = total * SECTOR_SIZE;
	return 0;
}

/* ---- sparse extents ---------------------------------------------------------- */

static int read_u32_table(struct pimg_file *f, uint64_t off, uint32_t n, uint32_t **out)
{
	uint32_t *t = malloc((size_t)MAX(n, 1) * 4);
	int ret;

	if (!t)
		return -ENOMEM;
	ret = pfile_pread(f, t, (size_t)n * 4, off, true);
	if (ret) {
		free(t);
		return ret;
	}
	for (uint32_t i = 0; i < n; i++)
		t[i] = le32toh(t[i]);
	*out = t;
	return 0;
}

/* The grain and GT buffers of a sparse extent whose header is parsed. */
static int sparse_buffers(struct sparse *s)
{
	s->gbuf = malloc(s->grain);
	s->cbuf = malloc(s->grain * 2 + 1024);
	if (!s->gbuf || !s->cbuf)
		return -ENOMEM;
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++) {
		s->cache[i].t = malloc((size_t)s->gtes * 4);
		if (!s->cache[i].t)
			return -ENOMEM;
	}
	return 0;
}

/*
 * An ESX sparse extent ("COWD": vmfsSparse snapshot deltas, GSX 2 disks): 32-bit
 * header fields (capacity 12, grain sectors 16, GD sector 20, GD entries 24),
 * 4096 GTEs per GT, no redundant GD, a 2048-byte header. Read only.
 */
static int cowd_open(struct pimg *img, struct extent *e, struct sparse *s)
{
	const uint8_t *h = s->header;
	uint64_t cap = ld_le32(h + 12), grain_sec = ld_le32(h + 16), gt_cover;
	int ret;

	if (!(img->flags & PIMG_O_RDONLY)) {
		log_error("%s: ESX sparse (COWD) extents are read only here; convert to write", img->path);
		return -EROFS;
	}
	if (ld_le32(h + 4) != 1 || !is_pow2(grain_sec) || grain_sec > 2048 || cap < e->sectors) {
		log_error("%s: bad COWD header (version %u, grain %" PRIu64 " sectors, capacity %" PRIu64 ")",
			  img->path, ld_le32(h + 4), grain_sec, cap);
		return -EINVAL;
	}
	s->flags = 0; /* COWD flags mean nothing here: no zero grains, no compression */
	s->grain = grain_sec * SECTOR_SIZE;
	s->gtes = VMDK_COWD_GTES;
	gt_cover = grain_sec * VMDK_COWD_GTES;
	s->gd_entries = (uint32_t)((e->sectors + gt_cover - 1) / gt_cover);
	s->gd_off = (uint64_t)ld_le32(h + 20) * SECTOR_SIZE;
	s->data_start = VMDK_COWD_HEADER;
	s->alloc_end = align_up(e->file->size, SECTOR_SIZE);
	if (ld_le32(h + 24) < s->gd_entries || s->gd_off < VMDK_COWD_HEADER ||
	    !range_within(s->gd_off, (uint64_t)s->gd_entries * 4, e->file->size)) {
		log_error("%s: COWD grain directory too small or outside the file", img->path);
		return -EINVAL;
	}
	ret = sparse_buffers(s);
	if (!ret)
		ret = read_u32_table(e->file, s->gd_off, s->gd_entries, &s->gd);
	return ret;
}

static int sparse_open(struct pimg *img, struct extent *e)
{
	struct sparse *s;
	uint8_t *h;
	uint64_t cap, grain_sec, gd_sec, rgd_sec, gt_cover;
	struct pimg_file *f = e->file;
	int ret = -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	e->sp = s;
	s->cur_gt = UINT32_MAX;
	s->last_grain = -1;
	h = s->header;
	if (!pfile_pread(f, h, 512, 0, true) && ld_le32(h) == VMDK_COWD_MAGIC)
		return cowd_open(img, e, s);
	if (ld_le32(h) != VMDK_MAGIC) {
		log_error("%s: sparse extent without a VMDK header", img->path);
		return -EINVAL;
	}
	if (ld_le32(h + 4) < 1 || ld_le32(h + 4) > 3) {
		log_error("%s: unsupported VMDK version %u", img->path, ld_le32(h + 4));
		return -ENOTSUP;
	}
	s->flags = ld_le32(h + 8);
	/*
	 * Version 3 of a hosted sparse extent adds changed-block tracking (VMware KB
	 * 2064959), which readers may ignore but a writer would leave stale: such
	 * an extent is read only, as in qemu. (streamOptimized files are version 3
	 * too, and write-once anyway.)
	 */
	if (ld_le32(h + 4) == 3 && !(s->flags & VMDK_FLAG_COMPRESSED) && !(img->flags & PIMG_O_RDONLY)) {
		log_error("%s: VMDK version 3 extent (changed-block tracking) is read only here; "
			  "convert it to write", img->path);
		return -EROFS;
	}
	gd_sec = ld_le64(h + 56);
	if (gd_sec == VMDK_GD_AT_END) {
		/* The footer (a header copy) sits before the end-of-stream marker. */
		uint8_t *ft = malloc(512);

		if (!ft)
			return -ENOMEM;
		if (f->size < 1536 || pfile_pread(f, ft, 512, f->size - 1024, true) ||
		    ld_le32(ft) != VMDK_MAGIC || ld_le64(ft + 56) == VMDK_GD_AT_END) {
			free(ft);
			if (!(img->flags & PIMG_O_RDONLY) && f->size <= 64 * 512 &&
			    (s->flags & VMDK_FLAG_COMPRESSED)) {
				/* A fresh stream written by us: become its sequential writer. */
				s->stream_writer = true;
				gd_sec = 0;
			} else {
				log_error("%s: streamOptimized VMDK without footer", img->path);
				return -EINVAL;
			}
		} else {
			memcpy(h, ft, 512);
			free(ft);
			s->flags = ld_le32(h + 8);
			gd_sec = ld_le64(h + 56);
		}
	}
	cap = ld_le64(h + 12);
	grain_sec = ld_le64(h + 20);
	s->gtes = ld_le32(h + 44);
	rgd_sec = ld_le64(h + 48);
	if (!is_pow2(grain_sec) || grain_sec < 8 || grain_sec > 2048 || !s->gtes || s->gtes > 65536 ||
	    cap < e->sectors) {
		log_error("%s: bad VMDK sparse header (grain %" PRIu64 ", %u GTEs, capacity %" PRIu64 ")",
			  img->path, grain_sec, s->gtes, cap);
		return -EINVAL;
	}
	s->grain = grain_sec * SECTOR_SIZE;
	if (ld_le64(h + 64) > f->size / SECTOR_SIZE + 1) {
		log_error("%s: VMDK overhead beyond the end of the file", img->path);
		return -EINVAL;
	}
	s->data_start = MAX(ld_le64(h + 64), 1) * SECTOR_SIZE;
	gt_cover = grain_sec * s->gtes;
	s->gd_entries = (uint32_t)((e->sectors + gt_cover - 1) / gt_cover);
	if (mul_overflow(gd_sec, (uint64_t)SECTOR_SIZE, &s->gd_off) ||
	    mul_overflow(rgd_sec, (uint64_t)SECTOR_SIZE, &s->rgd_off) ||
	    (uint64_t)s->gd_entries * 4 > 64 * MiB) {
		log_error("%s: VMDK grain directory offset out of range", img->path);
		return -EINVAL;
	}
	if (s->flags & VMDK_FLAG_COMPRESSED) {
		if (ld_le16(h + 77) != 1) {
			log_error("%s: unknown VMDK compression %u", img->path, ld_le16(h + 77));
			return -ENOTSUP;
		}
	}
	if (s->flags & VMDK_FLAG_COMPRESSED && !(img->flags & PIMG_O_RDONLY) && !s->stream_writer) {
		log_error("%s: streamOptimized images are write-once; open read-only", img->path);
		return -EROFS;
	}
	s->alloc_end = align_up(f->size, SECTOR_SIZE);
	ret = sparse_buffers(s);
	if (ret)
		return ret;
	if (s->stream_writer) {
		s->gd = calloc(MAX(s->gd_entries, 1), 4);
		s->gt_buf = calloc(s->gtes, 4);
		if (!s->gd || !s->gt_buf)
			return -ENOMEM;
		img->sequential_only = true;
		return 0;
	}
	if (!range_within(s->gd_off, (uint64_t)s->gd_entries * 4, f->size)) {
		log_error("%s: VMDK grain directory lies outside the file", img->path);
		return -EINVAL;
	}
	ret = read_u32_table(f, s->gd_off, s->gd_entries, &s->gd);
	if (ret)
		return ret;
	if ((s->flags & VMDK_FLAG_RGD) && s->rgd_off) {
		if (!range_within(s->rgd_off, (uint64_t)s->gd_entries * 4, f->size)) {
			log_error("%s: VMDK redundant grain directory lies outside the file", img->path);
			return -EINVAL;
		}
		ret = read_u32_table(f, s->rgd_off, s->gd_entries, &s->rgd);
		if (ret)
			return ret;
	}
	return 0;
}

static void sparse_free(struct sparse *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++)
		free(s->cache[i].t);
	free(s->gd);
	free(s->rgd);
	free(s->gbuf);
	free(s->cbuf);
	free(s->gt_buf);
	free(s);
}

static int gt_write(struct pimg_file *f, struct sparse *s, struct gt_entry *g)
{
	uint32_t *be = malloc((size_t)s->gtes * 4);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->gtes; i++)
		be[i] = htole32(g->t[i]);
	ret = pfile_pwrite(f, be, (size_t)s->gtes * 4, g->off);
	free(be);
	if (!ret)
		g->dirty = false;
	return ret;
}

static int gd_write(struct pimg_file *f, struct sparse *s, const uint32_t *gd, uint64_t off)
{
	uint32_t *be = malloc((size_t)MAX(s->gd_entries, 1) * 4);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->gd_entries; i++)
		be[i] = htole32(gd[i]);
	ret = pfile_pwrite(f, be, (size_t)s->gd_entries * 4, off);
	free(be);
	return ret;
}

static int stream_finish(struct pimg *img, struct extent *e);

static int sparse_flush(struct pimg *img, struct extent *e)
{
	struct sparse *s = e->sp;
	bool dirty = s->gd_dirty;
	int ret;

	if (s->stream_writer)
		return stream_finish(img, e);
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++)
		dirty |= s->cache[i].off && s->cache[i].dirty;
	if (!dirty)
		return 0;
	ret = pfile_sync(e->file);
	if (ret)
		return ret;
	for (unsigned i = 0; i < VMDK_GT_CACHE; i++) {
		if (s->cache[i].off && s->cache[i].dirty) {
			ret = gt_write(e->file, s, &s->cache[i]);
			if (ret)
				return ret;
		}
	}
	if (s->gd_dirty) {
		ret = gd_write(e->file, s, s->gd, s->gd_off);
		if (!ret && s->rgd)
			ret = gd_write(e->file, s, s->rgd, s->rgd_off);
		if (ret)
			return ret;
		s->gd_dirty = false;
	}
	return pfile_sync(e->file);
}

/* The GT at host offset off (loaded, or zeroed when fresh). */
static int gt_get(struct pimg *img, struct extent *e, uint64_t off, bool fresh, struct gt_entry **out)
{
	struct sparse *s = e->sp;
	struct gt_entry *victim = NULL;
	int ret;

	for (unsigned i = 0; i < VMDK_GT_CACHE; i++) {
		if (s->cache[i].off == off) {
			s->cache[i].stamp = ++s->tick;
			*out = &s->cache[i];
			return 0;
		}
	}
	for (unsigned i = 0; i < VMDK_GT_CACHE && (!victim || victim->off); i++)
		if (!victim || !s->cache[i].off || s->cache[i].stamp < victim->stamp)
			victim = &s->cache[i];
	if (victim->off && victim->dirty) {
		ret = sparse_flush(img, e);
		if (ret)
			return ret;
	}
	victim->off = 0;
	if (fresh) {
		memset(victim->t, 0, (size_t)s->gtes * 4);
		victim->dirty = true;
	} else {
		if (!range_within(off, (uint64_t)s->gtes * 4, e->file->size)) {
			log_error("%s: VMDK grain table at %#" PRIx64 " lies outside the file", img->path, off);
			return -EIO;
		}
		ret = pfile_pread(e->file, victim->t, (size_t)s->gtes * 4, off, true);
		if (ret)
			return ret;
		for (uint32_t i = 0; i < s->gtes; i++)
			victim->t[i] = le32toh(victim->t[i]);
		victim->dirty = false;
	}
	victim->off = off;
	victim->stamp = ++s->tick;
	*out = victim;
	return 0;
}

/* GTE of grain g in extent e (0 if its GT does not exist). */
static int gte_get(struct pimg *img, struct extent *e, uint64_t g, uint32_t *gte)
{
	struct sparse *s = e->sp;
	uint64_t gdi = g / s->gtes;
	struct gt_entry *gt;
	int ret;

	*gte = 0;
	if (s->stream_writer) {
		if (gdi == s->cur_gt)
			*gte = s->gt_buf[g % s->gtes];
		return 0;
	}
	if (gdi >= s->gd_entries)
		return -EIO;
	if (!s->gd[gdi])
		return 0;
	ret = gt_get(img, e, (uint64_t)s->gd[gdi] * SECTOR_SIZE, false, &gt);
	if (ret)
		return ret;
	*gte = gt->t[g % s->gtes];
	return 0;
}

static int read_compressed_grain(struct pimg *img, struct extent *e, uint64_t host, uint64_t g)
{
	struct sparse *s = e->sp;
	uint8_t m[12];
	uint32_t clen;
	uLongf out = (uLongf)s->grain;
	int ret;

	if (s->dec_off == host)
		return 0;
	if (host < s->data_start) {
		log_error("%s: compressed grain entry points into the metadata", img->path);
		return -EIO;
	}
	ret = pfile_pread(e->file, m, sizeof(m), host, true);
	if (ret) {
		log_error("%s: compressed grain at %#" PRIx64 " lies outside the file", img->path, host);
		return ret;
	}
	clen = ld_le32(m + 8);
	if (clen > s->grain * 2 + 512 || ld_le64(m) != g * (s->grain / SECTOR_SIZE)) {
		log_error("%s: bad compressed grain marker at %#" PRIx64, img->path, host);
		return -EIO;
	}
	ret = pfile_pread(e->file, s->cbuf, clen, host + 12, true);
	if (ret)
		return ret;
	s->dec_off = 0;
	memset(s->gbuf, 0, s->grain);
	if (uncompress(s->gbuf, &out, s->cbuf, clen) != Z_OK) {
		log_error("%s: corrupt compressed grain at %#" PRIx64, img->path, host);
		return -EIO;
	}
	s->dec_off = host;
	return 0;
}

/* ---- seSparse extents ------------------------------------------------------ */

/*
 * seSparse (ESXi 6.5+ snapshots), read only; VMware does not publish the layout,
 * this follows what qemu reads. Little-endian u64 fields. Constant header at 0:
 * magic 0xcafebabe, version 2.1, capacity, grain 8 sectors, GT 64 sectors (4096
 * entries), flags 0, then (sectors, u64 pairs offset/size from byte 80) volatile
 * header, journal header, journal, GD, GTs, free bitmap, backmap, grains. The
 * volatile header (magic 0xcafecafe) says whether a journal waits for replay.
 * GD entry: 0 = none, else 0x10000000 in the top half and the GT index below.
 * GT entry by its top nibble: 0 unallocated (parent), 1 unmapped and 2 zero
 * (read as zeros), 3 allocated: grain index = bits 48..59 | bits 0..47 << 12.
 */

static void sesparse_free(struct sesparse *se)
{
	if (!se)
		return;
	free(se->gd);
	free(se->gt);
	free(se);
}

static int sesparse_open(struct pimg *img, struct extent *e)
{
	uint8_t h[512], vh[512];
	uint64_t cover = (uint64_t)SES_GRAIN_SECTORS * SES_GTES, need, gd_off, vol_off;
	struct pimg_file *f = e->file;
	struct sesparse *se;
	int ret;

	if (!(img->flags & PIMG_O_RDONLY)) {
		log_error("%s: seSparse extents are read only here; convert to write", img->path);
		return -EROFS;
	}
	se = calloc(1, sizeof(*se));
	if (!se)
		return -ENOMEM;
	e->se = se;
	se->gt_cached = UINT64_MAX;
	if (pfile_pread(f, h, sizeof(h), 0, true) || ld_le64(h) != SES_MAGIC ||
	    ld_le64(h + 8) != SES_VERSION) {
		log_error("%s: not a seSparse extent of version 2.1", img->path);
		return -EINVAL;
	}
	if (ld_le64(h + 24) != SES_GRAIN_SECTORS || ld_le64(h + 32) != SES_GT_SECTORS || ld_le64(h + 40) ||
	    ld_le64(h + 16) < e->sectors) {
		log_error("%s: unsupported seSparse layout (grain %" PRIu64 ", GT %" PRIu64 " sectors, "
			  "flags %#" PRIx64 ")", img->path, ld_le64(h + 24), ld_le64(h + 32), ld_le64(h + 40));
		return -ENOTSUP;
	}
	if (mul_overflow(ld_le64(h + 80), (uint64_t)SECTOR_SIZE, &vol_off) ||
	    !range_within(vol_off, sizeof(vh), f->size) || pfile_pread(f, vh, sizeof(vh), vol_off, true) ||
	    ld_le64(vh) != SES_VOLATILE_MAGIC) {
		log_error("%s: seSparse volatile header missing", img->path);
		return -EINVAL;
	}
	if (ld_le64(vh + 24)) {
		log_error("%s: seSparse journal waits for replay (consolidate the snapshot in ESXi)", img->path);
		return -ENOTSUP;
	}
	need = (e->sectors + cover - 1) / cover;
	if (mul_overflow(ld_le64(h + 128), (uint64_t)SECTOR_SIZE, &gd_off) ||
	    mul_overflow(ld_le64(h + 144), (uint64_t)SECTOR_SIZE, &se->gt_off) ||
	    mul_overflow(ld_le64(h + 192), (uint64_t)SECTOR_SIZE, &se->grains_off) ||
	    ld_le64(h + 136) * SECTOR_SIZE / 8 < need || need * 8 > 64 * MiB ||
	    !range_within(gd_off, need * 8, f->size)) {
		log_error("%s: seSparse grain directory too small or outside the file", img->path);
		return -EINVAL;
	}
	se->gd_entries = need;
	se->gd = malloc(need * 8);
	se->gt = malloc(SES_GTES * 8);
	if (!se->gd || !se->gt)
		return -ENOMEM;
	ret = pfile_pread(f, se->gd, need * 8, gd_off, true);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < need; i++)
		se->gd[i] = le64toh(se->gd[i]);
	return 0;
}

/* Status of grain g (extent-relative) and, for DATA, its host byte offset. */
static int sesparse_grain(struct pimg *img, struct extent *e, uint64_t g, uint64_t *host)
{
	struct sesparse *se = e->se;
	uint64_t gdi = g / SES_GTES, l1, l2, gt_host, idx;
	int ret;

	if (gdi >= se->gd_entries)
		return -EIO;
	l1 = se->gd[gdi];
	if (!l1)
		return PIMG_UNALLOCATED;
	if (l1 >> 32 != 0x10000000) {
		log_error("%s: bad seSparse grain directory entry %" PRIu64, img->path, gdi);
		return -EIO;
	}
	if (se->gt_cached != gdi) {
		gt_host = (l1 & 0xffffffffu) * (SES_GTES * 8); /* < 2^32 * 2^15 */
		if (add_overflow(gt_host, se->gt_off, &gt_host) ||
		    !range_within(gt_host, SES_GTES * 8, e->file->size)) {
			log_error("%s: seSparse grain table %" PRIu64 " lies outside the file", img->path, gdi);
			return -EIO;
		}
		se->gt_cached = UINT64_MAX;
		ret = pfile_pread(e->file, se->gt, SES_GTES * 8, gt_host, true);
		if (ret)
			return ret;
		for (uint64_t i = 0; i < SES_GTES; i++)
			se->gt[i] = le64toh(se->gt[i]);
		se->gt_cached = gdi;
	}
	l2 = se->gt[g % SES_GTES];
	switch (l2 >> 60) {
	case 0:
		if (l2)
			break;
		return PIMG_UNALLOCATED;
	case 1: /* unmapped */
	case 2: /* zero */
		return PIMG_ZERO;
	case 3:
		idx = ((l2 & 0x0fff000000000000ULL) >> 48) | ((l2 & 0x0000ffffffffffffULL) << 12);
		if (mul_overflow(idx, (uint64_t)SES_GRAIN_SECTORS * SECTOR_SIZE, host) ||
		    add_overflow(*host, se->grains_off, host))
			break;
		return PIMG_DATA;
	}
	log_error("%s: bad seSparse grain table entry %#" PRIx64, img->path, l2);
	return -EIO;
}

/* ---- extent dispatch ------------------------------------------------------- */

static struct extent *find_extent(struct vmdk *v, uint64_t off)
{
	uint64_t sec = off / SECTOR_SIZE;
	unsigned lo = 0, hi = v->n_ext;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (sec < v->ext[mid].start)
			hi = mid;
		else if (sec >= v->ext[mid].start + v->ext[mid].sectors)
			lo = mid + 1;
		else
			return &v->ext[mid];
	}
	return NULL;
}

static int vmdk_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum)
{
	struct extent *e = find_extent(img->priv, off);
	uint64_t rel, end;
	uint32_t gte;
	int ret;

	if (!e)
		return -EIO;
	rel = off - e->start * SECTOR_SIZE;
	end = (e->start + e->sectors) * SECTOR_SIZE;
	*pnum = MIN(len, end - off);
	if (e->type == EXT_ZERO)
		return PIMG_ZERO;
	if (e->type == EXT_FLAT)
		return PIMG_DATA;
	if (e->type == EXT_SESPARSE) {
		uint64_t host;

		*pnum = MIN(*pnum, SES_GRAIN_SECTORS * SECTOR_SIZE - rel % (SES_GRAIN_SECTORS * SECTOR_SIZE));
		return sesparse_grain(img, e, rel / (SES_GRAIN_SECTORS * SECTOR_SIZE), &host);
	}
	*pnum = MIN(*pnum, e->sp->grain - rel % e->sp->grain);
	ret = gte_get(img, e, rel / e->sp->grain, &gte);
	if (ret)
		return ret;
	if (gte == 0)
		return PIMG_UNALLOCATED;
	if (gte == 1 && (e->sp->flags & VMDK_FLAG_ZERO_GRAIN))
		return PIMG_ZERO;
	return PIMG_DATA;
}

static int vmdk_read(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	struct extent *e = find_extent(img->priv, off);
	struct sparse *s;
	uint64_t rel, host, g;
	uint32_t gte;
	int ret;

	if (!e)
		return -EIO;
	rel = off - e->start * SECTOR_SIZE;
	if (e->type == EXT_FLAT)
		return pfile_pread(e->file, buf, len, e->offset + rel, true);
	if (e->type == EXT_SESPARSE) {
		uint64_t gb = SES_GRAIN_SECTORS * SECTOR_SIZE;

		ret = sesparse_grain(img, e, rel / gb, &host);
		if (ret != PIMG_DATA)
			return ret < 0 ? ret : -EIO;
		return pfile_pread(e->file, buf, len, host + rel % gb, false);
	}
	s = e->sp;
	g = rel / s->grain;
	ret = gte_get(img, e, g, &gte);
	if (ret)
		return ret;
	host = (uint64_t)gte * SECTOR_SIZE;
	if (s->flags & VMDK_FLAG_COMPRESSED) {
		ret = read_compressed_grain(img, e, host, g);
		if (!ret)
			memcpy(buf, s->gbuf + rel % s->grain, len);
		return ret;
	}
	if ((host >= e->file->size && host >= s->alloc_end) || host < s->data_start) {
		log_error("%s: grain table entry points %s (sector %u)", img->path,
			  host < s->data_start ? "into the metadata" : "beyond the end of the file", gte);
		return -EIO;
	}
	return pfile_pread(e->file, buf, len, host + rel % s->grain, false);
}

static int set_gte(struct pimg *img, struct extent *e, uint64_t g, uint32_t val)
{
	struct sparse *s = e->sp;
	uint64_t gdi = g / s->gtes;
	struct gt_entry *gt;
	int ret;

	if (!s->gd[gdi]) {
		/* A missing GT (never made by VMware or QEMU, but valid): append one. */
		uint64_t gt_bytes = align_up((uint64_t)s->gtes * 4, SECTOR_SIZE);

		for (int r = 0; r < (s->rgd ? 2 : 1); r++) {
			uint64_t off = s->alloc_end;

			s->alloc_end += gt_bytes;
			ret = gt_get(img, e, off, true, &gt);
			if (ret)
				return ret;
			(r ? s->rgd : s->gd)[gdi] = (uint32_t)(off / SECTOR_SIZE);
		}
		s->gd_dirty = true;
	}
	for (int r = 0; r < (s->rgd && s->rgd[gdi] ? 2 : 1); r++) {
		ret = gt_get(img, e, (uint64_t)(r ? s->rgd : s->gd)[gdi] * SECTOR_SIZE, false, &gt);
		if (ret)
			return ret;
		gt->t[g % s->gtes] = val;
		gt->dirty = true;
	}
	return 0;
}

static int extent_write(struct pimg *img, struct extent *e, const void *buf, uint64_t len, uint64_t off)
{
	struct sparse *s;
	uint64_t rel, g, host, in;
	uint32_t gte;
	int ret;

	rel = off - e->start * SECTOR_SIZE;
	if (e->type == EXT_ZERO || e->type == EXT_SESPARSE)
		return -EROFS;
	if (e->file->rdonly)
		return -EROFS;
	if (e->type == EXT_FLAT)
		return pfile_pwrite(e->file, buf, len, e->offset + rel);
	s = e->sp;
	if (s->stream_writer) {
		log_error("%s: streamOptimized images take only whole compressed grains, in order", img->path);
		return -EINVAL;
	}
	g = rel / s->grain;
	in = rel % s->grain;
	ret = gte_get(img, e, g, &gte);
	if (ret)
		return ret;
	if (gte > 1 || (gte == 1 && !(s->flags & VMDK_FLAG_ZERO_GRAIN))) {
		host = (uint64_t)gte * SECTOR_SIZE;
		if (host < s->data_start || host >= s->alloc_end) {
			log_error("%s: bad grain table entry %u", img->path, gte);
			return -EIO;
		}
		return pfile_pwrite(e->file, buf, len, host + in);
	}
	/* New grain at the end of the file: old content is the backing file or zeros. */
	if (len != s->grain) {
		if (gte == 1 || !img->backing)
			memset(s->gbuf, 0, s->grain);
		else if ((ret = pimg_read_backing(img, s->gbuf, MIN(s->grain, img->size - (off - in)), off - in)))
			return ret;
		else if (img->size - (off - in) < s->grain)
			memset(s->gbuf + (img->size - (off - in)), 0, s->grain - (img->size - (off - in)));
		s->dec_off = 0;
		memcpy(s->gbuf + in, buf, len);
		buf = s->gbuf;
	}
	host = s->alloc_end;
	if (host / SECTOR_SIZE >= UINT32_MAX) {
		log_error("%s: VMDK extent full (2 TiB)", img->path);
		return -EFBIG;
	}
	s->alloc_end += s->grain;
	ret = pfile_pwrite(e->file, buf, s->grain, host);
	if (ret)
		return ret;
	return set_gte(img, e, g, (uint32_t)(host / SECTOR_SIZE));
}

/* The core splits at grains; flat extents may still end inside a request. */
static int vmdk_write(struct pimg *img, const void *buf, uint64_t len, uint64_t off)
{
	while (len) {
		struct extent *e = find_extent(img->priv, off);
		uint64_t n;
		int ret;

		if (!e)
			return -EIO;
		n = MIN(len, (e->start + e->sectors) * SECTOR_SIZE - off);
		ret = extent_write(img, e, buf, n, off);
		if (ret)
			return ret;
		buf = (const uint8_t *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vmdk_write_zeroes(struct pimg *img, uint64_t len, uint64_t off, bool may_unmap)
{
	struct extent *e = find_extent(img->priv, off);
	uint32_t gte;
	int ret;

	if (!e || e->type != EXT_SPARSE || e->sp->stream_writer || len != e->sp->grain)
		return -ENOTSUP;
	ret = gte_get(img, e, (off - e->start * SECTOR_SIZE) / e->sp->grain, &gte);
	if (ret)
		return ret;
	if (gte == 0 && !img->backing)
		return 0;
	if (gte <= 1 && (e->sp->flags & VMDK_FLAG_ZERO_GRAIN))
		return 0;
	return -ENOTSUP;
}

/* ---- streamOptimized writer ------------------------------------------------ */

static int write_marker(struct pimg_file *f, uint64_t at, uint64_t val, uint32_t type)
{
	uint8_t m[512] = { 0 };

	st_le64(m, val);
	st_le32(m + 12, type);
	return pfile_pwrite(f, m, sizeof(m), at);
}

/* Emit the GT being filled (marker + table) and record it in the GD. */
static int stream_emit_gt(struct extent *e)
{
	struct sparse *s = e->sp;
	uint64_t gt_bytes = align_up((uint64_t)s->gtes * 4, SECTOR_SIZE);
	uint32_t *be;
	int ret;

	if (s->cur_gt == UINT32_MAX)
		return 0;
	be = calloc(1, gt_bytes);
	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->gtes; i++)
		be[i] = htole32(s->gt_buf[i]);
	ret = write_marker(e->file, s->alloc_end, gt_bytes / SECTOR_SIZE, MARKER_GT);
	if (!ret)
		ret = pfile_pwrite(e->file, be, gt_bytes, s->alloc_end + 512);
	free(be);
	if (ret)
		return ret;
	s->gd[s->cur_gt] = (uint32_t)((s->alloc_end + 512) / SECTOR_SIZE);
	s->alloc_end += 512 + gt_bytes;
	memset(s->gt_buf, 0, (size_t)s->gtes * 4);
	s->cur_gt = UINT32_MAX;
	return 0;
}

/* Write grain g of the stream: its marker (lba, size) and the zlib stream cdata. */
static int stream_write_grain(struct pimg *img, struct extent *e, const void *cdata, size_t clen,
			      uint64_t g)
{
	struct sparse *s = e->sp;
	uint64_t total;
	int ret;

	if ((int64_t)g <= s->last_grain) {
		log_error("%s: streamOptimized images are written in order (grain %" PRIu64 ")", img->path, g);
		return -EINVAL;
	}
	if (clen > s->grain * 2 + 512)
		return -EINVAL;
	if (g / s->gtes != s->cur_gt) {
		ret = stream_emit_gt(e);
		if (ret)
			return ret;
		s->cur_gt = (uint32_t)(g / s->gtes);
	}
	st_le64(s->cbuf, g * (s->grain / SECTOR_SIZE));
	st_le32(s->cbuf + 8, (uint32_t)clen);
	memcpy(s->cbuf + 12, cdata, clen);
	total = align_up(12 + clen, SECTOR_SIZE);
	memset(s->cbuf + 12 + clen, 0, total - 12 - clen);
	if (s->alloc_end / SECTOR_SIZE >= UINT32_MAX)
		return -EFBIG;
	ret = pfile_pwrite(e->file, s->cbuf, total, s->alloc_end);
	if (ret)
		return ret;
	s->gt_buf[g % s->gtes] = (uint32_t)(s->alloc_end / SECTOR_SIZE);
	s->alloc_end += total;
	s->last_grain = (int64_t)g;
	return 0;
}

static int stream_finish(struct pimg *img, struct extent *e)
{
	struct sparse *s = e->sp;
	uint64_t gd_bytes = align_up((uint64_t)s->gd_entries * 4, SECTOR_SIZE), gd_at;
	uint8_t footer[512];
	uint32_t *be;
	int ret;

	if (s->stream_done)
		return 0;
	ret = stream_emit_gt(e);
	if (ret)
		return ret;
	be = calloc(1, gd_bytes);
	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->gd_entries; i++)
		be[i] = htole32(s->gd[i]);
	ret = write_marker(e->file, s->alloc_end, gd_bytes / SECTOR_SIZE, MARKER_GD);
	gd_at = s->alloc_end + 512;
	if (!ret)
		ret = pfile_pwrite(e->file, be, gd_bytes, gd_at);
	free(be);
	if (ret)
		return ret;
	s->alloc_end = gd_at + gd_bytes;
	memcpy(footer, s->header, 512);
	st_le64(footer + 56, gd_at / SECTOR_SIZE);
	ret = write_marker(e->file, s->alloc_end, 1, MARKER_FOOTER);
	if (!ret)
		ret = pfile_pwrite(e->file, footer, 512, s->alloc_end + 512);
	if (!ret)
		ret = write_marker(e->file, s->alloc_end + 1024, 0, MARKER_EOS);
	if (ret)
		return ret;
	s->alloc_end += 1536;
	s->stream_done = true;
	return pfile_sync(e->file);
}

/* A streamOptimized grain is a zlib stream (compress2's format). Thread-safe: reads only
 * the extent table and grain sizes, fixed at open. Other extents do not compress. */
static int vmdk_compress(const struct pimg *img, struct pimg_compressor *c, const void *buf,
			 uint64_t off, void *out, size_t *clen)
{
	const struct extent *e = find_extent(img->priv, off);

	if (!e || e->type != EXT_SPARSE || !e->sp->stream_writer)
		return -ENOSPC;
	return pimg_deflate(c, 15, 8, buf, e->sp->grain, out, e->sp->grain * 2 + 512, clen);
}

static int vmdk_write_compressed(struct pimg *img, const void *cdata, size_t clen, const void *buf,
				 uint64_t len, uint64_t off)
{
	struct extent *e = find_extent(img->priv, off);

	if (!e || e->type != EXT_SPARSE || !e->sp->stream_writer)
		return e ? extent_write(img, e, buf, len, off) : -EIO;
	if (e->sp->stream_done) {
		log_error("%s: streamOptimized image already finished", img->path);
		return -EINVAL;
	}
	if (!cdata) { /* vmdk_compress always compresses a stream's grain */
		log_error("%s: streamOptimized grains are written compressed", img->path);
		return -EINVAL;
	}
	return stream_write_grain(img, e, cdata, clen, (off - e->start * SECTOR_SIZE) / e->sp->grain);
}

static int vmdk_flush(struct pimg *img)
{
	struct vmdk *v = img->priv;

	for (unsigned i = 0; i < v->n_ext; i++) {
		struct extent *e = &v->ext[i];
		int ret = 0;

		if (e->type == EXT_SPARSE && !e->file->rdonly)
			ret = sparse_flush(img, e);
		else if (e->own_file)
			ret = pfile_sync(e->file);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- open / close ---------------------------------------------------------- */

static void vmdk_close(struct pimg *img)
{
	struct vmdk *v = img->priv;

	if (!v)
		return;
	for (unsigned i = 0; i < v->n_ext; i++) {
		sparse_free(v->ext[i].sp);
		sesparse_free(v->ext[i].se);
		if (v->ext[i].own_file)
			pfile_close(v->ext[i].file);
	}
	free(v);
	img->priv = NULL;
}

/* The parent is a VMDK whose CID is the parentCID recorded here (core.c checks). */
static int set_identity(struct pimg *img)
{
	struct vmdk *v = img->priv;

	st_le32(img->id, v->cid);
	img->id_len = 4;
	if (!img->backing_name)
		return 0;
	st_le32(img->parent_id, v->parent_cid);
	img->parent_id_len = 4;
	img->backing_fmt = strdup("vmdk");
	return img->backing_fmt ? 0 : -ENOMEM;
}

/* A sparse file without a descriptor (KDMV or COWD): one extent, the file itself, of the header's capacity. */
static int lone_sparse_extent(struct pimg *img, const uint8_t *h)
{
	struct vmdk *v = img->priv;
	struct extent *e = &v->ext[0];
	bool cowd = ld_le32(h) == VMDK_COWD_MAGIC, ses = ld_le64(h) == SES_MAGIC;
	uint64_t cap = cowd ? ld_le32(h + 12) : ses ? ld_le64(h + 16) : ld_le64(h + 12);

	if (!cap || cap > (1ULL << 40)) {
		log_error("%s: bad VMDK capacity %" PRIu64 " sectors", img->path, cap);
		return -EINVAL;
	}
	memset(e, 0, sizeof(*e));
	e->type = ses ? EXT_SESPARSE : EXT_SPARSE;
	e->sectors = cap;
	e->file = img->file;
	v->n_ext = 1;
	v->parent_cid = 0xffffffffu;
	v->thin = -1;
	snprintf(v->create_type, sizeof(v->create_type), "%s",
		 cowd ? "vmfsSparse" : ses ? "seSparse" : "monolithicSparse");
	img->size = cap * SECTOR_SIZE;
	return ses ? sesparse_open(img, e) : sparse_open(img, e);
}

static int vmdk_open(struct pimg *img)
{
	struct pimg_file *f = img->file;
	uint8_t h[512];
	uint64_t doff, dlen;
	bool embedded = false;
	struct vmdk *v;
	char *text;
	int ret;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	img->priv = v;
	if (f->size >= 512 && !pfile_pread(f, h, 512, 0, true) &&
	    (ld_le32(h) == VMDK_COWD_MAGIC || ld_le64(h) == SES_MAGIC)) {
		/* An ESX sparse or seSparse file on its own: no descriptor. */
		ret = lone_sparse_extent(img, h);
		if (ret)
			goto out;
		goto out_granule;
	}
	if (f->size >= 512 && !pfile_pread(f, h, 512, 0, true) && ld_le32(h) == VMDK_MAGIC) {
		/* Embedded descriptor in a sparse file. */
		embedded = true;
		doff = ld_le64(h + 28);
		dlen = ld_le64(h + 36);
		if (!doff && !dlen) {
			/* A lone extent of a split set (-s001.vmdk...): the header alone describes it. */
			ret = lone_sparse_extent(img, h);
			if (ret)
				goto out;
			goto out_granule;
		}
		if (!doff || !dlen || dlen > VMDK_MAX_DESC / SECTOR_SIZE || doff > f->size / SECTOR_SIZE ||
		    !range_within(doff * SECTOR_SIZE, dlen * SECTOR_SIZE, f->size)) {
			log_error("%s: VMDK sparse file without a valid embedded descriptor", img->path);
			ret = -EINVAL;
			goto out;
		}
		doff *= SECTOR_SIZE;
		dlen *= SECTOR_SIZE;
	} else {
		doff = 0;
		dlen = f->size;
		if (dlen > VMDK_MAX_DESC) {
			log_error("%s: VMDK descriptor file too large", img->path);
			ret = -EINVAL;
			goto out;
		}
	}
	text = malloc(dlen + 1);
	if (!text) {
		ret = -ENOMEM;
		goto out;
	}
	ret = pfile_pread(f, text, dlen, doff, true);
	if (ret) {
		free(text);
		goto out;
	}
	text[dlen] = 0;
	if (strlen(text) < dlen && memchr(text, 0, dlen) == text) {
		free(text);
		if (embedded) {
			/* The extents of split sets made by qemu-img reserve an empty one. */
			ret = lone_sparse_extent(img, h);
			if (ret)
				goto out;
			goto out_granule;
		}
		log_error("%s: empty VMDK descriptor", img->path);
		ret = -EINVAL;
		goto out;
	}
	/* A sparse header of capacity 0 only carries a descriptor naming other files (as qemu reads it). */
	ret = parse_descriptor(img, text, f, embedded && ld_le64(h + 12) != 0);
	free(text);
	if (ret)
		goto out;
	ret = set_identity(img);
	if (ret)
		goto out;
out_granule:
	img->granule = 1 * MiB;
	img->batched = true;
	for (unsigned i = 0; i < v->n_ext; i++) {
		if (v->ext[i].type == EXT_SPARSE || v->ext[i].type == EXT_SESPARSE) {
			img->granule = v->ext[i].type == EXT_SPARSE ? (uint32_t)v->ext[i].sp->grain
								     : SES_GRAIN_SECTORS * SECTOR_SIZE;
			break;
		}
	}
	for (unsigned i = 0; i < v->n_ext; i++) {
		/* Every sparse extent must share the granule (the core splits at it). */
		if ((v->ext[i].type == EXT_SPARSE && v->ext[i].sp->grain != img->granule) ||
		    (v->ext[i].type == EXT_SESPARSE && img->granule != SES_GRAIN_SECTORS * SECTOR_SIZE)) {
			log_error("%s: VMDK extents with different grain sizes", img->path);
			ret = -ENOTSUP;
			goto out;
		}
	}
	return 0;
out:
	vmdk_close(img);
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

/* extents: the extent lines ("RW <sectors> <type> \"<file>\"[ <offset>]\n" each). */
static int make_descriptor(char *buf, size_t len, const char *type, uint64_t sectors, const char *extents,
			   const struct pimg_create_opts *o, uint32_t parent_cid)
{
	uint32_t cid;
	uint64_t cyl = MIN(sectors / (16 * 63), 16383);
	char parent[1200] = "";
	int n;

	pimg_random(&cid, sizeof(cid));
	if (o->backing_file)
		snprintf(parent, sizeof(parent), "parentFileNameHint=\"%s\"\n", o->backing_file);
	n = snprintf(buf, len,
		     "# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=%08x\ncreateType=\"%s\"\n%s\n"
		     "# Extent description\n%s\n"
		     "# The Disk Data Base\n#DDB\n\n"
		     "ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"%" PRIu64 "\"\n"
		     "ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"%s\"\n"
		     /* what qemu-img writes: "no tools"; vSphere reads the key at power-on */
		     "ddb.toolsVersion = \"2147483647\"\n",
		     cid, o->backing_file ? parent_cid : 0xffffffffu, type, parent, extents, cyl,
		     o->adapter_type ? o->adapter_type : "ide");
	return n < 0 || (size_t)n >= len ? -EINVAL : n;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* The name of path without its directory and its ".vmdk" (malloc'd). */
static char *stem(const char *path)
{
	char *st = strdup(base_name(path)), *dot;

	if (st && (dot = strstr(st, ".vmdk")) && !dot[5])
		*dot = 0;
	return st;
}

/* A flat extent file of size bytes, next to the descriptor at desc_path. */
static int create_flat_file(const char *desc_path, const char *name, uint64_t size)
{
	char *path = pimg_path_relative_to(desc_path, name);
	struct pimg_file *f;
	int ret;

	if (!path)
		return -ENOMEM;
	f = pfile_open(path, false, true);
	free(path);
	if (!f)
		return -EIO;
	ret = pfile_truncate(f, size);
	pfile_close(f);
	return ret;
}

/*
 * A hosted sparse extent file of `sectors`: header, the descriptor desc (n bytes)
 * embedded if given (else none, as the extents of a split set), the redundant GD
 * and the GD each with zeroed GTs (qemu's layout), or a streamOptimized start.
 */
static int create_sparse_file(const char *path, uint64_t sectors, const char *desc, size_t n, bool stream)
{
	uint64_t grain = 128, gtes = 512, gd_entries, gd_sec, gt_sec, rgd, gd, overhead;
	uint64_t desc_sec = desc ? 20 : 0;
	uint8_t h[512] = { 0 };
	struct pimg_file *f;
	int ret;

	gd_entries = (sectors + grain * gtes - 1) / (grain * gtes);
	gd_sec = (gd_entries * 4 + 511) / 512;
	gt_sec = gtes * 4 / 512;
	/* QEMU's layout: header, descriptor (20 sectors), redundant GD + GTs, GD + GTs. */
	rgd = 1 + desc_sec;
	gd = rgd + gd_sec + gd_entries * gt_sec;
	overhead = align_up(gd + gd_sec + gd_entries * gt_sec, grain);
	st_le32(h, VMDK_MAGIC);
	st_le32(h + 4, stream ? 3 : 1);
	st_le32(h + 8, stream ? (VMDK_FLAG_NL_TEST | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)
			      : (VMDK_FLAG_NL_TEST | VMDK_FLAG_RGD));
	st_le64(h + 12, sectors);
	st_le64(h + 20, grain);
	st_le64(h + 28, desc ? 1 : 0);
	st_le64(h + 36, desc_sec);
	st_le32(h + 44, (uint32_t)gtes);
	st_le64(h + 48, stream ? 0 : rgd);
	st_le64(h + 56, stream ? VMDK_GD_AT_END : gd);
	st_le64(h + 64, stream ? 1 + desc_sec : overhead);
	h[73] = '\n';
	h[74] = ' ';
	h[75] = '\r';
	h[76] = '\n';
	st_le16(h + 77, stream ? 1 : 0);
	if (n > desc_sec * 512) {
		log_error("VMDK descriptor too long");
		return -EINVAL;
	}
	f = pfile_open(path, false, true);
	if (!f)
		return -EIO;
	ret = pfile_pwrite(f, h, 512, 0);
	if (!ret)
		ret = pfile_truncate(f, stream ? (1 + desc_sec) * 512 : overhead * 512);
	if (!ret && desc)
		ret = pfile_pwrite(f, desc, n, 512);
	if (!ret && !stream) {
		/* Both grain directories point at preallocated, zeroed grain tables. */
		for (int r = 0; r < 2 && !ret; r++) {
			uint64_t dir = r ? gd : rgd, bytes = gd_sec * 512;
			uint32_t *t = calloc(1, bytes);

			if (!t) {
				ret = -ENOMEM;
				break;
			}
			for (uint64_t i = 0; i < gd_entries; i++)
				t[i] = htole32((uint32_t)(dir + gd_sec + i * gt_sec));
			ret = pfile_pwrite(f, t, bytes, dir * 512);
			free(t);
		}
	}
	if (!ret)
		ret = pfile_sync(f);
	if (ret)
		log_error("%s: %s", path, strerror(-ret));
	pfile_close(f);
	return ret;
}

/* Extents of VMware Workstation's split sets: 4192256 sectors (2047 MiB), the last one shorter. */
#define VMDK_SPLIT_SECTORS 4192256ULL

/*
 * A descriptor file and its extents: monolithicFlat (one "-flat" file),
 * twoGbMaxExtentFlat ("-f001"...), twoGbMaxExtentSparse ("-s001"...).
 */
static int create_with_extent_files(const char *path, const char *sub, uint64_t sectors,
				    const struct pimg_create_opts *o, uint32_t parent_cid)
{
	bool split = strncmp(sub, "twoGb", 5) == 0, sparse = !strcmp(sub, "twoGbMaxExtentSparse");
	uint64_t per = split ? VMDK_SPLIT_SECTORS : sectors, count = split ? (sectors + per - 1) / per : 1;
	size_t cap = (size_t)count * 1200 + 1, used = 0;
	char *lines, *name = NULL, *st = stem(path), *desc = NULL;
	struct pimg_file *f;
	int n, ret = 0;

	lines = malloc(cap);
	if (!lines || !st) {
		ret = -ENOMEM;
		goto out_free;
	}
	lines[0] = 0;
	for (uint64_t i = 0; i < count && !ret; i++) {
		uint64_t len = MIN(per, sectors - i * per);
		char *epath;

		free(name);
		if ((split ? asprintf(&name, "%s-%c%03" PRIu64 ".vmdk", st, sparse ? 's' : 'f', i + 1)
			   : asprintf(&name, "%s-flat.vmdk", st)) < 0) {
			name = NULL;
			ret = -ENOMEM;
			break;
		}
		used += (size_t)snprintf(lines + used, cap - used, "RW %" PRIu64 " %s \"%s\"%s\n", len,
					 sparse ? "SPARSE" : "FLAT", name, sparse ? "" : " 0");
		if (!sparse) {
			ret = create_flat_file(path, name, len * SECTOR_SIZE);
			continue;
		}
		epath = pimg_path_relative_to(path, name);
		ret = epath ? create_sparse_file(epath, len, NULL, 0, false) : -ENOMEM;
		free(epath);
	}
	if (ret)
		goto out_free;
	desc = malloc(used + 4096);
	n = desc ? make_descriptor(desc, used + 4096, sub, sectors, lines, o, parent_cid) : -ENOMEM;
	if (n < 0) {
		ret = n;
		goto out_free;
	}
	f = pfile_open(path, false, true);
	if (!f) {
		ret = -EIO;
		goto out_free;
	}
	ret = pfile_pwrite(f, desc, (size_t)n, 0);
	if (!ret)
		ret = pfile_sync(f);
	pfile_close(f);
out_free:
	free(desc);
	free(name);
	free(st);
	free(lines);
	return ret;
}

static int vmdk_create(const char *path, const struct pimg_create_opts *o)
{
	const char *sub = o->subformat ? o->subformat : "monolithicSparse";
	uint64_t sectors = o->size / SECTOR_SIZE;
	uint32_t parent_cid = 0xffffffffu;
	bool stream = !strcmp(sub, "streamOptimized");
	char desc[10240], line[1200];
	int n;

	if (o->adapter_type && strcmp(o->adapter_type, "ide") && strcmp(o->adapter_type, "lsilogic") &&
	    strcmp(o->adapter_type, "buslogic") && strcmp(o->adapter_type, "legacyESX")) {
		log_error("adapter_type must be ide, lsilogic, buslogic or legacyESX");
		return -EINVAL;
	}
	if (o->backing_file) {
		struct pimg *p;
		char *pp;

		if (strcmp(sub, "monolithicSparse")) {
			log_error("only monolithicSparse VMDK images can have a backing file");
			return -EINVAL;
		}
		pp = pimg_path_relative_to(path, o->backing_file);
		/* The operator's name: its extents (monolithicFlat) may be next to it. */
		p = pp ? pimg_open_with(pp, "vmdk", PIMG_O_RDONLY | PIMG_O_NO_BACKING,
					&(struct pimg_open_policy){ .allow_external = true })
		       : NULL;
		free(pp);
		if (!p) {
			log_error("the backing file of a VMDK must be a VMDK");
			return -EINVAL;
		}
		parent_cid = ((struct vmdk *)p->priv)->cid;
		pimg_close(p);
	}
	if (sectors > (1ULL << 32) * 128 / 2) {
		log_error("VMDK images are limited to 2 TiB here");
		return -EFBIG;
	}
	if (!strcmp(sub, "monolithicFlat") || !strcmp(sub, "twoGbMaxExtentFlat") ||
	    !strcmp(sub, "twoGbMaxExtentSparse"))
		return create_with_extent_files(path, sub, sectors, o, parent_cid);
	if (strcmp(sub, "monolithicSparse") && !stream) {
		log_error("VMDK subformat must be monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, "
			  "twoGbMaxExtentFlat or streamOptimized");
		return -EINVAL;
	}
	snprintf(line, sizeof(line), "RW %" PRIu64 " SPARSE \"%s\"\n", sectors, base_name(path));
	n = make_descriptor(desc, sizeof(desc), sub, sectors, line, o, parent_cid);
	if (n < 0)
		return -EINVAL;
	return create_sparse_file(path, sectors, desc, (size_t)n, stream);
}

static int vmdk_info(struct pimg *img, struct pimg_info *info)
{
	struct vmdk *v = img->priv;

	for (unsigned i = 0; i < v->n_ext; i++) {
		if (v->ext[i].type == EXT_SPARSE) {
			info->cluster_size = (uint32_t)v->ext[i].sp->grain;
			break;
		}
	}
	pimg_info_add_str(info, "create-type", v->create_type);
	pimg_info_add_num(info, "cid", v->cid);
	pimg_info_add_num(info, "parent-cid", v->parent_cid);
	pimg_info_add_num(info, "extents", v->n_ext);
	if (v->desc_version)
		pimg_info_add_num(info, "descriptor-version", v->desc_version);
	if (v->adapter_type[0])
		pimg_info_add_str(info, "adapter-type", v->adapter_type);
	if (v->hw_version[0])
		pimg_info_add_str(info, "hardware-version", v->hw_version);
	if (v->tools_version[0])
		pimg_info_add_str(info, "tools-version", v->tools_version);
	if (v->uuid[0])
		pimg_info_add_str(info, "uuid", v->uuid);
	if (v->long_content_id[0])
		pimg_info_add_str(info, "long-content-id", v->long_content_id);
	if (v->encoding[0])
		pimg_info_add_str(info, "encoding", v->encoding);
	if (v->thin >= 0)
		pimg_info_add_bool(info, "thin-provisioned", v->thin);
	return 0;
}

/* GD/GT entries inside the file, grains not overlapping the metadata. */
static int vmdk_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	struct vmdk *v = img->priv;

	res->image_end_offset = img->file->size;
	for (unsigned i = 0; i < v->n_ext; i++) {
		struct extent *e = &v->ext[i];
		struct sparse *s = e->sp;
		uint64_t meta_end;

		if (e->type != EXT_SPARSE || s->stream_writer)
			continue;
		meta_end = MAX(s->data_start, MAX(s->gd_off, s->rgd_off) + (uint64_t)s->gd_entries * 4);
		for (uint32_t d = 0; d < s->gd_entries; d++) {
			struct gt_entry *gt;

			if (!s->gd[d])
				continue;
			if (gt_get(img, e, (uint64_t)s->gd[d] * SECTOR_SIZE, false, &gt)) {
				res->corruptions++;
				continue;
			}
			for (uint32_t j = 0; j < s->gtes; j++) {
				uint64_t host = (uint64_t)gt->t[j] * SECTOR_SIZE;

				if (gt->t[j] <= 1)
					continue;
				res->allocated_clusters++;
				if (host < meta_end || host >= e->file->size) {
					check_log(res, "%s: ERROR grain %" PRIu64 " at %#" PRIx64 " invalid", img->path,
						  (uint64_t)d * s->gtes + j, host);
					res->corruptions++;
				}
			}
		}
		res->total_clusters += (e->sectors * SECTOR_SIZE + s->grain - 1) / s->grain;
	}
	return 0;
}

const struct pimg_format pimg_fmt_vmdk = {
	.name = "vmdk",
	.create_keys = vmdk_create_keys,
	.probe = vmdk_probe,
	.open = vmdk_open,
	.close = vmdk_close,
	.create = vmdk_create,
	.block_status = vmdk_block_status,
	.read = vmdk_read,
	.write = vmdk_write,
	.write_zeroes = vmdk_write_zeroes,
	.compress = vmdk_compress,
	.write_compressed = vmdk_write_compressed,
	.flush = vmdk_flush,
	.info = vmdk_info,
	.check = vmdk_check,
};
