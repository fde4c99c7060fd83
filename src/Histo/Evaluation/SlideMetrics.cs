namespace Histo.Evaluation;

/// <summary>
/// Slide-level metrics with scikit-learn's definitions: ROC AUC (binary, and macro one-vs-rest), macro F1,
/// balanced accuracy, quadratic weighted kappa and mean absolute error for grades.
/// </summary>
public static class SlideMetrics
{
    /// <summary>
    /// Binary ROC AUC = P(score of a positive &gt; score of a negative), ties counting one half: the
    /// Mann-Whitney statistic with average ranks, equal to scikit-learn's trapezoidal roc_auc_score.
    /// NaN when one class is absent.
    /// </summary>
    public static double RocAuc(IReadOnlyList<double> scores, IReadOnlyList<bool> positive)
    {
        int n = scores.Count, positives = positive.Count(p => p), negatives = n - positives;
        if (positives == 0 || negatives == 0) return double.NaN;
        var ranks = AverageRanks(scores);
        double positiveRankSum = Enumerable.Range(0, n).Where(i => positive[i]).Sum(i => ranks[i]);
        return (positiveRankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }

    /// <summary>1-based ranks of the values, tied values sharing the mean of their ranks.</summary>
    public static double[] AverageRanks(IReadOnlyList<double> values)
    {
        int n = values.Count;
        var order = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray();
        var ranks = new double[n];
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && values[order[j + 1]] == values[order[i]]) j++;
            double average = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++) ranks[order[k]] = average;
            i = j + 1;
        }
        return ranks;
    }

    /// <summary>Mean and sample standard deviation (n - 1) of the finite values; (NaN, NaN) when there are none.</summary>
    public static (double Mean, double Std) MeanAndStd(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToList();
        if (v.Count == 0) return (double.NaN, double.NaN);
        double mean = v.Average();
        return (mean, v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : 0);
    }

    /// <summary>Macro one-vs-rest AUC over classes present in the labels (scikit-learn: multi_class='ovr', average='macro').</summary>
    public static double MacroAuc(double[][] probabilities, IReadOnlyList<int> labels, int classes)
    {
        if (classes == 2) return RocAuc(probabilities.Select(p => p[1]).ToList(), labels.Select(l => l == 1).ToList());
        var aucs = Enumerable.Range(0, classes)
            .Select(c => RocAuc(probabilities.Select(p => p[c]).ToList(), labels.Select(l => l == c).ToList()))
            .Where(a => !double.IsNaN(a)).ToList();
        return aucs.Count == 0 ? double.NaN : aucs.Average();
    }

    /// <summary>ROC curve points (false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1).</summary>
    public static List<(double Fpr, double Tpr)> RocCurve(IReadOnlyList<double> scores, IReadOnlyList<bool> positive)
    {
        int positives = positive.Count(p => p), negatives = positive.Count - positives;
        var points = new List<(double, double)> { (0, 0) };
        if (positives == 0 || negatives == 0) return points;
        int tp = 0, fp = 0;
        var order = Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ToArray();
        for (int k = 0; k < order.Length; k++)
        {
            if (positive[order[k]]) tp++; else fp++;
            if (k + 1 == order.Length || scores[order[k + 1]] != scores[order[k]])
                points.Add((fp / (double)negatives, tp / (double)positives));
        }
        return points;
    }

    /// <summary>Unweighted mean of per-class F1 over the classes that occur in truth or prediction (scikit-learn's average='macro').</summary>
    public static double MacroF1(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classes)
    {
        var f1 = new List<double>();
        for (int c = 0; c < classes; c++)
        {
            int tp = 0, fp = 0, fn = 0;
            for (int i = 0; i < truth.Count; i++)
            {
                if (predicted[i] == c && truth[i] == c) tp++;
                else if (predicted[i] == c) fp++;
                else if (truth[i] == c) fn++;
            }
            if (tp + fp + fn == 0) continue;
            f1.Add(2.0 * tp / (2 * tp + fp + fn));
        }
        return f1.Count == 0 ? double.NaN : f1.Average();
    }

    /// <summary>Cohen's kappa with quadratic weights w_ij = (i - j)^2 / (K - 1)^2 (the PANDA convention).</summary>
    public static double QuadraticWeightedKappa(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classes)
    {
        int n = truth.Count;
        var observed = new double[classes, classes];
        var rowTotals = new double[classes];
        var columnTotals = new double[classes];
        for (int i = 0; i < n; i++) { observed[truth[i], predicted[i]]++; rowTotals[truth[i]]++; columnTotals[predicted[i]]++; }
        double numerator = 0, denominator = 0;
        for (int i = 0; i < classes; i++)
            for (int j = 0; j < classes; j++)
            {
                double w = (i - j) * (double)(i - j) / ((classes - 1.0) * (classes - 1.0));
                numerator += w * observed[i, j];
                denominator += w * rowTotals[i] * columnTotals[j] / n;
            }
        return denominator == 0 ? double.NaN : 1 - numerator / denominator;
    }

    public static double MeanAbsoluteError(IReadOnlyList<int> truth, IReadOnlyList<int> predicted) =>
        truth.Count == 0 ? double.NaN : truth.Zip(predicted).Average(p => Math.Abs(p.First - p.Second));
}
