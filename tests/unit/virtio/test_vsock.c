// SPDX-License-Identifier: MIT
/*
 * virtio-vsock through the transport with its I/O thread: host-initiated
 * connections (CONNECT/OK on the Unix socket), guest-initiated ones (PATH_P),
 * refused ports, credit, and hostile packets. The test plays the guest driver.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_vsock.h>

#include "devices.h"
#include "drv_pci.h"
#include "util.h"

#define CID   42
#define RING  0x1000u
#define RXBUF 0x40000u /* 16 receive buffers of 4 KiB */
#define TXBUF 0x60000u
#define NRX   16

struct fixture {
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp;
	struct pci_device *d;
	struct drv_vq dq[3];
	char dir[48], path[80];
	uint16_t rx_seen;  /* used entries of queue 0 consumed by the test */
	uint16_t tx_head;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char spec[200];
	unsigned int i;

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	fake_bus_init(&f->bus);
	strcpy(f->dir, "/tmp/plinth-vsock-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	snprintf(spec, sizeof(spec), "cid=%d,socket=%s", CID, f->path);
	if (virtio_vsock_create(&f->bus, &f->fm.gm, spec, &f->vp))
		return -1;
	f->d = f->bus.dev[0];
	for (i = 0; i < 3; i++)
		drv_vq_setup(&f->dq[i], &f->fm, NRX, RING + 0x4000u * i);
	if (drv_init(f->d, ~0ULL, 3, f->dq) != (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						VIRTIO_CONFIG_S_FEATURES_OK |
						VIRTIO_CONFIG_S_DRIVER_OK))
		return -1;
	/* Receive buffers, as the Linux driver posts them. */
	for (i = 0; i < NRX; i++) {
		drv_set_desc(&f->dq[0], (uint16_t)i, RXBUF + 0x1000u * i, 0x1000, VRING_DESC_F_WRITE, 0);
		drv_kick_head(&f->dq[0], (uint16_t)i);
	}
	drv_notify(f->d, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_pci_free(f->vp);
	unlink(f->path);
	rmdir(f->dir);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

/* Wait for the next packet from the device; copies its header and up to cap payload bytes. */
static bool rx_packet(struct fixture *f, struct virtio_vsock_hdr *h, void *payload, size_t cap)
{
	uint32_t id, len;
	const uint8_t *buf;

	if (!drv_wait_used(&f->dq[0], (uint16_t)(f->rx_seen + 1)) &&
	    drv_used_idx(&f->dq[0]) == f->rx_seen)
		return false;
	drv_used_elem(&f->dq[0], f->rx_seen, &id, &len);
	f->rx_seen++;
	buf = gpa_ptr(&f->fm, RXBUF + 0x1000u * id);
	memcpy(h, buf, sizeof(*h));
	if (payload)
		memcpy(payload, buf + sizeof(*h), MIN(cap, (size_t)h->len));
	/* Give the buffer back, as the driver would. */
	drv_kick_head(&f->dq[0], (uint16_t)id);
	drv_notify(f->d, 0);
	return true;
}

static void tx_packet(struct fixture *f, uint64_t src_cid, uint32_t src_port, uint32_t dst_port,
		      uint16_t op, uint32_t flags, const void *data, uint32_t len, uint32_t buf_alloc)
{
	uint16_t head = f->tx_head++ % NRX;
	uint64_t gpa = TXBUF + 0x1000u * head;
	struct virtio_vsock_hdr h = {
		.src_cid = src_cid, .dst_cid = 2, .src_port = src_port, .dst_port = dst_port,
		.len = len, .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op, .flags = flags,
		.buf_alloc = buf_alloc, .fwd_cnt = 0,
	};
	uint16_t want = (uint16_t)(drv_used_idx(&f->dq[1]) + 1);

	memcpy(gpa_ptr(&f->fm, gpa), &h, sizeof(h));
	if (len)
		memcpy(gpa_ptr(&f->fm, gpa + sizeof(h)), data, len);
	drv_set_desc(&f->dq[1], head, gpa, (uint32_t)sizeof(h) + len, 0, 0);
	drv_kick_head(&f->dq[1], head);
	drv_notify(f->d, 1);
	assert_true(drv_wait_used(&f->dq[1], want));
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static ssize_t read_timeout(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 5000) != 1)
		return -2;
	return read(fd, buf, len);
}

static void test_host_connects(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	char buf[64] = { 0 }, want[32];
	uint32_t hostport;
	int fd;

	fd = unix_connect(f->path);
	assert_int_equal(write(fd, "CONNECT 1234\n", 13), 13);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.src_cid, 2);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.dst_port, 1234);
	hostport = h.src_port;
	assert_true(hostport >= (1u << 30));

	/* The guest accepts; the host hears OK <hostport>. */
	tx_packet(f, CID, 1234, hostport, VIRTIO_VSOCK_OP_RESPONSE, 0, NULL, 0, 65536);
	snprintf(want, sizeof(want), "OK %u\n", hostport);
	assert_int_equal(read_timeout(fd, buf, strlen(want)), (ssize_t)strlen(want));
	assert_string_equal(buf, want);

	/* Bytes both ways. */
	assert_int_equal(write(fd, "hello", 5), 5);
	memset(buf, 0, sizeof(buf));
	assert_true(rx_packet(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "hello", 5);
	tx_packet(f, CID, 1234, hostport, VIRTIO_VSOCK_OP_RW, 0, "world", 5, 65536);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_timeout(fd, buf, 5), 5);
	assert_string_equal(buf, "world");

	/* The host closes: the guest is told SHUTDOWN; it answers RST. */
	close(fd);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	tx_packet(f, CID, 1234, hostport, VIRTIO_VSOCK_OP_RST, 0, NULL, 0, 65536);
	/* The connection is gone: more data gets an RST. */
	tx_packet(f, CID, 1234, hostport, VIRTIO_VSOCK_OP_RW, 0, "x", 1, 65536);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
}

static void test_host_bad_line(void **state)
{
	struct fixture *f = *state;
	char buf[8];
	int fd;

	fd = unix_connect(f->path);
	assert_int_equal(write(fd, "HELLO 12\n", 9), 9);
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 0); /* closed on us */
	close(fd);
	fd = unix_connect(f->path);
	assert_int_equal(write(fd, "CONNECT 99999999999999999999999\n", 32), 32);
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 0);
	close(fd);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0); /* the guest heard nothing */
}

static void test_guest_connects(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct virtio_vsock_hdr h;
	char buf[16] = { 0 };
	int lfd, fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_5000", f->path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);

	tx_packet(f, CID, 777, 5000, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, 777);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	tx_packet(f, CID, 777, 5000, VIRTIO_VSOCK_OP_RW, 0, "ping", 4, 65536);
	assert_int_equal(read_timeout(fd, buf, 4), 4);
	assert_string_equal(buf, "ping");
	assert_int_equal(write(fd, "pong", 4), 4);
	assert_true(rx_packet(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(buf, "pong", 4);

	/* Nothing listens on port 6000: refused. */
	tx_packet(f, CID, 778, 6000, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 778);

	/* One packet beyond the credit we gave (64 KiB) resets the connection. */
	{
		struct virtio_vsock_hdr big = { .src_cid = CID, .dst_cid = 2, .src_port = 777,
						.dst_port = 5000, .len = 70000, .type = 1,
						.op = VIRTIO_VSOCK_OP_RW, .buf_alloc = 65536 };
		uint16_t want = (uint16_t)(drv_used_idx(&f->dq[1]) + 1);

		memcpy(gpa_ptr(&f->fm, 0x80000), &big, sizeof(big));
		drv_set_desc(&f->dq[1], 15, 0x80000, sizeof(big) + 70000, 0, 0);
		drv_kick_head(&f->dq[1], 15);
		drv_notify(f->d, 1);
		assert_true(drv_wait_used(&f->dq[1], want));
	}
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 777);
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 0); /* the host side is closed */
	close(fd);
	close(lfd);
	unlink(sa.sun_path);
}

static void test_hostile_packets(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t status;

	/* A spoofed source CID and a packet for another guest: dropped silently. */
	tx_packet(f, CID + 1, 1, 5000, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0, 65536);
	/* Too short for a header. */
	drv_set_desc(&f->dq[1], 0, TXBUF, 10, 0, 0);
	drv_kick_head(&f->dq[1], 0);
	drv_notify(f->d, 1);
	assert_true(drv_wait_used(&f->dq[1], 2));
	usleep(20000);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);

	/* A length beyond the chain, or a type we don't do: RST. */
	tx_packet(f, CID, 9, 9, VIRTIO_VSOCK_OP_RW, 0, "abc", 3, 65536);
	assert_true(rx_packet(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST); /* no such connection */
	{
		struct virtio_vsock_hdr bad = { .src_cid = CID, .dst_cid = 2, .src_port = 1,
						.dst_port = 2, .len = 1000, .type = 1, .op = 5 };

		memcpy(gpa_ptr(&f->fm, TXBUF), &bad, sizeof(bad));
		drv_set_desc(&f->dq[1], 1, TXBUF, sizeof(bad) + 10, 0, 0);
		drv_kick_head(&f->dq[1], 1);
		drv_notify(f->d, 1);
		assert_true(rx_packet(f, &h, NULL, 0));
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	}
	/* The device itself is fine. */
	status = (uint8_t)drv_r(f->d, CM(VIRTIO_PCI_COMMON_STATUS), 1);
	assert_false(status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_config_and_specs(void **state)
{
	struct fixture *f = *state;
	char spec[200];
	int fd;

	assert_int_equal(drv_r(f->d, VPCI_DEVCFG, 8), CID);
	assert_int_equal(cfg_rd(f->d, 2, 2), 0x1040 + 19);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, "cid=3", NULL), -EINVAL);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, "socket=/tmp/x", NULL), -EINVAL);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, "cid=2,socket=/tmp/x", NULL), -EINVAL);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, "cid=x,socket=/tmp/x", NULL), -EINVAL);
	snprintf(spec, sizeof(spec), "cid=5,socket=%s/%0100d", f->dir, 0);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, spec, NULL), -ENAMETOOLONG);
	snprintf(spec, sizeof(spec), "cid=5,socket=%s/file", f->dir);
	fd = open(spec + strlen("cid=5,socket="), O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(virtio_vsock_create(&f->bus, &f->fm.gm, spec, NULL), -EEXIST);
	unlink(spec + strlen("cid=5,socket="));
	assert_int_equal(f->bus.nr, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_host_connects),
		T(test_host_bad_line),
		T(test_guest_connects),
		T(test_hostile_packets),
		T(test_config_and_specs),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
