#!/usr/bin/python3
"""The small CLIP of clip_reference.py saved under Hugging Face's CLIPModel names (PLIP ships this layout), as
golden/clip-mini-hf.bin (torch.save of a state dict, as pytorch_model.bin is).

The names are transformers' (models/clip/modeling_clip.py and convert_clip_original_pytorch_to_hf.py): vision_model.
embeddings.{patch_embedding, class_embedding, position_embedding}, vision_model.pre_layrnorm (sic), vision_model.encoder.
layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}, vision_model.post_layernorm,
visual_projection (a Linear without bias: OpenAI's proj transposed); text_model.embeddings.{token_embedding,
position_embedding}, text_model.encoder.layers.N.*, text_model.final_layer_norm, text_projection (transposed),
logit_scale; plus the position_ids buffers transformers saves. OpenAI's packed in_proj is split into q, k and v in that
order. Loaded into Histo, the model must give clip-golden.json's image and text features unchanged.

Also open_clip's variant (QuiltNet): OpenAI's names, but nn.GELU in the MLPs instead of QuickGELU. The same weights run
through clip_reference.py's model with its QuickGELU modules replaced by nn.GELU give golden/clip-mini-gelu.json.

Usage:  /usr/bin/python3 clip_hf_reference.py golden
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def convert(openai):
    hf = {}

    def tower(src, dst, layers):
        for n in range(layers):
            a, b = f"{src}resblocks.{n}.", f"{dst}encoder.layers.{n}."
            w, bias = openai[a + "attn.in_proj_weight"], openai[a + "attn.in_proj_bias"]
            for i, name in enumerate(["q_proj", "k_proj", "v_proj"]):
                hf[b + f"self_attn.{name}.weight"] = w.chunk(3)[i].clone()
                hf[b + f"self_attn.{name}.bias"] = bias.chunk(3)[i].clone()
            for x, y in [("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]:
                hf[b + y + ".weight"] = openai[a + x + ".weight"]
                hf[b + y + ".bias"] = openai[a + x + ".bias"]

    vl = len({k.split(".")[3] for k in openai if k.startswith("visual.transformer.resblocks.")})
    tl = len({k.split(".")[2] for k in openai if k.startswith("transformer.resblocks.")})
    hf["vision_model.embeddings.patch_embedding.weight"] = openai["visual.conv1.weight"]
    hf["vision_model.embeddings.class_embedding"] = openai["visual.class_embedding"]
    hf["vision_model.embeddings.position_embedding.weight"] = openai["visual.positional_embedding"]
    hf["vision_model.embeddings.position_ids"] = torch.arange(openai["visual.positional_embedding"].shape[0])[None]
    for x, y in [("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")]:
        hf[f"vision_model.{y}.weight"] = openai[f"visual.{x}.weight"]
        hf[f"vision_model.{y}.bias"] = openai[f"visual.{x}.bias"]
    tower("visual.transformer.", "vision_model.", vl)
    hf["visual_projection.weight"] = openai["visual.proj"].t().contiguous()
    hf["text_model.embeddings.token_embedding.weight"] = openai["token_embedding.weight"]
    hf["text_model.embeddings.position_embedding.weight"] = openai["positional_embedding"]
    hf["text_model.embeddings.position_ids"] = torch.arange(openai["positional_embedding"].shape[0])[None]
    tower("transformer.", "text_model.", tl)
    hf["text_model.final_layer_norm.weight"] = openai["ln_final.weight"]
    hf["text_model.final_layer_norm.bias"] = openai["ln_final.bias"]
    hf["text_projection.weight"] = openai["text_projection"].t().contiguous()
    hf["logit_scale"] = openai["logit_scale"]
    return hf


def main():
    if sys.argv[1:] != ["golden"]:
        print(__doc__)
        sys.exit(2)
    openai = torch.load(os.path.join(HERE, "golden", "clip-mini.pt"))
    hf = convert(openai)
    assert sum(v.numel() for k, v in hf.items() if "position_ids" not in k) == sum(v.numel() for v in openai.values())
    torch.save(hf, os.path.join(HERE, "golden", "clip-mini-hf.bin"))
    print("clip-mini-hf.bin written: %d tensors" % len(hf))

    import json
    sys.path.insert(0, HERE)
    from clip_reference import Clip
    with open(os.path.join(HERE, "golden", "clip-golden.json")) as f:
        golden = json.load(f)
    with open(os.path.join(HERE, "golden", "clip-tokenizer-golden.json"), encoding="utf-8") as f:
        vocab = json.load(f)["training"]["vocab_size"]
    model = Clip(embed_dim=64, resolution=64, patch=16, vision_width=128, vision_layers=2, context=77, vocab=vocab,
                 width=128, layers=2)
    model.load_state_dict({k: v.float() for k, v in openai.items()})
    for block in list(model.visual.transformer.resblocks) + list(model.transformer.resblocks):
        block.mlp.gelu = torch.nn.GELU()
    model.eval()
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = torch.stack([torch.stack([torch.sin(xx / 7 + c + b) * torch.cos(yy / 5 - c) for c in range(3)])
                          for b in range(2)])
    with torch.no_grad():
        out = {"source": "tools/reference/clip_hf_reference.py golden (clip-mini.pt with nn.GELU)",
               "image_features": model.encode_image(images).tolist(),
               "text_features": model.encode_text(torch.tensor(golden["tokens"])).tolist()}
    with open(os.path.join(HERE, "golden", "clip-mini-gelu.json"), "w") as f:
        json.dump(out, f)
    print("clip-mini-gelu.json written")


if __name__ == "__main__":
    main()
