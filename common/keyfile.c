// SPDX-License-Identifier: MIT
/* Secret key files (see keyfile.h). */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Decode n bytes of hex digits and whitespace into key (max bytes): the number of
 * digits, or 0 if a character is not hex or the key would exceed max. */
static size_t decode_hex(const char *buf, size_t n, unsigned char *key, size_t max)
{
	size_t nib = 0, i;
	int v;

	for (i = 0; i < n; i++) {
		if (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			continue;
		v = hex_value((unsigned char)buf[i]);
		if (v < 0 || nib / 2 >= max)
			return 0;
		if (nib % 2 == 0)
			key[nib / 2] = (unsigned char)(v << 4);
		else
			key[nib / 2] |= (unsigned char)v;
		nib++;
	}
	return nib;
}

/* Read the whole of path (checked as keyfile.h says) into buf (KEYFILE_MAX + 1 bytes;
 * the caller wipes it): its length, or -errno after one error line. */
static ssize_t read_secret(const char *what, const char *path, char *buf)
{
	struct stat st;
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = errno;
		log_error("%s: cannot open %s: %s", what, path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		log_error("%s: %s must be a regular file readable by its owner only (chmod 600)",
			  what, path);
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, KEYFILE_MAX + 1);
	err = errno;
	close(fd);
	if (n < 0 || n > KEYFILE_MAX) {
		log_error("%s: %s: %s", what, path, n < 0 ? strerror(err) : "file too large");
		return -EINVAL;
	}
	return n;
}

int keyfile_read_hex(const char *what, const char *path, unsigned char *key, size_t min,
		     size_t max, size_t *len)
{
	char buf[KEYFILE_MAX + 1];
	size_t nib;
	ssize_t n = read_secret(what, path, buf);

	if (n < 0) {
		explicit_bzero(buf, sizeof(buf));
		return (int)n;
	}
	nib = decode_hex(buf, (size_t)n, key, max);
	explicit_bzero(buf, sizeof(buf));
	if (nib % 2 || nib / 2 < min) {
		log_error("%s: %s must hold %zu to %zu bytes as hex digits (e.g. openssl rand "
			  "-hex 32)", what, path, min, max);
		explicit_bzero(key, max);
		return -EINVAL;
	}
	*len = nib / 2;
	return 0;
}

int keyfile_read_line(const char *what, const char *path, char *out, size_t max)
{
	char buf[KEYFILE_MAX + 1];
	ssize_t n = read_secret(what, path, buf);
	size_t len;

	if (n < 0) {
		explicit_bzero(buf, sizeof(buf));
		return (int)n;
	}
	/* The first line, without its end. */
	for (len = 0; len < (size_t)n && buf[len] != '\n' && buf[len] != '\r' && buf[len]; len++)
		;
	if (!len || len >= max) {
		explicit_bzero(buf, sizeof(buf));
		log_error("%s: %s must hold one line of 1 to %zu bytes", what, path, max - 1);
		return -EINVAL;
	}
	memcpy(out, buf, len);
	out[len] = 0;
	explicit_bzero(buf, sizeof(buf));
	return 0;
}
