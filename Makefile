# Thin wrapper over Meson/Ninja. Every target installs what is missing first
# (scripts/deps: apt-get as root), so the README's commands work on a fresh machine.
BUILD    ?= build
ASAN     ?= build-asan
FUZZ     ?= build-fuzz
GUESTDIR ?= $(BUILD)/guest
comma    := ,

.PHONY: all deps build asan fuzz-build guest fwdisk hostkernel run test unit integration fuzz bench soak clean format

all: build

deps:
	@scripts/deps

# (Re)configure when a part's meson.build appeared or changed since the last setup: parts
# are included only if their folder has one, which Ninja's own regeneration can't see.
setup = if [ ! -f $(1)/build.ninja ]; then $(2) meson setup $(1) $(3) >/dev/null; \
	elif [ -n "$$(find . -path ./$(1) -prune -o -name meson.build -newer $(1)/build.ninja -print | head -n1)" ]; then \
	$(2) meson setup --reconfigure $(1) $(3) >/dev/null; fi

build: deps
	@$(call setup,$(BUILD),,)
	@ninja -C $(BUILD)

asan: deps
	@$(call setup,$(ASAN),,-Db_sanitize=address$(comma)undefined -Db_lundef=false)
	@ninja -C $(ASAN)

fuzz-build: deps
	@$(call setup,$(FUZZ),CC=clang,-Dfuzz=true)
	@ninja -C $(FUZZ)

# The standard guest (Debian's cloud kernel + busybox initramfs) and the emulated host's kernel.
guest: deps
	@scripts/make-guest $(GUESTDIR)

# The firmware test disk (Debian 12 on a GPT disk booting through UEFI, in every image format):
# scripts/make-fwdisk, cached under build/fwdisk; docs/fw-disk.md.
fwdisk: deps build
	@PLINTH_IMG=$(BUILD)/plinth-img scripts/make-fwdisk $(BUILD)/fwdisk

run: build guest
	@scripts/demo

test: build asan fuzz-build guest
	@tests/run

fuzz: fuzz-build
	@tests/run-fuzz $(FUZZ) $${FUZZ_SECONDS:-60}

bench: build guest
	@bench/run

# Data integrity for minutes to hours (tests/soak/run: SOAK_SECONDS, SOAK_CPUS, SOAK_FS,
# SOAK_KINDS, SOAK_CRASHES, SOAK_FIO, SOAK_PARTS, SOAK_LOCK, SOAK_QEMU); not part of make test.
soak: build guest fwdisk
	@tests/soak/run

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
