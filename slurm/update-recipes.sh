#!/usr/bin/env bash
# update-recipes.sh: (re)write slurm/gpt-oss-20b.sbatch and slurm/gpt-oss-120b.sbatch from the
# plan of the real shapes, so that their resources are computed, never typed in.
#
#   slurm/update-recipes.sh [BUILD_DIR] [--out DIR]
#
# For each model: a sparse checkpoint of the real shape (BUILD_DIR/tests/synth_sparse: real
# headers and file sizes, no data, no disk used) in a temporary directory, then
# slurm/gptoss-size.sh on it with the layout chosen below; its whole output is quoted in the
# script's comments and its #SBATCH lines become the script's resources. --out DIR writes the
# scripts there instead of slurm/ (the test slurm_sized_scripts does that and diffs the two).
# Run it again whenever the plan's memory model (shards/plan.c) changes.
#
# The layouts (a choice, not a computation, so passed as --stages rather than left to the plan's
# default split): gpt-oss-20b on one node, 8 ranks = 8 stages, so a
# rank holds 3-4 layers; gpt-oss-120b on two nodes x 8 ranks = 8 stages x 2 expert groups, so no
# node holds more than about half of the 61 GiB.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$HERE/../build
OUT=$HERE
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?}; shift 2 ;;
    -*) echo "usage: update-recipes.sh [BUILD_DIR] [--out DIR]" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
if [ -z "${GPTOSS_BIN:-}" ] || [ -z "${SYNTH_SPARSE:-}" ]; then
  BUILD=$(cd "$BUILD" && pwd) || { echo "update-recipes: no build directory $BUILD" >&2; exit 1; }
fi
export GPTOSS_BIN=${GPTOSS_BIN:-$BUILD/gptoss-mpi}
SYNTH_SPARSE=${SYNTH_SPARSE:-$BUILD/tests/synth_sparse}
[ -x "$GPTOSS_BIN" ] || { echo "update-recipes: no $GPTOSS_BIN (build first, or set GPTOSS_BIN)" >&2; exit 1; }
[ -x "$SYNTH_SPARSE" ] || { echo "update-recipes: no $SYNTH_SPARSE (build first, or set SYNTH_SPARSE)" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# recipe NAME PRESET RANKS NODES STAGES [PARITY_ARGS]  (PARITY_ARGS: the default GPTOSS_PARITY_ARGS)
recipe() {
  local name=$1 preset=$2 ranks=$3 nodes=$4 stages=$5 parity=${6:-} size
  local fixes="the resources and GPTOSS_STAGES, then\n# runs that script." parity_knob=""
  if [ -n "$parity" ]; then
    fixes="the resources, GPTOSS_STAGES and\n# GPTOSS_PARITY_ARGS, then runs that script."
    parity_knob="# parity per stage: the whole model's graph in one ONNX Runtime session (~25 GiB at 120b
# widths, docs/scaling.md) fits no rank's --mem-per-cpu; one-layer sub-models on the ranks of
# their stage do
export GPTOSS_PARITY_ARGS=\${GPTOSS_PARITY_ARGS:-$parity}"
  fi
  "$SYNTH_SPARSE" "$TMP/$name" "$preset" original
  size=$(cd "$TMP" && bash "$HERE/gptoss-size.sh" "$name" --ranks "$ranks" --nodes "$nodes" --stages "$stages")
  {
    cat <<EOF
#!/usr/bin/env bash
# $name.sbatch: export $name to ONNX and check it with a routing-parity report (docs/slurm.md).
# Written by slurm/update-recipes.sh: edit that script, not this file.
#
#   GPTOSS_CKPT=/data/$name/original sbatch slurm/$name.sbatch
#
# Knobs as in slurm/gptoss-export-parity.sbatch (GPTOSS_OUT, GPTOSS_WEIGHTS, GPTOSS_PROMPT,
# GPTOSS_LAUNCH, GPTOSS_BIN, ...); this file only fixes $(printf '%b' "$fixes")
# The checkpoint and GPTOSS_OUT must be on a filesystem every node sees.
#
# The resources below are not guesses: they are the output of
#   slurm/gptoss-size.sh $name --ranks $ranks --nodes $nodes --stages $stages
# run on a checkpoint of the real $name shape (tests/synth_sparse: real headers and file
# sizes, no data; the plan reads only headers), quoted here in full. The test
# slurm_sized_scripts recomputes them and fails when this file drifts from the plan.
# Memory: --mem-per-cpu is the largest rank's predicted peak x 1.25 (checkpoint bytes read,
# scratch for 256 tokens, KV cache); the checkpoint pages are page cache shared on a node.
# Time: export (314 MiB/s per node) + two forward passes (120 MiB/s of checkpoint bytes, stage
# after stage), rates measured on a 2-core shared test machine with a warm page cache, x 3.
# A cold read of the checkpoint from a slow filesystem is the first thing to budget more for.
#
EOF
    sed 's/^/#   /; s/ *$//' <<<"$size"
    cat <<EOF
#
#SBATCH --job-name=$name
$(grep '^#SBATCH' <<<"$size")
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120

$(grep '^export GPTOSS_STAGES' <<<"$size")${parity_knob:+
$parity_knob}

# sbatch runs a copy of this file from its spool directory, so find the generic script: in
# GPTOSS_SLURM_DIR, next to the submitted file (scontrol's Command=), or in the submit dir's slurm/.
here=\${GPTOSS_SLURM_DIR:-}
if [ -z "\$here" ] && [ -n "\${SLURM_JOB_ID:-}" ]; then
  cmd=\$(scontrol show job "\$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *Command=\\([^ ]*\\).*/\\1/p')
  [ -n "\$cmd" ] && here=\$(dirname -- "\$cmd")
fi
for d in "\$here" "\$(dirname -- "\$0")" "\${SLURM_SUBMIT_DIR:-.}/slurm" "\${SLURM_SUBMIT_DIR:-.}"; do
  if [ -n "\$d" ] && [ -f "\$d/gptoss-export-parity.sbatch" ]; then
    exec bash "\$d/gptoss-export-parity.sbatch"
  fi
done
echo "$name.sbatch: cannot find gptoss-export-parity.sbatch (set GPTOSS_SLURM_DIR to the slurm/ directory)" >&2
exit 1
EOF
  } >"$OUT/$name.sbatch.tmp"
  chmod +x "$OUT/$name.sbatch.tmp"
  mv "$OUT/$name.sbatch.tmp" "$OUT/$name.sbatch"
  rm -rf "${TMP:?}/$name"
  echo "update-recipes: $OUT/$name.sbatch: $(grep '^#SBATCH --\(nodes\|ntasks\|mem-per-cpu\|time\)=' "$OUT/$name.sbatch" | sed 's/#SBATCH //' | tr '\n' ' ')"
}

recipe gpt-oss-20b 20b 8 1 8
recipe gpt-oss-120b 120b 16 2 8 --per-stage
