// SPDX-License-Identifier: MIT
/*
 * vCPU threads: the hypervisor's run (KVM_RUN) in a loop, dispatching exits. A
 * vCPU stops when vm->stopping is set and it is kicked (on KVM immediate_exit +
 * SIGUSR1, so a kick that lands before KVM_RUN is entered is not lost).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "log.h"
#include "sandbox.h"
#include "vm.h"

int vcpu_create(struct vm *vm, unsigned int index)
{
	struct vcpu *v = &vm->vcpu[index];

	v->vm = vm;
	v->index = index;
	return vm->hv->vcpu_init(v);
}

void vcpu_destroy(struct vcpu *v)
{
	v->vm->hv->vcpu_fini(v);
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	v->vm->hv->vcpu_kick(v);
}

static void vcpu_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t i;

	/* data_offset and count come from KVM, but stay inside the run area regardless. */
	if (run->io.size == 0 || run->io.size > 4 || run->io.data_offset >= v->run_size ||
	    (uint64_t)run->io.count * run->io.size > v->run_size - run->io.data_offset)
		return;
	for (i = 0; i < run->io.count; i++, data += run->io.size)
		bus_access(&v->vm->pio, run->io.port, data, run->io.size, write);
}

static void vcpu_fail(struct vcpu *v, const char *what)
{
	vm_request_exit(v->vm, VM_EXIT_ERROR, "%s on vCPU %u at RIP 0x%llx", what, v->index,
			(unsigned long long)v->vm->hv->vcpu_rip(v));
}

/* Handle one exit. Returns false when the vCPU should stop. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		v->exits_io++;
		if (log_get_level() >= LOG_DEBUG &&
		    !bus_access_would_hit(&v->vm->pio, run->io.port))
			log_debug("vCPU %u: unhandled port %s 0x%x", v->index,
				  run->io.direction == KVM_EXIT_IO_OUT ? "write" : "read",
				  run->io.port);
		vcpu_io(v);
		return true;
	case KVM_EXIT_MMIO:
		v->exits_mmio++;
		if (run->mmio.len <= 8)
			bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
				   run->mmio.is_write);
		return true;
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		v->exits_other++;
		return true;
	case KVM_EXIT_SHUTDOWN:
		/*
		 * A triple fault resets a PC. It is a reboot when the guest meant it (an
		 * empty IDT, as Linux's reboot=t leaves it) and a crash when the IDT was
		 * live. AMD SVM resets the vCPU before we can look: then it counts as a
		 * reset, with a warning since a crash can't be told apart.
		 */
		switch (v->vm->hv->vcpu_shutdown_kind(v)) {
		case HV_SHUTDOWN_RESET:
			log_info("vCPU %u: triple fault with an empty IDT: guest reset", v->index);
			vm_request_exit(v->vm, VM_EXIT_RESET, NULL);
			break;
		case HV_SHUTDOWN_UNKNOWN:
			log_warn("vCPU %u: triple fault (state lost, treated as a guest reset)",
				 v->index);
			vm_request_exit(v->vm, VM_EXIT_RESET, NULL);
			break;
		default:
			vcpu_fail(v, "guest triple fault (CPU shutdown)");
			break;
		}
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_exit(v->vm, VM_EXIT_POWEROFF, NULL);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_exit(v->vm, VM_EXIT_RESET, NULL);
			break;
		default:
			snprintf(what, sizeof(what), "guest system event %u",
				 run->system_event.type);
			vcpu_fail(v, what);
			break;
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
			 run->internal.suberror);
		vcpu_fail(v, what);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "VM entry failed (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_fail(v, what);
		return false;
	case KVM_EXIT_HLT:
		vcpu_fail(v, "vCPU halted with no interrupt controller");
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected KVM exit %u", run->exit_reason);
		vcpu_fail(v, what);
		return false;
	}
}

/*
 * Wait while a pause is requested. Re-entering KVM_RUN once with immediate_exit
 * set first completes a port/MMIO exit in flight, so the saved registers are
 * consistent (KVM's rule for KVM_EXIT_IO/MMIO).
 */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vm->hv->vcpu_run(v) == 0)
		vcpu_handle_exit(v); /* cannot happen with immediate_exit, but never drop an exit */
	pthread_mutex_lock(&vm->pause_lock);
	v->parked = true;
	vm->vcpus_parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	v->parked = false;
	vm->vcpus_parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

/* Auto-converge: sleep the throttled share of a 10 ms slice. */
static void vcpu_throttle(struct vcpu *v)
{
	unsigned int pct = atomic_load(&v->vm->throttle_pct);

	if (pct)
		usleep(pct * 100);
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	int ret;

	/* Only the kick signal reaches vCPU threads. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	char name[16];

	/* The name shows in a seccomp kill line and in /proc/PID/task/.../comm. */
	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	if (vm->cfg->seccomp &&
	    sandbox_seccomp_install(vm->cfg->firmware ? SANDBOX_VCPU_FLASH : SANDBOX_VCPU)) {
		vm_request_exit(vm, VM_EXIT_ERROR, "vCPU %u: cannot install its seccomp filter",
				v->index);
		return NULL;
	}

	pthread_mutex_lock(&vm->pause_lock);
	vm->vcpus_active++;
	pthread_mutex_unlock(&vm->pause_lock);
	while (!atomic_load(&vm->stopping)) {
		/*
		 * A kick sets pause_req (or stopping) before immediate_exit: clearing
		 * immediate_exit before looking at them never loses a kick.
		 */
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&vm->pause_req)) {
			vcpu_park(v);
			continue;
		}
		vcpu_throttle(v);
		if (atomic_load(&vm->stopping))
			break;
		ret = vm->hv->vcpu_run(v);
		if (ret) {
			if (ret == -EINTR || ret == -EAGAIN)
				continue;
			vm_request_exit(vm, VM_EXIT_ERROR, "KVM_RUN failed on vCPU %u: %s",
					v->index, strerror(-ret));
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	pthread_mutex_lock(&vm->pause_lock);
	vm->vcpus_active--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	log_debug("vCPU %u: %llu port I/O exits, %llu MMIO exits, %llu others", v->index,
		  (unsigned long long)v->exits_io, (unsigned long long)v->exits_mmio,
		  (unsigned long long)v->exits_other);
	return NULL;
}
