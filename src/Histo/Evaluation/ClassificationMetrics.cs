namespace Histo.Evaluation;

/// <summary>Accuracy, balanced accuracy (mean per-class recall) and the confusion matrix (rows: truth, columns: prediction).</summary>
public sealed record ClassificationMetrics(double Accuracy, double BalancedAccuracy, int[,] Confusion)
{
    public static ClassificationMetrics Compute(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classes)
    {
        if (truth.Count != predicted.Count) throw new ArgumentException("truth and predictions differ in length");
        var confusion = new int[classes, classes];
        for (int i = 0; i < truth.Count; i++) confusion[truth[i], predicted[i]]++;
        double accuracy = truth.Count == 0 ? double.NaN : Enumerable.Range(0, truth.Count).Count(i => truth[i] == predicted[i]) / (double)truth.Count;
        var recalls = new List<double>();
        for (int c = 0; c < classes; c++)
        {
            int support = Enumerable.Range(0, classes).Sum(p => confusion[c, p]);
            if (support > 0) recalls.Add(confusion[c, c] / (double)support); // scikit-learn skips absent classes
        }
        return new ClassificationMetrics(accuracy, recalls.Count == 0 ? double.NaN : recalls.Average(), confusion);
    }
}
