#!/usr/bin/python3
"""The hostile-input attack list (issue 10), each case as a new user would try it. Every case must
end with one clear error line and the documented exit code, leave nothing that looks finished and
no temporary file, and neither crash nor hang (every command runs under a timeout).

usage: hostile_test.py CASE GPTOSS_BIN WORK      (env: GOLDEN)
CASE: disk-full lost-rank output-is-input device-fifo collide shrink config-fifo control-chars
      nul-names unreplaceable trace-shapes trace-huge context ort-lib-empty layers-huge signals
"""
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import rank_pids  # noqa: E402

CASE, BIN, WORK = sys.argv[1:4]
GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "case-a"))
G5 = os.path.join(GOLDEN, "golden.h5")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
for k in ("GPTOSS_FAULT", "GPTOSS_PAUSE"):
    ENV.pop(k, None)
CRASH = {-6, -7, -8, -11, 134, 135, 136, 139}
FAILS = []
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n      {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        FAILS.append(what)


def run(args, env=None, timeout=120, cwd=None, preexec=None):
    try:
        p = subprocess.run(args, capture_output=True, text=True, env=env or ENV, timeout=timeout,
                           cwd=cwd, preexec_fn=preexec)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as x:
        return "timeout", x.stdout or "", x.stderr or ""


def tool(*args, **kw):
    return run([BIN, *args], **kw)


def mpi(n, *args, **kw):
    return run(["mpirun", "-np", str(n), BIN, *args], **kw)


def errors(err):
    return [l for l in err.splitlines() if "gptoss-mpi: error:" in l]


def expect(what, res, code, word=None):
    """exit code, exactly one error line (naming `word`), no crash, no hang"""
    rc, out, err = res
    errs = errors(err if isinstance(err, str) else err.decode())
    check(f"{what}: exit {code}", rc == code, f"exit {rc}: {err.strip()[-800:]}")
    check(f"{what}: one error line" + (f" naming '{word}'" if word else ""),
          len(errs) == 1 and (word is None or word in errs[0]), "\n".join(errs) or err.strip()[-600:])
    check(f"{what}: no crash", rc not in CRASH)
    return errs[0] if errs else ""


def leftovers(d, allowed=()):
    return sorted(f for f in os.listdir(d) if f not in allowed)


def ckpt_copy(name):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(GOLDEN, "original"), d)
    return d


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def ids(n, start=1):
    return ",".join(str((start + 37 * i) % 500) for i in range(n))


class Background:
    """a command in the background whose stderr is collected as it comes, so that the test can
    wait for the pause hook's line (GPTOSS_PAUSE) before it acts"""

    def __init__(self, args, env, cwd=None):
        self.p = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err, self.out = [], []
        self.t = [threading.Thread(target=lambda: self.err.extend(iter(self.p.stderr.readline, "")), daemon=True),
                  threading.Thread(target=lambda: self.out.extend(iter(self.p.stdout.readline, "")), daemon=True)]
        for t in self.t:
            t.start()

    def wait_paused(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any("test hook: rank 0 paused at" in l for l in list(self.err)):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def send_signal(self, sig):
        self.p.send_signal(sig)


def background(args, env, cwd=None):
    return Background(args, env, cwd)


def finish(b, timeout=60):
    """exit code (or "timeout"), stdout, stderr; the readers drain both pipes to their end"""
    try:
        rc = b.p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        b.p.kill()
        b.p.wait()
        rc = "timeout"
    for t in b.t:
        t.join(10)
    return rc, "".join(b.out), "".join(b.err)


def mount_tmpfs(d, size):
    os.makedirs(d, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d], capture_output=True)
    return r.returncode == 0


def umount(d):
    subprocess.run(["umount", d], capture_output=True)


def golden_ids():
    import h5py
    with h5py.File(G5, "r") as g:
        return ",".join(str(int(x)) for x in g["input_ids"][()])


def our_trace(ck, path, np_=1):
    """our trace of the golden prompt (comparable with golden.h5:/fp32)"""
    rc, out, err = mpi(np_, "run", ck, "-q", "--prompt-ids", golden_ids(), "--max-tokens", "1", "--trace", path)
    check(f"reference trace {os.path.basename(path)} written", rc == 0, err[-500:])


# ------------------------------------------------------------------ 1. disk full

def disk_full():
    ck = os.path.join(GOLDEN, "original")
    tfs = os.path.join(WORK, "tfs")
    if mount_tmpfs(tfs, "64k"):
        limit, reason = None, "No space left on device"
        print("disk full: a 64 KiB tmpfs")
    else:
        # no mount here: a file-size limit gives the same kind of failure (EFBIG) on any disk
        os.makedirs(tfs, exist_ok=True)
        limit, reason = 64 << 10, "File too large"
        print("disk full: mount not permitted here; RLIMIT_FSIZE of 64 KiB instead")

    def pre():
        if limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        for i in range(3):
            r = tool("run", ck, "-q", "--prompt-ids", ids(8), "--max-tokens", "2", "--trace",
                     os.path.join(tfs, "t.h5"), preexec=pre)
            expect(f"trace on a full disk (try {i + 1})", r, 1, reason)
            check("nothing left on the full disk", leftovers(tfs) == [], str(leftovers(tfs)))
        if limit is None:
            fd = os.open(os.path.join(tfs, "fill"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while True:
                    os.write(fd, b"\0" * 512)
            except OSError:
                pass
            os.close(fd)
            st = os.statvfs(tfs)
            check("the tmpfs has 0 bytes free", st.f_bavail == 0, str(st.f_bavail))
        r = tool("run", ck, "-q", "--prompt-ids", ids(8), "--max-tokens", "2", "--trace",
                 os.path.join(tfs, "t.h5"), preexec=pre)
        expect("trace with 0 bytes free", r, 1, reason)
        check("0 bytes free: no empty staged file left", leftovers(tfs, {"fill"}) == [], str(leftovers(tfs)))
        # a parity report, summary and chart on the full disk
        ours = os.path.join(WORK, "ours.h5")
        our_trace(ck, ours)
        r = mpi(2, "parity", ck, "--reference", G5 + ":/fp32", "--candidate", ours,
                "--report", os.path.join(tfs, "r.h5"), "--summary", os.path.join(tfs, "r.md"), env=None,
                timeout=120) if limit is None else \
            tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", ours, "--report",
                 os.path.join(tfs, "r.h5"), "--summary", os.path.join(tfs, "r.md"), preexec=pre)
        expect("parity report on a full disk", r, 1, reason)
        check("no report, summary, chart or staged file left", leftovers(tfs, {"fill"}) == [], str(leftovers(tfs)))
    finally:
        if limit is None:
            umount(tfs)


# ------------------------------------------------------------------ 2. a rank dies after it voted

def kill_rank_during(args, phase, marker, what):
    """rank 0 pauses at `phase` (reached in about a second, after every rank voted on the work
    before it); rank 1 is killed 3 s in"""
    env = dict(ENV, GPTOSS_PAUSE=f"0:{phase}:30")
    p = background(["mpirun", "-np", "2", BIN, *args], env)
    check(f"{what}: rank 0 reached the pause", p.wait_paused())
    victims = rank_pids(marker, 1)
    for v in victims:
        os.kill(v, signal.SIGKILL)
    r = finish(p)
    check(f"{what}: rank 1 was found and killed", bool(victims))
    check(f"{what}: the job fails", r[0] not in (0, "timeout"), f"exit {r[0]}")
    return r


def lost_rank():
    ck = os.path.join(GOLDEN, "original")
    onnx = os.path.join(WORK, "onnx")
    r = mpi(1, "export", ck, "--output", onnx, "-q", "--expose", "routing,hidden")
    check("export for the lost-rank case", r[0] == 0, r[2][-500:])
    out = os.path.join(WORK, "lost")
    os.makedirs(out)
    kill_rank_during(["parity", ck, "--onnx", os.path.join(onnx, "model.onnx"), "--prompt-ids", ids(6),
                      "--report", os.path.join(out, "r.h5"), "--summary", os.path.join(out, "r.md")],
                     "candidate", out, "parity, rank 1 killed while rank 0 runs ONNX Runtime")
    check("parity: no report, summary, chart or temporary file", leftovers(out) == [], str(leftovers(out)))
    kill_rank_during(["parity", ck, "--onnx", os.path.join(onnx, "model.onnx"), "--prompt-ids", ids(6),
                      "--report", os.path.join(out, "r.h5")], "report-staged", out,
                     "parity, rank 1 killed while rank 0 writes the report")
    check("parity (report staged): nothing left", leftovers(out) == [], str(leftovers(out)))
    kill_rank_during(["run", ck, "--prompt-ids", ids(6), "--trace", os.path.join(out, "t.h5")],
                     "trace-staged", out, "run, rank 1 killed while rank 0 writes the trace")
    check("run: no trace or temporary file", leftovers(out) == [], str(leftovers(out)))


# ------------------------------------------------------------------ 3. an output that is an input

def output_is_input():
    ck = ckpt_copy("ck")
    before = {f: sha(os.path.join(ck, f)) for f in os.listdir(ck)}
    expect("run --trace CK/model.safetensors", tool("run", ck, "--prompt-ids", "1,2,3", "--trace",
                                                  os.path.join(ck, "model.safetensors")), 2, "input")
    expect("parity --summary CK/config.json",
           tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", G5 + ":/bf16", "--report",
                os.path.join(WORK, "r.h5"), "--summary", os.path.join(ck, "config.json")), 2, "input")
    ours = os.path.join(WORK, "ours.h5")
    our_trace(ck, ours)
    s0 = sha(ours)
    expect("--report = the --candidate file",
           tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", ours, "--report", ours), 2, "input")
    check("the candidate is untouched", sha(ours) == s0)
    expect("--report = the --reference file",
           tool("parity", ck, "--reference", ours, "--candidate", G5 + ":/fp32", "--report", ours), 2, "input")
    link = os.path.join(WORK, "hard.safetensors")
    os.link(os.path.join(ck, "model.safetensors"), link)
    expect("--trace = a hard link of the checkpoint file", tool("run", ck, "--prompt-ids", "1,2", "--trace", link), 2, "input")
    expect("export --output inside the checkpoint", mpi(1, "export", ck, "--output", os.path.join(ck, "onnx")), 2, "inside")
    after = {f: sha(os.path.join(ck, f)) for f in os.listdir(ck)}
    check("the checkpoint is untouched", before == after, str(set(after) ^ set(before)))
    check("no report written", not os.path.exists(os.path.join(WORK, "r.h5")))


# ------------------------------------------------------------------ 4. device nodes and FIFOs

def device_fifo():
    ck = os.path.join(GOLDEN, "original")
    expect("run --trace /dev/null", tool("run", ck, "--prompt-ids", "1,2", "--trace", "/dev/null"), 1, "character device")
    check("/dev/null is still a character device", os.path.exists("/dev/null") and
          (os.stat("/dev/null").st_mode & 0o170000) == 0o020000)
    fifo = os.path.join(WORK, "fifo")
    os.mkfifo(fifo)
    expect("run --trace FIFO", tool("run", ck, "--prompt-ids", "1,2", "--trace", fifo, timeout=30), 1, "FIFO")
    args = ["--reference", G5 + ":/fp32", "--candidate", G5 + ":/bf16"]
    expect("parity --report FIFO", tool("parity", ck, *args, "--report", fifo, timeout=30), 1, "FIFO")
    expect("parity --summary FIFO", tool("parity", ck, *args, "--report", os.path.join(WORK, "r.h5"),
                                         "--summary", fifo, timeout=30), 1, "FIFO")
    expect("parity --report /dev/zero", tool("parity", ck, *args, "--report", "/dev/zero", timeout=30), 1, "device")
    check("the FIFO is still a FIFO", (os.stat(fifo).st_mode & 0o170000) == 0o010000)
    check("nothing else written", leftovers(WORK) == ["fifo"], str(leftovers(WORK)))
    # inputs too: a FIFO as a trace or a prompt file is refused without blocking
    expect("parity --candidate FIFO", tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", fifo,
                                           "--report", os.path.join(WORK, "r.h5"), timeout=30), 1, "FIFO")
    expect("run --prompt-file FIFO", tool("run", ck, "--prompt-file", fifo, timeout=30), 1, "FIFO")


# ------------------------------------------------------------------ 5. colliding outputs

def collide():
    ck = os.path.join(GOLDEN, "original")
    args = ["--reference", G5 + ":/fp32", "--candidate", G5 + ":/bf16"]
    x = os.path.join(WORK, "x")
    expect("--report X --summary X", tool("parity", ck, *args, "--report", x, "--summary", x), 2, "same file")
    expect("--summary R.svg (= its own chart)", tool("parity", ck, *args, "--report", os.path.join(WORK, "r.h5"),
                                                     "--summary", os.path.join(WORK, "r.svg")), 2, "same file")
    expect("--report A.svg --summary A.md", tool("parity", ck, *args, "--report", os.path.join(WORK, "a.svg"),
                                                 "--summary", os.path.join(WORK, "a.md")), 2, "same file")
    expect("--report ./X --summary X via another path",
           tool("parity", ck, *args, "--report", os.path.join(WORK, "y.h5"), "--summary",
                os.path.join(WORK, ".", "y.h5")), 2, "same file")
    check("nothing written", leftovers(WORK) == [], str(leftovers(WORK)))


# ------------------------------------------------------------------ 6. the checkpoint shrinks

def truncate_during(args, phase, np_, what):
    ck = ckpt_copy("shrink-ck")
    st = os.path.join(ck, "model.safetensors")
    env = dict(ENV, GPTOSS_PAUSE=f"0:{phase}:3")
    p = background(["mpirun", "-np", str(np_), BIN, *[a.replace("CK", ck) for a in args]], env)
    check(f"{what}: rank 0 reached the pause", p.wait_paused())
    os.truncate(st, os.path.getsize(st) // 3)
    r = finish(p)
    expect(what, r, 1, "changed while it was being read")
    check(f"{what}: the error names the checkpoint file", "model.safetensors" in "\n".join(errors(r[2])))
    return r


def shrink():
    out = os.path.join(WORK, "out")
    os.makedirs(out)
    truncate_during(["run", "CK", "--prompt-ids", ids(8), "--trace", os.path.join(out, "t.h5")], "prefill", 1,
                    "run, checkpoint truncated")
    truncate_during(["run", "CK", "--prompt-ids", ids(8)], "prefill", 3, "run on 3 ranks, checkpoint truncated")
    truncate_during(["export", "CK", "--output", os.path.join(out, "onnx")], "export-data", 2,
                    "export, checkpoint truncated")
    check("no trace, no export, no temporary file", leftovers(out) == [], str(leftovers(out)))


# ------------------------------------------------------------------ 7. config.json as a FIFO

def config_fifo():
    ck = ckpt_copy("fifo-ck")
    os.unlink(os.path.join(ck, "config.json"))
    os.mkfifo(os.path.join(ck, "config.json"))
    t = time.monotonic()
    expect("inspect with config.json a FIFO", tool("inspect", ck, timeout=30), 1, "FIFO")
    expect("run with config.json a FIFO", tool("run", ck, "--prompt-ids", "1,2", timeout=30), 1, "FIFO")
    expect("plan with config.json a FIFO", tool("plan", ck, "--ranks", "2", timeout=30), 1, "FIFO")
    check("no hang (under 20 s for the three)", time.monotonic() - t < 20)


# ------------------------------------------------------------------ 8. control characters

def write_config(ck, text):
    with open(os.path.join(ck, "config.json"), "w") as f:
        f.write(text)


def control_chars():
    ck = ckpt_copy("ctl-ck")
    cfg = json.load(open(os.path.join(ck, "config.json")))
    bad = dict(cfg)
    bad["x\n\u001b[31mred"] = 1
    write_config(ck, json.dumps(bad))
    for cmd in (["inspect", ck], ["run", ck, "--prompt-ids", "1,2"]):
        r = tool(*cmd)
        line = expect(f"{cmd[0]}: a key with a newline and an escape", r, 1, "unknown key")
        check(f"{cmd[0]}: no raw ESC or newline in the message", "\x1b" not in r[2] and "\\x1b" in line and "\\x0a" in line, repr(r[2][-300:]))


# ------------------------------------------------------------------ 9. NUL inside JSON names

def nul_names():
    ck = ckpt_copy("nul-ck")
    text = open(os.path.join(ck, "config.json")).read()
    write_config(ck, text.replace('"num_hidden_layers"', '"num_hidden_layers\\u0000junk"'))
    expect("config key with \\u0000", tool("inspect", ck), 1, "NUL")
    ck = ckpt_copy("nul-st")
    st = os.path.join(ck, "model.safetensors")
    raw = bytearray(open(st, "rb").read())
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = bytes(raw[8:8 + n]).replace(b'"norm.scale"', b'"norm.scale\\u0000x"')
    hdr = hdr + b" " * ((-len(hdr)) % 8)
    open(st, "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(raw[8 + n:]))
    expect("tensor name with \\u0000", tool("inspect", ck), 1, "NUL")


# ------------------------------------------------------------------ 10. outputs a rename cannot replace

def unreplaceable():
    ck = os.path.join(GOLDEN, "original")
    empty = os.path.join(WORK, "empty")
    os.makedirs(empty)
    link = os.path.join(WORK, "link")
    os.symlink(empty, link)
    t = time.monotonic()
    expect("export --output SYMLINK-to-empty-dir", mpi(1, "export", ck, "--output", link), 1, "symbolic link")
    expect("synth OUT = symlink to an empty dir", tool("synth", link), 1, "symbolic link")
    expect("export --output . in an empty dir", mpi(1, "export", ck, "--output", ".", cwd=empty), 1, "cannot be replaced")
    expect("export --output $PWD in an empty dir", mpi(1, "export", ck, "--output", empty, cwd=empty), 1, "current directory")
    mnt = os.path.join(WORK, "mnt")
    if mount_tmpfs(mnt, "1m"):
        try:
            expect("export --output an empty mount point", mpi(1, "export", ck, "--output", mnt), 1, "mount point")
            expect("synth OUT = an empty mount point", tool("synth", mnt), 1, "mount point")
            check("the mount point is left empty", os.listdir(mnt) == [])
        finally:
            umount(mnt)
    else:
        print("SKIP: mount is not permitted here: the mount-point case is not tried")
    check("refused before any work (under 30 s)", time.monotonic() - t < 30)
    check("nothing written beside them", sorted(os.listdir(WORK)) == sorted(["empty", "link"] + (["mnt"] if os.path.isdir(mnt) else [])),
          str(os.listdir(WORK)))
    check("the empty dir is still empty", os.listdir(empty) == [])


# ------------------------------------------------------------------ 11. trace shape errors

def trace_shapes():
    import h5py
    import numpy as np
    ck = os.path.join(GOLDEN, "original")
    ours = os.path.join(WORK, "ours.h5")
    our_trace(ck, ours)
    for name, width in (("topk_indices", 5), ("router_logits", 15)):
        bad = os.path.join(WORK, f"bad-{name}.h5")
        shutil.copy(ours, bad)
        with h5py.File(bad, "r+") as f:
            ds = f[f"layers/0/{name}"]
            dt, T = ds.dtype, ds.shape[0]
            del f[f"layers/0/{name}"]
            f.create_dataset(f"layers/0/{name}", data=np.zeros((T, width), dtype=dt))
        r = tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", bad, "--report", os.path.join(WORK, "r.h5"))
        line = expect(f"layer 0 {name} of width {width}", r, 1, f"layers/0/{name}'")
        check(f"{name}: the message gives the shape found and the one expected", f", {width}]" in line and "expected" in line, line)
    check("no report", not os.path.exists(os.path.join(WORK, "r.h5")))


# ------------------------------------------------------------------ 12. a trace claiming 2^28 ids

def trace_huge():
    import h5py
    ck = os.path.join(GOLDEN, "original")
    ours = os.path.join(WORK, "ours.h5")
    our_trace(ck, ours)
    huge = os.path.join(WORK, "huge.h5")
    shutil.copy(ours, huge)
    with h5py.File(huge, "r+") as f:
        del f["input_ids"]
        f.create_dataset("input_ids", shape=(1 << 28,), dtype="int32")  # declared, never written
    print(f"forged trace: {os.path.getsize(huge)} bytes")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = tool("parity", ck, "--reference", G5 + ":/fp32", "--candidate", huge, "--report", os.path.join(WORK, "r.h5"))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    expect("trace whose input_ids claims 2^28 entries", r, 1, "input_ids")
    check(f"refused before allocating (peak RSS of the children {peak // 1024} MiB < 300 MiB)",
          max(peak, before) < 300 * 1024)


# ------------------------------------------------------------------ 13. a prompt beyond the context

def context():
    ck = ckpt_copy("ctx-ck")
    cfg = json.load(open(os.path.join(ck, "config.json")))
    cfg["initial_context_length"] = 8
    cfg["rope_scaling_factor"] = 1.0
    write_config(ck, json.dumps(cfg))
    expect("run: 10-token prompt, context 8", tool("run", ck, "--prompt-ids", ids(10)), 2, "exceed the context of 8 positions")
    expect("run: 6 + 5 new tokens, context 8", tool("run", ck, "--prompt-ids", ids(6), "--max-tokens", "5"), 2, "exceed the context of 8")
    r = tool("run", ck, "--prompt-ids", ids(6), "--max-tokens", "3", "-q")
    check("run: 6 + 3 new tokens fit a context of 8", r[0] == 0, r[2][-400:])
    expect("parity: beyond the context, before any ONNX Runtime",
           tool("parity", ck, "--onnx", os.path.join(WORK, "nothing.onnx"), "--prompt-ids", ids(10),
                "--report", os.path.join(WORK, "r.h5")), 2, "exceed the context")
    pf = os.path.join(WORK, "ids.txt")
    with open(pf, "w") as f:
        f.write(" ".join(str(i % 500) for i in range(200000)))
    t = time.monotonic()
    expect("run: a 200,000-token prompt file on case-a", tool("run", os.path.join(GOLDEN, "original"), "--prompt-file", pf),
           2, "exceed the context of 131072")
    check("refused up front (under 10 s)", time.monotonic() - t < 10)


# ------------------------------------------------------------------ 14. --ort-lib ""

def ort_lib_empty():
    ck = os.path.join(GOLDEN, "original")
    expect('parity --ort-lib ""', tool("parity", ck, "--onnx", "x.onnx", "--ort-lib", "", "--prompt-ids", "1,2",
                                       "--report", os.path.join(WORK, "r.h5")), 2, "empty")


# ------------------------------------------------------------------ 15. num_hidden_layers beyond the files

def layers_huge():
    ck = ckpt_copy("layers-ck")
    cfg = json.load(open(os.path.join(ck, "config.json")))
    for n in (10000000, 2000000000, 1000000, 5):
        cfg["num_hidden_layers"] = n
        write_config(ck, json.dumps(cfg))
        r = tool("inspect", ck)
        expect(f"num_hidden_layers = {n} with the tensors of 4 layers", r, 1, "layers 0-3 only")
        check(f"{n}: no out-of-memory", "out of memory" not in r[2])


# ------------------------------------------------------------------ 16. stop signals during export

def signals():
    ck = os.path.join(GOLDEN, "original")
    for sig, target in ((signal.SIGTERM, "mpirun"), (signal.SIGINT, "mpirun"), (signal.SIGHUP, "rank 0"),
                        (signal.SIGTERM, "every rank")):
        out = os.path.join(WORK, f"sig-{sig.name}-{target.replace(' ', '')}")
        os.makedirs(out)
        env = dict(ENV, GPTOSS_PAUSE="0:export-data:60")
        p = background(["mpirun", "-np", "2", BIN, "export", ck, "--output", os.path.join(out, "onnx")], env)
        p.wait_paused()
        staged = [f for f in os.listdir(out) if f == "onnx.partial"]
        t = time.monotonic()
        if target == "mpirun":
            p.send_signal(sig)
        else:
            for r in ((0,) if target == "rank 0" else (0, 1)):
                for v in rank_pids(out, r):
                    os.kill(v, sig)
        rc, _, err = finish(p, timeout=30)
        took = time.monotonic() - t
        what = f"SIG{sig.name[3:]} to {target} during export"
        check(f"{what}: the staged directory existed before", bool(staged))
        check(f"{what}: stops within 10 s (took {took:.1f} s)", rc != "timeout" and took < 10)
        check(f"{what}: non-zero exit", rc not in (0, "timeout"), f"exit {rc}")
        if target == "mpirun":
            # mpirun forwards SIGTERM and SIGKILLs the ranks a few ms later, and drops their output
            # once it has seen them die: the line is best effort there (printed when it makes it)
            print(f"{what}: rank 0's stop line {'arrived' if 'stopped by SIG' in err else 'was dropped by mpirun'}")
        else:
            check(f"{what}: says so", "stopped by SIG" in err and "rerun with --resume" in err, err[-600:])
        # an export is resumable: it keeps onnx.partial (never the output name), and --resume ends it
        check(f"{what}: only onnx.partial left", os.listdir(out) == ["onnx.partial"], str(os.listdir(out)))
        r = subprocess.run(["mpirun", "-np", "2", BIN, "export", ck, "--output", os.path.join(out, "onnx"), "--resume", "-q"],
                           capture_output=True, text=True, env=ENV, timeout=120)
        check(f"{what}: --resume finishes it", r.returncode == 0 and os.listdir(out) == ["onnx"],
              f"exit {r.returncode}, {os.listdir(out)}: {r.stderr[-300:]}")
    # a trace being written by `run`, stopped by SIGTERM to its only rank
    out = os.path.join(WORK, "sig-run")
    os.makedirs(out)
    p = background([BIN, "run", ck, "--prompt-ids", ids(6), "--trace", os.path.join(out, "t.h5")],
                   dict(ENV, GPTOSS_PAUSE="0:trace-staged:60"))
    p.wait_paused()
    check("run: the trace was staged", bool(os.listdir(out)), str(os.listdir(out)))
    p.send_signal(signal.SIGTERM)
    rc, _, err = finish(p, timeout=30)
    check("run stopped by SIGTERM: exit 143", rc in (143, -15), f"exit {rc}")
    check("run stopped: says so", "stopped by SIGTERM (partial output removed)" in err, err[-400:])
    check("run stopped: nothing left", os.listdir(out) == [], str(os.listdir(out)))


CASES = {"disk-full": disk_full, "lost-rank": lost_rank, "output-is-input": output_is_input,
         "device-fifo": device_fifo, "collide": collide, "shrink": shrink, "config-fifo": config_fifo,
         "control-chars": control_chars, "nul-names": nul_names, "unreplaceable": unreplaceable,
         "trace-shapes": trace_shapes, "trace-huge": trace_huge, "context": context,
         "ort-lib-empty": ort_lib_empty, "layers-huge": layers_huge, "signals": signals}
CASES[CASE]()
if not FAILS:
    shutil.rmtree(WORK, ignore_errors=True)
print(f"hostile {CASE}: {len(FAILS)} failed")
sys.exit(1 if FAILS else 0)
