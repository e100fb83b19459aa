// SPDX-License-Identifier: MIT
/* libFuzzer target: the web console's RFB client-stream filter (daemon/rfb_filter.c).
 * Input: a first byte (bit 0: drop input; the rest: where to split), then the client's
 * stream. Checks: never more out than in (+ a held-back fixed part) per call, the same
 * result however the stream is split, and with nothing dropped what passes is a prefix
 * of the input. */
#include <stdlib.h>
#include <string.h>

#include "rfb_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed data in pieces of at most step bytes; what passed into out, its length or -1. */
static ssize_t run(const uint8_t *data, size_t size, size_t step, bool drop, uint8_t *out)
{
	struct rfb_filter f;
	const char *why = NULL;
	size_t i, o = 0;

	rfb_filter_init(&f);
	for (i = 0; i < size; i += step) {
		size_t n = size - i < step ? size - i : step;
		ssize_t got = rfb_filter_feed(&f, data + i, n, drop, out + o, &why);

		if (got < 0) {
			if (!why || !*why)
				abort();
			return -1;
		}
		if ((size_t)got > n + RFB_HDR_MAX)
			abort();
		o += (size_t)got;
	}
	return (ssize_t)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *a, *b;
	ssize_t na, nb;
	bool drop;
	size_t step;

	if (size < 1)
		return 0;
	drop = data[0] & 1;
	step = (data[0] >> 1) + 1;
	data++;
	size--;
	a = malloc(size + RFB_HDR_MAX);
	b = malloc(size + RFB_HDR_MAX);
	if (!a || !b)
		abort();
	na = run(data, size, size ? size : 1, drop, a);
	nb = run(data, size, step, drop, b);
	if ((na < 0) != (nb < 0) || (na >= 0 && (na != nb || memcmp(a, b, (size_t)na))))
		abort();
	if (na > 0 && !drop && ((size_t)na > size || memcmp(a, data, (size_t)na)))
		abort();
	free(a);
	free(b);
	return 0;
}
