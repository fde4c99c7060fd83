#!/usr/bin/python3
"""Reads coordinate and feature files written by Histo with h5py (what CLAM and TRIDENT use) and prints
what they see: each dataset's shape, dtype, first rows and attributes."""
import sys, h5py


def show(name, d):
    attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, 'item') else v) for k, v in sorted(d.attrs.items())}
    first = [[round(float(x), 4) for x in row] for row in d[:2, :4]] if d.shape[0] else []
    print(' ', name, d.shape, d.dtype, first, attrs)


for path in sys.argv[1:]:
    with h5py.File(path, 'r') as f:
        print(path.split('/')[-1])
        for key in ('features', 'coords'):
            if key in f:
                show(key, f[key])
