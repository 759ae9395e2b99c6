#!/usr/bin/env bash
# bench_dist.sh [GPTOSS_BIN] [DIR]: the issue-4 benchmark of the distributed forward pass, and
# the issue-14 goal for expert groups.
#
# Writes `synth --preset 20b --layers $LAYERS` (LAYERS default 2: 3.1 GB, 32 experts of real 20b
# width) under DIR and runs a prefill of 256 tokens (`run --max-tokens 1`: prompt only, then the
# first token) with
#   P=1 --threads 1, P=1 --threads 2, P=2 as 2 pipeline stages, P=2 as 2 expert groups
# (--threads 1 per rank unless said). Prints per run: wall time of mpirun, prefill time and
# tok/s, bytes sent between ranks per token against the minimum the plan implies, and per rank
# the peak RSS against the plan's prediction (the -v lines of `run`). The minimum for expert
# groups needs the routing: one more P=2 run with --trace (not timed) provides topk_indices.
# Then the goal: $PAIRS (default 7) rounds of P=1 --threads 1, P=2 as 2 expert groups and
# P=1 --threads 2 in turn: each round's load average, prefill times and the speed-up of the
# groups over each one-rank run (2 cores in all at --threads 2), and the medians (IDLE_WAIT: see
# below).
# The checkpoint is read from the page cache (a warm-up read precedes the runs). Removes
# everything it wrote.
set -euo pipefail
BIN=${1:-build/gptoss-mpi}
DIR=${2:-${TMPDIR:-/tmp}}
PY=/usr/bin/python3
W="$DIR/bench-dist.$$"
CK="$W/ck"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
# a rank waiting for another (the other stage, the expert exchange) polls; let it yield the core
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

LAYERS=${LAYERS:-2}
PAIRS=${PAIRS:-7}
"$BIN" synth "$CK" -q --preset 20b --layers "$LAYERS" --seed 1
cat "$CK"/*.safetensors > /dev/null
# 256 prompt ids below the 20b vocabulary (201088), deterministic
IDS=$("$PY" -c "print(','.join(str((i * 2654435761 + 12345) % 201088) for i in range(256)))")

now() { date +%s.%N; }
run() {  # run NAME NP ARGS...
  local name=$1 np=$2
  shift 2
  local t0 t1
  t0=$(now)
  mpirun -np "$np" "$BIN" run "$CK" --prompt-ids "$IDS" --max-tokens 1 -v "$@" \
    > "$W/$name.out" 2> "$W/$name.err"
  t1=$(now)
  echo "$t0 $t1" > "$W/$name.time"
}

uptime
run p1t1 1 --threads 1
run p1t2 1 --threads 2
run p2s2 2 --stages 2
run p2s1 2 --stages 1
mpirun -np 2 "$BIN" run "$CK" --prompt-ids "$IDS" --max-tokens 1 --stages 1 -q \
  --trace "$W/route.h5" > /dev/null
"$BIN" plan "$CK" --ranks 2 --stages 2 --tokens 256 --max-seq 256 --json > "$W/plan-s2.json"
"$BIN" plan "$CK" --ranks 2 --stages 1 --tokens 256 --max-seq 256 --json > "$W/plan-s1.json"

"$PY" - "$W" "$CK" <<'EOF'
import json, re, sys
import h5py, numpy as np
W = sys.argv[1]
f = h5py.File(f"{W}/route.h5", "r")
T, D = f["embedding_out"].shape
L = len(f["layers"])
E = f["layers/0/router_logits"].shape[1]

def minimum(name):
    """Bytes that must cross between ranks for the prefill under the plan (T tokens).
    Pipeline: the hidden state [T, D] fp32 once per stage boundary. Expert groups: per layer and
    token, its normalised row [D] to every other group owning one of its experts, and one [D]
    row back per slot whose expert lives in another group (the leader is group 0); the
    attention split (plan_group_share): per layer the hidden state [T, D] to the G - 1 other
    groups, each group's attention columns to the G - 1 others, the output-projection columns
    of groups 1.. back to the leader; the head: the last row [D] to the G - 1 others, their
    vocabulary rows of logits back."""
    plan = json.load(open(f"{W}/plan-{name}.json"))
    S, G = plan["stages"], plan["expert_groups"]
    b = (S - 1) * T * D * 4
    if G > 1:
        cfg = json.load(open(f"{sys.argv[2]}/config.json"))
        KV, H, Dh, V = (cfg["num_key_value_heads"], cfg["num_attention_heads"], cfg["head_dim"],
                        cfg["vocab_size"])
        HD, OB, UC = H * Dh, 32, 512  # PLAN_OUT_BLOCK, PLAN_UNEMB_CHUNK
        d_lead = min(D, -(-D // OB) // G * OB)
        v_lead = min(V, -(-V // UC) // G * UC)
        b += L * 4 * T * ((G - 1) * D + (G - 1) * HD + (D - d_lead))
        b += 4 * ((G - 1) * D + (V - v_lead))
        group = np.zeros(E, int)
        for r in plan["per_rank"]:
            group[r["expert0"]:r["expert0"] + r["n_experts"]] = r["group"]
        for l in range(L):
            g = group[f[f"layers/{l}/topk_indices"][:]]           # [T, K]
            away = g != 0
            b += away.sum() * D * 4                                # rows back
            for gg in range(1, G):
                b += (g == gg).any(axis=1).sum() * D * 4           # rows out
    return b

print(f"prefill of {T} tokens, synth 20b widths, {L} layers, {E} experts; MiB = 2^20 bytes\n")
runs = (("p1t1", "P=1, 1 thread", None), ("p1t2", "P=1, 2 threads", None),
        ("p2s2", "P=2 as 2 stages", "s2"), ("p2s1", "P=2 as 2 expert groups", "s1"))
print("| run | wall s | prefill s | tok/s | sent B/token | minimum B/token | sent / minimum |")
print("| --- | --- | --- | --- | --- | --- | --- |")
mem = []
for name, label, plan in runs:
    err = open(f"{W}/{name}.err").read()
    t0, t1 = map(float, open(f"{W}/{name}.time").read().split())
    m = re.search(r"prefill: (\d+) tokens in ([\d.]+) s \(([\d.]+) tok/s\)", err)
    sent = sum(int(x) for x in re.findall(r"; bytes sent (\d+)", err))
    mn = minimum(plan) if plan else 0
    ratio = f"{sent / mn:.4f}" if mn else "-"
    print(f"| {label} | {t1 - t0:.1f} | {m.group(2)} | {m.group(3)} | {sent / T:.0f} | {mn / T:.0f} | {ratio} |")
    for r, tb, mp, a, b in re.findall(r"rank (\d+): checkpoint bytes touched (\d+) \(plan: (\d+) mapped\); "
                                      r"peak RSS (\d+) \(plan: (\d+)\)", err):
        mem.append((label, r, int(tb), int(mp), int(a), int(b)))
print("\n| run | rank | checkpoint MiB touched (mapped) | peak RSS MiB | plan MiB | plan / measured |")
print("| --- | --- | --- | --- | --- | --- |")
for label, r, tb, mp, a, b in mem:
    print(f"| {label} | {r} | {tb / 2**20:.0f} ({mp / 2**20:.0f}) | {a / 2**20:.0f} | {b / 2**20:.0f} | {b / a:.2f} |")
EOF

# the goal: rounds of P=1 (1 and 2 threads) and P=2 as 2 expert groups in turn
# On a shared machine IDLE_WAIT=S waits, before each run, up to S seconds for 3 samples in a row
# (0.3 s apart) with no runnable task but the sampler (/proc/loadavg's running count): a run
# that shares the 2 cores with another job measures the job, not the split.
idle() {
  [ -n "${IDLE_WAIT:-}" ] || return 0
  local end=$(( $(date +%s) + IDLE_WAIT )) ok=0
  while [ "$ok" -lt 3 ] && [ "$(date +%s)" -lt "$end" ]; do
    if [ "$(cut -d' ' -f4 /proc/loadavg | cut -d/ -f1)" -le 1 ]; then ok=$((ok + 1)); else ok=0; fi
    sleep 0.3
  done
}
prefill() { grep -o 'prefill: [0-9]* tokens in [0-9.]* s' "$W/$1.err" | awk '{print $5}'; }
echo
echo "goal: $PAIRS rounds of P=1 --threads 1, P=2 --stages 1 (2 expert groups, 1 thread each), P=1 --threads 2"
echo "| round | load (1 min) | P=1 t1 s | P=1 t2 s | P=2 groups s | t1 / groups | t2 / groups |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
: > "$W/goal.txt"
for i in $(seq 1 "$PAIRS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  # the groups' run between the two one-rank runs: each ratio compares neighbours in time
  idle; run g1 1 --threads 1
  idle; run gg 2 --stages 1 --threads 1
  idle; run g2 1 --threads 2
  a=$(prefill g1) b=$(prefill g2) c=$(prefill gg)
  echo "$a $b $c" >> "$W/goal.txt"
  awk -v i="$i" -v l="$load" -v a="$a" -v b="$b" -v c="$c" \
    'BEGIN { printf "| %d | %s | %s | %s | %s | %.3f | %.3f |\n", i, l, a, b, c, a / c, b / c }'
done
"$PY" - "$W/goal.txt" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
r1 = [a / c for a, b, c in rows]
r2 = [b / c for a, b, c in rows]
rb = [min(a, b) / c for a, b, c in rows]
print(f"\nmedian speed-up of 2 expert groups: over P=1 --threads 1 {statistics.median(r1):.3f}x, "
      f"over P=1 --threads 2 {statistics.median(r2):.3f}x, over the faster of the two "
      f"{statistics.median(rb):.3f}x ({len(rows)} rounds)")
EOF
uptime
