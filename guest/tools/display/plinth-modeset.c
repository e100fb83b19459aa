// SPDX-License-Identifier: MIT
/*
 * plinth-modeset WxH [SECONDS]: a guest-side resolution change for the display tests
 * (tests/integration/display-vnc.sh), as a compositor or X server makes one.
 * Opens /dev/dri/card0, lists the first connected connector's modes (its EDID's)
 * as "modes W1xH1 W2xH2 ..." (the preferred one first), takes the mode WxH from
 * that list, puts a dumb buffer of that size with a test pattern on the connector's
 * CRTC, prints "modeset WxH ok" and holds it SECONDS (default 10); exiting gives the
 * screen back to the console, which restores its own mode.
 *
 * Plain DRM ioctls through the uapi headers (libdrm-dev's copies of the kernel's):
 * the tool is static, and libdrm itself would add nothing but wrappers of these.
 * Exit 0 on success, 1 with a one-line reason otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>

#define MAX_OBJ 16
#define MAX_MODES 256 /* without EDID, Linux lists a few dozen */

static int fail(const char *what)
{
	fprintf(stderr, "plinth-modeset: %s: %s\n", what, strerror(errno));
	return 1;
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

int main(int argc, char **argv)
{
	uint32_t conns[MAX_OBJ], crtcs[MAX_OBJ], encs[MAX_OBJ], w, h, secs, i, pick = MAX_MODES;
	uint32_t nmodes, nencs;
	struct drm_mode_modeinfo modes[MAX_MODES];
	struct drm_mode_card_res res = { 0 };
	struct drm_mode_get_connector conn;
	struct drm_mode_get_encoder enc = { 0 };
	struct drm_mode_create_dumb dumb = { 0 };
	struct drm_mode_map_dumb map = { 0 };
	struct drm_mode_fb_cmd fb = { 0 };
	struct drm_mode_crtc crtc = { 0 };
	uint32_t *px;
	int fd;

	if (argc < 2 || sscanf(argv[1], "%ux%u", &w, &h) != 2) {
		fprintf(stderr, "usage: plinth-modeset WxH [SECONDS]\n");
		return 1;
	}
	secs = argc > 2 ? (uint32_t)atoi(argv[2]) : 10;
	fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail("/dev/dri/card0");
	/* The object ids, at most MAX_OBJ of each (virtio-gpu has one per scanout). */
	if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
		return fail("resources");
	if (res.count_connectors > MAX_OBJ || res.count_crtcs > MAX_OBJ)
		res.count_connectors = res.count_crtcs = MAX_OBJ;
	res.connector_id_ptr = (uintptr_t)conns;
	res.crtc_id_ptr = (uintptr_t)crtcs;
	res.count_fbs = res.count_encoders = 0;
	if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
		return fail("resources");
	for (i = 0; i < res.count_connectors && i < MAX_OBJ; i++) {
		memset(&conn, 0, sizeof(conn));
		conn.connector_id = conns[i];
		if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn))
			return fail("connector");
		if (conn.connection == 1 && conn.count_modes)
			break;
	}
	if (i == res.count_connectors || i == MAX_OBJ) {
		fprintf(stderr, "plinth-modeset: no connected connector with modes\n");
		return 1;
	}
	/* The kernel copies the lists only when they fit whole: ask for all or fail. */
	nmodes = conn.count_modes;
	nencs = conn.count_encoders;
	if (nmodes > MAX_MODES || !nencs || nencs > MAX_OBJ) {
		fprintf(stderr, "plinth-modeset: %u modes and %u encoders: too many\n", nmodes, nencs);
		return 1;
	}
	conn.modes_ptr = (uintptr_t)modes;
	conn.encoders_ptr = (uintptr_t)encs;
	conn.count_props = 0;
	if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn))
		return fail("connector modes");
	if (conn.count_modes != nmodes || conn.count_encoders != nencs) {
		fprintf(stderr, "plinth-modeset: the connector's modes changed while read\n");
		return 1;
	}
	printf("modes");
	for (i = 0; i < nmodes; i++) {
		printf(" %ux%u", modes[i].hdisplay, modes[i].vdisplay);
		if (pick == MAX_MODES && modes[i].hdisplay == w && modes[i].vdisplay == h)
			pick = i;
	}
	printf("\n");
	if (pick == MAX_MODES) {
		fprintf(stderr, "plinth-modeset: the connector has no mode %ux%u\n", w, h);
		return 1;
	}
	/* The CRTC: the encoder's current one, else the first. */
	enc.encoder_id = conn.encoder_id ? conn.encoder_id : encs[0];
	if (xioctl(fd, DRM_IOCTL_MODE_GETENCODER, &enc))
		return fail("encoder");
	crtc.crtc_id = enc.crtc_id ? enc.crtc_id : crtcs[0];

	dumb.width = w;
	dumb.height = h;
	dumb.bpp = 32;
	if (xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &dumb))
		return fail("dumb buffer");
	map.handle = dumb.handle;
	if (xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &map))
		return fail("map");
	px = mmap(NULL, dumb.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
	if (px == MAP_FAILED)
		return fail("mmap");
	/* Bands of colour: a viewer sees a picture of this size that is not black. */
	for (i = 0; i < (uint32_t)(dumb.size / 4); i++) {
		uint32_t x = i % (dumb.pitch / 4), y = i / (dumb.pitch / 4);

		px[i] = (x * 255 / w) << 16 | (y * 255 / h) << 8 | 0x80;
	}
	fb.width = w;
	fb.height = h;
	fb.pitch = dumb.pitch;
	fb.bpp = 32;
	fb.depth = 24;
	fb.handle = dumb.handle;
	if (xioctl(fd, DRM_IOCTL_MODE_ADDFB, &fb))
		return fail("framebuffer");
	crtc.fb_id = fb.fb_id;
	crtc.set_connectors_ptr = (uintptr_t)&conn.connector_id;
	crtc.count_connectors = 1;
	crtc.mode = modes[pick];
	crtc.mode_valid = 1;
	if (xioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc))
		return fail("set the mode");
	/* The buffer is shown; a flush for drivers that track damage (virtio-gpu does). */
	{
		struct drm_clip_rect clip = { 0, 0, (unsigned short)w, (unsigned short)h };
		struct drm_mode_fb_dirty_cmd dirty = { .fb_id = fb.fb_id, .num_clips = 1,
						       .clips_ptr = (uintptr_t)&clip };

		xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty);
	}
	printf("modeset %ux%u ok\n", w, h);
	fflush(stdout);
	sleep(secs);
	return 0;
}
