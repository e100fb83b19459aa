// SPDX-License-Identifier: MIT
/*
 * The hypervisor seam (hv.h) on KVM: the ioctls of the VM's lifecycle, its vCPUs,
 * dirty logging and saved state. The "cpu", "irqchip", "pit" and "clock" sections
 * are KVM's structs as KVM gives them: their layout is the stream format of
 * snapshots and migrations, so it changes only with a new section name.
 */
#include "hv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "log.h"
#include "util.h"
#include "vm.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "state/state.h"

#define KVM_API_EXPECTED 12
#define MSRS_MAX    1024     /* MSRs per vCPU we are prepared to carry */
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* ---- the VM ---- */

int vm_open_kvm(int *kvm_fd)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), api, ret;

	if (fd < 0) {
		ret = -errno;
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			log_error("/dev/kvm does not exist: KVM is not available on this host");
		else if (errno == EACCES || errno == EPERM)
			log_error("no permission to open /dev/kvm (add the user to the kvm group)");
		else
			log_error("cannot open /dev/kvm: %s", strerror(errno));
		return ret;
	}
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_EXPECTED) {
		log_error("unsupported KVM API version %d (need %d)", api, KVM_API_EXPECTED);
		close(fd);
		return -EINVAL;
	}
	*kvm_fd = fd;
	return 0;
}

static int kvm_check_caps(struct vm *vm)
{
	static const struct { int cap; const char *name; } need[] = {
		{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
		{ KVM_CAP_PIT2, "in-kernel PIT" },
		{ KVM_CAP_USER_MEMORY, "user memory" },
		{ KVM_CAP_IRQ_ROUTING, "GSI routing" },
		{ KVM_CAP_IRQFD, "irqfd" },
		{ KVM_CAP_IOEVENTFD, "ioeventfd" },
		{ KVM_CAP_SIGNAL_MSI, "KVM_SIGNAL_MSI" },
		{ KVM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
	};
	int max_vcpus;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(need); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			log_error("this host's KVM lacks %s", need[i].name);
			return -ENOTSUP;
		}
	}
	max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > 0 && vm->cfg->cpus > (unsigned int)max_vcpus) {
		log_error("--cpus %u is more than this host's KVM allows (%d)", vm->cfg->cpus,
			  max_vcpus);
		return -EINVAL;
	}
	return 0;
}

/*
 * Dirty logging as QEMU runs it: with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and
 * INITIALLY_SET, turning logging on for a migration write-protects nothing;
 * every page starts dirty and is write-protected only when the migration
 * thread clears its bit, just before it sends the page (migrate.c). Without
 * it, KVM write-protects all of guest RAM in one go while the vCPUs run. (The
 * round-0 guest failure under the emulated host was suspected of coming from
 * that moment; it happens with this mode too: ARCHITECTURE.md.) Optional:
 * older kernels get the old behaviour.
 */
static void kvm_setup_dirty_log(struct vm *vm)
{
	const uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { want } };
	int have = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

	vm->dirty_manual = have > 0 && ((uint64_t)have & want) == want &&
			   ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	if (!vm->dirty_manual)
		log_debug("KVM clears the dirty log as it reads it (no manual protect)");
}

static int kvm_vm_init(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int ret;

	if (vm->cfg->kvm_fd >= 0)
		vm->kvm_fd = vm->cfg->kvm_fd; /* kept across resets: kvm_vm_fini leaves it open */
	else if (vm_open_kvm(&vm->kvm_fd))
		return -ENODEV;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		log_error("cannot create a KVM VM: %s", strerror(errno));
		return ret;
	}
	ret = kvm_check_caps(vm);
	if (ret)
		return ret;
	/* Intel VMX needs these three pages for real mode; harmless elsewhere. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR,
		  (unsigned long)(vm->cfg->firmware ? LAYOUT_FW_KVM_TSS : LAYOUT_KVM_TSS)) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR,
		  &(uint64_t){ vm->cfg->firmware ? LAYOUT_FW_KVM_IDMAP : LAYOUT_KVM_IDMAP }) < 0) {
		ret = -errno;
		log_error("cannot place KVM's TSS: %s", strerror(errno));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		log_error("cannot create the in-kernel interrupt controller: %s", strerror(errno));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		log_error("cannot create the in-kernel PIT: %s", strerror(errno));
		return ret;
	}
	kvm_setup_dirty_log(vm);
	ret = irq_router_init(&vm->irq, vm->vm_fd);
	vm->irq_ready = true; /* its lock exists either way */
	if (ret)
		return ret;
	vm->pci_host = &kvm_pci_host_ops;
	vm->pci_host_ctx = &vm->irq;
	vm->cpuid = cpuid_supported(vm->kvm_fd);
	return vm->cpuid ? 0 : -EIO;
}

static void kvm_vm_fini(struct vm *vm)
{
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->irq_ready)
		irq_router_destroy(&vm->irq);
	vm->irq_ready = false;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	vm->vm_fd = -1;
	if (vm->kvm_fd >= 0 && vm->kvm_fd != vm->cfg->kvm_fd)
		close(vm->kvm_fd);
	vm->kvm_fd = -1;
}

static int kvm_set_memory(struct vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			  void *hva, unsigned int flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = ((flags & HV_MEM_LOG_DIRTY) ? KVM_MEM_LOG_DIRTY_PAGES : 0) |
			 ((flags & HV_MEM_READONLY) ? KVM_MEM_READONLY : 0),
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static int kvm_dirty_log_get(struct vm *vm, unsigned int slot, unsigned long *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

	return ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

static int kvm_dirty_log_clear(struct vm *vm, unsigned int slot, uint64_t first, uint32_t n,
			       unsigned long *bitmap)
{
	struct kvm_clear_dirty_log c = {
		.slot = slot, .num_pages = n, .first_page = first, .dirty_bitmap = bitmap,
	};

	return ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0 ? -errno : 0;
}

static int kvm_irq_line(struct vm *vm, unsigned int irq, int level)
{
	return irq_line(vm->vm_fd, irq, level);
}

/* ---- vCPUs ---- */

static int kvm_vcpu_init(struct vcpu *v)
{
	struct vm *vm = v->vm;
	unsigned int index = v->index;
	int mmap_size, ret;

	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		ret = -errno;
		log_error("cannot create vCPU %u: %s", index, strerror(errno));
		return ret;
	}
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		ret = mmap_size < 0 ? -errno : -EINVAL;
		log_error("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-ret));
		goto out_close_fd;
	}
	v->run_size = (size_t)mmap_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		log_error("cannot map vCPU %u's run area: %s", index, strerror(errno));
		goto out_close_fd;
	}
	ret = cpuid_apply(v->fd, vm->cpuid, index, vm->cfg->cpus);
	if (ret) {
		log_error("cannot set vCPU %u's CPUID: %s", index, strerror(-ret));
		goto out_unmap;
	}
	ret = x86_vcpu_init(v->fd, index == 0);
	if (ret) {
		log_error("cannot set up vCPU %u (MSRs, FPU, LAPIC): %s", index, strerror(-ret));
		goto out_unmap;
	}
	/*
	 * Application processors wait in the kernel for INIT/SIPI from the BSP. Firmware
	 * starts where KVM's reset state leaves the BSP: the reset vector below 4 GiB.
	 */
	if (index == 0 && !vm->cfg->firmware) {
		ret = x86_vcpu_boot_regs(v->fd, vm->kernel.entry);
		if (ret) {
			log_error("cannot set the boot CPU's registers: %s", strerror(-ret));
			goto out_unmap;
		}
	}
	return 0;

out_unmap:
	munmap(v->run, v->run_size);
	v->run = NULL;
out_close_fd:
	close(v->fd);
	v->fd = -1;
	return ret;
}

static void kvm_vcpu_fini(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

static int kvm_vcpu_run(struct vcpu *v)
{
	return ioctl(v->fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

static void kvm_vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, SIGUSR1);
}

static uint64_t kvm_vcpu_rip(struct vcpu *v)
{
	return x86_vcpu_rip(v->fd);
}

static enum hv_shutdown kvm_vcpu_shutdown_kind(struct vcpu *v)
{
	switch (x86_vcpu_shutdown_kind(v->fd)) {
	case X86_SHUTDOWN_RESET:
		return HV_SHUTDOWN_RESET;
	case X86_SHUTDOWN_UNKNOWN:
		return HV_SHUTDOWN_UNKNOWN;
	default:
		return HV_SHUTDOWN_CRASH;
	}
}

/* ---- saved state ---- */

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

static int load_cpu(struct vm *vm, struct state_reader *r, uint32_t id)
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
	struct kvm_msr_entry *e = NULL;
	const void *msrs;
	uint32_t n, len, i;
	struct vcpu *v;
	int ret, fd;

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

static int load_irqchip(struct vm *vm, struct state_reader *r)
{
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

static int load_pit(struct vm *vm, struct state_reader *r)
{
	struct kvm_pit_state2 pit;
	int ret = state_get_bytes(r, &pit, sizeof(pit));

	if (ret)
		return ret;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return state_reader_fail(r, -errno, "refused by KVM: %s", strerror(errno));
	return 0;
}

static int load_clock(struct vm *vm, struct state_reader *r)
{
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

static int kvm_save(struct vm *vm, struct state_writer *w)
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
	return ret;
}

static int kvm_load(struct vm *vm, enum hv_section sec, uint32_t id, struct state_reader *r)
{
	switch (sec) {
	case HV_SEC_CPU:
		return load_cpu(vm, r, id);
	case HV_SEC_IRQCHIP:
		return load_irqchip(vm, r);
	case HV_SEC_PIT:
		return load_pit(vm, r);
	case HV_SEC_CLOCK:
		return load_clock(vm, r);
	}
	return state_reader_fail(r, -EINVAL, "not a KVM section");
}

const struct hv_ops hv_kvm_ops = {
	.name = "kvm",
	.vm_init = kvm_vm_init,
	.vm_fini = kvm_vm_fini,
	.set_memory = kvm_set_memory,
	.dirty_log_get = kvm_dirty_log_get,
	.dirty_log_clear = kvm_dirty_log_clear,
	.irq_line = kvm_irq_line,
	.vcpu_init = kvm_vcpu_init,
	.vcpu_fini = kvm_vcpu_fini,
	.vcpu_run = kvm_vcpu_run,
	.vcpu_kick = kvm_vcpu_kick,
	.vcpu_rip = kvm_vcpu_rip,
	.vcpu_shutdown_kind = kvm_vcpu_shutdown_kind,
	.save = kvm_save,
	.load = kvm_load,
};
