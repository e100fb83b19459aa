/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor seam: everything the VM's lifecycle (vm.c, vcpu.c), snapshots
 * (vmstate.c) and live migration (migrate.c) ask of the hypervisor, as one const
 * table. Production uses hv_kvm_ops (hv_kvm.c, KVM ioctls); unit tests use a fake
 * (tests/unit/vmm/fake_hv.c) with guest RAM in a plain memfd, a dirty bitmap the
 * test writes and scripted vCPU exits. vm_config.hv picks one (NULL: KVM).
 *
 * What stays the hypervisor's own and is not generalised:
 *   - the exit of a vCPU is described in a struct kvm_run (vcpu->run, run_size
 *     bytes): vcpu.c dispatches from it, a fake fills one in;
 *   - the "cpu", "irqchip", "pit" and "clock" sections of snapshots and migration
 *     streams are the hypervisor's state as it gives it (KVM's structs): save
 *     writes them, load reads them back, and vmstate.c only places them in the
 *     stream (a fake writes a blob per vCPU);
 *   - MSI routes, irqfds and ioeventfds sit behind the PCI bus's pci_host_ops
 *     (hw/pci.h): vm_init sets vm->pci_host (KVM's is irq.c's).
 * Anything a device does never reaches this table.
 */
#ifndef PLINTH_VMM_HV_H
#define PLINTH_VMM_HV_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;
struct state_writer;
struct state_reader;

/* set_memory's flags. */
#define HV_MEM_LOG_DIRTY 0x1u /* track writes for dirty_log_get */
#define HV_MEM_READONLY  0x2u /* guest writes exit as MMIO */

/* The hypervisor's sections of a saved state, for load. */
enum hv_section { HV_SEC_CPU, HV_SEC_IRQCHIP, HV_SEC_PIT, HV_SEC_CLOCK };

/* What vcpu_shutdown_kind answers after a triple fault (KVM_EXIT_SHUTDOWN). */
enum hv_shutdown { HV_SHUTDOWN_CRASH, HV_SHUTDOWN_RESET, HV_SHUTDOWN_UNKNOWN };

/*
 * Every op returns 0 or -errno unless it says otherwise, and logs one line where
 * the caller would not know why (vm_init, vcpu_init, save).
 */
struct hv_ops {
	const char *name;
	/*
	 * Create the VM for vm->cfg: the hypervisor's side of the machine (interrupt
	 * controller, timer), vm->dirty_manual, vm->cpuid, and vm->pci_host /
	 * vm->pci_host_ctx for the PCI bus. vm_fini undoes it (also after a failed
	 * vm_init, or none: vm_create failed before); the vCPUs are gone by then.
	 */
	int (*vm_init)(struct vm *vm);
	void (*vm_fini)(struct vm *vm);
	/* Map guest RAM [gpa, gpa + size) at hva as memory slot slot (size 0: remove). */
	int (*set_memory)(struct vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			  void *hva, unsigned int flags);
	/*
	 * Dirty logging (slots with HV_MEM_LOG_DIRTY): get fills bitmap, one bit per
	 * page of the slot, with the pages written since the last get (in manual mode,
	 * vm->dirty_manual, since their last clear); clear write-protects again the n
	 * pages from page first (a multiple of 64) whose bits are set in bitmap, which
	 * starts at that page.
	 */
	int (*dirty_log_get)(struct vm *vm, unsigned int slot, unsigned long *bitmap);
	int (*dirty_log_clear)(struct vm *vm, unsigned int slot, uint64_t first, uint32_t n,
			       unsigned long *bitmap);
	/* Drive an ISA/IOAPIC input line. */
	int (*irq_line)(struct vm *vm, unsigned int irq, int level);
	/*
	 * vCPU v (v->vm, v->index set): create it, its run area (v->run, v->run_size)
	 * and its start-up state (CPUID, MSRs; the boot CPU's registers for a kernel
	 * boot). vcpu_fini undoes it, also after a failed vcpu_init.
	 */
	int (*vcpu_init)(struct vcpu *v);
	void (*vcpu_fini)(struct vcpu *v);
	/*
	 * Run the vCPU until an exit (0, described in v->run) or a kick (-EINTR). With
	 * v->run->immediate_exit set it returns at once, having finished a port or MMIO
	 * exit in flight (-EINTR).
	 */
	int (*vcpu_run)(struct vcpu *v);
	/* Make vcpu_run return now or, if not in it, at its next entry (any thread). */
	void (*vcpu_kick)(struct vcpu *v);
	/* For messages: where the vCPU is (0 when unknown). */
	uint64_t (*vcpu_rip)(struct vcpu *v);
	/* After a KVM_EXIT_SHUTDOWN: did the guest mean it? */
	enum hv_shutdown (*vcpu_shutdown_kind)(struct vcpu *v);
	/*
	 * Saved state, the vCPUs paused: save writes a "cpu" section per vCPU (id: its
	 * index) and the VM's own sections, in that order; load reads back the payload
	 * of one of them (its id, failing through state_reader_fail).
	 */
	int (*save)(struct vm *vm, struct state_writer *w);
	int (*load)(struct vm *vm, enum hv_section sec, uint32_t id, struct state_reader *r);
};

/* KVM (hv_kvm.c). */
extern const struct hv_ops hv_kvm_ops;

#endif
