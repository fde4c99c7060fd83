using System.Globalization;
using System.Text.Json;
using Histo.IO;

namespace Histo.Evaluation;

/// <summary>
/// <c>histo nuclei-eval</c>: predicted against true instance label maps, matched by file name (stem), scored per image with
/// <see cref="InstanceMetrics"/> and averaged over images (HoVer-Net's convention: metrics per image, then the mean); COCO mask
/// and box AP per image and over the dataset (COCO's convention: every image's detections ranked together).
/// </summary>
public static class NucleiEvaluation
{
    static readonly string[] Extensions = [".png", ".tif", ".tiff", ".npy"];

    public sealed record ImageResult(string Name, InstanceScores Scores, CocoScores MaskAp, CocoScores BoxAp);

    public sealed record Result(IReadOnlyList<ImageResult> Images, IReadOnlyDictionary<string, double> Mean, CocoScores MaskAp,
        CocoScores BoxAp);

    /// <param name="radius">Detection radius in pixels (HoVer-Net: 12 px at 0.25 um/px; scale it with the resolution).</param>
    /// <param name="scoresDir">Detection scores for AP: <c>NAME.csv</c> with <c>nucleus_id</c> (the label-map id) and <c>score</c>
    /// columns; without it every nucleus scores 1 and ties keep id order, as COCO's stable sort does.</param>
    public static Result Run(string predictionDir, string truthDir, double radius, string? outputDir = null, string? scoresDir = null,
        int maxDetections = CocoAveragePrecision.DenseMaxDetections)
    {
        Require.Positive("--radius", radius);
        Require.AtLeast("--max-detections", maxDetections, 1);
        if (scoresDir is not null && !Directory.Exists(scoresDir)) throw new HistoException($"{scoresDir}: folder not found (--scores)");
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
            try
            {
                var pairs = new InstancePairs(t, p);
                var scores = scoresDir is null ? pairs.PredictionIds.Select(_ => 1.0).ToArray()
                    : DetectionScores(Path.Combine(scoresDir, kv.Key + ".csv"), pairs.PredictionIds);
                return (Name: kv.Key, Scores: InstanceMetrics.Compute(t, p, radius), Mask: CocoImage.Masks(pairs, scores),
                    Box: CocoImage.Boxes(pairs, scores));
            }
            catch (HistoException e) { throw new HistoException($"{predictions[kv.Key]}: {e.Message}", e); }
        }).ToList();
        var rows = images.Select(i => new ImageResult(i.Name, i.Scores, CocoAveragePrecision.Evaluate([i.Mask], maxDetections),
            CocoAveragePrecision.Evaluate([i.Box], maxDetections))).ToList();
        var mean = Columns.ToDictionary(c => c.Name, c => rows.Select(c.Value).Average());
        var result = new Result(rows, mean, CocoAveragePrecision.Evaluate(images.Select(i => i.Mask).ToList(), maxDetections),
            CocoAveragePrecision.Evaluate(images.Select(i => i.Box).ToList(), maxDetections));
        if (outputDir is not null) Write(result, outputDir, radius);
        return result;
    }

    /// <summary>The per-image columns, named as HoVer-Net's tables name them.</summary>
    public static readonly IReadOnlyList<(string Name, Func<ImageResult, double> Value)> Columns =
    [
        ("dice", i => i.Scores.Dice1), ("dice2", i => i.Scores.Dice2), ("aji", i => i.Scores.Aji), ("aji_plus", i => i.Scores.AjiPlus),
        ("dq", i => i.Scores.DetectionQuality), ("sq", i => i.Scores.SegmentationQuality), ("pq", i => i.Scores.PanopticQuality),
        ("f1_detection", i => i.Scores.F1), ("ap_mask", i => i.MaskAp.Ap), ("ap50_mask", i => i.MaskAp.Ap50),
        ("ap_box", i => i.BoxAp.Ap), ("tp", i => i.Scores.TruePositives), ("fp", i => i.Scores.FalsePositives),
        ("fn", i => i.Scores.FalseNegatives),
    ];

    /// <summary>Scores by nucleus id from a detector's CSV; every predicted nucleus needs one.</summary>
    static double[] DetectionScores(string csv, IReadOnlyList<int> ids)
    {
        var table = CsvTable.Read(csv, "score file of this image (--scores)");
        int id = table.Column("nucleus_id"), score = table.Column("score");
        if (id < 0 || score < 0) throw new HistoException($"{csv}: needs the columns nucleus_id and score");
        var byId = new Dictionary<int, double>();
        foreach (var (line, row) in table.Rows)
        {
            if (!int.TryParse(row[id], NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
                || !double.TryParse(row[score], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
                throw new HistoException($"{csv}:{line}: '{row[id]},{row[score]}' is not a nucleus id and a finite score");
            if (!byId.TryAdd(n, v)) throw new HistoException($"{csv}:{line}: nucleus {n} has a second score");
        }
        var missing = ids.FirstOrDefault(i => !byId.ContainsKey(i));
        if (missing != 0) throw new HistoException($"{csv}: no score for nucleus {missing} of the label map");
        return ids.Select(i => byId[i]).ToArray();
    }

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
        lines.AddRange(result.Images.Select(i => i.Name + "," + string.Join(",", Columns.Select(c => F(c.Value(i))))));
        lines.Add("mean," + string.Join(",", Columns.Select(c => F(result.Mean[c.Name]))));
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.csv"), string.Join("\n", lines) + "\n");
        var json = new
        {
            radius,
            images = result.Images.ToDictionary(i => i.Name, i => Columns.ToDictionary(c => c.Name, c => c.Value(i))),
            mean = result.Mean,
            coco = new { iou_thresholds = CocoAveragePrecision.IouThresholds, mask = result.MaskAp, box = result.BoxAp },
        };
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions
        {
            WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }));
    }
}
