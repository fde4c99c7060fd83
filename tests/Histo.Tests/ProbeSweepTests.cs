using System.Text.Json;
using Histo.Evaluation;

namespace Histo.Tests;

/// <summary>
/// The linear probe's C chosen on a validation split (UNI's protocol) against tools/reference/probe_sweep_reference.py
/// (scikit-learn's LogisticRegression over the same SplitMix64 split and grid): the same chosen C, validation scores within
/// one validation sample, test balanced accuracy and AUC after refitting; the CLI's refusals.
/// </summary>
public class ProbeSweepTests(ToyBagsFixture toy) : IClassFixture<ToyBagsFixture>
{
    static JsonElement Load(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", name)));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void ChoosesTheReferencesC()
    {
        var features = Load("fewshot-golden.json");
        var golden = Load("probe-sweep-golden.json");
        var train = FewShotTests.Matrix(features.GetProperty("train"));
        var trainY = features.GetProperty("train_labels").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        var test = FewShotTests.Matrix(features.GetProperty("test"));
        var testY = features.GetProperty("test_labels").EnumerateArray().Select(v => v.GetInt32()).ToList();
        int classes = features.GetProperty("classes").GetInt32();
        var (c, scores) = Probes.ChooseC(train, trainY, classes, (ulong)golden.GetProperty("seed").GetInt32());
        var expected = golden.GetProperty("validation_balanced_accuracy").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        int validation = golden.GetProperty("validation").GetArrayLength();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - scores[i]) <= 1.0 / validation + 1e-9, $"C {Probes.CGrid[i]}: {scores[i]} vs {expected[i]}");
        Assert.Equal(golden.GetProperty("chosen_c").GetDouble(), c, 12);
        var p = Probes.LogisticRegressionProbabilities(train, trainY, test, classes, c, iterations: 1000);
        var m = ClassificationMetrics.Compute(testY, Probes.ArgMax(p), classes);
        Assert.True(Math.Abs(golden.GetProperty("test_balanced_accuracy").GetDouble() - m.BalancedAccuracy) <= 0.02,
            $"{m.BalancedAccuracy}");
        Assert.True(Math.Abs(golden.GetProperty("test_auc").GetDouble() - SlideMetrics.MacroAuc(p, testY, classes)) <= 0.01);
    }

    [Fact]
    public void Cli_ProbeChoosesCOrTakesOne()
    {
        var (code, stdout, stderr) = Cli.Run("probe", "--train", toy.Features, "--test", toy.Features, "--labels", toy.Labels);
        Assert.True(code == 0, stderr);
        Assert.Contains("chosen C = ", stdout);
        (code, stdout, _) = Cli.Run("probe", "--train", toy.Features, "--test", toy.Features, "--labels", toy.Labels, "--c", "1");
        Assert.Contains("logistic regression (C = 1)", stdout);
        Assert.DoesNotContain("chosen C", stdout);
        Assert.Equal(2, Cli.Run("probe", "--train", toy.Features, "--test", toy.Features, "--labels", toy.Labels, "--c", "0").Code);
    }
}
