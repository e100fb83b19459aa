// SPDX-License-Identifier: MIT
/* Unit tests of plinthd's SQLite store (daemon/store_sqlite.c) through struct
 * store_ops: schema creation and forward migration with data kept, a newer schema
 * refused, every object's operations, uniqueness, transactions and durability
 * across reopening. */
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
#include "store.h"
#include "store_sqlite.h"

static const struct store_ops *ops = &store_sqlite_ops;

struct fixture {
	char dir[64];
	char db[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/plinthd-store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/inventory.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
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
	assert_int_equal(ops->schema_version(st), store_sqlite_latest_version());
	assert_true(store_sqlite_latest_version() >= 4);
	ops->close(st);
	/* Reopening an up-to-date database changes nothing. */
	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->schema_version(st), store_sqlite_latest_version());
	ops->close(st);
}

static void test_migration_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct store_vm vm;
	struct store_image img;
	struct store_task t = {0};
	struct store *st;
	sqlite3 *db;
	char *msg = NULL;

	/* A version-1 database, as an older plinthd left it. */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(store_sqlite_migrate(db, 1), 0);
	assert_int_equal(sqlite3_exec(db,
				      "INSERT INTO vms (uuid, name, spec, state, updated_ms) VALUES "
				      "('u-1', 'old', '{}', 'stopped', 7);"
				      "INSERT INTO images (name, format, size, created_ms) VALUES "
				      "('disk', 'qcow2', 1048576, 8);",
				      NULL, NULL, &msg),
			 SQLITE_OK);
	/* Version 1 has no tasks table yet. */
	assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM tasks", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	st = ops->open(f->db);
	assert_non_null(st);
	assert_int_equal(ops->schema_version(st), store_sqlite_latest_version());
	assert_int_equal(ops->vm_get(st, "old", &vm), 0);
	assert_string_equal(vm.uuid, "u-1");
	assert_string_equal(vm.state, "stopped");
	assert_int_equal(vm.updated_ms, 7);
	store_vm_clear(&vm);
	assert_int_equal(ops->image_get(st, "disk", &img), 0);
	assert_int_equal(img.size, 1048576);
	snprintf(t.kind, sizeof(t.kind), "import");
	snprintf(t.state, sizeof(t.state), "running");
	assert_int_equal(ops->task_insert(st, &t), 0);
	assert_true(t.id > 0);
	ops->close(st);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(ops->open(f->db));
	/* Untouched. */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(store_sqlite_migrate(db, 2), -EPROTO);
	sqlite3_close(db);
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
	assert_int_equal(ops->task_insert(st, &t), 0);
	t.percent = 50;
	t.done_bytes = 5;
	t.total_bytes = 10;
	snprintf(t.state, sizeof(t.state), "done");
	assert_int_equal(ops->task_update(st, &t), 0);
	assert_int_equal(ops->task_get(st, t.id, &tg), 0);
	assert_int_equal(tg.percent, 50);
	assert_string_equal(tg.state, "done");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions_and_durability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_images_tasks_events, setup, teardown),
	};

	log_set_level(LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
