/* SPDX-License-Identifier: MIT */
/*
 * The bare minimum of a PS/2 controller (ports 0x60 and 0x64) for resetting the
 * machine the PC way: command 0xfe pulses the CPU reset line. No keyboard is
 * attached; the FADT says there is no 8042, so Linux only uses it to reboot.
 */
#ifndef PLINTH_VMM_HW_I8042_H
#define PLINTH_VMM_HW_I8042_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

struct i8042_state {
	uint8_t cmd_byte; /* controller configuration byte */
	uint8_t out;	  /* output buffer */
	uint8_t out_full;
	uint8_t pending_cmd; /* command waiting for its data byte, 0 if none */
};

struct i8042 {
	pthread_mutex_t lock;
	struct i8042_state st;
	void (*reset)(void *opaque);
	void *opaque;
};

/* Ports 0x60..0x64: offset 0 data, offset 4 command/status. */
extern const struct bus_dev_ops i8042_ops;

void i8042_init(struct i8042 *k, void (*reset)(void *opaque), void *opaque);
void i8042_destroy(struct i8042 *k);

#endif
