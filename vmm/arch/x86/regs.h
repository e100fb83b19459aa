/* SPDX-License-Identifier: MIT */
/*
 * Initial vCPU state for the 64-bit Linux boot protocol: long mode with the
 * boot page tables and GDT that boot.c wrote, RIP at the kernel's 64-bit entry,
 * RSI at the zero page; plus MSRs, FPU and local APIC LINT pins for every vCPU.
 */
#ifndef PLINTH_VMM_ARCH_X86_REGS_H
#define PLINTH_VMM_ARCH_X86_REGS_H

#include <stdbool.h>
#include <stdint.h>

/* MSRs, FPU, LAPIC: every vCPU. 0 or -errno. */
int x86_vcpu_init(int vcpu_fd, bool bsp);
/* Registers for the boot CPU: long mode at entry. 0 or -errno. */
int x86_vcpu_boot_regs(int vcpu_fd, uint64_t entry);
/* The vCPU's RIP, for error messages (0 when it can't be read). */
uint64_t x86_vcpu_rip(int vcpu_fd);

/* Why a vCPU triple faulted, as far as its state tells. */
enum x86_shutdown_kind {
	X86_SHUTDOWN_RESET,   /* deliberate: an empty IDT (Linux's reboot=t) */
	X86_SHUTDOWN_UNKNOWN, /* KVM already reset the vCPU (AMD SVM does): cause lost */
	X86_SHUTDOWN_CRASH,   /* a fault with a live IDT: the guest crashed */
};
enum x86_shutdown_kind x86_vcpu_shutdown_kind(int vcpu_fd);

#endif
