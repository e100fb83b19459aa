// SPDX-License-Identifier: MIT
/*
 * The API server: libmicrohttpd on a Unix socket we create, with one internal
 * polling thread (so ops are serialized, see api.h). This file only moves bytes:
 * the request is parsed by api_parse_request() and run by api_dispatch().
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "dynlib.h"
#include "log.h"
#include "reqbody.h"
#include "util.h"

/*
 * libmicrohttpd is loaded at run time (dynlib.h says why): the functions this file calls,
 * resolved by api_lib_load(); every call below goes through this table.
 */
#define MHD_FUNCS(X)                                                                               \
	X(MHD_start_daemon)                                                                        \
	X(MHD_stop_daemon)                                                                         \
	X(MHD_quiesce_daemon)                                                                      \
	X(MHD_create_response_from_buffer)                                                         \
	X(MHD_add_response_header)                                                                 \
	X(MHD_queue_response)                                                                      \
	X(MHD_destroy_response)                                                                    \
	X(MHD_lookup_connection_value)                                                             \
	X(MHD_get_connection_values)
static struct {
	MHD_FUNCS(DYNLIB_FIELD)
} mhd_fn;
static const char *const mhd_names[] = { MHD_FUNCS(DYNLIB_NAME) };
static struct dynlib mhd_lib = DYNLIB_INIT(PLINTH_MHD_SONAME, mhd_names, mhd_fn);
_Static_assert(sizeof(mhd_fn) == sizeof(mhd_names), "one pointer per name");
#define MHD_start_daemon		(*mhd_fn.MHD_start_daemon)
#define MHD_stop_daemon			(*mhd_fn.MHD_stop_daemon)
#define MHD_quiesce_daemon		(*mhd_fn.MHD_quiesce_daemon)
#define MHD_create_response_from_buffer (*mhd_fn.MHD_create_response_from_buffer)
#define MHD_add_response_header		(*mhd_fn.MHD_add_response_header)
#define MHD_queue_response		(*mhd_fn.MHD_queue_response)
#define MHD_destroy_response		(*mhd_fn.MHD_destroy_response)
#define MHD_lookup_connection_value	(*mhd_fn.MHD_lookup_connection_value)
#define MHD_get_connection_values	(*mhd_fn.MHD_get_connection_values)

void api_lib_preload(void)
{
	dynlib_preload(&mhd_lib);
}

int api_lib_load(void)
{
	return dynlib_load(&mhd_lib);
}

#define API_MAX_CONNECTIONS 16
#define API_CONN_TIMEOUT_S  30 /* idle clients are dropped after this */

struct api_server {
	struct MHD_Daemon *mhd;	      /* owns the listening socket */
	const struct api_vm_ops *ops; /* the VMM's side (not owned) */
	void *vm;		      /* passed to every op (not owned) */
	char path[API_UNIX_PATH_MAX]; /* socket path unlinked at stop, "" for none */
};

/* One request in progress: its body as it arrives. */
struct api_conn {
	struct req_body body; /* at most API_BODY_MAX bytes */
	void (*sent)(void *vm); /* the op's api_reply.sent, called when the answer is out */
};

static const char oom_body[] = "{\"error\": \"out of memory\"}\n";

/* Send status and body (consumed) as application/json; allow: the Allow header or NULL. */
static enum MHD_Result respond(struct MHD_Connection *conn, int status, json_t *body,
			       const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text) {
		size_t n = strlen(text);
		char *line = realloc(text, n + 2);

		if (line) {
			text = line;
			text[n] = '\n';
			text[n + 1] = '\0';
		}
		resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
		free(text);
	} else {
		status = 500;
		resp = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, int status, const char *msg,
				     const char *allow)
{
	return respond(conn, status, api_error_body(msg), allow);
}

static char *too_big_msg(char *buf, size_t size)
{
	snprintf(buf, size, "request body larger than %u bytes", API_BODY_MAX);
	return buf;
}

/* libmicrohttpd's request callback: called with the headers, then per body chunk,
 * then once more with no data when the request is complete. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_conn *rc = *con_cls;
	struct api_request_error err;
	struct api_response resp;
	struct api_cmd cmd;
	char msg[80];
	int status;

	if (!rc) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t clen;

		rc = calloc(1, sizeof(*rc));
		if (!rc)
			return MHD_NO;
		*con_cls = rc;
		/* Refuse an announced oversized body before it is sent. */
		if (cl && parse_uint(cl, 0, API_BODY_MAX, &clen) == -ERANGE)
			return respond_error(conn, 413, too_big_msg(msg, sizeof(msg)), NULL);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return req_body_append(&rc->body, upload_data, n, API_BODY_MAX) ? MHD_NO : MHD_YES;
	}
	if (rc->body.too_big)
		return respond_error(conn, 413, too_big_msg(msg, sizeof(msg)), NULL);

	/* libmicrohttpd strips the query string from url; no endpoint takes one. */
	if (MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
		return respond_error(conn, 400, "query parameters are not accepted", NULL);
	status = api_parse_request(method, url, rc->body.data, rc->body.len, &cmd, &err);
	if (status) {
		log_debug("api: %s %s: %d %s", method, url, status, err.msg);
		return respond_error(conn, status, err.msg, err.allow);
	}
	api_dispatch(s->ops, s->vm, &cmd, &resp);
	api_cmd_free(&cmd);
	rc->sent = resp.sent;
	log_debug("api: %s %s: %d", method, url, resp.status);
	return respond(conn, resp.status, resp.body, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_server *s = cls;
	struct api_conn *rc = *con_cls;

	if (!rc)
		return;
	if (rc->sent)
		rc->sent(s->vm);
	req_body_free(&rc->body);
	free(rc);
	*con_cls = NULL;
}

/* libmicrohttpd's messages are mostly about clients (one hung up early): not worth
 * the VMM's stderr by default. Our own failures are logged where they happen. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	log_vmsg(LOG_INFO, fmt, ap);
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

	if (!s) {
		log_error("API server: out of memory");
		close(listen_fd);
		return NULL;
	}
	if (api_lib_load()) {
		close(listen_fd);
		free(s);
		return NULL;
	}
	s->ops = ops;
	s->vm = vm;
	if (socket_path)
		snprintf(s->path, sizeof(s->path), "%s", socket_path);
	/* ITC (an eventfd) wakes the thread on stop: no shutdown() of the listening socket,
	 * which api_server_release() hands on. */
	s->mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC,
				  0, NULL, NULL,
				  on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
				  on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int)API_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned int)API_CONN_TIMEOUT_S, MHD_OPTION_END);
	if (!s->mhd) {
		log_error("API server: libmicrohttpd failed to start");
		close(listen_fd);
		free(s);
		return NULL;
	}
	return s;
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

int api_server_release(struct api_server *s)
{
	MHD_socket fd = MHD_quiesce_daemon(s->mhd);

	if (fd == MHD_INVALID_SOCKET)
		log_error("API server: cannot take its listening socket back");
	MHD_stop_daemon(s->mhd);
	free(s);
	return fd == MHD_INVALID_SOCKET ? -1 : fd;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd); /* joins the thread and closes the listening socket */
	if (s->path[0])
		unlinkat(AT_FDCWD, s->path, 0);
	free(s);
}
