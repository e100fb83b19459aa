// SPDX-License-Identifier: MIT
/*
 * The virtio-pci transport's registers: the input is a sequence of guest accesses
 * (12 bytes each: kind, bar, length, pad, le32 offset, le32 value) to the common
 * config, ISR, device config, doorbells, MSI-X table/PBA and config space of a
 * virtio-rng device on a fake bus. Rings the accesses configure point into a
 * guest memory that holds the input too, so DRIVER_OK runs the device on them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "fake_bus.h"
#include "virtio-pci.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned int lens[4] = { 1, 2, 4, 8 };
	struct fz *f = fz_load(data, size);
	struct virtio_pci *vp;
	struct pci_device *d;
	struct pci_bus bus;
	size_t i;

	fake_bus_init(&bus);
	if (virtio_rng_create(&bus, &f->gm, NULL, &vp))
		abort();
	d = bus.dev[0];
	for (i = 0; i + 12 <= size && i < 12 * 256; i += 12) {
		const uint8_t *op = data + i;
		unsigned int len = lens[op[2] & 3];
		uint32_t off, val;
		uint64_t v = 0;

		memcpy(&off, op + 4, 4);
		memcpy(&val, op + 8, 4);
		v = val;
		switch (op[0] & 3) {
		case 0:
			d->ops->bar_read(d, op[1] & 3 ? VPCI_BAR_MSIX : VPCI_BAR_CFG,
					 off % VPCI_BAR0_SIZE, &v, len);
			break;
		case 1:
			d->ops->bar_write(d, op[1] & 3 ? VPCI_BAR_MSIX : VPCI_BAR_CFG,
					  off % VPCI_BAR0_SIZE, &v, len);
			break;
		case 2:
			if (len == 8)
				len = 4;
			off = 0x40 + off % (PCI_CFG_SIZE - 0x40);
			if (off + len <= PCI_CFG_SIZE)
				d->ops->cfg_read(d, off, &v, len);
			break;
		case 3:
			if (len == 8)
				len = 4;
			off = 0x40 + off % (PCI_CFG_SIZE - 0x40);
			if (off + len <= PCI_CFG_SIZE)
				d->ops->cfg_write(d, off, &v, len);
			break;
		}
	}
	virtio_pci_free(vp);
	return 0;
}
