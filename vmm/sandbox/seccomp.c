// SPDX-License-Identifier: MIT
/*
 * Per-thread seccomp filters built from the allowlists of allowlist.c.
 *
 * What a forbidden syscall does: the filter's default action is SECCOMP_RET_TRAP,
 * not SECCOMP_RET_KILL_PROCESS, so that the death can be explained. The kernel
 * then sends SIGSYS instead of running the syscall; our handler (installed with
 * SA_RESETHAND | SA_NODEFER) writes one line with write(2) naming the syscall
 * (si_syscall, through a constant table generated at build time, since
 * libseccomp's resolver allocates), the thread's name and its filter's kind,
 * then sends itself SIGSYS again. The handler has been reset to the default by
 * then, so the process dies of SIGSYS (a core dump where RLIMIT_CORE allows), as
 * with KILL_PROCESS, and any forbidden syscall the handler itself made would
 * end the same way. The syscall never runs in either case. A syscall of another
 * ABI (i386 int 0x80, x32) kills the process outright (SECCOMP_RET_KILL_PROCESS).
 *
 * The handler learns the kind from a thread-local tag written once by
 * sandbox_seccomp_install() on that thread: the trap carries no data of ours
 * (libseccomp refuses TRAP with data). A thread that inherited its creator's
 * filter and installed none reports "inherited".
 *
 * Compiling a filter takes libseccomp milliseconds (tens in a nested guest), and every
 * thread of a kind would compile the same one: sandbox_seccomp_prepare() compiles the
 * kinds a VM will need once, on a thread of its own while the VMM builds the VM, and
 * install() then loads that program (the very one seccomp_load() would have generated
 * from the same rules: seccomp_export_bpf()). A kind not prepared is compiled where
 * it is installed, as before.
 */
#include "sandbox.h"

#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "allowlist.h"
#include "log.h"
#include "sysnames.h"
#include "util.h"

/* Kind of the filter this thread installed, -1 if none: written once, read by on_sigsys(). */
static __thread int sandbox_tls_kind = -1;

static const char *const kind_names[SANDBOX_NR_KINDS] = {
	[SANDBOX_MAIN] = "main",
	[SANDBOX_VCPU] = "vcpu",
	[SANDBOX_IO] = "io",
	[SANDBOX_API] = "api",
	[SANDBOX_IO_CONNECT] = "io-connect",
	[SANDBOX_DISPLAY] = "display",
	[SANDBOX_MAIN_RUN] = "main-run",
	[SANDBOX_VCPU_FLASH] = "vcpu-flash",
};

const char *sandbox_thread_name(enum sandbox_thread kind)
{
	if ((unsigned int)kind >= SANDBOX_NR_KINDS)
		return "?";
	return kind_names[kind];
}

int sandbox_seccomp_parse(const char *value, bool *on)
{
	if (value && !strcmp(value, "on")) {
		*on = true;
		return 0;
	}
	if (value && !strcmp(value, "off")) {
		*on = false;
		return 0;
	}
	log_error("--seccomp: expected 'on' or 'off', got '%s'", value ? value : "");
	return -EINVAL;
}

const char *sandbox_syscall_name(long nr)
{
	if (nr < 0 || nr >= SYSNAMES_MAX || !sysnames[nr])
		return "?";
	return sysnames[nr];
}

/* ---- the SIGSYS handler: async-signal-safe only ---------------------------------- */

struct sigbuf {
	char b[256];
	size_t n;
};

static void sb_str(struct sigbuf *sb, const char *s)
{
	while (*s && sb->n < sizeof(sb->b) - 1)
		sb->b[sb->n++] = *s++;
}

static void sb_num(struct sigbuf *sb, long v)
{
	char tmp[24];
	size_t i = 0;
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && i < sizeof(tmp));
	if (v < 0 && sb->n < sizeof(sb->b) - 1)
		sb->b[sb->n++] = '-';
	while (i && sb->n < sizeof(sb->b) - 1)
		sb->b[sb->n++] = tmp[--i];
}

static void on_sigsys(int sig, siginfo_t *info, void *uctx)
{
	struct sigbuf sb = { .n = 0 };
	char comm[17] = "";
	int kind = sandbox_tls_kind;
	long nr = info->si_syscall;

	(void)uctx;
	if (syscall(SYS_prctl, PR_GET_NAME, comm, 0, 0, 0) != 0)
		comm[0] = '\0';
	comm[16] = '\0';
	sb_str(&sb, "plinth: seccomp: thread '");
	sb_str(&sb, comm);
	sb_str(&sb, "' (");
	sb_str(&sb, kind >= 0 ? sandbox_thread_name((enum sandbox_thread)kind) : "inherited");
	sb_str(&sb, " filter) made a forbidden syscall: ");
	sb_str(&sb, sandbox_syscall_name(nr));
	sb_str(&sb, " (");
	sb_num(&sb, nr);
	sb_str(&sb, "); killing the process\n");
	if (write(STDERR_FILENO, sb.b, sb.n) < 0) {
		/* Nothing better to do: the death below still tells. */
	}
	/* SA_RESETHAND made SIGSYS fatal again; SA_NODEFER lets it in at once. */
	syscall(SYS_tgkill, (long)getpid(), (long)syscall(SYS_gettid), (long)sig);
	syscall(SYS_exit_group, 128L + sig);
}

static int set_sigsys_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		int err = errno;

		log_error("seccomp: sigaction(SIGSYS): %s", strerror(err));
		return -err;
	}
	return 0;
}

/* ---- building the filter ------------------------------------------------------------ */

static int add_rule(scmp_filter_ctx ctx, const struct sc_rule *r, pid_t self)
{
	struct scmp_arg_cmp cmp = { .arg = r->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = r->mask };
	int rc = 0;

	switch (r->kind) {
	case SC_ALLOW:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 0);
	case SC_ALLOW_IN:
		for (size_t i = 0; i < r->nr_values && !rc; i++) {
			cmp.datum_b = r->values[i].value & r->mask;
			rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1, &cmp);
		}
		return rc;
	case SC_ALLOW_BITS:
		cmp.datum_b = r->bits;
		return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1, &cmp);
	case SC_ALLOW_SELF:
		cmp.op = SCMP_CMP_EQ;
		cmp.datum_a = (scmp_datum_t)self;
		cmp.datum_b = 0;
		return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, 1, &cmp);
	case SC_ERRNO:
		if (!r->mask)
			return seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)r->err), r->nr, 0);
		cmp.datum_b = r->bits;
		return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((uint32_t)r->err), r->nr, 1, &cmp);
	}
	return -EINVAL;
}

/* The filter of pol (for kind's messages), not loaded. NULL after one log line. */
static scmp_filter_ctx build_filter(enum sandbox_thread kind, const struct sc_policy *pol)
{
	pid_t self = getpid();
	scmp_filter_ctx ctx;
	int rc;

	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		log_error("seccomp: cannot create a filter (libseccomp)");
		return NULL;
	}
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (!rc)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	/* A binary tree of syscall numbers: KVM_RUN's path stays short. */
	if (!rc)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc) {
		log_error("seccomp: filter attributes: %s", strerror(-rc));
		goto out_release;
	}
	for (size_t s = 0; s < pol->nr_sections; s++) {
		const struct sc_section *sec = pol->sections[s];

		for (size_t i = 0; i < sec->nr_rules; i++) {
			rc = add_rule(ctx, &sec->rules[i], self);
			if (rc) {
				log_error("seccomp: %s filter, rule for %s (section %s): %s",
					  sandbox_thread_name(kind), sec->rules[i].name, sec->name,
					  strerror(-rc));
				goto out_release;
			}
		}
	}
	return ctx;

out_release:
	seccomp_release(ctx);
	return NULL;
}

/* ---- filters compiled ahead ----------------------------------------------------- */

/*
 * The programs sandbox_seccomp_prepare() compiled, by kind (len 0: not compiled). Written
 * by its thread only, published by sandbox_seccomp_prepared() after joining it (the
 * release store of ready), read-only from then on and kept for the process's life (a
 * guest reset's new vCPUs load them again). The one mutable state here besides the tag.
 */
static struct {
	struct sock_fprog prog[SANDBOX_NR_KINDS];
	unsigned int kinds, keep; /* what to compile: 1u << kind; MAIN_RUN's keep */
	pthread_t thread;
	bool running;
	atomic_bool ready;
} prep;

/* ctx's program into *prog (its filter malloc'ed), as seccomp_load() would load it. */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	struct sock_filter *f;
	off_t len;
	size_t got = 0;
	int fd, rc;

	fd = memfd_create("plinth-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = seccomp_export_bpf(ctx, fd);
	if (rc)
		goto out_close;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(*f) || len / (off_t)sizeof(*f) > USHRT_MAX) {
		rc = -EINVAL;
		goto out_close;
	}
	f = malloc((size_t)len);
	if (!f) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)len) {
		ssize_t n = pread(fd, (char *)f + got, (size_t)len - got, (off_t)got);

		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(f);
			goto out_close;
		}
		got += (size_t)n;
	}
	prog->filter = f;
	prog->len = (unsigned short)(len / (off_t)sizeof(*f));
out_close:
	close(fd);
	return rc;
}

static void *prepare_thread(void *arg)
{
	(void)arg;
	for (int k = 0; k < SANDBOX_NR_KINDS; k++) {
		const struct sc_policy *pol;
		scmp_filter_ctx ctx;

		if (!(prep.kinds & (1u << k)))
			continue;
		pol = k == SANDBOX_MAIN_RUN ? sc_policy_main_run(prep.keep) :
					      sc_policy_of((enum sandbox_thread)k);
		ctx = pol ? build_filter((enum sandbox_thread)k, pol) : NULL;
		if (!ctx)
			continue; /* compiled where installed, which reports it */
		if (export_prog(ctx, &prep.prog[k]))
			prep.prog[k].len = 0;
		seccomp_release(ctx);
	}
	return NULL;
}

int sandbox_seccomp_prepare(unsigned int kinds, unsigned int keep)
{
	int rc;

	if (prep.running || atomic_load(&prep.ready))
		return 0;
	prep.kinds = kinds & ((1u << SANDBOX_NR_KINDS) - 1);
	prep.keep = keep;
	rc = pthread_create(&prep.thread, NULL, prepare_thread, NULL);
	if (rc) {
		log_error("seccomp: cannot start the thread compiling the filters: %s",
			  strerror(rc));
		return -rc;
	}
	prep.running = true;
	return 0;
}

unsigned int sandbox_seccomp_prepared(void)
{
	unsigned int done = 0;

	if (prep.running) {
		pthread_join(prep.thread, NULL);
		prep.running = false;
		atomic_store_explicit(&prep.ready, true, memory_order_release);
	}
	if (!atomic_load_explicit(&prep.ready, memory_order_acquire))
		return 0;
	for (int k = 0; k < SANDBOX_NR_KINDS; k++)
		if (prep.prog[k].len)
			done |= 1u << k;
	return done;
}

/* kind's compiled program, if prepared (MAIN_RUN: for this keep), or NULL. */
static const struct sock_fprog *prepared_prog(enum sandbox_thread kind, unsigned int keep)
{
	if (!atomic_load_explicit(&prep.ready, memory_order_acquire) || !prep.prog[kind].len)
		return NULL;
	if (kind == SANDBOX_MAIN_RUN && keep != prep.keep)
		return NULL;
	return &prep.prog[kind];
}

/* What seccomp_load() does with the attributes build_filter() sets (no flags). */
static int load_prog(const struct sock_fprog *prog)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog))
		return -errno;
	return 0;
}

static int install(enum sandbox_thread kind, const struct sc_policy *pol, unsigned int keep)
{
	const struct sock_fprog *prog;
	scmp_filter_ctx ctx = NULL;
	int rc;

	/* Filters only add up (and count against a kernel limit): once per thread and kind. */
	if (sandbox_tls_kind == (int)kind)
		return 0;
	rc = set_sigsys_handler();
	if (rc)
		return rc;
	sandbox_libc_prepare();
	prog = prepared_prog(kind, keep);
	if (!prog) {
		ctx = build_filter(kind, pol);
		if (!ctx)
			return -EINVAL;
	}
	/* Tagged before loading: the first trap may come right after the load. */
	sandbox_tls_kind = (int)kind;
	if (prog) {
		rc = load_prog(prog);
	} else {
		rc = seccomp_load(ctx);
		seccomp_release(ctx);
	}
	if (rc) {
		sandbox_tls_kind = -1;
		log_error("seccomp: cannot install the %s filter: %s", sandbox_thread_name(kind),
			  strerror(-rc));
		return rc;
	}
	return 0;
}

int sandbox_seccomp_install(enum sandbox_thread kind)
{
	if (!sc_policy_of(kind)) {
		log_error("seccomp: no thread kind %d", (int)kind);
		return -EINVAL;
	}
	return install(kind, sc_policy_of(kind), 0);
}

int sandbox_seccomp_narrow_main(unsigned int keep)
{
	return install(SANDBOX_MAIN_RUN, sc_policy_main_run(keep), keep);
}

/* ---- printing -------------------------------------------------------------------------- */

static void print_rule(FILE *out, const struct sc_rule *r)
{
	fprintf(out, "  %-18s", r->name);
	switch (r->kind) {
	case SC_ALLOW:
		break;
	case SC_ALLOW_IN:
		fprintf(out, " arg%u in {", r->arg);
		for (size_t i = 0; i < r->nr_values; i++)
			fprintf(out, "%s%s", i ? ", " : "", r->values[i].name);
		fprintf(out, "}");
		break;
	case SC_ALLOW_BITS:
		fprintf(out, " %s", r->expr);
		break;
	case SC_ALLOW_SELF:
		fprintf(out, " arg%u == own pid", r->arg);
		break;
	case SC_ERRNO:
		fprintf(out, " refused: %s", strerrorname_np(r->err) ? strerrorname_np(r->err) : "?");
		if (r->mask)
			fprintf(out, " if %s", r->expr);
		break;
	}
	fprintf(out, "  # %s\n", r->why);
}

void sandbox_seccomp_print(enum sandbox_thread kind, FILE *out)
{
	const struct sc_policy *pol = sc_policy_of(kind);

	if (!pol)
		return;
	fprintf(out, "# seccomp allowlist of %s threads (any other syscall: SIGSYS, "
		"process killed)\n", sandbox_thread_name(kind));
	for (size_t s = 0; s < pol->nr_sections; s++) {
		const struct sc_section *sec = pol->sections[s];

		fprintf(out, "## %s\n", sec->name);
		for (size_t i = 0; i < sec->nr_rules; i++)
			print_rule(out, &sec->rules[i]);
	}
}
