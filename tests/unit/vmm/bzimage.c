// SPDX-License-Identifier: MIT
/* Test kernels: a minimal bzImage for the loader's and the VM's tests. */
#include "bzimage.h"

#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"

void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* A minimal bzImage: 4 setup sectors, protocol 2.15, relocatable, 64-bit. */
uint8_t *make_bzimage(void)
{
	uint8_t *img = calloc(1, IMG_LEN);

	img[0x1f1] = 4;
	put16(img + 0x1fe, 0xaa55);
	img[0x201] = 0x66; /* header ends at 0x268 */
	memcpy(img + 0x202, "HdrS", 4);
	put16(img + 0x206, 0x020f);
	img[0x211] = LOADED_HIGH;
	put32(img + 0x22c, 0x7fffffff);
	put32(img + 0x230, 0x200000);
	img[0x234] = 1;
	put16(img + 0x236, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	put32(img + 0x238, 2047);
	put64(img + 0x258, 0x1000000);
	put32(img + 0x260, 0x100000);
	memset(img + 5 * 512, 0xcc, IMG_LEN - 5 * 512); /* "kernel code" */
	return img;
}

void make_elf_header(Elf64_Ehdr *eh, uint64_t entry, unsigned int phnum)
{
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_entry = entry;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = (uint16_t)phnum;
}
