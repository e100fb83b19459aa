// SPDX-License-Identifier: MIT
/* One user's access to a file through its POSIX ACL (daemon/acl.c), on a tmpfs file
 * (/dev/shm): the entries written are what the kernel reads back, a second user's
 * entry survives the first's revocation, the mask follows, and the last revocation
 * leaves no attribute and the mode as it was. As root, a process of the granted uid
 * opens the file for writing (and one never granted cannot). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "acl.h"

#define UID_A 200101
#define UID_B 200102

static char path[64];

/* The attribute's entries as "tag:perm:id" words (ids only for named ones). */
static void entries(char *out, size_t size)
{
	unsigned char buf[1024];
	ssize_t len = getxattr(path, "system.posix_acl_access", buf, sizeof(buf));
	size_t off = 0, i;

	out[0] = '\0';
	if (len < 0) {
		assert_int_equal(errno, ENODATA);
		return;
	}
	assert_true(len >= 4 && (len - 4) % 8 == 0);
	for (i = 4; i + 8 <= (size_t)len; i += 8) {
		unsigned tag = buf[i] | buf[i + 1] << 8, perm = buf[i + 2] | buf[i + 3] << 8;
		uint32_t id = buf[i + 4] | buf[i + 5] << 8 | buf[i + 6] << 16 | (uint32_t)buf[i + 7] << 24;

		off += (size_t)snprintf(out + off, size - off, "%s%x:%o", off ? " " : "", tag, perm);
		if (tag == 0x02 || tag == 0x08)
			off += (size_t)snprintf(out + off, size - off, ":%u", id);
	}
}

/* As root: can a process of uid open path for writing? */
static bool can_write_as(uid_t uid)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(2);
		fd = open(path, O_RDWR);
		_exit(fd >= 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 2);
	return WEXITSTATUS(st) == 0;
}

static void test_grant_revoke(void **unused)
{
	char e[256];
	struct stat sb;
	int fd;

	(void)unused;
	snprintf(path, sizeof(path), "/dev/shm/plinth-acl.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, 0640), 0);
	if (geteuid() == 0)
		assert_false(can_write_as(UID_A));

	assert_int_equal(pd_acl_grant(path, UID_A, true), 0);
	entries(e, sizeof(e));
	assert_string_equal(e, "1:6 2:6:200101 4:4 10:6 20:0");
	assert_int_equal(pd_acl_grant(path, UID_A, true), 0); /* again: one entry still */
	entries(e, sizeof(e));
	assert_string_equal(e, "1:6 2:6:200101 4:4 10:6 20:0");
	assert_int_equal(pd_acl_grant(path, UID_B, false), 0);
	entries(e, sizeof(e));
	assert_string_equal(e, "1:6 2:6:200101 2:4:200102 4:4 10:6 20:0");
	if (geteuid() == 0) {
		assert_true(can_write_as(UID_A));
		assert_false(can_write_as(UID_B));
	}

	assert_int_equal(pd_acl_revoke(path, UID_A), 0);
	entries(e, sizeof(e));
	assert_string_equal(e, "1:6 2:4:200102 4:4 10:4 20:0");
	if (geteuid() == 0)
		assert_false(can_write_as(UID_A));
	assert_int_equal(pd_acl_revoke(path, UID_A), 0); /* none: nothing changes */
	assert_int_equal(pd_acl_revoke(path, UID_B), 0);
	entries(e, sizeof(e));
	assert_string_equal(e, "");
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0640);

	assert_int_equal(pd_acl_grant("/dev/shm/plinth-acl-none", UID_A, true), -ENOENT);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grant_revoke),
	};

	return cmocka_run_group_tests_name("daemon-acl", tests, NULL, NULL);
}
