/* SPDX-License-Identifier: MIT */
/*
 * A rate limit for log lines that a guest (or any untrusted peer) can trigger at
 * will: a token bucket of `burst` lines that refills one line every `interval_ms`.
 * Lines over the limit are counted, not printed; the next line let through says
 * how many were dropped before it. One limiter per source (e.g. per device), kept
 * in that source's context; any thread may use it (a spin flag guards it: the
 * critical section is a few instructions).
 */
#ifndef PLINTH_COMMON_RATELIMIT_H
#define PLINTH_COMMON_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"

struct ratelimit {
	atomic_flag busy;        /* guards the fields below */
	unsigned int burst;      /* lines let through at once */
	uint64_t interval_ns;    /* one more line per interval */
	uint64_t tokens_ns;      /* credit, in ns of interval (burst * interval_ns at most) */
	uint64_t last_ns;        /* monotonic time of the last refill */
	uint64_t suppressed;     /* lines dropped since the last one let through */
	bool started;
};

/* burst >= 1 lines, then one per interval_ms (>= 1). */
void ratelimit_init(struct ratelimit *rl, unsigned int burst, unsigned int interval_ms);
/*
 * Whether one more line may go out at monotonic time now_ns; if so, *dropped (may
 * be NULL) receives the number of lines suppressed before it (and the count is
 * reset). ratelimit_allow() uses CLOCK_MONOTONIC.
 */
bool ratelimit_allow_at(struct ratelimit *rl, uint64_t now_ns, uint64_t *dropped);
bool ratelimit_allow(struct ratelimit *rl, uint64_t *dropped);

/* log_msg() through rl: a line over the limit is dropped (and counted). */
void log_limited(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
