using System.Globalization;
using System.Text.Json;
using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// Slide-level zero-shot by MI-Zero pooling (histo zeroshot --features) against tools/reference/mizero_reference.py: per
/// slide and pooling (mean, top-1 ... top-100, K clamped to the patch count) the reference's probabilities and predictions
/// from the same features and the same small CLIP; balanced accuracy from them; refusals one line each.
/// </summary>
public class MiZeroTests
{
    static string GoldenPath(string name) => Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", name);

    [Fact]
    public void Cli_SlidePoolingGivesTheReferenceProbabilities()
    {
        using var dir = new TempDir();
        using var doc = JsonDocument.Parse(File.ReadAllText(GoldenPath("mizero-golden.json")));
        var golden = doc.RootElement;
        var classes = golden.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToList();
        var tokenizer = JsonDocument.Parse(File.ReadAllText(GoldenPath("clip-tokenizer-golden.json"))).RootElement.GetProperty("training");
        Directory.CreateDirectory(dir["bpe"]);
        File.WriteAllText(Path.Combine(dir["bpe"], "merges.txt"),
            "#version: 0.2\n" + string.Join("\n", tokenizer.GetProperty("merges").EnumerateArray().Select(m => m.GetString())) + "\n");
        Directory.CreateDirectory(dir["features"]);
        var slides = golden.GetProperty("slides").EnumerateArray().ToList();
        var labels = new List<string> { "case_id,slide_id,label" };
        foreach (var s in slides)
        {
            var rows = s.GetProperty("features").EnumerateArray()
                .Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToList();
            var f = new float[rows.Count, rows[0].Length];
            for (int i = 0; i < rows.Count; i++) for (int j = 0; j < rows[i].Length; j++) f[i, j] = rows[i][j];
            string id = s.GetProperty("slide_id").GetString()!;
            new PatchFeatures(id, f, new long[rows.Count, 2], "clip-mini", 64, 0.5).Write(dir[$"features/{id}.h5"]);
            labels.Add($"{s.GetProperty("case_id").GetString()},{id},{s.GetProperty("label").GetString()}");
        }
        File.WriteAllLines(dir["labels.csv"], labels);
        string[] common = ["zeroshot", "--weights", GoldenPath("clip-mini.pt"), "--prompts", GoldenPath("clip-zeroshot-prompts.json"),
            "--tokenizer", dir["bpe"]];
        var run = Cli.Run([.. common, "--features", dir["features"], "--labels", dir["labels.csv"], "-o", dir["out"]]);
        Assert.True(run.Code == 0, run.Stderr);

        var lines = File.ReadAllLines(dir["out/slide-predictions.csv"]);
        Assert.Equal("slide_id,pooling,predicted," + string.Join(',', classes.Select(c => "p_" + c)), lines[0]);
        var byKey = lines.Skip(1).Select(l => l.Split(',')).ToDictionary(c => (c[0], c[1]));
        var truthByPooling = new Dictionary<string, List<(string Truth, string Predicted)>>();
        foreach (var s in slides)
            foreach (var pooled in s.GetProperty("probabilities").EnumerateObject())
            {
                var p = pooled.Value.EnumerateArray().Select(v => v.GetDouble()).ToArray();
                var cells = byKey[(s.GetProperty("slide_id").GetString()!, pooled.Name)];
                for (int c = 0; c < p.Length; c++) Assert.Equal(p[c], double.Parse(cells[3 + c], CultureInfo.InvariantCulture), 5);
                Assert.Equal(classes[Array.IndexOf(p, p.Max())], cells[2]);
                truthByPooling.TryAdd(pooled.Name, []);
                truthByPooling[pooled.Name].Add((s.GetProperty("label").GetString()!, cells[2]));
            }
        Assert.Equal(6 * 6, lines.Length - 1);   // six slides x (mean + five K)

        // Balanced accuracy from the reference's predictions: the mean over classes of each class's recall.
        var metrics = File.ReadAllLines(dir["out/slide-metrics.csv"]).Skip(1).Select(l => l.Split(',')).ToDictionary(c => c[0]);
        foreach (var (pooling, pairs) in truthByPooling)
        {
            double expected = classes.Average(c => pairs.Count(p => p.Truth == c && p.Predicted == c)
                / (double)pairs.Count(p => p.Truth == c));
            Assert.Equal(expected, double.Parse(metrics[pooling][3], CultureInfo.InvariantCulture), 9);
        }

        // Features of another width, images and --features together, a bad K: one line each.
        Directory.CreateDirectory(dir["wide"]);
        new PatchFeatures("w", new float[3, 32], new long[3, 2], "other", 64, 0.5).Write(dir["wide/w.h5"]);
        var wide = Cli.Run([.. common, "--features", dir["wide"], "-o", dir["out2"]]);
        Assert.Equal(1, wide.Code);
        Assert.Contains("features are 32-d", wide.Stderr);
        Assert.Single(wide.Stderr.Trim().Split('\n'));
        Assert.Equal(2, Cli.Run([.. common, "--features", dir["features"], GoldenPath("clip-zeroshot-0.png"), "-o", dir["out3"]]).Code);
        Assert.Equal(2, Cli.Run([.. common, "--features", dir["features"], "--topk", "0,5", "-o", dir["out4"]]).Code);
    }
}

/// <summary>
/// histo embed --encoder CLIP.pt: the checkpoint's image tower and projection with CLIP's preprocessing, so a patch's
/// features are its image embedding as zero-shot computes it for an image file (the towers' parity is ClipParityTests').
/// </summary>
public class ClipEncoderTests
{
    [Fact]
    public void Cli_EmbedWithAClipCheckpointGivesItsImageEmbeddings()
    {
        using var dir = new TempDir();
        string weights = Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "clip-mini.pt");
        var (code, _, stderr) = Cli.Run("synth", "-o", dir["cohort"], "--slides", "1", "--width", "1024", "--height", "768");
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Cli.Run("tile", dir["cohort/slides"], "--mpp", "2", "--patch-size", "64", "--save-patches", "-o", dir["tiles"]);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Cli.Run("embed", dir["cohort/slides"], "--coords", dir["tiles"], "--encoder", weights, "-o", dir["emb"]);
        Assert.True(code == 0, stderr);
        var features = PatchFeatures.Read(dir["emb/features/slide-001.h5"]);
        Assert.Equal(64, features.Dim);   // the small CLIP's embedding width
        using var model = Histo.VisionLanguage.ClipModel.Load(weights);
        using var normaliser = new Histo.Models.InputNormaliser(Histo.VisionLanguage.ZeroShot.ClipNormalization);
        for (int k = 0; k < Math.Min(3, features.Count); k++)
        {
            var patch = Histo.Imaging.RgbaImage.Load(dir[$"tiles/patches/slide-001/{features.Coords[k, 0]}_{features.Coords[k, 1]}.png"]);
            using var input = Histo.VisionLanguage.ZeroShot.Preprocess(patch, 64, normaliser);
            using var expected = model.EncodeImage(input);
            var e = expected.data<float>().ToArray();
            double worst = e.Select((v, j) => Math.Abs(v - features.Features[k, j])).Max();
            Assert.True(worst < 1e-4 * e.Max(Math.Abs), $"patch {k}: features differ from the image embedding by {worst}");
        }
    }
}
