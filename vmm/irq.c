// SPDX-License-Identifier: MIT
#include "irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "log.h"

#define PIC_PINS    16
#define IOAPIC_PINS 24

int irq_line(int vm_fd, unsigned int irq, int level)
{
	struct kvm_irq_level l = {.irq = irq, .level = (uint32_t)level};

	return ioctl(vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

/* Rebuild and commit the whole routing table. Lock held. */
static int irq_commit(struct irq_router *ir)
{
	size_t max = PIC_PINS + IOAPIC_PINS + IRQ_MAX_MSI_ROUTES;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + max * sizeof(t->entries[0]));
	unsigned int i, n = 0;
	int ret = 0;

	if (!t)
		return -ENOMEM;
	/* KVM's defaults: GSI i drives PIC pin i (i < 16) and IOAPIC pin i. */
	for (i = 0; i < IOAPIC_PINS; i++) {
		if (i < PIC_PINS) {
			t->entries[n].gsi = i;
			t->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			t->entries[n].u.irqchip.irqchip =
				i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
			t->entries[n].u.irqchip.pin = i % 8;
			n++;
		}
		t->entries[n].gsi = i;
		t->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		t->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		t->entries[n].u.irqchip.pin = i;
		n++;
	}
	for (i = 0; i < IRQ_MAX_MSI_ROUTES; i++) {
		const struct irq_msi_route *r = &ir->route[i];

		if (!r->used)
			continue;
		t->entries[n].gsi = IRQ_MSI_GSI_BASE + i;
		t->entries[n].type = KVM_IRQ_ROUTING_MSI;
		t->entries[n].u.msi.address_lo = (uint32_t)r->addr;
		t->entries[n].u.msi.address_hi = (uint32_t)(r->addr >> 32);
		t->entries[n].u.msi.data = r->data;
		n++;
	}
	t->nr = n;
	if (ioctl(ir->vm_fd, KVM_SET_GSI_ROUTING, t) < 0) {
		ret = -errno;
		log_error("KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(errno));
	}
	free(t);
	return ret;
}

int irq_router_init(struct irq_router *ir, int vm_fd)
{
	int ret;

	memset(ir, 0, sizeof(*ir));
	ir->vm_fd = vm_fd;
	pthread_mutex_init(&ir->lock, NULL);
	pthread_mutex_lock(&ir->lock);
	ret = irq_commit(ir);
	pthread_mutex_unlock(&ir->lock);
	return ret;
}

void irq_router_destroy(struct irq_router *ir)
{
	pthread_mutex_destroy(&ir->lock);
}

static int irqfd(int vm_fd, int efd, unsigned int gsi, bool assign)
{
	struct kvm_irqfd f = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

static int kvm_msi_signal(void *host, uint64_t addr, uint32_t data)
{
	struct irq_router *ir = host;
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	/* 0 means the guest blocked it (e.g. masked at the LAPIC): not an error. */
	return ioctl(ir->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

static int kvm_msi_route_add(void *host, int efd, uint64_t addr, uint32_t data, int *route)
{
	struct irq_router *ir = host;
	unsigned int i;
	int ret;

	pthread_mutex_lock(&ir->lock);
	for (i = 0; i < IRQ_MAX_MSI_ROUTES && ir->route[i].used; i++)
		;
	if (i == IRQ_MAX_MSI_ROUTES) {
		ret = -ENOSPC;
		goto out_unlock;
	}
	ir->route[i] = (struct irq_msi_route){.used = true, .efd = efd, .addr = addr, .data = data};
	ret = irq_commit(ir);
	if (!ret)
		ret = irqfd(ir->vm_fd, efd, IRQ_MSI_GSI_BASE + i, true);
	if (ret) {
		ir->route[i].used = false;
		irq_commit(ir);
		goto out_unlock;
	}
	*route = (int)i;
out_unlock:
	pthread_mutex_unlock(&ir->lock);
	return ret;
}

static int kvm_msi_route_update(void *host, int route, uint64_t addr, uint32_t data, bool masked)
{
	struct irq_router *ir = host;
	struct irq_msi_route *r;
	unsigned int gsi = IRQ_MSI_GSI_BASE + (unsigned int)route;
	int ret = 0;

	if (route < 0 || route >= IRQ_MAX_MSI_ROUTES)
		return -EINVAL;
	pthread_mutex_lock(&ir->lock);
	r = &ir->route[route];
	if (!r->used) {
		ret = -ENOENT;
		goto out_unlock;
	}
	if (r->addr != addr || r->data != data) {
		r->addr = addr;
		r->data = data;
		ret = irq_commit(ir);
		if (ret)
			goto out_unlock;
	}
	/*
	 * Masking detaches the irqfd so signals accumulate in the eventfd; attaching
	 * it again makes KVM deliver one that arrived meanwhile (the pending bit).
	 */
	if (masked != r->masked) {
		ret = irqfd(ir->vm_fd, r->efd, gsi, !masked);
		if (!ret)
			r->masked = masked;
	}
out_unlock:
	pthread_mutex_unlock(&ir->lock);
	return ret;
}

static int kvm_msi_route_del(void *host, int route, int efd)
{
	struct irq_router *ir = host;
	struct irq_msi_route *r;
	int ret = 0;

	if (route < 0 || route >= IRQ_MAX_MSI_ROUTES)
		return -EINVAL;
	pthread_mutex_lock(&ir->lock);
	r = &ir->route[route];
	if (!r->used || r->efd != efd) {
		ret = -ENOENT;
		goto out_unlock;
	}
	if (!r->masked)
		irqfd(ir->vm_fd, efd, IRQ_MSI_GSI_BASE + (unsigned int)route, false);
	r->used = false;
	ret = irq_commit(ir);
out_unlock:
	pthread_mutex_unlock(&ir->lock);
	return ret;
}

static int kvm_ioeventfd(void *host, uint64_t addr, unsigned int len, int efd, bool assign)
{
	struct irq_router *ir = host;
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	return ioctl(ir->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

const struct pci_host_ops kvm_pci_host_ops = {
	.msi_signal = kvm_msi_signal,
	.msi_route_add = kvm_msi_route_add,
	.msi_route_update = kvm_msi_route_update,
	.msi_route_del = kvm_msi_route_del,
	.ioeventfd = kvm_ioeventfd,
};
