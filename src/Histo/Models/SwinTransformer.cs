using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Models;

/// <summary>
/// A Swin Transformer with CTransPath's convolutional stem, in timm 0.5.4's layout (the version CTransPath and TRIDENT pin):
/// embedding width, stage depths and heads, window size and MLP ratio. The feature is the mean of the final normed tokens,
/// <see cref="FeatureDim"/> = width x 2^(stages - 1).
/// </summary>
public sealed record SwinConfig(string Name, int EmbedDim, int[] Depths, int[] Heads, int WindowSize = 7, int ImageSize = 224,
    double MlpRatio = 4.0)
{
    /// <summary>The stem's four-fold downsampling (two stride-2 convolutions), timm's patch_size 4.</summary>
    public const int PatchSize = 4;

    public int FeatureDim => EmbedDim << (Depths.Length - 1);

    /// <summary>CTransPath (Wang et al., Medical Image Analysis 2022): Swin-T (96 wide, depths 2-2-6-2, heads 3-6-12-24, window
    /// 7) behind a convolutional stem; 768-d.</summary>
    public static SwinConfig CTransPath => new("ctranspath", 96, [2, 2, 6, 2], [3, 6, 12, 24]);
}

/// <summary>
/// Swin Transformer (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021) with
/// timm 0.5.4's state-dict names (patch_embed.proj.{0..6}, patch_embed.norm, layers.i.blocks.j.{norm1, attn.qkv, attn.proj,
/// attn.relative_position_bias_table, attn.relative_position_index, norm2, mlp.fc1, mlp.fc2}, layers.i.downsample.{norm,
/// reduction}, norm). Blocks alternate window attention and shifted-window attention (shift = window / 2); each stage but the
/// last ends in patch merging (2 x 2 neighbours concatenated, LN, linear 4C to 2C). Tokens stay [B, H, W, C] between blocks.
/// The shift and its attention mask follow the input's grid, as timm builds them for its img_size: a stage whose grid is no
/// larger than the window is one unshifted window.
/// </summary>
public sealed class SwinTransformer : Module<Tensor, Tensor>
{
    readonly ConvStem patch_embed;
    readonly ModuleList<SwinStage> layers;
    readonly LayerNorm norm;

    public SwinConfig Config { get; }
    public int FeatureDim => Config.FeatureDim;

    /// <summary>timm's LayerNorm and BatchNorm eps (PyTorch's defaults).</summary>
    internal const double NormEps = 1e-5;

    public SwinTransformer(SwinConfig config) : base(config.Name)
    {
        Config = config;
        patch_embed = new ConvStem(config.EmbedDim);
        layers = new ModuleList<SwinStage>();
        for (int i = 0; i < config.Depths.Length; i++)
            layers.Add(new SwinStage(config.EmbedDim << i, config.Depths[i], config.Heads[i], config.WindowSize, config.MlpRatio,
                downsample: i < config.Depths.Length - 1));
        norm = LayerNorm(config.FeatureDim, eps: NormEps);
        RegisterComponents();
        using (no_grad())
            foreach (var (_, m) in named_modules())
                if (m is Linear l) { TruncatedNormal.Fill(l.weight, 0.02); if (l.bias is not null) init.zeros_(l.bias); }
    }

    /// <summary>
    /// A timm 0.5.4 checkpoint's tensors without the shifted blocks' attn_mask buffers, which belong to the image size the model
    /// was built for; this network makes them for each input's grid (TRIDENT drops them the same way).
    /// </summary>
    public static Dictionary<string, Tensor> WithoutAttentionMasks(Dictionary<string, Tensor> tensors) =>
        tensors.Where(kv => !kv.Key.EndsWith(".attn_mask", StringComparison.Ordinal)).ToDictionary();

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        int side = Config.WindowSize * SwinConfig.PatchSize << (Config.Depths.Length - 1);
        if (images.shape[2] % side != 0 || images.shape[3] % side != 0)
            throw new HistoException($"{Config.Name}: input {images.shape[2]} x {images.shape[3]} px does not tile into its "
                + $"{Config.WindowSize}-token windows at every stage; use a multiple of {side} px (timm 0.5.4's Swin does not pad)");
        var x = patch_embed.forward(images);                          // [B, H/4, W/4, C]
        foreach (var stage in layers) x = stage.forward(x);
        x = norm.forward(x.flatten(1, 2));                            // [B, tokens, FeatureDim]
        return x.mean([1]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CTransPath's convolutional stem in place of Swin's 4 x 4 patch projection: conv3x3/2 (3 to C/8), BN, ReLU, conv3x3/2 (C/8
/// to C/4), BN, ReLU, conv1x1 (C/4 to C, with bias), then LayerNorm over channels. Output [B, H/4, W/4, C].
/// </summary>
sealed class ConvStem : Module<Tensor, Tensor>
{
    readonly Sequential proj;
    readonly LayerNorm norm;

    public ConvStem(int dim) : base(nameof(ConvStem))
    {
        int c1 = dim / 8, c2 = dim / 4;
        proj = Sequential(
            ("0", Conv2d(3, c1, 3, stride: 2, padding: 1, bias: false)), ("1", BatchNorm2d(c1, eps: SwinTransformer.NormEps)),
            ("2", ReLU()),
            ("3", Conv2d(c1, c2, 3, stride: 2, padding: 1, bias: false)), ("4", BatchNorm2d(c2, eps: SwinTransformer.NormEps)),
            ("5", ReLU()),
            ("6", Conv2d(c2, dim, 1)));
        norm = LayerNorm(dim, eps: SwinTransformer.NormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return norm.forward(proj.forward(x).permute(0, 2, 3, 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>One resolution of Swin: blocks alternating plain and shifted windows, then patch merging (all stages but the last).</summary>
sealed class SwinStage : Module<Tensor, Tensor>
{
    readonly ModuleList<SwinBlock> blocks;
    readonly PatchMerging? downsample;

    public SwinStage(int dim, int depth, int heads, int window, double mlpRatio, bool downsample) : base(nameof(SwinStage))
    {
        blocks = new ModuleList<SwinBlock>();
        for (int j = 0; j < depth; j++) blocks.Add(new SwinBlock(dim, heads, window, shifted: j % 2 == 1, mlpRatio));
        if (downsample) this.downsample = new PatchMerging(dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in blocks) x = block.forward(x);
        if (downsample is not null) x = downsample.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Swin block on [B, H, W, C]: x + W-MSA(LN x) (shifted by window / 2 on odd blocks: roll by -s before, +s after, with the
/// mask that keeps attention inside each original region), then x + MLP(LN x).
/// </summary>
sealed class SwinBlock : Module<Tensor, Tensor>
{
    readonly LayerNorm norm1, norm2;
    readonly WindowAttention attn;
    readonly Mlp mlp;
    readonly int _window;
    readonly bool _shifted;

    public SwinBlock(int dim, int heads, int window, bool shifted, double mlpRatio) : base(nameof(SwinBlock))
    {
        _window = window;
        _shifted = shifted;
        norm1 = LayerNorm(dim, eps: SwinTransformer.NormEps);
        attn = new WindowAttention(dim, heads, window);
        norm2 = LayerNorm(dim, eps: SwinTransformer.NormEps);
        mlp = new Mlp(dim, (int)(dim * mlpRatio));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        // timm: a grid no larger than the window is a single window, never shifted.
        int shift = _shifted && Math.Min(h, w) > _window ? _window / 2 : 0;
        var y = norm1.forward(x);
        if (shift > 0) y = roll(y, [-shift, -shift], [1, 2]);
        var windows = Partition(y, _window);                         // [B * nW, window^2, C]
        using var mask = shift > 0 ? ShiftMask(h, w, _window, shift, x.dtype, x.device) : null;
        y = Merge(attn.forward(windows, mask), _window, b, h, w);
        if (shift > 0) y = roll(y, [shift, shift], [1, 2]);
        x = x.add(y, KeptScalars.One);
        x = x.add(mlp.forward(norm2.forward(x)), KeptScalars.One);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>[B, H, W, C] to windows [B * (H/w) * (W/w), w * w, C], row-major within and across windows, batch outermost.</summary>
    static Tensor Partition(Tensor x, int window)
    {
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        return x.view(b, h / window, window, w / window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c);
    }

    static Tensor Merge(Tensor windows, int window, long b, long h, long w) =>
        windows.view(b, h / window, w / window, window, window, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1);

    /// <summary>
    /// The shifted windows' mask [nW, w^2, w^2]: after the roll, a window can hold tokens from up to three regions per axis
    /// ([0, H - w), [H - w, H - s), [H - s, H)); pairs from different regions get -100 (timm's value), others 0. Made once
    /// per grid, in C# arrays: no tensor arithmetic with numbers here (KeptScalars).
    /// </summary>
    static Tensor ShiftMask(long h, long w, int window, int shift, ScalarType dtype, Device device)
    {
        var values = ShiftMasks.GetOrAdd((h, w, window, shift), key =>
        {
            var (h, w, window, shift) = key;
            int Region(long i, long n) => (i >= n - window ? 1 : 0) + (i >= n - shift ? 1 : 0);
            long across = w / window, windows = h / window * across, n = window * window;
            var mask = new float[windows * n * n];
            var label = new int[n];
            for (long k = 0; k < windows; k++)
            {
                long top = k / across * window, left = k % across * window;
                for (int t = 0; t < n; t++) label[t] = Region(top + t / window, h) * 3 + Region(left + t % window, w);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        if (label[i] != label[j]) mask[(k * n + i) * n + j] = -100f;
            }
            return mask;
        });
        long count = window * window;
        using var cpu = tensor(values, [values.Length / (count * count), count, count]);
        return cpu.to(dtype, device);
    }

    static readonly System.Collections.Concurrent.ConcurrentDictionary<(long, long, int, int), float[]> ShiftMasks = new();
}

/// <summary>
/// Window multi-head self-attention with a learned relative position bias (Swin, eq. 4): softmax(Q K^T / sqrt(d) + B + M) V,
/// B[h, i, j] = table[index[i, j], h], index = (dy + w - 1)(2w - 1) + (dx + w - 1) for the offset of token i from token j.
/// </summary>
sealed class WindowAttention : Module
{
    readonly Linear qkv, proj;
    readonly Parameter relative_position_bias_table;
    readonly int _heads, _window;
    readonly Scalar _scale;  // kept for the module's life (KeptScalars)

    public WindowAttention(int dim, int heads, int window) : base(nameof(WindowAttention))
    {
        _heads = heads;
        _window = window;
        _scale = Math.Pow(dim / heads, -0.5).ToScalar();
        qkv = Linear(dim, dim * 3);
        proj = Linear(dim, dim);
        relative_position_bias_table = Parameter(zeros((2 * window - 1) * (2 * window - 1), heads));
        RegisterComponents();
        register_buffer("relative_position_index", RelativePositionIndex(window));
        using (no_grad()) TruncatedNormal.Fill(relative_position_bias_table, 0.02);
    }

    static Tensor RelativePositionIndex(int window)
    {
        int n = window * window;
        var index = new long[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                int dy = i / window - j / window + window - 1, dx = i % window - j % window + window - 1;
                index[i * n + j] = dy * (2 * window - 1) + dx;
            }
        return tensor(index, [n, n]);
    }

    /// <param name="windows">[B * nW, N, C] tokens of each window.</param>
    /// <param name="mask">[nW, N, N] additive mask of shifted windows, or null.</param>
    public Tensor forward(Tensor windows, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long bw = windows.shape[0], n = windows.shape[1], c = windows.shape[2];
        var parts = qkv.forward(windows).reshape(bw, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4); // [3, B*nW, heads, N, d]
        var attn = (parts[0] * _scale).matmul(parts[1].transpose(-2, -1));                               // [B*nW, heads, N, N]
        var index = get_buffer("relative_position_index")!.view(-1);
        var bias = relative_position_bias_table.index_select(0, index).view(n, n, _heads).permute(2, 0, 1);
        attn = attn.add(bias.unsqueeze(0), KeptScalars.One);
        if (mask is not null)
        {
            long nw = mask.shape[0];
            attn = attn.view(bw / nw, nw, _heads, n, n).add(mask.unsqueeze(1).unsqueeze(0), KeptScalars.One).view(bw, _heads, n, n);
        }
        var y = attn.softmax(-1).matmul(parts[2]).transpose(1, 2).reshape(bw, n, c);
        return proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>Swin's patch merging on [B, H, W, C]: the 2 x 2 neighbours (timm's order x00, x10, x01, x11) concatenated to 4C,
/// LayerNorm, then a linear map to 2C without bias; output [B, H/2, W/2, 2C].</summary>
sealed class PatchMerging : Module<Tensor, Tensor>
{
    readonly LayerNorm norm;
    readonly Linear reduction;

    public PatchMerging(int dim) : base(nameof(PatchMerging))
    {
        norm = LayerNorm(4 * dim, eps: SwinTransformer.NormEps);
        reduction = Linear(4 * dim, 2 * dim, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long h = x.shape[1], w = x.shape[2];
        Tensor At(int dy, int dx) => x.slice(1, dy, h, 2).slice(2, dx, w, 2);
        var merged = cat([At(0, 0), At(1, 0), At(0, 1), At(1, 1)], -1);
        return reduction.forward(norm.forward(merged)).MoveToOuterDisposeScope();
    }
}
