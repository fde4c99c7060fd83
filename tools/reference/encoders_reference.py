#!/usr/bin/python3
"""PyTorch reference outputs for Histo's TorchSharp encoders (src/Histo/Models): torchvision's ResNet-18 and
ResNet-50 and a timm-layout ViT, filled with the same formula weights on both sides (so no weights are
committed), run on the same formula input. Also saves a micro ViT's state dict with torch.save, to check
that Histo loads PyTorch checkpoints. Debian's python3-torch 1.13 and python3-torchvision.

Usage: encoders_reference.py OUT_DIR   (writes encoders-golden.json and vit-micro.pt)
"""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
import torchvision



def formula_fill(model):
    """Every tensor of the state dict, in sorted-name order k: 0.05 sin(0.37 j + 1.3 k); norm scales and
    running variances 1 + 0.1 sin(...) so they stay positive. Histo's test does the same."""
    sd = model.state_dict()
    for k, name in enumerate(sorted(sd)):
        t = sd[name]
        if name.endswith('num_batches_tracked'):
            continue
        j = torch.arange(t.numel(), dtype=torch.float64)
        v = torch.sin(0.37 * j + 1.3 * k)
        leaf = name.split('.')[-2] if '.' in name else name
        is_norm_scale = name.endswith('.weight') and (leaf.startswith('bn') or leaf.startswith('norm') or name.endswith('downsample.1.weight'))
        if name.endswith('running_var') or is_norm_scale:
            v = 1 + 0.1 * v
        else:
            v = 0.05 * v
        t.copy_(v.reshape(t.shape).to(t.dtype))
    model.eval()
    return model


def formula_input(b, s):
    j = torch.arange(b * 3 * s * s, dtype=torch.float64)
    return torch.sin(0.01 * j).reshape(b, 3, s, s).float()


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        x = (a.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, dim * 4)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, p, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """timm's VisionTransformer (class token, absolute position embeddings, pre-norm), headless."""
    def __init__(self, dim, depth, heads, patch=16, img=224):
        super().__init__()
        g = img // patch
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + g * g, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def pos(self, g):
        stored = int(round(math.sqrt(self.pos_embed.shape[1] - 1)))
        if stored == g:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, stored, stored, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(g, g), mode='bicubic', align_corners=False)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, g * g, -1)], 1)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = x + self.pos(int(round(math.sqrt(x.shape[1] - 1))))
        return self.norm(self.blocks(x))[:, 0]


def headless_resnet(name):
    m = getattr(torchvision.models, name)()
    m.fc = nn.Identity()
    return m


class ResNet50Trunc(nn.Module):
    """CLAM's resnet50_trunc (models/resnet_custom.py, ResNet_Baseline): torchvision ResNet-50's stem and layer1-3,
    adaptive average pooling, 1024-d."""
    def __init__(self):
        super().__init__()
        m = torchvision.models.resnet50()
        self.conv1, self.bn1, self.relu, self.maxpool = m.conv1, m.bn1, m.relu, m.maxpool
        self.layer1, self.layer2, self.layer3 = m.layer1, m.layer2, m.layer3

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def main(out):
    torch.set_grad_enabled(False)  # inference only
    os.makedirs(out, exist_ok=True)
    golden = {}
    cases = [
        ('resnet18', headless_resnet('resnet18'), 224),
        ('resnet50', headless_resnet('resnet50'), 224),
        ('resnet50-trunc', ResNet50Trunc(), 224),
        ('vit-tiny', ViT(192, 12, 3), 224),
        ('vit-tiny@160', ViT(192, 12, 3), 160),
    ]
    for name, model, size in cases:
        formula_fill(model)
        y = model(formula_input(2, size))
        golden[name] = {'input_size': size, 'shape': list(y.shape), 'output': [round(v, 7) for v in y.flatten().tolist()]}
        print(name, tuple(y.shape), float(y.abs().max()))
    with open(os.path.join(out, 'encoders-golden.json'), 'w') as f:
        json.dump(golden, f)
    # A micro ViT saved the way PyTorch users save weights, with its output on the formula input.
    torch.manual_seed(0)
    micro = ViT(32, 2, 2, patch=16, img=32).eval()
    for p in micro.parameters():
        nn.init.normal_(p, std=0.1)
    torch.save(micro.state_dict(), os.path.join(out, 'vit-micro.pt'))
    y = micro(formula_input(2, 32))
    with open(os.path.join(out, 'vit-micro-output.json'), 'w') as f:
        json.dump({'output': [round(v, 7) for v in y.flatten().tolist()], 'shape': list(y.shape)}, f)
    print('vit-micro', tuple(y.shape))


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'golden')
