// SPDX-License-Identifier: MIT
/*
 * VMs: definitions, the lifecycle of their plinth processes (state machine at the
 * top of plinthd.h), adoption after a plinthd restart and the monitor's period.
 *
 * Invariants:
 *  1. A VM in state starting, running, paused or stopping has a struct pd_run
 *     while plinthd runs (after pd_vms_init), and no other VM has one.
 *  2. The inventory's state is written before the process is touched (start:
 *     "starting" is committed before the fork; stop: "stopping" before the signal),
 *     so a crash of plinthd at any point leaves a state that pd_vms_init settles.
 *  3. plinth is found by its command line (--api-socket RUNDIR/api.sock), never by
 *     a bare pid that may have been reused; the shim by its name and parenthood.
 */
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "cluster.h"
#include "log.h"
#include "util.h"

#define START_TIMEOUT_MS   60000 /* plinth's API must answer within this after the spawn */
#define RESTART_WINDOW_MS  60000
#define RESTART_MAX	   5	 /* policy restarts within the window before giving up */
#define API_TIMEOUT_MS	   3000
#define REBOOT_WINDOW_MS   30000 /* an exit 0 this soon after a reboot request is the reboot */
#define CONSOLE_TAIL	   (64 * 1024)
#define SHIM_PREFIX	   "pdshim-" /* a shim's name: "pdshim-<vm id>" (comm, 15 bytes) */
#define SHIM_NAME_OLD	   "plinthd-shim" /* shims of older plinthds */

bool pd_state_is_live(const char *s)
{
	return !strcmp(s, "starting") || !strcmp(s, "running") || !strcmp(s, "paused") ||
	       !strcmp(s, "stopping");
}

void pd_run_path(const struct plinthd *pd, const char *uuid, const char *file, char *buf,
		 size_t size)
{
	/* Short by construction (PD_DIR_MAX, a uuid, a file name); checked anyway. */
	if (snprintf(buf, size, "%s/vms/%s%s%s", pd->dir, uuid, file ? "/" : "",
		     file ? file : "") >= (int)size)
		buf[0] = '\0';
}

static struct pd_run *run_find(struct plinthd *pd, int64_t vm_id)
{
	struct pd_run *r;

	for (r = pd->runs; r; r = r->next)
		if (r->vm_id == vm_id)
			return r;
	return NULL;
}

static void run_remove(struct plinthd *pd, struct pd_run *run)
{
	struct pd_run **pp;

	for (pp = &pd->runs; *pp; pp = &(*pp)->next) {
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	}
	if (run->pidfd >= 0)
		close(run->pidfd);
	free(run);
}

/* Is vm's definition ha (restarted elsewhere when its host is lost)? */
static bool def_ha(const struct store_vm *vm)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error err;
	bool yes = def && !pd_vm_def_parse(vm->spec, def, &err) && def->ha;

	free(def);
	return yes;
}

/* Watch vm's process from now on (pidfd -1: settle it at once). NULL if out of memory. */
static struct pd_run *run_add(struct plinthd *pd, const struct store_vm *vm, pid_t pid,
			      pid_t shim)
{
	struct pd_run *run = calloc(1, sizeof(*run));

	if (!run)
		return NULL;
	run->vm_id = vm->id;
	snprintf(run->name, sizeof(run->name), "%s", vm->name);
	snprintf(run->uuid, sizeof(run->uuid), "%s", vm->uuid);
	run->pid = pid;
	run->shim = shim;
	run->ha = def_ha(vm);
	run->pidfd = shim || pid ? (int)syscall(SYS_pidfd_open, shim ? shim : pid, 0) : -1;
	run->started_ms = pd_mono_ms();
	run->deadline_ms = run->started_ms + START_TIMEOUT_MS;
	run->next = pd->runs;
	pd->runs = run;
	return run;
}

struct pd_run *pd_run_of(struct plinthd *pd, int64_t vm_id)
{
	return run_find(pd, vm_id);
}

void pd_run_socket(const struct plinthd *pd, const char *uuid, char *buf, size_t size)
{
	pd_run_path(pd, uuid, "api.sock", buf, size);
}

void pd_run_display(const struct plinthd *pd, const char *uuid, char *buf, size_t size)
{
	pd_run_path(pd, uuid, "display.sock", buf, size);
}

void pd_run_forget(struct plinthd *pd, struct pd_run *run)
{
	run_remove(pd, run);
}

/* --- Processes ------------------------------------------------------------------------- */

/* Read a small file into buf (NUL-terminated); bytes read or -errno. */
ssize_t pd_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

/* True if pid's command line has "--api-socket" followed by sock. */
static bool proc_runs_socket(pid_t pid, const char *sock)
{
	char path[64], buf[8192];
	ssize_t n;
	size_t off;
	bool prev = false;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	n = pd_read_small(path, buf, sizeof(buf));
	if (n <= 0)
		return false;
	for (off = 0; off < (size_t)n; off += strlen(buf + off) + 1) {
		if (prev && !strcmp(buf + off, sock))
			return true;
		prev = !strcmp(buf + off, "--api-socket");
	}
	return false;
}

static pid_t proc_ppid(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (pd_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

static bool proc_is_shim_of(pid_t shim, pid_t pid)
{
	char path[64], comm[32];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)shim);
	if (pd_read_small(path, comm, sizeof(comm)) <= 0)
		return false;
	comm[strcspn(comm, "\n")] = '\0';
	return (!strncmp(comm, SHIM_PREFIX, strlen(SHIM_PREFIX)) || !strcmp(comm, SHIM_NAME_OLD)) &&
	       proc_ppid(pid) == shim;
}

static void shim_name(int64_t vm_id, char *buf, size_t size)
{
	snprintf(buf, size, SHIM_PREFIX "%u", (unsigned)(vm_id % 100000000));
}

/* The live shim of VM vm_id (by its name), 0 if none: a start that was under way when
 * plinthd died, whose plinth may not have been executed yet. */
static pid_t find_shim(int64_t vm_id)
{
	char want[16], path[64], comm[32];
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	shim_name(vm_id, want, sizeof(want));
	d = opendir("/proc");
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char *end;
		long p = strtol(de->d_name, &end, 10);

		if (*end || p <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/comm", p);
		if (pd_read_small(path, comm, sizeof(comm)) <= 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		if (!strcmp(comm, want))
			found = (pid_t)p;
	}
	closedir(d);
	return found;
}

/* The VM's live plinth: from its pidfile, else by scanning /proc. 0 if none. */
static pid_t find_plinth(const struct plinthd *pd, const char *uuid, pid_t *shim)
{
	char sock[256], pidfile[256], buf[64];
	int a = 0, b = 0;
	struct dirent *de;
	DIR *d;

	*shim = 0;
	pd_run_path(pd, uuid, "api.sock", sock, sizeof(sock));
	pd_run_path(pd, uuid, "pid", pidfile, sizeof(pidfile));
	if (pd_read_small(pidfile, buf, sizeof(buf)) > 0 && sscanf(buf, "%d %d", &a, &b) == 2 &&
	    b > 0 && proc_runs_socket(b, sock)) {
		if (a > 0 && proc_is_shim_of(a, b))
			*shim = a;
		return b;
	}
	d = opendir("/proc");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *end;
		long p = strtol(de->d_name, &end, 10);

		if (*end || p <= 0 || !proc_runs_socket((pid_t)p, sock))
			continue;
		closedir(d);
		b = (int)p;
		if (proc_is_shim_of(proc_ppid(b), b))
			*shim = proc_ppid(b);
		return b;
	}
	closedir(d);
	return 0;
}

/* Write text to path atomically (tmp + rename); for the shim too (no malloc). */
static int write_atomic(const char *path, const char *tmp, const char *text)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write_full(fd, text, strlen(text)) || fsync(fd))
		ret = -EIO;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	return ret;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void pd_rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- Inventory helpers ----------------------------------------------------------------- */

int pd_vm_load(struct plinthd *pd, const char *name, struct store_vm *vm, struct pd_vm_def *def,
	       struct pd_reply *r)
{
	struct pd_error err;
	int ret = pd->ops->vm_get(pd->st, name, vm);

	if (ret == -ENOENT) {
		pd_reply_error(r, 404, "no VM named '%s'", name);
		return ret;
	}
	if (ret) {
		pd_reply_error(r, 500, "inventory error reading VM '%s'", name);
		return ret;
	}
	if (def && pd_vm_def_parse(vm->spec, def, &err)) {
		pd_reply_error(r, 500, "VM '%s': stored definition is invalid: %s", name, err.msg);
		store_vm_clear(vm);
		return -EIO;
	}
	return 0;
}

/* Set a VM's state, pid and reason, with an event, in one transaction. */
static int vm_set_state(struct plinthd *pd, int64_t vm_id, const char *name, const char *state,
			pid_t pid, const char *reason, const char *action, const char *result)
{
	struct store_vm vm;
	int ret;

	ret = pd->ops->begin(pd->st);
	if (ret)
		return ret;
	ret = pd->ops->vm_get(pd->st, name, &vm);
	if (!ret && vm.id != vm_id)
		ret = -ENOENT;
	if (ret)
		goto out_rollback;
	snprintf(vm.state, sizeof(vm.state), "%s", state);
	vm.pid = pid;
	snprintf(vm.reason, sizeof(vm.reason), "%s", reason ? reason : "");
	vm.updated_ms = pd_now_ms();
	ret = pd->ops->vm_update(pd->st, &vm);
	store_vm_clear(&vm);
	if (!ret && action)
		ret = pd_event(pd, action, name, result, "%s", reason ? reason : state);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (!ret)
		return 0;
out_rollback:
	pd->ops->rollback(pd->st);
	log_error("VM %s: recording state %s failed", name, state);
	return ret;
}

uint64_t pd_host_mem_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb / 1024;
}

void pd_host_cpu_flags(char *buf, size_t size)
{
	const char *env = getenv("PLINTHD_CPU_FLAGS");
	FILE *f;
	char *line = NULL, *colon;
	size_t cap = 0;

	buf[0] = '\0';
	if (env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "flags", 5) || !(colon = strchr(line, ':')))
			continue;
		colon += strspn(colon + 1, " \t") + 1;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, size, "%s", colon);
		break;
	}
	free(line);
	fclose(f);
}

/* MiB of memory of the VMs that have a process, but skip_id. */
static uint64_t mem_in_use(struct plinthd *pd, int64_t skip_id)
{
	struct store_vm *vms;
	struct pd_error err;
	uint64_t sum = 0;
	size_t n, i;

	if (pd->ops->vm_list(pd->st, &vms, &n))
		return 0;
	for (i = 0; i < n; i++) {
		struct pd_vm_def *def;

		if (vms[i].id == skip_id || !run_find(pd, vms[i].id))
			continue;
		def = malloc(sizeof(*def));
		if (def && !pd_vm_def_parse(vms[i].spec, def, &err))
			sum += def->memory_mib;
		free(def);
	}
	store_vm_list_free(vms, n);
	return sum;
}

/* A VM whose definition matches (an image of a disk, or a network of a NIC): *vm. */
static bool used_by_vm(struct plinthd *pd, const char *image, const char *network, char *vmname,
		       size_t vmlen)
{
	struct store_vm *vms;
	struct pd_error err;
	bool used = false;
	size_t n, i;
	unsigned k;

	if (pd->ops->vm_list(pd->st, &vms, &n))
		return true; /* can't tell: say used, refuse the change */
	for (i = 0; i < n && !used; i++) {
		struct pd_vm_def *def = malloc(sizeof(*def));

		if (def && !pd_vm_def_parse(vms[i].spec, def, &err)) {
			for (k = 0; image && k < def->n_disks; k++)
				used |= !strcmp(def->disks[k].image, image);
			for (k = 0; network && k < def->n_nics; k++)
				used |= !strcmp(def->nics[k].network, network);
			if (used)
				snprintf(vmname, vmlen, "%s", vms[i].name);
		}
		free(def);
	}
	store_vm_list_free(vms, n);
	return used;
}

bool pd_image_used_by_vm(struct plinthd *pd, const char *image, char *vm, size_t vmlen)
{
	return used_by_vm(pd, image, NULL, vm, vmlen);
}

bool pd_network_used_by_vm(struct plinthd *pd, const char *network, char *vm, size_t vmlen)
{
	return used_by_vm(pd, NULL, network, vm, vmlen);
}

int pd_disk_check(struct plinthd *pd, const struct pd_disk *d, const char *what,
		  struct pd_reply *r)
{
	struct store_image img;
	char path[4096];

	if (d->path[0] && access(d->path, d->readonly ? R_OK : R_OK | W_OK) < 0) {
		pd_reply_error(r, 400, "%s: %s: %s", what, d->path, strerror(errno));
		return -EINVAL;
	}
	if (!d->image[0])
		return 0;
	if (pd->ops->image_get(pd->st, d->image, &img)) {
		pd_reply_error(r, 404, "%s: no image named '%s' in the pool", what, d->image);
		return -ENOENT;
	}
	/* The pool is shared: its file must be here too (a migration's destination). */
	pd_image_path(pd, d->image, path, sizeof(path));
	if (access(path, d->readonly ? R_OK : R_OK | W_OK) < 0) {
		pd_reply_error(r, 409, "%s: image '%s' (%s): %s", what, d->image, path,
			       strerror(errno));
		return -ENOENT;
	}
	if (img.is_template && !d->readonly) {
		pd_reply_error(r, 409,
			       "%s: image '%s' is a template (read-only base of linked clones): "
			       "use a clone, or readonly: true",
			       what, d->image);
		return -EBUSY;
	}
	return 0;
}

/* Check a definition against the pool and the host; 0 or a 4xx reply. */
static int check_def(struct plinthd *pd, const struct pd_vm_def *def, struct pd_reply *r)
{
	unsigned i;

	if (def->memory_mib > pd->mem_limit_mib) {
		pd_reply_error(r, 409,
			       "memory_mib %llu is over this host's limit of %llu MiB (MemTotal "
			       "x overcommit)",
			       (unsigned long long)def->memory_mib,
			       (unsigned long long)pd->mem_limit_mib);
		return -EINVAL;
	}
	if (strchr(def->kernel, ',') || strchr(def->initrd, ',')) {
		pd_reply_error(r, 400, "kernel and initrd paths must not contain ','");
		return -EINVAL;
	}
	if (access(def->kernel, R_OK) < 0 || (def->initrd[0] && access(def->initrd, R_OK) < 0)) {
		pd_reply_error(r, 400, "cannot read %s: %s",
			       access(def->kernel, R_OK) < 0 ? "kernel" : "initrd", strerror(errno));
		return -EINVAL;
	}
	for (i = 0; i < def->n_disks; i++) {
		char what[32];

		snprintf(what, sizeof(what), "disks[%u]", i);
		if (pd_disk_check(pd, &def->disks[i], what, r))
			return -EINVAL;
	}
	for (i = 0; i < def->n_nics; i++) {
		struct store_network net;

		if (pd->ops->network_get(pd->st, def->nics[i].network, &net)) {
			pd_reply_error(r, 404, "nics[%u]: no network named '%s'", i,
				       def->nics[i].network);
			return -ENOENT;
		}
	}
	return 0;
}

/* --- Device ids and PCI slots ---------------------------------------------------------- */

/* Whether id is taken by one of the n devices of devs. */
static bool dev_id_used(const struct store_device *devs, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(devs[i].dev_id, id))
			return true;
	return false;
}

/* Whether slot is taken by one of the n devices of devs (slot 0: the host bridge). */
static bool dev_slot_used(const struct store_device *devs, size_t n, unsigned slot)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (devs[i].slot == slot)
			return true;
	return !slot;
}

/*
 * The id and PCI slot of each disk (out[0..n_disks-1]) and NIC (after them) of def:
 * those the inventory has for VM vm_id, and new ones recorded for the others (a VM
 * being defined, or one defined by an older plinthd). A new device gets <kind><n>
 * with the lowest free n and the lowest free slot, disks first, then NICs, each in
 * order: what plinth itself would choose, so a guest started without them keeps
 * its slots. They never change while the VM is defined. 0 or -errno with r set.
 */
static int vm_devices(struct plinthd *pd, int64_t vm_id, const struct pd_vm_def *def,
		      struct store_device out[PD_DISKS_MAX + PD_NICS_MAX], struct pd_reply *r)
{
	struct store_device *have = NULL, all[2 * (PD_DISKS_MAX + PD_NICS_MAX)];
	unsigned counts[2] = {def->n_disks, def->n_nics}, k, i, j;
	static const char *const kinds[2] = {"disk", "net"};
	size_t n = 0, nall;
	int ret;

	ret = pd->ops->device_list(pd->st, vm_id, &have, &n);
	if (ret) {
		pd_reply_error(r, 500, "inventory error reading the devices of VM %lld",
			       (long long)vm_id);
		return ret;
	}
	nall = n < ARRAY_SIZE(all) ? n : ARRAY_SIZE(all);
	if (nall) /* have is NULL when there are none */
		memcpy(all, have, nall * sizeof(*all));
	for (k = 0, j = 0; k < 2; k++) {
		for (i = 0; i < counts[k]; i++, j++) {
			struct store_device *d = &out[j];
			unsigned num = 0;
			size_t h;

			for (h = 0; h < n; h++)
				if (!strcmp(have[h].kind, kinds[k]) && have[h].index == i)
					break;
			if (h < n) {
				*d = have[h];
				continue;
			}
			memset(d, 0, sizeof(*d));
			snprintf(d->kind, sizeof(d->kind), "%s", kinds[k]);
			d->index = i;
			do
				snprintf(d->dev_id, sizeof(d->dev_id), "%s%u", kinds[k], num++);
			while (dev_id_used(all, nall, d->dev_id));
			while (dev_slot_used(all, nall, d->slot))
				d->slot++;
			if (d->slot > PD_SLOT_LAST || nall == ARRAY_SIZE(all)) {
				pd_reply_error(r, 409, "VM %lld: no PCI slot left for %s %u",
					       (long long)vm_id, kinds[k], i);
				ret = -ENOSPC;
				goto out_free;
			}
			ret = pd->ops->device_insert(pd->st, vm_id, d);
			if (ret) {
				pd_reply_error(r, 500, "inventory error recording %s %u of VM %lld",
					       kinds[k], i, (long long)vm_id);
				goto out_free;
			}
			all[nall++] = *d;
		}
	}
out_free:
	free(have);
	return ret;
}

/* --- JSON ------------------------------------------------------------------------------ */

static json_t *vm_json(struct plinthd *pd, const struct store_vm *vm)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error err;
	json_t *obj = NULL;

	if (!def)
		return NULL;
	if (pd_vm_def_parse(vm->spec, def, &err))
		obj = json_pack("{s:s}", "name", vm->name);
	else
		obj = pd_vm_def_to_json(def);
	if (obj && def->display && pd_state_is_live(vm->state)) {
		char sock[PD_DIR_MAX + 64];

		pd_run_display(pd, vm->uuid, sock, sizeof(sock));
		json_object_set_new(obj, "display_socket", json_string(sock));
	}
	free(def);
	if (!obj)
		return NULL;
	json_object_set_new(obj, "uuid", json_string(vm->uuid));
	json_object_set_new(obj, "state", json_string(vm->state));
	if (vm->pid > 0 && pd_state_is_live(vm->state))
		json_object_set_new(obj, "pid", json_integer(vm->pid));
	if (vm->reason[0])
		json_object_set_new(obj, "reason", json_string(vm->reason));
	json_object_set_new(obj, "updated_ms", json_integer(vm->updated_ms));
	json_object_set_new(obj, "host", json_string(vm->host));
	json_object_set_new(obj, "epoch", json_integer(vm->epoch));
	return obj;
}

/* obj's "devices": the inventory's id and PCI slot of each disk and NIC of VM vm_id
 * (left out if the inventory fails: the rest of the answer stands). */
static void add_devices(struct plinthd *pd, int64_t vm_id, json_t *obj)
{
	struct store_device *devs;
	json_t *arr;
	size_t n, i;

	if (!obj || pd->ops->device_list(pd->st, vm_id, &devs, &n))
		return;
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:I,s:s,s:I}", "kind", devs[i].kind,
						     "index", (json_int_t)devs[i].index, "id",
						     devs[i].dev_id, "slot",
						     (json_int_t)devs[i].slot));
	free(devs);
	json_object_set_new(obj, "devices", arr);
}

void pd_vm_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_vm *vms;
	json_t *arr;
	size_t n, i;

	if (pd->ops->vm_list(pd->st, &vms, &n)) {
		pd_reply_error(r, 500, "inventory error listing VMs");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, vm_json(pd, &vms[i]));
	store_vm_list_free(vms, n);
	r->status = 200;
	r->body = json_pack("{s:o}", "vms", arr);
}

void pd_vm_get(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_vm vm;

	if (pd_vm_load(pd, name, &vm, NULL, r))
		return;
	r->status = 200;
	r->body = vm_json(pd, &vm);
	add_devices(pd, vm.id, r->body);
	store_vm_clear(&vm);
}

int pd_display_connect(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct store_vm vm;
	int fd, ret;

	if (!def) {
		pd_reply_error(r, 500, "out of memory");
		return -ENOMEM;
	}
	ret = pd_vm_load(pd, name, &vm, def, r);
	if (ret)
		goto out_free;
	ret = -ENOTCONN;
	if (!def->display) {
		pd_reply_error(r, 409, "VM '%s' has no display (\"display\": \"vnc\" in its "
			       "definition)", name);
		goto out_clear;
	}
	if (!pd_state_is_live(vm.state) || !run_find(pd, vm.id)) {
		pd_reply_error(r, 409, "VM '%s' is %s here: its display is there only while it "
			       "runs", name, vm.state);
		goto out_clear;
	}
	pd_run_display(pd, vm.uuid, sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		pd_reply_error(r, 502, "VM '%s': its display does not answer: %s", name,
			       strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out_clear;
	}
	ret = fd;
out_clear:
	store_vm_clear(&vm);
out_free:
	free(def);
	return ret;
}

static void make_uuid(char out[STORE_UUID_LEN])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* variant 1 */
	snprintf(out, STORE_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

void pd_vm_create(struct plinthd *pd, const struct pd_vm_def *def, struct pd_reply *r)
{
	struct store_device devs[PD_DISKS_MAX + PD_NICS_MAX];
	struct store_vm vm = {0};
	json_t *spec;
	int ret;

	if (check_def(pd, def, r))
		return;
	spec = pd_vm_def_to_json(def);
	vm.spec = spec ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(spec);
	if (!vm.spec) {
		pd_reply_error(r, 500, "out of memory");
		return;
	}
	make_uuid(vm.uuid);
	snprintf(vm.name, sizeof(vm.name), "%s", def->name);
	vm.epoch = 1;
	snprintf(vm.state, sizeof(vm.state), "defined");
	vm.updated_ms = pd_now_ms();
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd_cluster_place(pd, def, vm.host, r); /* r set on failure */
	if (!ret)
		ret = pd->ops->vm_insert(pd->st, &vm);
	if (!ret)
		ret = vm_devices(pd, vm.id, def, devs, r); /* r set on failure */
	if (!ret)
		ret = pd_event(pd, "vm.define", vm.name, "ok", "%u vCPUs, %llu MiB, host %s",
			       def->cpus, (unsigned long long)def->memory_mib, vm.host);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		if (ret == -EEXIST)
			pd_reply_error(r, 409, "a VM named '%s' already exists", def->name);
		else if (!r->body) /* else placement said why */
			pd_reply_error(r, 500, "inventory error defining VM '%s'", def->name);
	} else {
		r->status = 201;
		r->body = vm_json(pd, &vm);
		add_devices(pd, vm.id, r->body);
	}
	free(vm.spec);
}

void pd_vm_delete(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_vm vm;
	char dir[256];
	int ret;

	if (pd_vm_load(pd, name, &vm, NULL, r))
		return;
	if (pd_state_is_live(vm.state) || run_find(pd, vm.id)) {
		pd_reply_error(r, 409, "VM '%s' is %s: stop it before deleting it", name, vm.state);
		goto out_clear;
	}
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->vm_delete(pd->st, vm.id);
	if (!ret)
		ret = pd_event(pd, "vm.delete", name, "ok", "deleted");
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		pd_reply_error(r, 500, "inventory error deleting VM '%s'", name);
		goto out_clear;
	}
	/* After the commit: a crash here leaves a run directory that start-up removes. */
	pd_jail_disks_drop(pd, &vm);
	pd_run_path(pd, vm.uuid, NULL, dir, sizeof(dir));
	pd_rm_tree(dir);
	r->status = 200;
	r->body = json_pack("{s:s}", "deleted", name);
out_clear:
	store_vm_clear(&vm);
}

/* --- Spawning -------------------------------------------------------------------------- */

#define ARGV_MAX (32 + 2 * (PD_DISKS_MAX + PD_NICS_MAX))

struct spawn_args {
	char *argv[ARGV_MAX + 1];
	char bufs[ARGV_MAX][2 * PD_PATH_MAX + 128]; /* room for a path with its commas doubled */
	int argc;
};

static void arg(struct spawn_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg(struct spawn_args *a, const char *fmt, ...)
{
	va_list ap;

	if (a->argc >= ARGV_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(a->bufs[a->argc], sizeof(a->bufs[0]), fmt, ap);
	va_end(ap);
	a->argv[a->argc] = a->bufs[a->argc];
	a->argc++;
	a->argv[a->argc] = NULL;
}

/* The shim: in its own session, forks plinth, records "SHIM PID", waits, records the
 * exit. Runs after fork() of a threaded process: only plain system calls and
 * snprintf (no allocation). Never returns. */
/* The watchdog of an HA VM's shim (cluster.c feeds it): has the monotonic deadline in
 * the file contact passed? A missing file or one that is not a number ("disarmed":
 * a clean stop of plinthd) never expires. Plain system calls only (after fork). */
static bool watchdog_expired(const char *contact)
{
	char buf[32];
	struct timespec now;
	long long deadline = 0;
	ssize_t n;
	int fd = open(contact, O_RDONLY | O_CLOEXEC), i;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] < '0' || buf[0] > '9')
		return false;
	for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && deadline < (1LL << 52); i++)
		deadline = deadline * 10 + (buf[i] - '0');
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 > deadline;
}

static void shim_main(const struct spawn_args *a, int logfd, int infd, int nullfd,
		      const char *pidfile, const char *pidtmp, const char *exitfile,
		      const char *exittmp, const char *contact)
{
	sigset_t all;
	char buf[64];
	int status;
	pid_t pid;

	setsid(); /* named "pdshim-<vm id>" since the fork (vm_spawn) */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	pid = fork();
	if (pid == 0) {
		signal(SIGHUP, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		dup2(infd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execv(a->argv[0], a->argv);
		snprintf(buf, sizeof(buf), "plinthd: cannot run plinth: %s\n", strerror(errno));
		write_full(2, buf, strlen(buf));
		_exit(127);
	}
	if (pid < 0) {
		snprintf(buf, sizeof(buf), "exit 126\n");
		write_atomic(exitfile, exittmp, buf);
		_exit(1);
	}
	dup2(nullfd, 0);
	dup2(nullfd, 1);
	dup2(nullfd, 2);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	snprintf(buf, sizeof(buf), "%d %d\n", (int)getpid(), (int)pid);
	write_atomic(pidfile, pidtmp, buf);
	/* An HA VM (contact set) dies with its host's contact: killed once the watchdog
	 * deadline passes (docs/cluster.md, rule 1), whatever plinthd does. */
	for (;;) {
		struct timespec tick = {.tv_nsec = 100000000};
		pid_t w = waitpid(pid, &status, contact ? WNOHANG : 0);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			_exit(1);
		if (w == 0 && watchdog_expired(contact))
			kill(pid, SIGKILL);
		if (w == 0)
			nanosleep(&tick, NULL);
	}
	if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "signal %d\n", WTERMSIG(status));
	else
		snprintf(buf, sizeof(buf), "exit %d\n", WEXITSTATUS(status));
	write_atomic(exitfile, exittmp, buf);
	_exit(0);
}

/* s with each ',' doubled, as plinth's device options want it (vmm/virtio/spec.h),
 * into buf of size >= 2 * strlen(s) + 1. */
static void comma_escape(const char *s, char *buf)
{
	for (; *s; s++) {
		*buf++ = *s;
		if (*s == ',')
			*buf++ = ',';
	}
	*buf = '\0';
}

/* Build plinth's command line for def; 0 or a 4xx/5xx reply. */
static int build_argv(struct plinthd *pd, const struct store_vm *vm, const struct pd_vm_def *def,
		      const char *listen, struct spawn_args *a, struct pd_reply *r)
{
	struct store_device devs[PD_DISKS_MAX + PD_NICS_MAX];
	char jail[256];
	unsigned i;
	int ret;

	ret = vm_devices(pd, vm->id, def, devs, r);
	if (ret)
		return ret;

	a->argc = 0;
	arg(a, "%s", pd->plinth_bin);
	if (listen) {
		arg(a, "receive");
		arg(a, "--listen");
		arg(a, "%s", listen);
	} else {
		arg(a, "run");
	}
	/* Rule 3 (docs/cluster.md): the VMM presents the ownership epoch in its disks'
	 * leases; a migration's destination the one the switch will give it. */
	arg(a, "--epoch");
	arg(a, "%lld,vm=%s", (long long)vm->epoch + (listen ? 1 : 0), vm->uuid);
	if (pd->cluster_key_file[0]) { /* every VM may migrate between hosts */
		arg(a, "--migrate-psk");
		arg(a, "%s", pd->cluster_key_file);
	}
	arg(a, "--kernel");
	arg(a, "%s", def->kernel);
	if (def->initrd[0]) {
		arg(a, "--initrd");
		arg(a, "%s", def->initrd);
	}
	if (def->cmdline[0]) {
		arg(a, "--cmdline");
		arg(a, "%s", def->cmdline);
	}
	arg(a, "--cpus");
	arg(a, "%u", def->cpus);
	arg(a, "--memory");
	arg(a, "%lluM", (unsigned long long)def->memory_mib);
	arg(a, "--seccomp=on");
	arg(a, "--api-socket");
	pd_run_path(pd, vm->uuid, "api.sock", a->bufs[a->argc], sizeof(a->bufs[0]));
	a->argv[a->argc] = a->bufs[a->argc];
	a->argc++;
	if (def->display) {
		char sock[PD_DIR_MAX + 64];

		pd_run_display(pd, vm->uuid, sock, sizeof(sock));
		if (!sock[0] || strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			pd_reply_error(r, 409,
				       "VM '%s': its display socket's path under %s/vms is too long "
				       "for a Unix socket (%zu bytes at most)",
				       vm->name, pd->dir, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return -ENAMETOOLONG;
		}
		arg(a, "--display");
		arg(a, "vnc=unix:%s", sock);
	}
	for (i = 0; i < def->n_disks; i++) {
		const struct pd_disk *d = &def->disks[i];
		char path[PD_PATH_MAX], escaped[2 * PD_PATH_MAX];
		const char *format = d->format;
		struct store_image img;
		bool linked = false;

		if (d->image[0]) {
			if (pd->ops->image_get(pd->st, d->image, &img)) {
				pd_reply_error(r, 404, "disks[%u]: no image named '%s' in the pool",
					       i, d->image);
				return -ENOENT;
			}
			if (img.is_template && !d->readonly) {
				pd_reply_error(r, 409, "disks[%u]: image '%s' is a template", i,
					       d->image);
				return -EBUSY;
			}
			pd_image_path(pd, d->image, path, sizeof(path));
			if (!format[0])
				format = img.format;
			linked = img.backing[0] != '\0';
		} else {
			snprintf(path, sizeof(path), "%s", d->path);
		}
		comma_escape(path, escaped);
		arg(a, "--disk");
		/* A linked clone's template sits beside it in the pool: the only external
		 * file the VMM may follow (its directory, no symlinks: img/core.c). */
		arg(a, "path=%s%s%s%s%s,id=%s,addr=%u", escaped, format[0] ? ",format=" : "",
		    format, d->readonly ? ",readonly=on" : "", linked ? ",backing=on" : "",
		    devs[i].dev_id, devs[i].slot);
	}
	if (def->n_nics) {
		char nets[PD_NICS_MAX][128];

		if (pd_nics_up(pd, vm->id, vm->uuid, def, nets, r))
			return -EIO;
		for (i = 0; i < def->n_nics; i++) {
			const struct store_device *d = &devs[def->n_disks + i];

			arg(a, "--net");
			arg(a, "%s,id=%s,addr=%u", nets[i], d->dev_id, d->slot);
		}
	}
	if (pd->jail) {
		uid_t id = pd->uid_base + (uid_t)vm->id;

		pd_run_path(pd, vm->uuid, "jail", jail, sizeof(jail));
		if ((mkdir(jail, 0700) < 0 && errno != EEXIST) || chown(jail, id, id) < 0) {
			pd_nics_down(vm->id, def->n_nics);
			pd_reply_error(r, 500, "VM '%s': jail directory %s: %s", vm->name, jail,
				       strerror(errno));
			return -EIO;
		}
		arg(a, "--jail");
		arg(a, "%s", jail);
		arg(a, "--uid");
		arg(a, "%u", (unsigned)id);
		arg(a, "--gid");
		arg(a, "%u", (unsigned)id);
	}
	a->argv[a->argc] = NULL;
	return 0;
}

/*
 * Start vm's plinth: state "starting" committed, then the shim forked. On success a
 * pd_run is added (the monitor promotes it to running). 0 or -errno with r set
 * (r may be NULL: the monitor's restarts only log).
 */
static int vm_spawn(struct plinthd *pd, const struct store_vm *vm, const char *why,
		    const char *listen, struct pd_reply *r)
{
	char dir[256], pidfile[256], pidtmp[256], exitfile[256], exittmp[256], logpath[256];
	char sock[256], buf[64], contact[PD_DIR_MAX + 16];
	struct pd_reply dummy = {0};
	struct pd_vm_def *def;
	struct spawn_args *a;
	struct pd_error err;
	struct pd_run *run;
	int logfd, nullfd, infd = -1, ret, i;
	char inpath[256];
	pid_t shim;

	if (!r)
		r = &dummy;
	def = malloc(sizeof(*def));
	a = malloc(sizeof(*a));
	if (!def || !a) {
		pd_reply_error(r, 500, "out of memory");
		ret = -ENOMEM;
		goto out_free;
	}
	if (pd_vm_def_parse(vm->spec, def, &err)) {
		pd_reply_error(r, 500, "VM '%s': stored definition is invalid: %s", vm->name,
			       err.msg);
		ret = -EIO;
		goto out_free;
	}
	ret = check_def(pd, def, r);
	if (ret)
		goto out_free;
	if (mem_in_use(pd, vm->id) + def->memory_mib > pd->mem_limit_mib) {
		pd_reply_error(r, 409,
			       "VM '%s' needs %llu MiB; running VMs use %llu of this host's %llu "
			       "MiB limit",
			       vm->name, (unsigned long long)def->memory_mib,
			       (unsigned long long)mem_in_use(pd, vm->id),
			       (unsigned long long)pd->mem_limit_mib);
		ret = -EBUSY;
		goto out_free;
	}
	pd_run_path(pd, vm->uuid, NULL, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		pd_reply_error(r, 500, "VM '%s': %s: %s", vm->name, dir, strerror(errno));
		goto out_free;
	}
	pd_run_path(pd, vm->uuid, "pid", pidfile, sizeof(pidfile));
	pd_run_path(pd, vm->uuid, ".pid.tmp", pidtmp, sizeof(pidtmp));
	pd_run_path(pd, vm->uuid, "exit", exitfile, sizeof(exitfile));
	pd_run_path(pd, vm->uuid, ".exit.tmp", exittmp, sizeof(exittmp));
	pd_run_path(pd, vm->uuid, "console.log", logpath, sizeof(logpath));
	pd_run_path(pd, vm->uuid, "api.sock", sock, sizeof(sock));
	snprintf(contact, sizeof(contact), "%s/contact", pd->dir);
	ret = build_argv(pd, vm, def, listen, a, r);
	if (ret)
		goto out_free;
	unlink(pidfile);
	unlink(exitfile);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* The console's input: a FIFO plinth holds open read-write (never EOF), which
	 * POST /v1/vms/{name}/console writes to. */
	pd_run_path(pd, vm->uuid, "console.in", inpath, sizeof(inpath));
	unlink(inpath);
	if (mkfifo(inpath, 0600) == 0)
		infd = open(inpath, O_RDWR | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0 || infd < 0) {
		ret = -errno;
		pd_reply_error(r, 500, "VM '%s': %s: %s", vm->name, logpath, strerror(errno));
		goto out_close;
	}
	/* Invariant 2: the state is on disk before the process exists (a migration's
	 * destination writes nothing: the source owns the VM until the switch). */
	ret = listen ? 0 : vm_set_state(pd, vm->id, vm->name, "starting", 0, why, "vm.start", "ok");
	if (ret) {
		pd_reply_error(r, 500, "inventory error starting VM '%s'", vm->name);
		goto out_close;
	}
	/* The shim has its name from its first instant (a fork copies the thread's), so a
	 * plinthd started after a SIGKILL here finds it (find_shim) and never starts the VM
	 * a second time. */
	{
		char name[16], saved[16] = "";

		shim_name(vm->id, name, sizeof(name));
		prctl(PR_GET_NAME, saved, 0, 0, 0);
		prctl(PR_SET_NAME, name, 0, 0, 0);
		shim = fork();
		if (shim == 0)
			shim_main(a, logfd, infd, nullfd, pidfile, pidtmp, exitfile, exittmp,
				  def->ha ? contact : NULL);
		prctl(PR_SET_NAME, saved, 0, 0, 0);
	}
	if (shim < 0) {
		ret = -errno;
		if (!listen)
			vm_set_state(pd, vm->id, vm->name, "crashed", 0, "fork failed",
				     "vm.crashed", "failed");
		pd_reply_error(r, 500, "VM '%s': fork: %s", vm->name, strerror(-ret));
		goto out_close;
	}
	run = run_add(pd, vm, 0, shim);
	if (!run) { /* the monitor can't watch it: the next plinthd start adopts it */
		pd_reply_error(r, 500, "out of memory");
		ret = -ENOMEM;
		goto out_close_fds;
	}
	/* The shim writes the pidfile at once; wait for it (bounded) to learn plinth's pid. */
	for (i = 0; i < 500; i++) {
		int s, p;

		if (pd_read_small(pidfile, buf, sizeof(buf)) > 0 && sscanf(buf, "%d %d", &s, &p) == 2) {
			run->pid = p;
			break;
		}
		usleep(2000);
	}
	run->incoming = listen != NULL;
	run->incoming_epoch = vm->epoch;
	if (run->pid && !listen)
		vm_set_state(pd, vm->id, vm->name, "starting", run->pid, why, NULL, NULL);
	ret = 0;
	goto out_close_fds;
out_close:
	pd_nics_down(vm->id, def->n_nics); /* no process: its taps go */
out_close_fds:
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	if (infd >= 0)
		close(infd);
out_free:
	free(a);
	free(def);
	json_decref(dummy.body);
	return ret;
}

/* --- Exits ----------------------------------------------------------------------------- */

static const char *sig_name(int sig)
{
	const char *d = sigabbrev_np(sig);

	return d ? d : "?";
}

/* Append ": LINE" with the last line plinth wrote (its own error, usually). */
static void append_last_line(struct plinthd *pd, const char *uuid, char *reason, size_t size)
{
	char path[256], tail[200], *line;
	size_t n = strlen(reason);
	ssize_t got = 0;
	off_t end;
	int fd;

	pd_run_path(pd, uuid, "console.log", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > 0)
		got = pread(fd, tail, sizeof(tail) - 1, end > (off_t)sizeof(tail) - 1
								? end - (off_t)sizeof(tail) + 1
								: 0);
	close(fd);
	if (got <= 0)
		return;
	tail[got] = '\0';
	while (got > 0 && (tail[got - 1] == '\n' || tail[got - 1] == '\r'))
		tail[--got] = '\0';
	line = strrchr(tail, '\n');
	line = line ? line + 1 : tail;
	str_printable(line);
	if (*line)
		snprintf(reason + n, size - n, ": %s", line);
}

/* plinth of run has ended (or was not found): settle the state, apply the policy. */
static void vm_exited(struct plinthd *pd, struct pd_run *run)
{
	char exitfile[256], sock[256], buf[64], reason[STORE_REASON_MAX];
	struct store_vm vm;
	struct pd_vm_def *def = NULL;
	struct pd_error err;
	bool crashed = false, restart = false, reset = false, asked = run->stop_requested;
	bool rebooting = run->reboot_pending && pd_mono_ms() - run->reboot_ms < REBOOT_WINDOW_MS;
	int64_t window = run->window_ms, now = pd_mono_ms();
	unsigned restarts = run->restarts;
	char name[STORE_NAME_MAX];
	int code = 0, n;

	snprintf(name, sizeof(name), "%s", run->name);

	if (run->shim > 0)
		waitpid(run->shim, NULL, WNOHANG); /* ours if we spawned it: reap */
	pd_run_path(pd, run->uuid, "exit", exitfile, sizeof(exitfile));
	pd_run_path(pd, run->uuid, "api.sock", sock, sizeof(sock));
	/* A migration's two sides: the destination's process before the VM is owned here,
	 * and the source's after it handed off (exit 0), write nothing: the inventory is
	 * the owner's, and cluster_migrate.c settles it. */
	{
		bool elsewhere = false;

		code = -1;
		if (pd_read_small(exitfile, buf, sizeof(buf)) <= 0 ||
		    sscanf(buf, "exit %d", &code) != 1)
			code = -1;
		/* Moved to another host (a migration's switch, an HA restart): the row is
		 * the new owner's, the epoch says so; this host writes nothing. */
		if (!run->incoming && pd->ops->vm_get(pd->st, run->name, &vm) == 0) {
			elsewhere = strcmp(vm.host, pd->host) != 0;
			store_vm_clear(&vm);
		}
		if (!run->incoming && !elsewhere && !(run->migrating && code == 0))
			goto settle;
		log_info("VM %s: %s (exit %d)", run->name,
			 run->incoming ? "the migration's destination process ended"
			 : elsewhere   ? "this copy ended; the VM belongs to another host now"
				       : "handed off to the migration's destination", code);
		unlink(sock);
		pd_nics_down(run->vm_id, PD_NICS_MAX);
		run_remove(pd, run);
		return;
	}
settle:
	code = 0;
	if (pd_read_small(exitfile, buf, sizeof(buf)) > 0 && sscanf(buf, "exit %d", &code) == 1) {
		if (code == 0)
			snprintf(reason, sizeof(reason), "plinth exited 0 (the guest powered off)");
		else if (code == PLINTH_EXIT_RESET)
			snprintf(reason, sizeof(reason), "the guest reset (plinth exited %d)", code);
		else
			snprintf(reason, sizeof(reason), "plinth exited with status %d", code);
		crashed = code != 0 && code != PLINTH_EXIT_RESET;
		reset = code == PLINTH_EXIT_RESET;
	} else if (pd_read_small(exitfile, buf, sizeof(buf)) > 0 &&
		   sscanf(buf, "signal %d", &code) == 1) {
		snprintf(reason, sizeof(reason), "plinth was killed by signal %d (SIG%s)", code,
			 sig_name(code));
		crashed = true;
	} else {
		snprintf(reason, sizeof(reason), "the VM's process ended; its exit status was not "
						 "recorded (its shim is gone)");
		crashed = true;
	}
	if (!asked && !reset) /* plinth's own last line says why (its error) */
		append_last_line(pd, run->uuid, reason, sizeof(reason));
	/* A jailed plinth can't re-open its disks and taps on a guest reset: it exits 3
	 * and plinthd starts the VM again, whatever the restart policy (a reset is not a
	 * power-off); one asked for through reboot is not counted against the window. */
	rebooting = rebooting && (reset || code == 0);
	if (asked) {
		crashed = false;
		n = (int)strlen(reason);
		snprintf(reason + n, sizeof(reason) - (size_t)n, ", as asked");
	}
	unlink(sock);
	pd_nics_down(run->vm_id, PD_NICS_MAX);
	if (pd->ops->vm_get(pd->st, run->name, &vm) == 0) {
		def = malloc(sizeof(*def));
		if (def && !pd_vm_def_parse(vm.spec, def, &err) && !asked) {
			if (reset || (rebooting && !crashed))
				restart = true;
			else if (def->restart == PD_RESTART_ALWAYS)
				restart = true;
			else if (def->restart == PD_RESTART_ON_CRASH && crashed)
				restart = true;
		}
		vm_set_state(pd, run->vm_id, run->name, crashed ? "crashed" : "stopped", 0, reason,
			     crashed ? "vm.crashed" : "vm.stopped", crashed ? "failed" : "ok");
		log_info("VM %s: %s", run->name, reason);
		store_vm_clear(&vm);
	}
	free(def);
	run_remove(pd, run);
	if (restart && !rebooting) {
		if (now - window > RESTART_WINDOW_MS) {
			window = now;
			restarts = 0;
		}
		if (restarts >= RESTART_MAX) {
			pd_event(pd, "vm.restart", name, "failed",
				 "restart policy gave up: %d restarts within %d s", RESTART_MAX,
				 RESTART_WINDOW_MS / 1000);
			return;
		}
	}
	if (restart && pd->ops->vm_get(pd->st, name, &vm) == 0) {
		if (vm_spawn(pd, &vm,
			     rebooting ? "reboot" : reset ? "the guest reset" : "restart policy",
			     NULL, NULL))
			log_error("VM %s: restart failed", name);
		store_vm_clear(&vm);
		run = pd->runs;
		if (run && !strcmp(run->name, name)) {
			run->window_ms = window;
			run->restarts = restarts + 1;
		}
	}
}

int pd_vm_receive(struct plinthd *pd, const struct store_vm *vm, const char *listen,
		  struct pd_reply *r)
{
	return vm_spawn(pd, vm, "migration", listen, r);
}

void pd_run_exited(struct plinthd *pd, struct pd_run *run)
{
	vm_exited(pd, run);
}

/* --- Actions --------------------------------------------------------------------------- */

/* One request to the VM's API; 0 with *status, or -errno with err. */
int pd_vm_api(struct plinthd *pd, const struct pd_run *run, const char *method, const char *path,
	      const char *req, int *status, json_t **body, char *err, size_t errlen)
{
	char sock[256], *resp = NULL;
	int ret;

	pd_run_path(pd, run->uuid, "api.sock", sock, sizeof(sock));
	ret = ctl_request(sock, method, path, req, API_TIMEOUT_MS, status, &resp, err, errlen);
	if (ret)
		return ret;
	if (body)
		*body = json_loads(resp, 0, NULL);
	if (*status >= 300)
		snprintf(err, errlen, "%s", resp);
	free(resp);
	return 0;
}

/* Wait up to ms for run's process to end, then settle it. True if it ended. */
static bool wait_exit(struct plinthd *pd, struct pd_run *run, int ms)
{
	struct pollfd p = {.fd = run->pidfd, .events = POLLIN};

	if (run->pidfd < 0 || poll(&p, 1, ms) <= 0)
		return false;
	vm_exited(pd, run);
	return true;
}

bool pd_run_reap(struct plinthd *pd, struct pd_run *run)
{
	struct pollfd p = {.fd = run->pidfd, .events = POLLIN};

	if (run->pidfd >= 0 && poll(&p, 1, 0) <= 0)
		return false; /* (no pidfd: settled at once, as the tick does) */
	vm_exited(pd, run);
	return true;
}

void pd_vm_action(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	const char *act = pd_action_name(req->action);
	struct store_vm vm;
	struct pd_run *run;
	char err[512], ev[48];
	int status = 0;

	if (pd_vm_load(pd, req->name, &vm, NULL, r))
		return;
	if (pd_vm_elsewhere(pd, &vm, r))
		goto out_clear;
	run = run_find(pd, vm.id);
	if (run && (run->migrating || run->incoming)) {
		pd_reply_error(r, 409, "VM '%s' is migrating: try again when it is over", vm.name);
		goto out_clear;
	}
	snprintf(ev, sizeof(ev), "vm.%s", act);
	if (req->action == PD_START) {
		if (run) {
			pd_reply_error(r, 409, "VM '%s' is already %s", vm.name, vm.state);
			goto out_clear;
		}
		if (vm_spawn(pd, &vm, "started by request", NULL, r))
			goto out_clear;
		goto out_reply;
	}
	if (!run) {
		pd_reply_error(r, 409, "VM '%s' is not running (%s)", vm.name, vm.state);
		goto out_clear;
	}
	switch (req->action) {
	case PD_KILL:
		run->stop_requested = true;
		vm_set_state(pd, vm.id, vm.name, "stopping", run->pid, "kill requested", ev, "ok");
		if (run->pid > 0)
			kill(run->pid, SIGKILL);
		wait_exit(pd, run, 5000);
		goto out_reply;
	case PD_STOP:
		if (!strcmp(vm.state, "starting")) {
			pd_reply_error(r, 409, "VM '%s' is still starting; kill it or wait", vm.name);
			goto out_clear;
		}
		run->stop_requested = true;
		run->deadline_ms = pd_mono_ms() + (int64_t)req->stop_timeout * 1000;
		vm_set_state(pd, vm.id, vm.name, "stopping", run->pid, "stop requested (ACPI)",
			     ev, "ok");
		if (req->stop_timeout == 0 ||
		    pd_vm_api(pd, run, "POST", "/v1/vm/shutdown", NULL, &status, NULL, err, sizeof(err)) ||
		    status >= 300)
			run->deadline_ms = 0; /* the monitor kills it now */
		goto out_reply;
	case PD_REBOOT:
	case PD_PAUSE:
	case PD_RESUME:
		if (strcmp(vm.state, "running") && strcmp(vm.state, "paused")) {
			pd_reply_error(r, 409, "VM '%s' is %s", vm.name, vm.state);
			goto out_clear;
		}
		if (req->action == PD_REBOOT) {
			run->reboot_pending = true;
			run->reboot_ms = pd_mono_ms();
		}
		if (pd_vm_api(pd, run,
			      "POST", req->action == PD_REBOOT  ? "/v1/vm/reset"
				      : req->action == PD_PAUSE ? "/v1/vm/pause"
								: "/v1/vm/resume",
			      NULL, &status, NULL, err, sizeof(err))) {
			run->reboot_pending = false;
			pd_reply_error(r, 502, "VM '%s': its API did not answer: %s", vm.name, err);
			goto out_clear;
		}
		if (status == 409) {
			pd_reply_error(r, 409, "VM '%s' is already %s", vm.name,
				       req->action == PD_PAUSE ? "paused" : "running");
			goto out_clear;
		}
		if (status >= 300) {
			run->reboot_pending = false;
			pd_reply_error(r, 502, "VM '%s': %s failed: %s", vm.name, act, err);
			goto out_clear;
		}
		if (req->action != PD_REBOOT)
			vm_set_state(pd, vm.id, vm.name,
				     req->action == PD_PAUSE ? "paused" : "running", run->pid, NULL,
				     ev, "ok");
		else
			pd_event(pd, ev, vm.name, "ok", "reset requested");
		goto out_reply;
	default:
		break;
	}
out_reply:
	store_vm_clear(&vm);
	pd_vm_get(pd, req->name, r);
	if (r->status == 200 && req->action == PD_START)
		r->status = 202;
	return;
out_clear:
	store_vm_clear(&vm);
}

void pd_vm_console(struct plinthd *pd, const char *name, int64_t from, struct pd_reply *r)
{
	char path[256], *buf;
	struct store_vm vm;
	off_t size = 0, off = 0;
	ssize_t n = 0, i;
	int fd;

	if (pd_vm_load(pd, name, &vm, NULL, r))
		return;
	pd_run_path(pd, vm.uuid, "console.log", path, sizeof(path));
	store_vm_clear(&vm);
	buf = malloc(CONSOLE_TAIL + 1);
	if (!buf) {
		pd_reply_error(r, 500, "out of memory");
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		size = lseek(fd, 0, SEEK_END);
		/* No offset: the last 64 KiB; an offset: from there (at most 64 KiB; one
		 * past the end, as after a VM's log was removed, starts again at 0). */
		off = from < 0 ? (size > CONSOLE_TAIL ? size - CONSOLE_TAIL : 0)
			       : (from > size ? 0 : from);
		n = pread(fd, buf, CONSOLE_TAIL, off);
		close(fd);
	}
	if (n < 0)
		n = 0;
	/* JSON strings are UTF-8: bytes beyond ASCII (a guest's, possibly cut in the
	 * middle of a character by the 64 KiB window) are shown as '?'. */
	for (i = 0; i < n; i++)
		if ((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	r->status = 200;
	r->body = json_pack("{s:s, s:s%, s:I}", "name", name, "console", buf, (size_t)n, "offset",
			    (json_int_t)(off + n));
	free(buf);
}

void pd_vm_console_input(struct plinthd *pd, const char *name, const char *input,
			 struct pd_reply *r)
{
	char path[256];
	struct store_vm vm;
	size_t len = strlen(input);
	ssize_t n;
	int fd;

	if (pd_vm_load(pd, name, &vm, NULL, r))
		return;
	if (!run_find(pd, vm.id)) {
		pd_reply_error(r, 409, "VM '%s' is not running (%s)", name, vm.state);
		store_vm_clear(&vm);
		return;
	}
	pd_run_path(pd, vm.uuid, "console.in", path, sizeof(path));
	store_vm_clear(&vm);
	fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		pd_reply_error(r, 409, "VM '%s' has no console input (started by an older "
				       "plinthd?)", name);
		return;
	}
	n = write(fd, input, len);
	close(fd);
	if (n < 0) {
		pd_reply_error(r, errno == EAGAIN ? 409 : 500, "VM '%s': console input: %s", name,
			       errno == EAGAIN ? "the guest is not reading" : strerror(errno));
		return;
	}
	r->status = 200;
	r->body = json_pack("{s:I}", "written", (json_int_t)n);
}

/* --- Monitor --------------------------------------------------------------------------- */

static void promote(struct plinthd *pd, struct pd_run *run)
{
	char err[256];
	json_t *body = NULL;
	int status = 0;

	if (pd_vm_api(pd, run, "GET", "/v1/vm", NULL, &status, &body, err, sizeof(err)) ||
	    status != 200) {
		json_decref(body);
		if (pd_mono_ms() > run->deadline_ms) {
			log_error("VM %s: its API did not answer within %d s; killing it", run->name,
				  START_TIMEOUT_MS / 1000);
			kill(run->pid, SIGKILL);
			run->deadline_ms = INT64_MAX;
		}
		return;
	}
	{
		json_t *st = json_object_get(body, "state");
		bool paused = json_is_string(st) && !strcmp(json_string_value(st), "paused");

		vm_set_state(pd, run->vm_id, run->name, paused ? "paused" : "running", run->pid,
			     NULL, "vm.running", "ok");
	}
	json_decref(body);
}

bool pd_migrating_away(struct plinthd *pd, const char *name)
{
	const struct pd_task *t;

	for (t = pd->tasks; t; t = t->next)
		if (!t->done && !strcmp(t->action, "vm.migrate") && !strcmp(t->object, name))
			return true;
	return false;
}

/*
 * Once a second: start what this host owns and must run but does not (HA, rule 2):
 * a VM the leader moved here ("starting" without a process), and an HA VM this host
 * stopped itself when it was isolated that is still its own (claimed again first,
 * epoch + 1 compare-and-set, so that a leader moving it at the same moment wins or
 * loses as a whole).
 */
static void start_owned(struct plinthd *pd)
{
	struct store_vm *vms;
	size_t n, i;

	if (pd_mono_ms() - pd->owned_scan_ms < 1000 || pd_cluster_isolated(pd->cluster))
		return;
	pd->owned_scan_ms = pd_mono_ms();
	if (pd->ops->vm_list(pd->st, &vms, &n))
		return;
	for (i = 0; i < n; i++) {
		struct store_vm *vm = &vms[i];
		bool moved_here = !strcmp(vm->state, "starting") && !vm->pid;
		bool fenced = (!strcmp(vm->state, "running") || !strcmp(vm->state, "paused")) &&
			      def_ha(vm);

		if (strcmp(vm->host, pd->host) || run_find(pd, vm->id) || (!moved_here && !fenced) ||
		    pd_migrating_away(pd, vm->name))
			continue;
		if (fenced && pd->ops->vm_set_owner(pd->st, vm->id, pd->host, vm->epoch))
			continue;
		if (fenced)
			vm->epoch++;
		log_info("VM %s: %s", vm->name,
			 moved_here ? "restarted here by HA" : "restarted after this host's isolation");
		vm_spawn(pd, vm, moved_here ? vm->reason : "HA: restarted after the isolation of its host",
			 NULL, NULL);
	}
	store_vm_list_free(vms, n);
}

/* Rule 1 and the epoch: a copy this host must not run any more is killed. */
static bool must_stop(struct plinthd *pd, struct pd_run *run, const struct store_vm *vm)
{
	const char *why = NULL;

	if (run->pid <= 0 || run->incoming || run->migrating || run->stop_requested)
		return false;
	if (vm && strcmp(vm->host, pd->host))
		why = "its VM belongs to another host now (a newer epoch)";
	else if (run->ha && pd_cluster_isolated(pd->cluster))
		why = "this host is isolated from the cluster (HA isolation response)";
	if (!why)
		return false;
	log_error("VM %s: killing this host's copy: %s", run->name, why);
	kill(run->pid, SIGKILL);
	run->stop_requested = true;
	return true;
}

void pd_vms_tick(struct plinthd *pd)
{
	struct pd_run *run, *next;

	start_owned(pd);
	for (run = pd->runs; run; run = next) {
		struct pollfd p = {.fd = run->pidfd, .events = POLLIN};
		struct store_vm vm;

		next = run->next;
		if (run->pidfd < 0 || poll(&p, 1, 0) > 0) {
			vm_exited(pd, run);
			next = pd->runs; /* the list changed (a restart adds) */
			continue;
		}
		if (pd->ops->vm_get(pd->st, run->name, &vm)) {
			must_stop(pd, run, NULL); /* isolated: the inventory is out of reach */
			continue;
		}
		if (must_stop(pd, run, &vm)) {
			store_vm_clear(&vm);
			continue;
		}
		if (run->incoming) {
			/* Received here: ours once the source moved the owner (epoch + 1). */
			if (!strcmp(vm.host, pd->host) && vm.epoch > run->incoming_epoch) {
				run->incoming = false;
				vm_set_state(pd, run->vm_id, run->name, "running", run->pid,
					     "migrated here", "vm.running", "ok");
			}
			store_vm_clear(&vm);
			continue;
		}
		if (!strcmp(vm.state, "starting") && run->pid > 0)
			promote(pd, run);
		else if (!strcmp(vm.state, "starting") && !run->pid) {
			/* pidfile not seen at spawn time: read it now */
			pid_t shim;

			run->pid = find_plinth(pd, run->uuid, &shim);
		}
		if (!strcmp(vm.state, "stopping") && run->deadline_ms <= pd_mono_ms() &&
		    run->pid > 0) {
			log_info("VM %s: stop timeout; killing it", run->name);
			kill(run->pid, SIGKILL);
			run->deadline_ms = INT64_MAX;
		}
		store_vm_clear(&vm);
	}
}

void pd_run_settle(struct plinthd *pd, const struct store_vm *vm)
{
	struct pd_run *run = run_find(pd, vm->id);

	if (!run)
		run = run_add(pd, vm, 0, 0);
	if (run && run->pidfd < 0)
		vm_exited(pd, run);
}

/* --- Start-up -------------------------------------------------------------------------- */

/* Remove run directories of VMs the inventory no longer has (a delete cut short). */
static void clean_run_dirs(struct plinthd *pd, struct store_vm *vms, size_t n)
{
	char path[256];
	struct dirent *de;
	DIR *d;
	size_t i;

	snprintf(path, sizeof(path), "%s/vms", pd->dir);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		bool known = false;
		pid_t shim;

		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < n && !known; i++)
			known = !strcmp(vms[i].uuid, de->d_name);
		if (known || find_plinth(pd, de->d_name, &shim))
			continue;
		pd_run_path(pd, de->d_name, NULL, path, sizeof(path));
		log_info("removing the run directory of a deleted VM: %s", path);
		pd_rm_tree(path);
	}
	closedir(d);
}

/* Is this the first plinthd start since the host booted? (autostart) */
static bool first_start_since_boot(struct plinthd *pd)
{
	char path[256], tmp[256], now[64], was[64] = "";

	if (pd_read_small("/proc/sys/kernel/random/boot_id", now, sizeof(now)) <= 0)
		return false;
	snprintf(path, sizeof(path), "%s/boot_id", pd->dir);
	snprintf(tmp, sizeof(tmp), "%s/.boot_id.tmp", pd->dir);
	pd_read_small(path, was, sizeof(was));
	if (!strcmp(was, now))
		return false;
	write_atomic(path, tmp, now);
	return true;
}

static bool def_autostart(const struct store_vm *vm)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error err;
	bool yes = def && !pd_vm_def_parse(vm->spec, def, &err) && def->autostart;

	free(def);
	return yes;
}

int pd_vms_init(struct plinthd *pd)
{
	struct store_vm *vms;
	size_t n, i;
	bool boot = first_start_since_boot(pd);
	char path[256];

	snprintf(path, sizeof(path), "%s/vms", pd->dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (pd->ops->vm_list(pd->st, &vms, &n))
		return -EIO;
	clean_run_dirs(pd, vms, n);
	for (i = 0; i < n; i++) {
		struct store_vm *vm = &vms[i];
		struct store_migration mig;
		struct pd_run *run;
		pid_t shim, pid;
		bool live;
		int k;

		live = pd->ops->migration_get(pd->st, vm->id, &mig) == 0 &&
		       strcmp(mig.phase, "switched") && strcmp(mig.phase, "aborted");
		pid = find_plinth(pd, vm->uuid, &shim);
		if (strcmp(vm->host, pd->host)) {
			/* Another host's (a shared inventory). A copy here is a migration's
			 * destination still waiting for its source's decision (watched
			 * again: cluster_migrate.c), or one that must not run. */
			if (pid <= 0)
				continue;
			if (live && !strcmp(mig.destination, pd->host) && vm->epoch == mig.epoch &&
			    (run = run_add(pd, vm, pid, shim))) {
				run->incoming = true;
				run->incoming_epoch = mig.epoch;
				log_info("VM %s: adopted the receiving end of its migration from %s "
					 "(pid %d, phase %s)", vm->name, mig.source, (int)pid,
					 mig.phase);
			} else {
				log_error("VM %s: killing this host's copy (pid %d): the VM belongs to "
					  "host '%s'", vm->name, (int)pid, vm->host);
				kill(pid, SIGKILL);
			}
			continue;
		}
		live = live && !strcmp(mig.source, pd->host);
		/* A start under way when plinthd died: its shim is there, plinth not yet
		 * executed. Wait for it (bounded) rather than start the VM twice. */
		for (k = 0; !pid && pd_state_is_live(vm->state) && k < 100 && find_shim(vm->id); k++) {
			usleep(50000);
			pid = find_plinth(pd, vm->uuid, &shim);
		}
		if (pid > 0) {
			/* Re-adopt: the process runs; watch it again (invariant 1). */
			run = run_add(pd, vm, pid, shim);
			if (!run)
				continue;
			run->stop_requested = !strcmp(vm->state, "stopping");
			if (run->stop_requested)
				run->deadline_ms = run->started_ms +
						   PD_STOP_TIMEOUT_DEFAULT * 1000LL;
			/* Its migration's recovery decides (an exit 0 is its hand-off). */
			run->migrating = live;
			log_info("VM %s: adopted its running plinth (pid %d)", vm->name, (int)pid);
			/* A VM not yet seen running is promoted by the monitor. */
			if (!pd_state_is_live(vm->state) || vm->pid != pid)
				vm_set_state(pd, vm->id, vm->name,
					     pd_state_is_live(vm->state) ? vm->state : "starting", pid,
					     "adopted after a plinthd restart", "vm.adopt", "ok");
			continue;
		}
		if (!pd_state_is_live(vm->state)) {
			if (boot && def_autostart(vm))
				vm_spawn(pd, vm, "autostart", NULL, NULL);
			continue;
		}
		if (!strcmp(vm->state, "starting") && !vm->pid) {
			/* The start was cut short before plinth existed: do it again. */
			vm_spawn(pd, vm, "start interrupted by a plinthd restart; started again",
				 NULL, NULL);
			continue;
		}
		/* Handed off, or died, in a migration: its recovery settles it. */
		if (live)
			continue;
		/* It ran and is gone: settle from its exit file like a live exit. */
		run = run_add(pd, vm, 0, 0);
		if (!run)
			continue;
		run->stop_requested = !strcmp(vm->state, "stopping");
		vm_exited(pd, run);
	}
	store_vm_list_free(vms, n);
	return 0;
}
