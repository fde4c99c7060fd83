#!/usr/bin/python3
"""Independent reference for COCO-style mask and box average precision of nuclei instances, written as
golden/coco-ap-golden.json.

Written from the COCO evaluation's published semantics (Lin et al., ECCV 2014; github cocodataset/cocoapi,
PythonAPI/pycocotools/cocoeval.py evaluate/evaluateImg/accumulate/summarize and common/maskApi.c), never from
Histo's C# code. pycocotools itself is not installed on Debian 12, so its steps are written out here, for one
category, one area range ('all') and no crowd or ignored regions, which is what nuclei label maps give:
  * IoU thresholds np.linspace(.5, .95, 10), recall thresholds np.linspace(0, 1, 101);
  * per image: detections sorted by score, highest first, with a stable sort (numpy mergesort), then cut to maxDets;
    at each threshold t each detection in that order takes, among the truths not yet matched, the one of highest IoU
    with IoU >= min(t, 1 - 1e-10); on equal IoU the later truth wins (cocoeval's `if ious < iou: continue`);
  * over the images (in image order): the kept detections' scores concatenated and sorted again (stable), cumulative
    true and false positives, recall = tp / number of truths, precision = tp / (tp + fp + eps), precision made
    non-increasing from the right, read at the first index where recall >= each recall threshold (0 past the end);
  * AP = mean over thresholds and recall points; AP50 and AP75 at one threshold; AR = mean over thresholds of the
    last recall; no truth in the dataset: -1 in cocoeval, NaN (null) here;
  * mask IoU from pixel sets; box IoU of [x, y, w, h] boxes, w = last column - first column + 1 (maskApi's rleToBbox),
    intersection width min(x1 + w1, x2 + w2) - max(x1, x2) (maskApi's bbIou).
Masks and boxes come from the label maps of the nuclei metrics' golden file (written by nuclei_metrics_reference.py),
and the MoNuSeg instance maps of the shared data against nuclei_metrics_reference.py's prediction rule; detection scores
are drawn here (two decimals, so there are ties) and written into the golden file.

Usage:  /usr/bin/python3 coco_ap_reference.py [OUT_DIR]     (default: golden/ next to this script)
"""
import base64
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from nuclei_metrics_reference import load_monuseg, monuseg_prediction  # noqa: E402

IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
REC_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
DENSE_MAX_DETS = 3000


def instances(label):
    """Instances of a label map in ascending id order: (id, pixel mask, [x, y, w, h] box, area)."""
    out = []
    for i in np.unique(label):
        if i == 0:
            continue
        m = label == i
        rows, cols = np.nonzero(m)
        box = [float(cols.min()), float(rows.min()), float(cols.max() - cols.min() + 1), float(rows.max() - rows.min() + 1)]
        out.append(dict(id=int(i), mask=m, bbox=box, area=int(m.sum())))
    return out


def box_iou(d, g):
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    return i / (d[2] * d[3] + g[2] * g[3] - i)


def mask_iou(d, g):
    if box_iou(d['bbox'], g['bbox']) == 0:
        return 0.0
    i = np.logical_and(d['mask'], g['mask']).sum()
    if i == 0:
        return 0.0
    return float(i) / float(d['area'] + g['area'] - i)


def evaluate_image(gts, dts, scores, iou_type, max_det):
    """evaluateImg for one image: (kept scores in score order, matched flags [T, D]) or None without any instance."""
    if len(gts) == 0 and len(dts) == 0:
        return None
    order = np.argsort([-scores[d['id']] for d in dts], kind='mergesort')
    dt = [dts[i] for i in order[0:max_det]]
    T, D, G = len(IOU_THRS), len(dt), len(gts)
    iou_fn = mask_iou if iou_type == 'segm' else (lambda a, b: box_iou(a['bbox'], b['bbox']))
    ious = np.array([[iou_fn(d, g) for g in gts] for d in dt]).reshape(D, G)
    dtm = np.zeros((T, D), bool)
    for tind, t in enumerate(IOU_THRS):
        gtm = np.zeros(G, bool)
        for dind in range(D):
            iou = min([t, 1 - 1e-10])
            m = -1
            for gind in range(G):
                if gtm[gind]:
                    continue
                if ious[dind, gind] < iou:
                    continue
                iou = ious[dind, gind]
                m = gind
            if m == -1:
                continue
            dtm[tind, dind] = True
            gtm[m] = True
    return dict(scores=np.array([scores[d['id']] for d in dt], float), matched=dtm, n_gt=G)


def accumulate(evals):
    evals = [e for e in evals if e is not None]
    T, R = len(IOU_THRS), len(REC_THRS)
    if not evals:
        return None
    npig = sum(e['n_gt'] for e in evals)
    if npig == 0:
        return None
    s = np.concatenate([e['scores'] for e in evals])
    inds = np.argsort(-s, kind='mergesort')
    dtm = np.concatenate([e['matched'] for e in evals], axis=1)[:, inds]
    precision = np.zeros((T, R))
    recall = np.zeros(T)
    tp_sum = np.cumsum(dtm, axis=1).astype(float)
    fp_sum = np.cumsum(~dtm, axis=1).astype(float)
    for t in range(T):
        tp, fp = tp_sum[t], fp_sum[t]
        nd = len(tp)
        rc = tp / npig
        pr = (tp / (fp + tp + np.spacing(1))).tolist()
        recall[t] = rc[-1] if nd else 0
        for i in range(nd - 1, 0, -1):
            if pr[i] > pr[i - 1]:
                pr[i - 1] = pr[i]
        q = np.zeros(R)
        for ri, pi in enumerate(np.searchsorted(rc, REC_THRS, side='left')):
            if pi < nd:
                q[ri] = pr[pi]
        precision[t] = q
    t50 = int(np.where(IOU_THRS == .5)[0][0])
    t75 = int(np.where(IOU_THRS == .75)[0][0])
    return dict(ap=float(precision.mean()), ap50=float(precision[t50].mean()), ap75=float(precision[t75].mean()),
                ar=float(recall.mean()), ap_by_threshold=[float(v) for v in precision.mean(axis=1)])


def evaluate(images, max_det):
    """images: list of (truth map, prediction map, scores by prediction id). Both IoU types, dataset and per image."""
    out = {}
    for iou_type, key in (('segm', 'mask'), ('bbox', 'box')):
        evals = []
        for truth, pred, scores in images:
            evals.append(evaluate_image(instances(truth), instances(pred), scores, iou_type, max_det))
        out[key] = dict(dataset=accumulate(evals), images=[accumulate([e]) for e in evals])
    return out


def decode(case):
    h, w = case['shape']
    return np.frombuffer(base64.b64decode(case[('truth')]), '<u2').reshape(h, w).astype(np.int64), \
        np.frombuffer(base64.b64decode(case['pred']), '<u2').reshape(h, w).astype(np.int64)


def draw_scores(rng, pred):
    ids = [int(i) for i in np.unique(pred) if i != 0]
    return {i: float(np.round(rng.random(), 2)) for i in ids}


def hand_asserts():
    # one truth, two detections: the better-scored one overlaps IoU 0.6 (matched at 0.50-0.60), the other is an FP
    t = np.zeros((10, 10), np.int64)
    t[0:5, 0:6] = 1                      # 30 px
    p = np.zeros_like(t)
    p[0:3, 0:6] = 4                      # 18 px inside: IoU 18/30 = 0.6
    p[7:9, 7:9] = 9                      # elsewhere
    r = evaluate([(t, p, {4: 0.9, 9: 0.1})], 100)['mask']['dataset']
    # thresholds 0.50, 0.55, 0.60 match (IoU >= t): precision 1 up to recall 1 -> AP_t = 1; others 0
    assert abs(r['ap'] - 3 / 10) < 1e-12 and abs(r['ap50'] - 1) < 1e-12 and r['ap75'] == 0.0 and abs(r['ar'] - 0.3) < 1e-12
    # scores swapped: the FP comes first, precision at recall 1 is 1/2 and the envelope keeps it
    r = evaluate([(t, p, {4: 0.1, 9: 0.9})], 100)['mask']['dataset']
    assert abs(r['ap50'] - 0.5) < 1e-12
    # maxDets 1 with the FP first: the true detection is cut, AP 0
    r = evaluate([(t, p, {4: 0.1, 9: 0.9})], 1)['mask']['dataset']
    assert r['ap'] == 0.0
    # box IoU: boxes [0,0,6,5] and [0,0,6,3] -> 18/30, the same here
    r = evaluate([(t, p, {4: 0.9, 9: 0.1})], 100)['box']['dataset']
    assert abs(r['ap'] - 3 / 10) < 1e-12


def main():
    t0 = time.time()
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'golden')
    hand_asserts()
    with open(os.path.join(HERE, 'golden', 'nuclei-metrics-golden.json')) as f:
        metrics_golden = json.load(f)
    rng = np.random.default_rng(20261203)
    names, images = [], []
    for name, case in metrics_golden['synthetic'].items():
        truth, pred = decode(case)
        names.append(name)
        images.append((truth, pred, draw_scores(rng, pred)))
    # every score equal: the order is the prediction ids' (the stable sort keeps the input order)
    t, p, _ = images[names.index('mixed_256x256')]
    names.append('mixed_256x256_equal_scores')
    images.append((t, p, {i: 1.0 for i in np.unique(p) if i != 0}))
    synthetic = evaluate(images, DENSE_MAX_DETS)
    few = evaluate(images, 10)

    mon_names, mon_images = [], []
    for name, T in load_monuseg().items():
        P = monuseg_prediction(T)
        mon_names.append(name)
        mon_images.append((T, P, draw_scores(rng, P)))
    monuseg = evaluate(mon_images, DENSE_MAX_DETS)

    def scores_json(s):
        return [[int(i), v] for i, v in sorted(s.items())]

    doc = dict(iou_thresholds=IOU_THRS.tolist(), recall_points=len(REC_THRS), dense_max_dets=DENSE_MAX_DETS,
               synthetic=dict(names=names, scores=[scores_json(s) for _, _, s in images],
                              truth_pred_from=['nuclei-metrics-golden.json synthetic ' + n for n in names[:-1]]
                              + ['as mixed_256x256'],
                              max_dets={str(DENSE_MAX_DETS): synthetic, '10': few}),
               monuseg=dict(names=mon_names, scores=[scores_json(s) for _, _, s in mon_images],
                            max_dets={str(DENSE_MAX_DETS): monuseg}))

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'coco-ap-golden.json')
    with open(path, 'w') as f:
        json.dump(clean(doc), f, allow_nan=False, separators=(',', ':'))
    for label, res, ns in (('synthetic', synthetic, names), ('monuseg', monuseg, mon_names)):
        for key in ('mask', 'box'):
            d = res[key]['dataset']
            print('%-10s %-4s dataset AP %.4f AP50 %.4f AP75 %.4f AR %.4f' % (label, key, d['ap'], d['ap50'], d['ap75'], d['ar']))
    print('wrote %s in %.1f s' % (path, time.time() - t0))


if __name__ == '__main__':
    main()
