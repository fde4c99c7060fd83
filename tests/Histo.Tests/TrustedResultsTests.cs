using System.Globalization;
using Histo.IO;
using Histo.Mil;
using Histo.Pipeline;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// The issue "Results users can trust": one test named for each defect, each checked against figures worked out
/// by hand or by an independent recomputation, not against the expression the code evaluates.
/// </summary>
[Collection(TorchRandomCollection.Name)]
public class TrustedResultsTests(ToyBagsFixture toy) : IClassFixture<ToyBagsFixture>
{
    // 1. The class-balanced loss was a no-op for softmax: cross_entropy(weight: w) on one bag divides by w again.
    [Fact]
    public void ClassBalancedLossIsNotANoOpForSoftmax()
    {
        // Bags of a hand-built 2-class model (logits = mean of the bag): two of class 0, one of class 1.
        using var model = MilRegistry.Create("mean", 2, 2);
        using (no_grad())
        {
            var sd = model.state_dict();
            foreach (var t in sd.Values) t.zero_();
            sd["fc.0.weight"][0, 0] = tensor(1f);
            sd["fc.0.weight"][1, 1] = tensor(1f);
            sd["classifier.weight"][0, 0] = tensor(1f);
            sd["classifier.weight"][1, 1] = tensor(1f);
        }
        using var head = MilHead.Create(HeadKind.Softmax, 2);
        using var dir = new TempDir();
        MilBag Bag(string id, int label, float[] row)
        {
            new PatchFeatures(id, new float[,] { { row[0], row[1] }, { row[0], row[1] } }, new long[2, 2], "toy", 224,
                0.5).Write(dir[id + ".h5"]);
            return new MilBag(id, id, label, dir[id + ".h5"]);
        }
        var bags = new[] { Bag("a", 0, [2, 0]), Bag("b", 0, [1, 0]), Bag("c", 1, [3, 0]) };
        // Cross-entropies by hand: -log softmax(logits)[label].
        double Ce(double l0, double l1, int y) => Math.Log(Math.Exp(l0) + Math.Exp(l1)) - (y == 0 ? l0 : l1);
        double la = Ce(2, 0, 0), lb = Ce(1, 0, 0), lc = Ce(3, 0, 1);
        // Class weights n / (K n_c) with n = 3, K = 2: 3/4 for class 0, 3/2 for class 1.
        var weights = MilTraining.ClassWeights([0, 0, 1], 2);
        Assert.Equal([0.75, 1.5], weights);
        using var w = tensor(weights.Select(x => (float)x).ToArray());
        double balanced = (0.75 * la + 0.75 * lb + 1.5 * lc) / (0.75 + 0.75 + 1.5);
        Assert.Equal(balanced, MilTraining.Evaluate(model, head, bags, w).Loss, 5);
        Assert.NotEqual((la + lb + lc) / 3, MilTraining.Evaluate(model, head, bags, w).Loss, 3);
        // Off: every bag weighs 1, the plain mean.
        Assert.Equal((la + lb + lc) / 3, MilTraining.Evaluate(model, head, bags).Loss, 5);
        Assert.Equal([1.0, 1.0], MilTraining.ClassWeights([0, 0, 1], 2, balance: false));

        // In training, a bag's step is scaled by its class weight for every head: with ClassBalance on and off the
        // same seed gives different trajectories on an imbalanced cohort, and "off" is reproducible.
        // 10 slides of a, 10 of b, 3 of c.
        File.WriteAllLines(dir["imbalanced.csv"], File.ReadAllLines(toy.Labels).Where((l, i) => i == 0 || !l.EndsWith(",c,2")
            || (i - 1) / 3 % 4 == 0));
        var data = MilDataset.Load(dir["imbalanced.csv"], toy.Features, MilTask.Subtype);
        Assert.Equal(3, data.Bags.Count(b => b.Label == 2));
        var options = new MilTrainingOptions { Folds = 3, MaxEpochs = 2, MinEpochs = 2, Seed = 2 };
        MilTraining.Run(data, options, dir["on"]);
        MilTraining.Run(data, options with { ClassBalance = false }, dir["off"]);
        Assert.NotEqual(File.ReadAllText(dir["on/fold_0/history.csv"]), File.ReadAllText(dir["off/fold_0/history.csv"]));
    }

    // 3. CLAM-SB's instance branches are per class: no ordinal heads, and subtyping follows the number of classes.
    [Theory]
    [InlineData(HeadKind.Coral)]
    [InlineData(HeadKind.Corn)]
    public void ClamSbRefusesOrdinalHeads(HeadKind head)
    {
        var options = new MilTrainingOptions { Model = "clam-sb", Task = MilTask.Grade, Head = head };
        var error = Assert.Throws<UsageException>(options.Validate);
        Assert.Contains("clam-sb", error.Message);
        Assert.Contains("--head softmax", error.Message);
        (options with { Head = HeadKind.Softmax }).Validate();
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(3, true)]
    public void ClamSbSubtypingFollowsTheTask(int classes, bool subtyping)
    {
        manual_seed(5);
        using var model = MilRegistry.Create("clam-sb", 16, classes);
        Assert.Equal(subtyping, ((ClamSb)model).Subtyping);
        // Out-of-class branches are trained only when subtyping: for a class-1 bag, branch 0 gets a gradient
        // from the instance loss only with subtyping on.
        model.train();
        using var bag = randn(40, 16);
        using var output = model.Forward(bag, label: 1);
        output.AuxiliaryLoss!.backward();
        var grad = model.named_parameters().First(p => p.name == "instance_classifiers.0.weight").parameter.grad;
        bool trained = grad is not null && grad.abs().sum().item<float>() > 0;
        Assert.Equal(subtyping, trained);
    }

    // 4. The threshold is the 95% quantile of all folds' validation energies pooled, not the mean of per-fold maxima.
    [Fact]
    public void EnergyThresholdIsThe95PercentQuantileOfValidationEnergiesPooledOverFolds()
    {
        using var dir = new TempDir();
        var w = new float[,] { { -1, 0 }, { 0, -1 } };
        float[] b = [2, 2];
        string run = HandBuiltRun.Write(dir["run"], "softmax", ["a", "b"], 2,
            new HandBuiltRun.Fold(w, b, [-3.0, -2.5, -2.0, -1.0]), new HandBuiltRun.Fold(w, b, [-2.8, -2.2, -1.5, -0.5]));
        // numpy.quantile([-3, -2.8, -2.5, -2.2, -2, -1.5, -1, -0.5], 0.95): position 7 * 0.95 = 6.65, so
        // -1 + 0.65 * (-0.5 - -1) = -0.675. (The per-fold maxima averaged would be -0.75.)
        using var trained = TrainedRun.Load(run);
        Assert.Equal(-0.675, trained.EnergyThreshold, 9);
        Assert.Equal(-0.675, EnergyThreshold.Quantile([-3.0, -2.5, -2.0, -1.0, -2.8, -2.2, -1.5, -0.5], 0.95), 12);
        Assert.Equal(20.95, EnergyThreshold.Quantile(Enumerable.Range(1, 22).Select(i => (double)i), 0.95), 12);
        Assert.Equal(1.95, EnergyThreshold.Quantile([2.0, 1.0], 0.95), 12);
        // A bag with mean [2, 2] has logits [0, 0] and energy -log 2 = -0.693: in distribution under the pooled
        // threshold (-0.675), flagged under the old mean of per-fold maxima (-0.75).
        using var borderline = HandBuiltRun.Bag([2, 2]);
        var p = trained.Predict("borderline", borderline);
        Assert.Equal(-Math.Log(2), p.Energy, 5);
        Assert.True(p.OutOfDistribution == false);
    }

    [Fact]
    public void TrainedRunThresholdPoolsEachFoldsOwnValidationEnergies()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        using var dir = new TempDir();
        MilTraining.Run(data, new MilTrainingOptions { Folds = 3, MaxEpochs = 4, MinEpochs = 4, Seed = 3 }, dir.Path);
        // Recompute every validation slide's energy with its own fold's model, pool, and take numpy's linear quantile.
        var byId = data.Bags.ToDictionary(b => b.SlideId);
        var energies = new List<double>();
        foreach (var fold in CaseSplits.Read(dir["splits"], data.Bags))
        {
            using var own = TrainedRun.Load(dir.Path, fold.Index);
            energies.AddRange(fold.Val.Select(s => own.Predict(s, BagLoader.Load(byId[s])).Energy));
        }
        var sorted = energies.Order().ToArray();
        double h = (sorted.Length - 1) * 0.95;
        double expected = sorted[(int)h] + (h - (int)h) * (sorted[Math.Min((int)h + 1, sorted.Length - 1)] - sorted[(int)h]);
        using var all = TrainedRun.Load(dir.Path);
        Assert.Equal(expected, all.EnergyThreshold, 4);
        Assert.True(sorted.Length >= 6, $"{sorted.Length} validation slides");
    }

    // 4 and 5. Ordinal heads: no energy (NaN, empty flag), and the fold ensemble decides by counting mean P(y > k) > 0.5.
    [Fact]
    public void PredictUsesTheOrdinalCountRuleOnTheFoldMeanOfExceedances()
    {
        using var dir = new TempDir();
        // CORAL, 4 grades: score s = 0 (W = 0, b = 0), so P(y > k) = sigmoid(b_k) = the numbers below.
        float Logit(double p) => (float)Math.Log(p / (1 - p));
        var zero = new float[1, 2];
        string run = HandBuiltRun.Write(dir["run"], "coral", ["0", "1", "2", "3"], 2,
            new HandBuiltRun.Fold(zero, [0], [], [Logit(0.9), Logit(0.6), Logit(0.1)]),
            new HandBuiltRun.Fold(zero, [0], [], [Logit(0.7), Logit(0.3), Logit(0.05)]));
        using var trained = TrainedRun.Load(run);
        using var bag = HandBuiltRun.Bag([1, 1]);
        var p = trained.Predict("s", bag);
        // Mean P(y > k) = [0.8, 0.45, 0.075]: one above 0.5, grade 1 (as cross-validation decides each fold).
        // Class probabilities by differences: [0.2, 0.35, 0.375, 0.075], whose argmax (grade 2) is not the rule.
        Assert.Equal("1", p.Predicted);
        double[] expected = [0.2, 0.35, 0.375, 0.075];
        for (int k = 0; k < 4; k++) Assert.Equal(expected[k], p.Probabilities[k], 5);
        // Each fold alone: fold 0 has [0.9, 0.6, 0.1] -> grade 2; fold 1 has [0.7, 0.3, 0.05] -> grade 1.
        using (var first = TrainedRun.Load(run, 0)) Assert.Equal("2", first.Predict("s", bag).Predicted);
        using (var second = TrainedRun.Load(run, 1)) Assert.Equal("1", second.Predict("s", bag).Predicted);
        // No energy for an ordinal head: NaN, no flag, and predictions.csv says so with an empty flag.
        Assert.True(double.IsNaN(p.Energy));
        Assert.Null((object?)p.OutOfDistribution);
        new PatchFeatures("s", new float[,] { { 1, 1 }, { 1, 1 } }, new long[2, 2], "toy", 224, 0.5).Write(dir["features/s.h5"]);
        PredictionJob.Predict(run, [dir["features/s.h5"]], dir.Path);
        Assert.Equal("s,1,0.2,0.35,0.375,0.075,NaN,", File.ReadAllLines(dir["predictions.csv"])[1]);
    }

    [Theory]
    [InlineData(HeadKind.Coral)]
    [InlineData(HeadKind.Corn)]
    public void OrdinalHeadsReportNoEnergyAndNoFlag(HeadKind kind)
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Grade);
        using var dir = new TempDir();
        MilTraining.Run(data, new MilTrainingOptions { Task = MilTask.Grade, Head = kind, Folds = 3, MaxEpochs = 2, MinEpochs = 2 },
            dir["run"]);
        Assert.All(File.ReadAllLines(dir["run/fold_0/predictions.csv"]).Skip(1), l => Assert.EndsWith(",NaN", l));
        var predictions = PredictionJob.Predict(dir["run"], [toy.Features], dir["pred"]);
        Assert.All(predictions, p => Assert.True(double.IsNaN(p.Energy) && p.OutOfDistribution is null));
        Assert.All(File.ReadAllLines(dir["pred/predictions.csv"]).Skip(1), l => Assert.EndsWith(",NaN,", l));
    }

    // 5. One fold's model predicts in `histo predict` exactly what it predicted in cross-validation.
    [Fact]
    public void PredictOfOneFoldReproducesItsCrossValidationPredictions()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Grade);
        using var dir = new TempDir();
        MilTraining.Run(data, new MilTrainingOptions { Task = MilTask.Grade, Head = HeadKind.Corn, Folds = 3, MaxEpochs = 3,
            MinEpochs = 3, Seed = 1 }, dir.Path);
        var byId = data.Bags.ToDictionary(b => b.SlideId);
        for (int f = 0; f < 3; f++)
        {
            using var fold = TrainedRun.Load(dir.Path, f);
            foreach (var row in File.ReadAllLines(dir[$"fold_{f}/predictions.csv"]).Skip(1).Select(l => l.Split(',')))
                Assert.Equal(row[3], fold.Predict(row[0], BagLoader.Load(byId[row[0]])).Predicted);
        }
    }

    // 9. Bags are read from their .h5 files as training asks for them, and the cache holds no more than its budget: a
    // cohort larger than memory trains in bounded memory (MilDataset used to keep every bag for the whole run).
    [Fact]
    public void CohortBagsAreReadLazilyWithinABoundedCache()
    {
        using var dir = new TempDir();
        var expected = new List<float[,]>();
        var bags = new List<MilBag>();
        for (int i = 0; i < 6; i++)
        {
            var f = new float[10, 4];   // 160 bytes a bag
            for (int r = 0; r < 10; r++)
                for (int c = 0; c < 4; c++) f[r, c] = i * 100 + r * 4 + c;
            new PatchFeatures($"s{i}", f, new long[10, 2], "toy", 224, 0.5).Write(dir[$"s{i}.h5"]);
            expected.Add(f);
            bags.Add(new MilBag($"s{i}", $"s{i}", 0, dir[$"s{i}.h5"]));
        }
        using var cache = new BagLoader(2 * 160);
        var order = new[] { 3, 0, 5, 1, 4, 2 };
        for (int pass = 0; pass < 2; pass++)
            foreach (var (bag, features) in cache.Stream(order.Select(i => bags[i]).ToList()))
            {
                int i = int.Parse(bag.SlideId[1..]);
                Assert.Equal(new long[] { 10, 4 }, features.shape);
                Assert.Equal(expected[i][9, 3], features[9, 3].item<float>());
                Assert.Equal(expected[i][0, 1], features[0, 1].item<float>());
                Assert.True(cache.CachedBytes <= 2 * 160, $"{cache.CachedBytes} bytes cached, budget 320");
            }
        // Two of six bags fit: a cyclic order of six misses every time (12 reads); the last two bags are still cached.
        Assert.Equal(12, cache.Reads);
        Assert.Equal(2 * 160, cache.CachedBytes);
        // A cache that holds the cohort reads each file once however many epochs run, as keeping every bag did.
        using var all = new BagLoader(long.MaxValue);
        for (int pass = 0; pass < 3; pass++) foreach (var _ in all.Stream(bags)) { }
        Assert.Equal(6, all.Reads);
        // No cache: every use is a read; the bag being used stays valid though it alone exceeds the budget.
        using var none = new BagLoader(0);
        foreach (var (bag, features) in none.Stream(bags)) Assert.Equal(expected[int.Parse(bag.SlideId[1..])][5, 2],
            features[5, 2].item<float>());
        Assert.Equal(6, none.Reads);
        // A bad file is reported when its bag comes up, naming it, though the reader read it ahead on its thread.
        var nan = (float[,])expected[0].Clone();
        nan[7, 1] = float.NaN;
        new PatchFeatures("bad", nan, new long[10, 2], "toy", 224, 0.5).Write(dir["bad.h5"]);
        using var loader = new BagLoader(0);
        var seen = new List<string>();
        var error = Assert.Throws<HistoException>(() =>
        {
            foreach (var (bag, _) in loader.Stream([bags[0], bags[1], new MilBag("bad", "bad", 0, dir["bad.h5"])])) seen.Add(bag.SlideId);
        });
        Assert.Equal(["s0", "s1"], seen);
        Assert.Contains("bad.h5: feature 1 of patch 7 is NaN", error.Message);
    }

    // 9. The cache changes speed, never results: a run that re-reads every bag equals one that keeps them all.
    [Fact]
    public void TrainingResultsDoNotDependOnTheBagCache()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        using var dir = new TempDir();
        var options = new MilTrainingOptions { Folds = 3, MaxEpochs = 2, MinEpochs = 2, Seed = 4 };
        MilTraining.Run(data, options with { BagCacheBytes = 0 }, dir["uncached"]);
        MilTraining.Run(data, options with { BagCacheBytes = long.MaxValue }, dir["cached"]);
        for (int f = 0; f < 3; f++)
            Assert.Equal(File.ReadAllText(dir[$"cached/fold_{f}/predictions.csv"]),
                File.ReadAllText(dir[$"uncached/fold_{f}/predictions.csv"]));
        // The cache size is not a setting: rerunning the finished run with another one is accepted (its folds are kept).
        MilTraining.Run(data, options with { BagCacheBytes = 12345 }, dir["cached"]);
    }

    // 10. ABMIL streams a bag larger than one chunk: the running softmax and the chunk-by-chunk recomputation in Backward
    // give the logits, attention and every parameter's gradient of one autograd graph over the whole bag.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StreamedAbmilMatchesOneGraphOverTheBag(bool gated)
    {
        manual_seed(11);
        using var bag = randn(30, 6) * 2;
        using var whole = new AttentionMil(6, 3, gated, hidden: 8, attentionDim: 5, dropout: 0);
        using var streamed = new AttentionMil(6, 3, gated, hidden: 8, attentionDim: 5, dropout: 0, chunk: 7);
        using (no_grad())
            foreach (var (name, t) in streamed.state_dict()) t.copy_(whole.state_dict()[name]);
        var grads = new List<Dictionary<string, Tensor>>();
        var outputs = new List<(Tensor Logits, Tensor Attention)>();
        foreach (var model in new[] { whole, streamed })
        {
            model.train();
            var output = model.Forward(bag, 1);
            var loss = nn.functional.cross_entropy(output.Logits.unsqueeze(0), tensor(new long[] { 1 }));
            model.Backward(loss);
            outputs.Add((output.Logits.detach(), output.InstanceScores!.detach()));
            grads.Add(model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
        }
        Assert.True(outputs[0].Logits.allclose(outputs[1].Logits, rtol: 1e-5, atol: 1e-6));
        Assert.True(outputs[0].Attention.allclose(outputs[1].Attention, rtol: 1e-5, atol: 1e-7));
        Assert.Equal(gated ? 10 : 8, grads[0].Count);
        foreach (var (name, g) in grads[0])
            Assert.True(g.allclose(grads[1][name], rtol: 1e-4, atol: 1e-6), $"{name}: {(g - grads[1][name]).abs().max().item<float>()}");
        // Scoring (no graph) streams too and agrees.
        whole.eval();
        streamed.eval();
        using (no_grad())
            Assert.True(whole.Forward(bag).Logits.allclose(streamed.Forward(bag).Logits, rtol: 1e-5, atol: 1e-6));
    }

    // 10. With dropout, the chunks recomputed in Backward draw the masks of the forward pass: the gradient matches central
    // finite differences of the loss (float64; each evaluation reseeded, so it sees the same masks).
    [Fact]
    public void StreamedAbmilBackwardRecomputesTheForwardDropoutMasks()
    {
        manual_seed(12);
        using var bag = randn(25, 4, dtype: ScalarType.Float64);
        using var model = new AttentionMil(4, 2, gated: true, hidden: 6, attentionDim: 3, dropout: 0.5, chunk: 6);
        model.to(float64);
        model.train();
        double Loss()
        {
            manual_seed(99);
            using var _ = no_grad();
            using var output = model.Forward(bag, 0);
            return nn.functional.cross_entropy(output.Logits.unsqueeze(0), tensor(new long[] { 0 })).item<double>();
        }
        manual_seed(99);
        var withGrad = model.Forward(bag, 0);
        model.Backward(nn.functional.cross_entropy(withGrad.Logits.unsqueeze(0), tensor(new long[] { 0 })));
        var weight = model.named_parameters().Single(p => p.name == "feature.0.weight").parameter;
        var grad = weight.grad!.clone();
        foreach (var (i, j) in new[] { (0, 0), (3, 1), (5, 3) })
        {
            double eps = 1e-6, original;
            using (no_grad()) { original = weight[i, j].item<double>(); weight[i, j] = tensor(original + eps); }
            double plus = Loss();
            using (no_grad()) weight[i, j] = tensor(original - eps);
            double minus = Loss();
            using (no_grad()) weight[i, j] = tensor(original);
            Assert.Equal((plus - minus) / (2 * eps), grad[i, j].item<double>(), 6);
        }
    }

    // 13. The flag against energies worked out by hand: an out-of-distribution bag is flagged, in-distribution ones are not.
    [Fact]
    public void EnergyFlagsAHandBuiltOutOfDistributionBag()
    {
        using var dir = new TempDir();
        // logits = [2, 2] - mean(bag); both folds alike. Pooled validation energies
        // [-2.69, -2.65, -2.5, -2.45, -2.4, -2.3, -2.1, -1.2]: the 95% quantile is -2.1 + 0.65 * 0.9 = -1.515.
        var w = new float[,] { { -1, 0 }, { 0, -1 } };
        float[] b = [2, 2];
        string run = HandBuiltRun.Write(dir["run"], "softmax", ["a", "b"], 2,
            new HandBuiltRun.Fold(w, b, [-2.69, -2.5, -2.4, -1.2]), new HandBuiltRun.Fold(w, b, [-2.65, -2.45, -2.3, -2.1]));
        using var trained = TrainedRun.Load(run);
        Assert.Equal(-1.515, trained.EnergyThreshold, 9);
        double Energy(double l0, double l1) => -Math.Log(Math.Exp(l0) + Math.Exp(l1));
        (float[] Row, double Energy, bool Flag)[] cases =
        [
            ([0, 0], Energy(2, 2), false),        // a typical bag: -2.693
            ([1, 1.3f], Energy(1, 0.7), false),   // -1.554: below the threshold (the old mean of fold maxima, -1.65, flagged it)
            ([3, 3], Energy(-1, -1), true),       // weak logits for every class: +0.307
            ([1, 4], Energy(1, -2), true),        // -1.049
        ];
        foreach (var (row, energy, flag) in cases)
        {
            using var bag = HandBuiltRun.Bag(row);
            var p = trained.Predict("x", bag);
            Assert.Equal(energy, p.Energy, 5);
            Assert.True(p.OutOfDistribution == flag,
                $"bag mean [{string.Join(", ", row)}]: energy {p.Energy:0.000}, threshold {trained.EnergyThreshold:0.000}");
        }
    }
}
