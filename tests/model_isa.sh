#!/usr/bin/env bash
# The instruction set of the direct kernels changes no bit (model/kern.h: one summation order):
# `run --trace` on case-a (fp32 and bf16) and on a Hugging Face layout synth (q/k/v in three
# tensors) with GPTOSS_SIMD=scalar and =avx2 gives traces bitwise identical to the default
# (AVX-512 where the CPU has it). GPTOSS_KERNELS=convert runs (another summation order, not
# compared); an unknown GPTOSS_KERNELS or GPTOSS_SIMD value is a usage error.
# usage: model_isa.sh GPTOSS_BIN      (env: GOLDEN, TMPDIR_BASE)
set -uo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR_BASE:-/tmp}/model-isa.XXXXXX")
trap 'rm -rf "$W"' EXIT
IDS=37,297,214,493,138,380,482,81,427,136,475,118,227,308,109,126,95,133,308,285,218,214,461,224
fails=0
check() { if [ "$2" = 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

"$BIN" synth "$W/hf" -q --preset tiny --layout hf --experts 5 --layers 2 --seed 9
check "synth hf" $?
for ck in "$GOLDEN/original" "$W/hf"; do
  for prec in fp32 bf16; do
    tag=$(basename "$ck")-$prec
    "$BIN" run "$ck" -q --prompt-ids "$IDS" --max-tokens 4 --precision "$prec" --trace "$W/$tag.h5" >/dev/null
    check "$tag: default run" $?
    for isa in avx2 scalar; do
      GPTOSS_SIMD=$isa "$BIN" run "$ck" -q --prompt-ids "$IDS" --max-tokens 4 --precision "$prec" \
        --trace "$W/$tag-$isa.h5" >/dev/null
      check "$tag: GPTOSS_SIMD=$isa run" $?
      /usr/bin/python3 "$HERE/trace_identical.py" "$W/$tag.h5" "$W/$tag-$isa.h5" >/dev/null
      check "$tag: GPTOSS_SIMD=$isa trace bitwise = default" $?
    done
  done
done
GPTOSS_KERNELS=convert "$BIN" run "$GOLDEN/original" -q --prompt-ids "$IDS" --max-tokens 2 >/dev/null
check "GPTOSS_KERNELS=convert runs" $?
err=$(GPTOSS_KERNELS=fast "$BIN" run "$GOLDEN/original" -q --prompt-ids "$IDS" --max-tokens 2 2>&1 >/dev/null)
rc=$?
[ $rc = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ]
check "GPTOSS_KERNELS=fast: exit 2 (got $rc), one line: $err" $?
err=$(GPTOSS_SIMD=sse9 "$BIN" run "$GOLDEN/original" -q --prompt-ids "$IDS" --max-tokens 2 2>&1 >/dev/null)
rc=$?
[ $rc = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ]
check "GPTOSS_SIMD=sse9: exit 2 (got $rc), one line: $err" $?
echo "model_isa: $fails failure(s)"
[ $fails = 0 ]
