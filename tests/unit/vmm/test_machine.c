// SPDX-License-Identifier: MIT
/*
 * The machine's config (vmm/machine.c): the rules `plinth run`'s options and the
 * API's PUT /v1/vm/config share, the JSON schema (strict, every refusal one line and
 * nothing kept), the devices through their typed configs, and GET /v1/vm's view.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "machine.h"
#include "util.h"

/* Parse text; 0 or the error, whose one line lands in err. */
static int parse(const char *text, struct machine_conf *mc, char *err, size_t errlen)
{
	struct log_capture c;
	json_error_t jerr;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	int ret;

	if (!o)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	log_capture_begin(&c);
	ret = machine_conf_parse_json(o, mc);
	log_capture_end(&c);
	json_decref(o);
	assert_int_equal(c.errors, ret ? 1 : 0);
	snprintf(err, errlen, "%s", c.first_error);
	return ret;
}

static void test_full(void **state)
{
	struct machine_conf mc;
	char err[512];
	json_t *j;

	(void)state;
	assert_int_equal(parse("{\"kernel\": \"/boot/vmlinuz\", \"initrd\": \"/boot/initrd\", "
			       "\"cmdline\": \"console=ttyS0 quiet\", \"cpus\": 2, \"memory\": "
			       "\"256M\", \"no_reboot\": true, \"devices\": [{\"kind\": \"disk\", "
			       "\"path\": \"/srv/a.img\"}, {\"kind\": \"rng\", \"id\": \"entropy\", "
			       "\"addr\": 7}, {\"kind\": \"console\", \"type\": \"virtio\"}]}",
			       &mc, err, sizeof(err)), 0);
	assert_string_equal(mc.cfg.kernel, "/boot/vmlinuz");
	assert_string_equal(mc.cfg.initrd, "/boot/initrd");
	assert_string_equal(mc.cfg.cmdline, "console=ttyS0 quiet");
	assert_null(mc.cfg.firmware);
	assert_int_equal(mc.cfg.cpus, 2);
	assert_int_equal(mc.cfg.memory, 256 * MiB);
	assert_true(mc.cfg.no_reboot);
	assert_int_equal(mc.cfg.nr_devices, 3);
	/* Ids generated, slots given in order around the pinned one, as on the command line. */
	assert_string_equal(mc.cfg.devices[0].id, "disk0");
	assert_int_equal(mc.cfg.devices[0].slot, 1);
	assert_string_equal(mc.cfg.devices[1].id, "entropy");
	assert_int_equal(mc.cfg.devices[1].slot, 7);
	assert_int_equal(mc.cfg.devices[2].slot, 2);
	/* The virtio console on stdio takes the input from COM1. */
	assert_int_equal(mc.cfg.console_in, -1);

	j = machine_config_json(&mc.cfg);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "kernel")), "/boot/vmlinuz");
	assert_int_equal(json_integer_value(json_object_get(j, "cpus")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "memory")), 256 * MiB);
	assert_int_equal(json_array_size(json_object_get(j, "devices")), 3);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "devices"), 1), "id")),
			    "entropy");
	json_decref(j);
	machine_conf_free(&mc);
	assert_int_equal(mc.cfg.nr_devices, 0);
}

static void test_defaults_and_forms(void **state)
{
	struct machine_conf mc;
	char err[512];

	(void)state;
	assert_int_equal(parse("{\"kernel\": \"k\"}", &mc, err, sizeof(err)), 0);
	assert_int_equal(mc.cfg.cpus, 1);
	assert_int_equal(mc.cfg.memory, MACHINE_DEFAULT_MEMORY);
	assert_string_equal(mc.cfg.cmdline, MACHINE_DEFAULT_CMDLINE);
	assert_null(mc.cfg.initrd);
	assert_int_equal(mc.cfg.console_in, 0);
	assert_false(mc.cfg.no_reboot);
	machine_conf_free(&mc);
	/* memory in bytes, cpus as a string: the command line's forms. */
	assert_int_equal(parse("{\"kernel\": \"k\", \"memory\": 134217728, \"cpus\": \"4\"}", &mc,
			       err, sizeof(err)), 0);
	assert_int_equal(mc.cfg.memory, 128 * MiB);
	assert_int_equal(mc.cfg.cpus, 4);
	machine_conf_free(&mc);
	assert_int_equal(parse("{\"firmware\": \"/ovmf.fd\", \"firmware_vars\": \"/v.fd\", "
			       "\"memory\": \"1G\"}", &mc, err, sizeof(err)), 0);
	assert_string_equal(mc.cfg.firmware, "/ovmf.fd");
	assert_string_equal(mc.cfg.firmware_vars, "/v.fd");
	assert_null(mc.cfg.kernel);
	machine_conf_free(&mc);
}

static void test_refusals(void **state)
{
	static const char *const bad[][2] = {
		{ "{}", "kernel (or firmware) is required" },
		{ "{\"kernel\": \"k\", \"frobnicate\": 1}", "unknown field 'frobnicate'" },
		{ "{\"kernel\": \"k\", \"cpus\": 0}", "field 'cpus' must be a number from 1 to 64, not '0'" },
		{ "{\"kernel\": \"k\", \"cpus\": 65}", "from 1 to 64" },
		{ "{\"kernel\": \"k\", \"cpus\": -1}", "field 'cpus' must be a number from 1 to 64" },
		{ "{\"kernel\": \"k\", \"cpus\": 1.5}", "field 'cpus' must be" },
		{ "{\"kernel\": \"k\", \"memory\": \"1M\"}", "field 'memory' must be a size of at least 32M" },
		{ "{\"kernel\": \"k\", \"memory\": 33554433}", "whole 4K pages" },
		{ "{\"kernel\": \"k\", \"memory\": \"lots\"}", "not 'lots'" },
		{ "{\"kernel\": \"k\", \"memory\": true}", "field 'memory' must be a size" },
		{ "{\"kernel\": 5}", "field 'kernel' must be a string" },
		{ "{\"kernel\": \"\"}", "field 'kernel' must be 1 to 4095 bytes" },
		{ "{\"kernel\": \"a\\u0000b\"}", "with no NUL" },
		{ "{\"kernel\": \"k\", \"no_reboot\": 1}", "field 'no_reboot' must be true or false" },
		{ "{\"kernel\": \"k\", \"firmware\": \"f\"}", "firmware boots the firmware, not kernel/initrd" },
		{ "{\"kernel\": \"k\", \"firmware_vars\": \"v\"}", "firmware_vars needs firmware PATH" },
		{ "{\"kernel\": \"k\", \"devices\": {}}", "field 'devices' must be an array" },
		{ "{\"kernel\": \"k\", \"devices\": [1]}", "expected an object with \"kind\"" },
		{ "{\"kernel\": \"k\", \"devices\": [{\"kind\": \"floppy\"}]}", "unknown kind \"floppy\"" },
		{ "{\"kernel\": \"k\", \"devices\": [{\"kind\": \"disk\", \"path\": \"/a\", \"size\": 1}]}",
		  "device disk: unknown key \"size\"" },
		{ "{\"kernel\": \"k\", \"devices\": [{\"kind\": \"disk\", \"path\": \"/a\\u0000b\"}]}",
		  "\"path\" must be a string" },
		{ "{\"kernel\": \"k\", \"devices\": [{\"kind\": \"rng\", \"id\": \"x\"}, {\"kind\": "
		  "\"rng\", \"id\": \"x\"}]}", "id=x is already the id of another device" },
		{ "{\"kernel\": \"k\", \"devices\": [{\"kind\": \"rng\", \"addr\": 0}]}", "addr=0" },
	};
	struct machine_conf mc;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(bad[i][0], &mc, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("%s: '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
		/* Nothing kept: the config is empty again. */
		assert_int_equal(mc.cfg.nr_devices, 0);
		assert_null(mc.cfg.kernel);
	}
}

/* Size caps: a string of MACHINE_STR_MAX bytes and one device too many. */
static void test_caps(void **state)
{
	struct machine_conf mc;
	static char text[MACHINE_STR_MAX + 64];
	char err[512], *p;
	size_t i;

	(void)state;
	p = text + sprintf(text, "{\"kernel\": \"");
	memset(p, 'a', MACHINE_STR_MAX);
	strcpy(p + MACHINE_STR_MAX, "\"}");
	assert_int_equal(parse(text, &mc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1 to 4095 bytes"));
	p = text + sprintf(text, "{\"kernel\": \"k\", \"devices\": [");
	for (i = 0; i <= VM_MAX_DEVICES; i++)
		p += sprintf(p, "%s{\"kind\": \"rng\"}", i ? "," : "");
	strcpy(p, "]}");
	assert_int_equal(parse(text, &mc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 24 devices"));
}

/* The command line's words: the option's name, then these. */
static void test_cli_helpers(void **state)
{
	struct vm_config cfg;
	unsigned int cpus;
	uint64_t mem;
	char err[160];

	(void)state;
	assert_int_equal(machine_cpus("8", &cpus, err, sizeof(err)), 0);
	assert_int_equal(cpus, 8);
	assert_int_equal(machine_cpus("0", &cpus, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "must be a number from 1 to 64, not '0'");
	assert_int_equal(machine_memory("2G", &mem, err, sizeof(err)), 0);
	assert_int_equal(mem, 2048 * MiB);
	assert_int_equal(machine_memory("lots", &mem, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "must be a size of at least 32M in whole 4K pages (e.g. 512M, "
			    "2G), not 'lots'");
	machine_defaults(&cfg);
	assert_int_equal(machine_check_boot(&cfg, false, err, sizeof(err)), 0);
	cfg.firmware = "f";
	cfg.kernel = "k";
	assert_int_equal(machine_check_boot(&cfg, false, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--firmware boots the firmware, not --kernel/--initrd: give one "
			    "of them");
	cfg.firmware = NULL;
	cfg.firmware_vars = "v";
	assert_int_equal(machine_check_boot(&cfg, false, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--firmware-vars needs --firmware PATH");
}

/* GET /v1/vm's config is what PUT /v1/vm/config takes: read back, it parses to the
 * same machine and shows the same JSON again, for every device class. */
static void test_round_trip(void **state)
{
	static const char *const configs[] = {
		"{\"kernel\": \"/boot/vmlinuz\", \"initrd\": \"/boot/initrd\", \"cmdline\": \"quiet\", "
		"\"cpus\": 3, \"memory\": \"384M\", \"no_reboot\": true, \"devices\": ["
		"{\"kind\": \"disk\", \"path\": \"/srv/a.qcow2\", \"id\": \"os\", \"readonly\": true}, "
		"{\"kind\": \"net\", \"tap\": \"tap0\", \"mac\": \"52:54:00:12:34:56\"}, "
		"{\"kind\": \"rng\", \"addr\": 9}, {\"kind\": \"vsock\", \"cid\": 5, \"socket\": \"/run/v.vsock\"}, "
		"{\"kind\": \"console\", \"type\": \"virtio\"}, "
		"{\"kind\": \"display\", \"vnc\": \"unix:/run/v.sock\", \"width\": 800, "
		"\"height\": 600}]}",
		"{\"firmware\": \"/usr/share/OVMF/OVMF_CODE_4M.fd\", \"firmware_vars\": \"/srv/v.fd\", "
		"\"devices\": [{\"kind\": \"disk\", \"path\": \"/srv/b.vmdk\"}]}",
	};
	struct machine_conf a, b;
	char err[512], *ta, *tb;
	json_t *ja, *jb;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(configs); i++) {
		if (parse(configs[i], &a, err, sizeof(err)))
			fail_msg("config %zu: %s", i, err);
		ja = machine_config_json(&a.cfg);
		assert_non_null(ja);
		ta = json_dumps(ja, JSON_SORT_KEYS | JSON_COMPACT);
		if (parse(ta, &b, err, sizeof(err)))
			fail_msg("config %zu read back: %s in %s", i, err, ta);
		jb = machine_config_json(&b.cfg);
		tb = json_dumps(jb, JSON_SORT_KEYS | JSON_COMPACT);
		assert_string_equal(ta, tb);
		assert_int_equal(a.cfg.cpus, b.cfg.cpus);
		assert_int_equal(a.cfg.memory, b.cfg.memory);
		assert_int_equal(a.cfg.no_reboot, b.cfg.no_reboot);
		assert_int_equal(a.cfg.nr_devices, b.cfg.nr_devices);
		free(ta);
		free(tb);
		json_decref(ja);
		json_decref(jb);
		machine_conf_free(&a);
		machine_conf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults_and_forms),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_cli_helpers),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
