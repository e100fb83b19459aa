// SPDX-License-Identifier: MIT
/*
 * The allowlist entries of issue 23: the ioctls a guest reboot with --net needs on
 * the main thread (TUNSETSNDBUF), vCPU threads narrowed to running (no CPUID, MSR
 * or register writes), connect only on the vsock's I/O thread, and the main thread
 * narrowed once start-up is over (no existing file by path, no TCP socket). Each case forks a child that installs a kind's filter;
 * an allowed ioctl on /dev/null reaches the kernel (ENOTTY), a forbidden one kills
 * the child with SIGSYS and one line naming it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * The main thread once start-up is over (SANDBOX_MAIN_RUN on top of MAIN, as main.c
 * stacks them): no existing file opens by path, no AF_INET/AF_INET6 socket, both
 * refused with EACCES (a snapshot or a migration then says why), and a thread it
 * creates afterwards inherits that; a snapshot's directory and new files still open,
 * Unix sockets and connect still work. keep (arg) puts back what it names.
 */
struct main_run_arg {
	unsigned int keep;
	char dir[64]; /* an empty directory, made before the filter */
};

static void *thread_inet(void *arg)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)arg;
	return (void *)(intptr_t)(fd < 0 ? errno : 0);
}

static int body_main_run(void *arg)
{
	const struct main_run_arg *a = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/plinth" };
	bool inet = a->keep & SANDBOX_KEEP_INET, open_any = a->keep & SANDBOX_KEEP_OPEN;
	int dfd, fd, sk;
	pthread_t t;
	void *ret;

	if (sandbox_seccomp_install(SANDBOX_MAIN) || sandbox_seccomp_narrow_main(a->keep))
		return 100;
	/* An existing file, read-only or writable, by any of the open calls. */
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	CHECK(open_any ? fd >= 0 : fd < 0 && errno == EACCES, 1);
	if (fd >= 0)
		close(fd);
	fd = openat(AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(open_any ? fd >= 0 : fd < 0 && errno == EACCES, 2);
	if (fd >= 0)
		close(fd);
	/* A snapshot: its directory, then new files only. */
	dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, 3);
	fd = openat(dfd, "state.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	CHECK(fd >= 0, 4);
	close(fd);
	fd = openat(dfd, "state.tmp", O_WRONLY | O_CLOEXEC); /* now it exists */
	CHECK(open_any ? fd >= 0 : fd < 0 && errno == EACCES, 5);
	if (fd >= 0)
		close(fd);
	fd = openat(dfd, "other", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* no O_EXCL */
	CHECK(open_any ? fd >= 0 : fd < 0 && errno == EACCES, 6);
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, "state.tmp", 0);
	unlinkat(dfd, "other", 0);
	close(dfd);
	/* Network sockets: refused, here and on a thread created now. */
	sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(inet ? sk >= 0 : sk < 0 && errno == EACCES, 7);
	if (sk >= 0)
		close(sk);
	sk = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(inet ? sk >= 0 || errno == EAFNOSUPPORT : sk < 0 && errno == EACCES, 8);
	if (sk >= 0)
		close(sk);
	CHECK(pthread_create(&t, NULL, thread_inet, NULL) == 0, 9);
	pthread_join(t, &ret);
	CHECK(inet ? ret == NULL : (intptr_t)ret == EACCES, 10);
	/* Unix sockets and connect (a migration over unix:, vsock's threads) stay. */
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(sk >= 0, 11);
	CHECK(connect(sk, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ENOENT, 12);
	close(sk);
	return 0;
}

static void test_main_after_startup(void **state)
{
	static const unsigned int keeps[] = {
		0, SANDBOX_KEEP_INET, SANDBOX_KEEP_OPEN, SANDBOX_KEEP_INET | SANDBOX_KEEP_OPEN,
	};
	struct main_run_arg a;

	(void)state;
	for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
		a.keep = keeps[i];
		snprintf(a.dir, sizeof(a.dir), "/tmp/plinth-main-run-XXXXXX");
		assert_non_null(mkdtemp(a.dir));
		assert_int_equal(run_child(body_main_run, &a, &res), 0);
		rmdir(a.dir);
		if (!child_exited(&res, 0))
			fail_msg("main-run with keep %#x: status %#x (exit code = failed check), "
				 "stderr: %s", a.keep, res.status, res.err);
	}
}

/* Any other socket family still kills the narrowed main thread, naming its filter. */
static int body_main_run_packet(void *arg)
{
	(void)arg;
	if (sandbox_seccomp_install(SANDBOX_MAIN) || sandbox_seccomp_narrow_main(0))
		return 100;
	socket(AF_PACKET, SOCK_RAW, 0);
	return 1;
}

static void test_main_after_startup_packet(void **state)
{
	(void)state;
	assert_int_equal(run_child(body_main_run_packet, NULL, &res), 0);
	if (!child_killed(&res, SIGSYS) ||
	    !strstr(res.err, "(main-run filter) made a forbidden syscall: socket"))
		fail_msg("AF_PACKET on main-run: status %#x, stderr: %s", res.status, res.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tap_setup_on_main),
		cmocka_unit_test(test_vcpu_runs),
		cmocka_unit_test(test_vcpu_cannot_change_its_cpu),
		cmocka_unit_test(test_connect_only_vsock),
		cmocka_unit_test(test_main_after_startup),
		cmocka_unit_test(test_main_after_startup_packet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
