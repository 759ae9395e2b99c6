#!/usr/bin/env bash
# Configure (once) and build: scripts/build.sh BUILD_DIR [cmake -D options...]
set -euo pipefail
dir=$1; shift
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "$@" >/dev/null
fi
cmake --build "$dir" -j "${JOBS:-2}" -- --no-print-directory >"$dir/build.log" 2>&1 || {
  cat "$dir/build.log" >&2
  echo "gptoss-mpi: build failed in $dir (log: $dir/build.log)" >&2
  exit 1
}
