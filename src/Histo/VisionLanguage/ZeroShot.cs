using System.Globalization;
using System.Text;
using System.Text.Json;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
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
    public static Tensor ClassEmbeddings(ClipModel model, ClipTokenizer tokenizer, PromptSet prompts)
    {
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>();
        using (no_grad())
            foreach (var names in prompts.Names)
            {
                var texts = prompts.Templates.SelectMany(t => names.Select(n => t.Replace(PromptSet.Placeholder, n))).ToList();
                var ids = texts.SelectMany(t => tokenizer.TokenizePadded(t, model.Config.Context)).ToArray();
                var embeddings = Normalise(model.EncodeText(tensor(ids, [texts.Count, model.Config.Context])));
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
    public static Tensor Probabilities(ClipModel model, Tensor images, Tensor classEmbeddings, Scalar logitScale)
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
    public static (int Images, ClassificationMetrics? Metrics, string Path) ClassifyImages(string weights, string promptsPath,
        string tokenizerName, IReadOnlyList<string> images, string? labelsPath, string outputDir)
    {
        var prompts = PromptSet.Load(promptsPath);
        var tokenizer = ClipTokenizer.Load(tokenizerName);
        var labels = labelsPath is null ? null : ReadLabels(labelsPath, prompts);
        using var model = ClipModel.Load(weights);
        if (tokenizer.Encoding.VocabularySize > model.Config.Vocabulary)
            throw new HistoException($"{weights}: the model's {model.Config.Vocabulary} token embeddings are fewer than the tokenizer's "
                + $"{tokenizer.Encoding.VocabularySize} ids; give the tokenizer the model was trained with (--tokenizer)");
        using var classes = ClassEmbeddings(model, tokenizer, prompts);
        using var normaliser = new InputNormaliser(ClipNormalization);
        using var logitScale = model.LogitScale.ToScalar();
        var csv = new StringBuilder("image,predicted," + string.Join(',', prompts.Classes.Select(c => "p_" + c)) + "\n");
        var truth = new List<int>();
        var predicted = new List<int>();
        foreach (var path in images)
        {
            RgbaImage image;
            try { image = RgbaImage.Load(path); }
            catch (Exception e) when (e is not HistoException) { throw new HistoException($"{path}: not a readable image ({e.Message})"); }
            using var input = Preprocess(image, model.Config.ImageSize, normaliser);
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

    static Dictionary<string, int> ReadLabels(string path, PromptSet prompts)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: no such labels file");
        var labels = new Dictionary<string, int>();
        foreach (var (line, n) in File.ReadLines(path).Select((l, i) => (l, i + 1)).Skip(1))
        {
            if (line.Trim().Length == 0) continue;
            var parts = line.Split(',');
            int c = parts.Length == 2 ? prompts.Classes.ToList().IndexOf(parts[1].Trim()) : -1;
            if (c < 0)
                throw new HistoException($"{path}: line {n} must be 'image,label' with a label among "
                    + string.Join(", ", prompts.Classes));
            labels[parts[0].Trim()] = c;
        }
        return labels;
    }
}
