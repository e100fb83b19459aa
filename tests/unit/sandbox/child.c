// SPDX-License-Identifier: MIT
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int run_child(int (*fn)(void *arg), void *arg, struct child_result *res)
{
	size_t len = 0;
	int pfd[2];
	pid_t pid;

	memset(res, 0, sizeof(*res));
	/* Or the child would write the parent's pending output again. */
	fflush(stdout);
	fflush(stderr);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(pfd[0]);
		close(pfd[1]);
		return -err;
	}
	if (pid == 0) {
		close(pfd[0]);
		if (dup2(pfd[1], STDERR_FILENO) < 0)
			_exit(250);
		/* No core files from the children killed on purpose. */
		if (setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0)
			_exit(251);
		/* cmocka catches these to fail a test: in the child they must just kill. */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		alarm(30);
		_exit(fn(arg));
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], res->err + len, sizeof(res->err) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(res->err) - 1) {
			char sink[256];

			while (read(pfd[0], sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	res->err[len] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &res->status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

bool child_exited(const struct child_result *res, int code)
{
	return WIFEXITED(res->status) && WEXITSTATUS(res->status) == code;
}

bool child_killed(const struct child_result *res, int sig)
{
	return WIFSIGNALED(res->status) && WTERMSIG(res->status) == sig;
}
