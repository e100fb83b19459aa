/* SPDX-License-Identifier: MIT */
/*
 * The MC146818 CMOS RTC and its 128 bytes of NVRAM at ports 0x70 (index, bit 7
 * masks NMI) and 0x71 (data). Time registers follow the host's UTC clock plus
 * an offset the guest sets by writing them, in BCD or binary and 12/24-hour as
 * register B says; register A shows update-in-progress during the last 244 us
 * of each second. Firmware reads the memory size from bytes 0x34/0x35 (RAM
 * above 16 MiB below 4 GiB, 64 KiB units) and 0x5b-0x5d (above 4 GiB).
 * No RTC interrupts (periodic, alarm, update): nothing plinth boots uses them.
 *
 * Threads: any vCPU; c->lock guards the state.
 */
#ifndef PLINTH_VMM_HW_CMOS_H
#define PLINTH_VMM_HW_CMOS_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

#define CMOS_PORT     0x70
#define CMOS_PORT_LEN 2

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
	int64_t offset; /* guest time - host time, seconds */
	/* The clock, replaceable by tests: nanoseconds since the epoch. */
	int64_t (*now_ns)(void);
};

extern const struct bus_dev_ops cmos_ops;

/* Power-on state; low_ram and high_ram are the guest RAM below and above 4 GiB, bytes. */
void cmos_init(struct cmos *c, uint64_t low_ram, uint64_t high_ram);
void cmos_destroy(struct cmos *c);

#endif
