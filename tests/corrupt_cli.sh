#!/usr/bin/env bash
# The corrupt-input matrix through the command line:
#   corrupt_cli.sh GPTOSS_BIN TEST_CORRUPT_BIN WORK_BASE
# test_corrupt --emit writes every case as a directory (or file, or dangling link); for each,
# `gptoss-mpi inspect CASE` must exit 1 within 20 s, print nothing on stdout and exactly one
# line on stderr, starting with "gptoss-mpi: error:".
set -u
bin=$1; gen=$2; base=$3
work=$(mktemp -d "$base/corrupt_cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
if ! "$gen" --emit "$work/cases" >"$work/gen.log" 2>&1; then
  cat "$work/gen.log" >&2
  echo "corrupt_cli: test_corrupt --emit failed" >&2
  exit 1
fi
fail=0; n=0
for case in "$work"/cases/*; do
  name=$(basename "$case")
  n=$((n + 1))
  timeout 20 "$bin" inspect "$case" >"$work/out" 2>"$work/err"
  rc=$?
  lines=$(wc -l <"$work/err")
  why=""
  [ "$rc" -eq 1 ] || why="exit code $rc (want 1)"
  [ -s "$work/out" ] && why="$why; stdout not empty"
  [ "$lines" -eq 1 ] || why="$why; $lines stderr lines (want 1)"
  head -n 1 "$work/err" | grep -q '^gptoss-mpi: error:' || why="$why; stderr does not start with 'gptoss-mpi: error:'"
  if [ -n "$why" ]; then
    echo "FAIL $name: $why" >&2
    sed 's/^/  stderr: /' "$work/err" | head -n 5 >&2
    head -c 300 "$work/out" | sed 's/^/  stdout: /' >&2
    fail=$((fail + 1))
  else
    echo "ok   $name: $(cat "$work/err")"
  fi
done
[ "$n" -ge 24 ] || { echo "corrupt_cli: only $n cases emitted" >&2; fail=$((fail + 1)); }
echo "corrupt_cli: $((n - fail)) of $n cases passed"
[ "$fail" -eq 0 ]
