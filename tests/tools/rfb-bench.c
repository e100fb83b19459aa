// SPDX-License-Identifier: MIT
/*
 * rfb-bench SOCKET [OPTIONS]: the viewer of the display benchmark (bench/bench.py,
 * bench_display). One RFB client that offers every server the same encodings (zlib,
 * raw and DesktopSize, in that order) and keeps an incremental update request
 * outstanding, so that the figures compare servers, not viewers:
 *  1. connects to the Unix socket SOCKET (retrying for --wait seconds, default 300)
 *     and reads updates until the picture is not black, then still for --gap ms;
 *  2. --keys N times (default 20): after --gap ms (default 250) without an update, it
 *     presses 'x' and times until it has read the update that changes the picture,
 *     then presses BackSpace (untimed) so the shell's line stays short;
 *  3. with --scroll TEXT: types TEXT and Return, then counts for --secs seconds
 *     (default 10) from the Return the updates, rectangles and bytes it receives;
 *  4. with --raw-secs S: a second connection offering raw and DesktopSize only
 *     counts the same for S seconds, after its first full frame.
 * Output, one line each:
 *   frame W H
 *   key MS
 *   keys n=N median_ms=MS
 *   scroll enc=zlib|raw secs=S bytes=B updates=U rects=R zlib_rects=Z
 * Exit 0 when everything was measured; 2 on a socket or protocol error, a timeout,
 * or a key whose echo never came. Everything the server sends is bounds-checked
 * (rfb_client.h; the zlib data here against its rectangle).
 */
#include <getopt.h>
#include <stdio.h>
#include <time.h>
#include <zlib.h>

#include "rfb_client.h"

#define ZLIB_MAX_IN (64u << 20) /* compressed bytes a rectangle may carry */
#define T_MS        10000       /* the longest a message may take to arrive */

struct zdec {
	z_stream z;
	bool ready;     /* z initialized */
	uint8_t *in;    /* owned: compressed bytes not consumed yet, then a rect's */
	size_t pending; /* bytes of in carried over (the stream is one per connection) */
	size_t in_cap;
	uint8_t *out;   /* owned: one rectangle's pixels */
	size_t out_cap;
	uint64_t rects; /* zlib rectangles decoded */
};

struct viewer {
	int fd;
	struct rfb_frame f;
	struct zdec zd;
	uint64_t updates, rects;
	double t_update; /* when the last update had been read */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int grow(uint8_t **buf, size_t *cap, size_t want)
{
	uint8_t *p;

	if (want <= *cap)
		return 0;
	p = realloc(*buf, want);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = want;
	return 0;
}

/*
 * A zlib rectangle (RFB encoding 6): a 32-bit length, then that many bytes of one
 * zlib stream per connection that inflate to the rectangle's pixels. Bytes left over
 * after the pixels (a flush's empty block) belong to the stream: kept for the next.
 */
static int zlib_rect(int fd, struct rfb_frame *f, uint32_t x, uint32_t y, uint32_t w,
		     uint32_t h, int32_t enc, int timeout_ms)
{
	struct zdec *zd = f->opaque;
	size_t need = (size_t)w * h * 4, row;
	uint8_t len4[4];
	uint32_t len;
	int r, zr;

	if (enc != RFB_ENC_ZLIB)
		return -EPROTO;
	if ((r = rfb_read(fd, len4, 4, timeout_ms, &f->bytes)))
		return r;
	len = rfb_be32(len4);
	if (len > ZLIB_MAX_IN || zd->pending > ZLIB_MAX_IN)
		return -EPROTO;
	if ((r = grow(&zd->in, &zd->in_cap, zd->pending + len + 1)) ||
	    (r = grow(&zd->out, &zd->out_cap, need + 1)))
		return r;
	if ((r = rfb_read(fd, zd->in + zd->pending, len, timeout_ms, &f->bytes)))
		return r;
	if (!zd->ready) {
		memset(&zd->z, 0, sizeof(zd->z));
		if (inflateInit(&zd->z) != Z_OK)
			return -ENOMEM;
		zd->ready = true;
	}
	zd->z.next_in = zd->in;
	zd->z.avail_in = (uInt)(zd->pending + len);
	zd->z.next_out = zd->out;
	zd->z.avail_out = (uInt)need;
	do
		zr = inflate(&zd->z, Z_SYNC_FLUSH);
	while (zr == Z_OK && zd->z.avail_in && zd->z.avail_out);
	if ((zr != Z_OK && zr != Z_BUF_ERROR) || zd->z.avail_out)
		return -EPROTO; /* corrupt, or fewer pixels than the rectangle has */
	zd->pending = zd->z.avail_in;
	memmove(zd->in, zd->z.next_in, zd->pending);
	for (row = 0; row < h; row++)
		memcpy(f->px + (size_t)(y + row) * f->w + x, zd->out + row * w * 4, (size_t)w * 4);
	zd->rects++;
	return 0;
}

static bool nonblack(const struct rfb_frame *f)
{
	uint64_t i;

	for (i = 0; i < (uint64_t)f->w * f->h; i++)
		if (f->px[i] & 0xffffff)
			return true;
	return false;
}

/* Connect (retrying until deadline), offer the encodings, ask for a full frame. */
static int viewer_open(struct viewer *v, const char *path, bool zlib, double deadline)
{
	static const int32_t with_zlib[] = { RFB_ENC_ZLIB, RFB_ENC_RAW, RFB_ENC_DESKTOPSIZE };
	static const int32_t raw_only[] = { RFB_ENC_RAW, RFB_ENC_DESKTOPSIZE };
	struct timespec pause = { .tv_nsec = 200 * 1000000 };
	int r;

	memset(v, 0, sizeof(*v));
	while ((v->fd = rfb_connect_unix(path)) < 0 && now() < deadline)
		nanosleep(&pause, NULL);
	if (v->fd < 0)
		return -ECONNREFUSED;
	v->f.rect = zlib_rect;
	v->f.opaque = &v->zd;
	r = zlib ? rfb_handshake_enc(v->fd, &v->f, with_zlib, 3, T_MS)
		 : rfb_handshake_enc(v->fd, &v->f, raw_only, 2, T_MS);
	return r ? r : rfb_request(v->fd, &v->f, false);
}

static void viewer_close(struct viewer *v)
{
	if (v->fd >= 0)
		close(v->fd);
	if (v->zd.ready)
		inflateEnd(&v->zd.z);
	free(v->zd.in);
	free(v->zd.out);
	free(v->f.px);
	v->fd = -1;
}

/* Read the update asked for and ask for the next one at once. */
static int next_update(struct viewer *v, int timeout_ms)
{
	uint16_t n;
	int r = rfb_read_update(v->fd, &v->f, timeout_ms, &n);

	if (r)
		return r;
	v->t_update = now();
	v->updates++;
	v->rects += n;
	return rfb_request(v->fd, &v->f, true);
}

/* true if an update starts arriving within ms. */
static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms > 0 ? ms : 0) > 0;
}

/* Until gap_ms pass without an update (at most 60 s). */
static int quiet(struct viewer *v, int gap_ms)
{
	double end = now() + 60;
	int r;

	while (readable(v->fd, gap_ms)) {
		if ((r = next_update(v, T_MS)))
			return r;
		if (now() > end)
			return -EBUSY;
	}
	return 0;
}

/* Press sym; the seconds until an update that changes the picture has been read. */
static int key_latency(struct viewer *v, uint32_t sym, double *secs)
{
	uint64_t before = rfb_sum(&v->f);
	double t0 = now();
	int r = rfb_press(v->fd, sym, false);

	while (!r) {
		if ((r = next_update(v, T_MS)))
			break;
		if (rfb_sum(&v->f) != before) {
			*secs = v->t_update - t0;
			return 0;
		}
		if (now() - t0 > T_MS / 1000.0)
			r = -ETIMEDOUT;
	}
	return r;
}

/* Updates, rectangles and bytes received in secs from t0 (a request outstanding). */
static int window(struct viewer *v, double t0, double secs, const char *enc)
{
	uint64_t b0 = v->f.bytes, u0 = v->updates, r0 = v->rects, z0 = v->zd.rects;
	double end = t0 + secs, t;
	int r;

	while ((t = now()) < end)
		if (readable(v->fd, (int)((end - t) * 1000) + 1) && (r = next_update(v, T_MS)))
			return r;
	printf("scroll enc=%s secs=%.3f bytes=%llu updates=%llu rects=%llu zlib_rects=%llu\n", enc,
	       now() - t0, (unsigned long long)(v->f.bytes - b0),
	       (unsigned long long)(v->updates - u0), (unsigned long long)(v->rects - r0),
	       (unsigned long long)(v->zd.rects - z0));
	fflush(stdout);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "rfb-bench: %s: %s\n", what, strerror(-r));
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", required_argument, NULL, 'w' }, { "keys", required_argument, NULL, 'k' },
		{ "gap", required_argument, NULL, 'g' },  { "scroll", required_argument, NULL, 's' },
		{ "secs", required_argument, NULL, 't' }, { "raw-secs", required_argument, NULL, 'r' },
		{ 0 },
	};
	double wait = 300, secs = 10, raw_secs = 0, *lat, t0;
	const char *scroll = NULL, *path;
	int keys = 20, gap = 250, c, i, r;
	struct viewer v;
	char bad = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'w': wait = atof(optarg); break;
		case 'k': keys = atoi(optarg); break;
		case 'g': gap = atoi(optarg); break;
		case 's': scroll = optarg; break;
		case 't': secs = atof(optarg); break;
		case 'r': raw_secs = atof(optarg); break;
		default: return 2;
		}
	}
	if (optind + 1 != argc || keys < 0 || keys > 10000 || gap < 1 || secs <= 0 ||
	    raw_secs < 0) {
		fprintf(stderr, "usage: rfb-bench SOCKET [--wait S] [--keys N] [--gap MS] "
				"[--scroll TEXT [--secs S]] [--raw-secs S]\n");
		return 2;
	}
	path = argv[optind];
	lat = calloc((size_t)keys + 1, sizeof(*lat));
	if (!lat)
		return fail("keys", -ENOMEM);
	t0 = now();
	if ((r = viewer_open(&v, path, true, t0 + wait)))
		return fail(path, r);
	do
		r = next_update(&v, T_MS);
	while (!r && !nonblack(&v.f) && now() < t0 + wait);
	if (r || !nonblack(&v.f))
		return fail("the first picture", r ? r : -ETIMEDOUT);
	if ((r = quiet(&v, gap)))
		return fail("the first picture", r);
	printf("frame %u %u\n", v.f.w, v.f.h);
	fflush(stdout);
	for (i = 0; i < keys; i++) {
		if ((r = quiet(&v, gap)) || (r = key_latency(&v, 'x', &lat[i])))
			return fail("key", r);
		printf("key %.2f\n", lat[i] * 1000);
		fflush(stdout);
		if ((r = quiet(&v, gap)) || (r = key_latency(&v, RFB_XK_BACKSPACE, &lat[keys])))
			return fail("BackSpace", r);
	}
	if (keys) {
		qsort(lat, (size_t)keys, sizeof(*lat), cmp_double);
		printf("keys n=%d median_ms=%.2f\n", keys,
		       (keys % 2 ? lat[keys / 2] : (lat[keys / 2 - 1] + lat[keys / 2]) / 2) * 1000);
		fflush(stdout);
	}
	if (scroll) {
		if ((r = quiet(&v, gap)))
			return fail("before scrolling", r);
		r = rfb_type(v.fd, scroll, 20, &bad);
		if (r == -EINVAL)
			fprintf(stderr, "rfb-bench: cannot type 0x%02x\n", (uint8_t)bad);
		if (r || (r = rfb_press(v.fd, RFB_XK_RETURN, false)))
			return fail("typing", r);
		if ((r = window(&v, now(), secs, "zlib")))
			return fail("scrolling", r);
	}
	viewer_close(&v);
	if (raw_secs > 0) {
		if ((r = viewer_open(&v, path, false, now() + 30)) || (r = next_update(&v, T_MS)) ||
		    (r = window(&v, now(), raw_secs, "raw")))
			return fail("scrolling, raw", r);
		viewer_close(&v);
	}
	free(lat);
	return 0;
}
