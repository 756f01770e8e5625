#!/usr/bin/env bash
# make_venv.sh VENV BUILD_DIR [pip -C options...]
#
# Creates VENV (if missing) with nothing from the system but the interpreter,
# installs fjffi's build requirements and test extras from the package index,
# then builds and installs fjffi from this checkout with meson-python, keeping
# the build in BUILD_DIR so the next run only recompiles what changed.
set -euo pipefail

venv=$1
build=$2
shift 2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

# --no-build-isolation (below) builds with what is installed, so install the
# build requirements first, as pyproject.toml lists them.
"$venv/bin/python" -c "import tomllib" 2>/dev/null || "${pip[@]}" tomli
mapfile -t requires < <("$venv/bin/python" - "$root/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
EOF
)
[ ${#requires[@]} -gt 0 ] || { echo "make_venv.sh: no build requirements read" >&2; exit 1; }
"${pip[@]}" "${requires[@]}" pytest-run-parallel

# A build dir configured for another checkout cannot be reused.
if [ -d "$build" ] && [ "$(cat "$build.source" 2>/dev/null)" != "$root" ]; then
  rm -rf "$build"
fi
mkdir -p "$(dirname "$build")"
echo "$root" >"$build.source"
# A free-threaded interpreter gets the test-core extra only: cffi and the
# interop packages have no builds for it (extra 'cffi' adds cffi elsewhere).
extras=test-core
"$venv/bin/python" -c 'import sys, sysconfig; sys.exit(bool(sysconfig.get_config_var("Py_GIL_DISABLED")))' \
  && extras=test,cffi
# strict: fjffi's own C is held to -Werror here, as in every check.
"${pip[@]}" --no-build-isolation -Cbuild-dir="$build" -Csetup-args=-Dstrict=true "$@" \
  "$root[$extras]"
