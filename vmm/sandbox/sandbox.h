/* SPDX-License-Identifier: MIT */
/*
 * Hardening for plinth: per-thread seccomp filters and the jailer.
 *
 * Seccomp
 * -------
 * Every thread of plinth belongs to one kind (vCPU, I/O, API, main) and installs
 * the filter of its kind itself, at its start, with sandbox_seccomp_install():
 * a classic seccomp filter on the calling thread only (no TSYNC). A syscall
 * outside the kind's allowlist (vmm/sandbox/allowlist.c) traps: a SIGSYS handler
 * writes one line naming the syscall, the thread and its kind, then the whole
 * process dies of SIGSYS (see seccomp.c for why TRAP and not KILL_PROCESS).
 *
 * Filters are inherited and they stack. A thread created by a filtered thread
 * starts with its creator's filter; if it then installs its own, both apply and
 * only what both allow gets through. MAIN allows everything the other kinds
 * allow (a unit test checks it), so either order works:
 *   1. open everything (/dev/kvm, images, taps, sockets), jail_enter() if asked;
 *   2. the main thread installs SANDBOX_MAIN, before or after creating the
 *      other threads;
 *   3. every vCPU, I/O (device worker, console input) and API thread calls
 *      sandbox_seccomp_install(its kind) first thing, a vCPU thread before its
 *      first KVM_RUN.
 * Installing the same kind again on a thread is a no-op (filters stack and the
 * kernel caps their total).
 * Only MAIN and API threads may create threads. On VCPU and IO threads
 * pthread_create fails with EPERM (not a trap: glibc blocks all signals
 * around clone3, so a trap would kill without a word) and fork() traps. So a
 * device started by a guest write on a vCPU thread (DRIVER_OK) must not create
 * its worker there: create it with the device on the main thread and let
 * DRIVER_OK wake it.
 *
 * Lazy opens by libraries must happen before the filter: sandbox_seccomp_install()
 * does glibc's own (sandbox_libc_prepare()), and path look-ups (open, stat,
 * access, readlink) fail with EACCES on vcpu, io and api threads rather than
 * trap, since glibc's lazy reads must cope with missing files anyway; the API thread must call json_object_seed(0)
 * before installing SANDBOX_API (jansson opens /dev/urandom on first use), and
 * start the server after installing it (its thread then inherits the filter;
 * tests/unit/api/test_server_sandbox.c).
 * A thread that blocks SIGSYS (or glibc's pthread_create, which blocks all
 * signals around clone) still dies on a forbidden syscall, but the kernel then
 * kills it without the explaining line: leave SIGSYS unblocked.
 *
 * Jailer
 * ------
 * `plinth run --jail DIR --uid N --gid N`: after the VMM has opened everything it
 * needs and before it creates any thread, jail_enter() makes DIR the root of a
 * new mount namespace (pivot_root; chroot where namespaces are refused), drops to
 * uid/gid with no supplementary groups, no capabilities in any set and
 * no_new_privs, and sets resource limits (core dumps off).
 */
#ifndef PLINTH_VMM_SANDBOX_H
#define PLINTH_VMM_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum sandbox_thread {
	SANDBOX_MAIN, /* control thread: VM setup done; pause/resume, snapshot, migration */
	SANDBOX_VCPU, /* a vCPU: KVM_RUN and port/MMIO emulation */
	SANDBOX_IO,   /* a device backend or the console input thread: epoll, disk, tap, vsock */
	SANDBOX_API,  /* the REST API thread (vmm/api/server.c) and the control ops it runs */
	SANDBOX_IO_CONNECT, /* an I/O thread that connects out: virtio-vsock's (PATH_<port>) */
	SANDBOX_MAIN_RUN, /* the main thread after start-up: no existing file, no TCP socket */
	SANDBOX_DISPLAY, /* a display's thread (virtio-gpu's VNC server): its sockets only */
	SANDBOX_VCPU_FLASH, /* a vCPU of a firmware boot: SANDBOX_VCPU + the vars file's writes */
};
#define SANDBOX_NR_KINDS 8

/*
 * Do the C library's lazy work we know of (time zone, qsort's memory probe) now,
 * while files can be opened, so that no filtered thread meets it later. Once per
 * process; sandbox_seccomp_install() and jail_enter() call it themselves. Pins TZ
 * to ":/etc/localtime" when TZ is unset (glibc then loads the zone once).
 */
void sandbox_libc_prepare(void);

/* "main", "vcpu", "io", "api", "io-connect", "main-run", "display". */
const char *sandbox_thread_name(enum sandbox_thread kind);

/*
 * Parse the value of --seccomp: "on" (the default) or "off" (for debugging).
 * Returns 0 and sets *on, or -EINVAL after one line on stderr.
 */
int sandbox_seccomp_parse(const char *value, bool *on);

/*
 * Install the filter of kind on the calling thread (and, through inheritance,
 * on the threads it creates afterwards). Sets the process-wide SIGSYS handler
 * first. A second call with the kind the thread already installed does nothing
 * (so the main thread may call it on every VM re-creation); another kind adds
 * its filter on top (only what both allow passes). Returns 0 or -errno after one log line (no seccomp in the kernel, a
 * filter libseccomp refuses to build...); the caller should then stop, not run
 * the guest unconfined.
 */
int sandbox_seccomp_install(enum sandbox_thread kind);

/*
 * Narrow the main thread once start-up is over (everything the VM needs is open, the
 * jail entered): SANDBOX_MAIN_RUN on top of SANDBOX_MAIN, so that it can no longer
 * open an existing file by path (EACCES; a snapshot's new files and directory stay
 * possible) nor create AF_INET/AF_INET6 sockets (EACCES), and neither can the threads
 * it creates later (the migration thread, a reset's vCPUs). keep puts back what the
 * configuration needs:
 *   SANDBOX_KEEP_INET  network sockets: the VM holds a migration key (TCP migrations);
 *   SANDBOX_KEEP_OPEN  opening files: a guest reset outside --jail re-opens the
 *                      devices' files by path.
 * Once per thread (a second call does nothing). 0 or -errno after one log line.
 */
#define SANDBOX_KEEP_INET (1u << 0)
#define SANDBOX_KEEP_OPEN (1u << 1)
int sandbox_seccomp_narrow_main(unsigned int keep);

/*
 * Compile the filters of kinds (a mask of 1u << kind; SANDBOX_MAIN_RUN's for keep) on a
 * thread of its own, while the caller goes on building the VM; then
 * sandbox_seccomp_prepared() waits for it, and from then on sandbox_seccomp_install()
 * and sandbox_seccomp_narrow_main() load those programs instead of compiling the same
 * rules again on every thread (the same filters). Once per process, before any thread
 * installs a filter; a kind that failed to compile is compiled (and reported) where it
 * is installed. 0 or -errno after one log line (nothing prepared: each compiles its own).
 * sandbox_seccomp_prepared() returns the mask of the kinds compiled (0 if none was asked).
 */
int sandbox_seccomp_prepare(unsigned int kinds, unsigned int keep);
unsigned int sandbox_seccomp_prepared(void);

/*
 * Write the allowlist of kind to out, one syscall per line with its argument
 * constraints ("ioctl  arg1 in {KVM_RUN, ...}"), for --seccomp-print and docs.
 */
void sandbox_seccomp_print(enum sandbox_thread kind, FILE *out);

/* Name of syscall number nr on x86-64 ("?" if unknown); async-signal-safe. */
const char *sandbox_syscall_name(long nr);

/* What --jail and its companions ask for. Zero-initialize, then jail_parse_opt(). */
struct jail_cfg {
	const char *dir;       /* --jail DIR: new root; NULL: no jail (not owned) */
	uid_t uid;             /* --uid N */
	gid_t gid;             /* --gid N */
	bool has_uid, has_gid;
	bool chroot_only;      /* --jail-chroot: skip the mount namespace, chroot only */
	uint64_t nofile;       /* --jail-nofile N: RLIMIT_NOFILE; 0: JAIL_DEFAULT_NOFILE */
	uint64_t nproc;        /* --jail-nproc N: RLIMIT_NPROC; 0: unchanged */
	uint64_t fsize;        /* --jail-fsize SIZE: RLIMIT_FSIZE in bytes; 0: unchanged */
};

#define JAIL_DEFAULT_NOFILE 4096

/*
 * Take one option: name is the option without its dashes ("jail", "uid", "gid",
 * "jail-chroot", "jail-nofile", "jail-nproc", "jail-fsize"), value its argument
 * (NULL for "jail-chroot"). Returns 0, -ENOENT if name is not a jail option, or
 * -EINVAL after one line on stderr. value is not copied: it must outlive cfg.
 */
int jail_parse_opt(struct jail_cfg *cfg, const char *name, const char *value);

/*
 * Check a complete configuration (uid without gid, options without --jail, DIR
 * missing or not a directory, uid 0). 0 or -EINVAL after one line on stderr.
 * jail_enter() calls it too; main.c can call it early to fail before any setup.
 */
int jail_check(const struct jail_cfg *cfg);

/*
 * Enter the jail described by cfg (cfg->dir must be set). Must be called by
 * root, while the process is single-threaded, after everything outside DIR has
 * been opened. On success the process is confined for good: its root is DIR,
 * cwd "/", ids uid/gid, no capabilities. Returns 0 or -errno after one line on
 * stderr; after a failure the process must exit (it may be half-confined).
 */
int jail_enter(const struct jail_cfg *cfg);

#endif
