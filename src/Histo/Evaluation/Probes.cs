using TorchSharp;
using static Histo.Models.KeptScalars;
using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>
/// Frozen-feature evaluations beside kNN: a linear probe (multinomial logistic regression), a generative
/// baseline (Gaussian naive Bayes) and unsupervised k-means with cluster purity.
/// </summary>
public static class Probes
{
    /// <summary>
    /// Multinomial logistic regression with L2 penalty (scikit-learn's default C = 1: loss = mean CE + |W|^2 / (2 C n)),
    /// on z-scored features, fitted full-batch with L-BFGS. Returns test predictions.
    /// </summary>
    public static int[] LogisticRegression(float[,] train, int[] labels, float[,] test, int classes, double c = 1.0,
        int iterations = 200) =>
        ArgMax(LogisticRegressionProbabilities(train, labels, test, classes, c, iterations));

    /// <summary>The linear probe's class probabilities (softmax of its logits) per test row, as predict_proba.</summary>
    public static double[][] LogisticRegressionProbabilities(float[,] train, int[] labels, float[,] test, int classes, double c = 1.0,
        int iterations = 200)
    {
        using var scope = NewDisposeScope();
        var x = tensor(train);
        var mean = x.mean([0], keepdim: true);
        var std = x.std(0, unbiased: false, keepdim: true).clamp_min(Of(1e-6));
        x = (x - mean) / std;
        var y = tensor(labels.Select(l => (long)l).ToArray());
        var w = new TorchSharp.Modules.Parameter(zeros(x.shape[1], classes));
        var b = new TorchSharp.Modules.Parameter(zeros(classes));
        using var optimizer = optim.LBFGS(new[] { w, b }, lr: 1, max_iter: iterations, history_size: 20);
        using Scalar penalty = (1.0 / (2 * c * labels.Length)).ToScalar();
        Tensor Closure()
        {
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(x.matmul(w).add(b, One), y).add(w.pow(Of(2L)).sum().mul(penalty), One);
            loss.backward();
            return loss;
        }
        optimizer.step(Closure);
        using var _ = no_grad();
        var xt = (tensor(test) - mean) / std;
        return Rows(nn.functional.softmax(xt.matmul(w).add(b, One).to_type(ScalarType.Float64), 1));
    }

    /// <summary>The L2 strengths the sweep tries: C = 10^-4 .. 10^4 (inverse strength, as scikit-learn's C).</summary>
    public static readonly double[] CGrid = Enumerable.Range(-4, 9).Select(e => Math.Pow(10, e)).ToArray();

    /// <summary>
    /// The linear probe's C chosen as UNI does: a validation split of 20% of each class (at least one sample) drawn with the
    /// few-shot episodes' SplitMix64 sampler, the probe fitted on the rest for each C of <see cref="CGrid"/>, the C with the
    /// best validation balanced accuracy kept (the smallest among ties). The caller refits on all training data with it.
    /// </summary>
    public static (double C, double[] ValidationBalancedAccuracy) ChooseC(float[,] train, int[] labels, int classes, ulong seed)
    {
        var validation = Enumerable.Range(0, classes).SelectMany(c =>
        {
            var pool = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();
            if (pool.Length < 2) throw new HistoException($"class {c} has {pool.Length} training sample(s); choosing C needs at least 2");
            return FewShot.Draw(pool, Math.Max(1, (int)Math.Round(0.2 * pool.Length, MidpointRounding.ToEven)), seed, 0, c);
        }).ToHashSet();
        var fit = Enumerable.Range(0, labels.Length).Where(i => !validation.Contains(i)).ToArray();
        var held = validation.Order().ToArray();
        float[,] Rows(int[] rows)
        {
            var m = new float[rows.Length, train.GetLength(1)];
            for (int i = 0; i < rows.Length; i++) for (int j = 0; j < train.GetLength(1); j++) m[i, j] = train[rows[i], j];
            return m;
        }
        var (fitX, heldX) = (Rows(fit), Rows(held));
        var fitY = fit.Select(i => labels[i]).ToArray();
        var heldY = held.Select(i => labels[i]).ToList();
        var scores = CGrid.Select(c => ClassificationMetrics.Compute(heldY, LogisticRegression(fitX, fitY, heldX, classes, c,
            iterations: 1000), classes).BalancedAccuracy).ToArray();
        double best = scores.Max();
        return (CGrid[Array.FindIndex(scores, v => v == best)], scores);
    }

    /// <summary>Row-wise argmax, the first maximum on ties.</summary>
    public static int[] ArgMax(double[][] scores) => scores.Select(row =>
    {
        int best = 0;
        for (int c = 1; c < row.Length; c++) if (row[c] > row[best]) best = c;
        return best;
    }).ToArray();

    static double[][] Rows(Tensor matrix)
    {
        int columns = (int)matrix.shape[1];
        var values = matrix.contiguous().data<double>().ToArray();
        return Enumerable.Range(0, (int)matrix.shape[0]).Select(i => values.AsSpan(i * columns, columns).ToArray()).ToArray();
    }

    /// <summary>
    /// Gaussian naive Bayes as scikit-learn's GaussianNB: per-class means and variances, variances smoothed by
    /// 1e-9 times the largest feature variance, class priors from frequencies.
    /// </summary>
    public static int[] GaussianNaiveBayes(float[,] train, int[] labels, float[,] test, int classes) =>
        ArgMax(GaussianNaiveBayesProbabilities(train, labels, test, classes));

    /// <summary>Gaussian naive Bayes posteriors per test row (the joint log likelihoods normalised, as predict_proba).</summary>
    public static double[][] GaussianNaiveBayesProbabilities(float[,] train, int[] labels, float[,] test, int classes)
    {
        using var scope = NewDisposeScope();
        var x = tensor(train).to_type(ScalarType.Float64);
        var y = tensor(labels.Select(l => (long)l).ToArray());
        using Scalar epsilon = (1e-9 * x.var(0, unbiased: false).max().item<double>()).ToScalar();
        var xt = tensor(test).to_type(ScalarType.Float64);
        var scores = new List<Tensor>();
        for (int k = 0; k < classes; k++)
        {
            var rows = x.index_select(0, nonzero(y.eq(Of((long)k))).squeeze(1));
            long n = rows.shape[0];
            if (n == 0) { scores.Add(full(xt.shape[0], Of(double.NegativeInfinity), dtype: ScalarType.Float64)); continue; }
            var mu = rows.mean([0]);
            var variance = rows.var(0, unbiased: false).add(epsilon, One);
            var logLikelihood = variance.mul(Of(2 * Math.PI)).log().sum().mul(Of(-0.5))
                - ((xt - mu).pow(Of(2L)) / variance).sum(1).mul(Of(0.5));
            using Scalar logPrior = Math.Log(n / (double)labels.Length).ToScalar();
            scores.Add(logLikelihood.add(logPrior, One));
        }
        return Rows(nn.functional.softmax(stack(scores, 1), 1));
    }

    /// <summary>k-means (k-means++ seeding, Lloyd iterations) on L2-normalised features; cluster index per row.</summary>
    public static int[] KMeans(float[,] features, int k, int seed, int iterations = 100)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.normalize(tensor(features), p: 2, dim: 1);
        long n = x.shape[0];
        var random = new Random(seed);
        var centres = new List<Tensor> { x[random.Next((int)n)] };
        while (centres.Count < k)
        {
            var d = cdist(x, stack(centres)).pow(Of(2L)).amin([1]);                   // squared distance to the nearest centre
            var p = (d / d.sum()).data<float>().ToArray();
            double u = random.NextDouble(), acc = 0;
            int pick = (int)n - 1;
            for (int i = 0; i < p.Length; i++) { acc += p[i]; if (acc >= u) { pick = i; break; } }
            centres.Add(x[pick]);
        }
        var c = stack(centres);
        Tensor assignment = zeros(n, dtype: ScalarType.Int64);
        for (int it = 0; it < iterations; it++)
        {
            var next = cdist(x, c).argmin(1);
            if (it > 0 && next.equal(assignment).all().item<bool>()) break;
            assignment = next;
            var updated = new List<Tensor>();
            for (int j = 0; j < k; j++)
            {
                var members = nonzero(assignment.eq(Of((long)j))).squeeze(1);
                updated.Add(members.shape[0] == 0 ? c[j] : x.index_select(0, members).mean([0]));
            }
            c = stack(updated);
        }
        return assignment.data<long>().ToArray().Select(v => (int)v).ToArray();
    }

    /// <summary>Purity: each cluster counts its most common true class; the share of rows so counted.</summary>
    public static double ClusterPurity(int[] clusters, int[] labels) =>
        clusters.Zip(labels).GroupBy(p => p.First).Sum(g => g.GroupBy(p => p.Second).Max(h => h.Count())) / (double)labels.Length;
}
