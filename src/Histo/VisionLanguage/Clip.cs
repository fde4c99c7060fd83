using Histo.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.VisionLanguage;

/// <summary>
/// A CLIP variant (Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021) as
/// OpenAI's <c>model.py</c> builds it: the image tower's width, depth, patch and input size, the text tower's width,
/// depth, heads, context and vocabulary, the shared embedding size; QuickGELU in OpenAI's weights, GELU in open_clip's
/// QuiltNet.
/// </summary>
public sealed record ClipConfig(string Name, int EmbedDim, int VisionWidth, int VisionLayers, int VisionPatch, int ImageSize,
    int TextWidth, int TextLayers, int Context = 77, int Vocabulary = 49408)
{
    /// <summary>Both towers have one attention head per 64 channels (model.py's build_model).</summary>
    public const int HeadWidth = 64;
    public int VisionHeads => VisionWidth / HeadWidth;
    public int TextHeads => TextWidth / HeadWidth;
    public bool QuickGelu { get; init; } = true;

    /// <summary>ViT-B/32 (OpenAI): 512-d embedding, 768-wide 12-layer image tower on 32 px patches, 512-wide 12-layer text.</summary>
    public static ClipConfig VitB32 => new("clip-vit-b-32", 512, 768, 12, 32, 224, 512, 12);
    /// <summary>ViT-B/16 (OpenAI; PLIP and QuiltNet's architecture).</summary>
    public static ClipConfig VitB16 => new("clip-vit-b-16", 512, 768, 12, 16, 224, 512, 12);

    /// <summary>
    /// The configuration a state dict in OpenAI's layout was saved from, read off its shapes as model.py's build_model
    /// does: widths from conv1, ln_final and the projections, depths from the resblocks, patch and grid from conv1 and the
    /// image positions, context and vocabulary from the text embeddings.
    /// </summary>
    public static ClipConfig FromStateDict(IReadOnlyDictionary<string, Tensor> t, string name, bool quickGelu = true)
    {
        string[] needed = ["visual.conv1.weight", "visual.positional_embedding", "text_projection", "positional_embedding",
            "token_embedding.weight", "ln_final.weight"];
        var missing = needed.Where(k => !t.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new HistoException($"{name}: not a CLIP state dict in OpenAI's layout (missing {string.Join(", ", missing)})");
        int Layers(string prefix) => t.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && k.EndsWith(".attn.in_proj_weight"))
            .Select(k => k[prefix.Length..].Split('.')[0]).Distinct().Count();
        var conv = t["visual.conv1.weight"];
        int patch = (int)conv.shape[^1];
        int grid = (int)Math.Round(Math.Sqrt(t["visual.positional_embedding"].shape[0] - 1));
        return new ClipConfig(name, (int)t["text_projection"].shape[1], (int)conv.shape[0], Layers("visual.transformer.resblocks."),
            patch, patch * grid, (int)t["ln_final.weight"].shape[0], Layers("transformer.resblocks."),
            (int)t["positional_embedding"].shape[0], (int)t["token_embedding.weight"].shape[0]) { QuickGelu = quickGelu };
    }
}

/// <summary>
/// CLIP in OpenAI's layout and state-dict names: <c>visual.{conv1, class_embedding, positional_embedding, ln_pre,
/// transformer.resblocks.N.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj},
/// ln_post, proj}</c>; text <c>token_embedding, positional_embedding, transformer.resblocks.N.*, ln_final,
/// text_projection</c>; <c>logit_scale</c>. The image feature is ln_post(class token) x proj; the text feature is
/// ln_final at the end-of-text position (the largest id in the row) x text_projection, under a causal mask.
/// </summary>
public sealed class ClipModel : Module, IVisionLanguageModel
{
    readonly ClipVisionTower visual;
    readonly Embedding token_embedding;
    readonly Parameter positional_embedding, text_projection, logit_scale;
    readonly ClipTransformer transformer;
    readonly LayerNorm ln_final;

    public ClipConfig Config { get; }

    /// <summary>CLIP's initial temperature, logit_scale = log(1 / 0.07).</summary>
    public static readonly double InitialLogitScale = Math.Log(1 / 0.07);

    public ClipModel(ClipConfig config) : base(config.Name)
    {
        Config = config;
        visual = new ClipVisionTower(config);
        token_embedding = Embedding(config.Vocabulary, config.TextWidth);
        positional_embedding = Parameter(empty(config.Context, config.TextWidth));
        transformer = new ClipTransformer(config.TextWidth, config.TextLayers, config.TextHeads, config.QuickGelu);
        ln_final = LayerNorm(config.TextWidth);
        text_projection = Parameter(empty(config.TextWidth, config.EmbedDim));
        logit_scale = Parameter(ones([]));
        RegisterComponents();
        InitialiseText(token_embedding, positional_embedding, text_projection, logit_scale, config.TextWidth);
    }

    /// <summary>model.py's initialize_parameters for the text side and the temperature (positions optional: a bag of words
    /// has none).</summary>
    internal static void InitialiseText(Embedding tokens, Parameter? positions, Parameter projection, Parameter logitScale, int width)
    {
        using var _ = no_grad();
        init.normal_(tokens.weight, std: 0.02);
        if (positions is not null) init.normal_(positions, std: 0.01);
        init.normal_(projection, std: Math.Pow(width, -0.5));
        using var scale = InitialLogitScale.ToScalar();
        logitScale.fill_(scale);
    }

    /// <summary>
    /// A CLIP checkpoint in OpenAI's layout (safetensors or a torch.save state dict; OpenAI's TorchScript archives must be
    /// re-saved as a state dict), its configuration read from the shapes, loaded strictly.
    /// </summary>
    public static ClipModel Load(string path, bool quickGelu = true) => Load(Checkpoint.Read(path), path, quickGelu);

    /// <summary>As <see cref="Load(string, bool)"/> from a checkpoint already read (<paramref name="path"/> names it).</summary>
    public static ClipModel Load(Dictionary<string, Tensor> tensors, string path, bool quickGelu = true)
    {
        if (tensors.Keys.Any(k => k.StartsWith("vision_model.", StringComparison.Ordinal))) tensors = FromHuggingFace(tensors);
        var model = new ClipModel(ClipConfig.FromStateDict(tensors, Path.GetFileName(path), quickGelu));
        // build_model drops these non-tensor entries of OpenAI's archives; a re-saved state dict may still carry them.
        WeightLoading.Load(model, tensors, path, ignore: k => k is "input_resolution" or "context_length" or "vocab_size");
        model.eval();
        return model;
    }

    int IVisionLanguageModel.ImageSize => Config.ImageSize;
    Models.InputNormalization IVisionLanguageModel.Normalization => ZeroShot.ClipNormalization;
    int IVisionLanguageModel.Context => Config.Context;
    int IVisionLanguageModel.Vocabulary => Config.Vocabulary;
    int IVisionLanguageModel.EmbedDim => Config.EmbedDim;
    string? IVisionLanguageModel.Tokenizer => null;
    void IVisionLanguageModel.SetEvaluation() => eval();

    /// <summary>
    /// Hugging Face's CLIPModel names (PLIP, and OpenAI's models on the Hub) to OpenAI's, as transformers'
    /// convert_clip_original_pytorch_to_hf.py relates them: q/k/v projections packed into in_proj, layer_norm1/2 to ln_1/2,
    /// fc1/fc2 to c_fc/c_proj, the projections' Linear weights transposed; the position_ids buffers dropped.
    /// </summary>
    static Dictionary<string, Tensor> FromHuggingFace(Dictionary<string, Tensor> hf)
    {
        var openai = new Dictionary<string, Tensor>();
        string Block(string rest) => rest.Replace("self_attn.out_proj", "attn.out_proj").Replace("layer_norm1", "ln_1")
            .Replace("layer_norm2", "ln_2").Replace("mlp.fc1", "mlp.c_fc").Replace("mlp.fc2", "mlp.c_proj");
        foreach (var (tower, prefix) in new[] { ("vision_model.", "visual.transformer."), ("text_model.", "transformer.") })
        {
            var layers = hf.Keys.Where(k => k.StartsWith(tower + "encoder.layers.", StringComparison.Ordinal))
                .Select(k => int.Parse(k.Split('.')[3], System.Globalization.CultureInfo.InvariantCulture)).Distinct();
            foreach (int n in layers)
            {
                string from = $"{tower}encoder.layers.{n}.", to = $"{prefix}resblocks.{n}.";
                foreach (var kind in new[] { "weight", "bias" })
                    openai[$"{to}attn.in_proj_{kind}"] = cat(new[] { "q_proj", "k_proj", "v_proj" }
                        .Select(q => hf[$"{from}self_attn.{q}.{kind}"]).ToList(), 0);
                string[] packed = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"];
                foreach (var (key, value) in hf.Where(kv => kv.Key.StartsWith(from, StringComparison.Ordinal)
                    && !packed.Any(kv.Key.Contains)))
                    openai[to + Block(key[from.Length..])] = value;
            }
        }
        var direct = new Dictionary<string, string>
        {
            ["vision_model.embeddings.patch_embedding.weight"] = "visual.conv1.weight",
            ["vision_model.embeddings.class_embedding"] = "visual.class_embedding",
            ["vision_model.embeddings.position_embedding.weight"] = "visual.positional_embedding",
            ["vision_model.pre_layrnorm.weight"] = "visual.ln_pre.weight", ["vision_model.pre_layrnorm.bias"] = "visual.ln_pre.bias",
            ["vision_model.post_layernorm.weight"] = "visual.ln_post.weight", ["vision_model.post_layernorm.bias"] = "visual.ln_post.bias",
            ["text_model.embeddings.token_embedding.weight"] = "token_embedding.weight",
            ["text_model.embeddings.position_embedding.weight"] = "positional_embedding",
            ["text_model.final_layer_norm.weight"] = "ln_final.weight", ["text_model.final_layer_norm.bias"] = "ln_final.bias",
            ["logit_scale"] = "logit_scale",
        };
        foreach (var (from, to) in direct)
            if (hf.TryGetValue(from, out var t)) openai[to] = t;
        if (hf.TryGetValue("visual_projection.weight", out var vp)) openai["visual.proj"] = vp.t().contiguous();
        if (hf.TryGetValue("text_projection.weight", out var tp)) openai["text_projection"] = tp.t().contiguous();
        // Anything else (not position_ids) is kept under its own name, so a strict load names it.
        foreach (var (key, value) in hf)
            if (!key.EndsWith("position_ids", StringComparison.Ordinal) && !direct.ContainsKey(key) && !key.Contains(".encoder.layers.")
                && key is not ("visual_projection.weight" or "text_projection.weight"))
                openai[key] = value;
        return openai;
    }

    /// <summary>The image embedding (not normalised), [B, EmbedDim].</summary>
    public Tensor EncodeImage(Tensor images) => visual.forward(images);

    /// <summary>The text embedding (not normalised) of token rows [B, Context] (padded with 0), [B, EmbedDim].</summary>
    public Tensor EncodeText(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        long n = tokens.shape[1];
        var x = token_embedding.forward(tokens).add(positional_embedding[..(int)n], KeptScalars.One);
        x = ln_final.forward(transformer.forward(x, CausalMask(n)));
        // The end-of-text token has the largest id in each row.
        var eot = tokens.argmax(-1).view(-1, 1, 1).expand(-1, 1, x.shape[2]);
        var features = x.gather(1, eot).squeeze(1);
        return features.matmul(text_projection).MoveToOuterDisposeScope();
    }

    /// <summary>-inf above the diagonal: token i attends to tokens 0..i (model.py's build_attention_mask).</summary>
    static Tensor CausalMask(long n)
    {
        using var negativeInfinity = float.NegativeInfinity.ToScalar();
        return full(n, n, negativeInfinity).triu(1);
    }

    /// <summary>exp(logit_scale): CLIP's learnt inverse temperature of cosine logits.</summary>
    public double LogitScale
    {
        get
        {
            using var scale = logit_scale.detach().exp();
            return scale.item<float>();
        }
    }
}

/// <summary>OpenAI CLIP's image tower: conv1 (no bias), class token, positions, ln_pre, transformer, ln_post(class) x proj.</summary>
sealed class ClipVisionTower : Module<Tensor, Tensor>
{
    readonly Conv2d conv1;
    readonly Parameter class_embedding, positional_embedding, proj;
    readonly LayerNorm ln_pre, ln_post;
    readonly ClipTransformer transformer;
    readonly int _patch;

    public ClipVisionTower(ClipConfig c) : base("visual")
    {
        _patch = c.VisionPatch;
        int grid = c.ImageSize / c.VisionPatch;
        using var scale = Math.Pow(c.VisionWidth, -0.5).ToScalar();
        conv1 = Conv2d(3, c.VisionWidth, c.VisionPatch, stride: c.VisionPatch, bias: false);
        class_embedding = Parameter(randn(c.VisionWidth).mul(scale));
        positional_embedding = Parameter(randn(grid * grid + 1, c.VisionWidth).mul(scale));
        ln_pre = LayerNorm(c.VisionWidth);
        transformer = new ClipTransformer(c.VisionWidth, c.VisionLayers, c.VisionHeads, c.QuickGelu);
        ln_post = LayerNorm(c.VisionWidth);
        proj = Parameter(randn(c.VisionWidth, c.EmbedDim).mul(scale));
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = conv1.forward(images).flatten(2).transpose(1, 2);                 // [B, grid^2, W]
        var cls = class_embedding.expand(x.shape[0], 1, -1);
        x = cat([cls, x], 1);
        int gridH = (int)(images.shape[2] / _patch), gridW = (int)(images.shape[3] / _patch);
        var positions = positional_embedding.unsqueeze(0);
        if (positions.shape[1] != gridH * gridW + 1)
            positions = VisionTransformer.ResamplePositions(positions, 1, gridH, gridW, antialias: false);
        x = ln_pre.forward(x.add(positions, KeptScalars.One));
        x = ln_post.forward(transformer.forward(x, null)[.., 0]);
        return x.matmul(proj).MoveToOuterDisposeScope();
    }
}

/// <summary>OpenAI CLIP's transformer: <c>resblocks</c>, a stack of pre-norm residual attention blocks.</summary>
sealed class ClipTransformer : Module
{
    readonly ModuleList<ClipResidualBlock> resblocks;

    public ClipTransformer(int width, int layers, int heads, bool quickGelu) : base("transformer")
    {
        resblocks = new ModuleList<ClipResidualBlock>(Enumerable.Range(0, layers)
            .Select(_ => new ClipResidualBlock(width, heads, quickGelu)).ToArray());
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor? mask)
    {
        foreach (var block in resblocks) x = block.forward(x, mask);
        return x;
    }
}

/// <summary>x + attn(ln_1 x), then x + mlp(ln_2 x); mlp = c_proj(QuickGELU or GELU(c_fc x)), 4x wide.</summary>
sealed class ClipResidualBlock : Module
{
    readonly LayerNorm ln_1, ln_2;
    readonly ClipAttention attn;
    readonly ClipMlp mlp;

    public ClipResidualBlock(int width, int heads, bool quickGelu) : base("ResidualAttentionBlock")
    {
        ln_1 = LayerNorm(width);
        attn = new ClipAttention(width, heads);
        ln_2 = LayerNorm(width);
        mlp = new ClipMlp(width, quickGelu);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        x = x.add(attn.forward(ln_1.forward(x), mask), KeptScalars.One);
        x = x.add(mlp.forward(ln_2.forward(x)), KeptScalars.One);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// PyTorch's nn.MultiheadAttention as CLIP uses it (self-attention, one packed <c>in_proj_weight</c> [3W, W] with rows q, k,
/// v, and <c>out_proj</c>): softmax(Q K^T / sqrt(d) + mask) V per head.
/// </summary>
sealed class ClipAttention : Module
{
    readonly Parameter in_proj_weight, in_proj_bias;
    readonly Linear out_proj;
    readonly int _heads;

    public ClipAttention(int width, int heads) : base("MultiheadAttention")
    {
        _heads = heads;
        in_proj_weight = Parameter(empty(3 * width, width));
        in_proj_bias = Parameter(zeros(3 * width));
        out_proj = Linear(width, width);
        RegisterComponents();
        using (no_grad()) init.xavier_uniform_(in_proj_weight);
    }

    public Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var qkv = functional.linear(x, in_proj_weight, in_proj_bias).reshape(b, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var y = functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask: mask);
        return out_proj.forward(y.transpose(1, 2).reshape(b, n, c)).MoveToOuterDisposeScope();
    }
}

/// <summary>c_proj(act(c_fc x)), hidden 4 W; act = QuickGELU x sigmoid(1.702 x) (OpenAI) or GELU (open_clip).</summary>
sealed class ClipMlp : Module<Tensor, Tensor>
{
    readonly Linear c_fc, c_proj;
    readonly bool _quickGelu;

    public ClipMlp(int width, bool quickGelu) : base("mlp")
    {
        _quickGelu = quickGelu;
        c_fc = Linear(width, 4 * width);
        c_proj = Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = c_fc.forward(x);
        h = _quickGelu ? h.mul(h.mul(QuickGeluSlope).sigmoid()) : functional.gelu(h);
        return c_proj.forward(h).MoveToOuterDisposeScope();
    }

    /// <summary>QuickGELU's 1.702, kept alive (see KeptScalars).</summary>
    static readonly Scalar QuickGeluSlope = 1.702.ToScalar();
}
