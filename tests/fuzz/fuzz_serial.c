// SPDX-License-Identifier: MIT
/*
 * The 8250 register model against arbitrary port traffic: each 3-byte record
 * is (op, offset, value): op bit 0 write/read, bit 1 push input bytes instead.
 */
#include <stdint.h>
#include <stddef.h>

#include "hw/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void irq(void *opaque, int level)
{
	int *last = opaque;

	/* The backend must only hear changes. */
	if (*last == level)
		__builtin_trap();
	*last = level;
}

static void tx(void *opaque, uint8_t b)
{
	(void)opaque;
	(void)b;
}

static const struct serial_backend be = {.irq = irq, .tx = tx};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct serial s;
	int level = 0;
	size_t i;

	serial_init(&s, &be, &level);
	for (i = 0; i + 3 <= size; i += 3) {
		uint8_t op = data[i], off = data[i + 1] & 7, v = data[i + 2];
		unsigned int len = 1u << ((op >> 2) & 1);

		if (op & 2) {
			serial_rx(&s, &data[i + 2], 1);
		} else if (op & 1) {
			uint8_t buf[2] = {v, v};

			if (off + len <= 8)
				serial_ops.write(&s, off, buf, len);
		} else {
			uint8_t buf[2];

			if (off + len <= 8)
				serial_ops.read(&s, off, buf, len);
		}
		if (s.st.rx_count > SERIAL_RX_FIFO)
			__builtin_trap();
	}
	serial_destroy(&s);
	return 0;
}
