#!/usr/bin/python3
"""Progress lines (one helper for every long phase, mpi/progress.h):
  - export on 3 ranks: the data lines count the bytes of every rank (", 3 ranks"), grow, and never
    pass the total; rank 0 alone writes less than the job, so its own count could not reach what
    the lines show;
  - synth: lines with --progress 0.001, none at all with --progress 0 (the lines are off);
  - -q: no progress lines anywhere.
usage: progress_test.py GPTOSS_BIN WORK     (env: GOLDEN)"""
import os
import re
import shutil
import subprocess
import sys

BIN, WORK = sys.argv[1:3]
GOLDEN = os.environ["GOLDEN"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAILS = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n      {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        FAILS.append(what)


def run(args, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
ck = os.path.join(GOLDEN, "original")

# export: the job's bytes
rc, out, err = run(["mpirun", "-np", "3", BIN, "export", ck, "--output", os.path.join(WORK, "onnx"),
                    "--progress", "0.000001", "--stages", "3"])
check("export on 3 ranks", rc == 0, err[-800:])
pat = re.compile(r"^data: ([\d.]+) of ([\d.]+) MiB \((\d+) %, 3 ranks\), [\d.]+ MiB/s, \d+ s left$")
lines = [m for m in (pat.match(l) for l in err.splitlines()) if m]
check("export: data progress lines with the job's bytes of 3 ranks", len(lines) >= 3, err[-1500:])
done = [float(m.group(1)) for m in lines]
total = float(lines[0].group(2)) if lines else 0
check("export: the count grows and never passes the total", done == sorted(done) and all(x <= total for x in done), str(done))
summary = re.findall(r"rank (\d+): wrote ([\d.]+) MiB", err)
r0 = float(dict(summary).get("0", "0"))
check("export: the lines go beyond what rank 0 wrote alone", bool(done) and max(done) > r0,
      f"rank 0 wrote {r0} MiB, lines reached {max(done) if done else 0}")

# synth: on and off
rc, out, err = run([BIN, "synth", os.path.join(WORK, "s1"), "--preset", "20b", "--layers", "1", "--progress", "0.001"])
check("synth with --progress 0.001", rc == 0, err[-500:])
prog = [l for l in err.splitlines() if re.match(r"^synth: [\d.]+ of [\d.]+ GiB \(\d+ %\)", l)]
check("synth: progress lines", len(prog) >= 3, err[-800:])
shutil.rmtree(os.path.join(WORK, "s1"), ignore_errors=True)
rc, out, err = run([BIN, "synth", os.path.join(WORK, "s2"), "--preset", "20b", "--layers", "1", "--progress", "0"])
check("synth with --progress 0", rc == 0, err[-500:])
prog = [l for l in err.splitlines() if " of " in l and "%" in l]
check("synth --progress 0: no progress line at all", prog == [], "\n".join(prog[:5]))
shutil.rmtree(os.path.join(WORK, "s2"), ignore_errors=True)
rc, out, err = run(["mpirun", "-np", "2", BIN, "export", ck, "--output", os.path.join(WORK, "onnx-q"), "-q",
                    "--progress", "0.000001"])
check("export -q: nothing on stderr", rc == 0 and err.strip() == "", err[-500:])

if not FAILS:
    shutil.rmtree(WORK, ignore_errors=True)
print(f"progress_test: {len(FAILS)} failed")
sys.exit(1 if FAILS else 0)
