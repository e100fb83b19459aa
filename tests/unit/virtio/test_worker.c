// SPDX-License-Identifier: MIT
/*
 * The device I/O thread: spawned parked before the guest runs, DRIVER_OK and reset
 * carried out by it on request. The point is the seccomp wiring: a vCPU thread
 * (SANDBOX_VCPU: no epoll_create1, no thread creation, no tap ioctls) writes
 * DRIVER_OK and reset, and the device's start/stop work (epoll set, ops->start
 * such as TUNSETOFFLOAD) must happen on the worker under SANDBOX_IO. Each such
 * case runs in a forked child, since filters cannot be removed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "../sandbox/child.h"
#include "devices.h"
#include "drv_pci.h"
#include "internal.h"
#include "sandbox.h"

#define RING 0x1000u
#define BUF  0x20000u

static const uint8_t RUNNING = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
static const uint64_t WANT = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			     (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

static int install_io(void *arg)
{
	(void)arg;
	return sandbox_seccomp_install(SANDBOX_IO);
}

static int record_tid(void *arg)
{
	*(pid_t *)arg = gettid();
	return 0;
}

/* Child: exit codes name the step that failed (0: all good). */
#define CHECK(cond, code)                                                                  \
	do {                                                                               \
		if (!(cond))                                                               \
			return (code);                                                     \
	} while (0)

/*
 * virtio-rng with the worker under IO and this thread under VCPU: two full
 * start/request/reset rounds.
 */
static int rng_under_filters(void *arg)
{
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp;
	struct pci_device *d;
	struct drv_vq dq;
	int round;

	(void)arg;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	CHECK(virtio_rng_create(&bus, &fm.gm, NULL, &vp) == 0, 10);
	d = bus.dev[0];
	virtio_pci_set_thread_hook(vp, install_io, NULL); /* as vm_run() does */
	CHECK(virtio_pci_spawn_worker(vp) == 0, 11);
	CHECK(sandbox_seccomp_install(SANDBOX_VCPU) == 0, 12);

	for (round = 0; round < 2; round++) {
		drv_vq_setup(&dq, &fm, 16, RING);
		CHECK(drv_init(d, WANT, 1, &dq) == RUNNING, 20 + round);
		CHECK(virtio_dev_running(virtio_pci_vdev(vp)), 30 + round);
		drv_set_used_event(&dq, 0);
		drv_set_desc(&dq, 0, BUF, 64, VRING_DESC_F_WRITE, 0);
		drv_kick_head(&dq, 0);
		drv_notify(d, 0);
		CHECK(drv_wait_used(&dq, 1), 40 + round);
		drv_set_status(d, 0);
		CHECK(drv_get_status(d) == 0, 50 + round);
		CHECK(!virtio_dev_running(virtio_pci_vdev(vp)), 60 + round);
	}
	return 0; /* the process exits without freeing: threads under filters, as plinth */
}

static void test_rng_driver_ok_on_filtered_vcpu(void **state)
{
	struct child_result res;

	(void)state;
	assert_int_equal(run_child(rng_under_filters, NULL, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("child: status 0x%x, stderr: %s", res.status, res.err);
	assert_null(strstr(res.err, "forbidden syscall"));
}

/*
 * virtio-net on a socket that claims TUNSETOFFLOAD: DRIVER_OK makes ops->start
 * issue it, which the VCPU filter would kill; on the worker (IO) it runs, fails
 * on a socket, and the device asks for a reset instead.
 */
static int net_start_under_filters(void *arg)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	struct virtio_dev *vdev = calloc(1, sizeof(*vdev));
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp;
	struct pci_device *d;
	struct drv_vq dq[2];
	int sv[2];
	uint8_t s;

	(void)arg;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	CHECK(vdev && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0, 10);
	CHECK(virtio_net_init(vdev, &fm.gm, sv[0], mac, true) == 0, 11);
	CHECK(virtio_pci_create_on(&bus, vdev, &vp) == 0, 12);
	d = bus.dev[0];
	virtio_pci_set_thread_hook(vp, install_io, NULL);
	CHECK(virtio_pci_spawn_worker(vp) == 0, 13);
	CHECK(sandbox_seccomp_install(SANDBOX_VCPU) == 0, 14);

	drv_vq_setup(&dq[0], &fm, 16, RING);
	drv_vq_setup(&dq[1], &fm, 16, RING + 0x4000);
	s = drv_init(d, WANT, 2, dq);
	CHECK(s & VIRTIO_CONFIG_S_NEEDS_RESET, 20);
	CHECK(!virtio_dev_running(vdev), 21);
	drv_set_status(d, 0);
	CHECK(drv_get_status(d) == 0, 22);
	return 0;
}

static void test_net_start_runs_on_worker(void **state)
{
	struct child_result res;

	(void)state;
	assert_int_equal(run_child(net_start_under_filters, NULL, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("child: status 0x%x, stderr: %s", res.status, res.err);
	assert_non_null(strstr(res.err, "TUNSETOFFLOAD"));
	assert_null(strstr(res.err, "forbidden syscall"));
}

/*
 * Without filters: no thread until spawned (the jail needs a single thread), the
 * hook on the worker's own thread, start/stop idempotent, free while running.
 */
static void test_spawn_and_requests(void **state)
{
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp;
	struct virtio_dev *vdev;
	struct drv_vq dq;
	pid_t tid = 0;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(virtio_rng_create(&bus, &fm.gm, NULL, &vp), 0);
	vdev = virtio_pci_vdev(vp);
	assert_false(vdev->worker.created);
	assert_false(virtio_dev_running(vdev));
	virtio_dev_stop(vdev); /* never spawned: harmless */
	virtio_pci_set_thread_hook(vp, record_tid, &tid);
	assert_int_equal(virtio_pci_spawn_worker(vp), 0);
	assert_true(vdev->worker.created);
	assert_int_equal(virtio_pci_spawn_worker(vp), 0);

	drv_vq_setup(&dq, &fm, 16, RING);
	assert_int_equal(drv_init(bus.dev[0], WANT, 1, &dq), RUNNING);
	assert_true(virtio_dev_running(vdev));
	assert_true(tid > 0);
	assert_int_not_equal(tid, gettid());
	/* Start while running is a no-op; stop twice is harmless. */
	assert_int_equal(virtio_dev_start(vdev), 0);
	virtio_dev_stop(vdev);
	virtio_dev_stop(vdev);
	assert_false(virtio_dev_running(vdev));
	assert_int_equal(virtio_dev_start(vdev), 0);
	assert_true(virtio_dev_running(vdev));
	virtio_pci_free(vp); /* stops and joins a running worker */
	fake_mem_fini(&fm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_driver_ok_on_filtered_vcpu),
		cmocka_unit_test(test_net_start_runs_on_worker),
		cmocka_unit_test(test_spawn_and_requests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
