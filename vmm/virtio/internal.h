/* SPDX-License-Identifier: MIT */
/*
 * Constructors below the command line, for tests and fuzz targets: each makes a
 * device on vdev (with virtio_dev_init) without a transport or a bus. Host-side
 * endpoints are plain fds the caller opens (a socketpair in tests), ownership
 * passing to the device. 0 or -errno, logged.
 */
#ifndef PLINTH_VMM_VIRTIO_INTERNAL_H
#define PLINTH_VMM_VIRTIO_INTERNAL_H

#include <stdint.h>

#include <linux/virtio_input.h>

#include "input.h"
#include "virtio.h"

extern const struct virtio_dev_ops virtio_rng_ops;
extern const struct virtio_dev_ops virtio_balloon_ops;
extern const struct virtio_dev_ops virtio_console_ops;
extern const struct virtio_dev_ops virtio_net_ops;
extern const struct virtio_dev_ops virtio_vsock_ops;
extern const struct virtio_dev_ops virtio_gpu_ops;
extern const struct virtio_dev_ops virtio_input_ops;

int virtio_rng_init(struct virtio_dev *vdev, const struct guest_mem *mem);
int virtio_balloon_init(struct virtio_dev *vdev, const struct guest_mem *mem);

/* in_fd/out_fd: host side of hvc0 (may be the same fd); non-blocking is set here. */
int virtio_console_init(struct virtio_dev *vdev, const struct guest_mem *mem, int in_fd,
			int out_fd);

/* tap_fd: a tap opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (or, in tests, a datagram
 * socket carrying virtio_net_hdr + frame); offload: TUNSETOFFLOAD is available. */
int virtio_net_init(struct virtio_dev *vdev, const struct guest_mem *mem, int tap_fd,
		    const uint8_t mac[6], bool offload);

/* Guest CID and the Unix socket path of the host side. */
int virtio_vsock_init(struct virtio_dev *vdev, const struct guest_mem *mem, uint64_t cid,
		      const char *path);

/* width x height: the mode GET_DISPLAY_INFO offers; display and opaque as for
 * virtio_gpu_create_on() (gpu.h), opaque owned by the device even on error. */
struct gpu_display_ops;
int virtio_gpu_init(struct virtio_dev *vdev, const struct guest_mem *mem, uint32_t width,
		    uint32_t height, const struct gpu_display_ops *display, void *opaque);
/* One control command in req (len bytes): its answer into resp (at most cap bytes);
 * returns the answer's length. On the device's I/O thread (or a test's). */
size_t virtio_gpu_cmd(struct virtio_dev *vdev, const void *req, size_t len, void *resp,
		      size_t cap);
/* One cursor-queue command (no answer). */
void virtio_gpu_cursor_cmd(struct virtio_dev *vdev, const void *req, size_t len);

/* A keyboard or tablet (input.h) without a transport. */
int virtio_input_init(struct virtio_dev *vdev, const struct guest_mem *mem,
		      enum virtio_input_kind kind);
/* A config write of len bytes at off, bounds-checked here (the transport's check). */
void virtio_input_cfg_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			    unsigned int len);
/* One statusq buffer's bytes (len of them, hostile). */
void virtio_input_status(struct virtio_dev *vdev, const void *buf, size_t len);
/* The LEDs (bit LED_*) the driver last set. */
uint16_t virtio_input_leds(struct virtio_dev *vdev);
/* The display ops and opaque a virtio-gpu shows on (gpu.h). */
void *virtio_gpu_display(struct virtio_dev *vdev);

/* Serializable device state. */
struct virtio_net_state {
	uint8_t mac[6];
	uint16_t pad;
	uint64_t offloads; /* last TUNSETOFFLOAD argument */
};

struct virtio_vsock_state {
	uint64_t cid;
};

/* virtio-input: the config selection, the LEDs, the events waiting (oldest first). */
#define VIRTIO_INPUT_SAVED_EVENTS 1024
struct virtio_input_state {
	uint8_t select, subsel;
	uint16_t leds;
	uint32_t count;   /* events in pending[] */
	struct virtio_input_event pending[VIRTIO_INPUT_SAVED_EVENTS]; /* host byte order */
};

#endif
