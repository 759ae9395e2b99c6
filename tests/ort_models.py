#!/usr/bin/python3
"""Tiny ONNX models for tests/test_ort.c (run with /usr/bin/python3: Debian's onnx 1.12).

ort_models.py OUT_DIR writes:
  tiny.onnx        input_ids int64 [batch, sequence] -> Cast(int32) -> Gather(table [R, D])
                   = hidden float [batch, sequence, D] -> MatMul(W [D, V]) = logits float
                   [batch, sequence, V] -> ArgMax(axis -1) = next_id int64 [batch, sequence].
                   W = Mul(W_half, 2) in a node named 'fold_me' (both constant: ORT's constant
                   folding removes it from level 1 (basic) on, which the test observes).
  tiny_ext.onnx    the same graph with every initializer in tiny_ext.bin (external data)
  two_inputs.onnx  input_ids + a second input (ort_run_ids must refuse it)
  cache.onnx       past float [batch, 2, past, 3] and new int64 [batch, 2, sequence, 3] ->
                   present = Concat(past, Cast(new, float), axis 2) [batch, 2, total, 3]:
                   ort_run with several inputs of two types and an empty (past = 0) tensor
  garbage.onnx     bytes that are not a protobuf ModelProto
Values are multiples of 1/8 and 1/4 so every product and sum is exact in fp32: the C test
recomputes them with the same formulas (table_val, w_val) and compares exactly.
IR 10, ai.onnx opset 23 (the export's stamp; docs/toolchain.md 1.4).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

R, D, V = 13, 4, 11


def table_val(r, d):
    return ((r * 7 + d * 3) % 17 - 8) / 8.0


def w_val(d, v):
    return ((d * 5 + v * 11) % 13 - 6) / 4.0


def graph(two_inputs=False):
    table = np.array([[table_val(r, d) for d in range(D)] for r in range(R)], np.float32)
    w_half = np.array([[w_val(d, v) / 2 for v in range(V)] for d in range(D)], np.float32)
    inits = [numpy_helper.from_array(table, "embed.table"),
             numpy_helper.from_array(w_half, "head.w_half"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids32"], name="/embed/Cast", to=TensorProto.INT32),
        helper.make_node("Gather", ["embed.table", "ids32"], ["hidden"], name="/embed/Gather", axis=0),
        helper.make_node("Mul", ["head.w_half", "two"], ["head.w"], name="fold_me"),
        helper.make_node("MatMul", ["hidden", "head.w"], ["logits"], name="/head/MatMul"),
        helper.make_node("ArgMax", ["logits"], ["next_id"], name="/head/ArgMax", axis=-1, keepdims=0),
    ]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64,
                                                    ["batch", "sequence"]))
        nodes.append(helper.make_node("Identity", ["position_ids"], ["positions_out"], name="pos"))
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", V]),
        helper.make_tensor_value_info("next_id", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", D]),
    ]
    if two_inputs:
        outputs.append(helper.make_tensor_value_info("positions_out", TensorProto.INT64,
                                                     ["batch", "sequence"]))
    g = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    m = helper.make_model(g, producer_name="gptoss-mpi-tests",
                          opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    return m


def cache_graph():
    nodes = [helper.make_node("Cast", ["new"], ["new_f"], name="/cast", to=TensorProto.FLOAT),
             helper.make_node("Concat", ["past", "new_f"], ["present"], name="/concat", axis=2)]
    inputs = [helper.make_tensor_value_info("past", TensorProto.FLOAT, ["batch", 2, "past", 3]),
              helper.make_tensor_value_info("new", TensorProto.INT64, ["batch", 2, "sequence", 3])]
    outputs = [helper.make_tensor_value_info("present", TensorProto.FLOAT, ["batch", 2, "total", 3])]
    m = helper.make_model(helper.make_graph(nodes, "cache", inputs, outputs),
                          producer_name="gptoss-mpi-tests", opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    onnx.save_model(graph(), os.path.join(out, "tiny.onnx"))
    onnx.save_model(graph(), os.path.join(out, "tiny_ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="tiny_ext.bin", size_threshold=0)
    onnx.save_model(graph(two_inputs=True), os.path.join(out, "two_inputs.onnx"))
    onnx.save_model(cache_graph(), os.path.join(out, "cache.onnx"))
    with open(os.path.join(out, "garbage.onnx"), "wb") as f:
        f.write(b"\xff\xff\xff\xff not an onnx model \x00\x01" * 16)


if __name__ == "__main__":
    main()
