#!/usr/bin/python3
"""Reads coordinate files written by Histo with h5py (what CLAM and TRIDENT use) and prints what they see."""
import sys, h5py
for path in sys.argv[1:]:
    with h5py.File(path, 'r') as f:
        d = f['coords']
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, 'item') else v) for k, v in sorted(d.attrs.items())}
        print(path.split('/')[-1], d.shape, d.dtype, d[:2].tolist(), attrs)
