// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the "config" section a snapshot or a migration stream starts
 * with (vm_state_read_config), and its check against the machine a destination
 * built from its own command line (vm_state_check_config: a hostile stream naming
 * other devices, /dev/sda as a disk, more vCPUs). The input is the section's
 * payload, wrapped here into a container with valid checksums so mutations reach
 * the field parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"
#include "vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc(uint32_t seed, const uint8_t *p, size_t n)
{
	return n ? (uint32_t)crc32_z(seed, p, n) : seed;
}

static void put_section(uint8_t *out, size_t *pos, const char *type, const uint8_t *pl, size_t plen)
{
	uint8_t *h = out + *pos;
	uint32_t hcrc;

	put_le(h, STATE_SECTION_MAGIC, 4);
	memset(h + 4, 0, 16);
	memcpy(h + 4, type, strlen(type));
	put_le(h + 20, 0, 8);
	put_le(h + 28, plen, 8);
	hcrc = crc(0, h, 36);
	put_le(h + 36, hcrc, 4);
	memcpy(h + STATE_SECTION_HDR, pl, plen);
	put_le(h + STATE_SECTION_HDR + plen, crc(hcrc, pl, plen), 4);
	*pos += STATE_SECTION_HDR + plen + 4;
}

/* The payload as a section of type type ("config" before device ids, "config.2"). */
static void read_as(const char *type, const uint8_t *data, size_t size)
{
	struct vm_saved_config saved;
	struct state_reader *r;
	size_t pos = STATE_HEADER_SIZE;
	uint8_t end[23], *out;

	out = malloc(STATE_HEADER_SIZE + 2 * (STATE_SECTION_HDR + 4) + size + sizeof(end));
	if (!out)
		return;
	memcpy(out, STATE_MAGIC, 8);
	put_le(out + 8, STATE_FORMAT_VERSION, 4);
	put_le(out + 12, STATE_HEADER_SIZE, 4);
	put_le(out + 16, 0, 4);
	put_le(out + 20, crc(0, out, 20), 4);
	put_section(out, &pos, type, data, size);
	end[0] = STATE_TAG_U64;
	put_le(end + 1, 1, 8);
	end[9] = STATE_TAG_U64;
	put_le(end + 10, pos, 8);
	end[18] = STATE_TAG_U32;
	put_le(end + 19, crc(0, out, pos), 4);
	put_section(out, &pos, "end", end, sizeof(end));
	r = state_reader_new_mem(out, pos, "fuzz");
	if (r) {
		vm_state_read_config(r, &saved);
		vm_saved_config_free(&saved);
		state_reader_free(r);
	}
	r = state_reader_new_mem(out, pos, "fuzz");
	if (r) {
		/* What this side's command line built: the stream may only match it. */
		struct vm_config mine = { .cpus = 2, .memory = 512u << 20 };

		if (!dev_config_parse_kv(&dev_class_disk, "path=/srv/a.qcow2,id=os",
					 &mine.devices[mine.nr_devices]))
			mine.nr_devices++;
		if (!dev_config_parse_kv(dev_class_find("net"), "tap=tap0,addr=5",
					 &mine.devices[mine.nr_devices]))
			mine.nr_devices++;
		if (!dev_config_parse_kv(dev_class_find("rng"), NULL, &mine.devices[mine.nr_devices]))
			mine.nr_devices++;
		if (!dev_configs_finish(mine.devices, mine.nr_devices))
			vm_state_check_config(r, &mine);
		dev_configs_free(mine.devices, mine.nr_devices);
		state_reader_free(r);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	read_as("config", data, size);
	read_as("config.2", data, size);
	return 0;
}
