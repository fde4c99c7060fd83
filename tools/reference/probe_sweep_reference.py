#!/usr/bin/python3
"""Independent reference for the linear probe with its regularisation chosen on a validation split (UNI's protocol:
sweep the L2 strength, keep the best on validation, refit on all training data), as golden/probe-sweep-golden.json.

scikit-learn 1.2's LogisticRegression (lbfgs, multinomial, C the inverse L2 strength, max_iter 1000) on features
standardised with the fitted set's StandardScaler; the validation split is 20% of each class (rounded, at least one)
drawn with fewshot_reference.py's SplitMix64 sampler (episode 0, the given seed); C over 10^-4 .. 10^4 (9 values),
chosen by validation balanced accuracy (the smallest C among ties); then refit on the whole training set, and test
balanced accuracy and macro one-vs-rest AUC. Features: those of golden/fewshot-golden.json.

Usage:  /usr/bin/python3 probe_sweep_reference.py golden
"""
import json
import os
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fewshot_reference import draw  # noqa: E402

GRID = [10.0 ** e for e in range(-4, 5)]


def fit_predict(x, y, xt, c):
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x), y)
    return model.predict_proba(scaler.transform(xt))


def main():
    if sys.argv[1:] != ['golden']:
        print(__doc__)
        sys.exit(2)
    with open(os.path.join(HERE, 'golden', 'fewshot-golden.json')) as f:
        g = json.load(f)
    train, ty = np.array(g['train'], np.float64), np.array(g['train_labels'])
    test, qy = np.array(g['test'], np.float64), np.array(g['test_labels'])
    seed = 3
    validation = []
    for c in range(g['classes']):
        pool = np.flatnonzero(ty == c).tolist()
        validation += draw(pool, max(1, int(round(0.2 * len(pool)))), seed, 0, c)
    fit = np.setdiff1d(np.arange(len(ty)), validation)
    scores = {}
    for c in GRID:
        p = fit_predict(train[fit], ty[fit], train[validation], c)
        scores[c] = balanced_accuracy_score(ty[validation], p.argmax(1))
    best = max(scores.values())
    chosen = min(c for c in GRID if scores[c] == best)
    p = fit_predict(train, ty, test, chosen)
    doc = {'source': 'tools/reference/probe_sweep_reference.py golden', 'seed': seed, 'grid': GRID,
           'validation': sorted(int(i) for i in validation), 'validation_balanced_accuracy': [scores[c] for c in GRID],
           'chosen_c': chosen, 'test_balanced_accuracy': balanced_accuracy_score(qy, p.argmax(1)),
           'test_auc': roc_auc_score(qy, p, multi_class='ovr', average='macro')}
    with open(os.path.join(HERE, 'golden', 'probe-sweep-golden.json'), 'w') as f:
        json.dump(doc, f, indent=1)
    print(doc['validation_balanced_accuracy'], chosen, doc['test_balanced_accuracy'], doc['test_auc'])


if __name__ == '__main__':
    main()
