// SPDX-License-Identifier: MIT
/*
 * The api allowlist against the real libmicrohttpd and jansson: an API thread
 * installs SANDBOX_API, starts a daemon on a Unix socket (its internal threads
 * inherit the filter) and answers JSON, in each of libmicrohttpd's threading
 * modes; the main thread, under SANDBOX_MAIN, is the client.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "child.h"
#include "sandbox.h"

#define CHECK(cond, code) do { if (!(cond)) return (code); } while (0)

struct api_run {
	unsigned int mhd_flags;
	bool socket_in_thread; /* create and bind the socket after installing the filter */
	struct sockaddr_un addr;
	int lfd;               /* listening socket made by the main thread, or -1 */
	int ready_efd;         /* API thread -> main: daemon started (1) or failed (2) */
	int stop_efd;          /* main -> API thread: stop */
	int rc;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	json_t *j;
	char *text;

	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	j = json_pack("{s:s, s:s, s:i}", "state", "running", "url", url, "vcpus", 2);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text || strcmp(method, "GET"))
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void *api_thread(void *arg)
{
	struct api_run *r = arg;
	struct MHD_Daemon *d = NULL;
	uint64_t v = 2;

	/* jansson reads /dev/urandom for its hash seed on first use: seed it before. */
	json_object_seed(0);
	if (sandbox_seccomp_install(SANDBOX_API)) {
		r->rc = 1;
		goto out_tell;
	}
	if (r->socket_in_thread) {
		r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&r->addr, sizeof(r->addr)) ||
		    listen(r->lfd, 8)) {
			r->rc = 2;
			goto out_tell;
		}
	}
	d = MHD_start_daemon(r->mhd_flags, 0, NULL, NULL, on_request, NULL,
			     MHD_OPTION_LISTEN_SOCKET, r->lfd, MHD_OPTION_END);
	if (!d) {
		r->rc = 3;
		goto out_tell;
	}
	v = 1;
out_tell:
	if (write(r->ready_efd, &v, sizeof(v)) != sizeof(v))
		r->rc = 4;
	if (d) {
		if (read(r->stop_efd, &v, sizeof(v)) != sizeof(v))
			r->rc = 5;
		MHD_stop_daemon(d);
	}
	return NULL;
}

/* One GET over the Unix socket; 0 if the JSON came back. */
static int get_state(const struct sockaddr_un *addr)
{
	static const char req[] = "GET /vm HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0, 20);
	CHECK(connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0, 21);
	CHECK(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1, 22);
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	CHECK(strstr(buf, "HTTP/1.1 200"), 23);
	CHECK(strstr(buf, "{\"state\":\"running\",\"url\":\"/vm\",\"vcpus\":2}"), 24);
	return 0;
}

static int body_api(void *arg)
{
	struct api_run *r = arg;
	pthread_t t;
	uint64_t v;
	int rc;

	r->ready_efd = eventfd(0, EFD_CLOEXEC);
	r->stop_efd = eventfd(0, EFD_CLOEXEC);
	CHECK(r->ready_efd >= 0 && r->stop_efd >= 0, 10);
	if (!r->socket_in_thread) {
		r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(r->lfd >= 0, 11);
		CHECK(bind(r->lfd, (struct sockaddr *)&r->addr, sizeof(r->addr)) == 0, 12);
		CHECK(listen(r->lfd, 8) == 0, 13);
	}
	CHECK(pthread_create(&t, NULL, api_thread, r) == 0, 14);
	/* The main thread installs last, as the VMM does. */
	CHECK(sandbox_seccomp_install(SANDBOX_MAIN) == 0, 15);
	CHECK(read(r->ready_efd, &v, sizeof(v)) == sizeof(v), 16);
	if (v != 1)
		return 30 + r->rc;
	for (int i = 0; i < 3; i++) {
		rc = get_state(&r->addr);
		if (rc)
			return rc;
	}
	v = 1;
	CHECK(write(r->stop_efd, &v, sizeof(v)) == sizeof(v), 17);
	CHECK(pthread_join(t, NULL) == 0, 18);
	return r->rc ? 40 + r->rc : 0;
}

static void run_mode(unsigned int flags, bool socket_in_thread)
{
	struct api_run r = { .mhd_flags = flags, .socket_in_thread = socket_in_thread, .lfd = -1 };
	struct child_result res;

	/* An abstract socket: no file system needed (9p, as in the emulated host, has none). */
	r.addr.sun_family = AF_UNIX;
	snprintf(r.addr.sun_path + 1, sizeof(r.addr.sun_path) - 1, "plinth-api-test-%d-%#x",
		 (int)getpid(), flags);
	assert_int_equal(run_child(body_api, &r, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("flags %#x: child status %#x; stderr: %s", flags, res.status, res.err);
	assert_string_equal(res.err, "");
}

static void test_select(void **state)
{
	(void)state;
	run_mode(MHD_USE_INTERNAL_POLLING_THREAD, false);
}

static void test_poll(void **state)
{
	(void)state;
	run_mode(MHD_USE_POLL_INTERNAL_THREAD, false);
}

static void test_epoll(void **state)
{
	(void)state;
	run_mode(MHD_USE_EPOLL_INTERNAL_THREAD, false);
}

static void test_auto_socket_in_thread(void **state)
{
	(void)state;
	run_mode(MHD_USE_AUTO_INTERNAL_THREAD, true);
}

static void test_thread_per_connection(void **state)
{
	(void)state;
	run_mode(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_poll),
		cmocka_unit_test(test_epoll),
		cmocka_unit_test(test_auto_socket_in_thread),
		cmocka_unit_test(test_thread_per_connection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
