#!/usr/bin/env bash
# gptoss-size.sh: size a Slurm job from `gptoss-mpi plan` (docs/slurm.md "Sizing a job").
#
#   slurm/gptoss-size.sh CKPT --ranks P [--nodes N] [--stages S] [--tokens T]
#                        [--io-rate MIBS] [--fwd-rate MIBS] [--safety X]
#
# Runs `gptoss-mpi plan CKPT --ranks P [--stages S] --tokens T --json` (T default 256, the
# plan's default; a longer prompt needs more scratch) and prints the figures and the #SBATCH lines:
#   --mem-per-cpu  the largest rank's predicted peak (checkpoint bytes it maps + scratch + KV
#                  cache) x 1.25, rounded up to a whole GiB (one task per CPU)
#   node memory    ranks are placed in blocks (ranks 0..P/N-1 on the first node, ...); the sum of
#                  the peaks of a node's ranks is what that node must hold
#   --time         (export: the busiest node's mapped bytes at --io-rate MiB/s
#                   + reference forward and ONNX forward: for each stage, its largest rank's
#                   mapped bytes at --fwd-rate MiB/s, stages one after another) x --safety,
#                  rounded up to 10 minutes, at least 20 minutes
# Default rates were measured with this tool on a 2-core, shared test machine (docs/slurm.md):
# export 314 MiB/s per node, forward 120 MiB/s of checkpoint bytes touched; default safety 3.
# A checkpoint of the real shape with no data (tests/synth_sparse, sparse files) is enough: the
# plan reads only headers. GPTOSS_BIN selects the tool (default gptoss-mpi from PATH).
set -euo pipefail

usage() {
  echo "usage: gptoss-size.sh CKPT --ranks P [--nodes N] [--stages S] [--tokens T] [--io-rate MIBS] [--fwd-rate MIBS] [--safety X]" >&2
  exit 2
}
CKPT=""; RANKS=""; NODES=1; STAGES=""; TOKENS=256; IO=314; FWD=120; SAFETY=3
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) RANKS=${2:?}; shift 2 ;;
    --nodes) NODES=${2:?}; shift 2 ;;
    --stages) STAGES=${2:?}; shift 2 ;;
    --tokens) TOKENS=${2:?}; shift 2 ;;
    --io-rate) IO=${2:?}; shift 2 ;;
    --fwd-rate) FWD=${2:?}; shift 2 ;;
    --safety) SAFETY=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "gptoss-size: unknown option $1" >&2; usage ;;
    *) [ -z "$CKPT" ] || usage; CKPT=$1; shift ;;
  esac
done
if [ -z "$CKPT" ] || [ -z "$RANKS" ]; then usage; fi
[ $((RANKS % NODES)) -eq 0 ] || { echo "gptoss-size: --nodes $NODES must divide --ranks $RANKS" >&2; exit 2; }
BIN=${GPTOSS_BIN:-gptoss-mpi}

args=("$CKPT" --ranks "$RANKS" --tokens "$TOKENS")
[ -n "$STAGES" ] && args+=(--stages "$STAGES")
"$BIN" plan "${args[@]}"
json=$("$BIN" plan "${args[@]}" --json)

python3 - "$json" "$NODES" "$IO" "$FWD" "$SAFETY" "$TOKENS" <<'EOF'
import json, math, sys
p = json.loads(sys.argv[1])
nodes, io, fwd, safety, tokens = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
G, Mi = 1024.0 ** 3, 1024.0 ** 2
ranks = p["per_rank"]
P = len(ranks)
per_node = P // nodes
big = max(ranks, key=lambda r: r["peak_bytes"])
mem_gib = math.ceil(big["peak_bytes"] * 1.25 / G)
print()
print(f"gptoss-size: {p['checkpoint']}: {P} ranks = {p['stages']} stages x {p['expert_groups']} expert groups"
      f" on {nodes} node(s) x {per_node} tasks; {tokens} tokens per call")
print(f"  largest rank peak (plan): {big['peak_bytes'] / G:.2f} GiB (rank {big['rank']}) "
      f"-> --mem-per-cpu={mem_gib}G (x 1.25, rounded up to GiB)")
node_mapped = []
for n in range(nodes):
    rs = ranks[n * per_node:(n + 1) * per_node]
    peak = sum(r["peak_bytes"] for r in rs)
    mapped = sum(r["mapped_bytes"] for r in rs)
    node_mapped.append(mapped)
    print(f"  node {n}: ranks {rs[0]['rank']}-{rs[-1]['rank']}, sum of peaks {peak / G:.2f} GiB "
          f"(mapped {mapped / G:.2f} GiB); granted {per_node * mem_gib} GiB")
total = sum(r["mapped_bytes"] for r in ranks)
stage_max = {}
for r in ranks:
    stage_max[r["stage"]] = max(stage_max.get(r["stage"], 0), r["mapped_bytes"])
t_export = max(node_mapped) / Mi / io
t_fwd = sum(stage_max.values()) / Mi / fwd
t = (t_export + 2 * t_fwd) * safety
minutes = max(20, math.ceil(t / 60 / 10) * 10)
print(f"  checkpoint bytes mapped: {total / G:.2f} GiB in all, busiest node {max(node_mapped) / G:.2f} GiB")
print(f"  time: export {t_export:.0f} s (busiest node at {io:g} MiB/s) + 2 forwards (reference, ONNX) "
      f"{2 * t_fwd:.0f} s (stage by stage at {fwd:g} MiB/s) = {t_export + 2 * t_fwd:.0f} s; "
      f"x {safety:g} = {t:.0f} s -> --time={minutes // 60}:{minutes % 60:02d}:00")
print()
print(f"#SBATCH --nodes={nodes}")
print(f"#SBATCH --ntasks-per-node={per_node}")
print(f"#SBATCH --ntasks={P}")
print(f"#SBATCH --mem-per-cpu={mem_gib}G")
print(f"#SBATCH --time={minutes // 60}:{minutes % 60:02d}:00")
print(f"export GPTOSS_STAGES=${{GPTOSS_STAGES:-{p['stages']}}}")
EOF
