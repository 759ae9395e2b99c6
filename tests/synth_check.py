#!/usr/bin/env python3
"""Checks for tests/synth_test.sh (stdlib only).

  synth_check.py json INSPECT.json CKPT_DIR PRESET LAYOUT LAYERS EXPERTS
      inspect --json against spec sections 3 and 11: every tensor's name, dtype, shape and
      file; offsets inside the files; dtypes.json / index json; config; per-layer figures
      (exactly spec section 3 for the 20b / 120b shapes) and totals.
  synth_check.py text INSPECT.txt PRESET
      the text output of a full-size 20b / 120b checkpoint shows every figure of section 3.
  synth_check.py same ORIG_DIR HF_DIR
      the two layouts of one seed hold the same logical bytes (q/k/v rows concatenated).
"""
import json, os, struct, sys

SPEC = {  # spec section 3, per layer and totals of the full models
    "20b": dict(layer_bf16_values=26924576, layer_bf16_bytes=53849152, layer_attn_values=26553024,
                layer_moe_bf16_values=371552, layer_mxfp4_bytes=423014400,
                layer_mxfp4_weights=796262400, mlp1_blocks_bytes=265420800,
                mlp1_scales_bytes=16588800, mlp2_blocks_bytes=132710400, mlp2_scales_bytes=8294400,
                layer_total_bytes=476863552, global_bf16_values=1158269760,
                global_bf16_bytes=2316539520, layer_experts_bf16_bytes=1592524800,
                all_bf16_bytes=3608919168, all_mxfp4_bytes=10152345600, total_bytes=13761264768,
                n_params=20914757184, L=24, E=32),
    "120b": dict(layer_bf16_values=28030592, layer_bf16_bytes=56061184, layer_attn_values=26553024,
                 layer_moe_bf16_values=1477568, layer_mxfp4_bytes=1692057600,
                 layer_mxfp4_weights=3185049600, mlp1_blocks_bytes=1061683200,
                 mlp1_scales_bytes=66355200, mlp2_blocks_bytes=530841600,
                 mlp2_scales_bytes=33177600, layer_total_bytes=1748118784,
                 global_bf16_values=1158269760, global_bf16_bytes=2316539520,
                 layer_experts_bf16_bytes=6370099200, all_bf16_bytes=4334742144,
                 all_mxfp4_bytes=60914073600, total_bytes=65248815744, n_params=116829156672,
                 L=36, E=128),
}
TEXT = {  # how `inspect` prints them (spec section 3 spelling)
    "20b": ["26,924,576 values = 53,849,152 B", "26,553,024 values", "371,552 values",
            "423,014,400 B (796,262,400 weights)", "265,420,800 / 16,588,800 B",
            "132,710,400 / 8,294,400 B", "476,863,552 B", "1,158,269,760 values = 2,316,539,520 B",
            "3,608,919,168 B", "10,152,345,600 B", "13,761,264,768 B = 12.82 GiB",
            "20,914,757,184", "1,592,524,800 B"],
    "120b": ["28,030,592 values = 56,061,184 B", "26,553,024 values", "1,477,568 values",
             "1,692,057,600 B (3,185,049,600 weights)", "1,061,683,200 / 66,355,200 B",
             "530,841,600 / 33,177,600 B", "1,748,118,784 B",
             "1,158,269,760 values = 2,316,539,520 B", "4,334,742,144 B", "60,914,073,600 B",
             "65,248,815,744 B = 60.77 GiB", "116,829,156,672", "6,370,099,200 B"],
}
TINY = dict(num_hidden_layers=4, num_experts=16, experts_per_token=4, vocab_size=512,
            hidden_size=64, intermediate_size=96, head_dim=16, num_attention_heads=8,
            num_key_value_heads=2, sliding_window=8)
REAL = dict(num_hidden_layers=24, num_experts=32, experts_per_token=4, vocab_size=201088,
            hidden_size=2880, intermediate_size=2880, head_dim=64, num_attention_heads=64,
            num_key_value_heads=8, sliding_window=128)
COMMON = dict(swiglu_limit=7.0, initial_context_length=4096, rope_theta=150000.0,
              rope_scaling_factor=32.0, rope_ntk_alpha=1.0, rope_ntk_beta=32.0)
KEYS = ["num_hidden_layers", "num_experts", "experts_per_token", "vocab_size", "hidden_size",
        "intermediate_size", "swiglu_limit", "head_dim", "num_attention_heads",
        "num_key_value_heads", "sliding_window", "initial_context_length", "rope_theta",
        "rope_scaling_factor", "rope_ntk_alpha", "rope_ntk_beta"]
ROLES = ["attn.norm.scale", "attn.qkv.weight", "attn.qkv.bias", "attn.sinks", "attn.out.weight",
         "attn.out.bias", "mlp.norm.scale", "mlp.gate.weight", "mlp.gate.bias",
         "mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales", "mlp.mlp1_bias",
         "mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales", "mlp.mlp2_bias"]
HF = {"attn.norm.scale": "input_layernorm.weight", "attn.sinks": "self_attn.sinks",
      "attn.out.weight": "self_attn.o_proj.weight", "attn.out.bias": "self_attn.o_proj.bias",
      "mlp.norm.scale": "post_attention_layernorm.weight", "mlp.gate.weight": "mlp.router.weight",
      "mlp.gate.bias": "mlp.router.bias",
      "mlp.mlp1_weight.blocks": "mlp.experts.gate_up_proj_blocks",
      "mlp.mlp1_weight.scales": "mlp.experts.gate_up_proj_scales",
      "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
      "mlp.mlp2_weight.blocks": "mlp.experts.down_proj_blocks",
      "mlp.mlp2_weight.scales": "mlp.experts.down_proj_scales",
      "mlp.mlp2_bias": "mlp.experts.down_proj_bias"}
HF_GLOBAL = {"embedding.weight": "model.embed_tokens.weight", "norm.scale": "model.norm.weight",
             "unembedding.weight": "lm_head.weight"}

failures = 0
def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)

def expected_tensors(c, layout):
    """[(file name, original name, dtype, shape)] per spec sections 3 and 11."""
    L, E, V, D = c["num_hidden_layers"], c["num_experts"], c["vocab_size"], c["hidden_size"]
    I, Dh, H, KV = c["intermediate_size"], c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    out = []
    def add(orig, dt, shape):
        if layout == "hf" and orig in HF_GLOBAL:
            out.append((HF_GLOBAL[orig], orig, dt, shape))
        elif layout == "hf":
            n, role = orig.split(".", 2)[1], orig.split(".", 2)[2]
            if role in ("attn.qkv.weight", "attn.qkv.bias"):
                suf = role.split(".")[-1]
                for proj, rows in (("q_proj", H * Dh), ("k_proj", KV * Dh), ("v_proj", KV * Dh)):
                    out.append(("model.layers.%s.self_attn.%s.%s" % (n, proj, suf), orig, dt,
                                [rows] + shape[1:]))
            else:
                out.append(("model.layers.%s.%s" % (n, HF[role]), orig, dt, shape))
        else:
            out.append((orig, orig, dt, shape))
    add("embedding.weight", "BF16", [V, D])
    add("norm.scale", "BF16", [D])
    add("unembedding.weight", "BF16", [V, D])
    Q = Dh * (H + 2 * KV)
    for n in range(L):
        p = "block.%d." % n
        shapes = [[D], [Q, D], [Q], [H], [D, H * Dh], [D], [D], [E, D], [E],
                  [E, 2 * I, D // 32, 16], [E, 2 * I, D // 32], [E, 2 * I],
                  [E, D, I // 32, 16], [E, D, I // 32], [E, D]]
        for role, shape in zip(ROLES, shapes):
            add(p + role, "U8" if role.endswith(("blocks", "scales")) else "BF16", shape)
    return out

def check_json(path, ckpt, preset, layout, layers, experts):
    j = json.load(open(path))
    c = dict(TINY if preset == "tiny" else REAL)
    if preset == "120b":
        c["num_hidden_layers"], c["num_experts"] = 36, 128
    c.update(COMMON)
    if layers: c["num_hidden_layers"] = layers
    if experts: c["num_experts"] = experts
    c["experts_per_token"] = min(c["experts_per_token"], c["num_experts"])
    check(j["layout"] == layout, "layout %s" % j["layout"])
    check(j["config"] == c, "config %s != %s" % (j["config"], c))
    # tensors: exact names, original names, dtypes, shapes
    got = {t["name"]: t for t in j["tensors"]}
    want = expected_tensors(c, layout)
    check(len(got) == len(j["tensors"]) == len(want), "tensor count %d, expected %d" % (len(j["tensors"]), len(want)))
    for name, orig, dt, shape in want:
        t = got.get(name)
        check(t is not None, "missing tensor " + name)
        if t:
            check((t["original_name"], t["dtype"], t["shape"]) == (orig, dt, shape),
                  "%s: %s %s %s, expected %s %s %s" % (name, t["original_name"], t["dtype"], t["shape"], orig, dt, shape))
            isz = 2 if dt == "BF16" else 1
            n = isz
            for d in shape: n *= d
            check(t["bytes"] == n, "%s: %d bytes, expected %d" % (name, t["bytes"], n))
    # files: names as published, offsets in range and not overlapping
    files = {f["name"]: f for f in j["files"]}
    names = sorted(files)
    nf = len(names)
    if layout == "hf":
        check(names == ["model-%05d-of-%05d.safetensors" % (i, nf - 1) for i in range(nf)], "hf shard names %s" % names)
    elif preset == "120b":
        check(names == ["model--%05d-of-%05d.safetensors" % (i + 1, nf) for i in range(nf)], "120b shard names %s" % names)
        if c["num_hidden_layers"] == 1: check(nf == 1, "120b 1 layer: %d shards" % nf)
        if c["num_hidden_layers"] == 36: check(nf == 7, "120b: %d shards, published 7" % nf)
        check(all(f["bytes"] <= 10.0e9 for f in j["files"]), "120b shard larger than 10 GB")
    else:
        check(names == ["model.safetensors"], "file names %s" % names)
    byfile = {}
    for t in j["tensors"]:
        check(t["file"] in files, "%s: unknown file %s" % (t["name"], t["file"]))
        byfile.setdefault(t["file"], []).append((t["offset"], t["offset"] + t["bytes"], t["name"]))
    for fn, rs in byfile.items():
        rs.sort()
        f = files[fn]
        check(f["data_start"] % 8 == 0, "%s: data section at %d, not a multiple of 8" % (fn, f["data_start"]))
        check(rs[0][0] == f["data_start"], "%s: data does not start at the data section" % fn)
        check(rs[-1][1] == f["bytes"], "%s: data does not end at the end of the file" % fn)
        for a, b in zip(rs, rs[1:]):
            check(a[1] == b[0], "%s: gap or overlap between %s and %s" % (fn, a[2], b[2]))
        hdr = open(os.path.join(ckpt, fn), "rb").read(8)
        check(struct.unpack("<Q", hdr)[0] % 8 == 0, "%s: header length not a multiple of 8" % fn)
    # sidecars
    if layout == "original":
        dts = json.load(open(os.path.join(ckpt, "dtypes.json")))
        want_dt = {t["name"]: ("FP4" if t["name"].endswith(".blocks") else "UE8" if t["name"].endswith(".scales") else "BF16") for t in j["tensors"]}
        check(dts == want_dt, "dtypes.json differs")
        cfg = json.load(open(os.path.join(ckpt, "config.json")))
        check(list(cfg) == KEYS, "config.json keys/order %s" % list(cfg))
        raw = open(os.path.join(ckpt, "config.json")).read()
        check('"rope_theta": 150000,' in raw and '"swiglu_limit": 7.0,' in raw, "config.json spelling")
    else:
        idx = json.load(open(os.path.join(ckpt, "model.safetensors.index.json")))
        check(idx["weight_map"] == {t["name"]: t["file"] for t in j["tensors"]}, "index weight_map differs")
        check(idx["metadata"]["total_size"] == sum(t["bytes"] for t in j["tensors"]), "index total_size")
        cfg = json.load(open(os.path.join(ckpt, "config.json")))
        check(cfg["num_local_experts"] == c["num_experts"] and cfg["model_type"] == "gpt_oss" and
              cfg["quantization_config"]["quant_method"] == "mxfp4" and
              cfg["rope_scaling"]["rope_type"] == "yarn" and len(cfg["layer_types"]) == c["num_hidden_layers"],
              "hf config.json")
    # figures
    s = j["summary"]
    L = c["num_hidden_layers"]
    if preset in SPEC and experts in (0, SPEC[preset]["E"]):
        sp = SPEC[preset]
        for k in ["layer_bf16_values", "layer_bf16_bytes", "layer_attn_values", "layer_moe_bf16_values",
                  "layer_mxfp4_bytes", "layer_mxfp4_weights", "mlp1_blocks_bytes", "mlp1_scales_bytes",
                  "mlp2_blocks_bytes", "mlp2_scales_bytes", "layer_total_bytes", "global_bf16_values",
                  "global_bf16_bytes", "layer_experts_bf16_bytes"]:
            check(s[k] == sp[k], "%s = %d, spec %d" % (k, s[k], sp[k]))
        if L == sp["L"]:
            for k in ["all_bf16_bytes", "all_mxfp4_bytes", "total_bytes", "n_params"]:
                check(s[k] == sp[k], "%s = %d, spec %d" % (k, s[k], sp[k]))
    check(s["all_bf16_bytes"] == s["global_bf16_bytes"] + L * s["layer_bf16_bytes"], "all_bf16_bytes")
    check(s["all_mxfp4_bytes"] == L * s["layer_mxfp4_bytes"], "all_mxfp4_bytes")
    check(s["total_bytes"] == sum(t["bytes"] for t in j["tensors"]), "total_bytes")
    check(s["n_params"] == s["all_bf16_bytes"] // 2 + L * s["layer_mxfp4_weights"], "n_params")
    check(s["n_tensors"] == len(j["tensors"]), "n_tensors")

def check_text(path, preset):
    txt = open(path).read()
    for want in TEXT[preset]:
        check(want in txt, "text output lacks '%s'" % want)

def read_tensors(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".safetensors"): continue
        f = open(os.path.join(d, fn), "rb")
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
        for k, v in h.items():
            if k != "__metadata__":
                b, e = v["data_offsets"]
                out[k] = data[b:e]
    return out

def check_same(orig_dir, hf_dir):
    a, b = read_tensors(orig_dir), read_tensors(hf_dir)
    for name, data in a.items():
        if name in HF_GLOBAL:
            check(b.get(HF_GLOBAL[name]) == data, name)
            continue
        n, role = name.split(".", 2)[1], name.split(".", 2)[2]
        if role in ("attn.qkv.weight", "attn.qkv.bias"):
            suf = role.split(".")[-1]
            parts = [b.get("model.layers.%s.self_attn.%s.%s" % (n, p, suf), b"") for p in ("q_proj", "k_proj", "v_proj")]
            check(b"".join(parts) == data, name + " != q|k|v")
        else:
            check(b.get("model.layers.%s.%s" % (n, HF[role])) == data, name)

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "json":
        check_json(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
    elif mode == "text":
        check_text(sys.argv[2], sys.argv[3])
    elif mode == "same":
        check_same(sys.argv[2], sys.argv[3])
    print("synth_check %s: %s" % (mode, "FAILED (%d)" % failures if failures else "ok"))
    sys.exit(1 if failures else 0)
