using System.Globalization;
using System.Text.Json;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// A `histo train` run folder written by hand, so prediction can be checked against figures worked out on paper.
/// Each fold's model is mean pooling whose fc copies the (non-negative) input into its first units, so its logits
/// are W mean(bag) + b exactly; CORAL folds also carry the head's biases. The files are the ones a run has:
/// config.json, fold_i/{model.safetensors, metrics.json, validation.csv}.
/// </summary>
static class HandBuiltRun
{
    public sealed record Fold(float[,] W, float[] B, double[] ValidationEnergies, float[]? CoralBias = null);

    public static string Write(string runDir, string head, string[] classes, int dim, params Fold[] folds)
    {
        Directory.CreateDirectory(runDir);
        var config = new MilTraining.RunConfig("mean", head == "softmax" ? "subtype" : "grade", head, dim, classes, folds.Length, 0,
            Encoder: "toy", PatchSize: 224, TargetMpp: 0.5); // as the features the tests write
        File.WriteAllText(Path.Combine(runDir, "config.json"), JsonSerializer.Serialize(config,
            new JsonSerializerOptions
            { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        for (int f = 0; f < folds.Length; f++)
        {
            var fold = folds[f];
            string foldDir = Path.Combine(runDir, $"fold_{f}");
            Directory.CreateDirectory(foldDir);
            int outputs = fold.B.Length;
            using var model = MilRegistry.Create("mean", dim, outputs);
            var tensors = new Dictionary<string, Tensor>();
            using (no_grad())
            {
                var sd = model.state_dict();
                foreach (var t in sd.Values) t.zero_();
                for (int i = 0; i < dim; i++) sd["fc.0.weight"][i, i] = tensor(1f);
                for (int o = 0; o < outputs; o++)
                {
                    for (int i = 0; i < dim; i++) sd["classifier.weight"][o, i] = tensor(fold.W[o, i]);
                    sd["classifier.bias"][o] = tensor(fold.B[o]);
                }
                foreach (var (name, t) in sd) tensors[name] = t;
                if (fold.CoralBias is not null) tensors["head.bias"] = tensor(fold.CoralBias);
            }
            TorchSharp.PyBridge.Safetensors.SaveStateDict(Path.Combine(foldDir, "model.safetensors"), tensors);
            // metrics.json as a run writes it; EnergyThreshold is the per-fold figure older runs stored (the
            // 95% "quantile" of one fold's few validation slides, i.e. its largest energy).
            double oldThreshold = fold.ValidationEnergies.Length == 0 ? double.NaN : fold.ValidationEnergies.Max();
            File.WriteAllText(Path.Combine(foldDir, "metrics.json"),
                "{\"Fold\":" + f + ",\"BestEpoch\":1,\"Auc\":1,\"BalancedAccuracy\":1,\"MacroF1\":1,\"Accuracy\":1,\"Kappa\":1,\"Mae\":0,"
                + "\"EnergyThreshold\":"
                + (double.IsFinite(oldThreshold) ? oldThreshold.ToString("R", CultureInfo.InvariantCulture) : "\"NaN\"") + "}");
            File.WriteAllText(Path.Combine(foldDir, "validation.csv"), "slide_id,label,energy\n" + string.Concat(
                fold.ValidationEnergies.Select((e, i) => $"val-{f}-{i},{classes[0]},{e.ToString("R", CultureInfo.InvariantCulture)}\n")));
        }
        return runDir;
    }

    /// <summary>A bag of <paramref name="rows"/> copies of <paramref name="row"/>, so its mean is <paramref name="row"/>.</summary>
    public static Tensor Bag(float[] row, int rows = 5) => tensor(Enumerable.Repeat(row,
        rows).SelectMany(r => r).ToArray()).reshape(rows, row.Length);
}
