// SPDX-License-Identifier: MIT
/* keyfile_read_hex(): the key file shared by --migrate-psk and --cluster-key;
 * keyfile_read_line(): the password file of --display vnc=tcp:...,password-file=. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "keyfile.h"
#include "log.h"

struct fixture {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/plinth-test-keyfile-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/key", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char link[112];

	snprintf(link, sizeof(link), "%s/link", f->dir);
	unlink(link);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void put(const struct fixture *f, const char *text, size_t len, mode_t mode)
{
	int fd;

	unlink(f->path);
	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* keyfile_read_hex() with min 32 and max 64 bytes, its error sentence in err. */
static int load(const struct fixture *f, unsigned char key[64], size_t *len, char *err)
{
	struct log_capture c;
	int ret;

	log_capture_begin(&c);
	ret = keyfile_read_hex("--test-key", f->path, key, 32, 64, len);
	log_capture_end(&c);
	strcpy(err, c.first_error);
	assert_int_equal(c.errors, ret ? 1 : 0);
	return ret;
}

static void test_reads_hex_with_whitespace(void **state)
{
	const struct fixture *f = *state;
	char text[200], err[512];
	unsigned char key[64];
	size_t len = 0, i;

	/* 32 bytes 00 01 .. 1f, upper and lower case, split by spaces and newlines. */
	text[0] = '\0';
	for (i = 0; i < 32; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), i % 2 ? "%02X\n" : "%02x ",
			 (unsigned int)i);
	put(f, text, strlen(text), 0600);
	assert_int_equal(load(f, key, &len, err), 0);
	assert_int_equal(len, 32);
	for (i = 0; i < 32; i++)
		assert_int_equal(key[i], i);
	assert_string_equal(err, "");

	/* The longest key: 64 bytes. */
	memset(text, 'a', 128);
	text[128] = '\n';
	put(f, text, 129, 0400);
	assert_int_equal(load(f, key, &len, err), 0);
	assert_int_equal(len, 64);
	assert_int_equal(key[63], 0xaa);
}

static void test_missing_file(void **state)
{
	const struct fixture *f = *state;
	unsigned char key[64];
	size_t len = 99;
	char err[512];

	assert_int_equal(load(f, key, &len, err), -ENOENT);
	assert_non_null(strstr(err, "--test-key: cannot open"));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(len, 99);
}

static void test_wrong_mode_or_type(void **state)
{
	const struct fixture *f = *state;
	unsigned char key[64];
	char text[65], link[112], err[512];
	size_t len = 99;
	struct fixture d = *f;

	memset(text, '1', 64);
	put(f, text, 64, 0640);
	assert_int_equal(load(f, key, &len, err), -EPERM);
	assert_non_null(strstr(err, "readable by its owner only (chmod 600)"));
	put(f, text, 64, 0604);
	assert_int_equal(load(f, key, &len, err), -EPERM);

	/* A symbolic link is not followed, even to a good file. */
	put(f, text, 64, 0600);
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	strcpy(d.path, link);
	assert_int_equal(load(&d, key, &len, err), -ELOOP);

	/* A directory is not a key file. */
	strcpy(d.path, f->dir);
	chmod(f->dir, 0700);
	assert_int_equal(load(&d, key, &len, err), -EPERM);
	assert_int_equal(len, 99);
}

static void test_wrong_length_or_digits(void **state)
{
	const struct fixture *f = *state;
	unsigned char key[64];
	char text[KEYFILE_MAX + 2], err[512];
	size_t len = 99, i;

	/* Too short: 31 bytes. */
	memset(text, 'f', 62);
	put(f, text, 62, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);
	assert_non_null(strstr(err, "must hold 32 to 64 bytes as hex digits"));
	for (i = 0; i < sizeof(key); i++)
		assert_int_equal(key[i], 0);

	/* Too long: 65 bytes. */
	memset(text, 'f', 130);
	put(f, text, 130, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);

	/* An odd number of digits. */
	memset(text, 'f', 65);
	put(f, text, 65, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);

	/* A character that is not hex. */
	memset(text, 'f', 64);
	text[10] = 'g';
	put(f, text, 64, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);

	/* An empty file. */
	put(f, text, 0, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);

	/* A file larger than any key file (a good key followed by whitespace). */
	memset(text, ' ', sizeof(text));
	memset(text, 'f', 64);
	put(f, text, KEYFILE_MAX + 1, 0600);
	assert_int_equal(load(f, key, &len, err), -EINVAL);
	assert_non_null(strstr(err, "file too large"));
	/* ... but exactly KEYFILE_MAX bytes is fine. */
	put(f, text, KEYFILE_MAX, 0600);
	assert_int_equal(load(f, key, &len, err), 0);
	assert_int_equal(len, 32);
}

/* A one-line password: the first line only; the same refusals as keys. */
static void test_read_line(void **state)
{
	const struct fixture *f = *state;
	char pw[9], link[112];

	put(f, "secret\r\nnext\n", 14, 0600);
	assert_int_equal(keyfile_read_line("--test-pw", f->path, pw, sizeof(pw)), 0);
	assert_string_equal(pw, "secret");
	put(f, "12345678", 8, 0400);
	assert_int_equal(keyfile_read_line("--test-pw", f->path, pw, sizeof(pw)), 0);
	assert_string_equal(pw, "12345678");
	put(f, "123456789\n", 10, 0600); /* too long for the buffer */
	assert_int_equal(keyfile_read_line("--test-pw", f->path, pw, sizeof(pw)), -EINVAL);
	put(f, "\nsecret\n", 8, 0600); /* an empty first line */
	assert_int_equal(keyfile_read_line("--test-pw", f->path, pw, sizeof(pw)), -EINVAL);
	put(f, "secret\n", 7, 0640); /* readable by the group */
	assert_int_equal(keyfile_read_line("--test-pw", f->path, pw, sizeof(pw)), -EPERM);
	put(f, "secret\n", 7, 0600);
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(keyfile_read_line("--test-pw", link, pw, sizeof(pw)), -ELOOP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_hex_with_whitespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_mode_or_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_length_or_digits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
