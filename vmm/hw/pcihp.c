// SPDX-License-Identifier: MIT
/* ACPI PCI hot-plug controller and GPE0 block (pcihp.h describes the protocol). */
#include "pcihp.h"

#include <stdbool.h>
#include <string.h>

#define GPE_BIT	  (1u << PCIHP_GPE_BIT)
#define SLOT_MASK 0xfffffffeu /* slots 1..31: 0 is the host bridge */

void pcihp_init(struct pcihp *hp, const struct pcihp_backend *be, void *opaque)
{
	memset(hp, 0, sizeof(*hp));
	pthread_mutex_init(&hp->lock, NULL);
	hp->be = be;
	hp->opaque = opaque;
}

void pcihp_destroy(struct pcihp *hp)
{
	pthread_mutex_destroy(&hp->lock);
}

/* Lock held. */
static void pcihp_update_sci(struct pcihp *hp)
{
	uint32_t level = (hp->st.gpe_sts & hp->st.gpe_en) != 0;

	if (level != hp->st.sci) {
		hp->st.sci = level;
		if (hp->be && hp->be->sci)
			hp->be->sci(hp->opaque, (int)level);
	}
}

static void gpe_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pcihp *hp = opaque;
	uint8_t *p = data;
	unsigned int i;

	pthread_mutex_lock(&hp->lock);
	for (i = 0; i < len; i++) {
		uint64_t o = off + i;
		uint16_t reg = o < 2 ? hp->st.gpe_sts : hp->st.gpe_en;

		p[i] = o < 4 ? (uint8_t)(reg >> (8 * (o & 1))) : 0xff;
	}
	pthread_mutex_unlock(&hp->lock);
}

static void gpe_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pcihp *hp = opaque;
	const uint8_t *p = data;
	unsigned int i;

	pthread_mutex_lock(&hp->lock);
	for (i = 0; i < len && off + i < 4; i++) {
		uint64_t o = off + i;
		unsigned int shift = 8 * (o & 1);

		if (o < 2)
			hp->st.gpe_sts &= (uint16_t)~(p[i] << shift); /* write one to clear */
		else
			hp->st.gpe_en = (uint16_t)((hp->st.gpe_en & ~(0xff << shift)) |
						   p[i] << shift);
	}
	pcihp_update_sci(hp);
	pthread_mutex_unlock(&hp->lock);
}

const struct bus_dev_ops pcihp_gpe_ops = {
	.read = gpe_read,
	.write = gpe_write,
};

/*
 * A read of PCIU or PCID returns the slots to report and clears them: the guest's
 * _E01 reads each once per event, so a slot is notified once per request.
 */
static void hp_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pcihp *hp = opaque;
	uint32_t v = 0, *reg = NULL;
	uint64_t base = off & ~3ull;

	memset(data, 0, len);
	if (off >= 12 || off + len > base + 4)
		return; /* outside, or across two registers */
	pthread_mutex_lock(&hp->lock);
	if (base == PCIHP_PCIU)
		reg = &hp->st.up;
	else if (base == PCIHP_PCID)
		reg = &hp->st.down;
	if (reg) {
		v = *reg;
		*reg = 0;
	}
	pthread_mutex_unlock(&hp->lock);
	memcpy(data, (const uint8_t *)&v + (off - base), len);
}

static void hp_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pcihp *hp = opaque;
	uint32_t v = 0, done;

	if (off != PCIHP_B0EJ || len != 4)
		return; /* only B0EJ is writable, as a dword */
	memcpy(&v, data, 4);
	pthread_mutex_lock(&hp->lock);
	done = v & hp->st.removing;
	hp->st.removing &= ~done;
	hp->st.ejected |= done;
	pthread_mutex_unlock(&hp->lock);
	if (done && hp->be && hp->be->eject)
		hp->be->eject(hp->opaque);
}

const struct bus_dev_ops pcihp_ops = {
	.read = hp_read,
	.write = hp_write,
};

static uint32_t slot_bit(unsigned int slot)
{
	return slot < 32 ? (1u << slot) & SLOT_MASK : 0;
}

void pcihp_insert(struct pcihp *hp, unsigned int slot)
{
	pthread_mutex_lock(&hp->lock);
	hp->st.up |= slot_bit(slot);
	hp->st.gpe_sts |= GPE_BIT;
	pcihp_update_sci(hp);
	pthread_mutex_unlock(&hp->lock);
}

void pcihp_request_eject(struct pcihp *hp, unsigned int slot)
{
	pthread_mutex_lock(&hp->lock);
	hp->st.removing |= slot_bit(slot);
	hp->st.down |= slot_bit(slot);
	hp->st.gpe_sts |= GPE_BIT;
	pcihp_update_sci(hp);
	pthread_mutex_unlock(&hp->lock);
}

bool pcihp_removing(struct pcihp *hp, unsigned int slot)
{
	bool r;

	pthread_mutex_lock(&hp->lock);
	r = (hp->st.removing & slot_bit(slot)) != 0;
	pthread_mutex_unlock(&hp->lock);
	return r;
}

uint32_t pcihp_take_ejected(struct pcihp *hp)
{
	uint32_t v;

	pthread_mutex_lock(&hp->lock);
	v = hp->st.ejected;
	hp->st.ejected = 0;
	pthread_mutex_unlock(&hp->lock);
	return v;
}

void pcihp_get_state(struct pcihp *hp, struct pcihp_state *st)
{
	pthread_mutex_lock(&hp->lock);
	*st = hp->st;
	pthread_mutex_unlock(&hp->lock);
}

void pcihp_set_state(struct pcihp *hp, const struct pcihp_state *st)
{
	pthread_mutex_lock(&hp->lock);
	hp->st = *st;
	hp->st.up &= SLOT_MASK;
	hp->st.down &= SLOT_MASK;
	hp->st.removing &= SLOT_MASK;
	hp->st.ejected &= SLOT_MASK;
	hp->st.sci = (hp->st.gpe_sts & hp->st.gpe_en) != 0;
	pthread_mutex_unlock(&hp->lock);
}
