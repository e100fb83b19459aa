// SPDX-License-Identifier: MIT
/*
 * Maintenance mode (cluster.h, docs/cluster.md "Maintenance mode"). `plinth host
 * evacuate HOST` is carried out by HOST's own plinthd (forwarded there: only the owner
 * migrates its VMs):
 *
 *   1. one transaction: hosts.maintenance = 1 and the event; from its commit on,
 *      placement (pd_place: a host in maintenance never fits), `migrate --to HOST|auto`
 *      and the leader's HA restarts refuse the host;
 *   2. a task moves the VMs the host owned at the start, one at a time, each to the
 *      host pd_cluster_place_away() chooses with what is placed by then (memory and
 *      vCPUs of the VMs every host owns): a running VM by live migration
 *      (pd_migrate_vm, its phases and failure rules), a VM without a process (defined,
 *      stopped, crashed) by a change of owner (vm_set_owner, epoch + 1) in the same
 *      transaction as the choice; a VM in between (starting, stopping, paused,
 *      migrating) is not moved and says so;
 *   3. the task's progress is VMs done of VMs to move (done_bytes of total_bytes);
 *      a VM that could not move leaves the task failed with a sentence naming it, after
 *      the others moved; a cancel stops before the next VM (a migration under way is
 *      not cut short unless it is before its transfer), and so does `plinth host
 *      activate` (the host is in service again: what is left stays).
 *
 * The host stays in maintenance after the task, whatever its outcome, until activate.
 */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Is host name in maintenance now (the inventory's word)? Under pd->lock. */
static bool in_maintenance(struct plinthd *pd, const char *name)
{
	struct store_host *hosts;
	bool on = false;
	size_t n, i;

	if (pd->ops->host_list(pd->st, &hosts, &n))
		return true; /* unknown: keep evacuating (activate is checked again) */
	for (i = 0; i < n; i++)
		if (!strcmp(hosts[i].name, name))
			on = hosts[i].maintenance;
	free(hosts);
	return on;
}

/*
 * Under pd->lock: give vm (not running: no process here) to the host placement
 * chooses, in one transaction with its event. 0, or -1 with why.
 */
static int move_stopped(struct plinthd *pd, const struct store_vm *vm, const struct pd_vm_def *def,
			char *why)
{
	struct pd_reply r = {0};
	char to[STORE_NAME_MAX];
	int ret = pd->ops->begin(pd->st);

	if (!ret)
		ret = pd_cluster_place_away(pd, def, to, &r);
	if (ret == -ENOSPC) {
		snprintf(why, STORE_REASON_MAX, "VM '%s' cannot go anywhere: %.150s", vm->name,
			 json_string_value(json_object_get(r.body, "error")));
		json_decref(r.body);
		pd->ops->rollback(pd->st);
		return -1;
	}
	json_decref(r.body);
	if (!ret)
		ret = pd->ops->vm_set_owner(pd->st, vm->id, to, vm->epoch);
	if (!ret)
		ret = pd_event(pd, "vm.evacuate", vm->name, "ok",
			       "%s VM moved from %s to %s (epoch %lld)", vm->state, pd->host, to,
			       (long long)vm->epoch + 1);
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		snprintf(why, STORE_REASON_MAX, "VM '%s' could not be given to another host: %s",
			 vm->name, strerror(-ret));
		return -1;
	}
	return 0;
}

/*
 * Move VM name off this host (see the top of the file). 0 moved (or no longer here),
 * -1 with why. Takes pd->lock; drops it for a live migration.
 */
static int move_one(struct pd_task *t, const char *name, char *why)
{
	struct plinthd *pd = t->pd;
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_reply r = {0};
	struct store_vm vm;
	struct pd_run *run;
	struct pd_error perr;
	char to[STORE_NAME_MAX];
	int ret = -1;

	if (!def) {
		snprintf(why, STORE_REASON_MAX, "VM '%s': out of memory", name);
		return -1;
	}
	pthread_mutex_lock(&pd->lock);
	if (pd->ops->vm_get(pd->st, name, &vm)) {
		pthread_mutex_unlock(&pd->lock);
		free(def);
		return 0; /* deleted meanwhile: nothing to move */
	}
	run = pd_run_of(pd, vm.id);
	if (strcmp(vm.host, pd->host)) {
		ret = 0; /* moved by someone else meanwhile */
	} else if (pd_vm_def_parse(vm.spec, def, &perr)) {
		snprintf(why, STORE_REASON_MAX, "VM '%s': its stored definition does not parse",
			 vm.name);
	} else if (!run && (!strcmp(vm.state, "defined") || !strcmp(vm.state, "stopped") ||
			    !strcmp(vm.state, "crashed"))) {
		ret = move_stopped(pd, &vm, def, why);
	} else if (!run || run->migrating || run->incoming || strcmp(vm.state, "running")) {
		snprintf(why, STORE_REASON_MAX, "VM '%s' is %s%s: only running or stopped VMs move",
			 vm.name, vm.state, run && run->migrating ? " and already migrating" : "");
	} else if (pd_migrate_auto(pd, &vm, to, &r)) {
		snprintf(why, STORE_REASON_MAX, "VM '%s' cannot go anywhere: %s", vm.name,
			 json_string_value(json_object_get(r.body, "error")));
	} else {
		run->migrating = true;
		pthread_mutex_unlock(&pd->lock);
		ret = pd_migrate_vm(pd, t, vm.name, to, why);
		if (ret) {
			char e[STORE_REASON_MAX];

			snprintf(e, sizeof(e), "%s", why);
			snprintf(why, STORE_REASON_MAX, "VM '%s': %.180s", vm.name, e);
		}
		pthread_mutex_lock(&pd->lock);
	}
	pthread_mutex_unlock(&pd->lock);
	json_decref(r.body);
	store_vm_clear(&vm);
	free(def);
	return ret;
}

static void *evacuate_main(void *arg)
{
	struct pd_task *t = arg;
	struct plinthd *pd = t->pd;
	char err[STORE_REASON_MAX] = "", first[STORE_REASON_MAX] = "", names[STORE_REASON_MAX] = "";
	char(*todo)[STORE_NAME_MAX] = NULL;
	struct store_vm *vms = NULL;
	size_t nv = 0, n = 0, i, moved = 0, failed = 0;
	int64_t t0 = pd_mono_ms();
	const char *stop = NULL;

	pthread_mutex_lock(&pd->lock);
	if (pd->ops->vm_list(pd->st, &vms, &nv) == 0 &&
	    (todo = calloc(nv ? nv : 1, sizeof(*todo)))) {
		for (i = 0; i < nv; i++)
			if (!strcmp(vms[i].host, pd->host))
				snprintf(todo[n++], sizeof(*todo), "%s", vms[i].name);
	} else {
		stop = "the inventory could not be read";
	}
	store_vm_list_free(vms, nv);
	pd_task_record(pd, t->id, NULL, 0, n, NULL);
	pthread_mutex_unlock(&pd->lock);
	for (i = 0; i < n && !stop; i++) {
		char why[STORE_REASON_MAX];

		pthread_mutex_lock(&pd->lock);
		if (t->cancel)
			stop = "cancelled";
		else if (!in_maintenance(pd, pd->host))
			stop = "the host was activated";
		pthread_mutex_unlock(&pd->lock);
		if (stop)
			break;
		if (move_one(t, todo[i], why) == 0) {
			moved++;
		} else {
			size_t l = strlen(names);

			if (!failed++)
				snprintf(first, sizeof(first), "%s", why);
			else if (l < sizeof(names) - 1)
				snprintf(names + l, sizeof(names) - l, "%s'%s'", l ? ", " : "",
					 todo[i]);
			log_info("host %s: evacuation: %s", pd->host, why);
		}
		pthread_mutex_lock(&pd->lock);
		pd_task_record(pd, t->id, NULL, i + 1, n, NULL);
		pthread_mutex_unlock(&pd->lock);
	}
	if (stop)
		snprintf(err, sizeof(err), "%s after %zu of %zu VMs moved%s%.150s", stop, moved, n,
			 failed ? "; " : "", first);
	else if (failed == 1)
		snprintf(err, sizeof(err), "%zu of %zu VMs moved; %.200s", moved, n, first);
	else if (failed)
		snprintf(err, sizeof(err), "%zu of %zu VMs moved; %.120s; also not moved: %.60s",
			 moved, n, first, names);
	pthread_mutex_lock(&pd->lock);
	pd_event(pd, "host.evacuate", pd->host, err[0] ? "failed" : "ok",
		 "%zu of %zu VMs moved in %lld ms%s%s", moved, n, (long long)(pd_mono_ms() - t0),
		 err[0] ? ": " : "", err);
	pd_task_record(pd, t->id, err[0] ? (stop && t->cancel ? "cancelled" : "failed") : "done", i,
		       n, err[0] ? err : NULL);
	t->done = true;
	pthread_mutex_unlock(&pd->lock);
	log_info("host %s: evacuation ended: %zu of %zu VMs moved in %lld ms%s%s", pd->host, moved,
		 n, (long long)(pd_mono_ms() - t0), err[0] ? ": " : "", err);
	free(todo);
	return NULL;
}

/* Set host name's maintenance to on with its event, in one transaction. 0, or -errno
 * with r set. */
static int set_maintenance(struct plinthd *pd, const char *name, bool on, struct pd_reply *r)
{
	int ret = pd->ops->begin(pd->st);

	if (!ret)
		ret = pd->ops->host_set_maintenance(pd->st, name, on);
	if (!ret)
		ret = pd_event(pd, on ? "host.evacuate" : "host.activate", name, "ok", "%s",
			       on ? "in maintenance: no new VM, migration or HA restart goes there"
				  : "in service again");
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		if (ret == -ENOENT)
			pd_reply_error(r, 404, "host '%s' is not in the cluster", name);
		else
			pd_reply_error(r, 500, "inventory error updating host '%s'", name);
	}
	return ret;
}

void pd_host_evacuate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	struct pd_task *t;

	if (strcmp(req->name, pd->host)) {
		/* pd_forward_target sends it to that host; here only if it cannot be */
		pd_reply_error(r, 409,
			       "host '%s' must evacuate itself, and it cannot be reached "
			       "from '%s'",
			       req->name, pd->host);
		return;
	}
	for (t = pd->tasks; t; t = t->next) {
		if (!t->done && !strcmp(t->action, "host.evacuate")) {
			pd_reply_error(r, 409, "host '%s' is already being evacuated (task %lld)",
				       pd->host, (long long)t->id);
			return;
		}
	}
	if (set_maintenance(pd, pd->host, true, r))
		return;
	t = calloc(1, sizeof(*t));
	if (!t) {
		pd_reply_error(r, 500, "out of memory");
		return;
	}
	snprintf(t->object, sizeof(t->object), "%s", pd->host);
	snprintf(t->action, sizeof(t->action), "host.evacuate");
	snprintf(t->dst_name, sizeof(t->dst_name), "%s", pd->host);
	pd_task_launch(pd, t, "evacuate", evacuate_main, r);
}

void pd_host_activate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	if (set_maintenance(pd, req->name, false, r))
		return;
	r->status = 200;
	r->body = json_pack("{s:s, s:b}", "name", req->name, "maintenance", 0);
}
