using System.Globalization;
using System.Text.Json;
using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// histo nuclei-eval --types/--pred-types: on one image the typed scores are the reference's (nuclei_metrics_reference.py's
/// typed case); over images HoVer-Net pools the centroid pairs before dividing (a hand case where that differs from the mean
/// over images); bad type files get one line.
/// </summary>
public class TypedNucleiEvalTests
{
    static void WriteTypes(string path, IEnumerable<(int Id, int Type)> types) =>
        File.WriteAllLines(path, ["nucleus_id,type", .. types.Select(t => $"{t.Id},{t.Type}")]);

    static JsonElement Typed(string dir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "nuclei-metrics.json")));
        return doc.RootElement.GetProperty("typed").Clone();
    }

    [Fact]
    public void OneImageGivesTheReferencesTypedScores()
    {
        const string name = "typed_b_all_classes_large_ids_192x192";
        var c = InstanceMetricsParityTests.Golden().GetProperty("synthetic").GetProperty(name);
        using var dir = new TempDir();
        foreach (var sub in new[] { "truth", "pred", "tt", "pt" }) Directory.CreateDirectory(dir[sub]);
        LabelMapFile.WritePng(dir["truth/a.png"], InstanceMetricsParityTests.Decode(c.GetProperty("shape"),
            c.GetProperty("truth").GetString()!));
        LabelMapFile.WritePng(dir["pred/a.png"], InstanceMetricsParityTests.Decode(c.GetProperty("shape"),
            c.GetProperty("pred").GetString()!));
        WriteTypes(dir["tt/a.csv"], c.GetProperty("truth_types").EnumerateArray().Select(p => (p[0].GetInt32(), p[1].GetInt32())));
        WriteTypes(dir["pt/a.csv"], c.GetProperty("pred_types").EnumerateArray().Select(p => (p[0].GetInt32(), p[1].GetInt32())));
        var (code, stdout, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--types", dir["tt"],
            "--pred-types", dir["pt"], "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("# Typed over the dataset: type accuracy", stdout);
        var typed = Typed(dir["out"]);
        var expected = c.GetProperty("metrics");
        Assert.Equal(expected.GetProperty("type_accuracy").GetDouble(), typed.GetProperty("type_accuracy").GetDouble(), 9);
        Assert.Equal(expected.GetProperty("mpq").GetDouble(), typed.GetProperty("mpq").GetDouble(), 9);
        Assert.Equal(expected.GetProperty("bpq").GetDouble(), typed.GetProperty("bpq").GetDouble(), 9);
        foreach (var fc in expected.GetProperty("f_c").EnumerateObject())
            Assert.Equal(fc.Value.GetDouble(), typed.GetProperty("f1_by_type").GetProperty(fc.Name).GetDouble(), 9);
    }

    [Fact]
    public void TypeScoresArePooledOverImagesAsHoverNetPoolsThem()
    {
        // Image a: two nuclei of type 1, found and typed right. Image b: one nucleus of type 1, found but typed 2.
        // Pooled: accuracy 2/3; F_1 = 2 * 2 / (2 * 2 + 2 * 1) = 2/3 (tp 2, fn 1); the mean over images would give 1/2 for both.
        using var dir = new TempDir();
        foreach (var sub in new[] { "truth", "pred", "tt", "pt" }) Directory.CreateDirectory(dir[sub]);
        var a = InstanceMetricsTests.Map(40, 20, (1, 0, 0, 10, 10), (2, 20, 0, 30, 10));
        var b = InstanceMetricsTests.Map(40, 20, (1, 0, 0, 10, 10));
        LabelMapFile.WritePng(dir["truth/a.png"], a);
        LabelMapFile.WritePng(dir["pred/a.png"], a);
        LabelMapFile.WritePng(dir["truth/b.png"], b);
        LabelMapFile.WritePng(dir["pred/b.png"], b);
        WriteTypes(dir["tt/a.csv"], [(1, 1), (2, 1)]);
        WriteTypes(dir["pt/a.csv"], [(1, 1), (2, 1)]);
        WriteTypes(dir["tt/b.csv"], [(1, 1)]);
        WriteTypes(dir["pt/b.csv"], [(1, 2)]);
        var (code, _, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--types", dir["tt"],
            "--pred-types", dir["pt"], "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        var typed = Typed(dir["out"]);
        Assert.Equal(2.0 / 3, typed.GetProperty("type_accuracy").GetDouble(), 12);
        Assert.Equal(2.0 / 3, typed.GetProperty("f1_by_type").GetProperty("1").GetDouble(), 12);
        Assert.Equal(0.0, typed.GetProperty("f1_by_type").GetProperty("2").GetDouble(), 12);
        var csv = File.ReadAllLines(dir["out/nuclei-metrics.csv"]);
        Assert.Contains("type_accuracy", csv[0]);

        // A type file that misses a nucleus; --types without --pred-types.
        WriteTypes(dir["pt/b.csv"], [(7, 2)]);
        (code, _, stderr) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--types", dir["tt"],
            "--pred-types", dir["pt"]);
        Assert.Equal(1, code);
        Assert.Contains("b.csv: no type for nucleus 1 of the label map", stderr);
        (code, _, _) = Cli.Run("nuclei-eval", "--pred", dir["pred"], "--truth", dir["truth"], "--types", dir["tt"]);
        Assert.Equal(2, code);
    }
}
