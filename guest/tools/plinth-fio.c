// SPDX-License-Identifier: MIT
/*
 * plinth-fio: a minimal block I/O benchmark for the standard guest (busybox has none).
 *
 *   plinth-fio --dev /dev/vda --rw randread|randwrite|read|write --bs 4k --size 256M
 *              --runtime 10 [--qd 1]
 *
 * One synchronous O_DIRECT request at a time (queue depth 1) of --bs bytes, at offsets
 * inside the first --size bytes of the device: sequential (wrapping round) or chosen
 * by a fixed-seed PRNG, so that every run does the same requests. Runs for --runtime
 * seconds of CLOCK_MONOTONIC, then prints one line for scripts to parse:
 *
 *   PLINTH-FIO rw=randread bs=4096 qd=1 ios=N bytes=N secs=S iops=X mbps=Y
 *
 * (mbps is 10^6 bytes per second). Writes store PRNG data, not zeroes, so that no
 * layer below can shortcut them; nothing is flushed, as with fio's defaults.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ALIGNMENT 4096
#define SEED      0x9e3779b97f4a7c15ULL

enum pattern { PAT_READ, PAT_WRITE, PAT_RANDREAD, PAT_RANDWRITE };

static const char *const pattern_names[] = {
	[PAT_READ] = "read",
	[PAT_WRITE] = "write",
	[PAT_RANDREAD] = "randread",
	[PAT_RANDWRITE] = "randwrite",
};

struct job {
	const char *dev;   /* device or file to test */
	enum pattern rw;   /* access pattern */
	uint64_t bs;       /* bytes per request, a multiple of ALIGNMENT */
	uint64_t size;     /* bytes of the device used, from offset 0 */
	uint64_t runtime;  /* seconds */
};

static const char usage_text[] =
	"Usage: plinth-fio --dev PATH --rw randread|randwrite|read|write [--bs SIZE]\n"
	"                  [--size SIZE] [--runtime SECONDS] [--qd 1]\n"
	"Synchronous O_DIRECT I/O (queue depth 1) for --runtime seconds (default 10) over the\n"
	"first --size bytes (default: the whole device) in --bs requests (default 4k).\n";

/* xorshift64*: small, fast, and the same sequence on every run. */
static uint64_t prng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Size in bytes of a block device or regular file; 0 or -errno. */
static int dev_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	*size = st.st_size;
	return 0;
}

static int parse_args(int argc, char **argv, struct job *job)
{
	static const struct option opts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "rw", required_argument, NULL, 'r' },
		{ "bs", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "runtime", required_argument, NULL, 't' },
		{ "qd", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t qd;
	size_t i;
	int c;

	*job = (struct job){ .rw = PAT_RANDREAD, .bs = 4096, .runtime = 10 };
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			job->dev = optarg;
			break;
		case 'r':
			for (i = 0; i < ARRAY_SIZE(pattern_names); i++)
				if (!strcmp(optarg, pattern_names[i]))
					break;
			if (i == ARRAY_SIZE(pattern_names)) {
				fprintf(stderr, "plinth-fio: unknown --rw '%s'\n", optarg);
				return -EINVAL;
			}
			job->rw = (enum pattern)i;
			break;
		case 'b':
			if (parse_size(optarg, &job->bs) || !job->bs || job->bs % ALIGNMENT ||
			    job->bs > 64 * MiB) {
				fprintf(stderr, "plinth-fio: --bs must be a multiple of 4k up to 64M\n");
				return -EINVAL;
			}
			break;
		case 's':
			if (parse_size(optarg, &job->size) || !job->size) {
				fprintf(stderr, "plinth-fio: bad --size '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 't':
			if (parse_uint(optarg, 1, 86400, &job->runtime)) {
				fprintf(stderr, "plinth-fio: --runtime must be 1..86400 seconds\n");
				return -EINVAL;
			}
			break;
		case 'q':
			if (parse_uint(optarg, 1, 1, &qd)) {
				fprintf(stderr, "plinth-fio: only --qd 1 is supported\n");
				return -EINVAL;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return -EINVAL;
		}
	}
	if (optind != argc || !job->dev) {
		fputs(usage_text, stderr);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool writing, random;
	uint64_t blocks, ios = 0, state = SEED, next = 0, devsize, i;
	double t0, secs;
	struct job job;
	void *buf;
	int fd, ret;

	if (parse_args(argc, argv, &job))
		return 2;
	writing = job.rw == PAT_WRITE || job.rw == PAT_RANDWRITE;
	random = job.rw == PAT_RANDREAD || job.rw == PAT_RANDWRITE;

	fd = open(job.dev, (writing ? O_WRONLY : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "plinth-fio: %s: %s\n", job.dev, strerror(errno));
		return 1;
	}
	ret = dev_size(fd, &devsize);
	if (ret) {
		fprintf(stderr, "plinth-fio: %s: size: %s\n", job.dev, strerror(-ret));
		goto out_close_fd;
	}
	if (!job.size)
		job.size = devsize;
	if (job.size > devsize) {
		fprintf(stderr, "plinth-fio: --size %llu is larger than %s (%llu bytes)\n",
			(unsigned long long)job.size, job.dev, (unsigned long long)devsize);
		ret = -EINVAL;
		goto out_close_fd;
	}
	blocks = job.size / job.bs;
	if (!blocks) {
		fprintf(stderr, "plinth-fio: --size is smaller than one --bs block\n");
		ret = -EINVAL;
		goto out_close_fd;
	}
	ret = -posix_memalign(&buf, ALIGNMENT, job.bs);
	if (ret) {
		fprintf(stderr, "plinth-fio: no memory for a %llu-byte buffer\n",
			(unsigned long long)job.bs);
		goto out_close_fd;
	}
	for (i = 0; i + 8 <= job.bs; i += 8) {
		uint64_t v = prng_next(&state);

		memcpy((char *)buf + i, &v, sizeof(v));
	}

	t0 = now();
	do {
		uint64_t blk = random ? prng_next(&state) % blocks : next++ % blocks;
		ssize_t n;

		if (writing)
			n = pwrite(fd, buf, job.bs, (off_t)(blk * job.bs));
		else
			n = pread(fd, buf, job.bs, (off_t)(blk * job.bs));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)job.bs) {
			fprintf(stderr, "plinth-fio: %s at %llu: %s\n", pattern_names[job.rw],
				(unsigned long long)(blk * job.bs),
				n < 0 ? strerror(errno) : "short transfer");
			ret = n < 0 ? -errno : -EIO;
			goto out_free_buf;
		}
		ios++;
		/* Reading the clock costs far less than a request that leaves the guest. */
	} while ((secs = now() - t0) < (double)job.runtime);

	printf("PLINTH-FIO rw=%s bs=%llu qd=1 ios=%llu bytes=%llu secs=%.3f iops=%.0f mbps=%.1f\n",
	       pattern_names[job.rw], (unsigned long long)job.bs, (unsigned long long)ios,
	       (unsigned long long)(ios * job.bs), secs, ios / secs, ios * job.bs / secs / 1e6);
	ret = 0;
out_free_buf:
	free(buf);
out_close_fd:
	close(fd);
	return ret ? 1 : 0;
}
