/* SPDX-License-Identifier: MIT */
/*
 * ACPI PCI hot-plug of bus 0: a GPE0 block (the FADT's GPE0_BLK) and a small
 * controller that the DSDT's slot objects read and write. The protocol is the
 * i440fx one that Linux's acpiphp driver handles (learned from QEMU's
 * docs/specs/acpi_pci_hotplug.rst and Linux's drivers/pci/hotplug/acpiphp_glue.c;
 * the registers and their read semantics here are our own):
 *
 *   VMM adds a device at slot S      -> UP |= S, GPE0_STS.1 = 1, SCI (if GPE0_EN.1)
 *   VMM asks for S to be removed     -> DOWN |= S, REMOVING |= S, GPE0_STS.1, SCI
 *   guest's \_GPE._E01               -> reads PCIU (UP, cleared by the read) and PCID
 *                                       (DOWN, likewise) and Notify()s each slot
 *                                       device: 1 (device check: scan it) for UP,
 *                                       3 (eject request) for DOWN
 *   guest's Sxx._EJ0 (acpiphp, once  -> writes S's bit to B0EJ: a slot in REMOVING
 *   the driver let go)                  moves to EJECTED and the backend's eject()
 *                                       tells the VMM, which frees the device
 *
 * The guest may write B0EJ for any slot; only slots the VMM asked to remove are
 * ejected (a guest cannot make the VMM drop a device it was not told to drop).
 *
 * Ports (PORT_GPE0, 4 bytes): GPE0_STS (2, write one to clear), GPE0_EN (2).
 *        (PORT_PCIHP, 12 bytes, dwords): PCIU (read, clears), PCID (read, clears),
 *        B0EJ (write).
 * SCI = GPE0_STS & GPE0_EN != 0, shared with PM1's (the VMM ORs the two).
 */
#ifndef PLINTH_VMM_HW_PCIHP_H
#define PLINTH_VMM_HW_PCIHP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

#define PCIHP_GPE_BIT 1 /* \_GPE._E01 */
#define PCIHP_PCIU    0x0
#define PCIHP_PCID    0x4
#define PCIHP_B0EJ    0x8

struct pcihp_backend {
	/* The controller's share of the SCI line changed. */
	void (*sci)(void *opaque, int level);
	/* The guest ejected slots (pcihp_take_ejected() says which); any vCPU thread. */
	void (*eject)(void *opaque);
};

/* The guest-visible state, saved as is (section "pcihp"). */
struct pcihp_state {
	uint16_t gpe_sts;  /* GPE0 status, write one to clear */
	uint16_t gpe_en;   /* GPE0 enable */
	uint32_t up;       /* slots the next PCIU read reports as inserted */
	uint32_t down;     /* slots the next PCID read reports as to be ejected */
	uint32_t removing; /* slots the VMM asked the guest to eject, until it does */
	uint32_t ejected;  /* slots the guest ejected, not yet taken by the VMM */
	uint32_t sci;      /* the controller's SCI level (0/1) */
};

struct pcihp {
	pthread_mutex_t lock;
	struct pcihp_state st;
	const struct pcihp_backend *be;
	void *opaque;
};

extern const struct bus_dev_ops pcihp_gpe_ops; /* at PORT_GPE0 */
extern const struct bus_dev_ops pcihp_ops;     /* at PORT_PCIHP */

void pcihp_init(struct pcihp *hp, const struct pcihp_backend *be, void *opaque);
void pcihp_destroy(struct pcihp *hp);
/* A device appeared in slot (1..31): tell the guest. */
void pcihp_insert(struct pcihp *hp, unsigned int slot);
/* Ask the guest to eject slot (again, if it ignored an earlier request). */
void pcihp_request_eject(struct pcihp *hp, unsigned int slot);
/* Whether slot waits for the guest's eject. */
bool pcihp_removing(struct pcihp *hp, unsigned int slot);
/* The slots the guest ejected since the last call (bitmap), cleared. */
uint32_t pcihp_take_ejected(struct pcihp *hp);
void pcihp_get_state(struct pcihp *hp, struct pcihp_state *st);
/* Replace the state (restore); the SCI level is the caller's to drive (vm_resync_irqs). */
void pcihp_set_state(struct pcihp *hp, const struct pcihp_state *st);

#endif
