#!/bin/sh
# Runs every test suite and ends with each runner's summary:
#   1. cmocka unit tests (release build)
#   2. pytest end-to-end tests against build/clustermgmt
#   3. the unit tests and the end-to-end tests again under ASan+UBSan
#   4. the fuzz targets over their committed corpus (make fuzz-regress)
# End-to-end tests run on 4 pytest-xdist workers when xdist is there: most
# of their time is spent waiting on daemons, not on the CPU.
# Usage: tools/run-tests.sh BUILD_DIR ASAN_DIR PYTHON
# Exits non-zero when any suite failed; every suite runs regardless.
BUILD=${1:-build}
ASAN=${2:-build-asan}
PYTHON=${3:-/usr/bin/python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=$ROOT/artifacts
mkdir -p "$LOGDIR"
status=0
summary=""

unit() {
	dir=$1
	label=$2
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
}

e2e() {
	bin=$1
	label=$2
	echo "== end-to-end ($label): $bin"
	(
		CLUSTERMGMT_BIN=$bin "$PYTHON" -m pytest -q -p no:cacheprovider $PARALLEL \
			"$ROOT/tests/e2e"
		echo $? >"$LOGDIR/e2e-$label.rc"
	) 2>&1 | tee "$LOGDIR/e2e-$label.log"
	[ "$(cat "$LOGDIR/e2e-$label.rc")" = 0 ] || status=1
	summary="$summary
e2e ($label): $(tail -n 1 "$LOGDIR/e2e-$label.log")"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tools/lsan.supp:print_suppressions=0}

PARALLEL=""
"$PYTHON" -c "import xdist" 2>/dev/null && PARALLEL="-n 4"

unit "$ROOT/$BUILD" release
e2e "$ROOT/$BUILD/clustermgmt" release
unit "$ROOT/$ASAN" asan
CLUSTERMGMT_SANITIZED=1 e2e "$ROOT/$ASAN/clustermgmt" asan

echo "== fuzz corpus"
if make -s -C "$ROOT" fuzz-regress >"$LOGDIR/fuzz-regress.log" 2>&1; then
	fuzz_result="$(grep -c '^== fuzz_' "$LOGDIR/fuzz-regress.log") passed, 0 failed"
else
	cat "$LOGDIR/fuzz-regress.log"
	fuzz_result="failed (see artifacts/fuzz-regress.log)"
	status=1
fi
summary="$summary
fuzz: $fuzz_result"

echo
echo "== summary"
echo "$summary" | sed '/^$/d'
exit $status
