// SPDX-License-Identifier: MIT
/* The control API's HTTP request framing (vmm/api/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"

#define MAX 4096

static int parse(const char *s, struct http_request *req)
{
	return http_parse(s, strlen(s), MAX, req);
}

/* Every proper prefix of s is "more"; all of it is a request of strlen(s) bytes. */
static void assert_whole_only(const char *s, struct http_request *req)
{
	size_t n = strlen(s);

	for (size_t cut = 0; cut < n; cut++) {
		assert_int_equal(http_parse(s, cut, MAX, req), HTTP_MORE);
		http_request_free(req);
	}
	assert_int_equal(http_parse(s, n, MAX, req), (int)n);
}

static void test_get(void **unused)
{
	struct http_request req;

	(void)unused;
	assert_whole_only("GET /v1/vm HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", &req);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/v1/vm");
	assert_true(req.keep_alive);
	assert_false(req.has_query);
	assert_null(req.body);
	http_request_free(&req);
	/* Bare LF line ends, HTTP/1.0 (closes unless asked), a query, escapes. */
	assert_int_equal(parse("GET /v1/vm%2Fdisks/a%41?x=1 HTTP/1.0\n\n", &req), 38);
	assert_string_equal(req.path, "/v1/vm/disks/aA");
	assert_true(req.has_query);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET /v1/vm? HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req),
			 (int)strlen("GET /v1/vm? HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
	assert_false(req.has_query);
	assert_true(req.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", &req), 41);
	assert_false(req.keep_alive);
}

static void test_bodies(void **unused)
{
	static const char chunked[] = "POST /v1/vm/snapshot HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
				      "6;name=value\r\n{\"to\":\r\n8\r\n\"/chunk\"\r\n1\n}\n0\r\n"
				      "Trailer-Field: x\r\n\r\n";
	struct http_request req;

	(void)unused;
	assert_whole_only("POST /v1/vm/pause HTTP/1.1\r\nContent-Length: 2\r\n"
			  "Content-Length: 2\r\n\r\n{}",
			  &req);
	assert_int_equal(req.body_len, 2);
	assert_string_equal(req.body, "{}");
	http_request_free(&req);
	assert_whole_only(chunked, &req);
	assert_int_equal(req.body_len, 15);
	assert_string_equal(req.body, "{\"to\":\"/chunk\"}");
	http_request_free(&req);
	/* A body of 0 bytes: no body. */
	assert_int_equal(parse("POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &req), 39);
	assert_null(req.body);
	/* Exactly the cap is fine. */
	{
		char buf[MAX + 100];
		int n = snprintf(buf, sizeof(buf), "PUT /a HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
				 MAX);

		memset(buf + n, 'x', MAX);
		assert_int_equal(http_parse(buf, (size_t)n + MAX, MAX, &req), n + MAX);
		assert_int_equal(req.body_len, MAX);
		http_request_free(&req);
	}
}

/* Requests back to back on one connection: each is framed on its own. */
static void test_pipelined(void **unused)
{
	static const char two[] = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
	struct http_request req;
	int n;

	(void)unused;
	n = parse(two, &req);
	assert_int_equal(n, 42);
	assert_string_equal(req.body, "abc");
	http_request_free(&req);
	assert_int_equal(parse(two + n, &req), (int)strlen(two) - n);
	assert_string_equal(req.path, "/b");
}

static void test_expect_continue(void **unused)
{
	struct http_request req;

	(void)unused;
	assert_int_equal(parse("POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n",
			       &req),
			 HTTP_MORE);
	assert_true(req.expect_continue);
	assert_int_equal(req.head_len, 61);
	assert_int_equal(parse("POST /a HTTP/1.1\r\nExpect: x\r\n\r\n", &req), -417);
}

struct bad {
	const char *req;
	int status;
	const char *why;
};

static void test_refused(void **unused)
{
	static char long_target[2048], big_head[HTTP_HEAD_MAX + 64], many[HTTP_HEADERS_MAX * 8 + 64];
	static const struct bad bad[] = {
		{ "GET /a HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413, "request body too large" },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n", 413,
		  "request body too large" },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 413,
		  "chunk too large" },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
		  "malformed chunk size" },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400,
		  "malformed chunk: no line end after its data" },
		{ "POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
		  "both Content-Length and Transfer-Encoding" },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
		  "only the chunked transfer coding is accepted" },
		{ "POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
		  "conflicting Content-Length fields" },
		{ "POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, "invalid Content-Length" },
		{ "POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
		  "invalid Content-Length" },
		{ "GET /a HTTP/2.0\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are served" },
		{ "GET /a HTTP/1.1 \r\n\r\n", 400, "malformed request line" },
		{ "GET  /a HTTP/1.1\r\n\r\n", 400, "malformed request line" },
		{ "GET http://x/a HTTP/1.1\r\n\r\n", 400,
		  "the request target must be a path starting with /" },
		{ "\x01\x02garbage\r\n\r\n", 400, "malformed request line" },
		{ "GET /a%zz HTTP/1.1\r\n\r\n", 400, "invalid percent-encoding in the request target" },
		{ "GET /a%00 HTTP/1.1\r\n\r\n", 400, "invalid percent-encoding in the request target" },
		{ "GET /a%0a HTTP/1.1\r\n\r\n", 400, "invalid percent-encoding in the request target" },
		{ "GET /a% HTTP/1.1\r\n\r\n", 400, "invalid percent-encoding in the request target" },
		{ "GET /a\x80 HTTP/1.1\r\n\r\n", 400, "invalid character in the request target" },
		{ "GET /a HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400,
		  "obsolete header line folding is not accepted" },
		{ "GET /a HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, "malformed header field" },
		{ "GET /a HTTP/1.1\r\n: 1\r\n\r\n", 400, "malformed header field" },
		{ "GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "malformed header field" },
		{ "GET /a HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, "control character in a header field" },
		{ "VERYLONGMETHODNAME /a HTTP/1.1\r\n\r\n", 501, "unknown method" },
		{ long_target, 414, "request target too long" },
		{ big_head, 431, "request head too large" },
		{ many, 431, "too many header fields" },
	};
	struct http_request req;
	size_t n;

	(void)unused;
	n = (size_t)sprintf(long_target, "GET /");
	memset(long_target + n, 'a', HTTP_TARGET_MAX);
	strcpy(long_target + n + HTTP_TARGET_MAX, " HTTP/1.1\r\n\r\n");
	n = (size_t)sprintf(big_head, "GET / HTTP/1.1\r\nX: ");
	memset(big_head + n, 'a', sizeof(big_head) - n - 1);
	n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
		n += (size_t)sprintf(many + n, "X: %d\r\n", i);
	strcpy(many + n, "\r\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i].req, &req);

		if (ret != -bad[i].status || strcmp(req.why ? req.why : "", bad[i].why))
			fail_msg("case %zu: %d (%s), want %d (%s)", i, ret, req.why ? req.why : "",
				 -bad[i].status, bad[i].why);
		assert_null(req.body);
	}
}

static void test_reason(void **unused)
{
	(void)unused;
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(299), "OK");
	assert_string_equal(http_reason(499), "Client Error");
	assert_string_equal(http_reason(599), "Server Error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),	       cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_pipelined),      cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_refused),	       cmocka_unit_test(test_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
