#!/usr/bin/python3
"""Reference implementation of Histo's tissue detection and tiling (src/Histo/Slides/TissueDetector.cs,
SlideThumbnail.cs, Tiler.cs) in openslide-python, numpy and OpenCV, the stack CLAM and TRIDENT use.
Same algorithm and defaults; used for golden coordinates and as the benchmark peer.

Usage: tile_reference.py --mpp 0.5 [--patch-size 256] [--min-tissue 0.5] [--out-h5 DIR] [--json FILE] SLIDE...
Prints one JSON line per slide: slide_id, patches, seconds (in-process, slide open to coordinates).
Needs Debian's python3-openslide, python3-numpy, python3-opencv (and python3-h5py for --out-h5).
"""
import argparse, json, os, sys, time
import numpy as np, cv2, openslide

MASK_LONGEST_SIDE, MEDIAN, MIN_S, MAX_T, CLOSE = 2048, 7, 20, 45, 5
MIN_COMPONENT, MIN_INK, INK_MARGIN = 0.0005, 0.0002, 0.015


def thumbnail(slide):
    W, H = slide.dimensions
    scale = max(1.0, max(W, H) / MASK_LONGEST_SIDE)
    tw, th = max(1, round(W / scale)), max(1, round(H / scale))
    level = max(i for i, (w, h) in enumerate(slide.level_dimensions) if w >= tw and h >= th)
    lw, lh = slide.level_dimensions[level]
    rgba = np.asarray(slide.read_region((0, 0), level, (lw, lh)), dtype=np.float32)
    a = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * a + 255.0 * (1 - a)  # transparent = glass = white
    return cv2.resize(np.round(rgb).astype(np.uint8), (tw, th), interpolation=cv2.INTER_AREA)


def hue(r, g, b):
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    d = np.where(mx == mn, 1, mx - mn).astype(np.float64)
    h = np.where(mx == r, (g - b) / d, np.where(mx == g, 2 + (b - r) / d, 4 + (r - g) / d)) * 60
    h = np.where(h < 0, h + 360, h)
    return np.where(mx == mn, 0, h)


def remove_small(mask, min_area):
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def otsu(hist):
    total, levels = hist.sum(), np.arange(256)
    c0, s0 = np.cumsum(hist), np.cumsum(hist * levels)
    c1, s1 = total - c0, s0[-1] - s0
    with np.errstate(divide='ignore', invalid='ignore'):
        between = c0 * c1 * (s0 / c0 - s1 / c1) ** 2
    between[(c0 == 0) | (c1 == 0)] = -1
    return int(np.argmax(between))


def tissue_mask(rgb):
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    s = np.where(mx == 0, 0, (255 * (mx - mn) + mx // 2) // np.maximum(mx, 1))
    h = hue(r, g, b)
    red = ((h >= 330) | (h < 20)) & (s > 100) & ((b - g < 25) | ((mx < 130) & (s > 130) & (r - b > 25)))
    ink = (s > 40) & (((h >= 70) & (h < 235)) | red)
    n, longest = s.size, max(s.shape)
    pen = remove_small(ink, max(4, int(MIN_INK * n)))
    margin = 2 * max(1, round(INK_MARGIN * longest)) + 1
    pen = cv2.dilate(pen.astype(np.uint8), np.ones((margin, margin), np.uint8)) > 0
    blurred = cv2.medianBlur(s.astype(np.uint8), MEDIAN)
    hist = np.bincount(blurred[~pen], minlength=256)
    t = min(max(otsu(hist) if hist.sum() else 255, MIN_S), max(MIN_S, MAX_T))
    mask = ((blurred > t) & ~pen).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((CLOSE, CLOSE), np.uint8))
    # fill holes: background not 4-connected to the border
    nb, labels = cv2.connectedComponents((1 - mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0]) & (mask == 0)
    mask = ~outside & ~pen
    return remove_small(mask, max(1, int(MIN_COMPONENT * n)))


def area_fraction(integral, x0, y0, x1, y1):
    """Exact area of a rectangle in mask coordinates: the summed-area table is bilinear between lattice points."""
    H, W = integral.shape[0] - 1, integral.shape[1] - 1
    def A(x, y):
        ix, iy = np.minimum(x.astype(int), W - 1), np.minimum(y.astype(int), H - 1)
        fx, fy = x - ix, y - iy
        a, b = integral[iy, ix], integral[iy, ix + 1]
        c, d = integral[iy + 1, ix], integral[iy + 1, ix + 1]
        return a + (b - a) * fx + (c - a) * fy + (d - b - c + a) * fx * fy
    return A(x1, y1) - A(x0, y1) - A(x1, y0) + A(x0, y0)


def tile(path, target_mpp, patch, min_tissue, mpp_override=None):
    slide = openslide.OpenSlide(path)
    props = slide.properties
    if mpp_override:
        mpp0 = mpp_override
    elif 'openslide.mpp-x' in props:
        mpp0 = (float(props['openslide.mpp-x']) + float(props['openslide.mpp-y'])) / 2
    else:  # generic TIFF: resolution tags in pixels per centimetre
        mpp0 = 1e4 / float(props['tiff.XResolution'])
    W, H = slide.dimensions
    mask = tissue_mask(thumbnail(slide))
    mh, mw = mask.shape
    sx, sy = W / mw, H / mh
    integral = cv2.integral(mask.astype(np.uint8)).astype(np.float64)
    ds = target_mpp / mpp0
    footprint, step = patch * ds, patch * ds
    nx, ny = int(np.floor((W - footprint + 1e-6) / step)) + 1, int(np.floor((H - footprint + 1e-6) / step)) + 1
    xs, ys = np.meshgrid(np.arange(nx) * step, np.arange(ny) * step)
    x0, y0 = np.clip(xs / sx, 0, mw), np.clip(ys / sy, 0, mh)
    x1, y1 = np.clip((xs + footprint) / sx, 0, mw), np.clip((ys + footprint) / sy, 0, mh)
    frac = area_fraction(integral, x0, y0, x1, y1) / ((footprint / sx) * (footprint / sy))
    keep = frac >= min_tissue
    coords = np.stack([np.round(xs[keep]), np.round(ys[keep])], 1).astype(np.int64)
    slide.close()
    return coords


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('slides', nargs='+')
    ap.add_argument('--mpp', type=float, required=True)
    ap.add_argument('--patch-size', type=int, default=256)
    ap.add_argument('--min-tissue', type=float, default=0.5)
    ap.add_argument('--mpp-override', type=float)
    ap.add_argument('--json', help='write {slide_id: [[x, y], ...]} here')
    ap.add_argument('--out-h5', help='write coords/<slide_id>.h5 with h5py here')
    args = ap.parse_args()
    result = {}
    for path in args.slides:
        sid = os.path.splitext(os.path.basename(path))[0]
        t = time.perf_counter()
        coords = tile(path, args.mpp, args.patch_size, args.min_tissue, args.mpp_override)
        dt = time.perf_counter() - t
        result[sid] = coords.tolist()
        if args.out_h5:
            import h5py
            os.makedirs(args.out_h5, exist_ok=True)
            with h5py.File(os.path.join(args.out_h5, sid + '.h5'), 'w') as f:
                d = f.create_dataset('coords', data=coords)
                d.attrs['patch_size'] = args.patch_size
                d.attrs['patch_level'] = 0
        print(json.dumps({'slide_id': sid, 'patches': len(coords), 'seconds': dt}), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f)


if __name__ == '__main__':
    main()
