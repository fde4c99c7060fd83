using System.Text.Json;
using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>A slide's prediction from a trained run: the fold models' ensemble, decided by the rule cross-validation uses.</summary>
/// <param name="Probabilities">Class probabilities: the mean over folds for softmax; for ordinal heads the differences of the mean P(y
/// &gt; k).</param>
/// <param name="Energy">E = -logsumexp(logits) (T = 1), averaged over folds; lower is more in-distribution. NaN for CORAL and CORN,
/// which have no energy (<see cref="MilHead.HasEnergy"/>).</param>
/// <param name="OutOfDistribution">Energy above the run's threshold (the 95% quantile of all folds' validation energies); null where
/// there is no energy or no threshold.</param>
/// <param name="InstanceScores">Per-patch attention or instance score, averaged over folds (null for models without one).</param>
public sealed record SlidePrediction(string SlideId, string Predicted, double[] Probabilities, double Energy, bool? OutOfDistribution,
    float[]? InstanceScores);

/// <summary>
/// The models of a `histo train` run folder, loaded for prediction: every fold's best weights, averaged as
/// an ensemble (each fold saw different training cases). The ensemble averages each fold's decision scores
/// (<see cref="MilHead.DecisionScores"/>: class probabilities for softmax, P(y &gt; k) for CORAL and CORN) and
/// decides with the head's own rule, argmax for softmax and the number of mean P(y &gt; k) above 0.5 for the
/// ordinal heads, so one fold's model predicts here exactly what it predicted in cross-validation.
/// </summary>
public sealed class TrainedRun : IDisposable
{
    readonly List<(MilModel Model, MilHead Head)> _folds = new();

    public MilTraining.RunConfig Config { get; }
    /// <summary>The 95% quantile (numpy's linear) of the loaded folds' validation energies, pooled; NaN when unavailable.</summary>
    public double EnergyThreshold { get; private set; }

    TrainedRun(MilTraining.RunConfig config)
    {
        Config = config;
    }

    /// <param name="fold">Only this fold's model (e.g. to score the slides it was tested on); all folds by default.</param>
    public static TrainedRun Load(string runDir, int? fold = null)
    {
        string configPath = Path.Combine(runDir, "config.json");
        if (!File.Exists(configPath)) throw new HistoException($"{runDir}: not a training run (no config.json); pass the -o folder of "
            + $"'histo train'");
        var config = JsonSerializer.Deserialize<MilTraining.RunConfig>(File.ReadAllText(configPath), new JsonSerializerOptions
        { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;
        var run = new TrainedRun(config);
        var kind = Enum.Parse<HeadKind>(config.Head, ignoreCase: true);
        var loaded = new List<string>();
        foreach (var foldDir in Directory.GetDirectories(runDir, "fold_*").Order(StringComparer.Ordinal))
        {
            if (fold is { } only && Path.GetFileName(foldDir) != $"fold_{only}") continue;
            string weights = Path.Combine(foldDir, "model.safetensors"), metricsPath = Path.Combine(foldDir, "metrics.json");
            if (!File.Exists(weights) || !File.Exists(metricsPath)) continue; // an unfinished fold
            var head = MilHead.Create(kind, config.ClassNames.Length);
            var model = MilRegistry.Create(config.Model, config.FeatureDim, head.ModelOutputs, config.ClassNames.Length);
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(weights, null!);
            try
            {
                Models.WeightLoading.Load(model, tensors.Where(kv => !kv.Key.StartsWith("head.")).ToDictionary(kv => kv.Key,
                    kv => kv.Value), weights);
                Models.WeightLoading.Load(head, tensors.Where(kv => kv.Key.StartsWith("head.")).ToDictionary(kv => kv.Key[5..],
                    kv => kv.Value), weights);
            }
            finally { foreach (var t in tensors.Values) t.Dispose(); }
            model.eval();
            head.eval();
            run._folds.Add((model, head));
            loaded.Add(foldDir);
        }
        if (run._folds.Count == 0) throw new HistoException($"{runDir}: no finished fold (fold_*/model.safetensors with "
            + $"metrics.json); finish 'histo train' first");
        run.EnergyThreshold = run._folds[0].Head.HasEnergy ? Mil.EnergyThreshold.FromFolds(loaded) : double.NaN;
        return run;
    }

    public int Folds => _folds.Count;

    /// <summary>Predicts one bag [N, D].</summary>
    public SlidePrediction Predict(string slideId, Tensor bag)
    {
        using var _ = no_grad();
        double[]? decision = null;
        double energy = 0;
        float[]? scores = null;
        foreach (var (model, head) in _folds)
        {
            using var scope = NewDisposeScope();
            var output = model.Forward(bag);
            var d = head.DecisionScores(output.Logits);
            decision ??= new double[d.Length];
            for (int c = 0; c < d.Length; c++) decision[c] += d[c] / _folds.Count;
            energy += head.Energy(output.Logits) / _folds.Count;
            if (output.InstanceScores is not null)
            {
                var s = output.InstanceScores.data<float>().ToArray();
                scores ??= new float[s.Length];
                for (int i = 0; i < s.Length; i++) scores[i] += s[i] / _folds.Count;
            }
        }
        var rule = _folds[0].Head;
        int predicted = rule.Decide(decision!);
        bool? flag = double.IsFinite(energy) && double.IsFinite(EnergyThreshold) ? energy > EnergyThreshold : null;
        return new SlidePrediction(slideId, Config.ClassNames[predicted], rule.ProbabilitiesFromScores(decision!), energy, flag, scores);
    }

    /// <summary>The model logits [K] of a bag [N, D] from a run loaded with one fold (a teacher's soft targets).</summary>
    public Tensor FoldLogits(Tensor bag)
    {
        if (_folds.Count != 1) throw new InvalidOperationException("FoldLogits needs a run loaded with one fold");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return _folds[0].Model.Forward(bag).Logits.detach().clone().MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var (model, head) in _folds) { model.Dispose(); head.Dispose(); }
    }
}
