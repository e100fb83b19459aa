/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL store (store_pg_ops in store.h): the cluster's shared inventory,
 * one connection per struct store (libpq, blocking), the schema of schema.c
 * versioned in the table plinth_schema and brought forward under an advisory
 * transaction lock, so that several plinthd starting at once migrate it once.
 * A database whose version is newer than this build is refused.
 */
#ifndef PLINTH_DAEMON_STORE_PG_H
#define PLINTH_DAEMON_STORE_PG_H

#include <libpq-fe.h>

/*
 * Apply migrations to the database of conn until its version is target (<= latest),
 * each step in its own transaction. 0, -EPROTO for a database newer than this
 * build, or -EIO (logged). Silences the server's notices on conn. For tests:
 * open() migrates to the latest.
 */
int store_pg_migrate(PGconn *conn, int target);

#endif
