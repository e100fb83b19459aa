/* SPDX-License-Identifier: MIT */
/*
 * CFI flash (Intel command set, the subset OVMF's QemuFlashFvbServicesRuntimeDxe
 * drives) over the firmware's variable store, a per-VM vars file. Every access
 * exits to the VMM (no KVM memory slot), so there is no array/command mode
 * switch to mirror in KVM. Commands, written to any address in the device:
 *   0xff/0x00 read array   0x50 clear status   0x70 read status
 *   0x10/0x40 program one byte (the next write is the byte)
 *   0x20 then 0xd0 erase the 4 KiB block holding the confirm address
 * A program or erase is written through to the file at once (pwrite), so the
 * boot entries the firmware stores survive a reboot and a crash of the VMM.
 *
 * Threads: any vCPU; f->lock guards the state.
 */
#ifndef PLINTH_VMM_HW_PFLASH_H
#define PLINTH_VMM_HW_PFLASH_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

#define PFLASH_BLOCK 4096

enum pflash_mode { PFLASH_ARRAY, PFLASH_STATUS, PFLASH_PROGRAM, PFLASH_ERASE };

struct pflash {
	pthread_mutex_t lock;
	uint8_t *data;   /* the store's contents, owned */
	uint64_t size;   /* a multiple of PFLASH_BLOCK */
	int fd;          /* the vars file, written through; not owned; -1: memory only */
	enum pflash_mode mode;
	uint8_t status;
	uint64_t write_errors; /* failed pwrites (the first is logged) */
};

extern const struct bus_dev_ops pflash_ops;

/* Take data (size bytes, malloc'ed: ownership passes) over; fd as above. 0 or -EINVAL. */
int pflash_init(struct pflash *f, uint8_t *data, uint64_t size, int fd);
void pflash_destroy(struct pflash *f);

#endif
