// SPDX-License-Identifier: MIT
/* Split virtqueue walker: well-formed chains and every kind of hostile one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake.h"
#include "queue.h"
#include "virtio.h"

#define QSIZE 8
#define RING  0x1000u  /* rings */
#define BUF   0x10000u /* data buffers */
#define TABLE 0x8000u  /* indirect tables */

struct fixture {
	struct fake_mem fm;
	struct drv_vq d;
	struct virtq vq;
	struct virtq_elem elem;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	fake_mem_init(&f->fm);
	drv_vq_setup(&f->d, &f->fm, QSIZE, RING);
	virtq_init(&f->vq, &f->fm.gm, 256);
	f->vq.st.size = QSIZE;
	f->vq.st.desc_gpa = f->d.desc;
	f->vq.st.avail_gpa = f->d.avail;
	f->vq.st.used_gpa = f->d.used;
	if (virtq_enable(&f->vq))
		return -1;
	virtq_set_features(&f->vq, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_mem_fini(&f->fm);
	free(f);
	return 0;
}

/* Pop expecting a broken queue; then make sure it stays broken without reading the ring. */
static void expect_broken(struct fixture *f)
{
	const char *why = NULL;

	assert_int_equal(virtq_pop(&f->vq, &f->elem, &why), -EIO);
	assert_non_null(why);
	assert_true(f->vq.broken);
	/* Even a now-valid ring is not looked at again until reset. */
	drv_set_desc(&f->d, 0, BUF, 16, 0, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), -EIO);
	assert_false(virtq_has_avail(&f->vq));
}

static void test_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 0);
	assert_false(virtq_has_avail(&f->vq));
}

static void test_well_formed_chain(void **state)
{
	struct fixture *f = *state;
	uint32_t id, len;

	memcpy(gpa_ptr(&f->fm, BUF), "hello", 5);
	drv_set_desc(&f->d, 3, BUF, 5, VRING_DESC_F_NEXT, 5);
	drv_set_desc(&f->d, 5, BUF + 0x100, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, BUF + 0x200, 28, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 3);
	assert_true(virtq_has_avail(&f->vq));

	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.head, 3);
	assert_int_equal(f->elem.out_num, 1);
	assert_int_equal(f->elem.in_num, 2);
	assert_int_equal(f->elem.out_len, 5);
	assert_int_equal(f->elem.in_len, 128);
	assert_ptr_equal(f->elem.iov[0].iov_base, gpa_ptr(&f->fm, BUF));
	assert_memory_equal(f->elem.iov[0].iov_base, "hello", 5);
	assert_ptr_equal(f->elem.iov[2].iov_base, gpa_ptr(&f->fm, BUF + 0x200));

	virtq_push(&f->vq, &f->elem, 1000); /* clamped to the writable length */
	assert_int_equal(drv_used_idx(&f->d), 1);
	drv_used_elem(&f->d, 0, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 128);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 0);
}

static void test_ring_wraps(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	/* Three times around the ring, one single-descriptor chain at a time. */
	for (i = 0; i < 3 * QSIZE; i++) {
		uint32_t id, len;

		drv_set_desc(&f->d, i % QSIZE, BUF, 64, VRING_DESC_F_WRITE, 0);
		drv_kick_head(&f->d, i % QSIZE);
		assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
		virtq_push(&f->vq, &f->elem, 7);
		drv_used_elem(&f->d, (uint16_t)i, &id, &len);
		assert_int_equal(id, i % QSIZE);
		assert_int_equal(len, 7);
	}
	assert_int_equal(drv_used_idx(&f->d), 3 * QSIZE);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, BUF, 16, VRING_DESC_F_NEXT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 2, BUF, 16, VRING_DESC_F_NEXT, 2);
	drv_kick_head(&f->d, 2);
	expect_broken(f);
}

static void test_full_length_chain_ok(void **state)
{
	struct fixture *f = *state;
	uint16_t i;

	/* A chain using every descriptor is legal; one more would have to loop. */
	for (i = 0; i < QSIZE; i++)
		drv_set_desc(&f->d, i, BUF + 64u * i, 64,
			     i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	drv_kick_head(&f->d, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.out_num, QSIZE);
	assert_int_equal(f->elem.out_len, 64 * QSIZE);
}

static void test_next_out_of_table(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 16, VRING_DESC_F_NEXT, QSIZE);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_head_out_of_table(void **state)
{
	struct fixture *f = *state;

	drv_kick_head(&f->d, 0xffff);
	expect_broken(f);
}

static void test_avail_idx_jump(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 16, 0, 0);
	drv_set_avail_idx(&f->d, QSIZE + 1);
	expect_broken(f);
}

static void test_addr_outside_ram(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, FAKE_RAM + 0x1000, 16, 0, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_addr_straddles_end_of_ram(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, FAKE_RAM - 8, 16, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_huge_length(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 0xffffffffu, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_addr_wraps(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, 0xfffffffffffffff0ull, 0x20, 0, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, BUF + 16, 16, 0, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_buffer_across_slots(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, FAKE_SLOT0 - 100, 300, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.in_num, 2);
	assert_int_equal(f->elem.iov[0].iov_len, 100);
	assert_int_equal(f->elem.iov[1].iov_len, 200);
	assert_ptr_equal(f->elem.iov[1].iov_base, f->fm.buf[1]);
	assert_int_equal(f->elem.in_len, 300);
}

static void test_zero_length_descriptor(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 0, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, BUF, 8, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.out_num, 0);
	assert_int_equal(f->elem.in_num, 1);
}

static void test_indirect_ok(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE, BUF, 16, VRING_DESC_F_NEXT, 2);
	drv_put_desc(&f->fm, TABLE + 32, BUF + 0x100, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
		     1);
	drv_put_desc(&f->fm, TABLE + 16, BUF + 0x400, 1, VRING_DESC_F_WRITE, 0);
	drv_set_desc(&f->d, 4, TABLE, 48, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 4);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.head, 4);
	assert_int_equal(f->elem.out_num, 1);
	assert_int_equal(f->elem.in_num, 2);
	assert_int_equal(f->elem.in_len, 513);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;

	virtq_set_features(&f->vq, 0);
	drv_put_desc(&f->fm, TABLE, BUF, 16, 0, 0);
	drv_set_desc(&f->d, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE + 0x100, BUF, 16, 0, 0);
	drv_put_desc(&f->fm, TABLE, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	drv_set_desc(&f->d, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, TABLE, 24, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_zero_length(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, TABLE, 0, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_too_long(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, 0, 16 * (VIRTQ_MAX_SEGS + 1), VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_outside_ram(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, FAKE_RAM - 16, 32, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE, BUF, 16, VRING_DESC_F_NEXT, 1);
	drv_put_desc(&f->fm, TABLE + 16, BUF, 16, VRING_DESC_F_NEXT, 0);
	drv_set_desc(&f->d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE, BUF, 16, VRING_DESC_F_NEXT, 2);
	drv_put_desc(&f->fm, TABLE + 16, BUF, 16, 0, 0);
	drv_set_desc(&f->d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE, BUF, 16, 0, 0);
	drv_set_desc(&f->d, 0, TABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, BUF, 16, 0, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_indirect_inside_chain(void **state)
{
	struct fixture *f = *state;

	drv_put_desc(&f->fm, TABLE, BUF, 16, 0, 0);
	drv_set_desc(&f->d, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	drv_set_desc(&f->d, 1, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_too_many_segments(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	/* Every entry straddles the slot boundary: 2 segments each, twice the limit. */
	for (i = 0; i < VIRTQ_MAX_SEGS; i++)
		drv_put_desc(&f->fm, TABLE + 16u * i, FAKE_SLOT0 - 1, 2,
			     i + 1 < VIRTQ_MAX_SEGS ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	drv_set_desc(&f->d, 0, TABLE, 16 * VIRTQ_MAX_SEGS, VRING_DESC_F_INDIRECT, 0);
	drv_kick_head(&f->d, 0);
	expect_broken(f);
}

static void test_enable_checks(void **state)
{
	struct fixture *f = *state;
	struct virtq vq;

	virtq_init(&vq, &f->fm.gm, 256);
	assert_false(virtq_size_ok(&vq, 0));
	assert_false(virtq_size_ok(&vq, 3));
	assert_false(virtq_size_ok(&vq, 100));
	assert_false(virtq_size_ok(&vq, 512));
	assert_true(virtq_size_ok(&vq, 1));
	assert_true(virtq_size_ok(&vq, 256));

	vq.st.desc_gpa = RING;
	vq.st.avail_gpa = RING + 0x1000;
	vq.st.used_gpa = RING + 0x2000;
	vq.st.size = 100;
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	assert_false(vq.st.ready);
	vq.st.size = 256;
	vq.st.desc_gpa = RING + 8; /* descriptors need 16-byte alignment */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.st.desc_gpa = RING;
	vq.st.used_gpa = RING + 0x2002; /* used ring needs 4 */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.st.used_gpa = FAKE_RAM - 16; /* used ring runs past the end of RAM */
	assert_int_equal(virtq_enable(&vq), -EFAULT);
	vq.st.used_gpa = RING + 0x2000;
	vq.st.avail_gpa = 0xfffffffffffffffeull;
	assert_int_equal(virtq_enable(&vq), -EFAULT);
	assert_false(vq.st.ready);
	vq.st.avail_gpa = RING + 0x1000;
	assert_int_equal(virtq_enable(&vq), 0);
	assert_true(vq.st.ready);

	/* A queue that is not ready has nothing to give. */
	virtq_reset(&vq);
	assert_int_equal(virtq_pop(&vq, &f->elem, NULL), 0);
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_push(&f->vq, &f->elem, 8);
	assert_true(virtq_should_notify(&f->vq));
	*drv_avail_field(&f->d, 0) = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(virtq_should_notify(&f->vq));

	/* Kick suppression without EVENT_IDX goes through used->flags. */
	virtq_disable_notify(&f->vq);
	assert_int_equal(drv_used_flags(&f->d), VRING_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_notify(&f->vq));
	assert_int_equal(drv_used_flags(&f->d), 0);
	drv_kick_head(&f->d, 0);
	virtq_disable_notify(&f->vq);
	assert_true(virtq_enable_notify(&f->vq)); /* a chain arrived meanwhile */
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	virtq_set_features(&f->vq, 1ULL << VIRTIO_RING_F_EVENT_IDX);
	for (i = 0; i < 4; i++) {
		drv_set_desc(&f->d, (uint16_t)i, BUF, 8, VRING_DESC_F_WRITE, 0);
		drv_kick_head(&f->d, (uint16_t)i);
	}
	/* The driver wants an interrupt once used_idx passes 2 (i.e. after the 3rd). */
	drv_set_used_event(&f->d, 2);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_push(&f->vq, &f->elem, 8);
	assert_true(virtq_should_notify(&f->vq)); /* first interrupt always goes */
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_push(&f->vq, &f->elem, 8); /* used 2: event 2 not yet crossed */
	assert_false(virtq_should_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_push(&f->vq, &f->elem, 8); /* used 3: crossed 2 */
	assert_true(virtq_should_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_push(&f->vq, &f->elem, 8);
	assert_false(virtq_should_notify(&f->vq)); /* event stays behind */

	/* avail_event tells the driver which index to kick at. */
	assert_false(virtq_enable_notify(&f->vq));
	assert_int_equal(drv_avail_event(&f->d), 4);
	drv_set_desc(&f->d, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	assert_true(virtq_enable_notify(&f->vq));
}

static void test_unpop(void **state)
{
	struct fixture *f = *state;

	drv_set_desc(&f->d, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	drv_kick_head(&f->d, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	virtq_unpop(&f->vq);
	assert_true(virtq_has_avail(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->elem, NULL), 1);
	assert_int_equal(f->elem.head, 0);
}

static void test_iov_helpers(void **state)
{
	char a[4] = "abcd", b[3] = "efg", out[8] = { 0 };
	struct iovec iov[2] = { { a, 4 }, { b, 3 } }, sl[2];
	int n;

	(void)state;
	assert_int_equal(iov_size(iov, 2), 7);
	assert_int_equal(iov_to_buf(iov, 2, 2, out, 8), 5);
	assert_memory_equal(out, "cdefg", 5);
	assert_int_equal(buf_to_iov(iov, 2, 3, "XYZ", 3), 3);
	assert_memory_equal(a, "abcX", 4);
	assert_memory_equal(b, "YZg", 3);
	assert_int_equal(buf_to_iov(iov, 2, 7, "Q", 1), 0);

	n = iov_slice(iov, 2, 1, 4, sl, 2);
	assert_int_equal(n, 2);
	assert_ptr_equal(sl[0].iov_base, a + 1);
	assert_int_equal(sl[0].iov_len, 3);
	assert_int_equal(sl[1].iov_len, 1);
	assert_int_equal(iov_slice(iov, 2, 1, 4, sl, 1), -E2BIG);
	assert_int_equal(iov_slice(iov, 2, 5, 4, sl, 2), -ERANGE);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_well_formed_chain),
		T(test_ring_wraps),
		T(test_loop),
		T(test_self_loop),
		T(test_full_length_chain_ok),
		T(test_next_out_of_table),
		T(test_head_out_of_table),
		T(test_avail_idx_jump),
		T(test_addr_outside_ram),
		T(test_addr_straddles_end_of_ram),
		T(test_huge_length),
		T(test_addr_wraps),
		T(test_readable_after_writable),
		T(test_buffer_across_slots),
		T(test_zero_length_descriptor),
		T(test_indirect_ok),
		T(test_indirect_not_negotiated),
		T(test_indirect_nested),
		T(test_indirect_bad_length),
		T(test_indirect_zero_length),
		T(test_indirect_too_long),
		T(test_indirect_outside_ram),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_table),
		T(test_indirect_with_next),
		T(test_indirect_inside_chain),
		T(test_too_many_segments),
		T(test_enable_checks),
		T(test_no_interrupt_flag),
		T(test_event_idx),
		T(test_unpop),
		cmocka_unit_test(test_iov_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
