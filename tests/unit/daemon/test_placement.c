// SPDX-License-Identifier: MIT
/* Unit tests of plinthd's placement (daemon/placement.c): spread and pack by memory and
 * vCPUs, hosts that are down, full or in maintenance never chosen, ties by name, no room -> -ENOSPC. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "placement.h"

static struct pd_place_host host(const char *name, uint64_t mem_limit, uint64_t vcpu_limit,
				 uint64_t mem_used, uint64_t vcpus_used)
{
	struct pd_place_host h = {.name = name,
				  .up = true,
				  .mem_limit_mib = mem_limit,
				  .vcpu_limit = vcpu_limit,
				  .mem_used_mib = mem_used,
				  .vcpus_used = vcpus_used};

	return h;
}

/* Place n VMs one after the other (each counted on its host), names into out. */
static void place_many(struct pd_place_host *h, size_t nh, enum pd_placement p, int n, uint64_t mem,
		       unsigned vcpus, const char **out)
{
	int i, k;

	for (i = 0; i < n; i++) {
		k = pd_place(h, nh, p, mem, vcpus);
		assert_true(k >= 0);
		h[k].mem_used_mib += mem;
		h[k].vcpus_used += vcpus;
		out[i] = h[k].name;
	}
}

static void test_spread(void **unused)
{
	struct pd_place_host h[3] = {host("c", 4096, 8, 0, 0), host("a", 4096, 8, 0, 0),
				     host("b", 4096, 8, 0, 0)};
	const char *got[6];

	(void)unused;
	place_many(h, 3, PD_PLACE_SPREAD, 6, 512, 1, got);
	/* Round robin, ties by name. */
	assert_string_equal(got[0], "a");
	assert_string_equal(got[1], "b");
	assert_string_equal(got[2], "c");
	assert_string_equal(got[3], "a");
	assert_int_equal(h[0].mem_used_mib, 1024);
	assert_int_equal(h[1].mem_used_mib, 1024);
	assert_int_equal(h[2].mem_used_mib, 1024);
}

static void test_spread_by_the_tighter_resource(void **unused)
{
	/* a: plenty of memory, vCPUs nearly gone; b: the reverse, less so. */
	struct pd_place_host h[2] = {host("a", 65536, 8, 0, 7), host("b", 8192, 64, 4096, 0)};

	(void)unused;
	/* a after: vCPUs 8/8 = 100 %; b after: memory 4608/8192 = 56 %. */
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 512, 1), 1);
	/* Pack takes the fullest that fits: a. */
	assert_int_equal(pd_place(h, 2, PD_PLACE_PACK, 512, 1), 0);
	/* Two vCPUs do not fit a any more. */
	assert_int_equal(pd_place(h, 2, PD_PLACE_PACK, 512, 2), 1);
}

static void test_pack(void **unused)
{
	struct pd_place_host h[3] = {host("a", 4096, 8, 0, 0), host("b", 4096, 8, 0, 0),
				     host("c", 4096, 8, 0, 0)};
	const char *got[5];

	(void)unused;
	place_many(h, 3, PD_PLACE_PACK, 5, 1024, 2, got);
	/* a fills up (4 x 1 GiB, 8 vCPUs), then b. */
	assert_string_equal(got[0], "a");
	assert_string_equal(got[3], "a");
	assert_string_equal(got[4], "b");
	assert_int_equal(h[2].vcpus_used, 0);
}

static void test_down_and_full_hosts(void **unused)
{
	struct pd_place_host h[3] = {host("a", 4096, 8, 0, 0), host("b", 4096, 8, 3584, 0),
				     host("c", 4096, 8, 0, 0)};

	(void)unused;
	h[0].up = false;
	/* a is down; b has 512 MiB left: a 1 GiB VM goes to c whatever the policy. */
	assert_int_equal(pd_place(h, 3, PD_PLACE_SPREAD, 1024, 1), 2);
	assert_int_equal(pd_place(h, 3, PD_PLACE_PACK, 1024, 1), 2);
	/* Exactly the rest fits (pack: b, the fuller). */
	assert_int_equal(pd_place(h, 3, PD_PLACE_PACK, 512, 1), 1);
	h[2].up = false;
	assert_int_equal(pd_place(h, 3, PD_PLACE_SPREAD, 1024, 1), -ENOSPC);
	/* Too many vCPUs for any host. */
	h[0].up = h[2].up = true;
	assert_int_equal(pd_place(h, 3, PD_PLACE_SPREAD, 64, 9), -ENOSPC);
	/* Used beyond the limit (the limit was lowered): never chosen, no wrap. */
	h[0].mem_used_mib = 9000;
	h[2].vcpus_used = 100;
	assert_int_equal(pd_place(h, 3, PD_PLACE_SPREAD, 64, 1), 1);
	/* No hosts, a zero limit, local. */
	assert_int_equal(pd_place(h, 0, PD_PLACE_SPREAD, 64, 1), -ENOSPC);
	h[1].vcpu_limit = 0;
	assert_int_equal(pd_place(h, 3, PD_PLACE_SPREAD, 64, 1), -ENOSPC);
	assert_int_equal(pd_place(h, 3, PD_PLACE_LOCAL, 64, 1), -EINVAL);
}

static void test_maintenance(void **unused)
{
	/* a is empty but in maintenance: never chosen, whatever the policy or the load. */
	struct pd_place_host h[2] = {host("a", 65536, 64, 0, 0), host("b", 4096, 8, 3072, 6)};

	(void)unused;
	h[0].maintenance = true;
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 512, 1), 1);
	assert_int_equal(pd_place(h, 2, PD_PLACE_PACK, 512, 1), 1);
	/* What b cannot take goes nowhere. */
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 2048, 1), -ENOSPC);
	/* Activated: a again. */
	h[0].maintenance = false;
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 2048, 1), 0);
}

static void test_anti_affinity(void **unused)
{
	/* a holds a VM of the new one's group: b, whatever the policy and the load. */
	struct pd_place_host h[2] = {host("a", 65536, 64, 0, 0), host("b", 4096, 8, 3072, 6)};

	(void)unused;
	h[0].group_taken = true;
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 512, 1), 1);
	assert_int_equal(pd_place(h, 2, PD_PLACE_PACK, 512, 1), 1);
	/* Only a has room: nowhere, rather than beside its replica. */
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 2048, 1), -ENOSPC);
	h[1].group_taken = true;
	assert_int_equal(pd_place(h, 2, PD_PLACE_SPREAD, 64, 1), -ENOSPC);
}

static void test_cpu_flags(void **unused)
{
	char m[32];

	(void)unused;
	/* All there, in any order, extra ones on the destination. */
	assert_int_equal(pd_cpu_flags_missing("fpu sse2 avx avx2", "avx2  fpu", m, sizeof(m)), 0);
	assert_string_equal(m, "");
	/* Whole words only: "avx" is not "avx2", "sse4_1" is not in "sse4_2". */
	assert_int_equal(pd_cpu_flags_missing("fpu avx sse4_1", "fpu avx2 sse4_2", m, sizeof(m)), 2);
	assert_string_equal(m, "avx2 sse4_2");
	/* Nothing needed; tabs separate too. */
	assert_int_equal(pd_cpu_flags_missing("fpu", "", m, sizeof(m)), 0);
	assert_int_equal(pd_cpu_flags_missing("fpu\tvme", "vme\tfpu", m, sizeof(m)), 0);
	/* More than fits: counted all, listed until "...", within size. */
	assert_int_equal(pd_cpu_flags_missing("", "aaaaaaaa bbbbbbbb cccccccc dddddddd eeee", m,
					      sizeof(m)),
			 5);
	assert_string_equal(m, "aaaaaaaa bbbbbbbb cccccccc...");
	assert_true(strlen(m) < sizeof(m));
	assert_int_equal(pd_cpu_flags_missing("", "abcdefghijklmnopqrstuvwxyz0123456789", m, 8), 1);
	assert_string_equal(m, "...");
}

static void test_names(void **unused)
{
	enum pd_placement p;

	(void)unused;
	assert_int_equal(pd_placement_parse("spread", &p), 0);
	assert_int_equal(p, PD_PLACE_SPREAD);
	assert_int_equal(pd_placement_parse("pack", &p), 0);
	assert_int_equal(p, PD_PLACE_PACK);
	assert_int_equal(pd_placement_parse("local", &p), 0);
	assert_int_equal(p, PD_PLACE_LOCAL);
	assert_int_equal(pd_placement_parse("auto", &p), -EINVAL);
	assert_string_equal(pd_placement_name(PD_PLACE_PACK), "pack");
}

/* The leader looks at a host due to be declared dead when it is, not a period later. */
static void test_ha_wait(void **unused)
{
	(void)unused;
	/* 14.5 s silent: look 0.5 s + slack later, not after the whole 1 s period */
	assert_int_equal(pd_ha_wait_ms(1000, 14500, 15000, 20), 520);
	/* exactly at T: the next look must see it past T */
	assert_int_equal(pd_ha_wait_ms(1000, 15000, 15000, 20), 20);
	/* the period ends first, or the host is fresh: the period */
	assert_int_equal(pd_ha_wait_ms(1000, 13990, 15000, 20), 1000);
	assert_int_equal(pd_ha_wait_ms(1000, 0, 15000, 20), 1000);
	/* already past T (restarted, or waiting for a quorum): no shorter wait for it */
	assert_int_equal(pd_ha_wait_ms(1000, 15001, 15000, 20), 1000);
	assert_int_equal(pd_ha_wait_ms(1000, 60000, 15000, 20), 1000);
	/* an earlier, shorter wait (another host due sooner) stays */
	assert_int_equal(pd_ha_wait_ms(300, 14500, 15000, 20), 300);
	assert_int_equal(pd_ha_wait_ms(1000, -5, 15000, 20), 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_spread_by_the_tighter_resource),
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_down_and_full_hosts),
		cmocka_unit_test(test_maintenance),
		cmocka_unit_test(test_anti_affinity),
		cmocka_unit_test(test_cpu_flags),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_ha_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
