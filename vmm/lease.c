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

#define LEASE_PATH_MAX (4096 + 16)

/* ---- the record ---- */

static bool vm_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* The decimal number at *p (before end), at most UINT64_MAX, into *out; *p moved past it. */
static int parse_dec(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return 0;
}

/* The VM id at *p (before end): 1 to LEASE_VM_MAX - 1 id characters into out. */
static int parse_vm_id(const char **p, const char *end, char out[LEASE_VM_MAX])
{
	const char *s = *p;
	size_t n = 0;

	while (s + n < end && vm_id_char(s[n]))
		n++;
	if (n == 0 || n >= LEASE_VM_MAX)
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

int lease_parse(const char *buf, size_t len, struct lease_rec *rec)
{
	const char *end = buf + len, *nl, *p;
	size_t n, i;

	memset(rec, 0, sizeof(*rec));
	if (len == 0)
		return 0; /* as lease_open leaves a new record: nobody */
	if (len > LEASE_RECORD_MAX)
		goto out_bad;
	nl = memchr(buf, '\n', len);
	n = nl ? (size_t)(nl - buf) : 0;
	if (n == 0 || n >= LEASE_OWNER_MAX)
		goto out_bad;
	for (i = 0; i < n; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			goto out_bad;
	memcpy(rec->owner, buf, n);
	p = nl + 1;
	if (p == end)
		return 0; /* the first format: an owner, no epoch */
	if (end - p < 6 || memcmp(p, "epoch=", 6))
		goto out_bad;
	p += 6;
	if (parse_dec(&p, end, &rec->epoch))
		goto out_bad;
	if (end - p >= 4 && !memcmp(p, " vm=", 4)) {
		p += 4;
		if (parse_vm_id(&p, end, rec->vm))
			goto out_bad;
	}
	if (p < end && *p == ' ') {
		p++;
		if (end - p < 6 || memcmp(p, "renew=", 6))
			goto out_bad;
		p += 6;
		if (parse_dec(&p, end, &rec->renew))
			goto out_bad;
		rec->renewed = true;
	}
	if (end - p != 1 || *p != '\n')
		goto out_bad;
	return 0;

out_bad:
	memset(rec, 0, sizeof(*rec));
	return -EINVAL;
}

int lease_format(const struct lease_rec *rec, char *out, size_t len)
{
	char renew[32] = "";
	int n;

	if (rec->renewed)
		snprintf(renew, sizeof(renew), " renew=%llu", (unsigned long long)rec->renew);
	if (rec->epoch || rec->vm[0] || rec->renewed)
		n = snprintf(out, len, "%s\nepoch=%llu%s%s%s\n", rec->owner,
			     (unsigned long long)rec->epoch, rec->vm[0] ? " vm=" : "", rec->vm,
			     renew);
	else
		n = snprintf(out, len, "%s\n", rec->owner);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

int lease_parse_epoch_opt(const char *arg, struct vm_config *cfg)
{
	const char *end = arg + strlen(arg), *p = arg;
	char vm[LEASE_VM_MAX];
	uint64_t v;

	if (parse_dec(&p, end, &v))
		return -EINVAL;
	if (p < end) {
		if (end - p < 4 || memcmp(p, ",vm=", 4))
			return -EINVAL;
		p += 4;
		cfg->lease_epoch_vm = p;
		if (parse_vm_id(&p, end, vm) || p != end)
			return -EINVAL;
	} else {
		cfg->lease_epoch_vm = NULL;
	}
	cfg->lease_epoch = v;
	cfg->lease_epoch_set = true;
	return 0;
}

/* ---- the files ---- */

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

static int lease_fd_of(const struct vm_config *cfg, unsigned int i)
{
	return cfg->lease_fds ? cfg->lease_fds[i] : -1;
}

/*
 * Read a disk's record (image at path) into rec: through fd where open (>= 0), else by
 * path. 0 (no file, or an empty one: rec empty), -EINVAL for bytes that are not a
 * record, or -errno.
 */
static int read_rec(int lfd, const char *image, struct lease_rec *rec)
{
	char lpath[LEASE_PATH_MAX], buf[LEASE_RECORD_MAX + 1];
	ssize_t n;
	int fd;

	memset(rec, 0, sizeof(*rec));
	if (lfd >= 0) {
		n = pread(lfd, buf, sizeof(buf), 0);
	} else {
		if (lease_path(image, lpath, sizeof(lpath)))
			return -ENAMETOOLONG;
		fd = open(lpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return errno == ENOENT ? 0 : -errno;
		n = read(fd, buf, sizeof(buf));
		if (n < 0)
			n = -errno;
		close(fd);
		if (n < 0)
			return (int)n;
	}
	if (n < 0)
		return -errno;
	return lease_parse(buf, (size_t)n, rec);
}

static int write_lease(const char *image, const char *line, size_t n)
{
	char path[LEASE_PATH_MAX];

	if (lease_path(image, path, sizeof(path)))
		return -ENAMETOOLONG;
	return write_file_atomic(path, line, n, 0600);
}

/* The record rewritten in place on fd: a reader sees the old record, the new one or,
 * at worst, a mix that is no record (refused by lease_fence and lease_check: the safe
 * side). */
static int write_lease_fd(int fd, const char *line, size_t n)
{
	int ret = pwrite_full(fd, line, n, 0);

	if (!ret && (ftruncate(fd, (off_t)n) < 0 || fdatasync(fd) < 0))
		ret = -errno;
	return ret;
}

/* The record of disk d (image at path) opened for rewriting, created empty; -1 (logged). */
static int open_rec(const struct dev_config *d, const char *path)
{
	char lpath[LEASE_PATH_MAX];
	int fd = -1;

	errno = ENAMETOOLONG;
	if (lease_path(path, lpath, sizeof(lpath)) == 0)
		fd = open(lpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		log_warn("disk '%s': cannot open its lease record next to %s: %s", d->id, path,
			 strerror(errno));
	return fd;
}

void lease_open(const struct vm_config *cfg, int fds[VM_MAX_DEVICES])
{
	unsigned int i;
	char *path;

	for (i = 0; i < VM_MAX_DEVICES; i++)
		fds[i] = -1;
	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		fds[i] = open_rec(&cfg->devices[i], path);
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

/* Does rec's epoch count for the VM cfg presents? Either one unnamed: yes. */
static bool same_vm(const struct vm_config *cfg, const struct lease_rec *rec)
{
	return !rec->vm[0] || !cfg->lease_epoch_vm || !strcmp(rec->vm, cfg->lease_epoch_vm);
}

/* lease_fence for disk d (image at path, record on lfd or -1). */
static int fence_one(const struct vm_config *cfg, const struct dev_config *d, int lfd,
		     const char *path, const char *doing, char *err, size_t errlen)
{
	struct lease_rec rec;
	int ret = read_rec(lfd, path, &rec);

	if (ret == -EINVAL)
		snprintf(err, errlen, "disk '%s': its lease record (%.120s.lease) is not one "
			 "plinth writes; not %s (remove it if no other host runs this guest)",
			 d->id, path, doing);
	else if (ret)
		snprintf(err, errlen, "disk '%s': cannot read its lease record (%.120s.lease): "
			 "%s; not %s", d->id, path, strerror(-ret), doing);
	else if (same_vm(cfg, &rec) && rec.epoch > cfg->lease_epoch) {
		snprintf(err, errlen, "disk '%s' is leased at epoch %llu (by '%.100s'), newer "
			 "than this VMM's --epoch %llu: the VM has another owner now; not %s",
			 d->id, (unsigned long long)rec.epoch, rec.owner,
			 (unsigned long long)cfg->lease_epoch, doing);
		ret = -ESTALE;
	}
	return ret;
}

int lease_fence(const struct vm_config *cfg, const char *doing, char *err, size_t errlen)
{
	unsigned int i;
	char *path;
	int ret = 0;

	for (i = 0; cfg->lease_epoch_set && !ret && i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		ret = fence_one(cfg, &cfg->devices[i], lease_fd_of(cfg, i), path, doing, err,
				errlen);
		free(path);
	}
	return ret;
}

/* This VMM's record under --epoch: owner, its epoch and VM, renewal count. */
static void own_rec(const struct vm_config *cfg, const char *owner, uint64_t count,
		    struct lease_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	snprintf(rec->owner, sizeof(rec->owner), "%s", owner);
	rec->epoch = cfg->lease_epoch;
	snprintf(rec->vm, sizeof(rec->vm), "%s", cfg->lease_epoch_vm ? cfg->lease_epoch_vm : "");
	rec->renew = count;
	rec->renewed = true; /* renewed from now on (rule 4) */
}

/* lease_take's write for disk d (image at path, record on lfd or -1); failures logged. */
static void take_one(const struct vm_config *cfg, const struct dev_config *d, int lfd,
		     const char *path, const char *owner)
{
	char line[LEASE_RECORD_MAX + 1];
	struct lease_rec rec;
	int n, ret;

	/* Without --epoch, the epoch found stays: a plain run never lowers the fence. */
	if (cfg->lease_epoch_set) {
		own_rec(cfg, owner, 0, &rec);
	} else {
		if (read_rec(lfd, path, &rec))
			memset(&rec, 0, sizeof(rec));
		snprintf(rec.owner, sizeof(rec.owner), "%s", owner);
	}
	n = lease_format(&rec, line, sizeof(line));
	if (n < 0)
		ret = n;
	else if (lfd >= 0)
		ret = write_lease_fd(lfd, line, (size_t)n);
	else
		ret = write_lease(path, line, (size_t)n);
	if (ret)
		log_warn("disk '%s': cannot record its lease next to %s: %s", d->id, path,
			 strerror(-ret));
}

int lease_take(const struct vm_config *cfg, const char *owner, const char *doing, char *err,
	       size_t errlen)
{
	unsigned int i;
	char *path;
	int ret;

	ret = lease_fence(cfg, doing, err, errlen);
	if (ret)
		return ret;
	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		take_one(cfg, &cfg->devices[i], lease_fd_of(cfg, i), path, owner);
		free(path);
	}
	return 0;
}

int lease_add(const struct vm_config *cfg, const struct dev_config *d, const char *owner,
	      int *lfd, char *err, size_t errlen)
{
	char *path = writable_disk(d);
	int ret = 0;

	*lfd = -1;
	if (!path)
		return 0;
	if (cfg->lease_fds)
		*lfd = open_rec(d, path);
	if (cfg->lease_epoch_set)
		ret = fence_one(cfg, d, *lfd, path, "adding it", err, errlen);
	if (!ret)
		take_one(cfg, d, *lfd, path, owner);
	if (ret && *lfd >= 0) {
		close(*lfd);
		*lfd = -1;
	}
	free(path);
	return ret;
}

int lease_check(const struct vm_config *cfg, const char *owner, char *err, size_t errlen)
{
	struct lease_rec rec;
	unsigned int i;
	char *path;
	int ret;

	for (i = 0; i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		ret = read_rec(lease_fd_of(cfg, i), path, &rec);
		free(path);
		if (ret == -EINVAL) {
			snprintf(err, errlen, "disk '%s': its lease record is not one plinth writes "
				 "(the destination may be rewriting it and run the guest)",
				 cfg->devices[i].id);
			return -EBUSY;
		}
		if (ret || !rec.owner[0])
			continue; /* no record (or an unreadable one): nobody took it over */
		if (strcmp(rec.owner, owner)) {
			snprintf(err, errlen, "disk '%s' is now leased to '%.100s' (the destination "
				 "took it over and may run the guest)", cfg->devices[i].id, rec.owner);
			return -EBUSY;
		}
	}
	return 0;
}

/* ---- rule 4: the renewed lease ---- */

int lease_renew(const struct vm_config *cfg, const char *owner, uint64_t count, char *err,
		size_t errlen)
{
	char line[LEASE_RECORD_MAX + 1];
	struct lease_rec rec;
	unsigned int i;
	int n, ret;

	if (!cfg->lease_epoch_set)
		return 0;
	ret = lease_fence(cfg, "running", err, errlen);
	if (ret)
		return ret;
	for (i = 0; i < cfg->nr_devices; i++) {
		int fd = lease_fd_of(cfg, i);

		if (fd < 0)
			continue; /* no record open (said at start-up): nothing to renew */
		own_rec(cfg, owner, count, &rec);
		n = lease_format(&rec, line, sizeof(line));
		ret = n < 0 ? n : write_lease_fd(fd, line, (size_t)n);
		if (ret) {
			snprintf(err, errlen, "disk '%s': cannot renew its lease record: %s",
				 cfg->devices[i].id, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Does owner (a record's "HOST pid=..") name another host than self's? */
static bool other_host(const char *owner, const char *self)
{
	size_t a = strcspn(owner, " "), b = strcspn(self, " ");

	return a != b || memcmp(owner, self, a);
}

int lease_watch(const struct vm_config *cfg, const char *owner, unsigned int ms, char *err,
		size_t errlen)
{
	struct lease_rec seen[VM_MAX_DEVICES], now;
	bool watched[VM_MAX_DEVICES] = { false }, any = false;
	uint64_t until;
	unsigned int i;
	char *path;

	for (i = 0; cfg->lease_epoch_set && i < cfg->nr_devices; i++) {
		path = writable_disk(&cfg->devices[i]);
		if (!path)
			continue;
		/* Unreadable or not a record: lease_fence says so, not this. */
		if (!read_rec(lease_fd_of(cfg, i), path, &seen[i]) && seen[i].renewed && same_vm(cfg, &seen[i]) &&
		    seen[i].epoch <= cfg->lease_epoch && other_host(seen[i].owner, owner)) {
			log_warn("disk '%s': its lease was renewed by '%.100s', on another host: "
				 "watching it for %u s before taking it over", cfg->devices[i].id,
				 seen[i].owner, ms / 1000);
			watched[i] = any = true;
		}
		free(path);
	}
	until = monotonic_ms() + ms;
	while (any && monotonic_ms() < until) {
		usleep(100 * 1000);
		for (i = 0; i < cfg->nr_devices; i++) {
			if (!watched[i])
				continue;
			path = writable_disk(&cfg->devices[i]);
			if (!path)
				continue;
			if (read_rec(lease_fd_of(cfg, i), path, &now) || now.renew != seen[i].renew ||
			    now.epoch != seen[i].epoch || strcmp(now.owner, seen[i].owner)) {
				snprintf(err, errlen, "disk '%s': its lease is being renewed by "
					 "'%.100s' (a VMM on another host runs this VM's guest on "
					 "it); not starting", cfg->devices[i].id,
					 now.owner[0] ? now.owner : seen[i].owner);
				free(path);
				return -EBUSY;
			}
			free(path);
		}
	}
	return 0;
}
