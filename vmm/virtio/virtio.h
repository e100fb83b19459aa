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
 * Threads: the transport configures queues on the vCPU thread while the device is
 * stopped. Each device has one I/O thread (struct virtio_worker), spawned by the
 * VMM's main thread before the guest runs and parked until DRIVER_OK. From DRIVER_OK until reset, queues
 * belong to it: an epoll loop over one kick eventfd per queue (the ioeventfd
 * behind the queue's doorbell) plus whatever fds the device adds (tap, console,
 * sockets). DRIVER_OK and reset are requests that the thread carries out and
 * acknowledges (ops->start and ops->stop run there, under its seccomp filter),
 * so after virtio_dev_stop() nothing touches guest memory on the device's behalf.
 */
#ifndef PLINTH_VMM_VIRTIO_VIRTIO_H
#define PLINTH_VMM_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "queue.h"

#define VIRTIO_MAX_QUEUES 8

/* Worker tags: 0..VIRTIO_MAX_QUEUES-1 are queue kicks; devices use their own from here. */
#define VIRTIO_TAG_DEV   0x100u
#define VIRTIO_TAG_STOP  0xffffffffu

struct virtio_dev;

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
	 * DRIVER_OK: prepare for processing with vdev->features negotiated; may add fds
	 * to the worker with virtio_dev_watch(). 0 or -errno (the device then needs reset).
	 * May be NULL.
	 */
	int (*start)(struct virtio_dev *vdev);
	/* The worker has been stopped (reset): drop per-run state. May be NULL. */
	void (*stop)(struct virtio_dev *vdev);
	/*
	 * An event on the I/O thread: tag < num_queues is a kick of that queue, other
	 * tags are the device's own fds with their epoll events.
	 */
	void (*handle)(struct virtio_dev *vdev, uint32_t tag, uint32_t events);
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

/* What a caller asks of a device's I/O thread (struct virtio_worker). */
enum virtio_worker_req {
	VIRTIO_REQ_NONE,  /* parked, or the last request was carried out */
	VIRTIO_REQ_START, /* DRIVER_OK: build the epoll set, ops->start, run the loop */
	VIRTIO_REQ_STOP,  /* reset: leave the loop, ops->stop */
	VIRTIO_REQ_CALL,  /* run call(call_arg) on the thread (parked only) */
	VIRTIO_REQ_EXIT,  /* end the thread (stopped only) */
};

/*
 * The device's I/O thread, spawned before the guest runs and parked until DRIVER_OK.
 * A request is posted under lock (wake), the caller waits on done until the
 * thread has carried it out and cleared req; busy serialises callers. STOP also
 * writes stop_fd, which the running loop watches.
 */
struct virtio_worker {
	pthread_t thread;
	bool created;       /* thread, lock and condvars exist */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a request was posted */
	pthread_cond_t done; /* a request was carried out, or busy cleared */
	enum virtio_worker_req req;
	bool busy;          /* a caller is waiting for its request */
	int result;         /* of the last request: 0 or -errno */
	int (*call)(void *arg); /* VIRTIO_REQ_CALL */
	void *call_arg;
	bool running;       /* the loop runs (between START and STOP) */
	int epfd;           /* the running loop's epoll set, -1 when stopped (thread's own) */
	int stop_fd;        /* eventfd that ends the loop */
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
	bool broken_logged;          /* a "needs reset" reason was logged once */
};

/*
 * Initialise vdev for a device type with num_queues queues of up to queue_size
 * entries, offering device_features (VERSION_1, INDIRECT_DESC and EVENT_IDX are
 * added). Creates the kick eventfds. 0 or -errno.
 */
int virtio_dev_init(struct virtio_dev *vdev, const struct virtio_dev_ops *ops, void *priv,
		    const struct guest_mem *mem, unsigned int num_queues, uint16_t queue_size,
		    uint64_t device_features);
/* Stop the device if running, destroy its state, close the kick eventfds. */
void virtio_dev_fini(struct virtio_dev *vdev);

/*
 * Create the device's I/O thread, parked (no-op if it exists): by the VMM's main
 * thread before the guest runs, after jail_enter() (which needs a single thread).
 * virtio_dev_start() spawns it itself if nobody did (tests). 0 or -errno, logged.
 */
int virtio_dev_spawn_worker(struct virtio_dev *vdev);
/*
 * DRIVER_OK: the I/O thread applies the features to the queues, calls ops->start
 * and runs its loop; returns once it did, with 0 or -errno (ops->start failed,
 * nothing runs). Any thread but the device's own may call it (the vCPU thread
 * that wrote DRIVER_OK: it makes no syscall beyond futex and an eventfd write).
 */
int virtio_dev_start(struct virtio_dev *vdev);
/*
 * Reset/FAILED: the I/O thread leaves its loop and calls ops->stop; returns once
 * it did, so nothing touches guest memory on the device's behalf afterwards.
 * Safe to call when not running.
 */
void virtio_dev_stop(struct virtio_dev *vdev);
/* Whether the I/O loop runs (between a successful start and stop). */
bool virtio_dev_running(struct virtio_dev *vdev);
/*
 * Run fn(arg) on the device's parked I/O thread and return its result: the VMM
 * installs the thread's seccomp filter so, before the guest can start the device.
 * -EBUSY while the device runs.
 */
int virtio_dev_call_on_worker(struct virtio_dev *vdev, int (*fn)(void *arg), void *arg);
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
