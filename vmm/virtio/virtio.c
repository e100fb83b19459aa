// SPDX-License-Identifier: MIT
/* Transport-independent virtio device plumbing: features, start/stop, the I/O thread. */
#include "virtio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "log.h"
#include "util.h"

#define VIRTIO_DRAIN_BUDGET 1024 /* chains per drain before yielding to the event loop */

static void worker_destroy(struct virtio_dev *vdev);

int virtio_dev_init(struct virtio_dev *vdev, const struct virtio_dev_ops *ops, void *priv,
		    const struct guest_mem *mem, unsigned int num_queues, uint16_t queue_size,
		    uint64_t device_features)
{
	unsigned int i;
	int r;

	if (num_queues == 0 || num_queues > VIRTIO_MAX_QUEUES || !is_pow2(queue_size) ||
	    queue_size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	memset(vdev, 0, sizeof(*vdev));
	vdev->ops = ops;
	vdev->priv = priv;
	vdev->mem = mem;
	vdev->num_queues = num_queues;
	vdev->host_features = device_features | (1ULL << VIRTIO_F_VERSION_1) |
			      (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
			      (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vdev->worker.epfd = -1;
	vdev->worker.ctl_fd = -1;
	ratelimit_init(&vdev->log_rl, VIRTIO_LOG_BURST, VIRTIO_LOG_MS);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vdev->kick_fd[i] = -1;
	for (i = 0; i < num_queues; i++) {
		virtq_init(&vdev->vq[i], mem, queue_size);
		vdev->kick_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (vdev->kick_fd[i] < 0) {
			r = -errno;
			log_error("%s: eventfd: %s", ops->name, strerror(errno));
			goto out_close_kicks;
		}
	}
	return 0;

out_close_kicks:
	while (i--)
		close(vdev->kick_fd[i]);
	return r;
}

void virtio_dev_fini(struct virtio_dev *vdev)
{
	unsigned int i;

	worker_destroy(vdev); /* stops the device first */
	if (vdev->ops->destroy)
		vdev->ops->destroy(vdev);
	for (i = 0; i < vdev->num_queues; i++) {
		if (vdev->kick_fd[i] >= 0)
			close(vdev->kick_fd[i]);
		vdev->kick_fd[i] = -1;
	}
}

/* Consume a kick so that level-triggered epoll stops reporting it. */
static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v))
		;
}

static int epoll_add(int epfd, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* A fresh epoll set holding only the control eventfd (the device's fds went with the old one). */
static int worker_new_epoll(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	int epfd = epoll_create1(EPOLL_CLOEXEC), r;

	if (epfd < 0)
		return -errno;
	r = epoll_add(epfd, w->ctl_fd, EPOLLIN, VIRTIO_TAG_CTL);
	if (r) {
		close(epfd);
		return r;
	}
	if (w->epfd >= 0)
		close(w->epfd);
	w->epfd = epfd;
	return 0;
}

/* START, on the worker: kicks and the device's own fds join the loop. */
static int worker_start(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	unsigned int q;
	int r = 0;

	if (w->running)
		return 0;
	for (q = 0; q < vdev->num_queues; q++)
		virtq_set_features(&vdev->vq[q], vdev->features);
	for (q = 0; !r && q < vdev->num_queues; q++)
		r = epoll_add(w->epfd, vdev->kick_fd[q], EPOLLIN, q);
	if (r) {
		log_error("%s: epoll_ctl: %s", vdev->ops->name, strerror(-r));
		goto out_new_epoll;
	}
	w->running = true; /* from here ops->start may watch its fds */
	if (vdev->ops->start) {
		r = vdev->ops->start(vdev);
		if (r) {
			w->running = false;
			goto out_new_epoll;
		}
	}
	/* Work queued before we ran (kicks before DRIVER_OK, a restore) is picked up now. */
	for (q = 0; q < vdev->num_queues; q++)
		if (vdev->vq[q].st.ready)
			vdev->ops->handle(vdev, q, EPOLLIN);
	return 0;

out_new_epoll:
	worker_new_epoll(vdev);
	return r;
}

/* STOP, on the worker: drop every fd from the loop and let the device forget its run. */
static void worker_stop(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	int r;

	if (!w->running)
		return;
	w->running = false;
	r = worker_new_epoll(vdev);
	if (r) /* cannot happen short of fd exhaustion; the old set then stays, parked */
		log_error("%s: epoll_create1: %s", vdev->ops->name, strerror(-r));
	if (vdev->ops->stop)
		vdev->ops->stop(vdev);
}

/* Carry out the pending command and acknowledge it. Returns false on EXIT. */
static bool worker_command(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	enum virtio_cmd cmd;
	bool alive = true;
	uint64_t v;
	int r = 0;

	while (read(w->ctl_fd, &v, sizeof(v)) == sizeof(v))
		;
	pthread_mutex_lock(&w->lock);
	cmd = w->cmd;
	pthread_mutex_unlock(&w->lock);
	if (cmd == VIRTIO_CMD_NONE)
		return true;
	/* The caller's confinement (e.g. a seccomp filter), before any guest work. */
	if (!w->hook_done) {
		w->hook_done = true;
		if (w->hook && w->hook(w->hook_opaque)) {
			log_error("%s: the I/O thread's setup hook failed", vdev->ops->name);
			w->hook_failed = true;
		}
	}
	switch (cmd) {
	case VIRTIO_CMD_START:
		r = w->hook_failed ? -EPERM : worker_start(vdev);
		break;
	case VIRTIO_CMD_STOP:
		worker_stop(vdev);
		break;
	case VIRTIO_CMD_EXIT:
		worker_stop(vdev);
		alive = false;
		break;
	default:
		break;
	}
	pthread_mutex_lock(&w->lock);
	w->cmd = VIRTIO_CMD_NONE;
	w->result = r;
	w->done++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return alive;
}

static void *worker_main(void *arg)
{
	struct virtio_dev *vdev = arg;
	struct virtio_worker *w = &vdev->worker;
	char name[16];

	/* "virtio-blk" -> "blk-io": the name in a seccomp kill line and in /proc. */
	snprintf(name, sizeof(name), "%s-io",
		 strncmp(vdev->ops->name, "virtio-", 7) ? vdev->ops->name : vdev->ops->name + 7);
	pthread_setname_np(pthread_self(), name);

	for (;;) {
		struct epoll_event ev[16];
		int n, i;

		n = epoll_wait(w->epfd, ev, ARRAY_SIZE(ev), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("%s: epoll_wait: %s", vdev->ops->name, strerror(errno));
			n = 0;
		}
		for (i = 0; i < n; i++) {
			uint32_t tag = ev[i].data.u32;

			if (tag == VIRTIO_TAG_CTL) {
				if (!worker_command(vdev))
					return NULL;
				break; /* the set may have changed: the rest of ev is stale */
			}
			if (!w->running)
				continue;
			if (tag < vdev->num_queues)
				drain_eventfd(vdev->kick_fd[tag]);
			vdev->ops->handle(vdev, tag, ev[i].events);
		}
	}
}

/* Ask the worker to carry out cmd and wait for it. */
static int worker_request(struct virtio_dev *vdev, enum virtio_cmd cmd)
{
	struct virtio_worker *w = &vdev->worker;
	uint64_t one = 1, ticket;
	int r;

	if (!w->created)
		return -ENOTCONN;
	pthread_mutex_lock(&w->lock);
	while (w->cmd != VIRTIO_CMD_NONE) /* one request at a time */
		pthread_cond_wait(&w->cond, &w->lock);
	w->cmd = cmd;
	ticket = w->done + 1;
	if (write(w->ctl_fd, &one, sizeof(one)) != sizeof(one))
		log_error("%s: cannot wake the I/O thread: %s", vdev->ops->name, strerror(errno));
	while (w->done < ticket)
		pthread_cond_wait(&w->cond, &w->lock);
	r = w->result;
	pthread_mutex_unlock(&w->lock);
	return r;
}

int virtio_dev_watch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag)
{
	if (!vdev->worker.running)
		return -ENOTCONN;
	return epoll_add(vdev->worker.epfd, fd, events, tag);
}

int virtio_dev_rewatch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	if (!vdev->worker.running)
		return -ENOTCONN;
	return epoll_ctl(vdev->worker.epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

int virtio_dev_unwatch(struct virtio_dev *vdev, int fd)
{
	if (!vdev->worker.running)
		return -ENOTCONN;
	return epoll_ctl(vdev->worker.epfd, EPOLL_CTL_DEL, fd, NULL) ? -errno : 0;
}

int virtio_dev_start(struct virtio_dev *vdev)
{
	/* Not spawned beforehand (tests, fuzz targets): spawn it now, on the caller. */
	int r = virtio_dev_spawn(vdev);

	return r ? r : worker_request(vdev, VIRTIO_CMD_START);
}

void virtio_dev_stop(struct virtio_dev *vdev)
{
	if (vdev->worker.created) /* never spawned: never started */
		worker_request(vdev, VIRTIO_CMD_STOP);
}

bool virtio_dev_running(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	bool running;

	if (!w->created)
		return false;
	pthread_mutex_lock(&w->lock);
	running = w->running;
	pthread_mutex_unlock(&w->lock);
	return running;
}

void virtio_dev_set_thread_hook(struct virtio_dev *vdev, int (*hook)(void *opaque), void *opaque)
{
	vdev->worker.hook = hook;
	vdev->worker.hook_opaque = opaque;
}

/*
 * The parked I/O thread, spawned by the VMM's main thread before the guest runs
 * (after jail_enter(), which needs a single thread), or by the first start.
 */
int virtio_dev_spawn(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	int r;

	if (w->created)
		return 0;
	w->epfd = -1;
	w->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->ctl_fd < 0) {
		r = -errno;
		log_error("%s: eventfd: %s", vdev->ops->name, strerror(errno));
		return r;
	}
	r = worker_new_epoll(vdev);
	if (r) {
		log_error("%s: epoll: %s", vdev->ops->name, strerror(-r));
		goto out_close_ctl;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	r = -pthread_create(&w->thread, NULL, worker_main, vdev);
	if (r) {
		log_error("%s: cannot create its I/O thread: %s", vdev->ops->name, strerror(-r));
		goto out_destroy_sync;
	}
	w->created = true;
	return vdev->ops->spawn ? vdev->ops->spawn(vdev) : 0;

out_destroy_sync:
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	close(w->epfd);
	w->epfd = -1;
out_close_ctl:
	close(w->ctl_fd);
	w->ctl_fd = -1;
	return r;
}

static void worker_destroy(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;

	if (!w->created)
		return;
	worker_request(vdev, VIRTIO_CMD_EXIT);
	pthread_join(w->thread, NULL);
	w->created = false;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	close(w->epfd);
	close(w->ctl_fd);
	w->epfd = w->ctl_fd = -1;
}

void virtio_dev_reset(struct virtio_dev *vdev)
{
	unsigned int q;

	for (q = 0; q < vdev->num_queues; q++) {
		virtq_reset(&vdev->vq[q]);
		drain_eventfd(vdev->kick_fd[q]);
	}
	vdev->features = 0;
	vdev->broken_logged = false;
}

void virtio_dev_notify(struct virtio_dev *vdev, unsigned int q)
{
	if (q < vdev->num_queues && virtq_should_notify(&vdev->vq[q]) && vdev->tops)
		vdev->tops->notify_queue(vdev, q);
}

void virtio_dev_config_changed(struct virtio_dev *vdev)
{
	if (vdev->tops)
		vdev->tops->notify_config(vdev);
}

void virtio_dev_broken(struct virtio_dev *vdev, unsigned int q, const char *why)
{
	if (!vdev->broken_logged) {
		/*
		 * A guest can trigger this at will: say it once per reset, not per request,
		 * and a guest that resets and breaks the device in a loop is rate-limited.
		 */
		log_limited(&vdev->log_rl, LOG_WARN, "%s: queue %u: %s; device needs reset",
			    vdev->ops->name, q, why ? why : "malformed request");
		vdev->broken_logged = true;
	}
	if (vdev->tops)
		vdev->tops->needs_reset(vdev);
}

int virtio_dev_drain(struct virtio_dev *vdev, unsigned int q, struct virtq_elem *elem,
		     virtio_chain_fn *fn)
{
	struct virtq *vq = &vdev->vq[q];
	unsigned int n = 0, unsignalled = 0;
	const char *why = NULL;
	uint32_t written;
	int r;

	for (;;) {
		virtq_disable_notify(vq);
		while ((r = virtq_pop(vq, elem, &why)) > 0) {
			if (n == VIRTIO_DRAIN_BUDGET) {
				/*
				 * A guest can keep a queue full forever (even by having the
				 * device write into its own avail ring): yield to the loop so
				 * a stop request is seen, and come back through our own kick.
				 */
				uint64_t one = 1;

				virtq_unpop(vq);
				if (unsignalled)
					virtio_dev_notify(vdev, q);
				if (write(vdev->kick_fd[q], &one, sizeof(one)) != sizeof(one))
					log_debug("%s: self-kick lost", vdev->ops->name);
				return 0;
			}
			written = 0;
			r = fn(vdev, elem, &written);
			if (r == VIRTIO_DEFER) {
				virtq_unpop(vq);
				virtq_enable_notify(vq);
				if (unsignalled)
					virtio_dev_notify(vdev, q);
				return VIRTIO_DEFER;
			}
			if (r < 0)
				break;
			virtq_push(vq, elem, written);
			n++;
			/* Interrupt only for answers: an empty pass must not signal. */
			if (++unsignalled == 32) {
				virtio_dev_notify(vdev, q);
				unsignalled = 0;
			}
		}
		if (unsignalled) /* what was answered (also before a fault) */
			virtio_dev_notify(vdev, q);
		unsignalled = 0;
		if (r < 0) {
			virtio_dev_broken(vdev, q, why);
			return -EIO;
		}
		if (!virtq_enable_notify(vq))
			return 0;
	}
}

int iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t len,
	      struct iovec *out, unsigned int max)
{
	unsigned int i, k = 0;

	for (i = 0; i < n && len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		if (k >= max)
			return -E2BIG;
		chunk = MIN(iov[i].iov_len - off, len);
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = chunk;
		k++;
		len -= chunk;
		off = 0;
	}
	return len ? -ERANGE : (int)k;
}
