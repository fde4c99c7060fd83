#!/usr/bin/python3
"""The timm-layout Vision Transformers of the pathology foundation models (UNI, UNI2-h, Virchow, Virchow2) at reduced
width and depth, written from timm's vision_transformer.py semantics (VisionTransformer._pos_embed, Block, LayerScale,
GluMlp as SwiGLUPacked, resample_abs_pos_embed), not from Histo's code. Seeded random weights under timm's parameter
names are saved as the files users have (pytorch_model.bin by torch.save, model.safetensors), with the features of a
formula input at the pretraining size and at one other size. Debian's python3-torch 1.13.

Usage: vit_family_reference.py OUT_DIR   (writes vit-family-golden.json and vit-<row>.{bin,safetensors})
"""
import json, math, os, struct, sys
import torch, torch.nn as nn, torch.nn.functional as F


class LayerScale(nn.Module):
    def __init__(self, dim, init_values):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (C // self.heads) ** -0.5) @ k.transpose(-2, -1)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """timm Mlp: fc1, GELU (erf), fc2."""
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUPacked(nn.Module):
    """timm GluMlp(act_layer=SiLU, gate_last=False): fc1 to `hidden`, chunk in two, act on the first half."""
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden // 2, dim)

    def forward(self, x):
        x1, x2 = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(x1) * x2)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, mlp, init_values, qkv_bias):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwiGLUPacked(dim, hidden) if mlp == 'swiglu-packed' else Mlp(dim, hidden)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)


def resample_abs_pos_embed(posemb, new_size, num_prefix_tokens):
    """timm.layers.resample_abs_pos_embed: prefix kept, square grid resized bicubically with antialiasing."""
    if posemb.shape[1] == new_size[0] * new_size[1] + num_prefix_tokens and new_size[0] == new_size[1]:
        return posemb
    old = int(math.sqrt(posemb.shape[1] - num_prefix_tokens))
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_size, mode='bicubic', antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_size[0] * new_size[1], -1)
    return torch.cat([prefix, grid], 1) if num_prefix_tokens else grid


class VisionTransformer(nn.Module):
    def __init__(self, dim, depth, heads, patch, img, mlp_ratio, mlp='gelu', init_values=None, reg_tokens=0,
                 no_embed_class=False, qkv_bias=True, pool='token'):
        super().__init__()
        self.patch, self.pool, self.no_embed_class = patch, pool, no_embed_class
        self.num_prefix_tokens = 1 + reg_tokens
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, dim)) if reg_tokens else None
        n = (img // patch) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, n if no_embed_class else n + self.num_prefix_tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, int(dim * mlp_ratio), mlp, init_values, qkv_bias)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, images):
        x = self.patch_embed.proj(images)
        H, W = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose(1, 2)
        pos = resample_abs_pos_embed(self.pos_embed, (H, W), 0 if self.no_embed_class else self.num_prefix_tokens)
        to_cat = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.no_embed_class:
            x = torch.cat(to_cat + [x + pos], 1)
        else:
            x = torch.cat(to_cat + [x], 1) + pos
        x = self.norm(self.blocks(x))
        if self.pool == 'token':
            return x[:, 0]
        return torch.cat([x[:, 0], x[:, self.num_prefix_tokens:].mean(1)], -1)  # Virchow: class token + patch mean


# Reduced rows: each model card's architecture switches at width 32, depth 2, 2 heads (the full sizes are in Histo's
# registry). mlp_ratio: UNI 4; UNI2-h 2.66667 * 2; Virchow and Virchow2 5.3375.
ROWS = {
    'uni': dict(patch=16, img=224, mlp_ratio=4.0, init_values=1e-5, pool='token', other=160, file='bin'),
    'uni2-h': dict(patch=14, img=224, mlp_ratio=2.66667 * 2, mlp='swiglu-packed', init_values=1e-5, reg_tokens=8,
                   no_embed_class=True, pool='token', other=280, file='safetensors'),
    'virchow': dict(patch=14, img=224, mlp_ratio=5.3375, mlp='swiglu-packed', init_values=1e-5, pool='cls+mean',
                    other=168, file='safetensors'),
    'virchow2': dict(patch=14, img=224, mlp_ratio=5.3375, mlp='swiglu-packed', init_values=1e-5, reg_tokens=4,
                     pool='cls+mean', other=252, file='bin'),
}
DIM, DEPTH, HEADS = 32, 2, 2


def randomise(model, seed):
    """Seeded random weights: norm scales and LayerScale gammas around 1 (so no block is near the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith('gamma') or (name.endswith('weight') and 'norm' in name):
                p.copy_(1 + 0.2 * r)
            else:
                p.copy_(0.1 * r)


def save_safetensors(state, path):
    """The safetensors format: u64 little-endian header size, JSON header (dtype, shape, data_offsets), raw data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        data = state[name].contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(state[name].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def formula_input(b, s):
    j = torch.arange(b * 3 * s * s, dtype=torch.float64)
    return torch.sin(0.01 * j).reshape(b, 3, s, s).float()


def main(out):
    torch.set_num_threads(1)
    golden = {}
    for k, (row, cfg) in enumerate(ROWS.items()):
        args = {key: v for key, v in cfg.items() if key not in ('other', 'file')}
        model = VisionTransformer(DIM, DEPTH, HEADS, **args).eval()
        randomise(model, 100 + k)
        path = os.path.join(out, f'vit-{row}.{cfg["file"]}')
        if cfg['file'] == 'bin':
            torch.save(model.state_dict(), path)
        else:
            save_safetensors(model.state_dict(), path)
        outputs = {}
        with torch.no_grad():
            for size in (cfg['img'], cfg['other']):
                outputs[str(size)] = model(formula_input(2, size)).flatten().tolist()
        golden[row] = dict(dim=DIM, depth=DEPTH, heads=HEADS, file=os.path.basename(path),
                           **{key: v for key, v in args.items()}, outputs=outputs)
    with open(os.path.join(out, 'vit-family-golden.json'), 'w') as f:
        json.dump(golden, f)


if __name__ == '__main__':
    main(sys.argv[1])
