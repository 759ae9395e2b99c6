#!/usr/bin/env bash
# The README's main command: a small synthetic checkpoint through the pipeline.
#   scripts/demo.sh BUILD_DIR OUT_DIR
# Idempotent: the checkpoint is written once and reused.
set -euo pipefail
build=$1; out=$2
bin="$build/gptoss-mpi"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$out"
ckpt="$out/ckpt-tiny"
if [ ! -f "$ckpt/config.json" ]; then
  "$bin" synth "$ckpt" --preset tiny --seed 1
fi
echo "== inspect =="
"$bin" inspect "$ckpt" | tee "$out/inspect.txt"
"$bin" inspect "$ckpt" --json > "$out/inspect.json"
echo "== run (forward pass + 8 generated tokens) =="
mpirun -np 1 "$bin" run "$ckpt" --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12 --max-tokens 8 \
  --trace "$out/trace.h5" | tee "$out/generated.txt"
cat <<MSG

demo results in $out/:
  ckpt-tiny/      the synthetic checkpoint (official original/ layout)
  inspect.txt     what inspect says about it (inspect.json: the same as JSON)
  generated.txt   the generated token ids
  trace.h5        the forward-pass trace (h5ls -r $out/trace.h5)
MSG
