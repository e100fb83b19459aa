/* SPDX-License-Identifier: MIT */
/*
 * The x86 machine's guest-physical and port layout. Fixed addresses live here;
 * everything that devices claim (ports, MMIO, IRQs) goes through the resource
 * registry (vmm/resources.h), which e820 and the ACPI tables are built from.
 *
 *   0x0000_0500  GDT            0x0000_0520  IDT (empty)
 *   0x0000_7000  boot_params (zero page)
 *   0x0000_8ff0  initial stack  0x0000_9000  PML4, PDPT at 0xa000, 4 PDs at 0xb000..0xefff
 *   0x0002_0000  kernel command line (up to 64 KiB)
 *   0x0009_fc00  EBDA (reserved) .. 0x000a_0000
 *   0x000e_0000  ACPI tables (RSDP first), reserved up to 1 MiB
 *   0x0010_0000  RAM .. min(memory, 3 GiB); the kernel at its preferred address
 *   0xc000_0000  PCI MMIO32 window (512 MiB)
 *   0xe000_0000  PCI ECAM (bus 0 only: 1 MiB), reserved in e820
 *   0xfec0_0000  IOAPIC         0xfee0_0000  local APICs
 *   0xfffb_c000  KVM identity-map page and TSS (Intel VMX)
 *   0x1_0000_0000 RAM above 3 GiB is moved here
 */
#ifndef PLINTH_VMM_ARCH_X86_LAYOUT_H
#define PLINTH_VMM_ARCH_X86_LAYOUT_H

#define LAYOUT_GDT	   0x500ULL
#define LAYOUT_IDT	   0x520ULL
#define LAYOUT_ZERO_PAGE   0x7000ULL
#define LAYOUT_STACK	   0x8ff0ULL
#define LAYOUT_PML4	   0x9000ULL
#define LAYOUT_PDPT	   0xa000ULL
#define LAYOUT_PD	   0xb000ULL /* 4 pages: identity map of the low 4 GiB */
#define LAYOUT_CMDLINE	   0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_EBDA	   0x9fc00ULL
#define LAYOUT_LOW_END	   0xa0000ULL /* end of conventional memory */
#define LAYOUT_ACPI	   0xe0000ULL
#define LAYOUT_ACPI_END	   0x100000ULL
#define LAYOUT_HIGH_START  0x100000ULL /* 1 MiB */

#define LAYOUT_MEM_HOLE	    0xc0000000ULL /* RAM below 4 GiB ends here at most */
#define LAYOUT_MEM_4G	    0x100000000ULL
#define LAYOUT_PCI_MMIO	    0xc0000000ULL
#define LAYOUT_PCI_MMIO_LEN 0x20000000ULL
#define LAYOUT_PCI_ECAM	    0xe0000000ULL
#define LAYOUT_PCI_ECAM_LEN 0x100000ULL /* bus 0 */
#define LAYOUT_IOAPIC	    0xfec00000ULL
#define LAYOUT_IOAPIC_LEN   0x1000ULL
#define LAYOUT_LAPIC	    0xfee00000ULL
#define LAYOUT_LAPIC_LEN    0x100000ULL
#define LAYOUT_KVM_IDMAP    0xfffbc000ULL
#define LAYOUT_KVM_TSS	    0xfffbd000ULL
#define LAYOUT_KVM_LEN	    0x4000ULL

/* Firmware boot (--firmware): Q35's places, where OVMF expects them. */
#define LAYOUT_FW_ECAM	     0xb0000000ULL /* PCIEXBAR, 256 buses; low RAM ends below */
#define LAYOUT_FW_LOW_SPLIT  0x80000000ULL /* low RAM end when memory passes ECAM */
#define LAYOUT_FW_KVM_IDMAP  0xfeffc000ULL /* KVM's pages, clear of the flash */
#define LAYOUT_FW_KVM_TSS    0xfeffd000ULL
#define LAYOUT_FW_FLASH_MAX  0x1000000ULL  /* 16 MiB of flash at most, ending at 4 GiB */

/* Ports. */
#define PORT_I8042_DATA	  0x60
#define PORT_I8042_CMD	  0x64
#define PORT_COM1	  0x3f8
#define PORT_COM_LEN	  8
#define PORT_PM1A_EVT	  0x600 /* PM1a status (2) + enable (2) */
#define PORT_PM1A_EVT_LEN 4
#define PORT_PM1A_CNT	  0x604 /* PM1a control (2) */
#define PORT_PM1A_CNT_LEN 2
#define PORT_PCI_CONF	  0xcf8 /* 0xcf8 address, 0xcf9 reset control, 0xcfc data */
#define PORT_PCI_CONF_LEN 8
#define PORT_RESET	  0xcf9
#define PORT_CMOS	  0x70
#define PORT_PM_TMR	  0x608 /* ACPI PM timer (firmware boot only) */
#define PORT_PM_TMR_LEN	  4
#define PORT_FW_CFG	  0x510
#define PORT_FW_DEBUG	  0x402 /* OVMF's debug console */
#define PORT_SYSCTL_A	  0x92  /* A20 gate and fast reset (firmware boot only) */
#define PORT_PCIHP	  0xae00 /* PCI hot-plug controller (hw/pcihp.h) */
#define PORT_PCIHP_LEN	  12
#define PORT_GPE0	  0xafe0 /* GPE0 block: status (2) + enable (2) */
#define PORT_GPE0_LEN	  4
#define PORT_PCI_IO	  0xc000 /* PCI I/O BAR window */
#define PORT_PCI_IO_LEN	  0x4000

/* IRQs (ISA numbering = IOAPIC pin). */
#define IRQ_COM1    4
#define IRQ_SCI	    9
#define IOAPIC_PINS 24

#define ACPI_S5_SLP_TYP 5 /* value of _S5 that PM1a_CNT.SLP_TYP carries for soft-off */

#endif
