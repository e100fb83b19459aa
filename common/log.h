/* SPDX-License-Identifier: MIT */
/*
 * Logging: one process-wide sink (stderr by default), one line per message,
 * prefixed with the program name. The only mutable globals here are the sink
 * and the verbosity, as STYLE.md allows.
 */
#ifndef PLINTH_COMMON_LOG_H
#define PLINTH_COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_QUIET = -1, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the program name printed before each line (not copied: pass a literal or argv[0]). */
void log_set_prog(const char *prog);
/* Messages above this level are dropped. Default LOG_WARN; LOG_QUIET drops all (fuzzers). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Error lines emitted so far by this process (any thread): a caller can tell whether
 * a failed call already said why, and add its own line only if not. */
unsigned long log_error_count(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
