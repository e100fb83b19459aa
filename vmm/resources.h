/* SPDX-License-Identifier: MIT */
/*
 * The resource registry: the one place where port ranges, MMIO ranges, IRQs and
 * PCI slots are handed out. Claims never overlap; the e820 map, the ACPI tables
 * (MADT, MCFG, DSDT) and the PCI BAR placement are all derived from it, so what
 * the guest is told always matches what the VMM decodes.
 */
#ifndef PLINTH_VMM_RESOURCES_H
#define PLINTH_VMM_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>

enum res_kind { RES_PIO, RES_MMIO };

/* How a claimed range appears to the guest. */
enum res_flags {
	RES_F_E820_RESERVED = 1 << 0, /* listed as reserved in e820 */
};

struct res_range {
	enum res_kind kind;
	uint64_t base, len;
	unsigned int flags;
	const char *owner; /* static string, for messages */
};

/* A fixed ISA-style device described in the DSDT (_HID, _UID, one I/O range, one IRQ). */
struct res_isa_dev {
	const char *name; /* 4-character ACPI name, e.g. "COM1" */
	const char *hid;  /* EISA id, e.g. "PNP0501" */
	unsigned int uid;
	uint16_t port, port_len;
	uint8_t irq;
};

/* A window that dynamic claims (PCI BARs) are carved from (next: above the highest). */
struct res_window {
	uint64_t base, len, next;
};

#define RES_MAX_RANGES 96
#define RES_MAX_ISA    8

struct resources {
	struct res_range range[RES_MAX_RANGES];
	unsigned int nr_ranges;
	struct res_isa_dev isa[RES_MAX_ISA];
	unsigned int nr_isa;
	uint32_t irq_used;	    /* bitmap of IOAPIC pins 0..23 */
	uint32_t pci_slots;	    /* bitmap of bus-0 device numbers */
	struct res_window pci_mmio; /* below 4 GiB */
	struct res_window pci_io;
	uint64_t ecam_base, ecam_len;
	/* ACPI PCI hot-plug (hw/pcihp.h): its ports, 0 = none. */
	uint16_t gpe0_port, pcihp_port;
};

/* An empty registry with the given PCI windows (0 length = none). */
void res_init(struct resources *r, uint64_t mmio_base, uint64_t mmio_len, uint64_t io_base,
	      uint64_t io_len);

/* Claim a fixed range. 0, -EINVAL, -EEXIST (overlaps an earlier claim or a window), -ENOSPC. */
int res_claim(struct resources *r, enum res_kind kind, uint64_t base, uint64_t len,
	      unsigned int flags, const char *owner);
/*
 * Carve len bytes aligned to align (power of two) from the PCI window of that kind:
 * above every earlier carving while there is room, else in the first gap that
 * res_release left. 0, -EINVAL, -ENOSPC.
 */
int res_alloc(struct resources *r, enum res_kind kind, uint64_t len, uint64_t align,
	      const char *owner, uint64_t *base);
/* Give back a range res_alloc (or res_claim) gave, exactly. 0 or -ENOENT. */
int res_release(struct resources *r, enum res_kind kind, uint64_t base, uint64_t len);
/* Claim a fixed IRQ (-EEXIST when taken) or allocate a free one from 5..23. */
int res_irq_claim(struct resources *r, unsigned int irq);
int res_irq_alloc(struct resources *r, unsigned int *irq);
/* Claim a PCI slot: a fixed one (>= 0) or the next free one (slot < 0). Returns slot or -errno. */
int res_pci_slot(struct resources *r, int slot);
/* Give back a slot (a device that failed to attach). */
void res_pci_slot_free(struct resources *r, unsigned int slot);
/* Describe an ISA device in the DSDT (its port and IRQ must be claimed separately). */
int res_add_isa(struct resources *r, const struct res_isa_dev *dev);

/* True when [base, base+len) of that kind overlaps a claimed range. */
bool res_overlaps(const struct resources *r, enum res_kind kind, uint64_t base, uint64_t len);

#endif
