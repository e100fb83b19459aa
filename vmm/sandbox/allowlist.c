// SPDX-License-Identifier: MIT
/*
 * The seccomp allowlists of plinth's thread kinds, as constant tables.
 *
 * A kind's allowlist is a list of sections; a section groups the syscalls one
 * purpose needs and says why. Everything not listed traps (seccomp.c).
 *
 *   section    main vcpu  io  api   purpose (io-connect: io + connect)
 *   base        x    x    x    x    glibc's own needs: memory, futexes, time, signals, exit
 *   spawn       x              x    creating threads (pthread_create)
 *   nospawn          x    x         pthread_create refused with EPERM (not trapped)
 *   kvm-run     x    x              KVM_RUN, register reads, MSI routes / irqfd / ioeventfd
 *   kvm-vcpu    x                   vCPU state ioctls (CPUID, MSRs, registers...): main only
 *   kvm-irq     x    x    x    x    interrupt injection
 *   evloop      x         x    x    epoll/poll, eventfds, Unix sockets, non-blocking fds
 *   io          x         x    x    disk I/O, tap offloads, console queries
 *   connect     x                   vsock's guest-initiated connections (io-connect only)
 *   listen      x                   the API socket's and a migration's listening sockets
 *   display     x                   libvncserver's loop: select, socket options (display)
 *   control     x                   the control ops (run on the main thread): snapshot
 *                                   directories, image locks, dirty log, timers
 *   open        x                   openat of any file: start-up; a reset outside --jail
 *   inet        x                   AF_INET/AF_INET6 sockets: migration over TCP
 *   open_create      (main-run)     after start-up: openat creating new files or of a
 *                                   directory only, others EACCES (snapshots)
 *   no_inet          (main-run)     after start-up: AF_INET/AF_INET6 refused (EACCES)
 *   setup       x                   re-creating the VM on a guest reset, signals, the
 *                                   terminal, narrowing threads created later
 *   libc_main   x                   glibc's resolver (libc.c)
 *   libc_refuse      x    x    x    path look-ups refused with EACCES, not trapped:
 *                                   glibc's lazy reads (libc.c, docs/sandbox.md)
 *
 * MAIN allows everything VCPU, IO and API allow, so that a thread created by the
 * main thread after it installed its filter can still narrow itself to its kind.
 *
 * Argument checks, where cheap and worth it: ioctl requests (low 32 bits, as the
 * kernel reads them) against explicit lists; mmap/mprotect never with PROT_EXEC;
 * socket families; fcntl commands; clone only for threads (no fork, no new
 * namespaces); tgkill only within this process; prctl only for thread names
 * (and no_new_privs on MAIN).
 */
#include "allowlist.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "util.h"

#define V(x) { (uint64_t)(x), #x }

#define ALLOW(sys, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ALLOW, .why = why_ }
/* Allowed if the low 32 bits of argument a equal one of vals[]. */
#define ALLOW_IN(sys, a, vals, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ALLOW_IN, .arg = a, \
	  .mask = 0xffffffffu, .values = vals, .nr_values = ARRAY_SIZE(vals), .why = why_ }
/* Allowed if (argument a & m) == b. */
#define ALLOW_BITS(sys, a, m, b, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ALLOW_BITS, .arg = a, \
	  .mask = m, .bits = b, .expr = "(arg" #a " & " #m ") == " #b, .why = why_ }
#define ALLOW_SELF(sys, a, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ALLOW_SELF, .arg = a, .why = why_ }
#define REFUSE(sys, e, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ERRNO, .err = e, .why = why_ }

/* Refused with errno e if (argument a & m) == b; other values are left to other rules. */
#define REFUSE_BITS(sys, a, m, b, e, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ERRNO, .arg = a, .mask = m, .bits = b, \
	  .expr = "(arg" #a " & " #m ") == " #b, .err = e, .why = why_ }

#define SECTION(n, r) \
	static const struct sc_section sec_##n = { #n, r, ARRAY_SIZE(r) }

/* ---- argument values ---------------------------------------------------------- */

static const struct sc_value prctl_names[] = { V(PR_SET_NAME), V(PR_GET_NAME) };
static const struct sc_value prctl_nnp[] = { V(PR_SET_NO_NEW_PRIVS) };

static const struct sc_value af_unix[] = { V(AF_UNIX) };
static const struct sc_value af_inet[] = { V(AF_INET), V(AF_INET6) };

static const struct sc_value fcntl_cmds[] = {
	V(F_GETFL), V(F_SETFL), V(F_GETFD), V(F_SETFD),
};
static const struct sc_value fcntl_dup[] = { V(F_DUPFD_CLOEXEC) };

/*
 * What a vCPU thread itself does: run, and read its registers to explain a
 * shutdown or a failure. Nothing that changes CPUID, MSRs or registers.
 */
static const struct sc_value ioctl_kvm_run[] = {
	V(KVM_RUN), V(KVM_GET_REGS), V(KVM_GET_SREGS),
};

/*
 * Per-vCPU state, saved and restored by the main thread around snapshot, restore and
 * migration (vCPUs parked) and set up when a reset re-creates the vCPUs: CPUID,
 * MSRs and the rest. Not on vCPU threads, so a guest-driven exploit of the vCPU
 * thread cannot rewrite the CPUID or MSRs of a vCPU.
 */
static const struct sc_value ioctl_kvm_vcpu[] = {
	V(KVM_SET_REGS),
	V(KVM_SET_SREGS),
	V(KVM_GET_SREGS2), V(KVM_SET_SREGS2),
	V(KVM_GET_FPU), V(KVM_SET_FPU),
	V(KVM_GET_XSAVE), V(KVM_GET_XSAVE2), V(KVM_SET_XSAVE),
	V(KVM_GET_XCRS), V(KVM_SET_XCRS),
	V(KVM_GET_MSRS), V(KVM_SET_MSRS),
	V(KVM_GET_LAPIC), V(KVM_SET_LAPIC),
	V(KVM_GET_VCPU_EVENTS), V(KVM_SET_VCPU_EVENTS),
	V(KVM_GET_MP_STATE), V(KVM_SET_MP_STATE),
	V(KVM_GET_DEBUGREGS), V(KVM_SET_DEBUGREGS),
	V(KVM_GET_CPUID2), V(KVM_SET_CPUID2),
	V(KVM_GET_TSC_KHZ), V(KVM_SET_TSC_KHZ),
	V(KVM_KVMCLOCK_CTRL), V(KVM_NMI),
};

/* The guest programs MSI-X vectors and queue doorbells through MMIO on a vCPU. */
static const struct sc_value ioctl_kvm_routes[] = {
	V(KVM_IRQFD), V(KVM_IOEVENTFD), V(KVM_SET_GSI_ROUTING),
};

static const struct sc_value ioctl_kvm_irq[] = {
	V(KVM_IRQ_LINE), V(KVM_IRQ_LINE_STATUS), V(KVM_SIGNAL_MSI),
};

/* VM-wide state: dirty logging for migration, clock and irqchip for snapshots. */
static const struct sc_value ioctl_kvm_vm[] = {
	V(KVM_CHECK_EXTENSION),
	V(KVM_SET_USER_MEMORY_REGION),
	V(KVM_GET_DIRTY_LOG), V(KVM_CLEAR_DIRTY_LOG), V(KVM_RESET_DIRTY_RINGS),
	V(KVM_GET_CLOCK), V(KVM_SET_CLOCK),
	V(KVM_GET_IRQCHIP), V(KVM_SET_IRQCHIP),
	V(KVM_GET_PIT2), V(KVM_SET_PIT2),
};

/* Creating a VM and its vCPUs: the main thread does it again on a guest reset. */
static const struct sc_value ioctl_kvm_create[] = {
	V(KVM_GET_API_VERSION), V(KVM_CREATE_VM), V(KVM_GET_VCPU_MMAP_SIZE),
	V(KVM_GET_SUPPORTED_CPUID), V(KVM_GET_MSR_INDEX_LIST), V(KVM_CREATE_VCPU),
	V(KVM_SET_TSS_ADDR), V(KVM_SET_IDENTITY_MAP_ADDR), V(KVM_CREATE_IRQCHIP),
	V(KVM_CREATE_PIT2), V(KVM_ENABLE_CAP),
};

static const struct sc_value ioctl_fd[] = { V(FIONBIO), V(FIONREAD), V(FIOCLEX) };

/* Asked by the console backend; setting the terminal is the main thread's job. */
static const struct sc_value ioctl_tty_query[] = { V(TCGETS), V(TIOCGWINSZ) };
static const struct sc_value ioctl_tty_set[] = { V(TCSETS), V(TCSETSW), V(TCSETSF) };

/* virtio-net: the driver renegotiates offloads at run time. */
static const struct sc_value ioctl_tun_runtime[] = { V(TUNSETOFFLOAD), V(TUNSETVNETHDRSZ) };
/* Set when a reset re-creates the VM (tap_open): attach, then no send-buffer limit. */
static const struct sc_value ioctl_tun_setup[] = { V(TUNSETIFF), V(TUNSETSNDBUF) };

/* virtio-blk on a block device: size, discard, write-zeroes. */
static const struct sc_value ioctl_blk[] = { V(BLKGETSIZE64), V(BLKDISCARD), V(BLKZEROOUT) };

/* What pthread_create passes to clone(2): a thread in this process, nothing else. */
#define CLONE_THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)
#define CLONE_REFUSED_FLAGS \
	(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | \
	 CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_PTRACE | CLONE_VFORK)
#define CLONE_CHECKED_FLAGS (CLONE_THREAD_FLAGS | CLONE_REFUSED_FLAGS)

/* ---- sections ------------------------------------------------------------------ */

static const struct sc_rule base_rules[] = {
	ALLOW(read, "eventfds, pipes, sockets, the console"),
	ALLOW(write, "eventfds, the log on stderr, the serial console on stdout"),
	ALLOW(readv, "tap frames, sockets"),
	ALLOW(writev, "tap frames, sockets"),
	ALLOW(close, "fds the thread owns"),
	ALLOW(futex, "mutexes, condition variables, pthread_join"),
	ALLOW(sched_yield, "spin-wait back-off"),
	ALLOW(nanosleep, "usleep, back-off"),
	ALLOW(clock_nanosleep, "usleep, back-off"),
	ALLOW(clock_gettime, "time stamps (vDSO fallback)"),
	ALLOW(gettimeofday, "time stamps (vDSO fallback)"),
	ALLOW(getpid, "pthread_kill, raise"),
	ALLOW(gettid, "pthread_kill, raise"),
	ALLOW_SELF(tgkill, 0, "kicking a vCPU out of KVM_RUN; raise(); only this process"),
	ALLOW(rt_sigreturn, "return from signal handlers (the vCPU kick)"),
	ALLOW(rt_sigprocmask, "pthread_sigmask"),
	ALLOW(sigaltstack, "signal stacks (sanitizer runtimes set one per thread)"),
	ALLOW(restart_syscall, "syscalls restarted after a signal"),
	ALLOW_BITS(mmap, 2, PROT_EXEC, 0, "malloc, thread stacks; never executable"),
	ALLOW_BITS(mprotect, 2, PROT_EXEC, 0, "malloc arenas, stack guards; never executable"),
	ALLOW(munmap, "free, thread stacks"),
	ALLOW(madvise, "free, thread exit, virtio-balloon's reported pages"),
	ALLOW(mremap, "realloc of large blocks"),
	ALLOW(brk, "malloc"),
	ALLOW(sched_getaffinity, "malloc arena sizing, pthread_getattr_np"),
	ALLOW_IN(prctl, 0, prctl_names, "thread names (also read by the SIGSYS handler)"),
	ALLOW(exit, "thread exit"),
	ALLOW(exit_group, "process exit"),
};
SECTION(base, base_rules);

static const struct sc_rule spawn_rules[] = {
	ALLOW_BITS(clone, 0, CLONE_CHECKED_FLAGS, CLONE_THREAD_FLAGS,
		   "pthread_create: VM, FS, FILES, SIGHAND, THREAD set; no fork, no namespaces, "
		   "no vfork, no ptrace"),
	REFUSE(clone3, ENOSYS, "its flags are in memory, out of the filter's sight: "
	       "ENOSYS makes glibc fall back to clone"),
	ALLOW(set_robust_list, "start of a new thread"),
	ALLOW(rseq, "start of a new thread"),
};
SECTION(spawn, spawn_rules);

/*
 * Kinds that may not create threads: glibc blocks every signal around clone3, so a
 * trap there would kill without the explaining line. EPERM instead makes
 * pthread_create fail, visibly, in its caller. fork() uses clone(2) and still traps.
 */
static const struct sc_rule nospawn_rules[] = {
	REFUSE(clone3, EPERM, "pthread_create fails with EPERM where its caller can say so"),
};
SECTION(nospawn, nospawn_rules);

static const struct sc_rule kvm_run_rules[] = {
	ALLOW_IN(ioctl, 1, ioctl_kvm_run, "KVM_RUN; registers read to explain an exit"),
	ALLOW_IN(ioctl, 1, ioctl_kvm_routes, "MSI-X and doorbell programming by the guest"),
	ALLOW(eventfd2, "irqfd and ioeventfd eventfds wired on guest request"),
	ALLOW(epoll_ctl, "a queue's kick eventfd added to its device's loop"),
};
SECTION(kvm_run, kvm_run_rules);

static const struct sc_rule kvm_vcpu_rules[] = {
	ALLOW_IN(ioctl, 1, ioctl_kvm_vcpu, "the vCPUs' state: snapshot, restore, migration, reset"),
};
SECTION(kvm_vcpu, kvm_vcpu_rules);

static const struct sc_rule kvm_irq_rules[] = {
	ALLOW_IN(ioctl, 1, ioctl_kvm_irq, "interrupt injection without an irqfd"),
};
SECTION(kvm_irq, kvm_irq_rules);

static const struct sc_rule evloop_rules[] = {
	ALLOW(epoll_create1, "an event loop"),
	ALLOW(epoll_ctl, "an event loop"),
	ALLOW(epoll_wait, "an event loop"),
	ALLOW(epoll_pwait, "an event loop"),
	ALLOW(epoll_pwait2, "an event loop"),
	ALLOW(poll, "waiting on a few fds"),
	ALLOW(ppoll, "waiting on a few fds"),
	ALLOW(eventfd2, "wake-ups between threads"),
	ALLOW_IN(socket, 0, af_unix, "Unix sockets only"),
	ALLOW(accept4, "incoming connections on a listening socket"),
	ALLOW(recvfrom, "sockets"),
	ALLOW(sendto, "sockets"),
	ALLOW(recvmsg, "sockets"),
	ALLOW(sendmsg, "sockets"),
	ALLOW(shutdown, "sockets"),
	ALLOW(getsockopt, "SO_ERROR after a non-blocking connect"),
	ALLOW_IN(fcntl, 1, fcntl_cmds, "O_NONBLOCK, FD_CLOEXEC"),
	ALLOW(getrandom, "virtio-rng, hash seeds"),
	ALLOW_IN(ioctl, 1, ioctl_fd, "non-blocking mode, bytes pending"),
};
SECTION(evloop, evloop_rules);

static const struct sc_rule io_rules[] = {
	ALLOW(pread64, "disk images"),
	ALLOW(pwrite64, "disk images"),
	ALLOW(preadv, "disk images"),
	ALLOW(pwritev, "disk images"),
	ALLOW(preadv2, "disk images"),
	ALLOW(pwritev2, "disk images"),
	ALLOW(fdatasync, "virtio-blk flush"),
	ALLOW(fsync, "virtio-blk flush"),
	ALLOW(fallocate, "virtio-blk discard and write-zeroes"),
	ALLOW(lseek, "disk images"),
	ALLOW(fstat, "image size"),
	ALLOW(ftruncate, "images that grow (qcow2 and others allocating clusters)"),
	ALLOW_BITS(newfstatat, 3, AT_EMPTY_PATH, AT_EMPTY_PATH,
		   "fstat() of glibc (with AT_EMPTY_PATH only)"),
	ALLOW_IN(ioctl, 1, ioctl_tty_query, "console size and mode"),
	ALLOW_IN(ioctl, 1, ioctl_tun_runtime, "virtio-net offload renegotiation"),
	ALLOW_IN(ioctl, 1, ioctl_blk, "virtio-blk on block devices"),
};
SECTION(io, io_rules);

/* The firmware's variable store (vmm/hw/pflash.c) writes through from the vCPU. */
static const struct sc_rule flash_rules[] = {
	ALLOW(pwrite64, "firmware vars file (CFI flash program/erase)"),
};
SECTION(flash, flash_rules);

/* Only the device that needs it: no other I/O thread connects anywhere. */
static const struct sc_rule connect_rules[] = {
	ALLOW(connect, "vsock: guest-initiated connections to PATH_<port>"),
};
SECTION(connect, connect_rules);

/*
 * Main only: listening sockets, made there and handed on. select, pselect6, accept,
 * getsockname, getpeername and pipe2 were the API thread's libmicrohttpd's, which main
 * had to allow too; no plinth code on main calls them now, and they stay until main's
 * filter is narrowed with an integration run behind it.
 */
static const struct sc_rule listen_rules[] = {
	ALLOW(select, "libmicrohttpd's, once (see above)"),
	ALLOW(pselect6, "libmicrohttpd's, once (see above)"),
	ALLOW(bind, "the API socket, a migration's --listen, vsock's and the display's sockets"),
	ALLOW(listen, "the API socket, a migration's --listen, vsock's and the display's sockets"),
	ALLOW(accept, "libmicrohttpd's, once (see above)"),
	ALLOW(setsockopt, "a migration's socket buffers, timeouts and TCP_NODELAY"),
	ALLOW(getsockname, "libmicrohttpd's, once (see above)"),
	ALLOW(getpeername, "libmicrohttpd's, once (see above)"),
	ALLOW(pipe2, "libmicrohttpd's, once (see above)"),
};
SECTION(listen, listen_rules);

/* libvncserver's own loop (rfbProcessEvents) on the sockets the display accepted. */
static const struct sc_rule display_rules[] = {
	ALLOW(select, "rfbProcessEvents waits on its clients"),
	ALLOW(pselect6, "rfbProcessEvents waits on its clients"),
	ALLOW(setsockopt, "TCP_NODELAY on a new viewer's socket"),
	ALLOW(getsockname, "libvncserver's client set-up"),
	ALLOW(getpeername, "libvncserver names a new viewer"),
};
SECTION(display, display_rules);

/* What the control operations do: snapshot/restore, migration, disk hotplug, reset. */
static const struct sc_rule control_rules[] = {
	ALLOW(newfstatat, "stat/lstat of paths (vsock socket, images, kernel)"),
	ALLOW(mkdir, "a snapshot's directory"),
	ALLOW(mkdirat, "a snapshot's directory"),
	ALLOW(rmdir, "a failed snapshot's directory"),
	ALLOW(unlink, "a stale or finished socket, a failed snapshot"),
	ALLOW(unlinkat, "a stale or finished socket, a failed snapshot"),
	ALLOW(rename, "snapshots written under a temporary name"),
	ALLOW(renameat, "snapshots written under a temporary name"),
	ALLOW(renameat2, "snapshots written under a temporary name"),
	ALLOW(flock, "image locks"),
	ALLOW(timerfd_create, "migration and shutdown timeouts"),
	ALLOW(timerfd_settime, "migration and shutdown timeouts"),
	ALLOW(timerfd_gettime, "migration and shutdown timeouts"),
	ALLOW_IN(ioctl, 1, ioctl_kvm_vm, "dirty log, clock, irqchip for snapshots and migration"),
};
SECTION(control, control_rules);

/* Opening any file by path: start-up, and a reset outside --jail re-opening the devices. */
static const struct sc_rule open_rules[] = {
	ALLOW(openat, "snapshot files, hot-plugged images; /dev/kvm, kernel, images when a "
	      "reset re-creates the VM"),
};
SECTION(open, open_rules);

/*
 * After start-up (main-run): no existing file opens by path. A snapshot creates new
 * files (O_CREAT|O_EXCL) in a directory it opened (O_DIRECTORY, read-only by
 * nature); the disks (images, leases) were opened at start-up and are reopened from
 * those fds. Everything else gets EACCES, as glibc's lazy look-ups do elsewhere.
 */
static const struct sc_rule open_create_rules[] = {
	ALLOW_BITS(openat, 2, O_CREAT | O_EXCL, O_CREAT | O_EXCL, "a snapshot's new files"),
	ALLOW_BITS(openat, 2, O_DIRECTORY, O_DIRECTORY, "a snapshot's directory, for openat"),
	REFUSE_BITS(openat, 2, O_CREAT | O_DIRECTORY, 0, EACCES,
		    "no existing file after start-up (and glibc's lazy look-ups)"),
	REFUSE_BITS(openat, 2, O_EXCL | O_DIRECTORY, 0, EACCES,
		    "no existing file after start-up (and glibc's lazy look-ups)"),
	REFUSE(open, EACCES, "as openat"),
	REFUSE(openat2, EACCES, "as openat"),
	REFUSE(creat, EACCES, "as openat"),
};
SECTION(open_create, open_create_rules);

/* Network sockets: only a VM that holds the cluster's migration key migrates over TCP. */
static const struct sc_rule inet_rules[] = {
	ALLOW_IN(socket, 0, af_inet, "live migration over TCP"),
};
SECTION(inet, inet_rules);

/* After start-up without a migration key: EACCES, so a migration says why. */
static const struct sc_rule no_inet_rules[] = {
	REFUSE_BITS(socket, 0, 0xffffffffu, AF_INET, EACCES, "no TCP after start-up without a "
		    "migration key"),
	REFUSE_BITS(socket, 0, 0xffffffffu, AF_INET6, EACCES, "no TCP after start-up without a "
		    "migration key"),
};
SECTION(no_inet, no_inet_rules);

/* The main thread's own: (re-)creating the VM, signals, the terminal, later filters. */
static const struct sc_rule setup_rules[] = {
	ALLOW(memfd_create, "guest memory when a reset re-creates the VM"),
	ALLOW(umask, "a reset re-creating --display's Unix socket (mode 0600)"),
	ALLOW_IN(fcntl, 1, fcntl_dup, "the console's output fd"),
	ALLOW_IN(ioctl, 1, ioctl_kvm_create, "a guest reset re-creates the VM (vm_create)"),
	ALLOW_IN(ioctl, 1, ioctl_tun_setup, "tap set-up"),
	ALLOW_IN(ioctl, 1, ioctl_tty_set, "restoring the terminal at exit"),
	ALLOW(signalfd4, "SIGINT/SIGTERM in the control loop"),
	ALLOW(rt_sigtimedwait, "sigwait"),
	ALLOW(rt_sigaction, "signal handlers; installing a later thread's filter"),
	ALLOW(seccomp, "a thread created later narrowing itself (filters only add up)"),
	ALLOW_IN(prctl, 0, prctl_nnp, "installing a later thread's filter"),
};
SECTION(setup, setup_rules);

/* ---- kinds ----------------------------------------------------------------------- */

static const struct sc_section *const main_sections[] = {
	&sec_base, &sec_spawn, &sec_kvm_run, &sec_kvm_vcpu, &sec_kvm_irq, &sec_evloop, &sec_io,
	&sec_connect, &sec_listen, &sec_control, &sec_open, &sec_inet, &sec_setup, &sc_sec_libc_main,
	&sec_display,
};
/*
 * The main thread once start-up is over (main.c installs it on top of MAIN before any
 * saved state or stream is read): MAIN without opening existing files or network
 * sockets. sandbox_seccomp_narrow_main() puts sec_open or sec_inet back where the
 * configuration needs them; this table is the narrowest, printed and tested as is.
 */
#define MAIN_RUN_SECTIONS \
	&sec_base, &sec_spawn, &sec_kvm_run, &sec_kvm_vcpu, &sec_kvm_irq, &sec_evloop, &sec_io, \
	&sec_connect, &sec_listen, &sec_control, &sec_setup, &sc_sec_libc_main, &sec_display
static const struct sc_section *const main_run_sections[] = {
	MAIN_RUN_SECTIONS, &sec_open_create, &sec_no_inet,
};
static const struct sc_section *const main_run_inet_sections[] = {
	MAIN_RUN_SECTIONS, &sec_open_create, &sec_inet,
};
static const struct sc_section *const main_run_open_sections[] = {
	MAIN_RUN_SECTIONS, &sec_open, &sec_no_inet,
};
static const struct sc_section *const main_run_open_inet_sections[] = {
	MAIN_RUN_SECTIONS, &sec_open, &sec_inet,
};
static const struct sc_section *const vcpu_sections[] = {
	&sec_base, &sec_nospawn, &sec_kvm_run, &sec_kvm_irq, &sc_sec_libc_refuse,
};
/* Only a firmware boot's vCPUs write: the CFI flash's program and erase reach the vars file. */
static const struct sc_section *const vcpu_flash_sections[] = {
	&sec_base, &sec_nospawn, &sec_kvm_run, &sec_kvm_irq, &sec_flash, &sc_sec_libc_refuse,
};
static const struct sc_section *const io_sections[] = {
	&sec_base, &sec_nospawn, &sec_kvm_irq, &sec_evloop, &sec_io, &sc_sec_libc_refuse,
};
static const struct sc_section *const io_connect_sections[] = {
	&sec_base, &sec_nospawn, &sec_kvm_irq, &sec_evloop, &sec_io, &sec_connect,
	&sc_sec_libc_refuse,
};
/*
 * A display's thread (vmm/display/vnc.c): accepts viewers on the socket opened at
 * start-up and serves them; it never opens, connects or creates a thread.
 */
static const struct sc_section *const display_sections[] = {
	&sec_base, &sec_nospawn, &sec_evloop, &sec_display, &sc_sec_libc_refuse,
};
/*
 * The API thread parses requests and answers them; every op that changes the VM is
 * posted to the main thread (vmm/control.c, vmm_call) and carried out there, so it
 * needs no file, KVM or disk syscalls of its own.
 */
static const struct sc_section *const api_sections[] = {
	&sec_base, &sec_spawn, &sec_evloop, &sc_sec_libc_refuse,
};

static const struct sc_policy policies[SANDBOX_NR_KINDS] = {
	[SANDBOX_MAIN] = { main_sections, ARRAY_SIZE(main_sections) },
	[SANDBOX_VCPU] = { vcpu_sections, ARRAY_SIZE(vcpu_sections) },
	[SANDBOX_IO] = { io_sections, ARRAY_SIZE(io_sections) },
	[SANDBOX_API] = { api_sections, ARRAY_SIZE(api_sections) },
	[SANDBOX_IO_CONNECT] = { io_connect_sections, ARRAY_SIZE(io_connect_sections) },
	[SANDBOX_MAIN_RUN] = { main_run_sections, ARRAY_SIZE(main_run_sections) },
	[SANDBOX_DISPLAY] = { display_sections, ARRAY_SIZE(display_sections) },
	[SANDBOX_VCPU_FLASH] = { vcpu_flash_sections, ARRAY_SIZE(vcpu_flash_sections) },
};

/* MAIN_RUN with what keep (SANDBOX_KEEP_*) puts back. */
static const struct sc_policy main_run_variants[4] = {
	{ main_run_sections, ARRAY_SIZE(main_run_sections) },
	{ main_run_inet_sections, ARRAY_SIZE(main_run_inet_sections) },
	{ main_run_open_sections, ARRAY_SIZE(main_run_open_sections) },
	{ main_run_open_inet_sections, ARRAY_SIZE(main_run_open_inet_sections) },
};

const struct sc_policy *sc_policy_main_run(unsigned int keep)
{
	return &main_run_variants[(keep & SANDBOX_KEEP_INET ? 1 : 0) |
				  (keep & SANDBOX_KEEP_OPEN ? 2 : 0)];
}

const struct sc_policy *sc_policy_of(enum sandbox_thread kind)
{
	if ((unsigned int)kind >= SANDBOX_NR_KINDS)
		return NULL;
	return &policies[kind];
}
