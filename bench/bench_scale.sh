#!/bin/bash
# bench_scale.sh: export and per-stage parity of a 120b-width synth at several rank counts, with
# per-rank memory next to the plan (docs/scaling.md; table: bench/scale_table.py).
#   usage: bench/bench_scale.sh GPTOSS_BIN WORK_DIR PHASE RANKS...
#     PHASE: export | parity;  WORK_DIR/c120 is made first if missing (synth --preset 120b,
#     $LAYERS layers, default 8: ~15 GiB). Logs: WORK_DIR/PHASE-P.log, plans WORK_DIR/plan-*-P.json.
#   env: LAYERS (8), TOKENS (prompt length, default 8), NEW (new tokens, default 2), STAGES
#        (--stages for plan, export and parity; default: the plan's default split)
# Run the rank counts one at a time on a shared machine (check `free -g` first); outputs of
# export are deleted after each run, the checkpoint is kept (delete WORK_DIR/c120 when done).
set -u
BIN=$1 WORK=$2 PHASE=$3
shift 3
LAYERS=${LAYERS:-8} TOKENS=${TOKENS:-8} NEW=${NEW:-2}
SPLIT=()
[ -n "${STAGES:-}" ] && SPLIT=(--stages "$STAGES")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
CK=$WORK/c120
mkdir -p "$WORK"
if [ ! -f "$CK/config.json" ]; then
  "$BIN" synth "$CK" --preset 120b --layers "$LAYERS" -q || exit 1
fi
IDS=$(seq -s, 1 "$TOKENS")
T=$((TOKENS + (NEW > 1 ? NEW - 1 : 0)))
for P in "$@"; do
  echo "== $PHASE on $P ranks${STAGES:+ (--stages $STAGES)}: $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg), free $(free -g | awk '/Mem/ {print $7}') GiB"
  LOG=$WORK/$PHASE-$P.log
  case $PHASE in
    export)
      "$BIN" plan "$CK" --ranks "$P" "${SPLIT[@]}" --tokens "$TOKENS" --max-seq "$T" --json > "$WORK/plan-export-$P.json"
      rm -rf "$WORK/exp-$P"
      /usr/bin/time -f "wall %e s, max rss of a process %M KiB" \
        mpirun -np "$P" "$BIN" export "$CK" "${SPLIT[@]}" --output "$WORK/exp-$P" -v > "$LOG" 2>&1
      echo "rc=$?" >> "$LOG"
      du -sb "$WORK/exp-$P" >> "$LOG" 2>/dev/null
      rm -rf "$WORK/exp-$P"
      ;;
    parity)
      "$BIN" plan "$CK" --ranks "$P" "${SPLIT[@]}" --tokens "$TOKENS" --max-seq "$T" --per-stage --json > "$WORK/plan-parity-$P.json"
      rm -f "$WORK/rep-$P.h5"
      /usr/bin/time -f "wall %e s, max rss of a process %M KiB" \
        mpirun -np "$P" "$BIN" parity "$CK" "${SPLIT[@]}" --per-stage --prompt-ids "$IDS" --max-tokens "$NEW" \
        --report "$WORK/rep-$P.h5" -v > "$LOG" 2>&1
      echo "rc=$?" >> "$LOG"
      ;;
    *) echo "bench_scale.sh: PHASE is export or parity" >&2; exit 2 ;;
  esac
  tail -3 "$LOG"
done
