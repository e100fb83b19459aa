// SPDX-License-Identifier: MIT
/*
 * virtio-net over a SOCK_SEQPACKET socketpair standing in for the tap (one frame
 * per datagram, vnet header included): transmit, receive into one buffer or merged
 * buffers, frames that don't fit, offloads the guest didn't negotiate, and a real
 * tap when this machine lets us create one.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/virtio_net.h>

#include "devices.h"
#include "drv_pci.h"
#include "fake_dev.h"
#include "internal.h"

#define RING 0x1000u
#define BUF  0x20000u
#define HDR  12

struct fixture {
	struct fake_mem fm;
	struct virtio_dev vdev;
	struct fake_transport ft;
	struct drv_vq dq[2];
	int host; /* the "wire" end */
};

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static int make(struct fixture *f, uint64_t features)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -1;
	f->host = sv[0];
	if (virtio_net_init(&f->vdev, &f->fm.gm, sv[1], MAC, false))
		return -1;
	return fake_dev_setup(&f->vdev, &f->ft, &f->fm, f->dq, features, 16, RING);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	if (make(f, ~0ULL))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->vdev);
	close(f->host);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

static void tx(struct fixture *f, uint16_t head, uint64_t gpa, uint32_t len)
{
	drv_set_desc(&f->dq[1], head, gpa, len, 0, 0);
	drv_kick_head(&f->dq[1], head);
	virtio_net_ops.handle(&f->vdev, 1, EPOLLIN);
}

static void test_transmit(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = gpa_ptr(&f->fm, BUF), got[256];
	unsigned int i;

	memset(p, 0, HDR);
	for (i = 0; i < 60; i++)
		p[HDR + i] = (uint8_t)i;
	tx(f, 0, BUF, HDR + 60);
	assert_int_equal(drv_used_idx(&f->dq[1]), 1);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), HDR + 60);
	assert_memory_equal(got, p, HDR + 60);

	/* Too short for a header: dropped, but answered. */
	tx(f, 1, BUF, 8);
	assert_int_equal(drv_used_idx(&f->dq[1]), 2);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), -1);
	/* Longer than any frame: dropped. */
	tx(f, 2, BUF, HDR + 65535 + 19);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), -1);
}

static void test_transmit_offload_not_negotiated(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_v1 *h = gpa_ptr(&f->fm, BUF);
	uint8_t got[256];

	virtio_dev_fini(&f->vdev);
	close(f->host);
	assert_int_equal(make(f, (1ULL << VIRTIO_F_VERSION_1)), 0);
	memset(h, 0, 80);
	h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	tx(f, 0, BUF, HDR + 60);
	h->gso_type = 0;
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	tx(f, 1, BUF, HDR + 60);
	assert_int_equal(drv_used_idx(&f->dq[1]), 2);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), -1);
	h->flags = 0;
	tx(f, 2, BUF, HDR + 60);
	assert_int_equal(recv(f->host, got, sizeof(got), MSG_DONTWAIT), HDR + 60);
}

static void send_frame(struct fixture *f, size_t len, uint8_t seed)
{
	uint8_t *pkt = calloc(1, len);
	size_t i;

	for (i = HDR; i < len; i++)
		pkt[i] = (uint8_t)(i + seed);
	pkt[10] = 0x77; /* num_buffers from the tap is not to be trusted */
	assert_int_equal(send(f->host, pkt, len, 0), (ssize_t)len);
	free(pkt);
}

static void check_frame(const uint8_t *p, size_t off, size_t len, uint8_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (off + i >= HDR)
			assert_int_equal(p[i], (uint8_t)(off + i + seed));
}

static void rx_buffer(struct fixture *f, uint16_t head, uint64_t gpa, uint32_t len)
{
	drv_set_desc(&f->dq[0], head, gpa, len, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], head);
}

static void test_receive_merged(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;
	unsigned int i;

	assert_true(f->vdev.features & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	send_frame(f, 3000, 1);
	/* Two 1 KiB buffers are not enough: nothing is published. */
	rx_buffer(f, 0, BUF, 1024);
	rx_buffer(f, 1, BUF + 0x1000, 1024);
	virtio_net_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
	assert_int_equal(f->vdev.vq[0].st.last_avail, 0);

	rx_buffer(f, 2, BUF + 0x2000, 1024);
	rx_buffer(f, 3, BUF + 0x3000, 1024);
	virtio_net_ops.handle(&f->vdev, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 3);
	for (i = 0; i < 3; i++) {
		drv_used_elem(&f->dq[0], (uint16_t)i, &id, &len);
		assert_int_equal(id, i);
		assert_int_equal(len, i < 2 ? 1024 : 3000 - 2048);
		check_frame(gpa_ptr(&f->fm, BUF + 0x1000u * i), 1024u * i, len, 1);
	}
	assert_int_equal(((struct virtio_net_hdr_v1 *)gpa_ptr(&f->fm, BUF))->num_buffers, 3);
	assert_true(f->ft.notifies[0] >= 1);

	/* The fourth buffer takes the next small frame. */
	send_frame(f, 100, 9);
	virtio_net_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 4);
	drv_used_elem(&f->dq[0], 3, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 100);
	assert_int_equal(((struct virtio_net_hdr_v1 *)gpa_ptr(&f->fm, BUF + 0x3000))->num_buffers, 1);
}

static void test_receive_without_merge(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	virtio_dev_fini(&f->vdev);
	close(f->host);
	assert_int_equal(make(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MAC)), 0);
	rx_buffer(f, 0, BUF, 1536);
	send_frame(f, 3000, 2); /* can never fit: dropped, the buffer kept */
	send_frame(f, 200, 3);
	virtio_net_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 1);
	drv_used_elem(&f->dq[0], 0, &id, &len);
	assert_int_equal(len, 200);
	check_frame(gpa_ptr(&f->fm, BUF), 0, 200, 3);
	assert_int_equal(((struct virtio_net_hdr_v1 *)gpa_ptr(&f->fm, BUF))->num_buffers, 1);
}

static void test_receive_bad_buffer(void **state)
{
	struct fixture *f = *state;

	send_frame(f, 100, 0);
	rx_buffer(f, 0, BUF, 4); /* smaller than the vnet header */
	virtio_net_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(f->ft.resets, 1);
	assert_int_equal(drv_used_idx(&f->dq[0]), 0);
}

static void test_receive_read_only_buffer(void **state)
{
	struct fixture *f = *state;

	send_frame(f, 100, 0);
	drv_set_desc(&f->dq[0], 0, BUF, 2048, 0, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_net_ops.handle(&f->vdev, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(f->ft.resets, 1);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint8_t c[10];

	virtio_net_ops.cfg_read(&f->vdev, 0, c, sizeof(c));
	assert_memory_equal(c, MAC, 6);
	assert_int_equal(c[6], VIRTIO_NET_S_LINK_UP);
	assert_false(f->vdev.host_features & (1ULL << VIRTIO_NET_F_GUEST_TSO4)); /* no TUNSETOFFLOAD */
	assert_true(f->vdev.host_features & (1ULL << VIRTIO_NET_F_HOST_TSO4));
}

static void test_feature_dependencies(void **state)
{
	static const uint64_t V1 = 1ULL << VIRTIO_F_VERSION_1;
	const struct virtio_dev_ops *ops = &virtio_net_ops;

	(void)state;
	assert_true(ops->features_ok(V1));
	assert_true(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
				     (1ULL << VIRTIO_NET_F_HOST_ECN)));
	assert_false(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_HOST_TSO6)));
	assert_false(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_ECN)));
	assert_false(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_GUEST_TSO4)));
	assert_false(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
				      (1ULL << VIRTIO_NET_F_GUEST_ECN)));
	assert_true(ops->features_ok(V1 | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
				     (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN)));
}

static void test_spec_errors(void **state)
{
	struct fake_mem fm;
	struct pci_bus bus;

	(void)state;
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "mac=52:54:00:00:00:01", NULL), -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=t0,mac=01:00:00:00:00:01", NULL),
			 -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=t0,mac=00:00:00:00:00:00", NULL),
			 -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=t0,mac=52:54:00:00:00", NULL),
			 -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=t0,mac=52:54:00:00:00:001", NULL),
			 -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=a-name-much-too-long-for-linux", NULL),
			 -EINVAL);
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=t0,queues=4", NULL), -EINVAL);
	assert_int_equal(bus.nr, 0);
	fake_mem_fini(&fm);
}

/* With CAP_NET_ADMIN (root here), a real tap: created, MAC derived, offloads probed. */
static void test_real_tap(void **state)
{
	struct fake_mem fm;
	struct pci_bus bus;
	struct virtio_pci *vp, *vp2;
	uint8_t mac[6], mac2[6];
	unsigned int i;
	int r;

	(void)state;
	if (access("/dev/net/tun", R_OK | W_OK)) {
		skip(); /* reported as skipped, not passed */
		return;
	}
	fake_mem_init(&fm);
	fake_bus_init(&bus);
	r = virtio_net_create(&bus, &fm.gm, "tap=plt-ut0", &vp);
	if (r == -EPERM || r == -EACCES || r == -ENODEV) {
		fake_mem_fini(&fm);
		skip();
		return;
	}
	assert_int_equal(r, 0);
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)drv_r(bus.dev[0], VPCI_DEVCFG + i, 1);
	assert_int_equal(mac[0] & 3, 2); /* locally administered unicast */
	virtio_pci_free(vp);
	/* Derived from the name: the same again. */
	assert_int_equal(virtio_net_create(&bus, &fm.gm, "tap=plt-ut0", &vp2), 0);
	for (i = 0; i < 6; i++)
		mac2[i] = (uint8_t)drv_r(bus.dev[1], VPCI_DEVCFG + i, 1);
	assert_memory_equal(mac, mac2, 6);
	assert_true(drv_dev_features(bus.dev[1]) & (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	/* TSO without checksum offload breaks the spec's dependencies: FEATURES_OK refused. */
	drv_set_status(bus.dev[1], VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_set_features(bus.dev[1], (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	drv_set_status(bus.dev[1], VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					   VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(drv_get_status(bus.dev[1]) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* With it, the driver gets going and the tap takes the offloads. */
	assert_true(drv_init(bus.dev[1], ~0ULL, 0, NULL) & VIRTIO_CONFIG_S_DRIVER_OK);
	virtio_pci_free(vp2);
	fake_mem_fini(&fm);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_transmit),
		T(test_transmit_offload_not_negotiated),
		T(test_receive_merged),
		T(test_receive_without_merge),
		T(test_receive_bad_buffer),
		T(test_receive_read_only_buffer),
		T(test_config),
		cmocka_unit_test(test_feature_dependencies),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_real_tap),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
