using System.Diagnostics;
using System.Text.Json;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Time per DINO iteration (teacher and student forward, loss, backward, clipping, AdamW, EMA) with Histo and with
/// the PyTorch reference (tools/reference/dino_train_reference.py speed), same model, batch and crops, on random
/// crops, so the data pipeline is not part of it; both on all cores. Also the time Histo takes to make a batch
/// of crops from images (decoding and augmenting), reported separately.
/// </summary>
static class DinoStepBenchmark
{
    public sealed record Config(string Name, int Dim, int Depth, int Heads, int Patch, int Image, int LocalSize, int LocalCrops, int Batch, int OutDim);

    public static readonly Config FashionMnist = new("ViT-Tiny/4, 32 px (the Fashion-MNIST run)", 192, 12, 3, 4, 32, 16, 4, 64, 1024);
    public static readonly Config Patches = new("ViT-Tiny/16, 224 px + 96 px locals (histo pretrain defaults)", 192, 12, 3, 16, 224, 96, 8, 16, 4096);

    public static int Run(bool quick)
    {
        BenchEnvironment.EnsureDebianPackages("python3-torch");
        int iterations = quick ? 2 : 5;
        foreach (var config in new[] { FashionMnist, Patches })
        {
            double histo = Histo(config, iterations);
            string json = JsonSerializer.Serialize(new
            {
                dim = config.Dim, depth = config.Depth, heads = config.Heads, patch = config.Patch, image = config.Image,
                local_size = config.LocalSize, local_crops = config.LocalCrops, batch = config.Batch, out_dim = config.OutDim,
                iterations, threads = Environment.ProcessorCount,
            });
            var r = BenchEnvironment.Run("/usr/bin/python3", [Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "dino_train_reference.py"), "speed", json]);
            if (r.Code != 0) throw new InvalidOperationException("PyTorch reference failed: " + r.Stderr);
            var reference = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
            double torchSeconds = reference.GetProperty("seconds_per_iteration").GetDouble();
            Console.WriteLine($"DINO iteration, {config.Name}, batch {config.Batch}, 2 global + {config.LocalCrops} local crops, K = {config.OutDim}, {Environment.ProcessorCount} threads:");
            Console.WriteLine($"  PyTorch {reference.GetProperty("torch").GetString()}  {torchSeconds:0.000} s/iteration");
            Console.WriteLine($"  Histo          {histo:0.000} s/iteration   ratio (PyTorch time / Histo time) {torchSeconds / histo:0.00}x");
        }
        return 0;
    }

    static double Histo(Config c, int iterations)
    {
        set_num_threads(Environment.ProcessorCount);
        manual_seed(0);
        var vit = new ViTConfig("bench", c.Dim, c.Depth, c.Heads, c.Patch, c.Image);
        using var student = new DinoNetwork(new VisionTransformer(vit), new DinoHead(c.Dim, c.OutDim));
        using var teacher = new DinoNetwork(new VisionTransformer(vit), new DinoHead(c.Dim, c.OutDim));
        using var dino = new DinoStep(student, teacher, c.OutDim);
        var crops = Enumerable.Range(0, 2).Select(_ => randn(c.Batch, 3, c.Image, c.Image))
            .Concat(Enumerable.Range(0, c.LocalCrops).Select(_ => randn(c.Batch, 3, c.LocalSize, c.LocalSize))).ToList();
        var settings = new DinoStepSettings(1e-4, 0.04, 0.996, 0.04, false, 3.0);
        for (int i = 0; i < 2; i++) dino.Run(crops, settings);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) dino.Run(crops, settings);
        return clock.Elapsed.TotalSeconds / iterations;
    }
}
