// SPDX-License-Identifier: MIT
/* Fuzz the vmdk parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "vmdk"
#include "fuzz_img.inc"
