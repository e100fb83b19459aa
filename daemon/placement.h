/* SPDX-License-Identifier: MIT */
/*
 * Placement of a new VM on one of the cluster's hosts (pure: unit-tested). A host
 * fits when it is up, not in maintenance, and the VMs it owns plus the new one stay within its memory
 * limit (MemTotal x the overcommit ratio) and its vCPU limit (CPUs x
 * PD_VCPUS_PER_CPU). Its load is the larger of the two fractions after placement.
 *
 *   spread: the fitting host with the lowest load (VMs spread over the cluster);
 *   pack:   the fitting host with the highest load (hosts filled one by one, the
 *           others left free for large VMs or powered down).
 * Ties go to the host whose name sorts first, so a decision is reproducible.
 */
#ifndef PLINTH_DAEMON_PLACEMENT_H
#define PLINTH_DAEMON_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_VCPUS_PER_CPU 4 /* vCPUs a host takes per CPU it has */

enum pd_placement { PD_PLACE_LOCAL, PD_PLACE_SPREAD, PD_PLACE_PACK };

struct pd_place_host {
	const char *name;
	bool up;		/* heartbeat recent enough */
	bool maintenance;	/* evacuated (plinth host evacuate): takes nothing */
	uint64_t mem_limit_mib; /* MemTotal x overcommit */
	uint64_t vcpu_limit;	/* CPUs x PD_VCPUS_PER_CPU */
	uint64_t mem_used_mib;	/* memory of the VMs it owns */
	uint64_t vcpus_used;	/* vCPUs of the VMs it owns */
	bool group_taken;	/* owns another VM of the new one's anti-affinity group */
};

/* The index of the chosen host among h[0..n-1] for a VM of mem_mib and vcpus, or
 * -ENOSPC if none fits or every host that would is group_taken (-EINVAL for
 * PD_PLACE_LOCAL: the caller's own host). */
int pd_place(const struct pd_place_host *h, size_t n, enum pd_placement policy, uint64_t mem_mib,
	     unsigned vcpus);

/*
 * The CPU feature flags of need (space-separated words, as /proc/cpuinfo's "flags")
 * that have lacks: their number, and as many as fit into missing (size bytes,
 * space-separated, "..." at the end if cut). A migration's destination must hold all
 * of the source's flags (a guest may use any of them).
 */
size_t pd_cpu_flags_missing(const char *have, const char *need, char *missing, size_t size);

/*
 * HA's timing (docs/cluster.md, rule 2). The leader means to look at the hosts again
 * after wait ms; a host whose heartbeat is age ms old (by the database's clock) is
 * declared dead once age passes dead. The wait to use: wait, or less, so that the
 * look comes slack ms after such a host passes dead rather than up to a period later
 * (its restarts are then issued dead after its last heartbeat, so within dead of its
 * loss). A host already past dead, or not due before the wait ends, leaves it.
 */
int64_t pd_ha_wait_ms(int64_t wait, int64_t age, int64_t dead, int64_t slack);

/* "local", "spread", "pack" -> *out; -EINVAL for anything else. */
int pd_placement_parse(const char *s, enum pd_placement *out);
const char *pd_placement_name(enum pd_placement p);

#endif
