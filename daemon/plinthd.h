/* SPDX-License-Identifier: MIT */
/*
 * plinthd: the host daemon. It keeps the inventory (store.h), runs each VM as its
 * own `plinth run` process and drives it through that VM's API socket only
 * (docs/api.yaml), keeps disk images in a directory pool, runs long operations as
 * tasks and writes every change to the event log.
 *
 * State directory DIR:
 *   DIR/inventory.db (+ -wal, -shm)   the SQLite inventory
 *   DIR/plinthd.sock                  the control socket (mode 0600)
 *   DIR/boot_id                       the host boot plinthd last started in (autostart)
 *   DIR/images/NAME                   the pool; .NAME.partial and .NAME.deleting are
 *                                     operations in flight (finished or undone at start)
 *   (networks: Linux bridges plbr<id>, taps pt<vm id>n<i>; see networks.c)
 *   DIR/vms/UUID/                     a VM's run directory: api.sock, pid ("SHIM PID"),
 *                                     exit ("exit N" | "signal N"), console.log (plinth's
 *                                     stdout and stderr), console.in (a FIFO: its stdin), jail/
 *
 * Threads: the API thread (libmicrohttpd, one request at a time), the monitor
 * (notices exits within its 200 ms period, promotes starting VMs, enforces stop
 * timeouts, applies restart policies) and one thread per running task. All of them
 * take pd->lock around everything they touch in struct plinthd and the store.
 *
 * VM states and who moves them:
 *
 *   defined/stopped/crashed --start--> starting --API socket answers--> running
 *   running <--pause/resume--> paused
 *   running|paused --stop--> stopping --exit--> stopped
 *   starting|running|paused|stopping --process ends--> stopped (exit 0, or asked)
 *                                                     | crashed (anything else)
 *   starting|running|paused --guest reset (plinth exit 3)--> stopped --> starting
 *   stopped|crashed --restart policy--> starting
 *
 * A VM's process outlives plinthd: plinthd forks a shim (its own session) that
 * forks plinth, records both pids in the run directory, waits for plinth and
 * writes its exit status. On start plinthd re-adopts every VM whose plinth still
 * runs (found by the API socket path on its command line, never started twice),
 * and settles the rest from their exit files.
 */
#ifndef PLINTH_DAEMON_PLINTHD_H
#define PLINTH_DAEMON_PLINTHD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "placement.h"
#include "request.h"
#include "store.h"

/* plinth's exit status when the guest reset and it could not restart it in its jail
 * (vmm/main.c): plinthd starts the VM again. */
#define PLINTH_EXIT_RESET 3

#define PD_SLOT_LAST 31 /* plinth's addr= is 1..31 (vmm/devconf.h); 0 is the host bridge */
#define PD_DIR_MAX 80 /* the state directory's path: run dirs' sockets must fit sun_path */

/* One VM whose process plinthd watches (from spawn or adoption to its exit). */
struct pd_run {
	int64_t vm_id;
	char name[STORE_NAME_MAX];
	char uuid[STORE_UUID_LEN];
	pid_t pid;			/* plinth */
	pid_t shim;			/* its shim, 0 when gone or unknown */
	int pidfd;			/* readable when the watched process (shim, else plinth) ends */
	int64_t started_ms;		/* monotonic: spawn or adoption */
	int64_t deadline_ms;		/* starting: give up; stopping: SIGKILL (monotonic) */
	bool stop_requested;		/* stop or kill asked: an exit is "stopped" */
	bool reboot_pending;		/* reboot asked: an exit 0 starts it again */
	int64_t reboot_ms;		/* monotonic time of the reboot request */
	unsigned restarts;		/* policy restarts since window_ms */
	int64_t window_ms;		/* monotonic start of the restart window */
	bool incoming;			/* a migration's destination (`plinth receive`): the
					 * inventory is the source's until the owner moves here;
					 * nothing is written for it before (cluster_migrate.c) */
	int64_t incoming_epoch;		/* incoming: the epoch the source held */
	bool migrating;			/* source: a migration to another host runs; plinth's
					 * exit 0 is the hand-off, not a stop */
	bool ha;			/* the definition's ha: stopped when the host is isolated
					 * (and by its shim's watchdog) */
	struct pd_run *next;
};

/* A long operation in progress (its row in the store is the public record). */
struct pd_task {
	int64_t id;
	char object[STORE_NAME_MAX];	/* the image being made */
	char action[32];		/* its events: image.import, image.clone */
	volatile bool cancel;		/* set under pd->lock, read by the worker */
	pthread_t thread;
	struct plinthd *pd;
	bool done;			/* the worker finished: join and free */
	/* work */
	char src[4096];			/* source path */
	char src_format[16];		/* "" = probe */
	char dst_name[STORE_NAME_MAX];
	struct pd_task *next;
};

#define PD_HA_PIDS_MAX 256

struct pd_options {
	const char *state_dir;
	const char *db;			/* the inventory's location for ops (a postgresql://
					 * URI); NULL: SQLite in DIR/inventory.db */
	const char *host_name;		/* this host in the inventory (default: hostname) */
	const char *address;		/* where its API listens for other hosts, or NULL */
	enum pd_placement placement;	/* where new VMs go (default local: this host) */
	const char *plinth_bin;		/* the VMM binary (default: plinth beside plinthd) */
	double overcommit;		/* memory limit = MemTotal x this (default 1.0) */
	uid_t uid_base;			/* VM n runs as uid_base + n when root (default 200000) */
	bool jail;			/* --jail each VM (default: when root) */
	const char *cluster_key;	/* --cluster-key FILE: forwarding and migrations */
	const char *cluster_ca;		/* --cluster-ca PEM: other hosts' certificates */
	const char *watchdog;		/* --watchdog DEV: the host's watchdog (cluster.c) */
};

struct plinthd {
	pthread_mutex_t lock;
	const struct store_ops *ops;
	struct store *st;
	char dir[PD_DIR_MAX];
	char pool[PD_DIR_MAX + 16];
	char plinth_bin[4096];
	uint64_t mem_limit_mib;
	uid_t uid_base;
	bool jail;
	struct pd_run *runs;		/* running VMs */
	struct pd_task *tasks;		/* running tasks */
	char actor[STORE_NAME_MAX];	/* who events are by: the API client ("uid N") while
					 * a request runs, else "plinthd" */
	bool quit;			/* the monitor ends */
	pthread_t monitor;
	char host[STORE_NAME_MAX];	/* this host's name: VMs it owns have it (cluster.h) */
	struct pd_cluster *cluster;	/* heartbeat and leader lease (cluster.c) */
	enum pd_placement placement;	/* where new VMs go */
	double overcommit;		/* memory limit = MemTotal x this (every host's, placement) */
	char cluster_key[65];		/* forwarding credential (hex), "" without --cluster-key */
	char cluster_key_file[4096];	/* the key itself: plinth's --migrate-psk */
	char cluster_ca[4096];		/* trust file for other hosts' certificates */
	int64_t owned_scan_ms;		/* monotonic: the monitor's last look for VMs to start */
	int64_t migrations_scan_ms;	/* monotonic: its last look at migration records */
	int64_t migrations_retry_ms;	/* monotonic: no migration recovery starts before */
	unsigned relays;		/* streams of other hosts' VMs relayed (their threads,
					 * cluster_forward.c; atomic): pd_close waits for them */
	pthread_mutex_t ha_lock;	/* the two below: the HA VMs' plinth processes as
					 * the monitor last listed them, for the watchdog's
					 * thread, which looks whether each is still there */
	pid_t ha_pids[PD_HA_PIDS_MAX];
	unsigned n_ha_pids;		/* PD_HA_PIDS_MAX + 1: more than it holds */
};

/* Read a small file into buf (NUL-terminated): bytes read or -errno. */
ssize_t pd_read_small(const char *path, char *buf, size_t size);
/* Remove a directory tree (what can be removed). */
void pd_rm_tree(const char *path);

/* Milliseconds: wall clock (records) and monotonic (deadlines). */
int64_t pd_now_ms(void);
int64_t pd_mono_ms(void);

/* Append an event (under pd->lock, inside or outside a transaction). 0 or -errno. */
int pd_event(struct plinthd *pd, const char *action, const char *object, const char *result,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A reply: HTTP status and a JSON body (owned); error bodies are {"error": line}. */
struct pd_reply {
	int status;
	json_t *body;
};
void pd_reply_error(struct pd_reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* VM name from the inventory into vm (and its definition into def unless NULL); 0, or
 * -errno with r set (404 no such VM, 500 inventory or definition error). */
struct store_vm;
struct pd_vm_def;
int pd_vm_load(struct plinthd *pd, const char *name, struct store_vm *vm, struct pd_vm_def *def,
	       struct pd_reply *r);

/* --- vms.c ---------------------------------------------------------------------------- */

int pd_vms_init(struct plinthd *pd);	/* adopt, settle and autostart; under lock */
void pd_vm_list(struct plinthd *pd, struct pd_reply *r);
void pd_vm_get(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_vm_create(struct plinthd *pd, const struct pd_vm_def *def, struct pd_reply *r);
void pd_vm_delete(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_vm_action(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);
/* The console log from byte from (-1: its last 64 KiB), with the next offset. */
void pd_vm_console(struct plinthd *pd, const char *name, int64_t from, struct pd_reply *r);
/* Write input to a running VM's serial console (RUNDIR/console.in, plinth's stdin). */
void pd_vm_console_input(struct plinthd *pd, const char *name, const char *input,
			 struct pd_reply *r);
/* Start vm's plinth as a migration's destination (`plinth receive --listen listen`):
 * a struct pd_run with incoming set, nothing written to the inventory. 0 or -errno
 * with r set. Under lock. */
int pd_vm_receive(struct plinthd *pd, const struct store_vm *vm, const char *listen,
		  struct pd_reply *r);
/* Settle run now if its process has ended: true if it had (run is freed then). Under
 * lock. */
bool pd_run_reap(struct plinthd *pd, struct pd_run *run);
/* Settle VM vm as ended if no process of it is watched (a migration's source whose
 * copy is gone while the destination does not run it either). Under lock. */
void pd_run_settle(struct plinthd *pd, const struct store_vm *vm);
/* Is a migration of VM name to another host under way here (a task)? Under lock. */
bool pd_migrating_away(struct plinthd *pd, const char *name);
/* The run of VM vm_id, or NULL (under lock). */
struct pd_run *pd_run_of(struct plinthd *pd, int64_t vm_id);
/* RUNDIR/file (file NULL: RUNDIR) of the VM with uuid into buf ("" if it does not
 * fit). */
void pd_run_path(const struct plinthd *pd, const char *uuid, const char *file, char *buf,
		 size_t size);
/* The API socket of a VM's run directory into buf. */
void pd_run_socket(const struct plinthd *pd, const char *uuid, char *buf, size_t size);
/* The display socket (definitions with "display": "vnc") of a VM's run directory into
 * buf ("" if it does not fit). */
void pd_run_display(const struct plinthd *pd, const char *uuid, char *buf, size_t size);
/* A connection to VM name's display (its VNC server's Unix socket; non-blocking): the
 * fd, or -errno with r set (404 no such VM, 409 no display or not running here, 502
 * the socket does not answer). Under lock. */
int pd_display_connect(struct plinthd *pd, const char *name, struct pd_reply *r);
/* Settle a run whose process ended (under lock): what the monitor does. */
void pd_run_exited(struct plinthd *pd, struct pd_run *run);
/* One monitor period (under lock). */
void pd_vms_tick(struct plinthd *pd);
/* One request (body req: JSON text or NULL) to run's VMM on its API socket: 0 with
 * *status (and *body, the answer's JSON, if body is not NULL), or -errno with err
 * set; a status >= 300 puts the answer's text in err too. */
int pd_vm_api(struct plinthd *pd, const struct pd_run *run, const char *method, const char *path,
	      const char *req, int *status, json_t **body, char *err, size_t errlen);
/* Can disk d (what names it: "disks[N]") be used here: its file readable (and
 * writable unless read-only), its pool image known and not a template written to?
 * 0, or -errno with a 4xx in r. Under lock. */
int pd_disk_check(struct plinthd *pd, const struct pd_disk *d, const char *what,
		  struct pd_reply *r);
/* Is state one with a process (starting, running, paused, stopping)? */
bool pd_state_is_live(const char *state);
/* The image name if any VM's definition uses image, with *vm set; else NULL. */
bool pd_image_used_by_vm(struct plinthd *pd, const char *image, char *vm, size_t vmlen);
uint64_t pd_host_mem_mib(void);
/* This host's CPU feature flags into buf: the environment's PLINTHD_CPU_FLAGS if set
 * (for tests: a host that lacks some, docs/cluster.md), else the first "flags" line of
 * /proc/cpuinfo; "" if neither. */
void pd_host_cpu_flags(char *buf, size_t size);

/* --- hotplug.c ------------------------------------------------------------------------ */

/* PUT /v1/vms/{name}/disks/{id}: attach (hot-plug into a running VM) and record. */
void pd_vm_disk_add(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);
/* DELETE /v1/vms/{name}/disks/{id}: detach (the guest ejects it) and forget. Drops
 * pd->lock while it waits for the guest. */
void pd_vm_disk_remove(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);
/* Take back what hot-plugging into VM vm's jail gave (its links to images and their
 * ACL entries): before its run directory goes. */
void pd_jail_disks_drop(struct plinthd *pd, const struct store_vm *vm);


/* --- images.c ------------------------------------------------------------------------- */

int pd_images_init(struct plinthd *pd);	/* finish or undo what a crash left; under lock */
void pd_image_list(struct plinthd *pd, struct pd_reply *r);
void pd_image_get(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_image_create(struct plinthd *pd, const struct pd_image_args *a, struct pd_reply *r);
void pd_image_delete(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_image_clone(struct plinthd *pd, const char *src, const struct pd_clone_args *a,
		    struct pd_reply *r);
void pd_task_list(struct plinthd *pd, struct pd_reply *r);
void pd_task_get(struct plinthd *pd, int64_t id, struct pd_reply *r);
void pd_task_cancel(struct plinthd *pd, int64_t id, struct pd_reply *r);
/* Update task id's row: state (NULL: unchanged), progress, error (NULL: unchanged).
 * Under lock. */
void pd_task_record(struct plinthd *pd, int64_t id, const char *state, uint64_t done,
		    uint64_t total, const char *error);
/* Record task t (object, action and its work's fields filled; owned from here) as a
 * running task of kind and run work(t) in its thread, which sets t->done under lock
 * when it ends. 0 with 202 + the task in r, or -errno with r set (t freed). */
int pd_task_launch(struct plinthd *pd, struct pd_task *t, const char *kind,
		   void *(*work)(void *), struct pd_reply *r);
/* Join finished task threads (under lock: drops it while joining). */
void pd_tasks_reap(struct plinthd *pd, bool all);
/* True if name is taken by an image or an image being made. */
bool pd_image_name_busy(struct plinthd *pd, const char *name);
/* The pool path of image name into buf. */
void pd_image_path(const struct plinthd *pd, const char *name, char *buf, size_t size);

/* --- networks.c ----------------------------------------------------------------------- */

int pd_networks_init(struct plinthd *pd); /* make missing bridges again; under lock */
void pd_net_list(struct plinthd *pd, struct pd_reply *r);
void pd_net_get(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_net_create(struct plinthd *pd, const struct pd_network_args *a, struct pd_reply *r);
void pd_net_delete(struct plinthd *pd, const char *name, struct pd_reply *r);
/* The tap of a VM's NIC: "pt<vm id>n<index>". */
void pd_nic_tap(int64_t vm_id, unsigned index, char *buf, size_t size);
/* Make each NIC's tap on its network's bridge; spec[i] gets plinth's --net value.
 * 0, or -errno with r set and nothing left behind. */
int pd_nics_up(struct plinthd *pd, int64_t vm_id, const char *uuid, const struct pd_vm_def *def,
	       char (*spec)[128], struct pd_reply *r);
/* Remove the taps of NICs 0..n-1 (those that exist). */
void pd_nics_down(int64_t vm_id, unsigned n);
/* True if a VM's definition has a NIC on network (*vm set). */
bool pd_network_used_by_vm(struct plinthd *pd, const char *network, char *vm, size_t vmlen);

/* --- auth.c --------------------------------------------------------------------------- */

void pd_token_list(struct plinthd *pd, struct pd_reply *r);
void pd_token_get(struct plinthd *pd, const char *name, struct pd_reply *r);
void pd_token_create(struct plinthd *pd, const struct pd_token_args *a, struct pd_reply *r);
void pd_token_delete(struct plinthd *pd, const char *name, struct pd_reply *r);
/* The role and name of the token in an "Authorization: Bearer TOKEN" value; 0 or
 * -EACCES (no such token, or malformed). Under lock. */
int pd_token_check(struct plinthd *pd, const char *authorization, char *role, size_t rolelen,
		   char *name, size_t namelen);

/* --- server.c ------------------------------------------------------------------------- */

struct pd_server;
/* The control socket (Unix, mode 0600; no token: admin). NULL with the reason logged. */
struct pd_server *pd_server_start(struct plinthd *pd, const char *socket_path);
/* The TCP listener at addr ("ADDR:PORT", IPv4), TLS with the PEM cert and key (copied),
 * every request authenticated by a token. NULL with the reason logged. */
struct pd_server *pd_server_start_tcp(struct plinthd *pd, const char *addr, const char *cert_pem,
				      const char *key_pem);
void pd_server_stop(struct pd_server *s);
/* Run one parsed request (under lock). */
void pd_handle(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);

#endif
