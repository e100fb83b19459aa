// SPDX-License-Identifier: MIT
/*
 * plinthd's control socket: libmicrohttpd on DIR/plinthd.sock (mode 0600, made by
 * api_listen() of vmm/api, which also replaces a stale socket and refuses a live
 * one), one internal thread. A request is read whole (capped at PD_BODY_MAX),
 * parsed by pd_parse_request() (pure, fuzzed) and run by pd_handle() under
 * pd->lock.
 */
#include "plinthd.h"

#include <errno.h>
#include <strings.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "cluster.h"
#include "console.h"
#include "log.h"
#include "reqbody.h"
#include "util.h"

struct pd_server {
	struct MHD_Daemon *mhd;
	struct plinthd *pd;
	char path[API_UNIX_PATH_MAX];	/* Unix socket to unlink at stop, "" for TCP */
	bool tcp;			/* requests need a token */
	char *cert, *key;		/* TLS PEM (TCP), owned */
	pthread_mutex_t attach_lock;
	unsigned attached;		/* console streams running (their threads) */
	volatile bool quit;		/* console streams end (pd_server_stop) */
};

/* One stream: GET /v1/vms/{name}/console with "Upgrade: plinth-console" (or
 * .../display with "Upgrade: plinth-display") answered 101, then the connection's
 * socket carries the console (the display's RFB bytes) both ways. A VM of another
 * host's is relayed from there (pd_stream_remote): the same, through a socket. */
struct pd_attach {
	struct pd_server *s;
	struct pd_console *c;		/* owned; NULL for a display */
	int fd;				/* a display's socket (owned), else -1 */
	MHD_socket sock;
	struct MHD_UpgradeResponseHandle *urh;
	char *extra;			/* input the client sent with its request, owned */
	size_t extra_len;
};

struct pd_conn {
	struct req_body body; /* at most PD_BODY_MAX bytes */
};

void pd_reply_error(struct pd_reply *r, int status, const char *fmt, ...)
{
	char msg[PD_ERROR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(r->body);
	r->status = status;
	r->body = json_pack("{s:s}", "error", msg);
}

void pd_handle(struct plinthd *pd, const struct pd_request *req, struct pd_reply *r)
{
	switch (req->route) {
	case PD_VM_LIST:
		pd_vm_list(pd, r);
		break;
	case PD_VM_CREATE:
		pd_vm_create(pd, &req->u.vm, r);
		break;
	case PD_VM_GET:
		pd_vm_get(pd, req->name, r);
		break;
	case PD_VM_DELETE:
		pd_vm_delete(pd, req->name, r);
		break;
	case PD_VM_ACTION:
		pd_vm_action(pd, req, r);
		break;
	case PD_VM_DISK_ADD:
		pd_vm_disk_add(pd, req, r);
		break;
	case PD_VM_DISK_REMOVE:
		pd_vm_disk_remove(pd, req, r);
		break;
	case PD_VM_CONSOLE:
		pd_vm_console(pd, req->name, req->offset, r);
		break;
	case PD_VM_CONSOLE_INPUT:
		pd_vm_console_input(pd, req->name, req->u.input, r);
		break;
	case PD_IMAGE_LIST:
		pd_image_list(pd, r);
		break;
	case PD_IMAGE_CREATE:
		pd_image_create(pd, &req->u.image, r);
		break;
	case PD_IMAGE_GET:
		pd_image_get(pd, req->name, r);
		break;
	case PD_IMAGE_DELETE:
		pd_image_delete(pd, req->name, r);
		break;
	case PD_IMAGE_CLONE:
		pd_image_clone(pd, req->name, &req->u.clone, r);
		break;
	case PD_NET_LIST:
		pd_net_list(pd, r);
		break;
	case PD_NET_CREATE:
		pd_net_create(pd, &req->u.net, r);
		break;
	case PD_NET_GET:
		pd_net_get(pd, req->name, r);
		break;
	case PD_NET_DELETE:
		pd_net_delete(pd, req->name, r);
		break;
	case PD_TOKEN_LIST:
		pd_token_list(pd, r);
		break;
	case PD_TOKEN_CREATE:
		pd_token_create(pd, &req->u.token, r);
		break;
	case PD_TOKEN_GET:
		pd_token_get(pd, req->name, r);
		break;
	case PD_TOKEN_DELETE:
		pd_token_delete(pd, req->name, r);
		break;
	case PD_TASK_LIST:
		pd_task_list(pd, r);
		break;
	case PD_TASK_GET:
		pd_task_get(pd, req->task_id, r);
		break;
	case PD_TASK_CANCEL:
		pd_task_cancel(pd, req->task_id, r);
		break;
	case PD_EVENT_LIST: {
		struct store_event *evs;
		json_t *arr;
		size_t n, i;

		if (pd->ops->event_list(pd->st, req->after, req->limit, &evs, &n)) {
			pd_reply_error(r, 500, "inventory error listing events");
			break;
		}
		arr = json_array();
		for (i = 0; arr && i < n; i++)
			json_array_append_new(
				arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "id",
					       (json_int_t)evs[i].id, "time_ms",
					       (json_int_t)evs[i].time_ms, "actor", evs[i].actor,
					       "action", evs[i].action, "object", evs[i].object,
					       "result", evs[i].result, "message", evs[i].message));
		free(evs);
		r->status = 200;
		r->body = json_pack("{s:o}", "events", arr);
		break;
	}
	case PD_HOST_LIST:
		pd_host_list(pd, r);
		break;
	case PD_VM_MIGRATE:
		pd_vm_migrate(pd, req, r);
		break;
	case PD_VM_INCOMING:
		pd_vm_incoming(pd, req, r);
		break;
	case PD_HOST_EVACUATE:
		pd_host_evacuate(pd, req, r);
		break;
	case PD_HOST_ACTIVATE:
		pd_host_activate(pd, req, r);
		break;
	case PD_VM_DISPLAY:
		pd_reply_error(r, 400, "the display is a stream: GET /v1/vms/%s/display with "
				       "\"Upgrade: " PD_DISPLAY_PROTOCOL "\"", req->name);
		break;
	case PD_HOST_INFO: {
		int64_t term = 0;
		bool leading = pd_cluster_leading(pd->cluster, &term);

		r->status = 200;
		r->body = json_pack("{s:s, s:I, s:I, s:s, s:s, s:b, s:I, s:I}", "version",
				    PLINTH_VERSION, "memory_mib", (json_int_t)pd_host_mem_mib(),
				    "memory_limit_mib", (json_int_t)pd->mem_limit_mib, "store",
				    pd->ops->name, "host", pd->host, "leading", leading, "term",
				    (json_int_t)term, "contact_age_ms",
				    (json_int_t)pd_cluster_contact_age_ms(pd->cluster));
		break;
	}
	}
	if (!r->body)
		pd_reply_error(r, 500, "out of memory");
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, json_t *body,
				 const char *allow)
{
	static const char oom[] = "{\"error\": \"out of memory\"}\n";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text) {
		size_t n = strlen(text);

		text[n] = '\n'; /* json_dumps' NUL: send n + 1 bytes, a line */
		resp = MHD_create_response_from_buffer(n + 1, text, MHD_RESPMEM_MUST_FREE);
	} else {
		status = 500;
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Rebuild the query string ("k=v&k=v") libmicrohttpd took off the URL. */
struct query {
	char buf[256];
	size_t len;
	bool overflow;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	struct query *q = cls;
	int n = snprintf(q->buf + q->len, sizeof(q->buf) - q->len, "%s%s=%s", q->len ? "&" : "",
			 key, value ? value : "");

	if (n < 0 || (size_t)n >= sizeof(q->buf) - q->len) {
		q->overflow = true;
		return MHD_NO;
	}
	q->len += (size_t)n;
	return MHD_YES;
}

/* The client's identity for the audit log: its uid from the socket's credentials. */
static void peer_name(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(buf, size, "uid %u", (unsigned)cred.uid);
	else
		snprintf(buf, size, "api");
}

/* Send all of buf to the non-blocking fd, waiting up to 5 s each time it is full. */
static int send_all_wait(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			if (poll(&p, 1, 5000) != 1)
				return -ETIMEDOUT;
		} else {
			return n < 0 ? -errno : -EPIPE;
		}
	}
	return 0;
}

/* Copy both ways between the client's sock and a display's fd until either closes or
 * *quit is set (looked at every 200 ms). 0 or -errno. */
static int pump_fds(int sock, int fd, const volatile bool *quit)
{
	char buf[16384];

	while (!*quit) {
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
		int i, ret;

		if (poll(p, 2, 200) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0)
				return 0;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			ret = n > 0 ? send_all_wait(p[!i].fd, buf, (size_t)n) : 0;
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void attach_close(struct pd_attach *a)
{
	pd_console_close(a->c);
	if (a->fd >= 0)
		close(a->fd);
	free(a->extra);
	free(a);
}

static void *attach_thread(void *arg)
{
	struct pd_attach *a = arg;
	struct pd_server *s = a->s;
	int ret;

	if (a->c && a->extra_len)
		pd_console_write(a->c, a->extra, a->extra_len);
	else if (a->extra_len)
		send_all_wait(a->fd, a->extra, a->extra_len);
	ret = a->c ? pd_console_pump(a->c, a->sock, &s->quit) : pump_fds(a->sock, a->fd, &s->quit);
	if (ret)
		log_debug("%s stream: %s", a->c ? "console" : "display", strerror(-ret));
	MHD_upgrade_action(a->urh, MHD_UPGRADE_ACTION_CLOSE);
	attach_close(a);
	pthread_mutex_lock(&s->attach_lock);
	s->attached--;
	pthread_mutex_unlock(&s->attach_lock);
	return NULL;
}

/* libmicrohttpd sent the 101: the socket is the console's now (a thread of its own). */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
		       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct pd_attach *a = cls;
	pthread_attr_t attr;
	pthread_t t;

	struct timeval tv = {.tv_sec = 5};

	(void)conn;
	(void)con_cls;
	/* A client that stops reading can't hold the stream's thread (nor the daemon's stop). */
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	a->sock = sock;
	a->urh = urh;
	if (extra_in_size && (a->extra = malloc(extra_in_size))) {
		memcpy(a->extra, extra_in, extra_in_size);
		a->extra_len = extra_in_size;
	}
	pthread_mutex_lock(&a->s->attach_lock);
	a->s->attached++;
	pthread_mutex_unlock(&a->s->attach_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, attach_thread, a)) {
		log_error("console stream: no thread for it");
		pthread_mutex_lock(&a->s->attach_lock);
		a->s->attached--;
		pthread_mutex_unlock(&a->s->attach_lock);
		MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		attach_close(a);
	}
	pthread_attr_destroy(&attr);
}

/* A stream forwarded from another host is for a VM of this host only: the sender read
 * an older owner (the VM moved since). 0, or -errno with r set (404, 421, 500). */
static int stream_owned_here(struct plinthd *pd, const char *name, struct pd_reply *r)
{
	struct store_vm vm;
	int ret = pd_vm_load(pd, name, &vm, NULL, r);

	if (ret)
		return ret;
	if (strcmp(vm.host, pd->host)) {
		pd_reply_error(r, 421, "VM '%s' belongs to host '%s' now, not '%s'", name,
			       vm.host, pd->host);
		ret = -EREMOTE;
	}
	store_vm_clear(&vm);
	return ret;
}

/*
 * Answer 101 and hand the connection to a console stream (display: the display's),
 * this host's VM's or, relayed, another's. Called under s->pd->lock, which it drops
 * (before opening another host's stream: network I/O).
 */
static enum MHD_Result start_attach(struct pd_server *s, struct MHD_Connection *conn,
				    const char *name, bool display, bool from_cluster)
{
	struct plinthd *pd = s->pd;
	struct pd_reply reply = {0};
	struct MHD_Response *resp;
	struct pd_attach *a = calloc(1, sizeof(*a));
	char owner[STORE_NAME_MAX], addr[64], client[STORE_NAME_MAX];
	enum MHD_Result ret;
	int f;

	snprintf(client, sizeof(client), "%s", pd->actor);
	if (!a) {
		pd->actor[0] = '\0';
		pthread_mutex_unlock(&pd->lock);
		return send_json(conn, 500, NULL, NULL);
	}
	a->s = s;
	a->fd = -1;
	f = from_cluster ? stream_owned_here(pd, name, &reply)
			 : pd_vm_target(pd, name, owner, addr, sizeof(addr), &reply);
	if (!f && display)
		a->fd = pd_display_connect(pd, name, &reply);
	else if (!f)
		a->c = pd_console_open(pd, name, &reply);
	/* The audit log has another host's client (the actor: "CLIENT via HOST"). */
	if (from_cluster && (a->c || a->fd >= 0))
		pd_event(pd, display ? "vm.display" : "vm.console", name, "ok", "opened its %s",
			 display ? "display" : "console");
	pd->actor[0] = '\0';
	pthread_mutex_unlock(&pd->lock);
	if (f > 0) {
		int fd = pd_stream_remote(pd, owner, addr, name, display, client, &reply);

		if (fd >= 0 && display)
			a->fd = fd;
		else if (fd >= 0 && !(a->c = pd_console_of_stream(fd)))
			pd_reply_error(&reply, 500, "out of memory");
	}
	if (!a->c && a->fd < 0) {
		free(a);
		return send_json(conn, reply.status, reply.body, NULL);
	}
	resp = MHD_create_response_for_upgrade(on_upgrade, a);
	if (!resp) {
		attach_close(a);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE,
				display ? PD_DISPLAY_PROTOCOL : PD_CONSOLE_PROTOCOL);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	if (ret != MHD_YES) /* on_upgrade will not run */
		attach_close(a);
	return ret;
}

/* How long a forwarded request may wait for the owner's reply: its own longest wait. */
static int forward_timeout_ms(const struct pd_request *req)
{
	if (req->route == PD_VM_ACTION && req->action == PD_STOP)
		return ((int)req->stop_timeout + 60) * 1000;
	if (req->route == PD_VM_DISK_REMOVE)
		return ((int)req->eject_timeout + 60) * 1000;
	return 120000;
}

/* Answer a request refused before it ran (under s->pd->lock, which goes; req freed). */
static enum MHD_Result refuse(struct pd_server *s, struct MHD_Connection *conn,
			      struct pd_request *req, int status, const char *msg)
{
	pthread_mutex_unlock(&s->pd->lock);
	free(req);
	return send_json(conn, status, json_pack("{s:s}", "error", msg), NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct pd_server *s = cls;
	struct pd_conn *c = *con_cls;
	struct pd_reply reply = {0};
	struct pd_request *req;
	struct query q = {.len = 0};
	struct pd_error err;
	const char *upgrade, *forwarded;
	bool attach;
	int status;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return req_body_append(&c->body, upload_data, n, PD_BODY_MAX) ? MHD_NO : MHD_YES;
	}
	if (c->body.too_big)
		return send_json(conn, 413, json_pack("{s:s}", "error", "request body too large"),
				 NULL);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	if (q.overflow)
		return send_json(conn, 400, json_pack("{s:s}", "error", "query string too long"),
				 NULL);
	req = malloc(sizeof(*req));
	if (!req)
		return send_json(conn, 500, NULL, NULL);
	status = pd_parse_request(method, url, q.buf, c->body.data, c->body.len, req, &err);
	if (status) {
		free(req);
		return send_json(conn, status, json_pack("{s:s}", "error", err.msg), err.allow);
	}
	upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
	attach = upgrade &&
		 ((req->route == PD_VM_CONSOLE && !strcasecmp(upgrade, PD_CONSOLE_PROTOCOL)) ||
		  (req->route == PD_VM_DISPLAY && !strcasecmp(upgrade, PD_DISPLAY_PROTOCOL)));
	pthread_mutex_lock(&s->pd->lock);
	forwarded = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, PD_CLUSTER_KEY_HEADER);
	if (forwarded) {
		/* From another host of the cluster (cluster_forward.c): carried out here,
		 * never forwarded again. */
		const char *who = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							      PD_CLUSTER_ACTOR_HEADER);

		if (!pd_cluster_key_ok(s->pd, forwarded))
			return refuse(s, conn, req, 401,
				      "a forwarded request with a wrong cluster credential (is "
				      "--cluster-key the same file on every host?)");
		req->from_cluster = true;
		snprintf(s->pd->actor, sizeof(s->pd->actor), "%s", who ? who : "another host");
		str_printable(s->pd->actor);
	} else if (s->tcp) {
		char role[16], name[STORE_NAME_MAX];
		const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_AUTHORIZATION);

		/* Raw RFB, keyboard and all: the web console's display (web_ws.c) filters
		 * a viewer's; a token gets no display stream. */
		if (req->route == PD_VM_DISPLAY)
			return refuse(s, conn, req, 403,
				      "the display's stream is for the control socket and the "
				      "cluster's hosts only");
		if (pd_token_check(s->pd, auth, role, sizeof(role), name, sizeof(name)))
			return refuse(s, conn, req, 401,
				      "a valid API token is required (Authorization: Bearer TOKEN)");
		/* The stream types into the guest: like console input, not for viewers. */
		if (!pd_role_allows(role, req) || (attach && !strcmp(role, "viewer")))
			return refuse(s, conn, req, 403, "this token's role may not do that");
		snprintf(s->pd->actor, sizeof(s->pd->actor), "token %.56s", name);
	} else {
		peer_name(conn, s->pd->actor, sizeof(s->pd->actor));
	}
	if (attach) {
		enum MHD_Result ret = start_attach(s, conn, req->name,
						   req->route == PD_VM_DISPLAY, req->from_cluster);

		free(req); /* start_attach dropped the lock */
		return ret;
	}
	if (!forwarded) {
		char owner[STORE_NAME_MAX], addr[64], client[STORE_NAME_MAX];
		int f = pd_forward_target(s->pd, req, owner, addr, sizeof(addr), &reply);

		if (f) {
			snprintf(client, sizeof(client), "%s", s->pd->actor);
			s->pd->actor[0] = '\0';
			pthread_mutex_unlock(&s->pd->lock);
			if (f > 0)
				pd_forward(s->pd, owner, addr, method, url, q.buf, c->body.data, c->body.len,
					   client, forward_timeout_ms(req), &reply);
			free(req);
			log_debug("%s %s: %d (host %s)", method, url, reply.status, owner);
			return send_json(conn, reply.status, reply.body, NULL);
		}
	}
	pd_handle(s->pd, req, &reply);
	s->pd->actor[0] = '\0';
	pthread_mutex_unlock(&s->pd->lock);
	free(req);
	log_debug("%s %s: %d", method, url, reply.status);
	return send_json(conn, reply.status, reply.body, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct pd_conn *c = *con_cls;

	if (c) {
		req_body_free(&c->body);
		free(c);
		*con_cls = NULL;
	}
}

struct pd_server *pd_server_start(struct plinthd *pd, const char *socket_path)
{
	struct pd_server *s = calloc(1, sizeof(*s));
	int fd;

	if (!s) {
		log_error("out of memory");
		return NULL;
	}
	fd = api_listen(socket_path);
	if (fd < 0) {
		free(s);
		return NULL;
	}
	s->pd = pd;
	s->attach_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	snprintf(s->path, sizeof(s->path), "%s", socket_path);
	s->mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_UPGRADE, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
				  on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 64u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!s->mhd) {
		log_error("control socket: libmicrohttpd failed to start");
		close(fd);
		unlink(socket_path);
		free(s);
		return NULL;
	}
	return s;
}

struct pd_server *pd_server_start_tcp(struct plinthd *pd, const char *addr, const char *cert_pem,
				      const char *key_pem)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct pd_server *s;
	char host[64];
	const char *colon = strrchr(addr, ':');
	uint64_t port;

	if (!colon || (size_t)(colon - addr) >= sizeof(host) ||
	    parse_uint(colon + 1, 1, 65535, &port)) {
		log_error("--listen tcp:ADDR:PORT: bad address '%s'", addr);
		return NULL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		log_error("--listen: '%s' is not an IPv4 address", host);
		return NULL;
	}
	sa.sin_port = htons((uint16_t)port);
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		log_error("--listen: this libmicrohttpd has no TLS");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->cert = strdup(cert_pem)) || !(s->key = strdup(key_pem))) {
		log_error("out of memory");
		goto out_free;
	}
	s->pd = pd;
	s->attach_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	s->tcp = true;
	/* A thread per connection: two hosts forwarding to each other at once must not
	 * wait for each other's single thread. */
	s->mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
				  MHD_USE_TLS | MHD_ALLOW_UPGRADE, (uint16_t)port, NULL,
				  NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
				  MHD_OPTION_HTTPS_MEM_CERT, s->cert, MHD_OPTION_HTTPS_MEM_KEY,
				  s->key, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				  MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				  MHD_OPTION_END);
	if (!s->mhd) {
		log_error("--listen %s: cannot serve TLS there (address in use, or a bad "
			  "certificate or key)", addr);
		goto out_free;
	}
	return s;

out_free:
	if (s) {
		free(s->cert);
		free(s->key);
	}
	free(s);
	return NULL;
}

void pd_server_stop(struct pd_server *s)
{
	if (!s)
		return;
	/* Console streams first: libmicrohttpd's stop waits for upgraded connections. */
	s->quit = true;
	for (;;) {
		unsigned n;

		pthread_mutex_lock(&s->attach_lock);
		n = s->attached;
		pthread_mutex_unlock(&s->attach_lock);
		if (!n)
			break;
		usleep(20000);
	}
	MHD_stop_daemon(s->mhd);
	pthread_mutex_destroy(&s->attach_lock);
	if (s->path[0])
		unlink(s->path);
	free(s->cert);
	free(s->key);
	free(s);
}
