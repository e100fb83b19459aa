/* SPDX-License-Identifier: MIT */
/*
 * A device driven without a transport: the test configures its queues directly
 * and calls its handle op on the test's thread, and a fake transport counts the
 * interrupts and "needs reset" requests the device makes.
 */
#ifndef PLINTH_TESTS_VIRTIO_FAKE_DEV_H
#define PLINTH_TESTS_VIRTIO_FAKE_DEV_H

#include "fake.h"
#include "virtio.h"

struct fake_transport {
	unsigned int notifies[VIRTIO_MAX_QUEUES];
	unsigned int config_changes;
	unsigned int resets;
};

static inline void ft_notify_queue(struct virtio_dev *vdev, unsigned int q)
{
	((struct fake_transport *)vdev->transport)->notifies[q]++;
}

static inline void ft_notify_config(struct virtio_dev *vdev)
{
	((struct fake_transport *)vdev->transport)->config_changes++;
}

static inline void ft_needs_reset(struct virtio_dev *vdev)
{
	((struct fake_transport *)vdev->transport)->resets++;
}

static const struct virtio_transport_ops fake_transport_ops = {
	.notify_queue = ft_notify_queue,
	.notify_config = ft_notify_config,
	.needs_reset = ft_needs_reset,
};

/*
 * Attach the fake transport, negotiate `features` (masked by the offer), and lay
 * out queue q's rings at base + q * 0x4000 with `size` entries.
 */
static inline int fake_dev_setup(struct virtio_dev *vdev, struct fake_transport *ft,
				 struct fake_mem *fm, struct drv_vq *dq, uint64_t features,
				 uint16_t size, uint64_t base)
{
	unsigned int q;

	vdev->tops = &fake_transport_ops;
	vdev->transport = ft;
	vdev->features = vdev->host_features & features;
	for (q = 0; q < vdev->num_queues; q++) {
		struct virtq *vq = &vdev->vq[q];

		drv_vq_setup(&dq[q], fm, size, base + 0x4000u * q);
		vq->st.size = size;
		vq->st.desc_gpa = dq[q].desc;
		vq->st.avail_gpa = dq[q].avail;
		vq->st.used_gpa = dq[q].used;
		virtq_set_features(vq, vdev->features);
		if (virtq_enable(vq))
			return -1;
	}
	return 0;
}

#endif
