// SPDX-License-Identifier: MIT
/* Unit tests of the control API's pure half (vmm/api/request.c): every endpoint,
 * every kind of malformed request, the errno -> HTTP mapping and api_dispatch(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api.h"

static int parse(const char *method, const char *path, const char *body, struct api_cmd *cmd,
		 struct api_request_error *err)
{
	return api_parse_request(method, path, body, body ? strlen(body) : 0, cmd, err);
}

static void test_endpoints(void **unused)
{
	static const struct {
		const char *method, *path, *body;
		enum api_cmd_kind kind;
	} ok[] = {
		{"GET", "/v1/vm", NULL, API_CMD_INFO},
		{"POST", "/v1/vm/pause", NULL, API_CMD_PAUSE},
		{"POST", "/v1/vm/pause", "{}", API_CMD_PAUSE},
		{"POST", "/v1/vm/resume", " { } ", API_CMD_RESUME},
		{"POST", "/v1/vm/shutdown", NULL, API_CMD_SHUTDOWN},
		{"POST", "/v1/vm/reset", "{}", API_CMD_RESET},
		{"POST", "/v1/vm/snapshot", "{\"to\": \"/var/snap\"}", API_CMD_SNAPSHOT},
		{"POST", "/v1/vm/migrate", "{\"to\": \"tcp:h:1\"}", API_CMD_MIGRATE},
		{"PUT", "/v1/vm/disks/d0", "{\"path\": \"/x.img\"}", API_CMD_DISK_ADD},
		{"DELETE", "/v1/vm/disks/d0", NULL, API_CMD_DISK_REMOVE},
		{"DELETE", "/v1/vm/disks/d0", "{}", API_CMD_DISK_REMOVE},
		{"PUT", "/v1/vm/config", "{\"kernel\": \"/k\"}", API_CMD_CONFIGURE},
		{"POST", "/v1/vm/start", NULL, API_CMD_START},
		{"POST", "/v1/vm/start", "{}", API_CMD_START},
	};
	struct api_request_error err;
	struct api_cmd cmd;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int st = parse(ok[i].method, ok[i].path, ok[i].body, &cmd, &err);

		if (st)
			fail_msg("%s %s: %d %s", ok[i].method, ok[i].path, st, err.msg);
		assert_int_equal(cmd.kind, ok[i].kind);
		api_cmd_free(&cmd);
	}
}

/* PUT /v1/vm/config hands the object on (the VMM checks its schema); anything else is 4xx. */
static void test_config_body(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;

	(void)unused;
	assert_int_equal(parse("PUT", "/v1/vm/config", "{\"cpus\": 2}", &cmd, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(cmd.u.config, "cpus")), 2);
	api_cmd_free(&cmd);
	assert_null(cmd.u.config);
	assert_int_equal(parse("PUT", "/v1/vm/config", NULL, &cmd, &err), 400);
	assert_int_equal(parse("PUT", "/v1/vm/config", "[1]", &cmd, &err), 400);
	assert_int_equal(parse("PUT", "/v1/vm/config", "{\"a\":1,\"a\":2}", &cmd, &err), 400);
	assert_int_equal(parse("POST", "/v1/vm/config", "{}", &cmd, &err), 405);
	assert_string_equal(err.allow, "PUT");
	assert_int_equal(parse("PUT", "/v1/vm/start", NULL, &cmd, &err), 405);
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"now\": true}", &cmd, &err), 400);
}

static void test_snapshot_args(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":\"/srv/vm1/snap\"}", &cmd, &err),
			 0);
	assert_string_equal(cmd.u.snapshot.dir, "/srv/vm1/snap");
	/* Relative, empty, wrong type, missing, extra, NUL inside. */
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":\"snap\"}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'to' must be an absolute path");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":\"\"}", &cmd, &err), 400);
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":5}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'to' must be a string");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{}", &cmd, &err), 400);
	assert_string_equal(err.msg, "missing field 'to'");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", NULL, &cmd, &err), 400);
	assert_string_equal(err.msg, "a JSON object body is required");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":\"/a\",\"x\":1}", &cmd, &err),
			 400);
	assert_string_equal(err.msg, "unknown field 'x'");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", "{\"to\":\"/a\\u0000b\"}", &cmd, &err),
			 400);
	assert_int_equal(
		parse("POST", "/v1/vm/snapshot", "{\"to\":\"/a\",\"to\":\"/b\"}", &cmd, &err), 400);
}

/* POST /v1/vm/start: boot, restore (from, paused) or receive (listen), checked. */
static void test_start_args(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vm/start", NULL, &cmd, &err), 0);
	assert_string_equal(cmd.u.start.from, "");
	assert_string_equal(cmd.u.start.listen, "");
	assert_false(cmd.u.start.paused);
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"from\": \"/srv/snap\", \"paused\": true}",
			       &cmd, &err), 0);
	assert_string_equal(cmd.u.start.from, "/srv/snap");
	assert_true(cmd.u.start.paused);
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"listen\": \"tcp:10.0.0.2:4444\"}", &cmd,
			       &err), 0);
	assert_string_equal(cmd.u.start.listen, "tcp:10.0.0.2:4444");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"listen\": \"unix:/run/m.sock\"}", &cmd,
			       &err), 0);

	assert_int_equal(parse("POST", "/v1/vm/start", "{\"from\": \"snap\"}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'from' must be an absolute path");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"from\": \"/s\", \"listen\": \"unix:/m\"}",
			       &cmd, &err), 400);
	assert_string_equal(err.msg, "fields 'from' (a restore) and 'listen' (a migration's "
				     "destination) exclude each other");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"paused\": true}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'paused' goes with 'from' (a restore)");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"from\": \"/s\", \"paused\": 1}", &cmd,
			       &err), 400);
	assert_string_equal(err.msg, "field 'paused' must be a boolean");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"listen\": \"ftp:x\"}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'listen' must be tcp:HOST:PORT or unix:PATH");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"listen\": \"tcp:h:0\"}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'listen': port must be 1..65535 in 'tcp:h:0'");
	assert_int_equal(parse("POST", "/v1/vm/start", "{\"listen\": 5}", &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'listen' must be a string");
}

static void test_long_path(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;
	static char body[API_PATH_MAX + 32];
	int n;

	(void)unused;
	/* The longest path that fits, then one byte more. */
	n = sprintf(body, "{\"to\":\"/");
	memset(body + n, 'a', API_PATH_MAX - 2);
	strcpy(body + n + API_PATH_MAX - 2, "\"}");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", body, &cmd, &err), 0);
	assert_int_equal(strlen(cmd.u.snapshot.dir), API_PATH_MAX - 1);
	memset(body + n, 'a', API_PATH_MAX - 1);
	strcpy(body + n + API_PATH_MAX - 1, "\"}");
	assert_int_equal(parse("POST", "/v1/vm/snapshot", body, &cmd, &err), 400);
	assert_string_equal(err.msg, "field 'to' is longer than 4095 bytes");
}

/* Names are resolved by the client (ctl), never by the filtered VMM (issue 23). */
static void test_migrate_resolve(void **unused)
{
	char out[256], err[API_ERROR_MAX];

	(void)unused;
	assert_true(api_host_numeric("127.0.0.1"));
	assert_true(api_host_numeric("fe80::1"));
	assert_false(api_host_numeric("localhost"));
	assert_false(api_host_numeric("10.0.0.2.example"));
	assert_false(api_host_numeric(""));
	/* localhost resolves (hosts file) to 127.0.0.1 or ::1: always numeric after. */
	assert_int_equal(api_resolve_migrate_uri("tcp:localhost:4444", out, sizeof(out), err,
						 sizeof(err)), 0);
	if (strcmp(out, "tcp:127.0.0.1:4444") && strcmp(out, "tcp:[::1]:4444"))
		fail_msg("localhost resolved to %s", out);
	assert_int_equal(api_resolve_migrate_uri("tcp:10.1.2.3:5", out, sizeof(out), err,
						 sizeof(err)), 0);
	assert_string_equal(out, "tcp:10.1.2.3:5");
	assert_int_equal(api_resolve_migrate_uri("tcp:[fe80::1]:5", out, sizeof(out), err,
						 sizeof(err)), 0);
	assert_string_equal(out, "tcp:[fe80::1]:5");
	assert_int_equal(api_resolve_migrate_uri("unix:/run/m.sock", out, sizeof(out), err,
						 sizeof(err)), 0);
	assert_string_equal(out, "unix:/run/m.sock");
	assert_int_equal(api_resolve_migrate_uri("tcp:no-such-host.invalid:5", out, sizeof(out),
						 err, sizeof(err)), -EHOSTUNREACH);
	assert_non_null(strstr(err, "cannot resolve 'no-such-host.invalid'"));
	assert_int_equal(api_resolve_migrate_uri("tcp:h", out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(api_resolve_migrate_uri("tcp:1.2.3.4:5", out, 8, err, sizeof(err)),
			 -EINVAL);
}

static void test_migrate_args(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;
	const struct api_migrate_args *m = &cmd.u.migrate;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vm/migrate",
			       "{\"to\":\"tcp:dest.example:4444\",\"downtime_ms\":50}", &cmd, &err),
			 0);
	assert_int_equal(m->transport, API_MIGRATE_TCP);
	assert_string_equal(m->host, "dest.example");
	assert_int_equal(m->port, 4444);
	assert_int_equal(m->downtime_ms, 50);
	assert_int_equal(
		parse("POST", "/v1/vm/migrate", "{\"to\":\"tcp:[fe80::1]:1\"}", &cmd, &err), 0);
	assert_string_equal(m->host, "fe80::1");
	assert_int_equal(m->port, 1);
	assert_int_equal(m->downtime_ms, API_DOWNTIME_DEFAULT_MS);
	assert_int_equal(
		parse("POST", "/v1/vm/migrate", "{\"to\":\"tcp:10.0.0.2:65535\"}", &cmd, &err), 0);
	assert_string_equal(m->host, "10.0.0.2");
	assert_int_equal(
		parse("POST", "/v1/vm/migrate", "{\"to\":\"unix:/run/m.sock\"}", &cmd, &err), 0);
	assert_int_equal(m->transport, API_MIGRATE_UNIX);
	assert_string_equal(m->path, "/run/m.sock");

	static const char *const bad[] = {
		"{\"to\":\"tcp:h:0\"}",
		"{\"to\":\"tcp:h:65536\"}",
		"{\"to\":\"tcp:h:\"}",
		"{\"to\":\"tcp:h\"}",
		"{\"to\":\"tcp::80\"}",
		"{\"to\":\"tcp:h:8x\"}",
		"{\"to\":\"tcp:h:+80\"}",
		"{\"to\":\"tcp:fe80::1:80\"}",
		"{\"to\":\"tcp:[fe80::1]80\"}",
		"{\"to\":\"tcp:[fe80::1\"}",
		"{\"to\":\"tcp:h h:80\"}",
		"{\"to\":\"unix:rel.sock\"}",
		"{\"to\":\"unix:\"}",
		"{\"to\":\"udp:h:1\"}",
		"{\"to\":\"\"}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":0}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":60001}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":-5}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":1.5}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":\"50\"}",
		"{\"to\":\"tcp:h:1\",\"downtime_ms\":99999999999999999999}",
		"{\"to\":\"tcp:h:1\",\"speed\":1}",
		"{\"downtime_ms\":5}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse("POST", "/v1/vm/migrate", bad[i], &cmd, &err);

		if (st != 400)
			fail_msg("%s: %d", bad[i], st);
		assert_true(err.msg[0]);
	}
	/* A unix path longer than sun_path. */
	{
		char body[256];
		int n = sprintf(body, "{\"to\":\"unix:/");

		memset(body + n, 's', 107);
		strcpy(body + n + 107, "\"}");
		assert_int_equal(parse("POST", "/v1/vm/migrate", body, &cmd, &err), 400);
		body[n + 106] = '"';
		body[n + 107] = '}';
		body[n + 108] = 0;
		assert_int_equal(parse("POST", "/v1/vm/migrate", body, &cmd, &err), 0);
		assert_int_equal(strlen(m->path), 107);
	}
}

static void test_migrate_uri(void **unused)
{
	struct api_migrate_args a;
	char err[API_ERROR_MAX];

	(void)unused;
	assert_int_equal(api_parse_migrate_uri("tcp:0.0.0.0:4444", &a, err, sizeof(err)), 0);
	assert_int_equal(a.transport, API_MIGRATE_TCP);
	assert_string_equal(a.host, "0.0.0.0");
	assert_int_equal(a.port, 4444);
	assert_int_equal(a.downtime_ms, API_DOWNTIME_DEFAULT_MS);
	assert_int_equal(api_parse_migrate_uri("unix:/run/in.sock", &a, err, sizeof(err)), 0);
	assert_int_equal(a.transport, API_MIGRATE_UNIX);
	assert_string_equal(a.path, "/run/in.sock");
	assert_int_equal(api_parse_migrate_uri("tcp:host", &a, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'to': no port in 'tcp:host'");
}

static void test_disk_args(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;

	(void)unused;
	assert_int_equal(parse("PUT", "/v1/vm/disks/data_1-b",
			       "{\"path\":\"/img/d.qcow2\",\"readonly\":true}", &cmd, &err),
			 0);
	assert_string_equal(cmd.u.disk.id, "data_1-b");
	assert_string_equal(cmd.u.disk.path, "/img/d.qcow2");
	assert_true(cmd.u.disk.readonly);
	assert_string_equal(cmd.u.disk.format, "");
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", "{\"path\":\"/d\"}", &cmd, &err), 0);
	assert_false(cmd.u.disk.readonly);
	/* The format's name is the VMM's to check (its disk class); only its shape here. */
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", "{\"path\":\"/d\",\"format\":\"raw\"}",
			       &cmd, &err),
			 0);
	assert_string_equal(cmd.u.disk.format, "raw");
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", "{\"path\":\"/d\",\"format\":1}", &cmd,
			       &err),
			 400);
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", "{\"path\":\"/d\",\"format\":\"\"}", &cmd,
			       &err),
			 400);
	assert_int_equal(parse("PUT", "/v1/vm/disks/x",
			       "{\"path\":\"/d\",\"format\":\"0123456789abcdef\"}", &cmd, &err),
			 400);
	assert_int_equal(parse("DELETE", "/v1/vm/disks/x", NULL, &cmd, &err), 0);
	assert_string_equal(cmd.u.disk.id, "x");

	assert_int_equal(
		parse("PUT", "/v1/vm/disks/x", "{\"path\":\"/d\",\"readonly\":1}", &cmd, &err),
		400);
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", "{\"path\":\"d\"}", &cmd, &err), 400);
	assert_int_equal(parse("PUT", "/v1/vm/disks/x", NULL, &cmd, &err), 400);
	assert_int_equal(parse("DELETE", "/v1/vm/disks/x", "{\"path\":\"/d\"}", &cmd, &err), 400);
	/* Bad ids are unknown paths. */
	assert_int_equal(parse("PUT", "/v1/vm/disks/", "{\"path\":\"/d\"}", &cmd, &err), 404);
	assert_int_equal(parse("PUT", "/v1/vm/disks/a/b", "{\"path\":\"/d\"}", &cmd, &err), 404);
	assert_int_equal(parse("PUT", "/v1/vm/disks/a.b", "{\"path\":\"/d\"}", &cmd, &err), 404);
	assert_int_equal(parse("PUT", "/v1/vm/disks/0123456789012345678901234567890123",
			       "{\"path\":\"/d\"}", &cmd, &err),
			 404);
	assert_int_equal(parse("GET", "/v1/vm/disks/x", NULL, &cmd, &err), 405);
	assert_string_equal(err.allow, "PUT, DELETE");
}

static void test_net_args(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;

	(void)unused;
	assert_int_equal(parse("PUT", "/v1/vm/nets/lan",
			       "{\"tap\":\"tap0\",\"mac\":\"52:54:00:12:34:56\"}", &cmd, &err),
			 0);
	assert_int_equal(cmd.kind, API_CMD_NET_ADD);
	assert_string_equal(cmd.u.net.id, "lan");
	assert_string_equal(cmd.u.net.tap, "tap0");
	assert_string_equal(cmd.u.net.mac, "52:54:00:12:34:56");
	assert_int_equal(parse("PUT", "/v1/vm/nets/lan", "{\"tap\":\"tap0\"}", &cmd, &err), 0);
	assert_string_equal(cmd.u.net.mac, "");
	assert_int_equal(parse("DELETE", "/v1/vm/nets/lan", NULL, &cmd, &err), 0);
	assert_int_equal(cmd.kind, API_CMD_NET_REMOVE);
	assert_string_equal(cmd.u.net.id, "lan");

	assert_int_equal(parse("PUT", "/v1/vm/nets/lan", "{}", &cmd, &err), 400);
	assert_int_equal(parse("PUT", "/v1/vm/nets/lan", "{\"tap\":\"tap0\",\"path\":\"/d\"}",
			       &cmd, &err),
			 400);
	assert_int_equal(parse("PUT", "/v1/vm/nets/lan", "{\"tap\":\"0123456789abcdef\"}", &cmd,
			       &err),
			 400);
	assert_int_equal(parse("PUT", "/v1/vm/nets/lan",
			       "{\"tap\":\"t\",\"mac\":\"52:54:00:12:34:56:00\"}", &cmd, &err),
			 400);
	assert_int_equal(parse("PUT", "/v1/vm/nets/a.b", "{\"tap\":\"t\"}", &cmd, &err), 404);
	assert_non_null(strstr(err.msg, "NIC id"));
	assert_int_equal(parse("POST", "/v1/vm/nets/lan", NULL, &cmd, &err), 405);
	assert_string_equal(err.allow, "PUT, DELETE");
}

static void test_malformed(void **unused)
{
	static const struct {
		const char *method, *path, *body;
		int status;
	} bad[] = {
		{"GET", "/", NULL, 404},
		{"GET", "/v1", NULL, 404},
		{"GET", "/v1/vm/", NULL, 404},
		{"GET", "/v2/vm", NULL, 404},
		{"GET", "/v1/VM", NULL, 404},
		{"GET", "/v1/vm/pause/x", NULL, 404},
		{"GET", "", NULL, 404},
		{"POST", "/v1/vm", NULL, 405},
		{"DELETE", "/v1/vm", NULL, 405},
		{"GET", "/v1/vm/pause", NULL, 405},
		{"PUT", "/v1/vm/resume", NULL, 405},
		{"get", "/v1/vm", NULL, 405},
		{"HEAD", "/v1/vm", NULL, 405},
		{"GET", "/v1/vm", "{}", 400},
		{"POST", "/v1/vm/pause", "{", 400},
		{"POST", "/v1/vm/pause", "[]", 400},
		{"POST", "/v1/vm/pause", "null", 400},
		{"POST", "/v1/vm/pause", "\"x\"", 400},
		{"POST", "/v1/vm/pause", "{} {}", 400},
		{"POST", "/v1/vm/pause", "{\"force\":true}", 400},
		{"POST", "/v1/vm/pause", "\xff\xfe", 400},
		{"POST", "/v1/vm/snapshot", "{\"to\":\"/\xc3\"}", 400},
	};
	struct api_request_error err;
	struct api_cmd cmd;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse(bad[i].method, bad[i].path, bad[i].body, &cmd, &err);
		const char *p;

		if (st != bad[i].status)
			fail_msg("%s %s %s: %d, want %d (%s)", bad[i].method, bad[i].path,
				 bad[i].body ? bad[i].body : "", st, bad[i].status, err.msg);
		assert_int_equal(err.status, st);
		/* Every message is one line of printable ASCII. */
		assert_true(err.msg[0]);
		for (p = err.msg; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
		if (st == 405)
			assert_non_null(err.allow);
	}
	/* The 405 for a known path names the method to use. */
	assert_int_equal(parse("GET", "/v1/vm/pause", NULL, &cmd, &err), 405);
	assert_string_equal(err.allow, "POST");
	assert_string_equal(err.msg, "method GET not allowed on /v1/vm/pause (use POST)");
}

static void test_body_limits(void **unused)
{
	struct api_request_error err;
	struct api_cmd cmd;
	static char body[API_BODY_MAX + 2];

	(void)unused;
	/* Exactly the limit is parsed (whitespace padding); one more byte is 413. */
	memset(body, ' ', API_BODY_MAX + 1);
	body[0] = '{';
	body[API_BODY_MAX - 1] = '}';
	assert_int_equal(api_parse_request("POST", "/v1/vm/pause", body, API_BODY_MAX, &cmd, &err),
			 0);
	assert_int_equal(
		api_parse_request("POST", "/v1/vm/pause", body, API_BODY_MAX + 1, &cmd, &err), 413);
	/* A body with a NUL byte inside is not JSON. */
	assert_int_equal(api_parse_request("POST", "/v1/vm/pause", "{}\0", 3, &cmd, &err), 400);
	/* Deep nesting is refused by the parser, not by the stack. */
	memset(body, '[', API_BODY_MAX);
	assert_int_equal(api_parse_request("POST", "/v1/vm/pause", body, API_BODY_MAX, &cmd, &err),
			 400);
	/* A very long request path. */
	{
		char path[600];

		memset(path, 'a', sizeof(path) - 1);
		path[0] = '/';
		path[sizeof(path) - 1] = 0;
		assert_int_equal(parse("GET", path, NULL, &cmd, &err), 404);
	}
}

static void test_status_mapping(void **unused)
{
	(void)unused;
	assert_int_equal(api_status_for_errno(0), 200);
	assert_int_equal(api_status_for_errno(-EINVAL), 400);
	assert_int_equal(api_status_for_errno(-ENOENT), 404);
	assert_int_equal(api_status_for_errno(-EBUSY), 409);
	assert_int_equal(api_status_for_errno(-EALREADY), 409);
	assert_int_equal(api_status_for_errno(-EEXIST), 409);
	assert_int_equal(api_status_for_errno(-ENOTSUP), 501);
	assert_int_equal(api_status_for_errno(-EOPNOTSUPP), 501);
	assert_int_equal(api_status_for_errno(-EIO), 500);
	assert_int_equal(api_status_for_errno(-ENOMEM), 500);
	assert_int_equal(api_status_for_errno(-EPERM), 500);
}

/* A scripted VM: each op returns what the test set, and records its arguments. */
struct script {
	int ret;
	bool accepted;
	const char *error;
	bool give_body;
	int calls;
	struct api_migrate_args migrate;
	char removed[API_DISK_ID_MAX];
};

static int finish(struct script *s, struct api_reply *reply)
{
	s->calls++;
	reply->accepted = s->accepted;
	if (s->error)
		snprintf(reply->error, sizeof(reply->error), "%s", s->error);
	if (s->give_body)
		reply->body = json_pack("{s:s}", "state", "running");
	return s->ret;
}

static int op_plain(void *vm, struct api_reply *reply)
{
	return finish(vm, reply);
}

static int op_migrate(void *vm, const struct api_migrate_args *a, struct api_reply *reply)
{
	struct script *s = vm;

	s->migrate = *a;
	return finish(s, reply);
}

static int op_disk_remove(void *vm, const char *id, struct api_reply *reply)
{
	struct script *s = vm;

	snprintf(s->removed, sizeof(s->removed), "%s", id);
	return finish(s, reply);
}

static const struct api_vm_ops script_ops = {
	.info = op_plain,
	.pause = op_plain,
	.resume = op_plain,
	.shutdown = op_plain,
	.reset = op_plain,
	.migrate = op_migrate,
	.disk_remove = op_disk_remove,
	/* snapshot and disk_add left out: 501 */
};

static const char *error_of(json_t *body)
{
	return json_string_value(json_object_get(body, "error"));
}

static void run(struct script *s, const char *method, const char *path, const char *body,
		struct api_response *resp)
{
	struct api_request_error err;
	struct api_cmd cmd;

	assert_int_equal(parse(method, path, body, &cmd, &err), 0);
	api_dispatch(&script_ops, s, &cmd, resp);
	assert_non_null(resp->body);
}

static void test_dispatch(void **unused)
{
	struct script s = {0};
	struct api_response r;

	(void)unused;
	s.give_body = true;
	run(&s, "GET", "/v1/vm", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.body, "state")), "running");
	json_decref(r.body);

	/* info without a body is the VMM's bug: 500. */
	s.give_body = false;
	run(&s, "GET", "/v1/vm", NULL, &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(error_of(r.body), "info: info returned no JSON object");
	json_decref(r.body);

	run(&s, "POST", "/v1/vm/pause", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_object_size(r.body), 0);
	json_decref(r.body);

	/* 409 with the op's reason, and with a default one. */
	s.ret = -EALREADY;
	s.error = "the VM is already running";
	run(&s, "POST", "/v1/vm/resume", NULL, &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(error_of(r.body), "resume: the VM is already running");
	json_decref(r.body);
	s.error = NULL;
	s.ret = -EBUSY;
	s.give_body = true; /* a body given with a failure is dropped, not leaked */
	run(&s, "POST", "/v1/vm/reset", NULL, &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(error_of(r.body), "reset is not possible in the VM's current state");
	json_decref(r.body);
	s.give_body = false;

	s.ret = -EIO;
	run(&s, "POST", "/v1/vm/shutdown", NULL, &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(error_of(r.body), "shutdown failed: Input/output error");
	json_decref(r.body);
	s.ret = -EINVAL;
	run(&s, "POST", "/v1/vm/shutdown", NULL, &r);
	assert_int_equal(r.status, 400);
	json_decref(r.body);
	s.ret = 7; /* positive: a VMM bug */
	run(&s, "POST", "/v1/vm/shutdown", NULL, &r);
	assert_int_equal(r.status, 500);
	json_decref(r.body);

	/* Missing ops: 501. */
	s.ret = 0;
	s.calls = 0;
	run(&s, "POST", "/v1/vm/snapshot", "{\"to\":\"/s\"}", &r);
	assert_int_equal(r.status, 501);
	assert_string_equal(error_of(r.body), "snapshot is not supported by this VMM");
	json_decref(r.body);
	run(&s, "PUT", "/v1/vm/disks/d", "{\"path\":\"/s\"}", &r);
	assert_int_equal(r.status, 501);
	json_decref(r.body);
	assert_int_equal(s.calls, 0);

	/* Accepted work, and arguments passed through. */
	s.accepted = true;
	run(&s, "POST", "/v1/vm/migrate", "{\"to\":\"unix:/m\",\"downtime_ms\":9}", &r);
	assert_int_equal(r.status, 202);
	assert_int_equal(s.migrate.transport, API_MIGRATE_UNIX);
	assert_string_equal(s.migrate.path, "/m");
	assert_int_equal(s.migrate.downtime_ms, 9);
	json_decref(r.body);
	s.accepted = false;
	s.ret = -ENOENT;
	run(&s, "DELETE", "/v1/vm/disks/gone", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(s.removed, "gone");
	json_decref(r.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_config_body),      cmocka_unit_test(test_snapshot_args),
		cmocka_unit_test(test_start_args),
		cmocka_unit_test(test_long_path),      cmocka_unit_test(test_migrate_args),
		cmocka_unit_test(test_migrate_uri),    cmocka_unit_test(test_disk_args),
		cmocka_unit_test(test_net_args),
		cmocka_unit_test(test_migrate_resolve),
		cmocka_unit_test(test_malformed),      cmocka_unit_test(test_body_limits),
		cmocka_unit_test(test_status_mapping), cmocka_unit_test(test_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
