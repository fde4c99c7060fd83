using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Bench;

/// <summary>
/// Tiling throughput, Histo versus the Python reference of the same algorithm (tools/reference/tile_reference.py:
/// openslide-python + numpy + OpenCV) on the same slides; then peak memory of `histo tile` on a 20k and an
/// 80k px slide.
/// </summary>
static class TilingBenchmark
{
    public static int Run(bool quick)
    {
        Directory.CreateDirectory(BenchEnvironment.WorkDir);
        BenchEnvironment.EnsureDebianPackages("python3-openslide", "python3-numpy", "python3-opencv", "time");
        if (!File.Exists(BenchEnvironment.Histo)) throw new InvalidOperationException("build first: dotnet build -c Release");

        // ---- Throughput: a cohort of 40x-like slides (0.25 mpp), tiled at 0.5 mpp with 256 px patches ----
        int slides = quick ? 3 : 8, side = quick ? 8192 : 16384;
        string cohort = Path.Combine(BenchEnvironment.WorkDir, $"throughput-{slides}x{side}");
        Console.WriteLine($"Synthesising {slides} slides of {side}x{side * 3 / 4} px at 0.25 mpp (coarse texture) in {cohort} ...");
        SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = slides, Seed = 11, Width = side, Height = side * 3 / 4, Mpp = 0.25, Coarse = true }, cohort);
        var files = Directory.GetFiles(Path.Combine(cohort, "slides"), "*.tif").Order().ToArray();
        var options = new TilingOptions { TargetMpp = 0.5, PatchSize = 256 };

        // Warm up both (JIT here, library loading there), then time the same work: open, mask, grid.
        using (var warm = WholeSlide.Open(files[0])) Tiler.Tile(warm, options);
        var clock = Stopwatch.StartNew();
        long histoPatches = 0;
        foreach (var f in files)
        {
            using var slide = WholeSlide.Open(f);
            histoPatches += Tiler.Tile(slide, options).Coordinates.Count;
        }
        double histoSeconds = clock.Elapsed.TotalSeconds;

        // Histo's batch mode also overlaps slides (two at a time on this 2-core machine).
        clock.Restart();
        Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, f =>
        {
            using var slide = WholeSlide.Open(f);
            Tiler.Tile(slide, options);
        });
        double histoParallelSeconds = clock.Elapsed.TotalSeconds;

        string script = Path.Combine(BenchEnvironment.RepoRoot, "tools", "reference", "tile_reference.py");
        var py = BenchEnvironment.Run("/usr/bin/python3", [script, "--mpp", "0.5", files[0], .. files]);
        if (py.Code != 0) throw new InvalidOperationException("reference failed: " + py.Stderr);
        var lines = py.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1) // first line is the warm-up
            .Select(l => JsonDocument.Parse(l).RootElement).ToList();
        double pySeconds = lines.Sum(l => l.GetProperty("seconds").GetDouble());
        long pyPatches = lines.Sum(l => l.GetProperty("patches").GetInt64());

        Console.WriteLine();
        Console.WriteLine($"Tiling {files.Length} slides ({side}x{side * 3 / 4} px, 0.25 mpp) at 0.5 mpp, 256 px patches:");
        Console.WriteLine($"  {"",-34} {"slides/s",10} {"patches/s",11} {"patches",9}");
        Row("Python reference (OpenCV)", files.Length / pySeconds, pyPatches / pySeconds, pyPatches);
        Row("Histo, one slide at a time", files.Length / histoSeconds, histoPatches / histoSeconds, histoPatches);
        Row("Histo, two slides at a time (histo tile)", files.Length / histoParallelSeconds, histoPatches / histoParallelSeconds, histoPatches);
        Console.WriteLine($"  ratio Histo / reference: {pySeconds / histoSeconds:0.00}x one at a time, {pySeconds / histoParallelSeconds:0.00}x two at a time");

        // ---- Peak memory: the same command on a 20k and an 80k px slide ----
        int small = quick ? 10_000 : 20_000, large = quick ? 40_000 : 80_000;
        var peaks = new List<(int Side, double MiB, double Seconds, double PyMiB)>();
        foreach (int s in new[] { small, large })
        {
            string dir = Path.Combine(BenchEnvironment.WorkDir, $"memory-{s}");
            if (!File.Exists(Path.Combine(dir, "slides", "slide-001.json")))
            {
                Console.WriteLine($"Synthesising a {s}x{s} px slide (coarse texture) in {dir} ...");
                var synth = BenchEnvironment.PeakMemory(BenchEnvironment.Histo, "synth", "-o", dir, "--slides", "1", "--width", $"{s}", "--height", $"{s}", "--mpp", "0.25", "--coarse");
                Console.WriteLine($"  synthesis: {synth.Seconds:0} s, peak {synth.PeakMiB:0} MiB");
            }
            string slidePath = Path.Combine(dir, "slides", "slide-001.tif");
            string outDir = Path.Combine(dir, "tiles");
            if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
            var run = BenchEnvironment.PeakMemory(BenchEnvironment.Histo, "tile", slidePath, "-o", outDir, "--mpp", "0.5");
            var pyRun = BenchEnvironment.PeakMemory("/usr/bin/python3", script, "--mpp", "0.5", slidePath);
            peaks.Add((s, run.PeakMiB, run.Seconds, pyRun.PeakMiB));
        }
        Console.WriteLine();
        Console.WriteLine("Peak memory of `histo tile` (whole process, GNU time %M):");
        foreach (var p in peaks) Console.WriteLine($"  {p.Side,6} px per side: {p.MiB,7:0.0} MiB in {p.Seconds:0.0} s (Python reference {p.PyMiB:0.0} MiB)");
        double growth = peaks[1].MiB / peaks[0].MiB - 1;
        Console.WriteLine($"  growth from {small} to {large} px: {growth * 100:+0.0;-0.0}% (target: within 10%)");
        return 0;
    }

    static void Row(string name, double slidesPerSecond, double patchesPerSecond, long patches) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-34} {slidesPerSecond,10:0.00} {patchesPerSecond,11:0} {patches,9}"));
}
