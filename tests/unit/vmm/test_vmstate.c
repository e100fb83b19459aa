// SPDX-License-Identifier: MIT
/*
 * vmstate: the "config" section round trip and its refusals, devices matched by id
 * and slot, the format before ids; device-dirty tracking.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mem.h"
#include "vmstate.h"

/* Run fn to fill a memfd through a writer, then return a reader positioned at 0. */
static int stream_fd(void (*fn)(struct state_writer *w, const void *arg), const void *arg)
{
	int fd = memfd_create("vmstate-test", 0);
	struct state_writer *w;

	assert_true(fd >= 0);
	w = state_writer_new_fd(fd, "test");
	assert_non_null(w);
	fn(w, arg);
	assert_int_equal(state_writer_finish(w), 0);
	state_writer_free(w);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void put_config(struct state_writer *w, const void *arg)
{
	assert_int_equal(vm_state_save_config(arg, w), 0);
}

static void put_config_migration(struct state_writer *w, const void *arg)
{
	assert_int_equal(vm_state_save_config_as(arg, VM_CONFIG_MIGRATION, w), 0);
}

/* Fill cfg's devices from "kind:spec" strings (NULL-terminated), as a command line would. */
static void set_devices(struct vm_config *cfg, const char *const *devs)
{
	dev_configs_free(cfg->devices, cfg->nr_devices);
	cfg->nr_devices = 0;
	for (; *devs; devs++) {
		char kind[16];
		const char *colon = strchr(*devs, ':');

		assert_non_null(colon);
		snprintf(kind, sizeof(kind), "%.*s", (int)(colon - *devs), *devs);
		assert_int_equal(dev_config_parse_kv(dev_class_find(kind), colon + 1,
						     &cfg->devices[cfg->nr_devices]), 0);
		cfg->nr_devices++;
	}
	assert_int_equal(dev_configs_finish(cfg->devices, cfg->nr_devices), 0);
}

/*
 * A migration stream's config is "config.3" (it may be followed by "ram-zero" sections,
 * which a build before them would skip): read like "config.2" here, and under a name an
 * older reader refuses as "not the configuration".
 */
static void test_config_migration_name(void **state)
{
	static const char *const devs[] = { "disk:path=/d.raw,id=os", NULL };
	struct vm_config cfg = { .kernel = "/k", .cmdline = "", .cpus = 1, .memory = 64ULL << 20 };
	struct vm_saved_config saved;
	struct state_reader *r;
	int fd;

	(void)state;
	set_devices(&cfg, devs);
	fd = stream_fd(put_config_migration, &cfg);
	r = state_reader_new_fd(fd, "test");
	assert_int_equal(state_reader_next_section(r), 1);
	assert_string_equal(state_reader_type(r), "config.3");
	state_reader_free(r);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	r = state_reader_new_fd(fd, "test");
	assert_int_equal(vm_state_read_config(r, &saved), 0);
	assert_int_equal(saved.cfg.nr_devices, 1);
	assert_string_equal(saved.cfg.devices[0].id, "os");
	assert_string_equal(saved.cfg.devices[0].spec, "path=/d.raw");
	vm_saved_config_free(&saved);
	state_reader_free(r);
	close(fd);
	dev_configs_free(cfg.devices, cfg.nr_devices);
}

static void test_config_round_trip(void **state)
{
	static const char *const devs[] = { "disk:path=/d.qcow2,format=qcow2,id=os,addr=7",
					    "rng:", NULL };
	struct vm_config cfg = {
		.kernel = "/boot/vmlinuz", .initrd = NULL, .cmdline = "console=ttyS0 quiet",
		.cpus = 3, .memory = 768ULL << 20, .no_reboot = true,
	};
	struct vm_saved_config saved;
	struct state_reader *r;
	int fd;

	(void)state;
	set_devices(&cfg, devs);
	fd = stream_fd(put_config, &cfg);
	r = state_reader_new_fd(fd, "test");
	assert_int_equal(vm_state_read_config(r, &saved), 0);
	assert_string_equal(saved.cfg.kernel, "/boot/vmlinuz");
	assert_null(saved.cfg.initrd);
	assert_string_equal(saved.cfg.cmdline, "console=ttyS0 quiet");
	assert_int_equal(saved.cfg.cpus, 3);
	assert_true(saved.cfg.memory == 768ULL << 20);
	assert_true(saved.cfg.no_reboot);
	assert_int_equal(saved.cfg.nr_devices, 2);
	assert_ptr_equal(saved.cfg.devices[0].cls, &dev_class_disk);
	assert_string_equal(saved.cfg.devices[0].id, "os");
	assert_int_equal(saved.cfg.devices[0].slot, 7);
	assert_string_equal(saved.cfg.devices[0].spec, "path=/d.qcow2,format=qcow2");
	assert_ptr_equal(saved.cfg.devices[1].cls, dev_class_find("rng"));
	assert_string_equal(saved.cfg.devices[1].id, "rng0");
	assert_int_equal(saved.cfg.devices[1].slot, 1);
	assert_string_equal(saved.cfg.devices[1].spec, "");
	assert_int_equal(state_reader_next_section(r), 0); /* the end, verified */
	vm_saved_config_free(&saved);
	state_reader_free(r);
	close(fd);
	dev_configs_free(cfg.devices, cfg.nr_devices);
}

/*
 * restore and receive build the machine from their own command line: a stream (or
 * snapshot) describing another machine is refused with one line naming the
 * option; paths, taps and sockets in the stream are never used, so they may differ.
 */
static void expect_config_check(const struct vm_config *stream, const struct vm_config *mine,
			 const char *why)
{
	int fd = stream_fd(put_config, stream);
	struct state_reader *r = state_reader_new_fd(fd, "migration stream");

	assert_non_null(r);
	if (!why) {
		assert_int_equal(vm_state_check_config(r, mine), 0);
	} else {
		assert_int_equal(vm_state_check_config(r, mine), -EINVAL);
		if (!strstr(state_reader_error(r), why))
			fail_msg("'%s' lacks '%s'", state_reader_error(r), why);
		assert_null(strchr(state_reader_error(r), '\n'));
	}
	state_reader_free(r);
	close(fd);
}

static void test_config_check(void **state)
{
	static const char *const mine_devs[] = { "disk:path=/srv/vm1.qcow2", "net:tap=tap0",
						 "rng:", NULL };
	struct vm_config mine = {
		.kernel = "/boot/vmlinuz", .cmdline = "console=ttyS0", .cpus = 2,
		.memory = 512ULL << 20,
	};
	struct vm_config hostile = mine;

	(void)state;
	set_devices(&mine, mine_devs);
	/* The same machine, its files named otherwise on the other host: accepted. */
	hostile.kernel = "/etc/shadow";
	set_devices(&hostile, (const char *const[]){ "disk:path=/dev/sda,format=raw",
						      "net:tap=eth0", "rng:", NULL });
	expect_config_check(&hostile, &mine, NULL);
	hostile.cpus = 64;
	expect_config_check(&hostile, &mine, "the saved VM has 64 vCPUs, this one 2 (--cpus)");
	hostile.cpus = 2;
	hostile.memory = 4ULL << 30;
	expect_config_check(&hostile, &mine, "the saved VM has 4096M of memory, this one 512M (--memory)");
	hostile.memory = mine.memory;
	set_devices(&hostile, (const char *const[]){ "disk:path=/a", "net:tap=t", "rng:",
						      "console:virtio,path=/etc/shadow", NULL });
	expect_config_check(&hostile, &mine, "the saved VM has a --console with id console0, "
			    "this one has no device with that id (id=)");
	/* Another order on the command line: the same ids, but other slots. */
	set_devices(&hostile, (const char *const[]){ "net:tap=t", "disk:path=/a", "rng:", NULL });
	expect_config_check(&hostile, &mine, "device net0 is in PCI slot 1 in the saved VM, "
			    "slot 2 in this one (addr=)");
	/* ...which addr= puts right: matched by id, whatever the order. */
	set_devices(&hostile, (const char *const[]){ "net:tap=t,addr=2", "disk:path=/a,addr=1",
						      "rng:", NULL });
	expect_config_check(&hostile, &mine, NULL);
	set_devices(&hostile, (const char *const[]){ "disk:path=/a", "net:tap=t", NULL });
	expect_config_check(&hostile, &mine, "this VM has a --rng with id rng0, the saved one "
			    "has no device with that id (id=)");
	set_devices(&hostile, (const char *const[]){ "disk:path=/a", "net:tap=t",
						      "vsock:cid=3,socket=/s,id=rng0", NULL });
	expect_config_check(&hostile, &mine, "device rng0 is a --vsock in the saved VM, a --rng "
			    "in this one");
	set_devices(&hostile, (const char *const[]){ "disk:path=/a,id=boot", "net:tap=t", "rng:",
						      NULL });
	expect_config_check(&hostile, &mine, "the saved VM has a --disk with id boot");
	dev_configs_free(hostile.devices, hostile.nr_devices);
	dev_configs_free(mine.devices, mine.nr_devices);
}

/*
 * A snapshot from before device ids ("config", a kind number per device) still
 * restores: its devices get the ids and slots of a command line without id= and addr=.
 */
static void put_old_config(struct state_writer *w, const void *arg)
{
	(void)arg;
	state_writer_begin_section(w, "config", 0, 0);
	state_put_u32(w, 2);
	state_put_u64(w, 512ULL << 20);
	state_put_bool(w, false);
	state_put_bytes(w, "/k", 2);
	state_put_bytes(w, "", 0);
	state_put_bytes(w, "console=ttyS0", 13);
	state_put_u32(w, 3);
	state_put_u32(w, 0); /* disk */
	state_put_bytes(w, "path=/a", 7);
	state_put_u32(w, 1); /* net */
	state_put_bytes(w, "tap=t", 5);
	state_put_u32(w, 3); /* rng */
	state_put_bytes(w, "", 0);
	assert_int_equal(state_writer_end_section(w), 0);
}

static void test_config_old_format(void **state)
{
	static const char *const devs[] = { "disk:path=/srv/vm1.qcow2", "net:tap=tap0", "rng:",
					    NULL };
	struct vm_config mine = { .cpus = 2, .memory = 512ULL << 20 };
	struct state_reader *r;
	int fd;

	(void)state;
	set_devices(&mine, devs);
	fd = stream_fd(put_old_config, NULL);
	r = state_reader_new_fd(fd, "snapshot state");
	assert_int_equal(vm_state_check_config(r, &mine), 0);
	state_reader_free(r);
	close(fd);
	/* Given other ids, the old snapshot's devices are not found. */
	set_devices(&mine, (const char *const[]){ "disk:path=/a,id=os", "net:tap=t", "rng:",
						  NULL });
	fd = stream_fd(put_old_config, NULL);
	r = state_reader_new_fd(fd, "snapshot state");
	assert_int_equal(vm_state_check_config(r, &mine), -EINVAL);
	assert_non_null(strstr(state_reader_error(r), "the saved VM has a --disk with id disk0"));
	state_reader_free(r);
	close(fd);
	dev_configs_free(mine.devices, mine.nr_devices);
}

/* A disk's identity changes when its image is written (what a restore refuses). */
static void test_disk_ident(void **state)
{
	char path[] = "/tmp/plinth-ident-XXXXXX", spec[64];
	struct vm_disk_ident a, b;
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	snprintf(spec, sizeof(spec), "path=%s,format=raw", path);
	assert_int_equal(vm_disk_ident_of(spec, &a), 0);
	assert_true(a.known);
	assert_true(a.size == 1 << 20);
	assert_int_equal(vm_disk_ident_of(spec, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* A write into the header (another image) changes the crc... */
	assert_int_equal(pwrite(fd, "QFI\xfb", 4, 0), 4);
	assert_int_equal(vm_disk_ident_of(spec, &b), 0);
	assert_true(b.head_crc != a.head_crc);
	/* ...a write past it the modification time (set apart from the first here). */
	assert_int_equal(pwrite(fd, "x", 1, 900000), 1);
	later[1].tv_sec = 12345;
	assert_int_equal(futimens(fd, later), 0);
	a = b;
	assert_int_equal(vm_disk_ident_of(spec, &b), 0);
	assert_true(b.mtime_ns != a.mtime_ns);
	assert_int_equal(vm_disk_ident_of("path=/nonexistent/disk", &b), -ENOENT);
	assert_false(b.known);
	close(fd);
	unlink(path);
}

/* A hand-made config section: cpus, memory, kernel (len bytes). */
struct forged {
	uint32_t cpus;
	uint64_t memory;
	const char *kernel;
	uint32_t kernel_len;
	uint32_t kind;
};

static void put_forged(struct state_writer *w, const void *arg)
{
	const struct forged *f = arg;

	state_writer_begin_section(w, "config", 0, 0);
	state_put_u32(w, f->cpus);
	state_put_u64(w, f->memory);
	state_put_bool(w, false);
	state_put_bytes(w, f->kernel, f->kernel_len);
	state_put_bytes(w, "", 0);
	state_put_bytes(w, "console=ttyS0", 13);
	state_put_u32(w, 1);
	state_put_u32(w, f->kind);
	state_put_bytes(w, "x", 1);
	assert_int_equal(state_writer_end_section(w), 0);
}

static void expect_refused(const struct forged *f, const char *why)
{
	struct vm_saved_config saved;
	struct state_reader *r;
	int fd = stream_fd(put_forged, f);

	r = state_reader_new_fd(fd, "test");
	assert_true(vm_state_read_config(r, &saved) < 0);
	assert_non_null(strstr(state_reader_error(r), why));
	vm_saved_config_free(&saved);
	state_reader_free(r);
	close(fd);
}

static void test_config_refusals(void **state)
{
	struct forged ok = { 1, 256ULL << 20, "/k", 2, 2 /* console */ };
	struct forged f;

	(void)state;
	f = ok, f.cpus = 0;
	expect_refused(&f, "0 vCPUs");
	f = ok, f.cpus = VM_MAX_CPUS + 1;
	expect_refused(&f, "vCPUs");
	f = ok, f.memory = (256ULL << 20) + 1;
	expect_refused(&f, "memory size");
	f = ok, f.kernel = "/k\0evil", f.kernel_len = 7;
	expect_refused(&f, "bad kernel path");
	f = ok, f.kernel = "", f.kernel_len = 0;
	expect_refused(&f, "no kernel");
	f = ok, f.kind = 99;
	expect_refused(&f, "device kind 99");
}

static void test_config_not_first(void **state)
{
	struct vm_saved_config saved;
	struct state_reader *r;
	struct forged ok = { 1, 256ULL << 20, "/k", 2, 2 /* console */ };
	int fd = stream_fd(put_forged, &ok);
	uint8_t *buf = malloc(4096);
	ssize_t n = pread(fd, buf, 4096, 0);

	(void)state;
	assert_true(n > 60);
	buf[STATE_HEADER_SIZE + 4] = 'k'; /* "config" -> "konfig": header crc now wrong */
	r = state_reader_new_mem(buf, (size_t)n, "test");
	assert_true(vm_state_read_config(r, &saved) < 0);
	vm_saved_config_free(&saved);
	state_reader_free(r);
	free(buf);
	close(fd);
}

static void test_mark_dirty(void **state)
{
	static uint8_t ram[64 * 4096];
	unsigned long bm[1] = { 0 };
	struct guest_mem gm = { .nr_slots = 1, .fd = -1, .total = sizeof(ram) };

	(void)state;
	gm.slot[0] = (struct guest_mem_slot){ .gpa = 0x100000, .size = sizeof(ram), .hva = ram };
	guest_mem_mark_dirty(&gm, ram + 10, 4); /* tracking off: nothing happens */
	gm.slot[0].dev_dirty = bm;
	guest_mem_mark_dirty(&gm, ram + 4095, 2); /* straddles pages 0 and 1 */
	assert_true(bm[0] == 0x3);
	guest_mem_mark_dirty(&gm, ram + 63 * 4096, 1 << 20); /* clipped at the slot's end */
	assert_true(bm[0] == (0x3 | 1UL << 63));
	guest_mem_mark_dirty(&gm, ram + sizeof(ram), 4096); /* outside: ignored */
	guest_mem_mark_dirty(&gm, ram + 8192, 0);    /* empty: ignored */
	assert_true(bm[0] == (0x3 | 1UL << 63));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_config_migration_name),
		cmocka_unit_test(test_config_refusals),
		cmocka_unit_test(test_config_not_first),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_config_old_format),
		cmocka_unit_test(test_disk_ident),
		cmocka_unit_test(test_mark_dirty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
