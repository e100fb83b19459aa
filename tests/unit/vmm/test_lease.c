// SPDX-License-Identifier: MIT
/* Disk leases: recorded next to writable images, checked before a source takes a guest back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lease.h"

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Append a device parsed as the command line would. */
static void add_device(struct vm_config *cfg, const char *kind, const char *spec)
{
	assert_int_equal(dev_config_parse_kv(dev_class_find(kind), spec,
					     &cfg->devices[cfg->nr_devices]), 0);
	cfg->nr_devices++;
	assert_int_equal(dev_configs_finish(cfg->devices, cfg->nr_devices), 0);
}

static void test_take_and_check(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", rw[64], ro[64], spec_rw[96], spec_ro[96];
	char lease[96], err[256], me[LEASE_OWNER_MAX];
	struct vm_config cfg = { .nr_devices = 0 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(rw, sizeof(rw), "%s/a.raw", dir);
	snprintf(ro, sizeof(ro), "%s/b.raw", dir);
	snprintf(spec_rw, sizeof(spec_rw), "path=%s,format=raw,id=os", rw);
	snprintf(spec_ro, sizeof(spec_ro), "path=%s,format=raw,readonly=on", ro);
	add_device(&cfg, "rng", NULL);
	add_device(&cfg, "disk", spec_rw);
	add_device(&cfg, "disk", spec_ro);
	assert_int_equal(lease_owner_self(me, sizeof(me)), 0);
	assert_non_null(strstr(me, " pid="));

	/* No record yet: nobody took the disks over. */
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0);
	lease_take(&cfg, me);
	assert_int_equal(lease_path(rw, lease, sizeof(lease)), 0);
	assert_int_equal(access(lease, R_OK), 0);
	assert_int_equal(lease_path(ro, lease, sizeof(lease)), 0);
	assert_int_equal(access(lease, F_OK), -1); /* a read-only disk is shared: no lease */
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0);

	/* A destination took the writable disk over. */
	assert_int_equal(lease_path(rw, lease, sizeof(lease)), 0);
	write_text(lease, "other-host pid=7 start=1\n");
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "disk 'os' is now leased to 'other-host pid=7 start=1' (the "
				 "destination took it over and may run the guest)");
	/* Taking it again records us. */
	lease_take(&cfg, me);
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0);

	unlink(lease);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(dir);
}

/*
 * Records opened at start-up (lease_open) are taken and checked through their fds:
 * still so once the directory's path is gone (a jail hides it). An empty record,
 * as lease_open leaves a new one, names nobody.
 */
static void test_take_and_check_by_fd(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", moved[64], rw[64], spec_rw[96], lease[96];
	char err[256], me[LEASE_OWNER_MAX], text[256];
	struct vm_config cfg = { .nr_devices = 0 };
	int fds[VM_MAX_DEVICES];
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(moved, sizeof(moved), "%s.moved", dir);
	snprintf(rw, sizeof(rw), "%s/a.raw", dir);
	snprintf(spec_rw, sizeof(spec_rw), "path=%s,format=raw", rw);
	add_device(&cfg, "rng", NULL);
	add_device(&cfg, "disk", spec_rw);
	assert_int_equal(lease_owner_self(me, sizeof(me)), 0);
	lease_open(&cfg, fds);
	assert_int_equal(fds[0], -1);
	assert_true(fds[1] >= 0);
	cfg.lease_fds = fds;
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0); /* empty: no record */
	assert_int_equal(rename(dir, moved), 0);
	lease_take(&cfg, "someone-else pid=1 start=1 and a longer line than the next");
	lease_take(&cfg, me); /* rewritten in place: no tail of the longer line left */
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0);
	n = pread(fds[1], text, sizeof(text) - 1, 0);
	assert_int_equal(n, (ssize_t)strlen(me) + 1);
	text[n] = '\0';
	assert_int_equal(strncmp(text, me, strlen(me)), 0);
	lease_take(&cfg, "other-host pid=7 start=1");
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "disk 'disk0' is now leased to 'other-host pid=7 start=1' (the "
				 "destination took it over and may run the guest)");
	lease_close(fds);
	assert_int_equal(fds[1], -1);
	snprintf(lease, sizeof(lease), "%s/a.raw.lease", moved);
	assert_int_equal(unlink(lease), 0);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(moved);
}

static void test_path_too_long(void **state)
{
	char big[5000], out[64];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(lease_path(big, out, sizeof(out)), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_and_check),
		cmocka_unit_test(test_take_and_check_by_fd),
		cmocka_unit_test(test_path_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
