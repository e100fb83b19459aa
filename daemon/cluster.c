// SPDX-License-Identifier: MIT
/*
 * The cluster thread (cluster.h): heartbeat and leader lease. Every period:
 *
 *   1. heartbeat (register again if the row is gone);
 *   2. t0 = monotonic now; claim the lease for PD_LEASE_MS of the database clock;
 *      granted -> leading until t0 + PD_LEASE_MS by this host's monotonic clock.
 *      The database set the expiry at its own now + PD_LEASE_MS, which is after t0,
 *      so the local end comes first: a leader stops believing it leads before
 *      anyone else can be granted the lease (clock rates aside: docs/cluster.md).
 *
 * A failed claim (database unreachable) changes nothing but time: the local end
 * passes and the host stops leading. Leadership moves no VM: leading is a right to
 * decide (placement, later HA), and every decision is a transaction that checks
 * the term (later parts).
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/watchdog.h>

#include "core.h"
#include "log.h"

struct pd_cluster {
	const struct store_ops *ops;
	struct store *st;	/* the thread's own connection */
	struct store_host self; /* what is registered */
	pthread_t thread;
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t wake;
	bool quit;
	bool leading;	/* granted at the last claim */
	bool announced; /* leading, as last logged (the cluster thread's) */
	int64_t term;
	int64_t lead_until_ms; /* monotonic: t0 of that claim + PD_LEASE_MS */
	/* HA (docs/cluster.md, the fencing rules); the thread's own but for the flags */
	struct plinthd *pd;	   /* read only: dir, cluster key, overcommit, placement */
	bool shared;		   /* a cluster's inventory (PostgreSQL): HA applies */
	int64_t last_ok_ms;	   /* monotonic start of the last committed heartbeat */
	int64_t contact_since_ms;  /* monotonic start of the current run of heartbeats
				    * no more than 2 periods apart (0: none yet) */
	struct store_host *peers;  /* the host list as last read (peer questions) */
	size_t n_peers;
	bool outage;		   /* no contact, and a majority of peers has none either */
	bool isolated;		   /* no contact while others have: HA VMs must stop */
	bool no_quorum;		   /* a lost host's restarts wait for condition 3 (logged) */
	int64_t rejoin_ms;	   /* monotonic: when, in an outage, peers were first heard
				    * in contact again (0: not since) */
	int wd_fd;		   /* the host's watchdog (--watchdog), -1 without */
	char wd_path[256];
	pthread_t wd_thread;	   /* feeds wd_fd (watchdog_main) */
	bool wd_starved;	   /* not fed at the last period (logged once; its own) */
	int64_t next_wait_ms;	   /* the cluster thread's next sleep (ha_check may shorten
				    * it; its own) */
};

static void cluster_event(struct pd_cluster *c, const char *action, const char *object,
			  const char *result, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* An event on the thread's connection (object NULL: this host). */
static void cluster_event(struct pd_cluster *c, const char *action, const char *object,
			  const char *result, const char *fmt, ...)
{
	struct store_event ev = {0};
	va_list ap;

	ev.time_ms = pd_now_ms();
	snprintf(ev.actor, sizeof(ev.actor), "plinthd");
	snprintf(ev.action, sizeof(ev.action), "%s", action);
	snprintf(ev.object, sizeof(ev.object), "%s", object ? object : c->self.name);
	snprintf(ev.result, sizeof(ev.result), "%s", result);
	va_start(ap, fmt);
	vsnprintf(ev.message, sizeof(ev.message), fmt, ap);
	va_end(ap);
	c->ops->event_append(c->st, &ev);
}

static int heartbeat(struct pd_cluster *c)
{
	int ret = c->ops->host_heartbeat(c->st, c->self.name, PD_CONTACT_GAP_MS);

	if (ret == -ENOENT) {
		struct store_host h = c->self;

		ret = c->ops->host_register(c->st, &h);
		if (!ret)
			log_info("cluster: host %s registered again", h.name);
	}
	if (ret)
		log_debug("cluster: heartbeat of %s failed (%d)", c->self.name, ret);
	return ret;
}

static void claim(struct pd_cluster *c)
{
	struct store_leader l;
	int64_t t0 = pd_mono_ms(), term;
	int ret = c->ops->leader_claim(c->st, c->self.name, PD_LEASE_MS, &l);
	bool granted = !ret && !strcmp(l.host, c->self.name) && l.expires_in_ms > 0;
	bool now;

	pthread_mutex_lock(&c->lock);
	if (granted) {
		c->leading = true;
		c->lead_until_ms = t0 + PD_LEASE_MS;
		c->term = l.term;
	} else if (!ret) {
		c->leading = false; /* someone else holds it */
	}
	/* On an error: unknown; lead_until_ms runs out on its own. */
	now = c->leading && pd_mono_ms() < c->lead_until_ms;
	term = c->term;
	pthread_mutex_unlock(&c->lock);
	if (now == c->announced)
		return;
	c->announced = now;
	if (now) {
		log_info("cluster: %s leads (term %lld)", c->self.name, (long long)term);
		cluster_event(c, "cluster.leader", NULL, "ok", "leads the cluster (term %lld)",
			      (long long)term);
	} else {
		log_info("cluster: %s no longer leads (%s)", c->self.name,
			 ret ? "its lease ran out: the inventory did not answer" : l.host);
	}
}

/* --- HA: contact, isolation, the watchdog file, the leader's restarts --------------- */

/* Hosts as the inventory last listed them (peer questions need them when it is gone). */
static void remember_peers(struct pd_cluster *c)
{
	struct store_host *hosts;
	size_t n;

	if (c->ops->host_list(c->st, &hosts, &n))
		return;
	free(c->peers);
	c->peers = hosts;
	c->n_peers = n;
}

/*
 * Rule 1: after PD_ISOLATION_MS without a committed heartbeat, ask the peers (their
 * plinthd over TLS, GET /v1/host: contact_age_ms). Any that committed a heartbeat
 * more than two periods after this host's last, or no majority answering: isolated
 * (the others may restart our HA VMs: stop them). A majority answering, none with a
 * later commit: a database outage (nobody can restart anything): keep every VM.
 */
static void ask_peers(struct pd_cluster *c)
{
	size_t i, hosts = 0, answered = 0, recent = 0;
	int64_t mine = pd_mono_ms() - c->last_ok_ms;

	for (i = 0; i < c->n_peers; i++) {
		const struct store_host *h = &c->peers[i];
		struct pd_reply r = {0};
		json_t *age;

		if (!h->heartbeat_ms) /* stopped cleanly: not a member now */
			continue;
		hosts++;
		if (!strcmp(h->name, c->self.name) || !h->address[0] || !c->pd->cluster_key[0])
			continue;
		pd_forward(c->pd, h->name, h->address, "GET", "/v1/host", NULL, NULL, 0, "plinthd",
			   2000, &r);
		age = r.status == 200 ? json_object_get(r.body, "contact_age_ms") : NULL;
		if (json_is_integer(age)) {
			answered++;
			/* It committed well after this host's last commit: the database
			 * answers others (peers heartbeat at other phases of the period). */
			if (json_integer_value(age) >= 0 &&
			    json_integer_value(age) + 2 * PD_HEARTBEAT_MS < mine)
				recent++;
		}
		json_decref(r.body);
	}
	pthread_mutex_lock(&c->lock);
	/* The end of an outage: the peers that reconnected first commit before this
	 * host's next try (a stale connection fails once, the reconnect follows). It
	 * gets PD_REJOIN_MS from then to commit before it counts as isolated: no leader
	 * acts until a majority has been back for I + W (rule 2, condition 3). */
	if (recent && c->outage && (answered + 1) * 2 > hosts) {
		int64_t now = pd_mono_ms();

		if (!c->rejoin_ms) {
			c->rejoin_ms = now;
			log_info("cluster: the inventory answers the peers again: %s rejoining",
				 c->self.name);
		}
		if (now - c->rejoin_ms < PD_REJOIN_MS) {
			pthread_mutex_unlock(&c->lock);
			return;
		}
	}
	if (recent || (answered + 1) * 2 <= hosts) {
		if (!c->isolated)
			log_error("cluster: %s is isolated (no heartbeat committed for %d s; %zu of "
				  "%zu peers answered, %zu in contact): stopping its HA VMs",
				  c->self.name, PD_ISOLATION_MS / 1000, answered, hosts - 1, recent);
		c->isolated = true;
		c->outage = false;
	} else {
		if (!c->outage)
			log_error("cluster: the inventory is unreachable for every host (%zu of %zu "
				  "peers answered, none in contact): a database outage, every VM "
				  "keeps running", answered, hosts - 1);
		c->outage = true;
		c->rejoin_ms = 0;
	}
	pthread_mutex_unlock(&c->lock);
}

static void contact(struct pd_cluster *c, int64_t t0, bool ok)
{
	if (ok) {
		pthread_mutex_lock(&c->lock);
		if (!c->contact_since_ms || t0 - c->last_ok_ms > 2 * PD_HEARTBEAT_MS)
			c->contact_since_ms = t0;
		c->last_ok_ms = t0;
		if (c->isolated || c->outage)
			log_info("cluster: %s is in contact again", c->self.name);
		c->isolated = false;
		c->outage = false;
		c->rejoin_ms = 0;
		pthread_mutex_unlock(&c->lock);
		if (c->shared)
			remember_peers(c);
		return;
	}
	if (c->shared && c->last_ok_ms && pd_mono_ms() - c->last_ok_ms > PD_ISOLATION_MS)
		ask_peers(c);
}

/*
 * The watchdogs (docs/cluster.md, rule 1). DIR/contact holds the monotonic time until
 * which HA VMs may run ("DEADLINE\n", ms); each HA VM's shim kills its plinth once it
 * passes. Fed while the host is in contact (its last heartbeat started less than
 * PD_ISOLATION_MS ago) or in a confirmed database outage; a plinthd that hangs or dies
 * stops feeding. The host's watchdog device (--watchdog) is fed under the same rule,
 * and also while none of this host's HA VMs' processes is left (an isolated host that
 * killed them runs on with its other VMs): what it adds is that a host
 * whose kernel or plinthd hangs, or whose plinth is stuck where SIGKILL cannot reach
 * it (an NFS write to a server it cannot reach), is reset by W. Its own thread feeds
 * it, every period: the cluster thread can wait seconds on a database it lost.
 */
static bool may_run_ha(struct pd_cluster *c, int64_t now)
{
	bool yes;

	pthread_mutex_lock(&c->lock);
	yes = c->outage || (c->last_ok_ms && now - c->last_ok_ms < PD_ISOLATION_MS);
	pthread_mutex_unlock(&c->lock);
	return yes;
}

static void feed_watchdog(struct pd_cluster *c)
{
	char path[PD_DIR_MAX + 32], tmp[PD_DIR_MAX + 32], text[32];
	int64_t now = pd_mono_ms();
	int fd;

	if (!c->shared || !may_run_ha(c, now))
		return;
	snprintf(path, sizeof(path), "%s/contact", c->pd->dir);
	snprintf(tmp, sizeof(tmp), "%s/.contact.tmp", c->pd->dir);
	snprintf(text, sizeof(text), "%lld\n", (long long)(now + PD_WATCHDOG_MS));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) == (ssize_t)strlen(text))
		rename(tmp, path);
	close(fd);
}

/*
 * Open the host's watchdog and set its timeout to W. A character device speaks the
 * kernel's watchdog API (a driver that cannot take W exactly keeps the next longer
 * timeout it has: logged; one that cannot be set at all is refused). A FIFO is fed
 * the same bytes, for a watchdog daemon in userspace. -1 with the reason logged.
 */
int pd_watchdog_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK), t = PD_WATCHDOG_MS / 1000;
	struct stat st;

	if (fd < 0) {
		log_error("--watchdog %s: %s", path, errno == ENXIO ? "a FIFO nobody reads (no "
			  "watchdog daemon has it open)" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
		log_error("--watchdog %s: not a watchdog device (a character device, or a FIFO "
			  "a watchdog daemon reads)", path);
		close(fd);
		return -1;
	}
	if (S_ISCHR(st.st_mode)) {
		if (ioctl(fd, WDIOC_SETTIMEOUT, &t) < 0) {
			log_error("--watchdog %s: cannot set its timeout to %d s: %s", path,
				  PD_WATCHDOG_MS / 1000, strerror(errno));
			/* Disarm what the open armed before giving up. */
			if (write(fd, "V", 1) != 1)
				log_error("--watchdog %s: cannot disarm it", path);
			close(fd);
			return -1;
		}
		if (t != PD_WATCHDOG_MS / 1000)
			log_warn("--watchdog %s: its timeout is %d s, not %d s: a host that stops "
				 "feeding it is reset %d s later than the fencing rules count",
				 path, t, PD_WATCHDOG_MS / 1000, t - PD_WATCHDOG_MS / 1000);
	}
	log_info("cluster: feeding the watchdog %s (timeout %d s)", path, t);
	return fd;
}

/* Sleep ms (at most one heartbeat period), or less if the stop comes: false once it has. */
static bool wait_period(struct pd_cluster *c, int64_t ms)
{
	struct timespec until;
	bool quit;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += ms % 1000 * 1000000L;
	until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&c->lock);
	while (!c->quit && pthread_cond_timedwait(&c->wake, &c->lock, &until) != ETIMEDOUT)
		;
	quit = c->quit;
	pthread_mutex_unlock(&c->lock);
	return !quit;
}

/* Is process pid there and not a zombie (one that ended does no I/O)? */
static bool process_runs(pid_t pid)
{
	char path[32], buf[512], *paren;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = pd_read_small(path, buf, sizeof(buf));
	if (n <= 0)
		return false;
	paren = strrchr(buf, ')'); /* "PID (COMM) STATE ...", COMM may hold anything */
	return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

/*
 * Does any HA VM of this host still run? The monitor lists them (it may be stuck on
 * a database it lost, so the list may be old): whether each process is still there
 * is looked at here. More than the list holds counts as yes.
 */
static bool ha_vms_run(struct plinthd *pd)
{
	bool yes = false;
	unsigned i;

	pthread_mutex_lock(&pd->ha_lock);
	if (pd->n_ha_pids > PD_HA_PIDS_MAX)
		yes = true;
	for (i = 0; !yes && i < pd->n_ha_pids; i++)
		yes = process_runs(pd->ha_pids[i]);
	pthread_mutex_unlock(&pd->ha_lock);
	return yes;
}

static void *watchdog_main(void *arg)
{
	struct pd_cluster *c = arg;
	bool feed;

	for (;;) {
		feed = may_run_ha(c, pd_mono_ms()) || !ha_vms_run(c->pd);
		/* Any byte but 'V' is a keepalive (the kernel's watchdog API). */
		if (feed && write(c->wd_fd, "k", 1) != 1)
			log_error("cluster: the watchdog %s: %s", c->wd_path, strerror(errno));
		if (!feed && !c->wd_starved)
			log_error("cluster: %s stops feeding the watchdog %s: out of contact with "
				  "HA VMs still running, the host is reset within %d s unless they "
				  "end", c->self.name, c->wd_path, PD_WATCHDOG_MS / 1000);
		c->wd_starved = !feed;
		if (!wait_period(c, PD_HEARTBEAT_MS))
			return NULL;
	}
}

/* A clean stop: the magic close, so the host is not reset while no plinthd runs (its
 * VMs run on and the next plinthd adopts them; a driver built with nowayout still
 * resets it: the next plinthd must start within W). */
void pd_watchdog_close(int fd, const char *path)
{
	if (fd < 0)
		return;
	if (write(fd, "V", 1) != 1)
		log_error("cluster: cannot disarm the watchdog %s: %s", path, strerror(errno));
	close(fd);
}

static void watchdog_close(struct pd_cluster *c)
{
	pd_watchdog_close(c->wd_fd, c->wd_path);
	c->wd_fd = -1;
}

static void count_vm(struct pd_place_host *h, size_t n, const struct store_vm *vm);
static void mark_group(struct pd_place_host *ph, size_t nh, const struct store_vm *vms, size_t nv,
		       const struct pd_vm_def *def);

static bool restartable(const struct store_vm *vm, const char *dead, struct pd_vm_def *def)
{
	struct pd_error err;

	return !strcmp(vm->host, dead) &&
	       (!strcmp(vm->state, "starting") || !strcmp(vm->state, "running") ||
		!strcmp(vm->state, "paused")) &&
	       !pd_vm_def_parse(vm->spec, def, &err) && def->ha;
}

/* Move dead's HA VMs to the hosts placement chooses, in one transaction that holds
 * the lease (term) and the placement lock; the new owners start them (vms.c). */
static void restart_elsewhere(struct pd_cluster *c, const struct store_host *dead,
			      const struct store_host *hosts, size_t nh, int64_t term)
{
	enum pd_placement policy = c->pd->placement == PD_PLACE_PACK ? PD_PLACE_PACK
								     : PD_PLACE_SPREAD;
	struct pd_place_host *ph = calloc(nh, sizeof(*ph));
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct store_vm *vms = NULL;
	struct store_leader l;
	size_t nv = 0, i, moved = 0, failed = 0;
	int ret = -ENOMEM;

	if (!ph || !def)
		goto out_free;
	ret = c->ops->begin(c->st);
	if (ret)
		goto out_free;
	ret = c->ops->placement_lock(c->st);
	if (!ret)
		ret = c->ops->leader_get(c->st, &l);
	if (!ret && (strcmp(l.host, c->self.name) || l.term != term || l.expires_in_ms <= 0))
		ret = -ESTALE; /* deposed meanwhile: the next leader decides */
	if (!ret)
		ret = c->ops->vm_list(c->st, &vms, &nv);
	if (ret)
		goto out_rollback;
	for (i = 0; i < nh; i++) {
		ph[i].name = hosts[i].name;
		ph[i].up = hosts[i].heartbeat_ms && hosts[i].age_ms <= PD_HOST_DOWN_MS &&
			   strcmp(hosts[i].name, dead->name);
		ph[i].maintenance = hosts[i].maintenance;
		ph[i].mem_limit_mib = (uint64_t)((double)hosts[i].memory_mib * c->pd->overcommit);
		ph[i].vcpu_limit = (uint64_t)hosts[i].cpus * PD_VCPUS_PER_CPU;
	}
	for (i = 0; i < nv; i++)
		count_vm(ph, nh, &vms[i]);
	for (i = 0; i < nv && !ret; i++) {
		struct store_vm *vm = &vms[i];
		int k;

		if (!restartable(vm, dead->name, def))
			continue;
		mark_group(ph, nh, vms, nv, def); /* as moved so far: vms[].host follows */
		k = pd_place(ph, nh, policy, def->memory_mib, def->cpus);
		if (k < 0) {
			failed++;
			cluster_event(c, "vm.ha", vm->name, "failed",
				      "host %s lost: no host that is up has room for it%s%s%s",
				      dead->name,
				      def->anti_affinity[0] ? " away from the VMs of its "
							      "anti-affinity group '" : "",
				      def->anti_affinity, def->anti_affinity[0] ? "'" : "");
			continue;
		}
		ret = c->ops->vm_set_owner(c->st, vm->id, ph[k].name, vm->epoch);
		if (ret)
			break;
		vm->epoch++;
		snprintf(vm->host, sizeof(vm->host), "%s", ph[k].name);
		snprintf(vm->state, sizeof(vm->state), "starting");
		vm->pid = 0; /* starting without a process: its new owner starts it */
		snprintf(vm->reason, sizeof(vm->reason),
			 "HA: host %s lost (no heartbeat for %lld ms); restarted on %s", dead->name,
			 (long long)dead->age_ms, ph[k].name);
		vm->updated_ms = pd_now_ms();
		ret = c->ops->vm_update(c->st, vm);
		if (!ret)
			cluster_event(c, "vm.ha", vm->name, "ok", "%s (epoch %lld)", vm->reason,
				      (long long)vm->epoch);
		ph[k].mem_used_mib += def->memory_mib;
		ph[k].vcpus_used += def->cpus;
		moved++;
	}
	if (ret || !moved) /* (nothing to restart, or no room: asked again next period) */
		goto out_rollback;
	cluster_event(c, "cluster.host-dead", dead->name, "ok",
		      "no heartbeat for %lld ms: %zu HA VMs restarted elsewhere, %zu without room",
		      (long long)dead->age_ms, moved, failed);
	ret = c->ops->commit(c->st);
	if (!ret)
		log_info("cluster: host %s lost (no heartbeat for %lld ms): %zu HA VMs moved",
			 dead->name, (long long)dead->age_ms, moved);
	if (!ret)
		goto out_free;
out_rollback:
	c->ops->rollback(c->st);
out_free:
	store_vm_list_free(vms, nv);
	free(def);
	free(ph);
}

/* How long h has been in unbroken contact (its heartbeats no more than
 * PD_CONTACT_GAP_MS apart, the last one too), by the database's clock; 0 if it is not. */
static int64_t unbroken_contact_ms(const struct store_host *h)
{
	return h->heartbeat_ms && h->contact_since_ms && h->age_ms <= PD_CONTACT_GAP_MS
		       ? h->contact_ms
		       : 0;
}

/*
 * Rule 2's condition 3: at least half of the members (hosts not stopped cleanly) have
 * been in unbroken contact for I + W. Rule 1 takes a silence for a database outage
 * only when more than half of the members (itself included) agree, so the two sets
 * share a host that was in contact all along: a lost host that asked the peers in
 * those I + W has heard of a recent commit and stopped its HA VMs.
 */
static bool contact_quorum(struct pd_cluster *c, const struct store_host *hosts, size_t nh,
			   const char *dead)
{
	size_t members = 0, steady = 0, i;

	for (i = 0; i < nh; i++) {
		if (!hosts[i].heartbeat_ms)
			continue;
		members++;
		if (unbroken_contact_ms(&hosts[i]) >= PD_ISOLATION_MS + PD_WATCHDOG_MS)
			steady++;
	}
	if (steady * 2 >= members) {
		c->no_quorum = false;
		return true;
	}
	if (!c->no_quorum)
		log_info("cluster: host %s lost, but only %zu of %zu hosts have been in unbroken "
			 "contact for %d s: its HA VMs wait", dead, steady, members,
			 (PD_ISOLATION_MS + PD_WATCHDOG_MS) / 1000);
	c->no_quorum = true;
	return false;
}

/* Rule 2, as the leader: restart the HA VMs of hosts without a heartbeat for PD_DEAD_MS
 * on others, each in the transaction that moves its owner (epoch + 1), once at least
 * half of the hosts have been in unbroken contact for I + W (condition 3). */
static void ha_check(struct pd_cluster *c)
{
	struct store_host *hosts = NULL;
	size_t nh = 0, i;
	int64_t term;

	if (!pd_cluster_leading(c, &term))
		return;
	pthread_mutex_lock(&c->lock);
	/* After an outage every host gets PD_DEAD_MS again to heartbeat. */
	if (pd_mono_ms() - c->contact_since_ms < PD_DEAD_MS) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	if (c->ops->host_list(c->st, &hosts, &nh))
		return;
	for (i = 0; i < nh; i++) {
		if (!strcmp(hosts[i].name, c->self.name) || !hosts[i].heartbeat_ms)
			continue;
		if (hosts[i].age_ms > PD_DEAD_MS) {
			if (contact_quorum(c, hosts, nh, hosts[i].name))
				restart_elsewhere(c, &hosts[i], hosts, nh, term);
		} else {
			/* Due before the next period ends: look again when it is. Safety
			 * comes from T alone: that look reads the age again. */
			c->next_wait_ms = pd_ha_wait_ms(c->next_wait_ms, hosts[i].age_ms,
							PD_DEAD_MS, PD_DEAD_SLACK_MS);
		}
	}
	free(hosts);
}

static void *cluster_main(void *arg)
{
	struct pd_cluster *c = arg;

	for (;;) {
		int64_t t0 = pd_mono_ms();
		bool ok = heartbeat(c) == 0;

		contact(c, t0, ok);
		claim(c);
		c->next_wait_ms = PD_HEARTBEAT_MS;
		if (ok && c->shared)
			ha_check(c);
		feed_watchdog(c);
		if (!wait_period(c, c->next_wait_ms))
			break;
	}
	return NULL;
}

/*
 * Is this host's name held by a live plinthd (a heartbeat within PD_HOST_DOWN_MS)?
 * Two plinthd under one name would both run that host's VMs. A clean stop frees the
 * name at once (host_leave); after a crash it is free PD_HOST_DOWN_MS later.
 */
static bool name_in_use(struct pd_cluster *c)
{
	struct store_host *hosts;
	size_t n, i;
	bool used = false;

	if (c->ops->host_list(c->st, &hosts, &n)) {
		log_error("cluster: cannot read the hosts of the inventory");
		return true;
	}
	for (i = 0; i < n && !used; i++) {
		if (strcmp(hosts[i].name, c->self.name) || !hosts[i].heartbeat_ms ||
		    hosts[i].age_ms > PD_HOST_DOWN_MS)
			continue;
		used = true;
		log_error("cluster: host name '%s' is in use: its plinthd heartbeated %lld ms ago "
			  "(every plinthd on one inventory needs its own --host-name; after a "
			  "crash the name is free %d s after the last heartbeat)",
			  c->self.name, (long long)hosts[i].age_ms, PD_HOST_DOWN_MS / 1000);
	}
	free(hosts);
	return used;
}

struct pd_cluster *pd_cluster_start(struct plinthd *pd, const struct store_ops *ops,
				    const char *location, bool shared, const char *host,
				    const char *address, int wd_fd, const char *wd_path)
{
	struct pd_cluster *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!c) {
		log_error("out of memory");
		pd_watchdog_close(wd_fd, wd_path);
		return NULL;
	}
	c->ops = ops;
	c->pd = pd;
	c->shared = shared;
	c->wd_fd = wd_fd;
	snprintf(c->wd_path, sizeof(c->wd_path), "%s", wd_path ? wd_path : "");
	snprintf(c->self.name, sizeof(c->self.name), "%s", host);
	snprintf(c->self.address, sizeof(c->self.address), "%s", address ? address : "");
	c->self.cpus = cpus > 0 ? (unsigned)cpus : 1;
	c->self.memory_mib = pd_host_mem_mib();
	pd_host_cpu_flags(c->self.cpu_flags, sizeof(c->self.cpu_flags));
	c->st = ops->open(location);
	if (!c->st)
		goto out_free;
	if (shared && name_in_use(c))
		goto out_close;
	if (ops->host_register(c->st, &c->self)) {
		log_error("cluster: cannot register host %s in the inventory", host);
		goto out_close;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (c->wd_fd >= 0 && pthread_create(&c->wd_thread, NULL, watchdog_main, c)) {
		log_error("cannot create the watchdog thread");
		goto out_destroy;
	}
	if (pthread_create(&c->thread, NULL, cluster_main, c)) {
		log_error("cannot create the cluster thread");
		goto out_join;
	}
	log_info("cluster: host %s (%u CPUs, %llu MiB) registered", host, c->self.cpus,
		 (unsigned long long)c->self.memory_mib);
	return c;

out_join:
	if (c->wd_fd >= 0) {
		pthread_mutex_lock(&c->lock);
		c->quit = true;
		pthread_cond_broadcast(&c->wake);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->wd_thread, NULL);
	}
out_destroy:
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
out_close:
	ops->close(c->st);
out_free:
	watchdog_close(c);
	free(c);
	return NULL;
}

void pd_cluster_stop(struct pd_cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->quit = true;
	pthread_cond_broadcast(&c->wake); /* the cluster thread and the watchdog's */
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	if (c->wd_fd >= 0)
		pthread_join(c->wd_thread, NULL);
	if (c->leading && !c->ops->leader_release(c->st, c->self.name))
		log_info("cluster: %s let the leader lease go", c->self.name);
	c->ops->host_leave(c->st, c->self.name);
	c->ops->close(c->st);
	/* A clean stop leaves the VMs running and is never taken for a lost host (its
	 * heartbeat is 0): the watchdog is disarmed until the next plinthd feeds it. */
	if (c->shared) {
		char path[PD_DIR_MAX + 32];
		int fd;

		snprintf(path, sizeof(path), "%s/contact", c->pd->dir);
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "disarmed\n", 9) != 9)
				log_error("cluster: %s: cannot disarm the watchdog", path);
			close(fd);
		}
	}
	watchdog_close(c);
	free(c->peers);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

bool pd_cluster_isolated(struct pd_cluster *c)
{
	bool yes;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	yes = c->isolated;
	pthread_mutex_unlock(&c->lock);
	return yes;
}

int64_t pd_cluster_contact_age_ms(struct pd_cluster *c)
{
	int64_t age = -1;

	if (!c)
		return -1;
	pthread_mutex_lock(&c->lock);
	if (c->last_ok_ms)
		age = pd_mono_ms() - c->last_ok_ms;
	pthread_mutex_unlock(&c->lock);
	return age;
}

bool pd_cluster_leading(struct pd_cluster *c, int64_t *term)
{
	bool yes;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	yes = c->leading && pd_mono_ms() < c->lead_until_ms;
	if (yes && term)
		*term = c->term;
	pthread_mutex_unlock(&c->lock);
	return yes;
}

int pd_cluster_claim_vms(struct plinthd *pd, bool shared)
{
	struct store_vm *vms;
	size_t n, i;
	int ret;

	ret = pd->ops->vm_list(pd->st, &vms, &n);
	if (ret)
		return ret;
	for (i = 0; i < n && !ret; i++) {
		if (!strcmp(vms[i].host, pd->host) || (shared && vms[i].host[0]))
			continue;
		ret = pd->ops->vm_set_owner(pd->st, vms[i].id, pd->host, vms[i].epoch);
		if (!ret)
			log_info("VM %s: owned by host %s (was '%s')", vms[i].name, pd->host,
				 vms[i].host);
	}
	store_vm_list_free(vms, n);
	return ret;
}

/* Add a VM's definition to its owner's usage among h[0..n-1]. */
static void count_vm(struct pd_place_host *h, size_t n, const struct store_vm *vm)
{
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error err;
	size_t i;

	if (def && !pd_vm_def_parse(vm->spec, def, &err)) {
		for (i = 0; i < n; i++) {
			if (!strcmp(h[i].name, vm->host)) {
				h[i].mem_used_mib += def->memory_mib;
				h[i].vcpus_used += def->cpus;
				break;
			}
		}
	}
	free(def);
}

/*
 * The name of a VM that host owns, other than def itself, in def's anti-affinity group;
 * NULL if none or def has none. Every VM the host owns counts, running or not: it
 * starts there. Out of memory counts as a member (never two on a host).
 */
static const char *group_member_on(const struct store_vm *vms, size_t nv,
				   const struct pd_vm_def *def, const char *host)
{
	const char *found = NULL;
	struct pd_vm_def *d;
	struct pd_error err;
	size_t i;

	if (!def->anti_affinity[0])
		return NULL;
	d = malloc(sizeof(*d));
	if (!d)
		return "(unknown: out of memory)";
	for (i = 0; i < nv && !found; i++)
		if (!strcmp(vms[i].host, host) && strcmp(vms[i].name, def->name) &&
		    !pd_vm_def_parse(vms[i].spec, d, &err) &&
		    !strcmp(d->anti_affinity, def->anti_affinity))
			found = vms[i].name;
	free(d);
	return found;
}

/* Placement leaves out the hosts that own another VM of def's anti-affinity group. */
static void mark_group(struct pd_place_host *ph, size_t nh, const struct store_vm *vms, size_t nv,
		       const struct pd_vm_def *def)
{
	size_t i;

	for (i = 0; i < nh; i++)
		ph[i].group_taken = group_member_on(vms, nv, def, ph[i].name) != NULL;
}

/* pd_place() under policy among the hosts but away (never that one, NULL: any). */
static int place(struct plinthd *pd, const struct pd_vm_def *def, enum pd_placement policy,
		 const char *away, char *host, struct pd_reply *r)
{
	struct store_host *hosts = NULL;
	struct pd_place_host *ph = NULL;
	struct store_vm *vms = NULL;
	const char *src_flags = "";
	size_t nh = 0, nv = 0, i;
	int ret, k;

	ret = pd->ops->placement_lock(pd->st);
	if (!ret)
		ret = pd->ops->host_list(pd->st, &hosts, &nh);
	if (!ret)
		ret = pd->ops->vm_list(pd->st, &vms, &nv);
	if (!ret && !(ph = calloc(nh ? nh : 1, sizeof(*ph))))
		ret = -ENOMEM;
	if (ret) {
		pd_reply_error(r, 500, "inventory error placing VM '%s'", def->name);
		goto out_free;
	}
	for (i = 0; i < nh; i++)
		if (away && !strcmp(hosts[i].name, away))
			src_flags = hosts[i].cpu_flags;
	for (i = 0; i < nh; i++) {
		char x[8];

		ph[i].name = hosts[i].name;
		ph[i].up = hosts[i].heartbeat_ms && hosts[i].age_ms <= PD_HOST_DOWN_MS &&
			   !(away && !strcmp(hosts[i].name, away)) &&
			   !(src_flags[0] && hosts[i].cpu_flags[0] &&
			     pd_cpu_flags_missing(hosts[i].cpu_flags, src_flags, x, sizeof(x)));
		ph[i].maintenance = hosts[i].maintenance;
		ph[i].mem_limit_mib = (uint64_t)((double)hosts[i].memory_mib * pd->overcommit);
		ph[i].vcpu_limit = (uint64_t)hosts[i].cpus * PD_VCPUS_PER_CPU;
	}
	for (i = 0; i < nv; i++)
		count_vm(ph, nh, &vms[i]);
	mark_group(ph, nh, vms, nv, def);
	k = pd_place(ph, nh, policy, def->memory_mib, def->cpus);
	if (k < 0) {
		ret = -ENOSPC;
		pd_reply_error(r, 409,
			       "no %shost that is up has room for VM '%s' (%llu MiB, %u vCPUs; "
			       "placement %s%s%s%s%s)",
			       away ? "other " : "", def->name, (unsigned long long)def->memory_mib,
			       def->cpus, pd_placement_name(policy),
			       away ? "; hosts in maintenance or without its CPU features left out"
				    : "",
			       def->anti_affinity[0] ? "; hosts with a VM of its anti-affinity "
						       "group '" : "",
			       def->anti_affinity, def->anti_affinity[0] ? "' left out" : "");
		goto out_free;
	}
	snprintf(host, STORE_NAME_MAX, "%s", hosts[k].name);
out_free:
	free(ph);
	store_vm_list_free(vms, nv);
	free(hosts);
	return ret;
}

int pd_cluster_place(struct plinthd *pd, const struct pd_vm_def *def, char *host,
		     struct pd_reply *r)
{
	if (pd->placement == PD_PLACE_LOCAL) {
		struct store_host *hosts;
		bool away = false;
		size_t n, i;

		if (pd->ops->host_list(pd->st, &hosts, &n) == 0) {
			for (i = 0; i < n; i++)
				if (!strcmp(hosts[i].name, pd->host))
					away = hosts[i].maintenance;
			free(hosts);
		}
		if (away) /* this host is in maintenance: the others, spread */
			return place(pd, def, PD_PLACE_SPREAD, pd->host, host, r);
		if (def->anti_affinity[0]) {
			struct store_vm *vms = NULL;
			const char *other;
			/* Under the lock place() takes: two creates cannot both see none. */
			int ret = pd->ops->placement_lock(pd->st);

			if (!ret)
				ret = pd->ops->vm_list(pd->st, &vms, &n);

			if (ret) {
				pd_reply_error(r, 500, "inventory error placing VM '%s'", def->name);
				return ret;
			}
			other = group_member_on(vms, n, def, pd->host);
			if (other)
				pd_reply_error(r, 409, "VM '%s' of anti-affinity group '%s' is on this "
						       "host ('%s') already, and placement is local: "
						       "create the VM on another host",
					       other, def->anti_affinity, pd->host);
			store_vm_list_free(vms, n);
			if (other)
				return -ENOSPC; /* r says why: no room by the group's rule */
		}
		snprintf(host, STORE_NAME_MAX, "%s", pd->host);
		return 0;
	}
	return place(pd, def, pd->placement, NULL, host, r);
}

int pd_cluster_place_away(struct plinthd *pd, const struct pd_vm_def *def, char *host,
			  struct pd_reply *r)
{
	return place(pd, def, pd->placement == PD_PLACE_PACK ? PD_PLACE_PACK : PD_PLACE_SPREAD,
		     pd->host, host, r);
}

int pd_cluster_can_take(struct plinthd *pd, const struct pd_vm_def *def, const char *to,
			struct pd_reply *r)
{
	struct store_host *hosts = NULL;
	const struct store_host *src = NULL, *dst = NULL;
	struct pd_place_host ph = {.name = to, .up = true};
	struct store_vm *vms = NULL;
	const char *member;
	size_t nh = 0, nv = 0, i;
	char missing[160];
	int ret = pd->ops->host_list(pd->st, &hosts, &nh);

	if (!ret)
		ret = pd->ops->vm_list(pd->st, &vms, &nv);
	if (ret) {
		pd_reply_error(r, 500, "inventory error checking host '%s'", to);
		goto out_free;
	}
	for (i = 0; i < nh; i++) {
		if (!strcmp(hosts[i].name, to))
			dst = &hosts[i];
		if (!strcmp(hosts[i].name, pd->host))
			src = &hosts[i];
	}
	if (!dst || !src) {
		ret = -ENOENT;
		pd_reply_error(r, 404, "host '%s' is not in the cluster", dst ? pd->host : to);
		goto out_free;
	}
	ph.mem_limit_mib = (uint64_t)((double)dst->memory_mib * pd->overcommit);
	ph.vcpu_limit = (uint64_t)dst->cpus * PD_VCPUS_PER_CPU;
	for (i = 0; i < nv; i++)
		count_vm(&ph, 1, &vms[i]);
	if (pd_place(&ph, 1, PD_PLACE_SPREAD, def->memory_mib, def->cpus) < 0) {
		ret = -ENOSPC;
		pd_reply_error(r, 409,
			       "host '%s' has no room for VM '%s' (%llu MiB, %u vCPUs): its VMs "
			       "take %llu of %llu MiB and %llu of %llu vCPUs",
			       to, def->name, (unsigned long long)def->memory_mib, def->cpus,
			       (unsigned long long)ph.mem_used_mib,
			       (unsigned long long)ph.mem_limit_mib,
			       (unsigned long long)ph.vcpus_used, (unsigned long long)ph.vcpu_limit);
		goto out_free;
	}
	member = group_member_on(vms, nv, def, to);
	if (member) {
		ret = -ENOSPC;
		pd_reply_error(r, 409, "host '%s' has VM '%s' of anti-affinity group '%s' already",
			       to, member, def->anti_affinity);
		goto out_free;
	}
	if (src->cpu_flags[0] && dst->cpu_flags[0] &&
	    pd_cpu_flags_missing(dst->cpu_flags, src->cpu_flags, missing, sizeof(missing))) {
		ret = -EOPNOTSUPP;
		pd_reply_error(r, 409, "host '%s' lacks CPU features of host '%s' that VM '%s' may "
				       "use: %s", to, pd->host, def->name, missing);
	}
out_free:
	store_vm_list_free(vms, nv);
	free(hosts);
	return ret;
}

bool pd_vm_elsewhere(const struct plinthd *pd, const struct store_vm *vm, struct pd_reply *r)
{
	if (!strcmp(vm->host, pd->host))
		return false;
	pd_reply_error(r, 409, "VM '%s' belongs to host '%s', not this one ('%s'): ask that host",
		       vm->name, vm->host, pd->host);
	return true;
}

void pd_host_list(struct plinthd *pd, struct pd_reply *r)
{
	struct store_host *hosts;
	struct store_leader l;
	json_t *arr;
	size_t n, i;

	if (pd->ops->host_list(pd->st, &hosts, &n) || pd->ops->leader_get(pd->st, &l)) {
		free(hosts);
		pd_reply_error(r, 500, "inventory error listing hosts");
		return;
	}
	arr = json_array();
	for (i = 0; arr && i < n; i++) {
		const struct store_host *h = &hosts[i];
		bool leads = !strcmp(l.host, h->name) && l.expires_in_ms > 0;
		const char *state = !h->heartbeat_ms		   ? "stopped"
				    : h->age_ms <= PD_HOST_DOWN_MS ? "up"
								   : "down";

		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:b, s:b, s:I}", "name",
				       h->name, "address", h->address, "cpus", (json_int_t)h->cpus,
				       "memory_mib", (json_int_t)h->memory_mib, "heartbeat_age_ms",
				       (json_int_t)(h->heartbeat_ms ? h->age_ms : -1), "state",
				       state, "leader", leads, "self", !strcmp(h->name, pd->host),
				       "maintenance", h->maintenance, "contact_ms",
				       (json_int_t)unbroken_contact_ms(h)));
	}
	free(hosts);
	r->status = 200;
	r->body =
		json_pack("{s:o, s:{s:s, s:I, s:I}}", "hosts", arr, "leader", "host", l.host,
			  "term", (json_int_t)l.term, "expires_in_ms", (json_int_t)l.expires_in_ms);
}
