/* SPDX-License-Identifier: MIT */
/*
 * A virtio device independent of its transport.
 *
 * Each device type (blk, net, console, rng, vsock) exports one const
 * struct virtio_dev_ops; the transport (virtio-pci) exports one const
 * struct virtio_transport_ops. Neither table is ever written at run time: a
 * struct virtio_dev points at both, plus the device's and the transport's own
 * state.
 *
 * Threads: each device has one I/O thread (struct virtio_worker), spawned parked
 * by the VMM's main thread before the guest runs (virtio_dev_spawn(); not with
 * the device, since the jail must be entered while plinth has one thread). The
 * transport configures queues on the vCPU thread while the device is stopped. DRIVER_OK and reset are requests
 * the I/O thread carries out and acknowledges (virtio_dev_start/stop wait for
 * it), so a device's start/stop code, its epoll set and all its I/O run on its own
 * thread, never on a vCPU thread (which a seccomp filter may keep from creating
 * threads or event loops). While running, the loop watches one kick eventfd per
 * queue (the ioeventfd behind the queue's doorbell) plus whatever fds the device
 * adds (tap, console, sockets); after virtio_dev_stop() returns, nothing touches
 * guest memory on the device's behalf.
 */
#ifndef PLINTH_VMM_VIRTIO_VIRTIO_H
#define PLINTH_VMM_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "queue.h"
#include "ratelimit.h"

#define VIRTIO_MAX_QUEUES 8

/* Worker tags: 0..VIRTIO_MAX_QUEUES-1 are queue kicks; devices use their own from here. */
#define VIRTIO_TAG_DEV   0x100u
#define VIRTIO_TAG_CTL   0xffffffffu

struct virtio_dev;
struct state_writer;
struct state_reader;

struct virtio_dev_ops {
	const char *name;      /* "virtio-blk", for messages */
	uint16_t device_id;    /* VIRTIO_ID_* */
	uint16_t pci_class;    /* PCI class code (base class << 8 | subclass) */
	/*
	 * Device config space: reads/writes of len bytes at off, already checked to lie
	 * inside cfg_size. cfg_write may be NULL (read-only config). Called on the
	 * vCPU thread.
	 */
	uint32_t cfg_size;
	void (*cfg_read)(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len);
	void (*cfg_write)(struct virtio_dev *vdev, uint32_t off, const void *data,
			  unsigned int len);
	/*
	 * The driver's feature choice at FEATURES_OK (already a subset of the offer):
	 * false refuses it, e.g. for dependencies the spec requires. May be NULL.
	 */
	bool (*features_ok)(uint64_t features);
	/*
	 * DRIVER_OK: prepare for processing with vdev->features negotiated; may add fds
	 * to the worker with virtio_dev_watch(). 0 or -errno (the device then needs reset).
	 * May be NULL.
	 */
	int (*start)(struct virtio_dev *vdev);
	/*
	 * The worker has been stopped (a reset, or parked for a save): drop per-run state
	 * only. May be NULL.
	 */
	void (*stop)(struct virtio_dev *vdev);
	/*
	 * The driver reset the device (after stop; never on a save's park): forget what the
	 * driver built (virtio-gpu's resources, virtio-input's queued events). May be NULL.
	 */
	void (*reset)(struct virtio_dev *vdev);
	/*
	 * An event on the I/O thread: tag < num_queues is a kick of that queue, other
	 * tags are the device's own fds with their epoll events.
	 */
	void (*handle)(struct virtio_dev *vdev, uint32_t tag, uint32_t events);
	/*
	 * Called by virtio_dev_spawn() on the VMM's main thread once the I/O thread exists:
	 * a device with a thread of its own (virtio-gpu's display) starts it here. May be
	 * NULL. 0 or -errno, logged.
	 */
	int (*spawn)(struct virtio_dev *vdev);
	/* Release the device's own state (vdev->priv); the device is stopped. */
	void (*destroy)(struct virtio_dev *vdev);
	/*
	 * Save/restore of the device-specific state (what is not in the queues or the
	 * transport): state_size bytes, a plain struct. load is called on a stopped
	 * device and may refuse a state that does not match its configuration (-EINVAL).
	 */
	size_t state_size;
	int (*save)(struct virtio_dev *vdev, void *state);
	int (*load)(struct virtio_dev *vdev, const void *state);
	/*
	 * State that is no plain struct (virtio-gpu's resources and pixels): save_sections
	 * writes sections of the device's own types (named in vmstate.c's loader table),
	 * each with section id slot and the device's id as its first field, while the
	 * device is parked and before its "virtio.2" section; load_section reads the rest
	 * of one of them (its type in type; vmstate.c has read the id and found the
	 * device), on a stopped device, checking every value as the live commands do; 0
	 * or -errno after state_reader_fail(). Both may be NULL.
	 */
	int (*save_sections)(struct virtio_dev *vdev, struct state_writer *w, uint32_t slot,
			     const char *id);
	int (*load_section)(struct virtio_dev *vdev, struct state_reader *r, const char *type);
};

/* What a device asks of its transport; any thread may call these. */
struct virtio_transport_ops {
	/* The device put buffers in queue q's used ring and the driver wants to know. */
	void (*notify_queue)(struct virtio_dev *vdev, unsigned int q);
	/* The device's config space changed. */
	void (*notify_config)(struct virtio_dev *vdev);
	/* The device hit an error it can't report in a request: set DEVICE_NEEDS_RESET. */
	void (*needs_reset)(struct virtio_dev *vdev);
};

enum virtio_cmd { VIRTIO_CMD_NONE, VIRTIO_CMD_START, VIRTIO_CMD_STOP, VIRTIO_CMD_EXIT };

struct virtio_worker {
	pthread_t thread;
	bool created;             /* the thread exists */
	bool running;             /* started: kicks and device fds are served (worker writes) */
	int epfd;                 /* the loop's epoll set, renewed at each stop */
	int ctl_fd;               /* eventfd: a request is pending */
	pthread_mutex_t lock;     /* cmd, result, done */
	pthread_cond_t cond;
	enum virtio_cmd cmd;      /* the pending request */
	int result;               /* of the last one */
	uint64_t done;            /* requests carried out */
	int (*hook)(void *opaque); /* run once on the thread before its first request */
	void *hook_opaque;
	bool hook_done, hook_failed;
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;                   /* device state, owned by the device (ops->destroy) */
	const struct guest_mem *mem;  /* not owned */
	unsigned int num_queues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	int kick_fd[VIRTIO_MAX_QUEUES]; /* eventfds, owned: doorbell of each queue */
	uint64_t host_features;      /* offered: device bits plus VERSION_1 and ring bits */
	uint64_t features;           /* negotiated, valid from FEATURES_OK */
	const struct virtio_transport_ops *tops; /* set by the transport */
	void *transport;             /* the transport's state */
	struct virtio_worker worker;
	/* Run first on a thread of the device's own besides its I/O thread (virtio-gpu's
	 * display), e.g. its seccomp filter; NULL: none. Set before the guest runs. */
	int (*aux_hook)(void *opaque);
	void *aux_hook_opaque;
	bool broken_logged;          /* a "needs reset" reason was logged once */
	struct ratelimit log_rl;     /* guest-triggered log lines of this device (any thread) */
};

/* Guest-triggered lines: at most VIRTIO_LOG_BURST at once, then one per VIRTIO_LOG_MS. */
#define VIRTIO_LOG_BURST 5
#define VIRTIO_LOG_MS	 1000

/*
 * Initialise vdev for a device type with num_queues queues of up to queue_size
 * entries, offering device_features (VERSION_1, INDIRECT_DESC and EVENT_IDX are
 * added). Creates the kick eventfds. 0 or -errno.
 */
int virtio_dev_init(struct virtio_dev *vdev, const struct virtio_dev_ops *ops, void *priv,
		    const struct guest_mem *mem, unsigned int num_queues, uint16_t queue_size,
		    uint64_t device_features);
/*
 * Create the device's I/O thread, parked (no-op if it exists). The VMM's main
 * thread does it in vm_run() (virtio_pci_spawn_worker()), not when the device is
 * created or put on a bus: jail_enter() comes between and needs plinth to have a
 * single thread. virtio_dev_start() spawns it when nobody did (unit tests that go
 * through the transport); fuzz targets and tests that drive ops->handle directly
 * never get one. 0 or -errno, logged.
 */
int virtio_dev_spawn(struct virtio_dev *vdev);
/* Stop the device if running, end its thread, destroy its state, close the kick eventfds. */
void virtio_dev_fini(struct virtio_dev *vdev);

/* DRIVER_OK: the I/O thread applies features, calls ops->start and serves. 0 or -errno. */
int virtio_dev_start(struct virtio_dev *vdev);
/* Reset: the I/O thread stops serving and calls ops->stop; returns when done. */
void virtio_dev_stop(struct virtio_dev *vdev);
bool virtio_dev_running(struct virtio_dev *vdev);
/*
 * hook(opaque) runs once on the device's I/O thread before it carries out its first
 * request, e.g. to install the VMM's seccomp filter for I/O threads; non-zero
 * keeps the device from starting (DRIVER_OK then ends in DEVICE_NEEDS_RESET).
 * Set it before the guest runs.
 */
void virtio_dev_set_thread_hook(struct virtio_dev *vdev, int (*hook)(void *opaque), void *opaque);
/* Reset queues and negotiated features (after virtio_dev_stop). */
void virtio_dev_reset(struct virtio_dev *vdev);

/* Watch fd on the running worker's epoll set with tag (>= VIRTIO_TAG_DEV). 0 or -errno. */
int virtio_dev_watch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag);
int virtio_dev_unwatch(struct virtio_dev *vdev, int fd);
/* Change the events of an fd already watched. 0 or -errno. */
int virtio_dev_rewatch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag);

/* Signal queue q if the driver wants it (EVENT_IDX / NO_INTERRUPT). */
void virtio_dev_notify(struct virtio_dev *vdev, unsigned int q);
/* The device's config changed: config interrupt. */
void virtio_dev_config_changed(struct virtio_dev *vdev);
/* Queue q is unusable (why: a static string): DEVICE_NEEDS_RESET, logged once. */
void virtio_dev_broken(struct virtio_dev *vdev, unsigned int q, const char *why);

/*
 * Drain queue q on the I/O thread: pop each chain into elem, hand it to fn, push it
 * with the length fn wrote, and interrupt the driver as it asked (every 32 chains
 * and at the end). fn returns 0 (answered), VIRTIO_DEFER (not now: the chain goes
 * back to the ring and draining stops) or -EIO (the device is broken: the chain
 * is not answered). Returns 0 when the ring is empty, VIRTIO_DEFER, or -EIO.
 */
#define VIRTIO_DEFER 1
typedef int virtio_chain_fn(struct virtio_dev *vdev, struct virtq_elem *elem, uint32_t *written);
int virtio_dev_drain(struct virtio_dev *vdev, unsigned int q, struct virtq_elem *elem,
		     virtio_chain_fn *fn);

/* Negotiated feature test. */
static inline bool virtio_has_feature(const struct virtio_dev *vdev, unsigned int bit)
{
	return vdev->features & (1ULL << bit);
}

/*
 * The part of a segment list between off and off+len, written to out (at most max
 * entries). Returns the number of entries, or -E2BIG / -ERANGE if it doesn't fit.
 */
int iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t len,
	      struct iovec *out, unsigned int max);

#endif
