// SPDX-License-Identifier: MIT
/* libFuzzer target: the client's HTTP response parser (ctl_parse_response), which
 * reads whatever the peer of the API socket sends. */
#include <stdint.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body;
	size_t blen;
	char err[128];
	int status;

	if (ctl_parse_response((const char *)data, size, &status, &body, &blen, err, sizeof(err)) ==
	    0) {
		/* The body must lie inside the input. */
		if (body < (const char *)data || blen > size ||
		    (size_t)(body - (const char *)data) > size - blen)
			__builtin_trap();
	}
	return 0;
}
