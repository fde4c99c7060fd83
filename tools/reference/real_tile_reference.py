#!/usr/bin/python3
"""Real tiles through a model card's whole input pipeline, as TRIDENT runs it: PIL loads the shared data's NCT-CRC-HE
tiles (224 px TIFF), torchvision 0.14 applies the card's transform (Resize with its filter, CenterCrop, ToTensor,
Normalize) and the reduced timm ViTs of vit_family_reference.py (their golden weight files) give the features. Rows:
the UNI model under GigaPath's transform (Resize(256, bicubic) + CenterCrop(224)) and the Virchow model under Resize(168,
bicubic) (its other size). Only features are written, no pixels.
Usage: real_tile_reference.py SHARED_DATA_DIR OUT_DIR"""
import json, os, sys
import torch
from PIL import Image
from torchvision import transforms as T
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_family_reference import VisionTransformer, ROWS, DIM, DEPTH, HEADS

TILES = ['TUM-AACHEHDV.tif', 'STR-AACRYYNQ.tif', 'LYM-AATTSRNN.tif']
IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CASES = {  # name: (model row, transform)
    'uni-gigapath-transform': ('uni', [T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)]),
    'virchow-resize-168': ('virchow', [T.Resize(168, interpolation=T.InterpolationMode.BICUBIC)]),
}


def load_model(row, golden_dir):
    cfg = ROWS[row]
    args = {k: v for k, v in cfg.items() if k not in ('other', 'file')}
    model = VisionTransformer(DIM, DEPTH, HEADS, **args).eval()
    path = os.path.join(golden_dir, f'vit-{row}.{cfg["file"]}')
    if cfg['file'] == 'bin':
        state = torch.load(path)
    else:
        import numpy as np
        with open(path, 'rb') as f:
            n = int.from_bytes(f.read(8), 'little')
            header = json.loads(f.read(n))
            data = f.read()
        state = {k: torch.from_numpy(np.frombuffer(data, np.float32, count=int(np.prod(h['shape'])),
                                                   offset=h['data_offsets'][0]).reshape(h['shape']).copy())
                 for k, h in header.items() if k != '__metadata__'}
    model.load_state_dict(state)
    return model


def main(shared, out):
    torch.set_num_threads(1)
    golden = dict(tiles=TILES)
    for name, (row, steps) in CASES.items():
        model = load_model(row, out)
        transform = T.Compose(steps + [T.ToTensor(), T.Normalize(**IMAGENET)])
        batch = torch.stack([transform(Image.open(os.path.join(shared, 'nct-crc-samples', t)).convert('RGB')) for t in TILES])
        with torch.no_grad():
            golden[name] = dict(row=row, input_size=batch.shape[-1], features=model(batch).flatten().tolist())
    with open(os.path.join(out, 'real-tile-golden.json'), 'w') as f:
        json.dump(golden, f)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
