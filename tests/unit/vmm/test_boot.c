// SPDX-License-Identifier: MIT
/* The Linux loader: bzImage/ELF header checks, placement, zero page, e820. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "resources.h"
#include "util.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "bzimage.h"

#define RAM	(64u << 20)

static void test_bzimage_valid(void **state)
{
	uint8_t *img = make_bzimage();
	struct linux_kernel k;
	const char *why = NULL;

	(void)state;
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), 0);
	assert_int_equal(k.elf, 0);
	assert_int_equal(k.version, 0x020f);
	assert_int_equal(k.payload_off, 5 * 512);
	assert_int_equal(k.load_addr, 0x1000000);
	assert_int_equal(k.entry, 0x1000200);
	assert_int_equal(k.mem_needed, 0x100000);
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.hdr_len, 0x268 - 0x1f1);
	free(img);
}

static void test_bzimage_rejects(void **state)
{
	uint8_t *img = make_bzimage();
	struct linux_kernel k;
	const char *why = NULL;

	(void)state;
	/* Truncated before the end of the setup header. */
	assert_int_equal(linux_probe(img, 0x240, &k, &why), -ENOEXEC);
	assert_non_null(strstr(why, "too short"));
	/* Truncated: nothing after the setup sectors. */
	assert_int_equal(linux_probe(img, 5 * 512, &k, &why), -ENOEXEC);
	assert_non_null(strstr(why, "truncated"));
	/* Bad magic. */
	img[0x202] = 'X';
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), -ENOEXEC);
	assert_non_null(strstr(why, "not a Linux kernel"));
	img[0x202] = 'H';
	put16(img + 0x1fe, 0x1234);
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), -ENOEXEC);
	put16(img + 0x1fe, 0xaa55);
	/* Too old a protocol. */
	put16(img + 0x206, 0x020b);
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), -ENOEXEC);
	assert_non_null(strstr(why, "too old"));
	put16(img + 0x206, 0x020f);
	/* No 64-bit entry. */
	put16(img + 0x236, 0);
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), -ENOEXEC);
	assert_non_null(strstr(why, "64-bit"));
	put16(img + 0x236, XLF_KERNEL_64);
	/* zImage. */
	img[0x211] = 0;
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), -ENOEXEC);
	img[0x211] = LOADED_HIGH;
	/* Non-relocatable or odd preferred address: load at 1 MiB. */
	img[0x234] = 0;
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), 0);
	assert_int_equal(k.load_addr, 0x100000);
	free(img);
}

static uint8_t *make_elf(size_t *len, uint64_t paddr, uint64_t entry)
{
	size_t n = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 0x100;
	uint8_t *img = calloc(1, n);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(*eh));

	make_elf_header(eh, entry, 1);
	ph->p_type = PT_LOAD;
	ph->p_offset = sizeof(*eh) + sizeof(*ph);
	ph->p_paddr = paddr;
	ph->p_filesz = 0x100;
	ph->p_memsz = 0x2000;
	memset(img + ph->p_offset, 0x90, 0x100);
	*len = n;
	return img;
}

static void test_elf(void **state)
{
	struct linux_kernel k;
	const char *why = NULL;
	size_t len;
	uint8_t *img = make_elf(&len, 0x1000000, 0xffffffff81000010ULL);
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(Elf64_Ehdr));

	(void)state;
	assert_int_equal(linux_probe(img, len, &k, &why), 0);
	assert_int_equal(k.elf, 1);
	assert_int_equal(k.entry, 0x1000010); /* virtual entry mapped to physical */
	assert_int_equal(k.load_addr, 0x1000000);
	assert_int_equal(k.mem_needed, 0x2000);

	/* Entry outside every segment. */
	((Elf64_Ehdr *)img)->e_entry = 0x5000000;
	assert_int_equal(linux_probe(img, len, &k, &why), -ENOEXEC);
	((Elf64_Ehdr *)img)->e_entry = 0x1000000;
	/* Segment data beyond the file. */
	ph->p_filesz = 0x10000;
	assert_int_equal(linux_probe(img, len, &k, &why), -ENOEXEC);
	ph->p_filesz = 0x100;
	/* Segment wrapping the address space. */
	ph->p_paddr = UINT64_MAX - 0x10;
	assert_int_equal(linux_probe(img, len, &k, &why), -ENOEXEC);
	ph->p_paddr = 0x1000000;
	/* Not an executable, or not x86-64. */
	((Elf64_Ehdr *)img)->e_type = ET_DYN;
	assert_int_equal(linux_probe(img, len, &k, &why), -ENOEXEC);
	((Elf64_Ehdr *)img)->e_type = ET_EXEC;
	((Elf64_Ehdr *)img)->e_machine = EM_386;
	assert_int_equal(linux_probe(img, len, &k, &why), -ENOEXEC);
	/* Truncated header. */
	assert_int_equal(linux_probe(img, 20, &k, &why), -ENOEXEC);
	free(img);
}

static void test_plan(void **state)
{
	uint8_t *img = make_bzimage();
	struct linux_kernel k;
	const char *why = NULL;
	uint64_t addr;

	(void)state;
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), 0);
	/* The initrd goes at the top of low RAM, page aligned. */
	assert_int_equal(linux_plan(&k, RAM, 10, 5000, &addr, &why), 0);
	assert_int_equal(addr, (RAM - 5000) & ~0xfffULL);
	/* ... but below initrd_addr_max. */
	put32(img + 0x22c, 0x2000000 - 1);
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), 0);
	assert_int_equal(linux_plan(&k, RAM, 10, 4096, &addr, &why), 0);
	assert_int_equal(addr, 0x2000000 - 4096);
	/* Too large to fit above the kernel. */
	assert_int_equal(linux_plan(&k, RAM, 10, 0x1000000, &addr, &why), -ENOMEM);
	assert_non_null(strstr(why, "initrd"));
	/* Memory smaller than the kernel. */
	assert_int_equal(linux_plan(&k, 0x1000000, 10, 0, &addr, &why), -ENOMEM);
	/* Command line too long. */
	assert_int_equal(linux_plan(&k, RAM, 2048, 0, &addr, &why), -E2BIG);
	free(img);
}

static void test_load(void **state)
{
	uint8_t *img = make_bzimage(), *ram = calloc(1, RAM);
	struct guest_mem gm = {.nr_slots = 1, .fd = -1, .total = RAM};
	struct boot_e820_entry e820[2] = {{0, 0x9fc00, E820_RAM},
					  {0x100000, RAM - 0x100000, E820_RAM}};
	char path[] = "/tmp/plinth-initrd-XXXXXX";
	int fd = mkstemp(path);
	struct linux_boot_cfg cfg = {
		.cmdline = "console=ttyS0",
		.initrd_fd = fd,
		.kernel_fd = -1,
		.initrd_size = 8192,
		.low_ram_end = RAM,
		.rsdp = 0xe0000,
		.e820 = e820,
		.e820_nr = 2,
	};
	struct linux_kernel k;
	const char *why = NULL;
	struct boot_params *bp;
	uint64_t *pml4, *pd;
	uint8_t data[8192];

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(pwrite_full(fd, data, sizeof(data), 0), 0);
	gm.slot[0] = (struct guest_mem_slot){.gpa = 0, .size = RAM, .hva = ram};
	assert_int_equal(linux_probe(img, IMG_LEN, &k, &why), 0);
	assert_int_equal(linux_load(&gm, &k, &cfg, &why), 0);

	bp = (struct boot_params *)(ram + LAYOUT_ZERO_PAGE);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	assert_string_equal((char *)ram + LAYOUT_CMDLINE, "console=ttyS0");
	assert_int_equal(bp->hdr.ramdisk_size, 8192);
	assert_int_equal(bp->hdr.ramdisk_image, RAM - 8192);
	assert_memory_equal(ram + RAM - 8192, data, sizeof(data));
	assert_int_equal(bp->e820_entries, 2);
	assert_int_equal(bp->e820_table[1].addr, 0x100000);
	assert_int_equal(bp->acpi_rsdp_addr, 0xe0000);
	assert_int_equal(ram[0x1000000], 0xcc); /* kernel copied to its load address */
	/* In two steps (vm_create's): the images alone leave the boot data unwritten, and
	 * the parameters after them give the same guest memory as one linux_load. */
	{
		uint8_t *once = malloc(RAM);

		assert_non_null(once);
		memcpy(once, ram, RAM);
		memset(ram, 0, RAM);
		assert_int_equal(linux_load_images(&gm, &k, &cfg, &why), 0);
		assert_int_equal(ram[0x1000000], 0xcc);
		assert_memory_equal(ram + RAM - 8192, data, sizeof(data));
		assert_int_equal(k.initrd_addr, RAM - 8192);
		assert_int_equal(k.initrd_size, 8192);
		assert_int_equal(bp->hdr.boot_flag, 0);
		assert_int_equal(ram[LAYOUT_CMDLINE], 0);
		assert_int_equal(linux_load_params(&gm, &k, &cfg, &why), 0);
		assert_memory_equal(ram, once, RAM);
		free(once);
	}
	/* Read from the kernel's file instead: the same payload at the same place; a file
	 * shorter than the mapping (changed since) is an error, not a partial kernel. */
	{
		char kpath[] = "/tmp/plinth-kernel-XXXXXX";
		int kfd = mkstemp(kpath);

		assert_true(kfd >= 0);
		unlink(kpath);
		assert_int_equal(pwrite_full(kfd, img, IMG_LEN, 0), 0);
		memset(ram + 0x1000000, 0, IMG_LEN);
		cfg.kernel_fd = kfd;
		assert_int_equal(linux_load(&gm, &k, &cfg, &why), 0);
		assert_memory_equal(ram + 0x1000000, img + k.payload_off, IMG_LEN - k.payload_off);
		assert_int_equal(ftruncate(kfd, IMG_LEN / 2), 0);
		assert_int_not_equal(linux_load(&gm, &k, &cfg, &why), 0);
		assert_string_equal(why, "cannot read the kernel");
		cfg.kernel_fd = -1;
		close(kfd);
	}
	/* Identity map: PML4 -> PDPT -> 2 MiB pages. */
	pml4 = (uint64_t *)(ram + LAYOUT_PML4);
	pd = (uint64_t *)(ram + LAYOUT_PD);
	assert_int_equal(pml4[0], LAYOUT_PDPT | 3);
	assert_int_equal(pd[0], 0x83);
	assert_int_equal(pd[2047], (2047ULL << 21) | 0x83);

	/* A guest memory without room for the kernel fails cleanly. */
	gm.slot[0].size = 0x1000000;
	cfg.low_ram_end = 0x1000000;
	assert_int_equal(linux_load(&gm, &k, &cfg, &why), -ENOMEM);
	close(fd);
	free(ram);
	free(img);
}

static void test_e820(void **state)
{
	struct guest_mem gm = {.nr_slots = 2, .fd = -1};
	struct boot_e820_entry e[16];
	struct resources r;
	int n, i;

	(void)state;
	gm.slot[0] = (struct guest_mem_slot){.gpa = 0, .size = LAYOUT_MEM_HOLE};
	gm.slot[1] = (struct guest_mem_slot){.gpa = LAYOUT_MEM_4G, .size = 1ULL << 30};
	res_init(&r, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_LEN, 0xc000, 0x4000);
	assert_int_equal(res_claim(&r, RES_MMIO, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_LEN,
				   RES_F_E820_RESERVED, "ecam"),
			 0);
	assert_int_equal(res_claim(&r, RES_MMIO, LAYOUT_IOAPIC, 0x1000, 0, "ioapic"), 0);
	n = x86_e820_build(&gm, &r, e, 16);
	assert_int_equal(n, 6);
	for (i = 1; i < n; i++) /* sorted, no overlap */
		assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, LAYOUT_EBDA);
	assert_int_equal(e[0].type, E820_RAM);
	assert_int_equal(e[3].addr, 0x100000);
	assert_int_equal(e[3].size, LAYOUT_MEM_HOLE - 0x100000);
	assert_int_equal(e[4].addr, LAYOUT_PCI_ECAM);
	assert_int_equal(e[4].type, E820_RESERVED);
	assert_int_equal(e[5].addr, LAYOUT_MEM_4G);
	assert_int_equal(e[5].size, 1ULL << 30);
	assert_int_equal(e[5].type, E820_RAM);
	/* No room. */
	assert_int_equal(x86_e820_build(&gm, &r, e, 3), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzimage_valid), cmocka_unit_test(test_bzimage_rejects),
		cmocka_unit_test(test_elf),	      cmocka_unit_test(test_plan),
		cmocka_unit_test(test_load),	      cmocka_unit_test(test_e820),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
