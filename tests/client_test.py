#!/usr/bin/python3
"""A real client generates from our export (issue 11): transformers.js (@huggingface/transformers
4.3.2, installed by `scripts/setup.sh --test` under .deps/tjs; nobody here wrote it) loads the
export directory as it is, with remote models disabled, and greedy-generates with generate() from
prompt ids (tests/tjs_generate.mjs). Its ids must equal `gptoss-mpi run` on the same checkpoint:
  1. golden/case-a (window 8), a prompt of 24 ids, 16 new tokens;
  2. checkpoints of other shapes (E, K, heads, kv heads, head_dim, windows, no window, no YaRN,
     other RoPE constants, odd layer counts, one expert / head / layer; `synth --layout hf`),
     prompts longer than the window so that decode steps cross it;
  3. a left-padded batch of two prompts of different lengths: row by row what each generates
     alone (and what `run` generates).
With TARGET ort every export is `--target ort` (issue 13); a shape its contrib kernels cannot hold
(head_dim not a multiple of 8; hidden 32 with intermediate above 32) must be refused with exit 2
and is skipped.
Usage: client_test.py GPTOSS_BIN TJS_DIR WORK_DIR [TARGET]"""
import json
import os
import shutil
import subprocess
import sys
import time

from harness import ENV, check, counts, finish
from synth_ckpt import config, write_checkpoint

BIN, TJS, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
TARGET = sys.argv[4] if len(sys.argv) > 4 else "standard"
GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(__file__), "golden", "case-a"))
GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tjs_generate.mjs")
EOS = {200002, 199999, 200012}
PAD = 0
N_NEW = 16


def mpirun(np_, *args):
    return subprocess.run(["mpirun", "-np", str(np_), BIN, *args], env=ENV, capture_output=True,
                          text=True, timeout=600)


def run_ids(ck, prompt):
    r = mpirun(1, "run", ck, "--prompt-ids", ",".join(map(str, prompt)), "--max-tokens", str(N_NEW), "-q")
    if not check(r.returncode == 0, f"run {ck}: {r.stderr.strip()}"):
        return None
    return [int(x) for x in r.stdout.strip().split(",")]


def tjs(model, prompts):
    arg = ";".join(",".join(map(str, p)) for p in prompts)
    r = subprocess.run(["node", GEN, TJS, model, str(N_NEW), str(PAD), arg], capture_output=True,
                       text=True, timeout=600)
    if not check(r.returncode == 0, f"transformers.js on {model}: {r.stderr.strip()[-800:]}"):
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["rows"]


def same(got, want, tag):
    """got may stop early at a stop id (then padded); the rest must equal want."""
    n = len(got)
    while n > 0 and got[n - 1] == PAD and n - 1 > 0 and got[n - 2] in EOS:
        n -= 1
    ok = got[:n] == want[:n] and (n == len(want) or got[n - 1] in EOS)
    check(ok and n >= 12, f"{tag}: transformers.js {got} vs run {want}")
    return ok


def case(tag, ck, prompts, export_ranks=2):
    out = os.path.join(WORK, "ex-" + tag)
    r = mpirun(export_ranks, "export", ck, "--output", out, "--target", TARGET, "-q")
    cfg_path = [p for p in (os.path.join(ck, "config.json"), os.path.join(ck, "original", "config.json"))
                if os.path.isfile(p)][0]
    cfg = json.load(open(cfg_path))
    refused = cfg.get("head_dim", 64) % 8 != 0 or \
        (cfg.get("hidden_size") == 32 and cfg.get("intermediate_size") != 32)
    if TARGET == "ort" and refused:
        check(r.returncode == 2 and "--target ort: ONNX Runtime's" in r.stderr,
              f"{tag}: ort export: exit {r.returncode}")
        print(f"  {tag}: refused by the ort target as it must be: {r.stderr.strip()[:100]}", flush=True)
        return
    if not check(r.returncode == 0, f"{tag}: export: {r.stderr.strip()}"):
        return
    want = [run_ids(ck, p) for p in prompts]
    if None in want:
        return
    alone = [tjs(out, [p]) for p in prompts]
    for i, (a, w) in enumerate(zip(alone, want)):
        if a is not None:
            same(a[0], w, f"{tag} prompt {i} ({len(prompts[i])} ids) alone")
    if len(prompts) > 1:
        batch = tjs(out, prompts)
        if batch is not None:
            for i, w in enumerate(want):
                same(batch[i], w, f"{tag} prompt {i} in a left-padded batch of {len(prompts)}")
                if alone[i] is not None:
                    check(batch[i] == alone[i][0], f"{tag}: batch row {i} {batch[i]} != alone {alone[i][0]}")
    print(f"  {tag}: {len(prompts)} prompt(s) of {[len(p) for p in prompts]} ids: transformers.js "
          f"generated {N_NEW} tokens each = run {[w[:6] + ['...'] for w in want]}", flush=True)


def ids(n, mul, add, vocab):
    return [(i * mul + add) % vocab for i in range(n)]


CONFIGS = [
    # name, config, prompt lengths (the longer first: the shorter is left-padded in the batch)
    ("e5k2-h6kv3-d8-win4", config(num_experts=5, experts_per_token=2, num_attention_heads=6,
     num_key_value_heads=3, head_dim=8, hidden_size=32, intermediate_size=64, vocab_size=1001,
     sliding_window=4, swiglu_limit=3.0, num_hidden_layers=3), (11, 5)),
    ("e7k3-h4kv1-d32-win3-l5", config(num_experts=7, experts_per_token=3, num_attention_heads=4,
     num_key_value_heads=1, head_dim=32, hidden_size=96, intermediate_size=32, vocab_size=777,
     sliding_window=3, rope_theta=10000, rope_scaling_factor=8.0, num_hidden_layers=5), (9, 4)),
    ("e4k1-h2kv2-nowin-noyarn", config(num_experts=4, experts_per_token=1, num_attention_heads=2,
     num_key_value_heads=2, head_dim=16, hidden_size=64, intermediate_size=32, vocab_size=300,
     sliding_window=0, rope_scaling_factor=1.0, num_hidden_layers=2), (13, 7)),
    ("e16k4-h8kv2-win6-l4", config(num_experts=16, experts_per_token=4, num_attention_heads=8,
     num_key_value_heads=2, head_dim=16, hidden_size=64, intermediate_size=96, vocab_size=512,
     sliding_window=6, num_hidden_layers=4), (10, 3)),
    # edges: one expert, one head, a window of 1 (only the token itself), one layer, a prompt
    # of one id left-padded by 4; and many heads per kv head, head_dim 4, other RoPE constants
    ("e1k1-h1kv1-win1-l1", config(num_experts=1, experts_per_token=1, num_attention_heads=1,
     num_key_value_heads=1, head_dim=16, hidden_size=32, intermediate_size=32, vocab_size=97,
     sliding_window=1, num_hidden_layers=1), (5, 1)),
    ("e6k2-h12kv4-d4-win2-l6", config(num_experts=6, experts_per_token=2, num_attention_heads=12,
     num_key_value_heads=4, head_dim=4, hidden_size=32, intermediate_size=32, vocab_size=150,
     sliding_window=2, num_hidden_layers=6, rope_theta=500000, rope_scaling_factor=4.0,
     rope_ntk_alpha=2, rope_ntk_beta=16, initial_context_length=256), (6, 3)),
]


def main():
    mjs = os.path.join(TJS, "node_modules", "@huggingface", "transformers", "package.json")
    if not os.path.isfile(mjs):
        print(f"FAIL: transformers.js is not installed under {TJS}: run `scripts/setup.sh --test`")
        sys.exit(1)
    v = json.load(open(mjs))["version"]
    print(f"transformers.js {v} from {TJS}; export target {TARGET}", flush=True)
    check(v == "4.3.2", f"transformers.js version {v}, expected 4.3.2")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    t0 = time.time()
    golden_ids = [37, 297, 214, 493, 138, 380, 482, 81, 427, 136, 475, 118, 227, 308, 109, 126, 95,
                  133, 308, 285, 218, 214, 461, 224]
    case("case-a", GOLDEN, [golden_ids, golden_ids[5:16]], export_ranks=3)
    # the synth tool's Hugging Face layout (config.json in HF keys, q/k/v split tensors)
    hf = os.path.join(WORK, "ck-synth-hf")
    r = subprocess.run([BIN, "synth", hf, "--preset", "tiny", "--layers", "3", "--experts", "8",
                        "--seed", "5", "--layout", "hf", "-q"], capture_output=True, text=True, env=ENV)
    if check(r.returncode == 0, f"synth: {r.stderr.strip()}"):
        W = json.load(open(os.path.join(hf, "config.json")))["sliding_window"]
        case("synth-tiny-hf", hf, [ids(W + 5, 31, 7, 512), ids(W - 3, 17, 2, 512)])
    for k, (name, cfg, lens) in enumerate(CONFIGS):
        ck = os.path.join(WORK, "ck-" + name)
        write_checkpoint(ck, cfg, 11 + k)
        V, W = cfg["vocab_size"], cfg["sliding_window"]
        check(lens[0] > W, f"{name}: the prompt must be longer than the window")
        case(name, ck, [ids(lens[0], 37, 11 + k, V), ids(lens[1], 53, 5 + k, V)],
             export_ranks=min(2, cfg["num_experts"]))
    print(f"client_test: {time.time() - t0:.1f} s")
    if not counts["fails"]:
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(finish("client_test"))


main()
