// SPDX-License-Identifier: MIT
#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	return -pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	free(b->r);
	b->r = NULL;
	b->n = b->cap = 0;
	pthread_rwlock_destroy(&b->lock);
}

/* Index of the first range whose end is above addr (caller holds the lock). */
static size_t bus_lower_bound(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &b->r[mid];

		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_dev_ops *ops,
		 void *opaque)
{
	uint64_t end;
	size_t i;
	int ret = 0;

	if (!len || add_overflow(base, len, &end) || !ops)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	i = bus_lower_bound(b, base);
	if (i < b->n && b->r[i].base < end) {
		ret = -EEXIST;
		goto out_unlock;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bus_range *r = realloc(b->r, cap * sizeof(*r));

		if (!r) {
			ret = -ENOMEM;
			goto out_unlock;
		}
		b->r = r;
		b->cap = cap;
	}
	memmove(&b->r[i + 1], &b->r[i], (b->n - i) * sizeof(b->r[0]));
	b->r[i] = (struct bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque};
	b->n++;
out_unlock:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base, void *opaque)
{
	size_t i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	i = bus_lower_bound(b, base);
	if (i < b->n && b->r[i].base == base && b->r[i].opaque == opaque) {
		memmove(&b->r[i], &b->r[i + 1], (b->n - i - 1) * sizeof(b->r[0]));
		b->n--;
		ret = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned int len, bool write)
{
	struct bus_range r;
	bool found = false;
	size_t i;

	pthread_rwlock_rdlock(&b->lock);
	i = bus_lower_bound(b, addr);
	if (i < b->n && b->r[i].base <= addr && len <= b->r[i].len - (addr - b->r[i].base)) {
		r = b->r[i];
		found = true;
	}
	pthread_rwlock_unlock(&b->lock);

	if (!found) {
		if (!write)
			memset(data, 0xff, len);
		return false;
	}
	if (write) {
		if (r.ops->write)
			r.ops->write(r.opaque, addr - r.base, data, len);
	} else if (r.ops->read) {
		r.ops->read(r.opaque, addr - r.base, data, len);
	} else {
		memset(data, 0xff, len);
	}
	return true;
}

bool bus_access_would_hit(struct bus *b, uint64_t addr)
{
	bool hit;
	size_t i;

	pthread_rwlock_rdlock(&b->lock);
	i = bus_lower_bound(b, addr);
	hit = i < b->n && b->r[i].base <= addr;
	pthread_rwlock_unlock(&b->lock);
	return hit;
}
