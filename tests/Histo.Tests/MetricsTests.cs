using System.Text.Json;
using Histo.Evaluation;

namespace Histo.Tests;

/// <summary>Slide metrics against scikit-learn (tools/reference/metrics_reference.py, golden values committed).</summary>
public class MetricsTests
{
    public static TheoryData<int> Cases => new() { 0, 1, 2 };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MetricsMatchScikitLearn(int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "metrics-golden.json")));
        var c = doc.RootElement[index];
        int classes = c.GetProperty("classes").GetInt32();
        var labels = c.GetProperty("labels").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var predicted = c.GetProperty("predicted").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var probabilities = c.GetProperty("probabilities").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        Assert.Equal(c.GetProperty("auc").GetDouble(), SlideMetrics.MacroAuc(probabilities, labels, classes), 10);
        Assert.Equal(c.GetProperty("macro_f1").GetDouble(), SlideMetrics.MacroF1(labels, predicted, classes), 10);
        Assert.Equal(c.GetProperty("quadratic_kappa").GetDouble(), SlideMetrics.QuadraticWeightedKappa(labels, predicted, classes), 10);
        Assert.Equal(c.GetProperty("mae").GetDouble(), SlideMetrics.MeanAbsoluteError(labels, predicted), 10);
        var m = ClassificationMetrics.Compute(labels, predicted, classes);
        Assert.Equal(c.GetProperty("balanced_accuracy").GetDouble(), m.BalancedAccuracy, 10);
        Assert.Equal(c.GetProperty("accuracy").GetDouble(), m.Accuracy, 10);
    }

    [Fact]
    public void AucCountsTiesAsHalfAndRocCurveEndsAtOne()
    {
        Assert.Equal(0.5, SlideMetrics.RocAuc([0.5, 0.5], [true, false]));
        Assert.Equal(1.0, SlideMetrics.RocAuc([0.1, 0.9], [false, true]));
        Assert.True(double.IsNaN(SlideMetrics.RocAuc([0.1, 0.9], [true, true])));
        var curve = SlideMetrics.RocCurve([0.1, 0.4, 0.35, 0.8], [false, false, true, true]);
        Assert.Equal((0.0, 0.0), curve[0]);
        Assert.Equal((1.0, 1.0), curve[^1]);
    }
}
