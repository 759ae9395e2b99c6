#!/usr/bin/python3
"""The decoder's optional `num_logits_to_keep` input on both targets (docs/export.md "The graph"):
golden/case-a exported as the standard and the ort target; ort_logits_keep (the C API: an
overridable initializer is not in the session's input list, so onnxruntime-node cannot feed it)
checks a prefill of 7 positions, batch 2: not fed, 0, T + 5 and -1 = every position's logits;
1 and 3 = the last rows of those logits, bit for bit; the cache the same whatever k.
The graph: with --logits-to-keep the input is int64 [] with an int64 [] initializer 0 of the same
name and the logits' second dimension is logits_sequence_length; without it (the default) there is
no such input or initializer and the second dimension is sequence_length.

usage: export_logits_keep.py GPTOSS_BIN ORT_LOGITS_KEEP WORKDIR
"""
import os
import shutil
import subprocess
import sys

import onnx
from onnx import numpy_helper

from harness import ENV, check, finish

BIN, TOOL, WORK = sys.argv[1:4]
GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(__file__), "golden", "case-a"))
CKPT = os.path.join(GOLDEN, "original")

shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
for target in ("standard", "ort"):
    out = os.path.join(WORK, target)
    plain = out + "-default"
    r = subprocess.run(["mpirun", "-np", "1", BIN, "export", CKPT, "--output", plain, "--target",
                        target, "-q"], env=ENV, capture_output=True, text=True, timeout=300)
    if check(r.returncode == 0, f"export --target {target}: exit {r.returncode}: {r.stderr.strip()}"):
        g = onnx.load(os.path.join(plain, "onnx", "model.onnx"), load_external_data=False).graph
        check("num_logits_to_keep" not in [i.name for i in g.input]
              and "num_logits_to_keep" not in [t.name for t in g.initializer],
              f"{target}: num_logits_to_keep present without --logits-to-keep")
        lg = [o for o in g.output if o.name == "logits"]
        check(lg and [d.dim_param or d.dim_value for d in lg[0].type.tensor_type.shape.dim][:2]
              == ["batch_size", "sequence_length"], f"{target}: default logits dims")
    r = subprocess.run(["mpirun", "-np", "1", BIN, "export", CKPT, "--output", out, "--target",
                        target, "--logits-to-keep", "-q"], env=ENV, capture_output=True, text=True,
                       timeout=300)
    if not check(r.returncode == 0, f"export --target {target}: exit {r.returncode}: {r.stderr.strip()}"):
        continue
    model = os.path.join(out, "onnx", "model.onnx")
    g = onnx.load(model, load_external_data=False).graph
    ins = {i.name: i for i in g.input}
    inits = {t.name: t for t in g.initializer}
    k = ins.get("num_logits_to_keep")
    check(k is not None and k.type.tensor_type.elem_type == onnx.TensorProto.INT64
          and len(k.type.tensor_type.shape.dim) == 0, f"{target}: num_logits_to_keep input {k}")
    t = inits.get("num_logits_to_keep")
    check(t is not None and t.data_type == onnx.TensorProto.INT64 and list(t.dims) == []
          and numpy_helper.to_array(t).item() == 0, f"{target}: num_logits_to_keep default {t}")
    lg = [o for o in g.output if o.name == "logits"]
    check(lg and [d.dim_param or d.dim_value for d in lg[0].type.tensor_type.shape.dim][:2]
          == ["batch_size", "logits_sequence_length"], f"{target}: logits dims")
    r = subprocess.run([TOOL, "check", model, "7"], capture_output=True, text=True, timeout=300)
    print(f"{target}:\n{r.stdout.strip()}", flush=True)
    check(r.returncode == 0, f"{target}: ort_logits_keep check: exit {r.returncode} {r.stderr.strip()}")
shutil.rmtree(WORK, ignore_errors=True)
sys.exit(finish("export_logits_keep"))
