using System.Text.Json;
using Histo.Evaluation;
using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// COCO mask and box AP against a NumPy reference written from pycocotools' COCOeval (tools/reference/coco_ap_reference.py):
/// the nuclei metrics' synthetic label maps and the shared data's MoNuSeg maps against a derived prediction, with scores
/// drawn by the reference (ties included), per image and over the dataset, at maxDets 3000 and 10; plus hand cases.
/// </summary>
public class CocoAveragePrecisionTests
{
    static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "coco-ap-golden.json")));
        return doc.RootElement.Clone();
    }

    static double[] Scores(InstancePairs pairs, JsonElement byId)
    {
        var scores = byId.EnumerateArray().ToDictionary(p => p[0].GetInt32(), p => p[1].GetDouble());
        return pairs.PredictionIds.Select(id => scores[id]).ToArray();
    }

    static void AssertScores(JsonElement expected, CocoScores actual, string what)
    {
        if (expected.ValueKind == JsonValueKind.Null) { Assert.True(double.IsNaN(actual.Ap), $"{what}: expected no AP"); return; }
        void Close(string key, double value) => Assert.True(Math.Abs(expected.GetProperty(key).GetDouble() - value) <= 1e-9,
            $"{what} {key}: expected {expected.GetProperty(key).GetDouble():R}, got {value:R}");
        Close("ap", actual.Ap);
        Close("ap50", actual.Ap50);
        Close("ap75", actual.Ap75);
        Close("ar", actual.Ar);
        var byThreshold = expected.GetProperty("ap_by_threshold").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        for (int k = 0; k < byThreshold.Length; k++) Assert.True(Math.Abs(byThreshold[k] - actual.ApByThreshold[k]) <= 1e-9,
            $"{what} AP[{k}]");
    }

    static void AssertDataset(List<(InstancePairs Pairs, double[] Scores)> images, JsonElement expected, int maxDets, string what)
    {
        foreach (var (kind, build) in new (string, Func<InstancePairs, double[], CocoImage>)[]
                     { ("mask", CocoImage.Masks), ("box", CocoImage.Boxes) })
        {
            var coco = images.Select(i => build(i.Pairs, i.Scores)).ToList();
            var e = expected.GetProperty(kind);
            AssertScores(e.GetProperty("dataset"), CocoAveragePrecision.Evaluate(coco, maxDets), $"{what} {kind} dataset");
            var perImage = e.GetProperty("images").EnumerateArray().ToArray();
            for (int i = 0; i < coco.Count; i++)
                AssertScores(perImage[i], CocoAveragePrecision.Evaluate([coco[i]], maxDets), $"{what} {kind} image {i}");
        }
    }

    [Fact]
    public void ThresholdsAreNumPysLinspace()
    {
        var golden = Golden().GetProperty("iou_thresholds").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(golden, CocoAveragePrecision.IouThresholds);
        Assert.Equal(101, CocoAveragePrecision.RecallThresholds.Length);
    }

    [Fact]
    public void SyntheticCasesMatchTheReference()
    {
        var golden = Golden().GetProperty("synthetic");
        var maps = InstanceMetricsParityTests.Golden().GetProperty("synthetic");
        var names = golden.GetProperty("names").EnumerateArray().Select(n => n.GetString()!).ToArray();
        var scores = golden.GetProperty("scores").EnumerateArray().ToArray();
        var images = new List<(InstancePairs, double[])>();
        for (int i = 0; i < names.Length; i++)
        {
            var c = maps.GetProperty(names[i].Replace("_equal_scores", ""));
            var shape = c.GetProperty("shape");
            var pairs = new InstancePairs(InstanceMetricsParityTests.Decode(shape, c.GetProperty("truth").GetString()!),
                InstanceMetricsParityTests.Decode(shape, c.GetProperty("pred").GetString()!));
            images.Add((pairs, Scores(pairs, scores[i])));
        }
        foreach (var byMax in golden.GetProperty("max_dets").EnumerateObject())
            AssertDataset(images, byMax.Value, int.Parse(byMax.Name), $"synthetic maxDets {byMax.Name}");
    }

    [Fact]
    public void SharedData_MonusegMatchesTheReference()
    {
        var golden = Golden().GetProperty("monuseg");
        var scores = golden.GetProperty("scores").EnumerateArray().ToArray();
        var images = golden.GetProperty("names").EnumerateArray().Select((n, i) =>
        {
            var truth = LabelMapFile.Read(SharedData.Path_("nuclei", "monuseg", "inst", n.GetString() + ".png"));
            var pairs = new InstancePairs(truth, InstanceMetricsParityTests.DerivedPrediction(truth));
            return (pairs, Scores(pairs, scores[i]));
        }).ToList();
        AssertDataset(images, golden.GetProperty("max_dets").GetProperty("3000"), 3000, "MoNuSeg");
    }

    /// <summary>One truth of 30 px; a detection covering 18 of them (IoU 0.6) and one elsewhere.</summary>
    static CocoImage HandCase(double trueScore, double falseScore)
    {
        var truth = new int[100];
        var prediction = new int[100];
        for (int y = 0; y < 5; y++) for (int x = 0; x < 6; x++) truth[y * 10 + x] = 1;
        for (int y = 0; y < 3; y++) for (int x = 0; x < 6; x++) prediction[y * 10 + x] = 4;
        for (int y = 7; y < 9; y++) for (int x = 7; x < 9; x++) prediction[y * 10 + x] = 9;
        return CocoImage.Masks(new InstancePairs(new LabelMap(10, 10, truth), new LabelMap(10, 10, prediction)), [trueScore, falseScore]);
    }

    [Fact]
    public void HandCases()
    {
        // Matched at IoU thresholds 0.50, 0.55 and 0.60 (IoU >= t), with precision 1 at recall 1: AP 3/10, AR 3/10.
        var s = CocoAveragePrecision.Evaluate([HandCase(0.9, 0.1)]);
        Assert.Equal(0.3, s.Ap, 12);
        Assert.Equal(1.0, s.Ap50, 12);
        Assert.Equal(0.0, s.Ap75, 12);
        Assert.Equal(0.3, s.Ar, 12);
        // The false detection ranked first: precision 1/2 at recall 1.
        Assert.Equal(0.5, CocoAveragePrecision.Evaluate([HandCase(0.1, 0.9)]).Ap50, 12);
        // maxDets 1 keeps only the false one.
        Assert.Equal(0.0, CocoAveragePrecision.Evaluate([HandCase(0.1, 0.9)], maxDetections: 1).Ap, 12);
        // A perfect prediction scores 1.
        var map = new int[100];
        for (int y = 0; y < 5; y++) for (int x = 0; x < 6; x++) map[y * 10 + x] = 1;
        var pairs = new InstancePairs(new LabelMap(10, 10, map), new LabelMap(10, 10, map));
        Assert.Equal(1.0, CocoAveragePrecision.Evaluate([CocoImage.Masks(pairs, [0.5])]).Ap, 12);
        Assert.Equal(1.0, CocoAveragePrecision.Evaluate([CocoImage.Boxes(pairs, [0.5])]).Ap, 12);
    }

    [Fact]
    public void NucleiEvalCommandReportsTheReferenceApWithScores()
    {
        const string name = "mixed_256x256";
        var golden = Golden().GetProperty("synthetic");
        int index = golden.GetProperty("names").EnumerateArray().Select(n => n.GetString()).ToList().IndexOf(name);
        var c = InstanceMetricsParityTests.Golden().GetProperty("synthetic").GetProperty(name);
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["truth"]);
        Directory.CreateDirectory(dir["pred"]);
        Directory.CreateDirectory(dir["scores"]);
        LabelMapFile.WritePng(dir["truth/tile.png"], InstanceMetricsParityTests.Decode(c.GetProperty("shape"),
            c.GetProperty("truth").GetString()!));
        LabelMapFile.WritePng(dir["pred/tile.png"], InstanceMetricsParityTests.Decode(c.GetProperty("shape"),
            c.GetProperty("pred").GetString()!));
        var scores = golden.GetProperty("scores")[index].EnumerateArray().Select(p => string.Create(
            System.Globalization.CultureInfo.InvariantCulture, $"{p[0].GetInt32()},{p[1].GetDouble():R}"));
        File.WriteAllLines(dir["scores/tile.csv"], ["nucleus_id,score", .. scores]);
        var (code, stdout, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--scores", dir["scores"],
            "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("# dataset\tmask AP", stdout);   // piped: the tab-separated form
        using var json = JsonDocument.Parse(File.ReadAllText(dir["out/nuclei-metrics.json"]));
        var expected = golden.GetProperty("max_dets").GetProperty("3000");
        var mask = json.RootElement.GetProperty("coco").GetProperty("mask");
        Assert.Equal(expected.GetProperty("mask").GetProperty("images")[index].GetProperty("ap").GetDouble(),
            mask.GetProperty("Ap").GetDouble(), 9);
        var box = json.RootElement.GetProperty("coco").GetProperty("box");
        Assert.Equal(expected.GetProperty("box").GetProperty("images")[index].GetProperty("ap50").GetDouble(),
            box.GetProperty("Ap50").GetDouble(), 9);

        // A score file that misses a nucleus: one line naming it, exit 1.
        File.WriteAllLines(dir["scores/tile.csv"], ["nucleus_id,score", "1,0.5"]);
        (code, _, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--scores", dir["scores"]);
        Assert.Equal(1, code);
        Assert.Contains("tile.csv: no score for nucleus", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        (code, _, _) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--max-detections", "0");
        Assert.Equal(2, code);
    }
}
