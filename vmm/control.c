// SPDX-License-Identifier: MIT
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lease.h"
#include "log.h"
#include "machine.h"
#include "util.h"
#include "vmstate.h"
#include "state/snapshot.h"
#include "state/state.h"

/*
 * Rules 3 and 4 while the guest runs (docs/cluster.md): every LEASE_RENEW_MS the main
 * thread reads the writable disks' lease records and renews them (lease_renew).
 *   - A newer epoch of this VM there means another host has taken it over (an HA
 *     restart after this host lost contact, where this one did not hear of it), so
 *     the guest is paused at once: a second writer on its disks is the one thing that
 *     must not happen, and a paused guest stays so (resume is refused the same way).
 *   - A record that cannot be read, parsed or written (a blip of the shared storage, a
 *     torn rewrite) is logged, rate-limited, and the guest runs on, until renewals
 *     have failed for LEASE_LOST_MS: then it is paused, because a VMM of another host
 *     that watched the record stand still for LEASE_WATCH_MS may take the VM over. It
 *     runs again by itself at the next renewal that works (nobody took it: the epoch
 *     is still this one's).
 */

static void vmm_tick(void *opaque, struct vm *vm)
{
	struct vmm *vmm = opaque;
	char err[API_ERROR_MAX] = "";
	uint64_t now;
	bool skip;
	int ret;

	pthread_mutex_lock(&vmm->lock);
	/* A migration hands the disks over itself; its outcome decides, not this. */
	skip = vmm->mig.status == MIG_ACTIVE || vmm->mig.status == MIG_UNKNOWN;
	pthread_mutex_unlock(&vmm->lock);
	if (skip)
		return;
	ret = lease_renew(vmm->cfg, vmm->lease_owner, ++vmm->lease_renewals, err, sizeof(err));
	now = monotonic_ms();
	if (!ret) {
		vmm->lease_ok_ms = now;
		if (vmm->lease_paused && vm_paused(vm)) {
			log_warn("its disk leases are renewed again: the guest runs on");
			vm_resume(vm);
		}
		vmm->lease_paused = false;
	} else if (ret == -ESTALE) {
		vmm->lease_paused = false; /* for good: never resumed by this */
		if (!vm_paused(vm)) {
			log_error("%s: the guest is paused", err);
			vm_pause(vm);
		}
	} else if (now - vmm->lease_ok_ms >= LEASE_LOST_MS && !vm_paused(vm)) {
		log_error("%s, for %d s: the guest is paused until they can be renewed (a VMM "
			  "on another host may take the VM over after %d s)", err,
			  LEASE_LOST_MS / 1000, LEASE_WATCH_MS / 1000);
		vm_pause(vm);
		vmm->lease_paused = true;
	} else if (!vm_paused(vm)) {
		log_limited(&vmm->lease_rl, LOG_WARN, "%s (tried again every %d s)", err,
			    LEASE_RENEW_MS / 1000);
	}
}

int vmm_init(struct vmm *vmm, struct vm_config *cfg)
{
	memset(vmm, 0, sizeof(*vmm));
	vmm->cfg = cfg;
	vmm->req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vmm->req_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -errno;
	}
	pthread_mutex_init(&vmm->lock, NULL);
	pthread_cond_init(&vmm->cond, NULL);
	cfg->service_fd = vmm->req_fd;
	cfg->service = vmm_service;
	cfg->service_opaque = vmm;
	if (cfg->lease_epoch_set) {
		cfg->tick = vmm_tick;
		cfg->tick_ms = LEASE_RENEW_MS;
		vmm->lease_ok_ms = monotonic_ms();
		ratelimit_init(&vmm->lease_rl, 1, 60000);
	}
	return 0;
}

void vmm_fini(struct vmm *vmm)
{
	migrate_join(vmm);
	if (vmm->req_fd >= 0)
		close(vmm->req_fd);
	pthread_cond_destroy(&vmm->cond);
	pthread_mutex_destroy(&vmm->lock);
}

void vmm_set_vm(struct vmm *vmm, struct vm *vm)
{
	if (!vm)
		migrate_join(vmm);
	pthread_mutex_lock(&vmm->lock);
	vmm->vm = vm;
	if (vm)
		vmm->boots++;
	/* A request posted while no VM existed gets its answer now. */
	pthread_cond_broadcast(&vmm->cond);
	pthread_mutex_unlock(&vmm->lock);
}

static void seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- snapshots ---- */

/* Guest RAM into the memory file, skipping all-zero 64 KiB runs (the file is sparse). */
static int write_memory(struct vm *vm, int fd)
{
	static const uint8_t zero[64 * KiB];
	unsigned int i;
	int ret;

	if (ftruncate(fd, (off_t)vm->mem.total) < 0)
		return -errno;
	for (i = 0; i < vm->mem.nr_slots; i++) {
		const struct guest_mem_slot *s = &vm->mem.slot[i];
		uint64_t off;

		for (off = 0; off < s->size; off += sizeof(zero)) {
			size_t n = (size_t)MIN(sizeof(zero), s->size - off);

			if (!memcmp(s->hva + off, zero, n))
				continue;
			ret = pwrite_full(fd, s->hva + off, n, (off_t)(s->file_off + off));
			if (ret)
				return ret;
		}
	}
	return 0;
}

int vmm_snapshot(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	struct state_snapshot snap;
	struct state_writer *w;
	bool was_paused = vm_paused(vm);
	int ret;

	ret = state_snapshot_create(dir, &snap);
	if (ret) {
		seterr(err, errlen, "cannot create a snapshot in %s: %s", dir, strerror(-ret));
		return ret;
	}
	if (!was_paused)
		vm_pause(vm);
	w = state_writer_new_fd(snap.state_fd, "snapshot state");
	if (!w) {
		ret = -ENOMEM;
		goto out_abort;
	}
	ret = vm_state_save_config(vm->cfg, w);
	/*
	 * Before the devices' state, so that a restore checks the disks before any device
	 * can start on them (a request completing after this makes a restore refuse the
	 * disk: a false refusal, never a corruption).
	 */
	if (!ret)
		ret = vm_state_save_disk_idents(vm, w);
	if (!ret)
		ret = vm_state_save(vm, w);
	if (!ret)
		ret = state_writer_finish(w);
	if (ret) {
		seterr(err, errlen, "cannot write the snapshot state: %s",
		       state_writer_error(w)[0] ? state_writer_error(w) : strerror(-ret));
		state_writer_free(w);
		goto out_abort;
	}
	state_writer_free(w);
	ret = write_memory(vm, snap.memory_fd);
	if (ret) {
		seterr(err, errlen, "cannot write guest memory to %s: %s", dir, strerror(-ret));
		goto out_abort;
	}
	if (!was_paused)
		vm_resume(vm);
	ret = state_snapshot_commit(&snap);
	if (ret)
		seterr(err, errlen, "cannot commit the snapshot in %s: %s", dir, strerror(-ret));
	return ret;

out_abort:
	state_snapshot_abort(&snap);
	if (!was_paused)
		vm_resume(vm);
	return ret;
}

/* ---- requests to the main thread ---- */

/* The last migration sent everything and got no answer: the guest must stay paused. */
static bool mig_unknown(struct vmm *vmm)
{
	bool u;

	pthread_mutex_lock(&vmm->lock);
	u = vmm->mig.status == MIG_UNKNOWN;
	pthread_mutex_unlock(&vmm->lock);
	return u;
}

void vmm_service(void *opaque, struct vm *vm)
{
	struct vmm *vmm = opaque;
	char err[API_ERROR_MAX] = "";
	struct log_capture cap;
	const void *args;
	enum vmm_req req;
	uint64_t v;
	int ret = 0;

	if (read(vmm->req_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	/* The guest's ejects wake this too (vm.c's pcihp backend). */
	hotplug_service(vmm, vm);
	pthread_mutex_lock(&vmm->lock);
	req = vmm->req;
	args = vmm->req_args;
	pthread_mutex_unlock(&vmm->lock);
	if (req == VMM_REQ_NONE)
		return;

	/* The sentence of a failure logged below (the image library's, a device's) answers
	 * the request when the op gives none of its own; the log keeps it too. */
	log_capture_tee(&cap);
	switch (req) {
	case VMM_REQ_PAUSE:
		ret = vm_pause(vm);
		if (ret == -EALREADY)
			seterr(err, sizeof(err), "the VM is already paused");
		break;
	case VMM_REQ_RESUME:
		if (mig_unknown(vmm)) {
			/* The operator says the destination does not run it: take it back. */
			ret = migrate_take_back(vmm, vm, err, sizeof(err));
			break;
		}
		/* Rule 3 (lease.h): a paused copy whose VM moved on stays paused. */
		ret = vm_paused(vm) ? lease_fence(vm->cfg, "resuming", err, sizeof(err)) : 0;
		if (ret == -ESTALE || ret == -EINVAL) {
			log_warn("%s", err);
			ret = -EBUSY; /* the VM's state refuses it: 409 */
			break;
		}
		ret = vm_resume(vm);
		if (ret == -EALREADY)
			seterr(err, sizeof(err), "the VM is not paused");
		break;
	case VMM_REQ_SHUTDOWN:
		vm_power_button(vm);
		break;
	case VMM_REQ_RESET:
		vm_request_exit(vm, VM_EXIT_RESET, NULL);
		break;
	case VMM_REQ_SNAPSHOT:
		ret = vmm_snapshot(vm, ((const struct api_snapshot_args *)args)->dir, err,
				   sizeof(err));
		if (ret == -EEXIST)
			ret = -EINVAL; /* a bad target directory is the request's fault: 400 */
		if (ret)
			log_warn("%s", err);
		break;
	case VMM_REQ_MIGRATE:
		ret = migrate_start(vmm, vm, args, err, sizeof(err));
		break;
	case VMM_REQ_DEV_ADD:
		ret = hotplug_add(vmm, vm, args, err, sizeof(err));
		break;
	case VMM_REQ_DEV_REMOVE: {
		const struct dev_removal *r = args;

		ret = hotplug_remove(vmm, vm, r->kind, r->id, err, sizeof(err));
		break;
	}
	default:
		ret = -ENOTSUP;
		break;
	}
	log_capture_end(&cap);
	if (ret && !err[0] && cap.first_error[0])
		seterr(err, sizeof(err), "%s", cap.first_error);

	pthread_mutex_lock(&vmm->lock);
	vmm->req_ret = ret;
	memcpy(vmm->req_err, err, sizeof(err));
	vmm->req_done = true;
	vmm->req = VMM_REQ_NONE;
	pthread_cond_broadcast(&vmm->cond);
	pthread_mutex_unlock(&vmm->lock);
}

/* Post a request to the main thread and wait for its answer (API thread). */
static int vmm_call(struct vmm *vmm, enum vmm_req req, const void *args, struct api_reply *reply)
{
	uint64_t one = 1;
	int ret;

	pthread_mutex_lock(&vmm->lock);
	vmm->req = req;
	vmm->req_args = args;
	vmm->req_done = false;
	vmm->req_err[0] = 0;
	pthread_mutex_unlock(&vmm->lock);
	if (write(vmm->req_fd, &one, sizeof(one)) < 0)
		return -errno;
	pthread_mutex_lock(&vmm->lock);
	while (!vmm->req_done)
		pthread_cond_wait(&vmm->cond, &vmm->lock);
	ret = vmm->req_ret;
	if (ret && vmm->req_err[0])
		snprintf(reply->error, sizeof(reply->error), "%s", vmm->req_err);
	pthread_mutex_unlock(&vmm->lock);
	return ret;
}

/* ---- API ops ---- */

static bool migrating(struct vmm *vmm)
{
	bool m;

	pthread_mutex_lock(&vmm->lock);
	m = vmm->mig.status == MIG_ACTIVE;
	pthread_mutex_unlock(&vmm->lock);
	return m;
}

static const char *mig_status_name(enum mig_status s)
{
	switch (s) {
	case MIG_ACTIVE:
		return "active";
	case MIG_COMPLETED:
		return "completed";
	case MIG_UNKNOWN:
		return "unknown";
	default:
		return "failed"; /* cancelled too: the error says so */
	}
}

static json_t *mig_json(const struct mig_stats *m, const struct api_migrate_args *a)
{
	char to[API_HOST_MAX + 16];
	json_t *o;

	if (a->transport == API_MIGRATE_UNIX)
		snprintf(to, sizeof(to), "unix:%s", a->path);
	else
		snprintf(to, sizeof(to), "tcp:%.200s:%u", a->host, a->port);
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:I}", "status",
		      mig_status_name(m->status), "to", to, "total_ms", (json_int_t)m->total_ms,
		      "downtime_ms", (json_int_t)m->downtime_ms, "bytes_sent", (json_int_t)m->bytes,
		      "pages_sent", (json_int_t)m->pages, "rounds", (int)m->rounds,
		      "throttle_pct", (int)m->throttle_pct, "bandwidth_mbps",
		      (json_int_t)m->bandwidth_mbps);

	if (o && m->error[0])
		json_object_set_new(o, "error", json_string(m->error));
	return o;
}

static int op_info(void *opaque, struct api_reply *reply)
{
	struct vmm *vmm = opaque;
	const struct vm_config *c = vmm->cfg;
	uint64_t io = 0, mmio = 0, other = 0;
	const char *state = "created";
	json_t *o, *cfg, *cnt;
	unsigned int i;

	pthread_mutex_lock(&vmm->lock);
	if (vmm->vm) {
		struct vm *vm = vmm->vm;

		state = vmm->mig.status == MIG_ACTIVE ? "migrating" :
			vm_paused(vm)		       ? "paused" :
							 "running";
		for (i = 0; i < vm->nr_vcpus; i++) {
			io += __atomic_load_n(&vm->vcpu[i].exits_io, __ATOMIC_RELAXED);
			mmio += __atomic_load_n(&vm->vcpu[i].exits_mmio, __ATOMIC_RELAXED);
			other += __atomic_load_n(&vm->vcpu[i].exits_other, __ATOMIC_RELAXED);
		}
	}
	cfg = machine_config_json(c);
	cnt = json_pack("{s:i, s:I, s:I, s:I}", "boots", (int)vmm->boots, "exits_io",
			(json_int_t)io, "exits_mmio", (json_int_t)mmio, "exits_other",
			(json_int_t)other);
	o = json_pack("{s:s, s:o, s:o, s:b}", "state", state, "config", cfg ? cfg : json_null(),
		      "counters", cnt ? cnt : json_null(), "restored", vmm->restored);
	if (o && vmm->mig.status != MIG_NONE)
		json_object_set_new(o, "migration", mig_json(&vmm->mig, &vmm->mig_args));
	if (o && vmm->vm && vmm->vm->has_pcihp)
		json_object_set_new(o, "removing", hotplug_removing_json(vmm, vmm->vm));
	pthread_mutex_unlock(&vmm->lock);
	if (!o)
		return -ENOMEM;
	reply->body = o;
	return 0;
}

/* Refuse what a running migration forbids: 409. */
static int not_while_migrating(struct vmm *vmm, struct api_reply *reply, const char *what)
{
	/* resume is how the operator takes the guest back; pause changes nothing. */
	if (mig_unknown(vmm) && strcmp(what, "pause") && strcmp(what, "resume")) {
		snprintf(reply->error, sizeof(reply->error), "cannot %s: the last migration's "
			 "outcome is unknown (the destination may run the guest); stop this VM, or "
			 "take the guest back with resume", what);
		return -EBUSY;
	}
	if (!migrating(vmm))
		return 0;
	snprintf(reply->error, sizeof(reply->error), "cannot %s during a migration", what);
	return -EBUSY;
}

static int op_pause(void *opaque, struct api_reply *reply)
{
	struct vmm *vmm = opaque;

	return not_while_migrating(vmm, reply, "pause") ?: vmm_call(vmm, VMM_REQ_PAUSE, NULL, reply);
}

static int op_resume(void *opaque, struct api_reply *reply)
{
	struct vmm *vmm = opaque;

	return not_while_migrating(vmm, reply, "resume") ?:
		vmm_call(vmm, VMM_REQ_RESUME, NULL, reply);
}

static int op_shutdown(void *opaque, struct api_reply *reply)
{
	struct vmm *vmm = opaque;

	return not_while_migrating(vmm, reply, "shut down") ?:
		vmm_call(vmm, VMM_REQ_SHUTDOWN, NULL, reply);
}

static int op_reset(void *opaque, struct api_reply *reply)
{
	struct vmm *vmm = opaque;

	return not_while_migrating(vmm, reply, "reset") ?:
		vmm_call(vmm, VMM_REQ_RESET, NULL, reply);
}

static int op_snapshot(void *opaque, const struct api_snapshot_args *args, struct api_reply *reply)
{
	struct vmm *vmm = opaque;

	return not_while_migrating(vmm, reply, "snapshot") ?:
		vmm_call(vmm, VMM_REQ_SNAPSHOT, args, reply);
}

static int op_migrate(void *opaque, const struct api_migrate_args *args, struct api_reply *reply)
{
	struct vmm *vmm = opaque;
	int ret;

	if (migrating(vmm)) {
		snprintf(reply->error, sizeof(reply->error), "a migration is already running");
		return -EALREADY;
	}
	ret = not_while_migrating(vmm, reply, "migrate");
	if (ret)
		return ret;
	ret = vmm_call(vmm, VMM_REQ_MIGRATE, args, reply);
	if (!ret)
		reply->accepted = true;
	return ret;
}

/* Hot-plug dev (a device as PUT /v1/vm/config gives one; taken) on the main thread. */
static int dev_add(struct vmm *vmm, json_t *dev, const char *what, struct api_reply *reply)
{
	int ret;

	if (!dev)
		return -ENOMEM;
	ret = not_while_migrating(vmm, reply, what) ?: vmm_call(vmm, VMM_REQ_DEV_ADD, dev, reply);
	json_decref(dev);
	return ret;
}

/*
 * Ask the guest to eject device id of class kind: 202, and the device is gone from
 * GET /v1/vm once the guest did (it is in "removing" until then).
 */
static int dev_remove(struct vmm *vmm, const char *kind, const char *id, const char *what,
		      struct api_reply *reply)
{
	struct dev_removal r = { kind, id };
	int ret;

	ret = not_while_migrating(vmm, reply, what) ?: vmm_call(vmm, VMM_REQ_DEV_REMOVE, &r, reply);
	if (!ret)
		reply->accepted = true;
	return ret;
}

/* PUT /v1/vm/disks/{id}: a virtio disk, hot-plugged (vmm/hotplug.c). */
static int op_disk_add(void *opaque, const struct api_disk_args *a, struct api_reply *reply)
{
	return dev_add(opaque, json_pack("{s:s, s:s, s:s, s:b, s:s*}", "kind", "disk", "id", a->id,
					 "path", a->path, "readonly", a->readonly, "format",
					 a->format[0] ? a->format : NULL),
		       "add a disk", reply);
}

static int op_disk_remove(void *opaque, const char *id, struct api_reply *reply)
{
	return dev_remove(opaque, "disk", id, "remove a disk", reply);
}

/* PUT /v1/vm/nets/{id}: a virtio NIC on a tap, hot-plugged. */
static int op_net_add(void *opaque, const struct api_net_args *a, struct api_reply *reply)
{
	return dev_add(opaque, json_pack("{s:s, s:s, s:s, s:s*}", "kind", "net", "id", a->id,
					 "tap", a->tap, "mac", a->mac[0] ? a->mac : NULL),
		       "add a NIC", reply);
}

static int op_net_remove(void *opaque, const char *id, struct api_reply *reply)
{
	return dev_remove(opaque, "net", id, "remove a NIC", reply);
}

/* The pre-boot routes (vmm/preboot.c) once the VM runs. */
static int op_configure(void *opaque, const json_t *config, struct api_reply *reply)
{
	(void)opaque;
	(void)config;
	snprintf(reply->error, sizeof(reply->error), "the VM has started: its configuration "
		 "is fixed (GET /v1/vm shows it)");
	return -EBUSY;
}

static int op_start(void *opaque, const struct api_start_args *args, struct api_reply *reply)
{
	(void)opaque;
	(void)args;
	snprintf(reply->error, sizeof(reply->error), "the VM has started already");
	return -EBUSY;
}

const struct api_vm_ops vmm_api_ops = {
	.info = op_info,
	.pause = op_pause,
	.resume = op_resume,
	.shutdown = op_shutdown,
	.reset = op_reset,
	.snapshot = op_snapshot,
	.migrate = op_migrate,
	.disk_add = op_disk_add,
	.disk_remove = op_disk_remove,
	.net_add = op_net_add,
	.net_remove = op_net_remove,
	.configure = op_configure,
	.start = op_start,
};
