// SPDX-License-Identifier: MIT
/* The fake hypervisor of the VM's unit tests (fake_hv.h). */
#include "fake_hv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "state/state.h"
#include "bzimage.h"

#define PAGE		4096u
#define BITS		(8 * sizeof(unsigned long))
#define RUN_SIZE	(2 * PAGE) /* struct kvm_run, then a port exit's data */

static struct fake_hv *of(struct vm *vm)
{
	return vm->hv_ctx;
}

/* ---- the VM ---- */

static int msi_signal(void *host, uint64_t addr, uint32_t data)
{
	return 0;
}

static int msi_route_add(void *host, int efd, uint64_t addr, uint32_t data, int *route)
{
	*route = 0;
	return 0;
}

static int msi_route_update(void *host, int route, uint64_t addr, uint32_t data, bool masked)
{
	return 0;
}

static int msi_route_del(void *host, int route, int efd)
{
	return 0;
}

static int ioeventfd(void *host, uint64_t addr, unsigned int len, int efd, bool assign)
{
	return 0;
}

static const struct pci_host_ops fake_pci_host = {
	.msi_signal = msi_signal,
	.msi_route_add = msi_route_add,
	.msi_route_update = msi_route_update,
	.msi_route_del = msi_route_del,
	.ioeventfd = ioeventfd,
};

static int fake_vm_init(struct vm *vm)
{
	struct fake_hv *f = of(vm);

	pthread_mutex_lock(&f->lock);
	f->vm_inits++;
	f->vm = vm;
	pthread_mutex_unlock(&f->lock);
	if (f->fail_vm_init)
		return f->fail_vm_init;
	vm->dirty_manual = f->manual;
	vm->pci_host = &fake_pci_host;
	vm->pci_host_ctx = f;
	return 0;
}

static void fake_vm_fini(struct vm *vm)
{
	struct fake_hv *f = of(vm);

	pthread_mutex_lock(&f->lock);
	f->vm_finis++;
	pthread_mutex_unlock(&f->lock);
}

static int fake_set_memory(struct vm *vm, unsigned int slot, uint64_t gpa, uint64_t size,
			   void *hva, unsigned int flags)
{
	struct fake_hv *f = of(vm);
	size_t words = (size_t)((size / PAGE + BITS - 1) / BITS);
	int ret = 0;

	if (slot >= GUEST_MEM_MAX_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	f->set_memory_calls++;
	if (f->dirty[slot] && f->slot_size[slot] != size) {
		free(f->dirty[slot]);
		f->dirty[slot] = NULL;
	}
	if (!f->dirty[slot])
		f->dirty[slot] = calloc(words ? words : 1, sizeof(unsigned long));
	if (!f->dirty[slot])
		ret = -ENOMEM;
	f->slot_size[slot] = size;
	f->slot_flags[slot] = flags;
	/* As KVM: logging starts from a clean log (no manual mode here). */
	if (f->dirty[slot] && (flags & HV_MEM_LOG_DIRTY))
		memset(f->dirty[slot], 0, words * sizeof(unsigned long));
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static int fake_dirty_log_get(struct vm *vm, unsigned int slot, unsigned long *bitmap)
{
	struct fake_hv *f = of(vm);
	unsigned int n;
	size_t words;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	n = f->dirty_gets++;
	pthread_mutex_unlock(&f->lock);
	if (slot == 0 && f->on_collect)
		f->on_collect(f, n, f->opaque);
	if (f->fail_dirty_get && n >= f->fail_dirty_get_at)
		return f->fail_dirty_get;
	pthread_mutex_lock(&f->lock);
	if (slot >= GUEST_MEM_MAX_SLOTS || !(f->slot_flags[slot] & HV_MEM_LOG_DIRTY)) {
		ret = -ENOENT; /* as KVM: the slot does not log */
	} else {
		words = (size_t)((f->slot_size[slot] / PAGE + BITS - 1) / BITS);
		memcpy(bitmap, f->dirty[slot], words * sizeof(unsigned long));
		if (!f->manual)
			memset(f->dirty[slot], 0, words * sizeof(unsigned long));
	}
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static int fake_dirty_log_clear(struct vm *vm, unsigned int slot, uint64_t first, uint32_t n,
				unsigned long *bitmap)
{
	struct fake_hv *f = of(vm);
	uint32_t i;

	if (first % 64)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	f->dirty_clears++;
	for (i = 0; i < n; i++) {
		uint64_t p = first + i;

		if (bitmap[i / BITS] & (1UL << (i % BITS)))
			f->dirty[slot][p / BITS] &= ~(1UL << (p % BITS));
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_irq_line(struct vm *vm, unsigned int irq, int level)
{
	struct fake_hv *f = of(vm);

	if (irq >= FAKE_IRQS)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	if (level && !f->irq[irq])
		f->irq_raises[irq]++;
	f->irq[irq] = level;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* ---- vCPUs ---- */

static int fake_vcpu_init(struct vcpu *v)
{
	struct fake_hv *f = of(v->vm);

	v->run = calloc(1, RUN_SIZE);
	if (!v->run)
		return -ENOMEM;
	v->run_size = RUN_SIZE;
	pthread_mutex_lock(&f->lock);
	f->vcpu_inits++;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_vcpu_fini(struct vcpu *v)
{
	struct fake_hv *f = of(v->vm);

	free(v->run);
	v->run = NULL;
	pthread_mutex_lock(&f->lock);
	f->vcpu_finis++;
	pthread_mutex_unlock(&f->lock);
}

/* The next scripted exit into v->run; waits for one, or returns -EINTR on a kick. */
static int fake_vcpu_run(struct vcpu *v)
{
	struct fake_hv *f = of(v->vm);
	struct kvm_run *run = v->run;
	const struct fake_exit *e;
	unsigned int i = v->index;

	pthread_mutex_lock(&f->lock);
	f->runs++;
	while (!__atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST) &&
	       f->script_pos[i] == f->script_len[i])
		pthread_cond_wait(&f->cond, &f->lock);
	if (__atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST)) {
		pthread_mutex_unlock(&f->lock);
		return -EINTR;
	}
	e = &f->script[i][f->script_pos[i]++];
	run->exit_reason = e->reason;
	if (e->reason == KVM_EXIT_IO) {
		run->io.direction = KVM_EXIT_IO_OUT;
		run->io.port = e->port;
		run->io.size = e->size;
		run->io.count = 1;
		run->io.data_offset = PAGE;
		memcpy((uint8_t *)run + PAGE, &e->value, e->size);
	} else if (e->reason == KVM_EXIT_SYSTEM_EVENT) {
		run->system_event.type = e->event;
	}
	pthread_cond_broadcast(&f->cond); /* fake_hv_exits_taken waiters */
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_vcpu_kick(struct vcpu *v)
{
	struct fake_hv *f = of(v->vm);

	pthread_mutex_lock(&f->lock);
	f->kicks++;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static uint64_t fake_vcpu_rip(struct vcpu *v)
{
	return 0xfff0 + v->index;
}

static enum hv_shutdown fake_vcpu_shutdown_kind(struct vcpu *v)
{
	return of(v->vm)->shutdown_kind;
}

/* ---- saved state: a blob per vCPU, the chip's blob, the clock ---- */

static int fake_save(struct vm *vm, struct state_writer *w)
{
	struct fake_hv *f = of(vm);
	unsigned int i;

	if (f->on_save)
		f->on_save(f, f->opaque);
	pthread_mutex_lock(&f->lock);
	f->saves++;
	pthread_mutex_unlock(&f->lock);
	if (f->fail_save)
		return f->fail_save;
	for (i = 0; i < vm->nr_vcpus; i++) {
		state_writer_begin_section(w, "cpu", i, 0);
		state_put_bytes(w, f->cpu[i], FAKE_BLOB);
		state_writer_end_section(w);
	}
	state_writer_begin_section(w, "irqchip", 0, 0);
	state_put_bytes(w, f->chip, FAKE_BLOB);
	state_writer_end_section(w);
	state_writer_begin_section(w, "clock", 0, 0);
	state_put_u64(w, f->clock);
	return state_writer_end_section(w);
}

static int fake_load(struct vm *vm, enum hv_section sec, uint32_t id, struct state_reader *r)
{
	struct fake_hv *f = of(vm);

	pthread_mutex_lock(&f->lock);
	f->loads++;
	pthread_mutex_unlock(&f->lock);
	switch (sec) {
	case HV_SEC_CPU:
		return state_get_bytes(r, f->cpu[id], FAKE_BLOB);
	case HV_SEC_IRQCHIP:
		return state_get_bytes(r, f->chip, FAKE_BLOB);
	case HV_SEC_CLOCK:
		return state_get_u64(r, &f->clock);
	default:
		return state_reader_fail(r, -EINVAL, "the fake has no such section");
	}
}

const struct hv_ops fake_hv_ops = {
	.name = "fake",
	.vm_init = fake_vm_init,
	.vm_fini = fake_vm_fini,
	.set_memory = fake_set_memory,
	.dirty_log_get = fake_dirty_log_get,
	.dirty_log_clear = fake_dirty_log_clear,
	.irq_line = fake_irq_line,
	.vcpu_init = fake_vcpu_init,
	.vcpu_fini = fake_vcpu_fini,
	.vcpu_run = fake_vcpu_run,
	.vcpu_kick = fake_vcpu_kick,
	.vcpu_rip = fake_vcpu_rip,
	.vcpu_shutdown_kind = fake_vcpu_shutdown_kind,
	.save = fake_save,
	.load = fake_load,
};

/* ---- the test's side ---- */

void fake_hv_init(struct fake_hv *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
}

void fake_hv_fini(struct fake_hv *f)
{
	unsigned int i;

	for (i = 0; i < GUEST_MEM_MAX_SLOTS; i++)
		free(f->dirty[i]);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}

void fake_hv_write(struct fake_hv *f, uint64_t gpa, uint8_t val)
{
	struct vm *vm = f->vm;
	unsigned int i;

	for (i = 0; i < vm->mem.nr_slots; i++) {
		const struct guest_mem_slot *s = &vm->mem.slot[i];
		uint64_t p;

		if (gpa < s->gpa || gpa - s->gpa >= s->size)
			continue;
		p = (gpa - s->gpa) / PAGE;
		s->hva[p * PAGE] = val;
		pthread_mutex_lock(&f->lock);
		if (f->slot_flags[i] & HV_MEM_LOG_DIRTY)
			f->dirty[i][p / BITS] |= 1UL << (p % BITS);
		pthread_mutex_unlock(&f->lock);
		return;
	}
}

void fake_hv_push_exit(struct fake_hv *f, unsigned int cpu, const struct fake_exit *e)
{
	pthread_mutex_lock(&f->lock);
	if (f->script_len[cpu] < FAKE_EXITS)
		f->script[cpu][f->script_len[cpu]++] = *e;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

unsigned int fake_hv_exits_taken(struct fake_hv *f, unsigned int cpu)
{
	unsigned int n;

	pthread_mutex_lock(&f->lock);
	n = f->script_pos[cpu];
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_vm_config(struct vm_config *cfg, struct fake_hv *f, unsigned int cpus,
		    uint64_t memory, int out_fd)
{
	uint8_t *img = make_bzimage();
	int fd = memfd_create("fake-bzimage", MFD_CLOEXEC);

	memset(cfg, 0, sizeof(*cfg));
	if (fd >= 0 && img && write(fd, img, IMG_LEN) != IMG_LEN) {
		close(fd);
		fd = -1;
	}
	free(img);
	cfg->kernel = "fake-bzImage";
	cfg->kernel_fd = fd;
	cfg->initrd_fd = cfg->vars_fd = cfg->kvm_fd = -1;
	cfg->cmdline = "console=ttyS0";
	cfg->cpus = cpus;
	cfg->memory = memory;
	cfg->console_in = -1;
	cfg->console_out = out_fd;
	cfg->restore_memory_fd = -1;
	cfg->service_fd = -1;
	cfg->hv = &fake_hv_ops;
	cfg->hv_ctx = f;
}

void fake_vm_config_free(struct vm_config *cfg)
{
	if (cfg->kernel_fd >= 0)
		close(cfg->kernel_fd);
	cfg->kernel_fd = -1;
}
