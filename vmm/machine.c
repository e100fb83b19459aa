// SPDX-License-Identifier: MIT
#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void machine_defaults(struct vm_config *cfg)
{
	*cfg = (struct vm_config){
		.cmdline = MACHINE_DEFAULT_CMDLINE,
		.cpus = 1,
		.memory = MACHINE_DEFAULT_MEMORY,
		.console_in = STDIN_FILENO,
		.console_out = STDOUT_FILENO,
		.restore_memory_fd = -1,
		.service_fd = -1,
		.seccomp = true,
		.kvm_fd = -1,
		.kernel_fd = -1,
		.vars_fd = -1,
		.initrd_fd = -1,
	};
}

int machine_cpus(const char *val, unsigned int *out, char *err, size_t errlen)
{
	uint64_t v;

	if (parse_uint(val, 1, VM_MAX_CPUS, &v)) {
		snprintf(err, errlen, "must be a number from 1 to %d, not '%.64s'", VM_MAX_CPUS,
			 val);
		return -EINVAL;
	}
	*out = (unsigned int)v;
	return 0;
}

int machine_memory(const char *val, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;

	if (parse_size(val, &v) || v < MACHINE_MIN_MEMORY || v % (4 * KiB)) {
		snprintf(err, errlen, "must be a size of at least %lluM in whole 4K pages (e.g. "
			 "512M, 2G), not '%.64s'", MACHINE_MIN_MEMORY / MiB, val);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int machine_check_boot(const struct vm_config *cfg, bool api, char *err, size_t errlen)
{
	const char *dash = api ? "" : "--";

	if (cfg->firmware && (cfg->kernel || cfg->initrd)) {
		snprintf(err, errlen, "%sfirmware boots the firmware, not %skernel/%sinitrd: give "
			 "one of them", dash, dash, dash);
		return -EINVAL;
	}
	if (cfg->firmware_vars && !cfg->firmware) {
		snprintf(err, errlen, "%s needs %sfirmware PATH",
			 api ? "firmware_vars" : "--firmware-vars", dash);
		return -EINVAL;
	}
	if (api && !cfg->kernel && !cfg->firmware) {
		snprintf(err, errlen, "kernel (or firmware) is required");
		return -EINVAL;
	}
	return 0;
}

void machine_note_device(struct vm_config *cfg, const struct dev_config *d)
{
	/* hvc0 on this terminal: COM1 keeps the output, not the input. */
	if (d->cls->uses_stdin && d->cls->uses_stdin(d->conf))
		cfg->console_in = -1;
}

/* The string keys, in the order of machine_conf.str[]. */
static const char *const str_keys[] = { "kernel", "initrd", "cmdline", "firmware",
					"firmware_vars" };

/* json_t's string or integer value as text into buf (the command line's form), or NULL. */
static const char *scalar_text(const json_t *v, char *buf, size_t size)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	if (json_is_string(v) && json_string_length(v) < size &&
	    strlen(json_string_value(v)) == json_string_length(v)) {
		snprintf(buf, size, "%s", json_string_value(v));
		return buf;
	}
	return NULL;
}

/* A string field (non-empty, no NUL, < MACHINE_STR_MAX) into *out (malloc'd). */
static int take_string(const char *key, const json_t *v, char **out)
{
	size_t len;

	if (!json_is_string(v)) {
		log_error("field '%s' must be a string", key);
		return -EINVAL;
	}
	len = json_string_length(v);
	if (!len || len >= MACHINE_STR_MAX || strlen(json_string_value(v)) != len) {
		log_error("field '%s' must be 1 to %d bytes with no NUL", key, MACHINE_STR_MAX - 1);
		return -EINVAL;
	}
	*out = strdup(json_string_value(v));
	if (!*out) {
		log_error("config: out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int parse_devices(const json_t *arr, struct vm_config *cfg)
{
	size_t i;
	int ret;

	if (!json_is_array(arr)) {
		log_error("field 'devices' must be an array of device objects");
		return -EINVAL;
	}
	if (json_array_size(arr) > VM_MAX_DEVICES) {
		log_error("field 'devices': at most %d devices", VM_MAX_DEVICES);
		return -EINVAL;
	}
	for (i = 0; i < json_array_size(arr); i++) {
		ret = dev_config_parse_json(json_array_get(arr, i), &cfg->devices[cfg->nr_devices]);
		if (ret)
			return ret;
		machine_note_device(cfg, &cfg->devices[cfg->nr_devices]);
		cfg->nr_devices++;
	}
	return dev_configs_finish(cfg->devices, cfg->nr_devices);
}

/* One key of the machine's object. */
static int parse_key(struct machine_conf *mc, const char *key, const json_t *v)
{
	struct vm_config *cfg = &mc->cfg;
	char buf[32], err[160];
	const char *text;
	size_t i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(str_keys); i++) {
		if (strcmp(key, str_keys[i]))
			continue;
		ret = take_string(key, v, &mc->str[i]);
		if (ret)
			return ret;
		return 0;
	}
	if (!strcmp(key, "cpus") || !strcmp(key, "memory")) {
		bool cpus = key[0] == 'c';

		text = scalar_text(v, buf, sizeof(buf));
		if (!text)
			snprintf(err, sizeof(err), "must be %s",
				 cpus ? "a number from 1 to 64" : "a size (\"512M\") or a number of bytes");
		else if (cpus ? machine_cpus(text, &cfg->cpus, err, sizeof(err)) :
				machine_memory(text, &cfg->memory, err, sizeof(err)))
			text = NULL;
		if (!text) {
			log_error("field '%s' %s", key, err);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "no_reboot")) {
		if (!json_is_boolean(v)) {
			log_error("field 'no_reboot' must be true or false");
			return -EINVAL;
		}
		cfg->no_reboot = json_is_true(v);
		return 0;
	}
	if (!strcmp(key, "devices"))
		return parse_devices(v, cfg);
	log_error("unknown field '%.64s' (kernel, initrd, cmdline, firmware, firmware_vars, "
		  "cpus, memory, no_reboot, devices)", key);
	return -EINVAL;
}

int machine_conf_parse_json(const json_t *obj, struct machine_conf *mc)
{
	struct vm_config *cfg = &mc->cfg;
	const char *key;
	char err[160];
	json_t *v;
	int ret;

	memset(mc, 0, sizeof(*mc));
	machine_defaults(cfg);
	if (!json_is_object(obj)) {
		log_error("the machine's config must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)obj, key, v) {
		ret = parse_key(mc, key, v);
		if (ret)
			goto out_free;
	}
	cfg->kernel = mc->str[0];
	cfg->initrd = mc->str[1];
	if (mc->str[2])
		cfg->cmdline = mc->str[2];
	cfg->firmware = mc->str[3];
	cfg->firmware_vars = mc->str[4];
	ret = machine_check_boot(cfg, true, err, sizeof(err));
	if (ret) {
		log_error("%s", err);
		goto out_free;
	}
	return 0;

out_free:
	machine_conf_free(mc);
	return ret;
}

void machine_conf_free(struct machine_conf *mc)
{
	size_t i;

	dev_configs_free(mc->cfg.devices, mc->cfg.nr_devices);
	for (i = 0; i < ARRAY_SIZE(mc->str); i++)
		free(mc->str[i]);
	memset(mc, 0, sizeof(*mc));
	machine_defaults(&mc->cfg);
}

json_t *machine_config_json(const struct vm_config *c)
{
	json_t *devs = json_array();
	unsigned int i;

	for (i = 0; devs && i < c->nr_devices; i++) {
		if (json_array_append_new(devs, dev_config_to_json(&c->devices[i]))) {
			json_decref(devs);
			return NULL;
		}
	}
	if (!devs)
		return NULL;
	return json_pack("{s:s*, s:s*, s:s*, s:s*, s:s, s:i, s:I, s:b, s:o}", "kernel", c->kernel,
			 "firmware", c->firmware, "firmware_vars", c->firmware_vars, "initrd",
			 c->initrd, "cmdline", c->cmdline, "cpus", (int)c->cpus, "memory",
			 (json_int_t)c->memory, "no_reboot", c->no_reboot, "devices", devs);
}
