// SPDX-License-Identifier: MIT
/* Unit tests of the web console's users and sessions (daemon/web_users.c): passwords
 * checked against salted Argon2id hashes (never stored in clear), wrong and unknown
 * users refused alike, roles read again on every request, sessions that end when idle,
 * at log-out or when their user goes, the log-in rate limit per address, and the
 * schema kept across reopening. */
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

#include "web.h"

struct fixture {
	char dir[64];
	struct web_users *u;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/plinthd-web.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->u = web_users_open(f->dir);
	assert_non_null(f->u);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	web_users_close(f->u);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_passwords(void **state)
{
	struct fixture *f = *state;
	char role[WEB_ROLE_MAX] = "", cmd[200];

	assert_int_equal(web_user_add(f->u, "alice", "operator", "correct horse"), 0);
	assert_int_equal(web_user_add(f->u, "alice", "admin", "another one"), -EEXIST);
	assert_int_equal(web_user_add(f->u, "bob", "admin", "short"), -EINVAL);
	assert_int_equal(web_user_add(f->u, "bob", "root", "long enough"), -EINVAL);
	assert_int_equal(web_user_add(f->u, "-bob", "admin", "long enough"), -EINVAL);
	assert_int_equal(web_user_verify(f->u, "alice", "correct horse", role), 0);
	assert_string_equal(role, "operator");
	assert_int_equal(web_user_verify(f->u, "alice", "correct horsE", role), -EACCES);
	assert_int_equal(web_user_verify(f->u, "alice", "", role), -EACCES);
	assert_int_equal(web_user_verify(f->u, "nobody", "correct horse", role), -EACCES);
	/* The database holds a salted Argon2id string, never the password. */
	snprintf(cmd, sizeof(cmd), "grep -qa 'correct horse' '%s'/web.db*", f->dir);
	assert_int_not_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "grep -qa 'argon2id' '%s'/web.db*", f->dir);
	assert_int_equal(system(cmd), 0);
	/* A new password replaces the old one. */
	assert_int_equal(web_user_passwd(f->u, "alice", "battery staple"), 0);
	assert_int_equal(web_user_verify(f->u, "alice", "correct horse", role), -EACCES);
	assert_int_equal(web_user_verify(f->u, "alice", "battery staple", role), 0);
	assert_int_equal(web_user_passwd(f->u, "nobody", "battery staple"), -ENOENT);
	/* Kept across reopening. */
	web_users_close(f->u);
	f->u = web_users_open(f->dir);
	assert_non_null(f->u);
	assert_int_equal(web_user_verify(f->u, "alice", "battery staple", role), 0);
}

static void test_sessions(void **state)
{
	struct fixture *f = *state;
	char id[WEB_TOKEN_HEX], id2[WEB_TOKEN_HEX], forged[WEB_TOKEN_HEX];
	struct web_session s, s2;

	assert_int_equal(web_user_add(f->u, "carol", "viewer", "password1"), 0);
	assert_int_equal(web_session_new(f->u, "carol", id, &s), 0);
	assert_int_equal(strlen(id), WEB_TOKEN_HEX - 1);
	assert_string_equal(s.role, "viewer");
	assert_int_equal(web_session_new(f->u, "carol", id2, &s2), 0);
	assert_string_not_equal(id, id2);
	assert_string_not_equal(s.csrf, s2.csrf);
	assert_int_equal(web_session_get(f->u, id, true, &s2), 0);
	assert_string_equal(s2.user, "carol");
	assert_string_equal(s2.csrf, s.csrf);
	/* Made-up, truncated or missing ids are nobody's. */
	snprintf(forged, sizeof(forged), "%s", id);
	forged[0] = forged[0] == 'a' ? 'b' : 'a';
	assert_int_equal(web_session_get(f->u, forged, true, &s2), -EACCES);
	assert_int_equal(web_session_get(f->u, "abc", true, &s2), -EACCES);
	assert_int_equal(web_session_get(f->u, NULL, true, &s2), -EACCES);
	/* A role change applies to the live session at once. */
	assert_int_equal(web_user_set_role(f->u, "carol", "operator"), 0);
	assert_int_equal(web_session_get(f->u, id, true, &s2), 0);
	assert_string_equal(s2.role, "operator");
	/* Log-out ends one session, not the other. */
	web_session_end(f->u, id2);
	assert_int_equal(web_session_get(f->u, id2, true, &s2), -EACCES);
	assert_int_equal(web_session_get(f->u, id, true, &s2), 0);
	/* Deleting the user ends its sessions. */
	assert_int_equal(web_user_delete(f->u, "carol"), 0);
	assert_int_equal(web_session_get(f->u, id, true, &s2), -EACCES);
	assert_int_equal(web_user_delete(f->u, "carol"), -ENOENT);
}

static void test_idle(void **state)
{
	struct fixture *f = *state;
	char id[WEB_TOKEN_HEX];
	struct web_session s;

	assert_int_equal(web_user_add(f->u, "dave", "admin", "password1"), 0);
	web_users_set_idle(f->u, 1);
	assert_int_equal(web_session_new(f->u, "dave", id, &s), 0);
	usleep(600 * 1000);
	assert_int_equal(web_session_get(f->u, id, true, &s), 0); /* activity: 1 s more */
	usleep(600 * 1000);
	assert_int_equal(web_session_get(f->u, id, false, &s), 0); /* not activity */
	usleep(600 * 1000);
	assert_int_equal(web_session_get(f->u, id, true, &s), -EACCES);
}

static void test_rate_limit(void **state)
{
	struct fixture *f = *state;
	unsigned wait_s = 0, i;

	for (i = 0; i < WEB_LOGIN_FAILS; i++) {
		assert_true(web_login_allowed(f->u, "192.0.2.1", &wait_s));
		web_login_failed(f->u, "192.0.2.1");
	}
	assert_false(web_login_allowed(f->u, "192.0.2.1", &wait_s));
	assert_true(wait_s >= 1 && wait_s <= WEB_LOGIN_WINDOW_S);
	assert_true(web_login_allowed(f->u, "192.0.2.2", &wait_s)); /* another address */
	/* Many addresses do not push the blocked one out of the table early... */
	for (i = 0; i < 100; i++) {
		char a[32];

		snprintf(a, sizeof(a), "198.51.100.%u", i);
		web_login_failed(f->u, a);
	}
	assert_false(web_login_allowed(f->u, "192.0.2.1", &wait_s));
}

static void test_parse_login(void **state)
{
	char user[STORE_NAME_MAX], pw[WEB_PASSWORD_MAX + 1], big[WEB_PASSWORD_MAX + 64];
	const char *ok = "{\"user\": \"alice\", \"password\": \"p\\u00e9ss word\"}";

	assert_int_equal(web_parse_login(ok, strlen(ok), user, pw), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(pw, "p\xc3\xa9ss word");
#define PARSE(text) web_parse_login(text, strlen(text), user, pw)
	assert_int_equal(PARSE("{\"user\": \"alice\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"user\": \"a\", \"password\": \"x\", \"role\": \"admin\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"user\": \"a\", \"user\": \"b\", \"password\": \"x\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"user\": 1, \"password\": \"x\"}"), -EINVAL);
	assert_int_equal(PARSE("[\"alice\", \"x\"]"), -EINVAL);
	assert_int_equal(PARSE("{\"user\": \"alice\", \"password\": \"x\""), -EINVAL);
	assert_int_equal(web_parse_login(NULL, 0, user, pw), -EINVAL);
	/* Well-formed, but no user could match: a failed log-in. */
	assert_int_equal(PARSE("{\"user\": \"../etc\", \"password\": \"x\"}"), -EACCES);
	/* A NUL inside a string is refused outright (never a password's prefix checked). */
	assert_int_equal(PARSE("{\"user\": \"alice\", \"password\": \"ab\\u0000cd\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"user\": \"al\\u0000ice\", \"password\": \"abcd\"}"), -EINVAL);
	snprintf(big, sizeof(big), "{\"user\": \"alice\", \"password\": \"%0*d\"}",
		 WEB_PASSWORD_MAX + 1, 0);
	assert_int_equal(PARSE(big), -EACCES);
#undef PARSE
}

/* The console's WebSocket handshake (web_ws.c): RFC 6455's own example, and refusals. */
static void test_ws_handshake(void **state)
{
	char accept[WEB_WS_ACCEPT_LEN];

	(void)state;
	assert_int_equal(web_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept), 0);
	assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_int_equal(web_ws_accept_key(NULL, accept), -EINVAL);
	assert_int_equal(web_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", accept), -EINVAL);
	assert_int_equal(web_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", accept), -EINVAL);
	assert_int_equal(web_ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", accept), -EINVAL);
	assert_true(web_ws_header_has_token("keep-alive, Upgrade", "upgrade"));
	assert_true(web_ws_header_has_token("upgrade", "upgrade"));
	assert_false(web_ws_header_has_token("upgrades, keep-alive", "upgrade"));
	assert_false(web_ws_header_has_token("", "upgrade"));
	assert_false(web_ws_header_has_token(NULL, "upgrade"));
	assert_true(web_accepts_gzip("gzip, deflate, br, zstd"));
	assert_true(web_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
	assert_true(web_accepts_gzip("identity;q=0, gzip"));
	assert_false(web_accepts_gzip("gzip;q=0"));
	assert_false(web_accepts_gzip("deflate, gzip ; q=0.0 , br"));
	assert_false(web_accepts_gzip("x-gzip, gzipper"));
	assert_false(web_accepts_gzip(""));
	assert_false(web_accepts_gzip(NULL));
}

static void test_secret_equal(void **state)
{
	assert_true(web_secret_equal("abc", "abc"));
	assert_false(web_secret_equal("abc", "abd"));
	assert_false(web_secret_equal("abc", "ab"));
	assert_false(web_secret_equal("", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test(test_parse_login),
		cmocka_unit_test(test_secret_equal),
		cmocka_unit_test(test_ws_handshake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
