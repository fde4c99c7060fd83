#!/usr/bin/python3
"""Independent reference for TransMIL (Shao et al., "TransMIL: Transformer based Correlated Multiple Instance Learning
for Whole Slide Image Classification", NeurIPS 2021), written as golden/transmil-mini.pt and golden/transmil-golden.json.

Written from the paper and its published code (github szc19990412/TransMIL, models/TransMIL.py) and the Nystrom attention
it imports (github lucidrains/nystrom-attention, nystrom_attention.py; Xiong et al., AAAI 2021), in plain PyTorch 1.13:
  * _fc1: Linear(D, 512) + ReLU; the sequence padded to a square by repeating its first tokens (h[:, :add_length]);
    a learnt class token in front;
  * TransLayer: x + NystromAttention(LayerNorm(x)) with dim 512, 8 heads of 64, 256 landmarks, 6 pseudo-inverse
    iterations, residual depthwise conv (kernel 33 along the sequence) on the values, dropout 0.1 (off in evaluation);
  * Nystrom attention: the sequence zero-padded at the front to a multiple of the landmarks; q scaled by 64^-0.5;
    landmarks the means of consecutive groups of l = ceil(n / m) tokens; softmax kernels q~k_l, q_l~k_l, q_l~k;
    out = (A1 pinv(A2)) (A3 v) + res_conv(v); the iterative pseudo-inverse z0 = A^T / (max column sum x max row sum),
    z <- z (13 I - A z (15 I - A z (7 I - A z))) / 4; to_out Linear; the front padding dropped;
  * PPEG between the layers: the patch tokens as a square image, x + conv7x7 + conv5x5 + conv3x3 (depthwise, with bias);
  * LayerNorm, the class token to _fc2.
The class token's attention in the second layer (attn1 pinv(A2) A3, its row, averaged over heads, over the real patches)
is returned too. The weights are seeded, stored in float16 (the model computes in float32 from the rounded values); the
bags are a formula of their index, so the test rebuilds them: x[i, j] = sin(0.37 i + 1.3 j) cos(0.11 j - 0.05 i).

Usage:  /usr/bin/python3 transmil_reference.py golden
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
D_IN, CLASSES = 48, 3
SIZES = [1, 2, 3, 17, 300, 2000, 20000]


def pinv(x, iters=6):
    abs_x = x.abs()
    col, row = abs_x.sum(dim=-1), abs_x.sum(dim=-2)
    z = x.transpose(-1, -2) / (col.max() * row.max())
    eye = torch.eye(x.shape[-1])[None]
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - (xz @ (15 * eye - (xz @ (7 * eye - xz)))))
    return z


class Nystrom(nn.Module):
    def __init__(self, dim=512, heads=8, dim_head=64, landmarks=256, iters=6, kernel=33):
        super().__init__()
        self.heads, self.landmarks, self.iters, self.scale = heads, landmarks, iters, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.1))
        self.res_conv = nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0), groups=heads, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        h, m = self.heads, self.landmarks
        if n % m:
            x = F.pad(x, (0, 0, m - n % m, 0))
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = [t.reshape(b, t.shape[1], h, -1).permute(0, 2, 1, 3) for t in (q, k, v)]
        q = q * self.scale
        l = math.ceil(n / m)
        ql = q.reshape(b, h, -1, l, q.shape[-1]).sum(3) / l
        kl = k.reshape(b, h, -1, l, k.shape[-1]).sum(3) / l
        a1 = (q @ kl.transpose(-1, -2)).softmax(-1)
        a2 = (ql @ kl.transpose(-1, -2)).softmax(-1)
        a3 = (ql @ k.transpose(-1, -2)).softmax(-1)
        a2inv = pinv(a2, self.iters)
        out = (a1 @ a2inv) @ (a3 @ v) + self.res_conv(v)
        out = self.to_out(out.permute(0, 2, 1, 3).reshape(b, out.shape[2], -1))[:, -n:]
        pad = x.shape[1] - n
        cls_attention = (a1[:, :, pad:pad + 1] @ a2inv @ a3)[:, :, 0].mean(1)[:, pad:]   # the class token row, unpadded tokens
        return out, cls_attention


class TransLayer(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Nystrom(dim)

    def forward(self, x):
        out, attention = self.attn(self.norm(x))
        return x + out, attention


class PPEG(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, hh, ww):
        b, _, c = x.shape
        cls, feat = x[:, 0], x[:, 1:]
        f = feat.transpose(1, 2).reshape(b, c, hh, ww)
        f = self.proj(f) + f + self.proj1(f) + self.proj2(f)
        return torch.cat((cls[:, None], f.flatten(2).transpose(1, 2)), 1)


class TransMIL(nn.Module):
    def __init__(self, d_in, classes):
        super().__init__()
        self.pos_layer = PPEG(512)
        self._fc1 = nn.Sequential(nn.Linear(d_in, 512), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, 512))
        self.layer1 = TransLayer(512)
        self.layer2 = TransLayer(512)
        self.norm = nn.LayerNorm(512)
        self._fc2 = nn.Linear(512, classes)

    def forward(self, data):
        h = self._fc1(data)
        n = h.shape[1]
        side = int(math.ceil(math.sqrt(n)))
        h = torch.cat([h, h[:, :side * side - n]], 1)
        h = torch.cat((self.cls_token.expand(h.shape[0], -1, -1), h), 1)
        h, _ = self.layer1(h)
        h = self.pos_layer(h, side, side)
        h, attention = self.layer2(h)
        return self._fc2(self.norm(h)[:, 0]), attention[:, 1:n + 1]


def bag(n):
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(D_IN, dtype=torch.float64)[None]
    return (torch.sin(0.37 * i + 1.3 * j) * torch.cos(0.11 * j - 0.05 * i)).float()


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    torch.manual_seed(0)
    model = TransMIL(D_IN, CLASSES)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))   # biases and norms away from their defaults
            p.copy_(p.half().float())
    model.eval()
    torch.save({k: v.half() for k, v in model.state_dict().items()}, os.path.join(HERE, "golden", "transmil-mini.pt"))
    out = {}
    with torch.no_grad():
        for n in SIZES:
            logits, attention = model(bag(n)[None])
            assert attention.shape == (1, n)
            out[str(n)] = {"logits": logits[0].tolist(), "attention_first": attention[0, :8].tolist(),
                           "attention_sum": float(attention.sum()), "attention_argmax": int(attention[0].argmax())}
    with open(os.path.join(HERE, "golden", "transmil-golden.json"), "w") as f:
        json.dump({"source": "tools/reference/transmil_reference.py golden", "input_dim": D_IN, "classes": CLASSES,
                   "bags": out}, f, indent=1)
    print({n: [round(v, 4) for v in out[str(n)]["logits"]] for n in map(str, SIZES)})


if __name__ == "__main__":
    main()
