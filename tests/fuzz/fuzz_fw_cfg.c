// SPDX-License-Identifier: MIT
/*
 * fw_cfg against arbitrary guest traffic: the input's first 64 bytes seed guest
 * RAM (descriptors live there), then each 9-byte record is (op, 8 bytes):
 * op % 4 == 0 select, 1 data read, 2 DMA at an address, 3 poke 8 bytes of RAM
 * (a descriptor). Guest RAM sits in a guarded buffer: any access outside it
 * is an ASan report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hw/fw_cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_GPA	 0x1000ULL
#define RAM_SIZE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t file[100] = { 1, 2, 3 };
	struct guest_mem gm = { .nr_slots = 1, .fd = -1, .total = RAM_SIZE };
	uint8_t *ram = calloc(1, RAM_SIZE);
	struct fw_cfg fc;
	size_t i;

	if (!ram)
		return 0;
	gm.slot[0] = (struct guest_mem_slot){ .gpa = RAM_GPA, .size = RAM_SIZE, .hva = ram };
	if (fw_cfg_init(&fc, &gm) || fw_cfg_add_file(&fc, "etc/e820", file, sizeof(file)) ||
	    fw_cfg_add_u16(&fc, FW_CFG_NB_CPUS, 2)) {
		free(ram);
		return 0;
	}
	if (size >= 64) {
		memcpy(ram, data, 64);
		data += 64;
		size -= 64;
	}
	for (i = 0; i + 9 <= size; i += 9) {
		const uint8_t *a = &data[i + 1];
		uint64_t v;
		uint8_t b[8];

		memcpy(&v, a, 8);
		switch (data[i] % 4) {
		case 0:
			fw_cfg_ops.write(&fc, 0, a, 2);
			break;
		case 1:
			fw_cfg_ops.read(&fc, 1, b, 1);
			break;
		case 2:
			/* Mostly inside RAM, sometimes anywhere. */
			if (!(data[i] & 0x80))
				v = RAM_GPA + v % RAM_SIZE;
			b[0] = (uint8_t)(v >> 56), b[1] = (uint8_t)(v >> 48);
			b[2] = (uint8_t)(v >> 40), b[3] = (uint8_t)(v >> 32);
			b[4] = (uint8_t)(v >> 24), b[5] = (uint8_t)(v >> 16);
			b[6] = (uint8_t)(v >> 8), b[7] = (uint8_t)v;
			fw_cfg_ops.write(&fc, 4, b, 4);
			fw_cfg_ops.write(&fc, 8, b + 4, 4);
			break;
		default:
			memcpy(ram + (a[0] % (RAM_SIZE - 8)), a, 8);
			break;
		}
	}
	fw_cfg_destroy(&fc);
	free(ram);
	return 0;
}
