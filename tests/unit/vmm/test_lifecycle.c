// SPDX-License-Identifier: MIT
/*
 * The VM's lifecycle on the fake hypervisor (fake_hv.h): vm_create() and vm_destroy()
 * call it in pairs, vCPU exits are dispatched to the devices and end vm_run() with
 * the right reason, and control.c's pause, resume, shutdown and reset reach the vCPUs
 * through the main thread as the API asks them.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "control.h"
#include "fake_hv.h"
#include "log.h"
#include "arch/x86/layout.h"

#define MEM		(32ull << 20)
#define WAIT_MS		5000

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void out(struct fake_hv *f, unsigned int cpu, uint16_t port, uint8_t size,
		uint32_t value)
{
	struct fake_exit e = { .reason = KVM_EXIT_IO, .port = port, .size = size, .value = value };

	fake_hv_push_exit(f, cpu, &e);
}

static void exit_event(struct fake_hv *f, unsigned int cpu, uint32_t reason, uint32_t event)
{
	struct fake_exit e = { .reason = reason, .event = event };

	fake_hv_push_exit(f, cpu, &e);
}

/* Wait up to WAIT_MS for vCPU cpu to have taken n exits. */
static void wait_exits(struct fake_hv *f, unsigned int cpu, unsigned int n)
{
	unsigned int ms;

	for (ms = 0; ms < WAIT_MS && fake_hv_exits_taken(f, cpu) < n; ms += 5)
		sleep_ms(5);
	assert_int_equal(fake_hv_exits_taken(f, cpu), n);
}

/* Wait up to WAIT_MS for the vCPU threads to be in their loop, parked ones included. */
static void wait_active(struct vm *vm, unsigned int active, unsigned int parked)
{
	unsigned int ms, a = 0, p = 0;

	for (ms = 0; ms < WAIT_MS; ms += 5) {
		pthread_mutex_lock(&vm->pause_lock);
		a = vm->vcpus_active;
		p = vm->vcpus_parked;
		pthread_mutex_unlock(&vm->pause_lock);
		if (a == active && p == parked)
			break;
		sleep_ms(5);
	}
	assert_int_equal(a, active);
	assert_int_equal(p, parked);
}

struct runner {
	struct vm *vm;
	pthread_t thread;
	enum vm_exit why;
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;
	int signo = 0;

	r->why = vm_run(r->vm, -1, &signo);
	return NULL;
}

static void start(struct runner *r, struct vm *vm)
{
	r->vm = vm;
	assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static enum vm_exit finish(struct runner *r)
{
	assert_int_equal(pthread_join(r->thread, NULL), 0);
	return r->why;
}

/* Create calls the hypervisor for the VM, its RAM and each vCPU; destroy undoes each. */
static void test_create_destroy(void **state)
{
	struct vm_config cfg;
	struct fake_hv f;
	struct vm *vm;
	unsigned int i;

	(void)state;
	fake_hv_init(&f);
	fake_vm_config(&cfg, &f, 2, MEM, -1);
	vm = vm_create(&cfg);
	assert_non_null(vm);
	assert_ptr_equal(vm->hv, &fake_hv_ops);
	assert_int_equal(f.vm_inits, 1);
	assert_int_equal(f.vcpu_inits, 2);
	assert_int_equal(vm->nr_vcpus, 2);
	assert_int_equal(f.set_memory_calls, vm->mem.nr_slots);
	for (i = 0; i < vm->mem.nr_slots; i++) {
		assert_int_equal(f.slot_size[i], vm->mem.slot[i].size);
		assert_int_equal(f.slot_flags[i], 0); /* no dirty logging outside a migration */
	}
	/* The kernel was loaded into the guest's RAM: its "code" (0xcc) where it was placed. */
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&vm->mem, vm->kernel.load_addr, 1), 0xcc);
	vm_destroy(vm);
	assert_int_equal(f.vcpu_finis, 2);
	assert_int_equal(f.vm_finis, 1);
	fake_vm_config_free(&cfg);
	fake_hv_fini(&f);
}

/* A hypervisor that cannot create the VM: NULL, and its half-made VM undone once. */
static void test_create_fails(void **state)
{
	struct vm_config cfg;
	struct fake_hv f;

	(void)state;
	fake_hv_init(&f);
	f.fail_vm_init = -ENODEV;
	fake_vm_config(&cfg, &f, 1, MEM, -1);
	assert_null(vm_create(&cfg));
	assert_int_equal(f.vm_inits, 1);
	assert_int_equal(f.vm_finis, 1);
	assert_int_equal(f.vcpu_inits, 0);
	fake_vm_config_free(&cfg);
	fake_hv_fini(&f);
}

/* Port exits reach the UART; the guest's power-off ends vm_run with every vCPU stopped. */
static void test_run_poweroff(void **state)
{
	struct runner r;
	struct vm_config cfg;
	struct fake_hv f;
	struct vm *vm;
	char buf[8] = "";
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	fake_hv_init(&f);
	fake_vm_config(&cfg, &f, 2, MEM, p[1]);
	vm = vm_create(&cfg);
	assert_non_null(vm);
	out(&f, 0, PORT_COM1, 1, 'h');
	out(&f, 0, PORT_COM1, 1, 'i');
	exit_event(&f, 0, KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_SHUTDOWN);
	start(&r, vm);
	assert_int_equal(finish(&r), VM_EXIT_POWEROFF);
	assert_int_equal(fake_hv_exits_taken(&f, 0), 3);
	assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 2);
	assert_string_equal(buf, "hi");
	assert_int_equal(vm->vcpus_active, 0); /* vCPU 1 too, kicked out of its run */
	assert_true(f.kicks >= 1);
	vm_destroy(vm);
	close(p[0]);
	close(p[1]);
	fake_vm_config_free(&cfg);
	fake_hv_fini(&f);
}

/* A triple fault: a reset when the guest meant it, else an error naming the RIP. */
static void test_triple_fault(void **state)
{
	static const struct { enum hv_shutdown kind; enum vm_exit why; } cases[] = {
		{ HV_SHUTDOWN_RESET, VM_EXIT_RESET },
		{ HV_SHUTDOWN_UNKNOWN, VM_EXIT_RESET },
		{ HV_SHUTDOWN_CRASH, VM_EXIT_ERROR },
	};
	struct vm_config cfg;
	struct fake_hv f;
	struct runner r;
	struct vm *vm;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_hv_init(&f);
		f.shutdown_kind = cases[i].kind;
		fake_vm_config(&cfg, &f, 1, MEM, -1);
		vm = vm_create(&cfg);
		assert_non_null(vm);
		exit_event(&f, 0, KVM_EXIT_SHUTDOWN, 0);
		start(&r, vm);
		assert_int_equal(finish(&r), cases[i].why);
		if (cases[i].why == VM_EXIT_ERROR) {
			assert_non_null(strstr(vm->exit_msg, "triple fault"));
			assert_non_null(strstr(vm->exit_msg, "RIP 0xfff0"));
		}
		vm_destroy(vm);
		fake_vm_config_free(&cfg);
		fake_hv_fini(&f);
	}
}

/* A VM under control.c, its main thread in vm_run on a thread of the test. */
struct controlled {
	struct vm_config cfg;
	struct fake_hv f;
	struct vmm vmm;
	struct vm *vm;
	struct runner r;
};

static void control_start(struct controlled *c, unsigned int cpus)
{
	fake_hv_init(&c->f);
	fake_vm_config(&c->cfg, &c->f, cpus, MEM, -1);
	assert_int_equal(vmm_init(&c->vmm, &c->cfg), 0);
	snprintf(c->vmm.lease_owner, sizeof(c->vmm.lease_owner), "test");
	c->vm = vm_create(&c->cfg);
	assert_non_null(c->vm);
	vmm_set_vm(&c->vmm, c->vm);
	start(&c->r, c->vm);
	wait_active(c->vm, cpus, 0);
}

static void control_end(struct controlled *c, enum vm_exit why)
{
	assert_int_equal(finish(&c->r), why);
	vmm_set_vm(&c->vmm, NULL);
	vm_destroy(c->vm);
	vmm_fini(&c->vmm);
	fake_vm_config_free(&c->cfg);
	fake_hv_fini(&c->f);
}

/*
 * Pause through the API parks every vCPU (a scripted exit waits), a second pause is
 * refused with a reason, resume lets the exit through, and reset ends vm_run.
 */
static void test_api_pause_resume_reset(void **state)
{
	struct api_reply reply = { 0 };
	struct controlled *c = calloc(1, sizeof(*c));
	unsigned int runs;

	(void)state;
	assert_non_null(c);
	control_start(c, 2);
	assert_int_equal(vmm_api_ops.pause(&c->vmm, &reply), 0);
	assert_true(vm_paused(c->vm));
	wait_active(c->vm, 2, 2);
	out(&c->f, 0, 0x80, 1, 0x42); /* POST code port: nobody there, the exit is harmless */
	pthread_mutex_lock(&c->f.lock);
	runs = c->f.runs;
	pthread_mutex_unlock(&c->f.lock);
	sleep_ms(50);
	assert_int_equal(fake_hv_exits_taken(&c->f, 0), 0);
	/* A parked vCPU sleeps until resume: it does not spin through the hypervisor. */
	pthread_mutex_lock(&c->f.lock);
	assert_int_equal(c->f.runs, runs);
	pthread_mutex_unlock(&c->f.lock);
	assert_int_equal(vmm_api_ops.pause(&c->vmm, &reply), -EALREADY);
	assert_string_equal(reply.error, "the VM is already paused");
	assert_int_equal(vmm_api_ops.resume(&c->vmm, &reply), 0);
	assert_false(vm_paused(c->vm));
	wait_exits(&c->f, 0, 1);
	wait_active(c->vm, 2, 0);
	assert_int_equal(vmm_api_ops.reset(&c->vmm, &reply), 0);
	control_end(c, VM_EXIT_RESET);
	free(c);
}

/*
 * Shutdown through the API presses the power button: the SCI rises once the guest
 * enabled it, and the guest's S5 write powers the machine off.
 */
static void test_api_shutdown(void **state)
{
	struct api_reply reply = { 0 };
	struct controlled *c = calloc(1, sizeof(*c));
	unsigned int ms;

	(void)state;
	assert_non_null(c);
	control_start(c, 1);
	out(&c->f, 0, PORT_PM1A_EVT + 2, 2, 0x0100); /* PM1 enable: PWRBTN_EN */
	wait_exits(&c->f, 0, 1);
	assert_int_equal(c->f.irq_raises[IRQ_SCI], 0);
	assert_int_equal(vmm_api_ops.shutdown(&c->vmm, &reply), 0);
	for (ms = 0; ms < WAIT_MS && !c->f.irq[IRQ_SCI]; ms += 5)
		sleep_ms(5);
	assert_int_equal(c->f.irq[IRQ_SCI], 1);
	out(&c->f, 0, PORT_PM1A_CNT, 2, (ACPI_S5_SLP_TYP << 10) | 0x2000); /* SLP_TYP S5 + SLP_EN */
	control_end(c, VM_EXIT_POWEROFF);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test(test_create_fails),
		cmocka_unit_test(test_run_poweroff),
		cmocka_unit_test(test_triple_fault),
		cmocka_unit_test(test_api_pause_resume_reset),
		cmocka_unit_test(test_api_shutdown),
	};

	log_set_level(LOG_ERROR);
	alarm(60); /* a vCPU that never parks hangs vm_pause: fail, not hang */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
