"""`gptoss-mpi run --trace` on configurations unlike golden case-a, against the independent
numpy reference tests/ref_forward.py: every traced tensor within 1e-4 x max|ref|, identical
top-k sets per token, all values finite. Decode steps are included (--max-tokens 4), so the
trace's later positions come from the KV-cache path while the reference recomputes all.

usage: test_model_ref.py GPTOSS_BIN WORKDIR
Checkpoints come from `gptoss-mpi synth` (other expert counts, odd layer counts, the Hugging
Face layout) and from small writers below (other heads, kv heads, head_dim, top-k, vocab 1001,
sliding_window 0, no YaRN, another swiglu limit). Exits 1 on any failure, printing the worst
error and the tolerance.
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_forward  # noqa: E402
from synth_ckpt import config, write_checkpoint  # noqa: E402

TOL = 1e-4
BIN, WORK = sys.argv[1], sys.argv[2]


CASES = [
    # name, how, arg
    ("synth-e8-l3", "synth", ["--preset", "tiny", "--experts", "8", "--layers", "3", "--seed", "5"]),
    ("synth-hf-l2", "synth", ["--preset", "tiny", "--layers", "2", "--seed", "9", "--layout", "hf"]),
    ("e5k2-h6kv3-d8-v1001-nowin-noyarn", "write",
     config(num_experts=5, experts_per_token=2, num_attention_heads=6, num_key_value_heads=3, head_dim=8,
            hidden_size=32, intermediate_size=64, vocab_size=1001, sliding_window=0, rope_scaling_factor=1.0,
            swiglu_limit=3.0, num_hidden_layers=3)),
    ("e7k3-h4kv1-d32-v777-win3-l5", "write",
     config(num_experts=7, experts_per_token=3, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
            hidden_size=96, intermediate_size=32, vocab_size=777, sliding_window=3, rope_theta=10000,
            rope_scaling_factor=8.0, num_hidden_layers=5)),
    ("e3k3-h2kv2-d16-win1", "write",
     config(num_experts=3, experts_per_token=3, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
            hidden_size=32, intermediate_size=32, vocab_size=300, sliding_window=1, num_hidden_layers=2)),
]


def compare(tag, tr, ref, n_layers):
    fails, worst = [], 0.0

    def rel(name, a, b):
        nonlocal worst
        if not np.all(np.isfinite(a)):
            fails.append(f"{tag} {name}: non-finite values")
            return
        r = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
        worst = max(worst, r)
        if not r <= TOL:
            fails.append(f"{tag} {name}: relative error {r:.3e} above tolerance {TOL:.0e}")

    rel("embedding_out", tr["embedding_out"][:], ref["embedding_out"])
    for n in range(n_layers):
        g, rc = tr[f"layers/{n}"], ref["layers"][n]
        ia, ib = g["topk_indices"][:], rc["topk_indices"]
        bad = sum(set(x) != set(y) for x, y in zip(ia, ib))
        if bad:
            fails.append(f"{tag} layers/{n}: {bad} tokens route to a different expert set")
            continue
        perm = np.array([[list(ra).index(e) for e in rb] for ra, rb in zip(ia, ib)])
        for name in ("attn_norm_out", "qkv_out", "sdpa_out", "hidden_after_attn", "mlp_norm_out",
                     "router_logits", "hidden_after_mlp"):
            rel(f"layers/{n}/{name}", g[name][:], rc[name])
        for name in ("topk_values", "topk_weights", "mlp1_out", "swiglu_out"):
            a = g[name][:]
            a = np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=1)
            rel(f"layers/{n}/{name}", a, rc[name])
    rel("final_norm_out", tr["final_norm_out"][:], ref["final_norm_out"])
    rel("logits", tr["logits"][:], ref["logits"])
    return worst, fails


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    all_fails = []
    for name, how, arg in CASES:
        d = os.path.join(WORK, name)
        if how == "synth":
            r = subprocess.run([BIN, "synth", d, "-q"] + arg, capture_output=True, text=True)
            if r.returncode != 0:
                all_fails.append(f"{name}: synth failed: {r.stderr.strip()}")
                continue
        else:
            write_checkpoint(d, arg, seed=len(name))
        ck = ref_forward.Checkpoint(d)
        V = ck.cfg["vocab_size"]
        prompt = [int(x) for x in np.random.default_rng(7).integers(0, V, 11)]
        tpath = os.path.join(WORK, name + ".h5")
        r = subprocess.run([BIN, "run", d, "-q", "--prompt-ids", ",".join(map(str, prompt)),
                            "--max-tokens", "4", "--trace", tpath], capture_output=True, text=True)
        if r.returncode != 0:
            all_fails.append(f"{name}: run failed (exit {r.returncode}): {r.stderr.strip()}")
            continue
        tr = h5py.File(tpath, "r")
        ids = [int(x) for x in tr["input_ids"][:]]
        gen = [int(x) for x in r.stdout.strip().split(",")]
        if ids[:11] != prompt or ids[11:] != gen[:3]:
            all_fails.append(f"{name}: trace input_ids are not prompt + generated ids")
        L = ck.cfg["num_hidden_layers"]
        ref = ref_forward.forward(ck, ids)
        worst, fails = compare(name, tr, ref, L)
        # the reference's routing margin, to tell a near-tie from a bug if sets differ
        margin = min(float(np.min(np.sort(c["router_logits"], axis=1)[:, ::-1][:, ck.cfg["experts_per_token"] - 1]
                                  - np.sort(c["router_logits"], axis=1)[:, ::-1][:, ck.cfg["experts_per_token"]]))
                     if ck.cfg["experts_per_token"] < ck.cfg["num_experts"] else float("inf")
                     for c in ref["layers"])
        print(f"{name:36s} T={len(ids)} L={L}: worst relative error {worst:.3e} (tolerance {TOL:.0e}); "
              f"min router margin {margin:.2e}; {'FAIL' if fails else 'ok'}")
        all_fails += fails
    for f in all_fails:
        print("FAIL", f)
    if not all_fails:
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(1 if all_fails else 0)


main()
