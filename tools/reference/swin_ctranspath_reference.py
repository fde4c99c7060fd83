#!/usr/bin/python3
"""CTransPath (Wang et al. 2022) at reduced size: a Swin-T (Liu et al. 2021) whose patch embedding is CTransPath's
convolutional stem, written in plain torch.nn from the paper and from timm 0.5.4's swin_transformer.py semantics (the
timm that CTransPath's ctran.py and its `ctranspath.pth` use; PyPI's timm-ctp is that version), not from Histo's code.

Semantics of timm 0.5.4 kept here (later timm moves PatchMerging to the start of the next stage and makes both
buffers non-persistent, so the released checkpoint's names and buffers are 0.5.4's):
- BasicLayer = blocks then PatchMerging, so `layers.0..2.downsample` exist and `layers.3` has none;
- PatchMerging concatenates x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2] (row offset varies fastest),
  then LayerNorm(4C), then Linear(4C, 2C, bias=False);
- `relative_position_index` and `attn_mask` are persistent buffers, so they are in the state dict (attn_mask only on
  blocks whose shift is not 0);
- a block whose stage resolution is <= the window gets shift 0 and window = that resolution (no partition);
- odd blocks shift by window // 2 with torch.roll(-s, -s) over (H, W) before attention and roll(+s, +s) after; the mask
  labels 9 regions (slices [0, -w), [-w, -s), [-s, end) per axis), pairs with different labels get -100;
- tokens stay (B, L, C) between blocks; the end is LayerNorm, mean over tokens, head (Identity in CTransPath).
The stem (TransPath ctran.py ConvStem): patch_embed.proj = Sequential(0 Conv3x3 s2 p1 3->E/8 no bias, 1 BN, 2 ReLU,
3 Conv3x3 s2 p1 E/8->E/4 no bias, 4 BN, 5 ReLU, 6 Conv1x1 E/4->E with bias), flatten to (B, L, E),
patch_embed.norm = LayerNorm(E). All LayerNorms eps 1e-5, BatchNorm eps 1e-5 (eval: running statistics).

Reduction: embed 16 (so the stem's 12 and 24 channels, which are E/8 and E/4, become 2 and 4), depths [2, 2, 2, 2],
heads [1, 2, 4, 8] (head dim 16); window 7, patch 4, mlp ratio 4, qkv bias, pretraining size 224. Seeded random
weights are saved as the user's file is: torch.save({'model': state_dict}) under timm 0.5.4's names, with the buffers
and without head.* (the real ctranspath.pth loads with strict=True into a model whose head is nn.Identity). Features
of a formula input at 224 and at 448 px (the model built for 448: masks recomputed for stage grids 112/56/28/14, which
also gives stage 4 a shifted block; the same tables and weights, the file's attn_mask entries dropped as TRIDENT does).
Debian's python3-torch 1.13.

Usage: swin_ctranspath_reference.py OUT_DIR   (writes ctranspath-golden.json and ctranspath-mini.pth)
"""
import json, os, sys
import torch, torch.nn as nn, torch.nn.functional as F

from vit_family_reference import formula_input


def window_partition(x, w):
    """(B, H, W, C) -> (B * nW, w*w, C); windows in row-major order of the window grid, batch outermost."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)


def window_merge(windows, w, B, H, W):
    C = windows.shape[-1]
    x = windows.reshape(B, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


def relative_position_index(w):
    """index[i, j] for tokens i, j of a window (row-major): (dy + w - 1) * (2w - 1) + (dx + w - 1),
    (dy, dx) = position of i - position of j."""
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + (w - 1)
    dx = xs[:, None] - xs[None, :] + (w - 1)
    return dy * (2 * w - 1) + dx


def shifted_window_mask(H, W, w, s):
    """(nW, w*w, w*w): 0 where both tokens lie in the same region of the rolled grid, -100 elsewhere."""
    labels = torch.zeros(1, H, W, 1)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
    n = 0
    for hs in cuts:
        for ws in cuts:
            labels[:, hs, ws, :] = n
            n += 1
    lw = window_partition(labels, w).squeeze(-1)                     # nW, w*w
    diff = lw[:, None, :] - lw[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class WindowAttention(nn.Module):
    def __init__(self, dim, heads, w):
        super().__init__()
        self.heads, self.w = heads, w
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        self.register_buffer('relative_position_index', relative_position_index(w))
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        Bw, N, C = x.shape
        q, k, v = self.qkv(x).reshape(Bw, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)                  # Bw, heads, N, N
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(N, N, self.heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.reshape(Bw // nW, nW, self.heads, N, N) + mask[None, :, None]).reshape(Bw, self.heads, N, N)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(Bw, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, res, heads, window, shift, mlp_ratio):
        super().__init__()
        self.res = res
        if min(res) <= window:                                         # the whole grid is one window, no shift
            window, shift = min(res), 0
        self.w, self.s = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer('attn_mask', shifted_window_mask(res[0], res[1], window, shift) if shift else None)

    def forward(self, x):
        H, W = self.res
        B, L, C = x.shape
        y = self.norm1(x).reshape(B, H, W, C)
        if self.s:
            y = torch.roll(y, shifts=(-self.s, -self.s), dims=(1, 2))
        y = window_merge(self.attn(window_partition(y, self.w), self.attn_mask), self.w, B, H, W)
        if self.s:
            y = torch.roll(y, shifts=(self.s, self.s), dims=(1, 2))
        x = x + y.reshape(B, L, C)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, res, dim):
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        H, W = self.res
        B, L, C = x.shape
        x = x.reshape(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.reshape(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, window, mlp_ratio, merge):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, res, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
                                     for i in range(depth)])
        self.downsample = PatchMerging(res, dim) if merge else None

    def forward(self, x, trace=None, name=''):
        for block in self.blocks:
            x = block(x)
        if trace is not None:
            trace[name + '_blocks'] = x
        return self.downsample(x) if self.downsample is not None else x


class ConvStem(nn.Module):
    def __init__(self, embed):
        super().__init__()
        c1, c2 = embed // 8, embed // 4
        self.proj = nn.Sequential(
            nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, embed, 1))
        self.norm = nn.LayerNorm(embed)

    def forward(self, x, trace=None):
        x = self.proj(x)
        if trace is not None:
            trace['stem_conv'] = x
        return self.norm(x.flatten(2).transpose(1, 2))


class CTransPath(nn.Module):
    def __init__(self, img, embed, depths, heads, window=7, patch=4, mlp_ratio=4.0):
        super().__init__()
        self.patch_embed = ConvStem(embed)
        g = img // patch
        self.layers = nn.Sequential(*[
            BasicLayer(embed * 2 ** i, (g // 2 ** i, g // 2 ** i), depths[i], heads[i], window, mlp_ratio,
                       merge=i < len(depths) - 1) for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed * 2 ** (len(depths) - 1))
        self.head = nn.Identity()                                      # CTransPath: model.head = nn.Identity()

    def forward(self, images, trace=None):
        x = self.patch_embed(images, trace)
        if trace is not None:
            trace['stem'] = x
        for i, layer in enumerate(self.layers):
            x = layer(x, trace, f'stage{i + 1}')
            if trace is not None:
                trace[f'stage{i + 1}'] = x
        return self.head(self.norm(x).mean(1))


EMBED, DEPTHS, HEADS, WINDOW, PATCH, IMG, OTHER = 16, [2, 2, 2, 2], [1, 2, 4, 8], 7, 4, 224, 448
FILE = 'ctranspath-mini.pth'


def randomise(model, seed):
    """vit_family_reference.randomise's scheme: norm scales (LayerNorm and BatchNorm weights) 1 + 0.2 r, every other
    parameter 0.1 r; BatchNorm running_mean 0.1 r and running_var 0.5 + U[0, 1). Index and mask buffers stay as
    computed; num_batches_tracked stays 0."""
    g = torch.Generator().manual_seed(seed)
    bn = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            owner, leaf = name.rsplit('.', 1)
            if leaf == 'weight' and ('norm' in name or owner in bn):
                p.copy_(1 + 0.2 * r)
            else:
                p.copy_(0.1 * r)
        for owner in sorted(bn):
            m = model.get_submodule(owner)
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def build(img):
    return CTransPath(img, EMBED, DEPTHS, HEADS, WINDOW, PATCH).eval()


def first(t, n=16):
    return t.flatten()[:n].tolist()


def main(out):
    torch.set_num_threads(1)
    model = build(IMG)
    randomise(model, 300)
    path = os.path.join(out, FILE)
    torch.save({'model': model.state_dict()}, path)

    state = torch.load(path, map_location='cpu')['model']
    outputs, debug = {}, {}
    for size in (IMG, OTHER):
        m = build(size)
        missing, unexpected = m.load_state_dict({k: v for k, v in state.items() if 'attn_mask' not in k}, strict=False)
        assert not unexpected and all(k.endswith('attn_mask') for k in missing), (missing, unexpected)
        if size == IMG:  # the file's masks are this model's masks
            assert all(torch.equal(state[k], m.state_dict()[k]) for k in missing)
        trace = {}
        with torch.no_grad():
            y = m(formula_input(2, size), trace)
        outputs[str(size)] = y.flatten().tolist()
        debug[str(size)] = dict(
            stem_conv_shape=list(trace['stem_conv'].shape), stem_conv_first16=first(trace['stem_conv']),
            stem_shape=list(trace['stem'].shape), stem_first16=first(trace['stem']),
            stage1_blocks_shape=list(trace['stage1_blocks'].shape), stage1_blocks_first16=first(trace['stage1_blocks']),
            stage1_shape=list(trace['stage1'].shape), stage1_first16=first(trace['stage1']),
            stage1_sum=trace['stage1'].double().sum().item(),
            shifted_blocks=sorted(k[:-len('.attn_mask')] for k in missing))
    golden = dict(
        config=dict(embed_dim=EMBED, depths=DEPTHS, num_heads=HEADS, window_size=WINDOW, patch_size=PATCH,
                    img_size=IMG, mlp_ratio=4.0, qkv_bias=True, stem_channels=[EMBED // 8, EMBED // 4],
                    num_features=EMBED * 2 ** (len(DEPTHS) - 1), layer_norm_eps=1e-5, batch_norm_eps=1e-5,
                    seed=300, reduction='CTransPath Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, stem 12/24 '
                                         'channels = embed/8, embed/4) reduced to embed 16, depths 2-2-2-2, heads '
                                         '1-2-4-8, stem 2/4 channels'),
        file=FILE, checkpoint_format="torch.save({'model': state_dict}), timm 0.5.4 names, buffers kept, no head.*",
        input='formula_input(2, size)', outputs=outputs, debug=debug)
    with open(os.path.join(out, 'ctranspath-golden.json'), 'w') as f:
        json.dump(golden, f)


if __name__ == '__main__':
    main(sys.argv[1])
