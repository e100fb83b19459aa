// SPDX-License-Identifier: MIT
#include "boot.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kunpack.h"
#include "layout.h"
#include "resources.h"
#include "util.h"

/* Offsets into a bzImage (Documentation/arch/x86/boot.rst). */
#define BZ_SETUP_SECTS	 0x1f1
#define BZ_BOOT_FLAG	 0x1fe
#define BZ_JUMP		 0x200
#define BZ_HEADER	 0x202
#define BZ_VERSION	 0x206
#define BZ_LOADFLAGS	 0x211
#define BZ_INITRD_MAX	 0x22c
#define BZ_RELOCATABLE	 0x234
#define BZ_XLOADFLAGS	 0x236
#define BZ_CMDLINE_SIZE	 0x238
#define BZ_KERNEL_ALIGN	 0x230
#define BZ_PAYLOAD_OFF	 0x248
#define BZ_PAYLOAD_LEN	 0x24c
#define BZ_PREF_ADDRESS	 0x258
#define BZ_INIT_SIZE	 0x260
#define BZ_MIN_LEN	 0x268	/* through init_size */
#define BZ_MIN_VERSION	 0x020c /* 2.12: xloadflags, the 64-bit entry */
#define ELF_MAX_PHDRS	 64
#define X86_KERNEL_VBASE 0xffffffff80000000ULL /* __START_KERNEL_map */
/* KERNEL_IMAGE_SIZE with RANDOMIZE_BASE: the kernel's virtual range, from VBASE. */
#define X86_KERNEL_VSPAN (1ULL << 30)
#define KASLR_MIN_ALIGN	 (2ULL << 20) /* a 2 MiB page: head_64 maps the kernel with them */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static int probe_elf(const uint8_t *img, size_t len, struct linux_kernel *k, const char **why)
{
	Elf64_Ehdr eh;
	uint64_t lo = UINT64_MAX, hi = 0, entry;
	unsigned int i;
	int entry_ok = 0;

	if (len < sizeof(eh)) {
		*why = "truncated ELF header";
		return -ENOEXEC;
	}
	memcpy(&eh, img, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		*why = "ELF file is not an x86-64 image";
		return -ENOEXEC;
	}
	if (eh.e_type != ET_EXEC) {
		*why = "ELF file is not an executable (a vmlinux is ET_EXEC)";
		return -ENOEXEC;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum || eh.e_phnum > ELF_MAX_PHDRS ||
	    !range_within(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len)) {
		*why = "ELF file has no usable program headers";
		return -ENOEXEC;
	}
	entry = eh.e_entry >= X86_KERNEL_VBASE ? eh.e_entry - X86_KERNEL_VBASE : eh.e_entry;
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t end;

		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz || !range_within(ph.p_offset, ph.p_filesz, len) ||
		    add_overflow(ph.p_paddr, ph.p_memsz, &end) || end > LAYOUT_MEM_HOLE) {
			*why = "ELF segment lies outside the file or low memory";
			return -ENOEXEC;
		}
		lo = MIN(lo, ph.p_paddr);
		hi = MAX(hi, end);
		if (entry >= ph.p_paddr && entry < end)
			entry_ok = 1;
	}
	if (hi == 0 || lo < LAYOUT_HIGH_START) {
		*why = "ELF file has no loadable segment above 1 MiB";
		return -ENOEXEC;
	}
	if (!entry_ok) {
		*why = "ELF entry point is not inside a loaded segment";
		return -ENOEXEC;
	}
	k->elf = 1;
	k->version = 0;
	k->load_addr = lo;
	k->mem_needed = hi - lo;
	k->entry = entry;
	k->initrd_addr_max = 0x7fffffff;
	k->cmdline_max = 2047;
	k->hdr_len = 0;
	return 0;
}

static int probe_bzimage(const uint8_t *img, size_t len, struct linux_kernel *k, const char **why)
{
	unsigned int setup_sects;
	uint64_t pref, init_size;
	size_t hdr_end;

	if (len < BZ_MIN_LEN) {
		*why = "file too short to be a Linux kernel";
		return -ENOEXEC;
	}
	if (rd16(img + BZ_BOOT_FLAG) != 0xaa55 || memcmp(img + BZ_HEADER, "HdrS", 4)) {
		*why = "not a Linux kernel (no bzImage header and not ELF)";
		return -ENOEXEC;
	}
	k->version = rd16(img + BZ_VERSION);
	if (k->version < BZ_MIN_VERSION) {
		*why = "kernel boot protocol too old (need 2.12 or later)";
		return -ENOEXEC;
	}
	if (!(img[BZ_LOADFLAGS] & LOADED_HIGH)) {
		*why = "kernel is a zImage, not a bzImage";
		return -ENOEXEC;
	}
	if (!(rd16(img + BZ_XLOADFLAGS) & XLF_KERNEL_64)) {
		*why = "kernel has no 64-bit entry point";
		return -ENOEXEC;
	}
	setup_sects = img[BZ_SETUP_SECTS] ? img[BZ_SETUP_SECTS] : 4;
	k->payload_off = (uint64_t)(setup_sects + 1) * 512;
	if (k->payload_off >= len) {
		*why = "kernel image truncated (no protected-mode code)";
		return -ENOEXEC;
	}
	/* The setup header ends at 0x202 + the jump's offset byte. */
	hdr_end = BZ_HEADER + img[BZ_JUMP + 1];
	hdr_end = MIN(hdr_end, (size_t)0x1f1 + sizeof(struct setup_header));
	hdr_end = MIN(hdr_end, len);
	k->hdr_len = hdr_end > 0x1f1 ? hdr_end - 0x1f1 : 0;

	pref = rd64(img + BZ_PREF_ADDRESS);
	init_size = rd32(img + BZ_INIT_SIZE);
	/* Load where the kernel prefers (it then decompresses in place), else at 1 MiB. */
	if (img[BZ_RELOCATABLE] && pref >= LAYOUT_HIGH_START && !(pref & 0xfff) &&
	    pref < LAYOUT_MEM_HOLE)
		k->load_addr = pref;
	else
		k->load_addr = LAYOUT_HIGH_START;
	k->elf = 0;
	k->mem_needed = MAX(init_size, (uint64_t)(len - k->payload_off));
	k->entry = k->load_addr + 0x200;
	k->initrd_addr_max = rd32(img + BZ_INITRD_MAX);
	k->cmdline_max = rd32(img + BZ_CMDLINE_SIZE);
	/* The compressed vmlinux (protocol 2.08+), for the VMM to unpack (kunpack.h). */
	k->zpayload_off = k->payload_off + rd32(img + BZ_PAYLOAD_OFF);
	k->zpayload_len = rd32(img + BZ_PAYLOAD_LEN);
	if (!range_within(k->zpayload_off, k->zpayload_len, len))
		k->zpayload_len = 0;
	k->align = rd32(img + BZ_KERNEL_ALIGN);
	if (!img[BZ_RELOCATABLE] || k->align & (k->align - 1))
		k->align = 0; /* not movable: loaded where linked, never randomized */
	else
		k->align = MAX(k->align, KASLR_MIN_ALIGN);
	if (k->cmdline_max > LAYOUT_CMDLINE_MAX - 1)
		k->cmdline_max = LAYOUT_CMDLINE_MAX - 1;
	return 0;
}

int linux_probe(const uint8_t *img, size_t len, struct linux_kernel *k, const char **why)
{
	int ret;

	memset(k, 0, sizeof(*k));
	if (len >= 4 && !memcmp(img, ELFMAG, SELFMAG))
		ret = probe_elf(img, len, k, why);
	else
		ret = probe_bzimage(img, len, k, why);
	if (ret)
		return ret;
	k->image = img;
	k->image_len = len;
	return 0;
}

static int load_elf_segments(struct guest_mem *gm, const struct linux_kernel *k)
{
	Elf64_Ehdr eh;
	unsigned int i;

	memcpy(&eh, k->image, sizeof(eh));
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, k->image + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;
		dst = guest_mem_ptr(gm, ph.p_paddr, ph.p_memsz);
		if (!dst)
			return -ENOMEM;
		memcpy(dst, k->image + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	return 0;
}

/* Where an ELF file's bytes end: its header tables and its segments' data
 * (UINT64_MAX if a field overflows). probe_elf() has checked the program headers. */
static uint64_t elf_file_end(const uint8_t *img)
{
	Elf64_Ehdr eh;
	uint64_t end, e;
	unsigned int i;

	memcpy(&eh, img, sizeof(eh));
	end = eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr);
	if (eh.e_shnum && add_overflow(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize, &e))
		return UINT64_MAX;
	if (eh.e_shnum)
		end = MAX(end, e);
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (add_overflow(ph.p_offset, ph.p_filesz, &e))
			return UINT64_MAX;
		end = MAX(end, e);
	}
	return end;
}

/* The command line holds this word (the kernel's own parsing splits at spaces). */
static int cmdline_has(const char *cmdline, const char *word)
{
	size_t n = strlen(word);
	const char *p = cmdline;

	while ((p = strstr(p, word))) {
		if ((p == cmdline || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return 1;
		p += n;
	}
	return 0;
}

/* A random multiple of align from lo to hi (inclusive, both aligned), from 32 bits. */
static uint64_t kaslr_pick(uint64_t lo, uint64_t hi, uint64_t align, uint32_t r)
{
	return lo + (r % ((hi - lo) / align + 1)) * align;
}

/* The PT_LOAD segments of a kernel's ELF file, sorted by file offset. */
struct kseg {
	uint64_t off, paddr, filesz, memsz;
};

#define KPEEK_LEN 4096 /* the ELF header and program headers must lie in these bytes */

/*
 * The vmlinux's segments from its first KPEEK_LEN bytes (head), for a file of size
 * bytes, if it can be unpacked in place: laid out file-linear from its lowest segment,
 * every segment then moves down or stays to reach its address, in the same order in
 * the file and in memory, none overlapping another. The count, or -ENOEXEC with *why.
 */
static int kseg_plan(const uint8_t *head, size_t size, struct kseg *seg, struct linux_kernel *v,
		     const char **why)
{
	Elf64_Ehdr eh;
	unsigned int i, j, n = 0;
	int ret;

	memcpy(&eh, head, sizeof(eh));
	if (eh.e_phoff > KPEEK_LEN || eh.e_phnum > ELF_MAX_PHDRS ||
	    eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > KPEEK_LEN) {
		*why = "unpacked kernel's program headers are not at its start";
		return -ENOEXEC;
	}
	ret = probe_elf(head, size, v, why); /* header and segments, against the whole size */
	if (ret)
		return ret;
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		struct kseg k;

		memcpy(&ph, head + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;
		k = (struct kseg){ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz};
		for (j = n++; j > 0 && seg[j - 1].off > k.off; j--)
			seg[j] = seg[j - 1];
		seg[j] = k;
	}
	for (i = 0; i < n; i++) {
		/* probe_elf: seg[i] lies in the file and in [v->load_addr, + v->mem_needed). */
		if ((i && (seg[i - 1].off + seg[i - 1].filesz > seg[i].off ||
			   seg[i - 1].paddr + seg[i - 1].memsz > seg[i].paddr)) ||
		    seg[i].paddr - v->load_addr > seg[i].off - seg[0].off || seg[i].off < seg[0].off) {
			*why = "unpacked kernel's segments cannot be placed in place";
			return -ENOEXEC;
		}
	}
	return (int)n;
}

/*
 * Unpack a bzImage's payload (kunpack.h) straight into guest memory as its vmlinux,
 * below top (the initrd, or the end of low RAM), placed and relocated as the kernel's
 * own decompressor would place it: with cfg->kaslr, at a random 2 MiB-aligned physical
 * address and a random virtual offset within the kernel's 1 GiB, unless the command
 * line says nokaslr (arch/x86/boot/compressed/kaslr.c does the same in the guest).
 * The ELF file is written file-linear so that its lowest segment lands where it runs;
 * the others then move down to their addresses, the relocation table (after the file)
 * is copied out and applied, and every byte of the file that is no segment is zeroed.
 * No buffer as large as the kernel: in the emulated host, allocating and zeroing one
 * cost as much as decompressing. 0, or -errno with *why: the caller then loads the
 * bzImage as it is.
 */
static int load_unpacked(struct guest_mem *gm, struct linux_kernel *k,
			 const struct linux_boot_cfg *cfg, uint64_t top, const char **why)
{
	const uint8_t *src = k->image + k->zpayload_off;
	uint64_t link_phys, extent, phys, virt, lo, hi, span, elf_end, at;
	struct kseg seg[ELF_MAX_PHDRS] = {0};
	uint8_t head[KPEEK_LEN], *zbuf = NULL, *file = NULL, *tab = NULL;
	struct kreloc_table rt;
	struct linux_kernel v;
	size_t size = 0;
	int ret, rnd, n, i;

	if (!k->zpayload_len) {
		*why = "the kernel's header names no payload";
		return -ENOTSUP;
	}
	ret = kpayload_size(src, k->zpayload_len, k->mem_needed, &size, why);
	if (ret)
		return ret;
	if (size < KPEEK_LEN) {
		*why = "unpacked kernel too small to be a vmlinux";
		return -ENOEXEC;
	}
	/*
	 * Unpack from the file's mapping once its pages are in, faulted in with one call:
	 * in the emulated host that took 4-85 ms where reading the payload into a buffer took
	 * 17-300 ms (the buffer's fresh pages cost as much as the read). Without that call
	 * (Linux < 5.14) or if it fails, read rather than fault page by page
	 * (linux_boot_cfg.kernel_fd).
	 */
	if (mem_populate(src, k->zpayload_len, false)) {
		/* src stays the mapping */
	} else if (cfg->kernel_fd >= 0) {
		zbuf = mmap(NULL, k->zpayload_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (zbuf == MAP_FAILED) {
			*why = "no memory to unpack the kernel";
			return -ENOMEM;
		}
		ret = pread_full(cfg->kernel_fd, zbuf, k->zpayload_len, (off_t)k->zpayload_off);
		if (ret) {
			*why = "cannot read the kernel";
			goto out;
		}
		src = zbuf;
	}
	ret = kpayload_peek(src, k->zpayload_len, head, KPEEK_LEN, why);
	if (ret)
		goto out;
	n = kseg_plan(head, size, seg, &v, why);
	if (n <= 0) {
		*why = n ? *why : "unpacked kernel has no segment to load";
		ret = n ? n : -ENOEXEC;
		goto out;
	}
	link_phys = v.load_addr;
	extent = v.mem_needed;
	elf_end = elf_file_end(head);
	/* The file spans [phys - seg[0].off, + size); the kernel [phys, + extent). */
	span = MAX(size - seg[0].off, extent);
	lo = MAX(k->load_addr, seg[0].off + LAYOUT_HIGH_START);
	rnd = cfg->kaslr && k->align && !cmdline_has(cfg->cmdline, "nokaslr");
	phys = link_phys;
	if (rnd) {
		lo = (lo + k->align - 1) & ~(k->align - 1);
		hi = top >= span ? (top - span) & ~(k->align - 1) : 0;
		if (hi >= lo)
			phys = kaslr_pick(lo, hi, k->align, (uint32_t)cfg->kaslr_seed);
	}
	if (phys < lo || phys + span > top ||
	    !(file = guest_mem_ptr(gm, phys - seg[0].off, size)) || !guest_mem_ptr(gm, phys, extent)) {
		*why = "no room for the unpacked kernel below the initrd";
		ret = -ENOMEM;
		goto out;
	}
	/* It faults the guest pages in itself (the emulated host's traps are slow). */
	ret = kpayload_unpack_into(src, k->zpayload_len, file, size, why);
	if (ret)
		goto out;
	if (memcmp(file, head, KPEEK_LEN)) {
		*why = "kernel payload decompressed differently twice";
		ret = -ENOEXEC;
		goto out;
	}
	/* The relocation table, out of the way of the segments that move. */
	if (elf_end > size) {
		*why = "unpacked kernel shorter than its ELF headers say";
		ret = -ENOEXEC;
		goto out;
	}
	tab = malloc(MAX(size - elf_end, (uint64_t)1));
	if (!tab) {
		*why = "no memory for the kernel's relocation table";
		ret = -ENOMEM;
		goto out;
	}
	memcpy(tab, file + elf_end, size - elf_end);
	ret = kreloc_find(tab, size - elf_end, 0, &rt, why);
	if (ret)
		goto out;
	/* Down to their addresses, in file order (kseg_plan: nothing is overwritten first). */
	for (i = 0; i < n; i++)
		memmove(file + seg[0].off + (seg[i].paddr - link_phys), file + seg[i].off,
			seg[i].filesz);
	/* Zero what is no segment's data: the headers, gaps, bss, the table's old place. */
	at = 0;
	for (i = 0; i < n; i++) {
		uint64_t dst = seg[0].off + (seg[i].paddr - link_phys);

		memset(file + at, 0, dst - at);
		at = dst + seg[i].filesz;
		memset(file + at, 0, seg[i].memsz - seg[i].filesz);
		at = dst + seg[i].memsz;
	}
	if (at < size)
		memset(file + at, 0, size - at);

	virt = link_phys;
	rnd = rnd && rt.n32 + rt.ninv + rt.n64;
	if (rnd && X86_KERNEL_VSPAN >= link_phys + extent && !(link_phys & (k->align - 1)))
		virt = kaslr_pick(link_phys, (X86_KERNEL_VSPAN - extent) & ~(k->align - 1), k->align,
				  (uint32_t)(cfg->kaslr_seed >> 32));
	if (virt != link_phys) {
		ret = kreloc_apply(&rt, file + seg[0].off, extent, X86_KERNEL_VBASE + link_phys,
				   virt - link_phys, why);
		if (ret)
			goto out;
	}
	k->unpacked = kpayload_name(kpayload_kind(src, k->zpayload_len));
	k->kaslr = rnd;
	k->phys = phys;
	k->kaslr_delta = virt - link_phys;
	k->entry = phys + (v.entry - link_phys);
out:
	/* A failure leaves no trace in guest memory: the bzImage is loaded as it is. */
	if (ret && file)
		memset(file, 0, size);
	free(tab);
	if (zbuf)
		munmap(zbuf, k->zpayload_len);
	return ret;
}

int linux_plan(const struct linux_kernel *k, uint64_t low_ram_end, size_t cmdlen,
	       uint64_t initrd_size, uint64_t *initrd_addr, const char **why)
{
	uint64_t kernel_end, top;

	*initrd_addr = 0;
	if (add_overflow(k->load_addr, k->mem_needed, &kernel_end) || kernel_end > low_ram_end) {
		*why = "guest memory too small for this kernel";
		return -ENOMEM;
	}
	if (cmdlen > k->cmdline_max) {
		*why = "kernel command line longer than this kernel accepts";
		return -E2BIG;
	}
	if (!initrd_size)
		return 0;
	/* As high as the kernel allows, below the end of low RAM, page aligned. */
	top = MIN(low_ram_end, (uint64_t)k->initrd_addr_max + 1);
	if (initrd_size > top || ((top - initrd_size) & ~0xfffULL) < kernel_end) {
		*why = "initrd too large to fit in guest memory beside the kernel";
		return -ENOMEM;
	}
	*initrd_addr = (top - initrd_size) & ~0xfffULL;
	return 0;
}

int linux_load_images(struct guest_mem *gm, struct linux_kernel *k,
		      const struct linux_boot_cfg *cfg, const char **why)
{
	uint64_t initrd_addr = 0, initrd_size = cfg->initrd_fd >= 0 ? cfg->initrd_size : 0;
	size_t cmdlen = strlen(cfg->cmdline);
	int ret;

	ret = linux_plan(k, cfg->low_ram_end, cmdlen, initrd_size, &initrd_addr, why);
	if (ret)
		return ret;
	k->unpacked = k->unpack_why = NULL;
	k->kaslr = 0;
	k->kaslr_delta = 0;
	k->phys = k->load_addr;
	k->initrd_addr = initrd_addr;
	k->initrd_size = initrd_size;
	if (!k->elf)
		k->entry = k->load_addr + BZ_JUMP;
	if (!guest_mem_ptr(gm, k->load_addr, k->mem_needed)) {
		*why = "guest memory too small for this kernel";
		return -ENOMEM;
	}
	if (initrd_size) {
		uint8_t *dst = guest_mem_ptr(gm, initrd_addr, initrd_size);

		if (!dst) {
			*why = "initrd too large to fit in guest memory beside the kernel";
			return -ENOMEM;
		}
		ret = pread_full(cfg->initrd_fd, dst, initrd_size, 0);
		if (ret) {
			*why = "cannot read the initrd";
			return ret;
		}
	}

	if (k->elf) {
		ret = load_elf_segments(gm, k);
		if (ret) {
			*why = "ELF segment outside guest memory";
			return ret;
		}
	} else if (!load_unpacked(gm, k, cfg, initrd_size ? initrd_addr : cfg->low_ram_end,
				  &k->unpack_why)) {
		/* Unpacked and placed: entered at the vmlinux's own entry point. */
	} else if (cfg->kernel_fd >= 0) {
		ret = pread_full(cfg->kernel_fd, guest_mem_ptr(gm, k->load_addr, k->mem_needed),
				 k->image_len - k->payload_off, k->payload_off);
		if (ret) {
			*why = "cannot read the kernel";
			return ret;
		}
	} else {
		memcpy(guest_mem_ptr(gm, k->load_addr, k->mem_needed), k->image + k->payload_off,
		       k->image_len - k->payload_off);
	}
	return 0;
}

int linux_load_params(struct guest_mem *gm, const struct linux_kernel *k,
		      const struct linux_boot_cfg *cfg, const char **why)
{
	size_t cmdlen = strlen(cfg->cmdline);
	struct boot_params *bp = guest_mem_ptr(gm, LAYOUT_ZERO_PAGE, sizeof(*bp));
	char *cmd = guest_mem_ptr(gm, LAYOUT_CMDLINE, cmdlen + 1);
	int ret;

	if (!bp || !cmd || cfg->e820_nr > E820_MAX_ENTRIES_ZEROPAGE) {
		*why = "guest memory too small for the boot data";
		return -ENOMEM;
	}
	memcpy(cmd, cfg->cmdline, cmdlen + 1);

	/* A clean zero page with only the setup header copied in (boot.rst). */
	memset(bp, 0, sizeof(*bp));
	if (k->elf) {
		bp->hdr.boot_flag = 0xaa55;
		bp->hdr.header = 0x53726448; /* "HdrS" */
		bp->hdr.version = 0x020f;
		bp->hdr.kernel_alignment = 0x1000000;
	} else {
		memcpy(&bp->hdr, k->image + 0x1f1, k->hdr_len);
		bp->hdr.code32_start = (uint32_t)k->load_addr;
		/* What the decompressor tells the kernel when it randomized: the kernel
		 * then randomizes its memory regions too (kaslr_enabled()). */
		if (k->kaslr)
			bp->hdr.loadflags |= KASLR_FLAG;
		else if (k->unpacked)
			bp->hdr.loadflags &= (uint8_t)~KASLR_FLAG;
	}
	bp->hdr.type_of_loader = 0xff;
	bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	bp->hdr.loadflags &= (uint8_t)~QUIET_FLAG;
	bp->hdr.heap_end_ptr = 0xfe00 - 0x200;
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->hdr.cmdline_size = (uint32_t)cmdlen + 1;
	bp->hdr.ramdisk_image = (uint32_t)k->initrd_addr;
	bp->hdr.ramdisk_size = (uint32_t)k->initrd_size;
	bp->ext_ramdisk_image = (uint32_t)(k->initrd_addr >> 32);
	bp->ext_ramdisk_size = (uint32_t)(k->initrd_size >> 32);
	bp->acpi_rsdp_addr = cfg->rsdp;
	memcpy(bp->e820_table, cfg->e820, cfg->e820_nr * sizeof(cfg->e820[0]));
	bp->e820_entries = (uint8_t)cfg->e820_nr;

	ret = x86_boot_tables(gm);
	if (ret)
		*why = "guest memory too small for the boot page tables";
	return ret;
}

int linux_load(struct guest_mem *gm, struct linux_kernel *k, const struct linux_boot_cfg *cfg,
	       const char **why)
{
	int ret = linux_load_images(gm, k, cfg, why);

	return ret ? ret : linux_load_params(gm, k, cfg, why);
}

int x86_boot_tables(struct guest_mem *gm)
{
	uint64_t *pml4 = guest_mem_ptr(gm, LAYOUT_PML4, 4096);
	uint64_t *pdpt = guest_mem_ptr(gm, LAYOUT_PDPT, 4096);
	uint64_t *pd = guest_mem_ptr(gm, LAYOUT_PD, 4 * 4096);
	uint64_t *gdt = guest_mem_ptr(gm, LAYOUT_GDT, 5 * 8);
	uint64_t *idt = guest_mem_ptr(gm, LAYOUT_IDT, 8);
	unsigned int i;

	if (!pml4 || !pdpt || !pd || !gdt || !idt)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3; /* present, writable */
	for (i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 4096ULL) | 0x3;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB page */

	/* Boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18. */
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffULL; /* 64-bit code */
	gdt[3] = 0x00cf93000000ffffULL; /* data */
	gdt[4] = 0x00008b0000000067ULL; /* TSS */
	idt[0] = 0;
	return 0;
}

static int e820_cmp(const void *a, const void *b)
{
	const struct boot_e820_entry *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int x86_e820_build(const struct guest_mem *gm, const struct resources *r,
		   struct boot_e820_entry *out, unsigned int max)
{
	unsigned int n = 0, i;

#define E820_ADD(a, s, t)                                                                          \
	do {                                                                                       \
		if (n == max)                                                                      \
			return -ENOSPC;                                                            \
		out[n++] = (struct boot_e820_entry){.addr = (a), .size = (s), .type = (t)};        \
	} while (0)

	for (i = 0; i < gm->nr_slots; i++) {
		const struct guest_mem_slot *s = &gm->slot[i];

		if (s->gpa == 0) {
			/* Conventional memory below the EBDA; 0xa0000..1 MiB is not RAM. */
			E820_ADD(0, MIN(s->size, LAYOUT_EBDA), E820_RAM);
			E820_ADD(LAYOUT_EBDA, LAYOUT_LOW_END - LAYOUT_EBDA, E820_RESERVED);
			E820_ADD(LAYOUT_ACPI, LAYOUT_ACPI_END - LAYOUT_ACPI, E820_RESERVED);
			if (s->size > LAYOUT_HIGH_START)
				E820_ADD(LAYOUT_HIGH_START, s->size - LAYOUT_HIGH_START, E820_RAM);
		} else {
			E820_ADD(s->gpa, s->size, E820_RAM);
		}
	}
	for (i = 0; i < r->nr_ranges; i++) {
		if (r->range[i].kind == RES_MMIO && (r->range[i].flags & RES_F_E820_RESERVED))
			E820_ADD(r->range[i].base, r->range[i].len, E820_RESERVED);
	}
#undef E820_ADD
	qsort(out, n, sizeof(out[0]), e820_cmp);
	return (int)n;
}
