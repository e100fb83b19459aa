// SPDX-License-Identifier: MIT
/*
 * plinthd's requests: routing and validation (request.h). Everything a client
 * sends is hostile: sizes are capped, JSON is parsed strictly (duplicate keys,
 * unknown fields, wrong types and embedded NULs are refused), numbers are range
 * checked before use.
 */
#include "request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define PD_URL_MAX 512 /* longer request paths are unknown paths */

static int fail(struct pd_error *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct pd_error *err, int status, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Messages quote client bytes: one printable ASCII line. */
	str_printable(err->msg);
	return status;
}

bool pd_name_valid(const char *name)
{
	size_t n;

	for (n = 0; name[n]; n++) {
		char c = name[n];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');

		if (!alnum && (n == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return n > 0 && n < STORE_NAME_MAX;
}

bool pd_dev_id_valid(const char *id)
{
	size_t n;

	for (n = 0; id[n]; n++) {
		char c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return n > 0 && n < PD_DEV_ID_MAX;
}

const char *pd_restart_name(enum pd_restart r)
{
	switch (r) {
	case PD_RESTART_ON_CRASH:
		return "on-crash";
	case PD_RESTART_ALWAYS:
		return "always";
	default:
		return "never";
	}
}

static const char *const action_names[] = {
	[PD_START] = "start", [PD_STOP] = "stop",   [PD_KILL] = "kill",
	[PD_REBOOT] = "reboot", [PD_PAUSE] = "pause", [PD_RESUME] = "resume",
};

const char *pd_action_name(enum pd_action a)
{
	return (unsigned)a < ARRAY_SIZE(action_names) ? action_names[a] : "action";
}

/* --- Fields -------------------------------------------------------------------------- */

static int check_fields(json_t *obj, const char *what, const char *const *allowed,
			struct pd_error *err)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val)
	{
		size_t i;
		bool known = false;

		for (i = 0; allowed[i] && !known; i++)
			known = !strcmp(key, allowed[i]);
		if (!known)
			return fail(err, 400, "%s: unknown field '%.64s'", what, key);
	}
	return 0;
}

/* String field key into buf[size]. Absent: "" when optional, else 400. */
static int get_str(json_t *obj, const char *key, bool required, char *buf, size_t size,
		   struct pd_error *err)
{
	json_t *v = json_object_get(obj, key);
	size_t len;

	buf[0] = '\0';
	if (!v) {
		if (required)
			return fail(err, 400, "missing field '%s'", key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(err, 400, "field '%s' must be a string", key);
	len = json_string_length(v);
	if (len >= size)
		return fail(err, 400, "field '%s' is longer than %zu bytes", key, size - 1);
	if (strlen(json_string_value(v)) != len)
		return fail(err, 400, "field '%s' contains a NUL character", key);
	if (required && len == 0)
		return fail(err, 400, "field '%s' must not be empty", key);
	memcpy(buf, json_string_value(v), len + 1);
	return 0;
}

static int get_path(json_t *obj, const char *key, bool required, char *buf, size_t size,
		    struct pd_error *err)
{
	int ret = get_str(obj, key, required, buf, size, err);

	if (!ret && buf[0] && buf[0] != '/')
		return fail(err, 400, "field '%s' must be an absolute path", key);
	return ret;
}

static int get_name(json_t *obj, const char *key, char *buf, struct pd_error *err)
{
	int ret = get_str(obj, key, true, buf, STORE_NAME_MAX, err);

	if (!ret && !pd_name_valid(buf))
		return fail(err, 400,
			    "field '%s': '%.64s' is not a valid name (1..63 characters of "
			    "[A-Za-z0-9_.-], starting with a letter or digit)",
			    key, buf);
	return ret;
}

/* Integer field in [min, max]; absent: *out = def. */
static int get_uint(json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t def,
		    uint64_t *out, struct pd_error *err)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return fail(err, 400, "field '%s' must be an integer", key);
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return fail(err, 400, "field '%s' must be %llu..%llu", key,
			    (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)n;
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, struct pd_error *err)
{
	json_t *v = json_object_get(obj, key);

	*out = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(err, 400, "field '%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static bool format_known(const char *f)
{
	static const char *const formats[] = {"raw", "qcow2", "vpc", "vhdx", "vmdk"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(formats); i++)
		if (!strcmp(f, formats[i]))
			return true;
	return false;
}

static int get_format(json_t *obj, const char *key, char *buf, size_t size, struct pd_error *err)
{
	int ret = get_str(obj, key, false, buf, size, err);

	if (!ret && buf[0] && !format_known(buf))
		return fail(err, 400, "field '%s': unknown format '%.16s' (raw, qcow2, vpc, vhdx, "
				      "vmdk)", key, buf);
	return ret;
}

/* --- VM definitions ------------------------------------------------------------------ */

static const char *const vm_fields[] = {"name",	 "cpus",  "memory_mib", "kernel",  "initrd",
					"cmdline", "disks", "nics",	    "restart", "autostart",
					"ha",	   "display", "anti_affinity", NULL};
static const char *const disk_fields[] = {"path", "image", "format", "readonly", NULL};
static const char *const nic_fields[] = {"network", NULL};

/* A disk (what names it in messages: "disks[N]", "disk") into *disk. */
static int parse_disk(json_t *d, const char *what, struct pd_disk *disk, struct pd_error *err)
{
	int ret;

	if (!json_is_object(d))
		return fail(err, 400, "%s must be an object", what);
	ret = check_fields(d, what, disk_fields, err);
	if (!ret)
		ret = get_path(d, "path", false, disk->path, sizeof(disk->path), err);
	if (!ret && json_object_get(d, "image"))
		ret = get_name(d, "image", disk->image, err);
	if (!ret)
		ret = get_format(d, "format", disk->format, sizeof(disk->format), err);
	if (!ret)
		ret = get_bool(d, "readonly", &disk->readonly, err);
	if (ret)
		return ret;
	if (!disk->path[0] == !disk->image[0])
		return fail(err, 400, "%s needs exactly one of 'path' and 'image'", what);
	return 0;
}

int pd_vm_def_from_json(json_t *obj, struct pd_vm_def *def, struct pd_error *err)
{
	json_t *disks, *nics, *v;
	uint64_t n;
	size_t i;
	int ret;

	memset(def, 0, sizeof(*def));
	if (!json_is_object(obj))
		return fail(err, 400, "a VM definition must be a JSON object");
	ret = check_fields(obj, "VM definition", vm_fields, err);
	if (!ret)
		ret = get_name(obj, "name", def->name, err);
	if (!ret)
		ret = get_uint(obj, "cpus", 1, PD_CPUS_MAX, 1, &n, err);
	if (ret)
		return ret;
	def->cpus = (unsigned)n;
	ret = get_uint(obj, "memory_mib", PD_MEMORY_MIN, PD_MEMORY_MAX, 512, &def->memory_mib, err);
	if (!ret)
		ret = get_path(obj, "kernel", true, def->kernel, sizeof(def->kernel), err);
	if (!ret)
		ret = get_path(obj, "initrd", false, def->initrd, sizeof(def->initrd), err);
	if (!ret)
		ret = get_str(obj, "cmdline", false, def->cmdline, sizeof(def->cmdline), err);
	if (!ret)
		ret = get_bool(obj, "autostart", &def->autostart, err);
	if (!ret)
		ret = get_bool(obj, "ha", &def->ha, err);
	if (!ret && json_object_get(obj, "anti_affinity"))
		ret = get_name(obj, "anti_affinity", def->anti_affinity, err);
	if (ret)
		return ret;

	v = json_object_get(obj, "display");
	if (v) {
		const char *d = json_is_string(v) ? json_string_value(v) : "";

		if (!strcmp(d, "vnc"))
			def->display = true;
		else if (strcmp(d, "none"))
			return fail(err, 400, "field 'display' must be \"vnc\" or \"none\"");
	}

	v = json_object_get(obj, "restart");
	def->restart = PD_RESTART_NEVER;
	if (v) {
		const char *r = json_is_string(v) ? json_string_value(v) : "";

		if (!strcmp(r, "never"))
			def->restart = PD_RESTART_NEVER;
		else if (!strcmp(r, "on-crash"))
			def->restart = PD_RESTART_ON_CRASH;
		else if (!strcmp(r, "always"))
			def->restart = PD_RESTART_ALWAYS;
		else
			return fail(err, 400, "field 'restart' must be never, on-crash or always");
	}

	disks = json_object_get(obj, "disks");
	if (disks) {
		if (!json_is_array(disks))
			return fail(err, 400, "field 'disks' must be an array");
		if (json_array_size(disks) > PD_DISKS_MAX)
			return fail(err, 400, "at most %d disks", PD_DISKS_MAX);
		json_array_foreach(disks, i, v)
		{
			char what[32];

			snprintf(what, sizeof(what), "disks[%zu]", i);
			ret = parse_disk(v, what, &def->disks[i], err);
			if (ret)
				return ret;
		}
		def->n_disks = (unsigned)json_array_size(disks);
	}
	nics = json_object_get(obj, "nics");
	if (nics) {
		if (!json_is_array(nics))
			return fail(err, 400, "field 'nics' must be an array");
		if (json_array_size(nics) > PD_NICS_MAX)
			return fail(err, 400, "at most %d NICs", PD_NICS_MAX);
		json_array_foreach(nics, i, v)
		{
			char what[32];

			snprintf(what, sizeof(what), "nics[%zu]", i);
			if (!json_is_object(v))
				return fail(err, 400, "%s must be an object", what);
			ret = check_fields(v, what, nic_fields, err);
			if (!ret)
				ret = get_name(v, "network", def->nics[i].network, err);
			if (ret)
				return ret;
		}
		def->n_nics = (unsigned)json_array_size(nics);
	}
	return 0;
}

int pd_vm_def_parse(const char *text, struct pd_vm_def *def, struct pd_error *err)
{
	json_error_t jerr;
	json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	int ret;

	if (!obj)
		return fail(err, 400, "invalid JSON at line %d column %d: %.120s", jerr.line,
			    jerr.column, jerr.text);
	ret = pd_vm_def_from_json(obj, def, err);
	json_decref(obj);
	return ret;
}

json_t *pd_vm_def_to_json(const struct pd_vm_def *def)
{
	json_t *obj, *disks, *nics;
	unsigned i;

	obj = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:b}", "name", def->name, "cpus",
			(json_int_t)def->cpus, "memory_mib", (json_int_t)def->memory_mib, "kernel",
			def->kernel, "initrd", def->initrd, "cmdline", def->cmdline, "restart",
			pd_restart_name(def->restart), "autostart", def->autostart);
	if (obj && def->ha) /* only when set: definitions stored before keep their text */
		json_object_set_new(obj, "ha", json_true());
	if (obj && def->display) /* likewise */
		json_object_set_new(obj, "display", json_string("vnc"));
	if (obj && def->anti_affinity[0]) /* likewise */
		json_object_set_new(obj, "anti_affinity", json_string(def->anti_affinity));
	disks = json_array();
	nics = json_array();
	if (!obj || !disks || !nics)
		goto out_free;
	for (i = 0; i < def->n_disks; i++) {
		const struct pd_disk *d = &def->disks[i];
		json_t *dj = json_pack("{s:s, s:b}", d->path[0] ? "path" : "image",
				       d->path[0] ? d->path : d->image, "readonly", d->readonly);

		if (dj && d->format[0])
			json_object_set_new(dj, "format", json_string(d->format));
		if (!dj || json_array_append_new(disks, dj))
			goto out_free;
	}
	for (i = 0; i < def->n_nics; i++)
		if (json_array_append_new(nics, json_pack("{s:s}", "network", def->nics[i].network)))
			goto out_free;
	if (json_object_set_new(obj, "disks", disks) || json_object_set_new(obj, "nics", nics)) {
		json_decref(obj);
		return NULL;
	}
	return obj;

out_free:
	json_decref(disks);
	json_decref(nics);
	json_decref(obj);
	return NULL;
}

/* --- Other bodies -------------------------------------------------------------------- */

int pd_parse_cidr(const char *cidr, uint32_t *net, unsigned *prefix)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	struct in_addr in;
	uint64_t n;
	uint32_t a, mask;

	if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, cidr, (size_t)(slash - cidr));
	addr[slash - cidr] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1 || parse_uint(slash + 1, 8, 30, &n))
		return -EINVAL;
	a = ntohl(in.s_addr);
	mask = ~0u << (32 - n);
	if (a & ~mask)
		return -EINVAL; /* host bits set: not a network address */
	*net = a;
	*prefix = (unsigned)n;
	return 0;
}

static const char *const token_fields[] = {"name", "role", NULL};
static const char *const input_fields[] = {"input", NULL};

static bool role_known(const char *r)
{
	return !strcmp(r, "admin") || !strcmp(r, "operator") || !strcmp(r, "viewer");
}

static int parse_token(json_t *obj, struct pd_token_args *a, struct pd_error *err)
{
	int ret = check_fields(obj, "token", token_fields, err);

	if (!ret)
		ret = get_name(obj, "name", a->name, err);
	if (!ret)
		ret = get_str(obj, "role", true, a->role, sizeof(a->role), err);
	if (!ret && !role_known(a->role))
		return fail(err, 400, "field 'role' must be admin, operator or viewer");
	return ret;
}

bool pd_role_allows(const char *role, const struct pd_request *req)
{
	bool token = req->route == PD_TOKEN_LIST || req->route == PD_TOKEN_CREATE ||
		     req->route == PD_TOKEN_GET || req->route == PD_TOKEN_DELETE;
	bool read = req->route == PD_VM_LIST || req->route == PD_VM_GET ||
		    req->route == PD_VM_CONSOLE || req->route == PD_IMAGE_LIST ||
		    req->route == PD_IMAGE_GET || req->route == PD_TASK_LIST ||
		    req->route == PD_TASK_GET || req->route == PD_EVENT_LIST ||
		    req->route == PD_HOST_INFO || req->route == PD_NET_LIST ||
		    req->route == PD_NET_GET || req->route == PD_HOST_LIST;

	if (!strcmp(role, "admin"))
		return true;
	if (token)
		return false;
	if (read)
		return !strcmp(role, "viewer") || !strcmp(role, "operator");
	/* Between hosts, with the cluster credential (the display: and the control socket). */
	if (req->route == PD_VM_INCOMING || req->route == PD_VM_DISPLAY)
		return false;
	if (req->route == PD_VM_ACTION || req->route == PD_TASK_CANCEL ||
	    req->route == PD_VM_CONSOLE_INPUT || req->route == PD_VM_MIGRATE ||
	    req->route == PD_VM_DISK_REMOVE)
		return !strcmp(role, "operator");
	/* A pool image is the operator's to attach; a host path only an admin may name, as
	 * only an admin defines VMs. */
	if (req->route == PD_VM_DISK_ADD)
		return !strcmp(role, "operator") && !req->u.disk.path[0];
	return false;
}

static const char *const network_fields[] = {"name", "cidr", "mode", NULL};

static int parse_network(json_t *obj, struct pd_network_args *a, struct pd_error *err)
{
	uint32_t net;
	unsigned prefix;
	int ret = check_fields(obj, "network", network_fields, err);

	if (!ret)
		ret = get_name(obj, "name", a->name, err);
	if (!ret)
		ret = get_str(obj, "cidr", false, a->cidr, sizeof(a->cidr), err);
	if (!ret && a->cidr[0] && pd_parse_cidr(a->cidr, &net, &prefix))
		return fail(err, 400, "field 'cidr': '%s' is not an IPv4 network A.B.C.D/N "
				      "(N 8..30, host bits zero)", a->cidr);
	if (!ret)
		ret = get_str(obj, "mode", false, a->mode, sizeof(a->mode), err);
	if (!ret && !json_object_get(obj, "mode"))
		snprintf(a->mode, sizeof(a->mode), "isolated");
	if (!ret && strcmp(a->mode, "isolated") && strcmp(a->mode, "nat"))
		return fail(err, 400, "field 'mode' must be isolated or nat");
	return ret;
}

static const char *const image_fields[] = {"name", "format", "size", "import", NULL};
static const char *const clone_fields[] = {"name", "linked", NULL};
static const char *const no_fields[] = {NULL};
static const char *const migrate_fields[] = {"to", NULL};
static const char *const incoming_fields[] = {"phase", "from", "epoch", NULL};

/* {"phase": prepare|confirm|abort, "from": HOST, "epoch": N} */
static int parse_incoming(json_t *obj, struct pd_incoming_args *a, struct pd_error *err)
{
	uint64_t epoch;
	int ret = check_fields(obj, "incoming", incoming_fields, err);

	if (!ret)
		ret = get_str(obj, "phase", true, a->phase, sizeof(a->phase), err);
	if (!ret && strcmp(a->phase, "prepare") && strcmp(a->phase, "confirm") &&
	    strcmp(a->phase, "abort"))
		ret = fail(err, 400, "field 'phase' must be prepare, confirm or abort");
	if (!ret)
		ret = get_str(obj, "from", true, a->from, sizeof(a->from), err);
	if (!ret && !pd_name_valid(a->from))
		ret = fail(err, 400, "field 'from' must be a host name");
	if (!ret && !json_object_get(obj, "epoch"))
		ret = fail(err, 400, "field 'epoch' is required");
	if (!ret)
		ret = get_uint(obj, "epoch", 1, INT64_MAX, 1, &epoch, err);
	if (!ret)
		a->epoch = (int64_t)epoch;
	return ret;
}

static int parse_image(json_t *obj, struct pd_image_args *a, struct pd_error *err)
{
	int ret = check_fields(obj, "image", image_fields, err);

	if (!ret)
		ret = get_name(obj, "name", a->name, err);
	if (!ret)
		ret = get_format(obj, "format", a->format, sizeof(a->format), err);
	if (!ret)
		ret = get_path(obj, "import", false, a->import, sizeof(a->import), err);
	if (!ret)
		ret = get_uint(obj, "size", 1, PD_IMAGE_SIZE_MAX, 0, &a->size, err);
	if (ret)
		return ret;
	if (a->import[0]) {
		if (json_object_get(obj, "size"))
			return fail(err, 400, "an import takes its size from the source: no 'size'");
		return 0;
	}
	if (!a->size)
		return fail(err, 400, "a new image needs 'size' (bytes) or 'import' (a path)");
	if (!a->format[0])
		snprintf(a->format, sizeof(a->format), "qcow2");
	if (strcmp(a->format, "raw") && strcmp(a->format, "qcow2"))
		return fail(err, 400, "the pool creates raw or qcow2 images, not %s", a->format);
	return 0;
}

static int parse_clone(json_t *obj, struct pd_clone_args *a, struct pd_error *err)
{
	int ret = check_fields(obj, "clone", clone_fields, err);

	if (!ret)
		ret = get_name(obj, "name", a->name, err);
	if (!ret)
		ret = get_bool(obj, "linked", &a->linked, err);
	return ret;
}

/* --- Routing ------------------------------------------------------------------------- */

static int load_body(const char *body, size_t len, bool required, json_t **out,
		     struct pd_error *err)
{
	json_error_t jerr;
	json_t *obj;

	*out = NULL;
	if (len == 0)
		return required ? fail(err, 400, "a JSON object body is required") : 0;
	obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return fail(err, 400, "invalid JSON at line %d column %d: %.120s", jerr.line,
			    jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return fail(err, 400, "the request body must be a JSON object");
	}
	*out = obj;
	return 0;
}

/* Split "/v1/a/b/c" into up to 4 segments of at most STORE_NAME_MAX - 1 bytes each.
 * Returns the count, or -1 for a path that is not of this shape. */
static int split_path(const char *path, char seg[4][STORE_NAME_MAX])
{
	const char *p = path;
	int n = 0;

	if (strncmp(p, "/v1/", 4))
		return -1;
	p += 4;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 4 || len == 0 || len >= STORE_NAME_MAX)
			return -1;
		memcpy(seg[n], p, len);
		seg[n][len] = '\0';
		n++;
		p += len;
		if (*p == '/')
			p++;
		if (slash && !*p)
			return -1; /* trailing slash */
	}
	return n;
}

static int method_is(const char *method, const char *want, const char *path,
		     struct pd_error *err)
{
	if (!strcmp(method, want))
		return 0;
	err->allow = want;
	return fail(err, 405, "method %.16s not allowed on %.120s (use %s)", method, path, want);
}

static int two_methods(const char *method, const char *a, const char *b, const char *allow,
		       const char *path, struct pd_error *err)
{
	if (!strcmp(method, a))
		return 1;
	if (!strcmp(method, b))
		return 2;
	err->allow = allow;
	return -fail(err, 405, "method %.16s not allowed on %.120s (use %s)", method, path, allow);
}

/* Query of GET /v1/events: after=ID, limit=N; nothing else. */
static int parse_events_query(const char *query, struct pd_request *req, struct pd_error *err)
{
	char buf[128], *save = NULL, *kv;

	req->after = 0;
	req->limit = 100;
	if (!query || !*query)
		return 0;
	if (strlen(query) >= sizeof(buf))
		return fail(err, 400, "query string too long");
	snprintf(buf, sizeof(buf), "%s", query);
	for (kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		uint64_t v;

		if (!eq)
			return fail(err, 400, "query parameter '%.32s' has no value", kv);
		*eq = '\0';
		if (!strcmp(kv, "after")) {
			if (parse_uint(eq + 1, 0, INT64_MAX, &v))
				return fail(err, 400, "'after' must be an event id");
			req->after = (int64_t)v;
		} else if (!strcmp(kv, "limit")) {
			if (parse_uint(eq + 1, 1, PD_EVENTS_LIMIT_MAX, &v))
				return fail(err, 400, "'limit' must be 1..%d", PD_EVENTS_LIMIT_MAX);
			req->limit = (unsigned)v;
		} else {
			return fail(err, 400, "unknown query parameter '%.32s'", kv);
		}
	}
	return 0;
}

/* Query of GET /v1/vms/{name}/console: offset=N (bytes into the console log). */
static int parse_console_query(const char *query, struct pd_request *req, struct pd_error *err)
{
	uint64_t v;

	req->offset = -1;
	if (!query || !*query)
		return 0;
	if (strncmp(query, "offset=", 7) || parse_uint(query + 7, 0, INT64_MAX, &v))
		return fail(err, 400, "the console takes one query parameter: offset=N");
	req->offset = (int64_t)v;
	return 0;
}

/* A body of one optional field, "timeout" (seconds, min..max; absent or no body: def),
 * into *out; what names the body in messages. */
static int get_timeout(json_t *obj, const char *what, uint64_t min, uint64_t max, uint64_t def,
		       unsigned *out, struct pd_error *err)
{
	static const char *const timeout_fields[] = {"timeout", NULL};
	uint64_t t = def;
	int ret = obj ? check_fields(obj, what, timeout_fields, err) : 0;

	if (!ret && obj)
		ret = get_uint(obj, "timeout", min, max, def, &t, err);
	*out = (unsigned)t;
	return ret;
}

/* Body parsing for a route whose method matched. */
static int parse_body(struct pd_request *req, const char *method, const char *body, size_t len,
		      struct pd_error *err)
{
	json_t *obj = NULL;
	bool required = req->route == PD_VM_CREATE || req->route == PD_IMAGE_CREATE ||
			req->route == PD_IMAGE_CLONE || req->route == PD_NET_CREATE ||
			req->route == PD_TOKEN_CREATE || req->route == PD_VM_CONSOLE_INPUT ||
			req->route == PD_VM_MIGRATE || req->route == PD_VM_INCOMING ||
			req->route == PD_VM_DISK_ADD;
	int ret;

	if (!strcmp(method, "GET")) {
		if (len)
			return fail(err, 400, "GET takes no body");
		return 0;
	}
	ret = load_body(body, len, required, &obj, err);
	if (ret)
		return ret;
	switch (req->route) {
	case PD_VM_CREATE:
		ret = pd_vm_def_from_json(obj, &req->u.vm, err);
		break;
	case PD_IMAGE_CREATE:
		ret = parse_image(obj, &req->u.image, err);
		break;
	case PD_IMAGE_CLONE:
		ret = parse_clone(obj, &req->u.clone, err);
		break;
	case PD_NET_CREATE:
		ret = parse_network(obj, &req->u.net, err);
		break;
	case PD_TOKEN_CREATE:
		ret = parse_token(obj, &req->u.token, err);
		break;
	case PD_VM_CONSOLE_INPUT:
		ret = check_fields(obj, "console input", input_fields, err);
		if (!ret)
			ret = get_str(obj, "input", true, req->u.input, sizeof(req->u.input), err);
		break;
	case PD_VM_MIGRATE:
		ret = check_fields(obj, "migrate", migrate_fields, err);
		if (!ret)
			ret = get_str(obj, "to", true, req->u.migrate.to, sizeof(req->u.migrate.to),
				      err);
		if (!ret && !pd_name_valid(req->u.migrate.to))
			ret = fail(err, 400, "field 'to' must be a host name");
		break;
	case PD_VM_INCOMING:
		ret = parse_incoming(obj, &req->u.incoming, err);
		break;
	case PD_VM_DISK_ADD:
		ret = parse_disk(obj, "disk", &req->u.disk, err);
		break;
	case PD_VM_DISK_REMOVE:
		ret = get_timeout(obj, "disk removal", 1, PD_EJECT_TIMEOUT_MAX,
				  PD_EJECT_TIMEOUT_DEFAULT, &req->eject_timeout, err);
		break;
	case PD_VM_ACTION:
		if (req->action == PD_STOP) {
			ret = get_timeout(obj, "stop", 0, PD_STOP_TIMEOUT_MAX,
					  PD_STOP_TIMEOUT_DEFAULT, &req->stop_timeout, err);
			break;
		}
		/* fall through */
	default: /* no arguments: no body or {} */
		ret = obj ? check_fields(obj, "request", no_fields, err) : 0;
		break;
	}
	json_decref(obj);
	return ret;
}

static int parse_action(const char *s, enum pd_action *a)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(action_names); i++) {
		if (!strcmp(s, action_names[i])) {
			*a = (enum pd_action)i;
			return 0;
		}
	}
	return -1;
}

static int route_name(const char *seg, const char *what, struct pd_request *req,
		      struct pd_error *err)
{
	if (!pd_name_valid(seg))
		return fail(err, 404, "no such %s: '%.64s' is not a valid name", what, seg);
	snprintf(req->name, sizeof(req->name), "%s", seg);
	return 0;
}

/*
 * /v1/KIND (GET list, POST create) and /v1/KIND/NAME (GET, DELETE), routes r[0..3] in
 * that order. Returns 0 or a status, or -1 for /v1/KIND/NAME/ACTION (seg[2]), which
 * the caller routes (req->name is set).
 */
static int route_collection(const char *method, const char *path,
			    const char seg[4][STORE_NAME_MAX], int n, const char *what,
			    const enum pd_route r[4], struct pd_request *req, struct pd_error *err)
{
	int m, ret;

	if (n == 1) {
		m = two_methods(method, "GET", "POST", "GET, POST", path, err);
		if (m < 0)
			return -m;
		req->route = m == 1 ? r[0] : r[1];
		return 0;
	}
	ret = route_name(seg[1], what, req, err);
	if (ret)
		return ret;
	if (n == 2) {
		m = two_methods(method, "GET", "DELETE", "GET, DELETE", path, err);
		if (m < 0)
			return -m;
		req->route = m == 1 ? r[2] : r[3];
		return 0;
	}
	return -1;
}

static int route(const char *method, const char *path, const char *query, struct pd_request *req,
		 struct pd_error *err)
{
	char seg[4][STORE_NAME_MAX];
	int n = split_path(path, seg), ret;
	uint64_t id;

	if (n < 1)
		return fail(err, 404, "no such path: %.120s", path);
	if (query && *query && !(n == 1 && !strcmp(seg[0], "events")) &&
	    !(n == 3 && !strcmp(seg[0], "vms") && !strcmp(seg[2], "console")))
		return fail(err, 400, "query parameters are not accepted on %.120s", path);

	if (!strcmp(seg[0], "host") && n == 1) {
		req->route = PD_HOST_INFO;
		return method_is(method, "GET", path, err);
	}
	if (!strcmp(seg[0], "hosts") && n == 1) {
		req->route = PD_HOST_LIST;
		return method_is(method, "GET", path, err);
	}
	if (!strcmp(seg[0], "hosts") && n == 3 &&
	    (!strcmp(seg[2], "evacuate") || !strcmp(seg[2], "activate"))) {
		req->route = seg[2][0] == 'e' ? PD_HOST_EVACUATE : PD_HOST_ACTIVATE;
		ret = route_name(seg[1], "host", req, err);
		return ret ? ret : method_is(method, "POST", path, err);
	}
	if (!strcmp(seg[0], "events") && n == 1) {
		req->route = PD_EVENT_LIST;
		ret = method_is(method, "GET", path, err);
		return ret ? ret : parse_events_query(query, req, err);
	}
	if (!strcmp(seg[0], "vms")) {
		const enum pd_route r[4] = {PD_VM_LIST, PD_VM_CREATE, PD_VM_GET, PD_VM_DELETE};

		ret = route_collection(method, path, seg, n, "VM", r, req, err);
		if (ret >= 0)
			return ret;
		if (!strcmp(seg[2], "console")) {
			int m = two_methods(method, "GET", "POST", "GET, POST", path, err);

			if (m < 0)
				return -m;
			req->route = m == 1 ? PD_VM_CONSOLE : PD_VM_CONSOLE_INPUT;
			return m == 1 ? parse_console_query(query, req, err) : 0;
		}
		if (!strcmp(seg[2], "display")) {
			req->route = PD_VM_DISPLAY;
			return method_is(method, "GET", path, err);
		}
		if (!parse_action(seg[2], &req->action)) {
			req->route = PD_VM_ACTION;
			return method_is(method, "POST", path, err);
		}
		if (!strcmp(seg[2], "disks") && n == 4) {
			int m = two_methods(method, "PUT", "DELETE", "PUT, DELETE", path, err);

			if (m < 0)
				return -m;
			if (!pd_dev_id_valid(seg[3]))
				return fail(err, 404, "no such disk: '%.64s' is not a device id (1..31 "
					    "characters of [A-Za-z0-9_-])", seg[3]);
			memcpy(req->dev_id, seg[3], strlen(seg[3]) + 1); /* < PD_DEV_ID_MAX */
			req->route = m == 1 ? PD_VM_DISK_ADD : PD_VM_DISK_REMOVE;
			return 0;
		}
		if (!strcmp(seg[2], "migrate") || !strcmp(seg[2], "incoming")) {
			req->route = seg[2][0] == 'm' ? PD_VM_MIGRATE : PD_VM_INCOMING;
			return method_is(method, "POST", path, err);
		}
	}
	if (!strcmp(seg[0], "images")) {
		const enum pd_route r[4] = {PD_IMAGE_LIST, PD_IMAGE_CREATE, PD_IMAGE_GET,
					    PD_IMAGE_DELETE};

		ret = route_collection(method, path, seg, n, "image", r, req, err);
		if (ret >= 0)
			return ret;
		if (!strcmp(seg[2], "clone")) {
			req->route = PD_IMAGE_CLONE;
			return method_is(method, "POST", path, err);
		}
	}
	if (!strcmp(seg[0], "networks")) {
		const enum pd_route r[4] = {PD_NET_LIST, PD_NET_CREATE, PD_NET_GET, PD_NET_DELETE};

		ret = route_collection(method, path, seg, n, "network", r, req, err);
		if (ret >= 0)
			return ret;
	}
	if (!strcmp(seg[0], "tokens")) {
		const enum pd_route r[4] = {PD_TOKEN_LIST, PD_TOKEN_CREATE, PD_TOKEN_GET,
					    PD_TOKEN_DELETE};

		ret = route_collection(method, path, seg, n, "token", r, req, err);
		if (ret >= 0)
			return ret;
	}
	if (!strcmp(seg[0], "tasks")) {
		if (n == 1) {
			req->route = PD_TASK_LIST;
			return method_is(method, "GET", path, err);
		}
		if (parse_uint(seg[1], 1, INT64_MAX, &id))
			return fail(err, 404, "no such task: '%.32s' is not a task id", seg[1]);
		req->task_id = (int64_t)id;
		if (n == 2) {
			req->route = PD_TASK_GET;
			return method_is(method, "GET", path, err);
		}
		if (n == 3 && !strcmp(seg[2], "cancel")) {
			req->route = PD_TASK_CANCEL;
			return method_is(method, "POST", path, err);
		}
	}
	return fail(err, 404, "no such path: %.120s", path);
}

int pd_parse_request(const char *method, const char *path, const char *query, const char *body,
		     size_t body_len, struct pd_request *req, struct pd_error *err)
{
	int ret;

	memset(req, 0, sizeof(*req));
	memset(err, 0, sizeof(*err));
	if (strnlen(path, PD_URL_MAX + 1) > PD_URL_MAX)
		return fail(err, 404, "no such path");
	if (body_len > PD_BODY_MAX)
		return fail(err, 413, "request body larger than %d bytes", PD_BODY_MAX);
	ret = route(method, path, query, req, err);
	if (ret)
		return ret;
	return parse_body(req, method, body, body_len, err);
}
