#!/usr/bin/python3
"""parity against exported ONNX models, checked by ONNX Runtime (issue 6, item 7):
case-a exported on 2 ranks passes against the C forward pass on 3 ranks (100 % expert sets);
an export whose bytes of one layer's router weight, or of one expert's MXFP4 blocks, were altered
in the data file fails with exit 3 and the report points at that layer; a model without the
routing outputs is refused with the re-export advice.
Usage: parity_onnx.py GPTOSS_BIN GOLDEN_DIR WORK_DIR"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import onnx

BIN, GOLDEN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CKPT = os.path.join(GOLDEN, "original")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
fails = checks = 0


def check(cond, what):
    global fails, checks
    checks += 1
    if not cond:
        fails += 1
        print("FAIL:", what)


def run(np_, *args):
    p = subprocess.run(["mpirun", "-np", str(np_), BIN, *args], env=ENV, capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def external(model_dir, name):
    """(file, offset, length) of an initializer's external data."""
    m = onnx.load(os.path.join(model_dir, "model.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        if t.name == name:
            kv = {e.key: e.value for e in t.external_data}
            return os.path.join(model_dir, kv["location"]), int(kv.get("offset", 0)), int(kv["length"])
    raise KeyError(name)


def parity(model_dir, report, *extra):
    return run(3, "parity", CKPT, "--onnx", os.path.join(model_dir, "model.onnx"), "--prompt-ids",
               IDS, "--max-tokens", "3", "--report", report, *extra)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
with h5py.File(os.path.join(GOLDEN, "golden.h5"), "r") as g:
    IDS = ",".join(str(int(x)) for x in g["input_ids"][()])

good = os.path.join(WORK, "onnx")
rc, out, err = run(2, "export", CKPT, "--output", good, "--expose", "routing,hidden", "-q")
check(rc == 0, f"export: {rc} {err}")

# 1. the faithful export passes, 100 % expert sets
rep = os.path.join(WORK, "good.h5")
rc, out, err = parity(good, rep, "--summary", os.path.join(WORK, "good.md"))
check(rc == 0, f"faithful export: exit {rc}: {err[-800:]}")
with h5py.File(rep, "r") as r:
    check(r.attrs["verdict"] == "pass", "verdict pass")
    check(np.all(r["summary/set_match_rate"][()] == 1.0), "100 % expert sets")
    check(r["logits"].attrs["max_rel_diff"] < 2e-5, f"logits rel {r['logits'].attrs['max_rel_diff']}")
    check("ONNX Runtime" in r.attrs["candidate"], "candidate names ONNX Runtime")
    print("faithful: logits rel", r["logits"].attrs["max_rel_diff"], "hidden after mlp max",
          r["summary/hidden_after_mlp_err_max"][()].max())


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

# 3. a model without routing outputs: refused, with the re-export advice, exit 1, no report
plain = os.path.join(WORK, "plain")
rc, out, err = run(1, "export", CKPT, "--output", plain, "-q")
check(rc == 0, f"plain export: {rc}")
rep = os.path.join(WORK, "plain.h5")
rc, out, err = parity(plain, rep)
check(rc == 1 and "--expose routing,hidden" in err, f"plain model: exit {rc}, message: {err[-300:]}")
check(not os.path.exists(rep), "no report for a refused model")

print(f"parity_onnx: {checks - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
