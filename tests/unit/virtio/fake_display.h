/* SPDX-License-Identifier: MIT */
/* For the virtio-gpu tests and fuzz target: a display backend without a thread. */
#ifndef PLINTH_TESTS_VIRTIO_FAKE_DISPLAY_H
#define PLINTH_TESTS_VIRTIO_FAKE_DISPLAY_H

#include "gpu.h"

static inline int fake_display_spawn(void *opaque, int (*hook)(void *), void *hook_opaque)
{
	(void)opaque;
	(void)hook;
	(void)hook_opaque;
	return 0;
}

#endif
