#!/usr/bin/env bash
# bench_export.sh: export speed and memory, and what ONNX Runtime makes of the exports (issue 5
# item 7). Numbers go to stdout as "name: value" lines; docs/export.md quotes a run.
#
#   bench/bench_export.sh BUILD_DIR WORK_DIR [LAYERS]
#
# 1. synth --preset 20b --layers LAYERS (default 4) -> WORK/ck
# 2. cp -r of the checkpoint to the same disk + sync (the yardstick), alternated with a 1-rank
#    export + sync, RUNS pairs (default 3): medians and the median per-pair ratio (issue 14
#    item 4); then export --weights mxfp4 with 1 and 2 ranks (each fsyncs its data), peak RSS
#    and anonymous memory per rank
# 3. export --weights fp32 (2 ranks), and the dense-weight variants --dense auto / fp32 (default
#    bf16 + Cast; auto = fp32 only over ORT's 1 GiB folding limit, i.e. the unembedding)
# 4. ONNX Runtime 1.30 (onnxruntime-node, 2 intra-op threads): session creation time and memory
#    (anonymous vs file-backed) for each export, prefill of 256 tokens, next to our own
#    `gptoss-mpi run` (1 rank, 2 BLAS threads) on the same prompt
# Deletes what it wrote (the checkpoint is kept only with KEEP=1).
set -euo pipefail
BUILD=${1:?usage: bench_export.sh BUILD_DIR WORK_DIR [LAYERS]}
WORK=${2:?usage: bench_export.sh BUILD_DIR WORK_DIR [LAYERS]}
LAYERS=${3:-4}
BIN=$BUILD/gptoss-mpi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORT_NODE=$ROOT/.deps/ort/node_modules/onnxruntime-node
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$WORK"
CK=$WORK/ck
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

if [ ! -d "$CK" ]; then
  t0=$(now); "$BIN" synth "$CK" --preset 20b --layers "$LAYERS" -q; t1=$(now)
  echo "synth_20b_L${LAYERS}_s: $(secs "$t0" "$t1")"
fi
echo "checkpoint_bytes: $(du -sb "$CK" | cut -f1)"

# the yardstick: a synced copy to the same disk, alternated with a synced 1-rank export, RUNS
# pairs (default 3); medians, and the median of the per-pair ratios (pairing keeps the ratio
# meaningful when a shared machine's speed drifts during the run)
RUNS=${RUNS:-3}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cps=() exs=() ratios=()
for ((i = 0; i < RUNS; i++)); do
  rm -rf "$WORK/ck-copy" "$WORK/pair"
  t0=$(now); cp -r "$CK" "$WORK/ck-copy"; sync; t1=$(now)
  t2=$(now); mpirun -np 1 --bind-to none "$BIN" export "$CK" --output "$WORK/pair" -q; sync; t3=$(now)
  c=$(secs "$t0" "$t1") x=$(secs "$t2" "$t3")
  cps+=("$c") exs+=("$x") ratios+=("$(echo "scale=4; $x / $c" | bc)")
  echo "  pair $i: cp+sync ${c} s, export+sync ${x} s"
  rm -rf "$WORK/ck-copy" "$WORK/pair"
done
CP=$(printf '%s\n' "${cps[@]}" | median)
echo "cp_s (median of $RUNS): $CP"
echo "export_np1_synced_s (median of $RUNS): $(printf '%s\n' "${exs[@]}" | median)"
echo "export_np1_vs_cp (median of per-pair ratios): $(printf '%s\n' "${ratios[@]}" | median)"

run_export() { # name np args...
  local name=$1 np=$2; shift 2
  rm -rf "$WORK/$name"
  local t0 t1
  t0=$(now)
  mpirun -np "$np" --bind-to none "$BIN" export "$CK" --output "$WORK/$name" "$@" 2> "$WORK/$name.log"
  t1=$(now)
  echo "export_${name}_s: $(secs "$t0" "$t1") (x$(echo "scale=2; ($t1 - $t0) / $CP" | bc) of cp)"
  echo "export_${name}_bytes: $(du -sb "$WORK/$name" | cut -f1)"
  grep -E "rank [0-9]+: wrote" "$WORK/$name.log" | sed "s/^/  $name /"
}
run_export mxfp4_np1 1
run_export mxfp4_np2 2
cmp -s "$WORK/mxfp4_np1/onnx/model.onnx.data" "$WORK/mxfp4_np2/onnx/model.onnx.data" && echo "mxfp4_np1_vs_np2: identical"
rm -rf "$WORK/mxfp4_np2"
run_export mxfp4_dense_auto 2 --dense auto
run_export mxfp4_dense_fp32 2 --dense fp32
run_export fp32_np2 2 --weights fp32

# ONNX Runtime: creation, memory, prefill of 256 tokens
python3 -c "import random; random.seed(1); print(','.join(str(random.randrange(201088)) for _ in range(256)))" > "$WORK/ids.txt"
cat > "$WORK/ort_bench.js" <<EOF
const ort = require('$ORT_NODE');
const fs = require('fs');
function mem() {
  const s = fs.readFileSync('/proc/self/status', 'utf8'), g = k => +(s.match(new RegExp(k + ':\\\\s+(\\\\d+)'))[1]) / 1024;
  return {rss: g('VmRSS').toFixed(0), anon: g('RssAnon').toFixed(0), file: g('RssFile').toFixed(0), hwm: g('VmHWM').toFixed(0)};
}
(async () => {
  const [model, idsFile] = process.argv.slice(2);
  const ids = fs.readFileSync(idsFile, 'utf8').trim().split(',').map(BigInt);
  const m0 = mem(); let t = process.hrtime.bigint();
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const create = Number(process.hrtime.bigint() - t) / 1e9, m1 = mem();
  // the decoder's inputs for a prefill: the ids, a mask and positions, an empty cache
  const i64 = (a) => new ort.Tensor('int64', BigInt64Array.from(a), [1, a.length]);
  const feeds = {input_ids: i64(ids), attention_mask: i64(ids.map(() => 1n)), position_ids: i64(ids.map((_, i) => BigInt(i)))};
  for (const m of s.inputMetadata)
    if (m.name.startsWith('past_key_values.'))
      feeds[m.name] = new ort.Tensor('float32', new Float32Array(0), m.shape.map(d => typeof d === 'number' ? d : d === 'batch_size' ? 1 : 0));
  t = process.hrtime.bigint(); await s.run(feeds); const run1 = Number(process.hrtime.bigint() - t) / 1e9;
  const c0 = process.cpuUsage();
  t = process.hrtime.bigint(); await s.run(feeds); const run2 = Number(process.hrtime.bigint() - t) / 1e9;
  const c1 = process.cpuUsage(c0), cpu2 = (c1.user + c1.system) / 1e6;
  const m2 = mem();
  console.log('create_s ' + create.toFixed(2) + ' | after create MiB rss ' + m1.rss + ' anon ' + m1.anon + ' file ' + m1.file +
    ' | prefill256_s first ' + run1.toFixed(2) + ' second ' + run2.toFixed(2) + ' (cpu ' + cpu2.toFixed(1) + ')' +
    ' | after prefill MiB rss ' + m2.rss + ' anon ' + m2.anon + ' file ' + m2.file + ' peak ' + m2.hwm);
})().catch(e => { console.error(e.message || e); process.exit(1); });
EOF
for name in mxfp4_np1 mxfp4_dense_auto mxfp4_dense_fp32 fp32_np2; do
  echo "ort_$name: $(node "$WORK/ort_bench.js" "$WORK/$name/onnx/model.onnx" "$WORK/ids.txt" 2>/dev/null)"
done
t0=$(now)
mpirun -np 1 --bind-to none "$BIN" run "$CK" --prompt-file "$WORK/ids.txt" --max-tokens 0 --threads 2 -q > /dev/null
t1=$(now)
echo "gptoss_run_prefill256_np1_threads2_s (incl. startup): $(secs "$t0" "$t1")"
rm -rf "$WORK/mxfp4_np1" "$WORK/mxfp4_dense_auto" "$WORK/mxfp4_dense_fp32" "$WORK/fp32_np2" "$WORK"/*.log "$WORK/ort_bench.js" "$WORK/ids.txt"
[ "${KEEP:-0}" = 1 ] || rm -rf "$CK"
