// SPDX-License-Identifier: MIT
/* Fuzz the vpc parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "vpc"
#include "fuzz_img.inc"
