using static Histo.Models.KeptScalars;
using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>Cosine similarity s(u, v) = u.v / (|u| |v|) and cosine distance 1 - s, the measures of kNN and few-shot.</summary>
public static class Cosine
{
    public static double Similarity(ReadOnlySpan<float> u, ReadOnlySpan<float> v)
    {
        if (u.Length != v.Length) throw new ArgumentException($"vectors of {u.Length} and {v.Length} values");
        double dot = 0, uu = 0, vv = 0;
        for (int i = 0; i < u.Length; i++) { dot += (double)u[i] * v[i]; uu += (double)u[i] * u[i]; vv += (double)v[i] * v[i]; }
        return dot / Math.Sqrt(uu * vv);
    }

    public static double Distance(ReadOnlySpan<float> u, ReadOnlySpan<float> v) => 1 - Similarity(u, v);

    /// <summary>The similarity of every row of <paramref name="a"/> [N, D] with every row of <paramref name="b"/> [M, D], [N, M].</summary>
    public static Tensor Similarities(Tensor a, Tensor b) =>
        nn.functional.normalize(a, p: 2, dim: 1).matmul(nn.functional.normalize(b, p: 2, dim: 1).t());
}

/// <summary>
/// Feature normalisations for frozen-feature evaluation, with statistics from the training (support) features applied to
/// both sets, so nothing of the test set leaks in: min-max to [0, 1]; z-score; log10(x) / log10(max) for x &gt;= 1; atan(x)
/// 2 / pi; L2 per sample; and centre-l2 (SimpleShot's CL2N, UNI's: subtract the training mean, then L2).
/// </summary>
public static class FeatureNormalisation
{
    public static readonly string[] Kinds = ["none", "l2", "zscore", "minmax", "log", "atan", "centre-l2"];

    public static (Tensor Train, Tensor Test) Apply(string kind, Tensor train, Tensor test)
    {
        using var scope = NewDisposeScope();
        Tensor Keep(Tensor t) => t.MoveToOuterDisposeScope();
        switch (kind)
        {
            case "none": return (Keep(train.clone()), Keep(test.clone()));
            case "l2": return (Keep(L2(train)), Keep(L2(test)));
            case "atan": return (Keep(train.atan().mul(Of(2 / Math.PI))), Keep(test.atan().mul(Of(2 / Math.PI))));
            case "zscore":
            {
                var mean = train.mean([0], keepdim: true);
                var std = train.std(0, unbiased: false, keepdim: true).clamp_min(Of(1e-12));
                return (Keep(train.sub(mean).div(std)), Keep(test.sub(mean).div(std)));
            }
            case "minmax":
            {
                var min = train.amin([0], keepdim: true);
                var range = train.amax([0], keepdim: true).sub(min).clamp_min(Of(1e-12));
                return (Keep(train.sub(min).div(range)), Keep(test.sub(min).div(range)));
            }
            case "log":
            {
                if (train.lt(One).any().item<bool>() || test.lt(One).any().item<bool>())
                    throw new HistoException("--normalise log needs features >= 1 (log10(x) / log10(max)); choose another");
                var max = train.amax([0], keepdim: true).log10().clamp_min(Of(1e-12));
                return (Keep(train.log10().div(max)), Keep(test.log10().div(max)));
            }
            case "centre-l2":
            {
                var mean = train.mean([0], keepdim: true);
                return (Keep(L2(train.sub(mean))), Keep(L2(test.sub(mean))));
            }
            default: throw new UsageException($"--normalise '{kind}': choose one of {string.Join(", ", Kinds)}");
        }
    }

    static Tensor L2(Tensor x) => nn.functional.normalize(x, p: 2, dim: 1);
}

/// <summary>Accuracy and balanced accuracy of one shot count over the episodes: means and 95% confidence half-widths.</summary>
public sealed record FewShotResult(int Shots, int Episodes, double Accuracy, double AccuracyInterval, double BalancedAccuracy,
    double BalancedAccuracyInterval);

/// <summary>
/// Few-shot classification of frozen features by class prototypes, SimpleShot (Wang et al. 2019) / ProtoNet (Snell et al.
/// 2017) as UNI evaluates it: per episode, k support features per class drawn from the training set, features normalised
/// with the support's statistics (default centre-l2), each class's prototype the mean of its support, every test feature
/// assigned to the nearest prototype (Euclidean); the mean over episodes with its 95% interval (1.96 standard errors).
/// Episodes are drawn by SplitMix64 so a NumPy reference draws the same ones (tools/reference/fewshot_reference.py).
/// </summary>
public static class FewShot
{
    public static readonly int[] DefaultShots = [1, 2, 4, 8, 16];
    public const int DefaultEpisodes = 100;

    public static IReadOnlyList<FewShotResult> Evaluate(float[,] train, int[] trainLabels, float[,] test, int[] testLabels, int classes,
        IReadOnlyList<int> shots, int episodes, string normalise, ulong seed)
    {
        if (episodes < 1) throw new UsageException($"--episodes must be at least 1 (got {episodes})");
        var byClass = Enumerable.Range(0, classes).Select(c => Enumerable.Range(0, trainLabels.Length).Where(i => trainLabels[i] == c)
            .ToArray()).ToArray();
        var results = new List<FewShotResult>();
        // Float64: distances to prototypes decide the predictions, and near-ties should not depend on float32 rounding.
        using var trainAll = tensor(train).to_type(ScalarType.Float64);
        using var testAll = tensor(test).to_type(ScalarType.Float64);
        foreach (int k in shots)
        {
            if (k < 1) throw new UsageException($"--shots takes positive counts (got {k})");
            int fewest = byClass.Min(c => c.Length);
            if (k > fewest)
                throw new HistoException($"{k}-shot needs {k} training samples of every class; the smallest class has {fewest}");
            var accuracy = new double[episodes];
            var balanced = new double[episodes];
            for (int e = 0; e < episodes; e++)
            {
                using var scope = NewDisposeScope();
                var support = Enumerable.Range(0, classes).SelectMany(c => Draw(byClass[c], k, seed, e, c)).ToArray();
                var (s, q) = FeatureNormalisation.Apply(normalise, trainAll.index_select(0, tensor(support.Select(i => (long)i).ToArray())),
                    testAll);
                var prototypes = s.reshape(classes, k, -1).mean([1]);
                var predicted = cdist(q, prototypes).argmin(1).data<long>().ToArray().Select(p => (int)p).ToList();
                var m = ClassificationMetrics.Compute(testLabels, predicted, classes);
                (accuracy[e], balanced[e]) = (m.Accuracy, m.BalancedAccuracy);
            }
            results.Add(new FewShotResult(k, episodes, accuracy.Average(), Interval(accuracy), balanced.Average(), Interval(balanced)));
        }
        return results;
    }

    static double Interval(double[] values)
    {
        if (values.Length < 2) return double.NaN;
        double mean = values.Average(), variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1);
        return 1.96 * Math.Sqrt(variance / values.Length);
    }

    /// <summary>k of <paramref name="pool"/> without replacement: a partial Fisher-Yates shuffle driven by SplitMix64 seeded from
    /// (seed, episode, class).</summary>
    public static int[] Draw(int[] pool, int k, ulong seed, int episode, int cls)
    {
        var items = (int[])pool.Clone();
        ulong state = unchecked(seed * 0x9E3779B97F4A7C15UL + (ulong)episode * 0xBF58476D1CE4E5B9UL + (ulong)cls * 0x94D049BB133111EBUL);
        for (int i = 0; i < k; i++)
        {
            int j = i + (int)(SplitMix64(ref state) % (ulong)(items.Length - i));
            (items[i], items[j]) = (items[j], items[i]);
        }
        return items[..k];
    }

    static ulong SplitMix64(ref ulong state)
    {
        unchecked
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
