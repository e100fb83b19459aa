// SPDX-License-Identifier: MIT
/*
 * The allowlist entries of issue 23: the ioctls a guest reboot with --net needs on
 * the main thread (TUNSETSNDBUF), vCPU threads narrowed to running (no CPUID, MSR
 * or register writes), connect only on the vsock's I/O thread. Each case forks a child that installs a kind's filter;
 * an allowed ioctl on /dev/null reaches the kernel (ENOTTY), a forbidden one kills
 * the child with SIGSYS and one line naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "child.h"
#include "sandbox.h"

#define CHECK(cond, code) do { if (!(cond)) return (code); } while (0)

static struct child_result res;

/* /dev/null, then the filter of kind: 0 or 100. */
static int open_then_install(enum sandbox_thread kind, int *fd)
{
	*fd = open("/dev/null", O_RDWR);
	if (*fd < 0 || sandbox_seccomp_install(kind))
		return 100;
	return 0;
}

/* tap_open() on a VM re-created after a guest reset: every ioctl it makes. */
static int body_main_tap_setup(void *arg)
{
	int fd, sndbuf = 1 << 20;

	(void)arg;
	if (open_then_install(SANDBOX_MAIN, &fd))
		return 100;
	CHECK(ioctl(fd, TUNSETIFF, NULL) < 0 && errno != ENOSYS, 1);
	CHECK(ioctl(fd, TUNSETVNETHDRSZ, NULL) < 0 && errno != ENOSYS, 2);
	CHECK(ioctl(fd, TUNSETSNDBUF, &sndbuf) < 0 && errno == ENOTTY, 3);
	CHECK(ioctl(fd, TUNSETOFFLOAD, 0UL) < 0 && errno == ENOTTY, 4);
	return 0;
}

/* What a vCPU thread does itself: run, read registers; and its interrupt routes. */
static int body_vcpu_runs(void *arg)
{
	int fd;

	(void)arg;
	if (open_then_install(SANDBOX_VCPU, &fd))
		return 100;
	CHECK(ioctl(fd, KVM_RUN, 0) < 0 && errno == ENOTTY, 1);
	CHECK(ioctl(fd, KVM_GET_REGS, NULL) < 0 && errno == ENOTTY, 2);
	CHECK(ioctl(fd, KVM_GET_SREGS, NULL) < 0 && errno == ENOTTY, 3);
	CHECK(ioctl(fd, KVM_SET_GSI_ROUTING, NULL) < 0 && errno == ENOTTY, 4);
	return 0;
}

static int body_vcpu_ioctl(void *arg)
{
	unsigned long req = (unsigned long)(uintptr_t)arg;
	int fd;

	if (open_then_install(SANDBOX_VCPU, &fd))
		return 100;
	ioctl(fd, req, NULL);
	return 1;
}

/* The main thread still restores vCPU state (restore, migration, reset). */
static int body_main_vcpu_state(void *arg)
{
	int fd;

	(void)arg;
	if (open_then_install(SANDBOX_MAIN, &fd))
		return 100;
	CHECK(ioctl(fd, KVM_SET_CPUID2, NULL) < 0 && errno == ENOTTY, 1);
	CHECK(ioctl(fd, KVM_SET_MSRS, NULL) < 0 && errno == ENOTTY, 2);
	CHECK(ioctl(fd, KVM_SET_REGS, NULL) < 0 && errno == ENOTTY, 3);
	return 0;
}

static void expect_exit0(void)
{
	if (!child_exited(&res, 0))
		fail_msg("child status %#x, expected exit 0; stderr: %s", res.status, res.err);
}

static void test_tap_setup_on_main(void **state)
{
	(void)state;
	assert_int_equal(run_child(body_main_tap_setup, NULL, &res), 0);
	expect_exit0();
}

static void test_vcpu_runs(void **state)
{
	(void)state;
	assert_int_equal(run_child(body_vcpu_runs, NULL, &res), 0);
	expect_exit0();
	assert_int_equal(run_child(body_main_vcpu_state, NULL, &res), 0);
	expect_exit0();
}

static void test_vcpu_cannot_change_its_cpu(void **state)
{
	static const unsigned long reqs[] = {
		KVM_SET_CPUID2, KVM_SET_MSRS, KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_XSAVE,
		KVM_SET_LAPIC, KVM_SET_TSC_KHZ, KVM_NMI,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		assert_int_equal(run_child(body_vcpu_ioctl, (void *)(uintptr_t)reqs[i], &res), 0);
		if (!child_killed(&res, SIGSYS) || !strstr(res.err, "(vcpu filter) made a "
							     "forbidden syscall: ioctl"))
			fail_msg("ioctl %#lx on a vCPU thread: status %#x, stderr: %s", reqs[i],
				 res.status, res.err);
	}
}

/* connect: only the vsock's I/O thread (io-connect) may; any other I/O thread dies. */
static int body_connect(void *arg)
{
	enum sandbox_thread kind = (enum sandbox_thread)(intptr_t)arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/plinth" };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || sandbox_seccomp_install(kind))
		return 100;
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ENOENT, 1);
	return 0;
}

static void test_connect_only_vsock(void **state)
{
	(void)state;
	assert_int_equal(run_child(body_connect, (void *)(intptr_t)SANDBOX_IO_CONNECT, &res), 0);
	expect_exit0();
	assert_int_equal(run_child(body_connect, (void *)(intptr_t)SANDBOX_MAIN, &res), 0);
	expect_exit0();
	assert_int_equal(run_child(body_connect, (void *)(intptr_t)SANDBOX_IO, &res), 0);
	if (!child_killed(&res, SIGSYS) ||
	    !strstr(res.err, "(io filter) made a forbidden syscall: connect"))
		fail_msg("connect on a plain I/O thread: status %#x, stderr: %s", res.status,
			 res.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tap_setup_on_main),
		cmocka_unit_test(test_vcpu_runs),
		cmocka_unit_test(test_vcpu_cannot_change_its_cpu),
		cmocka_unit_test(test_connect_only_vsock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
