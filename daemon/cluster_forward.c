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
	case PD_HOST_EVACUATE: /* carried out by the host itself */
		return true;
	default:
		return false;
	}
}

int pd_forward_target(struct plinthd *pd, const struct pd_request *req, char *owner, char *addr,
		      size_t addrlen, struct pd_reply *r)
{
	struct store_host *hosts = NULL;
	struct store_vm vm;
	char obj[STORE_NAME_MAX + 40];
	size_t n = 0, i;
	int ret;

	if (!pd_route_forwardable(req))
		return 0;
	if (req->route == PD_HOST_EVACUATE) {
		snprintf(obj, sizeof(obj), "the evacuation of host '%s'", req->name);
		snprintf(owner, STORE_NAME_MAX, "%s", req->name);
	} else {
		ret = pd->ops->vm_get(pd->st, req->name, &vm);
		if (ret == -ENOENT)
			return 0; /* the handler says 404 */
		if (ret) {
			pd_reply_error(r, 500, "inventory error reading VM '%s'", req->name);
			return -EIO;
		}
		snprintf(obj, sizeof(obj), "VM '%s'", req->name);
		snprintf(owner, STORE_NAME_MAX, "%s", vm.host);
		store_vm_clear(&vm);
	}
	if (!strcmp(owner, pd->host))
		return 0;
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
	if (ret == -ENOENT && req->route == PD_HOST_EVACUATE)
		pd_reply_error(r, 404, "host '%s' is not in the cluster", owner);
	else if (ret == -ENOENT)
		pd_reply_error(r, 503, "%s belongs to host '%s', which is not in the host list",
			       obj, owner);
	free(hosts);
	return ret;
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

		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
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
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
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

void pd_forward(struct plinthd *pd, const char *owner, const char *addr, const char *method,
		const char *url, const char *query, const char *body, size_t body_len,
		const char *client, int timeout_ms, struct pd_reply *r)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	char *head = NULL, *raw = NULL, actor[STORE_NAME_MAX];
	size_t rawlen = 0;
	int fd, ret, n;
	const char *what = "connect";

	snprintf(actor, sizeof(actor), "%s", client && client[0] ? client : "api");
	str_printable(actor);
	ret = gnutls_certificate_allocate_credentials(&cred);
	if (ret < 0)
		goto out_reply;
	what = "trust file (--cluster-ca)";
	ret = gnutls_certificate_set_x509_trust_file(cred, pd->cluster_ca, GNUTLS_X509_FMT_PEM);
	if (ret == 0)
		ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
	if (ret < 0)
		goto out_free_cred;
	ret = gnutls_init(&s, GNUTLS_CLIENT);
	if (ret < 0)
		goto out_free_cred;
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	/* Hosts are reached by address: the chain to --cluster-ca is the check. */
	gnutls_session_set_verify_cert(s, NULL, 0);
	what = "connect";
	fd = connect_to(addr, timeout_ms);
	if (fd < 0) {
		log_info("forward to %s (%s): %s", owner, addr, strerror(-fd));
		pd_reply_error(r, 502, "host '%s' (%s) did not answer: %s", owner, addr,
			       strerror(-fd));
		goto out_deinit;
	}
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, CONNECT_TIMEOUT_MS);
	what = "TLS handshake (is its certificate in --cluster-ca?)";
	do
		ret = gnutls_handshake(s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0)
		goto out_close;
	n = asprintf(&head,
		     "%s %s%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		     PD_CLUSTER_KEY_HEADER ": %s\r\n" PD_CLUSTER_ACTOR_HEADER ": %s via %s\r\n\r\n",
		     method, url, query && query[0] ? "?" : "", query ? query : "", addr, body_len,
		     pd->cluster_key, actor, pd->host);
	if (n < 0) {
		head = NULL;
		ret = GNUTLS_E_MEMORY_ERROR;
		goto out_close;
	}
	what = "send";
	ret = tls_send_all(s, head, (size_t)n);
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
	close(fd);
out_deinit:
	gnutls_deinit(s);
out_free_cred:
	gnutls_certificate_free_credentials(cred);
out_reply:
	if (ret < 0 && ret != -EMSGSIZE && ret != -ENOMEM)
		pd_reply_error(r, 502, "forwarding to host '%s' (%s) failed: %s: %s", owner, addr,
			       what, gnutls_strerror(ret));
	else if (ret < 0)
		pd_reply_error(r, 502, "forwarding to host '%s' (%s) failed: %s", owner, addr,
			       strerror(-ret));
	free(head);
	free(raw);
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
