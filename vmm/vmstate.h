/* SPDX-License-Identifier: MIT */
/*
 * The whole VM's state as sections of the state container (vmm/state/state.h):
 * shared by snapshots (DIR/state) and live migration (the stream).
 *
 *   "config"   0      how to rebuild the machine: kernel, initrd, cmdline, cpus,
 *                     memory, devices (so restore and receive need no options)
 *   "cpu"      index  regs, sregs, FPU, XSAVE, XCRs, MSRs (KVM_GET_MSR_INDEX_LIST),
 *                     LAPIC, MP state, vCPU events, debug registers
 *   "irqchip"  0      PIC master, PIC slave, IOAPIC
 *   "pit"      0      PIT2 state
 *   "clock"    0      kvmclock (KVM_GET_CLOCK)
 *   "serial"   0      8250 registers and receive FIFO
 *   "pm"       0      ACPI PM1 registers
 *   "i8042"    0      the controller
 *   "virtio"   slot   device id, PCI config header, transport + queues, device state
 *   (migration adds "ram" sections, migrate.c)
 *
 * The config section comes first; every other section is loaded into a VM that
 * vm_create() built from that config with cfg->restore set. Each loader checks
 * what it reads against the machine (vCPU index, device kind, FIFO bounds) and
 * refuses with state_reader_fail(): the file is hostile.
 */
#ifndef PLINTH_VMM_VMSTATE_H
#define PLINTH_VMM_VMSTATE_H

#include <stddef.h>

#include "vm.h"
#include "state/state.h"

/* A configuration read back from a state stream; owns its strings. */
struct vm_saved_config {
	struct vm_config cfg;
	char *kernel, *initrd, *cmdline;
	char *spec[VM_MAX_DEVICES];
};

/* Write the "config" section. 0 or -errno (writer's error). */
int vm_state_save_config(const struct vm_config *cfg, struct state_writer *w);
/*
 * Read the first section, which must be "config", into out (cfg fields not in the
 * stream are zero; the caller fills console fds etc.). 0 or -errno (reason in
 * state_reader_error). vm_saved_config_free() in every case.
 */
int vm_state_read_config(struct state_reader *r, struct vm_saved_config *out);
void vm_saved_config_free(struct vm_saved_config *c);

/* Write every section but "config" and memory. The vCPUs must be paused. 0 or -errno. */
int vm_state_save(struct vm *vm, struct state_writer *w);

/*
 * The loaders for vm_state_save()'s sections, for state_reader_load_all() with
 * ctx = the struct vm (extra ones, such as migration's "ram", may be appended by
 * copying the table).
 */
extern const struct state_section_loader vm_state_loaders[];
extern const size_t vm_state_nr_loaders;

#endif
