// SPDX-License-Identifier: MIT
/*
 * The firmware platform's devices: fw_cfg (ports and DMA, with hostile
 * descriptors), the CMOS RTC (BCD/binary, 12/24 h, UIP, memory size), the CFI
 * flash of the variable store (commands, write-through to the file) and the
 * checks of the firmware and vars files.
 */
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

#include "firmware.h"
#include "util.h"
#include "hw/cmos.h"
#include "hw/fw_cfg.h"
#include "hw/pflash.h"

#define RAM_GPA	 0x10000ULL
#define RAM_SIZE 0x10000ULL

struct ram {
	struct guest_mem gm;
	uint8_t *buf;
};

static void ram_init(struct ram *r)
{
	memset(r, 0, sizeof(*r));
	r->buf = calloc(1, RAM_SIZE);
	assert_non_null(r->buf);
	r->gm.nr_slots = 1;
	r->gm.slot[0] = (struct guest_mem_slot){ .gpa = RAM_GPA, .size = RAM_SIZE, .hva = r->buf };
	r->gm.fd = -1;
	r->gm.total = RAM_SIZE;
}

static void sel(struct fw_cfg *fc, uint16_t key)
{
	uint8_t b[2] = { (uint8_t)key, (uint8_t)(key >> 8) };

	fw_cfg_ops.write(fc, 0, b, 2);
}

static uint8_t data_byte(struct fw_cfg *fc)
{
	uint8_t v;

	fw_cfg_ops.read(fc, 1, &v, 1);
	return v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Run a DMA request whose descriptor is at gpa. */
static void dma_go(struct fw_cfg *fc, uint64_t gpa)
{
	uint8_t hi[4], lo[4];

	be32(hi, (uint32_t)(gpa >> 32));
	be32(lo, (uint32_t)gpa);
	fw_cfg_ops.write(fc, 4, hi, 4);
	fw_cfg_ops.write(fc, 8, lo, 4);
}

/* Write a descriptor at RAM offset off (control, length, address). */
static void desc_put(struct ram *r, uint64_t off, uint32_t control, uint32_t length,
		     uint64_t addr)
{
	be32(r->buf + off, control);
	be32(r->buf + off + 4, length);
	be32(r->buf + off + 8, (uint32_t)(addr >> 32));
	be32(r->buf + off + 12, (uint32_t)addr);
}

static void test_fw_cfg_ports(void **state)
{
	struct fw_cfg fc;
	struct ram r;
	uint8_t sig[8];
	int i;

	(void)state;
	ram_init(&r);
	assert_int_equal(fw_cfg_init(&fc, &r.gm), 0);
	sel(&fc, FW_CFG_SIGNATURE);
	assert_int_equal(data_byte(&fc), 'Q');
	assert_int_equal(data_byte(&fc), 'E');
	assert_int_equal(data_byte(&fc), 'M');
	assert_int_equal(data_byte(&fc), 'U');
	assert_int_equal(data_byte(&fc), 0); /* past the end: zeros */
	sel(&fc, FW_CFG_ID);
	assert_int_equal(data_byte(&fc), 3); /* traditional + DMA */
	fw_cfg_ops.read(&fc, 4, sig, 8);
	assert_memory_equal(sig, "QEMU CFG", 8);
	/* Unused keys and keys past the table read zeros. */
	sel(&fc, 0x1234);
	assert_int_equal(data_byte(&fc), 0);
	sel(&fc, FW_CFG_FILE_FIRST + 5);
	assert_int_equal(data_byte(&fc), 0);
	/* Scalars are little-endian. */
	assert_int_equal(fw_cfg_add_u16(&fc, FW_CFG_NB_CPUS, 0x0203), 0);
	sel(&fc, FW_CFG_NB_CPUS);
	assert_int_equal(data_byte(&fc), 3);
	assert_int_equal(data_byte(&fc), 2);
	/* Reselecting rewinds. */
	sel(&fc, FW_CFG_NB_CPUS);
	assert_int_equal(data_byte(&fc), 3);
	/* Fixed keys can't be files, the directory is the device's own. */
	assert_int_equal(fw_cfg_add_item(&fc, FW_CFG_FILE_DIR, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_item(&fc, FW_CFG_FILE_FIRST, "x", 1), -EINVAL);
	for (i = 0; i < 8; i++)
		(void)data_byte(&fc);
	fw_cfg_destroy(&fc);
	free(r.buf);
}

static void test_fw_cfg_files(void **state)
{
	char name[64];
	struct fw_cfg fc;
	struct ram r;
	uint8_t dir[4 + 64 * 2];
	unsigned int i;

	(void)state;
	ram_init(&r);
	assert_int_equal(fw_cfg_init(&fc, &r.gm), 0);
	assert_int_equal(fw_cfg_add_file(&fc, "etc/e820", "0123456789abcdefghij", 20), 0);
	assert_int_equal(fw_cfg_add_file(&fc, "bootorder", "", 0), 0);
	assert_int_equal(fw_cfg_add_file(&fc, "etc/e820", "x", 1), -EEXIST);
	memset(name, 'a', sizeof(name));
	name[56] = 0; /* 56 characters leave no room for the NUL */
	assert_int_equal(fw_cfg_add_file(&fc, name, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_file(&fc, "", "x", 1), -EINVAL);
	sel(&fc, FW_CFG_FILE_DIR);
	for (i = 0; i < sizeof(dir); i++)
		dir[i] = data_byte(&fc);
	assert_int_equal(rd_be32(dir), 2);
	assert_int_equal(rd_be32(dir + 4), 20);                     /* size */
	assert_int_equal(dir[8] << 8 | dir[9], FW_CFG_FILE_FIRST);  /* key */
	assert_string_equal((char *)dir + 12, "etc/e820");
	assert_int_equal(rd_be32(dir + 68), 0);
	assert_int_equal(dir[72] << 8 | dir[73], FW_CFG_FILE_FIRST + 1);
	assert_string_equal((char *)dir + 76, "bootorder");
	sel(&fc, FW_CFG_FILE_FIRST);
	assert_int_equal(data_byte(&fc), '0');
	/* The table fills up. */
	for (i = 2; i < FW_CFG_MAX_FILES; i++) {
		snprintf(name, sizeof(name), "opt/f%u", i);
		assert_int_equal(fw_cfg_add_file(&fc, name, "x", 1), 0);
	}
	assert_int_equal(fw_cfg_add_file(&fc, "one/more", "x", 1), -ENOSPC);
	fw_cfg_destroy(&fc);
	free(r.buf);
}

static void test_fw_cfg_dma(void **state)
{
	struct fw_cfg fc;
	struct ram r;

	(void)state;
	ram_init(&r);
	assert_int_equal(fw_cfg_init(&fc, &r.gm), 0);
	assert_int_equal(fw_cfg_add_file(&fc, "etc/e820", "0123456789", 10), 0);
	/* Select + read 16 bytes: the file, then zeros; control comes back 0. */
	memset(r.buf + 0x100, 0xaa, 16);
	desc_put(&r, 0, (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
		 16, RAM_GPA + 0x100);
	dma_go(&fc, RAM_GPA);
	assert_int_equal(rd_be32(r.buf), 0);
	assert_memory_equal(r.buf + 0x100, "0123456789\0\0\0\0\0\0", 16);
	/* Skip then read continues where it left off. */
	desc_put(&r, 0, (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_SKIP,
		 3, 0);
	dma_go(&fc, RAM_GPA);
	desc_put(&r, 0, FW_CFG_DMA_READ, 2, RAM_GPA + 0x200);
	dma_go(&fc, RAM_GPA);
	assert_int_equal(rd_be32(r.buf), 0);
	assert_memory_equal(r.buf + 0x200, "34", 2);
	/* The port interface shares the position. */
	assert_int_equal(data_byte(&fc), '5');
	/* Writes are refused: ERROR, nothing changes. */
	desc_put(&r, 0, FW_CFG_DMA_WRITE, 4, RAM_GPA + 0x300);
	dma_go(&fc, RAM_GPA);
	assert_int_equal(rd_be32(r.buf), FW_CFG_DMA_ERROR);
	sel(&fc, FW_CFG_FILE_FIRST);
	assert_int_equal(data_byte(&fc), '0');
	fw_cfg_destroy(&fc);
	free(r.buf);
}

static void test_fw_cfg_dma_hostile(void **state)
{
	static const uint64_t bad_addr[] = {
		0,                              /* below RAM */
		RAM_GPA + RAM_SIZE - 8,         /* crosses the end */
		RAM_GPA + RAM_SIZE,             /* just past it */
		UINT64_MAX - 7,                 /* wraps */
	};
	struct fw_cfg fc;
	struct ram r;
	uint8_t *copy;
	size_t i;

	(void)state;
	ram_init(&r);
	copy = malloc(RAM_SIZE);
	assert_non_null(copy);
	assert_int_equal(fw_cfg_init(&fc, &r.gm), 0);
	assert_int_equal(fw_cfg_add_file(&fc, "etc/e820", "0123456789", 10), 0);
	for (i = 0; i < ARRAY_SIZE(bad_addr); i++) {
		desc_put(&r, 0, (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT |
			 FW_CFG_DMA_READ, 16, bad_addr[i]);
		memcpy(copy, r.buf, RAM_SIZE);
		dma_go(&fc, RAM_GPA);
		assert_int_equal(rd_be32(r.buf), FW_CFG_DMA_ERROR);
		assert_memory_equal(copy + 4, r.buf + 4, RAM_SIZE - 4); /* nothing else written */
	}
	/* The largest length: refused, not truncated or wrapped. */
	desc_put(&r, 0, FW_CFG_DMA_READ, UINT32_MAX, RAM_GPA + 0x100);
	dma_go(&fc, RAM_GPA);
	assert_int_equal(rd_be32(r.buf), FW_CFG_DMA_ERROR);
	/* A descriptor outside RAM, or crossing its end: ignored, counted, no write. */
	memcpy(copy, r.buf, RAM_SIZE);
	dma_go(&fc, 0x1000);
	dma_go(&fc, RAM_GPA + RAM_SIZE - 8);
	dma_go(&fc, UINT64_MAX - 3);
	assert_memory_equal(copy, r.buf, RAM_SIZE);
	assert_int_equal(fc.dma_errors, ARRAY_SIZE(bad_addr) + 1 + 3);
	/* Skipping past 4 GiB saturates: later reads give zeros, not the file again. */
	desc_put(&r, 0, (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_SKIP,
		 UINT32_MAX, 0);
	dma_go(&fc, RAM_GPA);
	desc_put(&r, 0, FW_CFG_DMA_SKIP, 5, 0);
	dma_go(&fc, RAM_GPA);
	assert_int_equal(data_byte(&fc), 0);
	/* A half-written address (high only) is replaced by the next high write. */
	desc_put(&r, 0, (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
		 1, RAM_GPA + 0x400);
	{
		uint8_t hi[4] = { 0, 0, 0, 7 };

		fw_cfg_ops.write(&fc, 4, hi, 4);
	}
	dma_go(&fc, RAM_GPA);
	assert_int_equal(r.buf[0x400], '0');
	fw_cfg_destroy(&fc);
	free(copy);
	free(r.buf);
}

/* 2026-12-04 20:07:05 UTC, a Friday, and 0.9998 s. */
static int64_t fake_now(void)
{
	return 1796414825LL * 1000000000 + 999800000;
}

static int64_t fake_now_early(void)
{
	return 1796414825LL * 1000000000 + 100;
}

static uint8_t cmos_rd(struct cmos *c, uint8_t reg)
{
	uint8_t v;

	cmos_ops.write(c, 0, &reg, 1);
	cmos_ops.read(c, 1, &v, 1);
	return v;
}

static void cmos_wr(struct cmos *c, uint8_t reg, uint8_t v)
{
	cmos_ops.write(c, 0, &reg, 1);
	cmos_ops.write(c, 1, &v, 1);
}

static void test_cmos(void **state)
{
	struct cmos c;

	(void)state;
	cmos_init(&c, 256 * MiB, GiB);
	c.now_ns = fake_now;
	/* BCD, 24 hours by default. */
	assert_int_equal(cmos_rd(&c, 0), 0x05);
	assert_int_equal(cmos_rd(&c, 2), 0x07);
	assert_int_equal(cmos_rd(&c, 4), 0x20);
	assert_int_equal(cmos_rd(&c, 6), 6); /* Friday */
	assert_int_equal(cmos_rd(&c, 7), 0x04);
	assert_int_equal(cmos_rd(&c, 8), 0x12);
	assert_int_equal(cmos_rd(&c, 9), 0x26);
	assert_int_equal(cmos_rd(&c, 0x32), 0x20);
	/* The last 244 us of the second: update in progress. */
	assert_true(cmos_rd(&c, 0x0a) & 0x80);
	c.now_ns = fake_now_early;
	assert_false(cmos_rd(&c, 0x0a) & 0x80);
	/* Binary, 12 hours: 20 h is 8 PM. */
	cmos_wr(&c, 0x0b, 0x04);
	assert_int_equal(cmos_rd(&c, 4), 0x88);
	assert_int_equal(cmos_rd(&c, 9), 26);
	/* Setting the minutes moves the clock, the rest stays. */
	cmos_wr(&c, 0x0b, 0x06);
	cmos_wr(&c, 2, 30);
	assert_int_equal(cmos_rd(&c, 2), 30);
	assert_int_equal(cmos_rd(&c, 4), 20);
	assert_int_equal(cmos_rd(&c, 7), 4);
	/* Memory: (256 - 16) MiB in 64 KiB units below 4 GiB, 1 GiB above. */
	assert_int_equal(cmos_rd(&c, 0x34) | cmos_rd(&c, 0x35) << 8, 3840);
	assert_int_equal(cmos_rd(&c, 0x5b) | cmos_rd(&c, 0x5c) << 8 | cmos_rd(&c, 0x5d) << 16,
			 16384);
	assert_int_equal(cmos_rd(&c, 0x15) | cmos_rd(&c, 0x16) << 8, 640);
	/* NVRAM keeps what is written; the index masks NMI off bit 7. */
	cmos_wr(&c, 0x80 | 0x40, 0x5a);
	assert_int_equal(cmos_rd(&c, 0x40), 0x5a);
	assert_int_equal(cmos_rd(&c, 0x0d), 0x80); /* valid RAM and time */
	cmos_destroy(&c);
}

static void test_pflash(void **state)
{
	char path[] = "/tmp/plinth-test-vars-XXXXXX";
	uint8_t *data = malloc(2 * PFLASH_BLOCK), v, file[2 * PFLASH_BLOCK], cmd;
	struct pflash f;
	uint32_t w;
	int fd;

	(void)state;
	assert_non_null(data);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	memset(data, 0x11, 2 * PFLASH_BLOCK);
	assert_int_equal(pwrite(fd, data, 2 * PFLASH_BLOCK, 0), 2 * PFLASH_BLOCK);
	assert_int_equal(pflash_init(&f, data, 2 * PFLASH_BLOCK, fd), 0);
	pflash_ops.read(&f, 8, &w, 4);
	assert_int_equal(w, 0x11111111);
	/* OVMF's probe: clear status reads the array, read status then 0 (flash). */
	cmd = 0x50;
	pflash_ops.write(&f, 0, &cmd, 1);
	pflash_ops.read(&f, 0, &v, 1);
	assert_int_equal(v, 0x11);
	cmd = 0x70;
	pflash_ops.write(&f, 0, &cmd, 1);
	pflash_ops.read(&f, 0, &v, 1);
	assert_int_equal(v, 0);
	/* Program a byte: in memory and in the file. */
	cmd = 0x10;
	pflash_ops.write(&f, 5, &cmd, 1);
	v = 0x42;
	pflash_ops.write(&f, 5, &v, 1);
	pflash_ops.read(&f, 5, &v, 1);
	assert_int_equal(v, 0x80); /* status: ready */
	cmd = 0xff;
	pflash_ops.write(&f, 0, &cmd, 1);
	pflash_ops.read(&f, 5, &v, 1);
	assert_int_equal(v, 0x42);
	/* Erase block 1 (confirmed at an address inside it). */
	cmd = 0x20;
	pflash_ops.write(&f, PFLASH_BLOCK + 7, &cmd, 1);
	cmd = 0xd0;
	pflash_ops.write(&f, PFLASH_BLOCK + 7, &cmd, 1);
	/* An erase not confirmed erases nothing. */
	cmd = 0x20;
	pflash_ops.write(&f, 0, &cmd, 1);
	cmd = 0xff;
	pflash_ops.write(&f, 0, &cmd, 1);
	pflash_ops.write(&f, 0, &cmd, 1); /* back to array mode */
	assert_int_equal(pread(fd, file, sizeof(file), 0), (ssize_t)sizeof(file));
	assert_int_equal(file[5], 0x42);
	assert_int_equal(file[4], 0x11);
	assert_int_equal(file[0], 0x11);
	assert_int_equal(file[PFLASH_BLOCK], 0xff);
	assert_int_equal(file[2 * PFLASH_BLOCK - 1], 0xff);
	/* Accesses past the end: all-ones, writes dropped. */
	pflash_ops.read(&f, 2 * PFLASH_BLOCK - 2, &w, 4);
	assert_int_equal(w, 0xffffffff);
	cmd = 0x10;
	pflash_ops.write(&f, 2 * PFLASH_BLOCK, &cmd, 1);
	pflash_ops.read(&f, 0, &v, 1);
	assert_int_equal(v, 0x11);
	assert_int_equal(f.write_errors, 0);
	assert_int_equal(pflash_init(&f, NULL, 100, -1), -EINVAL);
	pflash_destroy(&f);
	close(fd);
}

/* A code file of n volumes of len bytes each; vars head of one volume of vlen. */
static uint8_t *fake_code(unsigned int n, uint64_t len)
{
	uint8_t *c = calloc(n, len);
	unsigned int i;
	int b;

	assert_non_null(c);
	for (i = 0; i < n; i++) {
		memcpy(c + i * len + 40, "_FVH", 4);
		for (b = 0; b < 8; b++)
			c[i * len + 32 + b] = (uint8_t)(len >> (8 * b));
	}
	return c;
}

static void test_firmware_files(void **state)
{
	uint8_t *code = fake_code(2, 1826816), *vars = fake_code(1, 64), junk[64];
	const char *why = NULL;

	(void)state;
	memset(junk, 0x5a, sizeof(junk));
	/* Debian's OVMF: 4 MiB and 2 MiB flash. */
	assert_int_equal(fw_vars_size_for(3653632), 540672);
	assert_int_equal(fw_vars_size_for(1966080), 131072);
	vars[32] = 0, vars[33] = 0x40, vars[34] = 0x08; /* 0x84000 */
	assert_int_equal(fw_check_images(code, 3653632, vars, 540672, &why), 0);
	assert_int_equal(fw_check_images(code, 3653632, NULL, 0, &why), 0);
	assert_int_equal(fw_check_images(code, 3653632, vars, 131072, &why), -ERANGE);
	assert_int_equal(fw_check_images(code, 3653632, junk, 540672, &why), -ENOEXEC);
	vars[34] = 0x09; /* a volume longer than the file */
	assert_int_equal(fw_check_images(code, 3653632, vars, 540672, &why), -ENOEXEC);
	/* Cut at a block boundary: the last volume ends past the file. */
	assert_int_equal(fw_check_images(code, 3653632 - 4096, NULL, 0, &why), -EINVAL);
	assert_int_equal(fw_check_images(code, 1826816 + 4096, NULL, 0, &why), -EINVAL);
	assert_int_equal(fw_check_images(code, 1826816, NULL, 0, &why), 0);
	assert_int_equal(fw_check_images(code, 3653632 - 100, NULL, 0, &why), -EINVAL);
	assert_int_equal(fw_check_images(code, 16, NULL, 0, &why), -EINVAL);
	/* A volume of length 0 must not loop forever. */
	memset(code + 32, 0, 8);
	assert_int_equal(fw_check_images(code, 3653632, NULL, 0, &why), -EINVAL);
	memcpy(code + 40, "XXXX", 4);
	assert_int_equal(fw_check_images(code, 3653632, NULL, 0, &why), -EINVAL);
	free(code);
	free(vars);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fw_cfg_ports),
		cmocka_unit_test(test_fw_cfg_files),
		cmocka_unit_test(test_fw_cfg_dma),
		cmocka_unit_test(test_fw_cfg_dma_hostile),
		cmocka_unit_test(test_cmos),
		cmocka_unit_test(test_pflash),
		cmocka_unit_test(test_firmware_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
