/* SPDX-License-Identifier: MIT */
/*
 * A shared library loaded at run time (dlopen) instead of by the dynamic loader at exec.
 *
 * Why: plinth needs GnuTLS (a migration's TLS) only when a migration has a key, and
 * GnuTLS brings eight more libraries: loading them at exec cost 37 of the 67 ms a
 * `plinth --version` took to start in the emulated host (bench/results.md, snapshot
 * restore). Loaded here, when first needed and before the jail and filters. (The
 * control API used libmicrohttpd, which links GnuTLS, the same way until it got a
 * server of its own: vmm/api/http.h.)
 */
#ifndef PLINTH_COMMON_DYNLIB_H
#define PLINTH_COMMON_DYNLIB_H

#include <pthread.h>
#include <stddef.h>

struct dynlib {
	const char *soname;	  /* as the linker would record it: "libfoo.so.N" */
	const char *const *names; /* the symbols to resolve, n of them */
	void **addrs;		  /* their addresses, filled in by the load */
	size_t n;
	/* Internal, zero-initialized: */
	pthread_mutex_t lock; /* PTHREAD_MUTEX_INITIALIZER */
	int state;	      /* 0 not loaded, 1 loaded, -1 failed */
	char err[256];	      /* why it failed */
};

/* Entries of a struct of function pointers and of the name list, from one X-macro list. */
#define DYNLIB_FIELD(name) __typeof__(&name) name;
#define DYNLIB_NAME(name)  #name,
/* A struct dynlib for soname, filling table (a struct of pointers) from names (an array). */
#define DYNLIB_INIT(so, names_, table)                                                             \
	{                                                                                          \
		.soname = (so), .names = (names_), .addrs = (void **)&(table),                     \
		.n = sizeof(names_) / sizeof((names_)[0]), .lock = PTHREAD_MUTEX_INITIALIZER,      \
	}

/*
 * l loaded with every symbol resolved: loads it now or says how that went. Must first run
 * before any seccomp filter or jail (it opens the library by name); later calls only
 * return the outcome. 0, or -1 with the reason logged (each call).
 */
int dynlib_load(struct dynlib *l);

#endif
