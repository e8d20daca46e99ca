# clustermgmt front door. `make` builds build/clustermgmt; `make run`
# installs what is missing, builds and starts a demo daemon; `make test`
# installs what the tests need, builds and runs every test suite (also
# once under ASan+UBSan); `make bench` runs the benchmarks.

BUILD     ?= build
ASAN      ?= build-asan
PYTHON    ?= /usr/bin/python3
MESONFLAGS = -Dwerror=true

BUILD_PKGS = gcc pkg-config meson ninja-build libh2o-evloop-dev libjansson-dev \
	libsqlite3-dev libpq-dev libsodium-dev libcurl4-openssl-dev libssl-dev \
	zlib1g-dev
TEST_PKGS  = $(BUILD_PKGS) libcmocka-dev python3-pytest python3-requests \
	openssl curl haproxy varnish nginx-light chromium chromium-driver \
	python3-selenium
BENCH_PKGS = $(BUILD_PKGS) wrk nginx-light curl

.PHONY: all run test bench deps-build deps-test deps-bench asan clean format

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESONFLAGS)

$(ASAN)/build.ninja:
	meson setup $(ASAN) $(MESONFLAGS) -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug

asan: $(ASAN)/build.ninja
	ninja -C $(ASAN)

deps-build:
	@sh tools/install-packages.sh $(BUILD_PKGS)
deps-test:
	@sh tools/install-packages.sh $(TEST_PKGS)
deps-bench:
	@sh tools/install-packages.sh $(BENCH_PKGS)

run: deps-build
	$(MAKE) all
	sh tools/run-demo.sh $(BUILD)/clustermgmt

test: deps-test
	$(MAKE) all
	$(MAKE) asan
	sh tools/run-tests.sh $(BUILD) $(ASAN) $(PYTHON)

# Benchmarks measure an optimised build of their own.
bench: deps-bench
	test -f build-release/build.ninja || meson setup build-release $(MESONFLAGS) -Dbuildtype=release
	ninja -C build-release
	sh bench/probe build-release/clustermgmt

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c')

clean:
	rm -rf $(BUILD) $(ASAN)
