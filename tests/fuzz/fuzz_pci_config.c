// SPDX-License-Identifier: MIT
/*
 * PCI config space through both access paths (0xcf8/0xcfc ports and ECAM) with
 * a device that has every BAR kind, checking that BAR routing never overlaps
 * (bus_register refuses overlaps, so a broken invariant shows as a leaked or
 * stale route; we check bar_addr against the programmed BAR).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "bus.h"
#include "resources.h"
#include "hw/pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_ok(void)
{
	return 0;
}

static int h_signal(void *h, uint64_t a, uint32_t d)
{
	(void)h;
	(void)a;
	(void)d;
	return fake_ok();
}
static int h_add(void *h, int e, uint64_t a, uint32_t d, int *r)
{
	(void)h;
	(void)e;
	(void)a;
	(void)d;
	*r = 0;
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

static const struct pci_host_ops host = {h_signal, h_add, h_upd, h_del, h_ioev};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pci_device dev;
	struct resources res;
	struct bus pio, mmio;
	struct pci_bus *pb;
	size_t i;

	res_init(&res, 0xc0000000, 0x20000000, 0xc000, 0x4000);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	pb = pci_bus_new(&pio, &mmio, &res, 0xe0000000, &host, NULL);
	if (!pb)
		return 0;
	memset(&dev, 0, sizeof(dev));
	pci_cfg_set16(&dev, 0, 0x1af4);
	pci_cfg_set16(&dev, 2, 0x1041);
	dev.bar_kind[0] = PCI_BAR_MEM32;
	dev.bar_size[0] = 0x1000;
	dev.bar_kind[1] = PCI_BAR_IO;
	dev.bar_size[1] = 0x20;
	dev.bar_kind[2] = PCI_BAR_MEM64;
	dev.bar_size[2] = 0x4000;
	pci_bus_add(pb, &dev);

	/* Records: op(1) addr(2) value(4): op bit 0 write, bit 1 ECAM, bits 2-3 size. */
	for (i = 0; i + 7 <= size; i += 7) {
		uint8_t op = data[i];
		uint32_t addr = (uint32_t)(data[i + 1] | data[i + 2] << 8), val;
		unsigned int len = 1u << ((op >> 2) & 3);
		uint8_t buf[8];

		if (len > 4)
			len = 4;
		memcpy(&val, &data[i + 3], 4);
		memcpy(buf, &val, 4);
		if (op & 2) {
			/* ECAM: slots 0..3 only, to stay on interesting devices. */
			uint64_t a =
				0xe0000000ULL + ((addr & 0x3fff) | ((uint32_t)(op >> 4) & 3) << 15);

			bus_access(&mmio, a, buf, len, op & 1);
		} else if (op & 0x10) {
			uint32_t cf8 = 0x80000000u | ((op >> 5) & 1) << 11 | (addr & 0xfc);

			bus_access(&pio, 0xcf8, &cf8, 4, true);
			bus_access(&pio, 0xcfc + (addr & 3), buf, len, op & 1);
		} else {
			bus_access(&pio, 0xcf8 + (addr & 7), buf, len, op & 1);
		}
		for (int b = 0; b < 3; b++) {
			if (dev.bar_addr[b] && dev.bar_addr[b] != pci_bar_programmed(&dev, b))
				__builtin_trap();
		}
	}
	pci_bus_free(pb);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	return 0;
}
