/* SPDX-License-Identifier: MIT */
/*
 * Secret key files: a key written as hex digits (openssl rand -hex 32), or a one-line
 * password, in a regular file that only its owner may read. Shared by plinth's --migrate-psk and plinthd's
 * --cluster-key. Knows nothing of what the key is for.
 */
#ifndef PLINTH_COMMON_KEYFILE_H
#define PLINTH_COMMON_KEYFILE_H

#include <stddef.h>

#define KEYFILE_MAX 1024 /* bytes of a key file: hex digits and whitespace */

/*
 * Read the key in path into key (the caller's buffer of max bytes; it wipes it when
 * done) and its length into *len. Whitespace between digits is ignored. The key must
 * decode to min..max bytes (max <= KEYFILE_MAX / 2). The file is opened without
 * following a symbolic link and must be a regular file with no group or other
 * permission bits. 0, or -errno after one error line that starts with what (the
 * option's name, e.g. "--migrate-psk"): -ENOENT etc. (cannot open), -EPERM (not a
 * regular file, or readable by others), -EINVAL (too large, not hex, wrong length).
 * On failure key holds nothing of the file.
 */
int keyfile_read_hex(const char *what, const char *path, unsigned char *key, size_t min,
		     size_t max, size_t *len);

/*
 * Read the first line of path (same checks as above; its line end dropped) into out,
 * the caller's buffer of max bytes, NUL-terminated; it must be 1..max-1 bytes. The
 * caller wipes out when done. 0 or -errno after one error line starting with what.
 */
int keyfile_read_line(const char *what, const char *path, char *out, size_t max);

#endif
