// SPDX-License-Identifier: MIT
/* Placement of new VMs (placement.h). */
#include "placement.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Load after placement in millionths (the larger of memory and vCPUs), or -1 if the
 * VM does not fit. Limits are at most a few million MiB and vCPUs: no overflow. */
static int64_t load_after(const struct pd_place_host *h, uint64_t mem, uint64_t vcpus)
{
	uint64_t m, c;

	if (!h->up || h->maintenance || h->group_taken || !h->mem_limit_mib || !h->vcpu_limit)
		return -1;
	if (h->mem_used_mib > h->mem_limit_mib || mem > h->mem_limit_mib - h->mem_used_mib)
		return -1;
	if (h->vcpus_used > h->vcpu_limit || vcpus > h->vcpu_limit - h->vcpus_used)
		return -1;
	m = (h->mem_used_mib + mem) * 1000000 / h->mem_limit_mib;
	c = (h->vcpus_used + vcpus) * 1000000 / h->vcpu_limit;
	return (int64_t)(m > c ? m : c);
}

int pd_place(const struct pd_place_host *h, size_t n, enum pd_placement policy, uint64_t mem_mib,
	     unsigned vcpus)
{
	int64_t best_load = 0, load;
	int best = -ENOSPC;
	size_t i;

	if (policy == PD_PLACE_LOCAL)
		return -EINVAL;
	for (i = 0; i < n && i < (size_t)INT32_MAX; i++) {
		bool better;

		load = load_after(&h[i], mem_mib, vcpus);
		if (load < 0)
			continue;
		if (best < 0)
			better = true;
		else if (load != best_load)
			better = policy == PD_PLACE_SPREAD ? load < best_load : load > best_load;
		else
			better = strcmp(h[i].name, h[best].name) < 0;
		if (better) {
			best = (int)i;
			best_load = load;
		}
	}
	return best;
}

/* Is the word w (len bytes) one of the space-separated words of list? */
static bool has_word(const char *list, const char *w, size_t len)
{
	const char *p = list;

	while (*p) {
		size_t l;

		p += strspn(p, " \t");
		l = strcspn(p, " \t");
		if (l == len && !memcmp(p, w, len))
			return true;
		p += l;
	}
	return false;
}

size_t pd_cpu_flags_missing(const char *have, const char *need, char *missing, size_t size)
{
	const char *p = need;
	size_t count = 0, used = 0;
	bool cut = false;

	if (size)
		missing[0] = '\0';
	while (*p) {
		size_t l;

		p += strspn(p, " \t");
		l = strcspn(p, " \t");
		if (l && !has_word(have, p, l)) {
			count++;
			/* room for a space, the word, and "..." with its NUL after it */
			if (!cut && size > 4 && l + 1 < size - 4 - used) {
				used += (size_t)snprintf(missing + used, size - used, "%s%.*s",
							 used ? " " : "", (int)l, p);
			} else if (!cut && size > 4) {
				snprintf(missing + used, size - used, "...");
				cut = true;
			}
		}
		p += l;
	}
	return count;
}

static const char *const names[] = {
	[PD_PLACE_LOCAL] = "local",
	[PD_PLACE_SPREAD] = "spread",
	[PD_PLACE_PACK] = "pack",
};

int pd_placement_parse(const char *s, enum pd_placement *out)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum pd_placement)i;
			return 0;
		}
	}
	return -EINVAL;
}

int64_t pd_ha_wait_ms(int64_t wait, int64_t age, int64_t dead, int64_t slack)
{
	if (age < 0 || age > dead || dead - age + slack >= wait)
		return wait;
	return dead - age + slack;
}

const char *pd_placement_name(enum pd_placement p)
{
	return (size_t)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}
