# Thin wrapper over Meson/Ninja. Every target installs what is missing first
# (scripts/deps: apt-get as root), so the README's commands work on a fresh machine.
BUILD    ?= build
ASAN     ?= build-asan
FUZZ     ?= build-fuzz
GUESTDIR ?= $(BUILD)/guest

.PHONY: all deps build asan fuzz-build guest hostkernel run test unit integration fuzz bench clean format

all: build

deps:
	@scripts/deps

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD)

asan: deps
	@test -f $(ASAN)/build.ninja || meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	@ninja -C $(ASAN)

fuzz-build: deps
	@test -f $(FUZZ)/build.ninja || CC=clang meson setup $(FUZZ) -Dfuzz=true >/dev/null
	@ninja -C $(FUZZ)

# The standard guest (Debian's cloud kernel + busybox initramfs) and the emulated host's kernel.
guest: deps
	@scripts/make-guest $(GUESTDIR)

run: build guest
	@scripts/demo

test: build asan fuzz-build guest
	@tests/run

fuzz: fuzz-build
	@tests/run-fuzz $(FUZZ) $${FUZZ_SECONDS:-60}

bench: build guest
	@bench/run

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
