// SPDX-License-Identifier: MIT
/*
 * The VNC display against a real RFB viewer (rfb_client.h) on its Unix socket, its
 * thread under the display's seccomp filter: the first frame, changed regions,
 * every pixel order, a resize seen by the viewer, two viewers at once, hostile
 * rectangles clipped, the socket's mode, and the option's checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "rfb_client.h"
#include "sandbox.h"
#include "vnc.h"

#define T_MS 5000

struct fixture {
	char dir[64], path[96];
	const struct gpu_display_ops *ops;
	void *d;
};

static int filter(void *opaque)
{
	(void)opaque;
	return sandbox_seccomp_install(SANDBOX_DISPLAY);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/plinth-vnc-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "unix:%s/vnc.sock", f->dir);
	if (vnc_display_new(f->path, 64, 32, &f->ops, &f->d))
		return -1;
	if (f->ops->spawn(f->d, filter, NULL))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	f->ops->destroy(f->d);
	assert_int_equal(stat(f->path + 5, &st), -1); /* the socket is gone */
	rmdir(f->dir);
	free(f);
	return 0;
}

static int viewer(struct fixture *f, struct rfb_frame *fr)
{
	int fd = rfb_connect_unix(f->path + 5);

	assert_true(fd >= 0);
	assert_int_equal(rfb_handshake(fd, fr, T_MS), 0);
	return fd;
}

/* Read updates until pixel (x, y) is want (the display sends when it has it). */
static void wait_pixel(int fd, struct rfb_frame *fr, uint32_t x, uint32_t y, uint32_t want)
{
	int i;

	for (i = 0; i < 50 && !(x < fr->w && y < fr->h && fr->px[y * fr->w + x] == want); i++)
		assert_int_equal(rfb_update(fd, fr, true, T_MS), 0);
	assert_true(x < fr->w && y < fr->h);
	assert_int_equal(fr->px[y * fr->w + x], want);
}

static void test_frames(void **state)
{
	struct fixture *f = *state;
	struct rfb_frame fr;
	struct stat st;
	uint8_t px[2][4][4];
	uint32_t x, y;
	int fd;

	assert_int_equal(stat(f->path + 5, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = viewer(f, &fr);
	assert_int_equal(fr.w, 64);
	assert_int_equal(fr.h, 32);
	assert_int_equal(rfb_update(fd, &fr, false, T_MS), 0);
	for (y = 0; y < 32; y++)
		for (x = 0; x < 64; x++)
			assert_int_equal(fr.px[y * 64 + x], 0);

	/* A 4 x 2 rectangle in BGRX at (8, 4): only it changes. */
	for (y = 0; y < 2; y++)
		for (x = 0; x < 4; x++) {
			px[y][x][0] = 0x33; /* B */
			px[y][x][1] = 0x22; /* G */
			px[y][x][2] = 0x11; /* R */
			px[y][x][3] = 0xff;
		}
	f->ops->update(f->d, &px[0][0][0], sizeof(px[0]), GPU_PIX_BGRX, 8, 4, 4, 2);
	wait_pixel(fd, &fr, 11, 5, 0x112233);
	assert_int_equal(fr.px[4 * 64 + 7], 0);
	assert_int_equal(fr.px[6 * 64 + 8], 0);

	/* The other byte orders. */
	f->ops->update(f->d, (const uint8_t *)"\xff\x11\x22\x33", 4, GPU_PIX_XRGB, 0, 0, 1, 1);
	wait_pixel(fd, &fr, 0, 0, 0x112233);
	f->ops->update(f->d, (const uint8_t *)"\x44\x55\x66\xff", 4, GPU_PIX_RGBX, 1, 0, 1, 1);
	wait_pixel(fd, &fr, 1, 0, 0x445566);
	f->ops->update(f->d, (const uint8_t *)"\xff\x77\x88\x99", 4, GPU_PIX_XBGR, 2, 0, 1, 1);
	wait_pixel(fd, &fr, 2, 0, 0x998877);

	/* A resize reaches the viewer (DesktopSize), then the new picture. */
	f->ops->resize(f->d, 100, 50);
	f->ops->update(f->d, (const uint8_t *)"\x01\x02\x03\x00", 4, GPU_PIX_BGRX, 99, 49, 1, 1);
	wait_pixel(fd, &fr, 99, 49, 0x030201);
	assert_int_equal(fr.w, 100);
	assert_int_equal(fr.h, 50);
	assert_int_equal(fr.px[0], 0); /* the new screen starts black */

	/* No scanout: black at the same size. */
	f->ops->resize(f->d, 0, 0);
	wait_pixel(fd, &fr, 99, 49, 0);
	assert_int_equal(fr.w, 100);
	close(fd);
	free(fr.px);
}

static void test_two_viewers(void **state)
{
	struct fixture *f = *state;
	struct rfb_frame a, b;
	int fa = viewer(f, &a), fb = viewer(f, &b);

	assert_int_equal(rfb_update(fa, &a, false, T_MS), 0);
	assert_int_equal(rfb_update(fb, &b, false, T_MS), 0);
	f->ops->update(f->d, (const uint8_t *)"\x10\x20\x30\x00", 4, GPU_PIX_BGRX, 63, 31, 1, 1);
	wait_pixel(fa, &a, 63, 31, 0x302010);
	wait_pixel(fb, &b, 63, 31, 0x302010);
	close(fa);
	/* The one left keeps being served after the other went. */
	f->ops->update(f->d, (const uint8_t *)"\x11\x21\x31\x00", 4, GPU_PIX_BGRX, 0, 31, 1, 1);
	wait_pixel(fb, &b, 0, 31, 0x312111);
	close(fb);
	free(a.px);
	free(b.px);
}

/* Rectangles past the screen (after a resize that found no memory) are clipped. */
static void test_clipped(void **state)
{
	struct fixture *f = *state;
	static const uint8_t row[8 * 4];
	struct rfb_frame fr;
	int fd = viewer(f, &fr);

	f->ops->update(f->d, row, 0, GPU_PIX_BGRX, 64, 0, 1, 1);
	f->ops->update(f->d, row, 0, GPU_PIX_BGRX, 0, 32, 1, 1);
	f->ops->update(f->d, row, 0, GPU_PIX_BGRX, 60, 30, 8, 8);
	f->ops->update(f->d, (const uint8_t *)"\x01\x01\x01\x00", 4, GPU_PIX_BGRX, 5, 5, 1, 1);
	assert_int_equal(rfb_update(fd, &fr, false, T_MS), 0);
	wait_pixel(fd, &fr, 5, 5, 0x010101);
	close(fd);
	free(fr.px);
}

static void test_where(void **state)
{
	const struct gpu_display_ops *ops;
	void *d;

	(void)state;
	assert_int_equal(vnc_where_check("--display", "unix:/run/x.sock"), 0);
	assert_int_equal(vnc_where_check("--display", "tcp:127.0.0.1:5901"), 0);
	assert_int_equal(vnc_where_check("--display", "unix:"), -EINVAL);
	assert_int_equal(vnc_where_check("--display", "tcp:localhost:5901"), -EINVAL);
	assert_int_equal(vnc_where_check("--display", "tcp:127.0.0.1:0"), -EINVAL);
	assert_int_equal(vnc_where_check("--display", "tcp:127.0.0.1:65536"), -EINVAL);
	assert_int_equal(vnc_where_check("--display", "tcp:127.0.0.1"), -EINVAL);
	assert_int_equal(vnc_where_check("--display", "5900"), -EINVAL);
	/* A path that is not a socket is never replaced. */
	assert_int_not_equal(vnc_display_new("unix:/", 64, 32, &ops, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_viewers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clipped, setup, teardown),
		cmocka_unit_test(test_where),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
