// SPDX-License-Identifier: MIT
/*
 * virtio-vsock (virtio 1.x section 5.10), stream sockets only, with Firecracker's
 * host-side convention:
 *   - host to guest: a host program connects to the Unix socket PATH and writes
 *     "CONNECT <port>\n"; the device sends the guest a REQUEST for that port from a
 *     fresh host port, and once the guest answers RESPONSE writes "OK <hostport>\n"
 *     back; after that the Unix stream carries the connection's bytes.
 *   - guest to host: a guest connect() to host port P (CID 2) is a connect() to the
 *     Unix socket "PATH_P"; refused (RST) if nothing listens there.
 * Queues: 0 device-to-guest packets, 1 guest-to-device packets, 2 events (posted
 * by the guest, never used: connections are not carried across a restore).
 *
 * Connection life:
 *
 *   accept --line--> HOST_CONNECTING --"CONNECT p"--> HOST_REQUESTED --RESPONSE--> ESTABLISHED
 *   guest REQUEST --connect(PATH_P) ok--> ESTABLISHED (RESPONSE queued), else RST
 *   ESTABLISHED --RST either way / SHUTDOWN both / host EOF + guest done--> closed
 *
 * Every guest packet is checked: header size, source CID (the guest's), destination
 * CID (the host), type, payload length within the chain, and the guest's respect
 * of our credit (at most VS_BUF_ALLOC unforwarded bytes): a violation resets the
 * connection, never the device. Packets for unknown connections get an RST.
 * Credit: every packet we send carries our buf_alloc and fwd_cnt; we send host
 * bytes only within the guest's advertised credit. Host fds are non-blocking and
 * their epoll interest follows what we can do right now (read only with credit
 * and receive buffers, write only with bytes waiting), so nothing spins.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_vsock.h>

#include "devices.h"
#include "internal.h"
#include "log.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"
#include "devconf.h"

#define VS_QUEUE_SIZE  128
#define VS_RX          0
#define VS_TX          1
#define VS_EVT         2
#define VS_HOST_CID    2
#define VS_BUF_ALLOC   (64 * 1024)  /* bytes from the guest we hold per connection */
#define VS_MAX_PAYLOAD (64 * 1024)  /* per packet to the guest */
#define VS_MAX_CONNS   128
#define VS_MAX_RSTS    32           /* RSTs for unknown connections waiting for buffers */
#define VS_LINE_MAX    32           /* "CONNECT 4294967295\n" fits */
#define VS_FIRST_HOST_PORT (1u << 30)
#define TAG_LISTEN     VIRTIO_TAG_DEV
#define TAG_CONN       (VIRTIO_TAG_DEV + 1) /* + connection index */

struct vs_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct vs_hdr) == 44, "vsock header layout");

enum conn_state { C_FREE = 0, C_HOST_CONNECTING, C_HOST_REQUESTED, C_ESTABLISHED };

/* Control packets a connection owes the guest (sent as receive buffers allow). */
#define P_RST        (1u << 0)
#define P_RESPONSE   (1u << 1)
#define P_REQUEST    (1u << 2)
#define P_SHUTDOWN   (1u << 3)
#define P_CREDIT     (1u << 4)

struct vs_conn {
	enum conn_state state;
	int fd;                  /* host Unix stream, non-blocking; -1 once closed */
	uint32_t local_port;     /* host side port */
	uint32_t peer_port;      /* guest side port */
	uint32_t pending;        /* P_* */
	bool watched;            /* fd is in the epoll set */
	uint32_t events;         /* its current interest */
	bool readable;           /* the fd reported EPOLLIN and we haven't seen EAGAIN */
	bool hup;                /* the fd reported hang-up */
	bool host_eof;           /* read returned 0: the host sends no more */
	bool peer_no_send;       /* guest sent SHUTDOWN SEND */
	char line[VS_LINE_MAX];  /* "CONNECT <port>\n" as it arrives */
	size_t line_len;
	/* Credit, guest side. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;         /* payload bytes sent to the guest */
	/* Credit, our side. */
	uint32_t rx_cnt;         /* payload bytes received from the guest */
	uint32_t fwd_cnt;        /* of those, written to the host */
	uint32_t fwd_told;       /* fwd_cnt the guest last heard */
	uint8_t *buf;            /* bytes from the guest not yet written to the host */
	size_t buf_len;
};

struct vs_rst {
	uint32_t local_port, peer_port;
};

struct vsock {
	uint64_t cid;
	char *path;                 /* owned */
	int listen_fd;              /* owned */
	bool listen_watched;
	bool rx_starved;            /* no receive buffers: stop reading hosts until a kick */
	uint32_t next_port;
	struct vs_conn conn[VS_MAX_CONNS];
	struct vs_rst rst[VS_MAX_RSTS];
	unsigned int nr_rst;
	struct virtq_elem elem;
};

static uint32_t peer_credit(const struct vs_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* The epoll interest a connection should have now. */
static uint32_t wanted_events(const struct vsock *vs, const struct vs_conn *c)
{
	uint32_t ev = 0;

	switch (c->state) {
	case C_HOST_CONNECTING:
		ev = EPOLLIN;
		break;
	case C_ESTABLISHED:
		if (!c->host_eof && !vs->rx_starved && peer_credit(c) > 0 &&
		    !(c->pending & P_RST))
			ev |= EPOLLIN;
		if (c->buf_len)
			ev |= EPOLLOUT;
		break;
	default:
		break;
	}
	return ev;
}

static void conn_sync(struct virtio_dev *vdev, struct vs_conn *c)
{
	struct vsock *vs = vdev->priv;
	uint32_t ev = wanted_events(vs, c), tag = TAG_CONN + (uint32_t)(c - vs->conn);

	if (c->fd < 0)
		return;
	/* Hung up and nothing to read: out of the set, or EPOLLHUP would repeat for ever. */
	if (c->hup && !(ev & EPOLLIN))
		ev = 0;
	if (c->watched && (ev == 0 && c->hup)) {
		if (!virtio_dev_unwatch(vdev, c->fd))
			c->watched = false;
		return;
	}
	if (!c->watched) {
		if (ev == 0 && c->hup)
			return;
		if (!virtio_dev_watch(vdev, c->fd, ev, tag)) {
			c->watched = true;
			c->events = ev;
		}
		return;
	}
	if (ev != c->events && !virtio_dev_rewatch(vdev, c->fd, ev, tag))
		c->events = ev;
}

static void conn_close_fd(struct virtio_dev *vdev, struct vs_conn *c)
{
	if (c->fd >= 0) {
		if (c->watched)
			virtio_dev_unwatch(vdev, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->watched = false;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
}

static void conn_free(struct virtio_dev *vdev, struct vs_conn *c)
{
	conn_close_fd(vdev, c);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Drop the host side now and owe the guest an RST (or nothing if it never knew). */
static void conn_reset(struct virtio_dev *vdev, struct vs_conn *c)
{
	if (c->state == C_HOST_CONNECTING) {
		conn_free(vdev, c);
		return;
	}
	conn_close_fd(vdev, c);
	c->pending = P_RST;
}

static struct vs_conn *conn_find(struct vsock *vs, uint32_t local, uint32_t peer)
{
	unsigned int i;

	for (i = 0; i < VS_MAX_CONNS; i++) {
		struct vs_conn *c = &vs->conn[i];

		if (c->state >= C_HOST_REQUESTED && c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static struct vs_conn *conn_alloc(struct vsock *vs, int fd)
{
	unsigned int i;

	for (i = 0; i < VS_MAX_CONNS; i++) {
		if (vs->conn[i].state == C_FREE && !vs->conn[i].pending) {
			struct vs_conn *c = &vs->conn[i];

			memset(c, 0, sizeof(*c));
			c->fd = fd;
			return c;
		}
	}
	return NULL;
}

static void queue_rst(struct vsock *vs, uint32_t local, uint32_t peer)
{
	if (vs->nr_rst < VS_MAX_RSTS)
		vs->rst[vs->nr_rst++] = (struct vs_rst){ local, peer };
}

/* ---- device to guest ----------------------------------------------------------- */

static void fill_hdr(const struct vsock *vs, struct vs_hdr *h, uint32_t local, uint32_t peer,
		     uint16_t op, uint32_t flags, uint32_t len, uint32_t fwd_cnt)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(VS_HOST_CID);
	h->dst_cid = htole64(vs->cid);
	h->src_port = htole32(local);
	h->dst_port = htole32(peer);
	h->len = htole32(len);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->flags = htole32(flags);
	h->buf_alloc = htole32(VS_BUF_ALLOC);
	h->fwd_cnt = htole32(fwd_cnt);
}

/*
 * Fill one receive chain (already popped, >= 44 writable bytes) with what c owes
 * the guest. Returns the bytes written into the chain, 0 if there was nothing.
 */
static uint32_t conn_emit(struct virtio_dev *vdev, struct vs_conn *c, struct virtq_elem *e)
{
	struct vsock *vs = vdev->priv;
	const struct iovec *in = e->iov + e->out_num;
	struct iovec data[IOV_MAX];
	struct vs_hdr h;
	uint16_t op = 0;
	uint32_t flags = 0, len = 0;

	if (c->pending & P_RST) {
		op = VIRTIO_VSOCK_OP_RST;
	} else if (c->pending & P_RESPONSE) {
		op = VIRTIO_VSOCK_OP_RESPONSE;
	} else if (c->pending & P_REQUEST) {
		op = VIRTIO_VSOCK_OP_REQUEST;
	} else if (c->pending & P_SHUTDOWN) {
		op = VIRTIO_VSOCK_OP_SHUTDOWN;
		flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
	} else if (c->pending & P_CREDIT) {
		op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
	} else if (c->state == C_ESTABLISHED && c->readable && c->fd >= 0) {
		size_t room = MIN(MIN(e->in_len - sizeof(h), (uint64_t)VS_MAX_PAYLOAD),
				  peer_credit(c));
		ssize_t n = 0;
		int k;

		if (!room)
			return 0;
		k = iov_slice(in, e->in_num, sizeof(h), room, data, IOV_MAX);
		if (k == -E2BIG)
			k = IOV_MAX;
		if (k > 0) {
			do {
				n = readv(c->fd, data, k);
			} while (n < 0 && errno == EINTR);
		}
		if (k <= 0 || (n < 0 && errno == EAGAIN)) {
			c->readable = false;
			return 0;
		}
		if (n < 0) {
			conn_reset(vdev, c);
			op = VIRTIO_VSOCK_OP_RST;
		} else if (n == 0) {
			/* The host closed its side: tell the guest, which then says RST. */
			c->host_eof = true;
			c->readable = false;
			op = VIRTIO_VSOCK_OP_SHUTDOWN;
			flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
		} else {
			op = VIRTIO_VSOCK_OP_RW;
			len = (uint32_t)n;
			c->tx_cnt += len;
		}
	} else {
		return 0;
	}
	fill_hdr(vs, &h, c->local_port, c->peer_port, op, flags, len, c->fwd_cnt);
	buf_to_iov(in, e->in_num, 0, &h, sizeof(h));
	c->fwd_told = c->fwd_cnt;
	switch (op) {
	case VIRTIO_VSOCK_OP_RST:
		conn_free(vdev, c); /* the guest has been told: forget it */
		break;
	case VIRTIO_VSOCK_OP_RESPONSE:
		c->pending &= ~P_RESPONSE;
		break;
	case VIRTIO_VSOCK_OP_REQUEST:
		c->pending &= ~P_REQUEST;
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		c->pending &= ~P_SHUTDOWN;
		break;
	default:
		c->pending &= ~P_CREDIT; /* any packet carries our credit */
		break;
	}
	return (uint32_t)sizeof(h) + len;
}

/* The next connection with something for the guest, round-robin from *pos. */
static struct vs_conn *next_emitter(struct vsock *vs, unsigned int *pos)
{
	unsigned int k;

	for (k = 0; k < VS_MAX_CONNS; k++) {
		struct vs_conn *c = &vs->conn[(*pos + k) % VS_MAX_CONNS];

		if (c->pending || (c->state == C_ESTABLISHED && c->readable && peer_credit(c))) {
			*pos = (*pos + k + 1) % VS_MAX_CONNS;
			return c;
		}
	}
	return NULL;
}

/* Send the guest everything owed, as far as its receive buffers go. */
static void vs_rx(struct virtio_dev *vdev)
{
	struct vsock *vs = vdev->priv;
	struct virtq *vq = &vdev->vq[VS_RX];
	unsigned int pos = 0, budget = 1024, i;
	bool pushed = false;

	while (budget--) {
		struct virtq_elem *e = &vs->elem;
		struct vs_conn *c = NULL;
		const char *why;
		uint32_t n = 0;
		int r;

		if (!vs->nr_rst) {
			c = next_emitter(vs, &pos);
			if (!c)
				break;
		}
		r = virtq_pop(vq, e, &why);
		if (r < 0) {
			virtio_dev_broken(vdev, VS_RX, why);
			break;
		}
		if (r == 0) {
			vs->rx_starved = true;
			if (virtq_enable_notify(vq)) {
				vs->rx_starved = false;
				continue;
			}
			break;
		}
		if (e->in_len < sizeof(struct vs_hdr)) {
			virtio_dev_broken(vdev, VS_RX, "receive buffer smaller than a packet header");
			break;
		}
		if (vs->nr_rst) {
			struct vs_hdr h;
			struct vs_rst *rst = &vs->rst[--vs->nr_rst];

			fill_hdr(vs, &h, rst->local_port, rst->peer_port, VIRTIO_VSOCK_OP_RST, 0, 0, 0);
			buf_to_iov(e->iov + e->out_num, e->in_num, 0, &h, sizeof(h));
			n = sizeof(h);
		} else {
			n = conn_emit(vdev, c, e);
		}
		if (!n) {
			virtq_unpop(vq);
			if (c)
				conn_sync(vdev, c);
			continue;
		}
		virtq_push(vq, e, n);
		pushed = true;
		if (c)
			conn_sync(vdev, c);
	}
	if (pushed)
		virtio_dev_notify(vdev, VS_RX);
	if (vs->rx_starved)
		for (i = 0; i < VS_MAX_CONNS; i++)
			conn_sync(vdev, &vs->conn[i]);
}

/* ---- guest to device ------------------------------------------------------------ */

/* Write what the guest sent towards the host; keep what doesn't fit in c->buf. */
static int conn_forward(struct vs_conn *c, const struct iovec *iov, unsigned int n, size_t off,
			size_t len)
{
	struct iovec part[IOV_MAX];
	ssize_t w = 0;
	int k;

	if (!c->buf_len && c->fd >= 0) {
		k = iov_slice(iov, n, off, len, part, IOV_MAX);
		if (k == -E2BIG)
			k = IOV_MAX;
		if (k > 0) {
			do {
				w = writev(c->fd, part, k);
			} while (w < 0 && errno == EINTR);
		}
		if (w < 0 && errno != EAGAIN)
			return -EPIPE;
		if (w < 0)
			w = 0;
		c->fwd_cnt += (uint32_t)w;
	}
	if ((size_t)w < len) {
		if (!c->buf) {
			c->buf = malloc(VS_BUF_ALLOC);
			if (!c->buf)
				return -ENOMEM;
		}
		/* Credit bounds it: rx_cnt - fwd_cnt <= VS_BUF_ALLOC was checked. */
		iov_to_buf(iov, n, off + (size_t)w, c->buf + c->buf_len, len - (size_t)w);
		c->buf_len += len - (size_t)w;
	}
	return 0;
}

/* The host fd is writable: flush what we hold. */
static int conn_flush(struct vs_conn *c)
{
	ssize_t w;

	if (!c->buf_len || c->fd < 0)
		return 0;
	do {
		w = write(c->fd, c->buf, c->buf_len);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN ? 0 : -EPIPE;
	memmove(c->buf, c->buf + w, c->buf_len - (size_t)w);
	c->buf_len -= (size_t)w;
	c->fwd_cnt += (uint32_t)w;
	return 0;
}

/* After forwarding: tell the guest about freed credit before it runs dry. */
static void maybe_credit_update(struct vs_conn *c)
{
	if (c->fwd_cnt - c->fwd_told >= VS_BUF_ALLOC / 4)
		c->pending |= P_CREDIT;
	if (!c->buf_len && c->peer_no_send && c->fd >= 0)
		shutdown(c->fd, SHUT_WR);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* A guest connect() to the host: reach PATH_<port>. */
static void guest_request(struct virtio_dev *vdev, const struct vs_hdr *h)
{
	struct vsock *vs = vdev->priv;
	uint32_t local = le32toh(h->dst_port), peer = le32toh(h->src_port);
	char path[PATH_MAX];
	struct vs_conn *c;
	int fd;

	if (conn_find(vs, local, peer)) {
		queue_rst(vs, local, peer);
		return;
	}
	snprintf(path, sizeof(path), "%s_%u", vs->path, local);
	fd = unix_connect(path);
	if (fd < 0) {
		queue_rst(vs, local, peer); /* connection refused */
		return;
	}
	c = conn_alloc(vs, fd);
	if (!c) {
		close(fd);
		queue_rst(vs, local, peer);
		return;
	}
	c->state = C_ESTABLISHED;
	c->local_port = local;
	c->peer_port = peer;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
	c->pending = P_RESPONSE;
	conn_sync(vdev, c);
}

/* One packet from the guest (a chain of queue 1). Never breaks the device. */
static int vs_tx_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct vsock *vs = vdev->priv;
	struct vs_conn *c;
	struct vs_hdr h;
	uint32_t len, local, peer;
	uint16_t op;

	*written = 0;
	if (e->out_len < sizeof(h))
		return 0; /* not even a header: dropped */
	iov_to_buf(e->iov, e->out_num, 0, &h, sizeof(h));
	len = le32toh(h.len);
	op = le16toh(h.op);
	local = le32toh(h.dst_port);
	peer = le32toh(h.src_port);
	/* Spoofed source, or not for the host: dropped. */
	if (le64toh(h.src_cid) != vs->cid || le64toh(h.dst_cid) != VS_HOST_CID)
		return 0;
	if (le16toh(h.type) != VIRTIO_VSOCK_TYPE_STREAM || len > e->out_len - sizeof(h) ||
	    (op != VIRTIO_VSOCK_OP_RW && len)) {
		if (op != VIRTIO_VSOCK_OP_RST)
			queue_rst(vs, local, peer);
		c = conn_find(vs, local, peer);
		if (c)
			conn_reset(vdev, c);
		return 0;
	}
	if (op == VIRTIO_VSOCK_OP_REQUEST) {
		guest_request(vdev, &h);
		return 0;
	}
	c = conn_find(vs, local, peer);
	if (!c || (c->pending & P_RST)) {
		if (op != VIRTIO_VSOCK_OP_RST && !c)
			queue_rst(vs, local, peer);
		return 0;
	}
	c->peer_buf_alloc = le32toh(h.buf_alloc);
	c->peer_fwd_cnt = le32toh(h.fwd_cnt);

	switch (op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != C_HOST_REQUESTED) {
			conn_reset(vdev, c);
			break;
		}
		{
			char ok[32];
			int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

			c->state = C_ESTABLISHED;
			if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
				conn_reset(vdev, c);
		}
		break;
	case VIRTIO_VSOCK_OP_RST:
		conn_free(vdev, c);
		return 0;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if ((le32toh(h.flags) & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) ==
		    (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) {
			conn_reset(vdev, c); /* both ways done: close and confirm with RST */
			break;
		}
		if (le32toh(h.flags) & VIRTIO_VSOCK_SHUTDOWN_SEND)
			c->peer_no_send = true;
		maybe_credit_update(c);
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (c->state != C_ESTABLISHED || c->peer_no_send ||
		    c->rx_cnt - c->fwd_cnt + (uint64_t)len > VS_BUF_ALLOC) {
			conn_reset(vdev, c); /* data out of turn, or beyond our credit */
			break;
		}
		c->rx_cnt += len;
		if (conn_forward(c, e->iov, e->out_num, sizeof(h), len)) {
			conn_reset(vdev, c);
			break;
		}
		maybe_credit_update(c);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break; /* the fields above were the point */
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT;
		break;
	default:
		conn_reset(vdev, c);
		break;
	}
	if (c->state != C_FREE)
		conn_sync(vdev, c);
	return 0;
}

/* ---- host side ------------------------------------------------------------------ */

static void host_accept(struct virtio_dev *vdev)
{
	struct vsock *vs = vdev->priv;
	unsigned int n;

	for (n = 0; n < 16; n++) {
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vs_conn *c;

		if (fd < 0)
			return;
		c = conn_alloc(vs, fd);
		if (!c) {
			log_warn("virtio-vsock: too many connections, refusing one");
			close(fd);
			continue;
		}
		c->state = C_HOST_CONNECTING;
		conn_sync(vdev, c);
	}
}

static uint32_t new_host_port(struct vsock *vs)
{
	unsigned int i;

	for (;;) {
		uint32_t p = vs->next_port++;

		if (vs->next_port < VS_FIRST_HOST_PORT)
			vs->next_port = VS_FIRST_HOST_PORT;
		for (i = 0; i < VS_MAX_CONNS; i++)
			if (vs->conn[i].state != C_FREE && vs->conn[i].local_port == p)
				break;
		if (i == VS_MAX_CONNS)
			return p;
	}
}

/* Read "CONNECT <port>\n" a byte at a time, so no stream byte after it is eaten. */
static void host_read_line(struct virtio_dev *vdev, struct vs_conn *c)
{
	struct vsock *vs = vdev->priv;
	uint64_t port;

	while (c->line_len < sizeof(c->line)) {
		char ch;
		ssize_t n = read(c->fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		if (ch != '\n') {
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = '\0';
		if (strncmp(c->line, "CONNECT ", 8) || parse_uint(c->line + 8, 0, UINT32_MAX, &port))
			break;
		c->peer_port = (uint32_t)port;
		c->local_port = new_host_port(vs);
		c->state = C_HOST_REQUESTED;
		c->peer_buf_alloc = 0; /* no credit until the guest answers */
		c->pending = P_REQUEST;
		conn_sync(vdev, c);
		return;
	}
	conn_free(vdev, c); /* not the protocol, too long, or gone */
}

static void conn_event(struct virtio_dev *vdev, struct vs_conn *c, uint32_t events)
{
	if (c->state == C_FREE || c->fd < 0)
		return;
	if (c->state == C_HOST_CONNECTING) {
		host_read_line(vdev, c);
		return;
	}
	if (events & EPOLLERR) {
		conn_reset(vdev, c);
		return;
	}
	if (events & EPOLLOUT) {
		if (conn_flush(c)) {
			conn_reset(vdev, c);
			return;
		}
		maybe_credit_update(c);
	}
	if (events & EPOLLIN)
		c->readable = true;
	if (events & EPOLLHUP) {
		c->hup = true;
		c->readable = true; /* read to EOF, then SHUTDOWN */
	}
	conn_sync(vdev, c);
}

static void vs_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct vsock *vs = vdev->priv;
	unsigned int i;

	switch (tag) {
	case VS_RX:
		vs->rx_starved = false;
		for (i = 0; i < VS_MAX_CONNS; i++)
			conn_sync(vdev, &vs->conn[i]);
		break;
	case VS_TX:
		virtio_dev_drain(vdev, VS_TX, &vs->elem, vs_tx_chain);
		break;
	case VS_EVT:
		return; /* event buffers are kept for a transport reset we never send */
	case TAG_LISTEN:
		host_accept(vdev);
		break;
	default:
		if (tag >= TAG_CONN && tag < TAG_CONN + VS_MAX_CONNS)
			conn_event(vdev, &vs->conn[tag - TAG_CONN], events);
		break;
	}
	vs_rx(vdev);
}

static int vs_start(struct virtio_dev *vdev)
{
	struct vsock *vs = vdev->priv;
	int r = virtio_dev_watch(vdev, vs->listen_fd, EPOLLIN, TAG_LISTEN);

	if (r && r != -ENOTCONN) {
		log_error("virtio-vsock: cannot watch %s: %s", vs->path, strerror(-r));
		return r;
	}
	vs->listen_watched = !r;
	vs->rx_starved = false;
	return 0;
}

/* Reset: every connection is dropped (the guest's sockets are gone with its driver). */
static void vs_stop(struct virtio_dev *vdev)
{
	struct vsock *vs = vdev->priv;
	unsigned int i;

	for (i = 0; i < VS_MAX_CONNS; i++) {
		vs->conn[i].watched = false; /* the epoll set is gone already */
		conn_free(vdev, &vs->conn[i]);
	}
	vs->nr_rst = 0;
	vs->listen_watched = false;
}

static void vs_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct vsock *vs = vdev->priv;
	struct virtio_vsock_config c = { .guest_cid = htole64(vs->cid) };

	memcpy(data, (uint8_t *)&c + off, len);
}

static void vs_destroy(struct virtio_dev *vdev)
{
	struct vsock *vs = vdev->priv;
	unsigned int i;

	if (!vs)
		return;
	for (i = 0; i < VS_MAX_CONNS; i++)
		conn_close_fd(vdev, &vs->conn[i]);
	close(vs->listen_fd);
	unlink(vs->path);
	free(vs->path);
	free(vs);
	vdev->priv = NULL;
}

static int vs_save(struct virtio_dev *vdev, void *state)
{
	struct vsock *vs = vdev->priv;
	struct virtio_vsock_state *s = state;

	memset(s, 0, sizeof(*s));
	s->cid = vs->cid;
	return 0;
}

static int vs_load(struct virtio_dev *vdev, const void *state)
{
	const struct virtio_vsock_state *s = state;
	struct vsock *vs = vdev->priv;

	/* Connections do not survive a restore; the CID must. */
	return s->cid == vs->cid ? 0 : -EINVAL;
}

const struct virtio_dev_ops virtio_vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.pci_class = 0xff00,
	.cfg_size = sizeof(struct virtio_vsock_config),
	.cfg_read = vs_cfg_read,
	.start = vs_start,
	.stop = vs_stop,
	.handle = vs_handle,
	.destroy = vs_destroy,
	.state_size = sizeof(struct virtio_vsock_state),
	.save = vs_save,
	.load = vs_load,
};

/* Listen on path; a stale socket left by a previous run is replaced, nothing else. */
static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) + sizeof("_4294967295") > sizeof(sa.sun_path)) {
		log_error("--vsock: socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("--vsock: %s exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		log_error("--vsock: socket: %s", strerror(errno));
		return r;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
		r = -errno;
		log_error("--vsock: cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

int virtio_vsock_init(struct virtio_dev *vdev, const struct guest_mem *mem, uint64_t cid,
		      const char *path)
{
	struct vsock *vs;
	unsigned int i;
	int r;

	vs = calloc(1, sizeof(*vs));
	if (vs)
		vs->path = strdup(path);
	if (!vs || !vs->path) {
		log_error("--vsock: out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	vs->cid = cid;
	vs->next_port = VS_FIRST_HOST_PORT;
	for (i = 0; i < VS_MAX_CONNS; i++)
		vs->conn[i].fd = -1;
	vs->listen_fd = listen_unix(path);
	if (vs->listen_fd < 0) {
		r = vs->listen_fd;
		goto out_free;
	}
	r = virtio_dev_init(vdev, &virtio_vsock_ops, vs, mem, 3, VS_QUEUE_SIZE, 0);
	if (r)
		goto out_close;
	return 0;

out_close:
	close(vs->listen_fd);
	unlink(path);
out_free:
	if (vs)
		free(vs->path);
	free(vs);
	return r;
}

int virtio_vsock_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
			struct virtio_pci **out)
{
	static const char *const keys[] = { "cid", "socket" };
	char *v[ARRAY_SIZE(keys)];
	struct virtio_dev *vdev;
	uint64_t cid;
	int r;

	r = spec_parse("--vsock", spec, keys, ARRAY_SIZE(keys), NULL, v);
	if (r)
		return r;
	r = -EINVAL;
	if (!v[0] || !v[1] || !*v[1]) {
		log_error("--vsock: cid=N and socket=PATH are required");
		goto out_spec;
	}
	/* 0-2 are reserved (hypervisor, local, host); -1 is VMADDR_CID_ANY. */
	if (spec_uint("--vsock", "cid", v[0], 3, UINT32_MAX - 1, &cid))
		goto out_spec;
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("--vsock: out of memory");
		r = -ENOMEM;
		goto out_spec;
	}
	r = virtio_vsock_init(vdev, mem, cid, v[1]);
	if (r) {
		free(vdev);
		goto out_spec;
	}
	spec_free(v, ARRAY_SIZE(keys));
	return virtio_pci_create_on(bus, vdev, out);

out_spec:
	spec_free(v, ARRAY_SIZE(keys));
	return r;
}

/* ---- the --vsock class (vmm/devconf.h): its typed config and options ---- */

struct vsock_config {
	uint64_t cid;  /* the guest's CID, 3..2^32-2 */
	char *socket;  /* the host side's Unix socket */
};

static const char *const vsock_keys[] = { "cid", "socket" };

static void vsock_free(void *conf)
{
	struct vsock_config *c = conf;

	free(c->socket);
	free(c);
}

static int vsock_parse(const char *opt, char *const *v, void **conf)
{
	struct vsock_config *c;
	uint64_t cid;

	if (!v[0] || !v[1] || !*v[1]) {
		log_error("%s: cid=N and socket=PATH are required", opt);
		return -EINVAL;
	}
	/* 0-2 are reserved (hypervisor, local, host); -1 is VMADDR_CID_ANY. */
	if (spec_uint(opt, "cid", v[0], 3, UINT32_MAX - 1, &cid))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c || spec_dup(opt, v[1], &c->socket)) {
		free(c);
		return -ENOMEM;
	}
	c->cid = cid;
	*conf = c;
	return 0;
}

static json_t *vsock_to_json(const void *conf)
{
	const struct vsock_config *c = conf;
	json_t *o = json_object();

	if (o && json_object_set_new(o, "cid", json_integer((json_int_t)c->cid))) {
		json_decref(o);
		return NULL;
	}
	return spec_json_str(o, "socket", c->socket);
}

const struct dev_class dev_class_vsock = {
	.name = "vsock",
	.synopsis = "cid=N,socket=PATH",
	.help = DEV_HELP_INDENT "virtio vsock; the host side is the Unix socket PATH\n",
	.keys = vsock_keys,
	.nr_keys = ARRAY_SIZE(vsock_keys),
	.parse = vsock_parse,
	.to_json = vsock_to_json,
	.free = vsock_free,
	.create = virtio_vsock_create,
	.io_connect = true,
};
