// SPDX-License-Identifier: MIT
/*
 * Forwarding (cluster.h, docs/cluster.md "Forwarding"): any host's API serves the
 * whole cluster. A request about a VM that another host owns is carried out there:
 * this plinthd sends it, whole, to the owner's --listen address over TLS (the
 * owner's certificate checked against --cluster-ca), with the cluster key as its
 * credential and the original client as the actor of the audit log, and returns the
 * owner's answer as its own. A forwarded request is never forwarded again: if the
 * VM moved meanwhile, the owner's refusal says where it went.
 *
 * Threads: pd_forward_target() runs under pd->lock (it reads the inventory);
 * pd_forward() runs without it (network I/O must not hold the daemon).
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "console.h"
#include "keyfile.h"
#include "log.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 5000
#define REPLY_MAX (4 << 20) /* a console's scrollback is 64 KiB; lists are larger */

bool pd_route_forwardable(const struct pd_request *req)
{
	switch (req->route) {
	case PD_VM_ACTION:
	case PD_VM_DELETE:
	case PD_VM_CONSOLE:
	case PD_VM_CONSOLE_INPUT:
	case PD_VM_MIGRATE:
	case PD_VM_DISK_ADD:
	case PD_VM_DISK_REMOVE:
	case PD_HOST_EVACUATE: /* carried out by the host itself */
		return true;
	default:
		return false;
	}
}

/* Where owner (of obj, for the messages) is reached: 1 with its address in addr; -errno
 * with r set (no cluster key, down, no address, not a member: 404 for an evacuation). */
static int owner_address(struct plinthd *pd, const char *obj, const char *owner, bool evacuate,
			 char *addr, size_t addrlen, struct pd_reply *r)
{
	struct store_host *hosts = NULL;
	size_t n = 0, i;
	int ret;

	if (!pd->cluster_key[0]) {
		pd_reply_error(r, 409,
			       "%s belongs to host '%s', not this one ('%s'): ask that host "
			       "(or give every plinthd --cluster-key to forward)",
			       obj, owner, pd->host);
		return -EREMOTE;
	}
	if (pd->ops->host_list(pd->st, &hosts, &n)) {
		pd_reply_error(r, 500, "inventory error listing hosts");
		return -EIO;
	}
	ret = -ENOENT;
	for (i = 0; i < n; i++) {
		const struct store_host *h = &hosts[i];

		if (strcmp(h->name, owner))
			continue;
		if (!h->address[0]) {
			pd_reply_error(r, 503, "%s belongs to host '%s', whose plinthd has no "
					       "--listen address to forward to", obj, owner);
			ret = -EHOSTUNREACH;
		} else if (!h->heartbeat_ms || h->age_ms > PD_HOST_DOWN_MS) {
			pd_reply_error(r, 503, "%s belongs to host '%s', which is %s", obj,
				       owner, h->heartbeat_ms ? "down (no heartbeat)" : "stopped");
			ret = -EHOSTDOWN;
		} else {
			snprintf(addr, addrlen, "%s", h->address);
			ret = 1;
		}
		break;
	}
	if (ret == -ENOENT && evacuate)
		pd_reply_error(r, 404, "host '%s' is not in the cluster", owner);
	else if (ret == -ENOENT)
		pd_reply_error(r, 503, "%s belongs to host '%s', which is not in the host list",
			       obj, owner);
	free(hosts);
	return ret;
}

int pd_vm_target(struct plinthd *pd, const char *name, char *owner, char *addr, size_t addrlen,
		 struct pd_reply *r)
{
	struct store_vm vm;
	char obj[STORE_NAME_MAX + 8];
	int ret = pd->ops->vm_get(pd->st, name, &vm);

	if (ret == -ENOENT)
		return 0; /* the handler says 404 */
	if (ret) {
		pd_reply_error(r, 500, "inventory error reading VM '%s'", name);
		return -EIO;
	}
	snprintf(owner, STORE_NAME_MAX, "%s", vm.host);
	store_vm_clear(&vm);
	if (!strcmp(owner, pd->host))
		return 0;
	snprintf(obj, sizeof(obj), "VM '%s'", name);
	return owner_address(pd, obj, owner, false, addr, addrlen, r);
}

int pd_forward_target(struct plinthd *pd, const struct pd_request *req, char *owner, char *addr,
		      size_t addrlen, struct pd_reply *r)
{
	char obj[STORE_NAME_MAX + 40];

	if (!pd_route_forwardable(req))
		return 0;
	if (req->route != PD_HOST_EVACUATE)
		return pd_vm_target(pd, req->name, owner, addr, addrlen, r);
	snprintf(obj, sizeof(obj), "the evacuation of host '%s'", req->name);
	snprintf(owner, STORE_NAME_MAX, "%s", req->name);
	if (!strcmp(owner, pd->host))
		return 0;
	return owner_address(pd, obj, owner, true, addr, addrlen, r);
}

/* A TCP connection to "A.B.C.D:PORT" within CONNECT_TIMEOUT_MS (or timeout_ms if
 * shorter), with timeout_ms on every later read and write. fd or -errno. */
static int connect_to(const char *addr, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
	const char *colon = strrchr(addr, ':');
	struct pollfd p;
	char ip[32];
	uint64_t port;
	socklen_t len = sizeof(int);
	int fd, err = 0, one = 1;

	if (!colon || (size_t)(colon - addr) >= sizeof(ip) || parse_uint(colon + 1, 1, 65535, &port))
		return -EINVAL;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -EINVAL;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto out_close;
	}
	p = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&p, 1, timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS) != 1) {
		err = -ETIMEDOUT;
		goto out_close;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		err = err ? -err : -errno;
		goto out_close;
	}
	if (fcntl(fd, F_SETFL, 0) < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		err = -errno;
		goto out_close;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
out_close:
	close(fd);
	return err;
}

/* Send all of buf; 0 or a GnuTLS error. */
static int tls_send_all(gnutls_session_t s, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = gnutls_record_send(s, buf, len);

		/* GNUTLS_E_AGAIN is the socket's SO_SNDTIMEO (connect_to): a timeout. */
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The reply of one HTTP/1.1 exchange on s ("Connection: close": read to the end)
 * into *out (owned, NUL-terminated); 0, a GnuTLS error, or -EMSGSIZE. */
static int tls_read_all(gnutls_session_t s, char **out, size_t *outlen)
{
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap + 1), *nb;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= REPLY_MAX) {
				free(buf);
				return -EMSGSIZE;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = gnutls_record_recv(s, buf + len, cap - len);
		if (n == GNUTLS_E_INTERRUPTED) /* GNUTLS_E_AGAIN: SO_RCVTIMEO ran out */
			continue;
		if (n == 0 || (n == GNUTLS_E_PREMATURE_TERMINATION && len))
			break;
		if (n < 0) {
			free(buf);
			return (int)n;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

/* Turn a raw HTTP reply into r: its status and its JSON body. 0 or -EPROTO. */
static int parse_reply(const char *raw, size_t len, struct pd_reply *r)
{
	const char *body = strstr(raw, "\r\n\r\n");
	json_t *j;
	int status;

	if (strncmp(raw, "HTTP/1.", 7) || len < 12 || sscanf(raw + 9, "%3d", &status) != 1 ||
	    status < 100 || status > 599 || !body)
		return -EPROTO;
	body += 4;
	j = json_loadb(body, len - (size_t)(body - raw), 0, NULL);
	if (!j)
		return -EPROTO;
	json_decref(r->body);
	r->status = status;
	r->body = j;
	return 0;
}

/* A TLS session to owner at addr, its certificate checked against --cluster-ca. 0 with
 * *s, *cred and *fd set (owned: session_close), or a GnuTLS error with *what naming the
 * step, or -errno of the connection with *what NULL (logged). */
static int session_open(const struct plinthd *pd, const char *owner, const char *addr,
			int timeout_ms, gnutls_session_t *s, gnutls_certificate_credentials_t *cred,
			int *fd, const char **what)
{
	int ret;

	*what = "connect";
	ret = gnutls_certificate_allocate_credentials(cred);
	if (ret < 0)
		return ret;
	*what = "trust file (--cluster-ca)";
	ret = gnutls_certificate_set_x509_trust_file(*cred, pd->cluster_ca, GNUTLS_X509_FMT_PEM);
	if (ret == 0)
		ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
	if (ret < 0)
		goto out_free_cred;
	ret = gnutls_init(s, GNUTLS_CLIENT);
	if (ret < 0)
		goto out_free_cred;
	gnutls_set_default_priority(*s);
	gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, *cred);
	/* Hosts are reached by address: the chain to --cluster-ca is the check. */
	gnutls_session_set_verify_cert(*s, NULL, 0);
	*what = NULL;
	*fd = connect_to(addr, timeout_ms);
	if (*fd < 0) {
		ret = *fd;
		log_info("forward to %s (%s): %s", owner, addr, strerror(-ret));
		goto out_deinit;
	}
	gnutls_transport_set_int(*s, *fd);
	gnutls_handshake_set_timeout(*s, CONNECT_TIMEOUT_MS);
	*what = "TLS handshake (is its certificate in --cluster-ca?)";
	do
		ret = gnutls_handshake(*s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret >= 0)
		return 0;
	close(*fd);
out_deinit:
	gnutls_deinit(*s);
out_free_cred:
	gnutls_certificate_free_credentials(*cred);
	return ret;
}

static void session_close(gnutls_session_t s, gnutls_certificate_credentials_t cred, int fd)
{
	close(fd);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
}

/* The request's head: method url?query, the cluster credential, client via this host as
 * the actor, and extra header lines (each ending in CRLF). Owned, NULL if out of memory. */
static char *request_head(const struct plinthd *pd, const char *addr, const char *method,
			  const char *url, const char *query, const char *client,
			  const char *extra)
{
	char actor[STORE_NAME_MAX], *head;

	snprintf(actor, sizeof(actor), "%s", client && client[0] ? client : "api");
	str_printable(actor);
	if (asprintf(&head,
		     "%s %s%s%s HTTP/1.1\r\nHost: %s\r\n%s" PD_CLUSTER_KEY_HEADER
		     ": %s\r\n" PD_CLUSTER_ACTOR_HEADER ": %s via %s\r\n\r\n",
		     method, url, query && query[0] ? "?" : "", query ? query : "", addr, extra,
		     pd->cluster_key, actor, pd->host) < 0)
		return NULL;
	return head;
}

/* The one line of a failed exchange with owner into r: the connection's -errno (what
 * NULL), else a GnuTLS error (or -EMSGSIZE, -ENOMEM, -EPROTO) at step what. */
static void reply_failed(struct pd_reply *r, const char *owner, const char *addr, int ret,
			 const char *what)
{
	if (!what)
		pd_reply_error(r, 502, "host '%s' (%s) did not answer: %s", owner, addr,
			       strerror(-ret));
	else if (ret == -EMSGSIZE || ret == -ENOMEM || ret == -EPROTO)
		pd_reply_error(r, 502, "forwarding to host '%s' (%s) failed: %s", owner, addr,
			       strerror(-ret));
	else if (ret == GNUTLS_E_AGAIN)
		pd_reply_error(r, 504, "host '%s' (%s) did not %s in time", owner, addr,
			       !strcmp(what, "send") ? "take the request" : "answer");
	else
		pd_reply_error(r, 502, "forwarding to host '%s' (%s) failed: %s: %s", owner, addr,
			       what, gnutls_strerror(ret));
}

void pd_forward(struct plinthd *pd, const char *owner, const char *addr, const char *method,
		const char *url, const char *query, const char *body, size_t body_len,
		const char *client, int timeout_ms, struct pd_reply *r)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	char *head = NULL, *raw = NULL, extra[96];
	size_t rawlen = 0;
	int fd = -1, ret;
	const char *what;

	ret = session_open(pd, owner, addr, timeout_ms, &s, &cred, &fd, &what);
	if (ret) {
		reply_failed(r, owner, addr, ret, what);
		return;
	}
	snprintf(extra, sizeof(extra),
		 "Connection: close\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
		 body_len);
	head = request_head(pd, addr, method, url, query, client, extra);
	what = "send";
	ret = head ? tls_send_all(s, head, strlen(head)) : -ENOMEM;
	if (!ret && body_len)
		ret = tls_send_all(s, body, body_len);
	if (ret)
		goto out_close;
	what = "reply";
	ret = tls_read_all(s, &raw, &rawlen);
	if (ret)
		goto out_close;
	if (parse_reply(raw, rawlen, r)) {
		pd_reply_error(r, 502, "host '%s' (%s) sent a reply that is not the API's", owner,
			       addr);
		goto out_bye;
	}
	log_debug("forwarded %s %s to %s: %d", method, url, owner, r->status);
out_bye:
	gnutls_bye(s, GNUTLS_SHUT_WR);
out_close:
	session_close(s, cred, fd);
	if (ret)
		reply_failed(r, owner, addr, ret, what);
	free(head);
	free(raw);
}

/* --- streams: consoles and displays of other hosts' VMs ------------------------------- */

#define RELAY_BUF   16384
#define RELAY_TICK_MS 200  /* pd->quit is looked at this often */
#define STREAM_HEAD_MAX 4096

/* One relay: bytes both ways between the consumer's socket (the other end of sp) and
 * the owner's TLS stream; its thread owns all of it. */
struct relay {
	struct plinthd *pd;	/* pd->quit and pd->relays only */
	gnutls_session_t s;
	gnutls_certificate_credentials_t cred;
	int fd;			/* the TCP connection under s */
	int sp;			/* our end of the socketpair */
	char name[STORE_NAME_MAX];
};

/* Move bytes until either side ends, or plinthd stops. Non-blocking both ways, so a
 * side that does not read holds only its own direction. */
static void relay_run(struct relay *rl)
{
	char up[RELAY_BUF], down[RELAY_BUF]; /* to the owner, to the consumer */
	size_t up_off = 0, up_len = 0, down_off = 0, down_len = 0;
	bool owner_done = false;

	while (!__atomic_load_n(&rl->pd->quit, __ATOMIC_RELAXED)) {
		struct pollfd p[2] = {{.fd = rl->fd}, {.fd = rl->sp}};
		bool moved = false;
		ssize_t n;

		if (!down_len && !owner_done) {
			n = gnutls_record_recv(rl->s, down, sizeof(down));
			if (n > 0) {
				down_off = 0;
				down_len = (size_t)n;
				moved = true;
			} else if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
				owner_done = true;
			} else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
				log_debug("stream of %s: %s", rl->name, gnutls_strerror((int)n));
				owner_done = true;
			}
		}
		if (down_len) {
			n = send(rl->sp, down + down_off, down_len - down_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return; /* the consumer is gone */
			if (n > 0) {
				down_off += (size_t)n;
				if (down_off == down_len)
					down_len = 0;
				moved = true;
			}
		}
		if (owner_done && !down_len)
			return; /* all the owner sent was handed on */
		if (!up_len) {
			n = recv(rl->sp, up, sizeof(up), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return; /* the consumer closed */
			if (n > 0) {
				up_off = 0;
				up_len = (size_t)n;
				moved = true;
			}
		}
		if (up_len) {
			/* After GNUTLS_E_AGAIN the same bytes are offered again, as GnuTLS asks. */
			n = gnutls_record_send(rl->s, up + up_off, up_len - up_off);
			if (n > 0) {
				up_off += (size_t)n;
				if (up_off == up_len)
					up_len = 0;
				moved = true;
			} else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
				return; /* the owner is gone */
			}
		}
		if (moved || (!down_len && gnutls_record_check_pending(rl->s)))
			continue;
		p[0].events = (down_len ? 0 : POLLIN) | (up_len ? POLLOUT : 0);
		p[1].events = (up_len ? 0 : POLLIN) | (down_len ? POLLOUT : 0);
		if (poll(p, 2, RELAY_TICK_MS) < 0 && errno != EINTR)
			return;
	}
}

static void *relay_thread(void *arg)
{
	struct relay *rl = arg;
	struct plinthd *pd = rl->pd;

	relay_run(rl);
	gnutls_bye(rl->s, GNUTLS_SHUT_WR); /* non-blocking: best effort */
	session_close(rl->s, rl->cred, rl->fd);
	close(rl->sp); /* the consumer reads the end */
	log_debug("stream of %s ended", rl->name);
	free(rl);
	__atomic_sub_fetch(&pd->relays, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The owner's answer to a stream request: 0 after its 101 (what follows is the
 * stream's), else r gets its refusal (its status and one line) or a 502. */
static int stream_answer(gnutls_session_t s, const char *owner, const char *addr,
			 struct pd_reply *r)
{
	char head[STREAM_HEAD_MAX + 1], *body = NULL;
	const char *cl;
	size_t len = 0, want, got = 0;

	/* Byte by byte: what follows the head is the stream's (or the refusal's body). */
	while (len < STREAM_HEAD_MAX && !(len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4))) {
		ssize_t n = gnutls_record_recv(s, head + len, 1);

		/* The socket is blocking with a timeout: GNUTLS_E_AGAIN is that timeout. */
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0) {
			reply_failed(r, owner, addr, n ? (int)n : GNUTLS_E_PREMATURE_TERMINATION,
				     "reply");
			return -EPROTO;
		}
		len++;
	}
	head[len] = '\0';
	if (len >= 13 && !strncmp(head, "HTTP/1.1 101 ", 13))
		return 0;
	cl = strcasestr(head, "\r\nContent-Length:");
	want = cl ? strtoul(cl + 17, NULL, 10) : 0;
	if (!want || want > 65536 || !(body = malloc(len + want + 1)))
		goto out_bad;
	memcpy(body, head, len);
	while (got < want) {
		ssize_t n = gnutls_record_recv(s, body + len + got, want - got);

		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0)
			goto out_bad;
		got += (size_t)n;
	}
	body[len + want] = '\0';
	if (!parse_reply(body, len + want, r)) {
		free(body);
		return -EPROTO; /* the owner's refusal, in r */
	}
out_bad:
	free(body);
	pd_reply_error(r, 502, "host '%s' (%s) sent a reply that is not the API's", owner, addr);
	return -EPROTO;
}

int pd_stream_remote(struct plinthd *pd, const char *owner, const char *addr, const char *name,
		     bool display, const char *client, struct pd_reply *r)
{
	struct relay *rl = calloc(1, sizeof(*rl));
	char url[STORE_NAME_MAX + 32], extra[96], *head = NULL;
	const char *what;
	pthread_attr_t attr;
	pthread_t t;
	int sv[2] = {-1, -1}, ret, fl;

	if (!rl) {
		pd_reply_error(r, 500, "out of memory");
		return -ENOMEM;
	}
	rl->pd = pd;
	snprintf(rl->name, sizeof(rl->name), "%s", name);
	ret = session_open(pd, owner, addr, CONNECT_TIMEOUT_MS, &rl->s, &rl->cred, &rl->fd, &what);
	if (ret) {
		reply_failed(r, owner, addr, ret, what);
		free(rl);
		return -EHOSTUNREACH;
	}
	snprintf(url, sizeof(url), "/v1/vms/%s/%s", name, display ? "display" : "console");
	snprintf(extra, sizeof(extra), "Upgrade: %s\r\nConnection: Upgrade\r\n",
		 display ? PD_DISPLAY_PROTOCOL : PD_CONSOLE_PROTOCOL);
	head = request_head(pd, addr, "GET", url, NULL, client, extra);
	ret = head ? tls_send_all(rl->s, head, strlen(head)) : -ENOMEM;
	free(head);
	if (ret) {
		reply_failed(r, owner, addr, ret, "send");
		goto out_close;
	}
	ret = stream_answer(rl->s, owner, addr, r);
	if (ret)
		goto out_close;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (fl = fcntl(rl->fd, F_GETFL)) < 0 || fcntl(rl->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		pd_reply_error(r, 500, "VM '%s': no socket to relay its stream: %s", name,
			       strerror(errno));
		goto out_close;
	}
	rl->sp = sv[0];
	__atomic_add_fetch(&pd->relays, 1, __ATOMIC_ACQ_REL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, relay_thread, rl);
	pthread_attr_destroy(&attr);
	if (ret) {
		__atomic_sub_fetch(&pd->relays, 1, __ATOMIC_ACQ_REL);
		pd_reply_error(r, 500, "VM '%s': no thread to relay its stream", name);
		ret = -ret;
		goto out_close;
	}
	log_debug("relaying the %s of %s from host %s", display ? "display" : "console", name,
		  owner);
	return sv[1];

out_close:
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	session_close(rl->s, rl->cred, rl->fd);
	free(rl);
	return ret < 0 ? ret : -EPROTO;
}

bool pd_cluster_key_ok(const struct plinthd *pd, const char *value)
{
	size_t a = value ? strlen(value) : 0, b = strlen(pd->cluster_key), i;
	unsigned char diff = 0;

	if (!b || a != b)
		return false;
	for (i = 0; i < b; i++)
		diff |= (unsigned char)(value[i] ^ pd->cluster_key[i]);
	return diff == 0;
}

int pd_cluster_key_load(struct plinthd *pd, const char *key_file, const char *ca_file)
{
	static const char label[] = "plinth cluster API v1";
	unsigned char key[64], mac[32];
	size_t len, i;
	int ret;

	ret = keyfile_read_hex("--cluster-key", key_file, key, 32, sizeof(key), &len);
	if (ret)
		return ret;
	ret = -EINVAL;
	/* The API credential is derived: a forwarded request never carries the key that
	 * plinth's migrations use (--migrate-psk). */
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, len, label, sizeof(label) - 1, mac) < 0) {
		log_error("--cluster-key: HMAC-SHA256 failed");
		goto out_wipe;
	}
	for (i = 0; i < sizeof(mac); i++)
		snprintf(pd->cluster_key + 2 * i, 3, "%02x", mac[i]);
	if (!realpath(key_file, pd->cluster_key_file) || !realpath(ca_file, pd->cluster_ca)) {
		log_error("--cluster-key/--cluster-ca: %s", strerror(errno));
		pd->cluster_key[0] = '\0';
		goto out_wipe;
	}
	ret = 0;
out_wipe:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(mac, sizeof(mac));
	return ret;
}
