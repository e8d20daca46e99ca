#!/bin/sh
# Runs every test suite and ends with each runner's summary:
#   1. cmocka unit tests (release build)
#   2. pytest end-to-end tests against build/clustermgmt
#   3. the unit tests and the end-to-end tests again under ASan+UBSan,
#      except those marked `once` (headless Chromium, real HAProxy/Varnish/
#      nginx): they test behaviour, and the daemon code they reach is
#      reached by other tests too
#   4. the fuzz targets over their committed corpus (make fuzz-regress)
#   5. tools/lsan-check.sh: LeakSanitizer still reports a leak in a request
#      handler with tools/lsan.supp in force (when LSAN_CHECK_DIR is given)
#   6. under ThreadSanitizer (when TSAN_DIR is given), the end-to-end tests
#      whose subject is threads ($TSAN_TESTS), the daemon with 4 workers:
#      run beside step 3's end-to-end pass, as they mostly wait (on 2
#      workers, 35 s of CPU in 91 s alone), on ports of their own
#      (CLUSTERMGMT_TEST_PORT_SLICE=6: slices 6 and 7, the ASan pass's
#      six workers taking 0-5); a race makes a daemon exit 66 or a CLI
#      command print TSan's report, and its test fail
# End-to-end tests run on pytest-xdist workers when xdist is there: 6 for
# the release pass, which spends most of its time waiting on daemons (on
# two cores 4 workers took 373 s, 6 took 285 s), 6 for the ASan pass too
# since its allocation stacks come from the fast unwinder (alone on two
# cores: 4 workers took 303 s, 6 took 241 s; with the full unwinder it was
# bound by the CPU, and 4 were faster than 6). At most 8:
# conftest.py gives each worker its own slice of ports. The summary ends
# with each end-to-end pass's 15 slowest tests.
# Each suite's line in the summary ends with its time; with
# CM_TEST_STARTED (date +%s, set by make test) a last line gives the whole.
# With CM_TEST_BUILDS (a command; make test gives `make asan fuzz-build
# lsan-check-build tsan`), the builds the later suites need run at nice 19
# beside the release suites, which leave a part of the two cores idle
# while their tests wait on daemons (132-156 % of 200 % used): 81 s of
# builds one after the other before. The ASan suites start once they are
# done; a build that fails fails the run with its log.
# Usage: tools/run-tests.sh BUILD_DIR ASAN_DIR PYTHON [LSAN_CHECK_DIR [TSAN_DIR]]
# Exits non-zero when any suite failed; every suite runs regardless.
BUILD=${1:-build}
ASAN=${2:-build-asan}
PYTHON=${3:-/usr/bin/python3}
LSAN_CHECK=${4:-}
TSAN=${5:-}
TSAN_TESTS="test_concurrency.py test_rollout.py test_rollouts_shared.py"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=$ROOT/artifacts
mkdir -p "$LOGDIR"
status=0
summary=""
slowest=""

# Seconds since $1 (date +%s), for the summary.
since() {
	echo "$(($(date +%s) - $1)) s"
}

unit() {
	dir=$1
	label=$2
	started=$(date +%s)
	for t in "$dir"/tests/unit/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		name=$(basename "$t")
		echo "== unit ($label): $name"
		if "$t" >"$LOGDIR/unit-$label-$name.log" 2>&1; then
			tail -n 2 "$LOGDIR/unit-$label-$name.log"
		else
			cat "$LOGDIR/unit-$label-$name.log"
			status=1
		fi
		summary="$summary
unit ($label) $name: $(grep -E '^\[  (PASSED|FAILED)  \]' "$LOGDIR/unit-$label-$name.log" | tr '\n' ' ')"
	done
	summary="$summary
unit ($label): all in $(since "$started")"
}

e2e() {
	bin=$1
	label=$2
	shift 2
	echo "== end-to-end ($label): $bin $*"
	started=$(date +%s)
	(
		CLUSTERMGMT_BIN=$bin "$PYTHON" -m pytest -q -p no:cacheprovider $PARALLEL \
			--durations=15 --durations-min=0 "$@" "$ROOT/tests/e2e"
		echo $? >"$LOGDIR/e2e-$label.rc"
	) 2>&1 | tee "$LOGDIR/e2e-$label.log"
	[ "$(cat "$LOGDIR/e2e-$label.rc")" = 0 ] || status=1
	summary="$summary
e2e ($label): $(tail -n 1 "$LOGDIR/e2e-$label.log") [$(since "$started") with the start]"
	slowest="$slowest
== slowest end-to-end tests ($label)
$(sed -n '/slowest 15 durations/,/^$/p' "$LOGDIR/e2e-$label.log" | grep -E '^[0-9.]+s ')"
}

# Allocation stacks are recorded with the fast unwinder, ASan's default
# (tools/lsan.supp says what that means for the suppressions): the full
# unwinder cost the ASan pass's daemons a third of their CPU.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:malloc_context_size=10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tools/lsan.supp:print_suppressions=0}

HAS_XDIST=""
"$PYTHON" -c "import xdist" 2>/dev/null && HAS_XDIST=1

PARALLEL=${HAS_XDIST:+-n 6} # both passes
builds_pid=""
if [ -n "${CM_TEST_BUILDS:-}" ]; then
	echo "== builds (beside the release suites): $CM_TEST_BUILDS"
	builds_started=$(date +%s)
	(
		nice -n 19 sh -c "$CM_TEST_BUILDS" >"$LOGDIR/builds.log" 2>&1
		echo $? >"$LOGDIR/builds.rc"
		since "$builds_started" >"$LOGDIR/builds.time"
	) &
	builds_pid=$!
fi
unit "$ROOT/$BUILD" release
e2e "$ROOT/$BUILD/clustermgmt" release
if [ -n "$builds_pid" ]; then
	wait "$builds_pid"
	if [ "$(cat "$LOGDIR/builds.rc")" = 0 ]; then
		builds_result="done"
	else
		tail -n 60 "$LOGDIR/builds.log"
		builds_result="failed (see artifacts/builds.log)"
		status=1
	fi
	summary="$summary
builds ($CM_TEST_BUILDS): $builds_result [$(cat "$LOGDIR/builds.time"), beside the release suites]"
fi
unit "$ROOT/$ASAN" asan
if [ -n "$TSAN" ]; then
	echo "== end-to-end (tsan, beside the next pass): $TSAN_TESTS"
	tsan_started=$(date +%s)
	# GCC 12's TSan runtime cannot start where the kernel randomises
	# mmap with more than 28 bits (vm.mmap_rnd_bits, 32 on some kernels):
	# without address randomisation where setarch can turn it off.
	NO_ASLR=""
	setarch "$(uname -m)" -R true 2>/dev/null && NO_ASLR="setarch $(uname -m) -R"
	(
		cd "$ROOT/tests/e2e" &&
			TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1} \
				CLUSTERMGMT_SANITIZED=1 CLUSTERMGMT_TEST_SERVE_ARGS="--threads 4" \
				CLUSTERMGMT_TEST_PORT_SLICE=6 CLUSTERMGMT_BIN="$ROOT/$TSAN/clustermgmt" \
				$NO_ASLR "$PYTHON" -m pytest -q -p no:cacheprovider ${HAS_XDIST:+-n 2} -m "not once" \
				$TSAN_TESTS
		echo $? >"$LOGDIR/e2e-tsan.rc"
		since "$tsan_started" >"$LOGDIR/e2e-tsan.time"
	) >"$LOGDIR/e2e-tsan.log" 2>&1 &
	tsan_pid=$!
fi
CLUSTERMGMT_SANITIZED=1 e2e "$ROOT/$ASAN/clustermgmt" asan -m "not once"
if [ -n "$TSAN" ]; then
	wait "$tsan_pid"
	echo "== end-to-end (tsan): $(tail -n 1 "$LOGDIR/e2e-tsan.log")"
	if [ "$(cat "$LOGDIR/e2e-tsan.rc")" != 0 ]; then
		cat "$LOGDIR/e2e-tsan.log"
		status=1
	fi
	summary="$summary
e2e (tsan, $TSAN_TESTS): $(tail -n 1 "$LOGDIR/e2e-tsan.log") [$(cat "$LOGDIR/e2e-tsan.time") with the start, beside the ASan pass]"
fi

echo "== fuzz corpus"
started=$(date +%s)
if make -s -C "$ROOT" fuzz-regress >"$LOGDIR/fuzz-regress.log" 2>&1; then
	fuzz_result="$(grep -c '^== fuzz_' "$LOGDIR/fuzz-regress.log") passed, 0 failed"
else
	cat "$LOGDIR/fuzz-regress.log"
	fuzz_result="failed (see artifacts/fuzz-regress.log)"
	status=1
fi
summary="$summary
fuzz: $fuzz_result [$(since "$started") with the build]"

if [ -n "$LSAN_CHECK" ]; then
	echo "== lsan-check"
	started=$(date +%s)
	if sh "$ROOT/tools/lsan-check.sh" "$ROOT/$LSAN_CHECK/clustermgmt" "$PYTHON" \
		>"$LOGDIR/lsan-check.log" 2>&1; then
		lsan_result="passed (a leak in a request handler is reported)"
	else
		cat "$LOGDIR/lsan-check.log"
		lsan_result="failed (see artifacts/lsan-check.log)"
		status=1
	fi
	summary="$summary
lsan-check: $lsan_result [$(since "$started")]"
fi

echo
echo "$slowest" | sed '/^$/d'
echo
echo "== summary"
echo "$summary" | sed '/^$/d'
[ -n "${CM_TEST_STARTED:-}" ] &&
	echo "make test: $(since "$CM_TEST_STARTED") in all (packages, builds, every suite)"
exit $status
