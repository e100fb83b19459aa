/* SPDX-License-Identifier: MIT */
/* Test kernels (bzimage.c). */
#ifndef PLINTH_TESTS_BZIMAGE_H
#define PLINTH_TESTS_BZIMAGE_H

#include <elf.h>
#include <stdint.h>

#define IMG_LEN 0x4000 /* bytes of make_bzimage()'s image */

/* Little-endian stores. */
void put16(uint8_t *p, uint16_t v);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);
/* A minimal bzImage of IMG_LEN bytes (malloc'd): 4 setup sectors, protocol 2.15, 64-bit. */
uint8_t *make_bzimage(void);
/* An x86-64 ET_EXEC header: entry, phnum program headers right after it. */
void make_elf_header(Elf64_Ehdr *eh, uint64_t entry, unsigned int phnum);

#endif
