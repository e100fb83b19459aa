// SPDX-License-Identifier: MIT
/*
 * virtio-blk (virtio 1.x section 5.2): one request queue, served synchronously by
 * the device's I/O thread through a storage backend (struct blk_backend_ops).
 *
 * A request is a chain: a 16-byte header (type, ioprio, sector) in the readable
 * part, data (readable for writes, writable for reads), and the status byte as the
 * last writable byte. Everything in it is checked before the backend is called:
 * header size, data length a multiple of 512 and below 4 GiB, the sector range
 * inside the disk (overflow-safe), the type's feature negotiated, the disk
 * writable. A bad request gets VIRTIO_BLK_S_IOERR or _UNSUPP; only a chain with no
 * writable byte for the status (which can't be answered) breaks the device.
 */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "devices.h"
#include "log.h"
#include "plinth-img.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"
#include "devconf.h"

#define SECTOR              512u
#define BLK_QUEUE_SIZE      256
#define BLK_SEG_MAX         (BLK_QUEUE_SIZE - 2)
#define BLK_MAX_RANGE_SECTORS 0x400000u /* 2 GiB per discard / write-zeroes range */
#define BLK_MAX_RANGES      16

struct blk {
	const struct blk_backend_ops *bops;
	void *be;                 /* backend state, owned */
	uint64_t capacity;        /* sectors */
	struct blk_opts opts;
	struct virtq_elem *elem;  /* the request being served (large: not on the stack) */
	struct iovec data[VIRTQ_MAX_SEGS];
	unsigned int io_errors;   /* backend errors seen; the first few are logged */
};

/* One discard / write-zeroes range (spec 5.2.6). */
struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

static void log_io_error(struct blk *b, const char *what, uint64_t off, int err)
{
	/* A failing disk fails every request: log a few, not millions. */
	if (b->io_errors++ < 5)
		log_error("virtio-blk: %s at byte %llu: %s", what, (unsigned long long)off,
			  strerror(-err));
}

/* True if [sector, sector + bytes/512) lies inside the disk. */
static bool in_disk(const struct blk *b, uint64_t sector, uint64_t bytes)
{
	return sector <= b->capacity && bytes / SECTOR <= b->capacity - sector;
}

/* Read or write the segments of data at byte offset off. */
static int do_rw(struct blk *b, bool write, const struct iovec *iov, int n, uint64_t off)
{
	int i, r;

	if (write ? b->bops->writev : b->bops->readv) {
		/* One request to the backend: for raw one pwritev, not a write per segment. */
		r = write ? b->bops->writev(b->be, iov, n, off) : b->bops->readv(b->be, iov, n, off);
		if (r)
			log_io_error(b, write ? "write" : "read", off, r);
		return r;
	}
	for (i = 0; i < n; i++) {
		r = write ? b->bops->write(b->be, iov[i].iov_base, iov[i].iov_len, off)
			  : b->bops->read(b->be, iov[i].iov_base, iov[i].iov_len, off);
		if (r) {
			log_io_error(b, write ? "write" : "read", off, r);
			return r;
		}
		off += iov[i].iov_len;
	}
	return 0;
}

static uint8_t blk_rw(struct blk *b, struct virtq_elem *e, bool write, uint64_t sector,
		      uint64_t *data_len)
{
	/* Reads fill the writable part but its last byte; writes take the readable part. */
	uint64_t len = write ? e->out_len - sizeof(struct virtio_blk_outhdr) : e->in_len - 1;
	int n;

	if (write && b->opts.readonly)
		return VIRTIO_BLK_S_IOERR;
	if (len % SECTOR || len > UINT32_MAX - SECTOR || !in_disk(b, sector, len))
		return VIRTIO_BLK_S_IOERR;
	if (write)
		n = iov_slice(e->iov, e->out_num, sizeof(struct virtio_blk_outhdr), len, b->data,
			      VIRTQ_MAX_SEGS);
	else
		n = iov_slice(e->iov + e->out_num, e->in_num, 0, len, b->data, VIRTQ_MAX_SEGS);
	if (n < 0)
		return VIRTIO_BLK_S_IOERR;
	if (do_rw(b, write, b->data, n, sector * SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (!write)
		*data_len = len;
	return VIRTIO_BLK_S_OK;
}

static uint8_t blk_ranges(struct blk *b, struct virtq_elem *e, bool zeroes)
{
	uint64_t len = e->out_len - sizeof(struct virtio_blk_outhdr), i;

	if (b->opts.readonly)
		return VIRTIO_BLK_S_IOERR;
	if (len == 0 || len % sizeof(struct blk_range) || len / sizeof(struct blk_range) > BLK_MAX_RANGES)
		return VIRTIO_BLK_S_IOERR;
	for (i = 0; i < len / sizeof(struct blk_range); i++) {
		struct blk_range rg;
		uint64_t sector, bytes;
		uint32_t flags;
		int r;

		iov_to_buf(e->iov, e->out_num, sizeof(struct virtio_blk_outhdr) + i * sizeof(rg),
			   &rg, sizeof(rg));
		sector = le64toh(rg.sector);
		bytes = (uint64_t)le32toh(rg.num_sectors) * SECTOR;
		flags = le32toh(rg.flags);
		if (flags & ~(zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0))
			return VIRTIO_BLK_S_UNSUPP;
		if (le32toh(rg.num_sectors) > BLK_MAX_RANGE_SECTORS || !in_disk(b, sector, bytes))
			return VIRTIO_BLK_S_IOERR;
		if (zeroes) {
			r = b->bops->write_zeroes(b->be, sector * SECTOR, bytes,
						  flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
		} else {
			r = b->bops->discard(b->be, sector * SECTOR, bytes);
			if (r == -EOPNOTSUPP)
				r = 0; /* a hint the host can't act on */
		}
		if (r) {
			log_io_error(b, zeroes ? "write zeroes" : "discard", sector * SECTOR, r);
			return VIRTIO_BLK_S_IOERR;
		}
	}
	return VIRTIO_BLK_S_OK;
}

static int blk_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct blk *b = vdev->priv;
	struct virtio_blk_outhdr hdr;
	uint64_t data_len = 0;
	uint8_t status;
	uint32_t type;
	int r;

	if (e->in_len == 0)
		return -EIO; /* no room for a status: the request can't even fail */
	if (e->out_len < sizeof(hdr)) {
		status = VIRTIO_BLK_S_IOERR;
		goto out_status;
	}
	iov_to_buf(e->iov, e->out_num, 0, &hdr, sizeof(hdr));
	type = le32toh(hdr.type);
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		status = blk_rw(b, e, type == VIRTIO_BLK_T_OUT, le64toh(hdr.sector), &data_len);
		break;
	case VIRTIO_BLK_T_FLUSH:
		r = b->bops->flush(b->be);
		if (r)
			log_io_error(b, "flush", 0, r);
		status = r ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_GET_ID:
		data_len = MIN(e->in_len - 1, (uint64_t)VIRTIO_BLK_ID_BYTES);
		buf_to_iov(e->iov + e->out_num, e->in_num, 0, b->opts.id, data_len);
		status = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!virtio_has_feature(vdev, type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD
									  : VIRTIO_BLK_F_WRITE_ZEROES)) {
			status = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		status = blk_ranges(b, e, type == VIRTIO_BLK_T_WRITE_ZEROES);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
out_status:
	/* The status is the last writable byte, after whatever data went before it. */
	buf_to_iov(e->iov + e->out_num, e->in_num, e->in_len - 1, &status, 1);
	*written = (uint32_t)(data_len + 1);
	return 0;
}

static void blk_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct blk *b = vdev->priv;

	if (tag == 0)
		virtio_dev_drain(vdev, 0, b->elem, blk_chain);
}

static void blk_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct blk *b = vdev->priv;
	struct virtio_blk_config c;

	memset(&c, 0, sizeof(c));
	c.capacity = htole64(b->capacity);
	c.seg_max = htole32(BLK_SEG_MAX);
	c.blk_size = htole32(SECTOR);
	c.num_queues = htole16(1);
	c.max_discard_sectors = htole32(BLK_MAX_RANGE_SECTORS);
	c.max_discard_seg = htole32(BLK_MAX_RANGES);
	c.discard_sector_alignment = htole32(4096 / SECTOR);
	c.max_write_zeroes_sectors = htole32(BLK_MAX_RANGE_SECTORS);
	c.max_write_zeroes_seg = htole32(BLK_MAX_RANGES);
	c.write_zeroes_may_unmap = 1;
	memcpy(data, (uint8_t *)&c + off, len); /* off + len <= cfg_size, checked by the transport */
}

static void blk_destroy(struct virtio_dev *vdev)
{
	struct blk *b = vdev->priv;

	if (!b)
		return;
	/* Whatever the guest wrote reaches the disk even if it never asked for a flush. */
	if (!b->opts.readonly && b->bops->flush(b->be))
		log_error("virtio-blk: final flush failed");
	b->bops->close(b->be);
	free(b->elem);
	free(b);
	vdev->priv = NULL;
}

static int blk_save(struct virtio_dev *vdev, void *state)
{
	struct blk *b = vdev->priv;
	struct virtio_blk_state *s = state;

	memset(s, 0, sizeof(*s));
	s->capacity = b->capacity;
	s->readonly = b->opts.readonly;
	return 0;
}

static int blk_load(struct virtio_dev *vdev, const void *state)
{
	const struct virtio_blk_state *s = state;
	struct blk *b = vdev->priv;

	/* The disk is given on the command line of the new VM; it must be the same size. */
	if (s->capacity != b->capacity || s->readonly != b->opts.readonly)
		return -EINVAL;
	return 0;
}

const struct virtio_dev_ops virtio_blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x0180, /* mass storage, other */
	.cfg_size = offsetof(struct virtio_blk_config, max_secure_erase_sectors),
	.cfg_read = blk_cfg_read,
	.handle = blk_handle,
	.destroy = blk_destroy,
	.state_size = sizeof(struct virtio_blk_state),
	.save = blk_save,
	.load = blk_load,
};

int virtio_blk_init(struct virtio_dev *vdev, const struct guest_mem *mem,
		    const struct blk_backend_ops *bops, void *be, const struct blk_opts *opts)
{
	uint64_t features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ULL << VIRTIO_BLK_F_FLUSH);
	struct blk *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (b)
		b->elem = malloc(sizeof(*b->elem));
	if (!b || !b->elem) {
		log_error("virtio-blk: out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	b->bops = bops;
	b->be = be;
	b->capacity = bops->size(be) / SECTOR;
	b->opts = *opts;
	if (opts->readonly)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	r = virtio_dev_init(vdev, &virtio_blk_ops, b, mem, 1, BLK_QUEUE_SIZE, features);
	if (r)
		goto out_free;
	return 0;

out_free:
	if (b)
		free(b->elem);
	free(b);
	bops->close(be);
	return r;
}

/* ---- the image library as a backend ---------------------------------------------- */

/*
 * An image and what it takes to open it again (migration hand-over). fd is the file,
 * opened by path once, before any jail, and kept: every open of the image (the
 * first, a destination's early view, a reopen after the hand-over, inside --jail
 * too) is on a duplicate of it, so the image lock lives on fd's open file
 * description and a release unlocks it explicitly.
 */
struct blk_img {
	struct pimg *img; /* NULL while released */
	int fd;           /* owned */
	char *path;
	char *format;     /* NULL: probe */
	bool readonly;
	bool incoming;    /* img is the unlocked read-only view of a migration's destination */
	uint64_t size;
	/* Files the image names (backing, parents, extents): off unless backing=on */
	struct pimg_open_policy policy;
	char *backing_dir; /* owned; policy.dirs points at it */
	const char *dirs[2];
};

static int img_read(void *be, void *buf, size_t len, uint64_t off)
{
	struct blk_img *bi = be;

	return bi->img ? pimg_pread(bi->img, buf, len, off) : -EIO;
}

static int img_write(void *be, const void *buf, size_t len, uint64_t off)
{
	struct blk_img *bi = be;

	return bi->img && !bi->incoming ? pimg_pwrite(bi->img, buf, len, off) : -EIO;
}

static int img_readv(void *be, const struct iovec *iov, int n, uint64_t off)
{
	struct blk_img *bi = be;

	return bi->img ? pimg_preadv(bi->img, iov, n, off) : -EIO;
}

static int img_writev(void *be, const struct iovec *iov, int n, uint64_t off)
{
	struct blk_img *bi = be;

	return bi->img && !bi->incoming ? pimg_pwritev(bi->img, iov, n, off) : -EIO;
}

static int img_flush(void *be)
{
	struct blk_img *bi = be;

	/* Released: flushed then, and nothing was written since (writes fail). */
	if (!bi->img || bi->incoming)
		return 0;
	return pimg_flush(bi->img);
}

static int img_discard(void *be, uint64_t off, uint64_t len)
{
	struct blk_img *bi = be;

	return bi->img && !bi->incoming ? pimg_discard(bi->img, off, len) : -EIO;
}

static int img_write_zeroes(void *be, uint64_t off, uint64_t len, bool may_unmap)
{
	struct blk_img *bi = be;

	/* The library deallocates where the format can and the range allows. */
	return bi->img && !bi->incoming ? pimg_write_zeroes(bi->img, off, len) : -EIO;
}

static uint64_t img_size(void *be)
{
	return ((struct blk_img *)be)->size;
}

static void img_close(void *be)
{
	struct blk_img *bi = be;

	pimg_close(bi->img);
	close(bi->fd);
	free(bi->path);
	free(bi->format);
	free(bi->backing_dir);
	free(bi);
}

/* The image on a new duplicate of bi->fd under bi's policy. NULL on error (logged). */
static struct pimg *img_open_kept(struct blk_img *bi, unsigned flags)
{
	int fd = fcntl(bi->fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0) {
		log_error("%s: %s", bi->path, strerror(errno));
		return NULL;
	}
	return pimg_open_fd(fd, bi->path, bi->format, flags, &bi->policy);
}

static int img_release(void *be)
{
	struct blk_img *bi = be;
	int r = 0;

	if (bi->img && !bi->readonly && !bi->incoming)
		r = pimg_flush(bi->img);
	pimg_close(bi->img);
	bi->img = NULL;
	bi->incoming = false;
	flock(bi->fd, LOCK_UN); /* the lock outlives the duplicate pimg_close closed */
	return r;
}

static int img_acquire(void *be)
{
	struct blk_img *bi = be;
	struct pimg *img;

	if (bi->img && !bi->incoming)
		return 0;
	/* Tried first, quietly: another process (the source on its way out) holds it. */
	if (flock(bi->fd, (bi->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		if (errno == EWOULDBLOCK)
			return -EWOULDBLOCK;
		log_error("%s: cannot lock the image: %s", bi->path, strerror(errno));
		return -errno;
	}
	img = img_open_kept(bi, bi->readonly ? PIMG_O_RDONLY : 0);
	if (!img) {
		flock(bi->fd, LOCK_UN);
		return -EIO; /* the library said why */
	}
	pimg_drop_dirs(img); /* no directory may stay open into the jail */
	if (pimg_size(img) != bi->size) {
		log_error("%s: the image changed size (%llu bytes, was %llu)", bi->path,
			  (unsigned long long)pimg_size(img), (unsigned long long)bi->size);
		pimg_close(img);
		flock(bi->fd, LOCK_UN);
		return -EINVAL;
	}
	pimg_close(bi->img);
	bi->img = img;
	bi->incoming = false;
	return 0;
}

const struct blk_backend_ops blk_img_ops = {
	.name = "plinth-img",
	.read = img_read,
	.write = img_write,
	.readv = img_readv,
	.writev = img_writev,
	.flush = img_flush,
	.discard = img_discard,
	.write_zeroes = img_write_zeroes,
	.size = img_size,
	.close = img_close,
	.release = img_release,
	.acquire = img_acquire,
};

/*
 * backing: open the files the image names (backing files, parents, extents) inside
 * its own directory, or backing_dir too (NULL: none); the library refuses them
 * otherwise (plinth-img.h: struct pimg_open_policy).
 */
static void *img_open(const char *path, const char *format, bool readonly, bool incoming,
		      bool backing, const char *backing_dir)
{
	struct blk_img *bi = calloc(1, sizeof(*bi));

	if (!bi) {
		log_error("%s: out of memory", path);
		return NULL;
	}
	bi->fd = -1;
	bi->readonly = readonly;
	bi->incoming = incoming;
	bi->path = strdup(path);
	bi->format = format ? strdup(format) : NULL;
	bi->backing_dir = backing_dir ? strdup(backing_dir) : NULL;
	if (!bi->path || (format && !bi->format) || (backing_dir && !bi->backing_dir)) {
		log_error("%s: out of memory", path);
		goto out_free;
	}
	bi->policy.allow_external = backing || backing_dir;
	bi->dirs[0] = bi->backing_dir;
	bi->policy.dirs = bi->dirs;
	/* A destination's file is writable too: it takes the image over later. */
	bi->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (bi->fd < 0) {
		log_error("%s: %s", path, strerror(errno));
		goto out_free;
	}
	/* The library probes only when format is NULL, and never picks raw for writing. */
	bi->img = img_open_kept(bi, readonly || incoming ?
				    PIMG_O_RDONLY | (incoming ? PIMG_O_NOLOCK : 0) : 0);
	if (!bi->img)
		goto out_free;
	pimg_drop_dirs(bi->img); /* no directory may stay open into the jail */
	bi->size = pimg_size(bi->img);
	return bi;

out_free:
	if (bi->fd >= 0)
		close(bi->fd);
	free(bi->path);
	free(bi->format);
	free(bi->backing_dir);
	free(bi);
	return NULL;
}

void *blk_img_open(const char *path, const char *format, bool readonly)
{
	return img_open(path, format, readonly, false, false, NULL);
}

void *blk_img_open_incoming(const char *path, const char *format, bool readonly)
{
	return img_open(path, format, readonly, true, false, NULL);
}

int virtio_blk_release(struct virtio_dev *vdev)
{
	struct blk *b = vdev->priv;

	return b->bops->release ? b->bops->release(b->be) : 0;
}

int virtio_blk_file(struct virtio_dev *vdev)
{
	struct blk *b = vdev->priv;

	if (vdev->ops != &virtio_blk_ops || b->bops != &blk_img_ops)
		return -ENODEV;
	return ((struct blk_img *)b->be)->fd;
}

int virtio_blk_acquire(struct virtio_dev *vdev)
{
	struct blk *b = vdev->priv;

	return b->bops->acquire ? b->bops->acquire(b->be) : 0;
}

/* ---- command line ---------------------------------------------------------------- */

static const char *const keys[] = { "path", "format", "readonly", "serial", "backing",
				    "backing_dir" };

static int blk_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      bool incoming, struct virtio_pci **out)
{
	char *v[ARRAY_SIZE(keys)];
	bool backing = false;
	struct blk_opts opts;
	struct virtio_dev *vdev;
	const char *base, *format = NULL;
	void *be;
	int r;

	r = spec_parse("--disk", spec, keys, ARRAY_SIZE(keys), NULL, v);
	if (r)
		return r;
	memset(&opts, 0, sizeof(opts));
	r = -EINVAL;
	if (!v[0] || !*v[0]) {
		log_error("--disk: path=FILE is required");
		goto out_spec;
	}
	if (v[2] && spec_bool("--disk", "readonly", v[2], &opts.readonly))
		goto out_spec;
	if (v[4] && spec_bool("--disk", "backing", v[4], &backing))
		goto out_spec;
	if (v[1]) {
		/* Our names for the formats, and the library's. */
		static const char *const names[][2] = {
			{ "raw", "raw" }, { "qcow2", "qcow2" }, { "vhd", "vpc" }, { "vpc", "vpc" },
			{ "vhdx", "vhdx" }, { "vmdk", "vmdk" }, { "vdi", "vdi" },
			{ "parallels", "parallels" },
		};
		size_t i;

		for (i = 0; i < ARRAY_SIZE(names) && strcmp(v[1], names[i][0]); i++)
			;
		if (i == ARRAY_SIZE(names)) {
			log_error("--disk: unknown format '%s' (expected raw, qcow2, vhd, vhdx, vmdk, vdi, "
				  "parallels)", v[1]);
			goto out_spec;
		}
		format = names[i][1];
	}
	/* The ID (serial in the guest) defaults to the file's name, cut to 20 bytes. */
	base = strrchr(v[0], '/');
	base = v[3] ? v[3] : base ? base + 1 : v[0];
	memcpy(opts.id, base, strnlen(base, sizeof(opts.id)));

	be = img_open(v[0], format, opts.readonly, incoming, backing, v[5]);
	if (!be)
		goto out_spec; /* the library said why */
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("--disk: out of memory");
		blk_img_ops.close(be);
		r = -ENOMEM;
		goto out_spec;
	}
	r = virtio_blk_init(vdev, mem, &blk_img_ops, be, &opts);
	if (r)
		goto out_free_vdev;
	spec_free(v, ARRAY_SIZE(keys));
	return virtio_pci_create_on(bus, vdev, out);

out_free_vdev:
	free(vdev);
out_spec:
	spec_free(v, ARRAY_SIZE(keys));
	return r;
}

int virtio_blk_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out)
{
	return blk_create(bus, mem, spec, false, out);
}

int virtio_blk_spec_path(const char *spec, char **path, bool *readonly, bool *external)
{
	char *v[ARRAY_SIZE(keys)];
	bool ro = false, backing = false;
	int r = spec_parse("--disk", spec, keys, ARRAY_SIZE(keys), NULL, v);

	*path = NULL;
	if (r)
		return r;
	if ((v[2] && spec_bool("--disk", "readonly", v[2], &ro)) ||
	    (v[4] && spec_bool("--disk", "backing", v[4], &backing)))
		r = -EINVAL;
	if (readonly)
		*readonly = ro;
	if (external)
		*external = backing || v[5];
	*path = v[0];
	v[0] = NULL;
	spec_free(v, ARRAY_SIZE(keys));
	if (!r && !*path)
		r = -EINVAL;
	if (r) {
		free(*path);
		*path = NULL;
	}
	return r;
}

int virtio_blk_create_incoming(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			       struct virtio_pci **out)
{
	return blk_create(bus, mem, spec, true, out);
}

/* ---- the --disk class (vmm/devconf.h): its typed config and options ---- */

struct disk_config {
	char *path;        /* the image file or block device */
	char *format;      /* raw, qcow2, vhd, vhdx, vmdk, vdi, parallels, or NULL: recognised */
	bool readonly;
	char *serial;      /* GET_ID, or NULL: the file's name */
	bool backing;      /* its image may name files in its directory */
	char *backing_dir; /* ... or in this one */
};

static const char *const disk_keys[] = { "path", "format", "readonly", "serial", "backing",
					 "backing_dir" };

static void disk_free(void *conf)
{
	struct disk_config *c = conf;

	free(c->path);
	free(c->format);
	free(c->serial);
	free(c->backing_dir);
	free(c);
}

static int disk_parse(const char *opt, char *const *v, void **conf)
{
	static const char *const formats[] = { "raw", "qcow2", "vhd", "vpc", "vhdx", "vmdk", "vdi",
					       "parallels" };
	struct disk_config *c;
	size_t i;
	int ret;

	if (!v[0] || !*v[0]) {
		log_error("%s: path=FILE is required", opt);
		return -EINVAL;
	}
	for (i = 0; v[1] && i < ARRAY_SIZE(formats) && strcmp(v[1], formats[i]); i++)
		;
	if (v[1] && i == ARRAY_SIZE(formats)) {
		log_error("%s: unknown format '%s' (expected raw, qcow2, vhd, vhdx, vmdk, vdi, "
			  "parallels)", opt, v[1]);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if ((ret = spec_flag(opt, "readonly", v[2], &c->readonly)) ||
	    (ret = spec_flag(opt, "backing", v[4], &c->backing)) ||
	    (ret = spec_dup(opt, v[0], &c->path)) || (ret = spec_dup(opt, v[1], &c->format)) ||
	    (ret = spec_dup(opt, v[3], &c->serial)) ||
	    (ret = spec_dup(opt, v[5], &c->backing_dir))) {
		disk_free(c);
		return ret;
	}
	*conf = c;
	return 0;
}

static json_t *disk_to_json(const void *conf)
{
	const struct disk_config *c = conf;
	json_t *o = spec_json_str(json_object(), "path", c->path);

	o = spec_json_str(o, "format", c->format);
	o = spec_json_flag(o, "readonly", c->readonly);
	o = spec_json_str(o, "serial", c->serial);
	o = spec_json_flag(o, "backing", c->backing);
	return spec_json_str(o, "backing_dir", c->backing_dir);
}

const struct dev_class dev_class_disk = {
	.name = "disk",
	.synopsis = "path=FILE[,format=raw|qcow2|vhd|vhdx|vmdk|vdi|parallels][,readonly=on]"
		    "[,serial=ID]\n         [,backing=on][,backing_dir=DIR]",
	.help = DEV_HELP_INDENT "a virtio disk (repeatable: vda, vdb, ... in this order); the\n"
		DEV_HELP_INDENT "backing files and extents it names only with backing=on (in\n"
		DEV_HELP_INDENT "its directory) or backing_dir=DIR\n",
	.keys = disk_keys,
	.nr_keys = ARRAY_SIZE(disk_keys),
	.parse = disk_parse,
	.to_json = disk_to_json,
	.free = disk_free,
	.create = virtio_blk_create,
	.create_incoming = virtio_blk_create_incoming,
};
