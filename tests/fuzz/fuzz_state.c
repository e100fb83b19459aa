// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the state reader. Two modes, by the first byte:
 *  '#': the rest is one section's payload, wrapped here into a container with valid
 *       checksums (header, section, end), so that mutations reach the field parser
 *       instead of dying at the first crc check;
 *  anything else: the bytes are the container itself (headers, lengths, checksums).
 * Every section is read with the getter its tags call for.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "state.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_fields(struct state_reader *r)
{
	uint8_t small[64];
	const void *p;
	uint64_t v64;
	uint32_t v32, n;
	uint16_t v16;
	uint8_t v8;
	bool b;
	int tag, ret = 0;

	while (!ret && (tag = state_peek_tag(r)) >= 0) {
		switch (tag) {
		case STATE_TAG_U8:
			/* Alternate the plain and the boolean getter. */
			ret = (state_reader_remaining(r) & 1) ? state_get_bool(r, &b)
							      : state_get_u8(r, &v8);
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

static uint32_t crc(uint32_t seed, const uint8_t *p, size_t n)
{
	return n ? (uint32_t)crc32_z(seed, p, n) : seed;
}

/* Append a section (header, payload, checksum) at out + *pos. */
static void put_section(uint8_t *out, size_t *pos, const char *type, const uint8_t *pl, size_t plen)
{
	uint8_t *h = out + *pos;
	uint32_t hcrc;

	put_le(h, STATE_SECTION_MAGIC, 4);
	memset(h + 4, 0, 16);
	memcpy(h + 4, type, strlen(type));
	put_le(h + 20, 0, 4);
	put_le(h + 24, 0, 4);
	put_le(h + 28, plen, 8);
	hcrc = crc(0, h, 36);
	put_le(h + 36, hcrc, 4);
	memcpy(h + STATE_SECTION_HDR, pl, plen);
	put_le(h + STATE_SECTION_HDR + plen, crc(hcrc, pl, plen), 4);
	*pos += STATE_SECTION_HDR + plen + 4;
}

/* header + section "dev" holding payload + a valid end; malloc'd, length in *len. */
static uint8_t *wrap(const uint8_t *payload, size_t plen, size_t *len)
{
	uint8_t *out = malloc(STATE_HEADER_SIZE + 2 * (STATE_SECTION_HDR + 4) + plen + 23);
	uint8_t end[23];
	size_t pos = STATE_HEADER_SIZE;

	if (!out)
		return NULL;
	memcpy(out, STATE_MAGIC, 8);
	put_le(out + 8, STATE_FORMAT_VERSION, 4);
	put_le(out + 12, STATE_HEADER_SIZE, 4);
	put_le(out + 16, 0, 4);
	put_le(out + 20, crc(0, out, 20), 4);
	put_section(out, &pos, "dev", payload, plen);
	end[0] = STATE_TAG_U64;
	put_le(end + 1, 1, 8);
	end[9] = STATE_TAG_U64;
	put_le(end + 10, pos, 8);
	end[18] = STATE_TAG_U32;
	put_le(end + 19, crc(0, out, pos), 4);
	put_section(out, &pos, "end", end, sizeof(end));
	*len = pos;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_reader *r;
	uint8_t *wrapped = NULL;

	if (size && data[0] == '#') {
		if (size - 1 > STATE_SECTION_MAX)
			return 0;
		wrapped = wrap(data + 1, size - 1, &size);
		if (!wrapped)
			return 0;
		data = wrapped;
	}
	r = state_reader_new_mem(data, size, "fuzz");
	if (r) {
		while (state_reader_next_section(r) == 1) {
			if (state_reader_flags(r) & STATE_SECTION_OPTIONAL)
				state_reader_skip_section(r);
			else
				read_fields(r);
		}
		state_reader_free(r);
	}
	free(wrapped);
	return 0;
}
