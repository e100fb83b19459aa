// SPDX-License-Identifier: MIT
/*
 * Live migration between hosts (cluster.h, docs/cluster.md "Live migration between
 * hosts"). The source host (the VM's owner: requests are forwarded there) runs it as a
 * task, in phases, each asked of the other side over the cluster's TLS channel. Each
 * phase is written to the VM's migration record (store.h, struct store_migration)
 * before the action it permits (write-ahead), by compare-and-set on the phase before:
 *
 *   prepare   (record inserted: VM, source, destination, epoch) the destination's
 *             plinthd starts `plinth receive --listen tcp:ITS_IP:PORT` with the same
 *             definition and the cluster key; nothing else is written for it (the
 *             inventory is the source's: pd_run.incoming)
 *   transfer  (+ the receive address) the source's plinth migrates to it (POST
 *             /v1/vm/migrate, TLS 1.3 with the key); the VMM pre-copies, pauses,
 *             sends the rest, waits for the ack                           transfer()
 *   confirm   the destination says its plinth runs the guest (GET /v1/vm: running)
 *   switched  one transaction: confirm -> switched, owner = destination, epoch + 1
 *             (compare-and-set on the epoch read at the start), the event with the
 *             figures; the destination's monitor sees itself owner and records the VM
 *             running with its pid                                    switch_owner()
 *   aborted   the source's copy wins; written before the destination's copy is killed
 *             and a paused source resumed                              source_wins()
 *
 * switched and aborted are the decision: whoever moves the record there first (the
 * source, or the destination alone when its source is down) wins, the other's
 * compare-and-set fails (-ESTALE) and it follows. The source removes the record at the
 * end. Nothing else makes a copy run: a paused source resumes only after "aborted" is
 * written, the destination's copy is the VM's only after "switched".
 *
 * Without a crash, exactly one copy runs whatever fails:
 *   - before the source's VMM sends its final state (refused, cut, timed out): the
 *     source never paused for good and runs on; aborted, the destination's process
 *     killed, the task fails with the reason;
 *   - the final state sent but not acknowledged (migration "unknown": the source
 *     stays paused and never resumes by itself): the destination is asked; running
 *     there -> switched, then the paused source is killed; not running -> aborted,
 *     the destination's process killed and the source resumed;
 *   - the switch's transaction fails (database down): retried for 30 s; then the VM
 *     runs on the destination only and the task says the inventory still names the
 *     source; the record stays at confirm and a recovery (below) switches it later.
 *
 * After a crash (pd_migrations_tick, once a second; pd_vms_init at the start adopts
 * the source's copy marked migrating, and the destination's receive while the record
 * names it and is undecided, and kills any other copy of a VM owned elsewhere):
 *
 *   record found by     phase / inventory          resolution
 *   source (no task)    switched, or the owner or  the destination's copy wins: this
 *                       epoch moved on             copy (paused, handed off) killed
 *                       prepare, aborted           aborted: the destination's killed,
 *                                                  this copy resumed if paused
 *                       transfer, confirm          its VMM followed to its end, then
 *                                                  as without a crash (recover())
 *   destination         owner moved here           its receive is the VM (adopted)
 *                       aborted, gone, or the VM   its receive killed
 *                       moved on (HA)
 *                       undecided, source up       kept: the source decides
 *                       undecided, source down     alone (decide_alone()): running ->
 *                       (heartbeat > 5 s old)      switched, owner here; not running
 *                                                  -> aborted, killed
 *
 * The destination's receive runs the guest only after it has all of it and acked it;
 * by then the source's VMM has handed off (and exits) or waits paused for its plinthd,
 * which resumes it only once it wrote aborted: so taking over a running received copy,
 * or giving up one that does not run, leaves one copy either way.
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
#define RECOVER_RETRY_MS    10000 /* between recoveries that could not write their decision */

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

/* A VMM's GET /v1/vm, or NULL if it does not answer. */
static json_t *vmm_info(const char *sock)
{
	char err[256], *resp = NULL;
	json_t *info = NULL;
	int status = 0;

	if (ctl_request(sock, "GET", "/v1/vm", NULL, VMM_TIMEOUT_MS, &status, &resp, err,
			sizeof(err)) == 0 &&
	    status == 200)
		info = json_loads(resp, 0, NULL);
	free(resp);
	return info;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Is the received guest running (its VMM says so)? */
static void incoming_confirm(struct plinthd *pd, const struct store_vm *vm, struct pd_run *run,
			     struct pd_reply *r)
{
	char sock[256];
	json_t *info;
	const char *state;

	if (!run || !run->incoming) {
		pd_reply_error(r, 409, "VM '%s': no received copy here", vm->name);
		return;
	}
	pd_run_socket(pd, run->uuid, sock, sizeof(sock));
	info = vmm_info(sock);
	state = jstr(info, "state");
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
	bool figures;		       /* ... read (a source gone before it was asked: not) */
	struct store_migration rec; /* the record as last written or read */
};

/* Test-only (tests/daemon/cluster-migrate-crash.sh): with PLINTHD_TEST_MIGRATE_STALL set
 * to a phase, the source's task stalls for 8 s after it wrote that phase, so that a test
 * can SIGKILL either plinthd there. Nothing else reads it. */
static void test_stall(const struct migration *m, const char *phase)
{
	const char *at = getenv("PLINTHD_TEST_MIGRATE_STALL");

	if (!at || strcmp(at, phase))
		return;
	log_info("VM %s: test: stalled after writing phase %s", m->name, phase);
	sleep(8);
}

/* Write-ahead: the record moves from its phase to phase before what phase permits. 0,
 * -ESTALE if the destination decided first (m->rec holds its decision then), or -errno. */
static int set_phase(struct plinthd *pd, struct migration *m, const char *phase)
{
	struct store_migration next = m->rec;
	int ret;

	snprintf(next.phase, sizeof(next.phase), "%s", phase);
	next.updated_ms = pd_now_ms();
	pthread_mutex_lock(&pd->lock);
	ret = pd->ops->migration_update(pd->st, &next, m->rec.phase);
	if (!ret)
		m->rec = next;
	else if (ret == -ESTALE && pd->ops->migration_get(pd->st, m->vm_id, &m->rec))
		ret = -EIO;
	pthread_mutex_unlock(&pd->lock);
	if (ret && ret != -ESTALE)
		log_error("VM %s: the migration's phase %s could not be written (%s)", m->name,
			  phase, strerror(-ret));
	return ret;
}

/* The record goes: the migration is over, whichever way it was decided. */
static void record_done(struct plinthd *pd, const struct migration *m)
{
	pthread_mutex_lock(&pd->lock);
	pd->ops->migration_delete(pd->st, m->vm_id);
	pthread_mutex_unlock(&pd->lock);
}

/* Ask the destination's plinthd phase; 0 with *out (its reply) or the HTTP status. */
static int ask_destination(struct plinthd *pd, const struct migration *m, const char *phase,
			   json_t **out, char *err, size_t errlen)
{
	struct pd_reply r = {0};
	char path[128], *body;
	json_t *b = json_pack("{s:s, s:s, s:I}", "phase", phase, "from", pd->host, "epoch",
			      (json_int_t)m->epoch);

	*out = NULL;
	if (!m->addr[0]) {
		snprintf(err, errlen, "host '%s' has no address", m->to);
		json_decref(b);
		return 502;
	}
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

enum outcome { OUT_FAILED, OUT_COMPLETED, OUT_UNKNOWN, OUT_GONE };

/* Follow the source VMM's migration to its end (also one a plinthd before this one
 * started: none at all is a failure); err says why on OUT_FAILED. */
static enum outcome follow(struct migration *m, int64_t end, char *err, size_t errlen)
{
	while (pd_mono_ms() < end) {
		json_t *info = vmm_info(m->sock), *mig = json_object_get(info, "migration");
		const char *st = jstr(mig, "status");

		if (!info)
			return OUT_GONE; /* exited: after a hand-off, or it died */
		if (!strcmp(st, "completed") || !strcmp(st, "unknown")) {
			enum outcome o = st[0] == 'c' ? OUT_COMPLETED : OUT_UNKNOWN;

			m->total_ms = json_integer_value(json_object_get(mig, "total_ms"));
			m->downtime_ms = json_integer_value(json_object_get(mig, "downtime_ms"));
			m->figures = true;
			json_decref(info);
			return o;
		}
		if (strcmp(st, "active")) {
			snprintf(err, errlen, "%s", st[0] ? jstr(mig, "error") : "it never started");
			json_decref(info);
			return OUT_FAILED;
		}
		json_decref(info);
		usleep(100000);
	}
	snprintf(err, errlen, "still migrating after %d s", MIGRATE_TIMEOUT_MS / 1000);
	return OUT_FAILED;
}

/* Start the source VMM's migration to listen and follow it to its end; err says why
 * on OUT_FAILED. */
static enum outcome transfer(struct plinthd *pd, struct migration *m, const char *listen,
			     char *err, size_t errlen)
{
	char body[160], e[256], *resp = NULL;
	int64_t end = pd_mono_ms() + MIGRATE_TIMEOUT_MS;
	unsigned refused = 0;
	enum outcome o;
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
	o = follow(m, end, err, errlen);
	/* The destination's plinth binds its port a moment after it starts; unless it is
	 * gone already (then its plinthd says so). */
	if (o == OUT_FAILED && strstr(err, "refused") && ++refused < REFUSED_RETRIES) {
		json_t *rep = NULL;
		char x[STORE_REASON_MAX];

		usleep(500000);
		if (ask_destination(pd, m, "confirm", &rep, x, sizeof(x)) == 409 &&
		    strstr(x, "no received copy")) {
			snprintf(err, errlen, "the destination's plinth ended before it listened");
			return OUT_FAILED;
		}
		json_decref(rep);
		goto again;
	}
	return o;
}

/* Under lock: the source's run is no longer migrating (it runs on here). */
static void source_stays(struct plinthd *pd, const struct migration *m)
{
	struct pd_run *run = pd_run_of(pd, m->vm_id);

	if (run)
		run->migrating = false;
}

/* The switch: the record's decision (confirm -> switched), owner = destination and
 * epoch + 1, in one transaction with its event. -ESTALE: the destination decided
 * first (m->rec says what). */
static int switch_owner(struct plinthd *pd, struct migration *m, const char *outcome)
{
	int64_t end = pd_mono_ms() + SWITCH_TIMEOUT_MS;
	struct store_migration next = m->rec;
	char figs[96];
	int ret;

	if (m->figures)
		snprintf(figs, sizeof(figs), "transfer %lld ms, downtime %lld ms",
			 (long long)m->total_ms, (long long)m->downtime_ms);
	else
		snprintf(figs, sizeof(figs), "transfer and downtime unknown");

	snprintf(next.phase, sizeof(next.phase), "switched");
	for (;;) {
		pthread_mutex_lock(&pd->lock);
		next.updated_ms = pd_now_ms();
		ret = pd->ops->begin(pd->st);
		if (!ret)
			ret = pd->ops->migration_update(pd->st, &next, m->rec.phase);
		if (!ret)
			ret = pd->ops->vm_set_owner(pd->st, m->vm_id, m->to, m->epoch);
		if (!ret)
			ret = pd_event(pd, "vm.migrate", m->name, "ok",
				       "moved from %s to %s (epoch %lld): %s, %s, switch %lld ms "
				       "after the start", pd->host, m->to, (long long)m->epoch + 1,
				       outcome, figs, (long long)(pd_mono_ms() - m->t0));
		if (!ret)
			ret = pd->ops->commit(pd->st);
		if (ret)
			pd->ops->rollback(pd->st);
		if (!ret)
			m->rec = next;
		else if (ret == -ESTALE && pd->ops->migration_get(pd->st, m->vm_id, &m->rec))
			ret = -EIO;
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

/* The VM is the destination's (switched, by either side): this host's copy, paused or
 * handed off, must never run again. */
static void source_ends(struct plinthd *pd, const struct migration *m)
{
	pthread_mutex_lock(&pd->lock);
	struct pd_run *run = pd_run_of(pd, m->vm_id);

	if (run && run->pid > 0)
		kill(run->pid, SIGKILL);
	pthread_mutex_unlock(&pd->lock);
	settle_source(pd, m->vm_id);
	record_done(pd, m);
}

/* The source's copy wins: decide it (-> aborted; the destination's decision stands if
 * it came first: -ESTALE), end the destination's copy, and resume: take the paused
 * source back. A paused source is resumed only once the decision is written. */
static int source_wins(struct plinthd *pd, struct migration *m, bool resume)
{
	char x[STORE_REASON_MAX], body[8], *resp = NULL;
	json_t *rep = NULL;
	int ret = strcmp(m->rec.phase, "aborted") ? set_phase(pd, m, "aborted") : 0;
	int status = 0;

	if (ret == -ESTALE && !strcmp(m->rec.phase, "aborted"))
		ret = 0;
	if (ret == -ESTALE || (ret && resume))
		return ret; /* switched there; or the recovery decides once it can write */
	ask_destination(pd, m, "abort", &rep, x, sizeof(x));
	json_decref(rep);
	if (resume)
		ctl_request(m->sock, "POST", "/v1/vm/resume", strcpy(body, "{}"), VMM_TIMEOUT_MS,
			    &status, &resp, x, sizeof(x));
	free(resp);
	pthread_mutex_lock(&pd->lock);
	source_stays(pd, m);
	pthread_mutex_unlock(&pd->lock);
	if (!ret)
		record_done(pd, m);
	return 0;
}

/* From the transfer's outcome on: confirm, switch, or the source's copy wins. 0 once the
 * VM runs on the destination and the inventory says so; else -1 with err set (and the
 * event written). */
static int conclude(struct plinthd *pd, struct migration *m, enum outcome out, char *err,
		    size_t errlen)
{
	char e[STORE_REASON_MAX];
	json_t *rep = NULL;
	int ret;

	if (out == OUT_FAILED) {
		snprintf(e, sizeof(e), "%s", err);
		snprintf(err, errlen, "transfer to %s failed: %.150s; the VM runs on here", m->to, e);
		goto out_stays;
	}
	if (strcmp(m->rec.phase, "confirm")) {
		ret = set_phase(pd, m, "confirm");
		if (ret == -ESTALE)
			goto out_decided;
	}
	test_stall(m, "confirm");
	/* confirm: the destination runs the guest (retried: it resumes after the ack) */
	for (int64_t end = pd_mono_ms() + CONFIRM_TIMEOUT_MS;;) {
		ret = ask_destination(pd, m, "confirm", &rep, e, sizeof(e));
		json_decref(rep);
		rep = NULL;
		if (!ret || pd_mono_ms() > end)
			break;
		usleep(300000);
	}
	if (ret && out == OUT_UNKNOWN) {
		/* The source is paused, never resumed by itself: take it back. */
		if (source_wins(pd, m, true))
			goto out_decided;
		snprintf(err, errlen, "the destination did not confirm (%.150s); the VM was "
				      "resumed here", e);
		goto out_event;
	}
	if (ret) { /* handed off, and the destination does not run it: it runs nowhere */
		char msg[STORE_REASON_MAX];

		snprintf(msg, sizeof(msg), "%s", e);
		if (source_wins(pd, m, false) == -ESTALE)
			goto out_decided;
		snprintf(err, errlen, "the source handed off but host '%s' does not run the VM: "
				      "%.120s", m->to, msg);
		goto out_gone;
	}
	ret = switch_owner(pd, m,
			   out == OUT_UNKNOWN ? "the final ack was lost, the destination confirmed"
			   : out == OUT_GONE  ? "completed (the source ended before it was asked "
						"for its figures)"
					      : "completed");
	if (ret == -ESTALE)
		goto out_decided;
	if (ret) {
		snprintf(err, errlen, "the VM runs on host '%s', but the inventory could not "
				      "be updated (%s): it still names this host",
			 m->to, strerror(-ret));
		goto out_event;
	}
	test_stall(m, "switched");
	source_ends(pd, m); /* the paused source (unknown) must never resume */
	log_info("VM %s: migrated to %s (transfer %lld ms, downtime %lld ms)", m->name, m->to,
		 (long long)m->total_ms, (long long)m->downtime_ms);
	return 0;
out_decided:
	/* The destination decided alone (its source looked down): its decision stands. */
	if (!strcmp(m->rec.phase, "switched")) {
		source_ends(pd, m);
		log_info("VM %s: host %s took it over while this host looked down", m->name, m->to);
		return 0;
	}
	if (strcmp(m->rec.phase, "aborted")) {
		snprintf(err, errlen, "the migration's record could not be written; the VM stays "
				      "paused here until it can be");
		goto out_event;
	}
	snprintf(err, errlen, "host '%s' gave the received copy up while this host looked "
			      "down; the VM runs on here", m->to);
	source_wins(pd, m, out == OUT_UNKNOWN);
	goto out_event;
out_stays:
	source_wins(pd, m, false);
	goto out_event;
out_gone:
	{
		struct store_vm vm;

		pthread_mutex_lock(&pd->lock);
		if (pd->ops->vm_get(pd->st, m->name, &vm) == 0) {
			pd_run_settle(pd, &vm);
			store_vm_clear(&vm);
		}
		pthread_mutex_unlock(&pd->lock);
	}
out_event:
	pthread_mutex_lock(&pd->lock);
	pd_event(pd, "vm.migrate", m->name, "failed", "%s", err);
	pthread_mutex_unlock(&pd->lock);
	return -1;
}

int pd_migrate_vm(struct plinthd *pd, struct pd_task *t, const char *name, const char *to,
		  char *why)
{
	struct migration m = {0};
	char err[STORE_REASON_MAX] = "", e[STORE_REASON_MAX];
	struct store_vm vm;
	json_t *rep = NULL;
	enum outcome out;
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
	if (!ret) { /* written ahead of prepare: a crash from here on is recovered */
		m.rec.vm_id = m.vm_id;
		snprintf(m.rec.vm, sizeof(m.rec.vm), "%s", m.name);
		snprintf(m.rec.source, sizeof(m.rec.source), "%s", pd->host);
		snprintf(m.rec.destination, sizeof(m.rec.destination), "%s", m.to);
		m.rec.epoch = m.epoch;
		snprintf(m.rec.phase, sizeof(m.rec.phase), "prepare");
		m.rec.started_ms = m.rec.updated_ms = pd_now_ms();
		ret = pd->ops->migration_insert(pd->st, &m.rec);
		if (ret == -EEXIST) { /* one left by a source gone for good: outdated */
			struct store_migration old;

			if (pd->ops->migration_get(pd->st, m.vm_id, &old) == 0 &&
			    old.epoch < m.epoch && !pd->ops->migration_delete(pd->st, m.vm_id))
				ret = pd->ops->migration_insert(pd->st, &m.rec);
		}
		if (ret == -EEXIST) {
			snprintf(err, sizeof(err), "an earlier migration of VM '%s' is still being "
						   "resolved", m.name);
			pthread_mutex_unlock(&pd->lock);
			goto out_stays;
		}
	}
	pthread_mutex_unlock(&pd->lock);
	if (ret) {
		snprintf(err, sizeof(err), "host '%s' or the VM cannot be read (%s)", m.to,
			 strerror(-ret));
		goto out_stays;
	}
	test_stall(&m, "prepare");
	ret = ask_destination(pd, &m, "prepare", &rep, e, sizeof(e));
	if (ret) {
		snprintf(err, sizeof(err), "host '%s' cannot receive it: %.150s", m.to, e);
		goto out_wins;
	}
	snprintf(m.rec.listen, sizeof(m.rec.listen), "%s", jstr(rep, "listen"));
	json_decref(rep);
	if (t->cancel) {
		snprintf(err, sizeof(err), "cancelled before the transfer");
		goto out_wins;
	}
	if (set_phase(pd, &m, "transfer")) {
		snprintf(err, sizeof(err), "the migration's record could not be written");
		goto out_wins;
	}
	test_stall(&m, "transfer");
	out = transfer(pd, &m, m.rec.listen, e, sizeof(e));
	if (conclude(pd, &m, out, e, sizeof(e)) == 0)
		return 0;
	snprintf(err, sizeof(err), "%s", e);
	goto out_failed;
out_wins:
	source_wins(pd, &m, false);
out_stays:
	pthread_mutex_lock(&pd->lock);
	source_stays(pd, &m);
	pd_event(pd, "vm.migrate", m.name, "failed", "%s", err);
	pthread_mutex_unlock(&pd->lock);
out_failed:
	log_info("VM %s: migration to %s failed: %s", m.name, m.to, err);
	snprintf(why, STORE_REASON_MAX, "%s", err);
	return -1;
}

/* --- Recovery -------------------------------------------------------------------------- */

/* The source's side of a migration found in the inventory with no task running it (this
 * plinthd started after a crash, or the task could not write its decision): resolved by
 * the record's phase, the owner and epoch, and the destination (the table at the top). */
static int recover(struct plinthd *pd, const char *name, char *why)
{
	struct migration m = {0};
	char err[STORE_REASON_MAX] = "";
	struct store_vm vm;
	enum outcome out;
	bool moved = false;
	int ret;

	m.t0 = pd_mono_ms();
	snprintf(m.name, sizeof(m.name), "%s", name);
	pthread_mutex_lock(&pd->lock);
	ret = pd->ops->vm_get(pd->st, name, &vm);
	if (!ret) {
		m.vm_id = vm.id;
		pd_run_socket(pd, vm.uuid, m.sock, sizeof(m.sock));
		ret = pd->ops->migration_get(pd->st, vm.id, &m.rec);
		moved = strcmp(vm.host, pd->host) != 0;
		if (!ret && !moved && vm.epoch != m.rec.epoch) /* outdated: owned here since */
			ret = pd->ops->migration_delete(pd->st, vm.id) ? -EIO : -ECANCELED;
		store_vm_clear(&vm);
	}
	if (!ret) {
		m.epoch = m.rec.epoch;
		snprintf(m.to, sizeof(m.to), "%s", m.rec.destination);
		if (host_address(pd, m.to, m.addr, sizeof(m.addr), false))
			m.addr[0] = '\0'; /* gone from the cluster: nothing to ask */
	}
	pthread_mutex_unlock(&pd->lock);
	if (ret == -ECANCELED)
		return 0;
	if (ret) {
		snprintf(why, STORE_REASON_MAX, "its record cannot be read (%s)", strerror(-ret));
		return -1;
	}
	log_info("VM %s: recovering its migration to %s (phase %s)", m.name, m.to, m.rec.phase);
	if (!strcmp(m.rec.phase, "switched") || moved) {
		source_ends(pd, &m);
		log_info("VM %s: recovered: it runs on host %s", m.name, m.to);
		return 0;
	}
	if (!strcmp(m.rec.phase, "prepare") || !strcmp(m.rec.phase, "aborted")) {
		/* Nothing was transferred; or the decision was written: the source's copy
		 * wins (taken back if it is paused). */
		if (source_wins(pd, &m, true) == -ESTALE)
			return recover(pd, name, why);
		log_info("VM %s: recovered: it runs on here", m.name);
		return 0;
	}
	/* transfer, confirm: its VMM may still be at it, or done; follow it, then ask. */
	out = follow(&m, pd_mono_ms() + MIGRATE_TIMEOUT_MS, err, sizeof(err));
	if (conclude(pd, &m, out, err, sizeof(err)) == 0)
		return 0;
	snprintf(why, STORE_REASON_MAX, "%s", err);
	return -1;
}

static void *migrate_main(void *arg)
{
	struct pd_task *t = arg;
	struct plinthd *pd = t->pd;
	char err[STORE_REASON_MAX] = "";
	bool ok = t->src[0] ? !recover(pd, t->object, err)
			    : !pd_migrate_vm(pd, t, t->object, t->dst_name, err);

	pthread_mutex_lock(&pd->lock);
	pd_task_record(pd, t->id, ok ? "done" : "failed", 0, 0, ok ? NULL : err);
	t->done = true;
	pthread_mutex_unlock(&pd->lock);
	return NULL;
}

/* Is host name down (no heartbeat for PD_HOST_DOWN_MS, or gone)? */
static bool host_down(struct plinthd *pd, const char *name)
{
	struct store_host *hosts;
	bool down = true;
	size_t n, i;

	if (pd->ops->host_list(pd->st, &hosts, &n))
		return false; /* not known: the inventory is out of reach */
	for (i = 0; i < n; i++)
		if (!strcmp(hosts[i].name, name))
			down = !hosts[i].heartbeat_ms || hosts[i].age_ms > PD_HOST_DOWN_MS;
	free(hosts);
	return down;
}

/* The destination, its source down: decide alone. A received copy that runs had the
 * whole guest and acknowledged it (the source's VMM handed off, or waits paused for
 * its plinthd, which resumes it only once it wrote "aborted"): the VM is taken over
 * (-> switched, owner here, epoch + 1: the compare-and-set fails if the source or an HA
 * restart decided first). One that does not run yet is given up (-> aborted, killed). */
static void decide_alone(struct plinthd *pd, struct pd_run *run, struct store_migration *rec)
{
	char sock[256];
	json_t *info;
	bool running;
	int ret;

	pd_run_socket(pd, run->uuid, sock, sizeof(sock));
	info = vmm_info(sock);
	running = !strcmp(jstr(info, "state"), "running");
	json_decref(info);
	snprintf(rec->phase, sizeof(rec->phase), "%s", running ? "switched" : "aborted");
	rec->updated_ms = pd_now_ms();
	ret = pd->ops->begin(pd->st);
	if (!ret) {
		struct store_migration was;

		ret = pd->ops->migration_get(pd->st, run->vm_id, &was);
		if (!ret)
			ret = pd->ops->migration_update(pd->st, rec, was.phase);
	}
	if (!ret && running)
		ret = pd->ops->vm_set_owner(pd->st, run->vm_id, pd->host, rec->epoch);
	if (!ret)
		ret = pd_event(pd, "vm.migrate", run->name, running ? "ok" : "failed",
			       running ? "host %s down mid-migration: taken over by %s (epoch %lld)"
				       : "host %s down mid-migration: %s gave its received copy "
					 "up (epoch %lld)",
			       rec->source, pd->host,
			       (long long)(running ? rec->epoch + 1 : rec->epoch));
	if (!ret)
		ret = pd->ops->commit(pd->st);
	if (ret) {
		pd->ops->rollback(pd->st);
		return; /* decided otherwise meanwhile: the next look sees it */
	}
	log_info("VM %s: its source %s is down; the received copy %s", run->name, rec->source,
		 running ? "takes it over" : "is given up");
	if (!running && run->pid > 0)
		kill(run->pid, SIGKILL);
}

/* The destination's received copies: kept while the record is undecided and the source
 * is up; killed once the record says aborted, is gone, or the VM moved on. */
static void watch_incoming(struct plinthd *pd)
{
	struct pd_run *run;

	for (run = pd->runs; run; run = run->next) {
		struct store_migration rec;
		struct store_vm vm;
		bool owned, give_up;
		int ret;

		if (!run->incoming || run->pid <= 0 || run->stop_requested ||
		    pd->ops->vm_get(pd->st, run->name, &vm))
			continue;
		owned = !strcmp(vm.host, pd->host) && vm.epoch > run->incoming_epoch;
		ret = owned ? 0 : pd->ops->migration_get(pd->st, run->vm_id, &rec);
		give_up = !owned && (ret == -ENOENT ||
				     (!ret && (!strcmp(rec.phase, "aborted") ||
					       strcmp(rec.destination, pd->host) ||
					       strcmp(vm.host, rec.source) ||
					       vm.epoch != rec.epoch)));
		if (give_up) {
			log_info("VM %s: its migration here is over without it; killing the "
				 "received copy", run->name);
			kill(run->pid, SIGKILL);
			run->stop_requested = true;
		} else if (!owned && !ret && strcmp(rec.phase, "switched") &&
			   host_down(pd, rec.source)) {
			decide_alone(pd, run, &rec);
		}
		store_vm_clear(&vm);
	}
}

/* An evacuation runs here: its migrations (pd_migrate_vm, one VM at a time) have
 * records no vm.migrate task names. */
static bool evacuating(const struct plinthd *pd)
{
	const struct pd_task *t;

	for (t = pd->tasks; t; t = t->next)
		if (!t->done && !strcmp(t->action, "host.evacuate"))
			return true;
	return false;
}

void pd_migrations_tick(struct plinthd *pd)
{
	struct store_migration *recs;
	int64_t retry = 0;
	size_t n, i;

	if (pd_mono_ms() - pd->migrations_scan_ms < 1000)
		return;
	pd->migrations_scan_ms = pd_mono_ms();
	watch_incoming(pd);
	if (evacuating(pd) || pd->ops->migration_list(pd->st, &recs, &n))
		return; /* (its records are recovered once it ends) */
	for (i = 0; i < n; i++) {
		struct pd_reply r = {0};
		struct store_vm vm;
		struct pd_task *t;
		int ret;

		if (strcmp(recs[i].source, pd->host) || pd_migrating_away(pd, recs[i].vm))
			continue;
		ret = pd->ops->vm_get(pd->st, recs[i].vm, &vm);
		if (ret == -ENOENT || (!ret && vm.id != recs[i].vm_id))
			pd->ops->migration_delete(pd->st, recs[i].vm_id); /* the VM is gone */
		if (!ret)
			store_vm_clear(&vm);
		if (ret || pd_mono_ms() < pd->migrations_retry_ms)
			continue;
		t = calloc(1, sizeof(*t));
		if (!t)
			break;
		snprintf(t->object, sizeof(t->object), "%s", recs[i].vm);
		snprintf(t->action, sizeof(t->action), "vm.migrate");
		snprintf(t->dst_name, sizeof(t->dst_name), "%s", recs[i].destination);
		snprintf(t->src, sizeof(t->src), "recover");
		retry = pd_mono_ms() + RECOVER_RETRY_MS;
		if (pd_task_launch(pd, t, "migrate", migrate_main, &r) == 0)
			log_info("VM %s: its migration to %s was cut short (phase %s): "
				 "recovering it", recs[i].vm, recs[i].destination, recs[i].phase);
		json_decref(r.body);
	}
	if (retry)
		pd->migrations_retry_ms = retry;
	free(recs);
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
