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
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "devices.h"
#include "log.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"

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

/* ---- raw backend ----------------------------------------------------------------- */

struct raw {
	int fd;
	uint64_t size;
	bool blkdev;
};

static int raw_read(void *be, void *buf, size_t len, uint64_t off)
{
	struct raw *r = be;

	return pread_full(r->fd, buf, len, (off_t)off);
}

static int raw_write(void *be, const void *buf, size_t len, uint64_t off)
{
	struct raw *r = be;

	return pwrite_full(r->fd, buf, len, (off_t)off);
}

static int raw_flush(void *be)
{
	struct raw *r = be;

	return fdatasync(r->fd) ? -errno : 0;
}

static int raw_discard(void *be, uint64_t off, uint64_t len)
{
	struct raw *r = be;

	if (r->blkdev) {
		uint64_t range[2] = { off, len };

		return ioctl(r->fd, BLKDISCARD, range) ? -EOPNOTSUPP : 0;
	}
	if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	return 0;
}

static int raw_write_zeroes(void *be, uint64_t off, uint64_t len, bool may_unmap)
{
	static const uint8_t zeros[64 * 1024];
	struct raw *r = be;
	int mode = may_unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			     : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	if (r->blkdev) {
		uint64_t range[2] = { off, len };

		if (!ioctl(r->fd, BLKZEROOUT, range))
			return 0;
	} else if (!fallocate(r->fd, mode, (off_t)off, (off_t)len) ||
		   (may_unmap && !fallocate(r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					    (off_t)off, (off_t)len))) {
		return 0;
	}
	/* The filesystem can't: write the zeros. */
	while (len) {
		size_t chunk = (size_t)MIN(len, sizeof(zeros));
		int err = pwrite_full(r->fd, zeros, chunk, (off_t)off);

		if (err)
			return err;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

static uint64_t raw_size(void *be)
{
	return ((struct raw *)be)->size;
}

static void raw_close(void *be)
{
	struct raw *r = be;

	close(r->fd);
	free(r);
}

const struct blk_backend_ops blk_raw_ops = {
	.name = "raw",
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.size = raw_size,
	.close = raw_close,
};

void *blk_raw_open(const char *path, bool readonly)
{
	struct stat st;
	struct raw *r;

	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("--disk: out of memory");
		return NULL;
	}
	r->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (r->fd < 0) {
		log_error("--disk: cannot open %s: %s", path, strerror(errno));
		goto out_free;
	}
	/* Two writers (or a writer and a reader) on one image corrupt it: refuse. */
	if (flock(r->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		log_error("--disk: %s is in use by another process", path);
		goto out_close;
	}
	if (fstat(r->fd, &st)) {
		log_error("--disk: %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		r->blkdev = true;
		if (ioctl(r->fd, BLKGETSIZE64, &r->size)) {
			log_error("--disk: %s: cannot get size: %s", path, strerror(errno));
			goto out_close;
		}
	} else if (S_ISREG(st.st_mode)) {
		r->size = (uint64_t)st.st_size;
	} else {
		log_error("--disk: %s is not a regular file or block device", path);
		goto out_close;
	}
	return r;

out_close:
	close(r->fd);
out_free:
	free(r);
	return NULL;
}

/* ---- command line ---------------------------------------------------------------- */

/* Known image headers: recognised only to refuse using them as raw by accident. */
static const char *image_magic(const char *path)
{
	static const struct {
		const char *name;
		uint64_t off;
		const char *magic;
		size_t len;
	} magics[] = {
		{ "qcow2", 0, "QFI\xfb", 4 },
		{ "vhdx", 0, "vhdxfile", 8 },
		{ "vmdk", 0, "KDMV", 4 },
		{ "vmdk", 0, "# Disk DescriptorFile", 21 },
		{ "vhd", 0, "conectix", 8 },
	};
	char buf[32];
	size_t i;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	memset(buf, 0, sizeof(buf));
	if (pread(fd, buf, sizeof(buf), 0) < 0)
		buf[0] = 0;
	close(fd);
	for (i = 0; i < ARRAY_SIZE(magics); i++)
		if (!memcmp(buf + magics[i].off, magics[i].magic, magics[i].len))
			return magics[i].name;
	return NULL;
}

int virtio_blk_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out)
{
	static const char *const keys[] = { "path", "format", "readonly", "serial" };
	char *v[ARRAY_SIZE(keys)];
	struct blk_opts opts;
	struct virtio_dev *vdev;
	const char *base, *magic;
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
	if (v[1] && strcmp(v[1], "raw")) {
		if (!strcmp(v[1], "qcow2") || !strcmp(v[1], "vhd") || !strcmp(v[1], "vhdx") ||
		    !strcmp(v[1], "vmdk"))
			log_error("--disk: format=%s is not available in this build (raw only)", v[1]);
		else
			log_error("--disk: unknown format '%s' (expected raw, qcow2, vhd, vhdx, vmdk)",
				  v[1]);
		goto out_spec;
	}
	/* Never guess: a header means an image that raw access would corrupt or expose. */
	magic = v[1] ? NULL : image_magic(v[0]);
	if (magic) {
		log_error("--disk: %s looks like a %s image; say format=%s (or format=raw to use "
			  "the bytes as they are)", v[0], magic, magic);
		goto out_spec;
	}
	/* The ID (serial in the guest) defaults to the file's name, cut to 20 bytes. */
	base = strrchr(v[0], '/');
	base = v[3] ? v[3] : base ? base + 1 : v[0];
	memcpy(opts.id, base, strnlen(base, sizeof(opts.id)));

	be = blk_raw_open(v[0], opts.readonly);
	if (!be)
		goto out_spec;
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("--disk: out of memory");
		blk_raw_ops.close(be);
		r = -ENOMEM;
		goto out_spec;
	}
	r = virtio_blk_init(vdev, mem, &blk_raw_ops, be, &opts);
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
