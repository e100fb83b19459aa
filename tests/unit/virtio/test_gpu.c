// SPDX-License-Identifier: MIT
/*
 * virtio-gpu (2D): the display path a driver takes (create, attach, set scanout,
 * transfer, flush) seen through a fake display, the same over the control queue,
 * and a hostile-guest case for every command (sizes, offsets, rectangles, ids,
 * backing outside RAM, the memory cap).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include <linux/virtio_gpu.h>

#include "drv_pci.h"
#include "edid.h"
#include "fake_dev.h"
#include "fake_display.h"
#include "gpu.h"
#include "internal.h"
#include "state/state.h"
#include "util.h"

#define RING 0x1000u
#define FB   0x40000u /* the guest's framebuffer: 64 x 32 x 4 = 8 KiB */
#define REQ  0x20000u
#define RESP 0x30000u
#define W    64
#define H    32

/* The fake display: the last size and a copy of what was shown, as the backend keeps it. */
struct fake_display {
	uint32_t w, h;
	unsigned int resizes, updates;
	uint32_t last_x, last_y, last_w, last_h;
	uint8_t px[H][W][4]; /* as given (BGRX here) */
	bool destroyed;
};

static void fd_resize(void *o, uint32_t w, uint32_t h)
{
	struct fake_display *d = o;

	d->w = w;
	d->h = h;
	d->resizes++;
}

static void fd_update(void *o, const uint8_t *pixels, uint32_t stride, enum gpu_pixel_order order,
		      uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct fake_display *d = o;
	uint32_t r;

	assert_int_equal(order, GPU_PIX_BGRX);
	assert_true(x + w <= d->w && y + h <= d->h);
	assert_true(x + w <= W && y + h <= H);
	for (r = 0; r < h; r++)
		memcpy(d->px[y + r][x], pixels + (size_t)r * stride, (size_t)w * 4);
	d->last_x = x;
	d->last_y = y;
	d->last_w = w;
	d->last_h = h;
	d->updates++;
}

static void fd_destroy(void *o)
{
	((struct fake_display *)o)->destroyed = true;
}

static const struct gpu_display_ops fake_display_ops = {
	.resize = fd_resize, .update = fd_update, .spawn = fake_display_spawn, .destroy = fd_destroy,
};

struct fixture {
	struct fake_mem fm;
	struct virtio_dev vdev;
	struct fake_transport ft;
	struct drv_vq dq[2];
	struct fake_display disp;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	if (virtio_gpu_init(&f->vdev, &f->fm.gm, 1024, 768, &fake_display_ops, &f->disp))
		return -1;
	if (fake_dev_setup(&f->vdev, &f->ft, &f->fm, f->dq, ~0ULL, 8, RING))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->vdev);
	assert_true(f->disp.destroyed);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

/* Send one command directly; returns the answer's type. */
static uint32_t cmd(struct fixture *f, const void *req, size_t len)
{
	struct virtio_gpu_resp_display_info resp;
	size_t n = virtio_gpu_cmd(&f->vdev, req, len, &resp, sizeof(resp));

	assert_true(n >= sizeof(resp.hdr));
	return resp.hdr.type;
}

static uint32_t create(struct fixture *f, uint32_t id, uint32_t format, uint32_t w, uint32_t h)
{
	struct virtio_gpu_resource_create_2d c = {
		.hdr.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
		.resource_id = id, .format = format, .width = w, .height = h,
	};

	return cmd(f, &c, sizeof(c));
}

static uint32_t attach(struct fixture *f, uint32_t id, const struct virtio_gpu_mem_entry *e,
		       uint32_t n, uint32_t claimed)
{
	uint8_t buf[sizeof(struct virtio_gpu_resource_attach_backing) + 8 * sizeof(*e)];
	struct virtio_gpu_resource_attach_backing a = {
		.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
		.resource_id = id, .nr_entries = claimed,
	};

	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), e, n * sizeof(*e));
	return cmd(f, buf, sizeof(a) + n * sizeof(*e));
}

static uint32_t scanout(struct fixture *f, uint32_t sid, uint32_t id, uint32_t x, uint32_t y,
			uint32_t w, uint32_t h)
{
	struct virtio_gpu_set_scanout s = {
		.hdr.type = VIRTIO_GPU_CMD_SET_SCANOUT,
		.r = { x, y, w, h }, .scanout_id = sid, .resource_id = id,
	};

	return cmd(f, &s, sizeof(s));
}

static uint32_t transfer(struct fixture *f, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
			 uint32_t h, uint64_t off)
{
	struct virtio_gpu_transfer_to_host_2d t = {
		.hdr.type = VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
		.r = { x, y, w, h }, .offset = off, .resource_id = id,
	};

	return cmd(f, &t, sizeof(t));
}

static uint32_t flush(struct fixture *f, uint32_t id, uint32_t x, uint32_t y, uint32_t w,
		      uint32_t h)
{
	struct virtio_gpu_resource_flush fl = {
		.hdr.type = VIRTIO_GPU_CMD_RESOURCE_FLUSH, .r = { x, y, w, h }, .resource_id = id,
	};

	return cmd(f, &fl, sizeof(fl));
}

/* A W x H resource 1 backed by FB in two ranges. */
static void make_fb(struct fixture *f)
{
	struct virtio_gpu_mem_entry e[2] = {
		{ .addr = FB, .length = W * H * 2 },
		{ .addr = FB + W * H * 2, .length = W * H * 2 },
	};
	uint32_t i;

	for (i = 0; i < W * H; i++) {
		uint8_t *p = gpa_ptr(&f->fm, FB + 4 * i);

		p[0] = (uint8_t)i;          /* B */
		p[1] = (uint8_t)(i >> 8);   /* G */
		p[2] = 0x80;                /* R */
		p[3] = 0;
	}
	assert_int_equal(create(f, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(attach(f, 1, e, 2, 2), VIRTIO_GPU_RESP_OK_NODATA);
}

static void test_display_info(void **state)
{
	struct fixture *f = *state;
	struct virtio_gpu_ctrl_hdr h = { .type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO,
					 .flags = VIRTIO_GPU_FLAG_FENCE, .fence_id = 77 };
	struct virtio_gpu_resp_display_info r;
	struct virtio_gpu_config cfg;

	assert_int_equal(virtio_gpu_cmd(&f->vdev, &h, sizeof(h), &r, sizeof(r)), sizeof(r));
	assert_int_equal(r.hdr.type, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	assert_int_equal(r.hdr.flags, VIRTIO_GPU_FLAG_FENCE);
	assert_int_equal(r.hdr.fence_id, 77);
	assert_int_equal(r.pmodes[0].enabled, 1);
	assert_int_equal(r.pmodes[0].r.width, 1024);
	assert_int_equal(r.pmodes[0].r.height, 768);
	assert_int_equal(r.pmodes[1].enabled, 0);
	virtio_gpu_ops.cfg_read(&f->vdev, 0, &cfg, sizeof(cfg));
	assert_int_equal(cfg.num_scanouts, 1);
	assert_int_equal(cfg.num_capsets, 0);
}

/* The checks a guest's EDID parser makes, and the preferred mode read back. */
static void check_edid(const uint8_t *e, uint32_t w, uint32_t h, uint32_t max_hz)
{
	static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	const uint8_t *d = e + 54; /* the first descriptor: the preferred mode */
	uint32_t clock, ht, vt, hz, i;
	uint8_t sum = 0;

	for (i = 0; i < EDID_BLOCK; i++)
		sum = (uint8_t)(sum + e[i]);
	assert_int_equal(sum, 0);
	assert_memory_equal(e, header, sizeof(header));
	assert_int_equal(e[18], 1); /* version 1.4 */
	assert_int_equal(e[19], 4);
	assert_int_equal(e[126], 0); /* no extension blocks */
	assert_int_equal(e[36] & 0x08, 0x08); /* 1024x768 among the established modes */
	clock = d[0] | (uint32_t)d[1] << 8;
	assert_true(clock > 0);
	assert_int_equal(d[2] | (uint32_t)(d[4] >> 4) << 8, w);
	assert_int_equal(d[5] | (uint32_t)(d[7] >> 4) << 8, h);
	ht = w + (d[3] | (uint32_t)(d[4] & 15) << 8);
	vt = h + (d[6] | (uint32_t)(d[7] & 15) << 8);
	hz = (uint32_t)((uint64_t)clock * 10000 / ((uint64_t)ht * vt));
	assert_true(hz >= 1 && hz <= max_hz);
	/* The name descriptor: tag 0xfc, "plinth" ended by a newline. */
	assert_int_equal(e[72 + 3], 0xfc);
	assert_memory_equal(e + 72 + 5, "plinth\n", 7);
}

/* GET_EDID: offered with the feature, the preferred mode inside; hostile asks refused. */
static void test_edid(void **state)
{
	struct fixture *f = *state;
	struct virtio_gpu_cmd_get_edid c = { .hdr.type = VIRTIO_GPU_CMD_GET_EDID };
	struct virtio_gpu_resp_edid r;
	struct fake_display d2 = { 0 };
	struct virtio_dev big;
	uint8_t e[EDID_BLOCK];

	assert_true(f->vdev.host_features & (1ULL << VIRTIO_GPU_F_EDID));
	assert_int_equal(virtio_gpu_cmd(&f->vdev, &c, sizeof(c), &r, sizeof(r)), sizeof(r));
	assert_int_equal(r.hdr.type, VIRTIO_GPU_RESP_OK_EDID);
	assert_int_equal(r.size, EDID_BLOCK);
	check_edid(r.edid, 1024, 768, 60);
	/* A short answer buffer gets what fits, never more. */
	assert_int_equal(virtio_gpu_cmd(&f->vdev, &c, sizeof(c), &r, 40), 40);
	/* Another scanout; a request cut short. */
	c.scanout = 1;
	assert_int_equal(cmd(f, &c, sizeof(c)), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	c.scanout = 0;
	assert_int_equal(cmd(f, &c, sizeof(c) - 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

	/* The largest mode a detailed timing holds: the rate drops so the clock fits. */
	assert_true(edid_build(4095, 4095, e));
	check_edid(e, 4095, 4095, 59);
	assert_true(edid_build(640, 480, e));
	check_edid(e, 640, 480, 60);
	/* Past 4095, or under a 10 MHz clock, there is no EDID: the feature is not
	 * offered and GET_EDID refused. */
	assert_false(edid_build(4096, 768, e));
	assert_false(edid_build(16, 16, e));
	assert_false(edid_build(1024, 0, e));
	assert_int_equal(virtio_gpu_init(&big, &f->fm.gm, 4096, 2160, &fake_display_ops, &d2), 0);
	assert_false(big.host_features & (1ULL << VIRTIO_GPU_F_EDID));
	assert_int_equal(virtio_gpu_cmd(&big, &c, sizeof(c), &r, sizeof(r)), sizeof(r.hdr));
	assert_int_equal(r.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);
	virtio_dev_fini(&big);
	assert_true(d2.destroyed);
}

static void test_draw(void **state)
{
	struct fixture *f = *state;
	uint8_t *p;

	make_fb(f);
	assert_int_equal(scanout(f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(f->disp.w, W);
	assert_int_equal(f->disp.h, H);
	/* Nothing transferred yet: the resource is black. */
	assert_int_equal(f->disp.px[5][7][2], 0);
	assert_int_equal(transfer(f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	f->disp.updates = 0;
	assert_int_equal(flush(f, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(f->disp.updates, 1);
	assert_int_equal(f->disp.px[5][7][0], (uint8_t)(5 * W + 7));
	assert_int_equal(f->disp.px[31][63][1], (uint8_t)((31 * W + 63) >> 8));
	assert_int_equal(f->disp.px[5][7][2], 0x80);

	/* A small rectangle: only it is copied and only it is shown. */
	p = gpa_ptr(&f->fm, FB + (10 * W + 20) * 4);
	p[2] = 0x11;
	p = gpa_ptr(&f->fm, FB + (10 * W + 30) * 4); /* outside the rectangle */
	p[2] = 0x22;
	assert_int_equal(transfer(f, 1, 20, 10, 4, 2, (10 * W + 20) * 4),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(flush(f, 1, 20, 10, 4, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(f->disp.last_x, 20);
	assert_int_equal(f->disp.last_y, 10);
	assert_int_equal(f->disp.last_w, 4);
	assert_int_equal(f->disp.last_h, 2);
	assert_int_equal(f->disp.px[10][20][2], 0x11);
	assert_int_equal(f->disp.px[10][30][2], 0x80);

	/* A scanout showing part of the resource: flushes are clipped and moved. */
	assert_int_equal(scanout(f, 0, 1, 16, 8, 32, 16), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(f->disp.w, 32);
	assert_int_equal(flush(f, 1, 0, 0, 20, 10), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(f->disp.last_x, 0);
	assert_int_equal(f->disp.last_y, 0);
	assert_int_equal(f->disp.last_w, 4);
	assert_int_equal(f->disp.last_h, 2);

	/* Unref of the shown resource blanks the display. */
	{
		struct virtio_gpu_resource_unref u = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF,
						       .resource_id = 1 };

		assert_int_equal(cmd(f, &u, sizeof(u)), VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(f->disp.w, 0);
		assert_int_equal(cmd(f, &u, sizeof(u)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	}
}

/* The same through the control queue, as the driver sends it. */
static void test_queue(void **state)
{
	struct fixture *f = *state;
	struct virtio_gpu_ctrl_hdr h = { .type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO };
	struct virtio_gpu_resp_display_info *r = gpa_ptr(&f->fm, RESP);
	struct virtio_gpu_update_cursor cur = { .hdr.type = VIRTIO_GPU_CMD_MOVE_CURSOR,
						.pos = { .x = 5, .y = 6 } };
	uint32_t id, len;

	memcpy(gpa_ptr(&f->fm, REQ), &h, sizeof(h));
	drv_set_desc(&f->dq[0], 0, REQ, sizeof(h), VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->dq[0], 1, RESP, sizeof(*r), VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_gpu_ops.handle(&f->vdev, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[0]), 1);
	drv_used_elem(&f->dq[0], 0, &id, &len);
	assert_int_equal(len, sizeof(*r));
	assert_int_equal(r->hdr.type, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	assert_int_equal(r->pmodes[0].r.width, 1024);

	/* A response buffer too short for the answer gets what fits. */
	drv_set_desc(&f->dq[0], 1, RESP, 8, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->dq[0], 0);
	virtio_gpu_ops.handle(&f->vdev, 0, EPOLLIN);
	drv_used_elem(&f->dq[0], 1, &id, &len);
	assert_int_equal(len, 8);

	/* The cursor queue answers without writing. */
	memcpy(gpa_ptr(&f->fm, REQ + 0x100), &cur, sizeof(cur));
	drv_set_desc(&f->dq[1], 0, REQ + 0x100, sizeof(cur), 0, 0);
	drv_kick_head(&f->dq[1], 0);
	virtio_gpu_ops.handle(&f->vdev, 1, EPOLLIN);
	assert_int_equal(drv_used_idx(&f->dq[1]), 1);
	drv_used_elem(&f->dq[1], 0, &id, &len);
	assert_int_equal(len, 0);
	assert_int_equal(f->ft.resets, 0);
}

/* Every command with hostile values: refused, nothing outside its resource touched. */
static void test_hostile(void **state)
{
	struct fixture *f = *state;
	struct virtio_gpu_ctrl_hdr h = { .type = 0x0999 };
	struct virtio_gpu_mem_entry e;
	uint32_t bad_ids[] = { 0, 7 };
	size_t i;

	/* Unknown command, short command, short header. */
	assert_int_equal(cmd(f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	h.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D;
	assert_int_equal(cmd(f, &h, sizeof(h)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(f, &h, 3), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

	/* create: id 0, duplicate id, bad format, zero and huge sizes, the memory cap. */
	assert_int_equal(create(f, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(create(f, 2, 999, 8, 8), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(create(f, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 8),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(create(f, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0xffffffff, 0xffffffff),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(create(f, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16384, 16384),
			 VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	/* 256 MiB in all: 16 resources of 16 MiB fit, the 17th does not. */
	for (i = 0; i < 16; i++)
		assert_int_equal(create(f, 100 + (uint32_t)i, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
					2048, 2048),
				 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(create(f, 200, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 2048, 2048),
			 VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	for (i = 0; i < 16; i++) {
		struct virtio_gpu_resource_unref u = { .hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF,
						       .resource_id = 100 + (uint32_t)i };

		assert_int_equal(cmd(f, &u, sizeof(u)), VIRTIO_GPU_RESP_OK_NODATA);
	}
	make_fb(f);
	assert_int_equal(create(f, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);

	/* attach: unknown id, twice, entries outside RAM, across slots, wrapping, too many
	 * claimed, zero length. */
	assert_int_equal(create(f, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_OK_NODATA);
	e = (struct virtio_gpu_mem_entry){ .addr = FB, .length = 256 };
	assert_int_equal(attach(f, 7, &e, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(attach(f, 1, &e, 1, 1), VIRTIO_GPU_RESP_ERR_UNSPEC);
	e.addr = FAKE_RAM;
	assert_int_equal(attach(f, 2, &e, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e.addr = FAKE_SLOT0 - 16; /* straddles the two slots: not one host range */
	assert_int_equal(attach(f, 2, &e, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e.addr = UINT64_MAX - 8;
	assert_int_equal(attach(f, 2, &e, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e = (struct virtio_gpu_mem_entry){ .addr = FB, .length = 0 };
	assert_int_equal(attach(f, 2, &e, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e.length = 256;
	assert_int_equal(attach(f, 2, &e, 1, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(attach(f, 2, &e, 1, 0xffffffff), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	e.length = 200;
	assert_int_equal(attach(f, 2, &e, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);

	/* transfer: rectangles outside, wrapping, offsets past the backing. */
	assert_int_equal(transfer(f, 1, W - 1, 0, 2, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0xffffffff, 0, 2, 1, 0),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0, 1, 1, 0xffffffff, 0),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0, 0, W, H, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0, 0, 1, 1, UINT64_MAX),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0, 0, 1, 1, W * H * 4),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 1, 0, 0, 1, 1, W * H * 4 - 4), VIRTIO_GPU_RESP_OK_NODATA);
	/* 8 x 8 resource (256 bytes), 200 bytes of backing: the last row does not fit. */
	assert_int_equal(transfer(f, 2, 0, 0, 8, 8, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(transfer(f, 2, 0, 0, 8, 2, 0), VIRTIO_GPU_RESP_OK_NODATA);

	/* scanout: other scanouts, unknown ids, rectangles outside or empty. */
	assert_int_equal(scanout(f, 1, 1, 0, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	assert_int_equal(scanout(f, 0xffffffff, 1, 0, 0, W, H),
			 VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	assert_int_equal(scanout(f, 0, 7, 0, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(scanout(f, 0, 1, 1, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(scanout(f, 0, 1, 0, 0xfffffff0, W, 0x20),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(scanout(f, 0, 1, 0, 0, 0, H), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(f->disp.resizes, 0);

	/* flush: unknown ids, outside rectangles. */
	for (i = 0; i < ARRAY_SIZE(bad_ids); i++)
		assert_int_equal(flush(f, bad_ids[i], 0, 0, 1, 1),
				 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(flush(f, 1, 0, 0, W + 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(flush(f, 1, 0xffffffff, 0xffffffff, 2, 2),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(f->disp.updates, 0);

	/* detach: unknown id, then twice; a transfer without backing is refused. */
	{
		struct virtio_gpu_resource_detach_backing d = {
			.hdr.type = VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, .resource_id = 7 };

		assert_int_equal(cmd(f, &d, sizeof(d)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
		d.resource_id = 1;
		assert_int_equal(cmd(f, &d, sizeof(d)), VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(cmd(f, &d, sizeof(d)), VIRTIO_GPU_RESP_ERR_UNSPEC);
		assert_int_equal(transfer(f, 1, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	}

	/* cursor: short, unknown, other scanout, unknown resource: ignored, no crash. */
	{
		struct virtio_gpu_update_cursor c = { .hdr.type = VIRTIO_GPU_CMD_UPDATE_CURSOR,
						      .resource_id = 99 };

		virtio_gpu_cursor_cmd(&f->vdev, &c, 4);
		virtio_gpu_cursor_cmd(&f->vdev, &c, sizeof(c));
		c.pos.scanout_id = 5;
		virtio_gpu_cursor_cmd(&f->vdev, &c, sizeof(c));
		c.hdr.type = 0x1234;
		virtio_gpu_cursor_cmd(&f->vdev, &c, sizeof(c));
	}
}

/* A reset drops every resource: the same ids can be created again. */
static void test_reset(void **state)
{
	struct fixture *f = *state;

	make_fb(f);
	assert_int_equal(scanout(f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	if (virtio_gpu_ops.stop) /* a park (a save) keeps everything */
		virtio_gpu_ops.stop(&f->vdev);
	assert_int_equal(f->disp.w, W);
	assert_int_equal(create(f, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	virtio_gpu_ops.reset(&f->vdev);
	assert_int_equal(f->disp.w, 0);
	make_fb(f);
}


/* ---- save / restore ---- */

static struct fixture *second_device(void)
{
	struct fixture *g;

	assert_int_equal(setup((void **)&g), 0);
	return g;
}

static int memfd(void)
{
	int fd = memfd_create("gpu-state", 0);

	assert_true(fd >= 0);
	return fd;
}

/* Load every section of the stream on fd into g's device; the first error or 0. */
static int load_fd(struct fixture *g, int fd, char *why, size_t cap)
{
	struct state_reader *r;
	int ret;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "gpu state");
	assert_non_null(r);
	while ((ret = state_reader_next_section(r)) > 0) {
		const void *id; /* vmstate.c's part: the device's id */
		uint32_t id_len;

		ret = state_get_bytes_ref(r, &id, &id_len) ?:
		      virtio_gpu_ops.load_section(&g->vdev, r, state_reader_type(r));
		if (!ret)
			ret = state_reader_end_section(r);
		if (ret)
			break;
	}
	snprintf(why, cap, "%s", state_reader_error(r));
	state_reader_free(r);
	return ret;
}

/* The sections a driver's screen makes come back: pixels, size, backing, no reset. */
static void test_save_load(void **state)
{
	struct fixture *f = *state, *g;
	struct virtio_gpu_update_cursor cur = {
		.hdr.type = VIRTIO_GPU_CMD_UPDATE_CURSOR, .resource_id = 2, .pos = { .x = 9, .y = 4 },
	};
	struct state_writer *w;
	char why[256];
	int fd = memfd();
	uint8_t *p;

	make_fb(f);
	assert_int_equal(create(f, 2, VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_OK_NODATA);
	virtio_gpu_cursor_cmd(&f->vdev, &cur, sizeof(cur));
	assert_int_equal(scanout(f, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(transfer(f, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(flush(f, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA);
	/* The guest's memory changes after the last transfer: the host's copy is what shows. */
	memset(gpa_ptr(&f->fm, FB), 0x11, 16);

	w = state_writer_new_fd(fd, "gpu state");
	assert_non_null(w);
	assert_int_equal(virtio_gpu_ops.save_sections(&f->vdev, w, 3, "gpu0"), 0);
	assert_int_equal(state_writer_finish(w), 0);
	state_writer_free(w);

	g = second_device();
	assert_int_equal(load_fd(g, fd, why, sizeof(why)), 0);
	assert_int_equal(g->disp.w, W);
	assert_int_equal(g->disp.h, H);
	assert_memory_equal(g->disp.px, f->disp.px, sizeof(f->disp.px));
	assert_int_equal(g->disp.px[0][1][0], 1); /* not blank, not the changed guest memory */
	/* The resources exist with their backing: the driver goes on without a reset. */
	assert_int_equal(create(g, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8, 8),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	p = gpa_ptr(&g->fm, FB);
	memset(p, 0x42, 4);
	assert_int_equal(transfer(g, 1, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(flush(g, 1, 0, 0, 1, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(g->disp.px[0][0][0], 0x42);
	/* A load replaces what was there. */
	assert_int_equal(load_fd(g, fd, why, sizeof(why)), 0);
	assert_int_equal(g->disp.px[0][0][0], f->disp.px[0][0][0]);
	teardown((void **)&g);
	close(fd);
}

/* A forged "virtio-gpu" section: one resource, a scanout and a cursor. */
struct forged {
	uint32_t events, nr;
	uint32_t id, format, w, h;
	const void *ents;
	uint32_t ents_len;
	uint32_t scanout_id;
	struct virtio_gpu_rect rect;
	uint32_t cursor_res;
	uint32_t cursor_scanout;
	bool px;                 /* a "virtio-gpu-px" section follows */
	uint32_t px_id, px_first, px_n;
	const void *z;
	uint32_t z_len;
};

static void forge(int fd, const struct forged *fg)
{
	struct state_writer *w = state_writer_new_fd(fd, "forged");
	struct virtio_gpu_cursor_pos pos = { .scanout_id = fg->cursor_scanout };
	uint32_t i;

	assert_non_null(w);
	state_writer_begin_section(w, "virtio-gpu", 3, 0);
	state_put_bytes(w, "gpu0", 4);
	state_put_u32(w, fg->events);
	state_put_u32(w, fg->nr);
	for (i = 0; i < fg->nr && i < 2; i++) {
		state_put_u32(w, fg->id);
		state_put_u32(w, fg->format);
		state_put_u32(w, fg->w);
		state_put_u32(w, fg->h);
		state_put_bytes(w, fg->ents, fg->ents_len);
	}
	state_put_u32(w, fg->scanout_id);
	state_put_bytes(w, &fg->rect, sizeof(fg->rect));
	state_put_u32(w, fg->cursor_res);
	state_put_bytes(w, &pos, sizeof(pos));
	assert_int_equal(state_writer_end_section(w), 0);
	if (fg->px) {
		state_writer_begin_section(w, "virtio-gpu-px", 3, 0);
		state_put_bytes(w, "gpu0", 4);
		state_put_u32(w, fg->px_id);
		state_put_u32(w, fg->px_first);
		state_put_u32(w, fg->px_n);
		state_put_bytes(w, fg->z, fg->z_len);
		assert_int_equal(state_writer_end_section(w), 0);
	}
	assert_int_equal(state_writer_finish(w), 0);
	state_writer_free(w);
}

/* fg as a stream into a fresh device: the load's result, its reason checked to be one line. */
static int load_forged(const struct forged *fg, const char *expect)
{
	struct fixture *g = second_device();
	char why[256];
	int fd = memfd(), ret;

	forge(fd, fg);
	ret = load_fd(g, fd, why, sizeof(why));
	if (ret) {
		assert_null(strchr(why, '\n'));
		if (!strstr(why, expect))
			fail_msg("'%s' does not say '%s'", why, expect);
	}
	teardown((void **)&g);
	close(fd);
	return ret;
}

/* Every count, size, rectangle and guest range of a snapshot is checked like a command's. */
static void test_load_hostile(void **state)
{
	uint8_t ent[12], big[13 * 12], rows[W * 4 * 2], z[256];
	uLongf zlen = sizeof(z);
	struct forged ok = {
		.nr = 1, .id = 1, .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, .w = W, .h = H,
		.ents = ent, .ents_len = sizeof(ent), .scanout_id = 1, .rect = { 0, 0, W, H },
		.px = true, .px_id = 1, .px_first = 0, .px_n = 2,
	}, fg;

	(void)state;
	put_le(ent, FB, 8);
	put_le(ent + 8, W * H * 4, 4);
	memset(rows, 0x5a, sizeof(rows));
	assert_int_equal(compress(z, &zlen, rows, sizeof(rows)), Z_OK);
	ok.z = z;
	ok.z_len = (uint32_t)zlen;
	assert_int_equal(load_forged(&ok, ""), 0);

#define REFUSED(field_changes, expect)                                                     \
	do {                                                                               \
		fg = ok;                                                                   \
		field_changes;                                                             \
		assert_int_equal(load_forged(&fg, expect), -EINVAL);                       \
	} while (0)
	REFUSED(fg.events = 2, "events");
	REFUSED(fg.nr = 1025, "1025 resources");
	REFUSED(fg.nr = 2, "creation of resource 1"); /* the same id twice */
	REFUSED(fg.id = 0, "creation");
	REFUSED(fg.w = 0, "creation");
	REFUSED(fg.w = 16385, "creation");
	REFUSED((fg.w = 16384, fg.h = 16384), "creation"); /* 1 GiB: over the memory cap */
	REFUSED(fg.format = 99, "creation");
	REFUSED(fg.ents_len = 11, "backing of 11 bytes");
	REFUSED((fg.ents = big, fg.ents_len = sizeof(big), memset(big, 0, sizeof(big))), "backing");
	REFUSED(put_le(ent, 1ull << 40, 8), "backing"); /* outside guest RAM */
	put_le(ent, FB, 8);
	REFUSED(put_le(ent + 8, 0, 4), "backing");
	put_le(ent + 8, W * H * 4, 4);
	REFUSED(fg.scanout_id = 5, "scanout of resource 5");
	REFUSED(fg.rect.width = W + 1, "scanout");
	REFUSED((fg.rect.x = 0xffffffffu, fg.rect.width = 2), "scanout");
	REFUSED(fg.cursor_res = 9, "cursor resource 9");
	REFUSED(fg.cursor_scanout = 1, "cursor");
	REFUSED(fg.px_id = 2, "pixels of no resource 2");
	REFUSED(fg.px_first = H - 1, "rows 31+2");
	REFUSED((fg.px_first = 0xffffffffu, fg.px_n = 2), "rows");
	REFUSED(fg.px_n = 0, "rows 0+0");
	REFUSED(fg.px_n = 1, "bad pixels"); /* inflates to more than one row */
	REFUSED(fg.px_n = 3, "bad pixels"); /* to less than three */
	REFUSED(fg.z_len = 5, "bad pixels");
	REFUSED((rows[0] = 0, fg.z = rows, fg.z_len = 64), "bad pixels");
#undef REFUSED
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_display_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_draw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test(test_load_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
