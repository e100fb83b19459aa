// SPDX-License-Identifier: MIT
/*
 * The jailer: forked children (root here) enter a temporary jail and check from
 * inside what they can still see and do; bad configurations give one line each.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "child.h"
#include "log.h"
#include "sandbox.h"

#define CHECK(cond, code) do { if (!(cond)) return (code); } while (0)

#define JAIL_UID 65534
#define JAIL_GID 65534

struct fixture {
	char dir[64];        /* the jail, with a file "marker" */
	char outside[64];    /* a file outside the jail */
	char real_dir[PATH_MAX];
};

static struct fixture fx;
static struct child_result res;

static int setup(void **state)
{
	char path[PATH_MAX];
	int fd;

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/plinth-jail-XXXXXX");
	if (!mkdtemp(fx.dir) || chmod(fx.dir, 0755) < 0)
		return -1;
	if (!realpath(fx.dir, fx.real_dir))
		return -1;
	snprintf(path, sizeof(path), "%s/marker", fx.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 || write(fd, "jail\n", 5) != 5 || close(fd) < 0)
		return -1;
	snprintf(fx.outside, sizeof(fx.outside), "/tmp/plinth-outside-XXXXXX");
	fd = mkstemp(fx.outside);
	if (fd < 0 || fchmod(fd, 0666) < 0 || close(fd) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/marker", fx.dir);
	unlink(path);
	rmdir(fx.dir);
	unlink(fx.outside);
	return 0;
}

static void base_cfg(struct jail_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dir = fx.dir;
	cfg->uid = JAIL_UID;
	cfg->gid = JAIL_GID;
	cfg->has_uid = cfg->has_gid = true;
}

/* ---- inside the jail ------------------------------------------------------------- */

static int check_inside(const struct jail_cfg *cfg, int pre)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	char buf[16] = "";
	struct rlimit rl;
	uid_t r, e, s;
	gid_t rg, eg, sg;
	int fd;

	CHECK(getresuid(&r, &e, &s) == 0 && r == JAIL_UID && e == JAIL_UID && s == JAIL_UID, 1);
	CHECK(getresgid(&rg, &eg, &sg) == 0 && rg == JAIL_GID && eg == JAIL_GID &&
	      sg == JAIL_GID, 2);
	CHECK(getgroups(0, NULL) == 0, 3);
	/* "/" is the jail. */
	fd = open("/marker", O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && !strcmp(buf, "jail\n"), 4);
	close(fd);
	CHECK(getcwd(buf, sizeof(buf)) && !strcmp(buf, "/"), 5);
	CHECK(access("../../../marker", F_OK) == 0, 6);
	/* Nothing of the host: not the file outside, not /proc, not /etc. */
	CHECK(access(fx.outside, F_OK) < 0 && errno == ENOENT, 7);
	CHECK(access("/proc/self", F_OK) < 0 && errno == ENOENT, 8);
	CHECK(access("/etc", F_OK) < 0 && errno == ENOENT, 9);
	/* What was opened before still works. */
	CHECK(write(pre, "x", 1) == 1, 10);
	/* No capabilities anywhere. */
	CHECK(syscall(SYS_capget, &hdr, data) == 0, 11);
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		CHECK(!data[i].effective && !data[i].permitted && !data[i].inheritable, 12);
	for (int cap = 0; cap <= 40; cap++)
		CHECK(prctl(PR_CAPBSET_READ, cap, 0, 0, 0) <= 0, 13);
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 14);
	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0, 15);
	CHECK(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) & SECBIT_NOROOT_LOCKED, 16);
	/* And so no way back. */
	CHECK(setuid(0) < 0 && errno == EPERM, 17);
	CHECK(chroot("/") < 0 && errno == EPERM, 18);
	CHECK(mount("none", "/", "tmpfs", 0, NULL) < 0 && errno == EPERM, 19);
	CHECK(mkdir("/escape", 0755) < 0 && errno == EACCES, 20);
	/* Limits. */
	CHECK(getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0 && rl.rlim_max == 0, 21);
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == cfg->nofile &&
	      rl.rlim_max == cfg->nofile, 22);
	CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur == cfg->fsize, 23);
	CHECK(getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur == cfg->nproc, 24);
	return 0;
}

static int body_jail(void *arg)
{
	struct jail_cfg *cfg = arg;
	int pre = open(fx.outside, O_WRONLY | O_APPEND);

	if (pre < 0)
		return 99;
	log_set_level(LOG_INFO);
	if (jail_enter(cfg))
		return 100;
	return check_inside(cfg, pre);
}

static void run_jail(bool chroot_only)
{
	struct jail_cfg cfg;
	char want[PATH_MAX + 64];

	base_cfg(&cfg);
	cfg.chroot_only = chroot_only;
	cfg.nofile = 256;
	cfg.nproc = 4000;
	cfg.fsize = 1 << 20;
	assert_int_equal(run_child(body_jail, &cfg, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("child status %#x (check %d failed); stderr: %s", res.status,
			 WIFEXITED(res.status) ? WEXITSTATUS(res.status) : -1, res.err);
	/* Where pivot_root is refused (inside a chroot), the fallback says so. */
	snprintf(want, sizeof(want), "jail: %s into %s", chroot_only ? "chroot" : "pivot_root",
		 fx.real_dir);
	if (!strstr(res.err, want) && !(strstr(res.err, "falling back to chroot") &&
					 strstr(res.err, "jail: chroot into")))
		fail_msg("stderr lacks \"%s\": %s", want, res.err);
}

static void test_pivot_root(void **state)
{
	(void)state;
	run_jail(false);
}

static void test_chroot_only(void **state)
{
	(void)state;
	run_jail(true);
}

/*
 * Seen from outside: with pivot_root the child is in its own mount namespace;
 * with chroot it is not. The child waits in the jail while the parent looks.
 */
static bool jailed_in_new_mntns(bool chroot_only)
{
	char mine[64] = "", theirs[64] = "", path[64];
	int up[2], down[2];
	struct jail_cfg cfg;
	char c = 0;
	int status;
	pid_t pid;

	base_cfg(&cfg);
	cfg.chroot_only = chroot_only;
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc;

		alarm(30);
		rc = jail_enter(&cfg);
		c = rc ? 'F' : 'J';
		if (write(up[1], &c, 1) != 1 || rc || read(down[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	if (read(up[0], &c, 1) != 1 || c != 'J') {
		waitpid(pid, &status, 0);
		fail_msg("the child could not enter the jail (status %#x)", status);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	assert_true(readlink("/proc/self/ns/mnt", mine, sizeof(mine) - 1) > 0);
	assert_true(readlink(path, theirs, sizeof(theirs) - 1) > 0);
	assert_int_equal(write(down[1], "go", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	return strcmp(mine, theirs) != 0;
}

static void test_mount_namespace(void **state)
{
	(void)state;
	assert_false(jailed_in_new_mntns(true));
	if (!jailed_in_new_mntns(false)) {
		/* Inside a chroot (the emulated host's) pivot_root falls back. */
		print_message("# pivot_root refused here (chrooted?): namespace check skipped\n");
		skip();
	}
}

/* ---- refusals -------------------------------------------------------------------- */

static int body_enter_expect(void *arg)
{
	struct jail_cfg *cfg = arg;
	int rc = jail_enter(cfg);

	return rc < 0 ? -rc : 200;
}

/* jail_enter(cfg) in a child must fail with -err and say msg. */
static void expect_refusal(struct jail_cfg *cfg, int err, const char *msg)
{
	assert_int_equal(run_child(body_enter_expect, cfg, &res), 0);
	if (!child_exited(&res, err))
		fail_msg("status %#x, expected exit %d (%s); stderr: %s", res.status, err,
			 strerror(err), res.err);
	if (!strstr(res.err, msg))
		fail_msg("stderr lacks \"%s\": %s", msg, res.err);
	/* One line. */
	assert_non_null(strchr(res.err, '\n'));
	assert_string_equal(strchr(res.err, '\n'), "\n");
}

static void test_bad_configs(void **state)
{
	struct jail_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	cfg.dir = "/nonexistent-plinth-jail";
	expect_refusal(&cfg, ENOENT, "--jail /nonexistent-plinth-jail: No such file or directory");
	base_cfg(&cfg);
	cfg.dir = fx.outside;
	expect_refusal(&cfg, ENOTDIR, ": not a directory");
	base_cfg(&cfg);
	cfg.has_gid = false;
	expect_refusal(&cfg, EINVAL, "--uid needs --gid too");
	base_cfg(&cfg);
	cfg.has_uid = false;
	expect_refusal(&cfg, EINVAL, "--gid needs --uid too");
	base_cfg(&cfg);
	cfg.has_uid = cfg.has_gid = false;
	expect_refusal(&cfg, EINVAL, "--jail needs --uid and --gid");
	base_cfg(&cfg);
	cfg.uid = 0;
	expect_refusal(&cfg, EINVAL, "--uid 0 would keep root's identity");
	base_cfg(&cfg);
	cfg.dir = "/";
	expect_refusal(&cfg, EINVAL, "the jail cannot be the root itself");
	base_cfg(&cfg);
	cfg.dir = NULL;
	expect_refusal(&cfg, EINVAL, "jail: no --jail DIR");
	assert_int_equal(jail_check(&cfg), -EINVAL);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(jail_check(&cfg), 0); /* no jail asked: fine */
}

static int body_not_root(void *arg)
{
	if (setresuid(JAIL_UID, JAIL_UID, JAIL_UID) < 0)
		return 99;
	return body_enter_expect(arg);
}

static void test_needs_root(void **state)
{
	struct jail_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	assert_int_equal(run_child(body_not_root, &cfg, &res), 0);
	if (!child_exited(&res, EPERM))
		fail_msg("status %#x; stderr: %s", res.status, res.err);
	assert_non_null(strstr(res.err, "--jail needs root (running as uid 65534)"));
}

static void *sleeper(void *arg)
{
	char c;

	return read(*(int *)arg, &c, 1) < 0 ? NULL : arg;
}

static int body_threaded(void *arg)
{
	int p[2];
	pthread_t t;
	int rc;

	if (pipe(p) < 0 || pthread_create(&t, NULL, sleeper, &p[0]))
		return 99;
	rc = body_enter_expect(arg);
	close(p[1]);
	pthread_join(t, NULL);
	return rc;
}

static void test_single_thread_only(void **state)
{
	struct jail_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	assert_int_equal(run_child(body_threaded, &cfg, &res), 0);
	if (!child_exited(&res, EBUSY))
		fail_msg("status %#x; stderr: %s", res.status, res.err);
	assert_non_null(strstr(res.err, "jail: 2 threads running"));
}

static int body_dir_fd(void *arg)
{
	int fd = open("/", O_PATH | O_DIRECTORY);

	if (fd < 0)
		return 99;
	return body_enter_expect(arg);
}

static void test_open_directory_refused(void **state)
{
	struct jail_cfg cfg;

	(void)state;
	base_cfg(&cfg);
	assert_int_equal(run_child(body_dir_fd, &cfg, &res), 0);
	if (!child_exited(&res, EBADF))
		fail_msg("status %#x; stderr: %s", res.status, res.err);
	assert_non_null(strstr(res.err, "is an open directory, a way out of the jail"));
}

/* ---- option parsing -------------------------------------------------------------- */

static int body_parse(void *arg)
{
	struct jail_cfg cfg;

	(void)arg;
	memset(&cfg, 0, sizeof(cfg));
	CHECK(jail_parse_opt(&cfg, "jail", "/srv/jail") == 0 && !strcmp(cfg.dir, "/srv/jail"), 1);
	CHECK(jail_parse_opt(&cfg, "uid", "1000") == 0 && cfg.has_uid && cfg.uid == 1000, 2);
	CHECK(jail_parse_opt(&cfg, "gid", "1001") == 0 && cfg.has_gid && cfg.gid == 1001, 3);
	CHECK(jail_parse_opt(&cfg, "jail-chroot", NULL) == 0 && cfg.chroot_only, 4);
	CHECK(jail_parse_opt(&cfg, "jail-nofile", "1024") == 0 && cfg.nofile == 1024, 5);
	CHECK(jail_parse_opt(&cfg, "jail-nproc", "512") == 0 && cfg.nproc == 512, 6);
	CHECK(jail_parse_opt(&cfg, "jail-fsize", "64G") == 0 && cfg.fsize == 64ULL << 30, 7);
	CHECK(jail_parse_opt(&cfg, "memory", "1G") == -ENOENT, 8);
	/* Refusals, each with its line (checked by the parent). */
	CHECK(jail_parse_opt(&cfg, "uid", "abc") == -EINVAL, 9);
	CHECK(jail_parse_opt(&cfg, "gid", "-1") == -EINVAL, 10);
	CHECK(jail_parse_opt(&cfg, "uid", "4294967295") == -EINVAL, 11);
	CHECK(jail_parse_opt(&cfg, "jail-nofile", "8") == -EINVAL, 12);
	CHECK(jail_parse_opt(&cfg, "jail-fsize", "12X") == -EINVAL, 13);
	CHECK(jail_parse_opt(&cfg, "jail-chroot", "yes") == -EINVAL, 14);
	CHECK(jail_parse_opt(&cfg, "jail", "") == -EINVAL, 15);
	CHECK(jail_parse_opt(&cfg, "jail-nproc", NULL) == -EINVAL, 16);
	/* Values kept from before the refusals. */
	CHECK(cfg.uid == 1000 && cfg.gid == 1001 && cfg.nofile == 1024 &&
	      !strcmp(cfg.dir, "/srv/jail"), 17);
	memset(&cfg, 0, sizeof(cfg));
	CHECK(jail_parse_opt(&cfg, "uid", "7") == 0, 18);
	CHECK(jail_check(&cfg) == -EINVAL, 19);
	return 0;
}

static void test_parse(void **state)
{
	static const char *const lines[] = {
		"--uid: 'abc' is not a numeric id\n",
		"--gid: '-1' is not a numeric id\n",
		"--uid: '4294967295' is not a numeric id\n",
		"--jail-nofile: '8' is not a number in [64, 1048576]\n",
		"--jail-fsize: '12X' is not a size such as 64G\n",
		"--jail-chroot takes no value\n",
		"--jail needs a value\n",
		"--jail-nproc needs a value\n",
		"--uid, --gid and --jail-* need --jail DIR\n",
	};

	(void)state;
	assert_int_equal(run_child(body_parse, NULL, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("status %#x; stderr: %s", res.status, res.err);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(res.err, lines[i]))
			fail_msg("stderr lacks \"%s\": %s", lines[i], res.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pivot_root),
		cmocka_unit_test(test_chroot_only),
		cmocka_unit_test(test_mount_namespace),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_needs_root),
		cmocka_unit_test(test_single_thread_only),
		cmocka_unit_test(test_open_directory_refused),
		cmocka_unit_test(test_parse),
	};

	if (geteuid() != 0) {
		/* Entering a jail needs root; say so instead of pretending. */
		printf("1..0 # SKIP the jailer tests need root\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
