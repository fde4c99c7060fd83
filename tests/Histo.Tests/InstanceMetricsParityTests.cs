using System.Text.Json;
using Histo.Evaluation;
using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// Nuclei metrics against a NumPy/SciPy reference written from HoVer-Net's stats_utils.py and compute_stats.py and PanNuke's
/// metrics (tools/reference/nuclei_metrics_reference.py): synthetic label maps with touching, split, merged, missed and extra
/// nuclei and non-consecutive ids, and the shared data's MoNuSeg annotations against a prediction derived from them by a
/// fixed rule (shift, removals, merges, splits). Every metric to 1e-9.
/// </summary>
public class InstanceMetricsParityTests
{
    internal static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "nuclei-metrics-golden.json")));
        return doc.RootElement.Clone();
    }

    internal static LabelMap Decode(JsonElement shape, string base64)
    {
        int h = shape[0].GetInt32(), w = shape[1].GetInt32();
        var bytes = Convert.FromBase64String(base64);
        var labels = new int[h * w];
        for (int i = 0; i < labels.Length; i++) labels[i] = BitConverter.ToUInt16(bytes, 2 * i);
        return new LabelMap(w, h, labels);
    }

    static void AssertMetric(JsonElement expected, string key, double actual, string what)
    {
        if (!expected.TryGetProperty(key, out var value)) return;
        if (value.ValueKind == JsonValueKind.Null) Assert.True(double.IsNaN(actual), $"{what} {key}: expected NaN, got {actual}");
        else Assert.True(Math.Abs(value.GetDouble() - actual) <= 1e-9, $"{what} {key}: expected {value.GetDouble():R}, got {actual:R}");
    }

    static void AssertScores(JsonElement expected, InstanceScores s, string what)
    {
        AssertMetric(expected, "dq", s.DetectionQuality, what);
        AssertMetric(expected, "sq", s.SegmentationQuality, what);
        AssertMetric(expected, "pq", s.PanopticQuality, what);
        AssertMetric(expected, "dice1", s.Dice1, what);
        AssertMetric(expected, "dice2", s.Dice2, what);
        AssertMetric(expected, "aji", s.Aji, what);
        AssertMetric(expected, "aji_plus", s.AjiPlus, what);
        AssertMetric(expected, "f1", s.F1, what);
        AssertMetric(expected, "tp", s.TruePositives, what);
        AssertMetric(expected, "fp", s.FalsePositives, what);
        AssertMetric(expected, "fn", s.FalseNegatives, what);
    }

    static Dictionary<int, int> Types(JsonElement types) => types.ValueKind == JsonValueKind.Null ? []
        : types.EnumerateArray().ToDictionary(p => p[0].GetInt32(), p => p[1].GetInt32());

    [Fact]
    public void SyntheticCasesMatchTheReference()
    {
        var golden = Golden();
        double radius = golden.GetProperty("radius").GetDouble();
        foreach (var c in golden.GetProperty("synthetic").EnumerateObject())
        {
            var shape = c.Value.GetProperty("shape");
            var truth = Decode(shape, c.Value.GetProperty("truth").GetString()!);
            var prediction = Decode(shape, c.Value.GetProperty("pred").GetString()!);
            var expected = c.Value.GetProperty("metrics");
            AssertScores(expected, InstanceMetrics.Compute(truth, prediction, radius), c.Name);
            if (c.Value.GetProperty("truth_types").ValueKind == JsonValueKind.Null) continue;
            var truthTypes = Types(c.Value.GetProperty("truth_types"));
            var predTypes = Types(c.Value.GetProperty("pred_types"));
            var types = Enumerable.Range(1, 4).ToArray();
            var (accuracy, f1) = InstanceMetrics.TypedDetection(new InstancePairs(truth, prediction), truthTypes, predTypes, radius, types);
            AssertMetric(expected, "type_accuracy", accuracy, c.Name);
            if (expected.TryGetProperty("f_c", out var fc))
                foreach (var t in fc.EnumerateObject()) AssertMetric(fc, t.Name, f1[int.Parse(t.Name)], $"{c.Name} F_c");
            var (mpq, bpq, _) = InstanceMetrics.PanNukePq(truth, prediction, truthTypes, predTypes, types);
            AssertMetric(expected, "mpq", mpq, c.Name);
            AssertMetric(expected, "bpq", bpq, c.Name);
        }
    }

    /// <summary>The reference's prediction rule, applied to a truth map.</summary>
    internal static LabelMap DerivedPrediction(LabelMap truth)
    {
        int w = truth.Width, h = truth.Height;
        var p = new int[w * h];
        for (int y = 2; y < h; y++) for (int x = 3; x < w; x++) p[y * w + x] = truth[y - 2, x - 3];   // (a) shift by (3, 2)
        for (int i = 0; i < p.Length; i++)
        {
            int id = p[i];
            if (id == 0) continue;
            if (id % 7 == 0) { p[i] = 0; continue; }                  // (b) removed
            if (id % 11 == 0) id += 1;                                // (c) merged into the next id
            if (id % 13 == 0 && i % w / 4 % 2 == 1) id += 100000;     // (d) split in 4 px stripes
            p[i] = id;
        }
        return new LabelMap(w, h, p);
    }

    [Fact]
    public void SharedData_MonusegMatchesTheReference()
    {
        var golden = Golden().GetProperty("monuseg");
        double radius = Golden().GetProperty("radius").GetDouble();
        foreach (var image in golden.GetProperty("images").EnumerateObject())
        {
            var truth = LabelMapFile.Read(SharedData.Path_("nuclei", "monuseg", "inst", image.Name + ".png"));
            AssertScores(image.Value, InstanceMetrics.Compute(truth, DerivedPrediction(truth), radius), image.Name);
        }
    }
}
