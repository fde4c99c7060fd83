#!/usr/bin/python3
"""Stain normalisation as torchstain 1.4.1's numpy backend does it (EIDOSLAB/torchstain, read at c94179d:
torchstain/numpy/normalizers/macenko.py, reinhard.py, utils/rgb2lab.py, lab2rgb.py, split.py, stats.py),
re-implemented here from those semantics (torchstain is not installed): NumpyMacenkoNormalizer (float64) and
NumpyReinhardNormalizer (float32 LAB in OpenCV 8-bit scaling, float64 back to RGB). Inputs are two formula
"H&E-like" 48x64 RGB uint8 images (Beer-Lambert with fixed stain pairs); output golden/stain-golden.json for
the C# port, with intermediates for a few pixels. Optional pictures under /tmp/stain (real data stays there).
Usage: stain_reference.py OUT_DIR [--no-pictures]"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_v] = '1'  # a CPU benchmark runs beside: keep BLAS single-threaded
import itertools, json, sys
import numpy as np

IO, ALPHA, BETA = 240, 1, 0.15
H_IMG, W_IMG = 48, 64
# torchstain's defaults, used by normalize() when fit() was never called
HE_REF_DEFAULT = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
MAXC_REF_DEFAULT = np.array([1.9705, 1.0308])

FORMULA = (
    "H=48 rows (y=0..47), W=64 cols (x=0..63), float64 throughout, pixel p = y*64 + x, RGB. "
    "unit(v) = v/||v||_2. Source stains: h = unit(0.650, 0.704, 0.286), e = unit(0.072, 0.990, 0.105); "
    "target stains: h = unit(0.600, 0.760, 0.250), e = unit(0.150, 0.950, 0.270). "
    "Tissue (x < 51): source s = 0.5 + 0.5*sin(0.21*x + 0.13*y), t = 0.5 + 0.5*cos(0.17*x - 0.23*y + 0.5), "
    "cH = 1.5*s^2, cE = 0.8*t^2 + 0.05; target s = 0.5 + 0.5*sin(0.15*x - 0.19*y + 1.0), "
    "t = 0.5 + 0.5*cos(0.23*x + 0.09*y), cH = 1.1*s^2, cE = 1.2*t^2 + 0.08. "
    "Background (x >= 51, 13 of 64 columns, both images): cH = 0.015*(1 + sin(0.9*x + 0.4*y)), "
    "cE = 0.01*(1 + cos(0.7*y)). I_c = 240*exp(-(cH*h_c + cE*e_c)), then np.rint (half to even), "
    "clip to [0, 255], uint8; finally a glare patch, y < 3 and x >= 58 (18 px, both images), is set to 255.")


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def formula_images():
    y, x = np.mgrid[0:H_IMG, 0:W_IMG].astype(np.float64)
    bg = x >= 51
    cH_bg, cE_bg = 0.015 * (1 + np.sin(0.9 * x + 0.4 * y)), 0.01 * (1 + np.cos(0.7 * y))
    out = []
    for (h, e), (s, t, kh, ke, ce0) in [
            ((unit([0.650, 0.704, 0.286]), unit([0.072, 0.990, 0.105])),
             (0.5 + 0.5 * np.sin(0.21 * x + 0.13 * y), 0.5 + 0.5 * np.cos(0.17 * x - 0.23 * y + 0.5), 1.5, 0.8, 0.05)),
            ((unit([0.600, 0.760, 0.250]), unit([0.150, 0.950, 0.270])),
             (0.5 + 0.5 * np.sin(0.15 * x - 0.19 * y + 1.0), 0.5 + 0.5 * np.cos(0.23 * x + 0.09 * y),
              1.1, 1.2, 0.08))]:
        cH = np.where(bg, cH_bg, kh * s * s)
        cE = np.where(bg, cE_bg, ke * t * t + ce0)
        od = cH[..., None] * h + cE[..., None] * e
        img = np.clip(np.rint(IO * np.exp(-od)), 0, 255).astype(np.uint8)
        img[(y < 3) & (x >= 58)] = 255                # glare: OD < 0, so Macenko's output can pass 255
        out.append(img)
    return out[0], out[1], int(bg.sum())


# ---------------- Macenko (NumpyMacenkoNormalizer) ----------------

def macenko_matrices(I, Io=IO, alpha=ALPHA, beta=BETA, flip=(1.0, 1.0)):
    """torchstain's __compute_matrices; flip multiplies eigenvector columns 1, 2 (a sign-invariance check)."""
    I = I.reshape((-1, 3))
    OD = -np.log((I.astype(float) + 1) / Io)          # float64; +1 before dividing by Io
    ODhat = OD[~np.any(OD < beta, axis=1)]            # keep pixels whose 3 ODs are all >= beta
    cov = np.cov(ODhat.T)                             # 3x3, rows = channels, centred, ddof=1
    evals, eigvecs = np.linalg.eigh(cov)              # ascending eigenvalues, LAPACK's signs
    eigvecs = eigvecs.copy()
    eigvecs[:, 1] *= flip[0]
    eigvecs[:, 2] *= flip[1]
    V = eigvecs[:, 1:3]                               # columns: 2nd largest, largest
    That = ODhat.dot(V)
    phi = np.arctan2(That[:, 1], That[:, 0])          # atan2(proj on largest, proj on 2nd largest)
    minPhi = np.percentile(phi, alpha)
    maxPhi = np.percentile(phi, 100 - alpha)
    vMin = V.dot(np.array([(np.cos(minPhi), np.sin(minPhi))]).T)
    vMax = V.dot(np.array([(np.cos(maxPhi), np.sin(maxPhi))]).T)
    # hematoxylin first: the vector with the larger red OD component (tie -> vMax first)
    if vMin[0] > vMax[0]:
        HE = np.array((vMin[:, 0], vMax[:, 0])).T
    else:
        HE = np.array((vMax[:, 0], vMin[:, 0])).T
    Y = np.reshape(OD, (-1, 3)).T                     # all pixels, background too
    C = np.linalg.lstsq(HE, Y, rcond=None)[0]         # 2 x N
    maxC = np.array([np.percentile(C[0, :], 99), np.percentile(C[1, :], 99)])
    return dict(OD=OD, ODhat=ODhat, cov=cov, evals=evals, eigvecs=eigvecs, That=That, phi=phi, minPhi=minPhi,
                maxPhi=maxPhi, vMin=vMin[:, 0], vMax=vMax[:, 0], HE=HE, C=C, maxC=maxC)


def macenko_normalize(I, HERef, maxCRef, Io=IO, alpha=ALPHA, beta=BETA, flip=(1.0, 1.0)):
    h, w, c = I.shape
    m = macenko_matrices(I, Io, alpha, beta, flip)
    scale = np.divide(m['maxC'], maxCRef)
    C2 = np.divide(m['C'], scale[:, np.newaxis])      # C * maxCRef / maxC
    Inorm_f = np.multiply(Io, np.exp(-HERef.dot(C2)))  # 3 x N float64
    Inorm_f[Inorm_f > 255] = 255                       # upper clip only (exp > 0), 255 not 254
    Inorm = np.reshape(Inorm_f.T, (h, w, c)).astype(np.uint8)  # truncation
    H = np.multiply(Io, np.exp(np.expand_dims(-HERef[:, 0], 1).dot(np.expand_dims(C2[0, :], 0))))
    H[H > 255] = 255
    E = np.multiply(Io, np.exp(np.expand_dims(-HERef[:, 1], 1).dot(np.expand_dims(C2[1, :], 0))))
    E[E > 255] = 255
    m.update(C2=C2, Inorm_f=Inorm_f.T.copy(), Inorm=Inorm,
             H=np.reshape(H.T, (h, w, c)).astype(np.uint8), E=np.reshape(E.T, (h, w, c)).astype(np.uint8))
    return m


# ---------------- Reinhard (NumpyReinhardNormalizer, method=None) ----------------
_RGB2XYZ = np.array([[0.412453, 0.357580, 0.180423],
                     [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]])
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)                   # float64


def rgb2lab(rgb):
    """float32 sRGB in [0, 1] -> float32 LAB in OpenCV 8-bit scaling (L*2.55, a+128, b+128), D65 white."""
    arr = rgb.astype('float32').copy()
    mask = arr > 0.04045
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    xyz = np.dot(arr, _RGB2XYZ.T.astype(arr.dtype))   # float32 matrix
    arr = xyz / np.asarray((0.95047, 1., 1.08883), dtype=xyz.dtype)
    mask = arr > 0.008856
    arr[mask] = np.cbrt(arr[mask])
    arr[~mask] = 7.787 * arr[~mask] + 16. / 116.
    x, y, z = arr[..., 0], arr[..., 1], arr[..., 2]
    L, a, b = 116. * y - 16., 500.0 * (x - y), 200.0 * (y - z)
    return np.stack([L * 2.55, a + 128, b + 128], axis=-1)  # float32


def lab2rgb(lab):
    """OpenCV-scaled LAB (float32) -> sRGB in [0, 1]; float32 up to XYZ, float64 from the XYZ->RGB matmul on."""
    lab = lab.copy()
    lab[..., 0] /= 2.55
    lab[..., 1:] -= 128
    y = (lab[..., 0] + 16.) / 116.
    x = lab[..., 1] / 500. + y
    z = y - lab[..., 2] / 200.
    xyz = np.stack([x, y, z], axis=-1)
    mask = xyz > 0.2068966
    xyz[mask] = np.power(xyz[mask], 3.)
    xyz[~mask] = (xyz[~mask] - 16.0 / 116.) / 7.787
    xyz *= np.array((0.95047, 1., 1.08883), dtype=xyz.dtype)
    rgb = np.matmul(xyz, _XYZ2RGB.T)                  # float32 @ float64 -> float64
    mask = rgb > 0.0031308
    rgb[mask] = 1.055 * np.power(rgb[mask], 1 / 2.4) - 0.055
    rgb[~mask] *= 12.92
    return np.clip(rgb, 0, 1)


def lab_split(lab):
    lab = lab.astype('float32')
    return lab[..., 0] / 2.55, lab[..., 1] - 128, lab[..., 2] - 128  # back to L in [0, 100], a, b


def lab_stats(I):
    labs = lab_split(rgb2lab(I.astype('float32') / 255))
    stats = np.array([(np.mean(c), np.std(c)) for c in labs])      # float32, population std (ddof=0)
    return labs, stats[:, 0], stats[:, 1]


def reinhard_normalize(I, t_means, t_stds):
    labs, mus, stds = lab_stats(I)
    res = [(c - mu) / sd * sdT + muT for c, mu, sd, muT, sdT in zip(labs, mus, stds, t_means, t_stds)]
    merged = np.stack([res[0] * 2.55, res[1] + 128, res[2] + 128], axis=-1)
    rgb = lab2rgb(merged)
    return dict(labs=labs, mus=mus, stds=stds, res=res, merged=merged, rgb=rgb,
                out=(rgb * 255).astype('uint8'))                 # truncation


def cast_margin(f):
    """How close float values (about to be truncated to uint8) come to an integer (255s and exact 240s left out)."""
    f = np.asarray(f, dtype=np.float64).ravel()
    clipped = int((f >= 255).sum())
    f = f[(f < 255) & (f != 240)]                     # 240.0 exactly: input 239 -> OD 0 -> C 0, exact anywhere
    frac = f - np.floor(f)
    d = np.minimum(frac, 1 - frac)
    return dict(values_at_or_over_255=clipped, min_distance=float(d.min()), within_1e_6=int((d < 1e-6).sum()),
                within_1e_4=int((d < 1e-4).sum()))


def fl(a):
    return np.asarray(a, dtype=np.float64).tolist()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else 'golden'
    src, tgt, n_bg = formula_images()
    pix = [0, 777, 1234, 2000, 2345, 3071, 380, 63]   # p = y*64 + x; 3071, 380 (input 239) background; 63 glare

    fitted = macenko_matrices(tgt)
    ms = macenko_normalize(src, fitted['HE'], fitted['maxC'])
    md = macenko_normalize(src, HE_REF_DEFAULT, MAXC_REF_DEFAULT)
    # eigenvector signs are LAPACK's choice: flipping either column must give the same HE and image
    flips = []
    for f in itertools.product((1.0, -1.0), repeat=2):
        mf = macenko_normalize(src, fitted['HE'], fitted['maxC'], flip=f)
        flips.append(dict(flip=list(f), he_max_abs_diff=float(np.abs(mf['HE'] - ms['HE']).max()),
                          image_pixels_differing=int((mf['Inorm'] != ms['Inorm']).sum())))
    for name, m in (('target', fitted), ('source', ms)):
        pr = m['That'][:, 1]
        print(f'{name}: ODhat {len(m["ODhat"])} px, evals {m["evals"]}, largest-eigvec projections '
              f'{"all >0" if (pr > 0).all() else "all <0" if (pr < 0).all() else "MIXED SIGNS"}, HE\n{m["HE"]}')
    print('flip checks', flips)

    t_labs, t_means, t_stds = lab_stats(tgt)
    rs = reinhard_normalize(src, t_means, t_stds)
    rt = reinhard_normalize(tgt, t_means, t_stds)      # target onto itself: should be ~identity
    print('reinhard target means/stds', t_means, t_stds, 'source', rs['mus'], rs['stds'])
    print('reinhard self-map max |diff|', int(np.abs(rt['out'].astype(int) - tgt.astype(int)).max()))
    rr = lab2rgb(rgb2lab(src.astype('float32') / 255))
    print('lab round trip max |diff| (0..1)', float(np.abs(rr - src / 255.0).max()))

    def mac_px(m, p):
        return dict(pixel=p, rgb=src.reshape(-1, 3)[p].tolist(), OD=fl(m['OD'][p]), C=fl(m['C'][:, p]),
                    C2=fl(m['C2'][:, p]), Inorm_float=fl(m['Inorm_f'][p]), Inorm=m['Inorm'].reshape(-1, 3)[p].tolist())

    def mac_summary(m):
        return dict(n_odhat=int(len(m['ODhat'])), cov=fl(m['cov']), eigenvalues=fl(m['evals']),
                    eigenvectors=fl(m['eigvecs']), minPhi=float(m['minPhi']), maxPhi=float(m['maxPhi']),
                    vMin=fl(m['vMin']), vMax=fl(m['vMax']), HE=fl(m['HE']), maxC=fl(m['maxC']),
                    phi_first=fl(m['phi'][:5]), That_first=fl(m['That'][:5]))

    def rein_px(r, p):
        y, x = divmod(p, W_IMG)
        return dict(pixel=p, rgb=src.reshape(-1, 3)[p].tolist(),
                    lab_split=[float(c[y, x]) for c in r['labs']], normalised_lab=[float(c[y, x]) for c in r['res']],
                    merged_opencv_lab=fl(r['merged'][y, x]), rgb_float=fl(r['rgb'][y, x]),
                    out=r['out'][y, x].tolist())

    g = dict(
        about='torchstain 1.4.1 numpy backend semantics (EIDOSLAB/torchstain c94179d), '
              'written by tools/reference/stain_reference.py',
        images=dict(shape=[H_IMG, W_IMG, 3], layout='row-major [y][x][rgb], uint8', formula=FORMULA,
                    background_pixels=n_bg, source=src.ravel().tolist(), target=tgt.ravel().tolist()),
        macenko=dict(
            params=dict(Io=IO, alpha=ALPHA, beta=BETA),
            default_HERef=fl(HE_REF_DEFAULT), default_maxCRef=fl(MAXC_REF_DEFAULT),
            HERef=fl(fitted['HE']), maxCRef=fl(fitted['maxC']), target_fit=mac_summary(fitted),
            source=mac_summary(ms), HE=fl(ms['HE']), maxC=fl(ms['maxC']),
            normalised=ms['Inorm'].ravel().tolist(), normalised_default_ref=md['Inorm'].ravel().tolist(),
            pixels=[mac_px(ms, p) for p in pix], pixels_default_ref=[mac_px(md, p) for p in pix],
            cast_margin=cast_margin(ms['Inorm_f']), cast_margin_default_ref=cast_margin(md['Inorm_f']),
            eigvec_sign_checks=flips),
        reinhard=dict(
            dtype='float32 (rgb/255, LAB, stats, standardise); float64 from the XYZ->RGB matmul on',
            target_means=fl(t_means), target_stds=fl(t_stds), source_means=fl(rs['mus']), source_stds=fl(rs['stds']),
            target_means_float64=fl([np.mean(c, dtype=np.float64) for c in t_labs]),
            target_stds_float64=fl([np.std(c, dtype=np.float64) for c in t_labs]),
            normalised=rs['out'].ravel().tolist(), pixels=[rein_px(rs, p) for p in pix],
            cast_margin=cast_margin(rs['rgb'] * 255)))
    path = os.path.join(out_dir, 'stain-golden.json')
    with open(path, 'w') as f:
        json.dump(g, f, separators=(',', ':'))
    print(path, os.path.getsize(path), 'bytes')
    if '--no-pictures' not in sys.argv:
        pictures(src, tgt, ms['Inorm'], rs['out'])


def pictures(src, tgt, mac, rein):
    from PIL import Image
    os.makedirs('/tmp/stain', exist_ok=True)

    def row(panels, gap=4):
        hh = max(p.shape[0] for p in panels)
        ww = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
        canvas = np.full((hh, ww, 3), 255, np.uint8)
        x0 = 0
        for p in panels:
            canvas[:p.shape[0], x0:x0 + p.shape[1]] = p
            x0 += p.shape[1] + gap
        return canvas

    up = [np.kron(p, np.ones((4, 4, 1), np.uint8)) for p in (src, tgt, mac, rein)]
    Image.fromarray(row(up)).save('/tmp/stain/before-after.png')
    data = '/work/shared/data'

    def load(rel, size=None):
        p = os.path.join(data, rel)
        if not os.path.exists(p):
            return None
        im = Image.open(p).convert('RGB')
        return np.asarray(im.resize(size, Image.BILINEAR) if size else im)

    rows = []
    for s_rel, t_rel in [('stain/source.png', 'stain/target.png'),
                         ('tissue-tiles/tissue-level0-4302-10273-4814-10785.png', 'nct-crc-samples/TUM-AACHEHDV.tif')]:
        s, t = load(s_rel), load(t_rel)
        if s is None or t is None:
            continue
        fit = macenko_matrices(t)
        m = macenko_normalize(s, fit['HE'], fit['maxC'])['Inorm']
        _, tm, ts = lab_stats(t)
        r = reinhard_normalize(s, tm, ts)['out']
        hgt = 300
        panels = [np.asarray(Image.fromarray(p).resize((round(p.shape[1] * hgt / p.shape[0]), hgt),
                                                       Image.BILINEAR)) for p in (s, t, m, r)]
        rows.append(row(panels))
        print(f'real {s_rel} -> {t_rel}: target HE {fit["HE"].round(4).tolist()}, '
              f'maxC {fit["maxC"].round(4).tolist()}')
    if rows:
        w = max(r.shape[1] for r in rows)
        canvas = np.full((sum(r.shape[0] for r in rows) + 4 * (len(rows) - 1), w, 3), 255, np.uint8)
        y0 = 0
        for r in rows:
            canvas[y0:y0 + r.shape[0], :r.shape[1]] = r
            y0 += r.shape[0] + 4
        Image.fromarray(canvas).save('/tmp/stain/real-before-after.png')
    print('pictures in /tmp/stain')


if __name__ == '__main__':
    main()
