// SPDX-License-Identifier: MIT
/* plinthd's VM lifecycle without KVM: the daemon's core (daemon/core.c, vms.c)
 * with tests/unit/daemon/fake-plinth standing in for the VMM. Start, the refusals,
 * pause/resume, a SIGKILLed VM noticed within 2 s (never: crashed; on-crash: back),
 * plinthd closed and opened again (running VMs adopted with the same pid, one killed
 * meanwhile settled from its exit file and restarted), stop, reboot, a plinth that
 * fails at once, delete. The integration test plinthd-vms does the same with real
 * VMs in the emulated host. Run twice: the inventory in SQLite, then in PostgreSQL
 * (a private server, tests/daemon/pg-server; the group fails without it). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core.h"
#include "log.h"

#include "pg_test.h"

static struct plinthd *pd;
static char dir[64];
static struct pd_options opts;
static const struct store_ops *store = &store_sqlite_ops; /* the test's */
static char db_uri[256];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One request through the parser and the handler, as the server does it. */
static int call(const char *method, const char *path, const char *body, json_t **out)
{
	struct pd_request *r = malloc(sizeof(*r));
	struct pd_reply rep = {0};
	struct pd_error e;
	int st;

	assert_non_null(r);
	st = pd_parse_request(method, path, NULL, body, body ? strlen(body) : 0, r, &e);
	if (st) {
		free(r);
		fail_msg("%s %s refused by the parser: %s", method, path, e.msg);
	}
	pthread_mutex_lock(&pd->lock);
	pd_handle(pd, r, &rep);
	pthread_mutex_unlock(&pd->lock);
	free(r);
	if (out)
		*out = rep.body;
	else
		json_decref(rep.body);
	return rep.status;
}

static json_t *vm(const char *name)
{
	char path[128];
	json_t *o;

	snprintf(path, sizeof(path), "/v1/vms/%s", name);
	assert_int_equal(call("GET", path, NULL, &o), 200);
	return o;
}

static const char *state_of(const char *name, char *buf, size_t size, pid_t *pid)
{
	json_t *o = vm(name);

	snprintf(buf, size, "%s", json_string_value(json_object_get(o, "state")));
	if (pid)
		*pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	json_decref(o);
	return buf;
}

/* Wait until name is in state want; the milliseconds it took (fails after ms). */
static int64_t wait_state(const char *name, const char *want, int64_t ms)
{
	int64_t t0 = now_ms();
	char st[32];

	while (strcmp(state_of(name, st, sizeof(st), NULL), want)) {
		if (now_ms() - t0 > ms)
			fail_msg("%s is %s, not %s, after %lld ms", name, st, want, (long long)ms);
		usleep(20000);
	}
	return now_ms() - t0;
}

static pid_t pid_of(const char *name)
{
	char st[32];
	pid_t pid = 0;

	state_of(name, st, sizeof(st), &pid);
	return pid;
}

static bool reason_has(const char *name, const char *text)
{
	json_t *o = vm(name);
	const char *r = json_string_value(json_object_get(o, "reason"));
	bool yes = r && strstr(r, text);

	json_decref(o);
	return yes;
}

/* Wait until name runs again with a process other than old. */
static void wait_new_process(const char *name, pid_t old)
{
	int64_t t = now_ms();

	while (pid_of(name) == old && now_ms() - t < 5000)
		usleep(20000);
	wait_state(name, "running", 10000);
	assert_true(pid_of(name) != old);
}

static void act(const char *name, const char *verb, const char *body, int want)
{
	char path[128];
	int st;

	snprintf(path, sizeof(path), "/v1/vms/%s/%s", name, verb);
	st = call("POST", path, body, NULL);
	if (st != want)
		fail_msg("%s %s: %d, want %d", verb, name, st, want);
}

static void define(const char *name, const char *restart)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"name\": \"%s\", \"kernel\": \"%s\", \"memory_mib\": 64, "
				     "\"restart\": \"%s\"}", name, FAKE_PLINTH, restart);
	assert_int_equal(call("POST", "/v1/vms", body, NULL), 201);
}

static void reopen(void)
{
	pd_close(pd);
	pd = pd_open(&opts, store);
	assert_non_null(pd);
}

/* Read from fd until buf holds want (fails after ms); the bytes read. */
static size_t read_until(int fd, char *buf, size_t size, size_t len, const char *want, int64_t ms)
{
	int64_t t0 = now_ms();

	buf[len] = '\0';
	while (!strstr(buf, want)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (now_ms() - t0 > ms || len + 1 >= size)
			fail_msg("no '%s' in %zu bytes: %.400s", want, len, buf);
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			fail_msg("stream ended before '%s': %.400s", want, buf);
		len += (size_t)n;
		buf[len] = '\0';
		/* the scrollback may hold NULs: none here, the fake writes text */
	}
	return len;
}

/* GET /v1/vms/NAME/console upgraded to the raw stream on plinthd's socket: the connected
 * fd after the 101 answer, or -1 with the answer's status line in status. */
static int attach(const char *sock, const char *name, const char *extra, char *status,
		  size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[512], buf[1024];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req), "GET /v1/vms/%s/console HTTP/1.1\r\nHost: plinthd\r\n"
		 "Upgrade: plinth-console\r\nConnection: Upgrade\r\n\r\n%s", name, extra);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	/* The answer's head, byte by byte: what follows it is the console's. */
	while (len + 1 < sizeof(buf) && !(len >= 4 && !memcmp(buf + len - 4, "\r\n\r\n", 4))) {
		if (read(fd, buf + len, 1) != 1)
			break;
		len++;
	}
	buf[len] = '\0';
	snprintf(status, size, "%.*s", (int)strcspn(buf, "\r"), buf);
	if (!strstr(buf, " 101 ")) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The console as a stream (server.c, console.c): the scrollback first, input typed
 * (also in the request's own packet) reaches the guest and its echo comes back;
 * an unknown VM is a 404; the daemon's server stops with a stream attached. */
static void check_console_stream(void)
{
	char sock[128], status[128], *buf = malloc(1 << 20);
	struct pd_server *srv;
	size_t len;
	int fd;

	assert_non_null(buf);
	snprintf(sock, sizeof(sock), "%s/test.sock", dir);
	srv = pd_server_start(pd, sock);
	assert_non_null(srv);
	assert_int_equal(attach(sock, "nope", "", status, sizeof(status)), -1);
	assert_non_null(strstr(status, " 404"));
	fd = attach(sock, "a", "early input\n", status, sizeof(status));
	assert_true(fd >= 0);
	len = read_until(fd, buf, 1 << 20, 0, "fake-plinth: started", 5000);
	len = read_until(fd, buf, 1 << 20, len, "input: early input", 5000);
	assert_int_equal(write(fd, "typed\n", 6), 6);
	len = read_until(fd, buf, 1 << 20, len, "input: typed", 5000);
	/* A second attachment at once: both see what the guest writes. */
	{
		int fd2 = attach(sock, "a", "", status, sizeof(status));
		size_t len2;

		assert_true(fd2 >= 0);
		len2 = read_until(fd2, buf, 1 << 20, 0, "input: typed", 5000);
		assert_int_equal(write(fd2, "second\n", 7), 7);
		read_until(fd2, buf, 1 << 20, len2, "input: second", 5000);
		read_until(fd, buf, 1 << 20, len, "input: second", 5000);
		close(fd2);
	}
	/* Input, then the end of the client's input at once (as `printf x | plinth vm console
	 * --attach`): typed all the same, then plinthd ends the stream. */
	{
		int fd3 = attach(sock, "a", "", status, sizeof(status));
		char tmp[65536];

		assert_true(fd3 >= 0);
		assert_int_equal(write(fd3, "half-closed\n", 12), 12);
		assert_int_equal(shutdown(fd3, SHUT_WR), 0);
		while (read(fd3, tmp, sizeof(tmp)) > 0)
			;
		close(fd3);
		len = read_until(fd, buf, 1 << 20, len, "input: half-closed", 5000);
	}
	pd_server_stop(srv); /* with fd still attached: the stream ends, the stop returns */
	{
		/* What the VM wrote just before the stop may still be on its way (the ASan
		 * build once read a byte of it here); then the end, within 5 s and 1 MiB. */
		char tmp[4096];
		struct pollfd p = {.fd = fd, .events = POLLIN};
		size_t total = 0;
		ssize_t n;

		do {
			assert_int_equal(poll(&p, 1, 5000), 1);
			n = read(fd, tmp, sizeof(tmp));
			total += n > 0 ? (size_t)n : 0;
		} while (n > 0 && total < (1u << 20));
		assert_true(n <= 0);
	}
	close(fd);
	free(buf);
}

/* The console text of VM name (its scrollback). */
static char *console_of(const char *name)
{
	char path[128], *text;
	json_t *o;

	snprintf(path, sizeof(path), "/v1/vms/%s/console", name);
	assert_int_equal(call("GET", path, NULL, &o), 200);
	text = strdup(json_string_value(json_object_get(o, "console")));
	json_decref(o);
	assert_non_null(text);
	return text;
}

/* Wait until the console of name holds want times times (fails after 5 s). */
static void wait_console(const char *name, const char *want, unsigned times)
{
	int64_t t0 = now_ms();
	unsigned seen;
	char *text;
	const char *p;

	for (;;) {
		text = console_of(name);
		for (seen = 0, p = text; (p = strstr(p, want)); p++)
			seen++;
		if (seen >= times)
			break;
		if (now_ms() - t0 > 5000)
			fail_msg("no '%s' on the console of %s: %.600s", want, name, text);
		free(text);
		usleep(20000);
	}
	free(text);
}

/* Raw SQL on the group's inventory, behind plinthd's back. */
static void inventory_exec(const char *sql)
{
	if (store == &store_sqlite_ops) {
		char path[128];
		sqlite3 *db;

		snprintf(path, sizeof(path), "%s/inventory.db", dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	} else {
		PGconn *c = PQconnectdb(db_uri);
		PGresult *r;

		assert_int_equal(PQstatus(c), CONNECTION_OK);
		r = PQexec(c, sql);
		assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
		PQclear(r);
		PQfinish(c);
	}
}

/* Every disk gets a device id and a pinned PCI slot from the inventory, the same at
 * each start, also for a VM defined before the inventory kept them (an older
 * plinthd: none recorded, so the start records what plinth would choose itself); a
 * path with a comma reaches plinth escaped (",,"). */
static void test_device_ids(void **unused)
{
	char body[1024], a[128], b[128], want[512];
	const char *id, *kind;
	json_t *o, *devs;
	size_t i;
	int fd;

	(void)unused;
	snprintf(a, sizeof(a), "%s/a,b.img", dir);
	snprintf(b, sizeof(b), "%s/c.img", dir);
	fd = open(a, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	fd = open(b, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(body, sizeof(body), "{\"name\": \"dev\", \"kernel\": \"%s\", \"memory_mib\": "
		 "64, \"disks\": [{\"path\": \"%s\"}, {\"path\": \"%s\", \"readonly\": true}]}",
		 FAKE_PLINTH, a, b);
	assert_int_equal(call("POST", "/v1/vms", body, &o), 201);
	devs = json_object_get(o, "devices");
	assert_int_equal(json_array_size(devs), 2);
	for (i = 0; i < 2; i++) {
		kind = json_string_value(json_object_get(json_array_get(devs, i), "kind"));
		id = json_string_value(json_object_get(json_array_get(devs, i), "id"));
		assert_string_equal(kind, "disk");
		assert_string_equal(id, i ? "disk1" : "disk0");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(devs, i), "slot")),
				 i + 1);
	}
	json_decref(o);
	for (i = 0; i < 3; i++) {
		if (i == 2) { /* as an older plinthd left it */
			inventory_exec("DELETE FROM vm_devices");
			o = vm("dev");
			assert_int_equal(json_array_size(json_object_get(o, "devices")), 0);
			json_decref(o);
		}
		act("dev", "start", NULL, 202);
		wait_state("dev", "running", 10000);
		snprintf(want, sizeof(want),
			 "--disk path=%s/a,,b.img,id=disk0,addr=1 --disk path=%s,readonly=on,"
			 "id=disk1,addr=2\n", dir, b);
		wait_console("dev", want, (unsigned)i + 1);
		act("dev", "kill", NULL, 200);
	}
	o = vm("dev");
	devs = json_object_get(o, "devices");
	assert_int_equal(json_array_size(devs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(devs, 1), "id")),
			    "disk1");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(devs, 1), "slot")), 2);
	json_decref(o);
	assert_int_equal(call("DELETE", "/v1/vms/dev", NULL, NULL), 200);
	unlink(a);
	unlink(b);
}

/* The id and slot of VM name's device id in the inventory (GET /v1/vms/{name}):
 * the slot, 0 if there is no such device; *index its index. */
static unsigned dev_slot(const char *name, const char *id, unsigned *index)
{
	json_t *o = vm(name), *d;
	unsigned slot = 0;
	size_t i;

	json_array_foreach(json_object_get(o, "devices"), i, d)
	{
		if (!strcmp(json_string_value(json_object_get(d, "id")), id)) {
			slot = (unsigned)json_integer_value(json_object_get(d, "slot"));
			if (index)
				*index = (unsigned)json_integer_value(json_object_get(d, "index"));
		}
	}
	json_decref(o);
	return slot;
}

static int disk_call(const char *method, const char *name, const char *id, const char *body,
		     char *err, size_t errlen)
{
	char path[128];
	json_t *o;
	int st;

	snprintf(path, sizeof(path), "/v1/vms/%s/disks/%s", name, id);
	st = call(method, path, body, &o);
	if (err)
		snprintf(err, errlen, "%s", st >= 300 ? json_string_value(json_object_get(o, "error"))
						       : "");
	json_decref(o);
	return st;
}

/* Disks attached and detached (daemon/hotplug.c): on a stopped VM the definition and
 * the inventory change alone; on a running one the VMM (the fake, as plinth's API)
 * hot-plugs it, the slot it chose is recorded, and a restart gives it the same id
 * and slot; a detach waits for the guest's (slow) eject, a guest that does not eject
 * in time gets a 504 and the disk stays; later disks move down and keep their slots;
 * the refusals (an id in use, a missing file, an unknown disk) change nothing. */
static void test_hotplug(void **unused)
{
	char body[1024], a[128], b[128], c[128], want[768], err[256];
	unsigned index = 99;
	int64_t t0;
	int fd, i;

	(void)unused;
	snprintf(a, sizeof(a), "%s/a.img", dir);
	snprintf(b, sizeof(b), "%s/b.img", dir);
	snprintf(c, sizeof(c), "%s/c.img", dir);
	for (i = 0; i < 3; i++) {
		fd = open(i == 0 ? a : i == 1 ? b : c, O_CREAT | O_WRONLY, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	snprintf(body, sizeof(body), "{\"name\": \"hp\", \"kernel\": \"%s\", \"memory_mib\": 64, "
		 "\"disks\": [{\"path\": \"%s\"}]}", FAKE_PLINTH, a);
	assert_int_equal(call("POST", "/v1/vms", body, NULL), 201);

	/* Stopped: the inventory alone, at its lowest free slot. */
	snprintf(body, sizeof(body), "{\"path\": \"%s\", \"readonly\": true}", b);
	assert_int_equal(disk_call("PUT", "hp", "cold", body, NULL, 0), 200);
	assert_int_equal(dev_slot("hp", "cold", &index), 2);
	assert_int_equal(index, 1);
	assert_int_equal(disk_call("PUT", "hp", "cold", body, err, sizeof(err)), 409);
	assert_string_equal(err, "VM 'hp' has a device with id cold already");
	snprintf(body, sizeof(body), "{\"path\": \"%s/none.img\"}", dir);
	assert_int_equal(disk_call("PUT", "hp", "gone", body, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "none.img: No such file or directory"));
	assert_int_equal(disk_call("DELETE", "hp", "nosuch", NULL, err, sizeof(err)), 404);
	assert_string_equal(err, "VM 'hp' has no disk with id nosuch");

	/* Running: hot-plugged by the VMM, which picks slot 3; the definition has it. */
	setenv("FAKE_PLINTH_EJECT_MS", "1500", 1); /* a slow guest */
	act("hp", "start", NULL, 202);
	wait_state("hp", "running", 10000);
	snprintf(body, sizeof(body), "{\"path\": \"%s\"}", c);
	assert_int_equal(disk_call("PUT", "hp", "hot", body, NULL, 0), 200);
	snprintf(want, sizeof(want), "fake-plinth: disk-add hot addr=3 %s\n", c);
	wait_console("hp", want, 1);
	assert_int_equal(dev_slot("hp", "hot", &index), 3);
	assert_int_equal(index, 2);
	assert_int_equal(disk_call("PUT", "hp", "hot", body, err, sizeof(err)), 409);
	snprintf(body, sizeof(body), "{\"path\": \"%s\", \"readonly\": true}", "/nonexistent");
	assert_int_equal(disk_call("PUT", "hp", "bad", body, err, sizeof(err)), 400);
	assert_int_equal(dev_slot("hp", "bad", NULL), 0);

	/* The guest ejects after 1.5 s: a 1 s timeout fails, and the disk stays. */
	t0 = now_ms();
	assert_int_equal(disk_call("DELETE", "hp", "cold", "{\"timeout\": 1}", err, sizeof(err)),
			 504);
	assert_true(now_ms() - t0 >= 1000);
	assert_string_equal(err, "VM 'hp': the guest did not eject disk cold within 1 s; it stays "
				 "attached (ask again to repeat the request)");
	assert_int_equal(dev_slot("hp", "cold", NULL), 2);
	/* Asked again once the guest let it go: the VMM has no such disk any more, so it
	 * is only forgotten; "hot" moves down to index 1 and keeps its slot. */
	wait_console("hp", "fake-plinth: ejected cold", 1);
	assert_int_equal(disk_call("DELETE", "hp", "cold", NULL, NULL, 0), 200);
	assert_int_equal(dev_slot("hp", "cold", NULL), 0);
	assert_int_equal(dev_slot("hp", "hot", &index), 3);
	assert_int_equal(index, 1);

	/* A restart rebuilds the same layout: hot at slot 3. */
	act("hp", "kill", NULL, 200);
	act("hp", "start", NULL, 202);
	wait_state("hp", "running", 10000);
	snprintf(want, sizeof(want), "--disk path=%s,id=disk0,addr=1 --disk path=%s,id=hot,addr=3\n",
		 a, c);
	wait_console("hp", want, 1);

	/* A detach waits for the slow eject (1.5 s), then the disk is gone everywhere. */
	t0 = now_ms();
	assert_int_equal(disk_call("DELETE", "hp", "hot", NULL, NULL, 0), 200);
	assert_true(now_ms() - t0 >= 1400);
	wait_console("hp", "fake-plinth: ejected hot", 1);
	assert_int_equal(dev_slot("hp", "hot", NULL), 0);
	{
		json_t *o = vm("hp");

		assert_int_equal(json_array_size(json_object_get(o, "disks")), 1);
		assert_int_equal(json_array_size(json_object_get(o, "devices")), 1);
		json_decref(o);
	}
	act("hp", "kill", NULL, 200);
	unsetenv("FAKE_PLINTH_EJECT_MS");
	assert_int_equal(call("DELETE", "/v1/vms/hp", NULL, NULL), 200);
	unlink(a);
	unlink(b);
	unlink(c);
}

/* A jailed VMM (plinthd as root) gets a hot-plugged image as a hard link in its jail's
 * root with an ACL entry for its uid (the fake opens the path inside its --jail, as
 * plinth would); a detach takes both back; an image on another filesystem than the
 * state directory is refused with one line. */
static void test_hotplug_jailed(void **unused)
{
	char body[512], img[128], shm[64], link_path[256], want[256], err[256], acl[256];
	const char *uuid;
	json_t *o;
	int fd;

	(void)unused;
	if (geteuid() != 0)
		fail_msg("a jailed VM's hot-plug needs root (chown of its jail)");
	pd_close(pd);
	opts.jail = true;
	pd = pd_open(&opts, store);
	opts.jail = false;
	assert_non_null(pd);
	snprintf(img, sizeof(img), "%s/j.img", dir);
	fd = open(img, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(body, sizeof(body), "{\"name\": \"jl\", \"kernel\": \"%s\", \"memory_mib\": 64}",
		 FAKE_PLINTH);
	assert_int_equal(call("POST", "/v1/vms", body, &o), 201);
	uuid = json_string_value(json_object_get(o, "uuid"));
	snprintf(link_path, sizeof(link_path), "%s/vms/%s/jail/disk-hot", dir, uuid);
	json_decref(o);
	act("jl", "start", NULL, 202);
	wait_state("jl", "running", 10000);

	snprintf(body, sizeof(body), "{\"path\": \"%s\"}", img);
	assert_int_equal(disk_call("PUT", "jl", "hot", body, err, sizeof(err)), 200);
	wait_console("jl", "fake-plinth: disk-add hot addr=1 /disk-hot\n", 1);
	assert_int_equal(access(link_path, F_OK), 0);
	assert_true(getxattr(img, "system.posix_acl_access", acl, sizeof(acl)) > 0);
	assert_int_equal(dev_slot("jl", "hot", NULL), 1);

	snprintf(shm, sizeof(shm), "/dev/shm/plinth-life.XXXXXX");
	fd = mkstemp(shm);
	assert_true(fd >= 0);
	close(fd);
	snprintf(body, sizeof(body), "{\"path\": \"%s\"}", shm);
	assert_int_equal(disk_call("PUT", "jl", "other", body, err, sizeof(err)), 409);
	snprintf(want, sizeof(want), "VM 'jl' runs jailed and %s cannot be linked into its jail "
		 "(Invalid cross-device link): it is not on the state directory's filesystem; stop "
		 "the VM to attach it", shm);
	assert_string_equal(err, want);
	unlink(shm);

	assert_int_equal(disk_call("DELETE", "jl", "hot", NULL, NULL, 0), 200);
	assert_int_equal(access(link_path, F_OK), -1);
	assert_int_equal(getxattr(img, "system.posix_acl_access", acl, sizeof(acl)), -1);
	assert_int_equal(errno, ENODATA);
	act("jl", "kill", NULL, 200);
	assert_int_equal(call("DELETE", "/v1/vms/jl", NULL, NULL), 200);
	unlink(img);
}

/* "display": "vnc" is kept in the definition (both stores), refused with one line
 * for another value, reaches plinth as --display vnc=unix:RUNDIR/display.sock and
 * GET /v1/vms/{name} says where the socket is while the VM runs. */
static void test_display(void **unused)
{
	char body[512], want[256];
	struct pd_request *req = malloc(sizeof(*req));
	struct pd_error e;
	const char *uuid;
	json_t *o;

	(void)unused;
	assert_non_null(req);
	snprintf(body, sizeof(body), "{\"name\": \"scr\", \"kernel\": \"%s\", "
		 "\"memory_mib\": 64, \"display\": \"vga\"}", FAKE_PLINTH);
	assert_int_equal(pd_parse_request("POST", "/v1/vms", NULL, body, strlen(body), req, &e),
			 400);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.msg, "field 'display' must be \"vnc\" or \"none\"");
	free(req);
	snprintf(body, sizeof(body), "{\"name\": \"scr\", \"kernel\": \"%s\", "
		 "\"memory_mib\": 64, \"display\": \"vnc\"}", FAKE_PLINTH);
	assert_int_equal(call("POST", "/v1/vms", body, NULL), 201);
	snprintf(body, sizeof(body), "{\"name\": \"plain\", \"kernel\": \"%s\", "
		 "\"memory_mib\": 64, \"display\": \"none\"}", FAKE_PLINTH);
	assert_int_equal(call("POST", "/v1/vms", body, NULL), 201);
	o = vm("plain");
	assert_null(json_object_get(o, "display"));
	json_decref(o);
	o = vm("scr");
	assert_string_equal(json_string_value(json_object_get(o, "display")), "vnc");
	assert_null(json_object_get(o, "display_socket")); /* not running */
	json_decref(o);
	act("scr", "start", NULL, 202);
	wait_state("scr", "running", 10000);
	o = vm("scr");
	uuid = json_string_value(json_object_get(o, "uuid"));
	snprintf(want, sizeof(want), "%s/vms/%s/display.sock", dir, uuid);
	assert_string_equal(json_string_value(json_object_get(o, "display_socket")), want);
	snprintf(want, sizeof(want), " --display vnc=unix:%s/vms/%s/display.sock\n", dir, uuid);
	json_decref(o);
	wait_console("scr", want, 1);
	act("scr", "kill", NULL, 200);
	assert_int_equal(call("DELETE", "/v1/vms/scr", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/vms/plain", NULL, NULL), 200);
}

/* The image library's own sentence reaches the caller: a failed import task's error
 * and a failed linked clone's reply carry it (daemon/images.c captures it), not only
 * plinthd's log. */
static void test_image_errors(void **unused)
{
	char body[512], src[128], path[64];
	const char *state = "running", *error;
	int64_t t0 = now_ms(), id;
	json_t *o;
	int fd;

	(void)unused;
	snprintf(src, sizeof(src), "%s/plain.raw", dir);
	fd = open(src, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(body, sizeof(body), "{\"name\": \"bad\", \"import\": \"%s\", \"format\": "
		 "\"qcow2\"}", src);
	assert_int_equal(call("POST", "/v1/images", body, &o), 202);
	id = json_integer_value(json_object_get(o, "id"));
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/tasks/%lld", (long long)id);
	for (o = NULL; !strcmp(state, "running"); usleep(20000)) {
		json_decref(o);
		if (now_ms() - t0 > 10000)
			fail_msg("task %lld still running after 10 s", (long long)id);
		assert_int_equal(call("GET", path, NULL, &o), 200);
		state = json_string_value(json_object_get(o, "state"));
		assert_non_null(state);
	}
	assert_string_equal(state, "failed");
	error = json_string_value(json_object_get(o, "error"));
	assert_non_null(error);
	snprintf(body, sizeof(body), "cannot open the source: %s: not a qcow2 image", src);
	if (strcmp(error, body))
		fail_msg("task error '%s', want '%s'", error, body);
	json_decref(o);
	assert_int_equal(call("GET", "/v1/images/bad", NULL, NULL), 404);
	unlink(src);
}

static void test_lifecycle(void **unused)
{
	pid_t pa, pb, pa2;
	int64_t t;
	char st[32];
	struct stat sb;

	(void)unused;
	define("a", "on-crash");
	define("b", "never");
	assert_int_equal(call("POST", "/v1/vms", "{\"name\": \"a\", \"kernel\": \"" FAKE_PLINTH "\"}",
			      NULL), 409);
	act("a", "start", NULL, 202);
	act("b", "start", NULL, 202);
	wait_state("a", "running", 10000);
	wait_state("b", "running", 10000);
	pa = pid_of("a");
	pb = pid_of("b");
	assert_true(pa > 0 && pb > 0 && pa != pb);
	assert_int_equal(kill(pa, 0), 0);

	/* The console: input reaches plinth's stdin, output comes back from an offset. */
	{
		json_t *o;
		int64_t off, t0 = now_ms();
		const char *text = "";

		assert_int_equal(call("GET", "/v1/vms/a/console", NULL, &o), 200);
		off = json_integer_value(json_object_get(o, "offset"));
		json_decref(o);
		assert_int_equal(call("POST", "/v1/vms/a/console", "{\"input\": \"hello console\\n\"}",
				      NULL), 200);
		for (o = NULL; !strstr(text, "input: hello console") && now_ms() - t0 < 5000;) {
			char path[64];

			json_decref(o);
			usleep(20000);
			snprintf(path, sizeof(path), "/v1/vms/a/console?offset=%lld", (long long)off);
			{
				struct pd_request *r = malloc(sizeof(*r));
				struct pd_reply rep = {0};
				struct pd_error e;

				assert_int_equal(pd_parse_request("GET", "/v1/vms/a/console",
								  path + strlen("/v1/vms/a/console?"),
								  NULL, 0, r, &e), 0);
				pthread_mutex_lock(&pd->lock);
				pd_handle(pd, r, &rep);
				pthread_mutex_unlock(&pd->lock);
				free(r);
				o = rep.body;
			}
			text = json_string_value(json_object_get(o, "console"));
			text = text ? text : "";
		}
		assert_non_null(strstr(text, "input: hello console"));
		assert_null(strstr(text, "fake-plinth: started")); /* only what came after */
		json_decref(o);
		assert_int_equal(call("POST", "/v1/vms/b/console", "{\"input\": \"x\"}", NULL), 200);
	}

	check_console_stream();

	/* Refusals. */
	act("a", "start", NULL, 409);
	assert_int_equal(call("DELETE", "/v1/vms/a", NULL, NULL), 409);
	act("a", "pause", NULL, 200);
	assert_string_equal(state_of("a", st, sizeof(st), NULL), "paused");
	act("a", "pause", NULL, 409);
	act("a", "resume", NULL, 200);
	assert_string_equal(state_of("a", st, sizeof(st), NULL), "running");

	/* A SIGKILLed VM: crashed within 2 s, the signal in its reason. */
	assert_int_equal(kill(pb, SIGKILL), 0);
	t = wait_state("b", "crashed", 2000);
	print_message("# b crashed after %lld ms\n", (long long)t);
	assert_true(reason_has("b", "signal 9"));
	act("b", "stop", NULL, 409);
	assert_int_equal(call("POST", "/v1/vms/b/console", "{\"input\": \"x\"}", NULL), 409);

	/* on-crash: back with a new process. */
	assert_int_equal(kill(pa, SIGKILL), 0);
	t = now_ms();
	while ((pa2 = pid_of("a")) == pa && now_ms() - t < 5000)
		usleep(20000);
	wait_state("a", "running", 10000);
	pa2 = pid_of("a");
	assert_true(pa2 > 0 && pa2 != pa);

	/* plinthd closed and opened again: a is adopted with the same pid. */
	reopen();
	assert_string_equal(state_of("a", st, sizeof(st), NULL), "running");
	assert_int_equal(pid_of("a"), pa2);
	assert_string_equal(state_of("b", st, sizeof(st), NULL), "crashed");

	/* a dies while plinthd is away: settled from its exit file, restarted (on-crash). */
	pd_close(pd);
	pd = NULL;
	assert_int_equal(kill(pa2, SIGKILL), 0);
	usleep(300000);
	pd = pd_open(&opts, store);
	assert_non_null(pd);
	wait_state("a", "running", 10000);
	assert_true(pid_of("a") != pa2);
	assert_int_equal(kill(pa2, 0), -1);

	/* Stop (ACPI: the fake exits 0): stopped, as asked. */
	act("a", "stop", "{\"timeout\": 10}", 200);
	wait_state("a", "stopped", 5000);
	assert_true(reason_has("a", "as asked"));

	/* A reset by the guest itself (a jailed plinth exits 3): started again, whatever
	 * its restart policy (never). */
	act("b", "start", NULL, 202);
	wait_state("b", "running", 10000);
	pb = pid_of("b");
	assert_int_equal(call("POST", "/v1/vms/b/console", "{\"input\": \"reset\\n\"}", NULL),
			 200);
	wait_new_process("b", pb);
	act("b", "kill", NULL, 200);

	/* Reboot: the fake exits 3 on reset and plinthd starts it again. */
	act("b", "start", NULL, 202);
	wait_state("b", "running", 10000);
	pb = pid_of("b");
	act("b", "reboot", NULL, 200);
	wait_new_process("b", pb);
	act("b", "kill", NULL, 200);
	assert_string_equal(state_of("b", st, sizeof(st), NULL), "stopped");

	/* A plinth that fails at once: crashed with its last line as the reason. */
	define("c", "never");
	setenv("FAKE_PLINTH_FAIL", "1", 1);
	act("c", "start", NULL, 202);
	unsetenv("FAKE_PLINTH_FAIL");
	wait_state("c", "crashed", 5000);
	assert_true(reason_has("c", "exited with status 1: plinth: fake failure"));

	/* autostart: only on the first plinthd start of a host boot (DIR/boot_id). */
	assert_int_equal(call("POST", "/v1/vms", "{\"name\": \"auto\", \"kernel\": \"" FAKE_PLINTH
			      "\", \"memory_mib\": 64, \"autostart\": true}", NULL), 201);
	reopen();
	assert_string_equal(state_of("auto", st, sizeof(st), NULL), "defined");
	pd_close(pd);
	{
		char boot[128];

		snprintf(boot, sizeof(boot), "%s/boot_id", dir);
		assert_int_equal(unlink(boot), 0); /* as after a reboot: another boot id */
	}
	pd = pd_open(&opts, store);
	assert_non_null(pd);
	wait_state("auto", "running", 10000);
	act("auto", "kill", NULL, 200);
	assert_int_equal(call("DELETE", "/v1/vms/auto", NULL, NULL), 200);

	/* Delete: records and run directories go. */
	assert_int_equal(call("DELETE", "/v1/vms/a", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/vms/b", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/vms/c", NULL, NULL), 200);
	assert_int_equal(call("GET", "/v1/vms/a", NULL, NULL), 404);
	{
		char vms[128];
		int n = 0;
		FILE *p;

		snprintf(vms, sizeof(vms), "ls -A %s/vms | wc -l", dir);
		p = popen(vms, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &n), 1);
		pclose(p);
		assert_int_equal(n, 0);
	}
	assert_int_equal(stat(dir, &sb), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/plinthd-life.XXXXXX");
	assert_non_null(mkdtemp(dir));
	opts.state_dir = dir;
	opts.plinth_bin = FAKE_PLINTH;
	opts.overcommit = 1.0;
	opts.uid_base = 200000;
	opts.jail = false;
	pd = pd_open(&opts, store);
	return pd ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[256];

	(void)state;
	pd_close(pd);
	snprintf(cmd, sizeof(cmd), "pkill -9 -f -- '--api-socket %s/' ; rm -rf '%s'", dir, dir);
	if (system(cmd) < 0)
		return -1;
	return 0;
}

/* The server and its database, the group's state: NULL if they could not be made, and
 * then the PostgreSQL test fails in its setup (the SQLite one still runs; one group, so
 * one TAP plan). */
static int pg_group_setup(void **state)
{
	struct pg_test *pg = pg_test_start();

	if (pg && pg_test_new_db(pg, db_uri, sizeof(db_uri))) {
		pg_test_stop(pg);
		pg = NULL;
	}
	*state = pg;
	return 0;
}

static int pg_group_teardown(void **state)
{
	pg_test_stop(*state);
	return 0;
}

static int setup_sqlite(void **state)
{
	store = &store_sqlite_ops;
	opts.db = NULL;
	return setup(state);
}

static int setup_pg(void **state)
{
	if (!*state)
		return -1;
	store = &store_pg_ops;
	opts.db = db_uri;
	return setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		{"sqlite: test_lifecycle", test_lifecycle, setup_sqlite, teardown, NULL},
		{"sqlite: test_device_ids", test_device_ids, setup_sqlite, teardown, NULL},
		{"sqlite: test_image_errors", test_image_errors, setup_sqlite, teardown, NULL},
		{"sqlite: test_display", test_display, setup_sqlite, teardown, NULL},
		{"sqlite: test_hotplug", test_hotplug, setup_sqlite, teardown, NULL},
		{"sqlite: test_hotplug_jailed", test_hotplug_jailed, setup_sqlite, teardown, NULL},
		{"postgresql: test_lifecycle", test_lifecycle, setup_pg, teardown, NULL},
		{"postgresql: test_device_ids", test_device_ids, setup_pg, teardown, NULL},
		{"postgresql: test_image_errors", test_image_errors, setup_pg, teardown, NULL},
		{"postgresql: test_display", test_display, setup_pg, teardown, NULL},
		{"postgresql: test_hotplug", test_hotplug, setup_pg, teardown, NULL},
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests_name("lifecycle", tests, pg_group_setup, pg_group_teardown)
		       ? 1
		       : 0;
}
