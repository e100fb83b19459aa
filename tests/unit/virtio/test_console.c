// SPDX-License-Identifier: MIT
/* virtio-console: output, input with and without guest buffers, EOF, the command line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_console.h>

#include "devices.h"
#include "drv_pci.h"
#include "fake_dev.h"
#include "internal.h"

#define RING 0x1000u
#define BUF  0x20000u

struct fixture {
	struct fake_mem fm;
	struct virtio_dev vdev;
	struct fake_transport ft;
	struct drv_vq dq[2];
	int host; /* our end of the console's socketpair */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	if (!f || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	fake_mem_init(&f->fm);
	f->host = sv[0];
	if (virtio_console_init(&f->vdev, &f->fm.gm, sv[1], sv[1]))
		return -1;
	if (fake_dev_setup(&f->vdev, &f->ft, &f->fm, f->dq, ~0ULL, 8, RING))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->vdev);
	if (f->host >= 0)
		close(f->host);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

static void test_output(void **state)
{
	struct fixture *f = *state;
	char got[16] = { 0 };
	uint32_t id, len;

	memcpy(gpa_ptr(&f->fm, BUF), "hel", 3);
	memcpy(gpa_ptr(&f->fm, BUF + 100), "lo\n", 3);
	drv_set_desc(&f->dq[1], 0, BUF, 3, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq[1], 1, BUF + 100, 3, 0, 0);
	drv_kick_head(&f->dq[1], 0);
	virtio_console_ops.handle(&f->vdev, 1, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[1]), 1);
	drv_used_elem(&f->dq[1], 0, &id, &len);
	assert_int_equal(len, 0);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), 6);
	assert_string_equal(got, "hello\n");
	assert_true(f->ft.notifies[1] >= 1);
}

static void test_input(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	/* Input with no buffer posted: nothing happens, nothing is lost. */
	assert_int_equal(write(f->host, "abc", 3), 3);
	virtio_console_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);

	/* The guest posts a buffer and kicks: the input arrives. */
	drv_set_desc(&f->dq[0], 0, BUF, 16, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_console_ops.handle(&f->vdev, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 1);
	drv_used_elem(&f->dq[0], 0, &id, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(gpa_ptr(&f->fm, BUF), "abc", 3);

	/* A posted buffer with no input waiting is kept for later. */
	drv_set_desc(&f->dq[0], 1, BUF + 64, 2, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], 1);
	virtio_console_ops.handle(&f->vdev, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 1);
	assert_int_equal(write(f->host, "xyz", 3), 3);
	virtio_console_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 2);
	drv_used_elem(&f->dq[0], 1, &id, &len);
	assert_int_equal(len, 2); /* the rest waits for the next buffer */
	assert_memory_equal(gpa_ptr(&f->fm, BUF + 64), "xy", 2);
}

static void test_input_eof(void **state)
{
	struct fixture *f = *state;

	close(f->host);
	f->host = -1;
	drv_set_desc(&f->dq[0], 0, BUF, 16, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_console_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN | EPOLLHUP);
	virtio_console_ops.handle(&f->vdev, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0); /* the buffer is not wasted */
	/* Output to a closed peer is dropped, the chain still answered. */
	drv_set_desc(&f->dq[1], 0, BUF, 3, 0, 0);
	drv_kick_head(&f->dq[1], 0);
	virtio_console_ops.handle(&f->vdev, 1, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[1]), 1);
}

static void test_bad_chain(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->dq[1], 0, FAKE_RAM, 3, 0, 0);
	drv_kick_head(&f->dq[1], 0);
	virtio_console_ops.handle(&f->vdev, 1, EPOLLIN);
	assert_int_equal(f->ft.resets, 1);
	assert_int_equal(write(f->host, "q", 1), 1);
	drv_set_desc(&f->dq[0], 0, BUF, 3, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_console_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(f->ft.resets, 2);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint32_t ports = 0;

	virtio_console_ops.cfg_read(&f->vdev, 4, &ports, 4);
	assert_int_equal(ports, 1);
	assert_false(f->vdev.host_features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT));
}

static void test_create_and_loopback(void **state)
{
	char fifo[64] = "/tmp/plinth-con-XXXXXX", spec[128];
	struct fake_mem fm;
	struct pci_bus bus;
	struct drv_vq dq[2];
	struct virtio_pci *vp;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(virtio_console_create(&bus, &fm.gm, "serial", NULL), -EINVAL);
	assert_int_equal(virtio_console_create(&bus, &fm.gm, "virtio,path=/nonexistent/x", NULL),
			 -EINVAL);
	assert_int_equal(virtio_console_create(&bus, &fm.gm, "virtio,speed=9600", NULL), -EINVAL);
	assert_int_equal(bus.nr, 0);

	/* A FIFO opened read-write loops the guest's output back as its input. */
	assert_non_null(mkdtemp(fifo));
	strcat(fifo, "/fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(spec, sizeof(spec), "virtio,path=%s", fifo);
	assert_int_equal(virtio_console_create(&bus, &fm.gm, spec, &vp), 0);
	assert_int_equal(cfg_rd(bus.dev[0], 2, 2), 0x1043);
	drv_vq_setup(&dq[0], &fm, 8, RING);
	drv_vq_setup(&dq[1], &fm, 8, RING + 0x4000);
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 2, dq) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);
	drv_set_desc(&dq[0], 0, BUF, 64, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq[0], 0);
	drv_notify(bus.dev[0], 0);
	memcpy(gpa_ptr(&fm, BUF + 0x100), "ping", 4);
	drv_set_desc(&dq[1], 0, BUF + 0x100, 4, 0, 0);
	drv_kick_head(&dq[1], 0);
	drv_notify(bus.dev[0], 1);
	assert_true(drv_wait_used(&dq[1], 1));
	assert_true(drv_wait_used(&dq[0], 1));
	assert_memory_equal(gpa_ptr(&fm, BUF), "ping", 4);

	virtio_pci_free(vp);
	unlink(fifo);
	*strrchr(fifo, '/') = '\0';
	rmdir(fifo);
	fake_mem_fini(&fm);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_output),
		T(test_input),
		T(test_input_eof),
		T(test_bad_chain),
		T(test_config),
		cmocka_unit_test(test_create_and_loopback),
	};

	signal(SIGPIPE, SIG_IGN); /* as the VMM does: a closed console peer is an EPIPE */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
