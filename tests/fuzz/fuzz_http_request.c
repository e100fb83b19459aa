// SPDX-License-Identifier: MIT
/* libFuzzer target: HTTP request framing (vmm/api/http.c). Input: the bytes a client
 * sent on one connection; every request in it is framed in turn, as server.c does,
 * and each prefix of the input is framed too (a request arrives in pieces). */
#include <assert.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http_request req;
	size_t pos = 0;
	int ret;

	/* A few prefixes: "more" or an answer, never a read past the end (ASan). */
	for (size_t cut = 1; cut < size && cut < 64; cut += 7) {
		ret = http_parse(buf, cut, 4096, &req);
		assert(ret <= (int)cut);
		http_request_free(&req);
	}
	while (pos < size) {
		ret = http_parse(buf + pos, size - pos, 4096, &req);
		if (ret <= 0) {
			assert(ret == HTTP_MORE || req.why);
			http_request_free(&req);
			break;
		}
		assert((size_t)ret <= size - pos && req.body_len <= 4096);
		assert(strlen(req.path) < sizeof(req.path) && req.path[0] == '/');
		http_request_free(&req);
		pos += (size_t)ret;
	}
	return 0;
}
