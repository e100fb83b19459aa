/* SPDX-License-Identifier: MIT */
/*
 * The seccomp allowlists as data: which syscalls each thread kind may make and
 * with which arguments. seccomp.c turns them into filters and prints them; the
 * tables themselves live in allowlist.c, one section per purpose.
 */
#ifndef PLINTH_VMM_SANDBOX_ALLOWLIST_H
#define PLINTH_VMM_SANDBOX_ALLOWLIST_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

/* A named constant an argument may equal (an ioctl request, a socket family...). */
struct sc_value {
	uint64_t value;
	const char *name;
};

enum sc_rule_kind {
	SC_ALLOW,      /* allowed, whatever the arguments */
	SC_ALLOW_IN,   /* allowed if (arg & mask) equals one of values[] */
	SC_ALLOW_BITS, /* allowed if (arg & mask) == bits: required set, forbidden clear */
	SC_ALLOW_SELF, /* allowed if arg is the calling process's pid (tgkill) */
	SC_ERRNO,      /* refused with errno err, not trapped (clone3: glibc falls back);
			* if mask is set, only when (arg & mask) == bits */
};

struct sc_rule {
	int nr;                         /* SCMP_SYS(name) */
	const char *name;               /* the syscall's name */
	enum sc_rule_kind kind;
	unsigned int arg;               /* argument index tested (IN, BITS, SELF) */
	uint64_t mask;                  /* bits of the argument tested (IN, BITS) */
	uint64_t bits;                  /* required value of arg & mask (BITS) */
	const char *expr;               /* the BITS test as written, for printing */
	const struct sc_value *values;  /* allowed values (IN) */
	size_t nr_values;
	int err;                        /* errno returned (ERRNO) */
	const char *why;                /* one line: who needs it */
};

struct sc_section {
	const char *name;               /* "base", "kvm-vcpu"... */
	const struct sc_rule *rules;
	size_t nr_rules;
};

/* The sections that make up the allowlist of a thread kind, in order. */
struct sc_policy {
	const struct sc_section *const *sections;
	size_t nr_sections;
};

const struct sc_policy *sc_policy_of(enum sandbox_thread kind);
/* SANDBOX_MAIN_RUN with what keep (SANDBOX_KEEP_* of sandbox.h) puts back. */
const struct sc_policy *sc_policy_main_run(unsigned int keep);

/*
 * The C library's sections (libc.c): path look-ups refused with EACCES on the
 * filtered kinds, and what glibc's resolver needs on MAIN.
 */
extern const struct sc_section sc_sec_libc_refuse;
extern const struct sc_section sc_sec_libc_main;

#endif
