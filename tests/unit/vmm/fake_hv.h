/* SPDX-License-Identifier: MIT */
/*
 * A fake hypervisor for unit tests (struct hv_ops, vmm/hv.h): vm_create() builds a
 * whole machine on it (guest RAM is the VM's own memfd), the test writes the dirty
 * bitmap, gives each vCPU a script of exits and a state blob, and fails any op once.
 * One struct fake_hv per VM, given as vm_config.hv_ctx with vm_config.hv = &fake_hv_ops.
 */
#ifndef PLINTH_TESTS_FAKE_HV_H
#define PLINTH_TESTS_FAKE_HV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hv.h"
#include "mem.h"
#include "vm.h"

#define FAKE_EXITS	32 /* scripted exits per vCPU */
#define FAKE_BLOB	64 /* bytes of a vCPU's (and the VM's) state */
#define FAKE_IRQS	24

/* One exit, as KVM would describe it in struct kvm_run. */
struct fake_exit {
	uint32_t reason;       /* KVM_EXIT_IO, KVM_EXIT_SYSTEM_EVENT, KVM_EXIT_SHUTDOWN... */
	uint16_t port;         /* KVM_EXIT_IO: an OUT of size bytes of value */
	uint8_t size;
	uint32_t value;
	uint32_t event;        /* KVM_EXIT_SYSTEM_EVENT's type */
};

struct fake_hv {
	pthread_mutex_t lock;
	pthread_cond_t cond;   /* a scripted exit or a kick for a vCPU (lock) */
	struct vm *vm;         /* set by vm_init */
	bool manual;           /* vm->dirty_manual: clears count */

	/* Counters (lock). */
	unsigned int vm_inits, vm_finis, vcpu_inits, vcpu_finis, set_memory_calls;
	unsigned int dirty_gets, dirty_clears, runs, kicks, saves, loads;

	/* Memory slots as last set (flags: HV_MEM_*). */
	uint64_t slot_size[GUEST_MEM_MAX_SLOTS];
	unsigned int slot_flags[GUEST_MEM_MAX_SLOTS];
	/* The pages the guest wrote since the last get (or clear), per slot: fake_hv_write. */
	unsigned long *dirty[GUEST_MEM_MAX_SLOTS];

	/*
	 * Called by dirty_log_get for slot 0 before it answers, unlocked: the test's guest
	 * writing RAM between two collections (fake_hv_write). collect is 0-based.
	 */
	void (*on_collect)(struct fake_hv *f, unsigned int collect, void *opaque);
	void *opaque;
	/* Called by save before it writes, unlocked (e.g. to cut the stream). */
	void (*on_save)(struct fake_hv *f, void *opaque);

	/* Failures: -errno returned by the op once its count reaches the given call. */
	int fail_dirty_get;        /* at dirty get number fail_dirty_get_at (0-based) */
	unsigned int fail_dirty_get_at;
	int fail_save;
	int fail_vm_init;

	/* State: what save writes and load fills in. */
	uint8_t cpu[VM_MAX_CPUS][FAKE_BLOB];
	uint8_t chip[FAKE_BLOB];
	uint64_t clock;

	/* vCPUs: scripts of exits (lock), what a triple fault means, the IRQ lines. */
	struct fake_exit script[VM_MAX_CPUS][FAKE_EXITS];
	unsigned int script_len[VM_MAX_CPUS], script_pos[VM_MAX_CPUS];
	enum hv_shutdown shutdown_kind;
	int irq[FAKE_IRQS];
	unsigned int irq_raises[FAKE_IRQS];
};

extern const struct hv_ops fake_hv_ops;

void fake_hv_init(struct fake_hv *f);
void fake_hv_fini(struct fake_hv *f);
/* The guest writes byte val at the start of the page at gpa (marked dirty if logging). */
void fake_hv_write(struct fake_hv *f, uint64_t gpa, uint8_t val);
/* Append an exit to vCPU cpu's script and wake it. */
void fake_hv_push_exit(struct fake_hv *f, unsigned int cpu, const struct fake_exit *e);
/* Exits vCPU cpu has taken so far. */
unsigned int fake_hv_exits_taken(struct fake_hv *f, unsigned int cpu);

/*
 * A vm_config for a kernel boot on f: a minimal bzImage in a memfd (cfg->kernel_fd,
 * closed by fake_vm_config_free), no devices, console output to out_fd (-1: none).
 */
void fake_vm_config(struct vm_config *cfg, struct fake_hv *f, unsigned int cpus,
		    uint64_t memory, int out_fd);
void fake_vm_config_free(struct vm_config *cfg);

#endif
