// SPDX-License-Identifier: MIT
/*
 * API tokens for the TCP listener: a token is 32 random bytes (64 hex digits) shown
 * once at creation; the inventory keeps only its SHA-256, so a copy of the database
 * gives no access. A request over TCP carries "Authorization: Bearer TOKEN"; its
 * token's role (admin, operator, viewer) is checked by pd_role_allows() on every
 * endpoint. The Unix socket (mode 0600, root) needs no token: it is admin.
 */
#include "plinthd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <gnutls/crypto.h>

#include "log.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SHA-256 of secret as hex into out[65]; 0 or -EIO. */
static int token_hash(const char *secret, char out[65])
{
	uint8_t d[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), d) < 0)
		return -EIO;
	hex(d, sizeof(d), out);
	return 0;
}

static json_t *token_json(const struct store_token *t)
{
	return json_pack("{s:s, s:s, s:I}", "name", t->name, "role", t->role, "created_ms",
			 (json_int_t)t->created_ms);
}

void pd_token_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_token *ts;
	json_t *arr;
	size_t n, i;

	if (pd->ops->token_list(pd->st, &ts, &n)) {
		pd_reply_error(r, 500, "inventory error listing tokens");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++)
		json_array_append_new(arr, token_json(&ts[i]));
	free(ts);
	r->status = 200;
	r->body = json_pack("{s:o}", "tokens", arr);
}

void pd_token_get(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_token t;

	if (pd->ops->token_get(pd->st, name, &t)) {
		pd_reply_error(r, 404, "no token named '%s'", name);
		return;
	}
	r->status = 200;
	r->body = token_json(&t);
}

void pd_token_create(struct plinthd *pd, const struct pd_token_args *a, struct pd_reply *r)
{
	struct store_token t = {0};
	char secret[65];
	uint8_t raw[32];
	int ret;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		pd_reply_error(r, 500, "no randomness for a token");
		return;
	}
	hex(raw, sizeof(raw), secret);
	snprintf(t.name, sizeof(t.name), "%s", a->name);
	snprintf(t.role, sizeof(t.role), "%s", a->role);
	t.created_ms = pd_now_ms();
	ret = token_hash(secret, t.hash);
	if (!ret)
		ret = pd->ops->begin(pd->st);
	if (!ret) {
		ret = pd->ops->token_insert(pd->st, &t);
		if (!ret)
			ret = pd_event(pd, "token.create", t.name, "ok", "role %s", t.role);
		if (!ret)
			ret = pd->ops->commit(pd->st);
		if (ret)
			pd->ops->rollback(pd->st);
	}
	if (ret == -EEXIST) {
		pd_reply_error(r, 409, "a token named '%s' already exists", a->name);
		return;
	}
	if (ret) {
		pd_reply_error(r, 500, "inventory error creating token '%s'", a->name);
		return;
	}
	r->status = 201;
	r->body = token_json(&t);
	json_object_set_new(r->body, "token", json_string(secret)); /* shown this once */
}

void pd_token_delete(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_token t;
	int ret;

	if (pd->ops->token_get(pd->st, name, &t)) {
		pd_reply_error(r, 404, "no token named '%s'", name);
		return;
	}
	ret = pd->ops->begin(pd->st);
	if (!ret)
		ret = pd->ops->token_delete(pd->st, t.id);
	if (!ret)
		ret = pd_event(pd, "token.delete", name, "ok", "revoked");
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		pd_reply_error(r, 500, "inventory error deleting token '%s'", name);
		return;
	}
	r->status = 200;
	r->body = json_pack("{s:s}", "deleted", name);
}

int pd_token_check(struct plinthd *pd, const char *authorization, char *role, size_t rolelen,
		   char *name, size_t namelen)
{
	struct store_token t;
	char h[65];

	if (!authorization || strncmp(authorization, "Bearer ", 7) || strlen(authorization) != 71)
		return -EACCES;
	if (token_hash(authorization + 7, h) || pd->ops->token_find(pd->st, h, &t))
		return -EACCES;
	snprintf(role, rolelen, "%s", t.role);
	snprintf(name, namelen, "%s", t.name);
	return 0;
}
