#!/usr/bin/env bash
# Script tests of `synth` and `inspect` (registered by tests/synth.cmake).
#   synth_test.sh roundtrip PRESET LAYOUT [synth options]   synth -> inspect --json -> checks
#   synth_test.sh determinism      same seed = same bytes, other seed differs, layouts agree
#   synth_test.sh sparse           full-size 20B/120B headers (sparse files): section 3 figures
#   synth_test.sh errors           usage errors exit 2, runtime errors exit 1, nothing on stdout
#   synth_test.sh killed           a synth killed mid-way leaves no OUT_DIR
# Environment (from ctest): GPTOSS_BIN, PY3, SYNTH_PY, SYNTH_WORK, SYNTH_SPARSE.
set -euo pipefail
BIN=${GPTOSS_BIN:?}
PY=${PY3:-/usr/bin/python3}
CHECK=${SYNTH_PY:?}
WORK=${SYNTH_WORK:?}
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# expect CODE CMD...: run, require exit code CODE
expect() {
  local want=$1; shift
  set +e
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  set -e
  [ "$rc" = "$want" ] || { cat "$WORK/out" "$WORK/err"; fail "exit $rc, expected $want: $*"; }
}

mode=$1; shift
case "$mode" in
roundtrip)
  preset=$1 layout=$2; shift 2
  layers=0 experts=0 args=("$@")
  while [ $# -gt 0 ]; do
    case "$1" in --layers) layers=$2; shift ;; --experts) experts=$2; shift ;; esac
    shift
  done
  out="$WORK/ckpt"
  "$BIN" synth "$out" --preset "$preset" --layout "$layout" --seed 7 --progress 5 "${args[@]}"
  "$BIN" inspect "$out" --json >"$WORK/inspect.json"
  "$BIN" inspect "$out" >"$WORK/inspect.txt"
  grep -q "^layout" "$WORK/inspect.txt" || fail "text output"
  "$PY" "$CHECK" json "$WORK/inspect.json" "$out" "$preset" "$layout" "$layers" "$experts"
  rm -rf "$out"
  ;;
determinism)
  for layout in original hf; do
    "$BIN" synth "$WORK/a-$layout" -q --seed 11 --layout "$layout"
    "$BIN" synth "$WORK/b-$layout" -q --seed 11 --layout "$layout"
    "$BIN" synth "$WORK/c-$layout" -q --seed 12 --layout "$layout"
    for f in "$WORK/a-$layout"/*; do
      n=$(basename "$f")
      [ "$(sha256sum <"$f")" = "$(sha256sum <"$WORK/b-$layout/$n")" ] || fail "$layout $n differs for the same seed"
    done
    for f in "$WORK/a-$layout"/*.safetensors; do
      n=$(basename "$f")
      [ "$(sha256sum <"$f")" != "$(sha256sum <"$WORK/c-$layout/$n")" ] || fail "$layout $n same for seeds 11 and 12"
    done
    cmp -s "$WORK/a-$layout/config.json" "$WORK/c-$layout/config.json" || fail "config depends on the seed"
  done
  # the tiny preset is golden case-a's shape: identical header bytes
  if [ -n "${GOLDEN:-}" ] && [ -f "$GOLDEN/original/model.safetensors" ]; then
    g="$GOLDEN/original/model.safetensors"
    hl=$(( $(od -An -tu8 -N8 "$g") + 8 ))
    cmp -s -n "$hl" "$g" "$WORK/a-original/model.safetensors" || fail "header differs from golden case-a"
    [ "$(stat -c %s "$g")" = "$(stat -c %s "$WORK/a-original/model.safetensors")" ] || fail "size differs from case-a"
  fi
  "$PY" "$CHECK" same "$WORK/a-original" "$WORK/a-hf"
  ;;
sparse)
  SP=${SYNTH_SPARSE:?}
  for preset in 20b 120b; do
    for layout in original hf; do
      d="$WORK/$preset-$layout"
      "$SP" "$d" "$preset" "$layout"
      used=$(du -sk "$d" | cut -f1)
      [ "$used" -lt 10240 ] || fail "$d uses $used KiB: not sparse"
      "$BIN" inspect "$d" >"$WORK/inspect.txt"
      "$BIN" inspect "$d" --json >"$WORK/inspect.json"
      "$PY" "$CHECK" text "$WORK/inspect.txt" "$preset"
      "$PY" "$CHECK" json "$WORK/inspect.json" "$d" "$preset" "$layout" 0 0
      rm -rf "$d"
    done
  done
  ;;
errors)
  "$BIN" synth "$WORK/full" -q
  expect 1 "$BIN" synth "$WORK/full" -q
  grep -q "not empty" "$WORK/err" || fail "no clear message for a non-empty OUT_DIR: $(cat "$WORK/err")"
  [ "$(wc -l <"$WORK/err")" = 1 ] || fail "more than one error line"
  touch "$WORK/afile"
  expect 1 "$BIN" synth "$WORK/afile" -q
  expect 1 "$BIN" synth "$WORK/no/such/parent/x" -q
  mkdir "$WORK/empty"
  expect 0 "$BIN" synth "$WORK/empty" -q
  [ -f "$WORK/empty/model.safetensors" ] || fail "synth into an empty directory"
  expect 2 "$BIN" synth
  expect 2 "$BIN" synth "$WORK/x" --preset 7b
  expect 2 "$BIN" synth "$WORK/x" --layers 0
  expect 2 "$BIN" synth "$WORK/x" --layers abc
  expect 2 "$BIN" synth "$WORK/x" --experts -1
  expect 2 "$BIN" synth "$WORK/x" --seed -3
  expect 2 "$BIN" synth "$WORK/x" --layout gguf
  expect 2 "$BIN" synth "$WORK/x" --bogus
  expect 2 "$BIN" synth "$WORK/x" "$WORK/y"
  expect 2 "$BIN" synth "$WORK/x" --progress abc
  [ ! -e "$WORK/x" ] || fail "a usage error created OUT_DIR"
  expect 0 "$BIN" synth --help
  grep -q -- "--preset" "$WORK/out" || fail "help text"
  expect 2 "$BIN" inspect
  expect 2 "$BIN" inspect "$WORK/full" --bogus
  expect 1 "$BIN" inspect "$WORK/nonexistent"
  [ ! -s "$WORK/out" ] || fail "inspect printed on stdout on error"
  grep -q "^gptoss-mpi: error: " "$WORK/err" || fail "error line format: $(cat "$WORK/err")"
  expect 0 "$BIN" inspect "$WORK/full" --json
  cp -r "$WORK/full" "$WORK/corrupt"
  truncate -s 100000 "$WORK/corrupt/model.safetensors"
  expect 1 "$BIN" inspect "$WORK/corrupt" --json
  [ ! -s "$WORK/out" ] || fail "inspect printed on stdout on error"
  [ "$(wc -l <"$WORK/err")" = 1 ] || fail "inspect error is not one line: $(cat "$WORK/err")"
  ;;
killed)
  out="$WORK/killed"
  "$BIN" synth "$out" -q --preset 20b --layers 1 &
  pid=$!
  sleep 0.5
  kill -KILL "$pid" 2>/dev/null || fail "synth finished before it could be killed"
  wait "$pid" 2>/dev/null || true
  [ ! -e "$out" ] || fail "a killed synth left $out"
  ls -d "$WORK"/.killed.tmp.* >/dev/null 2>&1 || fail "no temporary directory: was synth killed while writing?"
  rm -rf "$WORK"/.killed.tmp.*
  # SIGTERM, SIGINT, SIGHUP: synth stops within seconds, says so, and leaves nothing at all
  for sig in TERM INT HUP; do
    "$BIN" synth "$out" --preset 20b --layers 1 2>"$WORK/stop.err" &
    pid=$!
    sleep 0.5
    t0=$(date +%s)
    kill -"$sig" "$pid" 2>/dev/null || fail "synth finished before SIG$sig"
    set +e
    wait "$pid"
    rc=$?
    set -e
    t1=$(date +%s)
    [ $((t1 - t0)) -le 5 ] || fail "SIG$sig: synth took $((t1 - t0)) s to stop"
    [ "$rc" -gt 128 ] || fail "SIG$sig: exit $rc, expected death by the signal"
    grep -q "stopped by SIG$sig (partial output removed)" "$WORK/stop.err" || { cat "$WORK/stop.err"; fail "SIG$sig: no stop message"; }
    left=$(ls -A "$WORK" | grep -v -e '^stop.err$' -e '^out$' -e '^err$' || true)
    [ -z "$left" ] || fail "SIG$sig left: $left"
  done
  ;;
*)
  fail "unknown mode $mode"
  ;;
esac
echo "synth_test $mode: ok"
