#!/usr/bin/env bash
# bench_kernels.sh BUILD DATA_DIR [--keep] [--skylakex]: the figures of the direct kernels
# (docs/forward.md "Kernels"), each printed by the benchmark next to its baseline from the same
# run (bench/README.md):
#   1. bench_kernels on the 2-layer 20b synth, 1 and 2 threads: direct vs convert + sgemm per
#      shape and T (the crossovers), T = 1 against a plain read, the VDPBF16PS experiment;
#   2. bench_forward, 2-layer synth, prefill of 16 tokens + decode: new vs the convert path;
#   3. bench_forward, 2-layer synth, prefill of 256 tokens: matmul GFLOP/s vs plain sgemm;
#   4. bench_forward, 24-layer 20b synth (13 GB), prefill of 16 + 16 decode steps (3 for the
#      baseline, 6 s each): decode tok/s, step time vs a plain read of the step's weight bytes.
# The synths are written into DATA_DIR when missing (3.3 GB and 13 GB; --keep keeps them, else
# they are removed at the end). --skylakex repeats 3 with OPENBLAS_CORETYPE=SkylakeX set for
# that command alone (the machines here set Haswell on purpose; see docs/toolchain.md 3).
# The load of the machine is printed before and after each step: read ratios, not absolutes.
set -euo pipefail
BUILD=${1:?usage: bench_kernels.sh BUILD DATA_DIR [--keep] [--skylakex]}
DATA=${2:?usage: bench_kernels.sh BUILD DATA_DIR [--keep] [--skylakex]}
shift 2
keep=0
skx=0
for a in "$@"; do
  case $a in
    --keep) keep=1 ;;
    --skylakex) skx=1 ;;
    *) echo "bench_kernels.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
G=$BUILD/gptoss-mpi
BK=$BUILD/bench/bench_kernels
BF=$BUILD/bench/bench_forward
C2=$DATA/ck20b2
C24=$DATA/ck20b24
made=()
mkdir -p "$DATA"
if [ ! -f "$C2/config.json" ]; then "$G" synth "$C2" --preset 20b --layers 2 --seed 1 -q; made+=("$C2"); fi
cleanup() { [ $keep = 1 ] || [ ${#made[@]} = 0 ] || rm -rf "${made[@]}"; }
trap cleanup EXIT

load() { echo "-- load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) on $(nproc) cores"; }

echo "== 1. kernels: direct vs convert + sgemm, 2-layer 20b synth"
for t in 1 2; do
  load
  "$BK" "$C2" --threads $t --reps 7 --T 1,2,4,8,16,24,32,48,64,96,128
done
echo "== 2. prefill of 16 tokens + 8 decode steps, 2-layer synth, 2 threads"
load
"$BF" "$C2" --prompt 16 --decode 8 --repeat 5 --threads 2
echo "== 3. prefill of 256 tokens, 2-layer synth, 2 threads"
load
"$BF" "$C2" --prompt 256 --decode 2 --repeat 3 --threads 2
if [ $skx = 1 ]; then
  echo "== 3b. the same with OPENBLAS_CORETYPE=SkylakeX (this command only)"
  OPENBLAS_CORETYPE=SkylakeX "$BF" "$C2" --prompt 256 --decode 2 --repeat 3 --threads 2
fi
echo "== 4. decode on the 24-layer 20b synth, 1 and 2 threads"
if [ ! -f "$C24/config.json" ]; then "$G" synth "$C24" --preset 20b --seed 2 -q; made+=("$C24"); fi
for t in 2 1; do
  load
  "$BF" "$C24" --prompt 16 --decode 16 --baseline-decode 3 --threads $t
done
load
