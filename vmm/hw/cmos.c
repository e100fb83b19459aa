// SPDX-License-Identifier: MIT
#include "cmos.h"

#include <string.h>
#include <time.h>

#include "util.h"

#define REG_SEC	     0x00
#define REG_MIN	     0x02
#define REG_HOUR     0x04
#define REG_WDAY     0x06
#define REG_MDAY     0x07
#define REG_MON	     0x08
#define REG_YEAR     0x09
#define REG_A	     0x0a
#define REG_B	     0x0b
#define REG_C	     0x0c
#define REG_D	     0x0d
#define REG_CENTURY  0x32
#define REG_A_UIP    0x80
#define REG_B_SET    0x80
#define REG_B_BINARY 0x04
#define REG_B_24H    0x02
#define REG_D_VRT    0x80
#define UIP_NS	     244000 /* update cycle: the last 244 us of each second */

static int64_t host_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cmos_init(struct cmos *c, uint64_t low_ram, uint64_t high_ram)
{
	uint64_t ext;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->now_ns = host_now_ns;
	c->ram[REG_A] = 0x26; /* 32.768 kHz divider, 1024 Hz rate */
	c->ram[REG_B] = REG_B_24H;
	c->ram[REG_D] = REG_D_VRT;
	put_le(c->ram + 0x15, 640, 2); /* base memory, KiB */
	ext = low_ram > MiB ? MIN((low_ram - MiB) / KiB, 0xffffULL) : 0;
	put_le(c->ram + 0x17, ext, 2); /* extended memory, KiB (both copies) */
	put_le(c->ram + 0x30, ext, 2);
	ext = low_ram > 16 * MiB ? MIN((low_ram - 16 * MiB) / (64 * KiB), 0xffffULL) : 0;
	put_le(c->ram + 0x34, ext, 2);
	ext = MIN(high_ram / (64 * KiB), 0xffffffULL);
	put_le(c->ram + 0x5b, ext, 3); /* above 4 GiB, 64 KiB units */
}

void cmos_destroy(struct cmos *c)
{
	pthread_mutex_destroy(&c->lock);
}

static uint8_t to_bcd(unsigned int v)
{
	return (uint8_t)((v / 10) << 4 | (v % 10));
}

static unsigned int from_bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

/* A time field as register B says (BCD or binary). */
static uint8_t enc(const struct cmos *c, unsigned int v)
{
	return (c->ram[REG_B] & REG_B_BINARY) ? (uint8_t)v : to_bcd(v);
}

static unsigned int dec(const struct cmos *c, uint8_t v)
{
	return (c->ram[REG_B] & REG_B_BINARY) ? v : from_bcd(v);
}

/* The guest's broken-down time now. Lock held. */
static void cmos_tm(const struct cmos *c, struct tm *tm, int64_t *frac_ns)
{
	int64_t ns = c->now_ns();
	time_t t = (time_t)(ns / 1000000000 + c->offset);

	*frac_ns = ns % 1000000000;
	gmtime_r(&t, tm);
}

static uint8_t cmos_hour(const struct cmos *c, int hour)
{
	unsigned int h;

	if (c->ram[REG_B] & REG_B_24H)
		return enc(c, (unsigned int)hour);
	h = (unsigned int)hour % 12;
	return (uint8_t)(enc(c, h ? h : 12) | (hour >= 12 ? 0x80 : 0));
}

/* Read register reg. Lock held. */
static uint8_t cmos_reg(struct cmos *c, unsigned int reg)
{
	struct tm tm;
	int64_t frac;
	uint8_t v;

	if (reg > REG_YEAR && reg != REG_A && reg != REG_C && reg != REG_CENTURY)
		return c->ram[reg];
	cmos_tm(c, &tm, &frac);
	switch (reg) {
	case REG_SEC:
		return enc(c, (unsigned int)tm.tm_sec);
	case REG_MIN:
		return enc(c, (unsigned int)tm.tm_min);
	case REG_HOUR:
		return cmos_hour(c, tm.tm_hour);
	case REG_WDAY:
		return enc(c, (unsigned int)tm.tm_wday + 1);
	case REG_MDAY:
		return enc(c, (unsigned int)tm.tm_mday);
	case REG_MON:
		return enc(c, (unsigned int)tm.tm_mon + 1);
	case REG_YEAR:
		return enc(c, (unsigned int)(tm.tm_year % 100));
	case REG_CENTURY:
		return enc(c, (unsigned int)(1900 + tm.tm_year) / 100);
	case REG_A:
		v = c->ram[REG_A] & (uint8_t)~REG_A_UIP;
		return frac >= 1000000000 - UIP_NS ? (uint8_t)(v | REG_A_UIP) : v;
	case REG_C:
		v = c->ram[REG_C];
		c->ram[REG_C] = 0; /* read to clear */
		return v;
	default:
		return c->ram[reg]; /* alarms */
	}
}

/* The guest sets one time field: move the offset so the clock shows it. Lock held. */
static void cmos_set_time(struct cmos *c, unsigned int reg, uint8_t v)
{
	struct tm tm;
	int64_t frac, host;
	unsigned int n;
	time_t t;

	cmos_tm(c, &tm, &frac);
	if (reg == REG_HOUR && !(c->ram[REG_B] & REG_B_24H)) {
		n = dec(c, v & 0x7f) % 12;
		n += (v & 0x80) ? 12 : 0;
	} else {
		n = dec(c, v);
	}
	switch (reg) {
	case REG_SEC:
		tm.tm_sec = (int)MIN(n, 59u);
		break;
	case REG_MIN:
		tm.tm_min = (int)MIN(n, 59u);
		break;
	case REG_HOUR:
		tm.tm_hour = (int)MIN(n, 23u);
		break;
	case REG_MDAY:
		tm.tm_mday = (int)MAX(MIN(n, 31u), 1u);
		break;
	case REG_MON:
		tm.tm_mon = (int)MAX(MIN(n, 12u), 1u) - 1;
		break;
	case REG_YEAR:
		tm.tm_year = (tm.tm_year / 100) * 100 + (int)(n % 100);
		break;
	case REG_CENTURY:
		tm.tm_year = (int)(MIN(n, 99u) * 100) + tm.tm_year % 100 - 1900;
		break;
	default:
		return; /* day of week follows the date */
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return;
	host = c->now_ns() / 1000000000;
	c->offset = (int64_t)t - host;
}

static void cmos_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct cmos *c = opaque;
	uint8_t *p = data;

	memset(data, 0xff, len);
	if (len != 1)
		return;
	pthread_mutex_lock(&c->lock);
	*p = off == 0 ? 0xff : cmos_reg(c, c->index);
	pthread_mutex_unlock(&c->lock);
}

static void cmos_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct cmos *c = opaque;
	uint8_t v = *(const uint8_t *)data;
	unsigned int reg;

	if (len != 1)
		return;
	pthread_mutex_lock(&c->lock);
	if (off == 0) {
		c->index = v & 0x7f; /* bit 7: NMI mask, nothing to mask here */
		goto out_unlock;
	}
	reg = c->index;
	if (reg <= REG_YEAR || reg == REG_CENTURY) {
		c->ram[reg] = v; /* alarms keep their value; time fields move the clock */
		cmos_set_time(c, reg, v);
	} else if (reg == REG_A) {
		c->ram[REG_A] = v & 0x7f; /* UIP is read-only */
	} else if (reg == REG_B) {
		c->ram[REG_B] = v;
	} else if (reg != REG_C && reg != REG_D) {
		c->ram[reg] = v;
	}
out_unlock:
	pthread_mutex_unlock(&c->lock);
}

const struct bus_dev_ops cmos_ops = {
	.read = cmos_read,
	.write = cmos_write,
};
