#!/usr/bin/python3
"""torchstain's Macenko and Reinhard (stain_reference.py's functions) on a real source -> target pair, by default the shared
data's stain/source.png -> stain/target.png. Writes no pixels of the images, only what a test compares against: the fitted
stain vectors and concentration percentiles, the SHA-256 of each normalised image's bytes (row-major RGB) and its channel
histograms, so the golden file holds nothing of the data itself.
Usage: stain_real_reference.py SOURCE TARGET OUT.json"""
import hashlib, json, os, sys
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
from PIL import Image
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stain_reference import macenko_matrices, macenko_normalize, lab_stats, reinhard_normalize


def summary(image):
    return dict(sha256=hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
                histograms=[np.bincount(image[..., c].ravel(), minlength=256).tolist() for c in range(3)])


def main(source_path, target_path, out):
    source = np.asarray(Image.open(source_path).convert('RGB'))
    target = np.asarray(Image.open(target_path).convert('RGB'))
    fit = macenko_matrices(target)
    mac = macenko_normalize(source, fit['HE'], fit['maxC'])
    _, t_means, t_stds = lab_stats(target)
    rein = reinhard_normalize(source, t_means, t_stds)
    golden = dict(source=os.path.basename(source_path), target=os.path.basename(target_path),
                  source_shape=list(source.shape),
                  macenko=dict(HERef=fit['HE'].tolist(), maxCRef=fit['maxC'].tolist(), HE=mac['HE'].tolist(),
                               maxC=mac['maxC'].tolist(), **summary(mac['Inorm'])),
                  reinhard=dict(target_means=[float(v) for v in t_means], target_stds=[float(v) for v in t_stds],
                                **summary(rein['out'])))
    with open(out, 'w') as f:
        json.dump(golden, f)


if __name__ == '__main__':
    main(*sys.argv[1:4])
