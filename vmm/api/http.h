/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 requests the control API accepts, framed from the bytes a client sent
 * (pure: no I/O, no state between calls; server.c feeds it, fuzz_http_request.c too).
 *
 * Why not a library: plinth served its API with libmicrohttpd until 2026-12, but
 * Debian's build of it links GnuTLS, which pulls ten more libraries into every VMM
 * (about 35 ms of a 110 ms snapshot restore in the emulated host, and 1 MiB of
 * mappings). The API is a local, owner-only Unix socket that never needs TLS, and it
 * speaks a small subset of HTTP/1.1: one request at a time per connection, a JSON
 * body of at most API_BODY_MAX bytes by Content-Length or chunked. Firecracker and
 * Cloud Hypervisor serve their API sockets with a small parser of their own (the
 * micro_http crate) for the same reasons. plinthd, with TLS and browsers, keeps
 * libmicrohttpd. Debian's other request parser (http-parser 2.9) is no longer
 * maintained upstream.
 *
 * Every byte is the client's: lengths are bounded (HTTP_HEAD_MAX, the body cap, the
 * chunk sizes) with overflow-safe arithmetic, and anything outside the subset is an
 * error status with a one-line reason rather than a guess.
 */
#ifndef PLINTH_VMM_API_HTTP_H
#define PLINTH_VMM_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX	 8192 /* request line and headers, the blank line included */
#define HTTP_TARGET_MAX	 1024 /* bytes in a request's decoded path, NUL included */
#define HTTP_METHOD_MAX	 16   /* bytes in a method, NUL included */
#define HTTP_HEADERS_MAX 64   /* header fields in one request */

struct http_request {
	char method[HTTP_METHOD_MAX];
	char path[HTTP_TARGET_MAX]; /* percent-decoded, the query cut off */
	bool has_query;		    /* a non-empty query string followed the path */
	bool keep_alive;	    /* the connection stays open after the answer */
	bool expect_continue;	    /* "Expect: 100-continue" */
	size_t head_len;	    /* bytes of the head once it is complete, else 0 */
	char *body;		    /* malloc'd and NUL-terminated, or NULL when empty */
	size_t body_len;
	const char *why;	    /* on an error: a one-line reason (static) */
};

#define HTTP_MORE 0 /* http_parse(): the request is not complete yet */

/*
 * Frame the request at the start of buf[0..len) with a body of at most body_max
 * bytes. Returns:
 *   > 0        the request is complete and used that many bytes of buf (later bytes
 *              are the client's next request); req filled, req->body to be freed
 *              with http_request_free();
 *   HTTP_MORE  more bytes are needed; req->head_len is set once the head is complete
 *              (and req->expect_continue read), so the caller may say 100 Continue;
 *   < 0        minus the status to answer with (400, 413, 414, 417, 431, 500, 501, 505), the
 *              reason in req->why; the connection cannot be read further.
 */
int http_parse(const char *buf, size_t len, size_t body_max, struct http_request *req);

/* Free req's body; req can be parsed into again. */
void http_request_free(struct http_request *req);

/* The reason phrase of a status ("Not Found"), or a generic one for its class. */
const char *http_reason(int status);

#endif
