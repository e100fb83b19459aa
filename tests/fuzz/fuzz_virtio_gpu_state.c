// SPDX-License-Identifier: MIT
/*
 * virtio-gpu's snapshot/migration load (ops->load_section): hostile "virtio-gpu" and
 * "virtio-gpu-px" sections against one device whose guest RAM is the input
 * (virtio_harness.h), so backing ranges may lie inside, straddle or leave it.
 *
 * The container is well-formed (fuzz_state fuzzes that): the input past 0x2000 is a
 * program writing typed fields with a state writer, then the sections are loaded as a
 * restore would. Program bytes: 0 or 1 opens a "virtio-gpu" or "virtio-gpu-px" section
 * (its device id field is added), 2 a u32 (4 bytes follow), 3 a bytes field (a length
 * byte, then that many bytes), 4 a zlib-compressed bytes field (2 length bytes, then
 * that many bytes compressed, so pixels can inflate to the right size), 5 a u8. The
 * fake display checks that every update lies inside the last size it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fake_display.h"
#include "gpu.h"
#include "internal.h"
#include "state/state.h"
#include "virtio_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_display {
	uint32_t w, h;
	uint64_t sum;
};

static void fd_resize(void *o, uint32_t w, uint32_t h)
{
	struct fz_display *d = o;

	d->w = w;
	d->h = h;
}

static void fd_update(void *o, const uint8_t *pixels, uint32_t stride, enum gpu_pixel_order order,
		      uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct fz_display *d = o;
	uint32_t r;

	(void)order;
	if ((uint64_t)x + w > d->w || (uint64_t)y + h > d->h || !w || !h)
		abort();
	for (r = 0; r < h; r++) /* ASan sees a read outside the resource */
		d->sum += pixels[(size_t)r * stride] + pixels[(size_t)r * stride + w * 4 - 1];
}

static void fd_destroy(void *o)
{
	(void)o;
}

static const struct gpu_display_ops fz_display_ops = {
	.resize = fd_resize, .update = fd_update, .spawn = fake_display_spawn, .destroy = fd_destroy,
};

/* The writer's output, in memory. */
struct sink {
	uint8_t *buf;
	size_t len, cap;
};

static long sink_write(void *opaque, const void *buf, size_t len)
{
	struct sink *s = opaque;

	if (len > s->cap - s->len) {
		size_t cap = (s->len + len) * 2;
		uint8_t *n = realloc(s->buf, cap);

		if (!n)
			abort();
		s->buf = n;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return (long)len;
}

/* Run the program in p[0..n) into w. */
static void write_program(struct state_writer *w, const uint8_t *p, size_t n)
{
	static uint8_t z[70000];
	bool open = false;
	size_t i = 0;

	while (i < n) {
		uint8_t op = p[i++];
		size_t len;
		uLongf zlen = sizeof(z);

		switch (op % 6) {
		case 0:
		case 1:
			if (open)
				state_writer_end_section(w);
			state_writer_begin_section(w, op % 6 ? "virtio-gpu-px" : "virtio-gpu", 3, 0);
			state_put_bytes(w, "gpu0", 4);
			open = true;
			break;
		case 2:
			if (n - i < 4)
				return;
			state_put_u32(w, (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
						 (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24);
			i += 4;
			break;
		case 3:
			len = i < n ? p[i++] : 0;
			len = len < n - i ? len : n - i;
			state_put_bytes(w, p + i, (uint32_t)len);
			i += len;
			break;
		case 4:
			if (n - i < 2)
				return;
			len = p[i] | (size_t)p[i + 1] << 8;
			i += 2;
			len = len < n - i ? len : n - i;
			if (compress(z, &zlen, p + i, len) != Z_OK)
				abort();
			state_put_bytes(w, z, (uint32_t)zlen);
			i += len;
			break;
		default:
			state_put_u8(w, i < n ? p[i++] : 0);
			break;
		}
	}
	if (open)
		state_writer_end_section(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *f = fz_load(data, size);
	struct fz_display disp = { 0 };
	struct sink sink = { 0 };
	struct state_io io = { .write = sink_write, .opaque = &sink };
	struct state_writer *w;
	struct state_reader *r;
	struct virtio_dev vdev;
	int ret;

	if (size <= 0x2000)
		return 0;
	w = state_writer_new_io(&io, "fuzz");
	if (!w)
		abort();
	write_program(w, data + 0x2000, size - 0x2000);
	ret = state_writer_finish(w);
	state_writer_free(w);
	if (ret) { /* a program the writer refused (a field outside a section) */
		free(sink.buf);
		return 0;
	}
	memset(&vdev, 0, sizeof(vdev));
	if (virtio_gpu_init(&vdev, &f->gm, 1024, 768, &fz_display_ops, &disp))
		abort();
	r = state_reader_new_mem(sink.buf, sink.len, "fuzz");
	if (!r)
		abort();
	while ((ret = state_reader_next_section(r)) > 0) {
		const void *id; /* vmstate.c's part: the device's id */
		uint32_t id_len;

		ret = state_get_bytes_ref(r, &id, &id_len) ?:
		      virtio_gpu_ops.load_section(&vdev, r, state_reader_type(r));
		if (!ret)
			ret = state_reader_end_section(r);
		if (ret)
			break;
	}
	/* Whatever loaded must be a state the live commands accept: a reset frees it all. */
	if (ret < 0 && !state_reader_error(r)[0])
		abort();
	state_reader_free(r);
	virtio_gpu_ops.reset(&vdev);
	virtio_dev_fini(&vdev);
	free(sink.buf);
	return 0;
}
