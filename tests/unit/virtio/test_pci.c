// SPDX-License-Identifier: MIT
/*
 * The virtio-pci transport through its PCI ops, with virtio-rng behind it: config
 * space, the status state machine, queue registers, doorbells (ioeventfd and the
 * bar_write fallback), MSI-X routes and masking, and save/restore.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices.h"
#include "drv_pci.h"
#include "internal.h"

#define RING 0x1000u
#define BUF  0x20000u
#define NQ   1

struct fixture {
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp;
	struct pci_device *d;
	struct drv_vq dq[NQ];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	fake_bus_init(&f->bus);
	if (virtio_rng_create(&f->bus, &f->fm.gm, NULL, &f->vp))
		return -1;
	f->d = f->bus.dev[0];
	drv_vq_setup(&f->dq[0], &f->fm, 16, RING);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_pci_free(f->vp);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

/* Queue one 64-byte writable buffer as chain head i. */
static void rng_request(struct fixture *f, uint16_t i)
{
	/* Like Linux with callbacks enabled: interrupt me for anything after what I saw. */
	drv_set_used_event(&f->dq[0], drv_used_idx(&f->dq[0]));
	drv_set_desc(&f->dq[0], i, BUF + 64u * i, 64, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], i);
}

static const uint8_t RUNNING = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
static const uint64_t WANT = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			     (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	unsigned int seen = 0, guard = 0;
	uint32_t cap;

	assert_int_equal(cfg_rd(f->d, 0x00, 2), 0x1af4);
	assert_int_equal(cfg_rd(f->d, 0x02, 2), 0x1040 + 4); /* virtio-rng */
	assert_int_equal(cfg_rd(f->d, 0x08, 1), 1);
	assert_true(cfg_rd(f->d, 0x06, 2) & 0x10);
	assert_true(cfg_rd(f->d, 0x2e, 2) >= 0x40);
	assert_int_equal(f->d->bar_kind[0], PCI_BAR_MEM64);
	assert_int_equal(f->d->bar_kind[2], PCI_BAR_MEM32);

	for (cap = cfg_rd(f->d, 0x34, 1); cap && guard < 16; cap = cfg_rd(f->d, cap + 1, 1), guard++) {
		uint32_t id = cfg_rd(f->d, cap, 1);

		if (id == 0x11) {
			assert_int_equal(cfg_rd(f->d, cap + 2, 2) & 0x7ff, NQ); /* NQ + 1 vectors */
			assert_int_equal(cfg_rd(f->d, cap + 4, 4), VPCI_BAR_MSIX);
			assert_int_equal(cfg_rd(f->d, cap + 8, 4), 0x800 | VPCI_BAR_MSIX);
			seen |= 1u << 0;
			continue;
		}
		assert_int_equal(id, 0x09);
		switch (cfg_rd(f->d, cap + 3, 1)) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			assert_int_equal(cfg_rd(f->d, cap + 8, 4), VPCI_COMMON);
			assert_true(cfg_rd(f->d, cap + 12, 4) >= 0x38);
			seen |= 1u << 1;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			assert_int_equal(cfg_rd(f->d, cap + 8, 4), VPCI_NOTIFY);
			assert_int_equal(cfg_rd(f->d, cap + 16, 4), VPCI_NOTIFY_MULT);
			seen |= 1u << 2;
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			assert_int_equal(cfg_rd(f->d, cap + 8, 4), VPCI_ISR);
			seen |= 1u << 3;
			break;
		case VIRTIO_PCI_CAP_PCI_CFG:
			seen |= 1u << 4;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			fail_msg("virtio-rng has no device config");
			break;
		default:
			fail_msg("unexpected capability");
		}
		assert_int_equal(cfg_rd(f->d, cap + 4, 1), VPCI_BAR_CFG);
	}
	assert_int_equal(seen, 0x1f);
	assert_true(guard < 16);
}

static void test_doorbells_follow_bar(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vdev = virtio_pci_vdev(f->vp);
	uint64_t bell = FAKE_BAR0_BASE + VPCI_NOTIFY;

	assert_int_equal(f->bus.host.nr_ioevt, NQ);
	assert_int_equal(fake_ioevt_fd(&f->bus, bell), vdev->kick_fd[0]);
	assert_int_equal(f->bus.host.ioevt[0].len, 2);

	f->d->ops->bar_remap(f->d, 0, FAKE_BAR0_BASE, 0xf0000000);
	assert_int_equal(fake_ioevt_fd(&f->bus, bell), -1);
	assert_int_equal(fake_ioevt_fd(&f->bus, 0xf0000000 + VPCI_NOTIFY), vdev->kick_fd[0]);
	f->d->ops->bar_remap(f->d, 2, 0, 0xf1000000); /* the MSI-X BAR has no doorbells */
	assert_int_equal(f->bus.host.nr_ioevt, NQ);
	f->d->ops->bar_remap(f->d, 0, 0xf0000000, 0); /* decoding off */
	assert_int_equal(f->bus.host.nr_ioevt, 0);
	f->d->ops->bar_remap(f->d, 0, 0, FAKE_BAR0_BASE);
	assert_int_equal(fake_ioevt_fd(&f->bus, bell), vdev->kick_fd[0]);
}

static void test_feature_negotiation(void **state)
{
	struct fixture *f = *state;
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	uint64_t offer = drv_dev_features(f->d);

	assert_true(offer & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(offer & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv_set_status(f->d, s);

	/* A legacy driver (no VERSION_1): FEATURES_OK does not stick. */
	drv_set_features(f->d, 1ULL << VIRTIO_RING_F_EVENT_IDX);
	drv_set_status(f->d, s | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(drv_get_status(f->d), s);
	/* Bits the device did not offer. */
	drv_set_features(f->d, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 50));
	drv_set_status(f->d, s | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(drv_get_status(f->d), s);

	drv_set_features(f->d, WANT);
	drv_set_status(f->d, s | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(drv_get_status(f->d), s | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(virtio_pci_vdev(f->vp)->features, WANT);
	/* Features are frozen from FEATURES_OK on. */
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_GFSELECT), 0, 4);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_GF), 0, 4);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_GFSELECT), 1, 4);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_GF), 4), 1); /* VERSION_1 = bit 32 */
	/* The driver may not clear bits. */
	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_int_equal(drv_get_status(f->d), s | VIRTIO_CONFIG_S_FEATURES_OK);

	/* Reset forgets everything. */
	drv_set_status(f->d, 0);
	assert_int_equal(drv_get_status(f->d), 0);
	assert_int_equal(virtio_pci_vdev(f->vp)->features, 0);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_GFSELECT), 1, 4);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_GF), 4), 0);
}

static void test_driver_ok_without_features_ok(void **state)
{
	struct fixture *f = *state;
	uint8_t s;

	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				     VIRTIO_CONFIG_S_DRIVER_OK);
	s = drv_get_status(f->d);
	assert_false(s & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(s & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(virtio_pci_vdev(f->vp)->worker.running);
	drv_set_status(f->d, 0);
	assert_int_equal(drv_get_status(f->d), 0);
}

static void test_queue_size_checks(void **state)
{
	struct fixture *f = *state;

	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 64);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 48, 2); /* not a power of two */
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 64);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 0, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 64);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 32, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 32);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 128, 2); /* above the maximum */
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 32);

	/* Queues that don't exist read as size 0 and ignore writes. */
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 5, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 0);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 16, 2);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 1, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 0);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);

	/* A vector the device doesn't have reads back as NO_VECTOR. */
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_MSIX), 7, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_MSIX), 1, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_MSIX), 2), 1);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_MSIX), 9, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
}

static void test_queue_outside_ram(void **state)
{
	struct fixture *f = *state;

	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 0, 4);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCHI), 0x10, 4); /* 64 GiB: no RAM there */
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_AVAILLO), RING, 4);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_USEDLO), RING + 0x1000, 4);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 4), 0);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCHI), 4), 0x10);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 1, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	assert_true(drv_get_status(f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/*
 * A guest that resets the device and enables a bad ring in a loop: the log gets
 * a few lines, not one per round (issue 23).
 */
static void test_bad_queue_log_limited(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/plinth-log-XXXXXX", buf[16384];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO), lines = 0;
	ssize_t n;
	unsigned int i;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	for (i = 0; i < 500; i++) {
		drv_set_status(f->d, 0); /* reset */
		drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
		drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 0, 2);
		drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 0, 4);
		drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCHI), 0x10, 4);
		drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 1, 2);
		assert_true(drv_get_status(f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	}
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	for (ssize_t k = 0; k < n; k++)
		lines += buf[k] == '\n';
	close(fd);
	unlink(path);
	if (lines < 1 || lines > VIRTIO_LOG_BURST + 1)
		fail_msg("%d log lines for 500 bad rings:\n%s", lines, buf);
}

static void test_queue_locked_when_enabled(void **state)
{
	struct fixture *f = *state;

	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_queue(f->d, 0, &f->dq[0], 1);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 8, 2);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 0x100000, 4);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 0, 2);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_SIZE), 2), 16);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 4), f->dq[0].desc);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1);
}

static void test_notify_before_driver_ok(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vdev = virtio_pci_vdev(f->vp);
	const uint8_t *buf = gpa_ptr(&f->fm, BUF);
	unsigned int i, nonzero = 0;
	uint64_t v;

	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_set_features(f->d, WANT);
	drv_set_status(f->d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				     VIRTIO_CONFIG_S_FEATURES_OK);
	drv_queue(f->d, 0, &f->dq[0], 1);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	/* Ignored: no kick recorded, nothing consumed. */
	assert_int_equal(read(vdev->kick_fd[0], &v, sizeof(v)), -1);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
	drv_notify(f->d, 3); /* a queue that doesn't exist */

	/* Once running, the device looks at the ring on its own. */
	drv_set_status(f->d, RUNNING);
	assert_true(drv_wait_used(&f->dq[0], 1));
	for (i = 0; i < 64; i++)
		nonzero += buf[i] != 0;
	assert_true(nonzero > 32);
}

static void test_rng_irqfd(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *vdev = virtio_pci_vdev(f->vp);
	uint32_t id, len;
	uint64_t one = 1;

	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	assert_int_equal(f->bus.host.routes_added, NQ + 1);
	assert_int_equal(f->bus.host.route[1].addr, 0xfee00000u);
	assert_int_equal(f->bus.host.route[1].data, 0x41);
	assert_false(f->bus.host.route[1].masked);

	/* Doorbell through the bar_write fallback. */
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
	drv_used_elem(&f->dq[0], 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 64);
	usleep(10000);
	assert_int_equal(fake_route_count(&f->bus, 1), 1);
	assert_int_equal(fake_route_count(&f->bus, 0), 0);
	assert_int_equal(f->bus.host.msi_signals, 0);

	/* Doorbell through the ioeventfd, as KVM would deliver it. */
	rng_request(f, 1);
	assert_int_equal(write(fake_ioevt_fd(&f->bus, FAKE_BAR0_BASE + VPCI_NOTIFY), &one,
			       sizeof(one)), sizeof(one));
	assert_true(drv_wait_used(&f->dq[0], 2));
	assert_int_equal(vdev->kick_fd[0], fake_ioevt_fd(&f->bus, FAKE_BAR0_BASE + VPCI_NOTIFY));

	/* ISR: queue bit set, cleared by reading. */
	assert_int_equal(drv_r(f->d, VPCI_ISR, 1), 1);
	assert_int_equal(drv_r(f->d, VPCI_ISR, 1), 0);
}

static void test_msix_masking(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	drv_msix_vector(f->d, 1, true);
	assert_true(f->bus.host.route[1].masked);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
	usleep(10000);
	assert_int_equal(fake_route_count(&f->bus, 1), 0);
	assert_int_equal(bar_rd(f->d, VPCI_BAR_MSIX, VPCI_MSIX_PBA, 4), 1u << 1);

	/* Unmasking delivers the pending interrupt once. */
	bar_wr(f->d, VPCI_BAR_MSIX, 16 + 12, 0, 4);
	assert_int_equal(fake_route_count(&f->bus, 1), 1);
	assert_int_equal(bar_rd(f->d, VPCI_BAR_MSIX, VPCI_MSIX_PBA, 4), 0);
	assert_false(f->bus.host.route[1].masked);

	/* Function mask does the same for every vector. */
	cfg_wr(f->d, VPCI_CAP_MSIX + 2, 0xc000, 2);
	assert_int_equal(cfg_rd(f->d, VPCI_CAP_MSIX + 2, 2), 0xc000 | NQ);
	rng_request(f, 1);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 2));
	usleep(10000);
	assert_int_equal(fake_route_count(&f->bus, 1), 0);
	cfg_wr(f->d, VPCI_CAP_MSIX + 2, 0x8000, 2);
	assert_int_equal(fake_route_count(&f->bus, 1), 1);

	/* The table reads back what was written; the PBA ignores writes. */
	assert_int_equal(bar_rd(f->d, VPCI_BAR_MSIX, 16 + 8, 4), 0x41);
	bar_wr(f->d, VPCI_BAR_MSIX, VPCI_MSIX_PBA, 0xff, 4);
	assert_int_equal(bar_rd(f->d, VPCI_BAR_MSIX, VPCI_MSIX_PBA, 4), 0);
	/* Odd-sized or out-of-table accesses are ignored. */
	bar_wr(f->d, VPCI_BAR_MSIX, 16 + 8, 0x99, 2);
	bar_wr(f->d, VPCI_BAR_MSIX, 16 * 9, 0x99, 4);
	assert_int_equal(bar_rd(f->d, VPCI_BAR_MSIX, 16 + 8, 4), 0x41);
}

static void test_msi_without_routes(void **state)
{
	struct fixture *f = *state;

	f->bus.host.fail_route_add = -ENOSYS;
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
	usleep(10000);
	assert_int_equal(f->bus.host.msi_signals, 1);
	assert_int_equal(f->bus.host.last_msi_data, 0x41);
}

static void test_broken_chain_needs_reset(void **state)
{
	struct fixture *f = *state;
	uint8_t s = 0;
	int i;

	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	drv_set_desc(&f->dq[0], 0, BUF, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	drv_kick_head(&f->dq[0], 0);
	drv_notify(f->d, 0);
	for (i = 0; i < 5000 && !(s & VIRTIO_CONFIG_S_NEEDS_RESET); i++) {
		usleep(1000);
		s = drv_get_status(f->d);
	}
	assert_int_equal(s, RUNNING | VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
	assert_int_equal(fake_route_count(&f->bus, 0), 1); /* config change interrupt */
	assert_int_equal(drv_r(f->d, VPCI_ISR, 1), 2);
	/* More kicks don't make it spin or answer. */
	drv_notify(f->d, 0);
	usleep(10000);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);

	/* The driver resets and starts over; the device works again. */
	drv_vq_setup(&f->dq[0], &f->fm, 16, RING);
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
}

static void test_failed_stops_device(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	drv_set_status(f->d, RUNNING | VIRTIO_CONFIG_S_FAILED);
	assert_false(virtio_pci_vdev(f->vp)->worker.running);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	usleep(20000);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
}

static void test_pci_cfg_window(void **state)
{
	struct fixture *f = *state;
	uint32_t cap = 0, c, guard = 0;

	for (c = cfg_rd(f->d, 0x34, 1); c && guard++ < 16; c = cfg_rd(f->d, c + 1, 1))
		if (cfg_rd(f->d, c, 1) == 0x09 && cfg_rd(f->d, c + 3, 1) == VIRTIO_PCI_CAP_PCI_CFG)
			cap = c;
	assert_int_not_equal(cap, 0);
	cfg_wr(f->d, cap + 4, VPCI_BAR_CFG, 1);
	cfg_wr(f->d, cap + 8, VPCI_COMMON + VIRTIO_PCI_COMMON_NUMQ, 4);
	cfg_wr(f->d, cap + 12, 2, 4);
	assert_int_equal(cfg_rd(f->d, cap + 16, 2), NQ);
	/* Writes go through too: status via the window. */
	cfg_wr(f->d, cap + 8, VPCI_COMMON + VIRTIO_PCI_COMMON_STATUS, 4);
	cfg_wr(f->d, cap + 12, 1, 4);
	cfg_wr(f->d, cap + 16, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	assert_int_equal(drv_get_status(f->d), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* A window that doesn't match the access, or beyond the BAR, reads zero. */
	assert_int_equal(cfg_rd(f->d, cap + 16, 4), 0);
	cfg_wr(f->d, cap + 8, 0xfffffffc, 4);
	cfg_wr(f->d, cap + 12, 4, 4);
	assert_int_equal(cfg_rd(f->d, cap + 16, 4), 0);
	cfg_wr(f->d, cap + 4, 5, 1);
	cfg_wr(f->d, cap + 8, 0, 4);
	assert_int_equal(cfg_rd(f->d, cap + 16, 4), 0);
	/* Other capability bytes are read-only. */
	cfg_wr(f->d, cap + 3, 0x77, 1);
	assert_int_equal(cfg_rd(f->d, cap + 3, 1), VIRTIO_PCI_CAP_PCI_CFG);
}

static void test_odd_accesses(void **state)
{
	struct fixture *f = *state;

	/* Wrong widths are ignored; reads past the registers are zero. */
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_STATUS), 0x0101, 2);
	assert_int_equal(drv_get_status(f->d), 0);
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_SELECT), 0, 4);
	assert_int_equal(drv_r(f->d, 0x40, 4), 0);
	assert_int_equal(drv_r(f->d, VPCI_DEVCFG, 4), 0);
	assert_int_equal(drv_r(f->d, VPCI_BAR0_SIZE - 2, 4), 0);
	assert_int_equal(bar_rd(f->d, 4, 0, 4), 0);
	bar_wr(f->d, 4, 0, 1, 4);
	drv_w(f->d, VPCI_NOTIFY + 0x100, 1, 2);
	/* A 64-bit register in one access works too. */
	drv_w(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), 0x123456789abcdef0ull & ~0xfull, 8);
	assert_int_equal(drv_r(f->d, CM(VIRTIO_PCI_COMMON_Q_DESCHI), 4), 0x12345678);
}

static void test_save_load(void **state)
{
	struct fixture *f = *state;
	struct virtio_pci_state *st = calloc(1, sizeof(*st));
	struct virtio_pci *vp2;
	struct pci_bus bus2;

	assert_non_null(st);
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
	assert_int_equal(virtio_pci_save(f->vp, st), 0);
	assert_int_equal(st->status, RUNNING);
	assert_int_equal(st->queue[0].used_idx, 1);
	assert_int_equal(st->queue[0].last_avail, 1);
	assert_int_equal(st->queue_vector[0], 1);

	/* The source goes quiet (as after migration); a new device takes over the rings. */
	drv_set_status(f->d, 0);
	fake_bus_init(&bus2);
	assert_int_equal(virtio_rng_create(&bus2, &f->fm.gm, NULL, &vp2), 0);
	assert_int_equal(virtio_pci_load(vp2, st), 0);
	assert_int_equal(drv_get_status(bus2.dev[0]), RUNNING);
	assert_int_equal(bus2.host.routes_added, NQ + 1);
	rng_request(f, 1);
	drv_notify(bus2.dev[0], 0);
	assert_true(drv_wait_used(&f->dq[0], 2));

	/* A state that doesn't fit is refused, and the device keeps running. */
	st->queue[0].size = 48;
	assert_int_equal(virtio_pci_load(vp2, st), -EINVAL);
	st->queue[0].size = 16;
	st->queue[0].used_gpa = FAKE_RAM;
	assert_int_equal(virtio_pci_load(vp2, st), -EINVAL);
	st->queue[0].used_gpa = f->dq[0].used;
	st->driver_features |= 1ULL << 60;
	assert_int_equal(virtio_pci_load(vp2, st), -EINVAL);
	assert_int_equal(drv_get_status(bus2.dev[0]), RUNNING);

	virtio_pci_free(vp2);
	free(st);
}

struct hook_log {
	unsigned int calls;
	pthread_t thread;
	int ret;
};

static int record_hook(void *opaque)
{
	struct hook_log *h = opaque;

	h->calls++;
	h->thread = pthread_self();
	return h->ret;
}

/* DRIVER_OK is carried out by the device's own thread, which runs the VMM's hook first. */
static void test_thread_hook(void **state)
{
	struct fixture *f = *state;
	struct hook_log h = { 0 };

	virtio_pci_set_thread_hook(f->vp, record_hook, &h);
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	assert_int_equal(h.calls, 1);
	assert_false(pthread_equal(h.thread, pthread_self()));
	rng_request(f, 0);
	drv_notify(f->d, 0);
	assert_true(drv_wait_used(&f->dq[0], 1));
	/* Reset and again: the hook ran once for the thread's life. */
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING);
	assert_int_equal(h.calls, 1);
}

static void test_thread_hook_fails(void **state)
{
	struct fixture *f = *state;
	struct hook_log h = { .ret = -EPERM };

	virtio_pci_set_thread_hook(f->vp, record_hook, &h);
	assert_int_equal(drv_init(f->d, WANT, NQ, f->dq), RUNNING | VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(virtio_dev_running(virtio_pci_vdev(f->vp)));
	rng_request(f, 0);
	drv_notify(f->d, 0);
	usleep(20000);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
}

static void test_rng_spec(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtio_rng_create(&f->bus, &f->fm.gm, "foo=1", NULL), -EINVAL);
	f->bus.fail_add = -ENOSPC;
	assert_int_equal(virtio_rng_create(&f->bus, &f->fm.gm, "", NULL), -ENOSPC);
	assert_int_equal(f->bus.nr, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space),
		T(test_doorbells_follow_bar),
		T(test_feature_negotiation),
		T(test_driver_ok_without_features_ok),
		T(test_queue_size_checks),
		T(test_queue_outside_ram),
		T(test_bad_queue_log_limited),
		T(test_queue_locked_when_enabled),
		T(test_notify_before_driver_ok),
		T(test_rng_irqfd),
		T(test_msix_masking),
		T(test_msi_without_routes),
		T(test_broken_chain_needs_reset),
		T(test_failed_stops_device),
		T(test_pci_cfg_window),
		T(test_odd_accesses),
		T(test_save_load),
		T(test_thread_hook),
		T(test_thread_hook_fails),
		T(test_rng_spec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
