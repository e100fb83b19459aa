/* SPDX-License-Identifier: MIT */
/*
 * Address-space dispatch for port I/O and MMIO exits: a sorted list of
 * non-overlapping ranges, each routed to a device's read/write callbacks.
 *
 * Threads: every vCPU thread dispatches concurrently. Lookups take the read
 * lock only to copy the matching range out, and call the device without any
 * bus lock held, so a handler may itself (un)register ranges (a PCI config
 * write moving an I/O BAR does). Devices registered on a bus live as long as
 * the bus, so a handler can't be called on a freed device.
 */
#ifndef PLINTH_VMM_BUS_H
#define PLINTH_VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A device's view of one range; off is relative to the range base, len 1..8. */
struct bus_dev_ops {
	void (*read)(void *opaque, uint64_t off, void *data, unsigned int len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned int len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_dev_ops *ops;
	void *opaque;
};

struct bus {
	pthread_rwlock_t lock;
	struct bus_range *r; /* sorted by base, owned */
	size_t n, cap;
	const char *name; /* "pio" or "mmio", for messages */
};

int bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);

/* Route [base, base+len) to ops. 0, -EINVAL (empty or wrapping), -EEXIST (overlap), -ENOMEM. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_dev_ops *ops,
		 void *opaque);
/* Remove the range starting at base owned by opaque. 0 or -ENOENT. */
int bus_unregister(struct bus *b, uint64_t base, void *opaque);

/*
 * Dispatch one access. Returns false when no range wholly contains
 * [addr, addr+len): reads then see all-ones, writes are dropped.
 */
bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned int len, bool write);

/* True when some range contains addr (for diagnostics). */
bool bus_access_would_hit(struct bus *b, uint64_t addr);

#endif
