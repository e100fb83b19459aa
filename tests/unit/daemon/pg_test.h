/* SPDX-License-Identifier: MIT */
/*
 * A private PostgreSQL server for a daemon unit test program (tests/daemon/pg-server,
 * its path in PG_SERVER): started once by a group setup, a fresh database per test.
 * Without PostgreSQL's server installed, pg_test_start() fails with pg-server's one
 * line on stderr, and each PostgreSQL test fails in its setup (never a skip).
 */
#ifndef PLINTH_TESTS_PG_TEST_H
#define PLINTH_TESTS_PG_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

struct pg_test {
	char dir[64]; /* its data, log and socket */
	char port[16];
	unsigned next_db; /* databases made so far */
};

/* Run "CMD 'ARG'" (ARG: a path of ours), its output in out if given. */
static inline int pg_test_run(const char *cmd0, const char *arg, char *out, size_t size)
{
	char cmd[512];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s '%s'", cmd0, arg);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out) {
		n = fread(out, 1, size - 1, p);
		out[n] = '\0';
	}
	return pclose(p);
}

/* A started server (free with pg_test_stop), or NULL with the reason on stderr. */
static inline struct pg_test *pg_test_start(void)
{
	struct pg_test *pg = calloc(1, sizeof(*pg));
	char out[256], dir[64];

	if (!pg)
		return NULL;
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/plinthd-pg.XXXXXX");
	if (!mkdtemp(pg->dir)) {
		free(pg);
		return NULL;
	}
	if (pg_test_run(PG_SERVER " start", pg->dir, out, sizeof(out)) ||
	    sscanf(out, "%63s %15s", dir, pg->port) != 2) {
		fprintf(stderr, "# no PostgreSQL server for this test: its PostgreSQL tests "
				"fail in their setup (see the line above)\n");
		pg_test_run("rm -rf", pg->dir, NULL, 0);
		free(pg);
		return NULL;
	}
	return pg;
}

static inline void pg_test_stop(struct pg_test *pg)
{
	if (!pg)
		return;
	pg_test_run(PG_SERVER " stop", pg->dir, NULL, 0);
	pg_test_run("rm -rf", pg->dir, NULL, 0);
	free(pg);
}

/* Make a fresh database; its URI into uri. 0 or -1. */
static inline int pg_test_new_db(struct pg_test *pg, char *uri, size_t size)
{
	char admin[256], sql[64];
	PGconn *c;
	PGresult *r;
	int ok;

	snprintf(admin, sizeof(admin), "postgresql:///postgres?host=%s&port=%s&user=plinth",
		 pg->dir, pg->port);
	c = PQconnectdb(admin);
	snprintf(sql, sizeof(sql), "CREATE DATABASE t%u", ++pg->next_db);
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	PQfinish(c);
	snprintf(uri, size, "postgresql:///t%u?host=%s&port=%s&user=plinth", pg->next_db, pg->dir,
		 pg->port);
	return ok ? 0 : -1;
}

#endif
