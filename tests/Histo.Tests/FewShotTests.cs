using System.Globalization;
using System.Text.Json;
using Histo.Evaluation;
using Histo.IO;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// Few-shot prototypes (SimpleShot/ProtoNet) against tools/reference/fewshot_reference.py (NumPy, SciPy cdist, scikit-learn's
/// balanced accuracy): the same SplitMix64 episodes, every normalisation, means and 95% intervals to 1e-9; the methods
/// reference's cosine example; hand-computed normalisations with training statistics; histo fewshot through the CLI.
/// </summary>
public class FewShotTests
{
    static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "fewshot-golden.json")));
        return doc.RootElement.Clone();
    }

    internal static float[,] Matrix(JsonElement rows)
    {
        var r = rows.EnumerateArray().Select(x => x.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var m = new float[r.Length, r[0].Length];
        for (int i = 0; i < r.Length; i++) for (int j = 0; j < r[i].Length; j++) m[i, j] = r[i][j];
        return m;
    }

    static int[] Labels(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    [Fact]
    public void EpisodesAndScoresMatchTheReference()
    {
        var g = Golden();
        var train = Matrix(g.GetProperty("train"));
        var trainY = Labels(g.GetProperty("train_labels"));
        ulong seed = (ulong)g.GetProperty("seed").GetInt32();
        foreach (var c in g.GetProperty("first_episode_4_shot_support").EnumerateObject())
        {
            var pool = Enumerable.Range(0, trainY.Length).Where(i => trainY[i] == int.Parse(c.Name)).ToArray();
            Assert.Equal(Labels(c.Value), FewShot.Draw(pool, 4, seed, 0, int.Parse(c.Name)));
        }
        var shots = Labels(g.GetProperty("shots"));
        foreach (var kind in g.GetProperty("results").EnumerateObject())
        {
            var results = FewShot.Evaluate(train, trainY, Matrix(g.GetProperty("test")), Labels(g.GetProperty("test_labels")),
                g.GetProperty("classes").GetInt32(), shots, g.GetProperty("episodes").GetInt32(), kind.Name, seed);
            foreach (var r in results)
            {
                var e = kind.Value.GetProperty(r.Shots.ToString(CultureInfo.InvariantCulture));
                Assert.Equal(e.GetProperty("accuracy").GetDouble(), r.Accuracy, 9);
                Assert.Equal(e.GetProperty("accuracy_ci").GetDouble(), r.AccuracyInterval, 9);
                Assert.Equal(e.GetProperty("balanced").GetDouble(), r.BalancedAccuracy, 9);
                Assert.Equal(e.GetProperty("balanced_ci").GetDouble(), r.BalancedAccuracyInterval, 9);
            }
        }
    }

    [Fact]
    public void CosineAndNormalisationsByHand()
    {
        // The methods reference: s([1, 2, 3], [4, 5, 6]) = 32 / sqrt(14 * 77) = 0.9746.
        Assert.Equal(0.9746, Cosine.Similarity([1, 2, 3], [4, 5, 6]), 4);
        Assert.Equal(1 - 32 / Math.Sqrt(14 * 77), Cosine.Distance([1, 2, 3], [4, 5, 6]), 12);
        using var train = tensor(new float[,] { { 1, 10 }, { 3, 100 }, { 5, 1000 } });
        using var test = tensor(new float[,] { { 3, 550 } });
        float[] Test(string kind) => FeatureNormalisation.Apply(kind, train, test).Test.data<float>().ToArray();
        // Min-max with the training range: (3 - 1) / 4, (550 - 10) / 990.
        Assert.Equal(new[] { 0.5f, 540f / 990 }, Test("minmax"));
        // Z-score with the training mean 3 and population std sqrt(8 / 3) in the first column: 0.
        Assert.Equal(0f, Test("zscore")[0], 6);
        // log10(x) / log10(max of training) = log10(550) / 3.
        Assert.Equal((float)(Math.Log10(550) / 3), Test("log")[1], 6);
        Assert.Equal(0.5f, FeatureNormalisation.Apply("atan", tensor(new float[,] { { 1 } }), tensor(new float[,] { { 1 } })).Test
            .item<float>(), 6);
        using var s = tensor(new float[,] { { 0, 0 }, { 2, 0 } });
        using var q = tensor(new float[,] { { 1, 1 }, { 3, 4 } });
        // Centre on the training mean (1, 0), then unit length: (0, 1) and (2, 4) / sqrt(20).
        Assert.Equal(new[] { 0f, 1f, (float)(2 / Math.Sqrt(20)), (float)(4 / Math.Sqrt(20)) },
            FeatureNormalisation.Apply("centre-l2", s, q).Test.data<float>().ToArray());
        Assert.Equal(new[] { (float)(1 / Math.Sqrt(2)), (float)(1 / Math.Sqrt(2)), 0.6f, 0.8f },
            FeatureNormalisation.Apply("l2", s, q).Test.data<float>().ToArray());
    }

    [Fact]
    public void Cli_FewShotOnFeatureFiles()
    {
        var g = Golden();
        using var dir = new TempDir();
        // Each class's training and test samples as one slide's features; the label CSV names the slides' classes.
        Directory.CreateDirectory(dir["train"]);
        Directory.CreateDirectory(dir["test"]);
        var lines = new List<string> { "case_id,slide_id,label" };
        foreach (var (part, x, y) in new[] { ("train", g.GetProperty("train"), g.GetProperty("train_labels")),
                     ("test", g.GetProperty("test"), g.GetProperty("test_labels")) })
        {
            var m = Matrix(x);
            var labels = Labels(y);
            for (int c = 0; c < 3; c++)
            {
                var rows = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();
                var f = new float[rows.Length, m.GetLength(1)];
                for (int i = 0; i < rows.Length; i++) for (int j = 0; j < m.GetLength(1); j++) f[i, j] = m[rows[i], j];
                new PatchFeatures($"{part}-{c}", f, new long[rows.Length, 2], "toy", 64, 0.5).Write(dir[$"{part}/{part}-{c}.h5"]);
                lines.Add($"{part}-{c},{part}-{c},class{c}");
            }
        }
        File.WriteAllLines(dir["labels.csv"], lines);
        var (code, stdout, stderr) = Cli.Run("fewshot", "--train", dir["train"], "--test", dir["test"], "--labels", dir["labels.csv"],
            "--shots", "1,16", "--episodes", "20");
        Assert.True(code == 0, stderr);
        Assert.Contains("16-shot", stdout);
        Assert.Contains("centre-l2", stdout);
        (code, _, _) = Cli.Run("fewshot", "--train", dir["train"], "--test", dir["test"], "--labels", dir["labels.csv"],
            "--normalise", "cubic");
        Assert.Equal(2, code);
        (code, _, stderr) = Cli.Run("fewshot", "--train", dir["train"], "--test", dir["test"], "--labels", dir["labels.csv"],
            "--shots", "64");
        Assert.Equal(1, code);
        Assert.Contains("64-shot needs 64 training samples of every class", stderr);
    }
}
