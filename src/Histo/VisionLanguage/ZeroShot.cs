using System.Globalization;
using System.Text;
using System.Text.Json;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.Slides;
using Histo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.VisionLanguage;

/// <summary>
/// Prompts for zero-shot classification in the JSON layout CONCH and MI-Zero use: <c>classnames</c>, per class a list of
/// names, and <c>templates</c>, strings with <c>CLASSNAME</c> (also as the first entry of a numbered set, MI-Zero's
/// <c>{"0": {...}}</c>).
/// </summary>
public sealed record PromptSet(IReadOnlyList<string> Classes, IReadOnlyList<IReadOnlyList<string>> Names, IReadOnlyList<string> Templates)
{
    public const string Placeholder = "CLASSNAME";

    public static PromptSet Load(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: no such prompt file");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            if (!root.TryGetProperty("classnames", out _) && root.ValueKind == JsonValueKind.Object
                && root.EnumerateObject().FirstOrDefault().Value is { ValueKind: JsonValueKind.Object } first)
                root = first;
            var classes = new List<string>();
            var names = new List<IReadOnlyList<string>>();
            foreach (var c in root.GetProperty("classnames").EnumerateObject())
            {
                classes.Add(c.Name);
                names.Add(c.Value.ValueKind == JsonValueKind.Array ? c.Value.EnumerateArray().Select(v => v.GetString()!).ToList()
                    : [c.Value.GetString()!]);
            }
            var templates = root.GetProperty("templates").EnumerateArray().Select(v => v.GetString()!).ToList();
            if (classes.Count < 2 || templates.Count == 0 || names.Any(n => n.Count == 0))
                throw new HistoException($"{path}: a prompt file needs at least two classes, each with a name, and a template");
            if (templates.Any(t => !t.Contains(Placeholder)))
                throw new HistoException($"{path}: every template must contain {Placeholder}");
            return new PromptSet(classes, names, templates);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new HistoException($"{path}: not a prompt file ({{\"classnames\": {{class: [names]}}, \"templates\": [...]}}): "
                + e.Message);
        }
    }
}

/// <summary>
/// Zero-shot classification with a vision-language model (CLIP, Radford et al. 2021; the prompt ensembling of CONCH and
/// MI-Zero, Lu et al. 2023): a class's embedding is the mean over templates x names of the normalised text embeddings,
/// normalised again; an image's logits are exp(logit_scale) x its cosine with each class; probabilities by softmax.
/// </summary>
public static class ZeroShot
{
    /// <summary>CLIP's image normalisation (clip.py's _transform), after a bicubic resize of the shorter side and a centre crop.</summary>
    public static readonly InputNormalization.MeanStd ClipNormalization =
        new([0.48145466f, 0.4578275f, 0.40821073f], [0.26862954f, 0.26130258f, 0.27577711f]);

    /// <summary>The normalised class embeddings [classes, EmbedDim].</summary>
    public static Tensor ClassEmbeddings(IVisionLanguageModel model, ClipTokenizer tokenizer, PromptSet prompts)
    {
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>();
        using (no_grad())
            foreach (var names in prompts.Names)
            {
                var texts = prompts.Templates.SelectMany(t => names.Select(n => t.Replace(PromptSet.Placeholder, n))).ToList();
                var ids = texts.SelectMany(t => tokenizer.TokenizePadded(t, model.Context)).ToArray();
                var embeddings = Normalise(model.EncodeText(tensor(ids, [texts.Count, model.Context])));
                rows.Add(Normalise(embeddings.mean([0], keepdim: true)));
            }
        return cat(rows, 0).MoveToOuterDisposeScope();
    }

    /// <summary>An image as CLIP reads it: the shorter side resized (bicubic), centre-cropped to the model's size, normalised.</summary>
    public static Tensor Preprocess(RgbaImage image, int size, InputNormaliser normaliser)
    {
        using var scope = NewDisposeScope();
        var rgb = tensor(image.Pixels, [1, image.Height, image.Width, 4])[.., .., .., ..3].permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        rgb = PatchEncoder.ApplyCardTransform(rgb, new CardTransform(size, size, TorchSharp.torch.InterpolationMode.Bicubic));
        return normaliser.FromBytes(rgb).MoveToOuterDisposeScope();
    }

    /// <summary>Class probabilities [B, classes] of preprocessed images.</summary>
    public static Tensor Probabilities(IVisionLanguageModel model, Tensor images, Tensor classEmbeddings, Scalar logitScale)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = Normalise(model.EncodeImage(images)).matmul(classEmbeddings.t()).mul(logitScale);
        return logits.softmax(-1).MoveToOuterDisposeScope();
    }

    static Tensor Normalise(Tensor x) => nn.functional.normalize(x, p: 2, dim: -1);

    /// <summary>
    /// <c>histo zeroshot</c> on image files: <c>DIR/predictions.csv</c> (image, predicted class, one probability per class),
    /// and, with labels (<c>image,label</c> CSV, label a class of the prompt file), accuracy and balanced accuracy.
    /// </summary>
    /// <param name="weights">A CLIP checkpoint file or a <c>histo clip-train</c> run folder.</param>
    /// <param name="tokenizerName">null: the run's own tokenizer, or CLIP's.</param>
    public static (int Images, ClassificationMetrics? Metrics, string Path) ClassifyImages(string weights, string promptsPath,
        string? tokenizerName, IReadOnlyList<string> images, string? labelsPath, string outputDir, bool gelu = false)
    {
        var prompts = PromptSet.Load(promptsPath);
        var labels = labelsPath is null ? null : ReadLabels(labelsPath, prompts, "image");
        var (model, tokenizer) = LoadChecked(weights, tokenizerName, gelu);
        using var _ = model;
        using var classes = ClassEmbeddings(model, tokenizer, prompts);
        using var normaliser = new InputNormaliser(model.Normalization);
        using var logitScale = model.LogitScale.ToScalar();
        var csv = new StringBuilder("image,predicted," + string.Join(',', prompts.Classes.Select(c => "p_" + c)) + "\n");
        var truth = new List<int>();
        var predicted = new List<int>();
        foreach (var path in images)
        {
            RgbaImage image;
            try { image = RgbaImage.Load(path); }
            catch (Exception e) when (e is not HistoException) { throw new HistoException($"{path}: not a readable image ({e.Message})"); }
            using var input = Preprocess(image, model.ImageSize, normaliser);
            using var p = Probabilities(model, input, classes, logitScale);
            var probabilities = p[0].data<float>().ToArray();
            int best = Array.IndexOf(probabilities, probabilities.Max());
            string name = Path.GetFileName(path);
            csv.Append(name).Append(',').Append(prompts.Classes[best]);
            foreach (var v in probabilities) csv.Append(',').Append(v.ToString("R", CultureInfo.InvariantCulture));
            csv.Append('\n');
            if (labels is not null && labels.TryGetValue(name, out int label)) { truth.Add(label); predicted.Add(best); }
        }
        JobFolder.CreateDirectory(outputDir);
        string csvPath = Path.Combine(outputDir, "predictions.csv");
        AtomicFile.WriteAllText(csvPath, csv.ToString());
        var metrics = labels is null ? null : ClassificationMetrics.Compute(truth, predicted, prompts.Classes.Count);
        return (images.Count, metrics, csvPath);
    }

    /// <summary>Labels by the CSV's key column (image, or CLAM's slide_id), each a class of the prompt file.</summary>
    static Dictionary<string, int> ReadLabels(string path, PromptSet prompts, string key)
    {
        var table = CsvTable.Read(path, "labels file");
        int k = table.Column(key), l = table.Column("label");
        if (k < 0 || l < 0) throw new HistoException($"{path}: needs the columns {key} and label");
        var labels = new Dictionary<string, int>();
        foreach (var (line, row) in table.Rows)
        {
            int c = prompts.Classes.ToList().IndexOf(row[l]);
            if (c < 0)
                throw new HistoException($"{path}:{line}: label '{row[l]}' is not a class of the prompt file "
                    + $"({string.Join(", ", prompts.Classes)})");
            // Images are matched by file name (a pairs CSV lists them by relative path).
            string name = key == "image" ? Path.GetFileName(row[k]) : row[k];
            if (!labels.TryAdd(name, c)) throw new HistoException($"{path}:{line}: {key} '{row[k]}' is listed twice");
        }
        return labels;
    }

    /// <summary>MI-Zero's default K values for top-K pooling.</summary>
    public static readonly int[] DefaultTopK = [1, 5, 10, 50, 100];

    /// <summary>One slide's pooled result: the pooling (mean, topK), the predicted class and the class probabilities.</summary>
    public sealed record SlidePrediction(string SlideId, string Pooling, int Predicted, float[] Probabilities);

    /// <summary>Balanced accuracy and (macro one-vs-rest) AUC of one pooling over the labelled slides.</summary>
    public sealed record PoolingMetrics(string Pooling, int Slides, ClassificationMetrics Metrics, double Auc);

    /// <summary>
    /// Slide-level zero-shot by MI-Zero pooling (Lu et al., CVPR 2023) of patch features made by the model's own image tower
    /// (e.g. TRIDENT's conch_v1 features, or CLIP image embeddings): patch logits = exp(logit_scale) x cosine with each class;
    /// a slide's logit for a class is the mean of its top-K patch logits (K clamped to the patch count), or the mean over all
    /// patches (the baseline); probabilities by softmax. Writes <c>slide-predictions.csv</c> (a row per slide and pooling) and,
    /// with CLAM-style labels (<c>slide_id,label</c>), <c>slide-metrics.csv</c>.
    /// </summary>
    public static (IReadOnlyList<SlidePrediction> Predictions, IReadOnlyList<PoolingMetrics> Metrics) ClassifySlides(string weights,
        string promptsPath, string? tokenizerName, string featuresDir, string? labelsPath, IReadOnlyList<int> topK, string outputDir,
        bool gelu = false, string? slidesDir = null)
    {
        if (topK.Count == 0 || topK.Any(k => k < 1)) throw new UsageException("--topk takes positive whole numbers, e.g. 1,5,10,50,100");
        var prompts = PromptSet.Load(promptsPath);
        var labels = labelsPath is null ? null : ReadLabels(labelsPath, prompts, "slide_id");
        if (!Directory.Exists(featuresDir)) throw new HistoException($"{featuresDir}: folder not found (--features)");
        var files = Directory.GetFiles(featuresDir, "*.h5").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new HistoException($"{featuresDir}: no .h5 features files; embed the slides first");
        var provenance = FeatureProvenance.Common(files);
        var (model, tokenizer) = LoadChecked(weights, tokenizerName, gelu);
        using var _ = model;
        if (provenance.Dim != model.EmbedDim)
            throw new HistoException($"{files[0]}: features are {provenance.Dim}-d but {weights} embeds images in {model.EmbedDim} "
                + "dimensions; zero-shot needs features from this model's own image tower (its projected image embeddings)");
        using var classes = ClassEmbeddings(model, tokenizer, prompts);
        using var logitScale = model.LogitScale.ToScalar();
        // Mean pooling (no K), then top-K for each K.
        var poolings = new (string Name, int? K)[] { ("mean", null) }.Concat(topK.Distinct().Order().Select(k => ($"top{k}", (int?)k)))
            .ToArray();
        var predictions = new List<SlidePrediction>();
        // With the slides, a heatmap per slide and class of the patches' similarity to the class (its logit).
        var slidePaths = slidesDir is null ? null : SlideBatch.Expand([slidesDir], f => WholeSlide.Extensions.Contains(
            Path.GetExtension(f).ToLowerInvariant())).ToDictionary(WholeSlide.SlideIdOf);
        if (slidePaths is not null) JobFolder.CreateDirectory(Path.Combine(outputDir, "heatmaps"));
        foreach (var file in files)
        {
            var features = PatchFeatures.Read(file);
            features.CheckFinite(file);
            if (features.Count == 0) throw new HistoException($"{file}: no patches; re-run histo embed for this slide or remove it");
            string slide = Path.GetFileNameWithoutExtension(file);
            using var scope = NewDisposeScope();
            var logits = Normalise(tensor(features.Features)).matmul(classes.t()).mul(logitScale);   // [N, classes]
            foreach (var (name, k) in poolings)
            {
                var pooled = k is null ? logits.mean([0]) : logits.topk(Math.Min(k.Value, features.Count), dim: 0).values.mean([0]);
                var p = pooled.softmax(-1).data<float>().ToArray();
                predictions.Add(new SlidePrediction(slide, name, Array.IndexOf(p, p.Max()), p));
            }
            if (slidePaths is null) continue;
            if (!slidePaths.TryGetValue(slide, out var slidePath))
                throw new HistoException($"{slidesDir}: no slide named {slide} for its heatmaps (--slides)");
            using var wsi = WholeSlide.Open(slidePath);
            var coords = new PatchCoordinates(slide, features.Coords, features.PatchSize, features.PatchLevel, features.PatchSizeLevel0,
                features.TargetMpp, double.NaN, double.NaN, 0, double.NaN);
            var byClass = logits.t().contiguous().data<float>().ToArray();
            for (int c = 0; c < prompts.Classes.Count; c++)
            {
                string stem = Path.Combine(outputDir, "heatmaps", $"{slide}.{prompts.Classes[c]}");
                Reports.Heatmap.Write(wsi, coords, byClass.AsSpan(c * features.Count, features.Count).ToArray(), stem + ".png",
                    stem + ".geojson", $"{slide}: similarity to '{prompts.Classes[c]}' (percentile within the slide)");
            }
        }
        var metrics = new List<PoolingMetrics>();
        if (labels is not null)
        {
            var unlabelled = predictions.Select(p => p.SlideId).Distinct().Where(s => !labels.ContainsKey(s)).ToList();
            if (unlabelled.Count == predictions.Count / poolings.Length)
                throw new HistoException($"{labelsPath}: none of the {unlabelled.Count} slides has a label; check the slide_id column");
            foreach (var (pooling, _) in poolings)
            {
                var rows = predictions.Where(p => p.Pooling == pooling && labels.ContainsKey(p.SlideId)).ToList();
                var truth = rows.Select(r => labels[r.SlideId]).ToList();
                var m = ClassificationMetrics.Compute(truth, rows.Select(r => r.Predicted).ToList(), prompts.Classes.Count);
                var auc = truth.Distinct().Count() == prompts.Classes.Count
                    ? SlideMetrics.MacroAuc(rows.Select(r => r.Probabilities.Select(v => (double)v).ToArray()).ToArray(), truth,
                        prompts.Classes.Count)
                    : double.NaN;
                metrics.Add(new PoolingMetrics(pooling, rows.Count, m, auc));
            }
        }
        JobFolder.CreateDirectory(outputDir);
        var csv = new StringBuilder("slide_id,pooling,predicted," + string.Join(',', prompts.Classes.Select(c => "p_" + c)) + "\n");
        foreach (var p in predictions)
            csv.Append(CultureInfo.InvariantCulture, $"{p.SlideId},{p.Pooling},{prompts.Classes[p.Predicted]},")
                .AppendJoin(',', p.Probabilities.Select(v => v.ToString("R", CultureInfo.InvariantCulture))).Append('\n');
        AtomicFile.WriteAllText(Path.Combine(outputDir, "slide-predictions.csv"), csv.ToString());
        if (metrics.Count > 0)
        {
            var m = new StringBuilder("pooling,slides,accuracy,balanced_accuracy,auc\n");
            foreach (var r in metrics)
                m.Append(CultureInfo.InvariantCulture,
                    $"{r.Pooling},{r.Slides},{r.Metrics.Accuracy:R},{r.Metrics.BalancedAccuracy:R},{r.Auc:R}\n");
            AtomicFile.WriteAllText(Path.Combine(outputDir, "slide-metrics.csv"), m.ToString());
        }
        return (predictions, metrics);
    }

    /// <summary>The model and its tokenizer (the given one, else the run's, else CLIP's), refused when the model has fewer token
    /// embeddings than the tokenizer has ids.</summary>
    static (IVisionLanguageModel Model, ClipTokenizer Tokenizer) LoadChecked(string weights, string? tokenizerName, bool gelu)
    {
        var model = VisionLanguageModels.Load(weights, gelu);
        try
        {
            var tokenizer = ClipTokenizer.Load(tokenizerName ?? model.Tokenizer ?? "clip");
            if (tokenizer.Encoding.VocabularySize <= model.Vocabulary) return (model, tokenizer);
            throw new HistoException($"{weights}: the model's {model.Vocabulary} token embeddings are fewer than the tokenizer's "
                + $"{tokenizer.Encoding.VocabularySize} ids; give the tokenizer the model was trained with (--tokenizer)");
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
