// SPDX-License-Identifier: MIT
/*
 * virtio-blk: requests built by hand in fake guest memory, served through an
 * in-memory backend that counts calls and injects faults (the same ops table the
 * raw file backend implements), then the raw backend and the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_blk.h>

#include "blk.h"
#include "plinth-img.h"
#include "devices.h"
#include "drv_pci.h"
#include "util.h"

#define DISK  (1u << 20) /* 1 MiB: 2048 sectors */
#define RING  0x1000u
#define HDR   0x8000u
#define STAT  0x8100u
#define DATA  0x10000u

struct membe {
	uint8_t *data;
	uint64_t size;
	int fail_read, fail_write, fail_flush;
	unsigned int reads, writes, flushes, discards, zeroes;
	uint64_t last_off, last_len;
	bool last_unmap;
};

static int mem_read(void *be, void *buf, size_t len, uint64_t off)
{
	struct membe *m = be;

	m->reads++;
	if (m->fail_read)
		return m->fail_read;
	assert_true(range_within(off, len, m->size)); /* the device checked it first */
	memcpy(buf, m->data + off, len);
	return 0;
}

static int mem_write(void *be, const void *buf, size_t len, uint64_t off)
{
	struct membe *m = be;

	m->writes++;
	if (m->fail_write)
		return m->fail_write;
	assert_true(range_within(off, len, m->size));
	memcpy(m->data + off, buf, len);
	return 0;
}

static int mem_flush(void *be)
{
	struct membe *m = be;

	m->flushes++;
	return m->fail_flush;
}

static int mem_discard(void *be, uint64_t off, uint64_t len)
{
	struct membe *m = be;

	assert_true(range_within(off, len, m->size));
	m->discards++;
	m->last_off = off;
	m->last_len = len;
	return -EOPNOTSUPP; /* a hint: the device must still say OK */
}

static int mem_write_zeroes(void *be, uint64_t off, uint64_t len, bool may_unmap)
{
	struct membe *m = be;

	assert_true(range_within(off, len, m->size));
	m->zeroes++;
	m->last_off = off;
	m->last_len = len;
	m->last_unmap = may_unmap;
	memset(m->data + off, 0, len);
	return 0;
}

static uint64_t mem_size(void *be)
{
	return ((struct membe *)be)->size;
}

static void mem_close(void *be)
{
	(void)be; /* the fixture owns it */
}

static const struct blk_backend_ops mem_ops = {
	.name = "mem",
	.read = mem_read,
	.write = mem_write,
	.flush = mem_flush,
	.discard = mem_discard,
	.write_zeroes = mem_write_zeroes,
	.size = mem_size,
	.close = mem_close,
};

struct fixture {
	struct fake_mem fm;
	struct membe be;
	struct virtio_dev vdev;
	struct drv_vq dq;
	unsigned int notifies, resets;
};

static void t_notify_queue(struct virtio_dev *vdev, unsigned int q)
{
	((struct fixture *)vdev->transport)->notifies++;
}

static void t_notify_config(struct virtio_dev *vdev)
{
}

static void t_needs_reset(struct virtio_dev *vdev)
{
	((struct fixture *)vdev->transport)->resets++;
}

static const struct virtio_transport_ops fake_tops = {
	.notify_queue = t_notify_queue,
	.notify_config = t_notify_config,
	.needs_reset = t_needs_reset,
};

static int make_dev(struct fixture *f, bool readonly)
{
	struct blk_opts opts = { .readonly = readonly };
	struct virtq *vq;

	memcpy(opts.id, "disk-serial-01234567", 20); /* exactly 20: no NUL */
	if (virtio_blk_init(&f->vdev, &f->fm.gm, &mem_ops, &f->be, &opts))
		return -1;
	f->vdev.tops = &fake_tops;
	f->vdev.transport = f;
	f->vdev.features = f->vdev.host_features;
	vq = &f->vdev.vq[0];
	drv_vq_setup(&f->dq, &f->fm, 16, RING);
	vq->st.size = 16;
	vq->st.desc_gpa = f->dq.desc;
	vq->st.avail_gpa = f->dq.avail;
	vq->st.used_gpa = f->dq.used;
	virtq_set_features(vq, f->vdev.features);
	return virtq_enable(vq);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned int i;

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	f->be.size = DISK;
	f->be.data = malloc(DISK);
	if (!f->be.data)
		return -1;
	for (i = 0; i < DISK; i++)
		f->be.data[i] = (uint8_t)(i * 7 + 3);
	if (make_dev(f, false))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->vdev);
	free(f->be.data);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

static void put_hdr(struct fixture *f, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = type, .ioprio = 0, .sector = sector };

	memcpy(gpa_ptr(&f->fm, HDR), &h, sizeof(h));
	*(uint8_t *)gpa_ptr(&f->fm, STAT) = 0xee;
}

/* Serve everything queued, synchronously, as the I/O thread would. */
static void serve(struct fixture *f)
{
	virtio_blk_ops.handle(&f->vdev, 0, EPOLLIN);
}

static uint8_t status(struct fixture *f)
{
	return *(uint8_t *)gpa_ptr(&f->fm, STAT);
}

/* header, one data buffer (device-writable for reads), status. Returns the status. */
static uint8_t request(struct fixture *f, uint32_t type, uint64_t sector, uint64_t data,
		       uint32_t len, bool dev_writes, uint32_t *used_len)
{
	uint16_t n = drv_used_idx(&f->dq);
	uint32_t uid, ulen;

	put_hdr(f, type, sector);
	drv_set_desc(&f->dq, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq, 1, data, len, VRING_DESC_F_NEXT | (dev_writes ? VRING_DESC_F_WRITE : 0), 2);
	drv_set_desc(&f->dq, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(drv_used_idx(&f->dq), (uint16_t)(n + 1));
	drv_used_elem(&f->dq, n, &uid, &ulen);
	assert_int_equal(uid, 0);
	if (used_len)
		*used_len = ulen;
	return status(f);
}

static void test_write_then_read(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = gpa_ptr(&f->fm, DATA);
	uint32_t ulen;
	unsigned int i;

	for (i = 0; i < 1024; i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 2, DATA, 1024, false, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	assert_memory_equal(f->be.data + 1024, data, 1024);

	memset(data, 0, 1024);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 2, DATA, 1024, true, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1025);
	for (i = 0; i < 1024; i++)
		assert_int_equal(data[i], (uint8_t)(i ^ 0x5a));
	assert_true(f->notifies > 0);
}

static void test_read_scattered(void **state)
{
	struct fixture *f = *state;
	uint8_t *a = gpa_ptr(&f->fm, DATA), *b = gpa_ptr(&f->fm, FAKE_SLOT0 - 300);

	/* 512 bytes in two pieces, the second straddling the memory slots, plus status. */
	put_hdr(f, VIRTIO_BLK_T_IN, 10);
	drv_set_desc(&f->dq, 5, HDR, 16, VRING_DESC_F_NEXT, 6);
	drv_set_desc(&f->dq, 6, DATA, 112, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
	drv_set_desc(&f->dq, 7, FAKE_SLOT0 - 300, 400, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 8);
	drv_set_desc(&f->dq, 8, STAT, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq, 5);
	serve(f);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_memory_equal(a, f->be.data + 5120, 112);
	assert_memory_equal(b, f->be.data + 5120 + 112, 300);
	assert_memory_equal(f->fm.buf[1], f->be.data + 5120 + 412, 100);
}

static void test_status_in_data_descriptor(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf = gpa_ptr(&f->fm, DATA);

	/* Any layout: data and status in one writable descriptor of 513 bytes. */
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	drv_set_desc(&f->dq, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq, 1, DATA, 513, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_memory_equal(buf, f->be.data, 512);
	assert_int_equal(buf[512], VIRTIO_BLK_S_OK);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint64_t cap = DISK / 512;

	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap, DATA, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap - 1, DATA, 1024, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 1ULL << 62, DATA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX, DATA, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA, 100, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->be.reads + f->be.writes, 0);
	/* The last sector is fine. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, cap - 1, DATA, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->vdev);
	assert_int_equal(make_dev(f, true), 0);
	assert_true(f->vdev.host_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(f->vdev.host_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(f->vdev.host_features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));

	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->be.writes, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	/* Even if the driver claims the feature anyway. */
	f->vdev.features |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	memset(gpa_ptr(&f->fm, DATA), 0, 16);
	*(uint32_t *)gpa_ptr(&f->fm, DATA + 8) = 1;
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->be.zeroes, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, DATA, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static void test_flush(void **state)
{
	struct fixture *f = *state;

	/* A flush with no data: header and status only. */
	put_hdr(f, VIRTIO_BLK_T_FLUSH, 0);
	drv_set_desc(&f->dq, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq, 1, STAT, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->be.flushes, 1);

	f->be.fail_flush = -EIO;
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
}

static void test_get_id(void **state)
{
	struct fixture *f = *state;
	uint32_t ulen;

	memset(gpa_ptr(&f->fm, DATA), 0xff, 32);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA, 32, true, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 21);
	assert_memory_equal(gpa_ptr(&f->fm, DATA), "disk-serial-01234567", 20);
	assert_int_equal(*(uint8_t *)gpa_ptr(&f->fm, DATA + 20), 0xff);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, DATA + 64, 5, true, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 6);
	assert_memory_equal(gpa_ptr(&f->fm, DATA + 64), "disk-", 5);
}

static void put_range(struct fixture *f, unsigned int i, uint64_t sector, uint32_t n, uint32_t flags)
{
	uint8_t *p = gpa_ptr(&f->fm, DATA + 16u * i);

	memcpy(p, &sector, 8);
	memcpy(p + 8, &n, 4);
	memcpy(p + 12, &flags, 4);
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	put_range(f, 0, 8, 16, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(f->be.discards, 1);
	assert_int_equal(f->be.last_off, 4096);
	assert_int_equal(f->be.last_len, 8192);

	put_range(f, 0, 2, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	put_range(f, 1, 100, 2, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 32, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(f->be.zeroes, 2);
	assert_int_equal(f->be.last_off, 51200);
	assert_false(f->be.last_unmap);
	for (i = 0; i < 512; i++)
		assert_int_equal(f->be.data[1024 + i], 0);

	/* Discard takes no flags; write-zeroes only UNMAP. */
	put_range(f, 0, 8, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	put_range(f, 0, 8, 16, 2);
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	/* Ranges outside the disk, ragged payloads, too many ranges. */
	put_range(f, 0, DISK / 512 - 1, 2, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	put_range(f, 0, UINT64_MAX, 1, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 24, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 0, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	for (i = 0; i < 17; i++)
		put_range(f, i, i, 1, 0);
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 17 * 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->be.discards, 1);
	assert_int_equal(f->be.zeroes, 2);
}

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(request(f, 99, 0, DATA, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(f, VIRTIO_BLK_T_SCSI_CMD, 0, DATA, 512, true, NULL),
			 VIRTIO_BLK_S_UNSUPP);

	/* Header too short: 8 readable bytes, then status. */
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	drv_set_desc(&f->dq, 0, HDR, 8, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq, 1, STAT, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->resets, 0);

	/* Read whose only writable byte is the status: no data, still an answer. */
	assert_int_equal(f->be.reads, 0);
}

static void test_no_status_byte(void **state)
{
	struct fixture *f = *state;

	put_hdr(f, VIRTIO_BLK_T_OUT, 0);
	drv_set_desc(&f->dq, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq, 1, DATA, 512, 0, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(f->resets, 1);
	assert_int_equal(drv_used_idx(&f->dq), 0);
	assert_int_equal(f->be.writes, 0);
}

static void test_backend_errors(void **state)
{
	struct fixture *f = *state;

	f->be.fail_read = -EIO;
	f->be.fail_write = -ENOSPC;
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->resets, 0);
}

static void test_malformed_chain_breaks_device(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->dq, 0, HDR, 16, VRING_DESC_F_NEXT, 0);
	drv_kick_head(&f->dq, 0);
	serve(f);
	assert_int_equal(f->resets, 1);
	serve(f); /* stays broken, no spinning */
	assert_int_equal(drv_used_idx(&f->dq), 0);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	struct virtio_blk_config c;

	memset(&c, 0xff, sizeof(c));
	virtio_blk_ops.cfg_read(&f->vdev, 0, &c, virtio_blk_ops.cfg_size);
	assert_int_equal(c.capacity, DISK / 512);
	assert_int_equal(c.blk_size, 512);
	assert_true(c.seg_max >= 1);
	assert_int_equal(c.max_discard_seg, 16);
	assert_true(virtio_blk_ops.cfg_size <= sizeof(c));
}

/* ---- the raw backend and the command line ---------------------------------------- */

static char *tmp_disk(uint64_t size, const char *magic)
{
	char *path = strdup("/tmp/plinth-blk-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (magic)
		assert_int_equal(pwrite(fd, magic, strlen(magic), 0), (ssize_t)strlen(magic));
	close(fd);
	return path;
}

static void test_raw_backend(void **state)
{
	char *path = tmp_disk(DISK, NULL);
	uint8_t buf[4096], back[4096];
	void *be, *be2;
	int fd;

	(void)state;
	be = blk_img_open(path, "raw", false);
	assert_non_null(be);
	assert_int_equal(blk_img_ops.size(be), DISK);
	/* A second writer is refused (flock). */
	be2 = blk_img_open(path, "raw", false);
	assert_null(be2);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(blk_img_ops.write(be, buf, sizeof(buf), 8192), 0);
	assert_int_equal(blk_img_ops.flush(be), 0);
	fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, back, sizeof(back), 8192), sizeof(back));
	assert_memory_equal(back, buf, sizeof(back));
	assert_int_equal(blk_img_ops.write_zeroes(be, 8192, 1024, false), 0);
	assert_int_equal(blk_img_ops.write_zeroes(be, 8192 + 1024, 1024, true), 0);
	assert_int_equal(pread(fd, back, sizeof(back), 8192), sizeof(back));
	memset(buf, 0, 2048);
	assert_memory_equal(back, buf, sizeof(back));
	assert_int_equal(blk_img_ops.discard(be, 0, 4096), 0);
	assert_int_equal(blk_img_ops.read(be, back, 16, DISK - 16), 0);
	assert_int_not_equal(blk_img_ops.read(be, back, 32, DISK - 16), 0); /* past the end */
	close(fd);
	blk_img_ops.close(be);
	assert_null(blk_img_open("/nonexistent/disk.img", NULL, true));
	assert_null(blk_img_open("/dev/null", "raw", true)); /* not a file or block device */
	assert_null(blk_img_open(path, NULL, false)); /* never guess raw for writing */
	unlink(path);
	free(path);
}

/*
 * A live migration's hand-over of an image: the destination's view opens while
 * the source holds the lock, cannot write, and takes the image over only once
 * the source released it, with what the source wrote last; the source cannot
 * take it back while the destination holds it; a changed size is refused.
 */
static void test_img_handover(void **state)
{
	char *path = tmp_disk(DISK, NULL);
	uint8_t buf[512], back[512];
	void *src, *dst;
	int fd;

	(void)state;
	src = blk_img_open(path, "raw", false);
	assert_non_null(src);
	dst = blk_img_open_incoming(path, "raw", false);
	assert_non_null(dst); /* no lock taken */
	assert_int_equal(blk_img_ops.size(dst), DISK);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(blk_img_ops.write(dst, buf, sizeof(buf), 0), -EIO);
	assert_int_equal(blk_img_ops.acquire(dst), -EWOULDBLOCK); /* the source holds it */
	assert_int_equal(blk_img_ops.write(src, buf, sizeof(buf), 4096), 0);
	assert_int_equal(blk_img_ops.release(src), 0);
	assert_int_equal(blk_img_ops.write(src, buf, sizeof(buf), 0), -EIO); /* released */
	assert_int_equal(blk_img_ops.flush(src), 0);
	assert_int_equal(blk_img_ops.acquire(dst), 0);
	assert_int_equal(blk_img_ops.read(dst, back, sizeof(back), 4096), 0);
	assert_memory_equal(back, buf, sizeof(back));
	assert_int_equal(blk_img_ops.write(dst, buf, sizeof(buf), 0), 0);
	assert_int_equal(blk_img_ops.acquire(dst), 0); /* already held: nothing to do */
	assert_int_equal(blk_img_ops.acquire(src), -EWOULDBLOCK); /* the destination has it */
	assert_null(blk_img_open(path, "raw", false));
	/* The destination goes away, the image grows meanwhile: the source refuses it. */
	blk_img_ops.close(dst);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * DISK), 0);
	close(fd);
	assert_int_equal(blk_img_ops.acquire(src), -EINVAL);
	assert_int_equal(blk_img_ops.read(src, back, sizeof(back), 0), -EIO);
	blk_img_ops.close(src);
	unlink(path);
	free(path);
}

/*
 * The same for qcow2, whose metadata the destination must not take from its early
 * view: the source allocates a cluster after the destination opened the image;
 * after the hand-over the destination reads the data, not the stale empty table.
 */
static void test_img_handover_qcow2(void **state)
{
	char *path = tmp_disk(0, NULL);
	uint8_t buf[512], back[512];
	void *src, *dst;

	(void)state;
	assert_int_equal(pimg_create(path, "qcow2", DISK, NULL), 0);
	src = blk_img_open(path, "qcow2", false);
	assert_non_null(src);
	dst = blk_img_open_incoming(path, "qcow2", false);
	assert_non_null(dst);
	memset(buf, 0xc3, sizeof(buf));
	assert_int_equal(blk_img_ops.write(src, buf, sizeof(buf), 3 * 65536), 0);
	assert_int_equal(blk_img_ops.release(src), 0);
	assert_int_equal(blk_img_ops.acquire(dst), 0);
	assert_int_equal(blk_img_ops.read(dst, back, sizeof(back), 3 * 65536), 0);
	assert_memory_equal(back, buf, sizeof(back));
	blk_img_ops.close(dst);
	blk_img_ops.close(src);
	unlink(path);
	free(path);
}

/*
 * The destination takes the image over from the file it opened at start-up, not by
 * path: inside --jail the path leads nowhere. Here the path is gone (renamed)
 * before the hand-over, and the destination still takes the same file over.
 */
static void test_img_handover_without_path(void **state)
{
	char *path = tmp_disk(DISK, NULL), moved[4200];
	uint8_t buf[512], back[512];
	void *src, *dst;

	(void)state;
	snprintf(moved, sizeof(moved), "%s.moved", path);
	src = blk_img_open(path, "raw", false);
	assert_non_null(src);
	dst = blk_img_open_incoming(path, "raw", false);
	assert_non_null(dst);
	assert_int_equal(rename(path, moved), 0);
	memset(buf, 0x77, sizeof(buf));
	assert_int_equal(blk_img_ops.write(src, buf, sizeof(buf), 8192), 0);
	assert_int_equal(blk_img_ops.release(src), 0);
	assert_int_equal(blk_img_ops.acquire(dst), 0);
	assert_int_equal(blk_img_ops.read(dst, back, sizeof(back), 8192), 0);
	assert_memory_equal(back, buf, sizeof(back));
	assert_int_equal(blk_img_ops.write(dst, buf, sizeof(buf), 0), 0);
	/* The lock moved with it: the source cannot take the file back, nor can a third. */
	assert_int_equal(blk_img_ops.acquire(src), -EWOULDBLOCK);
	assert_null(blk_img_open(moved, "raw", false));
	/* Released by the destination, the source (rollback) takes it back, also pathless. */
	assert_int_equal(blk_img_ops.release(dst), 0);
	assert_int_equal(blk_img_ops.acquire(src), 0);
	assert_int_equal(blk_img_ops.read(src, back, sizeof(back), 0), 0);
	assert_memory_equal(back, buf, sizeof(back));
	blk_img_ops.close(dst);
	blk_img_ops.close(src);
	unlink(moved);
	free(path);
}

/* --disk follows the image library's default: no file the image names unless backing=on. */
static void test_create_backing_option(void **state)
{
	char dir[] = "/tmp/plinth-blk-backing-XXXXXX", base[64], top[64], spec[256];
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *a;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.qcow2", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	assert_int_equal(pimg_create(base, "qcow2", DISK, NULL), 0);
	assert_int_equal(pimg_create(top, "qcow2", 0, "backing_file=base.qcow2,backing_fmt=qcow2"), 0);
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	snprintf(spec, sizeof(spec), "path=%s", top);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "path=%s,backing=maybe", top);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "path=%s,backing=off", top);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	assert_int_equal(bus.nr, 0);
	snprintf(spec, sizeof(spec), "path=%s,backing=on", top);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, &a), 0);
	assert_int_equal(drv_r(bus.dev[0], VPCI_DEVCFG, 8), DISK / 512);
	virtio_pci_free(a);
	/* backing_dir=DIR alone allows DIR (here the image's own). */
	snprintf(spec, sizeof(spec), "path=%s,readonly=on,backing_dir=%s", top, dir);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, &a), 0);
	virtio_pci_free(a);
	unlink(top);
	unlink(base);
	rmdir(dir);
	fake_mem_fini(&fm);
}

static void test_create_specs(void **state)
{
	struct fake_mem fm;
	struct pci_bus bus;
	char *raw = tmp_disk(DISK, NULL), *q = tmp_disk(DISK, "QFI\xfb"), spec[256];
	struct virtio_pci *a, *b;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, "", NULL), -EINVAL);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, "readonly=on", NULL), -EINVAL);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, "file=x", NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "path=%s,readonly=maybe", raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "path=%s,format=qcow3", raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "path=%s,path=%s", raw, raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, "path=/nonexistent", NULL), -EINVAL);
	/* A qcow2 header is never used as raw by accident. */
	snprintf(spec, sizeof(spec), "path=%s", q);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	assert_int_equal(bus.nr, 0);

	/* A writable file without a header needs format=raw: no guessing. */
	snprintf(spec, sizeof(spec), "path=%s", raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);
	assert_int_equal(bus.nr, 0);

	/* Two disks, in order; the second is the qcow2-looking file taken as raw on purpose. */
	snprintf(spec, sizeof(spec), "path=%s,format=raw", raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, &a), 0);
	snprintf(spec, sizeof(spec), "path=%s,format=raw,readonly=on", q);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, &b), 0);
	assert_int_equal(bus.nr, 2);
	assert_ptr_equal(bus.dev[0], virtio_pci_pdev(a));
	assert_ptr_equal(bus.dev[1], virtio_pci_pdev(b));
	assert_int_equal(drv_r(bus.dev[0], VPCI_DEVCFG, 8), DISK / 512);
	assert_false(drv_dev_features(bus.dev[0]) & (1ULL << VIRTIO_BLK_F_RO));
	assert_true(drv_dev_features(bus.dev[1]) & (1ULL << VIRTIO_BLK_F_RO));
	assert_int_equal(cfg_rd(bus.dev[0], 2, 2), 0x1042);
	/* Reads of the config past its end see nothing. */
	assert_int_equal(drv_r(bus.dev[0], VPCI_DEVCFG + 0x100, 4), 0);
	/* The same file can't be opened for writing twice. */
	snprintf(spec, sizeof(spec), "path=%s,format=raw", raw);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, NULL), -EINVAL);

	/* Device state: identity only, and a different disk is refused on load. */
	{
		struct virtio_blk_state st;

		assert_int_equal(virtio_pci_device_state_size(a), sizeof(st));
		assert_int_equal(virtio_pci_device_save(a, &st), 0);
		assert_int_equal(st.capacity, DISK / 512);
		assert_int_equal(st.readonly, 0);
		assert_int_equal(virtio_pci_device_load(a, &st), 0);
		assert_int_equal(virtio_pci_device_load(b, &st), -EINVAL);
	}
	virtio_pci_free(a);
	virtio_pci_free(b);
	unlink(raw);
	unlink(q);
	free(raw);
	free(q);
	fake_mem_fini(&fm);
}

/* Write through the device on its I/O thread, then read the image back directly. */
static void end_to_end(const char *format)
{
	struct fake_mem fm;
	struct pci_bus bus;
	struct drv_vq dq;
	struct virtio_pci *vp;
	char *path = tmp_disk(strcmp(format, "raw") ? 0 : DISK, NULL), spec[256];
	struct pimg *img;
	uint8_t back[512];

	fake_mem_init(&fm);
	fake_bus_init(&bus);
	if (strcmp(format, "raw"))
		assert_int_equal(pimg_create(path, format, DISK, NULL), 0);
	snprintf(spec, sizeof(spec), "path=%s,format=%s", path, format);
	assert_int_equal(virtio_blk_create(&bus, &fm.gm, spec, &vp), 0);
	drv_vq_setup(&dq, &fm, 64, RING);
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 1, &dq),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);

	/* Write a pattern to sector 7 through an indirect table, then flush. */
	memset(gpa_ptr(&fm, DATA), 0x3c, 512);
	memcpy(gpa_ptr(&fm, HDR), &(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_OUT, .sector = 7 },
	       16);
	drv_put_desc(&fm, 0x9000, HDR, 16, VRING_DESC_F_NEXT, 1);
	drv_put_desc(&fm, 0x9010, DATA, 512, VRING_DESC_F_NEXT, 2);
	drv_put_desc(&fm, 0x9020, STAT, 1, VRING_DESC_F_WRITE, 0);
	drv_set_desc(&dq, 0, 0x9000, 48, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&dq, 0);
	memcpy(gpa_ptr(&fm, HDR + 0x20), &(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_FLUSH },
	       16);
	drv_set_desc(&dq, 1, HDR + 0x20, 16, VRING_DESC_F_NEXT, 2);
	drv_set_desc(&dq, 2, STAT + 1, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq, 1);
	drv_notify(bus.dev[0], 0);
	assert_true(drv_wait_used(&dq, 2));
	assert_int_equal(*(uint8_t *)gpa_ptr(&fm, STAT), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)gpa_ptr(&fm, STAT + 1), VIRTIO_BLK_S_OK);

	/* Reads through the device see it too. */
	memcpy(gpa_ptr(&fm, HDR + 0x40), &(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = 7 },
	       16);
	drv_set_desc(&dq, 3, HDR + 0x40, 16, VRING_DESC_F_NEXT, 4);
	drv_set_desc(&dq, 4, DATA + 0x1000, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 5);
	drv_set_desc(&dq, 5, STAT + 2, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq, 3);
	drv_notify(bus.dev[0], 0);
	assert_true(drv_wait_used(&dq, 3));
	assert_memory_equal(gpa_ptr(&fm, DATA + 0x1000), gpa_ptr(&fm, DATA), 512);

	/* A request of three segments cut anywhere (100 + 300 + 624 bytes, one request to
	 * the image: pimg_pwritev) to sectors 20-21, read back in two other segments. */
	for (int i = 0; i < 1024; i++)
		*(uint8_t *)gpa_ptr(&fm, DATA + 0x2000 + i) = (uint8_t)(i * 7 + 1);
	memcpy(gpa_ptr(&fm, HDR + 0x60), &(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_OUT, .sector = 20 },
	       16);
	drv_set_desc(&dq, 6, HDR + 0x60, 16, VRING_DESC_F_NEXT, 7);
	drv_set_desc(&dq, 7, DATA + 0x2000, 100, VRING_DESC_F_NEXT, 8);
	drv_set_desc(&dq, 8, DATA + 0x2000 + 100, 300, VRING_DESC_F_NEXT, 9);
	drv_set_desc(&dq, 9, DATA + 0x2000 + 400, 624, VRING_DESC_F_NEXT, 10);
	drv_set_desc(&dq, 10, STAT + 3, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq, 6);
	memcpy(gpa_ptr(&fm, HDR + 0x80), &(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = 20 },
	       16);
	drv_set_desc(&dq, 11, HDR + 0x80, 16, VRING_DESC_F_NEXT, 12);
	drv_set_desc(&dq, 12, DATA + 0x3000, 777, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 13);
	drv_set_desc(&dq, 13, DATA + 0x3000 + 777, 247, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 14);
	drv_set_desc(&dq, 14, STAT + 4, 1, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq, 11);
	drv_notify(bus.dev[0], 0);
	assert_true(drv_wait_used(&dq, 5));
	assert_int_equal(*(uint8_t *)gpa_ptr(&fm, STAT + 3), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)gpa_ptr(&fm, STAT + 4), VIRTIO_BLK_S_OK);
	assert_memory_equal(gpa_ptr(&fm, DATA + 0x3000), gpa_ptr(&fm, DATA + 0x2000), 1024);

	virtio_pci_free(vp); /* flushes and closes the image */
	img = pimg_open(path, format, PIMG_O_RDONLY);
	assert_non_null(img);
	assert_int_equal(pimg_size(img), DISK);
	assert_int_equal(pimg_pread(img, back, sizeof(back), 7 * 512), 0);
	assert_memory_equal(back, gpa_ptr(&fm, DATA), 512);
	assert_int_equal(pimg_pread(img, back, sizeof(back), 8 * 512), 0);
	assert_int_equal(back[0] | back[511], 0);
	{
		uint8_t two[1024];

		assert_int_equal(pimg_pread(img, two, sizeof(two), 20 * 512), 0);
		assert_memory_equal(two, gpa_ptr(&fm, DATA + 0x2000), sizeof(two));
	}
	pimg_close(img);
	unlink(path);
	free(path);
	fake_mem_fini(&fm);
}

static void test_end_to_end_raw(void **state)
{
	(void)state;
	end_to_end("raw");
}

static void test_end_to_end_qcow2(void **state)
{
	(void)state;
	end_to_end("qcow2");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_write_then_read),
		T(test_read_scattered),
		T(test_status_in_data_descriptor),
		T(test_out_of_range),
		T(test_read_only),
		T(test_flush),
		T(test_get_id),
		T(test_discard_and_write_zeroes),
		T(test_bad_requests),
		T(test_no_status_byte),
		T(test_backend_errors),
		T(test_malformed_chain_breaks_device),
		T(test_config),
		cmocka_unit_test(test_raw_backend),
		cmocka_unit_test(test_img_handover),
		cmocka_unit_test(test_img_handover_qcow2),
		cmocka_unit_test(test_img_handover_without_path),
		cmocka_unit_test(test_create_specs),
		cmocka_unit_test(test_create_backing_option),
		cmocka_unit_test(test_end_to_end_raw),
		cmocka_unit_test(test_end_to_end_qcow2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
