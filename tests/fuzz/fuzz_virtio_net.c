// SPDX-License-Identifier: MIT
/*
 * virtio-net's transmit parser and receive path on hostile chains. The tap is a
 * SEQPACKET socketpair: the tail of the input (from 0x2000) is offered as a frame
 * from the wire, so receive runs against the rings too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	struct fz *f = fz_load(data, size);
	struct virtio_dev vdev;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		abort();
	if (virtio_net_init(&vdev, &f->gm, sv[1], mac, false))
		abort();
	/* Device feature byte: bit 0 MRG_RXBUF, bit 1 CSUM, bit 2 HOST_TSO4/6, bit 3 ECN. */
	if (!fz_device(&vdev, data, size,
		       ((fz_byte(data, size, 2) & 1) ? 1ULL << 15 : 0) |
			       ((fz_byte(data, size, 2) & 2) ? 1ULL << 0 : 0) |
			       ((fz_byte(data, size, 2) & 4) ? (1ULL << 11) | (1ULL << 12) : 0) |
			       ((fz_byte(data, size, 2) & 8) ? 1ULL << 13 : 0))) {
		if (size > 0x2000)
			(void)send(sv[0], data + 0x2000, size - 0x2000 > 0x10000 ? 0x10000 : size - 0x2000,
				   MSG_DONTWAIT);
		virtio_net_ops.handle(&vdev, 1, EPOLLIN);
		virtio_net_ops.handle(&vdev, VIRTIO_TAG_DEV, EPOLLIN);
		virtio_net_ops.handle(&vdev, 0, EPOLLIN);
	}
	virtio_dev_fini(&vdev);
	close(sv[0]);
	return 0;
}
