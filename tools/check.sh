#!/usr/bin/env bash
# The reliability checks, one after another, then a summary:
#
#   1. asan      the whole suite on an ASan + UBSan build, no report allowed
#   2. tsan      the threaded tests on a TSan build, no warning in fjffi code
#   3. stress    32 threads x 10,000 mixed operations (tests/test_stress.py)
#   4. parallel  the suite under pytest-run-parallel, 4 threads per test
#   5. soak      1,000,000 calls, RSS and tracemalloc growth bounded
#   6. freethreaded  the threaded tests, the stress test, the adversarial
#                suite and python -m fjffi on free-threaded CPython 3.13t
#                with the GIL off; fails if anything turns the GIL on
#   7. cfuzz     the C fuzz targets (fuzz/c/run.sh) under libFuzzer, ASan and
#                UBSan, 60 s each, then their coverage
#
#   tools/check.sh [--quick]
#
# The interpreter for step 6 is built once by ../shared/tools/free-threaded-
# python.sh (about 10 minutes) into ~/.cache/fjffi-free-threaded, and reused
# by every later run on the same machine.  A clone of a local checkout
# finds that script beside the checkout it was cloned from.
#
# --quick trims what only adds repetition, for CI: fewer hypothesis examples
# under the sanitizers, 2 threads per test under pytest-run-parallel and
# 20 s per fuzz target.  The stress and soak sizes stay full: they take seconds.
#
# Each step builds what it needs into its own virtualenv under FJFFI_CHECK_DIR
# (default $TMPDIR/fjffi-check), installing from the package index, so it
# runs on a fresh machine; a second run rebuilds only what changed.  Every
# step runs even when one before it failed; the exit status is 1 if any did.
set -uo pipefail

quick=0
case ${1:-} in
  --quick) quick=1 ;;
  "") ;;
  -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${FJFFI_CHECK_DIR:-${TMPDIR:-/tmp}/fjffi-check}
export FJFFI_CHECK_DIR=$work
mkdir -p "$work/logs"
plain=$work/venv-plain/bin/python

if [ $quick = 1 ]; then
  export HYPOTHESIS_PROFILE=quick
  parallel_threads=2
  cfuzz_seconds=20
else
  export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
  parallel_threads=4
  cfuzz_seconds=60
fi

summary=()
failed=0
# step NAME MINUTES COMMAND...: run it with its output to the terminal and a
# log, stopped after MINUTES (a hang must fail the step, not eat CI's time),
# and keep one summary line: status, time and the figures it printed last.
step() {
  local name=$1 limit=$2 start rc line
  shift 2
  echo
  echo "=== $name: $*"
  start=$(date +%s)
  timeout --kill-after=30 "$((limit * 60))" bash -c '"$@"' "$name" "$@" 2>&1 \
    | tee "$work/logs/$name.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "$name: stopped after $limit minutes" | tee -a "$work/logs/$name.log"
  line=$(grep -E "[0-9]+ (passed|failed|errors?)\b|reports:|warnings in fjffi|canary:|^soak: [0-9,]+ calls in|^stress:|stopped after" \
           "$work/logs/$name.log" | tail -3 | tr '\n' ' ')
  summary+=("$(printf '%-9s %-4s %5ss  %s' "$name" "$([ "$rc" = 0 ] && echo PASS || echo FAIL)" \
                "$(( $(date +%s) - start ))" "$line")")
  [ "$rc" = 0 ] || failed=1
}

# The tests import the installed fjffi, so pytest never runs in the source tree.
in_work() { (cd "$work" && "$@"); }
stress() {
  FJFFI_STRESS_OPS=10000 in_work "$plain" -m pytest -p no:cacheprovider -q -s -m slow \
    "$root/tests"
}
# test_stress.py is left out: it is its own 32 threads, and copies of it on
# every thread would only multiply its time.
parallel() {
  in_work "$plain" -m pytest -p no:cacheprovider -q --parallel-threads=$parallel_threads \
    --ignore="$root/tests/test_stress.py" "$root/tests"
}

# Free-threaded 3.13t, GIL off: the tests that run threads, the stress test
# (fewer operations: only the races matter here) and the adversarial suite.
# The conftest fails a run with FJFFI_REQUIRE_NO_GIL set if the GIL is on at
# its end.  With PYTHON_GIL=0 nothing can turn it on, so the extensions'
# declarations are checked in a second part without it: test_extending
# builds and imports the test consumers, and python -m fjffi imports fjffi,
# and an undeclared extension's RuntimeWarning is an error.
freethreaded_script() {
  local base
  for base in "$root" "$(git -C "$root" remote get-url origin 2>/dev/null)"; do
    if [ -n "$base" ] && [ -f "$base/../shared/tools/free-threaded-python.sh" ]; then
      echo "$base/../shared/tools/free-threaded-python.sh"
      return 0
    fi
  done
  echo "no ../shared/tools/free-threaded-python.sh beside $root or its origin" >&2
  return 1
}

freethreaded() {
  local py script rc=0
  script=$(freethreaded_script) || return 1
  py=$(bash "$script" | tail -1) || return 1
  "$py" -m pip install -q --disable-pip-version-check --no-build-isolation \
    -Cbuild-dir="$work/build-ft" "$root[test-core]" || return 1
  local pytest=("$py" -W error::RuntimeWarning -m pytest -p no:cacheprovider -q)
  echo "--- GIL off (PYTHON_GIL=0)"
  # The whole suite but what needs jax, numba or dask, which have no
  # free-threaded builds.
  PYTHON_GIL=0 FJFFI_REQUIRE_NO_GIL=1 in_work "${pytest[@]}" "$root/tests" \
    --ignore="$root/tests/test_jax.py" --ignore="$root/tests/test_numba.py" \
    --ignore="$root/tests/test_dask.py" --ignore="$root/tests/test_interop_docs.py" || rc=1
  PYTHON_GIL=0 FJFFI_REQUIRE_NO_GIL=1 FJFFI_STRESS_OPS=2000 in_work "${pytest[@]}" -s -m slow \
    "$root/tests/test_stress.py" || rc=1
  PYTHON_GIL=0 in_work "$py" -W error::RuntimeWarning -m fjffi --no-bench || rc=1
  echo "--- GIL setting left to the extensions (no PYTHON_GIL)"
  (unset PYTHON_GIL
   FJFFI_REQUIRE_NO_GIL=1 in_work "${pytest[@]}" "$root/tests/test_extending.py" \
     "$root/tests/test_freethreading.py" || exit 1
   in_work "$py" -W error::RuntimeWarning -c 'import sys
from fjffi.__main__ import main
rc = main(["--no-bench"])
print("python -m fjffi --no-bench: GIL enabled at the end =", sys._is_gil_enabled())
sys.exit(rc or sys._is_gil_enabled())') || rc=1
  return $rc
}

# libFuzzer comes with clang (Debian: clang, libclang-rt-N-dev) and
# llvm-profdata/llvm-cov with llvm; CI is a fresh Debian machine run as root,
# so they are installed there when missing.  The corpus is only read
# (--no-update): growing it is done by hand with fuzz/c/run.sh.
have_libfuzzer() {
  echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' \
    | clang -fsanitize=fuzzer -x c - -o "$work/cfuzz-probe" 2>/dev/null \
    && command -v "llvm-cov-$(clang -dumpversion | cut -d. -f1)" >/dev/null
}
cfuzz() {
  if ! have_libfuzzer; then
    if [ "$(id -u)" != 0 ]; then
      echo "cfuzz: clang with libFuzzer and llvm are missing; apt-get install clang llvm"
      return 1
    fi
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y clang llvm || return 1
  fi
  FJFFI_FUZZ_BUILD="$work/cfuzz" "$root/fuzz/c/run.sh" --no-update "$cfuzz_seconds"
}

export root work plain parallel_threads cfuzz_seconds
export -f in_work stress parallel freethreaded_script freethreaded have_libfuzzer cfuzz
step build 15 "$root/tools/make_venv.sh" "$work/venv-plain" "$work/build-plain"
step asan 40 "$root/tools/sanitize.sh" asan
step tsan 20 "$root/tools/sanitize.sh" tsan
step stress 10 stress
step parallel 20 parallel
step soak 10 in_work "$plain" "$root/tools/soak.py" --calls 1000000
step freethreaded 30 freethreaded
step cfuzz 15 cfuzz

echo
echo "=== summary ($([ $quick = 1 ] && echo quick || echo full); logs in $work/logs)"
printf '%s\n' "${summary[@]}"
exit $failed
