// SPDX-License-Identifier: MIT
/*
 * The device-class table. Each class (its typed config, options and constructor) is
 * defined beside its device (vmm/virtio/<device>.c, vmm/display/display.c); adding one
 * is its file and one row in DEV_CLASSES below (ARCHITECTURE.md, "Recipe: adding a
 * device"). The row's place is the order --help lists the options in.
 */
#include "devconf.h"
#include "util.h"

#define DEV_CLASSES(X) X(disk) X(net) X(console) X(rng) X(balloon) X(vsock) X(display)

#define DEV_DECLARE(name) extern const struct dev_class dev_class_##name;
#define DEV_ROW(name)     &dev_class_##name,
DEV_CLASSES(DEV_DECLARE)

const struct dev_class *const dev_classes[] = { DEV_CLASSES(DEV_ROW) };
const size_t dev_nr_classes = ARRAY_SIZE(dev_classes);
_Static_assert(ARRAY_SIZE(dev_classes) <= DEV_MAX_CLASSES, "raise DEV_MAX_CLASSES");
