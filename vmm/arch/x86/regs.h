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

/*
 * True when the vCPU's IDT is empty (limit 0): a triple fault then is a deliberate
 * reset (Linux's reboot=t loads an empty IDT and raises int3), not a crash.
 */
bool x86_vcpu_idt_empty(int vcpu_fd);

#endif
