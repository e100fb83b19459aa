// SPDX-License-Identifier: MIT
/* libFuzzer target: the web console's WebSocket handshake headers (daemon/web_ws.c).
 * Input: a Sec-WebSocket-Key value, NUL, a Connection header value. An accepted key is
 * 24 characters of base64 and gives a 28-character accept value; a token found in the
 * list is there as a whole item, case aside; so is gzip in an Accept-Encoding that takes
 * it (the same second part). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char accept[WEB_WS_ACCEPT_LEN], *key, *conn;
	const char *nul = memchr(data, 0, size);
	size_t klen = nul ? (size_t)(nul - (const char *)data) : size;

	key = strndup((const char *)data, klen);
	conn = strndup(nul ? nul + 1 : "", nul ? size - klen - 1 : 0);
	if (!key || !conn)
		abort();
	if (web_ws_accept_key(key, accept) == 0 && (strlen(key) != 24 || strlen(accept) != 28))
		abort();
	if (web_accepts_gzip(conn) && !strcasestr(conn, "gzip"))
		abort();
	if (web_ws_header_has_token(conn, "upgrade")) {
		const char *p = strcasestr(conn, "upgrade");

		if (!p)
			abort();
	}
	free(key);
	free(conn);
	return 0;
}
