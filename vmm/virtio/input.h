/* SPDX-License-Identifier: MIT */
/*
 * virtio-input keyboard and tablet (input.c), made with a --display and fed by it:
 * the display's thread calls virtio_input_send() with Linux evdev events (the
 * guest's driver passes them on unchanged), the device's I/O thread hands them to
 * the driver as it gives buffers.
 */
#ifndef PLINTH_VMM_VIRTIO_INPUT_H
#define PLINTH_VMM_VIRTIO_INPUT_H

#include <stdint.h>

#include <linux/virtio_input.h>

#include "hw/pci.h"
#include "mem.h"

struct virtio_pci;
struct virtio_dev;

enum virtio_input_kind {
	INPUT_KEYBOARD, /* EV_KEY 1..KEY_COMPOSE, EV_LED num/caps/scroll */
	INPUT_TABLET,   /* EV_ABS ABS_X/ABS_Y 0..INPUT_ABS_MAX, BTN_LEFT/RIGHT/MIDDLE, REL_WHEEL */
};

#define INPUT_ABS_MAX 32767  /* the tablet's coordinates: 0..INPUT_ABS_MAX across the screen */
#define INPUT_VENDOR  0x1af4 /* ID_DEVIDS vendor (the virtio vendor); bus BUS_VIRTUAL */

/* A keyboard or tablet on bus (at its next free slot). 0 or -errno, logged. */
int virtio_input_create_on(struct pci_bus *bus, const struct guest_mem *mem,
			   enum virtio_input_kind kind, struct virtio_pci **out);

/*
 * Queue n events (host byte order; a whole report, ending in EV_SYN/SYN_REPORT) for
 * the driver, all or none. Any thread. 0, or -ENOSPC: the driver took none for
 * INPUT_PENDING events, the report is dropped (logged once).
 */
int virtio_input_send(struct virtio_dev *vdev, const struct virtio_input_event *ev,
		      unsigned int n);

#endif
