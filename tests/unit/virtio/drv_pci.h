/* SPDX-License-Identifier: MIT */
/*
 * A minimal virtio-pci driver for unit tests: the guest side of the handshake,
 * done through the device's bar_read/bar_write/cfg ops the way Linux does it.
 */
#ifndef PLINTH_TESTS_VIRTIO_DRV_PCI_H
#define PLINTH_TESTS_VIRTIO_DRV_PCI_H

#include <time.h>

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "fake.h"
#include "fake_bus.h"
#include "virtio-pci.h"

#define CM(off) (VPCI_COMMON + (off))

static inline void drv_w(struct pci_device *d, uint64_t off, uint64_t v, unsigned int len)
{
	bar_wr(d, VPCI_BAR_CFG, off, v, len);
}

static inline uint64_t drv_r(struct pci_device *d, uint64_t off, unsigned int len)
{
	return bar_rd(d, VPCI_BAR_CFG, off, len);
}

static inline uint8_t drv_get_status(struct pci_device *d)
{
	return (uint8_t)drv_r(d, CM(VIRTIO_PCI_COMMON_STATUS), 1);
}

static inline void drv_set_status(struct pci_device *d, uint8_t s)
{
	drv_w(d, CM(VIRTIO_PCI_COMMON_STATUS), s, 1);
}

static inline uint64_t drv_dev_features(struct pci_device *d)
{
	uint64_t f;

	drv_w(d, CM(VIRTIO_PCI_COMMON_DFSELECT), 0, 4);
	f = drv_r(d, CM(VIRTIO_PCI_COMMON_DF), 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_DFSELECT), 1, 4);
	return f | drv_r(d, CM(VIRTIO_PCI_COMMON_DF), 4) << 32;
}

static inline void drv_set_features(struct pci_device *d, uint64_t f)
{
	drv_w(d, CM(VIRTIO_PCI_COMMON_GFSELECT), 0, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_GF), (uint32_t)f, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_GFSELECT), 1, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_GF), f >> 32, 4);
}

/* Program and enable one MSI-X vector (address/data chosen by the test). */
static inline void drv_msix_vector(struct pci_device *d, unsigned int v, bool masked)
{
	bar_wr(d, VPCI_BAR_MSIX, 16 * v, 0xfee00000u, 4);
	bar_wr(d, VPCI_BAR_MSIX, 16 * v + 4, 0, 4);
	bar_wr(d, VPCI_BAR_MSIX, 16 * v + 8, 0x40 + v, 4);
	bar_wr(d, VPCI_BAR_MSIX, 16 * v + 12, masked, 4);
}

static inline void drv_msix_enable(struct pci_device *d, unsigned int nvec)
{
	unsigned int v;

	cfg_wr(d, VPCI_CAP_MSIX + 2, 0xc000, 2); /* enable, all masked while set up */
	for (v = 0; v < nvec; v++)
		drv_msix_vector(d, v, false);
	cfg_wr(d, VPCI_CAP_MSIX + 2, 0x8000, 2);
}

static inline void drv_queue(struct pci_device *d, uint16_t q, const struct drv_vq *dq,
			     uint16_t vector)
{
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_SELECT), q, 2);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_SIZE), dq->size, 2);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_MSIX), vector, 2);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_DESCLO), (uint32_t)dq->desc, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_DESCHI), dq->desc >> 32, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_AVAILLO), (uint32_t)dq->avail, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_AVAILHI), dq->avail >> 32, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_USEDLO), (uint32_t)dq->used, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_USEDHI), dq->used >> 32, 4);
	drv_w(d, CM(VIRTIO_PCI_COMMON_Q_ENABLE), 1, 2);
}

/* Reset, negotiate features (device's offer & want), MSI-X, queues, DRIVER_OK. */
static inline uint8_t drv_init(struct pci_device *d, uint64_t want, unsigned int nq,
			       struct drv_vq *dq)
{
	unsigned int q;

	drv_set_status(d, 0);
	drv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_set_features(d, drv_dev_features(d) & want);
	drv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				  VIRTIO_CONFIG_S_FEATURES_OK);
	drv_msix_enable(d, nq + 1);
	drv_w(d, CM(VIRTIO_PCI_COMMON_MSIX), 0, 2);
	for (q = 0; q < nq; q++)
		drv_queue(d, (uint16_t)q, &dq[q], (uint16_t)(q + 1));
	drv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	return drv_get_status(d);
}

static inline void drv_notify(struct pci_device *d, uint16_t q)
{
	drv_w(d, VPCI_NOTIFY + VPCI_NOTIFY_MULT * q, q, 2);
}

/* Wait (up to 5 s) until the used ring reaches idx; true if it did. */
static inline bool drv_wait_used(struct drv_vq *dq, uint16_t idx)
{
	struct timespec ts = { 0, 1000000 };
	int i;

	for (i = 0; i < 5000; i++) {
		if (drv_used_idx(dq) == idx)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

#endif
