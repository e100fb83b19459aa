// SPDX-License-Identifier: MIT
/*
 * plinth: the command line. Parses and checks the options (bad input: one line,
 * exit 2, before anything starts), puts the terminal in raw mode while the
 * guest owns the console, and runs the VM, re-creating it on guest reboot.
 *
 * Exit status: 0 when the guest powers off (or reboots under --no-reboot, or
 * Ctrl-A x); 1 on a VMM or guest failure; 2 on bad usage; 3 when the guest reset
 * and plinth could not restart it in its jail (whoever started plinth may: plinthd
 * does); 128+N on signal N.
 */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <pthread.h>
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
#include "control.h"
#include "lease.h"
#include "machine.h"
#include "migrate_tls.h"
#include "preboot.h"
#include "vm.h"
#include "vmstate.h"
#include "api/api.h"
#include "client.h" /* daemon/: plinthd's client verbs */
#include "state/snapshot.h"
#include "state/state.h"
#include "virtio/devices.h"

#define VMM_THREAD_STACK (1 * MiB) /* every thread's stack: small_thread_stacks() */

static const char usage_head[] =
	"Usage: plinth run --kernel PATH [MACHINE OPTIONS]\n"
	"       plinth run --firmware PATH [--firmware-vars PATH] [MACHINE OPTIONS]\n"
	"       plinth run --api-socket PATH   (the machine comes from the API: PUT\n"
	"                      /v1/vm/config, then POST /v1/vm/start; docs/api.yaml)\n"
	"       plinth restore --from DIR --kernel PATH [MACHINE OPTIONS] [--paused]\n"
	"       plinth receive --listen tcp:[HOST:]PORT|unix:PATH --kernel PATH\n"
	"                      [MACHINE OPTIONS] [--migrate-psk FILE]\n"
	"       plinth ctl --api-socket PATH info|pause|resume|shutdown|reset|\n"
	"                  snapshot --to DIR|migrate --to URI [--downtime-ms N]\n"
	"                  |config --file FILE|start   (before boot)\n"
	"       plinth vm|image|net|task|token|events ...  (plinthd's client: plinth vm --help)\n"
	"       plinth --help | --version\n"
	"\n"
	"Run one virtual machine on KVM, booting a Linux kernel with its console on\n"
	"this terminal (COM1). Press Ctrl-A x to quit. restore and receive build the\n"
	"machine from the same options as run (the devices are theirs, never taken from\n"
	"the snapshot or the stream, which must describe the same machine) and load\n"
	"its state into it once jailed and filtered.\n"
	"\n"
	"MACHINE OPTIONS:\n"
	"  --kernel PATH       bzImage or ELF vmlinux to boot (required)\n"
	"  --initrd PATH       initial ramdisk\n"
	"  --cmdline STRING    kernel command line (default \"" MACHINE_DEFAULT_CMDLINE "\")\n"
	"  --firmware PATH     boot UEFI firmware instead of a kernel (run only): OVMF's\n"
	"                      code file, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd\n"
	"  --firmware-vars PATH  the VM's own copy of the firmware's variable store (e.g.\n"
	"                      of OVMF_VARS_4M.fd); the firmware's writes persist in it.\n"
	"                      Without it the store is blank and lives in memory only\n"
	"  --cpus N            virtual CPUs, 1..64 (default 1)\n"
	"  --memory SIZE       guest RAM, e.g. 512M, 2G (default 512M)\n"
	"  --memory-merge      guest RAM that the host's KSM may merge (private anonymous\n"
	"                      memory marked mergeable, not a shared memfd); a migration\n"
	"                      then reads never-written pages too\n"
	"  --no-reboot         exit when the guest reboots instead of restarting it\n"
	"  --api-socket PATH   serve the control API (docs/api.yaml) on this Unix socket\n"
	;
/* Then one entry per device class (dev_classes[], print_usage), then: */
static const char usage_tail[] =
	"                      Every device option also takes id=ID (default: disk0, net0...,\n"
	"                      what snapshots and migrations match devices by) and addr=SLOT\n"
	"                      (PCI slot 1..31; default: the next free one in this order);\n"
	"                      --rng and --balloon take them as --rng=id=ID,addr=SLOT\n"
	"  --migrate-psk FILE  the cluster's migration key (64..128 hex digits, mode\n"
	"                      600): migrations over TCP use TLS 1.3 with it, both ways\n"
	"  --seccomp=on|off    per-thread seccomp filters (default on; off for debugging)\n"
	"  --epoch N[,vm=ID]   the VM's ownership epoch (plinthd gives it): recorded in each\n"
	"                      writable disk's lease (IMAGE.lease); start, restart, resume\n"
	"                      and a migration's take-over are refused while a lease of the\n"
	"                      same VM ID holds a higher epoch (another host owns it now)\n"
	"  --jail DIR          after opening everything, make DIR the root (new mount\n"
	"                      namespace) and drop to --uid/--gid with no capabilities\n"
	"                      (needs root; DIR writable by N for snapshots, vsock)\n"
	"  --uid N, --gid N    the ids to run as in the jail (required with --jail, not 0)\n"
	"  --jail-chroot       chroot only, no mount namespace\n"
	"  --jail-nofile N     RLIMIT_NOFILE in the jail (default 4096)\n"
	"  --jail-nproc N      RLIMIT_NPROC in the jail\n"
	"  --jail-fsize SIZE   RLIMIT_FSIZE in the jail (above the largest image)\n"
	"\n"
	"  --from DIR          restore: the snapshot (its disks must be unchanged since)\n"
	"  --paused            restore: do not run the vCPUs until `ctl resume`\n"
	"  --listen tcp:PORT   receive: wait on 127.0.0.1:PORT (tcp:HOST:PORT for another\n"
	"                      address; TCP needs --migrate-psk), or unix:PATH (mode 600)\n"
	"  -v, --verbose       more messages (repeat for debug)\n"
	"  -h, --help          this text\n";

static void print_usage(FILE *f)
{
	size_t i;

	fputs(usage_head, f);
	for (i = 0; i < dev_nr_classes; i++) {
		const struct dev_class *c = dev_classes[i];
		const size_t col = sizeof(DEV_HELP_INDENT) - 1;
		int n = fprintf(f, "  --%s%s%s", c->name, c->synopsis[0] ? " " : "", c->synopsis);

		/* A short option starts its help on its own line, in the second column. */
		if (n > 0 && (size_t)n < col && !strchr(c->synopsis, '\n'))
			fprintf(f, "%*s%s", (int)(col - (size_t)n), "", c->help + col);
		else
			fprintf(f, "\n%s", c->help);
	}
	fputs(usage_tail, f);
}

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

/* Termination signals are read from a signalfd; SIGUSR1 only kicks vCPUs. */
static int setup_signals(void)
{
	sigset_t sigs;
	int sfd;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sfd < 0)
		log_error("signalfd: %s", strerror(errno));
	return sfd;
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
		const struct dev_config *d = &cfg->devices[i];

		if (!d->cls->reopens_in_jail || !d->cls->reopens_in_jail(d->conf))
			return false;
	}
	return true;
}

/*
 * What the main thread keeps once start-up is over (sandbox_seccomp_narrow_main):
 * network sockets with a migration key (TCP migrations need it) or a VNC display on
 * TCP (a reset listens again), opening files by
 * path where a guest reset re-opens the devices' (outside --jail, rebooting, with a
 * device that has a file or socket behind it) or where the API may hot-plug a disk.
 */
static unsigned int main_run_keep(const struct vmm *vmm, const struct vm_config *cfg,
				  const struct jail_cfg *jail)
{
	unsigned int keep = vmm->tls ? SANDBOX_KEEP_INET : 0, i;

	if (!cfg->no_reboot && !(jail && jail->dir) && !reset_in_jail_ok(cfg))
		keep |= SANDBOX_KEEP_OPEN;
	/* disk-add opens the image it names (in a jail: a path under the jail's root). */
	if (cfg->api_socket && !cfg->firmware)
		keep |= SANDBOX_KEEP_OPEN;
	/* A reset re-creates a --display vnc=tcp:... listener. */
	for (i = 0; i < cfg->nr_devices && !cfg->no_reboot; i++)
		if (cfg->devices[i].cls->uses_inet && cfg->devices[i].cls->uses_inet(cfg->devices[i].conf))
			keep |= SANDBOX_KEEP_INET;
	return keep;
}

/*
 * The control API's first thread: it narrows itself to SANDBOX_API (on top of
 * main's filter, which it inherited) and starts the server (vmm/api/server.c), whose
 * thread inherits the narrowed filter; then it ends.
 */
struct api_start {
	int listen_fd;
	const char *path; /* unlinked by api_server_stop(); NULL in a jail */
	const struct api_vm_ops *ops;
	void *opaque;     /* the struct vmm (or the struct preboot before boot) */
	bool seccomp;
	struct api_server *server;
};

static void *api_start_thread(void *arg)
{
	struct api_start *s = arg;

	pthread_setname_np(pthread_self(), "api");
	if (s->seccomp && sandbox_seccomp_install(SANDBOX_API)) {
		close(s->listen_fd);
		return NULL;
	}
	s->server = api_server_start_fd(s->listen_fd, s->path, s->ops, s->opaque);
	return NULL;
}

/* Start the control API's first thread on s (filled in by the caller, server NULL):
 * api_start_end() joins it. 0, or -1 (logged, listen_fd closed). */
static int api_start_begin(struct api_start *s, pthread_t *t)
{
	int ret;

	ret = pthread_create(t, NULL, api_start_thread, s);
	if (ret) {
		log_error("cannot start the control API's thread: %s", strerror(ret));
		close(s->listen_fd);
		return -1;
	}
	return 0;
}

/* The server api_start_begin's thread started, or NULL (it said why). */
static struct api_server *api_start_end(struct api_start *s, pthread_t t)
{
	pthread_join(t, NULL);
	return s->server;
}

static struct api_server *api_start(int listen_fd, const char *path,
				    const struct api_vm_ops *ops, void *opaque, bool seccomp)
{
	struct api_start s = { listen_fd, path, ops, opaque, seccomp, NULL };
	pthread_t t;

	if (api_start_begin(&s, &t))
		return NULL;
	return api_start_end(&s, t);
}

/*
 * Confine the process once the first VM exists and no other thread runs: the jail
 * (if any) needs a single thread, then the main thread's seccomp filter, then the
 * control API's thread (which narrows its own, on top of main's: it starts before main
 * narrows itself further). Takes api_fd. The API's thread goes on starting while the
 * caller loads the VM (a restore's state): *api_t is set when the caller must collect
 * it with api_start_end(s). 0 or -1, logged (then there is no thread to collect).
 */
static int confine(struct vmm *vmm, struct vm_config *cfg, const struct jail_cfg *jail,
		   int api_fd, struct api_start *s, pthread_t *api_t, bool *api_started)
{
	*api_started = false;
	if (jail && jail->dir && jail_enter(jail))
		goto out_close;
	if (cfg->seccomp && sandbox_seccomp_install(SANDBOX_MAIN))
		goto out_close;
	if (api_fd >= 0) {
		/* In a jail the socket's path names something else: leave it for api_listen. */
		*s = (struct api_start){ api_fd, jail && jail->dir ? NULL : cfg->api_socket,
					 &vmm_api_ops, vmm, cfg->seccomp, NULL };
		if (api_start_begin(s, api_t))
			return -1;
		*api_started = true;
	}
	/* Start-up is over: no existing file by path, no TCP, unless this VM needs them. */
	if (cfg->seccomp && sandbox_seccomp_narrow_main(main_run_keep(vmm, cfg, jail)))
		return -1;
	return 0;

out_close:
	if (api_fd >= 0)
		close(api_fd);
	return -1;
}

/* What run_loop does besides running the VMs (a zeroed struct with api_fd -1: nothing). */
struct run_hooks {
	int api_fd;   /* the API socket, listening already (taken), or -1: cfg->api_socket */
	/* The first VM exists and nothing is confined yet (a VM configured over the API
	 * answers its start): 0 to go on, or the exit status. NULL: none. */
	int (*created)(void *opaque);
	/* Loads the first VM (restore, receive) once the process is confined: returns 0
	 * to run it, or the exit status. NULL: none. */
	int (*first)(void *opaque, struct vm *vm, int sfd);
	void *opaque;	      /* first's */
	void *created_opaque; /* created's */
};

/*
 * Run VMs until the guest or the user stops it, re-creating the VM after each
 * guest reset. Serves the control API for the whole run and confines the process
 * (jail may be NULL) after the first VM is built and before anything from outside
 * (a snapshot, a migration stream) is read: then h->first, if given, fills that VM.
 * Closes the files cfg keeps open (vm_open_files). Returns the exit status.
 */
static int run_loop(struct vmm *vmm, struct vm_config *cfg, bool paused, int sfd,
		    const struct jail_cfg *jail, const struct run_hooks *h)
{
	struct term term = { .fd = -1 };
	struct api_server *api = NULL;
	struct api_start api_s;
	pthread_t api_t;
	bool confined = false, api_started = false;
	int rc = 1, signo = 0, api_fd = h->api_fd, ret;

	vmm->cfg = cfg;
	/* The filters this VM's threads install compile while the VM is built. */
	if (cfg->seccomp &&
	    sandbox_seccomp_prepare(1u << SANDBOX_MAIN | 1u << SANDBOX_MAIN_RUN | 1u << SANDBOX_IO |
				    (cfg->api_socket || api_fd >= 0 ? 1u << SANDBOX_API : 0) |
				    1u << (cfg->firmware ? SANDBOX_VCPU_FLASH : SANDBOX_VCPU),
				    main_run_keep(vmm, cfg, jail)))
		goto out_files;
	if (cfg->api_socket && api_fd < 0) {
		/* Outside any jail or filter: it stats, unlinks and chmods by path. */
		api_fd = api_listen(cfg->api_socket);
		if (api_fd < 0)
			goto out_files;
	}
	for (;;) {
		char msg[sizeof(((struct vm *)0)->exit_msg)], err[512];
		enum vm_exit why;
		struct vm *vm;

		/* Rule 3: not even opened for writing by a stale owner (a destination checks
		 * when it takes the disks over). */
		if (!cfg->incoming && lease_fence(cfg, confined ? "restarting" : "starting", err,
						  sizeof(err))) {
			log_error("%s", err);
			rc = 1;
			break;
		}
		vm = vm_create(cfg);
		sandbox_seccomp_prepared(); /* before the jail: no other thread then */
		if (!vm) {
			rc = 1;
			break;
		}
		log_startup_mark("VM built (memory, devices, vCPUs)");
		if (!confined) {
			confined = true;
			rc = h->created ? h->created(h->created_opaque) : 0;
			if (rc) {
				vm_destroy(vm);
				break;
			}
			/*
			 * The images are open and locked: this process runs the guest on them
			 * now (a destination: once it took them over).
			 */
			if (!cfg->incoming &&
			    (lease_watch(cfg, vmm->lease_owner, LEASE_WATCH_MS, err, sizeof(err)) ||
			     lease_take(cfg, vmm->lease_owner, "starting", err, sizeof(err)))) {
				log_error("%s", err);
				vm_destroy(vm);
				rc = 1;
				break;
			}
			ret = confine(vmm, cfg, jail, api_fd, &api_s, &api_t, &api_started);
			api_fd = -1; /* confine() took it, on failure too */
			log_startup_mark("confined");
			cfg->kvm_fd = vm->kvm_fd; /* kept for the next VM (vm_destroy leaves it) */
			/* The VM loads while the API's thread starts (it answers "created"). */
			rc = ret ? 1 : h->first ? h->first(h->opaque, vm, sfd) : 0;
			if (h->first && !rc)
				log_startup_mark("state loaded");
			if (api_started) {
				api = api_start_end(&api_s, api_t);
				if (!api && !rc)
					rc = 1;
			}
			log_startup_mark("API answering");
			if (rc) {
				vm_destroy(vm);
				break;
			}
		}
		if (paused)
			atomic_store(&vm->pause_req, true); /* vCPUs park before running */
		paused = false;
		if (!term.raw)
			term_raw(&term, STDIN_FILENO); /* the guest owns the terminal */
		vmm_set_vm(vmm, vm);
		log_startup_mark("starting the vCPUs");
		why = vm_run(vm, sfd, &signo);
		vmm_set_vm(vmm, NULL);
		memcpy(msg, vm->exit_msg, sizeof(msg));
		vm_destroy(vm);
		if (why == VM_EXIT_RESET && !cfg->no_reboot && jail && jail->dir &&
		    !reset_in_jail_ok(cfg)) {
			/* The images, taps and sockets are outside the jail: no way back in.
			 * Not a power-off: exit 3 tells the parent to start the VM again. */
			log_warn("guest reset: --disk, --net, --vsock and --console path= cannot be "
				 "re-opened inside the jail; exiting with status 3 (reset)");
			rc = 3;
			break;
		} else if (why == VM_EXIT_RESET && !cfg->no_reboot) {
			log_info("guest reset: restarting");
			continue;
		}
		switch (why) {
		case VM_EXIT_POWEROFF:
		case VM_EXIT_RESET:
		case VM_EXIT_QUIT:
		case VM_EXIT_MIGRATED:
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
	term_restore(&term);
	if (api)
		api_server_stop(api);
	if (api_fd >= 0)
		close(api_fd);
out_files:
	sandbox_seccomp_prepared(); /* a failure before the first VM left it running */
	vm_close_files(cfg);
	return rc;
}

enum cmd_kind { CMD_RUN, CMD_RESTORE, CMD_RECEIVE };

/* What the command line of run, restore or receive asks for (one table for all three). */
struct cmd_opts {
	struct vm_config cfg;
	struct jail_cfg jail;
	enum log_level level;
	const char *from;   /* restore --from DIR */
	bool paused;        /* restore --paused */
	const char *listen; /* receive --listen URI */
	bool api_config;    /* run --api-socket alone: the machine comes from the API */
	const char *psk;    /* --migrate-psk FILE */
	int lease_fds[VM_MAX_DEVICES]; /* the writable disks' lease records (lease_open) */
};

/*
 * Parse the options of kind into o. Returns -1 to go on, 0 after --help, 2 after one
 * line on a usage error. restore and receive take the same machine options as run
 * (their VM is built from them; the saved state is only checked against it).
 */
static int parse_cmd(enum cmd_kind kind, int argc, char **argv, struct cmd_opts *o)
{
	enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_MEMORY_MERGE,
	       OPT_NO_REBOOT,
	       OPT_API_SOCKET, OPT_SECCOMP, OPT_JAIL, OPT_PSK, OPT_FROM, OPT_PAUSED, OPT_LISTEN,
	       OPT_FIRMWARE, OPT_FIRMWARE_VARS, OPT_EPOCH,
	       OPT_DEVICE /* + the class's index in dev_classes[] */ };
	static const struct option fixed[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "firmware", required_argument, NULL, OPT_FIRMWARE },
		{ "firmware-vars", required_argument, NULL, OPT_FIRMWARE_VARS },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "memory-merge", no_argument, NULL, OPT_MEMORY_MERGE },
		{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
		{ "api-socket", required_argument, NULL, OPT_API_SOCKET },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		/* jail_parse_opt() takes these by name. */
		{ "jail", required_argument, NULL, OPT_JAIL },
		{ "uid", required_argument, NULL, OPT_JAIL },
		{ "gid", required_argument, NULL, OPT_JAIL },
		{ "jail-chroot", no_argument, NULL, OPT_JAIL },
		{ "jail-nofile", required_argument, NULL, OPT_JAIL },
		{ "jail-nproc", required_argument, NULL, OPT_JAIL },
		{ "jail-fsize", required_argument, NULL, OPT_JAIL },
		{ "migrate-psk", required_argument, NULL, OPT_PSK },
		{ "epoch", required_argument, NULL, OPT_EPOCH },
		{ "from", required_argument, NULL, OPT_FROM },     /* restore */
		{ "paused", no_argument, NULL, OPT_PAUSED },       /* restore */
		{ "listen", required_argument, NULL, OPT_LISTEN }, /* receive */
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	/* The fixed options, then one per device class (--disk, --net...), then the end. */
	struct option opts[ARRAY_SIZE(fixed) + DEV_MAX_CLASSES + 1];
	struct vm_config *cfg = &o->cfg;
	const char *machine_opt = NULL; /* the first machine option given */
	int longindex = 0, c;
	char why[160];
	size_t k;

	memset(o, 0, sizeof(*o));
	memset(opts, 0, sizeof(opts));
	memcpy(opts, fixed, sizeof(fixed));
	for (k = 0; k < dev_nr_classes && k < DEV_MAX_CLASSES; k++)
		opts[ARRAY_SIZE(fixed) + k] = (struct option){
			dev_classes[k]->name,
			dev_classes[k]->arg_optional ? optional_argument : required_argument, NULL,
			OPT_DEVICE + (int)k };
	machine_defaults(cfg);
	o->level = LOG_WARN;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, &longindex)) != -1) {
		if ((c == OPT_FROM || c == OPT_PAUSED) && kind != CMD_RESTORE)
			return usage_error("--%s is an option of plinth restore", opts[longindex].name);
		if (c == OPT_LISTEN && kind != CMD_RECEIVE)
			return usage_error("--listen is an option of plinth receive");
		if (!machine_opt && ((c >= OPT_KERNEL && c <= OPT_NO_REBOOT) || c == OPT_FIRMWARE ||
				     c == OPT_FIRMWARE_VARS || c >= OPT_DEVICE))
			machine_opt = opts[longindex].name;
		switch (c) {
		case OPT_SECCOMP:
			if (sandbox_seccomp_parse(optarg, &cfg->seccomp))
				return 2; /* it said why */
			break;
		case OPT_JAIL:
			if (jail_parse_opt(&o->jail, opts[longindex].name, optarg))
				return 2;
			break;
		case OPT_KERNEL:
			cfg->kernel = optarg;
			break;
		case OPT_INITRD:
			cfg->initrd = optarg;
			break;
		case OPT_FIRMWARE:
			cfg->firmware = optarg;
			break;
		case OPT_FIRMWARE_VARS:
			cfg->firmware_vars = optarg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = optarg;
			break;
		case OPT_CPUS:
			if (machine_cpus(optarg, &cfg->cpus, why, sizeof(why)))
				return usage_error("--cpus %s", why);
			break;
		case OPT_MEMORY:
			if (machine_memory(optarg, &cfg->memory, why, sizeof(why)))
				return usage_error("--memory %s", why);
			break;
		case OPT_MEMORY_MERGE:
			cfg->memory_merge = true;
			break;
		case OPT_NO_REBOOT:
			cfg->no_reboot = true;
			break;
		case OPT_API_SOCKET:
			cfg->api_socket = optarg;
			break;
		case OPT_PSK:
			o->psk = optarg;
			break;
		case OPT_EPOCH:
			if (lease_parse_epoch_opt(optarg, cfg))
				return usage_error("--epoch must be N or N,vm=ID (N a number, ID up to "
						   "63 of A-Z a-z 0-9 . _ -), not '%s'", optarg);
			break;
		case OPT_FROM:
			o->from = optarg;
			break;
		case OPT_PAUSED:
			o->paused = true;
			break;
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case 'v':
			if (o->level < LOG_DEBUG)
				o->level++;
			break;
		case 'h':
			print_usage(stdout);
			return 0;
		default:
			if (c >= OPT_DEVICE && c < OPT_DEVICE + (int)dev_nr_classes) {
				struct dev_config *d = &cfg->devices[cfg->nr_devices];

				if (cfg->nr_devices == VM_MAX_DEVICES)
					return usage_error("at most %d devices", VM_MAX_DEVICES);
				if (dev_config_parse_kv(dev_classes[c - OPT_DEVICE], optarg, d))
					return 2; /* it said why */
				cfg->nr_devices++;
				machine_note_device(cfg, d);
				break;
			}
			if (optopt && optopt < 256)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* run --api-socket alone: the machine is PUT over the API (preboot.h). */
	o->api_config = kind == CMD_RUN && cfg->api_socket && !cfg->kernel && !cfg->firmware;
	if (o->api_config && machine_opt)
		return usage_error("--%s without --kernel or --firmware: a machine configured "
				   "through the API socket takes none of its options on the "
				   "command line (PUT /v1/vm/config)", machine_opt);
	if (machine_check_boot(cfg, false, why, sizeof(why)))
		return usage_error("%s", why);
	if (cfg->firmware && kind != CMD_RUN)
		return usage_error("--firmware is for %s only (snapshots and migration of a "
				   "firmware-booted guest are not supported yet)", "run");
	if (!cfg->kernel && !cfg->firmware && !o->api_config)
		return usage_error("--kernel %s is required%s", "PATH",
				   kind == CMD_RUN ? "" : " (a guest reset boots it; restore and "
				   "receive take the same machine options as run)");
	if (kind == CMD_RESTORE && !o->from)
		return usage_error("--from %s is required", "DIR");
	if (kind == CMD_RECEIVE && !o->listen)
		return usage_error("--listen %s is required", "tcp:[HOST:]PORT|unix:PATH");
	if (jail_check(&o->jail))
		return 2;
	if (dev_configs_finish(cfg->devices, cfg->nr_devices))
		return 2;
	cfg->console_escape = isatty(cfg->console_in);
	return -1;
}

/* Check the memory size against the host's, open the boot files and the key. 0 or 1. */
static int start_common(struct cmd_opts *o, struct vmm *vmm, int *sfd, struct mig_tls **client)
{
	uint64_t host_mem;

	log_set_level(o->level);
	log_startup_mark("options parsed");
	host_mem = host_mem_total();
	if (host_mem && o->cfg.memory > host_mem) {
		log_error("--memory %lluM is more than this host's %lluM of RAM",
			  (unsigned long long)(o->cfg.memory / MiB),
			  (unsigned long long)(host_mem / MiB));
		return 2;
	}
	*client = NULL;
	/* Read now: no file can be opened once the jail and the filters are on. */
	if (o->psk) {
		*client = mig_tls_new(o->psk, false);
		if (!*client)
			return 1;
	}
	*sfd = setup_signals();
	if (*sfd < 0)
		goto out_tls;
	if (vmm_init(vmm, &o->cfg))
		goto out_sfd;
	vmm->tls = *client;
	/* Now: the host name needs uname, which the filters refuse. */
	if (lease_owner_self(vmm->lease_owner, sizeof(vmm->lease_owner)))
		snprintf(vmm->lease_owner, sizeof(vmm->lease_owner), "pid=%d", (int)getpid());
	/* The kernel, the initrd and /dev/kvm stay open across resets (and the jail). */
	if (vm_open_files(&o->cfg))
		goto out_vmm;
	/* So are the disks' lease records: taken and checked without a path later. */
	lease_open(&o->cfg, o->lease_fds);
	o->cfg.lease_fds = o->lease_fds;
	log_startup_mark("boot files, /dev/kvm and leases open");
	return 0;

out_vmm:
	vmm_fini(vmm);
out_sfd:
	close(*sfd);
out_tls:
	mig_tls_free(*client);
	return 1;
}

static void stop_common(struct cmd_opts *o, struct vmm *vmm, int sfd, struct mig_tls *client)
{
	lease_close(o->lease_fds);
	vmm_fini(vmm);
	close(sfd);
	mig_tls_free(client);
}

/* A VM configured over the API: its start, between the pre-boot server and run_loop. */
struct api_run {
	struct preboot *pb;
	int listen_fd;		   /* the API socket: the running VM's server takes a copy */
	struct api_server *server; /* the pre-boot server, stopped once the VM exists */
	struct log_capture cap;    /* the start-up's first error, the start's answer */
	bool capturing, created;
};

static int api_run_created(void *opaque)
{
	struct api_run *r = opaque;
	int fd;

	log_capture_end(&r->cap);
	r->capturing = false;
	r->created = true;
	preboot_started(r->pb);
	/* One thread again (the jail needs it); run_loop's server takes the socket on its
	 * own copy of the fd (this one closes, the socket stays listening). */
	fd = api_server_release(r->server);
	r->server = NULL;
	if (fd >= 0)
		close(fd);
	return 0;
}

/*
 * The API's part of a start's hooks: none for the command line (r NULL: run_loop
 * listens itself); for the API, a copy of the listening socket for the running VM's
 * server, and the VM's creation answering the start. 0, or 1 (said why).
 */
static int start_hooks(struct api_run *r, struct run_hooks *h)
{
	h->api_fd = -1;
	if (!r)
		return 0;
	h->api_fd = dup(r->listen_fd);
	if (h->api_fd < 0) {
		log_error("dup: %s", strerror(errno));
		return 1;
	}
	h->created = api_run_created;
	h->created_opaque = r;
	return 0;
}

/* Boot the machine of o: run's path, from the command line or (r) the API. */
static int run_vm(struct cmd_opts *o, struct api_run *r)
{
	struct run_hooks h = { 0 };
	struct mig_tls *client;
	struct vmm vmm;
	int sfd, rc;

	rc = start_common(o, &vmm, &sfd, &client);
	if (rc)
		return rc;
	rc = start_hooks(r, &h);
	if (!rc)
		rc = run_loop(&vmm, &o->cfg, false, sfd, &o->jail, &h);
	stop_common(o, &vmm, sfd, client);
	return rc;
}

static int restore_vm(struct cmd_opts *o, struct api_run *r);
static int receive_vm(struct cmd_opts *o, struct api_run *r);

/*
 * plinth run --api-socket PATH alone: serve the pre-boot API (preboot.h) until a
 * start, then the command line's own path with the config the API gave: run's,
 * restore's (POST /v1/vm/start {"from": DIR}) or receive's ({"listen": URI}). A start
 * that fails before the VM exists is answered with its first error line and the
 * process waits for the next.
 */
static int cmd_run_api(struct cmd_opts *o)
{
	struct api_run r = { .listen_fd = -1 };
	struct api_start_args how;
	int listen_fd, wait_sfd, fd, rc = 1;

	log_set_level(o->level);
	/* Signals blocked before any thread starts: they all come to a signalfd. */
	wait_sfd = setup_signals();
	if (wait_sfd < 0)
		return 1;
	listen_fd = api_listen(o->cfg.api_socket);
	if (listen_fd < 0)
		goto out_sfd;
	r.listen_fd = listen_fd;
	r.pb = preboot_new();
	fd = r.pb ? dup(listen_fd) : -1;
	if (fd < 0)
		goto out_listen;
	/* Unfiltered otherwise: the process is not confined before its VM exists. */
	r.server = api_start(fd, NULL, &preboot_api_ops, r.pb, o->cfg.seccomp);
	if (!r.server)
		goto out_listen;
	log_info("waiting for the machine's config on %s", o->cfg.api_socket);
	for (;;) {
		rc = preboot_wait(r.pb, wait_sfd, &o->cfg, &how);
		if (rc)
			break;
		o->cfg.console_escape = isatty(o->cfg.console_in);
		log_capture_tee(&r.cap);
		r.capturing = true;
		o->from = how.from[0] ? how.from : NULL;
		o->paused = how.paused;
		o->listen = how.listen[0] ? how.listen : NULL;
		if (o->from)
			rc = restore_vm(o, &r);
		else if (o->listen)
			rc = receive_vm(o, &r);
		else
			rc = run_vm(o, &r);
		if (r.created)
			break;
		log_capture_end(&r.cap);
		r.capturing = false;
		preboot_refuse(r.pb, &o->cfg, r.cap.first_error);
	}
	if (!r.created)
		unlink(o->cfg.api_socket); /* run_loop's server did not take it over */
out_listen:
	api_server_stop(r.server);
	preboot_free(r.pb);
	if (listen_fd >= 0)
		close(listen_fd);
out_sfd:
	close(wait_sfd);
	return rc;
}

static int cmd_run(struct cmd_opts *o)
{
	return o->api_config ? cmd_run_api(o) : run_vm(o, NULL);
}

/* A restore's first VM, built from the command line: loaded from the snapshot. */
struct restore_ctx {
	const char *from;
	int state_fd, mem_fd;
	struct vm_config *cfg;
};

static int restore_first(void *opaque, struct vm *vm, int sfd)
{
	struct restore_ctx *c = opaque;
	struct state_reader *r;
	unsigned int i;
	int rc = 1;

	(void)sfd;
	r = state_reader_new_fd(c->state_fd, "snapshot state");
	if (!r)
		return 1;
	if (vm_state_check_config(r, c->cfg) ||
	    state_reader_load_all(r, vm_state_loaders, vm_state_nr_loaders, vm)) {
		log_error("cannot restore from %s: %s", c->from, state_reader_error(r));
		goto out_reader;
	}
	/* A disk whose identity the snapshot did not record was not checked. */
	for (i = 0; i < c->cfg->nr_devices; i++)
		if (c->cfg->devices[i].cls == &dev_class_disk && c->cfg->disk_ident[i].known)
			log_warn("disk %s: the snapshot recorded no identity of its image: not "
				 "checked", c->cfg->devices[i].id);
	vm_resync_irqs(vm);
	rc = 0;
out_reader:
	state_reader_free(r);
	close(c->mem_fd); /* the mapping keeps the file */
	c->mem_fd = -1;
	c->cfg->restore = false; /* a guest reset boots afresh */
	c->cfg->restore_memory_fd = -1;
	c->cfg->disk_ident = NULL;
	return rc;
}

/*
 * The snapshot's machine against this one, before anything is built (its devices,
 * slots and sizes are known from the options alone), so that a start over the API is
 * refused with the difference instead of answered and then ended. restore_first()
 * reads the whole state again, confined. 0 or 1 (said why).
 */
static int restore_check(struct restore_ctx *c)
{
	struct state_reader *r = state_reader_new_fd(c->state_fd, "snapshot state");
	int rc = 1;

	if (!r)
		return 1;
	if (vm_state_check_config(r, c->cfg))
		log_error("cannot restore from %s: %s", c->from, state_reader_error(r));
	else if (lseek(c->state_fd, 0, SEEK_SET) < 0)
		log_error("cannot restore from %s: %s", c->from, strerror(errno));
	else
		rc = 0;
	state_reader_free(r);
	return rc;
}

/* plinth restore --from DIR --kernel PATH [machine options as run] [--paused], or
 * (r) POST /v1/vm/start {"from": DIR} */
static int restore_vm(struct cmd_opts *o, struct api_run *r)
{
	struct vm_disk_ident ident[VM_MAX_DEVICES];
	struct restore_ctx ctx = { .state_fd = -1, .mem_fd = -1 };
	struct run_hooks h = { .first = restore_first, .opaque = &ctx };
	struct mig_tls *client;
	struct vmm vmm;
	unsigned int i;
	int sfd, rc;

	/* The disks' identities now, before any guest could write them. */
	memset(ident, 0, sizeof(ident));
	for (i = 0; i < o->cfg.nr_devices; i++)
		if (o->cfg.devices[i].cls == &dev_class_disk)
			vm_disk_ident_of(o->cfg.devices[i].spec, &ident[i]);
	if (state_snapshot_open(o->from, &ctx.state_fd, &ctx.mem_fd))
		return 1; /* said why */
	ctx.from = o->from;
	ctx.cfg = &o->cfg;
	rc = restore_check(&ctx);
	if (rc)
		goto out_close;
	log_startup_mark("snapshot opened, its machine checked");
	o->cfg.restore = true;
	o->cfg.restore_memory_fd = ctx.mem_fd;
	o->cfg.disk_ident = ident;
	rc = start_common(o, &vmm, &sfd, &client);
	if (!rc) {
		vmm.restored = true;
		rc = start_hooks(r, &h);
		if (!rc)
			rc = run_loop(&vmm, &o->cfg, o->paused, sfd, &o->jail, &h);
		stop_common(o, &vmm, sfd, client);
	}
	/* A start over the API that failed may be tried again, from the command line's
	 * state: not restoring. */
	o->cfg.restore = false;
	o->cfg.restore_memory_fd = -1;
	o->cfg.disk_ident = NULL;
out_close:
	close(ctx.state_fd);
	if (ctx.mem_fd >= 0)
		close(ctx.mem_fd);
	return rc;
}

/* A migration's destination: its first VM, built from the command line, received. */
struct receive_ctx {
	int lfd;
	const char *lease_owner;
	struct api_migrate_args a;
	struct mig_tls *server;
	int signo;
};

static int receive_first(void *opaque, struct vm *vm, int sfd)
{
	struct receive_ctx *c = opaque;
	struct vm_config *cfg = (struct vm_config *)vm->cfg;
	int ret = migrate_receive(c->lfd, &c->a, c->server, vm, c->lease_owner, sfd, &c->signo);

	c->lfd = -1; /* closed by migrate_receive */
	cfg->restore = false;  /* a guest reset boots afresh, */
	cfg->incoming = false; /* its disks opened as usual */
	if (ret == -EINTR && c->signo)
		return 128 + c->signo;
	return ret ? 1 : 0;
}

/* plinth receive --listen URI --kernel PATH [machine options as run] [--migrate-psk FILE],
 * or (r) POST /v1/vm/start {"listen": URI} */
static int receive_vm(struct cmd_opts *o, struct api_run *r)
{
	struct receive_ctx ctx = { .lfd = -1 };
	struct run_hooks h = { .first = receive_first, .opaque = &ctx };
	char err[API_ERROR_MAX], uri[API_PATH_MAX + 32];
	struct mig_tls *client;
	struct vmm vmm;
	unsigned int i;
	uint64_t port;
	int sfd, rc;

	/* tcp:PORT listens on loopback: another address has to be asked for. */
	if (!strncmp(o->listen, "tcp:", 4) && !parse_uint(o->listen + 4, 1, 65535, &port)) {
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%llu", (unsigned long long)port);
		o->listen = uri;
	}
	if (api_parse_migrate_uri(o->listen, &ctx.a, err, sizeof(err)))
		return usage_error("--listen: %s", err);
	if (ctx.a.transport == API_MIGRATE_TCP && !o->psk)
		return usage_error("--listen tcp: needs --migrate-psk FILE (the stream is "
				   "authenticated and encrypted with TLS)");
	/*
	 * The images are opened now and taken over from those files later, inside the
	 * jail; the files they name (backing=on) would have to be found by path there.
	 */
	for (i = 0; o->jail.dir && i < o->cfg.nr_devices; i++) {
		bool external = false;
		char *path;

		if (o->cfg.devices[i].cls != &dev_class_disk)
			continue;
		/* A spec it cannot read is refused with its reason when the disk is made. */
		if (virtio_blk_spec_path(o->cfg.devices[i].spec, &path, NULL, &external) == 0)
			free(path);
		if (external)
			return usage_error("receive --jail cannot take a --disk with backing=on or "
					   "backing_dir=: the files its image names are found by "
					   "path, which the jail hides");
	}
	rc = start_common(o, &vmm, &sfd, &client);
	if (rc)
		return rc;
	rc = 1;
	if (ctx.a.transport == API_MIGRATE_TCP) {
		ctx.server = mig_tls_new(o->psk, true);
		if (!ctx.server)
			goto out_common;
	}
	/* Bound before the jail and the filters; the stream is read after them. */
	ctx.lfd = migrate_listen(&ctx.a);
	if (ctx.lfd < 0)
		goto out_tls;
	o->cfg.restore = true;
	o->cfg.incoming = true;
	vmm.restored = true;
	ctx.lease_owner = vmm.lease_owner;
	rc = start_hooks(r, &h);
	if (!rc)
		rc = run_loop(&vmm, &o->cfg, false, sfd, &o->jail, &h);
	o->cfg.restore = false; /* as for a restore: a failed start over the API is retried */
	o->cfg.incoming = false;
	if (ctx.lfd >= 0)
		close(ctx.lfd);
out_tls:
	mig_tls_free(ctx.server);
out_common:
	stop_common(o, &vmm, sfd, client);
	return rc;
}

/*
 * Every thread a VM process starts (ours and the libraries': libvncserver's, GnuTLS's none)
 * gets a 1 MiB stack instead of glibc's 8 MiB. Not for the address space but for the memory
 * the host spends: with transparent huge pages on, the top 2 MiB of an 8 MiB stack is often
 * one aligned huge-page range, and the thread's first call faulted in a whole 2 MiB page
 * (measured: 2 MiB of the 22.6 MiB a 128 MiB guest's plinth cost in the emulated host). A 1 MiB
 * mapping holds no aligned 2 MiB range. The deepest frame in the VMM is 76 KiB (vhdx_open, on
 * the main thread; gcc -fstack-usage). The sanitizers' builds keep the default: their frames
 * are several times larger.
 */
static void small_thread_stacks(void)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	pthread_attr_t a;

	if (pthread_attr_init(&a))
		return;
	if (!pthread_attr_setstacksize(&a, VMM_THREAD_STACK))
		pthread_setattr_default_np(&a);
	pthread_attr_destroy(&a);
#endif
}

static int cmd_restore(struct cmd_opts *o)
{
	return restore_vm(o, NULL);
}

static int cmd_receive(struct cmd_opts *o)
{
	return receive_vm(o, NULL);
}

/* run, restore, receive: parse the command line, run, free what it parsed. */
static int cmd_vm(enum cmd_kind kind, int argc, char **argv)
{
	static int (*const cmd[])(struct cmd_opts *) = {
		[CMD_RUN] = cmd_run, [CMD_RESTORE] = cmd_restore, [CMD_RECEIVE] = cmd_receive,
	};
	struct cmd_opts o;
	int rc = parse_cmd(kind, argc, argv, &o);

	small_thread_stacks();
	if (rc < 0) {
		log_set_level(o.level);
		rc = cmd[kind](&o);
	}
	dev_configs_free(o.cfg.devices, o.cfg.nr_devices);
	return rc;
}

int main(int argc, char **argv)
{
	/*
	 * One malloc arena for all threads: glibc gives each thread that allocates an
	 * arena of its own, about 270 KiB of resident memory for our few threads (make
	 * bench's overhead row: 4.80 -> 4.60 MiB), while no hot path here allocates
	 * (the vCPU and I/O threads work in buffers made at start-up), so there is no
	 * contention to spare them.
	 */
	mallopt(M_ARENA_MAX, 1);
	log_startup_begin();
	log_set_prog("plinth");
	if (argc < 2) {
		print_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("plinth %s\n", PLINTH_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_vm(CMD_RUN, argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	if (pd_client_handles(argv[1]))
		return pd_client_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore"))
		return cmd_vm(CMD_RESTORE, argc - 1, argv + 1);
	if (!strcmp(argv[1], "receive"))
		return cmd_vm(CMD_RECEIVE, argc - 1, argv + 1);
	log_error("unknown command '%s' (try plinth --help)", argv[1]);
	return 2;
}
