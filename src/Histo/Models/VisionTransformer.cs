using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Models;

/// <summary>The MLP of a transformer block (timm's <c>mlp_layer</c>).</summary>
public enum ViTMlp
{
    /// <summary>fc2(GELU(fc1 x)) (timm's Mlp).</summary>
    Gelu,
    /// <summary>
    /// timm's SwiGLUPacked (GluMlp, SiLU, gate first): fc1 gives the hidden width, split in halves x1, x2;
    /// fc2(SiLU(x1) * x2) maps half of it back (Shazeer, "GLU Variants Improve Transformer", 2020).
    /// </summary>
    SwiGluPacked,
}

/// <summary>The feature a ViT encoder returns from its normed tokens.</summary>
public enum ViTPooling
{
    /// <summary>The class token (timm's global_pool='token').</summary>
    Cls,
    /// <summary>The mean of the patch tokens, prefix tokens (class, registers) excluded.</summary>
    PatchMean,
    /// <summary>The class token concatenated with the patch-token mean (Virchow's embedding), twice the width.</summary>
    ClsAndPatchMean,
}

/// <summary>
/// A ViT variant with timm's configuration surface: width, depth, heads, patch size, pretraining image size, MLP ratio
/// and kind, LayerScale (timm's <c>init_values</c>; null: none), register tokens (<c>reg_tokens</c>),
/// <c>no_embed_class</c>, qkv bias, LayerNorm eps and pooling. Each pathology foundation model is one of these.
/// </summary>
public sealed record ViTConfig(string Name, int EmbedDim, int Depth, int Heads, int PatchSize = 16, int ImageSize = 224,
    double MlpRatio = 4.0)
{
    public ViTMlp Mlp { get; init; } = ViTMlp.Gelu;
    public double? LayerScaleInit { get; init; }
    public int RegisterTokens { get; init; }
    /// <summary>Position embeddings for the patch tokens only, added before the prefix tokens are joined (timm).</summary>
    public bool NoEmbedClass { get; init; }
    public bool QkvBias { get; init; } = true;
    public double LayerNormEps { get; init; } = 1e-6;
    public ViTPooling Pooling { get; init; } = ViTPooling.Cls;
    /// <summary>
    /// Antialias the bicubic resampling of position embeddings when the grid shrinks: timm's resample_abs_pos_embed does
    /// (the foundation models' rows), DINO's interpolate_pos_encoding does not (the DINO rows, whose local crops shrink it).
    /// </summary>
    public bool AntialiasPositions { get; init; }

    /// <summary>timm's hidden width: int(dim * mlp_ratio) (fc1's output; SwiGLU's fc2 takes half of it).</summary>
    public int MlpHidden => (int)(EmbedDim * MlpRatio);
    public int FeatureDim => Pooling == ViTPooling.ClsAndPatchMean ? 2 * EmbedDim : EmbedDim;
    /// <summary>Class token plus registers, before the patch tokens.</summary>
    public int PrefixTokens => 1 + RegisterTokens;

    /// <summary>Parameters of the network this configuration builds (no head), counted from the layout, not by building it
    /// (a ViT-g has 1.1 billion).</summary>
    public long ParameterCount
    {
        get
        {
            long d = EmbedDim, h = MlpHidden, grid = ImageSize / PatchSize;
            long tokens = d * (1 + RegisterTokens) + d * ((NoEmbedClass ? 0 : PrefixTokens) + grid * grid);
            long mlp = d * h + h + (Mlp == ViTMlp.SwiGluPacked ? h / 2 : h) * d + d;
            long block = 4 * d + 3 * d * d + (QkvBias ? 3 * d : 0) + d * d + d + mlp + (LayerScaleInit is null ? 0 : 2 * d);
            return 3L * PatchSize * PatchSize * d + d + tokens + Depth * block + 2 * d;
        }
    }

    /// <summary>ViT-Tiny/16 (DeiT-Ti, Touvron et al. 2021): 192-d, 12 blocks, 3 heads.</summary>
    public static ViTConfig Tiny => new("vit-tiny", 192, 12, 3);
    /// <summary>ViT-Small/16 (DeiT-S; DINO's ViT-S/16): 384-d, 12 blocks, 6 heads.</summary>
    public static ViTConfig Small => new("vit-small", 384, 12, 6);
}

/// <summary>
/// Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) with timm's layout
/// and state-dict names (patch_embed.proj, cls_token, reg_token, pos_embed, blocks.i.{norm1, attn.qkv, attn.proj,
/// ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm): pre-norm blocks, x + ls1(Attn(LN x)), x + ls2(MLP(LN x)), a
/// class token, optional registers (Darcet et al., "Vision Transformers Need Registers", ICLR 2024; token order
/// [class, registers, patches]) and learned absolute position embeddings. For an input size other than the pretraining
/// size the grid of position embeddings is resampled bicubically (antialiased as timm's resample_abs_pos_embed, or not, as
/// DINO's interpolate_pos_encoding: <see cref="ViTConfig.AntialiasPositions"/>).
/// Forward returns the configured pooling of the final normed tokens, [B, FeatureDim].
/// </summary>
public sealed class VisionTransformer : Module<Tensor, Tensor>
{
    readonly PatchEmbed patch_embed;
    readonly Parameter cls_token, pos_embed;
    readonly Parameter? reg_token;
    readonly Sequential blocks;
    readonly LayerNorm norm;

    public ViTConfig Config { get; }
    public int FeatureDim => Config.FeatureDim;

    public VisionTransformer(ViTConfig config) : base(config.Name)
    {
        Config = config;
        int grid = config.ImageSize / config.PatchSize;
        patch_embed = new PatchEmbed(config.PatchSize, config.EmbedDim);
        cls_token = Parameter(zeros(1, 1, config.EmbedDim));
        if (config.RegisterTokens > 0) reg_token = Parameter(zeros(1, config.RegisterTokens, config.EmbedDim));
        pos_embed = Parameter(zeros(1, (config.NoEmbedClass ? 0 : config.PrefixTokens) + grid * grid, config.EmbedDim));
        blocks = Sequential(Enumerable.Range(0, config.Depth)
            .Select(i => (i.ToString(), (Module<Tensor, Tensor>)new TransformerBlock(config))).ToList());
        norm = LayerNorm(config.EmbedDim, eps: config.LayerNormEps);
        RegisterComponents();
        using (no_grad())
        {
            TruncatedNormal.Fill(pos_embed, 0.02);
            TruncatedNormal.Fill(cls_token, 1e-6);
            if (reg_token is not null) TruncatedNormal.Fill(reg_token, 1e-6);
            foreach (var (_, m) in named_modules())
                if (m is Linear l) { TruncatedNormal.Fill(l.weight, 0.02); if (l.bias is not null) init.zeros_(l.bias); }
        }
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(images);                         // [B, N, D]
        long b = x.shape[0];
        int gridH = (int)(images.shape[2] / Config.PatchSize), gridW = (int)(images.shape[3] / Config.PatchSize);
        var positions = PositionEmbedding(gridH, gridW);
        var prefix = reg_token is null ? cls_token.expand(b, -1, -1)
            : cat([cls_token.expand(b, -1, -1), reg_token.expand(b, -1, -1)], 1);
        // timm's _pos_embed: with no_embed_class the positions are the patches' alone, added before the prefix is joined.
        x = Config.NoEmbedClass ? cat([prefix, x.add(positions, KeptScalars.One)], 1)
            : cat([prefix, x], 1).add(positions, KeptScalars.One);
        x = norm.forward(blocks.forward(x));                         // [B, prefix + N, D]
        var cls = x[.., 0];
        var pooled = Config.Pooling switch
        {
            ViTPooling.Cls => cls,
            ViTPooling.PatchMean => x[.., Config.PrefixTokens..].mean([1]),
            _ => cat([cls, x[.., Config.PrefixTokens..].mean([1])], 1),
        };
        return pooled.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The position embeddings for a gridH x gridW patch layout: the stored square grid, resampled bicubically with
    /// antialiasing when the config says so (timm's resample_abs_pos_embed); prefix positions, when stored, unchanged.
    /// </summary>
    Tensor PositionEmbedding(int gridH, int gridW)
    {
        int prefix = Config.NoEmbedClass ? 0 : Config.PrefixTokens;
        long stored = pos_embed.shape[1] - prefix;
        int storedGrid = (int)Math.Round(Math.Sqrt(stored));
        if (storedGrid == gridH && storedGrid == gridW) return pos_embed;
        return ResamplePositions(pos_embed, prefix, gridH, gridW, Config.AntialiasPositions);
    }

    /// <summary>
    /// Position embeddings [1, prefix + g * g, D] of a square grid resampled bicubically to gridH x gridW (prefix positions
    /// kept): timm's resample_abs_pos_embed with antialiasing, DINO's interpolation without.
    /// </summary>
    internal static Tensor ResamplePositions(Tensor positions, int prefix, int gridH, int gridW, bool antialias)
    {
        using var scope = NewDisposeScope();
        int storedGrid = (int)Math.Round(Math.Sqrt(positions.shape[1] - prefix));
        var gridPos = positions[.., prefix..].reshape(1, storedGrid, storedGrid, -1).permute(0, 3, 1, 2); // [1, D, g, g]
        gridPos = functional.interpolate(gridPos, size: [gridH, gridW], mode: InterpolationMode.Bicubic, align_corners: false,
            antialias: antialias);
        var resampled = gridPos.permute(0, 2, 3, 1).reshape(1, gridH * gridW, -1);
        return (prefix == 0 ? resampled : cat([positions[.., ..prefix], resampled], 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>Image to patch tokens: a stride-p p x p convolution (timm's PatchEmbed, module "proj").</summary>
sealed class PatchEmbed : Module<Tensor, Tensor>
{
    readonly Conv2d proj;

    public PatchEmbed(int patchSize, int embedDim) : base(nameof(PatchEmbed))
    {
        proj = Conv2d(3, embedDim, patchSize, stride: patchSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => proj.forward(x).flatten(2).transpose(1, 2); // [B, D, h, w] -> [B, h*w, D]
}

/// <summary>Pre-norm transformer block: x + ls1(Attn(LN(x))), then x + ls2(MLP(LN(x))); ls1, ls2 only with LayerScale.</summary>
sealed class TransformerBlock : Module<Tensor, Tensor>
{
    readonly LayerNorm norm1, norm2;
    readonly Attention attn;
    readonly Module<Tensor, Tensor> mlp;
    readonly LayerScale? ls1, ls2;

    public TransformerBlock(ViTConfig config) : base(nameof(TransformerBlock))
    {
        int dim = config.EmbedDim;
        norm1 = LayerNorm(dim, eps: config.LayerNormEps);
        attn = new Attention(dim, config.Heads, config.QkvBias);
        norm2 = LayerNorm(dim, eps: config.LayerNormEps);
        mlp = config.Mlp == ViTMlp.SwiGluPacked ? new SwiGluPackedMlp(dim, config.MlpHidden) : new Mlp(dim, config.MlpHidden);
        if (config.LayerScaleInit is { } gamma)
        {
            ls1 = new LayerScale(dim, gamma);
            ls2 = new LayerScale(dim, gamma);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = attn.forward(norm1.forward(x));
        x = x.add(ls1 is null ? a : ls1.forward(a), KeptScalars.One);  // x + ls1(Attn(LN(x)))
        var m = mlp.forward(norm2.forward(x));
        x = x.add(ls2 is null ? m : ls2.forward(m), KeptScalars.One);  // x + ls2(MLP(LN(x)))
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>LayerScale (Touvron et al., "Going deeper with Image Transformers", ICCV 2021): x * gamma, gamma per channel.</summary>
sealed class LayerScale : Module<Tensor, Tensor>
{
    readonly Parameter gamma;

    public LayerScale(int dim, double init) : base(nameof(LayerScale))
    {
        using TorchSharp.Scalar value = init.ToScalar();
        gamma = Parameter(full(dim, value));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * gamma;
}

/// <summary>Multi-head self-attention, softmax(Q K^T / sqrt(d)) V, with one fused qkv projection (timm's Attention).</summary>
sealed class Attention : Module<Tensor, Tensor>
{
    readonly Linear qkv, proj;
    readonly int _heads;

    public Attention(int dim, int heads, bool qkvBias = true) : base(nameof(Attention))
    {
        _heads = heads;
        qkv = Linear(dim, dim * 3, hasBias: qkvBias);
        proj = Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var parts = qkv.forward(x).reshape(b, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4); // [3, B, heads, N, d]
        var y = functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]);           // [B, heads, N, d]
        return proj.forward(y.transpose(1, 2).reshape(b, n, c)).MoveToOuterDisposeScope();
    }
}

/// <summary>Two-layer GELU MLP (fc1, fc2).</summary>
sealed class Mlp : Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;

    public Mlp(int dim, int hidden) : base(nameof(Mlp))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(functional.gelu(fc1.forward(x)));
}

/// <summary>timm's SwiGLUPacked: fc1 to the hidden width, halves x1, x2, then fc2(SiLU(x1) * x2) from half the width.</summary>
sealed class SwiGluPackedMlp : Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;

    public SwiGluPackedMlp(int dim, int hidden) : base(nameof(SwiGluPackedMlp))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden / 2, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var halves = fc1.forward(x).chunk(2, -1);
        return fc2.forward(functional.silu(halves[0]) * halves[1]).MoveToOuterDisposeScope();
    }
}
