#!/usr/bin/python3
"""The model cards' eval transforms as TRIDENT applies them: torchvision 0.14 transforms.Resize(size, interpolation) on a
PIL image (PIL 9's antialiased filters, rounded to uint8), then transforms.CenterCrop(crop). Inputs are formula images
(smooth gradients with a fine checker, so aliasing shows). Output: golden/transforms-golden.json, each case's input and
output as base64 RGB bytes, row-major [H, W, 3]. Usage: transforms_reference.py OUT_DIR"""
import base64, json, os, sys
import numpy as np
from PIL import Image
from torchvision import transforms as T


def formula_image(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    checker = ((x.astype(int) // 2 + y.astype(int) // 3) % 2) * 40.0
    r = 128 + 80 * np.sin(0.09 * x + 0.05 * y) + checker - 20
    g = 120 + 90 * np.cos(0.07 * y - 0.03 * x)
    b = 60 + 1.5 * x + checker
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)


CASES = {  # name: (input h, w, Resize size, interpolation, CenterCrop size or None)
    'bilinear': (100, 100, 88, T.InterpolationMode.BILINEAR, 88),
    'bicubic': (100, 100, 88, T.InterpolationMode.BICUBIC, None),
    'bicubic-crop': (100, 100, 96, T.InterpolationMode.BICUBIC, 80),  # GigaPath's Resize(256) + CenterCrop(224), scaled
    'upsample-bicubic': (60, 60, 88, T.InterpolationMode.BICUBIC, None),
    'bilinear-wide': (80, 100, 64, T.InterpolationMode.BILINEAR, 64),
}


def main(out):
    golden = {}
    for name, (h, w, size, interp, crop) in CASES.items():
        source = formula_image(h, w)
        steps = [T.Resize(size, interpolation=interp)] + ([T.CenterCrop(crop)] if crop else [])
        result = np.asarray(T.Compose(steps)(Image.fromarray(source)))
        golden[name] = dict(height=h, width=w, resize=size, interpolation=interp.value, crop=crop or size,
                            source=base64.b64encode(source.tobytes()).decode(), output_shape=list(result.shape),
                            output=base64.b64encode(np.ascontiguousarray(result).tobytes()).decode())
    with open(os.path.join(out, 'transforms-golden.json'), 'w') as f:
        json.dump(golden, f)


if __name__ == '__main__':
    main(sys.argv[1])
