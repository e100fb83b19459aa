/* SPDX-License-Identifier: MIT */
/*
 * The whole VM's state as sections of the state container (vmm/state/state.h):
 * shared by snapshots (DIR/state) and live migration (the stream).
 *
 *   "config.2" 0      the machine: kernel, initrd, cmdline, cpus, memory, and per
 *                     device its class, id, PCI slot and canonical spec; restore and
 *                     receive build theirs from their own command line and only
 *                     check it against this (vm_state_check_config)
 *   "disk-id.2" slot  (snapshots, optional, right after "config.2") the device's id,
 *                     then the image's size, mtime, header crc: a restore refuses a
 *                     disk that differs (cfg->disk_ident) before any device is loaded
 *   "cpu"      index  regs, sregs, FPU, XSAVE, XCRs, MSRs (KVM_GET_MSR_INDEX_LIST),
 *                     LAPIC, MP state, vCPU events, debug registers
 *   "irqchip"  0      PIC master, PIC slave, IOAPIC
 *   "pit"      0      PIT2 state
 *   "clock"    0      kvmclock (KVM_GET_CLOCK)
 *   "serial"   0      8250 registers and receive FIFO
 *   "pm"       0      ACPI PM1 registers
 *   "i8042"    0      the controller
 *   "pcihp"    0      (a kernel boot) ACPI PCI hot-plug: GPE0 block, slots to report,
 *                     removals the guest has yet to eject (hw/pcihp.h)
 *   "virtio.2" slot   the device's id, virtio device id, PCI config header,
 *                     transport + queues, device state
 *   (migration adds "ram" sections, migrate.c)
 *
 * Devices are matched by id: the saved config's ids must be this machine's, each of
 * the same class in the same PCI slot, or the whole load is refused in one line
 * before any state is touched; a slot-keyed section must name the id of the device
 * in that slot here. Streams from before ids ("config", "disk-id" and "virtio"
 * keyed by command-line index) still load: their devices get the ids and slots a
 * command line without id= and addr= gives (disk0, net0..., slots 1, 2... in order).
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
	char *kernel, *initrd, *cmdline;  /* cfg's, owned; cfg.devices are owned too */
};

/* Write the "config.2" section. 0 or -errno (writer's error). */
int vm_state_save_config(const struct vm_config *cfg, struct state_writer *w);
/*
 * The same fields as section type (VM_CONFIG_MIGRATION for a migration stream). A stream
 * that may hold sections an older build would skip without a word (migration's
 * "ram-zero") names its config so that such a build refuses the whole stream instead.
 */
#define VM_CONFIG_MIGRATION "config.3"
int vm_state_save_config_as(const struct vm_config *cfg, const char *type,
			    struct state_writer *w);
/*
 * Read the first section, which must be "config.2" or "config.3" (or the older "config"), into out (cfg fields not in the
 * stream are zero; the caller fills console fds etc.). 0 or -errno (reason in
 * state_reader_error). vm_saved_config_free() in every case.
 */
int vm_state_read_config(struct state_reader *r, struct vm_saved_config *out);
void vm_saved_config_free(struct vm_saved_config *c);
/*
 * Read the "config" section and check it against the machine this side built from
 * its own command line (restore, receive): the same vCPUs, memory size and
 * devices, matched by id, each of the same class in the same PCI slot. Paths, taps and sockets are this side's own and
 * never taken from the stream. 0, or -EINVAL with one line in state_reader_error
 * naming the first difference and the option that sets it.
 */
int vm_state_check_config(struct state_reader *r, const struct vm_config *cfg);

/*
 * A disk image's identity when a snapshot is taken, so that a restore refuses a
 * disk that moved on since (written by a guest that ran on after the snapshot, or
 * another image at that path): the file's size, its modification time and a
 * crc32 of its first 64 KiB (the format's header).
 */
struct vm_disk_ident {
	bool known;       /* computed (the file could be read) */
	uint64_t size;
	int64_t mtime_ns;
	uint32_t head_crc;
};

/* The identity of the image a --disk spec names (by its path=). 0 or -errno. */
int vm_disk_ident_of(const char *spec, struct vm_disk_ident *id);
/*
 * Write one optional "disk-id.2" section per disk of vm whose identity can be
 * taken (keyed by slot, naming the device's id), from the file the disk holds open; a disk whose file
 * cannot be read is left out (a restore then warns that it was not checked). 0 or
 * the writer's error.
 */
int vm_state_save_disk_idents(struct vm *vm, struct state_writer *w);

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
