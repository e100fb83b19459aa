/* SPDX-License-Identifier: MIT */
/*
 * fw_cfg: the firmware configuration interface UEFI firmware built for QEMU
 * (OVMF) reads its platform facts from. I/O ports: the 16-bit selector at
 * 0x510, the data byte at 0x511, and the DMA address at 0x514 (high 32 bits,
 * big-endian) and 0x518 (low 32 bits; writing it runs the request). Items are
 * read-only blobs: the fixed keys below and named files (keys from 0x20 on,
 * listed in the file directory at key 0x19).
 *
 * Trust: the guest controls the selector, the DMA descriptor's address and
 * everything in it (control, length, target address). Every guest address and
 * length goes through guest_mem_ptr() (the whole range inside one RAM slot,
 * no wrap); item offsets are checked before any copy.
 *
 * Threads: any vCPU thread may access it; fc->lock guards the state. Items are
 * added before the guest runs and never change after.
 */
#ifndef PLINTH_VMM_HW_FW_CFG_H
#define PLINTH_VMM_HW_FW_CFG_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"
#include "mem.h"

#define FW_CFG_PORT	0x510
#define FW_CFG_PORT_LEN 12 /* selector/data 0x510-0x511, (gap), DMA 0x514-0x51b */

/* Fixed keys. */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID	 0x01
#define FW_CFG_RAM_SIZE	 0x03
#define FW_CFG_NB_CPUS	 0x05
#define FW_CFG_MAX_CPUS	 0x0f
#define FW_CFG_FILE_DIR	 0x19
#define FW_CFG_FILE_FIRST 0x20

#define FW_CFG_MAX_FILES    32
#define FW_CFG_MAX_KEYS	    (FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES)
#define FW_CFG_NAME_LEN	    56
#define FW_CFG_MAX_ITEM	    (64U << 20) /* largest item the VMM adds */

/* DMA control bits (big-endian in the descriptor). */
#define FW_CFG_DMA_ERROR  0x01
#define FW_CFG_DMA_READ	  0x02
#define FW_CFG_DMA_SKIP	  0x04
#define FW_CFG_DMA_SELECT 0x08
#define FW_CFG_DMA_WRITE  0x10

struct fw_cfg_item {
	uint8_t *data; /* owned; NULL when the key is unused */
	uint32_t size;
};

struct fw_cfg {
	pthread_mutex_t lock;
	const struct guest_mem *mem;                  /* DMA target, not owned */
	struct fw_cfg_item item[FW_CFG_MAX_KEYS];
	char name[FW_CFG_MAX_FILES][FW_CFG_NAME_LEN]; /* file names, by key - FILE_FIRST */
	unsigned int nr_files;
	uint16_t key;      /* selected item */
	uint32_t offset;   /* read position in it */
	uint32_t dma_high; /* the DMA address's high half, latched until the low write */
	uint64_t dma_requests, dma_errors; /* statistics */
};

extern const struct bus_dev_ops fw_cfg_ops;

/*
 * Set up with the signature, the feature bitmap (traditional + DMA) and an
 * empty file directory. 0 or -ENOMEM.
 */
int fw_cfg_init(struct fw_cfg *fc, const struct guest_mem *mem);
void fw_cfg_destroy(struct fw_cfg *fc);
/* Add (or replace) fixed item key (< FW_CFG_FILE_FIRST) with a copy of data. 0 or -errno. */
int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const void *data, uint32_t size);
/* Add named file with a copy of data. 0, -EEXIST, -ENOSPC, -EINVAL (name), -ENOMEM. */
int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, uint32_t size);

/* Little-endian scalar items, as QEMU gives them. */
int fw_cfg_add_u16(struct fw_cfg *fc, uint16_t key, uint16_t v);
int fw_cfg_add_u64(struct fw_cfg *fc, uint16_t key, uint64_t v);

#endif
