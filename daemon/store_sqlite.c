// SPDX-License-Identifier: MIT
/*
 * The SQLite implementation of the inventory (store.h). One connection, WAL
 * journal (readers never block the writer, a crash loses no committed change),
 * synchronous=FULL so a commit is on disk when it returns, foreign keys on.
 *
 * The schema is schema.c's (shared with store_pg.c); its version is PRAGMA
 * user_version. The database clock (heartbeats, the leader lease) is this host's
 * wall clock: one host, one clock.
 */
#include "store_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "schema.h"
#include "store.h"

/* The database clock in milliseconds, as SQL. */
#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

struct store {
	sqlite3 *db;
	char path[4096];
};

int store_sqlite_latest_version(void)
{
	return store_schema_latest();
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("inventory: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		goto out_log;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*v = sqlite3_column_int(s, 0);
		ret = 0;
	}
	sqlite3_finalize(s);
	if (!ret)
		return 0;
out_log:
	log_error("inventory: reading the schema version: %s", sqlite3_errmsg(db));
	return ret;
}

int store_sqlite_migrate(sqlite3 *db, int target)
{
	int v, ret;

	ret = user_version(db, &v);
	if (ret)
		return ret;
	if (v > store_sqlite_latest_version()) {
		log_error("inventory: schema version %d is newer than this plinthd knows (%d); "
			  "refusing to touch it",
			  v, store_sqlite_latest_version());
		return -EPROTO;
	}
	for (; v < target; v++) {
		char setv[64];

		char *sql = store_schema_step(v + 1, STORE_DIALECT_SQLITE);

		if (!sql)
			return -ENOMEM;
		snprintf(setv, sizeof(setv), "PRAGMA user_version = %d", v + 1);
		ret = exec(db, "BEGIN IMMEDIATE");
		if (!ret)
			ret = exec(db, sql);
		free(sql);
		if (!ret)
			ret = exec(db, setv);
		if (!ret)
			ret = exec(db, "COMMIT");
		if (ret) {
			exec(db, "ROLLBACK");
			log_error("inventory: migration to schema version %d failed", v + 1);
			return ret;
		}
		log_info("inventory: schema migrated to version %d", v + 1);
	}
	return 0;
}

static struct store *sq_open(const char *path)
{
	struct store *st = calloc(1, sizeof(*st));

	if (!st) {
		log_error("inventory: out of memory");
		return NULL;
	}
	snprintf(st->path, sizeof(st->path), "%s", path);
	if (sqlite3_open_v2(path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		log_error("inventory %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
		goto out_close;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (exec(st->db, "PRAGMA journal_mode = WAL") ||
	    exec(st->db, "PRAGMA synchronous = FULL") || exec(st->db, "PRAGMA foreign_keys = ON") ||
	    store_sqlite_migrate(st->db, store_sqlite_latest_version()))
		goto out_close;
	return st;

out_close:
	sqlite3_close(st->db);
	free(st);
	return NULL;
}

static void sq_close(struct store *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	free(st);
}

static int sq_begin(struct store *st)
{
	return exec(st->db, "BEGIN IMMEDIATE");
}

static int sq_commit(struct store *st)
{
	return exec(st->db, "COMMIT");
}

static void sq_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		exec(st->db, "ROLLBACK");
}

static int sq_schema_version(struct store *st)
{
	int v = -1;

	return user_version(st->db, &v) ? -EIO : v;
}

/* --- Statements ---------------------------------------------------------------------- */

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		log_error("inventory: preparing '%s': %s", sql, sqlite3_errmsg(st->db));
		return NULL;
	}
	return s;
}

/* Run a statement that returns no rows, then finalize it. -EEXIST on a UNIQUE
 * violation, -ENOENT if want_change and no row changed. */
static int step_done(struct store *st, sqlite3_stmt *s, bool want_change)
{
	int rc = sqlite3_step(s), ret = 0;

	if (rc == SQLITE_CONSTRAINT &&
	    (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE ||
	     sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_PRIMARYKEY)) {
		ret = -EEXIST;
	} else if (rc != SQLITE_DONE) {
		log_error("inventory: %s", sqlite3_errmsg(st->db));
		ret = -EIO;
	} else if (want_change && sqlite3_changes(st->db) == 0) {
		ret = -ENOENT;
	}
	sqlite3_finalize(s);
	return ret;
}

/* Run an INSERT (s may be NULL: prepare failed) and return the new row's id in *id. */
static int insert(struct store *st, sqlite3_stmt *s, int64_t *id)
{
	int ret;

	if (!s)
		return -EIO;
	ret = step_done(st, s, false);
	if (!ret)
		*id = sqlite3_last_insert_rowid(st->db);
	return ret;
}

static void text(sqlite3_stmt *s, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

static void bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT);
}

/* Collect rows of s into a growing array of elem_size elements via read_row. */
static int collect(struct store *st, sqlite3_stmt *s, size_t elem_size,
		   int (*read_row)(sqlite3_stmt *s, void *elem), void **out, size_t *n)
{
	size_t cap = 0, cnt = 0;
	char *arr = NULL;
	int rc, ret = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char *na = reallocarray(arr, ncap, elem_size);

			if (!na) {
				ret = -ENOMEM;
				break;
			}
			arr = na;
			cap = ncap;
		}
		memset(arr + cnt * elem_size, 0, elem_size);
		ret = read_row(s, arr + cnt * elem_size);
		if (ret)
			break;
		cnt++;
	}
	if (!ret && rc != SQLITE_DONE) {
		log_error("inventory: %s", sqlite3_errmsg(st->db));
		ret = -EIO;
	}
	sqlite3_finalize(s);
	*out = arr; /* on failure too: the caller frees what was read */
	*n = cnt;
	return ret;
}

/* A list of plain elements (no owned memory): nothing on failure. */
static int collect_plain(struct store *st, sqlite3_stmt *s, size_t elem_size,
			 int (*read_row)(sqlite3_stmt *s, void *elem), void **out, size_t *n)
{
	int ret;

	*out = NULL;
	*n = 0;
	if (!s)
		return -EIO;
	ret = collect(st, s, elem_size, read_row, out, n);
	if (ret) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

/* --- VMs ----------------------------------------------------------------------------- */

#define VM_COLS "id, uuid, name, spec, state, pid, reason, updated_ms, host, epoch"

static int read_vm(sqlite3_stmt *s, void *elem)
{
	struct store_vm *vm = elem;
	const unsigned char *spec = sqlite3_column_text(s, 3);

	vm->id = sqlite3_column_int64(s, 0);
	text(s, 1, vm->uuid, sizeof(vm->uuid));
	text(s, 2, vm->name, sizeof(vm->name));
	vm->spec = strdup(spec ? (const char *)spec : "{}");
	if (!vm->spec)
		return -ENOMEM;
	text(s, 4, vm->state, sizeof(vm->state));
	vm->pid = sqlite3_column_int64(s, 5);
	text(s, 6, vm->reason, sizeof(vm->reason));
	vm->updated_ms = sqlite3_column_int64(s, 7);
	text(s, 8, vm->host, sizeof(vm->host));
	vm->epoch = sqlite3_column_int64(s, 9);
	return 0;
}

static void bind_vm(sqlite3_stmt *s, const struct store_vm *vm)
{
	bind_text(s, 1, vm->uuid);
	bind_text(s, 2, vm->name);
	bind_text(s, 3, vm->spec);
	bind_text(s, 4, vm->state);
	sqlite3_bind_int64(s, 5, vm->pid);
	bind_text(s, 6, vm->reason);
	sqlite3_bind_int64(s, 7, vm->updated_ms);
}

static int sq_vm_insert(struct store *st, struct store_vm *vm)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO vms (uuid, name, spec, state, pid, reason, "
				      "updated_ms, host, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");

	if (s) {
		bind_vm(s, vm);
		bind_text(s, 8, vm->host);
		sqlite3_bind_int64(s, 9, vm->epoch);
	}
	return insert(st, s, &vm->id);
}

/* After an UPDATE ... WHERE id = ? AND epoch = ? (a migration's phase = ?) changed
 * no row (-ENOENT): gone (-ENOENT) or it moved on (-ESTALE); exists selects the row
 * by its id. */
static int gone_or_stale(struct store *st, const char *exists, int64_t id)
{
	sqlite3_stmt *s = prepare(st, exists);
	int ret = -ENOENT;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		ret = -ESTALE;
	sqlite3_finalize(s);
	return ret;
}

static int sq_vm_update(struct store *st, const struct store_vm *vm)
{
	sqlite3_stmt *s = prepare(st, "UPDATE vms SET uuid = ?, name = ?, spec = ?, state = ?, "
				      "pid = ?, reason = ?, updated_ms = ? WHERE id = ? AND epoch = ?");
	int ret;

	if (!s)
		return -EIO;
	bind_vm(s, vm);
	sqlite3_bind_int64(s, 8, vm->id);
	sqlite3_bind_int64(s, 9, vm->epoch);
	ret = step_done(st, s, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM vms WHERE id = ?", vm->id) : ret;
}

static int sq_vm_set_owner(struct store *st, int64_t id, const char *host, int64_t epoch)
{
	sqlite3_stmt *s = prepare(st, "UPDATE vms SET host = ?, epoch = epoch + 1 "
				      "WHERE id = ? AND epoch = ?");
	int ret;

	if (!s)
		return -EIO;
	bind_text(s, 1, host);
	sqlite3_bind_int64(s, 2, id);
	sqlite3_bind_int64(s, 3, epoch);
	ret = step_done(st, s, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM vms WHERE id = ?", id) : ret;
}

static int delete_by_id(struct store *st, const char *sql, int64_t id)
{
	sqlite3_stmt *s = prepare(st, sql);

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	return step_done(st, s, true);
}

/* The VM, then its devices (ids are never reused: a crash between leaves rows no
 * VM will ever read). */
static int sq_vm_delete(struct store *st, int64_t id)
{
	int ret = delete_by_id(st, "DELETE FROM vms WHERE id = ?", id);

	if (ret)
		return ret;
	ret = delete_by_id(st, "DELETE FROM vm_devices WHERE vm_id = ?", id);
	return ret == -ENOENT ? 0 : ret;
}

/* One row of s (with ?1 bound) into elem via read_row; -ENOENT when none. */
static int get_one(struct store *st, sqlite3_stmt *s, int (*read_row)(sqlite3_stmt *s, void *elem),
		   void *elem)
{
	int rc = sqlite3_step(s), ret;

	if (rc == SQLITE_ROW) {
		ret = read_row(s, elem);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		log_error("inventory: %s", sqlite3_errmsg(st->db));
		ret = -EIO;
	}
	sqlite3_finalize(s);
	return ret;
}

static int sq_vm_get(struct store *st, const char *name, struct store_vm *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT " VM_COLS " FROM vms WHERE name = ?");

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	bind_text(s, 1, name);
	return get_one(st, s, read_vm, out);
}

static int sq_vm_list(struct store *st, struct store_vm **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT " VM_COLS " FROM vms ORDER BY name");
	int ret;

	*out = NULL;
	*n = 0;
	if (!s)
		return -EIO;
	ret = collect(st, s, sizeof(**out), read_vm, (void **)out, n);
	if (ret) {
		store_vm_list_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

void store_vm_clear(struct store_vm *vm)
{
	free(vm->spec);
	vm->spec = NULL;
}

void store_vm_list_free(struct store_vm *vms, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		store_vm_clear(&vms[i]);
	free(vms);
}

/* --- Devices of VMs ------------------------------------------------------------------- */

static int read_device(sqlite3_stmt *s, void *elem)
{
	struct store_device *d = elem;

	text(s, 0, d->kind, sizeof(d->kind));
	d->index = (unsigned)sqlite3_column_int64(s, 1);
	text(s, 2, d->dev_id, sizeof(d->dev_id));
	d->slot = (unsigned)sqlite3_column_int64(s, 3);
	return 0;
}

static int sq_device_list(struct store *st, int64_t vm_id, struct store_device **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT kind, idx, dev_id, slot FROM vm_devices "
				      "WHERE vm_id = ? ORDER BY kind, idx");

	if (s)
		sqlite3_bind_int64(s, 1, vm_id);
	return collect_plain(st, s, sizeof(**out), read_device, (void **)out, n);
}

static int sq_device_insert(struct store *st, int64_t vm_id, const struct store_device *dev)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO vm_devices (vm_id, kind, idx, dev_id, slot) "
				      "VALUES (?, ?, ?, ?, ?)");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, vm_id);
	bind_text(s, 2, dev->kind);
	sqlite3_bind_int64(s, 3, dev->index);
	bind_text(s, 4, dev->dev_id);
	sqlite3_bind_int64(s, 5, dev->slot);
	return step_done(st, s, false);
}

static int sq_device_delete(struct store *st, int64_t vm_id, const char *kind, unsigned index)
{
	sqlite3_stmt *s = prepare(st, "DELETE FROM vm_devices WHERE vm_id = ? AND kind = ? AND "
				      "idx = ?");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, vm_id);
	bind_text(s, 2, kind);
	sqlite3_bind_int64(s, 3, index);
	return step_done(st, s, true);
}

static int sq_device_move(struct store *st, int64_t vm_id, const char *kind, unsigned from,
			  unsigned to)
{
	sqlite3_stmt *s = prepare(st, "UPDATE vm_devices SET idx = ? WHERE vm_id = ? AND kind = ? "
				      "AND idx = ?");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, to);
	sqlite3_bind_int64(s, 2, vm_id);
	bind_text(s, 3, kind);
	sqlite3_bind_int64(s, 4, from);
	return step_done(st, s, true);
}

/* --- Images -------------------------------------------------------------------------- */

#define IMAGE_COLS "id, name, format, size, backing, is_template, created_ms"

static int read_image(sqlite3_stmt *s, void *elem)
{
	struct store_image *img = elem;

	img->id = sqlite3_column_int64(s, 0);
	text(s, 1, img->name, sizeof(img->name));
	text(s, 2, img->format, sizeof(img->format));
	img->size = (uint64_t)sqlite3_column_int64(s, 3);
	text(s, 4, img->backing, sizeof(img->backing));
	img->is_template = sqlite3_column_int(s, 5) != 0;
	img->created_ms = sqlite3_column_int64(s, 6);
	return 0;
}

static void bind_image(sqlite3_stmt *s, const struct store_image *img)
{
	bind_text(s, 1, img->name);
	bind_text(s, 2, img->format);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)img->size);
	bind_text(s, 4, img->backing);
	sqlite3_bind_int(s, 5, img->is_template);
	sqlite3_bind_int64(s, 6, img->created_ms);
}

static int sq_image_insert(struct store *st, struct store_image *img)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO images (name, format, size, backing, "
				      "is_template, created_ms) VALUES (?, ?, ?, ?, ?, ?)");
	if (s)
		bind_image(s, img);
	return insert(st, s, &img->id);
}

static int sq_image_update(struct store *st, const struct store_image *img)
{
	sqlite3_stmt *s = prepare(st, "UPDATE images SET name = ?, format = ?, size = ?, "
				      "backing = ?, is_template = ?, created_ms = ? WHERE id = ?");

	if (!s)
		return -EIO;
	bind_image(s, img);
	sqlite3_bind_int64(s, 7, img->id);
	return step_done(st, s, true);
}

static int sq_image_delete(struct store *st, int64_t id)
{
	return delete_by_id(st, "DELETE FROM images WHERE id = ?", id);
}

static int sq_image_get(struct store *st, const char *name, struct store_image *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT " IMAGE_COLS " FROM images WHERE name = ?");

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	bind_text(s, 1, name);
	return get_one(st, s, read_image, out);
}

static int sq_image_list(struct store *st, struct store_image **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT " IMAGE_COLS " FROM images ORDER BY name");

	return collect_plain(st, s, sizeof(**out), read_image, (void **)out, n);
}

/* --- Networks ------------------------------------------------------------------------ */

static int read_network(sqlite3_stmt *s, void *elem)
{
	struct store_network *net = elem;

	net->id = sqlite3_column_int64(s, 0);
	text(s, 1, net->name, sizeof(net->name));
	text(s, 2, net->bridge, sizeof(net->bridge));
	text(s, 3, net->cidr, sizeof(net->cidr));
	net->created_ms = sqlite3_column_int64(s, 4);
	text(s, 5, net->mode, sizeof(net->mode));
	return 0;
}

static void bind_network(sqlite3_stmt *s, const struct store_network *net)
{
	bind_text(s, 1, net->name);
	bind_text(s, 2, net->bridge);
	bind_text(s, 3, net->cidr);
	sqlite3_bind_int64(s, 4, net->created_ms);
	bind_text(s, 5, net->mode[0] ? net->mode : "isolated");
}

static int sq_network_insert(struct store *st, struct store_network *net)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO networks (name, bridge, cidr, created_ms, mode) "
				      "VALUES (?, ?, ?, ?, ?)");

	if (s)
		bind_network(s, net);
	return insert(st, s, &net->id);
}

static int sq_network_update(struct store *st, const struct store_network *net)
{
	sqlite3_stmt *s = prepare(st, "UPDATE networks SET name = ?, bridge = ?, cidr = ?, "
				      "created_ms = ?, mode = ? WHERE id = ?");

	if (!s)
		return -EIO;
	bind_network(s, net);
	sqlite3_bind_int64(s, 6, net->id);
	return step_done(st, s, true);
}

static int sq_network_delete(struct store *st, int64_t id)
{
	return delete_by_id(st, "DELETE FROM networks WHERE id = ?", id);
}

static int sq_network_get(struct store *st, const char *name, struct store_network *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT id, name, bridge, cidr, created_ms, mode FROM "
				      "networks WHERE name = ?");

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	bind_text(s, 1, name);
	return get_one(st, s, read_network, out);
}

static int sq_network_list(struct store *st, struct store_network **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT id, name, bridge, cidr, created_ms, mode FROM "
				      "networks ORDER BY name");

	return collect_plain(st, s, sizeof(**out), read_network, (void **)out, n);
}

/* --- Tokens -------------------------------------------------------------------------- */

#define TOKEN_COLS "id, name, hash, role, created_ms"

static int read_token(sqlite3_stmt *s, void *elem)
{
	struct store_token *t = elem;

	t->id = sqlite3_column_int64(s, 0);
	text(s, 1, t->name, sizeof(t->name));
	text(s, 2, t->hash, sizeof(t->hash));
	text(s, 3, t->role, sizeof(t->role));
	t->created_ms = sqlite3_column_int64(s, 4);
	return 0;
}

static int sq_token_insert(struct store *st, struct store_token *t)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO tokens (name, hash, role, created_ms) "
				      "VALUES (?, ?, ?, ?)");

	if (s) {
		bind_text(s, 1, t->name);
		bind_text(s, 2, t->hash);
		bind_text(s, 3, t->role);
		sqlite3_bind_int64(s, 4, t->created_ms);
	}
	return insert(st, s, &t->id);
}

static int sq_token_delete(struct store *st, int64_t id)
{
	return delete_by_id(st, "DELETE FROM tokens WHERE id = ?", id);
}

static int token_by(struct store *st, const char *sql, const char *key, struct store_token *out)
{
	sqlite3_stmt *s = prepare(st, sql);

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	bind_text(s, 1, key);
	return get_one(st, s, read_token, out);
}

static int sq_token_get(struct store *st, const char *name, struct store_token *out)
{
	return token_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE name = ?", name, out);
}

static int sq_token_find(struct store *st, const char *hash, struct store_token *out)
{
	return token_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?", hash, out);
}

static int sq_token_list(struct store *st, struct store_token **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT " TOKEN_COLS " FROM tokens ORDER BY name");

	return collect_plain(st, s, sizeof(**out), read_token, (void **)out, n);
}

/* --- Tasks --------------------------------------------------------------------------- */

#define TASK_COLS                                                                                  \
	"id, kind, object, state, percent, done_bytes, total_bytes, error, created_ms, "          \
	"finished_ms, host"

static int read_task(sqlite3_stmt *s, void *elem)
{
	struct store_task *t = elem;

	t->id = sqlite3_column_int64(s, 0);
	text(s, 1, t->kind, sizeof(t->kind));
	text(s, 2, t->object, sizeof(t->object));
	text(s, 3, t->state, sizeof(t->state));
	t->percent = sqlite3_column_int(s, 4);
	t->done_bytes = (uint64_t)sqlite3_column_int64(s, 5);
	t->total_bytes = (uint64_t)sqlite3_column_int64(s, 6);
	text(s, 7, t->error, sizeof(t->error));
	t->created_ms = sqlite3_column_int64(s, 8);
	t->finished_ms = sqlite3_column_int64(s, 9);
	text(s, 10, t->host, sizeof(t->host));
	return 0;
}

static void bind_task(sqlite3_stmt *s, const struct store_task *t)
{
	bind_text(s, 1, t->kind);
	bind_text(s, 2, t->object);
	bind_text(s, 3, t->state);
	sqlite3_bind_int(s, 4, t->percent);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)t->done_bytes);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)t->total_bytes);
	bind_text(s, 7, t->error);
	sqlite3_bind_int64(s, 8, t->created_ms);
	sqlite3_bind_int64(s, 9, t->finished_ms);
	bind_text(s, 10, t->host);
}

static int sq_task_insert(struct store *st, struct store_task *t)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO tasks (kind, object, state, percent, "
				      "done_bytes, total_bytes, error, created_ms, finished_ms, "
				      "host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (s)
		bind_task(s, t);
	return insert(st, s, &t->id);
}

static int sq_task_update(struct store *st, const struct store_task *t)
{
	sqlite3_stmt *s = prepare(st, "UPDATE tasks SET kind = ?, object = ?, state = ?, "
				      "percent = ?, done_bytes = ?, total_bytes = ?, error = ?, "
				      "created_ms = ?, finished_ms = ?, host = ? WHERE id = ?");

	if (!s)
		return -EIO;
	bind_task(s, t);
	sqlite3_bind_int64(s, 11, t->id);
	return step_done(st, s, true);
}

static int sq_task_get(struct store *st, int64_t id, struct store_task *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT " TASK_COLS " FROM tasks WHERE id = ?");

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, id);
	return get_one(st, s, read_task, out);
}

static int sq_task_list(struct store *st, struct store_task **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT " TASK_COLS " FROM tasks ORDER BY id");

	return collect_plain(st, s, sizeof(**out), read_task, (void **)out, n);
}

/* --- Events -------------------------------------------------------------------------- */

static int read_event(sqlite3_stmt *s, void *elem)
{
	struct store_event *ev = elem;

	ev->id = sqlite3_column_int64(s, 0);
	ev->time_ms = sqlite3_column_int64(s, 1);
	text(s, 2, ev->actor, sizeof(ev->actor));
	text(s, 3, ev->action, sizeof(ev->action));
	text(s, 4, ev->object, sizeof(ev->object));
	text(s, 5, ev->result, sizeof(ev->result));
	text(s, 6, ev->message, sizeof(ev->message));
	return 0;
}

static int sq_event_append(struct store *st, struct store_event *ev)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO events (time_ms, actor, action, object, "
				      "result, message) VALUES (?, ?, ?, ?, ?, ?)");
	if (s) {
		sqlite3_bind_int64(s, 1, ev->time_ms);
		bind_text(s, 2, ev->actor);
		bind_text(s, 3, ev->action);
		bind_text(s, 4, ev->object);
		bind_text(s, 5, ev->result);
		bind_text(s, 6, ev->message);
	}
	return insert(st, s, &ev->id);
}

static int sq_event_list(struct store *st, int64_t after, unsigned limit,
			 struct store_event **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT id, time_ms, actor, action, object, result, message "
				      "FROM events WHERE id > ? ORDER BY id LIMIT ?");

	if (s) {
		sqlite3_bind_int64(s, 1, after);
		sqlite3_bind_int64(s, 2, limit);
	}
	return collect_plain(st, s, sizeof(**out), read_event, (void **)out, n);
}

/* --- Hosts and the leader lease ------------------------------------------------------- */

static int read_host(sqlite3_stmt *s, void *elem)
{
	struct store_host *h = elem;

	h->id = sqlite3_column_int64(s, 0);
	text(s, 1, h->name, sizeof(h->name));
	text(s, 2, h->address, sizeof(h->address));
	h->cpus = (unsigned)sqlite3_column_int(s, 3);
	h->memory_mib = (uint64_t)sqlite3_column_int64(s, 4);
	h->started_ms = sqlite3_column_int64(s, 5);
	h->heartbeat_ms = sqlite3_column_int64(s, 6);
	h->age_ms = sqlite3_column_int64(s, 7);
	h->maintenance = sqlite3_column_int(s, 8) != 0;
	text(s, 9, h->cpu_flags, sizeof(h->cpu_flags));
	h->contact_since_ms = sqlite3_column_int64(s, 10);
	h->contact_ms = sqlite3_column_int64(s, 11);
	return 0;
}

static int sq_host_register(struct store *st, struct store_host *h)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO hosts (name, address, cpus, memory_mib, "
				      "started_ms, heartbeat_ms, cpu_flags, contact_since_ms) "
				      "VALUES (?, ?, ?, ?, " NOW_MS ", " NOW_MS ", ?, " NOW_MS ") "
				      "ON CONFLICT (name) DO UPDATE SET "
				      "address = excluded.address, cpus = excluded.cpus, "
				      "memory_mib = excluded.memory_mib, started_ms = "
				      "excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms, "
				      "cpu_flags = excluded.cpu_flags, "
				      "contact_since_ms = excluded.contact_since_ms");
	int ret;

	if (!s)
		return -EIO;
	bind_text(s, 1, h->name);
	bind_text(s, 2, h->address);
	sqlite3_bind_int(s, 3, (int)h->cpus);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)h->memory_mib);
	bind_text(s, 5, h->cpu_flags);
	ret = step_done(st, s, false);
	if (ret)
		return ret;
	s = prepare(st, "SELECT id, name, address, cpus, memory_mib, started_ms, heartbeat_ms, "
			"0, maintenance, cpu_flags, contact_since_ms, 0 FROM hosts WHERE name = ?");
	if (!s)
		return -EIO;
	bind_text(s, 1, h->name);
	return get_one(st, s, read_host, h);
}

static int sq_host_heartbeat(struct store *st, const char *name, int64_t gap_ms)
{
	/* 'now' is one reading for the whole statement in SQLite. */
	sqlite3_stmt *s = prepare(st, "UPDATE hosts SET contact_since_ms = CASE WHEN "
				      "heartbeat_ms > 0 AND contact_since_ms > 0 AND " NOW_MS
				      " - heartbeat_ms <= ?2 THEN contact_since_ms ELSE " NOW_MS
				      " END, heartbeat_ms = " NOW_MS " WHERE name = ?1");

	if (!s)
		return -EIO;
	bind_text(s, 1, name);
	sqlite3_bind_int64(s, 2, gap_ms);
	return step_done(st, s, true);
}

static int sq_host_leave(struct store *st, const char *name)
{
	sqlite3_stmt *s = prepare(st, "UPDATE hosts SET heartbeat_ms = 0 WHERE name = ?");

	if (!s)
		return -EIO;
	bind_text(s, 1, name);
	return step_done(st, s, true);
}

static int sq_host_set_maintenance(struct store *st, const char *name, bool on)
{
	sqlite3_stmt *s = prepare(st, "UPDATE hosts SET maintenance = ? WHERE name = ?");

	if (!s)
		return -EIO;
	sqlite3_bind_int(s, 1, on);
	bind_text(s, 2, name);
	return step_done(st, s, true);
}

static int sq_host_list(struct store *st, struct store_host **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT id, name, address, cpus, memory_mib, started_ms, "
				      "heartbeat_ms, " NOW_MS " - heartbeat_ms, maintenance, "
				      "cpu_flags, contact_since_ms, CASE WHEN contact_since_ms > 0 "
				      "THEN " NOW_MS " - contact_since_ms ELSE 0 END "
				      "FROM hosts ORDER BY name");

	return collect_plain(st, s, sizeof(**out), read_host, (void **)out, n);
}

static int read_leader(sqlite3_stmt *s, void *elem)
{
	struct store_leader *l = elem;

	text(s, 0, l->host, sizeof(l->host));
	l->term = sqlite3_column_int64(s, 1);
	l->expires_in_ms = sqlite3_column_int64(s, 2);
	return 0;
}

static int sq_leader_get(struct store *st, struct store_leader *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT host, term, expires_ms - " NOW_MS " FROM leader "
				      "WHERE id = 1");

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EIO;
	return get_one(st, s, read_leader, out);
}

static int sq_leader_claim(struct store *st, const char *host, int64_t lease_ms,
			   struct store_leader *out)
{
	sqlite3_stmt *s;
	int ret = sq_begin(st);

	if (ret)
		return ret;
	/* Renew an unexpired lease of ours (same term); take a lapsed one (term + 1). */
	s = prepare(st, "UPDATE leader SET term = CASE WHEN host = ?1 AND expires_ms > " NOW_MS
			" THEN term ELSE term + 1 END, host = ?1, expires_ms = " NOW_MS " + ?2 "
			"WHERE id = 1 AND ((host = ?1 AND expires_ms > " NOW_MS ") OR "
			"expires_ms <= " NOW_MS ")");
	if (!s) {
		ret = -EIO;
		goto out_rollback;
	}
	bind_text(s, 1, host);
	sqlite3_bind_int64(s, 2, lease_ms);
	ret = step_done(st, s, false);
	if (!ret)
		ret = sq_leader_get(st, out);
	if (!ret)
		ret = sq_commit(st);
	if (!ret)
		return 0;
out_rollback:
	sq_rollback(st);
	return ret;
}

static int sq_leader_release(struct store *st, const char *host)
{
	sqlite3_stmt *s = prepare(st, "UPDATE leader SET expires_ms = " NOW_MS " WHERE id = 1 "
				      "AND host = ? AND expires_ms > " NOW_MS);

	if (!s)
		return -EIO;
	bind_text(s, 1, host);
	return step_done(st, s, false);
}

/* --- Migrations between hosts ---------------------------------------------------------- */

#define MIGRATION_COLS                                                                             \
	"vm_id, vm, source, destination, epoch, phase, listen, started_ms, updated_ms"

static int read_migration(sqlite3_stmt *s, void *elem)
{
	struct store_migration *m = elem;

	m->vm_id = sqlite3_column_int64(s, 0);
	text(s, 1, m->vm, sizeof(m->vm));
	text(s, 2, m->source, sizeof(m->source));
	text(s, 3, m->destination, sizeof(m->destination));
	m->epoch = sqlite3_column_int64(s, 4);
	text(s, 5, m->phase, sizeof(m->phase));
	text(s, 6, m->listen, sizeof(m->listen));
	m->started_ms = sqlite3_column_int64(s, 7);
	m->updated_ms = sqlite3_column_int64(s, 8);
	return 0;
}

static int sq_migration_insert(struct store *st, const struct store_migration *m)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO migrations (" MIGRATION_COLS ") "
				      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, m->vm_id);
	bind_text(s, 2, m->vm);
	bind_text(s, 3, m->source);
	bind_text(s, 4, m->destination);
	sqlite3_bind_int64(s, 5, m->epoch);
	bind_text(s, 6, m->phase);
	bind_text(s, 7, m->listen);
	sqlite3_bind_int64(s, 8, m->started_ms);
	sqlite3_bind_int64(s, 9, m->updated_ms);
	return step_done(st, s, false);
}

static int sq_migration_update(struct store *st, const struct store_migration *m,
			       const char *from)
{
	sqlite3_stmt *s = prepare(st, "UPDATE migrations SET phase = ?, listen = ?, "
				      "updated_ms = ? WHERE vm_id = ? AND phase = ?");
	int ret;

	if (!s)
		return -EIO;
	bind_text(s, 1, m->phase);
	bind_text(s, 2, m->listen);
	sqlite3_bind_int64(s, 3, m->updated_ms);
	sqlite3_bind_int64(s, 4, m->vm_id);
	bind_text(s, 5, from);
	ret = step_done(st, s, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM migrations WHERE vm_id = ?",
					       m->vm_id)
			      : ret;
}

static int sq_migration_get(struct store *st, int64_t vm_id, struct store_migration *out)
{
	sqlite3_stmt *s = prepare(st, "SELECT " MIGRATION_COLS " FROM migrations WHERE vm_id = ?");

	if (!s)
		return -EIO;
	memset(out, 0, sizeof(*out));
	sqlite3_bind_int64(s, 1, vm_id);
	return get_one(st, s, read_migration, out);
}

static int sq_migration_list(struct store *st, struct store_migration **out, size_t *n)
{
	sqlite3_stmt *s = prepare(st, "SELECT " MIGRATION_COLS " FROM migrations ORDER BY vm_id");

	return collect_plain(st, s, sizeof(**out), read_migration, (void **)out, n);
}

static int sq_migration_delete(struct store *st, int64_t vm_id)
{
	return delete_by_id(st, "DELETE FROM migrations WHERE vm_id = ?", vm_id);
}

static int sq_placement_lock(struct store *st)
{
	(void)st; /* BEGIN IMMEDIATE holds the database's one write lock already */
	return 0;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.schema_version = sq_schema_version,
	.vm_insert = sq_vm_insert,
	.vm_update = sq_vm_update,
	.vm_set_owner = sq_vm_set_owner,
	.vm_delete = sq_vm_delete,
	.vm_get = sq_vm_get,
	.vm_list = sq_vm_list,
	.image_insert = sq_image_insert,
	.image_update = sq_image_update,
	.image_delete = sq_image_delete,
	.image_get = sq_image_get,
	.image_list = sq_image_list,
	.device_list = sq_device_list,
	.device_insert = sq_device_insert,
	.device_delete = sq_device_delete,
	.device_move = sq_device_move,
	.network_insert = sq_network_insert,
	.network_update = sq_network_update,
	.network_delete = sq_network_delete,
	.network_get = sq_network_get,
	.network_list = sq_network_list,
	.token_insert = sq_token_insert,
	.token_delete = sq_token_delete,
	.token_get = sq_token_get,
	.token_find = sq_token_find,
	.token_list = sq_token_list,
	.task_insert = sq_task_insert,
	.task_update = sq_task_update,
	.task_get = sq_task_get,
	.task_list = sq_task_list,
	.event_append = sq_event_append,
	.event_list = sq_event_list,
	.host_register = sq_host_register,
	.host_heartbeat = sq_host_heartbeat,
	.host_list = sq_host_list,
	.host_set_maintenance = sq_host_set_maintenance,
	.host_leave = sq_host_leave,
	.leader_claim = sq_leader_claim,
	.leader_release = sq_leader_release,
	.leader_get = sq_leader_get,
	.migration_insert = sq_migration_insert,
	.migration_update = sq_migration_update,
	.migration_get = sq_migration_get,
	.migration_list = sq_migration_list,
	.migration_delete = sq_migration_delete,
	.placement_lock = sq_placement_lock,
};
