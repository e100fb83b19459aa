// SPDX-License-Identifier: MIT
#include "acpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "aml.h"
#include "layout.h"
#include "resources.h"
#include "util.h"

#define FADT_LEN 276 /* revision 6 */
#define GAS_IO	 1

/* FADT flags and IA-PC boot architecture flags we set. */
#define FADT_F_WBINVD	     (1u << 0)
#define FADT_F_PROC_C1	     (1u << 2)
/* FADT flag bit 4 (PWR_BUTTON, "no fixed power button") stays clear: PM1 has one. */
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_FIX_RTC	     (1u << 6)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_NO_ASPM	     (1u << 4)
#define IAPC_NO_CMOS_RTC     (1u << 5)

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* Fill a standard table header; the checksum is set by finish(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	t[9] = 0;
	memcpy(t + 10, "PLINTH", 6);
	memcpy(t + 16, "PLINTHVM", 8);
	put32(t + 24, 1);
	memcpy(t + 28, "PLNT", 4);
	put32(t + 32, 1);
}

static void finish(uint8_t *t, size_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)-acpi_checksum(t, len);
}

/* A generic address structure for an I/O port block. */
static void gas_io(uint8_t *p, uint8_t bits, uint8_t access, uint64_t port)
{
	p[0] = GAS_IO;
	p[1] = bits;
	p[2] = 0;
	p[3] = access;
	put64(p + 4, port);
}

/*
 * ACPI PCI hot-plug of bus 0 (vmm/hw/pcihp.h has the protocol): inside PCI0, the
 * controller's registers as fields and one Device per slot 1..31 with _ADR, _SUN
 * and an _EJ0 that writes the slot's bit to B0EJ; in \_GPE, _E01 notifies each
 * slot PCIU reports with 1 (device check) and each PCID reports with 3 (eject
 * request). Every slot is described, those of the configured devices too: any of
 * them may be removed, and Linux's acpiphp manages exactly the slots it finds here
 * with an _EJ0.
 */
static void slot_name(char name[5], unsigned int slot)
{
	static const char hex[] = "0123456789ABCDEF";

	name[0] = 'S';
	name[1] = '0' + (char)(slot / 100 % 10);
	name[2] = hex[slot / 16 % 16];
	name[3] = hex[slot % 16];
	name[4] = 0;
}

static void dsdt_pci_slots(struct aml *a, const struct resources *r)
{
	char name[5];
	size_t dev, m;
	unsigned int s;

	aml_opregion_io(a, "PCST", r->pcihp_port, PORT_PCIHP_LEN);
	m = aml_field_begin(a, "PCST");
	aml_field_unit(a, "PCIU", 32);
	aml_field_unit(a, "PCID", 32);
	aml_field_unit(a, "B0EJ", 32);
	aml_end(a, m);
	for (s = 1; s < 32; s++) {
		slot_name(name, s);
		dev = aml_device_begin(a, name);
		aml_name_decl(a, "_ADR");
		aml_integer(a, (uint64_t)s << 16);
		aml_name_decl(a, "_SUN");
		aml_integer(a, s);
		m = aml_method_begin(a, "_EJ0", 1);
		aml_store(a);
		aml_integer(a, 1u << s);
		aml_name(a, "B0EJ");
		aml_end(a, m);
		aml_end(a, dev);
	}
}

/* \_GPE._E01: the hot-plug event (Local0: inserted slots, Local1: to be ejected). */
static void dsdt_pci_gpe(struct aml *a)
{
	char path[32];
	size_t sc, m, cond;
	unsigned int s, l;

	sc = aml_scope_begin(a, "\\_GPE");
	m = aml_method_begin(a, "_E01", 0);
	aml_store(a);
	aml_name(a, "\\_SB_.PCI0.PCIU");
	aml_local(a, 0);
	aml_store(a);
	aml_name(a, "\\_SB_.PCI0.PCID");
	aml_local(a, 1);
	for (s = 1; s < 32; s++) {
		snprintf(path, sizeof(path), "\\_SB_.PCI0.");
		slot_name(path + strlen(path), s);
		for (l = 0; l < 2; l++) {
			cond = aml_if_begin(a);
			aml_and(a);
			aml_local(a, l);
			aml_integer(a, 1u << s);
			aml_no_target(a);
			aml_notify(a);
			aml_name(a, path);
			aml_integer(a, l ? 3 : 1);
			aml_end(a, cond);
		}
	}
	aml_end(a, m);
	aml_end(a, sc);
}

int acpi_build_dsdt_body(struct aml *a, const struct resources *r)
{
	size_t sb, dev, buf, pkg;
	unsigned int i;

	sb = aml_scope_begin(a, "\\_SB_");

	/* The PCI host bridge: ECAM bus 0, config ports, and the BAR windows. */
	dev = aml_device_begin(a, "PCI0");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name_decl(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name_decl(a, "_SEG");
	aml_integer(a, 0);
	aml_name_decl(a, "_BBN");
	aml_integer(a, 0);
	aml_name_decl(a, "_UID");
	aml_integer(a, 0);
	aml_name_decl(a, "_CRS");
	buf = aml_buffer_begin(a);
	aml_res_word_bus(a, 0, 0);
	aml_res_io(a, PORT_PCI_CONF, PORT_PCI_CONF, 1, PORT_PCI_CONF_LEN);
	if (r->pci_io.len)
		aml_res_word_io(a, (uint16_t)r->pci_io.base,
				(uint16_t)(r->pci_io.base + r->pci_io.len - 1));
	if (r->pci_mmio.len)
		aml_res_dword_mem(a, (uint32_t)r->pci_mmio.base,
				  (uint32_t)(r->pci_mmio.base + r->pci_mmio.len - 1));
	aml_res_end(a);
	aml_buffer_end(a, buf);
	if (r->pcihp_port)
		dsdt_pci_slots(a, r);
	aml_end(a, dev);

	/* Fixed ISA devices (the serial port). */
	for (i = 0; i < r->nr_isa; i++) {
		const struct res_isa_dev *d = &r->isa[i];

		dev = aml_device_begin(a, d->name);
		aml_name_decl(a, "_HID");
		aml_eisaid(a, d->hid);
		aml_name_decl(a, "_UID");
		aml_integer(a, d->uid);
		aml_name_decl(a, "_CRS");
		buf = aml_buffer_begin(a);
		aml_res_io(a, d->port, d->port, 1, (uint8_t)d->port_len);
		aml_res_irq(a, (uint16_t)(1u << d->irq));
		aml_res_end(a);
		aml_buffer_end(a, buf);
		aml_end(a, dev);
	}

	/* Motherboard resources: ECAM and the other reserved MMIO, so nobody reuses them. */
	dev = aml_device_begin(a, "MRES");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name_decl(a, "_UID");
	aml_integer(a, 1);
	aml_name_decl(a, "_CRS");
	buf = aml_buffer_begin(a);
	for (i = 0; i < r->nr_ranges; i++) {
		const struct res_range *c = &r->range[i];

		if (c->kind == RES_MMIO && (c->flags & RES_F_E820_RESERVED) &&
		    c->base + c->len <= LAYOUT_MEM_4G)
			aml_res_mem32_fixed(a, (uint32_t)c->base, (uint32_t)c->len);
	}
	aml_res_end(a);
	aml_buffer_end(a, buf);
	aml_end(a, dev);
	aml_end(a, sb);
	if (r->pcihp_port)
		dsdt_pci_gpe(a);

	/* Soft-off: SLP_TYPa, SLP_TYPb, reserved, reserved. */
	aml_name_decl(a, "\\_S5_");
	pkg = aml_package_begin(a, 4);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a, pkg);
	return a->err;
}

/* Append a table of len bytes at *off (16-byte aligned); returns its offset or -ENOSPC. */
static long place(size_t *off, size_t len, size_t cap)
{
	size_t at = align_up(*off, 16);

	if (at > cap || len > cap - at)
		return -ENOSPC;
	*off = at + len;
	return (long)at;
}

int acpi_build(uint8_t *buf, size_t cap, uint64_t base, unsigned int ncpus,
	       const struct resources *r)
{
	size_t off = 0, madt_len, i;
	long rsdp, xsdt, fadt, dsdt, madt, mcfg;
	unsigned int nr_tables = r->ecam_len ? 3 : 2;
	struct aml a;
	uint8_t *t;
	int ret;

	if (!ncpus || ncpus > 255)
		return -EINVAL;
	memset(buf, 0, cap);

	aml_init(&a);
	ret = acpi_build_dsdt_body(&a, r);
	if (ret)
		goto out_free_aml;

	madt_len = ACPI_HDR_LEN + 8 + ncpus * 8 + 12 + 10 + 6;
	rsdp = place(&off, ACPI_RSDP_LEN, cap);
	xsdt = place(&off, ACPI_HDR_LEN + 8 * nr_tables, cap);
	fadt = place(&off, FADT_LEN, cap);
	madt = place(&off, madt_len, cap);
	mcfg = r->ecam_len ? place(&off, ACPI_HDR_LEN + 8 + 16, cap) : 0;
	dsdt = place(&off, ACPI_HDR_LEN + a.len, cap);
	ret = -ENOSPC;
	if (rsdp < 0 || xsdt < 0 || fadt < 0 || madt < 0 || mcfg < 0 || dsdt < 0)
		goto out_free_aml;

	/* DSDT */
	t = buf + dsdt;
	header(t, "DSDT", (uint32_t)(ACPI_HDR_LEN + a.len), 2);
	memcpy(t + ACPI_HDR_LEN, a.buf, a.len);
	finish(t, ACPI_HDR_LEN + a.len);

	/* FADT */
	t = buf + fadt;
	header(t, "FACP", FADT_LEN, 6);
	put32(t + 40, (uint32_t)(base + dsdt));
	put16(t + 46, IRQ_SCI);
	put32(t + 56, PORT_PM1A_EVT);
	put32(t + 64, PORT_PM1A_CNT);
	if (r->gpe0_port) {
		put32(t + 80, r->gpe0_port);
		t[92] = PORT_GPE0_LEN;
		gas_io(t + 220, PORT_GPE0_LEN * 8, 1, r->gpe0_port);
	}
	t[88] = PORT_PM1A_EVT_LEN;
	t[89] = PORT_PM1A_CNT_LEN;
	put16(t + 96, 0x0fff); /* C2 latency > 100: no C2 */
	put16(t + 98, 0x0fff); /* C3 latency > 1000: no C3 */
	put16(t + 109, IAPC_VGA_NOT_PRESENT | IAPC_NO_ASPM | IAPC_NO_CMOS_RTC);
	put32(t + 112, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
			       FADT_F_FIX_RTC | FADT_F_RESET_REG_SUP);
	gas_io(t + 116, 8, 1, PORT_RESET);
	t[128] = 0x06; /* reset value: full reset through 0xcf9 */
	t[131] = 0;    /* minor version */
	put64(t + 140, base + dsdt);
	gas_io(t + 148, PORT_PM1A_EVT_LEN * 8, 2, PORT_PM1A_EVT);
	gas_io(t + 172, PORT_PM1A_CNT_LEN * 8, 2, PORT_PM1A_CNT);
	memcpy(t + 268, "PLINTHVM", 8);
	finish(t, FADT_LEN);

	/* MADT: one local APIC per CPU, the IOAPIC, SCI override, LINT1 NMI. */
	t = buf + madt;
	header(t, "APIC", (uint32_t)madt_len, 3);
	put32(t + 36, LAYOUT_LAPIC);
	put32(t + 40, 1); /* PCAT_COMPAT: dual 8259s present */
	i = ACPI_HDR_LEN + 8;
	for (unsigned int c = 0; c < ncpus; c++, i += 8) {
		t[i] = 0;
		t[i + 1] = 8;
		t[i + 2] = (uint8_t)c; /* ACPI processor UID */
		t[i + 3] = (uint8_t)c; /* APIC ID */
		put32(t + i + 4, 1);   /* enabled */
	}
	t[i] = 1;
	t[i + 1] = 12;
	t[i + 2] = 0; /* IOAPIC ID */
	put32(t + i + 4, LAYOUT_IOAPIC);
	put32(t + i + 8, 0);
	i += 12;
	t[i] = 2;
	t[i + 1] = 10;
	t[i + 2] = 0; /* ISA */
	t[i + 3] = IRQ_SCI;
	put32(t + i + 4, IRQ_SCI);
	put16(t + i + 8, 0x000d); /* level triggered, active high */
	i += 10;
	t[i] = 4;
	t[i + 1] = 6;
	t[i + 2] = 0xff; /* all processors */
	put16(t + i + 3, 0);
	t[i + 5] = 1; /* LINT1 */
	finish(t, madt_len);

	/* MCFG: ECAM for segment 0, bus 0. */
	if (r->ecam_len) {
		t = buf + mcfg;
		header(t, "MCFG", ACPI_HDR_LEN + 8 + 16, 1);
		put64(t + 44, r->ecam_base);
		put16(t + 52, 0);
		t[54] = 0;
		t[55] = (uint8_t)(r->ecam_len / MiB - 1);
		finish(t, ACPI_HDR_LEN + 8 + 16);
	}

	/* XSDT */
	t = buf + xsdt;
	header(t, "XSDT", ACPI_HDR_LEN + 8 * nr_tables, 1);
	put64(t + 36, base + fadt);
	put64(t + 44, base + madt);
	if (r->ecam_len)
		put64(t + 52, base + mcfg);
	finish(t, ACPI_HDR_LEN + 8 * nr_tables);

	/* RSDP (ACPI 2.0+): checksum over the first 20 bytes, extended over all 36. */
	t = buf + rsdp;
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, "PLINTH", 6);
	t[15] = 2;
	put32(t + 20, ACPI_RSDP_LEN);
	put64(t + 24, base + xsdt);
	t[8] = (uint8_t)-acpi_checksum(t, 20);
	t[32] = (uint8_t)-acpi_checksum(t, ACPI_RSDP_LEN);
	ret = (int)off;

out_free_aml:
	aml_free(&a);
	return ret;
}
