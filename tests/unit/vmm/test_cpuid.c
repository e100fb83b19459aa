// SPDX-License-Identifier: MIT
/* Per-vCPU CPUID: topology (APIC IDs, leaf 1/4/0xb), hypervisor leaf, TSC deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arch/x86/cpuid.h"

static struct kvm_cpuid2 *supported(void)
{
	static const struct kvm_cpuid_entry2 e[] = {
		{.function = 0, .eax = 0xd},
		{.function = 1, .eax = 0x806f8, .ebx = 0xff0800, .ecx = 0x1, .edx = 0x1},
		{.function = 4, .index = 0, .eax = 0x121, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 4, .index = 1, .eax = 0x163, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 4, .index = 2, .eax = 0x0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
		{.function = 0x40000000, .eax = 0x40000001},
		{.function = 0x40000001, .eax = 0x1},
		{.function = 0x80000008, .eax = 0x3030, .ecx = 0xffff},
	};
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(e));

	c->nent = sizeof(e) / sizeof(e[0]);
	memcpy(c->entries, e, sizeof(e));
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	}
	fail();
	return NULL;
}

static void test_topology(void **state)
{
	struct kvm_cpuid2 *c = supported();

	(void)state;
	cpuid_fixup(c, 5, 6);
	/* Leaf 1: APIC ID 5, 8 addressable IDs (6 rounded up), HTT, hypervisor bit. */
	assert_int_equal(leaf(c, 1, 0)->ebx >> 24, 5);
	assert_int_equal((leaf(c, 1, 0)->ebx >> 16) & 0xff, 8);
	assert_true(leaf(c, 1, 0)->edx & (1u << 28));
	assert_true(leaf(c, 1, 0)->ecx & (1u << 31));
	/* Leaf 4: cores per package - 1 in EAX[31:26]; the L3 is shared by all. */
	assert_int_equal(leaf(c, 4, 0)->eax >> 26, 7);
	assert_int_equal((leaf(c, 4, 1)->eax >> 14) & 0xfff, 7);
	assert_int_equal((leaf(c, 4, 0)->eax >> 14) & 0xfff, 0);
	assert_int_equal(leaf(c, 4, 2)->eax, 0); /* the terminator stays */
	/* Leaf 0xb: SMT level 1 thread, core level 6 CPUs, x2APIC ID in EDX. */
	assert_int_equal(leaf(c, 0xb, 0)->ebx, 1);
	assert_int_equal((leaf(c, 0xb, 0)->ecx >> 8) & 0xff, 1);
	assert_int_equal(leaf(c, 0xb, 1)->eax, 3);
	assert_int_equal(leaf(c, 0xb, 1)->ebx, 6);
	assert_int_equal((leaf(c, 0xb, 1)->ecx >> 8) & 0xff, 2);
	assert_int_equal(leaf(c, 0xb, 1)->edx, 5);
	assert_int_equal((leaf(c, 0xb, 2)->ecx >> 8) & 0xff, 0); /* invalid level ends the list */
	/* AMD: NC = 5, ApicIdCoreIdSize = 3. */
	assert_int_equal(leaf(c, 0x80000008, 0)->ecx & 0xff, 5);
	assert_int_equal((leaf(c, 0x80000008, 0)->ecx >> 12) & 0xf, 3);
	/* The KVM signature. */
	assert_memory_equal(&leaf(c, 0x40000000, 0)->ebx, "KVMK", 4);
	assert_memory_equal(&leaf(c, 0x40000000, 0)->ecx, "VMKV", 4);
	assert_memory_equal(&leaf(c, 0x40000000, 0)->edx, "M\0\0\0", 4);
	free(c);
}

static void test_single_cpu(void **state)
{
	struct kvm_cpuid2 *c = supported();

	(void)state;
	cpuid_fixup(c, 0, 1);
	assert_int_equal(leaf(c, 1, 0)->ebx >> 24, 0);
	assert_int_equal((leaf(c, 1, 0)->ebx >> 16) & 0xff, 1);
	assert_false(leaf(c, 1, 0)->edx & (1u << 28));
	assert_int_equal(leaf(c, 4, 0)->eax >> 26, 0);
	assert_int_equal(leaf(c, 0xb, 1)->ebx, 1);
	cpuid_set_tsc_deadline(c);
	assert_true(leaf(c, 1, 0)->ecx & (1u << 24));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_single_cpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
