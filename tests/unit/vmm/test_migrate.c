// SPDX-License-Identifier: MIT
/*
 * Live migration's state machine (vmm/migrate.c) on the fake hypervisor: a source and a
 * destination VM in one process over a Unix socket. Pre-copy converges once the guest
 * stops dirtying; the downtime target decides when the final copy starts; a failure in
 * each phase leaves the source running (or, once "end" went out without an ack,
 * paused: UNKNOWN) with its reason; the destination refuses a truncated, damaged or
 * mismatched stream with one error line and a NACK.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "control.h"
#include "fake_hv.h"
#include "log.h"
#include "util.h"

#define PAGE		4096u
#define MEM		(32ull << 20)
#define CPUS		2
#define DATA_GPA	(4ull << 20) /* 8 MiB of data pages for round 0 */
#define DATA_PAGES	2048u
#define DIRTY_PAGE0	4096u        /* the guest's working set: pages 4096.. (16 MiB..) */
#define DIRTY_PAGES	4096u        /* 16 MiB a round: never within 1 ms at any rate here */
#define WAIT_MS		120000

static char sock_path[108];

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- one VM under control.c ---- */

struct side {
	struct vm_config cfg;
	struct fake_hv f;
	struct vmm vmm;
	struct vm *vm;
	/* The guest: writes DIRTY_PAGES pages at each collection from 1 to dirty_until. */
	unsigned int dirty_until;
	/* ... or, if set, half as many at each collection as at the one before, down to
	 * DIRTY_PAGES >> halvings, then that many at every collection. */
	unsigned int halvings;
};

/* The guest between two collections: the pages of its working set get the collection's number. */
static void guest_dirties(struct fake_hv *f, unsigned int collect, void *opaque)
{
	struct side *s = opaque;
	unsigned int i, n = DIRTY_PAGES;

	if (collect == 0 || collect > s->dirty_until)
		return;
	if (s->halvings)
		n >>= MIN(collect - 1, s->halvings);
	for (i = 0; i < n; i++)
		fake_hv_write(f, (uint64_t)(DIRTY_PAGE0 + i) * PAGE, (uint8_t)collect);
}

/* A side whose guest RAM is mergeable (plinth run --memory-merge) or the memfd. */
static struct side *side_new_ram(unsigned int cpus, uint64_t memory, bool incoming, bool merge)
{
	struct side *s = calloc(1, sizeof(*s));
	unsigned int i, j;

	assert_non_null(s);
	fake_hv_init(&s->f);
	fake_vm_config(&s->cfg, &s->f, cpus, memory, -1);
	s->cfg.restore = s->cfg.incoming = incoming;
	s->cfg.memory_merge = merge;
	assert_int_equal(vmm_init(&s->vmm, &s->cfg), 0);
	snprintf(s->vmm.lease_owner, sizeof(s->vmm.lease_owner), incoming ? "dst" : "src");
	s->vm = vm_create(&s->cfg);
	assert_non_null(s->vm);
	vmm_set_vm(&s->vmm, s->vm);
	if (incoming)
		return s;
	/* The source's guest: data pages, vCPU and chip state, a clock. */
	for (i = 0; i < DATA_PAGES; i++)
		memset(guest_mem_ptr(&s->vm->mem, DATA_GPA + (uint64_t)i * PAGE, PAGE),
		       (int)(i * 7 + 1), PAGE);
	for (i = 0; i < cpus; i++)
		for (j = 0; j < FAKE_BLOB; j++)
			s->f.cpu[i][j] = (uint8_t)(i * 16 + j + 1);
	memset(s->f.chip, 0x5a, sizeof(s->f.chip));
	s->f.clock = 123456789;
	s->f.on_collect = guest_dirties;
	s->f.opaque = s;
	return s;
}

static struct side *side_new(unsigned int cpus, uint64_t memory, bool incoming)
{
	return side_new_ram(cpus, memory, incoming, false);
}

static void side_free(struct side *s)
{
	vmm_set_vm(&s->vmm, NULL);
	vm_destroy(s->vm);
	vmm_fini(&s->vmm);
	fake_vm_config_free(&s->cfg);
	fake_hv_fini(&s->f);
	free(s);
}

static struct api_migrate_args args(uint32_t downtime_ms)
{
	struct api_migrate_args a = { .transport = API_MIGRATE_UNIX, .downtime_ms = downtime_ms };

	snprintf(a.path, sizeof(a.path), "%s", sock_path);
	return a;
}

/* Start migrating src and wait for the outcome. */
static struct mig_stats migrate(struct side *src, const struct api_migrate_args *a)
{
	struct mig_stats st;
	char err[API_ERROR_MAX] = "";
	unsigned int ms;

	assert_int_equal(migrate_start(&src->vmm, src->vm, a, err, sizeof(err)), 0);
	for (ms = 0; ms < WAIT_MS; ms += 5) {
		pthread_mutex_lock(&src->vmm.lock);
		st = src->vmm.mig;
		pthread_mutex_unlock(&src->vmm.lock);
		if (st.status != MIG_ACTIVE)
			break;
		sleep_ms(5);
	}
	assert_int_not_equal(st.status, MIG_ACTIVE);
	migrate_join(&src->vmm);
	return st;
}

/* What a failed migration must leave: the guest running, logging off, no exit. */
static void assert_rolled_back(struct side *src, const struct mig_stats *st)
{
	assert_int_equal(st->status, MIG_FAILED);
	assert_true(st->error[0] != '\0');
	assert_false(vm_paused(src->vm));
	assert_false(src->vm->exit_requested);
	assert_int_equal(src->f.slot_flags[0] & HV_MEM_LOG_DIRTY, 0);
	assert_int_equal(atomic_load(&src->vm->throttle_pct), 0);
}

/* ---- the real destination, on a thread ---- */

struct receiver {
	struct side *dst;
	pthread_t thread;
	int lfd;
	int ret;
	struct log_capture cap; /* the receiving thread's errors */
};

static void *receive_thread(void *arg)
{
	struct receiver *r = arg;
	struct api_migrate_args a = args(1);
	int signo = 0;

	log_capture_begin(&r->cap);
	r->ret = migrate_receive(r->lfd, &a, NULL, r->dst->vm, "dst", -1, &signo);
	log_capture_end(&r->cap);
	return NULL;
}

static void receiver_start(struct receiver *r, struct side *dst)
{
	struct api_migrate_args a = args(1);

	memset(r, 0, sizeof(*r));
	r->dst = dst;
	r->lfd = migrate_listen(&a);
	assert_true(r->lfd >= 0);
	assert_int_equal(pthread_create(&r->thread, NULL, receive_thread, r), 0);
}

static int receiver_end(struct receiver *r)
{
	assert_int_equal(pthread_join(r->thread, NULL), 0);
	return r->ret;
}

/* The destination holds what the source had: every RAM page and the hypervisor's state. */
static void assert_same_guest(struct side *src, struct side *dst)
{
	unsigned int i;

	assert_int_equal(src->vm->mem.nr_slots, dst->vm->mem.nr_slots);
	for (i = 0; i < src->vm->mem.nr_slots; i++)
		assert_memory_equal(src->vm->mem.slot[i].hva, dst->vm->mem.slot[i].hva,
				    src->vm->mem.slot[i].size);
	assert_memory_equal(src->f.cpu, dst->f.cpu, sizeof(src->f.cpu));
	assert_memory_equal(src->f.chip, dst->f.chip, sizeof(src->f.chip));
	assert_int_equal(dst->f.clock, src->f.clock);
}

/* ---- a fake destination: reads the stream, cuts it, answers what the test says ---- */

struct sink {
	int lfd;
	pthread_t thread;
	size_t cut_after;      /* close after this many bytes (0: never) */
	atomic_bool final;     /* the source is in its final phase: the tail follows */
	atomic_bool cut_now;   /* close at once (then closed is posted) */
	sem_t closed;
	int reply;             /* once the tail is read (quiet 300 ms): send this byte, -1 none */
	uint8_t *buf;          /* everything read (record) */
	size_t len, cap;
	bool record;
};

static void sink_keep(struct sink *k, const uint8_t *p, size_t n)
{
	if (!k->record)
		return;
	if (k->len + n > k->cap) {
		k->cap = (k->len + n) * 2;
		k->buf = realloc(k->buf, k->cap);
		assert_non_null(k->buf);
	}
	memcpy(k->buf + k->len, p, n);
	k->len += n;
}

static void *sink_thread(void *arg)
{
	struct sink *k = arg;
	static uint8_t buf[1 << 16];
	size_t total = 0;
	unsigned int quiet = 0;
	int fd = accept(k->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (atomic_load(&k->cut_now))
			break;
		if (poll(&p, 1, 20) == 0) {
			quiet += 20;
			if (atomic_load(&k->final) && quiet >= 300)
				break;
			continue;
		}
		quiet = 0;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		sink_keep(k, buf, (size_t)n);
		total += (size_t)n;
		if (k->cut_after && total >= k->cut_after)
			break;
	}
	if (k->reply >= 0 && !atomic_load(&k->cut_now)) {
		uint8_t b = (uint8_t)k->reply;

		assert_int_equal(write(fd, &b, 1), 1);
		while (read(fd, buf, sizeof(buf)) > 0)
			; /* until the source closes */
	}
	close(fd);
	sem_post(&k->closed);
	return NULL;
}

static void sink_start(struct sink *k, int reply)
{
	struct api_migrate_args a = args(1);

	memset(k, 0, sizeof(*k));
	k->reply = reply;
	sem_init(&k->closed, 0, 0);
	k->lfd = migrate_listen(&a);
	assert_true(k->lfd >= 0);
	assert_int_equal(pthread_create(&k->thread, NULL, sink_thread, k), 0);
}

static void sink_end(struct sink *k)
{
	assert_int_equal(pthread_join(k->thread, NULL), 0);
	close(k->lfd);
	unlink(sock_path);
	sem_destroy(&k->closed);
}

/* on_save: the final phase began; the sink reads the tail and then answers (or not). */
static void final_begins(struct fake_hv *f, void *opaque)
{
	struct sink *k = opaque;

	atomic_store(&k->final, true);
}

/* on_save: the destination vanishes in the middle of the final phase. */
static void cut_in_final(struct fake_hv *f, void *opaque)
{
	struct sink *k = opaque;

	atomic_store(&k->cut_now, true);
	sem_wait(&k->closed);
}

/*
 * Migrate src to the sink k (started by the caller) and wait for both; with on_save,
 * the final phase tells the sink (its opaque then: the guest does not dirty).
 */
static struct mig_stats to_sink(struct side *src, struct sink *k, uint32_t downtime_ms,
				void (*on_save)(struct fake_hv *f, void *opaque))
{
	struct api_migrate_args a = args(downtime_ms);
	struct mig_stats st;

	if (on_save) {
		src->f.on_collect = NULL;
		src->f.on_save = on_save;
		src->f.opaque = k;
	}
	st = migrate(src, &a);
	sink_end(k);
	return st;
}

/* ---- pre-copy and the final copy ---- */

/*
 * The guest dirties its working set for three collections, then stops: rounds go on
 * (throttling it, as the dirty set does not shrink) until nothing is left to send
 * within the downtime target, then the final copy; the destination ends up with every
 * page. Nothing left is within any target, 0 ms included.
 */
static void test_precopy_converges(void **state)
{
	static const uint32_t downtime_ms[] = { 1, 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(downtime_ms) / sizeof(downtime_ms[0]); i++) {
		struct side *src = side_new(CPUS, MEM, false), *dst = side_new(CPUS, MEM, true);
		struct api_migrate_args a = args(downtime_ms[i]);
		struct receiver r;
		struct mig_stats st;

		src->dirty_until = 3;
		receiver_start(&r, dst);
		st = migrate(src, &a);
		assert_int_equal(receiver_end(&r), 0);
		assert_int_equal(st.status, MIG_COMPLETED);
		/* Rounds 0-3 (the 4th finds nothing dirty), then the final one: 5. */
		assert_int_equal(st.rounds, 5);
		assert_int_equal(st.throttle_pct, 40); /* rounds 1 and 2 did not shrink the set */
		assert_true(src->vm->exit_requested);
		assert_int_equal(src->vm->exit_reason, VM_EXIT_MIGRATED);
		assert_int_equal(atomic_load(&src->vm->throttle_pct), 0);
		assert_int_equal(src->f.slot_flags[0] & HV_MEM_LOG_DIRTY, 0);
		assert_int_equal(src->f.saves, 1);
		assert_same_guest(src, dst);
		/* The working set holds the last collection's writes, sent in a later round. */
		assert_int_equal(*(uint8_t *)guest_mem_ptr(&dst->vm->mem, DIRTY_PAGE0 * PAGE, 1), 3);
		assert_int_equal(r.cap.errors, 0);
		side_free(src);
		side_free(dst);
	}
}

/* True if /proc/self/smaps gives the mapping at hva the VmFlag flag ("mg": mergeable). */
static bool vm_flag(const void *hva, const char *flag)
{
	char line[512], want[32];
	bool in = false, found = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	assert_non_null(f);
	snprintf(want, sizeof(want), " %s", flag);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)hva >= lo && (uintptr_t)hva < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			found = strstr(line, want) != NULL;
	}
	fclose(f);
	return found;
}

/*
 * Guest RAM that KSM may merge (--memory-merge) has no memfd, so round 0 can't skip
 * holes and reads every page: the destination gets the same guest all the same, and
 * the RAM is marked mergeable where the kernel has KSM (a shared memfd never is).
 */
static void test_mergeable_ram(void **state)
{
	struct side *src = side_new_ram(CPUS, MEM, false, true), *dst = side_new_ram(CPUS, MEM, true, true);
	struct api_migrate_args a = args(0);
	struct side *plain = side_new(CPUS, MEM, true);
	struct receiver r;
	struct mig_stats st;

	(void)state;
	assert_int_equal(src->vm->mem.fd, -1);
	assert_false(src->vm->mem.shared);
	assert_false(vm_flag(plain->vm->mem.slot[0].hva, "mg"));
	if (access("/sys/kernel/mm/ksm/run", F_OK) == 0)
		assert_true(vm_flag(src->vm->mem.slot[0].hva, "mg"));
	side_free(plain);
	src->dirty_until = 2;
	receiver_start(&r, dst);
	st = migrate(src, &a);
	assert_int_equal(receiver_end(&r), 0);
	assert_int_equal(st.status, MIG_COMPLETED);
	assert_same_guest(src, dst);
	side_free(src);
	side_free(dst);
}

/*
 * A guest that never stops dirtying: with a generous downtime target the final copy
 * starts once a round no longer halves the dirty set (round 1 when the set is the same
 * working set every time; round 4 when the guest dirties 4096, 2048, 1024, then 512
 * pages at every collection: a final copy of 512 pages instead of 4096 right after
 * round 0), never throttled; with 1 ms, only after MIG_MAX_ROUNDS (30), fully
 * throttled. All end with the same guest at the destination.
 */
static void test_downtime_decides(void **state)
{
	static const struct {
		uint32_t downtime_ms;
		unsigned int halvings, rounds, throttle;
		uint64_t pages; /* at least: round 0's data pages and every dirtied page since */
	} cases[] = {
		{ 60000, 0, 3, 0, DATA_PAGES + 2 * DIRTY_PAGES },
		{ 1, 0, 31, 80, DATA_PAGES + 30 * DIRTY_PAGES },
		{ 60000, 3, 6, 0, DATA_PAGES + 4096 + 2048 + 1024 + 512 + 512 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct side *src = side_new(CPUS, MEM, false), *dst = side_new(CPUS, MEM, true);
		struct api_migrate_args a = args(cases[i].downtime_ms);
		struct receiver r;
		struct mig_stats st;

		src->dirty_until = UINT32_MAX;
		src->halvings = cases[i].halvings;
		receiver_start(&r, dst);
		st = migrate(src, &a);
		assert_int_equal(receiver_end(&r), 0);
		assert_int_equal(st.status, MIG_COMPLETED);
		assert_int_equal(st.rounds, cases[i].rounds);
		assert_int_equal(st.throttle_pct, cases[i].throttle);
		assert_true(st.pages >= cases[i].pages);
		assert_same_guest(src, dst);
		side_free(src);
		side_free(dst);
	}
}

/* ---- failures, phase by phase ---- */

/* CONNECT: nobody listens. The guest never stopped, logging never started. */
static void test_fail_connect(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct api_migrate_args a = args(1);
	struct mig_stats st;

	(void)state;
	unlink(sock_path);
	st = migrate(src, &a);
	assert_rolled_back(src, &st);
	assert_non_null(strstr(st.error, "cannot connect to unix:"));
	assert_int_equal(src->f.dirty_gets, 0);
	side_free(src);
}

/* ROUND 0: the destination goes away after 64 KiB; the source's write fails. */
static void test_fail_send_precopy(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct mig_stats st;
	struct sink k;

	(void)state;
	sink_start(&k, -1);
	k.cut_after = 64 << 10;
	st = to_sink(src, &k, 1, NULL);
	assert_rolled_back(src, &st);
	assert_non_null(strstr(st.error, "migration stream"));
	assert_int_equal(src->f.saves, 0); /* never reached the final phase */
	side_free(src);
}

/* ROUND n: the hypervisor's dirty log fails at the third collection. */
static void test_fail_dirty_log(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct mig_stats st;
	struct sink k;

	(void)state;
	src->dirty_until = UINT32_MAX;
	src->f.fail_dirty_get = -EIO;
	src->f.fail_dirty_get_at = 2;
	sink_start(&k, -1);
	st = to_sink(src, &k, 1, NULL);
	assert_rolled_back(src, &st);
	assert_string_equal(st.error, "KVM_GET_DIRTY_LOG: Input/output error");
	assert_int_equal(src->f.saves, 0);
	side_free(src);
}

/* FINAL: the destination goes away while the vCPU state is written: resumed. */
static void test_fail_send_final(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct mig_stats st;
	struct sink k;

	(void)state;
	sink_start(&k, -1);
	st = to_sink(src, &k, 60000, cut_in_final);
	assert_rolled_back(src, &st);
	assert_non_null(strstr(st.error, "write failed"));
	assert_int_equal(src->f.saves, 1);
	side_free(src);
}

/* FINAL: the hypervisor cannot give the vCPU state: resumed, with its reason. */
static void test_fail_save(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct mig_stats st;
	struct sink k;

	(void)state;
	sink_start(&k, -1);
	src->f.fail_save = -EIO;
	st = to_sink(src, &k, 60000, NULL);
	assert_rolled_back(src, &st);
	assert_string_equal(st.error, "Input/output error");
	assert_int_equal(src->f.saves, 1);
	side_free(src);
}

/* ACK: a NACK is a sure refusal: resumed, saying the destination refused. */
static void test_nack(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct mig_stats st;
	struct sink k;

	(void)state;
	sink_start(&k, 'N');
	st = to_sink(src, &k, 60000, final_begins);
	assert_rolled_back(src, &st);
	assert_string_equal(st.error, "the destination refused the stream (its log says why)");
	side_free(src);
}

/*
 * ACK: "end" went out and the destination closed without answering: UNKNOWN, the
 * guest stays paused (it may run there); taking it back resumes it.
 */
static void test_no_ack_unknown(void **state)
{
	struct side *src = side_new(CPUS, MEM, false);
	char err[API_ERROR_MAX] = "";
	struct mig_stats st;
	struct sink k;

	(void)state;
	sink_start(&k, -1);
	st = to_sink(src, &k, 60000, final_begins);
	assert_int_equal(st.status, MIG_UNKNOWN);
	assert_non_null(strstr(st.error, "no confirmation from the destination"));
	assert_true(vm_paused(src->vm));
	assert_false(src->vm->exit_requested);
	assert_int_equal(migrate_take_back(&src->vmm, src->vm, err, sizeof(err)), 0);
	assert_false(vm_paused(src->vm));
	assert_int_equal(src->vmm.mig.status, MIG_FAILED);
	side_free(src);
}

/* ---- the destination's refusals ---- */

/* A stream recorded from a source whose destination never answered. */
static uint8_t *record_stream(size_t *len)
{
	struct side *src = side_new(CPUS, MEM, false);
	struct sink k;

	sink_start(&k, -1);
	k.record = true;
	assert_int_equal(to_sink(src, &k, 60000, final_begins).status, MIG_UNKNOWN);
	side_free(src);
	*len = k.len;
	return k.buf;
}

/* Feed len bytes of stream to a destination; its answer byte, or -1 for none. */
static int feed(const uint8_t *stream, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint8_t b;
	int ret;

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(write_full(fd, stream, len), 0);
	shutdown(fd, SHUT_WR);
	ret = read(fd, &b, 1) == 1 ? b : -1;
	close(fd);
	return ret;
}

/*
 * The whole recorded stream is taken and acked; cut short, or with one byte of RAM
 * changed, it is refused with one error line and a NACK, and the guest never runs.
 */
static void test_receive_truncated_or_damaged(void **state)
{
	size_t len, cut[] = { 0, 100, 0, 0 };
	uint8_t *stream = record_stream(&len);
	unsigned int i;

	(void)state;
	assert_true(len > DATA_PAGES * PAGE);
	cut[0] = len;          /* whole: accepted */
	cut[2] = len / 2;      /* in the middle of the RAM */
	cut[3] = len - 1;      /* the last byte of "end" missing */
	for (i = 0; i < 5; i++) {
		struct side *dst = side_new(CPUS, MEM, true);
		bool damaged = i == 4;
		struct receiver r;
		int answer;

		receiver_start(&r, dst);
		if (damaged)
			stream[len / 2] ^= 0x40;
		answer = feed(stream, damaged ? len : cut[i]);
		if (damaged)
			stream[len / 2] ^= 0x40;
		if (i == 0) {
			assert_int_equal(receiver_end(&r), 0);
			assert_int_equal(answer, 'A');
			assert_int_equal(r.cap.errors, 0);
		} else {
			assert_int_not_equal(receiver_end(&r), 0);
			assert_int_equal(answer, 'N');
			assert_int_equal(r.cap.errors, 1);
			assert_non_null(strstr(r.cap.first_error, "migration refused: "));
		}
		side_free(dst);
	}
	free(stream);
}

/* A destination built differently (1 vCPU, not 2): refused by its config, NACK. */
static void test_receive_mismatched(void **state)
{
	struct side *src = side_new(CPUS, MEM, false), *dst = side_new(1, MEM, true);
	struct api_migrate_args a = args(60000);
	struct receiver r;
	struct mig_stats st;

	(void)state;
	src->f.on_collect = NULL;
	receiver_start(&r, dst);
	st = migrate(src, &a);
	assert_int_not_equal(receiver_end(&r), 0);
	assert_int_equal(r.cap.errors, 1);
	assert_string_equal(r.cap.first_error,
			    "migration refused: migration stream: the saved VM has 2 vCPUs, this "
			    "one 1 (--cpus)");
	assert_rolled_back(src, &st);
	assert_string_equal(st.error, "the destination refused the stream (its log says why)");
	side_free(src);
	side_free(dst);
}

static int setup(void **state)
{
	char dir[] = "/tmp/plinth-mig-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/s", dir);
	return 0;
}

static int teardown(void **state)
{
	char *slash;

	(void)state;
	unlink(sock_path);
	slash = strrchr(sock_path, '/');
	*slash = '\0';
	rmdir(sock_path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_precopy_converges),
		cmocka_unit_test(test_mergeable_ram),
		cmocka_unit_test(test_downtime_decides),
		cmocka_unit_test(test_fail_connect),
		cmocka_unit_test(test_fail_send_precopy),
		cmocka_unit_test(test_fail_dirty_log),
		cmocka_unit_test(test_fail_send_final),
		cmocka_unit_test(test_fail_save),
		cmocka_unit_test(test_nack),
		cmocka_unit_test(test_no_ack_unknown),
		cmocka_unit_test(test_receive_truncated_or_damaged),
		cmocka_unit_test(test_receive_mismatched),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	alarm(600); /* a phase that never ends: fail, not hang */
	return cmocka_run_group_tests(tests, setup, teardown);
}
