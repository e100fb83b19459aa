/* SPDX-License-Identifier: MIT */
/*
 * A small AML (ACPI Machine Language) encoder: just what the DSDT needs (scopes,
 * devices, named integers/strings/packages and resource templates). Objects that
 * carry a PkgLength are opened with *_begin(), which returns a mark, and closed
 * with aml_end(mark), which inserts the encoded length. Allocation failures are
 * sticky: check aml.err once at the end.
 */
#ifndef PLINTH_VMM_ARCH_X86_AML_H
#define PLINTH_VMM_ARCH_X86_AML_H

#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf; /* owned */
	size_t len, cap;
	int err; /* first -errno, sticky */
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);

void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t v);
/* NameString: "\\_SB_", "PCI0", "_SB_.PCI0" (segments of exactly 4 characters). */
void aml_name(struct aml *a, const char *path);
/* The smallest integer encoding of v (Zero, One, Byte/Word/DWord/QWordConst). */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* A compressed EISA id such as "PNP0A08" as a DWordConst. */
void aml_eisaid(struct aml *a, const char *id);
/* Name(path, ...): the value object follows. */
void aml_name_decl(struct aml *a, const char *path);

size_t aml_scope_begin(struct aml *a, const char *path);
size_t aml_device_begin(struct aml *a, const char *path);
size_t aml_package_begin(struct aml *a, uint8_t nr_elements);
/* Buffer: its contents follow; aml_buffer_end() prepends the size. */
size_t aml_buffer_begin(struct aml *a);
void aml_buffer_end(struct aml *a, size_t mark);
/* Close a scope, device or package. */
void aml_end(struct aml *a, size_t mark);

/* Resource descriptors, to be placed inside a buffer; aml_res_end() closes the template. */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void aml_res_irq(struct aml *a, uint16_t mask);
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max);
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len);
void aml_res_end(struct aml *a);

/* Decode a PkgLength at p (n bytes available): returns its byte count, 0 if malformed. */
unsigned int aml_pkglen_decode(const uint8_t *p, size_t n, uint32_t *len);

#endif
