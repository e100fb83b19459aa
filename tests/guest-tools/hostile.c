// SPDX-License-Identifier: MIT
/*
 * hostile: a guest payload that drives the VMM's virtio-pci devices the way a
 * malicious driver would, to check that the VMM survives and its devices recover.
 * See docs/hostile-guest.md for the cases and how the integration test uses it.
 *
 * Build: gcc -static -O2 -Wall -Wextra -o hostile hostile.c
 * Run (root, in the guest): hostile [-s SEED] [-n ROUNDS] [-c CASES] [-r] [-q] [PCI-ADDRESS...]
 *   no address: every modern virtio-pci device (vendor 0x1af4, device >= 0x1041);
 *   -s  seed of the random cases (printed, for replay)   -n  random rounds (200; 0: none)
 *   -c  only the cases named (comma-separated)           -r  bind virtio-pci again at the end
 *   -q  only the summary lines
 *
 * How it reaches the device from user space: unbind the kernel driver through
 * sysfs, turn memory decoding and bus mastering back on in config space, mmap
 * the BARs through /sys/bus/pci/devices/ADDR/resourceN, and find the virtio
 * structures from the vendor capabilities in /sys/.../config. Rings live in
 * locked anonymous pages whose guest-physical addresses come from
 * /proc/self/pagemap (root only): no /dev/mem, which CONFIG_STRICT_DEVMEM
 * restricts, and no hugepages needed, since every ring fits in one page.
 *
 * Addresses given to the device are either inside our own pages or outside
 * guest RAM (from /proc/iomem), never other RAM: a VMM that obeys a garbage
 * address must not be able to corrupt the guest kernel and make the test flaky.
 *
 * Output: a line before each case and device ("hostile: 0000:00:03.0 blk: desc-loops ..."),
 * so that the last line names the case a crashing VMM died on, one after it
 * ("hostile: 0000:00:03.0 blk: desc-loops: ok"),
 * then "hostile: survived N cases on M devices" and exit 0; a device that stops
 * answering (reset never completes, config space reads all ones) is reported as
 * "hostile: ... FAILED: why" and the exit status is 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define POOL_PAGES 48
#define MAX_DEVS 16
#define MAX_RAM_RANGES 32
#define VIRTIO_VENDOR 0x1af4

/* ---- small helpers ------------------------------------------------------------------ */

static bool quiet;
static const char *only; /* -c: comma-separated case names, NULL for all */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("hostile: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- guest-physical memory ------------------------------------------------------------ */

struct page {
	uint8_t *va;
	uint64_t pa;
};

struct ram_range {
	uint64_t start, end; /* inclusive */
};

static struct page pool[POOL_PAGES];
static struct ram_range ram[MAX_RAM_RANGES];
static unsigned int nr_ram;

static int pool_init(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0) {
		say("FAILED: /proc/self/pagemap: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < POOL_PAGES; i++) {
		uint64_t entry;
		void *va = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);

		if (va == MAP_FAILED || mlock(va, PAGE) < 0) {
			say("FAILED: locking a page: %s", strerror(errno));
			return -1;
		}
		memset(va, 0, PAGE);
		if (pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)va / PAGE * 8)) != 8 ||
		    !(entry & (1ULL << 63)) || !(entry & ((1ULL << 55) - 1))) {
			say("FAILED: no physical address for a locked page (not root?)");
			return -1;
		}
		pool[i].va = va;
		pool[i].pa = (entry & ((1ULL << 55) - 1)) * PAGE;
	}
	close(fd);
	return 0;
}

/* The "System RAM" ranges of /proc/iomem (real addresses: we are root). */
static int ram_init(void)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];

	if (!f) {
		say("FAILED: /proc/iomem: %s", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) && nr_ram < MAX_RAM_RANGES) {
		uint64_t s, e;

		if (line[0] != ' ' && strstr(line, "System RAM") &&
		    sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) == 2 && e > s) {
			ram[nr_ram].start = s;
			ram[nr_ram].end = e;
			nr_ram++;
		}
	}
	fclose(f);
	if (!nr_ram || !ram[nr_ram - 1].end) {
		say("FAILED: no System RAM in /proc/iomem (addresses hidden?)");
		return -1;
	}
	return 0;
}

static bool in_ram(uint64_t a)
{
	for (unsigned int i = 0; i < nr_ram; i++)
		if (a >= ram[i].start && a <= ram[i].end)
			return true;
	return false;
}

/* An address the device must refuse: outside every RAM range (or wrapping). */
static uint64_t bad_addr(void)
{
	static const uint64_t fixed[] = {
		0xfffffffffffff000ULL, 0xfffffffffffffff0ULL, 1ULL << 52, 1ULL << 47,
		0xfee00000ULL, 0xfec00000ULL, 0xffff0000ULL,
	};
	uint64_t a;

	for (int tries = 0; tries < 16; tries++) {
		switch (rnd_below(3)) {
		case 0:
			a = fixed[rnd_below(sizeof(fixed) / sizeof(fixed[0]))];
			break;
		case 1:
			a = ram[rnd_below(nr_ram)].end + 1 + rnd_below(4) * PAGE;
			break;
		default:
			a = ram[nr_ram - 1].end + 1 + (rnd() & 0xffffffffff000ULL);
			break;
		}
		if (!in_ram(a) && !in_ram(a + PAGE - 1))
			return a;
	}
	return 0xfffffffffffff000ULL;
}

/* Somewhere inside our pool (any alignment). */
static uint64_t pool_addr(void)
{
	return pool[8 + rnd_below(POOL_PAGES - 8)].pa + rnd_below(PAGE);
}

/* ---- the device --------------------------------------------------------------------------- */

struct vdev {
	char addr[32];          /* 0000:00:03.0 */
	const char *kind;       /* blk, net... */
	uint16_t device_id;
	volatile uint8_t *bar[6];
	size_t bar_len[6];
	volatile uint8_t *common, *notify, *isr, *devcfg;
	size_t common_len, notify_len, devcfg_len;
	uint32_t notify_mult;
	uint16_t num_queues;    /* as read at start */
	uint64_t features;      /* offered, as read at start */
	bool failed;
};

static const char *kind_of(uint16_t id)
{
	switch (id) {
	case 0x1041: return "net";
	case 0x1042: return "blk";
	case 0x1043: return "console";
	case 0x1044: return "rng";
	case 0x1045: return "balloon";
	case 0x1049: return "9p";
	case 0x1053: return "vsock";
	default: return "virtio";
	}
}

static uint8_t r8(struct vdev *d, size_t off) { return d->common[off]; }
static uint16_t r16(struct vdev *d, size_t off) { return *(volatile uint16_t *)(d->common + off); }
static uint32_t r32(struct vdev *d, size_t off) { return *(volatile uint32_t *)(d->common + off); }
static void w8(struct vdev *d, size_t off, uint8_t v) { d->common[off] = v; }
static void w16(struct vdev *d, size_t off, uint16_t v) { *(volatile uint16_t *)(d->common + off) = v; }
static void w32(struct vdev *d, size_t off, uint32_t v) { *(volatile uint32_t *)(d->common + off) = v; }

static void w64(struct vdev *d, size_t off, uint64_t v)
{
	/* Both halves, low first, as Linux's driver does; w64_single for one 8-byte store. */
	w32(d, off, (uint32_t)v);
	w32(d, off + 4, (uint32_t)(v >> 32));
}

static void w64_single(struct vdev *d, size_t off, uint64_t v)
{
	*(volatile uint64_t *)(d->common + off) = v;
}

static int cfg_read(const char *addr, void *buf, size_t len, off_t off)
{
	char path[96];
	int fd, rc;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", addr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	rc = pread(fd, buf, len, off) == (ssize_t)len ? 0 : -1;
	close(fd);
	return rc;
}

static int cfg_write16(const char *addr, off_t off, uint16_t v)
{
	char path[96];
	int fd, rc;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", addr);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	rc = pwrite(fd, &v, 2, off) == 2 ? 0 : -1;
	close(fd);
	return rc;
}

static volatile uint8_t *map_bar(struct vdev *d, unsigned int bar)
{
	char path[96];
	struct stat st;
	void *p;
	int fd;

	if (bar > 5)
		return NULL;
	if (d->bar[bar])
		return d->bar[bar];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%u", d->addr, bar);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	d->bar[bar] = p;
	d->bar_len[bar] = (size_t)st.st_size;
	return p;
}

/* Unbind the driver, enable the device, map the virtio structures. */
static int open_dev(struct vdev *d, const char *addr)
{
	uint8_t cfg[256];
	char path[128];
	unsigned int guard = 0;
	uint16_t cmd;

	memset(d, 0, sizeof(*d));
	snprintf(d->addr, sizeof(d->addr), "%s", addr);
	if (cfg_read(addr, cfg, sizeof(cfg), 0) < 0) {
		say("%s: FAILED: cannot read config space", addr);
		return -1;
	}
	d->device_id = (uint16_t)(cfg[2] | cfg[3] << 8);
	d->kind = kind_of(d->device_id);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", addr);
	if (access(path, W_OK) == 0 && write_file(path, addr) < 0) {
		say("%s: FAILED: cannot unbind its driver", addr);
		return -1;
	}
	/* The driver's removal turned bus mastering off: a hostile driver turns it on. */
	if (cfg_read(addr, &cmd, 2, 4) < 0 || cfg_write16(addr, 4, cmd | 0x6) < 0) {
		say("%s: FAILED: cannot enable memory decoding", addr);
		return -1;
	}
	if (cfg_read(addr, cfg, sizeof(cfg), 0) < 0 || !(cfg[6] & 0x10)) {
		say("%s: FAILED: no capability list", addr);
		return -1;
	}
	for (uint8_t p = cfg[0x34] & 0xfc; p && p < 0xf0 && guard++ < 48; p = cfg[p + 1] & 0xfc) {
		uint32_t off, len;
		volatile uint8_t *base;

		if (cfg[p] != 0x09 || p + 16 > 256)
			continue;
		memcpy(&off, &cfg[p + 8], 4);
		memcpy(&len, &cfg[p + 12], 4);
		base = map_bar(d, cfg[p + 4]);
		if (!base || (uint64_t)off + len > d->bar_len[cfg[p + 4]])
			continue;
		switch (cfg[p + 3]) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			d->common = base + off;
			d->common_len = len;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			if (p + 20 > 256)
				break;
			d->notify = base + off;
			d->notify_len = len;
			memcpy(&d->notify_mult, &cfg[p + 16], 4);
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			d->isr = base + off;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			d->devcfg = base + off;
			d->devcfg_len = len;
			break;
		}
	}
	if (!d->common || d->common_len < 0x38 || !d->notify) {
		say("%s: FAILED: no common or notify structure", addr);
		return -1;
	}
	d->num_queues = r16(d, VIRTIO_PCI_COMMON_NUMQ);
	w32(d, VIRTIO_PCI_COMMON_DFSELECT, 0);
	d->features = r32(d, VIRTIO_PCI_COMMON_DF);
	w32(d, VIRTIO_PCI_COMMON_DFSELECT, 1);
	d->features |= (uint64_t)r32(d, VIRTIO_PCI_COMMON_DF) << 32;
	return 0;
}

/* Reset and wait for it to complete; false (and d->failed) if the device is gone or stuck. */
static bool reset_dev(struct vdev *d, const char *ctx)
{
	w8(d, VIRTIO_PCI_COMMON_STATUS, 0);
	for (int i = 0; i < 2000; i++) {
		if (r8(d, VIRTIO_PCI_COMMON_STATUS) == 0) {
			uint16_t nq = r16(d, VIRTIO_PCI_COMMON_NUMQ);

			if (nq != d->num_queues || r32(d, 0) == 0xffffffffu) {
				say("%s %s: %s: FAILED: config reads back garbage after reset "
				    "(num_queues %u, was %u)", d->addr, d->kind, ctx, nq, d->num_queues);
				d->failed = true;
				return false;
			}
			return true;
		}
		sleep_us(1000);
	}
	say("%s %s: %s: FAILED: reset did not complete in 2 s", d->addr, d->kind, ctx);
	d->failed = true;
	return false;
}

/* ACKNOWLEDGE, DRIVER, features (VERSION_1 plus extra), FEATURES_OK. False if refused. */
static bool negotiate(struct vdev *d, uint64_t extra)
{
	uint64_t want = (d->features & ((1ULL << VIRTIO_F_VERSION_1) | extra));

	w8(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	w8(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	w32(d, VIRTIO_PCI_COMMON_GFSELECT, 0);
	w32(d, VIRTIO_PCI_COMMON_GF, (uint32_t)want);
	w32(d, VIRTIO_PCI_COMMON_GFSELECT, 1);
	w32(d, VIRTIO_PCI_COMMON_GF, (uint32_t)(want >> 32));
	w8(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	   VIRTIO_CONFIG_S_FEATURES_OK);
	return r8(d, VIRTIO_PCI_COMMON_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK;
}

static void driver_ok(struct vdev *d)
{
	w8(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	   VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Program queue q (selected) with the given size and addresses, and enable it. */
static void setup_queue(struct vdev *d, uint16_t q, uint16_t size, uint64_t desc,
			uint64_t avail, uint64_t used)
{
	w16(d, VIRTIO_PCI_COMMON_Q_SELECT, q);
	w16(d, VIRTIO_PCI_COMMON_Q_SIZE, size);
	w16(d, VIRTIO_PCI_COMMON_Q_MSIX, 0xffff); /* VIRTIO_MSI_NO_VECTOR */
	w64(d, VIRTIO_PCI_COMMON_Q_DESCLO, desc);
	w64(d, VIRTIO_PCI_COMMON_Q_AVAILLO, avail);
	w64(d, VIRTIO_PCI_COMMON_Q_USEDLO, used);
	w16(d, VIRTIO_PCI_COMMON_Q_ENABLE, 1);
}

static void kick(struct vdev *d, uint16_t q)
{
	uint16_t noff;
	uint64_t off;

	w16(d, VIRTIO_PCI_COMMON_Q_SELECT, q);
	noff = r16(d, VIRTIO_PCI_COMMON_Q_NOFF);
	off = (uint64_t)noff * d->notify_mult;
	if (off + 2 > d->notify_len)
		off = 0; /* a queue the device does not have: its notify_off is garbage too */
	*(volatile uint16_t *)(d->notify + off) = q;
}

/* Rings of queue q in our pool: pages 0-2 desc/avail/used, the rest data. */
struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_pa, avail_pa, used_pa;
	uint16_t size;
};

static void ring_init(struct ring *r, uint16_t size)
{
	memset(pool[0].va, 0, PAGE);
	memset(pool[1].va, 0, PAGE);
	memset(pool[2].va, 0, PAGE);
	r->desc = (struct vring_desc *)pool[0].va;
	r->avail = (struct vring_avail *)pool[1].va;
	r->used = (struct vring_used *)pool[2].va;
	r->desc_pa = pool[0].pa;
	r->avail_pa = pool[1].pa;
	r->used_pa = pool[2].pa;
	r->size = size;
}

static void set_desc(struct ring *r, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	r->desc[i].addr = addr;
	r->desc[i].len = len;
	r->desc[i].flags = flags;
	r->desc[i].next = next;
}

/* Publish head (at avail slot idx) and move avail->idx to new_idx. */
static void publish(struct ring *r, uint16_t slot, uint16_t head, uint16_t new_idx)
{
	r->avail->ring[slot % r->size] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r->avail->idx = new_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Give the device time to look, and to show it did (used idx moving). */
static void settle(struct ring *r)
{
	uint16_t start = r ? r->used->idx : 0;

	for (int i = 0; i < 20; i++) {
		sleep_us(1000);
		if (r && r->used->idx != start)
			break;
	}
}

/* A driver that did everything right up to DRIVER_OK on queue q. */
static bool ready_queue(struct vdev *d, struct ring *r, uint16_t q, uint16_t size, uint64_t extra)
{
	if (!reset_dev(d, "setup"))
		return false;
	if (!negotiate(d, extra))
		return false;
	ring_init(r, size);
	setup_queue(d, q, size, r->desc_pa, r->avail_pa, r->used_pa);
	driver_ok(d);
	return true;
}

/* The size to use on queue q: what the device offers, capped to fit one page. */
static uint16_t queue_size(struct vdev *d, uint16_t q)
{
	uint16_t max;

	w16(d, VIRTIO_PCI_COMMON_Q_SELECT, q);
	max = r16(d, VIRTIO_PCI_COMMON_Q_SIZE);
	if (!max)
		return 0;
	return max > 128 ? 128 : max;
}

/* ---- the cases --------------------------------------------------------------------- */

static void c_notify_before_driver_ok(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues + 3; q++)
		kick(d, q);
	negotiate(d, 0);
	for (uint16_t q = 0; q < d->num_queues + 3; q++)
		kick(d, q);
	/* Every offset of the notify area, every width. */
	for (size_t off = 0; off + 4 <= d->notify_len && off < 4096; off += 2)
		*(volatile uint16_t *)(d->notify + off) = (uint16_t)rnd();
	settle(NULL);
}

static void c_bad_queue_sizes(struct vdev *d)
{
	static const uint16_t sizes[] = { 0, 1, 3, 255, 257, 0x8001, 0xffff };
	struct ring r;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (!reset_dev(d, "bad-queue-sizes") || !negotiate(d, 0))
			return;
		ring_init(&r, 16);
		setup_queue(d, 0, sizes[i], r.desc_pa, r.avail_pa, r.used_pa);
		driver_ok(d);
		set_desc(&r, 0, pool[8].pa, 64, 0, 0);
		publish(&r, 0, 0, 1);
		kick(d, 0);
		settle(&r);
	}
}

static void c_queue_select_out_of_range(struct vdev *d)
{
	static const uint16_t sel[] = { 0, 0, 0x7fff, 0xffff };
	struct ring r;

	if (!negotiate(d, 0))
		return;
	ring_init(&r, 16);
	for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
		uint16_t q = (uint16_t)(i < 2 ? d->num_queues + i : sel[i]);

		setup_queue(d, q, 16, r.desc_pa, r.avail_pa, r.used_pa);
		(void)r16(d, VIRTIO_PCI_COMMON_Q_SIZE);
		(void)r16(d, VIRTIO_PCI_COMMON_Q_ENABLE);
		(void)r16(d, VIRTIO_PCI_COMMON_Q_NOFF);
		(void)r32(d, VIRTIO_PCI_COMMON_Q_DESCLO);
	}
	driver_ok(d);
	for (uint16_t q = 0; q < d->num_queues + 2; q++)
		kick(d, q);
	settle(NULL);
}

static void c_rings_outside_ram(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);

		if (!size)
			continue;
		for (int i = 0; i < 4; i++) {
			if (!reset_dev(d, "rings-outside-ram") || !negotiate(d, 0))
				return;
			/* One, two or all three rings outside RAM; never another RAM page. */
			setup_queue(d, q, size, i & 1 ? bad_addr() : pool[0].pa,
				    i & 2 ? bad_addr() : pool[1].pa, bad_addr());
			memset(pool[1].va, 0, PAGE);
			((struct vring_avail *)pool[1].va)->idx = 1;
			driver_ok(d);
			kick(d, q);
			settle(NULL);
		}
	}
}

static void c_misaligned_rings(struct vdev *d)
{
	uint16_t size = queue_size(d, 0);
	struct ring r;

	if (!size || !reset_dev(d, "misaligned-rings") || !negotiate(d, 0))
		return;
	ring_init(&r, size);
	/* desc needs 16-byte alignment, avail 2, used 4; the last bytes of a page. */
	setup_queue(d, 0, size, pool[0].pa + 8, pool[1].pa + 1, pool[2].pa + PAGE - 2);
	r.avail = (struct vring_avail *)(pool[1].va + 1);
	driver_ok(d);
	kick(d, 0);
	settle(NULL);
}

static void c_desc_loops(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		struct ring r;

		if (size < 4 || !ready_queue(d, &r, q, size, 0))
			continue;
		/* 0 -> 1 -> 0 ..., and 2 -> 2. */
		set_desc(&r, 0, pool[8].pa, 64, VRING_DESC_F_NEXT, 1);
		set_desc(&r, 1, pool[9].pa, 64, VRING_DESC_F_NEXT, 0);
		set_desc(&r, 2, pool[10].pa, 64, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
		/* A chain through every descriptor then back to its head. */
		for (uint16_t i = 3; i < size; i++)
			set_desc(&r, i, pool[11].pa, 16, VRING_DESC_F_NEXT, (uint16_t)(i + 1 < size ? i + 1 : 3));
		publish(&r, 0, 0, 1);
		publish(&r, 1, 2, 2);
		publish(&r, 2, 3, 3);
		kick(d, q);
		settle(&r);
	}
}

static void c_bad_lengths(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		uint64_t ram_end = ram[nr_ram - 1].end + 1;
		struct ring r;

		if (size < 16 || !ready_queue(d, &r, q, size, 0))
			continue;
		/* Huge, wrapping, crossing the end of RAM (device-readable only), overflowing sums. */
		set_desc(&r, 0, pool[8].pa, 0xffffffffu, 0, 0);
		set_desc(&r, 1, 0xfffffffffffff000ULL, 0x2000, 0, 0);
		set_desc(&r, 2, ram_end - 16, PAGE, 0, 0);
		set_desc(&r, 3, pool[9].pa, 0, VRING_DESC_F_WRITE, 0);
		for (uint16_t i = 4; i < 12; i++)
			set_desc(&r, i, pool[10].pa, 0x7fffffffu, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
		set_desc(&r, 12, pool[10].pa, 0x7fffffffu, 0, 0);
		/* Writable descriptors outside RAM, after a readable one. */
		set_desc(&r, 13, pool[11].pa, 16, VRING_DESC_F_NEXT, 14);
		set_desc(&r, 14, bad_addr(), 4096, VRING_DESC_F_WRITE, 0);
		for (uint16_t i = 0; i < 6; i++)
			publish(&r, i, (uint16_t[]){ 0, 1, 2, 3, 4, 13 }[i], (uint16_t)(i + 1));
		kick(d, q);
		settle(&r);
	}
}

static void c_bad_heads_and_indices(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		struct ring r;

		if (size < 2 || !ready_queue(d, &r, q, size, 0))
			continue;
		set_desc(&r, 0, pool[8].pa, 64, VRING_DESC_F_NEXT, 0xffff); /* next out of range */
		publish(&r, 0, (uint16_t)(size + 5), 1);                   /* head out of range */
		publish(&r, 1, 0xffff, 2);
		publish(&r, 2, 0, 3);
		kick(d, q);
		settle(&r);
		/* The driver claims 65535 new buffers at once, then moves idx backwards. */
		r.avail->idx = (uint16_t)(r.avail->idx + 0xffff);
		kick(d, q);
		settle(&r);
		r.avail->idx = 1;
		kick(d, q);
		settle(&r);
	}
}

static void c_write_before_read(struct vdev *d)
{
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		struct ring r;

		if (size < 4 || !ready_queue(d, &r, q, size, 0))
			continue;
		set_desc(&r, 0, pool[8].pa, 64, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
		set_desc(&r, 1, pool[9].pa, 64, VRING_DESC_F_NEXT, 2);
		set_desc(&r, 2, pool[10].pa, 64, VRING_DESC_F_WRITE, 0);
		publish(&r, 0, 0, 1);
		kick(d, q);
		settle(&r);
	}
}

static void c_indirect(struct vdev *d)
{
	uint64_t ind = 1ULL << VIRTIO_RING_F_INDIRECT_DESC;

	if (!(d->features & ind))
		return;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		struct vring_desc *t = (struct vring_desc *)pool[12].va;
		struct ring r;

		if (size < 8 || !ready_queue(d, &r, q, size, ind))
			continue;
		memset(t, 0, PAGE);
		/* Nested indirect, loop inside the table, next beyond the table. */
		t[0] = (struct vring_desc){ pool[12].pa, 64, VRING_DESC_F_INDIRECT, 0 };
		t[1] = (struct vring_desc){ pool[8].pa, 64, VRING_DESC_F_NEXT, 2 };
		t[2] = (struct vring_desc){ pool[8].pa, 64, VRING_DESC_F_NEXT, 1 };
		t[3] = (struct vring_desc){ pool[8].pa, 64, VRING_DESC_F_NEXT, 200 };
		set_desc(&r, 0, pool[12].pa, 16, VRING_DESC_F_INDIRECT, 0);      /* nested */
		set_desc(&r, 1, pool[12].pa + 16, 32, VRING_DESC_F_INDIRECT, 0); /* loop */
		set_desc(&r, 2, pool[12].pa + 48, 16, VRING_DESC_F_INDIRECT, 0); /* next too far */
		set_desc(&r, 3, pool[12].pa, 17, VRING_DESC_F_INDIRECT, 0);      /* not 16*n */
		set_desc(&r, 4, pool[12].pa, 0, VRING_DESC_F_INDIRECT, 0);       /* empty */
		set_desc(&r, 5, pool[12].pa, 0x100000, VRING_DESC_F_INDIRECT, 0); /* 65536 entries */
		set_desc(&r, 6, bad_addr(), 64, VRING_DESC_F_INDIRECT, 0);       /* outside RAM */
		set_desc(&r, 7, pool[12].pa + 16, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 0);
		for (uint16_t i = 0; i < 8; i++)
			publish(&r, i, i, (uint16_t)(i + 1));
		kick(d, q);
		settle(&r);
	}
}

static void c_msix_and_status_garbage(struct vdev *d)
{
	static const uint8_t statuses[] = {
		VIRTIO_CONFIG_S_DRIVER_OK, /* without FEATURES_OK */
		0xff, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_FAILED,
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER_OK,
	};
	uint16_t size = queue_size(d, 0);
	struct ring r;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		if (!reset_dev(d, "status-garbage"))
			return;
		ring_init(&r, size ? size : 16);
		setup_queue(d, 0, size, r.desc_pa, r.avail_pa, r.used_pa);
		w8(d, VIRTIO_PCI_COMMON_STATUS, statuses[i]);
		set_desc(&r, 0, pool[8].pa, 64, VRING_DESC_F_WRITE, 0);
		publish(&r, 0, 0, 1);
		kick(d, 0);
		settle(&r);
	}
	/* Vectors the device has not got; features changed after FEATURES_OK and DRIVER_OK. */
	if (!size || !ready_queue(d, &r, 0, size, 0))
		return;
	w16(d, VIRTIO_PCI_COMMON_MSIX, 0xfffe);
	w16(d, VIRTIO_PCI_COMMON_Q_SELECT, 0);
	w16(d, VIRTIO_PCI_COMMON_Q_MSIX, 0x7fff);
	for (uint32_t sel = 0; sel < 4; sel++) {
		w32(d, VIRTIO_PCI_COMMON_GFSELECT, sel);
		w32(d, VIRTIO_PCI_COMMON_GF, 0xffffffffu);
	}
	w32(d, VIRTIO_PCI_COMMON_GFSELECT, 0xffffffffu);
	w32(d, VIRTIO_PCI_COMMON_GF, 0xffffffffu);
	/* Queue fields rewritten while the queue runs. */
	w64(d, VIRTIO_PCI_COMMON_Q_DESCLO, bad_addr());
	w16(d, VIRTIO_PCI_COMMON_Q_SIZE, 3);
	set_desc(&r, 0, pool[8].pa, 64, VRING_DESC_F_WRITE, 0);
	publish(&r, 0, 0, 1);
	kick(d, 0);
	settle(&r);
}

static void c_access_widths(struct vdev *d)
{
	size_t n = d->common_len < 0x40 ? d->common_len : 0x40;

	/* Every byte of the common structure read and written at every width and offset. */
	for (size_t off = 0; off < n; off++) {
		(void)d->common[off];
		if (off + 2 <= n)
			(void)*(volatile uint16_t *)(d->common + off);
		if (off + 4 <= n)
			(void)*(volatile uint32_t *)(d->common + off);
		if (off + 8 <= n)
			(void)*(volatile uint64_t *)(d->common + off);
	}
	for (int i = 0; i < 2000; i++) {
		size_t off = rnd_below(n);
		uint64_t v = rnd();

		if (off == VIRTIO_PCI_COMMON_STATUS)
			continue; /* statuses are the case above */
		switch (rnd_below(4)) {
		case 0: w8(d, off, (uint8_t)v); break;
		case 1: if (off + 2 <= n) w16(d, off, (uint16_t)v); break;
		case 2: if (off + 4 <= n) w32(d, off, (uint32_t)v); break;
		default: if (off + 8 <= n) w64_single(d, off, v & 0xffffffffff000ULL); break;
		}
	}
	/* Device config: reads everywhere, writes of random bytes. */
	for (size_t off = 0; d->devcfg && off < d->devcfg_len && off < 4096; off++) {
		(void)d->devcfg[off];
		if (off + 4 <= d->devcfg_len)
			(void)*(volatile uint32_t *)(d->devcfg + off);
		d->devcfg[off] = (uint8_t)rnd();
	}
	if (d->isr)
		(void)*d->isr;
	/* The rest of each BAR: what no capability describes. */
	for (int b = 0; b < 6; b++)
		for (size_t off = 0; d->bar[b] && off < d->bar_len[b] && off < 0x10000; off += 0x40)
			(void)*(volatile uint32_t *)(d->bar[b] + off);
	settle(NULL);
}

/* Well-formed rings carrying garbage payloads: the device's own parser gets its turn. */
static void c_garbage_payloads(struct vdev *d)
{
	static const uint32_t lens[] = { 0, 1, 7, 8, 15, 16, 17, 511, 512, 4095, 4096 };

	for (uint16_t q = 0; q < d->num_queues; q++) {
		uint16_t size = queue_size(d, q);
		struct ring r;
		uint16_t n = 0;

		if (size < 8 || !ready_queue(d, &r, q, size, 0))
			continue;
		for (int p = 8; p < 16; p++)
			for (unsigned int i = 0; i < PAGE; i++)
				pool[p].va[i] = (uint8_t)rnd();
		for (uint16_t i = 0; i + 1 < size && n < 16; i += 2, n++) {
			uint32_t len = lens[rnd_below(sizeof(lens) / sizeof(lens[0]))];

			set_desc(&r, i, pool[8 + rnd_below(4)].pa, len, VRING_DESC_F_NEXT,
				 (uint16_t)(i + 1));
			set_desc(&r, i + 1, pool[12 + rnd_below(4)].pa,
				 lens[rnd_below(sizeof(lens) / sizeof(lens[0]))], VRING_DESC_F_WRITE, 0);
			publish(&r, n, i, (uint16_t)(n + 1));
		}
		kick(d, q);
		settle(&r);
	}
}

/* virtio-blk: request headers that are wrong in each way a device must check. */
static void c_blk_requests(struct vdev *d)
{
	struct {
		uint32_t type;
		uint64_t sector;
		uint32_t data_len;
		uint32_t hdr_len;
		uint16_t data_flags;
	} reqs[] = {
		{ VIRTIO_BLK_T_IN, ~0ULL, 512, 16, VRING_DESC_F_WRITE },        /* sector overflow */
		{ VIRTIO_BLK_T_IN, ~0ULL / 512, 4096, 16, VRING_DESC_F_WRITE }, /* past the end */
		{ VIRTIO_BLK_T_OUT, 0, 513, 16, 0 },                            /* not 512*n */
		{ VIRTIO_BLK_T_IN, 0, 512, 8, VRING_DESC_F_WRITE },             /* short header */
		{ VIRTIO_BLK_T_IN, 0, 512, 16, 0 },                             /* IN, read-only */
		{ 0xdeadbeefu, 0, 512, 16, 0 },                                 /* unknown type */
		{ VIRTIO_BLK_T_GET_ID, 0, 3, 16, VRING_DESC_F_WRITE },          /* id too short */
		{ VIRTIO_BLK_T_DISCARD, 0, 16, 16, 0 },                         /* discard garbage */
		{ VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 16, 0 },                     /* short segment */
		{ VIRTIO_BLK_T_FLUSH, 12345, 0, 16, 0 },
	};
	uint16_t size = queue_size(d, 0);
	struct ring r;

	if (d->device_id != 0x1042 || size < 32 || !ready_queue(d, &r, 0, size, 0))
		return;
	for (uint16_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct virtio_blk_outhdr *h = (struct virtio_blk_outhdr *)(pool[8].va + i * 32);
		uint16_t base = (uint16_t)(i * 3);

		h->type = reqs[i].type;
		h->ioprio = 0;
		h->sector = reqs[i].sector;
		/* discard/write-zeroes segments: huge sector counts */
		memset(pool[9].va + i * 64, 0xff, 64);
		set_desc(&r, base, pool[8].pa + i * 32, reqs[i].hdr_len, VRING_DESC_F_NEXT,
			 (uint16_t)(base + 1));
		if (reqs[i].data_len)
			set_desc(&r, (uint16_t)(base + 1), pool[9].pa + i * 64 * (reqs[i].data_len <= 64),
				 reqs[i].data_len, (uint16_t)(reqs[i].data_flags | VRING_DESC_F_NEXT),
				 (uint16_t)(base + 2));
		else
			set_desc(&r, (uint16_t)(base + 1), pool[10].pa + i, 1, VRING_DESC_F_WRITE, 0);
		set_desc(&r, (uint16_t)(base + 2), pool[10].pa + i, 1, VRING_DESC_F_WRITE, 0);
		publish(&r, i, base, (uint16_t)(i + 1));
	}
	kick(d, 0);
	settle(&r);
}

/* DRIVER_OK, kick, reset at once, many times: the device's thread against its reset. */
static void c_reset_storm(struct vdev *d)
{
	uint16_t size = queue_size(d, 0);

	for (int i = 0; i < 200 && size >= 2; i++) {
		struct ring r;

		if (!ready_queue(d, &r, 0, size, 0))
			return;
		set_desc(&r, 0, pool_addr() & ~15ULL, 64, VRING_DESC_F_NEXT, 1);
		set_desc(&r, 1, pool[9].pa, 64, VRING_DESC_F_WRITE, 0);
		publish(&r, 0, 0, 1);
		kick(d, 0);
		if (i & 1)
			w8(d, VIRTIO_PCI_COMMON_STATUS, 0); /* no waiting for completion */
	}
}

/* Random sequences of everything above, with addresses only ours or outside RAM. */
static void c_random(struct vdev *d, unsigned int rounds)
{
	for (unsigned int n = 0; n < rounds; n++) {
		uint16_t q = (uint16_t)rnd_below(d->num_queues + 1u);
		uint16_t size = queue_size(d, q);
		struct ring r;

		if (!size)
			size = (uint16_t)(1u << rnd_below(8));
		if (!reset_dev(d, "random"))
			return;
		if (rnd_below(8) && !negotiate(d, d->features & rnd()))
			continue;
		ring_init(&r, size);
		setup_queue(d, q, rnd_below(10) ? size : (uint16_t)rnd(),
			    rnd_below(10) ? r.desc_pa : bad_addr(),
			    rnd_below(10) ? r.avail_pa : bad_addr(),
			    rnd_below(10) ? r.used_pa : bad_addr());
		if (rnd_below(10))
			driver_ok(d);
		for (unsigned int i = 0; i < size && i < 256; i++) {
			uint64_t a = rnd_below(6) ? pool_addr() : bad_addr();
			uint16_t flags = (uint16_t)(rnd() & 7);

			set_desc(&r, i, a, (uint32_t)(rnd_below(4) ? rnd_below(PAGE) : rnd()), flags,
				 (uint16_t)(rnd_below(4) ? rnd_below(size) : rnd()));
		}
		for (unsigned int i = 0, k = (unsigned int)rnd_below(8) + 1; i < k; i++)
			publish(&r, (uint16_t)i, (uint16_t)(rnd_below(4) ? rnd_below(size) : rnd()),
				(uint16_t)(i + 1));
		if (!rnd_below(8))
			r.avail->idx = (uint16_t)rnd();
		r.avail->flags = (uint16_t)(rnd() & 1);
		kick(d, q);
		if (rnd_below(2))
			settle(&r);
	}
}

/* ---- driver ----------------------------------------------------------------------- */

struct hcase {
	const char *name;
	void (*run)(struct vdev *d);
};

static const struct hcase cases[] = {
	{ "notify-before-driver-ok", c_notify_before_driver_ok },
	{ "bad-queue-sizes", c_bad_queue_sizes },
	{ "queue-select-out-of-range", c_queue_select_out_of_range },
	{ "rings-outside-ram", c_rings_outside_ram },
	{ "misaligned-rings", c_misaligned_rings },
	{ "desc-loops", c_desc_loops },
	{ "bad-lengths", c_bad_lengths },
	{ "bad-heads-and-indices", c_bad_heads_and_indices },
	{ "write-before-read", c_write_before_read },
	{ "indirect", c_indirect },
	{ "msix-and-status-garbage", c_msix_and_status_garbage },
	{ "access-widths", c_access_widths },
	{ "garbage-payloads", c_garbage_payloads },
	{ "blk-requests", c_blk_requests },
	{ "reset-storm", c_reset_storm },
};

static bool wanted(const char *name)
{
	size_t len = strlen(name);

	for (const char *p = only; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
		if (!strncmp(p, name, len) && (p[len] == ',' || p[len] == '\0'))
			return true;
	return !only;
}

static int find_devs(char addrs[][32], int max)
{
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	int n = 0;

	if (!dir)
		return 0;
	while ((e = readdir(dir)) && n < max) {
		uint8_t id[4];

		if (e->d_name[0] == '.' || cfg_read(e->d_name, id, 4, 0) < 0)
			continue;
		if ((id[0] | id[1] << 8) == VIRTIO_VENDOR && (id[2] | id[3] << 8) >= 0x1041 &&
		    (id[2] | id[3] << 8) <= 0x107f)
			snprintf(addrs[n++], 32, "%.31s", e->d_name);
	}
	closedir(dir);
	return n;
}

int main(int argc, char **argv)
{
	char addrs[MAX_DEVS][32];
	unsigned int rounds = 200, total = 0;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	bool rebind = false, failed = false;
	int opt, n;

	while ((opt = getopt(argc, argv, "s:n:c:rq")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'n': rounds = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'c': only = optarg; break;
		case 'r': rebind = true; break;
		case 'q': quiet = true; break;
		default:
			fprintf(stderr, "usage: hostile [-s SEED] [-n ROUNDS] [-c CASES] [-r] [-q] "
				"[PCI-ADDRESS...]\n");
			return 2;
		}
	}
	rng_state = seed ? seed : 1;
	say("seed %#" PRIx64 ", %u random rounds", seed, rounds);
	if (pool_init() < 0 || ram_init() < 0)
		return 1;
	n = 0;
	for (int i = optind; i < argc && n < MAX_DEVS; i++)
		snprintf(addrs[n++], 32, "%.31s", argv[i]);
	if (!n)
		n = find_devs(addrs, MAX_DEVS);
	if (!n) {
		say("FAILED: no modern virtio-pci device found");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct vdev d;
		char path[96];

		if (open_dev(&d, addrs[i]) < 0) {
			failed = true;
			continue;
		}
		say("%s %s: %u queues, features %#" PRIx64, d.addr, d.kind, d.num_queues, d.features);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]) && !d.failed; c++) {
			if (!wanted(cases[c].name))
				continue;
			if (!quiet)
				say("%s %s: %s ...", d.addr, d.kind, cases[c].name);
			if (!reset_dev(&d, cases[c].name))
				break;
			cases[c].run(&d);
			if (reset_dev(&d, cases[c].name)) {
				total++;
				if (!quiet)
					say("%s %s: %s: ok", d.addr, d.kind, cases[c].name);
			}
		}
		if (!d.failed && rounds && wanted("random")) {
			if (!quiet)
				say("%s %s: random ...", d.addr, d.kind);
			c_random(&d, rounds);
			if (reset_dev(&d, "random")) {
				total++;
				say("%s %s: random (%u rounds): ok", d.addr, d.kind, rounds);
			}
		}
		failed |= d.failed;
		if (rebind) {
			/* Leave the device as the kernel expects it: reset, then the real driver. */
			reset_dev(&d, "rebind");
			write_file("/sys/bus/pci/drivers/virtio-pci/bind", d.addr);
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", d.addr);
			if (access(path, F_OK) < 0) {
				say("%s %s: FAILED: virtio-pci did not bind again", d.addr, d.kind);
				failed = true;
			}
		}
	}
	say("%s %u cases on %d devices", failed ? "FAILED after" : "survived", total, n);
	return failed ? 1 : 0;
}
