/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every part of plinth: overflow-checked arithmetic for
 * sizes that a guest or a file controls, size parsing, full reads and writes.
 * Knows nothing of VMs or images.
 */
#ifndef PLINTH_COMMON_UTIL_H
#define PLINTH_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* Milliseconds of CLOCK_MONOTONIC: for intervals this process measures itself. */
static inline uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Overflow-checked arithmetic: return true on overflow, like the builtins they wrap. */
#define add_overflow(a, b, res) __builtin_add_overflow(a, b, res)
#define mul_overflow(a, b, res) __builtin_mul_overflow(a, b, res)

/* True when [off, off+len) lies inside [0, size), with no wrap-around. */
static inline bool range_within(uint64_t off, uint64_t len, uint64_t size)
{
	uint64_t end;

	if (add_overflow(off, len, &end))
		return false;
	return end <= size;
}

/* The len (1..8) little-endian bytes at p, as a number; and v stored so. */
static inline uint64_t get_le(const void *p, unsigned int len)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	while (len--)
		v = (v << 8) | b[len];
	return v;
}

static inline void put_le(void *p, uint64_t v, unsigned int len)
{
	uint8_t *b = p;
	unsigned int i;

	for (i = 0; i < len; i++, v >>= 8)
		b[i] = (uint8_t)v;
}

static inline bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/*
 * Parse a size such as "512M", "2G", "4096", "64K" (suffixes K, M, G, T, binary,
 * case-insensitive, optional trailing "B" or "iB"). Returns 0 or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* The value of hex digit c (either case), or -1. */
int hex_value(int c);

/* Parse an unsigned decimal integer in [min, max]. Returns 0 or -EINVAL / -ERANGE. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Read or write exactly len bytes at off, retrying on EINTR and short transfers. 0 or -errno. */
int pread_full(int fd, void *buf, size_t len, off_t off);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);

/*
 * Fault in the pages of a mapping that [p, p + len) touches with one madvise call
 * (MADV_POPULATE_WRITE if write, else MADV_POPULATE_READ) rather than a trap per page:
 * in the emulated host, the traps made filling untouched guest memory 3-20 times slower.
 * Nothing is read or written. True if done; false where the kernel lacks the call (before
 * Linux 5.14) or a page cannot be had: the pages then fault as they are touched.
 */
bool mem_populate(const void *p, size_t len, bool write);

/* Write all of buf to a stream fd (pipe, socket, tty). 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);
/* Replace the file at path with buf, atomically: PATH.tmp (created with mode, never
 * through a symlink), written, fsynced, renamed over path; the temporary is removed on
 * failure. 0, -ENAMETOOLONG, or -errno. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* Replace every byte outside printable ASCII in s with '?': one safe line (and valid
 * UTF-8) for a message that quotes bytes a client, guest or file sent. */
void str_printable(char *s);

#endif
