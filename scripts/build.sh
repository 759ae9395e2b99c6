#!/usr/bin/env bash
# Configure and build: scripts/build.sh BUILD_DIR [cmake -D options...]
# The options are applied at every call (cmake re-configures only what they change), so a -D
# given after the first configure is not silently ignored.
set -euo pipefail
dir=${1:?usage: scripts/build.sh BUILD_DIR [cmake -D options...]}; shift
mkdir -p "$dir"
cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1 || {
  cat "$dir/configure.log" >&2
  echo "gptoss-mpi: configure failed in $dir (log: $dir/configure.log)" >&2
  exit 1
}
cmake --build "$dir" -j "${JOBS:-2}" -- --no-print-directory >"$dir/build.log" 2>&1 || {
  cat "$dir/build.log" >&2
  echo "gptoss-mpi: build failed in $dir (log: $dir/build.log)" >&2
  exit 1
}
