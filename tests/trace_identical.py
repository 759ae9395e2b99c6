#!/usr/bin/python3
"""Are two traces bitwise identical? Every dataset (names, shapes, dtypes, bytes) and every
attribute except the rank count must match. Usage: trace_identical.py A.h5 B.h5"""
import sys

import h5py
import numpy as np


def items(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj))
    return out


def main():
    a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
    ia, ib = items(a), items(b)
    bad = []
    if set(ia) != set(ib):
        bad.append(f"objects differ: only in A {sorted(set(ia) - set(ib))[:5]}, only in B {sorted(set(ib) - set(ia))[:5]}")
    n = 0
    for name in sorted(set(ia) & set(ib)):
        x, y = ia[name], ib[name]
        if isinstance(x, h5py.Dataset):
            n += 1
            u, v = x[()], y[()]
            if u.dtype != v.dtype or u.shape != v.shape:
                bad.append(f"{name}: {u.dtype}{u.shape} vs {v.dtype}{v.shape}")
            elif u.tobytes() != v.tobytes():
                d = np.abs(u.astype(np.float64) - v.astype(np.float64))
                bad.append(f"{name}: {int((u != v).sum())} elements differ, max |diff| {d.max():.3g}")
        for k in set(x.attrs) | set(y.attrs):
            if k == "n_ranks":
                continue
            if k not in x.attrs or k not in y.attrs or not np.array_equal(x.attrs[k], y.attrs[k]):
                bad.append(f"{name or '/'}: attribute {k} differs")
    for k in set(a.attrs) | set(b.attrs):
        if k != "n_ranks" and (k not in a.attrs or k not in b.attrs or not np.array_equal(a.attrs[k], b.attrs[k])):
            bad.append(f"/: attribute {k} differs")
    for line in bad[:20]:
        print("DIFF", line)
    print(f"{sys.argv[2]}: {n} datasets compared, {'identical' if not bad else str(len(bad)) + ' differences'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
