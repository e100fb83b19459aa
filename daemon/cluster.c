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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
};

static void cluster_event(struct pd_cluster *c, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cluster_event(struct pd_cluster *c, const char *action, const char *fmt, ...)
{
	struct store_event ev = {0};
	va_list ap;

	ev.time_ms = pd_now_ms();
	snprintf(ev.actor, sizeof(ev.actor), "plinthd");
	snprintf(ev.action, sizeof(ev.action), "%s", action);
	snprintf(ev.object, sizeof(ev.object), "%s", c->self.name);
	snprintf(ev.result, sizeof(ev.result), "ok");
	va_start(ap, fmt);
	vsnprintf(ev.message, sizeof(ev.message), fmt, ap);
	va_end(ap);
	c->ops->event_append(c->st, &ev);
}

static void heartbeat(struct pd_cluster *c)
{
	int ret = c->ops->host_heartbeat(c->st, c->self.name);

	if (ret == -ENOENT) {
		struct store_host h = c->self;

		ret = c->ops->host_register(c->st, &h);
		if (!ret)
			log_info("cluster: host %s registered again", h.name);
	}
	if (ret)
		log_debug("cluster: heartbeat of %s failed (%d)", c->self.name, ret);
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
		cluster_event(c, "cluster.leader", "leads the cluster (term %lld)",
			      (long long)term);
	} else {
		log_info("cluster: %s no longer leads (%s)", c->self.name,
			 ret ? "its lease ran out: the inventory did not answer" : l.host);
	}
}

static void *cluster_main(void *arg)
{
	struct pd_cluster *c = arg;
	struct timespec until;

	for (;;) {
		heartbeat(c);
		claim(c);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += PD_HEARTBEAT_MS % 1000 * 1000000L;
		until.tv_sec += PD_HEARTBEAT_MS / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&c->lock);
		while (!c->quit && pthread_cond_timedwait(&c->wake, &c->lock, &until) != ETIMEDOUT)
			;
		if (c->quit) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
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

struct pd_cluster *pd_cluster_start(const struct store_ops *ops, const char *location, bool shared,
				    const char *host, const char *address)
{
	struct pd_cluster *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!c) {
		log_error("out of memory");
		return NULL;
	}
	c->ops = ops;
	snprintf(c->self.name, sizeof(c->self.name), "%s", host);
	snprintf(c->self.address, sizeof(c->self.address), "%s", address ? address : "");
	c->self.cpus = cpus > 0 ? (unsigned)cpus : 1;
	c->self.memory_mib = pd_host_mem_mib();
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
	if (pthread_create(&c->thread, NULL, cluster_main, c)) {
		log_error("cannot create the cluster thread");
		goto out_destroy;
	}
	log_info("cluster: host %s (%u CPUs, %llu MiB) registered", host, c->self.cpus,
		 (unsigned long long)c->self.memory_mib);
	return c;

out_destroy:
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
out_close:
	ops->close(c->st);
out_free:
	free(c);
	return NULL;
}

void pd_cluster_stop(struct pd_cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->quit = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	if (c->leading && !c->ops->leader_release(c->st, c->self.name))
		log_info("cluster: %s let the leader lease go", c->self.name);
	c->ops->host_leave(c->st, c->self.name);
	c->ops->close(c->st);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
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

int pd_cluster_place(struct plinthd *pd, const struct pd_vm_def *def, char *host,
		     struct pd_reply *r)
{
	struct store_host *hosts = NULL;
	struct pd_place_host *ph = NULL;
	struct store_vm *vms = NULL;
	size_t nh = 0, nv = 0, i;
	int ret, k;

	if (pd->placement == PD_PLACE_LOCAL) {
		snprintf(host, STORE_NAME_MAX, "%s", pd->host);
		return 0;
	}
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
	for (i = 0; i < nh; i++) {
		ph[i].name = hosts[i].name;
		ph[i].up = hosts[i].heartbeat_ms && hosts[i].age_ms <= PD_HOST_DOWN_MS;
		ph[i].mem_limit_mib = (uint64_t)((double)hosts[i].memory_mib * pd->overcommit);
		ph[i].vcpu_limit = (uint64_t)hosts[i].cpus * PD_VCPUS_PER_CPU;
	}
	for (i = 0; i < nv; i++)
		count_vm(ph, nh, &vms[i]);
	k = pd_place(ph, nh, pd->placement, def->memory_mib, def->cpus);
	if (k < 0) {
		ret = -ENOSPC;
		pd_reply_error(r, 409,
			       "no host that is up has room for VM '%s' (%llu MiB, %u vCPUs; "
			       "placement %s)",
			       def->name, (unsigned long long)def->memory_mib, def->cpus,
			       pd_placement_name(pd->placement));
		goto out_free;
	}
	snprintf(host, STORE_NAME_MAX, "%s", hosts[k].name);
out_free:
	free(ph);
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
			arr, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:b}", "name", h->name,
				       "address", h->address, "cpus", (json_int_t)h->cpus,
				       "memory_mib", (json_int_t)h->memory_mib, "heartbeat_age_ms",
				       (json_int_t)(h->heartbeat_ms ? h->age_ms : -1), "state",
				       state, "leader", leads, "self", !strcmp(h->name, pd->host)));
	}
	free(hosts);
	r->status = 200;
	r->body =
		json_pack("{s:o, s:{s:s, s:I, s:I}}", "hosts", arr, "leader", "host", l.host,
			  "term", (json_int_t)l.term, "expires_in_ms", (json_int_t)l.expires_in_ms);
}
