// SPDX-License-Identifier: MIT
/*
 * Disk leases: recorded next to writable images, checked before a source takes a guest
 * back; the ownership epoch (--epoch) refuses a stale copy (docs/cluster.md, rule 3).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "lease.h"
#include "util.h"

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void read_text(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* lease_take, which must not refuse. */
static void take(const struct vm_config *cfg, const char *owner)
{
	char err[256] = "";

	assert_int_equal(lease_take(cfg, owner, "starting", err, sizeof(err)), 0);
	assert_string_equal(err, "");
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
	take(&cfg, me);
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
	take(&cfg, me);
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
	take(&cfg, "someone-else pid=1 start=1 and a longer line than the next");
	take(&cfg, me); /* rewritten in place: no tail of the longer line left */
	assert_int_equal(lease_check(&cfg, me, err, sizeof(err)), 0);
	n = pread(fds[1], text, sizeof(text) - 1, 0);
	assert_int_equal(n, (ssize_t)strlen(me) + 1);
	text[n] = '\0';
	assert_int_equal(strncmp(text, me, strlen(me)), 0);
	take(&cfg, "other-host pid=7 start=1");
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

/* Records as plinth writes them, the first format among them, and what is not one. */
static void test_parse(void **state)
{
	static const char *const bad[] = {
		"host pid=1",                        /* no newline: torn */
		"\n",                                /* no owner */
		"host\tpid=1\n",                     /* not printable */
		"host pid=1\nepoch=\n",
		"host pid=1\nepoch=5",               /* torn before its newline */
		"host pid=1\nepoch=5\n\n",
		"host pid=1\nepoch=5\n1\n",          /* a longer record's tail after a rewrite */
		"host pid=1\nepoch=-5\n",
		"host pid=1\nepoch=+5\n",
		"host pid=1\nepoch=18446744073709551616\n", /* UINT64_MAX + 1 */
		"host pid=1\nepoch=99999999999999999999999\n",
		"host pid=1\nepoch=5 vm=\n",
		"host pid=1\nepoch=5 vm=a b\n",
		"host pid=1\nepoch=5 vm=a/b\n",
		"host pid=1\nepoch=5  vm=a\n",
		"host pid=1\nEPOCH=5\n",
		"host pid=1\nowner2\n",
		"host pid=1\nepoch=5 vm=a renew=\n",
		"host pid=1\nepoch=5 vm=a renew=x\n",
		"host pid=1\nepoch=5 renew=1 vm=a\n", /* out of order */
		"host pid=1\nepoch=5 vm=a renew=1 \n",
		"host pid=1\nepoch=5 vm=a renew=18446744073709551616\n",
	};
	struct lease_rec rec;
	char buf[512], big[LEASE_RECORD_MAX + 8];
	size_t i;

	(void)state;
	assert_int_equal(lease_parse("", 0, &rec), 0);
	assert_string_equal(rec.owner, "");
	assert_int_equal(lease_parse("h1 pid=7 start=1\n", 17, &rec), 0); /* the first format */
	assert_string_equal(rec.owner, "h1 pid=7 start=1");
	assert_true(rec.epoch == 0);
	assert_string_equal(rec.vm, "");
	snprintf(buf, sizeof(buf), "h1 pid=7 start=1\nepoch=18446744073709551615 vm=0b1c-A_x.y\n");
	assert_int_equal(lease_parse(buf, strlen(buf), &rec), 0);
	assert_true(rec.epoch == UINT64_MAX);
	assert_string_equal(rec.vm, "0b1c-A_x.y");
	assert_int_equal(lease_parse("h pid=1\nepoch=42\n", 17, &rec), 0);
	assert_true(rec.epoch == 42);
	assert_string_equal(rec.vm, "");
	assert_false(rec.renewed);
	snprintf(buf, sizeof(buf), "h pid=1\nepoch=3 vm=v renew=18446744073709551615\n");
	assert_int_equal(lease_parse(buf, strlen(buf), &rec), 0);
	assert_true(rec.renewed && rec.renew == UINT64_MAX && rec.epoch == 3);
	assert_string_equal(rec.vm, "v");
	snprintf(buf, sizeof(buf), "h pid=1\nepoch=3 renew=0\n");
	assert_int_equal(lease_parse(buf, strlen(buf), &rec), 0);
	assert_true(rec.renewed && rec.renew == 0 && !rec.vm[0]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rec.epoch = 1;
		assert_int_equal(lease_parse(bad[i], strlen(bad[i]), &rec), -EINVAL);
		assert_true(rec.epoch == 0 && !rec.owner[0]); /* nothing half-parsed */
	}
	assert_int_equal(lease_parse("h\0x\n", 4, &rec), -EINVAL); /* a NUL in the owner */
	memset(big, 'a', sizeof(big));
	big[LEASE_OWNER_MAX] = '\n';
	assert_int_equal(lease_parse(big, LEASE_OWNER_MAX + 1, &rec), -EINVAL); /* owner too long */
	big[LEASE_OWNER_MAX - 1] = '\n';
	assert_int_equal(lease_parse(big, LEASE_OWNER_MAX, &rec), 0);
	assert_int_equal(strlen(rec.owner), LEASE_OWNER_MAX - 1);
	assert_int_equal(lease_parse(big, sizeof(big), &rec), -EINVAL); /* over the record's size */

	/* What lease_format writes parses back. */
	snprintf(rec.owner, sizeof(rec.owner), "h2 pid=9 start=3");
	rec.epoch = 7;
	snprintf(rec.vm, sizeof(rec.vm), "uuid-1");
	assert_int_equal(lease_format(&rec, buf, sizeof(buf)), 35);
	assert_string_equal(buf, "h2 pid=9 start=3\nepoch=7 vm=uuid-1\n");
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(lease_parse(buf, strlen(buf), &rec), 0);
	assert_true(rec.epoch == 7);
	rec.epoch = 0;
	rec.vm[0] = '\0';
	assert_int_equal(lease_format(&rec, buf, sizeof(buf)), 17); /* no epoch: the first format */
	assert_string_equal(buf, "h2 pid=9 start=3\n");
	assert_int_equal(lease_format(&rec, buf, 10), -ENAMETOOLONG);
	rec.epoch = 2;
	rec.renewed = true;
	rec.renew = 41;
	assert_int_equal(lease_format(&rec, buf, sizeof(buf)), 34);
	assert_string_equal(buf, "h2 pid=9 start=3\nepoch=2 renew=41\n");
}

static void test_epoch_option(void **state)
{
	static const char *const bad[] = { "", "x", "-1", "5x", "5,", "5,vm=", "5,vm=a b",
					   "5,id=a", "5,vm=a,", "18446744073709551616",
					   "5,vm=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	struct vm_config cfg = { .nr_devices = 0 };
	size_t i;

	(void)state;
	assert_int_equal(lease_parse_epoch_opt("12", &cfg), 0);
	assert_true(cfg.lease_epoch_set && cfg.lease_epoch == 12 && !cfg.lease_epoch_vm);
	assert_int_equal(lease_parse_epoch_opt("3,vm=6f1c-9a", &cfg), 0);
	assert_true(cfg.lease_epoch == 3);
	assert_string_equal(cfg.lease_epoch_vm, "6f1c-9a");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vm_config c = { .nr_devices = 0 };

		assert_int_equal(lease_parse_epoch_opt(bad[i], &c), -EINVAL);
		assert_false(c.lease_epoch_set);
	}
}

/*
 * Rule 3: a VMM presenting epoch 5 of VM "vm-a" takes a disk whose record holds a lower
 * or equal epoch, another VM's, or none; it refuses one holding a higher epoch of the
 * same VM (and a record that is not one), in one line and writing nothing.
 */
static void test_epoch_fence(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", rw[64], spec_rw[96], lease[96], text[512];
	char err[256];
	struct vm_config cfg = { .nr_devices = 0 };
	int fds[VM_MAX_DEVICES];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(rw, sizeof(rw), "%s/a.raw", dir);
	snprintf(spec_rw, sizeof(spec_rw), "path=%s,format=raw,id=os", rw);
	snprintf(lease, sizeof(lease), "%s.lease", rw);
	add_device(&cfg, "disk", spec_rw);
	assert_int_equal(lease_parse_epoch_opt("5,vm=vm-a", &cfg), 0);

	/* No record: taken, with the epoch. */
	assert_int_equal(lease_fence(&cfg, "starting", err, sizeof(err)), 0);
	take(&cfg, "h1 pid=1 start=1");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=0\n");

	/* The VM moved on to epoch 6 elsewhere: this copy is stale. */
	write_text(lease, "h2 pid=2 start=2\nepoch=6 vm=vm-a\n");
	assert_int_equal(lease_fence(&cfg, "resuming", err, sizeof(err)), -ESTALE);
	assert_string_equal(err, "disk 'os' is leased at epoch 6 (by 'h2 pid=2 start=2'), newer "
				 "than this VMM's --epoch 5: the VM has another owner now; not "
				 "resuming");
	assert_int_equal(lease_take(&cfg, "h1 pid=1 start=1", "starting", err, sizeof(err)),
			 -ESTALE);
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h2 pid=2 start=2\nepoch=6 vm=vm-a\n"); /* untouched */

	/* Equal and lower epochs are ours to take: rewritten with ours. */
	write_text(lease, "h2 pid=2 start=2\nepoch=5 vm=vm-a\n");
	take(&cfg, "h1 pid=1 start=1");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=0\n");
	write_text(lease, "h2 pid=2 start=2\nepoch=4 vm=vm-a\n");
	take(&cfg, "h1 pid=1 start=1");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=0\n");

	/* The first format (no epoch) and another VM's epoch do not fence. */
	write_text(lease, "h2 pid=2 start=2\n");
	assert_int_equal(lease_fence(&cfg, "starting", err, sizeof(err)), 0);
	write_text(lease, "h2 pid=2 start=2\nepoch=90 vm=vm-b\n");
	take(&cfg, "h1 pid=1 start=1");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=0\n");

	/* Bytes that are not a record: refused, left as they are. */
	write_text(lease, "h2 pid=2 start=2\nepoch=5 vm=vm-a\n3\n");
	assert_int_equal(lease_take(&cfg, "h1 pid=1 start=1", "starting", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "disk 'os': its lease record ("));
	assert_non_null(strstr(err, "a.raw.lease) is not one plinth writes; not starting"));
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h2 pid=2 start=2\nepoch=5 vm=vm-a\n3\n");
	assert_int_equal(lease_check(&cfg, "h1 pid=1 start=1", err, sizeof(err)), -EBUSY);

	/* An epoch without a VM counts for any VM. */
	cfg.lease_epoch_vm = NULL;
	write_text(lease, "h2 pid=2 start=2\nepoch=9 vm=vm-b\n");
	assert_int_equal(lease_fence(&cfg, "starting", err, sizeof(err)), -ESTALE);

	/* Without --epoch: nothing refused, and the epoch found stays (by its fd too). */
	cfg.lease_epoch_set = false;
	assert_int_equal(lease_fence(&cfg, "starting", err, sizeof(err)), 0);
	take(&cfg, "h3 pid=3 start=3");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h3 pid=3 start=3\nepoch=9 vm=vm-b\n");
	lease_open(&cfg, fds);
	cfg.lease_fds = fds;
	write_text(lease, "garbage");
	take(&cfg, "h3 pid=3 start=3"); /* as before epochs: replaced */
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h3 pid=3 start=3\n");
	cfg.lease_epoch_set = true;
	cfg.lease_epoch = 2;
	write_text(lease, "h2 pid=2 start=2\nepoch=3\n");
	assert_int_equal(lease_fence(&cfg, "starting", err, sizeof(err)), -ESTALE);
	lease_close(fds);

	unlink(lease);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(dir);
}

/*
 * A disk hot-added to a running VM (lease_add): its record opened and taken as a
 * start takes them; under --epoch, a newer owner's record refuses it untouched; a
 * read-only disk gets none.
 */
static void test_add(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", rw[64], ro[64], spec[160], lease[96];
	char text[256], err[256] = "";
	struct vm_config cfg = { .nr_devices = 0 };
	struct dev_config hot, rodisk;
	int fds[VM_MAX_DEVICES], lfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(rw, sizeof(rw), "%s/hot.raw", dir);
	snprintf(ro, sizeof(ro), "%s/ro.raw", dir);
	snprintf(lease, sizeof(lease), "%s.lease", rw);
	add_device(&cfg, "rng", NULL);
	assert_int_equal(lease_parse_epoch_opt("5,vm=vm-a", &cfg), 0);
	lease_open(&cfg, fds);
	cfg.lease_fds = fds;

	snprintf(spec, sizeof(spec), "path=%s,format=raw,id=hot", rw);
	assert_int_equal(dev_config_parse_kv(&dev_class_disk, spec, &hot), 0);
	write_text(lease, "h2 pid=2 start=2\nepoch=6 vm=vm-a renew=3\n");
	assert_int_equal(lease_add(&cfg, &hot, "h1 pid=1 start=1", &lfd, err, sizeof(err)),
			 -ESTALE);
	assert_int_equal(lfd, -1);
	assert_string_equal(err, "disk 'hot' is leased at epoch 6 (by 'h2 pid=2 start=2'), newer "
				 "than this VMM's --epoch 5: the VM has another owner now; not "
				 "adding it");
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h2 pid=2 start=2\nepoch=6 vm=vm-a renew=3\n");

	write_text(lease, "h2 pid=2 start=2\nepoch=4 vm=vm-a renew=3\n");
	assert_int_equal(lease_add(&cfg, &hot, "h1 pid=1 start=1", &lfd, err, sizeof(err)), 0);
	assert_true(lfd >= 0);
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=0\n");
	/* Appended as hotplug_add does: renewed with the others from then on. */
	cfg.devices[cfg.nr_devices] = hot;
	fds[cfg.nr_devices++] = lfd;
	assert_int_equal(lease_renew(&cfg, "h1 pid=1 start=1", 7, err, sizeof(err)), 0);
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=7\n");

	snprintf(spec, sizeof(spec), "path=%s,format=raw,id=ro,readonly=on", ro);
	assert_int_equal(dev_config_parse_kv(&dev_class_disk, spec, &rodisk), 0);
	assert_int_equal(lease_add(&cfg, &rodisk, "h1 pid=1 start=1", &lfd, err, sizeof(err)), 0);
	assert_int_equal(lfd, -1);
	snprintf(lease, sizeof(lease), "%s.lease", ro);
	assert_int_equal(access(lease, F_OK), -1);
	dev_config_free(&rodisk);

	lease_close(fds);
	snprintf(lease, sizeof(lease), "%s.lease", rw);
	unlink(lease);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(dir);
}

/* A disk of cfg whose record is in dir; its lease file's path into lease. */
static void renew_setup(struct vm_config *cfg, char *dir, char *lease, size_t len, int fds[])
{
	char rw[64], spec[96];

	assert_non_null(mkdtemp(dir));
	snprintf(rw, sizeof(rw), "%s/a.raw", dir);
	snprintf(spec, sizeof(spec), "path=%s,format=raw,id=os", rw);
	snprintf(lease, len, "%s.lease", rw);
	add_device(cfg, "disk", spec);
	assert_int_equal(lease_parse_epoch_opt("5,vm=vm-a", cfg), 0);
	lease_open(cfg, fds);
	cfg->lease_fds = fds;
}

/* Rule 4, the holder: renewals count up in place; a newer owner stops them. */
static void test_renew(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", lease[96], text[256], err[256];
	struct vm_config cfg = { .nr_devices = 0 };
	int fds[VM_MAX_DEVICES];

	(void)state;
	renew_setup(&cfg, dir, lease, sizeof(lease), fds);
	take(&cfg, "h1 pid=1 start=1");
	assert_int_equal(lease_renew(&cfg, "h1 pid=1 start=1", 1, err, sizeof(err)), 0);
	assert_int_equal(lease_renew(&cfg, "h1 pid=1 start=1", 2, err, sizeof(err)), 0);
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=2\n");
	write_text(lease, "h2 pid=2 start=2\nepoch=6 vm=vm-a renew=9\n");
	assert_int_equal(lease_renew(&cfg, "h1 pid=1 start=1", 3, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "newer than this VMM's --epoch 5"));
	read_text(lease, text, sizeof(text));
	assert_string_equal(text, "h2 pid=2 start=2\nepoch=6 vm=vm-a renew=9\n"); /* untouched */
	/* A record that cannot be written: the error, in one line, for the caller to time. */
	close(fds[0]);
	fds[0] = open(lease, O_RDONLY);
	write_text(lease, "h1 pid=1 start=1\nepoch=5 vm=vm-a renew=2\n");
	assert_int_equal(lease_renew(&cfg, "h1 pid=1 start=1", 4, err, sizeof(err)), -EBADF);
	assert_string_equal(err, "disk 'os': cannot renew its lease record: Bad file descriptor");
	lease_close(fds);
	unlink(lease);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(dir);
}

struct renewer {
	const char *lease;
	int stop_after; /* renewals, 100 ms apart */
};

static void *renew_thread(void *arg)
{
	struct renewer *r = arg;
	char line[128];
	int i;

	for (i = 1; i <= r->stop_after; i++) {
		usleep(100 * 1000);
		snprintf(line, sizeof(line), "h2 pid=2 start=2\nepoch=4 vm=vm-a renew=%d\n", i);
		write_text(r->lease, line);
	}
	return NULL;
}

/* Rule 4, the taker: another host's renewed record is watched; moving, it is refused. */
static void test_watch(void **state)
{
	char dir[] = "/tmp/plinth-lease-XXXXXX", lease[96], err[256];
	struct vm_config cfg = { .nr_devices = 0 };
	struct renewer r;
	int fds[VM_MAX_DEVICES];
	pthread_t t;
	uint64_t t0;

	(void)state;
	renew_setup(&cfg, dir, lease, sizeof(lease), fds);
	/* Renewed on h2 while this VMM (h1) watches: refused before the watch ends. */
	write_text(lease, "h2 pid=2 start=2\nepoch=4 vm=vm-a renew=0\n");
	r = (struct renewer){ .lease = lease, .stop_after = 20 };
	assert_int_equal(pthread_create(&t, NULL, renew_thread, &r), 0);
	t0 = monotonic_ms();
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 1500, err, sizeof(err)), -EBUSY);
	assert_true(monotonic_ms() - t0 < 1500);
	assert_string_equal(err, "disk 'os': its lease is being renewed by 'h2 pid=2 start=2' (a "
				 "VMM on another host runs this VM's guest on it); not starting");
	pthread_join(t, NULL);
	/* Standing still for the whole watch: taken. */
	t0 = monotonic_ms();
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 500, err, sizeof(err)), 0);
	assert_true(monotonic_ms() - t0 >= 500);
	/* Not watched: this host's own record (its image lock guards it), a record without
	 * renewals, another VM's, a newer epoch (lease_fence refuses that). */
	t0 = monotonic_ms();
	write_text(lease, "h1 pid=9 start=9\nepoch=4 vm=vm-a renew=7\n");
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 5000, err, sizeof(err)), 0);
	write_text(lease, "h2 pid=2 start=2\nepoch=4 vm=vm-a\n");
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 5000, err, sizeof(err)), 0);
	write_text(lease, "h2 pid=2 start=2\nepoch=4 vm=vm-b renew=7\n");
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 5000, err, sizeof(err)), 0);
	write_text(lease, "h2 pid=2 start=2\nepoch=6 vm=vm-a renew=7\n");
	assert_int_equal(lease_watch(&cfg, "h1 pid=1 start=1", 5000, err, sizeof(err)), 0);
	assert_true(monotonic_ms() - t0 < 1000);
	lease_close(fds);
	unlink(lease);
	dev_configs_free(cfg.devices, cfg.nr_devices);
	rmdir(dir);
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
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_epoch_option),
		cmocka_unit_test(test_epoch_fence),
		cmocka_unit_test(test_path_too_long),
		cmocka_unit_test(test_renew),
		cmocka_unit_test(test_watch),
		cmocka_unit_test(test_add),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
