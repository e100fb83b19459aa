/* SPDX-License-Identifier: MIT */
/*
 * An 8250/16550A UART (the PC's COM1): the register model, a receive FIFO fed
 * by the console thread, transmit straight to the backend, and a level
 * interrupt output. Pure: the backend supplies the IRQ line and the byte sink,
 * so the model is unit-tested and fuzzed without KVM.
 */
#ifndef PLINTH_VMM_HW_SERIAL_H
#define PLINTH_VMM_HW_SERIAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

#define SERIAL_RX_FIFO 64

struct serial_backend {
	void (*irq)(void *opaque, int level);	/* interrupt output changed */
	void (*tx)(void *opaque, uint8_t byte); /* one byte transmitted */
	void (*rx_space)(void *opaque);		/* the receive FIFO drained */
};

/* Guest-visible state: plain data, so it can be saved and restored as is. */
struct serial_state {
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t thri_pending; /* THR-empty interrupt armed (cleared by reading IIR or writing THR)
			       */
	uint8_t irq_level;    /* current output level */
	uint8_t rx[SERIAL_RX_FIFO];
	uint8_t rx_head, rx_count;
};

struct serial {
	pthread_mutex_t lock;
	struct serial_state st;
	const struct serial_backend *be;
	void *opaque;
};

/* The 8 registers at a PC COM port base. */
extern const struct bus_dev_ops serial_ops;

void serial_init(struct serial *s, const struct serial_backend *be, void *opaque);
void serial_destroy(struct serial *s);
/* Offer input bytes; returns how many fit in the FIFO (the rest: retry after rx_space). */
size_t serial_rx(struct serial *s, const uint8_t *buf, size_t n);

#endif
