// SPDX-License-Identifier: MIT
/*
 * The C library's own work under the filters (docs/sandbox.md, "The C library").
 *
 * glibc does some of its work lazily, the first time a function needs it, on
 * whatever thread calls that function: malloc reads /proc/sys/vm/overcommit_memory
 * the first time it shrinks the heap of a non-main arena (an I/O thread freeing
 * buffers), the time functions open and re-stat /etc/localtime, qsort asks
 * sysinfo(2) for the machine's memory, the resolver reads /etc/hosts and
 * /etc/resolv.conf, asks uname(2) for the host's domain and sends its two queries
 * with sendmmsg(2). None of that is in
 * our code, so no allowlist can follow it by reading plinth. Two layers:
 *
 *  1. sandbox_libc_prepare() does the lazy work we know of once, before the first
 *     filter (and before the jail hides the host's files), so that glibc caches
 *     the real answer: the time zone (and TZ pinned so that it is not re-read),
 *     qsort's memory probe.
 *  2. The filters of filtered kinds (vcpu, io, api) refuse, with EACCES and
 *     without a trap, the calls that only look files up by path: open, openat,
 *     stat and friends, access, readlink. glibc copes with every such failure,
 *     since it must run in chroots and containers without /proc or /etc: malloc
 *     then takes the answer "overcommit is not strict" (what it assumes when the
 *     file cannot be read). A refused lookup opens nothing, so nothing is lost by
 *     not killing: these threads still cannot reach a file. Everything that could
 *     do harm or escape (exec, ptrace, new sockets of other families, executable
 *     mappings, ioctls off the lists...) still traps and kills.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allowlist.h"
#include "util.h"

/* Descending, so that qsort really moves elements. */
static int cmp_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x < y) - (x > y);
}

static void prepare_once(void)
{
	/*
	 * glibc's msort asks sysconf(_SC_PHYS_PAGES) (sysinfo(2)) once, the first time
	 * it sorts 1 KiB or more, and caches the answer. Refused, it would read an
	 * uninitialised struct: so sort something that big now.
	 */
	int probe[512];
	time_t t = 0;
	struct tm tm;

	for (size_t i = 0; i < ARRAY_SIZE(probe); i++)
		probe[i] = (int)i;
	qsort(probe, ARRAY_SIZE(probe), sizeof(probe[0]), cmp_desc);

	/*
	 * Without TZ, localtime(), mktime() and strftime() stat /etc/localtime on every
	 * call to see if it changed (a path lookup, refused under the filters: glibc
	 * would then fall back to UTC). With TZ naming the same file, glibc loads it
	 * once and keeps it. localtime_r loads it now, while the host's file is there.
	 */
	setenv("TZ", ":/etc/localtime", 0);
	localtime_r(&t, &tm);
}

void sandbox_libc_prepare(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, prepare_once);
}

/* ---- the refusals (sections used by allowlist.c) --------------------------------- */

#define REFUSE(sys, e, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ERRNO, .err = e, .why = why_ }
/* Refused with errno e if (argument a & m) == b; the other values are left to other rules. */
#define REFUSE_BITS(sys, a, m, b, e, why_) \
	{ .nr = SCMP_SYS(sys), .name = #sys, .kind = SC_ERRNO, .arg = a, .mask = m, .bits = b, \
	  .expr = "(arg" #a " & " #m ") == " #b, .err = e, .why = why_ }

#define LAZY "glibc's lazy look-ups (overcommit_memory, locale, time zone, nsswitch)"

static const struct sc_rule libc_refuse_rules[] = {
	REFUSE(open, EACCES, LAZY),
	REFUSE(openat, EACCES, LAZY),
	REFUSE(openat2, EACCES, LAZY),
	REFUSE(creat, EACCES, LAZY),
	REFUSE(stat, EACCES, LAZY),
	REFUSE(lstat, EACCES, LAZY),
	REFUSE_BITS(newfstatat, 3, AT_EMPTY_PATH, 0, EACCES,
		    LAZY "; fstat (AT_EMPTY_PATH) is the io section's"),
	REFUSE(statx, EACCES, LAZY),
	REFUSE(access, EACCES, LAZY),
	REFUSE(faccessat, EACCES, LAZY),
	REFUSE(faccessat2, EACCES, LAZY),
	REFUSE(readlink, EACCES, LAZY),
	REFUSE(readlinkat, EACCES, LAZY),
};
const struct sc_section sc_sec_libc_refuse = {
	"libc_refuse", libc_refuse_rules, ARRAY_SIZE(libc_refuse_rules)
};

/* The main thread (and the migration thread it starts) resolves migration peers' names. */
static const struct sc_rule libc_main_rules[] = {
	{ .nr = SCMP_SYS(sendmmsg), .name = "sendmmsg", .kind = SC_ALLOW,
	  .why = "glibc's resolver sends the A and AAAA queries of getaddrinfo together" },
	{ .nr = SCMP_SYS(uname), .name = "uname", .kind = SC_ALLOW,
	  .why = "glibc's resolver: gethostname() for the default domain, on every load of "
		 "resolv.conf (getaddrinfo of any name)" },
};
const struct sc_section sc_sec_libc_main = {
	"libc_main", libc_main_rules, ARRAY_SIZE(libc_main_rules)
};
