// SPDX-License-Identifier: MIT
/*
 * Live migration: pre-copy of guest RAM over a TCP or Unix stream socket, in the
 * state container format (vmm/state/state.h), then the vCPU and device state.
 *
 * The stream:  header | "config.3" | "ram"/"ram-zero"... (rounds) | the same (final) |
 *              "cpu".. "irqchip" "pit" "clock" "serial" "pm" "i8042" "virtio.2".. |
 *              "end" (counts + whole-stream crc)
 * then the destination answers one byte: MIG_ACK once all of it checked out, or
 * MIG_NACK when it refused the stream (best effort: it may just close).
 *
 * Source state machine (migration thread; vmm->mig.status in brackets; the function
 * that runs each phase in parens, called in turn by migrate_thread):
 *
 *   IDLE --API migrate (main thread: migrate_start)--> CONNECT [active]
 *   CONNECT (phase_connect) --connected, "config" sent, dirty logging on-->
 *        ROUND 0 (phase_precopy, as every round): every non-zero page (the
 *        destination's RAM starts zeroed)
 *   ROUND n --dirty set (KVM dirty log | device writes) estimated to send within
 *        the downtime target at the measured page rate and no longer halving
 *        (precopy_done), or 30 rounds--> FINAL
 *   ROUND n --dirty set still halving--> ROUND n+1
 *   ROUND n --dirty set not shrinking by half, beyond the target--> throttle vCPUs
 *        +20% (max 80%), ROUND n+1
 *   FINAL (phase_final): over TCP wait (at most 100 ms) for the send queue to
 *        empty, then pause vCPUs, stop virtio I/O threads, flush and close
 *        the disk images (invariant 4), send the last dirty pages, the vCPU and
 *        device state, "end"; wait for the ack (phase_ack)
 *   FINAL --ack--> SWITCHED [completed]: vm_request_exit(VM_EXIT_MIGRATED); the
 *        source exits 0 and never runs the guest again
 *   FINAL --"end" sent, then no ack (lost, timed out, peer gone)--> UNKNOWN
 *        [unknown]: the destination may hold the whole stream and run the guest,
 *        so the source stays paused, its devices stopped and its disk images
 *        released, and says so; the operator (or the daemon) finds out which side
 *        runs the guest: `ctl resume` here takes it back (migrate_take_back: the
 *        images reopened with their locks, devices restarted, vCPUs resumed), or
 *        this VMM is stopped
 *   any state before "end" was sent --error, cancel--> ROLLBACK [failed]
 *        (phase_outcome, which ends SWITCHED and UNKNOWN too): dirty logging off,
 *        disk images reopened, devices restarted, vCPUs resumed if we paused
 *        them, throttle 0: the guest goes on as if nothing happened
 *
 * The channel: TCP is always TLS 1.3 with the pre-shared key both sides hold
 * (--migrate-psk, migrate_tls.h); a Unix socket (mode 0600, this host only) is
 * plain. Names are never
 * resolved here (plinth ctl resolves them: the resolver is outside our filter).
 *
 * The destination (migrate_listen, then migrate_receive on its first VM): its VM
 * is built from its own command line, the socket bound, and the process jailed
 * and filtered before the first byte of the stream is read; the stream's config
 * is only checked against that VM (vm_state_check_config).
 *
 * Invariants:
 *  1. The source resumes the guest by itself only if the destination cannot hold
 *     the whole stream ("end" not sent); the destination runs the guest only after
 *     sending its ack, and sends it only after the "end" section's counts and
 *     whole-stream crc matched.
 *  2. Pages written by vCPUs are caught by KVM's dirty log; pages written by our
 *     devices (buffers and used rings, which KVM cannot see) are caught by
 *     guest_mem_mark_dirty() in virtq_push/fill/flush, into slot->dev_dirty. Both
 *     are collected after the vCPUs are parked and the I/O threads joined, so
 *     nothing changes RAM after the final collection.
 *  3. Device state is loaded on the destination after all RAM: a device's I/O
 *     thread starts on complete rings.
 *  4. The disk images live on storage both sides share, and one process at a
 *     time writes them (image locks): the destination opens them read-only and
 *     unlocked for their sizes, the source lets go of them once its I/O threads
 *     have stopped, and the destination reopens them, locked and with fresh
 *     metadata, before it acks. A source that gets no ack takes them back. Both
 *     reopen from the files they opened at start-up, never by path (so inside
 *     --jail too, and under the main thread's narrowed filter).
 *  5. Across hosts, where flock may not hold, the disks' leases (lease.h) say who
 *     runs the guest: the destination writes its own before it acks, and a source
 *     whose outcome is unknown takes the guest back only while they still name it.
 *     With --epoch, a destination refuses the stream (NACK) if a lease holds a
 *     higher epoch of the VM than its own.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_notsent_bytes, which glibc's lacks */

#include "control.h"
#include "lease.h"
#include "log.h"
#include "migrate_tls.h"
#include "util.h"
#include "vmstate.h"
#include "virtio/virtio-pci.h"

#define PAGE		4096u
#define MIG_ACK		0x41    /* 'A': the destination took the whole stream */
#define MIG_NACK	0x4e    /* 'N': the destination refused it and will not run the guest */
#define MIG_MAX_ROUNDS	30
#define MIG_RUN_MAX	(1u << 20) /* bytes of pages in one "ram" section */
#define MIG_IO_TIMEOUT	20       /* seconds without progress: the peer is gone */
#define MIG_DISK_WAIT_MS 5000   /* for the other side to let go of the disk images */
/*
 * TCP buffers of each side (the kernel doubles it). Left to autotuning, loopback grew
 * them to several MiB: stream the source had "sent" still queued for the destination,
 * which it then took 125-253 ms to read, decrypt and load inside the downtime (measured
 * in the emulated host at ~20 MB/s of TLS). 512 KiB still covers a 10 Gbit/s link's
 * bandwidth-delay product up to ~0.4 ms of round trip.
 */
#define MIG_SOCK_BUF	(512 << 10)
#define MIG_DRAIN_MS	100    /* at most, before the pause, for our send queue to empty */
#define BITS		(8 * sizeof(unsigned long))

/* ---- sockets ---- */

static int mig_connect(const struct api_migrate_args *a, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = MIG_IO_TIMEOUT };
	int fd = -1, ret;

	if (a->transport == API_MIGRATE_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "cannot connect to unix:%s: %s", a->path, strerror(errno));
			goto out_close;
		}
	} else {
		/* Numeric only (migrate_start checked): the resolver is outside our filter. */
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res, *ai;
		char port[8];
		int gai;

		snprintf(port, sizeof(port), "%u", a->port);
		gai = getaddrinfo(a->host, port, &hints, &res);
		if (gai) {
			snprintf(err, errlen, "cannot resolve %.100s: %s", a->host, gai_strerror(gai));
			return -EHOSTUNREACH;
		}
		ret = -ECONNREFUSED;
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ MIG_SOCK_BUF }, sizeof(int));
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			ret = -errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0) {
			snprintf(err, errlen, "cannot connect to tcp:%.100s:%u: %s", a->host, a->port,
				 strerror(-ret));
			return ret;
		}
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* The stream's tail and the ack are small: no Nagle delay inside the downtime. */
	if (a->transport == API_MIGRATE_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	return fd;

out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int mig_listen(const struct api_migrate_args *a)
{
	int fd, one = 1, ret;

	if (a->transport == API_MIGRATE_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		unlink(a->path); /* a stale socket from an earlier run */
		/* Only this user may connect: the stream needs no key on a Unix socket. */
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		    chmod(a->path, 0600) < 0 || listen(fd, 1) < 0)
			goto out_errno;
		return fd;
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
		char port[8];

		snprintf(port, sizeof(port), "%u", a->port);
		if (getaddrinfo(a->host, port, &hints, &res))
			return -EADDRNOTAVAIL;
		fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
		if (fd < 0) {
			freeaddrinfo(res);
			return -errno;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Before listen, so the accepted socket has it from its handshake on. */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ MIG_SOCK_BUF }, sizeof(int));
		if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0) {
			freeaddrinfo(res);
			goto out_errno;
		}
		freeaddrinfo(res);
		return fd;
	}

out_errno:
	ret = -errno;
	close(fd);
	return ret;
}

/* ---- dirty tracking ---- */

struct dirty {
	unsigned long *kvm[GUEST_MEM_MAX_SLOTS]; /* pages to send: accumulated, cleared as sent */
	unsigned long *log[GUEST_MEM_MAX_SLOTS]; /* KVM_GET_DIRTY_LOG output */
	unsigned long *dev[GUEST_MEM_MAX_SLOTS]; /* published in slot->dev_dirty */
	unsigned long *clr[GUEST_MEM_MAX_SLOTS]; /* read from KVM, not yet re-protected */
	size_t words[GUEST_MEM_MAX_SLOTS];
	bool logging;
	bool manual; /* vm->dirty_manual: send_pages() re-protects before it reads */
};

/* Pages re-protected per KVM_CLEAR_DIRTY_LOG (64 MiB; a multiple of 64 as KVM asks). */
#define CLEAR_CHUNK (16384u)

static int set_logging(struct vm *vm, bool on)
{
	unsigned int i;

	for (i = 0; i < vm->mem.nr_slots; i++) {
		const struct guest_mem_slot *s = &vm->mem.slot[i];
		int ret = vm->hv->set_memory(vm, i, s->gpa, s->size, s->hva,
					     on ? HV_MEM_LOG_DIRTY : 0);

		if (ret)
			return ret;
	}
	return 0;
}

static void dirty_stop(struct vm *vm, struct dirty *d)
{
	unsigned int i;

	if (d->logging)
		set_logging(vm, false);
	d->logging = false;
	for (i = 0; i < vm->mem.nr_slots; i++)
		__atomic_store_n(&vm->mem.slot[i].dev_dirty, NULL, __ATOMIC_RELEASE);
	/* A device thread may still hold the old pointer for one mark: let it finish. */
	usleep(1000);
	for (i = 0; i < GUEST_MEM_MAX_SLOTS; i++) {
		free(d->kvm[i]);
		free(d->log[i]);
		free(d->dev[i]);
		free(d->clr[i]);
		d->kvm[i] = d->log[i] = d->dev[i] = d->clr[i] = NULL;
	}
}

static int dirty_start(struct vm *vm, struct dirty *d)
{
	unsigned int i;
	int ret;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < vm->mem.nr_slots; i++) {
		uint64_t pages = vm->mem.slot[i].size / PAGE;

		d->words[i] = (size_t)((pages + BITS - 1) / BITS);
		d->kvm[i] = calloc(d->words[i], sizeof(unsigned long));
		d->log[i] = calloc(d->words[i], sizeof(unsigned long));
		d->dev[i] = calloc(d->words[i], sizeof(unsigned long));
		d->clr[i] = calloc(d->words[i], sizeof(unsigned long));
		if (!d->kvm[i] || !d->log[i] || !d->dev[i] || !d->clr[i]) {
			dirty_stop(vm, d);
			return -ENOMEM;
		}
	}
	ret = set_logging(vm, true);
	if (ret) {
		set_logging(vm, false);
		dirty_stop(vm, d);
		return ret;
	}
	d->logging = true;
	d->manual = vm->dirty_manual;
	for (i = 0; i < vm->mem.nr_slots; i++)
		__atomic_store_n(&vm->mem.slot[i].dev_dirty, d->dev[i], __ATOMIC_RELEASE);
	return 0;
}

/*
 * Collect what was dirtied since the last call: KVM's log and the devices' bits
 * are OR'ed into d->kvm, which keeps what was collected earlier and not sent
 * yet. KVM clears its log as we read it, or, in manual mode, keeps the pages
 * writable until send_pages() re-protects them (d->clr) just before it reads
 * them: a write after that is in the next collection either way. Returns the
 * number of pages to send or -errno.
 */
static int64_t dirty_collect(struct vm *vm, struct dirty *d)
{
	int64_t n = 0;
	unsigned int i;
	size_t w;

	for (i = 0; i < vm->mem.nr_slots; i++) {
		int ret = vm->hv->dirty_log_get(vm, i, d->log[i]);

		if (ret)
			return ret;
		for (w = 0; w < d->words[i]; w++) {
			d->kvm[i][w] |= d->log[i][w] |
					__atomic_exchange_n(&d->dev[i][w], 0, __ATOMIC_RELAXED);
			d->clr[i][w] |= d->log[i][w];
			n += __builtin_popcountl(d->kvm[i][w]);
		}
	}
	return n;
}

/* ---- sending pages ---- */

struct sender {
	struct state_writer *w;
	struct vmm *vmm;
	uint32_t runs;      /* runs in the open section */
	uint64_t sec_bytes; /* page bytes in the open section */
	uint64_t pages;
	uint64_t zero_pages; /* sent as "ram-zero" runs */
};

/*
 * A "ram" section holds: u32 number of runs, then per run u64 gpa and a bytes
 * field of whole pages. The count comes first, so runs are gathered before the
 * section opens: at most RUNS_PER_SECTION runs or MIG_RUN_MAX bytes.
 */
#define RUNS_PER_SECTION 256
struct run {
	uint64_t gpa;
	const uint8_t *hva;
	uint32_t len;
};

static int flush_runs(struct sender *s, struct run *runs, unsigned int *nr)
{
	unsigned int i;

	if (!*nr)
		return 0;
	state_writer_begin_section(s->w, "ram", 0, 0);
	state_put_u32(s->w, *nr);
	for (i = 0; i < *nr; i++) {
		state_put_u64(s->w, runs[i].gpa);
		state_put_bytes(s->w, runs[i].hva, runs[i].len);
		s->pages += runs[i].len / PAGE;
	}
	*nr = 0;
	s->sec_bytes = 0;
	return state_writer_end_section(s->w);
}

/*
 * A "ram-zero" section: u32 number of runs, then per run u64 gpa and u64 length in bytes
 * (whole pages): pages dirtied since an earlier round that now hold only zeros, sent as
 * their addresses instead of their 4 KiB each (a guest freeing or zeroing memory, or
 * writing zeros to tmpfs, dirties such pages). Round 0 skips zero pages altogether: the
 * destination's RAM starts zeroed.
 */
struct zruns {
	uint64_t gpa[RUNS_PER_SECTION];
	uint64_t len[RUNS_PER_SECTION];
	unsigned int nr;
};

static int flush_zero_runs(struct sender *s, struct zruns *z)
{
	unsigned int i;

	if (!z->nr)
		return 0;
	state_writer_begin_section(s->w, "ram-zero", 0, 0);
	state_put_u32(s->w, z->nr);
	for (i = 0; i < z->nr; i++) {
		state_put_u64(s->w, z->gpa[i]);
		state_put_u64(s->w, z->len[i]);
		s->zero_pages += z->len[i] / PAGE;
	}
	z->nr = 0;
	return state_writer_end_section(s->w);
}

/* Add the zero page at gpa to z, flushing z when it is full. 0 or -errno. */
static int add_zero_page(struct sender *s, struct zruns *z, uint64_t gpa)
{
	int ret;

	if (z->nr && z->gpa[z->nr - 1] + z->len[z->nr - 1] == gpa) {
		z->len[z->nr - 1] += PAGE;
		return 0;
	}
	if (z->nr == RUNS_PER_SECTION) {
		ret = flush_zero_runs(s, z);
		if (ret)
			return ret;
	}
	z->gpa[z->nr] = gpa;
	z->len[z->nr++] = PAGE;
	return 0;
}

static bool page_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];

	return !memcmp(p, zero, PAGE);
}

/*
 * Manual mode: clear (re-protect) the chunk of slot i that starts at page
 * first, for the pages KVM reported and we have not cleared yet. 0 or -errno.
 */
static int dirty_clear_chunk(struct vm *vm, struct dirty *d, unsigned int i, uint64_t first)
{
	uint64_t pages = vm->mem.slot[i].size / PAGE;
	uint32_t n = (uint32_t)MIN((uint64_t)CLEAR_CHUNK, pages - first);
	size_t w0 = (size_t)(first / BITS), w1 = (size_t)((first + n + BITS - 1) / BITS), w;
	bool any = false;
	int ret;

	for (w = w0; w < w1 && !any; w++)
		any = d->clr[i][w] != 0;
	if (!any)
		return 0;
	ret = vm->hv->dirty_log_clear(vm, i, first, n, &d->clr[i][w0]);
	if (ret)
		return ret;
	memset(&d->clr[i][w0], 0, (w1 - w0) * sizeof(unsigned long));
	return 0;
}

/*
 * Round 0 reads every page. A page in a hole of the shared memfd was never
 * written, so it is zero without reading it: reading it would make the kernel
 * allocate it, and the source would end up holding all of the guest's RAM however
 * little the guest used. The next data extent at or after page p of slot i, as
 * page indices [*from, *to); both = pages when the rest is a hole. Any other
 * error: the whole rest counts as data (read and checked as before).
 *
 * A hole is only a hole until the guest first writes there, and in manual mode that
 * write leaves a dirty bit only once the page's chunk has been re-protected: so a
 * hole may be trusted only inside the chunk re-protected before it was looked up
 * (send_pages looks again at every chunk). Trusting a long hole across chunks lost
 * every page the guest first touched there during round 0, before their chunk's
 * turn: a zero page at the destination (a triple fault, a stuck vCPU, a stale page
 * cache that wrote old bytes back over acknowledged disk writes).
 */
static void next_data(const struct guest_mem *gm, unsigned int i, uint64_t p, uint64_t *from,
		      uint64_t *to)
{
	const struct guest_mem_slot *sl = &gm->slot[i];
	uint64_t pages = sl->size / PAGE;
	off_t base = (off_t)sl->file_off, ds, de;

	*from = p;
	*to = pages;
	if (!gm->shared || gm->fd < 0)
		return;
	ds = lseek(gm->fd, base + (off_t)(p * PAGE), SEEK_DATA);
	if (ds < 0) {
		if (errno == ENXIO)
			*from = pages;
		return;
	}
	if (ds >= base + (off_t)sl->size) {
		*from = pages;
		return;
	}
	de = lseek(gm->fd, ds, SEEK_HOLE);
	*from = (uint64_t)(ds - base) / PAGE;
	if (de > ds)
		*to = MIN(pages, ((uint64_t)(de - base) + PAGE - 1) / PAGE);
}

/*
 * Send the pages set in d->kvm (all pages if all, skipping zero ones then),
 * clearing the bitmap as it goes. 0 or -errno.
 */
static int send_pages(struct vm *vm, struct dirty *d, bool all, struct sender *s)
{
	struct run runs[RUNS_PER_SECTION];
	struct zruns *z = calloc(1, sizeof(*z)); /* 4 KiB: not on this thread's stack */
	unsigned int nr = 0, i;
	int ret;

	if (!z)
		return -ENOMEM;
	for (i = 0; i < vm->mem.nr_slots; i++) {
		const struct guest_mem_slot *sl = &vm->mem.slot[i];
		uint64_t pages = sl->size / PAGE, p, data_from = 0, data_to = 0;

		for (p = 0; p < pages; p++) {
			unsigned long *word = &d->kvm[i][p / BITS];
			unsigned long bit = 1UL << (p % BITS);
			const uint8_t *hva = sl->hva + p * PAGE;

			if (d->manual && p % CLEAR_CHUNK == 0) {
				ret = dirty_clear_chunk(vm, d, i, p);
				if (ret)
					goto out_free;
				/* A hole found before this chunk was re-protected may have been
				 * written since, and that write left no dirty bit: look again
				 * (a skipped page would be lost: the destination's copy zero). */
				data_from = data_to = 0;
			}

			if (!all && !(*word & bit)) {
				if (!*word)
					p |= BITS - 1; /* skip the empty word */
				continue;
			}
			*word &= ~bit;
			if (all && p >= data_to)
				next_data(&vm->mem, i, p, &data_from, &data_to);
			if (all && (p < data_from || page_zero(hva)))
				continue;
			if (!all && page_zero(hva)) {
				ret = add_zero_page(s, z, sl->gpa + p * PAGE);
				if (ret)
					goto out_free;
				continue;
			}
			if (nr && runs[nr - 1].hva + runs[nr - 1].len == hva &&
			    runs[nr - 1].len + PAGE <= MIG_RUN_MAX) {
				runs[nr - 1].len += PAGE;
			} else {
				if (nr == RUNS_PER_SECTION) {
					ret = flush_runs(s, runs, &nr);
					if (ret)
						goto out_free;
				}
				runs[nr++] = (struct run){ sl->gpa + p * PAGE, hva, PAGE };
			}
			s->sec_bytes += PAGE;
			if (s->sec_bytes >= MIG_RUN_MAX) {
				ret = flush_runs(s, runs, &nr);
				if (ret)
					goto out_free;
				if (atomic_load(&s->vmm->mig_cancel)) {
					ret = -ECANCELED;
					goto out_free;
				}
			}
		}
	}
	ret = flush_runs(s, runs, &nr);
	if (!ret)
		ret = flush_zero_runs(s, z);
out_free:
	free(z);
	return ret;
}

/*
 * When the destination loaded its last RAM section, for the downtime's breakdown in
 * migrate_receive's debug line. The loaders get the VM as their context, and a process
 * receives one migration, on one thread: a static is enough.
 */
static uint64_t ram_loaded_ms;

/* The destination's loader for "ram" sections. */
static int load_ram(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	uint32_t nr, i, len;
	const void *data;
	uint64_t gpa;
	void *dst;
	int ret = state_get_u32(r, &nr);

	if (ret)
		return ret;
	if (nr > RUNS_PER_SECTION)
		return state_reader_fail(r, -EINVAL, "%u runs", nr);
	for (i = 0; i < nr; i++) {
		ret = state_get_u64(r, &gpa);
		if (!ret)
			ret = state_get_bytes_ref(r, &data, &len);
		if (ret)
			return ret;
		if (gpa % PAGE || len % PAGE || !len)
			return state_reader_fail(r, -EINVAL, "unaligned run at 0x%llx",
						 (unsigned long long)gpa);
		dst = guest_mem_ptr(&vm->mem, gpa, len);
		if (!dst)
			return state_reader_fail(r, -EINVAL, "run 0x%llx+%u outside guest RAM",
						 (unsigned long long)gpa, len);
		memcpy(dst, data, len);
	}
	ram_loaded_ms = monotonic_ms();
	return 0;
}

/* The destination's loader for "ram-zero" sections: each run's pages become zeros. */
static int load_ram_zero(void *ctx, struct state_reader *r, uint32_t id)
{
	struct vm *vm = ctx;
	uint64_t gpa, len;
	uint32_t nr, i;
	void *dst;
	int ret = state_get_u32(r, &nr);

	(void)id;
	if (ret)
		return ret;
	if (nr > RUNS_PER_SECTION)
		return state_reader_fail(r, -EINVAL, "%u zero runs", nr);
	for (i = 0; i < nr; i++) {
		ret = state_get_u64(r, &gpa);
		if (!ret)
			ret = state_get_u64(r, &len);
		if (ret)
			return ret;
		if (gpa % PAGE || len % PAGE || !len || len > SIZE_MAX)
			return state_reader_fail(r, -EINVAL, "bad zero run 0x%llx+0x%llx",
						 (unsigned long long)gpa, (unsigned long long)len);
		dst = guest_mem_ptr(&vm->mem, gpa, (size_t)len);
		if (!dst)
			return state_reader_fail(r, -EINVAL, "zero run 0x%llx+0x%llx outside guest RAM",
						 (unsigned long long)gpa, (unsigned long long)len);
		memset(dst, 0, (size_t)len);
	}
	ram_loaded_ms = monotonic_ms();
	return 0;
}

/* ---- the source ---- */

struct throttler {
	struct vm *vm;
	atomic_bool stop;
	pthread_t thread;
	bool started;
};

/* Kick the vCPUs every 10 ms so that each sleeps its throttled share (vcpu.c). */
static void *throttle_thread(void *arg)
{
	struct throttler *t = arg;

	while (!atomic_load(&t->stop)) {
		if (atomic_load(&t->vm->throttle_pct))
			vm_kick_all(t->vm);
		usleep(10000);
	}
	return NULL;
}

static void set_stats(struct vmm *vmm, const struct mig_stats *st)
{
	pthread_mutex_lock(&vmm->lock);
	vmm->mig = *st;
	pthread_mutex_unlock(&vmm->lock);
}

/* Stop (or restart) every virtio device's I/O thread. */
static void devices_quiesce(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nr_virtio; i++)
		virtio_dev_stop(virtio_pci_vdev(vm->virtio[i]));
	for (i = 0; i < vm->nr_input; i++) /* a display's keyboard and tablet */
		virtio_dev_stop(virtio_pci_vdev(vm->input[i]));
}

static void devices_restart(struct vm *vm)
{
	struct virtio_pci_state st;
	unsigned int i;

	/* virtio_pci_save restarts a device whose driver had it running. */
	for (i = 0; i < vm->nr_virtio; i++)
		virtio_pci_save(vm->virtio[i], &st);
	for (i = 0; i < vm->nr_input; i++)
		virtio_pci_save(vm->input[i], &st);
}

struct mig_ctx {
	struct vmm *vmm;
	struct vm *vm;
};

/*
 * One migration on the source: what its phases (below, in the order of the state
 * machine at the top) share. The migration thread's own.
 */
struct mig_src {
	struct vmm *vmm;
	struct vm *vm;
	const struct api_migrate_args *a;
	struct mig_stats st;
	struct throttler thr;
	struct sender snd;
	struct dirty d;
	bool dirty_on;         /* dirty_start succeeded: dirty_stop undoes it */
	struct mig_tls_conn *tls;
	struct state_io io;
	int fd;
	uint64_t t0, t_drain, t_pause;
	uint64_t tf[5];        /* the final phase's steps, for the downtime's breakdown */
	int64_t final_dirty;   /* pages the final collection found */
	bool paused, quiesced, released, switched;
	bool end_sent;         /* from here the destination may run the guest (invariant 1) */
};

/* A failure on the stream: its reason, unless a phase already gave one. Returns ret. */
static int stream_failed(struct mig_src *m, int ret)
{
	if (!m->st.error[0])
		snprintf(m->st.error, sizeof(m->st.error), "%s",
			 state_writer_error(m->snd.w)[0] ? state_writer_error(m->snd.w) :
							     strerror(-ret));
	return ret;
}

/*
 * CONNECT: the socket (TLS over TCP), the stream's "config", dirty logging on and
 * the throttling thread started. 0 or -errno with st.error set.
 */
static int phase_connect(struct mig_src *m)
{
	int ret;

	m->fd = mig_connect(m->a, m->st.error, sizeof(m->st.error));
	if (m->fd < 0)
		return m->fd;
	if (m->a->transport == API_MIGRATE_TCP) { /* vmm->tls: checked by migrate_start */
		m->tls = mig_tls_handshake(m->vmm->tls, m->fd, m->st.error, sizeof(m->st.error));
		if (!m->tls)
			return -ECONNREFUSED;
		mig_tls_io(m->tls, &m->io);
		m->snd.w = state_writer_new_io(&m->io, "migration stream");
	} else {
		m->snd.w = state_writer_new_fd(m->fd, "migration stream");
	}
	if (!m->snd.w)
		return -ENOMEM;
	ret = vm_state_save_config_as(m->vm->cfg, VM_CONFIG_MIGRATION, m->snd.w);
	if (ret)
		return stream_failed(m, ret);
	ret = dirty_start(m->vm, &m->d);
	if (ret) {
		snprintf(m->st.error, sizeof(m->st.error), "cannot track dirty pages: %s",
			 strerror(-ret));
		return ret;
	}
	m->dirty_on = true;
	if (pthread_create(&m->thr.thread, NULL, throttle_thread, &m->thr) == 0)
		m->thr.started = true;
	return 0;
}

/* The dirty set n is at most half the one before (prev): rounds still gain on the guest. */
static bool halved(uint64_t n, uint64_t prev)
{
	return n <= prev / 2;
}

/*
 * After a round that left n pages dirty (prev after the one before, UINT64_MAX after
 * round 0), sent at pps pages a second: is it time for the final copy? Only once the
 * rest would go within the downtime target; and within it, while rounds still halve
 * the dirty set, one more round (shorter than the last) beats copying the set with the
 * guest paused. The target is a limit, not an aim: stopping at the first round within
 * it paused a guest rewriting 32 MiB of tmpfs right after round 1, with 0.9-2k pages
 * dirty and round 1's stream still queued for the destination: 50-274 ms of downtime
 * in the emulated host, against 19-38 ms going on while the set halves (QEMU's
 * estimate counts every dirty page as 4 KiB, zero ones too, against the bytes it sent,
 * so it stops later: 24-30 ms).
 */
static bool precopy_done(uint64_t n, uint64_t prev, uint64_t pps, uint32_t downtime_ms)
{
	if (n == 0)
		return true;
	if (!pps || n * 1000 / pps > downtime_ms)
		return false;
	return !halved(n, prev);
}

/*
 * ROUND 0..n: round 0 clears the log, then sends every page that is not zero; each
 * later round sends what was dirtied during the one before, until what is left would
 * go within the downtime target at the last round's page rate and rounds no longer
 * halve it (precopy_done), or MIG_MAX_ROUNDS; throttling the vCPUs while the dirty set
 * does not shrink by half. 0 (go to FINAL) or -errno with st.error set.
 */
static int phase_precopy(struct mig_src *m)
{
	struct vm *vm = m->vm;
	struct mig_stats *st = &m->st;
	uint64_t bw = 0, pps = 0, prev_dirty = UINT64_MAX;
	int64_t n;
	int ret;

	n = dirty_collect(vm, &m->d);
	for (st->rounds = 0;; st->rounds++) {
		uint64_t r0 = monotonic_ms(), sent0 = state_writer_offset(m->snd.w), dt;
		uint64_t pages0 = m->snd.pages + m->snd.zero_pages;

		if (n < 0) {
			ret = (int)n;
			snprintf(st->error, sizeof(st->error), "KVM_GET_DIRTY_LOG: %s",
				 strerror(-ret));
			return ret;
		}
		ret = send_pages(vm, &m->d, st->rounds == 0, &m->snd);
		if (ret)
			return stream_failed(m, ret);
		dt = monotonic_ms() - r0;
		if (dt) {
			bw = (state_writer_offset(m->snd.w) - sent0) * 1000 / dt; /* bytes/s */
			/* Pages/s, zero ones included: they cost their address, not 4 KiB. */
			pps = (m->snd.pages + m->snd.zero_pages - pages0) * 1000 / dt;
		}
		st->bytes = state_writer_offset(m->snd.w);
		st->pages = m->snd.pages;
		st->bandwidth_mbps = bw * 8 / 1000000;
		st->total_ms = monotonic_ms() - m->t0;
		set_stats(m->vmm, st);
		if (atomic_load(&m->vmm->mig_cancel)) {
			snprintf(st->error, sizeof(st->error), "cancelled");
			return -ECANCELED;
		}
		n = dirty_collect(vm, &m->d);
		if (n < 0)
			continue; /* reported at the top */
		log_debug("migration round %u: sent in %llu ms, %llu dirty pages, %llu MB/s, %llu "
			  "pages/s", st->rounds + 1, (unsigned long long)dt, (unsigned long long)n,
			  (unsigned long long)(bw / 1000000), (unsigned long long)pps);
		if (precopy_done((uint64_t)n, prev_dirty, pps, m->a->downtime_ms) ||
		    st->rounds + 1 >= MIG_MAX_ROUNDS)
			return 0;
		/* Auto-converge: the guest dirties faster than we send. */
		if (!halved((uint64_t)n, prev_dirty) || (st->rounds > 0 && (uint64_t)n >= prev_dirty)) {
			unsigned int pct = atomic_load(&vm->throttle_pct);

			pct = pct + 20 > 80 ? 80 : pct + 20;
			atomic_store(&vm->throttle_pct, pct);
			st->throttle_pct = pct;
		}
		prev_dirty = (uint64_t)n;
	}
}

/*
 * Before the pause, over TCP: wait (at most MIG_DRAIN_MS) until the rounds' stream has
 * left our send queue. What still waits there when the guest pauses is read, decrypted
 * and loaded by the destination inside the downtime, ahead of the last pages and the
 * ack (the 32 MiB tmpfs writer in the emulated host: 62-148 ms of downtime in 3 runs
 * without this wait, 13-25 ms in 3 with it, after waits of 0-30 ms); meanwhile the guest
 * runs, and what it dirties goes in the final copy, cheaper while rounds converge. Best
 * effort: a kernel without TCP_INFO's queue counts (or a Unix socket, whose queue is
 * small) pauses at once.
 */
static void wait_sent(int fd)
{
	uint64_t end = monotonic_ms() + MIG_DRAIN_MS;
	struct tcp_info ti;
	socklen_t len;

	for (;;) {
		len = sizeof(ti);
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
		    len < offsetof(struct tcp_info, tcpi_notsent_bytes) + sizeof(ti.tcpi_notsent_bytes))
			return;
		if (!ti.tcpi_notsent_bytes && !ti.tcpi_unacked)
			return;
		if (monotonic_ms() >= end)
			return;
		usleep(1000);
	}
}

/*
 * FINAL: pause the vCPUs, stop the devices, let go of the disk images (invariant
 * 4), send the last dirty pages, the vCPU and device state and "end". 0 (end_sent)
 * or -errno with st.error set; either way paused, quiesced and released say what
 * a rollback undoes.
 */
static int phase_final(struct mig_src *m)
{
	struct vm *vm = m->vm;
	struct mig_stats *st = &m->st;
	int ret;

	m->t_drain = monotonic_ms();
	if (m->a->transport == API_MIGRATE_TCP)
		wait_sent(m->fd);
	/* Nothing changes RAM from here (invariant 2). */
	m->t_pause = monotonic_ms();
	m->paused = vm_pause(vm) == 0;
	m->tf[0] = monotonic_ms();
	devices_quiesce(vm);
	m->quiesced = true;
	m->tf[1] = monotonic_ms();
	/* The destination takes the disk images over before it acks (invariant 4). */
	m->released = true;
	ret = vm_disks_release(vm);
	m->tf[2] = monotonic_ms();
	if (ret) {
		snprintf(st->error, sizeof(st->error), "cannot flush the disks: %s",
			 strerror(-ret));
		return ret;
	}
	m->final_dirty = dirty_collect(vm, &m->d);
	if (m->final_dirty < 0) {
		ret = (int)m->final_dirty;
		snprintf(st->error, sizeof(st->error), "KVM_GET_DIRTY_LOG: %s", strerror(-ret));
		return ret;
	}
	st->rounds += 2; /* the rounds sent above (0-based index) and this final one */
	/* Nothing runs to dirty a page again, and logging ends with this copy: re-protecting
	 * the pages (KVM_CLEAR_DIRTY_LOG, a TLB flush each) would only lengthen the pause. */
	m->d.manual = false;
	ret = send_pages(vm, &m->d, false, &m->snd);
	m->tf[3] = monotonic_ms();
	if (!ret)
		ret = vm_state_save(vm, m->snd.w);
	if (!ret)
		ret = state_writer_finish(m->snd.w);
	if (ret)
		return stream_failed(m, ret);
	m->tf[4] = monotonic_ms();
	/* From here the destination may hold everything and run the guest (invariant 1). */
	m->end_sent = true;
	st->bytes = state_writer_offset(m->snd.w);
	st->pages = m->snd.pages;
	return 0;
}

/*
 * FINAL --ack--> SWITCHED; a NACK is a certain refusal (ROLLBACK: end_sent
 * cleared); no ack leaves the outcome UNKNOWN. 0 or -errno with st.error set.
 */
static int phase_ack(struct mig_src *m)
{
	struct mig_stats *st = &m->st;
	uint8_t ack;
	int ret;

	/* The destination checks the whole stream, then acks (invariant 1). */
	errno = 0;
	ret = m->tls ? mig_tls_recv(m->tls, &ack, 1) : read(m->fd, &ack, 1) == 1 ? 0 : -EIO;
	if (!ret && ack == MIG_NACK) {
		/* A refusal is certain: the destination will not run the guest. */
		m->end_sent = false;
		snprintf(st->error, sizeof(st->error), "the destination refused the stream (its "
			 "log says why)");
		return -ECONNREFUSED;
	}
	if (ret || ack != MIG_ACK) {
		snprintf(st->error, sizeof(st->error),
			 "no confirmation from the destination after the final state (%s): it may "
			 "be running the guest, so this side stays paused with its disks released; "
			 "find out which side runs it, then stop this VMM or take the guest back "
			 "with resume",
			 errno ? strerror(errno) : "closed");
		return -ECONNABORTED;
	}
	m->switched = true;
	st->status = MIG_COMPLETED;
	st->downtime_ms = monotonic_ms() - m->t_pause;
	/* Where the downtime went (plinth -vv), for the benchmarks' downtime rows. */
	log_debug("migration downtime (after %llu ms for the send queue to empty): vCPUs "
		  "paused %llu ms, devices stopped %llu ms, disks released %llu ms, last %lld "
		  "dirty pages %llu ms, device state and end %llu ms, the destination's check "
		  "and ack %llu ms",
		  (unsigned long long)(m->t_pause - m->t_drain),
		  (unsigned long long)(m->tf[0] - m->t_pause),
		  (unsigned long long)(m->tf[1] - m->tf[0]),
		  (unsigned long long)(m->tf[2] - m->tf[1]), (long long)m->final_dirty,
		  (unsigned long long)(m->tf[3] - m->tf[2]),
		  (unsigned long long)(m->tf[4] - m->tf[3]),
		  (unsigned long long)(monotonic_ms() - m->tf[4]));
	return 0;
}

/*
 * After the phases (ret: the first failure, or 0): close the channel, then one of
 * SWITCHED (the source exits), UNKNOWN (stays paused) or ROLLBACK (the guest goes
 * on here), recorded in vmm->mig.
 */
static void phase_outcome(struct mig_src *m, int ret)
{
	struct vmm *vmm = m->vmm;
	struct vm *vm = m->vm;
	struct mig_stats *st = &m->st;

	if (m->thr.started) {
		atomic_store(&m->thr.stop, true);
		pthread_join(m->thr.thread, NULL);
	}
	if (m->dirty_on) {
		atomic_store(&vm->throttle_pct, 0);
		dirty_stop(vm, &m->d);
	}
	state_writer_free(m->snd.w);
	mig_tls_close(m->tls);
	if (m->fd >= 0)
		close(m->fd);
	st->total_ms = monotonic_ms() - m->t0;
	if (m->end_sent && !m->switched) {
		/* Never both: the guest stays paused here until someone knows (UNKNOWN). */
		st->status = MIG_UNKNOWN;
		log_error("migration outcome unknown: %s", st->error);
		set_stats(vmm, st);
		return;
	}
	if (m->switched) {
		log_msg(LOG_WARN, "migration completed: total %llu ms, downtime %llu ms, %llu bytes, "
			"%u rounds, %llu pages sent as zero runs", (unsigned long long)st->total_ms,
			(unsigned long long)st->downtime_ms, (unsigned long long)st->bytes, st->rounds,
			(unsigned long long)m->snd.zero_pages);
		set_stats(vmm, st);
		vm_request_exit(vm, VM_EXIT_MIGRATED, "migrated to the destination");
		return;
	}
	/* Roll back: the guest goes on here. */
	if (m->released && vm_disks_acquire(vm, MIG_DISK_WAIT_MS))
		log_error("the disk images could not be taken back: the guest's disk I/O fails");
	if (m->quiesced)
		devices_restart(vm);
	if (m->paused)
		vm_resume(vm);
	st->status = atomic_load(&vmm->mig_cancel) ? MIG_CANCELLED : MIG_FAILED;
	if (!st->error[0])
		snprintf(st->error, sizeof(st->error), "%s", strerror(-ret));
	log_warn("migration failed, the guest keeps running here: %s", st->error);
	set_stats(vmm, st);
	/* A hot-plug eject that came meanwhile waited for the device list (hotplug.c). */
	if (write(vmm->req_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_warn("cannot wake the main thread: %s", strerror(errno));
}

static void *migrate_thread(void *arg)
{
	struct mig_ctx *c = arg;
	struct mig_src m = {
		.vmm = c->vmm, .vm = c->vm, .a = &c->vmm->mig_args,
		.st = { .status = MIG_ACTIVE }, .thr = { .vm = c->vm }, .snd = { .vmm = c->vmm },
		.fd = -1, .t0 = monotonic_ms(),
	};
	int ret;

	free(c);
	ret = phase_connect(&m);
	if (!ret)
		ret = phase_precopy(&m);
	if (!ret)
		ret = phase_final(&m);
	if (!ret)
		ret = phase_ack(&m);
	phase_outcome(&m, ret);
	return NULL;
}

int migrate_start(struct vmm *vmm, struct vm *vm, const struct api_migrate_args *a, char *err,
		  size_t errlen)
{
	struct mig_ctx *c;
	int ret;

	migrate_join(vmm); /* a finished one */
	if (a->transport == API_MIGRATE_TCP && !api_host_numeric(a->host)) {
		/* getaddrinfo() of a name calls uname and reads /etc: the filter kills us. */
		snprintf(err, errlen, "'%.100s' is a name: give an IP address (plinth ctl "
			 "resolves names before it asks)", a->host);
		return -EINVAL;
	}
	if (a->transport == API_MIGRATE_TCP && !vmm->tls) {
		snprintf(err, errlen, "migration over TCP needs a key: start plinth with "
			 "--migrate-psk FILE (TLS), or migrate to a unix: socket");
		return -EINVAL;
	}
	if (vm_paused(vm)) {
		snprintf(err, errlen, "resume the VM before migrating it");
		return -EBUSY;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->vmm = vmm;
	c->vm = vm;
	vmm->mig_args = *a;
	atomic_store(&vmm->mig_cancel, false);
	pthread_mutex_lock(&vmm->lock);
	memset(&vmm->mig, 0, sizeof(vmm->mig));
	vmm->mig.status = MIG_ACTIVE;
	pthread_mutex_unlock(&vmm->lock);
	ret = pthread_create(&vmm->mig_thread, NULL, migrate_thread, c);
	if (ret) {
		free(c);
		pthread_mutex_lock(&vmm->lock);
		vmm->mig.status = MIG_FAILED;
		pthread_mutex_unlock(&vmm->lock);
		snprintf(err, errlen, "cannot start the migration thread: %s", strerror(ret));
		return -ret;
	}
	vmm->mig_running = true;
	return 0;
}

int migrate_take_back(struct vmm *vmm, struct vm *vm, char *err, size_t errlen)
{
	int ret;

	migrate_join(vmm);
	/* The destination records itself on the disks before it acks (invariant 5). */
	ret = lease_check(vm->cfg, vmm->lease_owner, err, errlen);
	if (ret) {
		log_warn("cannot take the guest back: %s", err);
		return ret;
	}
	ret = vm_disks_acquire(vm, MIG_DISK_WAIT_MS);
	if (ret) {
		snprintf(err, errlen, "cannot take the guest back: its disk images are held "
			 "elsewhere (the destination runs it?): %s", strerror(-ret));
		return -EBUSY;
	}
	devices_restart(vm);
	vm_resume(vm);
	pthread_mutex_lock(&vmm->lock);
	vmm->mig.status = MIG_FAILED;
	snprintf(vmm->mig.error, sizeof(vmm->mig.error),
		 "outcome was unknown; the guest was taken back here by the operator");
	pthread_mutex_unlock(&vmm->lock);
	log_warn("migration: the guest was taken back after an unknown outcome");
	return 0;
}

void migrate_join(struct vmm *vmm)
{
	if (!vmm->mig_running)
		return;
	atomic_store(&vmm->mig_cancel, true);
	pthread_join(vmm->mig_thread, NULL);
	vmm->mig_running = false;
}

/* ---- the destination ---- */

int migrate_listen(const struct api_migrate_args *a)
{
	int fd = mig_listen(a);

	if (fd < 0) {
		if (a->transport == API_MIGRATE_UNIX)
			log_error("cannot listen on unix:%s: %s", a->path, strerror(-fd));
		else
			log_error("cannot listen on tcp:%s:%u: %s", a->host, a->port, strerror(-fd));
	}
	return fd;
}

/* Wait for a source on lfd, or a termination signal on sfd. The connection or -errno. */
static int accept_source(int lfd, int sfd, int *signo)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
	struct signalfd_siginfo si;
	int fd;

	for (;;) {
		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -errno;
		}
		if (sfd >= 0 && (p[1].revents & POLLIN) && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			*signo = (int)si.ssi_signo;
			log_warn("stopped by %s while waiting for a migration",
				 strsignal((int)si.ssi_signo));
			return -EINTR;
		}
		if (p[0].revents & POLLIN)
			break;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		log_error("accept: %s", strerror(errno));
		return -errno;
	}
	return fd;
}

/*
 * After a NACK: let the source read it. Closing with its last bytes unread would
 * answer with a reset, which may overtake the NACK; so stop writing, and read
 * (and drop) what still comes until the source closes, for at most 2 s.
 */
static void drain_source(int fd)
{
	uint64_t end = monotonic_ms() + 2000;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[4096];

	shutdown(fd, SHUT_WR);
	while (monotonic_ms() < end) {
		if (poll(&p, 1, (int)(end - monotonic_ms())) <= 0 || read(fd, buf, sizeof(buf)) <= 0)
			break;
	}
}

int migrate_receive(int lfd, const struct api_migrate_args *a, struct mig_tls *tls,
		    struct vm *vm, const char *lease_owner, int sfd, int *signo)
{
	struct state_section_loader loaders[32]; /* the device loaders, "ram" and "ram-zero" */
	struct timeval tv = { .tv_sec = MIG_IO_TIMEOUT };
	struct mig_tls_conn *conn = NULL;
	struct state_reader *r;
	char err[API_ERROR_MAX];
	struct state_io io;
	uint8_t ack = MIG_ACK;
	bool refused = true;
	int fd, ret;
	uint64_t t0, tl[3];

	log_info("waiting for a migration");
	fd = accept_source(lfd, sfd, signo);
	close(lfd);
	if (a->transport == API_MIGRATE_UNIX)
		unlink(a->path); /* one source only */
	if (fd < 0)
		return fd;
	t0 = monotonic_ms();
	/* Time out only once the stream has begun: the source may take a while. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (a->transport == API_MIGRATE_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (tls) {
		conn = mig_tls_handshake(tls, fd, err, sizeof(err));
		if (!conn) {
			log_error("migration refused: %s", err);
			ret = -EACCES;
			goto out_close;
		}
		mig_tls_io(conn, &io);
		r = state_reader_new_io(&io, "migration stream");
	} else {
		r = state_reader_new_fd(fd, "migration stream");
	}
	if (!r) {
		ret = -ENOMEM;
		goto out_tls;
	}
	/* The stream describes the machine; this side built it: they must agree. */
	ret = vm_state_check_config(r, vm->cfg);
	if (ret) {
		log_error("migration refused: %s", state_reader_error(r));
		goto out_reader;
	}
	if (vm_state_nr_loaders + 2 > ARRAY_SIZE(loaders)) { /* a new device section needs room */
		log_error("migration refused: too many section kinds for this build");
		ret = -E2BIG;
		goto out_reader;
	}
	memcpy(loaders, vm_state_loaders, vm_state_nr_loaders * sizeof(loaders[0]));
	loaders[vm_state_nr_loaders] = (struct state_section_loader){ "ram", load_ram };
	loaders[vm_state_nr_loaders + 1] = (struct state_section_loader){ "ram-zero", load_ram_zero };
	ret = state_reader_load_all(r, loaders, vm_state_nr_loaders + 2, vm);
	if (ret) {
		log_error("migration refused: %s", state_reader_error(r));
		goto out_reader;
	}
	tl[0] = monotonic_ms();
	vm_resync_irqs(vm);
	/* The source let go of the disk images before its last pages (invariant 4). */
	ret = vm_disks_acquire(vm, MIG_DISK_WAIT_MS);
	tl[1] = monotonic_ms();
	if (ret) {
		log_error("migration refused: cannot take over the disk images");
		goto out_reader;
	}
	/* Before the ack: a source that lost it sees the disks moved (invariant 5); a
	 * destination older than the disks' owner (rule 3, lease.h) refuses instead. */
	ret = lease_take(vm->cfg, lease_owner, "taking the disks over", err, sizeof(err));
	if (ret) {
		log_error("migration refused: %s", err);
		vm_disks_release(vm);
		goto out_reader;
	}
	tl[2] = monotonic_ms();
	/* Everything checked (invariant 1): confirm, then this side runs the guest. */
	refused = false; /* a failed ack may have gone out: never a NACK after it */
	errno = 0;
	ret = conn ? mig_tls_send(conn, &ack, 1) : write(fd, &ack, 1) == 1 ? 0 : -EIO;
	if (ret) {
		log_error("cannot confirm the migration to the source: %s",
			  strerror(errno ? errno : -ret));
		goto out_reader;
	}
	log_info("migration received in %llu ms", (unsigned long long)(monotonic_ms() - t0));
	/* The destination's share of the downtime (the source's line has the rest). */
	log_debug("migration tail: device state and end %llu ms after the last RAM section, "
		  "disks taken over %llu ms, lease %llu ms, ack sent %llu ms",
		  (unsigned long long)(tl[0] - ram_loaded_ms), (unsigned long long)(tl[1] - tl[0]),
		  (unsigned long long)(tl[2] - tl[1]), (unsigned long long)(monotonic_ms() - tl[2]));
out_reader:
	state_reader_free(r);
	if (ret && refused) {
		/* Best effort: tell the source for sure, so it need not wait paused. */
		uint8_t nack = MIG_NACK;

		if (conn)
			mig_tls_send(conn, &nack, 1);
		else if (write(fd, &nack, 1) != 1)
			log_debug("cannot tell the source: %s", strerror(errno));
		drain_source(fd);
	}
out_tls:
	mig_tls_close(conn);
out_close:
	close(fd);
	return ret;
}
