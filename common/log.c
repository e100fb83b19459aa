// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "plinth";
static enum log_level log_level = LOG_WARN;
static unsigned long log_errors; /* updated atomically: part of the sink's state */

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

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level == LOG_ERROR)
		__atomic_fetch_add(&log_errors, 1, __ATOMIC_RELAXED);
	if (level > log_level)
		return;
	/* Format into one buffer and write once, so lines from threads don't interleave. */
	n = snprintf(line, sizeof(line), "%s: ", log_prog);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = (int)strlen(line);
	if ((size_t)n < sizeof(line) - 1 && (n == 0 || line[n - 1] != '\n')) {
		line[n++] = '\n';
		line[n] = '\0';
	}
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
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
