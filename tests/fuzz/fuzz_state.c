// SPDX-License-Identifier: MIT
/* libFuzzer target: the state reader over arbitrary bytes, reading every section's
 * fields with the getter its tags call for, so payload parsing is exercised too. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_fields(struct state_reader *r)
{
	uint8_t small[64];
	const void *p;
	uint64_t v64;
	uint32_t v32, n;
	uint16_t v16;
	uint8_t v8;
	int tag, ret = 0;

	while (!ret && (tag = state_peek_tag(r)) >= 0) {
		switch (tag) {
		case STATE_TAG_U8:
			ret = state_get_u8(r, &v8);
			break;
		case STATE_TAG_U16:
			ret = state_get_u16(r, &v16);
			break;
		case STATE_TAG_U32:
			ret = state_get_u32(r, &v32);
			break;
		case STATE_TAG_U64:
			ret = state_get_u64(r, &v64);
			break;
		case STATE_TAG_BYTES:
			/* Alternate the copying and the zero-copy getter. */
			if (state_reader_remaining(r) & 1)
				ret = state_get_bytes_var(r, small, sizeof(small), &n);
			else
				ret = state_get_bytes_ref(r, &p, &n);
			break;
		default:
			ret = state_get_u8(r, &v8); /* refused: wrong tag */
			break;
		}
	}
	if (!ret)
		state_reader_end_section(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_reader *r = state_reader_new_mem(data, size, "fuzz");

	if (!r)
		return 0;
	while (state_reader_next_section(r) == 1) {
		if (state_reader_flags(r) & STATE_SECTION_OPTIONAL)
			state_reader_skip_section(r);
		else
			read_fields(r);
	}
	state_reader_free(r);
	return 0;
}
