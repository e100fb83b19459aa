// SPDX-License-Identifier: MIT
/*
 * The split virtqueue walker on arbitrary rings, descriptors and indirect tables:
 * pops until empty or broken (bounded), checking every segment lies in guest RAM,
 * pushes, and runs the notification suppression paths.
 */
#include <stdint.h>
#include <stdlib.h>

#include "virtio_harness.h"

static bool in_ram(const struct fz *f, const struct iovec *v)
{
	const uint8_t *p = v->iov_base;

	return (p >= f->ram0 && p + v->iov_len <= f->ram0 + FZ_RAM0) ||
	       (p >= f->ram1 && p + v->iov_len <= f->ram1 + FZ_RAM1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_elem elem;
	struct fz *f = fz_load(data, size);
	struct virtq vq;
	unsigned int i, k;

	virtq_init(&vq, &f->gm, 64);
	vq.st.size = (uint16_t)(1u << (fz_byte(data, size, 0) % 7));
	vq.st.desc_gpa = 0x100;
	vq.st.avail_gpa = 0x600;
	vq.st.used_gpa = 0x900;
	if (virtq_enable(&vq))
		return 0;
	virtq_set_features(&vq, fz_ring_features(data, size));
	/* A bounded number of pops: a ring must never make the device loop. */
	for (i = 0; i < 2u * vq.st.size + 2; i++) {
		int r;

		virtq_disable_notify(&vq);
		r = virtq_pop(&vq, &elem, NULL);
		if (r <= 0)
			break;
		if (elem.out_num + elem.in_num > VIRTQ_MAX_SEGS)
			abort();
		for (k = 0; k < elem.out_num + elem.in_num; k++)
			if (!in_ram(f, &elem.iov[k]))
				abort();
		if (iov_size(elem.iov, elem.out_num) != elem.out_len ||
		    iov_size(elem.iov + elem.out_num, elem.in_num) != elem.in_len)
			abort();
		virtq_push(&vq, &elem, (uint32_t)elem.in_len);
		(void)virtq_should_notify(&vq);
		(void)virtq_enable_notify(&vq);
	}
	return 0;
}
