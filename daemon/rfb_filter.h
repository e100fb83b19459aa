/* SPDX-License-Identifier: MIT */
/*
 * The client-to-server half of an RFB (VNC) stream, message by message (RFC 6143),
 * as the web console's display proxy sees it (web_ws.c): the browser's bytes, hostile.
 * It tracks message boundaries across any split of the stream and, when asked, drops
 * the messages that act on the VM (KeyEvent, PointerEvent, ClientCutText, xvp, QEMU's
 * extended key event): libvncserver's view-only mode is per server, not per viewer of
 * a socket, so a viewer's input is taken out here. What it cannot frame (RFB 3.3, a security
 * type other than None or VNC authentication, an unknown message type, a clipboard
 * over RFB_CUT_MAX) ends the stream: rfb_filter_feed returns -EPROTO with a sentence.
 *
 * Pure: no I/O, no allocation; fuzzed (tests/fuzz/fuzz_rfb_filter.c).
 */
#ifndef PLINTH_DAEMON_RFB_FILTER_H
#define PLINTH_DAEMON_RFB_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RFB_HDR_MAX 20	       /* the longest fixed part of a message (SetPixelFormat) */
#define RFB_CUT_MAX (1u << 20) /* a clipboard larger than this ends the stream */

struct rfb_filter {
	int phase;		  /* RFB_F_* (rfb_filter.c) */
	uint8_t hdr[RFB_HDR_MAX]; /* the current message's fixed part, hdr[0..hdr_len) */
	size_t hdr_len, hdr_need;
	uint64_t left;	  /* bytes of the current message's payload still to come */
	bool drop;	  /* the current message is left out */
	uint64_t dropped; /* messages left out so far */
};

void rfb_filter_init(struct rfb_filter *f);

/*
 * Feed the next n bytes of the client's stream; the bytes to pass on go to out, which
 * has room for n + RFB_HDR_MAX (a message's fixed part is held back until it is whole).
 * drop_input: leave out the messages that act on the VM. Returns how many bytes were
 * written to out, or -EPROTO with *why set to one sentence (the stream must end).
 */
ssize_t rfb_filter_feed(struct rfb_filter *f, const uint8_t *in, size_t n, bool drop_input,
			uint8_t *out, const char **why);

#endif
