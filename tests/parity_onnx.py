#!/usr/bin/python3
"""parity against exported ONNX models, checked by ONNX Runtime (issues 6 and 11):
case-a exported on 2 ranks passes against the C forward pass on 3 ranks (100 % expert sets),
driven as a client drives it (a prefill of the prompt, then one decode step per generated token
through the KV cache; the report says which call computed each position); an export whose bytes
of one layer's router weight, or of one expert's MXFP4 blocks, were altered in the data file fails
with exit 3 and the report points at that layer; graphs with deliberate cache bugs (made here by
editing an exported graph with Debian's python3-onnx) pass the prefill and fail at the first
decode step and layer they affect: RoPE positions that ignore the cache, one layer's cache stored
before RoPE, a sliding window one key too wide, the sink row stored in one layer's cache; a model
without the routing outputs, and a model that is not a decoder, are refused with advice.
Usage: parity_onnx.py GPTOSS_BIN GOLDEN_DIR WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness import ENV, check, finish

BIN, GOLDEN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CKPT = os.path.join(GOLDEN, "original")


def run(np_, *args):
    p = subprocess.run(["mpirun", "-np", str(np_), BIN, *args], env=ENV, capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def external(model_dir, name):
    """(file, offset, length) of an initializer's external data."""
    m = onnx.load(os.path.join(model_dir, "onnx", "model.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        if t.name == name:
            kv = {e.key: e.value for e in t.external_data}
            return os.path.join(model_dir, "onnx", kv["location"]), int(kv.get("offset", 0)), int(kv["length"])
    raise KeyError(name)


def parity(model_dir, report, *extra, ids=None, max_tokens="3"):
    return run(3, "parity", CKPT, "--onnx", model_dir, "--prompt-ids", ids or IDS,
               "--max-tokens", max_tokens, "--report", report, *extra)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
with h5py.File(os.path.join(GOLDEN, "golden.h5"), "r") as g:
    IDS = ",".join(str(int(x)) for x in g["input_ids"][()])

good = os.path.join(WORK, "onnx")
rc, out, err = run(2, "export", CKPT, "--output", good, "--expose", "routing,hidden", "-q")
check(rc == 0, f"export: {rc} {err}")

# 1. the faithful export passes, 100 % expert sets
rep = os.path.join(WORK, "good.h5")
n_ids = len(IDS.split(","))
rc, out, err = parity(good, rep, "--summary", os.path.join(WORK, "good.md"), max_tokens="13")
check(rc == 0, f"faithful export: exit {rc}: {err[-800:]}")
with h5py.File(rep, "r") as r:
    check(r.attrs["verdict"] == "pass", "verdict pass")
    check(np.all(r["summary/set_match_rate"][()] == 1.0), "100 % expert sets")
    check(r["logits"].attrs["max_rel_diff"] < 2e-5, f"logits rel {r['logits'].attrs['max_rel_diff']}")
    check("ONNX Runtime" in r.attrs["candidate"], "candidate names ONNX Runtime")
    calls = r["positions/call"][()]
    check(list(calls) == [0] * n_ids + list(range(1, 13)), f"calls per position {list(calls)}")
    check(np.all(r["positions/compared"][()] == 1), "every position compared")
    check(int(r.attrs["first_bad_position"]) == -1, "no failing position")
    print("faithful: logits rel", r["logits"].attrs["max_rel_diff"], "hidden after mlp max",
          r["summary/hidden_after_mlp_err_max"][()].max(), f"over a prefill of {n_ids} and 12 decode steps")
summary = open(os.path.join(WORK, "good.md")).read()
check("prefill of positions 0-23, then 12 decode steps" in summary, "summary names the calls")


def corrupted(tensor, mutate, expect_layer):
    bad = os.path.join(WORK, "bad-" + tensor)
    shutil.copytree(good, bad)
    path, off, n = external(bad, tensor)
    with open(path, "r+b") as f:
        f.seek(off)
        data = bytearray(f.read(n))
        mutate(data)
        f.seek(off)
        f.write(data)
    rep = os.path.join(WORK, tensor + ".h5")
    rc, out, err = parity(bad, rep, "--summary", os.path.join(WORK, tensor + ".md"))
    check(rc == 3, f"{tensor}: exit 3 expected, got {rc}: {err[-500:]}")
    check(os.path.exists(rep), f"{tensor}: report written although the verdict is fail")
    if os.path.exists(rep):
        with h5py.File(rep, "r") as r:
            check(r.attrs["verdict"] == "fail", f"{tensor}: verdict fail")
            check(int(r.attrs["first_bad_layer"]) == expect_layer,
                  f"{tensor}: report points at layer {r.attrs['first_bad_layer']}, expected {expect_layer}")
            print(f"{tensor}: first bad layer {r.attrs['first_bad_layer']}: {r.attrs['reasons'][:160]}")


def flip_router(d):  # bf16 router weights: negate every other value (sign bit of the high byte)
    for i in range(1, len(d), 4):
        d[i] ^= 0x80


def scramble_blocks(d):  # one expert's MXFP4 blocks (expert 5 of 16): rotate every nibble
    per = len(d) // 16
    for i in range(5 * per, 6 * per):
        d[i] = ((d[i] << 4) | (d[i] >> 4)) & 0xFF ^ 0x11


corrupted("block.2.mlp.gate.weight", flip_router, 2)
corrupted("block.1.mlp.mlp1_weight.blocks", scramble_blocks, 1)

# 2b. cache bugs, made by editing the exported graph: each passes the prefill and fails at the
# first decode step and layer it affects


def node(g, name):
    return next(n for n in g.node if n.name == name)


def const_i64(g, name, value, dims=()):
    g.initializer.append(numpy_helper.from_array(np.array(value, np.int64).reshape(dims), name))


def insert_before(g, target, nodes):
    i = list(g.node).index(target)
    for k, n in enumerate(nodes):
        g.node.insert(i + k, n)


def rope_ignores_cache(g):
    """RoPE positions = position_ids - past length: right in the prefill, 0 in every step."""
    w = node(g, "/positions/Where")
    w.input[1] = "bug/positions"
    const_i64(g, "bug/two", 2)
    insert_before(g, w, [
        helper.make_node("Shape", ["past_key_values.0.key"], ["bug/past_shape"], name="bug/Shape"),
        helper.make_node("Gather", ["bug/past_shape", "bug/two"], ["bug/past_len"], name="bug/Gather", axis=0),
        helper.make_node("Sub", ["position_ids", "bug/past_len"], ["bug/positions"], name="bug/Sub")])


def cache_before_rope(g, layer=1):
    """Layer 1 stores its keys before RoPE in the cache (its own call still uses rotated ones)."""
    cat = node(g, f"/block.{layer}/attn/cache/Concat_key")
    cat.output[0] = "bug/k_used"
    node(g, f"/block.{layer}/attn/sinks/Concat_k").input[0] = "bug/k_used"
    kv, dh = CFG["num_key_value_heads"], CFG["head_dim"]
    const_i64(g, "bug/shape4", [0, 0, kv, dh], (4,))
    insert_before(g, cat, [
        helper.make_node("Reshape", [f"/block.{layer}/attn/qkv/Reshape_k_output_0", "bug/shape4"],
                         ["bug/k4"], name="bug/Reshape"),
        helper.make_node("Transpose", ["bug/k4"], ["bug/k_raw"], name="bug/Transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Concat", [f"past_key_values.{layer}.key", "bug/k_raw"], [f"present.{layer}.key"],
                         name="bug/Concat", axis=2)])


def window_one_wider(g):
    """The sliding layers see W + 1 keys."""
    n = node(g, "/mask/in_window")
    const_i64(g, "bug/window", CFG["sliding_window"] + 1)
    n.input[1] = "bug/window"


def sink_in_cache(g, layer=2):
    """Layer 2 appends the sink row to its cache and attends to the cache as it is."""
    for kv, short in (("key", "k"), ("value", "v")):
        node(g, f"/block.{layer}/attn/cache/Concat_{kv}").input.append("/sinks/zero_row_output_0")
        s = node(g, f"/block.{layer}/attn/sinks/Concat_{short}")
        del s.input[1:]


def cache_bug(tag, mutate, ids, max_tokens, want_pos, want_call, want_layer, want_reason=None):
    bad = os.path.join(WORK, "bug-" + tag)
    shutil.copytree(good, bad)
    path = os.path.join(bad, "onnx", "model.onnx")
    m = onnx.load(path, load_external_data=False)
    mutate(m.graph)
    onnx.save(m, path)
    rep = os.path.join(WORK, tag + ".h5")
    rc, out, err = parity(bad, rep, "--summary", os.path.join(WORK, tag + ".md"), ids=ids,
                          max_tokens=max_tokens)
    check(rc == 3, f"{tag}: exit 3 expected, got {rc}: {err[-500:]}")
    if not os.path.exists(rep):
        check(False, f"{tag}: no report")
        return
    with h5py.File(rep, "r") as r:
        got = (int(r.attrs["first_bad_position"]), r.attrs["first_bad_call"],
               int(r.attrs["first_bad_position_layer"]))
        check(got == (want_pos, want_call, want_layer),
              f"{tag}: first failure {got}, expected {(want_pos, want_call, want_layer)}: {r.attrs['reasons'][:300]}")
        n_prompt = len(ids.split(","))
        calls = r["positions/call"][()]
        check(np.all(calls[:n_prompt] == 0), f"{tag}: prompt positions not from the prefill: {calls}")
        if want_reason:
            check(want_reason in r.attrs["reasons"], f"{tag}: reasons lack '{want_reason}': {r.attrs['reasons']}")
        md = open(os.path.join(WORK, tag + ".md")).read()
        check(f"position {want_pos} ({want_call}), layer {want_layer}" in md, f"{tag}: summary lacks the first failure")
        print(f"{tag}: first failure at position {got[0]} ({got[1]}), layer {got[2]}: {r.attrs['reasons'][:150]}")


CFG = json.load(open(os.path.join(CKPT, "config.json")))
short = ",".join(IDS.split(",")[:6])  # shorter than the window (8): steps cross it
cache_bug("rope-ignores-cache", rope_ignores_cache, IDS, "4", n_ids, "decode step 1", 0)
cache_bug("layer1-cache-before-rope", cache_before_rope, IDS, "4", n_ids, "decode step 1", 1)
cache_bug("window-one-wider", window_one_wider, short, "12", CFG["sliding_window"],
          f"decode step {CFG['sliding_window'] - 6 + 1}", 0)
cache_bug("layer2-sink-in-cache", sink_in_cache, IDS, "4", n_ids, "decode step 1", 2,
          "present.2.key [1, 2, 25, 16] holds 25 positions after 24")

# 3. a model without routing outputs: refused, with the re-export advice, exit 1, no report
plain = os.path.join(WORK, "plain")
rc, out, err = run(1, "export", CKPT, "--output", plain, "-q")
check(rc == 0, f"plain export: {rc}")
rep = os.path.join(WORK, "plain.h5")
rc, out, err = parity(plain, rep)
check(rc == 1 and "--expose routing,hidden" in err, f"plain model: exit {rc}, message: {err[-300:]}")
check(not os.path.exists(rep), "no report for a refused model")

# 3b. against the official reference file: the given prompt is the prefill (it must start the
# reference's ids), the rest decode steps; --prefill overrides; misuse is a usage error
gold = os.path.join(GOLDEN, "golden.h5") + ":/fp32"
first5 = ",".join(IDS.split(",")[:5])
rep = os.path.join(WORK, "golden.h5")
rc, out, err = run(1, "parity", CKPT, "--onnx", good, "--reference", gold, "--prompt-ids", first5,
                   "--report", rep)
check(rc == 0 and "prefill of 5 positions, then 19 decode steps" in err, f"golden reference: exit {rc}: {err[-400:]}")
if os.path.exists(rep):
    with h5py.File(rep, "r") as r:
        check(list(r["positions/call"][()]) == [0] * 5 + list(range(1, 20)), "golden: calls")
        print("official reference, prefill 5 then 19 decode steps: logits rel", r["logits"].attrs["max_rel_diff"])
rc, out, err = run(1, "parity", CKPT, "--onnx", good, "--reference", gold, "--prefill", "1", "--report", rep)
check(rc == 0 and "prefill of 1 position, then 23 decode steps" in err, f"--prefill 1: exit {rc}: {err[-300:]}")
for args, msg in ((["--reference", gold, "--prompt-ids", "1,2,3"], "not the start of the reference"),
                  (["--reference", gold, "--prefill", "25"], "--prefill 25: the reference has 24"),
                  (["--candidate", gold, "--prefill", "2"], "--prefill is for --onnx")):
    a = ["--onnx", good] + args if "--candidate" not in args else args
    rc, out, err = run(1, "parity", CKPT, *a, "--report", os.path.join(WORK, "u.h5"))
    check(rc == 2 and msg in err, f"{args}: exit {rc}: {err[-300:]}")

# 4. not a decoder (a prefill-only sub-model): refused, naming its input
sub = os.path.join(WORK, "sub")
rc, out, err = run(1, "export", CKPT, "--output", sub, "--layers", "0:4", "--expose", "routing,hidden", "-q")
check(rc == 0, f"sub-model export: {rc} {err}")
rep = os.path.join(WORK, "sub.h5")
rc, out, err = parity(sub, rep)
check(rc == 1 and "input 'hidden_in'" in err and "not one a decoder client feeds" in err,
      f"sub-model as --onnx: exit {rc}: {err[-300:]}")
check(not os.path.exists(rep), "no report for a refused model")

sys.exit(finish("parity_onnx"))
