// SPDX-License-Identifier: MIT
/*
 * A bzImage's payload as the VMM unpacks it (arch/x86/kunpack.h): the fuzzer's bytes
 * are the compressed vmlinux behind a fixed, valid header; the loader decompresses
 * them, checks the ELF file and its relocation table, and places and relocates it in a
 * small guest memory with KASLR on, or falls back to copying the payload as it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "arch/x86/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEM  (48u << 20)
#define SETUP_LEN (5 * 512)

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct guest_mem gm = {.nr_slots = 1, .fd = -1, .total = FUZZ_MEM};
	struct boot_e820_entry e820[1] = {{0x100000, FUZZ_MEM - 0x100000, E820_RAM}};
	struct linux_boot_cfg cfg = {
		.cmdline = "console=ttyS0",
		.initrd_fd = -1,
		.kernel_fd = -1,
		.low_ram_end = FUZZ_MEM,
		.e820 = e820,
		.e820_nr = 1,
		.kaslr = 1,
		.kaslr_seed = 0x0000000500000003ULL,
	};
	struct linux_kernel k;
	const char *why;
	uint8_t *img;

	if (size > (4u << 20))
		return 0;
	if (!ram)
		ram = malloc(FUZZ_MEM);
	img = calloc(1, SETUP_LEN + size);
	if (!ram || !img) {
		free(img);
		return 0;
	}
	gm.slot[0] = (struct guest_mem_slot){.gpa = 0, .size = FUZZ_MEM, .hva = ram};
	/* A bzImage header: protocol 2.15, relocatable, 64-bit, 16 MiB init_size. */
	img[0x1f1] = 4;
	img[0x1fe] = 0x55;
	img[0x1ff] = 0xaa;
	img[0x201] = 0x66;
	memcpy(img + 0x202, "HdrS", 4);
	img[0x206] = 0x0f;
	img[0x207] = 0x02;
	img[0x211] = 1; /* LOADED_HIGH */
	put32(img + 0x22c, 0x7fffffff);
	put32(img + 0x230, 0x200000);
	img[0x234] = 1;
	img[0x236] = 3; /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
	put32(img + 0x238, 2047);
	put32(img + 0x248, 0);
	put32(img + 0x24c, (uint32_t)size);
	put32(img + 0x258, 0x1000000);
	put32(img + 0x260, 16u << 20);
	memcpy(img + SETUP_LEN, data, size);
	if (!linux_probe(img, SETUP_LEN + size, &k, &why))
		linux_load(&gm, &k, &cfg, &why);
	free(img);
	return 0;
}
