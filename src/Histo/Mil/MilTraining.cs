using System.Globalization;
using System.Text;
using System.Text.Json;
using Histo.Evaluation;
using Histo.IO;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>Options of <c>histo train</c>; defaults from the ABMIL reference (Adam lr 5e-4, weight decay 1e-4).</summary>
public sealed record MilTrainingOptions
{
    public string Model { get; init; } = "abmil";
    public MilTask Task { get; init; } = MilTask.Subtype;
    /// <summary>Softmax for subtypes; CORAL or CORN for grades.</summary>
    public HeadKind Head { get; init; } = HeadKind.Softmax;
    public int Folds { get; init; } = 5;
    public int MaxEpochs { get; init; } = 50;
    /// <summary>Early stopping: epochs without a lower validation loss before stopping.</summary>
    public int Patience { get; init; } = 10;
    /// <summary>No early stop before this epoch (CLAM's stop_epoch is 50 on real cohorts; small cohorts need fewer).</summary>
    public int MinEpochs { get; init; } = 10;
    public double LearningRate { get; init; } = 5e-4;
    public double WeightDecay { get; init; } = 1e-4;
    public int Seed { get; init; } = 0;
    /// <summary>An existing folder of splits_{i}.csv to reuse instead of making new ones.</summary>
    public string? SplitsDir { get; init; }
    /// <summary>
    /// Scale each training bag's loss by its class weight n / (K n_c) (<see cref="MilTraining.ClassWeights"/>), so
    /// every class carries the same total weight; off: every bag weighs 1 (<c>histo train --class-balance on|off</c>).
    /// </summary>
    public bool ClassBalance { get; init; } = true;
    /// <summary>
    /// Most bytes of bag features kept in memory between uses (<see cref="BagLoader"/>; <c>histo train --cache-gb</c>). It
    /// changes speed, never results, so it is not a setting a rerun is checked against.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public long BagCacheBytes { get; init; } = BagLoader.DefaultCacheBytes;

    /// <summary>Redo a run folder made with other settings (its folds are deleted) instead of refusing it.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Train only this fold (<c>--fold i</c>, one fold per array task); the last fold to finish writes the summary.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int? Fold { get; init; }

    /// <summary>Train nothing: write the summary and figures from the finished folds, naming any that are not
    /// (<c>--summarise</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool SummariseOnly { get; init; }

    /// <summary>Soft targets from a trained teacher run (<c>histo train --distill-from</c>); null trains on the labels alone.</summary>
    public MilDistillation? Distillation { get; init; }

    public void Validate()
    {
        Require.AtLeast("--epochs", MaxEpochs, 1);
        Require.AtLeast("--patience", Patience, 1);
        Require.AtLeast("--min-epochs", MinEpochs, 0);
        Require.AtLeast("--folds", Folds, SplitsDir is null ? 3 : 1); // three groups (train, val, test) unless splits are given
        Require.Positive("--lr", LearningRate);
        Require.NonNegative("--weight-decay", WeightDecay);
        if (BagCacheBytes < 0) throw new UsageException("--cache-gb must be 0 or more");
        if (Task == MilTask.Subtype && Head != HeadKind.Softmax) throw new UsageException("ordinal heads (coral, corn) need --task grade");
        if (Fold is { } f)
        {
            Require.InRange("--fold", f, 0, Folds - 1);
            if (Overwrite) throw new UsageException("--overwrite with --fold would delete the other tasks' folds; delete the run folder "
                + "first, or run once without --fold");
            if (SummariseOnly) throw new UsageException("--summarise trains no fold; leave out --fold");
        }
        if (SummariseOnly && Overwrite) throw new UsageException("--summarise deletes nothing; leave out --overwrite");
        if (Distillation is { } d)
        {
            Require.InRange("--alpha", d.Alpha, 0, 1);
            Require.Positive("--temperature", d.Temperature);
            if (Head != HeadKind.Softmax)
                throw new UsageException($"--distill-from matches softmax distributions; --head {Head.ToString().ToLowerInvariant()} "
                    + "has none: use --head softmax");
        }
        if (Model == "clam-sb" && Head != HeadKind.Softmax)
            throw new UsageException($"--model clam-sb cannot take --head {Head.ToString().ToLowerInvariant()}: its "
                + $"instance-clustering branches are one per class and need the softmax head's classes; use --head softmax, or "
                    + $"another model (abmil, gated-abmil, dsmil, mean, max) for ordinal grades");
    }
}

/// <summary>
/// A MIL student taught by a trained run (Hinton et al. 2015): each training bag's loss is (1 - Alpha) times its own loss
/// on the label plus Alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T)), z_t the teacher's logits for the bag from the
/// teacher's model of the same fold. The student trains on the teacher's splits, so fold i's teacher never saw fold i's
/// validation or test slides: its logits on the training slides leak nothing the student could not learn from the labels.
/// (Out-of-fold logits pooled over the teacher's folds would: the model that scored a training slide was trained on this
/// fold's test slides.) The teacher may use other features (another encoder): <see cref="TeacherFeatures"/>.
/// </summary>
/// <param name="TeacherRun">The teacher's <c>histo train</c> run folder.</param>
/// <param name="TeacherFeatures">The teacher's features folder; null: the student's own.</param>
/// <param name="Alpha">Weight of the soft targets (RepDistiller's KD: 0.9).</param>
public sealed record MilDistillation(string TeacherRun, string? TeacherFeatures = null,
    double Alpha = Distillation.SoftTargets.DefaultAlpha, double Temperature = Distillation.SoftTargets.DefaultTemperature);

/// <summary>Metrics of one fold's test slides (or the summary over folds).</summary>
public sealed record FoldMetrics(int Fold, int BestEpoch, double Auc, double BalancedAccuracy, double MacroF1, double Accuracy,
    double Kappa, double Mae);

/// <summary>
/// Trains a MIL model with k-fold cross-validation by case: AdamW, one bag per step in a seeded shuffled
/// order, class-balanced loss weights, early stopping on validation loss (the best weights are kept and
/// saved as safetensors), then test metrics. A finished fold is not trained again when the run resumes.
/// Writes splits/, fold_i/{model.safetensors, history.csv, predictions.csv, validation.csv, metrics.json}, summary.json
/// and summary.md. An interrupted fold resumes after its last finished epoch (fold_i/resume/), with the same
/// trajectory as an uninterrupted run: bag order and dropout are seeded per epoch.
/// </summary>
public static class MilTraining
{
    /// <summary>Share of validation slides an energy threshold keeps in distribution (see <see cref="EnergyThreshold"/>).</summary>
    public const double InDistributionQuantile = EnergyThreshold.InDistributionQuantile;

    /// <summary>
    /// Class-balanced bag weights w_c = n / (K n_c) from the training labels (a class absent from training counts
    /// as one bag), so each class's bags weigh n / K in all; all 1 when <paramref name="balance"/> is off.
    /// </summary>
    /// <remarks>
    /// Why a per-bag loss weight and not CLAM's class-balanced sampling (weighted_sample: bags drawn with
    /// replacement, probability proportional to 1 / n_c): both give the same expected gradient, but sampling
    /// with replacement leaves about a third of a small cohort's bags out of each epoch and repeats others, adds
    /// that draw's variance, and would make an epoch's content depend on the draw rather than on the seeded
    /// shuffle that resuming replays. The weight multiplies the head's unweighted bag loss for every head
    /// (softmax, CORAL, CORN, and DSMIL's two streams and CLAM's instance loss alike), so "balanced" means the
    /// same thing whichever head is trained. (PyTorch's cross_entropy(weight=w) with mean reduction divides by
    /// the weights it used, so on one bag per step the weight cancels: that was the no-op this replaces.)
    /// </remarks>
    public static double[] ClassWeights(IEnumerable<int> labels, int classes, bool balance = true)
    {
        var list = labels.ToList();
        if (!balance) return Enumerable.Repeat(1.0, classes).ToArray();
        var counts = Enumerable.Range(0, classes).Select(c => Math.Max(1, list.Count(l => l == c))).ToArray();
        return counts.Select(n => (double)list.Count / (classes * n)).ToArray();
    }

    /// <summary>
    /// One bag's unweighted training loss: the head's loss on the logits, or for a model with
    /// <see cref="MilOutput.StreamLogits"/> the mean of the head's loss on each stream (DSMIL:
    /// 0.5 L(bag) + 0.5 L(max instance)); with CLAM's <see cref="MilOutput.AuxiliaryLoss"/>,
    /// 0.7 * that + 0.3 * the instance loss.
    /// </summary>
    public static Tensor BagLoss(MilHead head, MilOutput output, long label)
    {
        using var scope = NewDisposeScope();
        Tensor loss;
        if (output.StreamLogits is { } streams)
        {
            var terms = new List<Tensor>();
            for (long s = 0; s < streams.shape[0]; s++) terms.Add(head.Loss(streams[s], label));
            loss = stack(terms).mean();
        }
        else loss = head.Loss(output.Logits, label);
        if (output.AuxiliaryLoss is not null)
        {
            // Tensor factors and a kept Scalar: no Scalar made on the fly while the bag reader allocates (README, Platform notes).
            using var bagWeight = tensor((float)ClamSb.BagWeight);
            using var instanceWeight = tensor((float)(1 - ClamSb.BagWeight));
            loss = (loss * bagWeight).add(output.AuxiliaryLoss * instanceWeight, Models.KeptScalars.One);
        }
        return loss.MoveToOuterDisposeScope();
    }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <param name="Encoder">Encoder, patch size and resolution of the training features, so `histo predict` can embed raw slides the
    /// same way.</param>
    public sealed record RunConfig(string Model, string Task, string Head, int FeatureDim, string[] ClassNames, int Folds, int Seed,
        string? Encoder = null, int PatchSize = 0, double TargetMpp = double.NaN, int Overlap = 0, double MinTissue = double.NaN)
    {
        /// <summary>How the training features were made; prediction's features must match.</summary>
        public FeatureProvenance Features => new(Encoder ?? "unknown", FeatureDim, PatchSize, TargetMpp);
    }

    /// <summary>Reported after every epoch (for progress bars).</summary>
    public sealed record EpochProgress(int Fold, int Folds, int Epoch, int MaxEpochs, double TrainLoss, double ValLoss, bool Stopped);

    /// <summary>Settings of a run, recorded at its start: a rerun with any other value is refused, naming it.</summary>
    public const string SettingsFile = "settings.json";

    public static IReadOnlyList<FoldMetrics> Run(MilDataset data, MilTrainingOptions options, string runDir,
        Action<string>? log = null, Action<EpochProgress>? onEpoch = null)
    {
        options.Validate();
        // One fold per task: the setup (settings, splits, configuration) under the folder's lock, which the other tasks wait
        // for; then each fold under its own lock. A whole run holds the folder's lock throughout.
        bool perFold = options.Fold is not null || options.SummariseOnly;
        // A teacher that does not fit is refused before the run folder is made.
        var teacher = options.Distillation is { } distillation ? TeacherOf(distillation, data, options) : null;
        var folder = JobFolder.Open(runDir, "histo train", null, perFold ? TimeSpan.FromMinutes(5) : TimeSpan.Zero);
        try { return Run(data, options, runDir, log, onEpoch, teacher, ref folder); }
        finally { folder?.Dispose(); }
    }

    static IReadOnlyList<FoldMetrics> Run(MilDataset data, MilTrainingOptions options, string runDir, Action<string>? log,
        Action<EpochProgress>? onEpoch, Teacher? teacher, ref JobFolder? folder)
    {
        bool perFold = options.Fold is not null || options.SummariseOnly;
        foreach (var removed in folder!.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        var byId = data.Bags.ToDictionary(b => b.SlideId);
        string splitsDir = Path.Combine(runDir, "splits");
        bool overwrite = options.Overwrite;
        if (teacher is not null) options = options with { SplitsDir = teacher.Splits };
        var folds = options.SplitsDir is not null ? CaseSplits.Read(options.SplitsDir, data.Bags)
            : !overwrite && File.Exists(Path.Combine(splitsDir, "splits_0.csv")) ? CaseSplits.Read(splitsDir, data.Bags)
            : CaseSplits.Make(data.Bags, options.Folds, options.Seed, data.ClassNames);
        if (options.SplitsDir is not null && folds.Count != options.Folds)
            throw new UsageException($"{options.SplitsDir} holds {folds.Count} splits but --folds is {options.Folds}; pass --folds "
                + $"{folds.Count}");
        // Everything that changes a fold's result: the options, the features, the cohort and its splits.
        var settings = new
        {
            Options = options with { SplitsDir = null, Overwrite = false },
            Features = data.Provenance,
            Cohort = $"{data.Bags.Count} slides, "
                + $"{Fingerprint(data.Bags.Select(b => $"{b.SlideId}:{b.CaseId}:{data.ClassNames[b.Label]}"))}",
            Splits = Fingerprint(folds.Select(f => $"{string.Join(' ', f.Train)}|{string.Join(' ', f.Val)}|{string.Join(' ', f.Test)}")),
        };
        folder.RecordOrCheckSettings(SettingsFile, settings, overwrite);
        if (overwrite)
            foreach (var old in Directory.GetDirectories(runDir, "fold_*")) Directory.Delete(old, true);
        var config = new RunConfig(options.Model, options.Task.ToString().ToLowerInvariant(), options.Head.ToString().ToLowerInvariant(),
            data.FeatureDim, data.ClassNames.ToArray(), options.Folds, options.Seed,
            data.Provenance.Encoder, data.Provenance.PatchSize, data.Provenance.TargetMpp,
            data.Provenance.Overlap, data.Provenance.MinTissue);
        AtomicFile.WriteAllText(Path.Combine(runDir, "config.json"), JsonSerializer.Serialize(config, Json));
        CaseSplits.Write(folds, splitsDir);

        if (perFold)
        {
            folder.Dispose();
            folder = null;
        }

        // One cache for all folds: a cohort that fits in it is read from disk once for the whole run.
        using var loader = new BagLoader(options.BagCacheBytes);
        var toTrain = options.SummariseOnly ? [] : options.Fold is { } only ? folds.Where(f => f.Index == only).ToList() : folds;
        foreach (var fold in toTrain)
        {
            string foldDir = Path.Combine(runDir, $"fold_{fold.Index}");
            if (FinishedFold(foldDir) is not null)
            {
                log?.Invoke($"fold {fold.Index}: already trained, kept");
                continue;
            }
            using var foldLock = perFold ? JobFolder.Open(runDir, $"histo train --fold {fold.Index}", (fold.Index, folds.Count)) : null;
            var softTargets = teacher is null ? null : TeacherLogits(teacher, fold, byId);
            try { TrainFold(data, loader, options, fold, folds.Count, byId, foldDir, log, onEpoch, softTargets); }
            finally { foreach (var t in softTargets?.Values ?? Enumerable.Empty<Tensor>()) t.Dispose(); }
        }

        // The summary once every fold is done: by a whole run, by the last fold task to finish, or by --summarise.
        var finished = folds.Select(f => FinishedFold(Path.Combine(runDir, $"fold_{f.Index}"))).ToList();
        var missing = folds.Where((f, i) => finished[i] is null).ToList();
        if (missing.Count > 0)
        {
            string what = string.Join("; ", missing.Select(f => $"fold {f.Index} {FoldState(runDir, f.Index, folds.Count)}"));
            if (options.SummariseOnly)
                throw new HistoException($"{runDir}: {missing.Count} of {folds.Count} folds are not finished ({what}); run them "
                    + "with --fold i, then --summarise again");
            log?.Invoke($"{folds.Count - missing.Count} of {folds.Count} folds finished ({what}); the summary is written after the last");
            return finished.OfType<FoldMetrics>().ToList();
        }
        using (perFold ? JobFolder.Open(runDir, "histo train (summary)", null, TimeSpan.FromMinutes(5)) : null)
        {
            var results = finished.Select(f => f!).ToList();
            WriteSummary(results, data, options, runDir);
            WriteFigures(folds, data, options, runDir);
            return results;
        }
    }

    /// <summary>A fold's metrics when it has finished (metrics.json and model.safetensors), else null.</summary>
    static FoldMetrics? FinishedFold(string foldDir)
    {
        string metricsPath = Path.Combine(foldDir, "metrics.json");
        return File.Exists(metricsPath) && File.Exists(Path.Combine(foldDir, "model.safetensors"))
            ? JsonSerializer.Deserialize<FoldMetrics>(File.ReadAllText(metricsPath), Json) : null;
    }

    /// <summary>Why a fold is not finished, in words: training now (by whom), stopped after an epoch, or never started.</summary>
    public static string FoldState(string runDir, int fold, int folds)
    {
        string foldDir = Path.Combine(runDir, $"fold_{fold}");
        if (JobFolder.HeldBy(Path.Combine(runDir, JobFolder.LockName((fold, folds)))) is { } holder) return $"in progress ({holder})";
        string state = Path.Combine(foldDir, "resume", "state.json");
        if (File.Exists(state))
        {
            var resume = JsonSerializer.Deserialize<ResumeState>(File.ReadAllText(state), Json)!;
            return $"stopped after epoch {resume.Epoch} (a rerun resumes it)";
        }
        return Directory.Exists(foldDir) ? "started, no epoch finished" : "not started";
    }

    /// <summary>
    /// roc.png (two classes: one curve per fold's test slides; more classes: one-vs-rest per class over all
    /// folds' test slides) and training_curves.png (train and validation loss per fold, best epoch marked).
    /// </summary>
    static void WriteFigures(IReadOnlyList<Fold> folds, MilDataset data, MilTrainingOptions options, string runDir)
    {
        var curves = new List<(string, IReadOnlyList<(double, double)>, double)>();
        var histories = new List<(string, double[], double[], int)>();
        var pooled = new List<string[]>();
        int classes = data.ClassNames.Count;
        foreach (var fold in folds)
        {
            string foldDir = Path.Combine(runDir, $"fold_{fold.Index}");
            var rows = File.ReadAllLines(Path.Combine(foldDir, "predictions.csv")).Skip(1).Select(l => l.Split(',')).ToList();
            pooled.AddRange(rows);
            var metrics = JsonSerializer.Deserialize<FoldMetrics>(File.ReadAllText(Path.Combine(foldDir, "metrics.json")), Json)!;
            if (classes == 2)
            {
                var truth = rows.Select(r => r[2] == data.ClassNames[1]).ToList();
                var scores = rows.Select(r => double.Parse(r[5], CultureInfo.InvariantCulture)).ToList();
                curves.Add(($"fold {fold.Index}", SlideMetrics.RocCurve(scores, truth), SlideMetrics.RocAuc(scores, truth)));
            }
            var history = File.ReadAllLines(Path.Combine(foldDir, "history.csv")).Skip(1).Select(l => l.Split(',')).ToList();
            histories.Add(($"fold {fold.Index}", history.Select(h => double.Parse(h[1], CultureInfo.InvariantCulture)).ToArray(),
                history.Select(h => double.Parse(h[2], CultureInfo.InvariantCulture)).ToArray(), metrics.BestEpoch));
        }
        if (classes > 2)
            for (int c = 0; c < classes; c++)
            {
                var truth = pooled.Select(r => r[2] == data.ClassNames[c]).ToList();
                var scores = pooled.Select(r => double.Parse(r[4 + c], CultureInfo.InvariantCulture)).ToList();
                curves.Add(($"{data.ClassNames[c]} vs rest", SlideMetrics.RocCurve(scores, truth), SlideMetrics.RocAuc(scores, truth)));
            }
        string what = classes == 2 ? $"{data.ClassNames[1]} vs {data.ClassNames[0]}, per fold" : "one vs rest, all folds' test slides";
        Reports.Plots.RocCurves(Path.Combine(runDir, "roc.png"), $"{options.Model}: ROC, {what}", curves);
        Reports.Plots.TrainingCurves(Path.Combine(runDir, "training_curves.png"), $"{options.Model}: loss per epoch", histories);
    }

    static FoldMetrics TrainFold(MilDataset data, BagLoader loader, MilTrainingOptions options, Fold fold, int foldCount, Dictionary<string,
        MilBag> byId, string foldDir,
        Action<string>? log, Action<EpochProgress>? onEpoch, Dictionary<string, Tensor>? teacherLogits)
    {
        Directory.CreateDirectory(foldDir);
        manual_seed(options.Seed * 1000 + fold.Index);
        int classes = data.ClassNames.Count;
        using var head = MilHead.Create(options.Head, classes);
        using var model = MilRegistry.Create(options.Model, data.FeatureDim, head.ModelOutputs, classes);
        var train = fold.Train.Select(s => byId[s]).ToList();
        var val = fold.Val.Select(s => byId[s]).ToList();
        var test = fold.Test.Select(s => byId[s]).ToList();
        // Class-balanced weights n / (K n_c) so rare classes count as much as common ones (all 1 when off).
        var weights = ClassWeights(train.Select(b => b.Label), classes, options.ClassBalance);
        using var classWeights = tensor(weights.Select(w => (float)w).ToArray());
        var parameters = model.parameters().Concat(head.parameters()).ToList();
        using var optimizer = new Models.AdamW(parameters, options.LearningRate, options.WeightDecay);
        var random = new Random(options.Seed * 1000 + fold.Index);
        var history = new StringBuilder("epoch,train_loss,val_loss\n");
        double bestVal = double.PositiveInfinity;
        int bestEpoch = 0, firstEpoch = 1;
        Dictionary<string, Tensor>? best = null;
        string resumeDir = Path.Combine(foldDir, "resume");
        if (Directory.Exists(resumeDir) && !ResumeComplete(resumeDir))
        {
            // Written whole and renamed, so this is not a kill mid-write but a damaged or hand-edited folder: say so, start over.
            log?.Invoke($"fold {fold.Index}: {resumeDir} is incomplete (no state.json, weights or optimizer state); the fold starts again");
            Directory.Delete(resumeDir, true);
        }
        if (Directory.Exists(resumeDir))
        {
            // Continue an interrupted fold from its last finished epoch: weights, optimizer moments, best state,
            // history, and the bag order (the same seeded shuffles are replayed).
            var state = JsonSerializer.Deserialize<ResumeState>(File.ReadAllText(Path.Combine(resumeDir, "state.json")), Json)!;
            var saved = Safetensors.LoadStateDict(Path.Combine(resumeDir, "last.safetensors"), null!);
            using (no_grad())
            {
                foreach (var (name, t) in model.state_dict()) t.copy_(saved["model." + name]);
                foreach (var (name, t) in head.state_dict()) t.copy_(saved["head." + name]);
            }
            best = saved.Where(kv => kv.Key.StartsWith("best.")).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
            foreach (var kv in saved.Where(kv => !kv.Key.StartsWith("best."))) kv.Value.Dispose();
            optimizer.Load(Path.Combine(resumeDir, "optimizer.bin"));
            (bestVal, bestEpoch, firstEpoch) = (state.BestValLoss, state.BestEpoch, state.Epoch + 1);
            history.Clear().Append(state.History);
            for (int e = 1; e < firstEpoch; e++) random.Shuffle(train.ToArray());
            log?.Invoke($"fold {fold.Index}: resuming after epoch {state.Epoch}");
        }
        for (int epoch = firstEpoch; epoch <= options.MaxEpochs; epoch++)
        {
            // Seeded per epoch, so dropout draws are the same whether or not the run was interrupted.
            manual_seed(options.Seed * 1_000_000 + fold.Index * 1000 + epoch);
            model.train();
            head.train();
            var order = train.ToArray();
            random.Shuffle(order);
            double trainLoss = 0, trainWeight = 0;
            foreach (var (bag, features) in loader.Stream(order))
            {
                using var scope = NewDisposeScope();
                optimizer.ZeroGrad();
                var output = model.Forward(features, bag.Label);
                // The bag's loss scaled by its class weight: the step's gradient is w_y times the unweighted one.
                // (A tensor factor, not a double: no Scalar made on the fly, see README's Platform notes.)
                var loss = BagLoss(head, output, bag.Label);
                if (teacherLogits is not null)
                    loss = WithSoftTargets(loss, output.Logits, teacherLogits[bag.SlideId], options.Distillation!);
                loss *= classWeights[bag.Label];
                double value = loss.item<float>();
                if (!double.IsFinite(value)) throw new HistoException($"fold {fold.Index}, epoch {epoch}: the loss became {value} on "
                    + $"slide {bag.SlideId}; lower --lr");
                model.Backward(loss);
                optimizer.Step();
                trainLoss += value;
                trainWeight += weights[bag.Label];
            }
            trainLoss /= Math.Max(1e-12, trainWeight);  // sum w L / sum w: the same units with or without class balance
            double valLoss = Evaluate(model, head, val, classWeights, loader, teacherLogits, options.Distillation).Loss;
            history.Append(CultureInfo.InvariantCulture, $"{epoch},{trainLoss:0.######},{valLoss:0.######}\n");
            if (valLoss < bestVal)
            {
                bestVal = valLoss;
                bestEpoch = epoch;
                if (best is not null) foreach (var t in best.Values) t.Dispose();
                best = model.state_dict().Concat(head.state_dict().Select(kv => new KeyValuePair<string, Tensor>("head." + kv.Key,
                    kv.Value)))
                    .ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            }
            bool stop = valLoss >= bestVal && epoch >= options.MinEpochs && epoch - bestEpoch >= options.Patience;
            SaveResumeState(resumeDir, model, head, optimizer, best!, new ResumeState(epoch, bestEpoch, bestVal, history.ToString()));
            onEpoch?.Invoke(new EpochProgress(fold.Index, foldCount, epoch, options.MaxEpochs, trainLoss, valLoss, stop
                || epoch == options.MaxEpochs));
            if (stop) break;
        }
        // Back to the best epoch's weights.
        using (no_grad())
        {
            foreach (var (name, t) in model.state_dict()) t.copy_(best![name]);
            foreach (var (name, t) in head.state_dict()) t.copy_(best!["head." + name]);
        }
        Safetensors.SaveStateDict(Path.Combine(foldDir, "model.safetensors"), best!);
        foreach (var t in best!.Values) t.Dispose();
        AtomicFile.WriteAllText(Path.Combine(foldDir, "history.csv"), history.ToString());

        var valResult = Evaluate(model, head, val, classWeights, loader);
        var testResult = Evaluate(model, head, test, classWeights, loader);
        // The validation slides' energies under this fold's best model: the run's out-of-distribution threshold is
        // the 95% quantile of these pooled over all folds (EnergyThreshold.FromRun), not a quantile of one fold's few.
        EnergyThreshold.WriteValidation(foldDir, val.Select(b => (b.SlideId, data.ClassNames[b.Label])).ToList(), valResult.Energies);
        var labels = test.Select(b => b.Label).ToList();
        var cls = ClassificationMetrics.Compute(labels, testResult.Predictions, classes);
        var metrics = new FoldMetrics(fold.Index, bestEpoch,
            SlideMetrics.MacroAuc(testResult.Probabilities, labels, classes), cls.BalancedAccuracy,
            SlideMetrics.MacroF1(labels, testResult.Predictions, classes), cls.Accuracy,
            SlideMetrics.QuadraticWeightedKappa(labels, testResult.Predictions, classes),
            SlideMetrics.MeanAbsoluteError(labels, testResult.Predictions));
        var predictions = new StringBuilder("slide_id,case_id,label,predicted," + string.Join(",",
            data.ClassNames.Select(c => "p_" + c)) + ",energy\n");
        for (int i = 0; i < test.Count; i++)
            predictions.Append(CultureInfo.InvariantCulture,
                $"{test[i].SlideId},{test[i].CaseId},{data.ClassNames[test[i].Label]},{data.ClassNames[testResult.Predictions[i]]},"
                + $"{string.Join(",", testResult.Probabilities[i].Select(p => p.ToString("0.######", CultureInfo.InvariantCulture)))},"
                + $"{testResult.Energies[i]:0.######}\n");
        AtomicFile.WriteAllText(Path.Combine(foldDir, "predictions.csv"), predictions.ToString());
        AtomicFile.WriteAllText(Path.Combine(foldDir, "metrics.json"), JsonSerializer.Serialize(metrics, Json));
        if (Directory.Exists(resumeDir)) Directory.Delete(resumeDir, true);
        log?.Invoke($"fold {fold.Index}: best epoch {bestEpoch}, test AUC {metrics.Auc:F3}, balanced accuracy "
            + $"{metrics.BalancedAccuracy:F3}");
        return metrics;
    }

    /// <summary>A teacher run checked against the student's cohort: the folder of its splits and of its features.</summary>
    sealed record Teacher(string Run, string Splits, string FeaturesDir);

    static Teacher TeacherOf(MilDistillation distillation, MilDataset data, MilTrainingOptions options)
    {
        string run = distillation.TeacherRun;
        string configPath = Path.Combine(run, "config.json");
        if (!File.Exists(configPath))
            throw new HistoException($"{run}: not a training run (no config.json); --distill-from takes the -o folder of 'histo train'");
        var config = JsonSerializer.Deserialize<RunConfig>(File.ReadAllText(configPath), Json)!;
        if (config.Head != "softmax")
            throw new HistoException($"{run}: the teacher has a {config.Head} head; --distill-from needs a softmax teacher");
        if (!config.ClassNames.SequenceEqual(data.ClassNames))
            throw new HistoException($"{run}: the teacher's classes ({string.Join(", ", config.ClassNames)}) are not the labels' "
                + $"({string.Join(", ", data.ClassNames)}); give the labels CSV the teacher was trained on");
        string splits = Path.Combine(run, "splits");
        if (!File.Exists(Path.Combine(splits, "splits_0.csv")))
            throw new HistoException($"{run}: no splits/splits_0.csv; finish the teacher's 'histo train' first");
        if (options.SplitsDir is not null)
            throw new UsageException("--distill-from trains on the teacher's splits; leave out --splits");
        string features = distillation.TeacherFeatures ?? Path.GetDirectoryName(data.Bags[0].FeaturesPath)!;
        if (Directory.Exists(Path.Combine(features, "features"))) features = Path.Combine(features, "features");
        // The teacher must see the features it was trained on; a student on other features (another encoder) names the teacher's.
        var missing = data.Bags.FirstOrDefault(b => !File.Exists(Path.Combine(features, b.SlideId + ".h5")));
        if (missing is not null)
            throw new HistoException($"{features}: no features of slide {missing.SlideId} for the teacher; pass --teacher-features, "
                + "the folder the teacher was trained on");
        var provenance = FeatureProvenance.Common(data.Bags.Select(b => Path.Combine(features, b.SlideId + ".h5")).ToList());
        if (provenance.Dim != config.FeatureDim || (config.Encoder is { } encoder && provenance.Encoder != encoder))
            throw new HistoException($"{features}: {provenance.Encoder} features ({provenance.Dim}-d), but the teacher {run} was "
                + $"trained on {config.Encoder} ({config.FeatureDim}-d); pass --teacher-features, the folder it was trained on");
        return new Teacher(run, splits, features);
    }

    /// <summary>The teacher's logits for each training and validation bag of a fold, from its model of that fold (computed once
    /// per fold): the validation loss that picks the best epoch is the objective the student trains on.</summary>
    static Dictionary<string, Tensor> TeacherLogits(Teacher teacher, Fold fold, Dictionary<string, MilBag> byId)
    {
        using var run = TrainedRun.Load(teacher.Run, fold.Index);
        var logits = new Dictionary<string, Tensor>();
        foreach (var slide in fold.Train.Concat(fold.Val))
        {
            var bag = byId[slide];
            using var features = BagLoader.Load(bag with { FeaturesPath = Path.Combine(teacher.FeaturesDir, slide + ".h5") });
            logits[slide] = run.FoldLogits(features);
        }
        return logits;
    }

    /// <summary>(1 - a) L_bag + a T^2 KL(softmax(z_t / T) || softmax(z_s / T)) (<see cref="Distillation.SoftTargets"/>).</summary>
    static Tensor WithSoftTargets(Tensor bagLoss, Tensor studentLogits, Tensor teacherLogits, MilDistillation distillation)
    {
        using var scope = NewDisposeScope();
        using var student = studentLogits.unsqueeze(0);
        using var teacher = teacherLogits.unsqueeze(0);
        var kl = Distillation.SoftTargets.KlTerm(student, teacher, distillation.Temperature);
        using var hard = tensor((float)(1 - distillation.Alpha)); // tensor factors: no Scalar made on the fly (Platform notes)
        using var soft = tensor((float)distillation.Alpha);
        return bagLoss.mul(hard).add(kl.mul(soft), Models.KeptScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>A short, stable digest of a list (SHA-256, 12 hex digits): cohorts and splits compared without listing them.</summary>
    static string Fingerprint(IEnumerable<string> items) =>
        "sha256:" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n",
            items))))[..12].ToLowerInvariant();

    sealed record ResumeState(int Epoch, int BestEpoch, double BestValLoss, string History);

    /// <summary>The last finished epoch of a fold, written to a temporary folder and renamed, so a kill never leaves half a
    /// state.</summary>
    static void SaveResumeState(string resumeDir, MilModel model, MilHead head, Models.AdamW optimizer, Dictionary<string,
        Tensor> best, ResumeState state)
    {
        string tmp = AtomicFile.StagingPath(resumeDir);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        var tensors = model.state_dict().ToDictionary(kv => "model." + kv.Key, kv => kv.Value);
        foreach (var (name, t) in head.state_dict()) tensors["head." + name] = t;
        foreach (var (name, t) in best) tensors["best." + name] = t;
        Safetensors.SaveStateDict(Path.Combine(tmp, "last.safetensors"), tensors);
        optimizer.Save(Path.Combine(tmp, "optimizer.bin"));
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(state, Json));
        if (Directory.Exists(resumeDir)) Directory.Delete(resumeDir, true);
        Directory.Move(tmp, resumeDir);
    }

    static bool ResumeComplete(string resumeDir) =>
        new[] { "state.json", "last.safetensors", "optimizer.bin" }.All(f => File.Exists(Path.Combine(resumeDir, f)));

    public sealed record Evaluation(double Loss, double[][] Probabilities, List<int> Predictions, List<double> Energies);

    /// <summary>
    /// Loss, probabilities, predictions and energy scores E = -T logsumexp(logits / T), T = 1 (Liu et al., NeurIPS
    /// 2020; NaN for the ordinal heads, see <see cref="MilHead.HasEnergy"/>). The loss is the training loss's
    /// per-bag term (<see cref="BagLoss"/>, without CLAM's instance term, which needs the label) averaged with the
    /// training class weights: sum_i w_(y_i) L_i / sum_i w_(y_i), as PyTorch's weighted mean reduction does over a
    /// batch. It is a weighted mean of per-bag losses, so it stays in the units of the unweighted mean (the same
    /// number when the weights are all 1, i.e. class balance off), and with balance on it is the validation set's
    /// class-balanced loss, the quantity early stopping should follow when training balances classes.
    /// </summary>
    /// <param name="model">The fold's model (put in eval mode).</param>
    /// <param name="head">The fold's head.</param>
    /// <param name="bags">Bags to score.</param>
    /// <param name="classWeights">[K] weight per class; null: all 1.</param>
    /// <param name="loader">Where the bags' features come from; null: read each file once, keeping none.</param>
    /// <param name="teacherLogits">With <paramref name="distillation"/>, the loss is a distilled student's: see
    /// <see cref="MilDistillation"/>.</param>
    public static Evaluation Evaluate(MilModel model, MilHead head, IReadOnlyList<MilBag> bags, Tensor? classWeights = null,
        BagLoader? loader = null, IReadOnlyDictionary<string, Tensor>? teacherLogits = null, MilDistillation? distillation = null)
    {
        using var uncached = loader is null ? new BagLoader(0) : null;
        model.eval();
        head.eval();
        using var _ = no_grad();
        var w = classWeights is null ? null : classWeights.to_type(ScalarType.Float64).data<double>().ToArray();
        double loss = 0, weight = 0;
        var probabilities = new double[bags.Count][];
        var predictions = new List<int>();
        var energies = new List<double>();
        int i = 0;
        foreach (var (bag, features) in (loader ?? uncached!).Stream(bags))
        {
            using var scope = NewDisposeScope();
            var output = model.Forward(features);
            double wi = w is null ? 1 : w[bag.Label];
            var bagLoss = BagLoss(head, output, bag.Label);
            if (teacherLogits is not null) bagLoss = WithSoftTargets(bagLoss, output.Logits, teacherLogits[bag.SlideId], distillation!);
            loss += wi * bagLoss.item<float>();
            weight += wi;
            var scores = head.DecisionScores(output.Logits);
            probabilities[i++] = head.ProbabilitiesFromScores(scores);
            predictions.Add(head.Decide(scores));
            energies.Add(head.Energy(output.Logits));
        }
        return new Evaluation(bags.Count == 0 || weight <= 0 ? double.NaN : loss / weight, probabilities, predictions, energies);
    }

    static void WriteSummary(IReadOnlyList<FoldMetrics> results, MilDataset data, MilTrainingOptions options, string runDir)
    {
        (double Mean, double Std) Stat(Func<FoldMetrics, double> f) => SlideMetrics.MeanAndStd(results.Select(f));
        var summary = new Dictionary<string, object>
        {
            ["model"] = options.Model, ["task"] = options.Task.ToString().ToLowerInvariant(),
            ["head"] = options.Head.ToString().ToLowerInvariant(),
            ["classes"] = data.ClassNames, ["folds"] = results,
        };
        var md = new StringBuilder($"# {options.Model} ({options.Task.ToString().ToLowerInvariant()}, "
            + $"{options.Head.ToString().ToLowerInvariant()} head), {results.Count}-fold cross-validation by case\n\n");
        md.Append("| metric | mean | std |\n|---|---|---|\n");
        foreach (var (name, f) in new (string, Func<FoldMetrics, double>)[]
                 { ("AUC", m => m.Auc), ("balanced accuracy", m => m.BalancedAccuracy), ("macro F1", m => m.MacroF1), ("accuracy",
                     m => m.Accuracy), ("quadratic kappa", m => m.Kappa), ("MAE", m => m.Mae) })
        {
            var (mean, std) = Stat(f);
            summary[name.Replace(' ', '_').ToLowerInvariant() + "_mean"] = mean;
            summary[name.Replace(' ', '_').ToLowerInvariant() + "_std"] = std;
            md.Append(CultureInfo.InvariantCulture, $"| {name} | {mean:0.000} | {std:0.000} |\n");
        }
        md.Append("\n| fold | best epoch | AUC | balanced accuracy | kappa |\n|---|---|---|---|---|\n");
        foreach (var m in results) md.Append(CultureInfo.InvariantCulture,
            $"| {m.Fold} | {m.BestEpoch} | {m.Auc:0.000} | {m.BalancedAccuracy:0.000} | {m.Kappa:0.000} |\n");
        // The out-of-distribution threshold `histo predict` uses: 95% quantile of all folds' validation energies.
        summary["energy_threshold"] = EnergyThreshold.FromRun(runDir, results.Select(r => r.Fold));
        summary["class_balance"] = options.ClassBalance;
        AtomicFile.WriteAllText(Path.Combine(runDir, "summary.json"), JsonSerializer.Serialize(summary, Json));
        AtomicFile.WriteAllText(Path.Combine(runDir, "summary.md"), md.ToString());
    }
}
