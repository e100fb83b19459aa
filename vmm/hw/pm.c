// SPDX-License-Identifier: MIT
#include "pm.h"

#include <string.h>
#include <time.h>

#include "util.h"
#include "arch/x86/layout.h"

#define PM1_CNT_SCI_EN	0x0001
#define PM1_CNT_SLP_TYP 0x1c00
#define PM1_CNT_SLP_EN	0x2000
#define PM1_STS_WAK	0x8000
#define RST_CNT_RESET	0x04

void pm_init(struct pm *pm, const struct pm_backend *be, void *opaque)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	pm->be = be;
	pm->opaque = opaque;
	pm->s5_typ = ACPI_S5_SLP_TYP;
	/* No SMI command port: the machine is always in ACPI mode. */
	pm->st.cnt = PM1_CNT_SCI_EN;
}

void pm_destroy(struct pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

/* SCI = any status bit whose enable bit is set (WAK_STS has none). Lock held. */
static void pm_update_sci(struct pm *pm)
{
	uint16_t level = (pm->st.sts & pm->st.en & (uint16_t)~PM1_STS_WAK) != 0;

	if (level != pm->st.sci) {
		pm->st.sci = level;
		if (pm->be && pm->be->sci)
			pm->be->sci(pm->opaque, level);
	}
}

static uint16_t *pm_reg(struct pm_state *st, unsigned int off)
{
	switch (off / 2) {
	case 0:
		return &st->sts;
	case 1:
		return &st->en;
	default:
		return &st->cnt;
	}
}

static void pm_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pm *pm = opaque;
	uint8_t *p = data;
	unsigned int i;

	pthread_mutex_lock(&pm->lock);
	for (i = 0; i < len; i++) {
		unsigned int o = (unsigned int)off + i;

		p[i] = o < 6 ? (uint8_t)(*pm_reg(&pm->st, o) >> (8 * (o & 1))) : 0xff;
	}
	pthread_mutex_unlock(&pm->lock);
}

static void pm_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pm *pm = opaque;
	const uint8_t *p = data;
	int poweroff = 0;
	unsigned int i;

	pthread_mutex_lock(&pm->lock);
	for (i = 0; i < len; i++) {
		unsigned int o = (unsigned int)off + i, shift = 8 * (o & 1);
		uint16_t v = (uint16_t)(p[i] << shift), *reg;

		if (o >= 6)
			break;
		reg = pm_reg(&pm->st, o);
		if (reg == &pm->st.sts)
			*reg &= (uint16_t)~v; /* write one to clear */
		else
			*reg = (uint16_t)((*reg & ~(0xff << shift)) | v);
	}
	if (pm->st.cnt & PM1_CNT_SLP_EN) {
		/* SLP_EN is write-only; act on the sleep type just written. */
		pm->st.cnt &= (uint16_t)~PM1_CNT_SLP_EN;
		if (((pm->st.cnt & PM1_CNT_SLP_TYP) >> 10) == pm->s5_typ)
			poweroff = 1;
	}
	pm->st.cnt |= PM1_CNT_SCI_EN;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	if (poweroff && pm->be && pm->be->event)
		pm->be->event(pm->opaque, PM_EVENT_POWEROFF);
}

const struct bus_dev_ops pm_ops = {
	.read = pm_read,
	.write = pm_write,
};

void pm_set_s5_type(struct pm *pm, uint16_t typ)
{
	pthread_mutex_lock(&pm->lock);
	pm->s5_typ = typ;
	pthread_mutex_unlock(&pm->lock);
}

void pm_reset_control(struct pm *pm, uint8_t v)
{
	if ((v & RST_CNT_RESET) && pm->be && pm->be->event)
		pm->be->event(pm->opaque, PM_EVENT_RESET);
}

void pm_power_button(struct pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->st.sts |= PM1_STS_PWRBTN;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void pm_get_state(struct pm *pm, struct pm_state *st)
{
	pthread_mutex_lock(&pm->lock);
	*st = pm->st;
	pthread_mutex_unlock(&pm->lock);
}

void pm_set_state(struct pm *pm, const struct pm_state *st)
{
	pthread_mutex_lock(&pm->lock);
	pm->st = *st;
	pm->st.sci = st->sci ? 1 : 0;
	pm->st.cnt |= PM1_CNT_SCI_EN;
	pthread_mutex_unlock(&pm->lock);
}

/*
 * The ACPI PM timer: 24 bits at 3.579545 MHz from the host's monotonic clock
 * (stateless: every reader sees the same counter).
 */
#define PM_TIMER_HZ 3579545ULL

static void pm_timer_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct timespec ts;
	uint64_t ticks;
	uint32_t v;

	(void)opaque;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ticks = (uint64_t)ts.tv_sec * PM_TIMER_HZ +
		(uint64_t)ts.tv_nsec * PM_TIMER_HZ / 1000000000ULL;
	v = (uint32_t)(ticks & 0xffffff);
	memset(data, 0, len);
	if (off < 4)
		memcpy(data, (const uint8_t *)&v + off, MIN(len, 4 - (unsigned int)off));
}

static void pm_timer_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	(void)opaque;
	(void)off;
	(void)data;
	(void)len; /* read-only */
}

const struct bus_dev_ops pm_timer_ops = {
	.read = pm_timer_read,
	.write = pm_timer_write,
};
