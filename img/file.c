// SPDX-License-Identifier: MIT
/*
 * The file protocol: moves bytes between a host file and memory. Formats never
 * call pread(2) themselves; they go through pfile_*, whose ops table is the
 * single place where tests inject faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"

static int posix_pread(struct pimg_file *f, void *buf, size_t len, uint64_t off)
{
	return pread_full(f->fd, buf, len, (off_t)off);
}

static int posix_pwrite(struct pimg_file *f, const void *buf, size_t len, uint64_t off)
{
	return pwrite_full(f->fd, buf, len, (off_t)off);
}

static int posix_sync(struct pimg_file *f)
{
	return fdatasync(f->fd) ? -errno : 0;
}

static int posix_punch(struct pimg_file *f, uint64_t off, uint64_t len)
{
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	return 0;
}

/*
 * Make a range inside the file read as zeros without writing them. A regular file
 * gets a hole (which frees space; ZERO_RANGE would allocate unwritten extents), a
 * block device ZERO_RANGE (a discard need not read back as zeros there).
 */
static int posix_zero_range(struct pimg_file *f, uint64_t off, uint64_t len)
{
	int mode = f->blockdev ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

	if (!fallocate(f->fd, mode, (off_t)off, (off_t)len))
		return 0;
	return errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL ? -EOPNOTSUPP : -errno;
}

static int posix_truncate(struct pimg_file *f, uint64_t size)
{
	return ftruncate(f->fd, (off_t)size) ? -errno : 0;
}

/* All of a vectored transfer (n <= PFILE_BATCH_IOV), resumed after short ones. */
static int posix_rwv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off, bool write)
{
	struct iovec v[PFILE_BATCH_IOV];
	int i = 0;

	if (n < 0 || n > PFILE_BATCH_IOV)
		return -EINVAL;
	memcpy(v, iov, (size_t)n * sizeof(*v));
	while (i < n) {
		ssize_t r = write ? pwritev(f->fd, v + i, n - i, (off_t)off)
				  : preadv(f->fd, v + i, n - i, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* short file */
		off += (uint64_t)r;
		while (i < n && (size_t)r >= v[i].iov_len) {
			r -= (ssize_t)v[i].iov_len;
			i++;
		}
		if (i < n) {
			v[i].iov_base = (uint8_t *)v[i].iov_base + r;
			v[i].iov_len -= (size_t)r;
		}
	}
	return 0;
}

static int posix_preadv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off)
{
	return posix_rwv(f, iov, n, off, false);
}

static int posix_pwritev(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off)
{
	return posix_rwv(f, iov, n, off, true);
}

const struct pimg_file_ops pimg_posix_file_ops = {
	.pread = posix_pread,
	.pwrite = posix_pwrite,
	.sync = posix_sync,
	.punch = posix_punch,
	.truncate = posix_truncate,
	.zero_range = posix_zero_range,
	.preadv = posix_preadv,
	.pwritev = posix_pwritev,
};

/*
 * The one mutable global besides logging: a test-only switch, set before any
 * image is opened, never touched by production code.
 */
static const struct pimg_file_ops *test_file_ops;

void pimg_set_file_ops_for_testing(const struct pimg_file_ops *ops)
{
	test_file_ops = ops;
}

struct pimg_file *pfile_open(const char *path, bool rdonly, bool create)
{
	return pfile_open_lock(path, rdonly, create, false);
}

struct pimg_file *pfile_open_lock(const char *path, bool rdonly, bool create, bool nolock)
{
	int flags = O_CLOEXEC | (rdonly ? O_RDONLY : O_RDWR);
	int fd;

	if (create)
		flags |= O_CREAT | O_TRUNC;
	fd = open(path, flags, 0644);
	if (fd < 0) {
		log_error("%s: %s", path, strerror(errno));
		return NULL;
	}
	return pfile_from_fd(fd, path, rdonly, nolock);
}

struct pimg_file *pfile_from_fd(int fd, const char *path, bool rdonly, bool nolock)
{
	struct pimg_file *f;
	struct stat st;

	f = calloc(1, sizeof(*f));
	if (!f) {
		log_error("%s: out of memory", path);
		goto out_close;
	}
	f->fd = fd;
	f->path = strdup(path);
	if (!f->path) {
		log_error("%s: out of memory", path);
		goto out_free;
	}
	if (fstat(f->fd, &st)) {
		log_error("%s: %s", path, strerror(errno));
		goto out_free_path;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("%s: not a regular file or block device", path);
		goto out_free_path;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(f->fd, 0, SEEK_END);

		if (end < 0) {
			log_error("%s: %s", path, strerror(errno));
			goto out_free_path;
		}
		f->size = (uint64_t)end;
	} else {
		f->size = (uint64_t)st.st_size;
	}
	f->blockdev = S_ISBLK(st.st_mode);
	/* One writer per file; readers share (backing files). */
	if (!nolock && flock(f->fd, (rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		log_error("%s: %s", path,
			  errno == EWOULDBLOCK ? "image is in use by another process (locked)"
					       : strerror(errno));
		goto out_free_path;
	}
	f->rdonly = rdonly;
	f->ops = test_file_ops ? test_file_ops : &pimg_posix_file_ops;
	return f;

out_free_path:
	free(f->path);
out_free:
	free(f);
out_close:
	close(fd);
	return NULL;
}

/* ---- the helper thread (pfile_start_helper) ---- */

/*
 * Transfers this large are split in two, the second half on the helper: reads, and
 * writes to a block device. Buffered writes to a regular file are not: Linux file
 * systems (ext4, XFS, btrfs, tmpfs) hold the inode's lock across the whole copy into
 * the page cache, so the halves ran one after the other and the split only added two
 * thread hand-offs per transfer (a scheduling delay each on a busy machine).
 */
#define PFILE_SPLIT_MIN (2 * MiB)
/*
 * Buffered writes to a regular file go out in calls of at most this many bytes: on
 * Linux 6.18 (ext4, large folios) one 4 MiB pwritev into fresh page cache cost about
 * five times the system time of the same bytes in 1 or 2 MiB calls (1 GiB: 0.8-1.0 s
 * against 0.16-0.19 s, every run), and convert writes 4 MiB pieces.
 */
#define PFILE_WRITE_PIECE (1 * MiB)

struct pfile_helper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pimg_file *f;               /* borrowed: the file it works for */
	struct iovec iov[PFILE_BATCH_IOV]; /* the posted job: buffers, file offset, direction */
	int n;
	uint64_t off;
	bool write;
	bool busy;                         /* a job is posted and not finished */
	bool quit;                         /* set by pfile_close, when not busy */
	int ret;                           /* the finished job's outcome */
};

static int rwv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off, bool write)
{
	return write ? f->ops->pwritev(f, iov, n, off) : f->ops->preadv(f, iov, n, off);
}

/* rwv in calls of at most max bytes each, in order. */
static int rwv_pieces(struct pimg_file *f, const struct iovec *iov, int n, uint64_t off, bool write,
		      uint64_t max)
{
	struct iovec v[PFILE_BATCH_IOV];
	size_t skip = 0; /* bytes of iov[i] already sent */
	int i = 0, ret;

	while (i < n) {
		uint64_t len = 0;
		int k = 0;

		/* Each entry of iov gives at most one entry of v: k <= n. */
		while (i < n && len < max) {
			size_t take = (size_t)MIN((uint64_t)(iov[i].iov_len - skip), max - len);

			v[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
			v[k++].iov_len = take;
			len += take;
			skip += take;
			if (skip == iov[i].iov_len) {
				skip = 0;
				i++;
			}
		}
		ret = rwv(f, v, k, off, write);
		if (ret)
			return ret;
		off += len;
	}
	return 0;
}

static void *helper_thread(void *opaque)
{
	struct pfile_helper *h = opaque;
	int ret;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->busy && !h->quit)
			pthread_cond_wait(&h->cv, &h->mu);
		if (!h->busy)
			break;
		pthread_mutex_unlock(&h->mu);
		ret = rwv(h->f, h->iov, h->n, h->off, h->write);
		pthread_mutex_lock(&h->mu);
		h->ret = ret;
		h->busy = false;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int pfile_start_helper(struct pimg_file *f)
{
	struct pfile_helper *h;
	int err;

	if (f->helper)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->f = f;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	err = pthread_create(&h->thread, NULL, helper_thread, h);
	if (err) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -err;
	}
	f->helper = h;
	return 0;
}

static void stop_helper(struct pfile_helper *h)
{
	pthread_mutex_lock(&h->mu);
	h->quit = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void pfile_close(struct pimg_file *f)
{
	if (!f)
		return;
	if (f->helper)
		stop_helper(f->helper);
	close(f->fd);
	free(f->path);
	free(f);
}

/*
 * All of a vectored transfer of len bytes (n <= PFILE_BATCH_IOV entries): a write to a
 * regular file in pieces of PFILE_WRITE_PIECE; a large one that PFILE_SPLIT_MIN's
 * comment allows in two halves at once, the first here, the second on the helper;
 * without vectored ops (fault-injecting tests) one call per entry.
 */
static int transfer(struct pimg_file *f, const struct iovec *iov, int n, uint64_t len, uint64_t off,
		    bool write)
{
	struct pfile_helper *h = f->helper;
	struct iovec first[PFILE_BATCH_IOV];
	uint64_t half, at = 0;
	size_t cut;
	int i = 0, n1, ret, hret;

	if (!(write ? f->ops->pwritev : f->ops->preadv)) {
		for (ret = 0; i < n && !ret; off += iov[i].iov_len, i++)
			ret = write ? f->ops->pwrite(f, iov[i].iov_base, iov[i].iov_len, off)
				    : f->ops->pread(f, iov[i].iov_base, iov[i].iov_len, off);
		return ret;
	}
	if (write && !f->blockdev)
		return len > PFILE_WRITE_PIECE ? rwv_pieces(f, iov, n, off, true, PFILE_WRITE_PIECE)
					       : rwv(f, iov, n, off, true);
	if (!h || len < PFILE_SPLIT_MIN)
		return rwv(f, iov, n, off, write);
	half = (len / 2) & ~(uint64_t)4095;
	while (at + iov[i].iov_len <= half) {
		first[i] = iov[i];
		at += iov[i].iov_len;
		i++;
	}
	n1 = i;
	cut = (size_t)(half - at); /* iov[i] holds byte half, and more after it */
	if (cut) {
		first[n1] = iov[i];
		first[n1++].iov_len = cut;
	}
	pthread_mutex_lock(&h->mu);
	h->iov[0].iov_base = (uint8_t *)iov[i].iov_base + cut;
	h->iov[0].iov_len = iov[i].iov_len - cut;
	for (h->n = 1, i++; i < n; i++)
		h->iov[h->n++] = iov[i];
	h->off = off + half;
	h->write = write;
	h->busy = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	ret = rwv(f, first, n1, off, write);
	pthread_mutex_lock(&h->mu);
	while (h->busy)
		pthread_cond_wait(&h->cv, &h->mu);
	hret = h->ret;
	pthread_mutex_unlock(&h->mu);
	return ret ? ret : hret;
}

/* ---- batches (pfile_batch_begin) ---- */

/* Send the queue, if any; it is empty afterwards, whatever the outcome. */
static int batch_send(struct pimg_file *f)
{
	struct pfile_batch *b = &f->batch;
	uint64_t len = b->len;
	int n = b->n;

	if (!n)
		return 0;
	b->n = 0;
	b->len = 0;
	return transfer(f, b->iov, n, len, b->off, b->write);
}

/*
 * Queue a transfer if the batch takes it: 1 queued, 0 not (the queue, if any, was sent
 * first), -errno sending the queue failed.
 */
static int batch_queue(struct pimg_file *f, const void *buf, size_t len, uint64_t off, bool write)
{
	struct pfile_batch *b = &f->batch;
	const uint8_t *p = buf;
	struct iovec *last = b->n ? &b->iov[b->n - 1] : NULL;
	int ret;

	if (!b->depth || !len || p < b->lo || p > b->hi || (size_t)(b->hi - p) < len) {
		ret = batch_send(f);
		return ret < 0 ? ret : 0;
	}
	if (b->n && (b->write != write || b->off + b->len != off || b->n == PFILE_BATCH_IOV)) {
		ret = batch_send(f);
		if (ret)
			return ret;
		last = NULL;
	}
	if (!b->n) {
		b->write = write;
		b->off = off;
	}
	if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
	} else {
		/* The vector holds const data for writes; no transfer writes through it. */
		b->iov[b->n].iov_base = (void *)(uintptr_t)p;
		b->iov[b->n].iov_len = len;
		b->n++;
	}
	b->len += len;
	return 1;
}

void pfile_batch_begin(struct pimg_file *f, const void *buf, uint64_t len)
{
	struct pfile_batch *b = &f->batch;

	if (b->depth++)
		return;
	b->lo = buf;
	b->hi = b->lo + len;
}

void pfile_batch_window(struct pimg_file *f, const void *buf, uint64_t len)
{
	struct pfile_batch *b = &f->batch;

	if (!b->depth)
		return;
	b->lo = buf;
	b->hi = b->lo + len;
}

int pfile_batch_end(struct pimg_file *f)
{
	struct pfile_batch *b = &f->batch;

	if (!b->depth || --b->depth)
		return 0;
	b->lo = b->hi = NULL;
	return batch_send(f);
}

int pfile_pread(struct pimg_file *f, void *buf, size_t len, uint64_t off, bool strict)
{
	uint64_t avail;
	int ret;

	if (!range_within(off, len, f->size)) {
		ret = batch_send(f);
		if (ret)
			return ret;
		if (strict)
			return -EIO;
		avail = off < f->size ? f->size - off : 0;
		memset((uint8_t *)buf + avail, 0, len - avail);
		len = avail;
		if (!len)
			return 0;
		return f->ops->pread(f, buf, len, off);
	}
	ret = batch_queue(f, buf, len, off, false);
	if (ret)
		return ret < 0 ? ret : 0;
	if (f->helper && len >= PFILE_SPLIT_MIN)
		return transfer(f, &(struct iovec){ .iov_base = buf, .iov_len = len }, 1, len, off, false);
	return f->ops->pread(f, buf, len, off);
}

int pfile_pwrite(struct pimg_file *f, const void *buf, size_t len, uint64_t off)
{
	uint64_t end;
	int ret;

	if (f->rdonly)
		return -EROFS;
	if (add_overflow(off, (uint64_t)len, &end) || end > (uint64_t)INT64_MAX)
		return -EFBIG;
	ret = batch_queue(f, buf, len, off, true);
	if (ret < 0)
		return ret;
	if (!ret && (len > PFILE_WRITE_PIECE || (f->helper && len >= PFILE_SPLIT_MIN)))
		ret = transfer(f, &(struct iovec){ .iov_base = (void *)(uintptr_t)buf, .iov_len = len }, 1,
			       len, off, true);
	else if (!ret)
		ret = f->ops->pwrite(f, buf, len, off);
	if (ret < 0)
		return ret;
	if (end > f->size)
		f->size = end;
	return 0;
}

int pfile_rwv(struct pimg_file *f, const struct iovec *iov, int n, uint64_t len, uint64_t off,
	      bool write)
{
	uint64_t end;
	int i = 0, ret;

	if (write && f->rdonly)
		return -EROFS;
	if (add_overflow(off, len, &end) || end > (uint64_t)INT64_MAX)
		return write ? -EFBIG : -EINVAL;
	ret = batch_send(f); /* what was queued goes first */
	if (ret)
		return ret;
	if (!write && end > f->size) {
		/* Past the end: each buffer as pfile_pread does it (zeros there). */
		for (; i < n && !ret; off += iov[i].iov_len, i++)
			ret = pfile_pread(f, iov[i].iov_base, iov[i].iov_len, off, false);
		return ret;
	}
	while (i < n) {
		int k = MIN(n - i, PFILE_BATCH_IOV), j;
		uint64_t part = 0;

		for (j = i; j < i + k; j++)
			part += iov[j].iov_len; /* <= len: no overflow */
		ret = part ? transfer(f, iov + i, k, part, off, write) : 0;
		if (ret)
			return ret;
		off += part;
		i += k;
	}
	if (write && end > f->size)
		f->size = end;
	return 0;
}

int pfile_sync(struct pimg_file *f)
{
	int ret = batch_send(f);

	if (ret || f->rdonly || f->unsafe)
		return ret;
	/*
	 * A failed fdatasync may have dropped dirty pages, and the kernel reports that
	 * once: a later fdatasync of the same file succeeds although the data is gone.
	 * So the first failure sticks (QEMU's file-posix does the same).
	 */
	if (f->sync_failed)
		return -EIO;
	ret = f->ops->sync(f);
	if (ret)
		f->sync_failed = true;
	return ret;
}

int pfile_punch(struct pimg_file *f, uint64_t off, uint64_t len)
{
	int ret;

	if (f->rdonly)
		return -EROFS;
	ret = batch_send(f);
	return ret ? ret : f->ops->punch(f, off, len);
}

#define ZERO_WRITE_CHUNK (64 * 1024)

int pfile_write_zeroes(struct pimg_file *f, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[ZERO_WRITE_CHUNK];
	int ret;

	if (f->rdonly)
		return -EROFS;
	if (!range_within(off, len, f->size))
		return -EINVAL;
	ret = batch_send(f);
	if (ret)
		return ret;
	if (len && f->ops->zero_range) {
		ret = f->ops->zero_range(f, off, len);
		if (ret != -EOPNOTSUPP)
			return ret;
	}
	while (len) {
		uint64_t n = MIN(len, sizeof(zeros));

		ret = f->ops->pwrite(f, zeros, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

int pfile_truncate(struct pimg_file *f, uint64_t size)
{
	int ret;

	if (f->rdonly)
		return -EROFS;
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	ret = batch_send(f);
	if (!ret)
		ret = f->ops->truncate(f, size);
	if (!ret)
		f->size = size;
	return ret;
}
