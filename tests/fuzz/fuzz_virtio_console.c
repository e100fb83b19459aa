// SPDX-License-Identifier: MIT
/* virtio-console's queues on hostile chains, with host input waiting. */
#include <signal.h>
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
	struct fz *f = fz_load(data, size);
	struct virtio_dev vdev;
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	if (write(sv[0], "input from the host", 19) != 19)
		abort();
	if (virtio_console_init(&vdev, &f->gm, sv[1], sv[1]))
		abort();
	if (!fz_device(&vdev, data, size, 0)) {
		virtio_console_ops.handle(&vdev, 1, EPOLLIN);
		virtio_console_ops.handle(&vdev, 0, EPOLLIN);
		virtio_console_ops.handle(&vdev, VIRTIO_TAG_DEV, EPOLLIN);
	}
	virtio_dev_fini(&vdev);
	close(sv[0]);
	return 0;
}
