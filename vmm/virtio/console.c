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
 * Linux's driver drops input that lands while it is still registering the port
 * (before its receive interrupt can find it); with no MULTIPORT there is no "port
 * open" message to wait for, so bytes waiting at boot may be lost in the guest.
 * Output: each chain's readable bytes are written to the host fd in order. The
 * fds are non-blocking (stdin/stdout are reopened through /proc/self/fd so the
 * shell's own file descriptions stay blocking; a regular file is shared as is):
 * when the host doesn't keep up, the chain waits, part-written, until the fd is
 * writable, so the I/O thread never blocks and a reset can always stop it. If the
 * host side is gone, output is dropped.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
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
#include "devconf.h"

#define CON_QUEUE_SIZE 128
#define CON_RX 0
#define CON_TX 1
#define TAG_INPUT VIRTIO_TAG_DEV
#define TAG_OUTPUT (VIRTIO_TAG_DEV + 1)
#define CON_BUDGET 256 /* receive chains filled per event before yielding to the loop */

struct console {
	int in_fd, out_fd;     /* owned, unless stdin/stdout */
	bool own_in, own_out;
	bool in_watched;       /* in_fd is in the worker's epoll set */
	bool out_watched;      /* out_fd is waited on for EPOLLOUT */
	size_t tx_off;         /* bytes of the current output chain already written */
	struct iovec tx_iov[IOV_MAX];
	bool in_eof;           /* no more input will come */
	bool out_broken;       /* output failed once: logged, then dropped */
	struct virtq_elem elem;
};

/* Move host input into receive buffers until either runs out. */
static void con_input(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;
	struct virtq *vq = &vdev->vq[CON_RX];
	const char *why;
	unsigned int budget = CON_BUDGET;
	bool pushed = false;
	int r;

	while (!c->in_eof && budget--) {
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

	*written = 0;
	while (!c->out_broken && c->tx_off < e->out_len) {
		int n = iov_slice(e->iov, e->out_num, c->tx_off, e->out_len - c->tx_off, c->tx_iov,
				  IOV_MAX);
		ssize_t w;

		if (n == -E2BIG)
			n = IOV_MAX; /* iov_slice filled them all: write those first */
		if (n < 0)
			break;
		w = writev(c->out_fd, c->tx_iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			/* The host is slow: finish this chain when it can take more. */
			if (!c->out_watched &&
			    !virtio_dev_watch(vdev, c->out_fd, EPOLLOUT, TAG_OUTPUT))
				c->out_watched = true;
			if (c->out_watched)
				return VIRTIO_DEFER;
			w = -1; /* no I/O thread to wait on: drop, as for a dead host */
			errno = EPIPE;
		}
		if (w <= 0) {
			log_limited(&vdev->log_rl, LOG_WARN, "virtio-console: output lost: %s",
				    strerror(errno));
			c->out_broken = true;
			break;
		}
		c->tx_off += (size_t)w;
	}
	c->tx_off = 0;
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
	case TAG_OUTPUT:
		if (c->out_watched && !virtio_dev_unwatch(vdev, c->out_fd))
			c->out_watched = false;
		/* fall through */
	case CON_TX:
		if (!c->out_watched)
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
	c->out_watched = false;
	c->tx_off = 0;
	con_watch_input(vdev);
	return 0;
}

static void con_stop(struct virtio_dev *vdev)
{
	struct console *c = vdev->priv;

	c->in_watched = false; /* the epoll set is gone */
	c->out_watched = false;
	c->tx_off = 0; /* a part-written chain is forgotten with its queue */
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
	if (c->own_out)
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

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) ? -errno : 0;
}

/*
 * in_fd/out_fd are owned (closed on failure too). The same fd for both is
 * duplicated, so that epoll can wait on input and output separately.
 */
static int console_init(struct virtio_dev *vdev, const struct guest_mem *mem, int in_fd,
			int out_fd)
{
	struct console *c;
	int r;

	if (out_fd == in_fd) {
		out_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 0);
		if (out_fd < 0) {
			r = -errno;
			log_error("--console: dup: %s", strerror(errno));
			close(in_fd);
			return r;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("--console: out of memory");
		r = -ENOMEM;
		goto out_close;
	}
	if ((r = set_nonblock(in_fd)) || (r = set_nonblock(out_fd))) {
		log_error("--console: cannot make the console non-blocking: %s", strerror(-r));
		goto out_free;
	}
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->own_in = c->own_out = true;
	r = virtio_dev_init(vdev, &virtio_console_ops, c, mem, 2, CON_QUEUE_SIZE, 0);
	if (r)
		goto out_free;
	return 0;

out_free:
	free(c);
out_close:
	close(in_fd);
	close(out_fd);
	return r;
}

/*
 * A private, non-blocking file description for one of our stdio fds (see the top).
 * A regular file is duplicated instead: O_NONBLOCK means nothing to it, and a second
 * description would have its own offset (and no O_APPEND), so hvc0's output would
 * overwrite the serial console's when both go to the same file.
 */
static int reopen_stdio(int fd, int flags)
{
	char path[32];
	struct stat st;
	int r;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (r < 0) {
			r = -errno;
			log_error("--console: cannot duplicate %s: %s", fd ? "stdout" : "stdin",
				  strerror(errno));
		}
		return r;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_NOCTTY | O_CLOEXEC);
	if (r < 0) {
		r = -errno;
		log_error("--console: cannot reopen %s: %s", fd ? "stdout" : "stdin",
			  strerror(errno));
	}
	return r;
}

int virtio_console_init(struct virtio_dev *vdev, const struct guest_mem *mem, int in_fd,
			int out_fd)
{
	return console_init(vdev, mem, in_fd, out_fd);
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
	if (fd >= 0) {
		r = console_init(vdev, mem, fd, fd);
	} else {
		int in = reopen_stdio(STDIN_FILENO, O_RDONLY);
		int outfd = in < 0 ? -1 : reopen_stdio(STDOUT_FILENO, O_WRONLY);

		if (in < 0 || outfd < 0) {
			if (in >= 0)
				close(in);
			free(vdev);
			r = -EINVAL;
			goto out_spec;
		}
		r = console_init(vdev, mem, in, outfd);
	}
	if (r) { /* console_init closed the fds */
		free(vdev);
		goto out_spec;
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

/* ---- the --console class (vmm/devconf.h): its typed config and options ---- */

struct console_config {
	char *path; /* a tty, pty or fifo, or NULL: the VMM's stdin/stdout */
};

static const char *const console_keys[] = { "type", "path" };

static void console_free(void *conf)
{
	struct console_config *c = conf;

	free(c->path);
	free(c);
}

static int console_parse(const char *opt, char *const *v, void **conf)
{
	struct console_config *c;

	if (!v[0] || strcmp(v[0], "virtio")) {
		log_error("%s: expected 'virtio' or 'virtio,path=FILE'", opt);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || spec_dup(opt, v[1], &c->path)) {
		free(c);
		return -ENOMEM;
	}
	*conf = c;
	return 0;
}

static json_t *console_to_json(const void *conf)
{
	const struct console_config *c = conf;

	return spec_json_str(spec_json_str(json_object(), "type", "virtio"), "path", c->path);
}

static bool console_on_stdio(const void *conf)
{
	return !((const struct console_config *)conf)->path;
}

const struct dev_class dev_class_console = {
	.name = "console",
	.synopsis = "virtio[,path=FILE]",
	.help = DEV_HELP_INDENT "hvc0 on this terminal (or FILE) instead of COM1 input\n",
	.flag_key = "type",
	.keys = console_keys,
	.nr_keys = ARRAY_SIZE(console_keys),
	.parse = console_parse,
	.to_json = console_to_json,
	.free = console_free,
	.create = virtio_console_create,
	.reopens_in_jail = console_on_stdio,
	.uses_stdin = console_on_stdio,
};
