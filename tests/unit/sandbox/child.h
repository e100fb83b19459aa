/* SPDX-License-Identifier: MIT */
/* Run a test body in a forked child and collect how it ended and what it said on stderr. */
#ifndef PLINTH_TESTS_SANDBOX_CHILD_H
#define PLINTH_TESTS_SANDBOX_CHILD_H

#include <stdbool.h>
#include <stddef.h>

struct child_result {
	int status;        /* from waitpid */
	char err[8192];    /* the child's stderr, NUL-terminated, truncated */
};

/*
 * Fork; in the child, redirect stderr to a pipe, arm a 30 s alarm and _exit(fn(arg)).
 * The parent reads the pipe to EOF and reaps the child. 0 or -errno.
 */
int run_child(int (*fn)(void *arg), void *arg, struct child_result *res);

/* The child exited normally with this code. */
bool child_exited(const struct child_result *res, int code);
/* The child was killed by signal sig. */
bool child_killed(const struct child_result *res, int sig);

#endif
