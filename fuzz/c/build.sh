#!/usr/bin/env bash
# Builds the libFuzzer targets listed in fuzz/c/targets.txt, twice each:
#
#   OUT/NAME        clang -fsanitize=fuzzer,address,undefined, for fuzzing
#   OUT/NAME.cov    clang -fsanitize=fuzzer with source-based coverage
#                   (-fprofile-instr-generate -fcoverage-mapping), to replay
#                   a corpus and measure what it reaches
#
#   fuzz/c/build.sh [OUT]      (default: $FJFFI_FUZZ_BUILD or $TMPDIR/fjffi-fuzz-c)
#
# CC picks the compiler (default clang); it must be clang with libFuzzer
# (Debian: clang and libclang-rt-<version>-dev).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-${FJFFI_FUZZ_BUILD:-${TMPDIR:-/tmp}/fjffi-fuzz-c}}
cc=${CC:-clang}
mkdir -p "$out"

# The project's own warnings-as-errors, so the fuzzed code is the code that ships.
common=(-std=gnu11 -g -O1 -Wall -Wextra -Werror -pthread
        -I"$root/src/fjffi/include" -I"$root/src/fjffi/src" -I"$root/src/fjffi/kernels" -I"$here")
fuzz_flags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
cov_flags=(-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -DFUZZ_COVERAGE)

while read -r name sources; do
  case $name in ''|'#'*) continue ;; esac
  files=()
  for s in $sources; do files+=("$root/$s"); done
  "$cc" "${common[@]}" "${fuzz_flags[@]}" "${files[@]}" -lm -o "$out/$name"
  "$cc" "${common[@]}" "${cov_flags[@]}" "${files[@]}" -lm -o "$out/$name.cov"
  echo "built $out/$name and $out/$name.cov"
done < "$here/targets.txt"
