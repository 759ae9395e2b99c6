"""An independent GPT-OSS forward pass in numpy (float64), written from docs/gpt-oss-spec.md
sections 2-8 for checking the C implementation on configurations other than golden case-a.

It reads a checkpoint directory (original layout or the Hugging Face layout, spec section 11)
with plain numpy, dequantizes MXFP4 per spec section 4 and runs the whole prompt at once with
positions 0..T-1 (no KV cache). forward() returns a dict with the golden's tensor names.
Test-side only: the product never calls Python.
"""
import glob
import json
import math
import os
import struct

import numpy as np

FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def read_safetensors(path):
    """name -> numpy array (BF16 -> float64, U8 -> uint8)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        elif info["dtype"] == "U8":
            arr = np.frombuffer(raw, dtype=np.uint8)
        else:
            raise ValueError(f"{path}: {name}: unexpected dtype {info['dtype']}")
        out[name] = arr.reshape(info["shape"])
    return out


HF_NAMES = {
    "embedding.weight": "model.embed_tokens.weight",
    "unembedding.weight": "lm_head.weight",
    "norm.scale": "model.norm.weight",
}
HF_LAYER = {
    "attn.norm.scale": "input_layernorm.weight",
    "attn.sinks": "self_attn.sinks",
    "attn.out.weight": "self_attn.o_proj.weight",
    "attn.out.bias": "self_attn.o_proj.bias",
    "mlp.norm.scale": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.router.weight",
    "mlp.gate.bias": "mlp.router.bias",
    "mlp.mlp1_weight.blocks": "mlp.experts.gate_up_proj_blocks",
    "mlp.mlp1_weight.scales": "mlp.experts.gate_up_proj_scales",
    "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
    "mlp.mlp2_weight.blocks": "mlp.experts.down_proj_blocks",
    "mlp.mlp2_weight.scales": "mlp.experts.down_proj_scales",
    "mlp.mlp2_bias": "mlp.experts.down_proj_bias",
}


class Checkpoint:
    def __init__(self, d):
        files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
        if not files and os.path.isdir(os.path.join(d, "original")):
            d = os.path.join(d, "original")
            files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
        self.t = {}
        for f in files:
            self.t.update(read_safetensors(f))
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.hf = "model.embed_tokens.weight" in self.t
        if self.hf:
            rs = cfg["rope_scaling"]
            cfg = dict(
                num_hidden_layers=cfg["num_hidden_layers"], num_experts=cfg["num_local_experts"],
                experts_per_token=cfg["num_experts_per_tok"], vocab_size=cfg["vocab_size"],
                hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
                swiglu_limit=cfg["swiglu_limit"], head_dim=cfg["head_dim"],
                num_attention_heads=cfg["num_attention_heads"],
                num_key_value_heads=cfg["num_key_value_heads"],
                sliding_window=cfg["sliding_window"],
                initial_context_length=rs["original_max_position_embeddings"],
                rope_theta=cfg["rope_theta"], rope_scaling_factor=rs["factor"],
                rope_ntk_alpha=rs["beta_slow"], rope_ntk_beta=rs["beta_fast"])
        self.cfg = cfg

    def get(self, name):
        if not self.hf:
            return self.t[name]
        if name in HF_NAMES:
            return self.t[HF_NAMES[name]]
        _, n, rest = name.split(".", 2)
        p = f"model.layers.{n}."
        if rest in ("attn.qkv.weight", "attn.qkv.bias"):
            s = rest.split(".")[-1]
            return np.concatenate([self.t[p + f"self_attn.{x}_proj.{s}"] for x in "qkv"], axis=0)
        return self.t[p + HF_LAYER[rest]]


def mxfp4(blocks, scales):
    """blocks [E, R, G, 16] u8, scales [E, R, G] u8 -> W [E, R, G*32] (spec section 4)."""
    lo = FP4[blocks & 0x0F]
    hi = FP4[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(blocks.shape[:-1] + (32,))  # low nibble first
    vals = vals * np.ldexp(1.0, scales.astype(np.int64) - 127)[..., None]
    return vals.reshape(blocks.shape[0], blocks.shape[1], -1)


def rmsnorm(x, scale):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * scale


def rope_tables(c, T):
    d = c["head_dim"]
    d2 = d // 2
    theta, s = float(c["rope_theta"]), float(c["rope_scaling_factor"])
    freq = theta ** (np.arange(d2) * 2.0 / d)
    if s > 1.0:
        conc = 0.1 * math.log(s) + 1.0
        L = c["initial_context_length"]
        low = d2 * math.log(L / (c["rope_ntk_beta"] * 2 * math.pi)) / math.log(theta)
        high = d2 * math.log(L / (c["rope_ntk_alpha"] * 2 * math.pi)) / math.log(theta)
        assert 0 < low < high < d2 - 1
        r = np.clip((np.arange(d2) - low) / (high - low), 0.0, 1.0)
        inv = (1.0 / freq) * (1.0 - r) + (1.0 / (s * freq)) * r
    else:
        conc, inv = 1.0, 1.0 / freq
    ang = np.arange(T)[:, None] * inv[None, :]
    return np.cos(ang) * conc, np.sin(ang) * conc


def rotate(x, cos, sin):
    """x [T, heads, d]; half-split rotation."""
    d2 = x.shape[-1] // 2
    x1, x2 = x[..., :d2], x[..., d2:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def forward(ck, ids, n_layers=None):
    c = ck.cfg
    L = c["num_hidden_layers"] if n_layers is None else n_layers
    T = len(ids)
    nh, nkv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    E, k, I = c["num_experts"], c["experts_per_token"], c["intermediate_size"]
    G = nh // nkv
    lim = float(c["swiglu_limit"])
    out = {"layers": []}
    x = ck.get("embedding.weight")[np.asarray(ids)]
    out["embedding_out"] = x.copy()
    cos, sin = rope_tables(c, T)
    for n in range(L):
        p = f"block.{n}."
        cap = {}
        # attention (spec 6)
        t = rmsnorm(x, ck.get(p + "attn.norm.scale"))
        cap["attn_norm_out"] = t
        qkv = t @ ck.get(p + "attn.qkv.weight").T + ck.get(p + "attn.qkv.bias")
        cap["qkv_out"] = qkv
        q = qkv[:, :nh * d].reshape(T, nh, d)
        kk = qkv[:, nh * d:(nh + nkv) * d].reshape(T, nkv, d)
        v = qkv[:, (nh + nkv) * d:].reshape(T, nkv, d)
        q, kk = rotate(q, cos, sin), rotate(kk, cos, sin)
        sinks = ck.get(p + "attn.sinks")
        W = c["sliding_window"] if (n % 2 == 0 and c["sliding_window"] > 0) else 0
        i_idx, j_idx = np.arange(T)[:, None], np.arange(T)[None, :]
        visible = j_idx <= i_idx
        if W:
            visible &= j_idx > i_idx - W
        att = np.zeros((T, nh, d))
        for h in range(nh):
            g = h // G
            sc = (q[:, h, :] @ kk[:, g, :].T) / math.sqrt(d)
            sc = np.where(visible, sc, -np.inf)
            m = np.maximum(sc.max(axis=1), sinks[h])
            e = np.exp(sc - m[:, None])
            z = e.sum(axis=1) + np.exp(sinks[h] - m)
            att[:, h, :] = (e / z[:, None]) @ v[:, g, :]
        a = att.reshape(T, nh * d)
        cap["sdpa_out"] = a
        x = x + a @ ck.get(p + "attn.out.weight").T + ck.get(p + "attn.out.bias")
        cap["hidden_after_attn"] = x.copy()
        # MoE (spec 7)
        t = rmsnorm(x, ck.get(p + "mlp.norm.scale"))
        cap["mlp_norm_out"] = t
        g_log = t @ ck.get(p + "mlp.gate.weight").T + ck.get(p + "mlp.gate.bias")
        cap["router_logits"] = g_log
        sel = np.array([sorted(range(E), key=lambda e: (-row[e], e))[:k] for row in g_log])
        vals = np.take_along_axis(g_log, sel, axis=1)
        w = np.exp(vals - vals.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        cap["topk_indices"], cap["topk_values"], cap["topk_weights"] = sel, vals, w
        W1 = mxfp4(ck.get(p + "mlp.mlp1_weight.blocks"), ck.get(p + "mlp.mlp1_weight.scales"))
        W2 = mxfp4(ck.get(p + "mlp.mlp2_weight.blocks"), ck.get(p + "mlp.mlp2_weight.scales"))
        b1, b2 = ck.get(p + "mlp.mlp1_bias"), ck.get(p + "mlp.mlp2_bias")
        mlp1 = np.zeros((T, k, 2 * I))
        sw = np.zeros((T, k, I))
        moe = np.zeros_like(x)
        for ti in range(T):
            for j in range(k):
                e = sel[ti, j]
                h1 = W1[e] @ t[ti] + b1[e]
                glu = np.minimum(h1[0::2], lim)
                lin = np.clip(h1[1::2], -lim, lim)
                u = glu / (1.0 + np.exp(-1.702 * glu)) * (lin + 1.0)
                mlp1[ti, j], sw[ti, j] = h1, u
                moe[ti] += w[ti, j] * (W2[e] @ u + b2[e])
        cap["mlp1_out"], cap["swiglu_out"] = mlp1, sw
        x = x + moe
        cap["hidden_after_mlp"] = x.copy()
        out["layers"].append(cap)
    x = rmsnorm(x, ck.get("norm.scale"))
    out["final_norm_out"] = x
    out["logits"] = x @ ck.get("unembedding.weight").T
    return out
