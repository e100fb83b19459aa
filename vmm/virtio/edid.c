// SPDX-License-Identifier: MIT
/*
 * The EDID that virtio-gpu hands the guest (VIRTIO_GPU_CMD_GET_EDID): one 128-byte
 * base block, built from the preferred mode (edid.h). Linux takes the connector's
 * modes from it alone when the device offers VIRTIO_GPU_F_EDID, so the block must
 * carry every mode a guest may switch to; the preferred one comes first.
 *
 * Layout (offsets of the base block): 0 header, 8 vendor and product, 18 version,
 * 20 basic display parameters, 25 chromaticity, 35 established timings, 38 standard
 * timings, 54/72/90/108 four 18-byte descriptors, 126 extension count, 127 checksum.
 */
#include "edid.h"

#include <string.h>

#define EDID_MAX_ACTIVE	 4095 /* 12 bits per dimension in a detailed timing */
#define EDID_MAX_CLOCK	 65535 /* pixel clock, units of 10 kHz */
#define EDID_MIN_CLOCK	 1000 /* 10 MHz: below, parsers take a timing for garbage */
#define EDID_H_FRONT	 48 /* reduced blanking (VESA CVT 1.2), in pixels... */
#define EDID_H_SYNC	 32
#define EDID_H_BLANK	 160
#define EDID_V_FRONT	 3 /* ... and in lines */
#define EDID_V_SYNC	 6
#define EDID_V_BLANK	 35
#define EDID_DPI_MM_NUM	 254 /* millimetres per pixel at 96 dpi: 25.4 / 96 */
#define EDID_DPI_MM_DEN	 960

/* A manufacturer id: three letters, five bits each, big-endian ("PLN"). */
static void vendor(uint8_t *p, const char id[3])
{
	uint16_t v = (uint16_t)(((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@'));

	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* sRGB's primaries and white point as 10-bit fractions (value * 1024, rounded). */
static void chromaticity(uint8_t *p)
{
	/* red x, y; green x, y; blue x, y; white x, y */
	static const uint16_t c[8] = { 655, 338, 307, 614, 154, 61, 320, 337 };
	int i;

	p[0] = (uint8_t)((c[0] & 3) << 6 | (c[1] & 3) << 4 | (c[2] & 3) << 2 | (c[3] & 3));
	p[1] = (uint8_t)((c[4] & 3) << 6 | (c[5] & 3) << 4 | (c[6] & 3) << 2 | (c[7] & 3));
	for (i = 0; i < 8; i++)
		p[2 + i] = (uint8_t)(c[i] >> 2);
}

/* A standard timing: width (256..2288, a multiple of 8), aspect code, 60 Hz. */
static void standard(uint8_t *p, uint32_t width, uint8_t aspect)
{
	p[0] = (uint8_t)(width / 8 - 31);
	p[1] = (uint8_t)(aspect << 6 | (60 - 60));
}

static void detailed(uint8_t *p, uint32_t w, uint32_t h)
{
	uint32_t ht = w + EDID_H_BLANK, vt = h + EDID_V_BLANK, hz = 60, clock, wmm, hmm;

	/* 10 kHz units; a mode too large for 60 Hz gets the highest rate that fits. */
	while (hz > 1 && (uint64_t)ht * vt * hz > (uint64_t)EDID_MAX_CLOCK * 10000)
		hz--;
	clock = (uint32_t)(((uint64_t)ht * vt * hz + 9999) / 10000);
	if (clock > EDID_MAX_CLOCK)
		clock = EDID_MAX_CLOCK;
	wmm = w * EDID_DPI_MM_NUM / EDID_DPI_MM_DEN;
	hmm = h * EDID_DPI_MM_NUM / EDID_DPI_MM_DEN;
	p[0] = (uint8_t)clock;
	p[1] = (uint8_t)(clock >> 8);
	p[2] = (uint8_t)w;
	p[3] = (uint8_t)EDID_H_BLANK;
	p[4] = (uint8_t)((w >> 8) << 4 | (EDID_H_BLANK >> 8));
	p[5] = (uint8_t)h;
	p[6] = (uint8_t)EDID_V_BLANK;
	p[7] = (uint8_t)((h >> 8) << 4 | (EDID_V_BLANK >> 8));
	p[8] = (uint8_t)EDID_H_FRONT;
	p[9] = (uint8_t)EDID_H_SYNC;
	p[10] = (uint8_t)((EDID_V_FRONT & 15) << 4 | (EDID_V_SYNC & 15));
	p[11] = (uint8_t)((EDID_H_FRONT >> 8) << 6 | (EDID_H_SYNC >> 8) << 4 |
			  (EDID_V_FRONT >> 4) << 2 | (EDID_V_SYNC >> 4));
	p[12] = (uint8_t)wmm;
	p[13] = (uint8_t)hmm;
	p[14] = (uint8_t)((wmm >> 8) << 4 | (hmm >> 8));
	p[17] = 0x1a; /* digital separate sync, hsync +, vsync - (reduced blanking's) */
}

/* A display descriptor of type tag holding text (up to 13 bytes, ended by a newline). */
static void text(uint8_t *p, uint8_t tag, const char *s)
{
	size_t n = strlen(s);

	p[3] = tag;
	memset(p + 5, ' ', 13);
	memcpy(p + 5, s, n);
	p[5 + n] = '\n';
}

bool edid_build(uint32_t width, uint32_t height, uint8_t out[EDID_BLOCK])
{
	static const uint8_t header[8] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
	uint8_t sum = 0;
	int i;

	memset(out, 0, EDID_BLOCK);
	if (!width || !height || width > EDID_MAX_ACTIVE || height > EDID_MAX_ACTIVE ||
	    (uint64_t)(width + EDID_H_BLANK) * (height + EDID_V_BLANK) * 60 <
		    (uint64_t)EDID_MIN_CLOCK * 10000)
		return false;
	memcpy(out, header, sizeof(header));
	vendor(out + 8, "PLN");
	out[10] = 0x01;    /* product 1, serial 0 */
	out[17] = 36;      /* made in 2026 (1990 + 36), week unspecified */
	out[18] = 1;       /* EDID 1.4 */
	out[19] = 4;
	out[20] = 0xa0;    /* digital input, 8 bits per primary, interface undefined */
	out[21] = (uint8_t)(width * EDID_DPI_MM_NUM / EDID_DPI_MM_DEN / 10); /* cm */
	out[22] = (uint8_t)(height * EDID_DPI_MM_NUM / EDID_DPI_MM_DEN / 10);
	out[23] = 120;     /* gamma 2.2: (2.2 - 1) * 100 */
	out[24] = 0x06;    /* RGB 4:4:4, sRGB default, preferred mode is native */
	chromaticity(out + 25);
	out[35] = 0x21;    /* established: 640x480 and 800x600 at 60 Hz */
	out[36] = 0x08;    /* 1024x768 at 60 Hz */
	for (i = 0; i < 8; i++) /* standard timings: unused is 01 01 */
		out[38 + 2 * i] = out[39 + 2 * i] = 0x01;
	standard(out + 38, 1280, 0); /* 1280x800 (16:10) */
	standard(out + 40, 1280, 2); /* 1280x1024 (5:4) */
	standard(out + 42, 1600, 1); /* 1600x1200 (4:3) */
	standard(out + 44, 1920, 3); /* 1920x1080 (16:9) */
	standard(out + 46, 1440, 0); /* 1440x900 (16:10) */
	detailed(out + 54, width, height);
	text(out + 72, 0xfc, "plinth");   /* monitor name */
	text(out + 90, 0xff, "0");        /* serial number */
	out[108 + 3] = 0x10;              /* dummy descriptor */
	for (i = 0; i < EDID_BLOCK - 1; i++)
		sum = (uint8_t)(sum + out[i]);
	out[EDID_BLOCK - 1] = (uint8_t)(0x100 - sum);
	return true;
}
