// SPDX-License-Identifier: MIT
#include "firmware.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "log.h"
#include "util.h"
#include "vm.h"
#include "arch/x86/layout.h"

#define FV_SIGNATURE_OFF 40 /* EFI_FIRMWARE_VOLUME_HEADER.Signature */
#define FV_LENGTH_OFF	 32 /* EFI_FIRMWARE_VOLUME_HEADER.FvLength */
#define FV_HEAD		 64 /* bytes read to check a file */
#define FW_CODE_SLOT	 GUEST_MEM_MAX_SLOTS /* KVM slot past guest RAM's */
#define E820_RAM	 1

struct vm_firmware {
	void *code;          /* the code file's copy, read-only to the guest (slot) */
	uint64_t code_size;
	struct pflash vars;
	bool vars_ready;
	struct fw_cfg cfg;
	bool cfg_ready;
	struct cmos cmos;
	bool cmos_ready;
};

static bool is_fv(const uint8_t *head)
{
	return !memcmp(head + FV_SIGNATURE_OFF, "_FVH", 4);
}

static uint64_t fv_length(const uint8_t *head)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | head[FV_LENGTH_OFF + i];
	return v;
}

uint64_t fw_vars_size_for(uint64_t code_size)
{
	uint64_t chip = 64 * KiB;

	while (chip <= code_size && chip < LAYOUT_FW_FLASH_MAX)
		chip <<= 1;
	return chip > code_size ? chip - code_size : 0;
}

int fw_check_images(const uint8_t *code, uint64_t code_size, const uint8_t *vars_head,
		    uint64_t vars_size, const char **why)
{
	uint64_t off = 0, len;

	if (code_size < FV_HEAD || code_size % 4096) {
		*why = "is too small or not a whole number of 4 KiB blocks (truncated?)";
		return -EINVAL;
	}
	if (!is_fv(code)) {
		*why = "is not UEFI firmware (no firmware volume header)";
		return -EINVAL;
	}
	if (!fw_vars_size_for(code_size)) {
		*why = "is larger than the 16 MiB of flash below 4 GiB";
		return -EINVAL;
	}
	/* The firmware volumes must tile the file exactly: a cut file ends mid-volume. */
	while (off < code_size) {
		if (code_size - off < FV_HEAD || !is_fv(code + off)) {
			*why = "is damaged (a firmware volume header is missing)";
			return -EINVAL;
		}
		len = fv_length(code + off);
		if (len < FV_HEAD || len > code_size - off) {
			*why = "is truncated (its last firmware volume ends past the file)";
			return -EINVAL;
		}
		off += len;
	}
	if (!vars_size)
		return 0;
	if (vars_size != fw_vars_size_for(code_size)) {
		*why = "vars";
		return -ERANGE;
	}
	if (!is_fv(vars_head) || fv_length(vars_head) != vars_size) {
		*why = "vars";
		return -ENOEXEC;
	}
	return 0;
}

/* The first FV_HEAD bytes and the size of a regular file. 0 or -errno (logged). */
static int fw_file_head(int fd, const char *what, const char *path, uint8_t *head,
			uint64_t *size)
{
	struct stat st;
	int ret;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("%s %s is not a regular file", what, path);
		return -EINVAL;
	}
	*size = (uint64_t)st.st_size;
	memset(head, 0, FV_HEAD);
	if (*size < FV_HEAD)
		return 0;
	ret = pread_full(fd, head, FV_HEAD, 0);
	if (ret)
		log_error("cannot read %s %s: %s", what, path, strerror(-ret));
	return ret;
}

int fw_open_files(struct vm_config *cfg)
{
	uint8_t code_head[FV_HEAD], vars_head[FV_HEAD], *code = NULL;
	uint64_t code_size, vars_size = 0;
	const char *why = NULL;
	int ret;

	cfg->kernel_fd = open(cfg->firmware, O_RDONLY | O_CLOEXEC);
	if (cfg->kernel_fd < 0) {
		ret = -errno;
		log_error("cannot open firmware %s: %s", cfg->firmware, strerror(errno));
		return ret;
	}
	ret = fw_file_head(cfg->kernel_fd, "firmware", cfg->firmware, code_head, &code_size);
	if (ret)
		return ret;
	if (cfg->firmware_vars) {
		/* Read-write, never created or truncated: a missing file is an error. */
		cfg->vars_fd = open(cfg->firmware_vars, O_RDWR | O_CLOEXEC);
		if (cfg->vars_fd < 0) {
			ret = -errno;
			log_error("cannot open firmware vars %s: %s", cfg->firmware_vars,
				  strerror(errno));
			return ret;
		}
		ret = fw_file_head(cfg->vars_fd, "firmware vars", cfg->firmware_vars, vars_head,
				   &vars_size);
		if (ret)
			return ret;
		if (!vars_size) {
			log_error("firmware vars %s is empty", cfg->firmware_vars);
			return -EINVAL;
		}
	}
	/* Checked whole (16 MiB at most): the volumes inside must fill it. */
	if (code_size >= FV_HEAD && code_size <= LAYOUT_FW_FLASH_MAX) {
		code = malloc(code_size);
		if (!code)
			return -ENOMEM;
		ret = pread_full(cfg->kernel_fd, code, code_size, 0);
		if (ret) {
			log_error("cannot read firmware %s: %s", cfg->firmware, strerror(-ret));
			free(code);
			return ret;
		}
	}
	/* Without the whole file (too small, too large) the size checks fail first. */
	ret = fw_check_images(code ? code : code_head, code_size, vars_head, vars_size, &why);
	free(code);
	if (ret == -ERANGE)
		log_error("firmware vars %s is %llu bytes; firmware %s needs a vars file of %llu "
			  "bytes (a copy of the one shipped with it)",
			  cfg->firmware_vars, (unsigned long long)vars_size, cfg->firmware,
			  (unsigned long long)fw_vars_size_for(code_size));
	else if (ret == -ENOEXEC)
		log_error("firmware vars %s is not a UEFI variable store (no firmware volume "
			  "header of its size)", cfg->firmware_vars);
	else if (ret)
		log_error("firmware %s %s", cfg->firmware, why);
	return ret ? -EINVAL : 0;
}

static int fw_map_code(struct vm *vm, struct vm_firmware *fw)
{
	struct stat st;
	uint64_t gpa;
	int ret;

	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		log_error("this host's KVM lacks read-only memory slots (needed for firmware)");
		return -ENOTSUP;
	}
	if (fstat(vm->cfg->kernel_fd, &st) < 0)
		return -errno;
	fw->code_size = (uint64_t)st.st_size;
	fw->code = mmap(NULL, fw->code_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (fw->code == MAP_FAILED) {
		fw->code = NULL;
		log_error("cannot map the firmware: %s", strerror(errno));
		return -ENOMEM;
	}
	ret = pread_full(vm->cfg->kernel_fd, fw->code, fw->code_size, 0);
	if (ret) {
		log_error("cannot read firmware %s: %s", vm->cfg->firmware, strerror(-ret));
		return ret;
	}
	mprotect(fw->code, fw->code_size, PROT_READ);
	gpa = LAYOUT_MEM_4G - fw->code_size;
	ret = vm->hv->set_memory(vm, FW_CODE_SLOT, gpa, fw->code_size, fw->code, HV_MEM_READONLY);
	if (ret) {
		log_error("cannot map the firmware into the guest: %s", strerror(-ret));
		return ret;
	}
	return res_claim(&vm->res, RES_MMIO, gpa, fw->code_size, RES_F_E820_RESERVED, "firmware");
}

/* The variable store: the vars file's contents, or a blank (erased) store. */
static int fw_map_vars(struct vm *vm, struct vm_firmware *fw)
{
	uint64_t size = fw_vars_size_for(fw->code_size), base;
	uint8_t *data = malloc(size);
	int ret;

	if (!data)
		return -ENOMEM;
	memset(data, 0xff, size);
	if (vm->cfg->vars_fd >= 0) {
		ret = pread_full(vm->cfg->vars_fd, data, size, 0);
		if (ret) {
			log_error("cannot read firmware vars %s: %s", vm->cfg->firmware_vars,
				  strerror(-ret));
			free(data);
			return ret;
		}
	}
	ret = pflash_init(&fw->vars, data, size, vm->cfg->vars_fd);
	if (ret) {
		free(data);
		return ret;
	}
	fw->vars_ready = true;
	base = LAYOUT_MEM_4G - fw->code_size - size;
	ret = res_claim(&vm->res, RES_MMIO, base, size, RES_F_E820_RESERVED, "firmware-vars");
	if (!ret)
		ret = bus_register(&vm->mmio, base, size, &pflash_ops, &fw->vars);
	return ret;
}

/* fw_cfg's items: what OVMF's PlatformPei and its libraries read. */
static int fw_fill_cfg(struct vm *vm, struct fw_cfg *fc)
{
	uint8_t e820[GUEST_MEM_MAX_SLOTS * 20];
	unsigned int i;
	int ret;

	for (i = 0; i < vm->mem.nr_slots; i++) {
		put_le(e820 + 20 * i, vm->mem.slot[i].gpa, 8);
		put_le(e820 + 20 * i + 8, vm->mem.slot[i].size, 8);
		put_le(e820 + 20 * i + 16, E820_RAM, 4);
	}
	ret = fw_cfg_add_u16(fc, FW_CFG_NB_CPUS, (uint16_t)vm->cfg->cpus);
	if (!ret)
		ret = fw_cfg_add_u16(fc, FW_CFG_MAX_CPUS, (uint16_t)vm->cfg->cpus);
	if (!ret)
		ret = fw_cfg_add_u64(fc, FW_CFG_RAM_SIZE, vm->cfg->memory);
	if (!ret)
		ret = fw_cfg_add_file(fc, "etc/e820", e820, 20 * vm->mem.nr_slots);
	return ret;
}

/* OVMF's debug console: reads 0xe9 (present), writes go to the debug log. */
static void fw_debug_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = 0xe9;
}

static void fw_debug_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	(void)opaque;
	(void)off;
	if (len == 1 && log_get_level() >= LOG_DEBUG)
		log_debug("firmware: %c", *(const char *)data);
}

static const struct bus_dev_ops fw_debug_ops = {
	.read = fw_debug_read,
	.write = fw_debug_write,
};

/*
 * Port 0x92 (System Control Port A): A20 is always on (bit 1 reads 1; masking it is
 * not emulated); setting bit 0 resets the machine, as on a PC.
 */
static void fw_port92_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = 0x02;
}

static void fw_port92_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct vm *vm = opaque;

	(void)off;
	if (len == 1 && (*(const uint8_t *)data & 1))
		pm_reset_control(&vm->pm, 0x04); /* as a reset through 0xcf9 */
}

static const struct bus_dev_ops fw_port92_ops = {
	.read = fw_port92_read,
	.write = fw_port92_write,
};

int fw_setup(struct vm *vm)
{
	struct vm_firmware *fw = calloc(1, sizeof(*fw));
	uint64_t high = vm->mem.nr_slots > 1 ? vm->mem.slot[1].size : 0;
	int ret;

	if (!fw)
		return -ENOMEM;
	vm->fw = fw;
	ret = fw_map_code(vm, fw);
	if (!ret)
		ret = fw_map_vars(vm, fw);
	if (ret)
		return ret;
	ret = fw_cfg_init(&fw->cfg, &vm->mem);
	if (ret)
		return ret;
	fw->cfg_ready = true;
	ret = fw_fill_cfg(vm, &fw->cfg);
	if (ret) {
		log_error("cannot build the firmware's configuration: %s", strerror(-ret));
		return ret;
	}
	cmos_init(&fw->cmos, vm->mem.slot[0].size, high);
	pm_set_s5_type(&vm->pm, 0); /* Q35's soft-off, what OVMF writes */
	fw->cmos_ready = true;
	ret = res_claim(&vm->res, RES_PIO, PORT_FW_CFG, FW_CFG_PORT_LEN, 0, "fw-cfg");
	if (!ret)
		ret = res_claim(&vm->res, RES_PIO, PORT_CMOS, CMOS_PORT_LEN, 0, "cmos");
	if (!ret)
		ret = res_claim(&vm->res, RES_PIO, PORT_PM_TMR, PORT_PM_TMR_LEN, 0, "pm-timer");
	if (!ret)
		ret = bus_register(&vm->pio, PORT_FW_CFG, FW_CFG_PORT_LEN, &fw_cfg_ops, &fw->cfg);
	if (!ret)
		ret = bus_register(&vm->pio, PORT_CMOS, CMOS_PORT_LEN, &cmos_ops, &fw->cmos);
	if (!ret)
		ret = bus_register(&vm->pio, PORT_PM_TMR, PORT_PM_TMR_LEN, &pm_timer_ops, NULL);
	if (!ret)
		ret = res_claim(&vm->res, RES_PIO, PORT_SYSCTL_A, 1, 0, "sysctl-a");
	if (!ret)
		ret = bus_register(&vm->pio, PORT_FW_DEBUG, 1, &fw_debug_ops, NULL);
	if (!ret)
		ret = bus_register(&vm->pio, PORT_SYSCTL_A, 1, &fw_port92_ops, vm);
	if (ret)
		log_error("cannot route the firmware's devices: %s", strerror(-ret));
	return ret;
}

void fw_destroy(struct vm *vm)
{
	struct vm_firmware *fw = vm->fw;

	if (!fw)
		return;
	if (fw->cmos_ready)
		cmos_destroy(&fw->cmos);
	if (fw->cfg_ready)
		fw_cfg_destroy(&fw->cfg);
	if (fw->vars_ready)
		pflash_destroy(&fw->vars);
	if (fw->code)
		munmap(fw->code, fw->code_size);
	free(fw);
	vm->fw = NULL;
}
