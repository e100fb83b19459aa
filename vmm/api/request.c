// SPDX-License-Identifier: MIT
/*
 * Requests of the control API: routing, JSON validation and the call of one op.
 * Everything here is pure (no I/O, no globals) so that it is unit-tested and fuzzed
 * without a socket. The paths and bodies are the contract of docs/api.yaml.
 */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

#define API_PATH_LEN_MAX 256 /* longer request paths are unknown paths */

static int reqfail(struct api_request_error *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reqfail(struct api_request_error *err, int status, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Messages quote client bytes: keep them one printable ASCII line (which is also
	 * valid UTF-8, as a JSON string must be, even where %.Ns cut a character). */
	str_printable(err->msg);
	return status;
}

/* --- Field validation ---------------------------------------------------------------- */

/* Refuse any key of obj not in allowed[] (NULL-terminated). */
static int check_fields(json_t *obj, const char *const *allowed, struct api_request_error *err)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val)
	{
		size_t i;
		bool known = false;

		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				known = true;
		if (!known)
			return reqfail(err, 400, "unknown field '%.64s'", key);
	}
	return 0;
}

/* Copy string field key (required) into buf[size]; 400 on a wrong type or length. */
static int get_string(json_t *obj, const char *key, char *buf, size_t size,
		      struct api_request_error *err)
{
	json_t *v = json_object_get(obj, key);
	size_t len;

	if (!v)
		return reqfail(err, 400, "missing field '%s'", key);
	if (!json_is_string(v))
		return reqfail(err, 400, "field '%s' must be a string", key);
	len = json_string_length(v);
	if (len == 0)
		return reqfail(err, 400, "field '%s' must not be empty", key);
	if (len >= size)
		return reqfail(err, 400, "field '%s' is longer than %zu bytes", key, size - 1);
	if (strlen(json_string_value(v)) != len)
		return reqfail(err, 400, "field '%s' contains a NUL character", key);
	memcpy(buf, json_string_value(v), len + 1);
	return 0;
}

static int get_abs_path(json_t *obj, const char *key, char *buf, size_t size,
			struct api_request_error *err)
{
	int ret = get_string(obj, key, buf, size, err);

	if (ret)
		return ret;
	if (buf[0] != '/')
		return reqfail(err, 400, "field '%s' must be an absolute path", key);
	return 0;
}

bool api_disk_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++) {
		char c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return n > 0 && n < API_DISK_ID_MAX;
}

static bool host_name_valid(const char *h, bool bracketed)
{
	if (!*h)
		return false;
	for (; *h; h++) {
		char c = *h;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-')
			continue;
		if (bracketed && c == ':')
			continue;
		return false;
	}
	return true;
}

/* Parse "tcp:HOST:PORT" (HOST may be "[IPv6]") or "unix:/PATH" into args. */
static int parse_migrate_uri(const char *to, struct api_migrate_args *a,
			     struct api_request_error *err)
{
	if (!strncmp(to, "tcp:", 4)) {
		const char *hp = to + 4, *host = hp, *colon;
		size_t hlen;
		bool bracketed = false;
		uint64_t port;

		if (*hp == '[') {
			const char *close = strchr(hp, ']');

			if (!close || close[1] != ':')
				return reqfail(err, 400, "field 'to': bad IPv6 address in '%.200s'",
					       to);
			host = hp + 1;
			hlen = (size_t)(close - host);
			colon = close + 1;
			bracketed = true;
		} else {
			colon = strrchr(hp, ':');
			if (!colon)
				return reqfail(err, 400, "field 'to': no port in '%.200s'", to);
			hlen = (size_t)(colon - host);
		}
		if (hlen >= sizeof(a->host))
			return reqfail(err, 400, "field 'to': host name too long");
		memcpy(a->host, host, hlen);
		a->host[hlen] = '\0';
		if (!host_name_valid(a->host, bracketed))
			return reqfail(err, 400, "field 'to': bad host in '%.200s'", to);
		if (parse_uint(colon + 1, 1, 65535, &port))
			return reqfail(err, 400, "field 'to': port must be 1..65535 in '%.200s'",
				       to);
		a->transport = API_MIGRATE_TCP;
		a->port = (uint16_t)port;
		return 0;
	}
	if (!strncmp(to, "unix:", 5)) {
		const char *path = to + 5;

		if (path[0] != '/')
			return reqfail(err, 400, "field 'to': unix socket path must be absolute");
		if (strlen(path) >= sizeof(a->path))
			return reqfail(err, 400,
				       "field 'to': unix socket path longer than %zu bytes",
				       sizeof(a->path) - 1);
		a->transport = API_MIGRATE_UNIX;
		snprintf(a->path, sizeof(a->path), "%s", path);
		return 0;
	}
	return reqfail(err, 400, "field 'to' must be tcp:HOST:PORT or unix:PATH");
}

int api_parse_migrate_uri(const char *uri, struct api_migrate_args *out, char *err, size_t errlen)
{
	struct api_request_error e;

	memset(out, 0, sizeof(*out));
	memset(&e, 0, sizeof(e));
	out->downtime_ms = API_DOWNTIME_DEFAULT_MS;
	if (!parse_migrate_uri(uri, out, &e))
		return 0;
	snprintf(err, errlen, "%s", e.msg);
	return -EINVAL;
}

bool api_host_numeric(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

int api_resolve_migrate_uri(const char *uri, char *out, size_t outlen, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	struct api_migrate_args a;
	char addr[INET6_ADDRSTRLEN];
	int gai, n;

	if (api_parse_migrate_uri(uri, &a, err, errlen))
		return -EINVAL;
	if (a.transport != API_MIGRATE_TCP || api_host_numeric(a.host)) {
		n = snprintf(out, outlen, "%s", uri);
	} else {
		gai = getaddrinfo(a.host, NULL, &hints, &res);
		if (gai) {
			snprintf(err, errlen, "cannot resolve '%.100s': %s", a.host, gai_strerror(gai));
			return -EHOSTUNREACH;
		}
		gai = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0,
				  NI_NUMERICHOST);
		n = gai ? 0 : snprintf(out, outlen, res->ai_family == AF_INET6 ? "tcp:[%s]:%u"
								      : "tcp:%s:%u",
				     addr, a.port);
		freeaddrinfo(res);
		if (gai) {
			snprintf(err, errlen, "cannot resolve '%.100s': %s", a.host, gai_strerror(gai));
			return -EHOSTUNREACH;
		}
	}
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "migration address too long");
		return -EINVAL;
	}
	return 0;
}

/* --- Bodies -------------------------------------------------------------------------- */

static const char *const no_fields[] = {NULL};
static const char *const snapshot_fields[] = {"to", NULL};
static const char *const migrate_fields[] = {"to", "downtime_ms", NULL};
static const char *const disk_fields[] = {"path", "readonly", "format", NULL};
static const char *const net_fields[] = {"tap", "mac", NULL};
static const char *const start_fields[] = {"from", "paused", "listen", NULL};

static int parse_snapshot(json_t *obj, struct api_snapshot_args *a, struct api_request_error *err)
{
	int ret = check_fields(obj, snapshot_fields, err);

	return ret ? ret : get_abs_path(obj, "to", a->dir, sizeof(a->dir), err);
}

/* {} | {"from": DIR[, "paused": BOOL]} | {"listen": URI} */
static int parse_start(json_t *obj, struct api_start_args *a, struct api_request_error *err)
{
	struct api_migrate_args where;
	json_t *paused;
	int ret;

	if (!obj)
		return 0;
	ret = check_fields(obj, start_fields, err);
	if (!ret && json_object_get(obj, "from"))
		ret = get_abs_path(obj, "from", a->from, sizeof(a->from), err);
	if (!ret && json_object_get(obj, "listen"))
		ret = get_string(obj, "listen", a->listen, sizeof(a->listen), err);
	if (ret)
		return ret;
	if (a->from[0] && a->listen[0])
		return reqfail(err, 400, "fields 'from' (a restore) and 'listen' (a migration's "
			       "destination) exclude each other");
	paused = json_object_get(obj, "paused");
	if (paused && !json_is_boolean(paused))
		return reqfail(err, 400, "field 'paused' must be a boolean");
	if (paused && !a->from[0])
		return reqfail(err, 400, "field 'paused' goes with 'from' (a restore)");
	a->paused = json_is_true(paused);
	if (a->listen[0] && parse_migrate_uri(a->listen, &where, err)) {
		/* Its sentences name the migration's field: name this one. */
		char why[API_ERROR_MAX];

		snprintf(why, sizeof(why), "%s",
			 err->msg + (strncmp(err->msg, "field 'to'", 10) ? 0 : 10));
		return reqfail(err, 400, "field 'listen'%.200s", why);
	}
	return 0;
}

static int parse_migrate(json_t *obj, struct api_migrate_args *a, struct api_request_error *err)
{
	char to[API_PATH_MAX];
	json_t *dt;
	int ret;

	ret = check_fields(obj, migrate_fields, err);
	if (!ret)
		ret = get_string(obj, "to", to, sizeof(to), err);
	if (!ret)
		ret = parse_migrate_uri(to, a, err);
	if (ret)
		return ret;
	a->downtime_ms = API_DOWNTIME_DEFAULT_MS;
	dt = json_object_get(obj, "downtime_ms");
	if (dt) {
		json_int_t v;

		if (!json_is_integer(dt))
			return reqfail(err, 400, "field 'downtime_ms' must be an integer");
		v = json_integer_value(dt);
		if (v < 1 || v > API_DOWNTIME_MAX_MS)
			return reqfail(err, 400, "field 'downtime_ms' must be 1..%u",
				       API_DOWNTIME_MAX_MS);
		a->downtime_ms = (uint32_t)v;
	}
	return 0;
}

static int parse_disk(json_t *obj, struct api_disk_args *a, struct api_request_error *err)
{
	json_t *ro;
	int ret;

	ret = check_fields(obj, disk_fields, err);
	if (!ret)
		ret = get_abs_path(obj, "path", a->path, sizeof(a->path), err);
	if (ret)
		return ret;
	ro = json_object_get(obj, "readonly");
	if (ro && !json_is_boolean(ro))
		return reqfail(err, 400, "field 'readonly' must be true or false");
	a->readonly = ro && json_is_true(ro);
	if (json_object_get(obj, "format"))
		return get_string(obj, "format", a->format, sizeof(a->format), err);
	return 0;
}

static int parse_net(json_t *obj, struct api_net_args *a, struct api_request_error *err)
{
	int ret = check_fields(obj, net_fields, err);

	if (!ret)
		ret = get_string(obj, "tap", a->tap, sizeof(a->tap), err);
	if (!ret && json_object_get(obj, "mac"))
		ret = get_string(obj, "mac", a->mac, sizeof(a->mac), err);
	return ret;
}

/* --- Routing ------------------------------------------------------------------------- */

/* The body as an object (NULL when empty and allowed), or a 4xx. */
static int load_body(const char *body, size_t len, bool required, json_t **out,
		     struct api_request_error *err)
{
	json_error_t jerr;
	json_t *obj;

	*out = NULL;
	if (len == 0) {
		if (required)
			return reqfail(err, 400, "a JSON object body is required");
		return 0;
	}
	obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return reqfail(err, 400, "invalid JSON at line %d column %d: %.120s", jerr.line,
			       jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return reqfail(err, 400, "the request body must be a JSON object");
	}
	*out = obj;
	return 0;
}

struct route {
	const char *path;
	const char *method;
	enum api_cmd_kind kind;
};

static const struct route routes[] = {
	{"/v1/vm", "GET", API_CMD_INFO},
	{"/v1/vm/pause", "POST", API_CMD_PAUSE},
	{"/v1/vm/resume", "POST", API_CMD_RESUME},
	{"/v1/vm/shutdown", "POST", API_CMD_SHUTDOWN},
	{"/v1/vm/reset", "POST", API_CMD_RESET},
	{"/v1/vm/snapshot", "POST", API_CMD_SNAPSHOT},
	{"/v1/vm/migrate", "POST", API_CMD_MIGRATE},
	{"/v1/vm/config", "PUT", API_CMD_CONFIGURE},
	{"/v1/vm/start", "POST", API_CMD_START},
};

void api_cmd_free(struct api_cmd *cmd)
{
	if (cmd->kind == API_CMD_CONFIGURE)
		json_decref(cmd->u.config);
	cmd->u.config = NULL;
}

/* The hot-pluggable devices: PUT {prefix}{id} adds one, DELETE removes it. */
static const struct dev_route {
	const char *prefix, *what;
	enum api_cmd_kind add, remove;
} dev_routes[] = {
	{"/v1/vm/disks/", "disk", API_CMD_DISK_ADD, API_CMD_DISK_REMOVE},
	{"/v1/vm/nets/", "NIC", API_CMD_NET_ADD, API_CMD_NET_REMOVE},
};

static int parse_dev_route(const struct dev_route *r, const char *method, const char *id,
			   const char *body, size_t body_len, struct api_cmd *cmd,
			   struct api_request_error *err)
{
	bool disk = r->add == API_CMD_DISK_ADD;
	json_t *obj = NULL;
	int ret;

	if (!api_disk_id_valid(id))
		return reqfail(err, 404, "no such path: a %s id is 1..31 characters of "
			       "[A-Za-z0-9_-]", r->what);
	snprintf(disk ? cmd->u.disk.id : cmd->u.net.id, API_DISK_ID_MAX, "%s", id);
	if (!strcmp(method, "PUT")) {
		cmd->kind = r->add;
		ret = load_body(body, body_len, true, &obj, err);
		if (!ret)
			ret = disk ? parse_disk(obj, &cmd->u.disk, err) :
				     parse_net(obj, &cmd->u.net, err);
		json_decref(obj);
		return ret;
	}
	if (!strcmp(method, "DELETE")) {
		cmd->kind = r->remove;
		ret = load_body(body, body_len, false, &obj, err);
		if (!ret && obj)
			ret = check_fields(obj, no_fields, err);
		json_decref(obj);
		return ret;
	}
	err->allow = "PUT, DELETE";
	return reqfail(err, 405, "method %.16s not allowed on %s{id} (use PUT or DELETE)",
		       method, r->prefix);
}

int api_parse_request(const char *method, const char *path, const char *body, size_t body_len,
		      struct api_cmd *cmd, struct api_request_error *err)
{
	json_t *obj = NULL;
	size_t i;
	int ret;

	memset(cmd, 0, sizeof(*cmd));
	memset(err, 0, sizeof(*err));
	if (strnlen(path, API_PATH_LEN_MAX + 1) > API_PATH_LEN_MAX)
		return reqfail(err, 404, "no such path");
	if (body_len > API_BODY_MAX)
		return reqfail(err, 413, "request body larger than %u bytes", API_BODY_MAX);

	for (i = 0; i < ARRAY_SIZE(dev_routes); i++) {
		const struct dev_route *r = &dev_routes[i];

		if (!strncmp(path, r->prefix, strlen(r->prefix)))
			return parse_dev_route(r, method, path + strlen(r->prefix), body, body_len,
					       cmd, err);
	}

	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];

		if (strcmp(path, r->path))
			continue;
		if (strcmp(method, r->method)) {
			err->allow = r->method;
			return reqfail(err, 405, "method %.16s not allowed on %s (use %s)", method,
				       r->path, r->method);
		}
		cmd->kind = r->kind;
		if (r->kind == API_CMD_INFO) {
			if (body_len)
				return reqfail(err, 400, "GET %s takes no body", r->path);
			return 0;
		}
		ret = load_body(body, body_len,
				r->kind == API_CMD_SNAPSHOT || r->kind == API_CMD_MIGRATE ||
					r->kind == API_CMD_CONFIGURE,
				&obj, err);
		if (ret)
			return ret;
		switch (r->kind) {
		case API_CMD_SNAPSHOT:
			ret = parse_snapshot(obj, &cmd->u.snapshot, err);
			break;
		case API_CMD_MIGRATE:
			ret = parse_migrate(obj, &cmd->u.migrate, err);
			break;
		case API_CMD_START:
			ret = parse_start(obj, &cmd->u.start, err);
			break;
		case API_CMD_CONFIGURE:
			/* The machine's schema is the VMM's (its device classes): it checks. */
			cmd->u.config = obj;
			return 0;
		default: /* actions without arguments accept no body or {} */
			ret = obj ? check_fields(obj, no_fields, err) : 0;
			break;
		}
		json_decref(obj);
		return ret;
	}
	return reqfail(err, 404, "no such path: %.120s", path);
}

/* --- Dispatch ------------------------------------------------------------------------ */

int api_status_for_errno(int err)
{
	switch (err) {
	case 0:
		return 200;
	case -EINVAL:
		return 400;
	case -ENOENT:
		return 404;
	case -EBUSY:
	case -EALREADY:
	case -EEXIST:
		return 409;
	case -ENOTSUP:
		return 501;
	default:
		return 500;
	}
}

json_t *api_error_body(const char *msg)
{
	return json_pack("{s:s}", "error", msg);
}

static const char *cmd_name(enum api_cmd_kind kind)
{
	static const char *const names[] = {
		[API_CMD_INFO] = "info",
		[API_CMD_PAUSE] = "pause",
		[API_CMD_RESUME] = "resume",
		[API_CMD_SHUTDOWN] = "shutdown",
		[API_CMD_RESET] = "reset",
		[API_CMD_SNAPSHOT] = "snapshot",
		[API_CMD_MIGRATE] = "migrate",
		[API_CMD_DISK_ADD] = "disk add",
		[API_CMD_DISK_REMOVE] = "disk remove",
		[API_CMD_NET_ADD] = "NIC add",
		[API_CMD_NET_REMOVE] = "NIC remove",
		[API_CMD_CONFIGURE] = "config",
		[API_CMD_START] = "start",
	};

	return (unsigned int)kind < ARRAY_SIZE(names) ? names[kind] : "request";
}

/* Call the op for cmd; -ENOTSUP (and *missing) when the VMM does not provide it. */
static int call_op(const struct api_vm_ops *ops, void *vm, const struct api_cmd *cmd,
		   struct api_reply *reply, bool *missing)
{
	*missing = false;
#define CALL(op, ...)                                                                              \
	do {                                                                                       \
		if (!ops->op) {                                                                    \
			*missing = true;                                                           \
			return -ENOTSUP;                                                           \
		}                                                                                  \
		return ops->op(vm, __VA_ARGS__);                                                   \
	} while (0)
	switch (cmd->kind) {
	case API_CMD_INFO:
		CALL(info, reply);
	case API_CMD_PAUSE:
		CALL(pause, reply);
	case API_CMD_RESUME:
		CALL(resume, reply);
	case API_CMD_SHUTDOWN:
		CALL(shutdown, reply);
	case API_CMD_RESET:
		CALL(reset, reply);
	case API_CMD_SNAPSHOT:
		CALL(snapshot, &cmd->u.snapshot, reply);
	case API_CMD_MIGRATE:
		CALL(migrate, &cmd->u.migrate, reply);
	case API_CMD_DISK_ADD:
		CALL(disk_add, &cmd->u.disk, reply);
	case API_CMD_DISK_REMOVE:
		CALL(disk_remove, cmd->u.disk.id, reply);
	case API_CMD_NET_ADD:
		CALL(net_add, &cmd->u.net, reply);
	case API_CMD_NET_REMOVE:
		CALL(net_remove, cmd->u.net.id, reply);
	case API_CMD_CONFIGURE:
		CALL(configure, cmd->u.config, reply);
	case API_CMD_START:
		CALL(start, &cmd->u.start, reply);
	}
#undef CALL
	return -EINVAL;
}

void api_dispatch(const struct api_vm_ops *ops, void *vm, const struct api_cmd *cmd,
		  struct api_response *resp)
{
	struct api_reply reply;
	char msg[API_ERROR_MAX + 64];
	const char *name = cmd_name(cmd->kind);
	bool missing;
	int ret;

	memset(&reply, 0, sizeof(reply));
	ret = call_op(ops, vm, cmd, &reply, &missing);
	resp->sent = reply.sent;
	reply.error[sizeof(reply.error) - 1] = '\0';
	if (ret == 0 && cmd->kind == API_CMD_INFO && !json_is_object(reply.body)) {
		snprintf(reply.error, sizeof(reply.error), "info returned no JSON object");
		ret = -EIO;
	}
	if (ret > 0) {
		snprintf(reply.error, sizeof(reply.error), "%s returned %d", name, ret);
		ret = -EIO;
	}
	if (ret == 0) {
		resp->status = reply.accepted ? 202 : 200;
		resp->body = reply.body ? reply.body : json_object();
		return;
	}
	json_decref(reply.body);
	resp->status = api_status_for_errno(ret);
	if (missing)
		snprintf(msg, sizeof(msg), "%s is not supported by this VMM", name);
	else if (reply.error[0])
		snprintf(msg, sizeof(msg), "%s: %s", name, reply.error);
	else if (resp->status == 409)
		snprintf(msg, sizeof(msg), "%s is not possible in the VM's current state", name);
	else
		snprintf(msg, sizeof(msg), "%s failed: %s", name, strerror(-ret));
	resp->body = api_error_body(msg);
}
