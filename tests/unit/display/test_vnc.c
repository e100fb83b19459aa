// SPDX-License-Identifier: MIT
/*
 * The VNC display against a real RFB viewer (rfb_client.h) on its Unix socket, its
 * thread under the display's seccomp filter: the first frame, changed regions,
 * every pixel order, a resize seen by the viewer, two viewers at once, hostile
 * rectangles clipped, the socket's mode, and the option's checks; a viewer's keys
 * and pointer reaching a keyboard's and a tablet's event queues (virtio-input) from
 * the filtered display thread, the keysym table, and a password refusing viewers
 * without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <linux/input.h>

#include "fake.h"
#include "input.h"
#include "internal.h"
#include <rfb/rfb.h>

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

/* A flush of the whole screen that changed one pixel sends that pixel's tile only;
 * one that changed nothing sends nothing. */
static void test_changed_tiles(void **state)
{
	struct fixture *f = *state;
	static uint8_t px[32][64][4];
	struct rfb_frame fr;
	uint64_t before;
	uint16_t rects;
	int fd = viewer(f, &fr);

	assert_int_equal(rfb_update(fd, &fr, false, T_MS), 0);
	px[20][40][2] = 0x77; /* R of BGRX */
	before = fr.bytes;
	f->ops->update(f->d, &px[0][0][0], sizeof(px[0]), GPU_PIX_BGRX, 0, 0, 64, 32);
	assert_int_equal(rfb_request(fd, &fr, true), 0);
	assert_int_equal(rfb_read_update(fd, &fr, T_MS, &rects), 0);
	assert_int_equal(rects, 1);
	assert_int_equal(fr.px[20 * 64 + 40], 0x770000);
	/* The update's header, the rectangle's and its 16 x 16 pixels, raw. */
	assert_int_equal(fr.bytes - before, 4 + 12 + 16 * 16 * 4);

	f->ops->update(f->d, &px[0][0][0], sizeof(px[0]), GPU_PIX_BGRX, 0, 0, 64, 32);
	assert_int_equal(rfb_request(fd, &fr, true), 0);
	assert_int_equal(rfb_read_update(fd, &fr, 300, &rects), -ETIMEDOUT);
	/* Still asked for: the next change comes. */
	px[31][63][0] = 0x05;
	f->ops->update(f->d, &px[0][0][0], sizeof(px[0]), GPU_PIX_BGRX, 0, 0, 64, 32);
	assert_int_equal(rfb_read_update(fd, &fr, T_MS, &rects), 0);
	assert_int_equal(rects, 1);
	assert_int_equal(fr.px[31 * 64 + 63], 0x000005);
	close(fd);
	free(fr.px);
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

/* An eventq of 64 buffers at ring base, to be drained by hand. */
struct evq {
	struct drv_vq dq;
	uint64_t buf;
};

static void evq_setup(struct virtio_dev *d, struct evq *q, struct fake_mem *fm, uint64_t base)
{
	struct virtq *vq = &d->vq[0];
	uint16_t i;

	drv_vq_setup(&q->dq, fm, 64, base);
	vq->st.size = 64;
	vq->st.desc_gpa = q->dq.desc;
	vq->st.avail_gpa = q->dq.avail;
	vq->st.used_gpa = q->dq.used;
	virtq_set_features(vq, 0);
	assert_int_equal(virtq_enable(vq), 0);
	q->buf = base + 0x2000;
	for (i = 0; i < 64; i++) {
		drv_set_desc(&q->dq, i, q->buf + 8u * i, 8, VRING_DESC_F_WRITE, 0);
		drv_kick_head(&q->dq, i);
	}
}

/* Drain d until n events came (the display thread sends them): false on timeout. */
static bool evq_wait(struct virtio_dev *d, struct evq *q, uint16_t n)
{
	int i;

	for (i = 0; i < T_MS / 10 && drv_used_idx(&q->dq) < n; i++) {
		virtio_input_ops.handle(d, VIRTIO_TAG_DEV, EPOLLIN);
		usleep(10 * 1000);
	}
	return drv_used_idx(&q->dq) >= n;
}

static const struct virtio_input_event *evq_ev(struct fake_mem *fm, struct evq *q, uint16_t i)
{
	return gpa_ptr(fm, q->buf + 8u * i);
}

static void test_input(void **state)
{
	struct fake_mem fm;
	struct virtio_dev kbd, tab;
	struct evq kq, tq;
	struct fixture f = { 0 };
	struct rfb_frame fr;
	const struct virtio_input_event *e;
	int fd;

	(void)state;
	fake_mem_init(&fm);
	assert_int_equal(virtio_input_init(&kbd, &fm.gm, INPUT_KEYBOARD), 0);
	assert_int_equal(virtio_input_init(&tab, &fm.gm, INPUT_TABLET), 0);
	evq_setup(&kbd, &kq, &fm, 0x10000);
	evq_setup(&tab, &tq, &fm, 0x20000);
	strcpy(f.dir, "/tmp/plinth-vnc-XXXXXX");
	assert_non_null(mkdtemp(f.dir));
	snprintf(f.path, sizeof(f.path), "unix:%s/vnc.sock", f.dir);
	assert_int_equal(vnc_display_new(f.path, 64, 32, &f.ops, &f.d), 0);
	vnc_display_set_inputs(f.d, &kbd, &tab);
	assert_int_equal(f.ops->spawn(f.d, filter, NULL), 0);

	fd = viewer(&f, &fr);
	/* Shift, 'A' (the shifted keysym), release both: four key reports. */
	assert_int_equal(rfb_key(fd, 0xffe1, true), 0);
	assert_int_equal(rfb_key(fd, 'A', true), 0);
	assert_int_equal(rfb_key(fd, 'A', false), 0);
	assert_int_equal(rfb_key(fd, 0xffe1, false), 0);
	assert_int_equal(rfb_key(fd, 0x12345678, true), 0); /* no such key: nothing sent */
	assert_int_equal(rfb_key(fd, 0xff0d, true), 0);
	assert_true(evq_wait(&kbd, &kq, 10));
	e = evq_ev(&fm, &kq, 0);
	assert_int_equal(e[0].type, EV_KEY);
	assert_int_equal(e[0].code, KEY_LEFTSHIFT);
	assert_int_equal(e[0].value, 1);
	assert_int_equal(e[1].type, EV_SYN);
	assert_int_equal(e[2].code, KEY_A);
	assert_int_equal(e[2].value, 1);
	assert_int_equal(e[4].code, KEY_A);
	assert_int_equal(e[4].value, 0);
	assert_int_equal(e[6].code, KEY_LEFTSHIFT);
	assert_int_equal(e[6].value, 0);
	assert_int_equal(e[8].code, KEY_ENTER);

	/* The far corner with the left button, then the wheel up: scaled, changes only. */
	assert_int_equal(rfb_pointer(fd, 1, 63, 31), 0);
	assert_int_equal(rfb_pointer(fd, 1 | 8, 0, 0), 0);
	assert_true(evq_wait(&tab, &tq, 8));
	e = evq_ev(&fm, &tq, 0);
	assert_int_equal(e[0].type, EV_ABS);
	assert_int_equal(e[0].code, ABS_X);
	assert_int_equal(e[0].value, INPUT_ABS_MAX);
	assert_int_equal(e[1].code, ABS_Y);
	assert_int_equal(e[1].value, INPUT_ABS_MAX);
	assert_int_equal(e[2].type, EV_KEY);
	assert_int_equal(e[2].code, BTN_LEFT);
	assert_int_equal(e[2].value, 1);
	assert_int_equal(e[3].type, EV_SYN);
	assert_int_equal(e[4].value, 0);
	assert_int_equal(e[5].value, 0);
	assert_int_equal(e[6].type, EV_REL); /* the button stays: not repeated */
	assert_int_equal(e[6].code, REL_WHEEL);
	assert_int_equal(e[6].value, 1);
	assert_int_equal(e[7].type, EV_SYN);
	close(fd);
	free(fr.px);
	f.ops->destroy(f.d);
	rmdir(f.dir);
	virtio_dev_fini(&kbd);
	virtio_dev_fini(&tab);
	fake_mem_fini(&fm);
}

static void test_keymap(void **state)
{
	(void)state;
	assert_int_equal(vnc_keysym_to_evdev('a'), KEY_A);
	assert_int_equal(vnc_keysym_to_evdev('Z'), KEY_Z);
	assert_int_equal(vnc_keysym_to_evdev('0'), KEY_0);
	assert_int_equal(vnc_keysym_to_evdev('$'), KEY_4);
	assert_int_equal(vnc_keysym_to_evdev('|'), KEY_BACKSLASH);
	assert_int_equal(vnc_keysym_to_evdev(0xff0d), KEY_ENTER);
	assert_int_equal(vnc_keysym_to_evdev(0xff08), KEY_BACKSPACE);
	assert_int_equal(vnc_keysym_to_evdev(0xff1b), KEY_ESC);
	assert_int_equal(vnc_keysym_to_evdev(0xff52), KEY_UP);
	assert_int_equal(vnc_keysym_to_evdev(0xffbe), KEY_F1);
	assert_int_equal(vnc_keysym_to_evdev(0xffc9), KEY_F12);
	assert_int_equal(vnc_keysym_to_evdev(0xffe3), KEY_LEFTCTRL);
	assert_int_equal(vnc_keysym_to_evdev(0xffe9), KEY_LEFTALT);
	assert_int_equal(vnc_keysym_to_evdev(0x20ac), 0); /* EuroSign: not on a US layout */
	assert_int_equal(vnc_keysym_to_evdev(0), 0);
}

/* RFB 3.8 with VNC authentication (type 2) and password pw: the SecurityResult (0 ok,
 * 1 refused) or -errno. */
static int vnc_auth(int fd, const char *pw)
{
	uint8_t buf[16], n, types[255], two = 2;
	char key[9] = { 0 };
	int r;

	if ((r = rfb_read(fd, buf, 12, T_MS, NULL)) || (r = rfb_write(fd, "RFB 003.008\n", 12)) ||
	    (r = rfb_read(fd, &n, 1, T_MS, NULL)) || !n || (r = rfb_read(fd, types, n, T_MS, NULL)))
		return r ? r : -EPROTO;
	if (!memchr(types, 2, n) || memchr(types, 1, n))
		return -EPROTO; /* password only: never "None" */
	if ((r = rfb_write(fd, &two, 1)) || (r = rfb_read(fd, buf, 16, T_MS, NULL)))
		return r;
	strncpy(key, pw, 8);
	rfbEncryptBytes(buf, key);
	if ((r = rfb_write(fd, buf, 16)) || (r = rfb_read(fd, buf, 4, T_MS, NULL)))
		return r;
	return (int)rfb_be32(buf);
}

/* With a password: a viewer without it (security "None") and a wrong one are refused. */
static void test_password(void **state)
{
	struct fixture f = { 0 };
	struct rfb_frame fr;
	int fd;

	(void)state;
	strcpy(f.dir, "/tmp/plinth-vnc-XXXXXX");
	assert_non_null(mkdtemp(f.dir));
	snprintf(f.path, sizeof(f.path), "unix:%s/vnc.sock", f.dir);
	assert_int_equal(vnc_display_new(f.path, 64, 32, &f.ops, &f.d), 0);
	assert_int_equal(vnc_display_set_password(f.d, "s3cret"), 0);
	assert_int_equal(f.ops->spawn(f.d, filter, NULL), 0);

	fd = rfb_connect_unix(f.path + 5);
	assert_true(fd >= 0);
	assert_int_equal(rfb_handshake(fd, &fr, T_MS), -EACCES);
	free(fr.px);
	close(fd);
	fd = rfb_connect_unix(f.path + 5);
	assert_int_equal(vnc_auth(fd, "wrong"), 1);
	close(fd);
	fd = rfb_connect_unix(f.path + 5);
	assert_int_equal(vnc_auth(fd, "s3cret"), 0);
	close(fd);
	f.ops->destroy(f.d);
	rmdir(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_viewers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_tiles, setup, teardown),
		cmocka_unit_test(test_where),
		cmocka_unit_test(test_input),
		cmocka_unit_test(test_keymap),
		cmocka_unit_test(test_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
