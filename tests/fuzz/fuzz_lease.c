// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: a disk's lease record (IMAGE.lease, vmm/lease.h), which sits on
 * storage other hosts write: lease_parse must take any bytes, and a record it accepts
 * must come back the same through lease_format. The same input, NUL-terminated, is
 * also --epoch's argument.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_config cfg = { .nr_devices = 0 };
	char out[LEASE_RECORD_MAX + 64], *arg;
	struct lease_rec rec, again;
	int n;

	if (lease_parse((const char *)data, size, &rec) == 0 && rec.owner[0]) {
		n = lease_format(&rec, out, sizeof(out));
		if (n < 0 || lease_parse(out, (size_t)n, &again) ||
		    memcmp(&rec, &again, sizeof(rec)))
			abort();
	}
	arg = malloc(size + 1);
	if (!arg)
		return 0;
	memcpy(arg, data, size);
	arg[size] = '\0';
	if (lease_parse_epoch_opt(arg, &cfg) == 0 && cfg.lease_epoch_vm &&
	    strlen(cfg.lease_epoch_vm) >= LEASE_VM_MAX)
		abort();
	free(arg);
	return 0;
}
