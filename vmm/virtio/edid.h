/* SPDX-License-Identifier: MIT */
#ifndef PLINTH_VIRTIO_EDID_H
#define PLINTH_VIRTIO_EDID_H

#include <stdbool.h>
#include <stdint.h>

#define EDID_BLOCK 128

/*
 * An EDID 1.4 base block (VESA E-EDID, release A rev. 2) for a monitor named "plinth"
 * whose preferred mode is width x height: a detailed timing with reduced blanking at
 * 60 Hz (less when the pixel clock would pass EDID's 655.35 MHz), the established
 * 640x480, 800x600 and 1024x768 and a few standard modes beside it, sRGB colours,
 * a physical size for 96 dots per inch. false when the mode does not fit a detailed
 * timing (width or height above 4095) or is so small that its pixel clock at 60 Hz
 * stays under 10 MHz (about 400x300), which EDID parsers take for garbage: the
 * caller then offers no EDID at all, and the guest falls back to the display info.
 */
bool edid_build(uint32_t width, uint32_t height, uint8_t out[EDID_BLOCK]);

#endif
