/* SPDX-License-Identifier: MIT */
/*
 * Secret key files: a key written as hex digits (openssl rand -hex 32), in a regular
 * file that only its owner may read. Shared by plinth's --migrate-psk and plinthd's
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

#endif
