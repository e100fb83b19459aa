// SPDX-License-Identifier: MIT
/*
 * The API server under the VMM's real seccomp filter for API threads
 * (vmm/sandbox): api_listen() on the unfiltered set-up thread, then
 * api_server_start_fd() on a thread that installed SANDBOX_API, as api.h tells the
 * VMM to do. Requests that take every path of the server (ok, 409, 400, 404, 405,
 * 413, idle client) must not make it call a syscall outside the allowlist: that
 * would kill the child process with SIGSYS, and the test fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "api.h"
#include "sandbox.h"

struct vm {
	pthread_mutex_t lock;
	bool paused;
};

static int vm_info(void *opaque, struct api_reply *reply)
{
	struct vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	reply->body = json_pack("{s:s}", "state", vm->paused ? "paused" : "running");
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vm_pause(void *opaque, struct api_reply *reply)
{
	struct vm *vm = opaque;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->paused) {
		snprintf(reply->error, sizeof(reply->error), "already paused");
		ret = -EALREADY;
	}
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static const struct api_vm_ops ops = {.info = vm_info, .pause = vm_pause};

struct run {
	int lfd, ready_efd, stop_efd;
	struct vm vm;
};

/* The VMM's API thread: filter first, then the server; stop under the filter too. */
static void *api_thread(void *arg)
{
	struct run *r = arg;
	struct api_server *s = NULL;
	uint64_t v = 2;

	if (sandbox_seccomp_install(SANDBOX_API) == 0) {
		s = api_server_start_fd(r->lfd, NULL, &ops, &r->vm);
		if (s)
			v = 1;
	}
	if (write(r->ready_efd, &v, sizeof(v)) != sizeof(v))
		return NULL;
	if (s) {
		if (read(r->stop_efd, &v, sizeof(v)) != sizeof(v))
			return NULL;
		api_server_stop(s);
	}
	return NULL;
}

#define CHECK(cond, code)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "# child: %s failed\n", #cond);                            \
			return code;                                                               \
		}                                                                                  \
	} while (0)

static int request(const char *sock, const char *method, const char *path, const char *body,
		   int want)
{
	char msg[256], *resp = NULL;
	int status = 0, ret;

	ret = ctl_request(sock, method, path, body, 5000, &status, &resp, msg, sizeof(msg));
	free(resp);
	if (ret || status != want) {
		fprintf(stderr, "# child: %s %s: ret %d status %d (%s)\n", method, path, ret,
			status, ret ? msg : "");
		return 1;
	}
	return 0;
}

/* Runs in the child; returns its exit status. */
static int child(const char *sock)
{
	struct run r = {.lfd = -1};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *big;
	pthread_t t;
	uint64_t v;
	int idle, bad = 0;

	pthread_mutex_init(&r.vm.lock, NULL);
	r.ready_efd = eventfd(0, EFD_CLOEXEC);
	r.stop_efd = eventfd(0, EFD_CLOEXEC);
	CHECK(r.ready_efd >= 0 && r.stop_efd >= 0, 10);
	r.lfd = api_listen(sock);
	CHECK(r.lfd >= 0, 11);
	CHECK(pthread_create(&t, NULL, api_thread, &r) == 0, 12);
	CHECK(read(r.ready_efd, &v, sizeof(v)) == sizeof(v) && v == 1, 13);

	/* An idle client holds a connection open meanwhile. */
	idle = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	CHECK(connect(idle, (struct sockaddr *)&sa, sizeof(sa)) == 0, 14);
	CHECK(send(idle, "GET /v1", 7, MSG_NOSIGNAL) == 7, 15);

	bad |= request(sock, "GET", "/v1/vm", NULL, 200);
	bad |= request(sock, "POST", "/v1/vm/pause", NULL, 200);
	bad |= request(sock, "POST", "/v1/vm/pause", "{}", 409);
	bad |= request(sock, "POST", "/v1/vm/pause", "{bad", 400);
	bad |= request(sock, "POST", "/v1/vm/resume", NULL, 501);
	bad |= request(sock, "GET", "/nope", NULL, 404);
	bad |= request(sock, "DELETE", "/v1/vm", NULL, 405);
	big = malloc(100 * 1024);
	CHECK(big, 16);
	memset(big, ' ', 100 * 1024 - 1);
	big[100 * 1024 - 1] = 0;
	bad |= request(sock, "POST", "/v1/vm/pause", big, 413);
	free(big);
	close(idle);
	CHECK(!bad, 17);

	v = 1;
	CHECK(write(r.stop_efd, &v, sizeof(v)) == sizeof(v), 18);
	pthread_join(t, NULL);
	unlinkat(AT_FDCWD, sock, 0); /* the main thread's job, as api.h says */
	return 0;
}

static void test_api_under_seccomp(void **unused)
{
	char dir[64], sock[96];
	int status;
	pid_t pid;

	(void)unused;
	snprintf(dir, sizeof(dir), "/tmp/plinth-apisb-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(sock));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rmdir(dir);
	if (WIFSIGNALED(status))
		fail_msg("the child died of signal %d (%s): a syscall outside the API allowlist?",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_under_seccomp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
