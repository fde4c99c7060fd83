#!/usr/bin/python3
"""Independent reference for cell expansion, written as golden/cell-expansion-golden.json.

QuPath's cell detection grows each nucleus by a fixed distance into the background without letting cells overlap;
scikit-image implements that as skimage.segmentation.expand_labels(label_image, distance) (0.18+; Debian 12 ships 0.19):
every background pixel within `distance` (Euclidean, pixel units) of a labelled pixel takes the label of its nearest
labelled pixel (scipy.ndimage.distance_transform_edt with return_indices). This script calls that function on seeded
random label maps (touching and overlapping nuclei, narrow gaps, labels at the image border, QuPath's 5 um at
0.25 um/px = 20 px on a dense map), so the expected maps are scikit-image's own. Where two labels are equally near,
SciPy's choice is one valid answer; the test accepts the other nearest label there, checking the tie by brute force.

Usage:  /usr/bin/python3 cell_expansion_reference.py [OUT_DIR]     (default: golden/ next to this script)
"""
import base64
import json
import os
import sys

import numpy as np
import skimage
from skimage.segmentation import expand_labels

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(m):
    assert m.min() >= 0 and m.max() <= 65535
    return base64.b64encode(m.astype('<u2').tobytes(order='C')).decode('ascii')


def random_map(rng, h, w, n):
    m = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(2, 7), rng.uniform(2, 7)
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = int(rng.integers(1, 60000))
    return m


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'golden')
    rng = np.random.default_rng(7)
    cases = []
    sizes = [(40, 50, 6, 3.0), (64, 64, 25, 5.5), (96, 80, 60, 2.0), (50, 70, 1, 100.0), (30, 30, 0, 4.0), (200, 240, 180, 20.0)]
    for (h, w, n, d) in sizes:
        m = random_map(rng, h, w, n)
        e = expand_labels(m, distance=d)
        cases.append(dict(name='random_%dx%d_%d_nuclei_d%g' % (h, w, n, d), shape=[h, w], distance=d, labels=b64(m), expanded=b64(e)))
    # hand case: two one-pixel nuclei 8 px apart on a row, distance 4: the pixel half-way is a tie
    m = np.zeros((5, 13), np.int64)
    m[2, 2] = 3
    m[2, 10] = 8
    e = expand_labels(m, distance=4)
    assert e[2, 5] == 3 and e[2, 7] == 8 and e[2, 6] in (3, 8) and e[0, 0] == 3 and e[4, 12] == 8 and e[0, 6] == 0
    cases.append(dict(name='hand_two_dots', shape=[5, 13], distance=4.0, labels=b64(m), expanded=b64(e)))
    doc = dict(skimage=skimage.__version__, cases=cases)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'cell-expansion-golden.json')
    with open(path, 'w') as f:
        json.dump(doc, f, separators=(',', ':'))
    print('wrote %s (scikit-image %s)' % (path, skimage.__version__))


if __name__ == '__main__':
    main()
