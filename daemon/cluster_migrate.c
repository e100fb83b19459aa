// SPDX-License-Identifier: MIT
/*
 * Live migration between hosts (cluster.h, docs/cluster.md "Live migration between
 * hosts"). The source host (the VM's owner: requests are forwarded there) runs it as a
 * task, in phases, each asked of the other side over the cluster's TLS channel:
 *
 *   prepare   the destination's plinthd starts `plinth receive --listen tcp:ITS_IP:PORT`
 *             with the same definition and the cluster key; nothing is written for it
 *             (the inventory is the source's: pd_run.incoming)
 *   transfer  the source's plinth migrates to it (POST /v1/vm/migrate, TLS 1.3 with
 *             the key); the VMM pre-copies, pauses, sends the rest, waits for the ack
 *   confirm   the destination says its plinth runs the guest (GET /v1/vm: running)
 *   switch    one transaction: owner = destination, epoch + 1 (compare-and-set on the
 *             epoch read at the start), the event with the figures; the destination's
 *             monitor sees itself owner and records the VM running with its pid
 *
 * Exactly one copy runs whatever fails:
 *   - before the source's VMM sends its final state (refused, cut, timed out): the
 *     source never paused for good and runs on; the destination's process is killed
 *     (abort), the task fails with the reason;
 *   - the final state sent but not acknowledged (migration "unknown": the source
 *     stays paused and never resumes by itself): the destination is asked; running
 *     there -> switch, then the paused source is killed; not running -> the
 *     destination's process is killed and the source resumed;
 *   - the switch's transaction fails (database down): retried for 30 s; then the VM
 *     runs on the destination only (the source handed off) and the task says that the
 *     inventory still names the source.
 *
 * Threads: the handlers run under pd->lock; the task's thread takes it around every
 * touch of the inventory or of pd->runs and never holds it across the network or the
 * VMM's socket.
 */
#include "cluster.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "log.h"

#define MIGRATE_TIMEOUT_MS  (10 * 60 * 1000) /* the transfer, at the most */
#define CONFIRM_TIMEOUT_MS  30000	      /* the destination running after the ack */
#define SWITCH_TIMEOUT_MS   30000	      /* retries of the switch's transaction */
#define VMM_TIMEOUT_MS	    5000
#define SOURCE_END_MS	    10000	      /* the source's process ending after the switch */
#define PEER_TIMEOUT_MS	    60000
#define REFUSED_RETRIES	    40 /* the destination's plinth not listening yet: 20 s */

/* The whole "ADDR:PORT" of host name; 0 or -errno (need_up: -EHOSTDOWN if it is down,
 * -EBUSY if it is in maintenance). */
static int host_address(struct plinthd *pd, const char *name, char *addr, size_t size,
			bool need_up)
{
	struct store_host *hosts;
	size_t n, i;
	int ret = -ENOENT;

	if (pd->ops->host_list(pd->st, &hosts, &n))
		return -EIO;
	for (i = 0; i < n; i++) {
		if (strcmp(hosts[i].name, name))
			continue;
		if (!hosts[i].address[0])
			ret = -EDESTADDRREQ;
		else if (need_up && (!hosts[i].heartbeat_ms || hosts[i].age_ms > PD_HOST_DOWN_MS))
			ret = -EHOSTDOWN;
		else if (need_up && hosts[i].maintenance)
			ret = -EBUSY; /* evacuated: no VM goes there until activated */
		else
			ret = snprintf(addr, size, "%s", hosts[i].address) < (int)size ? 0 : -ENAMETOOLONG;
		break;
	}
	free(hosts);
	return ret;
}

/* The VM name into vm (store_vm_clear), or -errno with r set. */
static int load_vm(struct plinthd *pd, const char *name, struct store_vm *vm, struct pd_reply *r)
{
	int ret = pd->ops->vm_get(pd->st, name, vm);

	if (ret)
		pd_reply_error(r, ret == -ENOENT ? 404 : 500, "%s VM '%s'",
			       ret == -ENOENT ? "no" : "inventory error reading", name);
	return ret;
}

/* Under pd->lock: can host to run vm (pd_cluster_can_take)? 0 or -errno with r set. */
static int check_destination(struct plinthd *pd, const struct store_vm *vm, const char *to,
			     struct pd_reply *r)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error perr;
	int ret = -ENOMEM;

	if (!def)
		pd_reply_error(r, 500, "out of memory");
	else if ((ret = pd_vm_def_parse(vm->spec, def, &perr)))
		pd_reply_error(r, 500, "VM '%s': its stored definition does not parse", vm->name);
	else
		ret = pd_cluster_can_take(pd, def, to, r);
	free(def);
	return ret;
}

/* --- The destination ------------------------------------------------------------------- */

/* A free TCP port on ip (bound and let go: plinth binds it a moment later). */
static int free_port(const char *ip)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd, port = -EADDRNOTAVAIL;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void incoming_prepare(struct plinthd *pd, const struct store_vm *vm, struct pd_reply *r)
{
	char addr[64], listen[96], *colon;
	int port;

	if (host_address(pd, pd->host, addr, sizeof(addr), false) || !(colon = strrchr(addr, ':'))) {
		pd_reply_error(r, 409, "host '%s' has no --listen address to receive on", pd->host);
		return;
	}
	*colon = '\0';
	port = free_port(addr);
	if (port < 0) {
		pd_reply_error(r, 500, "host '%s': no free TCP port on %s: %s", pd->host, addr,
			       strerror(-port));
		return;
	}
	snprintf(listen, sizeof(listen), "tcp:%s:%d", addr, port);
	if (pd_vm_receive(pd, vm, listen, r))
		return; /* r says why (memory, a disk, the image) */
	log_info("VM %s: receiving from host %s on %s", vm->name, vm->host, listen);
	json_decref(r->body);
	r->status = 200;
	r->body = json_pack("{s:s}", "listen", listen);
}

/* Is the received guest running (its VMM says so)? */
static void incoming_confirm(struct plinthd *pd, const struct store_vm *vm, struct pd_run *run,
			     struct pd_reply *r)
{
	char sock[256], err[256], *resp = NULL;
	json_t *info = NULL;
	const char *state = "";
	int status = 0;

	if (!run || !run->incoming) {
		pd_reply_error(r, 409, "VM '%s': no received copy here", vm->name);
		return;
	}
	pd_run_socket(pd, run->uuid, sock, sizeof(sock));
	if (ctl_request(sock, "GET", "/v1/vm", NULL, VMM_TIMEOUT_MS, &status, &resp, err,
			sizeof(err)) == 0 &&
	    status == 200)
		info = json_loads(resp, 0, NULL);
	free(resp);
	if (info && json_is_string(json_object_get(info, "state")))
		state = json_string_value(json_object_get(info, "state"));
	if (!strcmp(state, "running")) {
		json_decref(r->body);
		r->status = 200;
		r->body = json_pack("{s:b, s:I}", "running", 1, "pid", (json_int_t)run->pid);
	} else {
		pd_reply_error(r, 409, "VM '%s': the received copy is %s", vm->name,
			       state[0] ? state : "not answering");
	}
	json_decref(info);
}

void pd_vm_incoming(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	const struct pd_incoming_args *a = &req->u.incoming;
	struct store_vm vm;
	struct pd_run *run;

	if (!req->from_cluster) {
		pd_reply_error(r, 403, "only another host of the cluster may ask this");
		return;
	}
	if (load_vm(pd, req->name, &vm, r))
		return;
	run = pd_run_of(pd, vm.id);
	if (!strcmp(a->phase, "abort")) {
		/* Whatever the epoch: a received copy that is not owned here goes. */
		if (run && run->incoming && run->pid > 0) {
			kill(run->pid, SIGKILL);
			log_info("VM %s: migration from %s aborted; its received copy killed",
				 vm.name, a->from);
		}
		json_decref(r->body);
		r->status = 200;
		r->body = json_pack("{s:b}", "aborted", 1);
	} else if (strcmp(vm.host, a->from) || vm.epoch != a->epoch) {
		pd_reply_error(r, 409, "VM '%s' is owned by '%s' at epoch %lld, not by '%s' at "
				       "epoch %lld", vm.name, vm.host, (long long)vm.epoch, a->from,
			       (long long)a->epoch);
	} else if (!strcmp(a->phase, "prepare")) {
		if (run)
			pd_reply_error(r, 409, "VM '%s' already has a process on host '%s'",
				       vm.name, pd->host);
		else
			incoming_prepare(pd, &vm, r);
	} else {
		incoming_confirm(pd, &vm, run, r);
	}
	store_vm_clear(&vm);
}

/* --- The source ------------------------------------------------------------------------ */

struct migration {
	char name[STORE_NAME_MAX];
	char to[STORE_NAME_MAX];
	char addr[64];		/* the destination's API */
	char sock[256];		/* the source VMM's API socket */
	int64_t vm_id, epoch;
	int64_t t0;		/* monotonic: the task's start */
	int64_t total_ms, downtime_ms; /* the VMM's figures */
};

/* Ask the destination's plinthd phase; 0 with *out (its reply) or the HTTP status. */
static int ask_destination(struct plinthd *pd, const struct migration *m, const char *phase,
			   json_t **out, char *err, size_t errlen)
{
	struct pd_reply r = {0};
	char path[128], *body;
	json_t *b = json_pack("{s:s, s:s, s:I}", "phase", phase, "from", pd->host, "epoch",
			      (json_int_t)m->epoch);

	body = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s/incoming", m->name);
	pd_forward(pd, m->to, m->addr, "POST", path, NULL, body, strlen(body), "plinthd",
		   PEER_TIMEOUT_MS, &r);
	free(body);
	if (r.status == 200) {
		*out = r.body;
		return 0;
	}
	snprintf(err, errlen, "%s", json_string_value(json_object_get(r.body, "error"))
					    ? json_string_value(json_object_get(r.body, "error"))
					    : "no answer");
	json_decref(r.body);
	return r.status ? r.status : 502;
}

/* The source VMM's migration object (status, figures), or NULL if it does not answer. */
static json_t *vmm_migration(const struct migration *m, json_t **info)
{
	char err[256], *resp = NULL;
	int status = 0;

	*info = NULL;
	if (ctl_request(m->sock, "GET", "/v1/vm", NULL, VMM_TIMEOUT_MS, &status, &resp, err,
			sizeof(err)) || status != 200) {
		free(resp);
		return NULL;
	}
	*info = json_loads(resp, 0, NULL);
	free(resp);
	return json_object_get(*info, "migration");
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

enum outcome { OUT_FAILED, OUT_COMPLETED, OUT_UNKNOWN, OUT_GONE };

/* Start the source VMM's migration to listen and follow it to its end; err says why
 * on OUT_FAILED. */
static enum outcome transfer(struct plinthd *pd, struct migration *m, const char *listen,
			     char *err, size_t errlen)
{
	char body[160], e[256], *resp = NULL;
	int64_t end = pd_mono_ms() + MIGRATE_TIMEOUT_MS;
	unsigned refused = 0;
	int status = 0;

	snprintf(body, sizeof(body), "{\"to\": \"%s\"}", listen);
again:
	if (ctl_request(m->sock, "POST", "/v1/vm/migrate", body, VMM_TIMEOUT_MS, &status, &resp, e,
			sizeof(e))) {
		snprintf(err, errlen, "the source's VMM did not answer: %.180s", e);
		return OUT_FAILED;
	}
	if (status >= 300) {
		snprintf(err, errlen, "the source's VMM refused: %.200s", resp ? resp : "");
		free(resp);
		return OUT_FAILED;
	}
	free(resp);
	resp = NULL;
	while (pd_mono_ms() < end) {
		json_t *info, *mig = vmm_migration(m, &info);
		const char *st = jstr(mig, "status");

		if (!info)
			return OUT_GONE; /* exited: after a hand-off, or it died */
		if (!strcmp(st, "completed") || !strcmp(st, "unknown")) {
			enum outcome o = st[0] == 'c' ? OUT_COMPLETED : OUT_UNKNOWN;

			m->total_ms = json_integer_value(json_object_get(mig, "total_ms"));
			m->downtime_ms = json_integer_value(json_object_get(mig, "downtime_ms"));
			json_decref(info);
			return o;
		}
		if (!strcmp(st, "failed")) {
			snprintf(err, errlen, "%s", jstr(mig, "error"));
			json_decref(info);
			/* The destination's plinth binds its port a moment after it starts;
			 * unless it is gone already (then its plinthd says so). */
			if (strstr(err, "refused") && ++refused < REFUSED_RETRIES) {
				json_t *rep = NULL;
				char x[STORE_REASON_MAX];

				usleep(500000);
				if (ask_destination(pd, m, "confirm", &rep, x, sizeof(x)) == 409 &&
				    strstr(x, "no received copy")) {
					snprintf(err, errlen, "the destination's plinth ended before "
							      "it listened");
					return OUT_FAILED;
				}
				json_decref(rep);
				goto again;
			}
			return OUT_FAILED;
		}
		json_decref(info);
		usleep(100000);
	}
	snprintf(err, errlen, "still migrating after %d s", MIGRATE_TIMEOUT_MS / 1000);
	return OUT_FAILED;
}

/* Under lock: the source's run is no longer migrating (it runs on here). */
static void source_stays(struct plinthd *pd, const struct migration *m)
{
	struct pd_run *run = pd_run_of(pd, m->vm_id);

	if (run)
		run->migrating = false;
}

/* The switch: owner = destination, epoch + 1, in one transaction with its event. */
static int switch_owner(struct plinthd *pd, const struct migration *m, const char *outcome)
{
	int64_t end = pd_mono_ms() + SWITCH_TIMEOUT_MS;
	int ret;

	for (;;) {
		pthread_mutex_lock(&pd->lock);
		ret = pd->ops->begin(pd->st);
		if (!ret)
			ret = pd->ops->vm_set_owner(pd->st, m->vm_id, m->to, m->epoch);
		if (!ret)
			ret = pd_event(pd, "vm.migrate", m->name, "ok",
				       "moved from %s to %s (epoch %lld): %s, transfer %lld ms, "
				       "downtime %lld ms, switch %lld ms after the start",
				       pd->host, m->to, (long long)m->epoch + 1, outcome,
				       (long long)m->total_ms, (long long)m->downtime_ms,
				       (long long)(pd_mono_ms() - m->t0));
		if (!ret)
			ret = pd->ops->commit(pd->st);
		if (ret)
			pd->ops->rollback(pd->st);
		pthread_mutex_unlock(&pd->lock);
		if (!ret || ret == -ESTALE || ret == -ENOENT || pd_mono_ms() > end)
			return ret;
		usleep(1000000);
	}
}

/* After the switch the source's process ends by itself (or was killed): settle its run
 * before the task says done, so that the VM can be moved back here at once (a prepare
 * here would otherwise find its process). Bounded: the tick settles it later if not. */
static void settle_source(struct plinthd *pd, int64_t vm_id)
{
	for (int64_t end = pd_mono_ms() + SOURCE_END_MS;;) {
		pthread_mutex_lock(&pd->lock);
		struct pd_run *run = pd_run_of(pd, vm_id);
		bool gone = !run || pd_run_reap(pd, run);

		pthread_mutex_unlock(&pd->lock);
		if (gone || pd_mono_ms() > end)
			return;
		usleep(20000);
	}
}

int pd_migrate_vm(struct plinthd *pd, struct pd_task *t, const char *name, const char *to,
		  char *why)
{
	struct migration m = {0};
	char err[STORE_REASON_MAX] = "", e[STORE_REASON_MAX], listen[96] = "";
	struct store_vm vm;
	json_t *rep = NULL;
	enum outcome out = OUT_FAILED;
	bool ok = false;
	int ret;

	m.t0 = pd_mono_ms();
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.to, sizeof(m.to), "%s", to);
	pthread_mutex_lock(&pd->lock);
	ret = pd->ops->vm_get(pd->st, m.name, &vm);
	if (!ret) {
		struct pd_reply r = {0};

		m.vm_id = vm.id;
		m.epoch = vm.epoch;
		pd_run_socket(pd, vm.uuid, m.sock, sizeof(m.sock));
		ret = host_address(pd, m.to, m.addr, sizeof(m.addr), true);
		if (!ret && check_destination(pd, &vm, m.to, &r)) {
			/* the last word before prepare (an evacuation comes here directly) */
			snprintf(err, sizeof(err), "%s",
				 json_string_value(json_object_get(r.body, "error")));
			json_decref(r.body);
			store_vm_clear(&vm);
			pthread_mutex_unlock(&pd->lock);
			goto out_stays;
		}
		store_vm_clear(&vm);
	}
	pthread_mutex_unlock(&pd->lock);
	if (ret) {
		snprintf(err, sizeof(err), "host '%s' or the VM cannot be read (%s)", m.to,
			 strerror(-ret));
		goto out_stays;
	}
	/* prepare */
	ret = ask_destination(pd, &m, "prepare", &rep, e, sizeof(e));
	if (ret) {
		snprintf(err, sizeof(err), "host '%s' cannot receive it: %.150s", m.to, e);
		goto out_stays;
	}
	snprintf(listen, sizeof(listen), "%s", jstr(rep, "listen"));
	json_decref(rep);
	rep = NULL;
	if (t->cancel) {
		snprintf(err, sizeof(err), "cancelled before the transfer");
		goto out_abort;
	}
	/* transfer */
	out = transfer(pd, &m, listen, e, sizeof(e));
	if (out == OUT_FAILED) {
		snprintf(err, sizeof(err), "transfer to %s failed: %.150s; the VM runs on here", m.to, e);
		goto out_abort;
	}
	/* confirm: the destination runs the guest (retried: it resumes after the ack) */
	for (int64_t end = pd_mono_ms() + CONFIRM_TIMEOUT_MS;;) {
		ret = ask_destination(pd, &m, "confirm", &rep, e, sizeof(e));
		json_decref(rep);
		rep = NULL;
		if (!ret || pd_mono_ms() > end)
			break;
		usleep(300000);
	}
	if (ret && out == OUT_UNKNOWN) {
		char body[8], x[128], *resp = NULL;
		int status = 0;

		/* The source is paused, never resumed by itself: take it back. */
		ask_destination(pd, &m, "abort", &rep, x, sizeof(x));
		json_decref(rep);
		ctl_request(m.sock, "POST", "/v1/vm/resume", strcpy(body, "{}"), VMM_TIMEOUT_MS,
			    &status, &resp, x, sizeof(x));
		free(resp);
		snprintf(err, sizeof(err), "the destination did not confirm (%.150s); the VM was "
					   "resumed here", e);
		goto out_stays;
	}
	if (ret) { /* handed off, and the destination does not run it: it runs nowhere */
		snprintf(err, sizeof(err), "the source handed off but host '%s' does not run "
					   "the VM: %.120s", m.to, e);
		pthread_mutex_lock(&pd->lock);
		pd_event(pd, "vm.migrate", m.name, "failed", "%s", err);
		pthread_mutex_unlock(&pd->lock);
		goto out_record;
	}
	/* switch */
	ret = switch_owner(pd, &m,
			   out == OUT_UNKNOWN ? "the final ack was lost, the destination confirmed"
			   : out == OUT_GONE  ? "completed (the source ended before it was asked "
						"for its figures)"
					      : "completed");
	if (ret) {
		snprintf(err, sizeof(err), "the VM runs on host '%s', but the inventory could not "
					   "be updated (%s): it still names this host",
			 m.to, strerror(-ret));
		goto out_record;
	}
	if (out == OUT_UNKNOWN) { /* the paused source must never resume */
		pthread_mutex_lock(&pd->lock);
		struct pd_run *run = pd_run_of(pd, m.vm_id);

		if (run && run->pid > 0)
			kill(run->pid, SIGKILL);
		pthread_mutex_unlock(&pd->lock);
	}
	settle_source(pd, m.vm_id);
	log_info("VM %s: migrated to %s (transfer %lld ms, downtime %lld ms)", m.name, m.to,
		 (long long)m.total_ms, (long long)m.downtime_ms);
	ok = true;
	goto out_record;
out_abort:
	ask_destination(pd, &m, "abort", &rep, e, sizeof(e));
	json_decref(rep);
out_stays:
	pthread_mutex_lock(&pd->lock);
	source_stays(pd, &m);
	pd_event(pd, "vm.migrate", m.name, "failed", "%s", err);
	pthread_mutex_unlock(&pd->lock);
out_record:
	if (ok)
		return 0;
	log_info("VM %s: migration to %s failed: %s", m.name, m.to, err);
	snprintf(why, STORE_REASON_MAX, "%s", err);
	return -1;
}

static void *migrate_main(void *arg)
{
	struct pd_task *t = arg;
	struct plinthd *pd = t->pd;
	char err[STORE_REASON_MAX] = "";
	bool ok = !pd_migrate_vm(pd, t, t->object, t->dst_name, err);

	pthread_mutex_lock(&pd->lock);
	pd_task_record(pd, t->id, ok ? "done" : "failed", 0, 0, ok ? NULL : err);
	t->done = true;
	pthread_mutex_unlock(&pd->lock);
	return NULL;
}

int pd_migrate_auto(struct plinthd *pd, const struct store_vm *vm, char *to, struct pd_reply *r)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error perr;
	int ret = -ENOMEM;

	if (!def) {
		pd_reply_error(r, 500, "out of memory");
		return ret;
	}
	ret = pd_vm_def_parse(vm->spec, def, &perr);
	if (ret) {
		pd_reply_error(r, 500, "VM '%s': its stored definition does not parse", vm->name);
		goto out_free;
	}
	ret = pd->ops->begin(pd->st);
	if (ret) {
		pd_reply_error(r, 500, "inventory error placing VM '%s'", vm->name);
		goto out_free;
	}
	ret = pd_cluster_place_away(pd, def, to, r);
	if (ret)
		pd->ops->rollback(pd->st);
	else if ((ret = pd->ops->commit(pd->st)))
		pd_reply_error(r, 500, "inventory error placing VM '%s'", vm->name);
out_free:
	free(def);
	return ret;
}

void pd_vm_migrate(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	struct store_vm vm;
	struct pd_task *t;
	struct pd_run *run;
	char addr[64], to[STORE_NAME_MAX];
	int ret;

	if (load_vm(pd, req->name, &vm, r))
		return;
	run = pd_run_of(pd, vm.id);
	if (pd_vm_elsewhere(pd, &vm, r))
		goto out_clear;
	if (!strcmp(req->u.migrate.to, pd->host)) {
		pd_reply_error(r, 409, "VM '%s' already runs on host '%s'", vm.name, pd->host);
		goto out_clear;
	}
	if (!pd->cluster_key[0]) {
		pd_reply_error(r, 409, "migration between hosts needs --cluster-key on every host");
		goto out_clear;
	}
	if (!run || run->migrating || run->incoming || strcmp(vm.state, "running")) {
		pd_reply_error(r, 409, "VM '%s' is %s%s: only a running VM migrates", vm.name,
			       vm.state, run && run->migrating ? " and already migrating" : "");
		goto out_clear;
	}
	if (!strcmp(req->u.migrate.to, "auto")) {
		if (pd_migrate_auto(pd, &vm, to, r))
			goto out_clear;
	} else {
		snprintf(to, sizeof(to), "%s", req->u.migrate.to);
	}
	ret = host_address(pd, to, addr, sizeof(addr), true);
	if (ret) {
		pd_reply_error(r, ret == -ENOENT ? 404 : 409, "host '%s' %s", to,
			       ret == -ENOENT	       ? "is not in the cluster"
			       : ret == -EHOSTDOWN     ? "is down"
			       : ret == -EBUSY	       ? "is in maintenance (plinth host activate)"
			       : ret == -EDESTADDRREQ ? "has no --listen address"
						       : "cannot be read from the inventory");
		goto out_clear;
	}
	if (check_destination(pd, &vm, to, r))
		goto out_clear;
	t = calloc(1, sizeof(*t));
	if (!t) {
		pd_reply_error(r, 500, "out of memory");
		goto out_clear;
	}
	snprintf(t->object, sizeof(t->object), "%s", vm.name);
	snprintf(t->action, sizeof(t->action), "vm.migrate");
	snprintf(t->dst_name, sizeof(t->dst_name), "%s", to);
	run->migrating = true;
	if (pd_task_launch(pd, t, "migrate", migrate_main, r)) {
		run->migrating = false;
		goto out_clear;
	}
	pd_event(pd, "vm.migrate", vm.name, "ok", "to host %s: started (task %lld)", to,
		 (long long)t->id);
out_clear:
	store_vm_clear(&vm);
}
