// SPDX-License-Identifier: MIT
/*
 * The client's half of an RFB stream, message by message (rfb_filter.h).
 *
 *   VERSION (12 bytes, "RFB 003.007\n" or 008) -> SECTYPE (1 byte) -> [AUTH (16
 *   bytes: a VNC authentication response)] -> INIT (1 byte, ClientInit) -> MSG ...
 *
 * In MSG, the first byte is the type; the fixed part's size follows from it (table
 * below; QEMU's type 255 from its second byte too), then the payload's size from the
 * fixed part. Every size is checked before it is used; nothing is allocated.
 */
#include "rfb_filter.h"

#include <errno.h>
#include <string.h>

enum { RFB_F_VERSION, RFB_F_SECTYPE, RFB_F_AUTH, RFB_F_INIT, RFB_F_MSG, RFB_F_DEAD };

void rfb_filter_init(struct rfb_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->phase = RFB_F_VERSION;
	f->hdr_need = 12;
}

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The fixed part's size of message type t (after its first 2 bytes for 255), 0 if
 * unknown; *input: it acts on the VM. */
static size_t msg_fixed(const uint8_t *hdr, size_t have, bool *input)
{
	*input = false;
	switch (hdr[0]) {
	case 0:
		return 20; /* SetPixelFormat */
	case 2:
		return 4; /* SetEncodings: + 4 x count */
	case 3:
		return 10; /* FramebufferUpdateRequest */
	case 4:
		*input = true;
		return 8; /* KeyEvent */
	case 5:
		*input = true;
		return 6; /* PointerEvent */
	case 6:
		*input = true;
		return 8; /* ClientCutText: + length */
	case 150:
		return 10; /* EnableContinuousUpdates */
	case 248:
		return 9; /* ClientFence: + length */
	case 250:
		*input = true;
		return 4; /* xvp: shutdown, reboot, reset */
	case 251:
		return 8; /* SetDesktopSize: + 16 x screens */
	case 255:	  /* QEMU: only the extended key event (subtype 0) */
		if (have < 2)
			return 2;
		*input = true;
		return hdr[1] == 0 ? 12 : 0;
	default:
		return 0;
	}
}

/* The payload's size of a whole fixed part, or -1 if refused (*why set). */
static int64_t msg_payload(const uint8_t *hdr, const char **why)
{
	uint32_t len;

	switch (hdr[0]) {
	case 2:
		return 4 * (int64_t)be16(hdr + 2);
	case 6:
		len = be32(hdr + 4);
		if (len & 0x80000000u) /* extended clipboard: the size negated */
			len = 0u - len;
		if (len > RFB_CUT_MAX) {
			*why = "The page sent a clipboard over 1 MiB.";
			return -1;
		}
		return len;
	case 248:
		return hdr[8];
	case 251:
		return 16 * (int64_t)hdr[6];
	default:
		return 0;
	}
}

/* A whole fixed part in f->hdr: decide and set up the message. -EPROTO if refused. */
static int fixed_done(struct rfb_filter *f, bool drop_input, const char **why)
{
	int64_t pay;

	switch (f->phase) {
	case RFB_F_VERSION:
		if (memcmp(f->hdr, "RFB 003.00", 10) || (f->hdr[10] != '7' && f->hdr[10] != '8') ||
		    f->hdr[11] != '\n') {
			/* 3.3 leaves the security type to the server: its stream can't be
			 * framed from the client's half alone. */
			*why = "The page did not speak RFB (VNC) 3.7 or 3.8.";
			return -EPROTO;
		}
		f->phase = RFB_F_SECTYPE;
		f->hdr_need = 1;
		return 0;
	case RFB_F_SECTYPE:
		if (f->hdr[0] != 1 && f->hdr[0] != 2) {
			*why = "The page chose a VNC security type plinthd does not pass on.";
			return -EPROTO;
		}
		f->phase = f->hdr[0] == 2 ? RFB_F_AUTH : RFB_F_INIT;
		f->hdr_need = f->hdr[0] == 2 ? 16 : 1;
		return 0;
	case RFB_F_AUTH:
		f->phase = RFB_F_INIT;
		f->hdr_need = 1;
		return 0;
	case RFB_F_INIT:
		f->phase = RFB_F_MSG;
		f->hdr_need = 1;
		return 0;
	default: {
		bool input;
		size_t need = msg_fixed(f->hdr, f->hdr_len, &input);

		if (!need) {
			*why = "The page sent a VNC message plinthd does not know.";
			return -EPROTO;
		}
		if (need > f->hdr_len) { /* more of the fixed part to come */
			f->hdr_need = need;
			return 1;
		}
		pay = msg_payload(f->hdr, why);
		if (pay < 0)
			return -EPROTO;
		f->left = (uint64_t)pay;
		f->drop = drop_input && input;
		f->dropped += f->drop;
		f->hdr_need = 1;
		return 0;
	}
	}
}

ssize_t rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t n, bool drop_input,
			uint8_t *out, const char **why)
{
	size_t i = 0, o = 0;

	if (f->phase == RFB_F_DEAD) {
		*why = "The page's VNC stream had already failed.";
		return -EPROTO;
	}
	while (i < n) {
		size_t take;
		int r;

		if (f->left) { /* the current message's payload */
			take = n - i < f->left ? n - i : (size_t)f->left;
			if (!f->drop) {
				memcpy(out + o, in + i, take);
				o += take;
			}
			i += take;
			f->left -= take;
			continue;
		}
		/* The fixed part (hdr_need <= RFB_HDR_MAX always: msg_fixed's table). */
		take = f->hdr_need - f->hdr_len;
		if (take > n - i)
			take = n - i;
		memcpy(f->hdr + f->hdr_len, in + i, take);
		f->hdr_len += take;
		i += take;
		if (f->hdr_len < f->hdr_need)
			break;
		r = fixed_done(f, drop_input, why);
		if (r < 0) {
			f->phase = RFB_F_DEAD;
			return r;
		}
		if (r > 0)
			continue; /* the same message's fixed part grew */
		/* Whole: pass it on (the handshake always; a message unless dropped). */
		if (!f->drop) {
			memcpy(out + o, f->hdr, f->hdr_len);
			o += f->hdr_len;
		}
		f->hdr_len = 0;
	}
	return (ssize_t)o;
}
