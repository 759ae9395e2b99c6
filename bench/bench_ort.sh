#!/usr/bin/env bash
# bench_ort.sh: the ort target against the standard target and our own C forward (issue 13
# item 4). Numbers go to stdout as "name: value" lines; docs/export.md and bench/README.md quote
# a run. CPU-bound: run it alone on the machine (2 cores) and read the load printed first.
#
#   bench/bench_ort.sh BUILD_DIR WORK_DIR [STEPS]
#
# 1. synth --preset 20b --layers 2 -> WORK/ck (3.1 GB; kept if it is there), exported three ways:
#    standard (the default), --target ort, --target ort --dense fp32 (dense weights converted at
#    export time instead of bf16 + Cast folded by ORT at session creation); export time and file
#    size of each (the .onnx and its data), against the checkpoint's safetensors
# 2. for T = 16 and 256: ONNX Runtime 1.30 (onnxruntime-node, 2 intra-op threads, one process per
#    measurement, bench/ort_decode.js): session creation, a prefill of T ids, then STEPS (8)
#    greedy decode steps through the cache (per-token median); VmHWM, RssAnon, RssFile; the
#    greedy ids must equal gptoss-mpi run's (checked)
# 3. our `gptoss-mpi run` (1 rank, 2 BLAS threads): the same prefill and decode steps (-v)
# 4. the ratios the issue asks for: ort prefill vs the C forward at T=256, ort decode vs the
#    standard decode, ort file vs the checkpoint
# The 24-layer synth is not run here: see docs/export.md "Benchmark: the ort target".
# Deletes the exports (the checkpoint is kept with KEEP=1).
set -euo pipefail
BUILD=${1:?usage: bench_ort.sh BUILD_DIR WORK_DIR [STEPS]}
WORK=${2:?usage: bench_ort.sh BUILD_DIR WORK_DIR [STEPS]}
STEPS=${3:-8}
BIN=$BUILD/gptoss-mpi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORT_NODE=$ROOT/.deps/ort/node_modules/onnxruntime-node
JS=$ROOT/bench/ort_decode.js
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$WORK"
CK=$WORK/ck
[ -d "$CK" ] || "$BIN" synth "$CK" --preset 20b --layers 2 --seed 1 -q
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c "import random; random.seed(1); print(','.join(str(random.randrange(201088)) for _ in range(256 + $STEPS)))" > "$WORK/ids.txt"
ck_bytes=$(cat "$CK"/*.safetensors | wc -c)
echo "checkpoint_bytes: $ck_bytes"
declare -A FILE
for v in standard ort ort-fp32; do
  case $v in
    standard) args=() ;;
    ort) args=(--target ort) ;;
    ort-fp32) args=(--target ort --dense fp32) ;;
  esac
  rm -rf "$WORK/ex-$v"
  t0=$(date +%s.%N)
  mpirun -np 1 --bind-to none "$BIN" export "$CK" --output "$WORK/ex-$v" "${args[@]}" -q
  t1=$(date +%s.%N)
  FILE[$v]=$(cat "$WORK/ex-$v"/onnx/model.onnx* | wc -c)
  echo "export_$v: $(python3 -c "print(f'{$t1 - $t0:.1f} s, file {${FILE[$v]} / 1e9:.3f} GB = {${FILE[$v]} / $ck_bytes:.2f} x the checkpoint')")"
done
declare -A PREFILL STEP
for P in 16 256; do
  cut -d, -f1-"$P" "$WORK/ids.txt" > "$WORK/prompt.txt"
  out=$( { /usr/bin/time -v mpirun -np 1 --bind-to none "$BIN" run "$CK" --prompt-file "$WORK/prompt.txt" \
             --max-tokens $((STEPS + 1)) --threads 2 -v > "$WORK/run-ids.txt"; } 2>&1 )
  pre=$(grep -E '^prefill: [0-9]+ tokens in ' <<<"$out" | sed -E 's/.* in ([0-9.]+) s.*/\1/')
  dec=$(grep -E '^decode: [0-9]+ steps in ' <<<"$out" | sed -E 's/^decode: ([0-9]+) steps in ([0-9.]+) s.*/\2 \1/')
  PREFILL[c$P]=$pre
  STEP[c$P]=$(python3 -c "a, n = '$dec'.split(); print(f'{float(a) / int(n):.3f}')")
  echo "gptoss_run_T$P: prefill ${pre} s, decode ${STEP[c$P]} s/token, peak RSS $(( $(grep 'Maximum resident' <<<"$out" | awk '{print $NF}') / 1024 )) MiB"
  for v in standard ort ort-fp32; do
    [ "$v" = ort-fp32 ] && [ "$P" = 16 ] && continue
    line=$(node "$JS" "$ORT_NODE" "$WORK/ex-$v/onnx/model.onnx" "$WORK/ids.txt" 2 cache "$P" "$STEPS" 2>/dev/null)
    echo "ort_${v}_T$P: ${line% ids *}"
    PREFILL[$v$P]=$(sed -E "s/.* prefill${P}_s ([0-9.]+) .*/\1/" <<<"$line")
    STEP[$v$P]=$(sed -E 's/.* step_median_s ([0-9.]+) .*/\1/' <<<"$line")
    if [ "${line##* ids }" = "$(cat "$WORK/run-ids.txt")" ]; then
      echo "  greedy ids = gptoss-mpi run's ($((STEPS + 1)) ids)"
    else
      echo "  greedy ids DIFFER from gptoss-mpi run's: ${line##* ids } vs $(cat "$WORK/run-ids.txt")"
    fi
  done
done
python3 - "${PREFILL[ort256]}" "${PREFILL[c256]}" "${STEP[ort256]}" "${STEP[standard256]}" "${STEP[c256]}" \
  "${FILE[ort]}" "$ck_bytes" "${PREFILL[standard256]}" <<'EOF'
import sys
po, pc, so, ss, sc, fo, ck, ps = map(float, sys.argv[1:])
print(f"goal_prefill256: ort {po:.2f} s vs C forward {pc:.2f} s: C/ort = {pc / po:.2f} (goal >= 1); "
      f"standard {ps:.2f} s")
print(f"goal_decode: ort {so:.3f} s/token vs standard {ss:.3f} s/token: {ss / so:.1f}x (goal >= 4); "
      f"C run {sc:.3f} s/token")
print(f"goal_file: ort {fo / ck:.2f} x the checkpoint (goal <= 2.2)")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/ex-standard" "$WORK/ex-ort" "$WORK/ex-ort-fp32" "$WORK/ids.txt" "$WORK/prompt.txt" "$WORK/run-ids.txt"
[ "${KEEP:-0}" = 1 ] || rm -rf "$CK"
