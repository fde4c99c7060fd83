#!/usr/bin/python3
"""scikit-learn's values of the slide metrics Histo implements (src/Histo/Evaluation), on seeded inputs
with ties, written as golden/metrics-golden.json. Debian's python3-sklearn.
Usage: metrics_reference.py OUT_DIR"""
import json, os, sys
import numpy as np
from sklearn import metrics

rng = np.random.default_rng(42)
cases = []
for n, k in [(40, 2), (60, 3), (25, 4)]:
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    logits = np.round(logits, 1)  # create ties
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = np.round(probs, 3)
    probs = probs / probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    c = {'classes': k, 'labels': labels.tolist(), 'probabilities': probs.tolist(), 'predicted': pred.tolist(),
         'balanced_accuracy': metrics.balanced_accuracy_score(labels, pred),
         'macro_f1': metrics.f1_score(labels, pred, average='macro'),
         'accuracy': metrics.accuracy_score(labels, pred),
         'quadratic_kappa': metrics.cohen_kappa_score(labels, pred, weights='quadratic'),
         'mae': metrics.mean_absolute_error(labels, pred)}
    c['auc'] = metrics.roc_auc_score(labels, probs[:, 1]) if k == 2 else metrics.roc_auc_score(labels, probs, multi_class='ovr', average='macro')
    cases.append(c)
out = sys.argv[1] if len(sys.argv) > 1 else 'golden'
with open(os.path.join(out, 'metrics-golden.json'), 'w') as f:
    json.dump(cases, f)
print([(c['classes'], round(c['auc'], 4), round(c['quadratic_kappa'], 4)) for c in cases])
