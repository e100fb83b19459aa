/* SPDX-License-Identifier: MIT */
/*
 * plinthd's membership in a cluster (docs/cluster.md): every plinthd registers its
 * host (name, address, CPUs, memory) in the inventory and heartbeats; one of them
 * holds the leader lease (a row with an expiry in the database's clock and a term
 * that grows at each change of holder). The cluster thread does both on its own
 * connection to the store, so a slow API request never delays a heartbeat and a
 * slow database never holds pd->lock.
 *
 * With SQLite (one host) the same code runs: one member, always the leader.
 */
#ifndef PLINTH_DAEMON_CLUSTER_H
#define PLINTH_DAEMON_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "plinthd.h"

/* The heartbeat and lease claim period. */
#define PD_HEARTBEAT_MS 1000
/* The leader lease: a dead leader is replaced within PD_LEASE_MS + PD_HEARTBEAT_MS. */
#define PD_LEASE_MS 4000
/* Host list: "down" past this heartbeat age (display only: declaring a host dead is
 * the leader's, later). */
#define PD_HOST_DOWN_MS 5000

/* HA (docs/cluster.md, "The fencing rules"): I, W and T. */
#define PD_ISOLATION_MS 5000  /* no committed heartbeat for this long: ask the peers */
#define PD_WATCHDOG_MS	5000  /* an HA VM's shim kills it this long after the last feed */
#define PD_REJOIN_MS	2000  /* after an outage, a host's time to commit once peers have */
#define PD_DEAD_MS	15000 /* the leader restarts a host's HA VMs after this silence */
#define PD_DEAD_SLACK_MS 20   /* the leader's look at a host due to pass T comes this late */
/* Unbroken contact: heartbeats no more than this apart (hosts.contact_since_ms). */
#define PD_CONTACT_GAP_MS (2 * PD_HEARTBEAT_MS)

struct pd_cluster;

/*
 * Start the cluster thread: open a second connection to the store (ops, location),
 * register host with address, then heartbeat and claim the lease every
 * PD_HEARTBEAT_MS. With a shared inventory (shared), refuse a name a live plinthd
 * holds (a heartbeat within PD_HOST_DOWN_MS: after a crash, the name is free that
 * much later); one host's SQLite needs no such check (and a plinthd restarted at once
 * after a crash must adopt its VMs). NULL with the reason logged.
 */
struct pd_cluster *pd_cluster_start(struct plinthd *pd, const struct store_ops *ops,
				    const char *location, bool shared, const char *host,
				    const char *address, int wd_fd, const char *wd_path);
/* The host's watchdog (plinthd --watchdog): opened and set to PD_WATCHDOG_MS, the fd
 * or -1 with the reason logged; pd_cluster_start takes it over (closed even when it
 * fails). Closing is the magic close: disarmed. */
int pd_watchdog_open(const char *path);
void pd_watchdog_close(int fd, const char *path);
/* With a shared inventory the thread also does HA: it feeds the watchdog file
 * DIR/contact (a monotonic deadline for HA VMs' shims) while this host is in contact
 * or in a confirmed database outage, asks its peers when it lost contact, and as the
 * leader restarts the HA VMs of hosts silent for PD_DEAD_MS elsewhere. With wd_fd (from
 * pd_watchdog_open, or -1), a thread also feeds the host's watchdog under the same rule
 * or while no HA VM of this host is unreaped; the stop disarms it. */
/* Has this host found itself isolated (its HA VMs must be stopped: vms.c)? */
bool pd_cluster_isolated(struct pd_cluster *c);
/* Milliseconds since the start of this host's last committed heartbeat, -1 if none. */
int64_t pd_cluster_contact_age_ms(struct pd_cluster *c);
/* Stop the thread, let the lease lapse if held (another leads at once), leave the
 * host list (the name is free for the next plinthd at once), close. */
void pd_cluster_stop(struct pd_cluster *c);
/* Does this plinthd hold the lease now (by its own monotonic clock: the lease as it
 * was granted, less nothing: its expiry in the database is later)? *term if so. */
bool pd_cluster_leading(struct pd_cluster *c, int64_t *term);

/* Give pd->host every VM it must own at start: with a shared inventory those with
 * no owner yet (made before schema 5); with SQLite every VM (one host, whatever it
 * was called before). Under pd->lock. 0 or -errno. */
int pd_cluster_claim_vms(struct plinthd *pd, bool shared);
/*
 * The owner of a new VM of def under pd->placement into host (STORE_NAME_MAX): this
 * host for local, else the up host that pd_place() chooses from the VMs every host
 * owns. Inside a transaction (takes the placement lock). 0, or -ENOSPC with a 409
 * in r, or -EIO with a 500 in r.
 */
int pd_cluster_place(struct plinthd *pd, const struct pd_vm_def *def, char *host,
		     struct pd_reply *r);
/* pd_cluster_place for a VM leaving this host (evacuation, migrate --to auto): spread
 * (pack if that is this host's policy) among the other hosts up and in service. Inside
 * a transaction. 0, -ENOSPC with a 409 in r, or -EIO with a 500. */
int pd_cluster_place_away(struct plinthd *pd, const struct pd_vm_def *def, char *host,
			  struct pd_reply *r);
/*
 * Before a migration of def from this host to host to: does to have room (memory and
 * vCPUs of the VMs it owns within placement's limits) and every CPU feature flag this
 * host has (both as registered; not checked if either is unknown)? The disks' paths
 * are checked by the destination itself at prepare. Under pd->lock. 0, or -errno with
 * one sentence in r (409: naming what is short or the missing flags).
 */
int pd_cluster_can_take(struct plinthd *pd, const struct pd_vm_def *def, const char *to,
			struct pd_reply *r);
/* True, with a 409 in r, if vm is owned by another host. */
bool pd_vm_elsewhere(const struct plinthd *pd, const struct store_vm *vm, struct pd_reply *r);
/* GET /v1/hosts (under pd->lock). */
void pd_host_list(struct plinthd *pd, struct pd_reply *r);


/* --- Forwarding (cluster_forward.c) --------------------------------------------------- */

/* A forwarded request's credential (hex HMAC-SHA256 of the label with the cluster
 * key) and its client, for the owner's audit log. */
#define PD_CLUSTER_KEY_HEADER	"X-Plinth-Cluster"
#define PD_CLUSTER_ACTOR_HEADER "X-Plinth-Actor"

/*
 * Load the cluster key (key_file: 32..64 bytes as hex digits, mode 0600, the same on
 * every host; plinth's --migrate-psk for migrations between hosts) and the trust file
 * for other hosts' TLS certificates (ca_file, PEM) into pd. 0 or -errno logged.
 */
int pd_cluster_key_load(struct plinthd *pd, const char *key_file, const char *ca_file);
/* Does value carry this cluster's credential (constant time)? */
bool pd_cluster_key_ok(const struct plinthd *pd, const char *value);
/* Is req about one VM (carried out by its owner)? */
bool pd_route_forwardable(const struct pd_request *req);
/*
 * Under pd->lock: must req be carried out by another host? 0: here; 1: by owner at
 * addr (owner: STORE_NAME_MAX); -errno with r set (the owner is down, has no address,
 * or there is no cluster key to forward with).
 */
int pd_forward_target(struct plinthd *pd, const struct pd_request *req, char *owner, char *addr,
		      size_t addrlen, struct pd_reply *r);
/* Under pd->lock: is VM name another host's? 0: this host's (or no such VM); 1: owner's
 * at addr; -errno with r set, as pd_forward_target. */
int pd_vm_target(struct plinthd *pd, const char *name, char *owner, char *addr, size_t addrlen,
		 struct pd_reply *r);
/*
 * Without pd->lock: send the request (method, url, query or NULL, body) to owner at
 * addr over TLS with the cluster credential and client (the audit log's actor),
 * within timeout_ms for each read or write; r gets the owner's reply, or a 502 in
 * one line. pd's cluster fields are read only (set before any thread).
 */
void pd_forward(struct plinthd *pd, const char *owner, const char *addr, const char *method,
		const char *url, const char *query, const char *body, size_t body_len,
		const char *client, int timeout_ms, struct pd_reply *r);

/*
 * Without pd->lock: open VM name's console stream (display: its display's RFB bytes) on
 * owner at addr (GET /v1/vms/NAME/console|display with "Upgrade: plinth-console|
 * plinth-display", the cluster credential, client as the actor) and relay it in a
 * thread of its own (counted in pd->relays; it ends when either side closes or
 * pd->quit is set). The fd of the consumer's end (a non-blocking stream socket, owned
 * by the caller: closing it ends the relay), or -errno with r set: 502 the owner did
 * not answer, else the owner's refusal (404, 409, 421: the VM is not the owner's).
 */
int pd_stream_remote(struct plinthd *pd, const char *owner, const char *addr, const char *name,
		     bool display, const char *client, struct pd_reply *r);

/* --- Migration between hosts (cluster_migrate.c) -------------------------------------- */

/* POST /v1/vms/{name}/migrate on the VM's owner: 202 with the task that carries it
 * out (its error says why it failed; the VM then runs on here). Under pd->lock. */
void pd_vm_migrate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);
/* The destination of vm for `migrate --to auto` into to (STORE_NAME_MAX), chosen by
 * pd_cluster_place_away in its own transaction. Under pd->lock. 0 or -errno, r set. */
int pd_migrate_auto(struct plinthd *pd, const struct store_vm *vm, char *to, struct pd_reply *r);
/* Migrate VM name, running here with its pd_run marked migrating by the caller, to host
 * to, in the phases of cluster_migrate.c; t->cancel is honoured before the transfer.
 * Without pd->lock (a task's thread). 0 once it runs there and the inventory says so,
 * else -1 with the sentence in why (STORE_REASON_MAX; the event log has it too). */
int pd_migrate_vm(struct plinthd *pd, struct pd_task *t, const char *name, const char *to,
		  char *why);
/* Once a second, under pd->lock: the migration records (cluster_migrate.c's table): a
 * source recovers those no task of its runs, a destination keeps or kills its received
 * copies by theirs and decides alone if their source is down. */
void pd_migrations_tick(struct plinthd *pd);
/* POST /v1/vms/{name}/incoming: the destination's side (prepare, confirm, abort), for
 * a request from another host only (req->from_cluster). Under pd->lock. */
void pd_vm_incoming(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);

/* --- Maintenance mode (cluster_evacuate.c) --------------------------------------------- */

/* POST /v1/hosts/{name}/evacuate, on that host (forwarded there): in one transaction
 * the host goes into maintenance (no placement, migration or HA restart targets it),
 * then a task moves every VM it owns, one by one, to hosts with room: running VMs by
 * live migration, others by a change of owner. 202 with the task. Under pd->lock. */
void pd_host_evacuate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);
/* POST /v1/hosts/{name}/activate, on any host: the host is in service again (an
 * evacuation still running there stops before its next VM). Under pd->lock. */
void pd_host_activate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r);

#endif
