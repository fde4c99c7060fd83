using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>How an encoder expects its pixels.</summary>
public abstract record InputNormalization
{
    /// <summary>RGB in [0, 1], then (x - mean) / std per channel: torchvision's and timm's convention.</summary>
    public sealed record MeanStd(float[] Mean, float[] Std) : InputNormalization;

    /// <summary>BGR in [0, 255] minus a per-pixel mean image: the CNTK ResNet-18's preprocessing graph.</summary>
    public sealed record BgrMeanImage : InputNormalization;

    /// <summary>ImageNet's channel statistics (the default for torchvision and timm weights).</summary>
    public static MeanStd ImageNet => new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);
}

/// <summary>
/// The resize and crop a model card prescribes before normalisation, as torchvision applies them to a PIL image:
/// Resize(<see cref="Resize"/>) scales the shorter side with the given filter (antialiased, like PIL), the result is
/// rounded to bytes as PIL stores it, then CenterCrop(<see cref="Crop"/>). Patches reach it at their tiled size.
/// </summary>
public sealed record CardTransform(int Resize, int Crop, InterpolationMode Interpolation = InterpolationMode.Bilinear)
{
    public override string ToString() =>
        $"resize {Resize} {Interpolation.ToString().ToLowerInvariant()}" + (Crop < Resize ? $", center crop {Crop}" : "");
}

/// <summary>A registered encoder: what it is and how to build it.</summary>
/// <param name="Weights">"none" (random initialisation), what built-in weights are, or the weights file it was loaded from.</param>
public sealed record EncoderSpec(string Name, string Description, int InputSize, int FeatureDim, InputNormalization Normalization,
    Func<nn.Module<Tensor, Tensor>> Create, string Weights)
{
    /// <summary>
    /// Where users obtain the weights a row needs (a model's card); null for rows that build without a weights file.
    /// A row with a card is created only from <c>--weights FILE</c>.
    /// </summary>
    public string? ModelCard { get; init; }
    /// <summary>The weights' licence or terms of use, as the model card states them.</summary>
    public string? Terms { get; init; }
    /// <summary>Prefixes of tensors a weights file has that this network does not use (a truncated network's later layers).</summary>
    public IReadOnlyList<string> UnusedWeights { get; init; } = [];
    /// <summary>
    /// How the files users have name their tensors, mapped to this network's names before the strict load (a Hugging Face
    /// layout to timm's, buffers the network recomputes dropped); the identity for files already in the network's names.
    /// </summary>
    public Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> ConvertWeights { get; init; } = t => t;
    /// <summary>
    /// The model card's resize and crop, applied to patches at their tiled size; null: patches are resampled to
    /// <see cref="InputSize"/> when they are read (the built-in rows, which have no card).
    /// </summary>
    public CardTransform? Transform { get; init; }
    /// <summary>
    /// The precision the row runs in unless told otherwise: bf16 for the models TRIDENT runs in half precision (used only on
    /// CPUs with AVX-512-BF16 or AMX, see <see cref="ComputePrecision"/>), fp32 for the rest.
    /// </summary>
    public ScalarType DefaultPrecision { get; init; } = ScalarType.Float32;
    /// <summary>The network's parameter count when known without building it (a ViT's, from its configuration); null: count
    /// the built network's.</summary>
    public long? Parameters { get; init; }

    /// <summary>The side patches of <paramref name="tiledSize"/> px are handed to <see cref="PatchEncoder.Embed"/> at.</summary>
    public int ReadSize(int tiledSize) => Transform is null ? InputSize : tiledSize;

    /// <summary>What is done to a patch before the network, for a features file's attributes.</summary>
    public string Preprocessing => (Transform is null ? $"resize {InputSize}" : Transform.ToString()) + ", " + Normalization switch
    {
        InputNormalization.MeanStd ms => $"mean {string.Join(",", ms.Mean)} std {string.Join(",", ms.Std)}",
        _ => "BGR minus the CNTK mean image",
    };
}

/// <summary>
/// A patch encoder ready for inference: a backbone whose classifier is removed (forward gives [B, D]) and
/// its input normalisation. <see cref="Embed"/> takes RGBA bytes [B, S, S, 4] at the encoder's input size.
/// </summary>
public sealed class PatchEncoder : IDisposable
{
    readonly InputNormaliser _normaliser;

    public EncoderSpec Spec { get; }
    public nn.Module<Tensor, Tensor> Network { get; }
    public int InputSize => Spec.InputSize;
    public int FeatureDim => Spec.FeatureDim;
    public ScalarType ComputeType { get; }

    public PatchEncoder(EncoderSpec spec, nn.Module<Tensor, Tensor> network, ScalarType computeType = ScalarType.Float32)
    {
        Spec = spec;
        Network = network;
        ComputeType = computeType;
        Network.eval();
        if (computeType != ScalarType.Float32) Network.to(computeType);
        // Inference only from here on: batch norms are folded into their convolutions (bench encoders: ResNet-18 +N%).
        if (Network is ResNet resnet) resnet.FuseBatchNorm();
        else if (Network is Distillation.DistilledEncoder { Backbone: ResNet student }) student.FuseBatchNorm();
        _normaliser = new InputNormaliser(spec.Normalization);
    }

    /// <summary>RGBA bytes [B, S, S, 4] to the network's input [B, 3, InputSize, InputSize] (the card's transform applied).</summary>
    public Tensor Preprocess(Tensor rgba)
    {
        using var scope = NewDisposeScope();
        var rgb = rgba[.., .., .., ..3].permute(0, 3, 1, 2).to_type(ScalarType.Float32); // [B, 3, S, S], 0-255
        if (Spec.Transform is { } t) rgb = ApplyCardTransform(rgb, t);
        return _normaliser.FromBytes(rgb).to_type(ComputeType).MoveToOuterDisposeScope();
    }

    /// <summary>torchvision's Resize(shorter side) on a PIL image, then CenterCrop, on RGB [B, 3, H, W] in 0-255.</summary>
    public static Tensor ApplyCardTransform(Tensor rgb, CardTransform t)
    {
        using var scope = NewDisposeScope();
        long h = rgb.shape[2], w = rgb.shape[3];
        // torchvision: the shorter side becomes Resize, the longer keeps the aspect ratio (int() of the product).
        long newH = h <= w ? t.Resize : (long)(t.Resize * h / (double)w), newW = h <= w ? (long)(t.Resize * w / (double)h) : t.Resize;
        // PIL resamples in two passes, horizontal then vertical, storing bytes after each: so does this (identical to PIL for
        // bicubic on the reference images, and within one level for 1% of pixels for bilinear, against 17% in one pass).
        if (newW != w)
            rgb = nn.functional.interpolate(rgb, size: [h, newW], mode: t.Interpolation, align_corners: false, antialias: true)
                .round().clamp(KeptScalars.Zero, KeptScalars.ByteMax);
        if (newH != h)
            rgb = nn.functional.interpolate(rgb, size: [newH, newW], mode: t.Interpolation, align_corners: false, antialias: true)
                .round().clamp(KeptScalars.Zero, KeptScalars.ByteMax);
        if (t.Crop < newH || t.Crop < newW)
        {
            // torchvision's CenterCrop: top = int(round((H - crop) / 2)).
            long top = (long)Math.Round((newH - t.Crop) / 2.0, MidpointRounding.ToEven), left = (long)Math.Round((newW - t.Crop) / 2.0,
                MidpointRounding.ToEven);
            rgb = rgb.narrow(2, top, t.Crop).narrow(3, left, t.Crop);
        }
        return rgb.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Largest number of images per forward pass. On this 2-core CPU a ResNet-18 at 224 px runs about a
    /// third faster in chunks of 16 than in one pass of 64 (measured: 36 vs 27-31 images/s), because the
    /// activations of a small chunk stay in cache; results do not depend on it.
    /// </summary>
    public int MicroBatch { get; init; } = 16;

    /// <summary>Features [B, D] (float32) of a batch of RGBA patches at the input size.</summary>
    public Tensor Embed(Tensor rgba)
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var chunks = new List<Tensor>();
        for (long start = 0; start < rgba.shape[0]; start += MicroBatch)
        {
            var chunk = rgba.narrow(0, start, Math.Min(MicroBatch, rgba.shape[0] - start));
            chunks.Add(Network.forward(Preprocess(chunk)).to_type(ScalarType.Float32));
        }
        return cat(chunks, 0).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Network.Dispose();
        _normaliser.Dispose();
    }
}

/// <summary>
/// An encoder's input convention applied to RGB batches [B, 3, S, S] at any side S: what <see cref="PatchEncoder"/> feeds
/// the network, and what DINO feeds the same network while it trains (so a run embeds as it trained).
/// </summary>
public sealed class InputNormaliser : IDisposable
{
    // Kept alive: a number converted to a Scalar on the fly can be freed by the finalizer while libtorch reads it (README).
    static readonly Scalar ByteRange = 255f.ToScalar();

    readonly Tensor? _meanImage;
    readonly Tensor? _mean, _std;
    readonly Dictionary<long, Tensor> _meanImageBySize = [];

    public InputNormaliser(InputNormalization normalization)
    {
        switch (normalization)
        {
            case InputNormalization.BgrMeanImage: _meanImage = CntkResNet18.LoadMeanImage(); break;
            case InputNormalization.MeanStd ms:
                _mean = tensor(ms.Mean).reshape(1, 3, 1, 1);
                _std = tensor(ms.Std).reshape(1, 3, 1, 1);
                break;
        }
    }

    /// <summary>RGB in [0, 255] to the network's input.</summary>
    public Tensor FromBytes(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        Tensor x = _meanImage is not null
            ? rgb.flip(1) - MeanImage(rgb.shape[^1])      // BGR minus the mean image (tensor - tensor: no Scalar)
            : (rgb / ByteRange - _mean!) / _std!;
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>RGB in [0, 1] (e.g. DINO's augmented crops) to the network's input.</summary>
    public Tensor FromUnit(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        Tensor x = _meanImage is not null ? FromBytes(rgb * ByteRange) : (rgb - _mean!) / _std!;
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The 224 x 224 mean image at side <paramref name="size"/>: area-averaged to another input size, which would not
    /// broadcast against it otherwise (e.g. DINO's 64 px crops); the mean image is smooth, so little is lost.
    /// </summary>
    Tensor MeanImage(long size)
    {
        if (size == _meanImage!.shape[^1]) return _meanImage;
        lock (_meanImageBySize)
        {
            if (!_meanImageBySize.TryGetValue(size, out var resized))
            {
                using var batch = _meanImage.unsqueeze(0);
                using var scaled = nn.functional.interpolate(batch, size: [size, size], mode: InterpolationMode.Area);
                resized = scaled.squeeze(0).DetachFromDisposeScope();
                _meanImageBySize[size] = resized;
            }
            return resized;
        }
    }

    public void Dispose()
    {
        _meanImage?.Dispose();
        _mean?.Dispose();
        _std?.Dispose();
        foreach (var t in _meanImageBySize.Values) t.Dispose();
    }
}
