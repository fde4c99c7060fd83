using Histo.Evaluation;
using Histo.IO;

namespace Histo.Tests;

/// <summary>Nuclei instance metrics on hand-computed cases (the reference parity is in InstanceMetricsParityTests).</summary>
public class InstanceMetricsTests
{
    internal static LabelMap Map(int width, int height, params (int Id, int X0, int Y0, int X1, int Y1)[] boxes)
    {
        var labels = new int[width * height];
        foreach (var (id, x0, y0, x1, y1) in boxes)
            for (int y = y0; y < y1; y++) for (int x = x0; x < x1; x++) labels[y * width + x] = id;
        return new LabelMap(width, height, labels);
    }

    // Truth: A and B, 10 x 10 each. Prediction: A exactly, B shifted 5 px (IoU 50 / 150 = 1/3, not a PQ match), and a 5 x 5
    // false positive C. By hand: TP 1, FP 2, FN 1, DQ = 1 / 2.5, SQ = 1 / (1 + 1e-6); Dice1 = 2 * 150 / (200 + 225);
    // Dice2 = 2 * 150 / (200 + 200); AJI = AJI+ = (100 + 50) / (100 + 150 + 25); centroids (4.5, 4.5) and (24.5, 4.5) meet
    // (4.5, 4.5) and (29.5, 4.5) within 12 px, C is extra: F1 = 4 / 5.
    [Fact]
    public void ShiftedNucleusAndFalsePositiveGiveTheHandComputedScores()
    {
        var truth = Map(60, 40, (3, 0, 0, 10, 10), (9, 20, 0, 30, 10));
        var prediction = Map(60, 40, (1, 0, 0, 10, 10), (2, 25, 0, 35, 10), (7, 50, 30, 55, 35));
        var s = InstanceMetrics.Compute(truth, prediction, radius: 12);
        Assert.Equal((1, 2, 1), (s.TruePositives, s.FalsePositives, s.FalseNegatives));
        Assert.Equal(0.4, s.DetectionQuality, 12);
        Assert.Equal(1 / (1 + 1e-6), s.SegmentationQuality, 12);
        Assert.Equal(0.4 / (1 + 1e-6), s.PanopticQuality, 12);
        Assert.Equal(300.0 / 425, s.Dice1, 12);
        Assert.Equal(0.75, s.Dice2, 12);
        Assert.Equal(150.0 / 275, s.Aji, 5);        // AJI's IoU carries HoVer-Net's 1e-6 only in the argmax, not in the sums
        Assert.Equal(150.0 / 275, s.AjiPlus, 12);
        Assert.Equal((2, 0, 1), (s.DetectedPairs, s.MissedTruth, s.FalseDetections));
        Assert.Equal(0.8, s.F1, 12);
    }

    [Fact]
    public void PerfectPredictionScoresOneEverywhere()
    {
        var truth = Map(40, 40, (4, 0, 0, 10, 10), (5, 10, 0, 20, 10), (6, 5, 20, 30, 35));   // two touching nuclei
        var s = InstanceMetrics.Compute(truth, truth, radius: 12);
        Assert.Equal((3, 0, 0), (s.TruePositives, s.FalsePositives, s.FalseNegatives));
        foreach (var v in new[] { s.DetectionQuality, s.Dice1, s.Dice2, s.Aji, s.AjiPlus, s.F1 }) Assert.Equal(1.0, v, 12);
        Assert.Equal(1.0, s.PanopticQuality, 5);
    }

    // Truth: A (type 1), B (type 2). Prediction: A' = A (type 1), B' = B (type 1, wrong), C far away (type 2). By hand
    // (compute_stats.py): type accuracy 1/2; F_1 = 2 * 1 / (2 * 1 + 2 * 1) = 0.5 (pair B-B' is a false type-1 positive);
    // F_2 = 0 / (2 * 1 + 1 * 1) = 0. PanNuke: type 1 has A matched and B' extra, PQ = (1 / 1.5) / (1 + 1e-6); type 2 has B
    // unmatched, PQ 0; types 3, 4 absent (NaN, left out): mPQ = their mean; bPQ = (2 / 2.5) 2 / (2 + 1e-6).
    [Fact]
    public void TypedDetectionAndPanNukePqGiveTheHandComputedScores()
    {
        var truth = Map(80, 40, (1, 0, 0, 10, 10), (2, 20, 0, 30, 10));
        var prediction = Map(80, 40, (5, 0, 0, 10, 10), (6, 20, 0, 30, 10), (7, 60, 30, 66, 36));
        var truthTypes = new Dictionary<int, int> { [1] = 1, [2] = 2 };
        var predTypes = new Dictionary<int, int> { [5] = 1, [6] = 1, [7] = 2 };
        int[] types = [1, 2, 3, 4];
        var (accuracy, f1) = InstanceMetrics.TypedDetection(new InstancePairs(truth, prediction), truthTypes, predTypes, 12, types);
        Assert.Equal(0.5, accuracy, 12);
        Assert.Equal(0.5, f1[1], 12);
        Assert.Equal(0.0, f1[2], 12);
        var (mpq, bpq, byType) = InstanceMetrics.PanNukePq(truth, prediction, truthTypes, predTypes, types);
        double pq1 = 1 / 1.5 / (1 + 1e-6);
        Assert.Equal(pq1, byType[1], 12);
        Assert.Equal(0.0, byType[2], 12);
        Assert.True(double.IsNaN(byType[3]) && double.IsNaN(byType[4]));
        Assert.Equal(pq1 / 2, mpq, 12);
        Assert.Equal(0.8 * 2 / (2 + 1e-6), bpq, 12);
    }

    /// <summary>A 2-D uint16 .npy file as NumPy writes it (format 1.0, header padded to 64 bytes).</summary>
    static void WriteNpy(string path, LabelMap map)
    {
        string header = $"{{'descr': '<u2', 'fortran_order': False, 'shape': ({map.Height}, {map.Width}), }}";
        header = header.PadRight(64 - 10 - 1) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        f.Write(BitConverter.GetBytes((ushort)header.Length));
        f.Write(System.Text.Encoding.ASCII.GetBytes(header));
        foreach (int v in map.Labels) f.Write(BitConverter.GetBytes((ushort)v));
    }

    [Fact]
    public void NucleiEvalCommandWritesTheTableAndRefusesMissingPredictions()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["truth"]);
        Directory.CreateDirectory(dir["pred"]);
        WriteNpy(dir["truth/tile1.npy"], Map(60, 40, (3, 0, 0, 10, 10), (9, 20, 0, 30, 10)));
        WriteNpy(dir["pred/tile1.npy"], Map(60, 40, (1, 0, 0, 10, 10), (2, 25, 0, 35, 10), (7, 50, 30, 55, 35)));
        var (code, stdout, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        var rows = File.ReadAllLines(dir["out/nuclei-metrics.csv"]).Select(l => l.Split(',')).ToList();
        var header = rows[0].ToList();
        // The hand case above: PQ = 0.4 / (1 + 1e-6), F1 0.8.
        Assert.Equal(0.4 / (1 + 1e-6), double.Parse(rows[1][header.IndexOf("pq")], System.Globalization.CultureInfo.InvariantCulture), 12);
        Assert.Equal("0.8", rows[^1][header.IndexOf("f1_detection")]);
        Assert.Contains("tile1", stdout);
        WriteNpy(dir["truth/tile2.npy"], Map(60, 40, (1, 0, 0, 5, 5)));
        (code, _, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"]);
        Assert.Equal(1, code);
        Assert.Contains("no prediction for 1 truth image(s) (tile2)", stderr);
        (code, _, _) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--radius", "0");
        Assert.Equal(2, code);
    }
}
