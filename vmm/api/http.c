// SPDX-License-Identifier: MIT
/*
 * HTTP/1.1 request framing for the control API (http.h says what and why).
 *
 * RFC 9112 is the reference: a request line, header fields up to a blank line, then
 * a body by Content-Length or by chunked transfer coding. Lines end in CRLF; a bare
 * LF is accepted as well (RFC 9112 2.2 allows it). What the API never needs is
 * refused rather than half-supported: obsolete line folding, other transfer codings,
 * both framings at once, HTTP versions other than 1.0 and 1.1.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "util.h"

#define fail(req, status, msg) ((req)->why = (msg), -(status))

void http_request_free(struct http_request *req)
{
	free(req->body);
	req->body = NULL;
	req->body_len = 0;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	if (status >= 200 && status < 300)
		return "OK";
	if (status >= 400 && status < 500)
		return "Client Error";
	return "Server Error";
}

/* RFC 9110 5.6.2: the characters of a token (method, field name). */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/*
 * The line starting at buf[pos] in buf[0..len): its length without the line end in
 * *n, the position after the line end returned; 0 when no line end has arrived yet.
 * A line never holds NUL or a lone CR: -1.
 */
static ssize_t line_at(const char *buf, size_t len, size_t pos, size_t *n)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	size_t end;

	if (!lf)
		return 0;
	end = (size_t)(lf - buf);
	*n = end - pos;
	if (*n && buf[end - 1] == '\r')
		(*n)--;
	if (memchr(buf + pos, '\0', *n) || memchr(buf + pos, '\r', *n))
		return -1;
	return (ssize_t)(end + 1);
}

/* Does the comma-separated list v[0..n) hold token (case-insensitive)? */
static bool list_has(const char *v, size_t n, const char *token)
{
	size_t tl = strlen(token), i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, token, tl))
			return true;
	}
	return false;
}

/* The request target (origin-form) t[0..n), percent-decoded into req->path. */
static int parse_target(const char *t, size_t n, struct http_request *req)
{
	size_t i, o = 0;

	if (!n || t[0] != '/')
		return fail(req, 400, "the request target must be a path starting with /");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c == '?') {
			req->has_query = i + 1 < n;
			break;
		}
		if (c == '#' || c <= 0x20 || c >= 0x7f)
			return fail(req, 400, "invalid character in the request target");
		if (c == '%') {
			int hi = i + 2 < n ? hex_value((unsigned char)t[i + 1]) : -1;
			int lo = i + 2 < n ? hex_value((unsigned char)t[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return fail(req, 400, "invalid percent-encoding in the request target");
			c = (unsigned char)(hi << 4 | lo);
			if (c < 0x20 || c == 0x7f)
				return fail(req, 400, "invalid percent-encoding in the request target");
			i += 2;
		}
		if (o + 1 >= sizeof(req->path))
			return fail(req, 414, "request target too long");
		req->path[o++] = (char)c;
	}
	req->path[o] = '\0';
	return 0;
}

/* "METHOD SP target SP HTTP/1.x": sets method, path, keep_alive's default. */
static int parse_request_line(const char *l, size_t n, struct http_request *req)
{
	const char *sp1 = memchr(l, ' ', n), *sp2, *ver;
	size_t ml, vl;
	int ret;

	if (!sp1)
		return fail(req, 400, "malformed request line");
	ml = (size_t)(sp1 - l);
	if (!ml || ml >= sizeof(req->method))
		return fail(req, ml ? 501 : 400, ml ? "unknown method" : "malformed request line");
	for (size_t i = 0; i < ml; i++)
		if (!is_tchar((unsigned char)l[i]))
			return fail(req, 400, "malformed request line");
	memcpy(req->method, l, ml);
	req->method[ml] = '\0';
	sp2 = memchr(sp1 + 1, ' ', n - ml - 1);
	if (!sp2)
		return fail(req, 400, "malformed request line");
	ver = sp2 + 1;
	vl = n - (size_t)(ver - l);
	if (vl != 8 || memcmp(ver, "HTTP/", 5) || ver[6] != '.' || ver[5] < '0' || ver[5] > '9' ||
	    ver[7] < '0' || ver[7] > '9')
		return fail(req, 400, "malformed request line");
	if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
		return fail(req, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	req->keep_alive = ver[7] == '1';
	ret = parse_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), req);
	return ret;
}

/* Content-Length's value: digits only, at most 18 of them (no overflow). */
static int parse_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (!n || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

struct framing {
	bool has_length, chunked;
	uint64_t length;
};

/* One header field line l[0..n): the fields the API acts on, the rest ignored. */
static int parse_field(const char *l, size_t n, struct http_request *req, struct framing *f)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t nl, vn;

	if (l[0] == ' ' || l[0] == '\t')
		return fail(req, 400, "obsolete header line folding is not accepted");
	if (!colon || colon == l)
		return fail(req, 400, "malformed header field");
	nl = (size_t)(colon - l);
	for (size_t i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)l[i]))
			return fail(req, 400, "malformed header field");
	v = colon + 1;
	vn = n - nl - 1;
	while (vn && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
		vn--;
	for (size_t i = 0; i < vn; i++)
		if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
			return fail(req, 400, "control character in a header field");

#define IS(name) (nl == sizeof(name) - 1 && !strncasecmp(l, name, nl))
	if (IS("Content-Length")) {
		uint64_t x;

		if (parse_length(v, vn, &x))
			return fail(req, 400, "invalid Content-Length");
		if (f->has_length && x != f->length)
			return fail(req, 400, "conflicting Content-Length fields");
		f->has_length = true;
		f->length = x;
	} else if (IS("Transfer-Encoding")) {
		if (f->chunked || vn != 7 || strncasecmp(v, "chunked", 7))
			return fail(req, 501, "only the chunked transfer coding is accepted");
		f->chunked = true;
	} else if (IS("Connection")) {
		if (list_has(v, vn, "close"))
			req->keep_alive = false;
		else if (list_has(v, vn, "keep-alive"))
			req->keep_alive = true;
	} else if (IS("Expect")) {
		if (vn != 12 || strncasecmp(v, "100-continue", 12))
			return fail(req, 417, "only Expect: 100-continue is understood");
		req->expect_continue = true;
	}
#undef IS
	return 0;
}

/*
 * Walk the chunked body at buf[pos..len): its decoded size in *size (capped: more
 * than max is -413), copied to out when out is not NULL. The position after the
 * last chunk and its trailer section, HTTP_MORE, or -status.
 */
static ssize_t walk_chunks(const char *buf, size_t len, size_t pos, size_t max, char *out,
			   size_t *size, struct http_request *req)
{
	size_t total = 0, n;
	ssize_t next;

	for (;;) {
		uint64_t cs = 0;
		size_t i, digits = 0;

		next = line_at(buf, len, pos, &n);
		if (next < 0)
			return fail(req, 400, "malformed chunk");
		if (next == 0)
			return len - pos > 64 ? fail(req, 400, "malformed chunk") : HTTP_MORE;
		for (i = 0; i < n && hex_value((unsigned char)buf[pos + i]) >= 0; i++) {
			if (++digits > 15)
				return fail(req, 413, "chunk too large");
			cs = cs << 4 | (uint64_t)hex_value((unsigned char)buf[pos + i]);
		}
		if (!digits || (i < n && buf[pos + i] != ';' && buf[pos + i] != ' ' &&
				buf[pos + i] != '\t'))
			return fail(req, 400, "malformed chunk size");
		pos = (size_t)next;
		if (cs == 0)
			break;
		if (cs > max - total)
			return fail(req, 413, "request body too large");
		if (len - pos < cs + 1)
			return HTTP_MORE;
		if (out)
			memcpy(out + total, buf + pos, cs);
		total += cs;
		pos += cs;
		/* The chunk's data ends with a line end of its own. */
		if (buf[pos] == '\r') {
			if (len - pos < 2)
				return HTTP_MORE;
			pos++;
		}
		if (buf[pos] != '\n')
			return fail(req, 400, "malformed chunk: no line end after its data");
		pos++;
	}
	/* The trailer section: fields up to a blank line, read and ignored. */
	for (;;) {
		next = line_at(buf, len, pos, &n);
		if (next < 0)
			return fail(req, 400, "malformed chunk trailer");
		if (next == 0)
			return len - pos > HTTP_HEAD_MAX ? fail(req, 431, "trailer too large")
							 : HTTP_MORE;
		pos = (size_t)next;
		if (n == 0)
			break;
	}
	*size = total;
	return (ssize_t)pos;
}

int http_parse(const char *buf, size_t len, size_t body_max, struct http_request *req)
{
	struct framing f = { 0 };
	size_t pos = 0, n, nfields = 0, size;
	ssize_t next;
	int ret;

	memset(req, 0, sizeof(*req));
	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	while (pos < len && pos < 4 && (buf[pos] == '\r' || buf[pos] == '\n'))
		pos++;
	next = line_at(buf, len, pos, &n);
	if (next == 0)
		return len > HTTP_HEAD_MAX ? fail(req, 431, "request head too large") : HTTP_MORE;
	if (next < 0)
		return fail(req, 400, "malformed request line");
	ret = parse_request_line(buf + pos, n, req);
	if (ret)
		return ret;
	pos = (size_t)next;
	for (;;) {
		next = line_at(buf, len, pos, &n);
		if (next == 0)
			return len > HTTP_HEAD_MAX ? fail(req, 431, "request head too large")
						   : HTTP_MORE;
		if (next < 0)
			return fail(req, 400, "malformed header field");
		if ((size_t)next > HTTP_HEAD_MAX)
			return fail(req, 431, "request head too large");
		if (n == 0)
			break;
		if (++nfields > HTTP_HEADERS_MAX)
			return fail(req, 431, "too many header fields");
		ret = parse_field(buf + pos, n, req, &f);
		if (ret)
			return ret;
		pos = (size_t)next;
	}
	pos = (size_t)next;
	req->head_len = pos;
	if (f.has_length && f.chunked)
		return fail(req, 400, "both Content-Length and Transfer-Encoding");
	if (f.has_length) {
		if (f.length > body_max)
			return fail(req, 413, "request body too large");
		if (len - pos < f.length)
			return HTTP_MORE;
		size = (size_t)f.length;
		next = (ssize_t)(pos + size);
	} else if (f.chunked) {
		next = walk_chunks(buf, len, pos, body_max, NULL, &size, req);
		if (next <= 0)
			return (int)next;
	} else {
		size = 0;
		next = (ssize_t)pos;
	}
	if (size) {
		req->body = malloc(size + 1);
		if (!req->body)
			return fail(req, 500, "out of memory");
		if (f.chunked)
			walk_chunks(buf, len, pos, body_max, req->body, &size, req);
		else
			memcpy(req->body, buf + pos, size);
		req->body[size] = '\0';
		req->body_len = size;
	}
	return (int)next;
}
