# clustermgmt front door. `make` builds build/clustermgmt; `make run`
# installs what is missing, builds and starts a demo daemon; `make test`
# installs what the tests need, builds and runs every test suite (also
# once under ASan+UBSan, the tests about threads under TSan) and `make
# lsan-check`; `make bench` runs the
# benchmarks; `make fuzz` fuzzes the parsers of untrusted input
# (tests/fuzz/README.md).

BUILD     ?= build
ASAN      ?= build-asan
LSAN_CHECK ?= build-lsan-check
TSAN      ?= build-tsan
PYTHON    ?= /usr/bin/python3
MESONFLAGS = -Dwerror=true

BUILD_PKGS = gcc pkg-config meson ninja-build libh2o-evloop-dev libjansson-dev \
	libsqlite3-dev libpq-dev libsodium-dev libcurl4-openssl-dev libssl-dev \
	zlib1g-dev
# Packaging and operations: the Debian package, systemd, man pages, metrics.
BUILD_PKGS += libsystemd-dev
# A deploy's verdict reads Varnish's counters and log through libvarnishapi.
BUILD_PKGS += libvarnishapi-dev
# Signing in through an identity provider: ID tokens verified with cjose.
BUILD_PKGS += libcjose-dev
OPS_PKGS   = debhelper dpkg-dev fakeroot lintian mandoc systemd bash-completion \
	prometheus
TEST_PKGS  = $(BUILD_PKGS) libcmocka-dev python3-pytest python3-requests \
	python3-pytest-xdist openssl curl haproxy varnish nginx-light iproute2 iptables pgbouncer chromium \
	chromium-driver python3-selenium fonts-dejavu-core clang libclang-rt-14-dev \
	postgresql
TEST_PKGS += $(OPS_PKGS)
# The Consul API's consumer in tests/e2e/test_consul.py.
TEST_PKGS += python3-consul
# A Debian 12 booted with systemd in a container (tests/e2e/nspawn.py).
TEST_PKGS += systemd-container debootstrap
# docs/INTEGRATIONS.md's Ansible play, run by tests/e2e/test_integrations.py
TEST_PKGS += ansible-core
BENCH_PKGS = $(BUILD_PKGS) wrk nginx-light curl haproxy varnish python3-pytest python3-requests iproute2 \
	postgresql

.PHONY: all run test bench oidc-provider deps-build deps-test deps-bench asan clean format fuzz \
	fuzz-build fuzz-regress lsan-check lsan-check-build tsan

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESONFLAGS)

# -O1, as AddressSanitizer's authors advise: the ASan end-to-end pass took
# 285 s against 368 s at -O0 on two cores, and reports keep every frame.
# Frame pointers: LeakSanitizer records allocation stacks with the fast
# unwinder (tools/lsan.supp), which follows them; -O1 would omit them.
ASAN_OPT = -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1 -Ddebug=true
ASAN_CARGS = -fno-omit-frame-pointer

$(ASAN)/build.ninja:
	meson setup $(ASAN) $(MESONFLAGS) $(ASAN_OPT) "-Dc_args=$(ASAN_CARGS)"

asan: $(ASAN)/build.ninja
	ninja -C $(ASAN)

# Proves LeakSanitizer still reports a leak in a request handler with
# tools/lsan.supp in force: an ASan build whose probe handler leaks
# (-DCM_LEAK_CANARY, src/http/probe.c) must fail one end-to-end test with
# that leak reported. A few seconds once built; part of `make test`.
$(LSAN_CHECK)/build.ninja:
	meson setup $(LSAN_CHECK) $(MESONFLAGS) $(ASAN_OPT) "-Dc_args=$(ASAN_CARGS) -DCM_LEAK_CANARY"

# The daemon and the CLI under ThreadSanitizer, for the end-to-end tests
# whose subject is threads (tools/run-tests.sh runs them beside the ASan
# pass).
$(TSAN)/build.ninja:
	meson setup $(TSAN) $(MESONFLAGS) -Db_sanitize=thread -Db_lundef=false \
	-Doptimization=1 -Ddebug=true

tsan: $(TSAN)/build.ninja
	ninja -C $(TSAN) clustermgmt

lsan-check-build: $(LSAN_CHECK)/build.ninja
	ninja -C $(LSAN_CHECK) clustermgmt

lsan-check: lsan-check-build
	sh tools/lsan-check.sh $(LSAN_CHECK)/clustermgmt $(PYTHON)

deps-build:
	@sh tools/install-packages.sh $(BUILD_PKGS)
deps-test:
	@sh tools/install-packages.sh $(TEST_PKGS)
deps-bench:
	@sh tools/install-packages.sh $(BENCH_PKGS)

run: deps-build
	$(MAKE) all
	sh tools/run-demo.sh $(BUILD)/clustermgmt

# When make started: the summary of `make test` ends with the time it took.
TEST_STARTED := $(shell date +%s)

# The sanitizer and fuzz builds run beside the release suites
# (tools/run-tests.sh, CM_TEST_BUILDS).
test: deps-test oidc-provider
	$(MAKE) all
	CM_TEST_STARTED=$(TEST_STARTED) \
	CM_TEST_BUILDS="$(MAKE) asan fuzz-build lsan-check-build tsan" \
	sh tools/run-tests.sh $(BUILD) $(ASAN) $(PYTHON) $(LSAN_CHECK) $(TSAN)

# The OpenID Connect provider the sign-in tests start (tests/e2e/test_oidc.py):
# oidc-provider from the npm registry, at the versions package-lock.json pins.
# Node.js and npm come from Debian unless the machine has them already
# (NodeSource's nodejs bundles npm and conflicts with Debian's npm).
oidc-provider:
	command -v npm >/dev/null 2>&1 || sh tools/install-packages.sh nodejs npm
	cd tests/e2e/oidc && npm ci --no-audit --no-fund

# Benchmarks measure an optimised build of their own. BENCH_REFERENCE: a
# reference build to compare with, where a benchmark takes one.
bench: deps-bench
	test -f build-release/build.ninja || meson setup build-release $(MESONFLAGS) -Dbuildtype=release
	ninja -C build-release
	sh bench/probe build-release/clustermgmt
	sh bench/ui_page build-release/clustermgmt
	sh bench/auth_request build-release/clustermgmt $(BENCH_REFERENCE)
	$(PYTHON) bench/rollout build-release/clustermgmt
	sh bench/metrics build-release/clustermgmt
	sh bench/propagation build-release/clustermgmt
	sh bench/scale build-release/clustermgmt
	sh bench/fleet build-release/clustermgmt
	$(PYTHON) bench/consul build-release/clustermgmt
	$(PYTHON) bench/canary build-release/clustermgmt
	$(PYTHON) bench/drain_held build-release/clustermgmt
	$(PYTHON) bench/long_polls build-release/clustermgmt $(BENCH_REFERENCE)
	$(PYTHON) bench/drain_decision build-release/clustermgmt
	$(PYTHON) bench/varnish_counters build-release/clustermgmt
	sh bench/isolation build-release/clustermgmt

# Coverage-guided fuzzing (libFuzzer, clang) of the code that parses
# untrusted input; see tests/fuzz/README.md. `make fuzz` runs each target
# for FUZZ_SECONDS, growing $(FUZZ)/corpus/<target> from the seeds in
# tests/fuzz/corpus/<target>; `make fuzz-regress` only replays the
# committed corpus (a few seconds). Crashes land in $(FUZZ)/artifacts/.
FUZZ         ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_TARGETS  = changeset names form lbconfig auth redact roles
FUZZ_PKGS     = jansson libh2o-evloop libcurl openssl libsodium
FUZZ_CFLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Isrc
FUZZ_CORE     = src/core/*.c src/util/*.c
FUZZ_SRC_changeset =
FUZZ_SRC_names     =
FUZZ_SRC_form      = src/http/form.c
FUZZ_SRC_lbconfig  = src/lb/lbconfig.c
FUZZ_SRC_auth      = src/http/auth_basic.c
FUZZ_SRC_redact    =
FUZZ_SRC_roles     = src/http/roles.c

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ)/fuzz_%)

$(FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h src/*/*.c src/*/*.h
	@mkdir -p $(FUZZ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $$(pkg-config --cflags $(FUZZ_PKGS)) -o $@ $< \
	$(FUZZ_CORE) $(FUZZ_SRC_$*) $$(pkg-config --libs $(FUZZ_PKGS))

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ)/corpus/$$t $(FUZZ)/artifacts; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -dict=tests/fuzz/fuzz_$$t.dict -artifact_prefix=$(FUZZ)/artifacts/$$t- \
	    $(FUZZ)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

fuzz-regress: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ)/artifacts; echo "== fuzz_$$t over tests/fuzz/corpus/$$t"; \
	  $(FUZZ)/fuzz_$$t -runs=0 -timeout=10 -artifact_prefix=$(FUZZ)/artifacts/$$t- \
	    tests/fuzz/corpus/$$t || exit 1; \
	done

# --- installing -----------------------------------------------------------
# `make install` with the GNU directory variables (prefix, bindir, mandir,
# sysconfdir, docdir, ...; PREFIX is accepted for prefix) and DESTDIR for
# staged installs. With prefix /usr, sysconfdir is /etc. The systemd unit
# gets bindir and sysconfdir substituted.
PREFIX        ?= /usr/local
prefix        ?= $(PREFIX)
exec_prefix   ?= $(prefix)
bindir        ?= $(exec_prefix)/bin
datarootdir   ?= $(prefix)/share
mandir        ?= $(datarootdir)/man
docdir        ?= $(datarootdir)/doc/clustermgmt
sysconfdir    ?= $(if $(filter /usr,$(prefix)),/etc,$(prefix)/etc)
systemdunitdir ?= $(prefix)/lib/systemd/system
sysusersdir   ?= $(prefix)/lib/sysusers.d
bashcompdir   ?= $(datarootdir)/bash-completion/completions
INSTALL       ?= install
DOCS = README.md docs/API.md docs/ARCHITECTURE.md docs/BENCHMARKS.md docs/CLI.md \
	docs/LOADBALANCERS.md docs/METRICS.md docs/UI.md

.PHONY: install uninstall deb

install: all
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man8 \
	  $(DESTDIR)$(systemdunitdir) $(DESTDIR)$(sysusersdir) $(DESTDIR)$(sysconfdir)/default \
	  $(DESTDIR)$(bashcompdir) $(DESTDIR)$(docdir)/examples
	$(INSTALL) -m 755 $(BUILD)/clustermgmt $(DESTDIR)$(bindir)/clustermgmt
	$(INSTALL) -m 644 man/clustermgmt.1 $(DESTDIR)$(mandir)/man1/clustermgmt.1
	$(INSTALL) -m 644 man/clustermgmt-serve.8 $(DESTDIR)$(mandir)/man8/clustermgmt-serve.8
	sed -e 's|@bindir@|$(bindir)|g' -e 's|@sysconfdir@|$(sysconfdir)|g' \
	  dist/clustermgmt.service.in >$(DESTDIR)$(systemdunitdir)/clustermgmt.service
	chmod 644 $(DESTDIR)$(systemdunitdir)/clustermgmt.service
	$(INSTALL) -m 644 dist/clustermgmt.sysusers $(DESTDIR)$(sysusersdir)/clustermgmt.conf
	$(INSTALL) -m 644 dist/clustermgmt.default $(DESTDIR)$(sysconfdir)/default/clustermgmt
	$(INSTALL) -m 644 dist/clustermgmt.bash-completion $(DESTDIR)$(bashcompdir)/clustermgmt
	$(INSTALL) -m 644 $(DOCS) $(DESTDIR)$(docdir)
	$(INSTALL) -m 644 dist/clustermgmt.rules.yml $(DESTDIR)$(docdir)/examples

uninstall:
	rm -f $(DESTDIR)$(bindir)/clustermgmt $(DESTDIR)$(mandir)/man1/clustermgmt.1 \
	  $(DESTDIR)$(mandir)/man8/clustermgmt-serve.8 \
	  $(DESTDIR)$(systemdunitdir)/clustermgmt.service $(DESTDIR)$(sysusersdir)/clustermgmt.conf \
	  $(DESTDIR)$(bashcompdir)/clustermgmt
	rm -rf $(DESTDIR)$(docdir)
	@echo "kept $(DESTDIR)$(sysconfdir)/default/clustermgmt (your settings)"

# `make deb` builds build-deb/clustermgmt_VERSION_ARCH.deb with debhelper
# from debian/, in a copy of the tree (dpkg-buildpackage writes its
# results next to the source directory, which must not be the worktree's
# parent). DEB_BUILD_OPTIONS=nocheck skips the unit tests.
DEB ?= build-deb
deb:
	@sh tools/install-packages.sh $(BUILD_PKGS) debhelper dpkg-dev fakeroot
	rm -rf $(DEB) && mkdir -p $(DEB)/src
	git ls-files -z --cached --others --exclude-standard | \
	  xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	  xargs -0 cp --parents -t $(DEB)/src
	# the build's own make runs (debian/rules, its clean) must not inherit
	# our command line: DEB=/dir would have their `clean` delete $(DEB)
	cd $(DEB)/src && env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u DEB \
	  dpkg-buildpackage -us -uc -b -rfakeroot
	@ls $(DEB)/*.deb

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/fuzz/*.[ch]')

clean:
	rm -rf $(BUILD) $(ASAN) $(LSAN_CHECK) $(TSAN) $(DEB)
