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
  decoder.onnx     a decoder with a KV cache in the export's I/O conventions, with values easy
                   to predict (tests/test_export_kv.c drives it through ort_trace_run): inputs
                   input_ids, attention_mask, position_ids, past_key_values.0.key/value float
                   [batch_size, 1, past_sequence_length, 1]; present.0.key = past ++ ids,
                   present.0.value = past ++ positions; logits [.., 3] = the id,
                   routing.0.topk_indices [.., 1] = id mod 2, topk_weights 1, router_logits
                   [.., 2] = hidden.0.after_attn [.., 2] = the position, hidden.0.after_mlp
                   [.., 2] = the sum of every id in the cache (so a cache fed back wrong shows)
  decoder_sink.onnx the same, but present.0.key holds one (zero) row more than the positions seen
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


def decoder_graph(extra_row=False):
    I = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    F = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)
    inits = [I("ax13", [1, 3]), I("ax2", [2]), I("ax12", [1, 2]), I("two", 2), I("e3", [1, 1, 3]),
             I("e2", [1, 1, 2]), I("ax123", [1, 2, 3]), I("s0", [0]), I("s1", [1]), F("zero", 0.0), F("one", 1.0)]
    n = helper.make_node
    nodes = [
        n("Cast", ["input_ids"], ["idsf"], name="/ids", to=TensorProto.FLOAT),
        n("Cast", ["position_ids"], ["posf"], name="/pos", to=TensorProto.FLOAT),
        n("Unsqueeze", ["idsf", "ax13"], ["ids4"], name="/ids4"),
        n("Unsqueeze", ["posf", "ax13"], ["pos4"], name="/pos4"),
        n("Slice", ["ids4", "s0", "s1", "ax2"], ["first4"], name="/first"),
        n("Mul", ["first4", "zero"], ["zero_row"], name="/zero_row"),        # [B, 1, 1, 1] zeros
        n("Concat", ["past_key_values.0.key", "ids4"] + (["zero_row"] if extra_row else []),
          ["present.0.key"], name="/present_key", axis=2),
        n("Concat", ["past_key_values.0.value", "pos4"], ["present.0.value"], name="/present_value", axis=2),
        n("Unsqueeze", ["idsf", "ax2"], ["ids3"], name="/ids3"),
        n("Unsqueeze", ["posf", "ax2"], ["pos3"], name="/pos3"),
        n("Expand", ["ids3", "e3"], ["logits"], name="/logits"),
        n("Mod", ["input_ids", "two"], ["idmod"], name="/mod"),
        n("Unsqueeze", ["idmod", "ax2"], ["routing.0.topk_indices"], name="/topk"),
        n("Mul", ["ids3", "zero"], ["z3"], name="/z3"),
        n("Add", ["z3", "one"], ["routing.0.topk_weights"], name="/weights"),
        n("Expand", ["pos3", "e2"], ["routing.0.router_logits"], name="/router"),
        n("Expand", ["pos3", "e2"], ["hidden.0.after_attn"], name="/attn"),
        n("ReduceSum", ["present.0.key", "ax123"], ["sum"], name="/sum", keepdims=0),
        n("Unsqueeze", ["sum", "ax12"], ["sum3"], name="/sum3"),
        n("Mul", ["hidden.0.after_attn", "zero"], ["z2"], name="/z2"),
        n("Add", ["z2", "sum3"], ["hidden.0.after_mlp"], name="/mlp"),
    ]
    bs = ["batch_size", "sequence_length"]
    cache = ["batch_size", 1, "past_sequence_length", 1]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, bs),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, bs),
              helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, cache),
              helper.make_tensor_value_info("past_key_values.0.value", TensorProto.FLOAT, cache)]
    total = ["batch_size", 1, "total_sequence_length", 1]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, bs + [3]),
               helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT, total),
               helper.make_tensor_value_info("present.0.value", TensorProto.FLOAT, total),
               helper.make_tensor_value_info("routing.0.topk_indices", TensorProto.INT64, bs + [1]),
               helper.make_tensor_value_info("routing.0.topk_weights", TensorProto.FLOAT, bs + [1]),
               helper.make_tensor_value_info("routing.0.router_logits", TensorProto.FLOAT, bs + [2]),
               helper.make_tensor_value_info("hidden.0.after_attn", TensorProto.FLOAT, bs + [2]),
               helper.make_tensor_value_info("hidden.0.after_mlp", TensorProto.FLOAT, bs + [2])]
    m = helper.make_model(helper.make_graph(nodes, "decoder", inputs, outputs, initializer=inits),
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
    onnx.save_model(decoder_graph(), os.path.join(out, "decoder.onnx"))
    onnx.save_model(decoder_graph(extra_row=True), os.path.join(out, "decoder_sink.onnx"))
    with open(os.path.join(out, "garbage.onnx"), "wb") as f:
        f.write(b"\xff\xff\xff\xff not an onnx model \x00\x01" * 16)


if __name__ == "__main__":
    main()
