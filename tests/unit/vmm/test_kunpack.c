// SPDX-License-Identifier: MIT
/*
 * A bzImage unpacked by the VMM (arch/x86/kunpack.h, boot.c): each compression the
 * kernel may use, the vmlinux placed and relocated as its decompressor would (KASLR
 * from the seed, none with nokaslr), and every corrupt payload falling back to the
 * bzImage as it is.
 */
#include <elf.h>
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

#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include "util.h"
#include "arch/x86/boot.h"
#include "arch/x86/kunpack.h"
#include "arch/x86/layout.h"
#include "bzimage.h"

#define RAM	   (96u << 20)
#define LINK	   0x1000000ULL /* the test vmlinux's physical link address */
#define VLINK	   (0xffffffff80000000ULL + LINK)
#define SEG_B	   0x3000ULL /* its second segment, after a 4 KiB gap */
#define EXTENT	   (SEG_B + 0x2000)
#define ENTRY_OFF  0x40
#define F32	   0x10 /* image offsets of the relocated fields */
#define FINV	   0x20
#define F64	   (SEG_B + 8)
#define V32	   0x81000100u
#define VINV	   0x1000u
#define V64	   0xffffffff81000200ULL
#define INIT_SIZE  (8u << 20)
#define SETUP_LEN  (5 * 512)
#define ZOFF	   0x100 /* payload_offset: from the protected-mode code */

/* A vmlinux as the kernel's build leaves it before compression: an ELF file with a
 * text segment at LINK and a data+bss one at LINK + SEG_B (its file offset 4 KiB further
 * on, as the percpu segment of a real one; with up, 4 KiB less), a section header table
 * at its end, then the relocation table (32-bit, inverse 32-bit and 64-bit lists). */
static uint8_t *make_vmlinux(size_t *len, uint32_t bad_reloc, int up)
{
	const size_t off_a = 0x1000, off_b = up ? 0x3000 : 0x5000, sh = 0x6000;
	const uint32_t table[] = {0, (uint32_t)(VLINK + F64), 0, (uint32_t)(VLINK + FINV), 0,
				  bad_reloc ? bad_reloc : (uint32_t)(VLINK + F32)};
	size_t n = sh + sizeof(Elf64_Shdr) + sizeof(table);
	uint8_t *img = calloc(1, n);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(*eh));

	make_elf_header(eh, LINK + ENTRY_OFF, 2); /* a physical entry, as a vmlinux has */
	eh->e_shoff = sh;
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = 1;
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = off_a, .p_vaddr = VLINK, .p_paddr = LINK,
			     .p_filesz = 0x2000, .p_memsz = 0x2000};
	ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = off_b, .p_vaddr = VLINK + SEG_B,
			     .p_paddr = LINK + SEG_B, .p_filesz = 0x1000, .p_memsz = 0x2000};
	memset(img + off_a, 0x90, 0x2000);
	memset(img + off_b, 0x11, 0x1000);
	put32(img + off_a + F32, V32);
	put32(img + off_a + FINV, VINV);
	put64(img + off_b + 8, V64);
	memcpy(img + sh + sizeof(Elf64_Shdr), table, sizeof(table));
	*len = n;
	return img;
}

/* The kernel build's compressed file for kind, with the output size appended. */
static uint8_t *pack(enum kpayload_kind kind, const uint8_t *src, size_t n, size_t *len)
{
	uint8_t *out = calloc(1, n + 1024);
	size_t at = 0;

	if (kind == KPAYLOAD_GZIP) {
		z_stream z = {0};

		assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
				 Z_OK);
		z.next_in = (Bytef *)src;
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)(n + 1024);
		assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
		at = z.total_out; /* gzip's trailer already ends with the size */
		deflateEnd(&z);
		*len = at;
		return out;
	}
	if (kind == KPAYLOAD_LZ4) {
		/* Two blocks (any size up to 8 MiB each), the second in a new frame. */
		size_t half = n / 2, i;

		for (i = 0; i < 2; i++) {
			const uint8_t *p = src + (i ? half : 0);
			int c;

			put32(out + at, 0x184c2102);
			c = LZ4_compress_default((const char *)p, (char *)out + at + 8,
						 (int)(i ? n - half : half), (int)(n + 1024 - at - 8));
			assert_true(c > 0);
			put32(out + at + 4, (uint32_t)c);
			at += 8 + (size_t)c;
		}
	} else {
		at = ZSTD_compress(out, n + 1024, src, n, 19);
		assert_false(ZSTD_isError(at));
	}
	put32(out + at, (uint32_t)n);
	*len = at + 4;
	return out;
}

/* A bzImage around a payload: make_bzimage()'s header, the payload at ZOFF. */
static uint8_t *wrap(const uint8_t *z, size_t zlen, size_t *len)
{
	uint8_t *hdr = make_bzimage(), *img;

	*len = SETUP_LEN + ZOFF + zlen;
	img = calloc(1, *len);
	memcpy(img, hdr, SETUP_LEN);
	put32(img + 0x248, ZOFF);
	put32(img + 0x24c, (uint32_t)zlen);
	put32(img + 0x260, INIT_SIZE);
	memcpy(img + SETUP_LEN + ZOFF, z, zlen);
	free(hdr);
	return img;
}

struct rig {
	uint8_t *ram;
	struct guest_mem gm;
	struct boot_e820_entry e820[1];
	struct linux_boot_cfg cfg;
	struct linux_kernel k;
	const char *why;
};

static void rig_init(struct rig *r, const char *cmdline, int kaslr, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->ram = calloc(1, RAM);
	r->gm = (struct guest_mem){.nr_slots = 1, .fd = -1, .total = RAM};
	r->gm.slot[0] = (struct guest_mem_slot){.gpa = 0, .size = RAM, .hva = r->ram};
	r->e820[0] = (struct boot_e820_entry){0x100000, RAM - 0x100000, E820_RAM};
	r->cfg = (struct linux_boot_cfg){.cmdline = cmdline, .initrd_fd = -1, .kernel_fd = -1,
					 .low_ram_end = RAM, .e820 = r->e820, .e820_nr = 1,
					 .kaslr = kaslr, .kaslr_seed = seed};
}

static int rig_load(struct rig *r, const uint8_t *img, size_t len)
{
	assert_int_equal(linux_probe(img, len, &r->k, &r->why), 0);
	return linux_load(&r->gm, &r->k, &r->cfg, &r->why);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static const struct boot_params *zero_page(const struct rig *r)
{
	return (const struct boot_params *)(r->ram + LAYOUT_ZERO_PAGE);
}

/* Unpacked where linked, not relocated: each compression. */
static void test_unpack_each_kind(void **state)
{
	static const enum kpayload_kind kinds[] = {KPAYLOAD_GZIP, KPAYLOAD_LZ4, KPAYLOAD_ZSTD};
	static const char *const names[] = {"gzip", "LZ4", "zstd"};
	size_t vlen, zlen, len, i;
	uint8_t *v = make_vmlinux(&vlen, 0, 0), *z, *img;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct rig r;
		uint8_t *k;

		z = pack(kinds[i], v, vlen, &zlen);
		assert_int_equal(kpayload_kind(z, zlen), kinds[i]);
		img = wrap(z, zlen, &len);
		rig_init(&r, "console=ttyS0", 0, 0);
		memset(r.ram + LINK + 0x2000, 0xee, 0x100); /* between the segments: zeroed */
		memset(r.ram + LINK + SEG_B + 0x1000, 0xee, 0x1000); /* bss: zeroed */
		assert_int_equal(rig_load(&r, img, len), 0);
		assert_non_null(r.k.unpacked);
		assert_string_equal(r.k.unpacked, names[i]);
		assert_int_equal(r.k.phys, LINK);
		assert_int_equal(r.k.entry, LINK + ENTRY_OFF);
		assert_int_equal(r.k.kaslr, 0);
		k = r.ram + LINK;
		assert_int_equal(k[0], 0x90);
		assert_int_equal(get32(k + F32), V32);
		assert_int_equal(get32(k + FINV), VINV);
		assert_int_equal(get64(k + F64), V64);
		assert_int_equal(k[0x2000], 0);
		/* Where the ELF header and the relocation table were unpacked: zeroed. */
		assert_int_equal(k[-0x1000], 0);
		assert_int_equal(get32(k - 0x1000 + vlen - 4), 0);
		assert_int_equal(k[SEG_B], 0x11);
		assert_int_equal(k[SEG_B + 0x1000], 0);
		assert_int_equal(k[SEG_B + 0x1fff], 0);
		assert_int_equal(zero_page(&r)->hdr.loadflags & KASLR_FLAG, 0);
		/* The same from the kernel's file descriptor. */
		{
			char path[] = "/tmp/plinth-kunpack-XXXXXX";
			int fd = mkstemp(path);

			assert_true(fd >= 0);
			unlink(path);
			assert_int_equal(pwrite_full(fd, img, len, 0), 0);
			memset(k, 0, EXTENT);
			r.cfg.kernel_fd = fd;
			assert_int_equal(linux_load(&r.gm, &r.k, &r.cfg, &r.why), 0);
			assert_non_null(r.k.unpacked);
			assert_int_equal(get64(k + F64), V64);
			close(fd);
		}
		free(r.ram);
		free(img);
		free(z);
	}
	free(v);
}

/* With KASLR: a 2 MiB-aligned place below the initrd and the fields moved by the
 * virtual displacement; the same seed, the same place; nokaslr (a whole word) none. */
static void test_kaslr(void **state)
{
	size_t vlen, zlen, len;
	uint8_t *v = make_vmlinux(&vlen, 0, 0), *z = pack(KPAYLOAD_LZ4, v, vlen, &zlen);
	uint8_t *img = wrap(z, zlen, &len), *k;
	uint64_t delta, seen = 0;
	struct rig r;
	unsigned int s;

	(void)state;
	for (s = 1; s <= 8; s++) {
		rig_init(&r, "console=ttyS0 nokaslrx", 1, 0x9e3779b97f4a7c15ULL * s);
		assert_int_equal(rig_load(&r, img, len), 0);
		assert_int_equal(r.k.kaslr, 1);
		assert_int_equal(r.k.phys % (2u << 20), 0);
		assert_true(r.k.phys >= LINK && r.k.phys + EXTENT <= RAM);
		assert_int_equal(r.k.entry, r.k.phys + ENTRY_OFF);
		delta = r.k.kaslr_delta;
		assert_int_equal(delta % (2u << 20), 0);
		assert_true(LINK + delta + EXTENT <= (1ULL << 30));
		k = r.ram + r.k.phys;
		assert_int_equal(get32(k + F32), (uint32_t)(V32 + delta));
		assert_int_equal(get32(k + FINV), (uint32_t)(VINV - delta));
		assert_int_equal(get64(k + F64), V64 + delta);
		assert_int_equal(zero_page(&r)->hdr.loadflags & KASLR_FLAG, KASLR_FLAG);
		seen |= 1ULL << ((r.k.phys >> 21) % 64) | 1ULL << ((delta >> 21) % 64);
		free(r.ram);
	}
	assert_true(__builtin_popcountll(seen) > 4); /* not one fixed place */

	rig_init(&r, "console=ttyS0 nokaslr quiet", 1, 12345);
	assert_int_equal(rig_load(&r, img, len), 0);
	assert_int_equal(r.k.kaslr, 0);
	assert_int_equal(r.k.phys, LINK);
	assert_int_equal(get64(r.ram + LINK + F64), V64);
	assert_int_equal(zero_page(&r)->hdr.loadflags & KASLR_FLAG, 0);
	free(r.ram);
	free(img);
	free(z);
	free(v);
}

/* Every corrupt or unknown payload boots the bzImage as it is (its decompressor then
 * runs in the guest), with the reason kept. */
static void test_fallback(void **state)
{
	size_t vlen, zlen, len;
	uint8_t *v = make_vmlinux(&vlen, 0, 0), *bad = make_vmlinux(&vlen, 0x80000000u, 0);
	uint8_t *up = make_vmlinux(&vlen, 0, 1), *z, *img;
	struct rig r;
	unsigned int c;

	(void)state;
	for (c = 0; c < 7; c++) {
		/* 4: a relocation outside the kernel; 6: a segment that would move up. */
		z = pack(c == 5 ? KPAYLOAD_GZIP : KPAYLOAD_LZ4, c == 4 ? bad : c == 6 ? up : v, vlen, &zlen);
		if (c == 0)
			put32(z + zlen - 4, (uint32_t)vlen + 1); /* the size trailer lies */
		else if (c == 1)
			put32(z + zlen - 4, INIT_SIZE + 1); /* larger than init_size */
		else if (c == 2)
			put32(z + 4, 0x7fffffff); /* a block longer than the payload */
		else if (c == 3)
			memcpy(z, "\xfd" "7zXZ", 5); /* xz: not unpacked here */
		else if (c == 5)
			z[zlen / 2] ^= 0xff; /* gzip data corrupt */
		img = wrap(z, zlen, &len);
		rig_init(&r, "console=ttyS0", 1, 0x700000007ULL); /* both offsets move */
		assert_int_equal(rig_load(&r, img, len), 0);
		assert_null(r.k.unpacked);
		assert_non_null(r.k.unpack_why);
		assert_int_equal(r.k.entry, r.k.load_addr + 0x200);
		assert_memory_equal(r.ram + r.k.load_addr, img + SETUP_LEN, len - SETUP_LEN);
		assert_int_equal(zero_page(&r)->hdr.loadflags & KASLR_FLAG, 0);
		/* Nothing an unpacking left behind: no kernel text (0x90) outside the copy. */
		assert_null(memchr(r.ram + 0x100000, 0x90, r.k.load_addr - 0x100000));
		assert_null(memchr(r.ram + r.k.load_addr + (len - SETUP_LEN), 0x90,
				   RAM - r.k.load_addr - (len - SETUP_LEN)));
		free(r.ram);
		free(img);
		free(z);
	}
	free(up);
	free(bad);
	free(v);
}

/* The relocation table's own checks. */
static void test_reloc_table(void **state)
{
	size_t vlen;
	uint8_t *v = make_vmlinux(&vlen, 0, 0), *imgbuf = calloc(1, EXTENT);
	size_t elf_end = vlen - 6 * 4;
	struct kreloc_table t;
	const char *why;

	(void)state;
	assert_int_equal(kreloc_find(v, vlen, elf_end, &t, &why), 0);
	assert_int_equal(t.n32, 1);
	assert_int_equal(t.ninv, 1);
	assert_int_equal(t.n64, 1);
	assert_int_equal(kreloc_find(v, elf_end, elf_end, &t, &why), 0); /* none at all */
	assert_int_equal(t.n32 + t.ninv + t.n64, 0);
	assert_int_equal(kreloc_find(v, vlen, elf_end + 4, &t, &why), -ENOEXEC);
	assert_int_equal(kreloc_find(v, vlen, elf_end - 4, &t, &why), -ENOEXEC);
	assert_int_equal(kreloc_find(v, vlen, elf_end + 2, &t, &why), -ENOEXEC);
	assert_int_equal(kreloc_find(v, vlen, vlen + 4, &t, &why), -ENOEXEC);
	/* A field past the image: nothing is written, not even the fields before it. */
	assert_int_equal(kreloc_find(v, vlen, elf_end, &t, &why), 0);
	put32(imgbuf + F32, V32);
	assert_int_equal(kreloc_apply(&t, imgbuf, F64 + 4, VLINK, 2u << 20, &why), -ENOEXEC);
	assert_int_equal(get32(imgbuf + F32), V32);
	assert_int_equal(kreloc_apply(&t, imgbuf, EXTENT, VLINK, 2u << 20, &why), 0);
	assert_int_equal(get32(imgbuf + F32), V32 + (2u << 20));
	free(imgbuf);
	free(v);
}

/*
 * A legacy LZ4 payload of several blocks (the kernel's own are 8 MiB of output each but
 * the last, which plinth unpacks on two threads): the output of blocks of the given
 * sizes in MiB (the last block takes the rest), compressed, with the size appended.
 */
static uint8_t *pack_lz4_blocks(const uint8_t *src, size_t n, const unsigned *mib, size_t nb,
				size_t *len)
{
	size_t cap = (size_t)LZ4_compressBound((int)n) + 64 * nb, at = 4, done = 0, i;
	uint8_t *out = malloc(cap);

	put32(out, 0x184c2102);
	for (i = 0; i < nb; i++) {
		size_t take = i + 1 < nb ? (size_t)mib[i] << 20 : n - done;
		int c = LZ4_compress_default((const char *)src + done, (char *)out + at + 4, (int)take,
					     (int)(cap - at - 4));

		assert_true(c > 0);
		put32(out + at, (uint32_t)c);
		at += 4 + (size_t)c;
		done += take;
	}
	put32(out + at, (uint32_t)n);
	*len = at + 4;
	return out;
}

static void test_lz4_blocks(void **state)
{
	static const unsigned full[] = {8, 8, 8}, quarter[] = {4, 4, 4, 4, 4, 4},
			      short_mid[] = {8, 6, 7};
	const size_t n = (20u << 20) + 12345;
	uint8_t *src = malloc(n), *dst = malloc(n), *z;
	uint32_t x = 1;
	const char *why;
	size_t zlen, at, i;

	(void)state;
	for (i = 0; i < n; i++) { /* compressible, yet no two blocks alike */
		x = x * 1103515245u + 12345u;
		src[i] = (uint8_t)(i % 251 < 200 ? i / 4096 : x >> 24);
	}
	/* 8 MiB blocks (two threads), 4 MiB ones and a short block inside (one thread). */
	for (i = 0; i < 3; i++) {
		const unsigned *sz = i == 0 ? full : i == 1 ? quarter : short_mid;
		size_t nb = i == 1 ? 6 : 3;

		z = pack_lz4_blocks(src, n, sz, nb, &zlen);
		memset(dst, 0xee, n);
		assert_int_equal(kpayload_unpack_into(z, zlen, dst, n, &why), 0);
		assert_memory_equal(dst, src, n);
		free(z);
	}
	/* The last block cut short by 100 bytes (its length field says so): refused. */
	z = pack_lz4_blocks(src, n, full, 3, &zlen);
	for (at = 4, i = 0; i < 2; i++)
		at += 4 + get32(z + at);
	put32(z + at, get32(z + at) - 100);
	zlen -= 100;
	put32(z + zlen - 4, (uint32_t)n);
	assert_int_equal(kpayload_unpack_into(z, zlen, dst, n, &why), -ENOEXEC);
	/* One byte more output than the trailer says: refused. */
	free(z);
	z = pack_lz4_blocks(src, n, full, 3, &zlen);
	put32(z + zlen - 4, (uint32_t)(n - 1));
	assert_int_equal(kpayload_unpack_into(z, zlen, dst, n - 1, &why), -ENOEXEC);
	free(z);
	free(dst);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unpack_each_kind),
		cmocka_unit_test(test_kaslr),
		cmocka_unit_test(test_fallback),
		cmocka_unit_test(test_reloc_table),
		cmocka_unit_test(test_lz4_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
