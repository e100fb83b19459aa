// SPDX-License-Identifier: MIT
#include "devconf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "virtio/spec.h"

const struct dev_class *dev_class_find(const char *name)
{
	size_t i;

	for (i = 0; i < dev_nr_classes; i++)
		if (!strcmp(dev_classes[i]->name, name))
			return dev_classes[i];
	return NULL;
}

bool dev_id_valid(const char *id)
{
	size_t i, n = strlen(id);

	if (!n || n >= DEV_ID_MAX || !isalpha((unsigned char)id[0]))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

/* The id= and addr= every class takes, checked; the rest to the class. */
static int parse_common(const char *opt, const char *id, const char *addr, struct dev_config *d)
{
	uint64_t slot;

	d->addr = -1;
	if (id) {
		if (!dev_id_valid(id)) {
			log_error("%s: id=%s: expected 1 to %d letters, digits, '_' or '-', starting "
				  "with a letter", opt, id, DEV_ID_MAX - 1);
			return -EINVAL;
		}
		memcpy(d->id, id, strlen(id) + 1);
	}
	if (addr) {
		if (parse_uint(addr, DEV_SLOT_FIRST, DEV_SLOT_LAST, &slot)) {
			log_error("%s: addr=%s: expected a PCI slot from %d to %d", opt, addr,
				  DEV_SLOT_FIRST, DEV_SLOT_LAST);
			return -EINVAL;
		}
		d->addr = (int)slot;
	}
	return 0;
}

/* Append "key=value" to buf (",," for a ',' in value), with a ',' before all but the first. */
static int spec_append(char **buf, size_t *len, const char *key, const char *val)
{
	size_t need = strlen(key) + 2 + 2 * strlen(val) + 1, n = *len;
	char *p = realloc(*buf, n + need);
	const char *s;

	if (!p)
		return -ENOMEM;
	*buf = p;
	if (n)
		p[n++] = ',';
	n += (size_t)sprintf(p + n, "%s=", key);
	for (s = val; *s; s++) {
		p[n++] = *s;
		if (*s == ',')
			p[n++] = ',';
	}
	p[n] = '\0';
	*len = n;
	return 0;
}

/* A JSON scalar as the string a command line would give: NULL if it is no scalar. */
static char *json_scalar(const json_t *v)
{
	char buf[32];

	/* A NUL inside would cut the value short where the command line cannot: refused. */
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
		return strdup(json_string_value(v));
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "on" : "off");
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(buf);
	}
	errno = EINVAL;
	return NULL;
}

/* The canonical spec of d->conf, from the class's JSON view. 0 or -ENOMEM. */
static int make_spec(struct dev_config *d)
{
	json_t *o = d->cls->to_json(d->conf), *v;
	const char *key;
	size_t len = 0;
	char *s;
	int ret = 0;

	if (!o)
		return -ENOMEM;
	d->spec = strdup("");
	if (!d->spec)
		ret = -ENOMEM;
	json_object_foreach(o, key, v) {
		if (ret)
			break;
		s = json_scalar(v);
		if (!s || spec_append(&d->spec, &len, key, s))
			ret = -ENOMEM;
		free(s);
	}
	json_decref(o);
	return ret;
}

/* vals: the class's keys, then id, then addr. Takes them (frees every one). */
static int parse_vals(const struct dev_class *cls, const char *opt, char **vals,
		      struct dev_config *d)
{
	size_t n = cls->nr_keys;
	int ret;

	memset(d, 0, sizeof(*d));
	d->cls = cls;
	ret = parse_common(opt, vals[n], vals[n + 1], d);
	if (!ret)
		ret = cls->parse(opt, vals, &d->conf);
	if (!ret && make_spec(d)) {
		log_error("%s: out of memory", opt);
		ret = -ENOMEM;
	}
	spec_free(vals, n + 2);
	if (ret)
		dev_config_free(d);
	return ret;
}

/* The class's keys followed by "id" and "addr". */
static void all_keys(const struct dev_class *cls, const char **keys)
{
	size_t i;

	for (i = 0; i < cls->nr_keys; i++)
		keys[i] = cls->keys[i];
	keys[i] = "id";
	keys[i + 1] = "addr";
}

int dev_config_parse_kv(const struct dev_class *cls, const char *spec, struct dev_config *d)
{
	const char *keys[DEV_MAX_KEYS + 2];
	char *vals[DEV_MAX_KEYS + 2];
	char opt[32];
	size_t i;
	int ret;

	memset(d, 0, sizeof(*d));
	snprintf(opt, sizeof(opt), "--%s", cls->name);
	all_keys(cls, keys);
	if ((!spec || !*spec) && cls->arg_optional) {
		for (i = 0; i < cls->nr_keys + 2; i++)
			vals[i] = NULL;
	} else {
		ret = spec_parse(opt, spec, keys, cls->nr_keys + 2, cls->flag_key, vals);
		if (ret)
			return ret;
	}
	return parse_vals(cls, opt, vals, d);
}

int dev_config_parse_json(const json_t *obj, struct dev_config *d)
{
	const struct dev_class *cls;
	const char *keys[DEV_MAX_KEYS + 2], *key, *kind;
	char *vals[DEV_MAX_KEYS + 2] = { NULL };
	json_t *v;
	char opt[48];
	size_t i, n;

	memset(d, 0, sizeof(*d));
	kind = json_string_value(json_object_get(obj, "kind"));
	if (!json_is_object(obj) || !kind) {
		log_error("device: expected an object with \"kind\" (disk, net, console, rng, balloon, vsock)");
		return -EINVAL;
	}
	cls = dev_class_find(kind);
	if (!cls) {
		log_error("device: unknown kind \"%.32s\"", kind);
		return -EINVAL;
	}
	snprintf(opt, sizeof(opt), "device %s", cls->name);
	all_keys(cls, keys);
	n = cls->nr_keys + 2;
	json_object_foreach((json_t *)obj, key, v) {
		if (!strcmp(key, "kind"))
			continue;
		for (i = 0; i < n && strcmp(key, keys[i]); i++)
			;
		if (i == n) {
			log_error("%s: unknown key \"%.32s\"", opt, key);
			goto out_free;
		}
		vals[i] = json_scalar(v);
		if (!vals[i]) {
			log_error("%s: \"%s\" must be a string, a boolean or a number", opt, key);
			goto out_free;
		}
	}
	return parse_vals(cls, opt, vals, d);

out_free:
	spec_free(vals, n);
	return -EINVAL;
}

/* Whether id is taken by a device of devs other than skip. */
static bool id_taken(const struct dev_config *devs, unsigned int n, const char *id,
		     unsigned int skip)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (i != skip && !strcmp(devs[i].id, id))
			return true;
	return false;
}

int dev_configs_finish(struct dev_config *devs, unsigned int n)
{
	uint32_t used = 1u << 0; /* the host bridge */
	unsigned int i, k;

	for (i = 0; i < n; i++) {
		if (devs[i].id[0] && id_taken(devs, i, devs[i].id, i)) {
			log_error("--%s: id=%s is already the id of another device", devs[i].cls->name,
				  devs[i].id);
			return -EINVAL;
		}
	}
	/* Generated ids: the lowest <class><n> nobody has, given ids first. */
	for (i = 0; i < n; i++) {
		if (devs[i].id[0])
			continue;
		for (k = 0;; k++) {
			snprintf(devs[i].id, sizeof(devs[i].id), "%s%u", devs[i].cls->name, k);
			if (!id_taken(devs, n, devs[i].id, i))
				break;
		}
	}
	/* Slots: every addr= first, then the lowest free one in order. */
	for (i = 0; i < n; i++) {
		if (devs[i].addr < 0)
			continue;
		if (used & (1u << devs[i].addr)) {
			for (k = 0; k < i && devs[k].addr != devs[i].addr; k++)
				;
			log_error("--%s: addr=%d is already the slot of %s", devs[i].cls->name,
				  devs[i].addr, devs[k].id);
			return -EINVAL;
		}
		used |= 1u << devs[i].addr;
		devs[i].slot = (unsigned int)devs[i].addr;
	}
	for (i = 0; i < n; i++) {
		if (devs[i].addr >= 0)
			continue;
		for (k = DEV_SLOT_FIRST; k <= DEV_SLOT_LAST && (used & (1u << k)); k++)
			;
		if (k > DEV_SLOT_LAST) {
			log_error("--%s: no PCI slot left (at most %d devices)", devs[i].cls->name,
				  DEV_SLOT_LAST);
			return -EINVAL;
		}
		used |= 1u << k;
		devs[i].slot = k;
	}
	return 0;
}

json_t *dev_config_to_json(const struct dev_config *d)
{
	json_t *o = d->conf ? d->cls->to_json(d->conf) : json_object();

	if (!o)
		return NULL;
	if (json_object_set_new(o, "kind", json_string(d->cls->name)) ||
	    json_object_set_new(o, "id", json_string(d->id)) ||
	    json_object_set_new(o, "addr", json_integer(d->slot))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void dev_config_free(struct dev_config *d)
{
	if (d->cls && d->conf)
		d->cls->free(d->conf);
	free(d->spec);
	memset(d, 0, sizeof(*d));
	d->addr = -1;
}

void dev_configs_free(struct dev_config *devs, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		dev_config_free(&devs[i]);
}
