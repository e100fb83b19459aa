// SPDX-License-Identifier: MIT
/*
 * The web console's users, sessions and log-in rate limit.
 *
 * Users live in DIR/web.db (SQLite, WAL; schema in PRAGMA user_version), beside the
 * inventory rather than in it, so that the inventory's store_ops (SQLite here,
 * PostgreSQL in a cluster) stay the daemon's alone. A user is a name, a role (admin,
 * operator, viewer: the API's, checked by pd_role_allows) and libsodium's Argon2id
 * hash string of the password (salted, 64 MiB, crypto_pwhash_str). The password is
 * never stored nor logged.
 *
 * Sessions are in memory (a restart logs everyone out): the cookie carries 32
 * random bytes; only their BLAKE2b hash is kept, with the user, a CSRF token and
 * the times. A session ends after idle_s without a request, WEB_LIFETIME_S after
 * the log-in, at log-out, or when its user is deleted (the role is read again from
 * web.db on every request, so a role change applies at once).
 *
 * Lock: u->lock guards the sessions, the rate-limit table and the database handle.
 * Password hashing runs outside it.
 */
#include "web.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "log.h"
#include "util.h"

#define SESSIONS_MAX 1024
#define CLIENTS_MAX 256

struct session_slot {
	bool used;
	uint8_t key[32];	/* BLAKE2b of the cookie's id */
	struct web_session s;
};

struct login_fails {
	char client[64];	/* the client's address, "" = free slot */
	unsigned fails;
	int64_t window_ms;	/* monotonic start of the window */
};

struct web_users {
	pthread_mutex_t lock;
	sqlite3 *db;
	unsigned idle_s;
	char dummy_hash[crypto_pwhash_STRBYTES]; /* verified against for unknown users */
	struct session_slot sessions[SESSIONS_MAX];
	struct login_fails fails[CLIENTS_MAX];
};

static const char *const schema[] = {
	/* 1 */
	"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),"
	" hash TEXT NOT NULL, created_ms INTEGER NOT NULL)",
};

static bool role_valid(const char *role)
{
	return !strcmp(role, "admin") || !strcmp(role, "operator") || !strcmp(role, "viewer");
}

bool web_secret_equal(const char *a, const char *b)
{
	size_t n = strlen(a);

	return n == strlen(b) && n && sodium_memcmp(a, b, n) == 0;
}

static int migrate(sqlite3 *db, const char *path)
{
	sqlite3_stmt *s;
	int v = -1;
	size_t i;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		goto out_err;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (v < 0)
		goto out_err;
	if ((size_t)v > sizeof(schema) / sizeof(schema[0])) {
		log_error("%s: schema version %d is newer than this plinthd's (%zu)", path, v,
			  sizeof(schema) / sizeof(schema[0]));
		return -EINVAL;
	}
	for (i = (size_t)v; i < sizeof(schema) / sizeof(schema[0]); i++) {
		char setv[48];

		snprintf(setv, sizeof(setv), "PRAGMA user_version = %zu", i + 1);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			goto out_err;
		if (sqlite3_exec(db, schema[i], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, setv, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			log_error("%s: schema step %zu: %s", path, i + 1, sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -EIO;
		}
	}
	return 0;

out_err:
	log_error("%s: %s", path, sqlite3_errmsg(db));
	return -EIO;
}

struct web_users *web_users_open(const char *dir)
{
	struct web_users *u;
	char path[PD_DIR_MAX + 16];

	if (sodium_init() < 0) {
		log_error("web: libsodium failed to initialise");
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		log_error("out of memory");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/web.db", dir);
	if (sqlite3_open_v2(path, &u->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		log_error("%s: %s", path, u->db ? sqlite3_errmsg(u->db) : "cannot open");
		goto out_close;
	}
	chmod(path, 0600);
	sqlite3_busy_timeout(u->db, 5000);
	if (sqlite3_exec(u->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    migrate(u->db, path))
		goto out_close;
	pthread_mutex_init(&u->lock, NULL);
	u->idle_s = WEB_IDLE_DEFAULT_S;
	return u;

out_close:
	sqlite3_close(u->db);
	free(u);
	return NULL;
}

void web_users_close(struct web_users *u)
{
	if (!u)
		return;
	sqlite3_close(u->db);
	pthread_mutex_destroy(&u->lock);
	sodium_memzero(u, sizeof(*u));
	free(u);
}

void web_users_set_idle(struct web_users *u, unsigned idle_s)
{
	u->idle_s = idle_s;
}

/* name's role and hash (either may be NULL); under u->lock. 0, -ENOENT or -EIO. */
static int user_load(struct web_users *u, const char *name, char *role, char *hash)
{
	sqlite3_stmt *s;
	int ret = -ENOENT, rc;

	if (sqlite3_prepare_v2(u->db, "SELECT role, hash FROM users WHERE name = ?", -1, &s,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (role)
			snprintf(role, WEB_ROLE_MAX, "%s", sqlite3_column_text(s, 0));
		if (hash)
			snprintf(hash, crypto_pwhash_STRBYTES, "%s", sqlite3_column_text(s, 1));
		ret = 0;
	} else if (rc != SQLITE_DONE) {
		log_error("web.db: %s", sqlite3_errmsg(u->db));
		ret = -EIO;
	}
	sqlite3_finalize(s);
	return ret;
}

int web_user_role(struct web_users *u, const char *name, char *role)
{
	int ret;

	pthread_mutex_lock(&u->lock);
	ret = user_load(u, name, role, NULL);
	pthread_mutex_unlock(&u->lock);
	return ret;
}

static int hash_password(const char *password, char out[crypto_pwhash_STRBYTES])
{
	if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE))
		return -ENOMEM;
	return 0;
}

int web_user_verify(struct web_users *u, const char *name, const char *password, char *role)
{
	char hash[crypto_pwhash_STRBYTES], dummy[crypto_pwhash_STRBYTES];
	int ret;

	pthread_mutex_lock(&u->lock);
	ret = user_load(u, name, role, hash);
	snprintf(dummy, sizeof(dummy), "%s", u->dummy_hash);
	pthread_mutex_unlock(&u->lock);
	if (ret == -EIO)
		return ret;
	if (ret) {
		/* Spend the same time as for a real user: names are not revealed by timing. */
		if (!dummy[0]) {
			uint8_t r[16];
			char pw[33];

			randombytes_buf(r, sizeof(r));
			sodium_bin2hex(pw, sizeof(pw), r, sizeof(r));
			if (hash_password(pw, dummy))
				return -EIO;
			pthread_mutex_lock(&u->lock);
			snprintf(u->dummy_hash, sizeof(u->dummy_hash), "%s", dummy);
			pthread_mutex_unlock(&u->lock);
		}
		if (crypto_pwhash_str_verify(dummy, password, strlen(password)) == 0)
			log_error("web: a random password matched"); /* cannot happen */
		return -EACCES;
	}
	if (crypto_pwhash_str_verify(hash, password, strlen(password)))
		return -EACCES;
	return 0;
}

int web_parse_login(const char *body, size_t len, char user[STORE_NAME_MAX],
		    char password[WEB_PASSWORD_MAX + 1])
{
	json_t *o = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	json_t *ju, *jp;
	int ret = -EINVAL;

	if (!json_is_object(o) || json_object_size(o) != 2)
		goto out;
	ju = json_object_get(o, "user");
	jp = json_object_get(o, "password");
	if (!json_is_string(ju) || !json_is_string(jp))
		goto out;
	ret = -EACCES; /* well-formed: from here on, a log-in that fails */
	if (json_string_length(ju) >= STORE_NAME_MAX || json_string_length(jp) > WEB_PASSWORD_MAX)
		goto out;
	/* An embedded NUL would cut the string short: refuse it rather than check a prefix. */
	if (strlen(json_string_value(ju)) != json_string_length(ju) ||
	    strlen(json_string_value(jp)) != json_string_length(jp))
		goto out;
	if (!pd_name_valid(json_string_value(ju)))
		goto out;
	snprintf(user, STORE_NAME_MAX, "%s", json_string_value(ju));
	snprintf(password, WEB_PASSWORD_MAX + 1, "%s", json_string_value(jp));
	ret = 0;
out:
	json_decref(o);
	return ret;
}

/* --- sessions ------------------------------------------------------------------------ */

static void session_key(const char *id, uint8_t key[32])
{
	crypto_generichash(key, 32, (const uint8_t *)id, strlen(id), NULL, 0);
}

void web_random_hex(char out[WEB_TOKEN_HEX])
{
	uint8_t b[32];

	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(out, WEB_TOKEN_HEX, b, sizeof(b));
}

static bool session_live(const struct web_users *u, const struct session_slot *sl, int64_t now)
{
	return sl->used && now - sl->s.seen_ms < (int64_t)u->idle_s * 1000 &&
	       now - sl->s.created_ms < (int64_t)WEB_LIFETIME_S * 1000;
}

int web_session_new(struct web_users *u, const char *user, char id[WEB_TOKEN_HEX],
		    struct web_session *out)
{
	int64_t now = pd_mono_ms();
	struct session_slot *free_slot = NULL, *oldest = NULL;
	size_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < SESSIONS_MAX; i++) {
		struct session_slot *sl = &u->sessions[i];

		if (!session_live(u, sl, now)) {
			sl->used = false;
			if (!free_slot)
				free_slot = sl;
		} else if (!oldest || sl->s.seen_ms < oldest->s.seen_ms) {
			oldest = sl;
		}
	}
	if (!free_slot)
		free_slot = oldest; /* full: the least recently used session ends */
	web_random_hex(id);
	session_key(id, free_slot->key);
	memset(&free_slot->s, 0, sizeof(free_slot->s));
	snprintf(free_slot->s.user, sizeof(free_slot->s.user), "%s", user);
	web_random_hex(free_slot->s.csrf);
	free_slot->s.created_ms = now;
	free_slot->s.seen_ms = now;
	free_slot->used = true;
	if (user_load(u, user, free_slot->s.role, NULL)) {
		free_slot->used = false;
		pthread_mutex_unlock(&u->lock);
		return -EACCES;
	}
	*out = free_slot->s;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static struct session_slot *session_find(struct web_users *u, const char *id)
{
	uint8_t key[32];
	size_t i;

	if (!id || strlen(id) != WEB_TOKEN_HEX - 1)
		return NULL;
	session_key(id, key);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (u->sessions[i].used && !memcmp(u->sessions[i].key, key, sizeof(key)))
			return &u->sessions[i];
	return NULL;
}

int web_session_get(struct web_users *u, const char *id, bool touch, struct web_session *out)
{
	int64_t now = pd_mono_ms();
	struct session_slot *sl;
	int ret = -EACCES;

	pthread_mutex_lock(&u->lock);
	sl = session_find(u, id);
	if (sl && !session_live(u, sl, now)) {
		sl->used = false;
		sl = NULL;
	}
	if (sl) {
		ret = user_load(u, sl->s.user, sl->s.role, NULL);
		if (ret == -ENOENT) {
			sl->used = false; /* the user was deleted */
			ret = -EACCES;
		} else if (!ret) {
			if (touch)
				sl->s.seen_ms = now;
			*out = sl->s;
		}
	}
	pthread_mutex_unlock(&u->lock);
	return ret;
}

void web_session_end(struct web_users *u, const char *id)
{
	struct session_slot *sl;

	pthread_mutex_lock(&u->lock);
	sl = session_find(u, id);
	if (sl)
		sodium_memzero(sl, sizeof(*sl));
	pthread_mutex_unlock(&u->lock);
}

/* --- log-in rate limit ----------------------------------------------------------------- */

static struct login_fails *fails_find(struct web_users *u, const char *client, bool make)
{
	int64_t now = pd_mono_ms();
	struct login_fails *oldest = NULL;
	size_t i;

	for (i = 0; i < CLIENTS_MAX; i++) {
		struct login_fails *f = &u->fails[i];

		if (f->client[0] && now - f->window_ms >= WEB_LOGIN_WINDOW_S * 1000)
			f->client[0] = '\0'; /* its window is over */
		if (f->client[0] && !strcmp(f->client, client))
			return f;
		if (!oldest || !f->client[0] || f->window_ms < oldest->window_ms)
			if (!oldest || oldest->client[0])
				oldest = f;
	}
	if (!make)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->client, sizeof(oldest->client), "%s", client);
	oldest->window_ms = now;
	return oldest;
}

bool web_login_allowed(struct web_users *u, const char *client, unsigned *wait_s)
{
	struct login_fails *f;
	bool ok = true;

	pthread_mutex_lock(&u->lock);
	f = fails_find(u, client, false);
	if (f && f->fails >= WEB_LOGIN_FAILS) {
		int64_t left = WEB_LOGIN_WINDOW_S * 1000 - (pd_mono_ms() - f->window_ms);

		*wait_s = (unsigned)((left + 999) / 1000);
		ok = false;
	}
	pthread_mutex_unlock(&u->lock);
	return ok;
}

void web_login_failed(struct web_users *u, const char *client)
{
	struct login_fails *f;

	pthread_mutex_lock(&u->lock);
	f = fails_find(u, client, true);
	f->fails++;
	pthread_mutex_unlock(&u->lock);
}

/* --- changes ---------------------------------------------------------------------------- */

/* One statement with up to three text parameters. 0, -ENOENT (no row changed),
 * -EEXIST (a unique name taken) or -EIO. */
static int user_exec(struct web_users *u, const char *sql, const char *a, const char *b,
		     const char *c)
{
	sqlite3_stmt *s;
	int rc;

	pthread_mutex_lock(&u->lock);
	if (sqlite3_prepare_v2(u->db, sql, -1, &s, NULL) != SQLITE_OK)
		goto out_err;
	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	if (c)
		sqlite3_bind_text(s, 3, c, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT) {
		pthread_mutex_unlock(&u->lock);
		return -EEXIST;
	}
	if (rc != SQLITE_DONE)
		goto out_err;
	rc = sqlite3_changes(u->db);
	pthread_mutex_unlock(&u->lock);
	return rc ? 0 : -ENOENT;

out_err:
	log_error("web.db: %s", sqlite3_errmsg(u->db));
	pthread_mutex_unlock(&u->lock);
	return -EIO;
}

int web_user_add(struct web_users *u, const char *name, const char *role, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	int ret;

	if (!pd_name_valid(name) || !role_valid(role) || strlen(password) < WEB_PASSWORD_MIN ||
	    strlen(password) > WEB_PASSWORD_MAX)
		return -EINVAL;
	if (hash_password(password, hash))
		return -ENOMEM;
	ret = user_exec(u,
			"INSERT INTO users (name, role, hash, created_ms) VALUES (?1, ?2, ?3, "
			"CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
			name, role, hash);
	sodium_memzero(hash, sizeof(hash));
	return ret;
}

int web_user_passwd(struct web_users *u, const char *name, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	int ret;

	if (strlen(password) < WEB_PASSWORD_MIN || strlen(password) > WEB_PASSWORD_MAX)
		return -EINVAL;
	if (hash_password(password, hash))
		return -ENOMEM;
	ret = user_exec(u, "UPDATE users SET hash = ?2 WHERE name = ?1", name, hash, NULL);
	sodium_memzero(hash, sizeof(hash));
	return ret;
}

int web_user_set_role(struct web_users *u, const char *name, const char *role)
{
	if (!role_valid(role))
		return -EINVAL;
	return user_exec(u, "UPDATE users SET role = ?2 WHERE name = ?1", name, role, NULL);
}

int web_user_delete(struct web_users *u, const char *name)
{
	return user_exec(u, "DELETE FROM users WHERE name = ?1", name, NULL, NULL);
}

/* --- plinthd user ... ------------------------------------------------------------------ */

static const char user_usage[] =
	"Usage: plinthd user add NAME --role admin|operator|viewer [--state-dir DIR]\n"
	"       plinthd user passwd NAME [--state-dir DIR]\n"
	"       plinthd user role NAME admin|operator|viewer [--state-dir DIR]\n"
	"       plinthd user delete NAME [--state-dir DIR]\n"
	"       plinthd user list [--state-dir DIR]\n"
	"\n"
	"Users of the web console (plinthd --web). add and passwd read the password from\n"
	"stdin (the first line; asked twice without echo on a terminal), 8 to 1024 bytes.\n";

/* Read the new password: from a terminal twice without echo, else stdin's first line. */
static int read_password(char *buf, size_t size)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	char again[WEB_PASSWORD_MAX + 2];
	size_t n;

	for (int round = 0; round < (tty ? 2 : 1); round++) {
		char *dst = round ? again : buf;
		size_t dsize = round ? sizeof(again) : size;

		if (tty) {
			fputs(round ? "Again: " : "Password: ", stderr);
			tcgetattr(STDIN_FILENO, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		}
		if (!fgets(dst, (int)dsize, stdin))
			dst[0] = '\0';
		if (tty) {
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
			fputc('\n', stderr);
		}
		n = strcspn(dst, "\r\n");
		if (n == strlen(dst) && n >= dsize - 1) {
			log_error("the password is longer than %d bytes", WEB_PASSWORD_MAX);
			return -EINVAL;
		}
		dst[n] = '\0';
	}
	if (tty && strcmp(buf, again)) {
		log_error("the two passwords differ; nothing changed");
		return -EINVAL;
	}
	sodium_memzero(again, sizeof(again));
	if (strlen(buf) < WEB_PASSWORD_MIN) {
		log_error("a password needs at least %d bytes; nothing changed", WEB_PASSWORD_MIN);
		return -EINVAL;
	}
	return 0;
}

/* Record a user change in the inventory's audit log, by the caller's uid. */
static void user_event(const char *dir, const char *action, const char *name, const char *msg)
{
	char db[PD_DIR_MAX + 32];
	struct store_event ev = {0};
	struct store *st;

	snprintf(db, sizeof(db), "%s/inventory.db", dir);
	st = store_sqlite_ops.open(db);
	if (!st)
		return;
	ev.time_ms = pd_now_ms();
	snprintf(ev.actor, sizeof(ev.actor), "uid %u", (unsigned)getuid());
	snprintf(ev.action, sizeof(ev.action), "%s", action);
	snprintf(ev.object, sizeof(ev.object), "%s", name);
	snprintf(ev.result, sizeof(ev.result), "ok");
	snprintf(ev.message, sizeof(ev.message), "%s", msg);
	store_sqlite_ops.event_append(st, &ev);
	store_sqlite_ops.close(st);
}

static int user_list(struct web_users *u)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(u->db, "SELECT name, role FROM users ORDER BY name", -1, &s,
			       NULL) != SQLITE_OK)
		return -EIO;
	printf("%-32s %s\n", "NAME", "ROLE");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		printf("%-32s %s\n", sqlite3_column_text(s, 0), sqlite3_column_text(s, 1));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int web_user_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"role", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = "/var/lib/plinth", *role = NULL, *verb, *name = NULL;
	char real[PATH_MAX], pw[WEB_PASSWORD_MAX + 2];
	struct web_users *u;
	int c, ret = 0;

	/* argv[0] is "user" */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case 'h':
			fputs(user_usage, stdout);
			return 0;
		default:
			fputs(user_usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(user_usage, stderr);
		return 2;
	}
	verb = argv[optind++];
	if (strcmp(verb, "list")) {
		if (optind >= argc) {
			log_error("user %s: which user? (plinthd user --help)", verb);
			return 2;
		}
		name = argv[optind++];
		if (!pd_name_valid(name)) {
			log_error("'%s' is not a valid user name (1 to 63 of A-Z a-z 0-9 _ . -, "
				  "starting with a letter or digit)", name);
			return 2;
		}
	}
	if (!strcmp(verb, "role") && optind < argc)
		role = argv[optind++];
	if (optind < argc) {
		log_error("unexpected argument '%s' (plinthd user --help)", argv[optind]);
		return 2;
	}
	if ((!strcmp(verb, "add") || !strcmp(verb, "role")) && (!role || !role_valid(role))) {
		log_error("user %s needs a role: admin, operator or viewer", verb);
		return 2;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("state directory %s: %s", dir, strerror(errno));
		return 1;
	}
	if (!realpath(dir, real) || strlen(real) >= PD_DIR_MAX) {
		log_error("state directory %s: not usable", dir);
		return 1;
	}
	u = web_users_open(real);
	if (!u)
		return 1;
	if (!strcmp(verb, "list")) {
		ret = user_list(u);
	} else if (!strcmp(verb, "add") || !strcmp(verb, "passwd")) {
		ret = read_password(pw, sizeof(pw));
		if (!ret)
			ret = !strcmp(verb, "add") ? web_user_add(u, name, role, pw)
						   : web_user_passwd(u, name, pw);
		sodium_memzero(pw, sizeof(pw));
	} else if (!strcmp(verb, "role")) {
		ret = web_user_set_role(u, name, role);
	} else if (!strcmp(verb, "delete")) {
		ret = web_user_delete(u, name);
	} else {
		log_error("unknown user verb '%s' (plinthd user --help)", verb);
		web_users_close(u);
		return 2;
	}
	if (ret == -EEXIST)
		log_error("a user named '%s' already exists", name);
	else if (ret == -ENOENT)
		log_error("no user named '%s'", name);
	else if (ret == -ENOMEM)
		log_error("cannot hash the password (out of memory?)");
	else if (ret == -EIO)
		log_error("the user database %s/web.db failed", real);
	if (!ret && name) {
		char action[32], msg[64];

		snprintf(action, sizeof(action), "user.%s", verb);
		snprintf(msg, sizeof(msg), "%s%s", role ? "role " : "", role ? role : "");
		user_event(real, action, name, msg);
		printf("user %s: %s\n", name,
		       !strcmp(verb, "add")	 ? "added"
		       : !strcmp(verb, "delete") ? "deleted"
						 : "changed");
	}
	web_users_close(u);
	return ret ? 1 : 0;
}
