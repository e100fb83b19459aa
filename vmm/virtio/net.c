// SPDX-License-Identifier: MIT
/*
 * virtio-net (virtio 1.x section 5.1) on a Linux tap device: queue 0 receives,
 * queue 1 transmits; no control queue, one queue pair.
 *
 * The tap is opened with IFF_VNET_HDR and a 12-byte vnet header, which is exactly
 * struct virtio_net_hdr_v1: frames go between tap and guest with their header
 * unchanged (except num_buffers, which the device sets). The kernel validates the
 * GSO and checksum fields of what the guest sends; the device additionally drops
 * frames that use an offload the guest did not negotiate, or are too short or long.
 *
 * Receive: a frame is read from the tap into a host buffer, then copied into one
 * receive chain, or with MRG_RXBUF spread over several (published together, so the
 * driver never sees half a frame). When the guest has no buffers the frame waits
 * and the tap leaves the epoll set until the guest kicks queue 0. A frame that can
 * never fit (no MRG_RXBUF and a chain too small) is dropped and counted.
 * Offloads towards the guest (GUEST_CSUM/TSO) are offered only when TUNSETOFFLOAD
 * works, and applied from the negotiated features at DRIVER_OK.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "devices.h"
#include "internal.h"
#include "log.h"
#include "spec.h"
#include "util.h"
#include "virtio-pci.h"
#include "devconf.h"

#define NET_QUEUE_SIZE 256
#define NET_RX 0
#define NET_TX 1
#define NET_HDR_LEN   sizeof(struct virtio_net_hdr_v1)
#define NET_MAX_FRAME (65535 + 14 + 4) /* a 64 KiB GSO frame, Ethernet and VLAN header */
#define NET_MAX_MERGE 64               /* receive chains for one frame */
#define TAG_TAP VIRTIO_TAG_DEV

struct net {
	int tap_fd;                  /* owned, non-blocking */
	uint8_t mac[6];
	bool offload_ok;             /* TUNSETOFFLOAD works: guest offloads can be offered */
	uint64_t offloads;           /* current TUNSETOFFLOAD argument */
	bool tap_watched;            /* tap is in the worker's epoll set */
	uint32_t tap_events;         /* with these events */
	bool rx_on;                  /* we want frames from the tap (guest has buffers) */
	bool tx_blocked;             /* the tap said EAGAIN: transmit waits for EPOLLOUT */
	uint8_t *pkt;                /* a frame read from the tap, with its vnet header */
	size_t pkt_len;
	bool pkt_pending;            /* pkt holds a frame not yet given to the guest */
	uint64_t rx_dropped, tx_dropped;
	bool tx_error_logged;
	struct virtq_elem elem;
};

/* Guest offload features that need the tap to hand us such frames. */
#define NET_GUEST_OFFLOADS                                                                  \
	((1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |            \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN))
/* Offloads for frames from the guest: the tap takes them as they are. */
#define NET_HOST_OFFLOADS                                                                   \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |                   \
	 (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN))

/* Bring the tap's epoll interest in line with rx_on and tx_blocked. */
static void sync_tap(struct virtio_dev *vdev)
{
	struct net *n = vdev->priv;
	uint32_t ev = (n->rx_on ? EPOLLIN : 0) | (n->tx_blocked ? EPOLLOUT : 0);
	int r;

	if (n->tap_watched && ev == n->tap_events)
		return;
	if (!n->tap_watched)
		r = virtio_dev_watch(vdev, n->tap_fd, ev, TAG_TAP);
	else
		r = virtio_dev_rewatch(vdev, n->tap_fd, ev, TAG_TAP);
	if (r)
		return;
	n->tap_watched = true;
	n->tap_events = ev;
}

static void set_tap_watch(struct virtio_dev *vdev, bool on)
{
	struct net *n = vdev->priv;

	n->rx_on = on;
	sync_tap(vdev);
}

/*
 * Give the pending frame to the guest. 1 when done (delivered or dropped), 0 when
 * the guest has too few buffers right now (*seen: the avail index that was not
 * enough), -EIO when the queue broke.
 */
static int rx_deliver(struct virtio_dev *vdev, uint16_t *seen)
{
	struct net *n = vdev->priv;
	struct virtq *vq = &vdev->vq[NET_RX];
	bool mrg = virtio_has_feature(vdev, VIRTIO_NET_F_MRG_RXBUF);
	struct iovec nb[2]; /* where num_buffers lives in the first chain */
	uint16_t count = 0, nbuf;
	size_t copied = 0;
	const char *why;
	int r, nnb = 0;

	while (copied < n->pkt_len) {
		struct virtq_elem *e = &n->elem;
		size_t len;

		r = virtq_pop(vq, e, &why);
		if (r < 0) {
			virtio_dev_broken(vdev, NET_RX, why);
			return -EIO;
		}
		if (r == 0 || count == NET_MAX_MERGE) {
			/* Not enough buffers yet: give back what we took, keep the frame. */
			*seen = vq->st.last_avail;
			vq->st.last_avail -= (uint16_t)(count + (r > 0));
			if (r > 0) { /* a frame needing more than NET_MAX_MERGE chains */
				n->rx_dropped++;
				return 1;
			}
			return 0;
		}
		if (e->in_len == 0 || (count == 0 && e->in_len < NET_HDR_LEN)) {
			virtio_dev_broken(vdev, NET_RX, "receive buffer smaller than the header");
			return -EIO;
		}
		if (!mrg && e->in_len < n->pkt_len) {
			virtq_unpop(vq); /* too small for this frame, maybe not for the next */
			n->rx_dropped++;
			return 1;
		}
		if (count == 0)
			nnb = iov_slice(e->iov + e->out_num, e->in_num,
					offsetof(struct virtio_net_hdr_v1, num_buffers), 2, nb, 2);
		len = buf_to_iov(e->iov + e->out_num, e->in_num, 0, n->pkt + copied,
				 MIN(e->in_len, n->pkt_len - copied));
		virtq_mark_written(vq, e);
		virtq_fill(vq, e->head, (uint32_t)len, count);
		count++;
		copied += len;
	}
	nbuf = htole16(count);
	if (nnb > 0) {
		uint8_t b[2];

		memcpy(b, &nbuf, 2);
		memcpy(nb[0].iov_base, b, nb[0].iov_len);
		if (nnb > 1)
			memcpy(nb[1].iov_base, b + nb[0].iov_len, nb[1].iov_len);
	}
	virtq_flush(vq, count);
	return 1;
}

/* Move frames from the tap to the guest until either side runs dry. */
static void net_rx(struct virtio_dev *vdev)
{
	struct net *n = vdev->priv;
	unsigned int delivered = 0, rounds = 0;

	/* Bounded: a flooding tap stays readable, epoll brings us back after a stop check. */
	while (rounds++ < 1024) {
		uint16_t seen = 0;
		int r;

		if (!n->pkt_pending) {
			ssize_t len = read(n->tap_fd, n->pkt, NET_HDR_LEN + NET_MAX_FRAME);

			if (len < 0) {
				if (errno != EAGAIN && errno != EINTR)
					log_debug("virtio-net: tap read: %s", strerror(errno));
				break;
			}
			if ((size_t)len < NET_HDR_LEN) {
				n->rx_dropped++;
				continue;
			}
			n->pkt_len = (size_t)len;
			n->pkt_pending = true;
		}
		r = rx_deliver(vdev, &seen);
		if (r < 0)
			break;
		if (r == 0) {
			/* Wait for the guest's kick, not for more frames we couldn't take. */
			set_tap_watch(vdev, false);
			if (virtq_enable_notify_after(&vdev->vq[NET_RX], seen))
				continue;
			break;
		}
		n->pkt_pending = false;
		if (++delivered % 32 == 0)
			virtio_dev_notify(vdev, NET_RX);
	}
	if (delivered % 32)
		virtio_dev_notify(vdev, NET_RX);
}

/* The guest may only use offloads it negotiated. */
static bool tx_header_ok(struct virtio_dev *vdev, const struct virtio_net_hdr_v1 *h)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(vdev, VIRTIO_NET_F_CSUM))
		return false;
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) &&
	    !virtio_has_feature(vdev, VIRTIO_NET_F_HOST_ECN))
		return false;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return virtio_has_feature(vdev, VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return virtio_has_feature(vdev, VIRTIO_NET_F_HOST_TSO6);
	default:
		return false;
	}
}

static int net_tx_chain(struct virtio_dev *vdev, struct virtq_elem *e, uint32_t *written)
{
	struct net *n = vdev->priv;
	struct virtio_net_hdr_v1 h;
	ssize_t r;

	*written = 0;
	if (e->out_len < NET_HDR_LEN || e->out_len > NET_HDR_LEN + NET_MAX_FRAME ||
	    e->out_num > IOV_MAX) {
		if (!n->tx_dropped++)
			log_debug("virtio-net: dropping a %llu-byte frame", (unsigned long long)e->out_len);
		return 0;
	}
	iov_to_buf(e->iov, e->out_num, 0, &h, sizeof(h));
	if (!tx_header_ok(vdev, &h)) {
		if (!n->tx_dropped++)
			log_debug("virtio-net: dropping a frame with offloads not negotiated "
				  "(flags 0x%x, gso 0x%x)", h.flags, h.gso_type);
		return 0;
	}
	do {
		r = writev(n->tap_fd, e->iov, (int)e->out_num);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN && n->tap_watched) {
		/* The tap's send buffer is full: wait for room rather than drop (TCP would stall). */
		n->tx_blocked = true;
		sync_tap(vdev);
		return VIRTIO_DEFER;
	}
	if (r < 0) {
		/* A downed tap drops the frame, as a wire would. */
		if (!n->tx_error_logged) {
			log_warn("virtio-net: tap write: %s", strerror(errno));
			n->tx_error_logged = true;
		}
		n->tx_dropped++;
	}
	return 0;
}

static void net_handle(struct virtio_dev *vdev, uint32_t tag, uint32_t events)
{
	struct net *n = vdev->priv;

	switch (tag) {
	case NET_RX:
		set_tap_watch(vdev, true);
		net_rx(vdev);
		break;
	case NET_TX:
		if (!n->tx_blocked)
			virtio_dev_drain(vdev, NET_TX, &n->elem, net_tx_chain);
		break;
	case TAG_TAP:
		if ((events & EPOLLOUT) && n->tx_blocked) {
			n->tx_blocked = false;
			sync_tap(vdev);
			virtio_dev_drain(vdev, NET_TX, &n->elem, net_tx_chain);
		}
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			net_rx(vdev);
		break;
	}
}

static uint64_t offloads_for(const struct virtio_dev *vdev)
{
	uint64_t o = 0;

	if (virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_CSUM))
		o |= TUN_F_CSUM;
	if (virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO4))
		o |= TUN_F_TSO4;
	if (virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO6))
		o |= TUN_F_TSO6;
	if (virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_ECN))
		o |= TUN_F_TSO_ECN;
	return o;
}

static int net_start(struct virtio_dev *vdev)
{
	struct net *n = vdev->priv;

	n->tap_watched = false;
	n->tx_blocked = false;
	if (n->offload_ok) {
		uint64_t o = offloads_for(vdev);

		if (ioctl(n->tap_fd, TUNSETOFFLOAD, (unsigned long)o)) {
			log_error("virtio-net: TUNSETOFFLOAD: %s", strerror(errno));
			return -errno;
		}
		n->offloads = o;
	}
	set_tap_watch(vdev, true);
	return 0;
}

static void net_stop(struct virtio_dev *vdev)
{
	struct net *n = vdev->priv;

	n->tap_watched = false;
	n->rx_on = false;
	n->tx_blocked = false;
	n->pkt_pending = false; /* the queues are gone; a stale frame is just a lost frame */
}

static void net_cfg_read(struct virtio_dev *vdev, uint32_t off, void *data, unsigned int len)
{
	struct net *n = vdev->priv;
	struct virtio_net_config c;

	memset(&c, 0, sizeof(c));
	memcpy(c.mac, n->mac, 6);
	c.status = htole16(VIRTIO_NET_S_LINK_UP);
	c.max_virtqueue_pairs = htole16(1);
	memcpy(data, (uint8_t *)&c + off, len);
}

static void net_destroy(struct virtio_dev *vdev)
{
	struct net *n = vdev->priv;

	if (!n)
		return;
	close(n->tap_fd);
	free(n->pkt);
	free(n);
	vdev->priv = NULL;
}

static int net_save(struct virtio_dev *vdev, void *state)
{
	struct net *n = vdev->priv;
	struct virtio_net_state *s = state;

	memset(s, 0, sizeof(*s));
	memcpy(s->mac, n->mac, 6);
	s->offloads = n->offloads;
	return 0;
}

static int net_load(struct virtio_dev *vdev, const void *state)
{
	const struct virtio_net_state *s = state;
	struct net *n = vdev->priv;

	/* The guest knows its MAC: the restored device must keep it. */
	if (memcmp(s->mac, n->mac, 6))
		return -EINVAL;
	if (s->offloads && !n->offload_ok)
		return -EINVAL;
	return 0;
}

/* Feature dependencies (virtio 1.x 5.1.3.1); the tap refuses TSO without checksums too. */
static bool net_features_ok(uint64_t f)
{
#define HAS(bit) ((f >> VIRTIO_NET_F_##bit) & 1)
	if ((HAS(GUEST_TSO4) || HAS(GUEST_TSO6) || HAS(GUEST_UFO)) && !HAS(GUEST_CSUM))
		return false;
	if (HAS(GUEST_ECN) && !HAS(GUEST_TSO4) && !HAS(GUEST_TSO6))
		return false;
	if ((HAS(HOST_TSO4) || HAS(HOST_TSO6) || HAS(HOST_UFO)) && !HAS(CSUM))
		return false;
	if (HAS(HOST_ECN) && !HAS(HOST_TSO4) && !HAS(HOST_TSO6))
		return false;
	return true;
#undef HAS
}

const struct virtio_dev_ops virtio_net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = 0x0200, /* network, Ethernet */
	.cfg_size = offsetof(struct virtio_net_config, mtu),
	.cfg_read = net_cfg_read,
	.features_ok = net_features_ok,
	.start = net_start,
	.stop = net_stop,
	.handle = net_handle,
	.destroy = net_destroy,
	.state_size = sizeof(struct virtio_net_state),
	.save = net_save,
	.load = net_load,
};

int virtio_net_init(struct virtio_dev *vdev, const struct guest_mem *mem, int tap_fd,
		    const uint8_t mac[6], bool offload)
{
	uint64_t features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
			    (1ULL << VIRTIO_NET_F_MRG_RXBUF) | NET_HOST_OFFLOADS;
	struct net *n;
	int r;

	n = calloc(1, sizeof(*n));
	if (n)
		n->pkt = malloc(NET_HDR_LEN + NET_MAX_FRAME);
	if (!n || !n->pkt) {
		log_error("virtio-net: out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	if (fcntl(tap_fd, F_SETFL, fcntl(tap_fd, F_GETFL) | O_NONBLOCK)) {
		r = -errno;
		log_error("virtio-net: cannot make the tap non-blocking: %s", strerror(errno));
		goto out_free;
	}
	n->tap_fd = tap_fd;
	memcpy(n->mac, mac, 6);
	n->offload_ok = offload;
	if (offload)
		features |= NET_GUEST_OFFLOADS;
	r = virtio_dev_init(vdev, &virtio_net_ops, n, mem, 2, NET_QUEUE_SIZE, features);
	if (r)
		goto out_free;
	return 0;

out_free:
	if (n)
		free(n->pkt);
	free(n);
	close(tap_fd);
	return r;
}

/* ---- command line ---------------------------------------------------------------- */

/* "52:54:00:12:34:56": unicast, not all zeros. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6], i;
	int end = -1;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &end) != 6 || end != 17 || s[end])
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

/* A stable, locally administered unicast MAC from the interface name (FNV-1a). */
static void derive_mac(const char *ifname, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned int i;

	for (; *ifname; ifname++)
		h = (h ^ (uint8_t)*ifname) * 0x100000001b3ull;
	mac[0] = 0x02;
	for (i = 1; i < 6; i++, h >>= 8)
		mac[i] = (uint8_t)h;
}

/* Open (or create) tap ifname with a virtio 1.x vnet header. fd, or -errno (logged). */
static int tap_open(const char *ifname, bool *offload)
{
	struct ifreq ifr;
	int fd, hdr = NET_HDR_LEN, r;

	if (strlen(ifname) >= IFNAMSIZ) {
		log_error("--net: tap name '%s' is longer than %d characters", ifname, IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		log_error("--net: cannot open /dev/net/tun: %s", strerror(errno));
		return r;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		r = -errno;
		if (errno == EPERM)
			log_error("--net: tap '%s' does not exist or is not ours, and creating it "
				  "needs CAP_NET_ADMIN (ip tuntap add %s mode tap user $USER)",
				  ifname, ifname);
		else
			log_error("--net: cannot attach to tap '%s': %s", ifname, strerror(errno));
		goto out_close;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr)) {
		r = -errno;
		log_error("--net: tap '%s': cannot set the vnet header size: %s", ifname,
			  strerror(errno));
		goto out_close;
	}
	/* No send-buffer limit (as QEMU): a full tap would only make us wait. */
	{
		int sndbuf = INT_MAX;

		if (ioctl(fd, TUNSETSNDBUF, &sndbuf))
			log_warn("--net: tap '%s': TUNSETSNDBUF: %s", ifname, strerror(errno));
	}
	/* Guest offloads need the tap to pass such frames up: see whether it can. */
	*offload = !ioctl(fd, TUNSETOFFLOAD,
			  (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN));
	if (*offload)
		ioctl(fd, TUNSETOFFLOAD, 0UL); /* until the guest says what it handles */
	return fd;

out_close:
	close(fd);
	return r;
}

int virtio_net_create(struct pci_bus *bus, const struct guest_mem *mem, const char *spec,
		      struct virtio_pci **out)
{
	static const char *const keys[] = { "tap", "mac" };
	char *v[ARRAY_SIZE(keys)];
	struct virtio_dev *vdev;
	uint8_t mac[6];
	bool offload = false;
	int fd, r;

	r = spec_parse("--net", spec, keys, ARRAY_SIZE(keys), NULL, v);
	if (r)
		return r;
	r = -EINVAL;
	if (!v[0] || !*v[0]) {
		log_error("--net: tap=IFNAME is required");
		goto out_spec;
	}
	if (v[1]) {
		if (parse_mac(v[1], mac)) {
			log_error("--net: mac=%s: expected a unicast address like 52:54:00:12:34:56",
				  v[1]);
			goto out_spec;
		}
	} else {
		derive_mac(v[0], mac);
	}
	fd = tap_open(v[0], &offload);
	if (fd < 0) {
		r = fd;
		goto out_spec;
	}
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("--net: out of memory");
		close(fd);
		r = -ENOMEM;
		goto out_spec;
	}
	r = virtio_net_init(vdev, mem, fd, mac, offload);
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

/* ---- the --net class (vmm/devconf.h): its typed config and options ---- */

struct net_config {
	char *tap; /* the tap interface */
	char *mac; /* XX:XX:XX:XX:XX:XX (unicast), or NULL: derived from tap */
};

static const char *const net_keys[] = { "tap", "mac" };

static void net_free(void *conf)
{
	struct net_config *c = conf;

	free(c->tap);
	free(c->mac);
	free(c);
}

static bool mac_valid(const char *s)
{
	unsigned int b[6];
	char end;

	return strlen(s) == 17 &&
	       sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		      &end) == 6 &&
	       !(b[0] & 1);
}

static int net_parse(const char *opt, char *const *v, void **conf)
{
	struct net_config *c;
	int ret;

	if (!v[0] || !*v[0]) {
		log_error("%s: tap=IFNAME is required", opt);
		return -EINVAL;
	}
	if (v[1] && !mac_valid(v[1])) {
		log_error("%s: mac=%s: expected a unicast address like 52:54:00:12:34:56", opt, v[1]);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if ((ret = spec_dup(opt, v[0], &c->tap)) || (ret = spec_dup(opt, v[1], &c->mac))) {
		net_free(c);
		return ret;
	}
	*conf = c;
	return 0;
}

static json_t *net_to_json(const void *conf)
{
	const struct net_config *c = conf;

	return spec_json_str(spec_json_str(json_object(), "tap", c->tap), "mac", c->mac);
}

const struct dev_class dev_class_net = {
	.name = "net",
	.synopsis = "tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]",
	.help = DEV_HELP_INDENT "a virtio NIC on a tap device (repeatable)\n",
	.keys = net_keys,
	.nr_keys = ARRAY_SIZE(net_keys),
	.parse = net_parse,
	.to_json = net_to_json,
	.free = net_free,
	.create = virtio_net_create,
};
