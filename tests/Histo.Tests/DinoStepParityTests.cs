using System.Text.Json;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// Three whole DINO iterations (multi-crop forward, loss, backward, per-parameter clipping, frozen last layer,
/// AdamW with two groups, EMA teacher) against main_dino.py's recipe in PyTorch
/// (tools/reference/dino_train_reference.py step): same formula weights, same formula crops.
/// </summary>
public class DinoStepParityTests
{
    static double Phase(string name) => name.Select((c, i) => (i + 1) * (int)c).Sum() % 997 * 0.01;

    static Tensor Sine(long count, double frequency, double phase)
    {
        using var j = arange(count, dtype: ScalarType.Float64);
        return sin(frequency * j + phase);
    }

    static void FormulaWeights(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("last_layer_weight_g")) { p.fill_(1); continue; }
            using var s = Sine(p.numel(), 0.37, Phase(name)).reshape(p.shape);
            using var value = name.Contains("norm") && name.EndsWith("weight") ? 1 + 0.1 * s : 0.05 * s;
            p.copy_(value);
        }
    }

    static Tensor FormulaCrops(int batch, int size, int view)
    {
        using var s = Sine(batch * 3 * size * size, 0.013, 0.7 * view);
        return s.reshape(batch, 3, size, size).to_type(ScalarType.Float32);
    }

    static double[] Checksum(Tensor t)
    {
        using var scope = NewDisposeScope();
        var flat = t.detach().to_type(ScalarType.Float64).flatten();
        var weights = Sine(flat.numel(), 0.1, 0);
        return [flat.sum().item<double>(), (flat * weights).sum().item<double>(), flat.abs().sum().item<double>()];
    }

    [Fact]
    public void ThreeIterationsMatchPyTorch()
    {
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden", "dino-step-golden.json"))).RootElement;
        var c = golden.GetProperty("config");
        int Get(string key) => c.GetProperty(key).GetInt32();
        var vit = new ViTConfig("vit-micro", Get("dim"), Get("depth"), Get("heads"), Get("patch"), Get("image"));
        DinoNetwork Network() => new(new VisionTransformer(vit), new DinoHead(Get("dim"), Get("out_dim"), hidden: Get("hidden"), bottleneck: Get("bottleneck")));
        using var student = Network();
        using var teacher = Network();
        FormulaWeights(student);
        using var dino = new DinoStep(student, teacher, Get("out_dim"));
        var crops = Enumerable.Range(0, 2).Select(v => FormulaCrops(Get("batch"), Get("image"), v))
            .Concat(Enumerable.Range(0, Get("local_crops")).Select(v => FormulaCrops(Get("batch"), Get("local_size"), 2 + v))).ToList();

        int step = 0;
        foreach (var s in golden.GetProperty("settings").EnumerateArray())
        {
            var v = s.EnumerateArray().ToArray();
            var result = dino.Run(crops, new DinoStepSettings(v[0].GetDouble(), v[1].GetDouble(), v[2].GetDouble(), v[3].GetDouble(), v[4].GetBoolean(), v[5].GetDouble()));
            Assert.Equal(golden.GetProperty("loss")[step].GetDouble(), result.Loss, 1e-5);
            Assert.Equal(golden.GetProperty("entropy")[step].GetDouble(), result.TeacherEntropy, 1e-4);
            step++;
        }
        var failures = new List<string>();
        foreach (var (network, key) in new[] { (student, "student"), (teacher, "teacher") })
            foreach (var (name, p) in network.named_parameters())
            {
                var expected = golden.GetProperty(key).GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                var actual = Checksum(p);
                double scale = Math.Max(1, expected[2]);
                for (int i = 0; i < 3; i++)
                    if (Math.Abs(actual[i] - expected[i]) > 2e-5 * scale) failures.Add($"{key}.{name}[{i}]: {actual[i]} vs PyTorch {expected[i]}");
            }
        var centre = Checksum(dino.Loss.Center);
        var expectedCentre = golden.GetProperty("center").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (int i = 0; i < 3; i++) if (Math.Abs(centre[i] - expectedCentre[i]) > 1e-5 * Math.Max(1, expectedCentre[2])) failures.Add($"center[{i}]");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
