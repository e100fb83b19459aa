/* SPDX-License-Identifier: MIT */
/*
 * Typed device configurations and the device-class table.
 *
 * A device is described once, by a command-line option's argument ("--disk
 * path=a.qcow2,id=os,addr=4") or by a JSON object ({"kind": "disk", "path":
 * "a.qcow2", "id": "os", "addr": 4}); both go through the same key list of its
 * class and end in a struct dev_config that owns a typed copy (the class's own
 * struct, conf) and is never parsed again. Every device has:
 *
 *   id    given (id=, 1..31 of [A-Za-z0-9_-], starting with a letter), or
 *         generated as <class><n> (disk0, disk1, net0...) with n the lowest number
 *         that no other device of the machine has, in command-line order;
 *   slot  its PCI slot on bus 0: addr=N (1..31) when given, otherwise the lowest
 *         free slot in command-line order after every addr= is placed (slot 0 is
 *         the host bridge).
 *
 * Snapshots and migration streams record id -> slot; a restore or a migration
 * matches devices by id and refuses a slot that differs (vmstate.h).
 *
 * Adding a device kind: its device file defines one const struct dev_class (keys,
 * parse, to_json, create) and devices.c lists it in dev_classes[]; nothing else
 * (main.c builds its options from the table, vm.c creates from it, vmstate.c
 * names the option in its messages from it). See ARCHITECTURE.md.
 */
#ifndef PLINTH_VMM_DEVCONF_H
#define PLINTH_VMM_DEVCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define DEV_ID_MAX     32 /* bytes of an id, NUL included */
#define DEV_MAX_KEYS   8  /* keys of one class, id and addr not counted */
#define DEV_MAX_CLASSES 16 /* rows of dev_classes[] */
#define DEV_SLOT_FIRST 1  /* slot 0 is the host bridge */
#define DEV_SLOT_LAST  31
#define DEV_HELP_INDENT "                      " /* --help's second column */

struct pci_bus;
struct guest_mem;
struct virtio_pci;

/* One kind of device: a row of dev_classes[]. */
struct dev_class {
	const char *name;        /* "disk": the option is --disk, ids are disk0, disk1... */
	const char *synopsis;    /* the option's argument in --help ("path=FILE[,...]") */
	const char *help;        /* its --help lines, each DEV_HELP_INDENT "...\n" */
	bool arg_optional;       /* --rng: the option may stand alone */
	const char *flag_key;    /* a key that may be given as a bare word ("virtio"), or NULL */
	const char *const *keys; /* the class's keys (at most DEV_MAX_KEYS), id and addr aside */
	size_t nr_keys;
	/*
	 * Build the typed config from vals (one per key, NULL when absent; strings even
	 * from JSON): a malloc'd struct into *conf, owned by the dev_config. 0 or -EINVAL /
	 * -ENOMEM with one line logged that names opt ("--disk").
	 */
	int (*parse)(const char *opt, char *const *vals, void **conf);
	/* The config as a JSON object of its keys (strings, booleans, integers); NULL: no memory. */
	json_t *(*to_json)(const void *conf);
	void (*free)(void *conf);
	/*
	 * Create the device on bus from spec (the canonical "key=value,..." of to_json's
	 * keys, made by dev_config_parse*). create_incoming (or NULL: create) serves a
	 * migration's destination. 0 or -errno, logged.
	 */
	int (*create)(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out);
	int (*create_incoming)(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			       struct virtio_pci **out);
	/* Whether a VM re-created inside the jail can make it again (opens nothing by path). */
	bool (*reopens_in_jail)(const void *conf);
	/* Whether it takes the VMM's stdin (COM1 then keeps only the output). */
	bool (*uses_stdin)(const void *conf);
	bool io_connect;         /* its I/O thread connects sockets (SANDBOX_IO_CONNECT) */
	/* Whether creating it again (a guest reset) opens a TCP socket (NULL: no). */
	bool (*uses_inet)(const void *conf);
};

/* The table (devices.c), in the order --help lists the options. */
extern const struct dev_class *const dev_classes[];
extern const size_t dev_nr_classes;
/* The disk class, for the parts of the VMM that deal with images (leases, identities). */
extern const struct dev_class dev_class_disk;

/* The class called name, or NULL. */
const struct dev_class *dev_class_find(const char *name);

/* One device of the machine. Owns conf and spec. */
struct dev_config {
	const struct dev_class *cls;
	char id[DEV_ID_MAX];  /* "" until dev_configs_finish() generates it */
	int addr;             /* addr=, or -1: allocated */
	unsigned int slot;    /* the PCI slot (dev_configs_finish) */
	void *conf;           /* the class's typed config */
	char *spec;           /* canonical key=value list of conf, for cls->create */
};

/*
 * Parse one option's argument (NULL or "" for a bare --rng) into *d. 0 or -EINVAL /
 * -ENOMEM, one line logged naming the option; *d is left empty on error.
 */
int dev_config_parse_kv(const struct dev_class *cls, const char *spec, struct dev_config *d);
/*
 * Parse a JSON object {"kind": NAME, "id"?: ID, "addr"?: N, KEY: VALUE...} where
 * values are strings, booleans or integers. 0 or -EINVAL / -ENOMEM, one line logged.
 */
int dev_config_parse_json(const json_t *obj, struct dev_config *d);
/*
 * Once every device of the machine is parsed: refuse duplicate ids and addr=
 * clashes, generate the missing ids and give every device its slot. 0 or -EINVAL
 * with one line logged.
 */
int dev_configs_finish(struct dev_config *devs, unsigned int n);
/* {"kind", "id", "addr" (the PCI slot), keys...}, the form a device takes in PUT
 * /v1/vm/config: a new reference, or NULL (no memory). */
json_t *dev_config_to_json(const struct dev_config *d);
void dev_config_free(struct dev_config *d);
void dev_configs_free(struct dev_config *devs, unsigned int n);

/* Whether id is a valid device id (1..31 of [A-Za-z0-9_-], a letter first). */
bool dev_id_valid(const char *id);

/* A class's parse and to_json have their helpers in vmm/virtio/spec.h (spec_dup,
 * spec_flag, spec_json_*), which every device file can reach. */

#endif
