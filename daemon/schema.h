/* SPDX-License-Identifier: MIT */
/*
 * The inventory's schema: one list of forward migrations for every store
 * (store_sqlite.c, store_pg.c), so both databases hold the same tables and
 * columns at the same version. Each step is written once in SQL both dialects
 * read, with one word that differs: @ID@, a table's generated 64-bit key.
 */
#ifndef PLINTH_DAEMON_SCHEMA_H
#define PLINTH_DAEMON_SCHEMA_H

enum store_dialect { STORE_DIALECT_SQLITE, STORE_DIALECT_PG };

/* The schema version this build writes (the number of steps). */
int store_schema_latest(void);

/* The SQL of step (1..latest) in dialect: malloc'd, the caller frees; NULL if out of
 * memory or no such step. */
char *store_schema_step(int step, enum store_dialect d);

#endif
