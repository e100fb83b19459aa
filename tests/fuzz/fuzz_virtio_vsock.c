// SPDX-License-Identifier: MIT
/*
 * virtio-vsock's packet parser on hostile chains. Something listens on PATH_1, so
 * a guest REQUEST to port 1 gets a real connection and later packets in the same
 * input reach the data, credit and shutdown paths; other ports get RSTs.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "virtio_harness.h"

static char sock_path[64];

static void fz_vsock_once(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/plinth-fz-vsock-XXXXXX";
	int fd;

	if (sock_path[0])
		return;
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/v", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_1", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024))
		abort();
	/* Kept open for the process: the device's connects land in its backlog. */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = fz_load(data, size);
	struct virtio_dev vdev;

	fz_vsock_once();
	if (virtio_vsock_init(&vdev, &f->gm, 3, sock_path))
		abort();
	if (!fz_device(&vdev, data, size, 0)) {
		virtio_vsock_ops.handle(&vdev, 1, EPOLLIN);
		virtio_vsock_ops.handle(&vdev, 0, EPOLLIN);
		virtio_vsock_ops.handle(&vdev, VIRTIO_TAG_DEV + 1, EPOLLIN | EPOLLOUT);
		virtio_vsock_ops.handle(&vdev, 1, EPOLLIN);
	}
	virtio_dev_fini(&vdev);
	return 0;
}
