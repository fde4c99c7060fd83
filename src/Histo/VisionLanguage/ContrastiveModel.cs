using System.Text.Json;
using Histo.IO;
using Histo.Models;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.VisionLanguage;

/// <summary>
/// A small vision-language model trained by <c>histo clip-train</c>: an image encoder of the registry with a linear
/// projection, and a text encoder with its own projection into the same space, both named as CLIP names them.
/// </summary>
/// <param name="TextEncoder"><c>transformer</c> (CLIP's text tower: token and position embeddings, a causal transformer,
/// ln_final at the end-of-text token) or <c>bow</c> (the CLIP paper's bag-of-words baseline: the order-free mean of the
/// token embeddings, ln_final).</param>
public sealed record ContrastiveConfig(string ImageEncoder, int ImageSize, string TextEncoder, int EmbedDim, int TextWidth,
    int TextLayers, int Context, int Vocabulary, string Tokenizer)
{
    public const string Transformer = "transformer", BagOfWords = "bow";
}

public sealed class ContrastiveModel : Module, IVisionLanguageModel
{
    public const string ConfigFile = "clip-run.json", WeightsFile = "model.safetensors";

    readonly Module<Tensor, Tensor> image;
    readonly Linear image_projection;
    readonly Embedding token_embedding;
    readonly Parameter? positional_embedding;
    readonly ClipTransformer? transformer;
    readonly LayerNorm ln_final;
    readonly Parameter text_projection, logit_scale;
    readonly EncoderSpec _spec;

    public ContrastiveConfig Config { get; }
    /// <summary>The image encoder's parameters (frozen when the image tower is locked).</summary>
    public IEnumerable<Parameter> ImageParameters => image.parameters();

    public ContrastiveModel(ContrastiveConfig config) : base("contrastive")
    {
        Config = config;
        if (config.TextEncoder is not (ContrastiveConfig.Transformer or ContrastiveConfig.BagOfWords))
            throw new UsageException($"--text-encoder '{config.TextEncoder}': use transformer or bow");
        (_spec, image) = EncoderRegistry.CreateNetwork(config.ImageEncoder, config.ImageSize);
        image_projection = Linear(_spec.FeatureDim, config.EmbedDim, hasBias: false);
        token_embedding = Embedding(config.Vocabulary, config.TextWidth);
        if (config.TextEncoder == ContrastiveConfig.Transformer)
        {
            positional_embedding = Parameter(empty(config.Context, config.TextWidth));
            transformer = new ClipTransformer(config.TextWidth, config.TextLayers, Math.Max(1, config.TextWidth / ClipConfig.HeadWidth),
                quickGelu: false);
        }
        ln_final = LayerNorm(config.TextWidth);
        text_projection = Parameter(empty(config.TextWidth, config.EmbedDim));
        logit_scale = Parameter(ones([]));
        RegisterComponents();
        ClipModel.InitialiseText(token_embedding, positional_embedding, text_projection, logit_scale, config.TextWidth);
    }

    public int ImageSize => Config.ImageSize;
    public InputNormalization Normalization => _spec.Normalization;
    public int Context => Config.Context;
    public int Vocabulary => Config.Vocabulary;
    public int EmbedDim => Config.EmbedDim;
    public string? Tokenizer => Config.Tokenizer;
    public int ImageFeatureDim => _spec.FeatureDim;
    public void SetEvaluation() => eval();

    /// <summary>The learnt log inverse temperature (a parameter; CLIP clamps its exp at 100).</summary>
    public Parameter LogitScaleParameter => logit_scale;

    public double LogitScale
    {
        get
        {
            using var scale = logit_scale.detach().exp();
            return scale.item<float>();
        }
    }

    public Tensor ImageFeatures(Tensor images) => image.forward(images);

    /// <summary>Projected image embedding of image-encoder features (so a locked tower's features can be computed once).</summary>
    public Tensor ProjectImageFeatures(Tensor features) => image_projection.forward(features);

    public Tensor EncodeImage(Tensor images)
    {
        using var scope = NewDisposeScope();
        return ProjectImageFeatures(ImageFeatures(images)).MoveToOuterDisposeScope();
    }

    public Tensor EncodeText(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var x = token_embedding.forward(tokens);
        Tensor features;
        if (transformer is not null)
        {
            long n = tokens.shape[1];
            x = x.add(positional_embedding![..(int)n], KeptScalars.One);
            using var negativeInfinity = float.NegativeInfinity.ToScalar();
            x = ln_final.forward(transformer.forward(x, full(n, n, negativeInfinity).triu(1)));
            // The end-of-text token has the largest id in each row.
            var eot = tokens.argmax(-1).view(-1, 1, 1).expand(-1, 1, x.shape[2]);
            features = x.gather(1, eot).squeeze(1);
        }
        else
        {
            // Bag of words: the mean of the embeddings of the row's tokens (padding, id 0, left out), order ignored.
            var real = tokens.ne(KeptScalars.Zero).unsqueeze(-1).to_type(x.dtype);
            features = ln_final.forward(x.mul(real).sum([1]).div(real.sum([1]).clamp_min(KeptScalars.One)));
        }
        return features.matmul(text_projection).MoveToOuterDisposeScope();
    }

    /// <summary>Writes the run's model: its configuration and weights (atomically).</summary>
    public void SaveRun(string runDir)
    {
        var tensors = state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        AtomicFile.Write(Path.Combine(runDir, WeightsFile), tmp => Safetensors.SaveStateDict(tmp, tensors));
        AtomicFile.WriteAllText(Path.Combine(runDir, ConfigFile), JsonSerializer.Serialize(Config,
            new JsonSerializerOptions { WriteIndented = true }));
    }

    public static ContrastiveModel LoadRun(string runDir)
    {
        string configPath = Path.Combine(runDir, ConfigFile), weights = Path.Combine(runDir, WeightsFile);
        if (!File.Exists(configPath) || !File.Exists(weights))
            throw new HistoException($"{runDir}: not a finished histo clip-train run (no {ConfigFile} and {WeightsFile}); train it first");
        var config = JsonSerializer.Deserialize<ContrastiveConfig>(File.ReadAllText(configPath))
            ?? throw new HistoException($"{configPath}: empty");
        var model = new ContrastiveModel(config);
        WeightLoading.Load(model, Checkpoint.Read(weights), weights);
        model.eval();
        return model;
    }
}

/// <summary>A vision-language model's image side as a patch encoder (a clip-train run, or a CLIP checkpoint): its image tower
/// and projection, so the features are the image embeddings zero-shot compares with the text's.</summary>
public sealed class ImageTower : Module<Tensor, Tensor>
{
    readonly Module model;

    public ImageTower(Module model) : base("image-tower")
    {
        if (model is not IVisionLanguageModel) throw new ArgumentException("not a vision-language model", nameof(model));
        this.model = model;
        RegisterComponents();
    }

    public override Tensor forward(Tensor images) => ((IVisionLanguageModel)model).EncodeImage(images);
}
