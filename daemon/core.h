/* SPDX-License-Identifier: MIT */
/* Opening and closing plinthd (core.c); the rest is in plinthd.h. */
#ifndef PLINTH_DAEMON_CORE_H
#define PLINTH_DAEMON_CORE_H

#include "plinthd.h"

/*
 * Open the state directory and the inventory (with ops), settle what the last run
 * left, start the monitor. The server is started separately (pd_server_start).
 * NULL with the reason logged.
 */
struct plinthd *pd_open(const struct pd_options *o, const struct store_ops *ops);
/* Stop the monitor and the tasks, close the inventory. VMs keep running. */
void pd_close(struct plinthd *pd);
/* Stop watching a run (its VM keeps running): frees it. Under the lock. */
void pd_run_forget(struct plinthd *pd, struct pd_run *run);

#endif
