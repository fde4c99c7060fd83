#!/usr/bin/python3
"""SciPy's linear_sum_assignment on seeded random cost matrices (square, wide, tall, with ties and large values), for
src/Histo/Evaluation/LinearAssignment.cs: the matrices, the pairs and the optimal total cost.
Usage: assignment_reference.py OUT_DIR   (writes golden/assignment-golden.json)"""
import json, os, sys
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
import numpy as np
from scipy.optimize import linear_sum_assignment

rng = np.random.default_rng(7)
cases = {
    'square-30': rng.random((30, 30)),
    'wide-5x9': rng.random((5, 9)) * 100,
    'tall-9x4': rng.normal(size=(9, 4)),
    'ties-6x6': rng.integers(0, 3, size=(6, 6)).astype(float),
    'negative-iou-12x15': -np.clip(rng.random((12, 15)) - 0.6, 0, None),
}
out = {}
for name, cost in cases.items():
    rows, cols = linear_sum_assignment(cost)
    out[name] = dict(cost=cost.tolist(), rows=rows.tolist(), columns=cols.tolist(), total=float(cost[rows, cols].sum()))
with open(os.path.join(sys.argv[1], 'assignment-golden.json'), 'w') as f:
    json.dump(out, f)
