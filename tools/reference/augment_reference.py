#!/usr/bin/python3
"""torchvision 0.14's functional augmentations (adjust_brightness/contrast/saturation/hue, rgb_to_grayscale,
solarize, gaussian_blur) on a formula image [2, 3, 20, 24] in [0, 1], as golden/augment-golden.json for
src/Histo/Imaging/Augmentations.cs. Usage: augment_reference.py OUT_DIR"""
import json, os, sys
import torch
import torchvision.transforms.functional as TF

j = torch.arange(2 * 3 * 20 * 24, dtype=torch.float64)
x = (0.5 + 0.45 * torch.sin(0.013 * j) * torch.cos(0.0071 * j + 1)).reshape(2, 3, 20, 24).float()
out = {
    'brightness': TF.adjust_brightness(x, 1.3),
    'contrast': TF.adjust_contrast(x, 0.6),
    'saturation': TF.adjust_saturation(x, 1.4),
    'hue': TF.adjust_hue(x, 0.08),
    'hue_negative': TF.adjust_hue(x, -0.1),
    'grayscale': TF.rgb_to_grayscale(x),
    'solarize': TF.solarize(x, 0.5),
    'blur': TF.gaussian_blur(x, [7, 7], [1.3, 1.3]),
}
with open(os.path.join(sys.argv[1] if len(sys.argv) > 1 else 'golden', 'augment-golden.json'), 'w') as f:
    json.dump({k: v.flatten().tolist() for k, v in out.items()}, f)
print('ok')
