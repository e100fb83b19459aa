// SPDX-License-Identifier: MIT
/*
 * The VNC display (vnc.h): libvncserver driven by our own thread. Built as the
 * module plinth-vnc.so (display.c loads it); it uses nothing of plinth's but
 * log_msg() and virtio_input_send().
 *
 * libvncserver's own listeners and background threads are not used: the socket is
 * opened by display.c at start-up (before the jail and the filters), the display thread
 * accepts on it and hands each connection to rfbNewClient(), and rfbProcessEvents()
 * serves the viewers on this one thread, so it needs no thread creation (its filter,
 * SANDBOX_DISPLAY, refuses it) and no file opens.
 *
 * Invariants:
 *  1. shadow is w x h pixels (R, G, B, 0 bytes: libvncserver's 32-bit default
 *     format); the device thread writes it and the dirty rectangle under lock, and
 *     never anything else of the display.
 *  2. libvncserver's screen and frame buffer belong to the display thread alone
 *     (before spawn: to the creating thread; after the thread ends: to destroy).
 *  3. Viewers never see device memory: update() converts into shadow, the display
 *     thread copies shadow into the frame buffer, and tells libvncserver only the
 *     tiles that differ: a guest flushes one bounding box of its damage (fbcon's
 *     scroll redraws the characters that changed, anywhere on the screen).
 *  4. Viewers' keys and pointer go the other way on the display thread: X keysyms
 *     become evdev key codes (keymap[]), positions the tablet's 0..INPUT_ABS_MAX, and
 *     each report is handed to the keyboard's or tablet's virtio_input_send(), which
 *     queues it under the device's lock and wakes its I/O thread (an eventfd).
 *     kbd and tablet are set before the thread starts and outlive it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/input-event-codes.h>
#include <rfb/keysym.h>
#include <rfb/rfb.h>

#include "log.h"
#include "util.h"
#include "virtio/devices.h"
#include "virtio/input.h"
#include "virtio/internal.h"
#include "virtio/virtio-pci.h"
#include "virtio/spec.h"
#include "vnc.h"

#define VNC_TILE    16 /* changes are compared and sent in squares of this many pixels */
#define VNC_POLL_MAX 16 /* viewers polled with the wake-up; more are served every 20 ms */
#define VNC_WAIT_MS 20

struct vnc {
	int listen_fd;          /* owned */
	int wake_fd;            /* eventfd, owned: a change or the stop request */
	char *unix_path;        /* owned; unlinked at the end; NULL for TCP */
	pthread_t thread;
	bool started;
	int (*hook)(void *);    /* run first on the thread (its filter) */
	void *hook_opaque;
	pthread_mutex_t lock;   /* the fields down to dirty (invariant 1) */
	bool stop;
	uint8_t *shadow;        /* w * h * 4, owned */
	uint32_t w, h;
	bool resized;           /* w, h changed since the display thread looked */
	uint32_t dx0, dy0, dx1, dy1; /* changed since it looked; empty when dx0 >= dx1 */
	rfbScreenInfoPtr screen; /* invariant 2 */
	uint8_t *fb;            /* the screen's frame buffer, owned */
	struct virtio_dev *kbd, *tablet; /* not owned; NULL: none (invariant 4) */
	int buttons;            /* the pointer's last RFB button mask (display thread) */
	char *passwords[2];     /* VNC authentication's password (owned, wiped) and NULL */
};

__attribute__((format(printf, 1, 2))) static void vnc_log_err(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	/* It asks for TCP_NODELAY on every viewer's socket; a Unix socket has none. */
	if (strstr(buf, "TCP_NODELAY"))
		return;
	log_warn("display: %s", buf);
}

static void dirty_all(struct vnc *v)
{
	v->dx0 = v->dy0 = 0;
	v->dx1 = v->w;
	v->dy1 = v->h;
}

static void wake(struct vnc *v)
{
	uint64_t one = 1;

	if (write(v->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("display: wake-up lost (one is pending)");
}

static void vnc_resize(void *opaque, uint32_t w, uint32_t h)
{
	struct vnc *v = opaque;
	uint8_t *s;

	pthread_mutex_lock(&v->lock);
	if (!w || !h) {
		/* No scanout: black, at the size the viewers have. */
		memset(v->shadow, 0, (size_t)v->w * v->h * 4);
		dirty_all(v);
	} else if (w != v->w || h != v->h) {
		/* The device caps w and h at 16384 and w * h * 4 at its memory cap. */
		s = calloc((size_t)w * h, 4);
		if (!s) {
			log_warn("display: no memory for a %ux%u screen; keeping %ux%u", w, h,
				 v->w, v->h);
		} else {
			free(v->shadow);
			v->shadow = s;
			v->w = w;
			v->h = h;
			v->resized = true;
			dirty_all(v);
		}
	}
	pthread_mutex_unlock(&v->lock);
	wake(v);
}

static void convert(uint8_t *dst, const uint8_t *src, uint32_t n, enum gpu_pixel_order order)
{
	static const uint8_t idx[][3] = { /* source byte of R, G, B */
		[GPU_PIX_BGRX] = { 2, 1, 0 },
		[GPU_PIX_XRGB] = { 1, 2, 3 },
		[GPU_PIX_RGBX] = { 0, 1, 2 },
		[GPU_PIX_XBGR] = { 3, 2, 1 },
	};
	const uint8_t *m = idx[order];
	uint32_t i;

	for (i = 0; i < n; i++, dst += 4, src += 4) {
		dst[0] = src[m[0]];
		dst[1] = src[m[1]];
		dst[2] = src[m[2]];
		dst[3] = 0;
	}
}

static void vnc_update(void *opaque, const uint8_t *pixels, uint32_t stride,
		       enum gpu_pixel_order order, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct vnc *v = opaque;
	uint32_t r;

	pthread_mutex_lock(&v->lock);
	/* A resize that found no memory left the old size: keep to it. */
	if (x >= v->w || y >= v->h) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	w = MIN(w, v->w - x);
	h = MIN(h, v->h - y);
	for (r = 0; r < h; r++)
		convert(v->shadow + ((size_t)(y + r) * v->w + x) * 4, pixels + (size_t)r * stride, w,
			order);
	if (v->dx0 >= v->dx1) {
		v->dx0 = x;
		v->dy0 = y;
		v->dx1 = x + w;
		v->dy1 = y + h;
	} else {
		v->dx0 = MIN(v->dx0, x);
		v->dy0 = MIN(v->dy0, y);
		v->dx1 = MAX(v->dx1, x + w);
		v->dy1 = MAX(v->dy1, y + h);
	}
	pthread_mutex_unlock(&v->lock);
	wake(v);
}

/* X keysyms of a US layout to Linux evdev codes (invariant 4). Shifted symbols map
 * to their key: the viewer sends Shift itself. */
static const struct {
	uint32_t sym;
	uint16_t code;
} keymap[] = {
	{ XK_space, KEY_SPACE }, { XK_exclam, KEY_1 }, { XK_quotedbl, KEY_APOSTROPHE },
	{ XK_numbersign, KEY_3 }, { XK_dollar, KEY_4 }, { XK_percent, KEY_5 },
	{ XK_ampersand, KEY_7 }, { XK_apostrophe, KEY_APOSTROPHE }, { XK_parenleft, KEY_9 },
	{ XK_parenright, KEY_0 }, { XK_asterisk, KEY_8 }, { XK_plus, KEY_EQUAL },
	{ XK_comma, KEY_COMMA }, { XK_minus, KEY_MINUS }, { XK_period, KEY_DOT },
	{ XK_slash, KEY_SLASH }, { XK_0, KEY_0 }, { XK_1, KEY_1 }, { XK_2, KEY_2 },
	{ XK_3, KEY_3 }, { XK_4, KEY_4 }, { XK_5, KEY_5 }, { XK_6, KEY_6 }, { XK_7, KEY_7 },
	{ XK_8, KEY_8 }, { XK_9, KEY_9 }, { XK_colon, KEY_SEMICOLON },
	{ XK_semicolon, KEY_SEMICOLON }, { XK_less, KEY_COMMA }, { XK_equal, KEY_EQUAL },
	{ XK_greater, KEY_DOT }, { XK_question, KEY_SLASH }, { XK_at, KEY_2 },
	{ XK_bracketleft, KEY_LEFTBRACE }, { XK_backslash, KEY_BACKSLASH },
	{ XK_bracketright, KEY_RIGHTBRACE }, { XK_asciicircum, KEY_6 },
	{ XK_underscore, KEY_MINUS }, { XK_grave, KEY_GRAVE }, { XK_braceleft, KEY_LEFTBRACE },
	{ XK_bar, KEY_BACKSLASH }, { XK_braceright, KEY_RIGHTBRACE }, { XK_asciitilde, KEY_GRAVE },
	{ XK_a, KEY_A }, { XK_b, KEY_B }, { XK_c, KEY_C }, { XK_d, KEY_D }, { XK_e, KEY_E },
	{ XK_f, KEY_F }, { XK_g, KEY_G }, { XK_h, KEY_H }, { XK_i, KEY_I }, { XK_j, KEY_J },
	{ XK_k, KEY_K }, { XK_l, KEY_L }, { XK_m, KEY_M }, { XK_n, KEY_N }, { XK_o, KEY_O },
	{ XK_p, KEY_P }, { XK_q, KEY_Q }, { XK_r, KEY_R }, { XK_s, KEY_S }, { XK_t, KEY_T },
	{ XK_u, KEY_U }, { XK_v, KEY_V }, { XK_w, KEY_W }, { XK_x, KEY_X }, { XK_y, KEY_Y },
	{ XK_z, KEY_Z },
	{ XK_BackSpace, KEY_BACKSPACE }, { XK_Tab, KEY_TAB }, { XK_ISO_Left_Tab, KEY_TAB },
	{ XK_Return, KEY_ENTER }, { XK_KP_Enter, KEY_KPENTER }, { XK_Escape, KEY_ESC },
	{ XK_Delete, KEY_DELETE }, { XK_Insert, KEY_INSERT }, { XK_Home, KEY_HOME },
	{ XK_End, KEY_END }, { XK_Page_Up, KEY_PAGEUP }, { XK_Page_Down, KEY_PAGEDOWN },
	{ XK_Left, KEY_LEFT }, { XK_Up, KEY_UP }, { XK_Right, KEY_RIGHT }, { XK_Down, KEY_DOWN },
	{ XK_F1, KEY_F1 }, { XK_F2, KEY_F2 }, { XK_F3, KEY_F3 }, { XK_F4, KEY_F4 },
	{ XK_F5, KEY_F5 }, { XK_F6, KEY_F6 }, { XK_F7, KEY_F7 }, { XK_F8, KEY_F8 },
	{ XK_F9, KEY_F9 }, { XK_F10, KEY_F10 }, { XK_F11, KEY_F11 }, { XK_F12, KEY_F12 },
	{ XK_Shift_L, KEY_LEFTSHIFT }, { XK_Shift_R, KEY_RIGHTSHIFT },
	{ XK_Control_L, KEY_LEFTCTRL }, { XK_Control_R, KEY_RIGHTCTRL },
	{ XK_Alt_L, KEY_LEFTALT }, { XK_Alt_R, KEY_RIGHTALT }, { XK_Meta_L, KEY_LEFTALT },
	{ XK_Meta_R, KEY_RIGHTALT }, { XK_Super_L, KEY_LEFTMETA }, { XK_Super_R, KEY_RIGHTMETA },
	{ XK_Caps_Lock, KEY_CAPSLOCK }, { XK_Num_Lock, KEY_NUMLOCK },
	{ XK_Scroll_Lock, KEY_SCROLLLOCK }, { XK_Print, KEY_SYSRQ }, { XK_Pause, KEY_PAUSE },
	{ XK_Menu, KEY_COMPOSE },
};

uint16_t vnc_keysym_to_evdev(uint32_t sym)
{
	size_t i;

	if (sym >= XK_A && sym <= XK_Z)
		sym += XK_a - XK_A;
	for (i = 0; i < ARRAY_SIZE(keymap); i++)
		if (keymap[i].sym == sym)
			return keymap[i].code;
	return 0;
}

/* libvncserver's key callback (display thread): one key report to the keyboard. */
static void vnc_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	uint16_t code = vnc_keysym_to_evdev((uint32_t)sym);
	struct virtio_input_event ev[] = {
		{ .type = EV_KEY, .code = code, .value = down ? 1 : 0 },
		{ .type = EV_SYN, .code = SYN_REPORT },
	};

	if (!code) {
		log_debug("display: keysym 0x%x has no key", (unsigned int)sym);
		return;
	}
	if (v->kbd)
		virtio_input_send(v->kbd, ev, ARRAY_SIZE(ev));
}

/* A position in [0, size) as the tablet's 0..INPUT_ABS_MAX. */
static uint32_t abs_scale(int pos, int size)
{
	if (pos <= 0 || size <= 1)
		return 0;
	if (pos >= size - 1)
		return INPUT_ABS_MAX;
	return (uint32_t)((uint64_t)pos * INPUT_ABS_MAX / (uint64_t)(size - 1));
}

/* libvncserver's pointer callback (display thread): position, buttons and wheel
 * (RFB mask bits 1 left, 2 middle, 4 right, 8 wheel up, 16 wheel down). */
static void vnc_pointer(int mask, int x, int y, rfbClientPtr cl)
{
	static const struct {
		int bit;
		uint16_t code;
	} buttons[] = { { 1, BTN_LEFT }, { 2, BTN_MIDDLE }, { 4, BTN_RIGHT } };
	struct vnc *v = cl->screen->screenData;
	struct virtio_input_event ev[8];
	unsigned int n = 0;
	size_t i;

	ev[n++] = (struct virtio_input_event){ .type = EV_ABS, .code = ABS_X,
					       .value = abs_scale(x, v->screen->width) };
	ev[n++] = (struct virtio_input_event){ .type = EV_ABS, .code = ABS_Y,
					       .value = abs_scale(y, v->screen->height) };
	for (i = 0; i < ARRAY_SIZE(buttons); i++)
		if ((mask ^ v->buttons) & buttons[i].bit)
			ev[n++] = (struct virtio_input_event){
				.type = EV_KEY, .code = buttons[i].code,
				.value = (mask & buttons[i].bit) ? 1 : 0 };
	/* The wheel: each press of "button" 4 or 5 is one notch. */
	if ((mask & ~v->buttons) & 8)
		ev[n++] = (struct virtio_input_event){ .type = EV_REL, .code = REL_WHEEL, .value = 1 };
	else if ((mask & ~v->buttons) & 16)
		ev[n++] = (struct virtio_input_event){ .type = EV_REL, .code = REL_WHEEL,
						       .value = (uint32_t)-1 };
	ev[n++] = (struct virtio_input_event){ .type = EV_SYN, .code = SYN_REPORT };
	v->buttons = mask;
	if (v->tablet)
		virtio_input_send(v->tablet, ev, n);
}

/*
 * Copy the rectangle (x0, y0)-(x1, y1) of shadow that differs from fb into fb, and
 * mark it for the viewers as runs of changed tiles along each row of tiles (display
 * thread, lock held: invariant 3).
 */
static void copy_changed(struct vnc *v, uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1)
{
	uint32_t ty, tx, y, start, ya, yb, xa, xb;
	bool changed, in_run;

	for (ty = y0 - y0 % VNC_TILE; ty < y1; ty += VNC_TILE) {
		ya = MAX(ty, y0);
		yb = MIN(ty + VNC_TILE, y1);
		in_run = false;
		start = x0;
		for (tx = x0 - x0 % VNC_TILE; tx < x1; tx += VNC_TILE) {
			xa = MAX(tx, x0);
			xb = MIN(tx + VNC_TILE, x1);
			changed = false;
			for (y = ya; y < yb; y++) {
				size_t off = ((size_t)y * v->w + xa) * 4, n = (size_t)(xb - xa) * 4;

				if (memcmp(v->fb + off, v->shadow + off, n)) {
					memcpy(v->fb + off, v->shadow + off, n);
					changed = true;
				}
			}
			if (changed && !in_run)
				start = xa;
			else if (!changed && in_run)
				rfbMarkRectAsModified(v->screen, (int)start, (int)ya, (int)xa, (int)yb);
			in_run = changed;
		}
		if (in_run)
			rfbMarkRectAsModified(v->screen, (int)start, (int)ya, (int)x1, (int)yb);
	}
}

/* On the display thread: bring the frame buffer up to date. false: stop. */
static bool apply(struct vnc *v)
{
	uint32_t x0, y0, x1, y1;
	uint8_t *fb = NULL, *old = NULL;

	pthread_mutex_lock(&v->lock);
	if (v->stop) {
		pthread_mutex_unlock(&v->lock);
		return false;
	}
	if (v->resized) {
		fb = malloc((size_t)v->w * v->h * 4);
		if (!fb) {
			/* Try again on the next change; viewers keep the old picture. */
			pthread_mutex_unlock(&v->lock);
			return true;
		}
		memcpy(fb, v->shadow, (size_t)v->w * v->h * 4);
		old = v->fb;
		v->fb = fb;
		v->resized = false;
		/* The whole new frame buffer goes to every viewer. */
		rfbNewFramebuffer(v->screen, (char *)fb, (int)v->w, (int)v->h, 8, 3, 4);
	} else {
		x0 = v->dx0;
		y0 = v->dy0;
		x1 = v->dx1;
		y1 = v->dy1;
		if (x0 < x1 && y0 < y1)
			copy_changed(v, x0, y0, x1, y1);
	}
	v->dx0 = v->dx1 = 0;
	pthread_mutex_unlock(&v->lock);
	free(old);
	return true;
}

static void accept_viewer(struct vnc *v)
{
	int fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("display: accept: %s", strerror(errno));
		return;
	}
	/* libvncserver owns fd from here (it closes it when the viewer goes). */
	if (!rfbNewClient(v->screen, fd))
		log_warn("display: a viewer could not be set up");
}

static void *vnc_thread(void *arg)
{
	struct vnc *v = arg;

	if (v->hook && v->hook(v->hook_opaque)) {
		log_error("display: its thread could not be filtered; no viewer will be served");
		return NULL;
	}
	for (;;) {
		struct pollfd p[2 + VNC_POLL_MAX] = { { .fd = v->listen_fd, .events = POLLIN },
						      { .fd = v->wake_fd, .events = POLLIN } };
		unsigned int np = 2;
		bool all = true;
		rfbClientPtr cl;
		uint64_t n;

		/*
		 * Sleep until a change, a viewer's message or a new viewer: a change is
		 * sent as soon as a viewer has asked (libvncserver defers nothing, below).
		 */
		for (cl = v->screen->clientHead; cl; cl = cl->next) {
			if (cl->sock < 0)
				continue;
			if (np == ARRAY_SIZE(p)) {
				all = false;
				break;
			}
			p[np++] = (struct pollfd){ .fd = cl->sock, .events = POLLIN };
		}
		if (poll(p, np, all ? -1 : VNC_WAIT_MS) < 0 && errno != EINTR) {
			log_error("display: poll: %s", strerror(errno));
			break;
		}
		if ((p[1].revents & POLLIN) && read(v->wake_fd, &n, sizeof(n)) < 0 &&
		    errno != EAGAIN)
			log_debug("display: wake-up read: %s", strerror(errno));
		if (!apply(v))
			break;
		if (p[0].revents & POLLIN)
			accept_viewer(v);
		/* Read what the viewers sent, send what changed, drop those that went. */
		if (v->screen->clientHead)
			rfbProcessEvents(v->screen, 0);
	}
	return NULL;
}

static int vnc_spawn(void *opaque, int (*hook)(void *), void *hook_opaque)
{
	struct vnc *v = opaque;
	int r;

	v->hook = hook;
	v->hook_opaque = hook_opaque;
	r = pthread_create(&v->thread, NULL, vnc_thread, v);
	if (r) {
		log_error("display: cannot start its thread: %s", strerror(r));
		return -r;
	}
	v->started = true;
	return 0;
}

static void vnc_destroy(void *opaque)
{
	struct vnc *v = opaque;

	if (v->started) {
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_mutex_unlock(&v->lock);
		wake(v);
		pthread_join(v->thread, NULL);
	}
	rfbScreenCleanup(v->screen);
	if (v->passwords[0]) {
		explicit_bzero(v->passwords[0], strlen(v->passwords[0]));
		free(v->passwords[0]);
	}
	free(v->fb);
	free(v->shadow);
	close(v->listen_fd);
	close(v->wake_fd);
	if (v->unix_path) {
		unlink(v->unix_path);
		free(v->unix_path);
	}
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static const struct gpu_display_ops vnc_ops = {
	.resize = vnc_resize,
	.update = vnc_update,
	.spawn = vnc_spawn,
	.destroy = vnc_destroy,
};

/* The module's vnc_display_new (display.c made the listening socket). */
static int vnc_new(int listen_fd, const char *unix_path, uint32_t width, uint32_t height,
		   const struct gpu_display_ops **ops, void **opaque)
{
	struct vnc *v = calloc(1, sizeof(*v));
	int r = -ENOMEM;

	if (!v)
		goto out_log;
	v->w = width;
	v->h = height;
	v->shadow = calloc((size_t)width * height, 4);
	v->fb = calloc((size_t)width * height, 4);
	if (!v->shadow || !v->fb)
		goto out_free;
	if (unix_path && !(v->unix_path = strdup(unix_path)))
		goto out_free;
	v->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->wake_fd < 0) {
		r = -errno;
		goto out_free;
	}
	v->listen_fd = listen_fd;
	/* libvncserver's messages: errors through our log, chatter off. */
	rfbLogEnable(0);
	rfbErr = vnc_log_err;
	v->screen = rfbGetScreen(NULL, NULL, (int)width, (int)height, 8, 3, 4);
	if (!v->screen)
		goto out_close;
	v->screen->frameBuffer = (char *)v->fb;
	v->screen->desktopName = "plinth";
	v->screen->alwaysShared = TRUE; /* several viewers at once */
	v->screen->cursor = NULL;       /* no pointer yet: draw none into the picture */
	v->screen->port = 0;            /* no listener of its own: ours */
	v->screen->ipv6port = 0;
	v->screen->httpPort = 0;
	v->screen->http6Port = 0;
	v->screen->screenData = v;
	/* Coalescing comes from the viewers' requests (one update per request); a
	 * deferral would only add to the latency of each key's echo. */
	v->screen->deferUpdateTime = 0;
	v->screen->kbdAddEvent = vnc_key;
	v->screen->ptrAddEvent = vnc_pointer;
	rfbInitServer(v->screen);
	pthread_mutex_init(&v->lock, NULL);
	*ops = &vnc_ops;
	*opaque = v;
	return 0;

out_close:
	close(v->wake_fd);
out_free:
	log_error("--display: cannot set up the display: %s", strerror(-r));
	free(v->unix_path);
	free(v->shadow);
	free(v->fb);
	free(v);
	return r;
out_log:
	log_error("--display: out of memory");
	return r;
}

static int vnc_set_password(void *opaque, const char *password)
{
	struct vnc *v = opaque;

	v->passwords[0] = strdup(password);
	if (!v->passwords[0])
		return -ENOMEM;
	/* Viewers then get only VNC authentication (RFB security type 2). */
	v->screen->authPasswdData = v->passwords;
	v->screen->passwordCheck = rfbCheckPasswordByList;
	return 0;
}

static void vnc_set_inputs(void *opaque, struct virtio_dev *kbd, struct virtio_dev *tablet)
{
	struct vnc *v = opaque;

	v->kbd = kbd;
	v->tablet = tablet;
}

/* What display.c takes from this module (vnc.h). */
const struct vnc_module plinth_vnc_module = {
	.abi = VNC_MODULE_ABI,
	.display_new = vnc_new,
	.set_password = vnc_set_password,
	.set_inputs = vnc_set_inputs,
};
