#!/usr/bin/env bash
# The README's main command: a small synthetic checkpoint through the whole pipeline on 4 ranks:
# synth -> inspect -> plan -> export (ONNX, 4 ranks writing in parallel) -> parity (the C forward
# pass on 4 ranks against the exported model in ONNX Runtime) -> where the results are.
#   scripts/demo.sh BUILD_DIR OUT_DIR
# Idempotent: the checkpoint is written once and reused; the export and report are redone.
set -euo pipefail
build=$1; out=$2
bin="$build/gptoss-mpi"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ranks=4
prompt=1,7,42,99,256,300,401,17,5,77,123,250,311,480,9,64
mkdir -p "$out"
ckpt="$out/ckpt-tiny"
if [ ! -f "$ckpt/config.json" ]; then
  "$bin" synth "$ckpt" --preset tiny --seed 1
fi
echo "== inspect"
"$bin" inspect "$ckpt" > "$out/inspect.txt"
head -n 12 "$out/inspect.txt"
echo "== plan ($ranks ranks)"
"$bin" plan "$ckpt" --ranks "$ranks" | tee "$out/plan.txt"
echo "== export ($ranks ranks)"
rm -rf "$out/onnx"
mpirun -np "$ranks" "$bin" export "$ckpt" --output "$out/onnx" --expose routing,hidden
echo "== parity: C forward on $ranks ranks vs the exported model in ONNX Runtime"
rc=0
mpirun -np "$ranks" "$bin" parity "$ckpt" --onnx "$out/onnx" --prompt-ids "$prompt" \
  --max-tokens 4 --report "$out/parity.h5" --summary "$out/parity.md" || rc=$?
cat <<MSG

demo results in $out/:
  ckpt-tiny/         the synthetic checkpoint (official original/ layout)
  inspect.txt        what inspect says about it; plan.txt: who owns what on $ranks ranks
  onnx/              the exported model as clients load it (onnx/model.onnx + its data,
                     config.json, generation_config.json, genai_config.json)
  parity.md          the routing-parity summary (parity.svg: its chart; parity.h5: every figure)
MSG
exit $rc
