using System.Diagnostics;

namespace Histo.Bench;

/// <summary>
/// <c>shards</c>: the wall time of embedding a 12-slide synthetic cohort as one process (all cores) against two concurrent
/// shard processes (<c>--shard i/2</c>, half the cores each), as two array tasks on one node would run it.
/// </summary>
static class ShardBenchmark
{
    public static int Run(BenchArgs args)
    {
        int slides = (int)args.Number("--slides", 12);
        string dir = Path.Combine(BenchEnvironment.WorkDir, $"shards-{slides}");
        string cohort = Path.Combine(dir, "cohort"), tiles = Path.Combine(dir, "tiles");
        if (!Directory.Exists(Path.Combine(tiles, "coords")))
        {
            Check(BenchEnvironment.Run(BenchEnvironment.Histo, ["synth", "-o", cohort, "--slides", $"{slides}", "--seed", "5"]));
            Check(BenchEnvironment.Run(BenchEnvironment.Histo, ["tile", Path.Combine(cohort, "slides"), "-o", tiles, "--mpp", "0.5"]));
        }
        int cores = Environment.ProcessorCount;
        double One()
        {
            string output = Path.Combine(dir, "one");
            if (Directory.Exists(output)) Directory.Delete(output, true);
            var clock = Stopwatch.StartNew();
            Check(BenchEnvironment.Run(BenchEnvironment.Histo, ["embed", Path.Combine(cohort, "slides"), "--coords", tiles, "-o", output,
                "--threads", $"{cores}"]));
            return clock.Elapsed.TotalSeconds;
        }
        double Two()
        {
            string output = Path.Combine(dir, "two");
            if (Directory.Exists(output)) Directory.Delete(output, true);
            var clock = Stopwatch.StartNew();
            var tasks = Enumerable.Range(0, 2).Select(i => Task.Run(() => BenchEnvironment.Run(BenchEnvironment.Histo, ["embed",
                Path.Combine(cohort, "slides"), "--coords", tiles, "-o", output, "--shard", $"{i}/2", "--threads",
                $"{Math.Max(1, cores / 2)}"]))).ToArray();
            Task.WaitAll(tasks);
            foreach (var t in tasks) Check(t.Result);
            return clock.Elapsed.TotalSeconds;
        }
        double one = One(), two = Two();
        Console.WriteLine($"Embedding {slides} synthetic slides (resnet18-imagenet, {cores} cores):");
        Console.WriteLine($"  one process, {cores} threads            {one,7:0.0} s");
        Console.WriteLine($"  two shard processes at once, {Math.Max(1, cores / 2)} thread(s) each {two,7:0.0} s   "
            + $"ratio {one / two:0.00}x");
        return 0;
    }

    static void Check((int Code, string Stdout, string Stderr) r)
    {
        if (r.Code != 0) throw new InvalidOperationException(r.Stderr + r.Stdout);
    }
}
