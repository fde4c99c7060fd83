#!/usr/bin/python3
"""Independent reference for nuclei instance-segmentation metrics, written as
golden/nuclei-metrics-golden.json.

Written from the published definitions and the authors' evaluation code only (never from Histo's C# code):
  * HoVer-Net (Graham et al., Medical Image Analysis 2019), github vqdang/hover_net:
      metrics/stats_utils.py: remap_label, get_fast_pq, get_dice_1, get_dice_2 / get_fast_dice_2,
      get_fast_aji, get_fast_aji_plus, pair_coordinates;
      compute_stats.py: run_nuclei_inst_stat (remap both maps, then the metrics) and
      run_nuclei_type_stat (centroid pairing with radius 12, f1_d, acc_type, per-type F1 with w = [2, 2, 1, 1]).
  * PanNuke (Gamper et al., arXiv:2003.10778), github TissueImageAnalytics/PanNuke-metrics: utils.py get_fast_pq /
    remap_label, run.py (per-class PQ is NaN when the truth has no instance of that class, mPQ = nanmean over the
    classes, bPQ = PQ of the class-agnostic instance map).
The numbers are HoVer-Net's; the computation is vectorised (pairwise intersections from one bincount over combined
ids instead of per-pair full-image masks), which gives the same matrices, the same argmax/Hungarian inputs and so the
same values.

Usage:  /usr/bin/python3 nuclei_metrics_reference.py [OUT_DIR]     (default: golden/ next to this script)
Needs NumPy, SciPy (1.10: linear_sum_assignment, cdist) and PIL; reads the MoNuSeg instance maps under
/work/shared/data/nuclei/monuseg (env HISTO_MONUSEG overrides) but writes only metrics of them, no pixels.

Conventions decided here where the published code is silent or raises (see also the JSON's fields):
  * every metric whose published formula is 0/0 is NaN (written as null), e.g. DQ with no instance on either side,
    detection F1 with no centroid on either side, acc_type with no paired centroid, f_c of a type absent from both
    truth and prediction;
  * AJI with an empty prediction: HoVer-Net's argmax over an empty axis raises; here overall_inter = 0 and the union
    is the truth's area, so AJI = 0 (AJI+ gives the same through its own code path);
  * ensemble Dice (dice2) with no overlapping true/pred pair: HoVer-Net divides 0 by 0 (ZeroDivisionError); here 0.0
    when at least one map has an instance (NaN only if both are empty);
  * centroids are the pixel means in float64 (x = column, y = row); HoVer-Net stores moment centroids as float32,
    which could only matter for a pair within ~1e-5 px of the radius: the script asserts that none is that close;
  * typed detection is run_nuclei_type_stat over one image with type_uid_list = [1, 2, 3, 4]; an image without
    instances is not replaced by HoVer-Net's dummy centroid (0, 0) of type 0 (the empty set is used instead).
"""
import base64
import json
import os
import sys
import time

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

RADIUS = 12
MATCH_IOU = 0.5
TYPES = [1, 2, 3, 4]
HERE = os.path.dirname(os.path.abspath(__file__))
MONUSEG = os.environ.get('HISTO_MONUSEG', '/work/shared/data/nuclei/monuseg')
NAN = float('nan')


def div(a, b):
    """a / b as a float, NaN for 0/0 (and for x/0)."""
    return float(a) / float(b) if b != 0 else NAN


# ----------------------------------------------------------------------------------------------- core quantities
def remap(label):
    """remap_label(by_size=False): ids renamed 1..n in increasing order of the original id, 0 stays background.
    Returns (remapped map as int64, sorted original ids)."""
    label = np.asarray(label, dtype=np.int64)
    ids = np.unique(label)
    ids = ids[ids != 0]
    out = np.zeros(label.shape, np.int64)
    fg = label != 0
    out[fg] = np.searchsorted(ids, label[fg]) + 1
    return out, ids


class Overlap:
    """Areas and the dense pairwise intersection matrix of two remapped maps (rows: truth 1..nt, cols: pred 1..np)."""

    def __init__(self, t, p):
        assert t.shape == p.shape
        self.nt, self.np_ = int(t.max(initial=0)), int(p.max(initial=0))
        self.at = np.bincount(t.ravel(), minlength=self.nt + 1)[1:].astype(np.float64)
        self.ap = np.bincount(p.ravel(), minlength=self.np_ + 1)[1:].astype(np.float64)
        both = (t > 0) & (p > 0)
        key = t[both] * (self.np_ + 1) + p[both]
        full = np.bincount(key, minlength=(self.nt + 1) * (self.np_ + 1)).reshape(self.nt + 1, self.np_ + 1)
        self.inter = full[1:, 1:].astype(np.float64)
        self.overlaps = self.inter > 0
        # HoVer-Net's pairwise_union: total - inter for intersecting pairs, 0 elsewhere
        self.union = np.where(self.overlaps, self.at[:, None] + self.ap[None, :] - self.inter, 0.0)


def fast_pq(ov, match_iou=MATCH_IOU):
    """get_fast_pq with match_iou >= 0.5: pairs with IoU > match_iou (unique), dq, sq = sum IoU / (tp + 1e-6)."""
    assert match_iou >= 0.5
    iou = np.zeros_like(ov.inter)
    iou[ov.overlaps] = ov.inter[ov.overlaps] / ov.union[ov.overlaps]  # inter / (total - inter), no epsilon
    iou[iou <= match_iou] = 0.0
    pt, pp = np.nonzero(iou)  # row-major order, as np.nonzero in the original
    paired_iou = iou[pt, pp]
    assert len(set(pt.tolist())) == len(pt) and len(set(pp.tolist())) == len(pp), 'IoU > 0.5 pairs must be unique'
    tp = len(pt)
    fn = ov.nt - tp
    fp = ov.np_ - tp
    dq = div(tp, tp + 0.5 * fp + 0.5 * fn)
    sq = float(paired_iou.sum() / (tp + 1.0e-6))
    return dict(dq=dq, sq=sq, pq=dq * sq, tp=tp, fp=fp, fn=fn)


def dice1(t, p):
    """get_dice_1: binary Dice of the foregrounds."""
    tb, pb = t > 0, p > 0
    return div(2.0 * np.sum(tb & pb), np.sum(tb) + np.sum(pb))


def dice2(ov):
    """get_dice_2 / get_fast_dice_2: over every intersecting (true, pred) pair, 2 sum(inter) / sum(|t| + |p|)."""
    inter = ov.inter[ov.overlaps].sum()
    markup = (ov.at[:, None] + ov.ap[None, :])[ov.overlaps].sum()
    if markup == 0:
        return 0.0 if (ov.nt + ov.np_) > 0 else NAN
    return float(2.0 * inter / markup)


def _aji_finish(ov, pt, pp):
    inter = ov.inter[pt, pp].sum()
    union = ov.union[pt, pp].sum()
    paired_t = np.zeros(ov.nt, bool)
    paired_t[pt] = True
    paired_p = np.zeros(ov.np_, bool)
    paired_p[pp] = True
    union += ov.at[~paired_t].sum() + ov.ap[~paired_p].sum()
    return div(inter, union)


def fast_aji(ov):
    """get_fast_aji: each true takes the pred of max inter / (union + 1e-6) over all preds (first index on ties,
    pred reuse allowed), trues whose max is 0 are unpaired; preds chosen by no true add their area to the union."""
    if ov.nt == 0 or ov.np_ == 0:
        return _aji_finish(ov, np.zeros(0, int), np.zeros(0, int))
    iou = ov.inter / (ov.union + 1.0e-6)
    best = np.argmax(iou, axis=1)
    best_iou = np.max(iou, axis=1)
    pt = np.nonzero(best_iou > 0.0)[0]
    return _aji_finish(ov, pt, best[pt])


def fast_aji_plus(ov):
    """get_fast_aji_plus: unique pairs by linear_sum_assignment(-IoU) with IoU = inter / (union + 1e-6), pairs with
    IoU > 0 kept; unpaired trues and preds add their areas to the union."""
    if ov.nt == 0 or ov.np_ == 0:
        return _aji_finish(ov, np.zeros(0, int), np.zeros(0, int))
    iou = ov.inter / (ov.union + 1.0e-6)
    pt, pp = linear_sum_assignment(-iou)
    keep = iou[pt, pp] > 0.0
    return _aji_finish(ov, pt[keep], pp[keep])


def centroids(m, n):
    """Pixel-mean centroids (x = column, y = row) of instances 1..n of a remapped map, shape (n, 2)."""
    rows, cols = np.indices(m.shape)
    area = np.bincount(m.ravel(), minlength=n + 1)[1:].astype(np.float64)
    cx = np.bincount(m.ravel(), weights=cols.ravel().astype(np.float64), minlength=n + 1)[1:] / area
    cy = np.bincount(m.ravel(), weights=rows.ravel().astype(np.float64), minlength=n + 1)[1:] / area
    return np.stack([cx, cy], axis=1) if n else np.zeros((0, 2))


def pair_coordinates(a, b, radius=RADIUS):
    """pair_coordinates: Hungarian on the Euclidean distances (minimum total distance over min(|a|,|b|) pairs),
    then pairs with distance > radius dropped. Returns (pairs (k, 2) of indices, unpaired a, unpaired b)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), int), np.arange(len(a)), np.arange(len(b))
    d = cdist(a, b, metric='euclidean')
    ia, ib = linear_sum_assignment(d)
    cost = d[ia, ib]
    # robustness: HoVer-Net's float32 centroids must not flip a pair across the radius
    assert np.all(np.abs(cost - radius) > 1e-4), 'a pair distance is within 1e-4 px of the radius'
    keep = cost <= radius
    pairs = np.stack([ia[keep], ib[keep]], axis=1)
    return pairs, np.setdiff1d(np.arange(len(a)), ia[keep]), np.setdiff1d(np.arange(len(b)), ib[keep])


def detection(t, p, nt, np_, t_type=None, p_type=None):
    """Centroid detection F1 (f1_d) and, with types, acc_type and the per-type F1 of run_nuclei_type_stat for one
    image."""
    pairs, ut, up = pair_coordinates(centroids(t, nt), centroids(p, np_))
    tp_d, fp_d, fn_d = len(pairs), len(up), len(ut)
    res = dict(f1=div(2 * tp_d, 2 * tp_d + fp_d + fn_d), det_tp=tp_d, det_fp=fp_d, det_fn=fn_d)
    if t_type is None:
        return res
    ptt, ppt = t_type[pairs[:, 0]], p_type[pairs[:, 1]]
    upt, utt = p_type[up], t_type[ut]
    same = int(np.sum(ppt == ptt))
    diff = int(np.sum(ppt != ptt))
    res['type_accuracy'] = div(same, same + diff)
    w = [2, 2, 1, 1]
    f_c = {}
    for c in TYPES:
        sel = (ptt == c) | (ppt == c)  # only pairs involving type c (so tn_dt is always 0, as in the original)
        a, b = ptt[sel], ppt[sel]
        tp_dt = int(np.sum((a == c) & (b == c)))
        tn_dt = int(np.sum((a != c) & (b != c)))
        fp_dt = int(np.sum((a != c) & (b == c)))
        fn_dt = int(np.sum((a == c) & (b != c)))
        fpd = int(np.sum(upt == c))
        fnd = int(np.sum(utt == c))
        f_c[str(c)] = div(2 * (tp_dt + tn_dt),
                          2 * (tp_dt + tn_dt) + w[0] * fp_dt + w[1] * fn_dt + w[2] * fpd + w[3] * fnd)
    res['f_c'] = f_c
    return res


def pannuke_pq(truth, pred, t_types, p_types):
    """PanNuke run.py for one image: per-class PQ on the maps of the instances of that class (remapped), NaN when the
    truth has none of the class; mPQ = nanmean over classes 1..4; bPQ = PQ of the full maps (NaN if truth empty)."""
    per = {}
    for c in TYPES:
        tc = np.where(np.isin(truth, [i for i, ty in t_types.items() if ty == c]), truth, 0)
        pc = np.where(np.isin(pred, [i for i, ty in p_types.items() if ty == c]), pred, 0)
        tr, _ = remap(tc)
        pr, _ = remap(pc)
        per[str(c)] = NAN if tr.max(initial=0) == 0 else fast_pq(Overlap(tr, pr))['pq']
    vals = [v for v in per.values() if not np.isnan(v)]
    mpq = float(np.mean(vals)) if vals else NAN
    tr, _ = remap(truth)
    pr, _ = remap(pred)
    bpq = NAN if tr.max(initial=0) == 0 else fast_pq(Overlap(tr, pr))['pq']
    return dict(pq_c=per, mpq=mpq, bpq=bpq)


def all_metrics(truth, pred, t_types=None, p_types=None):
    """compute_stats.run_nuclei_inst_stat for one image (both maps remapped first) + centroid detection (+ types)."""
    t, tids = remap(truth)
    p, pids = remap(pred)
    ov = Overlap(t, p)
    m = fast_pq(ov)
    out = dict(dq=m['dq'], sq=m['sq'], pq=m['pq'], dice1=dice1(t, p), dice2=dice2(ov), aji=fast_aji(ov),
               aji_plus=fast_aji_plus(ov))
    if t_types is None:
        d = detection(t, p, ov.nt, ov.np_)
    else:
        assert set(t_types) == set(tids.tolist()) and set(p_types) == set(pids.tolist()), 'every id needs a type'
        tt = np.array([t_types[i] for i in tids.tolist()], np.int64)
        pt = np.array([p_types[i] for i in pids.tolist()], np.int64)
        d = detection(t, p, ov.nt, ov.np_, tt, pt)
    out['f1'] = d['f1']
    out.update(tp=m['tp'], fp=m['fp'], fn=m['fn'])
    extra = dict(det_tp=d['det_tp'], det_fp=d['det_fp'], det_fn=d['det_fn'])
    if t_types is not None:
        out['type_accuracy'] = d['type_accuracy']
        out['f_c'] = d['f_c']
        pn = pannuke_pq(truth, pred, t_types, p_types)
        out['mpq'] = pn['mpq']
        out['bpq'] = pn['bpq']
        extra['pq_c'] = pn['pq_c']
    return out, extra


# ------------------------------------------------------------- slow literal version (cross-check of the fast one)
def slow_check(truth, pred, got):
    """Per-instance masks and loops, as the published definitions read; compared with the vectorised numbers."""
    t, _ = remap(truth)
    p, _ = remap(pred)
    tid = [i for i in np.unique(t) if i]
    pid = [i for i in np.unique(p) if i]
    tm = {i: t == i for i in tid}
    pm = {j: p == j for j in pid}
    inter = np.zeros((len(tid), len(pid)))
    union = np.zeros((len(tid), len(pid)))
    for i in tid:
        for j in np.unique(p[tm[i]]):
            if j == 0:
                continue
            inter[i - 1, j - 1] = np.sum(tm[i] & pm[j])
            union[i - 1, j - 1] = np.sum(tm[i] | pm[j])
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    tp = int(np.sum(iou > 0.5))
    fp, fn = len(pid) - tp, len(tid) - tp
    sq = iou[iou > 0.5].sum() / (tp + 1e-6)
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    assert (tp, fp, fn) == (got['tp'], got['fp'], got['fn'])
    assert abs(dq - got['dq']) < 1e-12 and abs(sq - got['sq']) < 1e-12
    # dice2
    s_i, s_m = 0.0, 0.0
    for i in tid:
        for j in pid:
            k = np.sum(tm[i] & pm[j])
            if k > 0:
                s_i += k
                s_m += tm[i].sum() + pm[j].sum()
    assert (s_m == 0 and got['dice2'] == 0.0) or abs(2 * s_i / s_m - got['dice2']) < 1e-12
    # AJI: loop per true, max IoU (with the 1e-6) over the preds it touches, first (smallest id) on ties
    used, oi, ou = set(), 0.0, 0.0
    for i in tid:
        best, bj = 0.0, None
        for j in pid:
            k = np.sum(tm[i] & pm[j])
            if k > 0:
                v = k / (np.sum(tm[i] | pm[j]) + 1e-6)
                if v > best:
                    best, bj = v, j
        if bj is None:
            ou += tm[i].sum()
        else:
            used.add(bj)
            oi += np.sum(tm[i] & pm[bj])
            ou += np.sum(tm[i] | pm[bj])
    ou += sum(pm[j].sum() for j in pid if j not in used)
    assert abs(oi / ou - got['aji']) < 1e-12


# -------------------------------------------------------------------------------------------- synthetic drawing
def ellipse(shape, cy, cx, ry, rx, theta):
    yy, xx = np.indices(shape, dtype=np.float64)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(theta), np.sin(theta)
    u = (dy * c + dx * s) / ry
    v = (-dy * s + dx * c) / rx
    return u * u + v * v <= 1.0


def random_nuclei(rng, shape, n, rmin=4.0, rmax=9.0, touching_pairs=0):
    """n nucleus ellipses with separated centres, plus touching pairs (second ellipse right against the first)."""
    h, w = shape
    nuc = []
    tries = 0
    while len(nuc) < n and tries < 20000:
        tries += 1
        ry, rx = rng.uniform(rmin, rmax, 2)
        cy, cx = rng.uniform(rmax, h - rmax), rng.uniform(rmax, w - rmax)
        if all(np.hypot(cy - q[0], cx - q[1]) > max(ry, rx) + max(q[2], q[3]) + 3 for q in nuc):
            nuc.append([cy, cx, ry, rx, rng.uniform(0, np.pi)])
    for k in range(min(touching_pairs, len(nuc))):
        cy, cx, ry, rx, th = nuc[k]
        ang = rng.uniform(0, 2 * np.pi)
        r2 = rng.uniform(rmin, rmax)
        dist = max(ry, rx) + r2 - 1.0
        ny, nx = cy + dist * np.sin(ang), cx + dist * np.cos(ang)
        if r2 < ny < h - r2 and r2 < nx < w - r2:
            nuc.append([ny, nx, r2, r2 * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi)])
    return nuc


def paint(shape, items):
    """items: list of (mask, id) painted in order (later ones overwrite: touching boundaries)."""
    m = np.zeros(shape, np.int64)
    for mask, i in items:
        m[mask] = i
    return m


def make_case(rng, shape, n, touching, ops, fp_extra=0, id_pool=None, types=None, type_ops=None):
    """Truth and prediction from the same nucleus list.
    ops: dict nucleus index -> operation on the prediction: 'miss', 'split', ('merge', j), ('shift', dy, dx),
    ('grow', dr); the rest get a 1 px jitter of the boundary. fp_extra: extra false-positive nuclei.
    id_pool: optional callable giving (truth ids, pred ids) for the painted instances.
    types: callable(rng, k) -> truth type of nucleus k; type_ops: dict k -> pred type."""
    nuc = random_nuclei(rng, shape, n, touching_pairs=touching)
    tmasks = [ellipse(shape, *q) for q in nuc]
    titems = [(mk, k + 1) for k, mk in enumerate(tmasks)]
    truth = paint(shape, titems)
    pitems = []  # (mask, pred label, truth nucleus index or None)
    merged_into = {}
    for k, (cy, cx, ry, rx, th) in enumerate(nuc):
        op = ops.get(k)
        if op == 'miss':
            continue
        if isinstance(op, tuple) and op[0] == 'merge':
            merged_into[op[1]] = k
    next_label = [len(nuc) + 1]

    def new_label():
        next_label[0] += 1
        return next_label[0] - 1
    for k, (cy, cx, ry, rx, th) in enumerate(nuc):
        op = ops.get(k)
        if op == 'miss':
            continue
        label = k + 1
        if k in merged_into:
            label = merged_into[k] + 1
        if op == 'split':
            mk = tmasks[k]
            yy, xx = np.indices(shape)
            ang = rng.uniform(0, np.pi)
            side = (yy - cy) * np.cos(ang) - (xx - cx) * np.sin(ang) > 0
            pitems.append((mk & side, label, k))
            pitems.append((mk & ~side, new_label(), k))
            continue
        if isinstance(op, tuple) and op[0] == 'shift':
            mk = ellipse(shape, cy + op[1], cx + op[2], ry, rx, th)
        elif isinstance(op, tuple) and op[0] == 'grow':
            mk = ellipse(shape, cy, cx, ry + op[1], rx + op[1], th)
        elif isinstance(op, tuple) and op[0] == 'merge':
            # this nucleus and nucleus op[1] get one prediction id: the convex-ish union of both with a bridge
            j = op[1]
            qy, qx = nuc[j][0], nuc[j][1]
            mk = tmasks[k] | tmasks[j] | ellipse(shape, (cy + qy) / 2, (cx + qx) / 2, 2.5,
                                                 np.hypot(cy - qy, cx - qx) / 2, np.arctan2(qx - cx, qy - cy))
        else:
            jy, jx = rng.uniform(-1, 1, 2)
            mk = ellipse(shape, cy + jy, cx + jx, ry + rng.uniform(-1, 1), rx + rng.uniform(-1, 1), th)
        pitems.append((mk, label, k))
    h, w = shape
    for _ in range(fp_extra):
        r = rng.uniform(3, 7)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        pitems.append((ellipse(shape, cy, cx, r, r * 0.8, rng.uniform(0, np.pi)), new_label(), None))
    # pred painted in a shuffled order (boundaries decided by the order)
    order = rng.permutation(len(pitems))
    pred = paint(shape, [(pitems[o][0], pitems[o][1]) for o in order])
    # types
    t_types = p_types = None
    if types is not None:
        t_type_of = {k + 1: types(rng, k) for k in range(len(nuc))}
        p_type_of = {}
        for mk, label, k in pitems:
            if k is None:
                p_type_of[label] = int(rng.integers(1, 5)) if type_ops is None or 'fp' not in type_ops \
                    else type_ops['fp'](rng)
            elif label not in p_type_of:
                p_type_of[label] = (type_ops or {}).get(k, t_type_of[k + 1]) if not callable(
                    (type_ops or {}).get(k)) else type_ops[k](rng)
        t_types = {i: t_type_of[i] for i in np.unique(truth).tolist() if i}
        p_types = {i: p_type_of[i] for i in np.unique(pred).tolist() if i}
    # relabel with large / non-consecutive ids
    if id_pool is not None:
        truth, pred, t_types, p_types = relabel(rng, truth, pred, t_types, p_types, id_pool)
    return truth, pred, t_types, p_types


def relabel(rng, truth, pred, t_types, p_types, pool_max):
    def one(m, ty):
        ids = [i for i in np.unique(m).tolist() if i]
        new = rng.choice(np.arange(1, pool_max + 1), size=len(ids), replace=False)
        new[rng.integers(len(ids))] = pool_max  # the largest id is used
        new = [int(x) for x in new]
        if len(set(new)) != len(new):
            new = sorted(set(new)) + [x for x in range(1, pool_max + 1) if x not in set(new)][:len(new) - len(set(new))]
        lut = dict(zip(ids, new))
        out = np.zeros_like(m)
        for a, b in lut.items():
            out[m == a] = b
        return out, (None if ty is None else {lut[a]: v for a, v in ty.items()})
    t2, tt = one(truth, t_types)
    p2, pt = one(pred, p_types)
    return t2, p2, tt, pt


def hand_case():
    """6x8 case computed by hand (see the asserts in main)."""
    t = np.zeros((6, 8), np.int64)
    p = np.zeros((6, 8), np.int64)
    t[0:2, 0:2] = 1  # area 4
    t[0:2, 4:7] = 2  # area 6
    t[4:6, 0:4] = 3  # area 8
    p[0:2, 0:3] = 1  # area 6, IoU with t1 = 4/6
    p[0:2, 5:7] = 2  # area 4, IoU with t2 = 4/6
    p[4:6, 2:6] = 3  # area 8, IoU with t3 = 4/12
    p[3, 7] = 4      # area 1, no overlap
    return t, p, {1: 1, 2: 2, 3: 3}, {1: 1, 2: 3, 3: 3, 4: 4}


def synthetic_cases():
    rng = np.random.default_rng(20240607)
    cases = {}
    t, p, tt, pt = hand_case()
    cases['hand_6x8_typed'] = (t, p, tt, pt)

    # perfect prediction, touching nuclei, 64x64
    shape = (64, 64)
    nuc = random_nuclei(rng, shape, 6, touching_pairs=2)
    t = paint(shape, [(ellipse(shape, *q), k + 1) for k, q in enumerate(nuc)])
    cases['perfect_64x64'] = (t, t.copy(), None, None)

    # shifted / jittered boundaries with touching nuclei, 128x128
    ops = {0: ('shift', 2, -1), 1: ('shift', -3, 2), 2: ('grow', 2.0), 3: ('grow', -1.5), 4: ('shift', 8, 0),
           5: ('shift', 0, 15)}
    cases['shifted_touching_128x128'] = make_case(rng, (128, 128), 18, 5, ops)[:2] + (None, None)

    # split, merged, missed and false-positive nuclei, 160x160
    ops = {0: 'split', 1: 'split', 2: ('merge', 14), 3: 'miss', 4: 'miss', 5: ('shift', 4, 4), 6: 'split'}
    t, p, _, _ = make_case(rng, (160, 160), 14, 4, ops, fp_extra=4)
    cases['split_merge_miss_fp_160x160'] = (t, p, None, None)

    # non-square, large and non-consecutive ids (up to 60000), 96x200
    ops = {0: 'split', 1: ('merge', 12), 2: 'miss', 3: ('shift', 3, -2)}
    t, p, _, _ = make_case(rng, (96, 200), 12, 3, ops, fp_extra=3, id_pool=60000)
    cases['large_ids_96x200'] = (t, p, None, None)

    # empty prediction
    shape = (64, 96)
    nuc = random_nuclei(rng, shape, 7, touching_pairs=1)
    t = paint(shape, [(ellipse(shape, *q), 3 * k + 5) for k, q in enumerate(nuc)])
    cases['empty_pred_64x96'] = (t, np.zeros(shape, np.int64), None, None)

    # everything together, 256x256
    ops = {k: 'split' for k in range(0, 4)}
    ops.update({4: ('merge', 40), 5: ('merge', 41), 6: 'miss', 7: 'miss', 8: 'miss', 9: ('shift', 5, -5),
                10: ('shift', 0, 13), 11: ('grow', 2.5), 12: ('grow', 3.0)})
    t, p, _, _ = make_case(rng, (256, 256), 40, 8, ops, fp_extra=6)
    cases['mixed_256x256'] = (t, p, None, None)

    # typed A: truth uses classes 1-3 (class 4 absent -> NaN PQ); class 3 present in truth, never predicted
    def ty_a(rng, k):
        return [1, 2, 3][k % 3]
    t, p, tt, pt = make_case(rng, (128, 128), 15, 3, {0: 'split', 1: 'miss', 4: ('shift', 3, 0)}, fp_extra=3,
                             types=ty_a, type_ops={**{k: (lambda r: int(r.choice([1, 2]))) for k in range(2, 20, 3)},
                                                   0: 2, 'fp': lambda r: 4})
    cases['typed_a_class4_absent_class3_unpredicted_128x128'] = (t, p, tt, pt)

    # typed B: all four classes, mismatches, large ids, 192x192
    def ty_b(rng, k):
        return int(rng.integers(1, 5))
    t, p, tt, pt = make_case(rng, (192, 192), 30, 5,
                             {0: 'split', 1: ('merge', 25), 2: 'miss', 3: 'miss', 4: ('shift', 6, 6), 5: ('grow', 2.0)},
                             fp_extra=4, id_pool=60000, types=ty_b,
                             type_ops={6: 1, 7: 2, 8: 3, 9: 4, 10: 1, 11: 3, 'fp': lambda r: int(r.integers(1, 5))})
    cases['typed_b_all_classes_large_ids_192x192'] = (t, p, tt, pt)

    # typed C: truth has classes 2-4, class 1 in neither (NaN PQ and NaN f_1), class 4 never predicted
    def ty_c(rng, k):
        return [2, 3, 4, 3][k % 4]
    t, p, tt, pt = make_case(rng, (256, 192), 24, 4,
                             {0: 'split', 1: 'miss', 2: ('shift', 0, 14), 5: ('merge', 21)}, fp_extra=3, types=ty_c,
                             type_ops={**{k: 2 for k in range(2, 40, 4)}, 'fp': lambda r: int(r.choice([2, 3]))})
    cases['typed_c_class1_absent_class4_unpredicted_256x192'] = (t, p, tt, pt)
    return cases


# ------------------------------------------------------------------------------------------------------- MoNuSeg
PREDICTION_RULE = (
    "From the truth instance map T (h x w, ids as read from inst/NAME.png), in this order: "
    "(a) P[y,x] = T[y-2, x-3] for y >= 2 and x >= 3, else 0; "
    "(b) pixels whose id % 7 == 0 become 0; "
    "(c) of the remaining pixels, those whose id % 11 == 0 get id + 1 (merged into the next id); "
    "(d) then pixels whose id (after c) % 13 == 0 and (x // 4) % 2 == 1 get id + 100000 "
    "(split into 4-px vertical stripes). x is the column, y the row; ids are the original ones (no remapping "
    "before the rule); the metrics then remap both maps as HoVer-Net's compute_stats does.")


def monuseg_prediction(T):
    h, w = T.shape
    P = np.zeros_like(T)
    P[2:, 3:] = T[:h - 2, :w - 3]
    P[P % 7 == 0] = 0
    m11 = (P != 0) & (P % 11 == 0)
    P[m11] += 1
    xx = np.broadcast_to(np.arange(w)[None, :], P.shape)
    m13 = (P != 0) & (P % 13 == 0) & ((xx // 4) % 2 == 1)
    P[m13] += 100000
    return P


def load_monuseg():
    inst = os.path.join(MONUSEG, 'inst')
    out = {}
    for f in sorted(os.listdir(inst)):
        if not f.endswith('.png'):
            continue
        name = f[:-4]
        T = np.array(Image.open(os.path.join(inst, f))).astype(np.int64)
        ids = np.unique(T)
        ids = ids[ids != 0]
        assert 100 <= T.max() < 1000, (name, T.max())
        rows = np.genfromtxt(os.path.join(MONUSEG, 'nuclei', name + '.csv'), delimiter=',', names=True)
        assert len(ids) == len(rows), (name, len(ids), len(rows))
        # the CSV's centroid (x = column, y = row) and area agree with the map
        t, tid = remap(T)
        c = centroids(t, len(tid))
        area = np.bincount(t.ravel())[1:]
        assert np.array_equal(tid, rows['instance_id'].astype(np.int64))
        assert np.array_equal(area, rows['area_px'].astype(np.int64))
        assert np.max(np.abs(c[:, 0] - rows['centroid_x'])) <= 0.0051 and np.max(np.abs(c[:, 1] - rows['centroid_y'])) <= 0.0051
        out[name] = T
    assert out, 'no MoNuSeg maps found under ' + inst
    return out


# ---------------------------------------------------------------------------------------------------------- main
def b64(m):
    assert m.min() >= 0 and m.max() <= 65535
    return base64.b64encode(m.astype('<u2').tobytes(order='C')).decode('ascii')


def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if np.isnan(x) else float(x)
    return x


def hand_asserts():
    close = lambda a, b, tol=1e-9: abs(a - b) < tol
    # perfect prediction on the hand truth
    t, p, tt, pt = hand_case()
    m, _ = all_metrics(t, t.copy(), tt, dict(tt))
    assert close(m['pq'], 1.0, 1e-6) and close(m['dq'], 1.0) and close(m['sq'], 3 / (3 + 1e-6))
    assert close(m['dice1'], 1.0) and close(m['dice2'], 1.0) and close(m['aji'], 1.0, 1e-12)
    assert close(m['aji_plus'], 1.0, 1e-12) and close(m['f1'], 1.0) and (m['tp'], m['fp'], m['fn']) == (3, 0, 0)
    assert close(m['type_accuracy'], 1.0) and close(m['mpq'], 1.0, 1e-6) and close(m['bpq'], 1.0, 1e-6)
    assert m['f_c']['4'] != m['f_c']['4']  # type 4 nowhere: 0/0 = NaN
    # the hand case: t1~p1 IoU 2/3, t2~p2 IoU 2/3, t3~p3 IoU 1/3, p4 alone
    m, extra = all_metrics(t, p, tt, pt)
    assert (m['tp'], m['fp'], m['fn']) == (2, 2, 1)
    assert close(m['dq'], 2 / 3.5) and close(m['sq'], (4 / 3) / (2 + 1e-6)) and close(m['pq'], 2 / 3.5 * (4 / 3) / (2 + 1e-6))
    assert close(m['dice1'], 24 / 37) and close(m['dice2'], 24 / 36)
    assert close(m['aji'], 12 / 25) and close(m['aji_plus'], 12 / 25)
    assert close(m['f1'], 6 / 7) and (extra['det_tp'], extra['det_fp'], extra['det_fn']) == (3, 1, 0)
    assert close(m['type_accuracy'], 2 / 3)
    assert close(m['f_c']['1'], 1.0) and close(m['f_c']['2'], 0.0) and close(m['f_c']['3'], 0.5) and close(m['f_c']['4'], 0.0)
    pq1 = 1.0 * (2 / 3) / (1 + 1e-6)
    assert close(extra['pq_c']['1'], pq1) and extra['pq_c']['2'] == 0.0 and extra['pq_c']['3'] == 0.0
    assert np.isnan(extra['pq_c']['4']) and close(m['mpq'], pq1 / 3) and close(m['bpq'], m['pq'])
    # AJI vs AJI+: one pred covering two truths is reused by AJI, paired once by AJI+
    t2 = np.zeros((4, 10), np.int64)
    t2[:, 0:4] = 1
    t2[:, 4:10] = 2
    p2 = np.zeros_like(t2)
    p2[:, 0:10] = 7
    o = Overlap(remap(t2)[0], remap(p2)[0])
    assert close(fast_aji(o), (16 + 24) / (40 + 40))  # both truths take pred 7: inter 16+24, union 40+40
    assert close(fast_aji_plus(o), 24 / (40 + 16))  # pred 7 paired with truth 2 only, truth 1 (16 px) added
    # remap preserves order and handles maps without background
    r, ids = remap(np.array([[5, 5], [60000, 9]]))
    assert r.tolist() == [[1, 1], [3, 2]] and ids.tolist() == [5, 9, 60000]


def main():
    t0 = time.time()
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'golden')
    hand_asserts()
    syn = {}
    rows = []
    for name, (t, p, tt, pt) in synthetic_cases().items():
        assert t.max() <= 65535 and p.max() <= 65535
        m, extra = all_metrics(t, p, tt, pt)
        slow_check(t, p, m)
        if name.startswith('perfect'):
            assert abs(m['pq'] - 1) < 1e-6 and m['dice1'] == 1.0 and abs(m['aji'] - 1) < 1e-9 and m['f1'] == 1.0
        syn[name] = dict(shape=list(t.shape), truth=b64(t), pred=b64(p),
                         truth_types=None if tt is None else [[int(i), int(v)] for i, v in sorted(tt.items())],
                         pred_types=None if pt is None else [[int(i), int(v)] for i, v in sorted(pt.items())],
                         metrics=m)
        rows.append((name, m, len(np.unique(t)) - 1, len(np.unique(p)) - 1, int(t.max()), int(p.max())))
    # the cases cover what they claim
    tc = syn['typed_a_class4_absent_class3_unpredicted_128x128']
    assert 4 not in [v for _, v in tc['truth_types']] and 3 in [v for _, v in tc['truth_types']]
    assert 3 not in [v for _, v in tc['pred_types']]
    tc = syn['typed_c_class1_absent_class4_unpredicted_256x192']
    assert 1 not in [v for _, v in tc['truth_types']] + [v for _, v in tc['pred_types']]
    assert 4 in [v for _, v in tc['truth_types']] and 4 not in [v for _, v in tc['pred_types']]
    assert max(r[4] for r in rows if r[0].startswith('large')) == 60000

    mon = {}
    for name, T in load_monuseg().items():
        P = monuseg_prediction(T)
        m, _ = all_metrics(T, P)
        mon[name] = m
    keys = list(next(iter(mon.values())).keys())
    mean = {k: float(np.mean([mon[n][k] for n in mon])) for k in keys}

    doc = {'radius': RADIUS, 'synthetic': syn,
           'monuseg': {'prediction_rule': PREDICTION_RULE, 'images': mon, 'mean': mean}}
    doc = clean(doc)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'nuclei-metrics-golden.json')
    with open(path, 'w') as f:
        json.dump(doc, f, allow_nan=False, indent=1)

    cols = ['dq', 'sq', 'pq', 'dice1', 'dice2', 'aji', 'aji_plus', 'f1', 'tp', 'fp', 'fn']
    fmt = lambda v: '  null' if v is None or (isinstance(v, float) and np.isnan(v)) else (
        '%6d' % v if isinstance(v, (int, np.integer)) else '%6.4f' % v)
    print('%-50s %s' % ('case', ' '.join('%6s' % c[:6] for c in cols)))
    for name, m, *_ in rows:
        print('%-50s %s' % (name, ' '.join(fmt(m[c]) for c in cols)))
        if 'mpq' in m:
            print('%-50s acc=%s f_c=%s mpq=%s bpq=%s' % ('', fmt(m['type_accuracy']),
                  '/'.join(fmt(m['f_c'][str(c)]).strip() for c in TYPES), fmt(m['mpq']), fmt(m['bpq'])))
    for name, m in list(mon.items()) + [('MoNuSeg mean', mean)]:
        print('%-50s %s' % (name, ' '.join(fmt(m[c]) if name != 'MoNuSeg mean' or c not in ('tp', 'fp', 'fn')
                                          else '%6.1f' % m[c] for c in cols)))
    print('wrote %s in %.1f s' % (path, time.time() - t0))


if __name__ == '__main__':
    main()
