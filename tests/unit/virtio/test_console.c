// SPDX-License-Identifier: MIT
/*
 * virtio-console: output, input with and without guest buffers (also on the I/O
 * thread), EOF, the command line, hvc0 on stdio.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
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

/*
 * A host that reads slowly: output chains wait (part-written) for EPOLLOUT on the
 * I/O thread instead of blocking it; everything arrives in order; and a reset
 * while output is stuck returns at once (it joins the thread).
 */
static void test_output_backpressure(void **state)
{
	enum { CHUNK = 4096, CHAINS = 64 };
	struct fake_mem fm;
	struct pci_bus bus;
	struct drv_vq dq[2];
	struct virtio_pci *vp;
	struct virtio_dev *vdev;
	static uint8_t got[CHUNK * CHAINS];
	size_t have = 0;
	int sv[2], small = 4096;
	unsigned int i;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	vdev = calloc(1, sizeof(*vdev));
	assert_int_equal(virtio_console_init(vdev, &fm.gm, sv[1], sv[1]), 0);
	assert_int_equal(virtio_pci_create_on(&bus, vdev, &vp), 0);
	drv_vq_setup(&dq[0], &fm, 128, RING);
	drv_vq_setup(&dq[1], &fm, 128, RING + 0x4000);
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 2, dq) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);
	for (i = 0; i < CHAINS; i++) {
		uint8_t *p = gpa_ptr(&fm, 0x40000u + CHUNK * i);

		memset(p, 'a' + i % 26, CHUNK);
		drv_set_desc(&dq[1], (uint16_t)i, 0x40000u + CHUNK * i, CHUNK, 0, 0);
		drv_kick_head(&dq[1], (uint16_t)i);
	}
	drv_notify(bus.dev[0], 1);
	usleep(50000);
	/* Stuck: far from all of it could be written, and the I/O thread is not blocked. */
	assert_true(drv_used_idx(&dq[1]) < CHAINS);
	drv_set_status(bus.dev[0], 0); /* reset while output waits: must come back */
	assert_int_equal(drv_get_status(bus.dev[0]), 0);

	/* Start over, read slowly: every byte in order. */
	drv_vq_setup(&dq[0], &fm, 128, RING);
	drv_vq_setup(&dq[1], &fm, 128, RING + 0x4000);
	while (recv(sv[0], got, sizeof(got), MSG_DONTWAIT) > 0)
		; /* what the first run got out */
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 2, dq) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);
	for (i = 0; i < CHAINS; i++) {
		drv_set_desc(&dq[1], (uint16_t)i, 0x40000u + CHUNK * i, CHUNK, 0, 0);
		drv_kick_head(&dq[1], (uint16_t)i);
	}
	drv_notify(bus.dev[0], 1);
	while (have < sizeof(got)) {
		struct pollfd p = { .fd = sv[0], .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 5000), 1);
		n = recv(sv[0], got + have, 1000, 0);
		assert_true(n > 0);
		have += (size_t)n;
	}
	for (i = 0; i < CHAINS; i++)
		assert_int_equal(got[CHUNK * i + CHUNK - 1], 'a' + i % 26);
	assert_true(drv_wait_used(&dq[1], CHAINS));

	virtio_pci_free(vp);
	close(sv[0]);
	fake_mem_fini(&fm);
}

/* CPU time this process has used, in milliseconds. */
static long cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * On the I/O thread, as plinth runs it, with a pipe as the host end: input that
 * arrives before the guest has posted any receive buffer waits in the pipe (the
 * thread neither drops it nor spins), and reaches the guest once it posts buffers.
 * Then end of input with bytes still queued: they arrive, and EOF does not spin.
 */
static void test_input_before_buffers_threaded(void **state)
{
	struct fake_mem fm;
	struct pci_bus bus;
	struct drv_vq dq[2];
	struct virtio_pci *vp;
	struct virtio_dev *vdev;
	uint32_t id, len;
	int in[2], out[2];
	long t0;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	vdev = calloc(1, sizeof(*vdev));
	assert_int_equal(virtio_console_init(vdev, &fm.gm, in[0], out[1]), 0);
	assert_int_equal(virtio_pci_create_on(&bus, vdev, &vp), 0);

	/* Input before the device even runs, and more once it runs with no buffers. */
	assert_int_equal(write(in[1], "echo ", 5), 5);
	drv_vq_setup(&dq[0], &fm, 8, RING);
	drv_vq_setup(&dq[1], &fm, 8, RING + 0x4000);
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 2, dq) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(write(in[1], "answer\n", 7), 7);
	t0 = cpu_ms();
	usleep(200000);
	assert_true(cpu_ms() - t0 < 100); /* waiting for buffers, not polling */
	assert_int_equal(drv_used_idx(&dq[0]), 0);

	/* The guest posts two buffers and kicks: everything arrives, in order. */
	drv_set_desc(&dq[0], 0, BUF, 4, VRING_DESC_F_WRITE, 0);
	drv_set_desc(&dq[0], 1, BUF + 64, 64, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq[0], 0);
	drv_kick_head(&dq[0], 1);
	drv_notify(bus.dev[0], 0);
	assert_true(drv_wait_used(&dq[0], 2));
	drv_used_elem(&dq[0], 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 4);
	drv_used_elem(&dq[0], 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 8);
	assert_memory_equal(gpa_ptr(&fm, BUF), "echo", 4);
	assert_memory_equal(gpa_ptr(&fm, BUF + 64), " answer\n", 8);

	/* The last bytes and end of input while no buffer is posted. */
	assert_int_equal(write(in[1], "exit 5\n", 7), 7);
	close(in[1]);
	t0 = cpu_ms();
	usleep(200000);
	assert_true(cpu_ms() - t0 < 100);
	drv_set_desc(&dq[0], 2, BUF + 128, 64, VRING_DESC_F_WRITE, 0);
	drv_set_desc(&dq[0], 3, BUF + 192, 64, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&dq[0], 2);
	drv_kick_head(&dq[0], 3);
	drv_notify(bus.dev[0], 0);
	assert_true(drv_wait_used(&dq[0], 3));
	drv_used_elem(&dq[0], 2, &id, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(gpa_ptr(&fm, BUF + 128), "exit 5\n", 7);
	/* At EOF the other buffer is kept, unanswered, and nothing spins. */
	t0 = cpu_ms();
	usleep(200000);
	assert_true(cpu_ms() - t0 < 100);
	assert_int_equal(drv_used_idx(&dq[0]), 3);

	virtio_pci_free(vp);
	close(out[0]);
	fake_mem_fini(&fm);
}

/*
 * hvc0 on plinth's stdio when stdout is a regular file that the serial console
 * writes too: hvc0 must share the file's offset, not write over what is there.
 */
static void test_stdio_regular_file(void **state)
{
	char path[] = "/tmp/plinth-con-out-XXXXXX", got[64] = { 0 };
	int saved_in, saved_out, file, in[2], r;
	struct fake_mem fm;
	struct pci_bus bus;
	struct drv_vq dq[2];
	struct virtio_pci *vp = NULL;
	ssize_t n;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	file = mkstemp(path);
	assert_true(file >= 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	fflush(stdout);
	saved_in = dup(STDIN_FILENO);
	saved_out = dup(STDOUT_FILENO);
	assert_true(saved_in >= 0 && saved_out >= 0);
	/* Nothing may fail between here and the restore: cmocka reports on stdout. */
	dup2(in[0], STDIN_FILENO);
	dup2(file, STDOUT_FILENO);
	r = (int)write(STDOUT_FILENO, "serial1\n", 8);
	if (r == 8)
		r = virtio_console_create(&bus, &fm.gm, "virtio", &vp);
	dup2(saved_in, STDIN_FILENO);
	dup2(saved_out, STDOUT_FILENO);
	close(saved_in);
	close(saved_out);
	assert_int_equal(r, 0);

	drv_vq_setup(&dq[0], &fm, 8, RING);
	drv_vq_setup(&dq[1], &fm, 8, RING + 0x4000);
	assert_int_equal(drv_init(bus.dev[0], ~0ULL, 2, dq) & VIRTIO_CONFIG_S_DRIVER_OK,
			 VIRTIO_CONFIG_S_DRIVER_OK);
	memcpy(gpa_ptr(&fm, BUF), "hvc0\n", 5);
	drv_set_desc(&dq[1], 0, BUF, 5, 0, 0);
	drv_kick_head(&dq[1], 0);
	drv_notify(bus.dev[0], 1);
	assert_true(drv_wait_used(&dq[1], 1));
	assert_int_equal(write(file, "serial2\n", 8), 8); /* the serial console's fd */
	virtio_pci_free(vp);

	n = pread(file, got, sizeof(got) - 1, 0);
	assert_int_equal(n, 21);
	assert_string_equal(got, "serial1\nhvc0\nserial2\n");
	close(file);
	unlink(path);
	close(in[0]);
	close(in[1]);
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
		cmocka_unit_test(test_output_backpressure),
		cmocka_unit_test(test_input_before_buffers_threaded),
		cmocka_unit_test(test_stdio_regular_file),
	};

	signal(SIGPIPE, SIG_IGN); /* as the VMM does: a closed console peer is an EPIPE */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
