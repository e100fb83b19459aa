// SPDX-License-Identifier: MIT
/*
 * A VM's serial console as a byte stream (console.h): its log followed through
 * inotify, its input FIFO written anew for each write; or, for a VM of another host,
 * a socket that relays that host's stream (cluster_forward.c).
 */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plinthd.h"

struct pd_console {
	char dir[PD_DIR_MAX + 64];	/* the VM's run directory */
	char log[PD_DIR_MAX + 80];		/* RUNDIR/console.log */
	char in[PD_DIR_MAX + 80];		/* RUNDIR/console.in */
	int ino;		/* inotify on dir: a write to the log, the dir removed */
	int logfd;		/* the log, -1 until it exists */
	off_t pos;		/* the next byte of the log to hand out; -1: start at the scrollback */
	bool gone;		/* the run directory was removed (the VM deleted) */
	int sock;		/* a relayed stream (the rest unused), else -1 */
};

struct pd_console *pd_console_of_stream(int sock)
{
	struct pd_console *c = calloc(1, sizeof(*c));

	if (!c) {
		close(sock);
		return NULL;
	}
	c->sock = sock;
	c->ino = -1;
	c->logfd = -1;
	return c;
}

struct pd_console *pd_console_open(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct pd_console *c;
	struct store_vm vm;

	if (pd_vm_load(pd, name, &vm, NULL, r))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		pd_reply_error(r, 500, "out of memory");
		goto out_clear;
	}
	c->logfd = -1;
	c->sock = -1;
	c->pos = -1;
	snprintf(c->dir, sizeof(c->dir), "%s/vms/%s", pd->dir, vm.uuid);
	snprintf(c->log, sizeof(c->log), "%s/console.log", c->dir);
	snprintf(c->in, sizeof(c->in), "%s/console.in", c->dir);
	/* A VM never started has no run directory yet: make it, to watch it. */
	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST) {
		pd_reply_error(r, 500, "VM '%s': %s: %s", name, c->dir, strerror(errno));
		goto out_free;
	}
	c->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ino < 0 || inotify_add_watch(c->ino, c->dir,
					    IN_MODIFY | IN_CREATE | IN_DELETE_SELF |
						    IN_MOVE_SELF) < 0) {
		pd_reply_error(r, 500, "VM '%s': cannot watch its console log: %s", name,
			       strerror(errno));
		if (c->ino >= 0)
			close(c->ino);
		goto out_free;
	}
	store_vm_clear(&vm);
	return c;

out_free:
	free(c);
out_clear:
	store_vm_clear(&vm);
	return NULL;
}

int pd_console_fd(const struct pd_console *c)
{
	return c->sock >= 0 ? c->sock : c->ino;
}

/* Drain the inotify queue; note the run directory's removal. */
static void drain_events(struct pd_console *c)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(c->ino, buf, sizeof(buf))) > 0) {
		ssize_t off = 0;

		while (off + (ssize_t)sizeof(struct inotify_event) <= n) {
			const struct inotify_event *e = (const void *)(buf + off);

			if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
				c->gone = true;
			off += (ssize_t)sizeof(*e) + e->len;
		}
	}
}

ssize_t pd_console_read(struct pd_console *c, void *buf, size_t size)
{
	struct stat sb;
	ssize_t n;

	if (c->sock >= 0) {
		n = recv(c->sock, buf, size, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return n < 0 ? -errno : n ? n : -ECONNRESET;
	}
	drain_events(c);
	if (c->logfd < 0) {
		c->logfd = open(c->log, O_RDONLY | O_CLOEXEC);
		if (c->logfd < 0)
			return c->gone ? -EPIPE : errno == ENOENT ? 0 : -errno;
	}
	if (fstat(c->logfd, &sb) < 0)
		return -errno;
	if (c->pos < 0)
		c->pos = sb.st_size > PD_CONSOLE_SCROLLBACK ? sb.st_size - PD_CONSOLE_SCROLLBACK : 0;
	if (c->pos > sb.st_size) /* never truncated; if it was, start again */
		c->pos = 0;
	if (size > (size_t)SSIZE_MAX)
		size = SSIZE_MAX;
	n = pread(c->logfd, buf, size, c->pos);
	if (n < 0)
		return -errno;
	c->pos += n;
	if (n == 0 && c->gone)
		return -EPIPE;
	return n;
}

ssize_t pd_console_write(struct pd_console *c, const void *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (c->sock >= 0) {
		n = send(c->sock, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return -EAGAIN;
		return n < 0 ? (errno == EPIPE ? -ECONNRESET : -errno) : n;
	}
	/* O_NONBLOCK: ENXIO at once when nobody reads the FIFO (the VM is not running). */
	fd = open(c->in, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENXIO : -errno;
	n = write(fd, buf, len);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

int pd_console_pump(struct pd_console *c, int sock, const volatile bool *quit)
{
	char buf[16384];

	while (!*quit) {
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
				      {.fd = pd_console_fd(c), .events = POLLIN}};
		ssize_t n;

		/* Output first: the scrollback goes out before anything is waited for. */
		while ((n = pd_console_read(c, buf, sizeof(buf))) > 0) {
			ssize_t off = 0;

			while (off < n) {
				ssize_t w = send(sock, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return w < 0 ? -errno : -EPIPE;
				off += w;
			}
		}
		if (n == -EPIPE || n == -ECONNRESET)
			return 0; /* the VM was deleted, or the relayed stream ended */
		if (n < 0)
			return (int)n;
		if (poll(p, 2, 200) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0)
				return 0; /* the peer detached */
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			for (ssize_t off = 0, tries = 0; n > 0 && off < n;) {
				ssize_t w = pd_console_write(c, buf + off, (size_t)(n - off));

				if (w == -EAGAIN && ++tries < 100 && !*quit) {
					poll(NULL, 0, 10); /* the guest reads slowly: wait */
					continue;
				}
				if (w <= 0)
					break; /* not running: the input is dropped */
				off += w;
			}
		}
	}
	return 0;
}

void pd_console_close(struct pd_console *c)
{
	if (!c)
		return;
	if (c->logfd >= 0)
		close(c->logfd);
	if (c->ino >= 0)
		close(c->ino);
	if (c->sock >= 0)
		close(c->sock);
	free(c);
}
