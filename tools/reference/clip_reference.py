#!/usr/bin/python3
"""CLIP's two towers at reduced size, written from OpenAI CLIP's model.py semantics (VisionTransformer, Transformer,
ResidualAttentionBlock over torch.nn.MultiheadAttention, QuickGELU, build_attention_mask, encode_image, encode_text)
and its parameter names, not from Histo's code. Seeded random weights, stored in float16 as OpenAI ships CLIP's, are
saved with torch.save as a state dict (clip-mini.pt); the image and text embeddings of a formula image and of token rows
(from the BPE trained in clip-tokenizer-golden.json) go to clip-golden.json. Zero-shot as CLIP's notebooks and CONCH do
it: per class the mean of the normalised text embeddings over templates x names, normalised again; softmax of
exp(logit_scale) x cosine, for two 64 px PNGs read with PIL and normalised with CLIP's mean and std (clip-zeroshot-*).
Debian's python3-torch 1.13 and python3-pil.

Usage: clip_reference.py golden
"""
import json
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask):
        # x is [sequence, batch, width], as nn.MultiheadAttention expects by default.
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTower(nn.Module):
    def __init__(self, resolution, patch, width, layers, output_dim):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // 64)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class Clip(nn.Module):
    def __init__(self, embed_dim, resolution, patch, vision_width, vision_layers, context, vocab, width, layers):
        super().__init__()
        self.context = context
        self.visual = VisionTower(resolution, patch, vision_width, vision_layers, embed_dim)
        self.transformer = Transformer(width, layers, width // 64)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.01)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed_dim) * width ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * 2.6592)

    def encode_image(self, images):
        return self.visual(images)

    def encode_text(self, tokens):
        mask = torch.full((self.context, self.context), float("-inf")).triu(1)
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), mask).permute(1, 0, 2)
        x = self.ln_final(x)
        # The end-of-text token has the highest id in each row.
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


def zeroshot(model, training, context):
    import numpy as np
    from PIL import Image
    sys.path.insert(0, HERE)
    from clip_tokenizer_reference import Tokenizer
    tokenizer = Tokenizer([tuple(m.split(" ")) for m in training["merges"]])
    prompts = {"classnames": {"tumour": ["tumour", "carcinoma"], "normal": ["normal tissue"], "stroma": ["stroma", "fibrous stroma"]},
               "templates": ["an H&E image of CLASSNAME.", "CLASSNAME", "histopathology of CLASSNAME"]}
    with open(os.path.join(HERE, "golden", "clip-zeroshot-prompts.json"), "w") as f:
        json.dump(prompts, f, indent=1)
    with torch.no_grad():
        classes = []
        for names in prompts["classnames"].values():
            texts = [t.replace("CLASSNAME", n) for t in prompts["templates"] for n in names]
            rows = [ids + [0] * (context - len(ids)) for ids in (tokenizer.tokenize(t) for t in texts)]
            e = model.encode_text(torch.tensor(rows))
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(0)
            classes.append(e / e.norm())
        classes = torch.stack(classes)
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
        out = []
        rng = np.random.default_rng(3)
        for i in range(2):
            y, x = np.mgrid[0:64, 0:64]
            rgb = np.stack([128 + 100 * np.sin(x / (5 + i) + c) * np.cos(y / 9 - c * i) for c in range(3)], -1)
            rgb = np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
            name = f"clip-zeroshot-{i}.png"
            Image.fromarray(rgb).save(os.path.join(HERE, "golden", name))
            pixels = np.asarray(Image.open(os.path.join(HERE, "golden", name)).convert("RGB"), dtype=np.float32) / 255
            image = (torch.from_numpy(pixels).permute(2, 0, 1) - mean) / std
            f = model.encode_image(image[None])
            f = f / f.norm(dim=-1, keepdim=True)
            out.append({"image": name, "probabilities": (model.logit_scale.exp() * f @ classes.t()).softmax(-1)[0].tolist()})
    return {"classes": list(prompts["classnames"]), "images": out}


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    torch.manual_seed(0)
    with open(os.path.join(HERE, "golden", "clip-tokenizer-golden.json"), encoding="utf-8") as f:
        training = json.load(f)["training"]
    vocab, context = training["vocab_size"], 77
    model = Clip(embed_dim=64, resolution=64, patch=16, vision_width=128, vision_layers=2, context=context, vocab=vocab,
                 width=128, layers=2)
    with torch.no_grad():
        for p in model.parameters():
            # Biases and LayerNorm affine parameters away from their defaults, so a missed one is seen.
            if p.dim() == 1 and p.shape[0] > 1:
                p.add_(0.1 * torch.randn_like(p))
        # OpenAI ships CLIP in float16 (convert_weights); the reference computes in float32 from the rounded values.
        for p in model.parameters():
            p.copy_(p.half().float())
    model.eval()
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(HERE, "golden", "clip-mini.pt"))

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = torch.stack([torch.stack([torch.sin(xx / 7 + c + b) * torch.cos(yy / 5 - c) for c in range(3)])
                          for b in range(2)])
    rows = [e["ids"] + [0] * (context - len(e["ids"])) for e in training["encoded"]]
    tokens = torch.tensor(rows)
    with torch.no_grad():
        image_features = model.encode_image(images)
        text_features = model.encode_text(tokens)
    golden = {
        "source": "tools/reference/clip_reference.py golden",
        "image_formula": "channel c of image b: sin(x / 7 + c + b) * cos(y / 5 - c), 64 x 64",
        "tokens": rows,
        "image_features": image_features.tolist(),
        "text_features": text_features.tolist(),
        "logit_scale": float(model.logit_scale.exp()),
    }
    golden["zeroshot"] = zeroshot(model, training, context)
    with open(os.path.join(HERE, "golden", "clip-golden.json"), "w") as f:
        json.dump(golden, f)
    print("clip-mini.pt, clip-golden.json written")


if __name__ == "__main__":
    main()
