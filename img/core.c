// SPDX-License-Identifier: MIT
/*
 * The generic layer: opening (probe, backing chain), and every request's path
 * from the public API to a format's callbacks. Alignment, splitting at the
 * format's granule, zero detection and backing reads live here, once.
 *
 * Request path:
 *   pimg_pread/pwrite  -> range check -> unaligned head/tail through a 512-byte
 *   bounce (read-modify-write) -> split at granule boundaries -> format.
 *   Reads ask the format's block_status per piece: DATA is read by the format,
 *   ZERO is memset, UNALLOCATED comes from the backing image (or zeros).
 *
 * Backing chains: each backing image is opened read-only with depth + 1; depth is
 * limited to MAX_BACKING_DEPTH and a file (device, inode) that is already in the
 * chain is refused, so hostile loops end with an error, not a spin.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "img-internal.h"

static const struct pimg_format *const formats[] = {
	&pimg_fmt_qcow2, &pimg_fmt_vhdx, &pimg_fmt_vpc, &pimg_fmt_vmdk, &pimg_fmt_vdi,
	&pimg_fmt_parallels, &pimg_fmt_raw,
};

const struct pimg_format *pimg_find_format(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(formats); i++)
		if (!strcmp(formats[i]->name, name))
			return formats[i];
	/* qemu-img's names and common aliases */
	if (!strcmp(name, "vhd"))
		return &pimg_fmt_vpc;
	return NULL;
}

bool pimg_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t w;

	while (len && ((uintptr_t)p & 7)) {
		if (*p)
			return false;
		p++;
		len--;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		if (w)
			return false;
		p += 8;
		len -= 8;
	}
	while (len) {
		if (*p)
			return false;
		p++;
		len--;
	}
	return true;
}

void pimg_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n <= 0) {
			/* getrandom on Linux >= 3.17 does not fail for small sizes; be safe */
			for (size_t i = 0; i < len; i++)
				p[i] = (uint8_t)(rand() ^ (int)i);
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

uint32_t pimg_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void pimg_sort_u32(uint32_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u32);
}

char *pimg_path_relative_to(const char *base, const char *name)
{
	char *copy, *dir, *out;

	if (name[0] == '/')
		return strdup(name);
	copy = strdup(base);
	if (!copy)
		return NULL;
	dir = dirname(copy);
	if (asprintf(&out, "%s/%s", dir, name) < 0)
		out = NULL;
	free(copy);
	return out;
}

/* ---- probing and opening ------------------------------------------------- */

/*
 * Magics of formats plinth does not read (and of containers a disk image often
 * arrives in). A file that carries one is never taken for raw: the user is told
 * what it looks like and may still say -f raw.
 */
struct foreign_magic {
	const char *what;
	const char *hint; /* what to do, or "" */
	const char *magic;
	uint8_t len;
	uint16_t off;   /* in the head, or from the start of the last 512 bytes */
	bool in_tail;
};

static const struct foreign_magic foreign_magics[] = {
	{ "a QED image", "", "QED\0", 4, 0, false },
	{ "a cloop compressed image", "", "#!/bin/sh\n#V2.0 Format\n", 23, 0, false },
	{ "a Bochs image", "", "Bochs Virtual HD Image", 22, 0, false },
	{ "a User-Mode Linux COW image", "", "OOOM", 4, 0, false },
	{ "a LUKS encrypted volume", "", "LUKS\xba\xbe", 6, 0, false },
	{ "an Apple disk image (DMG)", "", "koly", 4, 0, true },
	{ "a gzip-compressed file", "; decompress it first", "\x1f\x8b\x08", 3, 0, false },
	{ "an xz-compressed file", "; decompress it first", "\xfd" "7zXZ\0", 6, 0, false },
	{ "a zstd-compressed file", "; decompress it first", "\x28\xb5\x2f\xfd", 4, 0, false },
	{ "a bzip2-compressed file", "; decompress it first", "BZh", 3, 0, false },
	{ "a tar archive (an OVA?)", "; extract the disk image from it first", "ustar", 5, 257, false },
};

/*
 * The best-scoring format for a file, or NULL; then *foreign names the format of
 * another tool it looks like, if any (NULL: no known magic, raw data).
 */
static const struct pimg_format *probe_file(struct pimg_file *f, const struct foreign_magic **foreign)
{
	uint8_t head[65536], tail[512];
	size_t head_len = (size_t)MIN(f->size, sizeof(head));
	const struct pimg_format *best = NULL;
	int best_score = 0;

	*foreign = NULL;
	if (pfile_pread(f, head, head_len, 0, true))
		return NULL;
	bool have_tail = f->size >= sizeof(tail) &&
			 !pfile_pread(f, tail, sizeof(tail), f->size - sizeof(tail), true);

	for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
		int s;

		if (!formats[i]->probe)
			continue;
		s = formats[i]->probe(head, head_len, have_tail ? tail : NULL, f->size);
		if (s > best_score) {
			best_score = s;
			best = formats[i];
		}
	}
	for (size_t i = 0; !best && i < ARRAY_SIZE(foreign_magics); i++) {
		const struct foreign_magic *m = &foreign_magics[i];
		const uint8_t *p = m->in_tail ? (have_tail ? tail : NULL) : head;
		size_t plen = m->in_tail ? sizeof(tail) : head_len;

		if (p && m->off + m->len <= plen && !memcmp(p + m->off, m->magic, m->len))
			*foreign = m;
	}
	return best;
}

const char *pimg_probe(const char *path)
{
	struct pimg_file *f = pfile_open(path, true, false);
	const struct pimg_format *fmt;
	const struct foreign_magic *foreign;

	if (!f)
		return NULL;
	fmt = probe_file(f, &foreign);
	pfile_close(f);
	return fmt ? fmt->name : NULL;
}

/* ---- external files: backing files, parents, extents ------------------------------ */

/*
 * Every file an image names is opened by resolve_external(), under the policy the
 * caller gave pimg_open_with() (held as a struct pimg_trust, shared by the chain):
 *   1. no policy: refused;
 *   2. the name (relative names from the naming image's directory) is cleaned up
 *      lexically ("." and ".." folded), so what remains below any directory has no
 *      ".." in it;
 *   3. each leading directory of it is looked up until one is an allowed directory
 *      (compared by device and inode, so a path that reaches it by another spelling
 *      is recognised); none: refused;
 *   4. the rest is walked from that directory's own descriptor with O_NOFOLLOW at
 *      every step: a symbolic link, a missing file, a FIFO or device (a block device
 *      unless allowed) is refused. The file is looked at through O_PATH before it is
 *      opened, and must be the same inode afterwards.
 * Only openat and fstat are used, which the VMM's seccomp filters allow (a migration's
 * destination reopens its disks under them).
 */

#define MAX_NAME_LEN 4095
#define MAX_TRUST_DIRS 64

struct trust_root {
	int fd;      /* O_PATH descriptor of the directory */
	dev_t dev;
	ino_t ino;
	char *path;  /* as given, owned: for messages and the names of files found below */
};

struct pimg_trust {
	bool allow_block_devices;
	size_t n_roots;
	struct trust_root roots[];
};

static void trust_free(struct pimg_trust *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_roots; i++) {
		close(t->roots[i].fd);
		free(t->roots[i].path);
	}
	free(t);
}

/* The directory part of path (malloc'd), "." for a bare name. */
static char *dir_of(const char *path)
{
	char *copy = strdup(path), *out;

	if (!copy)
		return NULL;
	out = strdup(dirname(copy));
	free(copy);
	return out;
}

/* Open dir (owned, freed on failure) as the next allowed directory of t. */
static int trust_add(struct pimg_trust *t, char *dir)
{
	struct trust_root *r = &t->roots[t->n_roots];
	struct stat st;
	int err;

	if (!dir)
		return -ENOMEM;
	r->fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (r->fd < 0 || fstat(r->fd, &st)) {
		err = errno;
		log_error("%s: %s (a directory allowed for external files)", dir, strerror(err));
		if (r->fd >= 0)
			close(r->fd);
		free(dir);
		return -err;
	}
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->path = dir;
	t->n_roots++;
	return 0;
}

/* The chain's trust for an image at path under policy p; NULL on error (logged). */
static struct pimg_trust *trust_new(const char *path, const struct pimg_open_policy *p)
{
	struct pimg_trust *t;
	size_t n = 1;

	for (const char *const *d = p->dirs; d && *d; d++)
		n++;
	if (n > MAX_TRUST_DIRS) {
		log_error("%s: too many directories allowed for external files (at most %d)", path,
			  MAX_TRUST_DIRS - 1);
		return NULL;
	}
	t = calloc(1, sizeof(*t) + n * sizeof(t->roots[0]));
	if (!t) {
		log_error("%s: out of memory", path);
		return NULL;
	}
	t->allow_block_devices = p->allow_block_devices;
	if (trust_add(t, dir_of(path)))
		goto out_free;
	for (const char *const *d = p->dirs; d && *d; d++)
		if (trust_add(t, strdup(*d)))
			goto out_free;
	return t;

out_free:
	trust_free(t);
	return NULL;
}

/* Walk comps[0..n) down from root r without following links; see the comment above. */
static int walk_beneath(const struct pimg_trust *t, size_t r, char **comps, size_t n, bool rdonly,
			int *fdp, struct stat *stp, char *why, size_t why_len)
{
	int dfd = t->roots[r].fd, fd = -1, real, fl, ret;
	struct stat st, st2;

	for (size_t i = 0; i + 1 < n; i++) {
		int next = openat(dfd, comps[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (next < 0) {
			ret = -errno;
			if (ret == -ENOTDIR || ret == -ELOOP)
				snprintf(why, why_len, "'%s' is a symbolic link or not a directory", comps[i]);
			else
				snprintf(why, why_len, "'%s': %s", comps[i], strerror(-ret));
			goto out_close_dir;
		}
		if (dfd != t->roots[r].fd)
			close(dfd);
		dfd = next;
	}
	fd = openat(dfd, comps[n - 1], O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		snprintf(why, why_len, "%s", strerror(-ret));
		goto out_close_fd;
	}
	ret = -EPERM;
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, why_len, "it is a symbolic link");
		goto out_close_fd;
	}
	if (S_ISBLK(st.st_mode) && !t->allow_block_devices) {
		snprintf(why, why_len, "it is a block device (not allowed)");
		goto out_close_fd;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(why, why_len, "it is not a regular file");
		goto out_close_fd;
	}
	ret = 0;
	if (stp)
		*stp = st;
	if (!fdp)
		goto out_close_fd;
	/* O_NONBLOCK: should the name have become a FIFO meanwhile, the open must not hang. */
	real = openat(dfd, comps[n - 1],
		      (rdonly ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (real < 0) {
		ret = -errno;
		snprintf(why, why_len, "%s", strerror(-ret));
		goto out_close_fd;
	}
	if (fstat(real, &st2) || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
	    (fl = fcntl(real, F_GETFL)) < 0 || fcntl(real, F_SETFL, fl & ~O_NONBLOCK)) {
		close(real);
		ret = -EAGAIN;
		snprintf(why, why_len, "it changed while it was being opened");
		goto out_close_fd;
	}
	*fdp = real;
out_close_fd:
	if (fd >= 0)
		close(fd);
out_close_dir:
	if (dfd != t->roots[r].fd)
		close(dfd);
	return ret;
}

/*
 * Resolve name, read from img, under the chain's trust. With fdp, open it (read-only
 * if rdonly) and return the descriptor there and its path in *resolved (owned);
 * without, only check. *stp (if given): the file's fstat. 0, or -errno with the
 * reason in why.
 */
static int resolve_external(const struct pimg *img, const char *name, bool rdonly, int *fdp,
			    struct stat *stp, char **resolved, char *why, size_t why_len)
{
	const struct pimg_trust *t = img->trust;
	size_t len = strlen(name), n = 0, n_up = 0, plen;
	char *full = NULL, *dir, *prefix = NULL, **comps = NULL, *save = NULL, *tok;
	bool absolute;
	int ret;

	if (!t) {
		snprintf(why, why_len, "external files are not allowed (plinth-img --allow-backing; "
				       "plinth --disk ...,backing=on)");
		return -EPERM;
	}
	if (!len || len > MAX_NAME_LEN || memchr(name, '\\', len)) {
		snprintf(why, why_len, "not a usable file name");
		return -EINVAL;
	}
	if (name[0] == '/') {
		full = strdup(name);
	} else {
		dir = dir_of(img->path);
		if (!dir || asprintf(&full, "%s/%s", dir, name) < 0)
			full = NULL;
		free(dir);
	}
	ret = -ENOMEM;
	if (!full)
		goto out;
	plen = strlen(full) + 2;
	absolute = full[0] == '/';
	comps = calloc(plen / 2 + 1, sizeof(*comps));
	prefix = malloc(plen);
	if (!comps || !prefix)
		goto out;
	for (tok = strtok_r(full, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (n > n_up)
				n--;
			else if (!absolute)
				comps[n++] = tok, n_up++;
			continue;
		}
		comps[n++] = tok;
	}
	ret = -EINVAL;
	if (n == n_up) {
		snprintf(why, why_len, "it names a directory");
		goto out;
	}
	/* Find the shortest leading directory that is an allowed one. */
	for (size_t k = n_up; k < n; k++) {
		size_t pos = 0;
		struct stat st;
		int pfd;

		prefix[0] = 0;
		if (absolute)
			prefix[pos++] = '/';
		for (size_t i = 0; i < k; i++)
			pos += (size_t)sprintf(prefix + pos, "%s%s", i ? "/" : "", comps[i]);
		if (!pos)
			strcpy(prefix, ".");
		else
			prefix[pos] = 0;
		pfd = open(prefix, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			break; /* longer prefixes cannot exist either */
		ret = fstat(pfd, &st) ? -errno : 0;
		close(pfd);
		if (ret)
			break;
		for (size_t r = 0; r < t->n_roots; r++) {
			if (t->roots[r].dev != st.st_dev || t->roots[r].ino != st.st_ino)
				continue;
			ret = walk_beneath(t, r, comps + k, n - k, rdonly, fdp, stp, why, why_len);
			if (!ret && resolved) {
				char *out = malloc(strlen(t->roots[r].path) + plen + 1);
				size_t pos2;

				if (!out) {
					if (fdp)
						close(*fdp);
					ret = -ENOMEM;
					goto out;
				}
				/* "." + "/base" reads better as "base" */
				pos2 = strcmp(t->roots[r].path, ".")
					       ? (size_t)sprintf(out, "%s/", t->roots[r].path)
					       : 0;
				for (size_t i = k; i < n; i++)
					pos2 += (size_t)sprintf(out + pos2, "%s%s", comps[i],
								i + 1 < n ? "/" : "");
				*resolved = out;
			}
			goto out;
		}
	}
	ret = -EPERM;
	{
		size_t pos = (size_t)snprintf(why, why_len,
					      "outside the allowed directories: the image's own (%s)",
					      t->roots[0].path);

		for (size_t r = 1; r < t->n_roots && pos < why_len; r++)
			pos += (size_t)snprintf(why + pos, why_len - pos, ", %s", t->roots[r].path);
	}
out:
	if (ret == -ENOMEM)
		snprintf(why, why_len, "out of memory");
	free(comps);
	free(prefix);
	free(full);
	return ret;
}

bool pimg_external_allowed(const struct pimg *img)
{
	return img->trust;
}

int pimg_external_find(const struct pimg *img, const char *name, struct stat *st)
{
	char why[256];

	return resolve_external(img, name, true, NULL, st, NULL, why, sizeof(why));
}

struct pimg_file *pimg_open_external(struct pimg *img, const char *name, bool rdonly,
				     const char *what)
{
	char why[512], *path = NULL;
	int fd = -1, ret;
	struct pimg_file *f;

	ret = resolve_external(img, name, rdonly, &fd, NULL, &path, why, sizeof(why));
	if (ret) {
		log_error("%s: refusing %s '%s': %s", img->path, what, name, why);
		return NULL;
	}
	f = pfile_from_fd(fd, path, rdonly, img->flags & PIMG_O_NOLOCK);
	free(path);
	return f;
}

static struct pimg *open_chain(struct pimg_file *file, const char *path, const char *format,
			       unsigned flags, unsigned depth, const struct pimg *child,
			       struct pimg_trust *trust);

/* Hex of an identity, for messages. */
static void id_hex(char *out, const uint8_t *id, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
	out[2 * len] = 0;
}

/*
 * Open img's backing file (read-only, or writable for commit) into *out, under the
 * chain's policy, and check it is the parent img was made from. A refusal is one
 * line; with PIMG_O_BACKING_REPORT it is kept in img->backing_refused instead and
 * 0 returned with *out NULL.
 */
static int open_backing(struct pimg *img, bool writable, struct pimg **out)
{
	char why[512], *bpath = NULL, *line;
	struct pimg_file *f;
	struct pimg *b;
	int fd = -1, ret;

	*out = NULL;
	if (img->depth >= MAX_BACKING_DEPTH) {
		log_error("%s: backing chain deeper than %d images", img->path, MAX_BACKING_DEPTH);
		return -ELOOP;
	}
	ret = resolve_external(img, img->backing_name, !writable, &fd, NULL, &bpath, why, sizeof(why));
	if (ret)
		goto out_refuse;
	f = pfile_from_fd(fd, bpath, !writable, img->flags & PIMG_O_NOLOCK);
	if (!f) {
		free(bpath);
		return -EIO;
	}
	b = open_chain(f, bpath, img->backing_fmt,
		       (writable ? 0 : PIMG_O_RDONLY) |
			       (img->flags & (PIMG_O_NOLOCK | PIMG_O_BACKING_REPORT)),
		       img->depth + 1, img, img->trust);
	free(bpath);
	if (!b)
		return -EINVAL;
	if (img->parent_id_len &&
	    (b->id_len != img->parent_id_len || memcmp(b->id, img->parent_id, b->id_len))) {
		char want[33], have[33];

		id_hex(want, img->parent_id, img->parent_id_len);
		id_hex(have, b->id, b->id_len);
		snprintf(why, sizeof(why),
			 "not the parent this image was made from (it records id %s, %s has %s)", want,
			 b->path, b->id_len ? have : "none");
		pimg_close(b);
		ret = -EINVAL;
		goto out_refuse;
	}
	*out = b;
	return 0;

out_refuse:
	if (asprintf(&line, "%s: refusing backing file '%s': %s", img->path, img->backing_name, why) < 0)
		return -ENOMEM;
	if ((img->flags & PIMG_O_BACKING_REPORT) && !writable) {
		free(img->backing_refused);
		img->backing_refused = line;
		return 0;
	}
	log_error("%s", line);
	free(line);
	return ret;
}

/* Open the image on file (ownership passes, closed on failure). */
static struct pimg *open_chain(struct pimg_file *file, const char *path, const char *format,
			       unsigned flags, unsigned depth, const struct pimg *child,
			       struct pimg_trust *trust)
{
	bool rdonly = flags & PIMG_O_RDONLY;
	struct pimg *img;
	struct stat st;
	int ret;

	img = calloc(1, sizeof(*img));
	if (!img) {
		log_error("%s: out of memory", path);
		pfile_close(file);
		return NULL;
	}
	img->file = file;
	img->path = strdup(path);
	if (!img->path) {
		log_error("%s: out of memory", path);
		goto out_close_file;
	}
	img->flags = flags;
	img->depth = depth;
	img->trust = trust;
	img->file->unsafe = flags & PIMG_O_UNSAFE;
	if (fstat(img->file->fd, &st)) {
		log_error("%s: %s", path, strerror(errno));
		goto out_close_file;
	}
	if (child) {
		memcpy(img->chain_ids, child->chain_ids, sizeof(img->chain_ids));
		for (unsigned i = 0; i < depth; i++) {
			if (img->chain_ids[i][0] == (uint64_t)st.st_dev &&
			    img->chain_ids[i][1] == (uint64_t)st.st_ino) {
				log_error("%s: backing chain loop (file is already in the chain)", path);
				goto out_close_file;
			}
		}
	}
	img->chain_ids[depth][0] = (uint64_t)st.st_dev;
	img->chain_ids[depth][1] = (uint64_t)st.st_ino;

	if (format) {
		img->fmt = pimg_find_format(format);
		if (!img->fmt) {
			log_error("%s: unknown format '%s'", path, format);
			goto out_close_file;
		}
	} else {
		const struct foreign_magic *foreign;

		img->fmt = probe_file(img->file, &foreign);
		if (!img->fmt && depth) {
			/* A name read from the child is no licence to read a file as a raw disk. */
			log_error("%s: backing file with no recorded format and no recognised header; "
				  "refusing to read it as raw (record its format in the image)", path);
			goto out_close_file;
		}
		if (!img->fmt && foreign) {
			log_error("%s: looks like %s, which plinth-img does not read%s (-f raw would "
				  "read the file's bytes as a disk)", path, foreign->what, foreign->hint);
			goto out_close_file;
		}
		if (!img->fmt) {
			if (!rdonly) {
				log_error("%s: no recognised image header; refusing to guess raw for a "
					  "writable image (give the format explicitly: raw)", path);
				goto out_close_file;
			}
			img->fmt = &pimg_fmt_raw;
		}
	}
	ret = img->fmt->open(img);
	if (ret) {
		if (ret == -ENOMEM)
			log_error("%s: out of memory", path);
		goto out_close_file;
	}
	if (!is_pow2(img->granule) || img->granule < SECTOR_SIZE ||
	    (!img->fmt->byte_granular && img->size % SECTOR_SIZE)) {
		log_error("%s: internal: bad granule or size", path);
		goto out_close_fmt;
	}
	if (img->backing_name && !(flags & PIMG_O_NO_BACKING)) {
		if (open_backing(img, false, &img->backing))
			goto out_close_fmt;
	}
	return img;

out_close_fmt:
	img->fmt->close(img);
out_close_file:
	pfile_close(img->file);
	free(img->backing_name);
	free(img->backing_fmt);
	free(img->backing_refused);
	free(img->path);
	free(img);
	return NULL;
}

/* pimg_open_with and pimg_open_fd: fd < 0 opens path. */
static struct pimg *open_top(int fd, const char *path, const char *format, unsigned flags,
			     const struct pimg_open_policy *policy)
{
	struct pimg_trust *trust = NULL;
	struct pimg_file *f;
	struct pimg *img;

	if ((flags & PIMG_O_BACKING_REPORT) && !(flags & PIMG_O_RDONLY)) {
		log_error("%s: PIMG_O_BACKING_REPORT needs a read-only open", path);
		goto out_close;
	}
	if (policy && policy->allow_external) {
		trust = trust_new(path, policy);
		if (!trust)
			goto out_close;
	}
	if (fd >= 0)
		f = pfile_from_fd(fd, path, flags & PIMG_O_RDONLY, flags & PIMG_O_NOLOCK);
	else
		f = pfile_open_lock(path, flags & PIMG_O_RDONLY, false, flags & PIMG_O_NOLOCK);
	fd = -1; /* pfile_from_fd took it, on failure too */
	if (!f) {
		trust_free(trust);
		return NULL;
	}
	img = open_chain(f, path, format, flags, 0, NULL, trust);
	if (!img)
		trust_free(trust);
	return img;

out_close:
	if (fd >= 0)
		close(fd);
	return NULL;
}

struct pimg *pimg_open_with(const char *path, const char *format, unsigned flags,
			    const struct pimg_open_policy *policy)
{
	return open_top(-1, path, format, flags, policy);
}

struct pimg *pimg_open_fd(int fd, const char *name, const char *format, unsigned flags,
			  const struct pimg_open_policy *policy)
{
	if (fd < 0) {
		log_error("%s: no file descriptor", name);
		return NULL;
	}
	return open_top(fd, name, format, flags, policy);
}

void pimg_drop_dirs(struct pimg *img)
{
	struct pimg_trust *t = img ? img->trust : NULL;

	for (struct pimg *i = img; i; i = i->backing)
		i->trust = NULL;
	trust_free(t);
}

struct pimg *pimg_open(const char *path, const char *format, unsigned flags)
{
	return pimg_open_with(path, format, flags, NULL);
}

void pimg_close(struct pimg *img)
{
	if (!img)
		return;
	if (!(img->flags & PIMG_O_RDONLY))
		pimg_flush(img);
	pimg_close(img->backing);
	pimg_compressor_free(img->comp);
	free(img->comp_out);
	img->fmt->close(img);
	pfile_close(img->file);
	if (!img->depth)
		trust_free(img->trust);
	free(img->backing_name);
	free(img->backing_fmt);
	free(img->backing_refused);
	free(img->path);
	free(img);
}

uint64_t pimg_size(const struct pimg *img)
{
	return img->size;
}

const char *pimg_format(const struct pimg *img)
{
	return img->fmt->name;
}

uint32_t pimg_granule(const struct pimg *img)
{
	return img->granule;
}

bool pimg_read_only(const struct pimg *img)
{
	return img->flags & PIMG_O_RDONLY;
}

struct pimg *pimg_backing(const struct pimg *img)
{
	return img->backing;
}

const char *pimg_filename(const struct pimg *img)
{
	return img->path;
}

const char *pimg_backing_refusal(const struct pimg *img)
{
	return img->backing_refused;
}

int pimg_set_io_helper(struct pimg *img)
{
	return pfile_start_helper(img->file);
}

bool pimg_sequential_only(const struct pimg *img)
{
	return img->sequential_only;
}

/* ---- reads ----------------------------------------------------------------- */

static uint64_t piece_len(const struct pimg *img, uint64_t off, uint64_t len)
{
	return MIN(len, img->granule - (off & (img->granule - 1)));
}

int pimg_read_backing(struct pimg *img, void *buf, uint64_t len, uint64_t off)
{
	uint64_t bsize, n;

	if (!img->backing) {
		/* Zeros only where the caller asked not to open it (PIMG_O_NO_BACKING). */
		if (img->backing_name && !(img->flags & PIMG_O_NO_BACKING))
			return -ENOENT;
		memset(buf, 0, len);
		return 0;
	}
	bsize = pimg_size(img->backing);
	n = off < bsize ? MIN(len, bsize - off) : 0;
	if (n) {
		int ret = pimg_pread(img->backing, buf, n, off);

		if (ret)
			return ret;
	}
	memset((uint8_t *)buf + n, 0, len - n);
	return 0;
}

static int read_aligned(struct pimg *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		uint64_t n = piece_len(img, off, len), pnum = 0;
		int st, ret;

		st = img->fmt->block_status(img, off, n, &pnum);
		if (st < 0)
			return st;
		if (!pnum || pnum > n)
			return -EIO;
		switch (st) {
		case PIMG_DATA:
			ret = img->fmt->read(img, buf, pnum, off);
			break;
		case PIMG_ZERO:
			memset(buf, 0, pnum);
			ret = 0;
			break;
		default:
			ret = pimg_read_backing(img, buf, pnum, off);
			break;
		}
		if (ret)
			return ret;
		buf += pnum;
		off += pnum;
		len -= pnum;
	}
	return 0;
}

static int pread_pieces(struct pimg *img, void *buf, size_t len, uint64_t off)
{
	uint8_t bounce[SECTOR_SIZE], *p = buf;
	int ret;

	if (off % SECTOR_SIZE) {
		uint64_t s = off - off % SECTOR_SIZE, skip = off - s, n = MIN(len, SECTOR_SIZE - skip);

		ret = read_aligned(img, bounce, SECTOR_SIZE, s);
		if (ret)
			return ret;
		memcpy(p, bounce + skip, n);
		p += n;
		off += n;
		len -= n;
	}
	if (len >= SECTOR_SIZE) {
		uint64_t n = len - len % SECTOR_SIZE;

		ret = read_aligned(img, p, n, off);
		if (ret)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	if (len) {
		ret = read_aligned(img, bounce, SECTOR_SIZE, off);
		if (ret)
			return ret;
		memcpy(p, bounce, len);
	}
	return 0;
}

/* Begin and end a request on img's file: its data transfers may merge (img->batched). */
static void batch_begin(struct pimg *img, const void *buf, uint64_t len)
{
	if (img->batched)
		pfile_batch_begin(img->file, buf, len);
}

static int batch_end(struct pimg *img, int ret)
{
	int sent = img->batched ? pfile_batch_end(img->file) : 0;

	return ret ? ret : sent;
}

int pimg_pread(struct pimg *img, void *buf, size_t len, uint64_t off)
{
	int ret;

	if (!range_within(off, len, img->size))
		return -EINVAL;
	if (!len)
		return 0;
	if (img->fmt->byte_granular)
		return img->fmt->read(img, buf, len, off);
	batch_begin(img, buf, len);
	ret = pread_pieces(img, buf, len, off);
	return batch_end(img, ret);
}

/* ---- writes ---------------------------------------------------------------- */

static int write_aligned(struct pimg *img, const uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		uint64_t n = piece_len(img, off, len);
		int ret = -ENOTSUP;

		/* Whole granules of zeros become zero clusters where the format has them. */
		if (n == img->granule && img->fmt->write_zeroes && pimg_is_zero(buf, n))
			ret = img->fmt->write_zeroes(img, n, off, false);
		if (ret == -ENOTSUP)
			ret = img->fmt->write(img, buf, n, off);
		if (ret)
			return ret;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int check_writable(struct pimg *img, uint64_t off, uint64_t len)
{
	if (img->flags & PIMG_O_RDONLY)
		return -EROFS;
	if (!range_within(off, len, img->size))
		return -EINVAL;
	return 0;
}

static int pwrite_pieces(struct pimg *img, const void *buf, size_t len, uint64_t off)
{
	uint8_t bounce[SECTOR_SIZE];
	const uint8_t *p = buf;
	int ret;

	if (off % SECTOR_SIZE) {
		uint64_t s = off - off % SECTOR_SIZE, skip = off - s, n = MIN(len, SECTOR_SIZE - skip);

		ret = read_aligned(img, bounce, SECTOR_SIZE, s);
		if (ret)
			return ret;
		memcpy(bounce + skip, p, n);
		ret = write_aligned(img, bounce, SECTOR_SIZE, s);
		if (ret)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	if (len >= SECTOR_SIZE) {
		uint64_t n = len - len % SECTOR_SIZE;

		ret = write_aligned(img, p, n, off);
		if (ret)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	if (len) {
		ret = read_aligned(img, bounce, SECTOR_SIZE, off);
		if (ret)
			return ret;
		memcpy(bounce, p, len);
		ret = write_aligned(img, bounce, SECTOR_SIZE, off);
	}
	return ret;
}

int pimg_pwrite(struct pimg *img, const void *buf, size_t len, uint64_t off)
{
	int ret;

	ret = check_writable(img, off, len);
	if (ret || !len)
		return ret;
	if (img->fmt->byte_granular)
		return img->fmt->write(img, buf, len, off);
	batch_begin(img, buf, len);
	ret = pwrite_pieces(img, buf, len, off);
	return batch_end(img, ret);
}

/* ---- vectored requests ------------------------------------------------------ */

/* The bytes of n buffers, or -1 when n is negative or they overflow. */
static int64_t iov_bytes(const struct iovec *iov, int n)
{
	uint64_t len = 0;

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (add_overflow(len, (uint64_t)iov[i].iov_len, &len) || len > (uint64_t)INT64_MAX)
			return -1;
	return (int64_t)len;
}

/*
 * One request of n buffers, as pimg_pread/pwrite of each in turn would do it: raw in
 * preadv/pwritev calls on its file; a batched format with its data transfers merged
 * across the buffers (each buffer a window of one batch); others a buffer at a time.
 */
static int rwv(struct pimg *img, const struct iovec *iov, int n, uint64_t off, bool write)
{
	int64_t len = iov_bytes(iov, n);
	int ret = 0;

	if (len < 0)
		return -EINVAL;
	ret = write ? check_writable(img, off, (uint64_t)len)
		    : range_within(off, (uint64_t)len, img->size) ? 0 : -EINVAL;
	if (ret || !len)
		return ret;
	if (img->fmt->byte_granular)
		return pfile_rwv(img->file, iov, n, (uint64_t)len, off, write);
	batch_begin(img, NULL, 0);
	for (int i = 0; i < n && !ret; off += iov[i].iov_len, i++) {
		if (!iov[i].iov_len)
			continue;
		if (img->batched)
			pfile_batch_window(img->file, iov[i].iov_base, iov[i].iov_len);
		ret = write ? pwrite_pieces(img, iov[i].iov_base, iov[i].iov_len, off)
			    : pread_pieces(img, iov[i].iov_base, iov[i].iov_len, off);
	}
	return batch_end(img, ret);
}

int pimg_preadv(struct pimg *img, const struct iovec *iov, int n, uint64_t off)
{
	return rwv(img, iov, n, off, false);
}

int pimg_pwritev(struct pimg *img, const struct iovec *iov, int n, uint64_t off)
{
	return rwv(img, iov, n, off, true);
}

#define ZERO_CHUNK (256 * 1024)

int pimg_write_zeroes(struct pimg *img, uint64_t off, uint64_t len)
{
	uint8_t *zeros = NULL;
	int ret;

	ret = check_writable(img, off, len);
	if (ret || !len)
		return ret;
	while (len) {
		uint64_t n = img->fmt->byte_granular ? MIN(len, ZERO_CHUNK) : piece_len(img, off, len);

		ret = -ENOTSUP;
		if (img->fmt->write_zeroes && !(off % SECTOR_SIZE) && !(n % SECTOR_SIZE))
			ret = img->fmt->write_zeroes(img, n, off, true);
		if (ret == -ENOTSUP) {
			if (!zeros) {
				zeros = calloc(1, ZERO_CHUNK);
				if (!zeros)
					return -ENOMEM;
			}
			n = MIN(n, ZERO_CHUNK);
			ret = pimg_pwrite(img, zeros, n, off);
		}
		if (ret)
			break;
		off += n;
		len -= n;
	}
	free(zeros);
	return ret;
}

int pimg_discard(struct pimg *img, uint64_t off, uint64_t len)
{
	int ret;

	ret = check_writable(img, off, len);
	if (ret || !len || !img->fmt->discard)
		return ret;
	while (len) {
		uint64_t n = img->fmt->byte_granular ? len : piece_len(img, off, len);

		/* Only whole sectors are discarded; the rest is left as it is. */
		if (img->fmt->byte_granular || (!(off % SECTOR_SIZE) && !(n % SECTOR_SIZE))) {
			ret = img->fmt->discard(img, n, off);
			if (ret && ret != -ENOTSUP)
				return ret;
		}
		off += n;
		len -= n;
	}
	return 0;
}

int pimg_flush(struct pimg *img)
{
	int ret;

	if (img->flags & PIMG_O_RDONLY)
		return 0;
	/* Once a sync failed, data may be lost: no later flush may claim otherwise. */
	if (img->file->sync_failed)
		return -EIO;
	if (img->fmt->flush) {
		ret = img->fmt->flush(img);
		if (ret)
			return ret;
	}
	return pfile_sync(img->file);
}

/* ---- compressed writes -------------------------------------------------------- */

struct pimg_compressor {
	const struct pimg *img; /* borrowed */
	z_stream zs;            /* deflate stream, set up for (window_bits, mem_level) */
	bool zs_init;
	int window_bits, mem_level;
	ZSTD_CCtx *zc;          /* owned, made at first use */
	uint8_t *pad;           /* owned: one granule, for the image's zero-padded tail */
};

struct pimg_compressor *pimg_compressor_new(const struct pimg *img)
{
	struct pimg_compressor *c;

	if (!img->fmt->compress) {
		errno = ENOTSUP;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->img = img;
	c->pad = malloc(img->granule);
	if (!c->pad) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

void pimg_compressor_free(struct pimg_compressor *c)
{
	if (!c)
		return;
	if (c->zs_init)
		deflateEnd(&c->zs);
	ZSTD_freeCCtx(c->zc);
	free(c->pad);
	free(c);
}

size_t pimg_compress_bound(const struct pimg *img)
{
	/* deflate's worst case is a few bytes per 16 KiB over the input; room for a header */
	return (size_t)img->granule * 2 + 1024;
}

int pimg_deflate(struct pimg_compressor *c, int window_bits, int mem_level, const void *in,
		 size_t len, void *out, size_t cap, size_t *out_len)
{
	int r;

	if (c->zs_init && (c->window_bits != window_bits || c->mem_level != mem_level)) {
		deflateEnd(&c->zs);
		c->zs_init = false;
	}
	if (!c->zs_init) {
		memset(&c->zs, 0, sizeof(c->zs));
		if (deflateInit2(&c->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, mem_level,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		c->zs_init = true;
		c->window_bits = window_bits;
		c->mem_level = mem_level;
	} else if (deflateReset(&c->zs) != Z_OK) {
		return -EIO;
	}
	c->zs.next_in = (Bytef *)(uintptr_t)in;
	c->zs.avail_in = (uInt)len;
	c->zs.next_out = out;
	c->zs.avail_out = (uInt)cap;
	r = deflate(&c->zs, Z_FINISH);
	*out_len = cap - c->zs.avail_out;
	return r == Z_STREAM_END ? 0 : -ENOSPC;
}

int pimg_zstd(struct pimg_compressor *c, int level, const void *in, size_t len, void *out,
	      size_t cap, size_t *out_len)
{
	size_t r;

	if (!c->zc && !(c->zc = ZSTD_createCCtx()))
		return -ENOMEM;
	r = ZSTD_compressCCtx(c->zc, out, cap, in, len, level);
	if (ZSTD_isError(r))
		return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -ENOSPC;
	*out_len = r;
	return 0;
}

/* The rules of a compressed write: off granule aligned, len the granule or the tail. */
static int check_compressed(const struct pimg *img, size_t len, uint64_t off)
{
	if (!img->fmt->write_compressed)
		return -ENOTSUP;
	if (off % img->granule || (len != img->granule && off + len != img->size) ||
	    len > img->granule || len % SECTOR_SIZE || off >= img->size)
		return -EINVAL;
	return 0;
}

int pimg_compress(struct pimg_compressor *c, const void *buf, size_t len, uint64_t off, void *out,
		  size_t *clen)
{
	const struct pimg *img = c->img;
	int ret = check_compressed(img, len, off);

	if (ret)
		return ret;
	if (len < img->granule) {
		memcpy(c->pad, buf, len);
		memset(c->pad + len, 0, img->granule - len);
		buf = c->pad;
	}
	return img->fmt->compress(img, c, buf, off, out, clen);
}

int pimg_write_compressed_data(struct pimg *img, const void *cdata, size_t clen, const void *buf,
			       size_t len, uint64_t off)
{
	int ret = check_writable(img, off, len);

	if (!ret)
		ret = check_compressed(img, len, off);
	if (!ret && cdata && (!clen || clen > pimg_compress_bound(img)))
		ret = -EINVAL;
	return ret ? ret : img->fmt->write_compressed(img, cdata, clen, buf, len, off);
}

int pimg_write_compressed(struct pimg *img, const void *buf, size_t len, uint64_t off)
{
	size_t clen = 0;
	int ret = check_writable(img, off, len);

	if (!ret)
		ret = check_compressed(img, len, off);
	if (ret)
		return ret;
	if (!img->comp) {
		img->comp = pimg_compressor_new(img);
		img->comp_out = img->comp ? malloc(pimg_compress_bound(img)) : NULL;
		if (!img->comp_out) {
			pimg_compressor_free(img->comp);
			img->comp = NULL;
			return -ENOMEM;
		}
	}
	ret = pimg_compress(img->comp, buf, len, off, img->comp_out, &clen);
	if (ret && ret != -ENOSPC)
		return ret;
	return img->fmt->write_compressed(img, ret ? NULL : img->comp_out, clen, buf, len, off);
}

int pimg_block_status(struct pimg *img, uint64_t off, uint64_t len, uint64_t *pnum,
		      bool through_backing)
{
	uint64_t done = 0;
	int first = -1;

	if (!range_within(off, len, img->size) || !len)
		return -EINVAL;
	/* Merge consecutive pieces of the same status, up to len. */
	while (done < len) {
		uint64_t o = off + done, n, p = 0;
		int st;

		n = img->fmt->byte_granular ? len - done : piece_len(img, o, len - done);
		st = img->fmt->block_status(img, o, n, &p);
		if (st < 0)
			return st;
		if (!p || p > n)
			return -EIO;
		if (st == PIMG_UNALLOCATED && through_backing) {
			uint64_t bsize = img->backing ? pimg_size(img->backing) : 0;

			if (o >= bsize) {
				st = PIMG_ZERO;
			} else {
				uint64_t bp;

				st = pimg_block_status(img->backing, o, MIN(p, bsize - o), &bp, true);
				if (st < 0)
					return st;
				p = bp;
			}
		}
		if (first < 0)
			first = st;
		else if (st != first)
			break;
		done += p;
		/* Bound the work per call: a caller can ask again. */
		if (done >= 64 * MiB)
			break;
	}
	*pnum = MIN(done, len);
	return first;
}

/* ---- create ---------------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static bool key_allowed(const struct pimg_format *fmt, const char *key)
{
	for (const char *const *k = fmt->create_keys; k && *k; k++)
		if (!strcmp(*k, key))
			return true;
	return false;
}

/* Parse "-o" text (commas doubled inside values, as qemu-img) into opts; strings point into buf. */
static int parse_create_options(const struct pimg_format *fmt, char *buf, struct pimg_create_opts *o)
{
	char *p = buf;

	while (p && *p) {
		char *key = p, *val, *w, *r;

		/* Find the end of this item, un-doubling ",," in place. */
		for (r = w = p; *r; r++, w++) {
			if (*r == ',' && r[1] == ',') {
				*w = ',';
				r++;
			} else if (*r == ',') {
				break;
			} else {
				*w = *r;
			}
		}
		p = *r ? r + 1 : NULL;
		*w = '\0';
		if (!*key)
			continue;
		val = strchr(key, '=');
		if (!val) {
			log_error("option '%s' needs a value (key=value)", key);
			return -EINVAL;
		}
		*val++ = '\0';
		if (!key_allowed(fmt, key)) {
			log_error("format '%s' does not take option '%s'", fmt->name, key);
			return -EINVAL;
		}
		if (!strcmp(key, "size")) {
			if (parse_size(val, &o->size)) {
				log_error("bad size '%s'", val);
				return -EINVAL;
			}
		} else if (!strcmp(key, "backing_file")) {
			o->backing_file = val;
		} else if (!strcmp(key, "backing_fmt")) {
			o->backing_fmt = val;
		} else if (!strcmp(key, "cluster_size") || !strcmp(key, "block_size")) {
			uint64_t v;

			if (parse_size(val, &v) || v > (1u << 30) || !is_pow2(v)) {
				log_error("bad %s '%s' (a power of two)", key, val);
				return -EINVAL;
			}
			if (!strcmp(key, "cluster_size"))
				o->cluster_size = (uint32_t)v;
			else
				o->block_size = (uint32_t)v;
		} else if (!strcmp(key, "subformat")) {
			o->subformat = val;
		} else if (!strcmp(key, "compression_type")) {
			o->compression_type = val;
		} else if (!strcmp(key, "adapter_type")) {
			o->adapter_type = val;
		} else if (!strcmp(key, "force_size") || !strcmp(key, "lazy_refcounts") ||
			   !strcmp(key, "static") || !strcmp(key, "extended_l2")) {
			bool b;

			if (parse_bool(val, &b)) {
				log_error("option %s takes on or off", key);
				return -EINVAL;
			}
			if (!strcmp(key, "force_size"))
				o->force_size = b;
			else if (!strcmp(key, "static"))
				o->static_image = b;
			else if (!strcmp(key, "lazy_refcounts"))
				o->lazy_refcounts = b;
			else
				o->extended_l2 = b;
		} else if (!strcmp(key, "compat")) {
			if (strcmp(val, "1.1") && strcmp(val, "v3")) {
				log_error("only compat=1.1 (qcow2 v3) images can be created");
				return -EINVAL;
			}
		} else if (!strcmp(key, "preallocation")) {
			if (strcmp(val, "off")) {
				log_error("only preallocation=off is supported");
				return -EINVAL;
			}
		} else {
			log_error("format '%s' does not take option '%s'", fmt->name, key);
			return -EINVAL;
		}
	}
	return 0;
}

int pimg_create(const char *path, const char *format, uint64_t size, const char *options)
{
	const struct pimg_format *fmt = pimg_find_format(format);
	struct pimg_create_opts o = { 0 };
	char *buf = NULL;
	int ret;

	if (!fmt) {
		log_error("unknown format '%s'", format);
		return -EINVAL;
	}
	if (!fmt->create) {
		log_error("format '%s' cannot create images", format);
		return -ENOTSUP;
	}
	if (options) {
		buf = strdup(options);
		if (!buf)
			return -ENOMEM;
		ret = parse_create_options(fmt, buf, &o);
		if (ret)
			goto out_free;
	}
	if (size)
		o.size = size;
	if (o.backing_fmt && !o.backing_file) {
		log_error("backing_fmt needs backing_file");
		ret = -EINVAL;
		goto out_free;
	}
	if (o.backing_file) {
		char *bpath = pimg_path_relative_to(path, o.backing_file);
		struct pimg *b;

		if (!bpath) {
			ret = -ENOMEM;
			goto out_free;
		}
		/* Named by the operator: only its header is read (and a VMDK's extents, which
		 * must lie in its own directory). */
		b = pimg_open_with(bpath, o.backing_fmt, PIMG_O_RDONLY | PIMG_O_NO_BACKING,
				   &(struct pimg_open_policy){ .allow_external = true });
		free(bpath);
		if (!b) {
			log_error("%s: could not open backing file '%s'", path, o.backing_file);
			ret = -EINVAL;
			goto out_free;
		}
		o.backing_size = pimg_size(b);
		if (!o.backing_fmt) {
			/* Record the probed format, as qemu-img requires one. */
			o.backing_fmt = pimg_format(b);
		}
		if (!o.size)
			o.size = o.backing_size;
		pimg_close(b);
	}
	if (o.size % SECTOR_SIZE && fmt != &pimg_fmt_raw)
		o.size = align_up(o.size, SECTOR_SIZE);
	ret = fmt->create(path, &o);
out_free:
	free(buf);
	return ret;
}

/* ---- info, check, resize, commit ---------------------------------------- */

static struct pimg_info_item *info_item(struct pimg_info *info, const char *key)
{
	struct pimg_info_item *it;

	if (info->n_items >= ARRAY_SIZE(info->items))
		return NULL;
	it = &info->items[info->n_items++];
	memset(it, 0, sizeof(*it));
	snprintf(it->key, sizeof(it->key), "%s", key);
	return it;
}

void pimg_info_add_str(struct pimg_info *info, const char *key, const char *val)
{
	struct pimg_info_item *it = info_item(info, key);

	if (it)
		snprintf(it->str, sizeof(it->str), "%s", val);
}

void pimg_info_add_num(struct pimg_info *info, const char *key, int64_t val)
{
	struct pimg_info_item *it = info_item(info, key);

	if (it) {
		it->is_num = true;
		it->num = val;
	}
}

void pimg_info_add_bool(struct pimg_info *info, const char *key, bool val)
{
	struct pimg_info_item *it = info_item(info, key);

	if (it) {
		it->is_bool = true;
		it->num = val;
	}
}

int pimg_get_info(struct pimg *img, struct pimg_info *info)
{
	struct stat st;

	memset(info, 0, sizeof(*info));
	snprintf(info->format, sizeof(info->format), "%s", img->fmt->name);
	info->virtual_size = img->size;
	if (!fstat(img->file->fd, &st))
		info->actual_size = (uint64_t)st.st_blocks * 512;
	if (img->backing_name)
		snprintf(info->backing_file, sizeof(info->backing_file), "%s", img->backing_name);
	if (img->backing_fmt)
		snprintf(info->backing_fmt, sizeof(info->backing_fmt), "%s", img->backing_fmt);
	if (img->fmt->info) {
		int ret = img->fmt->info(img, info);

		if (ret)
			pimg_info_free(info); /* callers free only after success */
		return ret;
	}
	return 0;
}

void pimg_info_free(struct pimg_info *info)
{
	free(info->snapshots);
	info->snapshots = NULL;
	info->n_snapshots = 0;
	free(info->bitmaps);
	info->bitmaps = NULL;
	info->n_bitmaps = 0;
}

int pimg_check(struct pimg *img, struct pimg_check *res, unsigned repair)
{
	memset(res, 0, sizeof(*res));
	if (repair && (img->flags & PIMG_O_RDONLY))
		return -EROFS;
	if (!img->fmt->check)
		return -ENOTSUP;
	return img->fmt->check(img, res, repair);
}

int pimg_resize(struct pimg *img, uint64_t size)
{
	int ret;

	if (img->flags & PIMG_O_RDONLY)
		return -EROFS;
	if (!img->fmt->resize)
		return -ENOTSUP;
	if (!img->fmt->byte_granular && size % SECTOR_SIZE) {
		log_error("%s: size must be a multiple of 512", img->path);
		return -EINVAL;
	}
	ret = img->fmt->resize(img, size);
	if (ret)
		return ret;
	return pimg_flush(img);
}

#define COMMIT_CHUNK (1 * MiB)

int pimg_commit(struct pimg *img)
{
	struct pimg *base;
	uint8_t *buf;
	uint64_t off = 0;
	int ret = 0;

	if (!img->backing_name) {
		log_error("%s: image has no backing file to commit into", img->path);
		return -EINVAL;
	}
	if (!img->backing) {
		log_error("%s: backing file is not open", img->path);
		return -EINVAL;
	}
	buf = malloc(COMMIT_CHUNK);
	if (!buf)
		return -ENOMEM;
	/*
	 * Reopen the base writable, through the same policy: close the read-only chain
	 * first (our own shared lock would refuse the exclusive one). Reads of img then
	 * see only its own clusters, which is exactly what is copied.
	 */
	pimg_close(img->backing);
	img->backing = NULL;
	ret = open_backing(img, true, &base);
	if (ret)
		goto out_reopen;
	if (pimg_size(base) < img->size) {
		ret = pimg_resize(base, img->size);
		if (ret) {
			log_error("%s: cannot grow the backing file to %" PRIu64 " bytes", base->path,
				  img->size);
			goto out_close_base;
		}
	}
	while (off < img->size) {
		uint64_t pnum;
		int st = pimg_block_status(img, off, MIN(COMMIT_CHUNK, img->size - off), &pnum, false);

		if (st < 0) {
			ret = st;
			goto out_close_base;
		}
		if (st == PIMG_DATA) {
			ret = pimg_pread(img, buf, pnum, off);
			if (!ret)
				ret = pimg_pwrite(base, buf, pnum, off);
		} else if (st == PIMG_ZERO) {
			ret = pimg_write_zeroes(base, off, pnum);
		}
		if (ret)
			goto out_close_base;
		off += pnum;
	}
	ret = pimg_flush(base);
out_close_base:
	pimg_close(base);
out_reopen:
	if (!img->backing && !(img->flags & PIMG_O_NO_BACKING))
		open_backing(img, false, &img->backing);
	free(buf);
	return ret;
}
