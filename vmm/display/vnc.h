/* SPDX-License-Identifier: MIT */
/*
 * --display vnc=unix:PATH|tcp:ADDR:PORT[,width=N,height=N]: a virtio-gpu whose
 * scanout is served to VNC viewers (RFB, libvncserver) on a socket of its own.
 *
 * Threads: the device's I/O thread hands each flushed rectangle over (copied into
 * a shadow image under the display's lock, then an eventfd); the display thread
 * (started after the jail, filtered as SANDBOX_DISPLAY) accepts viewers on the
 * socket opened at start-up, copies what changed into libvncserver's frame buffer
 * and lets it send the changed regions in the encodings each viewer asked for.
 *
 * Two halves: display.c in plinth (the spec, the socket, the devices) and vnc.c,
 * the libvncserver server, built as the module plinth-vnc.so that display.c loads
 * when a VM first has a display (display.c says why).
 */
#ifndef PLINTH_VMM_DISPLAY_VNC_H
#define PLINTH_VMM_DISPLAY_VNC_H

#include <stdint.h>

#include "gpu.h"

/*
 * Parse where: "unix:PATH" or "tcp:ADDR:PORT" (ADDR an IPv4 address). 0 or -EINVAL,
 * one line logged naming opt.
 */
int vnc_where_check(const char *opt, const char *where);

/*
 * Open the listening socket at where (a Unix socket is created mode 0600, a stale
 * one replaced) and make the display; *ops and *opaque are what
 * virtio_gpu_create_on() takes. 0 or -errno, logged.
 */
int vnc_display_new(const char *where, uint32_t width, uint32_t height,
		    const struct gpu_display_ops **ops, void **opaque);

/*
 * Ask viewers of the display made by vnc_display_new() for password (VNC
 * authentication: at most VNC_PASSWORD_MAX bytes count), before spawn. 0 or -ENOMEM.
 */
#define VNC_PASSWORD_MAX 8
int vnc_display_set_password(void *opaque, const char *password);

/* The device class's create: spec is the canonical "vnc=...,width=N,height=N" with
 * ",password-file=PATH" (read at each create: keyfile_read_line()'s checks). */
struct pci_bus;
struct guest_mem;
struct virtio_pci;
int display_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		   struct virtio_pci **out);

/*
 * The display's keyboard and tablet (virtio/input.h), on bus at its next free slots
 * (after every configured device has its own): made once the virtio-gpu gpu (made by
 * display_create) exists, before the guest runs; they are fed from its viewers.
 * *kbd and *tablet are the caller's (virtio_pci_free, after gpu's); on error the one
 * made, if any, is in *kbd. 0 or -errno, logged.
 */
int display_add_inputs(struct pci_bus *bus, const struct guest_mem *mem, struct virtio_pci *gpu,
		       struct virtio_pci **kbd, struct virtio_pci **tablet);

/* Feed viewers' keys to kbd and their pointer to tablet (virtio-input devices, either
 * NULL: none), which outlive the display. Before spawn. */
struct virtio_dev;
void vnc_display_set_inputs(void *opaque, struct virtio_dev *kbd, struct virtio_dev *tablet);

/* The Linux evdev key code of X keysym sym (US layout), 0: none. */
uint16_t vnc_keysym_to_evdev(uint32_t sym);

/*
 * The module's one export (vnc.c): a display served on listen_fd (listening already;
 * the display owns it from a success on, and unlinks unix_path, when not NULL, at its
 * end), and the password and inputs of vnc_display_set_password/_set_inputs. abi
 * changes with this struct, so a stale module is refused rather than called.
 */
#define VNC_MODULE_ABI 1
struct vnc_module {
	unsigned int abi;
	int (*display_new)(int listen_fd, const char *unix_path, uint32_t width, uint32_t height,
			   const struct gpu_display_ops **ops, void **opaque);
	int (*set_password)(void *opaque, const char *password);
	void (*set_inputs)(void *opaque, struct virtio_dev *kbd, struct virtio_dev *tablet);
};

#endif
