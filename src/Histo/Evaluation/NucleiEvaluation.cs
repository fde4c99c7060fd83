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

    /// <summary>Typed scores of one image: the counts behind type accuracy and F_c, and PanNuke's PQ per type (NaN where the truth
    /// has none of the type), mPQ and bPQ.</summary>
    public sealed record TypedImage(TypedCounts Counts, IReadOnlyDictionary<int, double> PqByType, double MultiClassPq, double BinaryPq);

    public sealed record ImageResult(string Name, InstanceScores Scores, CocoScores MaskAp, CocoScores BoxAp, TypedImage? Typed = null);

    /// <summary>Typed scores over the dataset: HoVer-Net's type accuracy and F_c from the pooled pairs (compute_stats.py pools
    /// every image's pairs before dividing); PanNuke's mPQ (per type the NaN-ignoring mean over images, then the mean over
    /// types) and bPQ (mean over images).</summary>
    public sealed record TypedDataset(IReadOnlyList<int> Types, double TypeAccuracy, IReadOnlyDictionary<int, double> F1ByType,
        IReadOnlyDictionary<int, double> PqByType, double MultiClassPq, double BinaryPq);

    public sealed record Result(IReadOnlyList<ImageResult> Images, IReadOnlyDictionary<string, double> Mean, CocoScores MaskAp,
        CocoScores BoxAp, TypedDataset? Typed = null);

    /// <param name="radius">Detection radius in pixels (HoVer-Net: 12 px at 0.25 um/px; scale it with the resolution).</param>
    /// <param name="scoresDir">Detection scores for AP: <c>NAME.csv</c> with <c>nucleus_id</c> (the label-map id) and <c>score</c>
    /// columns; without it every nucleus scores 1 and ties keep id order, as COCO's stable sort does.</param>
    /// <param name="truthTypesDir">Types of the true nuclei: <c>NAME.csv</c> with <c>nucleus_id</c> and <c>type</c> (integer) columns,
    /// as <c>histo synth --nuclei-regions</c> writes them; with <paramref name="predictionTypesDir"/>, typed scores.</param>
    public static Result Run(string predictionDir, string truthDir, double radius, string? outputDir = null, string? scoresDir = null,
        int maxDetections = CocoAveragePrecision.DenseMaxDetections, string? truthTypesDir = null, string? predictionTypesDir = null)
    {
        if ((truthTypesDir is null) != (predictionTypesDir is null))
            throw new UsageException("--types and --pred-types go together: the types of the true and of the predicted nuclei");
        foreach (var (dir, option) in new[] { (truthTypesDir, "--types"), (predictionTypesDir, "--pred-types") })
            if (dir is not null && !Directory.Exists(dir)) throw new HistoException($"{dir}: folder not found ({option})");
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
                (Dictionary<int, int> Truth, Dictionary<int, int> Prediction)? typed = truthTypesDir is null ? null
                    : (NucleusTypes(Path.Combine(truthTypesDir, kv.Key + ".csv"), pairs.TruthIds),
                        NucleusTypes(Path.Combine(predictionTypesDir!, kv.Key + ".csv"), pairs.PredictionIds));
                return (Name: kv.Key, Scores: InstanceMetrics.Compute(pairs, t, p, radius), Mask: CocoImage.Masks(pairs, scores),
                    Box: CocoImage.Boxes(pairs, scores), Pairs: pairs, TruthMap: t, PredictionMap: p, TypeMaps: typed);
            }
            catch (HistoException e) { throw new HistoException($"{predictions[kv.Key]}: {e.Message}", e); }
        }).ToList();
        // The types scored: every type either side names (HoVer-Net's type_uid_list), in order.
        var types = images.Where(i => i.TypeMaps is not null)
            .SelectMany(i => i.TypeMaps!.Value.Truth.Values.Concat(i.TypeMaps!.Value.Prediction.Values)).Where(c => c != 0).Distinct()
            .Order().ToArray();
        var rows = images.Select(i =>
        {
            TypedImage? typed = null;
            if (i.TypeMaps is { } maps)
            {
                var (mpq, bpq, byType) = InstanceMetrics.PanNukePq(i.TruthMap, i.PredictionMap, maps.Truth, maps.Prediction, types);
                typed = new TypedImage(TypedCounts.Of(i.Pairs, maps.Truth, maps.Prediction, radius, types), byType, mpq, bpq);
            }
            return new ImageResult(i.Name, i.Scores, CocoAveragePrecision.Evaluate([i.Mask], maxDetections),
                CocoAveragePrecision.Evaluate([i.Box], maxDetections), typed);
        }).ToList();
        var columns = ColumnsFor(truthTypesDir is not null);
        IReadOnlyDictionary<string, double> mean = columns.ToDictionary(c => c.Name, c => rows.Select(c.Value).Average());
        var result = new Result(rows, mean, CocoAveragePrecision.Evaluate(images.Select(i => i.Mask).ToList(), maxDetections),
            CocoAveragePrecision.Evaluate(images.Select(i => i.Box).ToList(), maxDetections),
                truthTypesDir is null ? null : Pool(rows, types));
        if (outputDir is not null) Write(result, outputDir, radius);
        return result;
    }

    static TypedDataset Pool(IReadOnlyList<ImageResult> rows, IReadOnlyList<int> types)
    {
        var counts = rows.Select(r => r.Typed!.Counts).Aggregate((a, b) => a.Add(b));
        var pqByType = types.ToDictionary(c => c, c =>
        {
            var present = rows.Select(r => r.Typed!.PqByType[c]).Where(v => !double.IsNaN(v)).ToList();
            return present.Count == 0 ? double.NaN : present.Average();
        });
        var defined = pqByType.Values.Where(v => !double.IsNaN(v)).ToList();
        return new TypedDataset(types, counts.TypeAccuracy, counts.F1ByType, pqByType, defined.Count == 0 ? double.NaN : defined.Average(),
            rows.Average(r => r.Typed!.BinaryPq));
    }

    /// <summary>Types by nucleus id from a CSV with nucleus_id and type columns; a nucleus of the label map without a row is an
    /// error (a type file from another label map).</summary>
    static Dictionary<int, int> NucleusTypes(string csv, IReadOnlyList<int> ids)
    {
        var table = CsvTable.Read(csv, "type file of this image");
        int id = table.Column("nucleus_id"), type = table.Column("type");
        if (id < 0 || type < 0) throw new HistoException($"{csv}: needs the columns nucleus_id and type");
        var byId = new Dictionary<int, int>();
        foreach (var (line, row) in table.Rows)
        {
            if (!int.TryParse(row[id], NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
                || !int.TryParse(row[type], NumberStyles.Integer, CultureInfo.InvariantCulture, out int t) || t < 0)
                throw new HistoException($"{csv}:{line}: '{row[id]},{row[type]}' is not a nucleus id and a type number (0 or more)");
            if (!byId.TryAdd(n, t)) throw new HistoException($"{csv}:{line}: nucleus {n} has a second type");
        }
        var missing = ids.FirstOrDefault(i => !byId.ContainsKey(i));
        if (missing != 0) throw new HistoException($"{csv}: no type for nucleus {missing} of the label map");
        return byId;
    }

    /// <summary>The per-image columns, named as HoVer-Net's tables name them; with types, type accuracy, mPQ and bPQ too.</summary>
    public static IReadOnlyList<(string Name, Func<ImageResult, double> Value)> ColumnsFor(bool typed) => typed
        ? [.. Columns, ("type_accuracy", i => i.Typed!.Counts.TypeAccuracy), ("mpq", i => i.Typed!.MultiClassPq),
            ("bpq", i => i.Typed!.BinaryPq)]
        : Columns;

    static readonly IReadOnlyList<(string Name, Func<ImageResult, double> Value)> Columns =
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
        var columns = ColumnsFor(result.Typed is not null);
        var lines = new List<string> { "image," + string.Join(",", columns.Select(c => c.Name)) };
        lines.AddRange(result.Images.Select(i => i.Name + "," + string.Join(",", columns.Select(c => F(c.Value(i))))));
        lines.Add("mean," + string.Join(",", columns.Select(c => F(result.Mean[c.Name]))));
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.csv"), string.Join("\n", lines) + "\n");
        var json = new
        {
            radius,
            images = result.Images.ToDictionary(i => i.Name, i => columns.ToDictionary(c => c.Name, c => c.Value(i))),
            mean = result.Mean,
            coco = new { iou_thresholds = CocoAveragePrecision.IouThresholds, mask = result.MaskAp, box = result.BoxAp },
            typed = result.Typed is not { } t ? null : new
            {
                types = t.Types, type_accuracy = t.TypeAccuracy,
                f1_by_type = t.F1ByType.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => kv.Value),
                pq_by_type = t.PqByType.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => kv.Value),
                mpq = t.MultiClassPq, bpq = t.BinaryPq,
            },
        };
        AtomicFile.WriteAllText(Path.Combine(outputDir, "nuclei-metrics.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions
        {
            WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }));
    }
}
