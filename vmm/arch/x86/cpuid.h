/* SPDX-License-Identifier: MIT */
/*
 * Guest CPUID: what KVM supports (KVM_GET_SUPPORTED_CPUID), adjusted per vCPU
 * for the topology (one socket, one thread per core, APIC ID = vCPU index) and
 * the KVM paravirtual signature.
 */
#ifndef PLINTH_VMM_ARCH_X86_CPUID_H
#define PLINTH_VMM_ARCH_X86_CPUID_H

#include <linux/kvm.h>

/* Fetch the supported CPUID from /dev/kvm. Returns a malloc'd list (caller frees) or NULL. */
struct kvm_cpuid2 *cpuid_supported(int kvm_fd);

/* Advertise the TSC-deadline timer (leaf 1 ECX bit 24). */
void cpuid_set_tsc_deadline(struct kvm_cpuid2 *c);

/* Adjust a copy of the supported list for vCPU cpu of ncpus (pure, unit-tested). */
void cpuid_fixup(struct kvm_cpuid2 *c, unsigned int cpu, unsigned int ncpus);

/* Apply the fixed-up CPUID to a vCPU. 0 or -errno. */
int cpuid_apply(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned int cpu,
		unsigned int ncpus);

#endif
