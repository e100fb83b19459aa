// SPDX-License-Identifier: MIT
/*
 * rfb-send SOCKET key TEXT | SOCKET pointer X Y MASK: a VNC viewer for tests that
 * types or points (tests/integration/display-vnc.sh). Connects to the Unix socket
 * SOCKET (retrying for 30 s), then either types TEXT as a US keyboard would (Shift
 * around upper case and shifted symbols, "\n" as Return, KEY_GAP_MS (default 30) ms
 * between keys), or moves the pointer to (X, Y) with buttons MASK. Exit 0 when all
 * was sent, 2 on a socket or protocol error or a character it cannot type.
 */
#include <stdio.h>
#include <time.h>

#include "rfb_client.h"

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	const char *gap = getenv("KEY_GAP_MS");
	struct rfb_frame f = { 0 };
	int fd = -1, r, tries;
	char bad = 0;

	bool key = argc == 4 && !strcmp(argv[2], "key");

	if (!key && !(argc == 6 && !strcmp(argv[2], "pointer"))) {
		fprintf(stderr, "usage: rfb-send SOCKET key TEXT | SOCKET pointer X Y MASK\n");
		return 2;
	}
	for (tries = 0; (fd = rfb_connect_unix(argv[1])) < 0 && tries < 150; tries++)
		pause_ms(200);
	if (fd < 0) {
		fprintf(stderr, "rfb-send: cannot connect to %s\n", argv[1]);
		return 2;
	}
	r = rfb_handshake(fd, &f, 5000);
	if (!r && key) {
		r = rfb_type(fd, argv[3], gap ? atol(gap) : 30, &bad);
		if (r == -EINVAL)
			fprintf(stderr, "rfb-send: cannot type 0x%02x\n", (uint8_t)bad);
	} else if (!r) {
		r = rfb_pointer(fd, (uint8_t)atoi(argv[5]), (uint16_t)atoi(argv[3]),
				(uint16_t)atoi(argv[4]));
	}
	/* Let the server read everything before the connection goes. */
	pause_ms(200);
	close(fd);
	free(f.px);
	if (r) {
		fprintf(stderr, "rfb-send: %s\n", strerror(-r));
		return 2;
	}
	return 0;
}
