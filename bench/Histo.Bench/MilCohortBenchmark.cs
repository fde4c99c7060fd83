using System.Diagnostics;
using System.Runtime.InteropServices;
using Histo.IO;
using Histo.Mil;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Peak memory of <c>histo train</c>'s loop (MilTraining.Run) on synthetic cohorts of 200 and 2,000 slides of 2,000-20,000 x
/// 1,024 random features each, written as CLAM-style .h5 files, each cohort in its own process under GNU time; beside them
/// the 200 slides with every bag kept in memory, as MilDataset did before bags were loaded lazily (2,000 would need 90 GB).
/// The slides are hard links to a few distinct files, so the disk holds about 2 GB, not 90. Mean pooling keeps the
/// compute small: the figure is the data's memory, which is the same for every model (ABMIL's own, bench mil).
/// </summary>
static class MilCohortBenchmark
{
    const int Dim = 1024, MinPatches = 2_000, MaxPatches = 20_000;

    public static int Run(BenchArgs args)
    {
        BenchEnvironment.EnsureDebianPackages("time");
        int distinct = args.Quick ? 8 : 40, small = args.Quick ? 20 : 200, large = args.Quick ? 200 : 2000;
        double cacheGb = args.Number("--cache-gb", 2);
        string dir = Path.Combine(BenchEnvironment.WorkDir, "mil-cohort"), features = Path.Combine(dir, "features");
        Directory.CreateDirectory(features);
        var random = new Random(0);
        var sizes = Enumerable.Range(0, distinct).Select(_ => random.Next(MinPatches, MaxPatches + 1)).ToArray();
        var clock = Stopwatch.StartNew();
        manual_seed(0);
        for (int f = 0; f < distinct; f++)
        {
            string path = Path.Combine(dir, $"distinct-{f:D2}-{sizes[f]}.h5");
            if (File.Exists(path)) continue;
            using var values = randn(sizes[f], Dim);
            var array = new float[sizes[f], Dim];
            values.data<float>().CopyTo(MemoryMarshal.CreateSpan(ref array[0, 0], array.Length));
            new PatchFeatures($"distinct-{f}", array, new long[sizes[f], 2], "random", 224, 0.5).Write(path);
        }
        for (int i = 0; i < large; i++)
        {
            string link = Path.Combine(features, $"slide-{i:D4}.h5");
            if (!File.Exists(link) && HardLink(Path.Combine(dir, $"distinct-{i % distinct:D2}-{sizes[i % distinct]}.h5"), link) != 0)
                throw new IOException($"cannot hard-link {link} (errno {Marshal.GetLastPInvokeError()})");
        }
        long patches = Enumerable.Range(0, large).Sum(i => (long)sizes[i % distinct]);
        Console.WriteLine($"cohort files ready in {clock.Elapsed.TotalSeconds:0} s: {large:N0} slides of {MinPatches:N0}-{MaxPatches:N0} x "
            + $"{Dim} features ({patches * Dim * 4 / 1e9:0} GB as float32), {distinct} distinct files hard-linked");

        string Cohort(int slides)
        {
            string labels = Path.Combine(dir, $"labels_{slides}.csv"), splits = Path.Combine(dir, $"splits_{slides}");
            var ids = Enumerable.Range(0, slides).Select(i => $"slide-{i:D4}").ToList();
            File.WriteAllLines(labels, ["case_id,slide_id,label", .. ids.Select((s, i) => $"{s},{s},{(i % 2 == 0 ? "a" : "b")}")]);
            // One fold, 80/10/10 by slide (each slide is its own case).
            int val = slides / 10;
            CaseSplits.Write([new Fold(0, ids[(2 * val)..], ids[..val], ids[val..(2 * val)])], splits);
            return labels;
        }
        var runs = new (string Name, int Slides, long CacheBytes)[]
        {
            ($"{small:N0} slides, every bag kept (before)", small, long.MaxValue / 2),
            ($"{small:N0} slides, {cacheGb:0.#} GB cache (Histo)", small, (long)(cacheGb * 1e9)),
            ($"{large:N0} slides, {cacheGb:0.#} GB cache (Histo)", large, (long)(cacheGb * 1e9)),
        };
        Console.WriteLine($"MilTraining.Run, mean pooling, 1 fold x 1 epoch (80/10/10), {Environment.ProcessorCount} threads:");
        var peaks = new List<double>();
        foreach (var run in runs)
        {
            string labels = Cohort(run.Slides);
            var peak = BenchEnvironment.PeakMemory("dotnet", Path.Combine(AppContext.BaseDirectory, "Histo.Bench.dll"), "mil-cohort-train",
                labels, features, Path.Combine(dir, $"splits_{run.Slides}"), $"{run.CacheBytes}", Path.Combine(dir, $"run-{peaks.Count}"));
            peaks.Add(peak.PeakMiB);
            Console.WriteLine($"  {run.Name,-40} peak RSS {peak.PeakMiB,8:N0} MiB   {peak.Seconds,6:0} s   {peak.Output.Trim()}");
        }
        Console.WriteLine($"  {large:N0} vs {small:N0} slides with the cache: peak RSS ratio {peaks[2] / peaks[1]:0.000} "
            + "(target within 15%); "
            + $"every bag kept used {peaks[0] / peaks[1]:0.0}x the cache's peak at {small:N0} slides");
        return 0;
    }

    /// <summary>The child process: one training run, so its peak memory is measured alone.</summary>
    public static int Train(string[] args)
    {
        set_num_threads(Environment.ProcessorCount);
        var data = MilDataset.Load(args[1], args[2], MilTask.Subtype);
        var clock = Stopwatch.StartNew();
        MilTraining.Run(data, new MilTrainingOptions
        {
            Model = "mean", Folds = 1, SplitsDir = args[3], MaxEpochs = 1, MinEpochs = 1, BagCacheBytes = long.Parse(args[4]),
            Overwrite = true,
        }, args[5]);
        Console.WriteLine($"{data.Bags.Count} bags trained and scored in {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    static extern int HardLink(string existing, string link);
}
