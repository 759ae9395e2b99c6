#!/usr/bin/python3
"""Text in, text out through `run` and `parity` (issue 12), checked against tiktoken (npm, WASM),
never against our own tokenizer:
  - a small synthetic model with the full 201,088-token vocabulary (synth --vocab 201088);
  - `run --chat "What is 2 + 2?"`: the trace's input ids are openai-harmony's rendering
    (docs/clients.md), and `--reasoning`/`--system` change them as harmony does;
  - `run --prompt TEXT`: the trace's input ids = tiktoken's encode_ordinary(TEXT), for texts with
    accents, CJK, emoji, a typed "<|end|>" (stays text) and whitespace runs;
  - the printed text = tiktoken's decode of the ids `--print-ids` prints for the same run;
  - generation stops at <|return|> / <|call|>: a model whose unembedding can only pick one of
    them stops after one token, printed as the special's name, and its trace holds the prompt;
  - errors: no tokenizer found (exit 1, every place named), a vocabulary smaller than the
    tokenizer's ids (exit 2), --system without --chat (exit 2).
  - parity on a text prompt: the summary shows the prompt as text and the tokens around a
    mismatch (a candidate trace altered at one position);
  - a real client: the export of that model carries tokenizer.json and tokenizer_config.json
    (harmony chat template) made from the vocabulary, and transformers.js's text-generation
    pipeline on a chat produces the same text as `gptoss-mpi run --chat` (its template gives
    the same prompt ids as ours).
usage: text_test.py GPTOSS_BIN WORK      (env: TOK_DEPS, TOK_RANKS, TJS_DIR)"""
import json
import os
import shutil
import struct
import subprocess
import sys

import h5py

BIN, WORK = sys.argv[1:3]
DEPS, RANKS = os.environ["TOK_DEPS"], os.environ["TOK_RANKS"]
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAILS = []
HARMONY_2P2 = ("200006,17360,200008,3575,553,17554,162016,11,261,4410,6439,2359,22203,656,7788,17527,558,"
               "87447,100594,25,220,1323,19,12,3218,279,30377,289,25,14093,279,2,13888,18403,25,8450,11,"
               "49159,11,1721,13,21030,2804,413,7360,395,1753,3176,13,200007,200006,1428,200008,4827,382,"
               "220,17,659,220,17,30,200007,200006,173781")


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n      {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        FAILS.append(what)


def run(args, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def tiktoken(mode, arg):
    rc, out, err = run(["node", os.path.join(HERE, "text_tiktoken.cjs"), mode, arg])
    if rc != 0:
        raise SystemExit(f"tiktoken ({mode}) failed: {err}")
    return out


def trace_ids(path):
    with h5py.File(path, "r") as f:
        return ",".join(str(int(x)) for x in f["input_ids"][()])


if not os.path.isfile(RANKS):
    print(f"FAIL: {RANKS} is missing: run scripts/setup.sh --test")
    sys.exit(1)
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
ck = os.path.join(WORK, "ck")
rc, _, err = run([BIN, "synth", ck, "--preset", "tiny", "--vocab", "201088", "--seed", "11", "-q"])
check("synth --vocab 201088", rc == 0, err)
shutil.copy(RANKS, os.path.join(ck, "o200k_base.tiktoken"))  # found beside the checkpoint
T = os.path.join(WORK, "t.h5")

# the harmony chat rendering, as ids the model reads
rc, out, err = run([BIN, "run", ck, "-q", "--chat", "What is 2 + 2?", "--max-tokens", "1", "--trace", T])
check("run --chat", rc == 0, err[-500:])
check("--chat 'What is 2 + 2?': the model reads openai-harmony's ids", rc == 0 and trace_ids(T) == HARMONY_2P2,
      trace_ids(T) if rc == 0 else "")
os.unlink(T) if os.path.exists(T) else None
rc, out, err = run([BIN, "run", ck, "-q", "--chat", "What is 2 + 2?", "--reasoning", "high", "--system",
                    "Answer in French.", "--max-tokens", "1", "--trace", T])
if rc == 0:
    ids = trace_ids(T).split(",")
    want_sys = tiktoken("encode", "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: "
                        "2024-06\n\nReasoning: high\n\n# Valid channels: analysis, commentary, final. Channel "
                        "must be included for every message.")
    want_dev = tiktoken("encode", "# Instructions\n\nAnswer in French.")
    want = (["200006"] + tiktoken("encode", "system").split(",") + ["200008"] + want_sys.split(",") + ["200007"] +
            ["200006"] + tiktoken("encode", "developer").split(",") + ["200008"] + want_dev.split(",") + ["200007"] +
            ["200006"] + tiktoken("encode", "user").split(",") + ["200008"] +
            tiktoken("encode", "What is 2 + 2?").split(",") + ["200007", "200006"] +
            tiktoken("encode", "assistant").split(","))
    check("--reasoning high --system: harmony's system, developer and user messages", ids == want,
          f"{','.join(ids)}\nwant {','.join(want)}")
else:
    check("run --chat --reasoning --system", False, err[-500:])

# ordinary text
for text in ("Hello, world! The quick brown fox.", "naïve café, déjà vu — ΑΒΓ абв 東京 😀👍🏽", "typed <|end|> stays text",
             "  spaces\t\ttabs\n\n\r\nlines   ", "1234567890 12,345.678"):
    if os.path.exists(T):
        os.unlink(T)
    rc, out, err = run([BIN, "run", ck, "-q", "--prompt", text, "--max-tokens", "6", "--trace", T])
    check(f"run --prompt {text!r}", rc == 0, err[-500:])
    if rc != 0:
        continue
    want = tiktoken("encode", text)
    got = ",".join(trace_ids(T).split(",")[:len(want.split(","))])  # the prompt, then generated ids
    check(f"{text!r}: input ids = tiktoken's", got == want, f"{got} vs {want}")
    rc2, ids, err2 = run([BIN, "run", ck, "-q", "--prompt", text, "--max-tokens", "6", "--print-ids"])
    gen = ids.strip()
    if all(int(x) < 199998 for x in gen.split(",")):
        check(f"{text!r}: printed text = tiktoken's decode of the printed ids",
              out == tiktoken("decode", gen) + "\n", f"{out!r} vs {tiktoken('decode', gen)!r}")

# a model that can only answer with a stop token: rows 200002 = +v and 200012 = -v of the
# unembedding, every other row 0, so one of the two always has the largest logit
stop = os.path.join(WORK, "stop")
shutil.copytree(ck, stop)
st = os.path.join(stop, "model.safetensors")
raw = bytearray(open(st, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
a, b = h["unembedding.weight"]["data_offsets"]
D = h["unembedding.weight"]["shape"][1]
base = 8 + n + a
raw[base:8 + n + b] = bytes(b - a)
one, minus = struct.pack("<H", 0x3f80), struct.pack("<H", 0xbf80)
for row, val in ((200002, one), (200012, minus)):
    off = base + row * D * 2
    raw[off:off + 2 * D] = val * D
open(st, "wb").write(raw)
if os.path.exists(T):
    os.unlink(T)
rc, out, err = run([BIN, "run", stop, "-q", "--chat", "Hi", "--max-tokens", "10", "--trace", T])
check("stop model: run", rc == 0, err[-500:])
check("generation stops at <|return|> or <|call|>, printed by name", out in ("<|return|>\n", "<|call|>\n"), repr(out))
if rc == 0:
    with h5py.File(T, "r") as f:
        npos = len(f["input_ids"])
    want = len(tiktoken("encode", "Hi").split(",")) + len(HARMONY_2P2.split(",")) - \
        len(tiktoken("encode", "What is 2 + 2?").split(","))
    check("the trace holds the prompt only (no position after the stop)", npos == want, f"{npos} vs {want}")
rc, out, err = run([BIN, "run", stop, "-q", "--prompt-ids", "1,2,3", "--max-tokens", "3"])
check("an id prompt generates all --max-tokens (no stop rule)", rc == 0 and len(out.strip().split(",")) == 3, out)

# parity: the prompt and the tokens around a mismatch, as text
ref_t = os.path.join(WORK, "chat.h5")
rc, _, err = run([BIN, "run", ck, "-q", "--chat", "Why is the sky blue?", "--max-tokens", "3", "--trace", ref_t])
check("run --chat --trace for parity", rc == 0, err[-400:])
bad_t = os.path.join(WORK, "chat-bad.h5")
shutil.copy(ref_t, bad_t)
with h5py.File(bad_t, "r+") as f:
    ids = f["input_ids"][()]
    pos = int(len(ids) - 6)                       # a position inside the user's message
    ti = f["layers/1/topk_indices"]
    row = ti[pos].copy()
    E = f["layers/1/router_logits"].shape[1]
    row[0] = [e for e in range(E) if e not in row][0]
    ti[pos] = row
summ = os.path.join(WORK, "s.md")
rc, _, err = run(["mpirun", "-np", "2", BIN, "parity", ck, "--chat", "Why is the sky blue?", "--max-tokens", "3",
                  "--candidate", bad_t, "--report", os.path.join(WORK, "s.h5"), "--summary", summ])
check("parity with an altered candidate: exit 3", rc == 3, err[-600:])
md = open(summ).read() if os.path.exists(summ) else ""
check("the summary shows the prompt as text", "You are ChatGPT, a large language model trained by OpenAI." in md and
      "Why is the sky blue?" in md, md[:800])
want = tiktoken("decode", str(int(ids[pos])))
rows = [l for l in md.splitlines() if l.startswith("| 1 | %d |" % pos)]
check("the mismatch row shows the text around it, the token marked", len(rows) == 1 and f"[[{want}]]" in rows[0],
      f"{rows} (token {want!r})")

# a real client: transformers.js's pipeline on a chat = run --chat
TJS = os.environ.get("TJS_DIR", "")
onnx = os.path.join(WORK, "onnx")
rc, _, err = run(["mpirun", "-np", "2", BIN, "export", ck, "--output", onnx, "-q"])
check("export of the full-vocabulary model", rc == 0, err[-500:])
check("the export carries tokenizer.json and tokenizer_config.json made from the ranks file",
      all(os.path.exists(os.path.join(onnx, f)) for f in ("tokenizer.json", "tokenizer_config.json")) and
      "chat_template" in open(os.path.join(onnx, "tokenizer_config.json")).read(), str(os.listdir(onnx)))
msg = "What is 2 + 2?"
N = 8
pb = subprocess.run([BIN, "run", ck, "-q", "--chat", msg, "--max-tokens", str(N)], capture_output=True, env=ENV,
                    timeout=300)  # bytes: text mode would turn the model's \r\n into \n
rc, ours, err = pb.returncode, pb.stdout.decode("utf-8"), pb.stderr.decode("utf-8", "replace")
rc2, ours_ids, err2 = run([BIN, "run", ck, "-q", "--chat", msg, "--max-tokens", str(N), "--print-ids"])
check("run --chat for the client comparison", rc == 0 and rc2 == 0, err[-300:] + err2[-300:])
p = subprocess.run(["node", os.path.join(HERE, "tjs_chat.mjs"), TJS, onnx, str(N), msg], capture_output=True,
                   text=True, env=ENV, timeout=600)
check("transformers.js pipeline('text-generation') on the chat", p.returncode == 0, p.stderr[-800:])
if p.returncode == 0:
    got = json.loads(p.stdout.strip().splitlines()[-1])
    check("its chat template and tokenizer give harmony's prompt ids", ",".join(map(str, got["prompt_ids"])) == HARMONY_2P2,
          ",".join(map(str, got["prompt_ids"])))
    gen_ids = [int(x) for x in ours_ids.strip().split(",")]
    # the pipeline decodes with the special tokens skipped; ours names them: compare on
    # ordinary tokens, which a random model almost always generates
    plain = all(i < 199998 for i in gen_ids)
    check("the generated ids are ordinary tokens (else this seed proves less)", plain, str(gen_ids))
    check("transformers.js generates the same text as gptoss-mpi run --chat", got["text"] == ours.rstrip("\n"),
          f"{got['text']!r} vs {ours.rstrip(chr(10))!r}")

# errors
bare = os.path.join(WORK, "bare")
shutil.copytree(ck, bare)
os.unlink(os.path.join(bare, "o200k_base.tiktoken"))
env = dict(ENV)
env.pop("TIKTOKEN_ENCODINGS_BASE", None)
p = subprocess.run([BIN, "run", bare, "--prompt", "hi"], capture_output=True, text=True, env=env)
errs = [l for l in p.stderr.splitlines() if "error:" in l]
check("no tokenizer: exit 1, one line naming the places looked at",
      p.returncode == 1 and len(errs) == 1 and "tokenizer.json" in errs[0] and "o200k_base.tiktoken" in errs[0], p.stderr)
small = os.path.join(WORK, "small")
rc, _, err = run([BIN, "synth", small, "--preset", "tiny", "-q"])
rc, out, err = run([BIN, "run", small, "--prompt", "Hello", "--tokenizer", RANKS])
check("vocabulary smaller than the tokenizer's ids: exit 2", rc == 2 and "beyond the checkpoint's vocabulary" in err, err)
rc, out, err = run([BIN, "run", ck, "--prompt", "Hello", "--system", "x"])
check("--system without --chat: exit 2", rc == 2 and "--system" in err, err)

if not FAILS:
    shutil.rmtree(WORK, ignore_errors=True)
print(f"text_test: {len(FAILS)} failed")
sys.exit(1 if FAILS else 0)
