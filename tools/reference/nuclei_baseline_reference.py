#!/usr/bin/python3
"""Independent reference for Histo's training-free nucleus detector, written as golden/nuclei-baseline-golden.json.

The recipe is QuPath's cell detection (WatershedCellDetection) rebuilt from SciPy and scikit-image, the libraries whose
semantics Histo's steps claim (not from Histo's C# code):
  haematoxylin = colour deconvolution (Ruifrok & Johnston 2001) with QuPath's "H&E default" stain vectors,
                 OD = -log10(max(I, 1) / 255), M = [h; e; h x e] (unit rows), stains = OD M^-1, column 0;
  background   = scipy.ndimage.grey_opening(haematoxylin, size=2r+1), r = round(8 um / mpp), subtracted;
  smoothed     = scipy.ndimage.gaussian_filter(., sigma = 1.5 um / mpp, mode='reflect', truncate=3);
  foreground   = smoothed > skimage.filters.threshold_otsu(smoothed), then scipy.ndimage.binary_fill_holes;
  distance     = scipy.ndimage.distance_transform_edt(foreground);
  seeds        = foreground & (distance >= maximum_filter(distance, size=2s+1)), s = round(2 um / mpp), labelled
                 8-connected (scipy.ndimage.label), one seed per plateau;
  nuclei       = skimage.segmentation.watershed(-distance, seeds, mask=foreground) (4-connected flooding),
                 instances outside 10-400 um^2 dropped, the rest numbered 1..N in label order.
The golden file holds each step on small random inputs (for step-level parity) and the whole recipe on a synthetic H&E
image drawn here (dark ellipses, some touching, on pink stroma with noise), plus the time the recipe takes.

Usage:  /usr/bin/python3 nuclei_baseline_reference.py [OUT_DIR [PICTURE.png]]  (needs python3-scipy and python3-skimage)
        /usr/bin/python3 nuclei_baseline_reference.py --time MPP TILE.png...   (Histo.Bench nuclei: one JSON line, the
        recipe's time on each tile after one warm-up, decoding excluded)
"""
import base64
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

HERE = os.path.dirname(os.path.abspath(__file__))
H_VECTOR = np.array([0.651, 0.701, 0.290])
E_VECTOR = np.array([0.216, 0.801, 0.558])
BACKGROUND_UM, SIGMA_UM, SEED_UM, MIN_AREA_UM2, MAX_AREA_UM2 = 8.0, 1.5, 2.0, 10.0, 400.0


def px(microns, mpp):
    return max(1, int(round(microns / mpp)))


def haematoxylin(rgb):
    h = H_VECTOR / np.linalg.norm(H_VECTOR)
    e = E_VECTOR / np.linalg.norm(E_VECTOR)
    r = np.cross(h, e)
    r /= np.linalg.norm(r)
    inverse = np.linalg.inv(np.stack([h, e, r]))
    od = -np.log10(np.maximum(rgb.astype(np.float64), 1.0) / 255.0)
    return (od @ inverse)[..., 0]


def detect(rgb, mpp):
    H = haematoxylin(rgb)
    r = px(BACKGROUND_UM, mpp)
    signal = H - ndi.grey_opening(H, size=(2 * r + 1, 2 * r + 1))
    smoothed = ndi.gaussian_filter(signal, SIGMA_UM / mpp, mode='reflect', truncate=3.0)
    foreground = ndi.binary_fill_holes(smoothed > threshold_otsu(smoothed))
    distance = ndi.distance_transform_edt(foreground)
    s = px(SEED_UM, mpp)
    peaks = foreground & (distance >= ndi.maximum_filter(distance, size=2 * s + 1))
    seeds, _ = ndi.label(peaks, structure=np.ones((3, 3)))
    labels = watershed(-distance, seeds, mask=foreground)
    areas = np.bincount(labels.ravel()) * mpp * mpp
    keep = (areas >= MIN_AREA_UM2) & (areas <= MAX_AREA_UM2)
    keep[0] = False
    lut = np.zeros(len(areas), np.int64)
    lut[keep] = np.arange(1, keep.sum() + 1)
    return lut[labels]


def synthetic_he(rng, h, w, n):
    """An H&E-like image: pink stroma with noise and n purple nuclei (ellipses, a few touching), lightly blurred."""
    yy, xx = np.indices((h, w))
    img = np.empty((h, w, 3))
    img[:] = (236, 196, 220)
    img += rng.normal(0, 6, (h, w, 3))
    centres = []
    while len(centres) < n:
        cy, cx = rng.uniform(10, h - 10), rng.uniform(10, w - 10)
        if len(centres) % 4 == 1:  # a touching partner of the previous nucleus
            py, px_, _ = centres[-1]
            a = rng.uniform(0, 2 * np.pi)
            cy, cx = np.clip(py + 11 * np.sin(a), 10, h - 10), np.clip(px_ + 11 * np.cos(a), 10, w - 10)
        elif any(np.hypot(cy - q[0], cx - q[1]) < 20 for q in centres):
            continue
        centres.append((cy, cx, rng.uniform(0, np.pi)))
    for cy, cx, th in centres:
        ry, rx = rng.uniform(5, 7), rng.uniform(6.5, 9)
        dy, dx = yy - cy, xx - cx
        u, v = dy * np.cos(th) + dx * np.sin(th), -dy * np.sin(th) + dx * np.cos(th)
        inside = (u / ry) ** 2 + (v / rx) ** 2 <= 1
        img[inside] = np.array([92, 64, 150]) + rng.normal(0, 10, (inside.sum(), 3))
    img = ndi.gaussian_filter(img, (0.8, 0.8, 0))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def time_tiles(mpp, paths):
    from PIL import Image
    images = [np.asarray(Image.open(p).convert('RGB')) for p in paths]
    detect(images[0], mpp)  # warm-up
    t0 = time.perf_counter()
    nuclei = sum(int(detect(image, mpp).max()) for image in images)
    print(json.dumps({'seconds': time.perf_counter() - t0, 'tiles': len(images), 'nuclei': nuclei}))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == '--time':
        return time_tiles(float(sys.argv[2]), sys.argv[3:])
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'golden')
    rng = np.random.default_rng(20261203)
    doc = {}

    # ---- steps on small random inputs (float32 in, as Histo's filters take) ----
    h, w = 37, 53
    grey = rng.random((h, w)).astype(np.float32)
    doc['grey'] = {'shape': [h, w], 'image': b64(grey),
                   'gaussian_sigma': 1.7, 'gaussian': b64(ndi.gaussian_filter(grey.astype(np.float64), 1.7, mode='reflect',
                                                                               truncate=3.0).astype(np.float32)),
                   'gaussian_wide_sigma': 14.0, 'gaussian_wide': b64(ndi.gaussian_filter(
                       grey.astype(np.float64), 14.0, mode='reflect', truncate=3.0).astype(np.float32)),
                   'radius': 3, 'minimum': b64(ndi.minimum_filter(grey, size=7)),
                   'maximum': b64(ndi.maximum_filter(grey, size=7)), 'opening': b64(ndi.grey_opening(grey, size=(7, 7))),
                   'otsu': float(threshold_otsu(grey.astype(np.float64)))}
    blobs = ndi.gaussian_filter(rng.random((h, w)), 2.0)
    mask = blobs > np.quantile(blobs, 0.45)
    doc['edt'] = {'shape': [h, w], 'mask': b64(mask.astype(np.uint8)),
                  'distance': b64(ndi.distance_transform_edt(mask).astype(np.float32))}
    # watershed with distinct elevations (no ties, so the flooding order is fully defined) and a mask
    elevation = rng.random((h, w)).astype(np.float32)
    markers = np.zeros((h, w), np.int32)
    for k in range(1, 9):
        markers[rng.integers(0, h), rng.integers(0, w)] = k
    wmask = ndi.binary_opening(rng.random((h, w)) > 0.2)
    wmask[markers > 0] = True
    doc['watershed'] = {'shape': [h, w], 'elevation': b64(elevation), 'markers': b64(markers), 'mask': b64(wmask.astype(np.uint8)),
                        'labels': b64(watershed(elevation, markers, mask=wmask).astype(np.int32))}
    rgb = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
    rgb[0, 0] = (0, 0, 0)
    rgb[0, 1] = (255, 255, 255)
    doc['deconvolution'] = {'shape': [5, 7], 'rgb': b64(rgb), 'haematoxylin': b64(haematoxylin(rgb).astype(np.float32))}

    # ---- the whole recipe on a synthetic H&E image ----
    mpp = 0.5
    image = synthetic_he(rng, 160, 192, 28)
    t0 = time.perf_counter()
    labels = detect(image, mpp)
    seconds = time.perf_counter() - t0
    doc['detector'] = {'shape': list(image.shape[:2]), 'mpp': mpp, 'rgb': b64(image), 'labels': b64(labels.astype(np.int32)),
                       'count': int(labels.max()), 'seconds': seconds}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'nuclei-baseline-golden.json')
    with open(path, 'w') as f:
        json.dump(doc, f)
    print('otsu %.6f; detector: %d nuclei on %dx%d at %.2f um/px in %.3f s' % (doc['grey']['otsu'], labels.max(),
                                                                              image.shape[1], image.shape[0], mpp, seconds))
    if len(sys.argv) > 2:  # a picture of the synthetic image and the reference's outlines, to look at
        from PIL import Image
        edge = labels != ndi.grey_erosion(labels, size=(3, 3))
        view = image.copy()
        view[edge & (labels > 0)] = (0, 255, 0)
        Image.fromarray(view).resize((image.shape[1] * 3, image.shape[0] * 3), Image.NEAREST).save(sys.argv[2])
    print('wrote', path)


if __name__ == '__main__':
    main()
