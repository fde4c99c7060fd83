#!/usr/bin/python3
"""scikit-learn's GaussianNB, LogisticRegression (on standardised features), k-means purity and cosine kNN (KNeighborsClassifier(metric='cosine', algorithm='brute'), majority vote) on
seeded features, as golden/knn-golden.json for Histo's KnnClassifier. Debian's python3-sklearn.
Usage: knn_reference.py OUT_DIR"""
import json, os, sys
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

rng = np.random.default_rng(7)
centres = rng.normal(size=(4, 16))
train_labels = rng.integers(0, 4, 200)
train = centres[train_labels] + 1.5 * rng.normal(size=(200, 16))
test_labels = rng.integers(0, 4, 80)
test = centres[test_labels] + 1.5 * rng.normal(size=(80, 16))
out = {'train': train.round(6).tolist(), 'train_labels': train_labels.tolist(), 'test': test.round(6).tolist(), 'test_labels': test_labels.tolist(), 'predictions': {}}
for k in (1, 5, 20):
    knn = KNeighborsClassifier(n_neighbors=k, metric='cosine', algorithm='brute').fit(np.round(train, 6), train_labels)
    out['predictions'][str(k)] = knn.predict(np.round(test, 6)).tolist()
from sklearn.naive_bayes import GaussianNB
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.cluster import KMeans
tr, te = np.round(train, 6), np.round(test, 6)
out['gaussian_nb'] = GaussianNB().fit(tr, train_labels).predict(te).tolist()
scaler = StandardScaler().fit(tr)
out['logistic'] = LogisticRegression(max_iter=1000).fit(scaler.transform(tr), train_labels).predict(scaler.transform(te)).tolist()
unit = tr / np.linalg.norm(tr, axis=1, keepdims=True)
clusters = KMeans(4, n_init=10, random_state=0).fit_predict(unit)
out['kmeans_purity'] = float(sum(np.bincount(train_labels[clusters == c]).max() for c in np.unique(clusters)) / len(train_labels))
# ROC AUC of class scores (roc_auc_score: binary on the positive class's score, macro one-vs-rest otherwise):
# kNN's predict_proba (majority vote shares), logistic regression's and Gaussian naive Bayes's predict_proba.
from sklearn.metrics import roc_auc_score
knn5 = KNeighborsClassifier(n_neighbors=5, metric='cosine', algorithm='brute').fit(tr, train_labels)
auc = {'knn5': roc_auc_score(test_labels, knn5.predict_proba(te), multi_class='ovr', average='macro'),
       'logistic': roc_auc_score(test_labels, LogisticRegression(max_iter=1000).fit(scaler.transform(tr), train_labels)
                                 .predict_proba(scaler.transform(te)), multi_class='ovr', average='macro'),
       'gaussian_nb': roc_auc_score(test_labels, GaussianNB().fit(tr, train_labels).predict_proba(te), multi_class='ovr', average='macro')}
# Binary: classes 0 and 1 only, the score of class 1.
btr, bte = train_labels < 2, test_labels < 2
knn5b = KNeighborsClassifier(n_neighbors=5, metric='cosine', algorithm='brute').fit(tr[btr], train_labels[btr])
auc['knn5_binary'] = roc_auc_score(test_labels[bte], knn5b.predict_proba(te[bte])[:, 1])
scaler_b = StandardScaler().fit(tr[btr])
logistic_b = LogisticRegression(max_iter=1000).fit(scaler_b.transform(tr[btr]), train_labels[btr])
auc['logistic_binary'] = roc_auc_score(test_labels[bte], logistic_b.predict_proba(scaler_b.transform(te[bte]))[:, 1])
out['auc'] = auc
with open(os.path.join(sys.argv[1] if len(sys.argv) > 1 else 'golden', 'knn-golden.json'), 'w') as f:
    json.dump(out, f)
print('accuracy k=5', np.mean(np.array(out['predictions']['5']) == test_labels))
