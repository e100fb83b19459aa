// SPDX-License-Identifier: MIT
/* The resource registry and the pio/mmio dispatch bus. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"
#include "resources.h"

static void test_claims(void **state)
{
	struct resources r;

	(void)state;
	res_init(&r, 0xc0000000, 0x20000000, 0xc000, 0x4000);
	assert_int_equal(res_claim(&r, RES_PIO, 0x3f8, 8, 0, "com1"), 0);
	assert_int_equal(res_claim(&r, RES_PIO, 0x3f8, 1, 0, "dup"), -EEXIST);
	assert_int_equal(res_claim(&r, RES_PIO, 0x3f0, 9, 0, "overlap-start"), -EEXIST);
	assert_int_equal(res_claim(&r, RES_PIO, 0x3ff, 2, 0, "overlap-end"), -EEXIST);
	assert_int_equal(res_claim(&r, RES_PIO, 0x3f0, 8, 0, "adjacent"), 0);
	assert_int_equal(res_claim(&r, RES_PIO, 0x400, 8, 0, "adjacent"), 0);
	/* Port and MMIO spaces are separate. */
	assert_int_equal(res_claim(&r, RES_MMIO, 0x3f8, 8, 0, "mmio"), 0);
	/* The PCI windows belong to BARs. */
	assert_int_equal(res_claim(&r, RES_MMIO, 0xd0000000, 0x1000, 0, "in-window"), -EEXIST);
	assert_int_equal(res_claim(&r, RES_PIO, 0xbfff, 2, 0, "in-window"), -EEXIST);
	/* Bad ranges. */
	assert_int_equal(res_claim(&r, RES_PIO, 0xfffe, 4, 0, "past 64K"), -EINVAL);
	assert_int_equal(res_claim(&r, RES_MMIO, UINT64_MAX - 1, 4, 0, "wrap"), -EINVAL);
	assert_int_equal(res_claim(&r, RES_MMIO, 0x1000, 0, 0, "empty"), -EINVAL);
	assert_true(res_overlaps(&r, RES_PIO, 0x3fa, 1));
	assert_false(res_overlaps(&r, RES_PIO, 0x500, 1));
}

static void test_alloc(void **state)
{
	struct resources r;
	uint64_t a, b, c;

	(void)state;
	res_init(&r, 0xc0000000, 0x10000, 0xc000, 0x100);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x100, 0x1000, "bar", &a), 0);
	assert_int_equal(a, 0xc0000000);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x4000, 0x4000, "bar", &b), 0);
	assert_int_equal(b, 0xc0004000); /* aligned up past the first */
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x8000, 0x8000, "bar", &c), 0);
	assert_int_equal(c, 0xc0008000);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x8000, 0x10, "bar", &c), -ENOSPC);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x10, 3, "bar", &c), -EINVAL);
	assert_int_equal(res_alloc(&r, RES_PIO, 0x80, 0x80, "io", &a), 0);
	assert_int_equal(a, 0xc000);
	assert_int_equal(res_alloc(&r, RES_PIO, 0x100, 0x100, "io", &a), -ENOSPC);
	/* Allocations are claims: fixed claims can't land on them. */
	assert_true(res_overlaps(&r, RES_MMIO, 0xc0004000, 1));

	/* The top of the window used up: the first gap that fits, aligned (here the
	 * first allocation's alignment left one), and space given back. */
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x10, 0x10, "bar", &c), 0);
	assert_int_equal(c, 0xc0000100);
	assert_int_equal(res_release(&r, RES_MMIO, 0xc0004000, 0x4000), 0);
	assert_int_equal(res_release(&r, RES_MMIO, 0xc0004000, 0x4000), -ENOENT);
	assert_int_equal(res_release(&r, RES_MMIO, 0xc0008000, 0x4000), -ENOENT); /* not exact */
	assert_false(res_overlaps(&r, RES_MMIO, 0xc0004000, 1));
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x2000, 0x2000, "bar", &c), 0);
	assert_int_equal(c, 0xc0002000);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x4000, 0x4000, "bar", &c), 0);
	assert_int_equal(c, 0xc0004000);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x1000, 0x1000, "bar", &c), 0);
	assert_int_equal(c, 0xc0001000);
	assert_int_equal(res_alloc(&r, RES_MMIO, 0x1000, 0x1000, "bar", &c), -ENOSPC);
}

static void test_irqs_and_slots(void **state)
{
	struct resources r;
	unsigned int irq;
	int i;

	(void)state;
	res_init(&r, 0, 0, 0, 0);
	assert_int_equal(res_irq_claim(&r, 4), 0);
	assert_int_equal(res_irq_claim(&r, 4), -EEXIST);
	assert_int_equal(res_irq_claim(&r, 24), -EINVAL);
	assert_int_equal(res_irq_claim(&r, 5), 0);
	assert_int_equal(res_irq_alloc(&r, &irq), 0);
	assert_int_equal(irq, 6);
	for (i = 7; i < 24; i++)
		assert_int_equal(res_irq_alloc(&r, &irq), 0);
	assert_int_equal(res_irq_alloc(&r, &irq), -ENOSPC);

	assert_int_equal(res_pci_slot(&r, 0), 0);
	assert_int_equal(res_pci_slot(&r, 0), -EEXIST);
	assert_int_equal(res_pci_slot(&r, -1), 1);
	assert_int_equal(res_pci_slot(&r, 32), -EINVAL);
	for (i = 2; i < 32; i++)
		assert_int_equal(res_pci_slot(&r, -1), i);
	assert_int_equal(res_pci_slot(&r, -1), -ENOSPC);
}

static void test_isa(void **state)
{
	struct res_isa_dev ok = {"COM1", "PNP0501", 1, 0x3f8, 8, 4};
	struct res_isa_dev bad = {"COM", "PNP0501", 1, 0x3f8, 8, 4};
	struct resources r;

	(void)state;
	res_init(&r, 0, 0, 0, 0);
	assert_int_equal(res_add_isa(&r, &ok), 0);
	assert_int_equal(res_add_isa(&r, &bad), -EINVAL);
	assert_int_equal(r.nr_isa, 1);
}

struct dev {
	uint64_t off;
	unsigned int len, reads, writes;
	uint8_t last;
};

static void d_read(void *o, uint64_t off, void *data, unsigned int len)
{
	struct dev *d = o;

	d->off = off;
	d->len = len;
	d->reads++;
	memset(data, 0x42, len);
}

static void d_write(void *o, uint64_t off, const void *data, unsigned int len)
{
	struct dev *d = o;

	d->off = off;
	d->len = len;
	d->writes++;
	d->last = *(const uint8_t *)data;
}

static const struct bus_dev_ops dops = {d_read, d_write};

static void test_bus(void **state)
{
	struct dev a = {0}, b = {0};
	uint8_t buf[8];
	struct bus bus;

	(void)state;
	assert_int_equal(bus_init(&bus, "test"), 0);
	assert_int_equal(bus_register(&bus, 0x100, 0x10, &dops, &a), 0);
	assert_int_equal(bus_register(&bus, 0x108, 0x10, &dops, &b), -EEXIST);
	assert_int_equal(bus_register(&bus, 0xf8, 0x10, &dops, &b), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x110, 0x10, &dops, &b), 0);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, &dops, &b), -EINVAL);

	assert_true(bus_access(&bus, 0x104, buf, 4, false));
	assert_int_equal(a.off, 4);
	assert_int_equal(a.len, 4);
	assert_int_equal(buf[0], 0x42);
	buf[0] = 7;
	assert_true(bus_access(&bus, 0x110, buf, 1, true));
	assert_int_equal(b.writes, 1);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.last, 7);
	/* Straddling two ranges or the end of one: not dispatched, reads all-ones. */
	assert_false(bus_access(&bus, 0x10e, buf, 4, false));
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(a.reads, 1);
	/* Unclaimed. */
	assert_false(bus_access(&bus, 0x50, buf, 2, false));
	assert_false(bus_access(&bus, 0x200, buf, 1, true));
	/* Unregister only with the right owner. */
	assert_int_equal(bus_unregister(&bus, 0x100, &b), -ENOENT);
	assert_int_equal(bus_unregister(&bus, 0x100, &a), 0);
	assert_false(bus_access(&bus, 0x100, buf, 1, false));
	assert_true(bus_access(&bus, 0x11f, buf, 1, false));
	bus_destroy(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_irqs_and_slots),
		cmocka_unit_test(test_isa),
		cmocka_unit_test(test_bus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
