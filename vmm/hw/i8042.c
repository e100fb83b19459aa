// SPDX-License-Identifier: MIT
#include "i8042.h"

#include <string.h>

#define I8042_DATA 0
#define I8042_CMD  4

#define STS_OUT_FULL 0x01
#define STS_SYSFLAG  0x04

#define CMD_READ_CMD_BYTE  0x20
#define CMD_WRITE_CMD_BYTE 0x60
#define CMD_SELF_TEST	   0xaa
#define CMD_WRITE_OUTPUT   0xd1
#define CMD_PULSE_RESET	   0xfe

void i8042_init(struct i8042 *k, void (*reset)(void *opaque), void *opaque)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->reset = reset;
	k->opaque = opaque;
	k->st.cmd_byte = 0x30; /* both ports disabled, no interrupts */
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

static void i8042_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct i8042 *k = opaque;
	uint8_t v = 0xff;

	pthread_mutex_lock(&k->lock);
	if (off == I8042_DATA) {
		v = k->st.out;
		k->st.out_full = 0;
	} else if (off == I8042_CMD) {
		v = STS_SYSFLAG | (k->st.out_full ? STS_OUT_FULL : 0);
	}
	pthread_mutex_unlock(&k->lock);
	memset(data, v, len);
}

static void i8042_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct i8042 *k = opaque;
	uint8_t v = *(const uint8_t *)data;
	int reset = 0;

	pthread_mutex_lock(&k->lock);
	if (off == I8042_CMD) {
		k->st.pending_cmd = 0;
		switch (v) {
		case CMD_READ_CMD_BYTE:
			k->st.out = k->st.cmd_byte;
			k->st.out_full = 1;
			break;
		case CMD_SELF_TEST:
			k->st.out = 0x55;
			k->st.out_full = 1;
			break;
		case CMD_WRITE_CMD_BYTE:
		case CMD_WRITE_OUTPUT:
			k->st.pending_cmd = v;
			break;
		case CMD_PULSE_RESET:
			reset = 1;
			break;
		default:
			break;
		}
	} else if (off == I8042_DATA) {
		if (k->st.pending_cmd == CMD_WRITE_CMD_BYTE)
			k->st.cmd_byte = v;
		else if (k->st.pending_cmd == CMD_WRITE_OUTPUT && !(v & 1))
			reset = 1; /* output port bit 0 is the CPU reset line, active low */
		k->st.pending_cmd = 0;
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

const struct bus_dev_ops i8042_ops = {
	.read = i8042_read,
	.write = i8042_write,
};
