// SPDX-License-Identifier: MIT
/* A request body kept whole up to a cap (see reqbody.h). */
#include "reqbody.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int req_body_append(struct req_body *b, const void *chunk, size_t n, size_t max)
{
	char *nb;

	if (!n)
		return 0;
	if (b->too_big || b->len > max || n > max - b->len) {
		req_body_free(b);
		b->too_big = true;
		return 0;
	}
	nb = realloc(b->data, b->len + n);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + b->len, chunk, n);
	b->data = nb;
	b->len += n;
	return 0;
}

void req_body_free(struct req_body *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}
