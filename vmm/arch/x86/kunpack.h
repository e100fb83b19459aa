/* SPDX-License-Identifier: MIT */
/*
 * A bzImage's compressed payload, unpacked by the VMM instead of by the kernel's own
 * decompressor in the guest: the vmlinux ELF file it holds, and the table of
 * relocations the kernel build appends after it (arch/x86/tools/relocs) for KASLR.
 *
 * Why: the guest's decompressor is the largest single cost of a boot. In the emulated
 * host it spent ~0.85 s of a 2.4 s start-to-init unpacking Debian's 14 MB LZ4 payload
 * (its 53 MB output written through nested paging), where liblz4 in the VMM takes
 * 0.12 s (boot.c writes that output straight into guest memory). Firecracker and Cloud Hypervisor go further and take only an uncompressed
 * vmlinux; plinth keeps taking the bzImage a distribution ships, and keeps KASLR by
 * doing what the decompressor would: pick a random physical and virtual offset and
 * apply the relocations (boot.c).
 *
 * Everything here reads a file the user gave: every length is checked, and anything
 * not understood is -ENOTSUP or -ENOEXEC, after which the loader boots the bzImage as
 * it is and the guest's decompressor does the work.
 */
#ifndef PLINTH_VMM_ARCH_X86_KUNPACK_H
#define PLINTH_VMM_ARCH_X86_KUNPACK_H

#include <stddef.h>
#include <stdint.h>

/* The compressions unpacked here (the kernel's KERNEL_GZIP, KERNEL_LZ4, KERNEL_ZSTD). */
enum kpayload_kind {
	KPAYLOAD_OTHER, /* bzip2, lzma, xz, lzo or unknown: left to the guest */
	KPAYLOAD_GZIP,
	KPAYLOAD_LZ4, /* LZ4's legacy frame, as the kernel's "lz4 -l" writes it */
	KPAYLOAD_ZSTD,
};

enum kpayload_kind kpayload_kind(const uint8_t *p, size_t len);
const char *kpayload_name(enum kpayload_kind kind);

/*
 * A payload is the compressed file followed by the 4-byte little-endian size of its
 * output, as the kernel's build appends it (gzip's own trailer is that size).
 * kpayload_size: that size, which must be non-zero and at most max_out. 0; -ENOTSUP for a
 * compression not handled here; -ENOEXEC with *why.
 */
int kpayload_size(const uint8_t *p, size_t len, size_t max_out, size_t *size, const char **why);

/* The first n bytes of the output (an ELF header and its program headers), into out.
 * 0, or -ENOEXEC / -ENOTSUP / -ENOMEM with *why. */
int kpayload_peek(const uint8_t *p, size_t len, uint8_t *out, size_t n, const char **why);

/* The whole output into out, which holds exactly size bytes (kpayload_size()): 0, or
 * -ENOEXEC with *why if the data is corrupt or not that long. It faults out's pages in
 * itself, and unpacks an LZ4 payload of several blocks on two threads (one started and
 * joined here; where a seccomp filter refuses threads, on the caller's alone). */
int kpayload_unpack_into(const uint8_t *p, size_t len, uint8_t *out, size_t size, const char **why);

/*
 * The relocation table after the ELF file (which ends at elf_end) in an unpacked
 * payload of len bytes. Read from the end, it is: 32-bit relocations, 0, inverse 32-bit
 * relocations, 0, 64-bit relocations, 0; each entry is the kernel virtual address of a
 * field, as a 32-bit value sign-extended. The table must end exactly at elf_end.
 */
struct kreloc_table {
	const uint8_t *base; /* the unpacked payload */
	size_t n32, ninv, n64;
	size_t at32, atinv, at64; /* byte offset of each list's last (highest) entry */
};

/*
 * Find the table. 0 (an empty table, all counts 0, when len == elf_end: a kernel built
 * without RANDOMIZE_BASE), or -ENOEXEC with *why.
 */
int kreloc_find(const uint8_t *buf, size_t len, size_t elf_end, struct kreloc_table *t,
		const char **why);

/*
 * Apply the table to a kernel image loaded at img (img_len bytes, the kernel's linked
 * virtual address link_vaddr at img[0]) for a virtual displacement of delta bytes: each
 * field gains delta (an inverse one loses it). Every field must lie inside the image;
 * 0, or -ENOEXEC with *why and the image untouched (every field is checked first).
 */
int kreloc_apply(const struct kreloc_table *t, uint8_t *img, uint64_t img_len, uint64_t link_vaddr,
		 uint64_t delta, const char **why);

#endif
