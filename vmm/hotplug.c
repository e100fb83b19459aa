// SPDX-License-Identifier: MIT
/*
 * Devices added and removed while the guest runs, through ACPI PCI hot-plug
 * (vmm/hw/pcihp.h has the guest's side). Main thread only (vmm_service), so these
 * never race a snapshot or a reset; GET /v1/vm reads the config under vmm->lock,
 * which every change of the device list takes.
 *
 *   add     the device is parsed as PUT /v1/vm/config parses one, given the lowest
 *           free slot, created as a boot creates it (vm_device_plug: the class's
 *           create, its I/O thread filtered) and appended to the config, where a
 *           reset re-creates it and a snapshot or migration records it; then the
 *           guest is told (device check) and scans the slot.
 *   remove  the guest is asked to eject the slot; the device stays, and is listed in
 *           GET /v1/vm's "removing", until the guest's _EJ0 (its driver let go), when
 *           hotplug_service() unplugs it and drops it from the config. A guest that
 *           ignores the request keeps the device; asking again repeats the request.
 *
 * An eject that arrives during a migration waits (the migration thread reads the
 * device list): it is in the controller's saved state, so the side that runs the
 * guest afterwards finishes it (a failed migration wakes the source's main thread for
 * it; a destination at its next service call).
 *
 * The config's devices and vm->virtio share their indices; so do cfg->lease_fds.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "lease.h"
#include "log.h"
#include "util.h"

static int seterr(char *err, size_t len, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return ret;
}

static int device_index(const struct vm_config *cfg, const char *id)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_devices; i++)
		if (!strcmp(cfg->devices[i].id, id))
			return (int)i;
	return -1;
}

int hotplug_add(struct vmm *vmm, struct vm *vm, const json_t *dev, char *err, size_t errlen)
{
	struct vm_config *cfg = vmm->cfg;
	struct dev_config d;
	unsigned int slot;
	int ret, lfd;

	if (!vm->has_pcihp)
		return seterr(err, errlen, -ENOTSUP, "hot-plug needs a kernel boot (--kernel): a "
			      "firmware boot describes no hot-plug slots");
	ret = dev_config_parse_json(dev, &d);
	if (ret)
		return ret; /* logged: the request's answer */
	if (device_index(cfg, d.id) >= 0) {
		ret = seterr(err, errlen, -EEXIST, "a device with id %s exists", d.id);
		goto out_free;
	}
	for (slot = DEV_SLOT_FIRST; slot <= DEV_SLOT_LAST; slot++)
		if (!(vm->res.pci_slots & (1u << slot)))
			break;
	if (slot > DEV_SLOT_LAST || cfg->nr_devices >= VM_MAX_DEVICES) {
		ret = seterr(err, errlen, -EBUSY, "no free PCI slot for %s (%u devices)", d.id,
			     cfg->nr_devices);
		goto out_free;
	}
	d.slot = slot;
	d.addr = (int)slot; /* a reset, a restore or a migration's destination pin it */
	/* A writable disk is leased as a started VM's are (rule 3 of docs/cluster.md), and
	 * refused, before the device exists, if another owner's epoch holds it. */
	ret = lease_add(cfg, &d, vmm->lease_owner, &lfd, err, errlen);
	if (ret)
		goto out_free;
	ret = vm_device_plug(vm, &d);
	if (ret) {
		/* The device said why; a file that cannot be used is the request's fault. */
		ret = ret == -ENOMEM ? ret : -EINVAL;
		if (lfd >= 0)
			close(lfd);
		goto out_free;
	}
	pthread_mutex_lock(&vmm->lock);
	if (cfg->lease_fds)
		cfg->lease_fds[cfg->nr_devices] = lfd;
	cfg->devices[cfg->nr_devices++] = d;
	pthread_mutex_unlock(&vmm->lock);
	pcihp_insert(&vm->pcihp, slot);
	log_info("device %s added in PCI slot %u", d.id, slot);
	return 0;

out_free:
	dev_config_free(&d);
	return ret;
}

int hotplug_remove(struct vmm *vmm, struct vm *vm, const char *kind, const char *id, char *err,
		   size_t errlen)
{
	const struct vm_config *cfg = vmm->cfg;
	int i = device_index(cfg, id);

	if (i < 0 || strcmp(cfg->devices[i].cls->name, kind))
		return seterr(err, errlen, -ENOENT, "no %s with id %s", kind, id);
	if (!vm->has_pcihp)
		return seterr(err, errlen, -ENOTSUP, "hot-plug needs a kernel boot (--kernel): a "
			      "firmware boot describes no hot-plug slots");
	pcihp_request_eject(&vm->pcihp, cfg->devices[i].slot);
	log_info("device %s: the guest is asked to eject PCI slot %u", id, cfg->devices[i].slot);
	return 0;
}

/* Drop device i from the config (its vm->virtio entry is gone already). */
static void config_drop(struct vmm *vmm, unsigned int i)
{
	struct vm_config *cfg = vmm->cfg;
	unsigned int n = cfg->nr_devices - i - 1;
	struct dev_config gone;

	pthread_mutex_lock(&vmm->lock);
	gone = cfg->devices[i];
	memmove(&cfg->devices[i], &cfg->devices[i + 1], n * sizeof(cfg->devices[0]));
	memset(&cfg->devices[cfg->nr_devices - 1], 0, sizeof(cfg->devices[0]));
	if (cfg->lease_fds) {
		if (cfg->lease_fds[i] >= 0)
			close(cfg->lease_fds[i]);
		memmove(&cfg->lease_fds[i], &cfg->lease_fds[i + 1], n * sizeof(cfg->lease_fds[0]));
		cfg->lease_fds[cfg->nr_devices - 1] = -1;
	}
	cfg->nr_devices--;
	pthread_mutex_unlock(&vmm->lock);
	dev_config_free(&gone);
}

void hotplug_service(struct vmm *vmm, struct vm *vm)
{
	struct vm_config *cfg = vmm->cfg;
	uint32_t ejected;
	unsigned int i;
	bool busy;

	if (!vm->has_pcihp)
		return;
	pthread_mutex_lock(&vmm->lock);
	busy = vmm->mig.status == MIG_ACTIVE || vmm->mig.status == MIG_UNKNOWN;
	pthread_mutex_unlock(&vmm->lock);
	if (busy)
		return;
	ejected = pcihp_take_ejected(&vm->pcihp);
	for (i = 0; ejected && i < cfg->nr_devices;) {
		unsigned int slot = cfg->devices[i].slot;

		if (!(ejected & (1u << slot))) {
			i++;
			continue;
		}
		ejected &= ~(1u << slot);
		log_info("device %s removed: the guest ejected PCI slot %u", cfg->devices[i].id,
			 slot);
		vm_device_unplug(vm, i);
		config_drop(vmm, i);
	}
}

json_t *hotplug_removing_json(struct vmm *vmm, struct vm *vm)
{
	const struct vm_config *cfg = vmm->cfg;
	json_t *a = json_array();
	unsigned int i;

	for (i = 0; a && vm->has_pcihp && i < cfg->nr_devices; i++) {
		if (pcihp_removing(&vm->pcihp, cfg->devices[i].slot) &&
		    json_array_append_new(a, json_string(cfg->devices[i].id))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
