// SPDX-License-Identifier: MIT
/*
 * The API server: HTTP/1.1 on a Unix socket we create, served by one thread of its
 * own (so ops are serialized, see api.h) that polls the listening socket and up to
 * API_MAX_CONNECTIONS clients. This file only moves bytes: http.c frames a request
 * (http.h says why that is not libmicrohttpd), api_parse_request() reads it and
 * api_dispatch() runs it.
 *
 * A connection reads one request, answers it, then reads the next (a client may
 * send them back to back); an answer that cannot go out at once is sent as the
 * socket drains, and nothing more is read meanwhile. A connection that sends
 * nothing for API_CONN_TIMEOUT_S is closed, so an idle client holds a slot, not
 * the thread.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define API_MAX_CONNECTIONS 16
#define API_CONN_TIMEOUT_S  30 /* idle clients are dropped after this */
/* A connection's input: a head and a body with chunk framing (at worst a few bytes
 * of it per body byte: such a client gets 413 at this cap). */
#define API_IN_MAX (2 * HTTP_HEAD_MAX + 4 * API_BODY_MAX)

struct api_conn {
	int fd;		       /* -1: the slot is free */
	char *in;	       /* bytes received and not yet framed into a request */
	size_t in_len, in_cap;
	char *out;	       /* the answer being sent */
	size_t out_len, out_off;
	bool close_after;      /* close once out is sent (error, or the client asked) */
	bool said_continue;    /* "100 Continue" went out for the request being read */
	void (*sent)(void *vm); /* the answer's api_reply.sent, called once it is out */
	int64_t idle_until_ms; /* closed when nothing comes or goes until then */
};

struct api_server {
	int listen_fd;
	int wake_fd;		      /* an eventfd: api_server_stop()'s knock */
	pthread_t thread;
	const struct api_vm_ops *ops; /* the VMM's side (not owned) */
	void *vm;		      /* passed to every op (not owned) */
	char path[API_UNIX_PATH_MAX]; /* socket path unlinked at stop, "" for none */
	struct api_conn conns[API_MAX_CONNECTIONS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct api_server *s, struct api_conn *c)
{
	if (c->sent)
		c->sent(s->vm);
	close(c->fd);
	free(c->in);
	free(c->out);
	*c = (struct api_conn){ .fd = -1 };
}

/* Queue status and body (consumed; NULL: an out-of-memory error) as JSON on c. */
static void answer(struct api_conn *c, int status, json_t *body, const char *allow,
		   bool head_only)
{
	static const char oom_body[] = "{\"error\": \"out of memory\"}";
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *b = text ? text : oom_body;
	char head[256];
	size_t bl, hl;
	int n;

	json_decref(body);
	if (!text)
		status = 500;
	bl = strlen(b) + 1; /* and a line end */
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n%s%s%s%s\r\n",
		     status, http_reason(status), bl, allow ? "Allow: " : "", allow ? allow : "",
		     allow ? "\r\n" : "", c->close_after ? "Connection: close\r\n" : "");
	hl = n > 0 && (size_t)n < sizeof(head) ? (size_t)n : 0;
	if (head_only)
		bl = 0;
	c->out = malloc(hl + bl);
	if (!hl || !c->out) {
		/* Nothing can be said: the client sees the connection close (conn_write). */
		free(c->out);
		c->out = NULL;
		c->close_after = true;
		c->out_len = 0;
	} else {
		memcpy(c->out, head, hl);
		if (bl) {
			memcpy(c->out + hl, b, bl - 1);
			c->out[hl + bl - 1] = '\n';
		}
		c->out_len = hl + bl;
	}
	c->out_off = 0;
	free(text);
}

static void answer_error(struct api_conn *c, int status, const char *msg, const char *allow)
{
	answer(c, status, api_error_body(msg), allow, false);
}

/* Run the complete request req on c and queue the answer. */
static void serve(struct api_server *s, struct api_conn *c, struct http_request *req)
{
	struct api_request_error err;
	struct api_response resp;
	struct api_cmd cmd;
	bool head_only = !strcmp(req->method, "HEAD");
	int status;

	c->close_after = !req->keep_alive;
	if (req->has_query) {
		answer_error(c, 400, "query parameters are not accepted", NULL);
		return;
	}
	status = api_parse_request(req->method, req->path, req->body, req->body_len, &cmd, &err);
	if (status) {
		log_debug("api: %s %s: %d %s", req->method, req->path, status, err.msg);
		answer(c, status, api_error_body(err.msg), err.allow, head_only);
		return;
	}
	api_dispatch(s->ops, s->vm, &cmd, &resp);
	api_cmd_free(&cmd);
	c->sent = resp.sent;
	log_debug("api: %s %s: %d", req->method, req->path, resp.status);
	answer(c, resp.status, resp.body, NULL, head_only);
}

/*
 * Frame what c received: answer a complete request (or an error, which ends the
 * connection), say 100 Continue when the client waits for it, or wait for more.
 */
static void take_request(struct api_server *s, struct api_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct http_request req;
	char msg[80];
	int ret;

	if (c->out || !c->in_len)
		return;
	ret = http_parse(c->in, c->in_len, API_BODY_MAX, &req);
	if (ret == HTTP_MORE) {
		if (c->in_len >= API_IN_MAX) {
			c->close_after = true;
			answer_error(c, req.head_len ? 413 : 431,
				     req.head_len ? "request body too large" : "request head too large",
				     NULL);
		} else if (req.head_len && req.expect_continue && !c->said_continue) {
			c->said_continue = true;
			c->out = malloc(sizeof(cont) - 1);
			if (c->out) {
				memcpy(c->out, cont, sizeof(cont) - 1);
				c->out_len = sizeof(cont) - 1;
				c->out_off = 0;
			}
		}
		return;
	}
	if (ret < 0) {
		c->close_after = true;
		log_debug("api: request refused: %d %s", -ret, req.why);
		if (ret == -413)
			snprintf(msg, sizeof(msg), "request body larger than %u bytes", API_BODY_MAX);
		answer_error(c, -ret, ret == -413 ? msg : req.why, NULL);
		return;
	}
	c->said_continue = false;
	serve(s, c, &req);
	http_request_free(&req);
	memmove(c->in, c->in + ret, c->in_len - (size_t)ret);
	c->in_len -= (size_t)ret;
}

/* Read what the client sent; false when the connection is over. */
static bool conn_read(struct api_server *s, struct api_conn *c)
{
	ssize_t n;

	if (c->in_cap - c->in_len < 4096 && c->in_cap < API_IN_MAX) {
		size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
		char *p;

		if (cap > API_IN_MAX)
			cap = API_IN_MAX;
		p = realloc(c->in, cap);
		if (!p)
			return false;
		c->in = p;
		c->in_cap = cap;
	}
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false; /* the client is done (a request cut short gets no answer) */
	c->in_len += (size_t)n;
	take_request(s, c);
	return true;
}

/* Send what is queued; false when the connection is over. */
static bool conn_write(struct api_server *s, struct api_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->sent) {
		void (*sent)(void *vm) = c->sent;

		c->sent = NULL;
		sent(s->vm);
	}
	if (c->close_after)
		return false;
	take_request(s, c); /* the next request, if it came along */
	return true;
}

static void accept_clients(struct api_server *s, int64_t now)
{
	for (size_t i = 0; i < API_MAX_CONNECTIONS; i++) {
		struct api_conn *c = &s->conns[i];
		int fd;

		if (c->fd >= 0)
			continue;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_info("API server: accept: %s", strerror(errno));
			return;
		}
		*c = (struct api_conn){ .fd = fd, .idle_until_ms = now + API_CONN_TIMEOUT_S * 1000 };
	}
}

static void *server_thread(void *arg)
{
	struct api_server *s = arg;
	struct pollfd pfd[2 + API_MAX_CONNECTIONS];
	struct api_conn *polled[API_MAX_CONNECTIONS];

	pthread_setname_np(pthread_self(), "api");
	for (;;) {
		int64_t now = now_ms(), next = now + API_CONN_TIMEOUT_S * 1000;
		size_t n = 2, nc = 0, i;
		bool room = false;
		int ret;

		pfd[0] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
		for (i = 0; i < API_MAX_CONNECTIONS; i++) {
			struct api_conn *c = &s->conns[i];

			if (c->fd < 0) {
				room = true;
				continue;
			}
			if (c->idle_until_ms <= now) {
				log_debug("API server: a client idle for %d s closed", API_CONN_TIMEOUT_S);
				conn_close(s, c);
				room = true;
				continue;
			}
			if (c->idle_until_ms < next)
				next = c->idle_until_ms;
			polled[nc++] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		}
		/* Full: new clients wait in the listen backlog. */
		pfd[1] = (struct pollfd){ .fd = room ? s->listen_fd : -1, .events = POLLIN };
		ret = poll(pfd, n, (int)(next - now));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			log_error("API server: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		now = now_ms();
		for (i = 0; i < nc; i++) {
			struct api_conn *c = polled[i];
			short ev = pfd[2 + i].revents;
			bool alive = true;

			if (!ev)
				continue;
			c->idle_until_ms = now + API_CONN_TIMEOUT_S * 1000;
			if (c->out)
				alive = conn_write(s, c);
			else if (ev & (POLLIN | POLLHUP | POLLERR))
				alive = conn_read(s, c);
			/* An answer made by this read goes out without waiting for a poll (and
			 * close_after without out: no answer could be made, close now). */
			if (alive && (c->out || c->close_after))
				alive = conn_write(s, c);
			if (!alive)
				conn_close(s, c);
		}
		if (pfd[1].revents)
			accept_clients(s, now);
	}
	for (size_t i = 0; i < API_MAX_CONNECTIONS; i++)
		if (s->conns[i].fd >= 0)
			conn_close(s, &s->conns[i]);
	return NULL;
}

/*
 * Make room for our socket at path: nothing there, or a socket nobody listens on
 * (left by a process that died) which is removed. 0 or -errno, logged.
 */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		log_error("API socket %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_error("API socket %s: a file that is not a socket is in the way", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("API socket: %s", strerror(errno));
		return -errno;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (ret == 0) {
		log_error("API socket %s is in use by another process", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		log_error("API socket %s: %s", path, strerror(errno));
		return -errno;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		log_error("API socket %s: cannot remove the stale socket: %s", path,
			  strerror(errno));
		return -errno;
	}
	return 0;
}

int api_listen(const char *socket_path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	if (!socket_path || !socket_path[0] || strlen(socket_path) >= sizeof(sa.sun_path)) {
		log_error("API socket path must be 1..%zu bytes: %s", sizeof(sa.sun_path) - 1,
			  socket_path ? socket_path : "(none)");
		return -EINVAL;
	}
	/* jansson seeds its hash function from /dev/urandom on first use: do it here, on
	 * the set-up thread, rather than on an API thread that may no longer open files. */
	json_object_seed(0);
	ret = clear_stale_socket(socket_path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("API socket: %s", strerror(errno));
		return ret;
	}
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		log_error("API socket %s: bind: %s", socket_path, strerror(errno));
		goto out_close;
	}
	/* Only our user may drive the VM: set before listen(), so no one connects first. */
	if (chmod(socket_path, 0600) < 0 || listen(fd, API_MAX_CONNECTIONS) < 0) {
		ret = -errno;
		/* sa.sun_path, not socket_path: GCC's -Wformat-overflow under ASan
		 * wrongly thinks socket_path may be NULL here. */
		log_error("API socket %s: %s", sa.sun_path, strerror(errno));
		goto out_unlink;
	}
	return fd;

out_unlink:
	unlink(socket_path);
out_close:
	close(fd);
	return ret;
}

struct api_server *api_server_start_fd(int listen_fd, const char *socket_path,
				       const struct api_vm_ops *ops, void *vm)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		log_error("API server: out of memory");
		close(listen_fd);
		return NULL;
	}
	s->listen_fd = listen_fd;
	s->ops = ops;
	s->vm = vm;
	for (size_t i = 0; i < API_MAX_CONNECTIONS; i++)
		s->conns[i].fd = -1;
	if (socket_path)
		snprintf(s->path, sizeof(s->path), "%s", socket_path);
	/* Non-blocking: a client gone between poll and accept must not stall the thread. */
	ret = fcntl(listen_fd, F_GETFL);
	if (ret < 0 || fcntl(listen_fd, F_SETFL, ret | O_NONBLOCK) < 0) {
		log_error("API server: %s", strerror(errno));
		goto fail;
	}
	s->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		log_error("API server: eventfd: %s", strerror(errno));
		goto fail;
	}
	ret = pthread_create(&s->thread, NULL, server_thread, s);
	if (ret) {
		log_error("API server: cannot start its thread: %s", strerror(ret));
		close(s->wake_fd);
		goto fail;
	}
	return s;
fail:
	close(listen_fd);
	free(s);
	return NULL;
}

struct api_server *api_server_start(const char *socket_path, const struct api_vm_ops *ops, void *vm)
{
	struct api_server *s;
	int fd = api_listen(socket_path);

	if (fd < 0)
		return NULL;
	s = api_server_start_fd(fd, socket_path, ops, vm);
	if (!s)
		unlinkat(AT_FDCWD, socket_path, 0);
	return s;
}

/* Knock, and wait for the thread to close its clients and end. */
static void stop_thread(struct api_server *s)
{
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_error("API server: cannot wake its thread: %s", strerror(errno));
	pthread_join(s->thread, NULL);
	close(s->wake_fd);
}

int api_server_release(struct api_server *s)
{
	int fd = s->listen_fd;

	stop_thread(s);
	free(s);
	return fd;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	stop_thread(s);
	close(s->listen_fd);
	if (s->path[0])
		unlinkat(AT_FDCWD, s->path, 0);
	free(s);
}
