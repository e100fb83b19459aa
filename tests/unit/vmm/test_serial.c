// SPDX-License-Identifier: MIT
/* The 8250 register model, driven as Linux's 8250 driver drives it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/serial.h"

struct fake {
	int level, irq_calls, drained;
	uint8_t out[256];
	size_t n_out;
};

static void f_irq(void *o, int level)
{
	struct fake *f = o;

	assert_int_not_equal(level, f->level); /* only changes are reported */
	f->level = level;
	f->irq_calls++;
}

static void f_tx(void *o, uint8_t b)
{
	struct fake *f = o;

	f->out[f->n_out++] = b;
}

static void f_rx_space(void *o)
{
	((struct fake *)o)->drained++;
}

static const struct serial_backend be = {f_irq, f_tx, f_rx_space};

static uint8_t rd(struct serial *s, unsigned int reg)
{
	uint8_t v;

	serial_ops.read(s, reg, &v, 1);
	return v;
}

static void wr(struct serial *s, unsigned int reg, uint8_t v)
{
	serial_ops.write(s, reg, &v, 1);
}

static void test_tx_and_lsr(void **state)
{
	struct fake f = {0};
	struct serial s;

	(void)state;
	serial_init(&s, &be, &f);
	assert_int_equal(rd(&s, 5) & 0x60, 0x60); /* THRE | TEMT */
	wr(&s, 0, 'h');
	wr(&s, 0, 'i');
	assert_int_equal(f.n_out, 2);
	assert_memory_equal(f.out, "hi", 2);
	assert_int_equal(f.level, 0); /* no interrupts enabled */
	assert_int_equal(rd(&s, 2), 0x01);
	serial_destroy(&s);
}

static void test_thre_interrupt(void **state)
{
	struct fake f = {0};
	struct serial s;

	(void)state;
	serial_init(&s, &be, &f);
	wr(&s, 2, 0x01); /* FIFO on: IIR bits 7:6 set */
	/* Enabling THRI with THR empty raises it at once (no UART_BUG_THRE). */
	wr(&s, 1, 0x02);
	assert_int_equal(f.level, 1);
	assert_int_equal(rd(&s, 2), 0xc2);
	/* Reading IIR acknowledged it. */
	assert_int_equal(f.level, 0);
	assert_int_equal(rd(&s, 2), 0xc1);
	/* Writing THR arms it again. */
	wr(&s, 0, 'x');
	assert_int_equal(f.level, 1);
	wr(&s, 1, 0x00);
	assert_int_equal(f.level, 0);
	serial_destroy(&s);
}

static void test_rx(void **state)
{
	struct fake f = {0};
	uint8_t buf[100];
	struct serial s;
	size_t i;

	(void)state;
	serial_init(&s, &be, &f);
	wr(&s, 1, 0x01); /* RX interrupt */
	assert_int_equal(serial_rx(&s, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(f.level, 1);
	assert_int_equal(rd(&s, 5) & 1, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x04);
	assert_int_equal(rd(&s, 0), 'a');
	assert_int_equal(f.drained, 0);
	assert_int_equal(rd(&s, 0), 'b');
	assert_int_equal(f.drained, 1);
	assert_int_equal(rd(&s, 5) & 1, 0);
	assert_int_equal(f.level, 0);
	/* The FIFO holds SERIAL_RX_FIFO bytes; the rest is refused, not lost. */
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(serial_rx(&s, buf, sizeof(buf)), SERIAL_RX_FIFO);
	assert_int_equal(serial_rx(&s, buf, 1), 0);
	for (i = 0; i < SERIAL_RX_FIFO; i++)
		assert_int_equal(rd(&s, 0), 'z');
	assert_int_equal(rd(&s, 5) & 1, 0);
	/* FCR clears the receive FIFO. */
	serial_rx(&s, buf, 3);
	wr(&s, 2, 0x03);
	assert_int_equal(rd(&s, 5) & 1, 0);
	serial_destroy(&s);
}

static void test_dlab_and_scratch(void **state)
{
	struct fake f = {0};
	struct serial s;

	(void)state;
	serial_init(&s, &be, &f);
	wr(&s, 3, 0x83); /* DLAB, 8N1 */
	wr(&s, 0, 0x01);
	wr(&s, 1, 0x00);
	assert_int_equal(rd(&s, 0), 0x01);
	assert_int_equal(rd(&s, 1), 0x00);
	assert_int_equal(f.n_out, 0); /* divisor writes are not data */
	wr(&s, 3, 0x03);
	assert_int_equal(rd(&s, 3), 0x03);
	assert_int_equal(rd(&s, 1), 0x00); /* IER again */
	wr(&s, 7, 0x5a);
	assert_int_equal(rd(&s, 7), 0x5a);
	/* LSR and MSR ignore writes. */
	wr(&s, 5, 0x00);
	assert_int_equal(rd(&s, 5) & 0x60, 0x60);
	serial_destroy(&s);
}

static void test_loopback(void **state)
{
	struct fake f = {0};
	struct serial s;

	(void)state;
	serial_init(&s, &be, &f);
	/* Linux's probe: MCR = LOOP | OUT2 | RTS... expects MSR & 0xf0 == 0x90 for 0x1a. */
	wr(&s, 4, 0x1a);
	assert_int_equal(rd(&s, 6) & 0xf0, 0x90);
	wr(&s, 0, 'L');
	assert_int_equal(f.n_out, 0); /* not transmitted */
	assert_int_equal(rd(&s, 5) & 1, 1);
	assert_int_equal(rd(&s, 0), 'L');
	/* Input from outside is not heard in loopback. */
	assert_int_equal(serial_rx(&s, (const uint8_t *)"q", 1), 0);
	wr(&s, 4, 0x0b);
	assert_int_equal(rd(&s, 6) & 0xf0, 0xb0);
	serial_destroy(&s);
}

static void test_wide_access(void **state)
{
	struct fake f = {0};
	struct serial s;
	uint8_t v[2] = {'a', 0x00};

	(void)state;
	serial_init(&s, &be, &f);
	/* A 2-byte write at 0 is THR then IER. */
	serial_ops.write(&s, 0, v, 2);
	assert_int_equal(f.n_out, 1);
	assert_int_equal(rd(&s, 1), 0);
	serial_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_and_lsr), cmocka_unit_test(test_thre_interrupt),
		cmocka_unit_test(test_rx),	   cmocka_unit_test(test_dlab_and_scratch),
		cmocka_unit_test(test_loopback),   cmocka_unit_test(test_wide_access),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
