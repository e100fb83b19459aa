/* SPDX-License-Identifier: MIT */
/*
 * A small RFB (VNC) viewer for tests: RFB 3.8, security "None", raw encoding and
 * the DesktopSize pseudo-encoding, pixels asked as 32-bit 0x00RRGGBB. Used by the
 * display's unit test and by tests/tools/rfb-grab.c (the integration test's viewer).
 * Everything the server sends is checked (sizes against the frame).
 */
#ifndef PLINTH_TESTS_RFB_CLIENT_H
#define PLINTH_TESTS_RFB_CLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct rfb_frame {
	uint32_t w, h;
	uint32_t *px; /* w * h pixels, 0x00RRGGBB; malloc'd */
	uint64_t bytes; /* bytes received since the handshake */
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

static inline int rfb_resize(struct rfb_frame *f, uint32_t w, uint32_t h)
{
	uint32_t *px = calloc((size_t)w * h + 1, 4);

	if (!px)
		return -ENOMEM;
	free(f->px);
	f->px = px;
	f->w = w;
	f->h = h;
	return 0;
}

/* Version, security None, shared ClientInit, ServerInit; our pixel format and encodings. */
static inline int rfb_handshake(int fd, struct rfb_frame *f, int timeout_ms)
{
	static const uint8_t fmt[20] = {
		0, 0, 0, 0,             /* SetPixelFormat, padding */
		32, 24, 0, 1,           /* bpp, depth, little-endian, true colour */
		0, 255, 0, 255, 0, 255, /* max R, G, B */
		16, 8, 0,               /* shifts */
		0, 0, 0,
	};
	static const uint8_t enc[12] = {
		2, 0, 0, 2,             /* SetEncodings, padding, 2 encodings */
		0, 0, 0, 0,             /* raw */
		0xff, 0xff, 0xff, 0x21, /* DesktopSize (-223) */
	};
	uint8_t buf[24], n, types[255], none = 1, shared = 1;
	uint32_t len;
	int r;

	memset(f, 0, sizeof(*f));
	if ((r = rfb_read(fd, buf, 12, timeout_ms, NULL)))
		return r;
	if (memcmp(buf, "RFB 003.", 8))
		return -EPROTO;
	if ((r = rfb_write(fd, "RFB 003.008\n", 12)) || (r = rfb_read(fd, &n, 1, timeout_ms, NULL)))
		return r;
	if (!n || (r = rfb_read(fd, types, n, timeout_ms, NULL)))
		return r ? r : -EPROTO;
	if (!memchr(types, 1, n))
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
	if ((r = rfb_write(fd, fmt, sizeof(fmt))) || (r = rfb_write(fd, enc, sizeof(enc))))
		return r;
	return 0;
}

/* Ask for the whole frame (incremental: only changes) and read one update into f. */
static inline int rfb_update(int fd, struct rfb_frame *f, bool incremental, int timeout_ms)
{
	uint8_t req[10] = { 3, incremental, 0, 0, 0, 0, (uint8_t)(f->w >> 8), (uint8_t)f->w,
			    (uint8_t)(f->h >> 8), (uint8_t)f->h };
	uint8_t hdr[12], t;
	uint16_t nr, i;
	int r;

	if ((r = rfb_write(fd, req, sizeof(req))))
		return r;
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
		if (enc == -223) {
			if ((r = rfb_resize(f, w, h)))
				return r;
			continue;
		}
		if (enc != 0 || x + w > f->w || y + h > f->h)
			return -EPROTO;
		for (row = 0; row < h; row++)
			if ((r = rfb_read(fd, f->px + (size_t)(y + row) * f->w + x, (size_t)w * 4,
					  timeout_ms, &f->bytes)))
				return r;
	}
	return 0;
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

#endif
