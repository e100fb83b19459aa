/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for the x86 machine: RSDP -> XSDT -> FADT (-> DSDT), MADT, MCFG.
 * Everything is derived from the resource registry and the CPU count. The FADT
 * is a full (not hardware-reduced) one with PM1a blocks in I/O space so that
 * the guest powers off through S5, and a reset register at 0xcf9.
 */
#ifndef PLINTH_VMM_ARCH_X86_ACPI_H
#define PLINTH_VMM_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct resources;

#define ACPI_HDR_LEN  36
#define ACPI_RSDP_LEN 36

/*
 * Build the tables into buf (cap bytes), to be copied to guest address base.
 * The RSDP is at offset 0. Returns the bytes used or -ENOSPC / -ENOMEM / -EINVAL.
 */
int acpi_build(uint8_t *buf, size_t cap, uint64_t base, unsigned int ncpus,
	       const struct resources *r);

/* Build the DSDT's AML body (without the table header) into a, from the registry. */
struct aml;
int acpi_build_dsdt_body(struct aml *a, const struct resources *r);

/* Byte sum of len bytes: 0 for a valid ACPI table. */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

#endif
