#!/usr/bin/python3
"""Per-rank memory of `parity --per-stage` against `plan --per-stage --json` (issue 15 item 2), at
real widths (synth --preset 20b: D = 2880, I = 2880, 32 experts, top-4; 4 layers; a small
vocabulary, --vocab 8192, keeps the file at ~1.7 GB) on 4 ranks as 2 stages x 2 groups, so that
the layers of a stage go to different ranks and none of them is only a stage leader's.
  1. every rank's peak RSS (VmHWM of the C forward pass, then of each one-layer sub-model in ONNX
     Runtime, reset in between) is at most the plan's per-stage peak x 1.05 (page-cache folios
     mapped around the bytes read: docs/scaling.md) and at least 0.8 x it (the plan is not loose)
  2. the layers are spread: every rank checks one layer, and no rank's ONNX Runtime phase holds
     more than one layer's sub-model
  3. `plan --per-stage --mem-per-rank` below the largest rank's figure fails (exit 1) naming it
  4. with the prompt's own routing (`plan --routing` on a `run --trace` trace of the same prompt:
     the experts it selected instead of the expectation), the plan `parity -v` prints is the same
     as the command's, and every rank's C forward peak is within 0.9-1.05 of it, its ONNX Runtime
     phase within 0.85-1.15
The checkpoint is deleted at the end. Usage: parity_stage_mem.py GPTOSS_BIN WORK_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys

from harness import ENV, check, finish

BIN, WORK = sys.argv[1], sys.argv[2]
P, STAGES, IDS, NEW = 4, 2, "1,2,3,4,5,6,7,8", 2
T = 8 + NEW - 1
MiB = 1 << 20

shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
ck = os.path.join(WORK, "c20")
try:
    r = subprocess.run([BIN, "synth", ck, "--preset", "20b", "--layers", "4", "--vocab", "8192",
                        "--seed", "5", "-q"], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"synth: {r.returncode} {r.stderr}")
    r = subprocess.run([BIN, "plan", ck, "--ranks", str(P), "--stages", str(STAGES), "--tokens", "8",
                        "--max-seq", str(T), "--per-stage", "--json"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"plan --per-stage: {r.returncode} {r.stderr}")
    plan = {x["rank"]: x["per_stage"] for x in json.loads(r.stdout)["per_rank"]}
    p = subprocess.run(["mpirun", "-np", str(P), BIN, "parity", ck, "--per-stage", "--stages",
                        str(STAGES), "--prompt-ids", IDS, "--max-tokens", str(NEW), "--report",
                        os.path.join(WORK, "r.h5"), "-v"], env=ENV, capture_output=True, text=True,
                       timeout=900)
    out = p.stdout + p.stderr
    check(p.returncode == 0, f"parity --per-stage: exit {p.returncode}: {out[-800:]}")
    pat = re.compile(r"rank (\d+): forward peak RSS ([\d.]+) MiB .*?; (\d+) layer sub-models?: .*?"
                     r"peak RSS ([\d.]+) MiB \(plan ([\d.]+) MiB[,)]")
    seen = {}
    for m in pat.finditer(out):
        r_, fwd, n, ort, ort_plan = int(m.group(1)), float(m.group(2)), int(m.group(3)), \
            float(m.group(4)), float(m.group(5))
        seen[r_] = True
        pl = plan[r_]
        peak, want = max(fwd, ort), pl["peak_bytes"] / MiB
        print(f"rank {r_}: {n} layer(s); forward {fwd:.1f} MiB (plan {pl['forward_bytes'] / MiB:.1f}), "
              f"ONNX Runtime {ort:.1f} MiB (plan {pl['ort_bytes'] / MiB:.1f}); peak {peak:.1f} / "
              f"plan {want:.1f} = {peak / want:.3f}", flush=True)
        check(abs(ort_plan - pl["ort_bytes"] / MiB) < 0.1, f"rank {r_}: parity's plan {ort_plan} vs plan --json")
        check(peak <= 1.05 * want, f"rank {r_}: peak {peak:.1f} MiB above the plan's {want:.1f} MiB x 1.05")
        check(peak >= 0.8 * want, f"rank {r_}: peak {peak:.1f} MiB below 0.8 x the plan's {want:.1f} MiB")
        check(n == 1 and pl["layers"] == 1, f"rank {r_}: {n} layers (plan {pl['layers']}), expected 1")
        # one layer's weights at most: the sub-model's experts and dense tensors, not the stage's
        check(ort * MiB <= 1.05 * pl["ort_bytes"], f"rank {r_}: ONNX Runtime phase {ort:.1f} MiB")
    check(sorted(seen) == list(range(P)), f"per-rank lines for ranks {sorted(seen)}")
    # 4. the routed plan: from a trace of the same prompt, and as parity -v printed it
    tr = os.path.join(WORK, "t.h5")
    r = subprocess.run(["mpirun", "-np", str(P), BIN, "run", ck, "--stages", str(STAGES), "--prompt-ids", IDS,
                        "--max-tokens", str(NEW), "--trace", tr], env=ENV, capture_output=True, text=True,
                       timeout=600)
    check(r.returncode == 0, f"run --trace: {r.returncode} {r.stderr[-500:]}")
    r = subprocess.run([BIN, "plan", ck, "--ranks", str(P), "--stages", str(STAGES), "--tokens", "8",
                        "--max-seq", str(T), "--per-stage", "--json", "--routing", tr], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0 and not r.stderr, f"plan --routing: {r.returncode} {r.stderr}")
    routed = {x["rank"]: x["per_stage"] for x in json.loads(r.stdout)["per_rank"]} if r.returncode == 0 else {}
    rpat = re.compile(r"rank (\d+): forward peak RSS ([\d.]+) MiB \(plan [\d.]+ MiB, with this routing ([\d.]+) "
                      r"MiB\).*?; \d+ layer sub-models?: .*?peak RSS ([\d.]+) MiB \(plan [\d.]+ MiB, with this "
                      r"routing ([\d.]+) MiB\)")
    rseen = []
    for m in rpat.finditer(out):
        r_, fwd, rfwd, ort, rort = int(m.group(1)), *(float(m.group(i)) for i in range(2, 6))
        rseen.append(r_)
        rp = routed.get(r_)
        if not check(rp is not None, f"rank {r_}: not in plan --routing"):
            continue
        check(abs(rfwd - rp["forward_bytes"] / MiB) < 0.1 and abs(rort - rp["ort_bytes"] / MiB) < 0.1,
              f"rank {r_}: parity's routed plan {rfwd}/{rort} vs plan --routing "
              f"{rp['forward_bytes'] / MiB:.1f}/{rp['ort_bytes'] / MiB:.1f}")
        print(f"rank {r_}: with the prompt's routing: forward {fwd:.1f} MiB (plan {rfwd:.1f}: {fwd / rfwd:.3f}), "
              f"ONNX Runtime {ort:.1f} MiB (plan {rort:.1f}: {ort / rort:.3f})", flush=True)
        # the C forward reads exactly the selected experts' blocks (measured 0.95-1.03 of the
        # routed plan); the ONNX Runtime phase maps a freshly written data file, whose page-cache
        # folios vary from run to run (the same layer and routing: 617-669 MiB on rank 2, 0.97-1.08
        # of the routed plan over three runs; its model was fitted at 120b widths), hence wider bounds
        check(0.9 * rfwd <= fwd <= 1.05 * rfwd, f"rank {r_}: forward {fwd:.1f} MiB against the routed plan's {rfwd:.1f}")
        check(0.85 * rort <= ort <= 1.15 * rort, f"rank {r_}: ONNX Runtime {ort:.1f} MiB against the routed plan's {rort:.1f}")
    check(sorted(rseen) == list(range(P)), f"routed plan lines for ranks {sorted(rseen)}")
    worst = max(plan.values(), key=lambda x: x["peak_bytes"])
    r = subprocess.run([BIN, "plan", ck, "--ranks", str(P), "--stages", str(STAGES), "--tokens", "8",
                        "--max-seq", str(T), "--per-stage", "--mem-per-rank",
                        str(int(worst["peak_bytes"]) - 1)], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "per-stage parity" in r.stderr and "--mem-per-rank" in r.stderr,
          f"--mem-per-rank below the largest rank: exit {r.returncode}: {r.stderr[-300:]}")
    r = subprocess.run([BIN, "plan", ck, "--ranks", str(P), "--stages", str(STAGES), "--tokens", "8",
                        "--max-seq", str(T), "--per-stage", "--mem-per-rank",
                        str(int(worst["peak_bytes"]))], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"--mem-per-rank at the largest rank: exit {r.returncode}: {r.stderr[-300:]}")
finally:
    shutil.rmtree(WORK, ignore_errors=True)
sys.exit(finish("parity_stage_mem"))
