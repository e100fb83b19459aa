// SPDX-License-Identifier: MIT
/* Snapshot directories: crash-safe creation and opening (invariants in snapshot.h). */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "state.h"

#define STATE_TMP  STATE_SNAPSHOT_STATE_FILE ".tmp"
#define MEMORY_TMP STATE_SNAPSHOT_MEMORY_FILE ".tmp"

static void close_all(struct state_snapshot *s)
{
	if (s->state_fd >= 0)
		close(s->state_fd);
	if (s->memory_fd >= 0)
		close(s->memory_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	s->state_fd = s->memory_fd = s->dir_fd = -1;
}

int state_snapshot_create(const char *dir, struct state_snapshot *s)
{
	struct stat st;
	int ret;

	s->dir_fd = s->state_fd = s->memory_fd = -1;
	if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir)) {
		log_error("snapshot %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("snapshot %s: cannot create the directory: %s", dir, strerror(errno));
		return ret;
	}
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0) {
		ret = -errno;
		log_error("snapshot %s: %s", dir, strerror(errno));
		return ret;
	}
	if (fstatat(s->dir_fd, STATE_SNAPSHOT_STATE_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_error("snapshot %s: the directory already holds a snapshot", dir);
		ret = -EEXIST;
		goto out_close;
	}
	/* New files only (what the main thread may still open after start-up): a
	 * temporary file a failed snapshot left goes first. */
	unlinkat(s->dir_fd, STATE_TMP, 0);
	unlinkat(s->dir_fd, MEMORY_TMP, 0);
	s->state_fd = openat(s->dir_fd, STATE_TMP,
			     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->state_fd < 0) {
		ret = -errno;
		log_error("snapshot %s: cannot create %s: %s", dir, STATE_TMP, strerror(errno));
		goto out_close;
	}
	s->memory_fd = openat(s->dir_fd, MEMORY_TMP,
			      O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->memory_fd < 0) {
		ret = -errno;
		log_error("snapshot %s: cannot create %s: %s", dir, MEMORY_TMP, strerror(errno));
		goto out_unlink_state;
	}
	return 0;

out_unlink_state:
	unlinkat(s->dir_fd, STATE_TMP, 0);
out_close:
	close_all(s);
	return ret;
}

void state_snapshot_abort(struct state_snapshot *s)
{
	if (s->dir_fd >= 0) {
		unlinkat(s->dir_fd, STATE_TMP, 0);
		unlinkat(s->dir_fd, MEMORY_TMP, 0);
	}
	close_all(s);
}

int state_snapshot_commit(struct state_snapshot *s)
{
	const char *what;
	int ret;

	what = "flushing the memory file";
	if (fsync(s->memory_fd) < 0)
		goto out_abort;
	what = "flushing the state file";
	if (fsync(s->state_fd) < 0)
		goto out_abort;
	/* Memory first: a visible state file always has its memory beside it. */
	what = "renaming the memory file";
	if (renameat(s->dir_fd, MEMORY_TMP, s->dir_fd, STATE_SNAPSHOT_MEMORY_FILE) < 0)
		goto out_abort;
	what = "renaming the state file";
	if (renameat(s->dir_fd, STATE_TMP, s->dir_fd, STATE_SNAPSHOT_STATE_FILE) < 0)
		goto out_abort;
	what = "flushing the directory";
	if (fsync(s->dir_fd) < 0) {
		/* Both names are in place; only durability is in doubt. Leave them. */
		ret = -errno;
		log_error("snapshot %s: %s: %s", s->dir, what, strerror(errno));
		close_all(s);
		return ret;
	}
	close_all(s);
	return 0;

out_abort:
	ret = -errno;
	log_error("snapshot %s: %s: %s", s->dir, what, strerror(errno));
	unlinkat(s->dir_fd, STATE_SNAPSHOT_MEMORY_FILE, 0);
	state_snapshot_abort(s);
	return ret;
}

int state_snapshot_open(const char *dir, int *state_fd, int *memory_fd)
{
	int dfd, ret;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		log_error("snapshot %s: %s", dir, strerror(errno));
		return ret;
	}
	*state_fd = openat(dfd, STATE_SNAPSHOT_STATE_FILE, O_RDONLY | O_CLOEXEC);
	if (*state_fd < 0) {
		ret = -errno;
		if (errno == ENOENT)
			log_error("snapshot %s: no complete snapshot here (no '%s' file)", dir,
				  STATE_SNAPSHOT_STATE_FILE);
		else
			log_error("snapshot %s: %s: %s", dir, STATE_SNAPSHOT_STATE_FILE,
				  strerror(errno));
		goto out_close_dir;
	}
	*memory_fd = openat(dfd, STATE_SNAPSHOT_MEMORY_FILE, O_RDONLY | O_CLOEXEC);
	if (*memory_fd < 0) {
		ret = -errno;
		log_error("snapshot %s: %s: %s", dir, STATE_SNAPSHOT_MEMORY_FILE, strerror(errno));
		goto out_close_state;
	}
	close(dfd);
	return 0;

out_close_state:
	close(*state_fd);
	*state_fd = -1;
out_close_dir:
	close(dfd);
	return ret;
}
