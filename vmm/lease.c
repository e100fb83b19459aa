// SPDX-License-Identifier: MIT
/* Disk leases (lease.h). */
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "virtio/devices.h"

int lease_owner_self(char *out, size_t len)
{
	char host[64];
	struct timespec ts;
	int n;

	if (gethostname(host, sizeof(host)) < 0)
		return -errno;
	host[sizeof(host) - 1] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(out, len, "%s pid=%d start=%lld%09ld", host, (int)getpid(),
		     (long long)ts.tv_sec, ts.tv_nsec);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int lease_path(const char *image, char *out, size_t len)
{
	int n = snprintf(out, len, "%s.lease", image);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The path of disk device d if it is writable, malloc'd; NULL for others. */
static char *writable_disk(const struct dev_config *d)
{
	char *path = NULL;
	bool readonly = true;

	if (d->cls != &dev_class_disk || virtio_blk_spec_path(d->spec, &path, &readonly, NULL))
		return NULL;
	if (readonly) {
		free(path);
		return NULL;
	}
	return path;
}

static int write_lease(const char *image, const char *owner)
{
	char path[4096 + 16], line[LEASE_OWNER_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", owner);

	if (n < 0 || (size_t)n >= sizeof(line) || lease_path(image, path, sizeof(path)))
		return -ENAMETOOLONG;
	return write_file_atomic(path, line, (size_t)n, 0600);
}

/* The record rewritten in place on fd: a reader sees the old line, the new one or, at
 * worst, a mix that names nobody (a take-back is then refused: the safe side). */
static int write_lease_fd(int fd, const char *owner)
{
	char line[LEASE_OWNER_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", owner), ret;

	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	ret = pwrite_full(fd, line, (size_t)n, 0);
	if (!ret && (ftruncate(fd, n) < 0 || fdatasync(fd) < 0))
		ret = -errno;
	return ret;
}

static int lease_fd_of(const struct vm_config *cfg, unsigned int i)
{
	return cfg->lease_fds ? cfg->lease_fds[i] : -1;
}

void lease_open(const struct vm_config *cfg, int fds[VM_MAX_DEVICES])
{
	char lpath[4096 + 16];
	unsigned int i;
	char *path;

	for (i = 0; i < VM_MAX_DEVICES; i++)
		fds[i] = -1;
	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		if (lease_path(path, lpath, sizeof(lpath)) == 0)
			fds[i] = open(lpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fds[i] < 0)
			log_warn("disk '%s': cannot open its lease record next to %s: %s",
				 cfg->devices[i].id, path,
				 strerror(errno));
		free(path);
	}
}

void lease_close(int fds[VM_MAX_DEVICES])
{
	unsigned int i;

	for (i = 0; i < VM_MAX_DEVICES; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

void lease_take(const struct vm_config *cfg, const char *owner)
{
	unsigned int i;
	char *path;
	int ret;

	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		if (lease_fd_of(cfg, i) >= 0)
			ret = write_lease_fd(lease_fd_of(cfg, i), owner);
		else
			ret = write_lease(path, owner);
		if (ret)
			log_warn("disk '%s': cannot record its lease next to %s: %s",
				 cfg->devices[i].id, path,
				 strerror(-ret));
		free(path);
	}
}

int lease_check(const struct vm_config *cfg, const char *owner, char *err, size_t errlen)
{
	char lpath[4096 + 16], line[LEASE_OWNER_MAX + 2];
	unsigned int i;
	ssize_t n;
	char *path;
	int fd;

	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		if (lease_fd_of(cfg, i) >= 0) {
			n = pread(lease_fd_of(cfg, i), line, sizeof(line) - 1, 0);
		} else {
			fd = lease_path(path, lpath, sizeof(lpath)) ? -1 :
			     open(lpath, O_RDONLY | O_CLOEXEC);
			n = fd < 0 ? -1 : read(fd, line, sizeof(line) - 1);
			if (fd >= 0)
				close(fd);
		}
		free(path);
		if (n <= 0)
			continue; /* no record (or an empty one): nobody took it over */
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, owner)) {
			snprintf(err, errlen, "disk '%s' is now leased to '%.100s' (the destination "
				 "took it over and may run the guest)", cfg->devices[i].id, line);
			return -EBUSY;
		}
	}
	return 0;
}
