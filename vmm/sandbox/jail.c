// SPDX-License-Identifier: MIT
/*
 * The jailer: confine the VMM process once it has opened everything it needs,
 * in the manner of Firecracker's jailer but inside the same binary.
 *
 * jail_enter() does, in this order (each step needs privileges the next drops):
 *   1. checks: configuration, root, a single thread, no directory fd open
 *      (an open directory is a way out of any chroot);
 *   2. loads what glibc would otherwise open lazily later (time zone);
 *   3. resource limits: RLIMIT_CORE 0, RLIMIT_NOFILE, and RLIMIT_NPROC and
 *      RLIMIT_FSIZE when asked (soft = hard, so they cannot be raised again);
 *   4. the new root: a private mount namespace, DIR bind-mounted on itself,
 *      pivot_root into it and the old root detached, so nothing of the host's
 *      tree stays reachable; where namespaces or pivot_root are refused (no
 *      CAP_SYS_ADMIN, or already inside a chroot) chroot(DIR) instead, with a
 *      warning. Either way cwd is "/";
 *   5. capabilities: empty bounding set, no ambient ones, securebits locked so
 *      that uid 0 would grant nothing and nothing can be kept across setuid;
 *   6. identity: no supplementary groups, then setresgid, then setresuid;
 *   7. capset to all zero, no_new_privs, not dumpable;
 *   8. verification: ids, groups, every capability set read back.
 *
 * What DIR must contain: nothing. plinth opens /dev/kvm, the images, taps and
 * sockets before jail_enter(), and uses getrandom(2) rather than /dev/urandom.
 * What is created at run time (snapshot files, guest-initiated vsock sockets)
 * is created relative to DIR, so DIR must be writable by uid/gid for those.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Highest capability number we drop from the bounding set if the kernel won't say. */
#define JAIL_CAP_SCAN_MAX 63

int jail_parse_opt(struct jail_cfg *cfg, const char *name, const char *value)
{
	uint64_t v;
	int rc;

	if (!strcmp(name, "jail-chroot")) {
		if (value) {
			log_error("--jail-chroot takes no value");
			return -EINVAL;
		}
		cfg->chroot_only = true;
		return 0;
	}
	if (strcmp(name, "jail") && strcmp(name, "uid") && strcmp(name, "gid") &&
	    strcmp(name, "jail-nofile") && strcmp(name, "jail-nproc") && strcmp(name, "jail-fsize"))
		return -ENOENT;
	if (!value || !*value) {
		log_error("--%s needs a value", name);
		return -EINVAL;
	}
	if (!strcmp(name, "jail")) {
		cfg->dir = value;
		return 0;
	}
	if (!strcmp(name, "jail-fsize")) {
		rc = parse_size(value, &v);
		if (rc || v == 0) {
			log_error("--jail-fsize: '%s' is not a size such as 64G", value);
			return -EINVAL;
		}
		cfg->fsize = v;
		return 0;
	}
	if (!strcmp(name, "uid") || !strcmp(name, "gid")) {
		/* (uid_t)-1 means "unchanged" to setresuid: never a valid id. */
		rc = parse_uint(value, 0, UINT32_MAX - 1, &v);
		if (rc) {
			log_error("--%s: '%s' is not a numeric id", name, value);
			return -EINVAL;
		}
		if (name[0] == 'u') {
			cfg->uid = (uid_t)v;
			cfg->has_uid = true;
		} else {
			cfg->gid = (gid_t)v;
			cfg->has_gid = true;
		}
		return 0;
	}
	if (!strcmp(name, "jail-nofile")) {
		rc = parse_uint(value, 64, 1 << 20, &v);
		if (rc) {
			log_error("--jail-nofile: '%s' is not a number in [64, 1048576]", value);
			return -EINVAL;
		}
		cfg->nofile = v;
		return 0;
	}
	rc = parse_uint(value, 1, 1 << 22, &v);
	if (rc) {
		log_error("--jail-nproc: '%s' is not a number in [1, 4194304]", value);
		return -EINVAL;
	}
	cfg->nproc = v;
	return 0;
}

int jail_check(const struct jail_cfg *cfg)
{
	struct stat st, root;

	if (!cfg->dir) {
		if (cfg->has_uid || cfg->has_gid || cfg->chroot_only || cfg->nofile ||
		    cfg->nproc || cfg->fsize) {
			log_error("--uid, --gid and --jail-* need --jail DIR");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->has_uid != cfg->has_gid) {
		log_error("--%s needs --%s too", cfg->has_uid ? "uid" : "gid",
			  cfg->has_uid ? "gid" : "uid");
		return -EINVAL;
	}
	if (!cfg->has_uid) {
		log_error("--jail needs --uid and --gid (the ids to run as inside the jail)");
		return -EINVAL;
	}
	if (cfg->uid == 0 || cfg->gid == 0) {
		log_error("--%s 0 would keep root's identity inside the jail",
			  cfg->uid == 0 ? "uid" : "gid");
		return -EINVAL;
	}
	if (stat(cfg->dir, &st) < 0) {
		int err = errno;

		log_error("--jail %s: %s", cfg->dir, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("--jail %s: not a directory", cfg->dir);
		return -ENOTDIR;
	}
	if (stat("/", &root) == 0 && root.st_dev == st.st_dev && root.st_ino == st.st_ino) {
		log_error("--jail %s: the jail cannot be the root itself", cfg->dir);
		return -EINVAL;
	}
	return 0;
}

/* Number of threads of this process from /proc/self/status, or 0 if unknown. */
static unsigned long thread_count(void)
{
	unsigned long n = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %lu", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* -EBADF with one line if an open fd is a directory: openat(fd, "..") leaves any root. */
static int check_no_dir_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int rc = 0;

	if (!d) {
		log_debug("jail: /proc/self/fd unreadable, open directories not checked");
		return 0;
	}
	while ((e = readdir(d))) {
		struct stat st;
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end || end == e->d_name || fd == dirfd(d))
			continue;
		if (fstat((int)fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			log_error("jail: fd %ld is an open directory, a way out of the jail: "
				  "close it before --jail", fd);
			rc = -EBADF;
			break;
		}
	}
	closedir(d);
	return rc;
}

static int set_limit(int res, const char *name, uint64_t v)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)v, .rlim_max = (rlim_t)v };

	if (setrlimit(res, &rl) < 0) {
		int err = errno;

		log_error("jail: setrlimit(%s, %llu): %s", name, (unsigned long long)v,
			  strerror(err));
		return -err;
	}
	return 0;
}

static int set_limits(const struct jail_cfg *cfg)
{
	int rc;

	rc = set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0);
	if (!rc)
		rc = set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE",
			       cfg->nofile ? cfg->nofile : JAIL_DEFAULT_NOFILE);
	if (!rc && cfg->nproc)
		rc = set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", cfg->nproc);
	if (!rc && cfg->fsize)
		rc = set_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", cfg->fsize);
	return rc;
}

static int chroot_into(const char *dir)
{
	if (chdir(dir) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		int err = errno;

		log_error("jail: chroot %s: %s", dir, strerror(err));
		return -err;
	}
	return 0;
}

/*
 * pivot_root into dir inside a new, private mount namespace. 0, -errno after
 * one line on a hard failure, or 1 if the kernel refused namespaces or
 * pivot_root (not privileged enough, already chrooted): use chroot then.
 */
static int pivot_into(const char *dir)
{
	int err;

	if (unshare(CLONE_NEWNS) < 0) {
		err = errno;
		log_warn("jail: no mount namespace (%s): falling back to chroot", strerror(err));
		return 1;
	}
	/* Nothing we do below may propagate back to the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		err = errno;
		log_error("jail: making mounts private: %s", strerror(err));
		return -err;
	}
	/* pivot_root wants the new root to be a mount point. */
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0) {
		err = errno;
		log_error("jail: bind-mounting %s: %s", dir, strerror(err));
		return -err;
	}
	if (chdir(dir) < 0) {
		err = errno;
		log_error("jail: chdir %s: %s", dir, strerror(err));
		return -err;
	}
	/* Old and new root on the same spot: the old one lands on top, then goes. */
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		err = errno;
		if (err == EINVAL || err == EPERM) {
			log_warn("jail: pivot_root refused (%s): falling back to chroot",
				 strerror(err));
			return 1;
		}
		log_error("jail: pivot_root %s: %s", dir, strerror(err));
		return -err;
	}
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		err = errno;
		log_error("jail: detaching the old root: %s", strerror(err));
		return -err;
	}
	return 0;
}

static int drop_bounding_set(void)
{
	for (int cap = 0; cap <= JAIL_CAP_SCAN_MAX; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			break; /* past the kernel's last capability */
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			int err = errno;

			log_error("jail: dropping capability %d from the bounding set: %s", cap,
				  strerror(err));
			return -err;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		int err = errno;

		log_error("jail: clearing ambient capabilities: %s", strerror(err));
		return -err;
	}
	/* Root (if ever regained) grants nothing; nothing survives a uid change. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
		  SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
		  SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED, 0, 0, 0) < 0) {
		int err = errno;

		log_error("jail: locking securebits: %s", strerror(err));
		return -err;
	}
	return 0;
}

static int set_ids(const struct jail_cfg *cfg)
{
	int err;

	if (setgroups(0, NULL) < 0) {
		err = errno;
		log_error("jail: setgroups: %s", strerror(err));
		return -err;
	}
	if (setresgid(cfg->gid, cfg->gid, cfg->gid) < 0) {
		err = errno;
		log_error("jail: setresgid %u: %s", (unsigned int)cfg->gid, strerror(err));
		return -err;
	}
	if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0) {
		err = errno;
		log_error("jail: setresuid %u: %s", (unsigned int)cfg->uid, strerror(err));
		return -err;
	}
	return 0;
}

static int clear_caps(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0) {
		int err = errno;

		log_error("jail: capset: %s", strerror(err));
		return -err;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		int err = errno;

		log_error("jail: no_new_privs: %s", strerror(err));
		return -err;
	}
	/* No ptrace or core by another process of the same uid. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		int err = errno;

		log_error("jail: PR_SET_DUMPABLE: %s", strerror(err));
		return -err;
	}
	return 0;
}

/* Read everything back: a confinement that did not happen must not pass silently. */
static int verify(const struct jail_cfg *cfg)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != cfg->uid || eu != cfg->uid || su != cfg->uid ||
	    rg != cfg->gid || eg != cfg->gid || sg != cfg->gid || getgroups(0, NULL) != 0) {
		log_error("jail: ids are not %u/%u after the switch", (unsigned int)cfg->uid,
			  (unsigned int)cfg->gid);
		return -EPERM;
	}
	if (syscall(SYS_capget, &hdr, data) < 0) {
		log_error("jail: capget: %s", strerror(errno));
		return -EPERM;
	}
	for (size_t i = 0; i < ARRAY_SIZE(data); i++) {
		if (data[i].effective || data[i].permitted || data[i].inheritable) {
			log_error("jail: capabilities left after dropping them");
			return -EPERM;
		}
	}
	for (int cap = 0; cap <= JAIL_CAP_SCAN_MAX; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;
		if (r > 0) {
			log_error("jail: capability %d left in the bounding set", cap);
			return -EPERM;
		}
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		log_error("jail: no_new_privs is not set");
		return -EPERM;
	}
	return 0;
}

int jail_enter(const struct jail_cfg *cfg)
{
	unsigned long threads;
	char *dir;
	int rc;

	if (!cfg->dir) {
		log_error("jail: no --jail DIR");
		return -EINVAL;
	}
	rc = jail_check(cfg);
	if (rc)
		return rc;
	if (geteuid() != 0) {
		log_error("--jail needs root (running as uid %u): it drops to --uid/--gid itself",
			  (unsigned int)geteuid());
		return -EPERM;
	}
	/*
	 * Namespaces, the bounding set and rlimits are per thread or need a lone thread.
	 * A thread just joined (the pre-boot API server's, the API's starter) may still be
	 * counted: pthread_join returns when the kernel clears its tid, before the task is
	 * released and leaves the count. Give such a thread up to 2 s to be gone (seen:
	 * 2 counted under a loaded emulated host).
	 */
	for (int i = 0; (threads = thread_count()) > 1 && i < 2000; i++)
		usleep(1000);
	if (threads > 1) {
		log_error("jail: %lu threads running; enter the jail before creating threads",
			  threads);
		return -EBUSY;
	}
	rc = check_no_dir_fds();
	if (rc)
		return rc;
	/* glibc's lazy reads (/etc/localtime...): from the host's tree, now. */
	sandbox_libc_prepare();

	/* Absolute: after a refused pivot_root, cwd is already inside DIR. */
	dir = realpath(cfg->dir, NULL);
	if (!dir) {
		rc = -errno;
		log_error("--jail %s: %s", cfg->dir, strerror(-rc));
		return rc;
	}
	rc = set_limits(cfg);
	if (!rc)
		rc = cfg->chroot_only ? 1 : pivot_into(dir);
	if (rc == 1) {
		rc = chroot_into(dir);
		if (!rc)
			log_info("jail: chroot into %s", dir);
	} else if (!rc) {
		log_info("jail: pivot_root into %s in a new mount namespace", dir);
	}
	free(dir);
	if (rc)
		return rc;
	rc = drop_bounding_set();
	if (rc)
		return rc;
	rc = set_ids(cfg);
	if (rc)
		return rc;
	rc = clear_caps();
	if (rc)
		return rc;
	return verify(cfg);
}
