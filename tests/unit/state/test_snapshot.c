// SPDX-License-Identifier: MIT
/* Unit tests of snapshot directories (vmm/state/snapshot.h): the commit protocol,
 * abort, refusal to overwrite, and opening only complete snapshots. */
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
#include <unistd.h>
#include <cmocka.h>

#include "snapshot.h"
#include "state.h"

static char base[64];

static int setup(void **unused)
{
	snprintf(base, sizeof(base), "/tmp/plinth-snap-XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **unused)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static bool exists(const char *dir, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

/* Write a small snapshot into dir: one section, 8 KiB of memory. */
static int write_snapshot(const char *dir, bool commit)
{
	struct state_snapshot s;
	struct state_writer *w;
	uint8_t ram[8192];
	int ret;

	ret = state_snapshot_create(dir, &s);
	if (ret)
		return ret;
	memset(ram, 0xab, sizeof(ram));
	assert_int_equal(write(s.memory_fd, ram, sizeof(ram)), (ssize_t)sizeof(ram));
	w = state_writer_new_fd(s.state_fd, "snapshot state");
	state_writer_begin_section(w, "memory", 0, 0);
	state_put_u64(w, sizeof(ram));
	state_writer_end_section(w);
	assert_int_equal(state_writer_finish(w), 0);
	state_writer_free(w);
	/* No snapshot is visible before the commit. */
	assert_false(exists(dir, "state"));
	if (!commit) {
		state_snapshot_abort(&s);
		return 0;
	}
	return state_snapshot_commit(&s);
}

static void test_round_trip(void **unused)
{
	char dir[128];
	int sfd, mfd;
	struct state_reader *r;
	struct stat st;
	uint64_t size;

	snprintf(dir, sizeof(dir), "%s/snap", base);
	assert_int_equal(write_snapshot(dir, true), 0);
	assert_true(exists(dir, "memory"));
	assert_true(exists(dir, "state"));
	assert_true(exists(dir, "memory"));
	assert_false(exists(dir, "state.tmp"));
	assert_false(exists(dir, "memory.tmp"));
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	assert_int_equal(state_snapshot_open(dir, &sfd, &mfd), 0);
	r = state_reader_new_fd(sfd, "snapshot state");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_string_equal(state_reader_type(r), "memory");
	assert_int_equal(state_get_u64(r, &size), 0);
	assert_int_equal(state_reader_end_section(r), 0);
	assert_int_equal(state_reader_next_section(r), 0);
	state_reader_free(r);
	assert_int_equal(fstat(mfd, &st), 0);
	assert_int_equal(st.st_size, (off_t)size);
	assert_int_equal(fstat(sfd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	close(sfd);
	close(mfd);

	/* A second snapshot into the same directory is refused; the first is intact. */
	assert_int_equal(write_snapshot(dir, true), -EEXIST);
	assert_int_equal(state_snapshot_open(dir, &sfd, &mfd), 0);
	close(sfd);
	close(mfd);
}

static void test_abort_and_incomplete(void **unused)
{
	char dir[128];
	int sfd = -1, mfd = -1;

	snprintf(dir, sizeof(dir), "%s/aborted", base);
	assert_int_equal(write_snapshot(dir, false), 0);
	assert_false(exists(dir, "state.tmp"));
	assert_false(exists(dir, "memory.tmp"));
	assert_int_equal(state_snapshot_open(dir, &sfd, &mfd), -ENOENT);

	/* Leftovers of a crash before the commit: not a snapshot, and replaced by the next. */
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/state.tmp", dir);
		close(open(p, O_CREAT | O_WRONLY, 0600));
		snprintf(p, sizeof(p), "%s/memory", dir);
		close(open(p, O_CREAT | O_WRONLY, 0600));
	}
	assert_int_equal(state_snapshot_open(dir, &sfd, &mfd), -ENOENT);
	assert_int_equal(write_snapshot(dir, true), 0);
	assert_int_equal(state_snapshot_open(dir, &sfd, &mfd), 0);
	close(sfd);
	close(mfd);
}

static void test_bad_places(void **unused)
{
	struct state_snapshot s;
	char p[256];
	int sfd, mfd;

	/* A file where the directory should be. */
	snprintf(p, sizeof(p), "%s/file", base);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(state_snapshot_create(p, &s), -ENOTDIR);
	assert_int_equal(state_snapshot_open(p, &sfd, &mfd), -ENOTDIR);
	/* A missing parent. */
	snprintf(p, sizeof(p), "%s/no/such", base);
	assert_int_equal(state_snapshot_create(p, &s), -ENOENT);
	assert_int_equal(state_snapshot_open(p, &sfd, &mfd), -ENOENT);
	/* A state file without its memory. */
	snprintf(p, sizeof(p), "%s/half", base);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/half/state", base);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/half", base);
	assert_int_equal(state_snapshot_open(p, &sfd, &mfd), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_abort_and_incomplete),
		cmocka_unit_test(test_bad_places),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
