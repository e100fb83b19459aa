/* SPDX-License-Identifier: MIT */
/*
 * A request body as it arrives in chunks (libmicrohttpd hands them one by one), kept
 * whole up to a cap. Used by plinthd's control socket and web console; what the body
 * means (JSON) is each parser's business.
 */
#ifndef PLINTH_COMMON_REQBODY_H
#define PLINTH_COMMON_REQBODY_H

#include <stdbool.h>
#include <stddef.h>

struct req_body {
	char *data;   /* malloc'd, owned; NULL while empty or once too_big */
	size_t len;   /* bytes in data */
	bool too_big; /* the body went past the cap: nothing kept, answer 413 */
};

/*
 * Append the n bytes of chunk, the whole body capped at max bytes. 0, also when the
 * cap is passed (then too_big is set, the bytes so far freed and later chunks dropped),
 * or -ENOMEM with b unchanged.
 */
int req_body_append(struct req_body *b, const void *chunk, size_t n, size_t max);

/* Free what b holds; b is empty again. */
void req_body_free(struct req_body *b);

#endif
