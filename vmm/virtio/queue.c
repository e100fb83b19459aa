// SPDX-License-Identifier: MIT
/* Split virtqueue, device side: see queue.h for the invariants. */
#include "queue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "util.h"

/* Guest ring layouts (little-endian, virtio 1.x section 2.7). */
struct vring_desc_le {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail_le {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries, then used_event */
};

struct vring_used_elem_le {
	uint32_t id;
	uint32_t len;
};

struct vring_used_le {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem_le ring[]; /* size entries, then avail_event */
};

_Static_assert(sizeof(struct vring_desc_le) == 16, "descriptor layout");
_Static_assert(sizeof(struct vring_used_elem_le) == 8, "used element layout");

/* Guest-shared 16-bit fields: single accesses the compiler may not split or repeat. */
static inline uint16_t load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint16_t load16_acquire(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store16_release(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

static inline void full_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->max_size = max_size;
	vq->st.size = max_size;
}

void virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->mem, vq->max_size);
}

bool virtq_size_ok(const struct virtq *vq, uint64_t size)
{
	return is_pow2(size) && size <= vq->max_size;
}

int virtq_enable(struct virtq *vq)
{
	uint64_t n = vq->st.size;
	void *desc, *avail, *used;

	if (!virtq_size_ok(vq, n))
		return -EINVAL;
	if ((vq->st.desc_gpa & (VRING_DESC_ALIGN_SIZE - 1)) ||
	    (vq->st.avail_gpa & (VRING_AVAIL_ALIGN_SIZE - 1)) ||
	    (vq->st.used_gpa & (VRING_USED_ALIGN_SIZE - 1)))
		return -EINVAL;
	/* Sizes include used_event / avail_event, present whether or not EVENT_IDX is used. */
	desc = guest_mem_ptr(vq->mem, vq->st.desc_gpa, 16 * n);
	avail = guest_mem_ptr(vq->mem, vq->st.avail_gpa, 6 + 2 * n);
	used = guest_mem_ptr(vq->mem, vq->st.used_gpa, 6 + 8 * n);
	if (!desc || !avail || !used)
		return -EFAULT;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->broken = false;
	vq->st.ready = 1;
	return 0;
}

void virtq_set_features(struct virtq *vq, uint64_t features)
{
	vq->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

static int queue_broken(struct virtq *vq, const char **why, const char *reason)
{
	vq->broken = true;
	if (why)
		*why = reason;
	return -EIO;
}

/*
 * Append the guest range [gpa, gpa+len) to elem as host segments, splitting it at
 * memory slot boundaries. -EFAULT if any byte is outside guest RAM, -E2BIG if the
 * element runs out of segments.
 */
static int map_range(const struct guest_mem *mem, uint64_t gpa, uint32_t len,
		     struct virtq_elem *elem, unsigned int *added)
{
	uint64_t left = len;

	*added = 0;
	while (left) {
		const struct guest_mem_slot *s = NULL;
		unsigned int i, n = elem->out_num + elem->in_num + *added;
		uint64_t piece;
		void *p;

		for (i = 0; i < mem->nr_slots; i++) {
			if (gpa - mem->slot[i].gpa < mem->slot[i].size) {
				s = &mem->slot[i];
				break;
			}
		}
		if (!s)
			return -EFAULT;
		piece = MIN(left, s->size - (gpa - s->gpa));
		p = guest_mem_ptr(mem, gpa, piece);
		if (!p)
			return -EFAULT;
		if (n >= VIRTQ_MAX_SEGS)
			return -E2BIG;
		elem->iov[n].iov_base = p;
		elem->iov[n].iov_len = piece;
		++*added;
		left -= piece;
		gpa += piece; /* cannot wrap: the slot check above bounded it */
	}
	return 0;
}

/* Add one (non-indirect) descriptor's buffer to elem, enforcing out-before-in order. */
static int add_desc(struct virtq *vq, const struct vring_desc_le *d, struct virtq_elem *elem,
		    const char **why)
{
	uint16_t flags = le16toh(d->flags);
	uint32_t len = le32toh(d->len);
	uint64_t addr = le64toh(d->addr);
	unsigned int added;
	int r;

	if (!(flags & VRING_DESC_F_WRITE) && elem->in_num)
		return queue_broken(vq, why, "readable descriptor after a writable one");
	r = map_range(vq->mem, addr, len, elem, &added);
	if (r == -E2BIG)
		return queue_broken(vq, why, "chain has too many segments");
	if (r)
		return queue_broken(vq, why, "descriptor buffer outside guest memory");
	if (flags & VRING_DESC_F_WRITE) {
		elem->in_num += added;
		elem->in_len += len;
	} else {
		elem->out_num += added;
		elem->out_len += len;
	}
	return 0;
}

/* Walk an indirect table (invariant 2: no nesting, bounded by the table length). */
static int walk_indirect(struct virtq *vq, const struct vring_desc_le *ind,
			 struct virtq_elem *elem, const char **why)
{
	uint64_t addr = le64toh(ind->addr);
	uint32_t len = le32toh(ind->len);
	unsigned int count, i, visited;
	const uint8_t *table;
	int r;

	if (!vq->indirect)
		return queue_broken(vq, why, "indirect descriptor without INDIRECT_DESC");
	if (le16toh(ind->flags) & VRING_DESC_F_NEXT)
		return queue_broken(vq, why, "descriptor has both INDIRECT and NEXT");
	if (len == 0 || len % sizeof(struct vring_desc_le))
		return queue_broken(vq, why, "indirect table length not a multiple of 16");
	count = len / sizeof(struct vring_desc_le);
	if (count > VIRTQ_MAX_SEGS)
		return queue_broken(vq, why, "indirect table too long");
	table = guest_mem_ptr(vq->mem, addr, len);
	if (!table)
		return queue_broken(vq, why, "indirect table outside guest memory");

	for (i = 0, visited = 0;; visited++) {
		struct vring_desc_le d;
		uint16_t flags;

		if (visited >= count)
			return queue_broken(vq, why, "indirect chain loops");
		/* Copy once: the guest may rewrite the table while we look at it. */
		memcpy(&d, table + (size_t)i * sizeof(d), sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT)
			return queue_broken(vq, why, "nested indirect table");
		r = add_desc(vq, &d, elem, why);
		if (r)
			return r;
		if (!(flags & VRING_DESC_F_NEXT))
			return 0;
		i = le16toh(d.next);
		if (i >= count)
			return queue_broken(vq, why, "indirect next index out of table");
	}
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!vq->st.ready || vq->broken)
		return false;
	return load16_acquire(&vq->avail->idx) != vq->st.last_avail;
}

int virtq_pop(struct virtq *vq, struct virtq_elem *elem, const char **why)
{
	uint16_t size = vq->st.size, avail_idx, head, i;
	unsigned int visited;
	int r;

	if (why)
		*why = NULL;
	if (vq->broken)
		return -EIO;
	if (!vq->st.ready)
		return 0;
	/* Acquire: ring entries below idx are read only after idx (invariant 4). */
	avail_idx = load16_acquire(&vq->avail->idx);
	if (avail_idx == vq->st.last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vq->st.last_avail) > size)
		return queue_broken(vq, why, "avail index moved by more than the queue size");

	head = load16(&vq->avail->ring[vq->st.last_avail & (size - 1)]);
	if (head >= size)
		return queue_broken(vq, why, "head index out of descriptor table");
	elem->head = head;
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;

	for (i = head, visited = 0;; visited++) {
		struct vring_desc_le d;
		uint16_t flags;

		if (visited >= size)
			return queue_broken(vq, why, "chain longer than the queue (loop)");
		memcpy(&d, &vq->desc[i], sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT) {
			/* An indirect descriptor must be the only one in its chain. */
			if (visited)
				return queue_broken(vq, why, "indirect descriptor inside a chain");
			r = walk_indirect(vq, &d, elem, why);
			if (r)
				return r;
			break;
		}
		r = add_desc(vq, &d, elem, why);
		if (r)
			return r;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= size)
			return queue_broken(vq, why, "next index out of descriptor table");
	}
	vq->st.last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *vq)
{
	vq->st.last_avail--;
}

void virtq_fill(struct virtq *vq, uint16_t head, uint32_t len, uint16_t offset)
{
	struct vring_used_elem_le *u;

	if (!vq->st.ready || vq->broken)
		return;
	u = &vq->used->ring[(uint16_t)(vq->st.used_idx + offset) & (vq->st.size - 1)];
	__atomic_store_n(&u->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&u->len, htole32(len), __ATOMIC_RELAXED);
}

void virtq_flush(struct virtq *vq, uint16_t count)
{
	if (!vq->st.ready || vq->broken)
		return;
	vq->st.used_idx += count;
	/* Release: the elements are visible before the index that publishes them. */
	store16_release(&vq->used->idx, vq->st.used_idx);
}

void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t written)
{
	if (written > elem->in_len)
		written = (uint32_t)MIN(elem->in_len, UINT32_MAX);
	virtq_fill(vq, elem->head, written, 0);
	virtq_flush(vq, 1);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, new, event;
	bool valid;

	if (!vq->st.ready || vq->broken)
		return false;
	/* used->idx must be visible before we read the driver's suppression state. */
	full_fence();
	if (!vq->event_idx)
		return !(load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

	old = vq->st.signalled_used;
	new = vq->st.used_idx;
	valid = vq->st.signalled_valid;
	if (valid && old == new)
		return false; /* nothing new since the last interrupt */
	vq->st.signalled_used = new;
	vq->st.signalled_valid = 1;
	if (!valid)
		return true;
	event = load16(&vq->avail->ring[vq->st.size]); /* used_event */
	/* vring_need_event: interrupt if event lies in [old, new). */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

void virtq_disable_notify(struct virtq *vq)
{
	if (!vq->st.ready || vq->broken)
		return;
	if (!vq->event_idx)
		store16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
	/* With EVENT_IDX, leaving avail_event behind last_avail suppresses kicks. */
}

bool virtq_enable_notify_after(struct virtq *vq, uint16_t seen)
{
	if (!vq->st.ready || vq->broken)
		return false;
	if (vq->event_idx)
		store16((uint16_t *)&vq->used->ring[vq->st.size], seen); /* avail_event */
	else
		store16(&vq->used->flags, 0);
	/* Publish the re-arm before looking again, or a kick in between is lost. */
	full_fence();
	return load16_acquire(&vq->avail->idx) != seen;
}

bool virtq_enable_notify(struct virtq *vq)
{
	return virtq_enable_notify_after(vq, vq->st.last_avail);
}

size_t iov_size(const struct iovec *iov, unsigned int n)
{
	size_t total = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t off, void *buf, size_t len)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = MIN(iov[i].iov_len - off, len - done);
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t buf_to_iov(const struct iovec *iov, unsigned int n, size_t off, const void *buf,
		  size_t len)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = MIN(iov[i].iov_len - off, len - done);
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)buf + done, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}
