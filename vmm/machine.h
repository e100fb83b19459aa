/* SPDX-License-Identifier: MIT */
/*
 * The machine's own settings (boot source, vCPUs, memory) and its devices, with one
 * set of rules whichever way they come: `plinth run`'s options (main.c) or the body
 * of the control API's PUT /v1/vm/config before boot (vmm/preboot.c, docs/api.yaml).
 * Both fill the same struct vm_config; the devices go through devconf.h's typed
 * configs (the option's key=value list, or the same keys as a JSON object).
 *
 * The JSON schema (strict: an unknown key, a wrong type, a NUL or an over-long
 * string is refused with one line):
 *   {"kernel": PATH, "initrd": PATH, "cmdline": STRING,      the options' names,
 *    "firmware": PATH, "firmware_vars": PATH,                 '-' written '_'
 *    "cpus": N, "memory": SIZE ("512M") or bytes, "no_reboot": BOOL,
 *    "devices": [{"kind": "disk", "path": ..., "id": ...}, ...]}
 * Paths are as trusted as the command line's (the socket is its owner's).
 */
#ifndef PLINTH_VMM_MACHINE_H
#define PLINTH_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "vm.h"

#define MACHINE_DEFAULT_MEMORY  (512 * MiB)
#define MACHINE_MIN_MEMORY      (32 * MiB)
#define MACHINE_DEFAULT_CMDLINE "console=ttyS0"
#define MACHINE_STR_MAX         4096 /* bytes of a JSON string (path, cmdline), NUL included */

/* The defaults of a machine nobody configured yet (no boot source, no devices). */
void machine_defaults(struct vm_config *cfg);

/*
 * val as the number of vCPUs or the memory size. 0, or -EINVAL with the reason in
 * err, worded to follow the option's name ("must be a number from 1 to 64, not '0'").
 */
int machine_cpus(const char *val, unsigned int *out, char *err, size_t errlen);
int machine_memory(const char *val, uint64_t *out, char *err, size_t errlen);

/*
 * The boot source's rules: firmware excludes kernel and initrd; firmware vars need
 * firmware; with api, a kernel or a firmware is required (the command line words
 * that one itself). Names are the options' ("--firmware-vars") or, with api, the
 * JSON keys ("firmware_vars"). 0 or -EINVAL with the reason in err.
 */
int machine_check_boot(const struct vm_config *cfg, bool api, char *err, size_t errlen);

/* Take note of device d, just added to cfg (a console on stdio takes stdin from COM1). */
void machine_note_device(struct vm_config *cfg, const struct dev_config *d);

/* A machine parsed from JSON: cfg's strings point into str[], which it owns with the devices. */
struct machine_conf {
	struct vm_config cfg;
	char *str[5]; /* kernel, initrd, cmdline, firmware, firmware_vars (malloc'd or NULL) */
};

/*
 * Parse obj (the schema above) into *mc, checked as `plinth run` checks its options,
 * devices finished (ids generated, slots given). 0, or -EINVAL / -ENOMEM with one
 * line logged; *mc is left empty (machine_conf_free is harmless) either way.
 */
int machine_conf_parse_json(const json_t *obj, struct machine_conf *mc);
void machine_conf_free(struct machine_conf *mc);

/*
 * The machine as GET /v1/vm shows it, in the very shape PUT /v1/vm/config takes (a
 * config read back can be PUT again): {"kernel"?, "firmware"?, "firmware_vars"?,
 * "initrd"?, "cmdline", "cpus", "memory" (bytes), "no_reboot", "devices": [{"kind",
 * "id", "addr" (its PCI slot), keys...}]}. NULL: no memory.
 */
json_t *machine_config_json(const struct vm_config *cfg);

#endif
