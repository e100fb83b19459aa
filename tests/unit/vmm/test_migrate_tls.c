// SPDX-License-Identifier: MIT
/*
 * The migration channel (vmm/migrate_tls.c): a state stream over TLS 1.3 PSK between
 * two threads of a child that runs under the main thread's seccomp filter (as the
 * destination's main thread and the source's migration thread do); a peer with
 * another key is refused at the handshake; bad key files are refused with a line.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../sandbox/child.h"
#include "migrate_tls.h"
#include "sandbox.h"
#include "state/state.h"

#define CHECK(cond, code) do { if (!(cond)) return (code); } while (0)

static char dir[] = "/tmp/plinth-tls-XXXXXX";
static char key_a[64], key_b[64];
static struct child_result res;

/* More than one TLS record (16 KiB) in a section. */
#define BIG 100000
static uint8_t big_pattern[BIG];

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(key_a, sizeof(key_a), "%s/a", dir);
	snprintf(key_b, sizeof(key_b), "%s/b", dir);
	write_file(key_a, "00112233445566778899aabbccddeeff\n00112233445566778899AABBCCDDEEFF\n",
		   0600);
	write_file(key_b, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
		   0600);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

struct server {
	struct mig_tls *tls;
	int fd;
	int result;      /* 0, or which check failed */
	uint64_t value;  /* read from the stream */
	char err[256];
};

/* The destination: handshake, read one section and "end", ack. */
static void *server_thread(void *arg)
{
	struct server *s = arg;
	struct mig_tls_conn *c = mig_tls_handshake(s->tls, s->fd, s->err, sizeof(s->err));
	struct state_reader *r;
	struct state_io io;
	const void *big;
	uint8_t ack = 'A';
	uint32_t len;

	if (!c) {
		s->result = 1;
		return NULL;
	}
	mig_tls_io(c, &io);
	r = state_reader_new_io(&io, "stream");
	if (!r || state_reader_next_section(r) != 1 || strcmp(state_reader_type(r), "t") ||
	    state_get_u64(r, &s->value) || state_get_bytes_ref(r, &big, &len) ||
	    len != BIG || memcmp(big, big_pattern, BIG) || state_reader_end_section(r) ||
	    state_reader_next_section(r) != 0)
		s->result = 2;
	else if (mig_tls_send(c, &ack, 1))
		s->result = 3;
	if (r && s->result)
		snprintf(s->err, sizeof(s->err), "%s", state_reader_error(r));
	state_reader_free(r);
	mig_tls_close(c);
	return NULL;
}

/* arg: the client's key file. The whole exchange under SANDBOX_MAIN. */
static int body_exchange(void *arg)
{
	struct server s = { .tls = mig_tls_new(key_a, true) };
	struct mig_tls *client = mig_tls_new(arg, false);
	struct mig_tls_conn *c;
	struct state_writer *w;
	struct state_io io;
	char err[256];
	int sv[2];
	uint8_t ack = 0;
	pthread_t t;

	CHECK(s.tls && client, 100);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, 101);
	CHECK(sandbox_seccomp_install(SANDBOX_MAIN) == 0, 102);
	s.fd = sv[1];
	CHECK(pthread_create(&t, NULL, server_thread, &s) == 0, 103);
	c = mig_tls_handshake(client, sv[0], err, sizeof(err));
	if (!c) {
		pthread_join(t, NULL);
		fprintf(stderr, "client: %s\nserver: %s\n", err, s.err);
		return 10;
	}
	mig_tls_io(c, &io);
	w = state_writer_new_io(&io, "stream");
	CHECK(w, 11);
	state_writer_begin_section(w, "t", 0, 0);
	state_put_u64(w, 0x1122334455667788ull);
	state_put_bytes(w, big_pattern, BIG);
	CHECK(state_writer_end_section(w) == 0, 12);
	CHECK(state_writer_finish(w) == 0, 13);
	state_writer_free(w);
	CHECK(mig_tls_recv(c, &ack, 1) == 0 && ack == 'A', 14);
	mig_tls_close(c);
	pthread_join(t, NULL);
	if (s.result) {
		fprintf(stderr, "server %d: %s\n", s.result, s.err);
		return 20 + s.result;
	}
	CHECK(s.value == 0x1122334455667788ull, 30);
	return 0;
}

static void test_exchange_filtered(void **state)
{
	(void)state;
	for (size_t i = 0; i < BIG; i++)
		big_pattern[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(run_child(body_exchange, key_a, &res), 0);
	if (!child_exited(&res, 0))
		fail_msg("status %#x: %s", res.status, res.err);
}

/* Another key: both sides fail the handshake, with a line that says so. */
static void test_wrong_key(void **state)
{
	(void)state;
	assert_int_equal(run_child(body_exchange, key_b, &res), 0);
	if (!child_exited(&res, 10))
		fail_msg("status %#x: %s", res.status, res.err);
	assert_non_null(strstr(res.err, "does not hold this cluster's migration key"));
}

static void test_bad_key_files(void **state)
{
	char path[96];

	(void)state;
	snprintf(path, sizeof(path), "%s/short", dir);
	write_file(path, "0011223344556677", 0600);
	assert_null(mig_tls_new(path, false));
	snprintf(path, sizeof(path), "%s/nothex", dir);
	write_file(path, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		   0600);
	assert_null(mig_tls_new(path, true));
	snprintf(path, sizeof(path), "%s/odd", dir);
	write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0",
		   0600);
	assert_null(mig_tls_new(path, true));
	snprintf(path, sizeof(path), "%s/open", dir);
	write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		   0644);
	assert_null(mig_tls_new(path, true));
	assert_null(mig_tls_new("/nonexistent/key", true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_filtered),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_bad_key_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
