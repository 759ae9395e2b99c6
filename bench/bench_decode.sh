#!/usr/bin/env bash
# bench_decode.sh: the KV cache at work (issue 11 item 6). Numbers go to stdout as "name: value"
# lines; docs/export.md quotes a run. Run it alone on the machine (2 cores): it is CPU-bound.
#
#   bench/bench_decode.sh BUILD_DIR WORK_DIR [P] [STEPS] [REPREFILLS]
#
# 1. synth --preset 20b --layers 2 -> WORK/ck (3.1 GB), exported with the defaults (MXFP4
#    experts, bf16 dense weights + Cast) and with --dense auto (the unembedding stored as fp32:
#    over ORT's 1 GiB constant-folding limit, its Cast would otherwise run at every call)
# 2. ONNX Runtime 1.30 (onnxruntime-node, 2 intra-op threads), one process per measurement:
#    a prefill of P (256) ids, then STEPS (32) decode steps through the cache (per-token
#    latency: median, min, max); the old way, a full prefill of P+1, P+2, ... ids per new token
#    (REPREFILLS of them, 3); VmHWM of each process
# 3. our own `gptoss-mpi run` (1 rank, 2 BLAS threads): the same prefill and STEPS greedy decode
#    steps (-v prints prefill and decode times), its peak RSS; its ids must equal the greedy ids
#    of the cached ONNX decode (checked, printed)
# Deletes what it wrote (the checkpoint is kept with KEEP=1).
set -euo pipefail
BUILD=${1:?usage: bench_decode.sh BUILD_DIR WORK_DIR [P] [STEPS] [REPREFILLS]}
WORK=${2:?usage: bench_decode.sh BUILD_DIR WORK_DIR [P] [STEPS] [REPREFILLS]}
P=${3:-256}
STEPS=${4:-32}
REPREFILLS=${5:-3}
BIN=$BUILD/gptoss-mpi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORT_NODE=$ROOT/.deps/ort/node_modules/onnxruntime-node
JS=$ROOT/bench/ort_decode.js
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$WORK"
CK=$WORK/ck
[ -d "$CK" ] || "$BIN" synth "$CK" --preset 20b --layers 2 --seed 1 -q
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c "import random; random.seed(1); print(','.join(str(random.randrange(201088)) for _ in range($P + $STEPS + $REPREFILLS)))" > "$WORK/ids.txt"
for dense in bf16 auto; do
  rm -rf "$WORK/kv-$dense"
  mpirun -np 1 --bind-to none "$BIN" export "$CK" --output "$WORK/kv-$dense" --dense "$dense" -q
done
# our C decode: prefill P, then STEPS decode steps (STEPS + 1 new tokens: the last needs no step)
cut -d, -f1-"$P" "$WORK/ids.txt" > "$WORK/prompt.txt"
out=$( { /usr/bin/time -v mpirun -np 1 --bind-to none "$BIN" run "$CK" --prompt-file "$WORK/prompt.txt" \
           --max-tokens $((STEPS + 1)) --threads 2 -v > "$WORK/run-ids.txt"; } 2>&1 )
echo "gptoss_run: $(grep -E '^(prefill|decode): [0-9]+ (tokens|steps) in ' <<<"$out" | tr '\n' ' ')"
echo "gptoss_run_peak_rss_MiB (mpirun's children, /usr/bin/time): $(( $(grep 'Maximum resident' <<<"$out" | awk '{print $NF}') / 1024 ))"
grep -E 'peak RSS' <<<"$out" | sed 's/^/  /' || true
for dense in bf16 auto; do
  M=$WORK/kv-$dense/onnx/model.onnx
  line=$(node "$JS" "$ORT_NODE" "$M" "$WORK/ids.txt" 2 cache "$P" "$STEPS" 2>/dev/null)
  echo "ort_cache_dense_$dense: ${line% ids *}"
  if [ "${line##* ids }" = "$(cat "$WORK/run-ids.txt")" ]; then
    echo "  greedy ids of the cached decode = gptoss-mpi run's ($((STEPS + 1)) ids)"
  else
    echo "  greedy ids DIFFER from gptoss-mpi run's: ${line##* ids } vs $(cat "$WORK/run-ids.txt")"
  fi
  echo "ort_reprefill_dense_$dense: $(node "$JS" "$ORT_NODE" "$M" "$WORK/ids.txt" 2 reprefill "$P" "$REPREFILLS" 2>/dev/null)"
done
rm -rf "$WORK/kv-bf16" "$WORK/kv-auto" "$WORK/ids.txt" "$WORK/prompt.txt" "$WORK/run-ids.txt"
[ "${KEEP:-0}" = 1 ] || rm -rf "$CK"
