/* SPDX-License-Identifier: MIT */
/*
 * A VM configured through the control API alone (`plinth run --api-socket PATH` with
 * no machine options), as Firecracker's pre-boot API: the process serves
 *   GET /v1/vm           {"state": "configuring"|"starting", "config": {...}|null}
 *   PUT /v1/vm/config    the whole machine (machine.h's schema), checked at once:
 *                        400 and one line when bad, the previous config kept
 *   POST /v1/vm/start    boot it ({"from": DIR} restores it from a snapshot instead,
 *                        {"listen": URI} receives a migration); 200 once the first VM
 *                        exists, or 400 and one line (a kernel that is no kernel, a
 *                        disk that does not open, a snapshot of another machine) with
 *                        nothing started and the config kept for another try
 * and nothing else (409). The start then takes the command line's own path: the
 * config moves into the process's struct vm_config, start_common() and run_loop()
 * build and run it (main.c); the pre-boot server stops before the process confines
 * itself and the running VM's server takes the same socket.
 *
 * Threads: the ops run on the pre-boot server's thread; the main thread waits in
 * preboot_wait() and does every start-up step itself. State, under pb->lock:
 *
 *   CONFIGURING --start op--> STARTING --preboot_started()--> STARTED
 *        ^                       |
 *        +---preboot_refuse()----+
 */
#ifndef PLINTH_VMM_PREBOOT_H
#define PLINTH_VMM_PREBOOT_H

#include "api/api.h"
#include "vm.h"

struct preboot;

/* NULL with one line logged. */
struct preboot *preboot_new(void);
/* Once its server stopped. */
void preboot_free(struct preboot *pb);

/* The pre-boot routes, over a struct preboot. */
extern const struct api_vm_ops preboot_api_ops;

/*
 * Main thread: wait for a start request, or a termination signal on sfd (returns
 * 128 + its number). 0: the pending config's machine settings and devices are now
 * cfg's (its strings stay pb's), how the start asked for into how; the request waits
 * for preboot_refuse() or preboot_started().
 */
int preboot_wait(struct preboot *pb, int sfd, struct vm_config *cfg, struct api_start_args *how);
/* The start failed before a VM existed: answer 400 with msg; cfg's devices go back. */
void preboot_refuse(struct preboot *pb, struct vm_config *cfg, const char *msg);
/* The first VM exists: answer 200 and wait (10 s at most) until the answer is sent. */
void preboot_started(struct preboot *pb);

#endif
