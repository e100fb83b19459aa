// SPDX-License-Identifier: MIT
/*
 * The pre-boot API (vmm/preboot.c) without a socket: its ops called as the server
 * calls them, on a thread of their own, and the main thread's side (preboot_wait,
 * preboot_refuse, preboot_started): a bad config refused and nothing kept, a start
 * handing the config over, a refused start giving it back, a started VM's config
 * fixed, a signal ending the wait.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "machine.h"
#include "preboot.h"

static const char good[] = "{\"kernel\": \"/k\", \"cpus\": 2, \"memory\": \"64M\", "
			   "\"devices\": [{\"kind\": \"rng\", \"id\": \"entropy\"}]}";

static int configure(struct preboot *pb, const char *text, struct api_reply *reply)
{
	json_t *o = json_loads(text, 0, NULL);
	int ret;

	assert_non_null(o);
	memset(reply, 0, sizeof(*reply));
	ret = preboot_api_ops.configure(pb, o, reply);
	json_decref(o);
	return ret;
}

/* The pending config as GET /v1/vm shows it: a new reference. */
static json_t *info(struct preboot *pb)
{
	struct api_reply reply = { 0 };

	assert_int_equal(preboot_api_ops.info(pb, &reply), 0);
	return reply.body;
}

/* A start request on its own thread, as the server runs it; then the server's "sent". */
struct start_call {
	struct preboot *pb;
	struct api_start_args how;
	pthread_t t;
	int ret;
	struct api_reply reply;
};

static void *start_thread(void *arg)
{
	struct start_call *c = arg;

	c->ret = preboot_api_ops.start(c->pb, &c->how, &c->reply);
	if (c->reply.sent)
		c->reply.sent(c->pb);
	return NULL;
}

static void start_begin(struct start_call *c, struct preboot *pb, const char *from)
{
	memset(c, 0, sizeof(*c));
	c->pb = pb;
	snprintf(c->how.from, sizeof(c->how.from), "%s", from);
	c->how.paused = from[0] != '\0';
	assert_int_equal(pthread_create(&c->t, NULL, start_thread, c), 0);
}

static void test_flow(void **state)
{
	struct preboot *pb = preboot_new();
	struct api_reply reply;
	struct api_start_args how, boot = { 0 };
	struct start_call call;
	struct vm_config cfg;
	int sig[2];
	json_t *j;

	(void)state;
	assert_non_null(pb);
	assert_int_equal(pipe(sig), 0);
	j = info(pb);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "configuring");
	assert_true(json_is_null(json_object_get(j, "config")));
	json_decref(j);

	/* Nothing to start; a bad config is one line and leaves nothing. */
	memset(&reply, 0, sizeof(reply));
	assert_int_equal(preboot_api_ops.start(pb, &boot, &reply), -EBUSY);
	assert_non_null(strstr(reply.error, "PUT /v1/vm/config first"));
	assert_int_equal(configure(pb, "{\"kernel\": \"/k\", \"cpus\": 99}", &reply), -EINVAL);
	assert_string_equal(reply.error, "field 'cpus' must be a number from 1 to 64, not '99'");
	j = info(pb);
	assert_true(json_is_null(json_object_get(j, "config")));
	json_decref(j);
	memset(&reply, 0, sizeof(reply));
	assert_int_equal(preboot_api_ops.pause(pb, &reply), -EBUSY);

	assert_int_equal(configure(pb, good, &reply), 0);
	j = info(pb);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "config"), "cpus")),
			 2);
	json_decref(j);

	/* A start hands the config to the main thread; a refusal gives it back. */
	machine_defaults(&cfg);
	start_begin(&call, pb, "");
	assert_int_equal(preboot_wait(pb, sig[0], &cfg, &how), 0);
	assert_string_equal(how.from, "");
	assert_false(how.paused);
	assert_string_equal(cfg.kernel, "/k");
	assert_int_equal(cfg.cpus, 2);
	assert_int_equal(cfg.memory, 64 << 20);
	assert_int_equal(cfg.nr_devices, 1);
	assert_string_equal(cfg.devices[0].id, "entropy");
	assert_int_equal(configure(pb, good, &reply), -EBUSY); /* while starting */
	preboot_refuse(pb, &cfg, "cannot open kernel /k: No such file or directory");
	pthread_join(call.t, NULL);
	assert_int_equal(call.ret, -EINVAL);
	assert_string_equal(call.reply.error, "cannot open kernel /k: No such file or directory");
	assert_int_equal(cfg.nr_devices, 0);
	j = info(pb);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "configuring");
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "config"), "devices")),
			 1);
	json_decref(j);

	/* Started (a restore: how it was asked for reaches the main thread): answered 200
	 * once sent, and the config is fixed. */
	start_begin(&call, pb, "/snap");
	assert_int_equal(preboot_wait(pb, sig[0], &cfg, &how), 0);
	assert_string_equal(how.from, "/snap");
	assert_true(how.paused);
	assert_int_equal(cfg.nr_devices, 1);
	preboot_started(pb);
	pthread_join(call.t, NULL);
	assert_int_equal(call.ret, 0);
	assert_int_equal(configure(pb, good, &reply), -EBUSY);
	memset(&reply, 0, sizeof(reply));
	assert_int_equal(preboot_api_ops.start(pb, &boot, &reply), -EBUSY);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	close(sig[0]);
	close(sig[1]);
	preboot_free(pb);
}

/* A termination signal while waiting: 128 + its number. */
static void test_signal(void **state)
{
	struct signalfd_siginfo si = { .ssi_signo = 15 };
	struct api_start_args how;
	struct preboot *pb = preboot_new();
	struct vm_config cfg;
	int sig[2];

	(void)state;
	assert_int_equal(pipe(sig), 0);
	assert_int_equal(write(sig[1], &si, sizeof(si)), (ssize_t)sizeof(si));
	machine_defaults(&cfg);
	assert_int_equal(preboot_wait(pb, sig[0], &cfg, &how), 128 + 15);
	close(sig[0]);
	close(sig[1]);
	preboot_free(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_signal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
