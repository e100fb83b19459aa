/* SPDX-License-Identifier: MIT */
/*
 * A snapshot directory: DIR/state (the state container of state.h) and DIR/memory
 * (guest RAM, raw, laid out as the VMM's guest_mem slots' file_off say).
 *
 * Crash safety: both are written as DIR/state.tmp and DIR/memory.tmp; commit
 * fsyncs them, renames memory then state into place and fsyncs DIR. So "DIR/state
 * exists" means "the snapshot is complete": a crash at any point leaves either no
 * snapshot or a whole one (and maybe *.tmp files, which create() replaces).
 *
 *   state_snapshot_create() -> write state_fd (state_writer) and memory_fd
 *       -> state_snapshot_commit()   or   state_snapshot_abort()
 *   state_snapshot_open() -> read both (state_reader_new_fd on state_fd)
 *
 * Errors: 0 or -errno, with one line logged where it happened.
 */
#ifndef PLINTH_VMM_STATE_SNAPSHOT_H
#define PLINTH_VMM_STATE_SNAPSHOT_H

/* A snapshot being written. */
struct state_snapshot {
	int dir_fd;	/* the directory, for *at() calls and its fsync */
	int state_fd;	/* DIR/state.tmp, write the state container here */
	int memory_fd;	/* DIR/memory.tmp, write guest RAM here */
	char dir[4096]; /* for messages */
};

/*
 * Start a snapshot in dir (created with mode 0700 if missing; an existing directory
 * must not hold a snapshot already: -EEXIST). Files are created with mode 0600.
 */
int state_snapshot_create(const char *dir, struct state_snapshot *s);
/* Make the snapshot durable and visible; closes every fd. On error, aborts. */
int state_snapshot_commit(struct state_snapshot *s);
/* Drop the partial snapshot (its *.tmp files) and close every fd. */
void state_snapshot_abort(struct state_snapshot *s);

/* Open a complete snapshot for reading: *state_fd and *memory_fd, caller closes. */
int state_snapshot_open(const char *dir, int *state_fd, int *memory_fd);

#endif
