// SPDX-License-Identifier: MIT
/*
 * Typed device configs: parsed once from a command-line option or from JSON, ids
 * given or generated, PCI slots pinned (addr=) or allocated in order, and every
 * refusal one line; the class table behind the options.
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

#include "devconf.h"
#include "log.h"

#define MAX 9

struct machine {
	struct dev_config d[MAX];
	unsigned int n;
};

/* Parse "kind:spec" into m; 0 or the parser's error, whose one line lands in err. */
static int add(struct machine *m, const char *dev, char *err, size_t errlen)
{
	struct log_capture c;
	const char *colon = strchr(dev, ':');
	char kind[16];
	int ret;

	assert_non_null(colon);
	snprintf(kind, sizeof(kind), "%.*s", (int)(colon - dev), dev);
	log_capture_begin(&c);
	ret = dev_config_parse_kv(dev_class_find(kind), colon + 1, &m->d[m->n]);
	log_capture_end(&c);
	if (!ret)
		m->n++;
	else
		assert_int_equal(c.errors, 1);
	if (err)
		snprintf(err, errlen, "%s", c.first_error);
	return ret;
}

static int finish(struct machine *m, char *err, size_t errlen)
{
	struct log_capture c;
	int ret;

	log_capture_begin(&c);
	ret = dev_configs_finish(m->d, m->n);
	log_capture_end(&c);
	assert_int_equal(c.errors, ret ? 1 : 0);
	if (err)
		snprintf(err, errlen, "%s", c.first_error);
	return ret;
}

static void clear(struct machine *m)
{
	dev_configs_free(m->d, m->n);
	m->n = 0;
}

static void expect_bad(const char *dev, const char *why)
{
	struct machine m = { .n = 0 };
	char err[512];

	assert_int_equal(add(&m, dev, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("'%s': '%s' lacks '%s'", dev, err, why);
	assert_int_equal(m.n, 0);
}

static void test_table(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(dev_nr_classes, 7);
	assert_ptr_equal(dev_class_find("disk"), &dev_class_disk);
	for (i = 0; i < dev_nr_classes; i++) {
		const struct dev_class *c = dev_classes[i];

		assert_ptr_equal(dev_class_find(c->name), c);
		assert_true(c->nr_keys <= DEV_MAX_KEYS);
		assert_non_null(c->parse);
		assert_non_null(c->to_json);
		assert_non_null(c->free);
		assert_non_null(c->create);
	}
	assert_null(dev_class_find("floppy"));
	assert_null(dev_class_find(""));
}

/* Every option as the README writes it parses, into a canonical spec for the device. */
static void test_parse_kv(void **state)
{
	struct machine m = { .n = 0 };

	(void)state;
	assert_int_equal(add(&m, "disk:path=/srv/a,,b.qcow2,format=qcow2,readonly=yes", NULL, 0), 0);
	assert_int_equal(add(&m, "net:tap=tap0,mac=52:54:00:12:34:56", NULL, 0), 0);
	assert_int_equal(add(&m, "console:virtio", NULL, 0), 0);
	assert_int_equal(add(&m, "rng:", NULL, 0), 0);
	assert_int_equal(add(&m, "vsock:cid=3,socket=/run/v.sock", NULL, 0), 0);
	assert_int_equal(add(&m, "console:virtio,path=/dev/pts/3", NULL, 0), 0);
	assert_int_equal(add(&m, "display:vnc=unix:/run/v,,nc", NULL, 0), 0);
	assert_int_equal(add(&m, "display:vnc=tcp:127.0.0.1:5901,width=800,height=600", NULL, 0),
			 0);
	assert_int_equal(add(&m, "balloon:", NULL, 0), 0);
	assert_int_equal(finish(&m, NULL, 0), 0);
	/* A comma in a value stays escaped; booleans are spelt "on". */
	assert_string_equal(m.d[0].spec, "path=/srv/a,,b.qcow2,format=qcow2,readonly=on");
	assert_string_equal(m.d[1].spec, "tap=tap0,mac=52:54:00:12:34:56");
	assert_string_equal(m.d[2].spec, "type=virtio");
	assert_string_equal(m.d[3].spec, "");
	assert_string_equal(m.d[4].spec, "cid=3,socket=/run/v.sock");
	assert_string_equal(m.d[5].spec, "type=virtio,path=/dev/pts/3");
	assert_string_equal(m.d[6].spec, "vnc=unix:/run/v,,nc,width=1024,height=768");
	assert_string_equal(m.d[7].spec, "vnc=tcp:127.0.0.1:5901,width=800,height=600");
	assert_string_equal(m.d[7].id, "display1");
	assert_string_equal(m.d[8].spec, "");
	assert_string_equal(m.d[8].id, "balloon0");
	assert_true(m.d[8].cls->reopens_in_jail(m.d[8].conf));
	assert_false(m.d[6].cls->uses_inet(m.d[6].conf));
	assert_true(m.d[7].cls->uses_inet(m.d[7].conf));
	assert_null(m.d[6].cls->reopens_in_jail);
	/* What the VMM asks the class. */
	assert_true(m.d[2].cls->uses_stdin(m.d[2].conf));
	assert_true(m.d[2].cls->reopens_in_jail(m.d[2].conf));
	assert_false(m.d[5].cls->uses_stdin(m.d[5].conf));
	assert_true(m.d[3].cls->reopens_in_jail(m.d[3].conf));
	assert_null(m.d[0].cls->reopens_in_jail);
	assert_true(m.d[4].cls->io_connect);
	clear(&m);
}

static void test_parse_kv_refusals(void **state)
{
	(void)state;
	expect_bad("disk:format=raw", "--disk: path=FILE is required");
	expect_bad("disk:path=/a,format=qed", "--disk: unknown format 'qed'");
	expect_bad("disk:path=/a,readonly=maybe", "--disk: readonly=maybe: expected on or off");
	expect_bad("disk:path=/a,colour=red", "--disk: unknown key 'colour' (expected path, "
		   "format, readonly, serial, backing, backing_dir, id, addr)");
	expect_bad("net:tap=t,mac=01:00:00:00:00:01", "--net: mac=01:00:00:00:00:01: expected a "
		   "unicast address");
	expect_bad("net:tap=t,mac=52:54:00:12:34", "--net: mac=");
	expect_bad("net:mac=52:54:00:12:34:56", "--net: tap=IFNAME is required");
	expect_bad("console:serial", "--console: expected 'virtio'");
	expect_bad("rng:seed=4", "--rng: unknown key 'seed' (expected id, addr)");
	expect_bad("balloon:pages=4", "--balloon: unknown key 'pages' (expected id, addr)");
	expect_bad("vsock:cid=2,socket=/s", "--vsock: cid=2: expected a number from 3");
	expect_bad("vsock:cid=3", "--vsock: cid=N and socket=PATH are required");
	expect_bad("display:width=800", "--display: vnc=unix:PATH or vnc=tcp:ADDR:PORT is required");
	expect_bad("display:vnc=5900", "--display: vnc=5900: expected unix:PATH or tcp:ADDR:PORT");
	expect_bad("display:vnc=tcp:example.org:5900", "--display: vnc=tcp:example.org:5900: "
		   "expected");
	expect_bad("display:vnc=unix:/s,width=8", "--display: width=8: expected a number from 16");
	expect_bad("display:vnc=unix:/s,height=99999", "--display: height=99999: expected");
	expect_bad("disk:path=/a,id=1st", "--disk: id=1st: expected 1 to 31 letters");
	expect_bad("disk:path=/a,id=a.b", "--disk: id=a.b: expected");
	expect_bad("disk:path=/a,id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "id=aaaa");
	expect_bad("disk:path=/a,addr=0", "--disk: addr=0: expected a PCI slot from 1 to 31");
	expect_bad("disk:path=/a,addr=32", "--disk: addr=32: expected a PCI slot");
	expect_bad("net:tap=t,addr=0x3", "--net: addr=0x3: expected a PCI slot");
	expect_bad("disk:path=/a,id=x,id=y", "--disk: 'id' given twice");
}

/* Ids: given, or the lowest <class><n> nobody has; slots: addr= first, then in order. */
static void test_ids_and_slots(void **state)
{
	struct machine m = { .n = 0 };
	char err[512];

	(void)state;
	assert_int_equal(add(&m, "disk:path=/a", NULL, 0), 0);
	assert_int_equal(add(&m, "disk:path=/b,id=disk0,addr=1", NULL, 0), 0);
	assert_int_equal(add(&m, "net:tap=t", NULL, 0), 0);
	assert_int_equal(add(&m, "disk:path=/c,addr=3", NULL, 0), 0);
	assert_int_equal(add(&m, "rng:", NULL, 0), 0);
	assert_int_equal(finish(&m, NULL, 0), 0);
	assert_string_equal(m.d[0].id, "disk1"); /* disk0 is given to another */
	assert_string_equal(m.d[1].id, "disk0");
	assert_string_equal(m.d[2].id, "net0");
	assert_string_equal(m.d[3].id, "disk2");
	assert_string_equal(m.d[4].id, "rng0");
	assert_int_equal(m.d[0].slot, 2);
	assert_int_equal(m.d[1].slot, 1);
	assert_int_equal(m.d[2].slot, 4);
	assert_int_equal(m.d[3].slot, 3);
	assert_int_equal(m.d[4].slot, 5);
	clear(&m);

	/* Duplicate ids and slot clashes: one line each. */
	assert_int_equal(add(&m, "disk:path=/a,id=os", NULL, 0), 0);
	assert_int_equal(add(&m, "net:tap=t,id=os", NULL, 0), 0);
	assert_int_equal(finish(&m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net: id=os is already the id of another device");
	clear(&m);
	assert_int_equal(add(&m, "disk:path=/a,id=os,addr=4", NULL, 0), 0);
	assert_int_equal(add(&m, "net:tap=t,addr=4", NULL, 0), 0);
	assert_int_equal(finish(&m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--net: addr=4 is already the slot of os");
	clear(&m);

	/* 31 slots: a 32nd device has none. */
	{
		struct dev_config many[32];
		struct log_capture c;
		unsigned int i;

		for (i = 0; i < 32; i++)
			assert_int_equal(dev_config_parse_kv(dev_class_find("rng"), NULL, &many[i]), 0);
		log_capture_begin(&c);
		assert_int_equal(dev_configs_finish(many, 32), -EINVAL);
		log_capture_end(&c);
		assert_string_equal(c.first_error, "--rng: no PCI slot left (at most 31 devices)");
		dev_configs_free(many, 32);
	}
}

/* JSON goes through the same keys and checks as the command line. */
static void test_parse_json(void **state)
{
	struct dev_config d;
	struct log_capture c;
	json_error_t jerr;
	json_t *o, *back;
	char *text;

	(void)state;
	o = json_loads("{\"kind\": \"disk\", \"path\": \"/srv/a.qcow2\", \"readonly\": true, "
		       "\"id\": \"os\", \"addr\": 6}", 0, &jerr);
	assert_non_null(o);
	assert_int_equal(dev_config_parse_json(o, &d), 0);
	json_decref(o);
	assert_ptr_equal(d.cls, &dev_class_disk);
	assert_string_equal(d.id, "os");
	assert_int_equal(d.addr, 6);
	assert_string_equal(d.spec, "path=/srv/a.qcow2,readonly=on");
	assert_int_equal(dev_configs_finish(&d, 1), 0);
	back = dev_config_to_json(&d);
	assert_non_null(back);
	text = json_dumps(back, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(text, "{\"addr\":6,\"id\":\"os\",\"kind\":\"disk\","
				  "\"path\":\"/srv/a.qcow2\",\"readonly\":true}");
	free(text);
	json_decref(back);
	dev_config_free(&d);

	o = json_loads("{\"kind\": \"vsock\", \"cid\": 7, \"socket\": \"/run/v\"}", 0, &jerr);
	assert_int_equal(dev_config_parse_json(o, &d), 0);
	json_decref(o);
	assert_string_equal(d.spec, "cid=7,socket=/run/v");
	dev_config_free(&d);

	/* Refusals, one line each. */
	{
		static const char *const bad[][2] = {
			{ "{\"path\": \"/a\"}", "device: expected an object with \"kind\"" },
			{ "[1]", "device: expected an object with \"kind\"" },
			{ "{\"kind\": \"floppy\"}", "device: unknown kind \"floppy\"" },
			{ "{\"kind\": \"disk\", \"path\": \"/a\", \"colour\": 1}",
			  "device disk: unknown key \"colour\"" },
			{ "{\"kind\": \"disk\", \"path\": [\"/a\"]}",
			  "device disk: \"path\" must be a string, a boolean or a number" },
			{ "{\"kind\": \"net\", \"tap\": \"t\", \"addr\": 40}",
			  "device net: addr=40: expected a PCI slot from 1 to 31" },
			{ "{\"kind\": \"vsock\", \"cid\": -1, \"socket\": \"/s\"}",
			  "device vsock: \"cid\" must be" },
			{ "{\"kind\": \"disk\"}", "device disk: path=FILE is required" },
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			o = json_loads(bad[i][0], JSON_DECODE_ANY, &jerr);
			assert_non_null(o);
			log_capture_begin(&c);
			assert_int_equal(dev_config_parse_json(o, &d), -EINVAL);
			log_capture_end(&c);
			json_decref(o);
			assert_int_equal(c.errors, 1);
			if (!strstr(c.first_error, bad[i][1]))
				fail_msg("%s: '%s' lacks '%s'", bad[i][0], c.first_error, bad[i][1]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_parse_kv),
		cmocka_unit_test(test_parse_kv_refusals),
		cmocka_unit_test(test_ids_and_slots),
		cmocka_unit_test(test_parse_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
