/* SPDX-License-Identifier: MIT */
/*
 * A small AML (ACPI Machine Language) encoder: just what the DSDT needs (scopes,
 * devices, named integers/strings/packages, resource templates, and for PCI
 * hot-plug an I/O operation region with its fields and the few statements of the
 * slot methods: Method, If, Store, And, Notify, locals and arguments). Objects that
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

/*
 * Statements. Method(path, nargs) and If(predicate) open a body closed by aml_end();
 * If's predicate (a term) follows aml_if_begin(). Operands are terms: integers,
 * names, aml_local(n) (Local0..7), aml_arg(n) (Arg0..6) or nested expressions.
 */
size_t aml_method_begin(struct aml *a, const char *path, unsigned int nargs);
size_t aml_if_begin(struct aml *a);
/* Store(src, dst): the source term, then the destination (a name or a local). */
void aml_store(struct aml *a);
/* And(x, y, target): the two operand terms follow, then the target (aml_no_target()). */
void aml_and(struct aml *a);
/* An absent Target operand (NullName): the result is only a value. */
void aml_no_target(struct aml *a);
/* Notify(object, value): the object's name, then the value term. */
void aml_notify(struct aml *a);
void aml_local(struct aml *a, unsigned int n);
void aml_arg(struct aml *a, unsigned int n);

/* OperationRegion(name, SystemIO, base, len). */
void aml_opregion_io(struct aml *a, const char *name, uint16_t base, uint16_t len);
/* Field(region, DWordAcc, NoLock, WriteAsZeros) { units }: aml_field_unit() for each. */
size_t aml_field_begin(struct aml *a, const char *region);
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);

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
