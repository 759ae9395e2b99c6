"""Random GPT-OSS checkpoints of any configuration for the tests (original layout, spec sections
1-3, with dtypes.json): write_checkpoint(DIR, config(...), seed). Used by export_test.py,
client_test.py and test_model_ref.py.
Needs numpy (Debian's python3-numpy under /usr/bin/python3)."""
import json
import os
import struct
import subprocess

import numpy as np


def bf16_bytes(a):
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return u.astype("<u2").tobytes()


def write_checkpoint(d, cfg, seed):
    """Random weights of config cfg in the original layout (spec sections 1-3)."""
    rng = np.random.default_rng(seed)
    D, I, E = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_experts"]
    nh, nkv, hd, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["vocab_size"]
    t = {}

    def bf(name, shape, std, mean=0.0):
        t[name] = ("BF16", list(shape), bf16_bytes(mean + std * rng.standard_normal(shape)))

    def mx(name, R, C):
        t[name + ".blocks"] = ("U8", [E, R, C // 32, 16], rng.integers(0, 256, (E, R, C // 32, 16), dtype=np.uint8).tobytes())
        t[name + ".scales"] = ("U8", [E, R, C // 32], rng.integers(121, 125, (E, R, C // 32), dtype=np.uint8).tobytes())

    bf("embedding.weight", (V, D), 1.0)
    bf("norm.scale", (D,), 0.1, 1.0)
    bf("unembedding.weight", (V, D), D ** -0.5)
    for n in range(cfg["num_hidden_layers"]):
        p = f"block.{n}."
        bf(p + "attn.norm.scale", (D,), 0.1, 1.0)
        bf(p + "attn.qkv.weight", (hd * (nh + 2 * nkv), D), D ** -0.5)
        bf(p + "attn.qkv.bias", (hd * (nh + 2 * nkv),), 0.1)
        bf(p + "attn.sinks", (nh,), 1.0)
        bf(p + "attn.out.weight", (D, nh * hd), (nh * hd) ** -0.5)
        bf(p + "attn.out.bias", (D,), 0.1)
        bf(p + "mlp.norm.scale", (D,), 0.1, 1.0)
        bf(p + "mlp.gate.weight", (E, D), D ** -0.5)
        bf(p + "mlp.gate.bias", (E,), 0.1)
        mx(p + "mlp.mlp1_weight", 2 * I, D)
        bf(p + "mlp.mlp1_bias", (E, 2 * I), 0.1)
        mx(p + "mlp.mlp2_weight", D, I)
        bf(p + "mlp.mlp2_bias", (E, D), 0.1)
    header, off, blobs = {}, 0, []
    for name, (dt, shape, raw) in t.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    os.makedirs(d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "dtypes.json"), "w") as f:
        json.dump({n: ("FP4" if n.endswith(".blocks") else "UE8" if n.endswith(".scales") else "BF16") for n in t}, f)


def config(**kw):
    c = dict(num_hidden_layers=3, num_experts=8, experts_per_token=4, vocab_size=512, hidden_size=64,
             intermediate_size=96, swiglu_limit=7.0, head_dim=16, num_attention_heads=8,
             num_key_value_heads=2, sliding_window=8, initial_context_length=4096, rope_theta=150000,
             rope_scaling_factor=32.0, rope_ntk_alpha=1, rope_ntk_beta=32)
    c.update(kw)
    return c


# Configurations the export tests check against `gptoss-mpi run --trace` (export_test.py configs,
# export_ort_test.py): synth presets, or a config for write_checkpoint.
EXPORT_CASES = [
    ("synth-e8-l3", ["--preset", "tiny", "--experts", "8", "--layers", "3", "--seed", "5"]),
    ("synth-hf-l2", ["--preset", "tiny", "--layers", "2", "--seed", "9", "--layout", "hf"]),
    ("e5k2-h6kv3-d8-nowin-noyarn", config(num_experts=5, experts_per_token=2, num_attention_heads=6,
     num_key_value_heads=3, head_dim=8, hidden_size=32, intermediate_size=64, vocab_size=1001,
     sliding_window=0, rope_scaling_factor=1.0, swiglu_limit=3.0, num_hidden_layers=3)),
    ("e7k3-h4kv1-d32-win3-l5", config(num_experts=7, experts_per_token=3, num_attention_heads=4,
     num_key_value_heads=1, head_dim=32, hidden_size=96, intermediate_size=32, vocab_size=777,
     sliding_window=3, rope_theta=10000, rope_scaling_factor=8.0, num_hidden_layers=5)),
]


def make_case(ck, how, gptoss_bin, env):
    """Writes one EXPORT_CASES checkpoint into ck: a config for write_checkpoint (seed 7) or
    `gptoss-mpi synth` arguments. Returns None, or synth's error text."""
    if isinstance(how, dict):
        write_checkpoint(ck, how, 7)
        return None
    r = subprocess.run([gptoss_bin, "synth", ck, "-q"] + how, capture_output=True, text=True, env=env)
    return f"synth: {r.stderr.strip()}" if r.returncode else None
