#!/usr/bin/python3
"""Independent reference for CLIP's symmetric InfoNCE loss, written as golden/infonce-golden.json.

From the CLIP paper (Radford et al., ICML 2021, Figure 3 pseudocode) and open_clip's ClipLoss: image and text
embeddings L2-normalised, logits = exp(logit_scale) * I @ T.T, labels = arange(n), loss = (CE(logits, labels) +
CE(logits.T, labels)) / 2; the batch accuracy is the share of rows whose argmax is the diagonal. Gradients with respect
to both embeddings and to logit_scale come from autograd, in float64.

Usage:  /usr/bin/python3 infonce_reference.py golden
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def case(seed, n, d, logit_scale, aligned):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, d, generator=g, dtype=torch.float64)
    text = torch.randn(n, d, generator=g, dtype=torch.float64) + aligned * image
    image.requires_grad_(True)
    text.requires_grad_(True)
    scale = torch.tensor(logit_scale, dtype=torch.float64, requires_grad=True)
    i, t = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = scale.exp() * i @ t.t()
    labels = torch.arange(n)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    loss.backward()
    accuracy = (logits.argmax(-1) == labels).double().mean().item()
    return {"image": image.detach().tolist(), "text": text.detach().tolist(), "logit_scale": logit_scale,
            "loss": loss.item(), "accuracy": accuracy, "grad_image": image.grad.tolist(), "grad_text": text.grad.tolist(),
            "grad_logit_scale": scale.grad.item()}


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    cases = [case(1, 8, 16, math.log(1 / 0.07), 0.0), case(2, 12, 32, 2.0, 1.5), case(3, 5, 8, math.log(100), 3.0)]
    with open(os.path.join(HERE, "golden", "infonce-golden.json"), "w") as f:
        json.dump({"source": "tools/reference/infonce_reference.py golden", "cases": cases}, f)
    print("infonce-golden.json written:", [round(c["loss"], 4) for c in cases], [c["accuracy"] for c in cases])


if __name__ == "__main__":
    main()
