#!/usr/bin/python3
"""PyTorch side of Histo.Bench clip-speed: CLIP ViT-B/16 at full size (clip_reference.py's model, written from OpenAI's
model.py: embed 512, vision width 768 x 12 layers at 224 px, text width 512 x 12 layers, context 77, vocabulary 49,408),
weights loaded from the safetensors Histo saved, on the same images and token rows. Prints one JSON line: images/s,
prompts/s and the first image's and first prompt's embeddings for an agreement check.
Usage: clip_speed_reference.py WEIGHTS IMAGES.npy TOKENS.npy THREADS ITERATIONS CHUNK"""
import json, os, sys, time
import numpy as np, torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_reference import Clip  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402


weights, images, tokens, threads, iterations, chunk = sys.argv[1:7]
torch.set_num_threads(int(threads))
model = Clip(embed_dim=512, resolution=224, patch=16, vision_width=768, vision_layers=12, context=77, vocab=49408, width=512, layers=12)
model.load_state_dict(read_safetensors(weights))
model.eval()
x = torch.from_numpy(np.load(images))
t = torch.from_numpy(np.load(tokens)).long()
chunk, iterations = int(chunk), int(iterations)
with torch.inference_mode():
    image = lambda: torch.cat([model.encode_image(c) for c in torch.split(x, chunk)])
    text = lambda: model.encode_text(t)
    image(), text()  # warm-up
    start = time.perf_counter()
    for _ in range(iterations):
        fi = image()
    ti = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(iterations):
        ft = text()
    tt = time.perf_counter() - start
print(json.dumps({'images_per_second': iterations * x.shape[0] / ti, 'prompts_per_second': iterations * t.shape[0] / tt,
                  'first_image': fi[0].tolist(), 'first_text': ft[0].tolist(), 'torch': torch.__version__}))
