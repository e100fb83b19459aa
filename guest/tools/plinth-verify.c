// SPDX-License-Identifier: MIT
/*
 * plinth-verify: a data-integrity verifier for block devices (guest side; it runs on the
 * host too, on an image converted to raw, as the independent check).
 *
 *   plinth-verify --dev /dev/vda [--model /dev/vdb] [--threads 4] [--seconds 20]
 *                 [--ops N] [--seed N] [--max-len 1M] [--flush-every 64] [--no-discard]
 *   plinth-verify --check --dev DEV|FILE --model MODEL [--crash]
 *   plinth-verify --fill --dev DEV|FILE            (every sector: its generation-0 record)
 *
 * Run (the default): --threads threads write, read, discard, zero and flush at random
 * offsets and lengths (512 B to --max-len, any sector multiple, so across cluster, grain
 * and block boundaries) for --seconds (or --ops operations in all). Every 512-byte
 * sector written carries a record: magic, its own sector number, the generation of the
 * write (one global counter), the write's first sector and length, and a checksum over
 * the sector, around data that follows from (sector, generation). A write holds the
 * 1 MiB stripes it covers, so the model of acknowledged writes (per sector: generation
 * and kind) is exact while threads overlap in time; reads check what they get against
 * it at once. At the end everything is flushed and every sector of the device is read
 * back and checked. One line says how it went:
 *
 *   PLINTH-VERIFY result=ok|FAIL mode=run|check|crash-check dev=DEV writes=N reads=N discards=N zeroes=N flushes=N
 *                 bytes=N checked=N mismatches=N secs=S
 *
 * preceded by up to 10 "PLINTH-VERIFY mismatch ..." lines describing the first ones.
 * The device must start as zeros, or as written by --fill (gen-0 records, e.g. in a
 * backing file): other old contents are mismatches.
 *
 * --model DEV keeps the model on a second (raw) device: after each flush, the model as
 * it was when the flush was issued (every write acknowledged before it) goes to one of
 * two slots (alternating, each with a sequence number and a checksum, so that a crash
 * while writing one leaves the other); after the final flush, the exact model, marked
 * final. --check reads it back and checks DEV against it: exactly, if final; with
 * --crash (after the VMM was killed), each sector must hold what the model says was
 * durable or a later write of that sector (such runs need --no-discard: a discard after
 * the last flush may leave zeros where a durable write was).
 *
 * What a sector may hold, per its model entry:
 *   DATA gen 0 (never written): zeros, or its generation-0 record (--fill, e.g. a backing file)
 *   DATA gen G: the record (sector, G); with --crash, any valid record of the sector with
 *               generation >= G (a later write, possibly unacknowledged)
 *   ZERO gen G: zeros (write-zeroes); --crash: zeros or a later record
 *   DISCARD (previous gen G): zeros, the generation-0 record, or the record (sector, G);
 *               --crash: also a later one
 * Exit status: 0 all checked and consistent, 1 mismatches or an I/O error, 2 usage.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECTOR        512u
#define STRIPE_SECS   2048u           /* 1 MiB: the lock unit */
#define REC_MAGIC     0x46564c50u     /* "PLVF" */
#define MODEL_MAGIC   0x4c444f4d56464c50ull /* "PLFVMODL" */
#define MODEL_VERSION 1u
#define MAX_THREADS   64
#define MAX_REPORTS   10

/* Model entry: low 30 bits generation, top 2 bits kind. */
#define GEN_MASK      0x3fffffffu
#define KIND_SHIFT    30
enum kind { K_DATA = 0, K_ZERO = 1, K_DISCARD = 2 };

/* The record at the start of every sector written (little-endian, the rest is data). */
struct rec {
	uint32_t magic;
	uint32_t csum;      /* FNV-1a over the sector with this field zero */
	uint64_t sector;    /* where it belongs */
	uint64_t gen;       /* which write put it there */
	uint64_t first;     /* that write's first sector */
	uint32_t nsec;      /* that write's length in sectors */
	uint32_t pad;
};

/* The model's slot header on the model device; entries (uint32_t each) follow at 4096. */
struct model_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t final;     /* 1: written after the last flush of a finished run (exact) */
	uint64_t seq;       /* slots alternate; the valid one with the highest seq wins */
	uint64_t nsectors;
	uint64_t max_gen;
	uint64_t discards;  /* 1: the run discarded and zeroed (a crash may then expose zeros) */
	uint64_t csum;      /* FNV-1a over the header (this field zero) and the entries */
};

struct cfg {
	const char *dev, *model_dev;
	unsigned int threads;
	uint64_t seconds, ops, seed, max_len, flush_every;
	bool discard, check, crash, fill;
};

struct verifier {
	const struct cfg *cfg;
	int fd, model_fd;
	uint64_t nsectors;
	uint32_t *model;            /* per sector: kind << 30 | gen; owned */
	uint32_t *snap;             /* the model copy being persisted; owned */
	size_t slot_bytes;          /* header block + entries, rounded to 4096 */
	uint64_t model_seq;
	pthread_mutex_t *stripes;   /* one per STRIPE_SECS sectors; owned */
	uint64_t nstripes;
	pthread_rwlock_t model_lock; /* readers: threads updating entries; writer: snapshots */
	pthread_mutex_t flush_lock;  /* one flush + model write at a time */
	pthread_mutex_t report_lock;
	atomic_uint_fast64_t gen, ops_done, writes, reads, discards, zeroes, flushes, bytes;
	atomic_uint_fast64_t mismatches;
	uint64_t durable, newer;    /* --check: sectors the model says were written; holding later writes */
	atomic_bool stop, discard_ok, zero_ok;
	unsigned int reports;
	double deadline;
	atomic_uint probes;         /* model probes printed (model_probe) */
	atomic_uintptr_t probed;    /* the model page probed last */
	uint64_t zero_pfn;          /* the kernel's shared zero page, 0 if unknown */
};

/* ---- small helpers ------------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t prng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Fill one sector with the record of (sector, gen) from a write of nsec sectors at first. */
static void make_sector(unsigned char *s, uint64_t sector, uint64_t gen, uint64_t first,
			uint32_t nsec)
{
	struct rec r = { .magic = REC_MAGIC, .sector = sector, .gen = gen, .first = first,
			 .nsec = nsec };
	uint64_t st = sector * 0x9e3779b97f4a7c15ULL ^ (gen + 1) * 0xbf58476d1ce4e5b9ULL;

	/* Generation 0 (--fill) compresses well, for images with compressed clusters. */
	if (gen == 0)
		memset(s + sizeof(r), (int)(sector & 0xff) | 1, SECTOR - sizeof(r));
	for (size_t i = sizeof(r); gen && i < SECTOR; i += 8) {
		uint64_t v = prng_next(&st);

		memcpy(s + i, &v, 8);
	}
	memcpy(s, &r, sizeof(r));
	r.csum = (uint32_t)fnv1a(FNV_INIT, s, SECTOR);
	memcpy(s, &r, sizeof(r));
}

enum found { F_ZERO, F_REC, F_BADREC, F_GARBAGE };

/* What sector s (at position sector) holds; *r is its record when F_REC or F_BADREC. */
static enum found classify(const unsigned char *s, uint64_t sector, struct rec *r)
{
	unsigned char want[SECTOR];

	if (all_zero(s, SECTOR))
		return F_ZERO;
	memcpy(r, s, sizeof(*r));
	if (r->magic != REC_MAGIC)
		return F_GARBAGE;
	if (r->sector != sector || r->nsec == 0 || r->first > sector ||
	    sector - r->first >= r->nsec)
		return F_BADREC;
	make_sector(want, sector, r->gen, r->first, r->nsec);
	return memcmp(want, s, SECTOR) ? F_BADREC : F_REC;
}

static const char *const kind_names[] = { "data", "zero", "discard", "?" };

/* Is what sector holds allowed by its model entry e? */
static bool sector_ok(const unsigned char *s, uint64_t sector, uint32_t e, bool crash,
		      enum found *f, struct rec *r)
{
	uint32_t gen = e & GEN_MASK, kind = e >> KIND_SHIFT;

	*f = classify(s, sector, r);
	if (*f == F_GARBAGE || *f == F_BADREC)
		return false;
	if (*f == F_ZERO)
		return kind != K_DATA || gen == 0;
	/* A valid record of this sector. */
	if (kind == K_DATA && r->gen == gen)
		return true;
	if (kind == K_DISCARD && (r->gen == gen || r->gen == 0))
		return true;
	/* After a crash, a later write of the sector (acknowledged or not) may be there. */
	return crash && r->gen > gen;
}

static void report(struct verifier *v, uint64_t sector, uint32_t e, enum found f,
		   const struct rec *r, const unsigned char *s, const char *when)
{
	pthread_mutex_lock(&v->report_lock);
	if (v->reports++ < MAX_REPORTS) {
		printf("PLINTH-VERIFY mismatch %s sector=%" PRIu64 " offset=%" PRIu64
		       " expected=%s/gen=%u found=", when, sector, sector * SECTOR,
		       kind_names[e >> KIND_SHIFT], e & GEN_MASK);
		if (f == F_ZERO)
			printf("zeros");
		else if (f == F_GARBAGE)
			printf("garbage[%02x%02x%02x%02x%02x%02x%02x%02x...]", s[0], s[1], s[2],
			       s[3], s[4], s[5], s[6], s[7]);
		else
			printf("%s(sector=%" PRIu64 ",gen=%" PRIu64 ",write=%" PRIu64 "+%u)",
			       f == F_REC ? "record" : "bad-record", r->sector, r->gen, r->first,
			       r->nsec);
		printf("\n");
		fflush(stdout);
	}
	pthread_mutex_unlock(&v->report_lock);
	atomic_fetch_add(&v->mismatches, 1);
}

/* ---- a probe of the model's own memory -------------------------------------------------- */

/* The physical frame behind virtual address p (pagemap; root only), or 0 when unknown. */
static uint64_t pfn_of(const void *p)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), (off_t)((uintptr_t)p / 4096 * sizeof(ent))) != sizeof(ent))
		ent = 0;
	close(fd);
	return ent >> 63 ? ent & ((1ull << 55) - 1) : 0;
}

/* The shared zero page's frame: a fresh anonymous page that was only read maps it. */
static uint64_t find_zero_pfn(void)
{
	volatile unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pfn;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	pfn = pfn_of((const void *)p);
	munmap((void *)p, 4096);
	return pfn;
}

/*
 * A record where the model says "never written" (the signature of issue #20's unexplained
 * failures in the emulated host): look at the model entry three ways, to tell a stale
 * translation on this CPU (the load differs from the kernel's read through /proc/self/mem)
 * from memory whose contents are gone (both say 0; how much of its page is zero, and
 * whether the last flush's snapshot had the entry), and whether the page is the zero page.
 */
static void model_probe(struct verifier *v, uint64_t sector)
{
	const volatile uint32_t *ep = &v->model[sector];
	uint32_t load = *ep, viamem = 0xffffffffu, zeros = 0;
	const uint32_t *page = (const uint32_t *)((uintptr_t)ep & ~(uintptr_t)4095);
	uint64_t pfn = pfn_of((const void *)ep);
	int fd;

	if (atomic_exchange(&v->probed, (uintptr_t)page) == (uintptr_t)page ||
	    atomic_fetch_add(&v->probes, 1) >= 3)
		return;
	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &viamem, sizeof(viamem), (off_t)(uintptr_t)ep) != sizeof(viamem))
			viamem = 0xffffffffu;
		close(fd);
	}
	for (unsigned int i = 0; i < 1024; i++)
		zeros += page[i] == 0;
	printf("PLINTH-VERIFY model-probe sector=%" PRIu64 " cpu=%d load=%#x via-proc-mem=%#x "
	       "snapshot=%#x page-zero-entries=%u/1024 pfn=%#" PRIx64 " zero-pfn=%#" PRIx64 "\n",
	       sector, sched_getcpu(), load, viamem, v->snap[sector], zeros, pfn, v->zero_pfn);
	fflush(stdout);
}

/* Check n sectors read at sector first against the model; returns the mismatches. */
static uint64_t check_range(struct verifier *v, const unsigned char *buf, uint64_t first,
			    uint64_t n, bool crash, const char *when)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *s = buf + i * SECTOR;
		uint32_t e = v->model[first + i];
		enum found f;
		struct rec r;

		if (!sector_ok(s, first + i, e, crash, &f, &r)) {
			if (f == F_REC && e == 0 && !v->cfg->check)
				model_probe(v, first + i);
			report(v, first + i, e, f, &r, s, when);
			bad++;
			continue;
		}
		if (e & GEN_MASK)
			v->durable++;
		if (f == F_REC && r.gen > (e & GEN_MASK))
			v->newer++;
	}
	return bad;
}

/* ---- the model on its device ---------------------------------------------------------- */

static uint64_t model_csum(const struct model_hdr *h, const uint32_t *ent, uint64_t n)
{
	struct model_hdr c = *h;

	c.csum = 0;
	return fnv1a(fnv1a(FNV_INIT, &c, sizeof(c)), ent, n * sizeof(*ent));
}

/* Write entries ent (a snapshot) to the next slot and flush the model device. 0 or -errno. */
static int model_save(struct verifier *v, const uint32_t *ent, uint64_t max_gen, bool final)
{
	struct model_hdr *h;
	unsigned char *blk;
	int rc;

	if (v->model_fd < 0)
		return 0;
	if (posix_memalign((void **)&blk, 4096, v->slot_bytes))
		return -ENOMEM;
	memset(blk, 0, 4096);
	memcpy(blk + 4096, ent, v->nsectors * sizeof(*ent));
	h = (struct model_hdr *)blk;
	*h = (struct model_hdr){ .magic = MODEL_MAGIC, .version = MODEL_VERSION,
				 .final = final, .seq = ++v->model_seq, .nsectors = v->nsectors,
				 .max_gen = max_gen, .discards = v->cfg->discard };
	h->csum = model_csum(h, ent, v->nsectors);
	rc = pwrite_full(v->model_fd, blk, v->slot_bytes, (off_t)((h->seq & 1) * v->slot_bytes));
	if (!rc && fdatasync(v->model_fd) < 0)
		rc = -errno;
	free(blk);
	return rc;
}

/* Load the newest valid slot into v->model. 0, -ENOENT (none valid) or -errno. */
static int model_load(struct verifier *v, bool *final, bool *discards)
{
	unsigned char *blk;
	int rc = -ENOENT;
	uint64_t best = 0;

	if (posix_memalign((void **)&blk, 4096, v->slot_bytes))
		return -ENOMEM;
	for (int slot = 0; slot < 2; slot++) {
		struct model_hdr h;
		const uint32_t *ent = (const uint32_t *)(blk + 4096);
		int r = pread_full(v->model_fd, blk, v->slot_bytes, (off_t)(slot * v->slot_bytes));

		if (r) {
			rc = r;
			break;
		}
		memcpy(&h, blk, sizeof(h));
		if (h.magic != MODEL_MAGIC || h.version != MODEL_VERSION ||
		    h.nsectors != v->nsectors || h.csum != model_csum(&h, ent, v->nsectors) ||
		    h.seq <= best)
			continue;
		best = h.seq;
		*final = h.final;
		*discards = h.discards;
		memcpy(v->model, ent, v->nsectors * sizeof(*ent));
		v->model_seq = h.seq;
		rc = 0;
	}
	free(blk);
	return rc;
}

/* ---- operations ---------------------------------------------------------------------- */

static void lock_stripes(struct verifier *v, uint64_t first, uint64_t n)
{
	for (uint64_t s = first / STRIPE_SECS; s <= (first + n - 1) / STRIPE_SECS; s++)
		pthread_mutex_lock(&v->stripes[s]);
}

static void unlock_stripes(struct verifier *v, uint64_t first, uint64_t n)
{
	for (uint64_t s = first / STRIPE_SECS; s <= (first + n - 1) / STRIPE_SECS; s++)
		pthread_mutex_unlock(&v->stripes[s]);
}

static void set_model(struct verifier *v, uint64_t first, uint64_t n, enum kind k, uint32_t gen)
{
	pthread_rwlock_rdlock(&v->model_lock);
	for (uint64_t i = first; i < first + n; i++) {
		uint32_t g = gen;

		/* A discard leaves the previous generation readable. */
		if (k == K_DISCARD)
			g = (v->model[i] >> KIND_SHIFT) == K_ZERO ? 0 : v->model[i] & GEN_MASK;
		v->model[i] = (uint32_t)k << KIND_SHIFT | g;
	}
	pthread_rwlock_unlock(&v->model_lock);
}

static void fatal_io(struct verifier *v, const char *what, uint64_t first, uint64_t n, int err)
{
	printf("PLINTH-VERIFY error %s sector=%" PRIu64 " sectors=%" PRIu64 ": %s\n", what, first,
	       n, strerror(err));
	fflush(stdout);
	atomic_fetch_add(&v->mismatches, 1);
	atomic_store(&v->stop, true);
}

/*
 * Flush: snapshot the model (every write acknowledged so far), flush the device, then
 * save the snapshot: after a crash, everything in it must be on the disk.
 */
static int do_flush(struct verifier *v, bool final)
{
	uint64_t max_gen;
	int rc = 0;

	pthread_mutex_lock(&v->flush_lock);
	pthread_rwlock_wrlock(&v->model_lock);
	memcpy(v->snap, v->model, v->nsectors * sizeof(*v->snap));
	max_gen = atomic_load(&v->gen);
	pthread_rwlock_unlock(&v->model_lock);
	if (fdatasync(v->fd) < 0) {
		rc = -errno;
		fatal_io(v, "flush", 0, 0, -rc);
	} else {
		atomic_fetch_add(&v->flushes, 1);
		rc = model_save(v, v->snap, max_gen, final);
		if (rc)
			fatal_io(v, "model write", 0, 0, -rc);
	}
	pthread_mutex_unlock(&v->flush_lock);
	return rc;
}

/* Lengths: mostly small, some medium, a few up to max: 1..max sectors. */
static uint64_t pick_len(uint64_t *st, uint64_t max)
{
	uint64_t r = prng_next(st) % 100, cap;

	cap = r < 50 ? 16 : r < 85 ? 256 : max;
	if (cap > max)
		cap = max;
	return 1 + prng_next(st) % cap;
}

struct worker {
	struct verifier *v;
	unsigned char *buf;  /* max_len bytes, 4096-aligned; owned */
	uint64_t st;
};

static void one_op(struct worker *w)
{
	struct verifier *v = w->v;
	uint64_t maxsec = v->cfg->max_len / SECTOR, op = prng_next(&w->st) % 100;
	uint64_t n = pick_len(&w->st, maxsec), first;
	uint64_t range[2];
	ssize_t got;

	if (n > v->nsectors)
		n = v->nsectors;
	first = prng_next(&w->st) % (v->nsectors - n + 1);
	if (v->cfg->flush_every && prng_next(&w->st) % v->cfg->flush_every == 0) {
		do_flush(v, false);
		return;
	}
	lock_stripes(v, first, n);
	if (op < 60) {                                  /* write */
		uint32_t gen = (uint32_t)(atomic_fetch_add(&v->gen, 1) + 1);

		for (uint64_t i = 0; i < n; i++)
			make_sector(w->buf + i * SECTOR, first + i, gen, first, (uint32_t)n);
		got = pwrite(v->fd, w->buf, n * SECTOR, (off_t)(first * SECTOR));
		if (got != (ssize_t)(n * SECTOR)) {
			fatal_io(v, "write", first, n, got < 0 ? errno : EIO);
		} else {
			set_model(v, first, n, K_DATA, gen);
			atomic_fetch_add(&v->writes, 1);
			atomic_fetch_add(&v->bytes, n * SECTOR);
		}
	} else if (op < 90) {                           /* read and check at once */
		got = pread(v->fd, w->buf, n * SECTOR, (off_t)(first * SECTOR));
		if (got != (ssize_t)(n * SECTOR))
			fatal_io(v, "read", first, n, got < 0 ? errno : EIO);
		else
			check_range(v, w->buf, first, n, false, "read-during-run");
		atomic_fetch_add(&v->reads, 1);
	} else if (op < 95 && v->cfg->discard && atomic_load(&v->discard_ok)) {
		uint32_t gen = (uint32_t)(atomic_fetch_add(&v->gen, 1) + 1);

		range[0] = first * SECTOR;
		range[1] = n * SECTOR;
		if (ioctl(v->fd, BLKDISCARD, range) == 0) {
			set_model(v, first, n, K_DISCARD, gen);
			atomic_fetch_add(&v->discards, 1);
		} else if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) {
			atomic_store(&v->discard_ok, false); /* the device has none: fine */
		} else {
			fatal_io(v, "discard", first, n, errno);
		}
	} else if (op >= 95 && v->cfg->discard && atomic_load(&v->zero_ok)) {
		uint32_t gen = (uint32_t)(atomic_fetch_add(&v->gen, 1) + 1);

		range[0] = first * SECTOR;
		range[1] = n * SECTOR;
		if (ioctl(v->fd, BLKZEROOUT, range) == 0) {
			set_model(v, first, n, K_ZERO, gen);
			atomic_fetch_add(&v->zeroes, 1);
		} else if (errno == EOPNOTSUPP || errno == ENOTTY) {
			atomic_store(&v->zero_ok, false);
		} else {
			fatal_io(v, "write-zeroes", first, n, errno);
		}
	}
	unlock_stripes(v, first, n);
	atomic_fetch_add(&v->ops_done, 1);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct verifier *v = w->v;

	while (!atomic_load(&v->stop)) {
		if (v->cfg->ops && atomic_load(&v->ops_done) >= v->cfg->ops)
			break;
		if (!v->cfg->ops && now() >= v->deadline)
			break;
		one_op(w);
	}
	return NULL;
}

/* Read the whole device back and check every sector. */
static uint64_t check_all(struct verifier *v, bool crash, const char *when)
{
	const uint64_t chunk = STRIPE_SECS;
	unsigned char *buf;
	uint64_t checked = 0;

	if (posix_memalign((void **)&buf, 4096, chunk * SECTOR)) {
		fatal_io(v, "check", 0, 0, ENOMEM);
		return 0;
	}
	for (uint64_t s = 0; s < v->nsectors; s += chunk) {
		uint64_t n = v->nsectors - s < chunk ? v->nsectors - s : chunk;
		int rc = pread_full(v->fd, buf, n * SECTOR, (off_t)(s * SECTOR));

		if (rc) {
			fatal_io(v, "read-back", s, n, -rc);
			break;
		}
		check_range(v, buf, s, n, crash, when);
		checked += n;
	}
	free(buf);
	return checked;
}

/* ---- modes ----------------------------------------------------------------------------- */

static int fill(struct verifier *v)
{
	unsigned char *buf;
	int rc = 0;

	if (posix_memalign((void **)&buf, 4096, STRIPE_SECS * SECTOR))
		return -ENOMEM;
	for (uint64_t s = 0; s < v->nsectors && !rc; s += STRIPE_SECS) {
		uint64_t n = v->nsectors - s < STRIPE_SECS ? v->nsectors - s : STRIPE_SECS;

		for (uint64_t i = 0; i < n; i++)
			make_sector(buf + i * SECTOR, s + i, 0, s + i, 1);
		rc = pwrite_full(v->fd, buf, n * SECTOR, (off_t)(s * SECTOR));
	}
	if (!rc && fsync(v->fd) < 0)
		rc = -errno;
	free(buf);
	printf("PLINTH-VERIFY result=%s filled=%" PRIu64 " sectors\n", rc ? "FAIL" : "ok",
	       v->nsectors);
	return rc;
}

static void summary(struct verifier *v, const char *mode, uint64_t checked, double secs)
{
	uint64_t bad = atomic_load(&v->mismatches);

	printf("PLINTH-VERIFY result=%s mode=%s dev=%s writes=%" PRIu64 " reads=%" PRIu64 " discards=%" PRIu64
	       " zeroes=%" PRIu64 " flushes=%" PRIu64 " bytes=%" PRIu64 " checked=%" PRIu64
	       " mismatches=%" PRIu64 " secs=%.1f\n", bad ? "FAIL" : "ok", mode, v->cfg->dev,
	       (uint64_t)atomic_load(&v->writes), (uint64_t)atomic_load(&v->reads),
	       (uint64_t)atomic_load(&v->discards), (uint64_t)atomic_load(&v->zeroes),
	       (uint64_t)atomic_load(&v->flushes), (uint64_t)atomic_load(&v->bytes), checked,
	       bad, secs);
	fflush(stdout);
}

static int run(struct verifier *v)
{
	struct worker w[MAX_THREADS];
	pthread_t t[MAX_THREADS];
	unsigned int started = 0;
	double t0 = now();
	uint64_t checked;

	v->deadline = t0 + (double)v->cfg->seconds;
	/* Model device: start from a valid empty model, so that a crash at once is checkable. */
	if (v->model_fd >= 0 && model_save(v, v->model, 0, false)) {
		fprintf(stderr, "plinth-verify: cannot write the model to %s\n", v->cfg->model_dev);
		return -EIO;
	}
	for (unsigned int i = 0; i < v->cfg->threads; i++) {
		w[i] = (struct worker){ .v = v, .st = v->cfg->seed * 0x9e3779b97f4a7c15ULL + i + 1 };
		if (posix_memalign((void **)&w[i].buf, 4096, v->cfg->max_len))
			break;
		if (pthread_create(&t[i], NULL, worker_main, &w[i])) {
			free(w[i].buf);
			break;
		}
		started++;
	}
	for (unsigned int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		free(w[i].buf);
	}
	if (started != v->cfg->threads)
		fatal_io(v, "start threads", 0, 0, ENOMEM);
	/* Everything acknowledged is durable now: the exact model, marked final. */
	do_flush(v, true);
	checked = check_all(v, false, "read-back");
	summary(v, "run", checked, now() - t0);
	return atomic_load(&v->mismatches) ? -EIO : 0;
}

static int check_only(struct verifier *v)
{
	bool final = false, discards = false;
	double t0 = now();
	uint64_t checked;
	int rc;

	rc = model_load(v, &final, &discards);
	if (rc) {
		fprintf(stderr, "plinth-verify: no valid model on %s: %s\n", v->cfg->model_dev,
			strerror(-rc));
		return rc;
	}
	if (!final && !v->cfg->crash) {
		fprintf(stderr, "plinth-verify: the model on %s is not final (the run did not end): "
			"check with --crash\n", v->cfg->model_dev);
		return -EINVAL;
	}
	/* A discard after the last flush may legitimately leave zeros where data was durable. */
	if (v->cfg->crash && discards && !final) {
		fprintf(stderr, "plinth-verify: the run discarded: a crash check needs a run with "
			"--no-discard\n");
		return -EINVAL;
	}
	checked = check_all(v, v->cfg->crash, v->cfg->crash ? "after-crash" : "check");
	/* What the check covered: sectors written before the model's flush, and (after a
	 * crash) sectors holding a later write that had reached the disk. */
	printf("PLINTH-VERIFY model seq=%" PRIu64 " written_sectors=%" PRIu64
	       " later_sectors=%" PRIu64 "\n", v->model_seq, v->durable, v->newer);
	summary(v, v->cfg->crash ? "crash-check" : "check", checked, now() - t0);
	return atomic_load(&v->mismatches) ? -EIO : 0;
}

/* ---- set-up ---------------------------------------------------------------------------- */

static const char usage_text[] =
	"Usage: plinth-verify --dev DEV [--model DEV] [--threads N] [--seconds S] [--ops N]\n"
	"                     [--seed N] [--max-len SIZE] [--flush-every N] [--no-discard]\n"
	"       plinth-verify --check --dev DEV --model DEV [--crash]\n"
	"       plinth-verify --fill --dev DEV\n";

static int parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 'S' },
		{ "max-len", required_argument, NULL, 'l' },
		{ "flush-every", required_argument, NULL, 'f' },
		{ "no-discard", no_argument, NULL, 'D' },
		{ "check", no_argument, NULL, 'c' },
		{ "crash", no_argument, NULL, 'C' },
		{ "fill", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t x;
	int ch;

	*c = (struct cfg){ .threads = 4, .seconds = 20, .seed = 1, .max_len = 1 << 20,
			   .flush_every = 64, .discard = true };
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': c->dev = optarg; break;
		case 'm': c->model_dev = optarg; break;
		case 't':
			if (parse_uint(optarg, 1, MAX_THREADS, &x))
				goto bad;
			c->threads = (unsigned int)x;
			break;
		case 's':
			if (parse_uint(optarg, 1, 7 * 86400, &c->seconds))
				goto bad;
			break;
		case 'o':
			if (parse_uint(optarg, 1, UINT32_MAX / 2, &c->ops))
				goto bad;
			break;
		case 'S':
			if (parse_uint(optarg, 0, UINT64_MAX, &c->seed))
				goto bad;
			break;
		case 'l':
			if (parse_size(optarg, &c->max_len) || c->max_len < SECTOR ||
			    c->max_len % SECTOR || c->max_len > 64u << 20)
				goto bad;
			break;
		case 'f':
			if (parse_uint(optarg, 0, 1u << 20, &c->flush_every))
				goto bad;
			break;
		case 'D': c->discard = false; break;
		case 'c': c->check = true; break;
		case 'C': c->crash = true; break;
		case 'F': c->fill = true; break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			goto usage;
		}
	}
	if (optind != argc || !c->dev || (c->check && !c->model_dev) || (c->check && c->fill) ||
	    (c->crash && !c->check))
		goto usage;
	return 0;
bad:
	fprintf(stderr, "plinth-verify: bad value for --%s: '%s'\n",
		argv[optind - 1][0] == '-' ? argv[optind - 1] + 2 : "?", optarg);
	return -EINVAL;
usage:
	fputs(usage_text, stderr);
	return -EINVAL;
}

/* Open path for direct I/O where it can (block devices, most files), else buffered. */
static int open_dev(const char *path, bool rw, uint64_t *size)
{
	int flags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC, fd;
	struct stat st;

	fd = open(path, flags | O_DIRECT);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags); /* tmpfs has no O_DIRECT */
	if (fd < 0) {
		fprintf(stderr, "plinth-verify: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 ||
	    (S_ISBLK(st.st_mode) ? ioctl(fd, BLKGETSIZE64, size) < 0 :
	     (*size = (uint64_t)st.st_size, false))) {
		fprintf(stderr, "plinth-verify: %s: size: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct verifier v = { .fd = -1, .model_fd = -1 };
	uint64_t size, msize;
	struct cfg c;
	int rc = -EINVAL;

	if (parse_args(argc, argv, &c))
		return 2;
	v.cfg = &c;
	v.fd = open_dev(c.dev, !c.check, &size);
	if (v.fd < 0)
		return 1;
	v.nsectors = size / SECTOR;
	if (v.nsectors < STRIPE_SECS || v.nsectors > GEN_MASK) {
		fprintf(stderr, "plinth-verify: %s: %" PRIu64 " bytes: need 1 MiB to 512 GiB\n", c.dev,
			size);
		goto out_close;
	}
	if (c.fill) {
		rc = fill(&v);
		goto out_close;
	}
	v.slot_bytes = align_up(4096 + v.nsectors * sizeof(uint32_t), 4096);
	if (c.model_dev) {
		v.model_fd = open_dev(c.model_dev, !c.check, &msize);
		if (v.model_fd < 0)
			goto out_close;
		if (msize < 2 * v.slot_bytes) {
			fprintf(stderr, "plinth-verify: --model %s: %" PRIu64 " bytes, need %zu\n",
				c.model_dev, msize, 2 * v.slot_bytes);
			goto out_close_model;
		}
	}
	v.nstripes = (v.nsectors + STRIPE_SECS - 1) / STRIPE_SECS;
	v.model = calloc(v.nsectors, sizeof(*v.model));
	v.snap = calloc(v.nsectors, sizeof(*v.snap));
	v.stripes = calloc(v.nstripes, sizeof(*v.stripes));
	if (!v.model || !v.snap || !v.stripes) {
		fprintf(stderr, "plinth-verify: no memory for the model\n");
		goto out_free;
	}
	for (uint64_t i = 0; i < v.nstripes; i++)
		pthread_mutex_init(&v.stripes[i], NULL);
	pthread_rwlock_init(&v.model_lock, NULL);
	pthread_mutex_init(&v.flush_lock, NULL);
	pthread_mutex_init(&v.report_lock, NULL);
	atomic_store(&v.discard_ok, true);
	atomic_store(&v.zero_ok, true);
	v.zero_pfn = find_zero_pfn();
	rc = c.check ? check_only(&v) : run(&v);
out_free:
	free(v.model);
	free(v.snap);
	free(v.stripes);
out_close_model:
	if (v.model_fd >= 0)
		close(v.model_fd);
out_close:
	close(v.fd);
	return rc == -EINVAL ? 2 : rc ? 1 : 0;
}
