// SPDX-License-Identifier: MIT
/*
 * img-crash: crash consistency of libplinth-img under SIGKILL (issue #20), the library
 * code the VMM's disks run on, killed at random moments many times a minute.
 *
 *   img-crash fill IMAGE SEED            every sector of IMAGE gets op 0's content
 *                                        (a backing file's known base), then a flush
 *   img-crash write IMAGE SEED [FIRST]   random writes, write-zeroes, discards and
 *                                        flushes until killed, numbered from FIRST (1;
 *                                        a restart goes on from the last one logged,
 *                                        its log appended); a log line on stdout
 *                                        before ("B n kind off len") and after ("E n")
 *                                        each operation, written with write(2)
 *   img-crash check FILE SEED LOG BASE   FILE opened as an image (format probed, its
 *                                        backing file allowed beside it; "raw:FILE" for
 *                                        a raw file, in every command); every
 *                                        sector must hold a value the log allows
 *
 * Each written 512-byte sector names itself: a magic, the operation's number, the
 * sector's number and the seed, then 480 bytes derived from the three. So a sector
 * read back is one operation's whole write to that sector, zeros, or damage.
 *
 * What the log allows (pimg_flush's promise in plinth-img.h: a completed flush makes
 * every write completed before it durable; a crash leaves old or new data): the
 * operations of one run ("R" starts one) are serial, so those it acknowledged ("E")
 * before its last completed flush began are durable. What a run acknowledged after
 * its last completed flush, or only began, was cut by the kill and stays old-or-new
 * (a later run's flush makes durable whatever it left, not the write). Per sector,
 * the allowed set starts as the base (BASE 1: op 0's content, BASE 0: zeros); a
 * durable write makes it {that write}, durable zeroes {zero}; a durable discard adds
 * zero (discard may leave data); every other operation adds its value. Anything
 * else is a lost durable write, a misplaced one, or damage: reported with the sector.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plinth-img.h"

#define SECTOR     512u
#define MAGIC      0x48534152434c50ull /* "PLCRASH" */
#define MAX_SECS   2048u               /* 1 MiB per operation at most */
#define VAL_ZERO   UINT32_MAX          /* allowed-value code for an all-zero sector */
#define MAX_ALLOWED 8                  /* values kept per sector; more = "anything written" */

enum kind { K_WRITE, K_ZERO, K_DISCARD, K_FLUSH };

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser: content and offsets from a seed, no state. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill_sector(uint8_t *s, uint64_t seed, uint64_t op, uint64_t sector)
{
	uint64_t h[4] = { MAGIC, op, sector, seed }, x = mix(seed ^ mix(op ^ mix(sector)));

	memcpy(s, h, sizeof(h));
	for (unsigned i = sizeof(h); i < SECTOR; i += 8) {
		x = mix(x);
		memcpy(s + i, &x, 8);
	}
}

/* The operation a sector holds: its number, VAL_ZERO for zeros, -1 for anything else. */
static int64_t sector_value(const uint8_t *s, uint64_t seed, uint64_t sector)
{
	uint8_t want[SECTOR];
	uint64_t h[4];

	if (pimg_is_zero(s, SECTOR))
		return VAL_ZERO;
	memcpy(h, s, sizeof(h));
	if (h[0] != MAGIC || h[2] != sector || h[3] != seed || h[1] >= VAL_ZERO)
		return -1;
	fill_sector(want, seed, h[1], sector);
	return memcmp(want, s, SECTOR) ? -1 : (int64_t)h[1];
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* write(2), not stdio: a line the process wrote before SIGKILL is in the pipe. */
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) != n)
		exit(1);
}

static struct pimg *open_image(const char *path, unsigned flags)
{
	const char *fmt = NULL;
	struct pimg *img;

	if (!strncmp(path, "raw:", 4)) {
		fmt = "raw"; /* probing never picks raw for a writable open */
		path += 4;
	}
	img = pimg_open_with(path, fmt, flags, &(struct pimg_open_policy){ .allow_external = true });
	if (!img)
		fprintf(stderr, "img-crash: cannot open %s\n", path);
	return img;
}

static int write_op(struct pimg *img, uint8_t *buf, uint64_t seed, uint64_t op, uint64_t first,
		    uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		fill_sector(buf + i * SECTOR, seed, op, first + i);
	return pimg_pwrite(img, buf, n * SECTOR, first * SECTOR);
}

static int do_fill(const char *path, uint64_t seed)
{
	static uint8_t buf[MAX_SECS * SECTOR];
	struct pimg *img = open_image(path, 0);
	uint64_t secs, s, n;
	int ret = 0;

	if (!img)
		return 1;
	secs = pimg_size(img) / SECTOR;
	for (s = 0; s < secs && !ret; s += n) {
		n = secs - s < MAX_SECS ? secs - s : MAX_SECS;
		ret = write_op(img, buf, seed, 0, s, n);
	}
	if (!ret)
		ret = pimg_flush(img);
	pimg_close(img);
	if (ret)
		fprintf(stderr, "img-crash: fill: %s\n", strerror(-ret));
	return ret ? 1 : 0;
}

static int do_write(const char *path, uint64_t seed, uint64_t first_op)
{
	static uint8_t buf[MAX_SECS * SECTOR];
	struct pimg *img = open_image(path, 0);
	uint64_t secs, r = mix(seed ^ first_op), op;
	int ret;

	if (!img)
		return 1;
	say("R\n"); /* a new run: see read_log */
	secs = pimg_size(img) / SECTOR;
	if (secs < MAX_SECS) {
		fprintf(stderr, "img-crash: %s is smaller than 1 MiB\n", path);
		return 1;
	}
	for (op = first_op;; op++) {
		uint64_t pick = (r = mix(r)) % 100, n, first;
		enum kind k = pick < 70 ? K_WRITE : pick < 80 ? K_ZERO : pick < 88 ? K_DISCARD : K_FLUSH;

		/* Mostly small, some up to 1 MiB: across clusters (64 KiB), grains, blocks. */
		n = (r = mix(r)) % 4 ? 1 + (r >> 8) % 32 : 1 + (r >> 8) % MAX_SECS;
		first = (r = mix(r)) % (secs - n + 1);
		if (k == K_FLUSH) {
			say("B %" PRIu64 " flush\n", op);
			ret = pimg_flush(img);
		} else {
			say("B %" PRIu64 " %s %" PRIu64 " %" PRIu64 "\n", op,
			    k == K_WRITE ? "write" : k == K_ZERO ? "zero" : "discard", first, n);
			ret = k == K_WRITE  ? write_op(img, buf, seed, op, first, n) :
			      k == K_ZERO   ? pimg_write_zeroes(img, first * SECTOR, n * SECTOR) :
					      pimg_discard(img, first * SECTOR, n * SECTOR);
		}
		if (ret) {
			fprintf(stderr, "img-crash: operation %" PRIu64 ": %s\n", op, strerror(-ret));
			return 1;
		}
		say("E %" PRIu64 "\n", op);
	}
}

struct op {
	uint64_t n, first, count;
	enum kind kind;
	bool acked, durable;
};

struct allowed {
	uint32_t v[MAX_ALLOWED];
	uint8_t nr;
	bool any; /* more distinct values than kept: any undamaged value is allowed */
};

static void allow(struct allowed *a, uint32_t v)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (a->v[i] == v)
			return;
	if (a->nr == MAX_ALLOWED)
		a->any = true;
	else
		a->v[a->nr++] = v;
}

static int read_log(const char *path, struct op **ops_out, size_t *nr_out)
{
	FILE *f = fopen(path, "r");
	struct op *ops = NULL;
	size_t nr = 0, cap = 0, flush_begin = 0, run_start = 0, i;
	bool flushing = false;
	char line[128], kind[16];

	if (!f) {
		fprintf(stderr, "img-crash: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t n, first = 0, count = 0;

		if (!strchr(line, '\n'))
			break; /* the line the kill cut */
		if (!strcmp(line, "R\n")) {
			/* A restart: what the last run left unflushed stays old-or-new for good. */
			run_start = nr;
			flushing = false;
			continue;
		}
		if (sscanf(line, "E %" SCNu64, &n) == 1) {
			if (!nr || ops[nr - 1].n != n)
				goto bad;
			ops[nr - 1].acked = true;
			if (flushing) {
				/* Durable: every op this run acked before the flush began. */
				for (i = run_start; i < flush_begin; i++)
					ops[i].durable |= ops[i].acked;
				flushing = false;
			}
			continue;
		}
		if (sscanf(line, "B %" SCNu64 " %15s %" SCNu64 " %" SCNu64, &n, kind, &first, &count) < 2)
			goto bad;
		if (nr == cap) {
			cap = cap ? cap * 2 : 1024;
			ops = realloc(ops, cap * sizeof(*ops));
			if (!ops)
				goto bad;
		}
		ops[nr] = (struct op){ .n = n, .first = first, .count = count };
		if (!strcmp(kind, "flush")) {
			ops[nr].kind = K_FLUSH;
			flushing = true;
			flush_begin = nr; /* ops [0, nr) were acked: serial */
		} else {
			ops[nr].kind = !strcmp(kind, "write") ? K_WRITE : !strcmp(kind, "zero") ? K_ZERO : K_DISCARD;
			flushing = false;
		}
		nr++;
	}
	fclose(f);
	*ops_out = ops;
	*nr_out = nr;
	return 0;
bad:
	fprintf(stderr, "img-crash: %s: bad line: %s", path, line);
	fclose(f);
	free(ops);
	return -1;
}

static int do_check(const char *path, uint64_t seed, const char *log, bool base)
{
	static uint8_t buf[MAX_SECS * SECTOR];
	struct allowed *al;
	struct op *ops;
	size_t nr, durable = 0, i, bad = 0;
	uint64_t secs, s, n, j;
	struct pimg *img;
	int ret;

	if (read_log(log, &ops, &nr))
		return 2;
	/* Writable, as a restarted VM opens it: a VHDX log is replayed first. */
	img = open_image(path, 0);
	if (!img)
		return 2;
	secs = pimg_size(img) / SECTOR;
	al = calloc(secs, sizeof(*al));
	if (!al)
		return 2;
	for (s = 0; s < secs; s++)
		allow(&al[s], base ? 0 : VAL_ZERO);
	for (i = 0; i < nr; i++) {
		struct op *o = &ops[i];

		durable += o->durable;
		if (o->kind == K_FLUSH || o->first >= secs || o->count > secs - o->first)
			continue;
		for (j = o->first; j < o->first + o->count; j++) {
			struct allowed *a = &al[j];
			uint32_t v = o->kind == K_WRITE ? (uint32_t)o->n : VAL_ZERO;

			if (o->durable && o->kind != K_DISCARD) {
				a->nr = 0; /* durable: replaces what was there */
				a->any = false;
			}
			allow(a, v);
		}
	}
	for (s = 0; s < secs; s += n) {
		n = secs - s < MAX_SECS ? secs - s : MAX_SECS;
		ret = pimg_pread(img, buf, n * SECTOR, s * SECTOR);
		if (ret) {
			fprintf(stderr, "img-crash: read at sector %" PRIu64 ": %s\n", s, strerror(-ret));
			return 2;
		}
		for (j = 0; j < n; j++) {
			int64_t v = sector_value(buf + j * SECTOR, seed, s + j);
			struct allowed *a = &al[s + j];
			bool ok = v >= 0 && a->any;

			for (unsigned k = 0; !ok && v >= 0 && k < a->nr; k++)
				ok = a->v[k] == (uint32_t)v;
			if (!ok && bad++ < 5) {
				printf("sector %" PRIu64 ": holds %s%" PRId64 ", allowed:", s + j,
				       v < 0 ? "damage " : v == VAL_ZERO ? "zeros " : "op ", v < 0 || v == VAL_ZERO ? 0 : v);
				for (unsigned k = 0; k < a->nr; k++)
					printf(a->v[k] == VAL_ZERO ? " zeros" : " op %u", a->v[k]);
				printf("%s\n", a->any ? " (or any op)" : "");
			}
		}
	}
	pimg_close(img);
	printf("%zu operations logged, %zu durable (acknowledged before a completed flush), killed %s; "
	       "%zu sectors wrong\n", nr, durable, nr && !ops[nr - 1].acked ? (ops[nr - 1].kind == K_FLUSH ? "during a flush" :
					       ops[nr - 1].kind == K_WRITE ? "during a write" :
					       "during a zero or discard") : "between operations", bad);
	free(al);
	free(ops);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t seed;

	if (argc < 4 || sscanf(argv[3], "%" SCNu64, &seed) != 1) {
		fprintf(stderr, "usage: img-crash fill IMAGE SEED | write IMAGE SEED [FIRST] | check FILE SEED LOG BASE\n");
		return 2;
	}
	if (!strcmp(argv[1], "fill"))
		return do_fill(argv[2], seed);
	if (!strcmp(argv[1], "write")) {
		uint64_t first = 1;

		if (argc > 4 && (sscanf(argv[4], "%" SCNu64, &first) != 1 || !first || first >= VAL_ZERO)) {
			fprintf(stderr, "img-crash: bad first operation number %s\n", argv[4]);
			return 2;
		}
		return do_write(argv[2], seed, first);
	}
	if (!strcmp(argv[1], "check") && argc == 6)
		return do_check(argv[2], seed, argv[4], !strcmp(argv[5], "1"));
	fprintf(stderr, "img-crash: unknown command %s\n", argv[1]);
	return 2;
}
