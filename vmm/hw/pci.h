/* SPDX-License-Identifier: MIT */
/*
 * PCI: the contract between the VMM core (host bridge, config space access through
 * 0xCF8/0xCFC and ECAM, BAR placement, ACPI description) and PCI devices (the
 * virtio-pci transport). There is no firmware: the bus assigns BAR addresses
 * itself when a device is added, inside the windows it describes in ACPI, and
 * Linux keeps them.
 *
 * Interrupts and doorbells go through struct pci_host_ops, which the VMM core
 * implements on KVM (GSI routes + irqfd, ioeventfd) and unit tests implement
 * with fakes, so devices can be tested without /dev/kvm.
 */
#ifndef PLINTH_VMM_HW_PCI_H
#define PLINTH_VMM_HW_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CFG_SIZE    4096 /* extended config space (ECAM) */
#define PCI_NUM_BARS    6
#define PCI_MAX_DEVICES 32 /* bus 0 only, function 0 only */

struct pci_bus;
struct pci_device;

enum pci_bar_kind { PCI_BAR_NONE = 0, PCI_BAR_IO, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_device_ops {
	/*
	 * Config space reads/writes at off (0..4095), len 1/2/4, already bounds-checked.
	 * The bus handles the standard header (command, BARs with sizing, etc.) itself
	 * and calls these only for offsets >= 0x40 (capabilities); may be NULL, then
	 * reads return dev->cfg and writes are ignored.
	 */
	void (*cfg_read)(struct pci_device *dev, uint32_t off, void *data, unsigned int len);
	void (*cfg_write)(struct pci_device *dev, uint32_t off, const void *data, unsigned int len);
	/* Guest access to a BAR at off within it (bounds-checked against the BAR size). */
	void (*bar_read)(struct pci_device *dev, int bar, uint64_t off, void *data, unsigned int len);
	void (*bar_write)(struct pci_device *dev, int bar, uint64_t off, const void *data,
			  unsigned int len);
	/*
	 * The guest moved (or enabled/disabled decoding of) a BAR: old/new guest address,
	 * 0 meaning "not decoded". Devices re-register their ioeventfds here. May be NULL.
	 */
	void (*bar_remap)(struct pci_device *dev, int bar, uint64_t old_addr, uint64_t new_addr);
};

/* Services the host side offers devices. Every call returns 0 or -errno. */
struct pci_host_ops {
	/* Deliver one MSI now (KVM_SIGNAL_MSI). */
	int (*msi_signal)(void *host, uint64_t addr, uint32_t data);
	/*
	 * Bind eventfd efd to an MSI route so that writing efd injects (addr, data)
	 * (GSI route + KVM_IRQFD); *route receives an id for msi_route_update/del.
	 */
	int (*msi_route_add)(void *host, int efd, uint64_t addr, uint32_t data, int *route);
	int (*msi_route_update)(void *host, int route, uint64_t addr, uint32_t data, bool masked);
	int (*msi_route_del)(void *host, int route, int efd);
	/* (De)assign an ioeventfd for a len-byte MMIO write at addr (KVM_IOEVENTFD, no datamatch). */
	int (*ioeventfd)(void *host, uint64_t addr, unsigned int len, int efd, bool assign);
};

struct pci_device {
	const struct pci_device_ops *ops;
	void *opaque;                   /* the device's own state */
	uint8_t cfg[PCI_CFG_SIZE];      /* config space image; header filled before pci_bus_add */
	enum pci_bar_kind bar_kind[PCI_NUM_BARS]; /* set before pci_bus_add */
	uint64_t bar_size[PCI_NUM_BARS];          /* power of two, set before pci_bus_add */
	uint64_t bar_addr[PCI_NUM_BARS];          /* current guest address, 0 if not decoded */
	uint64_t bar_res[PCI_NUM_BARS];           /* window space carved for it, 0 = none */
	unsigned int slot;              /* assigned by pci_bus_add */
	struct pci_bus *bus;            /* set by pci_bus_add */
};

/* Host-side services for this device's bus (never NULL after pci_bus_add). */
const struct pci_host_ops *pci_host_ops(const struct pci_device *dev, void **host);

/*
 * Add a device to bus 0 at the next free slot: assigns and programs its BARs,
 * enables memory/IO decoding as firmware would, and routes guest accesses to it.
 * 0 or -errno (-ENOSPC: no slot or no room in the windows).
 */
int pci_bus_add(struct pci_bus *bus, struct pci_device *dev);
/*
 * The slot the next pci_bus_add() on bus takes (-EEXIST if it is taken), instead of
 * the next free one; -1 goes back to the next free one. The VMM core pins each
 * configured device's slot this way around its constructor.
 */
void pci_bus_pin_next(struct pci_bus *bus, int slot);
/*
 * Take a device off bus 0 (hot-unplug): its BARs stop decoding and its slot is free
 * again, and so is the window space carved for its BARs. The caller makes sure no vCPU is inside the device (vm_pause) and frees it;
 * dev->bus stays set until then, for pci_host_ops() in the device's teardown.
 */
void pci_bus_remove(struct pci_bus *bus, struct pci_device *dev);

/* Little-endian config space helpers for building headers and capabilities. */
static inline void pci_cfg_set8(struct pci_device *d, uint32_t off, uint8_t v)
{
	d->cfg[off] = v;
}

static inline void pci_cfg_set16(struct pci_device *d, uint32_t off, uint16_t v)
{
	d->cfg[off] = (uint8_t)v;
	d->cfg[off + 1] = (uint8_t)(v >> 8);
}

static inline void pci_cfg_set32(struct pci_device *d, uint32_t off, uint32_t v)
{
	pci_cfg_set16(d, off, (uint16_t)v);
	pci_cfg_set16(d, off + 2, (uint16_t)(v >> 16));
}

/*
 * Bus side, used by the VMM core (not by devices).
 *
 * pci_bus_new() creates bus 0 with the host bridge at 00:00.0, claims the
 * config ports 0xcf8..0xcff and the ECAM window [ecam_base, ecam_base + 1 MiB)
 * in the resource registry and routes them on the pio/mmio buses. BARs are
 * carved from the registry's PCI windows and routed on the same buses while
 * the command register enables decoding. NULL on failure (reason logged).
 */
struct bus;
struct resources;
struct pci_bus *pci_bus_new(struct bus *pio, struct bus *mmio, struct resources *res,
			    uint64_t ecam_base, const struct pci_host_ops *host_ops, void *host);
/*
 * Firmware boot: bus 0 as QEMU's Q35 shows it, which OVMF recognises: the host
 * bridge is the MCH (8086:29c0), an ICH9 LPC bridge (8086:2918) sits at 00:1f.0,
 * and ECAM covers 256 buses (256 MiB) at ecam_base, where OVMF programs the
 * MCH's PCIEXBAR (buses past 0 read all-ones). The chipset registers the firmware
 * writes (PCIEXBAR, PMBASE, ACPI_CNTL, RCBA, PIRQ routing) read back as written.
 */
struct pci_bus *pci_bus_new_q35(struct bus *pio, struct bus *mmio, struct resources *res,
				uint64_t ecam_base, const struct pci_host_ops *host_ops,
				void *host);
void pci_bus_free(struct pci_bus *bus);
/*
 * The reset control register at 0xcf9 shares the host bridge's 0xcf8 decode:
 * byte writes there go to cb (the PM device). May be left unset.
 */
void pci_bus_set_reset_handler(struct pci_bus *bus, void (*cb)(void *opaque, uint8_t val),
			       void *opaque);
/*
 * One config space access to device dev of bus 0 (function 0), as both the
 * 0xcf8/0xcfc and the ECAM paths perform it: len 1/2/4, naturally aligned,
 * anything else (or an empty slot) reads all-ones and ignores writes.
 */
void pci_cfg_access(struct pci_bus *bus, unsigned int dev, uint32_t off, void *data,
		    unsigned int len, bool write);
/* The guest-visible base of BAR bar, as programmed in config space (0 if unset). */
uint64_t pci_bar_programmed(const struct pci_device *dev, int bar);

#endif
