// SPDX-License-Identifier: MIT
/*
 * virtio-balloon's free page reporting: a reported range of shared memfd RAM becomes
 * a hole in the file (zeros, fewer blocks), of private RAM zeros again; a range that
 * is not wholly inside RAM (past the end, wrapping, in the hole above it) breaks the
 * queue before anything is dropped; a chain with a device-readable buffer, a part
 * page and inflateq's buffers drop nothing; the config's num_pages stays 0.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_balloon.h>

#include "fake_dev.h"
#include "internal.h"
#include "util.h"

#define RING   0x1000u
#define REPORT 2 /* the reporting queue */
#define BLOCK  0x80000u /* the reported range */
#define BLEN   0x40000u
#define FILL   0xa5

struct fixture {
	struct fake_mem fm;
	struct virtio_dev dev;
	struct fake_transport ft;
	struct drv_vq dq[3];
	int fd; /* -1: private anonymous RAM */
};

/* Guest RAM as the VMM makes it: slots of one shared memfd, or private anonymous. */
static struct fixture *fixture_new(bool shared)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int flags = shared ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;

	assert_non_null(f);
	f->fd = -1;
	if (shared) {
		f->fd = memfd_create("balloon-test", MFD_CLOEXEC);
		assert_true(f->fd >= 0);
		assert_int_equal(ftruncate(f->fd, FAKE_RAM), 0);
	}
	f->fm.buf[0] = mmap(NULL, FAKE_SLOT0, PROT_READ | PROT_WRITE, flags, f->fd, 0);
	f->fm.buf[1] = mmap(NULL, FAKE_SLOT1, PROT_READ | PROT_WRITE, flags, f->fd,
			    shared ? FAKE_SLOT0 : 0);
	assert_true(f->fm.buf[0] != MAP_FAILED && f->fm.buf[1] != MAP_FAILED);
	f->fm.gm.slot[0] = (struct guest_mem_slot){ .gpa = 0, .size = FAKE_SLOT0,
						    .hva = f->fm.buf[0] };
	f->fm.gm.slot[1] = (struct guest_mem_slot){ .gpa = FAKE_SLOT0, .size = FAKE_SLOT1,
						    .hva = f->fm.buf[1], .file_off = FAKE_SLOT0 };
	f->fm.gm.nr_slots = 2;
	f->fm.gm.fd = f->fd;
	f->fm.gm.shared = shared;
	f->fm.gm.total = FAKE_RAM;
	memset(f->fm.buf[0] + RING + 0x4000 * 3, FILL, FAKE_SLOT0 - RING - 0x4000 * 3);
	memset(f->fm.buf[1], FILL, FAKE_SLOT1);
	assert_int_equal(virtio_balloon_init(&f->dev, &f->fm.gm), 0);
	assert_int_equal(fake_dev_setup(&f->dev, &f->ft, &f->fm, f->dq, ~0ULL, 8, RING), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	virtio_dev_fini(&f->dev);
	munmap(f->fm.buf[0], FAKE_SLOT0);
	munmap(f->fm.buf[1], FAKE_SLOT1);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

/* Queue q gets one chain of n descriptors (addr, len, flags) and is kicked. */
static void post(struct fixture *f, unsigned int q, unsigned int n, const uint64_t *addr,
		 const uint32_t *len, const uint16_t *flags)
{
	struct drv_vq *dq = &f->dq[q];
	unsigned int i;

	for (i = 0; i < n; i++)
		drv_set_desc(dq, i, addr[i], len[i],
			     flags[i] | (i + 1 < n ? VRING_DESC_F_NEXT : 0), i + 1);
	drv_kick_head(dq, 0);
	virtio_balloon_ops.handle(&f->dev, q, EPOLLIN);
}

static void report(struct fixture *f, uint64_t addr, uint32_t len)
{
	uint16_t w = VRING_DESC_F_WRITE;

	post(f, REPORT, 1, &addr, &len, &w);
}

static bool all(const uint8_t *p, size_t len, uint8_t v)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Every guest byte past the rings still holds FILL. */
static bool untouched(struct fixture *f)
{
	return all(f->fm.buf[0] + RING + 0x4000 * 3, FAKE_SLOT0 - RING - 0x4000 * 3, FILL) &&
	       all(f->fm.buf[1], FAKE_SLOT1, FILL);
}

/* The chain came back (used length 0) and the driver was told. */
static void answered(struct fixture *f, unsigned int q, uint16_t n)
{
	uint32_t id, len;

	assert_int_equal(drv_used_idx(&f->dq[q]), n);
	drv_used_elem(&f->dq[q], n - 1, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_true(f->ft.notifies[q] > 0);
	assert_int_equal(f->ft.resets, 0);
}

static void test_report_memfd(void **state)
{
	struct fixture *f = fixture_new(true);
	struct stat before, after;

	(void)state;
	assert_int_equal(fstat(f->fd, &before), 0);
	report(f, BLOCK, BLEN);
	answered(f, REPORT, 1);
	/* Checked before reading: a read through a shared mapping fills the hole again. */
	assert_int_equal(lseek(f->fd, RING + 0x4000 * 3, SEEK_HOLE), BLOCK);
	assert_int_equal(lseek(f->fd, BLOCK, SEEK_DATA), BLOCK + BLEN);
	assert_int_equal(fstat(f->fd, &after), 0);
	assert_int_equal(before.st_blocks - after.st_blocks, BLEN / 512);
	assert_true(all(f->fm.buf[0] + BLOCK, BLEN, 0));
	/* Around it: every byte kept. */
	assert_true(f->fm.buf[0][BLOCK - 1] == FILL && f->fm.buf[0][BLOCK + BLEN] == FILL);

	/* The guest uses the pages again: they are RAM like any other. */
	memset(f->fm.buf[0] + BLOCK, 0x3c, BLEN);
	assert_true(all(f->fm.buf[0] + BLOCK, BLEN, 0x3c));

	/* A range across the two slots: both parts dropped. */
	report(f, FAKE_SLOT0 - 0x2000, 0x4000);
	answered(f, REPORT, 2);
	assert_true(all(f->fm.buf[0] + FAKE_SLOT0 - 0x2000, 0x2000, 0));
	assert_true(all(f->fm.buf[1], 0x2000, 0));
	assert_int_equal(f->fm.buf[1][0x2000], FILL);
	fixture_free(f);
}

static void test_report_private(void **state)
{
	struct fixture *f = fixture_new(false);

	(void)state;
	report(f, BLOCK, BLEN);
	answered(f, REPORT, 1);
	assert_true(all(f->fm.buf[0] + BLOCK, BLEN, 0));
	assert_true(f->fm.buf[0][BLOCK - 1] == FILL && f->fm.buf[0][BLOCK + BLEN] == FILL);
	fixture_free(f);
}

/* Not wholly inside RAM: the queue is broken before anything is dropped. */
static void test_report_outside(void **state)
{
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ FAKE_RAM - 0x1000, 0x2000 },		/* past the end */
		{ FAKE_RAM, 0x1000 },			/* just past it */
		{ 0xfffffffffffff000ull, 0x2000 },	/* wraps to 0 */
		{ 0x10000000, BLEN },			/* in the hole above RAM */
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct fixture *f = fixture_new(true);
		struct stat st0, st1;

		assert_int_equal(fstat(f->fd, &st0), 0);
		report(f, bad[i].addr, bad[i].len);
		assert_int_equal(drv_used_idx(&f->dq[REPORT]), 0);
		assert_int_equal(f->ft.resets, 1);
		assert_true(untouched(f));
		assert_int_equal(fstat(f->fd, &st1), 0);
		assert_int_equal(st0.st_blocks, st1.st_blocks);
		fixture_free(f);
	}
}

/* What must not drop: readable buffers, part pages, the inflate and deflate queues. */
static void test_report_refused(void **state)
{
	struct fixture *f = fixture_new(true);
	uint64_t addr[2] = { BLOCK, BLOCK + BLEN };
	uint32_t len[2] = { BLEN, BLEN };
	uint16_t ro[2] = { 0, VRING_DESC_F_WRITE };
	uint32_t pfn = BLOCK >> 12;

	(void)state;
	/* Device-readable, then readable before writable: the whole chain is refused. */
	post(f, REPORT, 1, addr, len, ro);
	answered(f, REPORT, 1);
	post(f, REPORT, 2, addr, len, ro);
	answered(f, REPORT, 2);
	assert_true(untouched(f));

	/* A buffer without one whole page in it. */
	report(f, BLOCK + 0x800, 0x1000);
	answered(f, REPORT, 3);
	assert_true(untouched(f));

	/* inflateq and deflateq: returned unread, nothing dropped. */
	memcpy(f->fm.buf[0] + 0xf0000, &pfn, sizeof(pfn));
	addr[0] = 0xf0000;
	len[0] = sizeof(pfn);
	ro[0] = 0;
	post(f, 0, 1, addr, len, ro);
	answered(f, 0, 1);
	post(f, 1, 1, addr, len, ro);
	answered(f, 1, 1);
	assert_int_equal(f->fm.buf[0][BLOCK], FILL);
	fixture_free(f);
}

static void test_config(void **state)
{
	struct fixture *f = fixture_new(false);
	const struct virtio_dev_ops *ops = &virtio_balloon_ops;
	uint32_t v[2], w = 0x56781234, big = 0xffffffff;
	uint8_t st[8];

	(void)state;
	assert_true(f->dev.host_features & (1ULL << VIRTIO_BALLOON_F_REPORTING));
	assert_int_equal(f->dev.num_queues, 3);
	ops->cfg_read(&f->dev, 0, v, 8);
	assert_int_equal(v[0] | v[1], 0);
	/* num_pages is the device's; actual the driver's, also through a straddling write. */
	ops->cfg_write(&f->dev, 0, &big, 4);
	ops->cfg_write(&f->dev, 4, &w, 4);
	ops->cfg_write(&f->dev, 2, &big, 4);
	ops->cfg_read(&f->dev, 0, v, 8);
	assert_int_equal(v[0], 0);
	assert_int_equal(v[1], 0x5678ffff);

	assert_int_equal(ops->state_size, sizeof(st));
	assert_int_equal(ops->save(&f->dev, st), 0);
	ops->reset(&f->dev);
	ops->cfg_read(&f->dev, 4, v, 4);
	assert_int_equal(v[0], 0);
	assert_int_equal(ops->load(&f->dev, st), 0);
	ops->cfg_read(&f->dev, 4, v, 4);
	assert_int_equal(v[0], 0x5678ffff);
	st[0] = 1; /* a target of 1 page is not this device's */
	assert_int_equal(ops->load(&f->dev, st), -EINVAL);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_memfd),
		cmocka_unit_test(test_report_private),
		cmocka_unit_test(test_report_outside),
		cmocka_unit_test(test_report_refused),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
