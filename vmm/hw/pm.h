/* SPDX-License-Identifier: MIT */
/*
 * ACPI fixed-hardware power management (PM1a event and control blocks in I/O
 * space) and the reset control register at 0xcf9 (the FADT's RESET_REG).
 * Writing SLP_EN with SLP_TYP = the DSDT's _S5 value powers the machine off;
 * a reset control write with the reset bit set resets it.
 */
#ifndef PLINTH_VMM_HW_PM_H
#define PLINTH_VMM_HW_PM_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

enum pm_event { PM_EVENT_POWEROFF, PM_EVENT_RESET };

struct pm_backend {
	void (*event)(void *opaque, enum pm_event ev);
	/* The SCI line changed (status & enable bits); may be NULL. */
	void (*sci)(void *opaque, int level);
};

struct pm_state {
	uint16_t sts; /* PM1 status (write 1 to clear) */
	uint16_t en;  /* PM1 enable */
	uint16_t cnt; /* PM1 control */
	uint16_t sci; /* current SCI level (0/1) */
};

struct pm {
	pthread_mutex_t lock;
	struct pm_state st;
	const struct pm_backend *be;
	void *opaque;
	uint16_t s5_typ; /* the SLP_TYP that means soft-off (ACPI_S5_SLP_TYP; Q35: 0) */
};

#define PM1_STS_PWRBTN 0x0100

/* PM1a_EVT_BLK (4 ports) followed by PM1a_CNT_BLK (2 ports): 6 ports. */
extern const struct bus_dev_ops pm_ops;

/* The ACPI PM timer (PM1a_EVT + 8 on ICH9: 4 ports, read-only, 24 bits). */
extern const struct bus_dev_ops pm_timer_ops;

void pm_init(struct pm *pm, const struct pm_backend *be, void *opaque);
void pm_destroy(struct pm *pm);
/*
 * Firmware boot: soft-off is SLP_TYP typ, as on QEMU's Q35 (0, what OVMF's
 * ResetSystem(EfiResetShutdown) writes), instead of the DSDT's ACPI_S5_SLP_TYP.
 */
void pm_set_s5_type(struct pm *pm, uint16_t typ);
/* A write to the reset control register (0xcf9). */
void pm_reset_control(struct pm *pm, uint8_t v);
/* Press the fixed-hardware power button: PWRBTN_STS, and an SCI if PWRBTN_EN is set. */
void pm_power_button(struct pm *pm);
/* Replace the guest-visible state (restore) and update the SCI. */
void pm_set_state(struct pm *pm, const struct pm_state *st);
void pm_get_state(struct pm *pm, struct pm_state *st);

#endif
