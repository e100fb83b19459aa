// SPDX-License-Identifier: MIT
/*
 * PCI bus 0: config access through 0xcf8/0xcfc and ECAM, BAR placement and
 * sizing, command-register decoding and BAR moves, as Linux performs them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"
#include "resources.h"
#include "arch/x86/layout.h"
#include "hw/pci.h"

struct remap {
	int bar;
	uint64_t old_addr, new_addr;
};

struct fake_dev {
	struct pci_device pci;
	struct remap remaps[32];
	int nr_remaps;
	int last_bar;
	uint64_t last_off;
	unsigned int bar_reads, bar_writes;
	uint8_t cap[0x100];
};

static void fd_bar_read(struct pci_device *d, int bar, uint64_t off, void *data, unsigned int len)
{
	struct fake_dev *f = d->opaque;

	f->last_bar = bar;
	f->last_off = off;
	f->bar_reads++;
	memset(data, 0x10 + bar, len);
}

static void fd_bar_write(struct pci_device *d, int bar, uint64_t off, const void *data,
			 unsigned int len)
{
	struct fake_dev *f = d->opaque;

	f->last_bar = bar;
	f->last_off = off;
	f->bar_writes++;
}

static void fd_remap(struct pci_device *d, int bar, uint64_t o, uint64_t n)
{
	struct fake_dev *f = d->opaque;

	/* Counted always, kept while there is room (test_remove moves BARs 20000 times). */
	if (f->nr_remaps < (int)(sizeof(f->remaps) / sizeof(f->remaps[0])))
		f->remaps[f->nr_remaps] = (struct remap){bar, o, n};
	f->nr_remaps++;
}

static void fd_cfg_read(struct pci_device *d, uint32_t off, void *data, unsigned int len)
{
	struct fake_dev *f = d->opaque;

	memcpy(data, &f->cap[off - 0x40], len);
}

static void fd_cfg_write(struct pci_device *d, uint32_t off, const void *data, unsigned int len)
{
	struct fake_dev *f = d->opaque;

	memcpy(&f->cap[off - 0x40], data, len);
}

static const struct pci_device_ops fd_ops = {
	.cfg_read = fd_cfg_read,
	.cfg_write = fd_cfg_write,
	.bar_read = fd_bar_read,
	.bar_write = fd_bar_write,
	.bar_remap = fd_remap,
};

static int h_signal(void *h, uint64_t a, uint32_t d)
{
	(void)h;
	(void)a;
	(void)d;
	return 0;
}
static int h_add(void *h, int e, uint64_t a, uint32_t d, int *r)
{
	(void)h;
	(void)e;
	(void)a;
	(void)d;
	*r = 7;
	return 0;
}
static int h_upd(void *h, int r, uint64_t a, uint32_t d, bool m)
{
	(void)h;
	(void)r;
	(void)a;
	(void)d;
	(void)m;
	return 0;
}
static int h_del(void *h, int r, int e)
{
	(void)h;
	(void)r;
	(void)e;
	return 0;
}
static int h_ioev(void *h, uint64_t a, unsigned int l, int e, bool as)
{
	(void)h;
	(void)a;
	(void)l;
	(void)e;
	(void)as;
	return 0;
}

static const struct pci_host_ops host_ops = {h_signal, h_add, h_upd, h_del, h_ioev};

struct world {
	struct resources res;
	struct bus pio, mmio;
	struct pci_bus *pb;
	struct fake_dev dev;
	int resets;
	uint8_t reset_val;
};

static void on_reset(void *o, uint8_t v)
{
	struct world *w = o;

	w->resets++;
	w->reset_val = v;
}

static int setup(void **state)
{
	static struct world w;
	static int host_token;

	memset(&w, 0, sizeof(w));
	res_init(&w.res, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_LEN, PORT_PCI_IO, PORT_PCI_IO_LEN);
	bus_init(&w.pio, "pio");
	bus_init(&w.mmio, "mmio");
	w.pb = pci_bus_new(&w.pio, &w.mmio, &w.res, LAYOUT_PCI_ECAM, &host_ops, &host_token);
	assert_non_null(w.pb);
	pci_bus_set_reset_handler(w.pb, on_reset, &w);

	w.dev.pci.ops = &fd_ops;
	w.dev.pci.opaque = &w.dev;
	pci_cfg_set16(&w.dev.pci, 0x00, 0x1af4);
	pci_cfg_set16(&w.dev.pci, 0x02, 0x1042);
	pci_cfg_set32(&w.dev.pci, 0x08, 0x01800001);
	pci_cfg_set16(&w.dev.pci, 0x06, 0x0010);
	pci_cfg_set8(&w.dev.pci, 0x34, 0x40);
	w.dev.pci.bar_kind[0] = PCI_BAR_MEM32;
	w.dev.pci.bar_size[0] = 0x1000;
	w.dev.pci.bar_kind[1] = PCI_BAR_IO;
	w.dev.pci.bar_size[1] = 0x20;
	w.dev.pci.bar_kind[2] = PCI_BAR_MEM64;
	w.dev.pci.bar_size[2] = 0x4000;
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	pci_bus_free(w->pb);
	bus_destroy(&w->mmio);
	bus_destroy(&w->pio);
	return 0;
}

/* Config access the legacy way: address to 0xcf8, data at 0xcfc + (off & 3). */
static uint32_t cf8_read(struct world *w, unsigned int slot, uint32_t off, unsigned int len)
{
	uint32_t a = 0x80000000u | slot << 11 | (off & 0xfc), v = 0;

	bus_access(&w->pio, 0xcf8, &a, 4, true);
	bus_access(&w->pio, 0xcfc + (off & 3), &v, len, false);
	return v;
}

static void cf8_write(struct world *w, unsigned int slot, uint32_t off, uint32_t v,
		      unsigned int len)
{
	uint32_t a = 0x80000000u | slot << 11 | (off & 0xfc);

	bus_access(&w->pio, 0xcf8, &a, 4, true);
	bus_access(&w->pio, 0xcfc + (off & 3), &v, len, true);
}

static uint32_t ecam_read(struct world *w, unsigned int slot, uint32_t off, unsigned int len)
{
	uint32_t v = 0;

	bus_access(&w->mmio, LAYOUT_PCI_ECAM + (slot << 15) + off, &v, len, false);
	return v;
}

static void ecam_write(struct world *w, unsigned int slot, uint32_t off, uint32_t v,
		       unsigned int len)
{
	bus_access(&w->mmio, LAYOUT_PCI_ECAM + (slot << 15) + off, &v, len, true);
}

static void test_host_bridge_and_empty_slots(void **state)
{
	struct world *w = *state;
	uint32_t a;

	/* Linux's type-1 probe: byte write to 0xcfb, then 0xcf8 reads back. */
	bus_access(&w->pio, 0xcfb, &(uint8_t){1}, 1, true);
	a = 0x80000000u;
	bus_access(&w->pio, 0xcf8, &a, 4, true);
	a = 0;
	bus_access(&w->pio, 0xcf8, &a, 4, false);
	assert_int_equal(a, 0x80000000u);

	assert_int_equal(cf8_read(w, 0, 0, 2), 0x1b36);
	assert_int_equal(cf8_read(w, 0, 0x0a, 2), 0x0600); /* host bridge class */
	assert_int_equal(ecam_read(w, 0, 0, 4), 0x00081b36);
	assert_int_equal(cf8_read(w, 5, 0, 4), 0xffffffff);
	assert_int_equal(ecam_read(w, 5, 0, 4), 0xffffffff);
	/* Functions other than 0, and other buses, are absent. */
	assert_int_equal(ecam_read(w, 0, 0x1000, 4), 0xffffffff);
	a = 0x80010000u;
	bus_access(&w->pio, 0xcf8, &a, 4, true);
	a = 0;
	bus_access(&w->pio, 0xcfc, &a, 4, false);
	assert_int_equal(a, 0xffffffff);
	/* Config disabled (bit 31 clear). */
	a = 0;
	bus_access(&w->pio, 0xcf8, &a, 4, true);
	bus_access(&w->pio, 0xcfc, &a, 4, false);
	assert_int_equal(a, 0xffffffff);
	/* 0xcf9: the reset control register. */
	bus_access(&w->pio, 0xcf9, &(uint8_t){6}, 1, true);
	assert_int_equal(w->resets, 1);
	assert_int_equal(w->reset_val, 6);
}

static void test_add_places_bars(void **state)
{
	struct world *w = *state;
	struct pci_device *d = &w->dev.pci;
	void *host = NULL;
	uint8_t buf[4];

	assert_int_equal(pci_bus_add(w->pb, d), 0);
	assert_int_equal(d->slot, 1);
	assert_ptr_equal(pci_host_ops(d, &host), &host_ops);
	assert_non_null(host);
	/* BARs inside the windows, aligned, decoded. */
	assert_true(d->bar_addr[0] >= LAYOUT_PCI_MMIO &&
		    d->bar_addr[0] + 0x1000 <= LAYOUT_PCI_MMIO + LAYOUT_PCI_MMIO_LEN);
	assert_int_equal(d->bar_addr[0] % 0x1000, 0);
	assert_true(d->bar_addr[1] >= PORT_PCI_IO && d->bar_addr[1] % 0x20 == 0);
	assert_int_equal(d->bar_addr[2] % 0x4000, 0);
	assert_int_equal(cf8_read(w, 1, 0x04, 2) & 3, 3);
	assert_int_equal(cf8_read(w, 1, 0x10, 4), (uint32_t)d->bar_addr[0]);
	assert_int_equal(cf8_read(w, 1, 0x14, 4), (uint32_t)d->bar_addr[1] | 1);
	assert_int_equal(cf8_read(w, 1, 0x18, 4), (uint32_t)d->bar_addr[2] | 4);
	assert_int_equal(cf8_read(w, 1, 0x1c, 4), 0);
	assert_int_equal(cf8_read(w, 1, 0x20, 4), 0); /* unimplemented BAR */
	assert_int_equal(pci_bar_programmed(d, 2), d->bar_addr[2]);
	/* Guest accesses reach the device with BAR-relative offsets. */
	assert_true(bus_access(&w->mmio, d->bar_addr[0] + 0x10, buf, 4, false));
	assert_int_equal(w->dev.last_bar, 0);
	assert_int_equal(w->dev.last_off, 0x10);
	assert_int_equal(buf[0], 0x10);
	assert_true(bus_access(&w->pio, d->bar_addr[1] + 2, buf, 2, true));
	assert_int_equal(w->dev.last_bar, 1);
	assert_int_equal(w->dev.last_off, 2);
	assert_true(bus_access(&w->mmio, d->bar_addr[2] + 0x3ffc, buf, 4, false));
	assert_int_equal(w->dev.last_bar, 2);
	/* Past the end of a BAR: not the device's. */
	assert_false(bus_access(&w->mmio, d->bar_addr[0] + 0xffe, buf, 4, false));
	/* Registry knows the BARs. */
	assert_true(res_overlaps(&w->res, RES_MMIO, d->bar_addr[0], 1));
}

/* Hot-unplug: the device stops decoding, its slot reads empty and can be taken again. */
static void test_remove(void **state)
{
	struct world *w = *state;
	struct pci_device *d = &w->dev.pci;
	uint64_t bar0, bar1, bar2;
	unsigned int ranges;
	uint8_t buf[4];
	int i;

	ranges = w->res.nr_ranges;
	pci_bus_pin_next(w->pb, 5);
	assert_int_equal(pci_bus_add(w->pb, d), 0);
	pci_bus_pin_next(w->pb, -1);
	bar0 = d->bar_addr[0];
	bar1 = d->bar_addr[1];
	bar2 = d->bar_addr[2];
	pci_bus_remove(w->pb, d);
	assert_ptr_equal(d->bus, w->pb); /* the teardown's host services */
	assert_int_equal(d->bar_addr[0], 0);
	assert_false(bus_access(&w->mmio, bar0, buf, 4, false));
	assert_false(bus_access(&w->pio, bar1, buf, 2, false));
	assert_false(bus_access(&w->mmio, bar2, buf, 4, false));
	assert_int_equal(cf8_read(w, 5, 0x00, 4), 0xffffffffu);
	assert_int_equal(ecam_read(w, 5, 0x00, 4), 0xffffffffu);
	/* A second removal, and one of a device not on the bus, change nothing. */
	pci_bus_remove(w->pb, d);
	/* Its BARs' window space is given back. */
	assert_int_equal(w->res.nr_ranges, ranges);
	assert_false(res_overlaps(&w->res, RES_MMIO, bar0, 1));
	/* The slot is free: pinned there again, the device gets new BARs (above the old
	 * ones while the window has room there: a boot's layout never depends on frees). */
	pci_bus_pin_next(w->pb, 5);
	assert_int_equal(pci_bus_add(w->pb, d), 0);
	pci_bus_pin_next(w->pb, -1);
	assert_int_equal(d->slot, 5);
	assert_int_equal(cf8_read(w, 5, 0x00, 2), 0x1af4);
	assert_true(d->bar_addr[0] && d->bar_addr[0] != bar0);
	assert_true(bus_access(&w->mmio, d->bar_addr[0], buf, 4, false));
	/* Taken off and put back far more often than the windows hold its BARs: the
	 * space given back is used again once the top of a window is reached. */
	for (i = 0; i < 20000; i++) {
		pci_bus_remove(w->pb, d);
		assert_int_equal(pci_bus_add(w->pb, d), 0);
	}
	assert_true(bus_access(&w->mmio, d->bar_addr[0], buf, 4, false));
	assert_true(bus_access(&w->pio, d->bar_addr[1] + 2, buf, 2, true));
	assert_int_equal(w->res.nr_ranges, ranges + 2 + (d->bar_kind[2] != PCI_BAR_NONE));
}

static void test_bar_sizing(void **state)
{
	struct world *w = *state;
	struct pci_device *d = &w->dev.pci;
	uint64_t bar0, bar1, bar2;

	assert_int_equal(pci_bus_add(w->pb, d), 0);
	bar0 = d->bar_addr[0];
	bar1 = d->bar_addr[1];
	bar2 = d->bar_addr[2];
	/* Linux: decoding off, write all-ones, read the mask, restore, decoding on. */
	ecam_write(w, 1, 0x04, 0, 2);
	assert_int_equal(d->bar_addr[0], 0);
	assert_int_equal(d->bar_addr[1], 0);
	ecam_write(w, 1, 0x10, 0xffffffff, 4);
	assert_int_equal(ecam_read(w, 1, 0x10, 4), 0xfffff000);
	ecam_write(w, 1, 0x14, 0xffffffff, 4);
	assert_int_equal(ecam_read(w, 1, 0x14, 4), 0x0000ffe1);
	ecam_write(w, 1, 0x18, 0xffffffff, 4);
	ecam_write(w, 1, 0x1c, 0xffffffff, 4);
	assert_int_equal(ecam_read(w, 1, 0x18, 4), 0xffffc004);
	assert_int_equal(ecam_read(w, 1, 0x1c, 4), 0xffffffff);
	ecam_write(w, 1, 0x20, 0xffffffff, 4);
	assert_int_equal(ecam_read(w, 1, 0x20, 4), 0); /* unimplemented */
	ecam_write(w, 1, 0x30, 0xfffff800, 4);
	assert_int_equal(ecam_read(w, 1, 0x30, 4), 0); /* no ROM */
	/* No decoding happened at the all-ones addresses. */
	assert_int_equal(d->bar_addr[0], 0);
	ecam_write(w, 1, 0x10, (uint32_t)bar0, 4);
	ecam_write(w, 1, 0x14, (uint32_t)bar1, 4);
	ecam_write(w, 1, 0x18, (uint32_t)bar2, 4);
	ecam_write(w, 1, 0x1c, 0, 4);
	ecam_write(w, 1, 0x04, 0x0007, 2);
	assert_int_equal(d->bar_addr[0], bar0);
	assert_int_equal(d->bar_addr[1], bar1);
	assert_int_equal(d->bar_addr[2], bar2);
	assert_int_equal(cf8_read(w, 1, 0x04, 2), 0x0007);
}

static void test_command_and_moves(void **state)
{
	struct world *w = *state;
	struct pci_device *d = &w->dev.pci;
	uint64_t bar0;
	uint8_t buf[4];
	int n0;

	assert_int_equal(pci_bus_add(w->pb, d), 0);
	bar0 = d->bar_addr[0];
	n0 = w->dev.nr_remaps; /* the initial placement reported each BAR */
	assert_int_equal(n0, 3);
	assert_int_equal(w->dev.remaps[0].old_addr, 0);
	assert_int_equal(w->dev.remaps[0].new_addr, bar0);

	/* Memory decoding off: MMIO BARs unrouted and reported, the I/O BAR stays. */
	cf8_write(w, 1, 0x04, 0x0001, 2);
	assert_int_equal(w->dev.nr_remaps, n0 + 2);
	assert_int_equal(w->dev.remaps[n0].bar, 0);
	assert_int_equal(w->dev.remaps[n0].old_addr, bar0);
	assert_int_equal(w->dev.remaps[n0].new_addr, 0);
	assert_false(bus_access(&w->mmio, bar0, buf, 4, false));
	assert_int_not_equal(d->bar_addr[1], 0);

	/* Move BAR0 while decoding is off, then turn decoding on. */
	cf8_write(w, 1, 0x10, 0xd0000000, 4);
	assert_int_equal(w->dev.nr_remaps, n0 + 2);
	cf8_write(w, 1, 0x04, 0x0003, 2);
	assert_int_equal(d->bar_addr[0], 0xd0000000);
	assert_true(bus_access(&w->mmio, 0xd0000000, buf, 4, false));
	assert_false(bus_access(&w->mmio, bar0, buf, 4, false));

	/* Move while decoding: one remap from old to new. */
	n0 = w->dev.nr_remaps;
	cf8_write(w, 1, 0x10, 0xd0100000, 4);
	assert_int_equal(w->dev.nr_remaps, n0 + 1);
	assert_int_equal(w->dev.remaps[n0].old_addr, 0xd0000000);
	assert_int_equal(w->dev.remaps[n0].new_addr, 0xd0100000);

	/* A BAR moved onto the ECAM window is not decoded (it would conflict). */
	cf8_write(w, 1, 0x10, (uint32_t)LAYOUT_PCI_ECAM, 4);
	assert_int_equal(d->bar_addr[0], 0);
	assert_int_equal(ecam_read(w, 0, 0, 2), 0x1b36);

	/* Read-only header fields stay put. */
	cf8_write(w, 1, 0x00, 0xdeadbeef, 4);
	assert_int_equal(cf8_read(w, 1, 0x00, 4), 0x10421af4);
	cf8_write(w, 1, 0x3c, 0x0b, 1);
	assert_int_equal(cf8_read(w, 1, 0x3c, 1), 0x0b);
}

static void test_device_config(void **state)
{
	struct world *w = *state;
	struct pci_device *d = &w->dev.pci;

	assert_int_equal(pci_bus_add(w->pb, d), 0);
	/* Capabilities (>= 0x40) go to the device. */
	ecam_write(w, 1, 0x40, 0x12345678, 4);
	assert_int_equal(w->dev.cap[0], 0x78);
	assert_int_equal(ecam_read(w, 1, 0x40, 4), 0x12345678);
	assert_int_equal(cf8_read(w, 1, 0x42, 2), 0x1234);
	/* Extended config space is reachable through ECAM only. */
	ecam_write(w, 1, 0x100, 0xaa, 1);
	assert_int_equal(w->dev.cap[0xc0], 0xaa);
	/* Misaligned and odd-sized accesses read all-ones and write nothing. */
	assert_int_equal(ecam_read(w, 1, 0x41, 2), 0xffff);
	ecam_write(w, 1, 0x41, 0, 2);
	assert_int_equal(w->dev.cap[1], 0x56);
	assert_int_equal(ecam_read(w, 1, 0x40, 3), 0xffffff);
	/* A device without config callbacks reads its cfg image, ignores writes. */
	w->dev.pci.ops = NULL;
	d->cfg[0x50] = 0x99;
	assert_int_equal(ecam_read(w, 1, 0x50, 1), 0x99);
	ecam_write(w, 1, 0x50, 0x11, 1);
	assert_int_equal(d->cfg[0x50], 0x99);
	w->dev.pci.ops = &fd_ops;
}

static void test_add_errors(void **state)
{
	struct world *w = *state;
	static struct pci_device many[PCI_MAX_DEVICES];
	struct pci_device bad = {0};
	int i, added = 0;

	bad.bar_kind[0] = PCI_BAR_MEM32;
	bad.bar_size[0] = 0x1800; /* not a power of two */
	assert_int_equal(pci_bus_add(w->pb, &bad), -EINVAL);
	bad.bar_size[0] = 0x1000;
	bad.bar_kind[5] = PCI_BAR_MEM64; /* no room for the upper half */
	bad.bar_size[5] = 0x1000;
	assert_int_equal(pci_bus_add(w->pb, &bad), -EINVAL);
	bad.bar_kind[5] = PCI_BAR_NONE;
	bad.bar_kind[1] = PCI_BAR_MEM32;
	bad.bar_size[1] = 1ULL << 30; /* larger than the window */
	assert_int_equal(pci_bus_add(w->pb, &bad), -ENOSPC);

	memset(many, 0, sizeof(many));
	for (i = 0; i < PCI_MAX_DEVICES; i++) {
		many[i].bar_kind[0] = PCI_BAR_MEM32;
		many[i].bar_size[0] = 0x1000;
		if (pci_bus_add(w->pb, &many[i]) == 0)
			added++;
	}
	/* Slot 0 is the host bridge. */
	assert_int_equal(added, PCI_MAX_DEVICES - 1);
}

/*
 * A pinned slot (the configured addr=): taken once, refused when taken, then back
 * to the next free one.
 */
static void test_pinned_slot(void **state)
{
	struct world *w = *state;
	static struct pci_device d[4];
	int i;

	memset(d, 0, sizeof(d));
	for (i = 0; i < 4; i++) {
		d[i].bar_kind[0] = PCI_BAR_MEM32;
		d[i].bar_size[0] = 0x1000;
	}
	pci_bus_pin_next(w->pb, 9);
	assert_int_equal(pci_bus_add(w->pb, &d[0]), 0);
	assert_int_equal(d[0].slot, 9);
	assert_int_equal(pci_bus_add(w->pb, &d[1]), -EEXIST); /* still pinned to 9: taken */
	pci_bus_pin_next(w->pb, 0);
	assert_int_equal(pci_bus_add(w->pb, &d[1]), -EEXIST); /* the host bridge */
	pci_bus_pin_next(w->pb, -1);
	assert_int_equal(pci_bus_add(w->pb, &d[1]), 0);
	assert_int_equal(d[1].slot, 1);
	pci_bus_pin_next(w->pb, 2);
	assert_int_equal(pci_bus_add(w->pb, &d[2]), 0);
	assert_int_equal(d[2].slot, 2);
	pci_bus_pin_next(w->pb, -1);
	assert_int_equal(pci_bus_add(w->pb, &d[3]), 0);
	assert_int_equal(d[3].slot, 3);
	/* The guest finds the device in slot 9 (its zeroed header), slot 4 empty. */
	assert_int_equal(ecam_read(w, 9, 0, 4), 0);
	assert_int_equal(ecam_read(w, 4, 0, 4), 0xffffffff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge_and_empty_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_places_bars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_and_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_slot, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
