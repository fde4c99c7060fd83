using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// The ways ViT weights are published, converted to timm's names (what <see cref="VisionTransformer"/> loads): Hugging Face
/// <c>ViTModel</c> (Phikon: embeddings.*, encoder.layer.N.attention.attention.{query,key,value}, layernorm_before/after),
/// Hugging Face <c>Dinov2Model</c> (Phikon-v2: layer_scale1.lambda1, mask_token) and the raw DINOv2 hub checkpoint
/// (mlp.w12/w3, register_tokens, the class position inside pos_embed). The rules follow timm's checkpoint_filter_fn and
/// transformers' module layout; a timm file passes through. Only a position grid of another size is resampled (timm's
/// resample_abs_pos_embed: bicubic, antialiased), to the row's pretraining grid.
/// </summary>
public static class ViTLayouts
{
    public static Dictionary<string, Tensor> ToTimm(Dictionary<string, Tensor> tensors, ViTConfig config)
    {
        var converted = tensors.ContainsKey("embeddings.patch_embeddings.projection.weight") ? FromHuggingFace(tensors)
            : tensors.ContainsKey("register_tokens") || tensors.ContainsKey("mask_token")
                || tensors.Keys.Any(k => k.EndsWith(".mlp.w12.weight", StringComparison.Ordinal)) ? FromDinoV2(tensors)
            : tensors;
        return ResampledToGrid(converted, config);
    }

    /// <summary>transformers' ViTModel / Dinov2Model names to timm's; q, k, v concatenated into qkv (rows q, then k, then v).</summary>
    static Dictionary<string, Tensor> FromHuggingFace(Dictionary<string, Tensor> tensors)
    {
        var result = new Dictionary<string, Tensor>();
        var qkv = new SortedDictionary<string, Tensor[]>(StringComparer.Ordinal);
        foreach (var (name, value) in tensors)
        {
            // The pooler (ViTModel's tanh head) and the masked-image token are not part of the feature.
            if (name.StartsWith("pooler.", StringComparison.Ordinal) || name == "embeddings.mask_token") continue;
            string? mapped = name switch
            {
                "embeddings.cls_token" => "cls_token",
                "embeddings.position_embeddings" => "pos_embed",
                _ when name.StartsWith("embeddings.patch_embeddings.projection.", StringComparison.Ordinal) =>
                    "patch_embed.proj." + name["embeddings.patch_embeddings.projection.".Length..],
                _ when name.StartsWith("layernorm.", StringComparison.Ordinal) => "norm." + name["layernorm.".Length..],
                _ => null,
            };
            if (mapped is null && name.StartsWith("encoder.layer.", StringComparison.Ordinal))
            {
                var rest = name["encoder.layer.".Length..];
                int dot = rest.IndexOf('.');
                string block = $"blocks.{rest[..dot]}.", part = rest[(dot + 1)..];
                foreach (var (slot, projection) in new[] { (0, "query"), (1, "key"), (2, "value") })
                    if (part.StartsWith($"attention.attention.{projection}.", StringComparison.Ordinal))
                    {
                        string key = block + "attn.qkv." + part[$"attention.attention.{projection}.".Length..];
                        if (!qkv.TryGetValue(key, out var parts)) qkv[key] = parts = new Tensor[3];
                        parts[slot] = value;
                        mapped = "";
                    }
                if (mapped is null)
                {
                    string? timm = Rename(part, ("attention.output.dense.", "attn.proj."), ("intermediate.dense.", "mlp.fc1."),
                        ("output.dense.", "mlp.fc2."), ("layernorm_before.", "norm1."), ("layernorm_after.", "norm2."),
                        ("mlp.weights_in.", "mlp.fc1."), ("mlp.weights_out.", "mlp.fc2."), ("layer_scale1.lambda1", "ls1.gamma"),
                        ("layer_scale2.lambda1", "ls2.gamma"), ("norm1.", "norm1."), ("norm2.", "norm2."), ("mlp.fc1.", "mlp.fc1."),
                        ("mlp.fc2.", "mlp.fc2."));
                    mapped = timm is null ? name : block + timm;
                }
            }
            if (mapped != "") result[mapped ?? name] = value;
        }
        foreach (var (key, parts) in qkv)
        {
            if (parts.Any(p => p is null))
                throw new HistoException($"{key}: the checkpoint has only some of query, key and value for this layer");
            result[key] = cat(parts, 0);
        }
        return result;
    }

    /// <summary>
    /// The DINOv2 repository's checkpoint to timm's vit_*_reg4_dinov2 names, as timm's checkpoint_filter_fn does: w12/w3 are
    /// fc1/fc2 (the same packed SwiGLU), register_tokens is reg_token, the mask token is dropped; with registers the model is
    /// no_embed_class, so the class position (never resampled by DINOv2) is folded into the class token.
    /// </summary>
    static Dictionary<string, Tensor> FromDinoV2(Dictionary<string, Tensor> tensors)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, value) in tensors)
        {
            if (name == "mask_token") continue;
            result[name == "register_tokens" ? "reg_token" : name.Replace(".mlp.w12.", ".mlp.fc1.").Replace(".mlp.w3.", ".mlp.fc2.")] =
                value;
        }
        if (tensors.ContainsKey("register_tokens") && result.TryGetValue("pos_embed", out var positions)
            && result.TryGetValue("cls_token", out var cls))
        {
            result["cls_token"] = cls.add(positions.narrow(1, 0, 1), KeptScalars.One);
            result["pos_embed"] = positions.narrow(1, 1, positions.shape[1] - 1).contiguous();
        }
        return result;
    }

    static string? Rename(string part, params (string From, string To)[] rules)
    {
        foreach (var (from, to) in rules)
            if (part.StartsWith(from, StringComparison.Ordinal)) return to + part[from.Length..];
        return null;
    }

    /// <summary>A pos_embed for another grid (a DINOv2 checkpoint at 518 px) resampled to the row's, as timm does on load.</summary>
    static Dictionary<string, Tensor> ResampledToGrid(Dictionary<string, Tensor> tensors, ViTConfig config)
    {
        if (!tensors.TryGetValue("pos_embed", out var positions)) return tensors;
        int prefix = config.NoEmbedClass ? 0 : config.PrefixTokens, grid = config.ImageSize / config.PatchSize;
        long stored = positions.shape[1] - prefix;
        int storedGrid = (int)Math.Round(Math.Sqrt(stored));
        if (stored == (long)grid * grid || (long)storedGrid * storedGrid != stored) return tensors;
        return new Dictionary<string, Tensor>(tensors)
        {
            ["pos_embed"] = VisionTransformer.ResamplePositions(positions, prefix, grid, grid, antialias: true),
        };
    }
}
