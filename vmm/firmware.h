/* SPDX-License-Identifier: MIT */
/*
 * Firmware boot (--firmware PATH [--firmware-vars PATH]): UEFI firmware built for
 * QEMU (Debian's OVMF, unmodified) instead of a Linux kernel. The platform is
 * the part of QEMU's Q35 machine OVMF reads (docs/firmware.md):
 *   - the code file mapped read-only (a KVM_MEM_READONLY slot) so that it ends at
 *     4 GiB; the vCPUs start in KVM's reset state, the BSP at the reset vector
 *     (0xfffffff0), the APs waiting for INIT-SIPI;
 *   - the variable store just below the code, CFI flash (hw/pflash.c) written
 *     through to the vars file, or held in memory (blank) without one;
 *   - fw_cfg (hw/fw_cfg.c): signature, DMA, CPU count, RAM size, etc/e820;
 *   - CMOS/RTC (hw/cmos.c), the Q35 MCH + ICH9 LPC identity and 256-bus ECAM
 *     at 0xb0000000 (hw/pci.c), the ACPI PM block at ICH9's 0x600 with the PM
 *     timer at 0x608 (hw/pm.c), and OVMF's debug port 0x402 (read as 0xe9:
 *     present; what it writes is dropped unless the log level is debug).
 */
#ifndef PLINTH_VMM_FIRMWARE_H
#define PLINTH_VMM_FIRMWARE_H

#include <stdint.h>

struct vm;
struct vm_config;

/*
 * Check a firmware code file (all code_size bytes: firmware volumes, "_FVH" at
 * offset 40 of each, tiling the file exactly) and a vars file (its first 64
 * bytes: one volume as long as the file; vars_size 0: none). Code + vars fill a
 * flash chip, a power of two of at most 16 MiB. 0; -EINVAL (the code file, *why
 * says what is wrong); -ERANGE (the vars file's size); -ENOEXEC (not a vars store).
 */
int fw_check_images(const uint8_t *code, uint64_t code_size, const uint8_t *vars_head,
		    uint64_t vars_size, const char **why);
/* The vars size a code file of code_size needs (0 when no size fits). */
uint64_t fw_vars_size_for(uint64_t code_size);

/*
 * Open cfg->firmware (read-only) and cfg->firmware_vars (read-write) into
 * cfg->kernel_fd and cfg->firmware_vars_fd and check them: 0, or -errno with one
 * line logged (nothing is written to either file).
 */
int fw_open_files(struct vm_config *cfg);
/* Build the firmware platform on vm (after its memory and PCI bus). 0 or -errno (logged). */
int fw_setup(struct vm *vm);
void fw_destroy(struct vm *vm);

#endif
