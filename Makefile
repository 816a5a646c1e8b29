# pixeld — build, test and run on Debian 12 with Swift (preinstalled at /opt/swift).
#   make deps      install the missing Debian packages for building, running and testing (apt-get update
#                  only when something is missing)
#   make deps-run  the same for building and running only (no chromium: what `make run` needs)
#   make build     swift build
#   make test      deps, then every test target (suites needing redis/nginx fail instead of skip when CI is set)
#   make run       deps-run, build, then the whole pipeline on loopback ports (scripts/run-local.sh)
#   make clean     remove build output and .run/
#   make screenshots  regenerate docs/*.png with the headless-Chromium test

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

ifneq ($(wildcard /opt/swift/usr/bin/swift),)
export PATH := /opt/swift/usr/bin:$(PATH)
endif

# Building: hiredis and libmaxminddb (pkg-config finds them). Running (scripts/run-local.sh): redis-server,
# redis-cli, nginx, curl, and jq for the README's look at the archive. The tests also need logger
# (bsdutils) and chromium (the browser tests).
# What the Swift toolchain in /opt/swift needs to build on Debian 12 (swift-build and swift-frontend's
# libraries; gcc's C runtime and libstdc++ headers for clang), usually there already; ca-certificates
# for git's https clones of the packages (git only recommends it).
SWIFT_PACKAGES := gcc libc6-dev libstdc++-12-dev libsqlite3-0 libncurses6 libcurl4 libxml2 libuuid1 zlib1g tzdata git ca-certificates
RUN_PACKAGES := $(SWIFT_PACKAGES) redis-server redis-tools nginx libhiredis-dev libmaxminddb-dev pkg-config curl jq
TEST_PACKAGES := bsdutils chromium
APT_PACKAGES := $(RUN_PACKAGES) $(TEST_PACKAGES)
SWIFT ?= swift
# Tests run one at a time: the end-to-end suites time real processes on a 2-core machine.
SWIFT_TEST_FLAGS ?= --no-parallel
# A whole test run takes ~5 min here; one still running after this long has a test that blocks, and
# is stopped (with the servers it started) and fails, instead of using up CI's 90 minutes.
TEST_TIMEOUT_MINUTES ?= 25

.PHONY: deps deps-run build test run clean

# $(call install-missing,TARGET,PACKAGES): apt-get install the PACKAGES that are not installed, then check swift.
define install-missing
@missing=""; \
for package in $(2); do \
    dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
done; \
if [ -n "$$missing" ]; then \
    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
    echo "make $(1): installing$$missing"; \
    $$sudo apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
fi
@command -v $(SWIFT) >/dev/null || { echo "make $(1): swift not found (expected /opt/swift/usr/bin/swift)" >&2; exit 1; }
endef

deps:
	$(call install-missing,deps,$(APT_PACKAGES))

deps-run:
	$(call install-missing,deps-run,$(RUN_PACKAGES))

build:
	$(SWIFT) build

test: deps
	@if [ -n "$${CI:-}" ]; then echo "CI=$$CI: suites that need redis-server/nginx/logger/curl fail instead of skipping"; fi
	$(SWIFT) build --build-tests
	@# stdbuf: the test log is written line by line, so that its last "started" line without a result
	@# names the test that blocked (piped, the runner's output is otherwise buffered by the block).
	@# SIGINT, as a Ctrl-C would: swift test then stops the test process it started (in a process group
	@# of its own), whose servers follow it (their parent-death signal); SIGKILL 60 s later if not.
	@# --foreground: timeout stays in the terminal's process group, so a Ctrl-C reaches the run too.
	@status=0; timeout --foreground --signal=INT --kill-after=60 $(TEST_TIMEOUT_MINUTES)m stdbuf -oL -eL $(SWIFT) test --skip-build $(SWIFT_TEST_FLAGS) || status=$$?; \
	if [ $$status -eq 124 ] || [ $$status -eq 137 ]; then \
	    echo "make test: stopped after $(TEST_TIMEOUT_MINUTES) minutes (TEST_TIMEOUT_MINUTES): the last test started above did not end" >&2; \
	fi; \
	exit $$status

run: deps-run build
	scripts/run-local.sh

clean:
	rm -rf .build .run

# The README's and docs/dashboard.md's screenshots, taken by the browser test itself.
.PHONY: screenshots
screenshots: deps
	$(SWIFT) build --build-tests
	PIXELD_SCREENSHOT_DIR=$(CURDIR)/docs $(SWIFT) test --skip-build --filter BrowserTests

# Fuzzing (Fuzz/README.md): libFuzzer + ASan builds of the parsers in .build-fuzz/, not through SwiftPM.
#   make fuzz         10 M inputs per target (syslog-route, stream-framer, pixel-decode), one after another
#   make fuzz-short   CI-sized: FUZZ_SHORT_SECONDS (45) per target
FUZZ_RUNS ?= 10000000
FUZZ_SHORT_SECONDS ?= 45

.PHONY: fuzz fuzz-short

fuzz:
	Fuzz/run.sh -runs=$(FUZZ_RUNS)

fuzz-short:
	Fuzz/run.sh $(FUZZ_SHORT_SECONDS)

# --- benchmarks (bench/, Benchmarks/; results and method in BENCHMARKS.md) ---
#   make bench         pixeld vs rsyslog+omhiredis vs syslog-ng redis() vs a recvmmsg sink (bench/run.py);
#                      installs rsyslog/rsyslog-hiredis and unpacks syslog-ng into .build-bench/tools when missing.
#                      BENCH_ARGS="--quick" for a 2-minute smoke test, "--wait-load 1.0" to wait for a quiet machine.
#   make bench-micro   ordo-one/benchmark microbenchmarks of route/append/decode (Benchmarks/ package)
BENCH_ARGS ?=

.PHONY: bench bench-micro

bench:
	$(call install-missing,bench,python3)
	python3 bench/run.py $(BENCH_ARGS)

bench-micro:
	@dpkg-query -W -f='$${Status}' libjemalloc-dev 2>/dev/null | grep -q "install ok installed" || { \
	    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends libjemalloc-dev; }
	cd Benchmarks && $(SWIFT) package --scratch-path ../.build-bench/micro benchmark
