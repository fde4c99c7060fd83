using System.Diagnostics;
using System.Globalization;
using System.Text;
using Histo.Evaluation;
using Histo.IO;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Not speed benchmarks: two experiments on synthetic feature bags that check what training and prediction claim.
/// <c>mil-balance</c>: class-balanced loss on and off on a 4:1 imbalanced cohort, balanced accuracy (each slide
/// predicted once, by the fold that tested it) as mean and std over seeds, for the softmax head on a binary cohort and
/// the CORAL and CORN heads on an imbalanced graded one. <c>mil-ood</c>: the energy flag on shifted cohorts (a
/// subtype never trained on, and a global feature shift standing in for another stain): AUROC of the energy,
/// FPR at 95% TPR, and what the run's own threshold flags.
/// </summary>
/// <remarks>
/// A bag: N ~ U[40, 120] instances of D = 32 features ~ N(0, 1). A class's key instances (a share f ~ U[lo, hi] of
/// the bag) are shifted by mu along the class's own feature axis; the first class (normal, grade 0) has none, so
/// the task is multiple-instance: only a few instances say the class, and with small f and mu some bags are
/// ambiguous, which is where a classifier trained on a 4:1 cohort leans to the majority.
/// </remarks>
static class MilTrustBenchmark
{
    const int Dim = 32;

    sealed record BagSpec(int Label, int Axis, double Share, double Mu, float[]? Offset = null);

    static float[,] MakeBag(BagSpec spec, Random random)
    {
        int n = random.Next(40, 121);
        var f = new float[n, Dim];
        for (int i = 0; i < n; i++)
            for (int d = 0; d < Dim; d++) f[i, d] = (float)Gaussian(random) + (spec.Offset?[d] ?? 0);
        if (spec.Axis >= 0)
        {
            int keys = Math.Max(1, (int)Math.Round(spec.Share * n));
            for (int i = 0; i < keys; i++) f[i, spec.Axis] += (float)spec.Mu;
        }
        return f;
    }

    static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    /// <summary>Writes features/&lt;slide&gt;.h5 and labels.csv (label and grade columns both the class index), one case per
    /// slide.</summary>
    static void WriteCohort(string dir, IReadOnlyList<BagSpec> specs, int seed, string prefix = "s")
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(Path.Combine(dir, "features"));
        var random = new Random(seed);
        var csv = new StringBuilder("case_id,slide_id,label,grade\n");
        for (int i = 0; i < specs.Count; i++)
        {
            string id = $"{prefix}{i:D3}";
            var f = MakeBag(specs[i], random);
            new PatchFeatures(id, f, new long[f.GetLength(0), 2], "synthetic", 224, 0.5).Write(Path.Combine(dir, "features", id + ".h5"));
            csv.Append(CultureInfo.InvariantCulture, $"case-{id},{id},{(char)('a' + specs[i].Label)},{specs[i].Label}\n");
        }
        File.WriteAllText(Path.Combine(dir, "labels.csv"), csv.ToString());
    }

    /// <summary>Key instances: class c &gt; 0 along axis c - 1, shares and shifts from the experiment's difficulty.</summary>
    static List<BagSpec> Specs(int[] counts, double shareLo, double shareHi, double mu, Random random, float[]? offset = null,
        int axisShift = 0)
    {
        var specs = new List<BagSpec>();
        for (int c = 0; c < counts.Length; c++)
            for (int i = 0; i < counts[c]; i++)
                specs.Add(new BagSpec(c, c == 0 ? -1 : c - 1 + axisShift, shareLo + (shareHi - shareLo) * random.NextDouble(), mu * c,
                    offset));
        return specs;
    }

    /// <summary>Balanced accuracy and quadratic kappa of the cross-validated predictions (each slide once, by its test fold).</summary>
    static (double BalancedAccuracy, double Kappa, double MinorityRecall) Pooled(string runDir, IReadOnlyList<string> classes, int folds)
    {
        var truth = new List<int>();
        var predicted = new List<int>();
        for (int f = 0; f < folds; f++)
            foreach (var row in File.ReadAllLines(Path.Combine(runDir, $"fold_{f}", "predictions.csv")).Skip(1).Select(l => l.Split(',')))
            {
                truth.Add(classes.ToList().IndexOf(row[2]));
                predicted.Add(classes.ToList().IndexOf(row[3]));
            }
        var m = ClassificationMetrics.Compute(truth, predicted, classes.Count);
        int minority = classes.Count - 1;
        double recall = Enumerable.Range(0, truth.Count).Count(i => truth[i] == minority
            && predicted[i] == minority) / (double)Math.Max(1, truth.Count(t => t == minority));
        return (m.BalancedAccuracy, SlideMetrics.QuadraticWeightedKappa(truth, predicted, classes.Count), recall);
    }

    /// <summary>
    /// One thread by default: these bags are small, so each step is a few hundred tiny ops, and libtorch's OpenMP
    /// workers spin-wait between them; on a shared 2-core machine two threads made a fold 15x slower (199 s instead
    /// of 13 s for the same run, same results).
    /// </summary>
    public static int Balance(BenchArgs args)
    {
        int threads = (int)args.Number("--threads", 1);
        set_num_threads(threads);
        int seeds = (int)args.Number("--seeds", args.Quick ? 2 : 5);
        int epochs = (int)args.Number("--epochs", args.Quick ? 10 : 30);
        int folds = (int)args.Number("--folds", 5);
        double mu = args.Number("--mu", 3), shareLo = args.Number("--share-lo", 0.03), shareHi = args.Number("--share-hi", 0.2);
        string heads = args.String("--heads") ?? "softmax,coral,corn";
        int majority = (int)args.Number("--majority", 60);
        string work = Path.Combine(BenchEnvironment.WorkDir, "mil-balance");
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"Class balance on a 4:1 cohort: synthetic bags of 40-120 x {Dim}-d N(0,1) instances; a share U[{shareLo}, "
            + $"{shareHi}] of a class-c bag's");
        Console.WriteLine($"instances shifted by {mu} c along axis c-1 (class 0: none). ABMIL, AdamW, {folds}-fold CV by case, at "
            + $"most {epochs} epochs (early stop on");
        Console.WriteLine($"validation loss), {seeds} seeds (cohort and training), {threads} threads. Balanced accuracy of each "
            + $"slide's prediction by its test fold.");
        Console.WriteLine();
        Console.WriteLine("| head | cohort | class balance | balanced accuracy | minority recall | quadratic kappa |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var head in heads.Split(','))
        {
            var kind = Enum.Parse<HeadKind>(head, ignoreCase: true);
            // Softmax: normal vs tumour, 4:1. Ordinal: grades 0, 1, 2 at 4:1:1 (grade 0 four times each other grade).
            int[] counts = kind == HeadKind.Softmax ? [majority, majority / 4] : [majority, majority / 4, majority / 4];
            var results = new Dictionary<bool, List<(double Bacc, double Kappa, double Recall)>> { [true] = [], [false] = [] };
            for (int seed = 0; seed < seeds; seed++)
            {
                string cohort = Path.Combine(work, $"{head}-cohort-{seed}");
                WriteCohort(cohort, Specs(counts, shareLo, shareHi, mu, new Random(1000 + seed)), seed);
                var task = kind == HeadKind.Softmax ? MilTask.Subtype : MilTask.Grade;
                var data = MilDataset.Load(Path.Combine(cohort, "labels.csv"), cohort, task);
                foreach (bool balance in new[] { false, true })
                {
                    string run = Path.Combine(work, $"{head}-run-{seed}-{(balance ? "on" : "off")}");
                    if (Directory.Exists(run)) Directory.Delete(run, true);
                    MilTraining.Run(data, new MilTrainingOptions
                    {
                        Model = "abmil", Task = task, Head = kind, Folds = folds, MaxEpochs = epochs, MinEpochs = Math.Min(10,
                            epochs), Seed = seed, ClassBalance = balance,
                    }, run);
                    results[balance].Add(Pooled(run, data.ClassNames, folds));
                    if (args.String("--verbose") is not null) Console.Error.WriteLine(FormattableString.Invariant($"{head} seed ")
                        + FormattableString.Invariant($"{seed} balance {balance}: {results[balance][^1]} ")
                        + FormattableString.Invariant($"at {clock.Elapsed.TotalSeconds:0} s"));
                }
            }
            foreach (bool balance in new[] { false, true })
            {
                var r = results[balance];
                var (bm, bs) = SlideMetrics.MeanAndStd(r.Select(x => x.Bacc));
                var (rm, rs) = SlideMetrics.MeanAndStd(r.Select(x => x.Recall));
                var (km, ks) = SlideMetrics.MeanAndStd(r.Select(x => x.Kappa));
                Console.WriteLine(FormattableString.Invariant($"| {head} | {string.Join(":", counts)} | {(balance ? "on" : "off")} | ")
                    + FormattableString.Invariant($"{bm:0.000} ± {bs:0.000} | {rm:0.000} ± {rs:0.000} | {km:0.000} ± {ks:0.000} |"));
            }
            var diff = results[true].Zip(results[false], (on, off) => on.Bacc - off.Bacc).ToList();
            var (dm, ds) = SlideMetrics.MeanAndStd(diff);
            Console.WriteLine(FormattableString.Invariant($"|  | paired difference (on - off) | | {dm:+0.000;-0.000} ± {ds:0.000} ")
                + FormattableString.Invariant($"({diff.Count(d => d > 0)} of {diff.Count} seeds better) | | |"));
        }
        Console.WriteLine();
        Console.WriteLine($"(mean ± sample std over seeds; minority = the last class; {clock.Elapsed.TotalMinutes:0.0} minutes)");
        return 0;
    }

    public static int OutOfDistribution(BenchArgs args)
    {
        int threads = (int)args.Number("--threads", 1);
        set_num_threads(threads);
        int epochs = (int)args.Number("--epochs", args.Quick ? 10 : 30);
        int folds = (int)args.Number("--folds", 5), seeds = (int)args.Number("--seeds", args.Quick ? 1 : 3);
        double mu = args.Number("--mu", 3);
        string work = Path.Combine(BenchEnvironment.WorkDir, "mil-ood");
        var clock = Stopwatch.StartNew();
        var shifts = new (string Name, string Dir)[]
        {
            ("subtype never trained on (key instances along a new axis)", "test-unseen"),
            ("another stain: every instance offset, norm 2.8 (0.5 sd per feature)", "test-stain1"),
            ("another stain: every instance offset, norm 8.5 (1.5 sd per feature)", "test-stain3"),
        };
        var rows = shifts.ToDictionary(s => s.Dir, _ => new List<(double Auroc, double Fpr95, double FlaggedOod, double FlaggedId)>());
        var thresholds = new List<double>();
        var accuracies = new List<double>();
        for (int seed = 0; seed < seeds; seed++)
        {
            var random = new Random(7 + seed);
            // In distribution: normal, and two subtypes whose key instances (a share U[0.1, 0.3]) lie along axes 0 and 1.
            string train = Path.Combine(work, $"train-{seed}");
            WriteCohort(train, Specs([30, 30, 30], 0.1, 0.3, mu, random), seed);
            var data = MilDataset.Load(Path.Combine(train, "labels.csv"), train, MilTask.Subtype);
            string run = Path.Combine(work, $"run-{seed}");
            if (Directory.Exists(run)) Directory.Delete(run, true);
            MilTraining.Run(data, new MilTrainingOptions { Model = "abmil", Folds = folds, MaxEpochs = epochs, MinEpochs = Math.Min(10,
                epochs), Seed = seed }, run);

            // Held-out in-distribution slides (new draws of the same three classes) and the shifted cohorts.
            WriteCohort(Path.Combine(work, $"test-id-{seed}"), Specs([20, 20, 20], 0.1, 0.3, mu, random), seed + 100, "id");
            // A subtype never trained on: tumour-like key instances along axis 2 (the label column is unused).
            WriteCohort(Path.Combine(work, $"test-unseen-{seed}"), Specs([0, 30, 30], 0.1, 0.3, mu, random, axisShift: 2), seed + 200,
                "unseen");
            // Another stain: every instance of every class moved by the same offset (a random direction).
            var direction = Enumerable.Range(0, Dim).Select(_ => Gaussian(random)).ToArray();
            double norm = Math.Sqrt(direction.Sum(v => v * v));
            foreach (double sd in new[] { 0.5, 1.5 })
            {
                var offset = direction.Select(v => (float)(v / norm * sd * Math.Sqrt(Dim))).ToArray();
                WriteCohort(Path.Combine(work, $"test-stain{(int)(sd * 2)}-{seed}"), Specs([20, 20, 20], 0.1, 0.3, mu, random, offset),
                    seed + 300, "stain");
            }
            using (var trained = TrainedRun.Load(run)) thresholds.Add(trained.EnergyThreshold);
            List<SlidePrediction> Score(string dir) => Histo.Pipeline.PredictionJob.Predict(run, [Path.Combine(work, dir)],
                Path.Combine(work, dir + "-pred")).ToList();
            var id = Score($"test-id-{seed}");
            var idTruth = File.ReadAllLines(Path.Combine(work, $"test-id-{seed}",
                "labels.csv")).Skip(1).Select(l => l.Split(',')[2]).ToList();
            accuracies.Add(id.Zip(idTruth).Count(p => p.First.Predicted == p.Second) / (double)id.Count);
            // Liu et al.'s FPR95: the energy that keeps 95% of in-distribution test slides (the positives), and the share
            // of OOD slides it still accepts as in distribution.
            double keep95 = EnergyThreshold.Quantile(id.Select(p => p.Energy), 0.95);
            foreach (var (_, dir) in shifts)
            {
                var ood = Score($"{dir}-{seed}");
                var scores = id.Select(p => p.Energy).Concat(ood.Select(p => p.Energy)).ToList();
                var isOod = id.Select(_ => false).Concat(ood.Select(_ => true)).ToList();
                rows[dir].Add((SlideMetrics.RocAuc(scores, isOod), ood.Count(p => p.Energy <= keep95) / (double)ood.Count,
                    ood.Count(p => p.OutOfDistribution == true) / (double)ood.Count,
                    id.Count(p => p.OutOfDistribution == true) / (double)id.Count));
            }
        }
        string Stat(IEnumerable<double> v) { var (m,
            s) = SlideMetrics.MeanAndStd(v); return FormattableString.Invariant($"{m:0.000} ± {s:0.000}"); }
        Console.WriteLine($"Energy out-of-distribution flag (E = -logsumexp(logits), Liu et al. 2020), ABMIL softmax trained on 3 "
            + $"classes x 30 synthetic bags");
        Console.WriteLine($"(40-120 x {Dim}-d N(0,1) instances; a share U[0.1, 0.3] of a class-c bag's instances shifted by {mu} c "
            + $"along axis c-1), {folds}-fold CV, at most");
        Console.WriteLine($"{epochs} epochs, {seeds} seeds. Threshold: 95% quantile (numpy linear) of all folds' validation energies "
            + $"pooled, {Stat(thresholds)}. Energies");
        Console.WriteLine($"from the {folds}-fold ensemble; in distribution: 60 new bags of the trained classes (ensemble accuracy "
            + $"{Stat(accuracies)}).");
        Console.WriteLine();
        Console.WriteLine("| shifted cohort (60 slides) | AUROC (energy, OOD positive) | FPR at 95% TPR | share of OOD flagged by the "
            + "run's threshold | share of in-distribution flagged |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (name, dir) in shifts)
            Console.WriteLine($"| {name} | {Stat(rows[dir].Select(r => r.Auroc))} | {Stat(rows[dir].Select(r => r.Fpr95))} | "
                + $"{Stat(rows[dir].Select(r => r.FlaggedOod))} | {Stat(rows[dir].Select(r => r.FlaggedId))} |");
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant($"(mean ± sample std over seeds; FPR at 95% TPR: share of OOD slides with an ")
            + FormattableString.Invariant($"energy at or below the 95% quantile of the in-distribution test energies; ")
            + FormattableString.Invariant($"{clock.Elapsed.TotalMinutes:0.0} minutes)"));
        return 0;
    }

    /// <summary>
    /// <c>mil-distill</c>: does a MIL student learn more from a teacher's soft targets than from the labels alone? Binary
    /// synthetic cohorts (a share U[lo, hi] of a tumour bag's instances shifted by mu along axis 0), an ABMIL teacher on the
    /// clean features, and two students, each trained on the labels alone and with <c>--distill-from</c> the teacher (alpha
    /// 0.9, T = 4, the teacher's splits): mean pooling on the same features (a smaller model) and ABMIL on weaker
    /// features (every feature plus N(0, sigma^2) noise: a worse encoder). Pooled AUC (each slide by its test fold), mean
    /// and std over seeds.
    /// </summary>
    public static int Distill(BenchArgs args)
    {
        set_num_threads((int)args.Number("--threads", 1)); // see Balance
        int seeds = (int)args.Number("--seeds", args.Quick ? 2 : 5), epochs = (int)args.Number("--epochs", args.Quick ? 10 : 30);
        int folds = (int)args.Number("--folds", 5), perClass = (int)args.Number("--per-class", 50);
        double mu = args.Number("--mu", 2.5), shareLo = args.Number("--share-lo", 0.02), shareHi = args.Number("--share-hi", 0.1);
        double sigma = args.Number("--sigma", 1.0), alpha = args.Number("--alpha", Distillation.SoftTargets.DefaultAlpha);
        string work = Path.Combine(BenchEnvironment.WorkDir, "mil-distill");
        var clock = Stopwatch.StartNew();
        var auc = new Dictionary<string, List<double>>();
        void Add(string row, double value) => (auc.TryGetValue(row, out var l) ? l : auc[row] = []).Add(value);
        for (int seed = 0; seed < seeds; seed++)
        {
            string cohort = Path.Combine(work, $"cohort-{seed}"), noisy = Path.Combine(work, $"noisy-{seed}");
            WriteCohort(cohort, Specs([perClass, perClass], shareLo, shareHi, mu, new Random(2000 + seed)), seed);
            WriteNoisyCopy(cohort, noisy, sigma, seed);
            string labels = Path.Combine(cohort, "labels.csv");
            var clean = MilDataset.Load(labels, cohort, MilTask.Subtype);
            var weak = MilDataset.Load(labels, noisy, MilTask.Subtype);
            var options = new MilTrainingOptions { Folds = folds, MaxEpochs = epochs, MinEpochs = Math.Min(10, epochs), Seed = seed };
            string Run(string name, MilDataset data, MilTrainingOptions o)
            {
                string run = Path.Combine(work, $"{name}-{seed}");
                if (Directory.Exists(run)) Directory.Delete(run, true);
                MilTraining.Run(data, o, run);
                Add(name, PooledAuc(run, folds));
                return run;
            }
            string teacher = Run("teacher abmil, clean features", clean, options);
            var kd = new MilDistillation(teacher, cohort, alpha);
            string splits = Path.Combine(teacher, "splits");
            Run("mean pooling, labels", clean, options with { Model = "mean", SplitsDir = splits });
            Run("mean pooling, distilled", clean, options with { Model = "mean", Distillation = kd });
            Run("abmil on noisy features, labels", weak, options with { SplitsDir = splits });
            Run("abmil on noisy features, distilled", weak, options with { Distillation = kd });
            Console.Error.WriteLine($"seed {seed}: {string.Join(", ", auc.Select(kv => $"{kv.Key} {kv.Value[^1]:0.000}"))} "
                + $"({clock.Elapsed.TotalMinutes:0.0} min)");
        }
        Console.WriteLine(FormattableString.Invariant($"MIL distillation: {2 * perClass} synthetic slides per cohort (key share ")
            + FormattableString.Invariant($"U[{shareLo}, {shareHi}], shift {mu}), {folds}-fold CV, at most {epochs} epochs, ")
            + FormattableString.Invariant($"alpha {alpha}, ")
            + FormattableString.Invariant($"T = {Distillation.SoftTargets.DefaultTemperature}, noise sd {sigma}; {seeds} seeds"));
        Console.WriteLine("| model | pooled AUC (mean ± std) | of teacher |");
        Console.WriteLine("|---|---|---|");
        double teacherMean = auc.First().Value.Average();
        foreach (var (row, values) in auc)
        {
            var (m, sd) = SlideMetrics.MeanAndStd(values);
            Console.WriteLine(FormattableString.Invariant($"| {row} | {m:0.000} ± {sd:0.000} | {m / teacherMean:P1} |"));
        }
        Console.WriteLine($"({clock.Elapsed.TotalMinutes:0.0} minutes)");
        return 0;
    }

    /// <summary>The cohort's features with N(0, sigma^2) added to every value, under the same slide ids and labels.</summary>
    static void WriteNoisyCopy(string cohort, string dir, double sigma, int seed)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(Path.Combine(dir, "features"));
        var random = new Random(5000 + seed);
        foreach (var file in Directory.GetFiles(Path.Combine(cohort, "features"), "*.h5").Order(StringComparer.Ordinal))
        {
            var f = PatchFeatures.Read(file);
            var noisy = (float[,])f.Features.Clone();
            for (int i = 0; i < noisy.GetLength(0); i++)
                for (int d = 0; d < noisy.GetLength(1); d++) noisy[i, d] += (float)(sigma * Gaussian(random));
            (f with { Features = noisy, Encoder = "synthetic-noisy" }).Write(Path.Combine(dir, "features", Path.GetFileName(file)));
        }
    }

    /// <summary>AUC of the second class over every slide, each scored by the fold that tested it.</summary>
    static double PooledAuc(string runDir, int folds)
    {
        var rows = Enumerable.Range(0, folds).SelectMany(f => File.ReadAllLines(Path.Combine(runDir, $"fold_{f}", "predictions.csv"))
            .Skip(1)).Select(l => l.Split(',')).ToList();
        return SlideMetrics.RocAuc(rows.Select(r => double.Parse(r[5], CultureInfo.InvariantCulture)).ToList(),
            rows.Select(r => r[2] == "b").ToList());
    }
}
