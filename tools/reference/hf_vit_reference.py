#!/usr/bin/python3
"""The Hugging Face and DINOv2-hub layouts of the pathology ViTs (Phikon, Phikon-v2, a facebookresearch/dinov2 .pth
with registers and SwiGLU, H0-mini) at reduced width and depth. Written from the published semantics, not from Histo's
code: transformers' modeling_vit.py (ViTEmbeddings.interpolate_pos_encoding, ViTSelfAttention, ViTLayer, ViTModel,
ViTPooler) and modeling_dinov2.py (Dinov2Embeddings, Dinov2LayerScale, Dinov2MLP, Dinov2Layer), in their 4.3x-4.4x
form (position grid resized with scale_factor = (n + 0.1) / sqrt(N)) and in their current form (size = n); dinov2's
models/vision_transformer.py (prepare_tokens_with_masks, interpolate_pos_encoding), layers/swiglu_ffn.py
(SwiGLUFFNFused) and hub/backbones.py (interpolate defaults of the _reg entry points); timm's vision_transformer.py
for H0-mini (built with vit_family_reference.VisionTransformer). Seeded random weights under each layout's own names
are saved as the files users have (model.safetensors, the hub's .pth), with the features of a formula input at the
pretraining size and at one other size. Debian's python3-torch 1.13.

Usage: hf_vit_reference.py OUT_DIR   (writes hf-vit-golden.json, hf-phikon.safetensors, hf-phikon-v2.safetensors,
dinov2-raw.pth and h0-mini.safetensors)
"""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_family_reference import VisionTransformer, formula_input, randomise, save_safetensors  # noqa: E402

DIM, DEPTH, HEADS = 32, 2, 2


def attention(q, k, v, heads):
    """Scaled dot-product attention over heads; q, k, v are [B, N, D] with head h in columns h*hd .. (h+1)*hd."""
    B, N, D = q.shape
    q, k, v = (t.reshape(B, N, heads, D // heads).transpose(1, 2) for t in (q, k, v))
    attn = (q @ k.transpose(-2, -1)) * (D // heads) ** -0.5
    return (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)


def resize_grid(grid, n_h, n_w, mode, antialias=False):
    """Bicubic resize of a square [1, N, D] grid of position embeddings to n_h x n_w, flattened back row-major.
    mode 'offset': F.interpolate(scale_factor=((n_h + 0.1) / M, (n_w + 0.1) / M)), the DINO kludge kept by
    transformers <= 4.4x and dinov2's interpolate_offset=0.1; the scale factor itself (not M / n) then places the
    samples. mode 'size': F.interpolate(size=(n_h, n_w)), sample spacing M / n. align_corners False in both."""
    M, D = int(math.sqrt(grid.shape[1])), grid.shape[2]
    x = grid.reshape(1, M, M, D).permute(0, 3, 1, 2).float()
    if mode == 'offset':
        x = F.interpolate(x, scale_factor=((n_h + 0.1) / M, (n_w + 0.1) / M), mode='bicubic', align_corners=False,
                          antialias=antialias)
    else:
        x = F.interpolate(x, size=(n_h, n_w), mode='bicubic', align_corners=False, antialias=antialias)
    assert x.shape[-2:] == (n_h, n_w)
    return x.permute(0, 2, 3, 1).reshape(1, n_h * n_w, D)


# ---- Hugging Face layout: the nesting below reproduces transformers' state-dict names exactly.

class Dense(nn.Module):
    """ViTSelfOutput / ViTIntermediate / ViTOutput / ViTPooler: a module holding one Linear named `dense`."""
    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)


class SelfAttention(nn.Module):
    """ViTSelfAttention / Dinov2SelfAttention: separate query, key and value Linears (qkv_bias True)."""
    def __init__(self, dim):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)


class Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.attention = SelfAttention(dim)
        self.output = Dense(dim, dim)

    def forward(self, x, heads):
        a = self.attention
        return self.output.dense(attention(a.query(x), a.key(x), a.value(x), heads))


class PatchEmbeddings(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.projection = nn.Conv2d(3, dim, patch, stride=patch)


class HFEmbeddings(nn.Module):
    """ViTEmbeddings (no mask token in ViTModel's default) or Dinov2Embeddings (mask_token [1, D])."""
    def __init__(self, dim, patch, img, mask_token):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embeddings = PatchEmbeddings(patch, dim)
        self.position_embeddings = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))  # class position first

    def forward(self, images, mode):
        x = self.patch_embeddings.projection(images)
        n_h, n_w = x.shape[2], x.shape[3]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], 1)
        pos = self.position_embeddings
        if x.shape[1] != pos.shape[1] or n_h != n_w:  # interpolate_pos_encoding: the class position is kept as is
            pos = torch.cat([pos[:, :1], resize_grid(pos[:, 1:], n_h, n_w, mode)], 1)
        return x + pos


class ViTLayer(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.attention = Attention(dim)
        self.intermediate = Dense(dim, 4 * dim)
        self.output = Dense(4 * dim, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, heads):
        x = x + self.attention(self.layernorm_before(x), heads)
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))  # "gelu": erf


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class HFViTModel(nn.Module):
    """transformers ViTModel as Phikon ships it (hidden_act gelu, layer_norm_eps 1e-12, qkv_bias True); the pooler
    (dense + tanh on token 0) is in the file but feature extraction uses last_hidden_state[:, 0] after `layernorm`."""
    def __init__(self, dim, depth, heads, patch, img, eps=1e-12):
        super().__init__()
        self.heads = heads
        self.embeddings = HFEmbeddings(dim, patch, img, mask_token=False)
        self.encoder = Encoder([ViTLayer(dim, eps) for _ in range(depth)])
        self.layernorm = nn.LayerNorm(dim, eps=eps)
        self.pooler = Dense(dim, dim)

    def forward(self, images, mode='offset'):
        x = self.embeddings(images, mode)
        for layer in self.encoder.layer:
            x = layer(x, self.heads)
        return self.layernorm(x)[:, 0]


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(dim))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)


class Dinov2Layer(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attention = Attention(dim)
        self.layer_scale1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * 4.0))
        self.layer_scale2 = LayerScale(dim)

    def forward(self, x, heads):
        x = x + self.attention(self.norm1(x), heads) * self.layer_scale1.lambda1
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x)))) * self.layer_scale2.lambda1


class HFDinov2Model(nn.Module):
    """transformers Dinov2Model as Phikon-v2 ships it (layer_norm_eps 1e-6, gelu, mlp_ratio 4, no SwiGLU, no
    registers, no pooler module); Dinov2Embeddings always calls interpolate_pos_encoding (no flag, float32)."""
    def __init__(self, dim, depth, heads, patch, img, eps=1e-6):
        super().__init__()
        self.heads = heads
        self.embeddings = HFEmbeddings(dim, patch, img, mask_token=True)
        self.encoder = Encoder([Dinov2Layer(dim, eps) for _ in range(depth)])
        self.layernorm = nn.LayerNorm(dim, eps=eps)

    def forward(self, images, mode='offset'):
        x = self.embeddings(images, mode)
        for layer in self.encoder.layer:
            x = layer(x, self.heads)
        return self.layernorm(x)[:, 0]


# ---- facebookresearch/dinov2 hub layout (DinoVisionTransformer with block_chunks=0, as the hub builds it).

def swiglu_hidden(dim, mlp_ratio):
    """SwiGLUFFNFused: Block passes int(dim * mlp_ratio); the gated width is int(that * 2 / 3) rounded up to 8."""
    return (int(int(dim * mlp_ratio) * 2 / 3) + 7) // 8 * 8


class RawAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x, heads):
        q, k, v = self.qkv(x).chunk(3, -1)  # rows of qkv.weight: all q, then all k, then all v
        return self.proj(attention(q, k, v, heads))


class SwiGLUFFNFused(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, -1)
        return self.w3(F.silu(x1) * x2)


class RawLayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))


class RawBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RawAttention(dim)
        self.ls1 = RawLayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwiGLUFFNFused(dim, hidden)
        self.ls2 = RawLayerScale(dim)

    def forward(self, x, heads):
        x = x + self.attn(self.norm1(x), heads) * self.ls1.gamma
        return x + self.mlp(self.norm2(x)) * self.ls2.gamma


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)


class RawDinoV2(nn.Module):
    """DinoVisionTransformer(ffn_layer='swiglufused', num_register_tokens=R, init_values set): tokens are
    cat(cls, patches) + interpolated pos_embed, then the registers (no position) go in after the class token."""
    def __init__(self, dim, depth, heads, patch, img, registers, mlp_ratio=4.0):
        super().__init__()
        self.heads = heads
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(patch, dim)
        self.blocks = nn.ModuleList([RawBlock(dim, swiglu_hidden(dim, mlp_ratio)) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, images, offset=0.0, antialias=True):
        x = self.patch_embed.proj(images)
        n_h, n_w = x.shape[2], x.shape[3]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], 1)
        pos = self.pos_embed
        if x.shape[1] != pos.shape[1] or n_h != n_w:
            mode = 'offset' if offset else 'size'
            assert offset in (0.0, 0.1)
            pos = torch.cat([pos[:, :1], resize_grid(pos[:, 1:], n_h, n_w, mode, antialias)], 1)
        x = x + pos
        x = torch.cat([x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]], 1)
        for blk in self.blocks:
            x = blk(x, self.heads)
        return self.norm(x)[:, 0]  # x_norm_clstoken


# ---- The explicit, unfused check of row 1: float64 from the state dict alone.

def cubic_matrix(n_in, n_out, inv_scale):
    """PyTorch's bicubic (A = -0.75, align_corners False): source x = inv_scale * (i + 0.5) - 0.5, taps
    floor(x) - 1 .. floor(x) + 2 clamped to the border."""
    A, W = -0.75, torch.zeros(n_out, n_in, dtype=torch.float64)
    near = lambda t: ((A + 2) * t - (A + 3)) * t * t + 1
    far = lambda t: ((A * t - 5 * A) * t + 8 * A) * t - 4 * A
    for i in range(n_out):
        x = inv_scale * (i + 0.5) - 0.5
        x0 = math.floor(x)
        t = x - x0
        for k, w in zip(range(-1, 3), (far(t + 1), near(t), near(1 - t), far(2 - t))):
            W[i, min(max(x0 + k, 0), n_in - 1)] += w
    return W


def phikon_unfused(sd, images, patch, heads, mode, eps=1e-12):
    g = lambda name: sd[name].double()
    B, _, H, W = images.shape
    n_h, n_w = H // patch, W // patch
    p = images.double().reshape(B, 3, n_h, patch, n_w, patch).permute(0, 2, 4, 1, 3, 5).reshape(B, n_h * n_w, -1)
    w = g('embeddings.patch_embeddings.projection.weight')
    x = p @ w.reshape(w.shape[0], -1).T + g('embeddings.patch_embeddings.projection.bias')
    pos = g('embeddings.position_embeddings')
    M, D = int(math.sqrt(pos.shape[1] - 1)), pos.shape[2]
    grid = pos[0, 1:].reshape(M, M, D)
    if (n_h, n_w) != (M, M):
        inv_h = M / (n_h + 0.1) if mode == 'offset' else M / n_h
        inv_w = M / (n_w + 0.1) if mode == 'offset' else M / n_w
        grid = torch.einsum('ia,abd,jb->ijd', cubic_matrix(M, n_h, inv_h), grid, cubic_matrix(M, n_w, inv_w))
    x = torch.cat([g('embeddings.cls_token').expand(B, 1, D), x], 1)
    x = x + torch.cat([pos[:, :1], grid.reshape(1, -1, D)], 1)

    def ln(t, name):
        mu = t.mean(-1, keepdim=True)
        var = ((t - mu) ** 2).mean(-1, keepdim=True)
        return (t - mu) / torch.sqrt(var + eps) * g(name + '.weight') + g(name + '.bias')

    lin = lambda t, name: t @ g(name + '.weight').T + g(name + '.bias')
    hd = D // heads
    for i in range(sum(1 for k in sd if k.endswith('layernorm_before.weight'))):
        pre = f'encoder.layer.{i}.'
        h = ln(x, pre + 'layernorm_before')
        q, k, v = (lin(h, pre + 'attention.attention.' + n) for n in ('query', 'key', 'value'))
        heads_out = []
        for j in range(heads):
            s = slice(j * hd, (j + 1) * hd)
            logits = q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(hd)
            e = torch.exp(logits - logits.max(-1, keepdim=True).values)
            heads_out.append((e / e.sum(-1, keepdim=True)) @ v[..., s])
        x = x + lin(torch.cat(heads_out, -1), pre + 'attention.output.dense')
        u = lin(ln(x, pre + 'layernorm_after'), pre + 'intermediate.dense')
        x = x + lin(0.5 * u * (1 + torch.erf(u / math.sqrt(2))), pre + 'output.dense')
    return ln(x, 'layernorm')[:, 0]


def seeded(model, seed):
    """vit_family_reference.randomise, then two moves: LayerScale lambda1 (drawn as 0.1 r, its name not ending in
    gamma) to 1 + 0.2 r like timm's gamma, and the position embeddings times 10 (std 1, comparable to the patch
    projections) so that the interpolation convention shows clearly in the features."""
    randomise(model, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('lambda1'):
                p.mul_(2).add_(1)
            elif name.endswith(('position_embeddings', 'pos_embed')):
                p.mul_(10)
    return model


def shapes(state):
    return {k: list(v.shape) for k, v in state.items()}


def main(out):
    torch.set_num_threads(1)
    golden = {}
    B = 2

    def features(fn, size):
        with torch.no_grad():
            return fn(formula_input(B, size))

    # 1. Phikon: HF ViTModel, ViT-B/16 at 224 in reality (768 wide, 12 deep, 12 heads, intermediate 3072).
    model = HFViTModel(DIM, DEPTH, HEADS, patch=16, img=224).eval()
    seeded(model, 200)
    state = model.state_dict()
    save_safetensors(state, os.path.join(out, 'hf-phikon.safetensors'))
    other = 256
    outputs, newer = {}, {}
    for size in (224, other):
        f = features(model, size)
        outputs[str(size)] = f.flatten().tolist()
        newer[str(size)] = features(lambda x: model(x, mode='size'), size).flatten().tolist()
        for mode, ref in (('offset', f), ('size', torch.tensor(newer[str(size)]).reshape(B, DIM))):
            check = phikon_unfused(state, formula_input(B, size), 16, HEADS, mode)
            err = (check - ref.double()).abs().max().item()
            assert err < 1e-4, f'phikon unfused check {size} {mode}: {err}'
            print(f'phikon {size} {mode}: unfused float64 vs module max |diff| {err:.2e}')
    print(f'phikon {other}: offset vs size features max |diff| '
          f'{(torch.tensor(outputs[str(other)]) - torch.tensor(newer[str(other)])).abs().max():.3e}')
    golden['phikon'] = dict(
        layout='hf-vit', dim=DIM, depth=DEPTH, heads=HEADS, patch=16, img=224, eps=1e-12, mlp='gelu-erf',
        hidden=4 * DIM, registers=0, layer_scale=None, pos_embed_class=True, seed=200, other=other,
        file='hf-phikon.safetensors', shapes=shapes(state),
        interpolation='transformers<=4.4x ViT interpolate_pos_encoding=True: class position kept, grid bicubic '
                      'align_corners=False, scale_factor=((n+0.1)/M, (n+0.1)/M)',
        feature='layernorm(last_hidden_state)[:, 0]; pooler unused',
        outputs=outputs,
        outputs_size=newer)  # current transformers: size=(n, n), no offset

    # 2. Phikon-v2: HF Dinov2Model, ViT-L/16 at 224 in reality (1024 wide, 24 deep, 16 heads, mlp 4096).
    model = HFDinov2Model(DIM, DEPTH, HEADS, patch=16, img=224).eval()
    seeded(model, 201)
    state = model.state_dict()
    save_safetensors(state, os.path.join(out, 'hf-phikon-v2.safetensors'))
    other = 160
    outputs = {str(s): features(model, s).flatten().tolist() for s in (224, other)}
    newer = {str(s): features(lambda x: model(x, mode='size'), s).flatten().tolist() for s in (224, other)}
    golden['phikon-v2'] = dict(
        layout='hf-dinov2', dim=DIM, depth=DEPTH, heads=HEADS, patch=16, img=224, eps=1e-6, mlp='gelu-erf',
        hidden=4 * DIM, registers=0, layer_scale='lambda1', pos_embed_class=True, seed=201, other=other,
        file='hf-phikon-v2.safetensors', shapes=shapes(state),
        interpolation='transformers<=4.4x Dinov2 (always on, float32): class position kept, grid bicubic '
                      'align_corners=False, scale_factor=((n+0.1)/M, (n+0.1)/M)',
        feature='layernorm(last_hidden_state)[:, 0]',
        outputs=outputs, outputs_size=newer)

    # 3. A facebookresearch/dinov2 hub checkpoint with registers and SwiGLU (dinov2_vitg14_reg4-style).
    model = RawDinoV2(DIM, DEPTH, HEADS, patch=14, img=224, registers=4).eval()
    seeded(model, 202)
    state = model.state_dict()
    torch.save(state, os.path.join(out, 'dinov2-raw.pth'))
    other = 168
    outputs = {str(s): features(model, s).flatten().tolist() for s in (224, other)}
    older = {str(s): features(lambda x: model(x, offset=0.1, antialias=False), s).flatten().tolist()
             for s in (224, other)}
    golden['dinov2-raw'] = dict(
        layout='dinov2-hub', dim=DIM, depth=DEPTH, heads=HEADS, patch=14, img=224, eps=1e-6, mlp='swiglu-fused',
        hidden=swiglu_hidden(DIM, 4.0), registers=4, layer_scale='gamma', pos_embed_class=True, seed=202,
        other=other, file='dinov2-raw.pth', shapes=shapes(state),
        interpolation='hub _reg entry points (interpolate_offset=0.0, interpolate_antialias=True): class position '
                      'kept, grid bicubic antialiased, size=(n, n); registers inserted after cls, no position',
        feature='norm(x)[:, 0] (x_norm_clstoken)',
        outputs=outputs,
        outputs_offset=older)  # DinoVisionTransformer defaults: offset 0.1 (scale_factor), antialias False

    # 4. H0-mini: timm vit_base_patch14_reg4_dinov2 + SwiGLUPacked, ViT-B/14 at 224 in reality.
    cfg = dict(patch=14, img=224, mlp_ratio=2.66667 * 2, mlp='swiglu-packed', init_values=1e-5, reg_tokens=4,
               no_embed_class=True, pool='cls+mean')
    model = VisionTransformer(DIM, DEPTH, HEADS, **cfg).eval()
    seeded(model, 203)
    state = model.state_dict()
    save_safetensors(state, os.path.join(out, 'h0-mini.safetensors'))
    other = 252
    outputs = {str(s): features(model, s) for s in (224, other)}
    golden['h0-mini'] = dict(
        layout='timm', dim=DIM, depth=DEPTH, heads=HEADS, patch=14, img=224, eps=1e-6, mlp='swiglu-packed',
        hidden=int(DIM * cfg['mlp_ratio']), mlp_ratio=cfg['mlp_ratio'], registers=4, layer_scale='gamma',
        no_embed_class=True, pos_embed_class=False, seed=203, other=other, file='h0-mini.safetensors',
        shapes=shapes(state),
        interpolation='timm dynamic_img_size: resample_abs_pos_embed, no prefix in pos_embed, bicubic antialias '
                      'size=(n, n); tokens cat(cls, reg x4, patches + pos)',
        feature='cat(norm(x)[:, 0], norm(x)[:, 5:].mean(1)); outputs_cls is norm(x)[:, 0]',
        outputs={k: v.flatten().tolist() for k, v in outputs.items()},
        outputs_cls={k: v[:, :DIM].flatten().tolist() for k, v in outputs.items()})

    with open(os.path.join(out, 'hf-vit-golden.json'), 'w') as f:
        json.dump(golden, f)
    for row, g in golden.items():
        size = os.path.getsize(os.path.join(out, g['file']))
        print(f'{row}: {g["file"]} {size} bytes, {len(g["shapes"])} tensors')


if __name__ == '__main__':
    main(sys.argv[1])
