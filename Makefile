# The two commands of the README:
#   make demo   - install what is missing, build, launch a demo VM over local nodes
#   make check  - install what is missing, build, run every test (plain, ASan/UBSan, TSan)
# Further: make build, bench-transport, bench-cpu, bench-trace, asan, tsan, clean.

JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all deps build demo check check-plain check-asan check-tsan asan tsan clean \
	bench-transport bench-cpu bench-trace bench-dsm guest-linux soak

all: build

# 'all' includes the Linux guest toolchain and kernel source: make check
# boots a Linux guest (built once, cached in $(BUILD)/guest-linux).
deps:
	@./deploy/install-deps.sh all

# Configure every time: it is quick, and layers that land add new folders.
build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./deploy/demo.sh $(BUILD)

check-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

asan: deps
	cmake -S . -B build-asan -DSPANVM_ASAN=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j $(JOBS)

tsan: deps
	cmake -S . -B build-tsan -DSPANVM_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-tsan -j $(JOBS)

# Sanitizer runs cover the tests labelled 'sanitize' (unit tests and the
# threaded parts); the full guest suites run once, in the plain build.
check-asan: asan
	cd build-asan && ctest --output-on-failure -j $(JOBS) -L sanitize --timeout 600

check-tsan: tsan
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		ctest --output-on-failure -j $(JOBS) -L sanitize --timeout 600

check: check-plain check-asan check-tsan
	@echo "make check: all suites passed"

# Linux guest kernel + initramfs (minutes the first time, cached under
# $(BUILD)/guest-linux afterwards).
guest-linux:
	@./deploy/install-deps.sh linux
	./guest/linux/build.sh $(BUILD)/guest-linux

bench-transport: build
	./bench/transport.sh $(BUILD)

bench-linux: build guest-linux
	./bench/linux.sh $(BUILD)

bench-cpu: build
	./bench/cpu.sh $(BUILD)

bench-trace: build
	./bench/trace.sh $(BUILD)

bench-dsm: build
	./bench/dsm.sh $(BUILD)

# Partition soak on a namespace cluster (root): random cuts for MINUTES,
# then an orderly stop; prints a JSON summary line (deploy/netns/soak.sh).
SEED ?= 1
MINUTES ?= 10
soak: build
	./deploy/netns/soak.sh $(BUILD) $(SEED) $(MINUTES)

clean:
	rm -rf build build-asan build-tsan
