// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL implementation of the inventory (store.h, store_pg.h): what every
 * plinthd of a cluster shares. One blocking libpq connection per struct store; a
 * broken connection is reset before the next statement outside a transaction (a
 * statement that failed with it returned -EIO and is not retried: it may have
 * committed). Transactions are READ COMMITTED: each host writes its own VMs' rows
 * (vm_update is fenced by the ownership epoch) and the leader lease is one UPDATE
 * whose condition PostgreSQL re-checks on the newest row.
 *
 * The database clock is the server's clock_timestamp(): every host's heartbeat and
 * the lease are measured by it, never by a host's own clock.
 */
#include "store_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ratelimit.h"
#include "schema.h"
#include "store.h"

/* The database clock in milliseconds, as SQL. */
#define NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
/* The advisory lock taken by every schema change ("plinth" in ASCII; placement's is
 * the next number). */
#define SCHEMA_LOCK "SELECT pg_advisory_xact_lock(123865463566440)"
#define PARAMS_MAX  12

struct store {
	PGconn *conn;
	bool in_tx; /* between begin() and commit()/rollback(): never reset the connection */
	bool lost;  /* a statement failed for want of the server: reset before the next */
	struct ratelimit down_log; /* "reconnecting" lines while the server is away */
};

/* Text parameters of one statement (numbers printed into num). */
struct params {
	int n;
	const char *v[PARAMS_MAX];
	char num[PARAMS_MAX][24];
};

static void p_text(struct params *p, const char *v)
{
	p->v[p->n++] = v;
}

static void p_i64(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* One log line: what (a statement: its first 48 bytes) and libpq's message up to its
 * first newline (the rest is hints). */
static void log_pg(const char *what, const char *msg)
{
	int len = (int)strcspn(msg, "\n");

	log_error("inventory (PostgreSQL): %.48s%s: %.*s", what, strlen(what) > 48 ? "..." : "",
		  len, msg);
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* "relation already exists, skipping" and the like */
}

/* A result of conn's as 0, -EEXIST (unique violation) or -EIO (logged); clears res on
 * failure. res NULL: libpq could not send the statement (conn says why). *lost (may be
 * NULL) is set when the server went away: no SQLSTATE (libpq's own error: it says
 * CONNECTION_OK until the next statement), class 08 (connection) or 57P (shutdown). */
static int result_ok(PGconn *conn, PGresult *res, const char *what, bool *lost)
{
	ExecStatusType s = PQresultStatus(res);
	const char *state;

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (lost)
		*lost = !state || !strncmp(state, "08", 2) || !strncmp(state, "57P", 3);
	if (state && !strcmp(state, "23505")) {
		PQclear(res);
		return -EEXIST;
	}
	log_pg(what, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return -EIO;
}

/* One statement without parameters (may be several statements: migrations). */
static int conn_exec(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int ret = result_ok(c, res, sql, NULL);

	if (!ret)
		PQclear(res);
	return ret;
}

/* Outside a transaction, make a broken connection whole again. */
static int reconnect(struct store *st)
{
	if ((PQstatus(st->conn) == CONNECTION_OK && !st->lost) || st->in_tx)
		return 0;
	PQreset(st->conn);
	if (PQstatus(st->conn) != CONNECTION_OK) {
		const char *msg = PQerrorMessage(st->conn);

		log_limited(&st->down_log, LOG_ERROR, "inventory (PostgreSQL): reconnecting: %.*s",
			    (int)strcspn(msg, "\n"), msg);
		return -EIO;
	}
	st->lost = false;
	log_info("inventory (PostgreSQL): reconnected");
	return 0;
}

/* Run sql with p: the result (PQclear it) or NULL with *ret set (-EEXIST, -EIO). */
static PGresult *query(struct store *st, const char *sql, const struct params *p, int *ret)
{
	PGresult *res;

	*ret = reconnect(st);
	if (*ret)
		return NULL;
	res = PQexecParams(st->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0);
	*ret = result_ok(st->conn, res, sql, &st->lost);
	return *ret ? NULL : res;
}

/* A statement that returns no rows; -ENOENT if want_change and no row changed. */
static int command(struct store *st, const char *sql, const struct params *p, bool want_change)
{
	int ret;
	PGresult *res = query(st, sql, p, &ret);

	if (!res)
		return ret;
	if (want_change && !strcmp(PQcmdTuples(res), "0"))
		ret = -ENOENT;
	PQclear(res);
	return ret;
}

/* An INSERT ... RETURNING id. */
static int insert(struct store *st, const char *sql, const struct params *p, int64_t *id)
{
	int ret;
	PGresult *res = query(st, sql, p, &ret);

	if (!res)
		return ret;
	if (PQntuples(res) == 1)
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		ret = -EIO;
	PQclear(res);
	return ret;
}

static void col_text(PGresult *r, int row, int col, char *buf, size_t size)
{
	snprintf(buf, size, "%s", PQgetvalue(r, row, col));
}

static int64_t col_i64(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

typedef int (*read_row_fn)(PGresult *r, int row, void *elem);

/* Every row into a new array of elem_size elements (*out, *n; on failure the rows
 * read so far, for the caller to free). */
static int rows(struct store *st, const char *sql, const struct params *p, size_t elem_size,
		read_row_fn read_row, void **out, size_t *n)
{
	PGresult *res;
	char *arr;
	int ret, i, cnt;

	*out = NULL;
	*n = 0;
	res = query(st, sql, p, &ret);
	if (!res)
		return ret;
	cnt = PQntuples(res);
	arr = calloc(cnt ? (size_t)cnt : 1, elem_size);
	if (!arr) {
		PQclear(res);
		return -ENOMEM;
	}
	*out = arr;
	for (i = 0; i < cnt && !ret; i++) {
		ret = read_row(res, i, arr + (size_t)i * elem_size);
		if (!ret)
			*n = (size_t)i + 1;
	}
	PQclear(res);
	return ret;
}

static int rows_plain(struct store *st, const char *sql, const struct params *p, size_t elem_size,
		      read_row_fn read_row, void **out, size_t *n)
{
	int ret = rows(st, sql, p, elem_size, read_row, out, n);

	if (ret) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

/* The first row into elem; -ENOENT when none. */
static int get_one(struct store *st, const char *sql, const struct params *p, read_row_fn read_row,
		   void *elem)
{
	int ret;
	PGresult *res = query(st, sql, p, &ret);

	if (!res)
		return ret;
	ret = PQntuples(res) ? read_row(res, 0, elem) : -ENOENT;
	PQclear(res);
	return ret;
}

/* --- Schema ----------------------------------------------------------------------------- */

static int read_version(PGconn *c, int *v)
{
	PGresult *res = PQexec(c, "SELECT version FROM plinth_schema");
	int ret = result_ok(c, res, "reading the schema version", NULL);

	if (ret)
		return ret;
	if (PQntuples(res) != 1) {
		log_error("inventory (PostgreSQL): plinth_schema has %d rows, not 1",
			  PQntuples(res));
		ret = -EIO;
	} else {
		*v = atoi(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return ret;
}

int store_pg_migrate(PGconn *c, int target)
{
	int v, ret;

	PQsetNoticeProcessor(c, quiet_notice, NULL);
	/* The version table itself, created once under the lock. */
	ret = conn_exec(c, "BEGIN");
	if (!ret)
		ret = conn_exec(c, SCHEMA_LOCK "; CREATE TABLE IF NOT EXISTS plinth_schema "
					       "(version INTEGER NOT NULL); INSERT INTO plinth_schema "
					       "SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM plinth_schema)");
	if (!ret)
		ret = conn_exec(c, "COMMIT");
	if (ret)
		goto out_rollback;
	for (;;) {
		char setv[64], *sql;

		ret = conn_exec(c, "BEGIN");
		if (!ret)
			ret = conn_exec(c, SCHEMA_LOCK);
		/* Under the lock: another plinthd may have moved it. */
		if (!ret)
			ret = read_version(c, &v);
		if (ret)
			goto out_rollback;
		if (v > store_schema_latest()) {
			log_error("inventory: schema version %d is newer than this plinthd "
				  "knows (%d); refusing to touch it",
				  v, store_schema_latest());
			ret = -EPROTO;
			goto out_rollback;
		}
		if (v >= target)
			return conn_exec(c, "COMMIT");
		sql = store_schema_step(v + 1, STORE_DIALECT_PG);
		if (!sql) {
			ret = -ENOMEM;
			goto out_rollback;
		}
		ret = conn_exec(c, sql);
		free(sql);
		snprintf(setv, sizeof(setv), "UPDATE plinth_schema SET version = %d", v + 1);
		if (!ret)
			ret = conn_exec(c, setv);
		if (!ret)
			ret = conn_exec(c, "COMMIT");
		if (ret) {
			log_error("inventory: migration to schema version %d failed", v + 1);
			goto out_rollback;
		}
		log_info("inventory: schema migrated to version %d", v + 1);
	}

out_rollback:
	PQclear(PQexec(c, "ROLLBACK"));
	return ret;
}

/* --- The store -------------------------------------------------------------------------- */

static struct store *pg_open(const char *location)
{
	/* Defaults first: the location's own parameters override them. */
	static const char *const keys[] = {
		"connect_timeout",  "tcp_user_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "application_name", "options",	   "dbname",
		NULL};
	/* A plinthd frozen (or cut off) inside a transaction must not hold its row and
	 * advisory locks for ever: the leader's HA transaction needs them (the server
	 * ends such a session after 3 s); no statement waits more than 5 s for a lock. */
	const char *vals[] = {"5",
			      "10000",
			      "5",
			      "2",
			      "3",
			      "plinthd",
			      "-c idle_in_transaction_session_timeout=3000 -c lock_timeout=5000",
			      location,
			      NULL};
	struct store *st = calloc(1, sizeof(*st));

	if (!st) {
		log_error("inventory: out of memory");
		return NULL;
	}
	ratelimit_init(&st->down_log, 2, 10000);
	st->conn = PQconnectdbParams(keys, vals, 1);
	if (!st->conn || PQstatus(st->conn) != CONNECTION_OK) {
		/* The location may hold a password: libpq's message names the server. */
		log_pg("connecting", st->conn ? PQerrorMessage(st->conn) : "out of memory");
		goto out_finish;
	}
	if (store_pg_migrate(st->conn, store_schema_latest()))
		goto out_finish;
	return st;

out_finish:
	PQfinish(st->conn);
	free(st);
	return NULL;
}

static void pg_close(struct store *st)
{
	if (!st)
		return;
	PQfinish(st->conn);
	free(st);
}

static int pg_begin(struct store *st)
{
	int ret = command(st, "BEGIN", NULL, false);

	st->in_tx = !ret;
	return ret;
}

static int pg_commit(struct store *st)
{
	int ret = command(st, "COMMIT", NULL, false);

	st->in_tx = false;
	return ret;
}

static void pg_rollback(struct store *st)
{
	if (!st->in_tx)
		return;
	st->in_tx = false;
	if (PQstatus(st->conn) == CONNECTION_OK)
		PQclear(PQexec(st->conn, "ROLLBACK"));
}

static int pg_schema_version(struct store *st)
{
	int v = -1;

	if (reconnect(st))
		return -EIO;
	return read_version(st->conn, &v) ? -EIO : v;
}

/* --- VMs -------------------------------------------------------------------------------- */

#define VM_COLS "id, uuid, name, spec, state, pid, reason, updated_ms, host, epoch"

static int read_vm(PGresult *r, int row, void *elem)
{
	struct store_vm *vm = elem;

	vm->id = col_i64(r, row, 0);
	col_text(r, row, 1, vm->uuid, sizeof(vm->uuid));
	col_text(r, row, 2, vm->name, sizeof(vm->name));
	vm->spec = strdup(PQgetvalue(r, row, 3));
	if (!vm->spec)
		return -ENOMEM;
	col_text(r, row, 4, vm->state, sizeof(vm->state));
	vm->pid = col_i64(r, row, 5);
	col_text(r, row, 6, vm->reason, sizeof(vm->reason));
	vm->updated_ms = col_i64(r, row, 7);
	col_text(r, row, 8, vm->host, sizeof(vm->host));
	vm->epoch = col_i64(r, row, 9);
	return 0;
}

static void vm_params(struct params *p, const struct store_vm *vm)
{
	p_text(p, vm->uuid);
	p_text(p, vm->name);
	p_text(p, vm->spec);
	p_text(p, vm->state);
	p_i64(p, vm->pid);
	p_text(p, vm->reason);
	p_i64(p, vm->updated_ms);
}

static int pg_vm_insert(struct store *st, struct store_vm *vm)
{
	struct params p = {0};

	vm_params(&p, vm);
	p_text(&p, vm->host);
	p_i64(&p, vm->epoch);
	return insert(st,
		      "INSERT INTO vms (uuid, name, spec, state, pid, reason, updated_ms, host, "
		      "epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
		      &p, &vm->id);
}

/* After an UPDATE ... WHERE id = $ AND epoch = $ changed no row (-ENOENT): gone
 * (-ENOENT) or its ownership moved on (-ESTALE). */
static int gone_or_stale(struct store *st, const char *exists, int64_t id)
{
	struct params q = {0};
	PGresult *res;
	int ret;

	p_i64(&q, id);
	res = query(st, exists, &q, &ret);
	if (!res)
		return ret;
	ret = PQntuples(res) ? -ESTALE : -ENOENT;
	PQclear(res);
	return ret;
}

static int pg_vm_update(struct store *st, const struct store_vm *vm)
{
	struct params p = {0};
	int ret;

	vm_params(&p, vm);
	p_i64(&p, vm->id);
	p_i64(&p, vm->epoch);
	ret = command(st,
		      "UPDATE vms SET uuid = $1, name = $2, spec = $3, state = $4, pid = $5, "
		      "reason = $6, updated_ms = $7 WHERE id = $8 AND epoch = $9",
		      &p, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM vms WHERE id = $1", vm->id) : ret;
}

static int pg_vm_set_owner(struct store *st, int64_t id, const char *host, int64_t epoch)
{
	struct params p = {0};
	int ret;

	p_text(&p, host);
	p_i64(&p, id);
	p_i64(&p, epoch);
	ret = command(st,
		      "UPDATE vms SET host = $1, epoch = epoch + 1 WHERE id = $2 AND epoch = $3",
		      &p, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM vms WHERE id = $1", id) : ret;
}

static int by_id(struct store *st, const char *sql, int64_t id)
{
	struct params p = {0};

	p_i64(&p, id);
	return command(st, sql, &p, true);
}

/* The VM and its devices, in one statement. */
static int pg_vm_delete(struct store *st, int64_t id)
{
	return by_id(st,
		     "WITH d AS (DELETE FROM vm_devices WHERE vm_id = $1) "
		     "DELETE FROM vms WHERE id = $1",
		     id);
}

static int pg_vm_get(struct store *st, const char *name, struct store_vm *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_text(&p, name);
	return get_one(st, "SELECT " VM_COLS " FROM vms WHERE name = $1", &p, read_vm, out);
}

static int pg_vm_list(struct store *st, struct store_vm **out, size_t *n)
{
	int ret = rows(st, "SELECT " VM_COLS " FROM vms ORDER BY name", NULL, sizeof(**out),
		       read_vm, (void **)out, n);

	if (ret) {
		store_vm_list_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

/* --- Devices of VMs ---------------------------------------------------------------------- */

static int read_device(PGresult *r, int row, void *elem)
{
	struct store_device *d = elem;

	col_text(r, row, 0, d->kind, sizeof(d->kind));
	d->index = (unsigned)col_i64(r, row, 1);
	col_text(r, row, 2, d->dev_id, sizeof(d->dev_id));
	d->slot = (unsigned)col_i64(r, row, 3);
	return 0;
}

static int pg_device_list(struct store *st, int64_t vm_id, struct store_device **out, size_t *n)
{
	struct params p = {0};

	p_i64(&p, vm_id);
	return rows_plain(st,
			  "SELECT kind, idx, dev_id, slot FROM vm_devices WHERE vm_id = $1 "
			  "ORDER BY kind, idx",
			  &p, sizeof(**out), read_device, (void **)out, n);
}

static int pg_device_insert(struct store *st, int64_t vm_id, const struct store_device *dev)
{
	struct params p = {0};

	p_i64(&p, vm_id);
	p_text(&p, dev->kind);
	p_i64(&p, dev->index);
	p_text(&p, dev->dev_id);
	p_i64(&p, dev->slot);
	return command(st,
		       "INSERT INTO vm_devices (vm_id, kind, idx, dev_id, slot) "
		       "VALUES ($1, $2, $3, $4, $5)",
		       &p, false);
}

static int pg_device_delete(struct store *st, int64_t vm_id, const char *kind, unsigned index)
{
	struct params p = {0};

	p_i64(&p, vm_id);
	p_text(&p, kind);
	p_i64(&p, index);
	return command(st, "DELETE FROM vm_devices WHERE vm_id = $1 AND kind = $2 AND idx = $3",
		       &p, true);
}

static int pg_device_move(struct store *st, int64_t vm_id, const char *kind, unsigned from,
			  unsigned to)
{
	struct params p = {0};

	p_i64(&p, vm_id);
	p_text(&p, kind);
	p_i64(&p, from);
	p_i64(&p, to);
	return command(st,
		       "UPDATE vm_devices SET idx = $4 WHERE vm_id = $1 AND kind = $2 AND idx = $3",
		       &p, true);
}

/* --- Images ----------------------------------------------------------------------------- */

#define IMAGE_COLS "id, name, format, size, backing, is_template, created_ms"

static int read_image(PGresult *r, int row, void *elem)
{
	struct store_image *img = elem;

	img->id = col_i64(r, row, 0);
	col_text(r, row, 1, img->name, sizeof(img->name));
	col_text(r, row, 2, img->format, sizeof(img->format));
	img->size = (uint64_t)col_i64(r, row, 3);
	col_text(r, row, 4, img->backing, sizeof(img->backing));
	img->is_template = col_i64(r, row, 5) != 0;
	img->created_ms = col_i64(r, row, 6);
	return 0;
}

static void image_params(struct params *p, const struct store_image *img)
{
	p_text(p, img->name);
	p_text(p, img->format);
	p_i64(p, (int64_t)img->size);
	p_text(p, img->backing);
	p_i64(p, img->is_template);
	p_i64(p, img->created_ms);
}

static int pg_image_insert(struct store *st, struct store_image *img)
{
	struct params p = {0};

	image_params(&p, img);
	return insert(st,
		      "INSERT INTO images (name, format, size, backing, is_template, "
		      "created_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
		      &p, &img->id);
}

static int pg_image_update(struct store *st, const struct store_image *img)
{
	struct params p = {0};

	image_params(&p, img);
	p_i64(&p, img->id);
	return command(st,
		       "UPDATE images SET name = $1, format = $2, size = $3, backing = $4, "
		       "is_template = $5, created_ms = $6 WHERE id = $7",
		       &p, true);
}

static int pg_image_delete(struct store *st, int64_t id)
{
	return by_id(st, "DELETE FROM images WHERE id = $1", id);
}

static int pg_image_get(struct store *st, const char *name, struct store_image *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_text(&p, name);
	return get_one(st, "SELECT " IMAGE_COLS " FROM images WHERE name = $1", &p, read_image,
		       out);
}

static int pg_image_list(struct store *st, struct store_image **out, size_t *n)
{
	return rows_plain(st, "SELECT " IMAGE_COLS " FROM images ORDER BY name", NULL,
			  sizeof(**out), read_image, (void **)out, n);
}

/* --- Networks --------------------------------------------------------------------------- */

#define NET_COLS "id, name, bridge, cidr, created_ms, mode"

static int read_network(PGresult *r, int row, void *elem)
{
	struct store_network *net = elem;

	net->id = col_i64(r, row, 0);
	col_text(r, row, 1, net->name, sizeof(net->name));
	col_text(r, row, 2, net->bridge, sizeof(net->bridge));
	col_text(r, row, 3, net->cidr, sizeof(net->cidr));
	net->created_ms = col_i64(r, row, 4);
	col_text(r, row, 5, net->mode, sizeof(net->mode));
	return 0;
}

static void network_params(struct params *p, const struct store_network *net)
{
	p_text(p, net->name);
	p_text(p, net->bridge);
	p_text(p, net->cidr);
	p_i64(p, net->created_ms);
	p_text(p, net->mode[0] ? net->mode : "isolated");
}

static int pg_network_insert(struct store *st, struct store_network *net)
{
	struct params p = {0};

	network_params(&p, net);
	return insert(st,
		      "INSERT INTO networks (name, bridge, cidr, created_ms, mode) "
		      "VALUES ($1, $2, $3, $4, $5) RETURNING id",
		      &p, &net->id);
}

static int pg_network_update(struct store *st, const struct store_network *net)
{
	struct params p = {0};

	network_params(&p, net);
	p_i64(&p, net->id);
	return command(st,
		       "UPDATE networks SET name = $1, bridge = $2, cidr = $3, "
		       "created_ms = $4, mode = $5 WHERE id = $6",
		       &p, true);
}

static int pg_network_delete(struct store *st, int64_t id)
{
	return by_id(st, "DELETE FROM networks WHERE id = $1", id);
}

static int pg_network_get(struct store *st, const char *name, struct store_network *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_text(&p, name);
	return get_one(st, "SELECT " NET_COLS " FROM networks WHERE name = $1", &p, read_network,
		       out);
}

static int pg_network_list(struct store *st, struct store_network **out, size_t *n)
{
	return rows_plain(st, "SELECT " NET_COLS " FROM networks ORDER BY name", NULL,
			  sizeof(**out), read_network, (void **)out, n);
}

/* --- Tokens ----------------------------------------------------------------------------- */

#define TOKEN_COLS "id, name, hash, role, created_ms"

static int read_token(PGresult *r, int row, void *elem)
{
	struct store_token *t = elem;

	t->id = col_i64(r, row, 0);
	col_text(r, row, 1, t->name, sizeof(t->name));
	col_text(r, row, 2, t->hash, sizeof(t->hash));
	col_text(r, row, 3, t->role, sizeof(t->role));
	t->created_ms = col_i64(r, row, 4);
	return 0;
}

static int pg_token_insert(struct store *st, struct store_token *t)
{
	struct params p = {0};

	p_text(&p, t->name);
	p_text(&p, t->hash);
	p_text(&p, t->role);
	p_i64(&p, t->created_ms);
	return insert(st,
		      "INSERT INTO tokens (name, hash, role, created_ms) "
		      "VALUES ($1, $2, $3, $4) RETURNING id",
		      &p, &t->id);
}

static int pg_token_delete(struct store *st, int64_t id)
{
	return by_id(st, "DELETE FROM tokens WHERE id = $1", id);
}

static int token_by(struct store *st, const char *sql, const char *key, struct store_token *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_text(&p, key);
	return get_one(st, sql, &p, read_token, out);
}

static int pg_token_get(struct store *st, const char *name, struct store_token *out)
{
	return token_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE name = $1", name, out);
}

static int pg_token_find(struct store *st, const char *hash, struct store_token *out)
{
	return token_by(st, "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1", hash, out);
}

static int pg_token_list(struct store *st, struct store_token **out, size_t *n)
{
	return rows_plain(st, "SELECT " TOKEN_COLS " FROM tokens ORDER BY name", NULL,
			  sizeof(**out), read_token, (void **)out, n);
}

/* --- Tasks ------------------------------------------------------------------------------ */

#define TASK_COLS                                                                                  \
	"id, kind, object, state, percent, done_bytes, total_bytes, error, created_ms, "           \
	"finished_ms, host"

static int read_task(PGresult *r, int row, void *elem)
{
	struct store_task *t = elem;

	t->id = col_i64(r, row, 0);
	col_text(r, row, 1, t->kind, sizeof(t->kind));
	col_text(r, row, 2, t->object, sizeof(t->object));
	col_text(r, row, 3, t->state, sizeof(t->state));
	t->percent = (int)col_i64(r, row, 4);
	t->done_bytes = (uint64_t)col_i64(r, row, 5);
	t->total_bytes = (uint64_t)col_i64(r, row, 6);
	col_text(r, row, 7, t->error, sizeof(t->error));
	t->created_ms = col_i64(r, row, 8);
	t->finished_ms = col_i64(r, row, 9);
	col_text(r, row, 10, t->host, sizeof(t->host));
	return 0;
}

static void task_params(struct params *p, const struct store_task *t)
{
	p_text(p, t->kind);
	p_text(p, t->object);
	p_text(p, t->state);
	p_i64(p, t->percent);
	p_i64(p, (int64_t)t->done_bytes);
	p_i64(p, (int64_t)t->total_bytes);
	p_text(p, t->error);
	p_i64(p, t->created_ms);
	p_i64(p, t->finished_ms);
	p_text(p, t->host);
}

static int pg_task_insert(struct store *st, struct store_task *t)
{
	struct params p = {0};

	task_params(&p, t);
	return insert(st,
		      "INSERT INTO tasks (kind, object, state, percent, done_bytes, "
		      "total_bytes, error, created_ms, finished_ms, host) "
		      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
		      &p, &t->id);
}

static int pg_task_update(struct store *st, const struct store_task *t)
{
	struct params p = {0};

	task_params(&p, t);
	p_i64(&p, t->id);
	return command(st,
		       "UPDATE tasks SET kind = $1, object = $2, state = $3, percent = $4, "
		       "done_bytes = $5, total_bytes = $6, error = $7, created_ms = $8, "
		       "finished_ms = $9, host = $10 WHERE id = $11",
		       &p, true);
}

static int pg_task_get(struct store *st, int64_t id, struct store_task *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_i64(&p, id);
	return get_one(st, "SELECT " TASK_COLS " FROM tasks WHERE id = $1", &p, read_task, out);
}

static int pg_task_list(struct store *st, struct store_task **out, size_t *n)
{
	return rows_plain(st, "SELECT " TASK_COLS " FROM tasks ORDER BY id", NULL, sizeof(**out),
			  read_task, (void **)out, n);
}

/* --- Events ----------------------------------------------------------------------------- */

static int read_event(PGresult *r, int row, void *elem)
{
	struct store_event *ev = elem;

	ev->id = col_i64(r, row, 0);
	ev->time_ms = col_i64(r, row, 1);
	col_text(r, row, 2, ev->actor, sizeof(ev->actor));
	col_text(r, row, 3, ev->action, sizeof(ev->action));
	col_text(r, row, 4, ev->object, sizeof(ev->object));
	col_text(r, row, 5, ev->result, sizeof(ev->result));
	col_text(r, row, 6, ev->message, sizeof(ev->message));
	return 0;
}

static int pg_event_append(struct store *st, struct store_event *ev)
{
	struct params p = {0};

	p_i64(&p, ev->time_ms);
	p_text(&p, ev->actor);
	p_text(&p, ev->action);
	p_text(&p, ev->object);
	p_text(&p, ev->result);
	p_text(&p, ev->message);
	return insert(st,
		      "INSERT INTO events (time_ms, actor, action, object, result, message) "
		      "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
		      &p, &ev->id);
}

static int pg_event_list(struct store *st, int64_t after, unsigned limit, struct store_event **out,
			 size_t *n)
{
	struct params p = {0};

	p_i64(&p, after);
	p_i64(&p, limit);
	return rows_plain(st,
			  "SELECT id, time_ms, actor, action, object, result, message "
			  "FROM events WHERE id > $1 ORDER BY id LIMIT $2",
			  &p, sizeof(**out), read_event, (void **)out, n);
}

/* --- Hosts and the leader lease --------------------------------------------------------- */

#define HOST_COLS "id, name, address, cpus, memory_mib, started_ms, heartbeat_ms"

static int read_host(PGresult *r, int row, void *elem)
{
	struct store_host *h = elem;

	h->id = col_i64(r, row, 0);
	col_text(r, row, 1, h->name, sizeof(h->name));
	col_text(r, row, 2, h->address, sizeof(h->address));
	h->cpus = (unsigned)col_i64(r, row, 3);
	h->memory_mib = (uint64_t)col_i64(r, row, 4);
	h->started_ms = col_i64(r, row, 5);
	h->heartbeat_ms = col_i64(r, row, 6);
	h->age_ms = col_i64(r, row, 7);
	h->maintenance = col_i64(r, row, 8) != 0;
	col_text(r, row, 9, h->cpu_flags, sizeof(h->cpu_flags));
	h->contact_since_ms = col_i64(r, row, 10);
	h->contact_ms = col_i64(r, row, 11);
	return 0;
}

static int pg_host_register(struct store *st, struct store_host *h)
{
	struct params p = {0};

	p_text(&p, h->name);
	p_text(&p, h->address);
	p_i64(&p, h->cpus);
	p_i64(&p, (int64_t)h->memory_mib);
	p_text(&p, h->cpu_flags);
	return get_one(st,
		       "INSERT INTO hosts (name, address, cpus, memory_mib, started_ms, "
		       "heartbeat_ms, cpu_flags, contact_since_ms) SELECT $1, $2, $3, $4, "
		       "c.now, c.now, $5, c.now FROM (SELECT " NOW_MS " AS now) c "
		       "ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, "
		       "cpus = EXCLUDED.cpus, memory_mib = EXCLUDED.memory_mib, "
		       "started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms, "
		       "cpu_flags = EXCLUDED.cpu_flags, "
		       "contact_since_ms = EXCLUDED.contact_since_ms "
		       "RETURNING " HOST_COLS ", 0, maintenance, cpu_flags, contact_since_ms, 0",
		       &p, read_host, h);
}

static int pg_host_heartbeat(struct store *st, const char *name, int64_t gap_ms)
{
	struct params p = {0};

	p_text(&p, name);
	p_i64(&p, gap_ms);
	/* One clock reading for both columns (clock_timestamp() moves within a statement). */
	return command(st,
		       "UPDATE hosts SET contact_since_ms = CASE WHEN heartbeat_ms > 0 AND "
		       "contact_since_ms > 0 AND c.now - heartbeat_ms <= $2 THEN contact_since_ms "
		       "ELSE c.now END, heartbeat_ms = c.now FROM (SELECT " NOW_MS " AS now) c "
		       "WHERE name = $1", &p, true);
}

static int pg_host_leave(struct store *st, const char *name)
{
	struct params p = {0};

	p_text(&p, name);
	return command(st, "UPDATE hosts SET heartbeat_ms = 0 WHERE name = $1", &p, true);
}

static int pg_host_set_maintenance(struct store *st, const char *name, bool on)
{
	struct params p = {0};

	p_i64(&p, on);
	p_text(&p, name);
	return command(st, "UPDATE hosts SET maintenance = $1 WHERE name = $2", &p, true);
}

static int pg_host_list(struct store *st, struct store_host **out, size_t *n)
{
	return rows_plain(st,
			  "SELECT " HOST_COLS ", c.now - heartbeat_ms, maintenance, cpu_flags, "
			  "contact_since_ms, CASE WHEN contact_since_ms > 0 THEN "
			  "c.now - contact_since_ms ELSE 0 END "
			  "FROM hosts, (SELECT " NOW_MS " AS now) c ORDER BY name",
			  NULL, sizeof(**out), read_host, (void **)out, n);
}

static int read_leader(PGresult *r, int row, void *elem)
{
	struct store_leader *l = elem;

	col_text(r, row, 0, l->host, sizeof(l->host));
	l->term = col_i64(r, row, 1);
	l->expires_in_ms = col_i64(r, row, 2);
	return 0;
}

static int pg_leader_get(struct store *st, struct store_leader *out)
{
	memset(out, 0, sizeof(*out));
	return get_one(st, "SELECT host, term, expires_ms - " NOW_MS " FROM leader WHERE id = 1",
		       NULL, read_leader, out);
}

static int pg_leader_claim(struct store *st, const char *host, int64_t lease_ms,
			   struct store_leader *out)
{
	struct params p = {0};
	int ret;

	p_text(&p, host);
	p_i64(&p, lease_ms);
	/* One statement: renew an unexpired lease of ours (same term), take a lapsed one
	 * (term + 1). A concurrent claimant waits for the row and re-checks the condition
	 * on the newest version (READ COMMITTED). One "now" for the whole statement. */
	memset(out, 0, sizeof(*out));
	ret = get_one(st,
		      "WITH c AS (SELECT " NOW_MS " AS now), u AS (UPDATE leader SET "
		      "term = CASE WHEN leader.host = $1 AND leader.expires_ms > c.now "
		      "THEN leader.term ELSE leader.term + 1 END, host = $1, "
		      "expires_ms = c.now + $2 FROM c WHERE leader.id = 1 AND "
		      "((leader.host = $1 AND leader.expires_ms > c.now) OR "
		      "leader.expires_ms <= c.now) RETURNING leader.host, leader.term, "
		      "leader.expires_ms - c.now) SELECT * FROM u",
		      &p, read_leader, out);
	if (ret == -ENOENT) /* not granted: who holds it */
		ret = pg_leader_get(st, out);
	return ret;
}

static int pg_leader_release(struct store *st, const char *host)
{
	struct params p = {0};

	p_text(&p, host);
	return command(st,
		       "UPDATE leader SET expires_ms = " NOW_MS " WHERE id = 1 AND host = $1 "
		       "AND expires_ms > " NOW_MS,
		       &p, false);
}

/* --- Migrations between hosts ---------------------------------------------------------- */

#define MIGRATION_COLS                                                                             \
	"vm_id, vm, source, destination, epoch, phase, listen, started_ms, updated_ms"

static int read_migration(PGresult *r, int row, void *elem)
{
	struct store_migration *m = elem;

	m->vm_id = col_i64(r, row, 0);
	col_text(r, row, 1, m->vm, sizeof(m->vm));
	col_text(r, row, 2, m->source, sizeof(m->source));
	col_text(r, row, 3, m->destination, sizeof(m->destination));
	m->epoch = col_i64(r, row, 4);
	col_text(r, row, 5, m->phase, sizeof(m->phase));
	col_text(r, row, 6, m->listen, sizeof(m->listen));
	m->started_ms = col_i64(r, row, 7);
	m->updated_ms = col_i64(r, row, 8);
	return 0;
}

static int pg_migration_insert(struct store *st, const struct store_migration *m)
{
	struct params p = {0};

	p_i64(&p, m->vm_id);
	p_text(&p, m->vm);
	p_text(&p, m->source);
	p_text(&p, m->destination);
	p_i64(&p, m->epoch);
	p_text(&p, m->phase);
	p_text(&p, m->listen);
	p_i64(&p, m->started_ms);
	p_i64(&p, m->updated_ms);
	return command(st, "INSERT INTO migrations (" MIGRATION_COLS ") "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		       &p, false);
}

/* Under READ COMMITTED, an UPDATE that waited for another's row lock checks its WHERE
 * again on the row that one committed: of two deciding at once, the second sees the
 * first's phase and changes nothing. */
static int pg_migration_update(struct store *st, const struct store_migration *m,
			       const char *from)
{
	struct params p = {0};
	int ret;

	p_text(&p, m->phase);
	p_text(&p, m->listen);
	p_i64(&p, m->updated_ms);
	p_i64(&p, m->vm_id);
	p_text(&p, from);
	ret = command(st, "UPDATE migrations SET phase = $1, listen = $2, updated_ms = $3 "
			  "WHERE vm_id = $4 AND phase = $5",
		      &p, true);
	return ret == -ENOENT ? gone_or_stale(st, "SELECT 1 FROM migrations WHERE vm_id = $1",
					       m->vm_id)
			      : ret;
}

static int pg_migration_get(struct store *st, int64_t vm_id, struct store_migration *out)
{
	struct params p = {0};

	memset(out, 0, sizeof(*out));
	p_i64(&p, vm_id);
	return get_one(st, "SELECT " MIGRATION_COLS " FROM migrations WHERE vm_id = $1", &p,
		       read_migration, out);
}

static int pg_migration_list(struct store *st, struct store_migration **out, size_t *n)
{
	return rows_plain(st, "SELECT " MIGRATION_COLS " FROM migrations ORDER BY vm_id", NULL,
			  sizeof(**out), read_migration, (void **)out, n);
}

static int pg_migration_delete(struct store *st, int64_t vm_id)
{
	return by_id(st, "DELETE FROM migrations WHERE vm_id = $1", vm_id);
}

static int pg_placement_lock(struct store *st)
{
	/* A transaction lock: released by COMMIT or ROLLBACK, never leaked. */
	return command(st, "SELECT pg_advisory_xact_lock(123865463566441)", NULL, false);
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.schema_version = pg_schema_version,
	.vm_insert = pg_vm_insert,
	.vm_update = pg_vm_update,
	.vm_set_owner = pg_vm_set_owner,
	.vm_delete = pg_vm_delete,
	.vm_get = pg_vm_get,
	.vm_list = pg_vm_list,
	.image_insert = pg_image_insert,
	.image_update = pg_image_update,
	.image_delete = pg_image_delete,
	.image_get = pg_image_get,
	.image_list = pg_image_list,
	.device_list = pg_device_list,
	.device_insert = pg_device_insert,
	.device_delete = pg_device_delete,
	.device_move = pg_device_move,
	.network_insert = pg_network_insert,
	.network_update = pg_network_update,
	.network_delete = pg_network_delete,
	.network_get = pg_network_get,
	.network_list = pg_network_list,
	.token_insert = pg_token_insert,
	.token_delete = pg_token_delete,
	.token_get = pg_token_get,
	.token_find = pg_token_find,
	.token_list = pg_token_list,
	.task_insert = pg_task_insert,
	.task_update = pg_task_update,
	.task_get = pg_task_get,
	.task_list = pg_task_list,
	.event_append = pg_event_append,
	.event_list = pg_event_list,
	.host_register = pg_host_register,
	.host_heartbeat = pg_host_heartbeat,
	.host_list = pg_host_list,
	.host_set_maintenance = pg_host_set_maintenance,
	.host_leave = pg_host_leave,
	.leader_claim = pg_leader_claim,
	.leader_release = pg_leader_release,
	.leader_get = pg_leader_get,
	.migration_insert = pg_migration_insert,
	.migration_update = pg_migration_update,
	.migration_get = pg_migration_get,
	.migration_list = pg_migration_list,
	.migration_delete = pg_migration_delete,
	.placement_lock = pg_placement_lock,
};
