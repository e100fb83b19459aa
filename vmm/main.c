// SPDX-License-Identifier: MIT
/*
 * plinth: the command line. Parses and checks the options (bad input: one line,
 * exit 2, before anything starts), puts the terminal in raw mode while the
 * guest owns the console, and runs the VM, re-creating it on guest reboot.
 *
 * Exit status: 0 when the guest powers off (or reboots under --no-reboot, or
 * Ctrl-A x); 1 on a VMM or guest failure; 2 on bad usage; 128+N on signal N.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "vm.h"

#define DEFAULT_MEMORY  (512 * MiB)
#define MIN_MEMORY      (32 * MiB)
#define DEFAULT_CMDLINE "console=ttyS0"

static const char usage_text[] =
	"Usage: plinth run --kernel PATH [--initrd PATH] [--cmdline STRING] [--cpus N]\n"
	"                  [--memory SIZE] [--no-reboot] [--api-socket PATH]\n"
	"                  [--disk SPEC]... [--net SPEC]... [--console virtio[,path=FILE]]\n"
	"                  [--rng] [--vsock cid=N,socket=PATH] [--seccomp=on|off]\n"
	"                  [--jail DIR --uid N --gid N [--jail-chroot] [--jail-nofile N]\n"
	"                   [--jail-nproc N] [--jail-fsize SIZE]]\n"
	"       plinth --help | --version\n"
	"\n"
	"Run one virtual machine on KVM, booting a Linux kernel with its console on\n"
	"this terminal (COM1). Press Ctrl-A x to quit.\n"
	"\n"
	"  --kernel PATH       bzImage or ELF vmlinux to boot (required)\n"
	"  --initrd PATH       initial ramdisk\n"
	"  --cmdline STRING    kernel command line (default \"" DEFAULT_CMDLINE "\")\n"
	"  --cpus N            virtual CPUs, 1..64 (default 1)\n"
	"  --memory SIZE       guest RAM, e.g. 512M, 2G (default 512M)\n"
	"  --no-reboot         exit when the guest reboots instead of restarting it\n"
	"  --api-socket PATH   control socket path (reserved for the REST API)\n"
	"  --disk path=FILE[,format=raw|qcow2|vhd|vhdx|vmdk][,readonly=on][,serial=ID]\n"
	"                      a virtio disk (repeatable: vda, vdb, ... in this order)\n"
	"  --net tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]\n"
	"                      a virtio NIC on a tap device (repeatable)\n"
	"  --console virtio[,path=FILE]\n"
	"                      hvc0 on this terminal (or FILE) instead of COM1 input\n"
	"  --rng               a virtio entropy source (getrandom)\n"
	"  --vsock cid=N,socket=PATH\n"
	"                      virtio vsock; the host side is the Unix socket PATH\n"
	"  --seccomp=on|off    per-thread seccomp filters (default on; off for debugging)\n"
	"  --jail DIR          after opening everything, make DIR the root (new mount\n"
	"                      namespace) and drop to --uid/--gid with no capabilities\n"
	"                      (needs root; DIR writable by N for snapshots, vsock)\n"
	"  --uid N, --gid N    the ids to run as in the jail (required with --jail, not 0)\n"
	"  --jail-chroot       chroot only, no mount namespace\n"
	"  --jail-nofile N     RLIMIT_NOFILE in the jail (default 4096)\n"
	"  --jail-nproc N      RLIMIT_NPROC in the jail\n"
	"  --jail-fsize SIZE   RLIMIT_FSIZE in the jail (above the largest image)\n"
	"  -v, --verbose       more messages (repeat for debug)\n"
	"  -h, --help          this text\n";

/* Saved terminal state, restored on every exit path from main. */
struct term {
	int fd;
	bool raw;
	struct termios saved;
};

static void term_raw(struct term *t, int fd)
{
	struct termios raw;

	t->fd = fd;
	t->raw = false;
	if (!isatty(fd) || tcgetattr(fd, &t->saved) < 0)
		return;
	raw = t->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSANOW, &raw) == 0)
		t->raw = true;
}

static void term_restore(struct term *t)
{
	if (t->raw)
		tcsetattr(t->fd, TCSANOW, &t->saved);
	t->raw = false;
}

static uint64_t host_mem_total(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb * KiB;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s (see plinth run --help)", msg);
	return 2;
}

/*
 * Whether a jailed VM can be re-created on a guest reset: only devices that open
 * nothing by path (--rng, --console virtio on stdio) come back; /dev/kvm, the
 * kernel and the initrd are kept open (vm_open_files).
 */
static bool reset_in_jail_ok(const struct vm_config *cfg)
{
	unsigned int i;

	for (i = 0; i < cfg->nr_devices; i++) {
		const struct vm_device_opt *d = &cfg->devices[i];

		if (d->kind == VM_DEV_RNG)
			continue;
		if (d->kind == VM_DEV_CONSOLE && !strchr(d->spec, '='))
			continue;
		return false;
	}
	return true;
}

static int cmd_run(int argc, char **argv)
{
	enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_NO_REBOOT,
	       OPT_API_SOCKET, OPT_DISK, OPT_NET, OPT_CONSOLE, OPT_RNG, OPT_VSOCK, OPT_SECCOMP,
	       OPT_JAIL };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
		{ "api-socket", required_argument, NULL, OPT_API_SOCKET },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "net", required_argument, NULL, OPT_NET },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "rng", no_argument, NULL, OPT_RNG },
		{ "vsock", required_argument, NULL, OPT_VSOCK },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		/* jail_parse_opt() takes these by name. */
		{ "jail", required_argument, NULL, OPT_JAIL },
		{ "uid", required_argument, NULL, OPT_JAIL },
		{ "gid", required_argument, NULL, OPT_JAIL },
		{ "jail-chroot", no_argument, NULL, OPT_JAIL },
		{ "jail-nofile", required_argument, NULL, OPT_JAIL },
		{ "jail-nproc", required_argument, NULL, OPT_JAIL },
		{ "jail-fsize", required_argument, NULL, OPT_JAIL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_config cfg = {
		.cmdline = DEFAULT_CMDLINE,
		.cpus = 1,
		.memory = DEFAULT_MEMORY,
		.console_in = STDIN_FILENO,
		.console_out = STDOUT_FILENO,
		.seccomp = true,
		.kvm_fd = -1,
		.kernel_fd = -1,
		.initrd_fd = -1,
	};
	struct jail_cfg jail = { 0 };
	bool first = true;
	int longindex = 0;
	enum log_level level = LOG_WARN;
	uint64_t v, host_mem;
	struct term term = { .fd = -1 };
	sigset_t sigs;
	int c, sfd, rc = 1, signo = 0;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, &longindex)) != -1) {
		switch (c) {
		case OPT_SECCOMP:
			if (sandbox_seccomp_parse(optarg, &cfg.seccomp))
				return 2; /* it said why */
			break;
		case OPT_JAIL:
			if (jail_parse_opt(&jail, opts[longindex].name, optarg))
				return 2;
			break;
		case OPT_KERNEL:
			cfg.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg.initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case OPT_CPUS:
			if (parse_uint(optarg, 1, VM_MAX_CPUS, &v))
				return usage_error("--cpus must be a number from 1 to 64, not '%s'",
						   optarg);
			cfg.cpus = (unsigned int)v;
			break;
		case OPT_MEMORY:
			if (parse_size(optarg, &v) || v < MIN_MEMORY || v % (4 * KiB))
				return usage_error("--memory must be a size of at least 32M in whole "
						   "4K pages (e.g. 512M, 2G), not '%s'", optarg);
			cfg.memory = v;
			break;
		case OPT_NO_REBOOT:
			cfg.no_reboot = true;
			break;
		case OPT_API_SOCKET:
			cfg.api_socket = optarg;
			break;
		case OPT_DISK:
		case OPT_NET:
		case OPT_CONSOLE:
		case OPT_RNG:
		case OPT_VSOCK: {
			static const enum vm_device_kind kind[] = {
				[OPT_DISK - OPT_DISK] = VM_DEV_DISK,
				[OPT_NET - OPT_DISK] = VM_DEV_NET,
				[OPT_CONSOLE - OPT_DISK] = VM_DEV_CONSOLE,
				[OPT_RNG - OPT_DISK] = VM_DEV_RNG,
				[OPT_VSOCK - OPT_DISK] = VM_DEV_VSOCK,
			};

			if (cfg.nr_devices == VM_MAX_DEVICES)
				return usage_error("at most %d devices", VM_MAX_DEVICES);
			cfg.devices[cfg.nr_devices].kind = kind[c - OPT_DISK];
			cfg.devices[cfg.nr_devices].spec = c == OPT_RNG ? NULL : optarg;
			cfg.nr_devices++;
			/* hvc0 on this terminal: COM1 keeps the output, not the input. */
			if (c == OPT_CONSOLE && !strchr(optarg, '='))
				cfg.console_in = -1;
			break;
		}
		case 'v':
			if (level < LOG_DEBUG)
				level++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			if (optopt && optopt < 256)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg.kernel)
		return usage_error("--kernel %s is required", "PATH");
	if (jail_check(&jail))
		return 2;
	log_set_level(level);
	host_mem = host_mem_total();
	if (host_mem && cfg.memory > host_mem) {
		log_error("--memory %lluM is more than this host's %lluM of RAM",
			  (unsigned long long)(cfg.memory / MiB), (unsigned long long)(host_mem / MiB));
		return 2;
	}

	/* Termination signals are read from a signalfd; SIGUSR1 only kicks vCPUs. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	cfg.console_escape = isatty(cfg.console_in);
	/* The kernel, the initrd and /dev/kvm stay open across resets (and the jail). */
	if (vm_open_files(&cfg)) {
		close(sfd);
		return 1;
	}

	for (;;) {
		struct vm *vm = vm_create(&cfg);
		enum vm_exit why;
		char msg[sizeof(vm->exit_msg)];

		if (!vm) {
			term_restore(&term);
			rc = 1;
			break;
		}
		/* Everything is open and no thread runs yet: confine the process. */
		if (first && jail.dir && jail_enter(&jail)) {
			vm_destroy(vm);
			rc = 1;
			break;
		}
		if (cfg.seccomp && sandbox_seccomp_install(SANDBOX_MAIN)) {
			vm_destroy(vm);
			rc = 1;
			break;
		}
		/*
		 * Hook for the control API (branch `migrate`, not in main yet): it must not
		 * create its thread before jail_enter() (single thread). Call api_listen()
		 * (and json_object_seed(0)) before the loop, outside the jail; here, on the
		 * first pass, create the API thread, which installs SANDBOX_API and then calls
		 * api_server_start_fd() (its libmicrohttpd thread inherits the filter).
		 */
		first = false;
		cfg.kvm_fd = vm->kvm_fd; /* kept for the next VM (vm_destroy leaves it open) */
		if (!term.raw)
			term_raw(&term, STDIN_FILENO); /* the guest owns the terminal */
		why = vm_run(vm, sfd, &signo);
		memcpy(msg, vm->exit_msg, sizeof(msg));
		vm_destroy(vm);
		if (why == VM_EXIT_RESET && !cfg.no_reboot && jail.dir && !reset_in_jail_ok(&cfg)) {
			/* The images, taps and sockets are outside the jail: no way back in. */
			log_warn("guest reset: --disk, --net, --vsock and --console path= cannot be "
				 "re-opened inside the jail; exiting as with --no-reboot");
		} else if (why == VM_EXIT_RESET && !cfg.no_reboot) {
			log_info("guest reset: restarting");
			continue;
		}
		term_restore(&term);
		switch (why) {
		case VM_EXIT_POWEROFF:
		case VM_EXIT_RESET:
		case VM_EXIT_QUIT:
			rc = 0;
			break;
		case VM_EXIT_SIGNAL:
			log_warn("stopped by %s", msg);
			rc = 128 + signo;
			break;
		default:
			log_error("%s", msg);
			rc = 1;
			break;
		}
		break;
	}
	vm_close_files(&cfg);
	close(sfd);
	return rc;
}

int main(int argc, char **argv)
{
	log_set_prog("plinth");
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("plinth %s\n", PLINTH_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	log_error("unknown command '%s' (try plinth --help)", argv[1]);
	return 2;
}
