#!/usr/bin/python3
"""Independent reference for slide-level zero-shot by MI-Zero pooling, written as golden/mizero-golden.json.

MI-Zero (Lu et al., "Visual Language Pretrained Multiple Instance Zero-Shot Transfer for Histopathology Images",
CVPR 2023; github mahmoodlab/MI-Zero): each patch's image embedding, L2-normalised, against the prompt-ensembled class
embeddings gives patch logits (here scaled by exp(logit_scale), as CLIP's zero-shot does; a common factor, so rankings
and predictions are unchanged); a slide's logit for a class is the mean of that class's top-K patch logits, K clamped
to the number of patches; mean pooling over all patches is the baseline. Slide probabilities are the softmax of the
pooled logits. Class embeddings follow clip_reference.py's zero-shot (the mean over templates x names of normalised text
embeddings, normalised again) with the small CLIP it saved (golden/clip-mini.pt) and its trained BPE.

The slides' patch features are seeded random 64-d vectors with a class signal added to a few patches (so top-K and
mean pooling disagree on some slides); they are written into the JSON for the test to save as CLAM-style .h5 files.

Usage:  /usr/bin/python3 mizero_reference.py golden
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from clip_reference import Clip  # noqa: E402
from clip_tokenizer_reference import Tokenizer  # noqa: E402

TOPK = [1, 5, 10, 50, 100]


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    with open(os.path.join(HERE, "golden", "clip-tokenizer-golden.json"), encoding="utf-8") as f:
        training = json.load(f)["training"]
    context = 77
    model = Clip(embed_dim=64, resolution=64, patch=16, vision_width=128, vision_layers=2, context=context,
                 vocab=training["vocab_size"], width=128, layers=2)
    state = torch.load(os.path.join(HERE, "golden", "clip-mini.pt"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    tokenizer = Tokenizer([tuple(m.split(" ")) for m in training["merges"]])
    with open(os.path.join(HERE, "golden", "clip-zeroshot-prompts.json")) as f:
        prompts = json.load(f)
    classes = list(prompts["classnames"])
    with torch.no_grad():
        rows = []
        for names in prompts["classnames"].values():
            texts = [t.replace("CLASSNAME", n) for t in prompts["templates"] for n in names]
            ids = [tokenizer.tokenize(t) for t in texts]
            e = model.encode_text(torch.tensor([i + [0] * (context - len(i)) for i in ids]))
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(0)
            rows.append(e / e.norm())
        class_embeddings = torch.stack(rows).double()
        scale = float(model.logit_scale.float().exp())

    rng = np.random.default_rng(11)
    slides = []
    for s, (n, label) in enumerate([(1, 0), (7, 1), (40, 2), (130, 0), (64, 1), (12, 2)]):
        features = rng.normal(0, 1, (n, 64)).astype(np.float32)
        # A few strongly class-like patches: top-K pooling sees them, the mean over many patches dilutes them.
        strong = rng.choice(n, size=max(1, n // 10), replace=False)
        features[strong] += 6 * class_embeddings[label].numpy().astype(np.float32)
        f = torch.from_numpy(features).double()
        logits = scale * (f / f.norm(dim=-1, keepdim=True)) @ class_embeddings.t()
        pooled = {"mean": logits.mean(0)}
        for k in TOPK:
            pooled["top%d" % k] = logits.topk(min(k, n), dim=0).values.mean(0)
        slides.append({
            "slide_id": "slide-%d" % s, "case_id": "case-%d" % s, "label": classes[label],
            "features": features.tolist(),
            "pooled_logits": {p: v.tolist() for p, v in pooled.items()},
            "probabilities": {p: v.softmax(-1).tolist() for p, v in pooled.items()},
        })
    doc = {"source": "tools/reference/mizero_reference.py golden", "classes": classes, "topk": TOPK,
           "logit_scale": scale, "slides": slides}
    with open(os.path.join(HERE, "golden", "mizero-golden.json"), "w") as f:
        json.dump(doc, f)
    preds = {p: [classes[int(np.argmax(s["pooled_logits"][p]))] for s in slides] for p in slides[0]["pooled_logits"]}
    print("labels ", [s["label"] for s in slides])
    for p, v in preds.items():
        print("%-6s" % p, v)
    print("mizero-golden.json written")


if __name__ == "__main__":
    main()
