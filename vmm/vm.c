// SPDX-License-Identifier: MIT
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "firmware.h"
#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "display/vnc.h"
#include "virtio/blk.h"
#include "virtio/virtio-pci.h"
#include "virtio/devices.h"

#define CTRL_A 0x01

void vm_request_exit(struct vm *vm, enum vm_exit reason, const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->exit_lock);
	if (!vm->exit_requested) {
		vm->exit_requested = true;
		vm->exit_reason = reason;
		if (fmt) {
			va_start(ap, fmt);
			vsnprintf(vm->exit_msg, sizeof(vm->exit_msg), fmt, ap);
			va_end(ap);
		}
		if (write(vm->exit_fd, &one, sizeof(one)) < 0)
			log_error("cannot wake the main thread: %s", strerror(errno));
	}
	pthread_mutex_unlock(&vm->exit_lock);
}

/* ---- device backends ---- */

static void com1_irq(void *opaque, int level)
{
	struct vm *vm = opaque;

	vm->hv->irq_line(vm, IRQ_COM1, level);
}

static void com1_tx(void *opaque, uint8_t byte)
{
	struct vm *vm = opaque;

	/* A console that went away (closed pipe) must not stop the guest. */
	if (write_full(vm->cfg->console_out, &byte, 1) < 0)
		return;
}

static void com1_rx_space(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (write(vm->console.wake_fd, &one, sizeof(one)) < 0)
		return;
}

static const struct serial_backend com1_backend = {
	.irq = com1_irq,
	.tx = com1_tx,
	.rx_space = com1_rx_space,
};

static void pm_event(void *opaque, enum pm_event ev)
{
	struct vm *vm = opaque;

	vm_request_exit(vm, ev == PM_EVENT_POWEROFF ? VM_EXIT_POWEROFF : VM_EXIT_RESET, NULL);
}

/* One source of the shared SCI changed its level (*src): drive the line to the OR. */
static void sci_set(struct vm *vm, int *src, int level)
{
	pthread_mutex_lock(&vm->sci_lock);
	*src = level;
	vm->hv->irq_line(vm, IRQ_SCI, vm->sci_pm || vm->sci_gpe);
	pthread_mutex_unlock(&vm->sci_lock);
}

static void pm_sci(void *opaque, int level)
{
	struct vm *vm = opaque;

	sci_set(vm, &vm->sci_pm, level);
}

static const struct pm_backend pm_backend = { .event = pm_event, .sci = pm_sci };

static void pcihp_sci(void *opaque, int level)
{
	struct vm *vm = opaque;

	sci_set(vm, &vm->sci_gpe, level);
}

/* The guest ejected a slot (a vCPU thread): the main thread frees the device. */
static void pcihp_eject(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (vm->cfg->service_fd >= 0 && write(vm->cfg->service_fd, &one, sizeof(one)) < 0)
		log_error("cannot wake the main thread for an eject: %s", strerror(errno));
}

static const struct pcihp_backend pcihp_backend = { .sci = pcihp_sci, .eject = pcihp_eject };

static void reset_control(void *opaque, uint8_t val)
{
	struct vm *vm = opaque;

	pm_reset_control(&vm->pm, val);
}

static void i8042_reset(void *opaque)
{
	struct vm *vm = opaque;

	vm_request_exit(vm, VM_EXIT_RESET, NULL);
}

/* ---- console input thread ---- */

/*
 * Feed n bytes to the UART, waiting for FIFO space (or a stop request).
 * Returns false when asked to stop.
 */
static bool console_feed(struct vm *vm, const uint8_t *buf, size_t n)
{
	struct console_input *c = &vm->console;

	while (n) {
		size_t done = serial_rx(&vm->com1, buf, n);
		struct pollfd p = { .fd = c->wake_fd, .events = POLLIN };
		uint64_t v;

		buf += done;
		n -= done;
		if (atomic_load(&c->stop))
			return false;
		if (!n)
			break;
		/* The FIFO is full: wait until the guest drains it (time out for loopback). */
		if (poll(&p, 1, 100) > 0 && read(c->wake_fd, &v, sizeof(v)) < 0)
			return false;
	}
	return true;
}

static void *console_thread(void *arg)
{
	struct vm *vm = arg;
	struct console_input *c = &vm->console;
	bool ctrl_a = false;

	pthread_setname_np(pthread_self(), "console");
	if (vm->cfg->seccomp && sandbox_seccomp_install(SANDBOX_IO)) {
		vm_request_exit(vm, VM_EXIT_ERROR, "console: cannot install its seccomp filter");
		return NULL;
	}
	while (!atomic_load(&c->stop)) {
		struct pollfd p[2] = {
			{ .fd = c->in_fd, .events = POLLIN },
			{ .fd = c->wake_fd, .events = POLLIN },
		};
		uint8_t buf[256], out[256];
		size_t n_out = 0;
		ssize_t n, i;
		uint64_t v;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			continue;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(c->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* end of input: the guest keeps running without it */
		for (i = 0; i < n; i++) {
			uint8_t b = buf[i];

			if (c->escape && ctrl_a) {
				ctrl_a = false;
				if (b == 'x' || b == 'X') {
					vm_request_exit(vm, VM_EXIT_QUIT, NULL);
					return NULL;
				}
				if (b != CTRL_A)
					out[n_out++] = CTRL_A; /* not an escape: pass both on */
			} else if (c->escape && b == CTRL_A) {
				ctrl_a = true;
				continue;
			}
			out[n_out++] = b;
			if (n_out >= sizeof(out) - 1) {
				if (!console_feed(vm, out, n_out))
					return NULL;
				n_out = 0;
			}
		}
		if (n_out && !console_feed(vm, out, n_out))
			return NULL;
	}
	return NULL;
}

/* ---- creation ---- */

static int boot_file_open(const char *what, const char *path, int kept);

int vm_open_files(struct vm_config *cfg)
{
	int ret;

	/* /dev/kvm is checked after the kernel (vm_create): main keeps the first VM's fd. */
	cfg->kvm_fd = cfg->kernel_fd = cfg->initrd_fd = cfg->vars_fd = -1;
	if (cfg->firmware) {
		ret = fw_open_files(cfg);
		if (ret)
			vm_close_files(cfg);
		return ret;
	}
	cfg->kernel_fd = boot_file_open("kernel", cfg->kernel, -1);
	if (cfg->kernel_fd < 0)
		goto out_close;
	if (cfg->initrd) {
		cfg->initrd_fd = boot_file_open("initrd", cfg->initrd, -1);
		if (cfg->initrd_fd < 0)
			goto out_close;
	}
	return 0;

out_close:
	ret = -errno;
	vm_close_files(cfg);
	return ret;
}

void vm_close_files(struct vm_config *cfg)
{
	int *fd[] = { &cfg->kvm_fd, &cfg->kernel_fd, &cfg->initrd_fd, &cfg->vars_fd };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fd); i++) {
		if (*fd[i] >= 0)
			close(*fd[i]);
		*fd[i] = -1;
	}
}

/* The kernel's or initrd's fd: cfg's, kept open (not to be closed), or opened now. */
static int boot_file_open(const char *what, const char *path, int kept)
{
	int fd;

	if (kept >= 0)
		return kept;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		log_error("cannot open %s %s: %s", what, path, strerror(err));
		errno = err; /* the caller returns -errno */
	}
	return fd;
}

static int vm_map_kernel(struct vm *vm)
{
	const char *why = NULL;
	struct stat st;
	int fd, ret;

	fd = boot_file_open("kernel", vm->cfg->kernel, vm->cfg->kernel_fd);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		log_error("kernel %s is not a regular, non-empty file", vm->cfg->kernel);
		if (fd != vm->cfg->kernel_fd)
			close(fd);
		return -EINVAL;
	}
	vm->kernel_len = (size_t)st.st_size;
	vm->kernel_map = mmap(NULL, vm->kernel_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (fd != vm->cfg->kernel_fd)
		close(fd);
	if (vm->kernel_map == MAP_FAILED) {
		ret = -errno;
		vm->kernel_map = NULL;
		log_error("cannot map kernel %s: %s", vm->cfg->kernel, strerror(errno));
		return ret;
	}
	ret = linux_probe(vm->kernel_map, vm->kernel_len, &vm->kernel, &why);
	if (ret)
		log_error("kernel %s: %s", vm->cfg->kernel, why);
	return ret;
}

/* Everything about the guest's files that can be checked before KVM is touched. */
static int vm_check_boot_files(struct vm *vm)
{
	uint64_t initrd_size = 0, addr;
	const char *why = NULL;
	struct stat st;
	int ret;

	if (vm->cfg->initrd) {
		int fd = boot_file_open("initrd", vm->cfg->initrd, vm->cfg->initrd_fd);

		if (fd < 0)
			return -errno;
		ret = fstat(fd, &st) < 0 ? -errno : 0;
		if (fd != vm->cfg->initrd_fd)
			close(fd);
		if (ret) {
			log_error("cannot stat initrd %s: %s", vm->cfg->initrd, strerror(-ret));
			return ret;
		}
		if (!S_ISREG(st.st_mode)) {
			log_error("initrd %s is not a regular file", vm->cfg->initrd);
			return -EINVAL;
		}
		initrd_size = (uint64_t)st.st_size;
	}
	ret = linux_plan(&vm->kernel, MIN(vm->cfg->memory, LAYOUT_MEM_HOLE),
			 strlen(vm->cfg->cmdline), initrd_size, &addr, &why);
	if (ret)
		log_error("cannot boot %s with --memory %lluM: %s", vm->cfg->kernel,
			  (unsigned long long)(vm->cfg->memory / MiB), why);
	return ret;
}

/* Guest RAM, not yet known to the hypervisor (vm_register_memory). 0 or -errno. */
static int vm_setup_memory(struct vm *vm)
{
	struct guest_mem_layout lay[2];
	unsigned int nr = 1;
	uint64_t size = vm->cfg->memory;
	int ret;

	uint64_t hole = LAYOUT_MEM_HOLE;

	/* Firmware boot: low RAM ends below Q35's ECAM (at 2 GiB once it would reach it). */
	if (vm->cfg->firmware)
		hole = size > LAYOUT_FW_ECAM ? LAYOUT_FW_LOW_SPLIT : LAYOUT_FW_ECAM;
	lay[0].gpa = 0;
	lay[0].size = MIN(size, hole);
	if (size > hole) {
		/* RAM that would overlap the PCI hole moves above 4 GiB. */
		lay[1].gpa = LAYOUT_MEM_4G;
		lay[1].size = size - hole;
		nr = 2;
	}
	if (vm->cfg->restore && vm->cfg->restore_memory_fd >= 0)
		ret = guest_mem_map_file(&vm->mem, lay, nr, vm->cfg->restore_memory_fd);
	else
		ret = guest_mem_create(&vm->mem, lay, nr, vm->cfg->memory_merge);
	return ret;
}

/* The guest memory to the hypervisor's VM, slot by slot. 0 or -errno (logged). */
static int vm_register_memory(struct vm *vm)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vm->mem.nr_slots; i++) {
		const struct guest_mem_slot *s = &vm->mem.slot[i];

		ret = vm->hv->set_memory(vm, i, s->gpa, s->size, s->hva, 0);
		if (ret) {
			log_error("cannot register guest memory with the hypervisor: %s",
				  strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Fixed machine resources and the built-in devices, all through the registry. */
/*
 * Run by each device I/O thread before its first request (virtio_pci_set_thread_hook):
 * arg is its kind, SANDBOX_IO, or SANDBOX_IO_CONNECT for the one device that
 * connects out (vsock).
 */
static int worker_sandbox(void *arg)
{
	return sandbox_seccomp_install((enum sandbox_thread)(intptr_t)arg);
}

/*
 * Create configured device d at its slot as vm->virtio[vm->nr_virtio] (a boot's
 * devices in their order, or a hot-plugged one) and give its threads their filters.
 * 0 or -errno, logged by the device.
 */
static int vm_create_device(struct vm *vm, const struct dev_config *d)
{
	const struct dev_class *cls = d->cls;
	int ret;

	if (vm->nr_virtio >= VM_MAX_DEVICES) {
		log_error("at most %d devices", VM_MAX_DEVICES);
		return -ENOSPC;
	}
	pci_bus_pin_next(vm->pci, (int)d->slot);
	if (vm->cfg->incoming && cls->create_incoming)
		ret = cls->create_incoming(vm->pci, &vm->mem, d->spec, &vm->virtio[vm->nr_virtio]);
	else
		ret = cls->create(vm->pci, &vm->mem, d->spec, &vm->virtio[vm->nr_virtio]);
	pci_bus_pin_next(vm->pci, -1);
	if (ret)
		return ret;
	/*
	 * Before anything can start the device: a restore or a migration starts it
	 * while loading its state, before vm_run(); its I/O thread must be filtered
	 * from its first request whoever spawned it.
	 */
	if (vm->cfg->seccomp) {
		virtio_pci_set_thread_hook(vm->virtio[vm->nr_virtio], worker_sandbox,
					   (void *)(intptr_t)(cls->io_connect ? SANDBOX_IO_CONNECT :
										SANDBOX_IO));
		virtio_pci_set_aux_hook(vm->virtio[vm->nr_virtio], worker_sandbox,
					(void *)(intptr_t)SANDBOX_DISPLAY);
	}
	vm->nr_virtio++;
	return 0;
}

static int vm_setup_devices(struct vm *vm)
{
	static const struct res_isa_dev com1 = {
		.name = "COM1", .hid = "PNP0501", .uid = 1,
		.port = PORT_COM1, .port_len = PORT_COM_LEN, .irq = IRQ_COM1,
	};
	static const unsigned int fixed_irqs[] = { 0, 1, 2, IRQ_COM1, 8, IRQ_SCI };
	struct resources *r = &vm->res;
	size_t i;
	unsigned int j;
	int ret = 0;

	res_init(r, LAYOUT_PCI_MMIO, LAYOUT_PCI_MMIO_LEN, PORT_PCI_IO, PORT_PCI_IO_LEN);
	for (i = 0; i < ARRAY_SIZE(fixed_irqs) && !ret; i++)
		ret = res_irq_claim(r, fixed_irqs[i]);
	if (!ret)
		ret = res_claim(r, RES_MMIO, LAYOUT_IOAPIC, LAYOUT_IOAPIC_LEN, 0, "ioapic");
	if (!ret)
		ret = res_claim(r, RES_MMIO, LAYOUT_LAPIC, LAYOUT_LAPIC_LEN, 0, "lapic");
	if (!ret)
		ret = res_claim(r, RES_MMIO,
				vm->cfg->firmware ? LAYOUT_FW_KVM_IDMAP : LAYOUT_KVM_IDMAP,
				LAYOUT_KVM_LEN, RES_F_E820_RESERVED, "kvm-tss");
	if (!ret)
		ret = res_claim(r, RES_PIO, PORT_COM1, PORT_COM_LEN, 0, "com1");
	if (!ret)
		ret = res_add_isa(r, &com1);
	if (!ret)
		ret = res_claim(r, RES_PIO, PORT_PM1A_EVT, PORT_PM1A_EVT_LEN + PORT_PM1A_CNT_LEN, 0,
				"acpi-pm");
	if (!ret)
		ret = res_claim(r, RES_PIO, PORT_I8042_DATA, 5, 0, "i8042");
	/* ACPI PCI hot-plug: the kernel boot's DSDT describes it (firmware brings its own). */
	if (!ret && !vm->cfg->firmware)
		ret = res_claim(r, RES_PIO, PORT_GPE0, PORT_GPE0_LEN, 0, "acpi-gpe0");
	if (!ret && !vm->cfg->firmware)
		ret = res_claim(r, RES_PIO, PORT_PCIHP, PORT_PCIHP_LEN, 0, "pci-hotplug");
	if (ret) {
		log_error("machine resources conflict: %s", strerror(-ret));
		return ret;
	}

	serial_init(&vm->com1, &com1_backend, vm);
	pm_init(&vm->pm, &pm_backend, vm);
	pcihp_init(&vm->pcihp, &pcihp_backend, vm);
	vm->has_pcihp = !vm->cfg->firmware;
	i8042_init(&vm->i8042, i8042_reset, vm);
	ret = bus_register(&vm->pio, PORT_COM1, PORT_COM_LEN, &serial_ops, &vm->com1);
	if (!ret)
		ret = bus_register(&vm->pio, PORT_PM1A_EVT, PORT_PM1A_EVT_LEN + PORT_PM1A_CNT_LEN,
				   &pm_ops, &vm->pm);
	if (!ret)
		ret = bus_register(&vm->pio, PORT_I8042_DATA, 5, &i8042_ops, &vm->i8042);
	if (!ret && vm->has_pcihp)
		ret = bus_register(&vm->pio, PORT_GPE0, PORT_GPE0_LEN, &pcihp_gpe_ops, &vm->pcihp);
	if (!ret && vm->has_pcihp)
		ret = bus_register(&vm->pio, PORT_PCIHP, PORT_PCIHP_LEN, &pcihp_ops, &vm->pcihp);
	if (!ret && vm->has_pcihp) {
		r->gpe0_port = PORT_GPE0;
		r->pcihp_port = PORT_PCIHP;
	}
	if (ret) {
		log_error("cannot route the built-in devices: %s", strerror(-ret));
		return ret;
	}

	if (vm->cfg->firmware)
		vm->pci = pci_bus_new_q35(&vm->pio, &vm->mmio, r, LAYOUT_FW_ECAM,
					  vm->pci_host, vm->pci_host_ctx);
	else
		vm->pci = pci_bus_new(&vm->pio, &vm->mmio, r, LAYOUT_PCI_ECAM, vm->pci_host,
				      vm->pci_host_ctx);
	if (!vm->pci)
		return -ENOMEM;
	if (vm->cfg->firmware) {
		ret = fw_setup(vm);
		if (ret)
			return ret;
	}
	pci_bus_set_reset_handler(vm->pci, reset_control, vm);

	/*
	 * The configured devices, in their order, each at the PCI slot its config was
	 * given (addr=, or allocated in command-line order), before the ACPI tables and
	 * e820 map are built from the registry.
	 */
	for (i = 0; i < vm->cfg->nr_devices; i++) {
		ret = vm_create_device(vm, &vm->cfg->devices[i]);
		if (ret)
			return ret; /* the device said why */
	}
	/* Each display's keyboard and tablet, at the slots no configured device took. */
	for (i = 0; i < vm->cfg->nr_devices; i++) {
		if (strcmp(vm->cfg->devices[i].cls->name, "display"))
			continue;
		if (vm->nr_input + 2 > VM_MAX_INPUTS) {
			log_error("--display: at most %d displays", VM_MAX_INPUTS / 2);
			return -EINVAL;
		}
		ret = display_add_inputs(vm->pci, &vm->mem, vm->virtio[i],
					 &vm->input[vm->nr_input], &vm->input[vm->nr_input + 1]);
		vm->nr_input += !!vm->input[vm->nr_input] + !!vm->input[vm->nr_input + 1];
		if (ret)
			return ret;
		for (j = vm->nr_input - 2; vm->cfg->seccomp && j < vm->nr_input; j++)
			virtio_pci_set_thread_hook(vm->input[j], worker_sandbox,
						   (void *)(intptr_t)SANDBOX_IO);
	}
	return 0;
}

int vm_add_pci_device(struct vm *vm, struct pci_device *dev)
{
	return pci_bus_add(vm->pci, dev);
}

int vm_device_plug(struct vm *vm, const struct dev_config *d)
{
	bool was_paused = vm_pause(vm) == -EALREADY;
	int ret;

	ret = vm_create_device(vm, d);
	if (!ret) {
		ret = virtio_pci_spawn_worker(vm->virtio[vm->nr_virtio - 1]);
		if (ret) {
			log_error("cannot start the I/O thread of %s: %s", d->id, strerror(-ret));
			vm->nr_virtio--;
			pci_bus_remove(vm->pci, virtio_pci_pdev(vm->virtio[vm->nr_virtio]));
			virtio_pci_free(vm->virtio[vm->nr_virtio]);
		}
	}
	if (!was_paused)
		vm_resume(vm);
	return ret;
}

void vm_device_unplug(struct vm *vm, unsigned int i)
{
	bool was_paused = vm_pause(vm) == -EALREADY;

	/* No vCPU is inside the device now; off the bus, no new access can start. */
	pci_bus_remove(vm->pci, virtio_pci_pdev(vm->virtio[i]));
	virtio_pci_free(vm->virtio[i]);
	memmove(&vm->virtio[i], &vm->virtio[i + 1], (vm->nr_virtio - i - 1) * sizeof(vm->virtio[0]));
	vm->nr_virtio--;
	if (!was_paused)
		vm_resume(vm);
}

/*
 * Loading a kernel is the longest step of making a VM (unpacking it and faulting in its
 * guest memory: 60-500 ms in the emulated host), and it needs only the guest memory and
 * the boot files. So vm_create starts it on a thread of its own as soon as the memory
 * exists and makes the hypervisor's VM and the devices meanwhile (20-50 ms there);
 * the command line, zero page and ACPI tables, which need the devices, follow the join.
 */
struct vm_loader {
	struct vm *vm;
	struct linux_boot_cfg boot;
	struct boot_e820_entry e820[E820_MAX_ENTRIES_ZEROPAGE];
	pthread_t thread;
	bool threaded;
	int ret;
};

/* The kernel and initrd into guest memory: ld->ret 0 or -errno (logged). */
static void *vm_load_images(void *arg)
{
	struct vm_loader *ld = arg;
	struct vm *vm = ld->vm;
	const char *why = NULL;
	struct stat st;
	uint64_t t0;
	int ret;

	ld->boot = (struct linux_boot_cfg){
		.cmdline = vm->cfg->cmdline,
		.initrd_fd = -1,
		.kernel_fd = vm->cfg->kernel_fd,
		.low_ram_end = vm->mem.slot[0].size,
		.rsdp = LAYOUT_ACPI,
		.e820 = ld->e820,
	};
	if (vm->cfg->initrd) {
		ld->boot.initrd_fd = boot_file_open("initrd", vm->cfg->initrd, vm->cfg->initrd_fd);
		if (ld->boot.initrd_fd < 0) {
			ld->ret = -errno;
			return NULL;
		}
		if (fstat(ld->boot.initrd_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			log_error("initrd %s is not a regular file", vm->cfg->initrd);
			ret = -EINVAL;
			goto out_close_initrd;
		}
		ld->boot.initrd_size = (uint64_t)st.st_size;
	}
	/* KASLR for a kernel the VMM unpacks: the randomness its decompressor would take. */
	ld->boot.kaslr = getrandom(&ld->boot.kaslr_seed, sizeof(ld->boot.kaslr_seed), 0) ==
			 (ssize_t)sizeof(ld->boot.kaslr_seed);
	t0 = monotonic_ms();
	ret = linux_load_images(&vm->mem, &vm->kernel, &ld->boot, &why);
	if (ret)
		log_error("cannot boot %s: %s", vm->cfg->kernel, why);
	else if (vm->kernel.unpacked)
		log_debug("kernel: %s payload unpacked into guest memory in %llu ms, at %#llx%s",
			  vm->kernel.unpacked, (unsigned long long)(monotonic_ms() - t0),
			  (unsigned long long)vm->kernel.phys,
			  vm->kernel.kaslr ? ", KASLR" : ", not randomized");
	else if (vm->kernel.unpack_why)
		log_debug("kernel: its own decompressor runs in the guest: %s", vm->kernel.unpack_why);
	/*
	 * The kernel is now in guest memory. Its file mapping stays (a guest reset loads it
	 * again, inside the jail, where the file may not be reachable by name), but its pages
	 * leave this process: they were 13.9 MiB of a 128 MiB guest's 22.6 MiB overhead. A private
	 * mapping never written drops to the page cache; a reset faults it back in.
	 */
	madvise(vm->kernel_map, vm->kernel_len, MADV_DONTNEED);
out_close_initrd:
	if (ld->boot.initrd_fd >= 0 && ld->boot.initrd_fd != vm->cfg->initrd_fd)
		close(ld->boot.initrd_fd);
	ld->boot.initrd_fd = -1;
	ld->ret = ret;
	return NULL;
}

/* Start vm_load_images, on a thread if one can be made (not always in the jail). */
static void vm_load_start(struct vm_loader *ld, struct vm *vm)
{
	memset(ld, 0, sizeof(*ld));
	ld->vm = vm;
	ld->threaded = !pthread_create(&ld->thread, NULL, vm_load_images, ld);
	if (!ld->threaded)
		vm_load_images(ld);
}

/* Wait for vm_load_images: its result. */
static int vm_load_join(struct vm_loader *ld)
{
	if (ld->threaded)
		pthread_join(ld->thread, NULL);
	ld->threaded = false;
	return ld->ret;
}

/* The ACPI tables and the boot parameters, once the devices exist. 0 or -errno (logged). */
static int vm_load_params(struct vm *vm, struct vm_loader *ld)
{
	uint8_t *acpi = guest_mem_ptr(&vm->mem, LAYOUT_ACPI, LAYOUT_ACPI_END - LAYOUT_ACPI);
	const char *why = NULL;
	int n, ret;

	if (!acpi) {
		log_error("guest memory too small");
		return -ENOMEM;
	}
	n = acpi_build(acpi, LAYOUT_ACPI_END - LAYOUT_ACPI, LAYOUT_ACPI, vm->cfg->cpus, &vm->res);
	if (n < 0) {
		log_error("cannot build the ACPI tables: %s", strerror(-n));
		return n;
	}
	n = x86_e820_build(&vm->mem, &vm->res, ld->e820, E820_MAX_ENTRIES_ZEROPAGE);
	if (n < 0) {
		log_error("too many e820 entries");
		return n;
	}
	ld->boot.e820_nr = (unsigned int)n;
	ret = linux_load_params(&vm->mem, &vm->kernel, &ld->boot, &why);
	if (ret)
		log_error("cannot boot %s: %s", vm->cfg->kernel, why);
	return ret;
}

struct vm *vm_create(const struct vm_config *cfg)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct vm_loader ld;
	unsigned int i;
	int ret;

	if (!vm) {
		log_error("out of memory");
		return NULL;
	}
	vm->cfg = cfg;
	vm->hv = cfg->hv ? cfg->hv : &hv_kvm_ops;
	vm->hv_ctx = cfg->hv_ctx;
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = vm->console.wake_fd = -1;
	vm->mem.fd = -1;
	for (i = 0; i < VM_MAX_CPUS; i++)
		vm->vcpu[i].fd = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	pthread_mutex_init(&vm->sci_lock, NULL);
	if (bus_init(&vm->pio, "pio") || bus_init(&vm->mmio, "mmio"))
		goto out_destroy;

	vm->exit_fd = eventfd(0, EFD_CLOEXEC);
	vm->console.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_fd < 0 || vm->console.wake_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		goto out_destroy;
	}
	if (!cfg->firmware && (vm_map_kernel(vm) || vm_check_boot_files(vm)))
		goto out_destroy;
	if (vm_setup_memory(vm))
		goto out_destroy;
	log_startup_mark("VM: guest memory mapped");
	/* A restored guest's RAM already holds its kernel and tables; firmware loads itself. */
	if (!cfg->restore && !cfg->firmware)
		vm_load_start(&ld, vm);
	ret = vm->hv->vm_init(vm);
	if (!ret) {
		log_startup_mark("VM: hypervisor's VM made");
		ret = vm_register_memory(vm);
	}
	if (!ret) {
		log_startup_mark("VM: guest memory registered");
		ret = vm_setup_devices(vm);
	}
	if (!ret)
		log_startup_mark("VM: devices made");
	if (!cfg->restore && !cfg->firmware) {
		/* Joined on failure too: the thread writes the guest memory vm_destroy unmaps. */
		if (vm_load_join(&ld) || ret || vm_load_params(vm, &ld))
			goto out_destroy;
		log_startup_mark("VM: kernel, initrd and tables loaded");
	} else if (ret) {
		goto out_destroy;
	}
	for (i = 0; i < cfg->cpus; i++) {
		ret = vcpu_create(vm, i);
		if (ret)
			goto out_destroy;
		vm->nr_vcpus++;
	}
	return vm;

out_destroy:
	vm_destroy(vm);
	return NULL;
}

/*
 * Join a vCPU thread that was told to stop, kicking it again each second: a stop must
 * end the process even if a kick was lost. One that is still running after
 * VCPU_STOP_SECONDS is stuck (in the kernel, or waiting on a device that never
 * answers): say so and exit rather than hang a caller who sent SIGTERM.
 */
#define VCPU_STOP_SECONDS 20

static void vcpu_join(struct vcpu *v)
{
	unsigned int tries;

	for (tries = 0; tries < VCPU_STOP_SECONDS; tries++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_timedjoin_np(v->thread, NULL, &ts) == 0) {
			if (tries)
				log_warn("vCPU %u stopped only after %u more kicks", v->index, tries);
			return;
		}
		vcpu_kick(v);
	}
	log_error("vCPU %u did not stop within %d s of the exit request; exiting without "
		  "cleaning up", v->index, VCPU_STOP_SECONDS);
	_exit(1);
}

static void vm_stop_threads(struct vm *vm)
{
	uint64_t one = 1;
	unsigned int i;

	atomic_store(&vm->stopping, true);
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond); /* parked vCPUs leave too */
	pthread_mutex_unlock(&vm->pause_lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
	for (i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpu[i].started) {
			vcpu_join(&vm->vcpu[i]);
			vm->vcpu[i].started = false;
		}
	}
	if (vm->console.started) {
		atomic_store(&vm->console.stop, true);
		if (write(vm->console.wake_fd, &one, sizeof(one)) < 0)
			log_error("cannot stop the console thread: %s", strerror(errno));
		pthread_join(vm->console.thread, NULL);
		vm->console.started = false;
	}
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

enum vm_exit vm_run(struct vm *vm, int signal_fd, int *signo)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	uint64_t next_tick;
	unsigned int i;
	int ret;

	/* No SA_RESTART: the kick must make KVM_RUN return EINTR. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/*
	 * Device I/O threads, parked until DRIVER_OK, spawned here (after the jail) unless
	 * a restore already started them; each installs the I/O filter (the hook set by
	 * vm_create) before it carries out its first request.
	 */
	for (i = 0; i < vm->nr_virtio + vm->nr_input; i++) {
		ret = virtio_pci_spawn_worker(i < vm->nr_virtio ? vm->virtio[i] :
						  vm->input[i - vm->nr_virtio]);
		if (ret) {
			vm_request_exit(vm, VM_EXIT_ERROR, "cannot start a device's I/O thread: %s",
					strerror(-ret));
			goto out_stop;
		}
	}

	if (vm->cfg->console_in >= 0) {
		vm->console.in_fd = vm->cfg->console_in;
		vm->console.escape = vm->cfg->console_escape;
		ret = pthread_create(&vm->console.thread, NULL, console_thread, vm);
		if (ret) {
			vm_request_exit(vm, VM_EXIT_ERROR, "cannot start the console thread: %s",
					strerror(ret));
			goto out_stop;
		}
		vm->console.started = true;
	}
	for (i = 0; i < vm->nr_vcpus; i++) {
		ret = pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread, &vm->vcpu[i]);
		if (ret) {
			vm_request_exit(vm, VM_EXIT_ERROR, "cannot start vCPU thread %u: %s", i,
					strerror(ret));
			goto out_stop;
		}
		vm->vcpu[i].started = true;
	}

	next_tick = vm->cfg->tick && vm->cfg->tick_ms > 0 ? monotonic_ms() + vm->cfg->tick_ms : 0;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = vm->exit_fd, .events = POLLIN },
			{ .fd = signal_fd, .events = POLLIN },
			{ .fd = vm->cfg->service_fd, .events = POLLIN },
		};
		int wait = -1;

		if (next_tick) {
			uint64_t now = monotonic_ms();

			if (now >= next_tick) {
				vm->cfg->tick(vm->cfg->service_opaque, vm);
				next_tick = now + vm->cfg->tick_ms;
			}
			wait = (int)MIN(next_tick - now, (uint64_t)vm->cfg->tick_ms);
		}
		if (poll(p, 3, wait) < 0) {
			if (errno == EINTR)
				continue;
			vm_request_exit(vm, VM_EXIT_ERROR, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN)
			break;
		if (p[2].fd >= 0 && (p[2].revents & POLLIN) && vm->cfg->service)
			vm->cfg->service(vm->cfg->service_opaque, vm);
		if (signal_fd >= 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
				*signo = (int)si.ssi_signo;
				vm_request_exit(vm, VM_EXIT_SIGNAL, "%s", strsignal((int)si.ssi_signo));
			}
		}
	}

out_stop:
	vm_stop_threads(vm);
	/* Where was the guest when it was stopped from outside? (-v: for hangs) */
	if (vm->exit_reason == VM_EXIT_SIGNAL && log_get_level() >= LOG_INFO) {
		for (i = 0; i < vm->nr_vcpus; i++)
			log_info("vCPU %u stopped at RIP 0x%llx", i,
				 (unsigned long long)vm->hv->vcpu_rip(&vm->vcpu[i]));
	}
	return vm->exit_reason;
}

/* ---- pause / resume ---- */

void vm_kick_all(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
}

bool vm_paused(struct vm *vm)
{
	return atomic_load(&vm->pause_req);
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (atomic_load(&vm->pause_req)) {
		pthread_mutex_unlock(&vm->pause_lock);
		return -EALREADY;
	}
	atomic_store(&vm->pause_req, true);
	pthread_mutex_unlock(&vm->pause_lock);
	vm_kick_all(vm);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->vcpus_parked < vm->vcpus_active && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (!atomic_load(&vm->pause_req)) {
		pthread_mutex_unlock(&vm->pause_lock);
		return -EALREADY;
	}
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

void vm_resync_irqs(struct vm *vm)
{
	/*
	 * A fresh in-kernel irqchip has every input line low; the restored devices
	 * may hold theirs high and would never raise them again (they only signal
	 * changes), so the line is driven to the device's level once.
	 */
	vm->hv->irq_line(vm, IRQ_COM1, vm->com1.st.irq_level);
	pthread_mutex_lock(&vm->sci_lock);
	vm->sci_pm = vm->pm.st.sci;
	vm->sci_gpe = (int)vm->pcihp.st.sci;
	vm->hv->irq_line(vm, IRQ_SCI, vm->sci_pm || vm->sci_gpe);
	pthread_mutex_unlock(&vm->sci_lock);
}

void vm_power_button(struct vm *vm)
{
	pm_power_button(&vm->pm);
}

void vm_destroy(struct vm *vm)
{
	unsigned int i;

	if (!vm)
		return;
	vm_stop_threads(vm);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpu[i]);
	/* Device I/O threads stop and disks are flushed before the bus goes. */
	for (i = 0; i < vm->nr_virtio; i++)
		virtio_pci_free(vm->virtio[i]);
	for (i = 0; i < vm->nr_input; i++)
		virtio_pci_free(vm->input[i]);
	pci_bus_free(vm->pci);
	serial_destroy(&vm->com1);
	pm_destroy(&vm->pm);
	pcihp_destroy(&vm->pcihp);
	i8042_destroy(&vm->i8042);
	vm->hv->vm_fini(vm);
	fw_destroy(vm); /* after the VM: its slot maps the firmware's code */
	guest_mem_destroy(&vm->mem);
	if (vm->kernel_map)
		munmap(vm->kernel_map, vm->kernel_len);
	if (vm->exit_fd >= 0)
		close(vm->exit_fd);
	if (vm->console.wake_fd >= 0)
		close(vm->console.wake_fd);
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	pthread_mutex_destroy(&vm->exit_lock);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_mutex_destroy(&vm->sci_lock);
	free(vm);
}

int vm_disks_release(struct vm *vm)
{
	unsigned int i;
	int ret = 0, r;

	for (i = 0; i < vm->nr_virtio; i++) {
		struct virtio_dev *vdev = virtio_pci_vdev(vm->virtio[i]);

		if (vdev->ops != &virtio_blk_ops)
			continue;
		r = virtio_blk_release(vdev);
		if (r && !ret) {
			log_error("disk %u: flush before the hand-over failed: %s", i, strerror(-r));
			ret = r;
		}
	}
	return ret;
}

int vm_disks_acquire(struct vm *vm, unsigned int wait_ms)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	unsigned int i, waited = 0;
	int r;

	for (i = 0; i < vm->nr_virtio; i++) {
		struct virtio_dev *vdev = virtio_pci_vdev(vm->virtio[i]);

		if (vdev->ops != &virtio_blk_ops)
			continue;
		while ((r = virtio_blk_acquire(vdev)) == -EWOULDBLOCK && waited < wait_ms) {
			nanosleep(&tick, NULL);
			waited += 10;
		}
		if (r == -EWOULDBLOCK)
			log_error("disk %u: the image is still in use by another process after %u ms",
				  i, wait_ms);
		if (r)
			return r; /* other errors: the library said why */
	}
	return 0;
}
