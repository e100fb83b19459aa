// SPDX-License-Identifier: MIT
/*
 * The Linux loader against hostile kernel files: probe the header, then plan
 * and load into a small guest memory with the fuzzer's tail as command line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "arch/x86/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEM (24u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct guest_mem gm = {.nr_slots = 1, .fd = -1, .total = FUZZ_MEM};
	struct boot_e820_entry e820[1] = {{0, FUZZ_MEM, E820_RAM}};
	struct linux_boot_cfg cfg = {
		.initrd_fd = -1,
		.kernel_fd = -1,
		.low_ram_end = FUZZ_MEM,
		.e820 = e820,
		.e820_nr = 1,
	};
	struct linux_kernel k;
	const char *why;
	char cmdline[64];
	uint64_t addr;
	size_t n;

	if (!ram)
		ram = malloc(FUZZ_MEM);
	if (!ram)
		return 0;
	gm.slot[0] = (struct guest_mem_slot){.gpa = 0, .size = FUZZ_MEM, .hva = ram};

	/* The last bytes double as a command line. */
	n = MIN(size, sizeof(cmdline) - 1);
	memcpy(cmdline, data + size - n, n);
	cmdline[n] = 0;
	cfg.cmdline = cmdline;

	if (linux_probe(data, size, &k, &why))
		return 0;
	linux_plan(&k, FUZZ_MEM, strlen(cmdline), size, &addr, &why);
	linux_load(&gm, &k, &cfg, &why);
	return 0;
}
