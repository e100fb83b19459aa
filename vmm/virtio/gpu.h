/* SPDX-License-Identifier: MIT */
/*
 * virtio-gpu (2D) and what it shows its picture on: a display backend (the VNC
 * server of vmm/display/vnc.c, or a fake in tests) behind struct gpu_display_ops.
 *
 * The device never hands the backend a pointer it keeps: every call copies what it
 * needs before returning, so the backend's thread never reads device memory and the
 * device's I/O thread never waits on a viewer.
 */
#ifndef PLINTH_VMM_VIRTIO_GPU_H
#define PLINTH_VMM_VIRTIO_GPU_H

#include <stdint.h>

#include "hw/pci.h"
#include "mem.h"

struct virtio_pci;
struct virtio_dev;

/* Pixel layout handed to update(): 4 bytes per pixel, in this byte order. */
enum gpu_pixel_order {
	GPU_PIX_BGRX, /* B8G8R8A8, B8G8R8X8 (Linux's XRGB8888 on little-endian) */
	GPU_PIX_XRGB, /* A8R8G8B8, X8R8G8B8 */
	GPU_PIX_RGBX, /* R8G8B8A8, R8G8B8X8 */
	GPU_PIX_XBGR, /* A8B8G8R8, X8B8G8R8 */
};

struct gpu_display_ops {
	/*
	 * The scanout is now width x height (0 x 0: disabled, nothing to show). Called
	 * on the device's I/O thread, before the update() that fills it.
	 */
	void (*resize)(void *opaque, uint32_t width, uint32_t height);
	/*
	 * The w x h rectangle at (x, y) of the scanout changed; pixels points at its
	 * top-left pixel, rows stride bytes apart, in order. The backend copies it
	 * before returning. x + w and y + h are inside the last resize().
	 */
	void (*update)(void *opaque, const uint8_t *pixels, uint32_t stride,
		       enum gpu_pixel_order order, uint32_t x, uint32_t y, uint32_t w, uint32_t h);
	/*
	 * Start the backend's own thread (called once, on the VMM's main thread after the
	 * jail, by virtio_dev_spawn()); hook(hook_opaque), when not NULL, runs first on
	 * that thread (the device's aux_hook: its seccomp filter) and a failure ends it.
	 * 0 or -errno, logged.
	 */
	int (*spawn)(void *opaque, int (*hook)(void *), void *hook_opaque);
	/* Stop the thread and free the backend. */
	void (*destroy)(void *opaque);
};

/*
 * Make a virtio-gpu whose scanout 0 (width x height offered to the driver) is shown
 * on display (ownership of opaque passes to the device: display->destroy at the
 * end, also on error). 0 or -errno, logged.
 */
int virtio_gpu_create_on(struct pci_bus *bus, const struct guest_mem *mem, uint32_t width,
			 uint32_t height, const struct gpu_display_ops *display, void *opaque,
			 struct virtio_pci **out);

#endif
