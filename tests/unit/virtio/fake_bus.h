/* SPDX-License-Identifier: MIT */
/*
 * A fake PCI bus and host (vmm/hw/pci.h's bus side) for unit tests: pci_bus_add
 * places BARs at fixed addresses, and the host ops record every MSI, route and
 * ioeventfd so that tests can count them. Route eventfds are the device's own
 * irqfds: a test reads them to count interrupts delivered through a route.
 */
#ifndef PLINTH_TESTS_VIRTIO_FAKE_BUS_H
#define PLINTH_TESTS_VIRTIO_FAKE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/pci.h"

#define FAKE_MAX 64

struct fake_ioevt {
	uint64_t addr;
	unsigned int len;
	int efd;
};

struct fake_route {
	int efd;
	uint64_t addr;
	uint32_t data;
	bool masked;
	bool live;
};

struct fake_host {
	unsigned int msi_signals;           /* direct MSIs */
	uint64_t last_msi_addr;
	uint32_t last_msi_data;
	unsigned int routes_added, route_updates, route_dels;
	struct fake_route route[FAKE_MAX];
	unsigned int nr_routes;
	struct fake_ioevt ioevt[FAKE_MAX];  /* currently assigned */
	unsigned int nr_ioevt;
	unsigned int ioevt_assigns, ioevt_deassigns;
	int fail_route_add;                 /* return this from msi_route_add if non-zero */
};

struct pci_bus {
	struct pci_device *dev[PCI_MAX_DEVICES];
	unsigned int nr;
	struct fake_host host;
	int fail_add; /* return this from pci_bus_add if non-zero */
};

#define FAKE_BAR0_BASE 0xe0000000ull /* + slot * 0x10000 */
#define FAKE_BAR2_BASE 0xd0000000ull /* + slot * 0x1000 */

void fake_bus_init(struct pci_bus *bus);
/* Interrupts delivered through route r's eventfd since the last call (reads it). */
uint64_t fake_route_count(struct pci_bus *bus, unsigned int r);
/* The ioeventfd assigned at addr, or -1. */
int fake_ioevt_fd(struct pci_bus *bus, uint64_t addr);

/* Guest register access through the device ops, as the bus would do it. */
uint32_t cfg_rd(struct pci_device *d, uint32_t off, unsigned int len);
void cfg_wr(struct pci_device *d, uint32_t off, uint32_t v, unsigned int len);
uint64_t bar_rd(struct pci_device *d, int bar, uint64_t off, unsigned int len);
void bar_wr(struct pci_device *d, int bar, uint64_t off, uint64_t v, unsigned int len);

#endif
