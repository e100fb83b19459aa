/* SPDX-License-Identifier: MIT */
/* Shared by the image library's unit tests: temp files, patterns, a shadow-checked workout. */
#ifndef PLINTH_TEST_IMG_HELPERS_H
#define PLINTH_TEST_IMG_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "img-internal.h"

/* A fresh temp directory (per process) and a path inside it; returned string is static storage of the caller. */
void tmp_path(char *buf, size_t len, const char *name);
void fill_pattern(uint8_t *buf, size_t len, uint64_t seed);
/*
 * Create an image of `size` with fmt/opts, write a mix of aligned, unaligned,
 * granule-crossing writes, zeroes and discards, checking every read against an
 * in-memory shadow, then reopen read-only and compare everything again.
 */
void workout(const char *fmt, const char *opts, uint64_t size);
/* Read the whole image and compare with expected (size bytes). */
void assert_content(struct pimg *img, const uint8_t *expected, uint64_t size);
/*
 * Flip bytes of a copy of path (n_iter times, within the first `span` bytes)
 * and open/read/check the result: must fail cleanly or succeed, never crash.
 */
void mutate_and_open(const char *path, const char *fmt, uint64_t span, int n_iter);
/* Fault-injecting file ops: fail every pwrite once `budget` writes have been made (-1: never). */
extern long fault_write_budget;
extern uint64_t fault_lo, fault_hi; /* when lo < hi: fail only writes touching [lo, hi) */
extern long fault_sync_failures;    /* fail this many syncs (fdatasync), then succeed */
extern const struct pimg_file_ops fault_ops;
/* The same with vectored transfers (merged batches, the helper's halves); fault_lo/hi only
 * for writes, fault_read_lo/hi for reads; fault_vec_writes counts its pwritev calls. */
extern const struct pimg_file_ops fault_vec_ops;
extern uint64_t fault_read_lo, fault_read_hi;
extern unsigned long fault_vec_writes;
/* pimg_open allowing external files (backing files, parents, extents) in the image's
 * own directory. */
struct pimg *open_ext(const char *path, const char *fmt, unsigned flags);
/* Write the file, overwriting. */
void write_file(const char *path, const void *buf, size_t len);
void corrupt(const char *path, uint64_t off, const void *bytes, size_t len);

#endif
