"""Shared bits of the Python test drivers: the environment mpirun needs here (root,
oversubscribed cores; no fault injection left over from the caller) and a check counter that
prints each failure and gives the exit status at the end."""
import os

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
ENV.pop("GPTOSS_FAULT", None)
counts = {"checks": 0, "fails": 0}


def check(cond, what):
    """Count a check; print FAIL and what when cond is false. Returns cond."""
    counts["checks"] += 1
    if not cond:
        counts["fails"] += 1
        print("FAIL:", what, flush=True)
    return cond


def finish(name):
    """Print the tally; the exit status (1 if any check failed)."""
    print(f"{name}: {counts['checks'] - counts['fails']} passed, {counts['fails']} failed", flush=True)
    return 1 if counts["fails"] else 0


def rank_pids(marker, rank=None):
    """pids of gptoss-mpi processes whose command line holds marker (and, given rank, whose MPI
    rank is rank)"""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            envb = open(f"/proc/{p}/environ", "rb").read().split(b"\0") if rank is not None else []
        except OSError:
            continue
        if not cmd or not cmd[0].endswith(b"gptoss-mpi") or marker.encode() not in b" ".join(cmd):
            continue
        if rank is None or f"OMPI_COMM_WORLD_RANK={rank}".encode() in envb:
            out.append(int(p))
    return out
