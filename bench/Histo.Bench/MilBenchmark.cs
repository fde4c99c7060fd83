using System.Diagnostics;
using System.Text.Json;
using Histo.Mil;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// ABMIL training time per epoch (paper sizes, AdamW, one bag per step) on the same bags, Histo versus a
/// PyTorch reference, with the ratio; and peak memory of a forward and backward pass on a 100,000-patch bag.
/// </summary>
static class MilBenchmark
{
    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-torch", "python3-numpy", "time");
        int threads = Environment.ProcessorCount, bags = quick ? 20 : 60, dim = 512;
        set_num_threads(threads);
        var random = new Random(0);
        var sizes = Enumerable.Range(0, bags).Select(_ => random.Next(200, 3000)).ToArray();
        int total = sizes.Sum();
        manual_seed(0);
        using var all = randn(total, dim);
        var labels = Enumerable.Range(0, bags).Select(i => (long)(i % 3)).ToArray();
        string dir = BenchEnvironment.WorkDir;
        Npy.WriteFloat32(Path.Combine(dir, "mil-bags.npy"), all.data<float>().ToArray(), [total, dim]);
        Npy.WriteInt64(Path.Combine(dir, "mil-sizes.npy"), sizes.Select(s => (long)s).ToArray(), [bags]);
        Npy.WriteInt64(Path.Combine(dir, "mil-labels.npy"), labels, [bags]);

        using var model = new AttentionMil(dim, 3, gated: false);
        using var head = MilHead.Create(HeadKind.Softmax, 3);
        using var optimizer = optim.AdamW(model.parameters(), lr: 5e-4, weight_decay: 1e-4);
        var offsets = new long[bags + 1];
        for (int i = 0; i < bags; i++) offsets[i + 1] = offsets[i] + sizes[i];
        void Epoch()
        {
            model.train();
            for (int i = 0; i < bags; i++)
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                var output = model.Forward(all.narrow(0, offsets[i], sizes[i]));
                var loss = head.Loss(output.Logits, labels[i]);
                loss.backward();
                optimizer.step();
            }
        }
        Epoch();
        var clock = Stopwatch.StartNew();
        Epoch();
        double histo = clock.Elapsed.TotalSeconds;

        string script = Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "abmil_speed_reference.py");
        var py = BenchEnvironment.Run("/usr/bin/python3", [script, Path.Combine(dir, "mil-bags.npy"), Path.Combine(dir, "mil-sizes.npy"), Path.Combine(dir, "mil-labels.npy"), $"{threads}"]);
        if (py.Code != 0) throw new InvalidOperationException("PyTorch reference failed: " + py.Stderr);
        var result = JsonDocument.Parse(py.Stdout.Trim().Split('\n')[^1]).RootElement;
        double torchSeconds = result.GetProperty("seconds_per_epoch").GetDouble();

        Console.WriteLine($"ABMIL training, {bags} bags of 200-3000 x {dim}-d instances ({total} in all), AdamW, one bag per step, {threads} threads:");
        // Forward FLOPs per instance: 2 (512*500 + 500*128 + 128 + 500*3); training is about 3x forward.
        double flops = 3 * 2.0 * (dim * 500 + 500 * 128 + 128 + 500 * 3) * total;
        double gemm;
        using (var a = randn(2048, 2048)) using (var b = randn(2048, 2048))
        {
            using (var w = matmul(a, b)) { }
            var c = Stopwatch.StartNew();
            for (int i = 0; i < 10; i++) using (var r = matmul(a, b)) { }
            gemm = 10 * 2.0 * 2048 * 2048 * 2048 / c.Elapsed.TotalSeconds;
        }
        Console.WriteLine($"  PyTorch {result.GetProperty("torch").GetString()} (Debian)   {torchSeconds:0.000} s per epoch   {flops / torchSeconds / 1e9:0} GFLOP/s (Debian's build with OpenBLAS)");
        Console.WriteLine($"  Histo (TorchSharp)          {histo:0.000} s per epoch   {flops / histo / 1e9:0} GFLOP/s = {flops / histo / gemm:P0} of measured fp32 GEMM ({gemm / 1e9:0} GFLOP/s); ratio {torchSeconds / histo:0.00}x");

        var peak = BenchEnvironment.PeakMemory("dotnet", Path.Combine(AppContext.BaseDirectory, "Histo.Bench.dll"), "mil-bag100k");
        Console.WriteLine($"  peak memory of a process that trains one step on a 100,000 x {dim} bag and scores it: {peak.PeakMiB:0} MiB ({peak.Output.Trim()})");
        return 0;
    }

    /// <summary>Run in its own process so its peak memory is measured alone.</summary>
    public static int HundredThousandPatchBag()
    {
        set_num_threads(Environment.ProcessorCount);
        manual_seed(0);
        using var bag = randn(100_000, 512);
        using var model = new AttentionMil(512, 3, gated: true);
        using var head = MilHead.Create(HeadKind.Softmax, 3);
        using var optimizer = optim.AdamW(model.parameters());
        var clock = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            var output = model.Forward(bag, 1);
            head.Loss(output.Logits, 1).backward();
            optimizer.step();
        }
        model.eval();
        using (no_grad())
        using (var scored = model.Forward(bag))
            Console.WriteLine($"train step + scoring {clock.Elapsed.TotalSeconds:0.0} s, attention sums to {scored.InstanceScores!.sum().item<float>():0.0000}");
        return 0;
    }
}
