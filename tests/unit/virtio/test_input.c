// SPDX-License-Identifier: MIT
/*
 * virtio-input: the config space a driver reads (names, ids, event bits, the
 * tablet's axes) for both kinds, events reaching the eventq in order only as the
 * driver gives buffers (whole reports, a full ring dropping whole reports), the
 * statusq's LEDs, and hostile config writes and status buffers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <cmocka.h>

#include <linux/input.h>

#include "fake_dev.h"
#include "input.h"
#include "internal.h"
#include "util.h"

#define RING 0x1000u
#define EVB  0x20000u /* eventq buffers, 8 bytes apart */
#define STB  0x30000u

struct fixture {
	struct fake_mem fm;
	struct virtio_dev kbd, tab;
	struct fake_transport ft[2];
	struct drv_vq dq[2][2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	if (virtio_input_init(&f->kbd, &f->fm.gm, INPUT_KEYBOARD) ||
	    virtio_input_init(&f->tab, &f->fm.gm, INPUT_TABLET))
		return -1;
	if (fake_dev_setup(&f->kbd, &f->ft[0], &f->fm, f->dq[0], ~0ULL, 8, RING) ||
	    fake_dev_setup(&f->tab, &f->ft[1], &f->fm, f->dq[1], ~0ULL, 8, RING + 0x8000))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_dev_fini(&f->kbd);
	virtio_dev_fini(&f->tab);
	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

/* Select (sel, sub) and read the answer's size and payload. */
static uint8_t cfg(struct virtio_dev *d, uint8_t sel, uint8_t sub, void *u)
{
	struct virtio_input_config c;
	uint8_t b[2] = { sel, sub };

	d->ops->cfg_write(d, 0, b, 2);
	d->ops->cfg_read(d, 0, &c, sizeof(c));
	assert_int_equal(c.select, sel);
	assert_int_equal(c.subsel, sub);
	if (u)
		memcpy(u, &c.u, sizeof(c.u));
	return c.size;
}

static bool bit(const uint8_t *map, unsigned int b)
{
	return map[b / 8] & (1u << (b % 8));
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	struct virtio_input_config c;
	uint8_t u[128], junk[200];

	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_ID_NAME, 0, u), strlen("plinth keyboard"));
	assert_memory_equal(u, "plinth keyboard", strlen("plinth keyboard"));
	assert_int_equal(cfg(&f->tab, VIRTIO_INPUT_CFG_ID_NAME, 0, u), strlen("plinth tablet"));
	assert_memory_equal(u, "plinth tablet", strlen("plinth tablet"));
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_ID_SERIAL, 0, u), strlen("plinth-kbd"));
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u),
			 sizeof(struct virtio_input_devids));
	assert_int_equal(((struct virtio_input_devids *)u)->bustype, BUS_VIRTUAL);
	assert_int_equal(((struct virtio_input_devids *)u)->vendor, INPUT_VENDOR);
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_PROP_BITS, 0, NULL), 0);

	/* Keyboard: keys and LEDs, no axes, no buttons. */
	assert_true(cfg(&f->kbd, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u) > 0);
	assert_true(bit(u, KEY_A) && bit(u, KEY_ENTER) && bit(u, KEY_F12) && bit(u, KEY_LEFTSHIFT));
	assert_false(bit(u, 0));
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_EV_BITS, EV_LED, u), 1);
	assert_int_equal(u[0], 7);
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, NULL), 0);
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_ABS_INFO, ABS_X, NULL), 0);

	/* Tablet: buttons, wheel, two axes 0..INPUT_ABS_MAX. */
	assert_true(cfg(&f->tab, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u) > 0);
	assert_true(bit(u, BTN_LEFT) && bit(u, BTN_RIGHT) && bit(u, BTN_MIDDLE));
	assert_false(bit(u, KEY_A));
	assert_int_equal(cfg(&f->tab, VIRTIO_INPUT_CFG_EV_BITS, EV_REL, u), 2);
	assert_true(bit(u, REL_WHEEL));
	assert_int_equal(cfg(&f->tab, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), 1);
	assert_int_equal(u[0], 3);
	assert_int_equal(cfg(&f->tab, VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y, u),
			 sizeof(struct virtio_input_absinfo));
	assert_int_equal(((struct virtio_input_absinfo *)u)->max, INPUT_ABS_MAX);
	assert_int_equal(cfg(&f->tab, VIRTIO_INPUT_CFG_ABS_INFO, ABS_PRESSURE, NULL), 0);

	/* Unknown selects and subselects answer size 0 with an empty payload. */
	assert_int_equal(cfg(&f->kbd, 0x42, 0, u), 0);
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_ID_NAME, 7, u), 0);
	assert_int_equal(cfg(&f->kbd, VIRTIO_INPUT_CFG_EV_BITS, 0xff, u), 0);
	assert_int_equal(u[0] | u[127], 0);

	/* Hostile writes: the read-only bytes stay, out-of-range writes are dropped. */
	cfg(&f->kbd, VIRTIO_INPUT_CFG_ID_NAME, 0, NULL);
	f->kbd.ops->cfg_write(&f->kbd, 2, junk, 134);
	virtio_input_cfg_write(&f->kbd, 0, junk, sizeof(junk));
	virtio_input_cfg_write(&f->kbd, 135, junk, 2);
	virtio_input_cfg_write(&f->kbd, 0xffffffffu, junk, 4);
	f->kbd.ops->cfg_read(&f->kbd, 0, &c, sizeof(c));
	assert_int_equal(c.select, VIRTIO_INPUT_CFG_ID_NAME);
	assert_int_equal(c.size, strlen("plinth keyboard"));
	/* select 0xff, subsel 0xff through one 1-byte write at 1 (the last one in range). */
	virtio_input_cfg_write(&f->kbd, 1, junk, 1);
	f->kbd.ops->cfg_read(&f->kbd, 0, &c, sizeof(c));
	assert_int_equal(c.subsel, 0xff);
	assert_int_equal(c.size, 0);
}

/* Give the driver's eventq buffers [first, first + n) of len bytes each. */
static void give(struct fixture *f, struct drv_vq *dq, uint16_t first, uint16_t n, uint32_t len)
{
	uint16_t i;

	for (i = first; i < first + n; i++) {
		drv_set_desc(dq, i % dq->size, EVB + 8u * i, len, VRING_DESC_F_WRITE, 0);
		drv_kick_head(dq, i % dq->size);
	}
	(void)f;
}

static struct virtio_input_event *got(struct fixture *f, uint16_t i)
{
	return gpa_ptr(&f->fm, EVB + 8u * i);
}

static void test_events(void **state)
{
	struct fixture *f = *state;
	struct drv_vq *dq = &f->dq[0][0];
	struct virtio_input_event rep[] = {
		{ .type = EV_KEY, .code = KEY_A, .value = 1 },
		{ .type = EV_SYN, .code = SYN_REPORT },
	};
	struct virtio_input_event big[1100];
	uint32_t id, len;
	unsigned int i, sent;

	/* No buffers: the events wait. */
	assert_int_equal(virtio_input_send(&f->kbd, rep, 2), 0);
	virtio_input_ops.handle(&f->kbd, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(dq), 0);

	/* Three buffers: two events delivered in order, one buffer left with the driver. */
	give(f, dq, 0, 3, 8);
	virtio_input_ops.handle(&f->kbd, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(dq), 2);
	drv_used_elem(dq, 0, &id, &len);
	assert_int_equal(len, 8);
	assert_int_equal(got(f, 0)->type, EV_KEY);
	assert_int_equal(got(f, 0)->code, KEY_A);
	assert_int_equal(got(f, 0)->value, 1);
	assert_int_equal(got(f, 1)->type, EV_SYN);

	/* The next report takes the waiting buffer and the following. */
	rep[0].value = 0;
	assert_int_equal(virtio_input_send(&f->kbd, rep, 2), 0);
	give(f, dq, 3, 1, 8);
	virtio_input_ops.handle(&f->kbd, VIRTIO_TAG_DEV, EPOLLIN);
	assert_int_equal(drv_used_idx(dq), 4);
	assert_int_equal(got(f, 2)->code, KEY_A);
	assert_int_equal(got(f, 2)->value, 0);

	/* A buffer too short for an event comes back empty; the event waits. */
	assert_int_equal(virtio_input_send(&f->kbd, rep, 1), 0);
	give(f, dq, 4, 1, 7);
	virtio_input_ops.handle(&f->kbd, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(dq), 5);
	drv_used_elem(dq, 4, &id, &len);
	assert_int_equal(len, 0);
	give(f, dq, 5, 1, 64);
	virtio_input_ops.handle(&f->kbd, 0, EPOLLIN);
	drv_used_elem(dq, 5, &id, &len);
	assert_int_equal(len, 8);
	assert_int_equal(got(f, 5)->code, KEY_A);

	/* A full ring drops whole reports, never part of one. */
	memset(big, 0, sizeof(big));
	assert_int_equal(virtio_input_send(&f->kbd, big, 1100), -ENOSPC);
	for (sent = 0; virtio_input_send(&f->kbd, rep, 2) == 0; sent += 2)
		;
	assert_int_equal(sent, 1024);
	assert_int_equal(virtio_input_send(&f->kbd, rep, 1), -ENOSPC);
	/* A reset drops what waited for the old driver. */
	f->kbd.ops->reset(&f->kbd);
	assert_int_equal(virtio_input_send(&f->kbd, big, 1024), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(f->ft[0].resets, 0);
}

static void test_status(void **state)
{
	struct fixture *f = *state;
	struct drv_vq *sq = &f->dq[0][1];
	struct virtio_input_event led = { .type = EV_LED, .code = LED_CAPSL, .value = 1 };
	struct virtio_input_event bad[] = {
		{ .type = EV_LED, .code = LED_MUTE, .value = 1 }, /* not offered */
		{ .type = EV_LED, .code = 0xffff, .value = 1 },
		{ .type = EV_KEY, .code = KEY_A, .value = 1 },
	};
	uint32_t id, len;
	unsigned int i;

	memcpy(gpa_ptr(&f->fm, STB), &led, sizeof(led));
	drv_set_desc(sq, 0, STB, sizeof(led), 0, 0);
	drv_kick_head(sq, 0);
	virtio_input_ops.handle(&f->kbd, 1, EPOLLIN);
	assert_int_equal(drv_used_idx(sq), 1);
	drv_used_elem(sq, 0, &id, &len);
	assert_int_equal(len, 0);
	assert_int_equal(virtio_input_leds(&f->kbd), 1u << LED_CAPSL);

	/* Short buffers and events the device does not have change nothing. */
	led.value = 0;
	virtio_input_status(&f->kbd, &led, sizeof(led) - 1);
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		virtio_input_status(&f->kbd, &bad[i], sizeof(bad[i]));
	virtio_input_status(&f->tab, &bad[0], sizeof(bad[0]));
	assert_int_equal(virtio_input_leds(&f->kbd), 1u << LED_CAPSL);
	assert_int_equal(virtio_input_leds(&f->tab), 0);
	virtio_input_status(&f->kbd, &led, sizeof(led));
	assert_int_equal(virtio_input_leds(&f->kbd), 0);
}


/* A save carries the selection, the LEDs and the waiting events; a bad state is refused. */
static void test_save_load(void **state)
{
	struct fixture *f = *state;
	struct drv_vq *dq = &f->dq[1][0];
	struct virtio_input_event rep[] = {
		{ .type = EV_ABS, .code = ABS_X, .value = 77 },
		{ .type = EV_SYN, .code = SYN_REPORT },
	};
	struct virtio_input_event led = { .type = EV_LED, .code = LED_NUML, .value = 1 };
	struct virtio_input_state *st = malloc(sizeof(*st));
	struct virtio_input_config c;
	uint8_t sel[2] = { VIRTIO_INPUT_CFG_ABS_INFO, ABS_X };

	assert_non_null(st);
	assert_int_equal(virtio_input_ops.state_size, sizeof(*st));
	/* The tablet: two events wait, ABS_X selected. */
	f->tab.ops->cfg_write(&f->tab, 0, sel, 2);
	assert_int_equal(virtio_input_send(&f->tab, rep, 2), 0);
	/* A park (the save's) keeps them. */
	if (f->tab.ops->stop)
		f->tab.ops->stop(&f->tab);
	assert_int_equal(virtio_input_ops.save(&f->tab, st), 0);
	assert_int_equal(st->count, 2);
	/* Loaded on the keyboard's twin (a fresh tablet): the driver takes them on. */
	virtio_dev_fini(&f->tab);
	memset(&f->tab, 0, sizeof(f->tab));
	assert_int_equal(virtio_input_init(&f->tab, &f->fm.gm, INPUT_TABLET), 0);
	assert_int_equal(fake_dev_setup(&f->tab, &f->ft[1], &f->fm, f->dq[1], ~0ULL, 8,
					RING + 0x8000), 0);
	assert_int_equal(virtio_input_ops.load(&f->tab, st), 0);
	f->tab.ops->cfg_read(&f->tab, 0, &c, sizeof(c));
	assert_int_equal(c.select, VIRTIO_INPUT_CFG_ABS_INFO);
	assert_int_equal(c.size, sizeof(c.u.abs)); /* the answer recomputed */
	give(f, dq, 0, 2, 8);
	virtio_input_ops.handle(&f->tab, 0, EPOLLIN);
	assert_int_equal(drv_used_idx(dq), 2);
	assert_int_equal(got(f, 0)->type, EV_ABS);
	assert_int_equal(got(f, 0)->value, 77);
	assert_int_equal(got(f, 1)->type, EV_SYN);

	/* LEDs round-trip on the keyboard; a count past the ring or LEDs not offered fail. */
	virtio_input_status(&f->kbd, &led, sizeof(led));
	assert_int_equal(virtio_input_ops.save(&f->kbd, st), 0);
	assert_int_equal(virtio_input_ops.load(&f->kbd, st), 0);
	assert_int_equal(virtio_input_leds(&f->kbd), 1u << LED_NUML);
	st->count = 1025;
	assert_int_equal(virtio_input_ops.load(&f->kbd, st), -EINVAL);
	st->count = 0;
	st->leds = 1u << LED_MUTE;
	assert_int_equal(virtio_input_ops.load(&f->kbd, st), -EINVAL);
	st->leds = 1u << LED_NUML;
	assert_int_equal(virtio_input_ops.load(&f->tab, st), -EINVAL); /* a tablet has none */
	assert_int_equal(virtio_input_leds(&f->kbd), 1u << LED_NUML);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
