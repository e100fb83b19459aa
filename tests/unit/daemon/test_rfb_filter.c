// SPDX-License-Identifier: MIT
/* The page's half of an RFB stream (daemon/rfb_filter.c): a noVNC-like session passes
 * whole for an operator; for a viewer its key, pointer, clipboard, xvp and QEMU key
 * messages are left out and everything else passes, byte for byte, however the stream
 * is split; what cannot be framed is refused with a sentence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "rfb_filter.h"

static const uint8_t hello[] = "RFB 003.008\n\x01";
static const uint8_t fmt[20] = {0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16};
static const uint8_t enc[] = {2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21};
static const uint8_t req[] = {3, 0, 0, 0, 0, 0, 0, 64, 0, 48};
static const uint8_t key[] = {4, 1, 0, 0, 0, 0, 0, 0x61};
static const uint8_t ptr[] = {5, 1, 0, 10, 0, 20};
static const uint8_t cut[] = {6, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'};
static const uint8_t fence[] = {248, 0, 0, 0, 0, 0, 0, 1, 2, 'x', 'y'};
static const uint8_t xvp[] = {250, 0, 1, 2};
static const uint8_t qkey[] = {255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30};

struct buf {
	uint8_t b[512];
	size_t n;
};

static void put(struct buf *s, const uint8_t *p, size_t n)
{
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

/* The session (hello, ClientInit, then the messages), and what a viewer keeps of it. */
static void session(struct buf *all, struct buf *kept)
{
	const uint8_t init = 1;

	all->n = kept->n = 0;
	put(all, hello, sizeof(hello) - 1);
	put(all, &init, 1);
	put(kept, all->b, all->n);
	put(all, fmt, sizeof(fmt));
	put(kept, fmt, sizeof(fmt));
	put(all, enc, sizeof(enc));
	put(kept, enc, sizeof(enc));
	put(all, key, sizeof(key));
	put(all, req, sizeof(req));
	put(kept, req, sizeof(req));
	put(all, ptr, sizeof(ptr));
	put(all, cut, sizeof(cut));
	put(all, fence, sizeof(fence));
	put(kept, fence, sizeof(fence));
	put(all, xvp, sizeof(xvp));
	put(all, qkey, sizeof(qkey));
	put(all, req, sizeof(req));
	put(kept, req, sizeof(req));
}

static size_t feed(const struct buf *in, size_t step, bool drop, uint8_t *out, uint64_t *dropped)
{
	struct rfb_filter f;
	const char *why = NULL;
	size_t i, o = 0;

	rfb_filter_init(&f);
	for (i = 0; i < in->n; i += step) {
		size_t n = in->n - i < step ? in->n - i : step;
		ssize_t got = rfb_filter_feed(&f, in->b + i, n, drop, out + o, &why);

		assert_true(got >= 0);
		o += (size_t)got;
	}
	*dropped = f.dropped;
	return o;
}

static void test_roles(void **unused)
{
	struct buf all, kept;
	uint8_t out[600];
	uint64_t dropped;
	size_t step, n;

	(void)unused;
	session(&all, &kept);
	for (step = 1; step <= all.n; step++) {
		n = feed(&all, step, false, out, &dropped);
		assert_int_equal(n, all.n);
		assert_memory_equal(out, all.b, n);
		assert_int_equal(dropped, 0);
		n = feed(&all, step, true, out, &dropped);
		assert_int_equal(n, kept.n);
		assert_memory_equal(out, kept.b, n);
		assert_int_equal(dropped, 5);
	}
}

/* One stream and the sentence it is refused with. */
static void refused(const void *p, size_t n, const char *want)
{
	struct rfb_filter f;
	const char *why = NULL;
	uint8_t out[64 + RFB_HDR_MAX];

	rfb_filter_init(&f);
	assert_int_equal(rfb_filter_feed(&f, p, n, false, out, &why), -EPROTO);
	assert_non_null(why);
	assert_string_equal(why, want);
	/* and it stays refused */
	assert_int_equal(rfb_filter_feed(&f, (const uint8_t *)"x", 1, false, out, &why), -EPROTO);
}

static void test_refused(void **unused)
{
	(void)unused;
	refused("RFB 003.003\n", 12, "The page did not speak RFB (VNC) 3.7 or 3.8.");
	refused("GET / HTTP/1.1\r\n", 16, "The page did not speak RFB (VNC) 3.7 or 3.8.");
	refused("RFB 003.008\n\x13", 13,
		"The page chose a VNC security type plinthd does not pass on.");
	refused("RFB 003.008\n\x01\x01\x07", 15,
		"The page sent a VNC message plinthd does not know.");
	refused("RFB 003.008\n\x01\x01\xff\x01", 16,
		"The page sent a VNC message plinthd does not know.");
	refused("RFB 003.008\n\x01\x01\x06\0\0\0\0\x20\0\x01", 22,
		"The page sent a clipboard over 1 MiB.");
}

/* VNC authentication's 16-byte response passes as part of the handshake. */
static void test_vnc_auth(void **unused)
{
	struct rfb_filter f;
	const char *why = NULL;
	uint8_t in[12 + 1 + 16 + 1 + sizeof(key)], out[sizeof(in) + RFB_HDR_MAX];
	ssize_t n;

	(void)unused;
	memcpy(in, "RFB 003.007\n\x02", 13);
	memset(in + 13, 4, 16); /* a response that looks like KeyEvents */
	in[29] = 0;
	memcpy(in + 30, key, sizeof(key));
	rfb_filter_init(&f);
	n = rfb_filter_feed(&f, in, sizeof(in), true, out, &why);
	assert_int_equal(n, 30);
	assert_memory_equal(out, in, 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_vnc_auth),
	};

	return cmocka_run_group_tests_name("rfb_filter", tests, NULL, NULL);
}
