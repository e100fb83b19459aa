/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 Linux boot protocol: parse a bzImage (or an ELF vmlinux), lay out
 * the kernel, command line, initrd, e820 map and zero page in guest memory, and
 * build the identity page tables and GDT that the 64-bit entry point expects.
 * The kernel file is untrusted input: every field is checked before use.
 */
#ifndef PLINTH_VMM_ARCH_X86_BOOT_H
#define PLINTH_VMM_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include <asm/bootparam.h>

#include "mem.h"

struct resources;

#define E820_RAM      1
#define E820_RESERVED 2

/* What the loader learned from the kernel file; pointers refer into the caller's image. */
struct linux_kernel {
	int elf;	      /* 1 for an ELF vmlinux, 0 for a bzImage */
	uint16_t version;     /* boot protocol version (bzImage) */
	const uint8_t *image; /* the whole file */
	size_t image_len;
	uint64_t payload_off;	  /* bzImage: file offset of the protected-mode code */
	uint64_t load_addr;	  /* guest-physical load address */
	uint64_t mem_needed;	  /* bytes from load_addr the kernel needs while booting */
	uint64_t entry;		  /* 64-bit entry point */
	uint32_t initrd_addr_max; /* highest address the initrd may end at */
	uint32_t cmdline_max;	  /* longest command line, without its NUL */
	size_t hdr_len;		  /* bzImage: bytes of setup header to copy from 0x1f1 */
	uint64_t zpayload_off;	  /* bzImage: file offset of the compressed vmlinux */
	uint64_t zpayload_len;	  /* and its length (0: the header names none) */
	uint64_t align;		  /* bzImage: physical alignment the kernel needs */
	/* What linux_load last did (it sets these on every load). */
	const char *unpacked; /* compression the VMM unpacked (kunpack.h), or NULL */
	const char *unpack_why; /* why not, when a bzImage was left to its decompressor */
	uint64_t phys;		/* guest-physical address of the kernel loaded */
	int kaslr;		/* placed at random (KASLR_FLAG told to the kernel) */
	uint64_t kaslr_delta;	/* virtual displacement applied (0: none) */
	uint64_t initrd_addr;	/* guest-physical address of the initrd loaded (0: none) */
	uint64_t initrd_size;
};

/*
 * Check a kernel image and describe it. 0, or -ENOEXEC with *why set to a
 * sentence naming what is wrong (static string).
 */
int linux_probe(const uint8_t *img, size_t len, struct linux_kernel *k, const char **why);

/* Where things go, from the machine layout. */
struct linux_boot_cfg {
	const char *cmdline;
	int initrd_fd; /* -1 for none */
	/* The kernel's file (the one k maps), or -1: a bzImage's payload is then read into
	 * guest memory in one pread instead of copied through the mapping (page by page
	 * faults, each a read on a network file system such as the emulated host's 9p).
	 * A payload plinth unpacks is read from the mapping after one MADV_POPULATE_READ,
	 * and through this file only where that call fails. */
	int kernel_fd;
	uint64_t initrd_size;
	uint64_t low_ram_end; /* end of RAM below 4 GiB */
	uint64_t rsdp;	      /* ACPI RSDP address, 0 for none */
	const struct boot_e820_entry *e820;
	unsigned int e820_nr;
	/* Randomize an unpacked kernel's physical and virtual place (KASLR) from this
	 * seed, unless the command line says nokaslr; 0 loads it where it was linked. */
	int kaslr;
	uint64_t kaslr_seed;
};

/*
 * Check that the kernel, a command line of cmdlen bytes and an initrd of
 * initrd_size bytes (0: none) fit below low_ram_end; *initrd_addr gets where
 * the initrd goes. 0 or -errno with *why set. Needs no guest memory.
 */
int linux_plan(const struct linux_kernel *k, uint64_t low_ram_end, size_t cmdlen,
	       uint64_t initrd_size, uint64_t *initrd_addr, const char **why);

/*
 * Copy the kernel, command line, initrd and zero page into guest memory and
 * build the boot page tables and GDT. A bzImage whose payload kunpack.h handles is
 * unpacked here and entered at the vmlinux's own 64-bit entry, relocated as the
 * guest's decompressor would (cfg->kaslr); otherwise it is copied as it is.
 * Sets k->entry and the fields after it. 0 or -errno with *why set for the user.
 */
int linux_load(struct guest_mem *gm, struct linux_kernel *k, const struct linux_boot_cfg *cfg,
	       const char **why);
/*
 * linux_load in two steps, for a caller that loads the large files while it does other
 * work: linux_load_images places and copies (or unpacks) the kernel and the initrd,
 * with no use of cfg->rsdp or cfg->e820; linux_load_params then writes the command
 * line, the zero page and the boot tables. Same results and errors as linux_load.
 */
int linux_load_images(struct guest_mem *gm, struct linux_kernel *k,
		      const struct linux_boot_cfg *cfg, const char **why);
int linux_load_params(struct guest_mem *gm, const struct linux_kernel *k,
		      const struct linux_boot_cfg *cfg, const char **why);

/*
 * The e820 map for this memory layout and registry (sorted, at most max
 * entries). Returns the number of entries or -ENOSPC.
 */
int x86_e820_build(const struct guest_mem *gm, const struct resources *r,
		   struct boot_e820_entry *out, unsigned int max);

/* Write identity page tables for the low 4 GiB and the boot GDT. 0 or -EFAULT. */
int x86_boot_tables(struct guest_mem *gm);

#endif
