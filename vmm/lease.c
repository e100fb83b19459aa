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
static char *writable_disk(const struct vm_device_opt *d)
{
	char *path = NULL;
	bool readonly = true;

	if (d->kind != VM_DEV_DISK || virtio_blk_spec_path(d->spec, &path, &readonly))
		return NULL;
	if (readonly) {
		free(path);
		return NULL;
	}
	return path;
}

static int write_lease(const char *image, const char *owner)
{
	char path[4096 + 16], tmp[4096 + 32];
	int fd, ret = 0;
	size_t n = strlen(owner);

	if (lease_path(image, path, sizeof(path)) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, owner, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		ret = errno ? -errno : -EIO;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
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
		ret = write_lease(path, owner);
		if (ret)
			log_warn("disk %u: cannot record its lease next to %s: %s", i + 1, path,
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
		fd = lease_path(path, lpath, sizeof(lpath)) ? -1 : open(lpath, O_RDONLY | O_CLOEXEC);
		free(path);
		if (fd < 0)
			continue; /* no record: nobody took it over */
		n = read(fd, line, sizeof(line) - 1);
		close(fd);
		if (n < 0)
			continue;
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, owner)) {
			snprintf(err, errlen, "disk %u is now leased to '%.100s' (the destination "
				 "took it over and may run the guest)", i + 1, line);
			return -EBUSY;
		}
	}
	return 0;
}
