// SPDX-License-Identifier: MIT
/*
 * virtio-gpu, 2D only (virtio 1.x section 5.7): a control queue and a cursor queue,
 * one scanout shown on a display backend (gpu.h).
 *
 * The driver creates resources (host-side images, 4 bytes per pixel), attaches
 * guest pages to them as backing, copies rectangles of the backing into a resource
 * (TRANSFER_TO_HOST_2D), shows a resource on the scanout (SET_SCANOUT) and tells us
 * what changed (RESOURCE_FLUSH), which is what the backend gets.
 *
 * Trust: every command is hostile (gpu_cmd() is fuzzed: fuzz_virtio_gpu.c).
 *  1. A request is copied out of the chain into gpu->req (at most GPU_MAX_REQ
 *     bytes) before it is read; a short request is ERR_INVALID_PARAMETER.
 *  2. Rectangles are checked in 64 bits against their resource; sizes are
 *     overflow-checked (width * height * 4); all resources together stay under
 *     GPU_MEM_CAP bytes and GPU_MAX_RESOURCES resources.
 *  3. A backing is a list of guest ranges (at most GPU_MAX_ENTRIES), each wholly
 *     inside guest RAM when attached, kept as guest addresses and translated
 *     again through guest_mem_ptr() at every transfer: nothing reads outside guest
 *     RAM, and nothing keeps a host pointer into it.
 *  4. Only the I/O thread touches the device state; the backend gets copies.
 *  5. Snapshots and migrations carry the resources (id, format, size, host pixels,
 *     backing as guest addresses), the scanout and the cursor in sections of the
 *     device's own (gpu_save_sections(), written while the I/O thread is parked,
 *     before the device's "virtio.2" section). A load is as hostile as a command:
 *     it runs on a stopped device only and rebuilds everything through the live
 *     commands' own code (create, attach: each range re-checked against this
 *     guest's RAM; set-scanout), and pixels inflate to exactly the rows claimed.
 *     A park for a save keeps the resources; only the driver's reset drops them.
 *
 * EDID (VIRTIO_GPU_F_EDID): offered when the preferred mode fits one (edid.h); the
 * block is built once at creation, so GET_EDID answers the same bytes every time and
 * nothing of it travels in snapshots.
 *
 * Not carried yet: multiple scanouts, 3D.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_gpu.h>
#include <linux/virtio_ids.h>
#include <zlib.h>

#include "edid.h"
#include "gpu.h"
#include "internal.h"
#include "log.h"
#include "state/state.h"
#include "util.h"
#include "virtio-pci.h"
#include "virtio.h"

#define GPU_QUEUE_SIZE	  256
#define GPU_Q_CTRL	  0
#define GPU_Q_CURSOR	  1
#define GPU_MAX_RESOURCES 1024
#define GPU_MAX_ENTRIES	  16384 /* backing ranges of one resource (a 64 MiB image in pages) */
#define GPU_MEM_CAP	  (256ull << 20) /* host bytes of all resources */
#define GPU_MAX_DIM	  16384 /* width and height of a resource */
#define GPU_MAX_REQ                                                                  \
	(sizeof(struct virtio_gpu_resource_attach_backing) +                         \
	 GPU_MAX_ENTRIES * sizeof(struct virtio_gpu_mem_entry))

struct gpu_entry {
	uint64_t gpa;   /* guest address of the range */
	uint64_t start; /* its offset in the backing */
	uint32_t len;
};

struct gpu_resource {
	uint32_t id;
	uint32_t width, height;
	uint32_t format;            /* VIRTIO_GPU_FORMAT_*, as created */
	enum gpu_pixel_order order;
	uint8_t *data;              /* width * height * 4 bytes, owned */
	struct gpu_entry *entries;  /* the backing, owned; NULL when none */
	uint32_t nr_entries;
	uint64_t backing_len;       /* sum of the entries' lengths */
};

struct gpu {
	const struct gpu_display_ops *display;
	void *display_opaque;          /* owned (display->destroy) */
	bool display_spawned;
	uint32_t pref_width, pref_height; /* offered in GET_DISPLAY_INFO */
	bool has_edid;                 /* VIRTIO_GPU_F_EDID offered: edid is valid */
	uint8_t edid[EDID_BLOCK];
	struct gpu_resource *res[GPU_MAX_RESOURCES]; /* owned; NULL slots free */
	uint64_t mem_used;             /* bytes of all res[]->data */
	struct gpu_resource *scanout;  /* shown resource or NULL */
	struct virtio_gpu_rect scanout_rect; /* the part of it shown */
	struct virtio_gpu_cursor_pos cursor; /* last position the driver gave */
	uint32_t cursor_res;           /* cursor image resource, 0: none */
	uint32_t events_read;          /* config: VIRTIO_GPU_EVENT_DISPLAY (atomic) */
	uint8_t *req;                  /* GPU_MAX_REQ bytes: the request being read */
	struct virtq_elem elem;
};

static struct gpu_resource *res_find(struct gpu *g, uint32_t id)
{
	size_t i;

	for (i = 0; id && i < GPU_MAX_RESOURCES; i++)
		if (g->res[i] && g->res[i]->id == id)
			return g->res[i];
	return NULL;
}

static void res_free(struct gpu *g, size_t i)
{
	struct gpu_resource *r = g->res[i];

	if (g->scanout == r) {
		g->scanout = NULL;
		g->display->resize(g->display_opaque, 0, 0);
	}
	if (g->cursor_res == r->id)
		g->cursor_res = 0;
	g->mem_used -= (uint64_t)r->width * r->height * 4;
	free(r->entries);
	free(r->data);
	free(r);
	g->res[i] = NULL;
}

static void res_free_all(struct gpu *g)
{
	size_t i;

	for (i = 0; i < GPU_MAX_RESOURCES; i++)
		if (g->res[i])
			res_free(g, i);
}

/* Whether rect lies inside a w x h image (64-bit sums: no wrap). */
static bool rect_inside(const struct virtio_gpu_rect *r, uint32_t w, uint32_t h)
{
	return (uint64_t)r->x + r->width <= w && (uint64_t)r->y + r->height <= h;
}

static bool pixel_order(uint32_t format, enum gpu_pixel_order *o)
{
	switch (format) {
	case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
	case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
		*o = GPU_PIX_BGRX;
		return true;
	case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
	case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
		*o = GPU_PIX_XRGB;
		return true;
	case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
	case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
		*o = GPU_PIX_RGBX;
		return true;
	case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
	case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
		*o = GPU_PIX_XBGR;
		return true;
	}
	return false;
}

static uint32_t cmd_create_2d(struct gpu *g, const struct virtio_gpu_resource_create_2d *c)
{
	struct gpu_resource *r;
	enum gpu_pixel_order order;
	uint64_t bytes;
	size_t i;

	if (!c->resource_id || res_find(g, c->resource_id))
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!pixel_order(c->format, &order) || !c->width || !c->height ||
	    c->width > GPU_MAX_DIM || c->height > GPU_MAX_DIM)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	bytes = (uint64_t)c->width * c->height * 4; /* < 2^30: dimensions capped */
	if (bytes > GPU_MEM_CAP - g->mem_used)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	for (i = 0; i < GPU_MAX_RESOURCES && g->res[i]; i++)
		;
	if (i == GPU_MAX_RESOURCES)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	r = calloc(1, sizeof(*r));
	if (!r)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	r->data = calloc(1, bytes);
	if (!r->data) {
		free(r);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	r->id = c->resource_id;
	r->width = c->width;
	r->height = c->height;
	r->format = c->format;
	r->order = order;
	g->res[i] = r;
	g->mem_used += bytes;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_unref(struct gpu *g, uint32_t id)
{
	size_t i;

	for (i = 0; id && i < GPU_MAX_RESOURCES; i++)
		if (g->res[i] && g->res[i]->id == id) {
			res_free(g, i);
			return VIRTIO_GPU_RESP_OK_NODATA;
		}
	return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
}

/* Show rect of the scanout's resource (in its coordinates) on the display. */
static void show(struct gpu *g, const struct virtio_gpu_rect *rect)
{
	const struct gpu_resource *r = g->scanout;
	const struct virtio_gpu_rect *s = &g->scanout_rect;
	uint64_t x0, y0, x1, y1;

	if (!r)
		return;
	/* Intersect with the shown part; both are inside the resource. */
	x0 = MAX(rect->x, s->x);
	y0 = MAX(rect->y, s->y);
	x1 = MIN((uint64_t)rect->x + rect->width, (uint64_t)s->x + s->width);
	y1 = MIN((uint64_t)rect->y + rect->height, (uint64_t)s->y + s->height);
	if (x0 >= x1 || y0 >= y1)
		return;
	g->display->update(g->display_opaque, r->data + (y0 * r->width + x0) * 4, r->width * 4,
			   r->order, (uint32_t)(x0 - s->x), (uint32_t)(y0 - s->y),
			   (uint32_t)(x1 - x0), (uint32_t)(y1 - y0));
}

static uint32_t cmd_set_scanout(struct gpu *g, const struct virtio_gpu_set_scanout *c)
{
	struct gpu_resource *r;

	if (c->scanout_id != 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	if (!c->resource_id) {
		if (g->scanout)
			g->display->resize(g->display_opaque, 0, 0);
		g->scanout = NULL;
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	r = res_find(g, c->resource_id);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!c->r.width || !c->r.height || !rect_inside(&c->r, r->width, r->height))
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	g->scanout = r;
	g->scanout_rect = c->r;
	g->display->resize(g->display_opaque, c->r.width, c->r.height);
	show(g, &c->r);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_flush(struct gpu *g, const struct virtio_gpu_resource_flush *c)
{
	struct gpu_resource *r = res_find(g, c->resource_id);

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!rect_inside(&c->r, r->width, r->height))
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	if (g->scanout == r)
		show(g, &c->r);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* Copy len bytes at off of r's backing into dst. false if a range left guest RAM. */
static bool backing_read(struct gpu *g, const struct gpu_resource *r, uint64_t off,
			 uint8_t *dst, uint64_t len, const struct guest_mem *mem)
{
	uint32_t lo = 0, hi = r->nr_entries;

	/* The entry holding off: the last one whose start is <= off. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->entries[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	for (; len && lo < r->nr_entries; lo++) {
		const struct gpu_entry *e = &r->entries[lo];
		uint64_t in = off - e->start, n = MIN(len, e->len - in);
		const uint8_t *src = guest_mem_ptr(mem, e->gpa + in, n);

		if (!src)
			return false;
		memcpy(dst, src, n);
		dst += n;
		off += n;
		len -= n;
	}
	(void)g;
	return len == 0;
}

static uint32_t cmd_transfer(struct gpu *g, const struct virtio_gpu_transfer_to_host_2d *c,
			     const struct guest_mem *mem)
{
	struct gpu_resource *r = res_find(g, c->resource_id);
	uint64_t stride, row, last;
	uint32_t h;

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!r->entries)
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	if (!rect_inside(&c->r, r->width, r->height))
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	if (!c->r.width || !c->r.height)
		return VIRTIO_GPU_RESP_OK_NODATA;
	/* Row h of the rectangle is at offset + h * stride of the backing. */
	stride = (uint64_t)r->width * 4;
	row = (uint64_t)c->r.width * 4;
	last = stride * (c->r.height - 1); /* < 2^30 */
	if (c->offset > r->backing_len || last + row > r->backing_len - c->offset)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	for (h = 0; h < c->r.height; h++) {
		uint8_t *dst = r->data + ((uint64_t)(c->r.y + h) * r->width + c->r.x) * 4;

		if (!backing_read(g, r, c->offset + stride * h, dst, row, mem))
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_attach(struct gpu *g, const struct virtio_gpu_resource_attach_backing *c,
			   const uint8_t *tail, size_t tail_len, const struct guest_mem *mem)
{
	struct gpu_resource *r = res_find(g, c->resource_id);
	struct gpu_entry *e;
	uint64_t total = 0;
	uint32_t i;

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (r->entries)
		return VIRTIO_GPU_RESP_ERR_UNSPEC; /* detach first */
	if (!c->nr_entries || c->nr_entries > GPU_MAX_ENTRIES ||
	    tail_len / sizeof(struct virtio_gpu_mem_entry) < c->nr_entries)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	e = calloc(c->nr_entries, sizeof(*e));
	if (!e)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	for (i = 0; i < c->nr_entries; i++) {
		struct virtio_gpu_mem_entry m;

		memcpy(&m, tail + i * sizeof(m), sizeof(m));
		/* Inside one slot of guest RAM; total < 2^32 * GPU_MAX_ENTRIES: no wrap. */
		if (!m.length || !guest_mem_ptr(mem, m.addr, m.length)) {
			free(e);
			return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		}
		e[i] = (struct gpu_entry){ .gpa = m.addr, .start = total, .len = m.length };
		total += m.length;
	}
	r->entries = e;
	r->nr_entries = c->nr_entries;
	r->backing_len = total;
	(void)g;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_detach(struct gpu *g, uint32_t id)
{
	struct gpu_resource *r = res_find(g, id);

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!r->entries)
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	free(r->entries);
	r->entries = NULL;
	r->nr_entries = 0;
	r->backing_len = 0;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static size_t display_info(struct gpu *g, struct virtio_gpu_resp_display_info *d)
{
	memset(d, 0, sizeof(*d));
	d->pmodes[0].r.width = g->pref_width;
	d->pmodes[0].r.height = g->pref_height;
	d->pmodes[0].enabled = 1;
	return sizeof(*d);
}

static size_t get_edid(struct gpu *g, const struct virtio_gpu_cmd_get_edid *c,
		       struct virtio_gpu_resp_edid *e, uint32_t *type)
{
	if (!g->has_edid) {
		*type = VIRTIO_GPU_RESP_ERR_UNSPEC; /* not offered: the driver must not ask */
		return sizeof(e->hdr);
	}
	if (c->scanout != 0) {
		*type = VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
		return sizeof(e->hdr);
	}
	e->size = EDID_BLOCK;
	memcpy(e->edid, g->edid, EDID_BLOCK);
	*type = VIRTIO_GPU_RESP_OK_EDID;
	return sizeof(*e);
}

/* The fixed part of each control command, or 0 for an unknown type. */
static size_t cmd_size(uint32_t type)
{
	switch (type) {
	case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
		return sizeof(struct virtio_gpu_ctrl_hdr);
	case VIRTIO_GPU_CMD_GET_EDID:
		return sizeof(struct virtio_gpu_cmd_get_edid);
	case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
		return sizeof(struct virtio_gpu_resource_create_2d);
	case VIRTIO_GPU_CMD_RESOURCE_UNREF:
		return sizeof(struct virtio_gpu_resource_unref);
	case VIRTIO_GPU_CMD_SET_SCANOUT:
		return sizeof(struct virtio_gpu_set_scanout);
	case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
		return sizeof(struct virtio_gpu_resource_flush);
	case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
		return sizeof(struct virtio_gpu_transfer_to_host_2d);
	case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
		return sizeof(struct virtio_gpu_resource_attach_backing);
	case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
		return sizeof(struct virtio_gpu_resource_detach_backing);
	}
	return 0;
}

size_t virtio_gpu_cmd(struct virtio_dev *vdev, const void *req, size_t len, void *resp,
		      size_t cap)
{
	struct gpu *g = vdev->priv;
	union {
		struct virtio_gpu_ctrl_hdr hdr;
		struct virtio_gpu_resp_display_info info;
		struct virtio_gpu_resp_edid edid;
	} out;
	struct virtio_gpu_ctrl_hdr h;
	size_t need, out_len = sizeof(h);
	uint32_t type;
	union {
		struct virtio_gpu_resource_create_2d create;
		struct virtio_gpu_resource_unref unref;
		struct virtio_gpu_set_scanout scanout;
		struct virtio_gpu_resource_flush flush;
		struct virtio_gpu_transfer_to_host_2d xfer;
		struct virtio_gpu_resource_attach_backing attach;
		struct virtio_gpu_resource_detach_backing detach;
		struct virtio_gpu_cmd_get_edid edid;
	} c;

	memset(&out, 0, sizeof(out));
	if (len < sizeof(h)) {
		out.hdr.type = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
		goto answer;
	}
	memcpy(&h, req, sizeof(h));
	need = cmd_size(h.type);
	if (!need) {
		type = VIRTIO_GPU_RESP_ERR_UNSPEC;
	} else if (len < need) {
		type = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	} else {
		memcpy(&c, req, need);
		switch (h.type) {
		case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
			out_len = display_info(g, &out.info);
			type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
			break;
		case VIRTIO_GPU_CMD_GET_EDID:
			out_len = get_edid(g, &c.edid, &out.edid, &type);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
			type = cmd_create_2d(g, &c.create);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_UNREF:
			type = cmd_unref(g, c.unref.resource_id);
			break;
		case VIRTIO_GPU_CMD_SET_SCANOUT:
			type = cmd_set_scanout(g, &c.scanout);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
			type = cmd_flush(g, &c.flush);
			break;
		case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
			type = cmd_transfer(g, &c.xfer, vdev->mem);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
			type = cmd_attach(g, &c.attach, (const uint8_t *)req + need, len - need,
					  vdev->mem);
			break;
		default: /* VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING */
			type = cmd_detach(g, c.detach.resource_id);
			break;
		}
	}
	if (type >= VIRTIO_GPU_RESP_ERR_UNSPEC)
		log_limited(&vdev->log_rl, LOG_WARN, "virtio-gpu: command 0x%x refused (0x%x)",
			    h.type, type);
	out.hdr.type = type;
	if (h.flags & VIRTIO_GPU_FLAG_FENCE) {
		/* Every command is done when answered: the fence is signalled with it. */
		out.hdr.flags = VIRTIO_GPU_FLAG_FENCE;
		out.hdr.fence_id = h.fence_id;
		out.hdr.ctx_id = h.ctx_id;
	}
answer:
	out_len = MIN(out_len, cap);
	memcpy(resp, &out, out_len);
	return out_len;
}

/* Copy a chain's readable part into g->req (invariant 1). Bytes copied. */
static size_t read_request(struct gpu *g, const struct virtq_elem *e)
{
	return iov_to_buf(e->iov, e->out_num, 0, g->req, MIN(e->out_len, GPU_MAX_REQ));
}

static int ctrl_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct gpu *g = vdev->priv;
	uint8_t resp[MAX(sizeof(struct virtio_gpu_resp_display_info),
			 sizeof(struct virtio_gpu_resp_edid))];
	size_t len = read_request(g, e), n;

	n = virtio_gpu_cmd(vdev, g->req, len, resp, MIN(sizeof(resp), e->in_len));
	*written = (uint32_t)buf_to_iov(e->iov + e->out_num, e->in_num, 0, resp, n);
	return 0;
}

void virtio_gpu_cursor_cmd(struct virtio_dev *vdev, const void *req, size_t len)
{
	struct gpu *g = vdev->priv;
	struct virtio_gpu_update_cursor c;

	if (len < sizeof(c))
		return;
	memcpy(&c, req, sizeof(c));
	if (c.hdr.type != VIRTIO_GPU_CMD_UPDATE_CURSOR && c.hdr.type != VIRTIO_GPU_CMD_MOVE_CURSOR)
		return;
	if (c.pos.scanout_id != 0)
		return;
	g->cursor = c.pos;
	if (c.hdr.type == VIRTIO_GPU_CMD_UPDATE_CURSOR)
		g->cursor_res = res_find(g, c.resource_id) ? c.resource_id : 0;
}

/* The cursor queue has no answers (the driver gives no writable buffers). */
static int cursor_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct gpu *g = vdev->priv;

	virtio_gpu_cursor_cmd(vdev, g->req, read_request(g, e));
	*written = 0;
	return 0;
}

static void gpu_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct gpu *g = vdev->priv;

	(void)events;
	if (tag == GPU_Q_CTRL)
		virtio_dev_drain(vdev, GPU_Q_CTRL, &g->elem, ctrl_chain);
	else if (tag == GPU_Q_CURSOR)
		virtio_dev_drain(vdev, GPU_Q_CURSOR, &g->elem, cursor_chain);
}

/* Reset: the driver starts again from no resources (a park for a save keeps them). */
static void gpu_reset(struct virtio_dev *vdev)
{
	struct gpu *g = vdev->priv;

	res_free_all(g);
	g->cursor_res = 0;
}

/* ---- save / restore (invariant 5) ---- */

/* A resource's rows per "virtio-gpu-px" section: at most GPU_PX_CHUNK bytes of them. */
#define GPU_PX_CHUNK (16u << 20)

static uint32_t px_rows(const struct gpu_resource *r)
{
	return MAX(1u, GPU_PX_CHUNK / (r->width * 4)); /* width * 4 <= 64 KiB */
}

static void begin_section(struct state_writer *w, const char *type, uint32_t slot,
			  const char *id)
{
	state_writer_begin_section(w, type, slot, 0);
	state_put_bytes(w, id, (uint32_t)strlen(id));
}

/* One resource's pixels, rows first..first+n, zlib-compressed. */
static int save_px(struct state_writer *w, uint32_t slot, const char *id,
		   const struct gpu_resource *r, uint32_t first, uint32_t n, uint8_t *buf,
		   uLongf cap)
{
	uLongf len = cap;

	if (compress2(buf, &len, r->data + (size_t)first * r->width * 4,
		      (uLong)n * r->width * 4, 1) != Z_OK)
		return -ENOMEM;
	begin_section(w, "virtio-gpu-px", slot, id);
	state_put_u32(w, r->id);
	state_put_u32(w, first);
	state_put_u32(w, n);
	state_put_bytes(w, buf, (uint32_t)len);
	return state_writer_end_section(w);
}

/* A backing range in a saved resource: u64 guest address, u32 length (little-endian). */
#define GPU_SAVED_ENTRY 12u
_Static_assert((uint64_t)GPU_MAX_RESOURCES * (GPU_MAX_ENTRIES * GPU_SAVED_ENTRY + 64) <
		       STATE_SECTION_MAX,
	       "the largest \"virtio-gpu\" section fits in one section");

/*
 * "virtio-gpu": the resources (id, format, size, backing), the scanout and the cursor;
 * then one "virtio-gpu-px" per GPU_PX_CHUNK of each resource's pixels (zlib). Nothing
 * the guest does can make a section larger than STATE_SECTION_MAX.
 */
static int gpu_save_sections(struct virtio_dev *vdev, struct state_writer *w, uint32_t slot,
			     const char *id)
{
	struct gpu *g = vdev->priv;
	uint8_t *m, *buf;
	uLongf cap = compressBound(GPU_PX_CHUNK);
	uint32_t n = 0, k, y;
	size_t i;
	int ret = 0;

	for (i = 0; i < GPU_MAX_RESOURCES; i++)
		n += g->res[i] != NULL;
	begin_section(w, "virtio-gpu", slot, id);
	state_put_u32(w, __atomic_load_n(&g->events_read, __ATOMIC_RELAXED));
	state_put_u32(w, n);
	for (i = 0; i < GPU_MAX_RESOURCES; i++) {
		const struct gpu_resource *r = g->res[i];

		if (!r)
			continue;
		state_put_u32(w, r->id);
		state_put_u32(w, r->format);
		state_put_u32(w, r->width);
		state_put_u32(w, r->height);
		m = calloc(MAX(r->nr_entries, 1u), GPU_SAVED_ENTRY);
		if (!m)
			return -ENOMEM;
		for (k = 0; k < r->nr_entries; k++) {
			put_le(m + k * GPU_SAVED_ENTRY, r->entries[k].gpa, 8);
			put_le(m + k * GPU_SAVED_ENTRY + 8, r->entries[k].len, 4);
		}
		state_put_bytes(w, m, r->nr_entries * GPU_SAVED_ENTRY);
		free(m);
	}
	state_put_u32(w, g->scanout ? g->scanout->id : 0);
	state_put_bytes(w, &g->scanout_rect, sizeof(g->scanout_rect));
	state_put_u32(w, g->cursor_res);
	state_put_bytes(w, &g->cursor, sizeof(g->cursor));
	ret = state_writer_end_section(w);
	buf = ret ? NULL : malloc(cap);
	if (!ret && !buf)
		ret = -ENOMEM;
	for (i = 0; i < GPU_MAX_RESOURCES && !ret; i++) {
		const struct gpu_resource *r = g->res[i];

		for (y = 0; r && y < r->height && !ret; y += px_rows(r))
			ret = save_px(w, slot, id, r, y, MIN(px_rows(r), r->height - y), buf, cap);
	}
	free(buf);
	return ret;
}

/* A command's answer on a load: OK, or the section is refused with why. */
static int load_check(struct state_reader *r, uint32_t resp, const char *what, uint32_t id)
{
	if (resp == VIRTIO_GPU_RESP_OK_NODATA)
		return 0;
	return state_reader_fail(r, -EINVAL, "virtio-gpu: %s of resource %u refused (0x%x)",
				 what, id, resp);
}

/* One resource of a "virtio-gpu" section, through the live commands' checks. */
static int load_resource(struct gpu *g, struct state_reader *r, const struct guest_mem *mem)
{
	struct virtio_gpu_resource_create_2d c = { 0 };
	struct virtio_gpu_resource_attach_backing a = { 0 };
	struct virtio_gpu_mem_entry *m;
	const void *ents;
	uint32_t len, i;
	int ret;

	if ((ret = state_get_u32(r, &c.resource_id)) || (ret = state_get_u32(r, &c.format)) ||
	    (ret = state_get_u32(r, &c.width)) || (ret = state_get_u32(r, &c.height)) ||
	    (ret = state_get_bytes_ref(r, &ents, &len)))
		return ret;
	ret = load_check(r, cmd_create_2d(g, &c), "creation", c.resource_id);
	if (ret || !len)
		return ret;
	if (len % GPU_SAVED_ENTRY || len / GPU_SAVED_ENTRY > GPU_MAX_ENTRIES)
		return state_reader_fail(r, -EINVAL, "virtio-gpu: backing of %u bytes", len);
	/* As the driver would have sent it: the attach command's checks decide. */
	a.resource_id = c.resource_id;
	a.nr_entries = len / GPU_SAVED_ENTRY;
	m = calloc(a.nr_entries, sizeof(*m));
	if (!m)
		return state_reader_fail(r, -ENOMEM, "out of memory");
	for (i = 0; i < a.nr_entries; i++) {
		m[i].addr = get_le((const uint8_t *)ents + i * GPU_SAVED_ENTRY, 8);
		m[i].length = (uint32_t)get_le((const uint8_t *)ents + i * GPU_SAVED_ENTRY + 8, 4);
	}
	ret = load_check(r, cmd_attach(g, &a, (const uint8_t *)m, a.nr_entries * sizeof(*m), mem),
			 "backing", c.resource_id);
	free(m);
	return ret;
}

static int load_gpu(struct gpu *g, struct state_reader *r, const struct guest_mem *mem)
{
	struct virtio_gpu_set_scanout so = { 0 };
	struct virtio_gpu_cursor_pos cursor;
	uint32_t events, n, i, cursor_res;
	int ret;

	res_free_all(g); /* a second section replaces the first */
	g->cursor_res = 0;
	if ((ret = state_get_u32(r, &events)) || (ret = state_get_u32(r, &n)))
		return ret;
	if (events & ~VIRTIO_GPU_EVENT_DISPLAY)
		return state_reader_fail(r, -EINVAL, "virtio-gpu: events 0x%x", events);
	if (n > GPU_MAX_RESOURCES)
		return state_reader_fail(r, -EINVAL, "virtio-gpu: %u resources", n);
	for (i = 0; i < n; i++)
		if ((ret = load_resource(g, r, mem)))
			return ret;
	if ((ret = state_get_u32(r, &so.resource_id)) ||
	    (ret = state_get_bytes(r, &so.r, sizeof(so.r))) ||
	    (ret = state_get_u32(r, &cursor_res)) ||
	    (ret = state_get_bytes(r, &cursor, sizeof(cursor))))
		return ret;
	/* Shows the (still black) resource; each "virtio-gpu-px" section then draws. */
	ret = load_check(r, cmd_set_scanout(g, &so), "scanout", so.resource_id);
	if (ret)
		return ret;
	if (cursor.scanout_id || (cursor_res && !res_find(g, cursor_res)))
		return state_reader_fail(r, -EINVAL, "virtio-gpu: cursor resource %u", cursor_res);
	g->cursor = cursor;
	g->cursor_res = cursor_res;
	__atomic_store_n(&g->events_read, events, __ATOMIC_RELAXED);
	return 0;
}

/* Rows first..first+n of a resource, inflated to exactly their size in place. */
static int load_px(struct gpu *g, struct state_reader *r)
{
	struct gpu_resource *res;
	struct virtio_gpu_rect rect;
	uint32_t id, first, n, len;
	const void *z;
	uLongf out;
	int ret;

	if ((ret = state_get_u32(r, &id)) || (ret = state_get_u32(r, &first)) ||
	    (ret = state_get_u32(r, &n)) || (ret = state_get_bytes_ref(r, &z, &len)))
		return ret;
	res = res_find(g, id);
	if (!res)
		return state_reader_fail(r, -EINVAL, "virtio-gpu: pixels of no resource %u", id);
	rect = (struct virtio_gpu_rect){ .x = 0, .y = first, .width = res->width, .height = n };
	if (!n || n > px_rows(res) || !rect_inside(&rect, res->width, res->height))
		return state_reader_fail(r, -EINVAL, "virtio-gpu: rows %u+%u of resource %u",
					 first, n, id);
	out = (uLongf)n * res->width * 4; /* <= GPU_PX_CHUNK or one row */
	if (uncompress(res->data + (size_t)first * res->width * 4, &out, z, len) != Z_OK ||
	    out != (uLongf)n * res->width * 4)
		return state_reader_fail(r, -EINVAL, "virtio-gpu: bad pixels of resource %u", id);
	if (g->scanout == res)
		show(g, &rect);
	return 0;
}

/* Invariant 5: only on a stopped device, every value through the live commands' checks. */
static int gpu_load_section(struct virtio_dev *vdev, struct state_reader *r, const char *type)
{
	struct gpu *g = vdev->priv;

	if (virtio_dev_running(vdev))
		return state_reader_fail(r, -EINVAL, "virtio-gpu: %s after the device's own", type);
	if (!strcmp(type, "virtio-gpu"))
		return load_gpu(g, r, vdev->mem);
	if (!strcmp(type, "virtio-gpu-px"))
		return load_px(g, r);
	return state_reader_fail(r, -EINVAL, "virtio-gpu: section %s", type);
}

static void gpu_destroy(struct virtio_dev *vdev)
{
	struct gpu *g = vdev->priv;

	res_free_all(g);
	g->display->destroy(g->display_opaque);
	free(g->req);
	free(g);
	vdev->priv = NULL;
}

static int gpu_spawn(struct virtio_dev *vdev)
{
	struct gpu *g = vdev->priv;
	int r;

	if (g->display_spawned)
		return 0;
	r = g->display->spawn(g->display_opaque, vdev->aux_hook, vdev->aux_hook_opaque);
	if (!r)
		g->display_spawned = true;
	return r;
}

static void gpu_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct gpu *g = vdev->priv;
	struct virtio_gpu_config c = {
		.events_read = __atomic_load_n(&g->events_read, __ATOMIC_RELAXED),
		.num_scanouts = 1,
	};

	memcpy(data, (uint8_t *)&c + off, len);
}

static void gpu_cfg_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			  unsigned int len)
{
	struct gpu *g = vdev->priv;
	uint32_t clear = 0;

	/* Only events_clear is writable: its bits clear events_read. */
	if (off != offsetof(struct virtio_gpu_config, events_clear) || len != sizeof(clear))
		return;
	memcpy(&clear, data, sizeof(clear));
	__atomic_and_fetch(&g->events_read, ~clear, __ATOMIC_RELAXED);
}

void *virtio_gpu_display(struct virtio_dev *vdev)
{
	return ((struct gpu *)vdev->priv)->display_opaque;
}

const struct virtio_dev_ops virtio_gpu_ops = {
	.name = "virtio-gpu",
	.device_id = VIRTIO_ID_GPU,
	.pci_class = 0x0380, /* display controller, other */
	.cfg_size = sizeof(struct virtio_gpu_config),
	.cfg_read = gpu_cfg_read,
	.cfg_write = gpu_cfg_write,
	.handle = gpu_handle,
	.reset = gpu_reset,
	.destroy = gpu_destroy,
	.spawn = gpu_spawn,
	.save_sections = gpu_save_sections,
	.load_section = gpu_load_section,
};

int virtio_gpu_init(struct virtio_dev *vdev, const struct guest_mem *mem, uint32_t width,
		    uint32_t height, const struct gpu_display_ops *display, void *opaque)
{
	struct gpu *g = calloc(1, sizeof(*g));
	int err;

	if (g)
		g->req = malloc(GPU_MAX_REQ);
	if (!g || !g->req) {
		if (g)
			free(g);
		display->destroy(opaque);
		log_error("--display: out of memory");
		return -ENOMEM;
	}
	g->display = display;
	g->display_opaque = opaque;
	g->pref_width = width;
	g->pref_height = height;
	g->has_edid = edid_build(width, height, g->edid);
	err = virtio_dev_init(vdev, &virtio_gpu_ops, g, mem, 2, GPU_QUEUE_SIZE,
			      g->has_edid ? 1ULL << VIRTIO_GPU_F_EDID : 0);
	if (err) {
		display->destroy(opaque);
		free(g->req);
		free(g);
	}
	return err;
}

int virtio_gpu_create_on(struct pci_bus *bus, const struct guest_mem *mem, uint32_t width,
			 uint32_t height, const struct gpu_display_ops *display, void *opaque,
			 struct virtio_pci **out)
{
	struct virtio_dev *vdev = calloc(1, sizeof(*vdev));
	int r;

	if (!vdev) {
		display->destroy(opaque);
		log_error("--display: out of memory");
		return -ENOMEM;
	}
	r = virtio_gpu_init(vdev, mem, width, height, display, opaque);
	if (r) {
		free(vdev);
		return r;
	}
	return virtio_pci_create_on(bus, vdev, out);
}
