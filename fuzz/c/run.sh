#!/usr/bin/env bash
# Builds the C fuzz targets (build.sh), runs each for SECONDS on its corpus
# fuzz/c/corpus/NAME/, then reports the coverage the corpus reaches in
# registry.c, check.c, typed.c and raw.c.
#
#   fuzz/c/run.sh [--no-update] [SECONDS]      (default 60 per target)
#
# New inputs are merged into fuzz/c/corpus/NAME/ with -merge=1, which keeps
# only inputs that add coverage; --no-update leaves the corpus as it is (CI).
# A crash, sanitizer report or failed check is saved under OUT/crashes/ and
# makes the exit status 1.  FUZZ_TARGETS="registry check" runs only those;
# FJFFI_FUZZ_BUILD sets OUT (default $TMPDIR/fjffi-fuzz-c).
set -uo pipefail

update=1
if [ "${1:-}" = --no-update ]; then update=0; shift; fi
seconds=${1:-60}
case $seconds in ''|*[!0-9]*) echo "usage: $0 [--no-update] [SECONDS]" >&2; exit 2 ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FJFFI_FUZZ_BUILD:-${TMPDIR:-/tmp}/fjffi-fuzz-c}
export CC=${CC:-clang}
"$here/build.sh" "$out" || exit 1

# llvm-profdata and llvm-cov must match the compiler that wrote the profile.
major=$("$CC" -dumpversion | cut -d. -f1)
tool() { command -v "$1-$major" || command -v "$1"; }
profdata=$(tool llvm-profdata) || { echo "no llvm-profdata for clang $major" >&2; exit 1; }
llvmcov=$(tool llvm-cov) || { echo "no llvm-cov for clang $major" >&2; exit 1; }

targets=${FUZZ_TARGETS:-$(grep -v '^#' "$here/targets.txt" | awk 'NF {print $1}')}
mkdir -p "$out/crashes" "$out/profiles"
rm -f "$out"/profiles/*.profraw
failed=0
total_runs=0
objects=()
for t in $targets; do
  corpus=$here/corpus/$t
  work=$out/work/$t
  mkdir -p "$corpus" "$work"
  echo
  echo "=== $t: ${seconds}s from $(ls "$corpus" | wc -l) corpus inputs"
  # New inputs go to the first directory, the work one, so the kept corpus
  # only changes through the merge below.
  "$out/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" "$work" "$corpus" \
    > "$out/$t.log" 2>&1
  rc=$?
  grep -E "^(stat::|Done |==[0-9]+==|SUMMARY|.*check failed)" "$out/$t.log" | head -20
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
  total_runs=$((total_runs + ${runs:-0}))
  if [ $rc != 0 ]; then
    echo "$t: FAILED (exit $rc); the input is in $out/crashes/, the log in $out/$t.log"
    failed=1
  fi
  if [ $update = 1 ] && [ $rc = 0 ]; then
    merged=$out/merged/$t
    rm -rf "$merged" && mkdir -p "$merged"
    # -use_counters=0: one input per edge reached, not per loop-count bucket,
    # which keeps the corpus small.
    if "$out/$t" -merge=1 -use_counters=0 -max_len=4096 "$merged" "$corpus" "$work" \
        > "$out/$t.merge.log" 2>&1; then
      rm -f "$corpus"/* && cp "$merged"/* "$corpus"/ 2>/dev/null
      echo "$t: corpus merged to $(ls "$corpus" | wc -l) inputs"
    else
      echo "$t: merge failed, see $out/$t.merge.log"
      failed=1
    fi
  fi
  # Replay the corpus once on the coverage build: what the fuzzing reached.
  # %p: a forked child writes a profile of its own.
  LLVM_PROFILE_FILE="$out/profiles/$t.%p.profraw" "$out/$t.cov" -runs=0 "$corpus" \
    > "$out/$t.cov.log" 2>&1 || { echo "$t: coverage replay failed"; failed=1; }
  objects+=(-object "$out/$t.cov")
done

echo
echo "=== coverage of the corpora (lines and regions, llvm-cov $major)"
"$profdata" merge -sparse "$out"/profiles/*.profraw -o "$out/profiles/all.profdata" || failed=1
src=$root/src/fjffi
"$llvmcov" report "${objects[@]:1}" -instr-profile="$out/profiles/all.profdata" \
  "$src/src/registry.c" "$src/src/check.c" "$src/kernels/typed.c" \
  "$src/kernels/typed.template.c" "$src/kernels/raw.c" | tee "$out/coverage.txt" || failed=1
total=$(awk '$1 == "TOTAL" {print "regions " $4 ", lines " $10}' "$out/coverage.txt")
crashes=$(ls "$out/crashes" | wc -l)
echo
echo "cfuzz: $(echo $targets | wc -w) targets x ${seconds}s, $total_runs runs, crash reports: $crashes ($failed failed); coverage $total"
exit $failed
