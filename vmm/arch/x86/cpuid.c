// SPDX-License-Identifier: MIT
#include "cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

#define CPUID_MAX_ENTRIES 512

void cpuid_set_tsc_deadline(struct kvm_cpuid2 *c)
{
	unsigned int i;

	for (i = 0; i < c->nent; i++) {
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= 1u << 24;
	}
}

struct kvm_cpuid2 *cpuid_supported(int kvm_fd)
{
	unsigned int n;

	for (n = 64; n <= CPUID_MAX_ENTRIES; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			/* KVM emulates the TSC-deadline timer but leaves the bit to us. */
			if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
				cpuid_set_tsc_deadline(c);
			return c;
		}
		free(c);
		if (errno != E2BIG) {
			log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return NULL;
		}
	}
	log_error("KVM_GET_SUPPORTED_CPUID: more than %d entries", CPUID_MAX_ENTRIES);
	return NULL;
}

/* Bits needed to number ncpus cores. */
static unsigned int core_shift(unsigned int ncpus)
{
	unsigned int s = 0;

	while ((1u << s) < ncpus)
		s++;
	return s;
}

static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned int cpu, unsigned int ncpus)
{
	/* Level 0: SMT (one thread per core); level 1: core (all CPUs in the package). */
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = 1u << 8 | 0;
		break;
	case 1:
		e->eax = core_shift(ncpus);
		e->ebx = ncpus;
		e->ecx = 2u << 8 | 1;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index;
		break;
	}
	e->edx = cpu;
}

void cpuid_fixup(struct kvm_cpuid2 *c, unsigned int cpu, unsigned int ncpus)
{
	unsigned int shift = core_shift(ncpus), i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* APIC ID, addressable logical CPUs, CLFLUSH line 64 bytes. */
			e->ebx = cpu << 24 | (1u << shift) << 16 | 8u << 8;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: more than one logical CPU */
			e->ecx |= 1u << 31;	    /* running under a hypervisor */
			break;
		case 4: {
			unsigned int level = (e->eax >> 5) & 7;

			if (!(e->eax & 0x1f))
				break; /* no more caches */
			e->eax &= 0x3fff;
			e->eax |= ((1u << shift) - 1) << 26;
			if (level >= 3)
				e->eax |= ((1u << shift) - 1) << 14;
			break;
		}
		case 0xb:
		case 0x1f:
			topology_leaf(e, cpu, ncpus);
			break;
		case 0x40000000:
			e->eax = e->eax >= 0x40000001 ? e->eax : 0x40000001;
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | shift << 12 | (ncpus - 1);
			break;
		case 0x8000001e:
			e->eax = cpu;
			e->ebx = cpu & 0xff;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
}

int cpuid_apply(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned int cpu,
		unsigned int ncpus)
{
	size_t sz = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, supported, sz);
	cpuid_fixup(c, cpu, ncpus);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		ret = -errno;
	free(c);
	return ret;
}
