// SPDX-License-Identifier: MIT
/* Unit tests of plinthd's request parser (daemon/request.c): every route, VM
 * definitions (defaults, every field's limits, canonical JSON round trip), image
 * and clone bodies, the events query, and malformed requests of each kind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "request.h"

static struct pd_request *req;

static int parse(const char *method, const char *path, const char *query, const char *body,
		 struct pd_error *err)
{
	return pd_parse_request(method, path, query, body, body ? strlen(body) : 0, req, err);
}

#define KERNEL "\"kernel\": \"/boot/vmlinuz\""

static void test_routes(void **unused)
{
	static const struct {
		const char *method, *path, *body;
		enum pd_route route;
	} ok[] = {
		{"GET", "/v1/vms", NULL, PD_VM_LIST},
		{"POST", "/v1/vms", "{\"name\": \"a\", " KERNEL "}", PD_VM_CREATE},
		{"GET", "/v1/vms/a", NULL, PD_VM_GET},
		{"DELETE", "/v1/vms/a", NULL, PD_VM_DELETE},
		{"POST", "/v1/vms/a/start", NULL, PD_VM_ACTION},
		{"POST", "/v1/vms/a/stop", "{\"timeout\": 5}", PD_VM_ACTION},
		{"POST", "/v1/vms/a/kill", "{}", PD_VM_ACTION},
		{"GET", "/v1/vms/a/console", NULL, PD_VM_CONSOLE},
		{"GET", "/v1/vms/a/display", NULL, PD_VM_DISPLAY},
		{"GET", "/v1/images", NULL, PD_IMAGE_LIST},
		{"POST", "/v1/images", "{\"name\": \"i\", \"size\": 1048576}", PD_IMAGE_CREATE},
		{"GET", "/v1/images/i", NULL, PD_IMAGE_GET},
		{"DELETE", "/v1/images/i", NULL, PD_IMAGE_DELETE},
		{"POST", "/v1/images/i/clone", "{\"name\": \"j\", \"linked\": true}", PD_IMAGE_CLONE},
		{"GET", "/v1/tasks", NULL, PD_TASK_LIST},
		{"GET", "/v1/tasks/7", NULL, PD_TASK_GET},
		{"POST", "/v1/tasks/7/cancel", NULL, PD_TASK_CANCEL},
		{"GET", "/v1/events", NULL, PD_EVENT_LIST},
		{"GET", "/v1/host", NULL, PD_HOST_INFO},
		{"GET", "/v1/hosts", NULL, PD_HOST_LIST},
		{"POST", "/v1/hosts/h1/evacuate", NULL, PD_HOST_EVACUATE},
		{"POST", "/v1/hosts/h1/activate", "{}", PD_HOST_ACTIVATE},
		{"GET", "/v1/networks", NULL, PD_NET_LIST},
		{"POST", "/v1/networks", "{\"name\": \"lan\"}", PD_NET_CREATE},
		{"POST", "/v1/networks", "{\"name\": \"lan\", \"cidr\": \"192.168.8.0/22\"}",
		 PD_NET_CREATE},
		{"GET", "/v1/networks/lan", NULL, PD_NET_GET},
		{"DELETE", "/v1/networks/lan", NULL, PD_NET_DELETE},
	};
	struct pd_error err;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int st = parse(ok[i].method, ok[i].path, NULL, ok[i].body, &err);

		if (st)
			fail_msg("%s %s: %d %s", ok[i].method, ok[i].path, st, err.msg);
		assert_int_equal(req->route, ok[i].route);
	}
	assert_int_equal(parse("POST", "/v1/vms/a/stop", NULL, "{\"timeout\": 5}", &err), 0);
	assert_int_equal(req->action, PD_STOP);
	assert_int_equal(req->stop_timeout, 5);
	assert_string_equal(req->name, "a");
	assert_int_equal(parse("POST", "/v1/vms/a/stop", NULL, NULL, &err), 0);
	assert_int_equal(req->stop_timeout, PD_STOP_TIMEOUT_DEFAULT);
	assert_int_equal(parse("GET", "/v1/tasks/7", NULL, NULL, &err), 0);
	assert_int_equal(req->task_id, 7);
}

static void test_bad_routes(void **unused)
{
	static const struct {
		const char *method, *path, *body;
		int status;
	} bad[] = {
		{"GET", "/", NULL, 404},
		{"GET", "/v2/vms", NULL, 404},
		{"GET", "/v1/vms/", NULL, 404},
		{"GET", "/v1/vms//start", NULL, 404},
		{"GET", "/v1/vms/a/b/c/d", NULL, 404},
		{"POST", "/v1/vms/a/explode", NULL, 404},
		{"GET", "/v1/vms/..", NULL, 404},
		{"GET", "/v1/vms/-a", NULL, 404},
		{"GET", "/v1/tasks/0", NULL, 404},
		{"GET", "/v1/tasks/x", NULL, 404},
		{"PUT", "/v1/vms", NULL, 405},
		{"GET", "/v1/vms/a/start", NULL, 405},
		{"POST", "/v1/vms/a", NULL, 405},
		{"DELETE", "/v1/events", NULL, 405},
		{"POST", "/v1/hosts", NULL, 405},
		{"GET", "/v1/hosts/h1", NULL, 404},
		{"GET", "/v1/hosts/h1/evacuate", NULL, 405},
		{"POST", "/v1/vms/a/display", NULL, 405},
		{"POST", "/v1/hosts/h1/reboot", NULL, 404},
		{"POST", "/v1/hosts/a%2Fb/activate", NULL, 404},
		{"POST", "/v1/hosts/h1/evacuate", "{\"now\": true}", 400},
		{"GET", "/v1/vms", "{}", 400},
		{"POST", "/v1/vms/a/start", "{\"force\": true}", 400},
		{"POST", "/v1/vms/a/start", "[]", 400},
		{"POST", "/v1/vms/a/start", "{", 400},
		{"POST", "/v1/vms/a/stop", "{\"timeout\": -1}", 400},
		{"POST", "/v1/vms/a/stop", "{\"timeout\": 3601}", 400},
		{"POST", "/v1/vms/a/stop", "{\"timeout\": \"5\"}", 400},
		{"POST", "/v1/vms", NULL, 400},
	};
	struct pd_error err;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse(bad[i].method, bad[i].path, NULL, bad[i].body, &err);

		if (st != bad[i].status)
			fail_msg("%s %s: %d, want %d (%s)", bad[i].method, bad[i].path, st,
				 bad[i].status, err.msg);
		assert_true(err.msg[0]);
		assert_null(strchr(err.msg, '\n'));
	}
	assert_int_equal(parse("PUT", "/v1/vms/a", NULL, NULL, &err), 405);
	assert_string_equal(err.allow, "GET, DELETE");
	/* Query strings only on events and the console. */
	assert_int_equal(parse("GET", "/v1/vms", "x=1", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/vms/a/console", "offset=12", NULL, &err), 0);
	assert_int_equal(req->route, PD_VM_CONSOLE);
	assert_int_equal(req->offset, 12);
	assert_int_equal(parse("GET", "/v1/vms/a/console", NULL, NULL, &err), 0);
	assert_int_equal(req->offset, -1);
	assert_int_equal(parse("GET", "/v1/vms/a/console", "offset=-1", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/vms/a/console", "tail=1", NULL, &err), 400);
	assert_int_equal(parse("POST", "/v1/vms/a/console", NULL, "{\"input\": \"ls\\n\"}", &err), 0);
	assert_int_equal(req->route, PD_VM_CONSOLE_INPUT);
	assert_string_equal(req->u.input, "ls\n");
	assert_int_equal(parse("POST", "/v1/vms/a/console", NULL, "{\"input\": \"\"}", &err), 400);
	assert_int_equal(parse("POST", "/v1/vms/a/console", NULL, "{}", &err), 400);
	assert_int_equal(parse("DELETE", "/v1/vms/a/console", NULL, NULL, &err), 405);
}

static void test_body_limits(void **unused)
{
	struct pd_error err;
	char *big = malloc(PD_BODY_MAX + 2);

	(void)unused;
	memset(big, ' ', PD_BODY_MAX + 1);
	big[PD_BODY_MAX + 1] = '\0';
	assert_int_equal(parse("POST", "/v1/vms", NULL, big, &err), 413);
	free(big);
	/* Embedded NUL, duplicate key. */
	assert_int_equal(pd_parse_request("POST", "/v1/vms", NULL,
					  "{\"name\": \"a\\u0000b\", " KERNEL "}", 40, req, &err),
			 400);
	assert_int_equal(parse("POST", "/v1/vms", NULL, "{\"name\": \"a\", \"name\": \"b\", " KERNEL "}",
			       &err),
			 400);
}

static void test_vm_defaults(void **unused)
{
	struct pd_error err;
	struct pd_vm_def *d = &req->u.vm;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vms", NULL, "{\"name\": \"web-1.a_b\", " KERNEL "}", &err),
			 0);
	assert_string_equal(d->name, "web-1.a_b");
	assert_int_equal(d->cpus, 1);
	assert_int_equal(d->memory_mib, 512);
	assert_string_equal(d->kernel, "/boot/vmlinuz");
	assert_string_equal(d->initrd, "");
	assert_int_equal(d->n_disks, 0);
	assert_int_equal(d->restart, PD_RESTART_NEVER);
	assert_false(d->autostart);
}

static void test_vm_full_round_trip(void **unused)
{
	const char *body =
		"{\"name\": \"db\", \"cpus\": 4, \"memory_mib\": 2048, " KERNEL ", "
		"\"initrd\": \"/boot/initrd\", \"cmdline\": \"console=ttyS0 quiet\", "
		"\"disks\": [{\"image\": \"root\"}, {\"path\": \"/srv/data.raw\", \"format\": \"raw\", "
		"\"readonly\": true}], \"nics\": [{\"network\": \"lan\"}], \"restart\": \"on-crash\", "
		"\"autostart\": true}";
	struct pd_vm_def *back = malloc(sizeof(*back));
	struct pd_error err;
	json_t *j;
	char *text;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vms", NULL, body, &err), 0);
	assert_int_equal(req->u.vm.cpus, 4);
	assert_int_equal(req->u.vm.n_disks, 2);
	assert_string_equal(req->u.vm.disks[0].image, "root");
	assert_string_equal(req->u.vm.disks[1].path, "/srv/data.raw");
	assert_true(req->u.vm.disks[1].readonly);
	assert_int_equal(req->u.vm.n_nics, 1);
	assert_int_equal(req->u.vm.restart, PD_RESTART_ON_CRASH);
	assert_true(req->u.vm.autostart);
	j = pd_vm_def_to_json(&req->u.vm);
	assert_non_null(j);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_int_equal(pd_vm_def_parse(text, back, &err), 0);
	free(text);
	assert_memory_equal(back, &req->u.vm, sizeof(*back));
	free(back);
}

static void test_vm_invalid(void **unused)
{
	static const char *const bad[] = {
		"{" KERNEL "}",					   /* no name */
		"{\"name\": \"\", " KERNEL "}",
		"{\"name\": \"a b\", " KERNEL "}",
		"{\"name\": \"_a\", " KERNEL "}",
		"{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", " KERNEL "}",
		"{\"name\": 5, " KERNEL "}",
		"{\"name\": \"a\"}",				   /* no kernel */
		"{\"name\": \"a\", \"kernel\": \"vmlinuz\"}",	   /* relative */
		"{\"name\": \"a\", " KERNEL ", \"cpus\": 0}",
		"{\"name\": \"a\", " KERNEL ", \"cpus\": 65}",
		"{\"name\": \"a\", " KERNEL ", \"cpus\": 1.5}",
		"{\"name\": \"a\", " KERNEL ", \"memory_mib\": 31}",
		"{\"name\": \"a\", " KERNEL ", \"memory_mib\": 1048577}",
		"{\"name\": \"a\", " KERNEL ", \"memory_mib\": -1}",
		"{\"name\": \"a\", " KERNEL ", \"restart\": \"sometimes\"}",
		"{\"name\": \"a\", " KERNEL ", \"autostart\": 1}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": {}}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [5]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"path\": \"/x\", \"image\": \"y\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"path\": \"x\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"image\": \"y\", \"format\": \"iso\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"image\": \"y\", \"size\": 1}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"image\": \"../y\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"image\": \"y\", \"readonly\": \"yes\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"disks\": [{\"image\": \"a\"}, {\"image\": \"a\"}, "
		"{\"image\": \"a\"}, {\"image\": \"a\"}, {\"image\": \"a\"}, {\"image\": \"a\"}, "
		"{\"image\": \"a\"}, {\"image\": \"a\"}, {\"image\": \"a\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"nics\": [{}]}",
		"{\"name\": \"a\", " KERNEL ", \"nics\": [{\"network\": \"n\", \"mac\": \"x\"}]}",
		"{\"name\": \"a\", " KERNEL ", \"firmware\": \"efi\"}",
	};
	struct pd_error err;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse("POST", "/v1/vms", NULL, bad[i], &err);

		if (st != 400)
			fail_msg("accepted (%d): %s", st, bad[i]);
		assert_true(err.msg[0]);
	}
}

static void test_images_and_clones(void **unused)
{
	struct pd_error err;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/images", NULL, "{\"name\": \"i\", \"size\": 4096}", &err), 0);
	assert_string_equal(req->u.image.format, "qcow2");
	assert_int_equal(req->u.image.size, 4096);
	assert_int_equal(parse("POST", "/v1/images", NULL,
			       "{\"name\": \"i\", \"import\": \"/srv/x.vmdk\", \"format\": \"vmdk\"}",
			       &err),
			 0);
	assert_string_equal(req->u.image.import, "/srv/x.vmdk");
	assert_int_equal(parse("POST", "/v1/images", NULL, "{\"name\": \"i\"}", &err), 400);
	assert_int_equal(parse("POST", "/v1/images", NULL, "{\"name\": \"i\", \"size\": 0}", &err), 400);
	assert_int_equal(parse("POST", "/v1/images", NULL,
			       "{\"name\": \"i\", \"size\": 4096, \"format\": \"vhdx\"}", &err),
			 400);
	assert_int_equal(parse("POST", "/v1/images", NULL,
			       "{\"name\": \"i\", \"size\": 4096, \"import\": \"/x\"}", &err),
			 400);
	assert_int_equal(parse("POST", "/v1/images", NULL, "{\"name\": \"i\", \"import\": \"x\"}", &err),
			 400);
	assert_int_equal(parse("POST", "/v1/images/t/clone", NULL, "{\"name\": \"c\"}", &err), 0);
	assert_false(req->u.clone.linked);
	assert_string_equal(req->name, "t");
	assert_int_equal(parse("POST", "/v1/images/t/clone", NULL, "{\"linked\": true}", &err), 400);
}

static void test_events_query(void **unused)
{
	struct pd_error err;

	(void)unused;
	assert_int_equal(parse("GET", "/v1/events", NULL, NULL, &err), 0);
	assert_int_equal(req->after, 0);
	assert_int_equal(req->limit, 100);
	assert_int_equal(parse("GET", "/v1/events", "after=41&limit=7", NULL, &err), 0);
	assert_int_equal(req->after, 41);
	assert_int_equal(req->limit, 7);
	assert_int_equal(parse("GET", "/v1/events", "limit=0", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/events", "limit=1001", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/events", "after=-1", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/events", "since=1", NULL, &err), 400);
	assert_int_equal(parse("GET", "/v1/events", "after", NULL, &err), 400);
}

static void test_networks(void **unused)
{
	static const char *const bad[] = {
		"{}",
		"{\"name\": \"lan\", \"cidr\": \"10.0.0.1/24\"}",	/* host bits */
		"{\"name\": \"lan\", \"cidr\": \"10.0.0.0/31\"}",
		"{\"name\": \"lan\", \"cidr\": \"10.0.0.0/7\"}",
		"{\"name\": \"lan\", \"cidr\": \"10.0.0.0\"}",
		"{\"name\": \"lan\", \"cidr\": \"10.0.0/24\"}",
		"{\"name\": \"lan\", \"cidr\": \"fd00::/64\"}",
		"{\"name\": \"lan\", \"mode\": \"bridge\"}",
		"{\"name\": \"lan\", \"mode\": 1}",
		"{\"name\": \"lan\", \"mode\": \"\"}",
		"{\"name\": \"lan\", \"dhcp\": true}",
	};
	struct pd_error err;
	uint32_t net;
	unsigned prefix;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse("POST", "/v1/networks", NULL, bad[i], &err) != 400)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(pd_parse_cidr("192.168.8.0/22", &net, &prefix), 0);
	assert_int_equal(net, 0xc0a80800);
	assert_int_equal(prefix, 22);
	/* mode: isolated unless nat is asked for. */
	assert_int_equal(parse("POST", "/v1/networks", NULL, "{\"name\": \"a\"}", &err), 0);
	assert_string_equal(req->u.net.mode, "isolated");
	assert_int_equal(parse("POST", "/v1/networks", NULL, "{\"name\": \"a\", \"mode\": \"nat\"}",
			       &err), 0);
	assert_string_equal(req->u.net.mode, "nat");
}

static void test_roles(void **unused)
{
	static const struct {
		const char *method, *path, *body;
		bool viewer, operator_;
	} cases[] = {
		{"GET", "/v1/vms", NULL, true, true},
		{"GET", "/v1/vms/a/console", NULL, true, true},
		{"GET", "/v1/events", NULL, true, true},
		{"GET", "/v1/hosts", NULL, true, true},
		{"POST", "/v1/hosts/h1/evacuate", NULL, false, false},
		{"POST", "/v1/hosts/h1/activate", NULL, false, false},
		{"GET", "/v1/vms/a/display", NULL, false, false}, /* the server: no token at all */
		{"POST", "/v1/vms/a/start", NULL, false, true},
		{"POST", "/v1/vms/a/kill", NULL, false, true},
		{"POST", "/v1/tasks/3/cancel", NULL, false, true},
		{"POST", "/v1/vms/a/console", "{\"input\": \"x\"}", false, true},
		{"PUT", "/v1/vms/a/disks/d", "{\"image\": \"i\"}", false, true},
		{"PUT", "/v1/vms/a/disks/d", "{\"path\": \"/etc/shadow\"}", false, false},
		{"DELETE", "/v1/vms/a/disks/d", NULL, false, true},
		{"POST", "/v1/vms", "{\"name\": \"a\", " KERNEL "}", false, false},
		{"DELETE", "/v1/vms/a", NULL, false, false},
		{"POST", "/v1/images", "{\"name\": \"i\", \"size\": 1}", false, false},
		{"DELETE", "/v1/networks/n", NULL, false, false},
		{"GET", "/v1/tokens", NULL, false, false},
		{"POST", "/v1/tokens", "{\"name\": \"t\", \"role\": \"viewer\"}", false, false},
	};
	struct pd_error err;
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].method, cases[i].path, NULL, cases[i].body, &err), 0);
		assert_true(pd_role_allows("admin", req));
		if (pd_role_allows("viewer", req) != cases[i].viewer ||
		    pd_role_allows("operator", req) != cases[i].operator_)
			fail_msg("%s %s: roles wrong", cases[i].method, cases[i].path);
		assert_false(pd_role_allows("root", req));
	}
	assert_int_equal(parse("POST", "/v1/tokens", NULL, "{\"name\": \"t\", \"role\": \"god\"}",
			       &err), 400);
	assert_int_equal(parse("POST", "/v1/tokens", NULL, "{\"name\": \"t\"}", &err), 400);
}

/* Migration between hosts: the public route and the hosts' own. */
static void test_cluster_routes(void **unused)
{
	struct pd_error err;

	(void)unused;
	assert_int_equal(parse("POST", "/v1/vms/a/migrate", NULL, "{\"to\": \"h2\"}", &err), 0);
	assert_int_equal(req->route, PD_VM_MIGRATE);
	assert_string_equal(req->u.migrate.to, "h2");
	assert_false(req->from_cluster); /* only the server sets it */
	assert_false(pd_role_allows("viewer", req));
	assert_true(pd_role_allows("operator", req));
	assert_int_equal(parse("POST", "/v1/vms/a/migrate", NULL, NULL, &err), 400);
	assert_int_equal(parse("POST", "/v1/vms/a/migrate", NULL, "{\"to\": \"a/b\"}", &err), 400);
	assert_int_equal(parse("POST", "/v1/vms/a/migrate", NULL, "{\"to\": \"h\", \"x\": 1}",
			       &err), 400);
	assert_int_equal(parse("GET", "/v1/vms/a/migrate", NULL, NULL, &err), 405);

	assert_int_equal(parse("POST", "/v1/vms/a/incoming", NULL,
			       "{\"phase\": \"prepare\", \"from\": \"h1\", \"epoch\": 7}", &err),
			 0);
	assert_int_equal(req->route, PD_VM_INCOMING);
	assert_string_equal(req->u.incoming.phase, "prepare");
	assert_string_equal(req->u.incoming.from, "h1");
	assert_int_equal(req->u.incoming.epoch, 7);
	assert_false(pd_role_allows("operator", req)); /* hosts only: the cluster credential */
	assert_int_equal(parse("POST", "/v1/vms/a/incoming", NULL,
			       "{\"phase\": \"go\", \"from\": \"h1\", \"epoch\": 7}", &err),
			 400);
	assert_int_equal(parse("POST", "/v1/vms/a/incoming", NULL,
			       "{\"phase\": \"abort\", \"from\": \"h1\"}", &err), 400);
	assert_int_equal(parse("POST", "/v1/vms/a/incoming", NULL,
			       "{\"phase\": \"abort\", \"from\": \"h1\", \"epoch\": 0}", &err),
			 400);

	/* ha in a definition: kept only when set (older definitions keep their text) */
	assert_int_equal(parse("POST", "/v1/vms", NULL, "{\"name\": \"a\", " KERNEL ", \"ha\": true}",
			       &err), 0);
	assert_true(req->u.vm.ha);
	assert_int_equal(parse("POST", "/v1/vms", NULL, "{\"name\": \"a\", " KERNEL ", \"ha\": 1}",
			       &err), 400);
}

/* PUT/DELETE /v1/vms/{name}/disks/{id}: the disk as in a definition, the id as
 * plinth's id=, the eject timeout's limits. */
static void test_disk_routes(void **unused)
{
	struct pd_error err;

	(void)unused;
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/data-1", NULL,
			       "{\"image\": \"i\", \"readonly\": true, \"format\": \"qcow2\"}",
			       &err), 0);
	assert_int_equal(req->route, PD_VM_DISK_ADD);
	assert_string_equal(req->name, "a");
	assert_string_equal(req->dev_id, "data-1");
	assert_string_equal(req->u.disk.image, "i");
	assert_string_equal(req->u.disk.format, "qcow2");
	assert_true(req->u.disk.readonly);
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d", NULL, "{\"path\": \"/srv/d.img\"}",
			       &err), 0);
	assert_string_equal(req->u.disk.path, "/srv/d.img");
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d", NULL, NULL, &err), 400);
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d", NULL, "{}", &err), 400);
	assert_string_equal(err.msg, "disk needs exactly one of 'path' and 'image'");
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d", NULL, "{\"path\": \"rel.img\"}",
			       &err), 400);
	assert_string_equal(err.msg, "field 'path' must be an absolute path");
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d", NULL,
			       "{\"image\": \"i\", \"size\": 1}", &err), 400);
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/d.x", NULL, "{\"image\": \"i\"}",
			       &err), 404);
	assert_string_equal(err.msg, "no such disk: 'd.x' is not a device id (1..31 characters "
				     "of [A-Za-z0-9_-])");
	assert_int_equal(parse("PUT", "/v1/vms/a/disks/0123456789012345678901234567890123",
			       NULL, "{\"image\": \"i\"}", &err), 404);
	assert_int_equal(parse("POST", "/v1/vms/a/disks/d", NULL, NULL, &err), 405);
	assert_string_equal(err.allow, "PUT, DELETE");
	assert_int_equal(parse("GET", "/v1/vms/a/disks", NULL, NULL, &err), 404);

	assert_int_equal(parse("DELETE", "/v1/vms/a/disks/d", NULL, NULL, &err), 0);
	assert_int_equal(req->route, PD_VM_DISK_REMOVE);
	assert_int_equal(req->eject_timeout, PD_EJECT_TIMEOUT_DEFAULT);
	assert_int_equal(parse("DELETE", "/v1/vms/a/disks/d", NULL, "{\"timeout\": 5}", &err), 0);
	assert_int_equal(req->eject_timeout, 5);
	assert_int_equal(parse("DELETE", "/v1/vms/a/disks/d", NULL, "{\"timeout\": 0}", &err),
			 400);
	assert_int_equal(parse("DELETE", "/v1/vms/a/disks/d", NULL, "{\"timeout\": 601}", &err),
			 400);
	assert_int_equal(parse("DELETE", "/v1/vms/a/disks/d", NULL, "{\"force\": true}", &err),
			 400);

	assert_true(pd_dev_id_valid("disk0"));
	assert_true(pd_dev_id_valid("A_b-9"));
	assert_true(pd_dev_id_valid("0123456789012345678901234567890")); /* 31 */
	assert_false(pd_dev_id_valid("01234567890123456789012345678901")); /* 32 */
	assert_false(pd_dev_id_valid(""));
	assert_false(pd_dev_id_valid("a.b"));
	assert_false(pd_dev_id_valid("a,b"));
}

static void test_names(void **unused)
{
	(void)unused;
	assert_true(pd_name_valid("a"));
	assert_true(pd_name_valid("Web-01.prod_eu"));
	assert_false(pd_name_valid(""));
	assert_false(pd_name_valid("."));
	assert_false(pd_name_valid(".hidden"));
	assert_false(pd_name_valid("a/b"));
	assert_false(pd_name_valid("a b"));
	assert_false(pd_name_valid("\xc3\xa9t\xc3\xa9"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_bad_routes),
		cmocka_unit_test(test_body_limits),
		cmocka_unit_test(test_vm_defaults),
		cmocka_unit_test(test_vm_full_round_trip),
		cmocka_unit_test(test_vm_invalid),
		cmocka_unit_test(test_images_and_clones),
		cmocka_unit_test(test_events_query),
		cmocka_unit_test(test_networks),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_cluster_routes),
		cmocka_unit_test(test_disk_routes),
	};
	int rc;

	req = malloc(sizeof(*req));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(req);
	return rc;
}
