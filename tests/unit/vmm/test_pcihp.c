// SPDX-License-Identifier: MIT
/* The ACPI PCI hot-plug controller and its GPE0 block (vmm/hw/pcihp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/pcihp.h"

struct events {
	int sci, sci_changes, ejects;
};

static void sci(void *o, int level)
{
	struct events *x = o;

	x->sci = level;
	x->sci_changes++;
}

static void eject(void *o)
{
	((struct events *)o)->ejects++;
}

static const struct pcihp_backend be = { .sci = sci, .eject = eject };

static uint16_t gpe16(struct pcihp *hp, unsigned int off)
{
	uint16_t v;

	pcihp_gpe_ops.read(hp, off, &v, 2);
	return v;
}

static void gpe_wr8(struct pcihp *hp, unsigned int off, uint8_t v)
{
	pcihp_gpe_ops.write(hp, off, &v, 1);
}

static uint32_t rd32(struct pcihp *hp, unsigned int off)
{
	uint32_t v;

	pcihp_ops.read(hp, off, &v, 4);
	return v;
}

static void wr32(struct pcihp *hp, unsigned int off, uint32_t v)
{
	pcihp_ops.write(hp, off, &v, 4);
}

/* An insert sets PCIU and GPE0_STS.1; the SCI follows GPE0_EN; PCIU clears on read. */
static void test_insert(void **state)
{
	struct events x = {0};
	struct pcihp hp;

	(void)state;
	pcihp_init(&hp, &be, &x);
	pcihp_insert(&hp, 5);
	assert_int_equal(gpe16(&hp, 0), 1u << PCIHP_GPE_BIT);
	assert_int_equal(x.sci, 0); /* not enabled yet */
	gpe_wr8(&hp, 2, 1u << PCIHP_GPE_BIT);
	assert_int_equal(gpe16(&hp, 2), 1u << PCIHP_GPE_BIT);
	assert_int_equal(x.sci, 1);
	assert_int_equal(rd32(&hp, PCIHP_PCIU), 1u << 5);
	assert_int_equal(rd32(&hp, PCIHP_PCIU), 0);
	assert_int_equal(rd32(&hp, PCIHP_PCID), 0);
	/* Writing 0 to the status changes nothing; writing the bit clears it. */
	gpe_wr8(&hp, 0, 0);
	assert_int_equal(x.sci, 1);
	gpe_wr8(&hp, 0, 1u << PCIHP_GPE_BIT);
	assert_int_equal(gpe16(&hp, 0), 0);
	assert_int_equal(x.sci, 0);
	assert_int_equal(x.sci_changes, 2);
	pcihp_destroy(&hp);
}

/* An eject request sets PCID; only B0EJ of a slot being removed ejects it. */
static void test_eject(void **state)
{
	struct events x = {0};
	struct pcihp hp;

	(void)state;
	pcihp_init(&hp, &be, &x);
	gpe_wr8(&hp, 2, 1u << PCIHP_GPE_BIT);
	pcihp_request_eject(&hp, 3);
	assert_int_equal(x.sci, 1);
	assert_true(pcihp_removing(&hp, 3));
	assert_false(pcihp_removing(&hp, 4));
	assert_int_equal(rd32(&hp, PCIHP_PCID), 1u << 3);
	assert_int_equal(rd32(&hp, PCIHP_PCID), 0);
	/* The guest ejecting other slots (and slot 0) is ignored. */
	wr32(&hp, PCIHP_B0EJ, (1u << 4) | 1u);
	assert_int_equal(x.ejects, 0);
	assert_int_equal(pcihp_take_ejected(&hp), 0);
	/* Byte writes and reads of B0EJ do nothing. */
	{
		uint8_t b = 1u << 3;

		pcihp_ops.write(&hp, PCIHP_B0EJ, &b, 1);
	}
	assert_int_equal(x.ejects, 0);
	assert_int_equal(rd32(&hp, PCIHP_B0EJ), 0);
	wr32(&hp, PCIHP_B0EJ, 0xffffffffu);
	assert_int_equal(x.ejects, 1);
	assert_false(pcihp_removing(&hp, 3));
	assert_int_equal(pcihp_take_ejected(&hp), 1u << 3);
	assert_int_equal(pcihp_take_ejected(&hp), 0);
	/* A second eject of the same slot is nothing. */
	wr32(&hp, PCIHP_B0EJ, 1u << 3);
	assert_int_equal(x.ejects, 1);
	pcihp_destroy(&hp);
}

/* Hostile accesses: outside the block, across registers, odd sizes. */
static void test_bounds(void **state)
{
	struct events x = {0};
	struct pcihp hp;
	uint8_t buf[8];

	(void)state;
	pcihp_init(&hp, &be, &x);
	pcihp_insert(&hp, 31);
	pcihp_insert(&hp, 0);  /* the host bridge: never reported */
	pcihp_insert(&hp, 40); /* no such slot */
	memset(buf, 0xaa, sizeof(buf));
	pcihp_ops.read(&hp, 2, buf, 4); /* across PCIU and PCID */
	assert_int_equal(buf[0], 0);
	pcihp_ops.read(&hp, 12, buf, 4);
	assert_int_equal(buf[0], 0);
	pcihp_ops.read(&hp, 3, buf, 1); /* the top byte of PCIU, which clears it */
	assert_int_equal(buf[0], 0x80);
	assert_int_equal(rd32(&hp, PCIHP_PCIU), 0);
	pcihp_gpe_ops.read(&hp, 3, buf, 2); /* GPE0_EN's high byte, then past the block */
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[1], 0xff);
	memset(buf, 0xff, sizeof(buf));
	pcihp_gpe_ops.write(&hp, 2, buf, 4); /* only GPE0_EN's two bytes are written */
	assert_int_equal(gpe16(&hp, 2), 0xffff);
	assert_int_equal(x.sci, 1);
	pcihp_destroy(&hp);
}

/* The state round-trips; a restored state keeps slot 0 out and recomputes the level. */
static void test_state(void **state)
{
	struct events x = {0};
	struct pcihp hp;
	struct pcihp_state st;

	(void)state;
	pcihp_init(&hp, &be, &x);
	gpe_wr8(&hp, 2, 1u << PCIHP_GPE_BIT);
	pcihp_request_eject(&hp, 7);
	pcihp_get_state(&hp, &st);
	assert_int_equal(st.removing, 1u << 7);
	assert_int_equal(st.sci, 1);
	pcihp_destroy(&hp);

	pcihp_init(&hp, &be, &x);
	st.removing |= 1;
	st.sci = 7;
	pcihp_set_state(&hp, &st);
	assert_true(pcihp_removing(&hp, 7));
	pcihp_get_state(&hp, &st);
	assert_int_equal(st.removing, 1u << 7);
	assert_int_equal(st.sci, 1);
	wr32(&hp, PCIHP_B0EJ, 1u << 7);
	assert_int_equal(pcihp_take_ejected(&hp), 1u << 7);
	pcihp_destroy(&hp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert),
		cmocka_unit_test(test_eject),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
