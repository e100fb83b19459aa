// SPDX-License-Identifier: MIT
#include "vmstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <linux/kvm.h>

#include "log.h"
#include "util.h"
#include "virtio/blk.h"
#include "virtio/devices.h"
#include "virtio/virtio-pci.h"

#define CFG_STR_MAX 4096     /* bytes in a saved path or command line */
#define MSRS_MAX    1024     /* MSRs per vCPU we are prepared to carry */
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* ---- config ---- */

static void put_str(struct state_writer *w, const char *s)
{
	state_put_bytes(w, s ? s : "", s ? (uint32_t)strlen(s) : 0);
}

/*
 * "config.2": the machine, then per device its class, id, PCI slot and canonical
 * spec. ("config", the format before ids, had a kind number and the spec: read
 * with the ids and slots a command line without id= and addr= would give.)
 * "config.3" (VM_CONFIG_MIGRATION): the same fields, heading a migration stream that
 * may hold "ram-zero" sections, which a build before them would skip: it refuses the
 * stream at its first section instead of loading a guest with stale pages.
 */
int vm_state_save_config(const struct vm_config *cfg, struct state_writer *w)
{
	return vm_state_save_config_as(cfg, "config.2", w);
}

int vm_state_save_config_as(const struct vm_config *cfg, const char *type,
			    struct state_writer *w)
{
	unsigned int i;

	state_writer_begin_section(w, type, 0, 0);
	state_put_u32(w, cfg->cpus);
	state_put_u64(w, cfg->memory);
	state_put_bool(w, cfg->no_reboot);
	put_str(w, cfg->kernel);
	put_str(w, cfg->initrd);
	put_str(w, cfg->cmdline);
	state_put_u32(w, cfg->nr_devices);
	for (i = 0; i < cfg->nr_devices; i++) {
		put_str(w, cfg->devices[i].cls->name);
		put_str(w, cfg->devices[i].id);
		state_put_u32(w, cfg->devices[i].slot);
		put_str(w, cfg->devices[i].spec);
	}
	return state_writer_end_section(w);
}

/* A string field: no NUL inside, at most CFG_STR_MAX bytes; "" becomes NULL if empty_null. */
static int get_str(struct state_reader *r, const char *what, bool empty_null, char **out)
{
	const void *p;
	uint32_t len;
	int ret = state_get_bytes_ref(r, &p, &len);

	*out = NULL;
	if (ret)
		return ret;
	if (len > CFG_STR_MAX || memchr(p, 0, len))
		return state_reader_fail(r, -EINVAL, "bad %s", what);
	if (!len && empty_null)
		return 0;
	*out = strndup(p, len);
	return *out ? 0 : state_reader_fail(r, -ENOMEM, "out of memory");
}

/* The device kinds of the old "config" section, by number. */
static const char *const old_kinds[] = { "disk", "net", "console", "rng", "vsock" };

/* One device of a "config" (v1) or "config.2" (v2) section into d (conf stays NULL). */
static int read_device(struct state_reader *r, bool v2, struct dev_config *d)
{
	char *name = NULL, *id = NULL;
	uint32_t kind, slot = 0;
	int ret;

	d->addr = -1;
	if (!v2) {
		ret = state_get_u32(r, &kind);
		if (ret)
			return ret;
		if (kind >= ARRAY_SIZE(old_kinds))
			return state_reader_fail(r, -EINVAL, "device kind %u", kind);
		d->cls = dev_class_find(old_kinds[kind]);
		return get_str(r, "device", false, &d->spec);
	}
	if ((ret = get_str(r, "device kind", false, &name)) ||
	    (ret = get_str(r, "device id", false, &id)) || (ret = state_get_u32(r, &slot)) ||
	    (ret = get_str(r, "device", false, &d->spec)))
		goto out_free;
	d->cls = dev_class_find(name);
	if (!d->cls)
		ret = state_reader_fail(r, -EINVAL, "device kind '%.32s'", name);
	else if (!dev_id_valid(id))
		ret = state_reader_fail(r, -EINVAL, "device id '%.32s'", id);
	else if (slot < DEV_SLOT_FIRST || slot > DEV_SLOT_LAST)
		ret = state_reader_fail(r, -EINVAL, "device %s in PCI slot %u", id, slot);
	else
		memcpy(d->id, id, strlen(id) + 1);
	d->slot = slot;
	d->addr = (int)slot;
out_free:
	free(name);
	free(id);
	return ret;
}

int vm_state_read_config(struct state_reader *r, struct vm_saved_config *out)
{
	struct vm_config *cfg = &out->cfg;
	uint32_t cpus, nr, i;
	uint64_t mem;
	bool v2;
	int ret;

	memset(out, 0, sizeof(*out));
	cfg->kvm_fd = cfg->kernel_fd = cfg->initrd_fd = -1; /* opened by path (vm_create) */
	ret = state_reader_next_section(r);
	if (ret < 0)
		return ret;
	if (ret == 0 || (strcmp(state_reader_type(r), "config") &&
			 strcmp(state_reader_type(r), "config.2") &&
			 strcmp(state_reader_type(r), VM_CONFIG_MIGRATION)))
		return state_reader_fail(r, -EPROTO, "the first section is not the configuration");
	v2 = strcmp(state_reader_type(r), "config") != 0; /* config.2 and config.3 */
	if (state_get_u32(r, &cpus) || state_get_u64(r, &mem) || state_get_bool(r, &cfg->no_reboot))
		return state_reader_fail(r, -EPROTO, "bad configuration");
	if (cpus < 1 || cpus > VM_MAX_CPUS)
		return state_reader_fail(r, -EINVAL, "%u vCPUs", cpus);
	if (mem < 32 * MiB || mem % (4 * KiB) || mem > (1ULL << 46))
		return state_reader_fail(r, -EINVAL, "guest memory size %llu",
					 (unsigned long long)mem);
	cfg->cpus = cpus;
	cfg->memory = mem;
	if ((ret = get_str(r, "kernel path", false, &out->kernel)) ||
	    (ret = get_str(r, "initrd path", true, &out->initrd)) ||
	    (ret = get_str(r, "command line", false, &out->cmdline)))
		return ret;
	if (!out->kernel[0])
		return state_reader_fail(r, -EINVAL, "no kernel path");
	cfg->kernel = out->kernel;
	cfg->initrd = out->initrd;
	cfg->cmdline = out->cmdline;
	ret = state_get_u32(r, &nr);
	if (ret)
		return ret;
	if (nr > VM_MAX_DEVICES)
		return state_reader_fail(r, -EINVAL, "%u devices", nr);
	for (i = 0; i < nr; i++) {
		ret = read_device(r, v2, &cfg->devices[i]);
		cfg->nr_devices++; /* freed in every case */
		if (ret)
			return ret;
	}
	for (i = 0; v2 && i < nr; i++) {
		unsigned int j;

		for (j = 0; j < i; j++)
			if (!strcmp(cfg->devices[i].id, cfg->devices[j].id) ||
			    cfg->devices[i].slot == cfg->devices[j].slot)
				return state_reader_fail(r, -EINVAL, "devices %s and %s share an "
							 "id or a slot", cfg->devices[j].id,
							 cfg->devices[i].id);
	}
	/* The old format: the ids and slots of a command line in that order, without any. */
	if (!v2 && dev_configs_finish(cfg->devices, cfg->nr_devices))
		return state_reader_fail(r, -EINVAL, "too many devices");
	return state_reader_end_section(r);
}

/* The device of cfg with this id, or NULL. */
static const struct dev_config *device_by_id(const struct vm_config *cfg, const char *id)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_devices; i++)
		if (!strcmp(cfg->devices[i].id, id))
			return &cfg->devices[i];
	return NULL;
}

int vm_state_check_config(struct state_reader *r, const struct vm_config *cfg)
{
	struct vm_saved_config saved;
	const struct vm_config *s = &saved.cfg;
	const struct dev_config *sd, *d;
	unsigned int i;
	int ret = vm_state_read_config(r, &saved);

	if (ret)
		goto out_free;
	if (s->cpus != cfg->cpus) {
		ret = state_reader_fail(r, -EINVAL, "the saved VM has %u vCPUs, this one %u "
					"(--cpus)", s->cpus, cfg->cpus);
		goto out_free;
	}
	if (s->memory != cfg->memory) {
		ret = state_reader_fail(r, -EINVAL, "the saved VM has %lluM of memory, this one "
					"%lluM (--memory)", (unsigned long long)(s->memory / MiB),
					(unsigned long long)(cfg->memory / MiB));
		goto out_free;
	}
	/* Devices match by id; each must be of the same kind in the same PCI slot. */
	for (i = 0; i < s->nr_devices; i++) {
		sd = &s->devices[i];
		d = device_by_id(cfg, sd->id);
		if (!d) {
			ret = state_reader_fail(r, -EINVAL, "the saved VM has a --%s with id %s, this "
						"one has no device with that id (id=)", sd->cls->name,
						sd->id);
			goto out_free;
		}
		if (d->cls != sd->cls) {
			ret = state_reader_fail(r, -EINVAL, "device %s is a --%s in the saved VM, a "
						"--%s in this one", sd->id, sd->cls->name,
						d->cls->name);
			goto out_free;
		}
		if (d->slot != sd->slot) {
			ret = state_reader_fail(r, -EINVAL, "device %s is in PCI slot %u in the saved "
						"VM, slot %u in this one (addr=)", sd->id, sd->slot,
						d->slot);
			goto out_free;
		}
	}
	for (i = 0; i < cfg->nr_devices; i++) {
		if (!device_by_id(s, cfg->devices[i].id)) {
			ret = state_reader_fail(r, -EINVAL, "this VM has a --%s with id %s, the saved "
						"one has no device with that id (id=)",
						cfg->devices[i].cls->name, cfg->devices[i].id);
			goto out_free;
		}
	}
out_free:
	vm_saved_config_free(&saved);
	return ret;
}

void vm_saved_config_free(struct vm_saved_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->cmdline);
	dev_configs_free(c->cfg.devices, c->cfg.nr_devices);
	memset(c, 0, sizeof(*c));
}

/* ---- vCPUs ---- */

/* The MSR indices KVM saves (KVM_GET_MSR_INDEX_LIST); malloc'd list or NULL. */
static struct kvm_msr_list *msr_index_list(int kvm_fd)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return NULL;
	if (probe.nmsrs > MSRS_MAX)
		probe.nmsrs = MSRS_MAX;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return NULL;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

/*
 * Read every listed MSR that this vCPU has: KVM_GET_MSRS stops at the first it
 * cannot read, which is dropped and the rest retried. Returns the count kept.
 */
static int get_msrs(int fd, const struct kvm_msr_list *list, struct kvm_msrs *m)
{
	struct kvm_msrs *tmp;
	uint32_t n = list->nmsrs, start = 0, i;
	int got;

	tmp = calloc(1, sizeof(*tmp) + (n + 1) * sizeof(tmp->entries[0]));
	if (!tmp)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		m->entries[i].index = list->indices[i];
	while (start < n) {
		tmp->nmsrs = n - start;
		memcpy(tmp->entries, &m->entries[start], (n - start) * sizeof(m->entries[0]));
		got = ioctl(fd, KVM_GET_MSRS, tmp);
		if (got < 0) {
			got = -errno;
			free(tmp);
			return got;
		}
		memcpy(&m->entries[start], tmp->entries, (size_t)got * sizeof(m->entries[0]));
		start += (uint32_t)got;
		if (start < n) {
			/* entries[start] is unreadable on this host: drop it. */
			memmove(&m->entries[start], &m->entries[start + 1],
				(n - start - 1) * sizeof(m->entries[0]));
			n--;
		}
	}
	free(tmp);
	m->nmsrs = n;
	return (int)n;
}

static int save_cpu(struct vm *vm, struct vcpu *v, const struct kvm_msr_list *list,
		    struct state_writer *w)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xsave *xsave;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_msrs *msrs;
	int n, ret = 0;

	xsave = calloc(1, sizeof(*xsave));
	msrs = calloc(1, sizeof(*msrs) + (list->nmsrs + 1) * sizeof(msrs->entries[0]));
	if (!xsave || !msrs) {
		ret = -ENOMEM;
		goto out_free;
	}
	memset(&xcrs, 0, sizeof(xcrs));
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_FPU, &fpu) < 0 || ioctl(v->fd, KVM_GET_XSAVE, xsave) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0 || ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &dbg) < 0) {
		ret = -errno;
		log_error("cannot read vCPU %u's state: %s", v->index, strerror(errno));
		goto out_free;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
	    ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0) {
		ret = -errno;
		log_error("cannot read vCPU %u's XCRs: %s", v->index, strerror(errno));
		goto out_free;
	}
	n = get_msrs(v->fd, list, msrs);
	if (n < 0) {
		ret = n;
		log_error("cannot read vCPU %u's MSRs: %s", v->index, strerror(-n));
		goto out_free;
	}
	state_writer_begin_section(w, "cpu", v->index, 0);
	state_put_bytes(w, &regs, sizeof(regs));
	state_put_bytes(w, &sregs, sizeof(sregs));
	state_put_bytes(w, &fpu, sizeof(fpu));
	state_put_bytes(w, xsave, sizeof(*xsave));
	state_put_bytes(w, &xcrs, sizeof(xcrs));
	state_put_bytes(w, &lapic, sizeof(lapic));
	state_put_bytes(w, &mp, sizeof(mp));
	state_put_bytes(w, &ev, sizeof(ev));
	state_put_bytes(w, &dbg, sizeof(dbg));
	state_put_u32(w, (uint32_t)n);
	state_put_bytes(w, msrs->entries, (uint32_t)n * (uint32_t)sizeof(msrs->entries[0]));
	ret = state_writer_end_section(w);
out_free:
	free(msrs);
	free(xsave);
	return ret;
}

/*
 * Set MSRs in as few calls as KVM allows: KVM_SET_MSRS stops at the first entry it
 * refuses, which is skipped (logged at debug) and the rest set in the next call. One
 * ioctl per vCPU instead of one per MSR: each is a trip into the kernel, and a
 * restore sets a hundred or so per vCPU before the guest can run. KVM takes at most
 * MSRS_PER_CALL in one call (fewer than its MAX_IO_MSRS, 256).
 */
#define MSRS_PER_CALL 255

static int set_msrs(int fd, const struct kvm_msr_entry *e, uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (n ? n : 1) * sizeof(m->entries[0]));
	uint32_t start = 0;
	int done;

	if (!m)
		return -ENOMEM;
	while (start < n) {
		m->nmsrs = MIN(n - start, MSRS_PER_CALL);
		memcpy(m->entries, &e[start], m->nmsrs * sizeof(e[0]));
		done = ioctl(fd, KVM_SET_MSRS, m);
		if (done < 0 || (uint32_t)done > m->nmsrs)
			done = 0; /* refused as a whole: skip the first and go on */
		start += (uint32_t)done;
		if ((uint32_t)done < m->nmsrs) {
			log_debug("MSR 0x%x not restored", e[start].index);
			start++;
		}
	}
	free(m);
	return 0;
}

static int load_cpu(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xsave *xsave;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_msr_entry *e = NULL;
	const void *msrs;
	uint32_t n, len, i;
	struct vcpu *v;
	int ret, fd;

	if (id >= vm->nr_vcpus)
		return state_reader_fail(r, -EINVAL, "no vCPU %u in a %u-vCPU machine", id,
					 vm->nr_vcpus);
	v = &vm->vcpu[id];
	fd = v->fd;
	xsave = calloc(1, sizeof(*xsave));
	if (!xsave)
		return state_reader_fail(r, -ENOMEM, "out of memory");
	state_get_bytes(r, &regs, sizeof(regs));
	state_get_bytes(r, &sregs, sizeof(sregs));
	state_get_bytes(r, &fpu, sizeof(fpu));
	state_get_bytes(r, xsave, sizeof(*xsave));
	state_get_bytes(r, &xcrs, sizeof(xcrs));
	state_get_bytes(r, &lapic, sizeof(lapic));
	state_get_bytes(r, &mp, sizeof(mp));
	state_get_bytes(r, &ev, sizeof(ev));
	state_get_bytes(r, &dbg, sizeof(dbg));
	state_get_u32(r, &n);
	ret = state_get_bytes_ref(r, &msrs, &len);
	if (ret)
		goto out_free;
	if (n > MSRS_MAX || len != n * sizeof(struct kvm_msr_entry) || xcrs.nr_xcrs > KVM_MAX_XCRS) {
		ret = state_reader_fail(r, -EINVAL, "bad MSR or XCR count");
		goto out_free;
	}
	/* The order QEMU uses: XSAVE and sregs before MSRs, the LAPIC after APIC_BASE. */
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0 || ioctl(fd, KVM_SET_FPU, &fpu) < 0 ||
	    ioctl(fd, KVM_SET_XSAVE, xsave) < 0 ||
	    (xcrs.nr_xcrs && ioctl(fd, KVM_SET_XCRS, &xcrs) < 0) ||
	    ioctl(fd, KVM_SET_SREGS, &sregs) < 0) {
		ret = state_reader_fail(r, -errno, "vCPU registers refused by KVM: %s",
					strerror(errno));
		goto out_free;
	}
	/* msrs points into the payload, which need not be aligned: copy. */
	e = malloc(len ? len : 1);
	if (!e) {
		ret = state_reader_fail(r, -ENOMEM, "out of memory");
		goto out_free;
	}
	memcpy(e, msrs, len);
	set_msrs(fd, e, n);
	if (ioctl(fd, KVM_SET_MP_STATE, &mp) < 0 || ioctl(fd, KVM_SET_LAPIC, &lapic) < 0 ||
	    ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0 || ioctl(fd, KVM_SET_DEBUGREGS, &dbg) < 0) {
		ret = state_reader_fail(r, -errno, "vCPU state refused by KVM: %s", strerror(errno));
		goto out_free;
	}
	/* KVM_SET_LAPIC disarms the TSC-deadline timer: arm it again after. */
	for (i = 0; i < n; i++)
		if (e[i].index == MSR_IA32_TSC_DEADLINE)
			set_msrs(fd, &e[i], 1);
	ret = 0;
out_free:
	free(e);
	free(xsave);
	return ret;
}

/* ---- in-kernel devices ---- */

static int save_kvm_devices(struct vm *vm, struct state_writer *w)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	int i;

	memset(chip, 0, sizeof(chip));
	memset(&clock, 0, sizeof(clock));
	for (i = 0; i < 3; i++) {
		chip[i].chip_id = (uint32_t)i; /* PIC master, PIC slave, IOAPIC */
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			goto out_errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		goto out_errno;
	state_writer_begin_section(w, "irqchip", 0, 0);
	for (i = 0; i < 3; i++)
		state_put_bytes(w, &chip[i], sizeof(chip[i]));
	state_writer_end_section(w);
	state_writer_begin_section(w, "pit", 0, 0);
	state_put_bytes(w, &pit, sizeof(pit));
	state_writer_end_section(w);
	state_writer_begin_section(w, "clock", 0, 0);
	state_put_u64(w, clock.clock);
	return state_writer_end_section(w);

out_errno:
	log_error("cannot read the in-kernel devices' state: %s", strerror(errno));
	return -errno;
}

static int load_irqchip(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct kvm_irqchip chip;
	uint32_t i;
	int ret;

	for (i = 0; i < 3; i++) {
		ret = state_get_bytes(r, &chip, sizeof(chip));
		if (ret)
			return ret;
		if (chip.chip_id != i)
			return state_reader_fail(r, -EINVAL, "chip %u in place %u", chip.chip_id, i);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return state_reader_fail(r, -errno, "refused by KVM: %s", strerror(errno));
	}
	return 0;
}

static int load_pit(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct kvm_pit_state2 pit;
	int ret = state_get_bytes(r, &pit, sizeof(pit));

	if (ret)
		return ret;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return state_reader_fail(r, -errno, "refused by KVM: %s", strerror(errno));
	return 0;
}

static int load_clock(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct kvm_clock_data clock;
	uint64_t ns;
	int ret;

	memset(&clock, 0, sizeof(clock));
	ret = state_get_u64(r, &ns);
	if (ret)
		return ret;
	clock.clock = ns;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return state_reader_fail(r, -errno, "refused by KVM: %s", strerror(errno));
	return 0;
}

/* ---- platform devices ---- */

static int save_platform(struct vm *vm, struct state_writer *w)
{
	struct serial_state ser;
	struct pm_state pm;
	struct i8042_state kbd;

	pthread_mutex_lock(&vm->com1.lock);
	ser = vm->com1.st;
	pthread_mutex_unlock(&vm->com1.lock);
	pm_get_state(&vm->pm, &pm);
	pthread_mutex_lock(&vm->i8042.lock);
	kbd = vm->i8042.st;
	pthread_mutex_unlock(&vm->i8042.lock);

	state_writer_begin_section(w, "serial", 0, 0);
	state_put_bytes(w, &ser, sizeof(ser));
	state_writer_end_section(w);
	state_writer_begin_section(w, "pm", 0, 0);
	state_put_bytes(w, &pm, sizeof(pm));
	state_writer_end_section(w);
	state_writer_begin_section(w, "i8042", 0, 0);
	state_put_bytes(w, &kbd, sizeof(kbd));
	if (vm->has_pcihp) {
		struct pcihp_state hp;

		state_writer_end_section(w);
		pcihp_get_state(&vm->pcihp, &hp);
		state_writer_begin_section(w, "pcihp", 0, 0);
		state_put_bytes(w, &hp, sizeof(hp));
	}
	return state_writer_end_section(w);
}

/*
 * The hot-plug controller (a kernel boot's): pending reports and removals. A state
 * from before hot-plug has none, which is the machine's fresh state.
 */
static int load_pcihp(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct pcihp_state st;
	int ret = state_get_bytes(r, &st, sizeof(st));

	(void)id;
	if (ret)
		return ret;
	if (!vm->has_pcihp)
		return state_reader_fail(r, -EINVAL, "PCI hot-plug state for a firmware boot");
	pcihp_set_state(&vm->pcihp, &st);
	return 0;
}

static int load_serial(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct serial_state st;
	int ret = state_get_bytes(r, &st, sizeof(st));

	if (ret)
		return ret;
	if (st.rx_head >= SERIAL_RX_FIFO || st.rx_count > SERIAL_RX_FIFO || st.irq_level > 1)
		return state_reader_fail(r, -EINVAL, "receive FIFO out of bounds");
	pthread_mutex_lock(&vm->com1.lock);
	vm->com1.st = st;
	pthread_mutex_unlock(&vm->com1.lock);
	return 0;
}

static int load_pm(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct pm_state st;
	int ret = state_get_bytes(r, &st, sizeof(st));

	if (ret)
		return ret;
	pm_set_state(&vm->pm, &st);
	return 0;
}

static int load_i8042(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	struct i8042_state st;
	int ret = state_get_bytes(r, &st, sizeof(st));

	if (ret)
		return ret;
	pthread_mutex_lock(&vm->i8042.lock);
	vm->i8042.st = st;
	pthread_mutex_unlock(&vm->i8042.lock);
	return 0;
}

/* ---- virtio devices ---- */

/* The PCI header bytes the guest programs: command, BARs, interrupt line. */
#define PCI_HDR_SAVED 0x40

/* What save_virtio() takes while the device is parked. */
struct parked_save {
	struct state_writer *w;
	uint32_t slot;
	const char *id;
	void *dev_state; /* state_size bytes */
};

/* The plain state and the device's own sections, taken together with the queues'. */
static int save_parked(struct virtio_dev *vdev, void *opaque)
{
	struct parked_save *ps = opaque;
	int ret = 0;

	if (vdev->ops->state_size && vdev->ops->save)
		ret = vdev->ops->save(vdev, ps->dev_state);
	if (!ret && vdev->ops->save_sections)
		ret = vdev->ops->save_sections(vdev, ps->w, ps->slot, ps->id);
	return ret;
}

/*
 * One device: its own sections (ops->save_sections), then a section of type (keyed
 * by slot; "virtio.2" names the device's id first, "virtio-input" has none).
 */
static int save_vp(struct virtio_pci *vp, const char *type, uint32_t slot, const char *id,
		   struct state_writer *w)
{
	struct virtio_dev *vdev = virtio_pci_vdev(vp);
	struct pci_device *pdev = virtio_pci_pdev(vp);
	struct parked_save ps = { .w = w, .slot = slot, .id = id };
	struct virtio_pci_state st;
	int ret;

	memset(&st, 0, sizeof(st));
	if (vdev->ops->state_size) {
		ps.dev_state = calloc(1, vdev->ops->state_size);
		if (!ps.dev_state)
			return -ENOMEM;
	}
	/* The device's own sections first: they load before its transport starts it. */
	ret = virtio_pci_save_parked(vp, &st, save_parked, &ps);
	if (ret) {
		log_error("cannot save %s: %s", vdev->ops->name, strerror(-ret));
		free(ps.dev_state);
		return ret;
	}
	/* Keyed by slot, naming the device's id: the other side matches both. */
	state_writer_begin_section(w, type, slot, 0);
	if (id)
		put_str(w, id);
	state_put_u16(w, vdev->ops->device_id);
	state_put_bytes(w, pdev->cfg, PCI_HDR_SAVED);
	state_put_bytes(w, &st, sizeof(st));
	state_put_bytes(w, ps.dev_state, (uint32_t)vdev->ops->state_size);
	free(ps.dev_state);
	return state_writer_end_section(w);
}

static int save_virtio(struct vm *vm, unsigned int i, struct state_writer *w)
{
	return save_vp(vm->virtio[i], "virtio.2", vm->cfg->devices[i].slot,
		       vm->cfg->devices[i].id, w);
}

/* A display's keyboard or tablet (no id of its own: found by its PCI slot). */
static int save_input(struct vm *vm, unsigned int i, struct state_writer *w)
{
	struct virtio_pci *vp = vm->input[i];

	return save_vp(vp, "virtio-input", virtio_pci_pdev(vp)->slot, NULL, w);
}

/* Replay the guest's PCI header writes (BARs, then command) through the bus. */
static void pci_replay(struct vm *vm, struct pci_device *pdev, const uint8_t *hdr)
{
	uint32_t off, v;
	uint16_t cmd;
	uint8_t line;

	for (off = 0x10; off <= 0x24; off += 4) {
		memcpy(&v, hdr + off, 4);
		pci_cfg_access(vm->pci, pdev->slot, off, &v, 4, true);
	}
	line = hdr[0x3c];
	pci_cfg_access(vm->pci, pdev->slot, 0x3c, &line, 1, true);
	memcpy(&cmd, hdr + 4, 2);
	pci_cfg_access(vm->pci, pdev->slot, 4, &cmd, 2, true);
}

/*
 * A section keyed by PCI slot (its id) whose payload starts with the device's id:
 * reads that id and returns the index (in vm->virtio[] and cfg->devices[]) of the
 * device of vm at that slot, which must have that id; or -errno after
 * state_reader_fail().
 */
static int device_of_section(struct vm *vm, struct state_reader *r, uint32_t slot)
{
	const struct vm_config *cfg = vm->cfg;
	unsigned int i;
	char *id = NULL;
	int ret = get_str(r, "device id", false, &id);

	if (ret)
		return ret;
	for (i = 0; i < cfg->nr_devices && i < vm->nr_virtio; i++)
		if (cfg->devices[i].slot == slot)
			break;
	if (i == cfg->nr_devices || i == vm->nr_virtio)
		ret = state_reader_fail(r, -EINVAL, "no device %.32s in PCI slot %u here", id, slot);
	else if (strcmp(cfg->devices[i].id, id))
		ret = state_reader_fail(r, -EINVAL, "PCI slot %u holds device %s here, %.32s in the "
					"saved VM", slot, cfg->devices[i].id, id);
	else
		ret = (int)i;
	free(id);
	return ret;
}

static int load_virtio_at(struct vm *vm, struct state_reader *r, uint32_t id);

/* A device's own section (ops->save_sections): section id = PCI slot, its id first. */
static int load_dev_section(void *ctx, struct state_reader *r, uint32_t slot)
{
	struct vm *vm = ctx;
	struct virtio_dev *vdev;
	int i = device_of_section(vm, r, slot);

	if (i < 0)
		return i;
	vdev = virtio_pci_vdev(vm->virtio[i]);
	if (!vdev->ops->load_section)
		return state_reader_fail(r, -EINVAL, "device %s (%s) has no such state",
					 vm->cfg->devices[i].id, vdev->ops->name);
	return vdev->ops->load_section(vdev, r, state_reader_type(r));
}

/* "virtio.2": section id = PCI slot, the device's id first. */
static int load_virtio2(void *ctx, struct state_reader *r, uint32_t slot)
{
	int i = device_of_section(ctx, r, slot);

	return i < 0 ? i : load_virtio_at(ctx, r, (uint32_t)i);
}

/* "virtio" (before ids): section id = the device's index. */
static int load_virtio(void *ctx, struct state_reader *r, uint32_t id)
{
	return load_virtio_at(ctx, r, id);
}

static int load_vp(struct vm *vm, struct state_reader *r, struct virtio_pci *vp);

static int load_virtio_at(struct vm *vm, struct state_reader *r, uint32_t id)
{
	if (id >= vm->nr_virtio)
		return state_reader_fail(r, -EINVAL, "no virtio device %u here", id);
	return load_vp(vm, r, vm->virtio[id]);
}

/* "virtio-input": section id = the PCI slot of a display's keyboard or tablet. */
static int load_input(void *ctx, struct state_reader *r, uint32_t slot)
{
	struct vm *vm = ctx;
	unsigned int i;

	for (i = 0; i < vm->nr_input; i++)
		if (virtio_pci_pdev(vm->input[i])->slot == slot)
			return load_vp(vm, r, vm->input[i]);
	return state_reader_fail(r, -EINVAL, "no display keyboard or tablet in PCI slot %u here",
				 slot);
}

static int load_vp(struct vm *vm, struct state_reader *r, struct virtio_pci *vp)
{
	struct virtio_pci_state *st;
	uint8_t hdr[PCI_HDR_SAVED];
	const void *dev_state;
	struct virtio_dev *vdev = virtio_pci_vdev(vp);
	uint32_t len;
	uint16_t dev_id;
	int ret;

	if (state_get_u16(r, &dev_id) || state_get_bytes(r, hdr, sizeof(hdr)))
		return state_reader_fail(r, -EPROTO, "bad device header");
	if (dev_id != vdev->ops->device_id)
		return state_reader_fail(r, -EINVAL, "virtio device id %u, this machine has %s",
					 dev_id, vdev->ops->name);
	st = malloc(sizeof(*st));
	if (!st)
		return state_reader_fail(r, -ENOMEM, "out of memory");
	ret = state_get_bytes(r, st, sizeof(*st));
	if (!ret)
		ret = state_get_bytes_ref(r, &dev_state, &len);
	if (ret)
		goto out_free;
	if (len != vdev->ops->state_size) {
		ret = state_reader_fail(r, -EINVAL, "%s state of %u bytes", vdev->ops->name, len);
		goto out_free;
	}
	pci_replay(vm, virtio_pci_pdev(vp), hdr);
	if (len && vdev->ops->load) {
		void *copy = malloc(len);

		if (!copy) {
			ret = state_reader_fail(r, -ENOMEM, "out of memory");
			goto out_free;
		}
		memcpy(copy, dev_state, len);
		ret = vdev->ops->load(vdev, copy);
		free(copy);
		if (ret) {
			ret = state_reader_fail(r, ret, "%s refused its state", vdev->ops->name);
			goto out_free;
		}
	}
	ret = virtio_pci_load(vp, st);
	if (ret)
		ret = state_reader_fail(r, ret, "%s transport refused its state: %s",
					vdev->ops->name, strerror(-ret));
out_free:
	free(st);
	return ret;
}

/* ---- disk identities (snapshots) ---- */

#define DISK_HEAD 65536u

/* The identity of the image open on fd. 0 or -errno. */
static int disk_ident_of_fd(int fd, struct vm_disk_ident *id)
{
	uint8_t *buf = malloc(DISK_HEAD);
	struct stat st;
	ssize_t n;
	int ret = 0;

	memset(id, 0, sizeof(*id));
	if (!buf)
		return -ENOMEM;
	if (fstat(fd, &st) < 0 || (n = pread(fd, buf, DISK_HEAD, 0)) < 0) {
		ret = -errno;
		goto out_free;
	}
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	id->head_crc = (uint32_t)crc32_z(crc32_z(0, NULL, 0), buf, (size_t)n);
	id->known = true;
out_free:
	free(buf);
	return ret;
}

int vm_disk_ident_of(const char *spec, struct vm_disk_ident *id)
{
	char *path = NULL;
	int fd, ret;

	memset(id, 0, sizeof(*id));
	ret = virtio_blk_spec_path(spec, &path, NULL, NULL);
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	ret = disk_ident_of_fd(fd, id);
	close(fd);
	return ret;
}

int vm_state_save_disk_idents(struct vm *vm, struct state_writer *w)
{
	const struct vm_config *cfg = vm->cfg;
	struct vm_disk_ident id;
	unsigned int i;
	int ret;

	for (i = 0; i < cfg->nr_devices && i < vm->nr_virtio; i++) {
		if (cfg->devices[i].cls != &dev_class_disk)
			continue;
		/* The file the disk opened at start-up: no path is opened after it. */
		ret = virtio_blk_file(virtio_pci_vdev(vm->virtio[i]));
		if (ret >= 0)
			ret = disk_ident_of_fd(ret, &id);
		if (ret) {
			log_warn("snapshot: cannot take the identity of disk %s (%s): a restore will "
				 "not check it", cfg->devices[i].id, strerror(-ret));
			continue;
		}
		state_writer_begin_section(w, "disk-id.2", cfg->devices[i].slot,
					   STATE_SECTION_OPTIONAL);
		put_str(w, cfg->devices[i].id);
		state_put_u64(w, id.size);
		state_put_u64(w, (uint64_t)id.mtime_ns);
		state_put_u32(w, id.head_crc);
		ret = state_writer_end_section(w);
		if (ret)
			return ret;
	}
	return 0;
}

/* A restore: the operator's disk (cfg->disk_ident, taken at start) must be the one saved. */
static int check_disk_id(struct vm *vm, struct state_reader *r, uint32_t id)
{
	const struct vm_config *cfg = vm->cfg;
	struct vm_disk_ident *mine;
	uint64_t size, mtime;
	uint32_t crc;
	int ret;

	if ((ret = state_get_u64(r, &size)) || (ret = state_get_u64(r, &mtime)) ||
	    (ret = state_get_u32(r, &crc)))
		return ret;
	if (id >= cfg->nr_devices || cfg->devices[id].cls != &dev_class_disk)
		return state_reader_fail(r, -EINVAL, "no disk at device %u here", id + 1);
	if (!cfg->disk_ident)
		return 0; /* a migration: the source hands its disks over (invariant 4) */
	mine = &cfg->disk_ident[id];
	if (!mine->known)
		return state_reader_fail(r, -EINVAL, "--disk %s: cannot read its image to check it",
					 cfg->devices[id].id);
	if (mine->size != size || (uint64_t)mine->mtime_ns != mtime || mine->head_crc != crc)
		return state_reader_fail(r, -EINVAL, "--disk %s is not the image the snapshot was "
					 "taken with, or it changed since (%s differs): restoring "
					 "would corrupt it", cfg->devices[id].id,
					 mine->head_crc != crc ? "its header" :
					 mine->size != size    ? "its size" : "its modification time");
	mine->known = false; /* checked: what is left known was never checked */
	return 0;
}

/* "disk-id" (before ids): section id = the device's index. */
static int load_disk_id(void *ctx, struct state_reader *r, uint32_t id)
{
	return check_disk_id(ctx, r, id);
}

/* "disk-id.2": section id = PCI slot, the device's id first. */
static int load_disk_id2(void *ctx, struct state_reader *r, uint32_t slot)
{
	int i = device_of_section(ctx, r, slot);

	return i < 0 ? i : check_disk_id(ctx, r, (uint32_t)i);
}

/* ---- all ---- */

int vm_state_save(struct vm *vm, struct state_writer *w)
{
	struct kvm_msr_list *list = msr_index_list(vm->kvm_fd);
	unsigned int i;
	int ret = 0;

	if (!list) {
		log_error("cannot list the MSRs KVM saves: %s", strerror(errno));
		return -EIO;
	}
	for (i = 0; i < vm->nr_vcpus && !ret; i++)
		ret = save_cpu(vm, &vm->vcpu[i], list, w);
	free(list);
	if (!ret)
		ret = save_kvm_devices(vm, w);
	if (!ret)
		ret = save_platform(vm, w);
	for (i = 0; i < vm->nr_virtio && !ret; i++)
		ret = save_virtio(vm, i, w);
	for (i = 0; i < vm->nr_input && !ret; i++)
		ret = save_input(vm, i, w);
	if (ret && state_writer_error(w)[0])
		log_error("%s", state_writer_error(w));
	return ret;
}

const struct state_section_loader vm_state_loaders[] = {
	{ "cpu", load_cpu },
	{ "irqchip", load_irqchip },
	{ "pit", load_pit },
	{ "clock", load_clock },
	{ "serial", load_serial },
	{ "pm", load_pm },
	{ "pcihp", load_pcihp },
	{ "i8042", load_i8042 },
	{ "virtio", load_virtio },
	{ "virtio.2", load_virtio2 },
	{ "virtio-gpu", load_dev_section },
	{ "virtio-gpu-px", load_dev_section },
	{ "virtio-input", load_input },
	{ "disk-id", load_disk_id },
	{ "disk-id.2", load_disk_id2 },
};
const size_t vm_state_nr_loaders = ARRAY_SIZE(vm_state_loaders);
