// SPDX-License-Identifier: MIT
/* Unit tests of plinthd's stores through struct store_ops, each test once on SQLite
 * (daemon/store_sqlite.c) and once on PostgreSQL (daemon/store_pg.c, a private
 * server started by tests/daemon/pg-server for this program, a fresh database per
 * test): schema creation and forward migration with data kept, a newer schema
 * refused, every object's operations, uniqueness, transactions and durability
 * across reopening, hosts, the leader lease and the ownership epoch. Without
 * PostgreSQL's server installed the PostgreSQL group fails (never skips). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "schema.h"
#include "store.h"
#include "store_pg.h"
#include "store_sqlite.h"

#include "pg_test.h"

struct fixture {
	const struct store_ops *so;
	char dir[64];
	char db[512];		/* the location given to ops->open */
	struct pg_test *pg;	/* NULL: SQLite */
};

/* The store under test, in every test function (they all have state). */
#define ops (((struct fixture *)*state)->so)

/* The server, the group's state: NULL if it did not start, and then every PostgreSQL
 * test fails in its setup (the SQLite ones still run; one group, so one TAP plan). */
static int pg_group_setup(void **state)
{
	*state = pg_test_start();
	return 0;
}

static int pg_group_teardown(void **state)
{
	pg_test_stop(*state);
	return 0;
}

/* A libpq connection to database db of the server (for raw SQL in tests). */
static PGconn *pg_raw(const struct fixture *f)
{
	PGconn *c = PQconnectdb(f->db);

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void pg_raw_exec(PGconn *c, const char *sql, bool ok)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);

	PQclear(r);
	assert_int_equal(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, ok);
}

static int setup_common(void **state, struct pg_test *pg)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/plinthd-store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->pg = pg;
	if (!pg) {
		f->so = &store_sqlite_ops;
		snprintf(f->db, sizeof(f->db), "%s/inventory.db", f->dir);
	} else {
		f->so = &store_pg_ops;
		assert_int_equal(pg_test_new_db(pg, f->db, sizeof(f->db)), 0);
		assert_ptr_equal(store_ops_for(f->db), &store_pg_ops);
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, NULL);
}

/* cmocka hands each test (its setup first) the group's state: the server. */
static int setup_pg(void **state)
{
	if (!*state)
		return -1;
	return setup_common(state, *state);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pg_test_run("rm -rf", f->dir, NULL, 0), 0);
	free(f);
	return 0;
}

/* The database of f at schema version v, with one old VM and one old image. */
static void make_old_database(const struct fixture *f, int v)
{
	static const char rows[] = "INSERT INTO vms (uuid, name, spec, state, updated_ms) VALUES "
				   "('u-1', 'old', '{}', 'stopped', 7);"
				   "INSERT INTO images (name, format, size, created_ms) VALUES "
				   "('disk', 'qcow2', 1048576, 8);";

	if (!f->pg) {
		sqlite3 *db;

		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(store_sqlite_migrate(db, v), 0);
		assert_int_equal(sqlite3_exec(db, rows, NULL, NULL, NULL), SQLITE_OK);
		/* Version 1 has no tasks table yet. */
		assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM tasks", NULL, NULL, NULL),
				     SQLITE_OK);
		sqlite3_close(db);
	} else {
		PGconn *c = pg_raw(f);

		assert_int_equal(store_pg_migrate(c, v), 0);
		pg_raw_exec(c, rows, true);
		pg_raw_exec(c, "SELECT * FROM tasks", false);
		PQfinish(c);
	}
}

/* Set f's schema version to v behind the store's back; then migrating to 2 is
 * -EPROTO (newer than known) and leaves it. */
static void set_version_and_check_refused(const struct fixture *f, int v)
{
	char sql[64];

	if (!f->pg) {
		sqlite3 *db;

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	} else {
		PGconn *c = pg_raw(f);

		assert_int_equal(store_pg_migrate(c, 1), 0);
		snprintf(sql, sizeof(sql), "UPDATE plinth_schema SET version = %d", v);
		pg_raw_exec(c, sql, true);
		PQfinish(c);
	}
	assert_null(f->so->open(f->db));
	if (!f->pg) {
		sqlite3 *db;

		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(store_sqlite_migrate(db, 2), -EPROTO);
		sqlite3_close(db);
	} else {
		PGconn *c = pg_raw(f);

		assert_int_equal(store_pg_migrate(c, 2), -EPROTO);
		pg_raw_exec(c, "SELECT * FROM tasks", false); /* untouched: still version 1 */
		PQfinish(c);
	}
}

static void vm_fill(struct store_vm *vm, const char *name)
{
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->uuid, sizeof(vm->uuid), "00000000-0000-4000-8000-%.12s", name);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->spec = (char *)"{\"name\":\"x\"}";
	snprintf(vm->state, sizeof(vm->state), "defined");
	vm->updated_ms = 1234;
}

static void test_fresh_schema(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);

	assert_non_null(st);
	assert_int_equal(ops->schema_version(st), store_schema_latest());
	assert_int_equal(store_sqlite_latest_version(), store_schema_latest());
	assert_true(store_schema_latest() >= 5);
	ops->close(st);
	/* Reopening an up-to-date database changes nothing. */
	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->schema_version(st), store_schema_latest());
	ops->close(st);
}

static void test_migration_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct store_vm vm;
	struct store_image img;
	struct store_task t = {0};
	struct store *st;

	/* A version-1 database, as an older plinthd left it. */
	make_old_database(f, 1);
	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->schema_version(st), store_schema_latest());
	assert_int_equal(ops->vm_get(st, "old", &vm), 0);
	assert_string_equal(vm.uuid, "u-1");
	assert_string_equal(vm.state, "stopped");
	assert_int_equal(vm.updated_ms, 7);
	/* Step 5: a VM from before the cluster has no owner yet. */
	assert_string_equal(vm.host, "");
	assert_int_equal(vm.epoch, 0);
	store_vm_clear(&vm);
	assert_int_equal(ops->image_get(st, "disk", &img), 0);
	assert_int_equal(img.size, 1048576);
	snprintf(t.kind, sizeof(t.kind), "import");
	snprintf(t.state, sizeof(t.state), "running");
	assert_int_equal(ops->task_insert(st, &t), 0);
	assert_true(t.id > 0);
	/* Step 11: no migration under way. */
	{
		struct store_migration *ms;
		size_t n;

		assert_int_equal(ops->migration_list(st, &ms, &n), 0);
		assert_int_equal(n, 0);
		free(ms);
	}
	ops->close(st);
}

/* Steps 8 and 9 (hosts.maintenance, hosts.cpu_flags): a host registered under version
 * 7 keeps its row and comes out in service, its CPU flags unknown. */
static void test_migration_maintenance(void **state)
{
	struct fixture *f = *state;
	static const char row[] = "INSERT INTO hosts (name, address, cpus, memory_mib, "
				  "started_ms, heartbeat_ms) VALUES ('old', 'a:1', 4, 2048, 1, 2)";
	struct store_host *list;
	struct store *st;
	size_t n;

	if (!f->pg) {
		sqlite3 *db;

		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(store_sqlite_migrate(db, 7), 0);
		assert_int_equal(sqlite3_exec(db, row, NULL, NULL, NULL), SQLITE_OK);
		assert_int_not_equal(sqlite3_exec(db, "SELECT maintenance FROM hosts", NULL, NULL,
						  NULL),
				     SQLITE_OK);
		sqlite3_close(db);
	} else {
		PGconn *c = pg_raw(f);

		assert_int_equal(store_pg_migrate(c, 7), 0);
		pg_raw_exec(c, row, true);
		pg_raw_exec(c, "SELECT maintenance FROM hosts", false);
		PQfinish(c);
	}
	st = ops->open(f->db);
	assert_non_null(st);
	assert_true(ops->schema_version(st) >= 8);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "old");
	assert_int_equal(list[0].memory_mib, 2048);
	assert_false(list[0].maintenance);
	assert_string_equal(list[0].cpu_flags, ""); /* step 9: unknown until it registers */
	/* Step 10: no unbroken contact until its next heartbeat, which starts one. */
	assert_true(list[0].contact_since_ms == 0 && list[0].contact_ms == 0);
	free(list);
	assert_int_equal(ops->host_heartbeat(st, "old", 2000), 0);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_true(list[0].contact_since_ms == list[0].heartbeat_ms);
	assert_true(list[0].contact_ms >= 0 && list[0].contact_ms < 1000);
	free(list);
	assert_int_equal(ops->host_set_maintenance(st, "old", true), 0);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_true(list[0].maintenance);
	free(list);
	ops->close(st);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;

	set_version_and_check_refused(f, 99);
}

static void test_vms(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_vm a, b, got, *list;
	size_t n;

	assert_non_null(st);
	vm_fill(&a, "beta");
	vm_fill(&b, "alpha");
	assert_int_equal(ops->vm_insert(st, &a), 0);
	assert_int_equal(ops->vm_insert(st, &b), 0);
	assert_true(b.id > a.id);
	/* Unique name and uuid. */
	vm_fill(&got, "beta");
	snprintf(got.uuid, sizeof(got.uuid), "another");
	assert_int_equal(ops->vm_insert(st, &got), -EEXIST);
	vm_fill(&got, "gamma");
	snprintf(got.uuid, sizeof(got.uuid), "%s", a.uuid);
	assert_int_equal(ops->vm_insert(st, &got), -EEXIST);

	assert_int_equal(ops->vm_list(st, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alpha"); /* by name */
	assert_string_equal(list[1].name, "beta");
	assert_string_equal(list[1].spec, "{\"name\":\"x\"}");
	store_vm_list_free(list, n);

	snprintf(a.state, sizeof(a.state), "running");
	a.pid = 4242;
	snprintf(a.reason, sizeof(a.reason), "started");
	assert_int_equal(ops->vm_update(st, &a), 0);
	assert_int_equal(ops->vm_get(st, "beta", &got), 0);
	assert_string_equal(got.state, "running");
	assert_int_equal(got.pid, 4242);
	assert_string_equal(got.reason, "started");
	store_vm_clear(&got);

	assert_int_equal(ops->vm_delete(st, a.id), 0);
	assert_int_equal(ops->vm_get(st, "beta", &got), -ENOENT);
	assert_int_equal(ops->vm_delete(st, a.id), -ENOENT);
	assert_int_equal(ops->vm_update(st, &a), -ENOENT);
	ops->close(st);
}

static void dev_fill(struct store_device *d, const char *kind, unsigned index, const char *id,
		     unsigned slot)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->kind, sizeof(d->kind), "%s", kind);
	d->index = index;
	snprintf(d->dev_id, sizeof(d->dev_id), "%s", id);
	d->slot = slot;
}

/* Devices of VMs: listed by kind then index, unique (kind, index), id and slot within
 * a VM (not across VMs), gone with their VM. */
static void test_devices(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_device d, *list;
	struct store_vm a, b;
	size_t n;

	assert_non_null(st);
	vm_fill(&a, "a");
	vm_fill(&b, "b");
	assert_int_equal(ops->vm_insert(st, &a), 0);
	assert_int_equal(ops->vm_insert(st, &b), 0);
	assert_int_equal(ops->device_list(st, a.id, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	dev_fill(&d, "net", 0, "net0", 3);
	assert_int_equal(ops->device_insert(st, a.id, &d), 0);
	dev_fill(&d, "disk", 1, "data", 2);
	assert_int_equal(ops->device_insert(st, a.id, &d), 0);
	dev_fill(&d, "disk", 0, "disk0", 1);
	assert_int_equal(ops->device_insert(st, a.id, &d), 0);
	/* Taken in a: (kind, index), id, slot; free in b. */
	dev_fill(&d, "disk", 0, "other", 9);
	assert_int_equal(ops->device_insert(st, a.id, &d), -EEXIST);
	dev_fill(&d, "disk", 2, "data", 9);
	assert_int_equal(ops->device_insert(st, a.id, &d), -EEXIST);
	dev_fill(&d, "disk", 2, "disk2", 3);
	assert_int_equal(ops->device_insert(st, a.id, &d), -EEXIST);
	dev_fill(&d, "disk", 0, "disk0", 1);
	assert_int_equal(ops->device_insert(st, b.id, &d), 0);

	assert_int_equal(ops->device_list(st, a.id, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].kind, "disk");
	assert_int_equal(list[0].index, 0);
	assert_string_equal(list[0].dev_id, "disk0");
	assert_int_equal(list[0].slot, 1);
	assert_string_equal(list[1].dev_id, "data");
	assert_int_equal(list[1].index, 1);
	assert_int_equal(list[1].slot, 2);
	assert_string_equal(list[2].kind, "net");
	assert_string_equal(list[2].dev_id, "net0");
	assert_int_equal(list[2].slot, 3);
	free(list);

	/* A disk detached: deleted, a later one moved down keeping its id and slot; a
	 * move onto a taken index or of a missing one refused. */
	dev_fill(&d, "disk", 2, "late", 4);
	assert_int_equal(ops->device_insert(st, a.id, &d), 0);
	assert_int_equal(ops->device_move(st, a.id, "disk", 2, 1), -EEXIST);
	assert_int_equal(ops->device_delete(st, a.id, "disk", 1), 0);
	assert_int_equal(ops->device_delete(st, a.id, "disk", 1), -ENOENT);
	assert_int_equal(ops->device_move(st, a.id, "disk", 2, 1), 0);
	assert_int_equal(ops->device_move(st, a.id, "disk", 2, 1), -ENOENT);
	assert_int_equal(ops->device_move(st, a.id, "net", 0, 5), 0);
	assert_int_equal(ops->device_move(st, a.id, "net", 5, 0), 0);
	assert_int_equal(ops->device_list(st, a.id, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[1].dev_id, "late");
	assert_int_equal(list[1].index, 1);
	assert_int_equal(list[1].slot, 4);
	assert_string_equal(list[2].dev_id, "net0");
	free(list);
	assert_int_equal(ops->device_list(st, b.id, &list, &n), 0);
	assert_int_equal(n, 1); /* b's disk 0 untouched */
	free(list);

	/* Kept across reopening; gone with the VM, b's untouched. */
	ops->close(st);
	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->device_list(st, a.id, &list, &n), 0);
	assert_int_equal(n, 3);
	free(list);
	assert_int_equal(ops->vm_delete(st, a.id), 0);
	assert_int_equal(ops->device_list(st, a.id, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(ops->device_list(st, b.id, &list, &n), 0);
	assert_int_equal(n, 1);
	free(list);
	assert_int_equal(ops->vm_delete(st, a.id), -ENOENT);
	ops->close(st);
}

static void test_transactions_and_durability(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_vm vm, got;

	assert_non_null(st);
	vm_fill(&vm, "rolled");
	assert_int_equal(ops->begin(st), 0);
	assert_int_equal(ops->vm_insert(st, &vm), 0);
	ops->rollback(st);
	assert_int_equal(ops->vm_get(st, "rolled", &got), -ENOENT);

	vm_fill(&vm, "kept");
	assert_int_equal(ops->begin(st), 0);
	assert_int_equal(ops->vm_insert(st, &vm), 0);
	assert_int_equal(ops->commit(st), 0);
	ops->close(st);

	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->vm_get(st, "kept", &got), 0);
	store_vm_clear(&got);
	assert_int_equal(ops->vm_get(st, "rolled", &got), -ENOENT);
	/* Rollback outside a transaction is harmless. */
	ops->rollback(st);
	ops->close(st);
}

static void test_images_tasks_events(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_image img = {0}, got, *imgs;
	struct store_task t = {0}, tg;
	struct store_event ev = {0}, *evs;
	size_t n;
	int i;

	assert_non_null(st);
	snprintf(img.name, sizeof(img.name), "tmpl");
	snprintf(img.format, sizeof(img.format), "qcow2");
	img.size = 1ULL << 40;
	assert_int_equal(ops->image_insert(st, &img), 0);
	assert_int_equal(ops->image_insert(st, &img), -EEXIST);
	img.is_template = true;
	assert_int_equal(ops->image_update(st, &img), 0);
	assert_int_equal(ops->image_get(st, "tmpl", &got), 0);
	assert_true(got.is_template);
	assert_int_equal(got.size, 1ULL << 40);
	assert_int_equal(ops->image_list(st, &imgs, &n), 0);
	assert_int_equal(n, 1);
	free(imgs);
	assert_int_equal(ops->image_delete(st, img.id), 0);
	assert_int_equal(ops->image_get(st, "tmpl", &got), -ENOENT);

	{
		struct store_network net = {0}, ng, *nets;

		snprintf(net.name, sizeof(net.name), "lan");
		snprintf(net.cidr, sizeof(net.cidr), "10.77.1.0/24");
		snprintf(net.mode, sizeof(net.mode), "nat");
		assert_int_equal(ops->network_insert(st, &net), 0);
		assert_int_equal(ops->network_insert(st, &net), -EEXIST);
		snprintf(net.bridge, sizeof(net.bridge), "plbr%d", (int)net.id);
		assert_int_equal(ops->network_update(st, &net), 0);
		assert_int_equal(ops->network_get(st, "lan", &ng), 0);
		assert_string_equal(ng.bridge, net.bridge);
		assert_string_equal(ng.cidr, "10.77.1.0/24");
		assert_string_equal(ng.mode, "nat");
		assert_int_equal(ops->network_list(st, &nets, &n), 0);
		assert_int_equal(n, 1);
		assert_string_equal(nets[0].mode, "nat");
		free(nets);
		assert_int_equal(ops->network_delete(st, net.id), 0);
		assert_int_equal(ops->network_get(st, "lan", &ng), -ENOENT);
	}

	{
		struct store_token tk = {0}, tok_got;

		snprintf(tk.name, sizeof(tk.name), "ci");
		snprintf(tk.hash, sizeof(tk.hash), "%064d", 7);
		snprintf(tk.role, sizeof(tk.role), "viewer");
		assert_int_equal(ops->token_insert(st, &tk), 0);
		snprintf(tk.name, sizeof(tk.name), "other");
		assert_int_equal(ops->token_insert(st, &tk), -EEXIST); /* same hash */
		assert_int_equal(ops->token_find(st, tk.hash, &tok_got), 0);
		assert_string_equal(tok_got.name, "ci");
		assert_string_equal(tok_got.role, "viewer");
		assert_int_equal(ops->token_delete(st, tok_got.id), 0);
		assert_int_equal(ops->token_find(st, tk.hash, &tok_got), -ENOENT);
	}

	snprintf(t.kind, sizeof(t.kind), "clone");
	snprintf(t.state, sizeof(t.state), "running");
	snprintf(t.host, sizeof(t.host), "h7");
	assert_int_equal(ops->task_insert(st, &t), 0);
	t.percent = 50;
	t.done_bytes = 5;
	t.total_bytes = 10;
	snprintf(t.state, sizeof(t.state), "done");
	assert_int_equal(ops->task_update(st, &t), 0);
	assert_int_equal(ops->task_get(st, t.id, &tg), 0);
	assert_int_equal(tg.percent, 50);
	assert_string_equal(tg.state, "done");
	assert_string_equal(tg.host, "h7");
	assert_int_equal(ops->task_get(st, t.id + 100, &tg), -ENOENT);

	for (i = 0; i < 5; i++) {
		snprintf(ev.action, sizeof(ev.action), "vm.start");
		snprintf(ev.object, sizeof(ev.object), "vm%d", i);
		snprintf(ev.result, sizeof(ev.result), "ok");
		assert_int_equal(ops->event_append(st, &ev), 0);
	}
	assert_int_equal(ops->event_list(st, 0, 100, &evs, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(evs[0].object, "vm0");
	i = (int)evs[1].id;
	free(evs);
	assert_int_equal(ops->event_list(st, i, 2, &evs, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(evs[0].object, "vm2");
	free(evs);
	ops->close(st);
}

static void test_vm_epoch_fences_updates(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_vm vm, got;

	assert_non_null(st);
	vm_fill(&vm, "owned");
	snprintf(vm.host, sizeof(vm.host), "h1");
	vm.epoch = 3;
	assert_int_equal(ops->vm_insert(st, &vm), 0);
	assert_int_equal(ops->vm_get(st, "owned", &got), 0);
	assert_string_equal(got.host, "h1");
	assert_int_equal(got.epoch, 3);
	store_vm_clear(&got);
	/* An update made from an older reading of the ownership is refused. */
	snprintf(vm.state, sizeof(vm.state), "running");
	vm.epoch = 2;
	assert_int_equal(ops->vm_update(st, &vm), -ESTALE);
	/* host and epoch are not written by vm_update. */
	vm.epoch = 3;
	snprintf(vm.host, sizeof(vm.host), "h2");
	assert_int_equal(ops->vm_update(st, &vm), 0);
	assert_int_equal(ops->vm_get(st, "owned", &got), 0);
	assert_string_equal(got.state, "running");
	assert_string_equal(got.host, "h1");
	store_vm_clear(&got);
	/* Ownership moves only from the epoch it was read at, and moves the epoch on. */
	assert_int_equal(ops->vm_set_owner(st, vm.id, "h2", 2), -ESTALE);
	assert_int_equal(ops->vm_set_owner(st, vm.id, "h2", 3), 0);
	assert_int_equal(ops->vm_get(st, "owned", &got), 0);
	assert_string_equal(got.host, "h2");
	assert_int_equal(got.epoch, 4);
	store_vm_clear(&got);
	/* The old owner's write, made from epoch 3, is refused now. */
	assert_int_equal(ops->vm_update(st, &vm), -ESTALE);
	assert_int_equal(ops->vm_set_owner(st, vm.id, "h1", 3), -ESTALE);
	vm.epoch = 4;
	assert_int_equal(ops->vm_delete(st, vm.id), 0);
	assert_int_equal(ops->vm_update(st, &vm), -ENOENT);
	assert_int_equal(ops->vm_set_owner(st, vm.id, "h1", 4), -ENOENT);
	ops->close(st);
}

/* A live migration's record: one per VM, its phase moved by compare-and-set (the
 * decision one side makes excludes the other's), kept across a reopen, rolled back
 * with the transaction it was changed in. */
static void test_migrations(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_migration m = {0}, got, *ms;
	struct store_vm vm;
	size_t n;

	assert_non_null(st);
	vm_fill(&vm, "mover");
	snprintf(vm.host, sizeof(vm.host), "h1");
	vm.epoch = 5;
	assert_int_equal(ops->vm_insert(st, &vm), 0);
	assert_int_equal(ops->migration_get(st, vm.id, &got), -ENOENT);
	m.vm_id = vm.id;
	snprintf(m.vm, sizeof(m.vm), "mover");
	snprintf(m.source, sizeof(m.source), "h1");
	snprintf(m.destination, sizeof(m.destination), "h2");
	m.epoch = 5;
	snprintf(m.phase, sizeof(m.phase), "prepare");
	m.started_ms = m.updated_ms = 1000;
	assert_int_equal(ops->migration_insert(st, &m), 0);
	assert_int_equal(ops->migration_insert(st, &m), -EEXIST); /* one per VM */
	snprintf(m.phase, sizeof(m.phase), "transfer");
	snprintf(m.listen, sizeof(m.listen), "tcp:10.0.0.2:4711");
	m.updated_ms = 2000;
	assert_int_equal(ops->migration_update(st, &m, "confirm"), -ESTALE);
	assert_int_equal(ops->migration_update(st, &m, "prepare"), 0);
	ops->close(st);
	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->migration_get(st, vm.id, &got), 0);
	assert_string_equal(got.vm, "mover");
	assert_string_equal(got.source, "h1");
	assert_string_equal(got.destination, "h2");
	assert_int_equal(got.epoch, 5);
	assert_string_equal(got.phase, "transfer");
	assert_string_equal(got.listen, "tcp:10.0.0.2:4711");
	assert_int_equal(got.started_ms, 1000);
	assert_int_equal(got.updated_ms, 2000);
	/* The switch: phase and owner in one transaction; rolled back, neither moved. */
	assert_int_equal(ops->begin(st), 0);
	snprintf(m.phase, sizeof(m.phase), "switched");
	assert_int_equal(ops->migration_update(st, &m, "transfer"), 0);
	assert_int_equal(ops->vm_set_owner(st, vm.id, "h2", 5), 0);
	ops->rollback(st);
	assert_int_equal(ops->migration_get(st, vm.id, &got), 0);
	assert_string_equal(got.phase, "transfer");
	/* The other side decided first (aborted): the switch from transfer is stale. */
	snprintf(m.phase, sizeof(m.phase), "aborted");
	assert_int_equal(ops->migration_update(st, &m, "transfer"), 0);
	snprintf(m.phase, sizeof(m.phase), "switched");
	assert_int_equal(ops->migration_update(st, &m, "transfer"), -ESTALE);
	assert_int_equal(ops->migration_list(st, &ms, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ms[0].phase, "aborted");
	assert_int_equal(ms[0].vm_id, vm.id);
	free(ms);
	assert_int_equal(ops->migration_delete(st, vm.id), 0);
	assert_int_equal(ops->migration_delete(st, vm.id), -ENOENT);
	assert_int_equal(ops->migration_update(st, &m, "aborted"), -ENOENT);
	assert_int_equal(ops->migration_list(st, &ms, &n), 0);
	assert_int_equal(n, 0);
	free(ms);
	ops->close(st);
}

static void test_hosts(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_host a = {0}, b = {0}, *list;
	size_t n;
	int64_t id;

	assert_non_null(st);
	snprintf(a.name, sizeof(a.name), "h1");
	snprintf(a.address, sizeof(a.address), "10.0.0.1:8443");
	snprintf(a.cpu_flags, sizeof(a.cpu_flags), "fpu vme sse2 avx2");
	a.cpus = 8;
	a.memory_mib = 32768;
	assert_int_equal(ops->host_register(st, &a), 0);
	assert_true(a.id > 0);
	assert_true(a.heartbeat_ms > 1700000000000LL); /* the database's wall clock */
	id = a.id;
	snprintf(b.name, sizeof(b.name), "h0");
	b.cpus = 2;
	b.memory_mib = 4096;
	assert_int_equal(ops->host_register(st, &b), 0);
	/* Registering again updates in place. */
	a.cpus = 16;
	assert_int_equal(ops->host_register(st, &a), 0);
	assert_int_equal(a.id, id);
	assert_int_equal(ops->host_heartbeat(st, "h1", 2000), 0);
	assert_int_equal(ops->host_heartbeat(st, "nobody", 2000), -ENOENT);
	usleep(300 * 1000);
	assert_int_equal(ops->host_heartbeat(st, "h1", 2000), 0);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "h0"); /* by name */
	assert_string_equal(list[1].name, "h1");
	assert_int_equal(list[1].cpus, 16);
	assert_int_equal(list[1].memory_mib, 32768);
	assert_string_equal(list[1].address, "10.0.0.1:8443");
	assert_string_equal(list[1].cpu_flags, "fpu vme sse2 avx2");
	assert_string_equal(list[0].cpu_flags, "");
	/* h0's heartbeat is older than h1's by the sleep. */
	assert_true(list[0].age_ms >= 250);
	assert_true(list[1].age_ms < list[0].age_ms);
	assert_true(list[1].age_ms >= 0);
	assert_false(list[0].maintenance);
	assert_false(list[1].maintenance);
	free(list);
	/* Maintenance: set, kept across a registration (a restarted plinthd), cleared. */
	assert_int_equal(ops->host_set_maintenance(st, "h1", true), 0);
	assert_int_equal(ops->host_set_maintenance(st, "nobody", true), -ENOENT);
	assert_int_equal(ops->host_register(st, &a), 0);
	assert_true(a.maintenance);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_false(list[0].maintenance);
	assert_true(list[1].maintenance);
	free(list);
	assert_int_equal(ops->host_set_maintenance(st, "h1", false), 0);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_false(list[1].maintenance);
	free(list);
	/* A clean stop: heartbeat 0. */
	assert_int_equal(ops->host_leave(st, "h0"), 0);
	assert_int_equal(ops->host_leave(st, "nobody"), -ENOENT);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_int_equal(list[0].heartbeat_ms, 0);
	assert_true(list[1].heartbeat_ms > 0);
	free(list);
	ops->close(st);
}

/*
 * hosts.contact_since_ms (rule 2's condition 3): set at registration, kept by each
 * heartbeat that comes no more than gap_ms after the previous one, restarted by one
 * that comes later or after a clean stop; host_list says for how long (database clock).
 */
static void test_host_contact(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);
	struct store_host h = {0}, *list;
	int64_t since;
	size_t n;

	assert_non_null(st);
	snprintf(h.name, sizeof(h.name), "h1");
	h.cpus = 2;
	h.memory_mib = 1024;
	assert_int_equal(ops->host_register(st, &h), 0);
	assert_true(h.contact_since_ms > 0 && h.contact_since_ms == h.heartbeat_ms);
	since = h.contact_since_ms;
	usleep(150 * 1000);
	assert_int_equal(ops->host_heartbeat(st, "h1", 5000), 0); /* within the gap: kept */
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_true(list[0].contact_since_ms == since);
	assert_true(list[0].heartbeat_ms >= since + 100);
	assert_true(list[0].contact_ms >= 100 && list[0].contact_ms >= list[0].age_ms);
	free(list);
	usleep(150 * 1000);
	assert_int_equal(ops->host_heartbeat(st, "h1", 50), 0); /* after the gap: a new run */
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_true(list[0].contact_since_ms == list[0].heartbeat_ms);
	assert_true(list[0].contact_since_ms >= since + 250);
	since = list[0].contact_since_ms;
	free(list);
	/* A clean stop (heartbeat 0) ends the run, whatever the gap. */
	assert_int_equal(ops->host_leave(st, "h1"), 0);
	usleep(20 * 1000);
	assert_int_equal(ops->host_heartbeat(st, "h1", 1000000), 0);
	assert_int_equal(ops->host_list(st, &list, &n), 0);
	assert_true(list[0].contact_since_ms == list[0].heartbeat_ms);
	assert_true(list[0].contact_since_ms > since);
	free(list);
	/* Registering again (a restarted plinthd) starts one too. */
	usleep(20 * 1000);
	assert_int_equal(ops->host_register(st, &h), 0);
	assert_true(h.contact_since_ms == h.heartbeat_ms && h.contact_since_ms > since);
	ops->close(st);
}

/* Long enough that a loaded machine (the ASan pass beside other work: a claim can
 * take a few hundred ms) neither lapses a lease the test renews nor shortens one it
 * reads past half. */
#define LEASE_MS 2000

static void test_leader_lease(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db), *st2 = ops->open(f->db);
	struct store_leader l;
	int64_t term;

	assert_non_null(st);
	assert_non_null(st2);
	assert_int_equal(ops->leader_get(st, &l), 0);
	assert_string_equal(l.host, "");
	assert_int_equal(l.term, 0);
	/* The first claimant takes it (term 1); a second one is refused. */
	assert_int_equal(ops->leader_claim(st, "h1", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h1");
	assert_int_equal(l.term, 1);
	assert_true(l.expires_in_ms > LEASE_MS / 2 && l.expires_in_ms <= LEASE_MS);
	assert_int_equal(ops->leader_claim(st2, "h2", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h1");
	assert_int_equal(l.term, 1);
	/* Renewing keeps the term. */
	usleep(200 * 1000);
	assert_int_equal(ops->leader_claim(st, "h1", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h1");
	assert_int_equal(l.term, 1);
	assert_true(l.expires_in_ms > LEASE_MS / 2);
	/* Lapsed: the other takes it with the next term. */
	usleep((LEASE_MS + 100) * 1000);
	assert_int_equal(ops->leader_claim(st2, "h2", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h2");
	assert_int_equal(l.term, 2);
	/* The old holder's renewal is refused now. */
	assert_int_equal(ops->leader_claim(st, "h1", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h2");
	/* A release by someone else does nothing; by the holder, it lapses at once. */
	assert_int_equal(ops->leader_release(st, "h1"), 0);
	assert_int_equal(ops->leader_get(st, &l), 0);
	assert_true(l.expires_in_ms > 0);
	assert_int_equal(ops->leader_release(st2, "h2"), 0);
	assert_int_equal(ops->leader_get(st, &l), 0);
	assert_true(l.expires_in_ms <= 0);
	term = l.term;
	assert_int_equal(ops->leader_claim(st, "h1", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h1");
	assert_int_equal(l.term, term + 1);
	/* Its own lapsed lease is taken again with a new term too. */
	usleep((LEASE_MS + 100) * 1000);
	assert_int_equal(ops->leader_claim(st, "h1", LEASE_MS, &l), 0);
	assert_string_equal(l.host, "h1");
	assert_int_equal(l.term, term + 2);
	ops->close(st2);
	ops->close(st);
}

static void test_placement_lock(void **state)
{
	struct fixture *f = *state;
	struct store *st = ops->open(f->db);

	assert_non_null(st);
	assert_int_equal(ops->begin(st), 0);
	assert_int_equal(ops->placement_lock(st), 0);
	if (f->pg) {
		/* Another session cannot take it while the transaction lasts. */
		PGconn *c = pg_raw(f);
		PGresult *r = PQexec(c, "SELECT pg_try_advisory_xact_lock(123865463566441)");

		assert_string_equal(PQgetvalue(r, 0, 0), "f");
		PQclear(r);
		assert_int_equal(ops->commit(st), 0);
		r = PQexec(c, "SELECT pg_try_advisory_xact_lock(123865463566441)");
		assert_string_equal(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		PQfinish(c);
	} else {
		assert_int_equal(ops->commit(st), 0);
	}
	ops->close(st);
}

/* Each test, named "BACKEND: test". */
#define T(fn, su, b) {b ": " #fn, fn, su, teardown, NULL}
#define ALL(su, b)                                                                         \
	T(test_fresh_schema, su, b), T(test_migration_keeps_data, su, b),                   \
		T(test_newer_schema_refused, su, b), T(test_vms, su, b),                    \
		T(test_devices, su, b),                                                     \
		T(test_transactions_and_durability, su, b),                                 \
		T(test_images_tasks_events, su, b), T(test_vm_epoch_fences_updates, su, b), \
		T(test_hosts, su, b), T(test_leader_lease, su, b),                          \
		T(test_placement_lock, su, b), T(test_migration_maintenance, su, b),        \
		T(test_host_contact, su, b), T(test_migrations, su, b)

int main(void)
{
	const struct CMUnitTest tests[] = {ALL(setup, "sqlite"), ALL(setup_pg, "postgresql")};

	log_set_level(LOG_QUIET);
	return cmocka_run_group_tests_name("store", tests, pg_group_setup, pg_group_teardown)
		       ? 1
		       : 0;
}
