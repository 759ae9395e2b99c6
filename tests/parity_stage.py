#!/usr/bin/python3
"""parity --per-stage (issue 6 item 5, issue 15 items 2 and 4): every layer exported as a one-layer
sub-model (`export --layers L:L+1`, hidden_in -> hidden_out; the last with the head) and run in
ONNX Runtime on the reference hidden state entering it, by one of its stage's ranks (round-robin
over the stage's ranks: `plan --per-stage`); rank 0 assembles one report.
  1. case-a, 3 ranks x 3 stages: per-stage passes and agrees with the whole-model mode (same
     expert-set and order match rates, same mismatches, top-1; errors within 1e-6, router
     logits within 4e-6 absolute); 4 ranks as 1 stage x 4 groups and as 2 stages x 2 groups:
     every layer on the rank the plan gives it (not only stage leaders), same agreement
  2. sub-models made by `export --layers L:L+1` (structure: hidden_in/hidden_out, global layer
     numbers in names, only their layers' tensors) pass through --onnx DIR; one with an altered
     router weight of layer 2 fails at layer 2, and the next layer still passes (it starts from
     the reference state)
  3. synth tiny with 5 layers, 2 ranks x 2 stages: per-stage passes and agrees with whole-model
  4. failures: an injected stage fault, a missing sub-model: exit 1, one error line, no report,
     no temporary directory left; --per-stage with --candidate: usage error
  5. --reference: a trace from `run --trace` gives the same report as the computed reference
     (without running the C forward pass); golden.h5:/fp32 passes; a trace of another
     checkpoint (5 layers), a prompt that does not start the trace: usage errors, no report
Usage: parity_stage.py GPTOSS_BIN GOLDEN_DIR WORK_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import onnx

from harness import ENV, check, finish

BIN, GOLDEN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CKPT = os.path.join(GOLDEN, "original")
ERR_TOL = 1e-6     # per-layer relative errors and weight differences: per-stage vs whole-model
ROUTER_TOL = 4e-6  # router-logit differences are absolute (logits up to ~10: a few float32 ulps)


def run(np_, *args, env=None):
    p = subprocess.run(["mpirun", "-np", str(np_), BIN, *args], env=env or ENV,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def parity(np_, ckpt, report, *extra, env=None):
    return run(np_, "parity", ckpt, "--prompt-ids", IDS, "--max-tokens", "3", "--report", report,
               *extra, env=env)


def stages(ckpt, ranks, n_stages):
    r = subprocess.run([BIN, "plan", ckpt, "--ranks", str(ranks), "--stages", str(n_stages),
                        "--json"], capture_output=True, text=True, timeout=60)
    pr = json.loads(r.stdout)["per_rank"]
    return sorted({(x["layer0"], x["layer0"] + x["n_layers"]) for x in pr})


def leftovers(d):
    return [f for f in os.listdir(d) if ".tmp." in f]


def agree(whole, stage, tag):
    """The two reports tell the same story."""
    with h5py.File(whole, "r") as w, h5py.File(stage, "r") as s:
        check(w.attrs["verdict"] == s.attrs["verdict"], f"{tag}: verdicts {w.attrs['verdict']} / {s.attrs['verdict']}")
        for m in ("set_match_rate", "order_match_rate", "n_mismatch", "n_near_tie"):
            check(np.array_equal(w["summary/" + m][()], s["summary/" + m][()]),
                  f"{tag}: {m} {w['summary/' + m][()]} vs {s['summary/' + m][()]}")
        check(("mismatches" in w) == ("mismatches" in s), f"{tag}: mismatch lists present in one only")
        if "mismatches" in w and "mismatches" in s:
            check(np.array_equal(w["mismatches/layer_token"][()], s["mismatches/layer_token"][()]),
                  f"{tag}: different mismatches")
        check(np.array_equal(w["logits/top1_match"][()], s["logits/top1_match"][()]), f"{tag}: top-1")
        worst = 0.0
        for m in ("weight_diff_max", "router_logit_diff_max", "hidden_after_attn_err_max",
                  "hidden_after_mlp_err_max"):
            d = np.abs(w["summary/" + m][()] - s["summary/" + m][()]).max()
            worst = max(worst, d) if not m.startswith("router") else worst
            tol = ROUTER_TOL if m.startswith("router") else ERR_TOL
            check(d <= tol, f"{tag}: {m} differs by {d:.3g} (tolerance {tol:g})")
        dl = abs(w["logits"].attrs["max_rel_diff"] - s["logits"].attrs["max_rel_diff"])
        check(dl <= ERR_TOL, f"{tag}: logits max_rel_diff differs by {dl:.3g}")
        print(f"{tag}: per-stage vs whole-model: same match rates and mismatches; worst per-layer "
              f"error difference {worst:.3g}, logits {dl:.3g} (tolerance {ERR_TOL:g})", flush=True)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
with h5py.File(os.path.join(GOLDEN, "golden.h5"), "r") as g:
    IDS = ",".join(str(int(x)) for x in g["input_ids"][()])

# 1. case-a: per-stage on 3 ranks x 3 stages against the whole-model mode
whole = os.path.join(WORK, "whole")
rc, out, err = run(2, "export", CKPT, "--output", whole, "--expose", "routing,hidden", "-q")
check(rc == 0, f"export: {rc} {err}")
rep_w, rep_s = os.path.join(WORK, "whole.h5"), os.path.join(WORK, "stage.h5")
rc, out, err = parity(3, CKPT, rep_w, "--onnx", whole, "--stages", "3")
check(rc == 0, f"whole-model parity: exit {rc}: {err[-600:]}")
rc, out, err = parity(3, CKPT, rep_s, "--per-stage", "--stages", "3", "-v",
                      "--summary", os.path.join(WORK, "stage.md"))
check(rc == 0, f"per-stage parity: exit {rc}: {err[-600:]}")
check("per-stage: 3 stages" in out + err, "3 stages announced")
check(not leftovers(WORK), f"temporary sub-models left: {leftovers(WORK)}")
if os.path.exists(rep_w) and os.path.exists(rep_s):
    agree(rep_w, rep_s, "case-a 3 stages")
    with h5py.File(rep_s, "r") as r:
        check(np.all(r["summary/set_match_rate"][()] == 1.0), "100 % expert sets")
        check("sub-model" in r.attrs["candidate"], f"candidate: {r.attrs['candidate']}")

def layer_ranks(out):
    return {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"layer (\d+) on rank (\d+)", out)}


for n_st in (1, 2):
    rep = os.path.join(WORK, f"spread{n_st}.h5")
    rc, out, err = parity(4, CKPT, rep, "--per-stage", "--stages", str(n_st), "-v")
    check(rc == 0, f"4 ranks, {n_st} stages: exit {rc}: {err[-600:]}")
    r = subprocess.run([BIN, "plan", CKPT, "--ranks", "4", "--stages", str(n_st), "--tokens", "24",
                        "--max-seq", "26", "--per-stage", "--json"], capture_output=True, text=True,
                       timeout=60)
    pr = json.loads(r.stdout)["per_rank"]
    want = {}  # round-robin over the stage's ranks, as the plan says
    G = json.loads(r.stdout)["expert_groups"]
    for x in pr:
        if x["group"] == 0:
            for i in range(x["n_layers"]):
                want[x["layer0"] + i] = x["rank"] + i % G
    got = layer_ranks(out + err)
    check(got == want, f"4 ranks, {n_st} stages: layers on ranks {got}, plan {want}")
    units = {x["rank"]: x["per_stage"]["layers"] for x in pr}
    check(all(units[k] == list(want.values()).count(k) for k in units),
          f"plan --per-stage layer counts {units} vs {want}")
    check(len(set(got.values())) == 4, f"{n_st} stages: 4 layers spread over ranks {sorted(set(got.values()))}")
    if os.path.exists(rep):
        agree(rep_w, rep, f"case-a 4 ranks {n_st} stages")

# 2. sub-models from `export --layers L:L+1`, given with --onnx DIR; one altered
subs = os.path.join(WORK, "subs")
os.makedirs(subs)
split = [(a, a + 1) for a in range(4)]
for a, b in split:
    d = os.path.join(subs, f"layers-{a}-{b}")
    rc, out, err = run(2 if b - a > 1 else 1, "export", CKPT, "--output", d, "--layers", f"{a}:{b}",
                       "--expose", "routing,hidden", "-q")
    check(rc == 0, f"export --layers {a}:{b}: {rc} {err}")
    m = onnx.load(os.path.join(d, "onnx", "model.onnx"), load_external_data=False)
    ins = [i.name for i in m.graph.input]
    outs = {o.name for o in m.graph.output}
    inits = {t.name for t in m.graph.initializer}
    check(ins == ["hidden_in"], f"{a}:{b}: inputs {ins}")
    check(sorted(os.listdir(d)) == ["onnx"], f"{a}:{b}: a sub-model is no client model: {os.listdir(d)}")
    want = {"hidden_out"} | {f"routing.{n}.{k}" for n in range(a, b)
                             for k in ("topk_indices", "topk_weights", "router_logits")} \
        | {f"hidden.{n}.after_{k}" for n in range(a, b) for k in ("attn", "mlp")}
    want |= {"logits"} if b == 4 else set()
    check(outs == want, f"{a}:{b}: outputs {sorted(outs ^ want)} differ")
    layers = {int(t.split(".")[1]) for t in inits if t.startswith("block.")}
    check(layers == set(range(a, b)), f"{a}:{b}: tensors of layers {sorted(layers)}")
    check("embedding.weight" not in inits, f"{a}:{b}: has the embedding")
    check(("unembedding.weight" in inits) == (b == 4), f"{a}:{b}: unembedding only in the last")
rc, out, err = run(3, "export", CKPT, "--output", os.path.join(WORK, "bad-layers"), "--layers", "3:9")
check(rc == 2 and "3:9" in err, f"--layers 3:9 on 4 layers: exit {rc}: {err[-200:]}")
rep = os.path.join(WORK, "subs.h5")
rc, out, err = parity(3, CKPT, rep, "--per-stage", "--stages", "3", "--onnx", subs)
check(rc == 0, f"per-stage --onnx DIR: exit {rc}: {err[-600:]}")
if os.path.exists(rep):
    agree(rep_w, rep, "case-a --onnx DIR")
bad = os.path.join(WORK, "subs-bad")
shutil.copytree(subs, bad)
mid = next(os.path.join(bad, f"layers-{a}-{b}") for a, b in split if a <= 2 < b)
m = onnx.load(os.path.join(mid, "onnx", "model.onnx"), load_external_data=False)
t = next(t for t in m.graph.initializer if t.name == "block.2.mlp.gate.weight")
kv = {x.key: x.value for x in t.external_data}
with open(os.path.join(mid, "onnx", kv["location"]), "r+b") as f:
    f.seek(int(kv.get("offset", 0)))
    data = bytearray(f.read(int(kv["length"])))
    for i in range(1, len(data), 4):  # negate every other bf16 value
        data[i] ^= 0x80
    f.seek(int(kv.get("offset", 0)))
    f.write(data)
rep = os.path.join(WORK, "bad.h5")
rc, out, err = parity(3, CKPT, rep, "--per-stage", "--stages", "3", "--onnx", bad)
check(rc == 3, f"altered layer 2: exit 3 expected, got {rc}: {err[-400:]}")
if os.path.exists(rep):
    with h5py.File(rep, "r") as r:
        check(int(r.attrs["first_bad_layer"]) == 2, f"first bad layer {r.attrs['first_bad_layer']}")
        sm = r["summary/set_match_rate"][()]
        check(sm[3] == 1.0 and sm[0] == 1.0 and sm[2] < 1.0,
              f"only layer 2 mismatches (later stages start from the reference): {sm}")
        print(f"altered layer 2: first bad layer {r.attrs['first_bad_layer']}, set match {sm}",
              flush=True)
else:
    check(False, "no report for the altered model")

# 3. synth tiny, 5 layers, 2 stages
syn = os.path.join(WORK, "synth5")
rc, out, err = run(1, "synth", syn, "--preset", "tiny", "--layers", "5", "--seed", "7", "-q")
check(rc == 0, f"synth: {rc} {err}")
print("synth stages:", stages(syn, 2, 2), flush=True)
sw = os.path.join(WORK, "synth-whole")
rc, out, err = run(1, "export", syn, "--output", sw, "--expose", "routing,hidden", "-q")
check(rc == 0, f"synth export: {rc} {err}")
r_w, r_s = os.path.join(WORK, "synth-whole.h5"), os.path.join(WORK, "synth-stage.h5")
rc, out, err = parity(2, syn, r_w, "--onnx", os.path.join(sw, "onnx", "model.onnx"), "--stages", "2")
check(rc == 0, f"synth whole-model: exit {rc}: {err[-600:]}")
rc, out, err = parity(2, syn, r_s, "--per-stage", "--stages", "2")
check(rc == 0, f"synth per-stage: exit {rc}: {err[-600:]}")
if os.path.exists(r_w) and os.path.exists(r_s):
    agree(r_w, r_s, "synth L=5 2 stages")

# 4. failures: one error line, exit 1, no report, no temporary directory
for tag, extra, env, msg in (
        ("stage fault on rank 1", ["--stages", "3"], dict(ENV, GPTOSS_FAULT="1:stage"), "injected fault"),
        ("missing sub-model", ["--stages", "3", "--onnx", os.path.join(WORK, "none")], None, "no sub-model")):
    rep = os.path.join(WORK, "failed.h5")
    rc, out, err = parity(3, CKPT, rep, "--per-stage", *extra, env=env)
    lines = [l for l in err.splitlines() if l.startswith("gptoss-mpi: error")]
    check(rc == 1 and len(lines) == 1 and msg in err, f"{tag}: exit {rc}, errors {lines}")
    check(not os.path.exists(rep), f"{tag}: report written")
    check(not leftovers(WORK), f"{tag}: left {leftovers(WORK)}")
rc, out, err = parity(3, CKPT, os.path.join(WORK, "u.h5"), "--per-stage", "--candidate", rep_w)
check(rc == 2, f"--per-stage with --candidate: exit {rc}")

# 5. --reference: a reused trace
tr = os.path.join(WORK, "ref.h5")
rc, out, err = run(3, "run", CKPT, "--prompt-ids", IDS, "--max-tokens", "3", "--stages", "3",
                   "--trace", tr, "-q")
check(rc == 0, f"run --trace: {rc} {err[-400:]}")
rep = os.path.join(WORK, "reused.h5")
rc, out, err = run(3, "parity", CKPT, "--per-stage", "--stages", "3", "--reference", tr,
                   "--report", rep, "-v")
check(rc == 0, f"--per-stage --reference: exit {rc}: {err[-600:]}")
check("== load" not in out + err and "== prefill" not in out + err,
      "--reference: the C forward pass ran anyway")
if os.path.exists(rep):
    with h5py.File(rep_s, "r") as a, h5py.File(rep, "r") as b:
        for m in ("set_match_rate", "order_match_rate", "n_mismatch", "weight_diff_max",
                  "router_logit_diff_max", "hidden_after_attn_err_max", "hidden_after_mlp_err_max"):
            check(np.array_equal(a["summary/" + m][()], b["summary/" + m][()]),
                  f"--reference: {m} differs from the computed reference's report")
        check(a["logits"].attrs["max_rel_diff"] == b["logits"].attrs["max_rel_diff"],
              "--reference: logits differ")
        print("--per-stage --reference (run --trace): the same report as the computed reference",
              flush=True)
rep = os.path.join(WORK, "golden-ref.h5")
rc, out, err = run(2, "parity", CKPT, "--per-stage", "--reference",
                   os.path.join(GOLDEN, "golden.h5") + ":/fp32", "--report", rep)
check(rc == 0 and os.path.exists(rep), f"--per-stage --reference golden.h5:/fp32: exit {rc}: {err[-600:]}")
syn_tr = os.path.join(WORK, "synth5.h5")
rc, out, err = run(1, "run", syn, "--prompt-ids", IDS, "--max-tokens", "1", "--trace", syn_tr, "-q")
check(rc == 0, f"synth run --trace: {rc} {err[-300:]}")
no_emb = os.path.join(WORK, "no-embedding.h5")
shutil.copyfile(tr, no_emb)
with h5py.File(no_emb, "r+") as f:
    del f["embedding_out"]
for tag, ref, extra, msg in (
        ("a trace of 5 layers", syn_tr, [], "5 layers, but the checkpoint"),
        ("a trace without embedding_out", no_emb, [], f"--reference {no_emb}: the trace has no embedding_out"),
        ("another prompt", tr, ["--prompt-ids", "1,2,3"], "is not the start of the reference"),
        ("--max-layers", tr, ["--max-layers", "2"], "takes no --max-layers"),
        ("a text prompt", tr, ["--prompt", "Hello"], "takes no --max-layers, --prompt")):
    rep = os.path.join(WORK, "refused.h5")
    rc, out, err = run(2, "parity", CKPT, "--per-stage", "--reference", ref, "--report", rep, *extra)
    lines = [l for l in err.splitlines() if l.startswith("gptoss-mpi: error")]
    check(rc == 2 and len(lines) == 1 and msg in err, f"{tag}: exit {rc}, {err[-300:]}")
    check(not os.path.exists(rep), f"{tag}: report written")

sys.exit(finish("parity_stage"))
