// SPDX-License-Identifier: MIT
#include "serial.h"

#include <string.h>

/* Register offsets; DLAB (LCR bit 7) swaps 0/1 for the divisor latch. */
#define UART_RX	 0
#define UART_TX	 0
#define UART_IER 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI	 0x08

#define IIR_NO_INT 0x01
#define IIR_MSI	   0x00
#define IIR_THRI   0x02
#define IIR_RDI	   0x04
#define IIR_RLSI   0x06
#define IIR_FIFO   0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR	 0x01
#define LSR_OE	 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_CTS	 0x10
#define MSR_DSR	 0x20
#define MSR_RI	 0x40
#define MSR_DCD	 0x80

void serial_init(struct serial *s, const struct serial_backend *be, void *opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->be = be;
	s->opaque = opaque;
	s->st.lsr = LSR_THRE | LSR_TEMT;
	s->st.msr = MSR_DCD | MSR_DSR | MSR_CTS; /* a terminal is attached */
	s->st.mcr = MCR_OUT2;
	s->st.dll = 12; /* 9600 baud */
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

static uint8_t serial_iir(const struct serial_state *st)
{
	uint8_t iir = IIR_NO_INT;

	if ((st->ier & IER_RLSI) && (st->lsr & LSR_OE))
		iir = IIR_RLSI;
	else if ((st->ier & IER_RDI) && st->rx_count)
		iir = IIR_RDI;
	else if ((st->ier & IER_THRI) && st->thri_pending)
		iir = IIR_THRI;
	else if ((st->ier & IER_MSI) && (st->msr & 0x0f))
		iir = IIR_MSI;
	if (st->fcr & FCR_ENABLE)
		iir |= IIR_FIFO;
	return iir;
}

/* Recompute the interrupt output and tell the backend when it changes. Lock held. */
static void serial_update_irq(struct serial *s)
{
	uint8_t level = !(serial_iir(&s->st) & IIR_NO_INT);

	if (level != s->st.irq_level) {
		s->st.irq_level = level;
		if (s->be && s->be->irq)
			s->be->irq(s->opaque, level);
	}
}

/* Lock held. Returns 0 when the FIFO is full (overrun). */
static int rx_push(struct serial_state *st, uint8_t b)
{
	if (st->rx_count == SERIAL_RX_FIFO) {
		st->lsr |= LSR_OE;
		return 0;
	}
	st->rx[(st->rx_head + st->rx_count) % SERIAL_RX_FIFO] = b;
	st->rx_count++;
	st->lsr |= LSR_DR;
	return 1;
}

/* Modem status as seen in loopback: outputs wired back to inputs. */
static uint8_t loop_msr(uint8_t mcr)
{
	uint8_t m = 0;

	if (mcr & MCR_RTS)
		m |= MSR_CTS;
	if (mcr & MCR_DTR)
		m |= MSR_DSR;
	if (mcr & MCR_OUT1)
		m |= MSR_RI;
	if (mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

static uint8_t serial_read_reg(struct serial *s, unsigned int reg, int *drained)
{
	struct serial_state *st = &s->st;
	uint8_t v = 0, iir;

	switch (reg) {
	case UART_RX:
		if (st->lcr & LCR_DLAB)
			return st->dll;
		if (st->rx_count) {
			v = st->rx[st->rx_head];
			st->rx_head = (uint8_t)((st->rx_head + 1) % SERIAL_RX_FIFO);
			st->rx_count--;
			if (!st->rx_count) {
				st->lsr &= (uint8_t)~LSR_DR;
				*drained = 1;
			}
		}
		return v;
	case UART_IER:
		return (st->lcr & LCR_DLAB) ? st->dlm : st->ier;
	case UART_IIR:
		iir = serial_iir(st);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((iir & 0x0f) == IIR_THRI)
			st->thri_pending = 0;
		return iir;
	case UART_LCR:
		return st->lcr;
	case UART_MCR:
		return st->mcr;
	case UART_LSR:
		v = st->lsr;
		st->lsr &= (uint8_t)~LSR_OE;
		return v;
	case UART_MSR:
		v = st->msr;
		st->msr &= 0xf0; /* delta bits clear on read */
		return v;
	default:
		return st->scr;
	}
}

static void serial_write_reg(struct serial *s, unsigned int reg, uint8_t v)
{
	struct serial_state *st = &s->st;
	uint8_t old;

	switch (reg) {
	case UART_TX:
		if (st->lcr & LCR_DLAB) {
			st->dll = v;
			break;
		}
		if (st->mcr & MCR_LOOP)
			rx_push(st, v);
		else if (s->be && s->be->tx)
			s->be->tx(s->opaque, v);
		/* Transmission is instantaneous: THR is empty again. */
		st->thri_pending = 1;
		break;
	case UART_IER:
		if (st->lcr & LCR_DLAB) {
			st->dlm = v;
			break;
		}
		old = st->ier;
		st->ier = v & 0x0f;
		/* Enabling the THR-empty interrupt with THR empty raises it at once. */
		if ((st->ier & IER_THRI) && !(old & IER_THRI))
			st->thri_pending = 1;
		break;
	case UART_FCR:
		if (v & FCR_CLEAR_RX) {
			st->rx_count = 0;
			st->rx_head = 0;
			st->lsr &= (uint8_t)~LSR_DR;
		}
		st->fcr = v & 0xc9; /* enable, DMA mode, trigger level */
		break;
	case UART_LCR:
		st->lcr = v;
		break;
	case UART_MCR:
		old = st->mcr;
		st->mcr = v & 0x1f;
		if (st->mcr & MCR_LOOP) {
			uint8_t m = loop_msr(st->mcr);

			st->msr = (uint8_t)(m | (((st->msr ^ m) >> 4) & 0x0f) | (st->msr & 0x0f));
		} else if (old & MCR_LOOP) {
			st->msr = MSR_DCD | MSR_DSR | MSR_CTS;
		}
		break;
	case UART_LSR:
	case UART_MSR:
		break; /* read-only */
	default:
		st->scr = v;
		break;
	}
}

static void serial_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct serial *s = opaque;
	uint8_t *p = data;
	int drained = 0;
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		p[i] = serial_read_reg(s, (unsigned int)((off + i) & 7), &drained);
	serial_update_irq(s);
	if (drained && s->be && s->be->rx_space)
		s->be->rx_space(s->opaque);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct serial *s = opaque;
	const uint8_t *p = data;
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		serial_write_reg(s, (unsigned int)((off + i) & 7), p[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

const struct bus_dev_ops serial_ops = {
	.read = serial_read,
	.write = serial_write,
};

size_t serial_rx(struct serial *s, const uint8_t *buf, size_t n)
{
	size_t i = 0;

	pthread_mutex_lock(&s->lock);
	/* In loopback the receiver only hears the transmitter. */
	if (!(s->st.mcr & MCR_LOOP)) {
		while (i < n && s->st.rx_count < SERIAL_RX_FIFO)
			rx_push(&s->st, buf[i++]);
		serial_update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return i;
}
