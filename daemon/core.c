// SPDX-License-Identifier: MIT
/*
 * plinthd's life: open the state directory and the inventory, settle what the last
 * run left (images, then VMs), serve, run the monitor; and the small helpers every
 * part uses (clocks, events).
 */
#include "core.h"

#include "cluster.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* This host's name: o->host_name, else the kernel's host name. 0 or -EINVAL. */
static int host_name(struct plinthd *pd, const char *given)
{
	char name[256] = "";

	if (given)
		snprintf(name, sizeof(name), "%s", given);
	else if (gethostname(name, sizeof(name) - 1) < 0)
		name[0] = '\0';
	if (!pd_name_valid(name)) {
		log_error("host name '%s': 1..63 of A-Z a-z 0-9 _ . -, starting alphanumeric "
			  "(use --host-name NAME)", name);
		return -EINVAL;
	}
	if (!strcmp(name, "auto")) { /* `migrate --to auto` and `evacuate --to auto` */
		log_error("host name 'auto' is the word for any host: give this one another "
			  "(--host-name NAME)");
		return -EINVAL;
	}
	snprintf(pd->host, sizeof(pd->host), "%s", name);
	return 0;
}

#define MONITOR_PERIOD_MS 200

int64_t pd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pd_event(struct plinthd *pd, const char *action, const char *object, const char *result,
	     const char *fmt, ...)
{
	struct store_event ev = {0};
	va_list ap;

	ev.time_ms = pd_now_ms();
	snprintf(ev.actor, sizeof(ev.actor), "%s", pd->actor[0] ? pd->actor : "plinthd");
	snprintf(ev.action, sizeof(ev.action), "%s", action);
	snprintf(ev.object, sizeof(ev.object), "%s", object);
	snprintf(ev.result, sizeof(ev.result), "%s", result);
	va_start(ap, fmt);
	vsnprintf(ev.message, sizeof(ev.message), fmt, ap);
	va_end(ap);
	return pd->ops->event_append(pd->st, &ev);
}

/* The HA VMs' plinth processes, for the watchdog's thread (cluster.c). Under the lock. */
static void list_ha(struct plinthd *pd)
{
	const struct pd_run *run;
	unsigned n = 0;

	pthread_mutex_lock(&pd->ha_lock);
	for (run = pd->runs; run; run = run->next) {
		if (!run->ha || run->pid <= 0)
			continue;
		if (n == PD_HA_PIDS_MAX) {
			n++;
			break;
		}
		pd->ha_pids[n++] = run->pid;
	}
	pd->n_ha_pids = n;
	pthread_mutex_unlock(&pd->ha_lock);
}

static void *monitor_main(void *arg)
{
	struct plinthd *pd = arg;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = MONITOR_PERIOD_MS * 1000000L};

	for (;;) {
		pthread_mutex_lock(&pd->lock);
		if (pd->quit) {
			pthread_mutex_unlock(&pd->lock);
			break;
		}
		pd_vms_tick(pd);
		list_ha(pd);
		pd_migrations_tick(pd);
		pd_tasks_reap(pd, false);
		pthread_mutex_unlock(&pd->lock);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* The VMM binary: opts, else "plinth" in plinthd's own directory. */
static int find_plinth(struct plinthd *pd, const char *given)
{
	char self[4000];
	ssize_t n;
	char *slash;

	if (given) {
		snprintf(pd->plinth_bin, sizeof(pd->plinth_bin), "%s", given);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return -errno;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(pd->plinth_bin, sizeof(pd->plinth_bin), "%s/plinth", self);
	}
	if (access(pd->plinth_bin, X_OK) < 0) {
		log_error("the VMM %s is not executable: %s (use --plinth PATH)", pd->plinth_bin,
			  strerror(errno));
		return -ENOENT;
	}
	return 0;
}

struct plinthd *pd_open(const struct pd_options *o, const struct store_ops *ops)
{
	struct plinthd *pd = calloc(1, sizeof(*pd));
	char db[PD_DIR_MAX + 32], real[PATH_MAX];
	int wd_fd = -1;

	if (!pd) {
		log_error("out of memory");
		return NULL;
	}
	pthread_mutex_init(&pd->lock, NULL);
	pthread_mutex_init(&pd->ha_lock, NULL);
	pd->ops = ops;
	if (mkdir(o->state_dir, 0700) < 0 && errno != EEXIST) {
		log_error("state directory %s: %s", o->state_dir, strerror(errno));
		goto out_free;
	}
	if (!realpath(o->state_dir, real)) {
		log_error("state directory %s: %s", o->state_dir, strerror(errno));
		goto out_free;
	}
	if (strlen(real) >= PD_DIR_MAX) {
		log_error("state directory %s: longer than %d bytes (VMs' sockets must fit a "
			  "socket address)", real, PD_DIR_MAX - 1);
		goto out_free;
	}
	snprintf(pd->dir, sizeof(pd->dir), "%s", real);
	/* Before anything that takes long or logs: a bad device is the one line. */
	if (o->watchdog && (wd_fd = pd_watchdog_open(o->watchdog)) < 0)
		goto out_free;
	snprintf(pd->pool, sizeof(pd->pool), "%s/images", real);
	if (find_plinth(pd, o->plinth_bin))
		goto out_free;
	pd->mem_limit_mib = (uint64_t)((double)pd_host_mem_mib() * (o->overcommit > 0 ? o->overcommit
										      : 1.0));
	if (host_name(pd, o->host_name))
		goto out_free;
	pd->uid_base = o->uid_base;
	pd->placement = o->placement;
	pd->overcommit = o->overcommit > 0 ? o->overcommit : 1.0;
	pd->jail = o->jail;
	if (o->cluster_key && pd_cluster_key_load(pd, o->cluster_key, o->cluster_ca))
		goto out_free;
	snprintf(db, sizeof(db), "%s/inventory.db", pd->dir);
	pd->st = ops->open(o->db ? o->db : db);
	if (!pd->st)
		goto out_free;
	pthread_mutex_lock(&pd->lock);
	if (pd_cluster_claim_vms(pd, o->db != NULL) || pd_images_init(pd) ||
	    pd_networks_init(pd) || pd_vms_init(pd)) {
		pthread_mutex_unlock(&pd->lock);
		goto out_close;
	}
	pd_event(pd, "plinthd.start", "plinthd", "ok", "host %s, state directory %s", pd->host,
		 pd->dir);
	pthread_mutex_unlock(&pd->lock);
	pd->cluster = pd_cluster_start(pd, ops, o->db ? o->db : db, o->db != NULL, pd->host,
				       o->address, wd_fd, o->watchdog);
	wd_fd = -1; /* the cluster's now */
	if (!pd->cluster)
		goto out_close;
	if (pthread_create(&pd->monitor, NULL, monitor_main, pd)) {
		log_error("cannot create the monitor thread");
		pd_cluster_stop(pd->cluster);
		goto out_close;
	}
	return pd;

out_close:
	pthread_mutex_lock(&pd->lock);
	while (pd->runs)
		pd_run_forget(pd, pd->runs);
	pthread_mutex_unlock(&pd->lock);
	ops->close(pd->st);
out_free:
	pd_watchdog_close(wd_fd, o->watchdog);
	pthread_mutex_destroy(&pd->lock);
	pthread_mutex_destroy(&pd->ha_lock);
	free(pd);
	return NULL;
}

void pd_close(struct plinthd *pd)
{
	if (!pd)
		return;
	pd_cluster_stop(pd->cluster); /* the lease lapses now: another leads at once */
	pthread_mutex_lock(&pd->lock);
	pd->quit = true;
	pthread_mutex_unlock(&pd->lock);
	pthread_join(pd->monitor, NULL);
	/* Their consumers (the servers' streams, the web's viewers) are closed by now, and
	 * each relay looks at pd->quit every 200 ms too. */
	while (__atomic_load_n(&pd->relays, __ATOMIC_ACQUIRE))
		usleep(20000);
	pthread_mutex_lock(&pd->lock);
	pd_tasks_reap(pd, true);
	/* VMs keep running: the next plinthd adopts them. */
	while (pd->runs)
		pd_run_forget(pd, pd->runs);
	pd_event(pd, "plinthd.stop", "plinthd", "ok", "VMs left running: adopted on next start");
	pthread_mutex_unlock(&pd->lock);
	pd->ops->close(pd->st);
	pthread_mutex_destroy(&pd->lock);
	pthread_mutex_destroy(&pd->ha_lock);
	free(pd);
}
