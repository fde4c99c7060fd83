using System.Text.Json;
using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>A slide's prediction from a trained run: the mean of its fold models.</summary>
/// <param name="Energy">E = -logsumexp(logits) (T = 1), averaged over folds; lower is more in-distribution.</param>
/// <param name="OutOfDistribution">Energy above the run's threshold (which keeps 95% of validation slides).</param>
/// <param name="InstanceScores">Per-patch attention or instance score, averaged over folds (null for models without one).</param>
public sealed record SlidePrediction(string SlideId, string Predicted, double[] Probabilities, double Energy, bool OutOfDistribution, float[]? InstanceScores);

/// <summary>
/// The models of a `histo train` run folder, loaded for prediction: every fold's best weights, averaged as
/// an ensemble (each fold saw different training cases).
/// </summary>
public sealed class TrainedRun : IDisposable
{
    readonly List<(MilModel Model, MilHead Head, double Threshold)> _folds = new();

    public MilTraining.RunConfig Config { get; }
    public double EnergyThreshold { get; private set; }

    TrainedRun(MilTraining.RunConfig config)
    {
        Config = config;
    }

    /// <param name="fold">Only this fold's model (e.g. to score the slides it was tested on); all folds by default.</param>
    public static TrainedRun Load(string runDir, int? fold = null)
    {
        string configPath = Path.Combine(runDir, "config.json");
        if (!File.Exists(configPath)) throw new HistoException($"{runDir}: not a training run (no config.json); pass the -o folder of 'histo train'");
        var config = JsonSerializer.Deserialize<MilTraining.RunConfig>(File.ReadAllText(configPath), new JsonSerializerOptions
        { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;
        var run = new TrainedRun(config);
        var kind = Enum.Parse<HeadKind>(config.Head, ignoreCase: true);
        foreach (var foldDir in Directory.GetDirectories(runDir, "fold_*").Order(StringComparer.Ordinal))
        {
            if (fold is { } only && Path.GetFileName(foldDir) != $"fold_{only}") continue;
            string weights = Path.Combine(foldDir, "model.safetensors"), metricsPath = Path.Combine(foldDir, "metrics.json");
            if (!File.Exists(weights) || !File.Exists(metricsPath)) continue; // an unfinished fold
            var head = MilHead.Create(kind, config.ClassNames.Length);
            var model = MilRegistry.Create(config.Model, config.FeatureDim, head.ModelOutputs);
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(weights, null!);
            try
            {
                Models.WeightLoading.Load(model, tensors.Where(kv => !kv.Key.StartsWith("head.")).ToDictionary(kv => kv.Key, kv => kv.Value), weights);
                Models.WeightLoading.Load(head, tensors.Where(kv => kv.Key.StartsWith("head.")).ToDictionary(kv => kv.Key[5..], kv => kv.Value), weights);
            }
            finally { foreach (var t in tensors.Values) t.Dispose(); }
            model.eval();
            head.eval();
            var metrics = JsonSerializer.Deserialize<FoldMetrics>(File.ReadAllText(metricsPath), new JsonSerializerOptions
            { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;
            run._folds.Add((model, head, metrics.EnergyThreshold));
        }
        if (run._folds.Count == 0) throw new HistoException($"{runDir}: no finished fold (fold_*/model.safetensors with metrics.json); finish 'histo train' first");
        var thresholds = run._folds.Select(f => f.Threshold).Where(double.IsFinite).ToList();
        run.EnergyThreshold = thresholds.Count > 0 ? thresholds.Average() : double.NaN;
        return run;
    }

    public int Folds => _folds.Count;

    /// <summary>Predicts one bag [N, D].</summary>
    public SlidePrediction Predict(string slideId, Tensor bag)
    {
        using var _ = no_grad();
        int classes = Config.ClassNames.Length;
        var probabilities = new double[classes];
        double energy = 0;
        float[]? scores = null;
        foreach (var (model, head, _) in _folds)
        {
            using var scope = NewDisposeScope();
            var output = model.Forward(bag);
            var p = head.Probabilities(output.Logits).to_type(ScalarType.Float64).data<double>().ToArray();
            for (int c = 0; c < classes; c++) probabilities[c] += p[c] / _folds.Count;
            energy += -head.EnergyLogits(output.Logits).logsumexp(0).item<float>() / _folds.Count;
            if (output.InstanceScores is not null)
            {
                var s = output.InstanceScores.data<float>().ToArray();
                scores ??= new float[s.Length];
                for (int i = 0; i < s.Length; i++) scores[i] += s[i] / _folds.Count;
            }
        }
        int predicted = Array.IndexOf(probabilities, probabilities.Max());
        return new SlidePrediction(slideId, Config.ClassNames[predicted], probabilities, energy, energy > EnergyThreshold, scores);
    }

    public void Dispose()
    {
        foreach (var (model, head, _) in _folds) { model.Dispose(); head.Dispose(); }
    }
}
