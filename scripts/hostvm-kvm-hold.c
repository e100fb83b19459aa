/*
 * hostvm-kvm-hold: keep one idle KVM vCPU alive in the emulated host (scripts/hostvm).
 *
 *   hostvm-kvm-hold              create a VM with an in-kernel irqchip and one vCPU that
 *                                never runs, then sleep until killed
 *   hostvm-kvm-hold --cycle N [MS]  N times: create such a VM, keep it MS milliseconds
 *                                (default 1500), close it and wait as long (the stall
 *                                reproducer, scripts/hostvm-stress)
 *
 * Why: KVM counts VMs in a static key tested in the scheduler's hot path
 * (preempt_notifier_key, in __schedule) and vCPUs whose local APIC is still software-disabled
 * in another (apic_sw_disabled, dropped a second late). Each time such a count goes from 0
 * to 1 or back, the kernel rewrites its own code with int3 breakpoints (text_poke_bp) while
 * the other CPUs run it. Under multi-threaded TCG with SVM (QEMU 7.2) the emulated host has
 * been seen to stall there, both CPUs trapping on the int3 in __schedule over and over. A VM
 * whose vCPU never runs keeps both counts above zero for the emulated host's whole life, so
 * the keys never flip; --cycle makes them flip on purpose.
 * Exit status: 0, or 1 with one line on stderr when KVM refuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* One VM with an irqchip and vCPU 0; its fds in *vm_fd and *vcpu_fd. 0 or -errno. */
static int hold_open(int kvm_fd, int *vm_fd, int *vcpu_fd)
{
	int vm, vcpu, err;

	vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm < 0)
		return -errno;
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = -errno;
		goto out_close_vm;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		err = -errno;
		goto out_close_vm;
	}
	*vm_fd = vm;
	*vcpu_fd = vcpu;
	return 0;

out_close_vm:
	close(vm);
	return err;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	long cycles = -1, ms = 1500, i;
	int kvm_fd, vm_fd = -1, vcpu_fd = -1, err;
	char *end;

	if ((argc == 3 || argc == 4) && strcmp(argv[1], "--cycle") == 0) {
		errno = 0;
		cycles = strtol(argv[2], &end, 10);
		if (errno || *end || end == argv[2] || cycles < 1) {
			fprintf(stderr, "hostvm-kvm-hold: --cycle needs a positive count\n");
			return 2;
		}
		if (argc == 4) {
			ms = strtol(argv[3], &end, 10);
			if (errno || *end || end == argv[3] || ms < 1 || ms > 3600000) {
				fprintf(stderr, "hostvm-kvm-hold: MS must be 1..3600000\n");
				return 2;
			}
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: hostvm-kvm-hold [--cycle N [MS]]\n");
		return 2;
	}
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		fprintf(stderr, "hostvm-kvm-hold: /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; cycles < 0 || i < cycles; i++) {
		err = hold_open(kvm_fd, &vm_fd, &vcpu_fd);
		if (err) {
			fprintf(stderr, "hostvm-kvm-hold: creating a VM and its vCPU: %s\n", strerror(-err));
			close(kvm_fd);
			return 1;
		}
		if (cycles < 0) {
			for (;;)
				pause();
		}
		sleep_ms(ms);
		close(vcpu_fd);
		close(vm_fd);
		sleep_ms(ms);
	}
	close(kvm_fd);
	return 0;
}
