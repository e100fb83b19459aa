// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the machine's config of PUT /v1/vm/config (machine.h), as the
 * API hands it on: any JSON object, through the machine's keys and every device
 * class's parser (dev_config_parse_json), ids and slots (dev_configs_finish), and
 * back out as GET /v1/vm shows it.
 */
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct machine_conf mc;
	struct log_capture cap;
	json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);

	if (!json_is_object(obj)) {
		json_decref(obj);
		return 0;
	}
	log_capture_begin(&cap); /* the refusals' lines, not the fuzzer's stderr */
	if (!machine_conf_parse_json(obj, &mc)) {
		json_decref(machine_config_json(&mc.cfg));
		machine_conf_free(&mc);
	}
	log_capture_end(&cap);
	json_decref(obj);
	return 0;
}
