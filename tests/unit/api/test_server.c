// SPDX-License-Identifier: MIT
/* End-to-end tests of the control API: the real server on a Unix socket in a temp
 * directory, a fake VM behind the ops table, and the real client (ctl_main and
 * ctl_request), plus raw HTTP for what the client never sends. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "api.h"

/* --- A fake VM ----------------------------------------------------------------------- */

struct fake_vm {
	pthread_mutex_t lock; /* ops run on the API thread, the test reads from its own */
	bool paused, migrating;
	int shutdowns, resets;
	int in_op, overlaps; /* ops running now; times two ran at once */
	int reset_sleep_ms;  /* a slow reset, to test client timeouts */
	char snapshot_dir[API_PATH_MAX];
	struct api_migrate_args migrate;
	struct api_start_args start;
	int starts;
};

static int vm_info(void *opaque, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	reply->body =
		json_pack("{s:s, s:b, s:{s:i, s:s}, s:{s:i}}", "state",
			  vm->paused ? "paused" : "running", "migrating", vm->migrating, "config",
			  "cpus", 2, "memory", "512M", "counters", "resets", vm->resets);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vm_pause(void *opaque, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->paused) {
		snprintf(reply->error, sizeof(reply->error), "the VM is already paused");
		ret = -EALREADY;
	}
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int vm_resume(void *opaque, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->paused) {
		snprintf(reply->error, sizeof(reply->error), "the VM is already running");
		ret = -EALREADY;
	}
	vm->paused = false;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int vm_shutdown(void *opaque, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	vm->shutdowns++;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vm_reset(void *opaque, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;
	int sleep_ms;

	pthread_mutex_lock(&vm->lock);
	if (vm->in_op++)
		vm->overlaps++;
	vm->resets++;
	sleep_ms = vm->reset_sleep_ms;
	pthread_mutex_unlock(&vm->lock);
	usleep(sleep_ms ? (useconds_t)sleep_ms * 1000 : 200);
	pthread_mutex_lock(&vm->lock);
	vm->in_op--;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vm_snapshot(void *opaque, const struct api_snapshot_args *a, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->migrating) {
		snprintf(reply->error, sizeof(reply->error), "a migration is in progress");
		ret = -EBUSY;
	} else {
		snprintf(vm->snapshot_dir, sizeof(vm->snapshot_dir), "%s", a->dir);
		reply->body = json_pack("{s:s}", "snapshot", a->dir);
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int vm_migrate(void *opaque, const struct api_migrate_args *a, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->migrating) {
		snprintf(reply->error, sizeof(reply->error), "a migration is in progress");
		ret = -EBUSY;
	} else {
		vm->migrating = true;
		vm->migrate = *a;
		reply->accepted = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static int vm_disk_remove(void *opaque, const char *id, struct api_reply *reply)
{
	snprintf(reply->error, sizeof(reply->error), "no disk '%s'", id);
	return -ENOENT;
}

static int vm_start(void *opaque, const struct api_start_args *a, struct api_reply *reply)
{
	struct fake_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	vm->start = *a;
	vm->starts++;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static const struct api_vm_ops fake_ops = {
	.info = vm_info,
	.pause = vm_pause,
	.resume = vm_resume,
	.shutdown = vm_shutdown,
	.reset = vm_reset,
	.snapshot = vm_snapshot,
	.migrate = vm_migrate,
	.disk_remove = vm_disk_remove,
	.start = vm_start,
	/* no disk_add: 501 */
};

/* --- Fixture ------------------------------------------------------------------------- */

struct fixture {
	char dir[64];
	char sock[96];
	struct fake_vm vm;
	struct api_server *server;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/plinth-api-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->sock, sizeof(f->sock), "%s/api.sock", f->dir);
	pthread_mutex_init(&f->vm.lock, NULL);
	f->server = api_server_start(f->sock, &fake_ops, &f->vm);
	if (!f->server)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	api_server_stop(f->server);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->vm.lock);
	free(f);
	return 0;
}

/* Run ctl_main with argv (NULL-terminated), capturing stdout and stderr. */
static int ctl(char *out, size_t outsz, char *err, size_t errsz, ...)
{
	char *argv[16];
	int argc = 0, saved_out, saved_err, ret;
	FILE *fo = tmpfile(), *fe = tmpfile();
	va_list ap;
	size_t n;

	va_start(ap, errsz);
	argv[argc++] = "ctl";
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(STDOUT_FILENO);
	saved_err = dup(STDERR_FILENO);
	dup2(fileno(fo), STDOUT_FILENO);
	dup2(fileno(fe), STDERR_FILENO);
	ret = ctl_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, STDOUT_FILENO);
	dup2(saved_err, STDERR_FILENO);
	close(saved_out);
	close(saved_err);
	rewind(fo);
	rewind(fe);
	n = fread(out, 1, outsz - 1, fo);
	out[n] = 0;
	n = fread(err, 1, errsz - 1, fe);
	err[n] = 0;
	fclose(fo);
	fclose(fe);
	return ret;
}

/* Exactly one line on stderr. */
static void assert_one_line(const char *s)
{
	const char *nl = strchr(s, '\n');

	assert_non_null(nl);
	assert_int_equal(nl[1], 0);
}

/* Send raw bytes, return the whole response (malloc'd). */
static char *raw(const char *sock, const char *req, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n;

	assert_true(strlen(sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* The server may answer and close before all is sent (413): ignore EPIPE. */
	while (len) {
		n = send(fd, req, len, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		req += n;
		len -= (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	while (got < cap && (n = recv(fd, buf + got, cap - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	close(fd);
	return buf;
}

/* --- Tests --------------------------------------------------------------------------- */

static void test_info(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024], msg[256], *body = NULL;
	int status = 0;
	json_t *j;

	assert_int_equal(
		ctl_request(f->sock, "GET", "/v1/vm", NULL, 5000, &status, &body, msg, sizeof(msg)),
		0);
	assert_int_equal(status, 200);
	j = json_loads(body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "config"), "cpus")),
			 2);
	json_decref(j);
	free(body);

	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "info", NULL), 0);
	assert_non_null(strstr(out, "\"state\": \"running\""));
	assert_string_equal(err, "");
}

static void test_pause_resume(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024];

	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "pause", NULL), 0);
	assert_string_equal(out, "{}\n");
	assert_true(f->vm.paused);
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "pause", NULL), 1);
	assert_string_equal(out, "");
	assert_string_equal(err, "plinth: ctl pause: pause: the VM is already paused (HTTP 409)\n");
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "info", NULL), 0);
	assert_non_null(strstr(out, "\"state\": \"paused\""));
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "resume", NULL),
		0);
	assert_false(f->vm.paused);
	/* Resume while running: 409. */
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "resume", NULL),
		1);
	assert_string_equal(err,
			    "plinth: ctl resume: resume: the VM is already running (HTTP 409)\n");
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "shutdown", NULL),
		0);
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "reset", NULL), 0);
	assert_int_equal(f->vm.shutdowns, 1);
	assert_int_equal(f->vm.resets, 1);
}

static void test_snapshot_migrate(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024], cwd[1024], want[1200];

	/* A relative directory is sent as an absolute one. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/snap-1", cwd);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "snapshot", "--to", "snap-1", NULL),
			 0);
	assert_string_equal(f->vm.snapshot_dir, want);
	assert_non_null(strstr(out, want));

	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "migrate",
			     "--to", "tcp:127.0.0.1:4444", "--downtime-ms", "120", NULL),
			 0);
	assert_int_equal(f->vm.migrate.transport, API_MIGRATE_TCP);
	assert_string_equal(f->vm.migrate.host, "127.0.0.1");
	assert_int_equal(f->vm.migrate.port, 4444);
	assert_int_equal(f->vm.migrate.downtime_ms, 120);
	/* Snapshot or a second migration during a migration: 409. */
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "snapshot", "--to", "/tmp/x", NULL),
			 1);
	assert_string_equal(
		err, "plinth: ctl snapshot: snapshot: a migration is in progress (HTTP 409)\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "migrate",
			     "--to", "unix:/tmp/m.sock", NULL),
			 1);
	assert_non_null(strstr(err, "(HTTP 409)"));
	/* Info still answers while the migration runs. */
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "info", NULL), 0);
	assert_non_null(strstr(out, "\"migrating\": true"));
}

static void test_disks(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024];

	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "disk-add", "--id", "d1", "--path", "/img/d1.raw", NULL),
			 1);
	assert_string_equal(
		err, "plinth: ctl disk-add: disk add is not supported by this VMM (HTTP 501)\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "disk-remove", "--id", "d1", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl disk-remove: disk remove: no disk 'd1' (HTTP 404)\n");
}

/* start: a boot, a restore (its directory made absolute) or a migration's destination. */
static void test_start(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024], cwd[1024], want[1200];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/snap-1", cwd);
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start", NULL), 0);
	assert_string_equal(f->vm.start.from, "");
	assert_string_equal(f->vm.start.listen, "");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start",
			     "--from", "snap-1", "--paused", NULL),
			 0);
	assert_string_equal(f->vm.start.from, want);
	assert_true(f->vm.start.paused);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start",
			     "--listen", "unix:/run/m.sock", NULL),
			 0);
	assert_string_equal(f->vm.start.listen, "unix:/run/m.sock");
	assert_string_equal(f->vm.start.from, "");
	assert_int_equal(f->vm.starts, 3);
	/* The server checks the address; ctl says why on one line. */
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start",
			     "--listen", "udp:h:1", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl start: field 'listen' must be tcp:HOST:PORT or "
				 "unix:PATH (HTTP 400)\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start",
			     "--paused", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl start: --paused goes with --from\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "start",
			     "--from", "/s", "--listen", "unix:/m", NULL),
			 1);
	assert_one_line(err);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "pause",
			     "--from", "/s", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl pause: --from, --paused and --listen are start's "
				 "options\n");
	assert_int_equal(f->vm.starts, 3);
}

static void test_usage_errors(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024];
	static const char *const cases[][8] = {
		{"info", "--to", "/x", NULL},
		{"snapshot", NULL},
		{"snapshot", "--to", "/x", "extra", NULL},
		{"migrate", NULL},
		{"migrate", "--to", "tcp:h:1", "--downtime-ms", "0", NULL},
		{"migrate", "--to", "tcp:h:1", "--downtime-ms", "x", NULL},
		{"disk-add", "--id", "a/b", "--path", "/x", NULL},
		{"disk-add", "--id", "a", NULL},
		{"disk-remove", "--id", "a", "--readonly", NULL},
		{"disk-add", "--id", "a", "--path", "/x", "--tap", "t", NULL},
		{"net-add", "--id", "a", NULL},
		{"net-add", "--id", "a", "--tap", "t", "--path", "/x", NULL},
		{"net-remove", "--id", "a", "--mac", "52:54:00:12:34:56", NULL},
		{"info", "--format", "raw", NULL},
		{"frobnicate", NULL},
		{"pause", "--bogus", NULL},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret =
			ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			    cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4],
			    cases[i][5], cases[i][6], NULL);

		if (ret != 1)
			fail_msg("case %zu (%s): exit %d", i, cases[i][0], ret);
		assert_string_equal(out, "");
		assert_one_line(err);
	}
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "snapshot", "--to", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl snapshot: option '--to' needs a value\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "pause",
			     "--bogus", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl pause: unknown option '--bogus' (see plinth ctl "
				 "--help)\n");
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--sock", "x", "info", NULL), 1);
	assert_one_line(err);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", NULL), 1);
	assert_one_line(err);
	/* ctl checks a tcp: address itself (it resolves names before asking)... */
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "migrate",
			     "--to", "tcp:h:99999", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl migrate: --to: field 'to': port must be 1..65535 in "
				 "'tcp:h:99999'\n");
	/* ...and the server refuses what a hostile client could send; ctl says so on one line. */
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, "migrate",
			     "--to", "udp:h:1", NULL),
			 1);
	assert_string_equal(err, "plinth: ctl migrate: field 'to' must be tcp:HOST:PORT or "
				 "unix:PATH (HTTP 400)\n");
	/* No socket option, no command. */
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "info", NULL), 1);
	assert_non_null(strstr(err, "--api-socket PATH is required"));
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock, NULL), 1);
	assert_one_line(err);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--help", NULL), 0);
	assert_non_null(strstr(out, "usage: plinth ctl"));
}

static void test_no_server(void **state)
{
	struct fixture *f = *state;
	char out[4096], err[1024], path[100];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	snprintf(path, sizeof(path), "%s/missing.sock", f->dir);
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", path, "info", NULL), 1);
	assert_non_null(strstr(err, "no API socket at"));
	assert_one_line(err);

	/* A socket file nobody listens on. */
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(
		ctl(out, sizeof(out), err, sizeof(err), "--api-socket", path, "pause", NULL), 1);
	assert_non_null(strstr(err, "nothing listens on the API socket"));
	assert_one_line(err);
	unlink(path);
}

static void test_raw_http(void **state)
{
	struct fixture *f = *state;
	char *r, *big;
	static const char req_405[] = "GET /v1/vm/pause HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req_query[] = "GET /v1/vm?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req_404[] = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char req_400[] = "POST /v1/vm/pause HTTP/1.1\r\nHost: x\r\n"
				      "Content-Length: 5\r\n\r\n{bad}";
	static const char req_chunked[] = "POST /v1/vm/snapshot HTTP/1.1\r\nHost: x\r\n"
					  "Transfer-Encoding: chunked\r\n\r\n"
					  "6\r\n{\"to\":\r\n"
					  "8\r\n\"/chunk\"\r\n1\r\n}\r\n0\r\n\r\n";
	size_t n, i;

	r = raw(f->sock, req_405, strlen(req_405));
	assert_non_null(strstr(r, "HTTP/1.1 405"));
	assert_non_null(strstr(r, "Allow: POST"));
	assert_non_null(strstr(r, "application/json"));
	assert_non_null(strstr(r, "{\"error\":\"method GET not allowed on /v1/vm/pause"));
	free(r);
	r = raw(f->sock, req_404, strlen(req_404));
	assert_non_null(strstr(r, "HTTP/1.1 404"));
	assert_non_null(strstr(r, "\"error\""));
	free(r);
	r = raw(f->sock, req_query, strlen(req_query));
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	assert_non_null(strstr(r, "{\"error\":\"query parameters are not accepted\"}"));
	free(r);
	r = raw(f->sock, req_400, strlen(req_400));
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	assert_non_null(strstr(r, "invalid JSON"));
	free(r);
	/* A chunked body is reassembled. */
	r = raw(f->sock, req_chunked, strlen(req_chunked));
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_string_equal(f->vm.snapshot_dir, "/chunk");
	free(r);

	/* 100 KiB announced by Content-Length: refused (413) before it is read. */
	big = malloc(200 * 1024);
	n = (size_t)sprintf(big,
			    "POST /v1/vm/pause HTTP/1.1\r\nHost: x\r\n"
			    "Content-Length: %u\r\n\r\n",
			    100 * 1024);
	memset(big + n, ' ', 100 * 1024);
	r = raw(f->sock, big, n + 100 * 1024);
	assert_non_null(strstr(r, "HTTP/1.1 413"));
	assert_non_null(strstr(r, "request body larger than 65536 bytes"));
	free(r);
	/* The same through the client, which reads the early answer despite the reset. */
	{
		char msg[256], *body = NULL;
		int status = 0;

		memset(big, ' ', 100 * 1024);
		big[100 * 1024] = 0;
		assert_int_equal(ctl_request(f->sock, "POST", "/v1/vm/pause", big, 5000, &status,
					     &body, msg, sizeof(msg)),
				 0);
		assert_int_equal(status, 413);
		assert_non_null(strstr(body, "request body larger than 65536 bytes"));
		free(body);
	}
	/* 100 KiB in chunks, no Content-Length: refused (413) too. */
	n = (size_t)sprintf(big, "POST /v1/vm/pause HTTP/1.1\r\nHost: x\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 100; i++) {
		n += (size_t)sprintf(big + n, "400\r\n");
		memset(big + n, ' ', 1024);
		n += 1024;
		n += (size_t)sprintf(big + n, "\r\n");
	}
	n += (size_t)sprintf(big + n, "0\r\n\r\n");
	r = raw(f->sock, big, n);
	assert_non_null(strstr(r, "HTTP/1.1 413"));
	free(r);
	free(big);
	/* Garbage instead of HTTP: a 4xx, and the server lives on. */
	r = raw(f->sock, "\x01\x02garbage\r\n\r\n", 13);
	assert_true(r[0] == 0 || strstr(r, "HTTP/1.1 4"));
	free(r);
	r = raw(f->sock, req_404, strlen(req_404));
	assert_non_null(strstr(r, "HTTP/1.1 404"));
	free(r);
}

/* A client that connects and says nothing must not stall the others. */
static void test_idle_client(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char out[4096], err[1024];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, "GET /v1", 7, 0), 7);
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "--timeout", "5", "info", NULL),
			 0);
	close(fd);
}

static void test_socket_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct api_server *s2;
	struct stat st;
	char path[100];
	int fd;

	/* Mode 0600. */
	assert_int_equal(stat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* A live socket is not taken over. */
	s2 = api_server_start(f->sock, &fake_ops, &f->vm);
	assert_null(s2);
	/* A regular file is not replaced. */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_null(api_server_start(path, &fake_ops, &f->vm));
	assert_int_equal(stat(path, &st), 0);
	unlink(path);
	/* A stale socket is replaced, and the socket is gone after stop. */
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		char out[4096], err[1024];

		snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
		s2 = api_server_start(path, &fake_ops, &f->vm);
		assert_non_null(s2);
		assert_int_equal(
			ctl(out, sizeof(out), err, sizeof(err), "--api-socket", path, "info", NULL),
			0);
		api_server_stop(s2);
		assert_int_equal(stat(path, &st), -1);
		assert_int_equal(errno, ENOENT);
	}
	/* Too long a path. */
	{
		char longp[200];

		memset(longp, 'a', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = 0;
		assert_null(api_server_start(longp, &fake_ops, &f->vm));
	}
}

struct hammer {
	const char *sock;
	int failures;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	char msg[256], *body;
	int i, status;

	for (i = 0; i < 25; i++) {
		body = NULL;
		if (ctl_request(h->sock, "POST", "/v1/vm/reset", NULL, 10000, &status, &body, msg,
				sizeof(msg)) ||
		    status != 200)
			h->failures++;
		free(body);
	}
	return NULL;
}

/* Clients in parallel: every request is answered, and ops never overlap. */
static void test_parallel_clients(void **state)
{
	struct fixture *f = *state;
	struct hammer h[4];
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		h[i].sock = f->sock;
		h[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(h[i].failures, 0);
	}
	assert_int_equal(f->vm.resets, 100);
	assert_int_equal(f->vm.overlaps, 0);
}

/* A client gives up after --timeout; the server finishes the op and lives on. */
static void test_client_timeout(void **state)
{
	struct fixture *f = *state;
	char msg[256], out[4096], err[1024], *body = NULL;
	int status;

	f->vm.reset_sleep_ms = 1500;
	assert_int_equal(ctl_request(f->sock, "POST", "/v1/vm/reset", NULL, 300, &status, &body,
				     msg, sizeof(msg)),
			 -ETIMEDOUT);
	assert_string_equal(msg, "no answer within 300 ms");
	assert_null(body);
	f->vm.reset_sleep_ms = 0;
	assert_int_equal(ctl(out, sizeof(out), err, sizeof(err), "--api-socket", f->sock,
			     "--timeout", "10", "info", NULL),
			 0);
	assert_int_equal(f->vm.resets, 1);
}

/* The client's response parser on hand-made answers. */
static void test_parse_response(void **unused)
{
	const char *body;
	size_t blen;
	char err[128];
	int status;

	(void)unused;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	assert_int_equal(
		ctl_parse_response(ok, strlen(ok), &status, &body, &blen, err, sizeof(err)), 0);
	assert_int_equal(status, 200);
	assert_int_equal(blen, 2);
	assert_memory_equal(body, "{}", 2);
	static const char noclen[] = "HTTP/1.0 409 Conflict\r\nX: y\r\n\r\nabc";
	assert_int_equal(
		ctl_parse_response(noclen, strlen(noclen), &status, &body, &blen, err, sizeof(err)),
		0);
	assert_int_equal(status, 409);
	assert_int_equal(blen, 3);
	static const char *const bad[] = {
		"",
		"HTTP/1.1 2",
		"SMTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (ctl_parse_response(bad[i], strlen(bad[i]), &status, &body, &blen, err,
				       sizeof(err)) != -EBADMSG)
			fail_msg("case %zu accepted", i);
		assert_true(err[0]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_http, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
		cmocka_unit_test(test_parse_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
