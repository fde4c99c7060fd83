using System.Text.Json.Serialization;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.SelfSupervised;
using Histo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.VisionLanguage;

/// <summary>
/// CLIP's symmetric InfoNCE (Radford et al., ICML 2021, Figure 3): image and text embeddings L2-normalised, logits =
/// exp(t) I T^T over the batch, the matched pair positive and every other pair negative, loss = (CE(logits, diagonal) +
/// CE(logits^T, diagonal)) / 2. CLIP clamps exp(t) at 100.
/// </summary>
public static class InfoNce
{
    public static readonly double MaxLogLogitScale = Math.Log(100);

    /// <returns>The loss and the batch accuracy (rows whose highest logit is their own pair).</returns>
    public static (Tensor Loss, double Accuracy) Loss(Tensor imageEmbeddings, Tensor textEmbeddings, Tensor logLogitScale)
    {
        using var scope = NewDisposeScope();
        var i = nn.functional.normalize(imageEmbeddings, p: 2, dim: -1);
        var t = nn.functional.normalize(textEmbeddings, p: 2, dim: -1);
        var logits = i.matmul(t.t()).mul(logLogitScale.exp());
        using var n = logits.shape[0].ToScalar();   // kept alive through the call (KeptScalars)
        var labels = arange(KeptScalars.Zero, n, KeptScalars.One, ScalarType.Int64);
        var loss = nn.functional.cross_entropy(logits, labels).add(nn.functional.cross_entropy(logits.t(), labels), KeptScalars.One)
            .div(KeptScalars.Of(2.0));
        double accuracy = logits.argmax(-1).eq(labels).to_type(ScalarType.Float64).mean().item<double>();
        return (loss.MoveToOuterDisposeScope(), accuracy);
    }
}

/// <summary>Settings of <c>histo clip-train</c>; the defaults train on 2 cores in minutes.</summary>
public sealed record ContrastiveOptions
{
    public string ImageEncoder { get; init; } = CntkResNet18.Config.Name;
    public int ImageSize { get; init; } = 64;
    public string TextEncoder { get; init; } = ContrastiveConfig.Transformer;
    public string Tokenizer { get; init; } = "clip";
    public int EmbedDim { get; init; } = 128;
    public int TextWidth { get; init; } = 128;
    public int TextLayers { get; init; } = 2;
    /// <summary>Captions are short: 32 tokens (CLIP's 77 would be mostly padding); longer ones are truncated.</summary>
    public int Context { get; init; } = 32;
    [JsonIgnore] public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 64;
    /// <summary>CLIP's peak learning rate for small models is 5e-4, with a warm-up then cosine decay, AdamW weight decay 0.2.</summary>
    public double LearningRate { get; init; } = 5e-4;
    public double WeightDecay { get; init; } = 0.2;
    public int WarmupEpochs { get; init; } = 1;
    /// <summary>LiT (Zhai et al., CVPR 2022): the image tower stays as initialised and only the projections and the text tower
    /// learn, so the image features are computed once; without it the image tower is fine-tuned too.</summary>
    public bool LockImage { get; init; }
    public int Seed { get; init; }
    [JsonIgnore] public bool Overwrite { get; init; }
    [JsonIgnore] public int Threads { get; init; } = Environment.ProcessorCount;

    public void Validate()
    {
        Require.AtLeast("--image-size", ImageSize, 16);
        Require.AtLeast("--embed-dim", EmbedDim, 1);
        Require.AtLeast("--text-width", TextWidth, 1);
        Require.AtLeast("--text-layers", TextLayers, 1);
        Require.AtLeast("--context", Context, 3);
        Require.TrainingSchedule(Epochs, BatchSize, LearningRate, WeightDecay, WarmupEpochs);
        if (TextEncoder is not (ContrastiveConfig.Transformer or ContrastiveConfig.BagOfWords))
            throw new UsageException($"--text-encoder '{TextEncoder}': use transformer or bow");
    }
}

public sealed record ContrastiveProgress(int Epoch, int Epochs, int Iteration, int Iterations, double Loss, double Accuracy);

/// <summary>
/// <c>histo clip-train</c>, top to bottom: image-caption pairs, a <see cref="ContrastiveModel"/>, symmetric InfoNCE with a
/// learnable temperature, AdamW with warm-up and cosine decay, a checkpoint per epoch (<see cref="EpochCheckpoint"/>), and
/// the model written to the run folder after every epoch, so the run works as <c>histo zeroshot --model RUN</c>.
/// </summary>
public static class ContrastiveTraining
{
    public const string SettingsFile = "settings.json";

    sealed record State(int Epoch, List<double> EpochLosses, List<double> EpochAccuracies);

    public static IReadOnlyList<double> Run(string pairsCsv, ContrastiveOptions options, string runDir,
        Action<ContrastiveProgress>? progress = null, Action<string>? log = null)
    {
        options.Validate();
        set_num_threads(options.Threads);
        // ============ data: images preprocessed once, captions tokenized once ============
        var (images, captions) = ReadPairs(pairsCsv);
        if (images.Count < options.BatchSize)
            throw new HistoException($"{pairsCsv}: {images.Count} pairs for a batch of {options.BatchSize}; lower --batch-size");
        var tokenizer = ClipTokenizer.Load(options.Tokenizer);
        using var folder = JobFolder.Open(runDir, "histo clip-train");
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        // The epoch count is not compared: a finished run may be extended with more epochs.
        folder.RecordOrCheckSettings(SettingsFile, new { Pairs = images.Count, Options = options }, options.Overwrite,
            compare: EpochCheckpoint.Exists(runDir));
        if (options.Overwrite) File.Delete(Path.Combine(runDir, EpochCheckpoint.StateFile));

        // ============ model, optimiser ============
        manual_seed(options.Seed);
        using var model = new ContrastiveModel(new ContrastiveConfig(options.ImageEncoder, options.ImageSize, options.TextEncoder,
            options.EmbedDim, options.TextWidth, options.TextLayers, options.Context, tokenizer.Encoding.VocabularySize,
                options.Tokenizer));
        using var pixels = Preprocess(images, model);
        using var tokens = tensor(captions.SelectMany(c => tokenizer.TokenizePadded(c, options.Context, truncate: true)).ToArray(),
            [captions.Count, options.Context]);
        Tensor? lockedFeatures = null;
        if (options.LockImage)
        {
            foreach (var p in model.ImageParameters) p.requires_grad = false;
            model.eval();   // batch-norm statistics stay the initial ones too
            using (no_grad()) lockedFeatures = cat(Enumerable.Range(0, (images.Count + 63) / 64)
                .Select(b => model.ImageFeatures(pixels.narrow(0, 64L * b, Math.Min(64, images.Count - 64 * b)))).ToList(), 0);
        }
        else model.train();
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        // Weight decay on weight matrices only (CLIP/open_clip exclude gains, biases, embeddings and the temperature).
        var decayed = model.named_parameters().Where(p => p.parameter.requires_grad && p.parameter.dim() >= 2
            && !p.name.Contains("embedding")).Select(p => p.parameter).ToList();
        using var optimizer = new Models.AdamW([new Models.AdamW.Group(decayed, options.LearningRate, options.WeightDecay),
            new Models.AdamW.Group(trainable.Except(decayed), options.LearningRate, 0)], beta2: 0.98, epsilon: 1e-6);
        int iterations = images.Count / options.BatchSize, total = options.Epochs * iterations;
        var lr = Schedules.CosineOverIterations(options.LearningRate, 0, total, options.WarmupEpochs * iterations);

        // ============ resume ============
        var tensors = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var losses = new List<double>();
        var accuracies = new List<double>();
        int start = 0;
        if (EpochCheckpoint.Load<State>(runDir, tensors, optimizer) is { } state)
        {
            if (state.Epoch + 1 > options.Epochs)
                throw new UsageException($"{runDir} already holds {state.Epoch + 1} epochs; give --epochs {state.Epoch + 1} or more");
            (start, losses, accuracies) = (state.Epoch + 1, state.EpochLosses, state.EpochAccuracies);
        }

        // ============ training loop ============
        for (int epoch = start; epoch < options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, images.Count).ToArray();
            new Random(options.Seed * 7919 + epoch).Shuffle(order);
            double epochLoss = 0, epochAccuracy = 0;
            for (int it = 0; it < iterations; it++)
            {
                using var scope = NewDisposeScope();
                foreach (var g in optimizer.Groups) g.LearningRate = lr[epoch * iterations + it];
                var batch = tensor(order.AsSpan(it * options.BatchSize, options.BatchSize).ToArray().Select(i => (long)i).ToArray());
                var imageEmbeddings = lockedFeatures is null ? model.EncodeImage(pixels.index_select(0, batch))
                    : model.ProjectImageFeatures(lockedFeatures.index_select(0, batch));
                var textEmbeddings = model.EncodeText(tokens.index_select(0, batch));
                var (loss, accuracy) = InfoNce.Loss(imageEmbeddings, textEmbeddings, model.LogitScaleParameter);
                double value = loss.item<float>();
                if (!double.IsFinite(value))
                    throw new HistoException($"InfoNCE loss became {value} at epoch {epoch + 1}, iteration {it + 1}; lower --lr");
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step();
                using (no_grad())
                {
                    model.LogitScaleParameter.clamp_(KeptScalars.Of(0.0), KeptScalars.Of(InfoNce.MaxLogLogitScale));
                }
                epochLoss += value;
                epochAccuracy += accuracy;
                progress?.Invoke(new ContrastiveProgress(epoch + 1, options.Epochs, it + 1, iterations, value, accuracy));
            }
            losses.Add(epochLoss / iterations);
            accuracies.Add(epochAccuracy / iterations);
            EpochCheckpoint.Save(runDir, tensors, optimizer, new State(epoch, losses, accuracies));
            model.SaveRun(runDir);
        }
        lockedFeatures?.Dispose();
        return losses;
    }

    /// <summary>The pairs of an <c>image,caption</c> CSV; image paths relative to the CSV's folder.</summary>
    static (List<string> Images, List<string> Captions) ReadPairs(string csv)
    {
        var table = CsvTable.Read(csv, "pairs file (--pairs)");
        int image = table.Column("image"), caption = table.Column("caption");
        if (image < 0 || caption < 0) throw new HistoException($"{csv}: needs the columns image and caption");
        string dir = Path.GetDirectoryName(Path.GetFullPath(csv))!;
        var images = new List<string>();
        var captions = new List<string>();
        foreach (var (line, row) in table.Rows)
        {
            if (row[caption].Length == 0) throw new HistoException($"{csv}:{line}: empty caption");
            string path = Path.Combine(dir, row[image]);
            // Checked before the run folder is made, so a wrong path leaves nothing behind.
            if (!File.Exists(path))
                throw new HistoException($"{csv}:{line}: image {path} not found; paths are relative to the CSV's folder");
            images.Add(path);
            captions.Add(row[caption]);
        }
        return (images, captions);
    }

    static Tensor Preprocess(IReadOnlyList<string> images, IVisionLanguageModel model)
    {
        using var normaliser = new InputNormaliser(model.Normalization);
        var rows = new List<Tensor>(images.Count);
        try
        {
            foreach (var path in images) rows.Add(ZeroShot.Preprocess(RgbaImage.Load(path), model.ImageSize, normaliser));
            return cat(rows, 0);
        }
        finally
        {
            foreach (var r in rows) r.Dispose();
        }
    }
}
