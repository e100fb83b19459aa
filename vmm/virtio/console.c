// SPDX-License-Identifier: MIT
/*
 * virtio-console (virtio 1.x section 5.3) with a single port, no MULTIPORT: the
 * guest sees it as hvc0. Queue 0 carries host input to the guest, queue 1 the
 * guest's output to the host.
 *
 * Input: when the host fd is readable and the guest has posted a receive buffer,
 * read straight into it. With no buffer, the fd is dropped from the epoll set
 * until the guest kicks queue 0, so a busy host doesn't spin the I/O thread. End
 * of input (or an fd epoll can't watch, like /dev/null) just means no more input.
 * Output: each chain's readable bytes are written to the host fd in order; if the
 * host side is gone they are dropped (a console must never stall the guest).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include "devices.h"
#include "internal.h"
#include "log.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"

#define CON_QUEUE_SIZE 128
#define CON_RX 0
#define CON_TX 1
#define TAG_INPUT VIRTIO_TAG_DEV

struct console {
	int in_fd, out_fd;     /* owned, unless stdin/stdout */
	bool own_in, own_out;
	bool in_watched;       /* in_fd is in the worker's epoll set */
	bool in_eof;           /* no more input will come */
	bool out_broken;       /* output failed once: logged, then dropped */
	struct virtq_elem elem;
};

/*
 * The host fd is not made non-blocking (stdin is shared with the shell that ran
 * us), so look before reading.
 */
static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* Move host input into receive buffers until either runs out. */
static void con_input(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;
	struct virtq *vq = &vdev->vq[CON_RX];
	const char *why;
	bool pushed = false;
	int r;

	while (!c->in_eof) {
		ssize_t n;

		r = virtq_pop(vq, &c->elem, &why);
		if (r < 0) {
			virtio_dev_broken(vdev, CON_RX, why);
			break;
		}
		if (r == 0) {
			/* No buffer: stop listening to the host until the guest posts one. */
			if (c->in_watched && !virtio_dev_unwatch(vdev, c->in_fd))
				c->in_watched = false;
			if (virtq_enable_notify(vq))
				continue;
			break;
		}
		if (c->elem.in_num == 0) {
			virtq_push(vq, &c->elem, 0); /* nothing writable: answer it empty */
			pushed = true;
			continue;
		}
		if (!readable(c->in_fd)) {
			virtq_unpop(vq);
			break;
		}
		n = readv(c->in_fd, c->elem.iov + c->elem.out_num, (int)MIN(c->elem.in_num, IOV_MAX));
		if (n > 0) {
			virtq_push(vq, &c->elem, (uint32_t)n);
			pushed = true;
			continue;
		}
		virtq_unpop(vq);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		/* End of input, or an error that won't go away. */
		c->in_eof = true;
		if (c->in_watched)
			virtio_dev_unwatch(vdev, c->in_fd);
		c->in_watched = false;
	}
	if (pushed)
		virtio_dev_notify(vdev, CON_RX);
}

static int con_output(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct console *c = vdev->priv;
	unsigned int i;

	for (i = 0; i < e->out_num && !c->out_broken; i++) {
		int r = write_full(c->out_fd, e->iov[i].iov_base, e->iov[i].iov_len);

		if (r) {
			log_warn("virtio-console: output lost: %s", strerror(-r));
			c->out_broken = true;
		}
	}
	*written = 0;
	return 0;
}

static void con_watch_input(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;
	int r;

	if (c->in_watched || c->in_eof || c->in_fd < 0)
		return;
	r = virtio_dev_watch(vdev, c->in_fd, EPOLLIN, TAG_INPUT);
	if (r == -EPERM) {
		c->in_eof = true; /* a regular file or /dev/null: nothing will ever arrive */
		return;
	}
	if (r == -ENOTCONN)
		return; /* no I/O thread (driven directly, as in tests) */
	if (r)
		log_warn("virtio-console: cannot watch input: %s", strerror(-r));
	else
		c->in_watched = true;
}

static void con_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct console *c = vdev->priv;

	switch (tag) {
	case CON_RX:
		con_watch_input(vdev);
		con_input(vdev);
		break;
	case CON_TX:
		virtio_dev_drain(vdev, CON_TX, &c->elem, con_output);
		break;
	case TAG_INPUT:
		con_input(vdev);
		break;
	}
}

static int con_start(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;

	c->in_watched = false;
	con_watch_input(vdev);
	return 0;
}

static void con_stop(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;

	c->in_watched = false; /* the epoll set is gone */
}

static void con_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct virtio_console_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_nr_ports = htole32(1);
	memcpy(data, (uint8_t *)&cfg + off, len);
}

static void con_destroy(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;

	if (!c)
		return;
	if (c->own_in)
		close(c->in_fd);
	if (c->own_out && c->out_fd != c->in_fd)
		close(c->out_fd);
	free(c);
	vdev->priv = NULL;
}

const struct virtio_dev_ops virtio_console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = 0x0780, /* communication, other */
	.cfg_size = sizeof(struct virtio_console_config),
	.cfg_read = con_cfg_read,
	.start = con_start,
	.stop = con_stop,
	.handle = con_handle,
	.destroy = con_destroy,
	/* Nothing but the queues to save: bytes in flight live in the host fd. */
};

static int console_init(struct virtio_dev *vdev, const struct guest_mem *mem, int in_fd,
			int out_fd, bool own)
{
	struct console *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		log_error("--console: out of memory");
		return -ENOMEM;
	}
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->own_in = c->own_out = own;
	r = virtio_dev_init(vdev, &virtio_console_ops, c, mem, 2, CON_QUEUE_SIZE, 0);
	if (r)
		free(c);
	return r;
}

int virtio_console_init(struct virtio_dev *vdev, const struct guest_mem *mem, int in_fd,
			int out_fd)
{
	return console_init(vdev, mem, in_fd, out_fd, true);
}

int virtio_console_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			  struct virtio_pci **out)
{
	static const char *const keys[] = { "type", "path" };
	char *v[ARRAY_SIZE(keys)];
	struct virtio_dev *vdev;
	int fd = -1, r;

	r = spec_parse("--console", spec, keys, ARRAY_SIZE(keys), "type", v);
	if (r)
		return r;
	r = -EINVAL;
	if (!v[0] || strcmp(v[0], "virtio")) {
		log_error("--console: expected 'virtio' or 'virtio,path=FILE'");
		goto out_spec;
	}
	if (v[1]) {
		fd = open(v[1], O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			log_error("--console: cannot open %s: %s", v[1], strerror(errno));
			goto out_spec;
		}
	}
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("--console: out of memory");
		r = -ENOMEM;
		goto out_close;
	}
	/* stdin/stdout are the VMM's: used, never closed. */
	r = fd >= 0 ? console_init(vdev, mem, fd, fd, true)
		    : console_init(vdev, mem, STDIN_FILENO, STDOUT_FILENO, false);
	if (r) {
		free(vdev);
		goto out_close;
	}
	spec_free(v, ARRAY_SIZE(keys));
	return virtio_pci_create_on(bus, vdev, out);

out_close:
	if (fd >= 0)
		close(fd);
out_spec:
	spec_free(v, ARRAY_SIZE(keys));
	return r;
}
