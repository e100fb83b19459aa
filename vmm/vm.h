/* SPDX-License-Identifier: MIT */
/*
 * One virtual machine: the context object every part of the VMM hangs off.
 *
 * Lifecycle: vm_create() checks the configuration, builds the machine (KVM VM,
 * memory, devices, ACPI, kernel in memory, vCPUs) and starts nothing;
 * vm_run() starts the console input thread and one thread per vCPU, waits for
 * the first exit request (guest poweroff/reset, error, signal, Ctrl-A x),
 * stops every thread and returns why; vm_destroy() frees it all. A reboot is
 * vm_destroy() + vm_create(): the guest starts over from a clean machine.
 *
 * Threads: vCPU threads run KVM_RUN and dispatch port/MMIO exits through
 * vm->pio / vm->mmio; the console thread feeds stdin to the UART; each virtio
 * device has an I/O thread (spawned by vm_run(), parked until DRIVER_OK); the
 * main thread waits in vm_run(). Devices protect their own state. With
 * cfg->seccomp each thread installs its filter first thing (vCPU: SANDBOX_VCPU,
 * console and device I/O: SANDBOX_IO; the main thread: SANDBOX_MAIN, main.c).
 */
#ifndef PLINTH_VMM_VM_H
#define PLINTH_VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "devconf.h"
#include "hv.h"
#include "irq.h"
#include "mem.h"
#include "resources.h"
#include "arch/x86/boot.h"
#include "hw/cmos.h"
#include "hw/fw_cfg.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/pcihp.h"
#include "hw/pflash.h"
#include "hw/pm.h"
#include "hw/serial.h"

#define VM_MAX_CPUS 64

#define VM_MAX_DEVICES 24
#define VM_MAX_INPUTS  4 /* keyboards and tablets: two per --display */

struct vm;
struct vm_disk_ident;

struct vm_config {
	const char *kernel;     /* path to a bzImage or ELF vmlinux */
	/* Firmware boot instead (firmware.h): UEFI code (kept in kernel_fd), vars or NULL. */
	const char *firmware;
	const char *firmware_vars;
	int vars_fd;            /* the vars file, read-write; -1 without */
	const char *initrd;     /* path or NULL */
	const char *cmdline;
	unsigned int cpus;
	uint64_t memory;        /* bytes */
	bool memory_merge;      /* guest RAM KSM can merge (guest_mem_create) */
	bool no_reboot;
	const char *api_socket; /* the control API's socket, or NULL (see control.h) */
	int console_in;         /* fds for the serial console; -1 in to disable input */
	int console_out;
	bool console_escape;    /* Ctrl-A x quits (stdin is a terminal) */
	/*
	 * The devices, created in this order, each at its slot (dev_configs_finish() ran);
	 * owned by whoever filled them (dev_configs_free).
	 */
	struct dev_config devices[VM_MAX_DEVICES];
	unsigned int nr_devices;
	/*
	 * Restore: guest RAM comes from this file (mapped MAP_PRIVATE, so pages load
	 * lazily on first touch), the kernel is not loaded, and vm_create() leaves
	 * the machine for vm_state_load() to fill in. -1 for a fresh boot.
	 */
	int restore_memory_fd;
	bool restore;
	/*
	 * Restore: the identities of this command line's disks (by device index),
	 * taken at start-up; the snapshot's "disk-id" sections are checked against
	 * them and each match clears known. NULL: not checked (migration).
	 */
	struct vm_disk_ident *disk_ident;
	/*
	 * The lease records of the writable disks, by device index, opened at start-up
	 * (lease_open, lease.h); -1 or NULL: by path.
	 */
	int *lease_fds;
	/*
	 * --epoch N[,vm=ID]: the ownership epoch this VMM presents in those records, and
	 * the VM it counts for (points into argv; NULL: any). lease_epoch_set false: none.
	 */
	bool lease_epoch_set;
	uint64_t lease_epoch;
	const char *lease_epoch_vm;
	/* A live migration's destination: disk images are opened without their locks
	 * (the source holds them) until vm_disks_acquire(). */
	bool incoming;
	/*
	 * The main thread's service hook: when service_fd (an eventfd, or -1) is
	 * readable, vm_run() calls service(service_opaque, vm) on the main thread.
	 */
	int service_fd;
	void (*service)(void *opaque, struct vm *vm);
	void *service_opaque;
	/* And every tick_ms (0: never), tick(service_opaque, vm), on the main thread too. */
	int tick_ms;
	void (*tick)(void *opaque, struct vm *vm);
	bool seccomp;           /* each thread installs its filter (vmm/sandbox) */
	/*
	 * Opened once by vm_open_files() and kept across guest resets, so that a VM
	 * re-created inside a jail (where the paths are gone) still has them; -1:
	 * vm_create() opens by path each time.
	 */
	int kvm_fd, kernel_fd, initrd_fd;
	/* The hypervisor (hv.h): NULL is KVM; unit tests give a fake and its context. */
	const struct hv_ops *hv;
	void *hv_ctx;
};

enum vm_exit {
	VM_EXIT_POWEROFF,  /* ACPI S5 */
	VM_EXIT_RESET,     /* reset port, 0xcf9, i8042 */
	VM_EXIT_QUIT,      /* Ctrl-A x */
	VM_EXIT_SIGNAL,    /* SIGTERM/SIGINT/SIGHUP to the VMM */
	VM_EXIT_ERROR,     /* vm->exit_msg says what */
	VM_EXIT_MIGRATED,  /* the guest now runs on the migration destination */
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run; /* mmap'd, run_size bytes */
	size_t run_size;
	pthread_t thread;
	bool started;
	uint64_t exits_io, exits_mmio, exits_other; /* statistics, owned by the vCPU thread */
	bool parked;         /* waiting in vcpu_park() (under vm->pause_lock) */
};

struct console_input {
	int in_fd;
	int wake_fd;          /* eventfd: FIFO drained, or stop */
	atomic_bool stop;
	bool escape;          /* Ctrl-A handling on */
	pthread_t thread;
	bool started;
};

struct vm {
	const struct vm_config *cfg;
	const struct hv_ops *hv;     /* cfg->hv or KVM's: every hypervisor call goes here */
	void *hv_ctx;                /* cfg->hv_ctx, for a fake */
	int kvm_fd;                  /* KVM's (hv_kvm.c): /dev/kvm and the VM */
	int vm_fd;
	struct guest_mem mem;
	struct resources res;
	struct bus pio, mmio;
	struct irq_router irq;       /* KVM's routes (irq_ready: initialised) */
	bool irq_ready;
	/* What the PCI bus signals MSIs and binds eventfds through (set by vm_init). */
	const struct pci_host_ops *pci_host;
	void *pci_host_ctx;
	struct pci_bus *pci;
	struct kvm_cpuid2 *cpuid;    /* supported CPUID, owned */
	bool dirty_manual;           /* KVM_CLEAR_DIRTY_LOG re-protects (migrate.c) */

	/* The kernel image, mapped read-only. */
	void *kernel_map;
	size_t kernel_len;
	struct linux_kernel kernel;
	struct vm_firmware *fw; /* firmware boot's platform (firmware.c), owned; or NULL */

	/* Built-in devices. */
	struct serial com1;
	struct pm pm;
	struct pcihp pcihp;          /* ACPI PCI hot-plug; a kernel boot only (has_pcihp) */
	bool has_pcihp;
	/* The SCI is shared by PM1 and the GPE block: its level is the OR (sci_lock). */
	pthread_mutex_t sci_lock;
	int sci_pm, sci_gpe;
	struct i8042 i8042;
	struct console_input console;

	struct virtio_pci *virtio[VM_MAX_DEVICES]; /* owned: freed before the bus */
	unsigned int nr_virtio;
	/* A --display's keyboard and tablet (display_add_inputs), owned: freed after the
	 * displays (whose threads feed them), before the bus. Not in snapshots. */
	struct virtio_pci *input[VM_MAX_INPUTS];
	unsigned int nr_input;

	struct vcpu vcpu[VM_MAX_CPUS];
	unsigned int nr_vcpus;

	/* The first exit request wins; exit_fd (eventfd) wakes vm_run(). */
	pthread_mutex_t exit_lock;
	atomic_bool stopping;
	bool exit_requested;
	enum vm_exit exit_reason;
	char exit_msg[256];
	int exit_fd;

	/*
	 * Pause: pause_req asks every vCPU to leave KVM_RUN (kicked) and wait in
	 * vcpu_park(); vm_pause() returns once all running vCPUs are parked, so their
	 * state is stable and complete (pending port/MMIO exits finished).
	 */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_req;
	unsigned int vcpus_active;    /* vCPU threads in their loop (pause_lock) */
	unsigned int vcpus_parked;    /* of those, parked (pause_lock) */
	/* Auto-converge: each vCPU sleeps this many percent of every 10 ms slice. */
	atomic_uint throttle_pct;
};

/* Build the machine. NULL on error, with one line saying why already logged. */
struct vm *vm_create(const struct vm_config *cfg);
/*
 * Run until the guest or the user stops it. signal_fd (a signalfd, or -1) is
 * watched for termination signals; *signo receives one that stopped the VM.
 */
enum vm_exit vm_run(struct vm *vm, int signal_fd, int *signo);
void vm_destroy(struct vm *vm);

/* Ask the VM to stop (any thread). The first request's reason and message are kept. */
void vm_request_exit(struct vm *vm, enum vm_exit reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Stop every vCPU at a safe point (any thread but a vCPU's): 0, or -EALREADY if
 * already paused. vm_resume: 0, or -EALREADY if not paused.
 */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);
/* Kick every running vCPU out of KVM_RUN once (throttling). */
void vm_kick_all(struct vm *vm);
/* After a restore: drive the platform devices' interrupt lines to their levels. */
void vm_resync_irqs(struct vm *vm);

/*
 * A live migration's hand-over of the disk images (device I/O threads stopped):
 * vm_disks_release flushes and closes every disk image so the destination may
 * open it; vm_disks_acquire (re)opens them with their locks, fresh, waiting up to
 * wait_ms while another process (the source on its way out) still holds one.
 * 0 or -errno (logged once).
 */
int vm_disks_release(struct vm *vm);
int vm_disks_acquire(struct vm *vm, unsigned int wait_ms);
/* Press the ACPI power button (SCI with PM1 PWRBTN_STS). */
void vm_power_button(struct vm *vm);

/* Add a PCI device (virtio etc.) to bus 0; call from vm_create's device step. 0 or -errno. */
int vm_add_pci_device(struct vm *vm, struct pci_device *dev);

/*
 * Hot-plug (main thread, the VM running or paused; vmm/hotplug.c drives them):
 * vm_device_plug creates device d at its slot as vm_create() creates a configured one
 * (the class's create, the I/O thread's filter hook) and starts its I/O thread, the
 * vCPUs paused meanwhile; it becomes vm->virtio[vm->nr_virtio - 1], so the caller
 * appends d to the config's devices (their indices match). vm_device_unplug takes
 * device index i off the bus and frees it, the vCPUs paused meanwhile; vm->virtio
 * closes up, as the caller's config must. 0 or -errno, logged.
 */
int vm_device_plug(struct vm *vm, const struct dev_config *d);
void vm_device_unplug(struct vm *vm, unsigned int i);

/* vcpu.c */
int vcpu_create(struct vm *vm, unsigned int index);
void vcpu_destroy(struct vcpu *vcpu);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *vcpu);

/* Check the host's KVM before anything else: 0, or -errno with one line logged. */
int vm_open_kvm(int *kvm_fd);
/*
 * Open the kernel and the initrd into cfg's fds, once, before any vm_create()
 * (and before a jail); cfg->kvm_fd starts at -1: the caller may keep the first
 * VM's vm->kvm_fd there (vm_destroy() leaves cfg->kvm_fd open). 0 or -errno with
 * one line logged; vm_close_files() closes all three.
 */
int vm_open_files(struct vm_config *cfg);
void vm_close_files(struct vm_config *cfg);

#endif
