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
	vdev->worker.stop_fd = -1;
	vdev->worker.req = VIRTIO_REQ_NONE;
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

	worker_destroy(vdev);
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

/*
 * DRIVER_OK, on the worker: the epoll set over the stop eventfd and the kicks,
 * then ops->start (which may add the device's fds). 0 or -errno, nothing left
 * behind on error.
 */
static int worker_start(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	unsigned int q;
	int r;

	for (q = 0; q < vdev->num_queues; q++)
		virtq_set_features(&vdev->vq[q], vdev->features);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
		r = -errno;
		log_error("%s: epoll_create1: %s", vdev->ops->name, strerror(errno));
		return r;
	}
	drain_eventfd(w->stop_fd); /* a stop that raced an earlier start's failure */
	r = epoll_add(w->epfd, w->stop_fd, EPOLLIN, VIRTIO_TAG_STOP);
	for (q = 0; !r && q < vdev->num_queues; q++)
		r = epoll_add(w->epfd, vdev->kick_fd[q], EPOLLIN, q);
	if (r) {
		log_error("%s: epoll_ctl: %s", vdev->ops->name, strerror(-r));
		goto out_close_epoll;
	}
	if (vdev->ops->start) {
		r = vdev->ops->start(vdev);
		if (r)
			goto out_close_epoll;
	}
	return 0;

out_close_epoll:
	close(w->epfd);
	w->epfd = -1;
	return r;
}

/* The running device's event loop, until the stop eventfd fires. */
static void worker_loop(struct virtio_dev *vdev)
{
	unsigned int q;

	/* Work queued before the loop ran (e.g. after a restore) is picked up here. */
	for (q = 0; q < vdev->num_queues; q++)
		if (vdev->vq[q].st.ready)
			vdev->ops->handle(vdev, q, EPOLLIN);

	for (;;) {
		struct epoll_event ev[16];
		int n, i;

		n = epoll_wait(vdev->worker.epfd, ev, ARRAY_SIZE(ev), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Nothing can be done without the loop: wait for the stop request. */
			log_error("%s: epoll_wait: %s", vdev->ops->name, strerror(errno));
			virtio_dev_broken(vdev, 0, "the I/O loop failed");
			return;
		}
		for (i = 0; i < n; i++)
			if (ev[i].data.u32 == VIRTIO_TAG_STOP)
				return;
		for (i = 0; i < n; i++) {
			uint32_t tag = ev[i].data.u32;

			if (tag < vdev->num_queues)
				drain_eventfd(vdev->kick_fd[tag]);
			vdev->ops->handle(vdev, tag, ev[i].events);
		}
	}
}

/* Post req and wait until the worker has carried it out; its result. Under w->lock. */
static int worker_request_locked(struct virtio_worker *w, enum virtio_worker_req req)
{
	uint64_t one = 1;
	int r;

	while (w->busy) /* one request at a time: another caller's first */
		pthread_cond_wait(&w->done, &w->lock);
	w->busy = true;
	w->req = req;
	pthread_cond_broadcast(&w->wake);
	if (req == VIRTIO_REQ_STOP && write(w->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_error("cannot signal the I/O thread: %s", strerror(errno));
	while (w->req != VIRTIO_REQ_NONE)
		pthread_cond_wait(&w->done, &w->lock);
	r = w->result;
	w->busy = false;
	pthread_cond_broadcast(&w->done);
	return r;
}

/*
 * The device's I/O thread: created with the device (by the thread that creates
 * it, the VMM's main thread) and parked until a request comes. START runs the
 * device's loop until STOP; CALL runs a function (the VMM's seccomp install);
 * EXIT ends the thread. Everything a guest write sets off (epoll set, ops->start
 * such as TUNSETOFFLOAD, ops->stop) thus happens here, never on the vCPU thread
 * that wrote DRIVER_OK or reset, whose filter allows none of it.
 */
static void *worker_main(void *arg)
{
	struct virtio_dev *vdev = arg;
	struct virtio_worker *w = &vdev->worker;
	bool quit = false;
	char name[16];

	/* "virtio-blk" -> "blk-io": the name in a seccomp kill line and in /proc. */
	snprintf(name, sizeof(name), "%s-io",
		 strncmp(vdev->ops->name, "virtio-", 7) ? vdev->ops->name : vdev->ops->name + 7);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&w->lock);
	while (!quit) {
		enum virtio_worker_req req;
		int r = 0;

		while (w->req == VIRTIO_REQ_NONE)
			pthread_cond_wait(&w->wake, &w->lock);
		req = w->req;
		pthread_mutex_unlock(&w->lock);
		switch (req) {
		case VIRTIO_REQ_START:
			r = worker_start(vdev);
			break;
		case VIRTIO_REQ_CALL:
			r = w->call(w->call_arg);
			break;
		case VIRTIO_REQ_EXIT:
			quit = true;
			break;
		case VIRTIO_REQ_STOP: /* not running: nothing to stop */
		case VIRTIO_REQ_NONE:
			break;
		}
		pthread_mutex_lock(&w->lock);
		w->result = r;
		w->running = req == VIRTIO_REQ_START && !r;
		w->req = VIRTIO_REQ_NONE;
		pthread_cond_broadcast(&w->done);
		if (!w->running)
			continue;
		/* Started: serve the device until the stop eventfd fires. */
		pthread_mutex_unlock(&w->lock);
		worker_loop(vdev);
		pthread_mutex_lock(&w->lock);
		while (w->req != VIRTIO_REQ_STOP) /* the loop failed: wait for the reset */
			pthread_cond_wait(&w->wake, &w->lock);
		pthread_mutex_unlock(&w->lock);
		if (vdev->ops->stop)
			vdev->ops->stop(vdev);
		close(w->epfd);
		w->epfd = -1;
		drain_eventfd(w->stop_fd);
		pthread_mutex_lock(&w->lock);
		w->running = false;
		w->result = 0;
		w->req = VIRTIO_REQ_NONE;
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int virtio_dev_spawn_worker(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	int r;

	if (w->created)
		return 0;

	w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->stop_fd < 0) {
		r = -errno;
		log_error("%s: eventfd: %s", vdev->ops->name, strerror(errno));
		return r;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->done, NULL);
	r = -pthread_create(&w->thread, NULL, worker_main, vdev);
	if (r) {
		log_error("%s: cannot create the I/O thread: %s", vdev->ops->name, strerror(-r));
		goto out_destroy_sync;
	}
	w->created = true;
	return 0;

out_destroy_sync:
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	close(w->stop_fd);
	w->stop_fd = -1;
	return r;
}

static void worker_destroy(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;

	if (!w->created)
		return;
	virtio_dev_stop(vdev);
	pthread_mutex_lock(&w->lock);
	worker_request_locked(w, VIRTIO_REQ_EXIT);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->created = false;
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	close(w->stop_fd);
	w->stop_fd = -1;
}

int virtio_dev_watch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag)
{
	if (vdev->worker.epfd < 0)
		return -ENOTCONN;
	return epoll_add(vdev->worker.epfd, fd, events, tag);
}

int virtio_dev_rewatch(struct virtio_dev *vdev, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	if (vdev->worker.epfd < 0)
		return -ENOTCONN;
	return epoll_ctl(vdev->worker.epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

int virtio_dev_unwatch(struct virtio_dev *vdev, int fd)
{
	if (vdev->worker.epfd < 0)
		return -ENOTCONN;
	return epoll_ctl(vdev->worker.epfd, EPOLL_CTL_DEL, fd, NULL) ? -errno : 0;
}

int virtio_dev_start(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;
	int r;

	/* Not spawned beforehand (tests, fuzz targets): spawn it here, unconfined. */
	r = virtio_dev_spawn_worker(vdev);
	if (r)
		return r;
	pthread_mutex_lock(&w->lock);
	if (!w->running)
		r = worker_request_locked(w, VIRTIO_REQ_START);
	pthread_mutex_unlock(&w->lock);
	return r;
}

void virtio_dev_stop(struct virtio_dev *vdev)
{
	struct virtio_worker *w = &vdev->worker;

	if (!w->created)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->running)
		worker_request_locked(w, VIRTIO_REQ_STOP);
	pthread_mutex_unlock(&w->lock);
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

int virtio_dev_call_on_worker(struct virtio_dev *vdev, int (*fn)(void *arg), void *arg)
{
	struct virtio_worker *w = &vdev->worker;
	int r;

	if (!w->created)
		return -ENOTCONN;
	pthread_mutex_lock(&w->lock);
	if (w->running) {
		r = -EBUSY;
	} else {
		w->call = fn;
		w->call_arg = arg;
		r = worker_request_locked(w, VIRTIO_REQ_CALL);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
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
		/* A guest can trigger this at will: say it once per reset, not per request. */
		log_warn("%s: queue %u: %s; device needs reset", vdev->ops->name, q,
			 why ? why : "malformed request");
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
