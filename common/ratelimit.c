// SPDX-License-Identifier: MIT
#include "ratelimit.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void ratelimit_init(struct ratelimit *rl, unsigned int burst, unsigned int interval_ms)
{
	atomic_flag_clear(&rl->busy);
	rl->burst = burst ? burst : 1;
	rl->interval_ns = (uint64_t)(interval_ms ? interval_ms : 1) * 1000000u;
	rl->tokens_ns = rl->burst * rl->interval_ns;
	rl->last_ns = 0;
	rl->suppressed = 0;
	rl->started = false;
}

bool ratelimit_allow_at(struct ratelimit *rl, uint64_t now_ns, uint64_t *dropped)
{
	uint64_t cap = rl->burst * rl->interval_ns;
	bool ok;

	while (atomic_flag_test_and_set_explicit(&rl->busy, memory_order_acquire))
		;
	if (!rl->started) {
		rl->started = true;
		rl->last_ns = now_ns;
	}
	/* Refill by the time elapsed (a clock that went back refills nothing). */
	if (now_ns > rl->last_ns) {
		uint64_t add = now_ns - rl->last_ns;

		rl->tokens_ns = add >= cap || rl->tokens_ns >= cap - add ? cap : rl->tokens_ns + add;
		rl->last_ns = now_ns;
	}
	ok = rl->tokens_ns >= rl->interval_ns;
	if (ok) {
		rl->tokens_ns -= rl->interval_ns;
		if (dropped)
			*dropped = rl->suppressed;
		rl->suppressed = 0;
	} else {
		rl->suppressed++;
	}
	atomic_flag_clear_explicit(&rl->busy, memory_order_release);
	return ok;
}

bool ratelimit_allow(struct ratelimit *rl, uint64_t *dropped)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ratelimit_allow_at(rl, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
				  dropped);
}

void log_limited(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
{
	uint64_t dropped = 0;
	char line[512];
	va_list ap;

	if (level > log_get_level() || !ratelimit_allow(rl, &dropped))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (dropped)
		log_msg(level, "%s (%llu similar lines suppressed before this one)", line,
			(unsigned long long)dropped);
	else
		log_msg(level, "%s", line);
}
