"""Check a trace written by `gptoss-mpi run --trace` against a reference group of golden.h5.

usage: model_trace_check.py GOLDEN.h5 GROUP TRACE.h5 TOL [--layers N]

- every dataset of GOLDEN.h5:GROUP exists in the trace root with the same shape and dtype
  (with --layers N the trace ran N layers: later layers, final_norm_out and logits are not
  compared), input_ids equal /input_ids;
- topk_indices equal as sets per token; per-slot tensors compared by expert id;
- every float tensor within TOL x max|ref|.
Exits 1 with the worst error and the tolerance on any failure (output only: reads HDF5).
"""
import sys

import h5py
import numpy as np


def main():
    gpath, group, tpath, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    n_layers = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--layers" else None
    g, t = h5py.File(gpath, "r"), h5py.File(tpath, "r")
    ref = g[group]
    fails = []
    ids_ref = g["input_ids"][:]
    ids = t["input_ids"][:]
    if t["input_ids"].dtype != np.int32 or not np.array_equal(ids[: len(ids_ref)], ids_ref):
        fails.append("input_ids differ from the golden prompt")
    T = len(ids_ref)
    for a in ("tool", "version", "precision", "n_ranks"):
        if a not in t.attrs:
            fails.append(f"root attribute {a} missing")
    worst = 0.0
    names = []
    ref.visit(lambda n: names.append(n) if isinstance(ref[n], h5py.Dataset) else None)
    for n in sorted(names):
        parts = n.split("/")
        if n_layers is not None and (
            (parts[0] == "layers" and int(parts[1]) >= n_layers)
            or n in ("final_norm_out", "logits")  # computed after layer n_layers-1 here
        ):
            continue
        if n not in t:
            fails.append(f"{n}: missing in the trace")
            continue
        a, b = t[n], ref[n]
        if a.dtype != b.dtype or a.shape[1:] != b.shape[1:] or a.shape[0] < b.shape[0]:
            fails.append(f"{n}: shape/dtype {a.shape} {a.dtype} vs golden {b.shape} {b.dtype}")
            continue
        a, b = a[:T], b[:]
        if parts[-1] == "topk_indices":
            bad = sum(set(x) != set(y) for x, y in zip(a, b))
            if bad:
                fails.append(f"{n}: {bad} tokens with a different expert set")
            continue
        if parts[0] == "layers" and parts[-1] in ("topk_values", "topk_weights", "mlp1_out", "swiglu_out"):
            ia = t["/".join(parts[:-1] + ["topk_indices"])][:T]
            ib = ref["/".join(parts[:-1] + ["topk_indices"])][:]
            perm = np.array([[list(ra).index(e) if e in ra else 0 for e in rb] for ra, rb in zip(ia, ib)])
            a = np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=1)
        rel = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
        worst = max(worst, rel)
        print(f"{n:32s} rel {rel:.3e}")
        if not rel <= tol:
            fails.append(f"{n}: relative error {rel:.3e} above tolerance {tol:.0e}")
    for l in range(n_layers if n_layers is not None else len(ref["layers"])):
        sw_t = int(t[f"layers/{l}"].attrs["sliding_window"])
        sw_g = int(ref[f"layers/{l}"].attrs["sliding_window"])
        if sw_t != sw_g:
            fails.append(f"layers/{l}: sliding_window attribute {sw_t}, golden {sw_g}")
    print(f"worst relative error {worst:.3e} (tolerance {tol:.0e})")
    for f in fails:
        print("FAIL", f)
    sys.exit(1 if fails else 0)


main()
