// SPDX-License-Identifier: MIT
/* Fuzz the vhdx parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "vhdx"
#include "fuzz_img.inc"
