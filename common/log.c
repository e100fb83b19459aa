// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "plinth";
static enum log_level log_level = LOG_WARN;
static struct timespec startup_ts; /* set once by log_startup_begin, before any thread */
static unsigned long log_errors; /* updated atomically: part of the sink's state */
static const struct log_sink *log_sink;           /* atomic; NULL: stderr */
static __thread const struct log_sink *thread_sink; /* this thread's, wins */

void log_set_sink(const struct log_sink *sink)
{
	__atomic_store_n(&log_sink, sink, __ATOMIC_RELEASE);
}

void log_set_thread_sink(const struct log_sink *sink)
{
	thread_sink = sink;
}

/* msg to sink, or to stderr as one line with the program's name (sink NULL). */
static void emit(const struct log_sink *sink, enum log_level level, const char *msg)
{
	char line[1100];
	int n;

	if (sink) {
		sink->fn(sink->opaque, level, msg);
		return;
	}
	/* Format into one buffer and write once, so lines from threads don't interleave. */
	n = snprintf(line, sizeof(line), "%s: %s\n", log_prog, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_set_prog(const char *prog)
{
	const char *slash = strrchr(prog, '/');

	log_prog = slash ? slash + 1 : prog;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

/* Where the line goes when it is not this thread's capture's: the sink below it. */
static const struct log_sink *sink_below(const struct log_capture *c)
{
	return c->prev ? c->prev : __atomic_load_n(&log_sink, __ATOMIC_ACQUIRE);
}

static void capture_fn(void *opaque, enum log_level level, const char *msg)
{
	struct log_capture *c = opaque;

	if (level != LOG_ERROR || c->tee)
		emit(sink_below(c), level, msg);
	if (level != LOG_ERROR)
		return;
	if (!c->errors++)
		snprintf(c->first_error, sizeof(c->first_error), "%s", msg);
}

void log_capture_begin(struct log_capture *c)
{
	c->first_error[0] = '\0';
	c->errors = 0;
	c->tee = false;
	c->sink = (struct log_sink){ capture_fn, c };
	c->prev = thread_sink;
	thread_sink = &c->sink;
}

void log_capture_tee(struct log_capture *c)
{
	log_capture_begin(c);
	c->tee = true;
}

void log_capture_end(struct log_capture *c)
{
	thread_sink = c->prev;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	if (level == LOG_ERROR)
		__atomic_fetch_add(&log_errors, 1, __ATOMIC_RELAXED);
	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	if (n && msg[n - 1] == '\n')
		msg[n - 1] = '\0'; /* one line: the sink or emit() ends it */
	emit(thread_sink ? thread_sink : __atomic_load_n(&log_sink, __ATOMIC_ACQUIRE), level, msg);
}

unsigned long log_error_count(void)
{
	return __atomic_load_n(&log_errors, __ATOMIC_RELAXED);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_startup_begin(void)
{
	clock_gettime(CLOCK_MONOTONIC, &startup_ts);
}

void log_startup_mark(const char *step)
{
	struct timespec ts;

	if (log_get_level() < LOG_DEBUG)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	log_debug("start-up: %s, %.2f ms after main (monotonic %lld.%06ld)", step,
		  (double)(ts.tv_sec - startup_ts.tv_sec) * 1e3 + (ts.tv_nsec - startup_ts.tv_nsec) / 1e6,
		  (long long)ts.tv_sec, ts.tv_nsec / 1000);
}
