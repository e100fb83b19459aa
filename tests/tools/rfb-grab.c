// SPDX-License-Identifier: MIT
/*
 * rfb-grab SOCKET [SECONDS [WxH]]: a VNC viewer for tests
 * (tests/integration/display-vnc.sh). Connects to the Unix socket SOCKET (retrying
 * until it exists), waits up to SECONDS (default 30) for a frame that is not all
 * black and prints it as
 *   frame W H nonblack=N sum=HEX bytes=B
 * then waits up to SECONDS more for the picture to change (with WxH: for a frame of
 * that size that is not all black, the guest's resolution change as the server's
 * DesktopSize announced it) and prints that frame the same way. Exit 0 when both
 * came, 2 on a protocol or socket error, 3 when the screen stayed black, 4 when it
 * did not change (or never took that size). With PPM=FILE the last frame is also
 * written as a PPM image.
 */
#include <stdio.h>
#include <time.h>

#include "rfb_client.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t nonblack(const struct rfb_frame *f)
{
	uint64_t n = 0, i;

	for (i = 0; i < (uint64_t)f->w * f->h; i++)
		n += (f->px[i] & 0xffffff) != 0;
	return n;
}

static void show(const struct rfb_frame *f)
{
	printf("frame %u %u nonblack=%llu sum=%016llx bytes=%llu\n", f->w, f->h,
	       (unsigned long long)nonblack(f), (unsigned long long)rfb_sum(f),
	       (unsigned long long)f->bytes);
	fflush(stdout);
}

static void ppm(const struct rfb_frame *f, const char *path)
{
	FILE *o = fopen(path, "wb");
	uint64_t i;

	if (!o)
		return;
	fprintf(o, "P6\n%u %u\n255\n", f->w, f->h);
	for (i = 0; i < (uint64_t)f->w * f->h; i++) {
		putc((f->px[i] >> 16) & 0xff, o);
		putc((f->px[i] >> 8) & 0xff, o);
		putc(f->px[i] & 0xff, o);
	}
	fclose(o);
}

int main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 30, end;
	struct rfb_frame f = { 0 };
	unsigned int want_w = 0, want_h = 0;
	uint64_t first;
	int fd = -1, r;

	if (argc < 2 || (argc > 3 && sscanf(argv[3], "%ux%u", &want_w, &want_h) != 2)) {
		fprintf(stderr, "usage: rfb-grab SOCKET [SECONDS [WxH]]\n");
		return 2;
	}
	end = now() + secs;
	while ((fd = rfb_connect_unix(argv[1])) < 0 && now() < end)
		usleep(200 * 1000);
	if (fd < 0) {
		fprintf(stderr, "rfb-grab: cannot connect to %s\n", argv[1]);
		return 2;
	}
	r = rfb_handshake(fd, &f, 5000);
	if (!r)
		r = rfb_update(fd, &f, false, 5000);
	/* Until something is drawn: incremental updates come when the picture changes. */
	while (!r && !nonblack(&f) && now() < end) {
		r = rfb_update(fd, &f, true, (int)((end - now()) * 1000) + 1);
		if (r == -ETIMEDOUT)
			break;
	}
	if (r && r != -ETIMEDOUT) {
		fprintf(stderr, "rfb-grab: %s\n", strerror(-r));
		return 2;
	}
	show(&f);
	if (!nonblack(&f))
		return 3;
	first = rfb_sum(&f);
	end = now() + secs;
	r = 0;
	while (!r && now() < end) {
		if (want_w ? f.w == want_w && f.h == want_h && nonblack(&f) : rfb_sum(&f) != first)
			break;
		r = rfb_update(fd, &f, true, (int)((end - now()) * 1000) + 1);
	}
	if (r && r != -ETIMEDOUT) {
		fprintf(stderr, "rfb-grab: %s\n", strerror(-r));
		return 2;
	}
	show(&f);
	if (getenv("PPM"))
		ppm(&f, getenv("PPM"));
	if (want_w)
		return f.w == want_w && f.h == want_h && nonblack(&f) ? 0 : 4;
	return rfb_sum(&f) == first ? 4 : 0;
}
