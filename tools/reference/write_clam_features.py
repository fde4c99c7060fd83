#!/usr/bin/python3
"""Writes features files the way CLAM (create_patches/extract_features: 'features' float32 [N, D] and
'coords' int64 [N, 2] with h5py) and a float16 variant do, so tests check that Histo reads them.
Usage: write_clam_features.py OUT_DIR"""
import os, sys
import h5py, numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else 'golden'
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
features = rng.standard_normal((5, 8)).astype(np.float32)
coords = (np.arange(10).reshape(5, 2) * 256).astype(np.int64)
with h5py.File(os.path.join(out, 'clam-features.h5'), 'w') as f:
    f.create_dataset('features', data=features)
    d = f.create_dataset('coords', data=coords)
    d.attrs['patch_size'] = 256
    d.attrs['patch_level'] = 0
with h5py.File(os.path.join(out, 'float16-features.h5'), 'w') as f:
    f.create_dataset('features', data=features.astype(np.float16))
    f.create_dataset('coords', data=coords.astype(np.int32))
np.savetxt(os.path.join(out, 'clam-features.txt'), features, fmt='%.7f')
print('wrote', out)
