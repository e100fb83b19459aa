// SPDX-License-Identifier: MIT
/* The log sinks: a process's, a thread's, and the capture of one operation's error. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

struct seen {
	char last[256];
	enum log_level level;
	unsigned int n;
};

static void keep(void *opaque, enum log_level level, const char *msg)
{
	struct seen *s = opaque;

	snprintf(s->last, sizeof(s->last), "%s", msg);
	s->level = level;
	s->n++;
}

static void test_process_and_thread_sinks(void **state)
{
	struct seen proc = { .n = 0 }, mine = { .n = 0 };
	const struct log_sink ps = { keep, &proc }, ts = { keep, &mine };

	(void)state;
	log_set_level(LOG_WARN);
	log_set_sink(&ps);
	log_error("disk %d: %s\n", 1, "gone"); /* the newline is the sink's business */
	assert_string_equal(proc.last, "disk 1: gone");
	assert_int_equal(proc.level, LOG_ERROR);
	log_info("dropped by the level");
	assert_int_equal(proc.n, 1);
	log_set_thread_sink(&ts);
	log_warn("to the thread's");
	assert_string_equal(mine.last, "to the thread's");
	assert_int_equal(mine.level, LOG_WARN);
	assert_int_equal(proc.n, 1);
	log_set_thread_sink(NULL);
	log_warn("back to the process's");
	assert_string_equal(proc.last, "back to the process's");
	log_set_sink(NULL);
	assert_int_equal(proc.n, 2);
	assert_int_equal(mine.n, 1);
}

/* Another thread's lines go to the process sink, never to this thread's. */
static void *other_thread(void *arg)
{
	(void)arg;
	log_error("from another thread");
	return NULL;
}

static void test_capture(void **state)
{
	struct seen proc = { .n = 0 };
	const struct log_sink ps = { keep, &proc };
	struct log_capture outer, inner;
	unsigned long before = log_error_count();
	pthread_t t;

	(void)state;
	log_set_sink(&ps);
	log_capture_begin(&outer);
	log_error("first: %s", "the one the caller reports");
	log_warn("a warning goes on to the sink below");
	log_capture_begin(&inner);
	log_error("inner");
	log_capture_end(&inner);
	log_error("second");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, NULL);
	log_capture_end(&outer);
	assert_string_equal(outer.first_error, "first: the one the caller reports");
	assert_int_equal(outer.errors, 2);
	assert_string_equal(inner.first_error, "inner");
	assert_int_equal(inner.errors, 1);
	assert_int_equal(proc.n, 2);
	assert_string_equal(proc.last, "from another thread");
	assert_int_equal(log_error_count() - before, 4); /* counted wherever they went */
	log_capture_begin(&inner);
	log_capture_end(&inner);
	assert_string_equal(inner.first_error, "");
	assert_int_equal(inner.errors, 0);
	log_set_sink(NULL);
}

/* A tee capture keeps the first error for the caller and passes every line on to the
 * sink below (the thread's, then the process's): the log loses nothing. */
static void test_capture_tee(void **state)
{
	struct seen proc = { .n = 0 }, mine = { .n = 0 };
	const struct log_sink ps = { keep, &proc }, ts = { keep, &mine };
	struct log_capture c;

	(void)state;
	log_set_sink(&ps);
	log_capture_tee(&c);
	log_error("img: %s: not a qcow2 image", "a.raw");
	log_error("second");
	log_capture_end(&c);
	assert_true(c.tee);
	assert_string_equal(c.first_error, "img: a.raw: not a qcow2 image");
	assert_int_equal(c.errors, 2);
	assert_int_equal(proc.n, 2);
	assert_string_equal(proc.last, "second");
	log_set_thread_sink(&ts);
	log_capture_tee(&c);
	log_error("to the thread's sink");
	log_capture_end(&c);
	assert_int_equal(mine.n, 1);
	assert_string_equal(mine.last, "to the thread's sink");
	assert_int_equal(proc.n, 2);
	log_set_thread_sink(NULL);
	/* A plain capture after it keeps errors to itself again. */
	log_capture_begin(&c);
	log_error("kept");
	log_capture_end(&c);
	assert_false(c.tee);
	assert_int_equal(proc.n, 2);
	log_set_sink(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process_and_thread_sinks),
		cmocka_unit_test(test_capture),
		cmocka_unit_test(test_capture_tee),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
