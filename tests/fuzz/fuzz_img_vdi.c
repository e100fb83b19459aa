// SPDX-License-Identifier: MIT
/* Fuzz the vdi parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "vdi"
#include "fuzz_img.inc"
