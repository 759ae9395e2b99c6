#!/usr/bin/env bash
# bench_ort.sh: the ort target against the standard target and our own C forward (issue 13
# item 4). Numbers go to stdout as "name: value" lines; docs/export.md and bench/README.md quote
# a run. CPU-bound: run it alone on the machine (2 cores) and read the load printed first.
#
#   bench/bench_ort.sh BUILD_DIR WORK_DIR [STEPS] [REPEAT]
#
# 1. synth --preset 20b --layers 2 -> WORK/ck (3.1 GB; kept if it is there), exported three ways:
#    standard (the default), --target ort, --target ort --dense fp32 (dense weights converted at
#    export time instead of bf16 + Cast folded by ORT at session creation); export time and file
#    size of each (the .onnx and its data), against the checkpoint's safetensors
# 2. for T = 16 and 256: ONNX Runtime 1.30 (onnxruntime-node, 2 intra-op threads, one process per
#    measurement, bench/ort_decode.js): session creation, the session's first call (a prefill of
#    T ids, timed on its own), then the measured prefill of T ids and STEPS (8)
#    greedy decode steps through the cache (per-token median); VmHWM, RssAnon, RssFile; the
#    greedy ids must equal gptoss-mpi run's (checked)
# 3. our `gptoss-mpi run` (1 rank, 2 BLAS threads): the same prefill and decode steps (-v)
# 4. the ratios the issue asks for: ort prefill vs the C forward at T=256 (REPEAT (3) alternating
#    pairs of processes, medians), ort decode vs the standard decode (wall and process CPU), ort
#    file vs the checkpoint
# The 24-layer synth is not run here: see docs/export.md "Benchmark: the ort target".
# Deletes the exports (the checkpoint is kept with KEEP=1).
set -euo pipefail
BUILD=${1:?usage: bench_ort.sh BUILD_DIR WORK_DIR [STEPS] [REPEAT]}
WORK=${2:?usage: bench_ort.sh BUILD_DIR WORK_DIR [STEPS] [REPEAT]}
STEPS=${3:-8}
REPEAT=${4:-3}
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
declare -A PREFILL STEP SCPU
# our C forward: a prefill of P ids, then STEPS decode steps (-v prints both)
c_run() {
  local P=$1 out pre dec ucpu
  cut -d, -f1-"$P" "$WORK/ids.txt" > "$WORK/prompt.txt"
  out=$( { /usr/bin/time -v mpirun -np 1 --bind-to none "$BIN" run "$CK" --prompt-file "$WORK/prompt.txt" \
             --max-tokens $((STEPS + 1)) --threads 2 -v > "$WORK/run-ids-$P.txt"; } 2>&1 )
  pre=$(grep -E '^prefill: [0-9]+ tokens in ' <<<"$out" | sed -E 's/.* in ([0-9.]+) s.*/\1/')
  dec=$(grep -E '^decode: [0-9]+ steps in ' <<<"$out" | sed -E 's/^decode: ([0-9]+) steps in ([0-9.]+) s.*/\2 \1/')
  PREFILL[c$P]="${PREFILL[c$P]:-} $pre"
  STEP[c$P]=$(python3 -c "a, n = '$dec'.split(); print(f'{float(a) / int(n):.3f}')")
  ucpu=$(grep -E 'User time|System time' <<<"$out" | awk '{s += $NF} END {printf "%.1f", s}')
  echo "gptoss_run_T$P: prefill ${pre} s, decode ${STEP[c$P]} s/token, process cpu ${ucpu} s (open + prefill + decode), peak RSS $(( $(grep 'Maximum resident' <<<"$out" | awk '{print $NF}') / 1024 )) MiB (load $(cut -d' ' -f1 /proc/loadavg))"
}
# ONNX Runtime on export v: creation, first call, the measured prefill of P ids, STEPS steps
ort_run() {
  local v=$1 P=$2 line
  line=$(node "$JS" "$ORT_NODE" "$WORK/ex-$v/onnx/model.onnx" "$WORK/ids.txt" 2 cache "$P" "$STEPS" warm 2>/dev/null)
  echo "ort_${v}_T$P: ${line% ids *} (load $(cut -d' ' -f1 /proc/loadavg))"
  PREFILL[$v$P]="${PREFILL[$v$P]:-} $(sed -E "s/.* prefill${P}_s ([0-9.]+) .*/\1/" <<<"$line")"
  STEP[$v$P]=$(sed -E 's/.* step_median_s ([0-9.]+) .*/\1/' <<<"$line")
  SCPU[$v$P]=$(sed -E 's/.* step_cpu_median_s ([0-9.]+) .*/\1/' <<<"$line")
  if [ "${line##* ids }" = "$(cat "$WORK/run-ids-$P.txt")" ]; then
    echo "  greedy ids = gptoss-mpi run's ($((STEPS + 1)) ids)"
  else
    echo "  greedy ids DIFFER from gptoss-mpi run's: ${line##* ids } vs $(cat "$WORK/run-ids-$P.txt")"
  fi
}
c_run 16
ort_run standard 16
ort_run ort 16
c_run 256
ort_run standard 256
ort_run ort-fp32 256
ort_run ort 256
# the prefill goal, in alternating pairs (the machine's speed drifts; medians)
for r in $(seq 2 "$REPEAT"); do
  c_run 256
  ort_run ort 256
done
python3 - "${PREFILL[ort256]}" "${PREFILL[c256]}" "${STEP[ort256]}" "${STEP[standard256]}" "${STEP[c256]}" \
  "${FILE[ort]}" "$ck_bytes" "${PREFILL[standard256]}" "${SCPU[ort256]}" "${SCPU[standard256]}" <<'EOF'
import statistics, sys
a = sys.argv[1:]
po, pc, ps = (statistics.median(map(float, a[i].split())) for i in (0, 1, 7))
so, ss, sc, fo, ck, co, cs = map(float, a[2:7] + a[8:10])
print(f"goal_prefill256: ort {po:.2f} s vs C forward {pc:.2f} s (medians of {len(a[0].split())} alternating "
      f"pairs: {a[0].strip()} / {a[1].strip()}): C/ort = {pc / po:.2f} (goal >= 1); standard {ps:.2f} s")
print(f"goal_decode: ort {so:.3f} s/token vs standard {ss:.3f} s/token: {ss / so:.1f}x wall, "
      f"{cs / co:.1f}x process CPU ({co:.3f} vs {cs:.3f} s) (goal >= 4); C run {sc:.3f} s/token")
print(f"goal_file: ort {fo / ck:.2f} x the checkpoint (goal <= 2.2)")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/ex-standard" "$WORK/ex-ort" "$WORK/ex-ort-fp32" "$WORK/ids.txt" "$WORK/prompt.txt" "$WORK"/run-ids-*.txt
[ "${KEEP:-0}" = 1 ] || rm -rf "$CK"
