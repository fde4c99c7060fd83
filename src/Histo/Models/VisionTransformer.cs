using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Models;

/// <summary>A ViT variant (timm's names): embedding width, depth, heads, patch size, pretraining image size.</summary>
public sealed record ViTConfig(string Name, int EmbedDim, int Depth, int Heads, int PatchSize = 16, int ImageSize = 224,
    double MlpRatio = 4.0)
{
    /// <summary>ViT-Tiny/16 (DeiT-Ti, Touvron et al. 2021): 192-d, 12 blocks, 3 heads.</summary>
    public static ViTConfig Tiny => new("vit-tiny", 192, 12, 3);
    /// <summary>ViT-Small/16 (DeiT-S; DINO's ViT-S/16): 384-d, 12 blocks, 6 heads.</summary>
    public static ViTConfig Small => new("vit-small", 384, 12, 6);
}

/// <summary>
/// Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) with timm's layout
/// and state-dict names (patch_embed.proj, cls_token, pos_embed, blocks.i.{norm1, attn.qkv, attn.proj,
/// norm2, mlp.fc1, mlp.fc2}, norm): pre-norm blocks, LayerNorm eps 1e-6, GELU MLP, a CLS token and learned
/// absolute position embeddings. For an input size other than the pretraining size the grid of position
/// embeddings is resized bicubically (timm's resample_abs_pos_embed). Forward returns the final CLS token
/// [B, EmbedDim], the feature DINO evaluates.
/// </summary>
public sealed class VisionTransformer : Module<Tensor, Tensor>
{
    readonly PatchEmbed patch_embed;
    readonly Parameter cls_token, pos_embed;
    readonly Sequential blocks;
    readonly LayerNorm norm;

    public ViTConfig Config { get; }
    public int FeatureDim => Config.EmbedDim;

    public VisionTransformer(ViTConfig config) : base(config.Name)
    {
        Config = config;
        int grid = config.ImageSize / config.PatchSize;
        patch_embed = new PatchEmbed(config.PatchSize, config.EmbedDim);
        cls_token = Parameter(zeros(1, 1, config.EmbedDim));
        pos_embed = Parameter(zeros(1, 1 + grid * grid, config.EmbedDim));
        blocks = Sequential(Enumerable.Range(0, config.Depth)
            .Select(i => (i.ToString(), (Module<Tensor, Tensor>)new TransformerBlock(config.EmbedDim, config.Heads,
                config.MlpRatio))).ToList());
        norm = LayerNorm(config.EmbedDim, eps: 1e-6);
        RegisterComponents();
        using (no_grad())
        {
            TruncatedNormal.Fill(pos_embed, 0.02);
            TruncatedNormal.Fill(cls_token, 1e-6);
            foreach (var (_, m) in named_modules())
                if (m is Linear l) { TruncatedNormal.Fill(l.weight, 0.02); if (l.bias is not null) init.zeros_(l.bias); }
        }
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(images);                         // [B, N, D]
        long b = x.shape[0], n = x.shape[1];
        x = cat([cls_token.expand(b, -1, -1), x], 1);                // [B, 1 + N, D]
        x = x.add(PositionEmbedding((int)Math.Round(Math.Sqrt(n))), KeptScalars.One); // + learned positions, resized to the grid
        x = norm.forward(blocks.forward(x));
        return x[.., 0].MoveToOuterDisposeScope();                   // CLS token: [B, D]
    }

    /// <summary>The position embeddings for a grid x grid patch layout (bicubic resize of the stored grid).</summary>
    Tensor PositionEmbedding(int grid)
    {
        long stored = pos_embed.shape[1] - 1;
        int storedGrid = (int)Math.Round(Math.Sqrt(stored));
        if (storedGrid == grid) return pos_embed;
        var clsPos = pos_embed[.., ..1];
        var gridPos = pos_embed[.., 1..].reshape(1, storedGrid, storedGrid, -1).permute(0, 3, 1, 2); // [1, D, g, g]
        gridPos = functional.interpolate(gridPos, size: [grid, grid], mode: InterpolationMode.Bicubic, align_corners: false);
        return cat([clsPos, gridPos.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], 1);
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

/// <summary>Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)).</summary>
sealed class TransformerBlock : Module<Tensor, Tensor>
{
    readonly LayerNorm norm1, norm2;
    readonly Attention attn;
    readonly Mlp mlp;

    public TransformerBlock(int dim, int heads, double mlpRatio) : base(nameof(TransformerBlock))
    {
        norm1 = LayerNorm(dim, eps: 1e-6);
        attn = new Attention(dim, heads);
        norm2 = LayerNorm(dim, eps: 1e-6);
        mlp = new Mlp(dim, (int)(dim * mlpRatio));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x.add(attn.forward(norm1.forward(x)), KeptScalars.One); // x + Attn(LN(x))
        x = x.add(mlp.forward(norm2.forward(x)), KeptScalars.One);  // x + MLP(LN(x))
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head self-attention, softmax(Q K^T / sqrt(d)) V, with one fused qkv projection (timm's Attention).</summary>
sealed class Attention : Module<Tensor, Tensor>
{
    readonly Linear qkv, proj;
    readonly int _heads;

    public Attention(int dim, int heads) : base(nameof(Attention))
    {
        _heads = heads;
        qkv = Linear(dim, dim * 3);
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
