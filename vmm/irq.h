/* SPDX-License-Identifier: MIT */
/*
 * Interrupt routing on KVM's in-kernel irqchip: the GSI routing table (the
 * PIC and IOAPIC pins KVM has by default, plus MSI routes that devices bind
 * eventfds to) and the pci_host_ops that PCI devices use for MSI-X and
 * doorbells. The table is rebuilt and committed whole on every change.
 */
#ifndef PLINTH_VMM_IRQ_H
#define PLINTH_VMM_IRQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/pci.h"

#define IRQ_MSI_GSI_BASE   24 /* GSIs 0..23 are the IOAPIC pins */
#define IRQ_MAX_MSI_ROUTES 1024

struct irq_msi_route {
	bool used;
	bool masked; /* irqfd detached: signals stay pending in the eventfd */
	int efd;
	uint64_t addr;
	uint32_t data;
};

struct irq_router {
	int vm_fd;
	pthread_mutex_t lock;
	struct irq_msi_route route[IRQ_MAX_MSI_ROUTES];
};

/* Install the default irqchip routes. 0 or -errno. */
int irq_router_init(struct irq_router *ir, int vm_fd);
void irq_router_destroy(struct irq_router *ir);

/* Drive an ISA/IOAPIC interrupt line (KVM_IRQ_LINE). 0 or -errno. */
int irq_line(int vm_fd, unsigned int irq, int level);

/* pci_host_ops on KVM; the host pointer is the struct irq_router. */
extern const struct pci_host_ops kvm_pci_host_ops;

#endif
