// SPDX-License-Identifier: MIT
/* Fuzz the qcow2 parser and mapping (see fuzz_img.inc). */
#define FUZZ_FORMAT "qcow2"
#include "fuzz_img.inc"
