/* SPDX-License-Identifier: MIT */
/*
 * Logging: one process-wide sink (stderr by default, settable; a thread may set
 * its own), one line per message, prefixed with the program name on stderr. The
 * only mutable globals here are the sinks and the verbosity, as STYLE.md allows.
 */
#ifndef PLINTH_COMMON_LOG_H
#define PLINTH_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_QUIET = -1, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the program name printed before each line (not copied: pass a literal or argv[0]). */
void log_set_prog(const char *prog);
/* Messages above this level are dropped. Default LOG_WARN; LOG_QUIET drops all (fuzzers). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Where lines go instead of stderr, for a caller that needs each sentence (a daemon
 * recording why an image task failed, a VMM answering an API request). fn gets the
 * message without the program prefix and without a newline, on the thread that
 * logged it (so possibly concurrently: fn must be thread-safe for a process sink),
 * once the level filter passed it. The struct is the caller's and must outlive its
 * use. A thread's own sink (log_set_thread_sink) wins over the process's
 * (log_set_sink); NULL goes back to the next one (stderr last). Setting them is
 * atomic with respect to loggers.
 */
struct log_sink {
	void (*fn)(void *opaque, enum log_level level, const char *msg);
	void *opaque;
};
void log_set_sink(const struct log_sink *sink);
void log_set_thread_sink(const struct log_sink *sink);

/*
 * A ready sink that keeps the first error sentence (and counts the errors) while a
 * caller runs one operation on its thread: log_capture_begin() installs it as the
 * thread's sink, log_capture_end() restores the previous one. Lines of other levels
 * still go to the previous sink (or stderr).
 */
struct log_capture {
	char first_error[512]; /* "" if none */
	unsigned long errors;
	bool tee;              /* errors also go on to the previous sink (log_capture_tee) */
	struct log_sink sink;  /* internal */
	const struct log_sink *prev; /* internal */
};
void log_capture_begin(struct log_capture *c);
/* As log_capture_begin, but error lines also go on to the previous sink (or stderr):
 * the caller gets the sentence and the log keeps every line, as without a capture. */
void log_capture_tee(struct log_capture *c);
void log_capture_end(struct log_capture *c);

/* Error lines emitted so far by this process (any thread): a caller can tell whether
 * a failed call already said why, and add its own line only if not. */
unsigned long log_error_count(void);

/*
 * Where start-up's time goes (plinth -vv): log_startup_begin() at the top of main() (one
 * thread, before any other) takes the instant; each log_startup_mark() then logs, at debug
 * level only, its step's time since then and its CLOCK_MONOTONIC instant, which a caller
 * that started the process on the same clock (make bench) puts beside its own (exec and
 * the dynamic loader come before main).
 */
void log_startup_begin(void);
void log_startup_mark(const char *step);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
