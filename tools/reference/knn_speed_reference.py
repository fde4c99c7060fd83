#!/usr/bin/python3
"""scikit-learn side of `Histo.Bench knn`: KNeighborsClassifier(n_neighbors=20, metric='cosine', algorithm='brute')
on the same features; prints queries per second and the predictions' checksum. Usage: knn_speed_reference.py TRAIN.npy LABELS.npy TEST.npy"""
import json, sys, time
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

train, labels, test = np.load(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3])
knn = KNeighborsClassifier(n_neighbors=20, metric='cosine', algorithm='brute').fit(train, labels)
knn.predict(test[:100])
t = time.perf_counter()
pred = knn.predict(test)
dt = time.perf_counter() - t
print(json.dumps({'queries_per_second': len(test) / dt, 'predictions': pred.tolist()}))
