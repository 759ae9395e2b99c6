#!/usr/bin/python3
"""parity on trace files (no ONNX): golden fp32 vs our trace passes; golden bf16 vs our fp32 trace
fails with labelled margins; a trace corrupted in one layer fails at that layer; the report, the
summary and the chart are written whatever the verdict.
Usage: parity_files.py GPTOSS_BIN GOLDEN_DIR WORK_DIR"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

BIN, GOLDEN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CKPT = os.path.join(GOLDEN, "original")
GOLD = os.path.join(GOLDEN, "golden.h5")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
fails = 0
checks = 0


def check(cond, what):
    global fails, checks
    checks += 1
    if not cond:
        fails += 1
        print("FAIL:", what)


def run(*args, np_=1):
    p = subprocess.run(["mpirun", "-np", str(np_), BIN, *args], env=ENV, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
with h5py.File(GOLD, "r") as g:
    ids = ",".join(str(int(x)) for x in g["input_ids"][()])
ours = os.path.join(WORK, "ours.h5")
rc, out, err = run("run", CKPT, "--prompt-ids", ids, "--max-tokens", "1", "--trace", ours, "-q")
check(rc == 0, f"run --trace: rc {rc} {err}")

# 1. golden fp32 as reference, our trace as candidate: pass
rep = os.path.join(WORK, "pass.h5")
rc, out, err = run("parity", CKPT, "--reference", GOLD + ":/fp32", "--candidate", ours,
                   "--report", rep, "--summary", os.path.join(WORK, "pass.md"), np_=2)
check(rc == 0, f"golden fp32 vs ours: rc {rc}: {err}")
with h5py.File(rep, "r") as r:
    check(r.attrs["verdict"] == "pass", "verdict attribute pass")
    check(np.all(r["summary/set_match_rate"][()] == 1.0), "100 % expert sets")
    check(r["logits"].attrs["max_rel_diff"] < 2e-5, "logits within 2e-5")
    check(r.attrs["num_experts"] == 16 and r.attrs["threshold_max_weight_diff"] == 1e-4, "config/threshold attributes")
for f in ("pass.md", "pass.svg"):
    check(os.path.getsize(os.path.join(WORK, f)) > 200, f"{f} written")
check("# Routing parity: PASS" in open(os.path.join(WORK, "pass.md")).read(), "summary says PASS")

# 2. golden bf16 against our fp32 trace: mismatches labelled with their margins; the report is
#    written although the verdict is fail
rep = os.path.join(WORK, "bf16.h5")
rc, out, err = run("parity", CKPT, "--reference", ours, "--candidate", GOLD + ":/bf16",
                   "--report", rep, "--summary", os.path.join(WORK, "bf16.md"), "--tie-margin", "0.005")
check(rc == 3, f"bf16 vs fp32: exit 3 expected, got {rc}")
check(os.path.exists(rep) and os.path.exists(os.path.join(WORK, "bf16.md")), "report written on fail")
with h5py.File(rep, "r") as r:
    check(r.attrs["verdict"] == "fail", "verdict fail")
    lt = r["mismatches/layer_token"][()]
    mg = r["mismatches/reference_margin"][()]
    nt = r["mismatches/near_tie"][()]
    check(len(lt) >= 1, "bf16 run has expert-set mismatches")
    check(np.all(np.isfinite(mg)) and np.all(mg >= 0), "every mismatch carries its margin")
    check(np.array_equal(nt, (mg < 0.005).astype(np.uint8)), "near-tie label = margin below --tie-margin")
    # every reported margin against the k-th minus (k+1)-th router logit computed here from the
    # official fp32 run (the reference, our fp32 trace, agrees with it to ~1e-6)
    with h5py.File(GOLD, "r") as g:
        K = int(g["fp32/layers/0/topk_indices"].shape[1])
        want = []
        for (l, t) in lt:
            row = np.sort(g[f"fp32/layers/{int(l)}/router_logits"][int(t)].astype(np.float64))[::-1]
            want.append(row[K - 1] - row[K])
        want = np.array(want)
        worst = float(np.max(np.abs(want - mg))) if len(mg) else 0.0
        print(f"margins vs the official fp32 router logits: worst |diff| {worst:.3g} (tolerance 1e-5)")
        check(len(mg) == len(want) and worst <= 1e-5, f"reported margins = golden k-th minus (k+1)-th logit (worst {worst})")
        L = len(r["summary/margin_min"][()])
        gm = [min(np.sort(x)[::-1][K - 1] - np.sort(x)[::-1][K] for x in g[f"fp32/layers/{l}/router_logits"][()].astype(np.float64))
              for l in range(L)]
        worst = float(np.max(np.abs(np.array(gm) - r["summary/margin_min"][()])))
        check(worst <= 1e-5, f"per-layer smallest margin = golden's (worst {worst})")
    print("bf16 vs fp32 mismatches (layer, position, margin, near-tie):",
          [(int(a), int(b), round(float(m), 5), int(n)) for (a, b), m, n in zip(lt, mg, nt)])
md = open(os.path.join(WORK, "bf16.md")).read()
check("near-tie" in md and "# Routing parity: FAIL" in md, "summary labels near-ties")

# 3. a trace corrupted in layer 2 (one token routed elsewhere) fails, pointing at layer 2
bad = os.path.join(WORK, "bad.h5")
shutil.copy(ours, bad)
with h5py.File(bad, "r+") as b:
    ti = b["layers/2/topk_indices"][()]
    row = ti[5]
    free = [e for e in range(16) if e not in row]
    ti[5, 3] = free[0]
    b["layers/2/topk_indices"][...] = ti
rep = os.path.join(WORK, "bad.h5.report")
rc, out, err = run("parity", CKPT, "--reference", GOLD + ":/fp32", "--candidate", bad, "--report", rep)
check(rc == 3, f"corrupted trace: exit 3 expected, got {rc}")
with h5py.File(rep, "r") as r:
    check(int(r.attrs["first_bad_layer"]) == 2, f"first bad layer {r.attrs['first_bad_layer']} != 2")
    check(r["layers/2/set_match"][5] == 0 and r["layers/1/set_match"][()].all(), "mismatch at (2, 5) only")

# 4. usage and runtime errors
rc, out, err = run("parity", CKPT, "--candidate", ours)
check(rc == 2 and err.count("gptoss-mpi: error:") == 1, f"missing --report: exit 2 ({rc})")
rc, out, err = run("parity", CKPT, "--reference", "/nonexistent.h5", "--candidate", ours, "--report",
                   os.path.join(WORK, "x.h5"))
check(rc == 1 and not os.path.exists(os.path.join(WORK, "x.h5")), f"missing trace: exit 1, no report ({rc})")

print(f"parity_files: {checks - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
