// SPDX-License-Identifier: MIT
/*
 * Disks attached to and detached from a VM: PUT and DELETE /v1/vms/{name}/disks/{id}.
 * A disk attached here is a disk of the VM's definition ("disks") with its id and PCI
 * slot in the inventory (store_device), exactly as one given at creation: a start
 * builds the VMM's command line from them (addr= pins the slot), so a restart, an HA
 * restart or a migration's destination rebuilds the same layout.
 *
 *   not running  attach: the disk joins the definition at the lowest free slot of
 *                the inventory; detach: it leaves it. Nothing else happens.
 *   running      attach: PUT /v1/vm/disks/{id} on the VM's API socket (the VMM picks
 *                the lowest free slot and the guest sees a new disk), then the slot
 *                it reports (GET /v1/vm) is recorded with the definition in one
 *                transaction (a failure asks the VMM to remove the disk again).
 *                Detach: DELETE /v1/vm/disks/{id}, then GET /v1/vm until the disk
 *                has left the VMM's config (the guest ejected it: only then is it
 *                gone), then the definition and the inventory forget it. A guest that
 *                does not eject it within the timeout keeps it, and so does the
 *                inventory: 504, and asking again repeats the request.
 *
 * The daemon never reaches into the VMM: the API socket is all it uses. A jailed VMM
 * (plinthd as root) sees only its jail and runs as its own uid: the daemon gives it
 * the one image as a hard link in the jail's root, RUNDIR/jail/disk-ID, with an ACL
 * entry for that uid on the image (acl.c), and the VMM is told "/disk-ID"; both are
 * taken back when the disk is detached or the VM deleted (a restart opens the
 * image by its own path, as root, before the jail). An image on another filesystem
 * than the state directory cannot be linked: refused, as is a linked clone (the
 * VMM's hot-plug does not follow a backing file); both work on a stopped VM.
 *
 * When a disk goes, the definition's later disks move down one index (store
 * device_move) and keep their ids and slots.
 */
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "cluster.h"
#include "log.h"

#define EJECT_POLL_MS 100

/* What a disk request works on, read from the inventory (job_open, job_close). */
struct job {
	struct store_vm vm;
	struct pd_vm_def def;
	struct store_device *devs;	/* the VM's devices (n); owned */
	size_t n;
};

/* Read VM name, its definition and its devices into a new *job: 0, or -errno with r
 * set (*job NULL). */
static int job_open(struct plinthd *pd, const char *name, struct job **job, struct pd_reply *r)
{
	struct job *j = calloc(1, sizeof(*j));

	*job = NULL;
	if (!j) {
		pd_reply_error(r, 500, "out of memory");
		return -ENOMEM;
	}
	if (pd_vm_load(pd, name, &j->vm, &j->def, r)) {
		free(j);
		return -ENOENT;
	}
	if (pd_vm_elsewhere(pd, &j->vm, r))
		goto out_free;
	if (pd->ops->device_list(pd->st, j->vm.id, &j->devs, &j->n)) {
		pd_reply_error(r, 500, "inventory error reading the devices of VM '%s'", name);
		goto out_free;
	}
	*job = j;
	return 0;
out_free:
	store_vm_clear(&j->vm);
	free(j);
	return -EIO;
}

/* Free job; when ok, r is the VM as it is now (GET /v1/vms/{name}). */
static void job_close(struct plinthd *pd, struct job *job, bool ok, struct pd_reply *r)
{
	char name[STORE_NAME_MAX];

	if (!job)
		return;
	snprintf(name, sizeof(name), "%s", job->vm.name);
	store_vm_clear(&job->vm);
	free(job->devs);
	free(job);
	if (ok)
		pd_vm_get(pd, name, r);
}

/* The running VM's run, NULL if it has no process; -EBUSY with r set for a VM whose
 * process is not there to take a request (starting, stopping, migrating). */
static int live_run(struct plinthd *pd, const struct store_vm *vm, struct pd_run **run,
		    struct pd_reply *r)
{
	*run = pd_run_of(pd, vm->id);
	if (!*run && !pd_state_is_live(vm->state))
		return 0;
	if (*run && ((*run)->migrating || (*run)->incoming)) {
		pd_reply_error(r, 409, "VM '%s' is migrating: try again when it is over", vm->name);
		return -EBUSY;
	}
	if (!*run || (strcmp(vm->state, "running") && strcmp(vm->state, "paused"))) {
		pd_reply_error(r, 409, "VM '%s' is %s: try again when it is running or stopped",
			       vm->name, vm->state);
		return -EBUSY;
	}
	return 0;
}

/* The index in devs[0..n) of the device with id, or -1. */
static int find_dev(const struct store_device *devs, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(devs[i].dev_id, id))
			return (int)i;
	return -1;
}

/* The lowest PCI slot none of devs[0..n) has (1..PD_SLOT_LAST), or 0 if none is free. */
static unsigned free_slot(const struct store_device *devs, size_t n)
{
	unsigned slot;

	for (slot = 1; slot <= PD_SLOT_LAST; slot++) {
		size_t i;

		for (i = 0; i < n && devs[i].slot != slot; i++)
			;
		if (i == n)
			return slot;
	}
	return 0;
}

/*
 * Write vm's definition def (a disk added or removed) and the device change in one
 * transaction with its event: dev added (index = its place in def), or the disk
 * at index gone (later ones moved down; n_before: the disks before the removal).
 * 0 or -errno with r set.
 */
static int record(struct plinthd *pd, struct store_vm *vm, const struct pd_vm_def *def,
		  const struct store_device *dev, int gone, unsigned n_before, const char *id,
		  const char *event, struct pd_reply *r)
{
	json_t *spec = pd_vm_def_to_json(def);
	char *text = spec ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	unsigned i;
	int ret;

	json_decref(spec);
	if (!text) {
		pd_reply_error(r, 500, "out of memory");
		return -ENOMEM;
	}
	free(vm->spec);
	vm->spec = text;
	vm->updated_ms = pd_now_ms();
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->vm_update(pd->st, vm);
	if (!ret && dev)
		ret = pd->ops->device_insert(pd->st, vm->id, dev);
	if (!ret && gone >= 0)
		ret = pd->ops->device_delete(pd->st, vm->id, "disk", (unsigned)gone);
	for (i = (unsigned)gone + 1; !ret && gone >= 0 && i < n_before; i++)
		ret = pd->ops->device_move(pd->st, vm->id, "disk", i, i - 1);
	if (!ret)
		ret = pd_event(pd, event, vm->name, "ok", "disk %s%s", id,
			       dev ? " attached" : " detached");
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		if (ret == -ESTALE)
			pd_reply_error(r, 409, "VM '%s' moved to another host meanwhile", vm->name);
		else if (ret == -EEXIST)
			pd_reply_error(r, 409, "VM '%s': the inventory has a device with id %s or "
				       "in slot %u already", vm->name, id, dev ? dev->slot : 0);
		else
			pd_reply_error(r, 500, "inventory error recording the disks of VM '%s'",
				       vm->name);
	}
	return ret;
}

/* The PCI slot of device id in the VMM's config (GET /v1/vm): 1..31, 0 if it has no
 * such device, -errno with err set if the VMM did not answer. */
static int vmm_slot(struct plinthd *pd, const struct pd_run *run, const char *id, char *err,
		    size_t errlen)
{
	json_t *body = NULL, *devs, *d;
	int status = 0, slot = 0;
	size_t i;

	if (pd_vm_api(pd, run, "GET", "/v1/vm", NULL, &status, &body, err, errlen))
		return -EIO;
	if (status != 200 || !body) {
		json_decref(body);
		snprintf(err, errlen, "GET /v1/vm answered %d", status);
		return -EIO;
	}
	devs = json_object_get(json_object_get(body, "config"), "devices");
	json_array_foreach(devs, i, d)
	{
		json_t *addr = json_object_get(d, "addr");
		const char *did = json_string_value(json_object_get(d, "id"));

		if (!addr)
			addr = json_object_get(d, "slot");
		if (did && !strcmp(did, id)) {
			json_int_t v = json_integer_value(addr);

			slot = v >= 1 && v <= PD_SLOT_LAST ? (int)v : -EPROTO;
			break;
		}
	}
	json_decref(body);
	if (slot < 0)
		snprintf(err, errlen, "device %s has no valid PCI slot in the VMM's config", id);
	return slot;
}

/* RUNDIR/jail/disk-ID of VM vm into buf ("" if it does not fit). */
static void jail_link_path(struct plinthd *pd, const struct store_vm *vm, const char *id,
			   char *buf, size_t size)
{
	char name[PD_DEV_ID_MAX + 16];

	snprintf(name, sizeof(name), "jail/disk-%s", id);
	pd_run_path(pd, vm->uuid, name, buf, size);
}

/* Give VM vm's jailed VMM the image at path as disk id: the link, then its uid's ACL
 * entry; into vmm_path what the VMM opens. 0, or -errno with r set. */
static int jail_grant(struct plinthd *pd, const struct store_vm *vm, const char *id,
		      const char *path, bool readonly, char *vmm_path, size_t size,
		      struct pd_reply *r)
{
	char link_path[PD_DIR_MAX + 128];
	int ret;

	jail_link_path(pd, vm, id, link_path, sizeof(link_path));
	unlink(link_path); /* one an earlier attach of this id left */
	if (!link_path[0] || link(path, link_path) < 0) {
		ret = -errno;
		pd_reply_error(r, 409,
			       "VM '%s' runs jailed and %s cannot be linked into its jail (%s)%s",
			       vm->name, path, strerror(-ret),
			       ret == -EXDEV ? ": it is not on the state directory's filesystem; "
					       "stop the VM to attach it"
					     : "");
		return ret;
	}
	ret = pd_acl_grant(link_path, pd->uid_base + (uid_t)vm->id, !readonly);
	if (ret) {
		unlink(link_path);
		pd_reply_error(r, 409, "VM '%s' runs jailed and its user cannot be given access to "
			       "%s (an ACL entry: %s); stop the VM to attach it",
			       vm->name, path, strerror(-ret));
		return ret;
	}
	snprintf(vmm_path, size, "/disk-%s", id);
	return 0;
}

/* Take back what jail_grant gave for disk id (nothing if there is no link). */
static void jail_revoke(struct plinthd *pd, const struct store_vm *vm, const char *id)
{
	char link_path[PD_DIR_MAX + 128], lease[PD_DIR_MAX + 140];
	int ret;

	jail_link_path(pd, vm, id, link_path, sizeof(link_path));
	if (!link_path[0] || access(link_path, F_OK) < 0)
		return;
	ret = pd_acl_revoke(link_path, pd->uid_base + (uid_t)vm->id);
	if (ret)
		log_warn("VM %s: disk %s: its jail user's ACL entry stays: %s", vm->name, id,
			 strerror(-ret));
	unlink(link_path);
	snprintf(lease, sizeof(lease), "%s.lease", link_path); /* the VMM's lease record */
	unlink(lease);
}

void pd_jail_disks_drop(struct plinthd *pd, const struct store_vm *vm)
{
	char dir[PD_DIR_MAX + 64];
	struct dirent *e;
	DIR *d;

	pd_run_path(pd, vm->uuid, "jail", dir, sizeof(dir));
	d = dir[0] ? opendir(dir) : NULL;
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (!strncmp(e->d_name, "disk-", 5) && len < 5 + PD_DEV_ID_MAX &&
		    pd_dev_id_valid(e->d_name + 5))
			jail_revoke(pd, vm, e->d_name + 5);
	}
	closedir(d);
}

/* Hot-plug disk d as id into run's VMM: its slot (1..31), or -errno with r set. */
static int vmm_add(struct plinthd *pd, const struct pd_run *run, const struct store_vm *vm,
		   const struct pd_disk *d, const char *id, struct pd_reply *r)
{
	char path[PD_PATH_MAX], url[64], err[512];
	const char *format = d->format, *vmname = vm->name;
	struct store_image img;
	json_t *body;
	char *text;
	int status = 0, ret;

	if (d->image[0]) {
		if (pd->ops->image_get(pd->st, d->image, &img)) {
			pd_reply_error(r, 404, "no image named '%s' in the pool", d->image);
			return -ENOENT;
		}
		if (img.backing[0]) {
			pd_reply_error(r, 409,
				       "image '%s' is a linked clone: a running VM cannot follow its "
				       "template; stop the VM to attach it",
				       d->image);
			return -EINVAL;
		}
		pd_image_path(pd, d->image, path, sizeof(path));
		if (!format[0])
			format = img.format;
	} else {
		snprintf(path, sizeof(path), "%s", d->path);
	}
	if (pd->jail && jail_grant(pd, vm, id, path, d->readonly, path, sizeof(path), r))
		return -EPERM;
	body = json_pack("{s:s, s:b}", "path", path, "readonly", d->readonly);
	if (body && format[0])
		json_object_set_new(body, "format", json_string(format));
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	snprintf(url, sizeof(url), "/v1/vm/disks/%s", id);
	ret = text ? pd_vm_api(pd, run, "PUT", url, text, &status, NULL, err, sizeof(err))
		   : -ENOMEM;
	free(text);
	if (ret || status >= 300)
		jail_revoke(pd, vm, id);
	if (ret) {
		pd_reply_error(r, 502, "VM '%s': its API did not answer: %s", vmname, err);
		return ret;
	}
	if (status >= 300) {
		json_t *e = json_loads(err, 0, NULL);
		const char *why = json_string_value(json_object_get(e, "error"));

		/* The VMM's sentence (a bad image, no free slot, a firmware boot). */
		pd_reply_error(r, status >= 500 ? 502 : status == 404 ? 400 : status,
			       "VM '%s': the VMM refused the disk: %s", vmname, why ? why : err);
		json_decref(e);
		return -EINVAL;
	}
	ret = vmm_slot(pd, run, id, err, sizeof(err));
	if (ret <= 0) {
		pd_reply_error(r, 502, "VM '%s': disk %s added, but its slot is unknown: %s",
			       vmname, id, ret ? err : "not in the VMM's config");
		return ret ? ret : -EPROTO;
	}
	return ret;
}

void pd_vm_disk_add(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	struct store_device dev = {.kind = "disk"};
	struct pd_vm_def *def;
	struct pd_run *run;
	struct job *job;
	char err[512], url[64];
	int slot, status;
	bool ok = false;

	if (job_open(pd, req->name, &job, r) || live_run(pd, &job->vm, &run, r))
		goto out_close;
	def = &job->def;
	if (def->n_disks >= PD_DISKS_MAX) {
		pd_reply_error(r, 409, "VM '%s' has %d disks, the most a VM may have", req->name,
			       PD_DISKS_MAX);
		goto out_close;
	}
	if (find_dev(job->devs, job->n, req->dev_id) >= 0) {
		pd_reply_error(r, 409, "VM '%s' has a device with id %s already", req->name,
			       req->dev_id);
		goto out_close;
	}
	if (pd_disk_check(pd, &req->u.disk, "disk", r))
		goto out_close;
	slot = run ? vmm_add(pd, run, &job->vm, &req->u.disk, req->dev_id, r) :
		     (int)free_slot(job->devs, job->n);
	if (slot < 0)
		goto out_close;
	if (!slot) {
		pd_reply_error(r, 409, "VM '%s': no PCI slot left for disk %s", req->name,
			       req->dev_id);
		goto out_close;
	}
	snprintf(dev.dev_id, sizeof(dev.dev_id), "%s", req->dev_id);
	dev.index = def->n_disks;
	dev.slot = (unsigned)slot;
	def->disks[def->n_disks++] = req->u.disk;
	ok = !record(pd, &job->vm, def, &dev, -1, 0, req->dev_id, "vm.disk-add", r);
	if (!ok && run) {
		/* The guest has it but the inventory does not: take it back (asked; the
		 * guest lets it go), so that the two agree. */
		snprintf(url, sizeof(url), "/v1/vm/disks/%s", req->dev_id);
		pd_vm_api(pd, run, "DELETE", url, NULL, &status, NULL, err, sizeof(err));
	}
out_close:
	job_close(pd, job, ok, r);
}

/*
 * Ask run's VMM to remove disk id and wait (up to timeout_s, pd->lock dropped between
 * looks) until the guest ejected it. 0 when it is gone (or the VM stopped meanwhile),
 * or -errno with r set (504 on the timeout).
 */
static int vmm_remove(struct plinthd *pd, int64_t vm_id, const char *vmname, const char *id,
		      unsigned timeout_s, struct pd_reply *r)
{
	int64_t deadline = pd_mono_ms() + (int64_t)timeout_s * 1000;
	struct pd_run *run = pd_run_of(pd, vm_id);
	char url[64], err[512];
	int status = 0, slot;

	snprintf(url, sizeof(url), "/v1/vm/disks/%s", id);
	if (pd_vm_api(pd, run, "DELETE", url, NULL, &status, NULL, err, sizeof(err))) {
		pd_reply_error(r, 502, "VM '%s': its API did not answer: %s", vmname, err);
		return -EIO;
	}
	if (status == 404)
		return 0; /* gone already (a guest that ejected it after an earlier timeout) */
	if (status >= 300) {
		json_t *e = json_loads(err, 0, NULL);
		const char *why = json_string_value(json_object_get(e, "error"));

		pd_reply_error(r, status >= 500 ? 502 : status, "VM '%s': the VMM refused to "
			       "remove disk %s: %s", vmname, id, why ? why : err);
		json_decref(e);
		return -EINVAL;
	}
	pd_event(pd, "vm.disk-eject", vmname, "ok", "the guest is asked to eject %s", id);
	for (;;) {
		/* The rest of the daemon runs meanwhile: a guest may take its time. */
		pthread_mutex_unlock(&pd->lock);
		usleep(EJECT_POLL_MS * 1000);
		pthread_mutex_lock(&pd->lock);
		run = pd_run_of(pd, vm_id);
		if (!run || run->incoming || run->migrating)
			return 0; /* stopped (or on its way elsewhere): the definition decides */
		slot = vmm_slot(pd, run, id, err, sizeof(err));
		if (!slot)
			return 0;
		if (pd_mono_ms() >= deadline) {
			pd_reply_error(r, 504,
				       "VM '%s': the guest did not eject disk %s within %u s; it "
				       "stays attached (ask again to repeat the request)",
				       vmname, id, timeout_s);
			return -ETIMEDOUT;
		}
	}
}

void pd_vm_disk_remove(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	struct pd_vm_def *def;
	struct pd_run *run;
	struct job *job;
	unsigned i, index;
	bool ok = false;
	int64_t vm_id;
	int at;

	if (job_open(pd, req->name, &job, r) || live_run(pd, &job->vm, &run, r))
		goto out_close;
	at = find_dev(job->devs, job->n, req->dev_id);
	if (at < 0 || strcmp(job->devs[at].kind, "disk") ||
	    job->devs[at].index >= job->def.n_disks) {
		pd_reply_error(r, 404, "VM '%s' has no disk with id %s", req->name, req->dev_id);
		goto out_close;
	}
	if (run) {
		vm_id = job->vm.id;
		job_close(pd, job, false, r);
		job = NULL;
		if (vmm_remove(pd, vm_id, req->name, req->dev_id, req->eject_timeout, r))
			goto out_close;
		/* The lock was dropped meanwhile: read everything again. */
		if (job_open(pd, req->name, &job, r))
			goto out_close;
		at = find_dev(job->devs, job->n, req->dev_id);
		if (job->vm.id != vm_id || at < 0 || job->devs[at].index >= job->def.n_disks) {
			pd_reply_error(r, 409, "VM '%s' changed while its disk %s was ejected",
				       req->name, req->dev_id);
			goto out_close;
		}
	}
	def = &job->def;
	index = job->devs[at].index;
	for (i = index; i + 1 < def->n_disks; i++)
		def->disks[i] = def->disks[i + 1];
	def->n_disks--;
	ok = !record(pd, &job->vm, def, NULL, (int)index, def->n_disks + 1, req->dev_id,
		     "vm.disk-remove", r);
	if (ok)
		jail_revoke(pd, &job->vm, req->dev_id);
out_close:
	job_close(pd, job, ok, r);
}
