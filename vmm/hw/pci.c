// SPDX-License-Identifier: MIT
/*
 * PCI bus 0: the host bridge, config space through 0xcf8/0xcfc and ECAM, the
 * standard type-0 header (command register, BARs with the sizing protocol) and
 * BAR routing on the VMM's pio/mmio buses.
 *
 * BAR decode state machine, per BAR:
 *   programmed address A (from config space), decode enable E (command register)
 *   routed at A  <=> E && A != 0 && A fits && no other range claims A
 *   every change of (A, E) goes through pci_bar_update(), which (un)routes the
 *   BAR and calls ops->bar_remap(old, new) so devices move their ioeventfds.
 * The guest sizes a BAR by writing all-ones with decoding disabled; the value
 * it reads back is ~(size - 1) plus the type bits, because a BAR register keeps
 * only the address bits the size allows.
 *
 * Locking: bus->lock serialises config space accesses (and so BAR moves); BAR
 * data accesses go straight to the device without it.
 */
#include "pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "resources.h"
#include "util.h"

#define PCIR_VENDOR_ID	 0x00
#define PCIR_DEVICE_ID	 0x02
#define PCIR_COMMAND	 0x04
#define PCIR_CLASS_REV	 0x08
#define PCIR_CACHE_LINE	 0x0c
#define PCIR_LATENCY	 0x0d
#define PCIR_HEADER_TYPE 0x0e
#define PCIR_BAR0	 0x10
#define PCIR_BAR_END	 0x28
#define PCIR_ROM	 0x30
#define PCIR_INT_LINE	 0x3c
#define PCIR_HDR_END	 0x40

#define CMD_IO	     0x0001
#define CMD_MEMORY   0x0002
#define CMD_WRITABLE 0x0547 /* IO, MEM, MASTER, PARITY, SERR, INTX_DISABLE */

#define BAR_IO_FLAG    0x1
#define BAR_MEM64_FLAG 0x4

/* The host bridge's identity: a generic PCIe host bridge (class 06:00:00). */
#define HOST_BRIDGE_VENDOR 0x1b36
#define HOST_BRIDGE_DEVICE 0x0008
/* Firmware boot: QEMU's Q35 chipset as OVMF recognises it (Q35MchIch9.h). */
#define INTEL_VENDOR	   0x8086
#define Q35_MCH_DEVICE	   0x29c0
#define ICH9_LPC_DEVICE	   0x2918
#define ICH9_LPC_SLOT	   31
#define ICH9_PMBASE	   0x40
#define PCI_CHIPSET_REGS   0x40 /* chipset registers: 0x40..0xff read back as written */
#define ECAM_LEN_BUS0	   (1ULL << 20)
#define ECAM_LEN_256	   (256ULL << 20)

struct pci_bar_ref {
	struct pci_device *dev;
	int bar;
};

struct pci_bus {
	pthread_mutex_t lock;
	struct bus *pio, *mmio;
	struct resources *res;
	const struct pci_host_ops *host_ops;
	void *host;
	uint32_t cf8; /* CONFIG_ADDRESS */
	uint64_t ecam_base;
	struct pci_device *dev[PCI_MAX_DEVICES];
	struct pci_bar_ref bar_ref[PCI_MAX_DEVICES][PCI_NUM_BARS];
	struct pci_device host_bridge;
	struct pci_device lpc;   /* Q35 only: the ICH9 LPC bridge at 00:1f.0 */
	uint64_t ecam_len;
	void (*reset_cb)(void *opaque, uint8_t val);
	void *reset_opaque;
	int pinned; /* the slot of the next pci_bus_add, or -1: the next free one */
};

static uint32_t cfg_get32(const struct pci_device *d, uint32_t off)
{
	return (uint32_t)d->cfg[off] | (uint32_t)d->cfg[off + 1] << 8 |
	       (uint32_t)d->cfg[off + 2] << 16 | (uint32_t)d->cfg[off + 3] << 24;
}

static uint16_t cfg_get16(const struct pci_device *d, uint32_t off)
{
	return (uint16_t)(d->cfg[off] | d->cfg[off + 1] << 8);
}

const struct pci_host_ops *pci_host_ops(const struct pci_device *dev, void **host)
{
	*host = dev->bus->host;
	return dev->bus->host_ops;
}

uint64_t pci_bar_programmed(const struct pci_device *dev, int bar)
{
	uint32_t lo = cfg_get32(dev, PCIR_BAR0 + 4 * (uint32_t)bar);

	switch (dev->bar_kind[bar]) {
	case PCI_BAR_IO:
		return lo & ~3u;
	case PCI_BAR_MEM32:
		return lo & ~0xfu;
	case PCI_BAR_MEM64:
		return (uint64_t)cfg_get32(dev, PCIR_BAR0 + 4 * (uint32_t)bar + 4) << 32 |
		       (lo & ~0xfu);
	default:
		return 0;
	}
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pci_bar_ref *ref = opaque;

	if (ref->dev->ops && ref->dev->ops->bar_read)
		ref->dev->ops->bar_read(ref->dev, ref->bar, off, data, len);
	else
		memset(data, 0xff, len);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pci_bar_ref *ref = opaque;

	if (ref->dev->ops && ref->dev->ops->bar_write)
		ref->dev->ops->bar_write(ref->dev, ref->bar, off, data, len);
}

static const struct bus_dev_ops pci_bar_ops = {
	.read = bar_read,
	.write = bar_write,
};

/* Bring BAR bar's routing in line with config space. Bus lock held. */
static void pci_bar_update(struct pci_bus *pb, struct pci_device *d, int bar)
{
	enum pci_bar_kind kind = d->bar_kind[bar];
	uint16_t cmd = cfg_get16(d, PCIR_COMMAND);
	uint64_t addr = pci_bar_programmed(d, bar), old = d->bar_addr[bar], end;
	struct pci_bar_ref *ref = &pb->bar_ref[d->slot][bar];
	struct bus *target = kind == PCI_BAR_IO ? pb->pio : pb->mmio;
	int enabled = kind == PCI_BAR_IO ? !!(cmd & CMD_IO) : !!(cmd & CMD_MEMORY);

	if (!enabled || !addr || add_overflow(addr, d->bar_size[bar], &end) ||
	    (kind == PCI_BAR_IO && end > 0x10000))
		addr = 0;
	if (addr == old)
		return;
	if (old)
		bus_unregister(target, old, ref);
	if (addr && bus_register(target, addr, d->bar_size[bar], &pci_bar_ops, ref)) {
		/* Overlaps another device: real hardware would conflict; we just don't decode. */
		log_debug("pci 00:%02x.0: BAR%d at 0x%llx overlaps another range, not decoded",
			  d->slot, bar, (unsigned long long)addr);
		addr = 0;
	}
	d->bar_addr[bar] = addr;
	if (d->ops && d->ops->bar_remap && old != addr)
		d->ops->bar_remap(d, bar, old, addr);
}

static void pci_update_all_bars(struct pci_bus *pb, struct pci_device *d)
{
	int i;

	for (i = 0; i < PCI_NUM_BARS; i++) {
		if (d->bar_kind[i] != PCI_BAR_NONE)
			pci_bar_update(pb, d, i);
	}
}

/* A dword written to BAR register index idx: keep only what the BAR's size allows. */
static void pci_bar_write(struct pci_bus *pb, struct pci_device *d, int idx, uint32_t val)
{
	uint32_t off = PCIR_BAR0 + 4 * (uint32_t)idx, v;
	int bar = idx;
	uint64_t mask;

	if (d->bar_kind[idx] == PCI_BAR_NONE) {
		if (idx == 0 || d->bar_kind[idx - 1] != PCI_BAR_MEM64)
			return; /* unimplemented BAR: reads as 0 */
		bar = idx - 1;	/* upper half of a 64-bit BAR */
	}
	mask = ~(d->bar_size[bar] - 1);
	switch (d->bar_kind[bar]) {
	case PCI_BAR_IO:
		v = ((val & 0xffff) & (uint32_t)mask & ~3u) | BAR_IO_FLAG;
		break;
	case PCI_BAR_MEM32:
		v = val & (uint32_t)mask & ~0xfu;
		break;
	default: /* PCI_BAR_MEM64 */
		if (bar == idx)
			v = (val & (uint32_t)mask & ~0xfu) | BAR_MEM64_FLAG;
		else
			v = val & (uint32_t)(mask >> 32);
		break;
	}
	pci_cfg_set32(d, off, v);
	pci_bar_update(pb, d, bar);
}

/* Header writes (offset < 0x40), one naturally aligned access. Bus lock held. */
static void pci_header_write(struct pci_bus *pb, struct pci_device *d, uint32_t off, uint32_t val,
			     unsigned int len)
{
	uint32_t reg = off & ~3u, shift = 8 * (off & 3), lanes, dword;

	lanes = len == 4 ? 0xffffffffu : ((1u << (8 * len)) - 1) << shift;
	dword = (cfg_get32(d, reg) & ~lanes) | ((val << shift) & lanes);

	if (reg >= PCIR_BAR0 && reg < PCIR_BAR_END) {
		pci_bar_write(pb, d, (int)((reg - PCIR_BAR0) / 4), dword);
		return;
	}
	switch (reg) {
	case PCIR_COMMAND: {
		/* Command is the low half; the status half is read-only here. */
		uint16_t cmd = (uint16_t)(dword & CMD_WRITABLE);

		if (lanes & 0xffff) {
			pci_cfg_set16(d, PCIR_COMMAND, cmd);
			pci_update_all_bars(pb, d);
		}
		break;
	}
	case PCIR_CACHE_LINE:
		if (lanes & 0xff)
			d->cfg[PCIR_CACHE_LINE] = (uint8_t)dword;
		if (lanes & 0xff00)
			d->cfg[PCIR_LATENCY] = (uint8_t)(dword >> 8);
		break;
	case PCIR_INT_LINE:
		if (lanes & 0xff)
			d->cfg[PCIR_INT_LINE] = (uint8_t)dword;
		break;
	default:
		break; /* read-only (IDs, class, header type, ROM: none) */
	}
}

void pci_cfg_access(struct pci_bus *pb, unsigned int slot, uint32_t off, void *data,
		    unsigned int len, bool write)
{
	struct pci_device *d;
	uint32_t val = 0;

	if (slot >= PCI_MAX_DEVICES || (len != 1 && len != 2 && len != 4) || off % len ||
	    off >= PCI_CFG_SIZE) {
		if (!write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&pb->lock);
	d = pb->dev[slot];
	if (!d) {
		if (!write)
			memset(data, 0xff, len);
		goto out_unlock;
	}
	if (write) {
		memcpy(&val, data, len); /* little-endian host */
		if (off < PCIR_HDR_END)
			pci_header_write(pb, d, off, val, len);
		else if (d->ops && d->ops->cfg_write)
			d->ops->cfg_write(d, off, data, len);
	} else {
		if (off < PCIR_HDR_END || !d->ops || !d->ops->cfg_read)
			memcpy(data, &d->cfg[off], len);
		else
			d->ops->cfg_read(d, off, data, len);
	}
out_unlock:
	pthread_mutex_unlock(&pb->lock);
}

/* 0xcf8..0xcff: CONFIG_ADDRESS (dword at 0xcf8), reset control (byte at 0xcf9), CONFIG_DATA. */
static void conf_port_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pci_bus *pb = opaque;
	uint32_t a;

	if (off >= 4) {
		pthread_mutex_lock(&pb->lock);
		a = pb->cf8;
		pthread_mutex_unlock(&pb->lock);
		/* Enabled, bus 0, function 0 only. */
		if ((a & 0x80000000u) && !(a & 0x00ff0700u))
			pci_cfg_access(pb, (a >> 11) & 0x1f, (a & 0xfc) + (uint32_t)(off - 4), data,
				       len, false);
		else
			memset(data, 0xff, len);
		return;
	}
	if (off == 0 && len == 4) {
		pthread_mutex_lock(&pb->lock);
		a = pb->cf8;
		pthread_mutex_unlock(&pb->lock);
		memcpy(data, &a, 4);
	} else if (off == 1 && len == 1) {
		*(uint8_t *)data = 0; /* reset control */
	} else {
		memset(data, 0xff, len);
	}
}

static void conf_port_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pci_bus *pb = opaque;
	uint32_t a;

	if (off >= 4) {
		pthread_mutex_lock(&pb->lock);
		a = pb->cf8;
		pthread_mutex_unlock(&pb->lock);
		if ((a & 0x80000000u) && !(a & 0x00ff0700u))
			pci_cfg_access(pb, (a >> 11) & 0x1f, (a & 0xfc) + (uint32_t)(off - 4),
				       (void *)data, len, true);
		return;
	}
	if (off == 0 && len == 4) {
		memcpy(&a, data, 4);
		pthread_mutex_lock(&pb->lock);
		pb->cf8 = a & 0x80fffffcu;
		pthread_mutex_unlock(&pb->lock);
	} else if (off == 1 && len == 1 && pb->reset_cb) {
		pb->reset_cb(pb->reset_opaque, *(const uint8_t *)data);
	}
}

static const struct bus_dev_ops pci_conf_port_ops = {
	.read = conf_port_read,
	.write = conf_port_write,
};

/* ECAM: offset = bus << 20 | device << 15 | function << 12 | register; bus 0 only. */
static void ecam_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	if ((off >> 12) & 7 || off >> 20)
		memset(data, 0xff, len);
	else
		pci_cfg_access(opaque, (unsigned int)(off >> 15) & 0x1f, (uint32_t)(off & 0xfff),
			       data, len, false);
}

static void ecam_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	if (!((off >> 12) & 7) && !(off >> 20))
		pci_cfg_access(opaque, (unsigned int)(off >> 15) & 0x1f, (uint32_t)(off & 0xfff),
			       (void *)data, len, true);
}

static const struct bus_dev_ops pci_ecam_ops = {
	.read = ecam_read,
	.write = ecam_write,
};

static int pci_check_bars(const struct pci_device *d)
{
	int i;

	for (i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t sz = d->bar_size[i];

		switch (d->bar_kind[i]) {
		case PCI_BAR_NONE:
			break;
		case PCI_BAR_IO:
			if (!is_pow2(sz) || sz < 4 || sz > 256)
				return -EINVAL;
			break;
		case PCI_BAR_MEM32:
			if (!is_pow2(sz) || sz < 16 || sz > (1ULL << 31))
				return -EINVAL;
			break;
		case PCI_BAR_MEM64:
			if (!is_pow2(sz) || sz < 16 || i == PCI_NUM_BARS - 1 ||
			    d->bar_kind[i + 1] != PCI_BAR_NONE)
				return -EINVAL;
			i++;
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

void pci_bus_pin_next(struct pci_bus *pb, int slot)
{
	pthread_mutex_lock(&pb->lock);
	pb->pinned = slot;
	pthread_mutex_unlock(&pb->lock);
}

/* Give the window space carved for d's BARs back to the registry (pb->lock held). */
static void release_bars(struct pci_bus *pb, struct pci_device *d)
{
	int i;

	for (i = 0; i < PCI_NUM_BARS; i++) {
		if (!d->bar_res[i])
			continue;
		res_release(pb->res, d->bar_kind[i] == PCI_BAR_IO ? RES_PIO : RES_MMIO,
			    d->bar_res[i], d->bar_size[i]);
		d->bar_res[i] = 0;
	}
}

int pci_bus_add(struct pci_bus *pb, struct pci_device *d)
{
	uint16_t cmd = cfg_get16(d, PCIR_COMMAND);
	int slot, i, ret;

	ret = pci_check_bars(d);
	if (ret) {
		log_error("pci: device %04x:%04x has an invalid BAR layout",
			  cfg_get16(d, PCIR_VENDOR_ID), cfg_get16(d, PCIR_DEVICE_ID));
		return ret;
	}
	pthread_mutex_lock(&pb->lock);
	slot = res_pci_slot(pb->res, pb->pinned);
	if (slot < 0) {
		ret = slot == -EEXIST ? -EEXIST : -ENOSPC;
		goto out_unlock;
	}
	d->slot = (unsigned int)slot;
	d->bus = pb;
	memset(d->bar_addr, 0, sizeof(d->bar_addr));
	memset(d->bar_res, 0, sizeof(d->bar_res));
	/* Place each BAR as firmware would, then enable decoding. */
	for (i = 0; i < PCI_NUM_BARS; i++) {
		enum pci_bar_kind kind = d->bar_kind[i];
		uint64_t base, align;
		uint32_t off = PCIR_BAR0 + 4 * (uint32_t)i;

		pb->bar_ref[slot][i] = (struct pci_bar_ref){d, i};
		if (kind == PCI_BAR_NONE)
			continue;
		align = kind == PCI_BAR_IO ? d->bar_size[i] : MAX(d->bar_size[i], 4096);
		ret = res_alloc(pb->res, kind == PCI_BAR_IO ? RES_PIO : RES_MMIO, d->bar_size[i],
				align, "pci-bar", &base);
		if (ret) {
			log_error("pci: no room for a %llu-byte BAR in the PCI window",
				  (unsigned long long)d->bar_size[i]);
			release_bars(pb, d);
			res_pci_slot_free(pb->res, (unsigned int)slot);
			d->bus = NULL;
			goto out_unlock;
		}
		d->bar_res[i] = base;
		if (kind == PCI_BAR_IO) {
			pci_cfg_set32(d, off, (uint32_t)base | BAR_IO_FLAG);
			cmd |= CMD_IO;
		} else if (kind == PCI_BAR_MEM32) {
			pci_cfg_set32(d, off, (uint32_t)base);
			cmd |= CMD_MEMORY;
		} else {
			pci_cfg_set32(d, off, (uint32_t)base | BAR_MEM64_FLAG);
			pci_cfg_set32(d, off + 4, (uint32_t)(base >> 32));
			cmd |= CMD_MEMORY;
			i++;
			pb->bar_ref[slot][i] = (struct pci_bar_ref){d, i};
		}
	}
	pci_cfg_set16(d, PCIR_COMMAND, cmd);
	pci_cfg_set32(d, PCIR_ROM, 0);
	pb->dev[slot] = d;
	pci_update_all_bars(pb, d);
	ret = 0;
out_unlock:
	pthread_mutex_unlock(&pb->lock);
	return ret;
}

void pci_bus_remove(struct pci_bus *pb, struct pci_device *d)
{
	int i;

	pthread_mutex_lock(&pb->lock);
	if (d->slot >= PCI_MAX_DEVICES || pb->dev[d->slot] != d) {
		pthread_mutex_unlock(&pb->lock);
		return;
	}
	for (i = 0; i < PCI_NUM_BARS; i++) {
		enum pci_bar_kind kind = d->bar_kind[i];

		if (kind == PCI_BAR_NONE || !d->bar_addr[i])
			continue;
		bus_unregister(kind == PCI_BAR_IO ? pb->pio : pb->mmio, d->bar_addr[i],
			       &pb->bar_ref[d->slot][i]);
		d->bar_addr[i] = 0;
	}
	pb->dev[d->slot] = NULL;
	release_bars(pb, d);
	res_pci_slot_free(pb->res, d->slot);
	/* d->bus stays: the device's teardown still reaches the host's services through it. */
	pthread_mutex_unlock(&pb->lock);
}

void pci_bus_set_reset_handler(struct pci_bus *pb, void (*cb)(void *opaque, uint8_t val),
			       void *opaque)
{
	pb->reset_cb = cb;
	pb->reset_opaque = opaque;
}

/*
 * The chipset devices' registers past the header (Q35's PCIEXBAR, ICH9's PMBASE,
 * ACPI_CNTL, RCBA, PIRQ routing): plain storage that reads back what the firmware
 * wrote. None of them moves anything: ECAM and the PM block are decoded at fixed
 * places, the ones OVMF programs.
 */
static void chipset_cfg_write(struct pci_device *d, uint32_t off, const void *data,
			      unsigned int len)
{
	if (off < 0x100 && off + len <= 0x100)
		memcpy(&d->cfg[off], data, len);
}

static const struct pci_device_ops chipset_ops = {
	.cfg_write = chipset_cfg_write,
};

static struct pci_bus *pci_bus_create(struct bus *pio, struct bus *mmio, struct resources *res,
				      uint64_t ecam_base, const struct pci_host_ops *host_ops,
				      void *host, bool q35)
{
	struct pci_bus *pb = calloc(1, sizeof(*pb));
	struct pci_device *hb;
	int ret;

	if (!pb) {
		log_error("pci: out of memory");
		return NULL;
	}
	pthread_mutex_init(&pb->lock, NULL);
	pb->pio = pio;
	pb->mmio = mmio;
	pb->res = res;
	pb->pinned = -1;
	pb->host_ops = host_ops;
	pb->host = host;
	pb->ecam_base = ecam_base;
	pb->ecam_len = q35 ? ECAM_LEN_256 : ECAM_LEN_BUS0;

	ret = res_claim(res, RES_PIO, 0xcf8, 8, 0, "pci-conf");
	if (!ret)
		ret = res_claim(res, RES_MMIO, ecam_base, pb->ecam_len, RES_F_E820_RESERVED,
				"pci-ecam");
	if (ret) {
		log_error("pci: config space ranges are taken: %s", strerror(-ret));
		goto out_free;
	}
	res->ecam_base = ecam_base;
	res->ecam_len = pb->ecam_len;
	ret = bus_register(pio, 0xcf8, 8, &pci_conf_port_ops, pb);
	if (ret)
		goto out_free_log;
	ret = bus_register(mmio, ecam_base, pb->ecam_len, &pci_ecam_ops, pb);
	if (ret)
		goto out_unregister_ports;

	/* 00:00.0: the host bridge. */
	hb = &pb->host_bridge;
	pci_cfg_set16(hb, PCIR_VENDOR_ID, q35 ? INTEL_VENDOR : HOST_BRIDGE_VENDOR);
	pci_cfg_set16(hb, PCIR_DEVICE_ID, q35 ? Q35_MCH_DEVICE : HOST_BRIDGE_DEVICE);
	pci_cfg_set32(hb, PCIR_CLASS_REV, 0x06000000); /* bridge, host bridge, rev 0 */
	ret = res_pci_slot(res, 0);
	if (ret < 0)
		goto out_unregister_ecam;
	hb->slot = 0;
	hb->bus = pb;
	pb->dev[0] = hb;
	if (q35) {
		struct pci_device *lpc = &pb->lpc;

		hb->ops = &chipset_ops;
		lpc->ops = &chipset_ops;
		pci_cfg_set16(lpc, PCIR_VENDOR_ID, INTEL_VENDOR);
		pci_cfg_set16(lpc, PCIR_DEVICE_ID, ICH9_LPC_DEVICE);
		pci_cfg_set32(lpc, PCIR_CLASS_REV, 0x06010002); /* bridge, ISA bridge, rev 2 */
		pci_cfg_set32(lpc, ICH9_PMBASE, 1); /* an I/O base, not yet set */
		ret = res_pci_slot(res, ICH9_LPC_SLOT);
		if (ret < 0)
			goto out_unregister_ecam;
		lpc->slot = ICH9_LPC_SLOT;
		lpc->bus = pb;
		pb->dev[ICH9_LPC_SLOT] = lpc;
	}
	return pb;

out_unregister_ecam:
	bus_unregister(mmio, ecam_base, pb);
out_unregister_ports:
	bus_unregister(pio, 0xcf8, pb);
out_free_log:
	log_error("pci: cannot route config space: %s", strerror(-ret));
out_free:
	pthread_mutex_destroy(&pb->lock);
	free(pb);
	return NULL;
}

struct pci_bus *pci_bus_new(struct bus *pio, struct bus *mmio, struct resources *res,
			    uint64_t ecam_base, const struct pci_host_ops *host_ops, void *host)
{
	return pci_bus_create(pio, mmio, res, ecam_base, host_ops, host, false);
}

struct pci_bus *pci_bus_new_q35(struct bus *pio, struct bus *mmio, struct resources *res,
				uint64_t ecam_base, const struct pci_host_ops *host_ops,
				void *host)
{
	return pci_bus_create(pio, mmio, res, ecam_base, host_ops, host, true);
}

void pci_bus_free(struct pci_bus *pb)
{
	if (!pb)
		return;
	pthread_mutex_destroy(&pb->lock);
	free(pb);
}
