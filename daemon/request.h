/* SPDX-License-Identifier: MIT */
/*
 * plinthd's API requests (docs/plinthd.yaml): routing and strict validation of
 * method + path + query + JSON body into one struct pd_request. Pure (no I/O, no
 * globals): unit-tested and fuzzed. The same validator reads a VM definition back
 * from the inventory (vm_def_parse), so what is stored is what was accepted.
 *
 * A refusal is an HTTP status (400, 404, 405, 413) and one line in err->msg.
 */
#ifndef PLINTH_DAEMON_REQUEST_H
#define PLINTH_DAEMON_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

#define PD_PATH_MAX	 4096	    /* a host path, NUL included */
#define PD_CMDLINE_MAX	 4096	    /* a kernel command line, NUL included */
#define PD_DISKS_MAX	 8
#define PD_NICS_MAX	 8
#define PD_CPUS_MAX	 64
#define PD_MEMORY_MIN	 32	    /* MiB */
#define PD_MEMORY_MAX	 (1 << 20)  /* MiB (1 TiB) */
#define PD_BODY_MAX	 (64 * 1024)
#define PD_ERROR_MAX	 256
#define PD_STOP_TIMEOUT_DEFAULT 30  /* seconds of ACPI shutdown before the kill */
#define PD_STOP_TIMEOUT_MAX	3600
#define PD_EVENTS_LIMIT_MAX	1000
#define PD_IMAGE_SIZE_MAX	(1ULL << 50)
#define PD_DEV_ID_MAX		32	    /* a device id (plinth's id=), NUL included */
#define PD_EJECT_TIMEOUT_DEFAULT 30 /* seconds a hot-removed disk waits for the guest */
#define PD_EJECT_TIMEOUT_MAX	600

enum pd_restart { PD_RESTART_NEVER, PD_RESTART_ON_CRASH, PD_RESTART_ALWAYS };

struct pd_disk {
	char path[PD_PATH_MAX];	     /* an absolute host path, or "" when image is set */
	char image[STORE_NAME_MAX];  /* an image of the pool, or "" when path is set */
	char format[16];	     /* raw, qcow2, vpc, vhdx, vmdk; "" = the image's own */
	bool readonly;
};

struct pd_nic {
	char network[STORE_NAME_MAX];
};

/* A VM's definition: what POST /v1/vms accepts and the inventory keeps. */
struct pd_vm_def {
	char name[STORE_NAME_MAX];
	unsigned cpus;			/* 1..PD_CPUS_MAX, default 1 */
	uint64_t memory_mib;		/* PD_MEMORY_MIN..PD_MEMORY_MAX, default 512 */
	char kernel[PD_PATH_MAX];	/* absolute */
	char initrd[PD_PATH_MAX];	/* absolute, or "" */
	char cmdline[PD_CMDLINE_MAX];	/* "" = plinth's default */
	struct pd_disk disks[PD_DISKS_MAX];
	unsigned n_disks;
	struct pd_nic nics[PD_NICS_MAX];
	unsigned n_nics;
	enum pd_restart restart;	/* default never */
	bool autostart;			/* default false */
	bool ha;			/* restarted on another host when its host is lost
					 * (docs/cluster.md); default false */
	bool display;			/* "display": "vnc": a screen served on
					 * RUNDIR/display.sock (plinth --display); default off */
	char anti_affinity[STORE_NAME_MAX]; /* a group: no two of its VMs share a host
					 * (placement, HA, migration); "" = none */
};

/* POST /v1/images: create an empty image, or import a file (a task). */
struct pd_image_args {
	char name[STORE_NAME_MAX];
	char format[16];	/* create: raw or qcow2 (default qcow2); import: the source's, "" = probe */
	uint64_t size;		/* create: virtual size in bytes */
	char import[PD_PATH_MAX]; /* import: absolute path of the source, "" to create */
};

/* POST /v1/images/{name}/clone */
struct pd_clone_args {
	char name[STORE_NAME_MAX]; /* the new image */
	bool linked;		   /* qcow2 overlay on the (then read-only) source */
};

/* POST /v1/networks */
struct pd_network_args {
	char name[STORE_NAME_MAX];
	char cidr[24];		/* "A.B.C.D/N", N 8..30; "" = 10.77.<id>.0/24 */
	char mode[16];		/* "isolated" (default) or "nat" */
};

/* POST /v1/tokens */
struct pd_token_args {
	char name[STORE_NAME_MAX];
	char role[16]; /* admin, operator, viewer */
};

enum pd_route {
	PD_VM_LIST,
	PD_VM_CREATE,
	PD_VM_GET,
	PD_VM_DELETE,
	PD_VM_ACTION,
	PD_VM_CONSOLE,		/* GET: scrollback, or output from ?offset=N */
	PD_VM_CONSOLE_INPUT,	/* POST {"input": TEXT}: bytes to the serial console */
	PD_IMAGE_LIST,
	PD_IMAGE_CREATE,
	PD_IMAGE_GET,
	PD_IMAGE_DELETE,
	PD_IMAGE_CLONE,
	PD_TASK_LIST,
	PD_TASK_GET,
	PD_TASK_CANCEL,
	PD_EVENT_LIST,
	PD_HOST_INFO,
	PD_NET_LIST,
	PD_NET_CREATE,
	PD_NET_GET,
	PD_NET_DELETE,
	PD_TOKEN_LIST,
	PD_TOKEN_CREATE,
	PD_TOKEN_GET,
	PD_TOKEN_DELETE,
	PD_HOST_LIST,		/* GET /v1/hosts: the cluster's members and the leader */
	PD_VM_MIGRATE,		/* POST {"to": HOST}: live migration to another host (a task) */
	PD_VM_INCOMING,		/* POST: a migration's destination side, between hosts only */
	PD_HOST_EVACUATE,	/* POST /v1/hosts/{name}/evacuate: maintenance + a task */
	PD_HOST_ACTIVATE,	/* POST /v1/hosts/{name}/activate: back in service */
	PD_VM_DISPLAY,		/* GET with "Upgrade: plinth-display": the display's RFB
				 * bytes, for the control socket and other hosts only */
	PD_VM_DISK_ADD,		/* PUT /v1/vms/{name}/disks/{id} {disk}: attach (hot-plug) */
	PD_VM_DISK_REMOVE,	/* DELETE /v1/vms/{name}/disks/{id} [{"timeout": S}] */
};

/* POST /v1/vms/{name}/migrate */
struct pd_migrate_args {
	char to[STORE_NAME_MAX];	/* the destination host */
};

/* POST /v1/vms/{name}/incoming: a source host asks the destination (docs/cluster.md). */
struct pd_incoming_args {
	char phase[16];			/* prepare, confirm, abort */
	char from[STORE_NAME_MAX];	/* the source host: the VM's owner */
	int64_t epoch;			/* the ownership epoch the source holds */
};

enum pd_action { PD_START, PD_STOP, PD_KILL, PD_REBOOT, PD_PAUSE, PD_RESUME };

/* One parsed request. Large (definitions hold paths): allocate it. */
struct pd_request {
	enum pd_route route;
	enum pd_action action;		/* PD_VM_ACTION */
	char name[STORE_NAME_MAX];	/* the object in the path */
	int64_t task_id;		/* PD_TASK_GET, PD_TASK_CANCEL */
	unsigned stop_timeout;		/* PD_STOP: seconds */
	int64_t after;			/* PD_EVENT_LIST: ?after=ID (0) */
	int64_t offset;			/* PD_VM_CONSOLE: ?offset=N, -1 when absent */
	unsigned limit;			/* PD_EVENT_LIST: ?limit=N (100) */
	char dev_id[PD_DEV_ID_MAX];	/* PD_VM_DISK_*: the device's id (1..31 of
					 * [A-Za-z0-9_-], plinth's id=) */
	unsigned eject_timeout;		/* PD_VM_DISK_REMOVE: seconds for the guest's eject */
	union {
		struct pd_vm_def vm;	/* PD_VM_CREATE */
		struct pd_disk disk;	/* PD_VM_DISK_ADD */
		struct pd_image_args image;
		struct pd_clone_args clone;
		struct pd_network_args net;
		struct pd_token_args token;
		char input[4096 + 1];	/* PD_VM_CONSOLE_INPUT: 1..4096 bytes, NUL-terminated */
		struct pd_migrate_args migrate;
		struct pd_incoming_args incoming;
	} u;
	bool from_cluster;		/* set by the server (not parsed): another host forwarded
					 * it with the cluster credential */
};

struct pd_error {
	int status;		/* 4xx */
	const char *allow;	/* 405: the methods the path takes (static) */
	char msg[PD_ERROR_MAX];	/* one printable line */
};

/*
 * Parse one request. method, path (no query) and query ("a=1&b=2" or NULL) are
 * NUL-terminated; body is body_len bytes (not terminated), NULL when empty.
 * 0 with *req filled, or the HTTP status with err filled.
 */
int pd_parse_request(const char *method, const char *path, const char *query, const char *body,
		     size_t body_len, struct pd_request *req, struct pd_error *err);

/* Validate a VM definition (a JSON object) into *def: 0 or 400 with err. */
int pd_vm_def_from_json(json_t *obj, struct pd_vm_def *def, struct pd_error *err);
/* The same from JSON text (the inventory's copy). */
int pd_vm_def_parse(const char *text, struct pd_vm_def *def, struct pd_error *err);
/* The canonical JSON of a definition (every field); NULL if out of memory. */
json_t *pd_vm_def_to_json(const struct pd_vm_def *def);

/* Parse "A.B.C.D/N" (N 8..30) into a network address (host order, host bits zero)
 * and prefix length. 0 or -EINVAL. */
int pd_parse_cidr(const char *cidr, uint32_t *net, unsigned *prefix);

/*
 * May a client with role (admin, operator, viewer) make this request? viewer: reads
 * (GET) but of tokens; operator: also VM actions, task cancel and attaching a pool
 * image or detaching a disk; admin: all (a disk by host path too, as a definition).
 */
bool pd_role_allows(const char *role, const struct pd_request *req);

/* True for a valid device id: 1..31 characters of [A-Za-z0-9_-] (plinth's id=). */
bool pd_dev_id_valid(const char *id);

/* True for a valid object name: 1..63 of [A-Za-z0-9_.-], starting alphanumeric. */
bool pd_name_valid(const char *name);

const char *pd_restart_name(enum pd_restart r);
const char *pd_action_name(enum pd_action a);

#endif
