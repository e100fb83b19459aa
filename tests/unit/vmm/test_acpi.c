// SPDX-License-Identifier: MIT
/* ACPI tables and the AML encoder: build, then parse back what the guest would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "resources.h"
#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"

#define BASE 0xe0000
#define CAP  0x20000

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}
static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void machine(struct resources *r)
{
	static const struct res_isa_dev com1 = {"COM1", "PNP0501", 1, 0x3f8, 8, 4};

	res_init(r, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_LEN, PORT_PCI_IO, PORT_PCI_IO_LEN);
	assert_int_equal(res_claim(r, RES_MMIO, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_LEN,
				   RES_F_E820_RESERVED, "ecam"),
			 0);
	r->ecam_base = LAYOUT_PCI_ECAM;
	r->ecam_len = LAYOUT_PCI_ECAM_LEN;
	assert_int_equal(res_add_isa(r, &com1), 0);
}

/* A table at guest address gpa, checked for signature, bounds and checksum. */
static const uint8_t *table(const uint8_t *buf, uint64_t gpa, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	assert_true(gpa >= BASE && gpa < BASE + CAP);
	t = buf + (gpa - BASE);
	assert_memory_equal(t, sig, 4);
	len = rd32(t + 4);
	assert_true(len >= ACPI_HDR_LEN && gpa - BASE + len <= CAP);
	assert_int_equal(acpi_checksum(t, len), 0);
	return t;
}

static void check_tables(unsigned int ncpus)
{
	uint8_t *buf = malloc(CAP);
	const uint8_t *xsdt, *fadt, *madt, *dsdt, *mcfg = NULL, *t, *end;
	unsigned int n, i, lapics = 0, ioapics = 0, isos = 0;
	struct resources r;
	int used;

	machine(&r);
	used = acpi_build(buf, CAP, BASE, ncpus, &r);
	assert_true(used > 0);

	/* RSDP: both checksums, XSDT pointer. */
	assert_memory_equal(buf, "RSD PTR ", 8);
	assert_int_equal(acpi_checksum(buf, 20), 0);
	assert_int_equal(acpi_checksum(buf, ACPI_RSDP_LEN), 0);
	assert_int_equal(buf[15], 2);
	xsdt = table(buf, rd64(buf + 24), "XSDT");
	n = (rd32(xsdt + 4) - ACPI_HDR_LEN) / 8;
	assert_int_equal(n, 3);
	fadt = table(buf, rd64(xsdt + 36), "FACP");
	madt = table(buf, rd64(xsdt + 44), "APIC");
	mcfg = table(buf, rd64(xsdt + 52), "MCFG");

	/* FADT: a full one (not hardware-reduced), PM1a in I/O space, reset register. */
	assert_int_equal(rd32(fadt + 4), 276);
	assert_int_equal(rd16(fadt + 46), 9);
	assert_int_equal(rd32(fadt + 56), PORT_PM1A_EVT);
	assert_int_equal(rd32(fadt + 64), PORT_PM1A_CNT);
	assert_int_equal(fadt[88], 4);
	assert_int_equal(fadt[89], 2);
	assert_false(rd32(fadt + 112) & (1u << 20)); /* not HW_REDUCED_ACPI */
	assert_true(rd32(fadt + 112) & (1u << 10));  /* RESET_REG_SUP */
	assert_int_equal(fadt[116], 1);		     /* reset register in I/O space */
	assert_int_equal(rd64(fadt + 120), 0xcf9);
	assert_int_equal(fadt[128], 6);
	assert_int_equal(fadt[148], 1); /* X_PM1a_EVT_BLK: I/O */
	assert_int_equal(rd64(fadt + 152), PORT_PM1A_EVT);
	assert_int_equal(rd64(fadt + 176), PORT_PM1A_CNT);
	dsdt = table(buf, rd64(fadt + 140), "DSDT");
	assert_int_equal(rd32(fadt + 40), rd64(fadt + 140));
	(void)dsdt;

	/* MADT: one enabled local APIC per CPU with APIC ID = index, one IOAPIC, SCI override. */
	assert_int_equal(rd32(madt + 36), LAYOUT_LAPIC);
	t = madt + 44;
	end = madt + rd32(madt + 4);
	while (t < end) {
		assert_true(t[1] >= 2 && t + t[1] <= end);
		switch (t[0]) {
		case 0:
			assert_int_equal(t[3], lapics);
			assert_int_equal(rd32(t + 4) & 1, 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(rd32(t + 4), LAYOUT_IOAPIC);
			assert_int_equal(rd32(t + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(t[3], 9);
			assert_int_equal(rd32(t + 4), 9);
			assert_int_equal(rd16(t + 8), 0x000d);
			isos++;
			break;
		default:
			break;
		}
		t += t[1];
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);

	/* MCFG: ECAM for segment 0, bus 0 only. */
	assert_int_equal(rd64(mcfg + 44), LAYOUT_PCI_ECAM);
	assert_int_equal(rd16(mcfg + 52), 0);
	assert_int_equal(mcfg[54], 0);
	assert_int_equal(mcfg[55], 0);

	for (i = 0; i < 3; i++)
		assert_memory_equal(xsdt + 10, "PLINTH", 6);
	free(buf);
}

static void test_tables_1(void **state)
{
	(void)state;
	check_tables(1);
}
static void test_tables_4(void **state)
{
	(void)state;
	check_tables(4);
}
static void test_tables_64(void **state)
{
	(void)state;
	check_tables(64);
}

static void test_tables_errors(void **state)
{
	uint8_t buf[256];
	struct resources r;

	(void)state;
	machine(&r);
	assert_int_equal(acpi_build(buf, sizeof(buf), BASE, 4, &r), -ENOSPC);
	assert_int_equal(acpi_build(buf, sizeof(buf), BASE, 0, &r), -EINVAL);
}

/* Find needle in the DSDT body. */
static const uint8_t *find(const struct aml *a, const void *needle, size_t n)
{
	size_t i;

	for (i = 0; i + n <= a->len; i++) {
		if (!memcmp(a->buf + i, needle, n))
			return a->buf + i;
	}
	return NULL;
}

static void test_dsdt(void **state)
{
	static const uint8_t s5[] = {0x08, '_',	 'S',  '5',  '_',  0x12, 0x08,
				     0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00};
	static const uint8_t hid_pci[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t hid_com[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01};
	static const uint8_t ecam_res[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
					   0x00, 0xe0, 0x00, 0x00, 0x10, 0x00};
	static const uint8_t com_io[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03,
					 0x01, 0x08, 0x22, 0x10, 0x00};
	const uint8_t *p;
	struct resources r;
	struct aml a;
	uint32_t len;
	unsigned int n;

	(void)state;
	machine(&r);
	aml_init(&a);
	assert_int_equal(acpi_build_dsdt_body(&a, &r), 0);
	/* Scope(\_SB_) spans everything up to Name(\_S5_). */
	assert_int_equal(a.buf[0], 0x10);
	n = aml_pkglen_decode(a.buf + 1, a.len - 1, &len);
	assert_true(n > 0);
	assert_memory_equal(a.buf + 1 + n, "\\_SB_", 5);
	assert_true(1 + len <= a.len);
	assert_memory_equal(a.buf + 1 + len, "\x08\\_S5_", 6);
	assert_non_null(find(&a, s5 + 1, sizeof(s5) - 1));
	assert_non_null(find(&a, "PCI0", 4));
	assert_non_null(find(&a, hid_pci, sizeof(hid_pci)));
	assert_non_null(find(&a, hid_com, sizeof(hid_com)));
	assert_non_null(find(&a, ecam_res, sizeof(ecam_res)));
	assert_non_null(find(&a, com_io, sizeof(com_io)));
	/* PCI0's windows: the I/O and MMIO32 BAR windows. */
	p = find(&a, "\x88\x0d\x00\x01", 4);
	assert_non_null(p);
	assert_int_equal(rd16(p + 8), PORT_PCI_IO);
	assert_int_equal(rd16(p + 10), PORT_PCI_IO + PORT_PCI_IO_LEN - 1);
	p = find(&a, "\x87\x17\x00\x00", 4);
	assert_non_null(p);
	assert_int_equal(rd32(p + 10), LAYOUT_PCI_MMIO);
	assert_int_equal(rd32(p + 14), LAYOUT_PCI_MMIO + LAYOUT_PCI_MMIO_LEN - 1);
	aml_free(&a);
}

static void test_aml_integers(void **state)
{
	static const struct {
		uint64_t v;
		uint8_t enc[9];
		size_t n;
	} cases[] = {
		{0, {0x00}, 1},
		{1, {0x01}, 1},
		{2, {0x0a, 2}, 2},
		{0xff, {0x0a, 0xff}, 2},
		{0x100, {0x0b, 0x00, 0x01}, 3},
		{0x12345678, {0x0c, 0x78, 0x56, 0x34, 0x12}, 5},
		{0x100000000ULL, {0x0e, 0, 0, 0, 0, 1, 0, 0, 0}, 9},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aml a;

		aml_init(&a);
		aml_integer(&a, cases[i].v);
		assert_int_equal(a.err, 0);
		assert_int_equal(a.len, cases[i].n);
		assert_memory_equal(a.buf, cases[i].enc, cases[i].n);
		aml_free(&a);
	}
}

static void test_aml_pkglen(void **state)
{
	static const size_t sizes[] = {0,    1,	   61,	 62,	63,	 100,
				       4093, 4094, 4095, 70000, 1048573, 1048576};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct aml a;
		size_t mark;
		uint32_t len;
		unsigned int n;
		uint8_t *body = calloc(1, sizes[i] + 1);

		aml_init(&a);
		mark = aml_package_begin(&a, 0);
		aml_bytes(&a, body, sizes[i]);
		aml_end(&a, mark);
		assert_int_equal(a.err, 0);
		n = aml_pkglen_decode(a.buf + 1, a.len - 1, &len);
		assert_true(n >= 1 && n <= 4);
		/* PkgLength counts itself and what follows it. */
		assert_int_equal(len, a.len - 1);
		assert_int_equal(len, n + 1 + sizes[i]);
		aml_free(&a);
		free(body);
	}
}

static void test_aml_names(void **state)
{
	struct aml a;

	(void)state;
	aml_init(&a);
	aml_name(&a, "\\_SB_.PCI0");
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, 10);
	assert_memory_equal(a.buf, "\\\x2e_SB_PCI0", 10);
	aml_free(&a);

	aml_init(&a);
	aml_name(&a, "_SB_.PCI0.COM1");
	assert_int_equal(a.len, 14);
	assert_memory_equal(a.buf, "\x2f\x03_SB_PCI0COM1", 14);
	aml_free(&a);

	aml_init(&a);
	aml_name(&a, "PCI"); /* not 4 characters */
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);

	aml_init(&a);
	aml_name(&a, "0PCI"); /* leading digit */
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);

	aml_init(&a);
	aml_eisaid(&a, "PNP0A03");
	assert_memory_equal(a.buf, "\x0c\x41\xd0\x0a\x03", 5);
	aml_eisaid(&a, "pnp0a03");
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);

	aml_init(&a);
	aml_string(&a, "ab");
	assert_memory_equal(a.buf,
			    "\x0d"
			    "ab",
			    4);
	aml_free(&a);
}

static void test_aml_buffer(void **state)
{
	struct aml a;
	size_t mark;
	uint32_t len;
	unsigned int n;

	(void)state;
	aml_init(&a);
	mark = aml_buffer_begin(&a);
	aml_res_irq(&a, 1u << 4);
	aml_res_end(&a);
	aml_buffer_end(&a, mark);
	assert_int_equal(a.err, 0);
	/* 11 PkgLength 0a 05 (size 5) 22 10 00 79 00 */
	assert_int_equal(a.buf[0], 0x11);
	n = aml_pkglen_decode(a.buf + 1, a.len - 1, &len);
	assert_int_equal(n, 1);
	assert_int_equal(len, a.len - 1);
	assert_memory_equal(a.buf + 2, "\x0a\x05\x22\x10\x00\x79\x00", 7);
	aml_free(&a);
}

/* The statements the hot-plug methods use, byte for byte (ACPI 6.4, 20.2). */
static void test_aml_statements(void **state)
{
	static const uint8_t region[] = {0x5b, 0x80, 'P', 'C', 'S', 'T', 0x01,
					 0x0b, 0x00, 0xae, 0x0a, 0x0c};
	static const uint8_t field[] = {0x5b, 0x81, 0x15, 'P', 'C', 'S', 'T', 0x43,
					'P',  'C',  'I',  'U', 0x20, 'P', 'C', 'I',
					'D',  0x20, 'B',  '0', 'E',  'J', 0x20};
	static const uint8_t method[] = {0x14, 0x0d, '_', 'E', 'J', '0', 0x01, 0x70,
					 0x0a, 0x08, 'B', '0', 'E', 'J'};
	static const uint8_t cond[] = {0xa0, 0x17, 0x7b, 0x60, 0x0a, 0x08, 0x00, 0x86,
				       0x5c, 0x2f, 0x03, '_',  'S',  'B',  '_',  'P',
				       'C',  'I',  '0',  'S',  '0',  '0',  '3',  0x01};
	static const uint8_t wide[] = {'W', 'I', 'D', 'E', 0x40, 0x04, 'O', 'D', 'D', '_', 0x43, 0x06};
	struct aml a;
	size_t m;

	(void)state;
	aml_init(&a);
	aml_opregion_io(&a, "PCST", 0xae00, 12);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, sizeof(region));
	assert_memory_equal(a.buf, region, sizeof(region));
	aml_free(&a);

	aml_init(&a);
	m = aml_field_begin(&a, "PCST");
	aml_field_unit(&a, "PCIU", 32);
	aml_field_unit(&a, "PCID", 32);
	aml_field_unit(&a, "B0EJ", 32);
	aml_end(&a, m);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, sizeof(field));
	assert_memory_equal(a.buf, field, sizeof(field));
	aml_free(&a);

	aml_init(&a);
	m = aml_method_begin(&a, "_EJ0", 1);
	aml_store(&a);
	aml_integer(&a, 1u << 3);
	aml_name(&a, "B0EJ");
	aml_end(&a, m);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, sizeof(method));
	assert_memory_equal(a.buf, method, sizeof(method));
	aml_free(&a);

	aml_init(&a);
	m = aml_if_begin(&a);
	aml_and(&a);
	aml_local(&a, 0);
	aml_integer(&a, 1u << 3);
	aml_no_target(&a);
	aml_notify(&a);
	aml_name(&a, "\\_SB_.PCI0.S003");
	aml_integer(&a, 1);
	aml_end(&a, m);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, sizeof(cond));
	assert_memory_equal(a.buf, cond, sizeof(cond));
	aml_free(&a);

	/* Field widths of 64 bits and more take PkgLength's two-byte form. */
	aml_init(&a);
	aml_field_unit(&a, "WIDE", 64);
	aml_field_unit(&a, "ODD_", 0x63);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.len, sizeof(wide));
	assert_memory_equal(a.buf, wide, sizeof(wide));
	aml_free(&a);

	/* Locals, arguments and their limits. */
	aml_init(&a);
	aml_local(&a, 7);
	aml_arg(&a, 6);
	assert_int_equal(a.err, 0);
	assert_memory_equal(a.buf, "\x67\x6e", 2);
	aml_local(&a, 8);
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_arg(&a, 7);
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_method_begin(&a, "_EJ0", 8);
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_field_unit(&a, "PCIU", 0);
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_field_unit(&a, "P", 32);
	assert_int_equal(a.err, -EINVAL);
	aml_free(&a);
}

/* With the hot-plug ports in the registry: GPE0 in the FADT, slots and _E01 in the DSDT. */
static void test_hotplug_tables(void **state)
{
	static const uint8_t region[] = {0x5b, 0x80, 'P', 'C', 'S', 'T', 0x01, 0x0b, 0x00, 0xae};
	static const uint8_t ej0_s31[] = {0x14, 0x10, '_', 'E', 'J', '0', 0x01, 0x70,
					  0x0c, 0x00, 0x00, 0x00, 0x80, 'B', '0', 'E', 'J'};
	static const uint8_t adr_s31[] = {0x08, '_', 'A', 'D', 'R', 0x0c, 0x00, 0x00, 0x1f, 0x00,
					  0x08, '_', 'S', 'U', 'N', 0x0a, 0x1f};
	static const uint8_t eject_s31[] = {'S', '0', '1', 'F', 0x0a, 0x03};
	uint8_t *buf = calloc(1, CAP);
	const uint8_t *xsdt, *fadt, *p;
	struct resources r;
	struct aml a;
	uint32_t len;
	unsigned int n, devs = 0;
	int size;

	(void)state;
	assert_non_null(buf);
	machine(&r);
	r.gpe0_port = PORT_GPE0;
	r.pcihp_port = PORT_PCIHP;
	size = acpi_build(buf, CAP, BASE, 2, &r);
	assert_true(size > 0);
	xsdt = table(buf, rd64(buf + 24), "XSDT");
	fadt = table(buf, rd64(xsdt + 36), "FACP");
	assert_int_equal(rd32(fadt + 80), PORT_GPE0);
	assert_int_equal(fadt[92], PORT_GPE0_LEN);
	assert_int_equal(fadt[220], 1); /* X_GPE0_BLK: I/O, 32 bits */
	assert_int_equal(fadt[221], 32);
	assert_int_equal(rd64(fadt + 224), PORT_GPE0);
	assert_non_null(table(buf, rd64(fadt + 140), "DSDT"));
	free(buf);

	aml_init(&a);
	assert_int_equal(acpi_build_dsdt_body(&a, &r), 0);
	assert_non_null(find(&a, region, sizeof(region)));
	assert_non_null(find(&a, ej0_s31, sizeof(ej0_s31)));
	assert_non_null(find(&a, adr_s31, sizeof(adr_s31)));
	assert_non_null(find(&a, eject_s31, sizeof(eject_s31)));
	assert_null(find(&a, "S000", 4)); /* the host bridge's slot is not hot-pluggable */
	/* 31 slot devices inside PCI0, each a Device op. */
	for (p = a.buf; (p = memmem(p, (size_t)(a.buf + a.len - p), "\x5b\x82", 2)); p += 2) {
		n = aml_pkglen_decode(p + 2, (size_t)(a.buf + a.len - p - 2), &len);
		assert_true(n > 0);
		if (p[2 + n] == 'S' && p[3 + n] == '0')
			devs++;
	}
	assert_int_equal(devs, 31);
	/* \_GPE._E01 after \_SB_, before \_S5_. */
	p = find(&a, "\x10", 1);
	assert_ptr_equal(p, a.buf);
	n = aml_pkglen_decode(a.buf + 1, a.len - 1, &len);
	assert_int_equal(a.buf[1 + len], 0x10);
	assert_memory_equal(a.buf + 1 + len + 1 + 2, "\\_GPE", 5);
	assert_non_null(find(&a, "\x14", 1));
	assert_non_null(find(&a, "_E01\x00\x70\x5c\x2f\x03_SB_PCI0PCIU\x60", 22));
	aml_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_1),   cmocka_unit_test(test_tables_4),
		cmocka_unit_test(test_tables_64),  cmocka_unit_test(test_tables_errors),
		cmocka_unit_test(test_dsdt),	   cmocka_unit_test(test_aml_integers),
		cmocka_unit_test(test_aml_pkglen), cmocka_unit_test(test_aml_names),
		cmocka_unit_test(test_aml_buffer), cmocka_unit_test(test_aml_statements),
		cmocka_unit_test(test_hotplug_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
