using System.Diagnostics;
using System.Text.Json;
using Histo.Mil;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// ABMIL training time per epoch (paper sizes, AdamW, one bag per step) on the same bags, Histo versus a
/// PyTorch reference, with the ratio; the same epoch with bags read from .h5 files by BagLoader (no cache) beside bags held
/// in memory; and peak memory of one training step on 100,000- and 400,000-patch bags, streamed versus one graph.
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
        using var optimizer = new Histo.Models.AdamW(model.parameters(), 5e-4, 1e-4);
        var offsets = new long[bags + 1];
        for (int i = 0; i < bags; i++) offsets[i + 1] = offsets[i] + sizes[i];
        void Step(Tensor bag, long label)
        {
            using var scope = NewDisposeScope();
            optimizer.ZeroGrad();
            var output = model.Forward(bag);
            model.Backward(head.Loss(output.Logits, label));
            optimizer.Step();
        }
        void Epoch()
        {
            model.train();
            for (int i = 0; i < bags; i++) Step(all.narrow(0, offsets[i], sizes[i]), labels[i]);
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

        // The same epoch with the bags read from .h5 files, as histo train reads a cohort larger than its cache.
        string h5 = Path.Combine(dir, "mil-h5");
        Directory.CreateDirectory(h5);
        var milBags = new List<MilBag>();
        for (int i = 0; i < bags; i++)
        {
            using var bag = all.narrow(0, offsets[i], sizes[i]).contiguous();
            var values = new float[sizes[i], dim];
            bag.data<float>().CopyTo(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref values[0, 0], values.Length));
            string path = Path.Combine(h5, $"bag-{i:D3}.h5");
            new Histo.IO.PatchFeatures($"bag-{i:D3}", values, new long[sizes[i], 2], "random", 224, 0.5).Write(path);
            milBags.Add(new MilBag($"bag-{i:D3}", $"bag-{i:D3}", (int)labels[i], path));
        }
        double LoaderEpoch(int prefetch)
        {
            using var loader = new BagLoader(0, prefetch);
            model.train();
            var c = Stopwatch.StartNew();
            foreach (var (bag, features) in loader.Stream(milBags)) Step(features, bag.Label);
            return c.Elapsed.TotalSeconds;
        }
        double streamed = LoaderEpoch(BagLoader.DefaultPrefetch), unprefetched = LoaderEpoch(0);
        // The default: a cache that holds this cohort, so the files are read in the first epoch only.
        double cachedFirst, cachedSecond;
        using (var cached = new BagLoader(BagLoader.DefaultCacheBytes))
        {
            double CachedEpoch()
            {
                var c = Stopwatch.StartNew();
                foreach (var (bag, features) in cached.Stream(milBags)) Step(features, bag.Label);
                return c.Elapsed.TotalSeconds;
            }
            model.train();
            (cachedFirst, cachedSecond) = (CachedEpoch(), CachedEpoch());
        }
        var readClock = Stopwatch.StartNew();
        var buffer = new float[3000 * dim];
        foreach (var bag in milBags) Histo.IO.PatchFeatures.ReadFeaturesInto(bag.FeaturesPath, _ => buffer);
        double readOnly = readClock.Elapsed.TotalSeconds;
        clock.Restart();
        Epoch();
        double inMemory = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  bags held in memory (MilDataset before lazy loading)   {inMemory:0.000} s per epoch");
        Console.WriteLine($"  every bag read from .h5, read-ahead {BagLoader.DefaultPrefetch} (BagLoader, no cache) "
            + $"{streamed:0.000} s per epoch   "
            + $"ratio {streamed / inMemory:0.00}x;  without read-ahead {unprefetched:0.000} s ({unprefetched / inMemory:0.00}x); "
            + $"reading the {bags} files alone {readOnly:0.000} s");
        Console.WriteLine($"  default cache (holds this cohort): first epoch {cachedFirst:0.000} s, second {cachedSecond:0.000} s "
            + $"(ratio {cachedSecond / inMemory:0.00}x)");

        Console.WriteLine("  peak memory of a process that makes one ABMIL training step (gated, 1,024-d) on one bag and scores it:");
        foreach (int n in new[] { 100_000, 400_000 })
            foreach (var (name, chunk) in new[] { ("one graph over the bag (before)", int.MaxValue),
                ($"streamed, {AttentionMil.DefaultChunk:N0}-instance chunks (Histo)", AttentionMil.DefaultChunk) })
            {
                var peak = BenchEnvironment.PeakMemory("dotnet", Path.Combine(AppContext.BaseDirectory, "Histo.Bench.dll"), "mil-bag-step",
                    $"{n}", $"{chunk}");
                Console.WriteLine($"    {n,7:N0} patches, {name,-45} {peak.PeakMiB,8:N0} MiB   ({peak.Output.Trim()})");
            }
        return 0;
    }

    /// <summary>One training step and one scoring of an [N, 1024] bag, in its own process so its peak memory is measured
    /// alone (the bag itself is N x 4 KB of it).</summary>
    public static int BagStep(string[] args)
    {
        int n = int.Parse(args[1]), chunk = int.Parse(args[2]);
        var (step, scoring, attention) = TrainingStepOnRandomBag(n, () => new AttentionMil(BagDim, 3, gated: true, chunk: chunk), 3);
        Console.WriteLine($"step {step:0.0} s, scoring {scoring:0.0} s, attention sums to {attention:0.0000}");
        return 0;
    }

    /// <summary>One TransMIL training step (forward, backward, AdamW) and one scoring pass on a random bag of N x 1,024.</summary>
    public static int TransMilStep(string[] args)
    {
        int n = int.Parse(args[1]);
        var (step, scoring, _) = TrainingStepOnRandomBag(n, () => new TransMil(BagDim, 2), 2);
        Console.WriteLine($"TransMIL, bag of {n} x {BagDim}: step {step:0.0} s, scoring {scoring:0.0} s");
        return 0;
    }

    const int BagDim = 1024;

    /// <summary>Seconds of one training step (forward with label 1, backward, AdamW) and of one scoring pass on a random bag,
    /// and the sum of the scoring pass's instance scores.</summary>
    static (double Step, double Scoring, double ScoreSum) TrainingStepOnRandomBag(int n, Func<MilModel> create, int classes)
    {
        set_num_threads(Environment.ProcessorCount);
        manual_seed(0);
        using var bag = randn(n, BagDim);
        using var model = create();
        using var head = MilHead.Create(HeadKind.Softmax, classes);
        using var optimizer = new Histo.Models.AdamW(model.parameters());
        var clock = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            model.train();
            var output = model.Forward(bag, 1);
            model.Backward(head.Loss(output.Logits, 1));
            optimizer.Step();
        }
        double step = clock.Elapsed.TotalSeconds;
        model.eval();
        using (no_grad())
        using (var scored = model.Forward(bag))
            return (step, clock.Elapsed.TotalSeconds - step, scored.InstanceScores?.sum().item<float>() ?? double.NaN);
    }

    /// <summary>Peak memory of <see cref="TransMilStep"/> on 20,000- and 100,000-instance bags, each in its own process.</summary>
    public static int TransMilMemory()
    {
        string self = Environment.ProcessPath!, dll = typeof(MilBenchmark).Assembly.Location;
        foreach (int n in new[] { 20_000, 100_000 })
        {
            var (peak, seconds, output) = BenchEnvironment.PeakMemory(self, dll, "transmil-step", $"{n}");
            Console.WriteLine($"{output.Split('\n').Last(l => l.Contains("TransMIL"))}; peak RSS {peak:0} MiB ({seconds:0} s in all)");
        }
        return 0;
    }
}
