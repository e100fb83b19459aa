// SPDX-License-Identifier: MIT
/*
 * virtio-input (virtio 1.2 section 5.8): a keyboard or a tablet (absolute pointer)
 * fed by a display (vmm/display/vnc.c) through virtio_input_send().
 *
 * Queues: eventq (0) carries events to the driver, one 8-byte event per buffer it
 * gave; statusq (1) brings the driver's own events (the keyboard's LEDs).
 *
 * Invariants and trust:
 *  1. The config space is a table lookup: the driver writes select and subsel (the
 *     only writable bytes; anything else is ignored), and the answer is computed
 *     into cfg under cfg_lock from the kind's const tables, so a read returns a
 *     consistent answer whatever the vCPUs write concurrently.
 *  2. Events wait in pending[] (a ring of INPUT_PENDING, under lock) until the
 *     driver has buffers: a sender adds a whole report (ending in SYN_REPORT) or
 *     nothing (the ring is full: the report is dropped and counted), and wakes the
 *     I/O thread through wake_fd. Only the I/O thread writes guest memory.
 *  3. statusq buffers are hostile: at most one event is read from each, only when
 *     the chain has its 8 bytes; a LED event updates leds, anything else is dropped.
 *  4. Snapshots and migrations carry select/subsel (the answer is recomputed), the
 *     LEDs and the waiting events (struct virtio_input_state); a load refuses a count
 *     above INPUT_PENDING and LEDs the kind does not offer. A save's park keeps them;
 *     only the driver's reset (ops->reset) drops them.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/input.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_input.h>

#include "input.h"
#include "internal.h"
#include "log.h"
#include "util.h"
#include "virtio-pci.h"
#include "virtio.h"

#define INPUT_QUEUE_SIZE 64
#define INPUT_Q_EVENT	 0
#define INPUT_Q_STATUS	 1
#define INPUT_PENDING	 1024 /* events waiting for buffers */
#define TAG_WAKE	 VIRTIO_TAG_DEV
_Static_assert(INPUT_PENDING == VIRTIO_INPUT_SAVED_EVENTS, "a save holds the whole ring");

/* What one kind of device offers (invariant 1). */
struct input_kind_desc {
	const char *name;   /* ID_NAME: what the guest calls it */
	const char *serial; /* ID_SERIAL */
	uint16_t product;
	const uint16_t *keys; /* EV_KEY codes (keyboard: KEY_*; tablet: BTN_*) */
	size_t nr_keys;
	bool all_keys;      /* EV_KEY also has every code 1..KEY_COMPOSE (a PC keyboard) */
	uint16_t rel;       /* EV_REL bits (REL_WHEEL), 0: none */
	uint16_t leds;      /* EV_LED bits, 0: none */
	bool abs_xy;        /* EV_ABS: ABS_X and ABS_Y, 0..INPUT_ABS_MAX */
};

static const uint16_t tablet_keys[] = { BTN_LEFT, BTN_RIGHT, BTN_MIDDLE };

static const struct input_kind_desc kinds[] = {
	[INPUT_KEYBOARD] = {
		.name = "plinth keyboard",
		.serial = "plinth-kbd",
		.product = 1,
		.all_keys = true,
		.leds = 1u << LED_NUML | 1u << LED_CAPSL | 1u << LED_SCROLLL,
	},
	[INPUT_TABLET] = {
		.name = "plinth tablet",
		.serial = "plinth-tablet",
		.product = 2,
		.keys = tablet_keys,
		.nr_keys = ARRAY_SIZE(tablet_keys),
		.rel = 1u << REL_WHEEL,
		.abs_xy = true,
	},
};

struct input {
	const struct input_kind_desc *desc;
	pthread_mutex_t cfg_lock;           /* cfg (vCPU threads) */
	struct virtio_input_config cfg;     /* select, subsel and their answer */
	pthread_mutex_t lock;               /* pending ring, dropped (any thread) */
	struct virtio_input_event pending[INPUT_PENDING]; /* host byte order */
	unsigned int head, count;
	uint64_t dropped;                   /* reports lost to a full ring */
	int wake_fd;                        /* eventfd, owned: events were added */
	uint16_t leds;                      /* last LED state the driver set (I/O thread) */
	struct virtq_elem elem;
};

static void set_bit8(uint8_t *map, unsigned int bit)
{
	map[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* size: the bitmap up to its last non-zero byte. */
static uint8_t bitmap_size(const uint8_t *map)
{
	unsigned int n = 128;

	while (n && !map[n - 1])
		n--;
	return (uint8_t)n;
}

static void ev_bits(const struct input_kind_desc *d, uint8_t type, uint8_t *map)
{
	unsigned int i;

	switch (type) {
	case EV_KEY:
		for (i = 1; d->all_keys && i <= KEY_COMPOSE; i++)
			set_bit8(map, i);
		for (i = 0; i < d->nr_keys; i++)
			set_bit8(map, d->keys[i]);
		break;
	case EV_REL:
		for (i = 0; i < 16; i++)
			if (d->rel & (1u << i))
				set_bit8(map, i);
		break;
	case EV_LED:
		for (i = 0; i < 16; i++)
			if (d->leds & (1u << i))
				set_bit8(map, i);
		break;
	case EV_ABS:
		if (d->abs_xy) {
			set_bit8(map, ABS_X);
			set_bit8(map, ABS_Y);
		}
		break;
	}
}

/* The answer to cfg.select/cfg.subsel (invariant 1). Under cfg_lock. */
static void cfg_answer(struct input *in)
{
	const struct input_kind_desc *d = in->desc;
	struct virtio_input_config *c = &in->cfg;
	size_t n;

	memset(&c->u, 0, sizeof(c->u));
	c->size = 0;
	switch (c->select) {
	case VIRTIO_INPUT_CFG_ID_NAME:
	case VIRTIO_INPUT_CFG_ID_SERIAL:
		if (c->subsel)
			break;
		n = strlen(c->select == VIRTIO_INPUT_CFG_ID_NAME ? d->name : d->serial);
		memcpy(c->u.string, c->select == VIRTIO_INPUT_CFG_ID_NAME ? d->name : d->serial, n);
		c->size = (uint8_t)n;
		break;
	case VIRTIO_INPUT_CFG_ID_DEVIDS:
		if (c->subsel)
			break;
		c->u.ids.bustype = htole16(BUS_VIRTUAL);
		c->u.ids.vendor = htole16(INPUT_VENDOR);
		c->u.ids.product = htole16(d->product);
		c->u.ids.version = htole16(1);
		c->size = sizeof(c->u.ids);
		break;
	case VIRTIO_INPUT_CFG_PROP_BITS:
		break; /* no properties */
	case VIRTIO_INPUT_CFG_EV_BITS:
		ev_bits(d, c->subsel, c->u.bitmap);
		c->size = bitmap_size(c->u.bitmap);
		break;
	case VIRTIO_INPUT_CFG_ABS_INFO:
		if (!d->abs_xy || (c->subsel != ABS_X && c->subsel != ABS_Y))
			break;
		c->u.abs.min = 0;
		c->u.abs.max = htole32(INPUT_ABS_MAX);
		c->size = sizeof(c->u.abs);
		break;
	}
}

static void input_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct input *in = vdev->priv;

	/* off + len <= cfg_size: checked by the transport. */
	pthread_mutex_lock(&in->cfg_lock);
	memcpy(data, (const uint8_t *)&in->cfg + off, len);
	pthread_mutex_unlock(&in->cfg_lock);
}

static void input_cfg_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			    unsigned int len)
{
	struct input *in = vdev->priv;
	const uint8_t *b = data;
	unsigned int i;

	/* Only select (0) and subsel (1) are writable; the other bytes are ignored. */
	pthread_mutex_lock(&in->cfg_lock);
	for (i = 0; i < len && off + i < 2; i++) {
		if (off + i == 0)
			in->cfg.select = b[i];
		else
			in->cfg.subsel = b[i];
	}
	if (i)
		cfg_answer(in);
	pthread_mutex_unlock(&in->cfg_lock);
}

void virtio_input_cfg_write(struct virtio_dev *vdev, uint32_t off, const void *data,
			    unsigned int len)
{
	if (off < sizeof(struct virtio_input_config) &&
	    len <= sizeof(struct virtio_input_config) - off)
		input_cfg_write(vdev, off, data, len);
}

int virtio_input_send(struct virtio_dev *vdev, const struct virtio_input_event *ev,
		      unsigned int n)
{
	struct input *in = vdev->priv;
	uint64_t one = 1;
	unsigned int i;

	pthread_mutex_lock(&in->lock);
	if (n > INPUT_PENDING - in->count) {
		/* The driver took no events for a while (not started, or stuck). */
		if (!in->dropped++)
			log_warn("%s: the guest takes no events; dropping input", in->desc->name);
		pthread_mutex_unlock(&in->lock);
		return -ENOSPC;
	}
	for (i = 0; i < n; i++)
		in->pending[(in->head + in->count + i) % INPUT_PENDING] = ev[i];
	in->count += n;
	pthread_mutex_unlock(&in->lock);
	if (write(in->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("%s: wake-up lost (one is pending)", in->desc->name);
	return 0;
}

/* One pending event into one eventq buffer (invariant 2). */
static int event_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct input *in = vdev->priv;
	struct virtio_input_event le;

	pthread_mutex_lock(&in->lock);
	if (!in->count) {
		pthread_mutex_unlock(&in->lock);
		return VIRTIO_DEFER; /* the buffer stays the driver's */
	}
	if (e->in_len < sizeof(le)) {
		/* Too small for an event: handed back empty, the event kept. */
		pthread_mutex_unlock(&in->lock);
		*written = 0;
		return 0;
	}
	le.type = htole16(in->pending[in->head].type);
	le.code = htole16(in->pending[in->head].code);
	le.value = htole32(in->pending[in->head].value);
	in->head = (in->head + 1) % INPUT_PENDING;
	in->count--;
	pthread_mutex_unlock(&in->lock);
	*written = (uint32_t)buf_to_iov(e->iov + e->out_num, e->in_num, 0, &le, sizeof(le));
	return 0;
}

void virtio_input_status(struct virtio_dev *vdev, const void *buf, size_t len)
{
	struct input *in = vdev->priv;
	struct virtio_input_event ev;
	uint16_t type, code;

	if (len < sizeof(ev))
		return;
	memcpy(&ev, buf, sizeof(ev));
	type = le16toh(ev.type);
	code = le16toh(ev.code);
	if (type != EV_LED || code >= 16 || !(in->desc->leds & (1u << code)))
		return;
	if (le32toh(ev.value))
		in->leds |= (uint16_t)(1u << code);
	else
		in->leds &= (uint16_t)~(1u << code);
}

static int status_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_input_event ev;
	size_t n = iov_to_buf(e->iov, e->out_num, 0, &ev, MIN(e->out_len, sizeof(ev)));

	virtio_input_status(vdev, &ev, n);
	*written = 0;
	return 0;
}

static void input_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct input *in = vdev->priv;
	uint64_t n;

	(void)events;
	if (tag == TAG_WAKE && read(in->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("%s: wake-up read: %s", in->desc->name, strerror(errno));
	if (tag == INPUT_Q_STATUS)
		virtio_dev_drain(vdev, INPUT_Q_STATUS, &in->elem, status_chain);
	else /* events added, or the driver gave buffers */
		virtio_dev_drain(vdev, INPUT_Q_EVENT, &in->elem, event_chain);
}

static int input_start(struct virtio_dev *vdev)
{
	struct input *in = vdev->priv;

	return virtio_dev_watch(vdev, in->wake_fd, EPOLLIN, TAG_WAKE);
}

/* Reset: what waited is for a driver that is gone (a park for a save keeps it). */
static void input_reset(struct virtio_dev *vdev)
{
	struct input *in = vdev->priv;

	pthread_mutex_lock(&in->lock);
	in->head = in->count = 0;
	pthread_mutex_unlock(&in->lock);
	in->leds = 0;
}

/* Invariant 4: the config selection, the LEDs and the events still waiting, in order. */
static int input_save(struct virtio_dev *vdev, void *state)
{
	struct input *in = vdev->priv;
	struct virtio_input_state *st = state;
	unsigned int i;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&in->cfg_lock);
	st->select = in->cfg.select;
	st->subsel = in->cfg.subsel;
	pthread_mutex_unlock(&in->cfg_lock);
	st->leds = in->leds;
	pthread_mutex_lock(&in->lock);
	st->count = in->count;
	for (i = 0; i < in->count; i++)
		st->pending[i] = in->pending[(in->head + i) % INPUT_PENDING];
	pthread_mutex_unlock(&in->lock);
	return 0;
}

static int input_load(struct virtio_dev *vdev, const void *state)
{
	struct input *in = vdev->priv;
	const struct virtio_input_state *st = state;

	/* Checked as a guest's writes and a display's reports are. */
	if (st->count > INPUT_PENDING || (st->leds & ~in->desc->leds))
		return -EINVAL;
	pthread_mutex_lock(&in->cfg_lock);
	in->cfg.select = st->select;
	in->cfg.subsel = st->subsel;
	cfg_answer(in);
	pthread_mutex_unlock(&in->cfg_lock);
	in->leds = st->leds;
	pthread_mutex_lock(&in->lock);
	memcpy(in->pending, st->pending, st->count * sizeof(st->pending[0]));
	in->head = 0;
	in->count = st->count;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

static void input_destroy(struct virtio_dev *vdev)
{
	struct input *in = vdev->priv;

	close(in->wake_fd);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->cfg_lock);
	free(in);
	vdev->priv = NULL;
}

uint16_t virtio_input_leds(struct virtio_dev *vdev)
{
	return ((struct input *)vdev->priv)->leds;
}

const struct virtio_dev_ops virtio_input_ops = {
	.name = "virtio-input",
	.device_id = VIRTIO_ID_INPUT,
	.pci_class = 0x0980, /* input device, other */
	.cfg_size = sizeof(struct virtio_input_config),
	.cfg_read = input_cfg_read,
	.cfg_write = input_cfg_write,
	.start = input_start,
	.handle = input_handle,
	.reset = input_reset,
	.destroy = input_destroy,
	.state_size = sizeof(struct virtio_input_state),
	.save = input_save,
	.load = input_load,
};

int virtio_input_init(struct virtio_dev *vdev, const struct guest_mem *mem,
		      enum virtio_input_kind kind)
{
	struct input *in = calloc(1, sizeof(*in));
	int err;

	if (!in) {
		log_error("--display: out of memory");
		return -ENOMEM;
	}
	in->desc = &kinds[kind];
	in->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (in->wake_fd < 0) {
		err = -errno;
		log_error("--display: %s: eventfd: %s", in->desc->name, strerror(errno));
		free(in);
		return err;
	}
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->cfg_lock, NULL);
	err = virtio_dev_init(vdev, &virtio_input_ops, in, mem, 2, INPUT_QUEUE_SIZE, 0);
	if (err) {
		vdev->priv = in;
		input_destroy(vdev);
	}
	return err;
}

int virtio_input_create_on(struct pci_bus *bus, const struct guest_mem *mem,
			   enum virtio_input_kind kind, struct virtio_pci **out)
{
	struct virtio_dev *vdev = calloc(1, sizeof(*vdev));
	int r;

	if (!vdev) {
		log_error("--display: out of memory");
		return -ENOMEM;
	}
	r = virtio_input_init(vdev, mem, kind);
	if (r) {
		free(vdev);
		return r;
	}
	return virtio_pci_create_on(bus, vdev, out);
}
