// SPDX-License-Identifier: MIT
/* Fuzz the parallels parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "parallels"
#include "fuzz_img.inc"
