#!/usr/bin/python3
"""PyTorch side of the encoder speed benchmarks (bench/Histo.Bench embedding and encoders): torchvision's ResNet-18 without
its classifier, or UNI's ViT-L/16 (timm layout, vit_family_reference.VisionTransformer at full size), weights loaded from
the state dict Histo saved, on the same input batch. MODE picks PyTorch's configuration: fp32, fp32-cl (channels-last
memory format), bf16 (CPU autocast to bfloat16), bf16-cl. Prints one JSON line: images/s and the features of the first
image for an agreement check.
Usage: encoder_speed_reference.py WEIGHTS INPUT.npy THREADS ITERATIONS [CHUNK [ARCH [MODE]]]   (ARCH resnet18|uni|uni2-h)"""
import json, os, sys, time
import numpy as np, torch, torchvision

weights, inputs, threads, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = int(sys.argv[5]) if len(sys.argv) > 5 and int(sys.argv[5]) > 0 else None
arch = sys.argv[6] if len(sys.argv) > 6 else 'resnet18'
mode = sys.argv[7] if len(sys.argv) > 7 else 'fp32'
torch.set_num_threads(threads)
if arch == 'resnet18':
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from vit_family_reference import VisionTransformer
    model = (VisionTransformer(1024, 24, 16, patch=16, img=224, mlp_ratio=4.0, init_values=1e-5, pool='token') if arch == 'uni'
             else VisionTransformer(1536, 24, 24, patch=14, img=224, mlp_ratio=2.66667 * 2, mlp='swiglu-packed', init_values=1e-5,
                                    reg_tokens=8, no_embed_class=True, pool='token'))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402
state = read_safetensors(weights) if weights.endswith('.safetensors') else torch.load(weights)
missing, unexpected = model.load_state_dict(state, strict=False)
assert not [m for m in missing if not m.startswith('fc.')] and not unexpected, (missing, unexpected)
model.eval()
x = torch.from_numpy(np.load(inputs))
if mode.endswith('-cl'):
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)


def forward():
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=mode.startswith('bf16')):
        return model(x) if not chunk else torch.cat([model(c) for c in torch.split(x, chunk)])


with torch.inference_mode():
    forward()  # warm-up
    t = time.perf_counter()
    for _ in range(iterations):
        y = forward()
    dt = time.perf_counter() - t
print(json.dumps({'images_per_second': iterations * x.shape[0] / dt, 'first': y[0].float().tolist(), 'torch': torch.__version__}))
