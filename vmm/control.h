/* SPDX-License-Identifier: MIT */
/*
 * The VMM's control plane: what outlives one struct vm (a guest reset rebuilds
 * the VM; the API server, the migration record and the counters stay), the
 * control API's ops, snapshots and the hand-off of requests to the main thread.
 *
 * Threads and who may touch what:
 *   API thread (vmm/api/server.c): runs the ops one at a time. It never does file or
 *     KVM work: pause, resume, snapshot, shutdown, reset and starting a migration
 *     are posted to the main thread (vmm_call) and the op waits for the result.
 *     info reads the counters under vmm->lock.
 *   main thread: vm_run()'s poll loop calls vmm_service() when req_fd fires; it
 *     pauses/resumes, writes snapshots, starts the migration thread, and between
 *     two VMs (reset) joins it first.
 *   migration thread (migrate.c): owns the migration socket; pauses the VM for the
 *     final copy; reports through vmm->mig under vmm->lock.
 */
#ifndef PLINTH_VMM_CONTROL_H
#define PLINTH_VMM_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "ratelimit.h"
#include "vm.h"

enum vmm_req { VMM_REQ_NONE, VMM_REQ_PAUSE, VMM_REQ_RESUME, VMM_REQ_SHUTDOWN, VMM_REQ_RESET,
	       VMM_REQ_SNAPSHOT, VMM_REQ_MIGRATE, VMM_REQ_DEV_ADD, VMM_REQ_DEV_REMOVE };

enum mig_status { MIG_NONE, MIG_ACTIVE, MIG_COMPLETED, MIG_FAILED, MIG_CANCELLED,
		  MIG_UNKNOWN /* final state sent, no ack: the guest stays paused here */ };

/* A migration's figures, as printed and returned by the API. */
struct mig_stats {
	enum mig_status status;
	uint64_t total_ms;     /* start to switch-over (or failure) */
	uint64_t downtime_ms;  /* vCPUs paused to the destination's ack */
	uint64_t bytes;        /* sent on the stream */
	uint64_t pages;        /* guest pages sent (repeats included) */
	unsigned int rounds;   /* pre-copy rounds, the final one included */
	unsigned int throttle_pct; /* auto-converge at the end */
	uint64_t bandwidth_mbps; /* measured, last round */
	char error[API_ERROR_MAX]; /* why it failed */
};

struct vmm {
	struct vm_config *cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int req_fd;               /* eventfd: a request waits for the main thread */
	struct ratelimit lease_rl; /* vmm_tick's unreadable-record warnings (main thread) */
	uint64_t lease_renewals;  /* the disk leases' renewal count (main thread) */
	uint64_t lease_ok_ms;     /* the last renewal that worked, monotonic (main thread) */
	bool lease_paused;        /* the guest paused for renewals that failed (main thread) */
	struct vm *vm;            /* the current VM, NULL between two (lock) */
	unsigned int boots;       /* VMs created, restored included (lock) */
	bool restored;            /* the first VM came from a snapshot or a migration */

	/* The request in flight (lock): posted by vmm_call, done by vmm_service. */
	enum vmm_req req;
	const void *req_args;
	int req_ret;
	bool req_done;
	char req_err[API_ERROR_MAX];

	/* Migration (lock for stats; thread fields owned by the main thread). */
	struct mig_stats mig;
	pthread_t mig_thread;
	bool mig_running;         /* a thread to join */
	atomic_bool mig_cancel;
	struct api_migrate_args mig_args;
	struct mig_tls *tls;      /* --migrate-psk: the source's TLS context, or NULL (not owned) */
	char lease_owner[160];    /* this process in disk leases (vmm/lease.h), set at start-up */
};

int vmm_init(struct vmm *vmm, struct vm_config *cfg);
void vmm_fini(struct vmm *vmm);
/* The main thread's hook (vm_config.service). */
void vmm_service(void *opaque, struct vm *vm);
/* Set the current VM (NULL before destroying it); joins a migration first. */
void vmm_set_vm(struct vmm *vmm, struct vm *vm);

/* The API ops over a struct vmm. */
extern const struct api_vm_ops vmm_api_ops;

/*
 * Write a snapshot of vm to dir (pausing it meanwhile if it runs). 0 or -errno with
 * a one-line reason in err. Main or migration thread.
 */
int vmm_snapshot(struct vm *vm, const char *dir, char *err, size_t errlen);

/*
 * hotplug.c (main thread): add the device dev ({"kind", "id", keys...}, as in PUT
 * /v1/vm/config) in the lowest free slot and tell the guest; ask the guest to eject
 * device id of class kind (it goes once the guest's _EJ0 arrives); finish the
 * removals the guest ejected (vmm_service, on every wake-up). 0 or -errno with err
 * (or a logged sentence) saying why. hotplug_removing_json: the ids waiting for the
 * guest's eject (vmm->lock held), a new array or NULL.
 */
int hotplug_add(struct vmm *vmm, struct vm *vm, const json_t *dev, char *err, size_t errlen);
/* VMM_REQ_DEV_REMOVE's argument. */
struct dev_removal {
	const char *kind, *id;
};
int hotplug_remove(struct vmm *vmm, struct vm *vm, const char *kind, const char *id, char *err,
		   size_t errlen);
void hotplug_service(struct vmm *vmm, struct vm *vm);
json_t *hotplug_removing_json(struct vmm *vmm, struct vm *vm);

/* migrate.c: start the migration thread (main thread). 0 or -errno with err. */
int migrate_start(struct vmm *vmm, struct vm *vm, const struct api_migrate_args *a, char *err,
		  size_t errlen);
/* Stop (if running) and join the migration thread (main thread). */
void migrate_join(struct vmm *vmm);
/*
 * After a migration whose outcome is unknown (MIG_UNKNOWN), on the operator's
 * word that the destination does not run the guest (API resume): take the disk
 * images back (refused while another process holds them), restart the devices,
 * resume the vCPUs. 0 or -errno with the reason in err (main thread).
 */
int migrate_take_back(struct vmm *vmm, struct vm *vm, char *err, size_t errlen);
/*
 * The destination, before the jail and the filters: bind and listen on a (a Unix
 * socket gets mode 0600). The fd, or -errno after one line.
 */
int migrate_listen(const struct api_migrate_args *a);
/*
 * The destination, on its first VM (built from its own command line, with
 * cfg->restore and cfg->incoming), inside the jail and the filters: wait for one
 * source on lfd (closed here) or a termination signal on sfd (-EINTR, *signo
 * set); handshake when tls is not NULL; check the stream's config against
 * vm->cfg; load RAM and every device; take the disk images over and record
 * lease_owner in their leases (vmm/lease.h); ack. The VM is
 * then ready to run. 0 or -errno, said why in one line.
 */
struct mig_tls;
int migrate_receive(int lfd, const struct api_migrate_args *a, struct mig_tls *tls,
		    struct vm *vm, const char *lease_owner, int sfd, int *signo);

#endif
