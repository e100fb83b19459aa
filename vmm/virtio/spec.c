// SPDX-License-Identifier: MIT
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

void spec_free(char **vals, size_t nkeys)
{
	size_t i;

	for (i = 0; i < nkeys; i++) {
		free(vals[i]);
		vals[i] = NULL;
	}
}

static void log_expected(const char *opt, const char *what, const char *name,
			 const char *const *keys, size_t nkeys)
{
	char list[256] = "";
	size_t i, used = 0;

	for (i = 0; i < nkeys && used < sizeof(list); i++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", keys[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	log_error("%s: %s '%s' (expected %s)", opt, what, name, list);
}

int spec_parse(const char *opt, const char *spec, const char *const *keys, size_t nkeys,
	       const char *flag_key, char **vals)
{
	const char *p = spec;
	size_t i;

	for (i = 0; i < nkeys; i++)
		vals[i] = NULL;
	if (!spec || !*spec) {
		log_error("%s: empty device description", opt);
		return -EINVAL;
	}
	while (*p) {
		const char *eq = NULL, *s, *vstart;
		char *key, *val, *v;

		/* Find the end of this item: a single ',' (",," is an escaped comma). */
		for (s = p; *s; s++) {
			if (*s == ',' && s[1] == ',') {
				s++;
				continue;
			}
			if (*s == ',')
				break;
			if (*s == '=' && !eq)
				eq = s;
		}
		if (!eq && !flag_key) {
			log_error("%s: '%.*s' is not key=value", opt, (int)(s - p), p);
			goto out_free;
		}
		/* A bare word is the value of flag_key. */
		vstart = eq ? eq + 1 : p;
		key = eq ? strndup(p, (size_t)(eq - p)) : strdup(flag_key);
		val = malloc((size_t)(s - vstart) + 1);
		if (!key || !val) {
			free(key);
			free(val);
			log_error("%s: out of memory", opt);
			spec_free(vals, nkeys);
			return -ENOMEM;
		}
		/* Copy the value, turning ",," back into ','. */
		for (v = val; vstart < s; vstart++) {
			*v++ = *vstart;
			if (*vstart == ',')
				vstart++;
		}
		*v = '\0';
		for (i = 0; i < nkeys; i++)
			if (!strcmp(key, keys[i]))
				break;
		if (i == nkeys) {
			log_expected(opt, "unknown key", key, keys, nkeys);
			free(key);
			free(val);
			goto out_free;
		}
		if (vals[i]) {
			log_error("%s: '%s' given twice", opt, key);
			free(key);
			free(val);
			goto out_free;
		}
		free(key);
		vals[i] = val;
		p = *s ? s + 1 : s;
	}
	return 0;

out_free:
	spec_free(vals, nkeys);
	return -EINVAL;
}

int spec_bool(const char *opt, const char *key, const char *val, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(val, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(val, no[i])) {
			*out = false;
			return 0;
		}
	}
	log_error("%s: %s=%s: expected on or off", opt, key, val);
	return -EINVAL;
}

int spec_uint(const char *opt, const char *key, const char *val, uint64_t min, uint64_t max,
	      uint64_t *out)
{
	if (parse_uint(val, min, max, out)) {
		log_error("%s: %s=%s: expected a number from %llu to %llu", opt, key, val,
			  (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

/* ---- for device classes' parse and to_json (vmm/devconf.h) ---- */

int spec_dup(const char *opt, const char *val, char **out)
{
	*out = NULL;
	if (!val)
		return 0;
	*out = strdup(val);
	if (*out)
		return 0;
	log_error("%s: out of memory", opt);
	return -ENOMEM;
}

int spec_flag(const char *opt, const char *key, const char *val, bool *out)
{
	*out = false;
	return val ? spec_bool(opt, key, val, out) : 0;
}

/* o with key set to v (a new reference, taken), or NULL (o released) when it cannot be. */
static json_t *json_set(json_t *o, const char *key, json_t *v)
{
	if (o && v && !json_object_set_new(o, key, v))
		return o;
	json_decref(v);
	json_decref(o);
	return NULL;
}

json_t *spec_json_str(json_t *o, const char *key, const char *val)
{
	return o && val ? json_set(o, key, json_string(val)) : o;
}

json_t *spec_json_flag(json_t *o, const char *key, bool val)
{
	return o && val ? json_set(o, key, json_true()) : o;
}

json_t *spec_json_uint(json_t *o, const char *key, uint64_t val)
{
	return o ? json_set(o, key, json_integer((json_int_t)val)) : o;
}

int spec_none_parse(const char *opt, char *const *vals, void **conf)
{
	(void)opt;
	(void)vals;
	*conf = calloc(1, 1); /* a dev_config owns a conf even without options */
	return *conf ? 0 : -ENOMEM;
}

json_t *spec_none_to_json(const void *conf)
{
	(void)conf;
	return json_object();
}

bool spec_none_reopens(const void *conf)
{
	(void)conf;
	return true; /* opens nothing */
}
