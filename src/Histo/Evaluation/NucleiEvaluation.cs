using System.Globalization;
using System.Text.Json;
using Histo.IO;

namespace Histo.Evaluation;

/// <summary>
/// <c>histo nuclei-eval</c>: predicted against true instance label maps, matched by file name (stem), scored per image with
/// <see cref="InstanceMetrics"/> and averaged over images (HoVer-Net's convention: metrics per image, then the mean).
/// </summary>
public static class NucleiEvaluation
{
    static readonly string[] Extensions = [".png", ".tif", ".tiff", ".npy"];

    public sealed record Result(IReadOnlyList<(string Name, InstanceScores Scores)> Images, IReadOnlyDictionary<string, double> Mean);

    /// <param name="radius">Detection radius in pixels (HoVer-Net: 12 px at 0.25 um/px; scale it with the resolution).</param>
    public static Result Run(string predictionDir, string truthDir, double radius, string? outputDir = null)
    {
        Require.Positive("--radius", radius);
        var truth = Files(truthDir, "--truth");
        var predictions = Files(predictionDir, "--pred");
        var missing = truth.Keys.Where(k => !predictions.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new HistoException($"{predictionDir}: no prediction for {missing.Count} truth image(s) ({string.Join(", ", missing.Take(3))}"
                + $"{(missing.Count > 3 ? ", ..." : "")}); name predictions as the truth files are named");
        var images = truth.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            var t = LabelMapFile.Read(kv.Value);
            var p = LabelMapFile.Read(predictions[kv.Key]);
            try { return (kv.Key, InstanceMetrics.Compute(t, p, radius)); }
            catch (HistoException e) { throw new HistoException($"{predictions[kv.Key]}: {e.Message}", e); }
        }).ToList();
        var mean = Columns.ToDictionary(c => c.Name, c => images.Select(i => c.Value(i.Item2)).Average());
        var result = new Result(images, mean);
        if (outputDir is not null) Write(result, outputDir, radius);
        return result;
    }

    /// <summary>The per-image columns, named as HoVer-Net's tables name them.</summary>
    public static readonly IReadOnlyList<(string Name, Func<InstanceScores, double> Value)> Columns =
    [
        ("dice", s => s.Dice1), ("dice2", s => s.Dice2), ("aji", s => s.Aji), ("aji_plus", s => s.AjiPlus),
        ("dq", s => s.DetectionQuality), ("sq", s => s.SegmentationQuality), ("pq", s => s.PanopticQuality), ("f1_detection", s => s.F1),
        ("tp", s => s.TruePositives), ("fp", s => s.FalsePositives), ("fn", s => s.FalseNegatives),
    ];

    static Dictionary<string, string> Files(string dir, string option)
    {
        if (!Directory.Exists(dir)) throw new HistoException($"{dir}: folder not found ({option})");
        var files = Directory.GetFiles(dir).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .GroupBy(f => Path.GetFileNameWithoutExtension(f)).ToList();
        var doubled = files.FirstOrDefault(g => g.Count() > 1);
        if (doubled is not null) throw new HistoException($"{dir}: '{doubled.Key}' exists as {string.Join(" and ", doubled.Select(Path.GetFileName))}; "
            + "keep one label map per image");
        if (files.Count == 0) throw new HistoException($"{dir}: no label maps (.png, .tif, .npy) ({option})");
        return files.ToDictionary(g => g.Key, g => g.Single());
    }

    static void Write(Result result, string outputDir, double radius)
    {
        Directory.CreateDirectory(outputDir);
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var lines = new List<string> { "image," + string.Join(",", Columns.Select(c => c.Name)) };
        lines.AddRange(result.Images.Select(i => i.Name + "," + string.Join(",", Columns.Select(c => F(c.Value(i.Scores))))));
        lines.Add("mean," + string.Join(",", Columns.Select(c => F(result.Mean[c.Name]))));
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.csv"), string.Join("\n", lines) + "\n");
        var json = new
        {
            radius,
            images = result.Images.ToDictionary(i => i.Name, i => Columns.ToDictionary(c => c.Name, c => c.Value(i.Scores))),
            mean = result.Mean,
        };
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions
        {
            WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }));
    }
}
