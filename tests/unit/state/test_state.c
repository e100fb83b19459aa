// SPDX-License-Identifier: MIT
/* Unit tests of the state container (vmm/state/state.h): round trips on files, memory
 * and streams; and every damage we can think of: versions, truncation at each byte,
 * every single-bit flip, absurd lengths, missing or extra sections. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "state.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* What the sample writer stores and the loaders check. */
struct sample {
	uint64_t rip[2];
	uint8_t xsave[2][512];
	uint32_t dev_features;
	bool dev_ready;
	uint16_t q_size;
	int vcpus_seen, devs_seen, opt_seen;
};

static void sample_init(struct sample *s)
{
	int i, j;

	memset(s, 0, sizeof(*s));
	s->rip[0] = 0xffffffff81000000ULL;
	s->rip[1] = 0x1234;
	for (i = 0; i < 2; i++)
		for (j = 0; j < 512; j++)
			s->xsave[i][j] = (uint8_t)(i * 31 + j);
	s->dev_features = 0xdeadbeef;
	s->dev_ready = true;
	s->q_size = 256;
}

/* Write the sample: two vCPUs, one device, one optional section. */
static int write_sample(int fd, const struct sample *s, bool with_optional)
{
	struct state_writer *w = state_writer_new_fd(fd, "test state");
	uint32_t i;
	int ret;

	assert_non_null(w);
	for (i = 0; i < 2; i++) {
		state_writer_begin_section(w, "vcpu", i, 0);
		state_put_u64(w, s->rip[i]);
		state_put_u8(w, 0x5a);
		state_put_bytes(w, s->xsave[i], sizeof(s->xsave[i]));
		state_writer_end_section(w);
	}
	state_writer_begin_section(w, "virtio-blk", 3, 0);
	state_put_u32(w, s->dev_features);
	state_put_bool(w, s->dev_ready);
	state_put_u16(w, s->q_size);
	state_put_bytes(w, "", 0);
	state_writer_end_section(w);
	if (with_optional) {
		state_writer_begin_section(w, "future.thing", 0, STATE_SECTION_OPTIONAL);
		state_put_u64(w, 42);
		state_writer_end_section(w);
	}
	ret = state_writer_finish(w);
	if (ret)
		fprintf(stderr, "# %s\n", state_writer_error(w));
	state_writer_free(w);
	return ret;
}

static int load_vcpu(void *ctx, struct state_reader *r, uint32_t id)
{
	struct sample *s = ctx;
	uint8_t magic;

	if (id >= 2)
		return state_reader_fail(r, -EINVAL, "no vCPU %u", id);
	if (state_get_u64(r, &s->rip[id]) || state_get_u8(r, &magic) ||
	    state_get_bytes(r, s->xsave[id], sizeof(s->xsave[id])))
		return -EPROTO;
	if (magic != 0x5a)
		return state_reader_fail(r, -EINVAL, "bad marker %#x", magic);
	s->vcpus_seen++;
	return 0;
}

static int load_dev(void *ctx, struct state_reader *r, uint32_t id)
{
	struct sample *s = ctx;
	uint32_t n;
	char empty[1];

	if (state_get_u32(r, &s->dev_features) || state_get_bool(r, &s->dev_ready) ||
	    state_get_u16(r, &s->q_size) || state_get_bytes_var(r, empty, sizeof(empty), &n))
		return -EPROTO;
	assert_int_equal(n, 0);
	s->devs_seen++;
	return 0;
}

static const struct state_section_loader loaders[] = {
	{"vcpu", load_vcpu},
	{"virtio-blk", load_dev},
};

/* Read every section of a reader into a fresh sample; returns the reader's result. */
static int load(struct state_reader *r, struct sample *out)
{
	memset(out, 0, sizeof(*out));
	return state_reader_load_all(r, loaders, 2, out);
}

static void check_sample(const struct sample *got, const struct sample *want)
{
	assert_int_equal(got->vcpus_seen, 2);
	assert_int_equal(got->devs_seen, 1);
	assert_int_equal(got->rip[0], want->rip[0]);
	assert_int_equal(got->rip[1], want->rip[1]);
	assert_memory_equal(got->xsave, want->xsave, sizeof(want->xsave));
	assert_int_equal(got->dev_features, want->dev_features);
	assert_true(got->dev_ready);
	assert_int_equal(got->q_size, want->q_size);
}

/* The sample's bytes, from a memfd; *len set. Caller frees. */
static uint8_t *sample_bytes(size_t *len, bool with_optional)
{
	struct sample s;
	int fd = memfd_create("state", 0);
	off_t end;
	uint8_t *buf;

	assert_true(fd >= 0);
	sample_init(&s);
	assert_int_equal(write_sample(fd, &s, with_optional), 0);
	end = lseek(fd, 0, SEEK_END);
	assert_true(end > 0);
	buf = malloc((size_t)end);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
	close(fd);
	*len = (size_t)end;
	return buf;
}

static int load_mem(const uint8_t *buf, size_t len, struct sample *out, char *msg, size_t msglen)
{
	struct state_reader *r = state_reader_new_mem(buf, len, "test state");
	int ret;

	assert_non_null(r);
	ret = load(r, out);
	if (msg)
		snprintf(msg, msglen, "%s", state_reader_error(r));
	state_reader_free(r);
	return ret;
}

static void test_round_trip_file(void **unused)
{
	struct sample want, got;
	struct state_reader *r;
	int fd = memfd_create("state", 0);

	(void)unused;
	sample_init(&want);
	assert_int_equal(write_sample(fd, &want, true), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "test state");
	assert_non_null(r);
	assert_int_equal(load(r, &got), 0);
	assert_string_equal(state_reader_error(r), "");
	check_sample(&got, &want);
	/* After the end, the reader stays at the end. */
	assert_int_equal(state_reader_next_section(r), 0);
	state_reader_free(r);
	close(fd);
}

static void test_round_trip_mem(void **unused)
{
	struct sample want, got;
	size_t len;
	uint8_t *buf = sample_bytes(&len, false);

	(void)unused;
	sample_init(&want);
	assert_int_equal(load_mem(buf, len, &got, NULL, 0), 0);
	check_sample(&got, &want);
	free(buf);
}

/* Manual iteration: types, ids, flags and remaining bytes as written. */
static void test_iterate(void **unused)
{
	size_t len;
	uint8_t *buf = sample_bytes(&len, true);
	struct state_reader *r = state_reader_new_mem(buf, len, "t");
	const void *p;
	uint32_t n;
	uint64_t v;

	(void)unused;
	assert_int_equal(state_reader_next_section(r), 1);
	assert_string_equal(state_reader_type(r), "vcpu");
	assert_int_equal(state_reader_id(r), 0);
	assert_int_equal(state_reader_remaining(r), 9 + 2 + 5 + 512);
	assert_int_equal(state_get_u64(r, &v), 0);
	assert_int_equal(state_reader_remaining(r), 2 + 5 + 512);
	/* Leaving bytes unread is refused. */
	assert_int_equal(state_reader_end_section(r), -EPROTO);
	assert_non_null(strstr(state_reader_error(r), "section 'vcpu'[0]: 519 bytes left unread"));
	/* Sticky. */
	assert_int_equal(state_reader_next_section(r), -EPROTO);
	assert_int_equal(state_get_bytes_ref(r, &p, &n), -EPROTO);
	state_reader_free(r);
	free(buf);
}

struct pump {
	int fd;
	const uint8_t *buf;
	size_t len;
};

static void *pump_thread(void *arg)
{
	struct pump *p = arg;
	size_t off = 0;

	while (off < p->len) {
		ssize_t n = write(p->fd, p->buf + off, MIN(p->len - off, (size_t)7919));

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(p->fd);
	return NULL;
}

/* Feed buf into a pipe from a thread, in odd-sized pieces; return the read end. */
static int pipe_feed(const uint8_t *buf, size_t len, pthread_t *th, struct pump *p)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	p->fd = fds[1];
	p->buf = buf;
	p->len = len;
	assert_int_equal(pthread_create(th, NULL, pump_thread, p), 0);
	return fds[0];
}

static void test_round_trip_stream(void **unused)
{
	struct sample want, got;
	struct state_reader *r;
	struct pump p;
	pthread_t th;
	size_t len;
	uint8_t *buf = sample_bytes(&len, true);
	int fd = pipe_feed(buf, len, &th, &p);

	(void)unused;
	sample_init(&want);
	r = state_reader_new_fd(fd, "migration stream");
	assert_int_equal(load(r, &got), 0);
	check_sample(&got, &want);
	state_reader_free(r);
	pthread_join(th, NULL);
	close(fd);
	free(buf);
}

struct big_writer {
	int fd;
	uint8_t *data;
	uint32_t len;
	int ret;
};

static void *big_writer_thread(void *arg)
{
	struct big_writer *b = arg;
	struct state_writer *w = state_writer_new_fd(b->fd, "stream");

	state_writer_begin_section(w, "ram", 7, 0);
	state_put_bytes(w, b->data, b->len);
	state_put_u64(w, 99);
	state_writer_end_section(w);
	b->ret = state_writer_finish(w);
	state_writer_free(w);
	close(b->fd);
	return NULL;
}

/* A 5 MiB section over a socket: the stream reader grows its buffer as bytes arrive. */
static void test_big_section_socket(void **unused)
{
	struct big_writer b;
	struct state_reader *r;
	const void *p;
	uint32_t n, i;
	uint64_t v;
	pthread_t th;
	int sv[2];

	(void)unused;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	b.fd = sv[0];
	b.len = 5u << 20;
	b.data = malloc(b.len);
	assert_non_null(b.data);
	for (i = 0; i < b.len; i++)
		b.data[i] = (uint8_t)(i * 7 + (i >> 12));
	assert_int_equal(pthread_create(&th, NULL, big_writer_thread, &b), 0);
	r = state_reader_new_fd(sv[1], "stream");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_string_equal(state_reader_type(r), "ram");
	assert_int_equal(state_reader_id(r), 7);
	assert_int_equal(state_get_bytes_ref(r, &p, &n), 0);
	assert_int_equal(n, b.len);
	assert_memory_equal(p, b.data, b.len);
	assert_int_equal(state_get_u64(r, &v), 0);
	assert_int_equal(v, 99);
	assert_int_equal(state_reader_end_section(r), 0);
	assert_int_equal(state_reader_next_section(r), 0);
	pthread_join(th, NULL);
	assert_int_equal(b.ret, 0);
	state_reader_free(r);
	close(sv[1]);
	free(b.data);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void test_version_mismatch(void **unused)
{
	size_t len;
	uint8_t *buf = sample_bytes(&len, false);
	struct sample got;
	char msg[256];

	(void)unused;
	/* Another version with a valid header checksum: refused by version. */
	put32(buf + 8, 2);
	put32(buf + 20, (uint32_t)crc32(0, buf, 20));
	assert_int_equal(load_mem(buf, len, &got, msg, sizeof(msg)), -EPROTONOSUPPORT);
	assert_string_equal(msg, "test state: state format version 2, this plinth reads only "
				 "version 1");
	assert_int_equal(got.vcpus_seen, 0);
	/* The same change without fixing the checksum: damage, not another version. */
	put32(buf + 20, (uint32_t)crc32(0, buf, 20) ^ 1);
	assert_int_equal(load_mem(buf, len, &got, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "file header checksum mismatch"));
	/* Not our file at all. */
	memcpy(buf, "QFI\xfb\0\0\0\3", 8);
	assert_int_equal(load_mem(buf, len, &got, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "not a plinth state"));
	free(buf);
}

/* Every proper prefix of a valid file is refused (memory, file and pipe readers). */
static void test_truncation_every_byte(void **unused)
{
	size_t len, cut;
	uint8_t *buf = sample_bytes(&len, true);
	struct sample got;
	char msg[256];

	(void)unused;
	for (cut = 0; cut < len; cut++) {
		struct state_reader *r;
		struct pump p;
		pthread_t th;
		int ret, fd;

		ret = load_mem(buf, cut, &got, msg, sizeof(msg));
		if (ret != -ENODATA)
			fail_msg("prefix of %zu bytes: %d (%s)", cut, ret, msg);
		assert_non_null(strstr(msg, "truncated"));
		assert_null(strchr(msg, '\n'));

		fd = memfd_create("trunc", 0);
		assert_int_equal(write(fd, buf, cut), (ssize_t)cut);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		r = state_reader_new_fd(fd, "file");
		assert_int_equal(load(r, &got), -ENODATA);
		state_reader_free(r);
		close(fd);

		fd = pipe_feed(buf, cut, &th, &p);
		r = state_reader_new_fd(fd, "pipe");
		assert_int_equal(load(r, &got), -ENODATA);
		state_reader_free(r);
		pthread_join(th, NULL);
		close(fd);
	}
	free(buf);
}

/* Every single-bit flip anywhere is detected before a loader sees a wrong value. */
static void test_bit_flips(void **unused)
{
	size_t len, i;
	uint8_t *buf = sample_bytes(&len, true);
	struct sample want, got;
	char msg[256];
	int bit;

	(void)unused;
	sample_init(&want);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			int ret;

			buf[i] ^= (uint8_t)(1u << bit);
			ret = load_mem(buf, len, &got, msg, sizeof(msg));
			buf[i] ^= (uint8_t)(1u << bit);
			if (ret != -EBADMSG)
				fail_msg("flip byte %zu bit %d: %d (%s)", i, bit, ret, msg);
			assert_null(strchr(msg, '\n'));
			/* Loaders ran only for sections before the damage, with intact values. */
			if (got.vcpus_seen > 0)
				assert_int_equal(got.rip[0], want.rip[0]);
			if (got.vcpus_seen > 1)
				assert_int_equal(got.rip[1], want.rip[1]);
		}
	}
	assert_int_equal(load_mem(buf, len, &got, NULL, 0), 0);
	free(buf);
}

/* Offsets of the sections of a valid file; returns how many (end included). */
static size_t section_offsets(const uint8_t *buf, size_t len, size_t *off, size_t max)
{
	size_t pos = STATE_HEADER_SIZE, n = 0;

	while (pos < len && n < max) {
		uint64_t plen = 0;
		int i;

		for (i = 7; i >= 0; i--)
			plen = plen << 8 | buf[pos + 28 + i];
		off[n++] = pos;
		pos += STATE_SECTION_HDR + plen + 4;
	}
	assert_int_equal(pos, len);
	return n;
}

/* Valid sections, wrongly assembled: dropped, duplicated, swapped, missing end. */
static void test_whole_file_checks(void **unused)
{
	size_t len, off[8], n, s1, s2;
	uint8_t *buf = sample_bytes(&len, true);
	uint8_t *edit = malloc(len * 2);
	struct sample got;
	char msg[256];

	(void)unused;
	n = section_offsets(buf, len, off, 8);
	assert_int_equal(n, 5); /* vcpu 0, vcpu 1, virtio-blk, future.thing, end */
	/* Drop vcpu 1. */
	s1 = off[2] - off[1];
	memcpy(edit, buf, off[1]);
	memcpy(edit + off[1], buf + off[2], len - off[2]);
	assert_int_equal(load_mem(edit, len - s1, &got, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "end section counts"));
	/* Duplicate vcpu 1. */
	memcpy(edit, buf, off[2]);
	memcpy(edit + off[2], buf + off[1], s1);
	memcpy(edit + off[2] + s1, buf + off[2], len - off[2]);
	assert_int_equal(load_mem(edit, len + s1, &got, msg, sizeof(msg)), -EBADMSG);
	/* Swap vcpu 0 and vcpu 1 (same sizes, so only the whole-file crc can tell). */
	s2 = off[1] - off[0];
	assert_int_equal(s1, s2);
	memcpy(edit, buf, len);
	memcpy(edit + off[0], buf + off[1], s1);
	memcpy(edit + off[1], buf + off[0], s1);
	assert_int_equal(load_mem(edit, len, &got, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "whole-file checksum mismatch"));
	/* No end section: truncated, even though every section is whole. */
	assert_int_equal(load_mem(buf, off[4], &got, msg, sizeof(msg)), -ENODATA);
	/* Trailing garbage after the end, in memory and in a file. */
	memcpy(edit, buf, len);
	edit[len] = 0;
	assert_int_equal(load_mem(edit, len + 1, &got, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "after the end"));
	{
		int fd = memfd_create("extra", 0);
		struct state_reader *r;

		assert_int_equal(write(fd, edit, len + 1), (ssize_t)len + 1);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		r = state_reader_new_fd(fd, "file");
		assert_int_equal(load(r, &got), -EBADMSG);
		state_reader_free(r);
		close(fd);
	}
	free(edit);
	free(buf);
}

/* Build a file by hand: header + one section of raw payload (valid checksums) + end. */
static size_t forge(uint8_t *out, const char *type, uint32_t flags, uint64_t claimed_len,
		    const uint8_t *payload, uint32_t plen, bool with_end)
{
	size_t pos = 0, sec_start;
	uint32_t hcrc, fcrc;

	memcpy(out, STATE_MAGIC, 8);
	put32(out + 8, STATE_FORMAT_VERSION);
	put32(out + 12, STATE_HEADER_SIZE);
	put32(out + 16, 0);
	put32(out + 20, (uint32_t)crc32(0, out, 20));
	pos = STATE_HEADER_SIZE;
	sec_start = pos;
	put32(out + pos, STATE_SECTION_MAGIC);
	memset(out + pos + 4, 0, 16);
	memcpy(out + pos + 4, type, strlen(type));
	put32(out + pos + 20, 0);
	put32(out + pos + 24, flags);
	put64(out + pos + 28, claimed_len);
	hcrc = (uint32_t)crc32(0, out + pos, 36);
	put32(out + pos + 36, hcrc);
	pos += STATE_SECTION_HDR;
	memcpy(out + pos, payload, plen);
	put32(out + pos + plen, plen ? (uint32_t)crc32(hcrc, payload, plen) : hcrc);
	pos += plen + 4;
	(void)sec_start;
	if (with_end) {
		uint8_t endp[9 + 9 + 5];
		uint32_t ecrc;

		fcrc = (uint32_t)crc32(0, out, pos);
		endp[0] = STATE_TAG_U64;
		put64(endp + 1, 1);
		endp[9] = STATE_TAG_U64;
		put64(endp + 10, pos);
		endp[18] = STATE_TAG_U32;
		put32(endp + 19, fcrc);
		put32(out + pos, STATE_SECTION_MAGIC);
		memset(out + pos + 4, 0, 16);
		memcpy(out + pos + 4, "end", 3);
		put32(out + pos + 20, 0);
		put32(out + pos + 24, 0);
		put64(out + pos + 28, sizeof(endp));
		ecrc = (uint32_t)crc32(0, out + pos, 36);
		put32(out + pos + 36, ecrc);
		pos += STATE_SECTION_HDR;
		memcpy(out + pos, endp, sizeof(endp));
		put32(out + pos + sizeof(endp), (uint32_t)crc32(ecrc, endp, sizeof(endp)));
		pos += sizeof(endp) + 4;
	}
	return pos;
}

static void test_forge_is_valid(void **unused)
{
	uint8_t out[256], pl[9] = {STATE_TAG_U64, 1, 2, 3, 4, 5, 6, 7, 8};
	size_t n = forge(out, "thing", 0, sizeof(pl), pl, sizeof(pl), true);
	struct state_reader *r = state_reader_new_mem(out, n, "forged");
	uint64_t v;

	(void)unused;
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u64(r, &v), 0);
	assert_int_equal(v, 0x0807060504030201ULL);
	assert_int_equal(state_reader_end_section(r), 0);
	assert_int_equal(state_reader_next_section(r), 0);
	state_reader_free(r);
}

static int read_forged(const uint8_t *buf, size_t len, char *msg, size_t msglen)
{
	struct state_reader *r = state_reader_new_mem(buf, len, "forged");
	const void *p;
	uint32_t n;
	int ret = state_reader_next_section(r);

	if (ret == 1)
		ret = state_get_bytes_ref(r, &p, &n);
	snprintf(msg, msglen, "%s", state_reader_error(r));
	state_reader_free(r);
	return ret;
}

static void test_absurd_lengths(void **unused)
{
	static const uint64_t claims[] = {UINT64_MAX,	     UINT64_MAX - 3,
					  1ULL << 32,	     STATE_SECTION_MAX + 1ULL,
					  STATE_SECTION_MAX, 1000};
	uint8_t out[512], pl[16];
	char msg[256];
	size_t i, n;

	(void)unused;
	/* Section lengths beyond the limit or beyond the input. */
	for (i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
		int want = claims[i] > STATE_SECTION_MAX ? -EBADMSG : -ENODATA;

		n = forge(out, "ram", 0, claims[i], pl, 0, false);
		assert_int_equal(read_forged(out, n, msg, sizeof(msg)), want);
		assert_null(strchr(msg, '\n'));
	}
	/* Over a pipe, a claimed 255 MiB with 20 bytes behind it: truncated, not allocated. */
	{
		struct state_reader *r;
		struct pump p;
		pthread_t th;
		int fd;

		memset(pl, 0, sizeof(pl));
		n = forge(out, "ram", 0, STATE_SECTION_MAX - 1, pl, 16, false);
		fd = pipe_feed(out, n, &th, &p);
		r = state_reader_new_fd(fd, "pipe");
		assert_int_equal(state_reader_next_section(r), -ENODATA);
		state_reader_free(r);
		pthread_join(th, NULL);
		close(fd);
	}
	/* A bytes field whose length runs past its (checksummed) section. */
	pl[0] = STATE_TAG_BYTES;
	put32(pl + 1, 0xffffffffu);
	n = forge(out, "ram", 0, 5, pl, 5, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "runs past the section"));
	put32(pl + 1, 4); /* 4 claimed, 3 present */
	n = forge(out, "ram", 0, 8, pl, 8, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	/* A bytes field cut inside its own length. */
	n = forge(out, "ram", 0, 3, pl, 3, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	/* An unknown tag. */
	pl[0] = 0x77;
	n = forge(out, "ram", 0, 8, pl, 8, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EPROTO);
	assert_non_null(strstr(msg, "found unknown (119)"));
}

static void test_bad_headers(void **unused)
{
	uint8_t out[512], pl[1] = {0};
	char msg[256];
	size_t n;

	(void)unused;
	/* Invalid type characters or no NUL padding, with valid checksums. */
	n = forge(out, "Vcpu", 0, 0, pl, 0, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "invalid section type"));
	n = forge(out, "", 0, 0, pl, 0, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	n = forge(out, "abcdefghijklmnop", 0, 0, pl, 0, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	/* Unknown flags. */
	n = forge(out, "ok", 0x2, 0, pl, 0, true);
	assert_int_equal(read_forged(out, n, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "unknown flags"));
}

static void test_unknown_sections(void **unused)
{
	uint8_t out[512], pl[9] = {STATE_TAG_U64};
	struct sample got;
	char msg[256];
	size_t n;

	(void)unused;
	/* Unknown and mandatory: refused. */
	n = forge(out, "gpu", 0, 9, pl, 9, true);
	assert_int_equal(load_mem(out, n, &got, msg, sizeof(msg)), -EPROTO);
	assert_string_equal(msg, "test state: section 'gpu'[0]: unknown mandatory section");
	/* Unknown and optional: skipped. */
	n = forge(out, "gpu", STATE_SECTION_OPTIONAL, 9, pl, 9, true);
	assert_int_equal(load_mem(out, n, &got, msg, sizeof(msg)), 0);
	/* A loader that fails without a message gets a generic one. */
	n = forge(out, "vcpu", 0, 9, pl, 9, true);
	assert_int_equal(load_mem(out, n, &got, msg, sizeof(msg)), -EPROTO);
	assert_non_null(
		strstr(msg, "section 'vcpu'[0]: u8 field read past the end of the section"));
}

/* Reader and writer disagreeing on field types or sizes. */
static void test_field_mismatch(void **unused)
{
	int fd = memfd_create("mis", 0);
	struct state_writer *w = state_writer_new_fd(fd, "w");
	struct state_reader *r;
	uint8_t b4[4], b8[8];
	uint32_t v32, n;
	uint16_t v16;
	bool flag;

	(void)unused;
	state_writer_begin_section(w, "dev", 1, 0);
	state_put_u32(w, 5);
	state_put_u8(w, 2);
	state_put_bytes(w, "abcd", 4);
	state_put_bytes(w, "abcdefgh", 8);
	state_writer_end_section(w);
	assert_int_equal(state_writer_finish(w), 0);
	state_writer_free(w);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "r");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u16(r, &v16), -EPROTO);
	assert_string_equal(state_reader_error(r),
			    "r: section 'dev'[1]: expected a u16 field at payload offset 0, found "
			    "u32 (3)");
	state_reader_free(r);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "r");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u32(r, &v32), 0);
	assert_int_equal(state_get_bool(r, &flag), -EPROTO);
	assert_non_null(strstr(state_reader_error(r), "boolean field holds 2"));
	state_reader_free(r);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "r");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u32(r, &v32), 0);
	assert_int_equal(state_get_u8(r, b4), 0);
	assert_int_equal(state_get_bytes(r, b8, 8), -EPROTO);
	assert_non_null(strstr(state_reader_error(r), "bytes field of 4 bytes, 8 expected"));
	state_reader_free(r);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "r");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u32(r, &v32), 0);
	assert_int_equal(state_get_u8(r, b4), 0);
	assert_int_equal(state_get_bytes(r, b4, 4), 0);
	assert_memory_equal(b4, "abcd", 4);
	assert_int_equal(state_get_bytes_var(r, b4, 4, &n), -EPROTO);
	state_reader_free(r);

	/* Reading past the end of a section. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "r");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_int_equal(state_get_u32(r, &v32), 0);
	assert_int_equal(state_get_u8(r, b4), 0);
	assert_int_equal(state_get_bytes(r, b4, 4), 0);
	assert_int_equal(state_get_bytes_var(r, b8, 8, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(state_get_u8(r, b4), -EPROTO);
	assert_non_null(strstr(state_reader_error(r), "past the end of the section"));
	state_reader_free(r);
	close(fd);
}

static void test_writer_misuse(void **unused)
{
	int fd = memfd_create("w", 0);
	struct state_writer *w;

	(void)unused;
	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "end", 0, 0), -EINVAL);
	assert_string_equal(state_writer_error(w), "w: invalid section type 'end'");
	state_writer_free(w);

	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "Bad", 0, 0), -EINVAL);
	state_writer_free(w);
	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "sixteen-chars-xx", 0, 0), -EINVAL);
	state_writer_free(w);
	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "ok", 0, 4), -EINVAL);
	state_writer_free(w);

	w = state_writer_new_fd(fd, "w");
	state_put_u8(w, 1);
	assert_int_equal(state_writer_finish(w), -EINVAL);
	assert_non_null(strstr(state_writer_error(w), "outside a section"));
	state_writer_free(w);

	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "a", 0, 0), 0);
	assert_int_equal(state_writer_begin_section(w, "b", 0, 0), -EINVAL);
	state_writer_free(w);

	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "a", 0, 0), 0);
	assert_int_equal(state_writer_finish(w), -EINVAL);
	state_writer_free(w);

	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_finish(w), 0);
	assert_int_equal(state_writer_begin_section(w, "a", 0, 0), -EINVAL);
	state_writer_free(w);

	/* A section over the limit. */
	w = state_writer_new_fd(fd, "w");
	assert_int_equal(state_writer_begin_section(w, "a", 0, 0), 0);
	state_put_bytes(w, NULL, STATE_SECTION_MAX + 1);
	assert_int_equal(state_writer_end_section(w), -EFBIG);
	state_writer_free(w);
	close(fd);

	/* A closed peer is an error, not a SIGPIPE. */
	{
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		close(sv[1]);
		w = state_writer_new_fd(sv[0], "peer");
		assert_int_equal(state_writer_finish(w), -EPIPE);
		assert_non_null(strstr(state_writer_error(w), "write failed at offset 0"));
		state_writer_free(w);
		close(sv[0]);
	}
	/* A bad fd. */
	w = state_writer_new_fd(-1, "badfd");
	assert_int_equal(state_writer_finish(w), -EBADF);
	state_writer_free(w);
}

/* An empty file, a file of only the header, and a reader on a bad fd. */
static void test_degenerate_inputs(void **unused)
{
	uint8_t hdr[STATE_HEADER_SIZE];
	struct state_reader *r;
	int fd;

	(void)unused;
	r = state_reader_new_mem(NULL, 0, "empty");
	assert_int_equal(state_reader_next_section(r), -ENODATA);
	assert_string_equal(state_reader_error(r),
			    "empty: truncated in the file header at offset 0");
	state_reader_free(r);

	fd = memfd_create("hdr", 0);
	{
		struct state_writer *w = state_writer_new_fd(fd, "w");

		state_writer_free(w);
	}
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "hdr only");
	assert_int_equal(state_reader_next_section(r), -ENODATA);
	state_reader_free(r);
	close(fd);

	r = state_reader_new_fd(-1, "badfd");
	assert_int_equal(state_reader_next_section(r), -EBADF);
	state_reader_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_file),
		cmocka_unit_test(test_round_trip_mem),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_round_trip_stream),
		cmocka_unit_test(test_big_section_socket),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_truncation_every_byte),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_whole_file_checks),
		cmocka_unit_test(test_forge_is_valid),
		cmocka_unit_test(test_absurd_lengths),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_unknown_sections),
		cmocka_unit_test(test_field_mismatch),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_degenerate_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
