// SPDX-License-Identifier: MIT
/* The modern virtio-pci transport: see virtio-pci.h for the layout and the state machine. */
#include "virtio-pci.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "log.h"
#include "util.h"

#define PCI_VENDOR_REDHAT_QUMRANET 0x1af4
#define VIRTIO_PCI_DEVICE_BASE     0x1040 /* modern device IDs: 0x1040 + virtio ID */
#define VIRTIO_PCI_SUBSYS_ID       0x1100 /* >= 0x40 for non-transitional devices */

#define PCI_CAP_ID_MSIX_ 0x11
#define PCI_CAP_ID_VNDR_ 0x09
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 1
#define COMMON_SIZE 0x38 /* up to queue_device; no notify data, no queue reset */

struct virtio_pci {
	struct pci_device pdev;
	struct virtio_dev *vdev;       /* not owned as memory; its contents are (fini) */
	struct virtio_pci_state st;
	pthread_mutex_t cfg_lock;      /* guest register accesses */
	pthread_mutex_t lock;          /* status, ISR, MSI-X (shared with the I/O thread) */
	unsigned int nvec;             /* MSI-X vectors: one per queue plus config */
	int vec_fd[VPCI_MAX_VECTORS];  /* irqfd per vector, owned */
	int route[VPCI_MAX_VECTORS];   /* host route id, valid if route_ok */
	bool route_ok[VPCI_MAX_VECTORS];
	bool routes_added;             /* msi_route_add tried for every vector */
	bool attached;                 /* on a bus: pci_host_ops() usable */
	bool owns_vdev;                /* vdev was heap allocated by a create function */
	uint64_t doorbell_addr;        /* guest address the ioeventfds sit at, 0 if none */
	uint32_t cfgcap_off;           /* config offset of the PCI cfg access capability */
};

static const struct pci_host_ops *host_ops(struct virtio_pci *vp, void **host)
{
	if (!vp->attached)
		return NULL;
	return pci_host_ops(&vp->pdev, host);
}

/* ---- MSI-X --------------------------------------------------------------------- */

static bool vector_masked(const struct virtio_pci *vp, unsigned int v)
{
	return (vp->st.msix_ctrl & MSIX_CTRL_MASKALL) || (vp->st.msix[v].ctrl & MSIX_ENTRY_MASKED);
}

/* Inject vector v now (lock held, vector enabled and unmasked). */
static void fire_vector(struct virtio_pci *vp, unsigned int v)
{
	const struct pci_host_ops *ops;
	uint64_t one = 1;
	void *host;

	if (vp->route_ok[v]) {
		if (write(vp->vec_fd[v], &one, sizeof(one)) == sizeof(one))
			return;
	}
	ops = host_ops(vp, &host);
	if (ops && ops->msi_signal(host, vp->st.msix[v].addr, vp->st.msix[v].data))
		log_debug("%s: MSI for vector %u not delivered", vp->vdev->ops->name, v);
}

/* Raise vector v (lock held): deliver, or leave it pending while masked. */
static void signal_vector(struct virtio_pci *vp, unsigned int v)
{
	if (v >= vp->nvec || !(vp->st.msix_ctrl & MSIX_CTRL_ENABLE))
		return; /* VIRTIO_MSI_NO_VECTOR, or MSI-X off (there is no INTx line) */
	if (vector_masked(vp, v)) {
		vp->st.pba |= 1u << v;
		return;
	}
	fire_vector(vp, v);
}

/* Deliver what became unmasked (lock held). */
static void deliver_pending(struct virtio_pci *vp)
{
	unsigned int v;

	if (!(vp->st.msix_ctrl & MSIX_CTRL_ENABLE))
		return;
	for (v = 0; v < vp->nvec; v++) {
		if ((vp->st.pba & (1u << v)) && !vector_masked(vp, v)) {
			vp->st.pba &= ~(1u << v);
			fire_vector(vp, v);
		}
	}
}

/* Tell the host where vector v now points (lock held). */
static void update_route(struct virtio_pci *vp, unsigned int v)
{
	const struct pci_host_ops *ops;
	void *host;

	ops = host_ops(vp, &host);
	if (!ops || !vp->route_ok[v])
		return;
	if (ops->msi_route_update(host, vp->route[v], vp->st.msix[v].addr, vp->st.msix[v].data,
				  vector_masked(vp, v))) {
		/* The route is stale: fall back to msi_signal for this vector. */
		vp->route_ok[v] = false;
	}
}

/* First MSI-X enable: one irqfd route per vector (lock held). */
static void add_routes(struct virtio_pci *vp)
{
	const struct pci_host_ops *ops;
	unsigned int v;
	void *host;

	ops = host_ops(vp, &host);
	if (!ops || vp->routes_added)
		return;
	for (v = 0; v < vp->nvec; v++) {
		int r = ops->msi_route_add(host, vp->vec_fd[v], vp->st.msix[v].addr,
					   vp->st.msix[v].data, &vp->route[v]);

		vp->route_ok[v] = r == 0;
		if (r)
			log_warn("%s: no irqfd route for vector %u (%s); using direct MSIs",
				 vp->vdev->ops->name, v, strerror(-r));
		else if (vector_masked(vp, v))
			update_route(vp, v);
	}
	vp->routes_added = true;
}

static void del_routes(struct virtio_pci *vp)
{
	const struct pci_host_ops *ops;
	unsigned int v;
	void *host;

	ops = host_ops(vp, &host);
	for (v = 0; v < vp->nvec; v++) {
		if (ops && vp->route_ok[v])
			ops->msi_route_del(host, vp->route[v], vp->vec_fd[v]);
		vp->route_ok[v] = false;
	}
	vp->routes_added = false;
}

static void msix_table_read(struct virtio_pci *vp, uint64_t off, void *data, unsigned int len)
{
	uint8_t buf[8] = { 0 };

	memset(data, 0, len);
	if (off >= VPCI_MSIX_PBA) {
		/* PBA: one 64-bit word is all we need for nvec <= 64 vectors. */
		if (off - VPCI_MSIX_PBA < 8 && len <= 8 - (off - VPCI_MSIX_PBA)) {
			pthread_mutex_lock(&vp->lock);
			put_le(buf, vp->st.pba, 8);
			pthread_mutex_unlock(&vp->lock);
			memcpy(data, buf + (off - VPCI_MSIX_PBA), len);
		}
		return;
	}
	if (off / 16 >= vp->nvec || (off & 3) || (len != 4 && len != 8) || (off % 16) + len > 16)
		return;
	pthread_mutex_lock(&vp->lock);
	{
		const struct virtio_pci_msix_entry *e = &vp->st.msix[off / 16];
		uint8_t ent[16];

		put_le(ent, e->addr, 8);
		put_le(ent + 8, e->data, 4);
		put_le(ent + 12, e->ctrl, 4);
		memcpy(data, ent + off % 16, len);
	}
	pthread_mutex_unlock(&vp->lock);
}

static void msix_table_write(struct virtio_pci *vp, uint64_t off, const void *data,
			     unsigned int len)
{
	struct virtio_pci_msix_entry *e;
	uint8_t ent[16];
	bool was_masked;
	unsigned int v;

	/* Dword or qword accesses within one entry (PCI spec); the PBA is read-only. */
	if (off >= VPCI_MSIX_PBA || off / 16 >= VPCI_MAX_VECTORS)
		return;
	v = (unsigned int)(off / 16);
	if (v >= vp->nvec || (off & 3) || (len != 4 && len != 8) || (off % 16) + len > 16)
		return;
	pthread_mutex_lock(&vp->lock);
	e = &vp->st.msix[v];
	was_masked = vector_masked(vp, v);
	put_le(ent, e->addr, 8);
	put_le(ent + 8, e->data, 4);
	put_le(ent + 12, e->ctrl, 4);
	memcpy(ent + off % 16, data, len);
	e->addr = get_le(ent, 8);
	e->data = (uint32_t)get_le(ent + 8, 4);
	e->ctrl = (uint32_t)get_le(ent + 12, 4) & MSIX_ENTRY_MASKED;
	update_route(vp, v);
	if (was_masked && !vector_masked(vp, v))
		deliver_pending(vp);
	pthread_mutex_unlock(&vp->lock);
}

/* Message control lives in config space: only enable and function mask are writable. */
static void msix_ctrl_write(struct virtio_pci *vp, uint16_t val)
{
	uint16_t old, ctrl;
	unsigned int v;

	pthread_mutex_lock(&vp->lock);
	old = vp->st.msix_ctrl;
	ctrl = val & (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	vp->st.msix_ctrl = ctrl;
	pci_cfg_set16(&vp->pdev, VPCI_CAP_MSIX + 2,
		      (uint16_t)((vp->nvec - 1) | ctrl));
	if ((ctrl & MSIX_CTRL_ENABLE) && !(old & MSIX_CTRL_ENABLE))
		add_routes(vp);
	if ((ctrl ^ old) & MSIX_CTRL_MASKALL)
		for (v = 0; v < vp->nvec; v++)
			update_route(vp, v);
	deliver_pending(vp);
	pthread_mutex_unlock(&vp->lock);
}

/* ---- transport ops (any thread) ------------------------------------------------ */

static void tr_notify_queue(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_pci *vp = vdev->transport;

	pthread_mutex_lock(&vp->lock);
	vp->st.isr |= 1 /* queue interrupt */;
	signal_vector(vp, vp->st.queue_vector[q]);
	pthread_mutex_unlock(&vp->lock);
}

static void config_interrupt_locked(struct virtio_pci *vp)
{
	vp->st.config_generation++;
	vp->st.isr |= VIRTIO_PCI_ISR_CONFIG;
	signal_vector(vp, vp->st.msix_config);
}

static void tr_notify_config(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	pthread_mutex_lock(&vp->lock);
	config_interrupt_locked(vp);
	pthread_mutex_unlock(&vp->lock);
}

static void tr_needs_reset(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	pthread_mutex_lock(&vp->lock);
	if (!(vp->st.status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		vp->st.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		/* Only a driver that finished init can act on it; earlier it reads status. */
		if (vp->st.status & VIRTIO_CONFIG_S_DRIVER_OK)
			config_interrupt_locked(vp);
	}
	pthread_mutex_unlock(&vp->lock);
}

const struct virtio_transport_ops virtio_pci_transport_ops = {
	.notify_queue = tr_notify_queue,
	.notify_config = tr_notify_config,
	.needs_reset = tr_needs_reset,
};

/* ---- doorbells ------------------------------------------------------------------ */

/* Move the queue doorbells' ioeventfds to base (0: remove them). cfg_lock held. */
static void move_doorbells(struct virtio_pci *vp, uint64_t base)
{
	const struct pci_host_ops *ops;
	unsigned int q;
	void *host;
	int r;

	ops = host_ops(vp, &host);
	if (!ops || base == vp->doorbell_addr)
		return;
	for (q = 0; q < vp->vdev->num_queues && vp->doorbell_addr; q++)
		ops->ioeventfd(host, vp->doorbell_addr + VPCI_NOTIFY + VPCI_NOTIFY_MULT * q,
			       2, vp->vdev->kick_fd[q], false);
	vp->doorbell_addr = 0;
	if (!base)
		return;
	for (q = 0; q < vp->vdev->num_queues; q++) {
		r = ops->ioeventfd(host, base + VPCI_NOTIFY + VPCI_NOTIFY_MULT * q, 2,
				   vp->vdev->kick_fd[q], true);
		if (r) /* Still works, through bar_write: just slower. */
			log_warn("%s: no ioeventfd for queue %u: %s", vp->vdev->ops->name, q,
				 strerror(-r));
	}
	vp->doorbell_addr = base;
}

/* A doorbell write that reached us rather than an ioeventfd. cfg_lock held. */
static void doorbell_write(struct virtio_pci *vp, uint64_t off)
{
	unsigned int q = (unsigned int)(off / VPCI_NOTIFY_MULT);
	uint64_t one = 1;
	uint8_t status;

	if (q >= vp->vdev->num_queues)
		return;
	pthread_mutex_lock(&vp->lock);
	status = vp->st.status;
	pthread_mutex_unlock(&vp->lock);
	if (!(status & VIRTIO_CONFIG_S_DRIVER_OK) || (status & VIRTIO_CONFIG_S_FAILED) ||
	    !vp->vdev->vq[q].st.ready)
		return; /* nothing to do before the driver is done setting up */
	if (write(vp->vdev->kick_fd[q], &one, sizeof(one)) != sizeof(one))
		log_debug("%s: kick lost: %s", vp->vdev->ops->name, strerror(errno));
}

/* ---- common configuration ------------------------------------------------------ */

static uint8_t get_status(struct virtio_pci *vp)
{
	uint8_t s;

	pthread_mutex_lock(&vp->lock);
	s = vp->st.status;
	pthread_mutex_unlock(&vp->lock);
	return s;
}

static void set_status_bits(struct virtio_pci *vp, uint8_t set, uint8_t clear)
{
	pthread_mutex_lock(&vp->lock);
	vp->st.status = (uint8_t)((vp->st.status | set) & ~clear);
	pthread_mutex_unlock(&vp->lock);
}

static void transport_reset(struct virtio_pci *vp)
{
	unsigned int q;

	virtio_dev_stop(vp->vdev);
	virtio_dev_reset(vp->vdev);
	if (vp->vdev->ops->reset)
		vp->vdev->ops->reset(vp->vdev);
	pthread_mutex_lock(&vp->lock);
	vp->st.status = 0;
	vp->st.isr = 0;
	vp->st.device_feature_select = 0;
	vp->st.driver_feature_select = 0;
	vp->st.driver_features = 0;
	vp->st.queue_select = 0;
	vp->st.msix_config = VIRTIO_MSI_NO_VECTOR;
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->st.queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	vp->st.pba = 0; /* the MSI-X table itself is PCI state and survives */
	pthread_mutex_unlock(&vp->lock);
}

static void status_write(struct virtio_pci *vp, uint8_t val)
{
	struct virtio_dev *vdev = vp->vdev;
	uint8_t old = get_status(vp), new, added;

	if (val == 0) {
		transport_reset(vp);
		return;
	}
	if (old & ~val & ~VIRTIO_CONFIG_S_NEEDS_RESET) {
		log_debug("%s: driver cleared status bits (0x%x -> 0x%x), ignored",
			  vdev->ops->name, old, val);
		return;
	}
	new = val | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
	added = new & ~old;

	if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t f = vp->st.driver_features;

		if ((f & ~vdev->host_features) || !(f & (1ULL << VIRTIO_F_VERSION_1)) ||
		    (vdev->ops->features_ok && !vdev->ops->features_ok(f))) {
			/* The driver reads FEATURES_OK back and gives up (spec 3.1.1). */
			log_debug("%s: features 0x%llx refused", vdev->ops->name,
				  (unsigned long long)f);
			new &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
			added &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		} else {
			vdev->features = f;
		}
	}
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(new & VIRTIO_CONFIG_S_FEATURES_OK)) {
		new &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
		new |= VIRTIO_CONFIG_S_NEEDS_RESET;
		added &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
	}
	set_status_bits(vp, new, 0);

	if (added & VIRTIO_CONFIG_S_FAILED) {
		virtio_dev_stop(vdev);
		return;
	}
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(new & VIRTIO_CONFIG_S_FAILED)) {
		int r = virtio_dev_start(vdev);

		if (r) {
			log_error("%s: cannot start: %s", vdev->ops->name, strerror(-r));
			tr_needs_reset(vdev);
		}
	}
}

/* Snapshot of the common config registers as the guest sees them. */
static void common_image(struct virtio_pci *vp, uint8_t img[COMMON_SIZE])
{
	struct virtio_dev *vdev = vp->vdev;
	uint16_t qs = vp->st.queue_select;
	uint64_t feat = 0;

	memset(img, 0, COMMON_SIZE);
	if (vp->st.device_feature_select < 2)
		feat = vdev->host_features >> (32 * vp->st.device_feature_select);
	put_le(img + VIRTIO_PCI_COMMON_DFSELECT, vp->st.device_feature_select, 4);
	put_le(img + VIRTIO_PCI_COMMON_DF, (uint32_t)feat, 4);
	put_le(img + VIRTIO_PCI_COMMON_GFSELECT, vp->st.driver_feature_select, 4);
	if (vp->st.driver_feature_select < 2)
		put_le(img + VIRTIO_PCI_COMMON_GF,
		       (uint32_t)(vp->st.driver_features >> (32 * vp->st.driver_feature_select)), 4);
	put_le(img + VIRTIO_PCI_COMMON_MSIX, vp->st.msix_config, 2);
	put_le(img + VIRTIO_PCI_COMMON_NUMQ, vdev->num_queues, 2);
	img[VIRTIO_PCI_COMMON_STATUS] = vp->st.status;
	img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->st.config_generation;
	put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, qs, 2);
	if (qs < vdev->num_queues) {
		const struct virtq *vq = &vdev->vq[qs];

		put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, vq->st.size, 2);
		put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, vp->st.queue_vector[qs], 2);
		put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, vq->st.ready, 2);
		put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, qs, 2);
		put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, vq->st.desc_gpa, 8);
		put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, vq->st.avail_gpa, 8);
		put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, vq->st.used_gpa, 8);
	}
	/* queue_size 0 tells the driver a queue beyond num_queues does not exist. */
}

static void common_read(struct virtio_pci *vp, uint64_t off, void *data, unsigned int len)
{
	uint8_t img[COMMON_SIZE];

	memset(data, 0, len);
	if (!range_within(off, len, COMMON_SIZE))
		return;
	pthread_mutex_lock(&vp->lock);
	common_image(vp, img);
	pthread_mutex_unlock(&vp->lock);
	memcpy(data, img + off, len);
}

/* Write one half (or all) of a 64-bit queue address register. */
static void write_addr(uint64_t *reg, uint64_t off_in_reg, uint64_t v, unsigned int len)
{
	if (len == 8 && off_in_reg == 0)
		*reg = v;
	else if (len == 4 && off_in_reg == 0)
		*reg = (*reg & 0xffffffff00000000ull) | (uint32_t)v;
	else if (len == 4 && off_in_reg == 4)
		*reg = (*reg & 0xffffffffull) | (v << 32);
}

static void queue_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned int len)
{
	struct virtio_dev *vdev = vp->vdev;
	uint16_t qs = vp->st.queue_select;
	struct virtq *vq;
	int r;

	if (qs >= vdev->num_queues)
		return;
	vq = &vdev->vq[qs];
	if (off == VIRTIO_PCI_COMMON_Q_MSIX && len == 2) {
		pthread_mutex_lock(&vp->lock);
		/* A vector we don't have reads back as NO_VECTOR: the driver checks. */
		vp->st.queue_vector[qs] = v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		pthread_mutex_unlock(&vp->lock);
		return;
	}
	/* Everything below configures the rings: only while the queue is off. */
	if (vq->st.ready || (get_status(vp) & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (len != 2)
			return;
		if (!virtq_size_ok(vq, v)) {
			log_debug("%s: queue %u size %llu refused", vdev->ops->name, qs,
				  (unsigned long long)v);
			return;
		}
		vq->st.size = (uint16_t)v;
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (len != 2 || v != 1)
			return; /* disabling needs VIRTIO_F_RING_RESET, not offered */
		r = virtq_enable(vq);
		if (r) {
			/* The guest may write this in a loop: rate-limited. */
			log_limited(&vdev->log_rl, LOG_WARN, "%s: queue %u: rings %s; device needs "
				    "reset", vdev->ops->name, qs,
				    r == -EFAULT ? "outside guest memory" : "misaligned or bad size");
			tr_needs_reset(vdev);
		}
		return;
	}
	if (off >= VIRTIO_PCI_COMMON_Q_DESCLO && off < VIRTIO_PCI_COMMON_Q_DESCLO + 8)
		write_addr(&vq->st.desc_gpa, off - VIRTIO_PCI_COMMON_Q_DESCLO, v, len);
	else if (off >= VIRTIO_PCI_COMMON_Q_AVAILLO && off < VIRTIO_PCI_COMMON_Q_AVAILLO + 8)
		write_addr(&vq->st.avail_gpa, off - VIRTIO_PCI_COMMON_Q_AVAILLO, v, len);
	else if (off >= VIRTIO_PCI_COMMON_Q_USEDLO && off < VIRTIO_PCI_COMMON_Q_USEDLO + 8)
		write_addr(&vq->st.used_gpa, off - VIRTIO_PCI_COMMON_Q_USEDLO, v, len);
}

static void common_write(struct virtio_pci *vp, uint64_t off, const void *data, unsigned int len)
{
	uint64_t v = get_le(data, len);

	if (!range_within(off, len, COMMON_SIZE))
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		if (len == 4)
			vp->st.device_feature_select = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		if (len == 4)
			vp->st.driver_feature_select = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GF: {
		unsigned int sel = vp->st.driver_feature_select;

		if (len != 4 || sel >= 2 || (get_status(vp) & VIRTIO_CONFIG_S_FEATURES_OK))
			return;
		pthread_mutex_lock(&vp->lock);
		vp->st.driver_features &= ~(0xffffffffull << (32 * sel));
		vp->st.driver_features |= (v & 0xffffffffull) << (32 * sel);
		pthread_mutex_unlock(&vp->lock);
		return;
	}
	case VIRTIO_PCI_COMMON_MSIX:
		if (len == 2) {
			pthread_mutex_lock(&vp->lock);
			vp->st.msix_config = v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
			pthread_mutex_unlock(&vp->lock);
		}
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		if (len == 1)
			status_write(vp, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		if (len == 2)
			vp->st.queue_select = (uint16_t)v;
		return;
	}
	if (off >= VIRTIO_PCI_COMMON_Q_SIZE)
		queue_write(vp, off, v, len);
}

/* ---- BAR and config space access ----------------------------------------------- */

static void bar0_read(struct virtio_pci *vp, uint64_t off, void *data, unsigned int len)
{
	const struct virtio_dev_ops *ops = vp->vdev->ops;

	memset(data, 0, len);
	if (off < VPCI_ISR) {
		common_read(vp, off - VPCI_COMMON, data, len);
	} else if (off == VPCI_ISR) {
		/* Reading the ISR acknowledges it. */
		pthread_mutex_lock(&vp->lock);
		*(uint8_t *)data = vp->st.isr;
		vp->st.isr = 0;
		pthread_mutex_unlock(&vp->lock);
	} else if (off >= VPCI_DEVCFG && off < VPCI_NOTIFY) {
		off -= VPCI_DEVCFG;
		if (ops->cfg_read && range_within(off, len, ops->cfg_size))
			ops->cfg_read(vp->vdev, (uint32_t)off, data, len);
	}
}

static void bar0_write(struct virtio_pci *vp, uint64_t off, const void *data, unsigned int len)
{
	const struct virtio_dev_ops *ops = vp->vdev->ops;

	if (off < VPCI_ISR) {
		common_write(vp, off - VPCI_COMMON, data, len);
	} else if (off >= VPCI_DEVCFG && off < VPCI_NOTIFY) {
		off -= VPCI_DEVCFG;
		if (ops->cfg_write && range_within(off, len, ops->cfg_size))
			ops->cfg_write(vp->vdev, (uint32_t)off, data, len);
	} else if (off >= VPCI_NOTIFY) {
		doorbell_write(vp, off - VPCI_NOTIFY);
	}
}

/* BAR access with cfg_lock held (from the bus, or through the PCI cfg window). */
static void bar_read_locked(struct virtio_pci *vp, int bar, uint64_t off, void *data,
			    unsigned int len)
{
	if (bar == VPCI_BAR_CFG && range_within(off, len, VPCI_BAR0_SIZE))
		bar0_read(vp, off, data, len);
	else if (bar == VPCI_BAR_MSIX && range_within(off, len, VPCI_BAR2_SIZE))
		msix_table_read(vp, off, data, len);
	else
		memset(data, 0, len);
}

static void bar_write_locked(struct virtio_pci *vp, int bar, uint64_t off, const void *data,
			     unsigned int len)
{
	if (bar == VPCI_BAR_CFG && range_within(off, len, VPCI_BAR0_SIZE))
		bar0_write(vp, off, data, len);
	else if (bar == VPCI_BAR_MSIX && range_within(off, len, VPCI_BAR2_SIZE))
		msix_table_write(vp, off, data, len);
}

static void vp_bar_read(struct pci_device *dev, int bar, uint64_t off, void *data,
			unsigned int len)
{
	struct virtio_pci *vp = dev->opaque;

	if (len == 0 || len > 8)
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	bar_read_locked(vp, bar, off, data, len);
	pthread_mutex_unlock(&vp->cfg_lock);
}

static void vp_bar_write(struct pci_device *dev, int bar, uint64_t off, const void *data,
			 unsigned int len)
{
	struct virtio_pci *vp = dev->opaque;

	if (len == 0 || len > 8)
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	bar_write_locked(vp, bar, off, data, len);
	pthread_mutex_unlock(&vp->cfg_lock);
}

static void vp_bar_remap(struct pci_device *dev, int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *vp = dev->opaque;

	if (bar != VPCI_BAR_CFG)
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	move_doorbells(vp, new_addr);
	pthread_mutex_unlock(&vp->cfg_lock);
}

/*
 * The VIRTIO_PCI_CAP_PCI_CFG window: the driver picks bar/offset/length in the
 * capability, then reads or writes pci_cfg_data to reach that BAR through config
 * space. Returns true if [off, off+len) touched the data field (and was handled).
 */
static bool cfgwin_access(struct virtio_pci *vp, uint32_t off, void *rdata, const void *wdata,
			  unsigned int len)
{
	uint32_t data_off = vp->cfgcap_off + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
	uint32_t boff = vp->st.cfgwin_off, blen = vp->st.cfgwin_len;
	uint8_t buf[4] = { 0 };

	if (off + len <= data_off || off >= data_off + 4)
		return false;
	/* Only whole-window accesses of the size the driver announced. */
	if (off != data_off || len != blen || (blen != 1 && blen != 2 && blen != 4) ||
	    (boff & (blen - 1))) {
		if (rdata)
			memset(rdata, 0, len);
		return true;
	}
	if (rdata) {
		bar_read_locked(vp, vp->st.cfgwin_bar, boff, buf, blen);
		memcpy(rdata, buf, len);
	} else {
		bar_write_locked(vp, vp->st.cfgwin_bar, boff, wdata, blen);
	}
	return true;
}

static void vp_cfg_read(struct pci_device *dev, uint32_t off, void *data, unsigned int len)
{
	struct virtio_pci *vp = dev->opaque;

	if (!range_within(off, len, PCI_CFG_SIZE))
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	if (!cfgwin_access(vp, off, data, NULL, len)) {
		pthread_mutex_lock(&vp->lock);
		memcpy(data, dev->cfg + off, len);
		pthread_mutex_unlock(&vp->lock);
	}
	pthread_mutex_unlock(&vp->cfg_lock);
}

static void vp_cfg_write(struct pci_device *dev, uint32_t off, const void *data, unsigned int len)
{
	struct virtio_pci *vp = dev->opaque;
	uint32_t ctrl_off = VPCI_CAP_MSIX + 2, cap = vp->cfgcap_off;
	unsigned int i;

	if (!range_within(off, len, PCI_CFG_SIZE))
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	if (cfgwin_access(vp, off, NULL, data, len))
		goto out_unlock;
	/* MSI-X message control: enable and function mask (high byte) are writable. */
	if (off <= ctrl_off + 1 && off + len > ctrl_off + 1) {
		uint8_t hi = ((const uint8_t *)data)[ctrl_off + 1 - off];

		msix_ctrl_write(vp, (uint16_t)(hi << 8));
	}
	/* PCI cfg window: bar, offset and length are the driver's to set. */
	for (i = 0; i < len; i++) {
		uint32_t o = off + i;
		uint8_t b = ((const uint8_t *)data)[i];

		if (o == cap + offsetof(struct virtio_pci_cap, bar) ||
		    (o >= cap + offsetof(struct virtio_pci_cap, offset) &&
		     o < cap + offsetof(struct virtio_pci_cap, length) + 4))
			dev->cfg[o] = b;
	}
	vp->st.cfgwin_bar = dev->cfg[cap + offsetof(struct virtio_pci_cap, bar)];
	vp->st.cfgwin_off = (uint32_t)get_le(dev->cfg + cap + offsetof(struct virtio_pci_cap, offset), 4);
	vp->st.cfgwin_len = (uint32_t)get_le(dev->cfg + cap + offsetof(struct virtio_pci_cap, length), 4);
out_unlock:
	pthread_mutex_unlock(&vp->cfg_lock);
}

const struct pci_device_ops virtio_pci_device_ops = {
	.cfg_read = vp_cfg_read,
	.cfg_write = vp_cfg_write,
	.bar_read = vp_bar_read,
	.bar_write = vp_bar_write,
	.bar_remap = vp_bar_remap,
};

/* ---- construction -------------------------------------------------------------- */

/* Append a virtio vendor capability at *at; returns its offset. */
static uint32_t add_vcap(struct virtio_pci *vp, uint32_t *at, uint8_t type, uint8_t cap_len,
			 uint8_t bar, uint32_t offset, uint32_t length)
{
	struct pci_device *d = &vp->pdev;
	uint32_t o = *at;

	pci_cfg_set8(d, o + 0, PCI_CAP_ID_VNDR_);
	pci_cfg_set8(d, o + 1, 0); /* next: patched by the following capability */
	pci_cfg_set8(d, o + 2, cap_len);
	pci_cfg_set8(d, o + 3, type);
	pci_cfg_set8(d, o + 4, bar);
	pci_cfg_set32(d, o + 8, offset);
	pci_cfg_set32(d, o + 12, length);
	*at = o + align_up(cap_len, 4);
	return o;
}

static void build_config_space(struct virtio_pci *vp)
{
	struct pci_device *d = &vp->pdev;
	const struct virtio_dev_ops *ops = vp->vdev->ops;
	uint32_t at, prev, caps[5];
	unsigned int n = 0, i;

	pci_cfg_set16(d, 0x00, PCI_VENDOR_REDHAT_QUMRANET);
	pci_cfg_set16(d, 0x02, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id));
	pci_cfg_set16(d, 0x06, 0x0010); /* status: capability list */
	pci_cfg_set8(d, 0x08, 1);       /* revision 1: modern only */
	pci_cfg_set8(d, 0x0a, (uint8_t)ops->pci_class);
	pci_cfg_set8(d, 0x0b, (uint8_t)(ops->pci_class >> 8));
	pci_cfg_set8(d, 0x0e, 0x00);    /* header type 0 */
	pci_cfg_set16(d, 0x2c, PCI_VENDOR_REDHAT_QUMRANET);
	pci_cfg_set16(d, 0x2e, VIRTIO_PCI_SUBSYS_ID);
	pci_cfg_set8(d, 0x34, VPCI_CAP_MSIX);

	/* MSI-X: table and PBA in BAR 2. */
	pci_cfg_set8(d, VPCI_CAP_MSIX + 0, PCI_CAP_ID_MSIX_);
	pci_cfg_set16(d, VPCI_CAP_MSIX + 2, (uint16_t)(vp->nvec - 1));
	pci_cfg_set32(d, VPCI_CAP_MSIX + 4, VPCI_MSIX_TABLE | VPCI_BAR_MSIX);
	pci_cfg_set32(d, VPCI_CAP_MSIX + 8, VPCI_MSIX_PBA | VPCI_BAR_MSIX);
	at = VPCI_CAP_MSIX + 12;
	prev = VPCI_CAP_MSIX;

	caps[n++] = add_vcap(vp, &at, VIRTIO_PCI_CAP_COMMON_CFG, sizeof(struct virtio_pci_cap),
			     VPCI_BAR_CFG, VPCI_COMMON, COMMON_SIZE);
	caps[n++] = add_vcap(vp, &at, VIRTIO_PCI_CAP_ISR_CFG, sizeof(struct virtio_pci_cap),
			     VPCI_BAR_CFG, VPCI_ISR, 1);
	caps[n] = add_vcap(vp, &at, VIRTIO_PCI_CAP_NOTIFY_CFG,
			   sizeof(struct virtio_pci_notify_cap), VPCI_BAR_CFG,
			   VPCI_NOTIFY, VPCI_NOTIFY_MULT * vp->vdev->num_queues);
	pci_cfg_set32(d, caps[n] + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier),
		      VPCI_NOTIFY_MULT);
	n++;
	if (ops->cfg_size)
		caps[n++] = add_vcap(vp, &at, VIRTIO_PCI_CAP_DEVICE_CFG,
				     sizeof(struct virtio_pci_cap), VPCI_BAR_CFG,
				     VPCI_DEVCFG, ops->cfg_size);
	vp->cfgcap_off = caps[n++] = add_vcap(vp, &at, VIRTIO_PCI_CAP_PCI_CFG,
					      sizeof(struct virtio_pci_cfg_cap), 0, 0, 0);
	for (i = 0; i < n; i++) {
		pci_cfg_set8(d, prev + 1, (uint8_t)caps[i]);
		prev = caps[i];
	}

	d->bar_kind[VPCI_BAR_CFG] = PCI_BAR_MEM64;
	d->bar_size[VPCI_BAR_CFG] = VPCI_BAR0_SIZE;
	d->bar_kind[VPCI_BAR_MSIX] = PCI_BAR_MEM32;
	d->bar_size[VPCI_BAR_MSIX] = VPCI_BAR2_SIZE;
}

struct virtio_pci *virtio_pci_new(struct virtio_dev *vdev)
{
	struct virtio_pci *vp;
	unsigned int v, q;

	_Static_assert(VPCI_MAX_VECTORS <= 32, "PBA word");
	_Static_assert(VPCI_MSIX_TABLE + 16 * VPCI_MAX_VECTORS <= VPCI_MSIX_PBA,
		       "MSI-X table fits before the PBA");
	vp = calloc(1, sizeof(*vp));
	if (!vp) {
		log_error("%s: out of memory", vdev->ops->name);
		return NULL;
	}
	vp->vdev = vdev;
	vp->nvec = vdev->num_queues + 1;
	for (v = 0; v < VPCI_MAX_VECTORS; v++)
		vp->vec_fd[v] = -1;
	for (v = 0; v < vp->nvec; v++) {
		vp->vec_fd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (vp->vec_fd[v] < 0) {
			log_error("%s: eventfd: %s", vdev->ops->name, strerror(errno));
			goto out_close_vectors;
		}
		vp->st.msix[v].ctrl = MSIX_ENTRY_MASKED; /* entries start masked */
	}
	vp->st.msix_config = VIRTIO_MSI_NO_VECTOR;
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->st.queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_init(&vp->cfg_lock, NULL);
	pthread_mutex_init(&vp->lock, NULL);
	vp->pdev.ops = &virtio_pci_device_ops;
	vp->pdev.opaque = vp;
	build_config_space(vp);
	vdev->tops = &virtio_pci_transport_ops;
	vdev->transport = vp;
	return vp;

out_close_vectors:
	while (v--)
		close(vp->vec_fd[v]);
	free(vp);
	return NULL;
}

struct pci_device *virtio_pci_pdev(struct virtio_pci *vp)
{
	return &vp->pdev;
}

struct virtio_dev *virtio_pci_vdev(struct virtio_pci *vp)
{
	return vp->vdev;
}

int virtio_pci_attach(struct virtio_pci *vp, struct pci_bus *bus)
{
	/*
	 * No I/O thread yet: the VMM spawns it (virtio_pci_spawn_worker()) after the
	 * jail, which needs a single thread; the first DRIVER_OK spawns it otherwise.
	 */
	int r = pci_bus_add(bus, &vp->pdev);
	if (r) {
		log_error("%s: cannot add to the PCI bus: %s", vp->vdev->ops->name, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&vp->cfg_lock);
	vp->attached = true;
	/* The bus placed BAR 0 itself; it may or may not have told us through bar_remap. */
	move_doorbells(vp, vp->pdev.bar_addr[VPCI_BAR_CFG]);
	pthread_mutex_unlock(&vp->cfg_lock);
	return 0;
}

void virtio_pci_free(struct virtio_pci *vp)
{
	unsigned int v;

	if (!vp)
		return;
	pthread_mutex_lock(&vp->cfg_lock);
	/*
	 * The doorbells first, while their eventfds are open: KVM matches an ioeventfd by
	 * its fd, and one left behind would take the kicks of the next device the guest
	 * places at that address (a hot-plugged one in a freed slot's BAR range).
	 */
	move_doorbells(vp, 0);
	virtio_dev_fini(vp->vdev);
	pthread_mutex_lock(&vp->lock);
	del_routes(vp);
	pthread_mutex_unlock(&vp->lock);
	pthread_mutex_unlock(&vp->cfg_lock);
	for (v = 0; v < vp->nvec; v++)
		close(vp->vec_fd[v]);
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->cfg_lock);
	if (vp->owns_vdev)
		free(vp->vdev);
	free(vp);
}

int virtio_pci_create_on(struct pci_bus *bus, struct virtio_dev *vdev, struct virtio_pci **out)
{
	struct virtio_pci *vp = virtio_pci_new(vdev);
	int r;

	if (!vp) {
		virtio_dev_fini(vdev);
		free(vdev);
		return -ENOMEM;
	}
	vp->owns_vdev = true;
	r = virtio_pci_attach(vp, bus);
	if (r) {
		virtio_pci_free(vp);
		return r;
	}
	if (out)
		*out = vp;
	return 0;
}

int virtio_pci_create_plain(struct pci_bus *bus, const struct guest_mem *mem, const char *opt,
			    const char *spec,
			    int (*init)(struct virtio_dev *vdev, const struct guest_mem *mem),
			    struct virtio_pci **out)
{
	struct virtio_dev *vdev;
	int r;

	if (spec && *spec) {
		log_error("%s: takes no options (got '%s')", opt, spec);
		return -EINVAL;
	}
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev) {
		log_error("%s: out of memory", opt);
		return -ENOMEM;
	}
	r = init(vdev, mem);
	if (r) {
		free(vdev);
		return r;
	}
	return virtio_pci_create_on(bus, vdev, out);
}

/* ---- save / restore ------------------------------------------------------------- */

static bool running_status(uint8_t s)
{
	return (s & VIRTIO_CONFIG_S_DRIVER_OK) && !(s & VIRTIO_CONFIG_S_FAILED);
}

int virtio_pci_save_parked(struct virtio_pci *vp, struct virtio_pci_state *st,
			   int (*parked)(struct virtio_dev *vdev, void *opaque), void *opaque)
{
	struct virtio_dev *vdev = vp->vdev;
	unsigned int q;
	int r = 0, pr = 0;

	pthread_mutex_lock(&vp->cfg_lock);
	virtio_dev_stop(vdev); /* queue indices are stable only with the I/O thread parked */
	pthread_mutex_lock(&vp->lock);
	for (q = 0; q < vdev->num_queues; q++)
		vp->st.queue[q] = vdev->vq[q].st;
	*st = vp->st;
	pthread_mutex_unlock(&vp->lock);
	if (parked)
		pr = parked(vdev, opaque);
	if (running_status(st->status))
		r = virtio_dev_start(vdev);
	pthread_mutex_unlock(&vp->cfg_lock);
	return pr ? pr : r;
}

int virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st)
{
	return virtio_pci_save_parked(vp, st, NULL, NULL);
}

int virtio_pci_load(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	struct virtio_dev *vdev = vp->vdev;
	unsigned int q, v;
	int r = 0;

	/* Check everything before changing anything. */
	if (st->driver_features & ~vdev->host_features)
		return -EINVAL;
	for (v = 0; v < VPCI_MAX_VECTORS; v++)
		if (v >= vp->nvec && (st->pba & (1u << v)))
			return -EINVAL;
	for (q = 0; q < vdev->num_queues; q++) {
		struct virtq probe = vdev->vq[q];

		probe.st = st->queue[q];
		if (!virtq_size_ok(&probe, probe.st.size))
			return -EINVAL;
		if (probe.st.ready && virtq_enable(&probe))
			return -EINVAL;
	}

	pthread_mutex_lock(&vp->cfg_lock);
	virtio_dev_stop(vdev);
	virtio_dev_reset(vdev);
	pthread_mutex_lock(&vp->lock);
	vp->st = *st;
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (q >= vdev->num_queues || vp->st.queue_vector[q] >= vp->nvec)
			vp->st.queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	if (vp->st.msix_config >= vp->nvec)
		vp->st.msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->st.msix_ctrl &= MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL;
	for (v = 0; v < vp->nvec; v++)
		vp->st.msix[v].ctrl &= MSIX_ENTRY_MASKED;
	pci_cfg_set16(&vp->pdev, VPCI_CAP_MSIX + 2,
		      (uint16_t)((vp->nvec - 1) | vp->st.msix_ctrl));
	del_routes(vp);
	if (vp->st.msix_ctrl & MSIX_CTRL_ENABLE)
		add_routes(vp);
	pthread_mutex_unlock(&vp->lock);
	for (q = 0; q < vdev->num_queues; q++) {
		vdev->vq[q].st = st->queue[q];
		if (st->queue[q].ready)
			virtq_enable(&vdev->vq[q]); /* checked above */
	}
	if (st->status & VIRTIO_CONFIG_S_FEATURES_OK)
		vdev->features = st->driver_features;
	if (running_status(st->status))
		r = virtio_dev_start(vdev);
	pthread_mutex_unlock(&vp->cfg_lock);
	return r;
}

size_t virtio_pci_device_state_size(const struct virtio_pci *vp)
{
	return vp->vdev->ops->save ? vp->vdev->ops->state_size : 0;
}

int virtio_pci_device_save(struct virtio_pci *vp, void *state)
{
	const struct virtio_dev_ops *ops = vp->vdev->ops;

	return ops->save ? ops->save(vp->vdev, state) : 0;
}

int virtio_pci_device_load(struct virtio_pci *vp, const void *state)
{
	const struct virtio_dev_ops *ops = vp->vdev->ops;

	return ops->load ? ops->load(vp->vdev, state) : 0;
}

void virtio_pci_set_thread_hook(struct virtio_pci *vp, int (*hook)(void *opaque), void *opaque)
{
	virtio_dev_set_thread_hook(vp->vdev, hook, opaque);
}

void virtio_pci_set_aux_hook(struct virtio_pci *vp, int (*hook)(void *opaque), void *opaque)
{
	vp->vdev->aux_hook = hook;
	vp->vdev->aux_hook_opaque = opaque;
}

int virtio_pci_spawn_worker(struct virtio_pci *vp)
{
	return virtio_dev_spawn(vp->vdev);
}
