"""Tests of `gptoss-mpi export` (issue 5), with ONNX Runtime doing the checking through
tests/test_export_ort.c (parity/ort.h).

usage: export_test.py WHAT GPTOSS_BIN ORT_CHECK WORKDIR
  golden     golden/case-a exported with 1, 2, 3 ranks in both weight modes (+ per-rank files,
             --stages 2): ORT logits vs golden.h5:/fp32 within 2e-5 x max|ref|, exposed routing
             identical as sets, identical output bytes across rank counts; driven as a client
             drives it: one prefill, or a short prefill then one decode step per position
             through the KV cache, batch 2, and a left-padded row equal to its prompt alone
             within 1e-5 x max|ref|
  structure  graph structure read with Debian's onnx 1.12 (proto fields only; IR 11 is beyond
             its checker): opset/IR stamps, decoder I/O names, types, dims (batch_size, numeric
             KV and head_dim), op types and counts per layer, node and initializer names, no
             weights inside model.onnx, external data locations/offsets/alignment; the client
             files (config.json, generation_config.json, genai_config.json) and the tokenizer
             files copied from the checkpoint's repository (chat template merged)
  fault      injected failures (data, graph phases, one rank) leave nothing; a killed export
             leaves only a hidden temp dir; existing output refused; usage errors
  configs    other configurations (synth: other E, k, heads, odd L, sliding_window 0, no YaRN,
             HF layout) and --max-layers: ORT vs `gptoss-mpi run --trace` of the same checkpoint
"""
import filecmp
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np

from synth_ckpt import EXPORT_CASES, make_case

WHAT, BIN, CHECK, WORK = sys.argv[1:5]
GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(__file__), "golden", "case-a"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
ENV.pop("GPTOSS_FAULT", None)
FAILS = []
PROMPT = "37,297,214,493,138,380,482,81,427,136,475,118,227,308,109,126,95,133,308,285,218,214,461,224"


def fail(msg):
    print("FAIL", msg, flush=True)
    FAILS.append(msg)


def mpirun(np_, args, env=None, timeout=600):
    cmd = ["mpirun", "-np", str(np_), BIN] + args
    return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)


def export(ck, out, np_=1, extra=(), env=None):
    r = mpirun(np_, ["export", ck, "--output", out, "-q"] + list(extra), env=env)
    if r.returncode != 0:
        fail(f"export {ck} -np {np_} {' '.join(extra)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.returncode == 0


def ort_check(model, ref, group, extra=()):
    r = subprocess.run([CHECK, model, ref, group] + list(extra), capture_output=True, text=True,
                       timeout=600)
    tag = f"{os.path.relpath(model, WORK)} vs {os.path.basename(ref)}:{group}"
    print(f"  {tag}: " + " | ".join(l for l in r.stdout.splitlines() if l and l != "PASS"), flush=True)
    if r.returncode != 0:
        fail(f"{tag}: {r.stdout.strip()} {r.stderr.strip()}")


def tree(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def same_tree(a, b):
    fa, fb = tree(a), tree(b)
    if fa != fb:
        return f"files differ: {fa} vs {fb}"
    for f in fa:
        if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
            return f"{f} differs"
    return None


def model(out):
    return os.path.join(out, "onnx", "model.onnx")


def test_golden():
    ref = os.path.join(GOLDEN, "golden.h5")
    for w in ("mxfp4", "fp32"):
        first = None
        for p in (1, 2, 3):
            out = os.path.join(WORK, f"golden-{w}-np{p}")
            if not export(GOLDEN, out, p, ["--weights", w, "--expose", "routing,hidden"]):
                continue
            # p = 1: one prefill; p = 2: batch 2, prefill 5 then 19 decode steps; p = 3: a
            # row left-padded by 9 next to the full one, prefill 12 then decode steps
            ort_check(model(out), ref, "/fp32",
                      {1: [], 2: ["--batch", "2", "--prefill", "5"],
                       3: ["--pad", "9", "--prefill", "12", "--tol", "1e-5"]}[p])
            if first is None:
                first = out
            else:
                d = same_tree(first, out)
                if d:
                    fail(f"golden {w}: -np {p} output differs from -np 1: {d}")
                else:
                    print(f"  golden {w}: -np {p} output bytes identical to -np 1", flush=True)
        shutil.rmtree(os.path.join(WORK, f"golden-{w}-np2"), ignore_errors=True)
    # per-rank data files, and a 2-stage plan
    out = os.path.join(WORK, "golden-perrank-np3")
    if export(GOLDEN, out, 3, ["--data-files", "per-rank", "--expose", "routing"]):
        files = sorted(f for f in os.listdir(os.path.join(out, "onnx")) if f.startswith("model.onnx.data"))
        print(f"  per-rank files: {files}")
        if len(files) < 2:
            fail(f"per-rank with 3 ranks wrote {files}")
        ort_check(model(out), ref, "/fp32", ["--prefill", "1"])
    out = os.path.join(WORK, "golden-stages2-np2")
    if export(GOLDEN, out, 2, ["--stages", "2", "--expose", "routing,hidden"]):
        ort_check(model(out), ref, "/fp32")
        d = same_tree(os.path.join(WORK, "golden-mxfp4-np1"), out)
        if d:
            fail(f"--stages 2 output differs from -np 1: {d}")
    # plain export (no exposed outputs) and bf16 vs fp32 dense storage give the same logits
    for extra in ([], ["--dense", "fp32"]):
        out = os.path.join(WORK, "golden-plain" + "".join(extra).replace("-", ""))
        if export(GOLDEN, out, 1, extra):
            ort_check(model(out), ref, "/fp32", ["--prefill", "20"])


def test_structure():
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    import onnx  # Debian's onnx 1.12
    cfg = json.load(open(os.path.join(GOLDEN, "original", "config.json")))
    L, E, K, V, D = (cfg[k] for k in ("num_hidden_layers", "num_experts", "experts_per_token",
                                        "vocab_size", "hidden_size"))
    for w in ("mxfp4", "fp32"):
        out = os.path.join(WORK, f"struct-{w}")
        if not export(GOLDEN, out, 2, ["--weights", w, "--expose", "routing,hidden"]):
            continue
        path = model(out)
        m = onnx.load(path, load_external_data=False)
        g = m.graph
        if m.ir_version != 11:
            fail(f"{w}: ir_version {m.ir_version}")
        ops = [(o.domain, o.version) for o in m.opset_import]
        if ops != [("", 23)]:
            fail(f"{w}: opset_import {ops}")

        def dims(vi):
            return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

        ins = [(i.name, i.type.tensor_type.elem_type, dims(i)) for i in g.input]
        KV, Dh = cfg["num_key_value_heads"], cfg["head_dim"]
        want_in = [("input_ids", 7, ["batch_size", "sequence_length"]),
                   ("attention_mask", 7, ["batch_size", "total_sequence_length"]),
                   ("position_ids", 7, ["batch_size", "sequence_length"])]
        for n in range(L):
            for kv in ("key", "value"):
                want_in.append((f"past_key_values.{n}.{kv}", 1, ["batch_size", KV, "past_sequence_length", Dh]))
        if ins != want_in:
            fail(f"{w}: inputs {ins}")
        bs = ["batch_size", "sequence_length"]
        want = {"logits": (1, bs + [V])}
        for n in range(L):
            for kv in ("key", "value"):
                want[f"present.{n}.{kv}"] = (1, ["batch_size", KV, "total_sequence_length", Dh])
            want[f"routing.{n}.topk_indices"] = (7, bs + [K])
            want[f"routing.{n}.topk_weights"] = (1, bs + [K])
            want[f"routing.{n}.router_logits"] = (1, bs + [E])
            want[f"hidden.{n}.after_attn"] = (1, bs + [D])
            want[f"hidden.{n}.after_mlp"] = (1, bs + [D])
        got = {o.name: (o.type.tensor_type.elem_type, tuple(dims(o))) for o in g.output}
        want = {k: (t, tuple(d)) for k, (t, d) in want.items()}
        if got != want:
            fail(f"{w}: outputs differ: {sorted(set(got.items()) ^ set(want.items()))[:6]}")
        if [o.name for o in g.output][:3] != ["logits", "present.0.key", "present.0.value"]:
            fail(f"{w}: output order {[o.name for o in g.output][:3]}")
        # no weights inside model.onnx: every initializer above 64 bytes is external
        size = os.path.getsize(path)
        inits = {t.name: t for t in g.initializer}
        for t in g.initializer:
            ext = {e.key: e.value for e in t.external_data}
            if t.data_location == onnx.TensorProto.EXTERNAL:
                loc, off, ln = ext["location"], int(ext["offset"]), int(ext["length"])
                if os.path.isabs(loc) or ".." in loc.split("/"):
                    fail(f"{w}: {t.name}: location {loc} not relative inside the directory")
                fsz = os.path.getsize(os.path.join(out, "onnx", loc))
                if off + ln > fsz:
                    fail(f"{w}: {t.name}: [{off}, {off + ln}) past the end of {loc} ({fsz})")
                if ln >= 1 << 20 and off % 65536:
                    fail(f"{w}: {t.name}: {ln} bytes at offset {off}, not 64 KiB aligned")
                n_el = int(np.prod(t.dims)) if len(t.dims) else 1
                isz = {1: 4, 2: 1, 16: 2}[t.data_type]
                if n_el * isz != ln:
                    fail(f"{w}: {t.name}: length {ln} != {n_el} x {isz}")
            elif len(t.raw_data) > 64:
                fail(f"{w}: initializer {t.name} holds {len(t.raw_data)} bytes inside model.onnx")
        if size > 200_000:
            fail(f"{w}: model.onnx is {size} bytes")
        # checkpoint tensors keep their original-layout names
        names = ["embedding.weight", "norm.scale", "unembedding.weight", "block.1.mlp.gate.weight",
                 "block.3.attn.qkv.weight", "block.0.attn.sinks", "block.2.mlp.mlp1_bias"]
        names += (["block.1.mlp.mlp1_weight.blocks", "block.1.mlp.mlp2_weight.scales"] if w == "mxfp4"
                  else ["block.1.mlp.mlp1_weight", "block.1.mlp.mlp2_weight"])
        for nm in names:
            if nm not in inits:
                fail(f"{w}: no initializer named {nm}")
        if w == "mxfp4":
            for nm in ("block.0.mlp.mlp1_weight.blocks", "block.0.mlp.mlp1_weight.scales"):
                if nm in inits and inits[nm].data_type != 2:
                    fail(f"{w}: {nm} is not uint8")
        # op types per layer (top level and inside the Loop bodies)
        per_layer = {}
        for nd in g.node:
            parts = nd.name.split("/")
            key = parts[1] if len(parts) > 1 else ""
            per_layer.setdefault(key, []).append(nd.op_type)
            for a in nd.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    for b in a.g.node:
                        per_layer[key].append("body:" + b.op_type)
        for n in range(L):
            lops = per_layer.get(f"block.{n}", [])
            cnt = {o: lops.count(o) for o in set(lops)}
            exp = {"RMSNormalization": 2, "RotaryEmbedding": 2, "Attention": 1, "TopK": 1, "Softmax": 1,
                   "Concat": 4, "Pad": 1, "Transpose": 4,
                   "Unique": 1, "Loop": 1, "body:ScatterND": 1, "body:NonZero": 1, "body:Gemm": 2,
                   "body:Sigmoid": 1, "body:Min": 1, "body:Clip": 1,
                   "Gemm": 3, "Cast": 9, "MatMul": 0, "body:Cast": 6 if w == "mxfp4" else 2,
                   "body:Gather": 17 if w == "mxfp4" else 11}
            for o, c in exp.items():
                if cnt.get(o, 0) != c:
                    fail(f"{w}: layer {n}: {cnt.get(o, 0)} x {o}, expected {c}")
            if not all(nd.name.startswith(f"/block.{n}/") for nd in g.node if nd.name.split("/")[1:2] == [f"block.{n}"]):
                fail(f"{w}: layer {n}: node names")
        for nm in ("/block.3/attn/qkv/Gemm", "/block.0/mlp/gate/Gemm", "/block.1/attn/sdpa/Attention",
                   "/embedding/Gather", "/unembedding/Gemm", "/block.2/mlp/experts/Loop",
                   "/block.2/attn/cache/Concat_key", "/mask/CumSum", "/positions/Where"):
            if nm not in [nd.name for nd in g.node]:
                fail(f"{w}: no node named {nm}")
        print(f"  {w}: IR {m.ir_version}, opset {ops}, {len(g.node)} top-level nodes, "
              f"{len(g.initializer)} initializers, model.onnx {size} bytes", flush=True)
        check_client_files(out, cfg, L, tokenizer=False)
    # the tokenizer files of the checkpoint's repository (the parent of original/), chat
    # template merged into tokenizer_config.json; config.json of --max-layers says 2 layers
    repo = os.path.join(WORK, "repo")
    os.makedirs(os.path.join(repo, "original"))
    for f in os.listdir(os.path.join(GOLDEN, "original")):
        os.symlink(os.path.join(GOLDEN, "original", f), os.path.join(repo, "original", f))
    tok = {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": []}
    json.dump(tok, open(os.path.join(repo, "tokenizer.json"), "w"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072},
              open(os.path.join(repo, "tokenizer_config.json"), "w"))
    template = "{% for m in messages %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{% endfor %}"
    open(os.path.join(repo, "chat_template.jinja"), "w").write(template)
    out = os.path.join(WORK, "struct-tokenizer")
    if export(os.path.join(repo, "original"), out, 1, ["--max-layers", "2"]):
        check_client_files(out, cfg, 2, tokenizer=True)
        if json.load(open(os.path.join(out, "tokenizer.json"))) != tok:
            fail("tokenizer.json not copied as it is")
        tc = json.load(open(os.path.join(out, "tokenizer_config.json")))
        if tc.get("chat_template") != template or tc.get("model_max_length") != 131072:
            fail(f"tokenizer_config.json: {tc}")
        if open(os.path.join(out, "chat_template.jinja")).read() != template:
            fail("chat_template.jinja not copied")
    # a FIFO where a tokenizer file would be: refused, nothing left
    os.remove(os.path.join(repo, "tokenizer.json"))
    os.mkfifo(os.path.join(repo, "tokenizer.json"))
    out = os.path.join(WORK, "struct-fifo")
    r = mpirun(1, ["export", os.path.join(repo, "original"), "--output", out])
    if r.returncode != 1 or "not a regular file" not in r.stderr or os.path.exists(out) or \
            [f for f in os.listdir(WORK) if "struct-fifo" in f]:
        fail(f"FIFO tokenizer.json: exit {r.returncode}: {r.stderr.strip()}")


def check_client_files(out, cfg, L, tokenizer):
    """config.json / generation_config.json / genai_config.json beside the model (what
    transformers.js and ONNX Runtime GenAI read, docs/export.md "Files")."""
    files = sorted(os.listdir(out))
    want = ["config.json", "genai_config.json", "generation_config.json", "onnx"]
    want += ["chat_template.jinja", "tokenizer.json", "tokenizer_config.json"] if tokenizer else []
    if files != sorted(want):
        fail(f"{out}: files {files}")
        return
    c = json.load(open(os.path.join(out, "config.json")))
    for k, v in (("model_type", "gpt_oss"), ("num_hidden_layers", L), ("architectures", ["GptOssForCausalLM"]),
                 ("num_key_value_heads", cfg["num_key_value_heads"]), ("head_dim", cfg["head_dim"]),
                 ("num_attention_heads", cfg["num_attention_heads"]), ("hidden_size", cfg["hidden_size"]),
                 ("vocab_size", cfg["vocab_size"]), ("num_local_experts", cfg["num_experts"]),
                 ("sliding_window", cfg["sliding_window"]), ("eos_token_id", 200002), ("pad_token_id", 199999)):
        if c.get(k) != v:
            fail(f"config.json: {k} = {c.get(k)!r}, expected {v!r}")
    if "quantization_config" in c or len(c.get("layer_types", [])) != L:
        fail(f"config.json: quantization_config / layer_types {c.get('layer_types')}")
    gc = json.load(open(os.path.join(out, "generation_config.json")))
    if gc.get("eos_token_id") != [200002, 199999, 200012] or gc.get("do_sample") is not False:
        fail(f"generation_config.json: {gc}")
    ga = json.load(open(os.path.join(out, "genai_config.json")))
    m, dec = ga["model"], ga["model"]["decoder"]
    want_dec = {"filename": "onnx/model.onnx", "head_size": cfg["head_dim"], "hidden_size": cfg["hidden_size"],
                "num_attention_heads": cfg["num_attention_heads"], "num_hidden_layers": L,
                "num_key_value_heads": cfg["num_key_value_heads"],
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "position_ids": "position_ids", "past_key_names": "past_key_values.%d.key",
                           "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"}}
    for k, v in want_dec.items():
        if dec.get(k) != v:
            fail(f"genai_config.json: decoder.{k} = {dec.get(k)!r}, expected {v!r}")
    ctx = cfg["initial_context_length"] * cfg["rope_scaling_factor"]
    if m.get("type") != "gptoss" or m.get("context_length") != ctx or \
            m.get("eos_token_id") != [200002, 199999, 200012] or \
            ga["search"].get("past_present_share_buffer") is not False or ga["search"].get("do_sample") is not False:
        fail(f"genai_config.json: model {m}, search {ga['search']}")
    if not os.path.isfile(os.path.join(out, dec["filename"])):
        fail(f"genai_config.json: decoder file {dec['filename']} missing")


def test_fault():
    env = dict(ENV)
    cases = [("1:export-data", 2, 1), ("0:export-data", 2, 1), ("0:export-graph", 2, 1),
             ("1:export-graph", 3, 1), ("2:open", 3, 1)]
    for fault, p, want in cases:
        out = os.path.join(WORK, "fault-out")
        env["GPTOSS_FAULT"] = fault
        r = mpirun(p, ["export", GOLDEN, "--output", out], env=env)
        left = [f for f in os.listdir(WORK) if "fault-out" in f]
        if r.returncode != want or left:
            fail(f"GPTOSS_FAULT={fault} -np {p}: exit {r.returncode} (want {want}), left {left}")
        errs = [l for l in r.stderr.splitlines() if "error" in l]
        if len(errs) != 1 or "injected fault" not in errs[0]:
            fail(f"GPTOSS_FAULT={fault}: expected one error line, got {errs}")
        else:
            print(f"  {fault} -np {p}: exit {r.returncode}, nothing left: {errs[0]}", flush=True)
    # a killed rank: only the unfinished killed-out.partial may remain, never the output name;
    # --resume finishes it (tests/resume_test.py checks the bytes)
    env["GPTOSS_FAULT"] = "1:export-kill"
    r = mpirun(2, ["export", GOLDEN, "--output", os.path.join(WORK, "killed-out")], env=env)
    left = [f for f in os.listdir(WORK) if "killed-out" in f]
    if r.returncode == 0 or left != ["killed-out.partial"]:
        fail(f"killed export: exit {r.returncode}, left {left}")
    else:
        print(f"  killed rank: exit {r.returncode}, left only {left}", flush=True)
    r = mpirun(2, ["export", GOLDEN, "--output", os.path.join(WORK, "killed-out"), "--resume", "-q"])
    left = sorted(f for f in os.listdir(WORK) if "killed-out" in f)
    if r.returncode != 0 or left != ["killed-out"]:
        fail(f"killed export resumed: exit {r.returncode}, left {left}: {r.stderr.strip()[-300:]}")
    for f in left:
        shutil.rmtree(os.path.join(WORK, f), ignore_errors=True)
    # an existing non-empty output is refused; an empty one is replaced
    out = os.path.join(WORK, "exists")
    os.makedirs(out)
    open(os.path.join(out, "keep.txt"), "w").write("x")
    r = mpirun(1, ["export", GOLDEN, "--output", out])
    if r.returncode != 1 or "not empty" not in r.stderr or os.listdir(out) != ["keep.txt"]:
        fail(f"non-empty output: exit {r.returncode}: {r.stderr.strip()}")
    os.remove(os.path.join(out, "keep.txt"))
    r = mpirun(1, ["export", GOLDEN, "--output", out, "-q"])
    if r.returncode != 0 or not os.path.isfile(model(out)):
        fail(f"empty output dir: exit {r.returncode}: {r.stderr.strip()}")
    # corrupt values: one NaN bf16 / one overflowing scale byte, found by the rank that writes it
    # (the ort target re-encodes the scales as fp32 block scales: refused there too)
    modes = {"mxfp4": ["--weights", "mxfp4", "--dense", "bf16"], "fp32": ["--weights", "fp32", "--dense", "fp32"],
             "ort": ["--target", "ort"]}
    for tensor, elem, val, mode in (("embedding.weight", 5, b"\xc0\x7f", "mxfp4"),
                                    ("block.1.mlp.mlp2_weight.scales", 700, b"\xff", "mxfp4"),
                                    ("block.1.mlp.mlp2_weight.scales", 700, b"\xff", "ort"),
                                    ("block.2.attn.qkv.weight", 9, b"\x80\x7f", "fp32")):
        ck = os.path.join(WORK, "corrupt-ck")
        shutil.rmtree(ck, ignore_errors=True)
        shutil.copytree(os.path.join(GOLDEN, "original"), ck)
        st = os.path.join(ck, "model.safetensors")
        raw = bytearray(open(st, "rb").read())
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        off = 8 + n + h[tensor]["data_offsets"][0] + elem * len(val)
        raw[off:off + len(val)] = val
        open(st, "wb").write(raw)
        out = os.path.join(WORK, "corrupt-out")
        r = mpirun(3, ["export", ck, "--output", out] + modes[mode])
        left = [f for f in os.listdir(WORK) if "corrupt-out" in f]
        errs = [l for l in r.stderr.splitlines() if "error" in l]
        if r.returncode != 1 or left or len(errs) != 1 or tensor not in errs[0]:
            fail(f"corrupt {tensor} ({mode}): exit {r.returncode}, left {left}, errors {errs}")
        else:
            print(f"  corrupt {tensor} ({mode}): {errs[0]}", flush=True)
    for args in (["--weights", "int4"], ["--expose", "kv"], ["--data-files", "x"], [],
                 ["--max-layers", "0"], ["--bogus"]):
        r = subprocess.run([BIN, "export", GOLDEN] + (["--output", os.path.join(WORK, "u")] if args else []) + args,
                           capture_output=True, text=True, env=ENV, timeout=120)
        if r.returncode != 2 or os.path.exists(os.path.join(WORK, "u")):
            fail(f"usage {args}: exit {r.returncode}")
    r = mpirun(1, ["export", GOLDEN, "--output", os.path.join(WORK, "u"), "--max-layers", "9"])
    if r.returncode != 2:
        fail(f"--max-layers 9 on 4 layers: exit {r.returncode}")


CASES = EXPORT_CASES


def test_configs():
    ids = ",".join(str((i * 37 + 11) % 300) for i in range(20))
    for name, how in CASES:
        ck = os.path.join(WORK, "ck-" + name)
        err = make_case(ck, how, BIN, ENV)
        if err:
            fail(f"{name}: {err}")
            continue
        trace = os.path.join(WORK, f"run-{name}.h5")
        r = mpirun(1, ["run", ck, "--prompt-ids", ids, "--max-tokens", "0", "--trace", trace, "-q"])
        if r.returncode:
            fail(f"{name}: run: {r.stderr.strip()}")
            continue
        for w, p in (("mxfp4", 2), ("fp32", 3)):
            out = os.path.join(WORK, f"ex-{name}-{w}")
            if export(ck, out, p, ["--weights", w, "--expose", "routing,hidden", "--max-positions", "64"]):
                ort_check(model(out), trace, "/", ["--prefill", "6", "--pad", "3"])
            shutil.rmtree(out, ignore_errors=True)
    # --max-layers: against run --max-layers of the golden checkpoint
    trace = os.path.join(WORK, "run-golden-l2.h5")
    r = mpirun(1, ["run", GOLDEN, "--prompt-ids", PROMPT, "--max-tokens", "0", "--max-layers", "2",
                   "--trace", trace, "-q"])
    if r.returncode:
        fail(f"run --max-layers 2: {r.stderr.strip()}")
    else:
        out = os.path.join(WORK, "ex-golden-l2")
        if export(GOLDEN, out, 2, ["--max-layers", "2", "--expose", "routing,hidden"]):
            ort_check(model(out), trace, "/", ["--prefill", "4"])


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    t0 = time.time()
    {"golden": test_golden, "structure": test_structure, "fault": test_fault,
     "configs": test_configs}[WHAT]()
    print(f"{WHAT}: {len(FAILS)} failure(s) in {time.time() - t0:.1f} s")
    if not FAILS:
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(1 if FAILS else 0)


main()
