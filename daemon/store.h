/* SPDX-License-Identifier: MIT */
/*
 * plinthd's inventory, behind one interface (struct store_ops) so that the daemon's
 * logic is the same over SQLite (one host, store_sqlite.c) and PostgreSQL (a
 * cluster, store_pg.c). Above this header nothing knows which database is
 * underneath; both carry the one schema of schema.c.
 *
 * Objects: VMs (definition as a JSON document plus the columns the daemon queries:
 * name, uuid, state, pid, reason, owner host and ownership epoch) and their devices'
 * ids and PCI slots, images of the
 * directory pool, networks (a bridge each), tasks (long operations), events (the
 * audit log), hosts (the cluster's members and their heartbeats), the leader
 * lease (docs/cluster.md) and the live migrations between hosts under way.
 *
 * Clocks: heartbeats and the leader lease are in the database's clock (one clock
 * for every host: PostgreSQL's clock_timestamp(), SQLite's 'now'), never a host's.
 *
 * Transactions: each op is atomic on its own. A change made of several ops (a VM's
 * state and its event) is wrapped in begin()/commit() (rollback() on failure) by the
 * caller; nested begin() is not supported. A store is used by one thread at a time
 * (plinthd serialises with its own lock).
 *
 * Errors: 0 or -errno. -ENOENT: no such object; -EEXIST: a unique name taken;
 * -ESTALE: a VM's ownership epoch moved on since it was read; -EPROTO: the
 * database's schema is newer than this build; -EIO: the database failed (the
 * reason is logged once, where it happened).
 */
#ifndef PLINTH_DAEMON_STORE_H
#define PLINTH_DAEMON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX	 64  /* bytes in an object name, NUL included */
#define STORE_UUID_LEN	 37  /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define STORE_STATE_MAX	 16
#define STORE_REASON_MAX 256
#define STORE_CPU_FLAGS_MAX 2048 /* a host's CPU flags, space-separated (cpuinfo's line) */

struct store;

struct store_vm {
	int64_t id;			/* assigned by vm_insert, never reused */
	char uuid[STORE_UUID_LEN];	/* stable identity (run directory, cluster) */
	char name[STORE_NAME_MAX];	/* unique */
	char *spec;			/* the definition as JSON text; owned (store_vm_clear) */
	char state[STORE_STATE_MAX];	/* defined, starting, running, ... (vms.c) */
	int64_t pid;			/* the VM's plinth while one runs, else 0 */
	char reason[STORE_REASON_MAX];	/* why it last stopped or crashed, "" if none */
	int64_t updated_ms;		/* wall clock of the last change */
	char host[STORE_NAME_MAX];	/* the owner: the only host that may run it */
	int64_t epoch;			/* ownership epoch: +1 each time the owner changes */
};

/* A device of a VM with a stable identity: plinth's id= and addr= (its PCI slot),
 * kept while the VM is defined so that its devices match up across restarts,
 * snapshots and migrations between hosts (vms.c). */
struct store_device {
	char kind[8];			/* "disk", "net" */
	unsigned index;			/* its place among the definition's devices of its kind */
	char dev_id[32];		/* plinth's id=: unique in the VM */
	unsigned slot;			/* plinth's addr=: 1..31, unique in the VM */
};

struct store_image {
	int64_t id;
	char name[STORE_NAME_MAX];	/* unique; the file is POOL/NAME */
	char format[16];		/* raw, qcow2 */
	uint64_t size;			/* virtual size in bytes */
	char backing[STORE_NAME_MAX];	/* the template of a linked clone, "" if none */
	bool is_template;		/* read-only: a linked clone's base */
	int64_t created_ms;
};

struct store_network {
	int64_t id;
	char name[STORE_NAME_MAX];	/* unique */
	char bridge[16];		/* the Linux bridge, "plbr<id>" */
	char cidr[24];			/* IPv4 "A.B.C.D/N"; the host is the first address */
	char mode[16];			/* "isolated" or "nat" (to the host's uplink) */
	int64_t created_ms;
};

struct store_token {
	int64_t id;
	char name[STORE_NAME_MAX];	/* unique */
	char hash[65];			/* SHA-256 of the secret, hex (the secret is never kept) */
	char role[16];			/* admin, operator, viewer */
	int64_t created_ms;
};

struct store_task {
	int64_t id;
	char kind[32];			/* import, clone */
	char object[STORE_NAME_MAX];	/* what it works on (an image name) */
	char state[STORE_STATE_MAX];	/* running, done, failed, cancelled */
	int percent;			/* 0..100 */
	uint64_t done_bytes, total_bytes;
	char error[STORE_REASON_MAX];	/* why it failed, "" otherwise */
	int64_t created_ms, finished_ms;
	char host[STORE_NAME_MAX];	/* the host running it ("" before schema 5) */
};

struct store_event {
	int64_t id;			/* increasing: clients page with "after" */
	int64_t time_ms;
	char actor[STORE_NAME_MAX];	/* who: "api" (users later), "plinthd" for its own */
	char action[32];		/* vm.define, vm.start, vm.crashed, image.delete, ... */
	char object[STORE_NAME_MAX];
	char result[16];		/* ok, failed */
	char message[STORE_REASON_MAX];
};

/* A cluster member (docs/cluster.md). */
struct store_host {
	int64_t id;
	char name[STORE_NAME_MAX];	/* unique: --host-name */
	char address[64];		/* where its API listens ("ADDR:PORT"), "" if nowhere */
	unsigned cpus;
	uint64_t memory_mib;
	int64_t started_ms;		/* database clock at its last registration */
	int64_t heartbeat_ms;		/* database clock at its last heartbeat */
	int64_t age_ms;			/* host_list: database clock now - heartbeat_ms */
	bool maintenance;		/* evacuated: no new VM, migration or HA restart */
	char cpu_flags[STORE_CPU_FLAGS_MAX]; /* "fpu vme ...", "" if unknown (registered) */
	int64_t contact_since_ms;	/* database clock at the first heartbeat of its current
					 * run of heartbeats no more than gap_ms apart */
	int64_t contact_ms;		/* host_list: database clock now - contact_since_ms */
};

/* The leader lease: one row. */
struct store_leader {
	char host[STORE_NAME_MAX];	/* the holder, "" if nobody ever held it */
	int64_t term;			/* +1 at each change of holder or lapse: a fencing token */
	int64_t expires_in_ms;		/* expiry - database clock now (<= 0: lapsed) */
};

/* A live migration between hosts under way (cluster_migrate.c): written by the source
 * before each phase's action, its last phase (switched, aborted) the decision, removed
 * by the source at the end. At most one per VM. */
struct store_migration {
	int64_t vm_id;			/* the key */
	char vm[STORE_NAME_MAX];	/* the VM's name */
	char source[STORE_NAME_MAX];	/* the owner at the start: the one that runs the task */
	char destination[STORE_NAME_MAX];
	int64_t epoch;			/* the VM's ownership epoch at the start */
	char phase[STORE_STATE_MAX];	/* prepare, transfer, confirm, switched, aborted */
	char listen[96];		/* the destination's receive ("tcp:IP:PORT"), "" before */
	int64_t started_ms, updated_ms;	/* wall clock */
};

struct store_ops {
	const char *name; /* "sqlite", "postgresql" */
	/* Open (creating and migrating the schema as needed). NULL with the reason logged. */
	struct store *(*open)(const char *location);
	void (*close)(struct store *st);
	int (*begin)(struct store *st);
	int (*commit)(struct store *st);
	void (*rollback)(struct store *st);
	int (*schema_version)(struct store *st);

	int (*vm_insert)(struct store *st, struct store_vm *vm); /* sets vm->id */
	/* By id, all but id, host and epoch; only while the row's epoch is vm->epoch
	 * (-ESTALE if the owner changed since it was read). */
	int (*vm_update)(struct store *st, const struct store_vm *vm);
	/* Move VM id to host: epoch + 1, only while the row's epoch is epoch (-ESTALE
	 * otherwise, -ENOENT if gone). The one way ownership changes. */
	int (*vm_set_owner)(struct store *st, int64_t id, const char *host, int64_t epoch);
	int (*vm_delete)(struct store *st, int64_t id); /* with its devices */
	int (*vm_get)(struct store *st, const char *name, struct store_vm *out);
	/* Every VM by name; *out is an array of *n (store_vm_list_free). */
	int (*vm_list)(struct store *st, struct store_vm **out, size_t *n);

	/* The devices of VM vm_id, by kind then index; *out is an array of *n (free()). */
	int (*device_list)(struct store *st, int64_t vm_id, struct store_device **out,
			   size_t *n);
	/* Record dev for VM vm_id; -EEXIST if its (kind, index), id or slot is taken. */
	int (*device_insert)(struct store *st, int64_t vm_id, const struct store_device *dev);
	/* Forget VM vm_id's device (kind, index); -ENOENT if there is none. */
	int (*device_delete)(struct store *st, int64_t vm_id, const char *kind, unsigned index);
	/* Give VM vm_id's device (kind, from) the index to, keeping its id and slot (a
	 * device before it in the definition went); -EEXIST if to is taken, -ENOENT if
	 * there is no such device. */
	int (*device_move)(struct store *st, int64_t vm_id, const char *kind, unsigned from,
			   unsigned to);

	int (*image_insert)(struct store *st, struct store_image *img); /* sets img->id */
	int (*image_update)(struct store *st, const struct store_image *img);
	int (*image_delete)(struct store *st, int64_t id);
	int (*image_get)(struct store *st, const char *name, struct store_image *out);
	int (*image_list)(struct store *st, struct store_image **out, size_t *n); /* free() */

	int (*network_insert)(struct store *st, struct store_network *net); /* sets net->id */
	int (*network_update)(struct store *st, const struct store_network *net);
	int (*network_delete)(struct store *st, int64_t id);
	int (*network_get)(struct store *st, const char *name, struct store_network *out);
	int (*network_list)(struct store *st, struct store_network **out, size_t *n); /* free() */

	int (*token_insert)(struct store *st, struct store_token *t); /* sets t->id */
	int (*token_delete)(struct store *st, int64_t id);
	int (*token_get)(struct store *st, const char *name, struct store_token *out);
	int (*token_find)(struct store *st, const char *hash, struct store_token *out);
	int (*token_list)(struct store *st, struct store_token **out, size_t *n); /* free() */

	int (*task_insert)(struct store *st, struct store_task *t); /* sets t->id */
	int (*task_update)(struct store *st, const struct store_task *t);
	int (*task_get)(struct store *st, int64_t id, struct store_task *out);
	int (*task_list)(struct store *st, struct store_task **out, size_t *n); /* free() */

	int (*event_append)(struct store *st, struct store_event *ev); /* sets ev->id */
	/* Events with id > after, oldest first, at most limit. */
	int (*event_list)(struct store *st, int64_t after, unsigned limit,
			  struct store_event **out, size_t *n); /* free() */

	/* Insert or update h by name (address, cpus, memory, CPU flags), heartbeat, started_ms
	 * and contact_since_ms set to the database clock; sets h->id. */
	int (*host_register)(struct store *st, struct store_host *h);
	/* Heartbeat_ms = the database clock now, in the same statement contact_since_ms = now
	 * too unless the previous heartbeat is at most gap_ms old (docs/cluster.md, rule 2's
	 * unbroken contact); -ENOENT if name is not registered. */
	int (*host_heartbeat)(struct store *st, const char *name, int64_t gap_ms);
	int (*host_list)(struct store *st, struct store_host **out, size_t *n); /* free() */
	/* A clean stop: heartbeat_ms = 0 (its name is free at once; -ENOENT if unknown). */
	int (*host_leave)(struct store *st, const char *name);
	/* Put host name in or out of maintenance (kept across registrations; -ENOENT if
	 * unknown). */
	int (*host_set_maintenance)(struct store *st, const char *name, bool on);
	/*
	 * Claim or renew the leader lease for host, for lease_ms of the database clock, in
	 * one transaction (not inside begin()): granted if host holds an unexpired lease
	 * (renewed, same term) or the lease has lapsed (taken, term + 1). *out is the lease
	 * afterwards: host leads iff out->host is host.
	 */
	int (*leader_claim)(struct store *st, const char *host, int64_t lease_ms,
			    struct store_leader *out);
	/* Let the lease lapse now if host holds it (a clean stop): another takes over at
	 * its next claim. */
	int (*leader_release)(struct store *st, const char *host);
	int (*leader_get)(struct store *st, struct store_leader *out);
	/* Record m; -EEXIST if its VM has a migration already. */
	int (*migration_insert)(struct store *st, const struct store_migration *m);
	/* Move the record of VM m->vm_id to m's phase, listen and updated_ms, only while
	 * its phase is from: -ESTALE if it moved on, -ENOENT if there is none. The
	 * compare-and-set by which one side's decision excludes the other's. */
	int (*migration_update)(struct store *st, const struct store_migration *m,
				const char *from);
	int (*migration_get)(struct store *st, int64_t vm_id, struct store_migration *out);
	/* Every record, by VM id; *out is an array of *n (free()). */
	int (*migration_list)(struct store *st, struct store_migration **out, size_t *n);
	int (*migration_delete)(struct store *st, int64_t vm_id); /* -ENOENT if none */
	/* Inside begin(): hold the cluster-wide placement lock until commit or rollback,
	 * so that two hosts placing VMs at once see each other's choices. */
	int (*placement_lock)(struct store *st);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* The ops for a --db location: PostgreSQL for "postgresql://" and "postgres://"
 * URIs, NULL otherwise (the caller's default, SQLite in the state directory). */
const struct store_ops *store_ops_for(const char *location);

void store_vm_clear(struct store_vm *vm);
void store_vm_list_free(struct store_vm *vms, size_t n);

#endif
