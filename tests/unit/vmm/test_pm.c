// SPDX-License-Identifier: MIT
/* ACPI PM1 (S5 poweroff), the reset control register and the i8042 reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "hw/i8042.h"
#include "hw/pm.h"

struct events {
	int poweroff, reset;
	int sci, sci_changes;
};

static void ev(void *o, enum pm_event e)
{
	struct events *x = o;

	if (e == PM_EVENT_POWEROFF)
		x->poweroff++;
	else
		x->reset++;
}

static void sci(void *o, int level)
{
	struct events *x = o;

	x->sci = level;
	x->sci_changes++;
}

static const struct pm_backend be = { .event = ev, .sci = sci };

static uint16_t rd16(struct pm *pm, unsigned int off)
{
	uint16_t v;

	pm_ops.read(pm, off, &v, 2);
	return v;
}

static void wr16(struct pm *pm, unsigned int off, uint16_t v)
{
	pm_ops.write(pm, off, &v, 2);
}

static void test_s5(void **state)
{
	struct events x = {0};
	struct pm pm;

	(void)state;
	pm_init(&pm, &be, &x);
	assert_int_equal(rd16(&pm, 4) & 1, 1); /* SCI_EN: ACPI mode */
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	wr16(&pm, 4, (uint16_t)(ACPI_S5_SLP_TYP << 10));
	assert_int_equal(x.poweroff, 0);
	wr16(&pm, 4, (uint16_t)(ACPI_S5_SLP_TYP << 10 | 0x2000));
	assert_int_equal(x.poweroff, 1);
	assert_int_equal(rd16(&pm, 4) & 0x2000, 0); /* SLP_EN reads 0 */
	/* Another sleep type is not soft-off. */
	wr16(&pm, 4, (uint16_t)(1 << 10 | 0x2000));
	assert_int_equal(x.poweroff, 1);
	/* Byte writes: high byte carries SLP_EN and SLP_TYP. */
	{
		uint8_t hi = (uint8_t)((ACPI_S5_SLP_TYP << 2) | 0x20);

		pm_ops.write(&pm, 5, &hi, 1);
	}
	assert_int_equal(x.poweroff, 2);
	assert_int_equal(x.reset, 0);
	pm_destroy(&pm);
}

static void test_status_enable(void **state)
{
	struct events x = {0};
	struct pm pm;

	(void)state;
	pm_init(&pm, &be, &x);
	pm.st.sts = 0x8101;
	wr16(&pm, 0, 0x0001); /* write one to clear */
	assert_int_equal(rd16(&pm, 0), 0x8100);
	wr16(&pm, 2, 0x0120);
	assert_int_equal(rd16(&pm, 2), 0x0120);
	pm_destroy(&pm);
}

static void test_reset_control(void **state)
{
	struct events x = {0};
	struct pm pm;

	(void)state;
	pm_init(&pm, &be, &x);
	pm_reset_control(&pm, 0x02);
	assert_int_equal(x.reset, 0);
	pm_reset_control(&pm, 0x06);
	assert_int_equal(x.reset, 1);
	pm_destroy(&pm);
}

static void kbd_reset(void *o)
{
	(*(int *)o)++;
}

static void test_i8042(void **state)
{
	struct i8042 k;
	uint8_t v;
	int resets = 0;

	(void)state;
	i8042_init(&k, kbd_reset, &resets);
	i8042_ops.read(&k, 4, &v, 1);
	assert_int_equal(v & 0x03, 0); /* nothing to read, ready for input */
	v = 0xaa;
	i8042_ops.write(&k, 4, &v, 1);
	i8042_ops.read(&k, 4, &v, 1);
	assert_int_equal(v & 1, 1);
	i8042_ops.read(&k, 0, &v, 1);
	assert_int_equal(v, 0x55);
	v = 0xfe;
	i8042_ops.write(&k, 4, &v, 1);
	assert_int_equal(resets, 1);
	/* Writing the output port with the reset line low also resets. */
	v = 0xd1;
	i8042_ops.write(&k, 4, &v, 1);
	v = 0xfe;
	i8042_ops.write(&k, 0, &v, 1);
	assert_int_equal(resets, 2);
	i8042_destroy(&k);
}

/* The power button: status bit, SCI only while enabled, cleared by writing 1. */
static void test_power_button(void **state)
{
	struct events x = { 0 };
	struct pm pm;

	(void)state;
	pm_init(&pm, &be, &x);
	pm_power_button(&pm);
	assert_true(rd16(&pm, 0) & PM1_STS_PWRBTN);
	assert_int_equal(x.sci, 0); /* not enabled: no interrupt */
	wr16(&pm, 2, PM1_STS_PWRBTN);  /* the guest enables it: the pending event fires */
	assert_int_equal(x.sci, 1);
	wr16(&pm, 0, PM1_STS_PWRBTN);  /* acknowledge */
	assert_int_equal(x.sci, 0);
	assert_false(rd16(&pm, 0) & PM1_STS_PWRBTN);
	pm_power_button(&pm);
	assert_int_equal(x.sci, 1);
	assert_int_equal(x.sci_changes, 3);
	assert_int_equal(x.poweroff, 0);
	pm_destroy(&pm);
}

/* Firmware boot: Q35's soft-off is SLP_TYP 0; the DSDT's 5 then is not. */
static void test_s5_type_q35(void **state)
{
	struct events x = {0};
	struct pm pm;

	(void)state;
	pm_init(&pm, &be, &x);
	wr16(&pm, 4, 0x2000); /* SLP_TYP 0 | SLP_EN: not soft-off by default */
	assert_int_equal(x.poweroff, 0);
	pm_set_s5_type(&pm, 0);
	wr16(&pm, 4, (ACPI_S5_SLP_TYP << 10) | 0x2000);
	assert_int_equal(x.poweroff, 0);
	wr16(&pm, 4, 0x2000);
	assert_int_equal(x.poweroff, 1);
	pm_destroy(&pm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_s5),
		cmocka_unit_test(test_status_enable),
		cmocka_unit_test(test_reset_control),
		cmocka_unit_test(test_i8042),
		cmocka_unit_test(test_power_button),
		cmocka_unit_test(test_s5_type_q35),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
