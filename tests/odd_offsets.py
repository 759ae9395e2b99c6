#!/usr/bin/python3
"""A checkpoint whose data section starts at an odd byte offset (safetensors allows any header
length), so that every bf16 tensor sits at an odd address of the file mapping: every reader must
load bf16 values without assuming alignment (the sanitizer build's UBSan aborts on a misaligned
uint16_t load). Checked against the official reference, not against our own code:
  - `inspect` validates it;
  - `run --trace` on the golden prompt matches golden.h5:/fp32 (tests/model_trace_check.py);
  - `export` on 2 ranks, bf16 and fp32 dense storage, runs in ONNX Runtime within the golden's
    tolerance (tests/test_export_ort.c), and its bytes equal the export of the original case-a.
usage: odd_offsets.py GPTOSS_BIN TEST_EXPORT_ORT WORK     (env: GOLDEN)"""
import filecmp
import os
import shutil
import struct
import subprocess
import sys

import h5py

BIN, CHECK, WORK = sys.argv[1:4]
GOLDEN = os.environ["GOLDEN"]
HERE = os.path.dirname(os.path.abspath(__file__))
G5 = os.path.join(GOLDEN, "golden.h5")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAILS = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f" ({detail})" if detail and not ok else ""), flush=True)
    if not ok:
        FAILS.append(what)


def run(args, timeout=600):
    p = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
ck = os.path.join(WORK, "odd")
shutil.copytree(os.path.join(GOLDEN, "original"), ck)
st = os.path.join(ck, "model.safetensors")
raw = open(st, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = raw[8:8 + n].rstrip(b" ")
if (8 + len(hdr)) % 2 == 0:
    hdr += b" "                   # right-padding with spaces is allowed; now 8 + N is odd
open(st, "wb").write(struct.pack("<Q", len(hdr)) + hdr + raw[8 + n:])
check("the data section starts at an odd offset", (8 + len(hdr)) % 2 == 1, str(8 + len(hdr)))

rc, out, err = run([BIN, "inspect", ck])
check("inspect accepts it", rc == 0, err[-500:])

with h5py.File(G5, "r") as g:
    ids = ",".join(str(int(x)) for x in g["input_ids"][()])
trace = os.path.join(WORK, "t.h5")
rc, out, err = run([BIN, "run", ck, "-q", "--prompt-ids", ids, "--max-tokens", "1", "--trace", trace])
check("run --trace", rc == 0, err[-500:])
if rc == 0:
    r = subprocess.run([sys.executable, os.path.join(HERE, "model_trace_check.py"), G5, "fp32", trace, "1e-5"],
                       capture_output=True, text=True)
    print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr)
    check("the trace matches golden.h5:/fp32 within 1e-5", r.returncode == 0, r.stdout[-800:])

for extra in ([], ["--dense", "fp32", "--weights", "fp32"]):
    tag = "".join(extra).replace("-", "") or "default"
    out_odd, out_ref = os.path.join(WORK, f"odd-{tag}"), os.path.join(WORK, f"ref-{tag}")
    for src, out in ((ck, out_odd), (GOLDEN, out_ref)):
        rc, _, err = run(["mpirun", "-np", "2", BIN, "export", src, "--output", out, "-q",
                          "--expose", "routing,hidden", *extra])
        check(f"export ({tag}) of {os.path.basename(src)} on 2 ranks", rc == 0, err[-500:])
    if os.path.isdir(out_odd):
        rc, o, err = run([CHECK, os.path.join(out_odd, "onnx", "model.onnx"), G5, "/fp32"])
        print(" ".join(o.split())[:400])
        check(f"export ({tag}) in ONNX Runtime matches the golden", rc == 0, (o + err)[-800:])
    if os.path.isdir(out_odd) and os.path.isdir(out_ref):
        def files(top):
            return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs)
        same = files(out_odd) == files(out_ref) and all(
            filecmp.cmp(os.path.join(out_odd, f), os.path.join(out_ref, f), shallow=False) for f in files(out_ref))
        check(f"export ({tag}): bytes identical to the aligned checkpoint's export", same,
              f"{files(out_odd)} vs {files(out_ref)}")

if not FAILS:
    shutil.rmtree(WORK, ignore_errors=True)
print(f"odd_offsets: {len(FAILS)} failed")
sys.exit(1 if FAILS else 0)
