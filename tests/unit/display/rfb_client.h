/* SPDX-License-Identifier: MIT */
/*
 * A small RFB (VNC) viewer for tests: RFB 3.8, security "None", raw encoding and
 * the DesktopSize pseudo-encoding, pixels asked as 32-bit 0x00RRGGBB. Used by the
 * display's unit test and by tests/tools/rfb-grab.c (the integration test's viewer).
 * A viewer may offer more encodings (rfb_handshake_enc) and decode them in its
 * rect hook (tests/tools/rfb-bench.c: zlib). Everything the server sends is checked
 * (sizes against the frame).
 */
#ifndef PLINTH_TESTS_RFB_CLIENT_H
#define PLINTH_TESTS_RFB_CLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct rfb_frame {
	uint32_t w, h;
	uint32_t *px; /* w * h pixels, 0x00RRGGBB; malloc'd */
	uint64_t bytes; /* bytes received since the handshake */
	/* Reads a rectangle of an encoding other than raw and DesktopSize, already
	 * checked to lie inside the frame; 0 or -errno. NULL: only raw. */
	int (*rect)(int fd, struct rfb_frame *f, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		    int32_t enc, int timeout_ms);
	void *opaque; /* the rect hook's own */
};

static inline int rfb_read(int fd, void *buf, size_t n, int timeout_ms, uint64_t *count)
{
	uint8_t *p = buf;

	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		r = read(fd, p, n);
		if (r <= 0)
			return r ? -errno : -EPIPE;
		p += r;
		n -= (size_t)r;
		if (count)
			*count += (uint64_t)r;
	}
	return 0;
}

static inline int rfb_write(int fd, const void *buf, size_t n)
{
	return write(fd, buf, n) == (ssize_t)n ? 0 : -EIO;
}

static inline uint16_t rfb_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rfb_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline int rfb_connect_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* RFB sizes are 16-bit; a larger screen than any display makes is refused. */
#define RFB_MAX_SIDE 16384

static inline int rfb_resize(struct rfb_frame *f, uint32_t w, uint32_t h)
{
	uint32_t *px;

	if (w > RFB_MAX_SIDE || h > RFB_MAX_SIDE)
		return -EPROTO;
	px = calloc((size_t)w * h + 1, 4);
	if (!px)
		return -ENOMEM;
	free(f->px);
	f->px = px;
	f->w = w;
	f->h = h;
	return 0;
}

/* A checksum of the picture (FNV-1a over the pixels): tells whether it changed. */
static inline uint64_t rfb_sum(const struct rfb_frame *f)
{
	uint64_t s = 1469598103934665603ull, i;

	for (i = 0; i < (uint64_t)f->w * f->h; i++)
		s = (s ^ (f->px[i] & 0xffffff)) * 1099511628211ull;
	return s;
}

/* Version, security None, shared ClientInit, ServerInit; our pixel format and the
 * n encodings of enc (most preferred first); f's hooks are kept. */
static inline int rfb_handshake_enc(int fd, struct rfb_frame *f, const int32_t *enc, uint16_t n,
				    int timeout_ms)
{
	static const uint8_t fmt[20] = {
		0, 0, 0, 0,             /* SetPixelFormat, padding */
		32, 24, 0, 1,           /* bpp, depth, little-endian, true colour */
		0, 255, 0, 255, 0, 255, /* max R, G, B */
		16, 8, 0,               /* shifts */
		0, 0, 0,
	};
	uint8_t buf[24], nt, types[255], none = 1, shared = 1, *msg;
	uint32_t len;
	uint16_t i;
	int r;

	f->w = f->h = 0;
	f->px = NULL;
	f->bytes = 0;
	if ((r = rfb_read(fd, buf, 12, timeout_ms, NULL)))
		return r;
	if (memcmp(buf, "RFB 003.", 8))
		return -EPROTO;
	if ((r = rfb_write(fd, "RFB 003.008\n", 12)) || (r = rfb_read(fd, &nt, 1, timeout_ms, NULL)))
		return r;
	if (!nt || (r = rfb_read(fd, types, nt, timeout_ms, NULL)))
		return r ? r : -EPROTO;
	if (!memchr(types, 1, nt))
		return -EACCES;
	if ((r = rfb_write(fd, &none, 1)) || (r = rfb_read(fd, buf, 4, timeout_ms, NULL)))
		return r;
	if (rfb_be32(buf))
		return -EACCES;
	if ((r = rfb_write(fd, &shared, 1)) || (r = rfb_read(fd, buf, 24, timeout_ms, NULL)))
		return r;
	len = rfb_be32(buf + 20);
	while (len) { /* the desktop's name */
		uint8_t skip[64];
		size_t k = len < sizeof(skip) ? len : sizeof(skip);

		if ((r = rfb_read(fd, skip, k, timeout_ms, NULL)))
			return r;
		len -= (uint32_t)k;
	}
	if ((r = rfb_resize(f, rfb_be16(buf), rfb_be16(buf + 2))))
		return r;
	msg = malloc(4 + (size_t)n * 4);
	if (!msg)
		return -ENOMEM;
	msg[0] = 2; /* SetEncodings, padding, count */
	msg[1] = 0;
	msg[2] = (uint8_t)(n >> 8);
	msg[3] = (uint8_t)n;
	for (i = 0; i < n; i++) {
		uint32_t e = (uint32_t)enc[i];

		msg[4 + i * 4] = (uint8_t)(e >> 24);
		msg[5 + i * 4] = (uint8_t)(e >> 16);
		msg[6 + i * 4] = (uint8_t)(e >> 8);
		msg[7 + i * 4] = (uint8_t)e;
	}
	if (!(r = rfb_write(fd, fmt, sizeof(fmt))))
		r = rfb_write(fd, msg, 4 + (size_t)n * 4);
	free(msg);
	return r;
}

#define RFB_ENC_RAW         0
#define RFB_ENC_ZLIB        6
#define RFB_ENC_DESKTOPSIZE (-223)

/* rfb_handshake_enc offering raw and DesktopSize only. */
static inline int rfb_handshake(int fd, struct rfb_frame *f, int timeout_ms)
{
	static const int32_t enc[] = { RFB_ENC_RAW, RFB_ENC_DESKTOPSIZE };

	memset(f, 0, sizeof(*f));
	return rfb_handshake_enc(fd, f, enc, 2, timeout_ms);
}

/* Ask for the whole frame (incremental: only changes). */
static inline int rfb_request(int fd, const struct rfb_frame *f, bool incremental)
{
	uint8_t req[10] = { 3, incremental, 0, 0, 0, 0, (uint8_t)(f->w >> 8), (uint8_t)f->w,
			    (uint8_t)(f->h >> 8), (uint8_t)f->h };

	return rfb_write(fd, req, sizeof(req));
}

/* Read the next FramebufferUpdate into f (bells and cut text skipped); *rects, if
 * not NULL, gets its count of rectangles. */
static inline int rfb_read_update(int fd, struct rfb_frame *f, int timeout_ms, uint16_t *rects)
{
	uint8_t hdr[12], t;
	uint16_t nr, i;
	int r;

	for (;;) {
		if ((r = rfb_read(fd, &t, 1, timeout_ms, &f->bytes)))
			return r;
		if (t == 0)
			break;
		if (t == 2) /* bell */
			continue;
		if (t != 3) /* only cut text besides */
			return -EPROTO;
		if ((r = rfb_read(fd, hdr, 7, timeout_ms, &f->bytes)))
			return r;
		for (uint32_t len = rfb_be32(hdr + 3); len; len--)
			if ((r = rfb_read(fd, &t, 1, timeout_ms, &f->bytes)))
				return r;
	}
	if ((r = rfb_read(fd, hdr, 3, timeout_ms, &f->bytes)))
		return r;
	nr = rfb_be16(hdr + 1);
	if (rects)
		*rects = nr;
	for (i = 0; i < nr; i++) {
		uint32_t x, y, w, h, row;
		int32_t enc;

		if ((r = rfb_read(fd, hdr, 12, timeout_ms, &f->bytes)))
			return r;
		x = rfb_be16(hdr);
		y = rfb_be16(hdr + 2);
		w = rfb_be16(hdr + 4);
		h = rfb_be16(hdr + 6);
		enc = (int32_t)rfb_be32(hdr + 8);
		if (enc == RFB_ENC_DESKTOPSIZE) {
			if ((r = rfb_resize(f, w, h)))
				return r;
			continue;
		}
		if (x + w > f->w || y + h > f->h)
			return -EPROTO;
		if (enc != RFB_ENC_RAW) {
			if (!f->rect)
				return -EPROTO;
			if ((r = f->rect(fd, f, x, y, w, h, enc, timeout_ms)))
				return r;
			continue;
		}
		for (row = 0; row < h; row++)
			if ((r = rfb_read(fd, f->px + (size_t)(y + row) * f->w + x, (size_t)w * 4,
					  timeout_ms, &f->bytes)))
				return r;
	}
	return 0;
}

/* Ask for the whole frame (incremental: only changes) and read one update into f. */
static inline int rfb_update(int fd, struct rfb_frame *f, bool incremental, int timeout_ms)
{
	int r = rfb_request(fd, f, incremental);

	return r ? r : rfb_read_update(fd, f, timeout_ms, NULL);
}

/* KeyEvent: X keysym sym pressed (down) or released. */
static inline int rfb_key(int fd, uint32_t sym, bool down)
{
	uint8_t m[8] = { 4, down, 0, 0, (uint8_t)(sym >> 24), (uint8_t)(sym >> 16),
			 (uint8_t)(sym >> 8), (uint8_t)sym };

	return rfb_write(fd, m, sizeof(m));
}

/* PointerEvent: the pointer at (x, y) with buttons mask (1 left, 2 middle, 4 right...). */
static inline int rfb_pointer(int fd, uint8_t mask, uint16_t x, uint16_t y)
{
	uint8_t m[6] = { 5, mask, (uint8_t)(x >> 8), (uint8_t)x, (uint8_t)(y >> 8), (uint8_t)y };

	return rfb_write(fd, m, sizeof(m));
}

#define RFB_XK_BACKSPACE 0xff08u
#define RFB_XK_RETURN    0xff0du
#define RFB_XK_SHIFT_L   0xffe1u

/* The keysym of c and whether a US keyboard needs Shift for it; false: untypable. */
static inline bool rfb_keysym(char c, uint32_t *sym, bool *shift)
{
	*shift = (c >= 'A' && c <= 'Z') || (c && strchr("~!@#$%^&*()_+{}|:\"<>?", c));
	if (c == '\n') {
		*sym = RFB_XK_RETURN;
		return true;
	}
	*sym = (uint8_t)c;
	return c >= 0x20 && c < 0x7f;
}

/* Press and release sym (with Shift around it if shift). */
static inline int rfb_press(int fd, uint32_t sym, bool shift)
{
	int r = 0;

	if (shift)
		r = rfb_key(fd, RFB_XK_SHIFT_L, true);
	if (!r)
		r = rfb_key(fd, sym, true);
	if (!r)
		r = rfb_key(fd, sym, false);
	if (!r && shift)
		r = rfb_key(fd, RFB_XK_SHIFT_L, false);
	return r;
}

/* Type text as a US keyboard would ("\n" as Return), gap_ms between keys; -EINVAL
 * (*bad set) at a character it cannot type. */
static inline int rfb_type(int fd, const char *text, long gap_ms, char *bad)
{
	struct timespec ts = { .tv_sec = gap_ms / 1000, .tv_nsec = gap_ms % 1000 * 1000000 };
	uint32_t sym;
	bool shift;
	int r = 0;

	for (; *text && !r; text++) {
		if (!rfb_keysym(*text, &sym, &shift)) {
			*bad = *text;
			return -EINVAL;
		}
		r = rfb_press(fd, sym, shift);
		nanosleep(&ts, NULL);
	}
	return r;
}

#endif
