// SPDX-License-Identifier: MIT
#include "fake_bus.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int fake_msi_signal(void *host, uint64_t addr, uint32_t data)
{
	struct fake_host *h = host;

	h->msi_signals++;
	h->last_msi_addr = addr;
	h->last_msi_data = data;
	return 0;
}

static int fake_route_add(void *host, int efd, uint64_t addr, uint32_t data, int *route)
{
	struct fake_host *h = host;

	if (h->fail_route_add)
		return h->fail_route_add;
	if (h->nr_routes >= FAKE_MAX)
		return -ENOSPC;
	h->route[h->nr_routes] = (struct fake_route){ .efd = efd, .addr = addr, .data = data,
						      .live = true };
	*route = (int)h->nr_routes++;
	h->routes_added++;
	return 0;
}

static int fake_route_update(void *host, int route, uint64_t addr, uint32_t data, bool masked)
{
	struct fake_host *h = host;

	if (route < 0 || (unsigned int)route >= h->nr_routes || !h->route[route].live)
		return -EINVAL;
	h->route[route].addr = addr;
	h->route[route].data = data;
	h->route[route].masked = masked;
	h->route_updates++;
	return 0;
}

static int fake_route_del(void *host, int route, int efd)
{
	struct fake_host *h = host;

	if (route < 0 || (unsigned int)route >= h->nr_routes || h->route[route].efd != efd)
		return -EINVAL;
	h->route[route].live = false;
	h->route_dels++;
	return 0;
}

static int fake_ioeventfd(void *host, uint64_t addr, unsigned int len, int efd, bool assign)
{
	struct fake_host *h = host;
	unsigned int i;

	for (i = 0; i < h->nr_ioevt; i++) {
		if (h->ioevt[i].addr == addr) {
			if (assign)
				return -EEXIST;
			if (h->ioevt[i].efd != efd)
				return -EINVAL;
			h->ioevt[i] = h->ioevt[--h->nr_ioevt];
			h->ioevt_deassigns++;
			return 0;
		}
	}
	if (!assign)
		return -ENOENT;
	if (h->nr_ioevt >= FAKE_MAX)
		return -ENOSPC;
	h->ioevt[h->nr_ioevt++] = (struct fake_ioevt){ .addr = addr, .len = len, .efd = efd };
	h->ioevt_assigns++;
	return 0;
}

static const struct pci_host_ops fake_host_ops = {
	.msi_signal = fake_msi_signal,
	.msi_route_add = fake_route_add,
	.msi_route_update = fake_route_update,
	.msi_route_del = fake_route_del,
	.ioeventfd = fake_ioeventfd,
};

void fake_bus_init(struct pci_bus *bus)
{
	memset(bus, 0, sizeof(*bus));
}

const struct pci_host_ops *pci_host_ops(const struct pci_device *dev, void **host)
{
	*host = &dev->bus->host;
	return &fake_host_ops;
}

int pci_bus_add(struct pci_bus *bus, struct pci_device *dev)
{
	if (bus->fail_add)
		return bus->fail_add;
	if (bus->nr >= PCI_MAX_DEVICES)
		return -ENOSPC;
	dev->slot = bus->nr;
	dev->bus = bus;
	if (dev->bar_kind[0] != PCI_BAR_NONE)
		dev->bar_addr[0] = FAKE_BAR0_BASE + 0x10000ull * dev->slot;
	if (dev->bar_kind[2] != PCI_BAR_NONE)
		dev->bar_addr[2] = FAKE_BAR2_BASE + 0x1000ull * dev->slot;
	bus->dev[bus->nr++] = dev;
	return 0;
}

uint64_t fake_route_count(struct pci_bus *bus, unsigned int r)
{
	uint64_t v = 0;

	if (r >= bus->host.nr_routes || read(bus->host.route[r].efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

int fake_ioevt_fd(struct pci_bus *bus, uint64_t addr)
{
	unsigned int i;

	for (i = 0; i < bus->host.nr_ioevt; i++)
		if (bus->host.ioevt[i].addr == addr)
			return bus->host.ioevt[i].efd;
	return -1;
}

uint32_t cfg_rd(struct pci_device *d, uint32_t off, unsigned int len)
{
	uint32_t v = 0;

	if (off < 0x40)
		memcpy(&v, d->cfg + off, len);
	else
		d->ops->cfg_read(d, off, &v, len);
	return v;
}

void cfg_wr(struct pci_device *d, uint32_t off, uint32_t v, unsigned int len)
{
	if (off >= 0x40)
		d->ops->cfg_write(d, off, &v, len);
}

uint64_t bar_rd(struct pci_device *d, int bar, uint64_t off, unsigned int len)
{
	uint64_t v = 0;

	d->ops->bar_read(d, bar, off, &v, len);
	return v;
}

void bar_wr(struct pci_device *d, int bar, uint64_t off, uint64_t v, unsigned int len)
{
	d->ops->bar_write(d, bar, off, &v, len);
}
