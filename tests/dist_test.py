#!/usr/bin/python3
"""The distributed forward pass (`mpirun -np P gptoss-mpi run`, mpi/dist_forward.c) end to end.

usage: dist_test.py MODE [ARGS]
  env: GPTOSS_BIN, GOLDEN (case-a), DIST_WORK (work directory, removed at the end),
       REF_TRACE (tests/dist_ref_trace: issue 3's single-process engine)

modes
  invariance CASE [--tokens N] [SYNTH ARGS...]  CASE = case-a, or a name for a `gptoss-mpi synth`
                     checkpoint made with the given arguments; N prompt tokens (default 20).
                     For P = 1..4 and every valid --stages value
                     (stages divide P, stages <= layers, P / stages <= experts): the trace of
                     prefill + 3 generated tokens is bitwise identical (tests/trace_identical.py)
                     to issue 3's single-process run, and the ids printed without --trace are the
                     same; invalid splits are refused with exit 2 and one message. With --tokens
                     above the kernel crossovers (model/model_impl.h: the prefill's attention is
                     converted + sgemm above 128 tokens, an expert decoded + sgemm above 128 of
                     its tokens) the prefill mixes both kernel paths, which the test checks from the
                     routing in the trace.
  variants           case-a: --precision bf16 and --max-layers (cutting a stage, and leaving
                     stages without layers) on pipeline splits, default split, --prompt-file.
  fault              GPTOSS_FAULT=R:PHASE[:N] for every phase, on rank 0 and other ranks: exit 1,
                     one "gptoss-mpi: error:" line naming the rank and the cause, nothing on
                     stdout, no trace file and no temporary left, well under the timeout.
  corrupt            case-a copies with one corrupt tensor (an expert's MXFP4 scales = 0xFF, a
                     layer's attention weight = bf16 NaN) that exactly one rank reads: that rank
                     is named with the tensor.
  files              missing checkpoint directory, config.json a directory, dangling
                     *.safetensors symlink: exit 1, one message, no trace.
  touched            (slow) a 20b-width synth with 2 layers and 4 experts; P = 4 as 2x2 and 1x4:
                     checkpoint bytes each rank touched (smaps) <= the plan's mapped bytes +
                     slack, expert-only ranks touched at least half of their expert bytes, and
                     each rank's peak RSS is within 20 % of the plan's prediction.
  split              the attention and head split with uneven ranges (a write_checkpoint config:
                     6 KV heads, hidden 160, vocabulary 1700, 140 tokens): P = 1..4 and 8, every
                     split, bitwise the single-process run (as invariance).
  split-20b          (slow) the same at 20b widths (2-layer synth, 256 tokens): P = 2 and 4.
  progress           --progress 0.001: progress lines with rate and time left, every line of
                     stderr from rank 0 (mpirun --tag-output), each banner once.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import h5py
import numpy as np

BIN = os.environ["GPTOSS_BIN"]
GOLDEN = os.environ["GOLDEN"]
WORK = os.environ["DIST_WORK"]
REF = os.environ.get("REF_TRACE", "")
HERE = os.path.dirname(os.path.abspath(__file__))
CASE_A = os.path.join(GOLDEN, "original")
IDS_A = "37,297,214,493,138,380,482,81,427,136,475,118,227,308,109,126,95,133,308,285,218,214,461,224"
RUN_TIMEOUT = 120  # seconds for one mpirun; a hang fails the case instead of the whole test
SANITIZER_RUN = os.environ.get("GPTOSS_SANITIZER_RUN") == "1"
fails = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + (f"\n    {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        fails.append(what)
    return ok


def run(cmd, env=None, timeout=RUN_TIMEOUT):
    """(rc, stdout, stderr, seconds); a run past the timeout is killed with its process group."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return -999, out, err + f"\n(killed after {timeout} s)", time.time() - t0
    return p.returncode, out, err, time.time() - t0


def mpirun(P, *args, env=None, tag=False, timeout=RUN_TIMEOUT):
    pre = ["mpirun", "-np", str(P)] + (["--tag-output"] if tag else [])
    return run(pre + [BIN, "run", *args], env=env, timeout=timeout)


def config(ck):
    r = subprocess.run([BIN, "inspect", ck, "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def valid_stages(L, E, P):
    return [s for s in range(1, P + 1) if P % s == 0 and s <= L and P // s <= E]


def identical(a, b):
    r = subprocess.run([sys.executable, os.path.join(HERE, "trace_identical.py"), a, b],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()[-1500:]


def error_lines(stderr):
    return [l for l in stderr.splitlines() if "gptoss-mpi: error:" in l]


def fresh(name):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def synth(name, *args):
    out = os.path.join(WORK, name)
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([BIN, "synth", out, "-q", *args], capture_output=True, text=True)
    if r.returncode != 0:
        check(f"synth {' '.join(args)}", False, r.stderr)
        sys.exit(1)
    return out


def prompt_ids(vocab, n, seed):
    """n deterministic ids below vocab (a plain LCG: no randomness across runs)."""
    x, ids = seed, []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        ids.append((x >> 33) % vocab)
    return ",".join(map(str, ids))


# ---------------------------------------------------------------- invariance

def reference(ck, ids, ntok, prec, max_layers, out):
    r = run([REF, ck, ids, str(ntok), prec, str(max_layers), out])
    check(f"reference (issue 3 engine) {os.path.basename(out)}", r[0] == 0, r[2])
    return r[1].strip()


MX4_DIRECT_MAX_T = 128  # model/model_impl.h MODEL_MX4_DIRECT_MAX_T


def expert_counts(trace, n_prompt):
    """Tokens routed to each expert in each layer during the prefill (the trace's top-k)."""
    with h5py.File(trace, "r") as f:
        return [np.bincount(f[f"layers/{n}/topk_indices"][:n_prompt].ravel()) for n in range(len(f["layers"]))]


def invariance(case, synth_args, ck=None, n_prompt=20, procs=(1, 2, 3, 4), ntok=4):
    if synth_args[:1] == ["--tokens"]:
        n_prompt, synth_args = int(synth_args[1]), synth_args[2:]
    if ck is None:
        ck = CASE_A if case == "case-a" else synth(case, *synth_args)
    cfg = config(ck)["config"]
    L, E, V = cfg["num_hidden_layers"], cfg["num_experts"], cfg["vocab_size"]
    ids = IDS_A if case == "case-a" else prompt_ids(V, n_prompt, len(case))
    w = fresh("inv-" + case)
    print(f"{case}: {L} layers, {E} experts, top-{cfg['experts_per_token']}, layout {config(ck)['layout']}")
    ref = os.path.join(w, "ref.h5")
    ref_ids = reference(ck, ids, ntok, "fp32", 0, ref)
    if n_prompt > MX4_DIRECT_MAX_T and case != "split":
        counts = [c for layer in expert_counts(ref, n_prompt) for c in layer if c > 0]
        check(f"the prefill has experts on both sides of the crossover ({min(counts)}..{max(counts)} tokens)",
              min(counts) <= MX4_DIRECT_MAX_T < max(counts))
    for P in procs:
        splits = valid_stages(L, E, P)
        if SANITIZER_RUN:  # every code path (pipeline, groups, both), half the runs: see tests/CMakeLists.txt
            splits = sorted(set([splits[0], splits[-1]]))
        for S in splits:
            t = os.path.join(w, f"p{P}s{S}.h5")
            rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-ids", ids, "--max-tokens", str(ntok),
                                     "--stages", str(S), "--trace", t)
            if not check(f"P={P} stages={S}: exit 0, nothing on stderr", rc == 0 and err == "", err[-1500:]):
                continue
            ok, msg = identical(ref, t)
            check(f"P={P} stages={S} ({P // S} groups): trace bitwise = issue 3's run", ok, msg)
            check(f"P={P} stages={S}: generated ids {out.strip()} = reference", out.strip() == ref_ids,
                  f"{out.strip()} vs {ref_ids}")
            if SANITIZER_RUN:
                os.unlink(t)
                continue
            rc, out2, err2, _ = mpirun(P, ck, "-q", "--prompt-ids", ids, "--max-tokens", str(ntok),
                                       "--stages", str(S))
            check(f"P={P} stages={S}: ids without --trace identical", rc == 0 and out2 == out,
                  f"rc {rc}: {out2!r} vs {out!r} {err2[-800:]}")
            os.unlink(t)
    # splits the plan refuses: usage error (2), one message, on every rank
    for P, S in ((4, 3), (1, 2), (4, 4), (4, 1)) if procs == (1, 2, 3, 4) else ():
        if S in valid_stages(L, E, P):
            continue
        rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-ids", ids, "--stages", str(S))
        check(f"P={P} stages={S} refused: exit 2, one error line", rc == 2 and len(error_lines(err)) == 1, err[-800:])
    if case != "case-a":
        shutil.rmtree(ck)


def split():
    """The attention and head split (docs/distributed.md "Attention and head split") where its
    ranges are uneven: 6 KV heads of 4 query heads each (attention units 1+1+2+2 over 4 groups,
    2+2+2 over 3, none on some groups of 8), hidden 160 (output-projection rows 53+53+54 over 3), a
    vocabulary of 1700 = 3 whole unembedding chunks + 164 rows (1+1+2 chunks over 3 groups), a
    sliding window, 140 prompt tokens (the bf16 matrices converted + sgemm, the decode steps on
    the direct kernels): bitwise the single-process run for P = 1..4, every split, and P = 8 as
    8 groups (more groups than KV heads)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import synth_ckpt
    ck = os.path.join(WORK, "split-ck")
    shutil.rmtree(ck, ignore_errors=True)
    synth_ckpt.write_checkpoint(ck, synth_ckpt.config(
        num_hidden_layers=2, num_experts=8, experts_per_token=2, vocab_size=1700, hidden_size=160,
        intermediate_size=32, head_dim=8, num_attention_heads=24, num_key_value_heads=6,
        sliding_window=4), 31)
    invariance("split", [], ck=ck, n_prompt=140, procs=(1, 2, 3, 4, 8), ntok=3)


def split_20b():
    """(slow) The same at gpt-oss-20b widths (synth --preset 20b --layers 2, 3.1 GB, deleted
    afterwards): a 256-token prefill (converted attention, unembedding over 201088 rows) and a
    decode step, P = 2 as 2 groups and P = 4 as 4 groups and 2x2, bitwise the single-process run."""
    ck = synth("split-20b", "--preset", "20b", "--layers", "2", "--seed", "3")
    cfg = config(ck)["config"]
    ids = prompt_ids(cfg["vocab_size"], 256, 5)
    w = fresh("split-20b-traces")
    ref = os.path.join(w, "ref.h5")
    ref_ids = reference(ck, ids, 2, "fp32", 0, ref)
    for P, S in ((2, 1), (4, 1), (4, 2)):
        t = os.path.join(w, f"p{P}s{S}.h5")
        rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-ids", ids, "--max-tokens", "2",
                                 "--stages", str(S), "--trace", t, timeout=600)
        if check(f"20b P={P} stages={S}: exit 0, nothing on stderr", rc == 0 and err == "", err[-1500:]):
            ok, msg = identical(ref, t)
            check(f"20b P={P} stages={S} ({P // S} groups): trace bitwise = issue 3's run", ok, msg)
            check(f"20b P={P} stages={S}: ids {out.strip()} = reference", out.strip() == ref_ids)
        if os.path.exists(t):
            os.unlink(t)
    shutil.rmtree(ck)
    shutil.rmtree(w)


def variants():
    w = fresh("variants")
    ck = CASE_A
    # bf16 on pipeline splits (and mixed)
    ref = os.path.join(w, "ref-bf16.h5")
    ref_ids = reference(ck, IDS_A, 4, "bf16", 0, ref)
    for P, S in ((2, 2), (3, 3), (4, 2), (4, 4)):
        t = os.path.join(w, f"bf16-p{P}s{S}.h5")
        rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "4",
                                 "--precision", "bf16", "--stages", str(S), "--trace", t)
        ok, msg = identical(ref, t) if rc == 0 else (False, err[-1500:])
        check(f"bf16 P={P} stages={S}: trace bitwise = issue 3's bf16 run, same ids", ok and out.strip() == ref_ids, msg)
    # --max-layers: 3 cuts the last stage of 2x2; 1 leaves stages 1..3 of 4 stages without a layer
    for ml, P, S in ((3, 4, 2), (3, 3, 3), (1, 4, 4), (2, 4, 4)):
        ref = os.path.join(w, f"ref-ml{ml}.h5")
        ref_ids = reference(ck, IDS_A, 3, "fp32", ml, ref)
        t = os.path.join(w, f"ml{ml}-p{P}s{S}.h5")
        rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "3",
                                 "--max-layers", str(ml), "--stages", str(S), "--trace", t)
        ok, msg = identical(ref, t) if rc == 0 else (False, err[-1500:])
        check(f"--max-layers {ml} P={P} stages={S}: trace bitwise = reference, same ids",
              ok and out.strip() == ref_ids, msg)
    # default split (plan_default_stages), prefill only (--max-tokens 1), and --prompt-file
    ref = os.path.join(w, "ref-1.h5")
    ref_ids = reference(ck, IDS_A, 1, "fp32", 0, ref)
    pf = os.path.join(w, "ids.txt")
    with open(pf, "w") as fh:
        fh.write(IDS_A.replace(",", "\n"))
    for P in (2, 3, 4):
        t = os.path.join(w, f"default-p{P}.h5")
        rc, out, err, _ = mpirun(P, ck, "-q", "--prompt-file", pf, "--max-tokens", "1", "--trace", t)
        ok, msg = identical(ref, t) if rc == 0 else (False, err[-1500:])
        check(f"P={P} default split, prefill only, --prompt-file: trace bitwise = reference",
              ok and out.strip() == ref_ids, msg)
    # a long generation across 4 stages: ids only
    rc, out4, err, _ = mpirun(4, ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "12", "--stages", "4")
    rc1, out1, err1, _ = mpirun(1, ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "12")
    check("12 generated ids across 4 stages = 1 rank", rc == 0 and rc1 == 0 and out4 == out1 and out1.count(",") == 11,
          f"{out4!r} vs {out1!r} {err} {err1}")


# ---------------------------------------------------------------- failures

def expect_failure(what, P, args, rank, cause, env=None, trace=True, max_seconds=30):
    """One failing run: exit 1 from mpirun, one error line naming `rank` and `cause`, no stdout,
    trace directory empty (no file, no temporary), done in max_seconds."""
    d = fresh("fail")
    t = os.path.join(d, "t.h5")
    rc, out, err, secs = mpirun(P, *args, *(["--trace", t] if trace else []), env=env)
    lines = error_lines(err)
    check(f"{what}: exit 1", rc == 1, f"rc {rc}; {err[-1500:]}")
    check(f"{what}: one error line", len(lines) == 1, err[-1500:])
    if lines:
        want = f"gptoss-mpi: error: rank {rank}: " if P > 1 else "gptoss-mpi: error: "
        check(f"{what}: names rank {rank} and '{cause}'", lines[0].startswith(want) and cause in lines[0],
              lines[0])
    check(f"{what}: nothing on stdout", out == "", out)
    check(f"{what}: no trace file or temporary left", os.listdir(d) == [], str(os.listdir(d)))
    check(f"{what}: done in {secs:.1f} s (< {max_seconds} s)", secs < max_seconds)
    return lines[0] if lines else ""


FAULTS = [  # (P, stages, GPTOSS_FAULT, failing rank) - each phase reachable on that rank
    (3, 1, "2:open", 2), (4, 2, "0:open", 0),
    (4, 2, "1:load", 1), (4, 4, "3:alloc", 3), (2, 1, "0:alloc", 0),
    (4, 2, "2:attn", 2),                  # leader of stage 1, prefill
    (3, 3, "1:attn:2", 1),                # leader of stage 1 (one layer): second call = decode
    (4, 2, "3:experts", 3),               # expert group 1 of stage 1 (not a leader)
    (4, 1, "1:experts:3", 1),             # 4 groups; third layer of the prefill
    (2, 1, "0:experts", 0),
    (4, 4, "3:head", 3), (3, 1, "0:head", 0), (2, 2, "1:head:2", 1),
    (4, 2, "1:decode:2", 1), (3, 3, "0:decode", 0),
    (4, 2, "0:trace", 0), (3, 3, "2:trace", 2),
]


def fault():
    seen = set()
    for P, S, spec, rank in FAULTS:
        phase = spec.split(":")[1]
        seen.add(phase)
        expect_failure(f"GPTOSS_FAULT={spec} P={P} stages={S}", P,
                       [CASE_A, "-q", "--prompt-ids", IDS_A, "--max-tokens", "4", "--stages", str(S)],
                       rank, f"injected fault in phase '{phase}'", env={"GPTOSS_FAULT": spec})
    want = {"open", "load", "alloc", "attn", "experts", "head", "decode", "trace"}
    check("every phase covered", seen == want, str(want - seen))
    # MPI itself fails (GPTOSS_FAULT=R:mpi: an agreement's Allreduce with an invalid datatype on
    # rank R): the error handler ends the whole job at once with one line naming that rank and
    # MPI's reason, and nothing written; under MPI_ERRORS_RETURN the failed call went unnoticed
    for P, spec, rank in ((3, "1:mpi:3", 1), (2, "0:mpi:5", 0), (4, "3:mpi", 3)):
        d = fresh("fail")
        t = os.path.join(d, "t.h5")
        rc, out, err, secs = mpirun(P, CASE_A, "-q", "--prompt-ids", IDS_A, "--max-tokens", "4",
                                    "--trace", t, env={"GPTOSS_FAULT": spec})
        lines = error_lines(err)
        what = f"GPTOSS_FAULT={spec} P={P} (a failed MPI call)"
        check(f"{what}: exit 1", rc == 1, f"rc {rc}; {err[-1200:]}")
        check(f"{what}: one error line naming rank {rank} and the MPI failure",
              len(lines) == 1 and lines[0].startswith(f"gptoss-mpi: error: rank {rank}: MPI failure:"),
              "\n".join(lines) or err[-1200:])
        check(f"{what}: nothing on stdout, no trace or temporary", out == "" and os.listdir(d) == [],
              f"{out!r} {os.listdir(d)}")
        check(f"{what}: done in {secs:.1f} s (< 30 s)", secs < 30)
    # a fault naming a rank or phase that never happens changes nothing
    rc, out, err, _ = mpirun(4, CASE_A, "-q", "--prompt-ids", IDS_A, "--max-tokens", "4", "--stages", "2",
                             env={"GPTOSS_FAULT": "1:attn"})
    check("GPTOSS_FAULT=1:attn with rank 1 not a leader: run succeeds", rc == 0 and err == "", err[-800:])


def st_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def corrupt():
    base = fresh("corrupt")
    cases = [  # (tensor, expert or None, value bytes, P, stages, owning rank)
        ("block.2.mlp.mlp1_weight.scales", 12, b"\xff", 4, 2, 3),   # 2x2: stage 1, group 1
        ("block.1.mlp.mlp2_weight.scales", 5, b"\xff", 4, 1, 1),    # 1x4: experts 4-7
        # stage 1 = ranks 2, 3: row 96 is a q row of KV head 1, the attention unit of group 1
        ("block.3.attn.qkv.weight", None, struct.pack("<H", 0x7fc0), 4, 2, 3),
        # the 512-row vocabulary is one unembedding chunk: group 1 of 2 computes all of it
        ("unembedding.weight", None, struct.pack("<H", 0x7fc0), 2, 1, 1),
        ("block.0.attn.out.weight", None, struct.pack("<H", 0x7fc0), 4, 4, 0),
    ]
    for name, expert, value, P, S, rank in cases:
        ck = os.path.join(base, "ck")
        shutil.rmtree(ck, ignore_errors=True)
        shutil.copytree(CASE_A, ck)
        f = os.path.join(ck, "model.safetensors")
        hdr, start = st_header(f)
        a, b = hdr[name]["data_offsets"]
        shape = hdr[name]["shape"]
        if expert is not None:  # expert slice [E, ...]: corrupt one byte in the middle of it
            per = (b - a) // shape[0]
            off = start + a + expert * per + per // 2
        else:
            off = start + a + ((b - a) // 2 & ~1)
        with open(f, "r+b") as fh:
            fh.seek(off)
            fh.write(value)
        what = f"corrupt {name}" + (f" expert {expert}" if expert is not None else "")
        line = expect_failure(f"{what}, P={P} stages={S}", P,
                              [ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "2", "--stages", str(S)],
                              rank, f"'{name}'")
        check(f"{what}: message says corrupt data", "corrupt data" in line, line)
        # the same file on one rank: the same tensor named, without a rank prefix
        expect_failure(f"{what}, P=1", 1, [ck, "-q", "--prompt-ids", IDS_A, "--max-tokens", "2"], 0, f"'{name}'")
    shutil.rmtree(base)


def files():
    base = fresh("files")
    args = ["-q", "--prompt-ids", IDS_A, "--max-tokens", "2"]
    missing = os.path.join(base, "no-such-dir")
    expect_failure("missing checkpoint directory", 4, [missing, *args, "--stages", "2"], 0, "no-such-dir")
    ck = os.path.join(base, "cfgdir")
    shutil.copytree(CASE_A, ck)
    os.unlink(os.path.join(ck, "config.json"))
    os.mkdir(os.path.join(ck, "config.json"))
    expect_failure("config.json is a directory", 3, [ck, *args], 0, "config.json")
    ck = os.path.join(base, "dangling")
    shutil.copytree(CASE_A, ck)
    os.symlink(os.path.join(base, "nowhere.safetensors"), os.path.join(ck, "extra.safetensors"))
    expect_failure("dangling *.safetensors symlink", 2, [ck, *args], 0, "extra.safetensors")
    ck = os.path.join(base, "truncated")
    shutil.copytree(CASE_A, ck)
    f = os.path.join(ck, "model.safetensors")
    os.truncate(f, os.path.getsize(f) - 4096)
    expect_failure("truncated model.safetensors", 4, [ck, *args, "--stages", "4"], 0, "model.safetensors")
    shutil.rmtree(base)


# ---------------------------------------------------------------- touched bytes

# A page fault maps more than the page: fault-around (64 KiB of cached neighbours), and on recent
# kernels (6.18 here) the whole large page-cache folio, which ext4 builds up to 2 MiB, filled by
# readahead (read_ahead_kb is 8 MiB here). So a rank is charged some bytes beyond each end of each
# range it reads. The checkpoint is evicted from the page cache before each run (its own files
# only, POSIX_FADV_DONTNEED), which makes the figures repeatable (1-2.3 MiB over the plan for a
# rank reading 12 expert ranges) instead of depending on the folios synth's writes left behind.
# 4 MiB is a third of one expert of one layer at these widths: reading any tensor slice the rank
# does not own would exceed it.
SLACK = 4 * 1024 * 1024


def evict(ck):
    for name in os.listdir(ck):
        if name.endswith(".safetensors"):
            fd = os.open(os.path.join(ck, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def touched():
    ck = synth("touched-20b", "--preset", "20b", "--layers", "2", "--experts", "4", "--seed", "7")
    cfg = config(ck)["config"]
    ids = prompt_ids(cfg["vocab_size"], 12, 3)
    try:
        for S in (2, 1):
            r = subprocess.run([BIN, "plan", ck, "--ranks", "4", "--stages", str(S), "--tokens", "12",
                                "--max-seq", "13", "--json"], capture_output=True, text=True)
            plan = json.loads(r.stdout)["per_rank"]
            evict(ck)
            rc, out, err, secs = mpirun(4, ck, "-v", "--prompt-ids", ids, "--max-tokens", "2",
                                        "--stages", str(S), timeout=300)
            if not check(f"20b-width 2x{4 // S} run exits 0", rc == 0, err[-1500:]):
                continue
            rows = {int(m[0]): tuple(map(int, m[1:])) for m in re.findall(
                r"rank (\d+): checkpoint bytes touched (\d+) \(plan: (\d+) mapped\); peak RSS (\d+) \(plan: (\d+)\)", err)}
            check(f"stages={S}: a touched-bytes line per rank", sorted(rows) == [0, 1, 2, 3], err[-1500:])
            for r_, (tb, mapped, rss, peak) in sorted(rows.items()):
                p = plan[r_]
                check(f"stages={S} rank {r_}: plan mapped bytes match the plan command", mapped == p["mapped_bytes"])
                print(f"    rank {r_}: touched {tb / 2**20:.1f} MiB, planned {mapped / 2**20:.1f} MiB "
                      f"(experts {p['mapped_expert_bytes'] / 2**20:.1f}), peak RSS {rss / 2**20:.1f} MiB (plan {peak / 2**20:.1f})")
                check(f"stages={S} rank {r_}: touched <= planned + {SLACK >> 20} MiB", tb <= mapped + SLACK,
                      f"{tb} > {mapped} + {SLACK}")
                check(f"stages={S} rank {r_}: peak RSS within 20 % of the plan's prediction",
                      abs(peak / rss - 1) <= 0.2, f"plan {peak}, measured {rss}")
                if not p["leader"]:
                    check(f"stages={S} rank {r_} (experts only): touched >= half its expert bytes",
                          tb >= p["mapped_expert_bytes"] // 2, f"{tb} < {p['mapped_expert_bytes']} / 2")
    finally:
        shutil.rmtree(ck, ignore_errors=True)


# ---------------------------------------------------------------- progress

def progress():
    ck = synth("progress", "--preset", "tiny", "--layers", "12", "--experts", "8", "--seed", "5")
    ids = prompt_ids(512, 48, 11)
    rc, out, err, _ = mpirun(3, ck, "-v", "--prompt-ids", ids, "--max-tokens", "40", "--stages", "3",
                             "--progress", "0.001", tag=True)
    check("run exits 0", rc == 0, err[-1500:])
    # Open MPI tags every write, and a line may take several writes: the rank of a line is the
    # tag it starts with; a tag alone (before a bare newline) carries no text
    tag = re.compile(r"\[\d+,(\d+)\]<stderr>:")
    lines = [l for l in err.splitlines() if tag.sub("", l).strip()]
    check("every stderr line is tagged", all(tag.match(l) for l in lines), "\n".join(lines[:5]))
    others = [l for l in lines if any(r != "0" for r in tag.findall(l))]
    check("no rank but 0 prints anything", others == [], "\n".join(others[:5]))
    text = [tag.sub("", l) for l in lines]
    for banner in ("== open", "== plan", "== load", "== prefill", "== decode", "== summary"):
        check(f"banner '{banner}' exactly once", sum(t.startswith(banner) for t in text) == 1)
    pre = [t for t in text if re.fullmatch(r"prefill: \d+ of 12 layers \(\d+ %\), [\d.]+ layers/s, \d+ s left", t)]
    dec = [t for t in text if re.fullmatch(r"decode: \d+ of 39 tokens \(\d+ %\), [\d.]+ tokens/s, \d+ s left", t)]
    check("prefill progress lines (layers done, rate, time left)", len(pre) >= 1, "\n".join(text))
    check("decode progress lines (tokens done, rate, time left)", len(dec) >= 5, "\n".join(text))
    check("summary: time per phase, bytes read, bytes sent",
          any("prefill" in t and "decode" in t and t.startswith("== summary") for t in text) and
          any("resident" in t and "sent" in t for t in text), "\n".join(text[-3:]))
    rc, out, err, _ = mpirun(3, ck, "-q", "--prompt-ids", ids, "--max-tokens", "4", "--stages", "3",
                             "--progress", "0.001")
    check("-q: no progress and nothing else on stderr", rc == 0 and err == "", err[-800:])
    shutil.rmtree(ck)


def main():
    mode = sys.argv[1]
    os.makedirs(WORK, exist_ok=True)
    if mode == "invariance":
        invariance(sys.argv[2], sys.argv[3:])
    else:
        {"variants": variants, "fault": fault, "corrupt": corrupt, "files": files,
         "touched": touched, "progress": progress, "split": split, "split-20b": split_20b}[mode]()
    print(f"{mode}: {len(fails)} failure(s)")
    if not fails:
        shutil.rmtree(WORK, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
