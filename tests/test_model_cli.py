"""`gptoss-mpi run` end to end on golden/case-a: traces vs the golden (names, shapes, dtypes,
values; tests/model_trace_check.py), generation output, --prompt-file, usage and runtime errors
(exit codes, one error line, no trace file or temporary left behind).

usage: test_model_cli.py GPTOSS_BIN     (env: GOLDEN, TMPDIR_BASE)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BIN = sys.argv[1]
GOLDEN = os.environ["GOLDEN"]
HERE = os.path.dirname(os.path.abspath(__file__))
CK = os.path.join(GOLDEN, "original")
G5 = os.path.join(GOLDEN, "golden.h5")
W = tempfile.mkdtemp(prefix="model-cli.", dir=os.environ.get("TMPDIR_BASE", "/tmp"))
IDS = ",".join(str(x) for x in h5py.File(G5, "r")["input_ids"][:])
fails = []


def run(*args):
    return subprocess.run([BIN, "run", *args], capture_output=True, text=True)


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f" ({detail})" if detail and not ok else ""))
    if not ok:
        fails.append(what)


def trace_check(group, path, tol, *extra):
    r = subprocess.run([sys.executable, os.path.join(HERE, "model_trace_check.py"), G5, group, path, str(tol), *extra],
                       capture_output=True, text=True)
    print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr)
    return r.returncode == 0, r.stdout[-2000:]


# fp32 and bf16 traces vs the golden
for prec, tol in (("fp32", 1e-5), ("bf16", 1e-2)):
    t = os.path.join(W, prec + ".h5")
    r = run(CK, "-q", "--prompt-ids", IDS, "--max-tokens", "1", "--precision", prec, "--trace", t)
    check(f"{prec} run exits 0", r.returncode == 0, r.stderr)
    check(f"{prec}: -q prints nothing on stderr", r.stderr == "", r.stderr)
    ok, out = trace_check(prec, t, tol)
    check(f"{prec} trace matches golden /{prec}", ok, out)

# generation with --max-layers: 5 ids, trace of prompt + 4 positions, 2 layers
t = os.path.join(W, "gen.h5")
r = run(CK, "--prompt-ids", IDS, "--max-tokens", "5", "--max-layers", "2", "--trace", t)
check("generation exits 0", r.returncode == 0, r.stderr)
check("5 comma-separated ids on stdout", re.fullmatch(r"\d+(,\d+){4}\n", r.stdout) is not None, r.stdout)
check("banners and timing on stderr", "prefill" in r.stderr and "tok/s" in r.stderr, r.stderr)
if r.returncode == 0:
    f = h5py.File(t, "r")
    check("trace has 28 positions and 2 layers", f["logits"].shape == (28, 512) and sorted(f["layers"]) == ["0", "1"])
    ids = [int(x) for x in r.stdout.split(",")]
    x = f["input_ids"][:]
    check("trace input_ids = prompt + first 4 generated; 5th = argmax of the last row",
          list(x[24:]) == ids[:4] and int(np.argmax(f["logits"][27])) == ids[4])
    ok, out = trace_check("fp32", t, 1e-5, "--layers", "2")
    check("first 24 positions of layers 0-1 match the golden", ok, out)

# --prompt-file gives the same run as --prompt-ids
pf = os.path.join(W, "ids.txt")
with open(pf, "w") as fh:
    fh.write(IDS.replace(",", " \n"))
a = run(CK, "-q", "--prompt-ids", IDS, "--max-tokens", "3")
b = run(CK, "-q", "--prompt-file", pf, "--max-tokens", "3")
check("--prompt-file = --prompt-ids", a.returncode == 0 and a.stdout == b.stdout and a.stdout != "")
os.unlink(pf)

# errors: exit code, one error line naming the problem, no trace file
bad = os.path.join(W, "bad.h5")
cases = [
    ("id out of vocab", [CK, "--prompt-ids", "1,512,3", "--trace", bad], 2, "512"),
    ("missing checkpoint", [os.path.join(W, "no-such-ckpt"), "--prompt-ids", "1,2,3", "--trace", bad], 1, "no-such-ckpt"),
    ("unwritable trace", [CK, "--prompt-ids", "1,2,3", "--trace", os.path.join(W, "missing-dir", "t.h5")], 1, "missing-dir"),
    ("--max-layers beyond the checkpoint", [CK, "--prompt-ids", "1,2", "--max-layers", "9", "--trace", bad], 2, "max-layers"),
    ("no prompt", [CK, "--trace", bad], 2, "prompt"),
]
for what, args, code, word in cases:
    r = run(*args)
    errs = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    check(f"{what} -> exit {code}", r.returncode == code, f"exit {r.returncode}: {r.stderr.strip()}")
    check(f"{what}: one error line naming '{word}'", len(errs) == 1 and word in errs[0], r.stderr.strip())
left = sorted(set(os.listdir(W)) - {"fp32.h5", "bf16.h5", "gen.h5"})
check("no trace file or temporary left after failures", left == [], str(left))

if not fails:
    shutil.rmtree(W, ignore_errors=True)
print(f"test_model_cli: {len(fails)} failed")
sys.exit(1 if fails else 0)
