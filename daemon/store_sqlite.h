/* SPDX-License-Identifier: MIT */
/*
 * The SQLite store (store_sqlite_ops in store.h): one database file in WAL mode,
 * the schema versioned in PRAGMA user_version and brought forward by the numbered
 * migrations in store_sqlite.c, each in one transaction. A database whose version
 * is newer than this plinthd knows is refused (no downgrade).
 */
#ifndef PLINTH_DAEMON_STORE_SQLITE_H
#define PLINTH_DAEMON_STORE_SQLITE_H

#include <sqlite3.h>

/* The schema version this build writes. */
int store_sqlite_latest_version(void);

/*
 * Apply migrations to db until its user_version is target (<= latest): each step
 * in its own transaction. 0, -EPROTO for a database newer than this build, or
 * -EIO (logged). For tests: open() migrates to the latest.
 */
int store_sqlite_migrate(sqlite3 *db, int target);

#endif
