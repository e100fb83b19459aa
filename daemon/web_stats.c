// SPDX-License-Identifier: MIT
/*
 * The last hour of each VM's CPU, memory, disk and network use, for the web console's
 * charts (web.h, docs/web.md): GET /web/stats/{vm}.
 *
 * One thread samples every WEB_STATS_PERIOD_S seconds what the host sees of each VM of
 * this host that runs: its plinth process's CPU time (/proc/PID/stat), resident memory
 * (/proc/PID/status; guest RAM the guest touched plus the VMM's own), bytes its I/O made
 * the host read and write (/proc/PID/io: its disk images) and its taps' byte counters
 * (/sys/class/net/TAP/statistics). Rates are the difference to the previous sample of
 * the same process. The series of a VM is kept while the VM exists (a stopped VM keeps
 * its last hour), in a ring of WEB_STATS_POINTS points (23 KiB a VM).
 *
 * Locks: pd->lock to list the VMs (then dropped: /proc is read outside it), then
 * st->lock for the series; never both.
 */
#include "web.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WEB_STATS_PERIOD_S 5
#define WEB_STATS_POINTS   (3600 / WEB_STATS_PERIOD_S)

/* One sample: rates since the previous one (-1 where not known yet). */
struct stat_point {
	int64_t t_ms;  /* wall clock */
	float cpu_pct; /* of one host core */
	float mem_mib;
	float disk_rd, disk_wr; /* bytes/s */
	float net_in, net_out;	/* bytes/s to and from the guest; -1: no NIC */
};

/* What a sample reads; rates come from two of them. */
struct raw {
	int64_t pid;
	int64_t mono_ms;
	uint64_t cpu_ticks, rd, wr, tap_rx, tap_tx;
	double mem_mib;
	bool have_io, have_net;
};

struct series {
	int64_t vm_id;
	char name[STORE_NAME_MAX];
	struct raw prev;      /* prev.pid 0: none */
	unsigned head, count; /* p[(head + i) % N], i < count, oldest first */
	struct stat_point p[WEB_STATS_POINTS];
};

struct web_stats {
	struct plinthd *pd;
	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t wake;  /* quit */
	bool quit;
	struct series **s; /* owned, each owned */
	size_t n;
	pthread_t thread;
};

/* A VM as listed: pid 0 unless it runs on this host. */
struct vm_ref {
	int64_t id, pid;
	char name[STORE_NAME_MAX];
	unsigned nics;
};

/* --- reading what the host sees --------------------------------------------------------- */

static int read_text(const char *path, char *buf, size_t size)
{
	ssize_t n = pd_read_small(path, buf, size);

	return n < 0 ? (int)n : 0;
}

/* The field after "name" in a "name: value" file. */
static bool field_u64(const char *text, const char *name, uint64_t *v)
{
	const char *p = strstr(text, name);

	return p && sscanf(p + strlen(name), " %" SCNu64, v) == 1;
}

static bool read_u64(const char *path, uint64_t *v)
{
	char buf[32];

	return read_text(path, buf, sizeof(buf)) == 0 && sscanf(buf, "%" SCNu64, v) == 1;
}

/* Sample VM r now. 0, or -ESRCH (its process is gone). */
static int sample(const struct vm_ref *r, struct raw *out)
{
	char path[96], buf[4096], tap[32];
	unsigned long long ut, st;
	uint64_t kb, v;
	const char *p;
	unsigned i;

	memset(out, 0, sizeof(*out));
	out->pid = r->pid;
	out->mono_ms = pd_mono_ms();
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", r->pid);
	if (read_text(path, buf, sizeof(buf)))
		return -ESRCH;
	/* After "(comm) ": state is field 3; utime and stime are 14 and 15. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -ESRCH;
	out->cpu_ticks = ut + st;
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/status", r->pid);
	if (read_text(path, buf, sizeof(buf)) || !field_u64(buf, "VmRSS:", &kb))
		return -ESRCH;
	out->mem_mib = (double)kb / 1024.0;
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/io", r->pid);
	out->have_io = read_text(path, buf, sizeof(buf)) == 0 &&
		       field_u64(buf, "\nread_bytes:", &out->rd) &&
		       field_u64(buf, "\nwrite_bytes:", &out->wr);
	out->have_net = r->nics > 0;
	for (i = 0; i < r->nics && out->have_net; i++) {
		pd_nic_tap(r->id, i, tap, sizeof(tap));
		snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/rx_bytes", tap);
		out->have_net = read_u64(path, &v);
		out->tap_rx += v;
		snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/tx_bytes", tap);
		out->have_net = out->have_net && read_u64(path, &v);
		out->tap_tx += v;
	}
	return 0;
}

/* A rate per second from a to b over ms, or -1. */
static float rate(uint64_t a, uint64_t b, int64_t ms)
{
	return b >= a && ms > 0 ? (float)((double)(b - a) * 1000.0 / (double)ms) : -1.0f;
}

static void add_point(struct series *s, const struct raw *now, int64_t t_ms, long hz)
{
	const struct raw *was = &s->prev;
	bool same = was->pid == now->pid;
	int64_t ms = now->mono_ms - was->mono_ms;
	struct stat_point *pt;

	if (s->count == WEB_STATS_POINTS) {
		s->head = (s->head + 1) % WEB_STATS_POINTS;
		s->count--;
	}
	pt = &s->p[(s->head + s->count) % WEB_STATS_POINTS];
	s->count++;
	pt->t_ms = t_ms;
	pt->mem_mib = (float)now->mem_mib;
	pt->cpu_pct = same && ms > 0 && now->cpu_ticks >= was->cpu_ticks
			      ? (float)((double)(now->cpu_ticks - was->cpu_ticks) * 100000.0 /
					((double)hz * (double)ms))
			      : -1.0f;
	pt->disk_rd = same && now->have_io && was->have_io ? rate(was->rd, now->rd, ms) : -1.0f;
	pt->disk_wr = same && now->have_io && was->have_io ? rate(was->wr, now->wr, ms) : -1.0f;
	/* The tap's receive is what the guest sent, and the other way round. */
	pt->net_out =
		same && now->have_net && was->have_net ? rate(was->tap_rx, now->tap_rx, ms) : -1.0f;
	pt->net_in =
		same && now->have_net && was->have_net ? rate(was->tap_tx, now->tap_tx, ms) : -1.0f;
	s->prev = *now;
}

/* --- the sampler ---------------------------------------------------------------------- */

/* Every VM, with the pid of those running on this host. 0 or -errno; *out owned. */
static int list_vms(struct plinthd *pd, struct vm_ref **out, size_t *n)
{
	struct store_vm *vms;
	struct pd_vm_def *def = malloc(sizeof(*def));
	struct pd_error err;
	size_t count = 0, i;
	int ret;

	*out = NULL;
	*n = 0;
	if (!def)
		return -ENOMEM;
	pthread_mutex_lock(&pd->lock);
	ret = pd->ops->vm_list(pd->st, &vms, &count);
	pthread_mutex_unlock(&pd->lock);
	if (ret)
		goto out_def;
	*out = count ? calloc(count, sizeof(**out)) : NULL;
	if (count && !*out) {
		ret = -ENOMEM;
		goto out_list;
	}
	for (i = 0; i < count; i++) {
		struct vm_ref *r = &(*out)[i];

		r->id = vms[i].id;
		snprintf(r->name, sizeof(r->name), "%s", vms[i].name);
		if (vms[i].pid <= 0 || strcmp(vms[i].host, pd->host))
			continue;
		r->pid = vms[i].pid;
		r->nics = pd_vm_def_parse(vms[i].spec, def, &err) ? 0 : def->n_nics;
	}
	*n = count;
out_list:
	store_vm_list_free(vms, count);
out_def:
	free(def);
	return ret;
}

/* Drop the series of VMs that are gone (under st->lock). */
static void forget_missing(struct web_stats *st, const struct vm_ref *refs, size_t n)
{
	size_t i = 0, j;

	while (i < st->n) {
		for (j = 0; j < n && refs[j].id != st->s[i]->vm_id; j++)
			;
		if (j < n) {
			i++;
			continue;
		}
		free(st->s[i]);
		st->s[i] = st->s[--st->n];
	}
}

static struct series *series_get(struct web_stats *st, const struct vm_ref *r)
{
	struct series **ns, *s;
	size_t i;

	for (i = 0; i < st->n; i++)
		if (st->s[i]->vm_id == r->id)
			return st->s[i];
	s = calloc(1, sizeof(*s));
	ns = s ? realloc(st->s, (st->n + 1) * sizeof(*ns)) : NULL;
	if (!ns) {
		free(s);
		return NULL;
	}
	st->s = ns;
	s->vm_id = r->id;
	snprintf(s->name, sizeof(s->name), "%s", r->name);
	st->s[st->n++] = s;
	return s;
}

static void stats_tick(struct web_stats *st, long hz)
{
	struct vm_ref *refs;
	struct raw *raws;
	size_t n, i;

	if (list_vms(st->pd, &refs, &n))
		return;
	raws = n ? calloc(n, sizeof(*raws)) : NULL;
	for (i = 0; raws && i < n; i++)
		if (!refs[i].pid || sample(&refs[i], &raws[i]))
			raws[i].pid = 0;
	pthread_mutex_lock(&st->lock);
	for (i = 0; raws && i < n; i++) {
		struct series *s;

		if (!raws[i].pid)
			continue;
		s = series_get(st, &refs[i]);
		if (s)
			add_point(s, &raws[i], pd_now_ms(), hz);
	}
	if (raws || !n)
		forget_missing(st, refs, n);
	pthread_mutex_unlock(&st->lock);
	free(raws);
	free(refs);
}

static void *stats_main(void *arg)
{
	struct web_stats *st = arg;
	long hz = sysconf(_SC_CLK_TCK);
	struct timespec until;

	if (hz <= 0)
		hz = 100;
	clock_gettime(CLOCK_MONOTONIC, &until);
	for (;;) {
		stats_tick(st, hz);
		until.tv_sec += WEB_STATS_PERIOD_S;
		pthread_mutex_lock(&st->lock);
		while (!st->quit &&
		       pthread_cond_timedwait(&st->wake, &st->lock, &until) != ETIMEDOUT)
			;
		if (st->quit) {
			pthread_mutex_unlock(&st->lock);
			break;
		}
		pthread_mutex_unlock(&st->lock);
	}
	return NULL;
}

/* --- the reply ------------------------------------------------------------------------- */

static json_t *num(float v)
{
	return v < 0 ? json_null() : json_real((double)v);
}

json_t *web_stats_json(struct web_stats *st, const char *vm_name)
{
	json_t *pts = json_array(), *o;
	size_t i;

	if (!pts)
		return NULL;
	pthread_mutex_lock(&st->lock);
	for (i = 0; i < st->n; i++) {
		const struct series *s = st->s[i];
		unsigned k;

		if (strcmp(s->name, vm_name))
			continue;
		for (k = 0; k < s->count; k++) {
			const struct stat_point *p = &s->p[(s->head + k) % WEB_STATS_POINTS];

			json_array_append_new(
				pts, json_pack("[I, o, o, o, o, o, o]", (json_int_t)p->t_ms,
					       num(p->cpu_pct), num(p->mem_mib), num(p->disk_rd),
					       num(p->disk_wr), num(p->net_in), num(p->net_out)));
		}
	}
	pthread_mutex_unlock(&st->lock);
	o = json_pack("{s:s, s:i, s:[s, s, s, s, s, s, s], s:o}", "vm", vm_name, "period_s",
		      WEB_STATS_PERIOD_S, "fields", "time_ms", "cpu_percent", "memory_mib",
		      "disk_read_bytes_s", "disk_write_bytes_s", "net_in_bytes_s",
		      "net_out_bytes_s", "points", pts);
	return o;
}

/* --- start and stop ------------------------------------------------------------------- */

struct web_stats *web_stats_start(struct plinthd *pd)
{
	struct web_stats *st = calloc(1, sizeof(*st));
	pthread_condattr_t ca;

	if (!st) {
		log_error("out of memory");
		return NULL;
	}
	st->pd = pd;
	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&st->thread, NULL, stats_main, st)) {
		log_error("web: cannot create the statistics thread");
		pthread_cond_destroy(&st->wake);
		pthread_mutex_destroy(&st->lock);
		free(st);
		return NULL;
	}
	return st;
}

void web_stats_stop(struct web_stats *st)
{
	size_t i;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->quit = true;
	pthread_cond_broadcast(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->thread, NULL);
	for (i = 0; i < st->n; i++)
		free(st->s[i]);
	free(st->s);
	pthread_cond_destroy(&st->wake);
	pthread_mutex_destroy(&st->lock);
	free(st);
}
