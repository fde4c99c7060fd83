#!/usr/bin/python3
"""PyTorch side of the encoder speed benchmark (bench/Histo.Bench embedding): torchvision's ResNet-18
without its classifier, weights loaded from the state dict Histo saved, on the same input batch.
Prints one JSON line: images/s, and the features of the first image for an agreement check.
Usage: encoder_speed_reference.py WEIGHTS.pt INPUT.npy THREADS ITERATIONS [CHUNK]"""
import json, sys, time
import numpy as np, torch, torchvision

weights, inputs, threads, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = int(sys.argv[5]) if len(sys.argv) > 5 else None
torch.set_num_threads(threads)
model = torchvision.models.resnet18()
model.fc = torch.nn.Identity()
state = torch.load(weights)
missing, unexpected = model.load_state_dict(state, strict=False)
assert not [m for m in missing if not m.startswith('fc.')] and not unexpected, (missing, unexpected)
model.eval()
x = torch.from_numpy(np.load(inputs))
def forward():
    return model(x) if not chunk else torch.cat([model(c) for c in torch.split(x, chunk)])

with torch.inference_mode():
    forward()  # warm-up
    t = time.perf_counter()
    for _ in range(iterations):
        y = forward()
    dt = time.perf_counter() - t
print(json.dumps({'images_per_second': iterations * x.shape[0] / dt, 'first': y[0].tolist(), 'torch': torch.__version__}))
