/* SPDX-License-Identifier: MIT */
/*
 * The modern virtio-pci transport (virtio 1.x only, section 4.1).
 *
 * Layout, fixed for every device:
 *   BAR 0 (64-bit memory, 16 KiB): common cfg at 0x0000, ISR at 0x1000, device
 *         cfg at 0x2000, notify doorbells at 0x3000 (4 bytes per queue; each one
 *         an ioeventfd on the queue's kick eventfd).
 *   BAR 2 (32-bit memory, 4 KiB): MSI-X table at 0x000, PBA at 0x800.
 *   Config space: MSI-X capability at 0x40, then the virtio vendor capabilities
 *   (common, ISR, device, notify, PCI cfg access).
 * Vector 0..num_queues: each MSI-X vector has an eventfd bound to a KVM MSI route
 * (irqfd); masking and the PBA are handled here, so a masked vector's eventfd
 * is never written.
 *
 * Device status state machine (virtio 1.x 2.1, 3.1):
 *
 *   0 --ACK--> 1 --DRIVER--> 3 --FEATURES_OK--> 11 --DRIVER_OK--> 15 (running)
 *                                   |                                |
 *                 refused: features not a subset of the offer,      device error:
 *                 or VERSION_1 missing (bit stays clear)             |= NEEDS_RESET
 *   any --write 0--> reset (I/O thread joined, queues/features forgotten)
 *   any --FAILED--> I/O thread stopped until reset
 *
 * Bits are only ever added by the driver; a write that clears one (other than by
 * writing 0) is ignored. DRIVER_OK without FEATURES_OK is refused with NEEDS_RESET.
 * Queue registers can be written only while the queue is disabled and the device
 * is not running; queue sizes that are not a power of two are refused.
 * Doorbells before DRIVER_OK are ignored (a kick that reached the eventfd is
 * only looked at once the device runs, by which time the rings are checked).
 *
 * Locks: cfg_lock serialises guest register accesses (vCPU threads) and is held
 * while the I/O thread is joined; lock protects status, ISR and MSI-X state,
 * which the I/O thread also touches when it signals. Order: cfg_lock, then lock.
 */
#ifndef PLINTH_VMM_VIRTIO_VIRTIO_PCI_H
#define PLINTH_VMM_VIRTIO_VIRTIO_PCI_H

#include <stdint.h>

#include "devices.h"
#include "hw/pci.h"
#include "queue.h"
#include "virtio.h"

#define VPCI_BAR_CFG   0
#define VPCI_BAR_MSIX  2
#define VPCI_COMMON    0x0000
#define VPCI_ISR       0x1000
#define VPCI_DEVCFG    0x2000
#define VPCI_NOTIFY    0x3000
#define VPCI_BAR0_SIZE 0x4000
#define VPCI_NOTIFY_MULT 4
#define VPCI_MSIX_TABLE 0x000
#define VPCI_MSIX_PBA   0x800
#define VPCI_BAR2_SIZE  0x1000
#define VPCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)
#define VPCI_CAP_MSIX  0x40

struct virtio_pci_msix_entry {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl; /* bit 0: masked */
};

/* Everything a snapshot needs to recreate the transport and its queues. */
struct virtio_pci_state {
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint64_t driver_features;    /* as written by the driver */
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint8_t pad;
	uint16_t queue_select;
	uint16_t msix_config;        /* vector of config interrupts */
	uint16_t msix_ctrl;          /* MSI-X message control (enable, function mask) */
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint32_t pba;                /* pending bits, one per vector */
	struct virtio_pci_msix_entry msix[VPCI_MAX_VECTORS];
	struct virtq_state queue[VIRTIO_MAX_QUEUES];
	/* PCI cfg access capability window (VIRTIO_PCI_CAP_PCI_CFG). */
	uint8_t cfgwin_bar;
	uint32_t cfgwin_off;
	uint32_t cfgwin_len;
};

struct virtio_pci;

/*
 * Wrap an initialised vdev (virtio_dev_init) in a virtio-pci function: builds
 * the config space and BARs, creates the MSI vector eventfds. Takes ownership of
 * vdev's contents (virtio_pci_free finalises it; vdev itself must outlive vp and
 * is not freed). NULL on error, logged.
 */
struct virtio_pci *virtio_pci_new(struct virtio_dev *vdev);
/* The PCI function, for the bus. */
struct pci_device *virtio_pci_pdev(struct virtio_pci *vp);
/*
 * The usual sequence for a device created from the command line: wrap vdev (heap
 * allocated; ownership passes here, also on failure) and attach it to bus.
 * *out (if not NULL) receives the transport, which virtio_pci_free then frees
 * together with vdev. 0 or -errno.
 */
int virtio_pci_create_on(struct pci_bus *bus, struct virtio_dev *vdev, struct virtio_pci **out);
/*
 * The same for a device without options (--rng, --balloon): spec must be empty (else
 * one line naming opt), init makes the device on a fresh vdev. 0 or -errno.
 */
int virtio_pci_create_plain(struct pci_bus *bus, const struct guest_mem *mem, const char *opt,
			    const char *spec,
			    int (*init)(struct virtio_dev *vdev, const struct guest_mem *mem),
			    struct virtio_pci **out);
/* Add to the bus and register the doorbells. 0 or -errno. */
int virtio_pci_attach(struct virtio_pci *vp, struct pci_bus *bus);
/* Stop the device, drop doorbells and routes, finalise vdev (and free it if owned), free vp. */
void virtio_pci_free(struct virtio_pci *vp);
struct virtio_dev *virtio_pci_vdev(struct virtio_pci *vp);

/*
 * Save/restore, with the vCPUs paused. save quiesces the I/O thread (letting the
 * request in hand finish), copies, and lets it run on. load replaces the whole
 * transport and queue state, checks it against this device (-EINVAL if it does
 * not fit: feature bits not offered, bad queue sizes, rings outside RAM), and
 * starts the device if the saved state was running.
 */
int virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st);
/* The same, calling parked(vdev, opaque) while the I/O thread is parked (after the
 * copy): the device's own state then matches the queues'. Its error is returned. */
int virtio_pci_save_parked(struct virtio_pci *vp, struct virtio_pci_state *st,
			   int (*parked)(struct virtio_dev *vdev, void *opaque), void *opaque);
int virtio_pci_load(struct virtio_pci *vp, const struct virtio_pci_state *st);

/*
 * The device-specific part (struct virtio_blk_state, virtio_net_state, ...):
 * state_size bytes (0: nothing beyond the queues). save/load as the ops table's.
 */
size_t virtio_pci_device_state_size(const struct virtio_pci *vp);
int virtio_pci_device_save(struct virtio_pci *vp, void *state);
int virtio_pci_device_load(struct virtio_pci *vp, const void *state);

extern const struct pci_device_ops virtio_pci_device_ops;
extern const struct virtio_transport_ops virtio_pci_transport_ops;

#endif
