#!/usr/bin/python3
"""Independent reference for few-shot classification of frozen features, written as golden/fewshot-golden.json.

SimpleShot (Wang et al., arXiv:1911.04623) / ProtoNet (Snell et al., NeurIPS 2017) as UNI (Chen et al., Nature Medicine
2024) evaluates patch encoders: per episode k support features per class from the training set; the features normalised
with the support's statistics (CL2N: subtract the support mean, L2-normalise; or the methods reference's min-max,
z-score, L2, atan, none); class prototypes = the mean of each class's support; every test feature to the nearest prototype
(Euclidean, scipy.spatial.distance.cdist); accuracy and balanced accuracy (sklearn.metrics.balanced_accuracy_score) per
episode; the mean over episodes and 1.96 standard errors (ddof 1).

Episodes are drawn so that any implementation can repeat them: for class c of episode e with seed s, SplitMix64
(Steele et al. 2014) is seeded with s * 0x9E3779B97F4A7C15 + e * 0xBF58476D1CE4E5B9 + c * 0x94D049BB133111EB (mod 2^64), and
a partial Fisher-Yates shuffle of the class's training indices (in increasing order) takes position i's swap partner at
i + next() mod (n - i) for the first k positions.

Usage:  /usr/bin/python3 fewshot_reference.py golden
"""
import json
import os
import sys

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import balanced_accuracy_score

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def draw(pool, k, seed, episode, cls):
    items = list(pool)
    state = (seed * 0x9E3779B97F4A7C15 + episode * 0xBF58476D1CE4E5B9 + cls * 0x94D049BB133111EB) & MASK
    for i in range(k):
        state, r = splitmix64(state)
        j = i + r % (len(items) - i)
        items[i], items[j] = items[j], items[i]
    return items[:k]


def normalise(kind, s, q):
    if kind == 'none':
        return s, q
    if kind == 'l2':
        return s / np.linalg.norm(s, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
    if kind == 'atan':
        return np.arctan(s) * 2 / np.pi, np.arctan(q) * 2 / np.pi
    if kind == 'zscore':
        m, sd = s.mean(0), np.maximum(s.std(0), 1e-12)
        return (s - m) / sd, (q - m) / sd
    if kind == 'minmax':
        lo, rng = s.min(0), np.maximum(s.max(0) - s.min(0), 1e-12)
        return (s - lo) / rng, (q - lo) / rng
    if kind == 'centre-l2':
        m = s.mean(0)
        a, b = s - m, q - m
        return a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    raise ValueError(kind)


def evaluate(train, ty, test, qy, classes, shots, episodes, kind, seed):
    by_class = [np.flatnonzero(ty == c).tolist() for c in range(classes)]
    out = {}
    for k in shots:
        acc, bal = [], []
        for e in range(episodes):
            support = [i for c in range(classes) for i in draw(by_class[c], k, seed, e, c)]
            s, q = normalise(kind, train[support].astype(np.float64), test.astype(np.float64))
            prototypes = s.reshape(classes, k, -1).mean(1)
            pred = cdist(q, prototypes).argmin(1)
            acc.append(float((pred == qy).mean()))
            bal.append(float(balanced_accuracy_score(qy, pred)))
        ci = lambda v: float(1.96 * np.std(v, ddof=1) / np.sqrt(len(v)))
        out[str(k)] = {'accuracy': float(np.mean(acc)), 'accuracy_ci': ci(acc), 'balanced': float(np.mean(bal)),
                       'balanced_ci': ci(bal)}
    return out


def main():
    if sys.argv[1:] != ['golden']:
        print(__doc__)
        sys.exit(2)
    rng = np.random.default_rng(5)
    classes, d = 3, 16
    centres = rng.normal(0, 1, (classes, d))
    ty = np.repeat(np.arange(classes), [30, 20, 25])
    qy = np.repeat(np.arange(classes), [40, 15, 25])
    train = (centres[ty] + rng.normal(0, 1.6, (len(ty), d))).astype(np.float32)
    test = (centres[qy] + rng.normal(0, 1.6, (len(qy), d))).astype(np.float32)
    shots, episodes, seed = [1, 2, 4, 8, 16], 50, 7
    # sanity: the cosine example of the methods reference
    u, v = np.array([1, 2, 3.]), np.array([4, 5, 6.])
    assert abs(u @ v / np.linalg.norm(u) / np.linalg.norm(v) - 0.9746) < 5e-5
    results = {kind: evaluate(train, ty, test, qy, classes, shots, episodes, kind, seed)
               for kind in ['centre-l2', 'l2', 'zscore', 'minmax', 'atan', 'none']}
    first = {str(c): draw(np.flatnonzero(ty == c).tolist(), 4, seed, 0, c) for c in range(classes)}
    doc = {'source': 'tools/reference/fewshot_reference.py golden', 'classes': classes, 'shots': shots, 'episodes': episodes,
           'seed': seed, 'train': train.tolist(), 'train_labels': ty.tolist(), 'test': test.tolist(), 'test_labels': qy.tolist(),
           'first_episode_4_shot_support': first, 'results': results}
    with open(os.path.join(HERE, 'golden', 'fewshot-golden.json'), 'w') as f:
        json.dump(doc, f)
    print({kind: [round(r[str(k)]['accuracy'], 3) for k in shots] for kind, r in results.items()})


if __name__ == '__main__':
    main()
